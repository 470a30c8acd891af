# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, binding=False
"""The progress tracker, compiled: per-member replication progress on the member table
(members), with the quorum computations (quorum) for commit, check-quorum, ReadIndex and votes.
Twin: fastraft/accel/pure/progress.py, which is the spec: same names, signatures, results,
exception types and messages.

``ProgressTracker`` extends ``MemberTable``: each method finds its member's C struct with one
dict lookup (``_member``) and changes it in place; the quorum functions are C calls over the
struct array (quorum.pxd).

Integer arguments are read as u64 with one C call (ints.pxd); a value outside [0, 2**64) is
treated as the twin treats it (a negative one compares below every index; one above
2**64 - 1 raises OverflowError where it would be stored). Arguments must be integers (``int``
or ``bool``; other numbers raise TypeError here).

Invariant: the invariants of the twin (and of members).
"""

from libc.stdint cimport uint64_t

from fastraft.accel.compiled.ints cimport index_arg, plus1, read_u64
from fastraft.accel.compiled.members cimport (
    C_PIPELINE, C_PROBE, C_SNAPSHOT, GRANTED, NO_VOTE, REJECTED, Member, MemberTable)
from fastraft.accel.compiled.quorum cimport quorum_active as majority_active
from fastraft.accel.compiled.quorum cimport quorum_value
from fastraft.accel.compiled.quorum cimport vote_result as majority_vote

__all__ = [
    "ProgressTracker",
    "PROBE", "PIPELINE", "SNAPSHOT",
    "VOTE_PENDING", "VOTE_WON", "VOTE_LOST",
]

#: Replication modes.
PROBE = 0
PIPELINE = 1
SNAPSHOT = 2

#: Results of ``vote_result``.
VOTE_PENDING = 0
VOTE_WON = 1
VOTE_LOST = 2


cdef class ProgressTracker(MemberTable):
    """Per-member replication progress, quorums and tallies. See the module docstring.

    ``max_inflight`` (>= 1) bounds the messages in flight to one member in PIPELINE mode.
    Starts with no member: call ``set_membership`` first.
    """

    # -- per-member reads ----------------------------------------------------------------------

    def match_index(self, node_id):
        """Highest index known to be replicated on ``node_id``. O(1)."""
        return self._member(node_id).match

    def next_index(self, node_id):
        """Next index to send to ``node_id``. O(1)."""
        return plus1(self._member(node_id).next_m1)

    def mode(self, node_id):
        """PROBE, PIPELINE or SNAPSHOT. O(1)."""
        return self._member(node_id).mode

    def inflight_count(self, node_id):
        """Messages with entries in flight to ``node_id`` (PIPELINE mode only). O(1)."""
        return self._member(node_id).if_count

    def pending_snapshot(self, node_id):
        """The last index of the snapshot being sent (SNAPSHOT mode), else 0. O(1)."""
        cdef Member *p = self._member(node_id)
        return p.snap if p.mode == C_SNAPSHOT else 0

    def can_send(self, node_id):
        """Whether a message with entries may go to ``node_id`` now: PROBE and no probe
        unanswered, or PIPELINE with room in the window; never in SNAPSHOT. O(1)."""
        cdef Member *p = self._member(node_id)
        if p.mode == C_PIPELINE:
            return p.if_count < self.max_inflight
        if p.mode == C_PROBE:
            return not p.paused
        return False

    # -- replication ---------------------------------------------------------------------------

    def reset(self, next_index):
        """Start a new leadership (Raft §5.3: nextIndex = leader's last + 1, matchIndex = 0):
        every member to PROBE, match 0, next ``next_index``, empty window, inactive, seq 0,
        no vote. Raises ValueError if next_index < 1, OverflowError if it does not fit in u64.
        O(members)."""
        cdef uint64_t nxt = 0
        cdef Py_ssize_t k
        cdef Member *p
        cdef int r = read_u64(next_index, &nxt)
        if r < 0 or (r == 0 and nxt < 1):
            raise ValueError(f"next_index must be >= 1, got {next_index}")
        index_arg(next_index, &nxt)
        for k in range(self._n):
            p = &self._m[k]
            p.match = 0
            p.next_m1 = nxt - 1
            p.mode = C_PROBE
            p.paused = 0
            p.snap = 0
            p.active = 0
            p.seq = 0
            p.vote = NO_VOTE
            p.if_head = 0
            p.if_count = 0

    def update_match(self, node_id, index):
        """Raise match to ``index`` (and next past it) without touching the mode or window:
        the leader's own durable log end (thesis §10.2.1). Returns whether match grew. O(1)."""
        cdef Member *p = self._member(node_id)
        cdef uint64_t v = 0
        if index_arg(index, &v) < 0 or v <= p.match:
            return False
        p.match = v
        if p.next_m1 < v:
            p.next_m1 = v
        return True

    def on_sent(self, node_id, last_index):
        """Record an AppendEntries to ``node_id`` carrying entries [next, last_index].

        PIPELINE: needs last_index >= next (entries, not a heartbeat) and room in the window;
        next becomes last_index + 1. PROBE: needs last_index >= next - 1 (a probe may carry no
        entry); the member pauses until an answer or ``resume``, next stays. Raises ValueError
        otherwise (SNAPSHOT mode, full window, a range not starting at next). O(1).
        """
        cdef Member *p = self._member(node_id)
        cdef uint64_t v = 0
        cdef int r = index_arg(last_index, &v)
        cdef Py_ssize_t s, c, w
        if p.mode == C_PIPELINE:
            if r < 0 or v <= p.next_m1:
                raise ValueError(f"nothing to send: last {last_index} < next {plus1(p.next_m1)}")
            c = p.if_count
            w = self.max_inflight
            if c >= w:
                raise ValueError(f"in-flight window to node {node_id} is full")
            s = p - self._m
            self._if_buf[s * w + (p.if_head + c) % w] = v
            p.if_count = c + 1
            p.next_m1 = v
        elif p.mode == C_PROBE:
            if r < 0 or v < p.next_m1:
                raise ValueError(
                    f"probe ends at {last_index}, before next {plus1(p.next_m1)} - 1")
            p.paused = 1
        else:
            raise ValueError(f"node {node_id} is receiving a snapshot")

    def on_ack(self, node_id, match_index):
        """A successful AppendEntries response: ``node_id`` matches the leader up to
        ``match_index``. Raises match and next, frees the window up to it; PROBE switches to
        PIPELINE when match_index >= next - 1 (the probe was answered: the follower's position
        is found; next becomes match + 1), and SNAPSHOT too once match reaches the snapshot.
        Returns whether match grew (the commit index may move). O(freed)."""
        cdef Member *p = self._member(node_id)
        cdef uint64_t v = 0
        cdef int r = index_arg(match_index, &v)
        cdef bint grew = r == 0 and v > p.match
        if grew:
            p.match = v
            if p.next_m1 < v:
                p.next_m1 = v
        if p.mode == C_PROBE:
            # only the answer to the probe itself (at next - 1 or beyond) locates the follower
            if r == 0 and v >= p.next_m1:
                p.mode = C_PIPELINE
                p.paused = 0
                p.next_m1 = p.match
        elif p.mode == C_SNAPSHOT:
            if p.match >= p.snap:
                p.mode = C_PIPELINE
                p.next_m1 = p.match
                p.paused = 0
        else:
            self._free_upto(p, p.match)
        return grew

    def on_reject(self, node_id, rejected_index, next_hint):
        """A rejected AppendEntries whose prev_log_index was ``rejected_index``; ``next_hint``
        is where the leader would resume from the follower's hint (Raft §5.3). Stale
        rejections (at or below match; PROBE: not the outstanding probe; SNAPSHOT: any) are
        ignored and return False: a rejection at or below match cannot move next, so answering
        it with a resend would repeat the same probe once per rejection (the next heartbeat
        retries it). Otherwise the member goes to PROBE with an empty
        window and next = max(min(rejected_index, next_hint), match + 1); returns True. O(1).
        """
        cdef Member *p = self._member(node_id)
        cdef uint64_t rej = 0, hint = 0, nxt
        cdef int rr = index_arg(rejected_index, &rej), rh = index_arg(next_hint, &hint)
        if p.mode == C_PIPELINE:
            if rr < 0 or rej <= p.match:
                return False
        elif p.mode == C_PROBE:
            if rr < 0 or rej != p.next_m1 or rej <= p.match:
                return False
        else:
            return False
        # next = max(min(rej, hint), match + 1); a negative hint is below match + 1
        nxt = rej if rh < 0 or rej < hint else hint
        if rh < 0 or nxt <= p.match:
            p.next_m1 = p.match
        else:
            p.next_m1 = nxt - 1
        p.mode = C_PROBE
        p.paused = 0
        p.if_count = 0
        p.if_head = 0
        return True

    def resume(self, node_id):
        """Let the next probe go to ``node_id`` (an answer arrived or a heartbeat interval
        passed). No effect outside PROBE. O(1)."""
        cdef Member *p = self._member(node_id)
        if p.mode == C_PROBE:
            p.paused = 0

    def become_probe(self, node_id):
        """Back to PROBE from any mode with an empty window, next = match + 1 (the member is
        unreachable or the snapshot failed). O(1)."""
        cdef Member *p = self._member(node_id)
        p.mode = C_PROBE
        p.paused = 0
        p.next_m1 = p.match
        p.if_count = 0
        p.if_head = 0

    def become_snapshot(self, node_id, snapshot_index):
        """Pause entries to ``node_id`` while a snapshot covering up to ``snapshot_index`` is
        sent (Raft §7). Raises ValueError if snapshot_index <= match. O(1)."""
        cdef Member *p = self._member(node_id)
        cdef uint64_t v = 0
        if index_arg(snapshot_index, &v) < 0 or v <= p.match:
            raise ValueError(
                f"snapshot up to {snapshot_index} is not ahead of match {p.match}")
        p.mode = C_SNAPSHOT
        p.snap = v
        p.paused = 0
        p.if_count = 0
        p.if_head = 0

    def on_snapshot_done(self, node_id, snapshot_index):
        """``node_id`` installed a snapshot up to ``snapshot_index``: match rises to it, then
        PROBE from match + 1 (entries after the snapshot follow). O(1)."""
        cdef Member *p = self._member(node_id)
        cdef uint64_t v = 0
        if index_arg(snapshot_index, &v) == 0 and v > p.match:
            p.match = v
        p.mode = C_PROBE
        p.paused = 0
        p.next_m1 = p.match
        p.if_count = 0
        p.if_head = 0

    cdef void _free_upto(self, Member *p, uint64_t index) noexcept:
        cdef Py_ssize_t w = self.max_inflight, h = p.if_head, c = p.if_count
        cdef uint64_t *ring = self._if_buf + (p - self._m) * w
        while c and ring[h] <= index:
            h = (h + 1) % w
            c -= 1
        p.if_head = h if c else 0
        p.if_count = c

    # -- quorums -------------------------------------------------------------------------------

    def committed_index(self):
        """The highest index matched by a majority of every voter configuration (Raft §5.3,
        §6); 0 with no member. The engine commits it only if its term is the leader's
        (Raft §5.4.2). O(members log members)."""
        return quorum_value(self._m, self._n, self._scratch, False)

    def mark_active(self, node_id):
        """``node_id`` was heard from (check-quorum). O(1)."""
        self._member(node_id).active = 1

    def is_active(self, node_id):
        """Whether ``node_id`` was heard from since the last ``reset_active``. O(1)."""
        return self._member(node_id).active != 0

    def reset_active(self):
        """Forget who was heard from: a new check-quorum period starts. O(members)."""
        cdef Py_ssize_t s
        for s in range(self._n):
            self._m[s].active = 0

    def quorum_active(self):
        """Whether a majority of every voter configuration was heard from (a leader that is
        not stays no longer: check-quorum, thesis §6.2). O(members)."""
        return majority_active(self._m, self._n)

    def on_seq_ack(self, node_id, seq):
        """``node_id`` acknowledged the leader's round ``seq`` (and so every earlier one).
        O(1)."""
        cdef Member *p = self._member(node_id)
        cdef uint64_t v = 0
        if index_arg(seq, &v) == 0 and v > p.seq:
            p.seq = v

    def acked_seq(self, node_id):
        """The highest round ``node_id`` acknowledged. O(1)."""
        return self._member(node_id).seq

    def quorum_seq(self):
        """The highest round acknowledged by a majority of every voter configuration: reads
        registered before that round may be served (ReadIndex, thesis §6.4). O(members log
        members)."""
        return quorum_value(self._m, self._n, self._scratch, True)

    # -- votes ---------------------------------------------------------------------------------

    def reset_votes(self):
        """Forget every vote: a new election or pre-vote starts. O(members)."""
        cdef Py_ssize_t s
        for s in range(self._n):
            self._m[s].vote = NO_VOTE

    def record_vote(self, node_id, granted):
        """Record ``node_id``'s answer; the first answer of a member counts, later ones are
        ignored. Returns False (and records nothing) for a learner. O(1)."""
        cdef Member *p = self._member(node_id)
        if not p.role:
            return False
        if p.vote == NO_VOTE:
            p.vote = GRANTED if granted else REJECTED
        return True

    def vote_result(self):
        """VOTE_WON once a majority of every configuration granted, VOTE_LOST once some
        configuration can no longer reach a majority, else VOTE_PENDING (Raft §5.2, §6).
        O(members)."""
        return majority_vote(self._m, self._n)

    def __repr__(self):
        cdef Py_ssize_t s
        cdef Member *p
        parts = []
        for s in range(self._n):
            p = &self._m[s]
            mode = ("probe", "pipeline", "snapshot")[p.mode]
            parts.append(f"{self._ids[s]}:{'v' if p.role else 'l'} m={p.match} "
                         f"n={plus1(p.next_m1)} {mode} if={p.if_count}")
        return f"ProgressTracker({'; '.join(parts)})"
