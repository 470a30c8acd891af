"""The lmdb log's block layout (fastraft.storage.lmdb_log_layout): how appends are split into
blocks, and how truncation and purge cut through a block, seen through the public LogStore
API and checked against the blocks stored."""

import random
import types

import pytest
import trio

from fastraft import Entry, LogId, StorageError
from fastraft.codec import ENTRY_HEADER_SIZE, HEADER_SIZE
from fastraft.storage import LmdbLogStore, MemoryLogStore, lmdb_log_layout
from fastraft.storage.lmdb_log_layout import MAX_BLOCK_BYTES, MAX_BLOCK_ENTRIES, encode_blocks
from fastraft.storage.recovery import read_entry
from lmdb_log_helpers import block_spans, entries, filled


def ids(got):
    return [(e.term, e.index) for e in got]


def test_an_append_beyond_the_entry_bound_splits_and_reads_across_blocks(tmp_path):
    n = 2 * MAX_BLOCK_ENTRIES + 100
    m = MAX_BLOCK_ENTRIES

    async def main():
        store = await LmdbLogStore.open(tmp_path)
        await store.append(entries(1, n + 1, size=8))
        whole = await store.read_entries(1, n + 1)
        assert [e.index for e in whole] == list(range(1, n + 1))
        for lo, hi in ((m - 5, m + 5), (m, m + 1), (m + 1, m + 2), (m - 1, 2 * m + 3),
                       (2 * m + 1, n + 50)):
            assert [e.index for e in await store.read_entries(lo, hi)] == list(
                range(lo, min(hi, n + 1))), (lo, hi)
        limited = await store.read_entries(m - 2, n + 1, max_entries=m + 4)
        assert [e.index for e in limited] == list(range(m - 2, 2 * m + 2))
        await store.aclose()
        assert block_spans(tmp_path) == [(1, m), (m + 1, 2 * m), (2 * m + 1, n)]
        store = await LmdbLogStore.open(tmp_path)  # verifies every block
        assert await store.read_entries(1, n + 1) == whole
        await store.aclose()

    trio.run(main)


def test_an_append_beyond_the_byte_bound_splits_and_a_large_entry_is_a_block_alone(tmp_path):
    per_block = 3
    # Three entries fill a block (frame header, count, entries), a fourth would overflow it.
    size = (MAX_BLOCK_BYTES - HEADER_SIZE - 4) // per_block - ENTRY_HEADER_SIZE
    big = entries(1, 8, size=size)
    huge = [Entry(1, 8, 1, b"h" * (2 * MAX_BLOCK_BYTES)), *entries(9, 11)]

    async def main():
        store = await LmdbLogStore.open(tmp_path)
        await store.append(big + huge)
        got = await store.read_entries(1, 100)
        assert got == big + huge
        assert [e.index for e in await store.read_entries(3, 5)] == [3, 4]
        assert [e.index for e in await store.read_entries(7, 10)] == [7, 8, 9]
        await store.aclose()
        assert block_spans(tmp_path) == [(1, 3), (4, 6), (7, 7), (8, 8), (9, 10)]
        store = await LmdbLogStore.open(tmp_path)
        assert await store.read_entries(1, 100) == got
        await store.aclose()

    trio.run(main)


def test_a_bad_entry_of_a_split_append_is_named_by_its_position_in_the_append(tmp_path):
    """The codec's error for the entry, as if the append were one frame; nothing written."""
    n = MAX_BLOCK_ENTRIES + 100
    by_count = entries(1, n + 1)
    by_count[MAX_BLOCK_ENTRIES + 50] = Entry(1, MAX_BLOCK_ENTRIES + 51, 9, b"")
    by_bytes = entries(1, 4, size=MAX_BLOCK_BYTES // 2)
    by_bytes[1] = types.SimpleNamespace(term=1, index=2, kind=1, payload="not bytes")

    async def main():
        store = await LmdbLogStore.open(tmp_path)
        txn_before = store._env._env.info()["last_txnid"]
        with pytest.raises(ValueError, match=f"^entry {MAX_BLOCK_ENTRIES + 50}: unknown entry"):
            await store.append(by_count)
        with pytest.raises(TypeError, match="^entry 1: payload must be bytes, not str"):
            await store.append(by_bytes)
        assert store._env._env.info()["last_txnid"] == txn_before
        assert (await store.get_log_state()).last_log_id is None
        await store.aclose()

    trio.run(main)


def test_encode_blocks_keeps_a_common_append_in_one_block():
    batch = entries(5, 5 + MAX_BLOCK_ENTRIES, size=100)
    [(first, _)] = encode_blocks(batch)
    assert first == 5
    assert [first for first, _ in encode_blocks(entries(1, MAX_BLOCK_ENTRIES + 2))] == [
        1, MAX_BLOCK_ENTRIES + 1]


def test_truncate_inside_a_block_then_append_then_reopen(tmp_path):
    """Raft §5.3: a follower deletes a conflicting suffix and appends the leader's entries.
    A cut inside a block keeps the block's entries before it (the block is rewritten);
    every block after it goes."""
    async def main():
        store = await filled(tmp_path, n=30, batch=10)
        await store.truncate(17)
        assert (await store.get_log_state()).last_log_id == LogId(1, 16)
        assert [e.index for e in await store.read_entries(1, 100)] == list(range(1, 17))
        await store.append(entries(17, 20, term=2))
        expected = [(1, i) for i in range(1, 17)] + [(2, 17), (2, 18), (2, 19)]
        assert ids(await store.read_entries(1, 100)) == expected
        await store.aclose()
        assert block_spans(tmp_path) == [(1, 10), (11, 16), (17, 19)]
        store = await LmdbLogStore.open(tmp_path)
        assert ids(await store.read_entries(1, 100)) == expected
        assert (await store.get_log_state()).last_log_id == LogId(2, 19)
        # A cut at a block's first entry removes that block whole, and the ones after it.
        await store.truncate(11)
        assert (await store.get_log_state()).last_log_id == LogId(1, 10)
        await store.append(entries(11, 13, term=3))
        await store.aclose()
        assert block_spans(tmp_path) == [(1, 10), (11, 12)]
        store = await LmdbLogStore.open(tmp_path)
        assert ids(await store.read_entries(9, 100)) == [(1, 9), (1, 10), (3, 11), (3, 12)]
        await store.aclose()

    trio.run(main)


def test_purge_inside_a_block_reads_below_at_and_above_the_purge_point(tmp_path):
    """Raft §7: a purge removes the entries a snapshot covers. The block holding the purge
    point stays on disk (it still holds later entries), but no read returns an entry at or
    below the purge point; a later purge that passes the block's end removes it."""
    async def main():
        store = await filled(tmp_path, n=30, batch=10)
        await store.purge(LogId(1, 15))
        assert [e.index for e in await store.read_entries(1, 100)] == list(range(16, 31))
        assert await store.read_entries(11, 16) == []
        assert await store.read_entries(15, 16) == []
        assert [e.index for e in await store.read_entries(14, 17)] == [16]
        assert [e.index for e in await store.read_entries(16, 17)] == [16]
        assert await read_entry(store, 15) is None
        assert (await read_entry(store, 16)).index == 16
        await store.aclose()
        assert block_spans(tmp_path) == [(11, 20), (21, 30)]

        store = await LmdbLogStore.open(tmp_path)
        assert [e.index for e in await store.read_entries(0, 18)] == [16, 17]
        # Truncating right above the purge point empties the log; the block holding the
        # purge point keeps only purged entries, and still nothing at or below 15 is read.
        await store.truncate(16)
        state = await store.get_log_state()
        assert state.last_purged_log_id == state.last_log_id == LogId(1, 15)
        assert await store.read_entries(0, 100) == []
        await store.append(entries(16, 19, term=2))
        await store.aclose()
        assert block_spans(tmp_path) == [(11, 15), (16, 18)]

        store = await LmdbLogStore.open(tmp_path)
        assert ids(await store.read_entries(0, 100)) == [(2, 16), (2, 17), (2, 18)]
        await store.purge(LogId(2, 17))
        assert ids(await store.read_entries(0, 100)) == [(2, 18)]
        await store.aclose()
        assert block_spans(tmp_path) == [(16, 18)]

    trio.run(main)


def test_purge_at_a_block_end_and_past_the_log_end(tmp_path):
    async def main():
        store = await filled(tmp_path, n=30, batch=10)
        await store.purge(LogId(1, 20))
        await store.aclose()
        assert block_spans(tmp_path) == [(21, 30)]
        store = await LmdbLogStore.open(tmp_path)
        await store.purge(LogId(4, 50))
        state = await store.get_log_state()
        assert state.last_purged_log_id == state.last_log_id == LogId(4, 50)
        await store.append(entries(51, 52, term=4))
        await store.aclose()
        assert block_spans(tmp_path) == [(51, 51)]

    trio.run(main)


def test_an_append_overlapping_stored_entries_is_refused_by_the_writer(tmp_path):
    """The store checks appends against what it staged; the writer checks again against the
    disk, so that a block never overlaps another (as another writer would make it)."""
    async def main():
        store = await filled(tmp_path, n=20, batch=5)
        layout = store._layout
        for overlapping in (entries(18, 22), entries(3, 5), entries(16, 17)):
            blocks = encode_blocks(overlapping)
            with pytest.raises(StorageError, match="collide") as err:
                store._env.write(lambda txn: layout.append(txn, blocks))
            assert str(tmp_path) in str(err.value)
        await store.append(entries(21, 22))
        await store.aclose()
        assert block_spans(tmp_path) == [(1, 5), (6, 10), (11, 15), (16, 20), (21, 21)]

    trio.run(main)


@pytest.mark.parametrize("seed", range(4))
def test_random_operations_match_the_memory_store(tmp_path, monkeypatch, seed):
    """Appends, truncations, purges and reopenings at random, with blocks of a few entries
    and bytes so that cuts fall anywhere in and between blocks: the lmdb store reads back
    exactly what the memory store (the reference) holds, and its blocks stay contiguous."""
    monkeypatch.setattr(lmdb_log_layout, "MAX_BLOCK_ENTRIES", 7)
    monkeypatch.setattr(lmdb_log_layout, "MAX_BLOCK_BYTES", 400)
    rng = random.Random(seed)

    async def main():
        purge_batch = rng.randint(1, 20)
        store = await LmdbLogStore.open(tmp_path, purge_batch_entries=purge_batch)
        model = MemoryLogStore()
        term = 1
        for step in range(300):
            state = await model.get_log_state()
            purged = 0 if state.last_purged_log_id is None else state.last_purged_log_id.index
            last = state.next_index - 1
            r = rng.random()
            if r < 0.5:
                n = rng.randint(1, 30)
                batch = [Entry(term, i, 1, bytes([i % 251]) * rng.randint(0, 150))
                         for i in range(last + 1, last + 1 + n)]
                await store.append(batch)
                await model.append(batch)
            elif r < 0.65:
                since = rng.randint(purged + 1, last + 2)
                await store.truncate(since)
                await model.truncate(since)
                term += 1
            elif r < 0.8:
                upto = rng.randint(purged, last + 3)
                at = await model.read_entries(upto, upto + 1)
                upto_id = LogId(at[0].term if at else term, upto)
                await store.purge(upto_id)
                await model.purge(upto_id)
            elif r < 0.9:
                await store.aclose()
                store = await LmdbLogStore.open(tmp_path, purge_batch_entries=purge_batch)
            else:
                lo = rng.randint(0, last + 2)
                hi = rng.randint(lo, last + 3)
                limit = rng.choice([None, 1, 5, 50])
                assert await store.read_entries(lo, hi, limit) == \
                    await model.read_entries(lo, hi, limit), (step, lo, hi, limit)
            where = f"step {step}"
            assert await store.get_log_state() == await model.get_log_state(), where
            assert await store.read_entries(0, 10**9) == await model.read_entries(0, 10**9), where
        await store.aclose()
        spans = block_spans(tmp_path)
        assert all(a[1] + 1 == b[0] for a, b in zip(spans, spans[1:])), spans
        state = await model.get_log_state()
        if spans:
            assert spans[-1][1] == state.last_log_id.index or (
                state.last_log_id == state.last_purged_log_id
                and spans[-1][1] <= state.last_purged_log_id.index)

    trio.run(main)
