"""An in-memory network for tests and examples: a router that delivers requests between nodes
of one trio program, with fault injection.

    router = MemoryRouter(seed=7)
    async with open_raft(1, config, ..., network=router.network(1)) as raft:
        router.register(1, raft)          # inbound: requests to node 1 reach raft.handle_*
        router.partition({1, 2}, {3})     # 3 hears nobody, nobody hears 3
        router.heal()

Faults, all decided by one ``random.Random(seed)`` so a run replays:

* ``drop_rate``: each request, and each response, is lost with this probability;
* ``delay_s`` + uniform [0, ``jitter_s``): one-way latency of each request and each response
  (jitter reorders concurrent messages, which Raft must tolerate, Raft §5.3);
* ``partition(*groups)``: nodes talk only within their group; nodes named in no group form
  one more group together;
* ``isolate(node_id)``: the node reaches nobody and nobody reaches it;
* ``heal()``: connectivity is whole again (drop and delay stay as set).

A lost message is silent, as on a real network: the request hangs until the caller's timeout
(``RaftClient.request`` raises ``RequestTimeout``). A target that is not registered refuses at
once (``Unreachable``), like a closed port. Connectivity is checked when the message is sent
and again when it arrives, so a partition made while a message is in flight loses it.

With ``through_codec=True`` every message is encoded and decoded with ``fastraft.codec`` on
the way, so the receiver never shares objects with the sender and the codec is exercised.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Iterable

import trio

from ..errors import RaftShutdown
from ..messages import Message
from ..types import Node
from .protocol import RaftClient, RaftHandler, RemoteError, Unreachable, dispatch

__all__ = ["MemoryRouter", "MemoryNetwork", "MemoryClient", "RouterStats"]


@dataclass
class RouterStats:
    """Counters of what the router did with messages (requests and responses both count)."""

    delivered: int = 0
    dropped: int = 0
    blocked: int = 0
    refused: int = 0


class MemoryRouter:
    """Routes requests between registered handlers; see the module docstring."""

    def __init__(self, *, seed: int = 0, drop_rate: float = 0.0, delay_s: float = 0.0,
                 jitter_s: float = 0.0, through_codec: bool = False) -> None:
        self._rng = random.Random(seed)
        self._handlers: dict[int, RaftHandler] = {}
        self._groups: list[frozenset[int]] = []
        self._isolated: set[int] = set()
        self._through_codec = through_codec
        self.stats = RouterStats()
        self.drop_rate = 0.0
        self.delay_s = 0.0
        self.jitter_s = 0.0
        self.set_faults(drop_rate=drop_rate, delay_s=delay_s, jitter_s=jitter_s)

    # -- membership of the router ---------------------------------------------------------

    def register(self, node_id: int, handler: RaftHandler) -> None:
        """Requests to ``node_id`` go to ``handler`` from now on (replacing any earlier one)."""
        self._handlers[node_id] = handler

    def unregister(self, node_id: int) -> None:
        """Requests to ``node_id`` are refused from now on (the node is down)."""
        self._handlers.pop(node_id, None)

    def network(self, node_id: int) -> "MemoryNetwork":
        """The outbound network of ``node_id`` (what ``open_raft(network=...)`` takes)."""
        return MemoryNetwork(self, node_id)

    # -- faults ---------------------------------------------------------------------------

    def set_faults(self, *, drop_rate: float | None = None, delay_s: float | None = None,
                   jitter_s: float | None = None) -> None:
        """Change loss and latency; arguments left None keep their value."""
        if drop_rate is not None:
            if not 0.0 <= drop_rate <= 1.0:
                raise ValueError(f"drop_rate must be in [0, 1], got {drop_rate}")
            self.drop_rate = float(drop_rate)
        if delay_s is not None:
            if delay_s < 0:
                raise ValueError(f"delay_s must be >= 0, got {delay_s}")
            self.delay_s = float(delay_s)
        if jitter_s is not None:
            if jitter_s < 0:
                raise ValueError(f"jitter_s must be >= 0, got {jitter_s}")
            self.jitter_s = float(jitter_s)

    def partition(self, *groups: Iterable[int]) -> None:
        """Split the network: nodes talk only within their group (see the module docstring).
        Replaces any earlier partition; isolation stays."""
        gs = [frozenset(g) for g in groups]
        seen: set[int] = set()
        for g in gs:
            if seen & g:
                raise ValueError(f"node(s) {sorted(seen & g)} named in two groups")
            seen |= g
        self._groups = gs

    def isolate(self, node_id: int) -> None:
        """Cut ``node_id`` off from every other node until ``heal``."""
        self._isolated.add(node_id)

    def heal(self) -> None:
        """Undo every partition and isolation."""
        self._groups = []
        self._isolated.clear()

    def can_reach(self, src: int, dst: int) -> bool:
        """True when a message from ``src`` to ``dst`` is not cut by a partition or isolation."""
        if src == dst:
            return True
        if src in self._isolated or dst in self._isolated:
            return False
        return self._group_of(src) == self._group_of(dst)

    def _group_of(self, node_id: int) -> int:
        for i, g in enumerate(self._groups):
            if node_id in g:
                return i
        return -1  # the group of every node named nowhere

    # -- delivery -------------------------------------------------------------------------

    async def _hop(self, src: int, dst: int) -> None:
        """One message's trip from ``src`` to ``dst``: latency, then loss. Returns when the
        message arrives; never returns when it is lost (the caller's timeout ends the wait)."""
        if not self.can_reach(src, dst):
            self.stats.blocked += 1
            await trio.sleep_forever()
        delay = self.delay_s + (self._rng.random() * self.jitter_s if self.jitter_s else 0.0)
        if delay > 0:
            await trio.sleep(delay)
        if self.drop_rate and self._rng.random() < self.drop_rate:
            self.stats.dropped += 1
            await trio.sleep_forever()
        if not self.can_reach(src, dst):
            self.stats.blocked += 1
            await trio.sleep_forever()
        self.stats.delivered += 1

    async def deliver(self, src: int, dst: int, request: Message) -> Message | None:
        """Carry ``request`` from ``src`` to ``dst``'s handler and its response (or None, no
        answer) back."""
        if dst not in self._handlers and self.can_reach(src, dst):
            self.stats.refused += 1
            raise Unreachable(f"node {dst} is not registered with the router")
        await self._hop(src, dst)
        handler = self._handlers.get(dst)
        if handler is None:
            self.stats.refused += 1
            raise Unreachable(f"node {dst} went away")
        try:
            response = await dispatch(handler, self._copy(request))
        except RaftShutdown as e:
            raise RemoteError(f"node {dst} could not serve the request: {e}") from None
        await self._hop(dst, src)
        return self._copy(response)

    def _copy(self, msg: Message | None) -> Message | None:
        if msg is None or not self._through_codec:
            return msg
        from .. import codec  # imported late: only routers that ask for it need the codec

        return codec.decode_message(codec.encode_message(msg))


class MemoryNetwork:
    """The outbound network of one node on a ``MemoryRouter`` (a ``RaftNetwork``)."""

    def __init__(self, router: MemoryRouter, node_id: int) -> None:
        self.router = router
        self.node_id = node_id

    def client(self, target_id: int, node: Node) -> "MemoryClient":
        return MemoryClient(self.router, self.node_id, target_id)


class MemoryClient(RaftClient):
    """Sends requests from one node to one target through the router."""

    def __init__(self, router: MemoryRouter, source_id: int, target_id: int) -> None:
        self.router = router
        self.source_id = source_id
        self.target_id = target_id
        self._closed = False

    async def send(self, request: Message) -> Message | None:
        if self._closed:
            raise Unreachable("client closed")
        return await self.router.deliver(self.source_id, self.target_id, request)

    async def aclose(self) -> None:
        self._closed = True
