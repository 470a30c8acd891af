"""``python -m benchmarks report [results.json]``: BENCHMARKS.md, its PNG plots and a summary
JSON (every figure of the report, without the raw latency samples) from a results JSON; the
README's headline table (between its ``bench-headline`` markers) is rewritten too.

Summaries are numpy's: medians with min and max over repetitions; latency percentiles over
every sample of a point (all repetitions pooled); ratios with 95% bootstrap confidence
intervals (2,000 resamples of the repetitions, or of a micro case's rounds).
"""

from __future__ import annotations

import argparse
import json
import os
import re
from collections import defaultdict

import numpy as np

from .common import ROOT

PCTS = (50, 90, 99, 99.9)
#: A closed-loop cluster point's CPU per committed write, µs: the leader's (load generator
#: included) and the followers' mean (``cluster_suite.CpuWindow``).
CPU_FIELDS = ("leader_cpu_us", "follower_cpu_us")
RNG = np.random.default_rng(17)  # fixed: the report is a function of the JSON
HEAD_START, HEAD_END = "<!-- bench-headline:start -->", "<!-- bench-headline:end -->"


def ratio_ci(a, b, n: int = 2000) -> tuple[float, float, float]:
    """median(a) / median(b) and its 95% bootstrap interval."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    point = float(np.median(a) / np.median(b))
    ra = np.median(RNG.choice(a, (n, len(a))), axis=1)
    rb = np.median(RNG.choice(b, (n, len(b))), axis=1)
    lo, hi = np.percentile(ra / rb, [2.5, 97.5])
    return point, float(lo), float(hi)


def spread(values, digits: int = 0) -> str:
    v = np.asarray(values, float)
    if len(v) == 1:
        return f"{v[0]:,.{digits}f}"
    return f"{np.median(v):,.{digits}f} ({v.min():,.{digits}f}–{v.max():,.{digits}f})"


def fmt_ratio(r) -> str:
    return f"×{r[0]:.2f} [{r[1]:.2f}, {r[2]:.2f}]"


def percentiles(samples) -> dict:
    s = np.asarray(samples, float)
    if not len(s):
        return {}
    out = {f"p{p:g}": float(v) for p, v in zip(PCTS, np.percentile(s, PCTS))}
    out["max"] = float(s.max())
    out["count"] = int(len(s))
    return out


def summarise(data: dict) -> dict:
    recs = data["records"]
    out: dict = {"machine": data["machine"], "plan": data["plan"], "skipped": data["skipped"],
                 "elapsed_s": data.get("elapsed_s")}
    groups = defaultdict(list)
    for r in recs:
        if r["suite"] == "cluster":
            groups[("cluster", r["metric"], r["x"], r["system"])].append(r)
        elif r["suite"] == "kv":
            groups[("kv", r["op"], r["clients"], r["system"])].append(r)
        elif r["suite"] == "micro":
            groups[("micro", r["case"], r["flavour"])].append(r)
    points = []
    for key, rs in sorted(groups.items(), key=lambda kv: str(kv[0])):
        p = {"key": list(key), "reps": len(rs)}
        if key[0] == "micro":
            p["rounds_s"] = [x for r in rs for x in r["rounds_s"]]
            p["median_s"] = float(np.median(p["rounds_s"]))
            ratios = [r["extra"]["ratio"] for r in rs if "ratio" in (r.get("extra") or {})]
            if ratios:  # a case's own paired ratio (storage: store / raw lmdb, round by round)
                p["paired_ratio"] = ratios
        elif key[1] in ("floor", "log_store_one_writer"):
            p["p50_ms"] = [r["p50_ms"] for r in rs]
            p["p99_ms"] = [r["p99_ms"] for r in rs]
            p["errors"] = sum(r.get("errors", 0) for r in rs)
        elif key[1] == "store_append":
            p["p50_us"] = [r["p50_us"] for r in rs]
        else:
            if any("ops_s" in r for r in rs):
                p["ops_s"] = [r["ops_s"] for r in rs]
                p["errors"] = sum(r.get("errors", 0) for r in rs)
            for f in CPU_FIELDS:  # results from before the CPU figures have none
                cpu = [r[f] for r in rs if r.get(f) is not None]
                if cpu:
                    p[f] = cpu
            lat = [x for r in rs for x in r.get("latency_ms", [])]
            if lat:
                p["latency_ms"] = percentiles(lat)
                qs = np.linspace(0, 100, 201)
                p["cdf_ms"] = [float(v) for v in np.percentile(lat, qs)]
            if key[0] == "kv":
                cpu = [r["server_cpu_us_per_op"] for r in rs if r.get("server_cpu_us_per_op")]
                p["server_cpu_us_per_op"] = float(np.median(cpu)) if cpu else None
                p["errors"] = sum(r["errors"] for r in rs)
            if key[1] == "open_loop":
                p["dropped"] = sum(r.get("dropped", 0) for r in rs)
        points.append(p)
    out["points"] = points
    out["failover_ms"] = [r["ms"] for r in recs if r["suite"] == "failover"]
    out["snapshot"] = [r for r in recs if r["suite"] == "snapshot"]
    return out


def _index(summary):
    return {tuple(p["key"]): p for p in summary["points"]}


def _plots(summary, idx, plot_dir, rel) -> dict:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    os.makedirs(plot_dir, exist_ok=True)
    made = {}
    systems = sorted({k[3] for k in idx if k[0] == "cluster"})
    xs = sorted({k[2] for k in idx if k[:2] == ("cluster", "in_flight")})
    if xs:
        fig, ax = plt.subplots(figsize=(6, 4))
        for s in systems:
            pts = [(x, idx[("cluster", "in_flight", x, s)]["ops_s"]) for x in xs
                   if ("cluster", "in_flight", x, s) in idx]
            if pts:
                med = [np.median(v) for _, v in pts]
                lo = [np.median(v) - min(v) for _, v in pts]
                hi = [max(v) - np.median(v) for _, v in pts]
                ax.errorbar([x for x, _ in pts], med, yerr=[lo, hi], marker="o", capsize=3, label=s)
        ax.set_xscale("log")
        ax.set_xlabel("writes in flight")
        ax.set_ylabel("committed writes/s (median, min–max)")
        ax.set_title("3 nodes over TCP, 100-byte writes")
        ax.legend()
        ax.grid(alpha=0.3)
        fig.tight_layout()
        fig.savefig(os.path.join(plot_dir, "throughput_in_flight.png"), dpi=110)
        plt.close(fig)
        made["in_flight"] = f"{rel}/throughput_in_flight.png"
    cdfs = [(k, p) for k, p in idx.items() if "cdf_ms" in p and k[0] in ("cluster", "kv")
            and (k[1] == "open_loop" or (k[1] in ("write", "read") and k[2] == 64)
                 or (k[0] == "kv" and k[2] == max(kk[2] for kk in idx if kk[0] == "kv")))]
    if cdfs:
        fig, axes = plt.subplots(1, 2, figsize=(11, 4))
        qs = np.linspace(0, 1, 201)
        for k, p in sorted(cdfs, key=lambda kp: str(kp[0])):
            ax = axes[0] if k[0] == "cluster" else axes[1]
            label = (f"{k[3]} at {k[2]}/s" if k[0] == "cluster" else f"{k[3]} {k[1]} at {k[2]} clients")
            ax.plot(p["cdf_ms"], qs, label=label)
        axes[0].set_title("cluster, open loop (fixed offered load)")
        axes[1].set_title("KV over HTTP")
        for ax in axes:
            ax.set_xscale("log")
            ax.set_xlabel("latency, ms")
            ax.set_ylabel("fraction of requests")
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(os.path.join(plot_dir, "latency_cdf.png"), dpi=110)
        plt.close(fig)
        made["cdf"] = f"{rel}/latency_cdf.png"
    ratios = _ratios(idx)
    if ratios:
        fig, ax = plt.subplots(figsize=(7, 0.35 * len(ratios) + 1.2))
        names = [n for n, _ in ratios]
        vals = np.array([r[0] for _, r in ratios])
        err = np.array([[r[0] - r[1], r[2] - r[0]] for _, r in ratios]).T
        ax.barh(names, vals, xerr=err, capsize=3, color="#4c72b0")
        ax.axvline(1.0, color="k", lw=0.8)
        ax.set_xscale("log")
        ax.set_xlabel("ratio (95% bootstrap interval); >1: fastraft (or the compiled core) ahead")
        ax.tick_params(axis="y", labelsize=7)
        fig.tight_layout()
        fig.savefig(os.path.join(plot_dir, "ratios.png"), dpi=110)
        plt.close(fig)
        made["ratios"] = f"{rel}/ratios.png"
    return made


def _compared_micro(idx, k) -> bool:
    """Whether micro case ``k`` (its compiled point) gets a pure / compiled ratio: it ran on
    both cores and is not a disk-bound storage case timed against raw lmdb in every round
    (those carry their own paired ratio; over synced writes the two cores' times differ by
    the disk's noise, not by the core)."""
    return (k[0] == "micro" and k[2] == "compiled" and ("micro", k[1], "pure") in idx
            and not idx[k].get("paired_ratio"))


def _ratios(idx) -> list:
    """(name, (ratio, lo, hi)) oriented so that >1 favours fastraft or the compiled core."""
    out = []
    for k, p in sorted(idx.items(), key=lambda kp: str(kp[0])):
        if _compared_micro(idx, k):
            out.append((f"pure/compiled {k[1].split('::')[-1]}",
                        ratio_ci(idx[("micro", k[1], "pure")]["rounds_s"], p["rounds_s"])))
    for k, p in sorted(idx.items(), key=lambda kp: str(kp[0])):
        if k[0] in ("cluster", "kv") and k[3] == "fastraft" and "ops_s" in p:
            for peer in ("pysyncobj", "etcd"):
                q = idx.get((k[0], k[1], k[2], peer))
                if q and "ops_s" in q and min(q["ops_s"]) > 0:
                    out.append((f"fastraft/{peer} {k[1]}={k[2]}", ratio_ci(p["ops_s"], q["ops_s"])))
    return out


def headline(idx, summary) -> list[str]:
    rows = ["| measure | fastraft | peer | ratio [95% CI] |", "|---|---:|---:|---:|"]
    for k, label in ((("cluster", "in_flight", 256), "cluster writes/s, 256 in flight (3 nodes)"),
                     (("cluster", "in_flight", 1024), "cluster writes/s, 1,024 in flight (3 nodes)"),
                     (("kv", "write", 64), "KV HTTP writes/s, 64 clients"),
                     (("kv", "read", 64), "KV HTTP linearizable reads/s, 64 clients")):
        f = idx.get(k + ("fastraft",))
        if not f:
            continue
        peer = "pysyncobj" if k[0] == "cluster" else "etcd"
        q = idx.get(k + (peer,))
        rows.append(f"| {label} | {spread(f['ops_s'])} | "
                    f"{(peer + ' ' + spread(q['ops_s'])) if q else 'not run'} | "
                    f"{fmt_ratio(ratio_ci(f['ops_s'], q['ops_s'])) if q and min(q['ops_s']) > 0 else '–'} |")
    f, q = idx.get(("cluster", "in_flight", 256, "fastraft")), idx.get(("cluster", "in_flight", 256, "pysyncobj"))
    if f and f.get("leader_cpu_us"):
        rows.append(f"| cluster CPU µs per write, 256 in flight, leader / follower | {_cpu_cell(f)} | "
                    f"{('pysyncobj ' + _cpu_cell(q)) if q and q.get('leader_cpu_us') else 'not run'} | – |")
    fo = [x for x in summary["failover_ms"] if x is not None]
    if fo:
        rows.append(f"| failover, leader SIGKILL to next commit, ms ({len(fo)} trials) | "
                    f"{np.median(fo):.0f} ({min(fo):.0f}–{max(fo):.0f}) | | |")
    micro = [r for n, r in _ratios(idx) if n.startswith("pure/compiled")]
    if micro:
        g = float(np.exp(np.mean(np.log([r[0] for r in micro]))))
        rows.append(f"| compiled core vs pure twins, micro suite ({len(micro)} cases) | "
                    f"geometric mean ×{g:.1f} faster | | |")
    return rows


def render(summary: dict, plots: dict) -> str:
    m, plan, idx = summary["machine"], summary["plan"], _index(summary)
    L = ["# Benchmarks", "",
         "Generated by `python -m benchmarks report` from the results of one run of "
         f"`python -m benchmarks {' '.join(m.get('argv', []))}`".rstrip() + "; do not edit by hand. "
         "Run it on your machine for figures that apply to you.", "",
         "## Headline", ""] + headline(idx, summary) + ["",
         "Median over repetitions (min–max); ratios are medians' ratios with 95% bootstrap "
         "intervals over repetitions.", "", "## Machine and run", "",
         f"- CPU: {m.get('cpu_model')} ({m.get('cores')} cores), {m.get('memory_gib')} GiB RAM, "
         f"{m.get('os')}",
         *([f"- {m['note']}"] if m.get("note") else []),
         *_load_line(m),
         f"- load average (1, 5, 15 min) at start {tuple(round(x, 2) for x in m.get('load_avg_start', []))}, "
         f"at end {tuple(round(x, 2) for x in m.get('load_avg_end', []))}: absolute figures "
         "depend on what else the machine ran (the load lines above); the same-run ratios are "
         "the claim",
         f"- versions: {', '.join(f'{k} {v}' for k, v in m.get('versions', {}).items())}; peers: "
         f"{', '.join(f'{k} {v}' for k, v in m.get('peers', {}).items()) or 'none'}",
         f"- commit {m.get('git_commit', '')[:12]}{' (with local changes)' if m.get('git_dirty') else ''}",
         f"- mode {plan.get('mode')}: {plan.get('reps')} repetitions, {plan.get('warmup_s'):.2f} s "
         f"warm-up and {plan.get('duration_s'):.2f} s measured per point; run took "
         f"{summary.get('elapsed_s') or 0:.0f} s", ""]
    if summary["skipped"]:
        L += ["Skipped in this run:", ""] + [f"- {s['what']}: {s['why']}" for s in summary["skipped"]] + [""]
    L += ["## Method", "",
          "fastraft: lmdb log synced to disk on every commit, the embedded API, TCP between "
          "nodes on 127.0.0.1, each node its own OS process. PySyncObj 0.3.17 on its defaults "
          "(journal in memory, never synced, appends batched on its timer). etcd: three members, "
          "default WAL fsync, through its JSON gateway. Cluster load is generated inside the "
          "leader's process (closed loop with a fixed number of writes in flight, or open loop "
          "at a fixed offered load, latency counted from each write's scheduled start); KV load "
          "by the project's HTTP load generator (`benchmarks/loadgen.py`, keep-alive "
          "connections, one request in flight each) against the leader. Every point has a "
          "warm-up; within each repetition fastraft and its peer run the same point one after "
          "the other (A B A B), so drift on the machine hits both." + (
              " CPU per write (closed-loop cluster points): user + system time of each node "
              "process from /proc/<pid>/stat (clock ticks, usually 10 ms) over the measured "
              "window, divided by the writes committed in it; the leader's includes the load "
              "generator, the follower's is the followers' mean." if any(
                  p.get("leader_cpu_us") for p in idx.values()) else ""), ""]
    if plots.get("in_flight"):
        L += [f"![throughput vs writes in flight]({plots['in_flight']})", ""]
    L += _cluster_tables(idx)
    L += _write_path_tables(idx)
    if plots.get("cdf"):
        L += [f"![latency CDFs]({plots['cdf']})", ""]
    L += _kv_tables(idx) + _failover_snapshot(summary) + _micro_table(idx)
    if plots.get("ratios"):
        L += [f"![ratios]({plots['ratios']})", ""]
    return "\n".join(L) + "\n"


def _load_line(m) -> list[str]:
    """The 1-minute load average sampled at every step of the run, summarised."""
    samples = [x for _, x in m.get("load_avg_samples", [])]
    if not samples:
        return []
    return [f"- load average (1 min) during the run, sampled at each of its {len(samples)} steps: "
            f"median {np.median(samples):.1f}, min {min(samples):.1f}, max {max(samples):.1f} "
            f"on {m.get('cores')} cores"]


def _cell(p) -> str:
    """ops/s median (min–max), and the failed requests of the point if any (they count as
    no throughput: a repetition whose leader was lost under load shows as a low minimum)."""
    if p is None:
        return "–"
    failed = f" ({p['errors']:,} failed)" if p.get("errors") else ""
    return spread(p["ops_s"]) + failed


def _cpu_cell(p) -> str:
    """CPU µs per write, leader / follower, medians over repetitions; "–" without figures."""
    if not p or not p.get("leader_cpu_us") or not p.get("follower_cpu_us"):
        return "–"
    return f"{np.median(p['leader_cpu_us']):,.0f} / {np.median(p['follower_cpu_us']):,.0f}"


def _sys_table(idx, suite, metric, xlabel, systems):
    xs = sorted({k[2] for k in idx if k[:2] == (suite, metric)})
    if not xs:
        return []
    # CPU columns only where some point has the figures (older results have none)
    cpu = [s for s in systems if any(idx.get((suite, metric, x, s), {}).get("leader_cpu_us")
                                     for x in xs)]
    L = [f"| {xlabel} | " + " | ".join(systems) + " | ratio [95% CI] |"
         + "".join(f" {s} CPU µs/write, leader / follower |" for s in cpu),
         "|---:|" + "---:|" * (len(systems) + 1 + len(cpu))]
    for x in xs:
        cells = [_cell(idx.get((suite, metric, x, s))) for s in systems]
        a, b = idx.get((suite, metric, x, systems[0])), idx.get((suite, metric, x, systems[-1]))
        r = fmt_ratio(ratio_ci(a["ops_s"], b["ops_s"])) if a and b and a is not b and min(b["ops_s"]) > 0 else "–"
        L.append(f"| {x:,} | " + " | ".join(cells) + f" | {r} |"
                 + "".join(f" {_cpu_cell(idx.get((suite, metric, x, s)))} |" for s in cpu))
    return L + [""]


def _cluster_tables(idx):
    L = ["## Cluster suite (embedded API, writes/s)", ""]
    for metric, head, xl in (("in_flight", "Throughput vs writes in flight (100 B)", "in flight"),
                             ("payload", "Throughput vs payload (256 in flight)", "payload bytes"),
                             ("size", "Throughput vs cluster size (256 in flight, 100 B)", "nodes")):
        t = _sys_table(idx, "cluster", metric, xl, ["fastraft", "pysyncobj"])
        if t:
            L += [f"### {head}", ""] + t
    lat = sorted(((k, p) for k, p in idx.items() if k[:2] == ("cluster", "open_loop")), key=lambda kp: (kp[0][2], kp[0][3]))
    floor = [(k, p) for k, p in sorted(idx.items(), key=lambda kp: str(kp[0]))
             if k[:2] == ("cluster", "floor")]
    if floor:
        one = idx.get(("cluster", "in_flight", 1, "fastraft"))
        L += ["### Latency floor of one replicated write (ms, median over repetitions, min–max)", "",
              "Three processes doing only what one write needs: loopback hops to two followers "
              "and a synced write on each node (lmdb: a commit; rocksdb: a write batch), "
              "majority of three (`benchmarks/cluster/latency_floor.py`); store \"memory\": "
              "the hops alone.", "",
              "| floor | p50 | p99 |", "|---|---:|---:|"]
        for k, p in floor:
            L.append(f"| {k[2]} | {spread(p['p50_ms'], 2)} | {spread(p['p99_ms'], 2)} |")
        if one and min(one["ops_s"]) > 0:
            L.append(f"| fastraft, 1 write in flight (mean, 1 / writes/s) | "
                     f"{spread([1e3 / x for x in one['ops_s']], 2)} | |")
        L.append("")
    if lat:
        L += ["### Latency at fixed offered loads (open loop, 100 B, ms, all repetitions pooled)", "",
              "| offered writes/s | system | p50 | p90 | p99 | p99.9 | max | samples | dropped |",
              "|---:|---|---:|---:|---:|---:|---:|---:|---:|"]
        for k, p in lat:
            q = p.get("latency_ms") or {}
            L.append(f"| {k[2]:,} | {k[3]} | " + " | ".join(f"{q.get(n, float('nan')):.2f}" for n in
                     ("p50", "p90", "p99", "p99.9", "max")) + f" | {q.get('count', 0)} | {p.get('dropped', 0)} |")
        L.append("")
    return L


def _median_ratio(a, b) -> str:
    return f"{np.median(a) / np.median(b):.2f}x" if a and b and np.median(b) > 0 else "–"


def _write_path_tables(idx):
    """The write path on each log store: one writer beside its store's floor, throughput,
    and each durable store's synced append of one entry beside its engine's raw write."""
    stores = [s for s in ("memory", "lmdb", "rocksdb")
              if ("cluster", "log_store_one_writer", s, "fastraft") in idx]
    L = []
    if stores:
        L += ["### The write path on each log store (3 nodes, 100 B)", "",
              "One writer, one write at a time (p50 and p99 of every write, ms), beside the "
              "floor of the same store (`benchmarks/cluster/latency_floor.py`: the hops and "
              "that store's own synced writes; for memory the hops alone); writes/s with 256 "
              "and 10,000 writes in flight and with `client_write_many` of 1,000 (8 calls in "
              "flight). Medians over repetitions (min–max); CPU µs per write, leader / "
              "follower.", "",
              "| log store | one writer p50 | its floor p50 | p50 / floor | one writer p99 | "
              "256 in flight | 10,000 in flight | write_many of 1,000 | CPU at 256 |",
              "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for s in stores:
            one = idx[("cluster", "log_store_one_writer", s, "fastraft")]
            floor = idx.get(("cluster", "floor", s, "floor"))
            cells = [_cell(idx.get(("cluster", f"log_store_{n}", s, "fastraft")))
                     for n in ("w256", "w10000", "many")]
            L.append(f"| {s} | {spread(one['p50_ms'], 2)} | "
                     f"{spread(floor['p50_ms'], 2) if floor else '–'} | "
                     f"{_median_ratio(one['p50_ms'], floor['p50_ms']) if floor else '–'} | "
                     f"{spread(one['p99_ms'], 2)} | " + " | ".join(cells) + " | "
                     f"{_cpu_cell(idx.get(('cluster', 'log_store_w256', s, 'fastraft')))} |")
        L.append("")
    engines = [e for e in ("lmdb", "rocksdb") if ("cluster", "store_append", e, "raw") in idx]
    if engines:
        L += ["### One synced append of one entry (µs, p50, median over repetitions)", "",
              "`benchmarks/cluster/store_append.py`, every case open at once and interleaved "
              "append by append: raw, the engine's own synced write of the same bytes called "
              "straight on the trio thread; hand-off floor, that raw write in a long-lived "
              "thread fed by a queue and handed back to trio (the least a writer thread "
              "costs); store, as the runtime drives it (`append_nowait`, timed where its "
              "callback runs); awaited, `await store.append(...)` (timed when the caller "
              "has woken).", "",
              "| engine | raw | hand-off floor | store | store / raw | awaited | awaited / raw |",
              "|---|---:|---:|---:|---:|---:|---:|"]
        for e in engines:
            def us(case):
                p = idx.get(("cluster", "store_append", e, case))
                return p["p50_us"] if p else None
            raw, queue, nowait, store = (us(c) for c in ("raw", "raw_queue", "store_nowait", "store"))
            L.append(f"| {e} | {spread(raw)} | {spread(queue) if queue else '–'} | "
                     f"{spread(nowait) if nowait else '–'} | {_median_ratio(nowait, raw)} | "
                     f"{spread(store) if store else '–'} | {_median_ratio(store, raw)} |")
        L.append("")
    return L


def _kv_tables(idx):
    keys = sorted((k for k in idx if k[0] == "kv"), key=lambda k: (k[1], k[2], k[3]))
    if not keys:
        return []
    L = ["## KV API over HTTP (3 nodes, 100-byte values)", "",
         "| op | clients | system | ops/s | p50 ms | p99 ms | p99.9 ms | max ms | server CPU µs/op | errors |",
         "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|"]
    for k in keys:
        p = idx[k]
        q = p.get("latency_ms") or {}
        label = "load generator ceiling (fixed answer)" if k[3] == "ceiling" else k[3]
        op = "linearizable read" if k[1] == "read" else k[1]
        cpu = p.get("server_cpu_us_per_op")
        L.append(f"| {op if k[3] != 'ceiling' else '–'} | {k[2]} | {label} | {spread(p['ops_s'])} | "
                 + " | ".join(f"{q[n]:.2f}" if n in q else "–" for n in ("p50", "p99", "p99.9", "max"))
                 + (f" | {cpu:.0f} | {p.get('errors', 0)} |" if cpu
                    else f" | – | {p.get('errors', 0)} |"))
    L += ["", "The ceiling row is the load generator against an HTTP server that answers at once: "
          "no figure above it can exceed it on this machine.", ""]
    for op, system in (("write", "fastraft"), ("read", "fastraft"),
                       ("write", "fastraft-rocksdb")):
        t = _sys_table(idx, "kv", op, "clients", [system, "etcd"])
        if t and any("etcd" == k[3] for k in keys) and any(system == k[3] for k in keys):
            L += [f"{system} / etcd, {op}s/s:", ""] + t
    return L


def _failover_snapshot(summary):
    L = []
    fo = summary["failover_ms"]
    ok = [x for x in fo if x is not None]
    if fo:
        L += ["## Failover", "",
              f"Leader SIGKILLed; time until a write is committed by the next leader (default "
              f"election timeouts 1–2 s), {len(fo)} trials, {len(fo) - len(ok)} without a new "
              f"leader in 10 s: median {np.median(ok):.0f} ms, p90 {np.percentile(ok, 90):.0f} ms, "
              f"min {min(ok):.0f} ms, max {max(ok):.0f} ms." if ok else "no trial elected a leader", ""]
    if summary["snapshot"]:
        L += ["## Snapshot install", "",
              "A follower stopped while the others took the state (16 KiB values; the KV "
              "example's lmdb state machine, whose snapshots are files streamed in chunks), "
              "then restarted: time from its process being up to it having applied everything; "
              "wall time of the whole row (cluster start, load, snapshot, install).", "",
              "| state | via snapshot | install s | with process start s | loading it took s "
              "| follower peak RSS MiB | row wall time s |",
              "|---:|---|---:|---:|---:|---:|---:|"]
        for s in summary["snapshot"]:
            inst = "failed" if s["install_s"] is None else f"{s['install_s']:.2f}"
            ws = "–" if s["with_start_s"] is None else f"{s['with_start_s']:.2f}"
            rss = s.get("follower_peak_rss_mib")
            wall = s.get("wall_s")
            L.append(f"| {s['state_bytes'] / 2**20:,.0f} MiB | {'yes' if s['via_snapshot'] else 'no'} | "
                     f"{inst} | {ws} | {s['load_s']:.1f} | {'–' if rss is None else f'{rss:,.0f}'} "
                     f"| {'–' if wall is None else f'{wall:.0f}'} |")
        L.append("")
    return L


def _micro_table(idx):
    rows = [(k[1], p, idx[("micro", k[1], "pure")]) for k, p in sorted(idx.items(), key=lambda kp: str(kp[0]))
            if _compared_micro(idx, k)]
    if not rows:
        return []
    L = ["## Micro suite: compiled core vs pure-Python twins", "",
         "pytest-benchmark in two subprocesses (FASTRAFT_PURE_PYTHON unset, then =1), "
         "alternated; median per round. The storage cases timed against raw lmdb in every "
         "round are disk-bound (synced writes): they are in the paired table below, not here.", "",
         "| case | compiled µs | pure µs | pure / compiled [95% CI] |", "|---|---:|---:|---:|"]
    for case, c, p in rows:
        L.append(f"| {case} | {c['median_s'] * 1e6:,.1f} | {p['median_s'] * 1e6:,.1f} | "
                 f"{fmt_ratio(ratio_ci(p['rounds_s'], c['rounds_s']))} |")
    paired = [(k[1], p["paired_ratio"]) for k, p in sorted(idx.items(), key=lambda kp: str(kp[0]))
              if k[0] == "micro" and k[2] == "compiled" and p.get("paired_ratio")]
    if paired:
        L += ["", "Storage cases' own paired ratios (`benchmarks/bench_storage.py`: both halves "
              "timed in every round, alternating; ratio = the contender's throughput over its "
              "baseline's, median over rounds: lmdb store / raw lmdb for the appends and the "
              "purge, writemap / plain and block / entry values on raw lmdb), compiled process:", "",
              "| case | ratio, median (min–max over repetitions) |", "|---|---:|"]
        L += [f"| {case} | {spread(r, 2)} |" for case, r in paired]
    return L + [""]


def update_readme(path: str, rows: list[str]) -> None:
    if not os.path.exists(path):
        return
    text = open(path).read()
    if HEAD_START not in text:
        return
    block = HEAD_START + "\n" + "\n".join(rows) + "\n" + HEAD_END
    text = re.sub(re.escape(HEAD_START) + ".*?" + re.escape(HEAD_END), lambda _: block, text,
                  flags=re.S)
    with open(path, "w") as f:
        f.write(text)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks report")
    full = os.path.join(ROOT, "benchmarks", "results", "results-full.json")
    p.add_argument("results", nargs="?", default=full if os.path.exists(full) else
                   os.path.join(ROOT, "benchmarks", "results", "results-full.summary.json"),
                   help="a run's results, or the summary JSON a report wrote (the committed "
                        "one by default when no full run's results are here)")
    p.add_argument("--md", default=os.path.join(ROOT, "BENCHMARKS.md"))
    p.add_argument("--readme", default=None, help="README whose headline table to rewrite "
                   "(default: the repository's, when --md is the repository's BENCHMARKS.md)")
    args = p.parse_args(argv)
    with open(args.results) as f:
        data = json.load(f)
    summary = data if "points" in data else summarise(data)
    md_dir = os.path.dirname(os.path.abspath(args.md))
    plot_dir = os.path.join(ROOT, "benchmarks", "results") if md_dir == ROOT else md_dir
    plots = _plots(summary, _index(summary), plot_dir, os.path.relpath(plot_dir, md_dir))
    with open(args.md, "w") as f:
        f.write(render(summary, plots))
    if "points" not in data:
        with open(os.path.splitext(args.results)[0] + ".summary.json", "w") as f:
            json.dump(summary, f, indent=1)
    readme = args.readme or (os.path.join(ROOT, "README.md") if md_dir == ROOT else None)
    if readme:
        update_readme(readme, headline(_index(summary), summary))
    print(f"report: {args.md}")
