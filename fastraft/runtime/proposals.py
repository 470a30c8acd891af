"""Client writes waiting for their entries to be applied (the leader's side of client_write).

Writes arrive one call at a time (``client_write``) or in batches (``client_write_many``);
each call is one ``Proposal``. Calls gathered since the engine's last round are proposed as
one batch (``Engine.propose`` on every payload at once: one AppendLog, one replication round,
one sync), and each call then waits for its entries' responses.

Outcome of a proposal (``Engine.propose``'s contract):

* its entries are applied with the term they were proposed in: the state machine's responses;
* an entry at its index is applied with another term: it was overwritten by another leader,
  it never committed: ``ForwardToLeader`` (resending is safe);
* this node stops leading before its entries commit: ``OutcomeUnknown`` (a new leader may
  still commit them); entries already committed are still applied and answered;
* the node shuts down first: ``RaftShutdown``.

Invariant: registered proposals are in log order and do not overlap; the number of entries
waiting (queued or registered) never exceeds ``max_entries``.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import trio

from ..errors import ForwardToLeader, OutcomeUnknown, RaftShutdown

__all__ = ["Proposal", "Proposals", "wake_in_slices"]


async def wake_in_slices(settled: list, per_pass: int) -> None:
    """Wake the callers of ``settled`` proposals, ``per_pass`` per scheduler pass: each woken
    writer runs (and usually writes again) before the scheduler gets back to the engine task,
    so waking ten thousand at once would hold back heartbeats long enough for followers to
    start an election (Raft §5.6). Cancelled (shutting down), it wakes the rest at once:
    nobody may be left waiting."""
    woken = 0
    try:
        for i in range(0, len(settled), per_pass):
            if i:
                await trio.sleep(0)
            for p in settled[i:i + per_pass]:
                p.wake()
            woken = i + per_pass
    finally:
        for p in settled[woken:]:
            p.wake()


class Proposal:
    """One client call: ``count`` payloads, and its outcome once known.

    The caller parks in ``outcome`` with trio's low-level primitives rather than a
    ``trio.Event``: with thousands of writes in flight, the wake-up is a large share of each
    write's cost, and parking the one waiting task directly costs half of what an Event's
    parking lot does. Invariant: ``_task`` is the parked caller, or None when nobody is
    parked (not yet, woken, or cancelled)."""

    __slots__ = ("payloads", "count", "many", "first_index", "term", "responses", "_task",
                 "_done", "_error")

    def __init__(self, payloads: list, many: bool) -> None:
        self.payloads = payloads
        self.count = len(payloads)
        self.many = many
        self.first_index = 0
        self.term = 0
        self.responses: list | None = None
        self._task = None
        self._done = False
        self._error: BaseException | None = None

    def settle(self, responses: list) -> None:
        """Record the outcome; the caller wakes the waiter later (``wake``)."""
        self.responses = responses
        self.payloads = None  # the payloads are in the log now; let them go

    def settle_error(self, error: BaseException) -> None:
        self._error = error
        self.payloads = None

    def wake(self) -> None:
        self._done = True
        task, self._task = self._task, None
        if task is not None:
            trio.lowlevel.reschedule(task)

    def fail(self, error: BaseException) -> None:
        """Settle with ``error`` and wake the waiter at once (rare paths)."""
        if not self._done:
            if self.responses is None:
                self.settle_error(error)
            self.wake()

    def _abort(self, _raise_cancel) -> trio.lowlevel.Abort:
        self._task = None  # cancelled: nobody to wake any more
        return trio.lowlevel.Abort.SUCCEEDED

    async def outcome(self) -> Any:
        """The response (``client_write``) or list of responses (``client_write_many``)."""
        if self._done:
            await trio.lowlevel.checkpoint()
        else:
            self._task = trio.lowlevel.current_task()
            await trio.lowlevel.wait_task_rescheduled(self._abort)
        if self._error is not None:
            raise self._error
        return self.responses if self.many else self.responses[0]


class Proposals:
    """The leader's pending client writes; see the module docstring."""

    def __init__(self, max_entries: int) -> None:
        self.max_entries = max_entries
        self._queued: list[Proposal] = []  # not yet proposed to the engine
        self._queued_payloads: list = []
        self._waiting: deque[Proposal] = deque()  # proposed, in log order
        self._partial: list = []  # responses gathered for _waiting[0] across apply batches
        self._entries = 0  # entries queued or waiting
        self._room = trio.Event()
        #: proposals the latest apply batch settled: more than one means several writers
        #: are waking up and about to write again (``RaftRuntime.submit_write`` batches them)
        self.last_settled = 0

    def __len__(self) -> int:
        return self._entries

    @property
    def has_queued(self) -> bool:
        return bool(self._queued)

    async def wait_for_room(self, count: int) -> None:
        """Wait until ``count`` more entries fit (a call larger than the whole bound waits
        until nothing else is pending)."""
        while self._entries and self._entries + count > self.max_entries:  # ends as applies free room
            await self._room.wait()

    def queue(self, proposal: Proposal) -> None:
        self._queued.append(proposal)
        self._queued_payloads.extend(proposal.payloads)
        self._entries += proposal.count

    def take_queued(self) -> tuple[list[Proposal], list]:
        """The proposals queued since the last call and all their payloads, in order."""
        props, payloads = self._queued, self._queued_payloads
        self._queued, self._queued_payloads = [], []
        return props, payloads

    def register(self, proposals: list[Proposal], first_index: int, term: int) -> None:
        """``proposals`` were proposed as one batch starting at ``first_index`` in ``term``."""
        index = first_index
        for p in proposals:
            p.first_index = index
            p.term = term
            index += p.count
            self._waiting.append(p)

    def refuse(self, proposals: list[Proposal], error: BaseException) -> None:
        """``proposals`` were not appended (the engine refused the batch)."""
        for p in proposals:
            self._release(p.count)
            p.fail(error)

    def on_applied(self, entries: list, responses: list, leader_hint: ForwardToLeader) -> list:
        """Settle the proposals whose entries are among ``entries`` (contiguous, applied in
        order, with ``responses`` one per entry) and return them, in order, for the caller to
        ``wake`` (it may spread the wake-ups out: see ``RaftRuntime``)."""
        waiting = self._waiting
        settled: list[Proposal] = []
        if not waiting or not entries:
            return settled
        base = entries[0].index
        end = base + len(entries)
        released = 0
        while waiting:
            p = waiting[0]
            if p.first_index >= end:
                break
            done_upto = p.first_index + p.count  # exclusive
            lo = max(p.first_index, base)
            hi = min(done_upto, end)
            if hi <= lo:  # applied past it without it: impossible unless a snapshot skipped it
                p.settle_error(OutcomeUnknown(
                    "the entry was replaced by a snapshot before it was applied here"))
            elif entries[lo - base].term != p.term:
                p.settle_error(leader_hint)
            elif lo == p.first_index and hi == done_upto:
                p.settle(responses[lo - base: hi - base])
            else:
                self._partial.extend(responses[lo - base: hi - base])
                if hi < done_upto:
                    break  # the rest comes with the next batch
                p.settle(self._partial)
            waiting.popleft()
            self._partial = []
            released += p.count
            settled.append(p)
        self._release(released)  # once per batch: waking the writers waiting for room
        self.last_settled = len(settled)
        return settled

    def on_snapshot_installed(self, last_index: int) -> None:
        """A snapshot replaced the state up to ``last_index``: proposals at or below it will
        never see their responses."""
        waiting = self._waiting
        while waiting and waiting[0].first_index <= last_index:
            p = waiting.popleft()
            self._partial = []
            self._release(p.count)
            p.fail(OutcomeUnknown("a snapshot replaced the entry before it was applied here"))

    def on_leadership_lost(self, committed: int, error_for_queued: BaseException) -> None:
        """This node stopped leading: proposals not committed fail (OutcomeUnknown), queued
        ones were never appended (``error_for_queued``)."""
        props, _ = self.take_queued()
        self.refuse(props, error_for_queued)
        head = self._waiting[0] if self._waiting else None
        keep: deque[Proposal] = deque()
        for p in self._waiting:
            if p.first_index + p.count - 1 <= committed:
                keep.append(p)  # committed: it will be applied and answered
            else:
                self._release(p.count)
                p.fail(OutcomeUnknown("leadership was lost before the write committed"))
        if not keep or keep[0] is not head:
            self._partial = []  # the head, with the responses gathered for it, failed
        self._waiting = keep

    def fail_all(self, error: BaseException = None) -> None:
        error = error or RaftShutdown("the node shut down")
        props, _ = self.take_queued()
        self.refuse(props, error)
        while self._waiting:
            p = self._waiting.popleft()
            self._release(p.count)
            p.fail(error)
        self._partial = []

    def _release(self, count: int) -> None:
        self._entries -= count
        if self._room.statistics().tasks_waiting:
            self._room.set()
            self._room = trio.Event()
