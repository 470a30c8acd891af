"""In-memory clusters for runtime tests: real nodes (``open_raft``) on a ``MemoryRouter``,
memory log stores and KV state machines, run under trio's MockClock so that timeouts cost no
wall time and every run takes the same simulated time."""

from __future__ import annotations

import trio
import trio.testing

from fastraft import Node
from fastraft.core import Config
from fastraft.kv import MemoryKVStateMachine, Set, encode_command
from fastraft.net import MemoryRouter
from fastraft.runtime import ServerState, open_raft
from fastraft.storage import MemoryLogStore

#: Config for tests: the defaults, snapshots rare unless a test asks.
CONFIG = Config()


def run(fn, *args):
    """Run ``fn(*args)`` under a MockClock that jumps whenever every task waits."""
    return trio.run(fn, *args, clock=trio.testing.MockClock(autojump_threshold=0))


def kv_set(key: str, value: str) -> bytes:
    return encode_command(Set(key, value))


def addr(node_id: int) -> Node:
    return Node(f"127.0.0.1:{22000 + node_id}")


class MemCluster:
    """Nodes ``1..n`` on one router, each in its own task of ``nursery``.

    ``start(i)`` opens node i (fresh stores unless it ran before with ``keep_stores``),
    ``stop(i)`` leaves its block (a clean shutdown), ``rafts[i]`` is its handle,
    ``sms[i]`` its state machine.
    """

    def __init__(self, nursery: trio.Nursery, config: Config = CONFIG, seed: int = 1,
                 log_store_factory=MemoryLogStore, **router_options) -> None:
        self.nursery = nursery
        self.log_store_factory = log_store_factory
        self.config = config
        self.seed = seed
        self.router = MemoryRouter(seed=seed, **router_options)
        self.rafts: dict = {}
        self.sms: dict = {}
        self._stops: dict = {}
        self._done: dict = {}

    async def start(self, node_id: int, **open_options):
        self.sms[node_id] = sm = MemoryKVStateMachine()
        stop = self._stops[node_id] = trio.Event()
        done = self._done[node_id] = trio.Event()

        async def node(task_status):
            try:
                async with open_raft(node_id, self.config, log_store=self.log_store_factory(),
                                     state_machine=sm, network=self.router.network(node_id),
                                     seed=self.seed * 1000 + node_id, **open_options) as raft:
                    self.router.register(node_id, raft)
                    self.rafts[node_id] = raft
                    task_status.started(raft)
                    await stop.wait()
            finally:
                self.router.unregister(node_id)
                self.rafts.pop(node_id, None)
                done.set()

        return await self.nursery.start(node)

    async def start_all(self, n: int, initialize: bool = True):
        for i in range(1, n + 1):
            await self.start(i)
        if initialize:
            await self.rafts[1].initialize({i: addr(i) for i in range(1, n + 1)})
        return self

    async def stop(self, node_id: int) -> None:
        self._stops[node_id].set()
        await self._done[node_id].wait()

    async def stop_all(self) -> None:
        for i in list(self.rafts):
            await self.stop(i)

    def leaders(self, among=None) -> list[int]:
        ids = self.rafts if among is None else among
        return [i for i in ids if i in self.rafts and self.rafts[i].metrics().state is ServerState.LEADER]

    async def any_leader(self, timeout_s: float = 10.0) -> int:
        """The leader of the highest term among the running nodes, once there is one (nodes
        removed from the membership may disagree: they no longer hear from anyone)."""
        with trio.fail_after(timeout_s):
            while True:  # bounded by the timeout
                best = None
                for i in self.leaders():
                    t = self.rafts[i].metrics().current_term
                    if best is None or t > best[0]:
                        best = (t, i)
                if best is not None:
                    return best[1]
                await trio.sleep(0.01)

    async def wait_leader(self, among=None, timeout_s: float = 10.0, exclude=()) -> int:
        """The id of the one leader among ``among`` (default: all running), once there is one
        that every node of ``among`` agrees on."""
        ids = list(self.rafts if among is None else among)
        with trio.fail_after(timeout_s):
            while True:  # bounded by the timeout
                leaders = [i for i in self.leaders(ids) if i not in exclude]
                if len(leaders) == 1:
                    lid = leaders[0]
                    term = self.rafts[lid].metrics().current_term
                    if all(self.rafts[i].metrics().current_leader == lid
                           and self.rafts[i].metrics().current_term == term for i in ids):
                        return lid
                await trio.sleep(0.01)
