"""Self-checking byte forms of the small durable values stores keep beside the log: the
vote, a log id, a stored membership, a snapshot's meta.

Every record is ``version u8 | body | crc32c u32``, little-endian, the checksum covering the
version and the body, so a torn or flipped record is detected rather than believed. Decoding
raises ``CodecError`` naming the problem; a store turns it into a ``StorageError`` naming
the file and the key.

Log entries are not here: they are stored in blocks, each the codec's entries frame
(``fastraft.codec.encode_entries``; see ``fastraft.storage.lmdb_log_layout``).
"""

from __future__ import annotations

import struct

from crc32c import crc32c

from ..errors import CodecError
from ..types import LogId, Membership, SnapshotMeta, StoredMembership, Vote

__all__ = [
    "RECORD_VERSION",
    "encode_vote",
    "decode_vote",
    "encode_log_id",
    "decode_log_id",
    "encode_stored_membership",
    "decode_stored_membership",
    "encode_snapshot_meta",
    "decode_snapshot_meta",
    "encode_u64",
    "decode_u64",
]

#: Version byte of every record; an unknown one is refused.
RECORD_VERSION = 1

_CRC = struct.Struct("<I")
_VOTE = struct.Struct("<QQB")
_LOG_ID = struct.Struct("<BQQ")
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")
_MAX_U64 = (1 << 64) - 1


def _seal(body: bytes) -> bytes:
    data = bytes((RECORD_VERSION,)) + body
    return data + _CRC.pack(crc32c(data))


def _open(record, what: str) -> bytes:
    """The body of a sealed record, after checking its version and checksum."""
    data = bytes(record)
    if len(data) < 5:
        raise CodecError(f"{what} record of {len(data)} bytes is truncated")
    if data[0] != RECORD_VERSION:
        raise CodecError(f"{what} record has unknown version {data[0]} "
                         f"(this build reads version {RECORD_VERSION})")
    (crc,) = _CRC.unpack_from(data, len(data) - 4)
    actual = crc32c(data[:-4])
    if crc != actual:
        raise CodecError(f"{what} record fails its checksum "
                         f"(stored {crc:#010x}, computed {actual:#010x})")
    return data[1:-4]


def _exact(body: bytes, size: int, what: str) -> None:
    if len(body) != size:
        raise CodecError(f"{what} record body is {len(body)} bytes, expected {size}")


# -- vote -----------------------------------------------------------------------------------


def encode_vote(vote: Vote) -> bytes:
    return _seal(_VOTE.pack(vote.term, vote.node_id, 1 if vote.committed else 0))


def decode_vote(record) -> Vote:
    body = _open(record, "vote")
    _exact(body, _VOTE.size, "vote")
    term, node_id, committed = _VOTE.unpack(body)
    if committed > 1:
        raise CodecError(f"vote record has committed flag {committed}, expected 0 or 1")
    return Vote(term, node_id, bool(committed))


# -- log ids ----------------------------------------------------------------------------------


def _pack_log_id(log_id: LogId | None) -> bytes:
    if log_id is None:
        return _LOG_ID.pack(0, 0, 0)
    if not (0 <= log_id.term <= _MAX_U64 and 0 <= log_id.index <= _MAX_U64):
        raise OverflowError(f"{log_id} does not fit in u64")
    return _LOG_ID.pack(1, log_id.term, log_id.index)


def _unpack_log_id(body: bytes, pos: int, what: str) -> LogId | None:
    if len(body) - pos < _LOG_ID.size:
        raise CodecError(f"{what} record: truncated log id")
    present, term, index = _LOG_ID.unpack_from(body, pos)
    if present == 0:
        if term or index:
            raise CodecError(f"{what} record: absent log id with non-zero fields")
        return None
    if present != 1:
        raise CodecError(f"{what} record: log id flag {present}, expected 0 or 1")
    return LogId(term, index)


def encode_log_id(log_id: LogId | None) -> bytes:
    """A log id, or None, as a record."""
    return _seal(_pack_log_id(log_id))


def decode_log_id(record, what: str = "log id") -> LogId | None:
    body = _open(record, what)
    _exact(body, _LOG_ID.size, what)
    return _unpack_log_id(body, 0, what)


def encode_u64(value: int) -> bytes:
    return _seal(_U64.pack(value))


def decode_u64(record, what: str = "u64") -> int:
    body = _open(record, what)
    _exact(body, _U64.size, what)
    return _U64.unpack(body)[0]


# -- memberships and snapshot metas -----------------------------------------------------------


def _pack_stored_membership(sm: StoredMembership) -> bytes:
    payload = sm.membership.to_bytes()
    return _pack_log_id(sm.log_id) + _U32.pack(len(payload)) + payload


def _unpack_stored_membership(body: bytes, pos: int, what: str) -> tuple[StoredMembership, int]:
    log_id = _unpack_log_id(body, pos, what)
    pos += _LOG_ID.size
    if len(body) - pos < 4:
        raise CodecError(f"{what} record: truncated membership length")
    (size,) = _U32.unpack_from(body, pos)
    pos += 4
    if size > len(body) - pos:
        raise CodecError(f"{what} record: membership of {size} bytes overruns the record")
    membership = Membership.from_bytes(body[pos:pos + size])
    return StoredMembership(log_id, membership), pos + size


def encode_stored_membership(sm: StoredMembership) -> bytes:
    return _seal(_pack_stored_membership(sm))


def decode_stored_membership(record, what: str = "membership") -> StoredMembership:
    body = _open(record, what)
    sm, pos = _unpack_stored_membership(body, 0, what)
    if pos != len(body):
        raise CodecError(f"{what} record: {len(body) - pos} trailing bytes")
    return sm


def encode_snapshot_meta(meta: SnapshotMeta) -> bytes:
    sid = meta.snapshot_id.encode()
    return _seal(_pack_log_id(meta.last_log_id) + _pack_stored_membership(meta.last_membership)
                 + _U32.pack(len(sid)) + sid)


def decode_snapshot_meta(record, what: str = "snapshot meta") -> SnapshotMeta:
    body = _open(record, what)
    last = _unpack_log_id(body, 0, what)
    membership, pos = _unpack_stored_membership(body, _LOG_ID.size, what)
    if len(body) - pos < 4:
        raise CodecError(f"{what} record: truncated snapshot id length")
    (size,) = _U32.unpack_from(body, pos)
    pos += 4
    if size != len(body) - pos:
        raise CodecError(f"{what} record: snapshot id of {size} bytes, {len(body) - pos} left")
    try:
        sid = body[pos:].decode()
    except UnicodeDecodeError:
        raise CodecError(f"{what} record: snapshot id is not UTF-8") from None
    return SnapshotMeta(last, membership, sid)
