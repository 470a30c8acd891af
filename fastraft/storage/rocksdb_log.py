"""The durable log store on RocksDB (through the ``rocksdict`` binding; ``pip install
'fastraft[rocksdb]'``).

Why: RocksDB makes a write durable with one append to its write-ahead log and one
fdatasync, where an lmdb commit syncs twice (its data pages, then its meta page).

Layout (format ``fastraft-rocks-log-1``), one database in ``path``, raw byte keys:

* ``L`` + the first index of a block as a big-endian u64 -> a block: the consecutive
  entries of one append as one codec FRAME_ENTRIES frame with one checksum, split as the
  lmdb store splits them (``lmdb_log_layout.encode_blocks``: at most MAX_BLOCK_ENTRIES
  entries and about MAX_BLOCK_BYTES);
* ``Mformat``, ``Mvote``, ``Mlast_purged``, ``Mcommitted``: the format and the
  ``fastraft.storage.records`` records, in the same database, so a write that needs a vote
  and entries is one write batch.

Writes go through a ``WritePipeline`` (group commit): the operations issued while a write
runs become one ``WriteBatch`` written with ``sync=True`` (one WAL fdatasync), and complete
together. Every write is planned on the trio thread against the staged log (what the disk
will hold once the queued writes are done), so the writer thread only writes batches:
truncation is a range delete of the blocks from the cut on plus a rewrite of the block it
splits; purge records ``last_purged`` and range-deletes the blocks wholly below it (the
block holding the purge point stays; reads never return an entry at or below it).
Truncate and purge wait for the queued writes first (they are rare), so the block a
truncation rewrites is read from the disk.

Invariant: ``self._starts`` is the sorted list of the staged log's block keys (as indexes),
the last block ending at the staged last index; blocks are contiguous from ``_starts[0]``.
Invariant: a read returns only entries in [_read_lo, _read_hi): durable, not purged, not
cut by a staged truncation. Memory: one int per stored block.
"""

from __future__ import annotations

import os
from bisect import bisect_right
from typing import Sequence

import trio

from ..errors import CodecError, StorageError
from ..types import LogId, Vote
from . import records
from .group_commit import WritePipeline
from ..codec import decode_entries, encode_entries
from .lmdb_log_layout import encode_blocks
from .protocols import LogState, LogStore, OnDurable
from .store_kind import refuse_other_kind
from .validate import check_append, check_purge, check_range, check_truncate, check_vote

__all__ = ["RocksLogStore", "FORMAT_VERSION"]

FORMAT_VERSION = b"fastraft-rocks-log-1"
_BLOCK = b"L"
_META = b"M"
_END_KEY = _BLOCK + b"\xff" * 8


def _key(index: int) -> bytes:
    return _BLOCK + index.to_bytes(8, "big")


def _import_rocksdict():
    try:
        import rocksdict
    except ImportError as e:
        raise ImportError("the RocksDB log store needs rocksdict: "
                          "pip install 'fastraft[rocksdb]'") from e
    return rocksdict


class RocksLogStore(LogStore):
    """A durable ``LogStore`` on RocksDB; open it with ``await RocksLogStore.open(path)``
    inside the trio run that uses it, and ``aclose()`` it before the run ends."""

    def __init__(self, path: str, db, rocksdict) -> None:
        self.path = path
        self._db = db
        self._rocksdict = rocksdict
        self._sync = rocksdict.WriteOptions()
        self._sync.sync = True
        self._pipeline: WritePipeline = WritePipeline(
            f"rocksdb log {path}", self._write_batch, self._on_committed)
        self._closed = False
        self._vote: Vote | None = None
        self._committed: LogId | None = None
        self._staged_vote: Vote | None = None  # what the queued writes will have saved
        self._staged_committed: LogId | None = None
        self._durable = LogState()
        self._staged = LogState()
        self._starts: list[int] = []
        self._read_lo = 1
        self._read_hi = 1

    # -- opening ------------------------------------------------------------------------------

    @classmethod
    async def open(cls, path: str | os.PathLike, *, verify: bool = True) -> "RocksLogStore":
        """Open (or create) the store in directory ``path`` (blocking work in a worker
        thread). StorageError, naming the file and what failed, if the directory holds
        another kind of store or the log fails a check. Every block is checked (``verify``
        is accepted for the lmdb store's signature; the block index is built anyway)."""
        path = os.fspath(path)
        rocksdict = _import_rocksdict()

        def open_sync() -> RocksLogStore:
            refuse_other_kind(path, "rocksdb")
            opts = rocksdict.Options(raw_mode=True)
            opts.create_if_missing(True)
            try:
                db = rocksdict.Rdict(path, opts)
            except Exception as e:
                raise StorageError(f"{path}: cannot open the RocksDB log store: {e}") from None
            store = cls(path, db, rocksdict)
            try:
                store._load(verify)
            except BaseException:
                db.close()
                raise
            return store

        return await trio.to_thread.run_sync(open_sync)

    def _where(self, what: str) -> str:
        return f"{self.path}: {what}"

    def _load(self, verify: bool) -> None:
        db = self._db
        fmt = db.get(_META + b"format")
        if fmt is None:
            if next(iter(db.keys()), None) is not None:
                raise StorageError(self._where("a RocksDB database without a fastraft log format"))
            self._write_sync([("put", _META + b"format", FORMAT_VERSION)])
        elif fmt != FORMAT_VERSION:
            raise StorageError(self._where(f"log store format {fmt!r}, expected {FORMAT_VERSION!r}"))
        try:
            vote, committed, purged = (db.get(_META + k) for k in (b"vote", b"committed", b"last_purged"))
            self._vote = None if vote is None else records.decode_vote(vote)
            self._committed = None if committed is None else records.decode_log_id(committed, "committed")
            last_purged = None if purged is None else records.decode_log_id(purged, "last_purged")
        except CodecError as e:
            raise StorageError(self._where(f"log meta record: {e}")) from None
        p = 0 if last_purged is None else last_purged.index
        expected, prev_term, last = None, 0, last_purged
        for key, value in db.items(from_key=_BLOCK):  # once per block
            if not key.startswith(_BLOCK):
                break
            first = self._key_index(key)
            self._starts.append(first)
            entries = self._decode(value, first)
            end = first + len(entries) - 1
            if expected is not None and first != expected:
                raise StorageError(self._where(
                    f"log blocks are not contiguous: a block ends at {expected - 1}, the next "
                    f"starts at {first}"))
            if expected is None and first > p + 1:
                raise StorageError(self._where(
                    f"log entries [{p + 1}, {first}) are missing: only entries up to {p} "
                    "were purged"))
            terms = [e.term for e in entries]
            if terms[0] < prev_term or terms != sorted(terms):
                raise StorageError(self._where(f"log terms decrease in [{first}, {end + 1})"))
            prev_term, expected = terms[-1], end + 1
            if end > p:
                last = LogId(entries[-1].term, end)
        self._durable = self._staged = LogState(last_purged, last)
        self._staged_vote, self._staged_committed = self._vote, self._committed
        self._read_lo = p + 1
        self._read_hi = self._durable.next_index

    def _key_index(self, key: bytes) -> int:
        if len(key) != 9:
            raise StorageError(self._where(f"log key {key!r} is not 9 bytes long"))
        return int.from_bytes(key[1:], "big")

    def _decode(self, value: bytes, first: int) -> list:
        try:
            entries = decode_entries(value)
        except CodecError as e:
            raise StorageError(self._where(f"log block keyed {first} fails its check: {e}")) from None
        n = len(entries)
        if n == 0 or entries[0].index != first or entries[n - 1].index != first + n - 1:
            raise StorageError(self._where(f"log block keyed {first} holds other entries"))
        return entries

    # -- reads ----------------------------------------------------------------------------------

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
        starts = self._starts
        i = bisect_right(starts, start) - 1
        j = bisect_right(starts, stop - 1)
        if i < 0:
            raise StorageError(self._where(f"log entry {start} is missing"))
        keys = [_key(s) for s in starts[i:j]]
        values = self._db.get(keys)
        out: list = []
        for s, value in zip(starts[i:j], values):  # once per block
            if value is None:
                raise StorageError(self._where(f"log block keyed {s} is missing"))
            out.extend(self._decode(value, s))
        base = starts[i]
        got = out[start - base:stop - base]
        if len(got) != stop - start:
            raise StorageError(self._where(f"log entries [{start}, {stop}) are not all stored"))
        return got

    # -- writes ---------------------------------------------------------------------------------

    def _prepare_append(self, entries: Sequence) -> tuple:
        self._check_open()
        staged = self._staged
        last = staged.last_log_id
        check_append(entries, staged.next_index, 0 if last is None else last.term)
        blocks = encode_blocks(entries)
        tail = entries[len(entries) - 1]
        self._staged = after = LogState(staged.last_purged_log_id, LogId(tail.term, tail.index))
        self._starts.extend(first for first, _ in blocks)
        return ([("put", _key(first), value) for first, value in blocks], after)

    def append_nowait(self, entries: Sequence, on_durable: OnDurable) -> None:
        self._pipeline.submit(self._prepare_append(entries), lambda error, _r: on_durable(error))

    async def append(self, entries: Sequence) -> None:
        await self._pipeline.wait_for_room()
        await self._pipeline.run(self._prepare_append(entries))

    async def save_vote(self, vote: Vote) -> None:
        self._check_open()
        await self._pipeline.wait_for_room()
        check_vote(self._staged_vote, vote)  # after the wait: nothing is checked stale
        self._staged_vote = vote
        await self._pipeline.run(([("put", _META + b"vote", records.encode_vote(vote))],
                                  self._staged, ("vote", vote)))

    async def save_committed(self, committed: LogId | None) -> None:
        self._check_open()
        await self._pipeline.wait_for_room()
        self._staged_committed = committed
        await self._pipeline.run(([("put", _META + b"committed", records.encode_log_id(committed))],
                                  self._staged, ("committed", committed)))

    async def truncate(self, since_index: int) -> None:
        self._check_open()
        await self._pipeline.wait_idle()  # rare: plan it against the disk
        self._check_open()
        staged = self._staged
        check_truncate(since_index, staged.last_purged_log_id, self._staged_committed)
        if since_index >= staged.next_index:
            return
        purged = staged.last_purged_log_id
        starts = self._starts
        i = bisect_right(starts, since_index - 1)  # blocks from i on start at or after since
        ops: list = [("delete_range", _key(since_index), _END_KEY)]
        last = None
        if i > 0:  # block i - 1 holds since - 1: it keeps its entries before since
            s = starts[i - 1]
            kept = self._decode(self._db.get(_key(s)), s)[:since_index - s]
            if i == len(starts) or starts[i] > since_index:
                ops.append(("put", _key(s), encode_entries(kept)))
            last = LogId(kept[-1].term, kept[-1].index)
        if purged is not None and since_index - 1 <= purged.index:
            last = purged
        del starts[i:]
        self._staged = after = LogState(purged, last)
        self._read_hi = min(self._read_hi, since_index)
        await self._pipeline.run((ops, after))

    async def purge(self, upto: LogId) -> None:
        self._check_open()
        await self._pipeline.wait_idle()  # rare: plan it against the disk
        self._check_open()
        check_purge(upto, self._staged_committed)
        staged = self._staged
        old = staged.last_purged_log_id
        if old is not None and upto.index <= old.index:
            return
        last = staged.last_log_id
        starts = self._starts
        if last is None or upto.index >= last.index:
            last, keep_from = upto, len(starts)  # the whole log goes
        else:  # blocks wholly at or below upto go: those before the one holding upto + 1
            keep_from = bisect_right(starts, upto.index + 1) - 1
        lo_key = _key(starts[keep_from]) if keep_from < len(starts) else _END_KEY
        ops = [("put", _META + b"last_purged", records.encode_log_id(upto)),
               ("delete_range", _key(0), lo_key)]
        del starts[:keep_from]
        self._staged = after = LogState(upto, last)
        self._read_lo = max(self._read_lo, upto.index + 1)
        await self._pipeline.run((ops, after))

    # -- the writer (worker thread) -------------------------------------------------------------

    def _write_batch(self, ops: list) -> list:
        self._write_sync([step for op in ops for step in op[0]])
        return [None] * len(ops)

    def _write_sync(self, steps: list) -> None:
        batch = self._rocksdict.WriteBatch(raw_mode=True)
        for step in steps:
            if step[0] == "put":
                batch.put(step[1], step[2])
            else:
                batch.delete_range(step[1], step[2])
        self._db.write(batch, self._sync)

    # -- back on the trio thread ------------------------------------------------------------------

    def _on_committed(self, ops: list, results: list) -> None:
        for op in ops:
            self._durable = op[1]
            if len(op) > 2:
                kind, value = op[2]
                if kind == "vote":
                    self._vote = value
                else:
                    self._committed = value
        # No truncation is ever queued behind a running write (it waits for none to be),
        # so what is durable is what may be read.
        self._read_hi = self._durable.next_index

    # -- lifecycle ------------------------------------------------------------------------------

    async def aclose(self) -> None:
        if self._closed:
            return
        with trio.CancelScope(shield=True):
            await self._pipeline.wait_idle()
        self._closed = True
        self._db.close()
