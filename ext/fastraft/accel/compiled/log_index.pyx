# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, binding=False
"""The log index, compiled: the changes to a log (append, truncate, purge, reset) that keep its
term runs (log_terms) and its cache (log_cache) in step. Twin:
fastraft/accel/pure/log_index.py, which is the spec: same names, signatures, results,
exception types and messages.

``LogIndex`` extends ``LogCache``, which extends ``LogTerms``: the lookups, the cache reads and
the C methods used here are theirs, called as C methods (declared in their .pxd files).

Integer arguments are read as u64 with one C call (ints.pxd); a value outside [0, 2**64) is
treated exactly as the twin treats it. Entries are compiled ``Entry`` objects; any other
object with u64 ``term`` and ``index``, a u8 ``kind`` and a bytes-like ``payload`` is
accepted and converted, so the cache only ever holds and hands out compiled entries.

Invariant: the invariants of the twin; every change checks its arguments and reserves its
    memory before it changes anything.
"""

from cpython.list cimport PyList_GET_ITEM
from libc.stdint cimport uint8_t, uint64_t

from fastraft.accel.compiled.entry cimport Entry, make_entry
from fastraft.accel.compiled.ints cimport MAX_U64, plus1, read_u64
from fastraft.accel.compiled.log_cache cimport LogCache
from fastraft.accel.compiled.log_terms cimport as_bytes, as_list, entry_list, to_entry

from fastraft.accel.compiled.log_cache import ENTRY_OVERHEAD_BYTES
from fastraft.accel.compiled.log_terms import KIND_MEMBERSHIP

__all__ = ["LogIndex", "ENTRY_OVERHEAD_BYTES", "KIND_MEMBERSHIP"]

cdef enum:
    C_KIND_MEMBERSHIP = 2


cdef class LogIndex(LogCache):
    """Index of one node's log: term runs, purge point and a bounded cache of recent entries.

    Read-only attributes: ``last_index``, ``last_term`` (the last log id; (0, 0) for an empty
    log that was never purged), ``purged_index``, ``purged_term`` (the last purged log id,
    (0, 0) if none), ``max_cached_entries``, ``max_cached_bytes``.
    """

    def append_entries(self, entries):
        """Append ``entries``, which must continue the log: the first at last_index + 1, each
        index one more than the previous, terms >= 1 and never decreasing (from last_term on).
        The entries are cached (evicting the oldest beyond the bounds).

        Returns the indexes of the appended entries of kind MEMBERSHIP, usually []: a
        configuration takes effect as soon as it is in the log (thesis §4.1).
        Raises ValueError if the entries do not continue the log. O(len(entries)).
        """
        cdef list src = entry_list(entries)
        cdef Py_ssize_t n = len(src), k, new_runs = 0
        cdef uint64_t last = self.last_index, term = self.last_term, room = MAX_U64 - last
        cdef Entry e
        cdef list members = []
        if n == 0:
            return members
        for k in range(n):
            e = <Entry><object>PyList_GET_ITEM(src, k)
            if <uint64_t>k >= room:
                raise ValueError(f"entry index {e.index} does not continue the log at "
                                 f"{(<object>last) + 1 + k}")
            if e.index != last + 1 + <uint64_t>k:
                raise ValueError(f"entry index {e.index} does not continue the log at "
                                 f"{last + 1 + <uint64_t>k}")
            if e.term < term or e.term == 0:
                raise ValueError(
                    f"entry {e.index} has term {e.term}, below the log's term {term} or zero")
            if e.payload is None:
                raise TypeError("object of type 'NoneType' has no len()")
            if e.term != term or (k == 0 and self._runs == 0):
                new_runs += 1
            term = e.term
            if e.kind == C_KIND_MEMBERSHIP:
                members.append(e.index)
        self._reserve_runs(self._runs + new_runs)
        for k in range(n):
            e = <Entry><object>PyList_GET_ITEM(src, k)
            if self._runs == 0 or self._run_term[self._runs - 1] != e.term:
                self._push_run(last + 1 + <uint64_t>k, e.term)
        self.last_index = last + <uint64_t>n
        self.last_term = term
        self._cache_extend(src)
        return members

    def append_payloads(self, term, kind, payloads):
        """Create and append one entry of ``term`` and ``kind`` per payload, at indexes
        last_index + 1, ...; returns the new entries (a leader's proposals, Raft §5.3).

        Raises ValueError if term < last_term or term == 0, TypeError if a payload is not
        bytes-like, OverflowError if kind does not fit in u8; nothing is appended then.
        O(len(payloads)).
        """
        cdef uint64_t t, kd = 0, last = self.last_index, room = MAX_U64 - last
        cdef int rt = read_u64(term, &t), rk
        cdef Py_ssize_t n, k
        cdef list src, new
        if rt < 0 or (rt == 0 and (t < self.last_term or t == 0)):
            raise ValueError(f"term {term} is below the log's term {self.last_term} or zero")
        if rt > 0:
            raise OverflowError("term must fit in an unsigned 64-bit integer")
        src = as_list(payloads)
        n = len(src)
        if n == 0:
            return []
        # The checks of the Entry constructor, in its order, entry by entry.
        if room == 0:
            raise OverflowError("term and index must fit in an unsigned 64-bit integer")
        rk = read_u64(kind, &kd)
        if rk != 0 or kd > 255:
            raise OverflowError("kind must fit in an unsigned 8-bit integer")
        new = [None] * n
        for k in range(n):
            if <uint64_t>k >= room:
                raise OverflowError("term and index must fit in an unsigned 64-bit integer")
            new[k] = make_entry(t, last + 1 + <uint64_t>k, <uint8_t>kd,
                                as_bytes(<object>PyList_GET_ITEM(src, k)))
        if self._runs == 0 or self._run_term[self._runs - 1] != t:
            self._reserve_runs(self._runs + 1)
            self._push_run(last + 1, t)
        self.last_index = last + <uint64_t>n
        self.last_term = t
        self._cache_extend(new)
        return new

    def append_term_run(self, term, last_index):
        """Declare that the log continues with entries of ``term`` up to ``last_index``,
        without the entries (they are not cached). Rebuilds the index at start from what
        storage holds: reset(purged), then one call per run.

        Raises ValueError unless last_index > self.last_index and term >= max(last_term, 1);
        OverflowError if term or last_index does not fit in u64. O(1).
        """
        cdef uint64_t t, li
        cdef int rl = read_u64(last_index, &li), rt = read_u64(term, &t)
        if rl < 0 or (rl == 0 and li <= self.last_index):
            raise ValueError(
                f"run end {last_index} does not extend the log past {self.last_index}")
        if rt < 0 or (rt == 0 and (t < self.last_term or t == 0)):
            raise ValueError(f"term {term} is below the log's term {self.last_term} or zero")
        if rt > 0 or rl > 0:
            raise OverflowError("term and index must fit in an unsigned 64-bit integer")
        if self._runs == 0 or self._run_term[self._runs - 1] != t:
            self._reserve_runs(self._runs + 1)
            self._push_run(self.last_index + 1, t)
        self.last_index = li
        self.last_term = t
        # the cache must stay a suffix of the log: entries not given cannot be cached
        self._cache_clear()

    def truncate_after(self, index):
        """Delete the entries after ``index``: the log then ends at ``index`` (a follower's
        conflicting suffix, Raft §5.3). No-op when index >= last_index.

        Raises ValueError if index < purged_index (purged entries are committed and can never
        conflict). O(log runs + removed cached entries).
        """
        cdef uint64_t i
        cdef int r = read_u64(index, &i)
        if r > 0 or (r == 0 and i >= self.last_index):
            return
        if r < 0 or i < self.purged_index:
            raise ValueError(
                f"cannot truncate after {index}: entries up to {self.purged_index} are purged")
        self._cut_runs_after(i)
        self._cache_cut_after(i)
        self.last_index = i

    def purge_upto(self, index):
        """Forget the entries up to and including ``index`` (log compaction, Raft §7): the last
        purged log id becomes (term_at(index), index). No-op when index <= purged_index.

        Raises IndexError if index > last_index (use ``reset`` to move past the log).
        O(log runs + remaining runs).
        """
        cdef uint64_t i
        cdef int r = read_u64(index, &i)
        if r < 0 or (r == 0 and i <= self.purged_index):
            return
        if r > 0 or i > self.last_index:
            raise IndexError(f"cannot purge up to {index}: the log ends at {self.last_index}")
        self._cache_drop_upto(i)
        self._cut_runs_upto(i)

    def reset(self, term, index):
        """Make the log empty after (term, index): purged and last log id both become
        (term, index), no run, empty cache. For a snapshot install (Raft §7) and for a start
        from storage. Raises ValueError on a negative value or when exactly one of term and
        index is 0. O(cached)."""
        cdef uint64_t t = 0, i = 0
        cdef int rt = read_u64(term, &t), ri = read_u64(index, &i)
        if rt < 0 or ri < 0 or (rt == 0 and t == 0) != (ri == 0 and i == 0):
            raise ValueError(f"bad log id ({term}, {index})")
        if rt > 0 or ri > 0:
            raise OverflowError("term and index must fit in an unsigned 64-bit integer")
        self._runs = 0
        self.purged_index = self.last_index = i
        self.purged_term = self.last_term = t
        self._cache_clear()

    # -- copying -------------------------------------------------------------------------------

    def __reduce__(self):
        """Pickle and copy support (the twin copies through its slots): the bounds, both log
        ids, the runs and the cached entries."""
        cdef Py_ssize_t k
        runs = [(self._run_start[k], self._run_term[k]) for k in range(self._runs)]
        return (LogIndex, (self.max_cached_entries, self.max_cached_bytes),
                (self.last_index, self.last_term, self.purged_index, self.purged_term, runs,
                 self._cache[self._head:]))

    def __setstate__(self, state):
        cdef list cached
        last_index, last_term, purged_index, purged_term, runs, cached = state
        self._cache_clear()
        self._runs = 0
        self._reserve_runs(len(runs))
        for start, term in runs:
            self._push_run(start, term)
        self.last_index, self.last_term = last_index, last_term
        self.purged_index, self.purged_term = purged_index, purged_term
        self._cache_extend([to_entry(e) for e in cached])

    def __repr__(self):
        return (f"LogIndex(purged=({self.purged_term}, {self.purged_index}), "
                f"last=({self.last_term}, {self.last_index}), runs={self.run_count}, "
                f"cached=[{self.cache_lo}, {plus1(self.last_index)}))")

