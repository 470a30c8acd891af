"""Conformance cases for stores that persist: every completed write survives closing and
reopening the stores ("the caller always assumes a completed write is persistent")."""

from __future__ import annotations

from ..storage.protocols import LogState
from ..types import LogId, Vote
from .helpers import blank, expect, ids, member, normal, stored
from .storage_suite import SuiteContext, durable_case


@durable_case
async def durable_log_survives_reopen(ctx: SuiteContext) -> None:
    """Vote, entries, truncation, purge and committed id read back after a reopen."""
    log = ctx.log
    await log.save_vote(Vote(3, 2, committed=True))
    await log.append([blank(1, i) for i in range(1, 8)])
    await log.append([member(2, 8, 1, 2), normal(2, 9, ctx.payload(9)), blank(2, 10)])
    await log.purge(LogId(1, 3))
    await log.truncate(10)
    await log.save_committed(LogId(2, 8))
    keeps_committed = await log.read_committed() is not None
    before = await log.read_entries(0, 100)
    await ctx.reopen()
    log = ctx.log
    expect(await log.read_vote(), Vote(3, 2, committed=True), "vote after reopen")
    expect(await log.get_log_state(), LogState(LogId(1, 3), LogId(2, 9)),
           "log state after reopen")
    expect(await log.read_entries(0, 100), before, "entries after reopen")
    expect(ids(before), [(1, i) for i in range(4, 8)] + [(2, 8), (2, 9)], "entries kept")
    if keeps_committed:
        expect(await log.read_committed(), LogId(2, 8), "committed id after reopen")
    await log.append([blank(3, 10)])
    expect((await log.get_log_state()).last_log_id, LogId(3, 10), "append after reopen")


@durable_case
async def durable_empty_log_after_purge_survives_reopen(ctx: SuiteContext) -> None:
    """A log purged past its end reopens empty, continuing after the purge point."""
    await ctx.log.append([blank(1, i) for i in range(1, 6)])
    await ctx.log.purge(LogId(2, 9))
    await ctx.reopen()
    expect(await ctx.log.get_log_state(), LogState(LogId(2, 9), LogId(2, 9)), "log state")
    expect(await ctx.log.read_entries(0, 100), [], "entries")
    await ctx.log.append([blank(2, 10)])
    expect(ids(await ctx.log.read_entries(0, 100)), [(2, 10)], "append after reopen")


@durable_case
async def durable_state_machine_survives_reopen(ctx: SuiteContext) -> None:
    """Applied state, memberships and the current snapshot read back after a reopen."""
    sm = ctx.sm
    await sm.apply([member(1, 1, 1, 2, 3)] + [normal(1, i, ctx.payload(i)) for i in range(2, 6)])
    snap = await sm.build_snapshot()
    data = snap.data.read()
    snap.close()
    await sm.apply([blank(2, 6), member(2, 7, 1, 2)])
    await ctx.reopen()
    sm = ctx.sm
    expect(await sm.applied_state(), (LogId(2, 7), stored(2, 7, 1, 2)), "applied state")
    current = await sm.get_current_snapshot()
    expect(current is not None and current.meta, snap.meta, "current snapshot meta")
    if current is not None:
        expect(current.data.read(), data, "current snapshot bytes")
        current.close()
    expect(await sm.apply([normal(2, 8, ctx.payload(8))]), [ctx.response(8)],
           "apply after reopen continues at 8")


@durable_case
async def durable_installed_snapshot_survives_reopen(ctx: SuiteContext) -> None:
    """An installed snapshot is the state, and the current snapshot, after a reopen."""
    _, source = await ctx.open_pair()
    await source.apply([member(1, 1, 1, 2)] + [normal(1, i, ctx.payload(i)) for i in range(2, 20)])
    built = await source.build_snapshot()
    sink = await ctx.sm.begin_receiving_snapshot()
    sink.write(built.data.read())
    built.close()
    await ctx.sm.install_snapshot(built.meta, sink)
    await ctx.reopen()
    expect(await ctx.sm.applied_state(), (LogId(1, 19), stored(1, 1, 1, 2)), "applied state")
    current = await ctx.sm.get_current_snapshot()
    expect(current is not None and current.meta, built.meta, "current snapshot meta")
    if current is not None:
        current.close()
