"""The log's shape, pure-Python twin of ``fastraft.accel.compiled.log_terms`` (this file is
the spec): the last log id, the last purged log id, and the terms of the entries between them
as runs, with the lookups the engine makes on every message: the term at an index, the first
and last index of a term (the hints of fast backtracking, Raft §5.3), the first conflict
between incoming entries and the log, and the checks on a leader's entries.

Terms change rarely, so terms are stored as runs: run k covers the indexes
[run_start[k], run_start[k+1]) (the last run ends at ``last_index``) and all of them have
term run_term[k]. A lookup is a binary search over the runs: O(log runs).

Invariant: purged_index <= last_index; the log holds the indexes (purged_index, last_index].
Invariant: runs cover (purged_index, last_index] exactly, starts and terms strictly increase,
    no run is empty; an empty log (last_index == purged_index) has no run.
Invariant: last_term == term of last_index (purged_term when the log is empty).

``LogTerms`` is the base of ``LogCache`` (log_cache) and ``LogIndex`` (log_index), whose
changes keep the runs and the cache in step.
"""

from __future__ import annotations

from bisect import bisect_right

__all__ = ["LogTerms", "KIND_MEMBERSHIP"]

#: The entry kind whose indexes ``check_entries`` reports (``EntryKind.MEMBERSHIP``).
KIND_MEMBERSHIP = 2


class LogTerms:
    """The last log id, the last purged log id and the term runs of one node's log.

    Read-only attributes: ``last_index``, ``last_term`` (the last log id; (0, 0) for an empty
    log that was never purged), ``purged_index``, ``purged_term`` (the last purged log id,
    (0, 0) if none).
    """

    __slots__ = ("last_index", "last_term", "purged_index", "purged_term",
                 "_run_start", "_run_term")

    def __init__(self) -> None:
        """An empty log: last and purged log id (0, 0), no run."""
        self.last_index = 0
        self.last_term = 0
        self.purged_index = 0
        self.purged_term = 0
        self._run_start: list[int] = []
        self._run_term: list[int] = []

    # -- reading -------------------------------------------------------------------------------

    @property
    def first_index(self) -> int:
        """The first index the log may hold: purged_index + 1 (the log may be empty). O(1)."""
        return self.purged_index + 1

    @property
    def run_count(self) -> int:
        """Number of term runs in the log. O(1)."""
        return len(self._run_start)

    def term_runs(self) -> list[tuple[int, int]]:
        """The runs as (first_index, term) pairs, oldest first. O(runs)."""
        return list(zip(self._run_start, self._run_term))

    def term_at(self, index: int) -> int:
        """The term of the entry at ``index``; ``purged_term`` at ``purged_index``.

        Raises IndexError unless purged_index <= index <= last_index. O(log runs).
        """
        if index == self.purged_index:
            return self.purged_term
        if index < self.purged_index or index > self.last_index:
            raise IndexError(
                f"index {index} outside the log [{self.purged_index}, {self.last_index}]")
        return self._run_term[bisect_right(self._run_start, index) - 1]

    def matches(self, index: int, term: int) -> bool:
        """Whether the log has an entry (term, index): the AppendEntries consistency check
        (Raft §5.3).

        Indexes below ``purged_index`` match any term: purged entries were committed and a
        committed entry is in every later leader's log (Raft §5.4, Leader Completeness).
        False when index > last_index. Raises ValueError on a negative index. O(log runs).
        """
        if index < 0:
            raise ValueError(f"index must be >= 0, got {index}")
        if index < self.purged_index:
            return True
        if index > self.last_index:
            return False
        return self.term_at(index) == term

    def first_index_of_term(self, term: int) -> int:
        """The first index in the log (> purged_index) whose entry has ``term``, or 0 when no
        entry of the log has that term. The follower's hint on a rejection (Raft §5.3).
        O(log runs)."""
        k = bisect_right(self._run_term, term) - 1
        if k >= 0 and self._run_term[k] == term:
            return self._run_start[k]
        return 0

    def last_index_of_term(self, term: int) -> int:
        """The last index in the log whose entry has ``term``, or 0 when no entry of the log
        has that term. The leader's answer to a hint: resume after its own last entry of the
        follower's conflicting term (Raft §5.3). O(log runs)."""
        k = bisect_right(self._run_term, term) - 1
        if k >= 0 and self._run_term[k] == term:
            if k + 1 < len(self._run_start):
                return self._run_start[k + 1] - 1
            return self.last_index
        return 0

    def find_conflict(self, entries: list) -> int:
        """The index of the first entry of ``entries`` that the log lacks or holds with another
        term, or 0 when the log already holds all of them (Raft §5.3, receiver step 3).

        ``entries`` must be contiguous (each index one more than the previous); entries at or
        below ``purged_index`` count as held. Raises ValueError if they are not contiguous.
        O(len(entries) * log runs).
        """
        n = len(entries)
        if n == 0:
            return 0
        first = entries[0].index
        for k in range(n):
            if entries[k].index != first + k:
                raise ValueError("entries are not contiguous")
        purged = self.purged_index
        last = self.last_index
        for k in range(n):
            e = entries[k]
            i = e.index
            if i <= purged:
                continue
            if i > last or self.term_at(i) != e.term:
                return i
        return 0

    def check_entries(self, entries: list, prev_index: int, prev_term: int, max_term: int) -> list[int]:
        """Check that ``entries`` can follow (prev_term, prev_index) in a leader's log of term
        ``max_term``: contiguous from prev_index + 1, terms >= max(prev_term, 1), never
        decreasing, at most max_term. Reads nothing of the log: a follower runs it on an
        incoming AppendEntries before it truncates anything.

        Returns the indexes of the entries of kind MEMBERSHIP, usually []. Raises ValueError
        naming the first bad entry. O(len(entries)).
        """
        term = prev_term if prev_term > 1 else 1
        members: list[int] = []
        for k in range(len(entries)):
            e = entries[k]
            if e.index != prev_index + 1 + k:
                raise ValueError(
                    f"entry index {e.index} does not follow at {prev_index + 1 + k}")
            if e.term < term or e.term > max_term:
                raise ValueError(
                    f"entry {e.index} has term {e.term}, outside [{term}, {max_term}]")
            term = e.term
            if e.kind == KIND_MEMBERSHIP:
                members.append(e.index)
        return members

    # -- changing the runs ---------------------------------------------------------------------

    def _cut_runs_after(self, index: int) -> None:
        # The runs and last_term of a log ending at ``index``. Requires
        # purged_index <= index < last_index; last_index is the caller's to set.
        if index == self.purged_index:
            del self._run_start[:]
            del self._run_term[:]
            self.last_term = self.purged_term
        else:
            k = bisect_right(self._run_start, index) - 1
            del self._run_start[k + 1:]
            del self._run_term[k + 1:]
            self.last_term = self._run_term[k]

    def _cut_runs_upto(self, index: int) -> None:
        # The runs of a log purged up to ``index``, and (purged_term, purged_index). Requires
        # purged_index < index <= last_index.
        term = self.term_at(index)
        if index == self.last_index:
            del self._run_start[:]
            del self._run_term[:]
        else:
            k = bisect_right(self._run_start, index + 1) - 1
            del self._run_start[:k]
            del self._run_term[:k]
            self._run_start[0] = index + 1
        self.purged_index = index
        self.purged_term = term
