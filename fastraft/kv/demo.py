"""``fastraft demo``: a real three-node cluster on this machine, in about fifteen seconds.

It starts three ``fastraft-kv serve`` processes on free ports of 127.0.0.1 with lmdb stores in
a temporary folder, initializes node 1, adds 2 and 3 as learners, changes the membership to
{1, 2, 3}, writes and reads through every node, then SIGKILLs the leader while a client keeps
writing, shows the new leader and checks that every acknowledged write survived, restarts the
killed node on its data, and prints each node's metrics. Its processes and files are removed
at the end, also after an error or Ctrl-C.
"""

from __future__ import annotations

import shutil
import signal
import sys
import tempfile
import time

import trio

__all__ = ["main"]

N_WRITES = 200
KILL_AFTER = 60


class _Steps:
    def __init__(self, total: int) -> None:
        self.total = total
        self.n = 0
        self.t0 = time.monotonic()

    def step(self, text: str) -> None:
        self.n += 1
        print(f"\n[{self.n}/{self.total}] {text}", flush=True)

    def say(self, text: str) -> None:
        print(f"      {text}", flush=True)


async def _demo(base_dir: str) -> None:
    from ..errors import OutcomeUnknown
    from .cli import metrics_table
    from .client import KVClient
    from .commands import Set
    from .local_cluster import LocalCluster

    s = _Steps(9)
    async with LocalCluster(base_dir) as cluster:
        s.step(f"starting 3 nodes as separate processes (lmdb stores in {base_dir})")
        for i in (1, 2, 3):
            n = await cluster.start(i)
            s.say(f"node {i}: pid {n.pid}, HTTP {n.addr}, raft {n.raft_addr}")
        addrs = cluster.addrs()
        async with KVClient(addrs, deadline_s=20) as client:
            s.step("initializing node 1 as a cluster of one")
            await client.init(addr=addrs[0])
            with trio.fail_after(20):
                while (await client.metrics(addrs[0]))["state"] != "Leader":
                    await trio.sleep(0.05)
            s.say("node 1 leads")

            s.step("adding nodes 2 and 3 as learners (each waits until it has caught up)")
            for i in (2, 3):
                answer = await client.add_learner(i, addrs[i - 1])
                s.say(f"node {i} added at log index {answer['log_id']['index']}")
            s.step("changing the membership to voters {1, 2, 3} (joint consensus)")
            answer = await client.change_membership([1, 2, 3])
            s.say(f"voters {answer['membership']['membership']['configs'][0]} "
                  f"from log index {answer['log_id']['index']}")

            s.step("writing through every node, reading on every node")
            for i, addr in enumerate(addrs, 1):
                r = await client.write(Set(f"hello-{i}", f"sent to node {i}"), addr=addr)
                s.say(f"write sent to node {i}: applied by leader {r.leader_id} "
                      f"at log index {r.log_id.index}")
            for i, addr in enumerate(addrs, 1):
                with trio.fail_after(10):
                    while await client.read("hello-3", addr=addr) is None:
                        await trio.sleep(0.02)
                values = [await client.read(f"hello-{k}", addr=addr) for k in (1, 2, 3)]
                s.say(f"node {i} reads locally: {values}")

            leader = (await client.metrics(addrs[0]))["current_leader"]
            s.step(f"writing {N_WRITES} keys; SIGKILL the leader (node {leader}) after {KILL_AFTER}")
            acked: dict[str, str] = {}
            unknown: list[str] = []
            killed_at = trio.Event()
            t_kill = [0.0]
            t_resumed = [0.0]

            async def killer() -> None:
                await killed_at.wait()
                await cluster.kill(leader)
                t_kill[0] = time.monotonic()
                s.say(f"node {leader} killed (SIGKILL): nothing flushed, nothing closed")

            async with trio.open_nursery() as nursery:
                nursery.start_soon(killer)
                with trio.fail_after(60):
                    for k in range(N_WRITES):
                        key, value = f"key-{k:03d}", f"value-{k}"
                        try:
                            await client.write(Set(key, value))
                            acked[key] = value
                            if t_kill[0] and not t_resumed[0]:
                                t_resumed[0] = time.monotonic()
                        except OutcomeUnknown:
                            unknown.append(key)  # in flight during the failover: may or may not be there
                        if k + 1 == KILL_AFTER:
                            killed_at.set()
                        if (k + 1) % 50 == 0:
                            s.say(f"{k + 1} writes sent, {len(acked)} acknowledged")

            s.step("the new leader, and every acknowledged write")
            survivors = [a for i, a in enumerate(addrs, 1) if i != leader]
            m = await client.metrics(survivors[0])
            new_leader = m["current_leader"]
            pause = t_resumed[0] - t_kill[0] if t_resumed[0] else float("nan")
            s.say(f"new leader: node {new_leader} in term {m['current_term']}; the client's "
                  f"writes went on {pause:.1f} s after the kill")
            lost = [k for k, v in acked.items() if await client.consistent_read(k) != v]
            s.say(f"{len(acked)} writes acknowledged, {len(unknown)} with an unknown outcome "
                  f"(in flight during the failover), {len(lost)} lost")
            if lost:
                raise SystemExit(f"acknowledged writes lost: {lost}")

            s.step(f"restarting node {leader} on its lmdb data; it rejoins as a follower")
            await cluster.restart(leader)
            last = (await client.metrics(addrs[new_leader - 1]))["last_log_index"]
            with trio.fail_after(20):
                while True:
                    m = await client.metrics(addrs[leader - 1])
                    if m["last_applied"] and m["last_applied"]["index"] >= last:
                        break
                    await trio.sleep(0.05)
            s.say(f"node {leader} applied up to log index {last}; "
                  f"it reads key-000 = {await client.read('key-000', addr=addrs[leader - 1])!r}")

            s.step("metrics of each node")
            rows = [(a, await client.metrics(a)) for a in addrs]
            print(metrics_table(rows), flush=True)
        print(f"\ndone in {time.monotonic() - s.t0:.1f} s; stopping the nodes and removing "
              f"{base_dir}", flush=True)


def main(argv: list[str] | None = None) -> int:
    try:
        import httpx  # noqa: F401
        import httptools  # noqa: F401
    except ImportError as e:
        print(f"fastraft demo needs the kv extra ({e.name} is missing): "
              "pip install 'fastraft[kv]'", file=sys.stderr)
        return 2
    # A shell that starts a program in the background hands it SIGINT ignored; the demo
    # promises to clean up on Ctrl-C, so it takes SIGINT back (trio then turns it into
    # KeyboardInterrupt at a safe point).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    base_dir = tempfile.mkdtemp(prefix="fastraft-demo-")
    try:
        trio.run(_demo, base_dir)
        return 0
    except KeyboardInterrupt:
        print("\ninterrupted; nodes stopped", file=sys.stderr)
        return 130
    finally:
        shutil.rmtree(base_dir, ignore_errors=True)
