"""Raft §5.4 (safety): the election restriction (§5.4.1), committing entries from previous
terms (§5.4.2, Figure 8), and the properties the invariant checker asserts (§5.4.3)."""

import pytest

from fastraft.core import Role, TruncateLog
from fastraft.messages import AppendEntriesResponse, VoteRequest, VoteResponse
from fastraft.types import LogId, Vote

from .cluster import Cluster, fast_config
from .helpers import Entry, append, complete_writes, config, engine, make_leader, sent

PLAIN = dict(pre_vote=False, check_quorum=False)


@pytest.mark.parametrize("cand_term,cand_index,granted", [
    (2, 3, True),   # same last log id
    (2, 4, True),   # same term, longer
    (3, 1, True),   # higher last term wins whatever the length
    (2, 2, False),  # same term, shorter
    (1, 9, False),  # lower last term loses whatever the length
])
def test_5_4_1_vote_only_for_an_up_to_date_log(cand_term, cand_index, granted):
    """§5.4.1: "If the logs have last entries with different terms, then the log with the later
    term is more up-to-date. If the logs end with the same term, then whichever log is longer
    is more up-to-date"."""
    e = engine(1, terms=(1, 2, 2), vote=Vote(2, 0), cfg=config(**PLAIN))
    e.step(VoteRequest(term=5, sender=2, last_log_term=cand_term, last_log_index=cand_index))
    (reply,) = sent(complete_writes(e, e.take_commands()), VoteResponse)
    assert reply == VoteResponse(term=5, sender=1, granted=granted)
    assert e.term == 5 and e.vote == Vote(5, 2 if granted else 0)


def test_5_4_2_no_commit_of_previous_term_entries_by_counting():
    """§5.4.2: "Raft never commits log entries from previous terms by counting replicas. Only
    log entries from the leader's current term are committed by counting replicas"."""
    e = engine(1, terms=(1, 2), vote=Vote(3, 0), cfg=config(**PLAIN))  # entry 2 of term 2
    make_leader(e)  # term 4; blank entry 3
    # a majority holds index 2 (term 2) but not the blank entry: nothing commits
    e.step(AppendEntriesResponse(term=4, sender=2, success=True, match_index=2, hint_term=0, hint_index=0, seq=0))
    assert e.committed == 0
    # once the entry of term 4 is on a majority, it and everything before it commit
    e.step(AppendEntriesResponse(term=4, sender=2, success=True, match_index=3, hint_term=0, hint_index=0, seq=0))
    assert e.committed == 3


def test_5_4_2_figure_8_old_term_entry_on_a_majority_can_still_be_overwritten():
    """Figure 8 (d): an entry of an old term stored on a majority is not committed, and a
    follower holding it gives it up when a leader of a later term with a different entry there
    replicates to it."""
    f = engine(3, terms=(1, 2), vote=Vote(4, 1), voters=(1, 2, 3, 4, 5),
               cfg=config(**PLAIN))  # holds (2, 2); Figure 8 has five servers
    f.step(append(5, 5, 1, 1, 0, [Entry(3, 2, 1, b"s5"), Entry(5, 3, 0, b"")]))
    cmds = f.take_commands()
    assert TruncateLog(2) in cmds
    assert f.log.term_at(2) == 3 and f.last_log_id == LogId(5, 3)


def test_5_4_3_checker_runs_after_every_step():
    """§5.4.3 (Figure 3's properties) hold after every step of a run with failures: the
    cluster's checker ran on each of them."""
    c = Cluster(3, config=fast_config(), seed=4)
    c.elect(1)
    for k in range(5):
        c.propose(1, [b"%d" % k])
        c.deliver(limit=2)
    c.crash(2)
    c.advance(0.3)
    c.restart(2)
    c.advance(0.5)
    assert c.checker.checks > 50
    assert len(set(c.checker.leaders)) >= 1


def test_leader_with_stale_term_is_deposed_by_responses():
    """§5.1/§5.3: a leader learning a higher term from any response steps down."""
    e = engine(1, cfg=config(**PLAIN))
    make_leader(e)
    e.step(AppendEntriesResponse(term=9, sender=2, success=False, match_index=2, hint_term=0, hint_index=0, seq=0))
    assert e.role == Role.FOLLOWER and e.term == 9 and e.leader_id == 0


def test_commit_survives_restart_from_storage():
    """Committed entries are durable on a majority: after every node restarts they commit
    again and the same entries are applied."""
    c = Cluster(3, seed=6)
    c.elect(1)
    c.propose(1, [b"a", b"b", b"c"])
    c.advance(0.2)
    before = [c.applied_payloads(i) for i in c.ids]
    for i in c.ids:
        c.crash(i)
    for i in c.ids:
        c.restart(i)
    c.advance(1.5)
    assert c.leader() is not None
    c.propose(c.leader().id, [b"d"])
    c.advance(0.3)
    for i in c.ids:
        assert c.applied_payloads(i) == before[0] + [b"d"]
    assert c.engines[1].last_log_id > LogId(2, 5)


def test_5_3_stale_leader_may_truncate_an_entry_committed_in_a_later_term():
    """Seed 405969 of the simulator, scripted. Leader Completeness (§5.4.1) holds for leaders
    of the committing term and later ones only: a leader of an older term can still reach a
    node that missed the newer term, and that node's log then follows it (§5.3: "If an
    existing entry conflicts with a new one ... delete the existing entry and all that follow
    it"), committed entry and all. It does not know that entry is committed (its commit index
    is below it), applies nothing of the older leader's, and the newer leader repairs its log.
    The safety checker runs on every truncation and must accept this one; it once flagged any
    removal of a committed entry."""
    c = Cluster(n=4, voters=[1, 2, 3], config=fast_config(**PLAIN))
    c.elect(3)
    # entry x of term 2 reaches only node 3 and the learner 4, so it is not committed
    c.cut |= {(3, 1), (3, 2)}
    (x_index, x_term) = (c.propose(3, [b"x"]).index, c.engine(3).term)
    c.stabilize()
    assert c.stores[4].log[x_index].term == x_term and x_index not in c.stores[1].log
    # node 2 leads a newer term with node 1's vote (§5.4.1: node 1's log is no longer than
    # node 2's); its first AppendEntries to the learner stays in flight
    c.isolate(3)
    c.engine(2).trigger_elect()
    c.run_commands()
    held = []
    for _ in range(100):
        held += [m for m in c.net if m[1] == 4]
        c.net = [m for m in c.net if m[1] != 4]
        if c.engine(2).role == Role.LEADER or not c.net:
            break
        c.deliver(limit=1)
    assert c.engine(2).role == Role.LEADER
    c.crash(2)  # its entries reach no one else
    stale_term = c.engine(2).term
    stale = [m for m in held if m[0] == 2]
    assert stale
    # node 3 wins the next term with node 1 and commits x under its own new entry (§5.4.2)
    c.heal()
    c.cut |= {(3, 4), (4, 3), (2, 4)}
    c.crash(3)  # it steps down from term 2 (without check-quorum it would lead on)
    c.restart(3)
    for _ in range(3):  # node 1 voted in node 2's term: node 3 needs the one after
        if c.engine(3).role != Role.LEADER:
            c.engine(3).trigger_elect()
            c.run_commands()
            c.stabilize()
    assert c.engine(3).role == Role.LEADER and c.engine(3).term > stale_term
    assert c.engine(3).committed > x_index
    # the stale AppendEntries of node 2's term reaches the learner, still in term 2
    assert c.engine(4).term < stale_term and c.engine(4).committed < x_index
    c.cut.discard((2, 4))
    c.net = list(stale)
    truncations = []
    run = c._execute

    def record(i, cmd):
        if isinstance(cmd, TruncateLog):
            truncations.append((i, cmd.since))
        run(i, cmd)
    c._execute = record
    c.deliver()
    assert (4, x_index) in truncations and c.stores[4].log[x_index].term == stale_term
    assert c.engine(4).committed < x_index  # it never applies node 2's entry
    # the newer leader repairs the learner's log: everyone applies x
    c.heal()
    c.restart(2)
    c.advance(1.0)
    for i in (1, 2, 3, 4):
        assert c.stores[i].log[x_index].term == x_term
        assert b"x" in c.applied_payloads(i)
