"""The cluster suite's open-loop generator (``benchmarks/cluster/open_loop.py``) on a real
single-node fastraft (memory log store, KV state machine) under trio's MockClock.

Its contract: offered load does not depend on how often the node's loop gives the generator
a turn. A busy loop is modelled by a task that makes every scheduler pass cost 2 ms of
(mock) time; writes are due every 1 ms. A generator that starts one write per turn falls
behind by a millisecond a pass and reports its own lag as write latency (hundreds of ms by
the end); one that starts every write due keeps each write within a few passes of its
schedule."""

import trio
import trio.testing

from benchmarks.cluster.open_loop import offer_writes
from fastraft import Node
from fastraft.core import Config
from fastraft.kv import MemoryKVStateMachine, Set, encode_command
from fastraft.net import MemoryRouter
from fastraft.runtime import ServerState, open_raft
from fastraft.storage import MemoryLogStore

PASS_S = 0.002  # what one scheduler pass costs while the node is busy
RATE = 1000.0  # a write due every millisecond: two per pass


def test_open_loop_keeps_its_schedule_when_passes_are_slow():
    clock = trio.testing.MockClock(autojump_threshold=0)

    async def main():
        router = MemoryRouter(seed=1)
        async with open_raft(1, Config(), log_store=MemoryLogStore(),
                             state_machine=MemoryKVStateMachine(),
                             network=router.network(1), seed=1) as raft:
            router.register(1, raft)
            await raft.initialize({1: Node("127.0.0.1:1")})
            await raft.wait(10).state(ServerState.LEADER)
            cmds = [encode_command(Set(f"k{i}", "v")) for i in range(16)]
            done = trio.Event()

            async def busy_loop():
                for _ in range(100_000):  # bounded; ends with the generator
                    if done.is_set():
                        return
                    clock.jump(PASS_S)
                    await trio.lowlevel.checkpoint()

            async with trio.open_nursery() as nursery:
                nursery.start_soon(busy_loop)
                result = await offer_writes(raft, cmds, RATE, warmup_s=0.1, duration_s=0.4)
                done.set()
            return result

    result = trio.run(main, clock=clock)
    assert result["errors"] == 0 and result["dropped"] == 0 and result["unfinished"] == 0
    lat = result["latency_ms"]
    assert len(lat) == int(0.4 * RATE)
    # a write starts within one pass of its schedule and commits within a few more
    # (one starting one write per turn lags 100 ms by the end of the warm-up alone)
    assert max(lat) < 20 * PASS_S * 1e3, sorted(lat)[-5:]
