"""The lmdb log store beyond the conformance suite: what opening refuses (checksums, formats,
gaps, blocks that do not match their keys), map growth, group commit, bounded purges, crash
leftovers, reads during writes. The block layout itself: test_lmdb_log_blocks.py."""

import os
import re

import pytest
import trio

from fastraft import Entry, LogId, StorageError
from fastraft.codec import encode_entries
from fastraft.storage import LmdbEnv, LmdbLogStore, MemoryLogStore, supports_append_nowait
from fastraft.storage import records
from fastraft.storage.lmdb_log_layout import FORMAT_VERSION, key_of
from lmdb_log_helpers import block_spans, entries, filled, raw_items, tamper


def test_flipped_byte_in_a_block_is_refused_at_open_naming_file_and_index(tmp_path):
    async def main():
        await (await filled(tmp_path)).aclose()  # blocks [1, 5], [6, 10], ...

        def flip(txn, log, meta):
            rec = bytearray(txn.get(key_of(6), db=log))
            rec[-1] ^= 0x01
            txn.put(key_of(6), bytes(rec), db=log)

        tamper(tmp_path, flip)
        before = raw_items(tmp_path)
        with pytest.raises(StorageError) as err:
            await LmdbLogStore.open(tmp_path)
        assert str(tmp_path) in str(err.value) and "block keyed 6" in str(err.value)
        assert "checksum" in str(err.value)
        # Without the full check the store opens, and reads of the bad block fail.
        store = await LmdbLogStore.open(tmp_path, verify=False)
        assert len(await store.read_entries(1, 6)) == 5
        assert len(await store.read_entries(11, 21)) == 10
        with pytest.raises(StorageError, match="block keyed 6 .* checksum"):
            await store.read_entries(5, 10)
        await store.aclose()
        # Nothing was dropped: the bytes are all still there.
        assert raw_items(tmp_path) == before

    trio.run(main)


@pytest.mark.parametrize("version", [b"fastraft-log-1", b"fastraft-log-3", b"something else"])
def test_unknown_format_version_is_refused(tmp_path, version):
    async def main():
        await (await filled(tmp_path)).aclose()
        tamper(tmp_path, lambda txn, log, meta: txn.put(b"format", version, db=meta))
        with pytest.raises(StorageError, match="format version") as err:
            await LmdbLogStore.open(tmp_path)
        assert str(tmp_path) in str(err.value)
        assert repr(version) in str(err.value) and repr(FORMAT_VERSION) in str(err.value)

    trio.run(main)


def test_a_format_1_store_is_refused_and_left_as_it_was(tmp_path):
    """A store written by an earlier build (format 1: one record per entry, keyed by its
    index) is refused, naming the file, the format found and the format this build reads;
    there is no migration, and the store is not touched."""
    def write_format_1(txn, log, meta):
        txn.put(b"format", b"fastraft-log-1", db=meta)
        # The values hardly matter (the format is refused before any is read): one
        # checksummed frame per entry, as that format stored them.
        recs = [encode_entries([e]) for e in entries(1, 11)]
        txn.cursor(db=log).putmulti(zip(map(key_of, range(1, 11)), recs), append=True)

    tamper(tmp_path, write_format_1)
    before = raw_items(tmp_path)

    async def main():
        with pytest.raises(StorageError) as err:
            await LmdbLogStore.open(tmp_path)
        message = str(err.value)
        assert str(tmp_path) in message
        assert "b'fastraft-log-1'" in message and "b'fastraft-log-2'" in message

    trio.run(main)
    assert raw_items(tmp_path) == before


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


def _put_block(txn, log, key, block):
    txn.put(key_of(key), encode_entries(block), db=log)


def _move_block(txn, log, old, new):
    txn.put(key_of(new), txn.get(key_of(old), db=log), db=log)
    txn.delete(key_of(old), db=log)


# Each: a change to a store holding blocks [1, 5], [6, 10], [11, 15], [16, 20], what the
# refusal says, and the index it names.
DAMAGE = {
    "gap between blocks": (
        lambda txn, log: txn.delete(key_of(11), db=log), "gap", "11"),
    "key not the block's first entry": (
        lambda txn, log: _move_block(txn, log, 11, 12), "keyed 12 holds entries 11", "12"),
    "entries not consecutive in a block": (
        lambda txn, log: _put_block(txn, log, 6, entries(6, 8) + entries(9, 10)
                                    + entries(8, 9) + entries(10, 11)),
        "not consecutive", "6"),
    "blocks overlap": (
        lambda txn, log: _put_block(txn, log, 6, entries(6, 12)), "overlap", "11"),
    "terms decrease across blocks": (
        lambda txn, log: _put_block(txn, log, 1, entries(1, 6, term=3)), "terms decrease", "6"),
    "first block missing": (
        lambda txn, log: txn.delete(key_of(1), db=log), "missing", "1"),
    "empty block": (
        lambda txn, log: _put_block(txn, log, 16, []), "holds no entries", "16"),
}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_damaged_log_is_refused_at_open_naming_file_and_index(tmp_path, damage):
    """The on-disk invariant (Raft §5.3, log matching: a log is contiguous, its terms never
    decrease) is checked at open; a store that breaks it is refused, naming the file and an
    index, and left as it was."""
    change, message, index = DAMAGE[damage]

    async def main():
        await (await filled(tmp_path)).aclose()
        tamper(tmp_path, lambda txn, log, meta: change(txn, log))
        before = raw_items(tmp_path)
        with pytest.raises(StorageError, match=message) as err:
            await LmdbLogStore.open(tmp_path)
        assert str(err.value).startswith(f"{tmp_path}: ")
        assert re.search(rf"\b{index}\b", str(err.value)[len(str(tmp_path)):])
        assert raw_items(tmp_path) == before

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
        # The writer takes everything queued when it wakes: the 200 appends, issued back to
        # back, share the sync under way when they were issued (the first may go alone, and
        # the GIL may hand the writer a few more before the trio thread is done), never one
        # sync each.
        assert 1 <= env.info()["last_txnid"] - txn_before <= 3
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
    """purge_batch_entries bounds the entries deleted per transaction, in whole blocks."""
    async def main():
        store = await filled(tmp_path, n=1000, batch=10, purge_batch_entries=100)
        env = store._env._env
        txn_before = env.info()["last_txnid"]
        await store.purge(LogId(1, 950))
        # 95 blocks of 10 entries, at most 100 entries (10 blocks) per transaction.
        assert env.info()["last_txnid"] - txn_before >= 10
        with store._env.read_txn() as txn:
            assert txn.stat(store._log_db)["entries"] == 5
        assert [e.index for e in await store.read_entries(1, 2000)] == list(range(951, 1001))
        await store.aclose()

    trio.run(main)


def test_purge_batch_must_be_positive(tmp_path):
    async def main():
        with pytest.raises(ValueError, match="purge_batch_entries"):
            await LmdbLogStore.open(tmp_path, purge_batch_entries=0)

    trio.run(main)


def test_a_block_longer_than_the_purge_batch_goes_alone(tmp_path):
    async def main():
        store = await filled(tmp_path, n=3000, batch=1000, purge_batch_entries=100)
        env = store._env._env
        txn_before = env.info()["last_txnid"]
        await store.purge(LogId(1, 2500))
        assert env.info()["last_txnid"] - txn_before == 2  # one block per transaction
        assert store._physical_first == 2001
        await store.aclose()
        assert block_spans(tmp_path) == [(2001, 3000)]

    trio.run(main)


def test_open_finishes_a_purge_a_crash_interrupted(tmp_path):
    """Raft §7: entries covered by a snapshot go; a crash between recording the purge point
    and deleting the blocks below it leaves them, and opening deletes them (in bounded
    transactions), all but the block holding the purge point."""
    async def main():
        await (await filled(tmp_path, n=30)).aclose()  # blocks of 5
        # As if the process died after recording the purge point, before deleting.
        tamper(tmp_path, lambda txn, log, meta: txn.put(
            b"last_purged", records.encode_log_id(LogId(1, 23)), db=meta))
        store = await LmdbLogStore.open(tmp_path, purge_batch_entries=7)
        assert (await store.get_log_state()).last_purged_log_id == LogId(1, 23)
        assert [e.index for e in await store.read_entries(1, 100)] == list(range(24, 31))
        assert store._physical_first == 21
        await store.aclose()
        assert block_spans(tmp_path) == [(21, 25), (26, 30)]
        # Opening a store with nothing left to finish writes nothing.
        before = raw_items(tmp_path)
        await (await LmdbLogStore.open(tmp_path)).aclose()
        assert raw_items(tmp_path) == before

    trio.run(main)


def test_open_finishes_a_purge_past_the_end_a_crash_interrupted(tmp_path):
    async def main():
        await (await filled(tmp_path, n=30)).aclose()
        tamper(tmp_path, lambda txn, log, meta: txn.put(
            b"last_purged", records.encode_log_id(LogId(2, 40)), db=meta))
        store = await LmdbLogStore.open(tmp_path, purge_batch_entries=7)
        state = await store.get_log_state()
        assert state.last_purged_log_id == state.last_log_id == LogId(2, 40)
        assert await store.read_entries(1, 100) == []
        await store.append(entries(41, 43, term=2))
        await store.aclose()
        assert block_spans(tmp_path) == [(41, 42)]

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
            high_water[0] = max(high_water[0], len(pipeline._pending))

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
