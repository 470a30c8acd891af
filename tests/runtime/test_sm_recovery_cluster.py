"""The state machine off the sync path, in a real cluster: three node processes over TCP
with lmdb log stores and lmdb KV state machines whose applies are committed in the
background (``fastraft.kv.apply_buffer``), snapshots every few hundred entries and the log
purged right up to each one. Under a stream of client writes, random nodes (the leader or a
follower) are killed with SIGKILL, or their power is cut while they run
(``fastraft.testing.powerloss_fs``: unsynced writes undone at that instant, nothing after it
reaches the disk; then SIGKILL), and started again, with IN_FLIGHT writes under way at once
when it goes; at the end every node is crashed once more right after a burst of writes. Then:

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
import time

import pytest
import trio

from crash_cluster import (NODES, ClientWrites, crash, crash_seed, crash_under_load, leader_of,
                           require_fuse, settle, start_cluster, stop_cluster)
from fastraft.kv import LmdbKVStateMachine, MemoryKVStateMachine
from fastraft.storage import LmdbLogStore
from fastraft.testing.helpers import kv_contents

KILLS = int(os.environ.get("FASTRAFT_SM_RECOVERY_KILLS", "4"))
SNAPSHOT_EVERY = 300
EXTRA = ["--snapshot-every", str(SNAPSHOT_EVERY)]
#: Client writes in flight at once while a node is crashed.
IN_FLIGHT = 64


def crash_one(node, rng) -> int:
    """SIGKILL ``node``; on a power-loss mount, its power is cut first, while it runs."""
    return crash([node], [rng.choice(["drop", "torn"])])


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
        got, want = await kv_contents(sm), await kv_contents(ref)
        assert got[1] == want[1], f"{path}: the state machine is not the replay of its log to {index}"
        assert index >= at_least, f"{path}: applied {index}, expected at least {at_least}"
        return index, {k.decode(): v.decode() for k, v in got[1]}
    finally:
        await sm.aclose()
        await log.aclose()


def run_crashes(tmp_path, power):
    rng = random.Random(crash_seed())
    nodes = start_cluster(tmp_path, power=power, extra=EXTRA)
    writes = ClientWrites()
    try:
        for _ in range(KILLS):
            leader = leader_of(nodes)
            victim = leader if rng.random() < 0.5 else rng.choice(
                [x for x in nodes.values() if x is not leader])
            at = rng.uniform(0.2, 0.8)
            crash_under_load(writes, leader, [victim], [rng.choice(["drop", "torn"])], at=at,
                             seconds=at + rng.uniform(0.05, 0.3), in_flight=IN_FLIGHT)
            victim.start()
        settle(nodes)
        # a last burst, then every node crashes with applies staged
        last_acked = writes.one_at_a_time(leader_of(nodes))
        for x in nodes.values():
            crash_one(x, rng)
        on_disk = [trio.run(check_against_log, x.dir)[0] for x in nodes.values()]
        # the leader had applied last_acked before answering it: some node lost applies,
        # so the restart below must re-apply them (the case this test guards)
        assert min(on_disk) < last_acked, (on_disk, last_acked)
        for i in NODES:
            nodes[i].start()
        target = settle(nodes)
        for x in nodes.values():
            lost = writes.lost_on(x)
            assert not lost, f"node {x.id} lost {len(lost)} acknowledged writes: {lost[:5]}"
        for x in nodes.values():
            x.proc.exit()
        for x in nodes.values():
            index, state = trio.run(check_against_log, x.dir, target)
            assert all(state.get(k) == v for k, v in writes.acked.items()), f"node {x.id}"
        assert len(writes.acked) > SNAPSHOT_EVERY, len(writes.acked)  # snapshots, purges happened
    finally:
        stop_cluster(nodes)
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
    rng = random.Random(crash_seed())
    nodes = start_cluster(tmp_path, power=False, extra=EXTRA)
    writes = ClientWrites()
    try:
        for attempt in range(5):  # bounded: until some state machine lost applies
            leader = leader_of(nodes)
            writes.one_at_a_time(leader, writes=200)
            knew = {x.id: x.request({"cmd": "status"})["committed"] for x in nodes.values()}
            last = writes.one_at_a_time(leader, writes=1)
            assert last > max(knew.values()), (last, knew)
            deadline = time.monotonic() + 30  # every node holds the last write's append
            while True:
                st = [x.request({"cmd": "status"}) for x in nodes.values()]
                if all(s is not None and s["applied"] >= last for s in st):
                    break
                assert time.monotonic() < deadline, f"not every node applied {last}: {st}"
                time.sleep(0.005)
            for x in nodes.values():
                crash_one(x, rng)
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
        stop_cluster(nodes)
