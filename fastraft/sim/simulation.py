"""One simulated run: N real engines, simulated time, network, disks, crashes and clients,
every decision drawn from one ``random.Random(seed)``, safety checked after every step.

A run has three phases:

1. boot: the cluster is formed (``initialize`` on every node, on one node, or membership
   already on disk), clients and the fault schedule start;
2. faults: ``opts.steps`` events (message deliveries, timers, syncs, state-machine work,
   client and admin requests, faults), each followed by the safety checkers;
3. quiet: every fault ends, crashed nodes restart, clients stop; within ``opts.quiet_s``
   simulated seconds a leader must commit and apply a new write (liveness).

Then the client history must be linearizable and every acknowledged write must be in the
final state. The first violation ends the run; ``RunResult.violation`` names it.
"""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass, field
from typing import TextIO

from fastraft import accel
from fastraft.core import LeaderTransferring, Role
from fastraft.errors import ForwardToLeader
from fastraft.types import EntryKind, LogId, Membership, Node, Vote

from . import events as ev
from .checkers import SafetyChecker, Violation
from .faults import FaultSchedule
from .linearizability import HistoryOp, check_history
from .network import SimNetwork
from .node import SimNode
from .profile import Profile, SimOptions, draw_profile
from .state_machine import KVStateMachine, encode_put
from .trace import Trace
from .workload import Workload

__all__ = ["Simulation", "RunResult", "run_seed"]

_ENGINE_EVENTS = (ev.TICK, ev.DELIVER, ev.SYNC, ev.SM, ev.READ_LOG, ev.READ_CHUNK)


@dataclass
class RunResult:
    """What one run did. ``violation`` is (kind, detail) or None; ``trace`` the trace text
    when it was recorded in memory."""

    seed: int
    steps: int
    quiet_steps: int
    sim_time_s: float
    faults: dict = field(default_factory=dict)
    admin: dict = field(default_factory=dict)
    events: dict = field(default_factory=dict)
    ops: dict = field(default_factory=dict)
    messages: int = 0
    lin_keys: int = 0
    lin_inconclusive: int = 0
    recovered_s: float | None = None
    violation: tuple[str, str] | None = None
    profile: str = ""
    trace: str | None = None


def describe_profile(p: Profile) -> str:
    c = p.config
    cfg = " ".join(f"{f.name}={getattr(c, f.name)}" for f in dataclasses.fields(c))
    return (f"nodes={p.n_nodes} voters={p.n_voters} init={p.init} durable_sm={p.durable_sm} "
            f"clients={p.clients} keys={p.keys} | {cfg}")


class Simulation:
    """See the module docstring. ``trace_out``: write the trace there instead of memory."""

    def __init__(self, seed: int, opts: SimOptions | None = None,
                 trace_out: TextIO | None = None) -> None:
        self.seed = seed
        self.opts = opts or SimOptions()
        self.rng = random.Random(seed)
        self.profile = draw_profile(self.rng, self.opts)
        self.q = ev.EventQueue()
        self.trace = Trace(self.opts.trace or trace_out is not None, trace_out)
        self.checker = SafetyChecker(self.opts.disabled_checks)
        self.expected_errors = (ForwardToLeader, LeaderTransferring)
        self.dirty: set[int] = set()
        self.crash_at_step_end: dict[int, float] = {}  # node id -> down time
        self.counters: dict[str, int] = {}
        p = self.profile
        self.nodes = {i: SimNode(self, i, p.clock_rate[i - 1], p.clock_offset_s[i - 1])
                      for i in range(1, p.n_nodes + 1)}
        self.network = SimNetwork(self)
        self.workload = Workload(self)
        self.faults = FaultSchedule(self)
        self.steps = 0
        self.quiet_steps = 0
        self.recovered_s: float | None = None
        self.final_node: SimNode | None = None

    # -- the run ---------------------------------------------------------------------------------

    def run(self) -> RunResult:
        violation = None
        lin = []
        try:
            self._boot()
            while self.steps < self.opts.steps:
                if self._step():
                    self.steps += 1
            self._quiet()
            self._check_final_state()
            lin = self._check_linearizability()
        except Violation as v:
            violation = (v.kind, v.detail)
            if self.trace.on:
                self.trace.emit(self.q.now, "!!", f"VIOLATION {v.kind}: {v.detail}")
        ops: dict[str, int] = {}
        for op in self.workload.history:
            ops[op.status] = ops.get(op.status, 0) + 1
        return RunResult(
            seed=self.seed, steps=self.steps, quiet_steps=self.quiet_steps,
            sim_time_s=self.q.now, faults=dict(sorted(self.faults.counts.items())),
            admin=dict(sorted(self.workload.admin_counts.items())),
            events=dict(sorted(self.counters.items())), ops=dict(sorted(ops.items())),
            messages=self.network.sent, lin_keys=len(lin),
            lin_inconclusive=sum(1 for r in lin if r.inconclusive),
            recovered_s=self.recovered_s, violation=violation,
            profile=describe_profile(self.profile),
            trace=self.trace.text() if self.trace.on and self.trace.out is None else None)

    def _boot(self) -> None:
        p = self.profile
        if self.trace.on:
            self.trace.emit(0.0, "--", f"seed {self.seed} fastraft.sim "
                            f"{'compiled' if accel.accelerated() else 'pure'}")
            self.trace.emit(0.0, "--", describe_profile(p))
        nodes = {i: Node(f"127.0.0.1:{7000 + i}") for i in self.nodes}
        membership = Membership.uniform(nodes, range(1, p.n_voters + 1))
        if p.init == "storage":
            entry = accel.entry.Entry(1, 1, EntryKind.MEMBERSHIP, membership.to_bytes())
            for i in sorted(self.nodes):
                disk = self.nodes[i].disk
                disk.save_vote(Vote(1, 0))
                disk.append([entry], LogId(1, 1))
                disk.sync_upto(len(disk.pending))
                self.checker.on_appended(i, [entry])
        for i in sorted(self.nodes):
            self.nodes[i].start()
        self.initialized = [] if p.init == "storage" else (
            sorted(self.nodes) if p.init == "all" else [1])
        self.boot_nodes = nodes
        self._initialize()
        self._check()
        self.workload.start()
        self.faults.start()

    def _initialize(self) -> None:
        """The operator initializes the cluster; at the quiet phase it does so again on a node
        whose log holds no entry and no membership (it crashed before the membership entry
        was durable, perhaps after the vote was), as an operator would. A node that kept its
        entry is left alone: initialize must cope or refuse."""
        for i in self.initialized:
            e = self.nodes[i].engine
            if e.log.last_index == 0 and not e.membership.membership.configs:
                self.nodes[i].call("initialize", e.initialize, ("init", i), self.boot_nodes)

    def _step(self) -> bool:
        """Process the next event; True if it was a step (not stale, not deferred)."""
        time_s, _, kind, a, b, c = self.q.pop()
        if kind in _ENGINE_EVENTS:
            node = self.nodes[a]
            if node.engine is None:
                return False
            if time_s < node.paused_until:
                self.q.at(node.paused_until, kind, a, b, c)  # handled once the pause ends
                return False
            if kind == ev.TICK:
                if b != node.tick_token:
                    return False
                if self.trace.on:
                    self.trace.emit(time_s, node.who, "tick")
                node.on_tick(b)
            elif kind == ev.DELIVER:
                if not self.network.on_deliver(a, b, c):
                    return False
                node.deliver(b, c)
            elif b != node.incarnation:
                return False  # completion of work lost in a crash
            elif kind == ev.SYNC:
                node.on_sync(c)
            elif kind == ev.SM:
                node.on_sm()
            elif kind == ev.READ_LOG:
                node.on_read_log(c)
            else:
                node.on_read_chunk(c)
        elif kind == ev.CLIENT:
            self.workload.on_client(a)
        elif kind == ev.CLIENT_TIMEOUT:
            self.workload.on_timeout(a, b)
        elif kind == ev.FAULT:
            self.faults.on_fault()
        elif kind == ev.ADMIN:
            self.workload.on_admin()
        else:
            self.faults.on_restart(a)
        self._check()
        return True

    def count(self, what: str) -> None:
        """Coverage: how often something worth exercising happened."""
        self.counters[what] = self.counters.get(what, 0) + 1

    def _check(self) -> None:
        if self.crash_at_step_end:
            # the node's commands of this step ran (its messages left); now it dies
            for i in sorted(self.crash_at_step_end):
                down_s = self.crash_at_step_end[i]
                if self.nodes[i].engine is not None:
                    if self.trace.on:
                        self.trace.emit(self.q.now, f"n{i}", "crash after send")
                    self.faults.crash_now(i, self.q.now + down_s)
            self.crash_at_step_end.clear()
        if self.dirty:
            up = {i: n for i, n in self.nodes.items() if n.engine is not None}
            self.checker.check(up, self.dirty)
            self.dirty.clear()

    # -- liveness --------------------------------------------------------------------------------

    def leader(self) -> SimNode | None:
        best = None
        for i in sorted(self.nodes):
            n = self.nodes[i]
            if n.engine is not None and n.engine.role == Role.LEADER:
                if best is None or n.engine.term > best.engine.term:
                    best = n
        return best

    def _quiet(self) -> None:
        """Faults end; a leader must commit and apply a new write within opts.quiet_s."""
        self.workload.active = False
        self.faults.quiet()
        self._initialize()
        self._check()
        start = self.q.now
        deadline = start + self.opts.quiet_s
        probe = None
        probe_at = start
        retry_s = 2 * self.profile.config.election_timeout_max_s
        n_probe = 0
        while True:
            if probe is not None and probe.status == "ok":
                self.recovered_s = self.q.now - start
                self.final_node = self.nodes[probe.node]
                if self.trace.on:
                    self.trace.emit(self.q.now, "--", f"live: probe#{probe.op_id} applied "
                                    f"{self.recovered_s:.6f} s after the faults ended")
                return
            if probe is not None and probe.status == "pending" and self.q.now >= probe_at:
                probe.status = "unknown"  # the next probe goes to whoever leads now
            if (probe is None or probe.status != "pending") and self.q.now >= probe_at:
                node = self.leader()
                if node is not None and self.q.now >= node.paused_until:
                    n_probe += 1
                    probe = self.workload.probe(node, f"p{n_probe}")
                    self._check()
                probe_at = self.q.now + retry_s
            if self.q.now > deadline or self.quiet_steps >= self.opts.quiet_max_steps or \
                    not len(self.q):
                raise Violation("liveness", f"no write committed within {self.opts.quiet_s} s "
                                f"({self.quiet_steps} steps) after the faults ended; leader: "
                                f"{self._leader_summary()}")
            if self._step():
                self.quiet_steps += 1

    def _leader_summary(self) -> str:
        parts = []
        for i in sorted(self.nodes):
            e = self.nodes[i].engine
            if e is None:
                parts.append(f"n{i}=down")
            else:
                parts.append(f"n{i}={e.role}/t{e.term}/c{e.committed}/a{e.applied}")
        return " ".join(parts)

    # -- end of run ------------------------------------------------------------------------------

    def _check_final_state(self) -> None:
        """Every acknowledged write is in the final state: its entry is what was applied at its
        index, at or below the index the node that applied the liveness probe reached (the
        probe follows every committed entry, Raft §5.4), and that node's state is what the
        applied entries build."""
        final = self.final_node
        applied = self.checker.applied
        top = final.sm.applied
        for op in self.workload.history:
            if op.kind != "put" or op.status != "ok":
                continue
            rec = applied.get(op.index)
            if rec is None or rec[0] != op.term or rec[2] != encode_put(op.op_id, op.key,
                                                                        op.value):
                raise Violation("lost-write", f"put#{op.op_id} {op.key}={op.value} was "
                                f"acknowledged at {op.term}/{op.index}, the entry applied there "
                                f"is {rec[:3] if rec else None}")
            if op.index > top:
                raise Violation("lost-write", f"put#{op.op_id} acknowledged at {op.index}, the "
                                f"final node {final.id} applied only {top}")
        replay = KVStateMachine()
        for i in range(1, top + 1):
            rec = applied.get(i)
            if rec is None:
                return  # a gap no node applied (only snapshots crossed it): nothing to replay
            replay.apply(_RecordEntry(rec[0], i, rec[1], rec[2]))
        if replay.kv != final.sm.kv or replay.digest != final.sm.digest:
            raise Violation("lost-write", f"the final state of node {final.id} at {top} is not "
                            "what the applied entries build")

    def _check_linearizability(self) -> list:
        hist = []
        for op in self.workload.history:
            if op.kind == "put" and op.status in ("ok", "unknown", "pending"):
                done = op.complete if op.status == "ok" else None
                hist.append(HistoryOp(op.op_id, "put", op.key, op.value, op.invoke, done))
            elif op.kind == "get" and op.status == "ok":
                hist.append(HistoryOp(op.op_id, "get", op.key, op.value, op.invoke, op.complete))
        results = check_history(hist, self.opts.lin_budget)
        for r in results:
            if not r.ok and not r.inconclusive:
                raise Violation("linearizability", f"key {r.key}: {r.detail}")
        return results


class _RecordEntry:
    """An applied entry rebuilt from the checker's record, for replaying the final state."""

    __slots__ = ("term", "index", "kind", "payload")

    def __init__(self, term: int, index: int, kind: int, payload: bytes) -> None:
        self.term, self.index, self.kind, self.payload = term, index, kind, payload


def run_seed(seed: int, opts: SimOptions | None = None,
             trace_out: TextIO | None = None) -> RunResult:
    """Run the simulation of ``seed`` with ``opts``; see ``Simulation``."""
    return Simulation(seed, opts, trace_out).run()
