"""The micro suite: the pytest-benchmark cases of the accelerated core (codec, log index,
replication progress, engine loop, three nodes in one process on the memory router, the
storage's appends, purges and reads against raw lmdb) run twice in subprocesses, compiled and with
FASTRAFT_PURE_PYTHON=1, alternately (compiled, pure, compiled, pure ...); their JSON is read
back and every round's time kept, so the report gives pure / compiled ratios with confidence
intervals.

A case parametrized over the flavour runs its compiled half in the compiled process and its
pure half in the pure one, so each process measures only the core it was started with.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))
MODULES = ["bench_codec.py", "bench_log_index.py", "bench_progress.py", "bench_engine.py",
           "bench_node.py", "bench_storage.py"]
#: Cases that measure raw lmdb alone (no fastraft code): run in the compiled process only.
CORE_FREE = "raw_lmdb"


def case_name(fullname: str) -> str:
    """The case without its flavour: ``bench_codec.py::test_x[compiled-100]`` -> ``..[100]``."""
    name = fullname.split("/")[-1]
    name = re.sub(r"(?<=[\[-])(compiled|pure)-?|-?(compiled|pure)(?=\])", "", name)
    return name.replace("[]", "")


def run_flavour(flavour: str, max_time_s: float, smoke: bool) -> list[dict]:
    env = dict(os.environ)
    env.pop("FASTRAFT_PURE_PYTHON", None)
    if flavour == "pure":
        env["FASTRAFT_PURE_PYTHON"] = "1"
    if smoke:
        env["FASTRAFT_BENCH_QUICK"] = "1"
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "bench.json")
        cmd = [sys.executable, "-m", "pytest", *[os.path.join(HERE, m) for m in MODULES], "-q",
               "-p", "no:cacheprovider", "-k", "not pure" if flavour == "compiled" else f"not compiled and not {CORE_FREE}",
               "--benchmark-json", out, "--benchmark-save-data", "--benchmark-disable-gc",
               f"--benchmark-max-time={max_time_s}",
               f"--benchmark-min-rounds={3 if smoke else 5}"]
        if smoke:
            cmd.append("--benchmark-warmup=off")
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1800,
                              cwd=os.path.dirname(HERE))
        if proc.returncode != 0:
            raise RuntimeError(f"micro benchmarks ({flavour}) failed:\n{proc.stdout[-2000:]}")
        with open(out) as f:
            data = json.load(f)
    return [{"case": case_name(b["fullname"]), "group": b.get("group"),
             "rounds_s": b["stats"].get("data") or [b["stats"]["median"]],
             "median_s": b["stats"]["median"], "extra": b.get("extra_info") or {}}
            for b in data["benchmarks"]]


def run(ctx) -> None:
    if ctx.plan.mode == "smoke":
        # both cores at once: smoke figures only show that every case still runs, and the two
        # subprocesses were a third of the smoke run's time one after the other
        if not ctx.step("micro suite, compiled and pure cores side by side (smoke)"):
            return
        ctx.bar.advance()  # the smoke run counts two steps here, as the others do
        with ThreadPoolExecutor(2) as pool:
            runs = {f: pool.submit(run_flavour, f, ctx.plan.micro_max_time_s, True)
                    for f in ("compiled", "pure")}
            for flavour, fut in runs.items():
                for b in fut.result():
                    ctx.results.add("micro", flavour=flavour, rep=0, **b)
        return
    reps = 2
    for rep in range(reps):
        for flavour in ("compiled", "pure"):  # A B A B
            if not ctx.step(f"micro suite, {flavour} core, rep {rep + 1}"):
                return
            for b in run_flavour(flavour, ctx.plan.micro_max_time_s, ctx.plan.mode == "smoke"):
                ctx.results.add("micro", flavour=flavour, rep=rep, **b)


def count_steps(plan) -> int:
    return 2 if plan.mode == "smoke" else 4
