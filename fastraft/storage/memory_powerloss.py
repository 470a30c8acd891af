"""A memory log store that can lose power: the in-memory store of ``memory``, whose writes
become durable only after a simulated sync, on a ``MemoryDisk`` that outlives the store.

For in-process tests of the runtime (under trio's MockClock): crash a node at any step with
``store.power_cut()`` and reopen it on the same disk; what was written but not yet synced is
gone, as after a power loss. A runtime that reports a write complete before its store did
loses acknowledged writes here (Raft §5.3, §5.4: an entry counted towards a majority must be
on stable storage; thesis §3.8: the vote too).

Each mutation (save_vote, append, truncate, purge, save_committed) applies at once to the
store's working copy, which reads see, then waits ``sync_delay_s`` (trio time) and copies
the working copy to the disk; only then does it return. ``power_cut()`` marks the store dead:
a sync still waiting copies nothing, and every later call fails.

``append_nowait`` is the runtime's fast road, as the lmdb and RocksDB stores offer it: the
entries join the working copy at once and a background sync reports them durable; appends
issued while that sync waits are synced with it (group commit). An async mutation first
waits for that sync, so the disk sees the mutations in the order they were issued.
"""

from __future__ import annotations

import copy
from typing import Sequence

import trio

from ..errors import StorageError
from ..types import LogId, Vote
from .memory import MemoryLogStore

__all__ = ["MemoryDisk", "PowerLossMemoryLogStore"]


class MemoryDisk:
    """What survives a power cut: the last synced state of one node's log store."""

    def __init__(self) -> None:
        self.image: dict | None = None  # the store's fields at its last sync
        self.syncs = 0


class PowerLossMemoryLogStore(MemoryLogStore):
    """A ``MemoryLogStore`` whose writes reach ``disk`` after a sync of ``sync_delay_s``."""

    _FIELDS = ("_vote", "_committed", "_last_purged", "_entries", "_first_index")

    def __init__(self, disk: MemoryDisk, sync_delay_s: float = 0.001) -> None:
        super().__init__()
        self.disk = disk
        self.sync_delay_s = sync_delay_s
        self._cut = False
        self._dirty_from = 0  # entries before this list position are on the disk as they are
        self._nowait_waiting: list = []  # on_durable of appends the pending sync will cover
        self._nowait_synced: trio.Event | None = None  # set when the pending sync ended
        if disk.image is not None:
            for name, value in copy.copy(disk.image).items():
                setattr(self, name, list(value) if name == "_entries" else value)

    def power_cut(self) -> None:
        """The machine loses power: nothing more reaches the disk."""
        self._cut = True
        self._closed = True

    async def _sync(self) -> None:
        await trio.sleep(self.sync_delay_s)
        if self._cut:
            raise StorageError("the power was cut during the sync")
        old = self.disk.image
        image = {name: getattr(self, name) for name in self._FIELDS}
        if old is not None and old["_first_index"] == self._first_index:
            kept = old["_entries"]  # copy only what changed: a sync costs O(batch), not O(log)
            del kept[self._dirty_from:]
            kept.extend(self._entries[self._dirty_from:])
            image["_entries"] = kept
        else:
            image["_entries"] = list(self._entries)
        self.disk.image = image
        self._dirty_from = len(self._entries)
        self.disk.syncs += 1

    def append_nowait(self, entries: Sequence, on_durable, coalesce: bool = False) -> None:
        self._dirty_from = min(self._dirty_from, len(self._entries))
        self._append_now(entries)
        self._nowait_waiting.append(on_durable)
        if self._nowait_synced is None:
            self._nowait_synced = trio.Event()
            trio.lowlevel.spawn_system_task(self._sync_nowait_appends)

    async def _sync_nowait_appends(self) -> None:
        error: BaseException | None = None
        try:
            await self._sync()
        except StorageError as e:
            error = e
        except trio.Cancelled:
            error = StorageError("the run ended during the sync")
            raise
        finally:
            waiting, self._nowait_waiting = self._nowait_waiting, []
            synced, self._nowait_synced = self._nowait_synced, None
            synced.set()
            for on_durable in waiting:  # each reported: coalescing is allowed, not required
                on_durable(error)

    async def _after_nowait_appends(self) -> None:
        """Wait for the sync of the appends issued before this call (issue order on disk)."""
        while self._nowait_synced is not None:
            await self._nowait_synced.wait()

    async def save_vote(self, vote: Vote) -> None:
        await self._after_nowait_appends()
        await super().save_vote(vote)
        await self._sync()

    async def append(self, entries: Sequence) -> None:
        await self._after_nowait_appends()
        self._dirty_from = min(self._dirty_from, len(self._entries))
        self._append_now(entries)
        await self._sync()

    async def truncate(self, since_index: int) -> None:
        await self._after_nowait_appends()
        await super().truncate(since_index)
        self._dirty_from = min(self._dirty_from, len(self._entries))
        await self._sync()

    async def purge(self, upto: LogId) -> None:
        await self._after_nowait_appends()
        await super().purge(upto)
        await self._sync()

    async def save_committed(self, committed: LogId | None) -> None:
        await self._after_nowait_appends()
        await super().save_committed(committed)
        await self._sync()
