"""Shared benchmark helpers (fixtures, so no benchmark module imports this file by name).

* Files named ``bench_*.py`` here are collected as test modules (their functions are named
  ``test_*``), so ``python -m pytest benchmarks/`` runs them all.
* ``flavour``: parametrized over the compiled set and the pure twins (``fastraft.accel.load``:
  {module name: module}), so both appear side by side in one run.
* ``bench``: wraps pytest-benchmark's fixture with bounded rounds, per-item timings and the
  quick mode: ``FASTRAFT_BENCH_QUICK=1`` shrinks sizes (``bench.scaled``) and rounds so a CI
  pass takes seconds; its numbers are then only a smoke test.
"""

import os

import pytest

from fastraft import accel

QUICK = os.environ.get("FASTRAFT_BENCH_QUICK", "") not in ("", "0")


class Bench:
    """A benchmark with a fixed number of rounds (bounded in count, so in time)."""

    quick = QUICK

    def __init__(self, benchmark):
        self.benchmark = benchmark

    @staticmethod
    def scaled(full, quick):
        """``full`` normally, ``quick`` under FASTRAFT_BENCH_QUICK=1."""
        return quick if QUICK else full

    def run(self, group, fn, *args, rounds=30, iterations=1, warmup_rounds=2):
        """Time ``fn(*args)`` under ``group`` (rows of one group are compared); return its
        last result. Quick mode runs 3 rounds of 1 iteration."""
        self.benchmark.group = group
        if QUICK:
            rounds, iterations, warmup_rounds = 3, 1, 0
        return self.benchmark.pedantic(fn, args=args, rounds=rounds, iterations=iterations,
                                       warmup_rounds=warmup_rounds)

    def per_item(self, items):
        """Record the median nanoseconds per item in the benchmark's extra info."""
        ns = self.benchmark.stats.stats.median * 1e9 / items
        self.benchmark.extra_info["median_ns_per_item"] = round(ns, 1)
        return ns


@pytest.fixture
def bench(benchmark):
    return Bench(benchmark)


@pytest.fixture(params=["compiled", "pure"])
def flavour(request):
    """{module name: module} of one flavour of the accelerated core."""
    return accel.load(request.param)


def pytest_collect_file(file_path, parent):
    if (file_path.suffix == ".py" and file_path.name.startswith("bench_")
            and not parent.session.isinitpath(file_path)):
        return pytest.Module.from_parent(parent, path=file_path)
    return None
