"""Snapshot builds and applies (``fastraft.runtime.applier``): a state machine that declares
``concurrent_snapshot_builds`` keeps applying, and so answering writes, while a build runs;
one that does not never sees an apply during a build (the build holds the applies behind it,
as the storage contract promises it). Raft §7: a snapshot is of committed, applied state, of
any point; the engine accepts the one the build reports."""

import pytest
import trio

from fastraft.core import Config
from fastraft.kv import MemoryKVStateMachine
from fastraft.net import MemoryRouter
from fastraft.runtime import open_raft
from fastraft.storage import MemoryLogStore
from cluster_fixtures import addr, kv_set, run


class GatedBuilds(MemoryKVStateMachine):
    """Builds wait at a gate; applies made while a build waits are counted."""

    def __init__(self, alongside: bool) -> None:
        super().__init__()
        self.concurrent_snapshot_builds = alongside
        self.building = trio.Event()
        self.gate = trio.Event()
        self.building_now = False
        self.applied_during_build = 0

    async def apply(self, entries):
        if self.building_now:
            self.applied_during_build += len(entries)
        return await super().apply(entries)

    async def build_snapshot(self):
        self.building_now = True
        self.building.set()
        await self.gate.wait()
        self.building_now = False
        return await super().build_snapshot()


async def one_node(sm, body):
    router = MemoryRouter(seed=1)
    async with open_raft(1, Config(), log_store=MemoryLogStore(), state_machine=sm,
                         network=router.network(1), seed=1) as raft:
        router.register(1, raft)
        await raft.initialize({1: addr(1)})
        with trio.fail_after(10):
            while raft.metrics().current_leader != 1:  # bounded by the deadline
                await trio.sleep(0.01)
        await raft.client_write(kv_set("a", "1"))
        await body(raft, sm)


@pytest.mark.parametrize("alongside", [True, False])
def test_writes_go_on_during_a_build_only_when_the_state_machine_allows_it(alongside):
    async def body(raft, sm):
        await raft.trigger.snapshot()
        with trio.fail_after(10):
            await sm.building.wait()
        async with trio.open_nursery() as nursery:
            done = trio.Event()

            async def write():
                await raft.client_write(kv_set("b", "2"))
                done.set()

            nursery.start_soon(write)
            # a minute of (mock) time: the write's commit and apply take microseconds
            with trio.move_on_after(60):
                await done.wait()
            assert done.is_set() is alongside
            assert (sm.applied_during_build > 0) is alongside
            sm.gate.set()
            with trio.fail_after(10):
                await done.wait()
        with trio.fail_after(10):
            while raft.metrics().snapshot is None:  # bounded by the deadline
                await trio.sleep(0.01)
        # the snapshot is of a point applied when the build ran: both writes by now
        assert raft.metrics().snapshot.index <= raft.metrics().last_applied.index
        assert sm.get("a") == "1" and sm.get("b") == "2"

    run(one_node, GatedBuilds(alongside), body)


def test_a_failed_build_alongside_stops_the_node():
    class Failing(GatedBuilds):
        async def build_snapshot(self):
            self.building.set()
            raise OSError("disk gone")

    async def body(raft, sm):
        await raft.trigger.snapshot()
        with trio.fail_after(10):
            while True:  # bounded by the deadline: the node stops on the failure
                try:
                    await raft.client_write(kv_set("c", "3"))
                except OSError:
                    return
                await trio.sleep(0.01)

    # the node stops with the build's error, which its block re-raises
    with pytest.raises(OSError, match="disk gone"):
        run(one_node, Failing(True), body)
