"""The durable log store on lmdb.

Layout in the node's environment (``fastraft.storage.lmdb_env``):

* sub-database ``log``: one record per entry, keyed by its index as a big-endian u64 (so
  lmdb's byte order is index order), valued by the codec's self-checking FRAME_RECORD frame
  (``fastraft.codec.encode_entry_records``);
* sub-database ``log_meta``: ``format`` (FORMAT_VERSION), ``vote``, ``last_purged`` and
  ``committed``, each a checksummed ``fastraft.storage.records`` record.

Writes go through a ``WritePipeline`` (group commit): every mutation issued while a synced
transaction runs is written in the next one, and completes when that one is on disk.
Purge records the new ``last_purged`` at once and deletes entries afterwards in batches of
at most ``purge_batch_entries`` (one transaction each), so that a large purge never makes
one huge transaction; entries at or below ``last_purged`` are never read, and opening the
store finishes a purge a crash interrupted.

Opening checks everything (``verify=True``): the format version, every meta record, every
entry's checksum, that the keys are contiguous and that each key matches its entry; any
failure raises StorageError naming the file and the index or key, and nothing is changed.
"""

from __future__ import annotations

import os
import struct
from itertools import islice
from typing import Sequence

import trio

from ..codec import decode_entry_record, decode_entry_records, encode_entry_records
from ..errors import CodecError, StorageError
from ..types import LogId, Vote
from . import records
from .group_commit import WritePipeline
from .lmdb_env import LmdbEnv
from .protocols import LogState, LogStore, OnDurable
from .validate import check_append, check_purge, check_range, check_truncate

__all__ = ["LmdbLogStore", "FORMAT_VERSION"]

#: The log store's on-disk format; a store with any other is refused at open.
FORMAT_VERSION = b"fastraft-log-1"
#: Entries decoded per step while verifying a store at open.
_VERIFY_CHUNK_ENTRIES = 4096

_key = struct.Struct(">Q").pack


def _index_of(key: bytes) -> int:
    if len(key) != 8:
        raise CodecError(f"log key of {len(key)} bytes, expected 8")
    return int.from_bytes(key, "big")


class LmdbLogStore(LogStore):
    """A durable ``LogStore`` on lmdb; open it with ``await LmdbLogStore.open(path_or_env)``.

    Invariant: ``_durable`` describes what is committed to disk and reported; ``_staged`` what
    it will be once every submitted mutation is committed (appends are checked against it).
    Invariant: a read returns only entries with index in [_read_lo, _read_hi): committed,
    not purged, and not covered by a truncation still in flight.
    """

    def __init__(self, env: LmdbEnv, owns_env: bool, purge_batch_entries: int) -> None:
        self._env = env
        self._owns_env = owns_env
        self._purge_batch = purge_batch_entries
        self._log_db = env.open_db(b"log")
        self._meta_db = env.open_db(b"log_meta")
        self._pipeline: WritePipeline = WritePipeline(
            f"lmdb log {env.path}", self._write_batch, self._on_committed)
        self._closed = False
        self._vote: Vote | None = None
        self._committed: LogId | None = None
        self._durable = LogState()
        self._staged = LogState()
        self._physical_first = 1  # lowest index still stored (a purge may lag behind)
        self._read_lo = 1
        self._read_hi = 1

    # -- opening --------------------------------------------------------------------------

    @classmethod
    async def open(cls, where: str | os.PathLike | LmdbEnv, *, verify: bool = True,
                   purge_batch_entries: int = 10_000, **env_options) -> "LmdbLogStore":
        """Open (or create) the log store at ``where``: a directory (the store opens and owns
        its environment, ``env_options`` go to ``LmdbEnv``) or an open ``LmdbEnv`` shared with
        a state machine. Blocking work runs in a worker thread.

        Raises StorageError (what and where) if the store fails any check.
        """
        def open_sync() -> LmdbLogStore:
            owns = not isinstance(where, LmdbEnv)
            env = LmdbEnv(where, **env_options) if owns else where
            try:
                store = cls(env, owns, purge_batch_entries)
                store._load(verify)
            except BaseException:
                if owns:
                    env.close()
                raise
            env.add_user()
            return store

        return await trio.to_thread.run_sync(open_sync)

    def _where(self, what: str) -> str:
        return f"{self._env.path}: {what}"

    def _load(self, verify: bool) -> None:
        env = self._env
        env.check_format(self._meta_db, self._log_db, "log store", FORMAT_VERSION)
        with env.read_txn() as txn:
            meta = {k: txn.get(k, db=self._meta_db) for k in (b"vote", b"committed", b"last_purged")}
            cursor = txn.cursor(db=self._log_db)
            first_key = cursor.key() if cursor.first() else None
            last_key = cursor.key() if cursor.last() else None
            last_record = cursor.value() if last_key is not None else None
        try:
            self._vote = None if meta[b"vote"] is None else records.decode_vote(meta[b"vote"])
            self._committed = (None if meta[b"committed"] is None
                               else records.decode_log_id(meta[b"committed"], "committed"))
            last_purged = (None if meta[b"last_purged"] is None
                           else records.decode_log_id(meta[b"last_purged"], "last_purged"))
        except CodecError as e:
            raise StorageError(self._where(f"log_meta sub-database: {e}")) from None
        purged_index = 0 if last_purged is None else last_purged.index
        last_log = last_purged
        if first_key is not None:
            first, last = self._key_index(first_key), self._key_index(last_key)
            if first > purged_index + 1:
                raise StorageError(self._where(
                    f"log entries [{purged_index + 1}, {first}) are missing: the log starts at "
                    f"{first} but only entries up to {purged_index} were purged"))
            if last > purged_index:
                entry = self._decode_one(last_record, last)
                last_log = LogId(entry.term, entry.index)
                if verify:
                    self._verify(purged_index + 1, last)
            if first <= purged_index:  # a purge that a crash interrupted: finish it
                self._physical_first = first
                while self._physical_first <= purged_index:
                    self._physical_first = env.write(partial_purge(
                        self._log_db, purged_index, self._purge_batch))
            self._physical_first = max(first, purged_index + 1)
        self._durable = self._staged = LogState(last_purged, last_log)
        self._read_lo = purged_index + 1
        self._read_hi = self._durable.next_index

    def _key_index(self, key: bytes) -> int:
        try:
            return _index_of(key)
        except CodecError as e:
            raise StorageError(self._where(f"log sub-database: {e}")) from None

    def _decode_one(self, record: bytes, index: int):
        try:
            entry = decode_entry_record(record)
        except CodecError as e:
            raise StorageError(self._where(f"log entry {index} fails its check: {e}")) from None
        if entry.index != index:
            raise StorageError(self._where(f"log key {index} holds entry {entry.index}"))
        return entry

    def _verify(self, lo: int, last: int) -> None:
        """Check every entry in [lo, last + 1): contiguous keys, checksums, key = index,
        terms non-decreasing (checked at chunk ends)."""
        expected, prev_term = lo, 0
        with self._env.read_txn() as txn:
            cursor = txn.cursor(db=self._log_db)
            if not cursor.set_key(_key(lo)):
                raise StorageError(self._where(f"log entry {lo} is missing"))
            items = cursor.iternext(keys=True, values=True)
            while expected <= last:
                chunk = list(islice(items, _VERIFY_CHUNK_ENTRIES))
                if not chunk:
                    raise StorageError(self._where(f"log entry {expected} is missing"))
                keys = [k for k, _ in chunk]
                n = len(chunk)
                if (self._key_index(keys[0]) != expected
                        or self._key_index(keys[-1]) != expected + n - 1):
                    raise StorageError(self._where(
                        f"the log has a gap in [{expected}, {expected + n}): keys are not "
                        "contiguous"))
                entries = self._decode_many([v for _, v in chunk], expected)
                if entries[0].term < prev_term or entries[-1].term < entries[0].term:
                    raise StorageError(self._where(
                        f"log terms decrease in [{expected}, {expected + n})"))
                prev_term = entries[-1].term
                expected += n

    def _decode_many(self, recs: list, first: int) -> list:
        try:
            entries = decode_entry_records(recs)
        except CodecError:
            for i, rec in enumerate(recs):  # find which one, to name its index
                self._decode_one(rec, first + i)
            raise
        n = len(entries)
        if entries[0].index != first or entries[n - 1].index != first + n - 1:
            raise StorageError(self._where(
                f"log keys [{first}, {first + n}) hold entries {entries[0].index}.."
                f"{entries[n - 1].index}"))
        return entries

    # -- reads ------------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise StorageError(self._where("the log store is closed"))
        self._pipeline.check()

    async def read_vote(self) -> Vote | None:
        self._check_open()
        return self._vote

    async def read_committed(self) -> LogId | None:
        self._check_open()
        return self._committed

    async def get_log_state(self) -> LogState:
        self._check_open()
        return self._durable

    async def read_entries(self, lo: int, hi: int, max_entries: int | None = None) -> list:
        self._check_open()
        lo, hi = check_range(lo, hi, max_entries)
        start, stop = max(lo, self._read_lo), min(hi, self._read_hi)
        if max_entries is not None:
            stop = min(stop, start + max_entries)
        n = stop - start
        if n <= 0:
            return []
        with self._env.read_txn() as txn:
            cursor = txn.cursor(db=self._log_db)
            if not cursor.set_key(_key(start)):
                raise StorageError(self._where(f"log entry {start} is missing"))
            recs = list(islice(cursor.iternext(keys=False, values=True), n))
        if len(recs) != n:
            raise StorageError(self._where(f"log entries [{start}, {stop}) are not all stored"))
        return self._decode_many(recs, start)

    # -- writes -----------------------------------------------------------------------------

    def _prepare_append(self, entries: Sequence) -> tuple:
        """Check and encode ``entries`` against the staged log; stage them; return the op."""
        self._check_open()
        staged = self._staged
        last = staged.last_log_id
        check_append(entries, staged.next_index, 0 if last is None else last.term)
        recs = encode_entry_records(entries)
        tail = entries[len(entries) - 1]
        after = LogState(staged.last_purged_log_id, LogId(tail.term, tail.index))
        self._staged = after
        return ("append", entries[0].index, recs, entries, after)

    def append_nowait(self, entries: Sequence, on_durable: OnDurable) -> None:
        op = self._prepare_append(entries)
        self._pipeline.submit(op, lambda error, _result: on_durable(error))

    async def append(self, entries: Sequence) -> None:
        await self._pipeline.run(self._prepare_append(entries))

    async def save_vote(self, vote: Vote) -> None:
        self._check_open()
        if not isinstance(vote, Vote):
            raise TypeError(f"save_vote takes a Vote, not {type(vote).__name__}")
        await self._pipeline.run(("vote", records.encode_vote(vote), vote, self._staged))

    async def save_committed(self, committed: LogId | None) -> None:
        self._check_open()
        await self._pipeline.run(
            ("committed", records.encode_log_id(committed), committed, self._staged))

    async def truncate(self, since_index: int) -> None:
        self._check_open()
        staged = self._staged
        check_truncate(since_index, staged.last_purged_log_id)
        if since_index >= staged.next_index:
            await self._pipeline.run(("noop", staged))
            return
        purged = staged.last_purged_log_id
        if purged is not None and since_index - 1 == purged.index:
            last = purged
        elif since_index == 1:
            last = None
        else:
            last = self._log_id_at(since_index - 1)
        after = LogState(purged, last)
        self._staged = after
        self._read_hi = min(self._read_hi, since_index)
        await self._pipeline.run(("truncate", since_index, after))

    def _log_id_at(self, index: int) -> LogId:
        """The id of the entry at ``index`` of the staged log: from the latest queued append
        that wrote it, else from the disk."""
        for op in reversed(self._pipeline.queued_ops()):
            if op[0] == "append" and op[1] <= index < op[1] + len(op[3]):
                entry = op[3][index - op[1]]
                return LogId(entry.term, entry.index)
        with self._env.read_txn() as txn:
            rec = txn.get(_key(index), db=self._log_db)
        if rec is None:
            raise StorageError(self._where(f"log entry {index} is missing"))
        entry = self._decode_one(rec, index)
        return LogId(entry.term, entry.index)

    async def purge(self, upto: LogId) -> None:
        self._check_open()
        check_purge(upto)
        staged = self._staged
        old = staged.last_purged_log_id
        if old is not None and upto.index <= old.index:
            return
        last = staged.last_log_id
        if last is None or upto.index >= last.index:
            last = upto
        after = LogState(upto, last)
        self._staged = after
        self._read_lo = max(self._read_lo, upto.index + 1)
        await self._pipeline.run(("purge", records.encode_log_id(upto), upto.index, after))
        while self._physical_first <= upto.index and not self._closed:
            await self._pipeline.run(("purge_step", upto.index, self._staged))

    # -- the writer (worker thread) -------------------------------------------------------------

    def _write_batch(self, ops: list) -> list:
        return self._env.write(partial_batch(self, ops))

    def _apply_op(self, txn, op: tuple):
        kind = op[0]
        if kind == "append":
            first, recs = op[1], op[2]
            n = len(recs)
            cursor = txn.cursor(db=self._log_db)
            consumed, added = cursor.putmulti(zip(map(_key, range(first, first + n)), recs),
                                              append=True)
            if added != n:
                raise StorageError(self._where(
                    f"append of [{first}, {first + n}) collided with stored entries"))
            return None
        if kind == "vote":
            txn.put(b"vote", op[1], db=self._meta_db)
            return None
        if kind == "committed":
            txn.put(b"committed", op[1], db=self._meta_db)
            return None
        if kind == "truncate":
            cursor = txn.cursor(db=self._log_db)
            if cursor.set_range(_key(op[1])):
                while cursor.delete():
                    pass
            return None
        if kind == "purge":
            txn.put(b"last_purged", op[1], db=self._meta_db)
            return partial_purge(self._log_db, op[2], self._purge_batch)(txn)
        if kind == "purge_step":
            return partial_purge(self._log_db, op[1], self._purge_batch)(txn)
        if kind == "noop":
            return None
        raise AssertionError(f"unknown log operation {kind!r}")

    # -- back on the trio thread ------------------------------------------------------------------

    def _on_committed(self, ops: list, results: list) -> None:
        for op, result in zip(ops, results):
            kind = op[0]
            if kind == "vote":
                self._vote = op[2]
            elif kind == "committed":
                self._committed = op[2]
            elif kind in ("purge", "purge_step"):
                self._physical_first = max(self._physical_first, result)
            self._durable = op[-1]
        # Reads may cover what is durable, minus anything a queued truncation removes.
        hi = self._durable.next_index
        for op in self._pipeline.queued_ops():
            if op[0] == "truncate":
                hi = min(hi, op[1])
        self._read_hi = hi

    # -- lifecycle ------------------------------------------------------------------------------

    async def aclose(self) -> None:
        if self._closed:
            return
        with trio.CancelScope(shield=True):
            await self._pipeline.wait_idle()
        self._closed = True
        self._env.remove_user()
        if self._owns_env:
            self._env.close()


def partial_batch(store: LmdbLogStore, ops: list):
    def run(txn) -> list:
        return [store._apply_op(txn, op) for op in ops]
    return run


def partial_purge(log_db, upto_index: int, max_entries: int):
    """A transaction body deleting at most ``max_entries`` of the lowest entries with index
    <= ``upto_index``; returns the lowest index still stored afterwards, or upto_index + 1
    when none is stored."""
    def run(txn) -> int:
        cursor = txn.cursor(db=log_db)
        if not cursor.first():
            return upto_index + 1
        removed = 0
        while True:
            key = cursor.key()
            if not key:
                return upto_index + 1
            index = _index_of(key)
            if index > upto_index or removed >= max_entries:
                return index
            cursor.delete()
            removed += 1
    return run
