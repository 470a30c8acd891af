"""The block format both durable log stores share: a block is a run of consecutive entries
appended together, stored as one codec FRAME_ENTRIES frame (``encode_entries``: one checksum
for the block) under a key naming its first index. Here: how an append is split into blocks
(``encode_blocks``), how a stored block is decoded and checked against its key
(``decode_block``), and the check of a whole log's blocks at open (``BlockChecker``).

Why blocks: see ``fastraft.storage.lmdb_log_layout``.
"""

from __future__ import annotations

from bisect import bisect_right
from itertools import accumulate
from operator import attrgetter
from typing import Callable, Sequence

from ..codec import ENTRY_HEADER_SIZE, HEADER_SIZE, decode_entries, encode_entries
from ..errors import CodecError, StorageError

__all__ = ["MAX_BLOCK_ENTRIES", "MAX_BLOCK_BYTES", "BLOCK_HEAD", "encode_blocks",
           "decode_block", "BlockChecker"]

#: Entries per block at most. A read decodes whole blocks, so this bounds what a read of a
#: few entries, or a truncation inside a block, decodes (and re-encodes); past a few hundred
#: entries a block's own cost (one lmdb record to put and to delete) is already negligible.
#: 1024 keeps a batch of 1,000 client writes one block, while a read of one entry decodes
#: at most 1,024 (measured, compiled: 130 us, against 230 us with 4,096 per block).
MAX_BLOCK_ENTRIES = 1024
#: Bytes per block (the whole frame), unless one entry alone is larger: the same bound in
#: bytes, for large entries (it also keeps lmdb's runs of overflow pages short).
MAX_BLOCK_BYTES = 256 * 1024

_payload = attrgetter("payload")
_index = attrgetter("index")
_term = attrgetter("term")
#: Bytes of a FRAME_ENTRIES frame before its first entry: the frame header and the count.
BLOCK_HEAD = HEADER_SIZE + 4
#: A frame limit no batch reaches (a frame body is bounded by u32 anyway): encoding with it
#: checks every entry and names a bad one by its position in the whole batch.
_NO_FRAME_LIMIT = (1 << 64) - 1


# -- splitting an append into blocks (trio thread) ------------------------------------------


def encode_blocks(entries: Sequence) -> list[tuple[int, bytes]]:
    """``entries`` (a checked append: non-empty, consecutive) as blocks: [(first index,
    encoded block)], in order, each holding at most MAX_BLOCK_ENTRIES entries and
    MAX_BLOCK_BYTES bytes unless it is a single entry.

    Runs of MAX_BLOCK_ENTRIES are tried first, so an append of entries of a few hundred
    bytes or less is encoded once, with no per-entry work here; the rest of an append
    whose run does not fit in MAX_BLOCK_BYTES is split by its entries' sizes. An entry
    that cannot be encoded raises the codec's error (TypeError, ValueError), naming its
    position in ``entries``.
    """
    if type(entries) is not list:
        entries = list(entries)  # slices below; any sequence is accepted, as by the codec
    n = len(entries)
    blocks = []
    for lo in range(0, n, MAX_BLOCK_ENTRIES):  # once per block
        run = entries if n <= MAX_BLOCK_ENTRIES else entries[lo:lo + MAX_BLOCK_ENTRIES]
        try:
            blocks.append((run[0].index, encode_entries(run, MAX_BLOCK_BYTES)))
        except (TypeError, ValueError):
            break  # too large for one block, or a bad entry: both sorted out below
    else:
        return blocks
    rest = entries[lo:]
    try:
        blocks += [(rest[a].index, encode_entries(rest[a:b])) for a, b in _block_bounds(rest)]
    except (TypeError, ValueError):
        # Entries are checked before anything is encoded, so this raises the error the
        # block did, naming the entry by its position in the batch rather than the block.
        encode_entries(entries, _NO_FRAME_LIMIT)
        raise
    return blocks


def _block_bounds(entries: Sequence) -> list[tuple[int, int]]:
    """[lo, hi) positions of the blocks of ``entries``: greedy, each as long as the bounds
    allow and at least one entry. Sizes are summed in C (accumulate over map); the loop
    runs once per block."""
    n = len(entries)
    ends = list(accumulate(map(ENTRY_HEADER_SIZE.__add__, map(len, map(_payload, entries))),
                           initial=0))  # ends[i]: encoded bytes of entries[:i]
    budget = MAX_BLOCK_BYTES - BLOCK_HEAD
    bounds = []
    lo = 0
    for _ in range(n):  # bounded: each block takes at least one entry
        if lo == n:
            break
        cap = min(n, lo + MAX_BLOCK_ENTRIES)
        hi = max(lo + 1, bisect_right(ends, ends[lo] + budget, lo + 1, cap + 1) - 1)
        bounds.append((lo, hi))
        lo = hi
    return bounds


def decode_block(value: bytes, first: int, where: Callable[[str], str]) -> list:
    """The entries of the block stored under key ``first``: checksum checked, non-empty, its
    ends matching the key (the entries in between are checked at open, by ``BlockChecker``;
    here the checksum vouches for them). StorageError naming the file (``where``) and key."""
    try:
        entries = decode_entries(value)
    except CodecError as e:
        raise StorageError(where(
            f"log block keyed {first} (entries from {first}) fails its check: {e}")) from None
    n = len(entries)
    if n == 0:
        raise StorageError(where(f"log block keyed {first} holds no entries"))
    if entries[0].index != first or entries[n - 1].index != first + n - 1:
        raise StorageError(where(
            f"log block keyed {first} holds entries {entries[0].index}..{entries[n - 1].index}"))
    return entries


class BlockChecker:
    """Checks decoded blocks fed in key order at open: each block's entries consecutive, no
    gap or overlap between blocks, terms non-decreasing. The per-entry comparisons run in C
    (list equality, sorted); ``add`` runs once per block."""

    def __init__(self, where: Callable[[str], str]) -> None:
        self._where = where
        self.expected: int | None = None  # the index after the last block added
        self._prev_term = 0

    def add(self, first: int, entries: list) -> None:
        where, n, expected = self._where, len(entries), self.expected
        if list(map(_index, entries)) != list(range(first, first + n)):
            raise StorageError(where(
                f"log block keyed {first} holds entries that are not consecutive"))
        if expected is not None and first > expected:
            raise StorageError(where(
                f"the log has a gap: entries [{expected}, {first}) are missing "
                f"between the block ending at {expected - 1} and the next"))
        if expected is not None and first < expected:
            raise StorageError(where(
                f"log blocks overlap: the block keyed {first} starts at or before "
                f"{expected - 1}, where the block before it ends"))
        terms = list(map(_term, entries))
        if terms[0] < self._prev_term or terms != sorted(terms):
            raise StorageError(where(f"log terms decrease in [{first}, {first + n})"))
        self._prev_term = terms[n - 1]
        self.expected = first + n
