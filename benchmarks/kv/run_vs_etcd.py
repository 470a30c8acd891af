"""fastraft's KV API over HTTP against etcd's JSON gateway, side by side in one run, driven by
the same closed-loop load generator (the etcd anchor harness: loadgen.py, start_cluster.sh,
stop_cluster.sh, found at ``--anchors`` or $FASTRAFT_ANCHORS).

    python benchmarks/kv/run_vs_etcd.py --anchors PATH/TO/anchors/etcd [--reps 3]
        [--rows write@64,write@256,read:linearizable@64,write@1] [--duration 10]
        [--ceiling fastraft,fastraft-asgi,h11,hypercorn] [--json-out results.jsonl]

Both systems: three members on 127.0.0.1, durable (fastraft: lmdb stores, fsync on every
commit; etcd: its default WAL fsync), 100-byte values over 10,000 keys, every request to the
leader. fastraft runs three ``fastraft-kv serve`` processes (TCP Raft network) built into a
cluster through the API. Linearizable reads are ``/consistent_read`` (ReadIndex) against
etcd's default (linearizable) range.

A third cluster with in-memory stores (``--memory-rows``) measures the same API and Raft
path without the disk: the write path's floor on this machine.

The clusters stay up for the whole run and the points are interleaved: for each rep, every
row runs on fastraft then on etcd, then each HTTP server alone answers a fixed reply
(``http_ceiling.py``, at the ceiling concurrency): the chosen server (``fastraft``), it behind
the ASGI call shape (``fastraft-asgi``), h11 and hypercorn. Those rows bound what any KV node
behind that server could serve on this machine, and decided the parser and the call shape.
The summary gives medians over reps, server CPU per request (µs, from /proc as loadgen
reports it) and the ratios to etcd. FASTRAFT_BENCH_QUICK=1 shrinks the run to a smoke test
(1 rep of 2 s).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from contextlib import AsyncExitStack, asynccontextmanager
from functools import partial

import trio

HERE = os.path.dirname(os.path.abspath(__file__))
QUICK = os.environ.get("FASTRAFT_BENCH_QUICK", "") not in ("", "0")


def _args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--anchors", default=os.environ.get("FASTRAFT_ANCHORS"),
                   help="folder holding loadgen.py, start_cluster.sh, stop_cluster.sh")
    p.add_argument("--rows", default="write@64,write@256,read:linearizable@64,write@1",
                   help="comma list of OP@CLIENTS, run on both systems")
    p.add_argument("--ceiling", default="fastraft,fastraft-asgi,h11,hypercorn",
                   help="servers measured alone with a fixed answer (empty: none)")
    p.add_argument("--ceiling-concurrency", type=int, default=64)
    p.add_argument("--duration", type=float, default=2.0 if QUICK else 10.0)
    p.add_argument("--warmup", type=float, default=1.0 if QUICK else 2.0)
    p.add_argument("--reps", type=int, default=1 if QUICK else 3)
    p.add_argument("--procs", type=int, default=1, help="load generator worker processes")
    p.add_argument("--json-out", default=None)
    p.add_argument("--skip-etcd", action="store_true")
    p.add_argument("--memory-rows", default="write@64",
                   help="rows also run on a fastraft cluster with in-memory stores (no disk): "
                        "the write path's floor without fsync (empty: none)")
    args = p.parse_args(argv)
    if not args.anchors or not os.path.isfile(os.path.join(args.anchors, "loadgen.py")):
        p.error("give the etcd anchor folder (with loadgen.py) as --anchors or FASTRAFT_ANCHORS")
    args.rows = [(op, int(c)) for op, c in (r.rsplit("@", 1) for r in args.rows.split(",") if r)]
    args.ceiling = [s for s in args.ceiling.split(",") if s]
    args.memory_rows = [(op, int(c)) for op, c in
                        (r.rsplit("@", 1) for r in args.memory_rows.split(",") if r)]
    return args


def _loadgen_cmd(args, target: str, endpoints: list[str], pids: dict, label: str, out: str,
                 op: str, concurrency: int, rep: int):
    # one point per call, so that the systems' points interleave; --seed varies the keys by rep
    return [sys.executable, os.path.join(args.anchors, "loadgen.py"), "--target", target,
            "--endpoints", ",".join(endpoints), "--ops", op, "--endpoint-mode", "leader",
            "--concurrency", str(concurrency), "--duration", str(args.duration),
            "--warmup", str(args.warmup), "--reps", "1", "--procs", str(args.procs),
            "--seed", str(rep + 1), "--preload", "yes" if op.startswith("read") else "no",
            "--watch-pids", ",".join(f"{k}:{v}" for k, v in pids.items()),
            "--quiet-wait", "3", "--retries", "0", "--wait-budget", "60",
            "--json-out", out, "--label", label]


async def _run_loadgen(cmd) -> None:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [cmd[1].rsplit(os.sep, 1)[0], os.environ.get("PYTHONPATH", "")]))
    with trio.fail_after(3600):
        await trio.run_process(cmd, env=env, stdin=subprocess.DEVNULL)


FASTRAFT_TARGET = os.path.join(HERE, "fastraft_target.py") + ":FastraftKV"


@asynccontextmanager
async def fastraft_cluster(store: str = "lmdb"):
    """Three nodes on the TCP network, formed through the API: (endpoints, pids)."""
    from fastraft.kv.client import KVClient
    from fastraft.kv.local_cluster import LocalCluster

    with tempfile.TemporaryDirectory(prefix="fastraft-bench-") as base:
        async with LocalCluster(base, store=store, network="tcp") as cluster:
            for i in (1, 2, 3):
                await cluster.start(i)
            addrs = cluster.addrs()
            async with KVClient(addrs, deadline_s=30) as client:
                await client.init(addr=addrs[0])
                for i in (2, 3):
                    await client.add_learner(i, addrs[i - 1])
                await client.change_membership([1, 2, 3])
            pids = {f"n{i}": cluster.nodes[i].pid for i in (1, 2, 3)}
            print(f"# fastraft ({store}): 3 nodes {addrs}, pids {pids}", flush=True)
            yield [f"http://{a}" for a in addrs], pids


@asynccontextmanager
async def etcd_cluster(args):
    with tempfile.TemporaryDirectory(prefix="etcd-bench-") as run_dir:
        start = os.path.join(args.anchors, "start_cluster.sh")
        stop = os.path.join(args.anchors, "stop_cluster.sh")
        try:
            with trio.fail_after(120):
                await trio.run_process(["bash", start, run_dir], stdin=subprocess.DEVNULL)
            endpoints = open(os.path.join(run_dir, "endpoints")).read().strip().split(",")
            pids = {f"n{i}": int(open(os.path.join(run_dir, f"n{i}.pid")).read()) for i in (1, 2, 3)}
            print(f"# etcd: {endpoints}, pids {pids}", flush=True)
            yield endpoints, pids
        finally:
            with trio.CancelScope(shield=True), trio.move_on_after(60):
                await trio.run_process(["bash", stop, run_dir], stdin=subprocess.DEVNULL,
                                       check=False)


async def bench_ceiling(args, server: str, out: str, rep: int) -> None:
    """``server`` alone answering a fixed write answer (http_ceiling.py)."""
    async with trio.open_nursery() as nursery:
        proc = await nursery.start(partial(
            trio.run_process, [sys.executable, os.path.join(HERE, "http_ceiling.py"), server,
                               "127.0.0.1:0"],
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
            await _run_loadgen(_loadgen_cmd(
                args, FASTRAFT_TARGET, [f"http://{addr}"], {"n1": proc.pid},
                f"{server}-fixed-answer", out, "write", args.ceiling_concurrency, rep))
        finally:
            proc.terminate()
            nursery.cancel_scope.cancel()


def summarize(path: str) -> str:
    rows = {}
    with open(path) as f:
        for line in f:
            r = json.loads(line)
            rows.setdefault((r["op"], r["concurrency"], r["label"]), []).append(r)

    def med(recs, key):
        vals = [r[key] for r in recs if r.get(key) is not None]
        return statistics.median(vals) if vals else float("nan")

    def cpu_us(r):
        return r["server_total_cores"] / r["ops_s"] * 1e6 if r.get("ops_s") else None

    lines = ["| op | clients | system | ops/s | p50 ms | p99 ms | server µs/op | errors | "
             "reps | disturbed |", "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|"]
    table = {}
    for (op, conc, label), recs in sorted(rows.items()):
        for r in recs:
            r["cpu_us"] = cpu_us(r)
        ops, p50, p99 = med(recs, "ops_s"), med(recs, "p50_ms"), med(recs, "p99_ms")
        table[(op, conc, label)] = (ops, p50, p99)
        lines.append(f"| {op} | {conc} | {label} | {ops:.0f} | {p50:.2f} | {p99:.2f} | "
                     f"{med(recs, 'cpu_us'):.0f} | {sum(r['errors'] for r in recs)} | "
                     f"{len(recs)} | {sum(1 for r in recs if r.get('disturbed'))} |")
    lines.append("")
    for (op, conc, label), (ops, p50, p99) in sorted(table.items()):
        if label == "fastraft" and (op, conc, "etcd") in table:
            e_ops, e_p50, e_p99 = table[(op, conc, "etcd")]
            lines.append(f"{op} at {conc} clients, fastraft / etcd: ops/s x{ops / e_ops:.2f}, "
                         f"p50 x{p50 / e_p50:.2f}, p99 x{p99 / e_p99:.2f}")
    ceiling = {label: v for (op, c, label), v in table.items() if label.endswith("fixed-answer")}
    for label, (c_ops, _, _) in sorted(ceiling.items()):
        if ("write", 64, "fastraft") in table:
            lines.append(f"fastraft writes at 64 clients / {label}: "
                         f"x{table[('write', 64, 'fastraft')][0] / c_ops:.2f}")
    return "\n".join(lines)


async def main_async(args) -> None:
    out = args.json_out or os.path.join(tempfile.mkdtemp(prefix="kv-bench-"), "results.jsonl")
    async with AsyncExitStack() as stack:
        systems = [("fastraft", FASTRAFT_TARGET, args.rows, await stack.enter_async_context(
            fastraft_cluster()))]
        if not args.skip_etcd:
            systems.append(("etcd", "etcd", args.rows, await stack.enter_async_context(
                etcd_cluster(args))))
        if args.memory_rows:
            systems.append(("fastraft-memory", FASTRAFT_TARGET, args.memory_rows,
                            await stack.enter_async_context(fastraft_cluster("memory"))))
        for rep in range(args.reps):
            for op, conc in args.rows:
                for label, target, rows, (endpoints, pids) in systems:  # A/B, same row
                    if (op, conc) not in rows:
                        continue
                    print(f"# rep {rep + 1}: {label} {op} at {conc}", flush=True)
                    await _run_loadgen(_loadgen_cmd(args, target, endpoints, pids, label, out,
                                                    op, conc, rep))
            for server in args.ceiling:
                print(f"# rep {rep + 1}: {server} alone, fixed answer", flush=True)
                await bench_ceiling(args, server, out, rep)
    print("\n## fastraft vs etcd, same run, medians over reps\n")
    print(summarize(out))
    print(f"\n(records: {out})")


if __name__ == "__main__":
    trio.run(main_async, _args())
