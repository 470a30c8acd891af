"""The engine: one node's Raft state machine, deterministic and sans-I/O.

Inputs are method calls (time, messages, proposals, storage completions, admin and read
requests); outputs are ``fastraft.core.commands`` drained with ``take_commands()``. The engine
never reads a clock (time arrives as ``tick(now)``), never draws a random number except from
its own ``random.Random(seed)``, and never performs I/O: the same inputs give the same
commands. The runtime's obligations are in ``fastraft.core.commands``.

Each concern lives in its own module, mixed into ``Engine``: election.py (Raft §5.2, thesis
§9.6 pre-vote, §6.2 check-quorum), replication.py (§5.3, §5.4, pipelining and flow control),
membership.py (§6, joint consensus), snapshot.py (§7), reads.py (thesis §6.4) and transfer.py
(thesis §3.10); guard.py drops what a peer must not be able to make it do (malformed terms,
strangers' messages) before dispatch. This module holds the shared state, the dispatch and the
durable-before-send gate.

Invariant: a message that depends on durable state (a vote, entries acknowledged) is emitted
only after ``on_vote_saved`` / ``on_log_flushed`` reported that state.
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
    InstallSnapshotRequest,
    InstallSnapshotResponse,
    Message,
    TimeoutNowRequest,
    TimeoutNowResponse,
    VoteRequest,
    VoteResponse,
)
from fastraft.types import LogId, StoredMembership, Vote

from ._prims import LogIndex, ProgressTracker
from .commands import Command, SaveVote, SendMessage, StateChanged
from .config import Config
from .election import ElectionMixin
from .guard import GuardMixin, check_initial_state
from .membership import MembershipMixin
from .reads import ReadsMixin
from .replication import ReplicationMixin
from .snapshot import SnapshotMixin
from .state import InitialState, Role
from .transfer import TransferMixin

__all__ = ["Engine"]

# Messages waiting for durable state: beyond this many, the oldest are dropped (the protocol
# retries lost messages; a runtime that never reports its writes must not grow us unbounded).
_MAX_HELD = 4096

_HANDLED = frozenset(MESSAGE_TYPES.values())


class Engine(GuardMixin, ElectionMixin, ReplicationMixin, MembershipMixin, SnapshotMixin,
             ReadsMixin, TransferMixin):
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
        self._out: list[Command] = []
        self.vote = state.vote
        self._saved_vote = state.vote
        self._held: list[tuple[Vote | None, int, int, Message]] = []
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
                d = min(d, self._transfer[1])
            return d
        if self._can_campaign():
            return self._election_deadline
        return float("inf")

    def step(self, msg: Message) -> None:
        """Handle a message from a peer (request or response). A message naming this node as
        its sender, or naming node 0, is ignored; a non-message raises TypeError."""
        t = type(msg)
        if t not in _HANDLED:
            raise TypeError(f"not a Raft message: {t.__name__}")
        sender = msg.sender
        if sender == self.id or sender <= 0 or not self._admit(msg, sender):
            return  # guard.py: malformed, or from a stranger
        if t is AppendEntriesRequest:
            self._handle_append_entries(msg)
        elif t is AppendEntriesResponse:
            self._handle_append_entries_response(msg)
        elif t is VoteRequest:
            self._handle_vote_request(msg)
        elif t is VoteResponse:
            self._handle_vote_response(msg)
        elif t is InstallSnapshotRequest:
            self._handle_install_snapshot(msg)
        elif t is InstallSnapshotResponse:
            self._handle_install_snapshot_response(msg)
        elif t is TimeoutNowRequest:
            self._handle_timeout_now(msg)
        else:
            self._handle_timeout_now_response(msg)
        self._notify()

    def on_vote_saved(self, vote: Vote) -> None:
        """A ``SaveVote(vote)`` is durable: release what waited for it (vote replies, vote
        requests, a candidate's own vote)."""
        if (vote.term, vote.node_id) > (self._saved_vote.term, self._saved_vote.node_id):
            self._saved_vote = vote
        self._release_held()
        self._check_election()
        self._notify()

    # -- shared helpers --------------------------------------------------------------------------

    def _emit(self, cmd: Command) -> None:
        self._out.append(cmd)

    def _set_vote(self, vote: Vote) -> None:
        """Change the vote in memory and ask the runtime to save it (Raft Figure 2: persist
        before responding)."""
        if vote.term > self.vote.term:
            # acknowledgements for an older term would claim entries a newer leader may
            # overwrite: they must never leave
            self._held = [h for h in self._held if h[3].term >= vote.term]
        self.vote = vote
        self._emit(SaveVote(vote))

    def _vote_durable(self, need: Vote) -> bool:
        s = self._saved_vote
        # within a term the vote only moves from "nobody" to a candidate, so a saved vote for
        # a candidate also covers the term alone (the runtime may report only the latest save)
        return s.term > need.term or (s.term == need.term and need.node_id in (0, s.node_id))

    def _send(self, to: int, msg: Message, after_vote: bool = False, after_flush: int = 0) -> None:
        """Emit ``msg`` now, or hold it until the vote as of now is saved (``after_vote``) and the
        log is durable up to ``after_flush``."""
        need = self.vote if after_vote else None
        if (need is None or self._vote_durable(need)) and self.flushed >= after_flush:
            self._out.append(SendMessage(to, msg))
            return
        # Every request gets a response of its own, even when a later acknowledgement would
        # cover it: networks that pair answers with requests (net/protocol.py, the runtime's
        # InboundReplies) would otherwise leave the covered request waiting until it expires,
        # and pair later answers with requests the sender has already given up on.
        held = self._held
        if len(held) >= _MAX_HELD:
            del held[0]
        held.append((need, after_flush, to, msg))

    def _release_held(self) -> None:
        if not self._held:
            return
        keep = []
        flushed = self.flushed
        for item in self._held:
            need, after_flush, to, msg = item
            if (need is None or self._vote_durable(need)) and flushed >= after_flush:
                self._out.append(SendMessage(to, msg))
            else:
                keep.append(item)
        self._held = keep

    def _leader_node(self):
        return self._membership.membership.nodes.get(self.leader_id) if self.leader_id else None

    def _forward_error(self) -> ForwardToLeader:
        return ForwardToLeader(self.leader_id or None, self._leader_node())

    def _refresh_role(self) -> None:
        """Followers and learners differ only by membership: recompute after it changes."""
        if self.role in (Role.FOLLOWER, Role.LEARNER):
            self.role = Role.FOLLOWER if self._can_campaign() else Role.LEARNER
        elif self.role in (Role.CANDIDATE, Role.PRE_CANDIDATE) and not self._can_campaign():
            self.role = Role.LEARNER

    def _notify(self) -> None:
        state = (self.role, self.vote.term, self.leader_id)
        if state != self._notified:
            self._notified = state
            self._emit(StateChanged(self.role, self.vote.term, self.leader_id))

    def _become_follower(self, term: int, leader_id: int) -> None:
        """Follow ``leader_id`` (0: unknown) in ``term`` >= the current term (Raft §5.1)."""
        if term > self.vote.term:
            self._set_vote(Vote(term, 0))
        was_leader = self.role == Role.LEADER
        self.role = Role.FOLLOWER
        self.leader_id = leader_id
        self._refresh_role()
        if was_leader:
            self._on_leadership_lost()
        self._reset_election_timer()

    def _on_leadership_lost(self) -> None:
        """Answer everything that waited on this node's leadership."""
        self._fail_reads()
        self._end_transfer_on_step_down()
        self._fail_membership_change()
        self._stop_replication()

    def __repr__(self) -> str:
        return (f"Engine(id={self.id}, {self.role}, term={self.vote.term}, "
                f"leader={self.leader_id}, last={self.log.last_term}/{self.log.last_index}, "
                f"committed={self.committed}, applied={self.applied}, flushed={self.flushed})")


def _index_of(sm: StoredMembership) -> int:
    return sm.log_id.index if sm.log_id is not None else 0

