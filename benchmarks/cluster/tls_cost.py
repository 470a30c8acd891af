#!/usr/bin/env python3
"""What mutual TLS between the nodes costs: the cluster write benchmark (three processes on
127.0.0.1, lmdb log synced to disk, 100-byte payloads, 256 writes in flight) and one writer's
latency, with plain TCP and with TLS, alternated A B A B in one run; medians and ratios.

    FASTRAFT_ANCHORS=/path/to/anchors python benchmarks/cluster/tls_cost.py [--rounds 5]

Each round runs one raftbench rep of each case, plain then TLS (``raftbench_fastraft.py
--tls``), so both see the same machine. The target: TLS at most 30% lower throughput and at
most 20% higher p50 latency.
"""

import argparse
import os
import statistics
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from run import raftbench  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--duration", type=float, default=8.0)
    ap.add_argument("--warmup", type=float, default=2.0)
    ap.add_argument("--quiet-timeout", type=float, default=60.0)
    ap.add_argument("--max-foreign", type=float, default=4.0)
    ap.add_argument("--out", default=os.path.join(tempfile.gettempdir(), "fastraft-tls-cost.jsonl"))
    args = ap.parse_args(argv)
    if not os.environ.get("FASTRAFT_ANCHORS"):
        sys.exit("set FASTRAFT_ANCHORS to the folder holding pysyncobj/raftbench.py")
    args.reps = 1
    args.workdir = tempfile.mkdtemp(prefix="fastraft-tls-cost-")
    script = os.path.join(HERE, "raftbench_fastraft.py")
    base = ["--journal", "file"]  # the engine's default Config, as run.py
    got = {(case, tls): [] for case in ("throughput", "latency") for tls in (False, True)}
    for r in range(args.rounds):
        for tls in (False, True):
            extra = ["--tls"] if tls else []
            label = f"{'tls' if tls else 'plain'}-r{r}"
            t = raftbench(script, "throughput", f"w256-{label}", args.out, args,
                          ["--window", "256"] + base + extra)
            got["throughput", tls].append(t["ops_per_s_median"])
            lat = raftbench(script, "latency", f"lat-{label}", args.out, args, base + extra)
            got["latency", tls].append(lat["p50_ms_median"])
    med = {k: statistics.median(v) for k, v in got.items()}
    print("\n| case | plain | TLS | TLS / plain | target |")
    print("|---|---|---|---|---|")
    print(f"| writes/s, 256 in flight (median of {args.rounds}) | {med['throughput', False]:.0f} | "
          f"{med['throughput', True]:.0f} | {med['throughput', True] / med['throughput', False]:.2f} | >= 0.70 |")
    print(f"| one writer's p50 latency, ms (median of {args.rounds}) | {med['latency', False]:.2f} | "
          f"{med['latency', True]:.2f} | {med['latency', True] / med['latency', False]:.2f} | <= 1.20 |")
    print("\nper round:", {f"{k[0]}-{'tls' if k[1] else 'plain'}": [round(x, 2) for x in v]
                           for k, v in got.items()})


if __name__ == "__main__":
    main()
