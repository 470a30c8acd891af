"""The checkers can fail: known bugs planted in the real engine (a test-only patch of one engine
method, for the duration of a test) are caught by the simulator within a bounded number of
seeds, each by the checker that guards against it.

Each patch wraps or replaces one method of ``fastraft.core.Engine`` so that the engine's own
code path runs with the bug in it; nothing is copied out of the engine.
"""

import dataclasses
from unittest import mock

import pytest

from fastraft.core import Engine, ReadReady, Role
from fastraft.messages import AppendEntriesResponse, VoteResponse
from fastraft.sim import SimOptions, run_seed
from fastraft.types import Vote

_original = {name: getattr(Engine, name) for name in
             ("_handle_vote_request", "_send", "_maybe_apply", "read_index",
              "_on_election_timeout")}


def grant_two_votes_in_one_term(self, msg):
    """Bug: a voter forgets whom it voted for in this term, so it votes again."""
    if (not msg.pre_vote and msg.term == self.vote.term and self.role != Role.LEADER
            and self.vote.node_id not in (0, msg.sender)):
        self.vote = Vote(self.vote.term, 0)
    return _original["_handle_vote_request"](self, msg)


def commit_earlier_term_by_counting(self):
    """Bug: the leader commits whatever a quorum holds, of any term (Raft §5.4.2 forbids it;
    Figure 8 shows why)."""
    c = self.progress.committed_index()
    if c > self.committed:
        self._advance_commit(c)


def reply_before_vote_is_saved(self, to, msg, after_vote=False, after_flush=0):
    """Bug: a vote reply leaves before the vote it grants is durable."""
    if type(msg) is VoteResponse:
        after_vote = False
    return _original["_send"](self, to, msg, after_vote, after_flush)


def acknowledge_before_flush(self, to, msg, after_vote=False, after_flush=0):
    """Bug: a follower acknowledges entries before they are durable."""
    if type(msg) is AppendEntriesResponse:
        after_flush = 0
    return _original["_send"](self, to, msg, after_vote, after_flush)


def apply_before_commit(self):
    """Bug: entries are applied once flushed, committed or not."""
    committed = self.committed
    self.committed = max(committed, self.flushed)
    try:
        _original["_maybe_apply"](self)
    finally:
        self.committed = committed


def read_without_confirming_leadership(self, request_id):
    """Bug: a leader serves reads at once, without a heartbeat round or a lease: a deposed
    leader that does not know it yet answers from a stale state."""
    if self.role != Role.LEADER:
        return _original["read_index"](self, request_id)
    self._emit(ReadReady(request_id, self.applied))


def never_campaign(self):
    """Bug: election timeouts only rearm the timer."""
    self._reset_election_timer()


def first_catch(method: str, bug, opts: SimOptions, kinds: set, max_seeds: int):
    """Run seeds 0.. with ``bug`` in place of Engine.<method> until a run reports a violation
    of one of ``kinds``; returns (seed, kind) or None, and every violation seen on the way."""
    seen = []
    with mock.patch.object(Engine, method, bug):
        for seed in range(max_seeds):
            r = run_seed(seed, opts)
            if r.violation is not None:
                seen.append((seed, r.violation[0]))
                if r.violation[0] in kinds:
                    return (seed, r.violation[0]), seen
    return None, seen


OPTS = SimOptions(steps=1000)
# Elections that split: five nodes, leaders lost often, timeouts within 5 ms of each other, no
# pre-vote or check-quorum to stop a second candidate of the same term.
SPLIT_VOTES = dict(min_nodes=5, max_nodes=5, fault_rate=3.0,
                   faults=frozenset({"crash", "isolate", "partition"}),
                   config=(("election_timeout_min_ms", 150), ("election_timeout_max_ms", 155),
                           ("pre_vote", False), ("check_quorum", False), ("lease_read", False)))

CASES = [
    # (name, engine method, bug, options, kinds that catch it, seeds allowed)
    ("two votes in one term", "_handle_vote_request", grant_two_votes_in_one_term, {},
     {"vote-regressed"}, 20),
    ("two votes in one term, seen as two leaders", "_handle_vote_request",
     grant_two_votes_in_one_term,
     dict(SPLIT_VOTES, disabled_checks=frozenset({"vote-regressed", "durable-before-send"})),
     {"election-safety"}, 300),
    ("earlier term committed by counting", "_maybe_commit", commit_earlier_term_by_counting,
     {}, {"commit-rule"}, 40),
    ("vote reply before the vote is saved", "_send", reply_before_vote_is_saved, {},
     {"durable-before-send"}, 5),
    ("acknowledgement before the flush", "_send", acknowledge_before_flush, {},
     {"durable-before-send"}, 5),
    ("apply before commit", "_maybe_apply", apply_before_commit, {},
     {"applied-regressed"}, 5),
    ("apply before commit, seen by the state machine", "_maybe_apply", apply_before_commit,
     {"disabled_checks": frozenset({"applied-regressed"})}, {"state-machine-safety"}, 5),
    ("read without confirming leadership", "read_index", read_without_confirming_leadership,
     {}, {"linearizability"}, 300),
    ("no node ever campaigns", "_on_election_timeout", never_campaign, {}, {"liveness"}, 5),
]


@pytest.mark.parametrize("name,method,bug,extra,kinds,max_seeds", CASES,
                         ids=[c[0] for c in CASES])
def test_planted_bug_is_caught(name, method, bug, extra, kinds, max_seeds):
    opts = dataclasses.replace(OPTS, **extra)
    found, seen = first_catch(method, bug, opts, kinds, max_seeds)
    assert found is not None, f"{name}: no {kinds} within {max_seeds} seeds (saw {seen})"


def test_without_a_planted_bug_the_same_seeds_pass():
    for seed in range(5):
        r = run_seed(seed, OPTS)
        assert r.violation is None, (seed, r.violation)
