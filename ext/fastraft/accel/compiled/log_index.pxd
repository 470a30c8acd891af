from libc.stdint cimport uint64_t

from fastraft.accel.compiled.entry cimport Entry


cdef class LogIndex:
    # The last log id and the last purged log id (Raft §5.3, §7).
    cdef readonly uint64_t last_index
    cdef readonly uint64_t last_term
    cdef readonly uint64_t purged_index
    cdef readonly uint64_t purged_term
    # The bounds as given (Python ints) and clamped to u64 for the C code.
    cdef readonly object max_cached_entries
    cdef readonly object max_cached_bytes
    cdef uint64_t _max_n
    cdef uint64_t _max_b
    # Term runs: run k covers [_run_start[k], _run_start[k + 1]) with term _run_term[k].
    cdef uint64_t *_run_start
    cdef uint64_t *_run_term
    cdef Py_ssize_t _runs
    cdef Py_ssize_t _runs_cap
    # The cache: _cache[_head:] are the entries [cache_lo, last_index]; _cum[k] is the running
    # byte total through _cache[k]; _base_bytes is the total before _cache[_head].
    cdef list _cache
    cdef uint64_t *_cum
    cdef Py_ssize_t _cum_cap
    cdef Py_ssize_t _head
    cdef uint64_t _base_bytes

    cdef uint64_t _term_of(self, uint64_t index) noexcept
    cdef Py_ssize_t _run_of(self, uint64_t index) noexcept
    cdef int _push_run(self, uint64_t start, uint64_t term) except -1
    cdef Py_ssize_t _run_with_term(self, uint64_t term) noexcept
    cdef int _reserve_runs(self, Py_ssize_t need) except -1
    cdef int _raise_outside_cache(self, object lo, object hi) except -1
    cdef int _cache_extend(self, list entries) except -1
    cdef int _cache_clear(self) except -1
    cdef int _maybe_compact(self) except -1
