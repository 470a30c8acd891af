"""Conformance cases for the state machine and for what a node reads at start: initial
state, memberships in the log and in the state machine, apply, snapshots.

Each case starts on a fresh, empty pair (``ctx.log``, ``ctx.sm``).
"""

from __future__ import annotations

from ..errors import CodecError
from ..storage import recovery
from ..storage.recovery import recover_state, read_membership_state
from ..types import LogId, StoredMembership, Vote
from .helpers import blank, expect, expect_raises, member, members, normal, stored
from .storage_suite import SuiteContext, case

_EMPTY = StoredMembership()


# -- initial state (openraft get_initial_state_*) ------------------------------------------------


@case
async def initial_state_without_data(ctx: SuiteContext) -> None:
    """New stores start from nothing: default vote, empty log, nothing applied."""
    got = await recover_state(ctx.log, ctx.sm)
    expect((got.vote, got.last_purged_log_id, got.last_log_id, got.committed, got.last_applied),
           (Vote(), None, None, None, None), "initial state of new stores")
    expect((got.membership.committed, got.membership.effective), (_EMPTY, _EMPTY),
           "initial memberships of new stores")


@case
async def initial_state_with_data(ctx: SuiteContext) -> None:
    """The vote, the log's end and the state machine's progress are read back."""
    await ctx.log.save_vote(Vote(1, 1))
    await ctx.log.append([blank(1, 1), blank(1, 2), blank(3, 3)])
    await ctx.sm.apply([blank(1, 1)])
    got = await recover_state(ctx.log, ctx.sm)
    expect(got.vote, Vote(1, 1), "vote")
    expect(got.last_log_id, LogId(3, 3), "last log id")
    expect(got.last_applied, LogId(1, 1), "last applied")
    expect(got.committed, LogId(1, 1), "committed (at least what was applied)")


@case
async def initial_state_membership_from_log_and_sm(ctx: SuiteContext) -> None:
    """The effective membership comes from the log only after the last applied entry."""
    await ctx.log.append([member(1, 1, 1, 2, 3), blank(1, 2)])
    await ctx.sm.apply([blank(1, 1), member(1, 2, 3, 4, 5)])
    got = await recover_state(ctx.log, ctx.sm)
    expect(got.membership.effective, stored(1, 2, 3, 4, 5),
           "log membership at or before last applied is ignored")
    await ctx.log.append([member(1, 3, 1, 2, 3)])
    got = await recover_state(ctx.log, ctx.sm)
    expect(got.membership.effective, stored(1, 3, 1, 2, 3), "log membership after last applied")
    expect(got.membership.committed, stored(1, 2, 3, 4, 5), "committed: the state machine's")


@case
async def initial_state_log_ahead_of_sm(ctx: SuiteContext) -> None:
    """A log longer than what was applied keeps its end."""
    await ctx.log.append([blank(1, 1), blank(1, 2), blank(2, 3), blank(2, 4), blank(2, 5)])
    await ctx.sm.apply([blank(1, 1), blank(1, 2)])
    got = await recover_state(ctx.log, ctx.sm)
    expect((got.last_log_id, got.last_applied), (LogId(2, 5), LogId(1, 2)),
           "last log id and last applied")


@case
async def initial_state_log_behind_sm(ctx: SuiteContext) -> None:
    """A log that ends before the last applied entry (a snapshot was installed) is purged up
    to it, so the log continues where the state machine is (Raft §7)."""
    await ctx.log.append([blank(1, 1), blank(1, 2)])
    await ctx.sm.apply([blank(1, 1), blank(1, 2), blank(3, 3), blank(3, 4)])
    got = await recover_state(ctx.log, ctx.sm)
    expect((got.last_log_id, got.last_purged_log_id), (LogId(3, 4), LogId(3, 4)),
           "log state after start with the log behind")
    state = await ctx.log.get_log_state()
    expect((state.last_purged_log_id, state.last_log_id), (LogId(3, 4), LogId(3, 4)),
           "the log store itself")


@case
async def initial_state_reapplies_committed(ctx: SuiteContext) -> None:
    """Entries known committed but not applied are applied at start (if the store keeps the
    committed id)."""
    await ctx.log.save_vote(Vote(1, 1))
    await ctx.log.append([blank(1, i) for i in range(1, 6)])
    await ctx.log.purge(LogId(1, 1))
    await ctx.sm.apply([blank(1, 1), blank(1, 2)])
    await ctx.log.save_committed(LogId(1, 4))
    keeps = await ctx.log.read_committed() is not None
    got = await recover_state(ctx.log, ctx.sm)
    want = LogId(1, 4) if keeps else LogId(1, 2)
    expect(got.last_applied, want, "last applied after start")
    expect((await ctx.sm.applied_state())[0], want, "the state machine's last applied")


# -- memberships (openraft last_membership_in_log*, get_membership_*) ----------------------------


@case
async def last_membership_in_log_initial(ctx: SuiteContext) -> None:
    expect(await recovery.last_membership_in_log(ctx.log, 1), [], "memberships in an empty log")


@case
async def last_membership_in_log(ctx: SuiteContext) -> None:
    """At most the last two MEMBERSHIP entries at or after the given index, oldest first."""
    log = ctx.log
    await ctx.sm.apply([blank(1, 1), member(1, 2, 3, 4, 5)])
    expect(await recovery.last_membership_in_log(log, 1), [], "the state machine's are not the log's")
    await log.append([member(1, 1, 1, 2, 3)])
    expect(await recovery.last_membership_in_log(log, 1), [stored(1, 1, 1, 2, 3)], "since 1")
    expect(await recovery.last_membership_in_log(log, 2), [], "since 2")
    await log.append([blank(1, 2), member(1, 3, 7, 8, 9), blank(1, 4)])
    expect(await recovery.last_membership_in_log(log, 1), [stored(1, 1, 1, 2, 3), stored(1, 3, 7, 8, 9)],
           "two memberships")
    expect(await recovery.last_membership_in_log(log, 4), [], "since 4, past both")
    await log.append([member(1, 5, 10, 11)])
    expect(await recovery.last_membership_in_log(log, 1), [stored(1, 3, 7, 8, 9), stored(1, 5, 10, 11)],
           "three in the log: the last two")


@case
async def last_membership_in_log_multi_step(ctx: SuiteContext) -> None:
    """Finding memberships far apart takes more than one backward read."""
    await ctx.log.append([member(1, 1, 1, 2, 3), member(1, 2, 3, 4, 5)]
                         + [blank(1, i) for i in range(3, 1200)] + [member(1, 1200, 5, 6, 7)])
    expect(await recovery.last_membership_in_log(ctx.log, 1), [stored(1, 2, 3, 4, 5),
                                                      stored(1, 1200, 5, 6, 7)],
           "memberships at 2 and 1200")


@case
async def membership_initial(ctx: SuiteContext) -> None:
    got = await read_membership_state(ctx.log, ctx.sm)
    expect((got.committed, got.effective), (_EMPTY, _EMPTY), "memberships of new stores")


@case
async def membership_from_log_and_empty_sm(ctx: SuiteContext) -> None:
    await ctx.log.append([member(1, 1, 1, 2, 3)])
    got = await read_membership_state(ctx.log, ctx.sm)
    expect((got.committed, got.effective), (_EMPTY, stored(1, 1, 1, 2, 3)), "memberships")


@case
async def membership_from_empty_log_and_sm(ctx: SuiteContext) -> None:
    await ctx.sm.apply([blank(1, 1), member(1, 2, 3, 4, 5)])
    got = await read_membership_state(ctx.log, ctx.sm)
    expect((got.committed, got.effective), (stored(1, 2, 3, 4, 5),) * 2, "memberships")


@case
async def membership_log_behind_sm(ctx: SuiteContext) -> None:
    """A log membership at or before the last applied entry is the state machine's business."""
    await ctx.sm.apply([blank(1, 1), member(1, 2, 3, 4, 5), blank(1, 3), blank(1, 4)])
    await ctx.log.append([blank(1, 1), blank(1, 2), member(1, 3, 1, 2, 3)])
    got = await read_membership_state(ctx.log, ctx.sm)
    expect((got.committed, got.effective), (stored(1, 2, 3, 4, 5),) * 2, "memberships")


@case
async def membership_log_ahead_of_sm_1(ctx: SuiteContext) -> None:
    """One membership in the log after the last applied: it is effective, not committed."""
    await ctx.sm.apply([blank(1, 1), member(1, 2, 3, 4, 5)])
    await ctx.log.append([member(1, 1, 1, 2, 3), blank(1, 2), member(1, 3, 7, 8, 9)])
    got = await read_membership_state(ctx.log, ctx.sm)
    expect((got.committed, got.effective), (stored(1, 2, 3, 4, 5), stored(1, 3, 7, 8, 9)),
           "memberships")


@case
async def membership_log_ahead_of_sm_2(ctx: SuiteContext) -> None:
    """Two memberships in the log after the last applied: the older is committed."""
    await ctx.sm.apply([blank(1, 1), member(1, 2, 3, 4, 5)])
    await ctx.log.append([member(1, 1, 1, 2, 3), blank(1, 2), member(1, 3, 7, 8, 9),
                          blank(1, 4), member(1, 5, 10, 11)])
    got = await read_membership_state(ctx.log, ctx.sm)
    expect((got.committed, got.effective), (stored(1, 3, 7, 8, 9), stored(1, 5, 10, 11)),
           "memberships")


# -- apply -----------------------------------------------------------------------------------------


@case
async def last_applied_state(ctx: SuiteContext) -> None:
    expect(await ctx.sm.applied_state(), (None, _EMPTY), "applied state of a new machine")
    await ctx.sm.apply([blank(1, 1), blank(1, 2), member(1, 3, 1, 2)])
    expect(await ctx.sm.applied_state(), (LogId(1, 3), stored(1, 3, 1, 2)), "after 1..3")
    await ctx.sm.apply([blank(1, 4), blank(1, 5)])
    expect(await ctx.sm.applied_state(), (LogId(1, 5), stored(1, 3, 1, 2)), "after 4..5")


@case
async def apply_single(ctx: SuiteContext) -> None:
    """One entry at a time: one response each (None for blank and membership)."""
    sm = ctx.sm
    expect(await sm.apply([blank(1, 1)]), [None], "responses to a blank entry")
    expect((await sm.applied_state())[0], LogId(1, 1), "last applied")
    expect(await sm.apply([member(1, 2, 1, 2)]), [None], "responses to a membership entry")
    expect(await sm.applied_state(), (LogId(1, 2), stored(1, 2, 1, 2)), "applied state")
    expect(await sm.apply([normal(2, 3, ctx.payload(3))]), [ctx.response(3)],
           "responses to a normal entry")
    expect((await sm.applied_state())[0], LogId(2, 3), "last applied")


@case
async def apply_multiple(ctx: SuiteContext) -> None:
    """A batch: one response per entry, in order; memberships included."""
    got = await ctx.sm.apply([blank(1, 1), member(1, 2, 1, 2), normal(1, 3, ctx.payload(3)),
                              normal(1, 4, ctx.payload(4))])
    expect(got, [None, None, ctx.response(3), ctx.response(4)], "responses")
    expect(await ctx.sm.applied_state(), (LogId(1, 4), stored(1, 2, 1, 2)), "applied state")


@case
async def apply_unparsable_payload(ctx: SuiteContext) -> None:
    """A committed payload the application cannot parse is answered, not raised: every
    replica must go past it the same way."""
    got = await ctx.sm.apply([normal(1, 1, ctx.suite.bad_payload()), blank(1, 2)])
    expect(len(got), 2, "one response per entry")
    expect((await ctx.sm.applied_state())[0], LogId(1, 2), "last applied")


# -- snapshots -------------------------------------------------------------------------------------


async def _read_all(snapshot, chunk_bytes: int = 7) -> bytes:
    parts = []
    for _ in range(1 << 24):  # bounded: a snapshot of the cases is far smaller
        chunk = snapshot.data.read(chunk_bytes)
        if not chunk:
            break
        parts.append(chunk)
    snapshot.close()
    return b"".join(parts)


@case
async def snapshot_meta(ctx: SuiteContext) -> None:
    """A built snapshot covers the last applied entry and the last membership."""
    await ctx.sm.apply([member(1, 1, 1, 2)])
    snap = await ctx.sm.build_snapshot()
    snap.close()
    expect((snap.meta.last_log_id, snap.meta.last_membership), (LogId(1, 1), stored(1, 1, 1, 2)),
           "snapshot meta after 1")
    await ctx.sm.apply([blank(1, 2), member(2, 3, 3, 4)])
    snap = await ctx.sm.build_snapshot()
    snap.close()
    expect((snap.meta.last_log_id, snap.meta.last_membership), (LogId(2, 3), stored(2, 3, 3, 4)),
           "snapshot meta after 3")


@case
async def snapshot_build_install_current(ctx: SuiteContext) -> None:
    """Build on one machine, stream it in chunks to another, install, and both agree
    (openraft's transfer_snapshot)."""
    leader = ctx.sm
    _, follower = await ctx.open_pair()
    expect(await leader.get_current_snapshot(), None, "current snapshot of a new machine")
    await leader.apply([member(1, 1, 1, 2, 3)] + [normal(1, i, ctx.payload(i)) for i in range(2, 40)]
                       + [blank(3, 40)])
    built = await leader.build_snapshot()
    data = await _read_all(built)
    expect((built.meta.last_log_id, built.meta.last_membership),
           (LogId(3, 40), stored(1, 1, 1, 2, 3)), "built snapshot meta")
    current = await leader.get_current_snapshot()
    expect(current is not None and current.meta, built.meta, "leader's current snapshot meta")
    expect(await _read_all(current), data, "leader's current snapshot bytes")

    sink = await follower.begin_receiving_snapshot()
    for offset in range(0, len(data), 1000):
        sink.write(data[offset:offset + 1000])
    await follower.install_snapshot(built.meta, sink)
    got = await follower.get_current_snapshot()
    expect(got is not None and got.meta, built.meta, "follower's current snapshot meta")
    if got is not None:
        got.close()
    expect(await follower.applied_state(), (LogId(3, 40), stored(1, 1, 1, 2, 3)),
           "follower's applied state after install")
    expect(await follower.apply([normal(3, 41, ctx.payload(41))]), [ctx.response(41)],
           "apply after install continues at 41")


@case
async def snapshot_install_replaces_state(ctx: SuiteContext) -> None:
    """Installing replaces whatever the machine had applied, ahead or behind."""
    source, target = ctx.sm, (await ctx.open_pair())[1]
    await source.apply([member(1, 1, 1, 2), blank(1, 2)])
    built = await source.build_snapshot()
    data = await _read_all(built)
    await target.apply([member(1, 1, 5, 6), blank(1, 2), blank(1, 3), blank(1, 4)])
    sink = await target.begin_receiving_snapshot()
    sink.write(data)
    await target.install_snapshot(built.meta, sink)
    expect(await target.applied_state(), (LogId(1, 2), stored(1, 1, 1, 2)),
           "applied state after installing an older snapshot")


@case
async def snapshot_install_rejects_garbage(ctx: SuiteContext) -> None:
    """Bytes that are not a snapshot raise CodecError and change nothing."""
    sm = ctx.sm
    await sm.apply([member(1, 1, 1, 2), blank(1, 2)])
    built = await sm.build_snapshot()
    data = await _read_all(built)
    bad_meta = built.meta
    for garbage in (b"", b"garbage" * 10, data[: len(data) // 2],
                    data[:-1] + bytes([data[-1] ^ 0xFF])):
        sink = await sm.begin_receiving_snapshot()
        sink.write(garbage)
        with expect_raises(CodecError, f"install of {len(garbage)} bad bytes"):
            await sm.install_snapshot(bad_meta, sink)
        expect(await sm.applied_state(), (LogId(1, 2), stored(1, 1, 1, 2)),
               "applied state after a refused install")
    current = await sm.get_current_snapshot()
    expect(current is not None and current.meta, built.meta, "current snapshot unchanged")
    expect(await _read_all(current), data, "current snapshot bytes unchanged")


@case
async def snapshot_meta_refers_to_membership(ctx: SuiteContext) -> None:
    """A snapshot's membership is the latest one applied, not the latest entry."""
    await ctx.sm.apply([member(1, 1, 1, 2, 3), normal(1, 2, ctx.payload(2)), blank(2, 3)])
    snap = await ctx.sm.build_snapshot()
    snap.close()
    expect(snap.meta.last_membership, stored(1, 1, 1, 2, 3), "snapshot membership")
    expect(snap.meta.last_membership.membership, members(1, 2, 3), "membership content")

