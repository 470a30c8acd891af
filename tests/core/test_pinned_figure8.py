"""Raft §5.4.2, Figure 8, the whole sequence (a)-(e) on five engines: a leader never commits an
entry of an earlier term by counting replicas; only once an entry of its own term is on a
majority are the earlier ones committed with it.

Indexes here are one above the paper's: entry 1 is the initial membership, and each new
leader appends a blank entry of its term (Raft §8), which plays the part of the paper's
"entry of the current term". ``max_payload_entries=1`` lets the test choose which entries reach
whom.
"""

import dataclasses

from fastraft import accel
from fastraft.messages import AppendEntriesRequest

from .cluster import Cluster, fast_config

codec = accel.codec


def settle(c, withhold=None, rounds=400):
    """Deliver until nothing is in flight; ``withhold(frm, to, msg)`` may give the index from
    which an AppendEntries loses its entries (the follower gets the rest: to a leader it looks
    like a follower that does not have them yet)."""
    for _ in range(rounds):
        c.run_commands()
        if withhold is not None:
            c.net = [_withhold(m, withhold) for m in c.net]
        if not c.net:
            return
        c.deliver()
    raise AssertionError("messages did not settle")


def _withhold(m, withhold):
    frm, to, data = m
    msg = codec.decode_message(data)
    cut = withhold(frm, to, msg)
    if cut is None or type(msg) is not AppendEntriesRequest:
        return m
    kept = [e for e in msg.entries if e.index < cut]
    return frm, to, codec.encode_message(dataclasses.replace(msg, entries=kept))


def elect(c, i, withhold=None):
    """Node i campaigns (admin trigger) until it leads; None if it cannot."""
    for _ in range(5):
        c.engines[i].trigger_elect()
        settle(c, withhold)
        if c.engines[i].is_leader:
            return c.engines[i]
        c.advance(0.01)
    return None


def from_s1_below(index):
    """Node 1's AppendEntries carry no entry at ``index`` or above."""
    return lambda frm, to, msg: index if frm == 1 else None


def figure_8_c():
    """(a) S1 leads term T2 and replicates x (index 3) to S2 only; (b) S1 crashes, S5 is
    elected by S3, S4, S5 in T3 and appends its blank entry and y (indexes 3, 4) on itself
    alone; (c) S5 crashes, S1 restarts and is elected in T4 > T3 by S1, S2, S3, replicates x to
    S3, but its own blank entry (index 4) reaches no one."""
    c = Cluster(5, config=fast_config(max_payload_entries=1, check_quorum=False), seed=8)
    s1 = c.elect(1)
    t2 = s1.term
    c.advance(0.1)  # a heartbeat brings the commit index to the followers
    assert all(c.engines[i].committed == 2 for i in c.ids)  # S1's blank, everywhere
    for j in (3, 4, 5):
        c.cut |= {(1, j), (j, 1)}
    c.propose(1, [b"x"])
    settle(c)
    assert [c.engines[i].log.last_index for i in c.ids] == [3, 3, 2, 2, 2]  # (a)

    c.crash(1)
    c.heal()
    s5 = elect(c, 5, withhold=lambda frm, to, msg: 0 if frm == 5 else None)
    assert s5 is not None and s5.term > t2
    t3 = s5.term
    c.isolate(5)
    c.propose(5, [b"y"])
    settle(c)
    assert s5.log.term_at(3) == t3 and s5.log.last_index == 4  # (b): on S5 alone
    assert [c.engines[i].log.last_index for i in (2, 3, 4)] == [3, 2, 2]

    c.crash(5)
    c.heal()
    c.restart(1)
    c.cut |= {(1, 4), (4, 1)}
    s1 = elect(c, 1, withhold=from_s1_below(4))
    assert s1 is not None and s1.term > t3
    settle(c, withhold=from_s1_below(4))
    assert [c.engines[i].log.term_at(3) for i in (1, 2, 3)] == [t2, t2, t2]  # (c)
    assert s1.log.last_index == 4 and s1.log.term_at(4) == s1.term
    assert [c.engines[i].log.last_index for i in (2, 3)] == [3, 3]
    return c, t2, t3


def test_figure_8_c_old_term_entry_on_a_majority_is_not_committed():
    c, t2, _ = figure_8_c()
    s1 = c.engines[1]
    assert s1.progress.match_index(2) >= 3 and s1.progress.match_index(3) >= 3
    assert s1.committed < 3  # x (term T2) is on S1, S2, S3, yet not committed (§5.4.2)
    for _ in range(30):  # 0.3 s of heartbeats: still nothing commits while 4 is held back
        c.tick(0.01)
        settle(c, withhold=from_s1_below(4))
    assert all(c.engines[i].committed < 3 for i in c.ids if i not in c.down)
    assert all(b"x" not in c.applied_payloads(i) for i in c.ids)


def test_figure_8_d_the_uncommitted_entry_may_be_overwritten():
    """(d) S1 crashes, S5 restarts and is elected by S2, S3, S4 (its last term T3 beats their
    T2), and overwrites x with its own entries: safe, since x was never committed."""
    c, t2, t3 = figure_8_c()
    c.crash(1)
    c.restart(5)
    s5 = elect(c, 5)
    assert s5 is not None
    settle(c)
    c.advance(0.2)
    for i in (2, 3, 4, 5):
        assert c.engines[i].log.term_at(3) == t3, i  # x is gone everywhere it was
        assert b"x" not in c.applied_payloads(i) and b"y" in c.applied_payloads(i)


def test_figure_8_e_an_entry_of_the_leaders_term_on_a_majority_commits_the_older_ones():
    """(e) S1 replicates its own blank entry to S2 and S3 before crashing: that commits it,
    and x with it; S5 can no longer be elected (S2, S3 hold a later last term)."""
    c, t2, _ = figure_8_c()
    c.advance(0.5)  # index 4 now passes (resent once the leader sees its pipeline stalled)
    s1 = c.engines[1]
    assert s1.committed == 4
    assert all(b"x" in c.applied_payloads(i) for i in (1, 2, 3))
    c.crash(1)
    c.restart(5)
    assert elect(c, 5) is None
    assert all(c.engines[i].log.term_at(3) == t2 for i in (2, 3))
