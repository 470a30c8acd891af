"""The write operations of the durable log stores, as typed records: what the trio thread
plans and the writer thread carries out (``fastraft.storage.group_commit``).

Every operation carries ``after``, the log's state once it is durable (each is planned
against the staged log, what the disk will hold when the operations before it are written),
so the trio thread learns what is durable from the operations a batch held, in order.

``Append``, ``SaveVote`` and ``SaveCommitted`` are shared by both stores; ``Truncate``,
``Purge``, ``PurgeStep`` and ``Noop`` are the lmdb store's (it plans them in its writer's
transaction); ``Rewrite`` is the RocksDB store's (it plans truncation and purge on the trio
thread as a range delete and puts).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from ..types import LogId, Vote
from .protocols import LogState

__all__ = ["Append", "SaveVote", "SaveCommitted", "Truncate", "Purge", "PurgeStep", "Noop",
           "Rewrite", "LogOp"]


@dataclass(frozen=True, slots=True)
class Append:
    """Put ``blocks`` ([(first index, encoded block)], from ``encode_blocks``) after the
    log's end; ``entries`` are the appended entries themselves ([first, first + len)).
    With ``committed`` (and its ``records`` record), also put the committed id, in the same
    write (``LogStore.note_committed``)."""

    first: int
    blocks: list[tuple[int, bytes]]
    entries: Sequence
    after: LogState
    committed: LogId | None = None
    committed_record: bytes | None = None


@dataclass(frozen=True, slots=True)
class SaveVote:
    record: bytes  # the vote as a ``records`` record
    vote: Vote
    after: LogState


@dataclass(frozen=True, slots=True)
class SaveCommitted:
    record: bytes  # the committed log id as a ``records`` record
    committed: LogId | None
    after: LogState


@dataclass(frozen=True, slots=True)
class Truncate:
    """lmdb: delete the entries from ``since`` on."""

    since: int
    after: LogState


@dataclass(frozen=True, slots=True)
class Purge:
    """lmdb: record ``last_purged`` (as ``record``), then delete a first run of the blocks
    wholly at or below ``upto`` (``tail``: the log's last index when it runs)."""

    record: bytes
    upto: int
    tail: int
    after: LogState


@dataclass(frozen=True, slots=True)
class PurgeStep:
    """lmdb: delete the next run of blocks wholly at or below ``upto``."""

    upto: int
    tail: int
    after: LogState


@dataclass(frozen=True, slots=True)
class Noop:
    """lmdb: nothing to write; completes in order with the operations around it."""

    after: LogState


@dataclass(frozen=True, slots=True)
class Rewrite:
    """RocksDB: delete the keys in [delete_lo, delete_hi), then put ``puts`` ([(key,
    value)], none of them in that range), in one write batch."""

    delete_lo: bytes
    delete_hi: bytes
    puts: list[tuple[bytes, bytes]]
    after: LogState


LogOp = Append | SaveVote | SaveCommitted | Truncate | Purge | PurgeStep | Noop | Rewrite
