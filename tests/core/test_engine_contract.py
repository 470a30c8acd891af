"""The engine's contract outside the protocol: no I/O imports, config validation, input
checking, start from storage, determinism."""

import ast
import pathlib
import subprocess
import sys

import pytest

import fastraft.core as core
from fastraft.core import Config, Engine, InitialState, Role, scan_term_runs
from fastraft.errors import ConfigError
from fastraft.messages import AppendEntriesRequest, VoteRequest
from fastraft.types import LogId, SnapshotMeta, StoredMembership, Vote

from .helpers import config, engine, membership

CORE_DIR = pathlib.Path(core.__file__).parent
IO_MODULES = {"trio", "lmdb", "socket", "asyncio", "threading", "time", "os", "select",
              "selectors", "subprocess", "io", "pathlib"}


def test_engine_sources_import_no_io_module():
    """Statically: no module of the engine package imports an I/O module or reads a clock."""
    for path in sorted(CORE_DIR.glob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            for name in names:
                assert name.split(".")[0] not in IO_MODULES, f"{path.name} imports {name}"


def test_importing_the_engine_loads_no_io_module():
    """At run time, in a fresh interpreter: importing fastraft.core (and the fastraft package
    it lives in, with its accelerated core) and building an engine loads no trio, no lmdb,
    no socket, and no thread or event loop module."""
    code = (
        "import sys\n"
        "import fastraft.core\n"
        "e = fastraft.core.Engine(1)\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('trio', 'lmdb', 'socket',"
        " 'asyncio', 'threading', 'select', 'selectors', 'subprocess')]\n"
        "print(sorted(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout


def test_config_defaults_are_openraft_s_but_for_entries_per_message_and_timing():
    c = Config()
    assert (c.heartbeat_interval_ms, c.election_timeout_min_ms, c.election_timeout_max_ms) == \
        (100, 1000, 2000)  # etcd's: they hold a leader with 10,000 writes in flight
    assert (c.max_payload_entries, c.replication_lag_threshold,
            c.snapshot_policy_logs_since_last, c.max_in_snapshot_log_to_keep) == \
        (2048, 5000, 5000, 1000)  # messages are bounded in bytes (max_message_bytes) too
    assert c.snapshot_max_chunk_bytes == 3 << 20 and c.pre_vote and c.check_quorum
    assert c.validate() is c
    assert (c.heartbeat_interval_s, c.election_timeout_min_s, c.election_timeout_max_s) == \
        (0.1, 1.0, 2.0)


@pytest.mark.parametrize("kw,words", [
    (dict(election_timeout_min_ms=300, election_timeout_max_ms=300), "election_timeout_max_ms"),
    (dict(heartbeat_interval_ms=1000), "heartbeat_interval_ms"),
    (dict(lease_read=True, check_quorum=False), "lease_read"),
    (dict(max_payload_entries=0), "max_payload_entries"),
    (dict(max_inflight=0), "max_inflight"),
    (dict(max_inflight=5000), "max_inflight"),
    (dict(max_message_bytes=100), "max_message_bytes"),
    (dict(snapshot_max_chunk_bytes=0), "snapshot_max_chunk_bytes"),
    (dict(max_in_snapshot_log_to_keep=-1), "max_in_snapshot_log_to_keep"),
    (dict(lease_drift_ratio=1.5), "lease_drift_ratio"),
    (dict(pre_vote=1), "pre_vote"),
    (dict(max_inflight=2.5), "max_inflight"),
])
def test_config_validate_names_the_problem(kw, words):
    with pytest.raises(ConfigError, match=words):
        Config(**kw).validate()
    with pytest.raises(ConfigError):
        Engine(1, Config(**kw))


def test_bad_inputs_raise_clearly():
    with pytest.raises(ValueError):
        Engine(0)
    with pytest.raises(ValueError):
        Engine(True)
    e = engine(1)
    with pytest.raises(TypeError):
        e.step("not a message")
    e.step(VoteRequest(term=5, sender=1, last_log_term=9, last_log_index=9))  # "from" this very node: ignored
    e.step(AppendEntriesRequest(term=5, sender=0, prev_log_term=0, prev_log_index=0, leader_commit=0))  # from node 0: ignored
    assert e.take_commands() == [] and e.term == 1
    with pytest.raises(ValueError):
        e.add_learner("x", 0, None)
    with pytest.raises(ValueError):
        e.change_membership("x", ["a"])
    with pytest.raises(ValueError):
        e.on_snapshot_installed(SnapshotMeta(LogId(1, 1), StoredMembership(), "never asked"))


def test_start_from_storage_state():
    """The engine restarts from what storage holds: vote, purged log id, term runs, applied
    index, memberships and snapshot."""
    m = membership()
    snap = SnapshotMeta(LogId(2, 10), StoredMembership(LogId(1, 1), m), "s10")
    state = InitialState(vote=Vote(4, 2), purged=LogId(2, 10), log_runs=((3, 15), (4, 17)),
                         committed=12, applied=10, membership=StoredMembership(LogId(1, 1), m),
                         snapshot=snap)
    e = Engine(1, config(), 3, state)
    assert (e.term, e.vote, e.last_log_id, e.log.purged_index) == (4, Vote(4, 2), LogId(4, 17), 10)
    assert (e.committed, e.applied, e.flushed) == (12, 10, 17)
    assert e.log.term_at(11) == 3 and e.log.term_at(16) == 4
    assert e.snapshot == snap and e.role == Role.FOLLOWER
    assert state.last_log_id == LogId(4, 17)
    cmds = e.take_commands()
    assert [type(c).__name__ for c in cmds] == ["StateChanged"]
    with pytest.raises(ValueError, match="restore the snapshot"):
        Engine(1, config(), 3, InitialState(purged=LogId(2, 10), applied=3))


def test_scan_term_runs_uses_few_reads():
    terms = {i: 1 if i < 40 else (3 if i < 900 else 7) for i in range(5, 1001)}
    reads = []

    def term_at(i):
        reads.append(i)
        return terms[i]

    assert scan_term_runs(5, 1000, term_at) == ((1, 39), (3, 899), (7, 1000))
    assert len(reads) < 60
    assert scan_term_runs(5, 4, term_at) == ()


def test_next_deadline_follows_the_role():
    e = engine(1)
    assert 0.15 <= e.next_deadline() < 0.3
    learner = engine(4, learners=(4,))
    assert learner.next_deadline() == float("inf")
    from .helpers import make_leader
    make_leader(e)
    assert e.next_deadline() == pytest.approx(e.now + 0.05)
    e.transfer_leader("t", 2)
    assert e.next_deadline() <= e.now + 0.3
    e.tick(e.now - 5.0)  # time never goes back
    assert e.now >= 0.0 and e.is_leader


def test_repr_and_views():
    e = engine(1)
    assert "follower" in repr(e) and e.membership.membership == membership()
    # started with the same membership as current and previous: that one is the committed view
    assert e.committed_membership == e.membership


def test_every_request_stepped_with_a_token_gets_exactly_one_answer_within_the_bound():
    """Answers waiting for durable state are bounded: past the bound a new request is
    refused at once ("no answer", with the reason) instead of evicting one already waiting;
    once the entries are durable every held answer leaves with its own token, in order."""
    from fastraft.core import NoAnswer, SendMessage
    from fastraft.core.outbox import _MAX_HELD
    from fastraft import Entry

    e = engine(2, terms=(1, 1, 1))
    req = AppendEntriesRequest(term=1, sender=1, prev_log_term=1, prev_log_index=3,
                               leader_commit=0, entries=[Entry(1, 4, 1, b"x")])
    for token in range(_MAX_HELD + 1):
        e.step(req, reply_to=token)
    out = e.take_commands()
    refused = [c for c in out if type(c) is NoAnswer]
    assert [(c.reply_to, c.reason) for c in refused] == [
        (_MAX_HELD, f"{_MAX_HELD} answers already wait for durable state")]
    assert not [c for c in out if type(c) is SendMessage]  # entry 4 is not durable yet
    e.on_log_flushed(LogId(1, 4))
    answers = [c for c in e.take_commands() if type(c) is SendMessage]
    assert [c.reply_to for c in answers] == list(range(_MAX_HELD))
    assert all(c.msg.success and c.msg.match_index == 4 and c.to == 1 for c in answers)
