"""What a node reads back from its stores when it starts (openraft's StorageHelper), written
once on top of the protocols so that every backend gets it right the same way.

* ``read_entry``: one entry, or None.
* ``last_membership_in_log``: the last (at most two) MEMBERSHIP entries at or after an index.
* ``read_membership_state``: the committed and the effective membership (Raft §6: a node
  uses the latest configuration in its log, committed or not).
* ``recover_state``: the vote, the log's ends, the state machine's progress and the
  memberships; re-applies entries known committed but not yet applied, and reconciles a log
  that is behind its state machine (a snapshot was installed, the log not yet purged).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..core.guard import check_persisted_bound
from ..errors import CodecError, StorageError
from ..types import EntryKind, LogId, Membership, StoredMembership, Vote
from .protocols import LogStore, StateMachine

__all__ = [
    "read_entry",
    "last_membership_in_log",
    "MembershipState",
    "read_membership_state",
    "RecoveredState",
    "recover_state",
]

#: Entries read per step when scanning or re-applying (bounds memory at start-up).
SCAN_CHUNK_ENTRIES = 512


async def read_entry(store: LogStore, index: int):
    """The entry at ``index``, or None if the log does not hold it (purged or past the end)."""
    got = await store.read_entries(index, index + 1)
    return got[0] if got else None


def _membership_of(entry) -> StoredMembership:
    try:
        membership = Membership.from_bytes(entry.payload)
    except CodecError as e:
        raise StorageError(f"membership entry {entry.index} does not decode: {e}") from None
    return StoredMembership(LogId(entry.term, entry.index), membership)


async def last_membership_in_log(store: LogStore, since_index: int) -> list[StoredMembership]:
    """The last two (or fewer) MEMBERSHIP entries of the log with index >= ``since_index``,
    oldest first.

    Two are enough: at most one membership change is uncommitted at a time (thesis §4.1),
    so the last one is the effective membership and the one before it the committed one.
    Scans backwards from the end in chunks of SCAN_CHUNK_ENTRIES.
    """
    state = await store.get_log_state()
    if state.last_log_id is None:
        return []
    first = 1 if state.last_purged_log_id is None else state.last_purged_log_id.index + 1
    floor = max(since_index, first)
    found: list[StoredMembership] = []
    hi = state.last_log_id.index + 1
    while hi > floor and len(found) < 2:
        lo = max(floor, hi - SCAN_CHUNK_ENTRIES)
        chunk = await store.read_entries(lo, hi)
        for entry in reversed(chunk):
            if entry.kind == EntryKind.MEMBERSHIP:
                found.append(_membership_of(entry))
                if len(found) == 2:
                    break
        hi = lo
    found.reverse()
    return found


@dataclass(frozen=True, slots=True)
class MembershipState:
    """``committed``: the latest membership known committed; ``effective``: the latest in the
    log, which a node uses as soon as it is appended (Raft §6). Equal when no change is in
    flight."""

    committed: StoredMembership
    effective: StoredMembership


async def read_membership_state(store: LogStore, sm: StateMachine) -> MembershipState:
    """The memberships a node starts with: the state machine's (applied, hence committed)
    and up to two from the log after the state machine's last applied entry. Entries at or
    before ``last_applied`` are never read from the log: the state machine has them."""
    last_applied, sm_membership = await sm.applied_state()
    since = 1 if last_applied is None else last_applied.index + 1
    in_log = await last_membership_in_log(store, since)
    if len(in_log) == 2:
        return MembershipState(in_log[0], in_log[1])
    if len(in_log) == 1:
        return MembershipState(sm_membership, in_log[0])
    return MembershipState(sm_membership, sm_membership)


@dataclass(frozen=True, slots=True)
class RecoveredState:
    """What a starting node knows from its stores; the runtime builds the engine's
    ``fastraft.core.state.InitialState`` from it (``membership.effective`` is the engine's
    membership, ``membership.committed`` the one before it).

    Invariant: last_applied <= committed (when both exist); the log holds the entries in
    (last_purged_log_id.index, last_log_id.index].
    """

    vote: Vote
    last_purged_log_id: LogId | None
    last_log_id: LogId | None
    committed: LogId | None
    last_applied: LogId | None
    membership: MembershipState


async def recover_state(store: LogStore, sm: StateMachine) -> RecoveredState:
    """Read, and where needed repair, a node's durable state before it starts.

    1. Entries up to the saved committed id but after ``last_applied`` are applied now, in
       chunks: they are committed, so applying them early is safe and lets reads see them.
       The runtime saves the committed id with every append (``LogStore.note_committed``),
       so this is what a crash took from the state machine, up to the commit index the node
       knew at its last append (``fastraft.runtime.startup``).
    2. A log that does not continue the state machine (it ends before ``last_applied``, or
       holds another term at that index: a snapshot was installed and the node crashed
       before the log it replaces was discarded, Raft §7) is emptied and purged up to
       ``last_applied``, so that the log and the state machine agree on where the log
       continues. Its entries after ``last_applied`` conflict with committed ones (Log
       Matching, Raft §5.3), so none of them can be committed.
    Raises StorageError if a committed entry to re-apply is missing from the log, or if a
    persisted term or index is at or beyond the engine's ceiling (``fastraft.core.guard``):
    such a node would crash on its next ``term + 1``, so it must not start.
    """
    vote = await store.read_vote() or Vote()
    committed = await store.read_committed()
    last_applied, _ = await sm.applied_state()
    _check_bounds(vote, committed, last_applied, await store.get_log_state())

    if committed is not None and (last_applied is None or committed.index > last_applied.index):
        next_index = 1 if last_applied is None else last_applied.index + 1
        while next_index <= committed.index:
            hi = min(committed.index + 1, next_index + SCAN_CHUNK_ENTRIES)
            chunk = await store.read_entries(next_index, hi)
            if not chunk or chunk[0].index != next_index or len(chunk) != hi - next_index:
                raise StorageError(
                    f"committed entries [{next_index}, {hi}) are missing from the log: the log "
                    f"store saved committed id {committed} but does not hold them")
            await sm.apply(chunk)
            next_index = hi
        last_applied, _ = await sm.applied_state()

    state = await store.get_log_state()
    last_purged, last_log = state.last_purged_log_id, state.last_log_id
    if last_applied is not None and not await _log_continues(store, state, last_applied):
        # Crash-safe order: cut what follows last_applied first (a crash after it leaves a
        # log that still does not continue, so the next start repairs again), then record
        # that last_applied is committed (a store refuses a purge past its committed id),
        # then purge everything up to last_applied in one step.
        if last_log is not None and last_log.index > last_applied.index:
            await store.truncate(last_applied.index + 1)
        if committed is not None and committed.index < last_applied.index:
            await store.save_committed(last_applied)
        await store.purge(last_applied)
        state = await store.get_log_state()
        last_purged, last_log = state.last_purged_log_id, state.last_log_id

    if committed is None or (last_applied is not None and committed < last_applied):
        committed = last_applied
    membership = await read_membership_state(store, sm)
    return RecoveredState(vote, last_purged, last_log, committed, last_applied, membership)


async def _log_continues(store: LogStore, state, last_applied: LogId) -> bool:
    """True if the log goes on from the state machine's last applied entry: it holds that
    entry with the same term, or it was purged at or past it."""
    purged, last = state.last_purged_log_id, state.last_log_id
    if purged is not None and purged.index >= last_applied.index:
        return True
    if last is None or last.index < last_applied.index:
        return False
    entry = await read_entry(store, last_applied.index)
    return entry is not None and entry.term == last_applied.term


def _check_bounds(vote: Vote, committed, last_applied, state) -> None:
    values = [("saved term", vote.term)]
    for what, lid in (("committed", committed), ("last applied", last_applied),
                      ("last log", state.last_log_id), ("last purged", state.last_purged_log_id)):
        if lid is not None:
            values += [(f"{what} term", lid.term), (f"{what} index", lid.index)]
    for what, value in values:
        problem = check_persisted_bound(what, value)
        if problem:
            raise StorageError(problem)
