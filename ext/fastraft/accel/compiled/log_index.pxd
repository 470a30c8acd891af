from fastraft.accel.compiled.log_cache cimport LogCache


cdef class LogIndex(LogCache):
    pass
