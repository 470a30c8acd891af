"""The simulator's event queue: one heap ordered by (time, sequence number).

The sequence number breaks ties in the order events were scheduled, so the run never depends
on comparing payloads or on hashing. Every event is ``(time_s, seq, kind, a, b, c)``; ``kind``
is one of the constants below and ``a``, ``b``, ``c`` are its arguments.

Invariant: time never goes back: an event is never scheduled before the current time.
"""

from __future__ import annotations

import heapq

__all__ = ["EventQueue", "TICK", "DELIVER", "SYNC", "SM", "READ_LOG", "READ_CHUNK", "CLIENT",
           "CLIENT_TIMEOUT", "FAULT", "ADMIN", "RESTART", "KIND_NAMES"]

TICK = 0  #: a, b = node id, timer token
DELIVER = 1  #: a, b, c = destination, sender, encoded message
SYNC = 2  #: a, b, c = node id, incarnation, pending writes covered
SM = 3  #: a, b = node id, incarnation: the head of the state-machine queue completes
READ_LOG = 4  #: a, b, c = node id, incarnation, ReadLog command
READ_CHUNK = 5  #: a, b, c = node id, incarnation, ReadSnapshotChunk command
CLIENT = 6  #: a = client id: it issues its next operation
CLIENT_TIMEOUT = 7  #: a, b = client id, op id
FAULT = 8  #: inject the next fault
ADMIN = 9  #: issue the next admin request
RESTART = 10  #: a = node id

KIND_NAMES = ("tick", "deliver", "sync", "sm", "read-log", "read-chunk", "client",
              "client-timeout", "fault", "admin", "restart")


class EventQueue:
    """A bounded-by-the-caller min-heap of events; see the module docstring."""

    __slots__ = ("_heap", "_seq", "now")

    def __init__(self) -> None:
        self._heap: list[tuple] = []
        self._seq = 0
        self.now = 0.0

    def __len__(self) -> int:
        return len(self._heap)

    def at(self, time_s: float, kind: int, a=None, b=None, c=None) -> None:
        """Schedule an event at ``time_s`` (clamped to now)."""
        if time_s < self.now:
            time_s = self.now
        self._seq += 1
        heapq.heappush(self._heap, (time_s, self._seq, kind, a, b, c))

    def after(self, delay_s: float, kind: int, a=None, b=None, c=None) -> None:
        self.at(self.now + delay_s, kind, a, b, c)

    def pop(self) -> tuple:
        ev = heapq.heappop(self._heap)
        self.now = ev[0]
        return ev

    def peek_time(self) -> float:
        return self._heap[0][0] if self._heap else float("inf")
