# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, binding=False
"""The log index, compiled. Twin: fastraft/accel/pure/log_index.py, which is the spec: same
names, signatures, results, exception types and messages.

Term runs live in two C arrays of u64 searched by binary search in C (the last run is tried
first: most lookups are near the end of the log). The cache keeps compiled ``Entry`` objects
in a list beside a C array of running byte totals, so the byte limit of a slice is one binary
search and a slice is one list copy.

Integer arguments are read as u64 with one C call; a value outside [0, 2**64) is treated
exactly as the twin treats it (a comparison that fails, or the twin's exception). Arguments
must be integers (``int`` or ``bool``; other numbers raise TypeError here). Entries are
compiled ``Entry`` objects; any other object with u64 ``term`` and ``index``, a u8 ``kind``
and a bytes-like ``payload`` is accepted and converted, so the cache only ever holds and hands
out compiled entries.

Invariant: the invariants of the twin, and additionally len(_cache) <= _cum_cap,
    _runs <= _runs_cap: every C array access is below its capacity.
"""

from cpython.bytes cimport PyBytes_GET_SIZE
from cpython.list cimport PyList_GET_ITEM, PyList_GetSlice
from cpython.long cimport PyLong_AsLongLongAndOverflow
from cpython.pyport cimport PY_SSIZE_T_MAX
from libc.stdint cimport uint8_t, uint64_t
from libc.stdlib cimport free, malloc, realloc
from libc.string cimport memmove

from fastraft.accel.compiled.entry cimport Entry, make_entry

__all__ = ["LogIndex", "ENTRY_OVERHEAD_BYTES", "KIND_MEMBERSHIP"]

#: Bytes counted per entry on top of its payload (term, index, kind, length prefix), as the
#: codec's ENTRY_HEADER_SIZE.
ENTRY_OVERHEAD_BYTES = 21
#: The entry kind whose indexes ``append_entries`` reports (``EntryKind.MEMBERSHIP``).
KIND_MEMBERSHIP = 2

cdef enum:
    C_OVERHEAD = 21
    C_KIND_MEMBERSHIP = 2
    # Drop the evicted head of the cache once it is this long and at least half of it
    # (amortized O(1) eviction, as the twin).
    COMPACT_MIN = 1024

cdef uint64_t MAX_U64 = 0xFFFFFFFFFFFFFFFF
cdef object PY_MAX_U64 = (1 << 64) - 1
cdef object PY_TWO_64 = 1 << 64
cdef Py_ssize_t MAX_ITEMS = PY_SSIZE_T_MAX // 8


cdef int read_u64(object x, uint64_t *out) except -2:
    """Read an integer argument: 0 when 0 <= x < 2**64 (stored in *out), -1 when x < 0,
    1 when x >= 2**64. TypeError when x is not an integer."""
    cdef int overflow = 0
    cdef long long v = PyLong_AsLongLongAndOverflow(x, &overflow)
    if overflow == 0:
        if v < 0:
            return -1
        out[0] = <uint64_t>v
        return 0
    if overflow < 0:
        return -1
    if x > PY_MAX_U64:
        return 1
    out[0] = <uint64_t>x
    return 0


cdef inline object plus1(uint64_t v):
    """v + 1 as a Python int, also for v == 2**64 - 1."""
    if v == MAX_U64:
        return PY_TWO_64
    return v + 1


cdef list as_list(object seq):
    """The items of a sequence, read as the twin reads them (len, then [k])."""
    if type(seq) is list:
        return <list>seq
    cdef Py_ssize_t n = len(seq), k
    return [seq[k] for k in range(n)]


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


cdef int grow(uint64_t **arr, Py_ssize_t need, Py_ssize_t *cap) except -1:
    """Make room for ``need`` items in *arr (capacity *cap); MemoryError leaves it as it was."""
    cdef Py_ssize_t c = cap[0]
    cdef uint64_t *p
    if need <= c:
        return 0
    if need > MAX_ITEMS:
        raise MemoryError()
    while c < need:
        c = c * 2 if c < MAX_ITEMS // 2 else MAX_ITEMS
    p = <uint64_t *>realloc(arr[0], <size_t>c * sizeof(uint64_t))
    if p == NULL:
        raise MemoryError()
    arr[0] = p
    cap[0] = c
    return 0


cdef class LogIndex:
    """Index of one node's log: term runs, purge point and a bounded cache of recent entries.

    Read-only attributes: ``last_index``, ``last_term`` (the last log id; (0, 0) for an empty
    log that was never purged), ``purged_index``, ``purged_term`` (the last purged log id,
    (0, 0) if none), ``max_cached_entries``, ``max_cached_bytes``.
    """

    def __cinit__(self, *args, **kwargs):
        self._cache = []
        self._run_start = <uint64_t *>malloc(8 * sizeof(uint64_t))
        self._run_term = <uint64_t *>malloc(8 * sizeof(uint64_t))
        self._cum = <uint64_t *>malloc(64 * sizeof(uint64_t))
        if self._run_start == NULL or self._run_term == NULL or self._cum == NULL:
            raise MemoryError()
        self._runs_cap = 8
        self._cum_cap = 64

    def __dealloc__(self):
        free(self._run_start)
        free(self._run_term)
        free(self._cum)

    def __init__(self, max_cached_entries=4096, max_cached_bytes=64 << 20):
        """An empty log (last log id (0, 0)) with an empty cache.

        ``max_cached_entries`` >= 0 and ``max_cached_bytes`` >= 0 bound the cache (0 disables
        it). Raises ValueError on a negative bound.
        """
        max_cached_entries = int(max_cached_entries)
        max_cached_bytes = int(max_cached_bytes)
        if max_cached_entries < 0 or max_cached_bytes < 0:
            raise ValueError("cache bounds must be >= 0")
        self.max_cached_entries = max_cached_entries
        self.max_cached_bytes = max_cached_bytes
        self._max_n = min(max_cached_entries, PY_MAX_U64)
        self._max_b = min(max_cached_bytes, PY_MAX_U64)
        self.last_index = self.last_term = self.purged_index = self.purged_term = 0
        self._runs = 0
        self._cache_clear()

    # -- reading -------------------------------------------------------------------------------

    @property
    def first_index(self):
        """The first index the log may hold: purged_index + 1 (the log may be empty). O(1)."""
        return plus1(self.purged_index)

    @property
    def cache_lo(self):
        """The first cached index; the cache is [cache_lo, last_index + 1). O(1)."""
        cdef Py_ssize_t count = len(self._cache) - self._head
        if count == 0:
            return plus1(self.last_index)
        return self.last_index - <uint64_t>(count - 1)

    @property
    def cached_count(self):
        """Number of cached entries. O(1)."""
        return len(self._cache) - self._head

    @property
    def cached_bytes(self):
        """Counted bytes of the cached entries. O(1)."""
        cdef Py_ssize_t n = len(self._cache)
        if self._head == n:
            return 0
        return self._cum[n - 1] - self._base_bytes

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
        cdef list src = as_list(entries)
        cdef Py_ssize_t n = len(src), k, k0, run
        cdef uint64_t first, i, purged = self.purged_index, last = self.last_index
        cdef Entry e
        if n == 0:
            return 0
        if any_foreign(src):
            src = [to_entry(x) for x in src]
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
        cdef list src = as_list(entries)
        cdef Py_ssize_t n = len(src), k
        cdef uint64_t prev, term, top
        cdef int rp, rt, rm
        cdef Entry e
        cdef list members = []
        if n == 0:
            return members
        if any_foreign(src):
            src = [to_entry(x) for x in src]
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

    def is_cached(self, index):
        """Whether the entry at ``index`` is in the cache. O(1)."""
        cdef uint64_t i
        cdef Py_ssize_t count = len(self._cache) - self._head
        if read_u64(index, &i) != 0 or count == 0:
            return False
        return self.last_index - <uint64_t>(count - 1) <= i <= self.last_index

    def entries(self, lo, hi, max_entries, max_bytes):
        """Cached entries from ``lo``: at most ``max_entries`` of [lo, hi), stopping before the
        counted bytes would exceed ``max_bytes``, but never fewer than one when lo < hi (a
        message must make progress even with an entry larger than the limit).

        Raises IndexError unless cache_lo <= lo <= hi <= last_index + 1; ValueError if
        max_entries < 1. O(log n + returned).
        """
        cdef uint64_t me, mb, ulo, uhi, off, span, take, cache_lo, before, limit
        cdef uint64_t last = self.last_index
        cdef Py_ssize_t count = len(self._cache) - self._head, a, b, p, q, mid
        cdef int rme = read_u64(max_entries, &me), rmb
        if rme < 0 or (rme == 0 and me < 1):
            raise ValueError("max_entries must be >= 1")
        if last != MAX_U64 and read_u64(lo, &ulo) == 0 and read_u64(hi, &uhi) == 0:
            cache_lo = last + 1 - <uint64_t>count
            if ulo < cache_lo or uhi > last + 1 or ulo > uhi:
                self._raise_outside_cache(lo, hi)
            off = ulo - cache_lo
            span = uhi - ulo
        else:
            # an argument or the log end outside u64: compare as Python ints, as the twin
            py_lo = self.cache_lo
            if lo < py_lo or hi > plus1(last) or lo > hi:
                self._raise_outside_cache(lo, hi)
            off = lo - py_lo
            span = hi - lo
        if span == 0:
            return []
        take = span if rme > 0 or me >= span else me
        a = self._head + <Py_ssize_t>off
        b = a + <Py_ssize_t>take
        before = self._cum[a - 1] if a > self._head else self._base_bytes
        rmb = read_u64(max_bytes, &mb)
        if rmb < 0:
            return PyList_GetSlice(self._cache, a, a + 1)
        limit = MAX_U64 if rmb > 0 or mb > MAX_U64 - before else before + mb
        # the first position in [a, b) whose running total exceeds the budget
        p = a
        q = b
        while p < q:
            mid = (p + q) >> 1
            if self._cum[mid] <= limit:
                p = mid + 1
            else:
                q = mid
        if p == a:
            p = a + 1
        return PyList_GetSlice(self._cache, a, p)

    cdef int _raise_outside_cache(self, object lo, object hi) except -1:
        raise IndexError(f"[{lo}, {hi}) is not within the cached range "
                         f"[{self.cache_lo}, {plus1(self.last_index)})")

    # -- changing ------------------------------------------------------------------------------

    def append_entries(self, entries):
        """Append ``entries``, which must continue the log: the first at last_index + 1, each
        index one more than the previous, terms >= 1 and never decreasing (from last_term on).
        The entries are cached (evicting the oldest beyond the bounds).

        Returns the indexes of the appended entries of kind MEMBERSHIP, usually []: a
        configuration takes effect as soon as it is in the log (thesis §4.1).
        Raises ValueError if the entries do not continue the log. O(len(entries)).
        """
        cdef list src = as_list(entries)
        cdef Py_ssize_t n = len(src), k, new_runs = 0
        cdef uint64_t last = self.last_index, term = self.last_term, room = MAX_U64 - last
        cdef Entry e
        cdef list members = []
        if n == 0:
            return members
        if any_foreign(src):
            src = [to_entry(x) for x in src]
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
        cdef uint64_t i, cache_lo
        cdef int r = read_u64(index, &i)
        cdef Py_ssize_t count, k
        if r > 0 or (r == 0 and i >= self.last_index):
            return
        if r < 0 or i < self.purged_index:
            raise ValueError(
                f"cannot truncate after {index}: entries up to {self.purged_index} are purged")
        if i == self.purged_index:
            self._runs = 0
            self.last_term = self.purged_term
        else:
            k = self._run_of(i)
            self._runs = k + 1
            self.last_term = self._run_term[k]
        count = len(self._cache) - self._head
        if count == 0:
            self._cache_clear()
        else:
            cache_lo = self.last_index - <uint64_t>(count - 1)
            if i < cache_lo:
                self._cache_clear()
            else:
                del self._cache[self._head + <Py_ssize_t>(i + 1 - cache_lo):]
        self.last_index = i

    def purge_upto(self, index):
        """Forget the entries up to and including ``index`` (log compaction, Raft §7): the last
        purged log id becomes (term_at(index), index). No-op when index <= purged_index.

        Raises IndexError if index > last_index (use ``reset`` to move past the log).
        O(log runs + remaining runs).
        """
        cdef uint64_t i, term, cache_lo
        cdef int r = read_u64(index, &i)
        cdef Py_ssize_t k, count, drop
        if r < 0 or (r == 0 and i <= self.purged_index):
            return
        if r > 0 or i > self.last_index:
            raise IndexError(f"cannot purge up to {index}: the log ends at {self.last_index}")
        term = self._term_of(i)
        if i == self.last_index:
            self._runs = 0
        else:
            k = self._run_of(i + 1)
            if k:
                memmove(self._run_start, self._run_start + k,
                        <size_t>(self._runs - k) * sizeof(uint64_t))
                memmove(self._run_term, self._run_term + k,
                        <size_t>(self._runs - k) * sizeof(uint64_t))
                self._runs -= k
            self._run_start[0] = i + 1
        count = len(self._cache) - self._head
        if count:
            cache_lo = self.last_index - <uint64_t>(count - 1)
            if i >= cache_lo:
                drop = <Py_ssize_t>(i + 1 - cache_lo)
                self._base_bytes = self._cum[self._head + drop - 1]
                self._head += drop
                self._maybe_compact()
        self.purged_index = i
        self.purged_term = term

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

    # -- term runs and the cache ---------------------------------------------------------------

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

    cdef int _cache_extend(self, list entries) except -1:
        cdef Py_ssize_t n = len(entries), old = len(self._cache), k, head, total_n, lo, hi, mid
        cdef uint64_t total, before, target
        cdef uint64_t *cum
        cdef Entry e
        grow(&self._cum, old + n, &self._cum_cap)
        cum = self._cum
        total = cum[old - 1] if old else self._base_bytes
        for k in range(n):
            e = <Entry><object>PyList_GET_ITEM(entries, k)
            total += <uint64_t>PyBytes_GET_SIZE(e.payload) + C_OVERHEAD
            cum[old + k] = total
        self._cache.extend(entries)
        # evict the oldest until both bounds hold (possibly everything)
        total_n = old + n
        head = self._head
        if <uint64_t>(total_n - head) > self._max_n:
            head = total_n - <Py_ssize_t>self._max_n
        if head < total_n:
            before = cum[head - 1] if head > self._head else self._base_bytes
            if total - before > self._max_b:
                # keep from just after the first position j whose running total leaves at
                # most max_b bytes behind it: total - cum[j] <= max_b
                target = total - self._max_b
                lo = head
                hi = total_n
                while lo < hi:
                    mid = (lo + hi) >> 1
                    if cum[mid] < target:
                        lo = mid + 1
                    else:
                        hi = mid
                head = lo + 1
        if head != self._head:
            self._base_bytes = cum[head - 1]
            self._head = head
            self._maybe_compact()
        return 0

    cdef int _cache_clear(self) except -1:
        del self._cache[:]
        self._head = 0
        self._base_bytes = 0
        return 0

    cdef int _maybe_compact(self) except -1:
        cdef Py_ssize_t head = self._head, n = len(self._cache), k
        cdef uint64_t base = self._base_bytes
        if head == n:
            self._cache_clear()
        elif head >= COMPACT_MIN and head * 2 >= n:
            del self._cache[:head]
            # rebase the running totals so they stay small over a long life
            for k in range(n - head):
                self._cum[k] = self._cum[head + k] - base
            self._head = 0
            self._base_bytes = 0
        return 0

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


cdef list check_entries_py(list src, object prev_index, object prev_term, object max_term):
    # LogIndex.check_entries for arguments outside u64, in the twin's Python-int arithmetic.
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


cdef inline bint any_foreign(list items):
    cdef Py_ssize_t k
    for k in range(len(items)):
        if not isinstance(<object>PyList_GET_ITEM(items, k), Entry):
            return True
    return False
