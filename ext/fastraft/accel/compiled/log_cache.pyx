# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, binding=False
"""The cache of a log's newest entries, compiled. Twin: fastraft/accel/pure/log_cache.py,
which is the spec: same names, signatures, results, exception types and messages.

The cache keeps compiled ``Entry`` objects in a list beside a C array of running byte totals,
so the byte limit of a slice is one binary search and a slice is one list copy. ``LogCache``
extends ``LogTerms`` (the log ids it is a suffix of) and is the base of ``LogIndex``, which
keeps the cache and the runs in step through the C methods declared in log_cache.pxd.

Invariant: the invariants of the twin, and len(_cache) <= _cum_cap: every C array access is
    below its capacity.
"""

from cpython.bytes cimport PyBytes_GET_SIZE
from cpython.list cimport PyList_GET_ITEM, PyList_GetSlice
from libc.stdint cimport uint64_t
from libc.stdlib cimport free, malloc

from fastraft.accel.compiled.entry cimport Entry
from fastraft.accel.compiled.ints cimport MAX_U64, grow, plus1, read_u64
from fastraft.accel.compiled.log_terms cimport LogTerms

__all__ = ["LogCache", "ENTRY_OVERHEAD_BYTES"]

#: Bytes counted per entry on top of its payload (term, index, kind, length prefix), as the
#: codec's ENTRY_HEADER_SIZE.
ENTRY_OVERHEAD_BYTES = 21

cdef enum:
    C_OVERHEAD = 21
    # Drop the evicted head of the cache once it is this long and at least half of it
    # (amortized O(1) eviction, as the twin).
    COMPACT_MIN = 1024


cdef class LogCache(LogTerms):
    """The log ids and runs of ``LogTerms``, and a bounded cache of the newest entries.

    Read-only attributes: those of ``LogTerms``, ``max_cached_entries``, ``max_cached_bytes``.
    """

    def __cinit__(self, *args, **kwargs):
        self._cache = []
        self._cum = <uint64_t *>malloc(64 * sizeof(uint64_t))
        if self._cum == NULL:
            raise MemoryError()
        self._cum_cap = 64

    def __dealloc__(self):
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
        self._max_n = min(max_cached_entries, <object>MAX_U64)
        self._max_b = min(max_cached_bytes, <object>MAX_U64)
        self.last_index = self.last_term = self.purged_index = self.purged_term = 0
        self._runs = 0
        self._cache_clear()

    # -- reading -------------------------------------------------------------------------------

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


    cdef int _cache_cut_after(self, uint64_t index) except -1:
        # Drop the cached entries after ``index`` (the log is cut there). Requires
        # index < last_index, before last_index moves.
        cdef Py_ssize_t count = len(self._cache) - self._head
        cdef uint64_t cache_lo
        if count == 0:
            self._cache_clear()
            return 0
        cache_lo = self.last_index - <uint64_t>(count - 1)
        if index < cache_lo:
            self._cache_clear()
        else:
            del self._cache[self._head + <Py_ssize_t>(index + 1 - cache_lo):]
        return 0

    cdef int _cache_drop_upto(self, uint64_t index) except -1:
        # Evict the cached entries up to and including ``index`` (they are purged). Requires
        # index <= last_index.
        cdef Py_ssize_t count = len(self._cache) - self._head, drop
        cdef uint64_t cache_lo
        if count:
            cache_lo = self.last_index - <uint64_t>(count - 1)
            if index >= cache_lo:
                drop = <Py_ssize_t>(index + 1 - cache_lo)
                self._base_bytes = self._cum[self._head + drop - 1]
                self._head += drop
                self._maybe_compact()
        return 0
