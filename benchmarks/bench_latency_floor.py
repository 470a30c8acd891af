"""The latency floor of benchmarks/cluster/latency_floor.py, kept runnable: three processes
on 127.0.0.1 doing only the loopback hops and synced lmdb commits one replicated write
needs. The cluster benchmark (benchmarks/cluster/run.py) reports it beside the node's own
single-writer latency; here it is timed per write so the script cannot rot."""

import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "cluster"))

import latency_floor  # noqa: E402


@pytest.mark.parametrize("disk", [True, False], ids=["synced", "no-disk"])
def test_replicated_write_floor(bench, disk):
    writes = bench.scaled(2000, 100)
    out = bench.run("latency floor: 3 processes, one write at a time",
                    latency_floor.measure, writes, 10.0, disk, rounds=1, warmup_rounds=0)
    assert out["writes"] >= 1 and out["disk"] is disk
    assert 0 < out["p50_ms"] <= out["p99_ms"]
    bench.benchmark.extra_info.update(p50_ms=round(out["p50_ms"], 3), p99_ms=round(out["p99_ms"], 3))
