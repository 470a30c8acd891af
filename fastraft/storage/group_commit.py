"""Group commit: write operations queued while a synced transaction is under way are written
together in the next one, each completing when its own transaction is durable.

The pipeline has no task of its own, so a store needs no nursery: ``submit`` (sync, on the
trio thread) queues an operation and, if no batch is in flight, starts one in a worker thread
(``trio.lowlevel.start_thread_soon``); when the batch's transaction is committed the worker
hands the outcome back to the trio thread (``TrioToken.run_sync_soon``), which reports
completion and starts the next batch with everything queued meanwhile. Under load each sync
therefore carries every operation that arrived during the previous one, and a single writer
pays one thread handoff per transaction, nothing per operation.

Invariant: at most one batch is in flight; operations are written, and completions reported,
in submission order.
Invariant: after a batch fails, the pipeline is failed for good: what is queued, and what is
submitted later, fails with the same StorageError (the durable state is no longer known).
"""

from __future__ import annotations

from functools import partial
from time import perf_counter
from typing import Any, Callable, Generic, TypeVar

import outcome
import trio

from ..errors import StorageError
from ..latency import LatencyHistogram

__all__ = ["WritePipeline", "Done"]

Op = TypeVar("Op")
#: Completion callback: (error or None, the operation's result).
Done = Callable[[BaseException | None, Any], None]


class WritePipeline(Generic[Op]):
    """Runs batches of operations through ``run_batch(ops) -> results`` (blocking, in a
    worker thread, one result per operation), then ``on_committed(ops, results)`` on the trio
    thread, then each operation's callback.

    ``max_batch_ops`` bounds a batch: operations beyond it wait for the following one.
    ``max_queued_ops`` bounds the queue for callers that ``wait_for_room`` first (the async
    write methods of a store); ``submit`` itself never waits, so callers of a store's
    non-async path bound what they issue themselves (the runtime's in-flight window).
    """

    def __init__(self, name: str, run_batch: Callable[[list[Op]], list[Any]],
                 on_committed: Callable[[list[Op], list[Any]], None],
                 max_batch_ops: int = 4096, max_queued_ops: int = 16384) -> None:
        self._name = name
        self._run_batch = run_batch
        self._on_committed = on_committed
        self._max_batch_ops = max_batch_ops
        self._max_queued_ops = max_queued_ops
        self._room_waiters: list[trio.Event] = []
        self._queued_ops: list[Op] = []
        self._queued_done: list[Done] = []
        self._inflight: tuple[list[Op], list[Done]] | None = None
        self._failure: BaseException | None = None
        self._idle_waiters: list[trio.Event] = []
        self._token: trio.lowlevel.TrioToken | None = None
        #: one synced batch, from its start to its result back on the trio thread: the
        #: store's fsync with the write transaction and the thread hand-off around it
        self.sync_latency = LatencyHistogram()
        self._started_at = 0.0

    # -- state ------------------------------------------------------------------------------

    @property
    def failure(self) -> BaseException | None:
        return self._failure

    @property
    def busy(self) -> bool:
        return self._inflight is not None or bool(self._queued_ops)

    def queued_ops(self) -> list[Op]:
        """Operations submitted and not yet committed (in flight first), in order."""
        inflight = [] if self._inflight is None else self._inflight[0]
        return inflight + self._queued_ops

    def check(self) -> None:
        if self._failure is not None:
            raise StorageError(f"{self._name}: an earlier write failed ({self._failure}); "
                               "the store must be reopened") from self._failure

    # -- submitting ---------------------------------------------------------------------------

    def submit(self, op: Op, done: Done) -> None:
        """Queue ``op``; ``done(None, result)`` runs on the trio thread once it is durable, or
        ``done(error, None)``. Must be called from the trio thread, inside ``trio.run``."""
        self.check()
        self._queued_ops.append(op)
        self._queued_done.append(done)
        if self._inflight is None:
            self._start()

    async def run(self, op: Op) -> Any:
        """Submit ``op`` and wait until it is durable; returns its result.

        Cancellation abandons the wait, not the write: the operation is still written."""
        box: list = []
        event = trio.Event()

        def done(error: BaseException | None, result: Any) -> None:
            box.append((error, result))
            event.set()

        self.submit(op, done)
        await event.wait()
        error, result = box[0]
        if error is not None:
            raise StorageError(f"{self._name}: write failed: {error}") from error
        return result

    async def wait_for_room(self) -> None:
        """Wait until fewer than ``max_queued_ops`` operations are queued (backpressure);
        returns at once in the common case, without a checkpoint."""
        while len(self._queued_ops) >= self._max_queued_ops and self._failure is None:
            event = trio.Event()
            self._room_waiters.append(event)
            await event.wait()

    async def wait_idle(self) -> None:
        """Wait until nothing is queued or in flight."""
        while self.busy:
            event = trio.Event()
            self._idle_waiters.append(event)
            await event.wait()

    async def aclose(self) -> None:
        """Wait until nothing is queued or in flight (shielded): the store closes after."""
        with trio.CancelScope(shield=True):
            await self.wait_idle()

    # -- the batch cycle -----------------------------------------------------------------------

    def _start(self) -> None:
        n = self._max_batch_ops
        ops, self._queued_ops = self._queued_ops[:n], self._queued_ops[n:]
        dones, self._queued_done = self._queued_done[:n], self._queued_done[n:]
        self._inflight = (ops, dones)
        self._started_at = perf_counter()
        token = self._token = trio.lowlevel.current_trio_token()

        def deliver(result: outcome.Outcome) -> None:  # in the worker thread
            try:
                token.run_sync_soon(self._finish, result)
            except trio.RunFinishedError:
                pass  # the trio run ended without closing the store: nobody to tell

        trio.lowlevel.start_thread_soon(partial(self._run_batch, ops), deliver,
                                        name=f"fastraft write {self._name}")

    def _finish(self, result: outcome.Outcome) -> None:
        assert self._inflight is not None
        ops, dones = self._inflight
        self._inflight = None
        self.sync_latency.observe(perf_counter() - self._started_at)
        if isinstance(result, outcome.Error):
            self._fail(result.error, dones)
        else:
            try:
                self._on_committed(ops, result.value)
            except BaseException as e:  # the store's bookkeeping broke: stop it
                self._fail(e, dones)
            else:
                for done, value in zip(dones, result.value):
                    done(None, value)
        waiters, self._room_waiters = self._room_waiters, []
        for event in waiters:
            event.set()
        if self._queued_ops and self._failure is None:
            self._start()
        elif not self.busy:
            waiters, self._idle_waiters = self._idle_waiters, []
            for event in waiters:
                event.set()

    def _fail(self, error: BaseException, dones: list[Done]) -> None:
        self._failure = error
        dones = dones + self._queued_done
        self._queued_ops, self._queued_done = [], []
        for done in dones:
            done(error, None)
