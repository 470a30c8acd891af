"""Entries and checks the conformance cases are written with."""

from __future__ import annotations

from typing import Any, Iterable

from .. import Entry
from ..types import EntryKind, LogId, Membership, Node, StoredMembership, Vote

__all__ = ["blank", "member", "normal", "members", "stored", "expect", "expect_raises",
           "feed_10", "ids", "open_durable_log_store", "kv_contents"]


def blank(term: int, index: int) -> Entry:
    return Entry(term, index, EntryKind.BLANK, b"")


def members(*voters: int) -> Membership:
    """A uniform membership of ``voters`` (addresses on 127.0.0.1)."""
    return Membership.uniform({v: Node(f"127.0.0.1:{7000 + v}") for v in voters})


def member(term: int, index: int, *voters: int) -> Entry:
    return Entry(term, index, EntryKind.MEMBERSHIP, members(*voters).to_bytes())


def normal(term: int, index: int, payload: bytes) -> Entry:
    return Entry(term, index, EntryKind.NORMAL, payload)


def stored(term: int, index: int, *voters: int) -> StoredMembership:
    return StoredMembership(LogId(term, index), members(*voters))


def expect(got: Any, want: Any, what: str) -> None:
    """Assert ``got == want`` with a message a store author can act on."""
    if not (want == got):
        raise AssertionError(f"{what}: expected {want!r}, got {got!r}")


class expect_raises:
    """``with expect_raises(ValueError, "what"):`` fails unless the block raises."""

    def __init__(self, kind: type[BaseException] | tuple, what: str) -> None:
        self.kind, self.what = kind, what

    def __enter__(self) -> "expect_raises":
        return self

    def __exit__(self, et, ev, tb) -> bool:
        if et is None:
            raise AssertionError(f"{self.what}: expected {self.kind}, nothing was raised")
        return issubclass(et, self.kind)


def ids(entries: Iterable) -> list[tuple[int, int]]:
    return [(e.term, e.index) for e in entries]


async def feed_10(log) -> None:
    """Entries 1..10 of term 1 (one append each, as a follower receives them) and vote 1/1."""
    for i in range(1, 11):
        await log.append([blank(1, i)])
    await log.save_vote(Vote(1, 1))


async def open_durable_log_store(kind: str, path):
    """A durable log store of ``kind`` ("lmdb" or "rocksdb", the ``rocksdb`` extra) at
    ``path``, for tests that run the same checks on both."""
    if kind == "lmdb":
        from ..storage.lmdb_log import LmdbLogStore
        return await LmdbLogStore.open(path)
    if kind == "rocksdb":
        from ..storage.rocksdb_log import RocksLogStore
        return await RocksLogStore.open(path)
    raise ValueError(f"no durable log store of kind {kind!r}")


async def kv_contents(sm) -> tuple:
    """(the last log id applied, sorted (key, value) byte pairs) of a KV state machine
    (``fastraft.kv``), read through a snapshot it builds, so any two compare."""
    from ..kv.snapshot_format import read_snapshot

    snap = await sm.build_snapshot()
    try:
        meta, pairs = read_snapshot(snap.data)
        return meta.last_log_id, sorted((bytes(k), bytes(v)) for k, v in pairs)
    finally:
        snap.close()
