"""One simulated node: the real engine, executed as a runtime would, over simulated storage.

``SimNode`` feeds the engine its inputs (always ``tick(local_now)`` first) and executes every
command it emits, honouring the ordering a runtime owes the engine (``fastraft.core.commands``):
log writes go to the node's ``SimDisk`` in order and are reported once a simulated sync makes
them durable; state-machine work (apply, build, chunks, install, served reads) runs through one
FIFO queue with simulated latency; messages go to the network. Each node has its own clock
(rate and offset), so timers drift apart.

Checks made here, at the moment they can be made: durable-before-send (a message's term, a
granted vote, acknowledged entries), the storage command contract, truncation of committed
entries, and what the state machine applies.
"""

from __future__ import annotations

from collections import deque

from fastraft import accel
from fastraft.core import (AppendLog, ApplyEntries, BuildSnapshot, Engine, InitialState,
                           InstallSnapshot, MembershipChanged, PurgeLog, ReadLog, ReadReady,
                           ReadSnapshotChunk, Respond, Role, SaveSnapshotChunk, SaveVote,
                           SendMessage, StateChanged, TruncateLog)
from fastraft.errors import CodecError
from fastraft.messages import AppendEntriesResponse, VoteRequest, VoteResponse
from fastraft.types import StoredMembership

from .checkers import Violation
from .disk import ContractError, SimDisk
from .events import READ_CHUNK, READ_LOG, SYNC, TICK
from .sm_work import StateMachineWork
from .state_machine import KVStateMachine
from .trace import render_command, render_message

__all__ = ["SimNode"]

codec = accel.codec
_INF = float("inf")


class SimNode(StateMachineWork):
    """Node ``node_id`` of simulation ``sim``; ``engine`` is None while the node is down."""

    def __init__(self, sim, node_id: int, rate: float, offset_s: float) -> None:
        self.sim = sim
        self.id = node_id
        self.who = f"n{node_id}"
        self.rate = rate
        self.offset_s = offset_s
        self.disk = SimDisk(sim.profile.durable_sm)
        self.engine: Engine | None = None
        self.incarnation = 0
        self.sm = KVStateMachine()
        self.sm_queue: deque = deque()
        self.sm_busy = False
        self.receiving = bytearray()
        self.receiving_id: str | None = None
        self.tick_token = 0
        self.tick_at = _INF
        self.sync_scheduled = False
        self.log_version = 0
        self.paused_until = 0.0
        self.slow_disk_until = 0.0
        self.pending_writes: dict[int, object] = {}  # log index -> client op
        self.crash_after_send: float | None = None  # armed: down time after the next send
        self.snapshots_built = 0

    # -- time ------------------------------------------------------------------------------------

    def local(self, t: float) -> float:
        return self.offset_s + self.rate * t

    @property
    def up(self) -> bool:
        return self.engine is not None

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> None:
        """Build an engine from what the disk holds (a restart, or the first start)."""
        sim = self.sim
        log, meta = self.disk.recover()
        if not self.disk.durable_sm:
            # a volatile state machine comes back from the snapshot, or empty
            self.sm = (KVStateMachine.from_bytes(self.disk.snapshot[1]) if meta is not None
                       else KVStateMachine())
        # the effective membership is the last in the log after the snapshot, and the one
        # before it the previous one (at most the last can be uncommitted, thesis §4.1)
        s_index = meta.last_log_id.index if meta is not None and meta.last_log_id else 0
        base = meta.last_membership if meta is not None else StoredMembership()
        mems = [base] + log.memberships(after=s_index)
        state = InitialState(vote=self.disk.durable_vote, purged=log.purged,
                             log_runs=log.term_runs(), applied=self.sm.applied,
                             membership=mems[-1],
                             prev_membership=mems[-2] if len(mems) > 1 else mems[-1],
                             snapshot=meta)
        self.incarnation += 1
        self.log_version += 1
        seed = sim.rng.getrandbits(32)
        if sim.trace.on:
            sim.trace.emit(sim.q.now, self.who, f"start #{self.incarnation} vote="
                           f"{state.vote.term}/{state.vote.node_id} log={log.purged_index}.."
                           f"{log.last_index} applied={self.sm.applied}")
        try:
            self.engine = Engine(self.id, sim.profile.config, seed, state,
                                 now=self.local(sim.q.now))
        except Exception as e:  # noqa: BLE001 - any failure to start is the finding
            raise Violation("engine-error", f"node {self.id} failed to start: {e!r}") from e
        sim.checker.forget(self.id)
        sim.dirty.add(self.id)
        self.drain()

    def crash(self) -> None:
        """Power loss: the engine, the state machine's queue and everything not durable go."""
        sim = self.sim
        keep = 0
        if self.disk.pending and sim.rng.random() < sim.profile.keep_pending_p:
            keep = sim.rng.randint(0, len(self.disk.pending))
        if sim.trace.on:
            sim.trace.emit(sim.q.now, self.who, f"crash (lost {len(self.disk.pending) - keep} "
                           f"un-synced writes, kept {keep})")
        self.disk.crash(keep)
        sim.checker.on_durable_vote(self.id, self.disk.durable_vote)
        self.engine = None
        self.sm_queue.clear()
        self.sm_busy = False
        self.receiving = bytearray()
        self.receiving_id = None
        self.tick_token += 1
        self.tick_at = _INF
        self.sync_scheduled = False
        self.paused_until = 0.0
        self.crash_after_send = None
        self.log_version += 1
        lost = self.pending_writes
        self.pending_writes = {}
        sim.workload.on_node_down(self.id, lost)

    # -- inputs ----------------------------------------------------------------------------------

    def call(self, what: str, fn, *args):
        """Call an engine input after ticking it to the current time, then execute what it
        emitted. Exceptions the engine documents for the input (``sim.expected_errors``) are
        the caller's; anything else is a finding."""
        sim = self.sim
        sim.dirty.add(self.id)
        try:
            self.engine.tick(self.local(sim.q.now))
            result = fn(*args)
        except sim.expected_errors:
            self.drain()
            raise
        except Violation:
            raise
        except Exception as exc:  # noqa: BLE001
            raise Violation("engine-error", f"node {self.id} {what} raised {exc!r}") from exc
        self.drain()
        return result

    def on_tick(self, token: int) -> None:
        if token != self.tick_token or self.engine is None:
            return
        self.tick_at = _INF
        self.call("tick", lambda: None)

    def deliver(self, frm: int, data: bytes) -> None:
        try:
            msg = codec.decode_message(data)
        except CodecError:
            self.sim.count("corrupt-refused")
            if self.sim.trace.on:
                self.sim.trace.emit(self.sim.q.now, self.who, f"refused corrupt message from {frm}")
            return
        except Exception as exc:  # noqa: BLE001
            raise Violation("codec", f"decoding a message from {frm} raised {exc!r}") from exc
        if self.sim.trace.on:
            self.sim.trace.emit(self.sim.q.now, self.who, "recv " + render_message(msg))
        self.call("step", self.engine.step, msg)

    # -- commands --------------------------------------------------------------------------------

    def drain(self) -> None:
        e = self.engine
        while e is not None and self.engine is e:
            cmds = e.take_commands()
            if not cmds:
                break
            for c in cmds:
                if self.engine is not e:
                    return
                self.execute(c)
        if self.engine is not None:
            self._reschedule_tick()

    def _reschedule_tick(self) -> None:
        d = self.engine.next_deadline()
        if d == _INF:
            return
        sim = self.sim
        now = sim.q.now
        t = (d - self.offset_s) / self.rate
        if now < self.tick_at <= t:
            return  # a tick is due no later than needed
        t = max(t, now) + sim.rng.uniform(1e-6, sim.profile.tick_jitter_s)
        self.tick_token += 1
        self.tick_at = t
        sim.q.at(t, TICK, self.id, self.tick_token)

    def execute(self, c) -> None:
        sim = self.sim
        if sim.trace.on and type(c) is not SendMessage:
            sim.trace.emit(sim.q.now, self.who, render_command(c))
        t = type(c)
        try:
            if t is SendMessage:
                self._send(c)
            elif t is AppendLog:
                sim.checker.on_appended(self.id, c.entries)
                self.disk.append(c.entries, c.last_log_id)
                self.log_version += 1
                self._maybe_sync()
            elif t is SaveVote:
                self.disk.save_vote(c.vote)
                self._maybe_sync()
            elif t is TruncateLog:
                sim.count("truncate")
                sim.checker.on_truncate(self.id, c.since, self.disk.log, self._covered(),
                                         self.engine.term)
                self.disk.truncate(c.since)
                self.log_version += 1
                self._maybe_sync()
            elif t is PurgeLog:
                sim.count("purge")
                self.disk.purge(c.upto)
                self.log_version += 1
                self._maybe_sync()
            elif t in (ApplyEntries, BuildSnapshot, SaveSnapshotChunk, InstallSnapshot):
                self._sm_push(c)
            elif t is ReadReady:
                self._sm_push(c)
            elif t is ReadLog:
                sim.q.after(sim.rng.uniform(*sim.profile.sm_op_s), READ_LOG, self.id,
                            self.incarnation, c)
            elif t is ReadSnapshotChunk:
                sim.q.after(sim.rng.uniform(*sim.profile.sm_op_s), READ_CHUNK, self.id,
                            self.incarnation, c)
            elif t is Respond:
                sim.workload.on_respond(self.id, c)
            elif t is StateChanged:
                if c.role == Role.LEADER:
                    sim.count("leader-elected")
                    sim.faults.on_new_leader(self)
                sim.workload.on_state_changed(self.id, c)
            else:
                assert t is MembershipChanged, t
                if c.membership.membership.is_joint:
                    sim.count("joint-config")
        except ContractError as exc:
            raise Violation("command-contract", f"node {self.id}: {exc}") from exc

    def _send(self, c: SendMessage) -> None:
        msg = c.msg
        disk = self.disk
        t = type(msg)
        pre_vote = (t is VoteRequest or t is VoteResponse) and msg.pre_vote
        if not pre_vote and msg.term > disk.durable_vote.term:
            self.sim.checker.fail("durable-before-send", f"node {self.id} sends term {msg.term} "
                                  f"to {c.to}, its durable term is {disk.durable_vote.term}")
        if t is VoteResponse and msg.granted and not msg.pre_vote:
            v = disk.durable_vote
            if v.term != msg.term or v.node_id != c.to:
                self.sim.checker.fail("durable-before-send", f"node {self.id} grants its vote "
                                      f"in term {msg.term} to {c.to}, its durable vote is "
                                      f"{v.term}/{v.node_id}")
        elif t is AppendEntriesResponse and msg.success:
            self._check_ack_durable(c.to, msg.match_index)
        self.sim.network.send(self.id, c.to, msg)
        if self.crash_after_send is not None:
            self.sim.crash_at_step_end[self.id] = self.crash_after_send
            self.crash_after_send = None

    def _covered(self) -> int:
        """The last index the durable log or the durable snapshot holds for sure."""
        disk = self.disk
        snap = disk.snapshot
        covered = disk.durable_log.purged_index
        if snap is not None and snap[0].last_log_id is not None:
            covered = max(covered, snap[0].last_log_id.index)
        return covered

    def _check_ack_durable(self, to: int, match: int) -> None:
        disk = self.disk
        if match <= self._covered():
            return
        if disk.durable_log.term_at(match) != disk.log.term_at(match):
            self.sim.checker.fail("durable-before-send", f"node {self.id} acknowledges entries "
                                  f"up to {match} to {to}, durable only up to "
                                  f"{disk.durable_log.last_index}")

    # -- the log device --------------------------------------------------------------------------

    def _maybe_sync(self) -> None:
        if self.sync_scheduled or not self.disk.pending:
            return
        sim = self.sim
        self.sync_scheduled = True
        delay = sim.rng.uniform(*sim.profile.disk_sync_s)
        if sim.q.now < self.slow_disk_until:
            delay *= 25
        sim.q.after(delay, SYNC, self.id, self.incarnation, len(self.disk.pending))

    def on_sync(self, n: int) -> None:
        self.sync_scheduled = False
        vote, flushed = self.disk.sync_upto(n)
        sim = self.sim
        if sim.trace.on:
            sim.trace.emit(sim.q.now, self.who, f"synced {n} writes vote={vote and vote.term}/"
                           f"{vote and vote.node_id} flushed={flushed and flushed.index}")
        if vote is not None:
            sim.checker.on_durable_vote(self.id, self.disk.durable_vote)
            self.call("on_vote_saved", self.engine.on_vote_saved, vote)
        if flushed is not None and self.engine is not None:
            self.call("on_log_flushed", self.engine.on_log_flushed, flushed)
        if self.engine is not None:
            self._maybe_sync()

    def on_read_log(self, c: ReadLog) -> None:
        entries = self.disk.log.read(c.lo, c.hi)
        self.call("on_entries_read", self.engine.on_entries_read, c.node_id, c.lo, entries)

    def on_read_chunk(self, c: ReadSnapshotChunk) -> None:
        snap = self.disk.snapshot
        if snap is None or snap[0].snapshot_id != c.snapshot_id:
            data, done = None, False
        else:
            data = snap[1][c.offset:c.offset + c.max_bytes]
            done = c.offset + len(data) >= len(snap[1])
        self.call("on_snapshot_chunk_read", self.engine.on_snapshot_chunk_read, c.node_id,
                  c.snapshot_id, c.offset, data, done)
