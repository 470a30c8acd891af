"""fastraft: Raft consensus for Python.

A deterministic sans-I/O engine (fastraft.core) on an accelerated Cython core
(fastraft.accel), driven by a trio runtime. See README.md.
"""

from .accel import accelerated
from .accel import entry as _entry
from .errors import (
    CodecError,
    ConfigError,
    FastraftError,
    ForwardToLeader,
    OutcomeUnknown,
    RaftShutdown,
    StorageError,
)
Entry = _entry.Entry

from .types import EntryKind, LogId, Membership, Node, SnapshotMeta, StoredMembership, Vote

# the engine (sans-I/O, no I/O imports) and the refusals it answers requests with
from .core import Config, Engine
from .core.errors import Busy, LeaderTransferring, MembershipError, TransferFailed

# networks and the trio node an application embeds
from .net import (
    MemoryRouter,
    NetworkError,
    RaftClient,
    RaftNetwork,
    RemoteError,
    RequestTimeout,
    TcpNetwork,
    Unreachable,
    serve_raft_tcp,
)
from .runtime import Raft, RaftMetrics, ServerState, WaitTimeout, open_raft

__version__ = "0.1.0"

__all__ = [
    "accelerated",
    "Entry",
    "EntryKind",
    "LogId",
    "Vote",
    "Node",
    "Membership",
    "StoredMembership",
    "SnapshotMeta",
    "FastraftError",
    "CodecError",
    "StorageError",
    "ConfigError",
    "ForwardToLeader",
    "OutcomeUnknown",
    "RaftShutdown",
    "Config",
    "Engine",
    "LeaderTransferring",
    "TransferFailed",
    "MembershipError",
    "Busy",
    "open_raft",
    "Raft",
    "RaftMetrics",
    "ServerState",
    "WaitTimeout",
    "RaftNetwork",
    "RaftClient",
    "MemoryRouter",
    "TcpNetwork",
    "serve_raft_tcp",
    "NetworkError",
    "Unreachable",
    "RequestTimeout",
    "RemoteError",
]
