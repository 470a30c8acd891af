"""fastraft's benchmarks: ``python -m benchmarks`` runs them all against the peers a user
would otherwise pick and writes results JSON; ``python -m benchmarks report`` turns that JSON
into BENCHMARKS.md and its plots. The pytest-benchmark cases (``bench_*.py``) stay runnable on
their own with ``python -m pytest benchmarks``."""
