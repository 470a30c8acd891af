"""Networks: the contract between a node and its peers, and two implementations of it.

* ``protocol``: ``RaftNetwork`` (a factory of clients, one per target), ``RaftClient`` (sends a
  request, returns its response), ``RaftHandler`` (a node's inbound ``handle_*`` entry points),
  and the errors a request can end with;
* ``memory``: ``MemoryRouter``, an in-process network with fault injection for tests;
* ``tcp``: ``TcpNetwork`` and ``serve_raft_tcp``, pipelined persistent connections.
"""

from .memory import MemoryClient, MemoryNetwork, MemoryRouter, RouterStats
from ..errors import NetworkError, RemoteError, RequestTimeout, Unreachable
from ..reply import Reply
from .protocol import (
    RESPONSE_TYPE,
    PipelinedHandler,
    RaftClient,
    RaftHandler,
    RaftNetwork,
    dispatch,
    submit,
)
from .tcp import TcpClient, TcpNetwork, serve_raft_tcp

__all__ = [
    "NetworkError",
    "Unreachable",
    "RequestTimeout",
    "RemoteError",
    "RaftHandler",
    "PipelinedHandler",
    "RaftNetwork",
    "RaftClient",
    "Reply",
    "RESPONSE_TYPE",
    "dispatch",
    "submit",
    "MemoryRouter",
    "MemoryNetwork",
    "MemoryClient",
    "RouterStats",
    "TcpNetwork",
    "TcpClient",
    "serve_raft_tcp",
]

