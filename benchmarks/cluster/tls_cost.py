#!/usr/bin/env python3
"""What mutual TLS between the nodes costs a cluster: one writer's latency and the write
throughput with 64 and 256 writes in flight, plain TCP against TLS, side by side in one run.

    python benchmarks/cluster/tls_cost.py [--rounds 5] [--duration 5] [--base-port 33000]

Two clusters of three node processes (``benchmarks/clusters.py``: ``cluster/control_node.py``,
lmdb log synced to disk on every commit, 100-byte payloads, load generated inside the
leader's process), both up for the whole run: ``plain`` and ``tls`` (mutual TLS with a
throwaway CA and certificates made for the run, ``fastraft.kv.certs``). Every round measures
each point on ``plain`` then on ``tls`` (A B A B), so both see the same machine; the summary
gives medians over rounds and the TLS / plain ratios. The target: TLS at most 30% lower
throughput and at most 20% higher p50 latency. Ports: ``--base-port`` + 1..3 (plain) and
+ 11..13 (tls); by default RAFTBENCH_BASE_PORT, else free ports.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(os.path.dirname(HERE)))

from benchmarks.clusters import Cluster  # noqa: E402

PAYLOAD_BYTES = 100


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _cluster(workdir: str, ports: list[int], pki: str | None) -> Cluster:
    """Three nodes; with ``pki`` (a certificate folder) they talk mutual TLS
    (``node_runtime.bench_tls`` reads FASTRAFT_BENCH_TLS from the environment they inherit)."""
    saved = os.environ.pop("FASTRAFT_BENCH_TLS", None)
    if pki is not None:
        os.environ["FASTRAFT_BENCH_TLS"] = pki
    try:
        return Cluster("fastraft", 3, ports, workdir)
    finally:
        os.environ.pop("FASTRAFT_BENCH_TLS", None)
        if saved is not None:
            os.environ["FASTRAFT_BENCH_TLS"] = saved


def measure(cluster: Cluster, point: str, args) -> dict:
    if point == "latency":
        return cluster.on_leader({"cmd": "latency", "payload": PAYLOAD_BYTES,
                                  "warmup_s": args.warmup, "duration_s": args.duration})
    window = int(point.removeprefix("w"))
    return cluster.on_leader({"cmd": "throughput", "payload": PAYLOAD_BYTES, "window": window,
                              "warmup_s": args.warmup, "duration_s": args.duration})


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--duration", type=float, default=5.0)
    ap.add_argument("--warmup", type=float, default=1.0)
    ap.add_argument("--points", default="latency,w64,w256")
    ap.add_argument("--base-port", type=int, default=int(os.environ.get("RAFTBENCH_BASE_PORT", 0)))
    ap.add_argument("--json-out", help="append every measurement as a JSON line")
    args = ap.parse_args(argv)
    points = [p for p in args.points.split(",") if p]
    from fastraft.kv.certs import make_pki

    workdir = tempfile.mkdtemp(prefix="fastraft-tls-cost-")
    pki = os.path.join(workdir, "pki")
    make_pki(pki, "bench", range(1, 4))
    if args.base_port:
        ports = {"plain": [args.base_port + i for i in (1, 2, 3)],
                 "tls": [args.base_port + i for i in (11, 12, 13)]}
    else:
        free = _free_ports(6)
        ports = {"plain": free[:3], "tls": free[3:]}
    clusters = {}
    got = {(p, case): [] for p in points for case in ("plain", "tls")}
    try:
        clusters["plain"] = _cluster(workdir, ports["plain"], None)
        clusters["tls"] = _cluster(workdir, ports["tls"], pki)
        for r in range(args.rounds):  # bounded
            for p in points:
                for case in ("plain", "tls"):
                    res = measure(clusters[case], p, args)
                    got[p, case].append(res)
                    if args.json_out:
                        with open(args.json_out, "a") as f:
                            f.write(json.dumps({"round": r, "point": p, "case": case, **res}) + "\n")
                    shown = (f"p50 {res['p50_ms']:.3f} ms p99 {res['p99_ms']:.3f} ms"
                             if p == "latency" else f"{res['ops_s']:.0f} writes/s")
                    print(f"round {r} {p:8s} {case:5s} {shown}", flush=True)
    except BaseException:
        for root, _, files in os.walk(workdir):  # the nodes' logs say why
            for name in sorted(f for f in files if f.endswith(".log")):
                with open(os.path.join(root, name), errors="replace") as f:
                    print(f"--- {name} ---\n{f.read()[-3000:]}", file=sys.stderr)
        raise
    finally:
        for c in clusters.values():
            c.stop()
        shutil.rmtree(workdir, ignore_errors=True)

    def med(p, case, key):
        return statistics.median(x[key] for x in got[p, case])

    print(f"\n| point (median of {args.rounds} rounds) | plain | TLS | TLS / plain | target |")
    print("|---|---|---|---|---|")
    for p in points:
        rows = ([("one writer's p50, ms", "p50_ms", "<= 1.20"), ("one writer's p99, ms", "p99_ms", "")]
                if p == "latency" else [(f"writes/s, {p[1:]} in flight", "ops_s", ">= 0.70")])
        for label, key, target in rows:
            a, b = med(p, "plain", key), med(p, "tls", key)
            print(f"| {label} | {a:.3f} | {b:.3f} | {b / a:.2f} | {target} |")
    print("\nper round:", {f"{p}-{c}": [round(x.get("p50_ms", x.get("ops_s", 0)), 3) for x in v]
                           for (p, c), v in got.items()})


if __name__ == "__main__":
    main()
