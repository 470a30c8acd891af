"""The engine: one node's Raft state machine, deterministic and sans-I/O.

Inputs are method calls (time, messages, proposals, storage completions, admin and read
requests); outputs are ``fastraft.core.commands`` drained with ``take_commands()``. The engine
never reads a clock (time arrives as ``tick(now)``), never draws a random number except from
its own ``random.Random(seed)``, and never performs I/O: the same inputs give the same
commands. The runtime's obligations are in ``fastraft.core.commands``.

A message goes through three stages in ``step``, as in etcd-raft's ``Step``: guard.py drops
what a peer must not be able to make it do (malformed terms, strangers' messages); roles.py
applies the term rule of Raft §5.1 once (a newer term makes this node a follower, an older
one is refused); then the role's handler (``_step_leader``, ``_step_candidate``,
``_step_follower``, here) passes it to the concern it belongs to. Vote requests are answered
in every role; a request of the term's leader makes every role its follower.

Each concern lives in its own module, mixed into ``Engine``; each module's docstring says what
state it reads and writes: roles.py (terms and every role transition), election.py (Raft
§5.2, thesis §9.6 pre-vote, §6.2 check-quorum), replication.py (§5.3, §5.4, pipelining and flow
control), membership.py (§6, joint consensus), snapshot.py (§7), reads.py (thesis §6.4),
transfer.py (thesis §3.10) and outbox.py (the durable-before-send gate, the answers owed to
requests). This module holds the state they share (``id``, ``config``, ``role``, ``vote``,
``leader_id``, the log, ``committed``, ``applied``, ``flushed``, the membership, ``progress``,
the clock), the inputs, and the dispatch.

Invariant: a message that depends on durable state (a vote, entries acknowledged) is emitted
only after ``on_vote_saved`` / ``on_log_flushed`` reported that state.
Invariant: a request stepped with a ``reply_to`` token gets exactly one ``SendMessage`` or
``NoAnswer`` carrying that token (now, or once what its answer waits for is durable).
Invariant: committed never decreases; applied <= min(committed, flushed) <= last log index
(applied may exceed the log after a snapshot install, which purges the log to it).
"""

from __future__ import annotations

import random

from fastraft.errors import ForwardToLeader
from fastraft.messages import (
    MESSAGE_TYPES,
    AppendEntriesRequest,
    AppendEntriesResponse,
    InstallSnapshotResponse,
    Message,
    TimeoutNowRequest,
    VoteRequest,
    VoteResponse,
)
from fastraft.types import LogId, StoredMembership, Vote

from ._prims import LogIndex, ProgressTracker
from .commands import Command, NoAnswer, StateChanged
from .config import Config
from .election import ElectionMixin
from .guard import GuardMixin, check_initial_state
from .membership import MembershipMixin
from .outbox import OutboxMixin
from .reads import ReadsMixin
from .replication import ReplicationMixin
from .roles import FROM_LEADER, REQUESTS, RolesMixin
from .snapshot import SnapshotMixin
from .state import InitialState, Role
from .transfer import TransferMixin

__all__ = ["Engine"]

_HANDLED = frozenset(MESSAGE_TYPES.values())
_FOLLOWING = frozenset((Role.FOLLOWER, Role.LEARNER))


class Engine(OutboxMixin, GuardMixin, RolesMixin, ElectionMixin, ReplicationMixin,
             MembershipMixin, SnapshotMixin, ReadsMixin, TransferMixin):
    """One Raft node. See the package docstring for the input/output contract.

    ``Engine(node_id, config, seed, state, now)``: ``node_id`` > 0; ``config`` is validated
    (ConfigError); ``seed`` drives the randomized election timeouts; ``state`` is what the
    runtime read from storage (default: a brand-new node); ``now`` the current time in seconds.

    Read-only views: ``id``, ``config``, ``role``, ``term``, ``vote``, ``leader_id``,
    ``committed``, ``applied``, ``flushed``, ``last_log_id``, ``membership`` (effective),
    ``committed_membership``, ``snapshot``, ``log`` (the log index), ``progress``.
    """

    #: The primitives this engine is built on (the chosen flavour, see ``_prims``).
    _LogIndex = LogIndex
    _ProgressTracker = ProgressTracker

    @classmethod
    def with_primitives(cls, log_index_module, progress_module) -> type["Engine"]:
        """An Engine class on another flavour of the log index and progress tracker (for
        benchmarks and differential tests that run both flavours in one process; the modules
        have the same API, so the protocol is identical)."""
        name = f"{cls.__name__}[{log_index_module.__name__.rsplit('.', 2)[-2]}]"
        return type(name, (cls,), {"_LogIndex": log_index_module.LogIndex,
                                   "_ProgressTracker": progress_module.ProgressTracker})

    def __init__(self, node_id: int, config: Config | None = None, seed: int = 0,
                 state: InitialState | None = None, now: float = 0.0) -> None:
        if type(node_id) is not int or node_id <= 0:
            raise ValueError(f"node_id must be a positive int, got {node_id!r}")
        config = (config if config is not None else Config()).validate()
        state = state if state is not None else InitialState()
        check_initial_state(state)
        self.id = node_id
        self.config = config
        self._rng = random.Random(seed)
        self._now = float(now)
        self._init_outbox(state.vote)
        self.role = Role.LEARNER
        self.leader_id = 0
        self._leader_contact_at = float("-inf")
        self._notified: tuple = ()

        log = self._LogIndex(config.max_cached_entries, config.max_cached_bytes)
        if state.purged is not None and state.purged.index:
            log.reset(state.purged.term, state.purged.index)
        for term, last in state.log_runs:
            log.append_term_run(term, last)
        self.log = log
        self.flushed = log.last_index  # what storage holds at start is durable
        snap_index = 0
        if state.snapshot is not None and state.snapshot.last_log_id is not None:
            snap_index = state.snapshot.last_log_id.index
        if state.applied < log.purged_index:
            raise ValueError(f"the state machine (applied {state.applied}) is behind the purged "
                             f"log ({log.purged_index}): restore the snapshot first")
        self.applied = state.applied
        self.committed = max(state.committed, state.applied, snap_index, log.purged_index)
        self.snapshot = state.snapshot
        self._snapshot_index = snap_index
        self._building_snapshot = False
        last_term = log.last_term
        if state.snapshot is not None and state.snapshot.last_log_id is not None:
            last_term = max(last_term, state.snapshot.last_log_id.term)
        if last_term > self.vote.term:
            # Entries or a snapshot of a newer term reached disk before that term's vote did
            # (the runtime may complete them in either order). The current term is never
            # below the last log term (Raft Figure 2), so start in that term, voting for no one.
            self._set_vote(Vote(last_term, 0))

        self._membership = state.membership
        self._prev_membership = state.prev_membership
        self._committed_membership = (state.membership
                                      if _index_of(state.membership) <= self.committed
                                      else state.prev_membership)
        self.progress = self._ProgressTracker(config.max_inflight)
        self._init_guard()
        self._init_election()
        self._init_replication()
        self._init_membership()
        self._init_snapshot()
        self._init_reads()
        self._init_transfer()
        self._refresh_role()
        self._reset_election_timer()
        self._notify()

    # -- read-only views -------------------------------------------------------------------------

    @property
    def term(self) -> int:
        return self.vote.term

    @property
    def now(self) -> float:
        """The latest time given by ``tick`` (or the constructor)."""
        return self._now

    @property
    def last_log_id(self) -> LogId:
        return LogId(self.log.last_term, self.log.last_index)

    @property
    def membership(self) -> StoredMembership:
        """The effective membership: the last one in the log (thesis §4.1)."""
        return self._membership

    @property
    def committed_membership(self) -> StoredMembership:
        return self._committed_membership

    @property
    def is_leader(self) -> bool:
        return self.role == Role.LEADER

    # -- inputs ----------------------------------------------------------------------------------

    def take_commands(self) -> list[Command]:
        """The commands emitted since the last call, in order; the engine forgets them."""
        out = self._out
        self._out = []
        return out

    def tick(self, now: float) -> None:
        """Time is now ``now`` seconds (never going back): fire the timers that are due
        (election timeout, heartbeat, check-quorum, transfer timeout, snapshot resend). Call it
        before other inputs whenever time moved, and at least by ``next_deadline()``."""
        if now > self._now:
            self._now = float(now)
        if self.role == Role.LEADER:
            self._leader_tick()
        elif self._now >= self._election_deadline:
            self._on_election_timeout()

    def next_deadline(self) -> float:
        """The time of the next timer; ``tick`` need not be called before it (inf: none)."""
        if self.role == Role.LEADER:
            d = min(self._heartbeat_at, self._check_quorum_at)
            if self._transfer is not None:
                d = min(d, self._transfer.deadline)
            return d
        if self._can_campaign():
            return self._election_deadline
        return float("inf")

    def step(self, msg: Message, reply_to=None) -> None:
        """Handle a message from a peer (request or response); a non-message raises TypeError.

        ``reply_to`` (any hashable but None) is the token of a request whose sender waits for
        its answer: the answer is emitted as ``SendMessage(..., reply_to=reply_to)``, or, if
        the engine will not answer, as ``NoAnswer(reply_to, reason)`` (see the commands'
        contract). Without a token, answers are plain messages to the sender. A message
        naming this node as its sender, or naming node 0, is ignored (and not answered)."""
        t = type(msg)
        if t not in _HANDLED:
            raise TypeError(f"not a Raft message: {t.__name__}")
        sender = msg.sender
        if sender == self.id or sender <= 0:
            if reply_to is not None:
                self._emit(NoAnswer(reply_to, f"sender {sender} is not a peer of node {self.id}"))
            return
        if not self._admit(msg, sender):
            # guard.py: malformed, or from a stranger; answered at once so that forged sender
            # ids leave nothing waiting behind
            if reply_to is not None:
                self._emit(NoAnswer(reply_to, f"message from {sender} refused by node {self.id}"
                                    " (malformed, or not a member: core/guard.py)"))
            return
        if reply_to is not None and t in REQUESTS:
            self._unanswered = reply_to
        # Raft §5.1, once for every message (roles.py); then the handler of the type and role
        if msg.term == self.vote.term or self._heed_other_term(msg, t, reply_to):
            if t is VoteRequest:
                self._handle_vote_request(msg, reply_to)  # every role answers for its vote
            elif t in FROM_LEADER:
                self._step_follower(msg, t, reply_to)  # every role follows this term's leader
            elif self.role == Role.LEADER:
                self._step_leader(msg, t)
            elif self.role == Role.CANDIDATE or self.role == Role.PRE_CANDIDATE:
                self._step_candidate(msg, t)
            # else a response to a role this node no longer has: dropped
        if self._unanswered is not None:
            # every handler answers or names its reason; this only guards a future one
            self._no_answer(self._unanswered, "the engine has no answer to it")
        self._notify()

    # -- dispatch by role (after the term rule: the message is of the current term) -------------

    def _step_leader(self, msg: Message, t: type) -> None:
        """A leader, in its term: its followers' acknowledgements. (Vote and TimeoutNow
        responses ask nothing more of it.)"""
        if t is AppendEntriesResponse:
            self._handle_append_entries_response(msg)
        elif t is InstallSnapshotResponse:
            self._handle_install_snapshot_response(msg)

    def _step_candidate(self, msg: Message, t: type) -> None:
        """A candidate or pre-candidate, in its term: the votes."""
        if t is VoteResponse:
            self._handle_vote_response(msg)

    def _step_follower(self, msg: Message, t: type, reply_to) -> None:
        """A request of this term's leader (AppendEntries, InstallSnapshot, TimeoutNow). Any
        other role first follows its sender: a candidate learns that another node won the
        term (Raft §5.2); a leader would mean two leaders in one term, which §5.2 rules out,
        and it follows too rather than keep leading. Entries and snapshots also reset the
        election timer and start the leader lease of thesis §4.2.3."""
        if self.leader_id != msg.sender or self.role not in _FOLLOWING:
            self._become_follower(msg.term, msg.sender)
        if t is TimeoutNowRequest:
            self._handle_timeout_now(msg, reply_to)
            return
        self._leader_contact_at = self._now
        self._reset_election_timer()
        if t is AppendEntriesRequest:
            self._handle_append_entries(msg, reply_to)
        else:
            self._handle_install_snapshot(msg, reply_to)

    def on_vote_saved(self, vote: Vote) -> None:
        """A ``SaveVote(vote)`` is durable: release what waited for it (vote replies, vote
        requests, a candidate's own vote)."""
        if (vote.term, vote.node_id) > (self._saved_vote.term, self._saved_vote.node_id):
            self._saved_vote = vote
        self._release_held()
        self._check_election()
        self._notify()

    # -- shared helpers --------------------------------------------------------------------------

    def forward_to_leader(self) -> ForwardToLeader:
        """The refusal of a request only a leader serves: it names the leader this node knows
        of (None if none) and its address. The one place such a refusal is built."""
        leader = self.leader_id
        node = self._membership.membership.nodes.get(leader) if leader else None
        return ForwardToLeader(leader or None, node)

    def _notify(self) -> None:
        state = (self.role, self.vote.term, self.leader_id)
        if state != self._notified:
            self._notified = state
            self._emit(StateChanged(self.role, self.vote.term, self.leader_id))

    def __repr__(self) -> str:
        return (f"Engine(id={self.id}, {self.role}, term={self.vote.term}, "
                f"leader={self.leader_id}, last={self.log.last_term}/{self.log.last_index}, "
                f"committed={self.committed}, applied={self.applied}, flushed={self.flushed})")


def _index_of(sm: StoredMembership) -> int:
    return sm.log_id.index if sm.log_id is not None else 0

