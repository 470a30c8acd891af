"""Scenario traces: inputs in, the exact commands out (format in trace.py). Each trace is one
node's view of a situation, read top to bottom like etcd-raft's testdata scripts."""

from fastraft.core import Engine

from .helpers import config, engine, make_leader
from .trace import play

NODE1 = "Node('127.0.0.1:7001')"
NODE2 = "Node('127.0.0.1:7002')"
MEMBERS = "members().to_bytes()"


def test_trace_single_node_bootstrap_election_and_write():
    """A new node initializes a one-voter cluster, elects itself (the pre-vote round is won
    at once), commits its blank entry once durable and applies a proposal once durable."""
    play(Engine(1, config(), seed=1), f"""
        > call e.initialize('init', {{1: {NODE1}}})
        save vote 1/-
        append [1/1:member] up to 1/1
        membership 1/1 {{1}} committed -
        respond init ok LogId(term=1, index=1)
        state follower term=1 leader=0
        > saved 1/-
        > flushed 1/1
        > tick 0.5
        save vote 2/1
        state candidate term=2 leader=0
        > saved 2/1
        append [2/2:blank] up to 2/2
        state leader term=2 leader=1
        > flushed 2/2
        membership 1/1 {{1}} committed 1/1
        apply [1, 3)
        > propose x
        append [2/3:x] up to 2/3
        > flushed 2/3
        apply [3, 4)
    """)


def test_trace_follower_acknowledges_only_durable_entries():
    """A follower appends, applies what is committed and durable, and answers only once the
    vote and the entries are durable; a new leader's conflicting entry truncates the suffix
    (and the acknowledgement for the old leader, never sent, is dropped); a probe beyond the
    log is rejected with the hint to resume at its end."""
    play(engine(2, terms=(1, 1, 2)), """
        > recv AppendEntriesRequest(term=3, sender=1, prev_log_term=2, prev_log_index=3, leader_commit=2, seq=7, entries=[E(3, 4, 1, b'a'), E(3, 5, 1, b'b')])
        save vote 3/-
        append [3/4:a 3/5:b] up to 3/5
        apply [1, 3) from storage
        state follower term=3 leader=1
        > saved 3/-
        > flushed 3/5
        send 1 AppendEntriesResponse(term=3, sender=2, success=True, match_index=5, hint_term=0, hint_index=0, seq=7)
        > recv AppendEntriesRequest(term=4, sender=3, prev_log_term=1, prev_log_index=2, leader_commit=2, seq=1, entries=[E(4, 3, 1, b'x')])
        save vote 4/-
        truncate from 3
        append [4/3:x] up to 4/3
        state follower term=4 leader=3
        > saved 4/-
        > flushed 4/3
        send 3 AppendEntriesResponse(term=4, sender=2, success=True, match_index=3, hint_term=0, hint_index=0, seq=1)
        > recv AppendEntriesRequest(term=4, sender=3, prev_log_term=4, prev_log_index=9, leader_commit=3, seq=2, entries=[])
        send 3 AppendEntriesResponse(term=4, sender=2, success=False, match_index=9, hint_term=0, hint_index=4, seq=2)
    """)


def test_trace_pre_vote_election_then_replication_and_read_index():
    """Pre-vote round (no term change, nothing saved), the real election (requests after the
    vote is durable), the blank entry probed to both followers, commit by a follower's ack
    plus the leader's flush, a proposal pipelined to the located follower only, and a
    ReadIndex round confirmed by one acknowledgement."""
    play(engine(1, cfg=config(pre_vote=True)), """
        > tick 0.3
        send 2 VoteRequest(term=2, sender=1, last_log_term=1, last_log_index=1, pre_vote=True, leader_transfer=False)
        send 3 VoteRequest(term=2, sender=1, last_log_term=1, last_log_index=1, pre_vote=True, leader_transfer=False)
        state pre_candidate term=1 leader=0
        > recv VoteResponse(term=2, sender=2, granted=True, pre_vote=True)
        save vote 2/1
        state candidate term=2 leader=0
        > saved 2/1
        send 2 VoteRequest(term=2, sender=1, last_log_term=1, last_log_index=1, pre_vote=False, leader_transfer=False)
        send 3 VoteRequest(term=2, sender=1, last_log_term=1, last_log_index=1, pre_vote=False, leader_transfer=False)
        > recv VoteResponse(term=2, sender=3, granted=True, pre_vote=False)
        append [2/2:blank] up to 2/2
        send 2 AppendEntriesRequest(term=2, sender=1, prev_log_term=1, prev_log_index=1, leader_commit=0, seq=0, entries=[2/2:blank])
        send 3 AppendEntriesRequest(term=2, sender=1, prev_log_term=1, prev_log_index=1, leader_commit=0, seq=0, entries=[2/2:blank])
        state leader term=2 leader=1
        > flushed 2/2
        > recv AppendEntriesResponse(term=2, sender=2, success=True, match_index=2, hint_term=0, hint_index=0, seq=0)
        apply [1, 3) from storage
        > propose a b
        append [2/3:a 2/4:b] up to 2/4
        send 2 AppendEntriesRequest(term=2, sender=1, prev_log_term=2, prev_log_index=2, leader_commit=2, seq=0, entries=[2/3:a 2/4:b])
        > read r1
        send 2 AppendEntriesRequest(term=2, sender=1, prev_log_term=2, prev_log_index=2, leader_commit=2, seq=1, entries=[])
        send 3 AppendEntriesRequest(term=2, sender=1, prev_log_term=0, prev_log_index=0, leader_commit=0, seq=1, entries=[])
        send 3 AppendEntriesRequest(term=2, sender=1, prev_log_term=1, prev_log_index=1, leader_commit=2, seq=1, entries=[2/2:blank 2/3:a 2/4:b])
        > recv AppendEntriesResponse(term=2, sender=3, success=True, match_index=0, hint_term=0, hint_index=0, seq=1)
        read ready r1 at 2
    """)


def test_trace_learner_then_joint_consensus_change():
    """add_learner on a one-node cluster; the learner is probed and backtracked to the start;
    change_membership appends C_old,new, then C_new once the joint entry has majorities of
    both configurations, and answers once C_new commits."""
    e = Engine(1, config(), seed=1)
    play(e, f"""
        > call e.initialize('init', {{1: {NODE1}}})
        save vote 1/-
        append [1/1:member] up to 1/1
        membership 1/1 {{1}} committed -
        respond init ok LogId(term=1, index=1)
        state follower term=1 leader=0
        > saved 1/-
        > flushed 1/1
        > tick 0.5
        save vote 2/1
        state candidate term=2 leader=0
        > saved 2/1
        append [2/2:blank] up to 2/2
        state leader term=2 leader=1
        > flushed 2/2
        membership 1/1 {{1}} committed 1/1
        apply [1, 3)
        > call e.add_learner('add', 2, {NODE2}, blocking=False)
        append [2/3:member] up to 2/3
        membership 2/3 {{1}} committed 1/1
        send 2 AppendEntriesRequest(term=2, sender=1, prev_log_term=2, prev_log_index=3, leader_commit=2, seq=0, entries=[])
        > flushed 2/3
        membership 2/3 {{1}} committed 2/3
        respond add ok LogId(term=2, index=3)
        apply [3, 4)
        > recv AppendEntriesResponse(term=2, sender=2, success=False, match_index=3, hint_term=0, hint_index=1, seq=0)
        send 2 AppendEntriesRequest(term=2, sender=1, prev_log_term=0, prev_log_index=0, leader_commit=3, seq=0, entries=[1/1:member 2/2:blank 2/3:member])
        > recv AppendEntriesResponse(term=2, sender=2, success=True, match_index=3, hint_term=0, hint_index=0, seq=0)
        > call e.change_membership('chg', [1, 2])
        append [2/4:member] up to 2/4
        membership 2/4 {{1}} {{1,2}} committed 2/3
        send 2 AppendEntriesRequest(term=2, sender=1, prev_log_term=2, prev_log_index=3, leader_commit=3, seq=0, entries=[2/4:member])
        > flushed 2/4
        > recv AppendEntriesResponse(term=2, sender=2, success=True, match_index=4, hint_term=0, hint_index=0, seq=0)
        membership 2/4 {{1}} {{1,2}} committed 2/4
        append [2/5:member] up to 2/5
        membership 2/5 {{1,2}} committed 2/4
        send 2 AppendEntriesRequest(term=2, sender=1, prev_log_term=2, prev_log_index=4, leader_commit=4, seq=0, entries=[2/5:member])
        apply [4, 5)
        > flushed 2/5
        > recv AppendEntriesResponse(term=2, sender=2, success=True, match_index=5, hint_term=0, hint_index=0, seq=0)
        membership 2/5 {{1,2}} committed 2/5
        respond chg ok LogId(term=2, index=5)
        apply [5, 6)
    """)


def test_trace_follower_installs_a_snapshot():
    """Chunks are stored as they come (the first reply waits for the new term to be durable);
    after the last one the snapshot is installed, and only once it is durable does the log
    make way and the leader hear that it is done."""
    play(engine(2, terms=(1, 1, 1)), f"""
        > recv InstallSnapshotRequest(term=2, sender=1, snapshot_id='snap', last_log_term=2, last_log_index=8, membership_term=1, membership_index=1, membership={MEMBERS}, offset=0, data=b'abc', done=False)
        save vote 2/-
        save chunk snap at 0: b'abc'
        state follower term=2 leader=1
        > saved 2/-
        send 1 InstallSnapshotResponse(term=2, sender=2, snapshot_id=snap, next_offset=3, done=False)
        > recv InstallSnapshotRequest(term=2, sender=1, snapshot_id='snap', last_log_term=2, last_log_index=8, membership_term=1, membership_index=1, membership={MEMBERS}, offset=3, data=b'def', done=True)
        save chunk snap at 3: b'def'
        install snapshot snap up to 2/8
        > call e.on_snapshot_installed(e._snap_recv.meta)
        purge up to 2/8
        membership 1/1 {{1,2,3}} committed 1/1
        send 1 InstallSnapshotResponse(term=2, sender=2, snapshot_id=snap, next_offset=6, done=True)
    """)


def test_trace_leader_transfer():
    """The leader waits until the target holds its whole log, sends TimeoutNow, and answers
    the transfer once the target's campaign shows a higher term; its vote reply leaves after
    the vote is durable."""
    e = engine(1)
    make_leader(e)
    play(e, """
        > recv AppendEntriesResponse(term=2, sender=3, success=True, match_index=2, hint_term=0, hint_index=0, seq=0)
        apply [1, 3) from storage
        > call e.transfer_leader('t', 2)
        > recv AppendEntriesResponse(term=2, sender=2, success=True, match_index=2, hint_term=0, hint_index=0, seq=0)
        send 2 TimeoutNowRequest(term=2, sender=1)
        > recv VoteRequest(term=3, sender=2, last_log_term=2, last_log_index=2, pre_vote=False, leader_transfer=True)
        save vote 3/-
        respond t ok None
        save vote 3/2
        state follower term=3 leader=0
        > saved 3/2
        send 2 VoteResponse(term=3, sender=1, granted=True, pre_vote=False)
    """)


def test_trace_requests_with_reply_tokens_are_answered_each_by_its_own_token():
    """Requests stepped with a reply token are answered by commands carrying that token, in
    the order their answers become possible, not the order they came in: an acknowledgement
    of entries waits for their flush (Raft §5.3) while a later heartbeat and a rejected probe
    are answered at once. A request the engine will not answer (a heartbeat while a snapshot
    is installed) gets "no answer" with the reason at once; an answer still waiting for
    durable state when a newer term begins never leaves (it would claim entries a newer
    leader may overwrite) and its request gets "no answer" instead."""
    play(engine(2, terms=(1, 1, 1)), f"""
        > recv@a AppendEntriesRequest(term=2, sender=1, prev_log_term=1, prev_log_index=3, leader_commit=0, seq=1, entries=[E(2, 4, 1, b'x')])
        save vote 2/-
        append [2/4:x] up to 2/4
        state follower term=2 leader=1
        > saved 2/-
        > recv@b AppendEntriesRequest(term=2, sender=1, prev_log_term=1, prev_log_index=3, leader_commit=0, seq=2, entries=[])
        answer b to 1 AppendEntriesResponse(term=2, sender=2, success=True, match_index=3, hint_term=0, hint_index=0, seq=2)
        > recv@c AppendEntriesRequest(term=2, sender=1, prev_log_term=2, prev_log_index=9, leader_commit=0, seq=3, entries=[])
        answer c to 1 AppendEntriesResponse(term=2, sender=2, success=False, match_index=9, hint_term=0, hint_index=5, seq=3)
        > flushed 2/4
        answer a to 1 AppendEntriesResponse(term=2, sender=2, success=True, match_index=4, hint_term=0, hint_index=0, seq=1)
        > recv@d AppendEntriesRequest(term=2, sender=1, prev_log_term=2, prev_log_index=4, leader_commit=0, seq=4, entries=[E(2, 5, 1, b'y')])
        append [2/5:y] up to 2/5
        > recv@e VoteRequest(term=3, sender=3, last_log_term=2, last_log_index=5, pre_vote=False, leader_transfer=True)
        no answer d: its answer in term 2 was not yet durable when term 3 began
        save vote 3/-
        save vote 3/3
        state follower term=3 leader=0
        > saved 3/3
        answer e to 3 VoteResponse(term=3, sender=2, granted=True, pre_vote=False)
        > recv@f InstallSnapshotRequest(term=3, sender=3, snapshot_id='s', last_log_term=3, last_log_index=8, membership_term=1, membership_index=1, membership={MEMBERS}, offset=0, data=b'abc', done=True)
        save chunk s at 0: b'abc'
        install snapshot s up to 3/8
        state follower term=3 leader=3
        > recv@g AppendEntriesRequest(term=3, sender=3, prev_log_term=3, prev_log_index=8, leader_commit=0, seq=1, entries=[])
        no answer g: a snapshot is being installed
        > recv@h VoteRequest(term=3, sender=2, last_log_term=0, last_log_index=0, pre_vote=False, leader_transfer=False)
        no answer h: sender 2 is not a peer of node 2
        > call e.on_snapshot_installed(e._snap_recv.meta)
        purge up to 3/8
        membership 1/1 {{1,2,3}} committed 1/1
        answer f to 3 InstallSnapshotResponse(term=3, sender=2, snapshot_id=s, next_offset=3, done=True)
    """)
