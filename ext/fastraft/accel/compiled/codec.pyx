# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""The codec for log entries and Raft messages, compiled. Twin: fastraft/accel/pure/codec.py,
which is the spec: it documents the frame layout, and this module raises the same exception
types with the same messages for the same input.

Hot paths (entry batches, a message's entries) are C loops over a buffer allocated once at
its final size: encoding makes one sizing pass that validates every entry, then one writing
pass; decoding checks every count and length against the bytes left before allocating, and
builds compiled ``Entry`` objects without running ``Entry.__init__``.
"""

from cpython.buffer cimport PyBUF_READ, PyBUF_SIMPLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.list cimport PyList_New, PyList_SET_ITEM
from cpython.memoryview cimport PyMemoryView_FromMemory
from cpython.ref cimport Py_INCREF
from cpython.unicode cimport PyUnicode_DecodeUTF8
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t
from libc.string cimport memcpy

from fastraft.accel.compiled.entry cimport Entry, make_entry

# The crc32c package is imported on first use, not here: its own import pulls in socket
# (through importlib.metadata), and importing fastraft's engine must load no I/O module.
cdef object _crc32c_package = None

from fastraft.errors import CodecError
from fastraft.messages import MESSAGE_TYPES, wire_fields

WIRE_VERSION = 2  # see the twin for what changed in version 2
HEADER_SIZE = 12
DEFAULT_MAX_FRAME_BYTES = 64 * 1024 * 1024
FRAME_ENTRIES = 1
FRAME_MESSAGE = 2
ENTRY_HEADER_SIZE = 21
MAX_ENTRY_KIND = 2

cdef enum:
    C_VERSION = 2
    C_HEADER = 12
    C_ENTRIES = 1
    C_MESSAGE = 2
    C_ENTRY_HEAD = 21
    C_MAX_KIND = 2
    # Message field kinds, the codes of _FIELD_CODES.
    F_U64 = 0
    F_BOOL = 1
    F_BYTES = 2
    F_STR = 3
    F_ENTRIES = 4
    F_UNKNOWN = -1

cdef uint64_t MAX_U32 = 0xFFFFFFFF
# Limits above this are clamped: no frame can be this long (its body length is a u32).
cdef uint64_t LIMIT_CLAMP = 1 << 40
# Below this many bytes one stream of crc32 instructions beats a call into the package.
cdef Py_ssize_t INLINE_CRC_MAX_BYTES = 4096
cdef bint inline_crc = fr_crc32c_inline_available()

_FRAME_NAMES = {1: "an entry batch", 2: "a message"}
_FIELD_CODES = {"u64": F_U64, "bool": F_BOOL, "bytes": F_BYTES, "str": F_STR,
                "entries": F_ENTRIES}
# Per message class: [(name, code, kind), ...] from its wire_fields; at most one per tag.
cdef dict _plans = {}


# --- frames ------------------------------------------------------------------------------


cdef uint32_t _crc(const unsigned char *p, Py_ssize_t n) except? 0:
    if inline_crc and n <= INLINE_CRC_MAX_BYTES:
        return fr_crc32c_inline(p, <size_t>n)
    global _crc32c_package
    if _crc32c_package is None:
        from crc32c import crc32c as _crc32c_package
    return _crc32c_package(PyMemoryView_FromMemory(<char *>p, n, PyBUF_READ))


cdef uint64_t _check_limit(object max_frame_bytes) except 0:
    if not isinstance(max_frame_bytes, int):
        raise TypeError(f"max_frame_bytes must be an int, not {type(max_frame_bytes).__name__}")
    if max_frame_bytes < C_HEADER:
        raise ValueError(f"max_frame_bytes must be at least {C_HEADER}, got {max_frame_bytes}")
    if max_frame_bytes > LIMIT_CLAMP:
        return LIMIT_CLAMP
    return <uint64_t>max_frame_bytes


cdef object _contiguous(object data):
    """A byte view of any contiguous bytes-like object (the same checks as the twin)."""
    try:
        view = memoryview(data)
    except TypeError:
        raise TypeError(f"expected a bytes-like object, not {type(data).__name__}") from None
    if not view.c_contiguous:
        raise TypeError("expected a contiguous bytes-like object")
    return view.cast("B")


cdef Py_ssize_t _read_header(const unsigned char *p, Py_ssize_t size, uint64_t limit,
                             object max_frame_bytes, int *kind_out, uint32_t *crc_out) except -1:
    """Validate a header; return the whole frame's length (the twin's _read_header)."""
    if size < C_HEADER:
        raise CodecError(f"truncated frame header: {size} of {C_HEADER} bytes")
    cdef uint8_t version = p[0]
    cdef uint8_t kind = p[1]
    cdef uint16_t reserved = fr_load_u16(p + 2)
    cdef uint64_t total = C_HEADER + <uint64_t>fr_load_u32(p + 4)
    if version != C_VERSION:
        raise CodecError(f"unsupported wire version {version} (this build speaks {C_VERSION})")
    if kind < C_ENTRIES or kind > C_MESSAGE:  # 3, once a per-entry record, is unknown too
        raise CodecError(f"unknown frame kind {kind}")
    if reserved != 0:
        raise CodecError(f"reserved header field is {reserved}, must be 0")
    if total > limit:
        raise CodecError(f"frame of {total} bytes exceeds the limit of "
                         f"{int(max_frame_bytes)} bytes")
    kind_out[0] = kind
    crc_out[0] = fr_load_u32(p + 8)
    return <Py_ssize_t>total


cdef Py_ssize_t _open_frame(const unsigned char *p, Py_ssize_t size, int expected_kind,
                            uint64_t limit, object max_frame_bytes) except -1:
    """Validate a whole frame of ``expected_kind``; return its length."""
    cdef int kind
    cdef uint32_t crc, actual
    cdef Py_ssize_t total = _read_header(p, size, limit, max_frame_bytes, &kind, &crc)
    if kind != expected_kind:
        raise CodecError(f"expected {_FRAME_NAMES[expected_kind]} frame, "
                         f"got {_FRAME_NAMES[kind]} frame")
    if size < total:
        raise CodecError(f"truncated frame: {size} of {total} bytes")
    if size > total:
        raise CodecError(f"{size - total} bytes of trailing garbage after the frame")
    actual = _crc(p + C_HEADER, total - C_HEADER)
    if actual != crc:
        raise CodecError(f"checksum mismatch: header says {crc:#010x}, "
                         f"body has {actual:#010x}")
    return total


cdef bytes _new_frame(Py_ssize_t body_len, uint64_t limit, object max_frame_bytes):
    """An uninitialised frame of ``body_len`` body bytes, within the limit."""
    cdef uint64_t total = C_HEADER + <uint64_t>body_len
    if total > limit:
        raise ValueError(f"frame of {total} bytes exceeds the limit of "
                         f"{int(max_frame_bytes)} bytes")
    if <uint64_t>body_len > MAX_U32:
        raise ValueError(f"frame body of {body_len} bytes does not fit in u32")
    return PyBytes_FromStringAndSize(NULL, <Py_ssize_t>total)


cdef int _seal(bytes frame, uint8_t kind) except -1:
    """Write the header of a frame whose body is complete."""
    cdef unsigned char *w = <unsigned char *>PyBytes_AS_STRING(frame)
    cdef Py_ssize_t body_len = PyBytes_GET_SIZE(frame) - C_HEADER
    w[0] = C_VERSION
    w[1] = kind
    w[2] = 0
    w[3] = 0
    fr_store_u32(w + 4, <uint32_t>body_len)
    fr_store_u32(w + 8, _crc(w + C_HEADER, body_len))
    return 0


def frame_size(header, max_frame_bytes=DEFAULT_MAX_FRAME_BYTES):
    """Validate a frame header and return the whole frame's length (header + body).

    ``header`` holds at least the first HEADER_SIZE bytes of a frame (more is ignored).
    CodecError for a short header, a wrong version, an unknown frame kind, a set reserved
    field or a frame longer than ``max_frame_bytes``; the checksum is not checked here.
    """
    cdef uint64_t limit = _check_limit(max_frame_bytes)
    cdef int kind
    cdef uint32_t crc
    if type(header) is not bytes:
        header = _contiguous(header)[:C_HEADER].tobytes()
    cdef Py_ssize_t size = PyBytes_GET_SIZE(header)
    return _read_header(<const unsigned char *>PyBytes_AS_STRING(header),
                        size if size < C_HEADER else C_HEADER,
                        limit, max_frame_bytes, &kind, &crc)


# --- entries -----------------------------------------------------------------------------


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


cdef list _prepare_entries(object entries, Py_ssize_t *size_out):
    """A new list of every entry as a checked compiled Entry (errors in order, as the twin's
    _entry_parts); ``size_out`` receives the bytes of their wire form, count included.

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


cdef unsigned char *_write_entries(unsigned char *w, list entries):
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
    cdef uint64_t limit = _check_limit(max_frame_bytes)
    cdef Py_ssize_t body_len
    cdef list checked = _prepare_entries(entries, &body_len)
    cdef bytes frame = _new_frame(body_len, limit, max_frame_bytes)
    _write_entries(<unsigned char *>PyBytes_AS_STRING(frame) + C_HEADER, checked)
    _seal(frame, C_ENTRIES)
    return frame


cdef str _where(object cls, object name):
    return "" if cls is None else f"{cls.__name__}.{name}: "


cdef list _read_entries(const unsigned char *p, Py_ssize_t pos, Py_ssize_t end,
                        object cls, object name, Py_ssize_t *pos_out):
    """Decode a count and that many entries from p[pos:end] (the twin's _read_entries);
    errors are prefixed with ``cls.name`` when given."""
    if end - pos < 4:
        raise CodecError(f"{_where(cls, name)}truncated entry count")
    cdef Py_ssize_t count = fr_load_u32(p + pos), i, size
    pos += 4
    if count > (end - pos) // C_ENTRY_HEAD:
        raise CodecError(f"{_where(cls, name)}{count} entries cannot fit in the "
                         f"{end - pos} bytes left")
    cdef list out = PyList_New(count)
    cdef uint8_t kind
    cdef Entry e
    for i in range(count):
        if end - pos < C_ENTRY_HEAD:
            raise CodecError(f"{_where(cls, name)}entry {i}: truncated entry header")
        kind = p[pos + 16]
        size = fr_load_u32(p + pos + 17)
        if kind > C_MAX_KIND:
            raise CodecError(f"{_where(cls, name)}entry {i}: unknown entry kind {kind}")
        if size > end - pos - C_ENTRY_HEAD:
            raise CodecError(f"{_where(cls, name)}entry {i}: payload of {size} bytes overruns "
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
    cdef Py_ssize_t end = _open_frame(p, size, C_ENTRIES, limit, max_frame_bytes), pos
    cdef list out = _read_entries(p, C_HEADER, end, None, None, &pos)
    if pos != end:
        raise CodecError(f"{end - pos} bytes of trailing garbage after the entries")
    return out


def decode_entries(data, max_frame_bytes=DEFAULT_MAX_FRAME_BYTES):
    """Decode one FRAME_ENTRIES frame into a list of Entry; CodecError on any bad input."""
    cdef uint64_t limit = _check_limit(max_frame_bytes)
    cdef Py_buffer buf
    if type(data) is bytes:
        return _decode_entries_at(<const unsigned char *>PyBytes_AS_STRING(data),
                                  PyBytes_GET_SIZE(data), limit, max_frame_bytes)
    view = _contiguous(data)
    PyObject_GetBuffer(view, &buf, PyBUF_SIMPLE)
    try:
        return _decode_entries_at(<const unsigned char *>buf.buf, buf.len, limit,
                                  max_frame_bytes)
    finally:
        PyBuffer_Release(&buf)


# --- messages ----------------------------------------------------------------------------


cdef list _plan_of(object cls):
    """[(name, code, kind), ...] for the class's wire_fields, computed once per class."""
    cached = _plans.get(cls)
    if cached is not None:
        return <list>cached
    plan = [(name, _FIELD_CODES.get(kind, F_UNKNOWN), kind) for name, kind in wire_fields(cls)]
    if len(_plans) >= 256:  # one entry per tag; only a churn of classes can get here
        _plans.clear()
    _plans[cls] = plan
    return plan


def encode_message(msg, max_frame_bytes=DEFAULT_MAX_FRAME_BYTES):
    """Encode one message (an instance of a class in MESSAGE_TYPES) into a FRAME_MESSAGE
    frame. Errors as the twin's."""
    cdef uint64_t limit = _check_limit(max_frame_bytes)
    cls = type(msg)
    tag = getattr(cls, "TAG", None)
    if type(tag) is not int or MESSAGE_TYPES.get(tag) is not cls:
        raise TypeError(f"{cls.__name__} is not a message type in fastraft.messages.MESSAGE_TYPES")
    if not 0 <= tag <= 255:
        raise ValueError(f"{cls.__name__}.TAG = {tag} does not fit in u8")
    cdef list plan = _plan_of(cls)
    cdef Py_ssize_t n = len(plan), i, body_len = 1, size
    cdef list values = [None] * n
    cdef int code
    cdef uint64_t u
    # Pass 1: check and size every field, in order, as the twin does.
    for i in range(n):
        name, code, kind = <tuple>plan[i]
        value = getattr(msg, name)
        if code == F_U64:
            if not isinstance(value, int):
                raise TypeError(f"{cls.__name__}.{name} must be an int, "
                                f"not {type(value).__name__}")
            if not 0 <= value <= 0xFFFFFFFFFFFFFFFF:
                raise OverflowError(f"{cls.__name__}.{name} = {value} does not fit in u64")
            body_len += 8
        elif code == F_BOOL:
            value = True if value else False
            body_len += 1
        elif code == F_BYTES or code == F_STR:
            if code == F_STR:
                if not isinstance(value, str):
                    raise TypeError(f"{cls.__name__}.{name} must be a str, "
                                    f"not {type(value).__name__}")
                try:
                    value = value.encode()
                except UnicodeEncodeError:
                    raise ValueError(f"{cls.__name__}.{name} is not encodable as UTF-8") from None
            elif type(value) is not bytes:
                if not isinstance(value, (bytearray, memoryview)):
                    raise TypeError(f"{cls.__name__}.{name} must be bytes, "
                                    f"not {type(value).__name__}")
                value = bytes(value)
            if <uint64_t>PyBytes_GET_SIZE(value) > MAX_U32:
                raise ValueError(f"{cls.__name__}.{name}: {PyBytes_GET_SIZE(value)} bytes "
                                 f"do not fit in u32")
            body_len += 4 + PyBytes_GET_SIZE(value)
        elif code == F_ENTRIES:
            try:
                value = _prepare_entries(value, &size)
            except (TypeError, ValueError) as e:  # OverflowError is a ValueError
                raise type(e)(f"{cls.__name__}.{name}: {e}") from None
            body_len += size
        else:
            raise TypeError(f"{cls.__name__}.{name} has unknown field kind {kind!r}")
        values[i] = value
    # Pass 2: write.
    cdef bytes frame = _new_frame(body_len, limit, max_frame_bytes)
    cdef unsigned char *w = <unsigned char *>PyBytes_AS_STRING(frame) + C_HEADER
    w[0] = <uint8_t>tag
    w += 1
    for i in range(n):
        code = (<tuple>plan[i])[1]
        value = values[i]
        if code == F_U64:
            u = value
            fr_store_u64(w, u)
            w += 8
        elif code == F_BOOL:
            w[0] = 1 if value is True else 0
            w += 1
        elif code == F_ENTRIES:
            w = _write_entries(w, <list>value)
        else:
            size = PyBytes_GET_SIZE(value)
            fr_store_u32(w, <uint32_t>size)
            memcpy(w + 4, PyBytes_AS_STRING(value), size)
            w += 4 + size
    _seal(frame, C_MESSAGE)
    return frame


cdef object _message_at(const unsigned char *p, Py_ssize_t size, uint64_t limit,
                        object max_frame_bytes):
    cdef Py_ssize_t end = _open_frame(p, size, C_MESSAGE, limit, max_frame_bytes)
    cdef Py_ssize_t pos = C_HEADER, n, i, length
    if pos == end:
        raise CodecError("empty message body")
    cdef uint8_t tag = p[pos]
    pos += 1
    cls = MESSAGE_TYPES.get(tag)
    if cls is None:
        raise CodecError(f"unknown message tag {tag}")
    cdef list plan = _plan_of(cls)
    n = len(plan)
    cdef dict args = {}
    cdef int code
    cdef uint8_t b
    for i in range(n):
        name, code, kind = <tuple>plan[i]
        if code == F_U64:
            if end - pos < 8:
                raise CodecError(f"{_where(cls, name)}truncated u64")
            args[name] = fr_load_u64(p + pos)
            pos += 8
        elif code == F_BOOL:
            if pos == end:
                raise CodecError(f"{_where(cls, name)}truncated bool")
            b = p[pos]
            if b > 1:
                raise CodecError(f"{_where(cls, name)}bad bool byte {b}")
            args[name] = b == 1
            pos += 1
        elif code == F_BYTES or code == F_STR:
            if end - pos < 4:
                raise CodecError(f"{_where(cls, name)}truncated length")
            length = fr_load_u32(p + pos)
            pos += 4
            if length > end - pos:
                raise CodecError(f"{_where(cls, name)}{length} bytes overrun the "
                                 f"{end - pos} bytes left")
            if code == F_STR:
                try:
                    args[name] = PyUnicode_DecodeUTF8(<const char *>p + pos, length, NULL)
                except UnicodeDecodeError:
                    raise CodecError(f"{_where(cls, name)}invalid UTF-8") from None
            else:
                args[name] = PyBytes_FromStringAndSize(<const char *>p + pos, length)
            pos += length
        elif code == F_ENTRIES:
            args[name] = _read_entries(p, pos, end, cls, name, &pos)
        else:
            raise CodecError(f"{_where(cls, name)}unknown field kind {kind!r}")
    if pos != end:
        raise CodecError(f"{end - pos} bytes of trailing garbage after {cls.__name__}")
    try:
        return cls(**args)
    except (TypeError, ValueError) as e:
        raise CodecError(f"{cls.__name__}: {e}") from None


def decode_message(data, max_frame_bytes=DEFAULT_MAX_FRAME_BYTES):
    """Decode one FRAME_MESSAGE frame into its message object; CodecError on any bad input
    (including an unknown tag)."""
    cdef uint64_t limit = _check_limit(max_frame_bytes)
    cdef Py_buffer buf
    if type(data) is bytes:
        return _message_at(<const unsigned char *>PyBytes_AS_STRING(data),
                           PyBytes_GET_SIZE(data), limit, max_frame_bytes)
    view = _contiguous(data)
    PyObject_GetBuffer(view, &buf, PyBUF_SIMPLE)
    try:
        return _message_at(<const unsigned char *>buf.buf, buf.len, limit, max_frame_bytes)
    finally:
        PyBuffer_Release(&buf)
