"""Cluster membership (Raft §6, thesis §4): initialize, add a learner, change the voters by
joint consensus (C_old,new, then C_new), one change at a time, as openraft's
``change_membership(members, retain)``.

A membership takes effect as soon as its entry is in the log, committed or not (thesis §4.1);
when a truncation removes it, the previous one comes back. A leader appends a membership only
once the previous one committed and once it committed an entry of its own term, so at most the
last membership entry of any log is uncommitted: the engine keeps that one and the one before.
A leader not among the new voters steps down once C_new commits (thesis §4.2.2).

Reads: ``role``, ``vote``, ``committed``, ``flushed``, the log, ``config``, ``progress``,
``_leader_first_index`` (replication.py). Writes: ``_membership``, ``_prev_membership``,
``_committed_membership``, ``_change``, ``_catch_up``; appends membership entries (and, on
initialize, the first vote). Calls roles.py (``_refresh_role``; ``_become_follower`` for a
leader removed), replication.py (``_replicate_all``) and transfer.py.

Invariant: the effective membership is the last membership entry of the log (or of the
snapshot when the log holds none).
Invariant: a leader has at most one membership change in progress; blocking add_learner
requests whose entry committed wait apart (bounded per learner) and block no change.
"""

from __future__ import annotations

from typing import Hashable, Mapping

from fastraft.errors import Busy, MembershipError, OutcomeUnknown
from fastraft.types import EntryKind, LogId, Membership, Node, StoredMembership, Vote

from .commands import AppendLog, MembershipChanged, Respond
from .state import Role

__all__ = ["MembershipMixin"]

# Blocking add_learner requests that may wait for one learner at a time.
_MAX_CATCH_UP_WAITERS = 16


def _index(sm: StoredMembership) -> int:
    return sm.log_id.index if sm.log_id is not None else 0


class _Change:
    """A membership request in progress on the leader."""

    __slots__ = ("request_id", "kind", "wait_index", "retain", "node_id", "blocking")

    def __init__(self, request_id, kind, wait_index, retain=True, node_id=0, blocking=False):
        self.request_id = request_id
        self.kind = kind  # "learner", "joint" or "final"
        self.wait_index = wait_index
        self.retain = retain
        self.node_id = node_id
        self.blocking = blocking


class _CatchUpWaiter:
    """A blocking add_learner request whose entry ``log_id`` committed, waiting for its
    learner to catch up."""

    __slots__ = ("request_id", "log_id")

    def __init__(self, request_id: Hashable, log_id: LogId) -> None:
        self.request_id = request_id
        self.log_id = log_id


class MembershipMixin:
    def _init_membership(self) -> None:
        self._change: _Change | None = None
        # blocking add_learner requests waiting for their learner, by learner id, oldest first
        self._catch_up: dict[int, list[_CatchUpWaiter]] = {}

    # -- requests --------------------------------------------------------------------------------

    def initialize(self, request_id: Hashable, nodes: Mapping[int, Node]) -> None:
        """Admin: make a brand-new node the first member of a cluster of ``nodes`` (all voters).
        Appends the membership at log id (1, 1) and moves to term 1. Call it on one node (or
        on every node with the same ``nodes``: their entries are then identical).

        Answers ``Respond(request_id, result=LogId(1, 1))``, or a MembershipError if the node
        has a log or a membership already, or ``nodes`` is not a valid membership including
        this node. A saved vote alone does not count: a node that crashed after saving the
        vote of an earlier ``initialize`` but before its entry was durable may be initialized
        again (its vote never goes back)."""
        if self.log.last_index or self.log.purged_index or self._membership.membership.configs:
            self._emit(Respond(request_id, error=MembershipError("already initialized")))
            return
        try:
            m = Membership.uniform(nodes)
        except (ValueError, TypeError) as e:
            self._emit(Respond(request_id, error=MembershipError(f"bad membership: {e}")))
            return
        if self.id not in m.nodes:
            self._emit(Respond(request_id, error=MembershipError(
                f"node {self.id} must be one of the nodes it initializes")))
            return
        if self.vote.term == 0:
            self._set_vote(Vote(1, 0))
        entries = self.log.append_payloads(1, EntryKind.MEMBERSHIP, [m.to_bytes()])
        self._emit(AppendLog(entries, LogId(1, 1)))
        self._apply_membership(entries[0], m)
        self._reset_election_timer()
        self._emit(Respond(request_id, result=LogId(1, 1)))
        self._notify()

    def add_learner(self, request_id: Hashable, node_id: int, node: Node,
                    blocking: bool = True) -> None:
        """Admin (leader): add ``node_id`` at ``node`` as a learner (it replicates, never
        votes), or update the address of a member. Answers with the membership entry's log id
        once it commits and, if ``blocking``, once the learner lags the leader by fewer than
        ``replication_lag_threshold`` entries (thesis §4.2.1 catch-up)."""
        if type(node_id) is not int or node_id <= 0 or not isinstance(node, Node):
            raise ValueError("add_learner needs a positive node id and a Node")
        if not self._ready_for_change(request_id):
            return
        m = self._membership.membership
        if m.nodes.get(node_id) == node:
            self._emit(Respond(request_id, result=self._membership.log_id))
            return
        nodes = dict(m.nodes)
        nodes[node_id] = node
        idx = self._append_membership(Membership(m.configs, nodes))
        self._change = _Change(request_id, "learner", idx, node_id=node_id, blocking=blocking)

    def remove_learners(self, request_id: Hashable, node_ids) -> None:
        """Admin (leader): drop learners from the membership (voters leave through
        ``change_membership``). Answers with the membership entry's log id once it commits;
        MembershipError if one of them votes or another change is in progress."""
        try:
            ids = frozenset(int(i) for i in node_ids)
        except (TypeError, ValueError):
            raise ValueError(f"node_ids must be node ids, got {node_ids!r}") from None
        if not self._ready_for_change(request_id):
            return
        m = self._membership.membership
        voters = sorted(i for i in ids if m.is_voter(i))
        if voters:
            self._emit(Respond(request_id, error=MembershipError(
                f"nodes {voters} are voters: remove them with change_membership")))
            return
        nodes = {k: v for k, v in m.nodes.items() if k not in ids}
        if len(nodes) == len(m.nodes):
            self._emit(Respond(request_id, result=self._membership.log_id))
            return
        idx = self._append_membership(Membership(m.configs, nodes))
        self._change = _Change(request_id, "learner", idx)

    def change_membership(self, request_id: Hashable, voters, retain: bool = False) -> None:
        """Admin (leader): make ``voters`` the voter set by joint consensus (Raft §6): append
        C_old,new, once it commits append C_new, answer with C_new's log id once that commits.
        Every voter must already be a member (add it as a learner first). Voters removed stay as
        learners if ``retain``, else leave the membership. Refused (MembershipError) while
        another change is in progress or before this leader committed its first entry."""
        try:
            new = frozenset(int(v) for v in voters)
        except (TypeError, ValueError):
            raise ValueError(f"voters must be node ids, got {voters!r}") from None
        if not self._ready_for_change(request_id):
            return
        m = self._membership.membership
        if not new:
            self._emit(Respond(request_id, error=MembershipError("the voter set is empty")))
            return
        missing = sorted(v for v in new if v not in m.nodes)
        if missing:
            self._emit(Respond(request_id, error=MembershipError(
                f"nodes {missing} have no address: add them as learners first")))
            return
        (old,) = m.configs  # not joint: _ready_for_change refused that
        if new == old:
            self._emit(Respond(request_id, result=self._membership.log_id))
            return
        idx = self._append_membership(Membership((old, new), m.nodes))
        self._change = _Change(request_id, "joint", idx, retain=retain)

    def _ready_for_change(self, request_id: Hashable) -> bool:
        if self.role != Role.LEADER:
            self._emit(Respond(request_id, error=self.forward_to_leader()))
            return False
        if (self._change is not None or _index(self._membership) > self.committed
                or self._membership.membership.is_joint):
            self._emit(Respond(request_id, error=MembershipError(
                "a membership change is in progress; retry when it completes")))
            return False
        if self.committed < self._leader_first_index:
            self._emit(Respond(request_id, error=MembershipError(
                "the new leader has not committed its first entry yet; retry shortly")))
            return False
        return True

    def _append_membership(self, m: Membership) -> int:
        entries = self.log.append_payloads(self.vote.term, EntryKind.MEMBERSHIP, [m.to_bytes()])
        e = entries[0]
        self._emit(AppendLog(entries, LogId(e.term, e.index)))
        self._apply_membership(e, m)
        self._replicate_all()
        return e.index

    # -- effective membership --------------------------------------------------------------------

    def _apply_membership(self, entry, membership: Membership) -> None:
        """A membership entry entered the log: it takes effect now (thesis §4.1)."""
        self._prev_membership = self._membership
        self._membership = StoredMembership(LogId(entry.term, entry.index), membership)
        self._membership_changed()

    def _revert_membership(self, after: int) -> None:
        """The log was truncated after ``after``: a membership entry beyond it is gone."""
        if _index(self._membership) > after:
            self._membership = self._prev_membership
            self._membership_changed()

    def _set_membership_from_snapshot(self, sm: StoredMembership) -> None:
        self._membership = self._prev_membership = sm
        self._committed_membership = sm
        self._membership_changed()

    def _membership_changed(self) -> None:
        if self.role == Role.LEADER:
            self._track_membership()
            if self.progress.is_tracked(self.id):
                self.progress.update_match(self.id, self.flushed)
            self._drop_catch_up_of_removed()
        self._refresh_role()
        self._emit(MembershipChanged(self._membership, self._committed_membership))

    def _on_commit_membership(self) -> None:
        """The commit index moved: the committed membership may follow, and a leader's change
        may take its next step."""
        for sm in (self._membership, self._prev_membership):
            if _index(sm) <= self.committed:
                if _index(sm) > _index(self._committed_membership):
                    self._committed_membership = sm
                    self._emit(MembershipChanged(self._membership, sm))
                    self._refresh_role()
                break
        if self.role == Role.LEADER:
            self._continue_change()

    def _continue_change(self) -> None:
        eff = self._membership
        if _index(eff) > self.committed:
            return
        ch = self._change
        m = eff.membership
        if m.is_joint:
            # C_old,new committed: C_new next (also for a joint config inherited from a
            # previous leader, which openraft finishes the same way)
            old_voters, new_voters = m.configs
            nodes = dict(m.nodes)
            if ch is not None and not ch.retain:
                for v in old_voters - new_voters:
                    nodes.pop(v, None)
            idx = self._append_membership(Membership((new_voters,), nodes))
            if ch is not None:
                ch.kind, ch.wait_index = "final", idx
            return
        if ch is not None and self.committed >= ch.wait_index and ch.kind == "final":
            self._change = None
            self._emit(Respond(ch.request_id, result=eff.log_id))
        if not m.is_voter(self.id):
            # C_new committed without this leader: step down (thesis §4.2.2)
            self._become_follower(self.vote.term, 0)
            return
        if ch is None or self.committed < ch.wait_index:
            return
        if ch.kind == "learner":
            # the learner is a member now: the next change may start while this request
            # waits for the learner to catch up
            self._change = None
            # this leader appended the entry, so it carries this leader's term
            lid = LogId(self.vote.term, ch.wait_index)
            if not ch.blocking:
                self._emit(Respond(ch.request_id, result=lid))
                return
            waiting = self._catch_up.setdefault(ch.node_id, [])
            if len(waiting) >= _MAX_CATCH_UP_WAITERS:
                self._emit(Respond(waiting.pop(0).request_id, error=Busy(
                    f"too many requests wait for node {ch.node_id} to catch up")))
            waiting.append(_CatchUpWaiter(ch.request_id, lid))
            self._on_follower_progress(ch.node_id)

    def _on_follower_progress(self, peer: int) -> None:
        """A follower's match moved: a blocking add_learner or a transfer may complete."""
        waiting = self._catch_up.get(peer)
        if waiting:
            p = self.progress
            lag = self.log.last_index - (p.match_index(peer) if p.is_tracked(peer) else 0)
            if lag < self.config.replication_lag_threshold:
                del self._catch_up[peer]
                for w in waiting:
                    self._emit(Respond(w.request_id, result=w.log_id))
        self._maybe_send_timeout_now(peer)

    def _on_leader_start_membership(self) -> None:
        self._change = None
        self._catch_up = {}

    def _fail_membership_change(self) -> None:
        ch = self._change
        if ch is not None:
            self._change = None
            self._emit(Respond(ch.request_id, error=OutcomeUnknown(
                "leadership lost during a membership change; it may still complete")))
        for waiting in self._catch_up.values():
            for w in waiting:
                self._emit(Respond(w.request_id, error=OutcomeUnknown(
                    "leadership lost while the learner caught up; it was added")))
        self._catch_up = {}

    def _drop_catch_up_of_removed(self) -> None:
        m = self._membership.membership
        for node_id in [i for i in self._catch_up if i not in m.nodes]:
            for w in self._catch_up.pop(node_id):
                self._emit(Respond(w.request_id, error=MembershipError(
                    f"node {node_id} was removed before it caught up")))
