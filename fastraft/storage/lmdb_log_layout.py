"""The lmdb log store's on-disk layout (format ``fastraft-log-2``): blocks of entries, how
they are split, read, rewritten and purged (the checks run when the store opens are in
``fastraft.storage.lmdb_log_open``).

* sub-database ``log``: one record per *block*, a run of consecutive entries appended
  together: key = the index of the block's first entry as a big-endian u64 (lmdb's byte
  order is then index order), value = the block's entries as one codec FRAME_ENTRIES frame
  (``encode_entries``: one checksum for the block). An append is split into blocks of at
  most MAX_BLOCK_ENTRIES entries and about MAX_BLOCK_BYTES (an entry larger than that is a
  block on its own).
* sub-database ``log_meta``: ``format`` = FORMAT_VERSION, and ``vote``, ``last_purged``,
  ``committed`` as ``fastraft.storage.records`` records.

Why blocks: appending and purging cost mostly per lmdb record, not per byte, and a Raft
leader appends the entries of a batch of client writes, a follower those of an
AppendEntries, together anyway. On raw lmdb, batches of 1,000 records of 130 bytes cost 97
ns per entry to append and 2 to delete as one record per batch, against 644 and 570 as one
record per entry. The price: a read decodes whole blocks (hence MAX_BLOCK_ENTRIES).

Invariant on disk:

* blocks are contiguous: each block's key is its first entry's index, its entries are
  consecutive, and the next block's key is this block's last index + 1 (so the end of a
  block is the next key - 1; the end of the last block is the log's last index);
* the entries above ``last_purged`` are exactly (last_purged, last], terms non-decreasing;
* entries at or below ``last_purged`` may remain stored: the block holding
  ``last_purged`` stays until a later purge passes its end, and blocks wholly at or below
  it may linger after a crash during a purge (opening deletes them). Reads never return
  an entry at or below ``last_purged``.

Format 1 (one record per entry) was never released; a store of it, as of any other
format, is refused at open with no migration.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from itertools import chain, islice

from ..codec import HEADER_SIZE, encode_entries
from ..errors import CodecError, StorageError
from .lmdb_env import LmdbEnv
from .log_blocks import BLOCK_HEAD, MAX_BLOCK_BYTES, MAX_BLOCK_ENTRIES, decode_block, encode_blocks

__all__ = ["FORMAT_VERSION", "MAX_BLOCK_ENTRIES", "MAX_BLOCK_BYTES", "LogLayout",
           "PurgeProgress", "key_of", "index_of", "encode_blocks"]

#: The log store's on-disk format; a store with any other is refused at open.
FORMAT_VERSION = b"fastraft-log-2"
_COUNT = struct.Struct("<I")

#: The key of the block whose first entry has this index.
key_of = struct.Struct(">Q").pack


def index_of(key: bytes) -> int:
    if len(key) != 8:
        raise CodecError(f"log key of {len(key)} bytes, expected 8")
    return int.from_bytes(key, "big")


@dataclass(frozen=True, slots=True)
class PurgeProgress:
    """What a purge step left: ``first_stored`` is the key of the first block still stored
    (or the index after the purge point when none is); ``finished`` is True when no block
    wholly at or below the purge point remains."""

    first_stored: int
    finished: bool


class LogLayout:
    """The two sub-databases of a log store, the block operations on them, and decoding
    that names the file and index of anything that fails its check (as StorageError).

    Methods taking ``txn`` run inside the caller's transaction (the store's writer thread
    for writes); they change nothing else."""

    def __init__(self, env: LmdbEnv) -> None:
        self.env = env
        self.log_db = env.open_db(b"log")
        self.meta_db = env.open_db(b"log_meta")

    def where(self, what: str) -> str:
        return f"{self.env.path}: {what}"

    def key_index(self, key: bytes) -> int:
        try:
            return index_of(key)
        except CodecError as e:
            raise StorageError(self.where(f"log sub-database: {e}")) from None

    # -- decoding ---------------------------------------------------------------------------

    def decode_block(self, value: bytes, first: int) -> list:
        """The entries of the block stored under key ``first`` (``log_blocks.decode_block``)."""
        return decode_block(value, first, self.where)

    def _block_end(self, value: bytes, first: int) -> int:
        """The last index of the block stored under ``first``, from its entry count alone
        (no checksum: used to refuse an append that would overlap it)."""
        if len(value) < BLOCK_HEAD:
            raise StorageError(self.where(
                f"log block keyed {first} is {len(value)} bytes long"))
        return first + _COUNT.unpack_from(value, HEADER_SIZE)[0] - 1

    # -- reading ----------------------------------------------------------------------------

    def fetch(self, txn, start: int, stop: int) -> list[tuple[bytes, bytes]]:
        """The stored blocks that may hold entries [start, stop) (start < stop), as [(key,
        value)]: the block holding ``start`` and those after it that begin before ``stop``.
        Copies only; decode them with ``assemble`` after the transaction."""
        cursor = txn.cursor(db=self.log_db)
        key = key_of(start)
        if not cursor.set_range(key):
            if not cursor.last():
                raise StorageError(self.where(f"log entry {start} is missing"))
        elif cursor.key() != key and not cursor.prev():
            raise StorageError(self.where(f"log entry {start} is missing"))
        stop_key = key_of(stop)
        blocks = []
        # Bounded: the blocks after the first begin at distinct indexes in (start, stop).
        for k, v in islice(cursor.iternext(keys=True, values=True), stop - start + 1):
            if k >= stop_key:  # big-endian keys compare as their indexes do
                break
            blocks.append((k, v))
        return blocks

    def assemble(self, blocks: list[tuple[bytes, bytes]], start: int, stop: int) -> list:
        """Entries [start, stop) decoded from ``fetch``'s blocks; StorageError naming the
        file and index if one is missing or a block fails its check."""
        parts: list = []
        base = expected = 0
        for key, value in blocks:  # one step per block
            first = self.key_index(key)
            entries = self.decode_block(value, first)
            if not parts:
                base = first
                if first + len(entries) <= start:
                    raise StorageError(self.where(f"log entry {start} is missing"))
            elif first != expected:
                break
            parts.append(entries)
            expected = first + len(entries)
        if expected < stop:
            raise StorageError(self.where(f"log entries [{start}, {stop}) are not all stored"))
        out = parts[0] if len(parts) == 1 else list(chain.from_iterable(parts))
        return out[start - base:stop - base]

    # -- writing (in the writer's transaction) -------------------------------------------

    def append(self, txn, blocks: list[tuple[int, bytes]]) -> None:
        """Put ``blocks`` (from ``encode_blocks``) after the last stored block. StorageError,
        and the transaction must be dropped, if one would overlap a stored entry."""
        first = blocks[0][0]
        cursor = txn.cursor(db=self.log_db)
        if cursor.last():
            last_first = self.key_index(cursor.key())
            if self._block_end(cursor.value(), last_first) >= first:
                raise StorageError(self.where(
                    f"append of entries from {first} collides with the stored block keyed "
                    f"{last_first}"))
        n = len(blocks)
        _, added = cursor.putmulti([(key_of(i), value) for i, value in blocks], append=True)
        if added != n:  # append=True refuses a key at or below the last one
            raise StorageError(self.where(
                f"append of entries from {first} collided with stored blocks"))

    def truncate(self, txn, since: int) -> None:
        """Delete the entries from ``since`` on: the block holding ``since`` keeps its part
        before it (rewritten in place) or goes if it starts at ``since``; every block after
        it goes."""
        cursor = txn.cursor(db=self.log_db)
        key = key_of(since)
        found = cursor.set_range(key)
        if not found or cursor.key() != key:
            # The block before ``since``, if any, may hold it: keep its prefix.
            if cursor.prev() if found else cursor.last():
                first = self.key_index(cursor.key())
                entries = self.decode_block(cursor.value(), first)
                if first + len(entries) > since:
                    cursor.put(cursor.key(), encode_entries(entries[:since - first]))
            found = cursor.set_range(key)
        if found:  # the cursor is on the first block to go: it and every one after it go
            for _ in range(txn.stat(self.log_db)["entries"]):  # bounded by the blocks stored
                if not cursor.delete():
                    break

    def purge_step(self, upto: int, tail: int, max_entries: int):
        """A transaction body deleting the lowest blocks wholly at or below ``upto``, at
        most ``max_entries`` entries' worth (but always one such block, however long);
        it returns a PurgeProgress.

        ``tail`` is the log's last index as stored when the body runs (the end of the last
        block, which has no next key to tell it); a value above it is safe, it only keeps
        a block the purge could have deleted. A block's end is otherwise the next key - 1,
        so nothing is decoded, and the loop runs once per block deleted."""

        def run(txn) -> PurgeProgress:
            cursor = txn.cursor(db=self.log_db)
            if not cursor.first():
                return PurgeProgress(upto + 1, True)
            first_key = cursor.key()
            first = self.key_index(first_key)
            if first > upto:
                return PurgeProgress(first, True)
            # Blocks ending before ``limit`` go; they hold at most max_entries entries.
            limit = min(upto + 1, first + max_entries)
            # The first block S at or after ``limit`` (or none), and the block P before it.
            if cursor.set_range(key_of(limit)):
                after_key = cursor.key()
                p_end = self.key_index(after_key) - 1
                cursor.prev()
            else:
                after_key, p_end = None, tail
                cursor.last()
            p_key = cursor.key()
            if p_end < limit or (p_key == first_key and p_end <= upto):
                stop_key = after_key  # P goes too (alone, if it is longer than the bound)
            else:
                stop_key = p_key
            cursor.first()
            for _ in range(max_entries):  # bounded: each block deleted holds an entry
                k = cursor.key()
                if not k or (stop_key is not None and k >= stop_key):
                    break
                cursor.delete()
            k = cursor.key()
            if not k:
                return PurgeProgress(upto + 1, True)
            # Finished unless the first block left ends at or below upto.
            if cursor.next():
                end = self.key_index(cursor.key()) - 1
            else:
                end = tail
            return PurgeProgress(self.key_index(k), end > upto)

        return run
