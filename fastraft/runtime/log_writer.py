"""Executing the engine's durable writes (``SaveVote``, ``AppendLog``, ``TruncateLog``,
``PurgeLog``) against the log store, in the order the engine emitted them, with group commit.

Appends are what a busy node does all the time, so they take the fast road: when the store
has ``append_nowait`` (the lmdb and RocksDB stores do), the appends of a round are handed to
the store when the round ends, as one write, and the store puts every append issued during a sync into the next sync; otherwise this writer
gathers the appends queued while the previous ``append`` ran into one call. Either way a node
under load syncs once per batch of batches, not once per client write.

The rare writes (vote, truncate, purge) are awaited one at a time, in order; an append issued
after one of them waits in the queue until it completed, so the store sees every mutation in
the engine's order (commands.py, obligation 1).

On the fast road an append is held until the round that emitted it ends
(``issue_held``, which the runtime calls after dispatching each round's commands; a vote,
truncation or purge emitted after it sends what is held to the store first), so the
leader's AppendEntries of that round leave before its own append wakes the store's writer
thread: the followers' round trip is the write's critical path, the leader's own sync runs
beside it (Raft thesis §10.2.1: a leader may replicate before its own append is durable), and
a writer thread woken first would take the interpreter lock from the sends. A follower's
append is held only to the end of its round, and its acknowledgement still waits for the
flush.

An append submitted while the store reports a completion (``on_flushed`` runs the engine's
flush round, which may append) is queued for the writer task instead of handed to the store
at once: a store's completion loop need not expect new writes from inside itself.

Completions are reported through callbacks on the trio thread: ``on_vote_saved(vote)`` and
``on_flushed(last_log_id)`` (the latest only is enough, as completions come in order). The
fast road's appends are issued with ``coalesce``: a store reports the appends one sync made
durable with one call, so ``on_flushed`` (the runtime's flush round: the engine's answer and
what it dispatches) runs once per synced batch, not once per append in it. A
store failure is reported to ``on_failed(error)``: the node must stop (Raft cannot go on
over storage that lost a write).

Invariant: mutations reach the store in emission order; at most one awaited mutation is in
progress at a time, and nothing is issued to the store while one is.
Invariant: at most ``_MAX_QUEUED`` commands wait (the engine emits one log command per input
at most, and appends bypass the queue unless a rare write is under way); one more is a
runaway producer and fails the node rather than grow memory.
"""

from __future__ import annotations

from collections import deque
from functools import partial
from time import perf_counter
from typing import Callable

import trio

from ..core.commands import AppendLog, PurgeLog, SaveVote, TruncateLog
from ..latency import LatencyHistogram
from ..storage.protocols import LogStore, supports_append_nowait
from ..types import LogId, Vote
from .work_queue import QueueFull, WorkQueue

__all__ = ["LogWriter"]

#: Most entries put into one ``append`` call on the slow road (stores without append_nowait).
_MAX_APPEND_BATCH = 65536
#: Most log commands waiting behind an awaited write.
_MAX_QUEUED = 65536


class LogWriter:
    """Runs the log commands against ``store``; see the module docstring."""

    def __init__(self, store: LogStore, *, on_vote_saved: Callable[[Vote], None],
                 on_flushed: Callable[[LogId], None], on_failed: Callable[[BaseException], None]) -> None:
        self._store = store
        self._nowait = supports_append_nowait(store)
        self._on_vote_saved = on_vote_saved
        self._on_flushed = on_flushed
        self._on_failed = on_failed
        self._queue = WorkQueue(_MAX_QUEUED)
        self._busy = False  # a queued command is being executed by run()
        self._failed = False
        self._completing = False  # inside the store's completion callback
        #: append_nowait calls whose completion is still to come, oldest first:
        #: (sequence number, last log id, when issued); bounded by what the engine issues
        #: before a flush (its in-flight window), like the store's own queue
        self._in_store: deque[tuple[int, LogId, float]] = deque()
        self._issued = 0  # sequence number of the latest append_nowait call
        #: fast-road appends of the current round, handed to the store by ``issue_held``;
        #: bounded by the commands of one round
        self._held: list[AppendLog] = []
        #: from handing an append to the store to its being durable (the flush's latency)
        self.append_latency = LatencyHistogram()

    def submit(self, cmd) -> None:
        """Take one log command, in emission order. Never blocks."""
        if self._failed:
            return
        if (self._nowait and type(cmd) is AppendLog and not self._busy and not self._queue
                and not self._completing):
            self._held.append(cmd)
            return
        if self._held:
            self.issue_held()  # what was held goes first: the store sees emission order
        try:
            self._queue.put(cmd)
        except QueueFull as e:
            self._fail(e)

    def issue_held(self) -> None:
        """Hand the appends held since the last call to the store (the runtime calls this
        at the end of every round's dispatch). Inside a store's completion they go to the
        writer task instead (a store's completion loop takes no new writes)."""
        held = self._held
        if not held:
            return
        self._held = []
        if self._failed:
            return
        if self._completing:
            for cmd in held:  # bounded by one round's commands
                try:
                    self._queue.put(cmd)
                except QueueFull as e:
                    self._fail(e)
                    return
            return
        if len(held) == 1:
            self._issue_nowait(held[0])
            return
        # One store write for the round (a follower's round may hold several requests'
        # appends): one block and one report instead of one per append.
        entries = []
        for cmd in held:  # bounded by one round's commands
            entries.extend(cmd.entries)
        self._issue_nowait(AppendLog(entries, held[-1].last_log_id))

    def _issue_nowait(self, cmd: AppendLog) -> None:
        self._issued = seq = self._issued + 1
        self._in_store.append((seq, cmd.last_log_id, perf_counter()))
        try:
            self._store.append_nowait(cmd.entries, partial(self._appends_durable, seq), True)
        except BaseException as e:  # a refused append is a bug or a dead store: stop
            self._in_store.pop()
            self._fail(e)

    def _appends_durable(self, seq: int, error: BaseException | None) -> None:
        """The store's report for append ``seq`` and, coalesced into it, those before it."""
        if error is not None:
            self._fail(error)
            return
        in_store = self._in_store
        if self._failed or not in_store:
            return
        now = perf_counter()
        observe = self.append_latency.observe
        last = None
        while in_store and in_store[0][0] <= seq:  # bounded by the appends in the store
            _, last, issued = in_store.popleft()
            observe(now - issued)
        if last is None:
            return
        self._completing = True
        try:
            self._on_flushed(last)
        finally:
            self._completing = False

    def _fail(self, error: BaseException) -> None:
        if not self._failed:
            self._failed = True
            self._queue.clear()
            self._held = []
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
            await store.append(entries)
            self.append_latency.observe(perf_counter() - issued)
            self._on_flushed(last)
        elif t is SaveVote:
            await store.save_vote(cmd.vote)
            self._on_vote_saved(cmd.vote)
        elif t is TruncateLog:
            await store.truncate(cmd.since)
        elif t is PurgeLog:
            await store.purge(cmd.upto)
        else:
            raise TypeError(f"not a log command: {t.__name__}")
