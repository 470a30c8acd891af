"""Engine throughput: three engines in one process, messages passed in memory, storage that
is durable at once, no I/O. The leader proposes batches of 100 entries of 100 bytes, one batch
per network hop, so replication is pipelined; the figure is committed entries per second
(``extra_info["committed_per_s"]``), compiled and pure side by side in one run:

    python -m pytest benchmarks/bench_engine.py --benchmark-group-by=group \\
        --benchmark-columns=median,iqr,rounds

The target: compiled at least 300,000 committed entries/s and at least 3x the pure build.
Both flavours run in one process: ``Engine.with_primitives`` builds the engine on each set of
``fastraft.accel.load(...)``.
"""

from __future__ import annotations

from fastraft.core import (AppendLog, Config, Engine, InitialState, SaveVote, SendMessage)
from fastraft.types import LogId, Membership, Node, StoredMembership, Vote

BATCH = 100
PAYLOAD = bytes(range(100))


def _engine_class(modules: dict) -> type[Engine]:
    return Engine.with_primitives(modules["log_index"], modules["progress"])


class InMemoryCluster:
    """Three engines whose writes are durable at once and whose messages arrive one hop (one
    ``pump``) after they were sent."""

    def __init__(self, engine_class: type[Engine]):
        cfg = Config(snapshot_policy_logs_since_last=0, check_quorum=False).validate()
        nodes = {i: Node(f"127.0.0.1:{7000 + i}") for i in (1, 2, 3)}
        first = StoredMembership(LogId(1, 1), Membership.uniform(nodes))
        state = InitialState(vote=Vote(1, 0), log_runs=((1, 1),), membership=first,
                             prev_membership=first)
        self.engines = {i: engine_class(i, cfg, i, state) for i in (1, 2, 3)}
        self.in_flight: list = []
        self.committed_seen = 0
        leader = self.engines[1]
        leader.trigger_elect()
        for _ in range(50):
            self.pump()
            if leader.is_leader and leader.committed >= leader.log.last_index:
                break
        assert leader.is_leader and leader.committed == leader.log.last_index

    def pump(self) -> None:
        """Deliver what is in flight, then run every node's commands (completing writes)."""
        msgs, self.in_flight = self.in_flight, []
        engines = self.engines
        for to, msg in msgs:
            engines[to].step(msg)
        out = self.in_flight
        for e in engines.values():
            cmds = e.take_commands()
            while cmds:
                for c in cmds:
                    t = type(c)
                    if t is SendMessage:
                        out.append((c.to, c.msg))
                    elif t is AppendLog:
                        e.on_log_flushed(c.last_log_id)
                    elif t is SaveVote:
                        e.on_vote_saved(c.vote)
                cmds = e.take_commands()

    def run(self, batches: int) -> int:
        """Propose ``batches`` batches, one per hop, then drain; returns entries committed."""
        leader = self.engines[1]
        start = leader.committed
        payloads = [PAYLOAD] * BATCH
        for _ in range(batches):
            leader.propose(payloads)
            self.pump()
        for _ in range(100):
            if not self.in_flight:
                break
            self.pump()
        # committed on the leader: a majority holds it durably (followers learn the final
        # commit index with the next message, which no heartbeat sends here)
        assert leader.committed == leader.log.last_index
        return leader.committed - start


def test_engine_committed_entries_per_second(bench, flavour):
    engine_class = _engine_class(flavour)
    batches = bench.scaled(200, 10)
    cluster = InMemoryCluster(engine_class)
    committed = bench.run(f"engine: 3 nodes, {batches} batches of {BATCH} x 100 B",
                          cluster.run, batches, rounds=15, warmup_rounds=1)
    assert committed == batches * BATCH
    ns = bench.per_item(committed)
    bench.benchmark.extra_info["committed_per_s"] = round(1e9 / ns)
    bench.benchmark.extra_info["primitives"] = engine_class.__name__
