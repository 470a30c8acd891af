"""The lmdb log store beyond the conformance suite: what opening refuses (checksums, formats,
gaps), map growth, group commit, bounded purges, crash leftovers, reads during writes."""

import os

import lmdb
import pytest
import trio

from fastraft import Entry, LogId, StorageError, Vote
from fastraft.storage import LmdbEnv, LmdbLogStore, MemoryLogStore, supports_append_nowait
from fastraft.storage import records
from fastraft.storage.lmdb_log_layout import key_of


def entries(lo, hi, term=1, size=20):
    return [Entry(term, i, 1, (b"%d:" % i).ljust(size, b"x")) for i in range(lo, hi)]


async def filled(path, n=20, **options):
    store = await LmdbLogStore.open(path, **options)
    await store.append(entries(1, n + 1))
    await store.save_vote(Vote(2, 1))
    return store


def tamper(path, fn):
    """Change the environment with raw lmdb, as a disk fault or another program would."""
    env = lmdb.open(str(path), max_dbs=8)
    try:
        with env.begin(write=True) as txn:
            fn(txn, env.open_db(b"log", txn=txn), env.open_db(b"log_meta", txn=txn))
    finally:
        env.close()


def test_flipped_byte_in_an_entry_is_refused_at_open_naming_file_and_index(tmp_path):
    async def main():
        await (await filled(tmp_path)).aclose()

        def flip(txn, log, meta):
            rec = bytearray(txn.get(key_of(7), db=log))
            rec[-1] ^= 0x01
            txn.put(key_of(7), bytes(rec), db=log)

        tamper(tmp_path, flip)
        with pytest.raises(StorageError) as err:
            await LmdbLogStore.open(tmp_path)
        assert str(tmp_path) in str(err.value) and "entry 7" in str(err.value)
        assert "checksum" in str(err.value)
        # Without the full check the store opens, and the bad entry fails its read.
        store = await LmdbLogStore.open(tmp_path, verify=False)
        assert len(await store.read_entries(1, 7)) == 6
        with pytest.raises(StorageError, match="entry 7"):
            await store.read_entries(5, 10)
        await store.aclose()
        # Nothing was dropped: the bytes are all still there.
        env = lmdb.open(str(tmp_path), max_dbs=8)
        with env.begin() as txn:
            assert txn.stat(env.open_db(b"log", txn=txn))["entries"] == 20
        env.close()

    trio.run(main)


@pytest.mark.parametrize("version", [b"fastraft-log-2", b"something else"])
def test_unknown_format_version_is_refused(tmp_path, version):
    async def main():
        await (await filled(tmp_path)).aclose()
        tamper(tmp_path, lambda txn, log, meta: txn.put(b"format", version, db=meta))
        with pytest.raises(StorageError, match="format version") as err:
            await LmdbLogStore.open(tmp_path)
        assert str(tmp_path) in str(err.value)

    trio.run(main)


def test_data_without_a_format_is_refused(tmp_path):
    async def main():
        await (await filled(tmp_path)).aclose()
        tamper(tmp_path, lambda txn, log, meta: txn.delete(b"format", db=meta))
        with pytest.raises(StorageError, match="no format version"):
            await LmdbLogStore.open(tmp_path)

    trio.run(main)


@pytest.mark.parametrize("key", [b"vote", b"last_purged", b"committed"])
def test_corrupt_meta_record_is_refused(tmp_path, key):
    async def main():
        store = await filled(tmp_path)
        await store.purge(LogId(1, 2))
        await store.save_committed(LogId(1, 5))
        await store.aclose()

        def flip(txn, log, meta):
            rec = bytearray(txn.get(key, db=meta))
            rec[2] ^= 0x10
            txn.put(key, bytes(rec), db=meta)

        tamper(tmp_path, flip)
        with pytest.raises(StorageError, match="checksum") as err:
            await LmdbLogStore.open(tmp_path)
        assert key.decode() in str(err.value) and str(tmp_path) in str(err.value)

    trio.run(main)


def test_gap_and_misplaced_entry_are_refused(tmp_path):
    async def main():
        await (await filled(tmp_path / "gap")).aclose()
        tamper(tmp_path / "gap", lambda txn, log, meta: txn.delete(key_of(9), db=log))
        with pytest.raises(StorageError, match="gap"):
            await LmdbLogStore.open(tmp_path / "gap")

        await (await filled(tmp_path / "moved")).aclose()

        def move(txn, log, meta):
            txn.put(key_of(9), txn.get(key_of(10), db=log), db=log)

        tamper(tmp_path / "moved", move)
        with pytest.raises(StorageError, match="hold entries"):
            await LmdbLogStore.open(tmp_path / "moved")

        await (await filled(tmp_path / "head")).aclose()
        tamper(tmp_path / "head", lambda txn, log, meta: txn.delete(key_of(1), db=log))
        with pytest.raises(StorageError, match="missing"):
            await LmdbLogStore.open(tmp_path / "head")

    trio.run(main)


def test_map_grows_instead_of_failing(tmp_path):
    async def main():
        store = await LmdbLogStore.open(tmp_path, map_size_bytes=256 * 1024)
        start = store._env.map_size_bytes
        for lo in range(1, 4001, 500):
            await store.append(entries(lo, lo + 500, size=1000))
        assert store._env.map_size_bytes > start
        await store.aclose()
        store = await LmdbLogStore.open(tmp_path, map_size_bytes=256 * 1024)
        got = await store.read_entries(1, 5000)
        assert [e.index for e in got] == list(range(1, 4001))
        await store.aclose()

    trio.run(main)


def test_map_limit_fails_the_store_and_keeps_what_was_durable(tmp_path):
    async def main():
        store = await LmdbLogStore.open(tmp_path, map_size_bytes=256 * 1024,
                                        max_map_size_bytes=512 * 1024)
        await store.append(entries(1, 11))
        with pytest.raises(StorageError, match="full"):
            await store.append(entries(11, 3011, size=1000))
        with pytest.raises(StorageError, match="earlier write failed"):
            await store.read_entries(1, 5)
        await store.aclose()
        store = await LmdbLogStore.open(tmp_path)
        assert (await store.get_log_state()).last_log_id == LogId(1, 10)
        await store.aclose()

    trio.run(main)


def test_group_commit_gathers_appends_issued_during_a_sync(tmp_path):
    async def main():
        store = await LmdbLogStore.open(tmp_path)
        assert supports_append_nowait(store) and supports_append_nowait(MemoryLogStore())
        env = store._env._env
        txn_before = env.info()["last_txnid"]
        done = []
        for i in range(1, 201):
            store.append_nowait(entries(i, i + 1), lambda err, i=i: done.append((i, err)))
        assert done == []  # nothing is durable before its sync
        await store._pipeline.wait_idle()
        assert done == [(i, None) for i in range(1, 201)]  # all, in order
        # The first append went alone; the 199 issued meanwhile shared one more sync.
        assert env.info()["last_txnid"] - txn_before == 2
        assert len(await store.read_entries(1, 300)) == 200
        await store.aclose()

    trio.run(main)


def test_concurrent_appenders_each_return_only_once_durable(tmp_path):
    async def main():
        store = await LmdbLogStore.open(tmp_path)
        next_index = [1]
        returned = []

        async def appender(batch):
            for _ in range(25):
                lo = next_index[0]
                next_index[0] += batch
                await store.append(entries(lo, lo + batch))
                # Once append returned, the entries are readable and on disk.
                returned.append(lo + batch - 1)
                assert (await store.get_log_state()).last_log_id.index >= lo + batch - 1

        async with trio.open_nursery() as nursery:
            for batch in (1, 3, 10, 50):
                nursery.start_soon(appender, batch)
        last = next_index[0] - 1
        assert max(returned) == last
        assert [e.index for e in await store.read_entries(1, last + 1)] == list(range(1, last + 1))
        await store.aclose()

    trio.run(main)


def test_truncate_while_append_in_flight_reads_consistently(tmp_path):
    async def main():
        store = await filled(tmp_path, n=10)
        store.append_nowait(entries(11, 21), lambda err: None)
        await store.truncate(15)
        await store.append(entries(15, 18, term=2))
        got = await store.read_entries(1, 100)
        assert [(e.term, e.index) for e in got] == [(1, i) for i in range(1, 15)] + [
            (2, 15), (2, 16), (2, 17)]
        await store.aclose()
        store = await LmdbLogStore.open(tmp_path)
        assert (await store.get_log_state()).last_log_id == LogId(2, 17)
        await store.aclose()

    trio.run(main)


def test_purge_deletes_in_bounded_batches(tmp_path):
    async def main():
        store = await LmdbLogStore.open(tmp_path, purge_batch_entries=100)
        await store.append(entries(1, 1001))
        env = store._env._env
        txn_before = env.info()["last_txnid"]
        await store.purge(LogId(1, 950))
        # 950 deletions, at most 100 per transaction.
        assert env.info()["last_txnid"] - txn_before >= 10
        with store._env.read_txn() as txn:
            assert txn.stat(store._log_db)["entries"] == 50
        assert [e.index for e in await store.read_entries(1, 2000)] == list(range(951, 1001))
        await store.aclose()

    trio.run(main)


def test_open_finishes_a_purge_a_crash_interrupted(tmp_path):
    async def main():
        await (await filled(tmp_path, n=30)).aclose()
        # As if the process died after recording the purge point, before deleting.
        tamper(tmp_path, lambda txn, log, meta: txn.put(
            b"last_purged", records.encode_log_id(LogId(1, 25)), db=meta))
        store = await LmdbLogStore.open(tmp_path, purge_batch_entries=7)
        assert (await store.get_log_state()).last_purged_log_id == LogId(1, 25)
        assert [e.index for e in await store.read_entries(1, 100)] == list(range(26, 31))
        with store._env.read_txn() as txn:
            assert txn.stat(store._log_db)["entries"] == 5
        await store.aclose()

    trio.run(main)


def test_aclose_finishes_issued_writes(tmp_path):
    async def main():
        store = await LmdbLogStore.open(tmp_path)
        reported = []
        store.append_nowait(entries(1, 6), reported.append)
        store.append_nowait(entries(6, 9), reported.append)
        await store.aclose()
        assert reported == [None, None]
        with pytest.raises(StorageError, match="closed"):
            await store.read_entries(1, 2)
        store = await LmdbLogStore.open(tmp_path)
        assert (await store.get_log_state()).last_log_id == LogId(1, 8)
        await store.aclose()

    trio.run(main)


def test_one_environment_per_directory(tmp_path):
    async def main():
        env = LmdbEnv(tmp_path)
        with pytest.raises(StorageError, match="already open"):
            await LmdbLogStore.open(tmp_path)
        store = await LmdbLogStore.open(env)
        with pytest.raises(StorageError, match="still use"):
            env.close()
        await store.aclose()
        env.close()
        assert env.closed

    trio.run(main)


def test_bad_appends_change_nothing(tmp_path):
    async def main():
        store = await filled(tmp_path, n=5)
        txn_before = store._env._env.info()["last_txnid"]
        for bad in ([], entries(7, 8), entries(6, 8)[::-1], [Entry(0, 6, 1, b"")],
                    [Entry(1, 6, 9, b"")]):
            with pytest.raises(ValueError):
                await store.append(bad)
        assert store._env._env.info()["last_txnid"] == txn_before
        assert (await store.get_log_state()).last_log_id == LogId(1, 5)
        await store.append(entries(6, 7))
        await store.aclose()

    trio.run(main)


def test_reads_see_only_durable_entries(tmp_path):
    async def main():
        store = await filled(tmp_path, n=5)
        store.append_nowait(entries(6, 10), lambda err: None)
        # Issued, not yet durable: neither the log state nor a read shows it.
        assert (await store.get_log_state()).last_log_id == LogId(1, 5)
        assert len(await store.read_entries(1, 100)) == 5
        await store._pipeline.wait_idle()
        assert len(await store.read_entries(1, 100)) == 9
        await store.aclose()

    trio.run(main)


def test_store_files_stay_in_their_directory(tmp_path):
    async def main():
        await (await filled(tmp_path / "node")).aclose()
        assert sorted(os.listdir(tmp_path / "node")) == ["data.mdb", "lock.mdb"]

    trio.run(main)


def test_async_writers_wait_for_room_in_a_bounded_queue(tmp_path):
    async def main():
        store = await LmdbLogStore.open(tmp_path)
        pipeline = store._pipeline
        pipeline._max_queued_ops = 2
        next_index = [1]
        high_water = [0]
        submit = pipeline.submit

        def counting_submit(op, done):
            submit(op, done)
            high_water[0] = max(high_water[0], len(pipeline._queued_ops))

        pipeline.submit = counting_submit

        async def appender():
            for _ in range(20):
                await pipeline.wait_for_room()
                lo = next_index[0]  # no checkpoint from here to the submit inside append
                next_index[0] += 3
                await store.append(entries(lo, lo + 3))

        async with trio.open_nursery() as nursery:
            for _ in range(8):
                nursery.start_soon(appender)
        assert high_water[0] <= 2
        got = await store.read_entries(1, 1000)
        assert [e.index for e in got] == list(range(1, 481))
        await store.aclose()

    trio.run(main)
