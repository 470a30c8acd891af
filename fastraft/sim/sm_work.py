"""A simulated node's state-machine work: one FIFO queue, as the runtime contract asks
(``ApplyEntries``, ``BuildSnapshot``, ``SaveSnapshotChunk``, ``InstallSnapshot`` in order among
themselves), each item taking simulated time; a ``ReadReady`` is served when the queue reaches
it, so a read sees every apply emitted before it.

Checks made here: entries are applied at applied + 1 only and only once committed, a read is
served only once its read index is applied, a snapshot's state is the state its index was
applied with.
"""

from __future__ import annotations

from fastraft.core import ApplyEntries, BuildSnapshot, InstallSnapshot, ReadReady, SaveSnapshotChunk
from fastraft.errors import CodecError
from fastraft.types import SnapshotMeta

from .checkers import Violation
from .events import SM
from .state_machine import KVStateMachine

__all__ = ["StateMachineWork"]


class StateMachineWork:
    """Mixed into ``SimNode``: uses its ``sim``, ``engine``, ``disk``, ``sm``, ``sm_queue``,
    ``sm_busy``, ``receiving``, ``receiving_id``, ``pending_writes`` and ``call``."""

    def _sm_push(self, c) -> None:
        self.sm_queue.append(c)
        if not self.sm_busy:
            self._sm_next()

    def _sm_next(self) -> None:
        sim = self.sim
        while self.sm_queue and type(self.sm_queue[0]) is ReadReady:
            self._serve_read(self.sm_queue.popleft())  # a read costs no state-machine time
        if not self.sm_queue:
            return
        self.sm_busy = True
        lo, hi = sim.profile.sm_op_s
        delay = sim.rng.uniform(lo, hi)
        if type(self.sm_queue[0]) in (BuildSnapshot, InstallSnapshot):
            delay = delay * 10 + sim.rng.uniform(*sim.profile.disk_sync_s)
        sim.q.after(delay, SM, self.id, self.incarnation)

    def on_sm(self) -> None:
        self.sm_busy = False
        c = self.sm_queue.popleft()
        t = type(c)
        if t is ApplyEntries:
            self._apply(c)
        elif t is BuildSnapshot:
            self._build_snapshot()
        elif t is SaveSnapshotChunk:
            if c.offset == 0:
                self.receiving = bytearray()
                self.receiving_id = c.snapshot_id
            if c.snapshot_id != self.receiving_id or c.offset != len(self.receiving):
                raise Violation("command-contract", f"node {self.id} snapshot chunk "
                                f"{c.snapshot_id}@{c.offset} does not continue "
                                f"{self.receiving_id}@{len(self.receiving)}")
            self.receiving += c.data
        else:
            self._install_snapshot(c)
        if self.engine is not None and not self.sm_busy:
            self._sm_next()

    def _apply(self, c: ApplyEntries) -> None:
        sim = self.sim
        ents = c.entries
        if ents is None:
            ents = self.disk.log.read(c.lo, c.hi)
        if c.lo != self.sm.applied + 1 or len(ents) != c.hi - c.lo:
            raise Violation("command-contract", f"node {self.id} ApplyEntries [{c.lo}, {c.hi}) "
                            f"but the state machine is at {self.sm.applied} and the log holds "
                            f"{len(ents)} of them")
        for en in ents:
            self.sm.apply(en)
            sim.checker.on_applied(self.id, en, self.sm.digest)
            op = self.pending_writes.pop(en.index, None)
            if op is not None:
                sim.workload.on_write_outcome(op, en)

    def _build_snapshot(self) -> None:
        sm = self.sm
        self.snapshots_built += 1
        meta = SnapshotMeta(sm.applied_id, sm.membership,
                            f"s{self.id}.{self.incarnation}.{self.snapshots_built}")
        if meta.last_log_id is not None:
            self.disk.save_snapshot(meta, sm.to_bytes())
            self.sim.count("snapshot-built")
        self.call("on_snapshot_built", self.engine.on_snapshot_built, meta)

    def _install_snapshot(self, c: InstallSnapshot) -> None:
        meta = c.meta
        if meta.snapshot_id != self.receiving_id:
            raise Violation("command-contract", f"node {self.id} installs {meta.snapshot_id} "
                            f"but received {self.receiving_id}")
        data = bytes(self.receiving)
        try:
            sm = KVStateMachine.from_bytes(data)
        except CodecError as exc:
            raise Violation("command-contract", f"node {self.id} snapshot {meta.snapshot_id} "
                            f"does not decode: {exc}") from exc
        if sm.applied_id != meta.last_log_id:
            raise Violation("command-contract", f"node {self.id} snapshot {meta.snapshot_id} "
                            f"holds {sm.applied_id}, its meta says {meta.last_log_id}")
        rec = self.sim.checker.applied.get(sm.applied)
        if rec is not None and (rec[0], rec[3]) != (sm.applied_term, sm.digest):
            self.sim.checker.fail("state-machine-safety", f"node {self.id} installs a snapshot "
                                  f"at {sm.applied} whose state differs from what was applied")
        self.sm = sm
        self.disk.save_snapshot(meta, data)
        self.sim.count("snapshot-installed")
        self.receiving = bytearray()
        self.receiving_id = None
        skipped = sorted(i for i in self.pending_writes if i <= sm.applied)
        for i in skipped:
            self.sim.workload.on_write_skipped(self.pending_writes.pop(i))
        self.call("on_snapshot_installed", self.engine.on_snapshot_installed, meta)

    def _serve_read(self, c: ReadReady) -> None:
        if self.sm.applied < c.read_index:
            raise Violation("command-contract", f"node {self.id} read {c.request_id} ready at "
                            f"{c.read_index}, the state machine applied {self.sm.applied}")
        self.sim.count("read-served")
        self.sim.workload.on_read_ready(self.id, c.request_id, self.sm)
