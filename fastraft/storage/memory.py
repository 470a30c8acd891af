"""The in-memory log store (the openraft guide's memstore): for tests, the simulator, and
applications that want no disk.

Nothing survives the process, so "durable" means "done": every write completes at once.
Only a cluster in which no majority restarts at the same time can run safely on it.
"""

from __future__ import annotations

from typing import Sequence

from ..errors import StorageError
from ..types import LogId, Vote
from .protocols import LogState, LogStore, OnDurable
from .validate import check_append, check_purge, check_range, check_truncate, check_vote

__all__ = ["MemoryLogStore"]


class MemoryLogStore(LogStore):
    """A ``LogStore`` in a Python list. Writes complete immediately, never yielding.

    Invariant: ``self._entries[i]`` has index ``self._first_index + i``; ``_first_index`` is
    ``last_purged.index + 1`` (1 when nothing was purged).
    """

    def __init__(self) -> None:
        self._vote: Vote | None = None
        self._committed: LogId | None = None
        self._last_purged: LogId | None = None
        self._entries: list = []
        self._first_index = 1
        self._closed = False

    # -- helpers ------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise StorageError("the memory log store is closed")

    def _last_log_id(self) -> LogId | None:
        if self._entries:
            last = self._entries[-1]
            return LogId(last.term, last.index)
        return self._last_purged

    # -- vote ---------------------------------------------------------------------------

    async def save_vote(self, vote: Vote) -> None:
        self._check_open()
        check_vote(self._vote, vote)
        self._vote = vote

    async def read_vote(self) -> Vote | None:
        self._check_open()
        return self._vote

    # -- log ----------------------------------------------------------------------------

    async def get_log_state(self) -> LogState:
        self._check_open()
        return LogState(self._last_purged, self._last_log_id())

    async def read_entries(self, lo: int, hi: int, max_entries: int | None = None) -> list:
        self._check_open()
        lo, hi = check_range(lo, hi, max_entries)
        first = self._first_index
        start = max(lo, first) - first
        stop = min(hi - first, len(self._entries))
        if max_entries is not None:
            stop = min(stop, start + max_entries)
        if start >= stop:
            return []
        return self._entries[start:stop]

    def _append_now(self, entries: Sequence) -> None:
        self._check_open()
        last = self._last_log_id()
        next_index = 1 if last is None else last.index + 1
        check_append(entries, next_index, 0 if last is None else last.term)
        self._entries.extend(entries)

    async def append(self, entries: Sequence) -> None:
        self._append_now(entries)

    def append_nowait(self, entries: Sequence, on_durable: OnDurable,
                      coalesce: bool = False) -> None:
        """Append at once and call ``on_durable(None)`` before returning (each append is its
        own sync, so ``coalesce`` changes nothing)."""
        self._append_now(entries)
        on_durable(None)

    async def truncate(self, since_index: int) -> None:
        self._check_open()
        check_truncate(since_index, self._last_purged, self._committed)
        del self._entries[since_index - self._first_index:]

    async def purge(self, upto: LogId) -> None:
        self._check_open()
        check_purge(upto, self._committed)
        if self._last_purged is not None and upto.index <= self._last_purged.index:
            return
        del self._entries[:upto.index - self._first_index + 1]
        self._last_purged = upto
        self._first_index = upto.index + 1

    async def save_committed(self, committed: LogId | None) -> None:
        self._check_open()
        self._committed = committed

    async def read_committed(self) -> LogId | None:
        self._check_open()
        return self._committed

    async def aclose(self) -> None:
        self._closed = True
        self._entries = []
