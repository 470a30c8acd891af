"""Corner cases of the engine's inputs: stale or odd completions, stale or bogus responses,
bounds, and the same run on both flavours of the primitives."""

import importlib

from fastraft.core import Engine, MembershipError, ReadLog, ReadReady, Respond, Role
from fastraft.core.outbox import _MAX_HELD
from fastraft.core.reads import _MAX_ROUND_TIMES
from fastraft.messages import (AppendEntriesRequest, AppendEntriesResponse,
                               InstallSnapshotRequest, InstallSnapshotResponse,
                               TimeoutNowRequest, VoteRequest, VoteResponse)
from fastraft.types import (EntryKind, LogId, Membership, Node, SnapshotMeta,
                            StoredMembership, Vote)

from .cluster import Cluster, fast_config
from .helpers import (Entry, append, complete_writes, config, engine, make_leader, membership,
                      of_type, sent)


def test_initialize_refusals():
    e = Engine(1, config())
    e.initialize("bad", {0: Node("x")})
    e.initialize("other", {2: Node("x")})
    rs = of_type(e.take_commands(), Respond)
    assert [type(r.error) for r in rs] == [MembershipError, MembershipError]
    assert "must be one of" in str(rs[1].error)
    assert engine(1).log.last_index == 1
    done = engine(1)
    done.initialize("again", {1: Node("x")})
    (r,) = of_type(done.take_commands(), Respond)
    assert isinstance(r.error, MembershipError) and "already" in str(r.error)


def test_initialize_again_after_a_crash_kept_only_its_vote():
    """initialize saves the vote (1, none) and appends the membership entry; a crash may keep
    the first and lose the second. Such a node has no log and no membership: it may be
    initialized again, and its saved vote does not go back (found by the simulator)."""
    from fastraft.core import InitialState, SaveVote
    e = Engine(1, config(), state=InitialState(vote=Vote(2, 0)))
    assert of_type(e.take_commands(), SaveVote) == []
    e.initialize("again", {1: Node("x")})
    cmds = e.take_commands()
    (r,) = of_type(cmds, Respond)
    assert r.error is None and r.result == LogId(1, 1)
    assert of_type(cmds, SaveVote) == [] and e.vote == Vote(2, 0)
    assert e.log.last_index == 1


def test_start_in_the_last_log_term_when_the_saved_vote_is_older():
    """Raft Figure 2: currentTerm is never below the last log term. A snapshot or entries of
    a newer term may reach disk before that term's vote does; the engine then starts in the
    last log term, voting for no one, and saves that vote (found by the simulator)."""
    from fastraft.core import SaveVote
    e = _engine_with_vote((1, 3, 4), Vote(3, 2))
    assert e.vote == Vote(4, 0)
    assert of_type(e.take_commands(), SaveVote) == [SaveVote(Vote(4, 0))]


def _engine_with_vote(terms, vote):
    from fastraft.core import InitialState
    runs = []
    for i, t in enumerate(terms, start=1):
        if runs and runs[-1][0] == t:
            runs[-1] = (t, i)
        else:
            runs.append((t, i))
    sm = StoredMembership(LogId(terms[0], 1), membership())
    return Engine(1, config(), 7, InitialState(vote=vote, log_runs=tuple(runs), membership=sm,
                                               prev_membership=sm))


def test_uninitialized_node_neither_campaigns_nor_tracks():
    e = Engine(3, config())
    assert e.role == Role.LEARNER and e.next_deadline() == float("inf")
    e.trigger_elect()
    assert e.role == Role.LEARNER and e.term == 0
    e._track_membership()  # no configuration yet: nothing to track
    assert e.progress.node_ids() == []


def test_every_held_acknowledgement_answers_its_own_request_and_is_bounded():
    # One response per request: a request/response network pairs answers with requests, and
    # a request left without its own answer would pair a later one with a request the
    # leader has already given up on (a lost acknowledgement, Raft §5.3 retries it late).
    f = engine(2)
    f.step(append(2, 1, 1, 1, 0, [Entry(2, 2, 1, b"a")], seq=1))
    f.step(append(2, 1, 2, 2, 0, [Entry(2, 3, 1, b"b")], seq=2))
    f.on_vote_saved(Vote(2, 0))
    f.on_log_flushed(LogId(2, 3))
    acks = sent(f.take_commands(), AppendEntriesResponse)
    assert [(a.match_index, a.seq) for a in acks] == [(2, 1), (3, 2)]
    g = engine(2)
    for k in range(_MAX_HELD + 5):  # vote replies waiting for a vote that is never saved
        g.step(VoteRequest(term=2, sender=3, last_log_term=1, last_log_index=1))
    assert len(g._held) == _MAX_HELD


def test_stale_completions_are_ignored():
    f = engine(2, terms=(1, 1))
    f.on_log_flushed(LogId(1, 9))  # beyond the log
    f.on_log_flushed(LogId(7, 2))  # another term at that index: a truncated write
    assert f.flushed == 2 and f.take_commands() == []
    e = engine(1, terms=(1,) * 10, cfg=config(max_cached_entries=2))
    make_leader(e)
    e.on_entries_read(2, 5, [])  # never asked
    assert e.take_commands() == []


def test_entries_read_are_checked_and_cut_to_the_message_budget():
    e = engine(1, terms=(1,) * 10, cfg=config(max_cached_entries=2, max_message_bytes=1024))
    make_leader(e)
    e.step(AppendEntriesResponse(term=e.term, sender=2, success=False, match_index=10, hint_term=0, hint_index=3, seq=0))
    assert of_type(e.take_commands(), ReadLog) == [ReadLog(2, 3, 12)]
    big = [Entry(1, i, 1, b"x" * 300) for i in range(3, 11)]
    e.on_entries_read(2, 3, big)
    (m,) = sent(e.take_commands(), AppendEntriesRequest, to=2)
    assert [x.index for x in m.entries] == [3, 4]  # 2 x (300 + 21) fit in 1024 - 256, not 3
    e.step(AppendEntriesResponse(term=e.term, sender=3, success=False, match_index=10, hint_term=0, hint_index=3, seq=0))
    assert of_type(e.take_commands(), ReadLog) == [ReadLog(3, 3, 12)]
    e.on_entries_read(3, 3, [Entry(9, 3, 1, b"")])  # not this log: read again
    assert of_type(e.take_commands(), ReadLog) == [ReadLog(3, 3, 12)]
    e.step(AppendEntriesResponse(term=e.term + 1, sender=2, success=False, match_index=0, hint_term=0, hint_index=0, seq=0))
    e.take_commands()
    e.on_entries_read(3, 3, big)  # no longer leader
    assert sent(e.take_commands()) == []


def test_bogus_and_stale_responses_are_ignored():
    e = engine(1)
    make_leader(e)
    e.step(AppendEntriesResponse(term=e.term, sender=2, success=True, match_index=99, hint_term=0, hint_index=0, seq=0))  # entries never sent
    e.step(AppendEntriesResponse(term=e.term, sender=9, success=True, match_index=2, hint_term=0, hint_index=0, seq=0))  # not a member
    e.step(AppendEntriesResponse(term=e.term - 1, sender=2, success=True, match_index=2, hint_term=0, hint_index=0, seq=0))  # older term
    e.step(AppendEntriesResponse(term=e.term, sender=2, success=True, match_index=0, hint_term=0, hint_index=0, seq=10 ** 6))  # a round never started
    assert e.progress.match_index(2) == 0 and e.committed == 0
    e.step(VoteResponse(term=e.term, sender=3, granted=True))  # the election is over
    e.step(InstallSnapshotResponse(term=e.term, sender=2, snapshot_id="none", next_offset=5, done=True))  # no transfer running
    assert e.is_leader and e.take_commands() == []
    e.step(InstallSnapshotResponse(term=e.term + 2, sender=2, snapshot_id="none", next_offset=0, done=False))
    assert e.role == Role.FOLLOWER and e.term == 4
    c = engine(1, cfg=config(pre_vote=False))
    c.trigger_elect()
    complete_writes(c, c.take_commands())
    c.step(VoteResponse(term=9, sender=2, granted=False))
    assert c.role == Role.FOLLOWER and c.term == 9
    p = engine(1)
    p.trigger_elect()
    p.take_commands()
    p.step(VoteResponse(term=5, sender=2, granted=True, pre_vote=True))  # an answer to some older pre-vote
    assert p.role == Role.PRE_CANDIDATE


def test_timeout_now_from_a_stale_leader_and_on_a_learner():
    f = engine(2, terms=(1, 3), vote=Vote(3, 0))
    f.step(TimeoutNowRequest(term=2, sender=1))
    assert sent(complete_writes(f, f.take_commands())) != [] and f.role == Role.FOLLOWER
    learner = engine(4, learners=(4,))
    learner.step(TimeoutNowRequest(term=1, sender=1))
    assert learner.role == Role.LEARNER and learner.term == 1


def test_snapshot_corner_cases():
    f = engine(2, terms=(1, 1, 1))
    mem = membership().to_bytes()
    f.step(InstallSnapshotRequest(term=2, sender=1, snapshot_id="s", last_log_term=0, last_log_index=5, membership_term=1, membership_index=1, membership=mem, offset=0, data=b"x", done=True))  # term 0
    f.step(InstallSnapshotRequest(term=2, sender=1, snapshot_id="s", last_log_term=3, last_log_index=5, membership_term=1, membership_index=1, membership=mem, offset=0, data=b"x", done=True))  # above 2
    assert [type(c).__name__ for c in f.take_commands()] == ["SaveVote", "StateChanged"]
    f.step(InstallSnapshotRequest(term=2, sender=1, snapshot_id="s", last_log_term=2, last_log_index=5, membership_term=1, membership_index=1, membership=mem, offset=0, data=b"x", done=True))
    f.take_commands()
    f.step(append(2, 1, 1, 3, 0, [Entry(2, 4, 1, b"")]))  # during the install: ignored
    f.step(InstallSnapshotRequest(term=2, sender=1, snapshot_id="s", last_log_term=2, last_log_index=5, membership_term=1, membership_index=1, membership=mem, offset=0, data=b"x", done=True))  # ignored too
    assert f.take_commands() == [] and f.last_log_id == LogId(1, 3)
    e = engine(1)
    e.trigger_snapshot()
    e.take_commands()
    e.on_snapshot_built(SnapshotMeta(None, StoredMembership(), "empty"))
    assert e.snapshot is None and not e._building_snapshot
    e.trigger_purge(5)  # no snapshot: nothing can be purged
    assert e.take_commands() == []


def test_snapshot_send_needs_a_snapshot_and_restarts_when_it_is_gone():
    e = engine(1, terms=(1,) * 6, cfg=config(max_in_snapshot_log_to_keep=0), committed=6)
    make_leader(e)
    e.step(AppendEntriesResponse(term=e.term, sender=3, success=True, match_index=7, hint_term=0, hint_index=0, seq=0))
    complete_writes(e, e.take_commands())
    e._start_snapshot_send(2)  # no snapshot built yet: nothing to send
    assert e.take_commands() == []
    meta = SnapshotMeta(LogId(1, 6), StoredMembership(LogId(1, 1), membership()), "s6")
    e.trigger_snapshot()
    e.on_snapshot_built(meta)
    e.take_commands()
    e.step(AppendEntriesResponse(term=e.term, sender=2, success=False, match_index=6, hint_term=0, hint_index=2, seq=0))
    e.take_commands()
    e.on_snapshot_chunk_read(2, "s6", 0, None, False)  # the snapshot was replaced
    assert e.progress.mode(2) == 0 and e.take_commands() == []
    e.on_snapshot_chunk_read(2, "s6", 0, b"late", True)  # nothing asked any more
    assert e.take_commands() == []
    e._start_snapshot_send(3)  # 3 already holds everything the snapshot covers
    assert e.progress.mode(3) != 2


def test_read_rounds_are_bounded_and_lease_uses_the_confirmed_round():
    e = engine(1, cfg=config(lease_read=True))
    make_leader(e)
    for _ in range(_MAX_ROUND_TIMES + 10):
        e.trigger_heartbeat()
    assert len(e._round_times) == _MAX_ROUND_TIMES
    e.take_commands()
    seq = e._seq
    e.step(AppendEntriesResponse(term=e.term, sender=2, success=True, match_index=0, hint_term=0, hint_index=0, seq=seq - 3))
    assert e.lease_valid
    e.read_index("r")
    assert of_type(e.take_commands(), ReadReady) == []  # waits for apply of the blank entry


def test_candidate_removed_from_the_membership_stops_campaigning():
    c = engine(3, cfg=config(pre_vote=False))
    c.trigger_elect()
    complete_writes(c, c.take_commands())
    assert c.role == Role.CANDIDATE
    m = Membership.uniform({i: Node(f"127.0.0.1:{i}") for i in (1, 2)})
    c.step(append(c.term, 1, 1, 1, 0, [Entry(c.term, 2, EntryKind.MEMBERSHIP, m.to_bytes())]))
    assert c.role != Role.CANDIDATE


def _flavours():
    out = {}
    for f in ("pure", "compiled"):
        try:
            li = importlib.import_module(f"fastraft.accel.{f}.log_index")
            pr = importlib.import_module(f"fastraft.accel.{f}.progress")
        except ImportError:
            continue
        out[f] = Engine.with_primitives(li, pr)
    return out


def test_both_flavours_of_primitives_run_the_same_protocol():
    """The same seeded run on the pure and the compiled primitives sends the same messages
    and applies the same entries (the twins have one behaviour)."""
    runs = {}
    for name, cls in _flavours().items():
        assert cls.__name__ == f"Engine[{name}]"
        c = Cluster(3, config=fast_config(max_cached_entries=8), seed=21, engine_class=cls)
        c.elect(1)
        for k in range(6):
            c.propose(1, [b"%d" % k] * 3)
            c.deliver(limit=3)
        c.isolate(3)
        c.propose(1, [b"x"] * 20)
        c.heal()
        c.advance(0.5)
        runs[name] = ([(f, t, m) for f, t, m in c.sent], [c.stores[i].applied for i in c.ids])
    values = list(runs.values())
    assert all(v == values[0] for v in values)
    assert len(values[0][1][2]) > 30


def test_only_the_latest_vote_save_reported():
    """The runtime may report only the latest of several saves: the vote for a candidate
    covers the term bump saved before it in the same term."""
    v = engine(2)
    v.step(VoteRequest(term=5, sender=3, last_log_term=0, last_log_index=0))  # stale log: rejected, but the term moves to 5
    v.step(VoteRequest(term=5, sender=1, last_log_term=1, last_log_index=1))  # granted in term 5
    cmds = v.take_commands()
    assert [c.vote for c in cmds if type(c).__name__ == "SaveVote"] == [Vote(5, 0), Vote(5, 1)]
    v.on_vote_saved(Vote(5, 1))
    assert sent(v.take_commands(), VoteResponse) == [VoteResponse(term=5, sender=2, granted=False),
                                                     VoteResponse(term=5, sender=2, granted=True)]
