"""The safety checkers flag each property on hand-built engine states (real engines, built from
the durable state a runtime would hand them)."""

from types import SimpleNamespace

import pytest

from fastraft import accel
from fastraft.core import Config, Engine, InitialState, Role
from fastraft.sim.checkers import SafetyChecker, Violation, compare_runs
from fastraft.sim.disk import LogImage, SimDisk
from fastraft.types import EntryKind, LogId, Membership, Node, StoredMembership, Vote

Entry = accel.entry.Entry
_version = [0]


def node(node_id, terms, term=None, committed=0, role=None):
    """A node whose engine's log holds one entry per element of ``terms`` (entry 1 is the
    3-voter membership) and knows ``committed``."""
    runs = []
    for i, t in enumerate(terms, start=1):
        if runs and runs[-1][0] == t:
            runs[-1] = (t, i)
        else:
            runs.append((t, i))
    m = Membership.uniform({i: Node(f"127.0.0.1:{7000 + i}") for i in (1, 2, 3)})
    sm = StoredMembership(LogId(terms[0], 1), m)
    state = InitialState(vote=Vote(term or max(terms), 0), log_runs=tuple(runs),
                         committed=committed, membership=sm, prev_membership=sm)
    e = Engine(node_id, Config(), 7, state)
    e.take_commands()
    if role is not None:
        e.role = role  # the checker reads the role; how the engine got there is not its concern
    _version[0] += 1
    return SimpleNamespace(id=node_id, engine=e, disk=SimDisk(durable_sm=False),
                           log_version=_version[0])


def check(checker, *nodes):
    checker.check({n.id: n for n in nodes}, {n.id for n in nodes})


def test_compare_runs_finds_first_difference_and_last_agreement():
    a = [(1, 1), (4, 2), (7, 3)]  # terms 1 1 1 2 2 2 3 3 (last 8)
    b = [(1, 1), (4, 2), (6, 4)]  # terms 1 1 1 2 2 4 4 4 (last 8)
    assert compare_runs(a, 8, b, 8, 1, 8) == (6, 5)
    assert compare_runs(a, 8, b, 8, 1, 5) == (0, 5)
    assert compare_runs(a, 8, a, 8, 3, 8) == (0, 8)


def test_two_leaders_in_one_term():
    c = SafetyChecker()
    check(c, node(1, [1, 2], role=Role.LEADER))
    with pytest.raises(Violation) as ex:
        check(c, node(2, [1, 2], role=Role.LEADER))
    assert ex.value.kind == "election-safety"


def test_log_matching_on_terms():
    c = SafetyChecker()
    # same term at 3 but different terms at 2: impossible in Raft
    with pytest.raises(Violation) as ex:
        check(c, node(1, [1, 1, 3]), node(2, [1, 2, 3]))
    assert ex.value.kind == "log-matching"
    check(SafetyChecker(), node(1, [1, 1, 3]), node(2, [1, 2, 2]))  # diverging suffix: fine


def test_log_matching_on_content():
    c = SafetyChecker()
    c.on_appended(1, [Entry(2, 5, EntryKind.NORMAL, b"a")])
    c.on_appended(2, [Entry(2, 5, EntryKind.NORMAL, b"a")])
    with pytest.raises(Violation) as ex:
        c.on_appended(3, [Entry(2, 5, EntryKind.NORMAL, b"b")])
    assert ex.value.kind == "log-matching"


def test_committed_entries_must_agree():
    c = SafetyChecker()
    check(c, node(1, [1, 2, 2], committed=3))
    with pytest.raises(Violation) as ex:
        check(c, node(2, [1, 2, 3], term=3, committed=3))
    assert ex.value.kind == "state-machine-safety"


def test_leader_must_hold_what_was_committed_before_its_term():
    c = SafetyChecker()
    check(c, node(1, [1, 2, 2, 2], committed=4))
    with pytest.raises(Violation) as ex:
        check(c, node(2, [1, 2, 3], term=4, role=Role.LEADER))
    assert ex.value.kind == "leader-completeness"


def test_commit_index_never_goes_back_within_one_engine():
    c = SafetyChecker()
    check(c, node(1, [1, 1, 1], committed=3))
    with pytest.raises(Violation) as ex:
        check(c, node(1, [1, 1, 1], committed=2))
    assert ex.value.kind == "commit-regressed"
    c.forget(1)  # a restart may start lower
    check(c, node(1, [1, 1, 1], committed=2))


def test_durable_vote_never_goes_back():
    c = SafetyChecker()
    c.on_durable_vote(1, Vote(3, 0))
    c.on_durable_vote(1, Vote(3, 2))
    with pytest.raises(Violation) as ex:
        c.on_durable_vote(1, Vote(3, 3))  # a second vote in term 3
    assert ex.value.kind == "vote-regressed"
    with pytest.raises(Violation):
        c.on_durable_vote(1, Vote(2, 2))


def test_different_entries_applied_at_one_index():
    c = SafetyChecker()
    check(c, node(1, [1, 1, 1], committed=3))
    c.on_applied(1, Entry(1, 2, EntryKind.NORMAL, b"x"), b"d1")
    with pytest.raises(Violation) as ex:
        c.on_applied(2, Entry(1, 2, EntryKind.NORMAL, b"y"), b"d2")
    assert ex.value.kind == "state-machine-safety"


def test_applying_an_uncommitted_entry():
    c = SafetyChecker()
    check(c, node(1, [1, 1, 1], committed=2))
    with pytest.raises(Violation) as ex:
        c.on_applied(1, Entry(1, 3, EntryKind.NORMAL, b"x"), b"d")
    assert ex.value.kind == "state-machine-safety"


def test_truncating_committed_entries_unless_a_snapshot_covers_them():
    c = SafetyChecker()
    n = node(1, [1, 1, 1, 1], committed=3, term=1)
    check(c, n)
    img = LogImage(None, [Entry(1, i, EntryKind.NORMAL, b"") for i in range(1, 5)])
    c.on_truncate(1, 4, img, covered=0, term=1)  # only the uncommitted entry goes
    c.on_truncate(1, 2, img, covered=3, term=1)  # replaced by a snapshot up to 3
    with pytest.raises(Violation) as ex:
        c.on_truncate(1, 3, img, covered=0, term=1)
    assert ex.value.kind == "committed-truncated"
    with pytest.raises(Violation):
        c.on_truncate(2, 3, img, covered=0, term=2)  # a later term's leader holds it (§5.4.1)


def test_a_node_in_a_term_before_the_commit_may_truncate_a_committed_entry():
    """Seed 405969: entries committed in term 3 may be dropped by a node still in term 2 at a
    stale term-2 leader's AppendEntries (Raft §5.3); the term-3 leader repairs it later."""
    c = SafetyChecker()
    check(c, node(1, [1, 1, 1, 1], committed=3, term=3))
    img = LogImage(None, [Entry(1, i, EntryKind.NORMAL, b"") for i in range(1, 5)])
    c.on_truncate(5, 3, img, covered=0, term=2)
    with pytest.raises(Violation) as ex:
        c.on_truncate(5, 3, img, covered=0, term=3)
    assert ex.value.kind == "committed-truncated"


def test_a_disabled_check_is_skipped():
    c = SafetyChecker(disabled=frozenset({"election-safety"}))
    check(c, node(1, [1, 2], role=Role.LEADER))
    check(c, node(2, [1, 2], role=Role.LEADER))
    assert c.checks == 2
