"""The member table under the progress tracker, pure-Python twin of
``fastraft.accel.compiled.members`` (this file is the spec).

The members a leader tracks: the voters of one configuration, or of two under joint consensus
(Raft §6), and learners, which vote in neither. Each member has a slot (slots follow the ids
in ascending order) and per slot the state ``ProgressTracker`` (progress) keeps for it, in
flat per-slot lists of ints: its role (which configurations it votes in), replication state
(match, next, mode, paused, snapshot index, in-flight window), check-quorum activity, the
ReadIndex round it acknowledged (seq) and its vote.

Invariant: every voter is tracked; a tracked id is either a voter or a learner, never both.
Invariant: the slot lists all have one item per tracked id; _if_buf has ``max_inflight``
    items per slot (a ring: _if_count items from _if_head).

Every method taking a node id raises ValueError if that id is not tracked. Nothing changes
when a method raises.
"""

from __future__ import annotations

from fastraft.accel.pure.ints import check_u64

__all__ = ["MemberTable", "PROBE", "PIPELINE", "SNAPSHOT"]

#: Replication modes (a new member starts in PROBE).
PROBE = 0
PIPELINE = 1
SNAPSHOT = 2


# Bits of _role: which voter configuration a member belongs to (none: a learner).
IN_A = 1
IN_B = 2
# Values of _vote.
NO_VOTE = 0
GRANTED = 1
REJECTED = 2


class MemberTable:
    """The tracked members: voters of one or two configurations and learners, each with the
    state ``ProgressTracker`` keeps for it. See the module docstring.

    ``max_inflight`` (>= 1) bounds each member's in-flight window. Starts with no member:
    call ``set_membership`` first.
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
        check_u64(next_index)
        sa, sb = set(a), set(b)
        ids = sorted(both | set(ls))
        w = self.max_inflight
        old = self._slot
        new_state = []
        for i in ids:
            role = (IN_A if i in sa else 0) | (IN_B if i in sb else 0)
            s = old.get(i)
            if s is None:
                new_state.append((i, role, 0, next_index, PROBE, 0, 0, 0, 0, NO_VOTE, []))
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

    def _s(self, node_id: int) -> int:
        # The slot of a tracked member; ValueError for any other id (every public method
        # taking a node id finds its slot through here first, before it changes anything).
        s = self._slot.get(node_id)
        if s is None:
            raise ValueError(f"node {node_id} is not tracked")
        return s

