"""``LogStore.note_committed``: the committed id rides with the next append, in its own synced
write, at no sync of its own (etcd saves its HardState's commit with the entries of the same
Ready); a restart reads it back (``read_committed``), so the node re-applies up to it at once
(``fastraft.storage.recover_state``). Never written past the log's end (a restart would find
committed entries missing), and counted by the purge check as soon as it is noted.
"""

import pytest
import trio

from fastraft.storage import MemoryLogStore
from fastraft.testing.helpers import blank
from fastraft.types import LogId
from crash_stores import OPENERS, durable_kinds


def run(fn, *args):
    return trio.run(fn, *args)


def entries(lo, hi, term=1):
    return [blank(term, i) for i in range(lo, hi)]


@pytest.mark.parametrize("kind", durable_kinds())
def test_noted_committed_is_written_with_the_next_append_and_no_extra_sync(tmp_path, kind):
    path = tmp_path / "log"

    async def first_run():
        store = await OPENERS[kind](path)
        try:
            await store.append(entries(1, 4))
            batches = store.sync_latency.count
            store.note_committed(LogId(1, 2))
            assert await store.read_committed() is None  # noted only: nothing written yet
            await store.append(entries(4, 5))
            assert store.sync_latency.count == batches + 1  # the append's one sync, no other
            assert await store.read_committed() == LogId(1, 2)
            # past the log's end: kept for the append that reaches it
            store.note_committed(LogId(1, 8))
            await store.append(entries(5, 7))
            assert await store.read_committed() == LogId(1, 2)
            await store.append(entries(7, 9))
            assert await store.read_committed() == LogId(1, 8)
            store.note_committed(LogId(1, 3))  # older than saved: ignored
            await store.append(entries(9, 10))
        finally:
            await store.aclose()

    async def second_run():
        store = await OPENERS[kind](path)
        try:
            assert await store.read_committed() == LogId(1, 8)
        finally:
            await store.aclose()

    run(first_run)
    run(second_run)


@pytest.mark.parametrize("kind", ["memory"] + durable_kinds())
def test_purge_check_counts_a_noted_committed_id(tmp_path, kind):
    async def main():
        store = MemoryLogStore() if kind == "memory" else await OPENERS[kind](tmp_path / "log")
        try:
            await store.append(entries(1, 6))
            await store.save_committed(LogId(1, 2))
            with pytest.raises(ValueError):
                await store.purge(LogId(1, 4))  # past the committed id: refused
            store.note_committed(LogId(1, 4))
            await store.purge(LogId(1, 4))  # known committed now, though not yet written
            assert (await store.get_log_state()).last_purged_log_id == LogId(1, 4)
            with pytest.raises(ValueError):
                await store.purge(LogId(1, 5))
        finally:
            await store.aclose()

    run(main)
