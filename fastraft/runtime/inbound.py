"""Pairing the engine's response messages with the requests that networks wait on.

The engine passes messages: it answers a peer's request with a ``SendMessage`` of the
response kind, later (a vote reply after its vote is saved, an acknowledgement after the
entries are flushed), once for several requests (one acknowledgement covers a pipeline), or
not at all. A network, though, waits on each request for an answer (``Reply``).

The rule: a response of kind K to peer P answers the newest request of kind K from P still
waiting, and every older one waiting with it gets "no answer" (None): the response covers
them. A response nobody waits for is dropped (a lost message, which Raft tolerates, §5.3).
A request that got no response within ``max_age_s`` also gets "no answer", so no network
waits forever on the engine.

Invariant: at most ``max_per_key`` requests wait per (peer, kind); beyond that the oldest is
answered with None.
"""

from __future__ import annotations

from collections import deque

from ..net.protocol import RESPONSE_TYPE, Reply

__all__ = ["InboundReplies"]


class InboundReplies:
    """Requests from peers that wait for the engine's responses; see the module docstring."""

    def __init__(self, max_per_key: int = 1024, max_age_s: float = 5.0) -> None:
        self._waiting: dict[tuple[int, type], deque] = {}
        self._max_per_key = max_per_key
        self.max_age_s = max_age_s
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def expect(self, peer: int, request, reply: Reply, now: float) -> None:
        """``reply`` waits for the engine's answer to ``request`` from ``peer``."""
        key = (peer, RESPONSE_TYPE[type(request)])
        q = self._waiting.get(key)
        if q is None:
            q = self._waiting[key] = deque()
        if len(q) >= self._max_per_key:
            q.popleft()[1].set_result(None)
            self._count -= 1
        q.append((now, reply))
        self._count += 1

    def answer(self, peer: int, response) -> bool:
        """Resolve the requests ``response`` answers; False if none was waiting."""
        q = self._waiting.get((peer, type(response)))
        if not q:
            return False
        self._count -= len(q)
        last = q.pop()[1]
        for _, older in q:
            older.set_result(None)
        q.clear()
        last.set_result(response)
        return True

    def reap(self, now: float) -> None:
        """Answer None to every request that waited longer than ``max_age_s``."""
        if not self._count:
            return
        limit = now - self.max_age_s
        for q in self._waiting.values():
            while q and q[0][0] < limit:
                q.popleft()[1].set_result(None)
                self._count -= 1

    def fail_all(self, error: BaseException) -> None:
        """The node stops: every waiting request fails with ``error``."""
        for q in self._waiting.values():
            for _, reply in q:
                reply.set_error(error)
        self._waiting.clear()
        self._count = 0
