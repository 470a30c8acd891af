"""The progress tracker, pure-Python twin of ``fastraft.accel.compiled.progress`` (this file is
the spec).

A leader's view of every member (voters of one or two configurations, and learners), kept in
the member table it extends (``MemberTable``, members):

* replication (Raft §5.3, thesis §10.2.2 pipelining): ``match`` (highest index known
  replicated), ``next`` (next index to send), a mode (PROBE: one message at a time until the
  follower's log position is found; PIPELINE: up to ``max_inflight`` messages in flight;
  SNAPSHOT: entries paused while a snapshot is sent), and a bounded window of in-flight
  messages, each remembered by the last index it carried;
* through the quorum functions (quorum): the commit index a quorum of voters has matched,
  for a uniform or a joint configuration (Raft §6: joint consensus needs a majority of each;
  learners never count); the vote tally of an election or pre-vote (won / lost / pending);
  check-quorum (which voters were heard from since the last reset) and ReadIndex (the highest
  round ``seq`` a quorum has acknowledged, thesis §6.4).

The tracker knows nothing of who the leader is: the engine feeds its own progress in like any
other member's (``update_match`` with its flushed index, ``record_vote``, ``mark_active``,
``on_seq_ack``).

Invariant: for every member, match < next, except in SNAPSHOT mode where next is unused.
Invariant: in-flight entries of a member are increasing last indexes, all > match, at most
    ``max_inflight`` of them; only PIPELINE mode has any.
Invariant: the invariants of the member table (members).

Every method taking a node id raises ValueError if that id is not tracked. Index and round
arguments are u64, as on the wire: a value above 2**64 - 1 raises OverflowError (a negative one
just compares below every index). Nothing changes when a method raises.
"""

from __future__ import annotations

from fastraft.accel.pure import quorum
from fastraft.accel.pure.members import GRANTED as _GRANTED
from fastraft.accel.pure.members import NO_VOTE as _NO_VOTE
from fastraft.accel.pure.ints import check_u64
from fastraft.accel.pure.members import PIPELINE, PROBE, SNAPSHOT, MemberTable
from fastraft.accel.pure.members import REJECTED as _REJECTED
from fastraft.accel.pure.quorum import VOTE_LOST, VOTE_PENDING, VOTE_WON

__all__ = [
    "ProgressTracker",
    "PROBE", "PIPELINE", "SNAPSHOT",
    "VOTE_PENDING", "VOTE_WON", "VOTE_LOST",
]


class ProgressTracker(MemberTable):
    """Per-member replication progress, quorums and tallies. See the module docstring.

    ``max_inflight`` (>= 1) bounds the messages in flight to one member in PIPELINE mode.
    Starts with no member: call ``set_membership`` first.
    """

    __slots__ = ()

    # -- per-member reads ----------------------------------------------------------------------

    def match_index(self, node_id: int) -> int:
        """Highest index known to be replicated on ``node_id``. O(1)."""
        return self._match[self._s(node_id)]

    def next_index(self, node_id: int) -> int:
        """Next index to send to ``node_id``. O(1)."""
        return self._next[self._s(node_id)]

    def mode(self, node_id: int) -> int:
        """PROBE, PIPELINE or SNAPSHOT. O(1)."""
        return self._mode[self._s(node_id)]

    def inflight_count(self, node_id: int) -> int:
        """Messages with entries in flight to ``node_id`` (PIPELINE mode only). O(1)."""
        return self._if_count[self._s(node_id)]

    def pending_snapshot(self, node_id: int) -> int:
        """The last index of the snapshot being sent (SNAPSHOT mode), else 0. O(1)."""
        s = self._s(node_id)
        return self._snap[s] if self._mode[s] == SNAPSHOT else 0

    def can_send(self, node_id: int) -> bool:
        """Whether a message with entries may go to ``node_id`` now: PROBE and no probe
        unanswered, or PIPELINE with room in the window; never in SNAPSHOT. O(1)."""
        s = self._s(node_id)
        m = self._mode[s]
        if m == PIPELINE:
            return self._if_count[s] < self.max_inflight
        if m == PROBE:
            return not self._paused[s]
        return False

    # -- replication ---------------------------------------------------------------------------

    def reset(self, next_index: int) -> None:
        """Start a new leadership (Raft §5.3: nextIndex = leader's last + 1, matchIndex = 0):
        every member to PROBE, match 0, next ``next_index``, empty window, inactive, seq 0,
        no vote. Raises ValueError if next_index < 1. O(members)."""
        if next_index < 1:
            raise ValueError(f"next_index must be >= 1, got {next_index}")
        check_u64(next_index)
        n = len(self._ids)
        self._match = [0] * n
        self._next = [next_index] * n
        self._mode = [PROBE] * n
        self._paused = [0] * n
        self._snap = [0] * n
        self._active = [0] * n
        self._seq = [0] * n
        self._vote = [_NO_VOTE] * n
        self._if_head = [0] * n
        self._if_count = [0] * n

    def update_match(self, node_id: int, index: int) -> bool:
        """Raise match to ``index`` (and next past it) without touching the mode or window:
        the leader's own durable log end (thesis §10.2.1). Returns whether match grew. O(1)."""
        s = self._s(node_id)
        check_u64(index)
        if index <= self._match[s]:
            return False
        self._match[s] = index
        if self._next[s] <= index:
            self._next[s] = index + 1
        return True

    def on_sent(self, node_id: int, last_index: int) -> None:
        """Record an AppendEntries to ``node_id`` carrying entries [next, last_index].

        PIPELINE: needs last_index >= next (entries, not a heartbeat) and room in the window;
        next becomes last_index + 1. PROBE: needs last_index >= next - 1 (a probe may carry no
        entry); the member pauses until an answer or ``resume``, next stays. Raises ValueError
        otherwise (SNAPSHOT mode, full window, a range not starting at next). O(1).
        """
        s = self._s(node_id)
        check_u64(last_index)
        m = self._mode[s]
        if m == PIPELINE:
            if last_index < self._next[s]:
                raise ValueError(f"nothing to send: last {last_index} < next {self._next[s]}")
            c = self._if_count[s]
            w = self.max_inflight
            if c >= w:
                raise ValueError(f"in-flight window to node {node_id} is full")
            self._if_buf[s * w + (self._if_head[s] + c) % w] = last_index
            self._if_count[s] = c + 1
            self._next[s] = last_index + 1
        elif m == PROBE:
            if last_index < self._next[s] - 1:
                raise ValueError(f"probe ends at {last_index}, before next {self._next[s]} - 1")
            self._paused[s] = 1
        else:
            raise ValueError(f"node {node_id} is receiving a snapshot")

    def on_ack(self, node_id: int, match_index: int) -> bool:
        """A successful AppendEntries response: ``node_id`` matches the leader up to
        ``match_index``. Raises match and next, frees the window up to it; PROBE switches to
        PIPELINE when match_index >= next - 1 (the probe was answered: the follower's position
        is found; next becomes match + 1), and SNAPSHOT too once match reaches the snapshot. Returns whether match grew (the commit index may move). O(freed)."""
        s = self._s(node_id)
        check_u64(match_index)
        grew = match_index > self._match[s]
        if grew:
            self._match[s] = match_index
            if self._next[s] <= match_index:
                self._next[s] = match_index + 1
        m = self._mode[s]
        if m == PROBE:
            # only the answer to the probe itself (at next - 1 or beyond) locates the follower;
            # a heartbeat's acknowledgement of an older match does not
            if match_index >= self._next[s] - 1:
                self._mode[s] = PIPELINE
                self._paused[s] = 0
                self._next[s] = self._match[s] + 1
        elif m == SNAPSHOT:
            if self._match[s] >= self._snap[s]:
                self._mode[s] = PIPELINE
                self._next[s] = self._match[s] + 1
                self._paused[s] = 0
        else:
            self._free_upto(s, self._match[s])
        return grew

    def on_reject(self, node_id: int, rejected_index: int, next_hint: int) -> bool:
        """A rejected AppendEntries whose prev_log_index was ``rejected_index``; ``next_hint``
        is where the leader would resume from the follower's hint (Raft §5.3). Stale
        rejections (at or below match; PROBE: not the outstanding probe; SNAPSHOT: any) are
        ignored and return False: a rejection at or below match cannot move next, so answering
        it with a resend would repeat the same probe once per rejection (the next heartbeat
        retries it). Otherwise the member goes to PROBE with an empty
        window and next = max(min(rejected_index, next_hint), match + 1); returns True. O(1).
        """
        s = self._s(node_id)
        check_u64(rejected_index)
        check_u64(next_hint)
        m = self._mode[s]
        if m == PIPELINE:
            if rejected_index <= self._match[s]:
                return False
        elif m == PROBE:
            if rejected_index != self._next[s] - 1 or rejected_index <= self._match[s]:
                return False
        else:
            return False
        nxt = min(rejected_index, next_hint)
        if nxt <= self._match[s]:
            nxt = self._match[s] + 1
        self._next[s] = nxt
        self._mode[s] = PROBE
        self._paused[s] = 0
        self._if_count[s] = 0
        self._if_head[s] = 0
        return True

    def resume(self, node_id: int) -> None:
        """Let the next probe go to ``node_id`` (an answer arrived or a heartbeat interval
        passed). No effect outside PROBE. O(1)."""
        s = self._s(node_id)
        if self._mode[s] == PROBE:
            self._paused[s] = 0

    def become_probe(self, node_id: int) -> None:
        """Back to PROBE from any mode with an empty window, next = match + 1 (the member is
        unreachable or the snapshot failed). O(1)."""
        s = self._s(node_id)
        self._mode[s] = PROBE
        self._paused[s] = 0
        self._next[s] = self._match[s] + 1
        self._if_count[s] = 0
        self._if_head[s] = 0

    def become_snapshot(self, node_id: int, snapshot_index: int) -> None:
        """Pause entries to ``node_id`` while a snapshot covering up to ``snapshot_index`` is
        sent (Raft §7). Raises ValueError if snapshot_index <= match. O(1)."""
        s = self._s(node_id)
        check_u64(snapshot_index)
        if snapshot_index <= self._match[s]:
            raise ValueError(
                f"snapshot up to {snapshot_index} is not ahead of match {self._match[s]}")
        self._mode[s] = SNAPSHOT
        self._snap[s] = snapshot_index
        self._paused[s] = 0
        self._if_count[s] = 0
        self._if_head[s] = 0

    def on_snapshot_done(self, node_id: int, snapshot_index: int) -> None:
        """``node_id`` installed a snapshot up to ``snapshot_index``: match rises to it, then
        PROBE from match + 1 (entries after the snapshot follow). O(1)."""
        s = self._s(node_id)
        check_u64(snapshot_index)
        if snapshot_index > self._match[s]:
            self._match[s] = snapshot_index
        self._mode[s] = PROBE
        self._paused[s] = 0
        self._next[s] = self._match[s] + 1
        self._if_count[s] = 0
        self._if_head[s] = 0

    def _free_upto(self, s: int, index: int) -> None:
        w = self.max_inflight
        h = self._if_head[s]
        c = self._if_count[s]
        base = s * w
        while c and self._if_buf[base + h] <= index:
            h = (h + 1) % w
            c -= 1
        self._if_head[s] = h if c else 0
        self._if_count[s] = c

    # -- quorums -------------------------------------------------------------------------------

    def committed_index(self) -> int:
        """The highest index matched by a majority of every voter configuration (Raft §5.3,
        §6); 0 with no member. The engine commits it only if its term is the leader's
        (Raft §5.4.2). O(members log members)."""
        return quorum.quorum_value(self._match, self._role)

    def mark_active(self, node_id: int) -> None:
        """``node_id`` was heard from (check-quorum). O(1)."""
        self._active[self._s(node_id)] = 1

    def is_active(self, node_id: int) -> bool:
        """Whether ``node_id`` was heard from since the last ``reset_active``. O(1)."""
        return bool(self._active[self._s(node_id)])

    def reset_active(self) -> None:
        """Forget who was heard from: a new check-quorum period starts. O(members)."""
        self._active = [0] * len(self._ids)

    def quorum_active(self) -> bool:
        """Whether a majority of every voter configuration was heard from (a leader that is
        not stays no longer: check-quorum, thesis §6.2). O(members)."""
        return quorum.quorum_active(self._active, self._role)

    def on_seq_ack(self, node_id: int, seq: int) -> None:
        """``node_id`` acknowledged the leader's round ``seq`` (and so every earlier one).
        O(1)."""
        s = self._s(node_id)
        check_u64(seq)
        if seq > self._seq[s]:
            self._seq[s] = seq

    def acked_seq(self, node_id: int) -> int:
        """The highest round ``node_id`` acknowledged. O(1)."""
        return self._seq[self._s(node_id)]

    def quorum_seq(self) -> int:
        """The highest round acknowledged by a majority of every voter configuration: reads
        registered before that round may be served (ReadIndex, thesis §6.4). O(members log
        members)."""
        return quorum.quorum_value(self._seq, self._role)

    # -- votes ---------------------------------------------------------------------------------

    def reset_votes(self) -> None:
        """Forget every vote: a new election or pre-vote starts. O(members)."""
        self._vote = [_NO_VOTE] * len(self._ids)

    def record_vote(self, node_id: int, granted: bool) -> bool:
        """Record ``node_id``'s answer; the first answer of a member counts, later ones are
        ignored. Returns False (and records nothing) for a learner. O(1)."""
        s = self._s(node_id)
        if not self._role[s]:
            return False
        if self._vote[s] == _NO_VOTE:
            self._vote[s] = _GRANTED if granted else _REJECTED
        return True

    def vote_result(self) -> int:
        """VOTE_WON once a majority of every configuration granted, VOTE_LOST once some
        configuration can no longer reach a majority, else VOTE_PENDING (Raft §5.2, §6).
        O(members)."""
        return quorum.vote_result(self._vote, self._role)

    def __repr__(self) -> str:
        parts = []
        for s, i in enumerate(self._ids):
            mode = ("probe", "pipeline", "snapshot")[self._mode[s]]
            parts.append(f"{i}:{'v' if self._role[s] else 'l'} m={self._match[s]} "
                         f"n={self._next[s]} {mode} if={self._if_count[s]}")
        return f"ProgressTracker({'; '.join(parts)})"

