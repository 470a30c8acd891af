"""Telling the durable stores' directories apart, so that a store opened on a directory of
another kind refuses it with a clear error instead of creating its own files beside the
other's (an lmdb environment keeps ``data.mdb``; a RocksDB database ``CURRENT``, ``IDENTITY``
and ``*.log``/``*.sst`` files)."""

from __future__ import annotations

import os

from ..errors import StorageError

__all__ = ["refuse_other_kind"]

_MARKERS = {"lmdb": ("data.mdb",), "rocksdb": ("CURRENT", "IDENTITY")}


def refuse_other_kind(path: str, kind: str) -> None:
    """StorageError if directory ``path`` holds a store of a kind other than ``kind``."""
    for other, markers in _MARKERS.items():
        if other != kind and any(os.path.exists(os.path.join(path, m)) for m in markers):
            raise StorageError(f"{path}: holds a {other} store, not a {kind} one; "
                               f"open it with the {other} store or choose another directory")
