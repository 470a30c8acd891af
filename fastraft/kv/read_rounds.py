"""Linearizable reads that arrive together share one ReadIndex round.

The engine answers each ``ensure_linearizable()`` call with its own heartbeat round (thesis
§6.4: one quorum round confirms leadership for every read registered before it). A node
under read load would send one round per read; ``ReadRounds`` sends one per batch instead:

* a reader arriving while no round runs starts one at once;
* a reader arriving while a round runs cannot use it (the round may have been sent before
  the read arrived, and a read must see every write committed before it started), so it
  joins the *next* round, which starts as soon as the running one ends and serves every
  reader that joined it.

So a read waits for at most two rounds, and at most one round runs at a time.

Invariant: a reader is released only by a round that began after the reader arrived, and
only with that round's outcome (its read index applied here, or its error).

The round is run by the first reader of its batch, shielded from that reader's cancellation
(so that the others are not abandoned) and bounded by ``timeout_s`` for the wait for the
running round plus the round itself: so that reader may wait up to ``timeout_s`` longer than
its own deadline.
"""

from __future__ import annotations

from typing import Awaitable, Callable

import trio

from .api import Unavailable

__all__ = ["ReadRounds"]


class _Round:
    __slots__ = ("done", "error")

    def __init__(self) -> None:
        self.done = trio.Event()
        self.error: BaseException | None = None


class ReadRounds:
    """Batches calls of ``confirm`` (``Raft.ensure_linearizable``). ``started`` counts the
    rounds begun, ``reads`` the reads that waited for one (their ratio: reads per round)."""

    def __init__(self, confirm: Callable[[], Awaitable], timeout_s: float) -> None:
        self._confirm = confirm
        self._timeout_s = timeout_s
        self._running: _Round | None = None  # the round whose confirm() is under way
        self._next: _Round | None = None  # gathering readers; starts when _running ends
        self.started = 0
        self.reads = 0

    async def wait(self) -> None:
        """Return once a read of the local state machine is linearizable; raises what the
        round raised (ForwardToLeader, ...) or Unavailable when it took too long."""
        self.reads += 1
        round_ = self._next
        if round_ is None:  # this reader gathers the next batch and drives its round
            round_ = self._next = _Round()
            await self._drive(round_)
        else:
            await round_.done.wait()
        if round_.error is not None:
            # shared by the batch: drop the last raiser's traceback rather than grow it
            raise round_.error.with_traceback(None)

    async def _drive(self, round_: _Round) -> None:
        """Wait for the running round to end, then run ``round_``: shielded from the
        driver's cancellation (the batch depends on it), bounded by the timeout."""
        error: BaseException | None = None
        with trio.CancelScope(shield=True):
            with trio.move_on_after(self._timeout_s) as scope:
                # let readers that arrived with this one (runnable now) join its batch
                await trio.sleep(0)
                while self._running is not None:  # only this driver starts the next round
                    await self._running.done.wait()
                self._next = None  # readers from now on need a round that starts later
                self._running = round_
                self.started += 1
                try:
                    await self._confirm()
                except Exception as e:
                    error = e
            if scope.cancelled_caught:
                error = Unavailable(f"leadership not confirmed within {self._timeout_s} s")
        if self._running is round_:
            self._running = None
        if self._next is round_:  # timed out before it could start
            self._next = None
        round_.error = error
        round_.done.set()
