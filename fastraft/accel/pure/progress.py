"""The progress tracker, pure-Python twin of ``fastraft.accel.compiled.progress`` (this file is
the spec).

A leader's view of every member (voters of one or two configurations, and learners), kept in
flat per-slot arrays of ints:

* replication (Raft §5.3, thesis §10.2.2 pipelining): ``match`` (highest index known
  replicated), ``next`` (next index to send), a mode (PROBE: one message at a time until the
  follower's log position is found; PIPELINE: up to ``max_inflight`` messages in flight;
  SNAPSHOT: entries paused while a snapshot is sent), and a bounded window of in-flight
  messages, each remembered by the last index it carried;
* the commit index a quorum of voters has matched, for a uniform or a joint configuration
  (Raft §6: joint consensus needs a majority of each; learners never count);
* the vote tally of an election or pre-vote (won / lost / pending), same quorum rules;
* check-quorum (which voters were heard from since the last reset) and ReadIndex (the highest
  round ``seq`` a quorum has acknowledged, thesis §6.4).

The tracker knows nothing of who the leader is: the engine feeds its own progress in like any
other member's (``update_match`` with its flushed index, ``record_vote``, ``mark_active``,
``on_seq_ack``).

Invariant: for every member, match < next, except in SNAPSHOT mode where next is unused.
Invariant: in-flight entries of a member are increasing last indexes, all > match, at most
    ``max_inflight`` of them; only PIPELINE mode has any.
Invariant: every voter is tracked; a tracked id is either a voter or a learner, never both.

Every method taking a node id raises ValueError if that id is not tracked. Index and round
arguments are u64, as on the wire: a value above 2**64 - 1 raises OverflowError (a negative one
just compares below every index). Nothing changes when a method raises.
"""

from __future__ import annotations

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

_MAX_U64 = (1 << 64) - 1

# Bits of _role: which voter configuration a member belongs to (none: a learner).
_IN_A = 1
_IN_B = 2
# Values of _vote.
_NO_VOTE = 0
_GRANTED = 1
_REJECTED = 2


class ProgressTracker:
    """Per-member replication progress, quorums and tallies. See the module docstring.

    ``max_inflight`` (>= 1) bounds the messages in flight to one member in PIPELINE mode.
    Starts with no member: call ``set_membership`` first.
    """

    __slots__ = (
        "max_inflight", "_slot", "_ids", "_role", "_match", "_next", "_mode", "_paused",
        "_snap", "_active", "_seq", "_vote", "_if_buf", "_if_head", "_if_count", "_joint",
    )

    def __init__(self, max_inflight: int) -> None:
        max_inflight = int(max_inflight)
        if max_inflight < 1:
            raise ValueError(f"max_inflight must be >= 1, got {max_inflight}")
        self.max_inflight = max_inflight
        self._slot: dict[int, int] = {}
        self._ids: list[int] = []
        self._role: list[int] = []
        self._match: list[int] = []
        self._next: list[int] = []
        self._mode: list[int] = []
        self._paused: list[int] = []
        self._snap: list[int] = []
        self._active: list[int] = []
        self._seq: list[int] = []
        self._vote: list[int] = []
        self._if_buf: list[int] = []
        self._if_head: list[int] = []
        self._if_count: list[int] = []
        self._joint = False

    # -- membership ----------------------------------------------------------------------------

    def set_membership(self, voters, joint_voters, learners, next_index: int) -> None:
        """Track exactly the given members: ``voters`` (a non-empty configuration),
        ``joint_voters`` (the second configuration of a joint consensus, or empty) and
        ``learners`` (members in neither). Members already tracked keep all their state; new
        ones start in PROBE with match 0, next ``next_index``, no vote, inactive, seq 0.

        Raises ValueError if ``voters`` is empty, an id is not positive, a learner is also a
        voter, or next_index < 1. O(members).
        """
        a = sorted({int(i) for i in voters})
        b = sorted({int(i) for i in joint_voters})
        ls = sorted({int(i) for i in learners})
        if not a:
            raise ValueError("the voter configuration must not be empty")
        if next_index < 1:
            raise ValueError(f"next_index must be >= 1, got {next_index}")
        for i in a + b + ls:
            if i <= 0:
                raise ValueError(f"node id must be positive, got {i}")
        both = set(a) | set(b)
        for i in ls:
            if i in both:
                raise ValueError(f"node {i} cannot be both a voter and a learner")
        _check_u64(next_index)
        sa, sb = set(a), set(b)
        ids = sorted(both | set(ls))
        w = self.max_inflight
        old = self._slot
        new_state = []
        for i in ids:
            role = (_IN_A if i in sa else 0) | (_IN_B if i in sb else 0)
            s = old.get(i)
            if s is None:
                new_state.append((i, role, 0, next_index, PROBE, 0, 0, 0, 0, _NO_VOTE, []))
            else:
                h, c = self._if_head[s], self._if_count[s]
                window = [self._if_buf[s * w + (h + k) % w] for k in range(c)]
                new_state.append((i, role, self._match[s], self._next[s], self._mode[s],
                                  self._paused[s], self._snap[s], self._active[s],
                                  self._seq[s], self._vote[s], window))
        self._slot = {st[0]: k for k, st in enumerate(new_state)}
        self._ids = [st[0] for st in new_state]
        self._role = [st[1] for st in new_state]
        self._match = [st[2] for st in new_state]
        self._next = [st[3] for st in new_state]
        self._mode = [st[4] for st in new_state]
        self._paused = [st[5] for st in new_state]
        self._snap = [st[6] for st in new_state]
        self._active = [st[7] for st in new_state]
        self._seq = [st[8] for st in new_state]
        self._vote = [st[9] for st in new_state]
        self._if_buf = [0] * (w * len(new_state))
        self._if_head = [0] * len(new_state)
        self._if_count = [len(st[10]) for st in new_state]
        for k, st in enumerate(new_state):
            self._if_buf[k * w:k * w + len(st[10])] = st[10]
        self._joint = bool(b)

    @property
    def is_joint(self) -> bool:
        """True when two voter configurations are tracked (joint consensus). O(1)."""
        return self._joint

    def node_ids(self) -> list[int]:
        """Every tracked id, ascending. O(members)."""
        return list(self._ids)

    def voter_ids(self) -> list[int]:
        """The ids that vote in some configuration, ascending. O(members)."""
        return [i for i, r in zip(self._ids, self._role) if r]

    def learner_ids(self) -> list[int]:
        """The tracked ids that vote in no configuration, ascending. O(members)."""
        return [i for i, r in zip(self._ids, self._role) if not r]

    def is_tracked(self, node_id: int) -> bool:
        """Whether ``node_id`` is a member. O(1)."""
        return node_id in self._slot

    def is_voter(self, node_id: int) -> bool:
        """Whether ``node_id`` votes in some configuration (False if untracked). O(1)."""
        s = self._slot.get(node_id)
        return s is not None and self._role[s] != 0

    # -- per-member reads ----------------------------------------------------------------------

    def _s(self, node_id: int) -> int:
        s = self._slot.get(node_id)
        if s is None:
            raise ValueError(f"node {node_id} is not tracked")
        return s

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
        _check_u64(next_index)
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
        _check_u64(index)
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
        _check_u64(last_index)
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
        _check_u64(match_index)
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
        _check_u64(rejected_index)
        _check_u64(next_hint)
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
        _check_u64(snapshot_index)
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
        _check_u64(snapshot_index)
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

    def _quorum_value(self, values: list) -> int:
        # Per config, the largest v that a majority holds (>= v); joint: the least of the two.
        # Sorting a handful of ints: members are few.
        res = -1
        for bit in (_IN_A, _IN_B):
            vals = sorted((v for v, r in zip(values, self._role) if r & bit), reverse=True)
            if not vals:
                continue
            q = vals[len(vals) // 2]
            if res < 0 or q < res:
                res = q
        return res if res >= 0 else 0

    def committed_index(self) -> int:
        """The highest index matched by a majority of every voter configuration (Raft §5.3,
        §6); 0 with no member. The engine commits it only if its term is the leader's
        (Raft §5.4.2). O(members log members)."""
        return self._quorum_value(self._match)

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
        for bit in (_IN_A, _IN_B):
            n = 0
            active = 0
            for a, r in zip(self._active, self._role):
                if r & bit:
                    n += 1
                    active += a
            if n and active < n // 2 + 1:
                return False
        return bool(self._ids)

    def on_seq_ack(self, node_id: int, seq: int) -> None:
        """``node_id`` acknowledged the leader's round ``seq`` (and so every earlier one).
        O(1)."""
        s = self._s(node_id)
        _check_u64(seq)
        if seq > self._seq[s]:
            self._seq[s] = seq

    def acked_seq(self, node_id: int) -> int:
        """The highest round ``node_id`` acknowledged. O(1)."""
        return self._seq[self._s(node_id)]

    def quorum_seq(self) -> int:
        """The highest round acknowledged by a majority of every voter configuration: reads
        registered before that round may be served (ReadIndex, thesis §6.4). O(members log
        members)."""
        return self._quorum_value(self._seq)

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
        won = True
        for bit in (_IN_A, _IN_B):
            n = g = r = 0
            for v, role in zip(self._vote, self._role):
                if role & bit:
                    n += 1
                    if v == _GRANTED:
                        g += 1
                    elif v == _REJECTED:
                        r += 1
            if not n:
                continue
            q = n // 2 + 1
            if r > n - q:
                return VOTE_LOST
            if g < q:
                won = False
        if not self._ids:
            return VOTE_PENDING
        return VOTE_WON if won else VOTE_PENDING

    def __repr__(self) -> str:
        parts = []
        for s, i in enumerate(self._ids):
            mode = ("probe", "pipeline", "snapshot")[self._mode[s]]
            parts.append(f"{i}:{'v' if self._role[s] else 'l'} m={self._match[s]} "
                         f"n={self._next[s]} {mode} if={self._if_count[s]}")
        return f"ProgressTracker({'; '.join(parts)})"


def _check_u64(value: int) -> None:
    # What the tracker stores is a log index or a round: a u64, as on the wire (the compiled
    # tracker keeps them in C words, so a larger value has nowhere to go).
    if value > _MAX_U64:
        raise OverflowError(f"{value} does not fit in an unsigned 64-bit integer")
