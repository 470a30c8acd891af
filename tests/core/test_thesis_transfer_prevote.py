"""thesis §3.10 (leadership transfer), §9.6 (pre-vote) and §6.2 / §4.2.3 (check-quorum and
ignoring disruptive vote requests)."""

from fastraft.core import Respond, Role, TransferFailed
from fastraft.messages import (AppendEntriesResponse, TimeoutNowRequest, TimeoutNowResponse,
                               VoteRequest, VoteResponse)
from fastraft.types import Vote

from .cluster import Cluster, fast_config
from .helpers import append, complete_writes, config, engine, make_leader, of_type, sent


def answers(c, i):
    return {r.request_id: r for r in c.responses[i]}


# -- §3.10 leadership transfer -------------------------------------------------------------------

def test_3_10_transfer_brings_the_target_up_to_date_then_sends_timeout_now():
    e = engine(1)
    make_leader(e)
    e.step(AppendEntriesResponse(term=e.term, sender=3, success=True, match_index=2, hint_term=0, hint_index=0, seq=0))
    complete_writes(e, e.take_commands())
    e.transfer_leader("t", 2)  # 2 has not acknowledged the blank entry yet
    assert sent(e.take_commands(), TimeoutNowRequest) == []
    assert e.transfer_target == 2
    e.step(AppendEntriesResponse(term=e.term, sender=2, success=True, match_index=2, hint_term=0, hint_index=0, seq=0))
    assert sent(e.take_commands(), TimeoutNowRequest) == [TimeoutNowRequest(term=e.term, sender=1)]
    e.step(TimeoutNowResponse(term=e.term + 1, sender=2))  # the target campaigns in a new term
    (r,) = of_type(e.take_commands(), Respond)
    assert r == Respond("t", result=None)
    assert e.role == Role.FOLLOWER and e.transfer_target == 0


def test_3_10_target_campaigns_at_once_and_voters_grant_despite_the_lease():
    f = engine(2, cfg=config())  # pre-vote and check-quorum on
    f.step(append(1, 1, 1, 1, 0, []))  # it follows node 1, which then hands over
    complete_writes(f, f.take_commands())
    f.step(TimeoutNowRequest(term=1, sender=1))
    cmds = f.take_commands()
    assert f.role == Role.CANDIDATE and f.term == 2  # no pre-vote for a transfer
    cmds = complete_writes(f, cmds)
    reqs = sent(cmds, VoteRequest)
    assert reqs and all(r.leader_transfer and not r.pre_vote for r in reqs)
    # a voter that heard from the leader just now still grants a transfer's request
    v = engine(3, cfg=config())
    v.step(append(1, 1, 1, 1, 0, []))
    complete_writes(v, v.take_commands())
    v.step(VoteRequest(term=2, sender=2, last_log_term=1, last_log_index=1, pre_vote=False, leader_transfer=False))
    assert sent(complete_writes(v, v.take_commands()), VoteResponse) == []  # ignored: lease
    v.step(reqs[0])
    assert sent(complete_writes(v, v.take_commands()), VoteResponse) == [VoteResponse(term=2, sender=3, granted=True)]


def test_3_10_transfer_end_to_end_and_errors():
    c = Cluster(3, seed=4)
    c.elect(1)
    c.propose(1, [b"a"])
    c.engines[1].transfer_leader("to3", 3)
    c.run_commands()
    c.stabilize()
    assert c.leader().id == 3
    assert answers(c, 1)["to3"].error is None
    c.engines[3].transfer_leader("self", 3)
    c.engines[3].transfer_leader("nobody", 9)
    c.run_commands()
    assert answers(c, 3)["self"].error is None
    assert isinstance(answers(c, 3)["nobody"].error, TransferFailed)


def test_3_10_transfer_times_out_and_proposals_resume():
    c = Cluster(3, seed=5)
    c.elect(1)
    c.isolate(2)
    c.engines[1].transfer_leader("t", 2)
    c.engines[1].transfer_leader("t2", 2)  # replaces the first
    c.run_commands()
    assert isinstance(answers(c, 1)["t"].error, TransferFailed)
    c.advance(0.31)
    assert isinstance(answers(c, 1)["t2"].error, TransferFailed)
    assert c.engines[1].role == Role.LEADER and c.engines[1].transfer_target == 0
    c.propose(1, [b"ok again"])


# -- §9.6 pre-vote -------------------------------------------------------------------------------

def test_9_6_pre_vote_changes_no_term_and_no_vote():
    e = engine(1)
    e.trigger_elect()
    cmds = e.take_commands()
    assert e.role == Role.PRE_CANDIDATE and e.term == 1
    reqs = sent(cmds, VoteRequest)
    assert [(r.term, r.pre_vote) for r in reqs] == [(2, True)] * 2  # sent without a save
    v = engine(2)
    v.step(reqs[0])
    cmds = v.take_commands()
    assert sent(cmds) == [VoteResponse(term=2, sender=2, granted=True, pre_vote=True)] and v.vote == Vote(1, 0)
    e.step(VoteResponse(term=2, sender=2, granted=True, pre_vote=True))
    cmds = e.take_commands()
    assert e.role == Role.CANDIDATE and e.term == 2  # now the real election


def test_9_6_pre_vote_rejected_for_a_stale_log():
    v = engine(2, terms=(1, 3))
    v.step(VoteRequest(term=4, sender=1, last_log_term=2, last_log_index=9, pre_vote=True))
    assert sent(v.take_commands()) == [VoteResponse(term=3, sender=2, granted=False, pre_vote=True)]
    e = engine(1)
    e.trigger_elect()
    e.take_commands()
    e.step(VoteResponse(term=1, sender=2, granted=False, pre_vote=True))
    e.step(VoteResponse(term=1, sender=3, granted=False, pre_vote=True))
    assert e.role == Role.FOLLOWER and e.term == 1


def test_9_6_partitioned_node_does_not_disrupt_on_return():
    """thesis §9.6: a server that was partitioned away keeps failing its pre-votes without
    raising its term, so rejoining does not depose the leader."""
    c = Cluster(3, seed=6)
    c.elect(1)
    term = c.engines[1].term
    c.isolate(3)
    c.advance(2.0)
    assert c.engines[3].term == term and c.engines[3].role != Role.LEADER
    c.heal()
    c.advance(0.5)
    assert c.leader().id == 1 and c.engines[1].term == term
    assert c.engines[3].leader_id == 1


def test_without_pre_vote_a_returning_node_raises_the_term():
    """The contrast that motivates pre-vote (check-quorum off too)."""
    c = Cluster(3, config=fast_config(pre_vote=False, check_quorum=False), seed=6)
    c.elect(1)
    term = c.engines[1].term
    c.isolate(3)
    c.advance(2.0)
    assert c.engines[3].term > term + 3


# -- §6.2 / §4.2.3 check-quorum ------------------------------------------------------------------

def test_check_quorum_leader_steps_down_without_a_quorum():
    c = Cluster(3, seed=7)
    c.elect(1)
    c.isolate(1)
    c.advance(0.35)
    assert c.engines[1].role == Role.FOLLOWER
    c.heal()
    c.advance(1.0)
    assert c.leader() is not None


def test_check_quorum_off_keeps_an_isolated_leader():
    c = Cluster(3, config=fast_config(check_quorum=False), seed=7)
    c.elect(1)
    c.isolate(1)
    c.advance(1.0)
    assert c.engines[1].role == Role.LEADER


def test_vote_requests_ignored_within_the_leader_lease():
    """thesis §4.2.3: "if a server receives a RequestVote request within the minimum election
    timeout of hearing from a current leader, it does not update its term or grant its vote"."""
    v = engine(2)
    v.step(append(1, 1, 1, 1, 0, []))
    complete_writes(v, v.take_commands())
    v.step(VoteRequest(term=5, sender=3, last_log_term=9, last_log_index=9))
    assert v.take_commands() == [] and v.term == 1
    v.tick(v.now + 0.15)
    v.step(VoteRequest(term=5, sender=3, last_log_term=9, last_log_index=9))
    replies = sent(complete_writes(v, v.take_commands()), VoteResponse)
    assert replies == [VoteResponse(term=5, sender=2, granted=True)] and v.term == 5
