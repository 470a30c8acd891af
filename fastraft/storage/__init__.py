"""Storage: the log store and state machine contract, and its backends.

* ``protocols``: ``LogStore``, ``StateMachine``, ``LogState``, ``Snapshot`` (the contract).
* ``memory``: ``MemoryLogStore`` (no disk).
* ``lmdb_log``: ``LmdbLogStore`` (durable, group commit), on ``lmdb_env.LmdbEnv``.
* ``recovery``: what a node reads back at start (``recover_state`` and helpers).

``fastraft.testing.StorageSuite`` checks any pair of stores against the contract; the KV
example's state machines live in ``fastraft.kv``.
"""

from .lmdb_env import LmdbEnv
from .lmdb_log import LmdbLogStore
from .memory import MemoryLogStore
from .protocols import LogState, LogStore, OnDurable, Snapshot, StateMachine, supports_append_nowait
from .recovery import (
    RecoveredState,
    MembershipState,
    last_membership_in_log,
    recover_state,
    read_entry,
    read_membership_state,
)

__all__ = [
    "LogState",
    "LogStore",
    "StateMachine",
    "Snapshot",
    "OnDurable",
    "supports_append_nowait",
    "MemoryLogStore",
    "LmdbEnv",
    "LmdbLogStore",
    "RecoveredState",
    "MembershipState",
    "read_entry",
    "last_membership_in_log",
    "read_membership_state",
    "recover_state",
]
