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

Entry kinds are the ``EntryKind`` values 0..MAX_ENTRY_KIND; an unknown kind is refused on
encode (ValueError) and on decode (CodecError), so a peer cannot smuggle one into a log.
"""

from __future__ import annotations

import struct

from fastraft.errors import CodecError
from fastraft.messages import MESSAGE_TYPES, wire_fields

from .entry import Entry


def _crc32c(data) -> int:
    """CRC32C of ``data``. The crc32c package is imported on the first call, not at import:
    its own import pulls in socket (through importlib.metadata), and importing fastraft's
    engine must load no I/O module. The first call rebinds this name to the package's C
    function, so later calls cost nothing extra."""
    global _crc32c
    from crc32c import crc32c as impl

    _crc32c = impl
    return impl(data)

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

#: Version byte of every frame; bump it whenever the layout of any frame changes. Version 2:
#: every message names its ``sender`` in one field (before: candidate_id, leader_id, voter_id or
#: follower_id), and message layouts are derived from the classes' dataclass fields. The bytes
#: sit where version 1 put them, but the schema they are read with is new, so a version-1 peer
#: is refused rather than trusted to agree.
WIRE_VERSION = 2
#: Bytes of the fixed frame header.
HEADER_SIZE = 12
#: Default bound on a whole frame, header included.
DEFAULT_MAX_FRAME_BYTES = 64 * 1024 * 1024
#: Frame kinds.
FRAME_ENTRIES = 1
FRAME_MESSAGE = 2
#: Bytes before each payload inside an entry batch: term, index, kind, payload length.
ENTRY_HEADER_SIZE = 21
#: The largest known ``EntryKind`` value.
MAX_ENTRY_KIND = 2

_MAX_U64 = (1 << 64) - 1
_MAX_U32 = (1 << 32) - 1
_FRAME_NAMES = {FRAME_ENTRIES: "an entry batch", FRAME_MESSAGE: "a message"}

_HEADER = struct.Struct("<BBHII")
_ENTRY_HEAD = struct.Struct("<QQBI")
_U64 = struct.Struct("<Q")
_U32 = struct.Struct("<I")
_BODY_START = _HEADER.size


# --- frames ------------------------------------------------------------------------------


def _check_limit(max_frame_bytes) -> int:
    if not isinstance(max_frame_bytes, int):
        raise TypeError(f"max_frame_bytes must be an int, not {type(max_frame_bytes).__name__}")
    if max_frame_bytes < HEADER_SIZE:
        raise ValueError(f"max_frame_bytes must be at least {HEADER_SIZE}, got {max_frame_bytes}")
    return int(max_frame_bytes)


def _as_bytes(data, limit: int = -1) -> bytes:
    """``data`` (any contiguous bytes-like object) as bytes; only its first ``limit`` bytes
    when ``limit`` >= 0."""
    if type(data) is bytes:
        return data if limit < 0 else data[:limit]
    try:
        view = memoryview(data)
    except TypeError:
        raise TypeError(f"expected a bytes-like object, not {type(data).__name__}") from None
    if not view.c_contiguous:
        raise TypeError("expected a contiguous bytes-like object")
    view = view.cast("B")
    return (view if limit < 0 else view[:limit]).tobytes()


def _read_header(data: bytes, max_frame_bytes: int) -> tuple[int, int, int]:
    """Validate the header at the start of ``data``: (frame kind, whole frame length, crc)."""
    size = len(data)
    if size < HEADER_SIZE:
        raise CodecError(f"truncated frame header: {size} of {HEADER_SIZE} bytes")
    version, kind, reserved, body_len, crc = _HEADER.unpack_from(data)
    if version != WIRE_VERSION:
        raise CodecError(f"unsupported wire version {version} (this build speaks {WIRE_VERSION})")
    if kind not in _FRAME_NAMES:
        raise CodecError(f"unknown frame kind {kind}")
    if reserved != 0:
        raise CodecError(f"reserved header field is {reserved}, must be 0")
    total = HEADER_SIZE + body_len
    if total > max_frame_bytes:
        raise CodecError(f"frame of {total} bytes exceeds the limit of {max_frame_bytes} bytes")
    return kind, total, crc


def frame_size(header, max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES) -> int:
    """Validate a frame header and return the whole frame's length (header + body).

    ``header`` holds at least the first HEADER_SIZE bytes of a frame (more is ignored), so a
    stream reader reads HEADER_SIZE bytes, calls this, then reads exactly the rest.
    Raises CodecError for a short header, a wrong version, an unknown frame kind, a set
    reserved field or a frame longer than ``max_frame_bytes``. The checksum is checked by
    the decode functions, not here.
    """
    max_frame_bytes = _check_limit(max_frame_bytes)
    return _read_header(_as_bytes(header, HEADER_SIZE), max_frame_bytes)[1]


def _open_frame(data, expected_kind: int, max_frame_bytes) -> bytes:
    """Validate a whole frame of ``expected_kind`` and return its bytes (header included)."""
    max_frame_bytes = _check_limit(max_frame_bytes)
    # The header and the length are checked before a buffer that is not bytes is copied.
    kind, total, crc = _read_header(_as_bytes(data, HEADER_SIZE), max_frame_bytes)
    if kind != expected_kind:
        raise CodecError(
            f"expected {_FRAME_NAMES[expected_kind]} frame, got {_FRAME_NAMES[kind]} frame")
    size = len(data) if type(data) is bytes else memoryview(data).nbytes
    if size < total:
        raise CodecError(f"truncated frame: {size} of {total} bytes")
    if size > total:
        raise CodecError(f"{size - total} bytes of trailing garbage after the frame")
    data = _as_bytes(data)
    actual = _crc32c(memoryview(data)[_BODY_START:])
    if actual != crc:
        raise CodecError(f"checksum mismatch: header says {crc:#010x}, body has {actual:#010x}")
    return data


def _frame(kind: int, body: bytes, max_frame_bytes: int) -> bytes:
    total = HEADER_SIZE + len(body)
    if total > max_frame_bytes:
        raise ValueError(f"frame of {total} bytes exceeds the limit of {max_frame_bytes} bytes")
    if len(body) > _MAX_U32:
        raise ValueError(f"frame body of {len(body)} bytes does not fit in u32")
    return _HEADER.pack(WIRE_VERSION, kind, 0, len(body), _crc32c(body)) + body


# --- entries -----------------------------------------------------------------------------


def _entry_fields(e, i: int) -> tuple[int, int, int, bytes]:
    """(term, index, kind, payload) of entry number ``i``, checked for the wire."""
    term, index, kind, payload = e.term, e.index, e.kind, e.payload
    for name, value in (("term", term), ("index", index)):
        if not isinstance(value, int):
            raise TypeError(f"entry {i}: {name} must be an int, not {type(value).__name__}")
        if not 0 <= value <= _MAX_U64:
            raise OverflowError(f"entry {i}: {name} {value} does not fit in u64")
    if not isinstance(kind, int):
        raise TypeError(f"entry {i}: kind must be an int, not {type(kind).__name__}")
    if not 0 <= kind <= MAX_ENTRY_KIND:
        raise ValueError(f"entry {i}: unknown entry kind {kind}")
    if type(payload) is not bytes:
        if not isinstance(payload, (bytearray, memoryview)):
            raise TypeError(f"entry {i}: payload must be bytes, not {type(payload).__name__}")
        payload = bytes(payload)
    if len(payload) > _MAX_U32:
        raise ValueError(f"entry {i}: payload of {len(payload)} bytes does not fit in u32")
    return int(term), int(index), int(kind), payload


def _entry_parts(entries, parts: list) -> int:
    """Append the wire form of ``entries`` (count, then each entry) to ``parts``; return
    the number of bytes appended."""
    entries = entries if type(entries) is list else list(entries)
    if len(entries) > _MAX_U32:
        raise ValueError(f"{len(entries)} entries do not fit in one frame")
    parts.append(_U32.pack(len(entries)))
    size = 4
    pack = _ENTRY_HEAD.pack
    for i, e in enumerate(entries):
        term, index, kind, payload = _entry_fields(e, i)
        parts.append(pack(term, index, kind, len(payload)))
        parts.append(payload)
        size += ENTRY_HEADER_SIZE + len(payload)
    return size


def encode_entries(entries, max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES) -> bytes:
    """Encode a batch of entries into one FRAME_ENTRIES frame (one checksum for all).

    ``entries`` is an iterable of objects with ``term``, ``index``, ``kind`` and ``payload``.
    Raises TypeError/OverflowError/ValueError for an entry that cannot be encoded (its
    position is named) and ValueError if the frame would exceed ``max_frame_bytes``.
    """
    max_frame_bytes = _check_limit(max_frame_bytes)
    parts: list = []
    _entry_parts(entries, parts)
    return _frame(FRAME_ENTRIES, b"".join(parts), max_frame_bytes)


def _read_entries(body: bytes, pos: int, end: int, where: str) -> tuple[list, int]:
    """Decode a count and that many entries from body[pos:end]; return (entries, new pos)."""
    if end - pos < 4:
        raise CodecError(f"{where}truncated entry count")
    (count,) = _U32.unpack_from(body, pos)
    pos += 4
    if count > (end - pos) // ENTRY_HEADER_SIZE:
        raise CodecError(f"{where}{count} entries cannot fit in the {end - pos} bytes left")
    out = []
    unpack = _ENTRY_HEAD.unpack_from
    for i in range(count):
        if end - pos < ENTRY_HEADER_SIZE:
            raise CodecError(f"{where}entry {i}: truncated entry header")
        term, index, kind, size = unpack(body, pos)
        pos += ENTRY_HEADER_SIZE
        if kind > MAX_ENTRY_KIND:
            raise CodecError(f"{where}entry {i}: unknown entry kind {kind}")
        if size > end - pos:
            raise CodecError(
                f"{where}entry {i}: payload of {size} bytes overruns the {end - pos} bytes left")
        out.append(Entry(term, index, kind, body[pos:pos + size]))
        pos += size
    return out, pos


def decode_entries(data, max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES) -> list:
    """Decode one FRAME_ENTRIES frame into a list of Entry; CodecError on any bad input."""
    data = _open_frame(data, FRAME_ENTRIES, max_frame_bytes)
    out, pos = _read_entries(data, _BODY_START, len(data), "")
    if pos != len(data):
        raise CodecError(f"{len(data) - pos} bytes of trailing garbage after the entries")
    return out


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
    max_frame_bytes = _check_limit(max_frame_bytes)
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
                _entry_parts(value, parts)
            except (TypeError, ValueError) as e:  # OverflowError is a ValueError
                raise type(e)(f"{where}: {e}") from None
        else:
            raise TypeError(f"{where} has unknown field kind {kind!r}")
    return _frame(FRAME_MESSAGE, b"".join(parts), max_frame_bytes)


def decode_message(data, max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES):
    """Decode one FRAME_MESSAGE frame into its message object; CodecError on any bad input
    (including an unknown tag)."""
    data = _open_frame(data, FRAME_MESSAGE, max_frame_bytes)
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
            entries, pos = _read_entries(data, pos, end, where)
            args[name] = entries
        else:
            raise CodecError(f"{where}unknown field kind {kind!r}")
    if pos != end:
        raise CodecError(f"{end - pos} bytes of trailing garbage after {cls.__name__}")
    try:
        return cls(**args)
    except (TypeError, ValueError) as e:
        raise CodecError(f"{cls.__name__}: {e}") from None
