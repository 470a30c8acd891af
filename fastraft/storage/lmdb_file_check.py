"""Check an lmdb data file against what its meta pages claim, before lmdb maps it.

lmdb maps ``data.mdb`` into memory and trusts it: a page past the end of a truncated file
is not an error it can report but a SIGBUS that kills the process with nothing logged, and
an empty file is taken for a new environment (the node starts empty and forgets what it
acknowledged). So before ``lmdb.open`` the file is read with plain ``read`` calls and:

* an empty file, or one too short for the two meta pages, is refused;
* a meta page without lmdb's magic number or data version is refused (not an lmdb file of
  this machine's word size and byte order);
* the file must hold every page up to the last page the newest meta page uses
  (``(last_pgno + 1) * page_size`` bytes), the same meta lmdb picks (the larger txnid).

The layout read here is lmdb's on-disk format 1 (``MDB_DATA_VERSION``), 64-bit: a page
header of 16 bytes, then the meta: magic u32, version u32, address, map size, two database
records of 48 bytes (the first one's leading u32 is the page size), last page number, txnid.

Invariant: ``check_data_file`` reads, never writes; it passes a file that does not exist
(lmdb creates a new environment then).
"""

from __future__ import annotations

import os
import struct

from ..errors import StorageError

__all__ = ["check_data_file", "DATA_FILE"]

DATA_FILE = "data.mdb"

_MAGIC = 0xBEEFC0DE
_DATA_VERSION = 1
_PAGE_HEADER_BYTES = 16
_HEAD = struct.Struct("<II")            # magic, version at the meta's start
_PSIZE = struct.Struct("<I")            # the free database's md_pad holds the page size
_PSIZE_OFFSET = _PAGE_HEADER_BYTES + 24
_TAIL = struct.Struct("<QQ")            # last page number, txnid
_TAIL_OFFSET = _PAGE_HEADER_BYTES + 120
_META_BYTES = _TAIL_OFFSET + _TAIL.size
_MIN_PAGE_BYTES, _MAX_PAGE_BYTES = 512, 1 << 16


def _meta(raw: bytes, where: str, which: int) -> tuple[int, int, int]:
    """(page size, last page number, txnid) of one meta page; StorageError if it is not one."""
    magic, version = _HEAD.unpack_from(raw, _PAGE_HEADER_BYTES)
    if magic != _MAGIC or version != _DATA_VERSION:
        raise StorageError(f"{where}: meta page {which} is not an lmdb meta page of format "
                           f"{_DATA_VERSION} (magic {magic:#x}, version {version}): the file "
                           "is damaged or not an lmdb data file")
    (page_bytes,) = _PSIZE.unpack_from(raw, _PSIZE_OFFSET)
    last_pgno, txnid = _TAIL.unpack_from(raw, _TAIL_OFFSET)
    return page_bytes, last_pgno, txnid


def check_data_file(env_dir: str) -> None:
    """Raise StorageError, saying what is wrong and what to do, if ``env_dir``'s data file
    exists but is shorter than its meta pages need; return if it is whole or absent."""
    path = os.path.join(env_dir, DATA_FILE)
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return
    except OSError as e:
        raise StorageError(f"{path}: cannot read: {e}") from e
    try:
        size = os.fstat(fd).st_size
        first = os.pread(fd, _META_BYTES, 0)
        if size == 0:
            raise StorageError(
                f"{path} is empty (0 bytes): the store was truncated, or a crash cut its "
                "creation short. It is not opened, so that a store that held data is never "
                "taken for a new one; restore it from a backup, or remove the file to start "
                "this store empty (a node must then rejoin under a new id)")
        if len(first) < _META_BYTES:
            raise StorageError(f"{path} is {size} bytes, too short for lmdb's meta pages: "
                               "the file was truncated")
        page_bytes, last_pgno, txnid = _meta(first, path, 0)
        if not (_MIN_PAGE_BYTES <= page_bytes <= _MAX_PAGE_BYTES
                and page_bytes & (page_bytes - 1) == 0):
            raise StorageError(f"{path}: meta page 0 gives a page size of {page_bytes} "
                               "bytes: the file is damaged")
        second = os.pread(fd, _META_BYTES, page_bytes)
        if len(second) < _META_BYTES:
            raise StorageError(f"{path} is {size} bytes, too short for lmdb's two meta pages "
                               f"of {page_bytes} bytes: the file was truncated")
        _, last_pgno_1, txnid_1 = _meta(second, path, 1)
        if txnid_1 > txnid:  # the meta lmdb will use
            last_pgno = last_pgno_1
        need = (last_pgno + 1) * page_bytes
        if size < need:
            raise StorageError(
                f"{path} is {size} bytes, but its meta page uses pages up to {last_pgno} "
                f"({need} bytes): the file was truncated, and mapping it would crash the "
                "process. Restore it from a backup, or remove this node's data directory "
                "and add the node back under a new id")
    finally:
        os.close(fd)
