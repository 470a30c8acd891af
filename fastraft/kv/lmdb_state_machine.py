"""The KV state machine on lmdb: durable, in the node's environment beside its log.

Layout: sub-database ``kv_data`` (key -> value, UTF-8, each value sealed with a checksum
of its key and itself: ``fastraft.kv.sealed_values``) and ``kv_meta`` (``format``,
``applied``, ``membership``, ``snapshot_meta``, ``snapshot_file``: checksummed records of
``fastraft.storage.records``). Snapshot files live in ``<env>/kv-snapshots/``.

* Apply: off the write's path of syncs. A batch is applied to memory (its responses are
  ready at once) and staged; a background thread commits the staged batches, their data
  and the applied index in one synced transaction, every ``commit_interval_s``
  (``fastraft.kv.apply_buffer``: why, and why not lmdb's MDB_NOSYNC). A crash leaves the
  state of the last commit, never half a batch (Raft §5.3: an entry applies exactly once);
  the applies after it are lost and the node applies those committed entries again from
  its log when it starts (the contract: ``fastraft.storage.protocols.StateMachine``).
  Building or installing a snapshot commits what is staged first, so a snapshot, and the
  log purge it allows, never covers an apply that is not durable.
* Build: a read transaction is a consistent view (lmdb's MVCC), so the snapshot is streamed
  from it to a file while applies go on; the file is synced and renamed into place before
  the transaction that makes it current.
* Install: the received file is parsed and loaded into one write transaction that replaces
  the data and the applied state; bad bytes abort it (CodecError) and change nothing.
* Damage: every value read (a local read, a compare-and-swap in apply, a snapshot build) is
  checked against its checksum. A mismatch raises StorageError naming the key, and from
  then on the state machine refuses every call: a node stops rather than answer wrongly
  or apply on top of damaged state.

Format ``fastraft-kv-2`` (sealed values). A store of format ``fastraft-kv-1`` (values without
a checksum) is refused, not migrated: sealing its values now would vouch for whatever bytes
they hold, damaged or not. Such a node is rebuilt: removed from the cluster, its data
directory deleted, and added back under a new id (it then receives a snapshot).
"""

from __future__ import annotations

import os
import shutil
from typing import BinaryIO, Sequence

import trio

from ..errors import CodecError, StorageError
from ..storage import records
from ..storage.lmdb_env import LmdbEnv
from ..storage.protocols import Snapshot, StateMachine
from ..types import LogId, SnapshotMeta, StoredMembership
from .commands import MAX_KEY_BYTES
from .apply_buffer import ApplyBuffer
from .sealed_values import seal, unseal
from .snapshot_format import SnapshotWriter, read_snapshot
from .state_machine import apply_entries, check_apply_start, check_snapshot_matches, new_snapshot_id

__all__ = ["LmdbKVStateMachine", "FORMAT_VERSION"]

FORMAT_VERSION = b"fastraft-kv-2"
#: Formats this build refuses, each with what to do about it.
_OLD_FORMATS = {
    b"fastraft-kv-1": "its values carry no checksum (format fastraft-kv-1); this build "
                      "refuses it rather than vouch for bytes it cannot check. Rebuild the "
                      "node: remove it from the cluster, delete its data directory, and add "
                      "it back under a new id",
}
_SNAP_DIR = "kv-snapshots"
_COPY_CHUNK_BYTES = 1024 * 1024
#: etcd's backend commits every 100 ms (its ``--backend-batch-interval``); the same here.
DEFAULT_COMMIT_INTERVAL_S = 0.1
#: Bounds on what waits for the next commit (an apply past them commits first).
DEFAULT_MAX_STAGED_KEYS = 65536
DEFAULT_MAX_STAGED_BYTES = 64 << 20


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class LmdbKVStateMachine(StateMachine):
    """A durable KV ``StateMachine``; open with ``await LmdbKVStateMachine.open(path_or_env)``.

    Invariant: ``_last_applied`` and ``_membership`` are those of the last batch applied (staged
    or committed); ``durable_applied`` is what a crash now would leave.
    """

    #: A build copies the committed state through one lmdb read transaction (a consistent
    #: applied point) in a worker thread, so applies go on meanwhile.
    concurrent_snapshot_builds = True

    def __init__(self, env: LmdbEnv, owns_env: bool, commit_interval_s: float,
                 max_staged_keys: int, max_staged_bytes: int) -> None:
        self._env = env
        self._owns_env = owns_env
        self._data_db = env.open_db(b"kv_data")
        self._meta_db = env.open_db(b"kv_meta")
        self._dir = os.path.join(env.path, _SNAP_DIR)
        self._last_applied: LogId | None = None
        self._membership = StoredMembership()
        self._snapshot: tuple[SnapshotMeta, str] | None = None
        # applies, installs and snapshot records one at a time; a semaphore, not a
        # trio.Lock: its uncontended acquire is a counter, where a Lock's records an owner
        # (a write's apply takes it every time)
        self._write_lock = trio.Semaphore(1, max_value=1)
        self._closed = False
        self._damage: StorageError | None = None  # set once a value failed its checksum
        self._data_where = self._where("kv_data sub-database")
        self._buffer = ApplyBuffer(self._commit_staged, commit_interval_s=commit_interval_s,
                                   max_staged_keys=max_staged_keys,
                                   max_staged_bytes=max_staged_bytes, name=env.path)

    @classmethod
    async def open(cls, where: str | os.PathLike | LmdbEnv, *,
                   commit_interval_s: float = DEFAULT_COMMIT_INTERVAL_S,
                   max_staged_keys: int = DEFAULT_MAX_STAGED_KEYS,
                   max_staged_bytes: int = DEFAULT_MAX_STAGED_BYTES,
                   **env_options) -> "LmdbKVStateMachine":
        """Open (or create) the state machine at ``where``: a directory (its own environment,
        ``env_options`` go to ``LmdbEnv``) or an ``LmdbEnv`` shared with the log store (its
        background commits then take lmdb's one write lock from the log's appends: prefer a
        directory of its own). Applies are committed every ``commit_interval_s``, or sooner
        once ``max_staged_keys`` keys or ``max_staged_bytes`` bytes wait.
        StorageError if stored state fails its checks."""
        def open_sync() -> LmdbKVStateMachine:
            owns = not isinstance(where, LmdbEnv)
            env = LmdbEnv(where, **env_options) if owns else where
            sm = None
            try:
                sm = cls(env, owns, commit_interval_s, max_staged_keys, max_staged_bytes)
                sm._load()
            except BaseException:
                if sm is not None:
                    sm._buffer.close()
                if owns:
                    env.close()
                raise
            env.add_user()
            return sm

        return await trio.to_thread.run_sync(open_sync)

    def _where(self, what: str) -> str:
        return f"{self._env.path}: {what}"

    def _load(self) -> None:
        with self._env.read_txn() as txn:
            found = txn.get(b"format", db=self._meta_db)
        if found is not None and bytes(found) in _OLD_FORMATS:
            raise StorageError(self._where(f"the KV state machine cannot be opened: "
                                           f"{_OLD_FORMATS[bytes(found)]}"))
        self._env.check_format(self._meta_db, self._data_db, "KV state machine", FORMAT_VERSION)
        keys = (b"applied", b"membership", b"snapshot_meta", b"snapshot_file")
        with self._env.read_txn() as txn:
            got = {k: txn.get(k, db=self._meta_db) for k in keys}
        try:
            if got[b"applied"] is not None:
                self._last_applied = records.decode_log_id(got[b"applied"], "applied")
                self._buffer.durable_applied = self._last_applied
            if got[b"membership"] is not None:
                self._membership = records.decode_stored_membership(got[b"membership"])
            if got[b"snapshot_meta"] is not None:
                meta = records.decode_snapshot_meta(got[b"snapshot_meta"])
                name = (got[b"snapshot_file"] or b"").decode()
                if not name or os.sep in name or name.startswith("."):
                    raise CodecError(f"bad snapshot file name {name!r}")
                self._snapshot = (meta, name)
        except (CodecError, UnicodeDecodeError) as e:
            raise StorageError(self._where(f"kv_meta sub-database: {e}")) from None
        os.makedirs(self._dir, exist_ok=True)
        current = None if self._snapshot is None else self._snapshot[1]
        if current is not None and not os.path.isfile(os.path.join(self._dir, current)):
            raise StorageError(self._where(f"the current snapshot file {_SNAP_DIR}/{current} "
                                           "is missing"))
        for name in os.listdir(self._dir):  # leftovers of builds or installs a crash cut short
            if name != current:
                os.remove(os.path.join(self._dir, name))

    def _check_open(self) -> None:
        if self._closed:
            raise StorageError(self._where("the KV state machine is closed"))
        if self._damage is not None:
            raise StorageError(f"{self._damage} (found earlier: this state machine serves "
                               "nothing more)")

    def _unseal(self, key: bytes, record) -> bytes:
        """The value of ``record``; on a checksum mismatch, remember the damage (every later
        call refuses) and raise it."""
        try:
            return unseal(key, record, self._data_where)
        except StorageError as e:
            self._damage = e
            raise

    # -- reads --------------------------------------------------------------------------------

    def get(self, key: str) -> str | None:
        """The value of ``key`` in the applied state (a local read: it may lag the leader)."""
        self._check_open()
        raw = key.encode()
        if not raw or len(raw) > MAX_KEY_BYTES:
            return None  # no command can have stored it
        value = self._buffer.read(raw, self._read_committed)
        return None if value is None else value.decode()

    def _read_committed(self, raw: bytes) -> bytes | None:
        with self._env.read_txn() as txn:
            record = txn.get(raw, db=self._data_db)
        return None if record is None else self._unseal(raw, record)

    @property
    def durable_applied(self) -> LogId | None:
        """The last applied log id committed to disk: what a crash now would leave."""
        return self._buffer.durable_applied

    async def applied_state(self) -> tuple[LogId | None, StoredMembership]:
        self._check_open()
        return self._last_applied, self._membership

    # -- apply --------------------------------------------------------------------------------

    async def apply(self, entries: Sequence) -> list:
        """Apply ``entries`` in memory and stage them for the next background commit.

        No checkpoint unless it must wait (the write lock held by an install, or a full
        buffer): a write's answer waits for this apply, and a scheduler pass here would
        come on top of its latency for nothing (``acquire`` always takes one)."""
        self._check_open()
        lock = self._write_lock
        try:
            lock.acquire_nowait()
        except trio.WouldBlock:
            await lock.acquire()
        try:
            check_apply_start(entries, self._last_applied)
            if self._buffer.full():  # bounded memory: the staged applies go to disk first
                await trio.to_thread.run_sync(self._buffer.commit_now)
            last = entries[len(entries) - 1]
            applied = LogId(last.term, last.index)
            start = self._membership
            outcome: list = []

            def run(get, put) -> list:
                def get_value(key: str) -> str | None:
                    value = get(key.encode())
                    return None if value is None else value.decode()

                def write(key: str, value: str | None) -> None:
                    put(key.encode(), None if value is None else value.encode())

                responses, membership = apply_entries(entries, start, get_value, write)
                outcome.append(membership)
                return responses

            def changed_membership() -> StoredMembership | None:
                return None if outcome[0] is start else outcome[0]

            responses = self._buffer.apply(run, applied, changed_membership,
                                           self._read_committed)
            self._last_applied, self._membership = applied, outcome[0]
            return responses
        finally:
            lock.release()

    def _commit_staged(self, changes: dict, applied: LogId,
                       membership: StoredMembership | None) -> None:
        """Commit staged applies with their applied index in one synced transaction
        (the buffer's thread, or a worker thread)."""
        data_db, meta_db = self._data_db, self._meta_db
        keys = sorted(changes)  # in key order: lmdb touches each page once

        def body(txn) -> None:
            for raw in keys:
                value = changes[raw]
                if value is None:
                    txn.delete(raw, db=data_db)
                else:
                    txn.put(raw, seal(raw, value), db=data_db)
            txn.put(b"applied", records.encode_log_id(applied), db=meta_db)
            if membership is not None:
                txn.put(b"membership", records.encode_stored_membership(membership),
                        db=meta_db)

        self._env.write(body)

    # -- snapshots ----------------------------------------------------------------------------

    async def build_snapshot(self) -> Snapshot:
        self._check_open()
        meta, name = await trio.to_thread.run_sync(self._build_sync)
        path = os.path.join(self._dir, name)
        async with self._write_lock:
            if self._snapshot is None or _newer(meta, self._snapshot[0]):
                await trio.to_thread.run_sync(self._make_current, meta, name)
                return Snapshot(meta, open(path, "rb"))
        # A newer snapshot became current while this one was built (an install): hand this
        # one out, but do not keep its file.
        handle = open(path, "rb")
        os.remove(path)
        return Snapshot(meta, handle)

    def _build_sync(self) -> tuple[SnapshotMeta, str]:
        """Stream a consistent copy to a new file (worker thread); writes go on meanwhile."""
        self._buffer.commit_now()  # the snapshot covers only durable applies
        tmp = os.path.join(self._dir, f"build-{os.urandom(6).hex()}.tmp")
        try:
            with self._env.read_txn() as txn, open(tmp, "wb") as out:
                applied = txn.get(b"applied", db=self._meta_db)
                membership = txn.get(b"membership", db=self._meta_db)
                last = None if applied is None else records.decode_log_id(applied, "applied")
                stored = (StoredMembership() if membership is None
                          else records.decode_stored_membership(membership))
                meta = SnapshotMeta(last, stored, new_snapshot_id(last))
                writer = SnapshotWriter(out, meta)
                check = self._unseal
                for key, record in txn.cursor(db=self._data_db).iternext(keys=True, values=True):
                    writer.add(key, check(key, record))  # damage is never shipped
                writer.finish()
                out.flush()
                os.fsync(out.fileno())
        except CodecError as e:
            os.remove(tmp)
            raise StorageError(self._where(f"kv_meta sub-database: {e}")) from None
        except BaseException:
            if os.path.exists(tmp):
                os.remove(tmp)
            raise
        name = f"{meta.snapshot_id}.snap"
        os.replace(tmp, os.path.join(self._dir, name))
        _fsync_dir(self._dir)
        return meta, name

    def _make_current(self, meta: SnapshotMeta, name: str, extra=None) -> None:
        """Record (meta, file) as the current snapshot; remove the previous file."""
        def body(txn):
            if extra is not None:
                extra(txn)
            txn.put(b"snapshot_meta", records.encode_snapshot_meta(meta), db=self._meta_db)
            txn.put(b"snapshot_file", name.encode(), db=self._meta_db)

        self._env.write(body)
        old, self._snapshot = self._snapshot, (meta, name)
        if old is not None and old[1] != name:
            os.remove(os.path.join(self._dir, old[1]))

    async def get_current_snapshot(self) -> Snapshot | None:
        self._check_open()
        if self._snapshot is None:
            return None
        meta, name = self._snapshot
        return Snapshot(meta, open(os.path.join(self._dir, name), "rb"))

    async def begin_receiving_snapshot(self) -> BinaryIO:
        self._check_open()
        return open(os.path.join(self._dir, f"recv-{os.urandom(6).hex()}.tmp"), "w+b")

    async def install_snapshot(self, meta: SnapshotMeta, data: BinaryIO) -> None:
        self._check_open()
        async with self._write_lock:
            await trio.to_thread.run_sync(self._install_sync, meta, data)
            self._last_applied, self._membership = meta.last_log_id, meta.last_membership
            self._buffer.durable_applied = meta.last_log_id

    def _install_sync(self, meta: SnapshotMeta, data: BinaryIO) -> None:
        try:
            # staged applies first: an install that fails must leave the state as it was
            self._buffer.commit_now()
        except BaseException:
            data.close()
            raise
        path = getattr(data, "name", None)
        if not (isinstance(path, str) and os.path.dirname(os.path.abspath(path)) == self._dir):
            # Bytes from elsewhere (not begin_receiving_snapshot's file): copy them into a
            # file of ours first, a chunk at a time.
            src = data
            data = open(os.path.join(self._dir, f"recv-{os.urandom(6).hex()}.tmp"), "w+b")
            try:
                src.seek(0)
                shutil.copyfileobj(src, data, _COPY_CHUNK_BYTES)
            except BaseException:
                data.close()
                os.remove(data.name)
                raise
            finally:
                src.close()
        try:
            data.flush()
            os.fsync(data.fileno())
            name = f"{meta.snapshot_id}.snap"
            if os.sep in name or name.startswith("."):
                raise CodecError(f"bad snapshot id {meta.snapshot_id!r}")
            final = os.path.join(self._dir, name)
            data_db, meta_db = self._data_db, self._meta_db

            def load(txn) -> None:
                data.seek(0)
                embedded, pairs = read_snapshot(data)
                check_snapshot_matches(meta, embedded)
                txn.drop(data_db, delete=False)
                cursor = txn.cursor(db=data_db)
                sealed = ((k, seal(k, v)) for k, v in pairs)
                cursor.putmulti(sealed, append=True)  # keys arrive sorted: lmdb's fast path
                txn.put(b"applied", records.encode_log_id(meta.last_log_id), db=meta_db)
                txn.put(b"membership", records.encode_stored_membership(meta.last_membership),
                        db=meta_db)
                if not os.path.exists(final):  # in place before the commit that names it
                    # A rename within the directory, not a hard link: some file systems
                    # (FUSE ones among them) have no links; the open file stays readable.
                    os.rename(data.name, final)
                    _fsync_dir(self._dir)

            self._make_current(meta, name, extra=load)
        finally:
            data.close()
            if os.path.exists(data.name):
                os.remove(data.name)

    # -- lifecycle ----------------------------------------------------------------------------

    async def aclose(self) -> None:
        if self._closed:
            return
        with trio.CancelScope(shield=True):
            async with self._write_lock:
                self._closed = True
            try:  # what is staged goes to disk: a clean stop loses no apply
                await trio.to_thread.run_sync(self._buffer.close)
            except StorageError:
                pass  # reported to the apply that met it; nothing more can be saved
        self._env.remove_user()
        if self._owns_env:
            self._env.close()


def _newer(a: SnapshotMeta, b: SnapshotMeta) -> bool:
    if b.last_log_id is None:
        return True
    return a.last_log_id is not None and a.last_log_id > b.last_log_id
