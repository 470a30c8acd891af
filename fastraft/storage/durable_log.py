"""What the durable log stores (lmdb, RocksDB) share: the staged and durable state, the read
path's checks, the append, vote and committed writes through a ``WritePipeline``, the
bookkeeping when a batch is durable, and closing. The block format both share is
``fastraft.storage.log_blocks``.

A store built on ``DurableLogStore`` keeps only what is its own engine's: how it reads the
blocks of [start, stop) (``_read``), how it writes a batch (``_write_batch``), how it
truncates and purges, and how it closes its engine (``_close_engine``).

Invariant: ``_durable`` describes what is committed to disk and reported; ``_staged`` what it
will be once every submitted operation is committed (appends are checked against it, and
``_staged_vote``/``_staged_committed`` likewise: a vote never goes back).
Invariant: a read returns only entries with index in [_read_lo, _read_hi): durable, not
purged, and not cut by a staged truncation.
"""

from __future__ import annotations

from typing import Sequence

from ..errors import StorageError
from ..types import LogId, Vote
from . import records
from .group_commit import WritePipeline
from .log_blocks import encode_blocks
from .log_ops import Append, SaveCommitted, SaveVote
from .protocols import LogState, LogStore, OnDurable
from .validate import check_append, check_range, check_vote

__all__ = ["DurableLogStore"]


class DurableLogStore(LogStore):
    """The shared half of a durable ``LogStore``; see the module docstring. A subclass sets
    ``path`` (named in every error) and calls ``_init_state`` then ``_loaded``."""

    path: str

    def _init_state(self, name: str, writer: str = "thread") -> None:
        """``writer``: where the synced batches run (``WritePipeline``)."""
        self._pipeline: WritePipeline = WritePipeline(name, self._write_batch,
                                                      self._on_committed, writer=writer)
        self._closed = False
        self._vote: Vote | None = None
        self._committed: LogId | None = None
        self._staged_vote: Vote | None = None
        self._staged_committed: LogId | None = None
        self._committed_note: LogId | None = None  # noted, for the next append that reaches it
        self._durable = LogState()
        self._staged = LogState()
        self._read_lo = 1
        self._read_hi = 1

    def _loaded(self, vote: Vote | None, committed: LogId | None, state: LogState) -> None:
        """Take what opening read from the disk as both durable and staged."""
        self._vote = self._staged_vote = vote
        self._committed = self._staged_committed = committed
        self._durable = self._staged = state
        purged = state.last_purged_log_id
        self._read_lo = 1 if purged is None else purged.index + 1
        self._read_hi = state.next_index

    @property
    def sync_latency(self):
        """Histogram of this store's synced write batches (``fastraft.latency``)."""
        return self._pipeline.sync_latency

    def _where(self, what: str) -> str:
        return f"{self.path}: {what}"

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
        if stop <= start:
            return []
        return self._read(start, stop)

    def _read(self, start: int, stop: int) -> list:
        """Entries [start, stop) from the disk (start < stop, all durable)."""
        raise NotImplementedError

    # -- writes -----------------------------------------------------------------------------

    def _prepare_append(self, entries: Sequence) -> Append:
        """Check and encode ``entries`` against the staged log; stage them; return the op."""
        self._check_open()
        staged = self._staged
        last = staged.last_log_id
        check_append(entries, staged.next_index, 0 if last is None else last.term)
        blocks = encode_blocks(entries)
        tail = entries[len(entries) - 1]
        self._staged = after = LogState(staged.last_purged_log_id, LogId(tail.term, tail.index))
        self._staged_blocks(blocks)
        note = self._committed_note
        if note is not None and note.index <= tail.index:  # never past the log's end
            self._committed_note = None
            self._staged_committed = note
            return Append(blocks[0][0], blocks, entries, after, note, records.encode_log_id(note))
        return Append(blocks[0][0], blocks, entries, after)

    def note_committed(self, committed: LogId) -> None:
        known = self._known_committed()
        if known is None or committed.index > known.index:
            self._committed_note = committed

    def _known_committed(self) -> LogId | None:
        """The newest committed id saved, staged or noted (the purge check's bound)."""
        note, staged = self._committed_note, self._staged_committed
        return staged if note is None or (staged is not None and staged.index >= note.index) else note

    def _staged_blocks(self, blocks: list[tuple[int, bytes]]) -> None:
        """Hook: ``blocks`` were just staged for appending."""

    def append_nowait(self, entries: Sequence, on_durable: OnDurable,
                      coalesce: bool = False) -> None:
        op = self._prepare_append(entries)
        self._pipeline.submit(op, lambda error, _result: on_durable(error), coalesce)

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
        await self._pipeline.run(SaveVote(records.encode_vote(vote), vote, self._staged))

    async def save_committed(self, committed: LogId | None) -> None:
        self._check_open()
        await self._pipeline.wait_for_room()
        self._staged_committed = committed
        await self._pipeline.run(
            SaveCommitted(records.encode_log_id(committed), committed, self._staged))

    # -- the writer thread -------------------------------------------------------------------

    def _write_batch(self, ops: list) -> list:
        """Write ``ops`` in one synced transaction (blocking); one result per op."""
        raise NotImplementedError

    # -- back on the trio thread --------------------------------------------------------------

    def _on_committed(self, ops: list, results: list) -> None:
        for op in ops:
            cls = type(op)
            if cls is SaveVote:
                self._vote = op.vote
            elif cls is SaveCommitted or (cls is Append and op.committed is not None):
                self._committed = op.committed
            self._durable = op.after
        self._committed_more(ops, results)

    def _committed_more(self, ops: list, results: list) -> None:
        """Hook: the store's own bookkeeping once ``ops`` are durable (``_read_hi``)."""
        self._read_hi = self._durable.next_index

    # -- lifecycle ------------------------------------------------------------------------------

    async def aclose(self) -> None:
        if self._closed:
            return
        await self._pipeline.aclose()  # shielded: waits for what is pending
        self._closed = True
        self._close_engine()

    def _close_engine(self) -> None:
        raise NotImplementedError
