"""The storage contract: what Raft needs from a log store and from a state machine.

Raft is only as safe as its storage. The caller always assumes that a completed write is
persistent: once ``save_vote`` or ``append`` returned (or reported completion), a crash of the
process or of the machine must not lose it. A node promises things to its peers on the
strength of those writes (a granted vote, Raft §5.2; an acknowledged entry, Raft §5.3), and a
lost write breaks the promise and with it the safety of the whole cluster.

The split follows openraft 0.9: a *log store* (``LogStore``) holds the vote and the log, a
*state machine* (``StateMachine``) holds what the committed log has been applied to, plus its
snapshots (Raft §7). Both are abstract base classes of ``async`` methods meant to be called
from trio; a backend may do blocking I/O in worker threads but never on the trio thread for
longer than a memory copy.

Who calls what, and when:

* One writer at a time: the runtime issues mutations (save_vote, append, truncate, purge,
  save_committed) from one place, in order. A store applies mutations in the order they were
  *issued*, even when it writes several of them in one transaction (group commit), and
  reports their completion in that order.
* Reads may come from several tasks at once (replication to several followers), also while
  a write is in progress.
* ``fastraft.testing.StorageSuite`` checks a pair of stores against this contract.

Log indexes start at 1. A range is half-open: [lo, hi) holds lo, lo + 1, ..., hi - 1.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, BinaryIO, Callable, Sequence

from ..types import LogId, SnapshotMeta, StoredMembership, Vote

if TYPE_CHECKING:  # the codec's entry (compiled or its twin, the spec)
    from ..accel.pure.entry import Entry

__all__ = [
    "LogState",
    "LogStore",
    "StateMachine",
    "Snapshot",
    "OnDurable",
    "supports_append_nowait",
]

#: Completion callback of the non-async fast path: called once, on the trio thread, with
#: None when the write is durable or with the StorageError that stopped it.
OnDurable = Callable[[BaseException | None], None]


@dataclass(frozen=True, slots=True)
class LogState:
    """Where the log begins and ends (openraft's LogState).

    ``last_purged_log_id``: the last entry removed by ``purge`` (None: nothing purged yet).
    ``last_log_id``: the last entry in the log; when every entry has been purged it equals
    ``last_purged_log_id``; None only when the log has never held an entry.

    Invariant: the log holds exactly the entries with index in
    [last_purged_log_id.index + 1, last_log_id.index + 1), contiguous, terms non-decreasing.
    """

    last_purged_log_id: LogId | None = None
    last_log_id: LogId | None = None

    @property
    def next_index(self) -> int:
        """The index the next appended entry must carry."""
        return 1 if self.last_log_id is None else self.last_log_id.index + 1


@dataclass(slots=True)
class Snapshot:
    """A snapshot (Raft §7): what it covers (``meta``) and its bytes (``data``).

    ``data`` is a binary file-like object (an open file, or ``io.BytesIO`` for stores that
    keep no files), positioned at 0, readable with ``read(n)`` so that a snapshot is streamed
    in chunks and never needs to fit in memory twice. Whoever receives a Snapshot owns the
    handle and closes it (``close()``); each call that returns a Snapshot opens a new handle.
    """

    meta: SnapshotMeta
    data: BinaryIO

    def close(self) -> None:
        self.data.close()


class LogStore(abc.ABC):
    """The durable half of a Raft node: its vote and its log (Raft Figure 2, §5.2-§5.4, §7).

    Durability: every mutating method is complete only when its effect is durable (synced to
    disk, for a store that persists). A store may gather writes issued while a sync is under
    way into the next sync (group commit); each write still completes only once its own
    data is durable, and writes complete in the order they were issued.

    Invariant: the log is contiguous: no index between the first and the last entry is
    missing, and ``LogState`` describes it exactly.
    Invariant: after a crash and reopen, every mutation that had completed is present, and
    nothing that was never written appears.
    """

    # -- vote (Raft §5.2: currentTerm and votedFor survive a restart) --------------------

    @abc.abstractmethod
    async def save_vote(self, vote: Vote) -> None:
        """Persist ``vote``, replacing the previous one; durable when it returns.

        A vote reply must not leave the node before this returned (Raft §5.2). A vote that
        goes back (a lower term; within a term, another candidate, nobody, or uncommitted
        after committed: ``fastraft.storage.validate.check_vote``) raises ValueError and
        changes nothing."""

    @abc.abstractmethod
    async def read_vote(self) -> Vote | None:
        """The last vote saved (durably), or None if none was ever saved."""

    # -- the log ------------------------------------------------------------------------

    @abc.abstractmethod
    async def get_log_state(self) -> LogState:
        """The last purged and the last log id of the durable log."""

    @abc.abstractmethod
    async def read_entries(self, lo: int, hi: int, max_entries: int | None = None) -> list[Entry]:
        """The entries with index in [lo, hi) that the log holds, in index order.

        Indexes outside the log (purged, or past the end) are skipped, so the result is the
        contiguous run [max(lo, first), min(hi, last + 1)); empty when that is empty
        (including lo >= hi). With ``max_entries``, at most that many from the start of the
        run (a limited read, for bounded replication messages); ``max_entries`` >= 1.
        Raises StorageError if a stored entry fails its checksum (naming the index).
        """

    @abc.abstractmethod
    async def append(self, entries: Sequence[Entry]) -> None:
        """Append ``entries`` (non-empty, contiguous, terms non-decreasing) at the end of the
        log; durable when it returns (Raft §5.3: a follower acknowledges only then).

        The first entry's index must be ``LogState.next_index`` as it will be once every
        previously issued mutation completed; anything else is the caller's bug and raises
        ValueError with nothing written. To overwrite a conflicting suffix, ``truncate``
        first (Raft §5.3).
        """

    def append_nowait(self, entries: Sequence[Entry], on_durable: OnDurable,
                      coalesce: bool = False) -> None:
        """Optional non-async fast path of ``append`` for the runtime's group commit.

        Validates and queues ``entries`` at once (ValueError as ``append``) and returns
        without waiting; ``on_durable(None)`` runs on the trio thread once they are durable
        (``on_durable(error)`` if the store failed). Several calls made while a sync is under
        way are written in the next transaction and synced once. ``on_durable`` must not
        raise and must not block; a store may call it before ``append_nowait`` returns.

        With ``coalesce``, the store may leave out ``on_durable(None)`` of an append when a
        later append, also issued with ``coalesce``, became durable in the same sync: that
        later call stands for both (appends become durable in order), so a caller hears of a
        synced batch once. Failures are reported to every ``on_durable``.

        Backends that offer it override it; ``supports_append_nowait(store)`` tells.
        """
        raise NotImplementedError(f"{type(self).__name__} has no non-async append path")

    @abc.abstractmethod
    async def truncate(self, since_index: int) -> None:
        """Delete the entries with index in [since_index, last + 1): a conflicting suffix
        (Raft §5.3). Durable when it returns. ``since_index`` past the end deletes nothing.

        Only entries that were never committed may be truncated, so ``since_index`` must be
        greater than the last purged index and than the committed index saved with
        ``save_committed``; ValueError otherwise, and nothing changes.
        """

    @abc.abstractmethod
    async def purge(self, upto: LogId) -> None:
        """Delete the entries with index in [first, upto.index + 1): they are covered by a
        snapshot (Raft §7). Afterwards ``last_purged_log_id == upto``, and if ``upto`` is past
        the last entry the log is empty and ``last_log_id == upto``, so the next append must
        carry ``upto.index + 1``.

        The new ``last_purged_log_id`` is durable when this returns; entries may be removed
        physically later (in bounded batches), but are never returned by a read again.
        ``upto`` older than the current last purged id is ignored. Only committed entries
        may be purged: ``upto`` past the committed id saved with ``save_committed`` raises
        ValueError and changes nothing (a store that keeps no committed id cannot check).
        """

    # -- committed index (optional, openraft's save_committed) --------------------------

    async def save_committed(self, committed: LogId | None) -> None:
        """Persist the last known committed log id, so a restart can re-apply committed
        entries at once. Optional: a store that does not keep it ignores the call."""

    async def read_committed(self) -> LogId | None:
        """The committed log id saved last, or None (also for stores that keep none)."""
        return None

    def note_committed(self, committed: LogId) -> None:
        """``committed`` is known committed (and is in the log, or in appends issued after
        this call): write it with the next append, in the same synced write, at no sync of
        its own (etcd writes its HardState's commit with the entries of the same Ready).
        Non-blocking, optional, never durable by itself: a crash may lose it (a restarted
        node then learns the rest from its leader, Raft §5.3). A store that keeps a
        committed id also counts it in the purge check at once. An id not newer than one
        noted or saved before is ignored. Default: ignored."""

    # -- lifecycle ----------------------------------------------------------------------

    @abc.abstractmethod
    async def aclose(self) -> None:
        """Finish every write already issued, then release every resource (files, lmdb
        environments, threads). Further calls raise StorageError. Idempotent."""


class StateMachine(abc.ABC):
    """What the committed log is applied to, and its snapshots (Raft §5.3, §7).

    Entries are applied in log order, each exactly once: ``apply`` is given the entries
    after ``last_applied``. Its effect is visible at once (reads, the responses), but need
    not be durable when it returns: the log store holds every committed entry durably, and
    ``last_applied`` is volatile state in Raft (Figure 2), so a crash may cost the applies
    since the state machine's last durable point and nothing else.

    What a crash may lose: the applies after the last durable point. A store chooses its
    durable points (every apply, or a commit in the background every so often, as etcd's
    backend does and ``fastraft.kv.LmdbKVStateMachine`` does).

    What it must keep:

    * Atomicity: the applied index is stored in the same atomic write as the state it
      describes, so after a crash the state is exactly that of applying every entry up to
      the ``last_applied`` that ``applied_state`` reports, never a mix.
    * Never ahead of the log: the engine applies only entries that are committed and
      durable in this node's log, so whatever a crash leaves is a prefix of the committed
      log that this node's log store holds too (Raft §5.3, §5.4).
    * Snapshots are durable points: ``build_snapshot`` and ``install_snapshot`` return only
      once the state they cover, and every apply before it, is durable. The engine purges
      the log only up to a snapshot (``fastraft.core.snapshot``: purges are capped at the
      last snapshot built or installed), so the log never loses an entry the state machine
      could still lose.

    How the runtime makes up for a loss: at start it reads ``applied_state()`` from the
    freshly opened state machine (what the crash left) and starts the engine there
    (``fastraft.runtime.startup``); entries in (last_applied, committed] are applied again
    from the log: at once up to a committed id the log store saved
    (``fastraft.storage.recover_state``), and the rest as soon as the engine learns the
    commit index (from the leader, or by committing an entry of its own term as leader).

    Invariant: the state equals the result of applying, in order, every entry up to
    ``last_applied``; ``last_membership`` is the latest MEMBERSHIP entry among them (or the
    one carried by the snapshot last installed). After a crash and reopen this holds for
    the ``last_applied`` the reopened store reports.
    """

    #: True if ``build_snapshot`` may run while ``apply`` calls go on: the state machine
    #: copies one consistent applied point by itself (a read transaction, say), and the
    #: snapshot's ``meta.last_log_id`` is that point's, at or after the one when the build
    #: began. The runtime then keeps applying during a build; otherwise every apply waits
    #: until the build returns (a whole-state copy on the path of every write meanwhile).
    concurrent_snapshot_builds: bool = False

    @abc.abstractmethod
    async def applied_state(self) -> tuple[LogId | None, StoredMembership]:
        """(last applied log id or None, last applied membership with its log id)."""

    @abc.abstractmethod
    async def apply(self, entries: Sequence[Entry]) -> list[Any]:
        """Apply committed ``entries`` (contiguous, starting after ``last_applied``) and
        return one response per entry, in order: None for BLANK and MEMBERSHIP entries, the
        application's response for NORMAL ones.

        An empty batch, a gap or repeat (inside the batch or against ``last_applied``), or
        a term below the last applied one is the caller's bug: ValueError, nothing applied.

        A NORMAL payload that the application cannot parse is still committed: every
        replica must treat it the same way, so the response is an error value and the
        state is unchanged; it never raises for it. Raises StorageError if the state could
        not be made durable (this batch's, or an earlier one's written in the background):
        the node then stops.

        Durable: not necessarily when it returns (see the class docstring); a crash may roll
        the state back to an earlier applied index, never to a mix.
        """

    @abc.abstractmethod
    async def build_snapshot(self) -> Snapshot:
        """Snapshot the current state (a consistent copy up to ``last_applied``), make it the
        current snapshot and return it (the caller closes it). ``meta.last_log_id`` is
        ``last_applied`` and ``meta.last_membership`` is ``last_membership`` (of the point
        copied, with ``concurrent_snapshot_builds``).

        Durable when it returns: the snapshot, and the state up to ``meta.last_log_id``
        (the log is purged behind it next)."""

    @abc.abstractmethod
    async def get_current_snapshot(self) -> Snapshot | None:
        """The latest snapshot built or installed, freshly opened, or None if there is none."""

    @abc.abstractmethod
    async def begin_receiving_snapshot(self) -> BinaryIO:
        """An empty, writable (and seekable, readable) binary file-like to receive a
        snapshot's bytes from the leader in chunks; then pass it to ``install_snapshot``."""

    @abc.abstractmethod
    async def install_snapshot(self, meta: SnapshotMeta, data: BinaryIO) -> None:
        """Replace the whole state with the snapshot in ``data`` (read from position 0),
        covering ``meta`` (Raft §7); afterwards ``applied_state()`` is
        (meta.last_log_id, meta.last_membership) and the snapshot is the current one.
        Durable when it returns. ``data`` is consumed: the state machine closes it.

        Bytes that do not form a valid snapshot raise CodecError and change nothing.
        """

    @abc.abstractmethod
    async def aclose(self) -> None:
        """Make every apply durable (a clean stop loses nothing: the durable suite checks
        it), then release every resource. Further calls raise StorageError. Idempotent."""


def supports_append_nowait(store: LogStore) -> bool:
    """True if ``store`` overrides ``LogStore.append_nowait`` (the non-async fast path)."""
    method = getattr(type(store), "append_nowait", None)
    return method is not None and method is not LogStore.append_nowait
