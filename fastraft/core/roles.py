"""Terms and roles: the rule every message's term obeys (Raft §5.1) and every role transition.

The term rule runs once per message, in ``Engine.step``, before the role's handler sees it:

* **newer term** (Raft §5.1): adopt it and become a follower; of the sender if the message is a
  leader's request (AppendEntries, InstallSnapshot, TimeoutNow), else of nobody yet. A request
  is then handled in the new term; a response has nothing left to answer and is dropped.
  Three exceptions: a vote request (or pre-vote) while a leader is known is ignored, term and
  all, unless it is a leadership transfer's (thesis §4.2.3 leader lease with check-quorum,
  §3.10); a pre-vote request changes no term (thesis §9.6: it asks about term + 1 without
  claiming it); and a pre-vote response matters only to a pre-candidate, which moves to a
  newer term only on a refusal (a grant names the term it would campaign in).
* **older term**: a request is answered with the current term, so its sender learns that it
  is out of date (Raft §5.1: it reverts to follower); a response is dropped. Exception: a
  pre-vote refusal carries the voter's own term, which may be older, and still counts.
* **same term**: handled by the role.

Transitions (the only places ``role`` changes, apart from ``_refresh_role`` which tells a
follower from a learner when the membership moves): ``_become_follower``,
``_become_pre_candidate``, ``_become_candidate``, ``_become_leader``; ``_check_election``
moves a (pre-)candidate on when its tally is decided.

Reads: ``vote``, ``role``, ``leader_id``, the membership, ``config``, ``progress`` (the
tally). Writes: ``role``, ``leader_id``, the vote (``_set_vote``). Calls the other concerns
only through their start and stop hooks: ``_start_leading`` (replication),
``_on_leader_start_reads``, ``_on_leader_start_membership``, and, on losing leadership,
``_fail_reads``, ``_end_transfer_on_step_down``, ``_fail_membership_change``,
``_stop_replication``.
"""

from __future__ import annotations

from fastraft.messages import (AppendEntriesRequest, AppendEntriesResponse,
                               InstallSnapshotRequest, TimeoutNowRequest, TimeoutNowResponse,
                               VoteRequest, VoteResponse)
from fastraft.types import Vote

from ._prims import progress as _progress
from .state import Role

__all__ = ["RolesMixin", "FROM_LEADER", "REQUESTS"]

#: The requests only a leader sends: a newer term in one names its sender as the leader.
FROM_LEADER = frozenset((AppendEntriesRequest, InstallSnapshotRequest, TimeoutNowRequest))
#: Every request (the rest are responses).
REQUESTS = FROM_LEADER | {VoteRequest}


class RolesMixin:
    # -- the term rule (Raft §5.1) ---------------------------------------------------------------

    def _heed_other_term(self, msg, t, reply_to) -> bool:
        """Apply the term rule (module docstring) to ``msg`` of type ``t``, whose term differs
        from the current one. True if the message still needs its role's handler."""
        term = self.vote.term
        if t is VoteResponse and msg.pre_vote:
            if self.role != Role.PRE_CANDIDATE:
                return False
            if msg.granted or msg.term < term:
                return True
            self._become_follower(msg.term, 0)  # refused by a voter in a newer term
            return False
        if msg.term > term:
            if t is VoteRequest:
                if self._in_leader_lease() and not self._transfer_bypass_allowed(msg):
                    # a healthy leader is known: no answer, the candidate times out again
                    self._no_answer(reply_to, "a leader is known (thesis §4.2.3): vote "
                                              "request ignored")
                    return False
                if msg.pre_vote:
                    return True
            self._become_follower(msg.term, msg.sender if t in FROM_LEADER else 0)
            return t in REQUESTS
        self._answer_stale(msg, t, reply_to)
        return False

    def _answer_stale(self, msg, t, reply_to) -> None:
        """A request from an older term gets a refusal in the current term; the refusal waits
        for that term to be durable, except a pre-vote's, which depends on nothing stored."""
        term = self.vote.term
        if t is AppendEntriesRequest:
            self._send(msg.sender, AppendEntriesResponse(
                term=term, sender=self.id, success=False, match_index=msg.prev_log_index,
                seq=msg.seq), after_vote=True, reply_to=reply_to)
        elif t is InstallSnapshotRequest:
            self._reply_snapshot(msg.sender, msg.snapshot_id, 0, False, reply_to)
        elif t is TimeoutNowRequest:
            self._send(msg.sender, TimeoutNowResponse(term=term, sender=self.id),
                       after_vote=True, reply_to=reply_to)
        elif t is VoteRequest:
            self._send(msg.sender, VoteResponse(term=term, sender=self.id, granted=False,
                                                pre_vote=msg.pre_vote),
                       after_vote=not msg.pre_vote, reply_to=reply_to)

    # -- transitions -----------------------------------------------------------------------------

    def _become_follower(self, term: int, leader_id: int) -> None:
        """Follow ``leader_id`` (0: unknown) in ``term`` >= the current term (Raft §5.1)."""
        if term > self.vote.term:
            self._set_vote(Vote(term, 0))
        was_leader = self.role == Role.LEADER
        self.role = Role.FOLLOWER
        self.leader_id = leader_id
        self._refresh_role()
        if was_leader:
            # answer everything that waited on this node's leadership
            self._fail_reads()
            self._end_transfer_on_step_down()
            self._fail_membership_change()
            self._stop_replication()
        self._reset_election_timer()

    def _become_pre_candidate(self) -> None:
        """Ask for pre-votes in term + 1 without changing term or vote (thesis §9.6)."""
        self.role = Role.PRE_CANDIDATE
        self.leader_id = 0
        self._start_tally()
        req = self._vote_request(self.vote.term + 1, True, False)
        for v in self._membership.membership.voter_ids():
            if v != self.id:
                self._send(v, req)
        self._check_election()

    def _become_candidate(self, transfer: bool) -> None:
        """Raise the term, vote for self, ask every voter (Raft §5.2). The requests and the
        own vote count only once the vote is durable."""
        term = self.vote.term + 1
        self._set_vote(Vote(term, self.id))
        self.role = Role.CANDIDATE
        self.leader_id = 0
        self._start_tally()
        req = self._vote_request(term, False, transfer)
        for v in self._membership.membership.voter_ids():
            if v != self.id:
                self._send(v, req, after_vote=True)
        self._check_election()

    def _become_leader(self) -> None:
        """Won the election: reset every follower's progress, append the blank entry of the
        term (Raft §5.4.2, §8) and start replicating it at once."""
        self.role = Role.LEADER
        self.leader_id = self.id
        self._on_leader_start_reads()
        self._start_leading()
        self._on_leader_start_membership()
        self._replicate_all()
        self._notify()

    def _check_election(self) -> None:
        """A (pre-)candidate whose tally is decided moves on: lost, back to follower; a won
        pre-vote, to candidate; a won vote, once its own vote is durable, to leader."""
        if self.role not in (Role.PRE_CANDIDATE, Role.CANDIDATE):
            return
        result = self.progress.vote_result()
        if result == _progress.VOTE_LOST:
            self.role = Role.FOLLOWER
            self._refresh_role()
        elif result == _progress.VOTE_WON:
            if self.role == Role.PRE_CANDIDATE:
                self._become_candidate(transfer=False)
            elif self._vote_durable(self.vote):
                self._become_leader()

    def _refresh_role(self) -> None:
        """Followers and learners differ only by membership: recompute after it changes."""
        if self.role in (Role.FOLLOWER, Role.LEARNER):
            self.role = Role.FOLLOWER if self._can_campaign() else Role.LEARNER
        elif self.role in (Role.CANDIDATE, Role.PRE_CANDIDATE) and not self._can_campaign():
            self.role = Role.LEARNER
