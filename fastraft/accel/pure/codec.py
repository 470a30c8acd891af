"""The codec for log entries and Raft messages, pure-Python twin (the spec) of
``fastraft.accel.compiled.codec``.

Every frame starts with a fixed 12-byte header, all integers little-endian::

    offset  size  field
    0       1     version       WIRE_VERSION; anything else is refused
    1       1     frame kind    FRAME_ENTRIES (1) or FRAME_MESSAGE (2); any other is refused
    2       2     reserved      must be 0
    4       4     body length   bytes after the header
    8       4     checksum      CRC32C (Castagnoli) of the body

The body depends on the frame kind:

* ``FRAME_ENTRIES`` (a batch of entries, one checksum for all of them)::

      count u32, then count times: term u64, index u64, kind u8, payload length u32, payload

* ``FRAME_MESSAGE`` (one Raft message, see ``fastraft.messages``)::

      tag u8, then each field of the class (``fastraft.messages.wire_fields``) in order:
        u64     8 bytes
        bool    1 byte, 0 or 1
        bytes   length u32, then the bytes
        str     length u32, then UTF-8
        entries count u32, then entries as in FRAME_ENTRIES

Decoding is strict, and every check runs before anything is allocated for what it guards:
``max_frame_bytes`` bounds the whole frame (header included) before the body is read; a count
or length inside the body is checked against the bytes that remain; trailing bytes after a
frame, after a message's last field or after a batch's last entry are refused. Any bad input
raises ``CodecError`` naming the problem; the compiled twin raises the same type with the
same message for the same input.

Kind 3 was a per-entry storage record, no longer written or read: it is refused as an
unknown frame kind, and stays unused so that no older frame can be read as a new kind.

The codec is three modules, each with its compiled twin: the frame (frame: header, checksum,
size limit), the entries (codec_entries: an entry's wire form, ``encode_entries`` and
``decode_entries``) and this one, the messages; this one re-exports the other two's public
names, so ``codec`` is the whole codec.
"""

from __future__ import annotations

import struct

from fastraft.errors import CodecError
from fastraft.messages import MESSAGE_TYPES, wire_fields

from .codec_entries import (
    ENTRY_HEADER_SIZE, MAX_ENTRY_KIND, decode_entries, encode_entries, entry_parts, read_entries)
from .frame import BODY_START as _BODY_START
from .frame import (
    DEFAULT_MAX_FRAME_BYTES, FRAME_ENTRIES, FRAME_MESSAGE, HEADER_SIZE, WIRE_VERSION, check_limit,
    frame_size, open_frame, wrap_frame)
from .ints import MAX_U32 as _MAX_U32
from .ints import MAX_U64 as _MAX_U64

__all__ = [
    "WIRE_VERSION",
    "HEADER_SIZE",
    "DEFAULT_MAX_FRAME_BYTES",
    "FRAME_ENTRIES",
    "FRAME_MESSAGE",
    "ENTRY_HEADER_SIZE",
    "MAX_ENTRY_KIND",
    "frame_size",
    "encode_entries",
    "decode_entries",
    "encode_message",
    "decode_message",
]

_U64 = struct.Struct("<Q")
_U32 = struct.Struct("<I")

# --- messages ----------------------------------------------------------------------------

# Each message class's wire_fields, computed once per class (at most one class per tag).
_FIELD_TABLES: dict[type, tuple[tuple[str, str], ...]] = {}


def _fields_of(cls) -> tuple[tuple[str, str], ...]:
    table = _FIELD_TABLES.get(cls)
    if table is None:
        if len(_FIELD_TABLES) >= 256:  # one per tag; only a churn of classes gets here
            _FIELD_TABLES.clear()
        table = _FIELD_TABLES[cls] = wire_fields(cls)
    return table

def _message_class(msg) -> type:
    cls = type(msg)
    tag = getattr(cls, "TAG", None)
    if type(tag) is not int or MESSAGE_TYPES.get(tag) is not cls:
        raise TypeError(f"{cls.__name__} is not a message type in fastraft.messages.MESSAGE_TYPES")
    if not 0 <= tag <= 255:
        raise ValueError(f"{cls.__name__}.TAG = {tag} does not fit in u8")
    return cls


def encode_message(msg, max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES) -> bytes:
    """Encode one message (an instance of a class in MESSAGE_TYPES) into a FRAME_MESSAGE frame.

    Raises TypeError for an unregistered class or a field of the wrong type, OverflowError
    for an integer outside u64, ValueError for a bad entry or an oversized frame.
    """
    max_frame_bytes = check_limit(max_frame_bytes)
    cls = _message_class(msg)
    parts = [bytes((cls.TAG,))]
    for name, kind in _fields_of(cls):
        value = getattr(msg, name)
        where = f"{cls.__name__}.{name}"
        if kind == "u64":
            if not isinstance(value, int):
                raise TypeError(f"{where} must be an int, not {type(value).__name__}")
            if not 0 <= value <= _MAX_U64:
                raise OverflowError(f"{where} = {value} does not fit in u64")
            parts.append(_U64.pack(value))
        elif kind == "bool":
            parts.append(b"\x01" if value else b"\x00")
        elif kind == "bytes" or kind == "str":
            if kind == "str":
                if not isinstance(value, str):
                    raise TypeError(f"{where} must be a str, not {type(value).__name__}")
                try:
                    value = value.encode()
                except UnicodeEncodeError:
                    raise ValueError(f"{where} is not encodable as UTF-8") from None
            elif type(value) is not bytes:
                if not isinstance(value, (bytearray, memoryview)):
                    raise TypeError(f"{where} must be bytes, not {type(value).__name__}")
                value = bytes(value)
            if len(value) > _MAX_U32:
                raise ValueError(f"{where}: {len(value)} bytes do not fit in u32")
            parts.append(_U32.pack(len(value)))
            parts.append(value)
        elif kind == "entries":
            try:
                entry_parts(value, parts)
            except (TypeError, ValueError) as e:  # OverflowError is a ValueError
                raise type(e)(f"{where}: {e}") from None
        else:
            raise TypeError(f"{where} has unknown field kind {kind!r}")
    return wrap_frame(FRAME_MESSAGE, b"".join(parts), max_frame_bytes)


def decode_message(data, max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES):
    """Decode one FRAME_MESSAGE frame into its message object; CodecError on any bad input
    (including an unknown tag)."""
    data = open_frame(data, FRAME_MESSAGE, max_frame_bytes)
    end = len(data)
    pos = _BODY_START
    if pos == end:
        raise CodecError("empty message body")
    tag = data[pos]
    pos += 1
    cls = MESSAGE_TYPES.get(tag)
    if cls is None:
        raise CodecError(f"unknown message tag {tag}")
    args = {}
    for name, kind in _fields_of(cls):
        where = f"{cls.__name__}.{name}: "
        if kind == "u64":
            if end - pos < 8:
                raise CodecError(f"{where}truncated u64")
            args[name] = _U64.unpack_from(data, pos)[0]
            pos += 8
        elif kind == "bool":
            if pos == end:
                raise CodecError(f"{where}truncated bool")
            b = data[pos]
            if b > 1:
                raise CodecError(f"{where}bad bool byte {b}")
            args[name] = b == 1
            pos += 1
        elif kind == "bytes" or kind == "str":
            if end - pos < 4:
                raise CodecError(f"{where}truncated length")
            (size,) = _U32.unpack_from(data, pos)
            pos += 4
            if size > end - pos:
                raise CodecError(f"{where}{size} bytes overrun the {end - pos} bytes left")
            raw = data[pos:pos + size]
            pos += size
            if kind == "str":
                try:
                    args[name] = raw.decode()
                except UnicodeDecodeError:
                    raise CodecError(f"{where}invalid UTF-8") from None
            else:
                args[name] = raw
        elif kind == "entries":
            entries, pos = read_entries(data, pos, end, where)
            args[name] = entries
        else:
            raise CodecError(f"{where}unknown field kind {kind!r}")
    if pos != end:
        raise CodecError(f"{end - pos} bytes of trailing garbage after {cls.__name__}")
    try:
        return cls(**args)
    except (TypeError, ValueError) as e:
        raise CodecError(f"{cls.__name__}: {e}") from None
