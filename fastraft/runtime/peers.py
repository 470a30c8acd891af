"""Outbound messages: one sender per peer, so a slow or dead peer never holds up the others.

Each ``PeerSender`` owns the client for its peer and runs two tasks: the *sender* takes the
engine's messages for that peer in order and starts each request on the client (requests
started in order leave in order, so pipelined AppendEntries reach the follower in order); the
*collector* waits for the replies, each until its own deadline, and hands every response to
the engine. Failures and timeouts are dropped silently: the engine treats a lost message as
lost and retries on its own schedule (Raft §5.3).

Bounds: at most ``max_queued`` messages wait to be started (when full the oldest is dropped:
a peer that cannot keep up loses messages, it does not grow memory) and at most
``max_in_flight`` requests wait for replies (then the sender waits, which fills the queue).

``PeerSet`` keeps one sender per member of the membership, starting and stopping senders as
the membership (or a member's address) changes.
"""

from __future__ import annotations

import logging
from collections import deque
from typing import Callable

import trio

from ..messages import InstallSnapshotRequest, Message
from ..net.protocol import NetworkError, RaftNetwork, Reply
from ..types import Node

__all__ = ["PeerSender", "PeerSet"]

log = logging.getLogger("fastraft.runtime.peers")


class PeerSender:
    """Sends one node's messages to one peer; see the module docstring."""

    def __init__(self, target_id: int, node: Node, network: RaftNetwork,
                 on_response: Callable[[Message], None], *, timeout_s: float,
                 snapshot_timeout_s: float, max_queued: int = 4096, max_in_flight: int = 1024) -> None:
        self.target_id = target_id
        self.node = node
        self._network = network
        self._on_response = on_response
        self._timeout_s = timeout_s
        self._snapshot_timeout_s = snapshot_timeout_s
        self._queue: deque[Message] = deque(maxlen=max_queued)
        self._wake = trio.Event()
        self._max_in_flight = max_in_flight
        self._scope = trio.CancelScope()
        self.sent = 0  #: requests started
        self.failed = 0  #: requests that ended without a response (error or timeout)
        self.dropped = 0  #: messages dropped from a full queue

    def send(self, msg: Message) -> None:
        """Queue ``msg`` for the peer; never blocks."""
        q = self._queue
        if len(q) == q.maxlen:
            self.dropped += 1  # the deque drops the oldest on append
        q.append(msg)
        self._wake.set()

    def stop(self) -> None:
        self._scope.cancel()

    async def run(self) -> None:
        """Run until ``stop``: connect lazily, send, collect."""
        with self._scope:
            replies_send, replies_recv = trio.open_memory_channel(self._max_in_flight)
            async with self._network.client(self.target_id, self.node) as client:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._collect, replies_recv)
                    await self._send_loop(client, replies_send)

    async def _send_loop(self, client, replies: trio.MemorySendChannel) -> None:
        q = self._queue
        while True:  # until cancelled by stop()
            if not q:
                self._wake = trio.Event()
                await self._wake.wait()
                continue
            msg = q.popleft()
            timeout = (self._snapshot_timeout_s if type(msg) is InstallSnapshotRequest
                       else self._timeout_s)
            deadline = trio.current_time() + timeout
            reply = None
            with trio.move_on_at(deadline):
                try:
                    reply = await client.start(msg)
                except NetworkError as e:
                    self.failed += 1
                    log.debug("to node %d: %s", self.target_id, e)
                    continue
            if reply is None:
                self.failed += 1
                continue
            self.sent += 1
            await replies.send((reply, deadline))

    async def _collect(self, replies: trio.MemoryReceiveChannel) -> None:
        async for reply, deadline in replies:
            reply: Reply
            response = None
            with trio.move_on_at(deadline):
                try:
                    response = await reply.result()
                except NetworkError as e:
                    log.debug("to node %d: %s", self.target_id, e)
            if response is None:
                if not reply.done:
                    self.failed += 1
                continue
            self._on_response(response)


class PeerSet:
    """One ``PeerSender`` per peer of the membership, run in ``nursery``."""

    def __init__(self, self_id: int, network: RaftNetwork, nursery: trio.Nursery,
                 on_response: Callable[[Message], None], **sender_options) -> None:
        self._self_id = self_id
        self._network = network
        self._nursery = nursery
        self._on_response = on_response
        self._options = sender_options
        self.senders: dict[int, PeerSender] = {}

    def update(self, nodes: dict[int, Node]) -> None:
        """Make the senders match ``nodes`` (the membership's members, this node excluded):
        start new ones, stop those of members that left or moved."""
        for peer, sender in list(self.senders.items()):
            if nodes.get(peer) != sender.node:
                sender.stop()
                del self.senders[peer]
        for peer, node in nodes.items():
            if peer != self._self_id and peer not in self.senders:
                sender = PeerSender(peer, node, self._network, self._on_response, **self._options)
                self.senders[peer] = sender
                self._nursery.start_soon(sender.run)

    def send(self, to: int, msg: Message) -> bool:
        """Queue ``msg`` for ``to``; False when ``to`` is not a member (message dropped)."""
        sender = self.senders.get(to)
        if sender is None:
            return False
        sender.send(msg)
        return True

    def stop_all(self) -> None:
        for sender in self.senders.values():
            sender.stop()
        self.senders.clear()
