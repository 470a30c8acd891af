"""A deterministic in-memory cluster of engines for tests: storage in dicts, messages in one
FIFO, time advanced by hand, the simulator's safety checker (``fastraft.sim.checkers``) run
after every step.

Each node executes its engine's commands at once: votes and entries are "durable" when the
command runs, unless ``hold_flush`` is set for the node (then ``flush(node)`` reports them),
so tests can see what waits for durability. Messages pass through the codec, so what the
engine sends is what the wire can carry.
"""

from __future__ import annotations

import json

from fastraft import accel
from fastraft.core import (AppendLog, ApplyEntries, BuildSnapshot, Config, Engine,
                           InitialState, InstallSnapshot, MembershipChanged, PurgeLog, ReadLog,
                           ReadReady, ReadSnapshotChunk, Respond, SaveSnapshotChunk, SaveVote,
                           SendMessage, StateChanged, TruncateLog)
from fastraft.core.state import Role, scan_term_runs
from fastraft.sim.checkers import SafetyChecker
from fastraft.sim.disk import LogImage
from fastraft.types import (EntryKind, LogId, Membership, Node, SnapshotMeta,
                            StoredMembership, Vote)

codec = accel.codec

# Tests drive at most this many delivery rounds before they call a cluster stuck.
MAX_ROUNDS = 2000


def fast_config(**kw) -> Config:
    """Defaults for tests: openraft's timing, small batches so flow control shows."""
    base = dict(heartbeat_interval_ms=50, election_timeout_min_ms=150,
                election_timeout_max_ms=300, max_payload_entries=20, max_inflight=4,
                snapshot_policy_logs_since_last=0)
    base.update(kw)
    return Config(**base)


class Store:
    """One node's durable state: vote, log, snapshot, state machine."""

    def __init__(self):
        self.vote = None
        self.log: dict = {}
        self.purged: LogId | None = None
        self.applied: list = []  # (index, term, kind, payload)
        self.applied_index = 0
        self.membership = StoredMembership()
        self.prev_membership = StoredMembership()
        self.snapshot: tuple | None = None  # (meta, data)
        self.receiving: bytearray = bytearray()
        self.durable_log: dict = {}  # the log as of the last reported flush
        self.durable_purged: LogId | None = None

    def log_image(self) -> LogImage:
        """The stored log as the safety checker reads it."""
        return LogImage(self.purged, [self.log[k] for k in sorted(self.log)])

    def covered(self) -> int:
        """The last index the purged log or the snapshot replaces."""
        snap = self.snapshot[0].last_log_id.index if self.snapshot else 0
        return max(self.purged.index if self.purged else 0, snap)

    def state_bytes(self) -> bytes:
        doc = {"applied": [[i, t, k, p.hex()] for i, t, k, p in self.applied],
               "membership": [self.membership.log_id.term, self.membership.log_id.index,
                              self.membership.membership.to_bytes().decode()]
               if self.membership.log_id else None}
        return json.dumps(doc).encode()

    def load_state(self, data: bytes) -> None:
        doc = json.loads(data)
        self.applied = [(i, t, k, bytes.fromhex(p)) for i, t, k, p in doc["applied"]]

    def initial_state(self) -> InitialState:
        last = max(self.log) if self.log else (self.purged.index if self.purged else 0)
        first = (self.purged.index if self.purged else 0) + 1
        runs = scan_term_runs(first, last, lambda i: self.log[i].term)
        snap = self.snapshot[0] if self.snapshot else None
        # the last membership in the log (or the snapshot), and the one before it
        mems = [StoredMembership(LogId(e.term, e.index), Membership.from_bytes(e.payload))
                for i, e in sorted(self.log.items()) if e.kind == EntryKind.MEMBERSHIP]
        if snap is not None:
            mems.insert(0, snap.last_membership)
        cur = mems[-1] if mems else StoredMembership()
        prev = mems[-2] if len(mems) > 1 else cur
        return InitialState(vote=self.vote or InitialState().vote, purged=self.purged,
                            log_runs=runs, applied=self.applied_index,
                            membership=cur, prev_membership=prev, snapshot=snap)


class Cluster:
    """Nodes 1..n (``voters`` of them vote, the rest are learners), all initialized with the
    same membership, none elected yet."""

    def __init__(self, n=3, voters=None, config=None, seed=1, init=True, check=True,
                 engine_class=Engine):
        self.config = config or fast_config()
        self.Engine = engine_class  # the class every node runs (a flavour of primitives)
        self.now = 0.0
        self.seed = seed
        self.ids = list(range(1, n + 1))
        self.stores = {i: Store() for i in self.ids}
        self.engines = {i: self.Engine(i, self.config, seed * 1000 + i) for i in self.ids}
        self.net: list = []  # (frm, to, encoded message)
        self.cut: set = set()  # (frm, to) pairs whose messages are dropped
        self.hold_flush: set = set()
        self.pending_flush: dict = {}
        self.responses: dict = {i: [] for i in self.ids}
        self.reads: dict = {i: [] for i in self.ids}
        self.sent: list = []  # every (frm, to, message) handed to the network
        self.checker = SafetyChecker()
        self.check_enabled = check
        self.down: set = set()
        if init:
            voters = self.ids if voters is None else voters
            nodes = {i: Node(f"127.0.0.1:{7000 + i}") for i in self.ids}
            m = Membership.uniform(nodes, voters)
            for i in self.ids:
                self._initialize(i, m)
        self.run_commands()

    def _initialize(self, i, m: Membership):
        """The same membership everywhere, so the entry (1, 1) is identical on every node."""
        if m.configs[0] == frozenset(m.nodes):
            self.engines[i].initialize(("init", i), dict(m.nodes))
            return
        # initialize() makes every node a voter; a membership with learners is started from
        # storage holding that first entry, as a restarted node would be
        st = self.stores[i]
        st.vote = Vote(1, 0)
        st.log = {1: accel.entry.Entry(1, 1, EntryKind.MEMBERSHIP, m.to_bytes())}
        self.engines[i] = self.Engine(i, self.config, self.seed * 1000 + i,
                                      st.initial_state(), now=self.now)

    # -- driving ---------------------------------------------------------------------------------

    def engine(self, i) -> Engine:
        return self.engines[i]

    def check(self):
        if self.check_enabled:
            self.checker.check_engines(self.engines[i] for i in self.ids if i not in self.down)

    def run_commands(self):
        """Execute every node's pending commands (and what they trigger) until none is left."""
        for _ in range(MAX_ROUNDS):
            busy = False
            for i in self.ids:
                if i in self.down:
                    continue
                cmds = self.engines[i].take_commands()
                if cmds:
                    busy = True
                    # the engine's state as its commands leave it, before the state machine
                    # applies what they say is committed
                    self.check()
                    for c in cmds:
                        self._execute(i, c)
                    self.check()
            if not busy:
                return
        raise AssertionError("commands did not settle")

    def _execute(self, i, c):
        e, st = self.engines[i], self.stores[i]
        t = type(c)
        if t is SendMessage:
            data = codec.encode_message(c.msg)
            self.sent.append((i, c.to, c.msg))
            if (i, c.to) not in self.cut and c.to in self.engines:
                self.net.append((i, c.to, data))
        elif t is SaveVote:
            st.vote = c.vote
            e.on_vote_saved(c.vote)
        elif t is AppendLog:
            for en in c.entries:
                st.log[en.index] = en
            if i in self.hold_flush:
                self.pending_flush[i] = c.last_log_id
            else:
                self._report_flush(i, c.last_log_id)
        elif t is TruncateLog:
            if self.check_enabled:
                self.checker.on_truncate(i, c.since, st.log_image(), st.covered(), e.term)
            for k in [k for k in st.log if k >= c.since]:
                del st.log[k]
        elif t is PurgeLog:
            for k in [k for k in st.log if k <= c.upto.index]:
                del st.log[k]
            st.purged = c.upto
        elif t is ApplyEntries:
            ents = c.entries if c.entries is not None else [st.log[k] for k in range(c.lo, c.hi)]
            assert [en.index for en in ents] == list(range(c.lo, c.hi))
            assert c.lo == st.applied_index + 1, (c.lo, st.applied_index)
            for en in ents:
                st.applied.append((en.index, en.term, en.kind, en.payload))
                if en.kind == EntryKind.MEMBERSHIP:
                    st.membership = StoredMembership(LogId(en.term, en.index),
                                                     Membership.from_bytes(en.payload))
            st.applied_index = c.hi - 1
            for en in ents:
                self.checker.on_applied(i, en, b"")
        elif t is BuildSnapshot:
            idx = st.applied_index
            term = st.applied[-1][1] if st.applied else (st.snapshot[0].last_log_id.term
                                                          if st.snapshot else 0)
            meta = SnapshotMeta(LogId(term, idx), st.membership, f"snap-{i}-{idx}")
            st.snapshot = (meta, st.state_bytes())
            e.on_snapshot_built(meta)
        elif t is SaveSnapshotChunk:
            if c.offset == 0:
                st.receiving = bytearray()
            assert c.offset == len(st.receiving)
            st.receiving += c.data
        elif t is InstallSnapshot:
            data = bytes(st.receiving)
            st.load_state(data)
            st.applied_index = c.meta.last_log_id.index
            st.membership = c.meta.last_membership
            st.snapshot = (c.meta, data)
            e.on_snapshot_installed(c.meta)
        elif t is ReadLog:
            ents = []
            for k in range(c.lo, c.hi):
                if k not in st.log:
                    break
                ents.append(st.log[k])
            e.on_entries_read(c.node_id, c.lo, ents)
        elif t is ReadSnapshotChunk:
            if st.snapshot is None or st.snapshot[0].snapshot_id != c.snapshot_id:
                e.on_snapshot_chunk_read(c.node_id, c.snapshot_id, c.offset, None, False)
            else:
                data = st.snapshot[1]
                chunk = data[c.offset:c.offset + c.max_bytes]
                e.on_snapshot_chunk_read(c.node_id, c.snapshot_id, c.offset, chunk,
                                         c.offset + len(chunk) >= len(data))
        elif t is Respond:
            self.responses[i].append(c)
        elif t is ReadReady:
            assert st.applied_index >= c.read_index
            self.reads[i].append(c)
        else:
            assert t in (StateChanged, MembershipChanged), t

    def _report_flush(self, i, lid):
        st = self.stores[i]
        if i in self.hold_flush:
            st.durable_log = dict(st.log)
            st.durable_purged = st.purged
        self.engines[i].on_log_flushed(lid)

    def flush(self, i):
        """Report node i's held log writes as durable."""
        lid = self.pending_flush.pop(i, None)
        if lid is not None:
            self._report_flush(i, lid)
        self.run_commands()

    def deliver(self, limit=None) -> int:
        """Deliver the messages in flight now (in order), then run the commands; returns how
        many were delivered."""
        batch = self.net if limit is None else self.net[:limit]
        self.net = [] if limit is None else self.net[limit:]
        for frm, to, data in batch:
            if to in self.down or (frm, to) in self.cut:
                continue
            self.engines[to].step(codec.decode_message(data))
            self.run_commands()
        return len(batch)

    def stabilize(self):
        """Deliver until no message is in flight (bounded)."""
        for _ in range(MAX_ROUNDS):
            self.run_commands()
            if not self.net:
                return
            self.deliver()
        raise AssertionError("messages did not settle")

    def tick(self, dt: float):
        """Advance time by dt seconds for every node up."""
        self.now += dt
        for i in self.ids:
            if i not in self.down:
                self.engines[i].tick(self.now)
        self.run_commands()

    def advance(self, seconds: float, step: float = 0.01):
        """Advance time in small steps, delivering messages in between (bounded)."""
        n = int(round(seconds / step))
        for _ in range(n):
            self.tick(step)
            self.stabilize()

    def elect(self, i) -> Engine:
        self.engines[i].trigger_elect()
        self.run_commands()
        self.stabilize()
        assert self.engines[i].role == Role.LEADER, self.engines[i]
        return self.engines[i]

    def leader(self):
        ls = [e for i, e in self.engines.items() if i not in self.down and e.role == Role.LEADER]
        if not ls:
            return None
        return max(ls, key=lambda e: e.term)

    def propose(self, i, payloads):
        lid = self.engines[i].propose(payloads)
        self.run_commands()
        return lid

    def isolate(self, i):
        for j in self.ids:
            if j != i:
                self.cut.add((i, j))
                self.cut.add((j, i))

    def heal(self):
        self.cut.clear()

    def crash(self, i):
        """Node i loses everything not durable: its engine, messages to and from it, and, if
        its flushes are held, the log writes not reported durable."""
        self.down.add(i)
        self.net = [m for m in self.net if m[1] != i and m[0] != i]
        if i in self.hold_flush:
            st = self.stores[i]
            st.log = dict(st.durable_log)
            if st.purged != st.durable_purged and st.durable_purged is not None:
                st.purged = st.durable_purged
        self.pending_flush.pop(i, None)

    def restart(self, i):
        st = self.stores[i]
        if st.snapshot is not None:
            st.load_state(st.snapshot[1])
            st.applied_index = st.snapshot[0].last_log_id.index
            st.applied = [a for a in st.applied if a[0] <= st.applied_index]
        else:
            st.applied, st.applied_index = [], 0
        self.engines[i] = self.Engine(i, self.config, self.seed * 1000 + i + 7,
                                      st.initial_state(), now=self.now)
        self.checker.forget(i)
        self.down.discard(i)
        self.run_commands()

    def applied_payloads(self, i):
        return [p for _, _, k, p in self.stores[i].applied if k == EntryKind.NORMAL]
