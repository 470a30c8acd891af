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

``--points profile`` (with or without the others) profiles one writer's path instead of
timing it: a closed loop of one write at a time for ``--duration`` seconds, and per write the
CPU time of the leader and of the followers (utime + stime from /proc), the leader's context
switches, and with ``--strace`` the system calls of the leader and of one follower by name
(``strace -c -f`` attached for the window; strace slows the nodes, so its rounds say how
many calls, not how fast).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

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


def _cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _switches(pid: int) -> int:
    total = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/status") as f:
            total += sum(int(line.split()[1]) for line in f if "ctxt_switches" in line)
    return total


def _strace_calls(path: str) -> dict[str, int]:
    """{syscall: calls} from ``strace -c`` output."""
    calls = {}
    with open(path) as f:
        for line in f:
            m = re.match(r"\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:\d+\s+)?([a-z_0-9]+)\s*$", line)
            if m and m.group(2) != "total":
                calls[m.group(2)] = int(m.group(1))
    return calls


def profile(cluster: Cluster, args) -> dict:
    """One writer's path, per write: CPU of the leader and the followers, the leader's
    context switches, and (``--strace``) system calls of the leader and one follower."""
    leader = cluster.leader()
    pids = {i: p.p.pid for i, p in cluster.procs.items()}
    follower = min(i for i in pids if i != leader)
    tracers, outs = [], {}
    if args.strace:
        for who, i in (("leader", leader), ("follower", follower)):
            outs[who] = os.path.join(cluster.workdir, f"strace-{who}.txt")
            tracers.append(subprocess.Popen(["strace", "-c", "-f", "-o", outs[who], "-p",
                                             str(pids[i])], stderr=subprocess.DEVNULL))
        time.sleep(1.0)  # attached
    cpu = {i: _cpu_s(pid) for i, pid in pids.items()}
    switches = _switches(pids[leader])
    res = cluster.on_leader({"cmd": "throughput", "payload": PAYLOAD_BYTES, "window": 1,
                             "warmup_s": 0.0, "duration_s": args.duration})
    cpu = {i: _cpu_s(pid) - cpu[i] for i, pid in pids.items()}
    switches = _switches(pids[leader]) - switches
    for t in tracers:
        t.send_signal(signal.SIGINT)
        t.wait(30)
    writes = res["ops_s"] * args.duration
    out = {"ms_per_write": 1e3 / res["ops_s"],
           "leader_cpu_us": cpu[leader] / writes * 1e6,
           "follower_cpu_us": statistics.fmean(c for i, c in cpu.items() if i != leader)
           / writes * 1e6,
           "leader_switches": switches / writes}
    for who, path in outs.items():
        out[f"{who}_syscalls"] = {k: round(v / writes, 2) for k, v in
                                  sorted(_strace_calls(path).items(), key=lambda kv: -kv[1])}
    return out


def measure(cluster: Cluster, point: str, args) -> dict:
    if point == "profile":
        return profile(cluster, args)
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
    ap.add_argument("--strace", action="store_true", help="the profile point counts system calls")
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
    loads = []  # the 1-minute load average after each measurement: the machine is shared
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
                    if p == "profile":
                        shown = " ".join(f"{k} {v:.2f}" if isinstance(v, float) else f"{k} {v}"
                                         for k, v in res.items())
                    elif p == "latency":
                        shown = f"p50 {res['p50_ms']:.3f} ms p99 {res['p99_ms']:.3f} ms"
                    else:
                        shown = f"{res['ops_s']:.0f} writes/s"
                    load = os.getloadavg()[0]
                    loads.append(load)
                    print(f"round {r} {p:8s} {case:5s} {shown} (load {load:.1f})", flush=True)
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

    print(f"\nload average (1 min) during the run: {min(loads):.1f}-{max(loads):.1f}")
    print(f"\n| point (median of {args.rounds} rounds) | plain | TLS | TLS / plain | target |")
    print("|---|---|---|---|---|")
    for p in points:
        if p == "profile":
            rows = [("one writer, ms per write (profiled)", "ms_per_write", ""),
                     ("leader CPU µs per write", "leader_cpu_us", ""),
                     ("follower CPU µs per write", "follower_cpu_us", ""),
                     ("leader context switches per write", "leader_switches", "")]
        elif p == "latency":
            rows = [("one writer's p50, ms", "p50_ms", "<= 1.20"), ("one writer's p99, ms", "p99_ms", "")]
        else:
            rows = [(f"writes/s, {p[1:]} in flight", "ops_s", ">= 0.70")]
        for label, key, target in rows:
            a, b = med(p, "plain", key), med(p, "tls", key)
            print(f"| {label} | {a:.3f} | {b:.3f} | {b / a:.2f} | {target} |")
    print("\nper round:", {f"{p}-{c}": [round(x.get("p50_ms", x.get("ops_s", x.get(
        "ms_per_write", 0))), 3) for x in v] for (p, c), v in got.items()})
    for p in [p for p in points if p == "profile" and args.strace]:
        for who in ("leader", "follower"):
            for case in ("plain", "tls"):
                calls = {}
                for x in got[p, case]:
                    for k, v in x[f"{who}_syscalls"].items():
                        calls.setdefault(k, []).append(v)
                top = sorted(((statistics.median(v), k) for k, v in calls.items()), reverse=True)
                print(f"{who} {case} system calls per write (median):",
                      ", ".join(f"{k} {v:.2f}" for v, k in top[:10]))


if __name__ == "__main__":
    main()
