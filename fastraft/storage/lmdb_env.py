"""One lmdb environment per node, shared by its log store and its state machine.

What this module owns, so that the stores on top need not think about it:

* Durability settings. ``sync=True`` and ``metasync=True``: every write transaction is on
  disk when its commit returns, and a crash (of the process or of the machine) leaves the
  last committed transaction or the one before, never a mix (lmdb is copy-on-write; the
  meta page is written last). ``map_async`` stays off: with it the OS flushes the map when
  it likes, so a machine crash could lose or tear committed data. ``writemap`` stays off by
  default: with it lmdb writes pages straight into the shared map, which saves a copy for
  large transactions but preallocates the file to the whole map size and lets any stray
  write through the map corrupt the database; Raft appends are small, and the benchmark
  (``test_raw_lmdb_writemap_vs_plain`` in benchmarks/bench_storage.py) measured writemap
  within the machine's noise of plain (0.9x to 1.3x), no gain worth that risk. It remains
  an option (``LmdbEnv(writemap=True)``).
* Growth. A transaction that finds the map full (MapFullError) is aborted, the map is grown
  (doubled, at least to twice what is in use) and the transaction re-run, so a log that
  outgrows the map never fails a write. A map more than GROW_AT_FRACTION full is also grown
  ahead of time when no transaction is open, so that the blocking path stays rare.
  ``max_map_size_bytes`` bounds the growth; past it a write fails with StorageError.
* The map guard. lmdb may change the map size only while no transaction of this process is
  open (it remaps the file). Every transaction enters the guard; a resize waits until none
  is open, and new transactions wait only while the (short) resize itself runs. Readers are
  preferred: a resize that must wait for a long read (a snapshot being built) delays the
  writer that needs the room, never the trio thread.
* Damage. A data file shorter than its meta pages say is refused before it is mapped
  (``fastraft.storage.lmdb_file_check``): lmdb would crash the process with SIGBUS.
* Formats. ``check_format`` records a store's format version in its meta sub-database on
  first use and refuses any other version with a StorageError naming the file.

Write transactions run in a worker thread (each store's writer thread,
``fastraft.storage.group_commit``) because a commit waits for fsync; reads run on the calling
thread (a memory copy out of the map).
"""

from __future__ import annotations

import os
import threading
from contextlib import contextmanager
from typing import Callable, Iterator, TypeVar

import lmdb

from ..errors import StorageError
from .lmdb_file_check import check_data_file
from .store_kind import refuse_other_kind

__all__ = ["LmdbEnv", "DEFAULT_MAP_SIZE_BYTES", "GROW_AT_FRACTION"]

T = TypeVar("T")

#: The initial map size of a new environment (it grows as needed).
DEFAULT_MAP_SIZE_BYTES = 64 * 1024 * 1024
#: Grow ahead of time when the used part of the map passes this fraction.
GROW_AT_FRACTION = 0.5
#: Named sub-databases an environment may hold (log, log meta, state machine data and meta).
MAX_DBS = 8
#: Attempts of one write transaction (each failed attempt doubles the map at least).
_MAX_ATTEMPTS = 64


class _MapGuard:
    """Counts open transactions; ``resize`` runs a function while none is open.

    Invariant: while ``_resizing`` no transaction is open, and none opens.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._open = 0
        self._resizing = False

    def enter(self) -> None:
        with self._cond:
            while self._resizing:
                self._cond.wait()
            self._open += 1

    def exit(self) -> None:
        with self._cond:
            self._open -= 1
            if self._open == 0:
                self._cond.notify_all()

    def resize(self, fn: Callable[[], None], wait: bool) -> bool:
        """Run ``fn`` with no transaction open; with ``wait`` False, only if none is open
        right now. Returns whether ``fn`` ran."""
        with self._cond:
            while self._open or self._resizing:
                if not wait:
                    return False
                self._cond.wait()
            self._resizing = True
        try:
            fn()
        finally:
            with self._cond:
                self._resizing = False
                self._cond.notify_all()
        return True


class LmdbEnv:
    """An open lmdb environment (a directory holding data.mdb and lock.mdb).

    Open it with ``LmdbEnv(path)`` (blocking: opening may create files), hand it to
    ``LmdbLogStore.open`` and a state machine such as ``LmdbKVStateMachine.open``, and
    ``close()`` it after closing them. A store opened from a path opens and closes its own.

    Invariant: one LmdbEnv per directory per process (lmdb refuses a second one).
    """

    def __init__(self, path: str | os.PathLike, *, map_size_bytes: int = DEFAULT_MAP_SIZE_BYTES,
                 max_map_size_bytes: int | None = None, writemap: bool = False) -> None:
        self.path = os.fspath(path)
        self.max_map_size_bytes = max_map_size_bytes
        self._guard = _MapGuard()
        self._users = 0
        self._closed = False
        try:
            os.makedirs(self.path, exist_ok=True)
            refuse_other_kind(self.path, "lmdb")
            check_data_file(self.path)  # a truncated file would be SIGBUS once mapped
            self._env = lmdb.open(self.path, map_size=map_size_bytes, subdir=True, sync=True,
                                  metasync=True, map_async=False, writemap=writemap,
                                  max_dbs=MAX_DBS, readahead=False, lock=True)
        except (lmdb.Error, OSError) as e:
            raise StorageError(f"cannot open lmdb environment {self.path}: {e}") from e
        self._page_bytes = self._env.stat()["psize"]

    # -- sub-databases and users -----------------------------------------------------------

    def open_db(self, name: bytes):
        """The named sub-database, created if missing (in a synced transaction)."""
        self._check_open()
        self._guard.enter()
        try:
            return self._env.open_db(name, create=True)
        except lmdb.Error as e:
            raise StorageError(f"{self.path}: cannot open sub-database {name!r}: {e}") from e
        finally:
            self._guard.exit()

    def add_user(self) -> None:
        self._check_open()
        self._users += 1

    def remove_user(self) -> None:
        self._users -= 1

    def _check_open(self) -> None:
        if self._closed:
            raise StorageError(f"lmdb environment {self.path} is closed")

    # -- transactions ---------------------------------------------------------------------

    @contextmanager
    def read_txn(self) -> Iterator[lmdb.Transaction]:
        """A read-only transaction: a consistent view that writers do not disturb."""
        self._check_open()
        self._guard.enter()
        try:
            txn = self._env.begin(write=False)
            try:
                yield txn
            finally:
                txn.abort()
        except lmdb.Error as e:
            raise StorageError(f"{self.path}: read failed: {e}") from e
        finally:
            self._guard.exit()

    def write(self, fn: Callable[[lmdb.Transaction], T]) -> T:
        """Run ``fn(txn)`` in a write transaction and commit it, synced; blocking (call it
        from a worker thread once the store is open).

        ``fn`` must be re-runnable: when the map is full the transaction is aborted, the map
        grown, and ``fn`` called again on a fresh transaction. Any lmdb failure raises
        StorageError naming the file; nothing is committed then.
        """
        self._check_open()
        self._maybe_grow_early()
        for _ in range(_MAX_ATTEMPTS):
            size_before = self._env.info()["map_size"]
            self._guard.enter()
            try:
                txn = self._env.begin(write=True)
                try:
                    result = fn(txn)
                    txn.commit()
                    return result
                except BaseException:
                    txn.abort()
                    raise
            except lmdb.MapFullError:
                pass  # grow below, outside the guard, then retry
            except lmdb.Error as e:
                raise StorageError(f"{self.path}: write failed: {e}") from e
            finally:
                self._guard.exit()
            self._grow(size_before)
        raise StorageError(f"{self.path}: a write still finds the map full after growing it")

    def _maybe_grow_early(self) -> None:
        info = self._env.info()
        used = (info["last_pgno"] + 1) * self._page_bytes
        if used > info["map_size"] * GROW_AT_FRACTION:
            self._guard.resize(lambda: self._set_size(self._target_size(info["map_size"])),
                               wait=False)

    def _target_size(self, current: int) -> int:
        info = self._env.info()
        used = (info["last_pgno"] + 1) * self._page_bytes
        target = max(2 * current, 2 * used)
        target = -(-target // self._page_bytes) * self._page_bytes
        if self.max_map_size_bytes is not None:
            target = min(target, self.max_map_size_bytes)
        return target

    def _grow(self, size_before: int) -> None:
        def grow() -> None:
            current = self._env.info()["map_size"]
            if current > size_before:
                return  # another writer grew it meanwhile
            target = self._target_size(current)
            if target <= current:
                raise StorageError(
                    f"{self.path}: the lmdb map is full at {current} bytes, the limit "
                    f"max_map_size_bytes={self.max_map_size_bytes}")
            self._set_size(target)

        self._guard.resize(grow, wait=True)

    def _set_size(self, size_bytes: int) -> None:
        try:
            self._env.set_mapsize(size_bytes)
        except lmdb.Error as e:
            raise StorageError(f"{self.path}: cannot grow the map to {size_bytes}: {e}") from e

    @property
    def map_size_bytes(self) -> int:
        return self._env.info()["map_size"]

    # -- formats ----------------------------------------------------------------------------

    def check_format(self, meta_db, data_db, store: str, version: bytes) -> None:
        """Make sure the store ``store`` (its meta and data sub-databases) holds format
        ``version``: record it in a new store, refuse any other version, and refuse data
        without a version (it was not written by fastraft)."""
        with self.read_txn() as txn:
            found = txn.get(b"format", db=meta_db)
            has_data = txn.stat(data_db)["entries"] > 0
        if found is None:
            if has_data:
                raise StorageError(f"{self.path}: the {store} sub-database holds data but no "
                                   "format version: it was not written by fastraft")
            self.write(lambda t: t.put(b"format", version, db=meta_db))
        elif found != version:
            raise StorageError(f"{self.path}: the {store} has format version {found!r}, which "
                               f"this build does not know (it reads {version!r})")

    # -- lifecycle --------------------------------------------------------------------------

    def close(self) -> None:
        """Close the environment; StorageError if a store still uses it. Idempotent."""
        if self._closed:
            return
        if self._users:
            raise StorageError(f"{self.path}: {self._users} store(s) still use this "
                               "environment; close them first")
        self._closed = True
        self._env.close()

    @property
    def closed(self) -> bool:
        return self._closed
