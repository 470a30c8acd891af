"""Power cuts of a real cluster: three node processes over TCP, each keeping its data
directory (log store and KV state machine) on its own power-loss file system
(``fastraft.testing.powerloss_fs``). Under a steady stream of client writes, again and again a
random node (the leader or a follower), or two at once, loses power at a random moment while
it runs: its file system's unsynced writes are undone at that instant (dropped, or a random
prefix kept) and nothing it does afterwards reaches the disk or returns (a write in flight,
an fsync half done); then its process is killed with SIGKILL, and it is mounted and started
again. At the end every write a client saw acknowledged is
readable on every node, and the nodes agree (Raft §5.3, §5.4; thesis §3.8: durable before
any message that depends on it).

FASTRAFT_POWERLOSS_CLUSTER_CUTS sets the cuts per run (default 5, a smoke run for CI: about
a minute); FASTRAFT_CRASH_SEED the seed.
"""

import os
import queue
import random
import threading
import time

import pytest

from fastraft.testing import free_ports
from fastraft.testing.powerloss_mount import PowerLossMount, fuse_unavailable
from test_runtime_processes import Proc

CUTS = int(os.environ.get("FASTRAFT_POWERLOSS_CLUSTER_CUTS", "5"))
NODES = (1, 2, 3)


def require_fuse() -> None:
    why = fuse_unavailable()
    if why is not None:
        if not os.path.exists("/dev/fuse"):
            pytest.skip(why)
        pytest.fail(f"FUSE is present but unusable: {why}")


def log_store_kinds():
    try:
        import rocksdict  # noqa: F401
    except ImportError:
        return ["lmdb"]
    return ["lmdb", "rocksdb"]


class PoweredNode:
    """One node process on its own power-loss mount."""

    def __init__(self, tmp_path, node_id, nodes_arg, kind, seed):
        self.id = node_id
        self.nodes_arg = nodes_arg
        self.kind = kind
        self.log = str(tmp_path / f"node{node_id}.log")
        self.mount = PowerLossMount(tmp_path / f"backing{node_id}", tmp_path / f"mnt{node_id}",
                                    seed=seed * 10 + node_id)
        self.mount.start()
        self.proc = None

    def start(self, init=False):
        self.proc = Proc(self.id, self.mount.path, self.nodes_arg, init, self.log,
                         extra=["--log-store", self.kind])

    def alive(self):
        return self.proc is not None and self.proc.p.poll() is None

    def request(self, obj, timeout=10):
        try:
            return self.proc.request(obj, timeout)
        except (RuntimeError, OSError, ValueError, queue.Empty):
            return None

    def take_down(self):
        """After its power was cut (``mount.power_off``): kill the process, unmount."""
        self.mount.take_down([self.proc.p])
        self.proc.log.close()


def power_cut(victims, modes):
    """The victims' machines lose power together, at this instant, while their processes run;
    then the processes are killed and the mounts taken down. Returns the writes undone."""
    undone = sum(v.mount.power_off(m) for v, m in zip(victims, modes))
    for v in victims:
        v.take_down()
    return undone


def leader_of(nodes, timeout_s=30.0):
    """The node every live node agrees leads, once they do."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        st = [n.request({"cmd": "status"}) for n in nodes.values()]
        if None not in st:
            leaders = {s["leader"] for s in st}
            if len(leaders) == 1 and None not in leaders:
                lid = leaders.pop()
                if any(s["id"] == lid and s["state"] == "leader" for s in st):
                    return nodes[lid]
        time.sleep(0.05)
    raise AssertionError(f"no leader within {timeout_s} s")


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.parametrize("kind", log_store_kinds())
def test_power_cuts_of_random_nodes_lose_no_acknowledged_write(tmp_path, kind):
    require_fuse()
    seed = int(os.environ.get("FASTRAFT_CRASH_SEED", "20261207"))
    rng = random.Random(seed)
    ports = free_ports(3)
    nodes_arg = ",".join(f"{i}=127.0.0.1:{ports[i - 1]}" for i in NODES)
    nodes = {i: PoweredNode(tmp_path, i, nodes_arg, kind, seed) for i in NODES}
    acked: dict = {}
    undone = 0
    n = 0
    try:
        for i in NODES:
            nodes[i].start(init=i == 1)
        for cut_no in range(CUTS):
            leader = leader_of(nodes)
            followers = [x for x in nodes.values() if x is not leader]
            r = rng.random()
            if r < 0.4:
                victims = [leader]
            elif r < 0.8:
                victims = [rng.choice(followers)]
            else:
                victims = [leader, rng.choice(followers)]  # a majority loses power
            # The power goes at a random moment while writes flow: a thread pulls the plug.
            modes = [rng.choice(["drop", "torn"]) for _ in victims]
            outcome: list = []

            def pull_plug(victims=victims, modes=modes, outcome=outcome):
                try:
                    outcome.append(power_cut(victims, modes))
                except BaseException as e:  # re-raised by the test below
                    outcome.append(e)

            timer = threading.Timer(rng.uniform(0.05, 0.6), pull_plug)
            timer.start()
            try:
                for _ in range(2000):  # bounded; ends soon after the cut
                    n += 1
                    reply = leader.request({"cmd": "write", "key": f"k{n}", "value": str(n)})
                    if reply is not None and "ok" in reply:
                        acked[f"k{n}"] = str(n)
                    if not timer.is_alive() and (leader in victims or reply is None):
                        break
                    if not timer.is_alive() and rng.random() < 0.2:
                        break
            finally:
                timer.join()  # the plug is pulled by then, also when the loop ended first
            if isinstance(outcome[0], BaseException):
                raise outcome[0]
            undone += outcome[0]
            for v in victims:
                v.mount.start()
                v.start()
        leader = leader_of(nodes)
        target = leader.request({"cmd": "status"})["committed"]
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # every node applies what the leader committed
            st = [x.request({"cmd": "status"}) for x in nodes.values()]
            if all(s is not None and s["applied"] >= target for s in st):
                break
            time.sleep(0.05)
        for x in nodes.values():
            lost = [k for k, v in acked.items()
                    if x.request({"cmd": "get", "key": k}) != {"value": v}]
            assert not lost, f"node {x.id} lost {len(lost)} acknowledged writes: {lost[:5]}"
        assert len(acked) > CUTS and undone > 0, (len(acked), undone)
    finally:
        for x in nodes.values():
            if x.alive():
                try:
                    x.proc.exit()
                except Exception:
                    x.proc.kill()
            try:
                x.mount.stop()
            except Exception:
                x.mount._abort()
