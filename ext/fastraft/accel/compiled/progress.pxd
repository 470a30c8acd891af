from libc.stdint cimport uint64_t

from fastraft.accel.compiled.members cimport Member, MemberTable


cdef class ProgressTracker(MemberTable):
    cdef void _free_upto(self, Member *p, uint64_t index) noexcept
