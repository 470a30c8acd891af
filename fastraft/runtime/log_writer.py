"""Executing the engine's durable writes (``SaveVote``, ``AppendLog``, ``TruncateLog``,
``PurgeLog``) against the log store, in the order the engine emitted them, with group commit.

Appends are what a busy node does all the time, so they take the fast road: when the store
has ``append_nowait`` (the lmdb store does), each append is handed to the store at once and
the store puts every append issued during a sync into the next sync; otherwise this writer
gathers the appends queued while the previous ``append`` ran into one call. Either way a node
under load syncs once per batch of batches, not once per client write.

The rare writes (vote, truncate, purge) are awaited one at a time, in order; an append issued
after one of them waits in the queue until it completed, so the store sees every mutation in
the engine's order (commands.py, obligation 1).

An append submitted while the store reports a completion (``on_flushed`` runs the engine's
flush round, which may append) is queued for the writer task instead of handed to the store
at once: a store's completion loop need not expect new writes from inside itself.

The commit index rides along (etcd saves its HardState's commit with the entries of the same
Ready): before each append (and purge), the committed id the engine knows, if it moved, is
noted to the store (``LogStore.note_committed``), which writes it in the append's own synced
write, at no sync of its own; a node that restarts re-applies up to it without waiting for a
leader (``fastraft.storage.recover_state``). Thesis §3.8: the commit index may be lost; saving
it is an optimisation, never needed for safety.

Completions are reported through callbacks on the trio thread: ``on_vote_saved(vote)`` and
``on_flushed(last_log_id)`` (the latest only is enough, as completions come in order). A
store failure is reported to ``on_failed(error)``: the node must stop (Raft cannot go on
over storage that lost a write).

Invariant: mutations reach the store in emission order; at most one awaited mutation is in
progress at a time, and nothing is issued to the store while one is.
Invariant: at most ``_MAX_QUEUED`` commands wait (the engine emits one log command per input
at most, and appends bypass the queue unless a rare write is under way); one more is a
runaway producer and fails the node rather than grow memory.
"""

from __future__ import annotations

from time import perf_counter
from typing import Callable

import trio

from ..core.commands import AppendLog, PurgeLog, SaveVote, TruncateLog
from ..latency import LatencyHistogram
from ..storage.protocols import LogStore, supports_append_nowait
from ..types import LogId, Vote
from .work_queue import QueueFull, WorkQueue

__all__ = ["LogWriter", "committed_log_id"]

#: Most entries put into one ``append`` call on the slow road (stores without append_nowait).
_MAX_APPEND_BATCH = 65536
#: Most log commands waiting behind an awaited write.
_MAX_QUEUED = 65536


class LogWriter:
    """Runs the log commands against ``store``; see the module docstring."""

    def __init__(self, store: LogStore, *, on_vote_saved: Callable[[Vote], None],
                 on_flushed: Callable[[LogId], None], on_failed: Callable[[BaseException], None],
                 committed_id: Callable[[], LogId | None] | None = None) -> None:
        self._store = store
        self._committed_id = committed_id  # the engine's committed log id, or None
        self._noted_index = 0  # the last committed index noted to the store
        self._nowait = supports_append_nowait(store)
        self._on_vote_saved = on_vote_saved
        self._on_flushed = on_flushed
        self._on_failed = on_failed
        self._queue = WorkQueue(_MAX_QUEUED)
        self._busy = False  # a queued command is being executed by run()
        self._failed = False
        self._completing = False  # inside the store's completion callback
        self._appends_in_store = 0  # append_nowait calls whose completion is still to come
        #: from handing an append to the store to its being durable (the flush's latency)
        self.append_latency = LatencyHistogram()

    def submit(self, cmd) -> None:
        """Take one log command, in emission order. Never blocks."""
        if self._failed:
            return
        if (self._nowait and type(cmd) is AppendLog and not self._busy and not self._queue
                and not self._completing):
            self._issue_nowait(cmd)
            return
        try:
            self._queue.put(cmd)
        except QueueFull as e:
            self._fail(e)

    def _issue_nowait(self, cmd: AppendLog) -> None:
        last = cmd.last_log_id
        issued = perf_counter()

        def on_durable(error: BaseException | None) -> None:
            self._appends_in_store -= 1
            if error is not None:
                self._fail(error)
            elif not self._failed:
                self.append_latency.observe(perf_counter() - issued)
                self._completing = True
                try:
                    self._on_flushed(last)
                finally:
                    self._completing = False

        self._appends_in_store += 1
        try:
            self._note_committed()
            self._store.append_nowait(cmd.entries, on_durable)
        except BaseException as e:  # a refused append is a bug or a dead store: stop
            self._appends_in_store -= 1
            self._fail(e)

    def _note_committed(self) -> None:
        """Tell the store the committed id, if it moved since the last time."""
        if self._committed_id is not None:
            committed = self._committed_id()
            if committed is not None and committed.index > self._noted_index:
                self._noted_index = committed.index
                self._store.note_committed(committed)

    def _fail(self, error: BaseException) -> None:
        if not self._failed:
            self._failed = True
            self._queue.clear()
            self._on_failed(error)

    async def run(self) -> None:
        """Execute queued commands until cancelled (or until the store fails)."""
        q = self._queue
        while not self._failed:  # one round per batch of queued commands
            if not q:
                await q.wait()
                continue
            self._busy = True
            try:
                await self._execute_head()
            except (Exception, trio.Cancelled) as e:
                if isinstance(e, trio.Cancelled):
                    raise
                self._fail(e)
            finally:
                self._busy = False

    async def _execute_head(self) -> None:
        q = self._queue
        cmd = q.take()
        t = type(cmd)
        store = self._store
        if t is AppendLog:
            if self._nowait:
                self._issue_nowait(cmd)
                return
            entries = list(cmd.entries)
            last = cmd.last_log_id
            while q and type(q.peek()) is AppendLog and len(entries) < _MAX_APPEND_BATCH:
                nxt = q.take()
                entries.extend(nxt.entries)
                last = nxt.last_log_id
            issued = perf_counter()
            self._note_committed()
            await store.append(entries)
            self.append_latency.observe(perf_counter() - issued)
            self._on_flushed(last)
        elif t is SaveVote:
            await store.save_vote(cmd.vote)
            self._on_vote_saved(cmd.vote)
        elif t is TruncateLog:
            await store.truncate(cmd.since)
        elif t is PurgeLog:
            self._note_committed()  # the store's purge check counts it (upto <= committed)
            await store.purge(cmd.upto)
        else:
            raise TypeError(f"not a log command: {t.__name__}")


def committed_log_id(engine) -> LogId | None:
    """The engine's commit index as a log id (its term from the engine's log index), or None
    before anything is committed."""
    index = engine.committed
    if not index:
        return None
    try:
        return LogId(engine.log.term_at(index), index)
    except IndexError:  # not in this node's log index (cannot happen: committed <= last)
        return None
