"""The simulated network: every message is encoded by the codec, may be dropped, delayed,
reordered, duplicated or corrupted, and does not cross a cut link.

Each fault knob is active until a time (``drop_until`` ...), so overlapping faults extend each
other and nothing has to be undone; links are cut per direction until a time, which models a
partition of any subset, an isolated node and one-way failures alike. A cut is checked when
the message is sent and again when it arrives: a partition also swallows what was in flight.

Invariant: a message is delivered at most 1 + (duplicates) times, never before it was sent.
"""

from __future__ import annotations

from fastraft import accel

from .events import DELIVER
from .storm import MessageRate
from .trace import render_message

__all__ = ["SimNetwork"]

codec = accel.codec

# How bad the network gets while a fault is active.
_DROP_P = 0.3
_DUP_P = 0.2
_CORRUPT_P = 0.1
_DELAY_P = 0.5


class SimNetwork:
    """See the module docstring. ``sent``, ``delivered`` and ``dropped`` count messages."""

    def __init__(self, sim) -> None:
        self.sim = sim
        p = sim.profile
        self.latency_s = p.net_latency_s
        self.slow_p = p.net_slow_p
        self.slow_max_s = p.net_slow_max_s
        self.cut_until: dict[tuple[int, int], float] = {}
        self.drop_until = 0.0
        self.dup_until = 0.0
        self.corrupt_until = 0.0
        self.delay_until = 0.0
        self.sent = 0
        self.delivered = 0
        self.dropped = 0
        self.rate = None if "message-storm" in sim.opts.disabled_checks else MessageRate()

    def blocked(self, frm: int, to: int) -> bool:
        return self.cut_until.get((frm, to), 0.0) > self.sim.q.now

    def cut(self, pairs, until: float) -> None:
        for pair in pairs:
            if self.cut_until.get(pair, 0.0) < until:
                self.cut_until[pair] = until

    def heal(self) -> None:
        self.cut_until.clear()
        self.drop_until = self.dup_until = self.corrupt_until = self.delay_until = 0.0

    def _delay(self) -> float:
        rng = self.sim.rng
        d = rng.uniform(*self.latency_s)
        now = self.sim.q.now
        if rng.random() < self.slow_p or (now < self.delay_until and rng.random() < _DELAY_P):
            d += rng.uniform(0.0, self.slow_max_s)
        return d

    def send(self, frm: int, to: int, msg) -> None:
        sim = self.sim
        rng = sim.rng
        now = sim.q.now
        self.sent += 1
        if self.rate is not None:
            self.rate.on_send(frm, now)
        data = codec.encode_message(msg)
        fate = ""
        if to not in sim.nodes or self.blocked(frm, to):
            fate = " (cut)"
        elif now < self.drop_until and rng.random() < _DROP_P:
            fate = " (dropped)"
        if sim.trace.on:
            sim.trace.emit(now, f"n{frm}", f"send->{to} {render_message(msg)}{fate}")
        if fate:
            self.dropped += 1
            return
        copies = 2 if now < self.dup_until and rng.random() < _DUP_P else 1
        for _ in range(copies):
            payload = data
            if now < self.corrupt_until and rng.random() < _CORRUPT_P:
                b = bytearray(data)
                b[rng.randrange(len(b))] ^= rng.randint(1, 255)
                payload = bytes(b)
            sim.q.after(self._delay(), DELIVER, to, frm, payload)

    def on_deliver(self, to: int, frm: int, data: bytes) -> bool:
        """A message arrives: False if it is lost (link cut, node down)."""
        node = self.sim.nodes[to]
        if node.engine is None or self.blocked(frm, to):
            self.dropped += 1
            return False
        self.delivered += 1
        return True
