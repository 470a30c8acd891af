"""Leader election (Raft §5.2), pre-vote (thesis §9.6) and check-quorum (thesis §6.2).

A follower that hears no leader for a randomized timeout (drawn from the engine's own seeded
generator) campaigns: with pre-vote it first asks whether a majority would vote for it in the
next term, without anyone changing term or vote, and only then raises its term. With
check-quorum, a follower that heard from a leader within the minimum election timeout ignores
vote requests (thesis §4.2.3), and a leader that did not hear from a quorum within that time
steps down. Together they keep a node rejoining after a partition from deposing a healthy
leader.

Reads: ``vote``, ``role``, ``leader_id``, ``_leader_contact_at``, the membership,
``committed``, the log's last id, ``config``, ``_now``. Writes: ``_election_deadline`` (drawn
from ``_rng``), ``_check_quorum_at``, the vote it grants (``_set_vote``), the tally in
``progress``. Role changes go through roles.py, messages through outbox.py.

Invariant: a candidate's vote requests leave only once its own vote is durable, and a vote
reply leaves only once the vote it reports is durable.
Invariant: at most one vote per term: ``vote.node_id`` changes only from 0 within a term.
"""

from __future__ import annotations

from fastraft.messages import VoteRequest, VoteResponse
from fastraft.types import Vote

from .guard import CEILING
from .state import Role

__all__ = ["ElectionMixin"]


class ElectionMixin:
    def _init_election(self) -> None:
        self._election_deadline = float("inf")

    def _reset_election_timer(self) -> None:
        c = self.config
        self._election_deadline = self._now + self._rng.uniform(c.election_timeout_min_s,
                                                                c.election_timeout_max_s)

    def _can_campaign(self) -> bool:
        """A voter of the effective membership may campaign, and so may a voter of the previous
        one while the effective one is uncommitted: it may be the only node holding the new
        configuration, and the cluster needs it until C_new commits (thesis §4.2.2). Learners
        never campaign, and neither does a node whose next term would reach the guard's
        ceiling (guard.py)."""
        if self.vote.term + 1 >= CEILING:
            return False
        if self._membership.membership.is_voter(self.id):
            return True
        m = self._membership
        return (m.log_id is not None and m.log_id.index > self.committed
                and self._prev_membership.membership.is_voter(self.id))

    def _track_membership(self) -> None:
        """Point the tracker at the effective membership (votes, progress, quorums)."""
        m = self._membership.membership
        if not m.configs:
            return
        joint = sorted(m.configs[1]) if m.is_joint else []
        self.progress.set_membership(sorted(m.configs[0]), joint, sorted(m.learner_ids()),
                                     self.log.last_index + 1)

    # -- campaigning -----------------------------------------------------------------------------

    def trigger_elect(self) -> None:
        """Admin: campaign now, as if the election timeout fired (no-op on a leader or a
        learner)."""
        if self.role != Role.LEADER:
            self._on_election_timeout()
            self._notify()

    def _on_election_timeout(self) -> None:
        self._reset_election_timer()
        if not self._can_campaign():
            return
        if self.config.pre_vote:
            self._become_pre_candidate()
        else:
            self._become_candidate(transfer=False)
        self._notify()

    def _start_tally(self) -> None:
        self._track_membership()
        self.progress.reset_votes()
        if self.progress.is_tracked(self.id):
            self.progress.record_vote(self.id, True)

    def _vote_request(self, term: int, pre_vote: bool, transfer: bool) -> VoteRequest:
        return VoteRequest(term=term, sender=self.id, last_log_term=self.log.last_term,
                           last_log_index=self.log.last_index, pre_vote=pre_vote,
                           leader_transfer=transfer)

    def _log_up_to_date(self, msg: VoteRequest) -> bool:
        """Raft §5.4.1: the candidate's last log id is at least ours."""
        return (msg.last_log_term, msg.last_log_index) >= (self.log.last_term, self.log.last_index)

    def _in_leader_lease(self) -> bool:
        """A leader was heard from within the minimum election timeout (thesis §4.2.3), or this
        node leads: ignore disruptive vote requests."""
        if not self.config.check_quorum:
            return False
        if self.role == Role.LEADER:
            return True
        return (self.leader_id != 0
                and self._now - self._leader_contact_at < self.config.election_timeout_min_s)

    def _handle_vote_request(self, msg: VoteRequest, reply_to=None) -> None:
        """Any role, after the term rule (roles.py): the term is the current one, or, for a
        pre-vote, the next one. Grants at most one vote per term, to a candidate whose log
        is at least as up to date (Raft §5.2, §5.4.1); the answer of a real vote leaves once
        the vote is durable."""
        if msg.pre_vote:
            grant = msg.term > self.vote.term and self._log_up_to_date(msg)
            # a pre-vote changes nothing here, so the answer depends on no durable state
            self._send(msg.sender, VoteResponse(term=msg.term if grant else self.vote.term,
                                                sender=self.id, granted=grant, pre_vote=True),
                       reply_to=reply_to)
            return
        grant = self.vote.node_id in (0, msg.sender) and self._log_up_to_date(msg)
        if grant:
            if self.vote.node_id == 0:
                self._set_vote(Vote(msg.term, msg.sender))
            self._reset_election_timer()
        self._send(msg.sender, VoteResponse(term=self.vote.term, sender=self.id, granted=grant),
                   after_vote=True, reply_to=reply_to)

    def _handle_vote_response(self, msg: VoteResponse) -> None:
        """A (pre-)candidate, after the term rule: count the answer to its current campaign
        (a pre-vote grant names term + 1, a refusal any term not newer; a vote, this term)."""
        if msg.pre_vote:
            if self.role != Role.PRE_CANDIDATE:
                return
            if msg.granted and msg.term != self.vote.term + 1:
                return  # an answer to an older pre-vote
        elif self.role != Role.CANDIDATE:
            return
        if self.progress.is_tracked(msg.sender):
            self.progress.record_vote(msg.sender, msg.granted)
        self._check_election()

    # -- check-quorum ----------------------------------------------------------------------------

    def _maybe_check_quorum(self) -> None:
        """Leader, once per minimum election timeout: step down unless a quorum of every
        configuration was heard from since the last check (thesis §6.2)."""
        if self._now < self._check_quorum_at:
            return
        self._check_quorum_at = self._now + self.config.election_timeout_min_s
        if not self.config.check_quorum:
            return
        if not self.progress.quorum_active():
            self._become_follower(self.vote.term, 0)
            return
        self.progress.reset_active()
        if self.progress.is_tracked(self.id):
            self.progress.mark_active(self.id)
