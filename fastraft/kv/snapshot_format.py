"""The KV snapshot's byte format, shared by every KV state machine, so a snapshot built on
one backend installs on any other: a stream of checksummed frames, written and read in
bounded pieces (a snapshot never has to fit in memory).

Layout, integers little-endian::

    "FRKVSNAP"  8 bytes of magic
    version     u16, FORMAT_VERSION
    frames      kind u8 | body length u32 | crc32c u32 of (kind byte + body) | body

    META  (1)   once, first: a ``fastraft.storage.records`` snapshot meta record
    DATA  (2)   any number: pairs of (key length u32, value length u32, key, value)
    END   (3)   once, last: the number of pairs, u64; nothing may follow it

Keys are UTF-8, strictly increasing bytewise across the whole snapshot (so a duplicate or a
reordering is detected), and the count in END must match the pairs read.
"""

from __future__ import annotations

import struct
from typing import BinaryIO, Iterator

from crc32c import crc32c

from ..errors import CodecError
from ..storage.records import decode_snapshot_meta, encode_snapshot_meta
from ..types import SnapshotMeta
from .commands import MAX_KEY_BYTES

__all__ = ["MAGIC", "FORMAT_VERSION", "MAX_FRAME_BYTES", "SnapshotWriter", "read_snapshot"]

MAGIC = b"FRKVSNAP"
FORMAT_VERSION = 1
#: The largest frame body a reader accepts (checked before it is read).
MAX_FRAME_BYTES = 80 * 1024 * 1024
#: The body size a writer aims at for DATA frames.
DATA_FRAME_BYTES = 256 * 1024

_META, _DATA, _END = 1, 2, 3
_START = struct.Struct("<8sH")
_FRAME = struct.Struct("<BII")
_PAIR = struct.Struct("<II")
_U64 = struct.Struct("<Q")


def _frame(kind: int, body: bytes) -> bytes:
    return _FRAME.pack(kind, len(body), crc32c(bytes((kind,)) + body)) + body


class SnapshotWriter:
    """Writes a snapshot to ``out`` pair by pair; call ``finish()`` once after the last pair.

    Invariant: at most DATA_FRAME_BYTES (or one pair, if larger) is buffered.
    """

    def __init__(self, out: BinaryIO, meta: SnapshotMeta) -> None:
        self._out = out
        self._parts: list[bytes] = []
        self._buffered = 0
        self._count = 0
        self._last_key: bytes | None = None
        out.write(_START.pack(MAGIC, FORMAT_VERSION))
        out.write(_frame(_META, encode_snapshot_meta(meta)))

    def add(self, key: bytes, value: bytes) -> None:
        """Add a pair; keys must come in strictly increasing bytewise order."""
        if self._last_key is not None and key <= self._last_key:
            raise ValueError("snapshot keys must be strictly increasing")
        self._last_key = key
        self._parts.append(_PAIR.pack(len(key), len(value)))
        self._parts.append(key)
        self._parts.append(value)
        self._buffered += _PAIR.size + len(key) + len(value)
        self._count += 1
        if self._buffered >= DATA_FRAME_BYTES:
            self._flush()

    def _flush(self) -> None:
        if self._parts:
            self._out.write(_frame(_DATA, b"".join(self._parts)))
            self._parts = []
            self._buffered = 0

    def finish(self) -> int:
        """Write the END frame; returns the number of pairs written."""
        self._flush()
        self._out.write(_frame(_END, _U64.pack(self._count)))
        return self._count


def _read_exact(src: BinaryIO, size: int, what: str) -> bytes:
    data = src.read(size)
    if data is None or len(data) != size:
        got = 0 if data is None else len(data)
        raise CodecError(f"snapshot truncated: {what} needs {size} bytes, {got} left")
    return bytes(data)


def _read_frame(src: BinaryIO) -> tuple[int, bytes]:
    kind, size, crc = _FRAME.unpack(_read_exact(src, _FRAME.size, "a frame header"))
    if kind not in (_META, _DATA, _END):
        raise CodecError(f"snapshot frame of unknown kind {kind}")
    if size > MAX_FRAME_BYTES:
        raise CodecError(f"snapshot frame of {size} bytes exceeds {MAX_FRAME_BYTES}")
    body = _read_exact(src, size, "a frame body")
    if crc32c(bytes((kind,)) + body) != crc:
        raise CodecError("snapshot frame fails its checksum")
    return kind, body


def read_snapshot(src: BinaryIO) -> tuple[SnapshotMeta, Iterator[tuple[bytes, bytes]]]:
    """Read a snapshot from ``src`` (at its start): its meta now, then an iterator over its
    (key, value) pairs that reads frame by frame.

    The iterator raises CodecError as soon as something is wrong (checksum, order, count,
    truncation, trailing bytes); a consumer must exhaust it before trusting any pair.
    """
    magic, version = _START.unpack(_read_exact(src, _START.size, "the file header"))
    if magic != MAGIC:
        raise CodecError("not a KV snapshot (bad magic)")
    if version != FORMAT_VERSION:
        raise CodecError(f"KV snapshot format version {version} is unknown "
                         f"(this build reads {FORMAT_VERSION})")
    kind, body = _read_frame(src)
    if kind != _META:
        raise CodecError("KV snapshot does not start with its meta frame")
    meta = decode_snapshot_meta(body)
    return meta, _pairs(src)


def _check_pair(key: bytes, value: bytes) -> None:
    # The same bounds as a command (fastraft.kv.commands), so an installed state is one that
    # commands could have built.
    if not key or len(key) > MAX_KEY_BYTES:
        raise CodecError(f"KV snapshot key of {len(key)} bytes (1 to {MAX_KEY_BYTES} allowed)")
    try:
        key.decode("utf-8")
        value.decode("utf-8")
    except UnicodeDecodeError:
        raise CodecError("KV snapshot pair is not UTF-8 text") from None


def _pairs(src: BinaryIO) -> Iterator[tuple[bytes, bytes]]:
    count = 0
    last_key: bytes | None = None
    while True:
        kind, body = _read_frame(src)
        if kind == _END:
            if len(body) != _U64.size or _U64.unpack(body)[0] != count:
                raise CodecError(f"KV snapshot end frame does not match the {count} pairs read")
            if src.read(1):
                raise CodecError("trailing bytes after the KV snapshot's end frame")
            return
        if kind != _DATA:
            raise CodecError("a second meta frame inside the KV snapshot")
        pos, end = 0, len(body)
        while pos < end:
            if end - pos < _PAIR.size:
                raise CodecError("KV snapshot pair header truncated")
            klen, vlen = _PAIR.unpack_from(body, pos)
            pos += _PAIR.size
            if klen + vlen > end - pos:
                raise CodecError("KV snapshot pair overruns its frame")
            key = body[pos:pos + klen]
            value = body[pos + klen:pos + klen + vlen]
            pos += klen + vlen
            if last_key is not None and key <= last_key:
                raise CodecError("KV snapshot keys are not strictly increasing")
            _check_pair(key, value)
            last_key = key
            count += 1
            yield key, value
