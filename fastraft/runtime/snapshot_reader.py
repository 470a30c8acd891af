"""Reading the current snapshot in chunks for followers that need it (``ReadSnapshotChunk``).

One snapshot is kept open between chunks (transfers read it front to back, often to several
followers at once); asking for another snapshot id closes it and opens the state machine's
current one. A chunk of a snapshot that is no longer current reads as None: the engine then
starts the transfer over with the current snapshot.

Invariant: at most one snapshot handle is open; ``aclose`` closes it.
"""

from __future__ import annotations

import os

from ..storage.protocols import Snapshot, StateMachine

__all__ = ["SnapshotReader"]


class SnapshotReader:
    def __init__(self, state_machine: StateMachine) -> None:
        self._sm = state_machine
        self._open: Snapshot | None = None
        self._size = 0

    async def read(self, snapshot_id: str, offset: int, max_bytes: int) -> tuple[bytes | None, bool]:
        """Bytes [offset, offset + max_bytes) of snapshot ``snapshot_id`` and whether they
        reach its end; (None, False) when that snapshot is not the current one."""
        snap = self._open
        if snap is None or snap.meta.snapshot_id != snapshot_id:
            self.close()
            snap = await self._sm.get_current_snapshot()
            if snap is None:
                return None, False
            if snap.meta.snapshot_id != snapshot_id:
                snap.close()
                return None, False
            self._open = snap
            self._size = snap.data.seek(0, os.SEEK_END)
        f = snap.data
        f.seek(offset)
        data = f.read(max_bytes)
        return data, offset + len(data) >= self._size

    def close(self) -> None:
        snap, self._open = self._open, None
        if snap is not None:
            snap.close()
