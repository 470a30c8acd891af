"""fastraft: Raft consensus for Python.

A deterministic sans-I/O engine (fastraft.core) on an accelerated Cython core
(fastraft.accel), driven by a trio runtime. See README.md.
"""

from .accel import accelerated
from .accel import entry as _entry
from .errors import (
    Busy,
    CodecError,
    ConfigError,
    FastraftError,
    ForwardToLeader,
    LeaderTransferring,
    MembershipError,
    NetworkError,
    OutcomeUnknown,
    RaftShutdown,
    RemoteError,
    RequestTimeout,
    StorageError,
    TransferFailed,
    Unreachable,
)
Entry = _entry.Entry

from .types import (ClientWriteResponse, ClientWriteResponses, EntryKind, LogId, Membership,
                    Node, SnapshotMeta, StoredMembership, Vote)

# the engine (sans-I/O, no I/O imports)
from .core import Config, Engine

# Networks, storage and the trio node load on first use (PEP 562), so that importing the
# engine (fastraft.core) loads no I/O module: no trio, no lmdb, no socket.
_LAZY = {
    "MemoryRouter": "net", "RaftClient": "net", "RaftNetwork": "net", "TcpNetwork": "net",
    "serve_raft_tcp": "net",
    "Raft": "runtime", "RaftMetrics": "runtime", "ServerState": "runtime",
    "WaitTimeout": "runtime", "open_raft": "runtime",
}


def __getattr__(name):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'fastraft' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


__version__ = "0.1.0"

__all__ = [
    "accelerated",
    "Entry",
    "EntryKind",
    "LogId",
    "ClientWriteResponse",
    "ClientWriteResponses",
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
