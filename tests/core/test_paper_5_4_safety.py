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
