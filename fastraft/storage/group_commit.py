"""Group commit: write operations queued while a synced transaction is under way are written
together in the next one, each completing when its own transaction is durable.

Each pipeline has one long-lived writer thread, fed by a ``queue.SimpleQueue``: ``submit``
(sync, on the trio thread) puts the operation on the queue, which wakes the thread if it is
parked; the thread takes every operation queued (up to ``max_batch_ops``), runs them as one
batch, and hands the outcome back to the trio thread with one ``TrioToken.run_sync_soon``,
which reports each operation's completion. The thread then goes straight on to what was
queued meanwhile, without waiting for the trio thread. A single writer therefore pays one
wake-up of the writer and one of trio per transaction, nothing per operation; a parked
writer costs nothing (it blocks in ``get``; no polling).

Measured against the design it replaced (a worker started per batch with
``trio.lowlevel.start_thread_soon``): see ``benchmarks/cluster/store_append.py``.

A store whose engine holds the interpreter lock through its synced write (the ``rocksdict``
binding does: a Python thread stalls for the whole write and its sync) gains nothing from
that thread, since the trio thread cannot run while it writes either; it pays the two
hand-offs alone. Such a store asks for ``writer="trio"``: the batches then run on the trio
thread, in a task of the pipeline's own (a trio system task, started with the first write),
which ``submit`` wakes when it is parked and which yields to the other tasks between two
batches, so what they submit meanwhile forms the next batch. Same order, batching and
reports; no thread and no hand-off.

Coalesced reports: an operation submitted with ``coalesce=True`` is not reported when the
operation after it, in the same batch, was also submitted with ``coalesce=True``: that one's
report stands for both (reports come in order). A caller that runs a costly round per report
(the runtime's flush round) so runs one per synced batch, not one per operation.

Invariant: operations are written, and completions reported, in submission order; a batch
holds at most ``max_batch_ops`` operations.
Invariant: after a batch fails, the pipeline is failed for good: what is pending, and what
is submitted later, fails with the same StorageError (the durable state is no longer known).
A batch that fails in the writer is its last: what was queued behind it is never written.
When the store's bookkeeping fails on the trio thread instead, a batch the writer had
already taken may still be written (and is reported failed, like a write cut by a crash).
Invariant: the writer thread ends with ``aclose``, after the batches it has taken; when the
trio run ends first, it ends at its next report. The writer task (``writer="trio"``) ends
with ``aclose`` too, or is cancelled with the run's other system tasks.
"""

from __future__ import annotations

import queue
import threading
from collections import deque
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
#: Put on the queue by ``aclose``: the writer ends when it takes it.
_STOP = object()


class WritePipeline(Generic[Op]):
    """Runs batches of operations through ``run_batch(ops) -> results`` (blocking, in the
    writer thread, one result per operation), then ``on_committed(ops, results)`` on the
    trio thread, then each operation's callback.

    ``writer``: ``"thread"`` (a writer thread; for engines that release the interpreter
    lock while they write) or ``"trio"`` (batches run on the trio thread; see the module
    docstring). ``max_batch_ops`` bounds a batch: operations beyond it wait for the
    following one.
    ``max_queued_ops`` bounds the pending operations for callers that ``wait_for_room``
    first (the async write methods of a store); ``submit`` itself never waits, so callers of
    a store's non-async path bound what they issue themselves (the runtime's in-flight
    window).
    """

    def __init__(self, name: str, run_batch: Callable[[list[Op]], list[Any]],
                 on_committed: Callable[[list[Op], list[Any]], None],
                 max_batch_ops: int = 4096, max_queued_ops: int = 16384,
                 writer: str = "thread") -> None:
        if writer not in ("thread", "trio"):
            raise ValueError(f"writer must be 'thread' or 'trio', got {writer!r}")
        self._name = name
        self._on_trio = writer == "trio"
        self._run_batch = run_batch
        self._on_committed = on_committed
        self._max_batch_ops = max_batch_ops
        self._max_queued_ops = max_queued_ops
        self._room_waiters: list[trio.Event] = []
        self._idle_waiters: list[trio.Event] = []
        #: submitted and not yet reported, in order: (op, done, coalesce)
        self._pending: deque[tuple[Op, Done, bool]] = deque()
        self._failure: BaseException | None = None
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        #: writer="trio": the writer task once started, and whether it is parked (waiting
        #: for a submit); ``_inline`` holds what it has not taken yet
        self._task: trio.lowlevel.Task | None = None
        self._task_parked = False
        self._task_ended: trio.Event | None = None
        self._inline: deque[Op] = deque()
        #: set on the trio thread when the pipeline fails or closes; the writer reads it
        #: before each batch and writes nothing more once it is set
        self._halted = False
        #: one synced batch, from the writer taking it to its outcome back on the trio
        #: thread: the store's transaction with its sync, and the hand-back
        self.sync_latency = LatencyHistogram()

    # -- state ------------------------------------------------------------------------------

    @property
    def failure(self) -> BaseException | None:
        return self._failure

    @property
    def busy(self) -> bool:
        return bool(self._pending)

    def queued_ops(self) -> list[Op]:
        """Operations submitted and not yet committed, in order."""
        return [entry[0] for entry in self._pending]

    def check(self) -> None:
        if self._failure is not None:
            raise StorageError(f"{self._name}: an earlier write failed ({self._failure}); "
                               "the store must be reopened") from self._failure

    # -- submitting ---------------------------------------------------------------------------

    def submit(self, op: Op, done: Done, coalesce: bool = False) -> None:
        """Queue ``op``; ``done(None, result)`` runs on the trio thread once it is durable, or
        ``done(error, None)``. Must be called from the trio thread, inside ``trio.run``.

        With ``coalesce``, ``done`` is skipped when the next operation of the same batch was
        submitted with ``coalesce`` too (its report covers this one; see the module
        docstring); a failure is still reported to every ``done``."""
        self.check()
        if self._halted:
            raise StorageError(f"{self._name}: the write pipeline is closed")
        self._pending.append((op, done, coalesce))
        if self._on_trio:
            self._inline.append(op)
            if self._task is None:
                self._task_ended = trio.Event()
                self._task = trio.lowlevel.spawn_system_task(
                    self._trio_writer, name=f"fastraft write {self._name}")
            elif self._task_parked:
                self._task_parked = False
                trio.lowlevel.reschedule(self._task)
            return
        if self._thread is None:
            self._start_writer(trio.lowlevel.current_trio_token())
        self._jobs.put(op)

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
        """Wait until fewer than ``max_queued_ops`` operations are pending (backpressure);
        returns at once in the common case, without a checkpoint."""
        while len(self._pending) >= self._max_queued_ops and self._failure is None:
            event = trio.Event()
            self._room_waiters.append(event)
            await event.wait()

    async def wait_idle(self) -> None:
        """Wait until nothing is pending."""
        while self.busy:
            event = trio.Event()
            self._idle_waiters.append(event)
            await event.wait()

    async def aclose(self) -> None:
        """Wait for what is pending, then stop the writer thread (idempotent)."""
        with trio.CancelScope(shield=True):
            await self.wait_idle()
            self._halted = True
            if self._task_parked:  # it sees _halted and ends
                self._task_parked = False
                trio.lowlevel.reschedule(self._task)
            if self._task_ended is not None:
                await self._task_ended.wait()
            thread, self._thread = self._thread, None
            if thread is not None:
                self._jobs.put(_STOP)
                await trio.to_thread.run_sync(thread.join)

    # -- the writer thread --------------------------------------------------------------------

    def _start_writer(self, token: trio.lowlevel.TrioToken) -> None:
        self._thread = threading.Thread(target=self._writer, args=(token,), daemon=True,
                                        name=f"fastraft write {self._name}")
        self._thread.start()

    def _writer(self, token: trio.lowlevel.TrioToken) -> None:
        jobs, limit = self._jobs, self._max_batch_ops
        while True:  # parked in get() while idle; ends on _STOP, a failure, or the run's end
            first = jobs.get()
            if first is _STOP or self._halted:
                return
            ops = [first]
            stopping = False
            for _ in range(limit - 1):  # bounded by max_batch_ops
                try:
                    op = jobs.get_nowait()
                except queue.Empty:
                    break
                if op is _STOP:
                    stopping = True
                    break
                ops.append(op)
            started = perf_counter()
            result = outcome.capture(self._run_batch, ops)
            try:
                token.run_sync_soon(self._finish, len(ops), result, started)
            except trio.RunFinishedError:
                return  # the trio run ended without closing the store: nobody to tell
            if stopping or isinstance(result, outcome.Error):
                return

    # -- the writer task (writer="trio") --------------------------------------------------------

    async def _trio_writer(self) -> None:
        try:
            await self._write_on_trio()
        finally:
            self._task_ended.set()

    async def _write_on_trio(self) -> None:
        inline, limit = self._inline, self._max_batch_ops
        while True:  # parked while idle; ends once halted (aclose, a failure) or cancelled
            while not inline:
                if self._halted:
                    return
                self._task_parked = True
                await trio.lowlevel.wait_task_rescheduled(self._abort_park)
            if self._halted:
                return
            ops = [inline.popleft() for _ in range(min(limit, len(inline)))]
            started = perf_counter()
            self._finish(len(ops), outcome.capture(self._run_batch, ops), started)
            # let the other tasks run (and submit: the next batch) before the next write
            await trio.lowlevel.cancel_shielded_checkpoint()

    def _abort_park(self, _raise_cancel) -> trio.lowlevel.Abort:
        self._task_parked = False
        return trio.lowlevel.Abort.SUCCEEDED

    # -- back on the trio thread ---------------------------------------------------------------

    def _finish(self, n: int, result: outcome.Outcome, started: float) -> None:
        if self._failure is not None:
            return  # a batch taken before the failure: its operations were failed then
        self.sync_latency.observe(perf_counter() - started)
        pending = self._pending
        taken = [pending.popleft() for _ in range(n)]  # bounded by the batch
        ops = [op for op, _, _ in taken]
        if isinstance(result, outcome.Error):
            self._fail(result.error, [done for _, done, _ in taken])
        else:
            try:
                self._on_committed(ops, result.value)
            except BaseException as e:  # the store's bookkeeping broke: stop it
                self._fail(e, [done for _, done, _ in taken])
            else:
                last = n - 1
                for i, ((_, done, coalesce), value) in enumerate(zip(taken, result.value)):
                    if coalesce and i < last and taken[i + 1][2]:
                        continue  # the next report covers this one
                    done(None, value)
        waiters, self._room_waiters = self._room_waiters, []
        for event in waiters:
            event.set()
        if not pending:
            waiters, self._idle_waiters = self._idle_waiters, []
            for event in waiters:
                event.set()

    def _fail(self, error: BaseException, dones: list[Done]) -> None:
        self._failure = error
        self._halted = True
        self._inline.clear()
        dones = dones + [done for _, done, _ in self._pending]
        self._pending.clear()
        for done in dones:
            done(error, None)
