"""Raft §5.3 (log replication), with the flow control of thesis §10.2 (batching, pipelining)."""

from fastraft.core import AppendLog, ApplyEntries, Engine, ReadLog, Role, TruncateLog
from fastraft.core.replication import _MESSAGE_OVERHEAD_BYTES
from fastraft.core._prims import progress as prog
from fastraft.messages import AppendEntriesRequest, AppendEntriesResponse
from fastraft.types import LogId

from .cluster import Cluster, fast_config
from .helpers import (Entry, append, complete_writes, config, engine, make_leader,
                      membership, of_type, sent)


def test_5_3_leader_appends_and_replicates_a_proposal():
    """§5.3: "The leader appends the command to its log as a new entry, then issues
    AppendEntries RPCs in parallel to each of the other servers"; the batch is one append."""
    e = engine(1)
    make_leader(e)
    for p in (2, 3):
        e.step(AppendEntriesResponse(term=2, sender=p, success=True, match_index=2, hint_term=0, hint_index=0, seq=0))
    e.take_commands()
    lid = e.propose([b"x", b"y"])
    assert lid == LogId(2, 3)
    cmds = e.take_commands()
    assert of_type(cmds, AppendLog) == [AppendLog([Entry(2, 3, 1, b"x"), Entry(2, 4, 1, b"y")],
                                                  LogId(2, 4))]
    msgs = sent(cmds, AppendEntriesRequest)
    assert sorted((m.prev_log_index, [x.index for x in m.entries]) for m in msgs) == \
        [(2, [3, 4])] * 2


def test_5_3_commit_once_a_majority_holds_the_entry():
    """§5.3: "A log entry is committed once the leader that created the entry has replicated
    it on a majority of the servers"; the leader counts itself only once durable (thesis
    §10.2.1)."""
    e = engine(1)
    make_leader(e)  # the blank entry 2 is durable on the leader
    assert e.committed == 0
    e.propose([b"x"])
    e.take_commands()  # entry 3 is not reported durable on the leader yet
    e.step(AppendEntriesResponse(term=2, sender=2, success=True, match_index=3, hint_term=0, hint_index=0, seq=0))
    assert e.committed == 2  # 3 is held by follower 2 only; 2 by the leader too
    e.on_log_flushed(LogId(2, 3))
    assert e.committed == 3


def test_5_3_leader_counts_itself_only_after_its_flush():
    e = engine(1)
    e.trigger_elect()
    cmds = complete_writes(e, e.take_commands())
    from fastraft.messages import VoteResponse
    e.step(VoteResponse(term=2, sender=2, granted=True, pre_vote=True))  # pre-vote
    complete_writes(e, e.take_commands())
    e.step(VoteResponse(term=2, sender=2, granted=True))
    cmds = e.take_commands()  # becomes leader; the blank entry's append is not reported
    assert e.is_leader and of_type(cmds, AppendLog)
    e.step(AppendEntriesResponse(term=2, sender=2, success=True, match_index=2, hint_term=0, hint_index=0, seq=0))
    assert e.committed == 0  # only one of three holds index 2 durably
    e.on_log_flushed(LogId(2, 2))
    assert e.committed == 2
    applied = of_type(e.take_commands(), ApplyEntries)
    assert [(a.lo, a.hi) for a in applied] == [(1, 3)]


def test_5_3_follower_appends_and_acknowledges_only_when_durable():
    """§5.3 receiver steps, and Figure 2: the reply leaves after the entries are durable."""
    e = engine(2)
    e.step(append(2, 1, 1, 1, 0, [Entry(2, 2, 0, b""), Entry(2, 3, 1, b"a")], seq=4))
    cmds = e.take_commands()
    assert of_type(cmds, AppendLog) == [AppendLog([Entry(2, 2, 0, b""), Entry(2, 3, 1, b"a")],
                                                  LogId(2, 3))]
    assert sent(cmds, AppendEntriesResponse) == []
    e.on_vote_saved(e.vote)
    assert sent(e.take_commands(), AppendEntriesResponse) == []
    e.on_log_flushed(LogId(2, 3))
    assert sent(e.take_commands(), AppendEntriesResponse) == [
        AppendEntriesResponse(term=2, sender=2, success=True, match_index=3, hint_term=0, hint_index=0, seq=4)]


def test_5_3_follower_commits_up_to_leader_commit_and_its_last_new_entry():
    """Figure 2: "If leaderCommit > commitIndex, set commitIndex = min(leaderCommit, index of
    last new entry)"."""
    e = engine(2, terms=(1, 1, 1))
    e.step(append(2, 1, 1, 2, 9, []))
    complete_writes(e, e.take_commands())
    assert e.committed == 2
    e.step(append(2, 1, 1, 3, 9, [Entry(2, 4, 1, b"")]))
    cmds = complete_writes(e, e.take_commands())
    assert e.committed == 4
    # entry 4 is applied only once durable here: a state machine never runs ahead of its log
    assert [(a.lo, a.hi) for a in of_type(cmds, ApplyEntries)] == [(3, 4), (4, 5)]


def test_5_3_consistency_check_rejects_with_conflict_hints():
    """§5.3: "If the follower does not find an entry in its log with the same index and term,
    then it refuses the new entries"; the rejection carries the conflicting term and its first
    index (the optimisation at the end of §5.3)."""
    e = engine(2, terms=(1, 1, 2, 2, 2))
    e.step(append(4, 1, 3, 4, 0, []))  # term at 4 is 2, not 3
    (rej,) = sent(complete_writes(e, e.take_commands()), AppendEntriesResponse)
    assert (rej.success, rej.match_index, rej.hint_term, rej.hint_index) == (False, 4, 2, 3)
    e.step(append(4, 1, 4, 9, 0, []))  # beyond the log
    (rej,) = sent(complete_writes(e, e.take_commands()), AppendEntriesResponse)
    assert (rej.success, rej.match_index, rej.hint_term, rej.hint_index) == (False, 9, 0, 6)


def test_5_3_conflicting_suffix_is_truncated():
    """Figure 2: "If an existing entry conflicts with a new one (same index but different
    terms), delete the existing entry and all that follow it"."""
    e = engine(2, terms=(1, 1, 2, 2, 2))
    e.step(append(3, 1, 2, 3, 0, [Entry(3, 4, 1, b"new")]))
    cmds = e.take_commands()
    assert of_type(cmds, TruncateLog) == [TruncateLog(4)]
    assert of_type(cmds, AppendLog) == [AppendLog([Entry(3, 4, 1, b"new")], LogId(3, 4))]
    assert e.last_log_id == LogId(3, 4)
    assert cmds.index(of_type(cmds, TruncateLog)[0]) < cmds.index(of_type(cmds, AppendLog)[0])


def test_5_3_entries_already_present_are_not_rewritten():
    """A duplicate or reordered AppendEntries appends nothing and truncates nothing."""
    e = engine(2, terms=(1, 2, 2))
    e.step(append(2, 1, 1, 1, 0, [Entry(2, 2, 1, b""), Entry(2, 3, 1, b"")]))
    cmds = e.take_commands()
    assert of_type(cmds, AppendLog) == [] and of_type(cmds, TruncateLog) == []
    assert e.last_log_id == LogId(2, 3)


def test_5_3_committed_entries_are_never_truncated():
    """A message that would rewrite a committed entry is dropped (Raft §5.4 makes it
    impossible from a real leader)."""
    e = engine(2, terms=(1, 1, 2), committed=3)
    e.step(append(5, 1, 1, 2, 0, [Entry(5, 3, 1, b"rewrite")]))
    cmds = e.take_commands()
    assert of_type(cmds, TruncateLog) == [] and of_type(cmds, AppendLog) == []
    assert e.last_log_id == LogId(2, 3)


def test_5_3_malformed_batches_change_nothing():
    """Bad input from a peer: entries that do not follow prev, decreasing terms, a term above
    the leader's, a membership entry that does not decode. Nothing is stored."""
    e = engine(2, terms=(1, 1, 2))
    bad = [
        [Entry(3, 5, 1, b"")],  # gap
        [Entry(3, 4, 1, b""), Entry(2, 5, 1, b"")],  # decreasing
        [Entry(9, 4, 1, b"")],  # above the leader's term
        [Entry(3, 4, 2, b"not json")],  # membership that does not decode
    ]
    for ents in bad:
        e.step(append(3, 1, 2, 3, 0, ents))
        cmds = e.take_commands()
        assert of_type(cmds, AppendLog) == [] and of_type(cmds, TruncateLog) == []
        assert e.last_log_id == LogId(2, 3)


def test_5_3_leader_backtracks_a_term_at_a_time():
    """§5.3 optimisation: with (hint_term, hint_index) the leader skips every entry of the
    conflicting term, resuming after its own last entry of that term, or at hint_index if it
    has none."""
    e = engine(1, terms=(1, 1, 1, 4, 4, 5, 5, 6, 6, 6))
    make_leader(e)  # term 7, blank at 11
    e.step(AppendEntriesResponse(term=7, sender=2, success=False, match_index=10, hint_term=2, hint_index=2, seq=0))  # follower has term 2 from index 2
    # the leader has no entry of term 2: resume at the follower's first index of term 2 (the
    # entries come from storage: this engine started from it and caches nothing older)
    assert of_type(e.take_commands(), ReadLog) == [ReadLog(2, 2, 12)]
    e.step(AppendEntriesResponse(term=7, sender=3, success=False, match_index=10, hint_term=4, hint_index=4, seq=0))  # follower 3 has term 4 from 4
    # the leader's last entry of term 4 is 5: resume at 6
    assert of_type(e.take_commands(), ReadLog) == [ReadLog(3, 6, 12)]
    e.on_entries_read(3, 6, [Entry(t, i, 1, b"") for i, t in zip(range(6, 12), (5, 5, 6, 6, 6, 7))])
    (m,) = sent(e.take_commands(), AppendEntriesRequest, to=3)
    assert (m.prev_log_index, m.prev_log_term, len(m.entries)) == (5, 4, 6)


def test_5_3_figure_7_followers_converge():
    """§5.3 Figure 7: followers missing entries, with extra uncommitted entries, or both, all
    end with the leader's log."""
    c = Cluster(3, config=fast_config(pre_vote=False, check_quorum=False), seed=5)
    c.elect(1)
    c.propose(1, [b"a", b"b"])
    c.stabilize()
    c.isolate(3)
    c.propose(1, [b"c"])  # 3 misses these
    c.stabilize()
    c.isolate(1)
    c.propose(1, [b"lost-1", b"lost-2"])  # only the old leader has them
    c.heal()
    c.isolate(1)
    c.elect(2)
    c.propose(2, [b"d"])
    c.stabilize()
    c.heal()
    c.advance(0.5)
    logs = [[e.payload for e in c.stores[i].log.values()] for i in c.ids]
    assert logs[0] == logs[1] == logs[2]
    assert b"lost-1" not in logs[0]
    for i in c.ids:
        assert c.applied_payloads(i) == [b"a", b"b", b"c", b"d"]


def test_flow_control_batches_and_window():
    """thesis §10.2: at most max_payload_entries per message, at most max_inflight messages
    in flight to a follower; acknowledgements open the window."""
    e = engine(1, cfg=config(max_payload_entries=3, max_inflight=2))
    make_leader(e)
    e.step(AppendEntriesResponse(term=2, sender=2, success=True, match_index=2, hint_term=0, hint_index=0, seq=0))  # probe answered: pipeline
    e.take_commands()
    assert e.progress.mode(2) == prog.PIPELINE
    e.propose([b"p%d" % k for k in range(10)])  # entries 3..12
    msgs = sent(e.take_commands(), AppendEntriesRequest, to=2)
    assert [[x.index for x in m.entries] for m in msgs] == [[3, 4, 5], [6, 7, 8]]
    e.step(AppendEntriesResponse(term=2, sender=2, success=True, match_index=5, hint_term=0, hint_index=0, seq=0))
    msgs = sent(e.take_commands(), AppendEntriesRequest, to=2)
    assert [[x.index for x in m.entries] for m in msgs] == [[9, 10, 11]]


def test_flow_control_byte_limit():
    """max_message_bytes bounds the entries of one message; an entry larger than it goes
    alone."""
    budget = 1024 - _MESSAGE_OVERHEAD_BYTES
    e = engine(1, cfg=config(max_message_bytes=1024, max_payload_entries=100, max_inflight=8))
    make_leader(e)
    e.step(AppendEntriesResponse(term=2, sender=2, success=True, match_index=2, hint_term=0, hint_index=0, seq=0))
    e.take_commands()
    e.propose([b"x" * 300] * 5 + [b"y" * 5000] + [b"z"])
    msgs = sent(e.take_commands(), AppendEntriesRequest, to=2)
    sizes = [[len(x.payload) for x in m.entries] for m in msgs]
    assert sizes == [[300, 300], [300, 300], [300], [5000], [1]]
    assert all(sum(s + 21 for s in m) <= budget for m in sizes if len(m) > 1)


def test_probe_mode_after_rejection_sends_one_message():
    """After a rejection the leader probes: one message, then waits for the answer (or the
    next heartbeat)."""
    e = Engine(1, config(max_inflight=4), seed=3)
    e.initialize("init", membership().nodes)  # entry 1, cached
    complete_writes(e, e.take_commands())
    make_leader(e)  # term 2, blank entry 2: the first probe carries it
    e.propose([b"a"])
    e.propose([b"b"])
    assert sent(e.take_commands(), AppendEntriesRequest, to=2) == []  # probe unanswered
    e.step(AppendEntriesResponse(term=2, sender=2, success=False, match_index=1, hint_term=0, hint_index=1, seq=0))  # follower 2 has an empty log
    msgs = sent(e.take_commands(), AppendEntriesRequest, to=2)
    assert [(m.prev_log_index, [x.index for x in m.entries]) for m in msgs] == \
        [(0, [1, 2, 3, 4])]
    assert e.progress.mode(2) == prog.PROBE
    e.propose([b"c"])
    assert sent(e.take_commands(), AppendEntriesRequest, to=2) == []
    e.step(AppendEntriesResponse(term=2, sender=2, success=True, match_index=4, hint_term=0, hint_index=0, seq=0))
    assert e.progress.mode(2) == prog.PIPELINE and e.progress.match_index(2) == 4
    (m,) = sent(e.take_commands(), AppendEntriesRequest, to=2)
    assert (m.prev_log_index, [x.index for x in m.entries]) == (4, [5])


def test_uncached_entries_are_read_from_storage():
    """A follower behind the leader's cache is served through ReadLog."""
    e = engine(1, terms=(1,) * 30, cfg=config(max_cached_entries=4, max_payload_entries=8))
    make_leader(e)
    e.step(AppendEntriesResponse(term=2, sender=2, success=False, match_index=30, hint_term=0, hint_index=11, seq=0))  # follower ends at 10
    cmds = e.take_commands()
    assert of_type(cmds, ReadLog) == [ReadLog(2, 11, 19)]
    assert sent(cmds, AppendEntriesRequest, to=2) == []
    ents = [Entry(1, i, 1, b"e%d" % i) for i in range(11, 19)]
    e.on_entries_read(2, 11, ents)
    (m,) = sent(e.take_commands(), AppendEntriesRequest, to=2)
    assert (m.prev_log_index, m.prev_log_term, m.entries) == (10, 1, ents)
    e.on_entries_read(2, 11, ents)  # a duplicate completion is ignored
    assert e.take_commands() == []


def test_lagging_follower_catches_up_through_storage_reads():
    c = Cluster(3, config=fast_config(max_cached_entries=5, max_payload_entries=4), seed=2)
    c.elect(1)
    c.isolate(3)
    for k in range(10):
        c.propose(1, [b"v%d" % k, b"w%d" % k])
    c.stabilize()
    c.heal()
    c.advance(0.5)
    assert c.applied_payloads(3) == c.applied_payloads(1)
    assert len(c.applied_payloads(3)) == 20
    assert c.engines[3].role == Role.FOLLOWER
