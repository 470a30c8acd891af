"""Raft §6 (cluster membership changes, joint consensus) and thesis §4 (learners, catch-up,
a configuration takes effect when appended, removed leaders step down)."""

from fastraft.core import MembershipChanged, MembershipError, Respond, Role, TruncateLog
from fastraft.core._prims import progress as prog
from fastraft.errors import ForwardToLeader, OutcomeUnknown
from fastraft.messages import AppendEntriesResponse
from fastraft.types import EntryKind, LogId, Membership, Node

from .cluster import Cluster, fast_config
from .helpers import Entry, append, config, engine, make_leader, membership, of_type


def node(i):
    return Node(f"127.0.0.1:{7000 + i}")


def answers(c, i):
    return {r.request_id: r for r in c.responses[i]}


def test_learner_replicates_but_never_counts():
    """thesis §4.2.1: non-voting members receive the log but are not in any majority."""
    c = Cluster(4, voters=[1, 2, 3], seed=3)
    leader = c.elect(1)
    assert leader.progress.learner_ids() == [4]
    c.isolate(2)
    c.isolate(3)
    c.propose(1, [b"x"])
    c.stabilize()
    assert c.engines[4].log.last_index == leader.log.last_index  # the learner got it
    assert leader.committed < leader.log.last_index  # but 1 + learner is no majority
    c.heal()
    c.advance(0.5)  # the lost messages are resent once the pipeline is seen stalled
    assert c.applied_payloads(4) == [b"x"] and c.engines[4].role == Role.LEARNER


def test_add_learner_blocks_until_caught_up():
    """openraft's add_learner(blocking): answered once the learner lags by fewer than
    replication_lag_threshold entries."""
    c = Cluster(3, config=fast_config(replication_lag_threshold=3), seed=5)
    c.elect(1)
    for k in range(10):
        c.propose(1, [b"%d" % k])
    c.stabilize()
    # node 4 joins: a fresh engine that is not initialized
    from fastraft.core import Engine
    from .cluster import Store
    c.ids.append(4)
    c.stores[4] = Store()
    c.engines[4] = Engine(4, c.config, 99)
    c.responses[4] = []
    c.reads[4] = []
    c.isolate(4)
    c.engines[1].add_learner("add4", 4, node(4), blocking=True)
    c.run_commands()
    c.stabilize()
    c.advance(0.1)
    assert "add4" not in answers(c, 1)  # committed, but node 4 cannot be reached
    c.heal()
    c.advance(0.3)
    r = answers(c, 1)["add4"]
    assert r.error is None and isinstance(r.result, LogId)
    assert c.engines[4].role == Role.LEARNER
    assert c.applied_payloads(4) == c.applied_payloads(1)


def test_6_joint_consensus_change_end_to_end():
    """§6: C_old,new, then C_new once it commits; the request is answered with C_new's id;
    voters removed without retain leave the membership."""
    c = Cluster(5, voters=[1, 2, 3], seed=7)
    c.elect(1)
    c.engines[1].change_membership("chg", [1, 4, 5], retain=False)
    c.run_commands()
    eff = c.engines[1].membership.membership
    assert eff.is_joint and eff.configs == (frozenset({1, 2, 3}), frozenset({1, 4, 5}))
    c.advance(0.3)
    r = answers(c, 1)["chg"]
    assert r.error is None
    final = c.engines[1].membership
    assert final.log_id == r.result and final.membership.configs == (frozenset({1, 4, 5}),)
    assert sorted(final.membership.nodes) == [1, 4, 5]
    assert c.engines[1].committed_membership == final
    kinds = [e.kind for e in c.stores[1].log.values()]
    assert kinds.count(EntryKind.MEMBERSHIP) == 3  # initial, joint, final
    for i in (4, 5):
        assert c.engines[i].role == Role.FOLLOWER
    # nodes 2 and 3 are out: they may never learn that C_new committed, and pre-vote and
    # check-quorum keep them from disturbing the new configuration (thesis §4.2.3)
    term = c.engines[1].term
    c.advance(1.0)
    assert c.leader().id == 1 and c.engines[1].term == term


def test_6_joint_config_needs_both_majorities_to_commit():
    """§6: "Agreement (for elections and entry commitment) requires separate majorities from
    both the old and new configurations"."""
    e = engine(1, voters=(1, 2, 3), learners=(4, 5))
    make_leader(e)
    for p in (2, 3, 4, 5):
        e.step(AppendEntriesResponse(term=e.term, sender=p, success=True, match_index=2, hint_term=0, hint_index=0, seq=0))
    e.take_commands()
    assert e.committed == 2
    e.change_membership("c", [3, 4, 5])
    e.take_commands()
    joint_index = e.log.last_index
    e.on_log_flushed(LogId(e.term, joint_index))  # the leader holds it durably
    e.step(AppendEntriesResponse(term=e.term, sender=2, success=True, match_index=joint_index, hint_term=0, hint_index=0, seq=0))
    assert e.committed == 2  # old majority {1, 2}, but the new one has nobody
    e.step(AppendEntriesResponse(term=e.term, sender=4, success=True, match_index=joint_index, hint_term=0, hint_index=0, seq=0))
    assert e.committed == 2  # new config {3, 4, 5}: only 4
    e.step(AppendEntriesResponse(term=e.term, sender=5, success=True, match_index=joint_index, hint_term=0, hint_index=0, seq=0))
    assert e.committed >= joint_index  # both majorities
    assert not e.membership.membership.is_joint  # C_new appended at once


def test_6_membership_takes_effect_when_appended_and_reverts_on_truncation():
    """thesis §4.1: "a server always uses the latest configuration in its log, regardless of
    whether the entry is committed"; removing the entry restores the previous one."""
    e = engine(2, terms=(1, 2))
    joint = Membership((frozenset({1, 2, 3}), frozenset({2, 3, 4})),
                       {i: node(i) for i in (1, 2, 3, 4)})
    e.step(append(2, 1, 2, 2, 0, [Entry(2, 3, EntryKind.MEMBERSHIP, joint.to_bytes())]))
    cmds = e.take_commands()
    assert e.membership.membership == joint and e.membership.log_id == LogId(2, 3)
    assert of_type(cmds, MembershipChanged)[-1].membership.membership == joint
    e.step(append(3, 3, 2, 2, 0, [Entry(3, 3, EntryKind.NORMAL, b"other")]))
    cmds = e.take_commands()
    assert TruncateLog(3) in cmds
    assert e.membership.membership == membership() and e.membership.log_id == LogId(1, 1)


def test_6_one_change_at_a_time_and_request_errors():
    e = engine(1, voters=(1, 2, 3), learners=(4,))
    e.change_membership("early", [1, 2, 4])
    assert of_type(e.take_commands(), Respond)[0].error is not None  # not leader
    make_leader(e)
    e.change_membership("too-early", [1, 2, 4])
    r = of_type(e.take_commands(), Respond)[0]
    assert isinstance(r.error, MembershipError)  # the blank entry is not committed yet
    e.step(AppendEntriesResponse(term=e.term, sender=2, success=True, match_index=2, hint_term=0, hint_index=0, seq=0))
    e.take_commands()
    e.change_membership("unknown", [1, 2, 9])
    r = of_type(e.take_commands(), Respond)[0]
    assert isinstance(r.error, MembershipError) and "9" in str(r.error)
    e.change_membership("empty", [])
    assert isinstance(of_type(e.take_commands(), Respond)[0].error, MembershipError)
    e.change_membership("same", [1, 2, 3])
    assert of_type(e.take_commands(), Respond)[0] == Respond("same", result=LogId(1, 1))
    e.change_membership("go", [1, 2, 4])
    assert of_type(e.take_commands(), Respond) == []
    e.change_membership("second", [1, 2])
    r = of_type(e.take_commands(), Respond)[0]
    assert r.request_id == "second" and isinstance(r.error, MembershipError)
    e.add_learner("learner", 5, node(5))
    assert isinstance(of_type(e.take_commands(), Respond)[0].error, MembershipError)
    # losing leadership mid-change: the outcome is unknown to the caller
    e.step(AppendEntriesResponse(term=e.term + 1, sender=2, success=False, match_index=0, hint_term=0, hint_index=0, seq=0))
    r = of_type(e.take_commands(), Respond)[0]
    assert r.request_id == "go" and isinstance(r.error, OutcomeUnknown)


def test_6_removed_leader_steps_down_after_c_new_commits():
    """thesis §4.2.2: the leader manages the cluster until C_new commits, without counting
    itself in C_new, then steps down."""
    c = Cluster(4, voters=[1, 2, 3], seed=11)
    c.elect(1)
    c.engines[1].change_membership("rm1", [2, 3, 4], retain=True)
    c.run_commands()
    c.stabilize()
    c.advance(0.05)
    assert answers(c, 1)["rm1"].error is None
    assert c.engines[1].role == Role.LEARNER and c.engines[1].leader_id == 0
    c.advance(1.0)
    leader = c.leader()
    assert leader is not None and leader.id in (2, 3, 4)
    assert 1 in leader.membership.membership.nodes  # retained as a learner
    c.propose(leader.id, [b"after"])
    c.advance(0.2)
    assert c.applied_payloads(1)[-1:] == [b"after"]


def test_6_new_leader_finishes_an_inherited_joint_change():
    """A leader elected while the log ends in a committed C_old,new appends C_new itself (as
    openraft does), so a change survives the loss of the leader that started it."""
    c = Cluster(3, seed=12)
    c.elect(1)
    c.engines[1].change_membership("chg", [2, 3])
    c.run_commands()
    # deliver only until the joint entry is committed on the followers, then lose leader 1
    for _ in range(50):
        if all(c.engines[i].committed_membership.membership.is_joint for i in (2, 3)):
            break
        c.deliver(limit=1)
    c.crash(1)
    c.advance(1.5)
    leader = c.leader()
    assert leader is not None and leader.id in (2, 3)
    assert leader.committed_membership.membership.configs == (frozenset({2, 3}),)


def test_forward_to_leader_on_follower_requests():
    c = Cluster(3, seed=2)
    c.elect(1)
    f = c.engines[2]
    f.add_learner("a", 4, node(4))
    f.change_membership("b", [1, 2])
    f.transfer_leader("c", 3)
    f.read_index("d")
    c.run_commands()
    for rid in "abcd":
        err = answers(c, 2)[rid].error
        assert isinstance(err, ForwardToLeader) and err.leader_id == 1
        assert err.leader_node == node(1)


def test_add_learner_updates_an_address_and_is_idempotent():
    c = Cluster(3, seed=4)
    c.elect(1)
    c.engines[1].add_learner("same", 3, node(3), blocking=False)
    c.run_commands()
    assert answers(c, 1)["same"].result == c.engines[1].membership.log_id
    c.engines[1].add_learner("move", 3, Node("127.0.0.1:9999"), blocking=False)
    c.run_commands()
    c.stabilize()
    assert answers(c, 1)["move"].error is None
    assert c.engines[2].membership.membership.nodes[3].addr == "127.0.0.1:9999"
    assert c.engines[3].role == Role.FOLLOWER  # still a voter


def test_progress_tracks_new_members_in_probe():
    e = engine(1, voters=(1, 2, 3))
    make_leader(e)
    e.step(AppendEntriesResponse(term=e.term, sender=2, success=True, match_index=2, hint_term=0, hint_index=0, seq=0))
    e.take_commands()
    e.add_learner("l", 4, node(4), blocking=False)
    assert e.progress.is_tracked(4) and e.progress.mode(4) == prog.PROBE
    assert e.progress.learner_ids() == [4]
    assert e.config == config()


def test_waiting_for_a_learner_blocks_no_other_change():
    """A blocking add_learner waits for its learner apart from the one-change-at-a-time rule:
    another change may go ahead; losing leadership answers it."""
    e = engine(1, voters=(1, 2, 3), cfg=config(replication_lag_threshold=1))
    make_leader(e)
    e.step(AppendEntriesResponse(term=e.term, sender=2, success=True, match_index=2, hint_term=0, hint_index=0, seq=0))
    e.take_commands()
    e.add_learner("slow", 4, node(4), blocking=True)
    e.add_learner("slow-again", 4, node(4), blocking=True)  # a member already: answered
    e.on_log_flushed(LogId(e.term, e.log.last_index))
    e.step(AppendEntriesResponse(term=e.term, sender=2, success=True, match_index=e.log.last_index, hint_term=0, hint_index=0, seq=0))
    rs = {r.request_id: r for r in of_type(e.take_commands(), Respond)}
    assert "slow" not in rs and isinstance(rs["slow-again"].error, MembershipError)
    e.add_learner("other", 5, node(5), blocking=True)
    e.on_log_flushed(LogId(e.term, e.log.last_index))
    e.step(AppendEntriesResponse(term=e.term, sender=2, success=True, match_index=e.log.last_index, hint_term=0, hint_index=0, seq=0))
    assert of_type(e.take_commands(), Respond) == []  # both wait, neither blocks the change
    e.change_membership("drop4", [1, 2, 3], retain=False)  # same voters: answered at once
    assert of_type(e.take_commands(), Respond)[0].error is None
    e.step(AppendEntriesResponse(term=e.term + 1, sender=2, success=False, match_index=0, hint_term=0, hint_index=0, seq=0))
    rs = of_type(e.take_commands(), Respond)
    assert sorted(r.request_id for r in rs) == ["other", "slow"]
    assert all(isinstance(r.error, OutcomeUnknown) for r in rs)


def test_remove_learners():
    e = engine(1, voters=(1, 2, 3), learners=(4,), cfg=config(replication_lag_threshold=1))
    make_leader(e)
    e.step(AppendEntriesResponse(term=e.term, sender=2, success=True, match_index=2, hint_term=0, hint_index=0, seq=0))
    e.take_commands()
    e.remove_learners("voter", [2])
    assert isinstance(of_type(e.take_commands(), Respond)[0].error, MembershipError)
    e.remove_learners("nobody", [9])
    assert of_type(e.take_commands(), Respond)[0].error is None
    e.add_learner("wait5", 5, node(5), blocking=True)
    e.on_log_flushed(LogId(e.term, e.log.last_index))
    e.step(AppendEntriesResponse(term=e.term, sender=2, success=True, match_index=e.log.last_index, hint_term=0, hint_index=0, seq=0))
    assert of_type(e.take_commands(), Respond) == []
    e.remove_learners("rm", [4, 5])
    rs = {r.request_id: r for r in of_type(e.take_commands(), Respond)}
    assert isinstance(rs["wait5"].error, MembershipError)  # its learner is gone
    assert sorted(e.membership.membership.nodes) == [1, 2, 3]
    e.on_log_flushed(LogId(e.term, e.log.last_index))
    e.step(AppendEntriesResponse(term=e.term, sender=2, success=True, match_index=e.log.last_index, hint_term=0, hint_index=0, seq=0))
    (r,) = of_type(e.take_commands(), Respond)
    assert r.request_id == "rm" and r.result == e.membership.log_id
    try:
        e.remove_learners("bad", ["x"])
    except ValueError:
        pass
    else:
        raise AssertionError("node ids must be ints")


def test_4_1_a_voter_that_missed_its_promotion_still_votes_for_the_only_electable_log():
    """Seed 404505 of the simulator, scripted. Node 4 misses the configurations that make node
    2 a voter and C_old,new = {1,2,3}/{2,4} (Raft §6). The leader crashes once only node 2
    holds the joint entry. Every leader now needs node 2 (C_new) and node 4 (C_new); node 2
    refuses node 3, whose log is behind (§5.4.1), so node 2 must win, with node 4's vote,
    though node 4 still sees node 2 as a learner. Thesis §4.1: a server grants its vote to a
    candidate outside its latest configuration. Dropping it kept the cluster leaderless for
    good."""
    c = Cluster(4, voters=[1, 3], seed=5)
    c.elect(1)
    c.cut |= {(1, 4), (4, 1)}  # node 4 lags from here on
    c.engines[1].change_membership("voter-2", [1, 2, 3])
    c.run_commands()
    c.advance(0.5)
    assert c.engine(1).membership.membership.configs == (frozenset({1, 2, 3}),)
    assert not c.engine(4).membership.membership.is_voter(2)
    c.cut |= {(1, 3)}  # the joint entry reaches node 2 only
    c.engines[1].change_membership("joint", [2, 4])
    c.run_commands()
    c.stabilize()
    joint = c.engine(1).membership.log_id.index
    assert c.engine(2).membership.log_id.index == joint
    assert c.engine(3).log.last_index < joint and c.engine(4).log.last_index < joint
    c.crash(1)
    c.heal()
    c.advance(3.0)
    leader = c.leader()
    assert leader is not None and leader.id == 2
    assert c.engine(4).membership.membership.is_voter(4)
