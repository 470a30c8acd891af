"""Admin operations on in-memory clusters: a learner catching up from a snapshot after the
leader purged its log (Raft §7), membership 3 -> 5 -> 3 under load (Raft §6), leadership
transfer (thesis §3.10), linearizable reads (thesis §6.4), and the triggers."""

import logging

import pytest
import trio

from fastraft.core import Config, TransferFailed
from fastraft.errors import ForwardToLeader, OutcomeUnknown
from fastraft.runtime import ServerState
from cluster_fixtures import MemCluster, addr, kv_set, run

SNAPSHOTTING = Config(snapshot_policy_logs_since_last=50, max_in_snapshot_log_to_keep=0,
                      snapshot_max_chunk_bytes=1024)


def test_learner_catches_up_from_a_snapshot_after_purge(caplog):
    caplog.set_level(logging.INFO, logger="fastraft.node")

    async def main():
        async with trio.open_nursery() as nursery:
            c = await MemCluster(nursery, config=SNAPSHOTTING, seed=7).start_all(3)
            lid = await c.wait_leader()
            leader = c.rafts[lid]
            for i in range(30):
                await leader.client_write_many([kv_set(f"k{i}.{j}", "v" * 20) for j in range(10)])
            m = await leader.wait(5).purged(250)
            assert m.snapshot is not None and m.snapshot.index >= m.purged.index
            await c.start(4)
            await leader.add_learner(4, addr(4), blocking=True)
            m4 = await c.rafts[4].wait(5).applied_index(m.snapshot.index)
            assert m4.state is ServerState.LEARNER
            assert m4.snapshot is not None  # it got there by installing the snapshot
            assert c.sms[4].get("k0.0") == "v" * 20  # an entry purged from every log
            await leader.client_write(kv_set("late", "1"))
            await c.rafts[4].wait(5).applied_index(leader.metrics().last_log_index)
            assert c.sms[4].get("late") == "1"
            await c.stop_all()
            return m.snapshot.index

    index = run(main)
    # the operator sees it: one INFO line from the learner (runtime/oplog.py)
    installed = [r.getMessage() for r in caplog.records if r.name == "fastraft.node"
                 and getattr(r, "node_id", None) == 4 and "installed from the leader" in
                 r.getMessage()]
    assert installed, [r.getMessage() for r in caplog.records if r.name == "fastraft.node"]
    assert max(int(line.rsplit(" ", 1)[1]) for line in installed) >= index, installed


def test_membership_3_to_5_to_3_under_load():
    async def main():
        async with trio.open_nursery() as nursery:
            # link latency lets simulated time pass while the writer keeps the cluster busy
            c = await MemCluster(nursery, seed=8, delay_s=0.001).start_all(3)
            acked: list[str] = []
            stop = trio.Event()

            async def writer():
                for i in range(100_000):  # bounded; ends when the test says so
                    if stop.is_set():
                        return
                    lid = await c.any_leader()
                    try:
                        await c.rafts[lid].client_write(kv_set(f"w{i}", str(i)))
                        acked.append(f"w{i}")
                    except (ForwardToLeader, OutcomeUnknown, KeyError):
                        await trio.sleep(0.01)

            async with trio.open_nursery() as load:
                load.start_soon(writer)
                await trio.sleep(0.5)
                await c.start(4)
                await c.start(5)
                lid = await c.wait_leader(among=[1, 2, 3])
                await c.rafts[lid].add_learner(4, addr(4))
                await c.rafts[lid].add_learner(5, addr(5))
                await c.rafts[lid].change_membership({1, 2, 3, 4, 5})
                m = c.rafts[lid].metrics()
                assert m.membership.membership.configs == (frozenset({1, 2, 3, 4, 5}),)
                await trio.sleep(0.5)
                lid = await c.wait_leader()
                await c.rafts[lid].change_membership({3, 4, 5})  # the first three may include the leader
                await trio.sleep(0.5)
                stop.set()
            final = [3, 4, 5]
            lid = await c.wait_leader(among=final)
            assert c.rafts[lid].metrics().membership.membership.configs == (frozenset(final),)
            last = c.rafts[lid].metrics().last_log_index
            assert len(acked) > 20
            for i in final:
                await c.rafts[i].wait(5).applied_index(last)
                for key in acked:
                    assert c.sms[i].get(key) is not None, (i, key)
            await c.stop_all()

    run(main)


def test_transfer_leader():
    async def main():
        async with trio.open_nursery() as nursery:
            c = await MemCluster(nursery, seed=9).start_all(3)
            lid = await c.wait_leader()
            await c.rafts[lid].client_write(kv_set("a", "1"))
            target = next(i for i in c.rafts if i != lid)
            term = c.rafts[lid].metrics().current_term
            await c.rafts[lid].transfer_leader(target)
            assert await c.wait_leader() == target
            assert c.rafts[target].metrics().current_term > term
            await c.rafts[target].client_write(kv_set("b", "2"))
            # a transfer to a node that cannot win fails and the leader keeps leading
            other = next(i for i in c.rafts if i != target)
            c.router.isolate(other)
            with pytest.raises(TransferFailed):
                await c.rafts[target].transfer_leader(other)
            c.router.heal()
            assert await c.wait_leader() == target
            with pytest.raises(ForwardToLeader):
                await c.rafts[lid].transfer_leader(target)
            await c.stop_all()

    run(main)


def test_linearizable_reads_see_every_acknowledged_write():
    async def main():
        async with trio.open_nursery() as nursery:
            c = await MemCluster(nursery, seed=10, delay_s=0.001).start_all(3)
            lid = await c.wait_leader()
            leader = c.rafts[lid]
            for i in range(10):
                await leader.client_write(kv_set("x", str(i)))
                read_index = await leader.ensure_linearizable()
                assert leader.metrics().applied_index >= read_index
                assert c.sms[lid].get("x") == str(i)
            # many concurrent reads share ReadIndex rounds
            results = []

            async def read():
                results.append(await leader.ensure_linearizable())

            async with trio.open_nursery() as readers:
                for _ in range(50):
                    readers.start_soon(read)
            assert len(results) == 50
            # a leader cut off from the quorum cannot confirm a read
            c.router.isolate(lid)
            with pytest.raises(ForwardToLeader):
                with trio.fail_after(5):
                    await leader.ensure_linearizable()
            c.router.heal()
            await c.stop_all()

    run(main)


def test_triggers():
    async def main():
        async with trio.open_nursery() as nursery:
            c = MemCluster(nursery, seed=11)
            raft = await c.start(1)
            await raft.initialize({1: addr(1)})
            t0 = trio.current_time()
            await raft.trigger.elect()  # no need to wait for the election timeout
            await raft.wait(5).state(ServerState.LEADER)
            assert trio.current_time() - t0 < c.config.election_timeout_min_s
            for i in range(20):
                await raft.client_write(kv_set("k", str(i)))
            await raft.trigger.snapshot()
            m = await raft.wait(5).snapshot(raft.metrics().applied_index)
            await raft.trigger.purge_log(m.snapshot.index)
            await raft.wait(5).purged(m.snapshot.index)
            await raft.trigger.heartbeat()
            await c.stop_all()

    run(main)


def test_triggered_election_does_not_disrupt_a_healthy_leader():
    async def main():
        async with trio.open_nursery() as nursery:
            c = await MemCluster(nursery, seed=12).start_all(3)
            lid = await c.wait_leader()
            term = c.rafts[lid].metrics().current_term
            follower = next(i for i in c.rafts if i != lid)
            await c.rafts[follower].trigger.elect()
            await trio.sleep(1.0)
            # pre-vote: the others still hear the leader, so the campaign never raises a term
            assert await c.wait_leader() == lid
            assert c.rafts[lid].metrics().current_term == term
            await c.stop_all()

    run(main)
