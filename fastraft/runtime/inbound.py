"""Pairing the engine's response messages with the requests that networks wait on.

The engine passes messages: it answers a peer's request with a ``SendMessage`` of the
response kind, later (a vote reply after its vote is saved, an acknowledgement after the
entries are flushed), sometimes out of order (a heartbeat is acknowledged at once while the
acknowledgement of entries still waits for their flush), and rarely not at all (a message
dropped while a snapshot is installed, a malformed one). It gives every request an answer
of its own otherwise, so that the pairing below never leaves a request waiting behind a
later one. A network, though, waits on each request for an answer (``Reply``), and a
pipelined one answers in request order.

The rule: a response of kind K to peer P answers the *oldest* request of kind K from P still
waiting. Every response then leaves the moment the engine emits it, whatever request it
happens to answer (the engine does not care: messages carry their own meaning, Raft §5.3),
and a pipelined connection is never held up by a request the engine answered out of order.
Requests left over (the engine answered fewer than it received) are answered by later
responses, or get "no answer" (None) once they waited ``max_age_s``; a response nobody waits
for is dropped (a lost message, which Raft tolerates).

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
        """Answer the oldest waiting request of the response's kind from ``peer`` with it;
        False if none was waiting (the response is dropped)."""
        q = self._waiting.get((peer, type(response)))
        if not q:
            return False
        self._count -= 1
        q.popleft()[1].set_result(response)
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
