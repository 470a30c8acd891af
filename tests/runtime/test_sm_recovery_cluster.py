"""The state machine off the sync path, in a real cluster: three node processes over TCP
with lmdb log stores and lmdb KV state machines whose applies are committed in the
background (``fastraft.kv.apply_buffer``), snapshots every few hundred entries and the log
purged right up to each one. Under a stream of client writes, random nodes (the leader or a
follower) are killed with SIGKILL, or their power is cut while they run
(``fastraft.testing.powerloss_fs``: unsynced writes undone at that instant, nothing after it
reaches the disk; then SIGKILL), and started again; at the end every node is crashed once more
right after a burst of writes. Then:

* on disk, each node's state machine is the replay of its committed log up to the applied
  index it reports (never a mix), and its log still holds every entry after that index, so
  nothing the state machine lost is gone from the log (the purge never passed a durable
  point);
* restarted, every node re-applies what it lost (``fastraft.runtime.startup``): every
  acknowledged write is readable on every node, and each state machine equals the replay
  of its log up to the leader's commit index (Raft §5.3 State Machine Safety, §7).

FASTRAFT_SM_RECOVERY_KILLS sets the kills per run (default 4); FASTRAFT_CRASH_SEED the seed.
"""

import os
import random
import threading
import time

import pytest
import trio

from fastraft.kv import LmdbKVStateMachine, MemoryKVStateMachine
from fastraft.kv.snapshot_format import read_snapshot
from fastraft.storage import LmdbLogStore
from fastraft.testing import free_ports
from fastraft.testing.powerloss_mount import PowerLossMount
from test_powerloss_cluster import leader_of, require_fuse
from test_runtime_processes import Proc

KILLS = int(os.environ.get("FASTRAFT_SM_RECOVERY_KILLS", "4"))
NODES = (1, 2, 3)
SNAPSHOT_EVERY = 300


class CrashableNode:
    """One node process; ``crash`` is SIGKILL, after a power cut when on a power-loss mount."""

    def __init__(self, tmp_path, node_id, nodes_arg, power, seed):
        self.id = node_id
        self.nodes_arg = nodes_arg
        self.log = str(tmp_path / f"node{node_id}.log")
        self.mount = None
        if power:
            self.mount = PowerLossMount(tmp_path / f"backing{node_id}",
                                        tmp_path / f"mnt{node_id}", seed=seed * 10 + node_id)
            self.mount.start()
            self.dir = str(self.mount.path)
        else:
            self.dir = str(tmp_path / f"node{node_id}")
        self.proc = None

    def start(self, init=False):
        self.proc = Proc(self.id, self.dir, self.nodes_arg, init, self.log,
                         extra=["--snapshot-every", str(SNAPSHOT_EVERY)])

    def alive(self):
        return self.proc is not None and self.proc.p.poll() is None

    def request(self, obj, timeout=10):
        try:
            return self.proc.request(obj, timeout)
        except Exception:  # a node killed meanwhile: the caller decides
            return None

    def crash(self, rng):
        """SIGKILL; on a power-loss mount, its power is cut first, while it runs, and it is
        mounted again afterwards. Returns the writes the cut undid."""
        if self.mount is None:
            if self.alive():
                self.proc.kill()
            return 0
        undone = self.mount.power_cut(rng.choice(["drop", "torn"]), [self.proc.p])
        self.proc.log.close()
        self.mount.start()
        return undone

    def stop(self):
        if self.alive():
            try:
                self.proc.exit()
            except Exception:
                self.proc.kill()
        if self.mount is not None:
            try:
                self.mount.stop()
            except Exception:
                self.mount._abort()


async def _pairs(sm):
    snap = await sm.build_snapshot()
    try:
        meta, pairs = read_snapshot(snap.data)
        return meta.last_log_id, sorted((bytes(k), bytes(v)) for k, v in pairs)
    finally:
        snap.close()


async def check_against_log(path, at_least=0):
    """Open a stopped node's stores: its state machine must equal a replay of its log (from
    its current snapshot, if the log was purged) up to the state machine's applied index,
    and the log must hold every entry after it. Returns (applied index, state as a dict)."""
    log = await LmdbLogStore.open(os.path.join(path, "log"))
    sm = await LmdbKVStateMachine.open(os.path.join(path, "sm"))
    ref = MemoryKVStateMachine()
    try:
        applied, _ = await sm.applied_state()
        index = 0 if applied is None else applied.index
        state = await log.get_log_state()
        purged = 0 if state.last_purged_log_id is None else state.last_purged_log_id.index
        last = 0 if state.last_log_id is None else state.last_log_id.index
        assert purged <= index <= last, f"{path}: applied {index} outside the log ({purged}, {last}]"
        start = 0
        snap = await sm.get_current_snapshot()
        if snap is not None:
            start = snap.meta.last_log_id.index
            assert start <= index
            sink = await ref.begin_receiving_snapshot()
            sink.write(snap.data.read())
            snap.close()
            await ref.install_snapshot(snap.meta, sink)
        assert start >= purged, f"{path}: the log was purged to {purged}, past the snapshot {start}"
        for lo in range(start + 1, index + 1, 512):
            entries = await log.read_entries(lo, min(index + 1, lo + 512))
            assert [e.index for e in entries] == list(range(lo, min(index + 1, lo + 512)))
            await ref.apply(entries)
        got, want = await _pairs(sm), await _pairs(ref)
        assert got[1] == want[1], f"{path}: the state machine is not the replay of its log to {index}"
        assert index >= at_least, f"{path}: applied {index}, expected at least {at_least}"
        return index, {k.decode(): v.decode() for k, v in got[1]}
    finally:
        await sm.aclose()
        await log.aclose()


def settle(nodes, timeout_s=60.0):
    """Wait until every node applied what the leader committed; returns that index."""
    leader = leader_of(nodes)
    target = leader.request({"cmd": "status"})["committed"]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        st = [x.request({"cmd": "status"}) for x in nodes.values()]
        if all(s is not None and s["applied"] >= target for s in st):
            return target
        time.sleep(0.05)
    raise AssertionError(f"the nodes did not apply {target} within {timeout_s} s: {st}")


def write_burst(leader, acked, counter, until=None, writes=300):
    """Sequential writes through ``leader``: until the thread ``until`` ended, or else
    ``writes`` of them (stopping at the first that fails); at most 2,000. Returns the log
    index of the last acknowledged write (0 if none)."""
    last = 0
    for i in range(2000):
        counter[0] += 1
        n = counter[0]
        reply = leader.request({"cmd": "write", "key": f"k{n}", "value": str(n)})
        if reply is not None and "ok" in reply:
            acked[f"k{n}"] = str(n)
            last = reply["log_id"][1]
        if until is not None:
            if not until.is_alive():
                return last
        elif reply is None or "ok" not in reply or i + 1 >= writes:
            return last
    return last


def run_crashes(tmp_path, power):
    seed = int(os.environ.get("FASTRAFT_CRASH_SEED", "20261207"))
    rng = random.Random(seed)
    ports = free_ports(3)
    nodes_arg = ",".join(f"{i}=127.0.0.1:{ports[i - 1]}" for i in NODES)
    nodes = {i: CrashableNode(tmp_path, i, nodes_arg, power, seed) for i in NODES}
    acked: dict = {}
    counter = [0]
    try:
        for i in NODES:
            nodes[i].start(init=i == 1)
        for _ in range(KILLS):
            leader = leader_of(nodes)
            victim = leader if rng.random() < 0.5 else rng.choice(
                [x for x in nodes.values() if x is not leader])
            timer = threading.Timer(rng.uniform(0.2, 0.8), lambda v=victim: v.crash(rng))
            timer.start()
            try:
                write_burst(leader, acked, counter, until=timer)
            finally:
                timer.join()
            victim.start()
        settle(nodes)
        # a last burst, then every node crashes with applies staged
        last_acked = write_burst(leader_of(nodes), acked, counter)
        for x in nodes.values():
            x.crash(rng)
        on_disk = [trio.run(check_against_log, x.dir)[0] for x in nodes.values()]
        # the leader had applied last_acked before answering it: some node lost applies,
        # so the restart below must re-apply them (the case this test guards)
        assert min(on_disk) < last_acked, (on_disk, last_acked)
        for i in NODES:
            nodes[i].start()
        target = settle(nodes)
        for x in nodes.values():
            lost = [k for k, v in acked.items() if x.request({"cmd": "get", "key": k}) != {"value": v}]
            assert not lost, f"node {x.id} lost {len(lost)} acknowledged writes: {lost[:5]}"
        for x in nodes.values():
            x.proc.exit()
        for x in nodes.values():
            index, state = trio.run(check_against_log, x.dir, target)
            assert all(state.get(k) == v for k, v in acked.items()), f"node {x.id}"
        assert len(acked) > SNAPSHOT_EVERY, len(acked)  # snapshots and purges happened
    finally:
        for x in nodes.values():
            x.stop()
    for x in nodes.values():
        with open(x.log) as f:
            assert "Traceback" not in f.read(), f"node {x.id} logged a traceback"


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_sigkill_under_load_state_machines_equal_their_logs(tmp_path):
    run_crashes(tmp_path, power=False)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_power_cuts_under_load_state_machines_equal_their_logs(tmp_path):
    require_fuse()
    run_crashes(tmp_path, power=True)


async def saved_committed(path):
    """The committed index a stopped node's log store holds (0 if none)."""
    log = await LmdbLogStore.open(os.path.join(path, "log"))
    try:
        committed = await log.read_committed()
        return 0 if committed is None else committed.index
    finally:
        await log.aclose()


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_a_node_restarted_alone_reapplies_every_entry_it_knew_committed(tmp_path):
    """The commit index rides with the appends (``LogStore.note_committed``, as etcd saves its
    HardState's commit with the entries of the same Ready; thesis §3.8: it may be lost, so
    this is about liveness, not safety). Each node reports the commit index it knows, one
    more write goes through (its append on every node carries that index), then every node
    is killed with SIGKILL while its state machine still holds applies it has not committed
    in the background. Restarted alone, with the other two down (no leader can be elected,
    so no leader can tell it the commit index, Raft §5.3), each node must re-apply from its
    own log every entry up to what it knew committed, and its state machine must be the
    replay of its log up to there."""
    seed = int(os.environ.get("FASTRAFT_CRASH_SEED", "20261207"))
    rng = random.Random(seed)
    ports = free_ports(3)
    nodes_arg = ",".join(f"{i}=127.0.0.1:{ports[i - 1]}" for i in NODES)
    nodes = {i: CrashableNode(tmp_path, i, nodes_arg, False, seed) for i in NODES}
    acked: dict = {}
    counter = [0]
    try:
        for i in NODES:
            nodes[i].start(init=i == 1)
        for attempt in range(5):  # bounded: until some state machine lost applies
            leader = leader_of(nodes)
            write_burst(leader, acked, counter, writes=200)
            knew = {x.id: x.request({"cmd": "status"})["committed"] for x in nodes.values()}
            last = write_burst(leader, acked, counter, writes=1)
            assert last > max(knew.values()), (last, knew)
            deadline = time.monotonic() + 30  # every node holds the last write's append
            while True:
                st = [x.request({"cmd": "status"}) for x in nodes.values()]
                if all(s is not None and s["applied"] >= last for s in st):
                    break
                assert time.monotonic() < deadline, f"not every node applied {last}: {st}"
                time.sleep(0.005)
            for x in nodes.values():
                x.crash(rng)
            on_disk = {x.id: trio.run(check_against_log, x.dir)[0] for x in nodes.values()}
            for x in nodes.values():
                saved = trio.run(saved_committed, x.dir)
                assert saved >= knew[x.id], f"node {x.id} saved committed {saved} < {knew[x.id]}"
            if any(on_disk[i] < knew[i] for i in NODES):
                break
            for x in nodes.values():  # nothing was lost this time: again
                x.start()
        else:
            pytest.fail(f"no state machine lost an apply in 5 tries: {on_disk} {knew}")
        for x in nodes.values():  # each alone, the others down
            x.start()
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                st = x.request({"cmd": "status"})
                if st is not None and st["applied"] >= knew[x.id]:
                    break
                time.sleep(0.05)
            assert st is not None and st["applied"] >= knew[x.id], (
                f"node {x.id} restarted alone applied {st and st['applied']}, but knew "
                f"{knew[x.id]} committed (its state machine had {on_disk[x.id]} on disk)")
            assert st["leader"] is None, st  # no leader told it anything
            x.proc.exit()
            trio.run(check_against_log, x.dir, knew[x.id])
    finally:
        for x in nodes.values():
            x.stop()
