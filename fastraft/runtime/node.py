"""The runtime: one task owns the engine, feeds it inputs in rounds and hands each command it
emits to its executor (``executors.py``: the log writer, the applier, a sender per peer, the
request waiting on a reply token, the caller waiting on an answer).

A round: every input queued since the last round (peers' requests and responses, storage
completions, admin and read requests), urgent ones first; ``tick(now)``; the latest log flush
reported; the client writes gathered since the last round as one ``propose``; then the
commands, each to its executor without waiting.

The engine task never awaits I/O, so a slow disk or peer delays only what depends on it.
Between rounds it sleeps until an input arrives or the engine's next timer (trio's clock, so
``trio.testing.MockClock`` drives time in tests).

Urgent inputs (Raft §5.6: broadcast time well below the election timeout): vote requests and
their answers, heartbeats (AppendEntries without entries) and TimeoutNow go to the input
queue's urgent lane, handled before the client work queued ahead of them.

Rounds run where the work arrives when that saves a task turn on the path of a write:

* a log flush completion is reported to the engine at once and the commands that emits are
  dispatched (``_on_flushed``, a flush round: nothing else, so it never splits the batch of
  inputs and writes the engine task's round gathers): a follower's acknowledgement, or the
  leader's commit and apply, leave without waiting for the engine task's next turn (inside a
  round, a store that completed synchronously is reported at the end of that round);
* an input that finds the engine task parked with nothing queued (an idle node) runs its
  round in the producer's task (``_inline_round``), so a follower's append starts in the
  turn that read the request; so does a client write that is the only one pending, after
  an apply that settled no other writer's write (one writer): its AppendLog and sends start
  in the client's own turn. A write among others waits for the engine task's round, so the
  writers an apply woke are still proposed as one batch (one AppendLog, one message per
  peer).

A round run outside the engine task wakes it only when it left work queued or moved the
engine's next timer before the deadline the task sleeps until.

Invariant: the engine is called on the trio thread only, by one round at a time (the engine
task's, a flush round or an inline round), never across an ``await``; each round dispatches
its commands before it ends.
Invariant: the input queue holds at most ``_MAX_INPUTS`` items: peers' messages are refused
(a request answered "no answer", a response dropped: Raft copes, §5.3): an ordinary one
when the queue holds ``_MAX_MESSAGE_INPUTS``, an urgent one when the urgent lane holds
``_MAX_URGENT_INPUTS`` (so a queue full of AppendEntries refuses no heartbeat or vote, and
strangers' urgent messages are bounded too), leaving the rest for completions, which the
engine's own commands bound.
"""

from __future__ import annotations

import logging

import trio

from ..core import Engine, LeaderTransferring, Role
from ..errors import ForwardToLeader, RaftShutdown
from ..messages import VoteResponse
from ..net.protocol import RESPONSE_TYPE
from ..reply import Reply
from ..types import LogId
from .applier import Applier
from .executors import CommandExecutors
from .guard_log import GuardLog
from .inbound import InboundReplies
from .log_writer import LogWriter, committed_log_id
from .metrics import MetricsWatch, RaftMetrics, ServerState
from .oplog import OperatorLog
from .peers import PeerSet, is_urgent
from .proposals import Proposal, Proposals, wake_in_slices
from .snapshot_reader import SnapshotReader
from .work_queue import WorkQueue

__all__ = ["RaftRuntime"]

log = logging.getLogger("fastraft.runtime")

_STATE = {Role.LEADER: ServerState.LEADER, Role.FOLLOWER: ServerState.FOLLOWER,
          Role.CANDIDATE: ServerState.CANDIDATE, Role.PRE_CANDIDATE: ServerState.CANDIDATE,
          Role.LEARNER: ServerState.LEARNER}
#: Inputs taken per round at most, so timers and commands keep flowing under a flood.
_MAX_INPUTS_PER_ROUND = 4096
#: The input queue's bound, and the shares of it peers' ordinary and urgent messages may fill.
_MAX_INPUTS = 65536
_MAX_MESSAGE_INPUTS = 49152
_MAX_URGENT_INPUTS = 8192
#: Client writers woken per scheduler pass after an apply (see ``_on_applied``).
_WAKE_SLICE = 256


class RaftRuntime:
    """Drives ``engine`` with the stores and the network, in ``nursery``; see the module
    docstring. Built and run by ``open_raft``; applications use the ``Raft`` handle."""

    def __init__(self, engine: Engine, *, log_store, state_machine, network, nursery: trio.Nursery,
                 request_timeout_s: float, snapshot_timeout_s: float, max_pending_writes: int,
                 max_apply_entries: int) -> None:
        self.engine = engine
        self.id = engine.id
        self._nursery = nursery
        self._inputs = WorkQueue(_MAX_INPUTS)
        self._flushed: LogId | None = None
        self._in_round = False  # the engine's commands are being produced or dispatched
        self._parked_until: float | None = None  # the parked engine task's deadline
        self.refused_inputs = 0  #: peers' messages refused because the input queue was full
        self._reads: list[Reply] = []  # ensure_linearizable calls gathered for the next round
        self.proposals = Proposals(max_pending_writes)
        self.inbound = InboundReplies()
        self.watch = MetricsWatch(self.metrics)
        self.guard_log = GuardLog(engine.id)
        self.closed = trio.Event()
        self.fatal: BaseException | None = None
        self.log_store = log_store
        self.state_machine = state_machine
        self.log_writer = LogWriter(log_store, on_vote_saved=self._on_vote_saved,
                                    on_flushed=self._on_flushed, on_failed=self._on_failed,
                                    committed_id=lambda: committed_log_id(engine))
        self.applier = Applier(state_machine, log_store, on_applied=self._on_applied,
                               on_read_ready=lambda cmd: self.executors.on_read_ready(cmd),
                               on_snapshot_built=lambda m: self.post(engine.on_snapshot_built, m),
                               on_snapshot_installed=self._on_snapshot_installed,
                               on_failed=self._on_failed, max_apply_entries=max_apply_entries)
        self.snapshots = SnapshotReader(state_machine)
        self.peers = PeerSet(self.id, network, nursery, self._on_peer_response,
                             timeout_s=request_timeout_s, snapshot_timeout_s=snapshot_timeout_s)
        self.oplog = OperatorLog(self, unreachable_after_s=engine.config.election_timeout_max_s)
        self.executors = CommandExecutors(
            engine, nursery=nursery, log_store=log_store, log_writer=self.log_writer,
            applier=self.applier, snapshots=self.snapshots, peers=self.peers,
            inbound=self.inbound, proposals=self.proposals, post=self.post,
            on_failed=self._on_failed)

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        """Start the tasks (the engine's first commands, such as re-applying committed entries,
        are executed in the first round)."""
        self.peers.update(dict(self.engine.membership.membership.nodes))
        self._nursery.start_soon(self.log_writer.run)
        self._nursery.start_soon(self.applier.run)
        self._nursery.start_soon(self._run)
        self.oplog.started(self.log_store, self.state_machine)

    def shut_down(self, error: BaseException | None = None) -> None:
        """Stop serving: every waiting caller gets ``error`` (RaftShutdown by default), the
        tasks are cancelled by the caller's nursery. Idempotent."""
        if self.closed.is_set():
            return
        error = error or RaftShutdown("the node shut down")
        self.closed.set()
        self.peers.stop_all()
        self.proposals.fail_all(error)
        self.inbound.fail_all(error)
        self.executors.fail_all(error)
        for reply in self._reads:
            reply.set_error(error)
        self._reads = []
        for fn, args in self._inputs.clear():
            if fn == self._on_inbound:
                args[1].set_error(error)
        self.watch.close()
        self.oplog.stopped(self.fatal)

    def _on_failed(self, error: BaseException) -> None:
        """A store failed: Raft cannot go on over storage that lost a write. Stop the node."""
        if self.fatal is None:
            log.error("node %d stops: storage failed: %s", self.id, error)
            self.fatal = error
        self.shut_down(error)

    def check_open(self) -> None:
        if self.closed.is_set():
            raise self.fatal or RaftShutdown("the node has shut down")

    # -- inputs (any task) ----------------------------------------------------------------

    def post(self, fn, *args) -> None:
        """Run ``fn(*args)`` in a round now if the engine task is idle, else queue it for the
        engine task's next round."""
        if self.closed.is_set():
            return
        if self._idle():
            self._inline_round(fn, args)
        else:
            self._inputs.put((fn, args))

    def submit_request(self, request) -> Reply:
        """A peer's request: the reply resolves with the engine's response (or None)."""
        self.check_open()
        t = type(request)
        if t not in RESPONSE_TYPE:
            raise TypeError(f"{t.__name__} is not a request message")
        reply = Reply()
        inputs = self._inputs
        if self._idle():
            self._inline_round(self._on_inbound, (request, reply))
        elif is_urgent(request):
            # not refused for the client work queued ahead (Raft §5.6); bounded on its own
            if inputs.urgent_len >= _MAX_URGENT_INPUTS:
                self.refused_inputs += 1
                reply.no_answer(f"{inputs.urgent_len} urgent inputs already wait for the engine")
            else:
                inputs.put_urgent((self._on_inbound, (request, reply)))
        elif len(inputs) >= _MAX_MESSAGE_INPUTS:
            self.refused_inputs += 1
            reply.no_answer(f"{len(inputs)} inputs already wait for the engine")
        else:
            inputs.put((self._on_inbound, (request, reply)))
        return reply

    def submit_write(self, proposal: Proposal) -> None:
        proposals = self.proposals
        proposals.queue(proposal)
        # An inline round only for a lone writer: the only write pending, and the latest
        # apply settled no other writer's write. After an apply that woke many writers, the
        # first to write again would otherwise go out alone, one round, one AppendEntries per
        # peer and one sync per follower ahead of the batch of the others (at 256 writes in
        # flight that cost a fifth of the throughput and a third more CPU per write).
        if (len(proposals) == proposal.count and proposals.last_settled <= 1
                and self._idle()):
            self._inline_round()
        else:
            self._inputs.wake_consumer()

    def submit_admin(self, call, *args) -> Reply:
        """Run the engine's admin ``call(request_id, *args)``; the reply gets its Respond."""
        self.check_open()
        reply = Reply()
        self.post(call, self.executors.expect_admin(reply), *args)
        return reply

    def submit_read(self) -> Reply:
        """A linearizable read point; reads gathered in one round share one ReadIndex."""
        self.check_open()
        reply = Reply()
        self._reads.append(reply)
        self._inputs.wake_consumer()
        return reply

    def _on_inbound(self, request, reply: Reply) -> None:
        token = self.inbound.expect(reply)
        if token is not None:
            # answered by the engine's Respond (SendMessage with reply_to) or NoAnswer, also
            # when core/guard.py drops it, so forged sender ids leave nothing waiting behind
            self.engine.step(request, reply_to=token)

    def _on_peer_response(self, response) -> None:
        inputs = self._inputs
        if self.closed.is_set():
            return
        if self._idle():
            self._inline_round(self.engine.step, (response,))
        elif type(response) is VoteResponse and inputs.urgent_len < _MAX_URGENT_INPUTS:
            inputs.put_urgent((self.engine.step, (response,)))
        elif len(inputs) >= _MAX_MESSAGE_INPUTS or type(response) is VoteResponse:
            self.refused_inputs += 1  # lost like any message; the engine retries (Raft §5.3)
        else:
            inputs.put((self.engine.step, (response,)))

    def _on_vote_saved(self, vote) -> None:
        self.post(self.engine.on_vote_saved, vote)

    def _on_flushed(self, log_id: LogId) -> None:
        # completions come in order: the latest covers the others
        if self._in_round or self.closed.is_set():
            self._flushed = log_id  # reported at the end of this round (or never: closed)
            return
        # A flush round: what waited for this flush (a follower's acknowledgement, the
        # leader's commit and the applies it allows) leaves now, not a task turn later.
        self._in_round = True
        try:
            self.engine.on_log_flushed(log_id)
            self.executors.execute_all()
        finally:
            self._in_round = False
        self._after_inline_round()

    def _idle(self) -> bool:
        """Whether the engine task is parked with nothing to do and no round is under way."""
        return self._inputs.consumer_parked and not self._in_round and not self.closed.is_set()

    def _inline_round(self, fn=None, args=()) -> None:
        """``fn(*args)`` (an input), then a round, in the calling task (see the module
        docstring); the engine task is woken if work or an earlier timer is left for it."""
        self._in_round = True
        try:
            if fn is not None:
                fn(*args)
            self._round()
        finally:
            self._in_round = False
        self._after_inline_round()

    def _after_inline_round(self) -> None:
        self._after_round()
        parked_until = self._parked_until
        if parked_until is not None and (
                self._inputs or self._flushed is not None or self.proposals.has_queued
                or self._reads or self.engine.next_deadline() < parked_until):
            self._inputs.wake_consumer()

    # -- the engine task --------------------------------------------------------------------

    async def _run(self) -> None:
        eng = self.engine
        inputs = self._inputs
        while not self.closed.is_set():  # one round per wake-up; ends at shutdown (or cancel)
            if not (inputs or self._flushed or self.proposals.has_queued or self._reads):
                self._parked_until = deadline = eng.next_deadline()
                try:
                    with trio.move_on_at(deadline):
                        await inputs.wait()
                finally:
                    self._parked_until = None
            else:
                await trio.lowlevel.checkpoint()  # let the executors run between busy rounds
            if self.closed.is_set():
                return
            self._in_round = True
            try:
                self._round()
            finally:
                self._in_round = False
            self._after_round()

    def _round(self) -> None:
        eng = self.engine
        now = trio.current_time()
        # What arrived while this task waited for its turn arrived before now: hand it over
        # first, then let time move. Ticking first would, after a busy stretch, run the
        # leader's check-quorum before the acknowledgements sitting in the queue and make a
        # healthy leader step down (thesis §6.2).
        for fn, args in self._inputs.take_batch(_MAX_INPUTS_PER_ROUND):
            fn(*args)
        eng.tick(now)
        if self._flushed is not None:
            flushed, self._flushed = self._flushed, None
            eng.on_log_flushed(flushed)
        if self._reads:
            self._start_read()
        if self.proposals.has_queued:
            self._propose()
        self.executors.execute_all()
        for _ in range(4):  # a store that completed during dispatch (bounded: it is rare)
            if self._flushed is None:
                break
            flushed, self._flushed = self._flushed, None
            eng.on_log_flushed(flushed)
            self.executors.execute_all()

    def _after_round(self) -> None:
        self.guard_log.after_round(self.engine)
        self.watch.notify()
        self.oplog.after_round()

    def _propose(self) -> None:
        props, payloads = self.proposals.take_queued()
        eng = self.engine
        try:
            first = eng.propose(payloads)
        except (ForwardToLeader, LeaderTransferring) as e:
            self.proposals.refuse(props, e)
        except TypeError:
            # some call carried a payload that is not bytes: find it, keep the others
            for p in props:
                try:
                    first = eng.propose(p.payloads)
                except (TypeError, ForwardToLeader, LeaderTransferring) as e:
                    self.proposals.refuse([p], e)
                else:
                    self.proposals.register([p], first.index, first.term)
        else:
            self.proposals.register(props, first.index, first.term)

    def _start_read(self) -> None:
        reads, self._reads = self._reads, []
        self.engine.read_index(self.executors.expect_reads(reads))

    # -- state-machine callbacks (applier task) ---------------------------------------------

    async def _on_applied(self, entries: list, responses: list) -> None:
        settled = self.proposals.on_applied(entries, responses, self.engine.forward_to_leader())
        self.watch.notify()
        await wake_in_slices(settled, _WAKE_SLICE)

    def _on_snapshot_installed(self, meta) -> None:
        self.post(self._adopt_snapshot, meta)

    def _adopt_snapshot(self, meta) -> None:
        self.engine.on_snapshot_installed(meta)
        lid = meta.last_log_id
        if lid is not None:
            self.proposals.on_snapshot_installed(lid.index)
            self.applier.snapshot_adopted(lid)

    # -- metrics ----------------------------------------------------------------------------

    def metrics(self) -> RaftMetrics:
        eng = self.engine
        lg = eng.log
        purged = LogId(lg.purged_term, lg.purged_index) if lg.purged_index else None
        replication = {}
        if eng.role == Role.LEADER:
            p = eng.progress
            replication = {peer: p.match_index(peer) for peer in p.node_ids() if peer != self.id}
        snap = eng.snapshot
        return RaftMetrics(
            id=self.id,
            state=ServerState.SHUTDOWN if self.closed.is_set() else _STATE[eng.role],
            current_term=eng.term,
            vote=eng.vote,
            last_log_index=lg.last_index,
            last_applied=self.applier.last_applied,
            committed=eng.committed,
            snapshot=snap.last_log_id if snap is not None else None,
            purged=purged,
            current_leader=eng.leader_id or None,
            membership=eng.membership,
            replication=replication,
            dropped_messages=dict(eng.dropped),
            committed_conflicts=eng.committed_conflicts,
        )

