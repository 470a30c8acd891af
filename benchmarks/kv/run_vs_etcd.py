"""fastraft's KV API over HTTP against etcd's JSON gateway, side by side in one run, driven by
the same closed-loop load generator (the etcd anchor harness: loadgen.py, start_cluster.sh,
stop_cluster.sh, found at ``--anchors`` or $FASTRAFT_ANCHORS).

    python benchmarks/kv/run_vs_etcd.py --anchors PATH/TO/anchors/etcd [--concurrency 64]
        [--duration 10] [--warmup 2] [--reps 3] [--json-out results.jsonl]

Both systems: three members on 127.0.0.1, durable (fastraft: lmdb stores, fsync on every
commit; etcd: its default WAL fsync), writes of 100-byte values over 10,000 keys, every
request to the leader. fastraft runs three ``fastraft-kv serve`` processes (TCP Raft network)
built into a cluster through the API. A third row measures hypercorn alone, configured as a
node configures it, answering every request with a fixed write answer (http_ceiling.py): the
HTTP server's own ceiling on the machine, which no KV node behind it can pass. Prints
loadgen's table for each and a summary with the ratios (fastraft / etcd) of writes/s and p99. FASTRAFT_BENCH_QUICK=1 shrinks the run to a
smoke test (1 rep of 2 s).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from functools import partial

import trio

HERE = os.path.dirname(os.path.abspath(__file__))
QUICK = os.environ.get("FASTRAFT_BENCH_QUICK", "") not in ("", "0")


def _args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--anchors", default=os.environ.get("FASTRAFT_ANCHORS"),
                   help="folder holding loadgen.py, start_cluster.sh, stop_cluster.sh")
    p.add_argument("--concurrency", default="64")
    p.add_argument("--duration", type=float, default=2.0 if QUICK else 10.0)
    p.add_argument("--warmup", type=float, default=1.0 if QUICK else 2.0)
    p.add_argument("--reps", type=int, default=1 if QUICK else 3)
    p.add_argument("--procs", type=int, default=1, help="load generator worker processes")
    p.add_argument("--json-out", default=None)
    p.add_argument("--skip-etcd", action="store_true")
    p.add_argument("--skip-ceiling", action="store_true",
                   help="do not measure hypercorn alone (http_ceiling.py)")
    args = p.parse_args(argv)
    if not args.anchors or not os.path.isfile(os.path.join(args.anchors, "loadgen.py")):
        p.error("give the etcd anchor folder (with loadgen.py) as --anchors or FASTRAFT_ANCHORS")
    return args


def _loadgen_cmd(args, target: str, endpoints: list[str], pids: dict, label: str, out: str):
    return [sys.executable, os.path.join(args.anchors, "loadgen.py"), "--target", target,
            "--endpoints", ",".join(endpoints), "--ops", "write", "--endpoint-mode", "leader",
            "--concurrency", args.concurrency, "--duration", str(args.duration),
            "--warmup", str(args.warmup), "--reps", str(args.reps), "--procs", str(args.procs),
            "--watch-pids", ",".join(f"{k}:{v}" for k, v in pids.items()),
            "--quiet-wait", "10", "--wait-budget", "120", "--json-out", out, "--label", label]


async def _run_loadgen(cmd) -> None:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [cmd[1].rsplit(os.sep, 1)[0], os.environ.get("PYTHONPATH", "")]))
    with trio.fail_after(3600):
        await trio.run_process(cmd, env=env, stdin=subprocess.DEVNULL)


async def bench_fastraft(args, out: str) -> None:
    from fastraft.kv.client import KVClient
    from fastraft.kv.local_cluster import LocalCluster

    with tempfile.TemporaryDirectory(prefix="fastraft-bench-") as base:
        async with LocalCluster(base, store="lmdb", network="tcp") as cluster:
            for i in (1, 2, 3):
                await cluster.start(i)
            addrs = cluster.addrs()
            async with KVClient(addrs, deadline_s=30) as client:
                await client.init(addr=addrs[0])
                for i in (2, 3):
                    await client.add_learner(i, addrs[i - 1])
                await client.change_membership([1, 2, 3])
            pids = {f"n{i}": cluster.nodes[i].pid for i in (1, 2, 3)}
            print(f"# fastraft: 3 nodes {addrs}, pids {pids}", flush=True)
            await _run_loadgen(_loadgen_cmd(
                args, os.path.join(HERE, "fastraft_target.py") + ":FastraftKV",
                [f"http://{a}" for a in addrs], pids, "fastraft", out))


async def bench_http_ceiling(args, out: str) -> None:
    """hypercorn alone, as a node configures it, answering a fixed write answer
    (http_ceiling.py): the most requests/s any KV node could serve on this machine."""
    async with trio.open_nursery() as nursery:
        proc = await nursery.start(partial(
            trio.run_process, [sys.executable, os.path.join(HERE, "http_ceiling.py"), "127.0.0.1:0"],
            stdout=subprocess.PIPE, stdin=subprocess.DEVNULL))
        try:
            line = b""
            with trio.fail_after(30):
                while not line.endswith(b"\n"):  # bounded by the fail_after
                    chunk = await proc.stdout.receive_some(256)
                    if not chunk:
                        raise RuntimeError("http_ceiling.py ended before listening")
                    line += chunk
            addr = line.decode().split()[-1]
            print(f"# hypercorn alone: {addr}, pid {proc.pid}", flush=True)
            await _run_loadgen(_loadgen_cmd(
                args, os.path.join(HERE, "fastraft_target.py") + ":FastraftKV",
                [f"http://{addr}"], {"n1": proc.pid}, "hypercorn-fixed-answer", out))
        finally:
            proc.terminate()
            nursery.cancel_scope.cancel()


async def bench_etcd(args, out: str) -> None:
    with tempfile.TemporaryDirectory(prefix="etcd-bench-") as run_dir:
        start = os.path.join(args.anchors, "start_cluster.sh")
        stop = os.path.join(args.anchors, "stop_cluster.sh")
        try:
            with trio.fail_after(120):
                await trio.run_process(["bash", start, run_dir], stdin=subprocess.DEVNULL)
            endpoints = open(os.path.join(run_dir, "endpoints")).read().strip().split(",")
            pids = {f"n{i}": int(open(os.path.join(run_dir, f"n{i}.pid")).read()) for i in (1, 2, 3)}
            print(f"# etcd: {endpoints}, pids {pids}", flush=True)
            await _run_loadgen(_loadgen_cmd(args, "etcd", endpoints, pids, "etcd", out))
        finally:
            with trio.CancelScope(shield=True), trio.move_on_after(60):
                await trio.run_process(["bash", stop, run_dir], stdin=subprocess.DEVNULL,
                                       check=False)


def summarize(path: str) -> str:
    rows = {}
    with open(path) as f:
        for line in f:
            r = json.loads(line)
            rows.setdefault((r["label"], r["concurrency"]), []).append(r)

    def med(recs, key):
        vals = [r[key] for r in recs if r.get(key) is not None]
        return statistics.median(vals) if vals else float("nan")

    lines = ["| system | clients | writes/s | p50 ms | p99 ms | errors | server cores | disturbed |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    table = {}
    for (label, conc), recs in sorted(rows.items()):
        ops, p50, p99 = med(recs, "ops_s"), med(recs, "p50_ms"), med(recs, "p99_ms")
        table[(label, conc)] = (ops, p99)
        lines.append(f"| {label} | {conc} | {ops:.0f} | {p50:.2f} | {p99:.2f} | "
                     f"{sum(r['errors'] for r in recs)} | {med(recs, 'server_total_cores'):.2f} | "
                     f"{sum(1 for r in recs if r.get('disturbed'))}/{len(recs)} |")
    for (label, conc), (ops, p99) in sorted(table.items()):
        if label == "fastraft" and ("etcd", conc) in table:
            e_ops, e_p99 = table[("etcd", conc)]
            lines.append(f"\nfastraft / etcd at {conc} clients: writes/s x{ops / e_ops:.2f}, "
                         f"p99 x{p99 / e_p99:.2f}")
        if label == "fastraft" and ("hypercorn-fixed-answer", conc) in table:
            h_ops, _ = table[("hypercorn-fixed-answer", conc)]
            lines.append(f"fastraft / hypercorn alone at {conc} clients: requests/s x{ops / h_ops:.2f}")
    return "\n".join(lines)


async def main_async(args) -> None:
    out = args.json_out or os.path.join(tempfile.mkdtemp(prefix="kv-bench-"), "results.jsonl")
    await bench_fastraft(args, out)
    if not args.skip_ceiling:
        await bench_http_ceiling(args, out)
    if not args.skip_etcd:
        await bench_etcd(args, out)
    print("\n## fastraft vs etcd, same run, medians over reps\n")
    print(summarize(out))
    print(f"\n(records: {out})")


if __name__ == "__main__":
    trio.run(main_async, _args())
