"""Side by side: what the stores' checks cost, this tree against another copy of fastraft.

Measures, in child processes alternated A B A B (the machine is noisy; one run, medians):

* ``apply_set``: the lmdb KV state machine applying batches of Set entries (synced commit
  per batch, as a node applies), entries per second;
* ``apply_cas``: the same with compare-and-swap entries, which read each value in apply
  (the read is checked against its checksum in this tree);
* ``get``: local reads of applied keys, reads per second;
* ``check_append``: the log stores' argument check of one appended batch, per second.

Usage (the other copy is an export of an earlier commit, with the compiled modules of the
build under test copied in, so only the Python code differs)::

    git archive <commit> fastraft | tar -x -C /tmp/before
    (cd fastraft && find . -name '*.so' -exec cp --parents {} /tmp/before/fastraft \\;)
    python benchmarks/kv/store_checks_ab.py --before /tmp/before --rounds 5
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
THIS_TREE = os.path.dirname(os.path.dirname(HERE))
CHILD_TIMEOUT_S = 600

CHILD = r"""
import json, os, sys, tempfile, time
import trio
from fastraft import Entry, EntryKind
from fastraft.kv import LmdbKVStateMachine
from fastraft.kv.commands import CompareAndSwap, Set, encode_command
from fastraft.storage.validate import check_append

BATCH, BATCHES, VALUE = int(sys.argv[1]), int(sys.argv[2]), "v" * 100

def entries(first, make):
    return [Entry(1, i, EntryKind.NORMAL, encode_command(make(i)))
            for i in range(first, first + BATCH)]

async def main(path):
    sm = await LmdbKVStateMachine.open(path)
    keys = BATCH * BATCHES
    sets = [entries(1 + b * BATCH, lambda i: Set(f"k{i - 1}", VALUE)) for b in range(BATCHES)]
    cas = [entries(1 + keys + b * BATCH,
                   lambda i: CompareAndSwap(f"k{i - 1 - keys}", VALUE, VALUE))
           for b in range(BATCHES)]
    out = {}
    t = time.perf_counter()
    for batch in sets:
        await sm.apply(batch)
    out["apply_set"] = keys / (time.perf_counter() - t)
    t = time.perf_counter()
    for batch in cas:
        await sm.apply(batch)
    out["apply_cas"] = keys / (time.perf_counter() - t)
    names = [f"k{i}" for i in range(keys)]
    t = time.perf_counter()
    for name in names:
        sm.get(name)
    out["get"] = keys / (time.perf_counter() - t)
    await sm.aclose()
    batch = sets[0]
    t = time.perf_counter()
    for _ in range(2000):
        check_append(batch, 1, 0)
    out["check_append"] = 2000 / (time.perf_counter() - t)
    print(json.dumps(out))

with tempfile.TemporaryDirectory() as d:
    trio.run(main, os.path.join(d, "sm"))
"""


def run_child(tree: str, batch: int, batches: int) -> dict:
    env = dict(os.environ, PYTHONPATH=tree)
    out = subprocess.run([sys.executable, "-c", CHILD, str(batch), str(batches)], env=env,
                         cwd=tempfile.gettempdir(), capture_output=True, text=True,
                         timeout=CHILD_TIMEOUT_S, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--before", required=True, help="the other copy's directory (holds fastraft/)")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--batches", type=int, default=40)
    args = p.parse_args()
    runs: dict[str, list[dict]] = {"before": [], "after": []}
    for _ in range(args.rounds):
        for name, tree in (("before", args.before), ("after", THIS_TREE)):
            runs[name].append(run_child(tree, args.batch, args.batches))
    print(f"{'measure':<14}{'before (median)':>18}{'after (median)':>18}{'after/before':>14}")
    for key in runs["before"][0]:
        before = statistics.median(r[key] for r in runs["before"])
        after = statistics.median(r[key] for r in runs["after"])
        print(f"{key:<14}{before:>18,.0f}{after:>18,.0f}{after / before:>14.3f}")


if __name__ == "__main__":
    main()
