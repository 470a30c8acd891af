"""``tls_cost.py`` once, tiny (1 rep of 1 s at 4 clients), so that CI's quick pass keeps the
TLS cost benchmark from rotting: both clusters form, every write of both is acknowledged."""

import json
import os
import sys

import trio

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import tls_cost  # noqa: E402


def test_tls_cost_runs(tmp_path):
    out = tmp_path / "results.jsonl"
    args = tls_cost._args(["--rows", "write@4", "--duration", "1", "--warmup", "0.5",
                           "--reps", "1", "--json-out", str(out)])
    trio.run(tls_cost.main_async, args)
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted(r["label"] for r in records) == ["http", "https"]
    assert all(r["ok"] > 0 and r["errors"] == 0 for r in records), records
