"""``python -m benchmarks``: its load generator, its cluster runner and snapshot scenario, its
budget and its report, on real processes and sockets on 127.0.0.1. No figure is asserted
(the machine is shared): only that each part measures what it says it measures."""

import io
import json
import os
import subprocess
import sys
import time

import pytest

from benchmarks import loadgen, report
from benchmarks.__main__ import Context
from benchmarks.clusters import Cluster
from benchmarks.common import Plan, Ports, Results
from benchmarks.micro_suite import case_name
from benchmarks.peers import etcd
from fastraft.testing import free_ports

HERE = os.path.dirname(os.path.abspath(__file__))
CEILING = os.path.join(HERE, "..", "..", "benchmarks", "kv", "http_ceiling.py")


class _Bar:
    def __init__(self):
        self.lines = []

    def say(self, line):
        self.lines.append(line)

    def describe(self, what):
        pass

    def advance(self):
        pass


def _ctx(tmp_path, plan, budget=None):
    results = Results(str(tmp_path / "results.json"))
    return Context(plan, results, Ports(free_ports(1)[0], 0), str(tmp_path), _Bar(), budget)


@pytest.fixture
def ceiling_server():
    p = subprocess.Popen([sys.executable, CEILING, "fastraft", "127.0.0.1:0"],
                         stdout=subprocess.PIPE, text=True)
    try:
        line = p.stdout.readline()
        assert line.startswith("listening"), line
        yield "http://" + line.split()[-1], p.pid
    finally:
        p.terminate()
        p.wait(30)


def test_loadgen_counts_successes_and_refusals(ceiling_server):
    url, pid = ceiling_server
    ok = loadgen.run_point(url, "fastraft", "write", 4, 0.1, 0.4, keys=50, server_pids=[pid])
    assert ok["ok"] > 0 and ok["errors"] == 0 and not ok["client_failures"]
    assert len(ok["latency_ns"]) == ok["ok"] and min(ok["latency_ns"]) > 0
    assert ok["server_cpu_s"] >= 0
    # the same answers are not etcd's: counted as errors, never as successes
    bad = loadgen.run_point(url, "etcd", "write", 4, 0.1, 0.4, keys=50)
    assert bad["ok"] == 0 and bad["errors"] > 0


def test_fastraft_cluster_answers_closed_and_open_loop(tmp_path):
    with Cluster("fastraft", 3, free_ports(3), str(tmp_path)) as c:
        r = c.on_leader({"cmd": "throughput", "window": 16, "payload": 100, "warmup_s": 0.1,
                         "duration_s": 0.5})
        assert r["ops_s"] > 0
        r = c.on_leader({"cmd": "open_loop", "rate": 200, "payload": 100, "warmup_s": 0.1,
                         "duration_s": 0.5})
        assert r["dropped"] == 0 and r["unfinished"] == 0 and r["errors"] == 0
        assert len(r["latency_ms"]) == 100  # every scheduled write of the measured 0.5 s
        assert min(r["latency_ms"]) > 0


def test_closed_loop_points_carry_each_side_cpu_per_write(tmp_path):
    """The cluster suite's closed-loop points report the CPU per committed write of the
    leader and of a follower, from the node processes' /proc figures (no figure asserted:
    only that both sides spent some, and that a record keeps them)."""
    from benchmarks import cluster_suite

    ctx = _ctx(tmp_path, Plan.for_mode("smoke"))
    with Cluster("fastraft", 3, free_ports(3), str(tmp_path)) as c:
        clusters = [("fastraft", c)]
        r = cluster_suite._ask(ctx, clusters, "fastraft", c, "in_flight=64", {
            "cmd": "throughput", "window": 64, "payload": 100, "warmup_s": 0.2,
            "duration_s": 0.6}, cpu=True)
    assert r is not None and r["ops_s"] > 0, ctx.results.skipped
    assert r["leader_cpu_us"] > 0 and r["follower_cpu_us"] > 0, r
    assert cluster_suite._cpu_fields(r) == {"leader_cpu_us": r["leader_cpu_us"],
                                            "follower_cpu_us": r["follower_cpu_us"]}


def test_cpu_window_tells_the_leader_from_the_followers(tmp_path):
    """A busy process as the leader and idle ones as followers: the leader's CPU per write
    is the busy one's, the followers' the idle ones' mean, over the writes of the window."""
    from benchmarks.cluster_suite import CpuWindow

    busy = subprocess.Popen([sys.executable, "-c", "import time\nprint('up', flush=True)\n"
                             "end = time.monotonic() + 20\nwhile time.monotonic() < end: pass"],
                            stdout=subprocess.PIPE, text=True)
    idle = [subprocess.Popen([sys.executable, "-c", "import time\nprint('up', flush=True)\n"
                              "time.sleep(20)"], stdout=subprocess.PIPE, text=True)
            for _ in range(2)]
    try:
        for p in [busy] + idle:  # started: their start-up CPU is not in the window
            assert p.stdout.readline() == "up\n"
        w = CpuWindow({1: busy.pid, 2: idle[0].pid, 3: idle[1].pid}, 1, 0.1, 0.5)
        got = w.per_write(100.0)
        assert w.per_write(0.0) == {}  # no writes, no figure
    finally:
        for p in [busy] + idle:
            p.kill()
            p.wait(10)
            p.stdout.close()
    # 100 writes/s: 10,000 µs per write is one full core
    assert got["leader_cpu_us"] > 10 * got["follower_cpu_us"] >= 0, got
    assert got["leader_cpu_us"] <= 10_000 * 1.2, got  # one thread, at most a core


def test_snapshot_install_goes_through_a_snapshot(tmp_path):
    """Raft §7: a follower behind the leader's purged log catches up by InstallSnapshot."""
    from benchmarks import cluster_suite

    plan = Plan.for_mode("smoke")
    plan.snapshot_mb = (1,)
    ctx = _ctx(tmp_path, plan)
    ctx.ports = Ports(free_ports(1)[0], 0)
    ctx.ports.take = lambda n: free_ports(n)
    cluster_suite.snapshot_install(ctx)
    rec = [r for r in ctx.results.records if r["suite"] == "snapshot"]
    assert len(rec) == 1, ctx.results.skipped
    assert rec[0]["via_snapshot"] and rec[0]["install_s"] is not None
    assert rec[0]["state_bytes"] == 2**20


def test_budget_spent_stops_the_run_and_says_so(tmp_path):
    ctx = _ctx(tmp_path, Plan.for_mode("smoke"), budget=0.0)
    time.sleep(0.01)
    assert not ctx.step("anything")
    assert not ctx.step("anything else")
    saved = json.loads((tmp_path / "results.json").read_text())
    assert len(saved["skipped"]) == 1 and "budget" in saved["skipped"][0]["why"]
    assert any(line.startswith("SKIPPED") for line in ctx.bar.lines)


def test_plan_fits_the_budget_by_shortening_points():
    plan = Plan.for_mode("full")
    plan.scale_to(100.0, 1000.0)
    assert plan.duration_s == pytest.approx(0.5) and plan.warmup_s == pytest.approx(0.2)
    assert plan.in_flight == (1, 16, 64, 256, 1024)  # the points stay


def test_ports_are_handed_out_once():
    p = Ports(27000, 10)
    assert p.take(3) == [27000, 27001, 27002] and p.take(2) == [27003, 27004]
    with pytest.raises(RuntimeError):
        p.take(6)


def test_ports_pass_over_a_port_in_use():
    """A port held by another socket (in a range inside the ephemeral ports, any process's
    outgoing connection may hold one) is not handed out."""
    import socket

    base = free_ports(1)[0]
    with socket.socket() as held:
        held.bind(("127.0.0.1", base))
        held.listen()
        got = Ports(base, 50).take(2)
    assert base not in got and len(set(got)) == 2 and all(base < p < base + 50 for p in got)


def test_micro_case_names_drop_the_flavour():
    assert case_name("benchmarks/bench_codec.py::test_x[compiled-100]") == "bench_codec.py::test_x[100]"
    assert case_name("benchmarks/bench_codec.py::test_x[pure-100]") == "bench_codec.py::test_x[100]"
    assert case_name("b/bench_log.py::test_y[pure]") == "bench_log.py::test_y"


def _synthetic_results(path):
    recs = []
    for rep in range(3):
        for system, ops in (("fastraft", 2000 + rep), ("pysyncobj", 1000)):
            recs.append({"suite": "cluster", "metric": "in_flight", "x": 256, "system": system,
                         "rep": rep, "ops_s": ops, "leader_cpu_us": 300.0 + rep,
                         "follower_cpu_us": 100.0 if system == "fastraft" else 50.0})
            recs.append({"suite": "cluster", "metric": "payload", "x": 100, "system": system,
                         "rep": rep, "ops_s": ops})  # as recorded before the CPU figures
            recs.append({"suite": "cluster", "metric": "open_loop", "x": 500, "system": system,
                         "rep": rep, "latency_ms": [float(i) for i in range(1, 101)], "dropped": 0})
        for system, ops in (("fastraft", 3000), ("etcd", 1500), ("fastraft-rocksdb", 4500)):
            recs.append({"suite": "kv", "system": system, "op": "write", "clients": 64, "rep": rep,
                         "ops_s": ops, "errors": 0,
                         "server_cpu_us_per_op": 100.0, "latency_ms": [1.0, 2.0, 3.0]})
        for flavour, t in (("compiled", 1e-6), ("pure", 1e-5)):
            recs.append({"suite": "micro", "case": "bench_codec.py::test_x", "flavour": flavour,
                         "rep": rep, "rounds_s": [t] * 5, "median_s": t})
        for store, p50 in (("lmdb", 4.0 + rep), ("memory", 0.2)):
            recs.append({"suite": "cluster", "metric": "floor", "x": store, "system": "floor",
                         "rep": rep, "p50_ms": p50, "p99_ms": 2 * p50, "writes": 100})
        # the write path on each log store: one writer beside its floor, the throughput
        # points, and the store's synced append beside the raw write and the hand-off floor
        recs.append({"suite": "cluster", "metric": "log_store_one_writer", "x": "lmdb",
                     "system": "fastraft", "rep": rep, "p50_ms": 6.0 + rep, "p99_ms": 9.0,
                     "errors": 0})
        for name, ops in (("w256", 700), ("w10000", 800), ("many", 9000)):
            recs.append({"suite": "cluster", "metric": f"log_store_{name}", "x": "lmdb",
                         "system": "fastraft", "rep": rep, "ops_s": ops + rep,
                         "leader_cpu_us": 10.0, "follower_cpu_us": 4.0})
        for case, us in (("raw", 200.0), ("raw_queue", 250.0), ("store_nowait", 230.0),
                         ("store", 260.0)):
            recs.append({"suite": "cluster", "metric": "store_append", "x": "lmdb",
                         "system": case, "rep": rep, "p50_us": us + rep, "p99_us": 2 * us})
        recs.append({"suite": "micro", "case": "bench_storage.py::test_lmdb_append_vs_raw[1-4]",
                     "flavour": "compiled", "rep": rep, "rounds_s": [1e-3] * 3,
                     "median_s": 1e-3, "extra": {"ratio": 0.8 + rep / 10}})
        recs.append({"suite": "micro", "case": "bench_storage.py::test_lmdb_append_vs_raw[1-4]",
                     "flavour": "pure", "rep": rep, "rounds_s": [5e-4] * 3, "median_s": 5e-4,
                     "extra": {"ratio": 0.9}})
    recs += [{"suite": "failover", "trial": i, "ms": 1000.0 + i} for i in range(3)]
    recs.append({"suite": "snapshot", "mb": 1024, "state_bytes": 2**30, "keys": 65536,
                 "state_machine": "lmdb", "load_s": 100.0, "install_s": 42.5, "with_start_s": 43.0,
                 "via_snapshot": True, "follower_peak_rss_mib": 150.0, "wall_s": 250.4})
    data = {"machine": {"cpu_model": "test cpu", "cores": 2, "load_avg_start": [1, 1, 1],
                        "load_avg_end": [2, 2, 2], "versions": {"python": "3"}, "argv": [],
                        "note": "a machine shared with other work",
                        "load_avg_samples": [[0.0, 3.0], [1.0, 5.0], [2.0, 9.0]]},
            "plan": Plan().__dict__, "records": recs, "skipped": [{"what": "x", "why": "y"}]}
    path.write_text(json.dumps(data))


def test_report_summarises_with_numpy_and_draws_the_plots(tmp_path):
    results = tmp_path / "results.json"
    _synthetic_results(results)
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{report.HEAD_START}\nold\n{report.HEAD_END}\nrest\n")
    report.main([str(results), "--md", str(tmp_path / "B.md"), "--readme", str(readme)])
    md = (tmp_path / "B.md").read_text()
    assert "×2.00 [2.00, 2.00]" in md  # 2001 / 1000, every resample the same median
    assert "| 500 | fastraft | 50.50 |" in md  # numpy's p50 of 1..100
    assert "×10.00" in md  # pure / compiled
    assert "- x: y" in md  # the skipped part is named
    assert "- a machine shared with other work" in md
    assert "sampled at each of its 3 steps: median 5.0, min 3.0, max 9.0 on 2 cores" in md
    assert "| 1,024 MiB | yes | 42.50 | 43.00 | 100.0 | 150 | 250 |" in md  # wall time said
    assert "| lmdb | 5.00 (4.00–6.00) | 10.00 (8.00–12.00) |" in md  # the latency floor
    # one writer (median 7.00) beside the same store's floor (median 5.00), the throughput
    # points with CPU at 256, and the append rows with their ratios to the raw write
    assert ("| lmdb | 7.00 (6.00–8.00) | 5.00 (4.00–6.00) | 1.40x | 9.00 (9.00–9.00) | 701 (700–702) | "
            "801 (800–802) | 9,001 (9,000–9,002) | 10 / 4 |") in md
    # the KV writes on the RocksDB log get their own ratio table against etcd
    rocks = md.split("fastraft-rocksdb / etcd, writes/s:")[1]
    assert "| 64 | 4,500 (4,500–4,500) | 1,500 (1,500–1,500) | ×3.00 [3.00, 3.00] |" in rocks
    assert ("| lmdb | 201 (200–202) | 251 (250–252) | 231 (230–232) | 1.15x | "
            "261 (260–262) | 1.30x |") in md
    # CPU per write, leader / follower, medians over repetitions, for each system
    assert ("| 256 | 2,001 (2,000–2,002) | 1,000 (1,000–1,000) | ×2.00 [2.00, 2.00] "
            "| 301 / 100 | 301 / 50 |") in md
    assert "| cluster CPU µs per write, 256 in flight, leader / follower | 301 / 100 | " \
           "pysyncobj 301 / 50 | – |" in md
    # a table whose points have no CPU figures (older results) has no CPU columns
    payload = md.split("### Throughput vs payload")[1].split("###")[0]
    assert "| 100 | 2,001 (2,000–2,002) | 1,000 (1,000–1,000) | ×2.00 [2.00, 2.00] |\n" in payload
    assert "CPU" not in payload
    assert "| bench_storage.py::test_lmdb_append_vs_raw[1-4] | 0.90 (0.80–1.00) |" in md
    # a disk-bound storage case gets no pure / compiled ratio (its times are the disk's)
    assert "test_lmdb_append_vs_raw[1-4] | 1,000.0" not in md
    assert "micro suite (1 cases)" in md and "×0.50" not in md
    for png in ("throughput_in_flight.png", "latency_cdf.png", "ratios.png"):
        assert (tmp_path / png).read_bytes()[:4] == b"\x89PNG"
    text = readme.read_text()
    assert "old" not in text and "×2.00" in text and text.endswith("rest\n")
    summary = json.loads((tmp_path / "results.summary.json").read_text())
    assert "latency_ms" not in json.dumps(summary["points"][0].get("ops_s", []))
    # the summary alone regenerates the same report
    report.main([str(tmp_path / "results.summary.json"), "--md", str(tmp_path / "C.md"),
                 "--readme", str(tmp_path / "none.md")])
    assert (tmp_path / "C.md").read_text() == md


def test_report_renders_the_committed_results_and_older_ones_without_cpu_figures(tmp_path):
    """The committed summary renders; so does one from before the CPU per write (its
    points without the CPU fields), without CPU columns or the CPU method note."""
    committed = os.path.join(HERE, "..", "..", "benchmarks", "results",
                             "results-full.summary.json")
    report.main([committed, "--md", str(tmp_path / "B.md"), "--readme", str(tmp_path / "none.md")])
    md = (tmp_path / "B.md").read_text()
    assert "### Throughput vs writes in flight (100 B)" in md and "| 256 |" in md
    older = json.loads(open(committed).read())
    for p in older["points"]:
        for f in report.CPU_FIELDS:
            p.pop(f, None)
    (tmp_path / "older.summary.json").write_text(json.dumps(older))
    report.main([str(tmp_path / "older.summary.json"), "--md", str(tmp_path / "C.md"),
                 "--readme", str(tmp_path / "none.md")])
    md = (tmp_path / "C.md").read_text()
    assert "### Throughput vs writes in flight (100 B)" in md and "| 256 |" in md
    assert "CPU µs/write" not in md and "CPU per write" not in md
    assert not (tmp_path / "none.md").exists()


def test_ratio_interval_contains_the_point():
    r, lo, hi = report.ratio_ci([10, 12, 11, 13], [5, 6, 5, 7])
    assert lo <= r <= hi and r == pytest.approx(11.5 / 5.5)


@pytest.mark.skipif(etcd.available() is not None, reason="etcd is not installed")
def test_etcd_cluster_serves_the_load_generator(tmp_path):
    with etcd.EtcdCluster(str(tmp_path), free_ports(6)) as c:
        url = loadgen.Etcd.leader(c.endpoints)
        assert url in c.endpoints
        loadgen.preload(url, "etcd", 20)
        for op in ("write", "read"):
            r = loadgen.run_point(url, "etcd", op, 4, 0.1, 0.4, keys=20, server_pids=c.pids)
            assert r["ok"] > 0 and r["errors"] == 0, r["client_failures"]
    assert not os.path.exists(c.dir)


class _Tty(io.StringIO):
    def isatty(self):
        return True


def test_campaign_progress_is_rich_on_a_terminal_and_off_elsewhere(monkeypatch):
    from fastraft.sim.campaign import run_campaign
    from fastraft.sim.profile import SimOptions

    opts = SimOptions(steps=50)
    plain = io.StringIO()
    run_campaign(range(3), opts, progress=plain)
    assert plain.getvalue().count("\n") == 1 and plain.getvalue().startswith("3/3 seeds")
    tty = _Tty()
    run_campaign(range(3), opts, progress=tty)
    assert "\x1b[" in tty.getvalue()  # rich drew a bar
    monkeypatch.setenv("FASTRAFT_PROGRESS", "0")
    asked_off = _Tty()
    run_campaign(range(3), opts, progress=asked_off)
    assert asked_off.getvalue().count("\n") == 1 and "\x1b[" not in asked_off.getvalue()
