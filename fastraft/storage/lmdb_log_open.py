"""Opening an lmdb log store: the format check, the meta records, the full check of every
block (``verify_blocks``), and finishing a purge that a crash interrupted. The layout these
check is described in ``fastraft.storage.lmdb_log_layout``."""

from __future__ import annotations

from dataclasses import dataclass
from itertools import islice

from ..errors import CodecError, StorageError
from ..types import LogId, Vote
from . import records
from .lmdb_log_layout import FORMAT_VERSION, LogLayout, key_of
from .log_blocks import BlockChecker
from .protocols import LogState

__all__ = ["LoadedLog", "load_log", "verify_blocks"]

def verify_blocks(layout: LogLayout, lo: int, last: int) -> None:
    """Check every block from the one holding ``lo`` to the end (``BlockChecker``: checksum,
    key matching the first entry, entries consecutive, no gap or overlap, terms
    non-decreasing) and that the last entry is ``last``. The loop runs once per block."""
    checker = BlockChecker(layout.where)
    with layout.env.read_txn() as txn:
        cursor = txn.cursor(db=layout.log_db)
        key = key_of(lo)
        if not cursor.set_range(key):
            positioned = cursor.last()
        else:
            positioned = cursor.key() == key or cursor.prev()
        if not positioned:
            raise StorageError(layout.where(f"log entry {lo} is missing"))
        items = cursor.iternext(keys=True, values=True)
        for k, v in islice(items, txn.stat(layout.log_db)["entries"]):
            first = layout.key_index(k)
            entries = layout.decode_block(v, first)
            if checker.expected is None and first + len(entries) <= lo:
                raise StorageError(layout.where(f"log entry {lo} is missing"))
            checker.add(first, entries)
    expected = checker.expected
    if expected is None or expected - 1 != last:
        raise StorageError(layout.where(
            f"the log's blocks end at {None if expected is None else expected - 1}, "
            f"not at its last entry {last}"))


@dataclass(frozen=True, slots=True)
class LoadedLog:
    vote: Vote | None
    committed: LogId | None
    state: LogState
    physical_first: int  # the first block's key, or the next index when none is stored


def load_log(layout: LogLayout, verify: bool, purge_batch_entries: int) -> LoadedLog:
    """Read a log store's state at open (blocking): check the format, decode the meta
    records, check the blocks (all of them with ``verify``, else the last), and finish a
    purge that a crash interrupted. StorageError, naming file and key or index, on anything
    that fails; nothing is changed then."""
    env = layout.env
    env.check_format(layout.meta_db, layout.log_db, "log store", FORMAT_VERSION)
    with env.read_txn() as txn:
        meta = {k: txn.get(k, db=layout.meta_db) for k in (b"vote", b"committed", b"last_purged")}
        cursor = txn.cursor(db=layout.log_db)
        first_key = cursor.key() if cursor.first() else None
        second_key = cursor.key() if first_key is not None and cursor.next() else None
        last_key = cursor.key() if cursor.last() else None
        last_value = cursor.value() if last_key is not None else None
        blocks = txn.stat(layout.log_db)["entries"]
    try:
        vote = None if meta[b"vote"] is None else records.decode_vote(meta[b"vote"])
        committed = (None if meta[b"committed"] is None
                     else records.decode_log_id(meta[b"committed"], "committed"))
        last_purged = (None if meta[b"last_purged"] is None
                       else records.decode_log_id(meta[b"last_purged"], "last_purged"))
    except CodecError as e:
        raise StorageError(layout.where(f"log_meta sub-database: {e}")) from None
    purged = 0 if last_purged is None else last_purged.index
    if first_key is None:
        return LoadedLog(vote, committed, LogState(last_purged, last_purged), purged + 1)
    first, last_first = layout.key_index(first_key), layout.key_index(last_key)
    tail = layout.decode_block(last_value, last_first)[-1]
    last_log = last_purged
    if tail.index > purged:
        if first > purged + 1:
            raise StorageError(layout.where(
                f"log entries [{purged + 1}, {first}) are missing: the log starts at "
                f"{first} but only entries up to {purged} were purged"))
        last_log = LogId(tail.term, tail.index)
        if verify:
            verify_blocks(layout, purged + 1, tail.index)
    # A purge that a crash interrupted left the first block wholly at or below the purge
    # point: finish it.
    first_end = tail.index if second_key is None else layout.key_index(second_key) - 1
    physical_first = first
    if first_end <= purged:
        step = layout.purge_step(purged, tail.index, purge_batch_entries)
        for _ in range(blocks):  # bounded: each step deletes a block, or finishes
            progress = env.write(step)
            physical_first = progress.first_stored
            if progress.finished:
                break
    return LoadedLog(vote, committed, LogState(last_purged, last_log), physical_first)
