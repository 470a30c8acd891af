"""The cluster suite: fastraft (lmdb synced to disk, the embedded API, TCP on 127.0.0.1) and
PySyncObj (its defaults) as clusters of OS processes, load generated inside the leader's
process, points interleaved fastraft then PySyncObj within every repetition (A B A B), so
drift on a shared machine hits both.

* ``in_flight``: throughput (writes/s) with 1 ... 1024 writes in flight, 100-byte payloads;
* ``payload``: throughput with 256 in flight, payloads of 10 B ... 16 KiB;
* with each throughput point (these two and ``size``), the CPU per committed write of the
  leader (which also runs the load) and of a follower (``CpuWindow``), so a gain in writes/s
  or latency paid for in CPU shows;
* ``open_loop``: latency (every sample) at fixed offered loads, writes started on schedule;
* ``floor``: the latency floor of one replicated write (processes, loopback, synced lmdb);
* ``size``: throughput with 256 in flight on clusters of 3, 5, 7 nodes;
* ``log_store_*`` and ``store_append`` (fastraft): the write path on each log store (memory,
  lmdb, RocksDB when ``rocksdict`` is installed): one writer's p50 and p99 (beside the floor
  of the same store), throughput with 256 and 10,000 writes in flight and with
  ``client_write_many`` of 1,000 (8 in flight), and each durable store's synced append of
  one entry against its engine's raw synced write (``cluster/store_append.py``);
* ``failover`` (fastraft): leader SIGKILLed, time to the next committed write;
* ``snapshot`` (fastraft, the lmdb KV state machine): a follower that was down while the
  others took ``MB`` of state comes back; time until it applied everything, through an
  InstallSnapshot (Raft §7), and the step's wall time (load, snapshot, install).
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time

from .clusters import Cluster
from .common import ROCKSDB_MISSING, have_rocksdict
from .loadgen import _cpu_s


class CpuWindow:
    """User + system CPU seconds (``/proc/<pid>/stat``, all threads, in clock ticks of
    usually 10 ms) of each node process over the measured part of a closed-loop point: a
    thread samples them ``warmup_s`` after the request is sent and again ``duration_s``
    later. The node starts its own clock when the request arrives, a little later, so both
    windows lie inside the same steady load; the writes of this window are the node's
    measured rate times its length.

    ``per_write`` gives ``leader_cpu_us`` (the node that ran the load, load generator
    included) and ``follower_cpu_us`` (the followers' mean), µs per committed write."""

    def __init__(self, pids: dict[int, int], leader: int, warmup_s: float, duration_s: float):
        self.pids, self.leader = pids, leader
        self._sampled: tuple[dict, float] | None = None
        self._thread = threading.Thread(target=self._sample, args=(warmup_s, duration_s),
                                        daemon=True)
        self._thread.start()

    def _sample(self, warmup_s: float, duration_s: float) -> None:
        time.sleep(warmup_s)
        t0 = time.monotonic()
        before = {i: _cpu_s([pid]) for i, pid in self.pids.items()}
        time.sleep(duration_s)
        after = {i: _cpu_s([pid]) for i, pid in self.pids.items()}
        self._sampled = ({i: after[i] - before[i] for i in before}, time.monotonic() - t0)

    def per_write(self, ops_s: float) -> dict:
        """{"leader_cpu_us", "follower_cpu_us"}, or {} without a figure (no writes, no
        follower, or the sampler did not finish)."""
        self._thread.join(timeout=30.0)
        if self._sampled is None or ops_s <= 0:
            return {}
        cpu, elapsed = self._sampled
        writes = ops_s * elapsed
        followers = [c for i, c in cpu.items() if i != self.leader]
        if not followers:
            return {}
        return {"leader_cpu_us": cpu[self.leader] / writes * 1e6,
                "follower_cpu_us": sum(followers) / len(followers) / writes * 1e6}


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


def _ask(ctx, clusters, system, c, what: str, request: dict, cpu: bool = False):
    """``request`` on ``system``'s leader; if that fails (no leader, a node gone), the failure
    is named in the results and that system leaves the rest of this step: one system's
    collapse never costs the other's figures. ``cpu``: a closed-loop point, whose answer
    gains the CPU per write of its nodes (``CpuWindow``)."""
    try:
        if not cpu:
            return c.on_leader(request)
        lid = c.leader()
        window = CpuWindow({i: p.p.pid for i, p in c.procs.items()}, lid, request["warmup_s"],
                           request["duration_s"])
        r = c.procs[lid].request(request)
        r.update(window.per_write(r.get("ops_s", 0.0)))
        return r
    except Exception as e:
        ctx.results.skip(f"{system}: {what} and the rest of this step", f"failed: {e}", ctx.say)
        clusters.remove((system, c))
        try:
            c.stop()
        except Exception:
            pass
        return None


def _cpu_fields(r: dict) -> dict:
    return {k: r[k] for k in ("leader_cpu_us", "follower_cpu_us") if k in r}


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
                        "warmup_s": plan.warmup_s, "duration_s": plan.duration_s}, cpu=True)
                    if r is None:
                        continue
                    ctx.results.add("cluster", metric=metric, x=x, system=system, rep=rep,
                                    size=3, window=window, payload=payload, ops_s=r["ops_s"],
                                    errors=r.get("errors", 0), error_kinds=r.get("error_kinds", {}),
                                    **_cpu_fields(r))
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
                        "warmup_s": plan.warmup_s, "duration_s": plan.duration_s}, cpu=True)
                    if r is None:
                        continue
                    ctx.results.add("cluster", metric="size", x=size, system=system, rep=rep,
                                    size=size, window=256, payload=100, ops_s=r["ops_s"],
                                    **_cpu_fields(r))
        finally:
            _stop(clusters)


def _first_led(followers, t_kill: float, deadline: float) -> float | None:
    """The time the first follower led and committed a write after ``t_kill``. Only one
    can lead a term (Raft §5.2), so the first such event is the earliest: the others' watches
    (which end only when their 10 s run out) are not waited for. A watch that ran out says
    nothing (it may be an earlier trial's, still running when this one was armed)."""
    while time.monotonic() < deadline:  # bounded by the deadline
        for p in followers:
            try:
                ev = p.events.get(timeout=0.01)
            except queue.Empty:
                continue
            if ev["t"] is not None and ev["t"] >= t_kill:
                return ev["t"]
    return None


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
                while not p.events.empty():  # a watch of an earlier trial that ran out
                    p.events.get_nowait()
                p.request({"cmd": "arm", "timeout_s": 10.0})
            t_kill = time.monotonic()
            c.procs[lid].kill()
            first = _first_led(followers, t_kill, deadline=t_kill + 30)
            ms = (first - t_kill) * 1e3 if first is not None else None
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


def _disk_free_mib(path: str) -> float:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize / 2**20


def snapshot_install(ctx) -> None:
    """The nodes keep their state in the KV example's lmdb state machine (durable, snapshots
    are files streamed in chunks), so memory stays small whatever the state's size; the disk
    holds, at the peak, the log of the load on two nodes, the state on two and the snapshot
    files: about 8 times the state in all."""
    value_bytes = 16384
    for mb in ctx.plan.snapshot_mb:
        need = 8 * mb
        if _disk_free_mib(ctx.workdir) < need:
            ctx.results.skip(f"snapshot install of {mb} MB",
                             f"needs about {need} MiB of free disk, "
                             f"{_disk_free_mib(ctx.workdir):.0f} MiB free", ctx.say)
            continue
        if not ctx.step(f"snapshot install {mb} MB"):
            return
        t_step = time.monotonic()
        # no log kept behind the snapshot: the follower needs the snapshot whatever its size
        c = Cluster("fastraft", 3, ctx.ports.take(3), ctx.workdir,
                    conf={"max_in_snapshot_log_to_keep": 0, "state_machine": "lmdb"})
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
            hwm = c.procs[f].request({"cmd": "rss"}).get("hwm_kib")
        finally:
            c.stop()
        ctx.results.add("snapshot", mb=mb, state_bytes=load["bytes"], keys=keys,
                        state_machine="lmdb", load_s=load["load_s"],
                        install_s=t_done - t_ready if ok else None,
                        with_start_s=t_done - t_spawn if ok else None,
                        via_snapshot=(st.get("snapshot") or 0) >= (load["snapshot_index"] or 1),
                        follower_peak_rss_mib=round(hwm / 1024, 1) if hwm else None,
                        wall_s=time.monotonic() - t_step)


def _floor_stores(plan) -> tuple:
    if plan.mode == "smoke":  # the same script and path for every store; 5 s a run in CI
        return ("lmdb",)
    return ("lmdb", "rocksdb", "memory") if have_rocksdict() else ("lmdb", "memory")


def latency_floor(ctx) -> None:
    """The floor under fastraft's one-write-at-a-time latency (``cluster/latency_floor.py``):
    three processes doing only the loopback hops and the synced writes one replicated
    write needs (store "lmdb": lmdb commits; "rocksdb": RocksDB write batches), and the hops
    alone (store "memory"); p50 and p99 per rep."""
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "cluster", "latency_floor.py")
    stores = _floor_stores(ctx.plan)
    if ctx.plan.mode == "smoke":
        ctx.results.skip("latency floor, stores memory and rocksdb", "not in the smoke mode "
                         "(the lmdb floor runs the same script)", ctx.say)
    for rep in range(ctx.plan.reps):
        for store in stores:
            if not ctx.step(f"latency floor, {store}, rep {rep + 1}"):
                return
            for _ in range(20):  # bounded: the script listens on base + 1 and base + 2
                pair = ctx.ports.take(2)
                if pair[1] == pair[0] + 1:
                    break
            env = dict(os.environ, RAFTBENCH_BASE_PORT=str(pair[0] - 1))
            max_s = ctx.plan.warmup_s + ctx.plan.duration_s
            proc = subprocess.run([sys.executable, script, "--writes", "100000", "--max-seconds",
                                   f"{max_s:.2f}", "--store", store], env=env, capture_output=True,
                                  text=True, timeout=max_s + 120)
            if proc.returncode != 0:
                raise RuntimeError(f"latency_floor.py --store {store}: {proc.stderr[-500:]}")
            r = json.loads(proc.stdout.strip().splitlines()[-1])
            ctx.results.add("cluster", metric="floor", x=store, system="floor", rep=rep, size=3,
                            p50_ms=r["p50_ms"], p99_ms=r["p99_ms"], writes=r["writes"])


#: (point name, writes in flight, payloads per call) of each log store's throughput
LOG_STORE_POINTS = (("w256", 256, 1), ("w10000", 10000, 1), ("many", 8, 1000))


def _log_stores(plan) -> tuple:
    if plan.mode == "smoke":  # the step's path once; lmdb and memory run in the other steps
        return ("rocksdb",) if have_rocksdict() else ("memory",)
    return ("memory", "lmdb", "rocksdb") if have_rocksdict() else ("memory", "lmdb")


def log_stores(ctx) -> None:
    """The write path on each log store (the module docstring), a cluster per store and rep,
    stores in turn within each rep; then ``store_append.py`` once, its reps inside."""
    plan = ctx.plan
    stores = _log_stores(plan)
    if not have_rocksdict():
        ctx.results.skip("log store rocksdb", ROCKSDB_MISSING, ctx.say)
    for rep in range(plan.reps):
        for store in stores:
            if not ctx.step(f"log store {store}: start, rep {rep + 1}", advance=False):
                return
            c = Cluster("fastraft", 3, ctx.ports.take(3), ctx.workdir, conf={"log_store": store})
            clusters = [("fastraft", c)]
            try:
                if not ctx.step(f"log store {store}: one writer, rep {rep + 1}"):
                    return
                r = _ask(ctx, clusters, "fastraft", c, f"log store {store}, one writer", {
                    "cmd": "latency", "payload": 100, "probe": False,
                    "warmup_s": plan.warmup_s, "duration_s": plan.duration_s})
                if r is None:
                    continue
                ctx.results.add("cluster", metric="log_store_one_writer", x=store,
                                system="fastraft", rep=rep, size=3, payload=100,
                                p50_ms=r["p50_ms"], p99_ms=r["p99_ms"], errors=r["errors"])
                for name, window, batch in LOG_STORE_POINTS:
                    if not ctx.step(f"log store {store}: {name}, rep {rep + 1}"):
                        return
                    r = _ask(ctx, clusters, "fastraft", c, f"log store {store}, {name}", {
                        "cmd": "throughput", "window": window, "batch": batch, "payload": 100,
                        "warmup_s": plan.warmup_s, "duration_s": plan.duration_s}, cpu=True)
                    if r is None:
                        break
                    ctx.results.add("cluster", metric=f"log_store_{name}", x=store,
                                    system="fastraft", rep=rep, size=3, window=window,
                                    batch=batch, payload=100, ops_s=r["ops_s"],
                                    errors=r.get("errors", 0), **_cpu_fields(r))
            finally:
                c.stop()
    if not ctx.step("store append against the raw write"):
        return
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "cluster", "store_append.py")
    engines = "lmdb,rocksdb" if have_rocksdict() else "lmdb"
    appends = 50 if plan.mode == "smoke" else 1000
    proc = subprocess.run([sys.executable, script, "--reps", str(plan.reps), "--appends",
                           str(appends), "--engines", engines, "--kinds",
                           "raw_queue,store,store_nowait", "--dir", ctx.workdir],
                          capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        raise RuntimeError(f"store_append.py: {proc.stderr[-500:]}")
    for line in proc.stdout.splitlines():
        r = json.loads(line)
        if "case" in r:
            engine, case = r["case"].split("_", 1)
            ctx.results.add("cluster", metric="store_append", x=engine, system=case,
                            rep=r["rep"], size=1, p50_us=r["p50_us"], p99_us=r["p99_us"])


STEPS = [("cluster throughput and latency", throughput_points), ("latency floor", latency_floor),
         ("write path by log store", log_stores),
         ("cluster sizes", size_points),
         ("failover", failover), ("snapshot install", snapshot_install)]


def count_steps(plan, peers: int) -> int:
    per_rep = (len(plan.in_flight) + len(plan.payloads) + len(plan.offered_loads)) * peers
    return (plan.reps * per_rep + len(plan.sizes) * plan.reps * peers + plan.failover_trials
            + len(_floor_stores(plan)) * plan.reps
            + len(_log_stores(plan)) * plan.reps * (1 + len(LOG_STORE_POINTS)) + 1
            + len(plan.snapshot_mb))
