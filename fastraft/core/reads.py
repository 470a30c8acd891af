"""Linearizable reads: ReadIndex (thesis §6.4) and, optionally, leases (thesis §6.4.1).

ReadIndex: the leader takes its commit index as the read index (at least its own first entry
of the term: until that commits it does not know the latest commit index), confirms it still
leads with one heartbeat round that a quorum acknowledges, then answers once the state machine
applied the read index. Rounds are numbered (``seq`` in AppendEntries and the replies), so one
acknowledgement counts for every read registered before its round.

Lease (``lease_read``, needs check-quorum): a round acknowledged by a quorum proves leadership
until its start + the minimum election timeout (minus the drift margin), because with
check-quorum no follower votes for another candidate within that time of hearing the leader.
Reads within the lease skip the round. A leadership transfer suspends the lease: voters grant
the target's transfer campaign even within it.

Invariant: a read is answered only after a quorum acknowledged a round sent after the read was
registered (or within a lease), and after ``ApplyEntries`` reached its read index.

Reads: ``role``, ``committed``, ``applied``, ``config``, ``_now``, ``_leader_first_index``,
``_transfer``, ``progress`` (the rounds acknowledged). Writes: ``_reads``, ``_round_times``,
``_seq``, ``_confirmed_seq``, ``_lease_until``. A read without a lease starts a heartbeat round
(replication.py).
"""

from __future__ import annotations

from collections import deque
from typing import Hashable

from fastraft.errors import Busy

from .commands import ReadReady, Respond
from .state import Role

__all__ = ["ReadsMixin"]

# Recent rounds whose send time is kept for the lease; older ones can no longer extend it.
_MAX_ROUND_TIMES = 256


class _PendingRead:
    """A read waiting for the round ``seq`` (0: within a lease, none) to be acknowledged by a
    quorum and for ``read_index`` to be applied."""

    __slots__ = ("seq", "read_index", "request_id")

    def __init__(self, seq: int, read_index: int, request_id: Hashable) -> None:
        self.seq = seq
        self.read_index = read_index
        self.request_id = request_id


class _Round:
    """A heartbeat round ``seq``, sent at ``sent_at``: a quorum's acknowledgement of it
    extends the lease from that time."""

    __slots__ = ("seq", "sent_at")

    def __init__(self, seq: int, sent_at: float) -> None:
        self.seq = seq
        self.sent_at = sent_at


class ReadsMixin:
    def _init_reads(self) -> None:
        self._reads: deque[_PendingRead] = deque()  # FIFO
        self._round_times: deque[_Round] = deque()  # the most recent rounds, oldest first
        self._seq = 0  # the latest heartbeat round
        self._confirmed_seq = 0
        self._lease_until = float("-inf")

    def read_index(self, request_id: Hashable) -> None:
        """Register a linearizable read; answered by ``ReadReady(request_id, read_index)``, or
        ``Respond(request_id, error=...)`` (ForwardToLeader on a non-leader or on losing
        leadership, Busy beyond ``max_pending_reads``). One request may stand for a batch of
        client reads: each call costs one heartbeat round."""
        if self.role != Role.LEADER:
            self._emit(Respond(request_id, error=self.forward_to_leader()))
            return
        if len(self._reads) >= self.config.max_pending_reads:
            self._emit(Respond(request_id, error=Busy(
                f"{len(self._reads)} reads pending; retry when they complete")))
            return
        read_index = max(self.committed, self._leader_first_index)
        if self.lease_valid:
            self._reads.append(_PendingRead(0, read_index, request_id))
        else:
            self._reads.append(_PendingRead(self._seq + 1, read_index, request_id))
            self._broadcast_heartbeat()  # starts round seq + 1
        self._maybe_serve_reads()

    @property
    def lease_valid(self) -> bool:
        """Whether a lease read would skip the heartbeat round now."""
        # a transfer lets the target win votes inside the lease (thesis §3.10), so no lease
        # holds while one is pending
        return (self.role == Role.LEADER and self.config.lease_read
                and self._transfer is None and self._now < self._lease_until)

    def _on_leader_start_reads(self) -> None:
        self._reads.clear()
        self._round_times.clear()
        self._seq = 0
        self._confirmed_seq = 0
        self._lease_until = float("-inf")

    def _new_round(self) -> None:
        self._seq += 1
        times = self._round_times
        times.append(_Round(self._seq, self._now))
        if len(times) > _MAX_ROUND_TIMES:
            times.popleft()
        if self.progress.is_tracked(self.id):
            self.progress.on_seq_ack(self.id, self._seq)
        self._on_quorum_seq()

    def _on_round_ack(self, peer: int, seq: int) -> None:
        if seq > self._seq:
            return  # never sent: not from this leadership
        self.progress.on_seq_ack(peer, seq)
        self._on_quorum_seq()

    def _on_quorum_seq(self) -> None:
        q = self.progress.quorum_seq()
        if q <= self._confirmed_seq:
            return
        self._confirmed_seq = q
        if self.config.lease_read:
            times = self._round_times
            while times and times[0].seq < q:
                times.popleft()
            if times and times[0].seq == q:
                c = self.config
                lease = times[0].sent_at + c.election_timeout_min_s * (1.0 - c.lease_drift_ratio)
                if lease > self._lease_until:
                    self._lease_until = lease
        self._maybe_serve_reads()

    def _maybe_serve_reads(self) -> None:
        reads = self._reads
        while reads:
            r = reads[0]
            if r.seq > self._confirmed_seq or self.applied < r.read_index:
                return
            reads.popleft()
            self._emit(ReadReady(r.request_id, r.read_index))

    def _fail_reads(self) -> None:
        err = self.forward_to_leader()
        while self._reads:
            self._emit(Respond(self._reads.popleft().request_id, error=err))
        self._lease_until = float("-inf")
