"""The simulated clients and operator: key-value writes and reads recorded as a history, and
admin requests issued during the run.

Each client has at most one operation outstanding (so its operations are ordered) and sends
it to the node it believes leads. Outcomes, as a client of a real deployment sees them:

* a put is ``ok`` once the node it was proposed on applies the entry at its log id; ``fail``
  when the node refused it (not the leader, a transfer in progress) or applied another entry
  at that index (the proposal was overwritten, so it never takes effect); ``unknown`` when the
  node crashed or the client timed out first: it may still take effect, and the history keeps
  it open (invoked, never completed);
* a get is ``ok`` with the value the state machine held when its read was ready (ReadIndex or
  lease, as the engine decides), ``fail`` when refused or abandoned: a read has no effect, so
  a failed one leaves the history.

Every invoke and completion takes the next ``order`` number, a total order of real time that
breaks ties between events at the same simulated instant.
"""

from __future__ import annotations

from dataclasses import dataclass

from fastraft.core import LeaderTransferring, Role
from fastraft.errors import ForwardToLeader
from fastraft.types import Node

from .events import ADMIN, CLIENT, CLIENT_TIMEOUT
from .state_machine import encode_put

__all__ = ["Op", "Workload"]


@dataclass(slots=True)
class Op:
    """One client operation. ``invoke`` / ``complete`` are order numbers (see module
    docstring); ``complete`` is None while open. ``value`` is the value put, or the value a get
    returned (None: the key was never written)."""

    op_id: int
    client: int
    kind: str  # "put" or "get"
    key: str
    value: str | None
    invoke: int
    invoke_s: float
    complete: int | None = None
    complete_s: float | None = None
    status: str = "pending"  # "pending", "ok", "fail", "unknown"
    node: int = 0
    index: int = 0
    term: int = 0


class Workload:
    def __init__(self, sim) -> None:
        self.sim = sim
        p = sim.profile
        self.keys = [f"k{i}" for i in range(p.keys)]
        self.history: list[Op] = []
        self.busy: dict[int, Op | None] = {c: None for c in range(1, p.clients + 1)}
        self.hint: dict[int, int] = {c: 0 for c in self.busy}
        self.reads: dict[tuple, Op] = {}
        self.order = 0
        self.next_op = 0
        self.next_admin = 0
        self.admin_counts: dict[str, int] = {}
        self.admin_answers: dict[str, int] = {}
        self.active = True

    # -- clients ---------------------------------------------------------------------------------

    def start(self) -> None:
        rng = self.sim.rng
        for c in self.busy:
            self.sim.q.after(rng.uniform(0.0, 0.05), CLIENT, c)
        if self.sim.opts.admin:
            self.sim.q.after(rng.expovariate(1.0 / self.sim.profile.admin_interval_s), ADMIN)

    def _tick_order(self) -> int:
        self.order += 1
        return self.order

    def _pick_node(self, client: int):
        sim = self.sim
        h = self.hint[client]
        node = sim.nodes.get(h)
        if node is None or not node.up or sim.rng.random() < 0.1:
            node = sim.nodes[sim.rng.choice(sorted(sim.nodes))]
        return node

    def on_client(self, client: int) -> None:
        """Client ``client`` invokes its next operation."""
        sim = self.sim
        if self.busy[client] is not None or not self.active:
            return
        rng = sim.rng
        self.next_op += 1
        key = rng.choice(self.keys)
        is_get = rng.random() < sim.profile.read_ratio
        op = Op(self.next_op, client, "get" if is_get else "put", key,
                None if is_get else f"v{self.next_op}", self._tick_order(), sim.q.now)
        self.history.append(op)
        self.busy[client] = op
        node = self._pick_node(client)
        op.node = node.id
        if not node.up or sim.q.now < node.paused_until:
            self._complete(op, "fail")
            return
        sim.q.after(sim.profile.client_timeout_s, CLIENT_TIMEOUT, client, op.op_id)
        if is_get:
            rid = ("read", op.op_id)
            self.reads[rid] = op
            node.call("read_index", node.engine.read_index, rid)
            return
        try:
            lid = node.call("propose", node.engine.propose, [encode_put(op.op_id, key, op.value)])
        except ForwardToLeader as e:
            self.hint[client] = e.leader_id or 0
            self._complete(op, "fail")
            return
        except LeaderTransferring as e:
            self.hint[client] = e.target_id
            self._complete(op, "fail")
            return
        op.index, op.term = lid.index, lid.term
        node.pending_writes[lid.index] = op
        if sim.trace.on:
            sim.trace.emit(sim.q.now, node.who, f"client {client} put#{op.op_id} {key}="
                           f"{op.value} at {lid.term}/{lid.index}")

    def _complete(self, op: Op, status: str, value: str | None = None) -> None:
        sim = self.sim
        op.status = status
        if status == "ok" or status == "fail":
            op.complete = self._tick_order()
            op.complete_s = sim.q.now
        if op.kind == "get" and status == "ok":
            op.value = value
        if sim.trace.on:
            sim.trace.emit(sim.q.now, f"c{op.client}", f"{op.kind}#{op.op_id} {op.key} -> "
                           f"{status} {op.value if status == 'ok' else ''}".rstrip())
        if self.busy.get(op.client) is op:
            self.busy[op.client] = None
            if op.client > 0:
                if status == "ok":
                    pause_s = sim.rng.uniform(*sim.profile.think_s)
                else:
                    # a refused or unanswered client backs off before it tries again
                    pause_s = sim.rng.uniform(0.1, 1.0) * sim.profile.config.election_timeout_min_s
                sim.q.after(pause_s, CLIENT, op.client)

    def on_timeout(self, client: int, op_id: int) -> None:
        op = self.busy.get(client)
        if op is None or op.op_id != op_id or op.status != "pending":
            return
        if op.kind == "get":
            self.reads.pop(("read", op.op_id), None)
            self._complete(op, "fail")
        else:
            self._complete(op, "unknown")

    def on_write_outcome(self, op: Op, entry) -> None:
        """The node that took ``op`` applied ``entry`` at op's index."""
        if op.status != "pending":
            return
        mine = entry.term == op.term and entry.payload == encode_put(op.op_id, op.key, op.value)
        self._complete(op, "ok" if mine else "fail")

    def on_write_skipped(self, op: Op) -> None:
        """The node installed a snapshot covering op's index: what was applied there?"""
        if op.status != "pending":
            return
        rec = self.sim.checker.applied.get(op.index)
        if rec is None:
            self._complete(op, "unknown")
            return
        mine = rec[0] == op.term and rec[2] == encode_put(op.op_id, op.key, op.value)
        self._complete(op, "ok" if mine else "fail")

    def on_node_down(self, node_id: int, lost_writes: dict) -> None:
        for i in sorted(lost_writes):
            op = lost_writes[i]
            if op.status == "pending":
                self._complete(op, "unknown")
        for rid in sorted(r for r, op in self.reads.items() if op.node == node_id):
            op = self.reads.pop(rid)
            if op.status == "pending":
                self._complete(op, "fail")

    def on_read_ready(self, node_id: int, request_id, sm) -> None:
        op = self.reads.pop(request_id, None)
        if op is None or op.status != "pending":
            return
        self._complete(op, "ok", sm.kv.get(op.key))

    def on_respond(self, node_id: int, c) -> None:
        rid = c.request_id
        kind = rid[0] if isinstance(rid, tuple) else ""
        if kind == "read":
            op = self.reads.pop(rid, None)
            if op is not None and op.status == "pending":
                if isinstance(c.error, ForwardToLeader):
                    self.hint[op.client] = c.error.leader_id or 0
                self._complete(op, "fail")
        elif kind == "admin":
            name = ("ok" if c.error is None else type(c.error).__name__)
            self.admin_answers[name] = self.admin_answers.get(name, 0) + 1

    def on_state_changed(self, node_id: int, c) -> None:
        """Nothing to do: a write waits for its node to apply its index whatever the role."""

    def probe(self, node, value: str) -> Op | None:
        """The liveness probe: a put of ``value`` to key ``probe`` on ``node`` by client 0."""
        sim = self.sim
        self.next_op += 1
        op = Op(self.next_op, 0, "put", "probe", value, self._tick_order(), sim.q.now)
        op.node = node.id
        self.history.append(op)
        try:
            lid = node.call("propose", node.engine.propose,
                            [encode_put(op.op_id, op.key, op.value)])
        except (ForwardToLeader, LeaderTransferring):
            self._complete(op, "fail")
            return None
        op.index, op.term = lid.index, lid.term
        node.pending_writes[lid.index] = op
        return op

    # -- the operator ----------------------------------------------------------------------------

    def on_admin(self) -> None:
        sim = self.sim
        rng = sim.rng
        if not self.active:
            return
        sim.q.after(rng.expovariate(1.0 / sim.profile.admin_interval_s), ADMIN)
        up = [n for _, n in sorted(sim.nodes.items()) if n.up and sim.q.now >= n.paused_until]
        if not up:
            return
        kind = rng.choice(sorted(sim.opts.admin))
        leaders = [n for n in up if n.engine.role == Role.LEADER]
        leader = max(leaders, key=lambda n: n.engine.term) if leaders else None
        self.next_admin += 1
        rid = ("admin", self.next_admin, kind)
        node = rng.choice(up)
        e = node.engine
        if kind in ("add-learner", "change-membership", "transfer-leader"):
            if leader is None:
                return
            node, e = leader, leader.engine
        m = e.membership.membership
        if kind == "add-learner":
            outside = [i for i in sorted(sim.nodes) if i not in m.nodes]
            if not outside:
                return
            nid = rng.choice(outside)
            node.call("add_learner", e.add_learner, rid, nid, Node(f"127.0.0.1:{7000 + nid}"),
                      rng.random() < 0.5)
        elif kind == "change-membership":
            members = sorted(m.nodes)
            if not members:
                return
            lo = min(3, len(members)) if rng.random() < 0.8 else 1
            voters = rng.sample(members, rng.randint(lo, len(members)))
            node.call("change_membership", e.change_membership, rid, sorted(voters),
                      rng.random() < 0.5)
        elif kind == "transfer-leader":
            voters = sorted(i for i in m.voter_ids() if i != node.id)
            if not voters:
                return
            node.call("transfer_leader", e.transfer_leader, rid, rng.choice(voters))
        elif kind == "snapshot":
            node.call("trigger_snapshot", e.trigger_snapshot)
        elif kind == "purge":
            node.call("trigger_purge", e.trigger_purge, rng.randint(0, max(e.applied, 0)))
        else:
            node.call("trigger_elect", e.trigger_elect)
        self.admin_counts[kind] = self.admin_counts.get(kind, 0) + 1
        if sim.trace.on:
            sim.trace.emit(sim.q.now, node.who, f"admin {kind} {rid[1]}")
