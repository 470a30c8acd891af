"""The KV suite: fastraft's KV API over HTTP (three ``fastraft-kv serve`` processes, lmdb
stores synced on every commit, TCP between nodes) and etcd through its JSON gateway (three
members, its default WAL fsync), driven by the same load generator (``loadgen.py``): writes
and linearizable reads (fastraft ``/consistent_read``, ReadIndex; etcd's default range) at
1 ... 256 clients, 100-byte values, every request to the leader.

Both clusters stay up for the whole suite and, in every repetition, each point runs on
fastraft then on etcd (A B A B). The floors are measured in the same repetitions, at 64
clients or writes in flight:

* ``ceiling``: the same generator against fastraft's HTTP server answering every request at
  once with a fixed answer (``kv/http_ceiling.py fastraft``): what the HTTP front alone allows;
* ``ceiling-hypercorn``: the same fixed answer served by hypercorn (``kv/http_ceiling.py
  hypercorn``), for scale;
* ``embedded API``: the same three-node Raft (lmdb log synced on every commit, TCP between
  nodes) written through ``Raft.client_write`` inside the leader's process, no HTTP
  (``clusters.Cluster``, the cluster suite's harness): what Raft alone allows.

With ``rocksdict`` installed, the writes run on a third system too, ``fastraft-rocksdb``: the
same KV nodes with ``--log-store rocksdb`` (the state machine stays in lmdb).

The one-client write row has its two parts measured in the same repetitions: ``ceiling`` at
one client (the load generator's HTTP round trip to a server that answers at once) and the
embedded API's one writer (``p50_ms``, ``p99_ms`` in its record: Raft's commit and apply,
no HTTP). A KV write at one client costs about their sum; what it costs beyond is the KV
node's own work on the path (routing, codec, the state machine's apply).
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

from . import loadgen
from .clusters import Cluster
from .common import ROCKSDB_MISSING, have_rocksdict
from .peers import etcd

HERE = os.path.dirname(os.path.abspath(__file__))
CEILING_CLIENTS = 64


class FastraftKVCluster:
    """Three KV nodes on ports of the run's range, formed through the API, kept up by trio in
    a background thread until ``stop``."""

    def __init__(self, workdir: str, ports: list[int], serve_args: tuple = (),
                 name: str = "kv-fastraft") -> None:
        self.workdir, self.ports = os.path.join(workdir, name), ports
        self.serve_args = tuple(serve_args)  # more ``fastraft-kv serve`` options
        self.endpoints: list[str] = []
        self.pids: list[int] = []
        self._up, self._down = threading.Event(), None
        self._error: BaseException | None = None
        self._token = None
        self._thread = threading.Thread(target=self._main, daemon=True)

    def _main(self) -> None:
        import trio

        try:
            trio.run(self._serve)
        except BaseException as e:  # reported to the caller of start
            self._error = e
            self._up.set()

    async def _serve(self) -> None:
        import trio

        from fastraft.kv.client import KVClient
        from fastraft.kv.local_cluster import LocalCluster, NodeProcess

        self._token = trio.lowlevel.current_trio_token()
        self._down = trio.Event()
        async with LocalCluster(self.workdir, store="lmdb", network="tcp",
                                serve_args=self.serve_args) as cluster:
            for i in (1, 2, 3):  # on this run's ports: a restart uses the node's own
                cluster.nodes[i] = NodeProcess(
                    i, f"127.0.0.1:{self.ports[i - 1]}", f"127.0.0.1:{self.ports[i + 2]}",
                    os.path.join(self.workdir, f"n{i}"), os.path.join(self.workdir, f"n{i}.log"))
                await cluster.restart(i)
            addrs = cluster.addrs()
            async with KVClient(addrs, deadline_s=30) as client:
                await client.init(addr=addrs[0])
                for i in (2, 3):
                    await client.add_learner(i, addrs[i - 1])
                await client.change_membership([1, 2, 3])
            self.endpoints = [f"http://{a}" for a in addrs]
            self.pids = [cluster.nodes[i].pid for i in (1, 2, 3)]
            self._up.set()
            await self._down.wait()

    def __enter__(self) -> "FastraftKVCluster":
        self._thread.start()
        if not self._up.wait(120) or self._error is not None:
            raise RuntimeError(f"the fastraft KV cluster did not start: {self._error}")
        return self

    def __exit__(self, *exc) -> None:
        import trio

        if self._token is not None and self._thread.is_alive():
            trio.from_thread.run_sync(self._down.set, trio_token=self._token)
        self._thread.join(60)


class CeilingServer:
    """``kv/http_ceiling.py SERVER``: an HTTP server answering at once (``fastraft``: the
    server a node uses)."""

    def __init__(self, port: int, server: str = "fastraft") -> None:
        self.port, self.server = port, server

    def __enter__(self) -> "CeilingServer":
        self.p = subprocess.Popen([sys.executable, os.path.join(HERE, "kv", "http_ceiling.py"),
                                   self.server, f"127.0.0.1:{self.port}"],
                                  stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
        line = self.p.stdout.readline()
        if not line.startswith("listening"):
            self.__exit__()
            raise RuntimeError("the ceiling server did not start")
        self.url = "http://" + line.split()[-1]
        return self

    def __exit__(self, *exc) -> None:
        self.p.terminate()
        self.p.wait(30)


def _leader(target: str, endpoints: list[str], timeout_s: float = 30.0) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:  # bounded by the deadline
        url = loadgen.TARGETS[target].leader(endpoints)
        if url:
            return url
        time.sleep(0.1)
    raise RuntimeError(f"{target}: no leader in {timeout_s} s")


#: the second fastraft system: the same nodes with their logs in RocksDB (writes only: a
#: read does not touch the log)
ROCKSDB_SYSTEM = "fastraft-rocksdb"


def run(ctx) -> None:
    plan = ctx.plan
    keys = 200 if plan.mode == "smoke" else 10_000
    with FastraftKVCluster(ctx.workdir, ctx.ports.take(6)) as fr:
        systems = [("fastraft", fr.endpoints, fr.pids)]
        rocks = None
        if have_rocksdict():
            try:
                rocks = FastraftKVCluster(ctx.workdir, ctx.ports.take(6),
                                          ("--log-store", "rocksdb"), "kv-fastraft-rocksdb")
                rocks.__enter__()
                systems.append((ROCKSDB_SYSTEM, rocks.endpoints, rocks.pids))
            except Exception as e:
                ctx.results.skip("fastraft with the RocksDB log (KV suite)", f"did not start: {e}",
                                 ctx.say)
                rocks = None
        else:
            ctx.results.skip("fastraft with the RocksDB log (KV suite)", ROCKSDB_MISSING, ctx.say)
        etcd_cluster = None
        why = etcd.available()
        if why:
            ctx.results.skip("etcd (KV suite)", why, ctx.say)
        else:
            try:
                etcd_cluster = etcd.EtcdCluster(ctx.workdir, ctx.ports.take(6)).__enter__()
                systems.append(("etcd", etcd_cluster.endpoints, etcd_cluster.pids))
                ctx.peer_versions["etcd"] = etcd.version()
            except Exception as e:
                ctx.results.skip("etcd (KV suite)", f"did not start: {e}", ctx.say)
        embedded = None
        try:
            embedded = Cluster("fastraft", 3, ctx.ports.take(3), ctx.workdir)
        except Exception as e:
            ctx.results.skip("embedded API floor (KV suite)", f"did not start: {e}", ctx.say)
        try:
            with CeilingServer(ctx.ports.take(1)[0]) as ceiling, \
                    CeilingServer(ctx.ports.take(1)[0], "hypercorn") as hypercorn:
                leaders = {s: _leader(_target(s), eps) for s, eps, _ in systems}
                for s in leaders:  # every key exists before reads start
                    loadgen.preload(leaders[s], _target(s), keys)
                for rep in range(plan.reps):
                    for op in ("write", "read"):
                        for clients in plan.kv_clients:
                            for entry in list(systems):  # A then B
                                system, endpoints, pids = entry
                                if system == ROCKSDB_SYSTEM and op != "write":
                                    continue
                                if not ctx.step(f"KV {op} at {clients} clients {system} "
                                                f"rep {rep + 1}"):
                                    return
                                try:
                                    url = _leader(_target(system), endpoints)
                                    r = loadgen.run_point(url, _target(system), op, clients,
                                                          plan.warmup_s, plan.duration_s, keys,
                                                          pids)
                                except Exception as e:  # one system failing spares the other
                                    ctx.results.skip(f"KV {system}: {op} at {clients} clients and "
                                                     "the rest of the suite", f"failed: {e}", ctx.say)
                                    systems.remove(entry)
                                    continue
                                _record(ctx, system, op, clients, rep, r,
                                        leader=endpoints.index(url) if url in endpoints else None)
                    if not ctx.step(f"load generator ceiling rep {rep + 1}"):
                        return
                    for name, server, clients in (
                            ("ceiling", ceiling, CEILING_CLIENTS),
                            ("ceiling-hypercorn", hypercorn, CEILING_CLIENTS),
                            ("ceiling", ceiling, 1)):  # the one-client row's HTTP round trip
                        r = loadgen.run_point(server.url, "fastraft", "write", clients,
                                              plan.warmup_s, plan.duration_s, keys,
                                              [server.p.pid])
                        _record(ctx, name, "write", clients, rep, r)
                    if embedded is not None and ctx.step(f"embedded API rep {rep + 1}"):
                        try:
                            r = embedded.on_leader({
                                "cmd": "throughput", "window": CEILING_CLIENTS, "payload": 100,
                                "warmup_s": plan.warmup_s, "duration_s": plan.duration_s})
                            ctx.results.add("kv", system="embedded API", op="write",
                                            clients=CEILING_CLIENTS, rep=rep, ops_s=r["ops_s"],
                                            errors=r.get("errors", 0), client_failures=[],
                                            server_cpu_us_per_op=None, latency_ms=[])
                            # one writer, one write at a time: the one-client row's Raft part
                            r = embedded.on_leader({
                                "cmd": "latency", "payload": 100, "warmup_s": plan.warmup_s,
                                "duration_s": plan.duration_s})
                            ctx.results.add("kv", system="embedded API", op="write", clients=1,
                                            rep=rep, ops_s=r["ops_per_s"],
                                            errors=r.get("errors", 0), client_failures=[],
                                            server_cpu_us_per_op=None, latency_ms=[],
                                            p50_ms=r.get("p50_ms"), p99_ms=r.get("p99_ms"))
                        except Exception as e:
                            ctx.results.skip("embedded API floor", f"failed: {e}", ctx.say)
                            embedded.stop()
                            embedded = None
        finally:
            if embedded is not None:
                embedded.stop()
            if etcd_cluster is not None:
                etcd_cluster.__exit__(None, None, None)
            if rocks is not None:
                rocks.__exit__(None, None, None)


def _target(system: str) -> str:
    """The load generator's target (how it speaks to the system) of a KV system."""
    return "fastraft" if system == ROCKSDB_SYSTEM else system


def _record(ctx, system, op, clients, rep, r, leader: int | None = None) -> None:
    """One point; CPU per answer from /proc: the servers' in all, the leader's (``leader``:
    its index among the servers), and the load generator's own process."""
    lat = r["latency_ns"]
    # the CPU was counted over the whole point, warm-up included: per answer in that time
    ok = r.get("answered") or r["ok"]
    each = r.get("server_cpu_s_each") or []
    ctx.results.add("kv", system=system, op=op, clients=clients, rep=rep, ops_s=r["ops_s"],
                    errors=r["errors"], client_failures=r["client_failures"],
                    server_cpu_us_per_op=(r["server_cpu_s"] / ok * 1e6) if ok else None,
                    leader_cpu_us_per_op=(each[leader] / ok * 1e6
                                          if ok and leader is not None and leader < len(each)
                                          else None),
                    loadgen_cpu_us_per_op=(r["loadgen_cpu_s"] / ok * 1e6) if ok else None,
                    load_avg=os.getloadavg()[0],
                    latency_ms=[round(x / 1e6, 3) for x in lat])


def count_steps(plan) -> int:
    systems = 3 if have_rocksdict() else 2  # the RocksDB-log system runs the writes only
    return plan.reps * (len(plan.kv_clients) * (2 * 2 + systems - 2) + 2)
