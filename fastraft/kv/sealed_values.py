"""Values of the lmdb KV state machine, each stored with a checksum of its key and itself.

lmdb checks nothing it reads back: a byte changed on disk (a bad sector, a stray write, a
hand edit of a stopped node's file) would be served as the value, also through a
linearizable read once that node leads. So each value is stored as

    value bytes | crc32c(key bytes followed by value bytes) u32 little-endian

and every read checks it. The key is in the checksum so that a value moved to another key
is caught too. A mismatch raises StorageError naming the key: the store refuses to answer
rather than answer wrongly.
"""

from __future__ import annotations

import struct

from crc32c import crc32c

from ..errors import StorageError

__all__ = ["seal", "unseal", "SEAL_BYTES"]

_CRC = struct.Struct("<I")
_pack, _unpack_from = _CRC.pack, _CRC.unpack_from
#: Bytes a sealed value adds to the value.
SEAL_BYTES = _CRC.size


def seal(key: bytes, value: bytes) -> bytes:
    """The record stored for ``key`` -> ``value``."""
    return value + _pack(crc32c(key + value))


def unseal(key: bytes, record: bytes, where: str) -> bytes:
    """The value of a record stored for ``key``; StorageError (naming ``key`` and ``where``)
    if the record is too short or its checksum does not match."""
    n = len(record) - SEAL_BYTES
    value = record[:n]
    if n >= 0 and _unpack_from(record, n)[0] == crc32c(key + value):
        return value
    if n < 0:
        raise StorageError(f"{where}: the value of key {bytes(key)!r} is damaged: its record "
                           f"is {len(record)} bytes, shorter than its checksum")
    raise StorageError(f"{where}: the value of key {bytes(key)!r} is damaged: checksum "
                       f"stored {_unpack_from(record, n)[0]:#010x}, computed "
                       f"{crc32c(key + value):#010x}; this node refuses to serve it "
                       "(rebuild the node: remove it, and add it back under a new id)")
