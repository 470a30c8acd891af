"""What a power cut takes back: for each file, the writes made since its last fsync.

A disk with a volatile cache (and the kernel's page cache above it) only promises what was
flushed: after ``fsync``/``fdatasync`` returned, the file's data so far survives a power loss;
anything written after that may be lost, or partly kept (a torn write: the cache flushed some
of the writes, in some order, and the power went before the rest). ``UnsyncedJournal``
models that for a pass-through file system that writes straight to its backing files: before
each write or size change it saves the bytes the change overwrites (an undo record), an fsync
of the file forgets the file's records (they are durable now), and ``cut`` undoes what was
not synced.

Two modes for a cut:

* ``"drop"``: every unsynced write of every file is undone (the cache never flushed).
* ``"torn"``: each file keeps a random prefix of its unsynced writes, the last kept one
  possibly cut at a random byte (the cache flushed in order and stopped mid-write).

Not modelled: metadata (create, rename, unlink, mkdir) is durable at once, as on a file
system that journals metadata synchronously; a store that needs a directory fsync to make a
new file's name durable is not caught here.

Invariant: ``self._undo[key]`` lists the file's changes since its last sync in the order they
were made; undoing all of them in reverse order restores the file as it was at that sync.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass

__all__ = ["UnsyncedJournal", "CUT_MODES"]

CUT_MODES = ("drop", "torn")


@dataclass(frozen=True, slots=True)
class _Undo:
    """One change: ``length`` bytes written at ``offset`` (or, with ``length == 0`` and
    ``truncated_to`` set, a size change) over ``old_bytes`` of a file of ``old_size``."""

    offset: int
    length: int
    old_bytes: bytes
    old_size: int
    truncated_to: int | None = None


class UnsyncedJournal:
    """Undo records of the unsynced changes of open files, keyed by a stable file key (the
    file system's inode number); ``path_of(key)`` says where the file is now."""

    def __init__(self) -> None:
        self._undo: dict[int, list[_Undo]] = {}

    def before_write(self, key: int, fd: int, offset: int, length: int) -> None:
        """Record what a write of ``length`` bytes at ``offset`` through ``fd`` overwrites."""
        old_size = os.fstat(fd).st_size
        kept = max(0, min(length, old_size - offset))
        old = os.pread(fd, kept, offset) if kept else b""
        self._undo.setdefault(key, []).append(_Undo(offset, length, old, old_size))

    def before_truncate(self, key: int, fd: int, new_size: int) -> None:
        """Record what truncating (or extending) the file to ``new_size`` changes."""
        old_size = os.fstat(fd).st_size
        tail = os.pread(fd, old_size - new_size, new_size) if new_size < old_size else b""
        self._undo.setdefault(key, []).append(_Undo(new_size, 0, tail, old_size, new_size))

    def synced(self, key: int) -> None:
        """The file was fsynced: everything written to it so far is durable."""
        self._undo.pop(key, None)

    def forget(self, key: int) -> None:
        """The file is gone (unlinked): nothing to undo in it."""
        self._undo.pop(key, None)

    def unsynced_count(self) -> int:
        return sum(len(v) for v in self._undo.values())

    def cut(self, path_of, mode: str, rng: random.Random) -> int:
        """Undo the unsynced changes, as a power cut does; returns how many changes were
        undone (whole or in part). ``path_of(key)`` is the file's backing path, or None if it
        no longer exists. Afterwards the journal is empty."""
        if mode not in CUT_MODES:
            raise ValueError(f"cut mode must be one of {CUT_MODES}, not {mode!r}")
        undone = 0
        for key, records in self._undo.items():
            path = path_of(key)
            if path is None:
                continue
            keep_whole = 0 if mode == "drop" else rng.randint(0, len(records))
            fd = os.open(path, os.O_RDWR)
            try:
                for i in range(len(records) - 1, keep_whole - 1, -1):
                    rec = records[i]
                    torn = i == keep_whole and mode == "torn" and rec.length > 0
                    keep_bytes = rng.randint(0, rec.length - 1) if torn else 0
                    _undo_one(fd, rec, keep_bytes)
                    undone += 1
            finally:
                os.close(fd)
        self._undo.clear()
        return undone


def _undo_one(fd: int, rec: _Undo, keep_bytes: int) -> None:
    """Undo ``rec`` on ``fd``, keeping its first ``keep_bytes`` written bytes (a write only).

    The later changes of the file were undone already, so its size is the one right after
    ``rec``."""
    if rec.truncated_to is not None:
        os.ftruncate(fd, rec.old_size)
        if rec.old_bytes:
            os.pwrite(fd, rec.old_bytes, rec.truncated_to)
        return
    if keep_bytes < len(rec.old_bytes):
        os.pwrite(fd, rec.old_bytes[keep_bytes:], rec.offset + keep_bytes)
    size_after = max(rec.old_size, rec.offset + keep_bytes)
    if os.fstat(fd).st_size > size_after:
        os.ftruncate(fd, size_after)
