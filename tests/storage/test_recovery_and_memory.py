"""Start-up recovery edge cases, snapshot format refusals, and the memory log store's
own promises."""

import io

import pytest
import trio
import trio.testing

from fastraft import CodecError, Entry, LogId, StorageError, Vote
from fastraft.kv import MemoryKVStateMachine
from fastraft.kv.snapshot_format import SnapshotWriter, read_snapshot
from fastraft.storage import MemoryLogStore, recover_state
from fastraft.testing.helpers import blank, stored
from fastraft.types import SnapshotMeta


def test_missing_committed_entries_stop_the_start():
    async def main():
        log, sm = MemoryLogStore(), MemoryKVStateMachine()
        await log.append([blank(1, i) for i in range(1, 4)])
        await log.save_committed(LogId(1, 3))
        await log.purge(LogId(1, 2))  # a purge the state machine has not caught up with
        with pytest.raises(StorageError, match="missing"):
            await recover_state(log, sm)

    trio.run(main)


def test_reapply_runs_in_bounded_chunks():
    async def main():
        log, sm = MemoryLogStore(), MemoryKVStateMachine()
        await log.append([blank(1, i) for i in range(1, 1301)])
        await log.save_committed(LogId(1, 1300))
        batches = []
        real_apply = sm.apply

        async def counting_apply(entries):
            batches.append(len(entries))
            return await real_apply(entries)

        sm.apply = counting_apply
        got = await recover_state(log, sm)
        assert got.last_applied == LogId(1, 1300) and got.committed == LogId(1, 1300)
        assert batches == [512, 512, 276]

    trio.run(main)


def test_a_log_that_does_not_continue_the_state_machine_is_discarded():
    """Raft §7: the state machine is at (4, 3) (a snapshot of term 4 was installed) and the
    crash came before the old log was discarded. That log holds term 3 at index 3 and goes
    on to 5: its suffix conflicts with committed entries, so it is dropped, not kept after a
    purge marker of a newer term."""
    async def main():
        log, sm = MemoryLogStore(), MemoryKVStateMachine()
        await log.append([blank(1, 1), blank(2, 2), blank(3, 3), blank(3, 4), blank(3, 5)])
        await sm.apply([blank(1, 1), blank(2, 2), blank(4, 3)])
        got = await recover_state(log, sm)
        assert got.last_applied == LogId(4, 3)
        assert got.last_purged_log_id == LogId(4, 3) and got.last_log_id == LogId(4, 3)
        assert await log.read_entries(1, 10) == []

    trio.run(main)


def test_a_log_that_continues_the_state_machine_is_kept():
    async def main():
        log, sm = MemoryLogStore(), MemoryKVStateMachine()
        await log.append([blank(1, 1), blank(2, 2), blank(4, 3), blank(4, 4)])
        await sm.apply([blank(1, 1), blank(2, 2), blank(4, 3)])
        got = await recover_state(log, sm)
        assert got.last_purged_log_id is None and got.last_log_id == LogId(4, 4)
        assert len(await log.read_entries(1, 10)) == 4

    trio.run(main)


def test_memory_append_nowait_reports_at_once_and_closed_store_refuses():
    async def main():
        log = MemoryLogStore()
        seen = []
        log.append_nowait([blank(1, 1)], seen.append)
        assert seen == [None]
        await log.save_vote(Vote(1, 1))
        with pytest.raises(TypeError):
            await log.save_vote((1, 1))
        with pytest.raises(ValueError):
            await log.read_entries(1, 2, max_entries=0)
        await log.aclose()
        with pytest.raises(StorageError):
            await log.read_vote()

    trio.run(main)


def _snapshot_bytes(pairs, meta=None):
    out = io.BytesIO()
    writer = SnapshotWriter(out, meta or SnapshotMeta(LogId(1, 1), stored(1, 1, 1), "1-1-x"))
    for k, v in pairs:
        writer.add(k, v)
    writer.finish()
    return out.getvalue()


def test_snapshot_format_refuses_what_commands_could_not_build():
    good = _snapshot_bytes([(b"a", b"1"), (b"b", b"2")])
    meta, pairs = read_snapshot(io.BytesIO(good))
    assert list(pairs) == [(b"a", b"1"), (b"b", b"2")] and meta.snapshot_id == "1-1-x"
    with pytest.raises(ValueError):
        _snapshot_bytes([(b"b", b"1"), (b"a", b"2")])
    for bad in (good + b"x", good[:-3], b"FRKVSNAP\x02\x00" + good[10:], b"NOTASNAP" + good[8:],
                _snapshot_bytes([(b"k" * 600, b"v")]), _snapshot_bytes([(b"", b"v")]),
                _snapshot_bytes([(b"\xff", b"v")])):
        with pytest.raises(CodecError):
            _, pairs = read_snapshot(io.BytesIO(bad))
            list(pairs)


def test_entries_are_kept_as_given():
    async def main():
        log = MemoryLogStore()
        batch = [Entry(1, 1, 1, b"a"), Entry(1, 2, 2, b"b")]
        await log.append(batch)
        assert await log.read_entries(1, 3) == batch

    trio.run(main)


@pytest.mark.parametrize("what", ["vote", "entry"])
def test_a_persisted_term_beyond_the_ceiling_is_a_storage_error_at_start(tmp_path, what):
    """A term of 2**64-1 that reached disk (a forged vote request accepted by an older version)
    made every start crash on the next term + 1; now the start is refused with a clear
    StorageError naming the value (Raft §5.1: terms only grow, so the node cannot go on)."""
    from fastraft.kv import LmdbKVStateMachine
    from fastraft.storage import LmdbLogStore

    async def main():
        log = await LmdbLogStore.open(str(tmp_path / "log"))
        sm = await LmdbKVStateMachine.open(str(tmp_path / "sm"))
        try:
            if what == "vote":
                await log.save_vote(Vote((1 << 64) - 1, 0))
            else:
                await log.append([blank(1 << 62, 1)])
            with pytest.raises(StorageError, match=r"term \d+ is outside \[0, 2\*\*62\)"):
                await recover_state(log, sm)
        finally:
            await log.aclose()
            await sm.aclose()

    trio.run(main)


def test_start_reads_the_term_runs_without_letting_mock_time_pass():
    """A restarting node reads its log's term runs on the event loop, not from a worker thread
    calling back in: under MockClock(autojump_threshold=0) every thread hand-off lets the
    clock jump to the next timer, so a restart in a cluster test took simulated seconds while
    the other nodes kept writing, the log grew, and each restart took longer (a power-cut
    test that never ended)."""
    from fastraft.runtime.startup import load_engine_state

    async def main():
        log, sm = MemoryLogStore(), MemoryKVStateMachine()
        await log.append([blank(1 + i // 100, i) for i in range(1, 3001)])  # 31 term runs

        async def timer_in_the_background():
            for _ in range(10_000):  # bounded; cancelled below
                await trio.sleep(1)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(timer_in_the_background)
            state = await load_engine_state(log, sm)
            nursery.cancel_scope.cancel()
        assert state.log_runs[0] == (1, 99) and state.log_runs[-1] == (31, 3000)
        assert len(state.log_runs) == 31
        assert trio.current_time() == 0  # the reads let no simulated time pass

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
