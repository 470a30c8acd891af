"""The lmdb log store's on-disk layout: keys, records, and the checks run when it opens.

* sub-database ``log``: key = the entry's index as a big-endian u64 (lmdb's byte order is
  then index order), value = the codec's self-checking FRAME_RECORD frame of the entry;
* sub-database ``log_meta``: ``format`` = FORMAT_VERSION, and ``vote``, ``last_purged``,
  ``committed`` as ``fastraft.storage.records`` records.

Invariant on disk: the entries stored are contiguous, and those above ``last_purged`` are
exactly (last_purged, last]; entries at or below ``last_purged`` may linger after a crash
during a purge, and opening deletes them.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from itertools import islice
from operator import attrgetter

from ..codec import decode_entry_record, decode_entry_records
from ..errors import CodecError, StorageError
from ..types import LogId, Vote
from . import records
from .lmdb_env import LmdbEnv
from .protocols import LogState

__all__ = ["FORMAT_VERSION", "LogLayout", "LoadedLog", "load_log", "key_of", "index_of",
           "partial_purge"]

#: The log store's on-disk format; a store with any other is refused at open.
FORMAT_VERSION = b"fastraft-log-1"
#: Entries decoded per step while verifying a store at open.
VERIFY_CHUNK_ENTRIES = 4096

_index = attrgetter("index")
_term = attrgetter("term")

#: The key of the entry at an index.
key_of = struct.Struct(">Q").pack


def index_of(key: bytes) -> int:
    if len(key) != 8:
        raise CodecError(f"log key of {len(key)} bytes, expected 8")
    return int.from_bytes(key, "big")


class LogLayout:
    """The two sub-databases of a log store, and decoding that names the file and index of
    anything that fails its check (as StorageError)."""

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

    def decode_one(self, record: bytes, index: int):
        try:
            entry = decode_entry_record(record)
        except CodecError as e:
            raise StorageError(self.where(f"log entry {index} fails its check: {e}")) from None
        if entry.index != index:
            raise StorageError(self.where(f"log key {index} holds entry {entry.index}"))
        return entry

    def decode_many(self, recs: list, first: int) -> list:
        """Decode the records of entries first, first + 1, ... in one call."""
        try:
            entries = decode_entry_records(recs)
        except CodecError:
            for i, rec in enumerate(recs):  # find which one, to name its index
                self.decode_one(rec, first + i)
            raise
        n = len(entries)
        if entries[0].index != first or entries[n - 1].index != first + n - 1:
            raise StorageError(self.where(
                f"log keys [{first}, {first + n}) hold entries {entries[0].index}.."
                f"{entries[n - 1].index}"))
        return entries

    def verify(self, lo: int, last: int) -> None:
        """Check every entry in [lo, last + 1): contiguous keys, checksums, each key matching
        its entry's index, terms non-decreasing. The per-entry comparisons run in C
        (map, list equality, sorted) over each decoded chunk."""
        expected, prev_term = lo, 0
        with self.env.read_txn() as txn:
            cursor = txn.cursor(db=self.log_db)
            if not cursor.set_key(key_of(lo)):
                raise StorageError(self.where(f"log entry {lo} is missing"))
            items = cursor.iternext(keys=True, values=True)
            while expected <= last:
                chunk = list(islice(items, VERIFY_CHUNK_ENTRIES))
                if not chunk:
                    raise StorageError(self.where(f"log entry {expected} is missing"))
                keys, values = zip(*chunk)
                n = len(chunk)
                # Keys are unique and sorted, so the right ends and count mean no gap.
                if (self.key_index(keys[0]) != expected
                        or self.key_index(keys[n - 1]) != expected + n - 1):
                    raise StorageError(self.where(
                        f"the log has a gap in [{expected}, {expected + n})"))
                entries = self.decode_many(list(values), expected)
                if list(map(_index, entries)) != list(range(expected, expected + n)):
                    raise StorageError(self.where(
                        f"log keys in [{expected}, {expected + n}) hold entries of other "
                        "indexes"))
                terms = list(map(_term, entries))
                if terms[0] < prev_term or terms != sorted(terms):
                    raise StorageError(self.where(
                        f"log terms decrease in [{expected}, {expected + n})"))
                prev_term = terms[n - 1]
                expected += n


@dataclass(frozen=True, slots=True)
class LoadedLog:
    vote: Vote | None
    committed: LogId | None
    state: LogState
    physical_first: int  # lowest index stored, or the next index when none is


def load_log(layout: LogLayout, verify: bool, purge_batch_entries: int) -> LoadedLog:
    """Read a log store's state at open (blocking): check the format, decode the meta
    records, check the entries (all of them with ``verify``, else the last), and finish a
    purge that a crash interrupted. StorageError, naming file and key or index, on anything
    that fails; nothing is changed then."""
    env = layout.env
    env.check_format(layout.meta_db, layout.log_db, "log store", FORMAT_VERSION)
    with env.read_txn() as txn:
        meta = {k: txn.get(k, db=layout.meta_db) for k in (b"vote", b"committed", b"last_purged")}
        cursor = txn.cursor(db=layout.log_db)
        first_key = cursor.key() if cursor.first() else None
        last_key = cursor.key() if cursor.last() else None
        last_record = cursor.value() if last_key is not None else None
    try:
        vote = None if meta[b"vote"] is None else records.decode_vote(meta[b"vote"])
        committed = (None if meta[b"committed"] is None
                     else records.decode_log_id(meta[b"committed"], "committed"))
        last_purged = (None if meta[b"last_purged"] is None
                       else records.decode_log_id(meta[b"last_purged"], "last_purged"))
    except CodecError as e:
        raise StorageError(layout.where(f"log_meta sub-database: {e}")) from None
    purged_index = 0 if last_purged is None else last_purged.index
    last_log = last_purged
    if first_key is None:
        return LoadedLog(vote, committed, LogState(last_purged, last_log), purged_index + 1)
    first, last = layout.key_index(first_key), layout.key_index(last_key)
    if first > purged_index + 1:
        raise StorageError(layout.where(
            f"log entries [{purged_index + 1}, {first}) are missing: the log starts at "
            f"{first} but only entries up to {purged_index} were purged"))
    if last > purged_index:
        entry = layout.decode_one(last_record, last)
        last_log = LogId(entry.term, entry.index)
        if verify:
            layout.verify(purged_index + 1, last)
    lowest = first
    while lowest <= purged_index:  # a purge that a crash interrupted: finish it
        lowest = env.write(partial_purge(layout.log_db, purged_index, purge_batch_entries))
    return LoadedLog(vote, committed, LogState(last_purged, last_log), max(lowest, first))


def partial_purge(log_db, upto_index: int, max_entries: int):
    """A transaction body deleting at most ``max_entries`` of the lowest entries with index
    <= ``upto_index``; it returns the lowest index still stored afterwards, or
    upto_index + 1 when none is.

    Keys are compared as bytes: big-endian keys sort as their indexes do, and lmdb orders
    the sub-database by the same byte comparison, so the loop stops at the first key past
    ``upto_index`` whatever the keys hold. (The per-entry loop is two C calls; a purge runs
    as often as snapshots are taken, over as many entries as were appended.)"""
    upto_key = key_of(upto_index)

    def run(txn) -> int:
        cursor = txn.cursor(db=log_db)
        if not cursor.first():
            return upto_index + 1
        key, delete = cursor.key, cursor.delete
        for _ in range(max_entries):  # bounded: at most max_entries deletions
            k = key()
            if not k or k > upto_key:
                break
            delete()
        k = key()
        return index_of(k) if k else upto_index + 1
    return run
