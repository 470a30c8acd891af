"""Raft over TCP: a persistent, pipelined connection from each node to each peer it sends to,
and a server that fits a nursery.

Outbound (``TcpNetwork``, a ``RaftNetwork``; ``fastraft.net.tcp_client``)::

    network = TcpNetwork()
    async with network.client(2, Node("127.0.0.1:22002")) as client:
        resp = await client.append_entries(req, timeout_s=1.0)

Each client keeps one connection to its target (so a pair of nodes that both send holds one
connection in each direction; each side only ever writes requests on its own). Requests carry
ids (``fastraft.net.framing``) and many may be in flight.

Inbound (``serve_raft_tcp``; ``fastraft.net.tcp_server``)::

    async with trio.open_nursery() as nursery:
        async with open_raft(...) as raft:
            await nursery.start(serve_raft_tcp, raft, "127.0.0.1", 22001)

Per connection, requests reach the node in arrival order and each answer goes back as soon as
it is known. The server stops by itself when the node shuts down (if the handler offers
``wait_closed``).

Both sides write through one ``FrameWriter`` per connection (``fastraft.net.writer``): one
write loop that coalesces what is queued, and one write-now path that writes a frame straight
to the socket when nothing is queued before it, with TLS as without.

Security: with a ``TlsConfig`` on both sides every connection is mutual TLS and speaks for
one authenticated node only (``fastraft.net.tls``, ``fastraft.net.tls_stream``); the listener's
connections, waits and buffered bytes are bounded by ``ListenerLimits``
(``fastraft.net.limits``). Everything this network logs goes to the ``fastraft.net.tcp``
logger.
"""

from __future__ import annotations

from .tcp_client import TcpClient, TcpNetwork, parse_addr
from .tcp_server import serve_raft_tcp

__all__ = ["TcpNetwork", "TcpClient", "serve_raft_tcp", "parse_addr"]
