"""The simulated disk keeps exactly what was made durable: un-synced writes die in a crash."""

import pytest

from fastraft import accel
from fastraft.sim.disk import ContractError, LogImage, SimDisk
from fastraft.types import EntryKind, LogId, Membership, Node, SnapshotMeta, StoredMembership, Vote

Entry = accel.entry.Entry


def ents(term, lo, hi):
    return [Entry(term, i, EntryKind.NORMAL, b"x%d" % i) for i in range(lo, hi)]


def snapshot(term, index):
    return SnapshotMeta(LogId(term, index), StoredMembership(), f"snap-{index}")


def test_crash_loses_unsynced_appends_and_vote():
    d = SimDisk(durable_sm=False)
    d.save_vote(Vote(1, 2))
    d.append(ents(1, 1, 4), LogId(1, 3))
    assert d.sync_upto(len(d.pending)) == (Vote(1, 2), LogId(1, 3))
    d.save_vote(Vote(2, 3))
    d.append(ents(2, 4, 6), LogId(2, 5))
    assert d.log.last_index == 5 and d.vote == Vote(2, 3)
    d.crash(keep_pending=0)
    assert d.vote == d.durable_vote == Vote(1, 2)
    assert d.log.last_index == 3 and d.log.last_log_id == LogId(1, 3)
    assert d.pending == []


def test_crash_may_keep_a_prefix_of_pending_writes_in_order():
    d = SimDisk(durable_sm=False)
    d.save_vote(Vote(2, 1))
    d.append(ents(2, 1, 3), LogId(2, 2))
    d.save_vote(Vote(3, 0))
    d.crash(keep_pending=2)
    assert d.durable_vote == Vote(2, 1)
    assert d.log.last_log_id == LogId(2, 2)


def test_sync_covers_only_the_writes_issued_before_it():
    d = SimDisk(durable_sm=False)
    d.append(ents(1, 1, 3), LogId(1, 2))
    n = len(d.pending)
    d.append(ents(1, 3, 5), LogId(1, 4))
    assert d.sync_upto(n) == (None, LogId(1, 2))
    assert d.durable_log.last_index == 2 and d.log.last_index == 4
    d.crash(keep_pending=0)
    assert d.log.last_index == 2


def test_truncate_and_append_replay_onto_the_durable_image():
    d = SimDisk(durable_sm=False)
    d.append(ents(1, 1, 6), LogId(1, 5))
    d.sync_upto(1)
    d.truncate(3)
    d.append(ents(2, 3, 4), LogId(2, 3))
    assert d.sync_upto(2) == (None, LogId(2, 3))
    assert [e.term for e in d.durable_log.entries] == [1, 1, 2]


def test_log_contract_errors_leave_the_image_unchanged():
    d = SimDisk(durable_sm=False)
    d.append(ents(1, 1, 3), LogId(1, 2))
    with pytest.raises(ContractError):
        d.append(ents(1, 4, 5), LogId(1, 4))  # a gap
    with pytest.raises(ContractError):
        d.append(ents(1, 3, 4), LogId(1, 9))  # last_log_id names another entry
    with pytest.raises(ContractError):
        d.purge(LogId(1, 1))  # no snapshot covers it
    assert d.log.last_index == 2 and len(d.pending) == 1


def test_purge_needs_a_covering_snapshot_and_may_empty_the_log():
    d = SimDisk(durable_sm=False)
    d.append(ents(1, 1, 4), LogId(1, 3))
    d.save_snapshot(snapshot(1, 2), b"{}")
    d.purge(LogId(1, 2))
    assert d.log.purged == LogId(1, 2) and d.log.last_index == 3
    d.save_snapshot(snapshot(1, 9), b"{}")
    d.purge(LogId(1, 9))
    assert d.log.entries == [] and d.log.last_log_id == LogId(1, 9)


def test_recover_keeps_a_log_that_continues_the_snapshot():
    d = SimDisk(durable_sm=False)
    d.append(ents(1, 1, 6), LogId(1, 5))
    d.sync_upto(1)
    d.save_snapshot(snapshot(1, 3), b"{}")  # installed; the purge never reached the disk
    log, meta = d.recover()
    assert meta.last_log_id == LogId(1, 3)
    assert log.purged == LogId(1, 3) and log.last_index == 5


def test_recover_discards_a_log_that_does_not_continue_the_snapshot():
    d = SimDisk(durable_sm=False)
    d.append(ents(1, 1, 6), LogId(1, 5))
    d.sync_upto(1)
    d.save_snapshot(snapshot(2, 4), b"{}")  # term 2 at index 4: the log has term 1 there
    log, _ = d.recover()
    assert log.purged == LogId(2, 4) and log.entries == []


def test_log_image_reads_prefixes_and_memberships():
    m = Membership.uniform({1: Node("127.0.0.1:7001")})
    img = LogImage(LogId(1, 2), [Entry(1, 3, EntryKind.MEMBERSHIP, m.to_bytes())] + ents(2, 4, 6))
    assert [e.index for e in img.read(4, 10)] == [4, 5]
    assert img.read(1, 4) == []  # purged
    assert img.term_runs() == ((1, 3), (2, 5))
    assert [sm.log_id for sm in img.memberships(after=0)] == [LogId(1, 3)]
    assert img.memberships(after=3) == []
