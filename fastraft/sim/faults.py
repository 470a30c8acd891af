"""The fault schedule: at random intervals (drawn from the run's generator) one fault of an
enabled kind strikes, for a random duration.

* ``crash``: a node loses power; un-synced writes are lost (or, by chance, a prefix of them
  reached the disk) and it restarts with what is durable, at once (a supervised process) or
  after a while; a third of the crashes strike right after the node's next message leaves,
  a third strike the next node to win an election right after its first message;
* ``partition``: the nodes split into two random groups that cannot talk;
* ``isolate``: one node is cut off from every other;
* ``one-way``: some directed links fail while the reverse direction works;
* ``drop`` / ``duplicate`` / ``corrupt``: messages are lost, delivered twice, or altered
  (the codec must refuse every altered one);
* ``delay``: many messages take up to a few election timeouts (reordering them);
* ``pause``: a node freezes (a long garbage collection or a stopped VM): it handles nothing,
  its timers fire late, its clock keeps going;
* ``slow-disk``: a node's syncs take 25 times longer.

``quiet()`` ends every fault: links heal, crashed nodes restart, paused nodes resume.
"""

from __future__ import annotations

from .events import FAULT, RESTART

__all__ = ["FaultSchedule"]


class FaultSchedule:
    def __init__(self, sim) -> None:
        self.sim = sim
        self.kinds = sorted(sim.opts.faults)
        self.counts: dict[str, int] = {}
        self.active = True
        self.new_leader_crash: float | None = None  # armed: down time of the next new leader

    def start(self) -> None:
        if self.kinds:
            self._schedule_next()

    def _schedule_next(self) -> None:
        sim = self.sim
        sim.q.after(sim.rng.expovariate(1.0 / sim.profile.fault_interval_s), FAULT)

    def _duration(self) -> float:
        emin = self.sim.profile.config.election_timeout_min_s
        return self.sim.rng.uniform(0.2, 6.0) * emin

    def on_fault(self) -> None:
        if not self.active:
            return
        sim = self.sim
        rng = sim.rng
        self._schedule_next()
        kind = rng.choice(self.kinds)
        ids = sorted(sim.nodes)
        now = sim.q.now
        until = now + self._duration()
        net = sim.network
        if kind == "crash":
            up = [i for i in ids if sim.nodes[i].up]
            if not up:
                return
            victim = rng.choice(up)
            if rng.random() < 0.5:
                # a supervisor restarts the process at once: the node comes back within the
                # same election, which is where lost votes and acknowledgements bite
                until = now + rng.uniform(0.0, 2.0 * sim.profile.disk_sync_s[1])
            how = rng.random()
            if how < 1 / 3:
                # the crash strikes right after the node's next message leaves, the moment a
                # promise (a vote, an acknowledgement) is out and its write may not be durable
                sim.nodes[victim].crash_after_send = until - now
                what = f"node {victim} after its next send, down {until - now:.6f} s"
            elif how < 2 / 3:
                # the next node to win an election dies right after its first message: its
                # new entries reach at most one follower (Raft Figure 8 needs this)
                self.new_leader_crash = until - now
                what = f"the next new leader after its first send, down {until - now:.6f} s"
            else:
                self.crash_now(victim, until)
                what = f"node {victim} until {until:.6f}"
        elif kind == "partition":
            side = set(rng.sample(ids, rng.randint(1, len(ids) - 1)))
            pairs = [(a, b) for a in ids for b in ids if (a in side) != (b in side)]
            net.cut(pairs, until)
            what = f"{sorted(side)} | {[i for i in ids if i not in side]} until {until:.6f}"
        elif kind == "isolate":
            victim = rng.choice(ids)
            net.cut([(victim, b) for b in ids if b != victim]
                    + [(b, victim) for b in ids if b != victim], until)
            what = f"node {victim} until {until:.6f}"
        elif kind == "one-way":
            pairs = [(a, b) for a in ids for b in ids if a != b]
            chosen = rng.sample(pairs, rng.randint(1, max(1, len(pairs) // 3)))
            net.cut(chosen, until)
            what = " ".join(f"{a}->{b}" for a, b in sorted(chosen)) + f" until {until:.6f}"
        elif kind == "drop":
            net.drop_until = max(net.drop_until, until)
            what = f"until {until:.6f}"
        elif kind == "duplicate":
            net.dup_until = max(net.dup_until, until)
            what = f"until {until:.6f}"
        elif kind == "corrupt":
            net.corrupt_until = max(net.corrupt_until, until)
            what = f"until {until:.6f}"
        elif kind == "delay":
            net.delay_until = max(net.delay_until, until)
            what = f"until {until:.6f}"
        elif kind == "pause":
            victim = rng.choice(ids)
            node = sim.nodes[victim]
            if not node.up:
                return
            node.paused_until = max(node.paused_until, until)
            what = f"node {victim} until {until:.6f}"
        else:  # slow-disk
            victim = rng.choice(ids)
            sim.nodes[victim].slow_disk_until = max(sim.nodes[victim].slow_disk_until, until)
            what = f"node {victim} until {until:.6f}"
        self.counts[kind] = self.counts.get(kind, 0) + 1
        if sim.trace.on:
            sim.trace.emit(now, "--", f"fault {kind} {what}")

    def on_new_leader(self, node) -> None:
        """``node`` just won an election: strike it if a new-leader crash is armed."""
        if self.new_leader_crash is not None and self.active:
            node.crash_after_send = self.new_leader_crash
            self.new_leader_crash = None

    def crash_now(self, node_id: int, restart_at: float) -> None:
        self.sim.nodes[node_id].crash()
        self.sim.q.at(restart_at, RESTART, node_id)

    def on_restart(self, node_id: int) -> None:
        node = self.sim.nodes[node_id]
        if not node.up:
            node.start()

    def quiet(self) -> None:
        """End every fault and stop injecting new ones."""
        sim = self.sim
        self.active = False
        sim.network.heal()
        for i in sorted(sim.nodes):
            node = sim.nodes[i]
            node.paused_until = 0.0
            node.slow_disk_until = 0.0
            node.crash_after_send = None
            if not node.up:
                node.start()
        self.new_leader_crash = None
        if sim.trace.on:
            sim.trace.emit(sim.q.now, "--", "quiet: faults end, the network heals")
