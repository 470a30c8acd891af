"""The replicated KV store example: its commands and its state machines.

* ``commands``: the payload of a KV log entry (Set, Delete, CompareAndSwap) and its effect.
* ``MemoryKVStateMachine``: the state in a dict (no disk).
* ``LmdbKVStateMachine``: durable, in the node's lmdb environment beside its log.

Both answer ``get(key)`` for local reads and behave identically entry for entry; their
snapshots share one format (``snapshot_format``), so either installs the other's.
"""

from .commands import CompareAndSwap, Delete, Set, decode_command, encode_command
from .lmdb_state_machine import LmdbKVStateMachine
from .state_machine import MemoryKVStateMachine

__all__ = [
    "Set",
    "Delete",
    "CompareAndSwap",
    "encode_command",
    "decode_command",
    "MemoryKVStateMachine",
    "LmdbKVStateMachine",
]
