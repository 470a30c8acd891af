"""The RocksDB log store (``fastraft[rocksdb]``): the storage conformance suite (durable cases
included), a refusal of a directory of the other kind both ways, and a refusal of a damaged
block. Its SIGKILL and power-loss crash tests are parametrized in test_crash_sigkill.py and
test_powerloss_store.py."""

import pytest
import trio

import fastraft.testing
from fastraft import Entry, LogId
from fastraft.errors import StorageError
from fastraft.kv import LmdbKVStateMachine
from fastraft.storage import LmdbLogStore

pytest.importorskip("rocksdict", reason="the rocksdb extra is not installed")
from fastraft.storage.rocksdb_log import RocksLogStore  # noqa: E402


class TestRocksStores(fastraft.testing.DurableStorageSuite):
    async def open_stores(self, path):
        return await RocksLogStore.open(path / "log"), await LmdbKVStateMachine.open(path / "sm")


def entries(first, last, term=1):
    return [Entry(term, i, 1, b"x%d" % i) for i in range(first, last + 1)]


def test_a_directory_of_the_other_kind_is_refused(tmp_path):
    async def main():
        lm = await LmdbLogStore.open(tmp_path / "l")
        await lm.aclose()
        with pytest.raises(StorageError, match="holds a lmdb store"):
            await RocksLogStore.open(tmp_path / "l")
        rk = await RocksLogStore.open(tmp_path / "r")
        await rk.aclose()
        with pytest.raises(StorageError, match="holds a rocksdb store"):
            await LmdbLogStore.open(tmp_path / "r")

    trio.run(main)


def test_truncate_and_purge_inside_blocks_survive_reopen(tmp_path):
    async def main():
        s = await RocksLogStore.open(tmp_path / "r")
        await s.append(entries(1, 10))
        await s.append(entries(11, 20))
        await s.truncate(15)  # inside the second block
        await s.append(entries(15, 18, term=2))
        await s.purge(LogId(1, 5))  # inside the first block
        await s.aclose()
        s = await RocksLogStore.open(tmp_path / "r")
        state = await s.get_log_state()
        assert state.last_purged_log_id == LogId(1, 5) and state.last_log_id == LogId(2, 18)
        got = await s.read_entries(1, 100)
        assert [(e.index, e.term) for e in got] == [(i, 1) for i in range(6, 15)] + \
            [(i, 2) for i in range(15, 19)]
        await s.purge(LogId(2, 18))  # everything
        await s.append(entries(19, 19, term=2))
        await s.aclose()
        s = await RocksLogStore.open(tmp_path / "r")
        assert [e.index for e in await s.read_entries(1, 100)] == [19]
        await s.aclose()

    trio.run(main)


def test_a_damaged_block_is_refused_at_open(tmp_path):
    import rocksdict

    async def main():
        s = await RocksLogStore.open(tmp_path / "r")
        await s.append(entries(1, 10))
        await s.aclose()
        db = rocksdict.Rdict(str(tmp_path / "r"), rocksdict.Options(raw_mode=True))
        key = b"L" + (1).to_bytes(8, "big")
        value = bytearray(db[key])
        value[-1] ^= 0xFF
        db[key] = bytes(value)
        db.close()
        with pytest.raises(StorageError, match="fails its check"):
            await RocksLogStore.open(tmp_path / "r")

    trio.run(main)
