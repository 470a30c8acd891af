"""The replicated KV store example (openraft's raft-kv-memstore and raft-kv-rocksdb, told
for fastraft): its commands, its state machines, and the HTTP node, client and CLI.

* ``commands``: the payload of a KV log entry (Set, Delete, CompareAndSwap) and its effect.
* ``MemoryKVStateMachine``: the state in a dict (no disk).
* ``LmdbKVStateMachine``: durable, in the node's lmdb environment beside its log.
* ``api``: the HTTP API's JSON; ``service``, ``app``, ``server``: one node serving it
  (``run_node``); ``http_network``: Raft RPCs over HTTP; ``client``: ``KVClient``;
  ``cli``: the ``fastraft-kv`` command; ``local_cluster``: nodes as local processes;
  ``demo``: ``fastraft demo``.

Both state machines answer ``get(key)`` for local reads and behave identically entry for
entry; their snapshots share one format (``snapshot_format``), so either installs the
other's. The HTTP parts need the ``kv`` extra (``pip install 'fastraft[kv]'``: httptools,
httpx); importing this package does not, and ``KVClient``, ``run_node`` and ``NodeOptions``
are loaded on first use.
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
    "KVClient",
    "ClusterUnavailable",
    "NodeOptions",
    "run_node",
]

_LAZY = {"KVClient": "client", "ClusterUnavailable": "client", "NodeOptions": "server",
         "run_node": "server"}


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'fastraft.kv' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value
