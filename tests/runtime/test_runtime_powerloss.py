"""Power cuts in memory, at every step (Raft §5.3, §5.4, thesis §3.8): three nodes on
``PowerLossMemoryLogStore`` under client load, under trio's MockClock; again and again a random
node (the leader or a follower), or all three at once, loses power at a random moment (what
its store wrote but had not synced is gone) and restarts on what its disk kept. At the end
every write a client saw acknowledged is applied on every node, and the logs agree.

A runtime that reports an append flushed or a vote saved before its store finished the write
acknowledges writes that a power cut then takes back, and fails this test.
"""

import os
import random

import pytest
import trio

from fastraft.errors import FastraftError
from fastraft.kv import MemoryKVStateMachine
from fastraft.net import MemoryRouter
from fastraft.runtime import ServerState, open_raft
from fastraft.storage.memory_powerloss import MemoryDisk, PowerLossMemoryLogStore
from fastraft.core import Config
from cluster_fixtures import addr, kv_set, run

#: No snapshots, so no purge: every entry stays in every log for the checks. The cuts come
#: every 0-0.3 s of simulated time, so elections must fit between them: 50 ms heartbeats and
#: 150-300 ms election timeouts here, not the defaults' 1-2 s (Raft §5.6's timing rule holds
#: with the in-memory network's hops).
CONFIG = Config(snapshot_policy_logs_since_last=10**9, heartbeat_interval_ms=50,
                election_timeout_min_ms=150, election_timeout_max_ms=300)
N = 3
#: Power cuts per seed (FASTRAFT_POWERLOSS_CUTS for a long run).
CUTS = int(os.environ.get("FASTRAFT_POWERLOSS_CUTS", "40"))
WRITERS = 4


class PowerCluster:
    """Nodes 1..N, each on its own ``MemoryDisk``; ``cut(i)`` is a power loss of node i."""

    def __init__(self, nursery, seed: int) -> None:
        self.nursery = nursery
        self.rng = random.Random(seed)
        self.seed = seed
        self.router = MemoryRouter(seed=seed)
        self.disks = {i: MemoryDisk() for i in range(1, N + 1)}
        self.stores: dict = {}
        self.rafts: dict = {}
        self.sms: dict = {}
        self.scopes: dict = {}
        self.boots = 0

    async def start(self, i: int) -> None:
        self.boots += 1
        store = self.stores[i] = PowerLossMemoryLogStore(
            self.disks[i], sync_delay_s=self.rng.uniform(0.0002, 0.004))
        sm = self.sms[i] = MemoryKVStateMachine()
        seed = self.seed * 10_000 + self.boots

        async def node(task_status):
            with trio.CancelScope() as scope:
                self.scopes[i] = scope
                try:
                    async with open_raft(i, CONFIG, log_store=store, state_machine=sm,
                                         network=self.router.network(i), seed=seed) as raft:
                        self.router.register(i, raft)
                        self.rafts[i] = raft
                        task_status.started()
                        await trio.sleep_forever()
                except FastraftError:
                    if not store._cut:  # only a node whose power went may fail
                        raise
                finally:
                    self.router.unregister(i)
                    self.rafts.pop(i, None)

        await self.nursery.start(node)

    def cut(self, i: int) -> None:
        """Power loss: nothing more reaches node i's disk, and the node stops at once."""
        self.stores[i].power_cut()
        self.router.unregister(i)
        self.rafts.pop(i, None)
        self.scopes[i].cancel()

    def leader(self):
        best = None
        for i, raft in list(self.rafts.items()):
            m = raft.metrics()
            if m.state is ServerState.LEADER and (best is None or m.current_term > best[0]):
                best = (m.current_term, i)
        return None if best is None else self.rafts.get(best[1])


def check_on_majority_of_disks(c: PowerCluster, acked: dict) -> None:
    """Raft §5.3: an acknowledged (committed) entry is on the stable storage of a majority;
    no leader overwrites it (§5.4), and the log is never purged here (CONFIG)."""
    on_disk = []
    for disk in c.disks.values():
        entries = [] if disk.image is None else disk.image["_entries"]
        on_disk.append({e.payload for e in entries})
    missing = [k for k, v in acked.items()
               if sum(kv_set(k, v) in payloads for payloads in on_disk) <= N // 2]
    assert not missing, (f"{len(missing)} acknowledged writes are on no majority of disks "
                         f"after a power cut, e.g. {missing[:3]}")


async def writer(c: PowerCluster, wid: int, acked: dict, stop: trio.Event, rng) -> None:
    n = 0
    while not stop.is_set():  # bounded by the crasher, which sets stop
        raft = c.leader()
        if raft is None:
            await trio.sleep(0.01)
            continue
        n += 1
        key = f"w{wid}-{n}"
        try:
            with trio.move_on_after(2):
                await raft.client_write(kv_set(key, str(n)))
                acked[key] = str(n)
        except FastraftError:
            pass
        await trio.sleep(rng.uniform(0, 0.003))


@pytest.mark.timeout(240)  # a broken sync path may also end in a livelock, not an assertion
@pytest.mark.parametrize("seed", [1, 2])
def test_power_cuts_at_random_steps_lose_no_acknowledged_write(seed):
    async def main():
        acked: dict = {}
        async with trio.open_nursery() as nursery:
            c = PowerCluster(nursery, seed)
            for i in range(1, N + 1):
                await c.start(i)
            await c.rafts[1].initialize({i: addr(i) for i in range(1, N + 1)})
            stop = trio.Event()
            for w in range(WRITERS):
                nursery.start_soon(writer, c, w, acked, stop, random.Random(seed * 100 + w))
            rng = c.rng
            cuts = {"leader": 0, "follower": 0, "all": 0}
            for _ in range(CUTS):
                await trio.sleep(rng.uniform(0.0, 0.08))
                leader = c.leader()
                lid = None if leader is None else leader.metrics().id
                r = rng.random()
                if r < 0.2:
                    victims = list(c.rafts)
                    cuts["all"] += 1
                elif r < 0.6 and lid is not None:
                    victims = [lid]
                    cuts["leader"] += 1
                else:
                    victims = [rng.choice(list(c.rafts))] if c.rafts else []
                    cuts["follower" if victims != [lid] else "leader"] += 1
                for i in victims:
                    c.cut(i)
                check_on_majority_of_disks(c, acked)
                await trio.sleep(rng.uniform(0.0, 0.3))
                for i in victims:
                    await c.start(i)
            stop.set()
            # Everything acknowledged is applied everywhere once the cluster settles.
            with trio.fail_after(60):
                while True:  # bounded by fail_after
                    raft = c.leader()
                    if raft is not None:
                        try:
                            await raft.client_write(kv_set("final", "1"))
                            break
                        except FastraftError:
                            pass
                    await trio.sleep(0.05)
                last = raft.metrics().last_log_index
                for i in list(c.rafts):
                    await c.rafts[i].wait(30).applied_index(last)
            assert len(acked) > 50 and cuts["leader"] > 3 and cuts["all"] > 2, (len(acked), cuts)
            for i in range(1, N + 1):
                lost = [k for k, v in acked.items() if c.sms[i].get(k) != v]
                assert not lost, f"node {i} lost {len(lost)} acknowledged writes, e.g. {lost[:3]}"
            logs = []
            for i in range(1, N + 1):
                entries = await c.stores[i].read_entries(1, last + 1)
                logs.append([(e.index, e.term, e.payload) for e in entries])
            assert logs[0] == logs[1] == logs[2], "the replicas' logs differ"
            for i in list(c.rafts):
                c.scopes[i].cancel()

    run(main)
