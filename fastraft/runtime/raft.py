"""The embedding API: ``open_raft`` opens a node inside the caller's trio program, and the
``Raft`` handle is how the application talks to it (shaped after openraft's ``Raft``).

    async with fastraft.open_raft(1, Config(), log_store=store, state_machine=sm,
                                  network=TcpNetwork()) as raft:
        await raft.initialize({1: Node("127.0.0.1:22001"), 2: ..., 3: ...})
        response = await raft.client_write(b"payload")

The node runs until the block exits; leaving it shuts the node down: every task it started
ends, its peers' connections close, and the stores it was given are closed (``open_raft``
owns them from the start). A storage failure stops the node at once (every pending and later
call fails with the StorageError) and is raised again when the block exits.
"""

from __future__ import annotations

import logging
import random
import sys
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator, Callable, Iterable, Mapping, cast

import trio

from ..core import Config, Engine
from ..errors import FastraftError
from ..messages import (AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest,
                        InstallSnapshotResponse, Message, TimeoutNowRequest, TimeoutNowResponse,
                        VoteRequest, VoteResponse)
from ..net.protocol import PipelinedHandler, RaftNetwork
from ..reply import Reply
from ..storage.protocols import LogStore, StateMachine
from ..types import ClientWriteResponse, ClientWriteResponses, LogId, Node
from .metrics import RaftMetrics, Wait
from .node import RaftRuntime
from .proposals import Proposal
from .startup import load_engine_state
from .stats import NodeStats, take_stats

if sys.version_info < (3, 11):
    from exceptiongroup import BaseExceptionGroup

__all__ = ["Raft", "Trigger", "open_raft"]

log = logging.getLogger("fastraft.runtime")


class Trigger:
    """Actions the engine would otherwise take on its own schedule (openraft's ``trigger()``)."""

    def __init__(self, runtime: RaftRuntime) -> None:
        self._rt = runtime

    def _post(self, fn: Callable[..., None], *args: object) -> None:
        self._rt.check_open()
        self._rt.post(fn, *args)

    async def elect(self) -> None:
        """Campaign now, as if the election timeout fired (no-op on a leader or learner)."""
        self._post(self._rt.engine.trigger_elect)

    async def heartbeat(self) -> None:
        """Send a heartbeat round now (leader only)."""
        self._post(self._rt.engine.trigger_heartbeat)

    async def snapshot(self) -> None:
        """Build a snapshot now."""
        self._post(self._rt.engine.trigger_snapshot)

    async def purge_log(self, upto: int) -> None:
        """Purge the log up to ``upto``, capped at the latest snapshot (Raft §7)."""
        self._post(self._rt.engine.trigger_purge, upto)


class Raft(PipelinedHandler):
    """A running node. Made by ``open_raft``; valid until its block exits.

    Every call may raise ``RaftShutdown`` once the node stops (or the StorageError that
    stopped it).
    """

    def __init__(self, runtime: RaftRuntime) -> None:
        self._rt = runtime
        self.id = runtime.id
        self.trigger = Trigger(runtime)

    # -- client writes ----------------------------------------------------------------------

    async def client_write(self, payload: bytes) -> ClientWriteResponse:
        """Append ``payload`` to the log and, once it is committed and applied here, return
        its ``ClientWriteResponse``: the entry's log id and the state machine's response.

        Raises ForwardToLeader (this node does not lead; nothing was appended; resend to
        ``leader_id`` at ``leader_node``), LeaderTransferring (leadership is moving; retry),
        OutcomeUnknown (leadership was lost after the append: the write may or may not
        commit), TypeError if ``payload`` is not bytes.
        """
        if type(payload) is not bytes:
            if not isinstance(payload, (bytearray, memoryview)):
                raise TypeError(f"payload must be bytes, not {type(payload).__name__}")
            payload = bytes(payload)
        proposal = Proposal([payload], many=False)
        data = await self._write(proposal)
        return ClientWriteResponse._at(proposal.term, proposal.first_index, data)

    async def client_write_many(self, payloads: Iterable[bytes]) -> ClientWriteResponses:
        """Append every payload (consecutive entries, in order) and return their
        ``ClientWriteResponse``s, in order, once all are applied (a read-only sequence). One
        call costs one proposal round however many payloads it carries: the way to batch. Errors as ``client_write``, for the whole call
        (a non-bytes payload fails this call only, with TypeError)."""
        batch = list(payloads)
        if not batch:
            return ClientWriteResponses(0, 0, [])
        proposal = Proposal(batch, many=True)
        data = await self._write(proposal)
        return ClientWriteResponses(proposal.term, proposal.first_index, data)

    async def _write(self, proposal: Proposal) -> Any:
        """The state machine's answer (one, or a list for ``many``) once ``proposal`` is
        applied; its ``term`` and ``first_index`` are set by then."""
        # Leadership is checked once, by the engine when the write is proposed: a follower
        # refuses it there with ForwardToLeader, nothing appended.
        rt = self._rt
        rt.check_open()
        await rt.proposals.wait_for_room(proposal.count)
        rt.check_open()
        rt.submit_write(proposal)
        return await proposal.outcome()

    # -- reads ------------------------------------------------------------------------------

    async def ensure_linearizable(self) -> int:
        """Wait until a read of this node's state machine is linearizable (ReadIndex, thesis
        §6.4): leadership confirmed by a quorum after this call, and everything committed
        before it applied here. Returns the read index. ForwardToLeader on a non-leader."""
        return cast(int, await self._rt.submit_read().result())

    # -- admin ------------------------------------------------------------------------------

    async def _admin(self, call: Callable[..., None], *args: object) -> Any:
        return await self._rt.submit_admin(call, *args).result()

    async def initialize(self, nodes: Mapping[int, Node]) -> LogId:
        """Make this brand-new node the first member of a cluster of ``nodes`` (all voters).
        MembershipError if it is already initialized."""
        return cast(LogId, await self._admin(self._rt.engine.initialize, dict(nodes)))

    async def add_learner(self, node_id: int, node: Node, blocking: bool = True) -> LogId:
        """Leader: add ``node_id`` at ``node`` as a learner (or change a member's address);
        with ``blocking``, return only once it has caught up (thesis §4.2.1)."""
        return cast(LogId, await self._admin(self._rt.engine.add_learner, node_id, node, blocking))

    async def change_membership(self, voters: Iterable[int], retain: bool = False) -> LogId:
        """Leader: make ``voters`` the voter set, by joint consensus (Raft §6). Removed voters
        stay as learners with ``retain``, else leave."""
        return cast(LogId, await self._admin(self._rt.engine.change_membership, frozenset(voters), retain))

    async def remove_learners(self, node_ids: Iterable[int]) -> LogId:
        """Leader: drop the learners ``node_ids`` from the membership (Raft §6); returns once
        that committed. Voters are refused (MembershipError): ``change_membership`` removes
        them."""
        return cast(LogId, await self._admin(self._rt.engine.remove_learners, frozenset(node_ids)))

    async def transfer_leader(self, node_id: int) -> None:
        """Leader: hand leadership to the voter ``node_id`` (thesis §3.10); returns once it
        campaigned. TransferFailed if it did not take over in time."""
        await self._admin(self._rt.engine.transfer_leader, node_id)

    # -- observing --------------------------------------------------------------------------

    def metrics(self) -> RaftMetrics:
        """A snapshot of this node's state, taken now."""
        return self._rt.metrics()

    def stats(self) -> NodeStats:
        """Counters and latency histograms since the node opened (``NodeStats``)."""
        return take_stats(self._rt)

    def wait(self, timeout_s: float) -> Wait:
        """Conditions to wait for on this node's metrics, each within ``timeout_s``."""
        return Wait(self._rt.watch, timeout_s)

    async def wait_closed(self) -> None:
        """Return once the node has shut down (``serve_raft_tcp`` stops with it)."""
        await self._rt.closed.wait()

    # -- inbound RPCs (for networks; applications serving Raft themselves call these) ------

    async def submit_request(self, request: Message) -> Reply:
        """Queue a peer's request now, in call order, and return the reply to wait on (the
        pipelining form of ``handle_*`` that ``serve_raft_tcp`` uses)."""
        return self._rt.submit_request(request)

    async def _handle(self, request: Message) -> Any:
        return await self._rt.submit_request(request).result()

    async def handle_append_entries(self, req: AppendEntriesRequest) -> AppendEntriesResponse | None:
        """A leader's AppendEntries: the response to send back, or None when this node does
        not answer it (it arrived while a snapshot is installed, say)."""
        return cast("AppendEntriesResponse | None", await self._handle(req))

    async def handle_vote(self, req: VoteRequest) -> VoteResponse | None:
        return cast("VoteResponse | None", await self._handle(req))

    async def handle_install_snapshot(self, req: InstallSnapshotRequest) -> InstallSnapshotResponse | None:
        return cast("InstallSnapshotResponse | None", await self._handle(req))

    async def handle_timeout_now(self, req: TimeoutNowRequest) -> TimeoutNowResponse | None:
        return cast("TimeoutNowResponse | None", await self._handle(req))


@asynccontextmanager
async def open_raft(node_id: int, config: Config | None = None, *, log_store: LogStore,
                    state_machine: StateMachine, network: RaftNetwork, seed: int | None = None,
                    request_timeout_s: float = 1.0, snapshot_timeout_s: float = 10.0,
                    max_pending_writes: int = 100_000,
                    max_apply_entries: int = 8192) -> AsyncIterator[Raft]:
    """Open node ``node_id`` and yield its ``Raft`` handle; see the module docstring.

    ``config`` is the engine's (``fastraft.core.Config``, validated: ConfigError). The node
    owns ``log_store`` and ``state_machine`` from now on and closes them on exit.
    ``network`` gives the clients to reach peers. ``seed`` drives the randomized election
    timeouts (default: random). ``request_timeout_s`` bounds each request to a peer
    (``snapshot_timeout_s`` each snapshot chunk); ``max_pending_writes`` bounds the entries
    client writes may have in flight (further writes wait); ``max_apply_entries`` bounds one
    call to the state machine's ``apply``.
    """
    config = (config if config is not None else Config()).validate()
    if request_timeout_s <= 0 or snapshot_timeout_s <= 0 or max_pending_writes < 1 or max_apply_entries < 1:
        raise ValueError("timeouts must be > 0 and bounds >= 1")
    if seed is None:
        seed = random.SystemRandom().randrange(1 << 63)
    rt = None
    try:
        state = await load_engine_state(log_store, state_machine)
        engine = Engine(node_id, config, seed=seed, state=state, now=trio.current_time())
        async with trio.open_nursery() as nursery:
            rt = RaftRuntime(engine, log_store=log_store, state_machine=state_machine,
                             network=network, nursery=nursery,
                             request_timeout_s=request_timeout_s,
                             snapshot_timeout_s=snapshot_timeout_s,
                             max_pending_writes=max_pending_writes,
                             max_apply_entries=max_apply_entries)
            # what the state machine holds now, re-applies included (metrics read it)
            rt.applier.last_applied, _ = await state_machine.applied_state()
            rt.start()
            try:
                yield Raft(rt)
            finally:
                rt.shut_down()
                nursery.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        # the block's own error (or the node's) comes out alone, not wrapped by our nursery
        if len(group.exceptions) == 1:
            raise group.exceptions[0] from None
        raise
    finally:
        with trio.CancelScope(shield=True):
            if rt is not None:
                rt.snapshots.close()
            await _close_quietly(log_store, state_machine)
    if rt is not None and rt.fatal is not None:
        raise rt.fatal


async def _close_quietly(*stores: LogStore | StateMachine) -> None:
    for store in stores:
        try:
            await store.aclose()
        except FastraftError as e:
            log.warning("closing %s failed: %s", type(store).__name__, e)
