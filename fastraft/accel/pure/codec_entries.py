"""The entries of the codec, pure-Python twin (the spec) of
``fastraft.accel.compiled.codec_entries``: an entry's wire form (term u64, index u64, kind u8,
payload length u32, payload), and a batch of entries in one FRAME_ENTRIES frame. The layout is
documented in ``fastraft.accel.pure.codec``; the messages (codec) carry entries in the same
form, through ``entry_parts`` and ``read_entries``.

Entry kinds are the ``EntryKind`` values 0..MAX_ENTRY_KIND; an unknown kind is refused on
encode (ValueError) and on decode (CodecError), so a peer cannot smuggle one into a log.
"""

from __future__ import annotations

import struct

from fastraft.errors import CodecError

from .entry import Entry
from .frame import (
    BODY_START, DEFAULT_MAX_FRAME_BYTES, FRAME_ENTRIES, check_limit, open_frame, wrap_frame)
from .ints import MAX_U32 as _MAX_U32
from .ints import MAX_U64 as _MAX_U64

__all__ = ["ENTRY_HEADER_SIZE", "MAX_ENTRY_KIND", "encode_entries", "decode_entries"]

#: Bytes before each payload inside an entry batch: term, index, kind, payload length.
ENTRY_HEADER_SIZE = 21
#: The largest known ``EntryKind`` value.
MAX_ENTRY_KIND = 2


_ENTRY_HEAD = struct.Struct("<QQBI")
_U32 = struct.Struct("<I")

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


def entry_parts(entries, parts: list) -> int:
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
    max_frame_bytes = check_limit(max_frame_bytes)
    parts: list = []
    entry_parts(entries, parts)
    return wrap_frame(FRAME_ENTRIES, b"".join(parts), max_frame_bytes)


def read_entries(body: bytes, pos: int, end: int, where: str) -> tuple[list, int]:
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
    data = open_frame(data, FRAME_ENTRIES, max_frame_bytes)
    out, pos = read_entries(data, BODY_START, len(data), "")
    if pos != len(data):
        raise CodecError(f"{len(data) - pos} bytes of trailing garbage after the entries")
    return out
