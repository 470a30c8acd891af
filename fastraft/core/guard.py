"""The engine's trust boundary: what a peer's message must satisfy before the engine acts on it.

Raft assumes peers that follow the protocol (Raft §5.1: no Byzantine faults), but a node must
not let one malformed or stray message corrupt its state or stop its cluster. Before
``Engine.step`` dispatches a message, ``_admit`` drops it when:

* **malformed**: a term, index or other integer field is at or beyond ``CEILING`` (2**62), or
  an AppendEntries would end there. Real terms and indexes never come near it (a term per
  nanosecond would take a century), and below it ``term + 1`` or ``index + batch length``
  cannot overflow the u64 fields of the codec, the stores and the compiled core.
* **non-member**: this node holds a configuration and the sender is a voter or learner of
  neither of those it may still act on: the effective one and the committed one (Raft §6,
  thesis §4.1: a node uses the latest configuration in its log, and while that one is
  uncommitted the one before may come back). So a removed node is a stranger once its
  removal commits. A node that holds none yet (new, waiting to be added) takes
  AppendEntries and snapshots from whoever leads, and votes as before (a cluster is
  bootstrapped by one node asking unconfigured peers for votes); anything else it drops.
* **not a voter**: a vote request (or pre-vote) from a node that votes in neither of those
  configurations: it gets no vote and changes no term (thesis §4.2.3, disruptive servers:
  a removed or never-added node cannot depose a leader). Except from a member (a learner
  here) whose last log id is beyond ours: it may have been made a voter by a configuration
  this node has not received, and thesis §4.1 has servers vote without consulting their
  configuration. A node that lagged past its promotion (a joint configuration whose C_new
  needs this node and the candidate, the one log able to win C_old) would otherwise refuse
  the only electable candidate for good. A node that neither configuration names (a
  stranger, or a removed node once its removal is held) still gets no vote, whatever log
  it claims.
* **TimeoutNow not from the leader**: leadership transfer (thesis §3.10) starts an election
  at once, so it is honoured only from the node this one follows, in the current term. (One
  from an older term is still answered with the current term, which stops a stale leader.)

The leader-transfer bypass of the leader lease (thesis §4.2.3 and §3.10) is honoured only
for a candidate that votes in the effective configuration (``_transfer_bypass_allowed``).

Limitation (without authenticated peers): a node that missed every configuration naming the
current leader (partitioned while that leader was added) drops its messages until a leader it
knows is elected, or it is removed and added back.

The engine does no I/O: drops are counted in ``dropped`` (by reason) and each sender's first
drop is queued once for the runtime to log (``take_guard_reports``). A follower that refuses
entries because they would rewrite its committed log (the leader's log lost committed entries:
Raft §5.4's Leader Completeness no longer holds) counts it in ``committed_conflicts`` and
keeps the latest in ``committed_conflict``; that node cannot make progress by itself, so the
runtime reports it as unhealthy.

Reads: ``vote``, ``leader_id``, the membership. Writes only its counters and report queue.

Invariant: a dropped message changes nothing but the counters and the report queue.
"""

from __future__ import annotations

from operator import attrgetter
from typing import NamedTuple

from fastraft.messages import (MESSAGE_TYPES, AppendEntriesRequest, InstallSnapshotRequest,
                               TimeoutNowRequest, VoteRequest, wire_fields)

__all__ = ["CEILING", "MALFORMED", "NON_MEMBER", "NOT_VOTER", "TIMEOUT_NOW_NOT_FROM_LEADER",
           "DROP_REASONS", "GuardMixin", "GuardReport", "CommittedConflict",
           "check_persisted_bound", "check_initial_state"]

#: Every term, index and other integer of a message, and every term and index a node persists,
#: is below this bound.
CEILING = 1 << 62

MALFORMED = "malformed"
NON_MEMBER = "non_member"
NOT_VOTER = "not_voter"
TIMEOUT_NOW_NOT_FROM_LEADER = "timeout_now_not_from_leader"
DROP_REASONS = (MALFORMED, NON_MEMBER, NOT_VOTER, TIMEOUT_NOW_NOT_FROM_LEADER)

#: Senders whose first drop is reported; drops from further senders are only counted, so a
#: flood of forged ids grows neither memory nor the log.
_MAX_REPORTED_SENDERS = 1024

class GuardReport(NamedTuple):
    """The first message dropped from ``sender``: the ``reason`` (one of ``DROP_REASONS``) and
    ``what`` was dropped (its kind and term), for the runtime to log."""

    sender: int
    reason: str
    what: str


class CommittedConflict(NamedTuple):
    """AppendEntries from ``leader_id`` in ``term`` refused because its entry at ``index``
    would rewrite an entry this node holds as committed."""

    leader_id: int
    term: int
    index: int


# The integer fields of each message kind, fetched in one call.
_INTS = {cls: attrgetter(*[name for name, kind in wire_fields(cls) if kind == "u64"])
         for cls in MESSAGE_TYPES.values()}
# What a node that holds no configuration yet takes from anyone: a leader's entries and
# snapshots, and vote requests (a cluster starts by one node asking its new peers for votes).
_UNCONFIGURED_TAKES = frozenset((AppendEntriesRequest, InstallSnapshotRequest, VoteRequest))


def check_persisted_bound(what: str, value: int) -> str | None:
    """A message naming the problem if a persisted term or index ``value`` is out of range
    (negative, or at or beyond CEILING), else None. For the start-up checks of the stores."""
    if 0 <= value < CEILING:
        return None
    return (f"{what} {value} is outside [0, 2**62): the store is damaged or was written by a "
            "node that accepted a forged term; restore this node from a healthy member")


class GuardMixin:
    def _init_guard(self) -> None:
        #: Messages dropped before they were handled, by reason (see the module docstring).
        self.dropped: dict[str, int] = dict.fromkeys(DROP_REASONS, 0)
        #: The sum of ``dropped``: a runtime compares it around ``step`` to learn of a drop.
        self.dropped_total = 0
        self._reported_senders: set[int] = set()
        self._guard_reports: list[GuardReport] = []
        #: AppendEntries refused because they would rewrite committed entries.
        self.committed_conflicts = 0
        #: The latest such refusal, or None.
        self.committed_conflict: CommittedConflict | None = None

    def take_guard_reports(self) -> list[GuardReport]:
        """The first drop of each sender since the last call: one per sender for the life of
        the engine (at most ``_MAX_REPORTED_SENDERS``)."""
        out = self._guard_reports
        if out:
            self._guard_reports = []
        return out

    def _admit(self, msg, sender: int) -> bool:
        """True if ``msg`` from ``sender`` may be handled; else count and drop it."""
        reason = self._refusal(msg, sender)
        if reason is None:
            return True
        self.dropped[reason] += 1
        self.dropped_total += 1
        if sender not in self._reported_senders and \
                len(self._reported_senders) < _MAX_REPORTED_SENDERS:
            self._reported_senders.add(sender)
            self._guard_reports.append(GuardReport(sender, reason, _describe(msg)))
        return False

    def _refusal(self, msg, sender: int) -> str | None:
        t = type(msg)
        ints = _INTS[t](msg)
        if max(ints) >= CEILING or min(ints) < 0:
            return MALFORMED
        if t is AppendEntriesRequest and msg.prev_log_index + len(msg.entries) >= CEILING:
            return MALFORMED
        effective = self._membership.membership
        committed = self._committed_membership.membership  # the same, or the one before
        if not effective.configs:
            # not part of a cluster yet: take what a leader sends and vote (see above); it
            # sent no request, so a response is no answer of its own
            return None if t in _UNCONFIGURED_TAKES else NON_MEMBER
        if t is VoteRequest:
            if effective.is_voter(sender) or committed.is_voter(sender):
                return None
            if (sender in effective.nodes or sender in committed.nodes) and (
                    msg.last_log_term, msg.last_log_index) > (self.log.last_term,
                                                              self.log.last_index):
                # a member whose log is ahead of ours may vote in a configuration we have
                # not received yet (thesis §4.1: a server votes without consulting its
                # configuration); dropping it can leave no electable candidate
                return None
            return NOT_VOTER
        if sender not in effective.nodes and sender not in committed.nodes:
            return NON_MEMBER
        if t is TimeoutNowRequest and msg.term >= self.vote.term and (
                msg.term != self.vote.term or sender != self.leader_id):
            return TIMEOUT_NOW_NOT_FROM_LEADER
        return None

    def _transfer_bypass_allowed(self, msg: VoteRequest) -> bool:
        """Whether ``msg`` may override the leader lease: a transfer's campaign (thesis §3.10)
        by a voter of the effective configuration."""
        return msg.leader_transfer and self._membership.membership.is_voter(msg.sender)

    def _on_committed_conflict(self, leader_id: int, term: int, index: int) -> None:
        self.committed_conflicts += 1
        self.committed_conflict = CommittedConflict(leader_id, term, index)


def _describe(msg) -> str:
    return f"{type(msg).__name__} in term {msg.term}"


def check_initial_state(state) -> None:
    """ValueError if a term or index of a starting state is out of range (see
    ``check_persisted_bound``)."""
    values = [("term", state.vote.term), ("committed index", state.committed),
              ("applied index", state.applied)]
    values += [("log term", t) for t, _ in state.log_runs[-1:]]
    values += [("last log index", i) for _, i in state.log_runs[-1:]]
    if state.purged is not None:
        values += [("purged term", state.purged.term), ("purged index", state.purged.index)]
    if state.snapshot is not None and state.snapshot.last_log_id is not None:
        lid = state.snapshot.last_log_id
        values += [("snapshot term", lid.term), ("snapshot index", lid.index)]
    for what, value in values:
        problem = check_persisted_bound(what, value)
        if problem:
            raise ValueError(problem)
