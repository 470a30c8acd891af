"""KV nodes as a server runs them (``run_node``: its HTTP server on a real socket, Raft over TCP or
HTTP on 127.0.0.1), in this process, driven by ``KVClient``."""

import json

import httpx
import pytest
import trio

from fastraft import ConfigError, OutcomeUnknown, StorageError
from fastraft.core import Config
from fastraft.codec import encode_message
from fastraft.kv import Set
from fastraft.kv.client import ClusterUnavailable, KVClient
from fastraft.kv.server import NodeOptions, run_node
from fastraft.messages import AppendEntriesRequest, VoteRequest

TIMEOUT_S = 60


def log_store_kinds() -> list[str]:
    """The durable log stores installed here: lmdb, and rocksdb with the ``rocksdb`` extra."""
    try:
        import rocksdict  # noqa: F401
    except ImportError:
        return ["lmdb"]
    return ["lmdb", "rocksdb"]


class Nodes:
    """Nodes run with ``run_node`` in ``nursery``, each stoppable on its own."""

    def __init__(self, nursery, network="tcp", store="memory", base_dir=None, log_store="lmdb"):
        self.nursery = nursery
        self.network = network
        self.store = store
        self.log_store = log_store
        self.base_dir = base_dir
        self.info = {}
        self._scopes = {}

    async def start(self, i, addr="127.0.0.1:0"):
        scope = trio.CancelScope()
        self._scopes[i] = scope
        # Raft over HTTP: slower timers, as in tests/test_cluster.py
        config = (Config(heartbeat_interval_ms=100, election_timeout_min_ms=1000,
                         election_timeout_max_ms=2000) if self.network == "http" else Config())
        options = NodeOptions(node_id=i, addr=addr, raft_addr="127.0.0.1:0", config=config,
                              network=self.network, store=self.store, log_store=self.log_store,
                              data_dir=None if self.base_dir is None else f"{self.base_dir}/n{i}")

        async def node(task_status):
            with scope:
                await run_node(options, task_status=task_status)

        self.info[i] = await self.nursery.start(node)
        return self.info[i]

    def stop(self, i):
        self._scopes[i].cancel()

    def stop_all(self):
        for scope in self._scopes.values():
            scope.cancel()


async def form(client, nodes, ids):
    await client.init(addr=nodes.info[ids[0]].addr)
    for i in ids[1:]:
        await client.add_learner(i, nodes.info[i].addr)
    await client.change_membership(ids)


@pytest.mark.parametrize("network", ["tcp", "http"])
def test_the_client_follows_the_leader_when_the_leader_goes(network):
    async def main():
        with trio.fail_after(TIMEOUT_S):
            async with trio.open_nursery() as nursery:
                nodes = Nodes(nursery, network)
                for i in (1, 2, 3):
                    await nodes.start(i)
                addrs = [nodes.info[i].addr for i in (1, 2, 3)]
                async with KVClient(addrs, deadline_s=15) as client:
                    await form(client, nodes, [1, 2, 3])
                    acked = {}
                    for k in range(20):
                        r = await client.write(Set(f"k{k}", str(k)))
                        acked[f"k{k}"] = str(k)
                    assert r.leader_id == 1 and client.leader_addr == addrs[0]
                    nodes.stop(1)
                    # let it close its connections: a write on a connection the server resets
                    # after the request went out would (rightly) be OutcomeUnknown
                    await trio.sleep(0.5)
                    r = await client.write(Set("after", "stop"))  # retried until a new leader
                    assert r.leader_id in (2, 3)
                    assert client.leader_addr == addrs[r.leader_id - 1]
                    for key, value in acked.items():
                        assert await client.consistent_read(key) == value
                    m = await client.metrics(addrs[r.leader_id - 1])
                    assert m["state"] == "Leader" and m["current_term"] > 1
                nodes.stop_all()

    trio.run(main)


@pytest.mark.parametrize("log_store", log_store_kinds())
def test_an_lmdb_node_keeps_its_data_across_a_restart_and_its_id(tmp_path, log_store):
    async def main():
        with trio.fail_after(TIMEOUT_S):
            async with trio.open_nursery() as nursery:
                nodes = Nodes(nursery, store="lmdb", base_dir=str(tmp_path), log_store=log_store)
                info = await nodes.start(1)
                async with KVClient([info.addr]) as client:
                    await client.init()
                    await client.write(Set("durable", "yes"))
                nodes.stop(1)
                await trio.sleep(0.2)
                info = await nodes.start(1, addr=info.addr)
                async with KVClient([info.addr]) as client:
                    assert await client.consistent_read("durable") == "yes"
                    m = await client.metrics()
                    assert m["membership_config"]["membership"]["configs"] == [[1]]
                nodes.stop(1)
            options = NodeOptions(node_id=2, addr="127.0.0.1:0", raft_addr="127.0.0.1:0",
                                  store="lmdb", data_dir=str(tmp_path / "n1"))
            with pytest.raises(ConfigError, match="holds the data of node 1, not node 2"):
                await run_node(options)
            if len(log_store_kinds()) > 1:  # the other log store refuses this one's log
                other = "rocksdb" if log_store == "lmdb" else "lmdb"
                options = NodeOptions(node_id=1, addr="127.0.0.1:0", raft_addr="127.0.0.1:0",
                                      store="lmdb", data_dir=str(tmp_path / "n1"),
                                      log_store=other)
                with pytest.raises(StorageError, match=f"holds a {log_store} store, not a {other}"):
                    await run_node(options)

    trio.run(main)


def test_the_raft_routes_refuse_bytes_that_do_not_decode():
    async def main():
        with trio.fail_after(TIMEOUT_S):
            async with trio.open_nursery() as nursery:
                nodes = Nodes(nursery, "http")
                info = await nodes.start(1)
                base = f"http://{info.addr}"
                vote = encode_message(VoteRequest(term=5, sender=2, last_log_term=0,
                                                  last_log_index=0))
                append = encode_message(AppendEntriesRequest(term=1, sender=2, prev_log_term=0,
                                                             prev_log_index=0, leader_commit=0))
                async with httpx.AsyncClient(trust_env=False) as http:
                    for route, body, why in [
                        ("/raft-append", b"garbage", "bad Raft message"),
                        ("/raft-append", vote, "takes AppendEntriesRequest, not VoteRequest"),
                        ("/raft-vote", vote[:-3], "bad Raft message"),
                        ("/raft-snapshot", append, "takes InstallSnapshotRequest"),
                    ]:
                        r = await http.post(base + route, content=body)
                        assert r.status_code == 400 and why in r.text, (route, r.text)
                    r = await http.get(base + "/raft-vote")
                    assert r.status_code == 405
                    m = json.loads((await http.get(base + "/metrics")).content)["Ok"]
                    assert m["current_term"] == 0 and m["last_log_index"] == 0  # untouched
                    # a well-formed vote is served: the node answers with its own term
                    r = await http.post(base + "/raft-vote", content=vote)
                    assert r.status_code in (200, 204)
                nodes.stop_all()

    trio.run(main)


def test_the_client_gives_up_at_its_deadline_and_never_resends_a_lost_write():
    async def main():
        with trio.fail_after(TIMEOUT_S):
            # nothing listens on a port just released
            listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
            closed_port = listeners[0].socket.getsockname()[1]
            await listeners[0].aclose()
            async with KVClient([f"127.0.0.1:{closed_port}"], deadline_s=0.5) as client:
                t0 = trio.current_time()
                with pytest.raises(ClusterUnavailable, match="within 0.5 s"):
                    await client.write(Set("a", "b"))
                assert trio.current_time() - t0 < 5

            # a peer that takes the request and hangs up without an answer
            requests = []

            async def hang_up(stream):
                requests.append(await stream.receive_some(65536))
                await stream.aclose()

            async with trio.open_nursery() as nursery:
                listeners = await nursery.start(trio.serve_tcp, hang_up, 0)
                port = listeners[0].socket.getsockname()[1]
                async with KVClient([f"127.0.0.1:{port}"], deadline_s=1) as client:
                    with pytest.raises(OutcomeUnknown):
                        await client.write(Set("a", "b"))
                    assert len(requests) == 1  # sent once, never again
                    with pytest.raises(ClusterUnavailable):
                        await client.read("a")  # reads are retried until the deadline
                    assert len(requests) > 2
                nursery.cancel_scope.cancel()

    trio.run(main)
