"""The two liveness failures of the 10,000-seed campaigns, as seeds, and the simulator's rules
they led to: the message-storm check and Raft's timing requirement on drawn profiles.

Seed 58810 (campaign --start 50000): a follower answered "done" to a snapshot its unflushed log
covered, lost those entries in a crash, and rejected the leader's probe at its acknowledged
match; the leader resent on every rejection and duplicates multiplied the exchange (see
tests/core/test_liveness_rejections.py for the two halves, scripted). Its profile drew 60-160 ms
election timeouts, which the timing rule now raises, so the case forces them back (with its
drawn heartbeat, which the forced values are checked against): the same draws, the same run
as on the engine that failed.

Seed 92360 (campaign --start 90000): a profile that breaks Raft's timing rule (§5.6); the
simulator no longer draws such profiles, and the seed is the test that it does not.
"""

from __future__ import annotations

import dataclasses
import random
from unittest import mock

import pytest

from fastraft.core import Engine
from fastraft.messages import InstallSnapshotResponse
from fastraft.sim import SimOptions, run_seed
from fastraft.sim.checkers import Violation
from fastraft.sim.profile import _within_timing_rule, draw_profile
from fastraft.sim.storm import MessageRate

SEED_58810 = SimOptions(steps=2000, config=(("heartbeat_interval_ms", 20),
                                            ("election_timeout_min_ms", 60),
                                            ("election_timeout_max_ms", 160)))


def test_seed_58810_learner_ping_pong_stays_fixed():
    """Failed on 630edcb: "liveness: no write committed within 30.0 s (200000 steps) after the
    faults ended; leader: n1=leader/t5/c3/a3 n2=follower/t5/c3/a3 n3=learner/t5/c0/a0"."""
    r = run_seed(58810, SEED_58810)
    assert r.violation is None, r.violation
    assert r.recovered_s is not None


def test_seed_92360_timing_rule_keeps_elections_live():
    """Failed on 630edcb: "liveness: no write committed within 30.0 s (19439 steps) after the
    faults ended" with elections churning from term ~320 to 501: 3-30 ms per network hop, vote
    syncs up to 20 ms, election timeouts 30-80 ms."""
    r = run_seed(92360, SimOptions(steps=2000))
    assert r.violation is None, r.violation
    assert r.recovered_s is not None
    assert "election_timeout_min_ms=110 " in r.profile


def test_seed_103179_fast_catch_up_is_no_storm():
    """A new leader pipelining one-entry messages to six followers over 0.2 ms hops that
    reorder sends 2,759 messages within 0.1 s, then calms down: a burst, not a storm (it
    failed the check while its window was 0.1 s)."""
    r = run_seed(103179, SimOptions(steps=2000))
    assert r.violation is None, r.violation


def _vote_round_s(p):
    return 2 * (p.net_latency_s[1] + p.disk_sync_s[1])


def test_drawn_profiles_keep_the_vote_round_below_the_election_timeout():
    """Raft §5.6: broadcastTime << electionTimeout, the vote's disk sync included."""
    for seed in range(300):
        p = draw_profile(random.Random(seed), SimOptions())
        assert _vote_round_s(p) < p.config.election_timeout_min_s, seed


def test_timing_rule_changes_only_the_election_timeouts_of_profiles_that_break_it():
    p = draw_profile(random.Random(92360), SimOptions())
    c = p.config
    assert (c.election_timeout_min_ms, c.election_timeout_max_ms) == (110, 160)
    slow = dataclasses.replace(p, config=dataclasses.replace(
        c, election_timeout_min_ms=30, election_timeout_max_ms=80))
    raised = _within_timing_rule(slow, ())
    assert (raised.config.election_timeout_min_ms, raised.config.election_timeout_max_ms) \
        == (110, 160)
    assert dataclasses.replace(raised, config=slow.config) == slow  # nothing else moved
    assert _within_timing_rule(raised, ()) is raised  # a profile within the rule is kept
    forced = (("election_timeout_min_ms", 30),)
    assert _within_timing_rule(slow, forced) is slow  # forced timeouts are the user's call


def test_message_rate_counts_per_node_per_window():
    rate = MessageRate(max_per_ms=1, window_s=0.01)  # 10 sends per 10 ms per node
    for k in range(10):
        rate.on_send(1, k * 0.0001)
        rate.on_send(2, k * 0.0001)
    rate.on_send(1, 0.0101)  # a new window for node 1
    with pytest.raises(Violation) as err:
        rate.on_send(2, 0.0011)
    assert err.value.kind == "message-storm" and "node 2 sent 11 messages" in str(err.value)


_original_send = Engine._send


def _snapshot_done_before_flush(self, to, msg, after_vote=False, after_flush=0):
    """Bug: a follower answers a snapshot its log covers before those entries are durable."""
    if type(msg) is InstallSnapshotResponse:
        after_flush = 0
    return _original_send(self, to, msg, after_vote, after_flush)


_original_response = Engine._handle_append_entries_response


def _resend_on_every_rejection(self, m):
    """Bug: the leader answers a rejection at its probe's match index with the same probe."""
    p = self.progress
    peer = m.sender
    stale = (not m.success and m.term == self.term and self.is_leader and p.is_tracked(peer)
             and m.match_index == p.match_index(peer) == p.next_index(peer) - 1)
    _original_response(self, m)
    if stale and self.is_leader:
        p.become_probe(peer)
        self._maybe_send_append(peer)


def test_storm_is_named_for_what_it_is():
    """With both halves of seed 58810's bug planted, the run is stopped by the message-storm
    check, not 30 simulated seconds later by the liveness check."""
    with mock.patch.object(Engine, "_send", _snapshot_done_before_flush), \
            mock.patch.object(Engine, "_handle_append_entries_response",
                              _resend_on_every_rejection):
        r = run_seed(58810, SEED_58810)
    assert r.violation is not None and r.violation[0] == "message-storm", r.violation
