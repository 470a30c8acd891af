"""The cluster suite: fastraft (lmdb synced to disk, the embedded API, TCP on 127.0.0.1) and
PySyncObj (its defaults) as clusters of OS processes, load generated inside the leader's
process, points interleaved fastraft then PySyncObj within every repetition (A B A B), so
drift on a shared machine hits both.

* ``in_flight``: throughput (writes/s) with 1 ... 1024 writes in flight, 100-byte payloads;
* ``payload``: throughput with 256 in flight, payloads of 10 B ... 16 KiB;
* ``open_loop``: latency (every sample) at fixed offered loads, writes started on schedule;
* ``size``: throughput with 256 in flight on clusters of 3, 5, 7 nodes;
* ``failover`` (fastraft): leader SIGKILLed, time to the next committed write;
* ``snapshot`` (fastraft): a follower that was down while the others took ``MB`` of state
  comes back; time until it applied everything, through an InstallSnapshot (Raft §7).
"""

from __future__ import annotations

import time

from .clusters import Cluster


def _both(ctx, size: int):
    """The clusters of this step: fastraft always, PySyncObj when it is available."""
    clusters = [("fastraft", Cluster("fastraft", size, ctx.ports.take(size), ctx.workdir))]
    if ctx.pysyncobj_python:
        try:
            clusters.append(("pysyncobj", Cluster("pysyncobj", size, ctx.ports.take(size),
                                                  ctx.workdir, python=ctx.pysyncobj_python)))
        except Exception as e:  # the peer failing must not cost fastraft's figures
            ctx.results.skip(f"PySyncObj cluster of {size}", f"did not start: {e}", ctx.say)
    return clusters


def _stop(clusters) -> None:
    for _, c in clusters:
        c.stop()


def _ask(ctx, clusters, system, c, what: str, request: dict):
    """``request`` on ``system``'s leader; if that fails (no leader, a node gone), the failure
    is named in the results and that system leaves the rest of this step: one system's
    collapse never costs the other's figures."""
    try:
        return c.on_leader(request)
    except Exception as e:
        ctx.results.skip(f"{system}: {what} and the rest of this step", f"failed: {e}", ctx.say)
        clusters.remove((system, c))
        try:
            c.stop()
        except Exception:
            pass
        return None


def throughput_points(ctx) -> None:
    plan = ctx.plan
    points = ([("in_flight", w, 100, w) for w in plan.in_flight]
              + [("payload", p, p, 256) for p in plan.payloads])
    clusters = _both(ctx, 3)
    try:
        for rep in range(plan.reps):
            for metric, x, payload, window in points:
                for system, c in list(clusters):  # A then B, for every point of every rep
                    if not ctx.step(f"cluster {metric}={x} {system} rep {rep + 1}"):
                        return
                    r = _ask(ctx, clusters, system, c, f"{metric}={x}", {
                        "cmd": "throughput", "window": window, "payload": payload,
                        "warmup_s": plan.warmup_s, "duration_s": plan.duration_s})
                    if r is None:
                        continue
                    ctx.results.add("cluster", metric=metric, x=x, system=system, rep=rep,
                                    size=3, window=window, payload=payload, ops_s=r["ops_s"],
                                    errors=r.get("errors", 0), error_kinds=r.get("error_kinds", {}))
            for rate in plan.offered_loads:
                for system, c in list(clusters):
                    if not ctx.step(f"cluster latency at {rate}/s {system} rep {rep + 1}"):
                        return
                    r = _ask(ctx, clusters, system, c, f"latency at {rate}/s", {
                        "cmd": "open_loop", "rate": rate, "payload": 100,
                        "warmup_s": plan.warmup_s, "duration_s": plan.duration_s})
                    if r is None:
                        continue
                    ctx.results.add("cluster", metric="open_loop", x=rate, system=system, rep=rep,
                                    size=3, payload=100, latency_ms=r["latency_ms"],
                                    dropped=r["dropped"], unfinished=r["unfinished"])
    finally:
        _stop(clusters)


def size_points(ctx) -> None:
    plan = ctx.plan
    for size in plan.sizes:
        if not ctx.step(f"cluster of {size}: start", advance=False):
            return
        clusters = _both(ctx, size)
        try:
            for rep in range(plan.reps):
                for system, c in list(clusters):
                    if not ctx.step(f"cluster size {size} {system} rep {rep + 1}"):
                        return
                    r = _ask(ctx, clusters, system, c, f"cluster of {size}", {
                        "cmd": "throughput", "window": 256, "payload": 100,
                        "warmup_s": plan.warmup_s, "duration_s": plan.duration_s})
                    if r is None:
                        continue
                    ctx.results.add("cluster", metric="size", x=size, system=system, rep=rep,
                                    size=size, window=256, payload=100, ops_s=r["ops_s"])
        finally:
            _stop(clusters)


def failover(ctx) -> None:
    """Raft §5.2: a new leader is elected after the election timeout (1-2 s by default)."""
    c = Cluster("fastraft", 3, ctx.ports.take(3), ctx.workdir)
    try:
        for trial in range(ctx.plan.failover_trials):  # bounded
            if not ctx.step(f"failover trial {trial + 1}"):
                return
            lid = c.leader()
            time.sleep(0.5)  # the followers heard the leader recently: a typical kill
            followers = [p for i, p in c.procs.items() if i != lid]
            for p in followers:
                p.request({"cmd": "arm", "timeout_s": 10.0})
            t_kill = time.monotonic()
            c.procs[lid].kill()
            firsts = [ev["t"] for ev in (p.events.get(timeout=30) for p in followers)
                      if ev["t"] is not None]
            ms = (min(firsts) - t_kill) * 1e3 if firsts else None
            ctx.results.add("failover", trial=trial, ms=ms)
            if trial + 1 == ctx.plan.failover_trials:
                break
            c.procs[lid] = c.spawn(lid)  # restarts from its disk and catches up
            target = c.procs[c.leader()].request({"cmd": "status"})["applied"]
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:  # bounded: until the restarted node caught up
                if c.procs[lid].request({"cmd": "status"})["applied"] >= target:
                    break
                time.sleep(0.05)
    finally:
        c.stop()  # the killed node's process is gone already: its exit is a no-op


def _mem_available_mib() -> float:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) / 1024
    return 0.0


def snapshot_install(ctx) -> None:
    value_bytes = 16384
    for mb in ctx.plan.snapshot_mb:
        # the benchmark state machine keeps state, snapshot (hex: twice the state) and the
        # received copy in memory on three nodes: about 16 times the state in all
        need = 16 * mb
        if _mem_available_mib() < need:
            ctx.results.skip(f"snapshot install of {mb} MB",
                             f"needs about {need} MiB of free memory, "
                             f"{_mem_available_mib():.0f} MiB available", ctx.say)
            continue
        if not ctx.step(f"snapshot install {mb} MB"):
            return
        # no log kept behind the snapshot: the follower needs the snapshot whatever its size
        c = Cluster("fastraft", 3, ctx.ports.take(3), ctx.workdir,
                    conf={"max_in_snapshot_log_to_keep": 0})
        try:
            lid = c.leader()
            f = next(i for i in c.procs if i != lid)
            c.procs.pop(f).exit()
            keys = max(1, mb * 2**20 // value_bytes)
            load = c.procs[lid].request({"cmd": "load_state", "keys": keys,
                                         "value_bytes": value_bytes}, timeout=3600)
            target = c.procs[lid].request({"cmd": "status"})["applied"]
            t_spawn = time.monotonic()
            c.procs[f] = c.spawn(f)
            t_ready = time.monotonic()
            deadline = t_ready + 1800
            st = {}
            while time.monotonic() < deadline:  # bounded: until the follower applied it all
                st = c.procs[f].request({"cmd": "status"})
                if st["applied"] >= target:
                    break
                time.sleep(0.02)
            t_done = time.monotonic()
            ok = st.get("applied", 0) >= target
            ctx.results.add("snapshot", mb=mb, state_bytes=load["bytes"], keys=keys,
                            load_s=load["load_s"], install_s=t_done - t_ready if ok else None,
                            with_start_s=t_done - t_spawn if ok else None,
                            via_snapshot=(st.get("snapshot") or 0) >= (load["snapshot_index"] or 1))
        finally:
            c.stop()


STEPS = [("cluster throughput and latency", throughput_points), ("cluster sizes", size_points),
         ("failover", failover), ("snapshot install", snapshot_install)]


def count_steps(plan, peers: int) -> int:
    per_rep = (len(plan.in_flight) + len(plan.payloads) + len(plan.offered_loads)) * peers
    return (plan.reps * per_rep + len(plan.sizes) * plan.reps * peers + plan.failover_trials
            + len(plan.snapshot_mb))
