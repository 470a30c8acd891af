# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""The entries of the codec, compiled: an entry's wire form, and a batch of entries in one
frame. Twin: fastraft/accel/pure/codec_entries.py, which is the spec (the layout is
documented in fastraft/accel/pure/codec.py): same exception types with the same messages for
the same input.

The hot paths are C loops over a buffer allocated once at its final size: encoding makes one
sizing pass that validates every entry (``prepare_entries``), then one writing pass
(``write_entries``); decoding (``read_entries``) checks every count and length against the
bytes left before allocating, and builds compiled ``Entry`` objects without running
``Entry.__init__``. The messages (codec) carry entries through the same three C functions
(codec_entries.pxd).
"""

from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.list cimport PyList_New, PyList_SET_ITEM
from cpython.ref cimport Py_INCREF
from libc.stdint cimport uint8_t, uint32_t, uint64_t
from libc.string cimport memcpy

from fastraft.accel.compiled.entry cimport Entry, make_entry
from fastraft.accel.compiled.frame cimport (
    C_ENTRIES, C_HEADER, check_limit, contiguous, new_frame, open_frame, seal)
from fastraft.accel.compiled.ints cimport (
    MAX_U32, fr_load_u32, fr_load_u64, fr_store_u32, fr_store_u64)

from fastraft.errors import CodecError
from fastraft.accel.compiled.frame import DEFAULT_MAX_FRAME_BYTES

__all__ = ["ENTRY_HEADER_SIZE", "MAX_ENTRY_KIND", "encode_entries", "decode_entries"]

ENTRY_HEADER_SIZE = 21
MAX_ENTRY_KIND = 2

cdef Entry _entry_from(object obj, Py_ssize_t i):
    """A compiled Entry from any object with term/index/kind/payload, checked for the wire."""
    term, index, kind, payload = obj.term, obj.index, obj.kind, obj.payload
    for name, value in (("term", term), ("index", index)):
        if not isinstance(value, int):
            raise TypeError(f"entry {i}: {name} must be an int, not {type(value).__name__}")
        if not 0 <= value <= 0xFFFFFFFFFFFFFFFF:
            raise OverflowError(f"entry {i}: {name} {value} does not fit in u64")
    if not isinstance(kind, int):
        raise TypeError(f"entry {i}: kind must be an int, not {type(kind).__name__}")
    if not 0 <= kind <= C_MAX_KIND:
        raise ValueError(f"entry {i}: unknown entry kind {kind}")
    if type(payload) is not bytes:
        if not isinstance(payload, (bytearray, memoryview)):
            raise TypeError(f"entry {i}: payload must be bytes, not {type(payload).__name__}")
        payload = bytes(payload)
    return make_entry(term, index, kind, payload)


cdef inline Entry _checked_entry(object obj, Py_ssize_t i):
    """``obj`` as a compiled Entry that the wire can carry (own entries are not copied)."""
    cdef Entry e
    if type(obj) is Entry:
        e = <Entry>obj
        if e.kind > C_MAX_KIND:
            raise ValueError(f"entry {i}: unknown entry kind {e.kind}")
        if e.payload is None:
            raise TypeError(f"entry {i}: payload must be bytes, not NoneType")
    else:
        e = _entry_from(obj, i)
    if <uint64_t>PyBytes_GET_SIZE(e.payload) > MAX_U32:
        raise ValueError(f"entry {i}: payload of {PyBytes_GET_SIZE(e.payload)} bytes "
                         f"does not fit in u32")
    return e


cdef list prepare_entries(object entries, Py_ssize_t *size_out):
    """A new list of every entry as a checked compiled Entry (errors in order, as the twin's
    entry_parts); ``size_out`` receives the bytes of their wire form, count included.

    Invariant: the result is ours and holds only immutable entries, so the size computed here
    is the size written later, even if a finalizer run by an allocation in between changes
    the caller's list (the copy costs a pointer and a reference count per entry).
    """
    cdef list seq = list(entries)
    cdef Py_ssize_t n = len(seq), i, size = 4
    cdef Entry e
    if <uint64_t>n > MAX_U32:
        raise ValueError(f"{n} entries do not fit in one frame")
    for i in range(n):
        obj = seq[i]
        e = _checked_entry(obj, i)
        if e is not obj:
            seq[i] = e
        size += C_ENTRY_HEAD + PyBytes_GET_SIZE(e.payload)
    size_out[0] = size
    return seq


cdef unsigned char *write_entries(unsigned char *w, list entries):
    """Write count and entries (all checked compiled Entry); return the end."""
    cdef Py_ssize_t n = len(entries), i, size
    cdef Entry e
    fr_store_u32(w, <uint32_t>n)
    w += 4
    for i in range(n):
        e = <Entry>entries[i]
        size = PyBytes_GET_SIZE(e.payload)
        fr_store_u64(w, e.term)
        fr_store_u64(w + 8, e.index)
        w[16] = e.kind
        fr_store_u32(w + 17, <uint32_t>size)
        memcpy(w + C_ENTRY_HEAD, PyBytes_AS_STRING(e.payload), size)
        w += C_ENTRY_HEAD + size
    return w


def encode_entries(entries, max_frame_bytes=DEFAULT_MAX_FRAME_BYTES):
    """Encode a batch of entries into one FRAME_ENTRIES frame (one checksum for all).
    Errors as the twin's: the failing entry's position is named."""
    cdef uint64_t limit = check_limit(max_frame_bytes)
    cdef Py_ssize_t body_len
    cdef list checked = prepare_entries(entries, &body_len)
    cdef bytes frame = new_frame(body_len, limit, max_frame_bytes)
    write_entries(<unsigned char *>PyBytes_AS_STRING(frame) + C_HEADER, checked)
    seal(frame, C_ENTRIES)
    return frame


cdef str where(object cls, object name):
    return "" if cls is None else f"{cls.__name__}.{name}: "


cdef list read_entries(const unsigned char *p, Py_ssize_t pos, Py_ssize_t end,
                        object cls, object name, Py_ssize_t *pos_out):
    """Decode a count and that many entries from p[pos:end] (the twin's read_entries);
    errors are prefixed with ``cls.name`` when given."""
    if end - pos < 4:
        raise CodecError(f"{where(cls, name)}truncated entry count")
    cdef Py_ssize_t count = fr_load_u32(p + pos), i, size
    pos += 4
    if count > (end - pos) // C_ENTRY_HEAD:
        raise CodecError(f"{where(cls, name)}{count} entries cannot fit in the "
                         f"{end - pos} bytes left")
    cdef list out = PyList_New(count)
    cdef uint8_t kind
    cdef Entry e
    for i in range(count):
        if end - pos < C_ENTRY_HEAD:
            raise CodecError(f"{where(cls, name)}entry {i}: truncated entry header")
        kind = p[pos + 16]
        size = fr_load_u32(p + pos + 17)
        if kind > C_MAX_KIND:
            raise CodecError(f"{where(cls, name)}entry {i}: unknown entry kind {kind}")
        if size > end - pos - C_ENTRY_HEAD:
            raise CodecError(f"{where(cls, name)}entry {i}: payload of {size} bytes overruns "
                             f"the {end - pos - C_ENTRY_HEAD} bytes left")
        e = make_entry(fr_load_u64(p + pos), fr_load_u64(p + pos + 8), kind,
                       PyBytes_FromStringAndSize(<const char *>p + pos + C_ENTRY_HEAD, size))
        Py_INCREF(e)  # PyList_SET_ITEM steals a reference; a NULL slot left by an error is fine
        PyList_SET_ITEM(out, i, e)
        pos += C_ENTRY_HEAD + size
    pos_out[0] = pos
    return out


cdef list _decode_entries_at(const unsigned char *p, Py_ssize_t size, uint64_t limit,
                             object max_frame_bytes):
    cdef Py_ssize_t end = open_frame(p, size, C_ENTRIES, limit, max_frame_bytes), pos
    cdef list out = read_entries(p, C_HEADER, end, None, None, &pos)
    if pos != end:
        raise CodecError(f"{end - pos} bytes of trailing garbage after the entries")
    return out


def decode_entries(data, max_frame_bytes=DEFAULT_MAX_FRAME_BYTES):
    """Decode one FRAME_ENTRIES frame into a list of Entry; CodecError on any bad input."""
    cdef uint64_t limit = check_limit(max_frame_bytes)
    cdef Py_buffer buf
    if type(data) is bytes:
        return _decode_entries_at(<const unsigned char *>PyBytes_AS_STRING(data),
                                  PyBytes_GET_SIZE(data), limit, max_frame_bytes)
    view = contiguous(data)
    PyObject_GetBuffer(view, &buf, PyBUF_SIMPLE)
    try:
        return _decode_entries_at(<const unsigned char *>buf.buf, buf.len, limit,
                                  max_frame_bytes)
    finally:
        PyBuffer_Release(&buf)
