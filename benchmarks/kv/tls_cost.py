"""What TLS costs the KV API: a plain cluster against a secured one, side by side in one run.

    python benchmarks/kv/tls_cost.py [--rows write@64,write@1] [--duration 10] [--reps 3]
        [--json-out results.jsonl]

Two clusters of three ``fastraft-kv serve`` processes on 127.0.0.1, lmdb stores (fsync on
every commit), the TCP Raft network, both up for the whole run:

* ``http``: plain HTTP API, plain Raft TCP;
* ``https``: the README's secured cluster: HTTPS API with client certificates (the load
  generator shows a client-role certificate), mutual TLS on the Raft port.

The points alternate (for each rep, each row on ``http`` then on ``https``). The load
generator is this file's closed loop, the same code for both systems: ``CLIENTS`` keep-alive
connections to the leader, each with one ``POST /write`` in flight (100-byte values over
10,000 keys), TLS through Python's ``ssl`` module (asyncio's ``ssl=`` transport) and the
answers parsed by httptools. It runs in one process on the same machine, so the client's TLS
work is counted too. Reported per point: writes/s, p50 and p99 latency, server CPU per
write (µs, the three nodes' utime + stime from /proc), the load generator's own CPU (cores)
and the load average; the summary
gives medians over reps and the https/http ratios. FASTRAFT_BENCH_QUICK=1: 1 rep of 2 s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import ssl
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
QUICK = os.environ.get("FASTRAFT_BENCH_QUICK", "") not in ("", "0")
KEYS = 10_000
VALUE_BYTES = 100


def _args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", default="write@64,write@1", help="comma list of write@CLIENTS")
    p.add_argument("--duration", type=float, default=2.0 if QUICK else 10.0)
    p.add_argument("--warmup", type=float, default=1.0 if QUICK else 2.0)
    p.add_argument("--reps", type=int, default=1 if QUICK else 3)
    p.add_argument("--json-out", default=None)
    p.add_argument("--base-port", type=int, default=int(os.environ.get("RAFTBENCH_BASE_PORT", 0)),
                   help="HTTP ports BASE+1..3 and BASE+21..23, Raft ports BASE+11..13 and "
                        "BASE+31..33 (0, the default: free ports)")
    args = p.parse_args(argv)
    args.rows = [int(r.split("@")[1]) for r in args.rows.split(",") if r]
    return args


# -- the load generator: one asyncio process, run once per point -----------------------------

class _Answer:
    """httptools callbacks for one connection: the status and body of each answer."""

    def __init__(self) -> None:
        import httptools

        self.parser = httptools.HttpResponseParser(self)
        self.done = False
        self.body = b""

    def on_body(self, chunk: bytes) -> None:
        self.body += chunk

    def on_message_complete(self) -> None:
        self.done = True


async def _client(host, port, ctx, seed, warm_at, stop_at, latencies, counts) -> None:
    rng = random.Random(seed)
    reader, writer = await asyncio.open_connection(host, port, ssl=ctx)
    answer = _Answer()
    try:
        while time.monotonic() < stop_at:  # bounded by the point's duration
            key = f"key-{rng.randrange(KEYS):05d}"
            value = "".join(rng.choice("abcdefghij") for _ in range(VALUE_BYTES))
            body = json.dumps({"Set": {"key": key, "value": value}}).encode()
            request = (f"POST /write HTTP/1.1\r\nhost: {host}:{port}\r\ncontent-type: "
                       f"application/json\r\ncontent-length: {len(body)}\r\n\r\n").encode() + body
            t0 = time.monotonic()
            writer.write(request)
            answer.done, answer.body = False, b""
            while not answer.done:  # one answer; bounded by the server's own timeouts
                data = await reader.read(65536)
                if not data:
                    raise ConnectionError("the node closed the connection")
                answer.parser.feed_data(data)
            ok = answer.parser.get_status_code() == 200 and answer.body.startswith(b'{"Ok"')
            if t0 >= warm_at:
                counts["ok" if ok else "errors"] += 1
                if ok:
                    latencies.append(time.monotonic() - t0)
    finally:
        writer.close()


def _cpu_ticks(pids) -> int:
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total


def _own_cpu_s() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def _point(addr, ca, cert, key, clients, warmup, duration, pids) -> dict:
    host, port = addr.rsplit(":", 1)
    ctx = None
    if ca is not None:
        ctx = ssl.create_default_context(cafile=ca)
        ctx.check_hostname = False
        ctx.load_cert_chain(cert, key)
    latencies: list = []
    counts = {"ok": 0, "errors": 0}
    start = time.monotonic()
    warm_at, stop_at = start + warmup, start + warmup + duration
    tasks = [asyncio.ensure_future(_client(host, int(port), ctx, 1000 * clients + i, warm_at,
                                           stop_at, latencies, counts)) for i in range(clients)]
    await asyncio.sleep(max(0.0, warm_at - time.monotonic()))
    cpu0, t0, own0 = _cpu_ticks(pids), time.monotonic(), _own_cpu_s()
    await asyncio.wait_for(asyncio.gather(*tasks), warmup + duration + 60)
    cpu1, t1, own1 = _cpu_ticks(pids), time.monotonic(), _own_cpu_s()
    latencies.sort()
    n = len(latencies)
    ticks = os.sysconf("SC_CLK_TCK")
    return {"clients": clients, "ok": counts["ok"], "errors": counts["errors"],
            "writes_s": counts["ok"] / duration,
            "p50_ms": 1000 * latencies[n // 2] if n else None,
            "p99_ms": 1000 * latencies[min(n - 1, int(n * 0.99))] if n else None,
            "server_us_per_write": ((cpu1 - cpu0) / ticks * 1e6 / counts["ok"]
                                    if counts["ok"] else None),
            "loadgen_cores": (own1 - own0) / (t1 - t0),
            "measured_s": t1 - t0, "loadavg_1m": os.getloadavg()[0]}


def loadgen_main(argv) -> None:
    """``tls_cost.py loadgen ADDR CA|- CERT KEY CLIENTS WARMUP DURATION PIDS``: one point,
    printed as one JSON line."""
    addr, ca, cert, key, clients, warmup, duration, pids = argv
    ca = None if ca == "-" else ca
    result = asyncio.run(_point(addr, ca, cert, key, int(clients), float(warmup),
                                float(duration), [int(p) for p in pids.split(",")]))
    print(json.dumps(result), flush=True)


# -- the clusters and the alternation -----------------------------------------------------------

async def _cluster(stack, base: str, secured: bool, base_port: int):
    from fastraft.kv.certs import make_pki
    from fastraft.kv.client import KVClient
    from fastraft.kv.local_cluster import LocalCluster
    import trio

    pki = os.path.join(base, "pki")
    peer_tls = None
    if secured:
        make_pki(pki, "bench", [1, 2, 3], [("admin", "admin"), ("load", "client")])
        peer_tls = (pki, "bench")
    cluster = await stack.enter_async_context(LocalCluster(base, peer_tls=peer_tls))
    for i in (1, 2, 3):
        if base_port:
            await cluster.start(i, base_port + i, base_port + 10 + i)
        else:
            await cluster.start(i)
    addrs = cluster.addrs()
    async with KVClient(addrs, deadline_s=30, tls=cluster.client_tls()) as client:
        await client.init([(i, addrs[i - 1], cluster.nodes[i].raft_addr) for i in (1, 2, 3)],
                          addr=addrs[0])
    files = ((os.path.join(pki, "ca.pem"), os.path.join(pki, "client-load.pem"),
              os.path.join(pki, "client-load-key.pem")) if secured else ("-", "-", "-"))
    pids = ",".join(str(cluster.nodes[i].pid) for i in (1, 2, 3))
    return cluster, files, pids


async def _leader_addr(cluster) -> str:
    """The HTTP address of the cluster's leader now (asked before every point: under load a
    leader may change between points, and the load generator does not follow it)."""
    import trio

    from fastraft.kv.client import KVClient

    async with KVClient(cluster.addrs(), deadline_s=30, tls=cluster.client_tls()) as client:
        with trio.fail_after(30):
            while True:  # bounded by fail_after
                for addr in cluster.addrs():
                    m = await client.metrics(addr)
                    if m["state"] == "Leader":
                        return addr
                await trio.sleep(0.05)


async def main_async(args) -> None:
    from contextlib import AsyncExitStack

    import trio

    out = args.json_out or os.path.join(tempfile.mkdtemp(prefix="kv-tls-"), "results.jsonl")
    with tempfile.TemporaryDirectory(prefix="fastraft-tls-cost-") as base:
        async with AsyncExitStack() as stack:
            bp = args.base_port
            systems = {"http": await _cluster(stack, os.path.join(base, "http"), False, bp),
                       "https": await _cluster(stack, os.path.join(base, "https"), True,
                                               bp + 20 if bp else 0)}
            for rep in range(args.reps):
                for clients in args.rows:
                    for label, (cluster, files, pids) in systems.items():  # A/B, same row
                        addr = await _leader_addr(cluster)
                        cmd = [sys.executable, __file__, "loadgen", addr, *files, str(clients),
                               str(args.warmup), str(args.duration), pids]
                        with trio.fail_after(args.warmup + args.duration + 120):
                            done = await trio.run_process(cmd, capture_stdout=True,
                                                          stdin=subprocess.DEVNULL)
                        record = {"label": label, "rep": rep + 1,
                                  **json.loads(done.stdout.decode().splitlines()[-1])}
                        print(json.dumps(record), flush=True)
                        with open(out, "a") as f:
                            f.write(json.dumps(record) + "\n")
    print("\n" + summarize(out))
    print(f"\n(records: {out})")


def summarize(path: str) -> str:
    rows: dict = {}
    with open(path) as f:
        for line in f:
            r = json.loads(line)
            rows.setdefault((r["clients"], r["label"]), []).append(r)

    def med(recs, key):
        vals = [r[key] for r in recs if r.get(key) is not None]
        return statistics.median(vals) if vals else float("nan")

    lines = ["| clients | API | writes/s | p50 ms | p99 ms | server µs/write | loadgen cores | "
             "errors | reps | load avg |", "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for (clients, label), recs in sorted(rows.items()):
        lines.append(f"| {clients} | {label} | {med(recs, 'writes_s'):.0f} | "
                     f"{med(recs, 'p50_ms'):.2f} | {med(recs, 'p99_ms'):.2f} | "
                     f"{med(recs, 'server_us_per_write'):.0f} | "
                     f"{med(recs, 'loadgen_cores'):.2f} | {sum(r['errors'] for r in recs)} | {len(recs)} | "
                     f"{med(recs, 'loadavg_1m'):.1f} |")
    lines.append("")
    for clients in sorted({c for c, _ in rows}):
        if (clients, "http") in rows and (clients, "https") in rows:
            a, b = rows[(clients, "http")], rows[(clients, "https")]
            lines.append(f"{clients} clients, https / http: writes/s "
                         f"x{med(b, 'writes_s') / med(a, 'writes_s'):.2f}, p50 "
                         f"x{med(b, 'p50_ms') / med(a, 'p50_ms'):.2f}, server µs/write "
                         f"x{med(b, 'server_us_per_write') / med(a, 'server_us_per_write'):.2f}")
    return "\n".join(lines)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "loadgen":
        loadgen_main(sys.argv[2:])
    else:
        import trio

        trio.run(main_async, _args())
