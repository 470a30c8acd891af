#!/usr/bin/env python3
"""The cluster benchmarks of the requirement, fastraft and PySyncObj side by side in one run:
three nodes as three OS processes over TCP on 127.0.0.1, 100-byte payloads, load generated
inside the leader's process.

    FASTRAFT_ANCHORS=/path/to/anchors python benchmarks/cluster/run.py [--quick] [--out FILE]

FASTRAFT_ANCHORS is the folder holding ``pysyncobj/raftbench.py`` and
``pysyncobj/bench_pysyncobj.py`` (the shared harness; not part of this repository); the
python running this needs pysyncobj installed. Steps (``--steps`` picks some):

* ``throughput``: PySyncObj (its defaults: in-memory journal, never synced) and fastraft
  (lmdb log synced to disk) at 256 and at 10,000 writes in flight, through raftbench;
* ``write_many``: fastraft, client_write_many of 1,000 payloads, 16 calls in flight;
* ``latency``: fastraft, one writer, one write at a time, with the storage's own synced
  append latency measured in the same process just before and after; then the same with
  in-memory logs, which shows what the pipeline costs without any disk (two network hops,
  the engine, the apply), the part no storage can remove; then ``latency_floor.py``: the
  same three processes doing only the loopback hops and synced lmdb commits a replicated
  write needs (with and without the commits), the floor any Python node on trio and lmdb
  stands on here;
* ``failover`` and ``memory``: ``scenarios.py``.

Every fastraft run uses the engine's default Config (heartbeats every 100 ms, election
timeouts of 1 to 2 s, ``max_in_snapshot_log_to_keep`` 1,000): with them a leader keeps its
term with 10,000 writes in flight and sends no follower a snapshot
(tests/runtime/test_runtime_load.py). PySyncObj runs on its own defaults.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))


def raftbench(script, mode, label, out, args, extra):
    cmd = [sys.executable, script, mode, "--payload", "100", "--label", label, "--out", out,
           "--reps", str(args.reps), "--duration", str(args.duration), "--warmup", str(args.warmup),
           "--quiet-timeout", str(args.quiet_timeout), "--max-foreign", str(args.max_foreign),
           "--max-attempts", "1", "--workdir", args.workdir] + extra
    print("$", " ".join(os.path.basename(c) if c == script else c for c in cmd), flush=True)
    subprocess.run(cmd, check=True, env=dict(os.environ))
    with open(out) as f:
        rows = [json.loads(line) for line in f]
    return [r for r in rows if r.get("kind") == "summary" and r.get("label") == label][-1]


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", default="throughput,write_many,latency,failover,memory")
    ap.add_argument("--quick", action="store_true", help="one short rep per case (a smoke run)")
    ap.add_argument("--out", default=os.path.join(tempfile.gettempdir(), "fastraft-cluster-bench.jsonl"))
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--duration", type=float, default=10.0)
    ap.add_argument("--warmup", type=float, default=2.0)
    ap.add_argument("--quiet-timeout", type=float, default=60.0)
    ap.add_argument("--max-foreign", type=float, default=4.0)
    ap.add_argument("--trials", type=int, default=20)
    ap.add_argument("--entries", type=int, default=1_000_000)
    args = ap.parse_args(argv)
    anchors = os.environ.get("FASTRAFT_ANCHORS")
    if not anchors:
        sys.exit("set FASTRAFT_ANCHORS to the folder holding pysyncobj/raftbench.py")
    if args.quick:
        args.reps, args.duration, args.warmup, args.trials, args.entries = 1, 3.0, 1.0, 3, 100_000
    args.workdir = tempfile.mkdtemp(prefix="fastraft-cluster-")
    psy = os.path.join(anchors, "pysyncobj", "bench_pysyncobj.py")
    fr = os.path.join(HERE, "raftbench_fastraft.py")
    steps = args.steps.split(",")
    report = {}
    if "throughput" in steps:
        for window in (256, 10000):
            w = ["--window", str(window)]
            p = raftbench(psy, "throughput", f"pysyncobj-w{window}", args.out, args, w)
            f = raftbench(fr, "throughput", f"fastraft-w{window}", args.out, args,
                          w + ["--journal", "file"])
            report[f"throughput_w{window}"] = {
                "pysyncobj_ops_s": p["ops_per_s_median"], "fastraft_ops_s": f["ops_per_s_median"],
                "ratio": f["ops_per_s_median"] / p["ops_per_s_median"] if p["ops_per_s_median"] else None,
                "pysyncobj_reps": p["ops_per_s_reps"], "fastraft_reps": f["ops_per_s_reps"],
                "foreign_cores_max": max(x or 0 for x in (p["foreign_cores_max"], f["foreign_cores_max"]))}
    if "write_many" in steps:
        f = raftbench(fr, "throughput", "fastraft-many1000", args.out, args,
                      ["--window", "16", "--journal", "file", "--conf", "batch=1000"])
        report["write_many_1000"] = {"entries_s": f["ops_per_s_median"], "reps": f["ops_per_s_reps"]}
    if "latency" in steps:
        f = raftbench(fr, "latency", "fastraft-latency", args.out, args, ["--journal", "file"])
        with open(args.out) as fh:
            reps = [json.loads(line) for line in fh]
        reps = [r for r in reps if r.get("kind") == "rep" and r.get("label") == "fastraft-latency"][-args.reps:]
        storage = [r["client_results"][0]["storage_append_p50_ms"] for r in reps]
        m = raftbench(fr, "latency", "fastraft-latency-memory-log", args.out, args,
                      ["--journal", "memory"])
        sys.path.insert(0, HERE)
        import latency_floor

        floor_s = max(3.0, args.duration / 2)
        floors = [latency_floor.measure(3000, floor_s, disk) for disk in (True, False)
                  for _ in range(args.reps)]
        storage_p50 = statistics.median(storage)
        floor_p50 = statistics.median(x["p50_ms"] for x in floors if x["disk"])
        report["latency"] = {"p50_ms": f["p50_ms_median"], "p99_ms": f["p99_ms_median"],
                             "storage_append_p50_ms": storage_p50,
                             "ratio": f["p50_ms_median"] / storage_p50,
                             "memory_log_p50_ms": m["p50_ms_median"],
                             "memory_log_p99_ms": m["p99_ms_median"],
                             "floor_p50_ms": floor_p50,
                             "floor_ratio": floor_p50 / storage_p50,
                             "floor_no_disk_p50_ms": statistics.median(
                                 x["p50_ms"] for x in floors if not x["disk"])}
    sys.path.insert(0, HERE)
    import scenarios

    if "failover" in steps:
        report["failover"] = scenarios.main(["failover", "--trials", str(args.trials)])
    if "memory" in steps:
        report["memory"] = scenarios.main(["memory", "--entries", str(args.entries)])
    print(json.dumps(report, indent=2))
    with open(args.out, "a") as fh:
        fh.write(json.dumps({"kind": "fastraft-report", **report}) + "\n")


if __name__ == "__main__":
    main()
