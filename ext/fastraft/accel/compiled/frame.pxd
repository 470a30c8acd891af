from libc.stdint cimport uint8_t, uint32_t, uint64_t


cdef enum:
    # WIRE_VERSION, HEADER_SIZE, FRAME_ENTRIES and FRAME_MESSAGE, for the C code.
    C_VERSION = 2
    C_HEADER = 12
    C_ENTRIES = 1
    C_MESSAGE = 2


cdef uint64_t check_limit(object max_frame_bytes) except 0
cdef object contiguous(object data)
cdef Py_ssize_t open_frame(const unsigned char *p, Py_ssize_t size, int expected_kind,
                           uint64_t limit, object max_frame_bytes) except -1
cdef bytes new_frame(Py_ssize_t body_len, uint64_t limit, object max_frame_bytes)
cdef int seal(bytes frame, uint8_t kind) except -1
