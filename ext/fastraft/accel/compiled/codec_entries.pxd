from fastraft.accel.compiled.entry cimport Entry


cdef enum:
    # ENTRY_HEADER_SIZE and MAX_ENTRY_KIND, for the C code.
    C_ENTRY_HEAD = 21
    C_MAX_KIND = 2


cdef list prepare_entries(object entries, Py_ssize_t *size_out)
cdef unsigned char *write_entries(unsigned char *w, list entries)
cdef list read_entries(const unsigned char *p, Py_ssize_t pos, Py_ssize_t end,
                       object cls, object name, Py_ssize_t *pos_out)
cdef str where(object cls, object name)
