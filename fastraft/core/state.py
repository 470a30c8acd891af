"""What an engine starts from (the durable state the runtime read from storage), and roles."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Generator

from fastraft.types import LogId, SnapshotMeta, StoredMembership, Vote

__all__ = ["Role", "InitialState", "scan_term_runs", "term_run_probes"]


class Role:
    """A node's role (Raft §5.1, plus learners and the pre-vote stage of thesis §9.6)."""

    LEARNER = "learner"  #: not a voter of the effective membership (or not initialized)
    FOLLOWER = "follower"
    PRE_CANDIDATE = "pre_candidate"
    CANDIDATE = "candidate"
    LEADER = "leader"


@dataclass(frozen=True, slots=True)
class InitialState:
    """The durable state an engine starts from; the default is a brand-new node.

    * ``vote``: the saved vote (Raft Figure 2: currentTerm, votedFor).
    * ``purged``: the last purged log id, None if nothing was ever purged.
    * ``log_runs``: the log after ``purged`` as runs ``(term, last_index)``, oldest first:
      entries (prev run's last_index, last_index] all have ``term``. Empty for an empty log.
      ``scan_term_runs`` builds it from a store in O(runs * log n) reads.
    * ``committed``: a commit index the runtime persisted (0 if it does not); the engine also
      takes ``applied`` and the snapshot as committed.
    * ``applied``: the last index the state machine holds (applied, or restored from the
      snapshot). Entries (applied, committed] are applied again after start.
    * ``membership``: the last membership in the log or the snapshot (the effective one);
      ``prev_membership``: the one before it, needed only when ``membership`` may still be
      truncated (its index above the commit index). Only the last membership entry of a log can
      be uncommitted: a leader appends a membership only once its previous one committed.
    * ``snapshot``: the meta of the current snapshot, None if there is none.

    Invariant: every index in log_runs is > purged.index and the runs' terms never decrease.
    """

    vote: Vote = field(default_factory=Vote)
    purged: LogId | None = None
    log_runs: tuple[tuple[int, int], ...] = ()
    committed: int = 0
    applied: int = 0
    membership: StoredMembership = field(default_factory=StoredMembership)
    prev_membership: StoredMembership = field(default_factory=StoredMembership)
    snapshot: SnapshotMeta | None = None

    @property
    def last_log_id(self) -> LogId | None:
        if self.log_runs:
            t, i = self.log_runs[-1]
            return LogId(t, i)
        return self.purged


def term_run_probes(first_index: int, last_index: int
                    ) -> Generator[int, int, tuple[tuple[int, int], ...]]:
    """The binary search of ``scan_term_runs`` without the reads (sans-I/O): yields each index
    whose term it needs, is sent that term back, and returns the runs. A caller with async
    storage drives it with awaited reads, so no thread has to call back into its event loop
    (``fastraft.runtime.startup``)."""
    runs = []
    lo = first_index
    while lo <= last_index:
        term = yield lo
        # the last index in [lo, last_index] whose term is still `term`
        a, b = lo, last_index
        while a < b:
            mid = (a + b + 1) // 2
            if (yield mid) == term:
                a = mid
            else:
                b = mid - 1
        runs.append((term, a))
        lo = a + 1
    return tuple(runs)


def scan_term_runs(first_index: int, last_index: int,
                   term_at: Callable[[int], int]) -> tuple[tuple[int, int], ...]:
    """The runs ``(term, last_index)`` of the entries [first_index, last_index] of a log whose
    terms never decrease, found by binary search with ``term_at(index)`` (a storage read).
    Costs O(runs * log(last_index - first_index)) calls. Empty when first_index > last_index.
    """
    probes = term_run_probes(first_index, last_index)
    try:
        index = next(probes)
        while True:
            index = probes.send(term_at(index))
    except StopIteration as done:
        return done.value
