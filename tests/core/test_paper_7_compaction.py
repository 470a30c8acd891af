"""Raft §7 (log compaction): the snapshot policy, purging with a kept tail, and
InstallSnapshot in chunks, resumable, for a follower that needs purged entries."""

from fastraft.core import (ApplyEntries, BuildSnapshot, InstallSnapshot, PurgeLog, ReadLog,
                           ReadSnapshotChunk, Role, SaveSnapshotChunk, TruncateLog)
from fastraft.core._prims import progress as prog
from fastraft.messages import (AppendEntriesResponse,
                               InstallSnapshotRequest, InstallSnapshotResponse)
from fastraft.types import LogId, SnapshotMeta, StoredMembership

from .cluster import Cluster, fast_config
from .helpers import (Entry, append, complete_writes, config, engine, make_leader, membership,
                      of_type, sent)


def test_7_policy_builds_after_n_applied_and_purges_keeping_a_tail():
    """§7 with openraft's policy: a snapshot every N applied entries; the log is purged up to
    the snapshot minus max_in_snapshot_log_to_keep."""
    cfg = config(snapshot_policy_logs_since_last=10, max_in_snapshot_log_to_keep=3)
    e = engine(2, cfg=cfg)
    ents = [Entry(2, i, 1, b"%d" % i) for i in range(2, 12)]
    e.step(append(2, 1, 1, 1, 11, ents))
    cmds = complete_writes(e, e.take_commands())
    assert e.applied == 11
    assert of_type(cmds, BuildSnapshot) == [BuildSnapshot()]
    e.trigger_snapshot()  # one build at a time
    assert of_type(e.take_commands(), BuildSnapshot) == []
    meta = SnapshotMeta(LogId(2, 11), StoredMembership(LogId(1, 1), membership()), "s11")
    e.on_snapshot_built(meta)
    assert of_type(e.take_commands(), PurgeLog) == [PurgeLog(LogId(2, 8))]
    assert e.log.purged_index == 8 and e.snapshot == meta


def test_7_purge_batch_size_and_manual_purge():
    cfg = config(max_in_snapshot_log_to_keep=0, purge_batch_size=20)
    e = engine(2, cfg=cfg)
    e.step(append(2, 1, 1, 1, 11, [Entry(2, i, 1, b"") for i in range(2, 12)]))
    complete_writes(e, e.take_commands())
    e.trigger_snapshot()
    assert of_type(e.take_commands(), BuildSnapshot) == [BuildSnapshot()]
    meta = SnapshotMeta(LogId(2, 11), StoredMembership(LogId(1, 1), membership()), "s")
    e.on_snapshot_built(meta)
    assert of_type(e.take_commands(), PurgeLog) == []  # fewer than purge_batch_size
    e.trigger_purge(100)  # capped at the snapshot
    assert of_type(e.take_commands(), PurgeLog) == [PurgeLog(LogId(2, 11))]


def test_7_snapshot_ahead_of_applied_is_refused():
    e = engine(2)
    e.trigger_snapshot()
    e.take_commands()
    try:
        e.on_snapshot_built(SnapshotMeta(LogId(1, 5), StoredMembership(), "bad"))
    except ValueError as err:
        assert "ahead of applied" in str(err)
    else:
        raise AssertionError("a snapshot beyond applied must be refused")


def _leader_with_snapshot():
    """Leader 1 (term 2) whose log is purged up to 11 behind a snapshot of 30 bytes."""
    cfg = config(max_in_snapshot_log_to_keep=0, snapshot_max_chunk_bytes=12)
    e = engine(1, terms=(1,) + (2,) * 11, cfg=cfg, committed=12)
    e.applied = 0
    make_leader(e)
    e.step(AppendEntriesResponse(term=e.term, sender=3, success=True, match_index=13, hint_term=0, hint_index=0, seq=0))
    complete_writes(e, e.take_commands())
    e.trigger_snapshot()
    e.take_commands()
    meta = SnapshotMeta(LogId(2, 11), StoredMembership(LogId(1, 1), membership()), "snap-11")
    e.on_snapshot_built(meta)
    e.take_commands()
    assert e.log.purged_index == 11
    return e, meta


def test_7_leader_sends_snapshot_in_chunks_to_a_follower_behind_the_purge():
    """§7: "the leader must occasionally send snapshots to followers that lag behind ... the
    leader uses a new RPC called InstallSnapshot"; chunked by snapshot_max_chunk_bytes."""
    e, meta = _leader_with_snapshot()
    data = b"0123456789abcdefghijklmnopqrst"  # 30 bytes: chunks of 12, 12, 6
    e.step(AppendEntriesResponse(term=e.term, sender=2, success=False, match_index=12, hint_term=0, hint_index=5, seq=0))  # follower 2 ends at 4
    cmds = e.take_commands()
    assert of_type(cmds, ReadSnapshotChunk) == [ReadSnapshotChunk(2, "snap-11", 0, 12)]
    assert e.progress.mode(2) == prog.SNAPSHOT
    offsets = []
    offset = 0
    while True:
        chunk = data[offset:offset + 12]
        done = offset + len(chunk) == len(data)
        e.on_snapshot_chunk_read(2, "snap-11", offset, chunk, done)
        (req,) = sent(e.take_commands(), InstallSnapshotRequest)
        assert (req.snapshot_id, req.last_log_term, req.last_log_index, req.offset, req.data,
                req.done) == ("snap-11", 2, 11, offset, chunk, done)
        offsets.append(offset)
        offset += len(chunk)
        e.step(InstallSnapshotResponse(term=e.term, sender=2, snapshot_id="snap-11", next_offset=offset, done=done))
        if done:
            break
        assert of_type(e.take_commands(), ReadSnapshotChunk) == \
            [ReadSnapshotChunk(2, "snap-11", offset, 12)]
    assert offsets == [0, 12, 24]
    # entries follow from the snapshot on, probing first
    assert e.progress.mode(2) == prog.PROBE and e.progress.match_index(2) == 11
    assert of_type(e.take_commands(), ReadLog) == [ReadLog(2, 12, 14)]  # 12 is not cached


def test_7_snapshot_transfer_resumes_where_the_follower_is():
    """A lost chunk: the follower answers with the offset it expects; the leader resends from
    there (and after a silence of an election timeout, resends the chunk on its own)."""
    e, meta = _leader_with_snapshot()
    e.step(AppendEntriesResponse(term=e.term, sender=2, success=False, match_index=12, hint_term=0, hint_index=5, seq=0))
    e.take_commands()
    e.on_snapshot_chunk_read(2, "snap-11", 0, b"x" * 12, False)
    e.take_commands()
    e.step(InstallSnapshotResponse(term=e.term, sender=2, snapshot_id="snap-11", next_offset=12, done=False))
    assert of_type(e.take_commands(), ReadSnapshotChunk) == [ReadSnapshotChunk(2, "snap-11", 12, 12)]
    e.on_snapshot_chunk_read(2, "snap-11", 12, b"y" * 12, False)
    e.take_commands()  # this chunk is lost; the follower still expects 12
    e.tick(e.now + 0.2)
    assert ReadSnapshotChunk(2, "snap-11", 12, 12) in e.take_commands()


def test_7_follower_installs_and_answers_only_when_durable():
    f = engine(2, terms=(1, 1, 1))
    mem = membership()
    chunks = [(0, b"abc", False), (3, b"de", True)]
    for off, data, done in chunks:
        f.step(InstallSnapshotRequest(term=3, sender=1, snapshot_id="s", last_log_term=2, last_log_index=9, membership_term=1, membership_index=1, membership=mem.to_bytes(), offset=off, data=data, done=done))
    cmds = complete_writes(f, f.take_commands())
    assert of_type(cmds, SaveSnapshotChunk) == [SaveSnapshotChunk("s", 0, b"abc"),
                                                SaveSnapshotChunk("s", 3, b"de")]
    meta = SnapshotMeta(LogId(2, 9), StoredMembership(LogId(1, 1), mem), "s")
    assert of_type(cmds, InstallSnapshot) == [InstallSnapshot(meta)]
    replies = sent(cmds, InstallSnapshotResponse)
    assert [(r.next_offset, r.done) for r in replies] == [(3, False)]  # not done before install
    f.on_snapshot_installed(meta)
    cmds = f.take_commands()
    # the log (up to 3, term 1) does not continue the snapshot: it is discarded, by the purge
    # alone (all of it is at or below the snapshot; a truncation would cut committed entries)
    assert of_type(cmds, TruncateLog) == []
    assert of_type(cmds, PurgeLog) == [PurgeLog(LogId(2, 9))]
    assert [(r.next_offset, r.done) for r in sent(cmds, InstallSnapshotResponse)] == [(5, True)]
    assert (f.committed, f.applied, f.log.purged_index, f.last_log_id) == (9, 9, 9, LogId(2, 9))


def test_7_follower_discards_a_log_that_conflicts_with_the_snapshot_never_cutting_committed():
    """§7: a log that does not continue the snapshot is discarded: its uncommitted part by a
    truncation, its committed prefix by the purge (past the log's end then); TruncateLog never
    reaches down to a committed entry (commands.py), so a store that guards its committed
    prefix accepts it."""
    f = engine(2, terms=(1, 1, 1, 1, 1))
    f.step(append(1, 1, 1, 5, 2, []))  # a heartbeat: entries up to 2 are committed
    complete_writes(f, f.take_commands())
    assert f.committed == 2
    mem = membership()
    f.step(InstallSnapshotRequest(term=3, sender=1, snapshot_id="s", last_log_term=2, last_log_index=3, membership_term=1, membership_index=1, membership=mem.to_bytes(), offset=0, data=b"z", done=True))
    cmds = complete_writes(f, f.take_commands())
    f.on_snapshot_installed(of_type(cmds, InstallSnapshot)[0].meta)
    cmds = f.take_commands()
    assert of_type(cmds, TruncateLog) == [TruncateLog(3)]  # after the commit index only
    assert of_type(cmds, PurgeLog) == [PurgeLog(LogId(2, 3))]
    assert cmds.index(TruncateLog(3)) < cmds.index(PurgeLog(LogId(2, 3)))
    assert f.last_log_id == LogId(2, 3) and f.log.purged_index == 3 and f.committed == 3


def test_7_follower_keeps_the_log_that_continues_the_snapshot():
    """§7: "If the follower receives a snapshot that describes a prefix of its log, then log
    entries covered by the snapshot are deleted but entries following the snapshot are still
    valid and must be retained"."""
    f = engine(2, terms=(1, 2, 2, 2, 2))
    mem = membership()
    f.step(InstallSnapshotRequest(term=3, sender=1, snapshot_id="s", last_log_term=2, last_log_index=3, membership_term=1, membership_index=1, membership=mem.to_bytes(), offset=0, data=b"z", done=True))
    cmds = complete_writes(f, f.take_commands())
    meta = of_type(cmds, InstallSnapshot)[0].meta
    f.on_snapshot_installed(meta)
    cmds = f.take_commands()
    assert of_type(cmds, TruncateLog) == [] and of_type(cmds, PurgeLog) == [PurgeLog(LogId(2, 3))]
    assert f.last_log_id == LogId(2, 5) and f.log.purged_index == 3


def test_7_stale_or_out_of_order_chunks():
    f = engine(2, committed=1)
    mem = membership().to_bytes()
    f.step(InstallSnapshotRequest(term=3, sender=1, snapshot_id="s", last_log_term=2, last_log_index=9, membership_term=1, membership_index=1, membership=mem, offset=5, data=b"late", done=False))
    assert [(r.next_offset, r.done) for r in sent(complete_writes(f, f.take_commands()),
                                                   InstallSnapshotResponse)] == [(0, False)]
    f.step(InstallSnapshotRequest(term=3, sender=1, snapshot_id="s", last_log_term=2, last_log_index=9, membership_term=1, membership_index=1, membership=mem, offset=0, data=b"ab", done=False))
    f.step(InstallSnapshotRequest(term=3, sender=1, snapshot_id="s", last_log_term=2, last_log_index=9, membership_term=1, membership_index=1, membership=mem, offset=7, data=b"gap", done=False))
    replies = sent(complete_writes(f, f.take_commands()), InstallSnapshotResponse)
    assert [(r.next_offset, r.done) for r in replies] == [(2, False), (2, False)]
    f.step(InstallSnapshotRequest(term=3, sender=1, snapshot_id="s", last_log_term=2, last_log_index=9, membership_term=1, membership_index=1, membership=b"garbage", offset=2, data=b"c", done=True))
    assert of_type(f.take_commands(), InstallSnapshot) == []  # bad membership: dropped
    f.step(InstallSnapshotRequest(term=2, sender=1, snapshot_id="s", last_log_term=2, last_log_index=9, membership_term=1, membership_index=1, membership=mem, offset=0, data=b"x", done=True))  # stale term
    (r,) = sent(complete_writes(f, f.take_commands()), InstallSnapshotResponse)
    assert (r.term, r.done) == (3, False)
    f.step(InstallSnapshotRequest(term=3, sender=1, snapshot_id="old", last_log_term=1, last_log_index=1, membership_term=1, membership_index=1, membership=mem, offset=0, data=b"x", done=True))  # committed
    (r,) = sent(complete_writes(f, f.take_commands()), InstallSnapshotResponse)
    assert r.done and r.snapshot_id == "old"


def test_7_cluster_follower_catches_up_by_snapshot():
    """End to end: a follower down while the others compact gets the snapshot, then entries."""
    cfg = fast_config(snapshot_policy_logs_since_last=8, max_in_snapshot_log_to_keep=2,
                      snapshot_max_chunk_bytes=64)
    c = Cluster(3, config=cfg, seed=9)
    c.elect(1)
    c.crash(3)
    # the leader notices 3 is down (no answer for a check-quorum interval); until then it
    # keeps the entries 3 last needed rather than forcing a snapshot on a live follower
    c.advance(0.5)
    for k in range(12):
        c.propose(1, [b"k%02d" % k, b"v%02d" % k])
        c.stabilize()
    c.advance(0.1)
    assert c.engines[1].log.purged_index > 5
    c.restart(3)
    c.advance(0.6)
    assert c.stores[3].snapshot is not None
    assert c.applied_payloads(3) == c.applied_payloads(1)
    assert c.engines[3].role == Role.FOLLOWER
    c.propose(1, [b"after"])
    c.advance(0.2)
    assert c.applied_payloads(3)[-1] == b"after"


def test_7_no_apply_while_a_snapshot_is_installed():
    """Entries that become durable while a snapshot is being installed are not applied on top
    of it: the snapshot covers them, and applying resumes after it (found by the simulator)."""
    f = engine(2, terms=(1, 1))
    f.step(append(2, 1, 1, 2, 4, [Entry(2, 3, 1, b"a"), Entry(2, 4, 1, b"b")]))
    f.take_commands()  # committed up to 4, durable only up to 2
    assert (f.committed, f.applied) == (4, 2)
    mem = membership()
    f.step(InstallSnapshotRequest(term=2, sender=1, snapshot_id="s", last_log_term=2, last_log_index=5, membership_term=1, membership_index=1, membership=mem.to_bytes(), offset=0, data=b"z", done=True))
    (inst,) = of_type(f.take_commands(), InstallSnapshot)
    f.step(append(2, 1, 2, 4, 4, []))  # ignored while installing
    f.on_log_flushed(LogId(2, 4))
    f.on_vote_saved(f.vote)
    assert of_type(f.take_commands(), ApplyEntries) == []  # not [3, 5) over the snapshot
    f.on_snapshot_installed(inst.meta)
    cmds = f.take_commands()
    assert of_type(cmds, ApplyEntries) == [] and f.applied == 5
    assert of_type(cmds, PurgeLog) == [PurgeLog(LogId(2, 5))]
    f.step(append(2, 1, 2, 5, 6, [Entry(2, 6, 1, b"c")]))
    cmds = complete_writes(f, f.take_commands())
    assert [(a.lo, a.hi) for a in of_type(cmds, ApplyEntries)] == [(6, 7)]


def test_7_discarded_log_is_no_longer_durable():
    """When a snapshot replaces a log that does not continue it, the entries past the snapshot
    that were durable are gone: new entries there are acknowledged only once flushed."""
    f = engine(2, terms=(1, 1, 1, 1, 1, 1))  # durable up to 6, all of term 1
    mem = membership()
    f.step(InstallSnapshotRequest(term=3, sender=1, snapshot_id="s", last_log_term=2, last_log_index=4, membership_term=1, membership_index=1, membership=mem.to_bytes(), offset=0, data=b"z", done=True))
    (inst,) = of_type(complete_writes(f, f.take_commands()), InstallSnapshot)
    f.on_snapshot_installed(inst.meta)
    f.take_commands()
    assert f.flushed == 4 and f.last_log_id == LogId(2, 4)
    f.step(append(3, 1, 2, 4, 4, [Entry(3, 5, 1, b"new")]))
    cmds = f.take_commands()
    assert sent(cmds, AppendEntriesResponse) == []  # entry 5 is not durable yet
    f.on_log_flushed(LogId(3, 5))
    assert [m.match_index for m in sent(f.take_commands(), AppendEntriesResponse)] == [5]


def _leader_with_lagging_active_follower(**cfg_kw):
    """Leader 1 (term 2, log 1..12); follower 3 has everything, follower 2 answered recently
    but has matched only up to 5."""
    cfg = config(max_in_snapshot_log_to_keep=0, **cfg_kw)
    e = engine(1, terms=(1,) + (2,) * 11, cfg=cfg, committed=12)
    e.applied = 0
    make_leader(e)
    e.step(AppendEntriesResponse(term=e.term, sender=3, success=True, match_index=13, hint_term=0, hint_index=0, seq=0))
    e.step(AppendEntriesResponse(term=e.term, sender=2, success=True, match_index=5, hint_term=0, hint_index=0, seq=0))
    complete_writes(e, e.take_commands())
    assert e.progress.is_active(2) and e.progress.match_index(2) == 5
    e.trigger_snapshot()
    e.take_commands()
    e.on_snapshot_built(SnapshotMeta(LogId(2, 11), StoredMembership(LogId(1, 1), membership()),
                                     "snap-11"))
    return e, e.take_commands()


def test_7_leader_keeps_what_a_live_follower_still_needs():
    """§7: snapshots are for followers far behind. A follower the leader heard from recently
    that lags a little is sent entries: the policy purge stops at its match index."""
    e, cmds = _leader_with_lagging_active_follower()
    assert of_type(cmds, PurgeLog) == [PurgeLog(LogId(2, 5))]
    assert e.log.purged_index == 5


def test_7_a_follower_too_far_behind_holds_back_no_more_than_the_lag_threshold():
    """The log stays bounded: a follower more than replication_lag_threshold entries behind
    the snapshot holds the purge back only to that distance, then gets the snapshot."""
    e, cmds = _leader_with_lagging_active_follower(replication_lag_threshold=3)
    assert of_type(cmds, PurgeLog) == [PurgeLog(LogId(2, 8))]
