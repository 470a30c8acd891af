"""Simulated durable storage of one node: what survives a crash, exactly.

A node's log device takes the engine's log writes (``SaveVote``, ``AppendLog``,
``TruncateLog``, ``PurgeLog``) in the order issued. Each write changes the *volatile* image at
once (what a reader sees, like an OS page cache or an open lmdb transaction) and joins the
*pending* list; a sync makes a prefix of the pending list *durable* (group commit). A crash
keeps the durable image plus, at the simulator's choice, a prefix of the pending writes (the
device may have written some of them before it died, in order, without reporting them), and
loses the rest: un-synced appends, an un-saved vote.

Snapshots are written atomically when built or installed, so the durable snapshot is never
partial; chunks of a snapshot being received are volatile.

Invariant: durable ⊆ volatile in the sense that replaying ``pending`` on ``durable`` gives
``volatile``.
Invariant: a log image holds the indexes (purged.index, last_index], contiguous, terms
never decreasing.
"""

from __future__ import annotations

from fastraft.types import EntryKind, LogId, Membership, SnapshotMeta, StoredMembership, Vote

__all__ = ["ContractError", "LogImage", "SimDisk"]

# Pending-op tags (first element of each pending tuple).
OP_VOTE = 0
OP_APPEND = 1
OP_TRUNCATE = 2
OP_PURGE = 3


class ContractError(Exception):
    """The engine asked storage for something the command contract forbids (a gap in an
    append, a purge not covered by a snapshot, ...). The simulator reports it as a violation."""


class LogImage:
    """A log as a Python list: ``entries[k]`` is the entry at index purged.index + 1 + k."""

    __slots__ = ("purged", "entries")

    def __init__(self, purged: LogId | None = None, entries: list | None = None) -> None:
        self.purged = purged
        self.entries = entries if entries is not None else []

    @property
    def purged_index(self) -> int:
        return self.purged.index if self.purged is not None else 0

    @property
    def last_index(self) -> int:
        return self.purged_index + len(self.entries)

    @property
    def last_log_id(self) -> LogId | None:
        if self.entries:
            e = self.entries[-1]
            return LogId(e.term, e.index)
        return self.purged

    def copy(self) -> "LogImage":
        return LogImage(self.purged, list(self.entries))

    def entry(self, index: int):
        """The entry at ``index``, or None if the image does not hold it."""
        k = index - self.purged_index - 1
        if 0 <= k < len(self.entries):
            return self.entries[k]
        return None

    def term_at(self, index: int) -> int | None:
        if index == self.purged_index:
            return self.purged.term if self.purged is not None else 0
        e = self.entry(index)
        return e.term if e is not None else None

    def read(self, lo: int, hi: int) -> list:
        """Entries [lo, hi) that the image holds, as a prefix (empty if lo is not held)."""
        base = self.purged_index + 1
        if lo < base:
            return []
        return self.entries[lo - base:hi - base]

    def append(self, entries: list) -> None:
        if not entries:
            raise ContractError("AppendLog with no entries")
        nxt = self.last_index + 1
        last_term = self.term_at(self.last_index) or 0
        for e in entries:
            if e.index != nxt:
                raise ContractError(f"AppendLog leaves a gap: entry {e.index}, log ends at "
                                    f"{nxt - 1}")
            if e.term < last_term:
                raise ContractError(f"AppendLog puts term {e.term} at {e.index} after term "
                                    f"{last_term}")
            nxt += 1
            last_term = e.term
        self.entries.extend(entries)

    def truncate(self, since: int) -> None:
        if since <= self.purged_index:
            raise ContractError(f"TruncateLog({since}) reaches purged entries (purged up to "
                                f"{self.purged_index})")
        del self.entries[since - self.purged_index - 1:]

    def purge(self, upto: LogId) -> None:
        if upto.index <= self.purged_index:
            return
        if upto.index <= self.last_index:
            held = self.term_at(upto.index)
            if held != upto.term:
                raise ContractError(f"PurgeLog({upto}) but the log holds term {held} there")
            del self.entries[:upto.index - self.purged_index]
        else:
            self.entries = []
        self.purged = upto

    def term_runs(self) -> tuple[tuple[int, int], ...]:
        """The image as InitialState.log_runs: (term, last_index) runs, oldest first."""
        runs: list[tuple[int, int]] = []
        for e in self.entries:
            if runs and runs[-1][0] == e.term:
                runs[-1] = (e.term, e.index)
            else:
                runs.append((e.term, e.index))
        return tuple(runs)

    def memberships(self, after: int) -> list[StoredMembership]:
        """The MEMBERSHIP entries of the image with index > ``after``, oldest first."""
        out = []
        for e in self.entries:
            if e.index > after and e.kind == EntryKind.MEMBERSHIP:
                out.append(StoredMembership(LogId(e.term, e.index),
                                            Membership.from_bytes(e.payload)))
        return out


def _replay(image: LogImage, vote: Vote, op: tuple) -> Vote:
    tag = op[0]
    if tag == OP_VOTE:
        return op[1]
    if tag == OP_APPEND:
        image.append(op[1])
    elif tag == OP_TRUNCATE:
        image.truncate(op[1])
    else:
        image.purge(op[1])
    return vote


class SimDisk:
    """One node's storage: the log device (vote and log, volatile and durable), the durable
    snapshot, and, when ``durable_sm``, a state machine that survives crashes.

    ``sync_upto(n)`` makes the first ``n`` pending writes durable and says what to report to
    the engine: the vote saved (or None) and the last AppendLog's log id (or None).
    """

    def __init__(self, durable_sm: bool) -> None:
        self.durable_sm = durable_sm
        self.vote = Vote()
        self.durable_vote = Vote()
        self.log = LogImage()
        self.durable_log = LogImage()
        self.pending: list[tuple] = []
        self.snapshot: tuple[SnapshotMeta, bytes] | None = None
        # the durable state machine as (applied LogId or None, state bytes), durable_sm only
        self.sm_image: tuple[LogId | None, bytes] | None = None
        self.syncs = 0

    # -- writes ----------------------------------------------------------------------------------

    def save_vote(self, vote: Vote) -> None:
        self.vote = vote
        self.pending.append((OP_VOTE, vote))

    def append(self, entries: list, last_log_id: LogId) -> None:
        last = entries[-1] if entries else None
        if last is None or LogId(last.term, last.index) != last_log_id:
            raise ContractError(f"AppendLog last_log_id {last_log_id} does not name its last "
                                "entry")
        self.log.append(entries)
        self.pending.append((OP_APPEND, list(entries), last_log_id))

    def truncate(self, since: int) -> None:
        self.log.truncate(since)
        self.pending.append((OP_TRUNCATE, since))

    def purge(self, upto: LogId) -> None:
        snap = self.snapshot
        if snap is None or snap[0].last_log_id is None or snap[0].last_log_id.index < upto.index:
            raise ContractError(f"PurgeLog({upto.term}/{upto.index}) is not covered by a "
                                "durable snapshot")
        self.log.purge(upto)
        self.pending.append((OP_PURGE, upto))

    # -- durability ------------------------------------------------------------------------------

    def sync_upto(self, n: int) -> tuple[Vote | None, LogId | None]:
        """Make pending[:n] durable; returns (vote saved, last appended log id), either None."""
        n = min(n, len(self.pending))
        vote_saved = None
        flushed = None
        image, vote = self.durable_log, self.durable_vote
        for op in self.pending[:n]:
            vote = _replay(image, vote, op)
            if op[0] == OP_VOTE:
                vote_saved = op[1]
            elif op[0] == OP_APPEND:
                flushed = op[2]
        self.durable_vote = vote
        del self.pending[:n]
        self.syncs += 1
        return vote_saved, flushed

    def crash(self, keep_pending: int) -> None:
        """Power loss: the first ``keep_pending`` pending writes reached the platter anyway,
        the rest are gone; the volatile image becomes what is durable."""
        image, vote = self.durable_log, self.durable_vote
        for op in self.pending[:keep_pending]:
            vote = _replay(image, vote, op)
        self.durable_vote = vote
        self.pending = []
        self.vote = vote
        self.log = image.copy()

    # -- snapshots and the state machine ---------------------------------------------------------

    def save_snapshot(self, meta: SnapshotMeta, data: bytes) -> None:
        """A snapshot built or installed, written atomically (tmp file + rename)."""
        self.snapshot = (meta, data)

    def recover(self) -> tuple[LogImage, SnapshotMeta | None]:
        """Start-up repair, as a runtime does it before building the engine: a snapshot
        installed whose log writes did not reach the disk leaves a log that does not continue
        it; keep only what continues the snapshot (Raft §7). Returns the log to start from."""
        log = self.durable_log
        meta = self.snapshot[0] if self.snapshot is not None else None
        sid = meta.last_log_id if meta is not None else None
        if sid is not None and sid.index > log.purged_index:
            if log.term_at(sid.index) == sid.term:
                log.purge(sid)
            else:
                log = LogImage(sid, [])
            self.durable_log = log
        self.log = log.copy()
        return log, meta
