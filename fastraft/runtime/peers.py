"""Outbound messages: one sender per peer, so a slow or dead peer never holds up the others.

Each ``PeerSender`` owns the client for its peer and takes the engine's messages for it in
order. Responses go to the engine as they arrive; failures and timeouts are dropped silently
(the engine treats a lost message as lost and retries on its own schedule, Raft §5.3), and a
request whose response is late never delays the responses behind it.

* A pipelining client (``RaftClient.pipelined``, as TCP): each request is started in order
  (so AppendEntries reach the follower in order), its reply calls back when it resolves,
  and an expiry task cancels the replies whose deadline passed. When nothing is queued or
  being started, ``send`` starts the request itself (``start_nowait``): one task switch
  less per message, which on a single writer's path is a good share of its latency.
* Any other client: each request runs in a task of its own (at most ``max_in_flight`` at
  once), bounded by its deadline.

Priority (Raft §5.6: broadcast time well below the election timeout): heartbeats
(AppendEntries without entries, sent at the follower's match index, so they may overtake the
entries queued before them), vote requests and TimeoutNow are started at once whenever the
client can take them, and otherwise wait in the queue's urgent lane, ahead of queued entries.

Bounds: at most ``max_queued`` messages wait to be sent (when full the oldest ordinary one is
dropped: a peer that cannot keep up loses messages, it does not grow memory) and at most
``max_in_flight`` requests wait for replies (then the sender waits, which fills the queue).

``PeerSet`` keeps one sender per member of the membership, starting and stopping senders as
the membership (or a member's address) changes.
"""

from __future__ import annotations

import logging
from typing import Callable

import trio

from ..messages import (AppendEntriesRequest, InstallSnapshotRequest, Message,
                        TimeoutNowRequest, VoteRequest)
from ..errors import NetworkError
from ..net.protocol import RaftNetwork
from ..reply import Reply
from ..types import Node
from .work_queue import WorkQueue

__all__ = ["PeerSender", "PeerSet"]

log = logging.getLogger("fastraft.runtime.peers")

#: Replies tracked for expiry at most: more than any sender starts within one timeout.
_MAX_EXPIRING = 1 << 20


def is_urgent(msg: Message) -> bool:
    """Whether ``msg`` keeps a leader in place or elects one (see the module docstring)."""
    t = type(msg)
    return t is VoteRequest or t is TimeoutNowRequest or (
        t is AppendEntriesRequest and not msg.entries)


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
        self._queue = WorkQueue(max_queued)
        self._slots = trio.Semaphore(max_in_flight)  # released by whichever task ends a request
        self._expiring = WorkQueue(_MAX_EXPIRING)  # (deadline, reply) of pipelined requests
        self._scope = trio.CancelScope()
        self._client = None  # the pipelining client, once run() opened it
        self._starting = False  # run() holds a message taken from the queue, not yet started
        self.sent = 0  #: requests started
        self.failed = 0  #: requests that ended without a response (error or timeout)
        self.answered = 0  #: requests the peer answered
        self.dropped = 0  #: messages dropped from a full queue

    def send(self, msg: Message) -> None:
        """Queue ``msg`` for the peer (or start it at once); never blocks."""
        q = self._queue
        if is_urgent(msg):
            if (self._client is None or not self._start_now(msg)) and \
                    q.put_urgent(msg) is not None:
                self.dropped += 1
            return
        if not q and not self._starting and self._client is not None and self._start_now(msg):
            return
        if q.put_dropping_oldest(msg) is not None:
            self.dropped += 1

    def stop(self) -> None:
        self._scope.cancel()

    def _deadline(self, msg: Message) -> float:
        timeout = (self._snapshot_timeout_s if type(msg) is InstallSnapshotRequest
                   else self._timeout_s)
        return trio.current_time() + timeout

    async def _next(self) -> Message:
        q = self._queue
        while not q:  # until a message is queued (or stop() cancels)
            await q.wait()
        return q.take()

    async def run(self) -> None:
        """Run until ``stop``: connect lazily, send, deliver responses."""
        with self._scope:
            async with self._network.client(self.target_id, self.node) as client:
                async with trio.open_nursery() as nursery:
                    if client.pipelined:
                        nursery.start_soon(self._expire)
                        await self._send_pipelined(client)
                    else:
                        await self._send_concurrently(client, nursery)

    # -- pipelining clients ------------------------------------------------------------------

    async def _send_pipelined(self, client) -> None:
        self._client = client
        try:
            while True:  # until cancelled by stop()
                msg = await self._next()
                self._starting = True  # send() must not overtake msg
                try:
                    await self._slots.acquire()
                    deadline = self._deadline(msg)
                    reply = None
                    with trio.move_on_at(deadline):
                        try:
                            reply = await client.start(msg)
                        except NetworkError as e:
                            log.debug("to node %d: %s", self.target_id, e)
                finally:
                    self._starting = False
                if reply is None:
                    self.failed += 1
                    self._slots.release()
                    continue
                self._track(reply, deadline)
        finally:
            self._client = None

    def _start_now(self, msg: Message) -> bool:
        """Start ``msg`` without the sender task, if the client can at once; False if not
        (nothing happened: the caller queues it)."""
        try:
            self._slots.acquire_nowait()
        except trio.WouldBlock:
            return False
        try:
            reply = self._client.start_nowait(msg)
        except Exception:  # noqa: BLE001 - the queued road will meet (and report) it again
            reply = None
        if reply is None:
            self._slots.release()
            return False
        self._track(reply, self._deadline(msg))
        return True

    def _track(self, reply: Reply, deadline: float) -> None:
        self.sent += 1
        self._expiring.put((deadline, reply))
        reply.on_done(self._on_reply)

    def _on_reply(self, reply: Reply) -> None:
        self._slots.release()
        if reply.error is not None:
            self.failed += 1
            log.debug("to node %d: %s", self.target_id, reply.error)
            return
        self.answered += 1
        if reply.value is not None:
            self._on_response(reply.value)

    async def _expire(self) -> None:
        """Cancel the replies whose deadline passed (they release their slot doing so)."""
        q = self._expiring
        while True:  # until cancelled by stop()
            while q and q.peek()[1].done:
                q.take()
            if not q:
                await q.wait()
                continue
            deadline, reply = q.peek()
            if trio.current_time() < deadline:
                await trio.sleep_until(deadline)
                continue
            q.take()
            reply.cancel()

    # -- other clients -----------------------------------------------------------------------

    async def _send_concurrently(self, client, nursery: trio.Nursery) -> None:
        while True:  # until cancelled by stop()
            msg = await self._next()
            await self._slots.acquire()
            self.sent += 1
            nursery.start_soon(self._request_one, client, msg, self._deadline(msg))

    async def _request_one(self, client, msg: Message, deadline: float) -> None:
        response = None
        try:
            with trio.move_on_at(deadline):
                response = await client.send(msg)
        except NetworkError as e:
            log.debug("to node %d: %s", self.target_id, e)
        finally:
            self._slots.release()
        if response is None:
            self.failed += 1
        else:
            self.answered += 1
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
