"""The runtime's log writer (fastraft/runtime/log_writer.py) on a durable store: the appends one
sync made durable are reported to the runtime once, with the last of them (so the runtime runs
one flush round per synced batch, not one per append in it), never before the sync, and every
append's latency is still observed. Raft §5.3 with commands.py's obligation: a flush report
promises that every entry up to its log id is on disk."""

import pytest
import trio

from fastraft import Entry
from fastraft.core.commands import AppendLog, TruncateLog
from fastraft.runtime.log_writer import LogWriter
from fastraft.storage import LmdbLogStore
from fastraft.testing.helpers import open_durable_log_store
from fastraft.types import LogId

WAIT_S = 30  # a generous bound on waiting for the store's writer thread
APPENDS = 300


@pytest.mark.parametrize("kind", ["lmdb", "rocksdb"])
def test_one_flush_report_per_synced_batch(tmp_path, kind):
    async def main():
        store = await open_durable_log_store(kind, tmp_path / kind)
        flushed: list[LogId] = []
        durable_at_report: list[int] = []

        async def durable_last():
            state = await store.get_log_state()
            return 0 if state.last_log_id is None else state.last_log_id.index

        def on_flushed(log_id):
            flushed.append(log_id)
            durable_at_report.append(store._durable.next_index - 1)

        writer = LogWriter(store, on_vote_saved=lambda v: None, on_flushed=on_flushed,
                           on_failed=lambda e: pytest.fail(f"store failed: {e}"))
        # Appends issued in bursts, as the engine's rounds do, some while a sync is under way.
        for i in range(1, APPENDS + 1):
            writer.submit(AppendLog([Entry(1, i, 1, b"x")], LogId(1, i)))
            writer.issue_held()  # the end of the runtime's round
            if i % 50 == 0:
                await trio.sleep(0)
        with trio.fail_after(WAIT_S):
            while not flushed or flushed[-1] != LogId(1, APPENDS):
                await trio.sleep(0.001)
        syncs = store.sync_latency.count
        # One report per synced batch: never one per append (300 appends, bursts of 50).
        assert len(flushed) == syncs < APPENDS
        # Reports come in order, each only once its entries were durable.
        assert [f.index for f in flushed] == sorted({f.index for f in flushed})
        assert all(f.index <= d for f, d in zip(flushed, durable_at_report))
        assert await durable_last() == APPENDS
        # Every append's issue-to-durable latency is observed, reported or covered.
        assert writer.append_latency.count == APPENDS
        await store.aclose()

    trio.run(main)


def test_an_append_reaches_the_store_only_at_the_end_of_its_round_and_in_order(tmp_path):
    """The round's appends are held until the round ends (its sends leave first); a vote or a
    truncation emitted after them in the same round still reaches the store after them."""

    async def main():
        store = await LmdbLogStore.open(tmp_path / "lmdb")
        flushed = []
        writer = LogWriter(store, on_vote_saved=lambda v: flushed.append(("vote", v)),
                           on_flushed=flushed.append,
                           on_failed=lambda e: pytest.fail(f"store failed: {e}"))
        async with trio.open_nursery() as nursery:
            nursery.start_soon(writer.run)
            writer.submit(AppendLog([Entry(1, 1, 1, b"a")], LogId(1, 1)))
            assert store._pipeline.queued_ops() == []  # held: the round has not ended
            writer.issue_held()
            assert len(store._pipeline.queued_ops()) == 1
            writer.submit(AppendLog([Entry(1, 2, 1, b"b")], LogId(1, 2)))
            writer.submit(TruncateLog(2))
            # the held append went to the store before the truncation was queued
            assert LogId(1, 2) in [op.after.last_log_id for op in store._pipeline.queued_ops()]
            writer.issue_held()
            with trio.fail_after(WAIT_S):
                while (await store.get_log_state()).last_log_id != LogId(1, 1) or store._pipeline.busy:
                    await trio.sleep(0.001)
            assert flushed[-1] == LogId(1, 2)  # appended, reported, then truncated
            assert [e.index for e in await store.read_entries(1, 10)] == [1]
            nursery.cancel_scope.cancel()
        await store.aclose()

    trio.run(main)


def test_a_rounds_appends_reach_the_store_as_one_write(tmp_path):
    """Several appends of one round (a follower's round holding several requests) are one
    store write and one flush report, for the last of them."""

    async def main():
        store = await LmdbLogStore.open(tmp_path / "lmdb")
        flushed = []
        writer = LogWriter(store, on_vote_saved=lambda v: None, on_flushed=flushed.append,
                           on_failed=lambda e: pytest.fail(f"store failed: {e}"))
        for i in range(1, 6):
            writer.submit(AppendLog([Entry(1, i, 1, b"x")], LogId(1, i)))
        writer.issue_held()
        assert len(store._pipeline.queued_ops()) == 1
        with trio.fail_after(WAIT_S):
            await store._pipeline.wait_idle()
        assert flushed == [LogId(1, 5)]
        assert [e.index for e in await store.read_entries(1, 10)] == [1, 2, 3, 4, 5]
        await store.aclose()

    trio.run(main)
