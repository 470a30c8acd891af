#!/usr/bin/env python3
"""The cluster benchmarks (fastraft against PySyncObj, failover, snapshot install) are a suite
of ``python -m benchmarks`` now; this entry point runs that suite alone:

    python benchmarks/cluster/run.py [--quick] [--out FILE] [--budget SECONDS]

is ``python -m benchmarks --suites cluster [--smoke] ...``.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from benchmarks.__main__ import main  # noqa: E402

if __name__ == "__main__":
    main(["--suites", "cluster"] + ["--smoke" if a == "--quick" else a for a in sys.argv[1:]])
