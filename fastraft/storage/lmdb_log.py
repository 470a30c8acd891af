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
from typing import Sequence

import trio

from ..errors import StorageError
from ..types import LogId, Vote
from . import records
from .group_commit import WritePipeline
from .lmdb_env import LmdbEnv
from .lmdb_log_layout import FORMAT_VERSION, LogLayout, encode_blocks
from .lmdb_log_open import load_log
from .protocols import LogState, LogStore, OnDurable
from .validate import check_append, check_purge, check_range, check_truncate, check_vote

__all__ = ["LmdbLogStore", "FORMAT_VERSION"]


class LmdbLogStore(LogStore):
    """A durable ``LogStore`` on lmdb; open it with ``await LmdbLogStore.open(path_or_env)``
    and use it inside that one trio run (its writes report back to the run's trio thread);
    ``aclose()`` it before the run ends.

    Invariant: ``_durable`` describes what is committed to disk and reported; ``_staged`` what
    it will be once every submitted mutation is committed (appends are checked against it).
    Invariant: a read returns only entries with index in [_read_lo, _read_hi): committed,
    not purged, and not covered by a truncation still in flight.
    Invariant: when an operation runs in the writer thread, the log on disk is the staged
    log as it was when that operation was submitted (operations run in submission order),
    so an operation may carry what the trio thread knew then (the log's last index).
    """

    def __init__(self, env: LmdbEnv, owns_env: bool, purge_batch_entries: int) -> None:
        self._env = env
        self._owns_env = owns_env
        self._purge_batch = purge_batch_entries
        self._layout = LogLayout(env)
        self._log_db, self._meta_db = self._layout.log_db, self._layout.meta_db
        self._pipeline: WritePipeline = WritePipeline(
            f"lmdb log {env.path}", self._write_batch, self._on_committed)
        self._closed = False
        self._vote: Vote | None = None
        self._committed: LogId | None = None
        # What vote and committed id will be once every submitted write is committed: a
        # write is checked against these (a vote never goes back), not against the disk.
        self._staged_vote: Vote | None = None
        self._staged_committed: LogId | None = None
        self._durable = LogState()
        self._staged = LogState()
        # The first block's key (a purge may lag behind, and the block holding the purge
        # point stays), or the next index when no block is stored.
        self._physical_first = 1
        self._read_lo = 1
        self._read_hi = 1

    @property
    def sync_latency(self):
        """Histogram of this store's synced write batches (``fastraft.latency``)."""
        return self._pipeline.sync_latency

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

    def _where(self, what: str) -> str:
        return f"{self._env.path}: {what}"

    def _load(self, verify: bool) -> None:
        loaded = load_log(self._layout, verify, self._purge_batch)
        self._vote, self._committed = loaded.vote, loaded.committed
        self._staged_vote, self._staged_committed = loaded.vote, loaded.committed
        self._durable = self._staged = loaded.state
        self._physical_first = loaded.physical_first
        purged = loaded.state.last_purged_log_id
        self._read_lo = 1 if purged is None else purged.index + 1
        self._read_hi = loaded.state.next_index

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
            blocks = self._layout.fetch(txn, start, stop)
        return self._layout.assemble(blocks, start, stop)  # decoded after the read ends

    # -- writes -----------------------------------------------------------------------------

    def _prepare_append(self, entries: Sequence) -> tuple:
        """Check and encode ``entries`` against the staged log; stage them; return the op."""
        self._check_open()
        staged = self._staged
        last = staged.last_log_id
        check_append(entries, staged.next_index, 0 if last is None else last.term)
        blocks = encode_blocks(entries)
        tail = entries[len(entries) - 1]
        after = LogState(staged.last_purged_log_id, LogId(tail.term, tail.index))
        self._staged = after
        return ("append", entries[0].index, blocks, entries, after)

    def append_nowait(self, entries: Sequence, on_durable: OnDurable) -> None:
        op = self._prepare_append(entries)
        self._pipeline.submit(op, lambda error, _result: on_durable(error))

    async def append(self, entries: Sequence) -> None:
        # Room first, then stage and submit with no checkpoint between them, so that
        # operations are queued in the order they were staged.
        await self._pipeline.wait_for_room()
        await self._pipeline.run(self._prepare_append(entries))

    async def save_vote(self, vote: Vote) -> None:
        self._check_open()
        await self._pipeline.wait_for_room()
        check_vote(self._staged_vote, vote)  # after the wait: nothing is checked stale
        self._staged_vote = vote
        await self._pipeline.run(("vote", records.encode_vote(vote), vote, self._staged))

    async def save_committed(self, committed: LogId | None) -> None:
        self._check_open()
        await self._pipeline.wait_for_room()
        self._staged_committed = committed
        await self._pipeline.run(
            ("committed", records.encode_log_id(committed), committed, self._staged))

    async def truncate(self, since_index: int) -> None:
        self._check_open()
        await self._pipeline.wait_for_room()
        staged = self._staged
        check_truncate(since_index, staged.last_purged_log_id, self._staged_committed)
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
            blocks = self._layout.fetch(txn, index, index + 1)
        entry = self._layout.assemble(blocks, index, index + 1)[0]
        return LogId(entry.term, entry.index)

    async def purge(self, upto: LogId) -> None:
        self._check_open()
        await self._pipeline.wait_for_room()
        check_purge(upto, self._staged_committed)
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
            ("purge", records.encode_log_id(upto), upto.index, tail, after))
        # Bounded: each step deletes a block wholly at or below upto, or finishes.
        for _ in range(upto.index):
            if progress.finished or self._closed:
                break
            staged = self._staged
            tail = 0 if staged.last_log_id is None else staged.last_log_id.index
            progress = await self._pipeline.run(("purge_step", upto.index, tail, staged))

    # -- the writer (worker thread) -------------------------------------------------------------

    def _write_batch(self, ops: list) -> list:
        apply_op = self._apply_op

        def body(txn) -> list:
            return [apply_op(txn, op) for op in ops]

        return self._env.write(body)

    def _apply_op(self, txn, op: tuple):
        kind = op[0]
        if kind == "append":
            self._layout.append(txn, op[2])
            return None
        if kind == "vote":
            txn.put(b"vote", op[1], db=self._meta_db)
            return None
        if kind == "committed":
            txn.put(b"committed", op[1], db=self._meta_db)
            return None
        if kind == "truncate":
            self._layout.truncate(txn, op[1])
            return None
        if kind == "purge":
            txn.put(b"last_purged", op[1], db=self._meta_db)
            return self._layout.purge_step(op[2], op[3], self._purge_batch)(txn)
        if kind == "purge_step":
            return self._layout.purge_step(op[1], op[2], self._purge_batch)(txn)
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
                self._physical_first = max(self._physical_first, result.first_stored)
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


