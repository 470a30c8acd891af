"""A KV state machine whose answers name their entry: the /write answer carries the log id
of the entry (openraft's ClientWriteResponse), but ``Raft.client_write`` returns only the
state machine's response. ``LogIdAnswers`` wraps any KV state machine and answers each
NORMAL entry with ``(term, index, response)``; everything else passes through unchanged.

The wrapped state machine's state, files and snapshots are untouched: the wrapper only
decorates what ``apply`` returns, so a node may run with or without it on the same data.
"""

from __future__ import annotations

from typing import BinaryIO, Sequence

from ..storage.protocols import Snapshot, StateMachine
from ..types import EntryKind, LogId, SnapshotMeta, StoredMembership

__all__ = ["LogIdAnswers"]

_NORMAL = EntryKind.NORMAL


class LogIdAnswers(StateMachine):
    """Wraps ``inner``; ``apply`` answers NORMAL entries with (term, index, response).
    ``get(key)`` reads the inner state machine."""

    def __init__(self, inner: StateMachine) -> None:
        self.inner = inner
        self.get = inner.get  # the local read path: no extra call layer

    async def applied_state(self) -> tuple[LogId | None, StoredMembership]:
        return await self.inner.applied_state()

    async def apply(self, entries: Sequence) -> list:
        responses = await self.inner.apply(entries)
        return [(e.term, e.index, r) if e.kind == _NORMAL else r
                for e, r in zip(entries, responses)]

    async def build_snapshot(self) -> Snapshot:
        return await self.inner.build_snapshot()

    async def get_current_snapshot(self) -> Snapshot | None:
        return await self.inner.get_current_snapshot()

    async def begin_receiving_snapshot(self) -> BinaryIO:
        return await self.inner.begin_receiving_snapshot()

    async def install_snapshot(self, meta: SnapshotMeta, data: BinaryIO) -> None:
        await self.inner.install_snapshot(meta, data)

    async def aclose(self) -> None:
        await self.inner.aclose()
