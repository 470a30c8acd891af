"""The engine's trust boundary (fastraft/core/guard.py): no single message from a peer can
corrupt a node's state or stop its cluster. Raft §5.1 (terms), §5.2 (elections), §5.3-5.4
(log matching, committed entries never rewritten), thesis §3.10 (leadership transfer), §9.6
(pre-vote), §6.2 (check-quorum) and §4.2.3 (disruptive servers)."""

import importlib

import pytest

from fastraft.core import AppendLog, InitialState, Role, SaveVote, TruncateLog
from fastraft.core.guard import (CEILING, MALFORMED, NON_MEMBER, NOT_VOTER,
                                 TIMEOUT_NOW_NOT_FROM_LEADER, CommittedConflict, GuardReport)
from fastraft.messages import (AppendEntriesResponse, InstallSnapshotRequest,
                               TimeoutNowRequest, TimeoutNowResponse, VoteRequest, VoteResponse)
from fastraft.types import EntryKind, LogId, Vote

from .cluster import Cluster
from .helpers import (Entry, append, complete_writes, config, engine, make_leader,
                      membership_entry, of_type, sent)

U64_MAX = (1 << 64) - 1


def vote(term, sender, last_term, last_index, pre_vote=False, transfer=False):
    return VoteRequest(term=term, sender=sender, last_log_term=last_term,
                       last_log_index=last_index, pre_vote=pre_vote, leader_transfer=transfer)


def follower_of_1(node_id=2, **kw):
    """A follower that just heard from leader 1 in term 1 (its lease is fresh)."""
    f = engine(node_id, cfg=config(), **kw)
    f.step(append(1, 1, 1, 1, 0, []))
    complete_writes(f, f.take_commands())
    return f


def unchanged(e, term, leader_id, role):
    return e.term == term and e.leader_id == leader_id and e.role == role


# -- §5.1: terms and indexes are bounded ---------------------------------------------------------

@pytest.mark.parametrize("term", [CEILING, U64_MAX])
def test_5_1_vote_request_with_a_term_beyond_the_ceiling_is_dropped_by_a_leader(term):
    """The first attack of the issue: term 2**64-1 with leader_transfer made the leader vote,
    step down and crash every node on the next term + 1."""
    e = engine(1, cfg=config())
    make_leader(e)
    before = e.term
    e.step(vote(term, 2, 5, 50, False, True))
    cmds = e.take_commands()
    assert cmds == [] and e.role == Role.LEADER and e.term == before
    assert e.dropped[MALFORMED] == 1
    assert e.take_guard_reports() == [GuardReport(sender=2, reason=MALFORMED,
                                                   what=f"VoteRequest in term {term}")]


@pytest.mark.parametrize("msg", [
    append(CEILING, 1, 1, 1, 0, []),
    append(1, 1, 1, CEILING, 0, []),
    append(1, 1, 1, 1, CEILING, []),
    append(1, 1, CEILING, 1, 0, []),
    append(1, 1, 1, 1, 0, [], seq=CEILING),
    append(1, 1, 1, CEILING - 1, 0, [Entry(1, CEILING, 0, b"x")]),  # would end at the ceiling
    VoteRequest(term=2, sender=1, last_log_term=CEILING, last_log_index=1),
    VoteRequest(term=2, sender=1, last_log_term=1, last_log_index=U64_MAX, pre_vote=True),
    TimeoutNowRequest(term=U64_MAX, sender=1),
    InstallSnapshotRequest(term=1, sender=1, snapshot_id="s", last_log_term=1,
                           last_log_index=CEILING, membership_term=1, membership_index=1,
                           membership=b"", offset=0, data=b"", done=True),
    AppendEntriesResponse(term=1, sender=3, success=True, match_index=CEILING),
    VoteResponse(term=U64_MAX, sender=3, granted=True),
    TimeoutNowResponse(term=1, sender=CEILING),  # a sender id at the ceiling is malformed too
])
def test_5_1_any_integer_at_or_beyond_the_ceiling_is_malformed(msg):
    e = follower_of_1()
    before = (e.term, e.vote, e.leader_id, e.role, e.last_log_id, e.committed)
    e.step(msg)
    assert e.take_commands() == []
    assert (e.term, e.vote, e.leader_id, e.role, e.last_log_id, e.committed) == before
    assert e.dropped[MALFORMED] == 1


@pytest.mark.parametrize("flavour", ["compiled", "pure"])
def test_5_1_both_codecs_carry_any_u64_and_the_engine_refuses_it(flavour):
    """The bound is the engine's, not the codec's: the codec is a u64 format that storage
    shares, and the engine must refuse such values from any network (the simulator's, a user's
    own). Both flavours decode 2**64-1 alike, and the engine drops what they decode."""
    codec = importlib.import_module(f"fastraft.accel.{flavour}.codec")
    entry = importlib.import_module(f"fastraft.accel.{flavour}.entry").Entry
    msgs = [vote(U64_MAX, 3, U64_MAX, U64_MAX, False, True),
            append(1, 1, 1, U64_MAX - 1, U64_MAX, [entry(1, U64_MAX, 0, b"x")], seq=U64_MAX)]
    e = follower_of_1()
    for msg in msgs:
        decoded = codec.decode_message(codec.encode_message(msg))
        assert decoded == msg
        e.step(decoded)
    assert e.take_commands() == [] and e.dropped[MALFORMED] == 2
    assert unchanged(e, 1, 1, Role.FOLLOWER) and e.last_log_id == LogId(1, 1)


def test_5_1_a_negative_integer_is_malformed():
    """Networks that pass Python objects (the simulator, a user's own) bypass the codec's u64."""
    e = follower_of_1()
    e.step(append(1, 1, 1, -5, 0, []))
    assert e.take_commands() == [] and e.dropped[MALFORMED] == 1


def test_5_1_terms_just_below_the_ceiling_are_handled_normally():
    e = follower_of_1()
    e.step(append(CEILING - 1, 1, 1, 1, 0, []))
    assert e.term == CEILING - 1 and e.leader_id == 1 and sum(e.dropped.values()) == 0
    assert SaveVote(Vote(CEILING - 1, 0)) in e.take_commands()


def test_5_2_a_node_never_campaigns_into_the_ceiling():
    """term + 1 is the only arithmetic on a term: at CEILING - 1 a node stops campaigning, so
    no node ever holds (or persists) a term at the ceiling."""
    e = engine(1, vote=Vote(CEILING - 1, 0), cfg=config())
    e.trigger_elect()
    e.tick(10.0)
    assert e.role == Role.LEARNER and e.term == CEILING - 1
    assert not [c for c in e.take_commands() if isinstance(c, SaveVote)]
    assert e.next_deadline() == float("inf")


@pytest.mark.parametrize("state", [
    InitialState(vote=Vote(CEILING, 0)),
    InitialState(vote=Vote(U64_MAX, 1)),
    InitialState(log_runs=((CEILING, 1),)),
    InitialState(log_runs=((1, CEILING),)),
    InitialState(purged=LogId(1, CEILING)),
    InitialState(committed=CEILING),
])
def test_5_1_a_persisted_term_or_index_at_the_ceiling_is_refused_at_start(state):
    with pytest.raises(ValueError, match="outside"):
        from fastraft.core import Engine
        Engine(1, config(), 0, state)


# -- membership: messages from strangers ---------------------------------------------------------

def test_append_entries_from_a_non_member_changes_nothing():
    """The second attack: AppendEntries from node 99 with term + 1 and one entry was accepted
    and the forged write committed on every replica."""
    f = follower_of_1()
    f.step(append(2, 99, 1, 1, 2, [Entry(2, 2, EntryKind.NORMAL, b"forged")]))
    assert f.take_commands() == []
    assert unchanged(f, 1, 1, Role.FOLLOWER) and f.last_log_id == LogId(1, 1)
    assert f.dropped[NON_MEMBER] == 1
    # reported once per sender, however often it sends
    for k in range(5):
        f.step(append(3 + k, 99, 1, 1, 2, []))
    f.step(append(2, 98, 1, 1, 2, []))
    assert f.dropped[NON_MEMBER] == 7
    assert [(r.sender, r.reason) for r in f.take_guard_reports()] == [(99, NON_MEMBER),
                                                                       (98, NON_MEMBER)]
    assert f.take_guard_reports() == []


def test_the_report_queue_is_bounded_under_a_flood_of_forged_ids():
    f = follower_of_1()
    for sender in range(100, 100 + 3000):
        f.step(append(2, sender, 1, 1, 0, []))
    assert f.dropped[NON_MEMBER] == 3000
    assert len(f.take_guard_reports()) == 1024


def test_responses_from_a_non_member_are_dropped_too():
    e = engine(1, cfg=config())
    make_leader(e)
    e.step(AppendEntriesResponse(term=e.term + 5, sender=99, success=False, match_index=1))
    assert e.role == Role.LEADER and e.dropped[NON_MEMBER] == 1


def test_a_node_without_a_configuration_takes_entries_from_a_leader():
    """A node being added holds no configuration until the leader's entries (or snapshot)
    reach it (thesis §4.2.1): it must accept them from a leader it does not know yet."""
    f = engine_without_configuration(4)
    f.step(append(3, 1, 0, 0, 1, [membership_entry(voters=(1, 2, 3), learners=(4,))]))
    cmds = complete_writes(f, f.take_commands())
    assert f.leader_id == 1 and f.last_log_id == LogId(1, 1) and f.committed == 1
    assert of_type(cmds, AppendLog) and sum(f.dropped.values()) == 0
    assert f.membership.membership.nodes.keys() == {1, 2, 3, 4}
    assert f.role == Role.LEARNER


def test_a_node_without_a_configuration_still_votes():
    """A cluster is bootstrapped by initializing one node, which asks its unconfigured peers
    for votes (Raft §5.2)."""
    f = engine_without_configuration(2)
    f.step(VoteRequest(term=2, sender=1, last_log_term=1, last_log_index=1))
    cmds = complete_writes(f, f.take_commands())
    assert sent(cmds, VoteResponse) == [VoteResponse(term=2, sender=2, granted=True)]


def engine_without_configuration(node_id):
    from fastraft.core import Engine
    e = Engine(node_id, config(), 0)
    e.take_commands()
    return e


def test_a_removed_node_is_a_stranger_once_no_kept_configuration_names_it():
    """The membership check covers the effective and the committed configuration, so a member
    removed by an uncommitted change is still heard from, and a stranger once it commits."""
    f = follower_of_1(voters=(1, 2, 3, 4))
    f.step(append(1, 1, 1, 1, 1, [membership_entry(voters=(1, 2, 3), term=1, index=2)]))
    complete_writes(f, f.take_commands())
    assert f.committed == 1 and 4 not in f.membership.membership.nodes
    # 4 is in the committed configuration
    f.step(AppendEntriesResponse(term=1, sender=4, success=True, match_index=1))
    assert f.dropped[NON_MEMBER] == 0
    f.step(append(1, 1, 1, 2, 2, []))  # C_new commits
    complete_writes(f, f.take_commands())
    assert f.committed == 2
    f.step(AppendEntriesResponse(term=1, sender=4, success=True, match_index=1))
    assert f.dropped[NON_MEMBER] == 1


# -- §5.2, §9.6, §4.2.3: votes from non-voters ----------------------------------------------

@pytest.mark.parametrize("pre_vote", [False, True])
@pytest.mark.parametrize("transfer", [False, True])
def test_4_2_3_vote_request_from_a_non_member_gets_no_vote_and_changes_no_term(pre_vote, transfer):
    """The fourth attack: node 99 sending VoteRequests with leader_transfer six times a second
    kept the cluster without a leader."""
    e = engine(1, cfg=config())
    make_leader(e)
    t = e.term
    for k in range(6):
        e.step(vote(t + 1 + k, 99, 10, 100, pre_vote, transfer))
    assert e.take_commands() == [] and e.role == Role.LEADER and e.term == t
    assert e.dropped[NOT_VOTER] == 6
    f = engine(2, cfg=config(pre_vote=False, check_quorum=False))  # no lease to hide behind
    f.step(vote(5, 99, 10, 100, pre_vote, transfer))
    assert f.take_commands() == [] and f.term == 1 and f.vote == Vote(1, 0)


@pytest.mark.parametrize("last", [(1, 1), (1, 0)])
def test_4_2_3_vote_request_from_a_learner_not_ahead_gets_no_vote(last):
    f = engine(2, voters=(1, 2, 3), learners=(4,), cfg=config(pre_vote=False,
                                                                 check_quorum=False))
    f.step(VoteRequest(term=5, sender=4, last_log_term=last[0], last_log_index=last[1]))
    assert f.take_commands() == [] and f.term == 1 and f.dropped[NOT_VOTER] == 1


@pytest.mark.parametrize("pre_vote", [False, True])
def test_4_1_a_learner_whose_log_is_ahead_gets_an_answer(pre_vote):
    """Seed 404505 of the simulator: node 5 missed the configurations that made node 2 a
    voter and itself a voter of C_new; node 2 held the only log C_old could elect, node 5
    dropped its vote requests as a learner's, and no leader was ever elected again. A member
    whose log is beyond ours may vote in a configuration we have not received: thesis §4.1,
    "a server grants its vote to a candidate that is not part of the server's latest
    configuration" (if its log is up to date, §5.4.1)."""
    f = engine(2, voters=(1, 2, 3), learners=(4,), cfg=config(pre_vote=False,
                                                                 check_quorum=False))
    f.step(vote(5, 4, 1, 2, pre_vote, False))
    (reply,) = sent(complete_writes(f, f.take_commands()), VoteResponse)
    assert reply.granted and f.dropped[NOT_VOTER] == 0
    assert (f.term, f.vote) == ((1, Vote(1, 0)) if pre_vote else (5, Vote(5, 4)))
    # a stranger gets nothing, whatever log it claims (the storm of node 99 above)
    f.step(vote(6, 99, 1 << 40, 1 << 40, pre_vote, False))
    assert f.take_commands() == [] and f.dropped[NOT_VOTER] == 1


def test_3_10_lease_bypass_only_for_a_voter_of_the_effective_configuration():
    """A voter of the previous configuration only (removed by the uncommitted effective one)
    may still campaign (thesis §4.2.2) but cannot claim a transfer against the lease."""
    f = follower_of_1(voters=(1, 2, 3, 4))
    f.step(append(1, 1, 1, 1, 1, [membership_entry(voters=(1, 2, 3), term=1, index=2)]))
    complete_writes(f, f.take_commands())
    f.step(vote(2, 4, 1, 2, False, True))
    assert f.take_commands() == [] and f.term == 1 and f.leader_id == 1
    # a voter of the effective configuration gets the bypass
    f.step(vote(2, 3, 1, 2, False, True))
    cmds = complete_writes(f, f.take_commands())
    assert sent(cmds, VoteResponse) == [VoteResponse(term=2, sender=2, granted=True)]


# -- §3.10: TimeoutNow only from the leader ------------------------------------------------------

def test_3_10_timeout_now_from_a_non_member_is_dropped():
    """The fifth attack: TimeoutNow from node 99 made a follower start an election at once."""
    f = follower_of_1()
    f.step(TimeoutNowRequest(term=1, sender=99))
    f.step(TimeoutNowRequest(term=2, sender=99))
    assert f.take_commands() == [] and unchanged(f, 1, 1, Role.FOLLOWER)
    assert f.dropped[NON_MEMBER] == 2


@pytest.mark.parametrize("msg", [TimeoutNowRequest(term=1, sender=3),  # a member, not the leader
                                 TimeoutNowRequest(term=2, sender=1),  # the leader, not in term 2
                                 TimeoutNowRequest(term=2, sender=3)])
def test_3_10_timeout_now_from_a_member_that_is_not_the_leader_in_that_term(msg):
    f = follower_of_1()
    f.step(msg)
    assert f.take_commands() == [] and unchanged(f, 1, 1, Role.FOLLOWER)
    assert f.dropped[TIMEOUT_NOW_NOT_FROM_LEADER] == 1


def test_3_10_timeout_now_from_an_older_term_is_answered_with_the_current_one():
    f = follower_of_1()
    f.step(append(3, 1, 1, 1, 0, []))
    complete_writes(f, f.take_commands())
    f.step(TimeoutNowRequest(term=2, sender=3))
    cmds = complete_writes(f, f.take_commands())
    assert sent(cmds, TimeoutNowResponse) == [TimeoutNowResponse(term=3, sender=2)]
    assert f.role == Role.FOLLOWER and sum(f.dropped.values()) == 0


def test_3_10_a_node_without_a_configuration_takes_no_timeout_now_nor_responses():
    f = engine_without_configuration(2)
    f.step(TimeoutNowRequest(term=3, sender=99))
    f.step(VoteResponse(term=7, sender=99, granted=True))
    f.step(AppendEntriesResponse(term=7, sender=99, success=False, match_index=1))
    assert f.take_commands() == [] and f.term == 0 and f.role == Role.LEARNER
    assert f.dropped[NON_MEMBER] == 3


# -- §5.3/§5.4: committed entries are never rewritten, and a refusal is reported ----------------

def test_5_4_refusing_to_rewrite_committed_entries_is_reported():
    """The last row: a follower whose committed entries a leader's log lacks (lost
    elsewhere) drops that leader's entries forever; it must say so."""
    f = follower_of_1()
    f.step(append(1, 1, 1, 1, 0, [Entry(1, 2, 0, b"a"), Entry(1, 3, 0, b"b")]))
    complete_writes(f, f.take_commands())
    f.step(append(1, 1, 1, 3, 3, []))
    complete_writes(f, f.take_commands())
    assert f.committed == 3 and f.committed_conflicts == 0 and f.committed_conflict is None
    # a leader of term 4 whose log has other entries at 2 and 3
    f.step(append(4, 3, 1, 1, 3, [Entry(4, 2, 0, b"x"), Entry(4, 3, 0, b"y")]))
    cmds = f.take_commands()
    assert not of_type(cmds, TruncateLog) and not of_type(cmds, AppendLog)
    assert f.log.term_at(2) == 1 and f.log.term_at(3) == 1
    assert f.committed_conflicts == 1
    assert f.committed_conflict == CommittedConflict(leader_id=3, term=4, index=2)
    f.step(append(4, 3, 1, 1, 3, [Entry(4, 2, 0, b"x")]))
    assert f.committed_conflicts == 2


# -- end to end on a simulated cluster -----------------------------------------------------------

def test_4_2_3_a_stranger_flooding_vote_requests_does_not_stop_the_cluster():
    c = Cluster(3, seed=11)
    leader = c.elect(1)
    t = leader.term
    for k in range(30):  # 6 a second for 5 s of simulated time
        for i in c.ids:
            c.engines[i].step(vote(t + 1 + k, 99, 1000, 1000, False, True))
            c.engines[i].step(TimeoutNowRequest(term=t + 1 + k, sender=99))
            c.engines[i].step(append(t + 1 + k, 99, 1, 1, 1000, [Entry(t + 1 + k, 2, 0, b"f")]))
        c.run_commands()
        c.advance(0.16)
        c.propose(1, [b"w%d" % k])
    c.advance(0.5)
    assert c.leader() is leader and leader.term == t
    assert len(c.applied_payloads(2)) >= 30 and b"f" not in c.applied_payloads(3)
