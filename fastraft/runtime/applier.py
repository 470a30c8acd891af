"""Executing the engine's state-machine work, in emission order: ``ApplyEntries``,
``BuildSnapshot``, ``SaveSnapshotChunk``, ``InstallSnapshot``, and the ``ReadReady`` points
that must wait until what was emitted before them is applied (commands.py, obligation 1).

Applying is batched: the ranges queued while the state machine was busy go to it in one
``apply`` call (at most ``max_apply_entries`` entries), entries the engine handed over are used
as they are, others are read from the log store. After each batch ``await on_applied(entries,
responses)`` (it resolves the clients' futures, and may take its time doing so: the next
batch waits for it).

Snapshot builds: a state machine that sets ``concurrent_snapshot_builds`` builds in a task of
its own while the applies behind the ``BuildSnapshot`` go on (as openraft runs its snapshot
builder beside the state machine). Otherwise the build holds up every apply queued after it,
for as long as it takes to copy the whole state: a 200,000-key KV store stalled every write
for about 300 ms per snapshot that way. The engine asks for one build at a time
(``fastraft.core.snapshot``), and accepts a snapshot of any applied point it reports.

Snapshot reception: a chunk at offset 0 opens a fresh receiving file from the state machine
(``begin_receiving_snapshot``), later chunks of the same snapshot are written at their offset,
``InstallSnapshot`` hands the file to the state machine and reports
``on_snapshot_installed(meta)``. ``BuildSnapshot`` reports ``on_snapshot_built(meta)``.

A failure of the state machine is reported to ``on_failed(error)`` and ends the worker: the
node must stop (its applied state can no longer be trusted).

Invariant: entries reach the state machine in log order, each once; a read point is released
only after every apply queued before it completed.
Invariant: at most ``_MAX_QUEUED`` commands wait (the engine emits at most one ApplyEntries
per round and one ReadReady per read round); one more fails the node rather than grow memory.

The applied index has one owner, this class: ``last_applied`` is the last entry the state
machine has applied (or the snapshot it installed, once the engine adopted it), written here
only; metrics read it. The engine's ``applied`` is a different thing, the end of the
``ApplyEntries`` it has emitted (what it has asked for), and the state machine's own
``applied_state`` is read only at start-up, to build the engine's initial state.
"""

from __future__ import annotations

import logging
from typing import Awaitable, BinaryIO, Callable

import trio

from ..core.commands import ApplyEntries, BuildSnapshot, InstallSnapshot, ReadReady, SaveSnapshotChunk
from ..errors import StorageError
from ..storage.protocols import LogStore, StateMachine
from ..types import LogId, SnapshotMeta
from .work_queue import QueueFull, WorkQueue

__all__ = ["Applier"]

log = logging.getLogger("fastraft.runtime.applier")

#: Most state-machine commands waiting for the state machine.
_MAX_QUEUED = 1 << 20


class Applier:
    """Runs the state-machine commands; see the module docstring."""

    def __init__(self, state_machine: StateMachine, log_store: LogStore, *,
                 on_applied: Callable[[list, list], Awaitable[None]],
                 on_read_ready: Callable[[ReadReady], None],
                 on_snapshot_built: Callable[[SnapshotMeta], None],
                 on_snapshot_installed: Callable[[SnapshotMeta], None],
                 on_failed: Callable[[BaseException], None],
                 max_apply_entries: int = 8192) -> None:
        self._sm = state_machine
        self._log = log_store
        self._on_applied = on_applied
        self._on_read_ready = on_read_ready
        self._on_snapshot_built = on_snapshot_built
        self._on_snapshot_installed = on_snapshot_installed
        self._on_failed = on_failed
        self._max_apply = max_apply_entries
        self._queue = WorkQueue(_MAX_QUEUED)
        self._builds_alongside = bool(getattr(state_machine, "concurrent_snapshot_builds", False))
        self._builds: trio.Nursery | None = None  # where those builds run (set by ``run``)
        self._receiving: tuple[str, BinaryIO] | None = None
        #: The last entry applied (or snapshot adopted); written only by this class.
        self.last_applied: LogId | None = None

    def submit(self, cmd) -> None:
        """Take one state-machine command (or a ReadReady), in emission order."""
        try:
            self._queue.put(cmd)
        except QueueFull as e:
            self._on_failed(e)

    async def run(self) -> None:
        """Execute queued commands until cancelled; a failure ends it via ``on_failed``."""
        async with trio.open_nursery() as builds:
            self._builds = builds
            try:
                await self._loop()
            except trio.Cancelled:
                raise
            except Exception as e:
                self._on_failed(e)
            finally:
                self._discard_receiving()

    async def _loop(self) -> None:
        q = self._queue
        while True:  # one round per queued command or batch of applies; ends by cancel
            if not q:
                await q.wait()
                continue
            cmd = q.peek()
            t = type(cmd)
            if t is ApplyEntries:
                await self._apply_batch()
                continue
            q.take()
            if t is ReadReady:
                self._on_read_ready(cmd)
            elif t is BuildSnapshot:
                if self._builds_alongside and self._builds is not None:
                    self._builds.start_soon(self._build_alongside)
                else:
                    await self._build()
            elif t is SaveSnapshotChunk:
                await self._save_chunk(cmd)
            elif t is InstallSnapshot:
                await self._install(cmd.meta)
            else:
                raise TypeError(f"not a state-machine command: {t.__name__}")

    async def _apply_batch(self) -> None:
        """Apply the ApplyEntries at the head of the queue and those right behind it."""
        q = self._queue
        entries: list = []
        while q and type(q.peek()) is ApplyEntries and len(entries) < self._max_apply:
            cmd = q.peek()
            room = self._max_apply - len(entries)
            lo, hi = cmd.lo, cmd.hi
            take_hi = min(hi, lo + room)
            if cmd.entries is not None:
                got = cmd.entries[: take_hi - lo]
            else:
                got = await self._log.read_entries(lo, take_hi)
                if len(got) != take_hi - lo or (got and got[0].index != lo):
                    raise StorageError(
                        f"committed entries [{lo}, {take_hi}) are missing from the log store "
                        f"(read {len(got)})")
            entries.extend(got)
            if take_hi == hi:
                q.take()
            else:  # the rest of this range goes in the next batch
                rest = None if cmd.entries is None else cmd.entries[take_hi - lo:]
                q.replace_head(ApplyEntries(take_hi, hi, rest))
        if not entries:
            return
        responses = await self._sm.apply(entries)
        last = entries[-1]
        self.last_applied = LogId(last.term, last.index)
        await self._on_applied(entries, responses)

    async def _build(self) -> None:
        snap = await self._sm.build_snapshot()
        snap.close()
        self._on_snapshot_built(snap.meta)

    async def _build_alongside(self) -> None:
        """A build beside the applies (see the module docstring); a failure stops the node
        as one in the queue's order would."""
        try:
            await self._build()
        except trio.Cancelled:
            raise
        except Exception as e:
            self._on_failed(e)

    async def _save_chunk(self, cmd: SaveSnapshotChunk) -> None:
        if cmd.offset == 0:
            self._discard_receiving()
            self._receiving = (cmd.snapshot_id, await self._sm.begin_receiving_snapshot())
        rx = self._receiving
        if rx is None or rx[0] != cmd.snapshot_id:
            # the engine asks for chunks in order from offset 0; anything else is a lost start
            log.warning("snapshot chunk at %d of %r without its start; ignored", cmd.offset, cmd.snapshot_id)
            return
        f = rx[1]
        f.seek(cmd.offset)
        f.write(cmd.data)

    async def _install(self, meta: SnapshotMeta) -> None:
        rx = self._receiving
        if rx is None or rx[0] != meta.snapshot_id:
            raise StorageError(f"snapshot {meta.snapshot_id!r} to install was never received")
        self._receiving = None
        f = rx[1]
        f.flush()
        f.seek(0)
        await self._sm.install_snapshot(meta, f)
        # last_applied moves when the engine adopts the snapshot (on_snapshot_installed), so
        # metrics never show the state ahead of the engine's view of it
        self._on_snapshot_installed(meta)

    def snapshot_adopted(self, last_log_id: LogId) -> None:
        """The engine adopted an installed snapshot ending at ``last_log_id``: the state
        machine's state is now that snapshot's (if it is ahead of what was applied)."""
        last = self.last_applied
        if last is None or last.index < last_log_id.index:
            self.last_applied = last_log_id

    def _discard_receiving(self) -> None:
        rx, self._receiving = self._receiving, None
        if rx is not None:
            try:
                rx[1].close()
            except OSError:
                pass
