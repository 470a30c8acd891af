"""The safety checker (``fastraft.sim.checkers``, the simulator's) on bare engines catches each
violation it names, and randomized runs with faults keep every property after every step and
recover once the faults stop."""

import random

import pytest

from fastraft.core import Role
from fastraft.core._prims import Entry, LogIndex
from fastraft.sim.checkers import SafetyChecker, Violation

from .cluster import Cluster, fast_config


class FakeNode:
    """What the checker reads from an engine."""

    def __init__(self, node_id, terms, role=Role.FOLLOWER, term=None, committed=0, applied=0,
                 purged=(0, 0), flushed=0):
        self.id = node_id
        self.log = LogIndex(0, 0)
        if purged[1]:
            self.log.reset(*purged)
        for k, t in enumerate(terms):
            self.log.append_term_run(t, purged[1] + k + 1)
        self.role = role
        self.term = term if term is not None else max(list(terms) + [purged[0], 1])
        self.committed = committed
        self.applied = applied
        self.flushed = flushed


def violation(kind, checker, *engines):
    with pytest.raises(Violation) as ex:
        checker.check_engines(engines)
    assert ex.value.kind == kind, ex.value
    return ex.value


def test_two_leaders_in_one_term():
    c = SafetyChecker()
    c.check_engines([FakeNode(1, [1], Role.LEADER, 2), FakeNode(2, [1], Role.FOLLOWER, 2)])
    violation("election-safety", c, FakeNode(1, [1], Role.FOLLOWER, 2),
              FakeNode(2, [1], Role.LEADER, 2))


def test_log_matching():
    c = SafetyChecker()
    c.check_engines([FakeNode(1, [1, 2, 2]), FakeNode(2, [1, 3])])  # diverge at the end: fine
    violation("log-matching", c, FakeNode(1, [1, 2, 3]), FakeNode(2, [1, 3, 3]))


def test_commit_goes_back():
    c = SafetyChecker()
    c.check_engines([FakeNode(1, [1, 1], committed=2)])
    violation("commit-regressed", c, FakeNode(1, [1, 1], committed=1))
    c.forget(1)
    c.check_engines([FakeNode(1, [1, 1], committed=1)])


def test_state_machine_safety_applied_and_terms():
    c = SafetyChecker()
    c.check_engines([FakeNode(1, [1, 2], committed=2)])
    violation("state-machine-safety", c, FakeNode(2, [1, 3], committed=2))
    violation("applied-regressed", SafetyChecker(), FakeNode(3, [1], committed=0, applied=1))
    violation("vote-regressed", SafetyChecker(), FakeNode(3, [1, 4], term=3))


def test_flushed_beyond_the_log():
    violation("durable-before-send", SafetyChecker(), FakeNode(1, [1, 1], flushed=3))


def test_leader_completeness():
    c = SafetyChecker()
    c.check_engines([FakeNode(1, [1, 2, 2], Role.LEADER, 2, committed=3)])
    violation("leader-completeness", c, FakeNode(2, [1, 2], Role.LEADER, 3))
    violation("leader-completeness", c, FakeNode(3, [1, 2, 3], Role.LEADER, 4))


def test_committed_record_restarts_after_a_snapshot_gap():
    c = SafetyChecker()
    c.check_engines([FakeNode(1, [1, 1], committed=2)])
    c.check_engines([FakeNode(2, [3, 3], purged=(3, 10), committed=12)])
    assert (c.committed.base, c.committed.last) == (10, 12)


def test_applied_entries_compare_content():
    c = SafetyChecker()
    c.check_engines([FakeNode(1, [1], committed=1)])
    c.on_applied(1, Entry(1, 1, 1, b"a"), b"")
    c.on_applied(2, Entry(1, 1, 1, b"a"), b"")
    with pytest.raises(Violation) as ex:
        c.on_applied(3, Entry(1, 1, 1, b"b"), b"")
    assert ex.value.kind == "state-machine-safety"


def _random_run(seed: int, steps: int) -> Cluster:
    """Faults chosen by the seed: partitions, lost messages, crashes (losing unflushed
    writes), slow disks, leader transfers, membership changes, reads and snapshots. Every step
    is checked; then the faults stop and the cluster must make progress."""
    rng = random.Random(seed)
    cfg = fast_config(snapshot_policy_logs_since_last=rng.choice([0, 12]),
                      max_in_snapshot_log_to_keep=rng.choice([0, 4]),
                      pre_vote=rng.random() < 0.7, check_quorum=rng.random() < 0.7,
                      max_cached_entries=rng.choice([4, 1000]), snapshot_max_chunk_bytes=256)
    c = Cluster(5, config=cfg, seed=seed)
    k = 0
    for s in range(steps):
        r = rng.random()
        leader = c.leader()
        if r < 0.3 and leader is not None and leader.transfer_target == 0:
            c.propose(leader.id, [b"v%d" % (k + j) for j in range(rng.randint(1, 4))])
            k += 4
        elif r < 0.38:
            a, b = rng.sample(c.ids, 2)
            c.cut.add((a, b))
        elif r < 0.42:
            c.heal()
        elif r < 0.45 and len(c.down) < 2:
            c.crash(rng.choice(c.ids))
        elif r < 0.49 and c.down:
            c.restart(rng.choice(sorted(c.down)))
        elif r < 0.52 and leader is not None:
            leader.read_index(("read", s))
            c.run_commands()
        elif r < 0.56:
            i = rng.choice(c.ids)
            if i in c.hold_flush:
                c.flush(i)
                c.hold_flush.discard(i)
            else:
                st = c.stores[i]
                st.durable_log, st.durable_purged = dict(st.log), st.purged
                c.hold_flush.add(i)
        elif r < 0.6 and c.net:
            c.net.pop(rng.randrange(len(c.net)))
        elif r < 0.62 and leader is not None:
            leader.transfer_leader(("transfer", s), rng.choice(c.ids))
            c.run_commands()
        elif r < 0.64 and leader is not None:
            leader.change_membership(("change", s), rng.sample(c.ids, rng.randint(1, 5)),
                                     retain=True)
            c.run_commands()
        else:
            c.deliver(limit=rng.randint(1, 10))
        if rng.random() < 0.3:
            c.tick(rng.choice([0.01, 0.05, 0.1]))
    c.heal()
    for i in sorted(c.down):
        c.restart(i)
    for i in sorted(c.hold_flush):
        c.flush(i)
    c.hold_flush.clear()
    c.advance(3.0)
    leader = c.leader()
    assert leader is not None, [c.engines[i] for i in c.ids]
    c.propose(leader.id, [b"final"])
    c.advance(1.0)
    for i in leader.membership.membership.voter_ids():
        assert c.engines[i].committed == leader.committed
        assert c.applied_payloads(i)[-1] == b"final"
    return c


@pytest.mark.parametrize("seed", range(12))
def test_randomized_faults_keep_every_invariant(seed):
    c = _random_run(seed, 300)
    assert c.checker.checks > 300


def test_randomized_runs_replay_exactly():
    """Determinism: the same seed gives the same run, command for command."""
    a, b = _random_run(77, 120), _random_run(77, 120)
    assert a.sent == b.sent
    assert [a.stores[i].applied for i in a.ids] == [b.stores[i].applied for i in b.ids]
