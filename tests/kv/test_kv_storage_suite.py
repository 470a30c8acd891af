"""The storage conformance suite (``fastraft.testing``) on the stores a KV node runs: the lmdb
log store and the lmdb KV state machine, each in its own environment under the node's data
directory, as ``fastraft.kv.server`` opens them. The durable cases reopen them in place."""

from fastraft.kv import LmdbKVStateMachine
from fastraft.storage import LmdbLogStore
from fastraft.testing import DurableStorageSuite


class TestKVNodeStores(DurableStorageSuite):
    async def open_stores(self, path):
        log_store = await LmdbLogStore.open(path / "log")
        state_machine = await LmdbKVStateMachine.open(path / "state")
        return log_store, state_machine
