"""The operator's log of a node: the transitions someone running a cluster wants to read,
one line each, at INFO (logger ``fastraft.node``):

* a leader elected (this node or another: term and id), this node stepping down and why;
* a membership change proposed (the leader appended it) and committed, old and new voters and
  learners (Raft §6, thesis §4);
* a snapshot built or installed (Raft §7); the node starting and stopping, with its store;

and, at WARNING, a peer this node sends to that has answered nothing for longer than an
election timeout: once when that happens and once when it answers again, never a line per
failed dial (those stay at DEBUG in ``fastraft.runtime.peers``).

The engine does no I/O and logs nothing: this observer compares the engine's state after each
round with what it saw after the previous one, so the engine and the runtime's hot path stay
as they are (a round costs a few attribute reads here). Every line carries the node id and the
term as ``extra`` fields (``node_id``, ``term``), which ``fastraft.logs``' formatters print,
and starts with ``node N term T:`` for plain handlers.
"""

from __future__ import annotations

import logging

from ..core import Role
from ..types import StoredMembership

__all__ = ["OperatorLog", "LOGGER_NAME"]

LOGGER_NAME = "fastraft.node"
log = logging.getLogger(LOGGER_NAME)

_ROLE = {Role.LEADER: "leader", Role.FOLLOWER: "follower", Role.CANDIDATE: "candidate",
         Role.PRE_CANDIDATE: "pre-candidate", Role.LEARNER: "learner"}


def describe_store(store) -> str:
    """A store's class, and where it keeps its data when it says (lmdb stores: the path)."""
    inner = getattr(store, "inner", None)  # a wrapper (such as the KV example's): what it wraps
    if inner is not None and inner is not store:
        return describe_store(inner)
    env = getattr(store, "_env", None)
    path = getattr(store, "path", None) or getattr(env, "path", None)
    name = type(store).__name__
    return f"{name} at {path}" if isinstance(path, str) else name


def describe_membership(stored: StoredMembership) -> str:
    """``voters [1, 2, 3] learners [4]`` (joint: ``voters [1, 2] -> [1, 2, 3]``)."""
    m = stored.membership
    if not m.configs:
        return "none"
    voters = " -> ".join(str(sorted(c)) for c in m.configs)
    return f"voters {voters} learners {sorted(m.learner_ids())}"


class OperatorLog:
    """Watches one ``RaftRuntime`` (``rt``) and logs its transitions; see the module docstring.

    ``after_round()`` is called by the engine task after every round; ``started()`` and
    ``stopped()`` once each. ``unreachable_after_s`` is how long a peer may answer nothing
    before it is reported (the election timeout: past it a follower would start an election).
    """

    def __init__(self, rt, *, unreachable_after_s: float) -> None:
        self._rt = rt
        self._eng = rt.engine
        self._unreachable_after_s = unreachable_after_s
        #: counters for metrics: entries this node appended as leader, entries it saw
        #: committed, elections it started (as candidate, Raft §5.2) and won
        self.proposals = 0
        self.commits = 0
        self.elections_started = 0
        self.elections_won = 0
        self._seen_state()
        # peer id -> [answers counted, failures counted, when answers last grew, reported]
        self._peers: dict[int, list] = {}
        self._next_peer_check = 0.0

    def _seen_state(self) -> None:
        eng = self._eng
        self._role = eng.role
        self._vote = eng.vote
        self._term = eng.term
        self._leader = eng.leader_id
        self._membership = eng.membership
        self._committed = eng.committed_membership
        self._snapshot = eng.snapshot
        self._transfer_to = eng.transfer_target
        self._last_index = eng.log.last_index
        self._commit_index = eng.committed
        self._applied = self._rt.applier.last_applied  # after the previous round

    def _log(self, level: int, msg: str, *args) -> None:
        eng = self._eng
        log.log(level, "node %d term %d: " + msg, eng.id, eng.term, *args,
                extra={"node_id": eng.id, "term": eng.term})

    # -- hooks ------------------------------------------------------------------------------

    def started(self, log_store, state_machine) -> None:
        eng = self._eng
        self._log(logging.INFO, "started as %s; last log index %d, committed %d; log store %s, "
                  "state machine %s; membership %s", _ROLE[eng.role], eng.log.last_index,
                  eng.committed, describe_store(log_store), describe_store(state_machine),
                  describe_membership(eng.membership))

    def stopped(self, error: BaseException | None) -> None:
        if error is None:
            self._log(logging.INFO, "stopped")
        else:
            self._log(logging.ERROR, "stopped: %s: %s", type(error).__name__, error)

    def after_round(self) -> None:
        """Compare the engine with what the previous round left; log what changed.

        Called every round, so the common case (nothing but the indexes moved) is a handful
        of attribute reads; anything else takes ``_transition``."""
        eng = self._eng
        committed = eng.committed
        if committed != self._commit_index:
            if committed > self._commit_index:
                self.commits += committed - self._commit_index
            self._commit_index = committed
        role = eng.role
        if role == Role.LEADER:
            last = eng.log.last_index
            if last > self._last_index:
                self.proposals += last - self._last_index
            self._last_index = last
        if (role != self._role or eng.vote is not self._vote or eng.leader_id != self._leader
                or eng.membership is not self._membership
                or eng.committed_membership is not self._committed
                or eng.snapshot is not self._snapshot
                or eng.transfer_target != self._transfer_to):
            self._transition()
        self._applied = self._rt.applier.last_applied
        now = eng.now
        if now >= self._next_peer_check:
            self._next_peer_check = now + self._unreachable_after_s / 4
            self._check_peers(now)

    def _transition(self) -> None:
        eng = self._eng
        if (eng.role != self._role or eng.leader_id != self._leader
                or eng.term != self._term):
            self._on_role_change()
        if eng.membership is not self._membership:
            self._on_membership_appended()
        if eng.committed_membership is not self._committed:
            self._log(logging.INFO, "membership committed at log index %s: %s",
                      _index(eng.committed_membership), describe_membership(eng.committed_membership))
        if eng.snapshot is not self._snapshot and eng.snapshot is not None:
            lid = eng.snapshot.last_log_id
            index = 0 if lid is None else lid.index
            applied = 0 if self._applied is None else self._applied.index
            how = "installed from the leader" if index > applied else "built"
            self._log(logging.INFO, "snapshot %s, covering the log up to index %d", how, index)
        self._seen_state()

    # -- transitions ------------------------------------------------------------------------

    def _on_role_change(self) -> None:
        eng = self._eng
        was_leader = self._role == Role.LEADER
        if eng.role == Role.CANDIDATE and (self._role != Role.CANDIDATE or eng.term > self._term):
            self.elections_started += 1
        if eng.role == Role.LEADER and not was_leader:
            self.elections_won += 1
            self._log(logging.INFO, "elected leader (was %s)", _ROLE[self._role])
        elif was_leader and eng.role != Role.LEADER:
            self._log(logging.INFO, "stepped down to %s: %s", _ROLE[eng.role], self._why_down())
        elif eng.leader_id and eng.leader_id != self._leader and eng.leader_id != eng.id:
            self._log(logging.INFO, "node %d is the leader", eng.leader_id)
        elif eng.role != self._role:
            self._log(logging.DEBUG, "now %s (was %s)", _ROLE[eng.role], _ROLE[self._role])

    def _why_down(self) -> str:
        eng = self._eng
        if self._transfer_to:
            return f"leadership handed to node {self._transfer_to} (thesis §3.10)"
        if eng.term > self._term:
            who = f", led by node {eng.leader_id}" if eng.leader_id else ""
            return f"a higher term {eng.term} was seen{who} (Raft §5.1)"
        if not eng.membership.membership.is_voter(eng.id):
            return "no longer a voter in the membership (Raft §6)"
        return ("no word from a majority within an election timeout "
                "(check-quorum, thesis §6.2)")

    def _on_membership_appended(self) -> None:
        eng = self._eng
        if eng.is_leader:
            self._log(logging.INFO, "membership change proposed at log index %s: %s -> %s",
                      _index(eng.membership), describe_membership(self._membership),
                      describe_membership(eng.membership))
        else:
            self._log(logging.DEBUG, "membership entry at log index %s: %s",
                      _index(eng.membership), describe_membership(eng.membership))

    # -- peers ------------------------------------------------------------------------------

    def _check_peers(self, now: float) -> None:
        """Report a peer that answered nothing while requests to it failed for longer than
        ``unreachable_after_s`` (once), and report it again when it answers (once)."""
        senders = self._rt.peers.senders
        peers = self._peers
        for peer in [p for p in peers if p not in senders]:
            del peers[peer]
        for peer, sender in senders.items():
            seen = peers.get(peer)
            if seen is None:
                peers[peer] = [sender.answered, sender.failed, now, False]
                continue
            if sender.answered != seen[0]:
                if seen[3]:
                    self._log(logging.WARNING, "peer %d (%s) answers again", peer,
                              sender.node.addr)
                seen[0], seen[1], seen[2], seen[3] = sender.answered, sender.failed, now, False
            elif (not seen[3] and sender.failed != seen[1]
                  and now - seen[2] > self._unreachable_after_s):
                seen[3] = True
                self._log(logging.WARNING, "peer %d (%s) unreachable: no answer for %.1f s, "
                          "%d requests failed", peer, sender.node.addr, now - seen[2],
                          sender.failed - seen[1])


def _index(stored: StoredMembership) -> str:
    return "-" if stored.log_id is None else str(stored.log_id.index)
