"""Clusters of 3 and 5 nodes in memory under faults (Raft §5.2, thesis §6.2, §9.6):
failover when the leader is isolated, a rejoining node that must not disrupt the leader,
writes on the minority side that never commit and fail instead of hanging, and lossy links."""

import pytest
import trio

from fastraft.errors import ForwardToLeader, OutcomeUnknown
from fastraft.runtime import ServerState
from cluster_fixtures import MemCluster, kv_set, run


@pytest.mark.parametrize("n", [3, 5])
def test_isolated_leader_is_replaced_and_steps_down(n):
    async def main():
        async with trio.open_nursery() as nursery:
            c = await MemCluster(nursery, seed=n).start_all(n)
            old = await c.wait_leader()
            await c.rafts[old].client_write(kv_set("before", "1"))
            old_term = c.rafts[old].metrics().current_term
            t0 = trio.current_time()
            c.router.isolate(old)
            rest = [i for i in c.rafts if i != old]
            new = await c.wait_leader(among=rest)
            assert new != old
            # well within a few election timeouts (simulated time)
            assert trio.current_time() - t0 < 2.0
            assert c.rafts[new].metrics().current_term > old_term
            await c.rafts[new].client_write(kv_set("after", "2"))
            # check-quorum: the isolated leader notices it lost the quorum and steps down
            await c.rafts[old].wait(2).metrics(lambda m: m.state is not ServerState.LEADER,
                                               "old leader stepped down")
            c.router.heal()
            await c.wait_leader()
            last = c.rafts[new].metrics().last_log_index
            for i in c.rafts:
                await c.rafts[i].wait(5).applied_index(last)
                assert c.sms[i].get("before") == "1" and c.sms[i].get("after") == "2"
            await c.stop_all()

    run(main)


def test_rejoining_node_does_not_disrupt_the_leader():
    async def main():
        async with trio.open_nursery() as nursery:
            c = await MemCluster(nursery, seed=4).start_all(3)
            lid = await c.wait_leader()
            term = c.rafts[lid].metrics().current_term
            loner = next(i for i in c.rafts if i != lid)
            c.router.isolate(loner)
            await trio.sleep(5.0)  # many election timeouts: it keeps trying, pre-vote keeps its term
            assert c.rafts[loner].metrics().current_term == term
            for i in range(5):
                await c.rafts[lid].client_write(kv_set("k", str(i)))
            c.router.heal()
            last = c.rafts[lid].metrics().last_log_index
            await c.rafts[loner].wait(5).applied_index(last)
            assert await c.wait_leader() == lid
            assert c.rafts[lid].metrics().current_term == term  # never deposed
            await c.stop_all()

    run(main)


def test_minority_side_write_fails_and_never_commits():
    async def main():
        async with trio.open_nursery() as nursery:
            c = await MemCluster(nursery, seed=5).start_all(5)
            old = await c.wait_leader()
            buddy = next(i for i in c.rafts if i != old)
            majority = [i for i in c.rafts if i not in (old, buddy)]
            c.router.partition({old, buddy}, set(majority))
            t0 = trio.current_time()
            with pytest.raises((OutcomeUnknown, ForwardToLeader)):
                await c.rafts[old].client_write(kv_set("lost", "x"))
            # an error, not a hang: within about one check-quorum period
            assert trio.current_time() - t0 < 2.0
            new = await c.wait_leader(among=majority)
            await c.rafts[new].client_write(kv_set("kept", "y"))
            c.router.heal()
            await c.wait_leader()
            last = c.rafts[new].metrics().last_log_index
            for i in c.rafts:
                await c.rafts[i].wait(5).applied_index(last)
                assert c.sms[i].get("lost") is None  # the minority's entry was overwritten
                assert c.sms[i].get("kept") == "y"
            await c.stop_all()

    run(main)


def test_writes_commit_over_lossy_delayed_links():
    async def main():
        async with trio.open_nursery() as nursery:
            c = await MemCluster(nursery, seed=6, drop_rate=0.1, delay_s=0.002,
                                 jitter_s=0.003).start_all(3)
            done = 0
            for i in range(60):  # bounded: each write retried at most a few times
                for _ in range(20):
                    lid = await c.wait_leader(timeout_s=20)
                    try:
                        await c.rafts[lid].client_write(kv_set(f"k{i}", str(i)))
                        done += 1
                        break
                    except (ForwardToLeader, OutcomeUnknown):
                        continue
            assert done == 60
            assert c.router.stats.dropped > 0
            c.router.set_faults(drop_rate=0.0)
            lid = await c.wait_leader()
            last = c.rafts[lid].metrics().last_log_index
            for i in c.rafts:
                await c.rafts[i].wait(10).applied_index(last)
                assert c.sms[i].get("k59") == "59"
            await c.stop_all()

    run(main)
