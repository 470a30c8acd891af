"""The frame of the codec, pure-Python twin (the spec) of ``fastraft.accel.compiled.frame``:
the 12-byte header every frame starts with, its CRC32C checksum of the body, and the frame
size limit. The layout is documented in ``fastraft.accel.pure.codec``.

A frame is the header and a body of [HEADER_SIZE, HEADER_SIZE + body length). The entry
batches (codec_entries) and the messages (codec) build their body and wrap it with ``frame``,
and read it from the bytes ``open_frame`` returned, after it checked the header, the length
against ``max_frame_bytes`` (before a buffer that is not bytes is copied) and the checksum.
"""

from __future__ import annotations

import struct

from fastraft.errors import CodecError

from .ints import MAX_U32 as _MAX_U32


def _crc32c(data) -> int:
    """CRC32C of ``data``. The crc32c package is imported on the first call, not at import:
    its own import pulls in socket (through importlib.metadata), and importing fastraft's
    engine must load no I/O module. The first call rebinds this name to the package's C
    function, so later calls cost nothing extra."""
    global _crc32c
    from crc32c import crc32c as impl

    _crc32c = impl
    return impl(data)


__all__ = ["WIRE_VERSION", "HEADER_SIZE", "DEFAULT_MAX_FRAME_BYTES", "FRAME_ENTRIES",
           "FRAME_MESSAGE", "frame_size"]

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

_FRAME_NAMES = {FRAME_ENTRIES: "an entry batch", FRAME_MESSAGE: "a message"}

_HEADER = struct.Struct("<BBHII")
#: Where the body starts in a frame's bytes.
BODY_START = _HEADER.size


def check_limit(max_frame_bytes) -> int:
    """``max_frame_bytes`` checked: an int, at least HEADER_SIZE."""
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
    max_frame_bytes = check_limit(max_frame_bytes)
    return _read_header(_as_bytes(header, HEADER_SIZE), max_frame_bytes)[1]


def open_frame(data, expected_kind: int, max_frame_bytes) -> bytes:
    """Validate a whole frame of ``expected_kind`` and return its bytes (header included)."""
    max_frame_bytes = check_limit(max_frame_bytes)
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
    actual = _crc32c(memoryview(data)[BODY_START:])
    if actual != crc:
        raise CodecError(f"checksum mismatch: header says {crc:#010x}, body has {actual:#010x}")
    return data


def wrap_frame(kind: int, body: bytes, max_frame_bytes: int) -> bytes:
    """The frame of ``kind`` around ``body``; ValueError if it exceeds ``max_frame_bytes``."""
    total = HEADER_SIZE + len(body)
    if total > max_frame_bytes:
        raise ValueError(f"frame of {total} bytes exceeds the limit of {max_frame_bytes} bytes")
    if len(body) > _MAX_U32:
        raise ValueError(f"frame body of {len(body)} bytes does not fit in u32")
    return _HEADER.pack(WIRE_VERSION, kind, 0, len(body), _crc32c(body)) + body

