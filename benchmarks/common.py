"""What every suite of ``python -m benchmarks`` shares: the run's settings (``Plan``), its
port allocator, its record of results (``Results``), and the description of the machine.

Invariant: every sample a suite measures goes into ``Results`` as it is taken, so a run that
stops early (budget spent, a peer failing) still leaves every finished point in the JSON.
"""

from __future__ import annotations

import json
import os
import platform
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@dataclass
class Plan:
    """How long and how often each point runs. ``smoke``: seconds in total, numbers only
    show that every part still works."""

    mode: str = "full"
    reps: int = 3
    warmup_s: float = 2.0
    duration_s: float = 5.0
    in_flight: tuple = (1, 16, 64, 256, 1024)
    payloads: tuple = (10, 100, 1024, 16384)
    offered_loads: tuple = (200, 1000, 4000)  # writes/s, open loop
    sizes: tuple = (3, 5, 7)
    kv_clients: tuple = (1, 16, 64, 256)
    failover_trials: int = 20
    snapshot_mb: tuple = (100, 1024)
    micro_max_time_s: float = 0.5

    @classmethod
    def for_mode(cls, mode: str) -> "Plan":
        if mode == "smoke":
            return cls(mode="smoke", reps=1, warmup_s=0.1, duration_s=0.3, in_flight=(1, 1024),
                       payloads=(16384,), offered_loads=(500,), sizes=(5,),
                       kv_clients=(1, 64), failover_trials=1, snapshot_mb=(4,),
                       micro_max_time_s=0.02)
        if mode == "medium":
            return cls(mode="medium", reps=3, warmup_s=1.0, duration_s=3.0, failover_trials=10,
                       snapshot_mb=(100,), micro_max_time_s=0.2)
        return cls()

    def scale_to(self, budget_s: float, estimate_s: float) -> None:
        """Shrink the measured durations (not the set of points) so that a run estimated at
        ``estimate_s`` fits ``budget_s``; never below a quarter second of measurement."""
        if estimate_s <= budget_s:
            return
        factor = max(0.05, budget_s / estimate_s)
        self.duration_s = max(0.25, self.duration_s * factor)
        self.warmup_s = max(0.1, self.warmup_s * factor)


class Ports:
    """Ports handed out upward from ``base`` (RAFTBENCH_BASE_PORT), each once per run, so
    parallel runs given disjoint ranges never collide."""

    def __init__(self, base: int, limit: int = 2000) -> None:
        self.next, self.end = base, base + limit

    def take(self, n: int) -> list[int]:
        """``n`` ports of the range that can be listened on now. A port some other socket
        holds is passed over: a range inside the kernel's ephemeral ports (Linux: 32768-60999)
        has ports taken by outgoing connections of any process on the machine."""
        out: list[int] = []
        while len(out) < n:  # bounded: the range is finite
            if self.next >= self.end:
                raise RuntimeError(f"port range exhausted at {self.next}")
            port, self.next = self.next, self.next + 1
            if _free(port):
                out.append(port)
        return out


def _free(port: int) -> bool:
    """Whether 127.0.0.1:``port`` can be bound as a listener would (SO_REUSEADDR: a port in
    TIME-WAIT counts as free, one held by a live socket does not)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


#: Why the RocksDB rows are skipped where its binding is missing.
ROCKSDB_MISSING = "rocksdict is not installed (pip install 'fastraft[rocksdb]')"


def have_rocksdict() -> bool:
    """Whether the RocksDB log store can run here (its binding imports)."""
    try:
        import rocksdict  # noqa: F401
    except ImportError:
        return False
    return True


def _run(cmd: list[str]) -> str:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=10,
                              cwd=ROOT).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def machine() -> dict:
    """The machine and software a run measured: CPU model, cores, memory, load, versions."""
    import fastraft

    cpu = ""
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f
                        if line.startswith("model name")), "")
    except OSError:
        pass
    mem_gib = None
    try:
        with open("/proc/meminfo") as f:
            mem_gib = round(int(f.readline().split()[1]) / 2**20, 1)
    except (OSError, ValueError, IndexError):
        pass
    versions = {"python": platform.python_version(), "fastraft": fastraft.__version__,
                "fastraft_core": "compiled" if fastraft.accelerated() else "pure"}
    for mod in ("trio", "lmdb", "numpy", "matplotlib", "rich"):
        try:
            versions[mod] = __import__(mod).__version__
        except (ImportError, AttributeError):
            pass
    return {"cpu_model": cpu or platform.processor(), "cores": os.cpu_count(),
            "memory_gib": mem_gib, "kernel": platform.release(), "os": platform.platform(),
            "load_avg_start": os.getloadavg(), "versions": versions,
            "git_commit": _run(["git", "rev-parse", "HEAD"]),
            # local changes to the code measured (the results folder itself does not count)
            "git_dirty": bool(_run(["git", "status", "--porcelain", "--untracked-files=no", "--",
                                    ".", ":!benchmarks/results"])),
            "argv": sys.argv[1:]}


@dataclass
class Results:
    """The run's JSON: machine, plan, one list of records per suite, skipped parts."""

    path: str
    machine: dict = field(default_factory=dict)
    plan: dict = field(default_factory=dict)
    records: list = field(default_factory=list)
    skipped: list = field(default_factory=list)
    started: float = field(default_factory=time.time)

    def add(self, suite: str, **record) -> dict:
        record = {"suite": suite, "t": round(time.time() - self.started, 3), **record}
        self.records.append(record)
        self.save()
        return record

    def skip(self, what: str, why: str, say=print) -> None:
        self.skipped.append({"what": what, "why": why})
        say(f"SKIPPED {what}: {why}")
        self.save()

    def save(self) -> None:
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            json.dump({"machine": self.machine, "plan": self.plan, "records": self.records,
                       "skipped": self.skipped, "started": self.started,
                       "elapsed_s": round(time.time() - self.started, 1)}, f)
        os.replace(tmp, self.path)


def plan_dict(plan: Plan) -> dict:
    return asdict(plan)
