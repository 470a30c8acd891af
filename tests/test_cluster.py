"""The guide's test_cluster, told with fastraft: three ``fastraft-kv serve`` processes on
127.0.0.1 with lmdb stores, driven by ``KVClient``. The membership is checked after every
step, values are read on every node, a write sent to a follower reaches the leader, a
linearizable read on a follower is answered with ForwardToLeader, and the cluster shrinks to
node 3 alone. Run for both Raft networks, plain and with TLS (certificates made by
``fastraft.kv.certs``: mutual TLS on the TCP network's port, HTTPS with client certificates
on the API, and for the HTTP network Raft over that HTTPS)."""

import pytest
import trio

from fastraft import ForwardToLeader
from fastraft.kv import CompareAndSwap, Delete, Set
from fastraft.kv.certs import make_pki
from fastraft.kv.client import KVClient
from fastraft.kv.local_cluster import LocalCluster

TIMEOUT_S = 120
#: Raft over HTTP/1.1 sends one request at a time per peer, and on a loaded machine a round
#: trip through two HTTP stacks may take tens of milliseconds: slower timers keep a healthy
#: leader from being deposed by late heartbeats (the TCP network pipelines and keeps the
#: defaults).
SLOW_TIMERS = ("--heartbeat-ms", "100", "--election-timeout-ms", "1000", "2000")


def voters_and_learners(metrics: dict) -> tuple[list, list]:
    m = metrics["membership_config"]["membership"]
    return m["configs"], m["learners"]


async def read_everywhere(client: KVClient, addrs: list, key: str, want, timeout_s=10.0):
    """Local reads of ``key`` on every node, once each has applied the value (bounded)."""
    got = {}
    with trio.fail_after(timeout_s):
        for addr in addrs:
            while True:  # until this node has applied it; bounded by fail_after
                got[addr] = await client.read(key, addr=addr)
                if got[addr] == want:
                    break
                await trio.sleep(0.02)
    return got


@pytest.mark.parametrize("network", ["tcp", "http", "tcp+tls", "http+tls"])
def test_cluster(tmp_path, network):
    peer_tls = None
    if network.endswith("+tls"):
        make_pki(str(tmp_path / "pki"), "test-cluster", [1, 2, 3])
        peer_tls, network = (str(tmp_path / "pki"), "test-cluster"), network[:-4]

    async def main():
        with trio.fail_after(TIMEOUT_S):
            serve_args = SLOW_TIMERS if network == "http" else ()
            async with LocalCluster(str(tmp_path), network=network, serve_args=serve_args,
                                    verbose=1, peer_tls=peer_tls) as cluster:
                for i in (1, 2, 3):
                    await cluster.start(i)
                try:
                    await guide_flow(cluster, network)
                    if peer_tls is not None and network == "tcp":
                        await plain_peer_is_refused(cluster)
                except BaseException:
                    for i in (1, 2, 3):  # shown by pytest with the failure
                        print(f"--- node {i} log ---\n{cluster.log_tail(i)}")
                    raise

    trio.run(main)


async def plain_peer_is_refused(cluster: LocalCluster) -> None:
    """With peer TLS on, a vote request over plain TCP gets nowhere."""
    from fastraft import Node
    from fastraft.messages import VoteRequest
    from fastraft.net import NetworkError, TcpNetwork

    async with TcpNetwork().client(3, Node(cluster.nodes[3].raft_addr)) as c:
        with pytest.raises(NetworkError):
            await c.vote(VoteRequest(term=1 << 40, sender=1, last_log_term=1 << 40,
                                     last_log_index=1 << 40, leader_transfer=True), timeout_s=5)
    with trio.fail_after(10):
        while "refused a raft connection" not in cluster.log_tail(3, 20000):
            await trio.sleep(0.05)


async def guide_flow(cluster: LocalCluster, network: str) -> None:
    a1, a2, a3 = cluster.addrs()
    tls = cluster.client_tls()
    async with KVClient([a1], deadline_s=20, tls=tls) as client:
        # 1. node 1 alone
        await client.init()
        m = await client.metrics(a1)
        assert voters_and_learners(m) == ([[1]], [])
        assert m["membership_config"]["membership"]["nodes"]["1"]["addr"] == a1

        # 2. nodes 2 and 3 join as learners (raft addresses learned from them)
        await client.add_learner(2, a2)
        await client.add_learner(3, a3)
        m = await client.metrics(a1)
        assert voters_and_learners(m) == ([[1]], [2, 3])
        nodes = m["membership_config"]["membership"]["nodes"]
        assert {n: nodes[n]["addr"] for n in nodes} == {"1": a1, "2": a2, "3": a3}
        if network == "tcp":
            assert all(nodes[n]["raft_addr"] != nodes[n]["addr"] for n in nodes)
        else:
            assert all(nodes[n]["raft_addr"] == nodes[n]["addr"] for n in nodes)

        # 3. all three vote
        answer = await client.change_membership([1, 2, 3])
        assert answer["membership"]["membership"]["configs"] == [[1, 2, 3]]
        for addr in (a1, a2, a3):
            with trio.fail_after(10):
                while voters_and_learners(await client.metrics(addr)) != ([[1, 2, 3]], []):
                    await trio.sleep(0.02)
        m = await client.metrics(a1)
        assert m["state"] == "Leader" and m["current_leader"] == 1

        # 4. a write on the leader, read on every node
        result = await client.write(Set("foo", "bar"))
        assert result.leader_id == 1 and result.value == "bar"
        assert result.log_id.index == m["last_log_index"] + 1
        assert set((await read_everywhere(client, [a1, a2, a3], "foo", "bar")).values()) == {"bar"}

        # 5. a write sent to a follower reaches the leader
        with pytest.raises(ForwardToLeader) as refused:
            await client.write(Set("foo", "wow"), addr=a2, follow_leader=False)
        assert refused.value.leader_id == 1
        result = await client.write(Set("foo", "wow"), addr=a2)
        assert result.leader_id == 1 and client.leader_addr == a1
        await read_everywhere(client, [a1, a2, a3], "foo", "wow")
        cas = await client.write(CompareAndSwap("foo", "wow", "cas"), addr=a3)
        assert cas.swapped is True and cas.value == "cas"
        cas = await client.write(CompareAndSwap("foo", "wow", "again"))
        assert cas.swapped is False and cas.value == "cas"
        gone = await client.write(Delete("gone"))
        assert gone.value is None
        assert await client.consistent_read("gone") is None

        # 6. a linearizable read on a follower: ForwardToLeader, nothing read
        with pytest.raises(ForwardToLeader) as refused:
            await client.consistent_read("foo", addr=a2, follow_leader=False)
        assert refused.value.leader_id == 1
        assert refused.value.leader_node.get("api") == a1
        assert await client.consistent_read("foo", addr=a2) == "cas"  # followed

        # 7. shrink to node 3 alone; it serves writes and reads by itself
        answer = await client.change_membership([3])
        assert answer["membership"]["membership"]["configs"] == [[3]]
        with trio.fail_after(15):
            while (await client.metrics(a3))["state"] != "Leader":
                await trio.sleep(0.05)
        m3 = await client.metrics(a3)
        assert voters_and_learners(m3) == ([[3]], [])
        assert set(m3["membership_config"]["membership"]["nodes"]) == {"3"}
        async with KVClient([a3], deadline_s=20, tls=tls) as client3:
            result = await client3.write(Set("foo", "zoo"))
            assert result.leader_id == 3
            assert await client3.consistent_read("foo") == "zoo"
            assert await client3.read("foo", addr=a3) == "zoo"
