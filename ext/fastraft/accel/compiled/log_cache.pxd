from libc.stdint cimport uint64_t

from fastraft.accel.compiled.log_terms cimport LogTerms


cdef class LogCache(LogTerms):
    # The bounds as given (Python ints) and clamped to u64 for the C code.
    cdef readonly object max_cached_entries
    cdef readonly object max_cached_bytes
    cdef uint64_t _max_n
    cdef uint64_t _max_b
    # _cache[_head:] are the entries [cache_lo, last_index]; _cum[k] is the running byte
    # total through _cache[k]; _base_bytes is the total before _cache[_head].
    cdef list _cache
    cdef uint64_t *_cum
    cdef Py_ssize_t _cum_cap
    cdef Py_ssize_t _head
    cdef uint64_t _base_bytes

    cdef int _raise_outside_cache(self, object lo, object hi) except -1
    cdef int _cache_extend(self, list entries) except -1
    cdef int _cache_clear(self) except -1
    cdef int _cache_cut_after(self, uint64_t index) except -1
    cdef int _cache_drop_upto(self, uint64_t index) except -1
    cdef int _maybe_compact(self) except -1
