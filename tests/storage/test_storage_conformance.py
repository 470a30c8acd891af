"""Both built-in backends pass the storage conformance suite (fastraft.testing), in
whichever build (compiled or pure) the run uses."""

import fastraft.testing
from fastraft.kv import LmdbKVStateMachine, MemoryKVStateMachine
from fastraft.storage import LmdbEnv, LmdbLogStore, MemoryLogStore


class TestMemoryStores(fastraft.testing.StorageSuite):
    async def open_stores(self, path):
        return MemoryLogStore(), MemoryKVStateMachine()


class TestLmdbStores(fastraft.testing.DurableStorageSuite):
    """The log store and the state machine share one environment, as on a node."""

    async def open_stores(self, path):
        env = LmdbEnv(path / "node", map_size_bytes=1 << 20)
        log = await LmdbLogStore.open(env)
        sm = await LmdbKVStateMachine.open(env)
        self._envs = getattr(self, "_envs", {})
        self._envs[id(log)] = env
        return log, sm

    async def close_stores(self, log, sm):
        await sm.aclose()
        await log.aclose()
        self._envs.pop(id(log)).close()


class TestLmdbStoresApart(fastraft.testing.DurableStorageSuite):
    """Each store opened from a directory owns its own environment."""

    async def open_stores(self, path):
        return await LmdbLogStore.open(path / "log"), await LmdbKVStateMachine.open(path / "sm")
