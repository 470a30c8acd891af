from libc.stdint cimport uint64_t

from fastraft.accel.compiled.members cimport Member


cdef enum:
    # The results of vote_result, the values of progress.VOTE_PENDING, VOTE_WON, VOTE_LOST.
    C_VOTE_PENDING = 0
    C_VOTE_WON = 1
    C_VOTE_LOST = 2


cdef uint64_t quorum_value(const Member *m, Py_ssize_t n, uint64_t *scratch,
                           bint of_seq) noexcept
cdef bint quorum_active(const Member *m, Py_ssize_t n) noexcept
cdef int vote_result(const Member *m, Py_ssize_t n) noexcept
