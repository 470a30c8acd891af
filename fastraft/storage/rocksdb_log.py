"""The durable log store on RocksDB (through the ``rocksdict`` binding; ``pip install
'fastraft[rocksdb]'``).

Why: RocksDB makes a write durable with one append to its write-ahead log and one
fdatasync, where an lmdb commit syncs twice (its data pages, then its meta page).

Layout (format ``fastraft-rocks-log-1``), one database in ``path``, raw byte keys:

* ``L`` + the first index of a block as a big-endian u64 -> a block: the consecutive
  entries of one append as one codec FRAME_ENTRIES frame with one checksum, split as the
  lmdb store splits them (``log_blocks.encode_blocks``: at most MAX_BLOCK_ENTRIES
  entries and about MAX_BLOCK_BYTES);
* ``Mformat``, ``Mvote``, ``Mlast_purged``, ``Mcommitted``: the format and the
  ``fastraft.storage.records`` records, in the same database, so a write that needs a vote
  and entries is one write batch.

Writes go through a ``WritePipeline`` (group commit): the operations issued while a write
runs become one ``WriteBatch`` written with ``sync=True`` (one WAL fdatasync), and complete
together. The batches run on the trio thread (``writer="trio"``), not in a writer thread:
rocksdict keeps the interpreter lock through the write and its sync, so a thread would let
nothing else run meanwhile and would cost two hand-offs per batch. Measured with three node
processes on this store, thread and no thread alternated (medians of 3): one writer's p50
1.21 ms with the thread, 1.10 ms without; 256 and 10,000 writes in flight level;
``client_write_many`` of 1,000 5% faster (``python -m benchmarks`` reports the store's
rows: "The write path on each log store"). Every write is planned
on the trio thread against the staged log (what the disk will hold once the queued writes
are done), so the writer only writes batches:
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

import trio

from ..codec import encode_entries
from ..errors import CodecError, StorageError
from ..types import LogId
from . import records
from .durable_log import DurableLogStore
from .log_blocks import BlockChecker, decode_block
from .log_ops import Append, Rewrite, SaveCommitted, SaveVote
from .protocols import LogState
from .store_kind import refuse_other_kind
from .validate import check_purge, check_truncate

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


class RocksLogStore(DurableLogStore):
    """A durable ``LogStore`` on RocksDB; open it with ``await RocksLogStore.open(path)``
    inside the trio run that uses it, and ``aclose()`` it before the run ends. The staged
    and durable state, the read checks and the append and vote writes are
    ``DurableLogStore``'s."""

    def __init__(self, path: str, db, rocksdict) -> None:
        self.path = path
        self._db = db
        self._rocksdict = rocksdict
        self._sync = rocksdict.WriteOptions()
        self._sync.sync = True
        # rocksdict holds the interpreter lock through a synced write (a thread beside it
        # stalls for the whole write and sync), so a writer thread would overlap nothing
        # and cost two hand-offs per batch: the batches run on the trio thread
        self._init_state(f"rocksdb log {path}", writer="trio")
        self._starts: list[int] = []

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

    def _load(self, verify: bool) -> None:
        db = self._db
        fmt = db.get(_META + b"format")
        if fmt is None:
            if next(iter(db.keys()), None) is not None:
                raise StorageError(self._where("a RocksDB database without a fastraft log format"))
            db.put(_META + b"format", FORMAT_VERSION, self._sync)
        elif fmt != FORMAT_VERSION:
            raise StorageError(self._where(f"log store format {fmt!r}, expected {FORMAT_VERSION!r}"))
        try:
            vote, committed, purged = (db.get(_META + k) for k in (b"vote", b"committed", b"last_purged"))
            vote = None if vote is None else records.decode_vote(vote)
            committed = None if committed is None else records.decode_log_id(committed, "committed")
            last_purged = None if purged is None else records.decode_log_id(purged, "last_purged")
        except CodecError as e:
            raise StorageError(self._where(f"log meta record: {e}")) from None
        p = 0 if last_purged is None else last_purged.index
        checker, last = BlockChecker(self._where), last_purged
        for key, value in db.items(from_key=_BLOCK):  # once per block
            if not key.startswith(_BLOCK):
                break
            first = self._key_index(key)
            self._starts.append(first)
            entries = self._decode(value, first)
            if checker.expected is None and first > p + 1:
                raise StorageError(self._where(
                    f"log entries [{p + 1}, {first}) are missing: only entries up to {p} "
                    "were purged"))
            checker.add(first, entries)
            end = checker.expected - 1
            if end > p:
                last = LogId(entries[-1].term, end)
        self._loaded(vote, committed, LogState(last_purged, last))

    def _key_index(self, key: bytes) -> int:
        if len(key) != 9:
            raise StorageError(self._where(f"log key {key!r} is not 9 bytes long"))
        return int.from_bytes(key[1:], "big")

    def _decode(self, value: bytes, first: int) -> list:
        return decode_block(value, first, self._where)

    # -- reads ----------------------------------------------------------------------------------

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

    # -- truncate and purge ---------------------------------------------------------------------

    def _staged_blocks(self, blocks: list[tuple[int, bytes]]) -> None:
        self._starts.extend(first for first, _ in blocks)

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
        puts: list = []
        last = None
        if i > 0:  # block i - 1 holds since - 1: it keeps its entries before since
            s = starts[i - 1]
            kept = self._decode(self._db.get(_key(s)), s)[:since_index - s]
            if i == len(starts) or starts[i] > since_index:
                puts.append((_key(s), encode_entries(kept)))
            last = LogId(kept[-1].term, kept[-1].index)
        if purged is not None and since_index - 1 <= purged.index:
            last = purged
        del starts[i:]
        self._staged = after = LogState(purged, last)
        self._read_hi = min(self._read_hi, since_index)
        await self._pipeline.run(Rewrite(_key(since_index), _END_KEY, puts, after))

    async def purge(self, upto: LogId) -> None:
        self._check_open()
        await self._pipeline.wait_idle()  # rare: plan it against the disk
        self._check_open()
        check_purge(upto, self._known_committed())
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
        del starts[:keep_from]
        self._staged = after = LogState(upto, last)
        self._read_lo = max(self._read_lo, upto.index + 1)
        await self._pipeline.run(Rewrite(
            _key(0), lo_key, [(_META + b"last_purged", records.encode_log_id(upto))], after))

    # -- the writer (its thread) -----------------------------------------------------------------

    def _write_batch(self, ops: list) -> list:
        """All of ``ops`` as one ``WriteBatch``, written with ``sync=True`` (one WAL sync)."""
        batch = self._rocksdict.WriteBatch(raw_mode=True)
        put = batch.put
        for op in ops:
            match op:
                case Append():
                    for first, value in op.blocks:
                        put(_key(first), value)
                    if op.committed_record is not None:
                        put(_META + b"committed", op.committed_record)
                case SaveVote():
                    put(_META + b"vote", op.record)
                case SaveCommitted():
                    put(_META + b"committed", op.record)
                case Rewrite():
                    batch.delete_range(op.delete_lo, op.delete_hi)
                    for key, value in op.puts:
                        put(key, value)
                case _:
                    raise AssertionError(f"unknown log operation {op!r}")
        self._db.write(batch, self._sync)
        return [None] * len(ops)

    # -- back on the trio thread ------------------------------------------------------------------
    # No truncation is ever queued behind a running write (it waits for none to be), so what
    # is durable is what may be read: DurableLogStore._committed_more as it is.

    # -- lifecycle ------------------------------------------------------------------------------

    def _close_engine(self) -> None:
        self._db.close()
