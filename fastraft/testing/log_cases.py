"""Conformance cases for the log store: vote, log state, reads, append, truncate, purge.

Each case starts on a fresh, empty pair (``ctx.log``, ``ctx.sm``). Indexes start at 1, so
openraft's cases that begin at index 0 are shifted by one.
"""

from __future__ import annotations

from ..storage.protocols import LogState
from ..storage.recovery import read_entry
from ..types import LogId, Vote
from .helpers import blank, expect, expect_raises, feed_10, ids, member, normal
from .storage_suite import SuiteContext, case


def _state(purged: tuple | None, last: tuple | None) -> LogState:
    return LogState(None if purged is None else LogId(*purged),
                    None if last is None else LogId(*last))


@case
async def vote_save_and_read(ctx: SuiteContext) -> None:
    """A saved vote reads back, and the last one saved wins (Raft §5.2)."""
    expect(await ctx.log.read_vote(), None, "vote of a new store")
    for vote in (Vote(100, 1), Vote(100, 1, committed=True), Vote(101, 2)):
        await ctx.log.save_vote(vote)
        expect(await ctx.log.read_vote(), vote, "vote after save_vote")


@case
async def log_state(ctx: SuiteContext) -> None:
    """get_log_state follows appends and purges, also a purge past the end."""
    log = ctx.log
    expect(await log.get_log_state(), _state(None, None), "log state of a new store")
    await log.append([blank(1, 1), blank(1, 2), blank(1, 3)])
    expect(await log.get_log_state(), _state(None, (1, 3)), "after appending 1..3")
    await log.purge(LogId(1, 1))
    expect(await log.get_log_state(), _state((1, 1), (1, 3)), "after purging up to 1")
    await log.purge(LogId(1, 3))
    expect(await log.get_log_state(), _state((1, 3), (1, 3)), "after purging everything")
    await log.purge(LogId(2, 4))
    expect(await log.get_log_state(), _state((2, 4), (2, 4)), "after purging past the end")
    await log.append([blank(2, 5)])
    expect(await log.get_log_state(), _state((2, 4), (2, 5)), "after appending 5")


@case
async def read_entries_full(ctx: SuiteContext) -> None:
    """A read of the whole log returns every entry, in order, as appended."""
    await feed_10(ctx.log)
    got = await ctx.log.read_entries(1, 11)
    expect(ids(got), [(1, i) for i in range(1, 11)], "read_entries(1, 11)")
    expect(got, [blank(1, i) for i in range(1, 11)], "entries read back")
    got = await ctx.log.read_entries(5, 7)
    expect(ids(got), [(1, 5), (1, 6)], "read_entries(5, 7)")


@case
async def read_entries_limited(ctx: SuiteContext) -> None:
    """max_entries returns a prefix of the range, never more."""
    await feed_10(ctx.log)
    expect(ids(await ctx.log.read_entries(2, 11, max_entries=3)), [(1, 2), (1, 3), (1, 4)],
           "read_entries(2, 11, max_entries=3)")
    expect(ids(await ctx.log.read_entries(5, 7, max_entries=1)), [(1, 5)],
           "read_entries(5, 7, max_entries=1)")
    expect(len(await ctx.log.read_entries(1, 11, max_entries=100)), 10,
           "read_entries(1, 11, max_entries=100)")


@case
async def read_entries_empty(ctx: SuiteContext) -> None:
    """Empty ranges, and any range of an empty log, read nothing."""
    expect(await ctx.log.read_entries(1, 10), [], "read of a new store")
    await feed_10(ctx.log)
    expect(await ctx.log.read_entries(3, 3), [], "read_entries(3, 3)")
    expect(await ctx.log.read_entries(7, 5), [], "read_entries(7, 5)")


@case
async def read_entries_out_of_range(ctx: SuiteContext) -> None:
    """Indexes outside the log (before it, purged, after it) are skipped."""
    log = ctx.log
    await feed_10(log)
    expect(await log.read_entries(11, 20), [], "read_entries(11, 20) past the end")
    expect(await log.read_entries(0, 1), [], "read_entries(0, 1) before the start")
    expect(ids(await log.read_entries(0, 100)), [(1, i) for i in range(1, 11)],
           "read_entries(0, 100)")
    await log.purge(LogId(1, 3))
    expect(ids(await log.read_entries(1, 5)), [(1, 4)], "read_entries(1, 5) after purge to 3")
    expect(ids(await log.read_entries(0, 100)), [(1, i) for i in range(4, 11)],
           "read_entries(0, 100) after purge to 3")


@case
async def read_single_entry(ctx: SuiteContext) -> None:
    """One entry by index (openraft's try_get_log_entry)."""
    await feed_10(ctx.log)
    expect(ids([await read_entry(ctx.log, 3)]), [(1, 3)], "entry 3")
    expect(await read_entry(ctx.log, 0), None, "entry 0")
    expect(await read_entry(ctx.log, 11), None, "entry 11")
    await ctx.log.purge(LogId(1, 3))
    expect(await read_entry(ctx.log, 3), None, "entry 3 after purge to 3")
    expect(ids([await read_entry(ctx.log, 4)]), [(1, 4)], "entry 4 after purge to 3")


@case
async def append_to_log(ctx: SuiteContext) -> None:
    """Appends continue the log; every kind of entry reads back unchanged."""
    log = ctx.log
    await feed_10(log)
    await log.purge(LogId(0, 0))
    tail = [blank(2, 11), member(2, 12, 1, 2, 3), normal(2, 13, ctx.payload(13))]
    await log.append(tail)
    got = await log.read_entries(0, 100)
    expect(len(got), 13, "entries after appending 11..13")
    expect(got[10:], tail, "the appended entries read back")
    expect((await log.get_log_state()).last_log_id, LogId(2, 13), "last log id")


@case
async def append_rejects_a_gap_or_overlap(ctx: SuiteContext) -> None:
    """An append that would leave a gap or overwrite entries is refused (ValueError) and
    changes nothing; overwriting takes a truncate first (Raft §5.3)."""
    log = ctx.log
    await feed_10(log)
    with expect_raises(ValueError, "append at 12 after 10"):
        await log.append([blank(1, 12)])
    with expect_raises(ValueError, "append at 5 over existing entries"):
        await log.append([blank(2, 5)])
    expect(await log.get_log_state(), _state(None, (1, 10)), "log state after refused appends")
    await log.append([blank(1, 11)])
    expect((await log.get_log_state()).last_log_id, LogId(1, 11), "append at 11 still works")


@case
async def truncate_after_0(ctx: SuiteContext) -> None:
    """truncate(1) empties the log."""
    await feed_10(ctx.log)
    await ctx.log.truncate(1)
    expect(await ctx.log.read_entries(0, 100), [], "entries after truncate(1)")
    expect(await ctx.log.get_log_state(), _state(None, None), "log state after truncate(1)")
    await ctx.log.append([blank(2, 1)])
    expect(ids(await ctx.log.read_entries(0, 100)), [(2, 1)], "append after truncate(1)")


@case
async def truncate_after_5(ctx: SuiteContext) -> None:
    """truncate(6) keeps 1..5; the log then continues at 6 (a conflicting suffix replaced)."""
    await feed_10(ctx.log)
    await ctx.log.truncate(6)
    expect(ids(await ctx.log.read_entries(0, 100)), [(1, i) for i in range(1, 6)],
           "entries after truncate(6)")
    expect(await ctx.log.get_log_state(), _state(None, (1, 5)), "log state after truncate(6)")
    await ctx.log.append([blank(2, 6), blank(2, 7)])
    expect(ids(await ctx.log.read_entries(5, 100)), [(1, 5), (2, 6), (2, 7)],
           "entries after re-appending 6..7")


@case
async def truncate_after_11(ctx: SuiteContext) -> None:
    """truncate past the end (12, with entries up to 10) deletes nothing."""
    await feed_10(ctx.log)
    await ctx.log.truncate(12)
    expect(len(await ctx.log.read_entries(0, 100)), 10, "entries after truncate(12)")
    expect(await ctx.log.get_log_state(), _state(None, (1, 10)), "log state after truncate(12)")


@case
async def truncate_none(ctx: SuiteContext) -> None:
    """Truncating an empty log, or at its very end, changes nothing."""
    await ctx.log.truncate(1)
    expect(await ctx.log.get_log_state(), _state(None, None), "empty log after truncate(1)")
    await feed_10(ctx.log)
    await ctx.log.truncate(11)
    expect(await ctx.log.get_log_state(), _state(None, (1, 10)), "log state after truncate(11)")


@case
async def truncate_after_purge(ctx: SuiteContext) -> None:
    """Truncation meets the purged prefix: down to it is fine, into it is refused."""
    log = ctx.log
    await feed_10(log)
    await log.purge(LogId(1, 3))
    await log.truncate(5)
    expect(await log.get_log_state(), _state((1, 3), (1, 4)), "after purge 3, truncate(5)")
    await log.truncate(4)
    expect(await log.get_log_state(), _state((1, 3), (1, 3)), "after truncate(4)")
    expect(await log.read_entries(0, 100), [], "entries after truncate(4)")
    with expect_raises(ValueError, "truncate(3) into the purged prefix"):
        await log.truncate(3)
    await log.append([blank(2, 4)])
    expect(ids(await log.read_entries(0, 100)), [(2, 4)], "append after truncating all")


@case
async def purge_upto_0(ctx: SuiteContext) -> None:
    """purge((0, 0)) removes nothing but records the purge point."""
    await feed_10(ctx.log)
    await ctx.log.purge(LogId(0, 0))
    got = await ctx.log.read_entries(0, 100)
    expect((len(got), got[0].index), (10, 1), "entries after purge to 0")
    expect(await ctx.log.get_log_state(), _state((0, 0), (1, 10)), "log state after purge to 0")


@case
async def purge_upto_5(ctx: SuiteContext) -> None:
    """purge((1, 5)) removes 1..5 (Raft §7: covered by a snapshot)."""
    await feed_10(ctx.log)
    await ctx.log.purge(LogId(1, 5))
    got = await ctx.log.read_entries(0, 100)
    expect((len(got), got[0].index), (5, 6), "entries after purge to 5")
    expect(await ctx.log.get_log_state(), _state((1, 5), (1, 10)), "log state after purge to 5")


@case
async def purge_upto_20(ctx: SuiteContext) -> None:
    """A purge past the end empties the log; it continues after the purge point."""
    await feed_10(ctx.log)
    await ctx.log.purge(LogId(1, 20))
    expect(await ctx.log.read_entries(0, 100), [], "entries after purge to 20")
    expect(await ctx.log.get_log_state(), _state((1, 20), (1, 20)), "log state after purge to 20")
    await ctx.log.append([blank(2, 21)])
    expect(ids(await ctx.log.read_entries(0, 100)), [(2, 21)], "append after purge to 20")


@case
async def purge_older_is_ignored(ctx: SuiteContext) -> None:
    """A purge point never moves back."""
    await feed_10(ctx.log)
    await ctx.log.purge(LogId(1, 5))
    await ctx.log.purge(LogId(1, 3))
    expect(await ctx.log.get_log_state(), _state((1, 5), (1, 10)), "log state after older purge")
    expect(len(await ctx.log.read_entries(0, 100)), 5, "entries after older purge")


@case
async def committed_save_and_read(ctx: SuiteContext) -> None:
    """save_committed/read_committed: the last saved reads back, or the store keeps none
    (always None), as openraft allows."""
    first = await ctx.log.read_committed()
    expect(first, None, "committed id of a new store")
    await ctx.log.save_committed(LogId(1, 4))
    got = await ctx.log.read_committed()
    if got is not None:
        expect(got, LogId(1, 4), "committed id after save_committed")
        await ctx.log.save_committed(LogId(2, 9))
        expect(await ctx.log.read_committed(), LogId(2, 9), "committed id after a second save")
