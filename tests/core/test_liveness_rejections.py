"""The learner ping-pong the simulator found (seed 58810), in its two halves, scripted.

A follower answered a snapshot it already held in its log ("done": every entry the snapshot
covers is committed here) before those entries were durable; it crashed, came back with an
empty log, and rejected the leader's AppendEntries at the very index the leader counted as its
match. The leader answered every such rejection with a resend, each rejected again, and with
the network duplicating messages the exchange multiplied until it filled the run.

Raft §5.3 and Figure 2: a follower's acknowledgement promises durable entries; §7: a snapshot
answered "done" is an acknowledgement of everything it covers.
"""

from fastraft.core import AppendLog
from fastraft.messages import (AppendEntriesRequest, AppendEntriesResponse,
                               InstallSnapshotRequest, InstallSnapshotResponse)
from fastraft.types import LogId

from .helpers import Entry, ack, append, complete_writes, engine, make_leader, membership, sent


def _snapshot_request(term, leader, last_term, last_index, snapshot_id="s"):
    return InstallSnapshotRequest(
        term=term, sender=leader, snapshot_id=snapshot_id, last_log_term=last_term,
        last_log_index=last_index, membership_term=1, membership_index=1,
        membership=membership().to_bytes(), offset=0, data=b"state", done=True)


def test_snapshot_the_log_already_covers_is_answered_only_once_durable():
    """Seed 58810, the follower's half: entries 2..3 are committed but not yet flushed when a
    snapshot up to 3 arrives. "done" would let the leader count 3 as matched, so it waits for
    the flush; a crash before it loses the entries and the answer alike."""
    e = engine(3)
    e.step(append(2, 1, 1, 1, 1, []))
    complete_writes(e, e.take_commands())  # term 2's vote is durable
    e.step(append(2, 1, 1, 1, 3, [Entry(2, 2, 1, b"a"), Entry(2, 3, 1, b"b")]))
    cmds = e.take_commands()
    assert [c.last_log_id for c in cmds if isinstance(c, AppendLog)] == [LogId(2, 3)]
    assert e.committed == 3 and e.flushed == 1

    e.step(_snapshot_request(2, 1, 2, 3))
    assert sent(e.take_commands(), InstallSnapshotResponse) == []  # not durable yet

    e.on_log_flushed(LogId(2, 3))
    answers = sent(e.take_commands(), InstallSnapshotResponse, to=1)
    assert [(a.snapshot_id, a.done) for a in answers] == [("s", True)]


def _leader_probing_follower_3():
    """Leader 1 of term 2 with log 1..6; follower 3 acknowledged 4 and then rejected 5, so the
    leader probes it at 4 (PROBE, next 5)."""
    e = engine(1, terms=(1, 1, 1), committed=3)
    make_leader(e)  # term 2, blank entry 4
    ack(e, 2, 4)
    ack(e, 3, 4)
    e.propose([b"x"])
    e.propose([b"y"])
    complete_writes(e, e.take_commands())
    e.step(AppendEntriesResponse(term=e.term, sender=3, success=False, match_index=5,
                                 hint_term=0, hint_index=1))
    probes = sent(e.take_commands(), AppendEntriesRequest, to=3)
    assert [p.prev_log_index for p in probes] == [4]
    return e


def test_rejection_at_the_match_index_is_not_answered_with_a_resend():
    """Seed 58810, the leader's half: a follower that lost what it acknowledged rejects the
    probe at its match index, hinting an empty log. The leader cannot go below match, so a
    resend would repeat the same probe: one per rejection, every duplicate included. It waits
    for the heartbeat instead (at most one probe per interval)."""
    e = _leader_probing_follower_3()
    for _ in range(5):  # the rejection and its duplicates
        e.step(AppendEntriesResponse(term=e.term, sender=3, success=False, match_index=4,
                                     hint_term=0, hint_index=1))
        assert sent(e.take_commands(), AppendEntriesRequest, to=3) == []
    e.trigger_heartbeat()
    round_ = sent(e.take_commands(), AppendEntriesRequest, to=3)
    assert 1 <= len(round_) <= 2 and all(m.prev_log_index == 4 for m in round_)

