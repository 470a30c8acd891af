"""One node and three nodes in memory: start, elect, write, read, shut down cleanly."""

import pytest
import trio

from fastraft import Entry, ForwardToLeader, LogId, Node
from fastraft.errors import RaftShutdown
from fastraft.messages import AppendEntriesRequest
from fastraft.runtime import ServerState
from fastraft.storage import LogStore, MemoryLogStore
from cluster_fixtures import MemCluster, addr, kv_set, run


def test_single_node_elects_itself_and_applies_writes():
    async def main():
        async with trio.open_nursery() as nursery:
            c = MemCluster(nursery)
            raft = await c.start(1)
            assert raft.metrics().state is ServerState.LEARNER  # not initialized: no voter
            await raft.initialize({1: addr(1)})
            await raft.wait(5).state(ServerState.LEADER)
            resp = await raft.client_write(kv_set("a", "1"))
            # the membership entry is 1/1, the leader's blank entry 2/2 (it leads term 2)
            assert (resp.log_id, resp.data, resp.membership) == (LogId(2, 3), {"value": "1"}, None)
            many = await raft.client_write_many([kv_set("b", str(i)) for i in range(10)])
            assert [r.data["value"] for r in many] == [str(i) for i in range(10)]
            assert [r.log_id for r in many] == [LogId(2, i) for i in range(4, 14)]
            m = raft.metrics()
            assert m.last_applied.index == m.committed == m.last_log_index == 13  # membership, blank, 11
            assert c.sms[1].get("b") == "9"
            assert await raft.ensure_linearizable() >= 13
            await c.stop_all()

    run(main)


def test_three_nodes_replicate_and_followers_forward():
    async def main():
        async with trio.open_nursery() as nursery:
            c = await MemCluster(nursery).start_all(3)
            lid = await c.wait_leader()
            leader = c.rafts[lid]
            for i in range(20):
                await leader.client_write(kv_set(f"k{i}", str(i)))
            last = leader.metrics().last_log_index
            for i in (1, 2, 3):
                await c.rafts[i].wait(5).applied_index(last)
                assert c.sms[i].get("k19") == "19"
            follower = next(i for i in (1, 2, 3) if i != lid)
            with pytest.raises(ForwardToLeader) as err:
                await c.rafts[follower].client_write(kv_set("x", "y"))
            assert err.value.leader_id == lid and err.value.leader_node == addr(lid)
            with pytest.raises(ForwardToLeader):
                await c.rafts[follower].ensure_linearizable()
            m = leader.metrics()
            assert set(m.replication) == {1, 2, 3} - {lid}
            assert all(v == last for v in m.replication.values())
            await c.stop_all()

    run(main)


def test_calls_after_shutdown_raise():
    async def main():
        async with trio.open_nursery() as nursery:
            c = MemCluster(nursery)
            raft = await c.start(1)
            await raft.initialize({1: addr(1)})
            await raft.wait(5).state(ServerState.LEADER)
            await c.stop(1)
            with pytest.raises(RaftShutdown):
                await raft.client_write(b"x")
            assert raft.metrics().state is ServerState.SHUTDOWN
            with pytest.raises(RaftShutdown):
                await raft.wait(1).applied_index(100)

    run(main)


def test_initialize_twice_is_refused():
    from fastraft.core import MembershipError

    async def main():
        async with trio.open_nursery() as nursery:
            c = MemCluster(nursery)
            raft = await c.start(1)
            await raft.initialize({1: addr(1)})
            with pytest.raises(MembershipError):
                await raft.initialize({1: addr(1), 2: Node("127.0.0.1:2")})
            await c.stop_all()

    run(main)


class SlowSyncLogStore(MemoryLogStore):
    """The memory store with a sync that takes 5 ms, as a disk's does: requests pile up
    behind a flush, which is when answers used to go missing."""

    append_nowait = LogStore.append_nowait  # no fast path: the runtime awaits each append

    async def append(self, entries):
        await trio.sleep(0.005)
        await super().append(entries)


def test_pipelined_replication_answers_every_request():
    """Every AppendEntries gets its own answer, also when several wait for one flush: a
    request left unanswered would hold its slot until its deadline, and a request/response
    network would pair later answers with requests the leader already gave up on (Raft
    §5.3 then retries late, and replication stalls)."""
    async def main():
        async with trio.open_nursery() as nursery:
            c = await MemCluster(nursery, log_store_factory=SlowSyncLogStore,
                                 delay_s=0.001).start_all(3)
            lid = await c.wait_leader()
            leader = c.rafts[lid]

            async def writer(w):
                for k in range(10):  # bounded
                    await leader.client_write_many([kv_set(f"w{w}", str(k))] * 50)

            async with trio.open_nursery() as writers:
                for w in range(16):
                    writers.start_soon(writer, w)
            await trio.sleep(3)  # past every request's deadline: the unanswered ones count
            senders = leader._rt.peers.senders
            assert sorted(senders) == sorted(i for i in (1, 2, 3) if i != lid)
            assert sum(s.sent for s in senders.values()) > 40
            assert [s.failed for s in senders.values()] == [0, 0]
            await c.stop_all()

    run(main)


class GatedLogStore(MemoryLogStore):
    """An in-memory log whose appends wait until the test opens ``gate``."""

    append_nowait = LogStore.append_nowait  # no fast path: the runtime awaits each append
    gate: trio.Event

    async def append(self, entries):
        await self.gate.wait()
        await super().append(entries)


def test_answers_given_out_of_order_reach_exactly_their_own_requests():
    """Three pipelined AppendEntries from a leader: the first carries entries, so its answer
    waits for their flush (Raft §5.3: acknowledge only what is durable); the second (a
    heartbeat) and the third (a probe past the log, rejected) are answered at once. Every
    answer must reach its own request: the engine answers by reply token, not by order."""
    async def main():
        GatedLogStore.gate = trio.Event()
        async with trio.open_nursery() as nursery:
            c = MemCluster(nursery, log_store_factory=GatedLogStore)
            raft = await c.start(2)
            entries = [Entry(1, i, 1, kv_set("k", str(i))) for i in (1, 2, 3)]
            requests = [
                AppendEntriesRequest(term=1, sender=1, prev_log_term=0, prev_log_index=0,
                                     leader_commit=0, seq=1, entries=entries),
                AppendEntriesRequest(term=1, sender=1, prev_log_term=0, prev_log_index=0,
                                     leader_commit=0, seq=2),
                AppendEntriesRequest(term=1, sender=1, prev_log_term=1, prev_log_index=9,
                                     leader_commit=0, seq=3),
            ]
            replies = [await raft.submit_request(r) for r in requests]
            with trio.fail_after(10):  # generous: a misrouted answer leaves a reply waiting
                heartbeat, probe = await replies[1].result(), await replies[2].result()
            assert not replies[0].done  # its entries are not durable yet
            assert (heartbeat.seq, heartbeat.success, heartbeat.match_index) == (2, True, 0)
            assert (probe.seq, probe.success, probe.match_index) == (3, False, 9)
            GatedLogStore.gate.set()
            with trio.fail_after(10):
                first = await replies[0].result()
            assert (first.seq, first.success, first.match_index) == (1, True, 3)
            await c.stop_all()

    run(main)
