"""The durable log store on lmdb.

It lives in the node's environment (``fastraft.storage.lmdb_env``), in two sub-databases
laid out as ``fastraft.storage.lmdb_log_layout`` describes (format ``fastraft-log-2``):
``log`` holds the entries in blocks, one lmdb record per appended batch (keyed by its first
index, one checksum each); ``log_meta`` holds the format version, the vote, the last purged
and the committed log id. A store of another format, including the unreleased format 1
(one record per entry), is refused at open; there is no migration.

Writes go through a ``WritePipeline`` (group commit): every mutation issued while a synced
transaction runs is written in the next one, and completes when that one is on disk. An
append is checked and encoded into blocks on the trio thread, so the writer thread only
puts them. A truncation inside a block rewrites that block with the entries before the cut.
Purge records the new ``last_purged`` at once and deletes whole blocks afterwards, the
blocks of at most ``purge_batch_entries`` entries per transaction (at least one block), so
that a large purge never makes one huge transaction; entries at or below ``last_purged``
are never read (the block holding it stays until a later purge passes its end), and opening
the store finishes a purge a crash interrupted.

Opening checks everything (``verify=True``): the format version, every meta record, every
block's checksum, that each key matches its block's first entry, that entries are
consecutive within and across blocks; any failure raises StorageError naming the file and
the index or key, and nothing is changed.
"""

from __future__ import annotations

import os

import trio

from ..types import LogId
from . import records
from .durable_log import DurableLogStore
from .lmdb_env import LmdbEnv
from .lmdb_log_layout import FORMAT_VERSION, LogLayout
from .lmdb_log_open import load_log
from .log_ops import Append, Noop, Purge, PurgeStep, SaveCommitted, SaveVote, Truncate
from .protocols import LogState
from .validate import check_purge, check_truncate

__all__ = ["LmdbLogStore", "FORMAT_VERSION"]


class LmdbLogStore(DurableLogStore):
    """A durable ``LogStore`` on lmdb; open it with ``await LmdbLogStore.open(path_or_env)``
    and use it inside that one trio run (its writes report back to the run's trio thread);
    ``aclose()`` it before the run ends. The staged and durable state, the read checks and
    the append and vote writes are ``DurableLogStore``'s.

    Invariant: when an operation runs in the writer thread, the log on disk is the staged
    log as it was when that operation was submitted (operations run in submission order),
    so an operation may carry what the trio thread knew then (the log's last index).
    """

    def __init__(self, env: LmdbEnv, owns_env: bool, purge_batch_entries: int) -> None:
        self._env = env
        self.path = env.path
        self._owns_env = owns_env
        self._purge_batch = purge_batch_entries
        self._layout = LogLayout(env)
        self._log_db, self._meta_db = self._layout.log_db, self._layout.meta_db
        self._init_state(f"lmdb log {env.path}")
        # The first block's key (a purge may lag behind, and the block holding the purge
        # point stays), or the next index when no block is stored.
        self._physical_first = 1
        self._truncates_pending = 0  # Truncate ops submitted and not yet durable

    # -- opening --------------------------------------------------------------------------

    @classmethod
    async def open(cls, where: str | os.PathLike | LmdbEnv, *, verify: bool = True,
                   purge_batch_entries: int = 10_000, **env_options) -> "LmdbLogStore":
        """Open (or create) the log store at ``where``: a directory (the store opens and owns
        its environment, ``env_options`` go to ``LmdbEnv``) or an open ``LmdbEnv`` shared with
        a state machine. Blocking work runs in a worker thread.

        ``purge_batch_entries`` bounds the entries a purge deletes per transaction: whole
        blocks, as many as fit in it, and at least one block however long it is.

        Raises StorageError (what and where) if the store fails any check.
        """
        if purge_batch_entries < 1:
            raise ValueError(f"purge_batch_entries must be at least 1, got {purge_batch_entries}")

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

    def _load(self, verify: bool) -> None:
        loaded = load_log(self._layout, verify, self._purge_batch)
        self._loaded(loaded.vote, loaded.committed, loaded.state)
        self._physical_first = loaded.physical_first

    # -- reads ------------------------------------------------------------------------------

    def _read(self, start: int, stop: int) -> list:
        with self._env.read_txn() as txn:
            blocks = self._layout.fetch(txn, start, stop)
        return self._layout.assemble(blocks, start, stop)  # decoded after the read ends

    # -- truncate and purge -----------------------------------------------------------------

    async def truncate(self, since_index: int) -> None:
        self._check_open()
        await self._pipeline.wait_for_room()
        staged = self._staged
        check_truncate(since_index, staged.last_purged_log_id, self._staged_committed)
        if since_index >= staged.next_index:
            await self._pipeline.run(Noop(staged))
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
        self._truncates_pending += 1
        await self._pipeline.run(Truncate(since_index, after))

    def _log_id_at(self, index: int) -> LogId:
        """The id of the entry at ``index`` of the staged log: from the latest queued append
        that wrote it, else from the disk."""
        for op in reversed(self._pipeline.queued_ops()):
            if type(op) is Append and op.first <= index < op.first + len(op.entries):
                entry = op.entries[index - op.first]
                return LogId(entry.term, entry.index)
        with self._env.read_txn() as txn:
            blocks = self._layout.fetch(txn, index, index + 1)
        entry = self._layout.assemble(blocks, index, index + 1)[0]
        return LogId(entry.term, entry.index)

    async def purge(self, upto: LogId) -> None:
        self._check_open()
        await self._pipeline.wait_for_room()
        check_purge(upto, self._known_committed())
        staged = self._staged
        old = staged.last_purged_log_id
        if old is not None and upto.index <= old.index:
            return
        last = staged.last_log_id
        tail = 0 if last is None else last.index  # the end of the last block, as stored
        if last is None or upto.index >= last.index:
            last = upto
        after = LogState(upto, last)
        self._staged = after
        self._read_lo = max(self._read_lo, upto.index + 1)
        progress = await self._pipeline.run(
            Purge(records.encode_log_id(upto), upto.index, tail, after))
        # Bounded: each step deletes a block wholly at or below upto, or finishes.
        for _ in range(upto.index):
            if progress.finished or self._closed:
                break
            staged = self._staged
            tail = 0 if staged.last_log_id is None else staged.last_log_id.index
            progress = await self._pipeline.run(PurgeStep(upto.index, tail, staged))

    # -- the writer (its thread) ------------------------------------------------------------------

    def _write_batch(self, ops: list) -> list:
        apply_op = self._apply_op

        def body(txn) -> list:
            return [apply_op(txn, op) for op in ops]

        return self._env.write(body)

    def _apply_op(self, txn, op):
        match op:
            case Append():
                self._layout.append(txn, op.blocks)
                if op.committed_record is not None:
                    txn.put(b"committed", op.committed_record, db=self._meta_db)
            case SaveVote():
                txn.put(b"vote", op.record, db=self._meta_db)
            case SaveCommitted():
                txn.put(b"committed", op.record, db=self._meta_db)
            case Truncate():
                self._layout.truncate(txn, op.since)
            case Purge():
                txn.put(b"last_purged", op.record, db=self._meta_db)
                return self._layout.purge_step(op.upto, op.tail, self._purge_batch)(txn)
            case PurgeStep():
                return self._layout.purge_step(op.upto, op.tail, self._purge_batch)(txn)
            case Noop():
                pass
            case _:
                raise AssertionError(f"unknown log operation {op!r}")
        return None

    # -- back on the trio thread ------------------------------------------------------------------

    def _committed_more(self, ops: list, results: list) -> None:
        for op, result in zip(ops, results):
            cls = type(op)
            if cls is Purge or cls is PurgeStep:
                self._physical_first = max(self._physical_first, result.first_stored)
            elif cls is Truncate:
                self._truncates_pending -= 1
        # Reads may cover what is durable, minus anything a queued truncation removes.
        hi = self._durable.next_index
        if self._truncates_pending:  # rare: look for them
            for op in self._pipeline.queued_ops():
                if type(op) is Truncate:
                    hi = min(hi, op.since)
        self._read_hi = hi

    # -- lifecycle ------------------------------------------------------------------------------

    def _close_engine(self) -> None:
        self._env.remove_user()
        if self._owns_env:
            self._env.close()
