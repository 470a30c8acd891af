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


def __getattr__(name: str) -> object:
    if name == "__version__":
        globals()[name] = value = _version()
        return value
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'fastraft' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def _version() -> str:
    # The version is kept in one place, pyproject.toml; an installed fastraft knows it from its
    # metadata (read on first use: importlib.metadata loads threading and sockets, which
    # importing the engine must not). A source tree that was never installed has none.
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("fastraft")
    except PackageNotFoundError:
        return "0+unknown"

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
