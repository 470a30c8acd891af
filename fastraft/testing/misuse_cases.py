"""Conformance cases for misuse: calls a correct runtime never makes, which every store must
refuse with ValueError and without changing anything stored (openraft 0.8.3's defensive
cases, ``df_*``, told for fastraft's split of log store and state machine).

The log store does not see the state machine, so "what is applied" is, for the log store,
the committed id it was told with ``save_committed`` (the engine applies only committed
entries, Raft §5.3, so applied <= committed). A store that keeps no committed id (allowed:
``read_committed`` stays None) cannot check purges and truncations against it; those two
cases then check only that nothing else changed.
"""

from __future__ import annotations

from ..storage.protocols import LogState
from ..types import LogId, Vote
from .helpers import blank, expect, expect_raises, ids, normal
from .storage_suite import SuiteContext, case


async def _log_snapshot(log) -> tuple:
    """Everything a log store holds, to compare before and after a refused call."""
    return (await log.read_vote(), await log.get_log_state(), await log.read_committed(),
            ids(await log.read_entries(0, 1 << 20)))


@case
async def misuse_vote_going_back_is_refused(ctx: SuiteContext) -> None:
    """A saved vote never goes back (Raft §5.2): not to a lower term, not to another
    candidate (or to nobody) in the same term, not from committed to uncommitted."""
    log = ctx.log
    await log.save_vote(Vote(10, 10))
    for bad in (Vote(9, 10), Vote(9, 9), Vote(10, 9), Vote(10, 0)):
        with expect_raises(ValueError, f"save_vote({bad}) after Vote(10, 10)"):
            await log.save_vote(bad)
        expect(await log.read_vote(), Vote(10, 10), f"vote after refusing {bad}")
    await log.save_vote(Vote(10, 10))  # the same vote again is no change
    await log.save_vote(Vote(10, 10, committed=True))
    with expect_raises(ValueError, "an uncommitted vote after a committed one"):
        await log.save_vote(Vote(10, 10))
    with expect_raises(ValueError, "another leader's committed vote in the same term"):
        await log.save_vote(Vote(10, 3, committed=True))
    expect(await log.read_vote(), Vote(10, 10, committed=True), "vote after refusals")
    await log.save_vote(Vote(11, 0))
    await log.save_vote(Vote(11, 4))
    expect(await log.read_vote(), Vote(11, 4), "a newer term, then a candidate in it")


@case
async def misuse_vote_committed_in_same_term(ctx: SuiteContext) -> None:
    """Within a term a vote may move from nobody to a candidate, and to a committed vote for
    the leader that won (openraft's committed vote), whoever this node voted for."""
    await ctx.log.save_vote(Vote(5, 0))
    await ctx.log.save_vote(Vote(5, 2))
    await ctx.log.save_vote(Vote(5, 3, committed=True))
    expect(await ctx.log.read_vote(), Vote(5, 3, committed=True), "vote")


@case
async def misuse_empty_append_is_refused(ctx: SuiteContext) -> None:
    """An empty append is refused (openraft df_append_to_log_nonempty_input)."""
    with expect_raises(ValueError, "append([]) to an empty log"):
        await ctx.log.append([])
    await ctx.log.append([blank(1, 1)])
    before = await _log_snapshot(ctx.log)
    with expect_raises(ValueError, "append([])"):
        await ctx.log.append([])
    expect(await _log_snapshot(ctx.log), before, "log after a refused empty append")


@case
async def misuse_gap_inside_a_batch_is_refused(ctx: SuiteContext) -> None:
    """A batch whose indexes skip or repeat anywhere inside it, or whose terms decrease, is
    refused whole, even when its ends look right (openraft
    df_append_to_log_nonconsecutive_input)."""
    log = ctx.log
    await log.append([blank(1, 1)])
    before = await _log_snapshot(log)
    for what, batch in (
            ("1 then 3", [blank(1, 2), blank(1, 4)]),
            ("a gap in the middle, right length", [blank(1, 2), blank(1, 4), blank(1, 4)]),
            ("a repeat", [blank(1, 2), blank(1, 2), blank(1, 4)]),
            ("terms going down inside", [blank(1, 2), blank(3, 3), blank(2, 4), blank(3, 5)])):
        with expect_raises(ValueError, f"append of a batch with {what}"):
            await log.append(batch)
        expect(await _log_snapshot(log), before, f"log after refusing {what}")
    await log.append([blank(1, 2), blank(2, 3)])
    expect((await log.get_log_state()).last_log_id, LogId(2, 3), "a good batch still appends")


@case
async def misuse_append_not_next_is_refused(ctx: SuiteContext) -> None:
    """An append that is not at the next index is refused, also when the state machine is
    ahead (openraft df_append_to_log_eq_last_plus_one, _eq_last_applied_plus_one)."""
    log = ctx.log
    await log.append([blank(1, 1), blank(1, 2)])
    await ctx.sm.apply([blank(1, 1), blank(1, 2)])
    before = await _log_snapshot(log)
    for index in (4, 2, 0):
        with expect_raises(ValueError, f"append at {index} after 2"):
            await log.append([blank(3, index)])
    expect(await _log_snapshot(log), before, "log after refused appends")


@case
async def misuse_append_below_last_term_is_refused(ctx: SuiteContext) -> None:
    """An entry whose term is below the log's last term is refused, also right after a
    purge of everything (openraft df_append_to_log_gt_last_log_id, _gt_last_applied_id)."""
    log = ctx.log
    await log.append([blank(2, 1), blank(2, 2)])
    before = await _log_snapshot(log)
    with expect_raises(ValueError, "append (1, 3) after (2, 2)"):
        await log.append([blank(1, 3)])
    expect(await _log_snapshot(log), before, "log after a refused append")
    await log.purge(LogId(2, 2))
    before = await _log_snapshot(log)
    with expect_raises(ValueError, "append (1, 3) after purging up to (2, 2)"):
        await log.append([blank(1, 3)])
    expect(await _log_snapshot(log), before, "purged log after a refused append")


@case
async def misuse_purge_past_committed_is_refused(ctx: SuiteContext) -> None:
    """Only committed entries may be purged (openraft df_purge_applied_le_last_applied): with
    a committed id saved, a purge past it is refused and changes nothing."""
    log = ctx.log
    await log.append([blank(1, 1), blank(3, 2), blank(3, 3)])
    await ctx.sm.apply([blank(1, 1), blank(3, 2)])
    await log.save_committed(LogId(3, 2))
    if await log.read_committed() is None:
        return  # the store keeps no committed id: nothing to check against
    before = await _log_snapshot(log)
    for upto in (LogId(3, 3), LogId(5, 9)):
        with expect_raises(ValueError, f"purge({upto}) with committed (3, 2)"):
            await log.purge(upto)
        expect(await _log_snapshot(log), before, f"log after refusing purge({upto})")
    await log.purge(LogId(3, 2))
    expect(await log.get_log_state(), LogState(LogId(3, 2), LogId(3, 3)),
           "a purge up to the committed id")


@case
async def misuse_truncate_committed_is_refused(ctx: SuiteContext) -> None:
    """Committed entries are never truncated (Raft §5.4; openraft
    df_delete_conflict_gt_last_applied): a truncation at or below the saved committed id is
    refused and changes nothing."""
    log = ctx.log
    await log.append([blank(1, i) for i in range(1, 6)])
    await log.save_committed(LogId(1, 3))
    if await log.read_committed() is None:
        return
    before = await _log_snapshot(log)
    for since in (3, 1):
        with expect_raises(ValueError, f"truncate({since}) with committed (1, 3)"):
            await log.truncate(since)
        expect(await _log_snapshot(log), before, f"log after refusing truncate({since})")
    await log.truncate(4)
    expect((await log.get_log_state()).last_log_id, LogId(1, 3), "truncate(4) past committed")


@case
async def misuse_apply_empty_or_not_next_is_refused(ctx: SuiteContext) -> None:
    """An apply that is empty, repeats the last applied entry, skips one, has a gap inside,
    or goes down in term is refused and applies nothing (openraft df_apply_nonempty_input,
    df_apply_index_eq_last_applied_plus_one, df_apply_gt_last_applied_id)."""
    sm = ctx.sm
    with expect_raises(ValueError, "apply([]) on a new machine"):
        await sm.apply([])
    await sm.apply([blank(1, 1), blank(3, 2)])
    before = await sm.applied_state()
    for what, batch in (
            ("nothing", []),
            ("the last applied entry again", [blank(3, 2)]),
            ("a skipped entry", [blank(3, 4)]),
            ("a gap inside the batch", [blank(3, 3), blank(3, 5), blank(3, 5)]),
            ("a term below the last applied", [blank(2, 3)]),
            ("terms going down inside", [blank(3, 3), blank(4, 4), blank(3, 5)])):
        with expect_raises(ValueError, f"apply of {what}"):
            await sm.apply(batch)
        expect(await sm.applied_state(), before, f"applied state after refusing {what}")
    expect(await sm.apply([normal(3, 3, ctx.payload(3))]), [ctx.response(3)],
           "a good apply after the refusals")

