from libc.stdint cimport uint64_t, uint8_t

cdef class Entry:
    cdef readonly uint64_t term
    cdef readonly uint64_t index
    cdef readonly uint8_t kind
    cdef readonly bytes payload

cdef Entry make_entry(uint64_t term, uint64_t index, uint8_t kind, bytes payload)
