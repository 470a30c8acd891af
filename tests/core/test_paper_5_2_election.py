"""Raft §5.1 (basics: terms and roles) and §5.2 (leader election), in the spirit of etcd-raft's
raft_paper_test. Pre-vote is off here unless a test says otherwise: §5.2 is the plain
protocol; pre-vote has its own file (thesis §9.6)."""

import pytest

from fastraft.core import AppendLog, Role, SaveVote
from fastraft.messages import (AppendEntriesRequest, AppendEntriesResponse, VoteRequest,
                               VoteResponse)
from fastraft.types import Vote

from .cluster import Cluster, fast_config
from .helpers import append, complete_writes, config, engine, make_leader, of_type, sent

PLAIN = dict(pre_vote=False, check_quorum=False)


# -- §5.1: terms ---------------------------------------------------------------------------------

def test_5_1_node_starts_as_follower():
    """§5.1: "When servers start up, they begin as followers"."""
    e = engine(1, cfg=config(**PLAIN))
    assert e.role == Role.FOLLOWER and e.leader_id == 0 and e.term == 1


@pytest.mark.parametrize("role", [Role.FOLLOWER, Role.CANDIDATE, Role.LEADER])
def test_5_1_higher_term_turns_any_role_into_follower(role):
    """§5.1: "If a server's current term is smaller than the other's, it updates its current
    term ... If a candidate or leader discovers that its term is out of date, it immediately
    reverts to follower state"."""
    e = engine(1, cfg=config(**PLAIN))
    if role == Role.CANDIDATE:
        e.trigger_elect()
        complete_writes(e, e.take_commands())
    elif role == Role.LEADER:
        make_leader(e)
    assert e.role == role
    e.step(append(9, 3, 0, 0, 0, []))
    cmds = e.take_commands()
    assert e.role == Role.FOLLOWER and e.term == 9 and e.leader_id == 3
    assert SaveVote(Vote(9, 0)) in cmds


def test_5_1_stale_term_request_is_rejected_with_current_term():
    """§5.1: "If a server receives a request with a stale term number, it rejects it"."""
    e = engine(1, terms=(1, 3), vote=Vote(3, 0), cfg=config(**PLAIN))
    e.step(append(2, 2, 1, 1, 0, []))
    replies = sent(complete_writes(e, e.take_commands()), AppendEntriesResponse)
    assert replies == [AppendEntriesResponse(term=3, sender=1, success=False, match_index=1, hint_term=0, hint_index=0, seq=0)]
    e.step(VoteRequest(term=2, sender=2, last_log_term=5, last_log_index=5))
    replies = sent(complete_writes(e, e.take_commands()), VoteResponse)
    assert replies == [VoteResponse(term=3, sender=1, granted=False, pre_vote=False)]
    assert e.term == 3 and e.vote == Vote(3, 0)


# -- §5.2: leader election -----------------------------------------------------------------------

def test_5_2_leader_sends_heartbeats_every_interval():
    """§5.2: "Leaders send periodic heartbeats (AppendEntries RPCs that carry no log entries)
    to all followers in order to maintain their authority"."""
    e = engine(1, cfg=config(**PLAIN))
    make_leader(e)
    for peer in (2, 3):
        ack(e, peer)
    t0 = e.now
    e.tick(t0 + 0.049)
    assert sent(e.take_commands(), AppendEntriesRequest) == []
    e.tick(t0 + 0.05)
    beats = sent(e.take_commands(), AppendEntriesRequest)
    assert sorted(m.sender for m in beats) == [1, 1]
    assert all(m.entries == [] for m in beats)


def ack(e, peer):
    e.step(AppendEntriesResponse(term=e.term, sender=peer, success=True, match_index=e.log.last_index, hint_term=0, hint_index=0, seq=0))
    e.take_commands()


def test_5_2_follower_times_out_and_campaigns():
    """§5.2: "If a follower receives no communication over a period of time called the election
    timeout ... it increments its current term and transitions to candidate state. It then votes
    for itself and issues RequestVote RPCs in parallel to each of the other servers"."""
    e = engine(1, terms=(1, 1, 2), vote=Vote(2, 0), cfg=config(**PLAIN))
    deadline = e.next_deadline()
    assert 0.15 <= deadline < 0.30  # the randomized timeout, from the configured range
    e.tick(deadline - 0.001)
    assert e.take_commands() == []
    e.tick(deadline)
    cmds = e.take_commands()
    assert e.role == Role.CANDIDATE and e.term == 3 and e.vote == Vote(3, 1)
    assert SaveVote(Vote(3, 1)) in cmds
    assert sent(cmds) == []  # requests wait for the vote to be durable
    e.on_vote_saved(Vote(3, 1))
    reqs = sent(e.take_commands(), VoteRequest)
    assert len(reqs) == 2 and {r.term for r in reqs} == {3}
    assert [(r.sender, r.last_log_term, r.last_log_index, r.pre_vote) for r in reqs] == \
        [(1, 2, 3, False)] * 2


def test_5_2_candidate_wins_with_a_majority_and_announces_itself():
    """§5.2: "A candidate wins an election if it receives votes from a majority ... Once a
    candidate wins an election, it becomes leader. It then sends heartbeat messages to all of
    the other servers to establish its authority"."""
    e = engine(1, voters=(1, 2, 3, 4, 5), cfg=config(**PLAIN))
    e.trigger_elect()
    complete_writes(e, e.take_commands())
    e.step(VoteResponse(term=2, sender=2, granted=True))
    assert e.role == Role.CANDIDATE  # 2 of 5
    e.step(VoteResponse(term=2, sender=3, granted=True))
    cmds = e.take_commands()
    assert e.role == Role.LEADER and e.leader_id == 1
    assert len(sent(cmds, AppendEntriesRequest)) == 4


@pytest.mark.parametrize("n,grants,rejects,outcome", [
    (1, [], [], Role.LEADER),
    (3, [2], [], Role.LEADER),
    (3, [], [2, 3], Role.FOLLOWER),
    (3, [], [2], Role.CANDIDATE),
    (5, [2, 3], [], Role.LEADER),
    (5, [2], [3, 4, 5], Role.FOLLOWER),
    (5, [2], [3, 4], Role.CANDIDATE),
    (5, [2], [3], Role.CANDIDATE),
])
def test_5_2_election_outcome_from_votes(n, grants, rejects, outcome):
    """§5.2: win, lose ("another server establishes itself as leader" or the votes cannot add
    up) or neither (split vote: wait for the next timeout)."""
    e = engine(1, voters=tuple(range(1, n + 1)), cfg=config(**PLAIN))
    e.trigger_elect()
    complete_writes(e, e.take_commands())
    for v in grants:
        e.step(VoteResponse(term=2, sender=v, granted=True))
    for v in rejects:
        e.step(VoteResponse(term=2, sender=v, granted=False))
    assert e.role == outcome


def test_5_2_vote_once_per_term_first_come_first_served():
    """§5.2: "each server will vote for at most one candidate in a given term, on a
    first-come-first-served basis"."""
    e = engine(2, cfg=config(**PLAIN))
    e.step(VoteRequest(term=2, sender=1, last_log_term=1, last_log_index=1))
    cmds = complete_writes(e, e.take_commands())
    assert sent(cmds, VoteResponse) == [VoteResponse(term=2, sender=2, granted=True)]
    e.step(VoteRequest(term=2, sender=3, last_log_term=1, last_log_index=1))
    assert sent(complete_writes(e, e.take_commands()), VoteResponse) == [VoteResponse(term=2, sender=2, granted=False)]
    e.step(VoteRequest(term=2, sender=1, last_log_term=1, last_log_index=1))  # the same candidate asking again gets the same answer
    assert sent(complete_writes(e, e.take_commands()), VoteResponse) == [VoteResponse(term=2, sender=2, granted=True)]
    assert e.vote == Vote(2, 1)


def test_5_2_vote_reply_waits_for_the_vote_to_be_durable():
    """Figure 2: persistent state is "updated on stable storage before responding to RPCs"."""
    e = engine(2, cfg=config(**PLAIN))
    e.step(VoteRequest(term=2, sender=1, last_log_term=1, last_log_index=1))
    cmds = e.take_commands()
    assert of_type(cmds, SaveVote) == [SaveVote(Vote(2, 0)), SaveVote(Vote(2, 1))]
    assert sent(cmds) == []
    e.on_vote_saved(Vote(2, 0))
    assert sent(e.take_commands()) == []
    e.on_vote_saved(Vote(2, 1))
    assert sent(e.take_commands()) == [VoteResponse(term=2, sender=2, granted=True)]


def test_5_2_candidate_steps_down_for_a_leader_of_its_term():
    """§5.2: "If the leader's term ... is at least as large as the candidate's current term,
    then the candidate recognizes the leader as legitimate and returns to follower state"."""
    e = engine(1, cfg=config(**PLAIN))
    e.trigger_elect()
    complete_writes(e, e.take_commands())
    e.step(append(2, 3, 1, 1, 0, []))
    assert e.role == Role.FOLLOWER and e.leader_id == 3 and e.term == 2


def test_5_2_split_vote_retries_in_a_new_term():
    """§5.2: "each candidate will time out and start a new election by incrementing its term"."""
    e = engine(1, cfg=config(**PLAIN))
    e.trigger_elect()
    complete_writes(e, e.take_commands())
    assert e.term == 2
    e.tick(e.next_deadline())
    complete_writes(e, e.take_commands())
    assert e.role == Role.CANDIDATE and e.term == 3


def test_5_2_election_timeouts_are_randomized_and_seeded():
    """§5.2: "Raft uses randomized election timeouts ... chosen randomly from a fixed
    interval"; the randomness comes from the seed alone, so runs replay."""
    deadlines = [engine(1, seed=s, cfg=config(**PLAIN)).next_deadline() for s in range(20)]
    assert len(set(deadlines)) == 20 and all(0.15 <= d < 0.30 for d in deadlines)
    again = [engine(1, seed=s, cfg=config(**PLAIN)).next_deadline() for s in range(20)]
    assert deadlines == again


def test_5_2_learners_never_campaign():
    """Learners replicate but never start elections."""
    e = engine(4, voters=(1, 2, 3), learners=(4,), cfg=config(**PLAIN))
    assert e.role == Role.LEARNER and e.next_deadline() == float("inf")
    e.tick(10.0)
    e.trigger_elect()
    assert e.role == Role.LEARNER and e.term == 1 and sent(e.take_commands()) == []


def test_5_2_cluster_elects_exactly_one_leader_by_timeouts():
    """§5.2 end to end: with only time passing, a three-node cluster elects one leader and
    every follower knows it."""
    c = Cluster(3, config=fast_config(**PLAIN), seed=3)
    c.advance(1.0)
    leader = c.leader()
    assert leader is not None
    assert [c.engines[i].leader_id for i in c.ids] == [leader.id] * 3
    assert len({c.engines[i].term for i in c.ids}) == 1


def test_5_2_new_leader_appends_blank_entry():
    """§5.4.2/§8: the new leader appends an entry of its own term (a no-op) at once."""
    e = engine(1, terms=(1, 1), cfg=config(**PLAIN))
    cmds = make_leader(e)
    appends = of_type(cmds, AppendLog)
    assert [(en.term, en.index, en.kind, en.payload) for a in appends for en in a.entries] == \
        [(2, 3, 0, b"")]
