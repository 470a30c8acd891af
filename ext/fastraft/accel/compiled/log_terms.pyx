# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, binding=False
"""The log's shape, compiled: its last and purged log ids, its term runs and the lookups on
them. Twin: fastraft/accel/pure/log_terms.py, which is the spec: same names, signatures,
results, exception types and messages.

Term runs live in two C arrays of u64 searched by binary search in C (the last run is tried
first: most lookups are near the end of the log). ``LogTerms`` is the base of the cache
(log_cache) and of ``LogIndex`` (log_index), which calls these lookups as C methods.

Integer arguments are read as u64 with one C call (ints.pxd); a value outside [0, 2**64) is
treated exactly as the twin treats it (a comparison that fails, or the twin's exception).
Arguments must be integers (``int`` or ``bool``; other numbers raise TypeError here). Entries
are compiled ``Entry`` objects; any other object with u64 ``term`` and ``index``, a u8
``kind`` and a bytes-like ``payload`` is accepted and converted (``entry_list``).

Invariant: the invariants of the twin, and _runs <= _runs_cap: every C array access is below
    its capacity.
"""

from cpython.list cimport PyList_GET_ITEM
from libc.stdint cimport uint64_t
from libc.stdlib cimport free, malloc
from libc.string cimport memmove

from fastraft.accel.compiled.entry cimport Entry, make_entry
from fastraft.accel.compiled.ints cimport MAX_U64, grow, plus1, read_u64

__all__ = ["LogTerms", "KIND_MEMBERSHIP"]

#: The entry kind whose indexes ``check_entries`` reports (``EntryKind.MEMBERSHIP``).
KIND_MEMBERSHIP = 2

cdef enum:
    C_KIND_MEMBERSHIP = 2


cdef list as_list(object seq):
    """The items of a sequence, read as the twin reads them (len, then [k])."""
    if type(seq) is list:
        return <list>seq
    cdef Py_ssize_t n = len(seq), k
    return [seq[k] for k in range(n)]


cdef list entry_list(object entries):
    """``as_list(entries)`` as compiled entries (a list of them is returned as it is)."""
    cdef list src = as_list(entries)
    cdef Py_ssize_t k
    for k in range(len(src)):
        if not isinstance(<object>PyList_GET_ITEM(src, k), Entry):
            return [to_entry(x) for x in src]
    return src


cdef object as_bytes(object payload):
    if type(payload) is bytes:
        return payload
    if isinstance(payload, (bytearray, memoryview)):
        return bytes(payload)
    raise TypeError(f"payload must be bytes, not {type(payload).__name__}")


cdef Entry to_entry(object obj):
    """A compiled Entry equal to the entry-like ``obj``."""
    if isinstance(obj, Entry):
        return <Entry>obj
    return make_entry(obj.term, obj.index, obj.kind, as_bytes(obj.payload))


cdef class LogTerms:
    """The last log id, the last purged log id and the term runs of one node's log.

    Read-only attributes: ``last_index``, ``last_term`` (the last log id; (0, 0) for an empty
    log that was never purged), ``purged_index``, ``purged_term`` (the last purged log id,
    (0, 0) if none).
    """

    def __cinit__(self, *args, **kwargs):
        self._run_start = <uint64_t *>malloc(8 * sizeof(uint64_t))
        self._run_term = <uint64_t *>malloc(8 * sizeof(uint64_t))
        if self._run_start == NULL or self._run_term == NULL:
            raise MemoryError()
        self._runs_cap = 8

    def __dealloc__(self):
        free(self._run_start)
        free(self._run_term)

    # -- reading -------------------------------------------------------------------------------

    @property
    def first_index(self):
        """The first index the log may hold: purged_index + 1 (the log may be empty). O(1)."""
        return plus1(self.purged_index)

    @property
    def run_count(self):
        """Number of term runs in the log. O(1)."""
        return self._runs

    def term_runs(self):
        """The runs as (first_index, term) pairs, oldest first. O(runs)."""
        cdef Py_ssize_t k
        return [(self._run_start[k], self._run_term[k]) for k in range(self._runs)]

    cdef Py_ssize_t _run_of(self, uint64_t index) noexcept:
        # The run holding ``index``. Requires _runs >= 1 and _run_start[0] <= index.
        cdef Py_ssize_t base = 0, n = self._runs, half
        cdef uint64_t *start = self._run_start
        if start[n - 1] <= index:
            return n - 1
        # Branch-free halving (the compiler emits a conditional move): a lookup at a random
        # index would otherwise mispredict about half of its steps.
        # Invariant: start[base] <= index, and the answer is in [base, base + n).
        while n > 1:
            half = n >> 1
            base = base + half if start[base + half] <= index else base
            n -= half
        return base

    cdef uint64_t _term_of(self, uint64_t index) noexcept:
        # Requires purged_index < index <= last_index.
        return self._run_term[self._run_of(index)]

    cdef Py_ssize_t _run_with_term(self, uint64_t term) noexcept:
        # The run of ``term``, or -1. Run terms strictly increase.
        cdef Py_ssize_t lo = 0, hi = self._runs, mid
        cdef uint64_t *terms = self._run_term
        while lo < hi:
            mid = (lo + hi) >> 1
            if terms[mid] < term:
                lo = mid + 1
            else:
                hi = mid
        if lo < self._runs and terms[lo] == term:
            return lo
        return -1

    def term_at(self, index):
        """The term of the entry at ``index``; ``purged_term`` at ``purged_index``.

        Raises IndexError unless purged_index <= index <= last_index. O(log runs).
        """
        cdef uint64_t i
        if read_u64(index, &i) == 0:
            if i == self.purged_index:
                return self.purged_term
            if self.purged_index < i <= self.last_index:
                return self._term_of(i)
        raise IndexError(
            f"index {index} outside the log [{self.purged_index}, {self.last_index}]")

    def matches(self, index, term):
        """Whether the log has an entry (term, index): the AppendEntries consistency check
        (Raft §5.3).

        Indexes below ``purged_index`` match any term: purged entries were committed and a
        committed entry is in every later leader's log (Raft §5.4, Leader Completeness).
        False when index > last_index. Raises ValueError on a negative index. O(log runs).
        """
        cdef uint64_t i, t, have
        cdef int r = read_u64(index, &i)
        if r < 0:
            raise ValueError(f"index must be >= 0, got {index}")
        if r > 0 or i > self.last_index:
            return False
        if i < self.purged_index:
            return True
        have = self.purged_term if i == self.purged_index else self._term_of(i)
        if isinstance(term, int):
            return read_u64(term, &t) == 0 and t == have
        return have == term

    def first_index_of_term(self, term):
        """The first index in the log (> purged_index) whose entry has ``term``, or 0 when no
        entry of the log has that term. The follower's hint on a rejection (Raft §5.3).
        O(log runs)."""
        cdef uint64_t t
        cdef Py_ssize_t k
        if read_u64(term, &t) != 0:
            return 0
        k = self._run_with_term(t)
        return self._run_start[k] if k >= 0 else 0

    def last_index_of_term(self, term):
        """The last index in the log whose entry has ``term``, or 0 when no entry of the log
        has that term. The leader's answer to a hint: resume after its own last entry of the
        follower's conflicting term (Raft §5.3). O(log runs)."""
        cdef uint64_t t
        cdef Py_ssize_t k
        if read_u64(term, &t) != 0:
            return 0
        k = self._run_with_term(t)
        if k < 0:
            return 0
        if k + 1 < self._runs:
            return self._run_start[k + 1] - 1
        return self.last_index

    def find_conflict(self, entries):
        """The index of the first entry of ``entries`` that the log lacks or holds with another
        term, or 0 when the log already holds all of them (Raft §5.3, receiver step 3).

        ``entries`` must be contiguous (each index one more than the previous); entries at or
        below ``purged_index`` count as held. Raises ValueError if they are not contiguous.
        O(len(entries) + log runs).
        """
        cdef list src = entry_list(entries)
        cdef Py_ssize_t n = len(src), k, k0, run
        cdef uint64_t first, i, purged = self.purged_index, last = self.last_index
        cdef Entry e
        if n == 0:
            return 0
        first = (<Entry><object>PyList_GET_ITEM(src, 0)).index
        if <uint64_t>(n - 1) > MAX_U64 - first:
            raise ValueError("entries are not contiguous")
        for k in range(n):
            if (<Entry><object>PyList_GET_ITEM(src, k)).index != first + <uint64_t>k:
                raise ValueError("entries are not contiguous")
        # Skip what is purged, then walk the runs forward with the indexes (one search).
        if first > purged:
            k0 = 0
        elif purged - first >= <uint64_t>(n - 1):
            return 0
        else:
            k0 = <Py_ssize_t>(purged - first) + 1
        i = first + <uint64_t>k0
        if i > last:
            return i
        run = self._run_of(i)
        for k in range(k0, n):
            i = first + <uint64_t>k
            if i > last:
                return i
            while run + 1 < self._runs and self._run_start[run + 1] <= i:
                run += 1
            e = <Entry><object>PyList_GET_ITEM(src, k)
            if e.term != self._run_term[run]:
                return i
        return 0

    def check_entries(self, entries, prev_index, prev_term, max_term):
        """Check that ``entries`` can follow (prev_term, prev_index) in a leader's log of term
        ``max_term``: contiguous from prev_index + 1, terms >= max(prev_term, 1), never
        decreasing, at most max_term. Reads nothing of the log: a follower runs it on an
        incoming AppendEntries before it truncates anything.

        Returns the indexes of the entries of kind MEMBERSHIP, usually []. Raises ValueError
        naming the first bad entry. O(len(entries)).
        """
        cdef list src = entry_list(entries)
        cdef Py_ssize_t n = len(src), k
        cdef uint64_t prev, term, top
        cdef int rp, rt, rm
        cdef Entry e
        cdef list members = []
        if n == 0:
            return members
        rp = read_u64(prev_index, &prev)
        rt = read_u64(prev_term, &term)
        rm = read_u64(max_term, &top)
        if rp != 0 or rt != 0 or rm != 0 or <uint64_t>n > MAX_U64 - prev:
            # an argument outside u64: the twin's arithmetic on Python ints
            return check_entries_py(src, prev_index, prev_term, max_term)
        if term < 1:
            term = 1
        for k in range(n):
            e = <Entry><object>PyList_GET_ITEM(src, k)
            if e.index != prev + 1 + <uint64_t>k:
                raise ValueError(
                    f"entry index {e.index} does not follow at {prev + 1 + <uint64_t>k}")
            if e.term < term or e.term > top:
                raise ValueError(
                    f"entry {e.index} has term {e.term}, outside [{term}, {max_term}]")
            term = e.term
            if e.kind == C_KIND_MEMBERSHIP:
                members.append(e.index)
        return members

    # -- changing the runs ---------------------------------------------------------------------

    cdef int _reserve_runs(self, Py_ssize_t need) except -1:
        # Both run arrays share one capacity; grown before any change, so MemoryError leaves
        # the index as it was.
        cdef Py_ssize_t cap = self._runs_cap
        grow(&self._run_start, need, &cap)
        cap = self._runs_cap
        grow(&self._run_term, need, &cap)
        self._runs_cap = cap
        return 0

    cdef int _push_run(self, uint64_t start, uint64_t term) except -1:
        # Requires room (_reserve_runs).
        self._run_start[self._runs] = start
        self._run_term[self._runs] = term
        self._runs += 1
        return 0

    cdef int _cut_runs_after(self, uint64_t index) except -1:
        # The runs and last_term of a log ending at ``index``. Requires
        # purged_index <= index < last_index; last_index is the caller's to set.
        cdef Py_ssize_t k
        if index == self.purged_index:
            self._runs = 0
            self.last_term = self.purged_term
        else:
            k = self._run_of(index)
            self._runs = k + 1
            self.last_term = self._run_term[k]
        return 0

    cdef int _cut_runs_upto(self, uint64_t index) except -1:
        # The runs of a log purged up to ``index``, and (purged_term, purged_index). Requires
        # purged_index < index <= last_index.
        cdef uint64_t term = self._term_of(index)
        cdef Py_ssize_t k
        if index == self.last_index:
            self._runs = 0
        else:
            k = self._run_of(index + 1)
            if k:
                memmove(self._run_start, self._run_start + k,
                        <size_t>(self._runs - k) * sizeof(uint64_t))
                memmove(self._run_term, self._run_term + k,
                        <size_t>(self._runs - k) * sizeof(uint64_t))
                self._runs -= k
            self._run_start[0] = index + 1
        self.purged_index = index
        self.purged_term = term
        return 0


cdef list check_entries_py(list src, object prev_index, object prev_term, object max_term):
    # LogTerms.check_entries for arguments outside u64, in the twin's Python-int arithmetic.
    cdef Entry e
    cdef list members = []
    term = prev_term if prev_term > 1 else 1
    for k in range(len(src)):
        e = <Entry>src[k]
        if e.index != prev_index + 1 + k:
            raise ValueError(f"entry index {e.index} does not follow at {prev_index + 1 + k}")
        if e.term < term or e.term > max_term:
            raise ValueError(f"entry {e.index} has term {e.term}, outside [{term}, {max_term}]")
        term = e.term
        if e.kind == C_KIND_MEMBERSHIP:
            members.append(e.index)
    return members
