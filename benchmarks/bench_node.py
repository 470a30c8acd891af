"""The trio node in one process: three nodes on the in-memory router (memory log stores, the
cluster benchmark's dict state machine), so the figure is the runtime's and the engine's own
cost per committed entry, without sockets or disks (those are in benchmarks/cluster/).

The node runs on whichever accelerated set ``fastraft.accel`` chose (compiled unless
FASTRAFT_PURE_PYTHON=1); the per-primitive side-by-side figures are in bench_codec.py,
bench_log_index.py and bench_progress.py. Simulated time (MockClock) makes elections free.
"""

import os
import sys

import pytest
import trio
import trio.testing

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "cluster"))

from dict_sm import DictStateMachine, encode_put  # noqa: E402

from fastraft import Node  # noqa: E402
from fastraft.core import Config  # noqa: E402
from fastraft.net import MemoryRouter  # noqa: E402
from fastraft.runtime import ServerState, open_raft  # noqa: E402
from fastraft.storage import MemoryLogStore  # noqa: E402


def _cluster_write(entries: int, mode: str, window: int) -> int:
    """Start three nodes, commit ``entries`` entries through the leader, stop; returns the
    number of entries every node applied."""
    async def main():
        router = MemoryRouter()
        sms = {i: DictStateMachine() for i in (1, 2, 3)}
        rafts = {}
        stop = trio.Event()

        async def node(i, task_status):
            async with open_raft(i, Config(), log_store=MemoryLogStore(), state_machine=sms[i],
                                 network=router.network(i), seed=i) as raft:
                router.register(i, raft)
                rafts[i] = raft
                task_status.started()
                await stop.wait()

        async with trio.open_nursery() as nursery:
            for i in (1, 2, 3):
                await nursery.start(node, i)
            await rafts[1].initialize({i: Node(f"127.0.0.1:{22000 + i}") for i in (1, 2, 3)})
            await rafts[1].trigger.elect()
            leader = rafts[1]
            await leader.wait(10).state(ServerState.LEADER)
            cmds = [encode_put(k % 1024, b"v" * 96) for k in range(1000)]
            per_task = entries // window

            async def writer():
                if mode == "many":
                    for _ in range(per_task // 1000):
                        await leader.client_write_many(cmds)
                else:
                    for k in range(per_task):
                        await leader.client_write(cmds[k % 1000])

            async with trio.open_nursery() as writers:
                for _ in range(window):
                    writers.start_soon(writer)
            last = leader.metrics().last_log_index
            for r in rafts.values():
                await r.wait(10).applied_index(last)
            stop.set()
        return min(sm.applied for sm in sms.values())

    return trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))


@pytest.mark.parametrize("mode,window", [("many", 4), ("single", 256)])
def test_three_node_commit(bench, mode, window):
    entries = bench.scaled(40_000 if mode == "many" else 10_240, 4_000 if mode == "many" else 1_024)
    applied = bench.run(f"node: 3 nodes in memory, {mode}", _cluster_write, entries, mode, window,
                        rounds=3)
    assert applied == entries
    bench.per_item(entries)
