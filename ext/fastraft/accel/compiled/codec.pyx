# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""The codec for log entries and Raft messages, compiled. Twin: fastraft/accel/pure/codec.py,
which is the spec: it documents the frame layout, and this module raises the same exception
types with the same messages for the same input.

This module encodes and decodes the messages; the frame (header, checksum, size limit) is
frame's, the entries and the entry batches are codec_entries', and both are re-exported here,
so ``codec`` is the whole codec. A message is encoded in two passes over its fields (check and
size each, then write into a frame allocated once at its final size); its entries go through
codec_entries' C functions.
"""

from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.unicode cimport PyUnicode_DecodeUTF8
from libc.stdint cimport uint8_t, uint32_t, uint64_t
from libc.string cimport memcpy

from fastraft.accel.compiled.codec_entries cimport (
    prepare_entries, read_entries, where, write_entries)
from fastraft.accel.compiled.frame cimport (
    C_HEADER, C_MESSAGE, check_limit, contiguous, new_frame, open_frame, seal)
from fastraft.accel.compiled.ints cimport (
    MAX_U32, fr_load_u32, fr_load_u64, fr_store_u32, fr_store_u64)

from fastraft.errors import CodecError
from fastraft.messages import MESSAGE_TYPES, wire_fields

from fastraft.accel.compiled.codec_entries import (
    ENTRY_HEADER_SIZE, MAX_ENTRY_KIND, decode_entries, encode_entries)
from fastraft.accel.compiled.frame import (
    DEFAULT_MAX_FRAME_BYTES, FRAME_ENTRIES, FRAME_MESSAGE, HEADER_SIZE, WIRE_VERSION, frame_size)

cdef enum:
    # Message field kinds, the codes of _FIELD_CODES.
    F_U64 = 0
    F_BOOL = 1
    F_BYTES = 2
    F_STR = 3
    F_ENTRIES = 4
    F_UNKNOWN = -1

_FIELD_CODES = {"u64": F_U64, "bool": F_BOOL, "bytes": F_BYTES, "str": F_STR,
                "entries": F_ENTRIES}
# Per message class: [(name, code, kind), ...] from its wire_fields; at most one per tag.
cdef dict _plans = {}


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
    cdef uint64_t limit = check_limit(max_frame_bytes)
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
                value = prepare_entries(value, &size)
            except (TypeError, ValueError) as e:  # OverflowError is a ValueError
                raise type(e)(f"{cls.__name__}.{name}: {e}") from None
            body_len += size
        else:
            raise TypeError(f"{cls.__name__}.{name} has unknown field kind {kind!r}")
        values[i] = value
    # Pass 2: write.
    cdef bytes frame = new_frame(body_len, limit, max_frame_bytes)
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
            w = write_entries(w, <list>value)
        else:
            size = PyBytes_GET_SIZE(value)
            fr_store_u32(w, <uint32_t>size)
            memcpy(w + 4, PyBytes_AS_STRING(value), size)
            w += 4 + size
    seal(frame, C_MESSAGE)
    return frame


cdef object _message_at(const unsigned char *p, Py_ssize_t size, uint64_t limit,
                        object max_frame_bytes):
    cdef Py_ssize_t end = open_frame(p, size, C_MESSAGE, limit, max_frame_bytes)
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
                raise CodecError(f"{where(cls, name)}truncated u64")
            args[name] = fr_load_u64(p + pos)
            pos += 8
        elif code == F_BOOL:
            if pos == end:
                raise CodecError(f"{where(cls, name)}truncated bool")
            b = p[pos]
            if b > 1:
                raise CodecError(f"{where(cls, name)}bad bool byte {b}")
            args[name] = b == 1
            pos += 1
        elif code == F_BYTES or code == F_STR:
            if end - pos < 4:
                raise CodecError(f"{where(cls, name)}truncated length")
            length = fr_load_u32(p + pos)
            pos += 4
            if length > end - pos:
                raise CodecError(f"{where(cls, name)}{length} bytes overrun the "
                                 f"{end - pos} bytes left")
            if code == F_STR:
                try:
                    args[name] = PyUnicode_DecodeUTF8(<const char *>p + pos, length, NULL)
                except UnicodeDecodeError:
                    raise CodecError(f"{where(cls, name)}invalid UTF-8") from None
            else:
                args[name] = PyBytes_FromStringAndSize(<const char *>p + pos, length)
            pos += length
        elif code == F_ENTRIES:
            args[name] = read_entries(p, pos, end, cls, name, &pos)
        else:
            raise CodecError(f"{where(cls, name)}unknown field kind {kind!r}")
    if pos != end:
        raise CodecError(f"{end - pos} bytes of trailing garbage after {cls.__name__}")
    try:
        return cls(**args)
    except (TypeError, ValueError) as e:
        raise CodecError(f"{cls.__name__}: {e}") from None


def decode_message(data, max_frame_bytes=DEFAULT_MAX_FRAME_BYTES):
    """Decode one FRAME_MESSAGE frame into its message object; CodecError on any bad input
    (including an unknown tag)."""
    cdef uint64_t limit = check_limit(max_frame_bytes)
    cdef Py_buffer buf
    if type(data) is bytes:
        return _message_at(<const unsigned char *>PyBytes_AS_STRING(data),
                           PyBytes_GET_SIZE(data), limit, max_frame_bytes)
    view = contiguous(data)
    PyObject_GetBuffer(view, &buf, PyBUF_SIMPLE)
    try:
        return _message_at(<const unsigned char *>buf.buf, buf.len, limit, max_frame_bytes)
    finally:
        PyBuffer_Release(&buf)
