"""The KV store over HTTP: three ``fastraft-kv serve`` processes on 127.0.0.1 with lmdb stores
(TCP Raft network), ``CLIENTS`` concurrent ``KVClient`` writers, each round a fixed number of
acknowledged writes; the nodes' core compiled or pure (FASTRAFT_PURE_PYTHON=1 in their
environment), side by side. The comparison with etcd is ``run_vs_etcd.py`` (it needs etcd and
the load generator); this file needs neither, so CI's quick pass keeps it from rotting."""

import os

import pytest
import trio

from fastraft.kv import Set
from fastraft.kv.client import KVClient
from fastraft.kv.local_cluster import LocalCluster

CLIENTS = 64


@pytest.mark.parametrize("core", ["compiled", "pure"])
def test_kv_http_writes_three_lmdb_nodes(bench, core, tmp_path):
    writes_per_client = bench.scaled(20, 2)
    env = dict(os.environ)
    env.pop("FASTRAFT_PURE_PYTHON", None)
    if core == "pure":
        env["FASTRAFT_PURE_PYTHON"] = "1"

    async def main():
        with trio.fail_after(600):
            async with LocalCluster(str(tmp_path), env=env) as cluster:
                for i in (1, 2, 3):
                    await cluster.start(i)
                addrs = cluster.addrs()
                async with KVClient(addrs, deadline_s=30) as client:
                    await client.init(addr=addrs[0])
                    for i in (2, 3):
                        await client.add_learner(i, addrs[i - 1])
                    await client.change_membership([1, 2, 3])
                    acked = [0]

                    async def writer(c: int) -> None:
                        for k in range(writes_per_client):
                            await client.write(Set(f"c{c}-k{k}", "v" * 100))
                            acked[0] += 1

                    async def one_round() -> None:
                        async with trio.open_nursery() as nursery:
                            for c in range(CLIENTS):
                                nursery.start_soon(writer, c)

                    def timed() -> None:
                        trio.from_thread.run(one_round)

                    await trio.to_thread.run_sync(
                        lambda: bench.run(f"kv-http-{CLIENTS}-clients", timed, rounds=5,
                                          warmup_rounds=1))
                    assert acked[0] >= CLIENTS * writes_per_client
                    bench.per_item(CLIENTS * writes_per_client)

    trio.run(main)
