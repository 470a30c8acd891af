"""The message-storm check: a node that sends more than ``MAX_PER_MS`` messages per simulated
millisecond, sustained over a window of ``WINDOW_S``, is a violation of kind
``message-storm``.

Raft's traffic is driven by clients and timers: a leader sends at most one pipeline window
per follower per answer and one heartbeat per follower per interval (Raft §5.3, thesis
§10.2), so its rate is bounded by the answers it gets, not by itself. A node whose messages
multiply (a rejection answered with a resend that is rejected again, each duplicate doubling
the exchange) spends the run's step budget in a few simulated seconds; the liveness check
would only say "no write committed", long after the cause. This check names it when it
starts.

The window is long (a second) because legitimate bursts are short: the busiest clean run
seen, seed 103179 (seven nodes, one entry per message, 32 in flight, 0.2 ms hops, a new leader
catching its followers up over a network that reorders), sent 2,759 messages in its busiest
second, all of them within 0.1 s; the busiest of 300 ordinary seeds sent 303 in 0.1 s. Seed
58810's storm sent about 33,600 a second, for as long as the run lasted.
"""

from __future__ import annotations

from .checkers import Violation

__all__ = ["MAX_PER_MS", "WINDOW_S", "MessageRate"]

MAX_PER_MS = 10
WINDOW_S = 1.0


class MessageRate:
    """Counts each node's sends in consecutive windows of ``window_s`` simulated seconds (a
    window starts at the node's first send after the last one ended).

    Invariant: a window never holds more than ``max_per_ms * window_s * 1000`` sends; the send
    that would exceed it raises ``Violation("message-storm", ...)``."""

    __slots__ = ("window_s", "limit", "_start", "_count", "peak")

    def __init__(self, max_per_ms: float = MAX_PER_MS, window_s: float = WINDOW_S) -> None:
        self.window_s = window_s
        self.limit = int(max_per_ms * window_s * 1000)
        self._start: dict[int, float] = {}
        self._count: dict[int, int] = {}
        self.peak = 0  # the most sends any node made in one window so far

    def on_send(self, node_id: int, now: float) -> None:
        start = self._start.get(node_id)
        if start is None or now - start >= self.window_s:
            self._start[node_id] = now
            self._count[node_id] = 1
            return
        n = self._count[node_id] + 1
        self._count[node_id] = n
        if n > self.peak:
            self.peak = n
            if n > self.limit:
                raise Violation("message-storm",
                                f"node {node_id} sent {n} messages in {now - start:.6f} simulated "
                                f"s (bound {self.limit} per {self.window_s * 1000:g} ms)")
