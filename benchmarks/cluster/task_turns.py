#!/usr/bin/env python3
"""Task turns per write: three nodes in one process, real TCP on 127.0.0.1, memory logs (or
``--lmdb``: lmdb logs synced, in a temporary folder), one writer doing one ``client_write`` at a
time. A trio instrument counts the task steps (a task run until its next checkpoint) and the
scheduler passes the run took, divided by the writes: the runtime's own cost per write in a
unit the machine's load does not blur (wall-clock figures on a shared machine do). The wall
time per write is printed too, for what it is worth.

    python benchmarks/cluster/task_turns.py [--writes 2000] [--base-port 22100] [--lmdb]
        [--by-task]

``--by-task`` also prints the steps per write of each task (by trio's task name, summed over
the three nodes), most first: which tasks a write wakes.
"""

import argparse
import collections
import os
import sys
import tempfile
import time

import trio

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from dict_sm import DictStateMachine, encode_put  # noqa: E402

from fastraft import Node  # noqa: E402
from fastraft.core import Config  # noqa: E402
from fastraft.net import TcpNetwork, serve_raft_tcp  # noqa: E402
from fastraft.runtime import ServerState, open_raft  # noqa: E402
from fastraft.storage import LmdbLogStore, MemoryLogStore  # noqa: E402


class StepCounter(trio.abc.Instrument):
    def __init__(self) -> None:
        self.steps = 0
        self.passes = 0
        self.on = False
        self.by_task: collections.Counter = collections.Counter()

    def before_task_step(self, task) -> None:
        if self.on:
            self.steps += 1
            self.by_task[task.name.rsplit(".", 1)[-1]] += 1

    def after_io_wait(self, timeout) -> None:
        if self.on:
            self.passes += 1


async def run(args, counter: StepCounter, tmp: str) -> dict:
    ids = (1, 2, 3)
    nodes = {i: Node(f"127.0.0.1:{args.base_port + i}") for i in ids}
    rafts = {}
    async with trio.open_nursery() as nursery:
        stop = trio.Event()

        async def node(i, task_status):
            store = (await LmdbLogStore.open(os.path.join(tmp, f"log{i}")) if args.lmdb
                     else MemoryLogStore())
            async with open_raft(i, Config(), log_store=store, state_machine=DictStateMachine(),
                                 network=TcpNetwork(), seed=i) as raft:
                await nursery.start(serve_raft_tcp, raft, "127.0.0.1", args.base_port + i)
                rafts[i] = raft
                task_status.started()
                await stop.wait()

        for i in ids:
            await nursery.start(node, i)
        await rafts[1].initialize(nodes)
        await rafts[1].trigger.elect()
        leader = rafts[1]
        await leader.wait(20).state(ServerState.LEADER)
        cmd = encode_put(1, b"v" * 96)
        for _ in range(200):  # warm up: connections open, caches filled
            await leader.client_write(cmd)
        counter.on = True
        t0 = time.perf_counter()
        for _ in range(args.writes):
            await leader.client_write(cmd)
        wall = time.perf_counter() - t0
        counter.on = False
        stop.set()
    return {"writes": args.writes, "task_steps_per_write": counter.steps / args.writes,
            "scheduler_passes_per_write": counter.passes / args.writes,
            "wall_us_per_write": wall / args.writes * 1e6}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--writes", type=int, default=2000)
    ap.add_argument("--base-port", type=int,
                    default=int(os.environ.get("RAFTBENCH_BASE_PORT", "21000")) + 100)
    ap.add_argument("--lmdb", action="store_true")
    ap.add_argument("--by-task", action="store_true")
    args = ap.parse_args()
    counter = StepCounter()
    with tempfile.TemporaryDirectory(prefix="fastraft-turns-") as tmp:
        out = trio.run(run, args, counter, tmp, instruments=[counter])
    print(" ".join(f"{k}={v:.2f}" if isinstance(v, float) else f"{k}={v}" for k, v in out.items()))
    if args.by_task:
        for name, n in counter.by_task.most_common(15):
            print(f"  {n / args.writes:6.2f}  {name}")


if __name__ == "__main__":
    main()
