"""``python -m benchmarks``: fastraft against PySyncObj and etcd on this machine, in one run,
with a progress bar and a time budget; then ``python -m benchmarks report`` (run at the end
automatically) writes BENCHMARKS.md and its plots from the results JSON.

    python -m benchmarks [--mode smoke|medium|full] [--budget SECONDS] [--suites micro,cluster,kv]
                         [--out results.json] [--base-port 27000] [--no-peers] [--no-progress]
                         [--snapshot-mb 100,1024]
    python -m benchmarks report [results.json] [--md BENCHMARKS.md] [--plots docs/benchmarks]

``--mode smoke`` runs every part for a moment (CI); ``full`` is the documented method
(warm-up, three repetitions, 20 failover trials, 100 MB and 1 GB snapshots). ``--budget``
shortens the measured durations so the whole run fits, and skips, with a line saying so,
what still does not fit. PySyncObj is installed from PyPI into a side venv on first use;
etcd is Debian's ``etcd-server``. A peer that is missing is skipped with a clear line.
Ports come from ``--base-port`` (default $RAFTBENCH_BASE_PORT, else 27000) upward.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time

from . import cluster_suite, kv_suite, micro_suite
from .common import ROOT, Plan, Ports, Results, machine, plan_dict
from .progress import Progress

SUITES = ("micro", "cluster", "kv")


class Context:
    """What a suite gets: the plan, results, ports, a scratch folder, the progress bar and
    the budget. ``step`` advances the bar and answers False once the budget is spent."""

    def __init__(self, plan, results, ports, workdir, bar, budget_s) -> None:
        self.plan, self.results, self.ports, self.workdir = plan, results, ports, workdir
        self.bar, self.budget_s, self.t0 = bar, budget_s, time.monotonic()
        self.pysyncobj_python: str | None = None
        self.peer_versions: dict = {}
        self.out_of_budget = False

    def say(self, line: str) -> None:
        self.bar.say(line)

    def step(self, what: str, advance: bool = True) -> bool:
        if self.budget_s is not None and time.monotonic() - self.t0 > self.budget_s:
            if not self.out_of_budget:
                self.out_of_budget = True
                self.results.skip("the rest of the run", f"the {self.budget_s:.0f} s budget is "
                                  f"spent (stopped before: {what})", self.say)
            return False
        self.results.machine.setdefault("load_avg_samples", []).append(
            [round(time.time() - self.results.started, 1), round(os.getloadavg()[0], 2)])
        self.bar.describe(what)
        if advance:
            self.bar.advance()
        return True


def guarded(ctx, name: str, fn) -> None:
    """Run one step; a failure is named in the results and the run goes on to the next."""
    try:
        fn(ctx)
    except Exception as e:
        ctx.results.skip(f"{name} (unfinished)", f"failed: {type(e).__name__}: {e}", ctx.say)


def estimate_s(plan: Plan, suites, peers: int) -> float:
    """A rough duration of the run, for fitting it into the budget."""
    point = plan.warmup_s + plan.duration_s + 0.3
    total = 0.0
    if "micro" in suites:
        total += micro_suite.count_steps(plan) * (8 if plan.mode == "smoke" else 150)
    if "cluster" in suites:
        per_rep = (len(plan.in_flight) + len(plan.payloads) + len(plan.offered_loads)) * peers
        total += (plan.reps * per_rep + len(plan.sizes) * plan.reps * peers) * point
        total += (1 + len(plan.sizes)) * 6 * peers + plan.failover_trials * 6
        total += plan.reps * 3 * (point + 3)  # the latency floor: lmdb, rocksdb, memory
        # the write path per log store: a cluster start and four points per store and rep,
        # then store_append.py (about 3 ms per append and case)
        total += plan.reps * 3 * (6 + 4 * point) + plan.reps * 6 * 1000 * 0.003
        total += sum(10 + mb * 0.3 for mb in plan.snapshot_mb)  # 100 MB took 23 s, 1 GB ...
    if "kv" in suites:
        total += kv_suite.count_steps(plan) * point + 15
    return total


def run(args) -> str:
    plan = Plan.for_mode(args.mode)
    if args.snapshot_mb is not None:
        plan.snapshot_mb = tuple(int(x) for x in args.snapshot_mb.split(",") if x)
    suites = [s for s in args.suites.split(",") if s]
    unknown = set(suites) - set(SUITES)
    if unknown:
        sys.exit(f"unknown suites {sorted(unknown)}; choose from {SUITES}")
    out = args.out or (os.path.join(tempfile.mkdtemp(prefix="fastraft-bench-smoke-"), "results.json")
                       if plan.mode == "smoke" else
                       os.path.join(ROOT, "benchmarks", "results", f"results-{plan.mode}.json"))
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    results = Results(out, machine=machine())
    if args.note:
        results.machine["note"] = args.note
    workdir = tempfile.mkdtemp(prefix="fastraft-bench-")
    with Progress(enabled=not args.no_progress) as bar:
        ctx = Context(plan, results, Ports(args.base_port), workdir, bar, args.budget)
        for mb in Plan.for_mode(args.mode).snapshot_mb:
            if mb not in plan.snapshot_mb and "cluster" in suites:
                results.skip(f"snapshot install of {mb} MB", "left out of this run by "
                             f"--snapshot-mb {args.snapshot_mb}", bar.say)
        if "cluster" in suites and not args.no_peers:
            from .peers.side_venv import PeerMissing, python_for_pysyncobj

            bar.describe("PySyncObj: preparing its side venv")
            try:
                ctx.pysyncobj_python, ctx.peer_versions["pysyncobj"] = python_for_pysyncobj()
            except PeerMissing as e:
                results.skip("PySyncObj (cluster suite)", str(e), bar.say)
        elif args.no_peers:
            results.skip("PySyncObj and etcd", "--no-peers", bar.say)
        peers = 2 if ctx.pysyncobj_python else 1
        if args.budget is not None:
            plan.scale_to(args.budget * 0.85, estimate_s(plan, suites, peers))
        results.plan = plan_dict(plan)
        total = ((micro_suite.count_steps(plan) if "micro" in suites else 0)
                 + (cluster_suite.count_steps(plan, peers) if "cluster" in suites else 0)
                 + (kv_suite.count_steps(plan) if "kv" in suites else 0))
        bar.start(total)
        try:
            if "micro" in suites:
                micro_suite.run(ctx)
            if "cluster" in suites:
                for name, fn in cluster_suite.STEPS:
                    guarded(ctx, name, fn)
            if "kv" in suites:
                if args.no_peers:
                    kv_suite.etcd.available = lambda: "--no-peers"
                guarded(ctx, "KV suite", kv_suite.run)
        finally:
            results.machine["load_avg_end"] = os.getloadavg()
            results.machine["peers"] = ctx.peer_versions
            results.save()
            shutil.rmtree(workdir, ignore_errors=True)
    print(f"results: {out}")
    return out


def main(argv=None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["report"]:
        from . import report

        return report.main(argv[1:])
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n\n")[0])
    p.add_argument("--mode", choices=["smoke", "medium", "full"], default="full")
    p.add_argument("--smoke", action="store_const", const="smoke", dest="mode",
                   help="the same as --mode smoke")
    p.add_argument("--budget", type=float, default=None, help="seconds for the whole run")
    p.add_argument("--suites", default=",".join(SUITES))
    p.add_argument("--out", default=None, help="results JSON (default: benchmarks/results/, "
                   "a temporary folder in smoke mode)")
    p.add_argument("--base-port", type=int,
                   default=int(os.environ.get("RAFTBENCH_BASE_PORT", "27000")))
    p.add_argument("--no-peers", action="store_true", help="fastraft alone")
    p.add_argument("--snapshot-mb", default=None,
                   help="state sizes of the snapshot install, MB, comma list (default: the mode's)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--note", default=None, help="a line about the run for the report (what "
                   "else the machine was doing, say)")
    p.add_argument("--no-report", action="store_true", help="do not write BENCHMARKS.md")
    p.add_argument("--md", default=None, help="report path (default: BENCHMARKS.md, or "
                   "next to the results in smoke mode)")
    args = p.parse_args(argv)
    out = run(args)
    if not args.no_report:
        from . import report

        md = args.md or (os.path.join(os.path.dirname(out), "BENCHMARKS.md")
                         if args.mode == "smoke" else os.path.join(ROOT, "BENCHMARKS.md"))
        report.main([out, "--md", md])


if __name__ == "__main__":
    main()
