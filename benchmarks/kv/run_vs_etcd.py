#!/usr/bin/env python3
"""fastraft's KV API over HTTP against etcd is a suite of ``python -m benchmarks`` now; this
entry point runs that suite alone:

    python benchmarks/kv/run_vs_etcd.py [--out FILE] [--budget SECONDS]

is ``python -m benchmarks --suites kv ...`` (FASTRAFT_BENCH_QUICK=1: ``--smoke``).
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from benchmarks.__main__ import main  # noqa: E402

if __name__ == "__main__":
    quick = os.environ.get("FASTRAFT_BENCH_QUICK", "") not in ("", "0")
    main(["--suites", "kv"] + (["--smoke"] if quick else []) + sys.argv[1:])
