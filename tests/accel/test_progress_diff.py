"""Differential tests: the compiled progress tracker against its pure twin (the spec).

A hypothesis state machine drives one compiled and one pure ``ProgressTracker`` with the same
random operations: membership changes (uniform, joint, learners, bad ones), a new leadership,
and every per-member event with indexes around match and next, values outside u64, and ids
that are not tracked. After every call both must return equal results or raise the same
exception type with the same message; a call that raises must leave both unchanged; and after
every step everything observable (per member and the quorums) must be equal.
"""

import copy
import importlib
import itertools
import pickle

import hypothesis.strategies as st
from hypothesis import given, settings
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

C = importlib.import_module("fastraft.accel.compiled.progress")
P = importlib.import_module("fastraft.accel.pure.progress")

MAX = (1 << 64) - 1
SPECIALS = [-(1 << 70), -1, 0, 1, MAX - 1, MAX, MAX + 1, 1 << 70]
#: Ids drawn for members, and ids asked about (0 and 9 are never tracked; the state compares
#: every tracked id's view and theirs, and node_ids() itself).
IDS = st.integers(1, 8)
ASK = list(range(0, 10))

PER_MEMBER = ("match_index", "next_index", "mode", "inflight_count", "pending_snapshot",
              "can_send", "is_active", "acked_seq", "is_tracked", "is_voter")
WHOLE = ("node_ids", "voter_ids", "learner_ids", "committed_index", "quorum_active",
         "quorum_seq", "vote_result")


def outcome(fn, *args):
    try:
        v = fn(*args)
        return ("ok", type(v).__name__, v)
    except Exception as e:  # every exception is part of the contract: type and message
        return ("raise", type(e), str(e))


def state(t):
    """Everything a caller can observe of a tracker."""
    out = [t.max_inflight, t.is_joint, repr(t)]
    out += [outcome(getattr(t, name)) for name in WHOLE]
    for i in sorted(set(t.node_ids()) | {0, 9}):
        out += [outcome(getattr(t, name), i) for name in PER_MEMBER]
    return out


def near(lo, hi):
    """An integer in [lo - 2, hi + 4] mostly, else one of the u64 edge values."""
    return st.one_of(st.integers(lo - 2, max(lo, hi) + 4), st.integers(lo - 2, max(lo, hi) + 4),
                     st.sampled_from(SPECIALS))


class ProgressDiff(RuleBasedStateMachine):
    """One compiled and one pure ProgressTracker, driven in lockstep."""

    @initialize(max_inflight=st.integers(1, 4),
                voters=st.sets(IDS, min_size=1, max_size=5),
                next_index=st.integers(1, 30))
    def setup(self, max_inflight, voters, next_index):
        self.c = C.ProgressTracker(max_inflight)
        self.p = P.ProgressTracker(max_inflight)
        self.both("set_membership", sorted(voters), [], [], next_index, mutates=True)

    def both(self, name, *args, mutates=False):
        # the compiled side suffices: the invariant keeps it equal to the pure side
        before = state(self.c) if mutates else None
        rc = outcome(getattr(self.c, name), *args)
        rp = outcome(getattr(self.p, name), *args)
        assert rc == rp, f"{name}{args}: compiled {rc} != pure {rp}"
        if mutates and rp[0] == "raise":
            assert state(self.c) == before, f"{name}{args} raised and changed"
            assert state(self.p) == before, f"{name}{args} raised and changed"
        return rp

    def _node(self, data):
        tracked = self.p.node_ids()
        return data.draw(st.one_of(st.sampled_from(tracked), st.sampled_from(tracked),
                                   st.sampled_from(ASK)), label="node")

    def _index(self, data, node):
        """An index around the member's match and next (any value if it is not tracked)."""
        if self.p.is_tracked(node):
            lo, hi = self.p.match_index(node), self.p.next_index(node)
            if self.p.mode(node) == P.SNAPSHOT:
                hi = max(hi, self.p.pending_snapshot(node))
        else:
            lo, hi = 0, 10
        return data.draw(near(lo, min(hi, lo + 40)), label="index")

    # -- membership and leadership -------------------------------------------------------------

    @rule(data=st.data(),
          voters=st.sets(IDS, max_size=5), joint=st.sets(IDS, max_size=5),
          learners=st.sets(IDS, max_size=3),
          odd=st.sampled_from([None] * 8 + [0, -3, 1 << 70]),
          next_index=st.sampled_from([1, 5, 20, 0, -1, MAX, MAX + 1]))
    def set_membership(self, data, voters, joint, learners, odd, next_index):
        learners = set(learners) - voters - joint if data.draw(st.integers(0, 5)) else learners
        voters = sorted(voters) + ([odd] if odd is not None else [])
        self.both("set_membership", voters, sorted(joint), sorted(learners), next_index,
                  mutates=True)

    @rule(next_index=st.sampled_from([1, 7, 50, 0, -2, MAX, MAX + 1]))
    def reset(self, next_index):
        self.both("reset", next_index, mutates=True)

    # -- replication ---------------------------------------------------------------------------

    @rule(data=st.data())
    def update_match(self, data):
        node = self._node(data)
        self.both("update_match", node, self._index(data, node), mutates=True)

    @rule(data=st.data())
    def on_sent(self, data):
        node = self._node(data)
        self.both("on_sent", node, self._index(data, node), mutates=True)

    @rule(data=st.data())
    def on_ack(self, data):
        node = self._node(data)
        self.both("on_ack", node, self._index(data, node), mutates=True)

    @rule(data=st.data())
    def on_reject(self, data):
        node = self._node(data)
        rejected = self._index(data, node)
        hint = data.draw(st.one_of(near(0, rejected if 0 <= rejected < 100 else 10),
                                   st.sampled_from(SPECIALS)), label="hint")
        self.both("on_reject", node, rejected, hint, mutates=True)

    @rule(data=st.data(), op=st.sampled_from(["resume", "become_probe", "mark_active"]))
    def member_event(self, data, op):
        self.both(op, self._node(data), mutates=True)

    @rule(data=st.data())
    def become_snapshot(self, data):
        node = self._node(data)
        self.both("become_snapshot", node, self._index(data, node), mutates=True)

    @rule(data=st.data())
    def on_snapshot_done(self, data):
        node = self._node(data)
        self.both("on_snapshot_done", node, self._index(data, node), mutates=True)

    # -- quorums and votes ---------------------------------------------------------------------

    @rule(data=st.data())
    def on_seq_ack(self, data):
        node = self._node(data)
        seq = data.draw(near(self.p.acked_seq(node) if self.p.is_tracked(node) else 0, 20))
        self.both("on_seq_ack", node, seq, mutates=True)

    @rule(data=st.data(), granted=st.sampled_from([True, False, 0, 1, "", "yes", None]))
    def record_vote(self, data, granted):
        self.both("record_vote", self._node(data), granted, mutates=True)

    @rule(op=st.sampled_from(["reset_votes", "reset_active"]))
    def reset_round(self, op):
        self.both(op, mutates=True)

    @rule(how=st.sampled_from(["pickle", "deepcopy"]))
    def copy_both(self, how):
        """Carry on with copies: a copy must behave as the original (the twin copies through
        its slots, the compiled module through __reduce__)."""
        dup = (lambda o: pickle.loads(pickle.dumps(o))) if how == "pickle" else copy.deepcopy
        c, p = dup(self.c), dup(self.p)
        assert type(c) is type(self.c) and state(c) == state(self.c)
        self.c, self.p = c, p

    @invariant()
    def same_state(self):
        assert state(self.c) == state(self.p)


TestProgressDiff = ProgressDiff.TestCase
TestProgressDiff.settings = settings(settings(), stateful_step_count=50, deadline=None)


# -- quorums of every shape ---------------------------------------------------------------------


@given(matches=st.lists(st.sampled_from([0, 1, 2, 5, 9, MAX - 1, MAX]), min_size=1, max_size=40),
       data=st.data())
def test_quorum_values_of_large_and_joint_configs(matches, data):
    """Commit index and ReadIndex round agree for configs of up to 40 voters (past the
    insertion-sort cut-off), uniform or joint, with learners that must not count."""
    ids = list(range(1, len(matches) + 1))
    roles = data.draw(st.lists(st.sampled_from("aaaaabjl"), min_size=len(ids), max_size=len(ids)))
    a = [i for i, r in zip(ids, roles) if r in "aj"] or [ids[0]]
    b = [i for i, r in zip(ids, roles) if r in "bj"]
    learners = [i for i in ids if i not in a and i not in b]
    trackers = [m.ProgressTracker(2) for m in (C, P)]
    for t in trackers:
        t.set_membership(a, b, learners, 1)
        for i, v in zip(ids, matches):
            t.update_match(i, v)
            t.on_seq_ack(i, v)
            t.record_vote(i, v % 2 == 0)
            if v % 3:
                t.mark_active(i)
    assert state(trackers[0]) == state(trackers[1])


def test_commit_index_of_configs_past_the_insertion_sort_cut_off():
    """Configs of 33 to 65 voters (sorted by qsort in C) against the definition: the largest
    value that a majority of each config has reached."""
    for n in (33, 40, 65):
        ids = list(range(1, n + 1))
        values = [(i * 7919) % 101 for i in ids]  # a fixed scramble of 0..100
        for a, b in ((ids, []), (ids[: n // 2], ids[n // 3:])):
            def best(cfg):
                return max(x for x in range(101)
                           if sum(values[i - 1] >= x for i in cfg) * 2 > len(cfg))
            expect = min(best(c) for c in (a, b) if c)
            for m in (C, P):
                t = m.ProgressTracker(1)
                t.set_membership(a, b, [], 1)
                for i, v in zip(ids, values):
                    t.update_match(i, v)
                    t.on_seq_ack(i, v)
                assert t.committed_index() == expect and t.quorum_seq() == expect, (m, n)


def test_vote_and_quorum_tables_agree_exhaustively():
    """Every answer pattern of a 2+3 joint configuration gives the same tally."""
    for answers in itertools.product((None, True, False), repeat=5):
        results = []
        for m in (C, P):
            t = m.ProgressTracker(1)
            t.set_membership([1, 2], [3, 4, 5], [6], 1)
            for i, a in enumerate(answers, start=1):
                if a is not None:
                    t.record_vote(i, a)
                    t.mark_active(i)
            results.append((t.vote_result(), t.quorum_active()))
        assert results[0] == results[1], answers


def test_next_index_past_the_largest_index():
    for m in (C, P):
        t = m.ProgressTracker(2)
        t.set_membership([1, 2], [], [], MAX)
        assert t.update_match(1, MAX) and t.next_index(1) == 1 << 64
        t.on_ack(2, MAX - 1)
        t.on_sent(2, MAX)
        assert (t.mode(2), t.next_index(2), t.inflight_count(2)) == (m.PIPELINE, 1 << 64, 1)
        assert t.committed_index() == MAX - 1
        for call, args in ((t.update_match, (1, 1 << 64)), (t.on_seq_ack, (2, 1 << 64)),
                           (t.reset, (1 << 64,)), (t.on_reject, (2, 1 << 64, 1))):
            try:
                call(*args)
            except OverflowError as e:
                assert str(e) == f"{1 << 64} does not fit in an unsigned 64-bit integer"
            else:
                raise AssertionError(f"{call.__name__}{args} accepted a value beyond u64")
        assert t.next_index(2) == 1 << 64 and t.match_index(1) == MAX
