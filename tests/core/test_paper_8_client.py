"""Raft §8 (client interaction) and thesis §6.4 (read-only queries: ReadIndex, leases)."""

import pytest

from fastraft.core import Busy, ReadReady, Respond, Role
from fastraft.core.errors import LeaderTransferring
from fastraft.errors import ForwardToLeader
from fastraft.messages import AppendEntriesRequest, AppendEntriesResponse
from fastraft.types import LogId

from .cluster import Cluster, fast_config
from .helpers import complete_writes, config, engine, make_leader, of_type, sent


# -- §8: writes ----------------------------------------------------------------------------------

def test_8_followers_redirect_clients_to_the_leader():
    """§8: "If the client's first choice is not the leader, that server will reject the
    client's request and supply information about the most recent leader it has heard from"."""
    c = Cluster(3, seed=1)
    c.elect(2)
    with pytest.raises(ForwardToLeader) as info:
        c.engines[1].propose([b"x"])
    assert info.value.leader_id == 2 and info.value.leader_node.addr == "127.0.0.1:7002"
    assert c.engines[1].log.last_index == c.engines[2].log.last_index  # nothing appended
    e = engine(1)
    with pytest.raises(ForwardToLeader) as info:
        e.propose([b"x"])
    assert info.value.leader_id is None


def test_8_new_leader_commits_a_blank_entry_first():
    """§8: "Raft handles this by having each leader commit a blank no-op entry into the log at
    the start of its term"."""
    c = Cluster(3, seed=1)
    leader = c.elect(3)
    c.stabilize()
    blank = c.stores[3].log[leader.log.last_index]
    assert (blank.term, blank.kind, blank.payload) == (leader.term, 0, b"")
    assert all(c.engines[i].committed == blank.index for i in (3,))


def test_8_propose_returns_the_log_id_and_rejects_misuse():
    e = engine(1)
    make_leader(e)
    assert e.propose([b"a", b"b"]) == LogId(2, 3)
    assert e.propose([b"c"]) == LogId(2, 5)
    with pytest.raises(ValueError):
        e.propose([])
    with pytest.raises(ValueError):
        e.propose([b"m"], kind=2)
    with pytest.raises(TypeError):
        e.propose(["not bytes"])
    assert e.last_log_id == LogId(2, 5)


def test_8_lost_proposal_is_visible_by_term_at_its_index():
    """The engine answers a proposal with its log id; if a later leader overwrites it, the
    entry applied at that index has another term (the runtime then fails the request)."""
    c = Cluster(3, config=fast_config(check_quorum=False), seed=3)
    c.elect(1)
    c.isolate(1)
    lost = c.propose(1, [b"lost"])
    c.heal()
    c.isolate(1)
    c.elect(2)
    c.propose(2, [b"kept"])
    c.heal()
    c.advance(0.5)
    applied = {i: (t, p) for i, t, k, p in c.stores[1].applied}
    assert applied[lost.index][0] != lost.term
    assert b"lost" not in c.applied_payloads(1) and b"kept" in c.applied_payloads(1)


# -- thesis §6.4: ReadIndex ----------------------------------------------------------------------

def _leader_with_followers():
    e = engine(1)
    make_leader(e)
    for p in (2, 3):
        e.step(AppendEntriesResponse(term=e.term, sender=p, success=True, match_index=2, hint_term=0, hint_index=0, seq=0))
    complete_writes(e, e.take_commands())
    return e


def test_6_4_read_index_needs_a_heartbeat_round_acknowledged_by_a_quorum():
    """thesis §6.4: the leader records its commit index, sends a round of heartbeats, and
    once a majority acknowledged, serves the read when applied reaches the read index."""
    e = _leader_with_followers()
    assert e.committed == 2 and e.applied == 2
    e.read_index("r1")
    cmds = e.take_commands()
    beats = sent(cmds, AppendEntriesRequest)
    assert len(beats) == 2 and {b.seq for b in beats} == {beats[0].seq}
    seq = beats[0].seq
    assert of_type(cmds, ReadReady) == []
    e.step(AppendEntriesResponse(term=e.term, sender=2, success=True, match_index=2, hint_term=0, hint_index=0, seq=seq - 1))  # an older round
    assert of_type(e.take_commands(), ReadReady) == []
    e.step(AppendEntriesResponse(term=e.term, sender=2, success=True, match_index=2, hint_term=0, hint_index=0, seq=seq))
    assert of_type(e.take_commands(), ReadReady) == [ReadReady("r1", 2)]


def test_6_4_read_waits_for_the_leaders_first_commit_and_for_apply():
    """thesis §6.4 step 1: "If the leader has not yet marked an entry from its current term
    committed, it waits until it has done so"; then it waits for the state machine."""
    e = engine(1)
    make_leader(e)  # blank entry 2 not committed
    e.read_index("r")
    seq = sent(e.take_commands(), AppendEntriesRequest)[-1].seq
    e.step(AppendEntriesResponse(term=e.term, sender=2, success=True, match_index=1, hint_term=0, hint_index=0, seq=seq))  # confirms, but commit is 0
    assert of_type(e.take_commands(), ReadReady) == []
    e.step(AppendEntriesResponse(term=e.term, sender=2, success=True, match_index=2, hint_term=0, hint_index=0, seq=seq))
    cmds = e.take_commands()
    assert of_type(cmds, ReadReady) == [ReadReady("r", 2)]
    # the apply of the blank entry comes before the read in the command order
    kinds = [type(c).__name__ for c in cmds]
    assert kinds.index("ApplyEntries") < kinds.index("ReadReady")


def test_6_4_pending_reads_fail_when_leadership_is_lost():
    e = _leader_with_followers()
    e.read_index("r")
    e.take_commands()
    e.step(AppendEntriesResponse(term=e.term + 1, sender=2, success=False, match_index=0, hint_term=0, hint_index=0, seq=0))
    (r,) = of_type(e.take_commands(), Respond)
    assert r.request_id == "r" and isinstance(r.error, ForwardToLeader)


def test_6_4_reads_are_bounded():
    e = _leader_with_followers()
    e2 = engine(1, cfg=config(max_pending_reads=2))
    make_leader(e2)
    for k in range(3):
        e2.read_index(k)
    (r,) = of_type(e2.take_commands(), Respond)
    assert r.request_id == 2 and isinstance(r.error, Busy)
    assert e.role == Role.LEADER


def test_6_4_single_voter_confirms_at_once():
    c = Cluster(1, seed=1)
    c.elect(1)
    c.engines[1].read_index("solo")
    c.run_commands()
    assert c.reads[1] == [ReadReady("solo", c.engines[1].committed)]


def test_6_4_cluster_read_is_linearizable_after_a_write():
    c = Cluster(3, seed=2)
    c.elect(1)
    lid = c.propose(1, [b"w"])
    c.engines[1].read_index("after-write")
    c.run_commands()
    c.stabilize()
    c.advance(0.1)
    (ready,) = c.reads[1]
    assert ready.read_index >= lid.index - 1  # registered before the write committed
    c.engines[1].read_index("later")
    c.run_commands()
    c.stabilize()
    assert c.reads[1][-1].read_index >= lid.index


def test_6_4_1_lease_reads_skip_the_round_within_the_lease():
    """thesis §6.4.1: with check-quorum, a quorum's acknowledgement of a heartbeat round sent
    at t makes the leader's lease valid until t + election_timeout_min (less drift)."""
    e = engine(1, cfg=config(lease_read=True))
    make_leader(e)
    for p in (2, 3):
        e.step(AppendEntriesResponse(term=e.term, sender=p, success=True, match_index=2, hint_term=0, hint_index=0, seq=0))
    complete_writes(e, e.take_commands())
    e.trigger_heartbeat()
    seq = sent(e.take_commands(), AppendEntriesRequest)[-1].seq
    e.step(AppendEntriesResponse(term=e.term, sender=2, success=True, match_index=2, hint_term=0, hint_index=0, seq=seq))
    e.take_commands()
    assert e.lease_valid
    e.read_index("fast")
    cmds = e.take_commands()
    assert of_type(cmds, ReadReady) == [ReadReady("fast", 2)] and sent(cmds) == []
    e.tick(e.now + 0.136)  # past 150 ms * 0.9 from the round
    assert not e.lease_valid
    e.take_commands()
    e.read_index("slow")
    assert of_type(e.take_commands(), ReadReady) == []


def test_6_4_proposals_refused_during_transfer_are_not_appended():
    e = _leader_with_followers()
    e.transfer_leader("t", 2)
    e.take_commands()
    last = e.last_log_id
    with pytest.raises(LeaderTransferring) as info:
        e.propose([b"x"])
    assert info.value.target_id == 2 and e.last_log_id == last


def test_6_4_1_no_lease_while_a_transfer_is_pending():
    """Voters grant a transfer's campaign even inside the leader lease (thesis §3.10), so a
    pending transfer suspends lease reads."""
    e = engine(1, cfg=config(lease_read=True))
    make_leader(e)
    for p in (2, 3):
        e.step(AppendEntriesResponse(term=e.term, sender=p, success=True, match_index=2, hint_term=0, hint_index=0, seq=0))
    complete_writes(e, e.take_commands())
    e.trigger_heartbeat()
    seq = sent(e.take_commands(), AppendEntriesRequest)[-1].seq
    e.step(AppendEntriesResponse(term=e.term, sender=2, success=True, match_index=2, hint_term=0, hint_index=0, seq=seq))
    assert e.lease_valid
    e.transfer_leader("t", 3)
    e.take_commands()
    assert not e.lease_valid
    e.read_index("r")
    assert of_type(e.take_commands(), ReadReady) == []  # needs its round now
