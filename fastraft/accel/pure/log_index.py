"""The log index, pure-Python twin of ``fastraft.accel.compiled.log_index`` (this file is the
spec): the changes to a node's log (append, truncate, purge, reset) that keep its term runs
(``LogTerms``, log_terms) and its cache of the newest entries (``LogCache``, log_cache) in
step. Together they are what the engine consults on every message without reading storage.

Invariant: the invariants of log_terms and log_cache hold after every method.

All methods check their arguments before changing anything: on ValueError or IndexError the
index is unchanged.
"""

from __future__ import annotations

from fastraft.accel.pure.entry import Entry
from fastraft.accel.pure.ints import MAX_U64 as _MAX_U64
from fastraft.accel.pure.log_cache import ENTRY_OVERHEAD_BYTES, LogCache
from fastraft.accel.pure.log_terms import KIND_MEMBERSHIP

__all__ = ["LogIndex", "ENTRY_OVERHEAD_BYTES", "KIND_MEMBERSHIP"]



class LogIndex(LogCache):
    """Index of one node's log: term runs, purge point and a bounded cache of recent entries.

    Read-only attributes: ``last_index``, ``last_term`` (the last log id; (0, 0) for an empty
    log that was never purged), ``purged_index``, ``purged_term`` (the last purged log id,
    (0, 0) if none), ``max_cached_entries``, ``max_cached_bytes``.
    """

    __slots__ = ()

    # -- changing ------------------------------------------------------------------------------

    def append_entries(self, entries: list) -> list[int]:
        """Append ``entries``, which must continue the log: the first at last_index + 1, each
        index one more than the previous, terms >= 1 and never decreasing (from last_term on).
        The entries are cached (evicting the oldest beyond the bounds).

        Returns the indexes of the appended entries of kind MEMBERSHIP, usually []: a
        configuration takes effect as soon as it is in the log (thesis §4.1).
        Raises ValueError if the entries do not continue the log. O(len(entries)).
        """
        n = len(entries)
        if n == 0:
            return []
        expect = self.last_index + 1
        term = self.last_term
        members: list[int] = []
        for k in range(n):
            e = entries[k]
            if e.index != expect + k:
                raise ValueError(
                    f"entry index {e.index} does not continue the log at {expect + k}")
            if e.term < term or e.term == 0:
                raise ValueError(
                    f"entry {e.index} has term {e.term}, below the log's term {term} or zero")
            term = e.term
            if e.kind == KIND_MEMBERSHIP:
                members.append(e.index)
        for k in range(n):
            t = entries[k].term
            if not self._run_term or self._run_term[-1] != t:
                self._run_start.append(expect + k)
                self._run_term.append(t)
        self.last_index = expect + n - 1
        self.last_term = term
        self._cache_extend(entries)
        return members

    def append_payloads(self, term: int, kind: int, payloads: list) -> list:
        """Create and append one entry of ``term`` and ``kind`` per payload, at indexes
        last_index + 1, ...; returns the new entries (a leader's proposals, Raft §5.3).

        Raises ValueError if term < last_term or term == 0, TypeError if a payload is not
        bytes-like, OverflowError if kind does not fit in u8; nothing is appended then.
        O(len(payloads)).
        """
        if term < self.last_term or term == 0:
            raise ValueError(f"term {term} is below the log's term {self.last_term} or zero")
        if term > _MAX_U64:
            raise OverflowError("term must fit in an unsigned 64-bit integer")
        n = len(payloads)
        if n == 0:
            return []
        start = self.last_index + 1
        new = [Entry(term, start + k, kind, payloads[k]) for k in range(n)]
        if not self._run_term or self._run_term[-1] != term:
            self._run_start.append(start)
            self._run_term.append(term)
        self.last_index = start + n - 1
        self.last_term = term
        self._cache_extend(new)
        return new

    def append_term_run(self, term: int, last_index: int) -> None:
        """Declare that the log continues with entries of ``term`` up to ``last_index``,
        without the entries (they are not cached). Rebuilds the index at start from what
        storage holds: reset(purged), then one call per run.

        Raises ValueError unless last_index > self.last_index and term >= max(last_term, 1);
        OverflowError if term or last_index does not fit in u64. O(1).
        """
        if last_index <= self.last_index:
            raise ValueError(f"run end {last_index} does not extend the log past {self.last_index}")
        if term < self.last_term or term == 0:
            raise ValueError(f"term {term} is below the log's term {self.last_term} or zero")
        if term > _MAX_U64 or last_index > _MAX_U64:
            raise OverflowError("term and index must fit in an unsigned 64-bit integer")
        if not self._run_term or self._run_term[-1] != term:
            self._run_start.append(self.last_index + 1)
            self._run_term.append(term)
        self.last_index = last_index
        self.last_term = term
        # the cache must stay a suffix of the log: entries not given cannot be cached
        self._cache_clear()

    def truncate_after(self, index: int) -> None:
        """Delete the entries after ``index``: the log then ends at ``index`` (a follower's
        conflicting suffix, Raft §5.3). No-op when index >= last_index.

        Raises ValueError if index < purged_index (purged entries are committed and can never
        conflict). O(log runs + removed runs + removed cached entries).
        """
        if index >= self.last_index:
            return
        if index < self.purged_index:
            raise ValueError(
                f"cannot truncate after {index}: entries up to {self.purged_index} are purged")
        self._cut_runs_after(index)
        self._cache_cut_after(index)
        self.last_index = index

    def purge_upto(self, index: int) -> None:
        """Forget the entries up to and including ``index`` (log compaction, Raft §7): the last
        purged log id becomes (term_at(index), index). No-op when index <= purged_index.

        Raises IndexError if index > last_index (use ``reset`` to move past the log).
        O(log runs + removed runs).
        """
        if index <= self.purged_index:
            return
        if index > self.last_index:
            raise IndexError(f"cannot purge up to {index}: the log ends at {self.last_index}")
        self._cache_drop_upto(index)
        self._cut_runs_upto(index)

    def reset(self, term: int, index: int) -> None:
        """Make the log empty after (term, index): purged and last log id both become
        (term, index), no run, empty cache. For a snapshot install (Raft §7) and for a start
        from storage. Raises ValueError on a negative value or when exactly one of term and
        index is 0. O(cached)."""
        if term < 0 or index < 0 or (term == 0) != (index == 0):
            raise ValueError(f"bad log id ({term}, {index})")
        if term > _MAX_U64 or index > _MAX_U64:
            raise OverflowError("term and index must fit in an unsigned 64-bit integer")
        del self._run_start[:]
        del self._run_term[:]
        self.purged_index = self.last_index = index
        self.purged_term = self.last_term = term
        self._cache_clear()

    def __repr__(self) -> str:
        return (f"LogIndex(purged=({self.purged_term}, {self.purged_index}), "
                f"last=({self.last_term}, {self.last_index}), runs={self.run_count}, "
                f"cached=[{self.cache_lo}, {self.last_index + 1}))")
