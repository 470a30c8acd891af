"""Unit tests of the progress tracker: modes and window, quorums (uniform and joint), votes,
check-quorum and ReadIndex rounds. Run against every flavour present."""

import importlib
import itertools

import hypothesis.strategies as st
import pytest
from hypothesis import given

FLAVOURS = ["pure"]
try:
    importlib.import_module("fastraft.accel.compiled.progress")
    FLAVOURS.append("compiled")
except ImportError:
    pass


@pytest.fixture(params=FLAVOURS)
def m(request):
    return importlib.import_module(f"fastraft.accel.{request.param}.progress")


def tracker(m, voters=(1, 2, 3), joint=(), learners=(), next_index=11, max_inflight=3):
    p = m.ProgressTracker(max_inflight)
    p.set_membership(list(voters), list(joint), list(learners), next_index)
    return p


def test_membership_views(m):
    p = tracker(m, voters=(3, 1, 2), learners=(7,))
    assert p.node_ids() == [1, 2, 3, 7] and p.voter_ids() == [1, 2, 3] and p.learner_ids() == [7]
    assert p.is_voter(1) and not p.is_voter(7) and not p.is_voter(9)
    assert p.is_tracked(7) and not p.is_tracked(9) and not p.is_joint
    assert p.match_index(7) == 0 and p.next_index(7) == 11 and p.mode(7) == m.PROBE
    for bad in (([], [], [], 1), ([1], [], [1], 1), ([0], [], [], 1), ([1], [], [], 0)):
        with pytest.raises(ValueError):
            p.set_membership(*bad)
    assert p.node_ids() == [1, 2, 3, 7]
    with pytest.raises(ValueError):
        p.match_index(9)
    with pytest.raises(ValueError):
        m.ProgressTracker(0)


def test_set_membership_keeps_state_of_kept_members(m):
    p = tracker(m)
    p.on_ack(2, 10)
    p.on_sent(2, 14)
    p.on_sent(2, 16)
    p.set_membership([1, 2], [2, 4], [5], 20)
    assert p.is_joint and p.voter_ids() == [1, 2, 4] and p.learner_ids() == [5]
    assert (p.match_index(2), p.next_index(2), p.mode(2), p.inflight_count(2)) == (10, 17, m.PIPELINE, 2)
    assert (p.match_index(4), p.next_index(4), p.mode(4)) == (0, 20, m.PROBE)
    assert not p.is_tracked(3)
    p.on_ack(2, 14)
    assert p.inflight_count(2) == 1


def test_probe_sends_one_at_a_time(m):
    p = tracker(m)
    assert p.can_send(2)
    p.on_sent(2, 10)  # an empty probe: prev = next - 1
    assert not p.can_send(2) and p.next_index(2) == 11
    p.resume(2)
    assert p.can_send(2)
    p.on_sent(2, 12)
    assert not p.can_send(2) and p.next_index(2) == 11  # probe does not advance next
    with pytest.raises(ValueError):
        p.on_sent(2, 8)


def test_ack_switches_probe_to_pipeline(m):
    p = tracker(m)
    p.on_sent(2, 12)
    assert p.on_ack(2, 12) is True
    assert (p.mode(2), p.match_index(2), p.next_index(2), p.can_send(2)) == (m.PIPELINE, 12, 13, True)
    assert p.on_ack(2, 5) is False  # stale
    assert p.match_index(2) == 12


def test_pipeline_window(m):
    p = tracker(m)
    p.on_ack(2, 10)
    p.on_sent(2, 12)
    p.on_sent(2, 15)
    p.on_sent(2, 20)
    assert p.inflight_count(2) == 3 and not p.can_send(2) and p.next_index(2) == 21
    with pytest.raises(ValueError):
        p.on_sent(2, 25)
    assert p.on_ack(2, 13) is True
    assert p.inflight_count(2) == 2 and p.can_send(2)  # the message up to 12 is answered
    p.on_ack(2, 15)
    assert p.inflight_count(2) == 1
    p.on_sent(2, 22)
    p.on_sent(2, 30)
    with pytest.raises(ValueError):
        p.on_sent(2, 30)
    p.on_ack(2, 30)
    assert p.inflight_count(2) == 0 and p.next_index(2) == 31
    with pytest.raises(ValueError):
        p.on_sent(2, 30)  # a heartbeat is not recorded in the window


def test_reject_goes_back_to_probe(m):
    p = tracker(m, next_index=6)
    p.on_ack(2, 5)
    assert p.mode(2) == m.PIPELINE
    p.on_sent(2, 9)
    p.on_sent(2, 12)
    assert p.on_reject(2, 4, 1) is False  # at or below match: stale
    assert p.on_reject(2, 9, 7) is True
    assert (p.mode(2), p.next_index(2), p.inflight_count(2), p.can_send(2)) == (m.PROBE, 7, 0, True)
    p.on_sent(2, 9)
    assert p.on_reject(2, 9, 2) is False  # not the outstanding probe (prev was 6)
    assert p.on_reject(2, 6, 2) is True
    assert p.next_index(2) == 6  # never at or below match
    p.on_sent(2, 5)
    # at match: the follower rejects what it acknowledged (it lost it); next cannot move, so
    # the rejection is stale rather than a reason to send the same probe again (seed 58810)
    assert p.on_reject(2, 5, 9) is False and p.next_index(2) == 6
    assert (p.mode(2), p.can_send(2)) == (m.PROBE, False)  # the heartbeat resumes the probe


def test_snapshot_mode(m):
    p = tracker(m)
    p.on_sent(3, 10)
    with pytest.raises(ValueError):
        p.become_snapshot(3, 0)
    p.become_snapshot(3, 50)
    assert p.mode(3) == m.SNAPSHOT and p.pending_snapshot(3) == 50 and not p.can_send(3)
    with pytest.raises(ValueError):
        p.on_sent(3, 60)
    assert p.on_reject(3, 10, 1) is False
    p.resume(3)
    assert p.mode(3) == m.SNAPSHOT
    p.on_snapshot_done(3, 50)
    assert (p.mode(3), p.match_index(3), p.next_index(3), p.can_send(3)) == (m.PROBE, 50, 51, True)
    assert p.pending_snapshot(3) == 0
    p.become_snapshot(3, 60)
    assert p.on_ack(3, 55) is True and p.mode(3) == m.SNAPSHOT
    p.on_ack(3, 60)
    assert p.mode(3) == m.PIPELINE and p.next_index(3) == 61
    p.become_snapshot(3, 70)
    p.become_probe(3)
    assert (p.mode(3), p.next_index(3)) == (m.PROBE, 61)


def test_reset_starts_a_leadership(m):
    p = tracker(m)
    p.on_ack(2, 10)
    p.on_sent(2, 13)
    p.record_vote(2, True)
    p.mark_active(2)
    p.on_seq_ack(2, 4)
    p.reset(31)
    assert (p.match_index(2), p.next_index(2), p.mode(2), p.inflight_count(2)) == (0, 31, m.PROBE, 0)
    assert not p.is_active(2) and p.acked_seq(2) == 0 and p.vote_result() == m.VOTE_PENDING
    with pytest.raises(ValueError):
        p.reset(0)


def test_update_match_for_the_leader_itself(m):
    p = tracker(m)
    assert p.update_match(1, 12) is True and p.match_index(1) == 12 and p.next_index(1) == 13
    assert p.update_match(1, 12) is False and p.mode(1) == m.PROBE


def test_committed_index_uniform(m):
    p = tracker(m, voters=(1, 2, 3, 4, 5), learners=(6,))
    for i, v in zip((1, 2, 3, 4, 5, 6), (9, 7, 5, 3, 1, 100)):
        p.update_match(i, v)
    assert p.committed_index() == 5  # learners never count
    p.update_match(4, 6)
    assert p.committed_index() == 6


def test_committed_index_joint(m):
    p = tracker(m, voters=(1, 2, 3), joint=(3, 4, 5))
    for i, v in zip((1, 2, 3, 4, 5), (10, 9, 4, 2, 1)):
        p.update_match(i, v)
    assert p.committed_index() == 2  # old config could commit 9, the new one only 2
    p.update_match(5, 8)
    assert p.committed_index() == 4
    empty = m.ProgressTracker(1)
    assert empty.committed_index() == 0 and empty.vote_result() == m.VOTE_PENDING
    assert not empty.quorum_active() and empty.quorum_seq() == 0


def test_votes_uniform(m):
    p = tracker(m, voters=(1, 2, 3), learners=(4,))
    assert p.record_vote(1, True) and p.vote_result() == m.VOTE_PENDING
    assert p.record_vote(4, True) is False  # a learner's vote is not counted
    assert p.vote_result() == m.VOTE_PENDING
    p.record_vote(2, False)
    p.record_vote(2, True)  # the first answer counts
    assert p.vote_result() == m.VOTE_PENDING
    p.record_vote(3, False)
    assert p.vote_result() == m.VOTE_LOST
    p.reset_votes()
    p.record_vote(1, True)
    p.record_vote(3, True)
    assert p.vote_result() == m.VOTE_WON


def test_votes_joint(m):
    p = tracker(m, voters=(1, 2, 3), joint=(4, 5, 6))
    for i in (1, 2):
        p.record_vote(i, True)
    assert p.vote_result() == m.VOTE_PENDING
    p.record_vote(4, True)
    p.record_vote(5, True)
    assert p.vote_result() == m.VOTE_WON
    p.reset_votes()
    p.record_vote(1, True)
    p.record_vote(2, True)
    p.record_vote(5, False)
    p.record_vote(6, False)
    assert p.vote_result() == m.VOTE_LOST


def test_check_quorum(m):
    p = tracker(m, voters=(1, 2, 3, 4, 5), learners=(6,))
    p.mark_active(1)
    p.mark_active(6)
    p.mark_active(2)
    assert not p.quorum_active()
    p.mark_active(5)
    assert p.quorum_active() and p.is_active(5) and not p.is_active(3)
    p.reset_active()
    assert not p.quorum_active()
    q = tracker(m, voters=(1, 2, 3), joint=(1, 4, 5))
    for i in (1, 2, 3):
        q.mark_active(i)
    assert not q.quorum_active()
    q.mark_active(4)
    assert q.quorum_active()


def test_read_index_rounds(m):
    p = tracker(m)
    p.on_seq_ack(1, 7)
    p.on_seq_ack(2, 5)
    p.on_seq_ack(2, 3)  # an older round changes nothing
    assert p.acked_seq(2) == 5 and p.quorum_seq() == 5
    p.on_seq_ack(3, 7)
    assert p.quorum_seq() == 7


@given(st.lists(st.integers(0, 50), min_size=1, max_size=7), st.data())
def test_committed_index_is_a_majority_bound(matches, data):
    """The commit index is the largest value that a majority of each config reaches."""
    ids = list(range(1, len(matches) + 1))
    split = data.draw(st.integers(0, len(ids)))
    a, b = ids[:max(split, 1)], data.draw(st.sampled_from([[], ids[split - 1:] or ids]))
    for flavour in FLAVOURS:
        mod = importlib.import_module(f"fastraft.accel.{flavour}.progress")
        p = mod.ProgressTracker(2)
        p.set_membership(a, b, [i for i in ids if i not in a and i not in b], 1)
        for i, v in zip(ids, matches):
            p.update_match(i, v)

        def best(cfg):
            return max(x for x in range(0, 51)
                       if sum(matches[i - 1] >= x for i in cfg) * 2 > len(cfg))
        expect = min(best(c) for c in (a, b) if c)
        assert p.committed_index() == expect


def test_vote_result_matches_counting_every_outcome(m):
    voters = (1, 2, 3, 4)
    for answers in itertools.product((None, True, False), repeat=4):
        p = tracker(m, voters=voters)
        for i, a in zip(voters, answers):
            if a is not None:
                p.record_vote(i, a)
        g = answers.count(True)
        r = answers.count(False)
        expect = m.VOTE_WON if g >= 3 else m.VOTE_LOST if r >= 2 else m.VOTE_PENDING
        assert p.vote_result() == expect, answers


def test_heartbeat_ack_does_not_end_probing(m):
    """In PROBE only the answer to the probe locates the follower: an acknowledgement of the
    old match (a heartbeat's) must not restart replication from match + 1."""
    p = tracker(m)
    p.on_ack(2, 0)  # prev = match = 0 acknowledged; the probe point is next - 1 = 10
    assert p.mode(2) == m.PROBE and p.next_index(2) == 11
    p.on_ack(2, 10)
    assert p.mode(2) == m.PIPELINE and p.next_index(2) == 11
