from libc.stdint cimport uint64_t

from fastraft.accel.compiled.entry cimport Entry


cdef class LogTerms:
    # The last log id and the last purged log id (Raft §5.3, §7).
    cdef readonly uint64_t last_index
    cdef readonly uint64_t last_term
    cdef readonly uint64_t purged_index
    cdef readonly uint64_t purged_term
    # Term runs: run k covers [_run_start[k], _run_start[k + 1]) with term _run_term[k].
    cdef uint64_t *_run_start
    cdef uint64_t *_run_term
    cdef Py_ssize_t _runs
    cdef Py_ssize_t _runs_cap

    cdef uint64_t _term_of(self, uint64_t index) noexcept
    cdef Py_ssize_t _run_of(self, uint64_t index) noexcept
    cdef Py_ssize_t _run_with_term(self, uint64_t term) noexcept
    cdef int _reserve_runs(self, Py_ssize_t need) except -1
    cdef int _push_run(self, uint64_t start, uint64_t term) except -1
    cdef int _cut_runs_after(self, uint64_t index) except -1
    cdef int _cut_runs_upto(self, uint64_t index) except -1


cdef list as_list(object seq)
cdef list entry_list(object entries)
cdef object as_bytes(object payload)
cdef Entry to_entry(object obj)
