"""Conformance cases for what a node reads at start when its stores disagree, for the term
runs the engine starts from, and for reads that follow later appends.

Where openraft refuses to start (a log whose tail is older than what the state machine
applied, or that holds another term at the applied index), fastraft repairs: the state
machine applies only committed entries (Raft §5.3), so an entry of the log that conflicts
with the applied one is not committed (Log Matching, §5.3; State Machine Safety, §5.4.3),
and neither is anything after it. Dropping those entries is what a leader would make this
node do anyway (§5.3); refusing would leave the node down for a state a crash between a
snapshot install and the log's purge produces (§7). So ``recover_state`` discards them and
purges the log up to the last applied entry; these cases check that every backend ends in
that state, and that the repair holds across the store's own committed-id guard.
"""

from __future__ import annotations

import trio

from ..runtime.startup import load_engine_state
from ..storage.protocols import LogState, supports_append_nowait
from ..storage.recovery import recover_state
from ..types import LogId, Vote
from .helpers import blank, expect, ids, member, members, stored
from .storage_suite import SuiteContext, case


async def _expect_repaired(ctx: SuiteContext, applied: LogId) -> None:
    got = await recover_state(ctx.log, ctx.sm)
    expect((got.last_purged_log_id, got.last_log_id, got.last_applied),
           (applied, applied, applied), "start-up state after the repair")
    expect(await ctx.log.get_log_state(), LogState(applied, applied), "the log store itself")
    expect(await ctx.log.read_entries(0, 100), [], "no conflicting entry is kept")
    await ctx.log.append([blank(applied.term, applied.index + 1)])
    expect((await ctx.log.get_log_state()).last_log_id, LogId(applied.term, applied.index + 1),
           "the log continues right after the applied entry")


@case
async def initial_state_inverted_log_order(ctx: SuiteContext) -> None:
    """The log's tail (1, 2) is further in index but older in term than the applied (3, 1)
    (openraft get_initial_state_inverted_log_order, which refuses): the log's entries are
    on a branch that lost, so they are dropped and the log continues after (3, 1)."""
    await ctx.log.save_vote(Vote(3, 1))
    await ctx.log.append([blank(1, 1), blank(1, 2)])
    await ctx.sm.apply([blank(3, 1)])
    await _expect_repaired(ctx, LogId(3, 1))


@case
async def initial_state_conflict_at_same_index(ctx: SuiteContext) -> None:
    """The log holds (1, 2) where the state machine applied (3, 2) (openraft
    get_initial_state_conflict_at_same_index, which refuses): repaired the same way."""
    await ctx.log.save_vote(Vote(3, 1))
    await ctx.log.append([blank(1, 1), blank(1, 2)])
    await ctx.sm.apply([blank(1, 1), blank(3, 2)])
    await _expect_repaired(ctx, LogId(3, 2))


@case
async def initial_state_conflict_with_a_tail_and_a_committed_id(ctx: SuiteContext) -> None:
    """A conflicting log that goes on past the applied entry, in a store that saved an
    older committed id: the repair cuts the tail first (never into the committed prefix
    the store guards), records the applied entry as committed, then purges."""
    await ctx.log.append([blank(1, i) for i in range(1, 6)])
    await ctx.log.save_committed(LogId(1, 1))
    await ctx.sm.apply([blank(1, 1), blank(3, 2), blank(3, 3)])
    await _expect_repaired(ctx, LogId(3, 3))


@case
async def initial_state_dirty_log_membership_is_dropped(ctx: SuiteContext) -> None:
    """A membership in the log after the applied entry, on a branch that conflicts with it
    (openraft 0.8.3 df_get_initial_state_dirty_log, df_get_membership_config_dirty_log,
    which refuse): dropped with its branch; the node starts with the applied membership."""
    await ctx.log.append([blank(1, 1), blank(1, 2), member(1, 3, 1, 2, 3)])
    await ctx.sm.apply([blank(2, 1), member(2, 2, 3, 4, 5)])
    got = await recover_state(ctx.log, ctx.sm)
    expect((got.membership.committed, got.membership.effective), (stored(2, 2, 3, 4, 5),) * 2,
           "memberships at start")
    expect(await ctx.log.get_log_state(), LogState(LogId(2, 2), LogId(2, 2)), "log state")


@case
async def initial_state_membership_from_empty_log_and_sm(ctx: SuiteContext) -> None:
    """Nothing in the log: the node starts with the state machine's membership (openraft
    get_initial_state_membership_from_empty_log_and_sm)."""
    await ctx.sm.apply([blank(1, 1), member(1, 2, 3, 4, 5)])
    got = await recover_state(ctx.log, ctx.sm)
    expect((got.membership.committed, got.membership.effective), (stored(1, 2, 3, 4, 5),) * 2,
           "memberships at start")


@case
async def initial_state_membership_from_sm_when_the_log_is_behind(ctx: SuiteContext) -> None:
    """A log membership at or before the last applied entry is never used (openraft
    get_initial_state_membership_from_sm_inlog_is_smaller)."""
    await ctx.sm.apply([blank(1, 1), member(1, 2, 3, 4, 5)])
    await ctx.log.append([member(1, 1, 1, 2, 3)])
    got = await recover_state(ctx.log, ctx.sm)
    expect(got.membership.effective.membership, members(3, 4, 5), "effective membership")


@case
async def initial_state_membership_from_the_log_after_a_purge(ctx: SuiteContext) -> None:
    """A log purged up to the last applied entry, then a membership appended after it: that
    one is effective (openraft get_initial_state_membership_from_log_insm_is_smaller)."""
    await ctx.sm.apply([blank(1, 1), member(1, 2, 3, 4, 5)])
    await ctx.log.purge(LogId(1, 2))
    await ctx.log.append([member(1, 3, 1, 2, 3)])
    got = await recover_state(ctx.log, ctx.sm)
    expect((got.membership.committed, got.membership.effective),
           (stored(1, 2, 3, 4, 5), stored(1, 3, 1, 2, 3)), "memberships at start")


# openraft's get_initial_state_log_ids, shifted by one in index and in term (fastraft's start
# at 1): each step truncates since an index, purges up to a log id, appends terms (in that
# order, each optional), then expects the purged id and the runs (term, last index).
_LOG_ID_STEPS = [
    (None, None, [], None, ()),
    (None, None, [1], None, ((1, 1),)),
    (None, None, [1, 1], None, ((1, 3),)),
    (2, None, [2, 2, 3], None, ((1, 1), (2, 3), (3, 4))),
    (None, None, [3, 4, 4], None, ((1, 1), (2, 3), (3, 5), (4, 7))),
    (None, (1, 1), [], (1, 1), ((2, 3), (3, 5), (4, 7))),
    (None, (2, 2), [], (2, 2), ((2, 3), (3, 5), (4, 7))),
    (None, (2, 3), [], (2, 3), ((3, 5), (4, 7))),
    (None, (3, 4), [], (3, 4), ((3, 5), (4, 7))),
    (None, (3, 5), [], (3, 5), ((4, 7),)),
    (None, (4, 6), [], (4, 6), ((4, 7),)),
    (None, (4, 7), [], (4, 7), ()),
    (None, None, [4, 4], (4, 7), ((4, 9),)),
    (None, None, [5] * 5, (4, 7), ((4, 9), (5, 14))),
    (None, (5, 14), [6] * 3 + [7] * 2, (5, 14), ((6, 17), (7, 19))),
    (None, (7, 19), [8] * 10, (7, 19), ((8, 29),)),
    (None, (8, 29), [9] * 5, (8, 29), ((9, 34),)),
]


@case
async def initial_state_log_ids(ctx: SuiteContext) -> None:
    """The engine starts from the last log id of each term (each term has one leader, Raft
    §5.2), computed from the store at start (openraft get_initial_state_log_ids): after
    appends of one or several terms, a truncation, and purges that cut a term's run, end
    it, or remove every entry."""
    log = ctx.log
    for step, (since, purge_to, terms, purged, runs) in enumerate(_LOG_ID_STEPS):
        if since is not None:
            await log.truncate(since)
        if purge_to is not None:
            await log.purge(LogId(*purge_to))
        if terms:
            nxt = (await log.get_log_state()).next_index
            await log.append([blank(t, nxt + k) for k, t in enumerate(terms)])
        got = await load_engine_state(log, ctx.sm)
        expect((got.purged, got.log_runs), (None if purged is None else LogId(*purged), runs),
               f"step {step}: purged id and term runs at start")


@case
async def reads_see_entries_appended_later(ctx: SuiteContext) -> None:
    """Reads see every entry appended after earlier reads, through either append path
    (openraft log_reader_reads_new_entries: fastraft's reader is the store itself)."""
    log = ctx.log
    await log.append([blank(1, 1), blank(1, 2)])
    expect(ids(await log.read_entries(1, 3)), [(1, 1), (1, 2)], "first read")
    await log.append([blank(1, 3), blank(2, 4)])
    expect(ids(await log.read_entries(3, 5)), [(1, 3), (2, 4)], "entries appended later")
    if supports_append_nowait(log):
        done = []
        log.append_nowait([blank(2, 5)], done.append)
        for _ in range(1000):  # bounded: a durable append reports in a few steps
            if done:
                break
            await trio.sleep(0.001)
        expect(done, [None], "the fast path reported the append durable")
        expect(ids(await log.read_entries(1, 100)),
               [(1, 1), (1, 2), (1, 3), (2, 4), (2, 5)], "after the fast path's append")


@case
async def log_state_ignores_the_state_machine(ctx: SuiteContext) -> None:
    """The log's state is the log's: applying further in the state machine changes nothing
    of it (openraft last_id_in_log)."""
    await ctx.log.append([blank(1, 1), blank(1, 2)])
    await ctx.sm.apply([blank(1, 1), blank(1, 2), blank(1, 3)])
    expect(await ctx.log.get_log_state(), LogState(None, LogId(1, 2)), "log state")
