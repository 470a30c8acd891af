"""Campaigns: many seeds, a progress bar, a summary, and for every failure the seed and the
command that replays it.

Wall-clock time is measured here, outside the runs, for the progress bar and the "slowest
seed" line only: it never reaches a simulation.
"""

from __future__ import annotations

import multiprocessing
import os
import time
import traceback
from dataclasses import dataclass, field
from typing import Callable, Iterable, TextIO

from fastraft import accel

from .profile import ADMIN_KINDS, FAULT_KINDS, SimOptions
from .simulation import RunResult, run_seed

__all__ = ["CampaignSummary", "replay_command", "run_one", "run_campaign"]

_DEFAULTS = SimOptions()


def replay_command(seed: int, opts: SimOptions, trace: bool = True) -> str:
    """The shell command that replays ``seed`` with ``opts`` in the build now in use."""
    parts = []
    if not accel.accelerated():
        parts.append("FASTRAFT_PURE_PYTHON=1")
    parts += ["python", "-m", "fastraft.sim", "--seed", str(seed), "--steps", str(opts.steps)]
    if (opts.min_nodes, opts.max_nodes) != (_DEFAULTS.min_nodes, _DEFAULTS.max_nodes):
        parts += ["--nodes", str(opts.min_nodes), str(opts.max_nodes)]
    for k in FAULT_KINDS:
        if k not in opts.faults:
            parts += ["--no-fault", k]
    for k in ADMIN_KINDS:
        if k not in opts.admin:
            parts += ["--no-admin", k]
    if opts.quiet_s != _DEFAULTS.quiet_s:
        parts += ["--quiet-s", repr(opts.quiet_s)]
    if opts.quiet_max_steps != _DEFAULTS.quiet_max_steps:
        parts += ["--quiet-max-steps", str(opts.quiet_max_steps)]
    if opts.lin_budget != _DEFAULTS.lin_budget:
        parts += ["--lin-budget", str(opts.lin_budget)]
    if opts.fault_rate != _DEFAULTS.fault_rate:
        parts += ["--fault-rate", repr(opts.fault_rate)]
    for name, value in opts.config:
        parts += ["--set", f"{name}={value}"]
    for k in sorted(opts.disabled_checks):
        parts += ["--disable-check", k]
    if trace:
        parts.append("--trace")
    return " ".join(parts)


@dataclass
class CampaignSummary:
    """Totals over the runs of a campaign; ``failures`` lists (seed, kind, detail)."""

    opts: SimOptions
    first_seed: int = 0
    planned: int = 0
    runs: int = 0
    steps: int = 0
    quiet_steps: int = 0
    sim_time_s: float = 0.0
    wall_s: float = 0.0
    messages: int = 0
    faults: dict = field(default_factory=dict)
    admin: dict = field(default_factory=dict)
    events: dict = field(default_factory=dict)
    ops: dict = field(default_factory=dict)
    lin_keys: int = 0
    lin_inconclusive: int = 0
    failures: list = field(default_factory=list)
    slowest: tuple = (None, 0.0, 0)  # seed, wall seconds, steps
    slowest_recovery: tuple = (None, 0.0)  # seed, simulated seconds
    stopped_early: bool = False

    def add(self, r: RunResult, wall_s: float) -> None:
        self.runs += 1
        self.steps += r.steps
        self.quiet_steps += r.quiet_steps
        self.sim_time_s += r.sim_time_s
        self.messages += r.messages
        for src, dst in ((r.faults, self.faults), (r.admin, self.admin), (r.ops, self.ops),
                         (r.events, self.events)):
            for k, v in src.items():
                dst[k] = dst.get(k, 0) + v
        self.lin_keys += r.lin_keys
        self.lin_inconclusive += r.lin_inconclusive
        if r.violation is not None:
            self.failures.append((r.seed, r.violation[0], r.violation[1]))
        if wall_s > self.slowest[1]:
            self.slowest = (r.seed, wall_s, r.steps + r.quiet_steps)
        if r.recovered_s is not None and r.recovered_s > self.slowest_recovery[1]:
            self.slowest_recovery = (r.seed, r.recovered_s)

    def render(self) -> str:
        flavour = "compiled" if accel.accelerated() else "pure"
        last = self.first_seed + self.planned - 1
        faults_total = sum(self.faults.values())
        lines = [
            f"fastraft.sim campaign ({flavour} build): seeds {self.first_seed}..{last}, "
            f"{self.opts.steps} steps each, faults: {','.join(sorted(self.opts.faults)) or '-'}",
            f"runs:        {self.runs} of {self.planned}"
            + ("  (stopped early: time budget)" if self.stopped_early else ""),
            f"steps:       {self.steps} in fault phases + {self.quiet_steps} in quiet phases",
            f"time:        {self.sim_time_s:.1f} s simulated, {self.wall_s:.1f} s wall",
            f"messages:    {self.messages}",
            f"faults:      {faults_total} injected: " + _counts(self.faults),
            f"admin:       {sum(self.admin.values())} requests: " + _counts(self.admin),
            "events:      " + _counts(self.events),
            "client ops:  " + _counts(self.ops),
            f"linearizability: {self.lin_keys} keys checked, {self.lin_inconclusive} "
            "inconclusive (search budget)",
            f"liveness:    slowest recovery {self.slowest_recovery[1]:.3f} s simulated "
            f"(seed {self.slowest_recovery[0]})",
            f"slowest seed: {self.slowest[0]} ({self.slowest[1]:.2f} s wall, "
            f"{self.slowest[2]} steps)",
            f"violations:  {len(self.failures)}",
        ]
        for seed, kind, detail in self.failures:
            lines.append(f"  seed {seed}: {kind}: {detail}")
            lines.append(f"    replay: {replay_command(seed, self.opts)}")
        return "\n".join(lines)

    @property
    def ok(self) -> bool:
        return not self.failures and not self.stopped_early


def _counts(d: dict) -> str:
    return " ".join(f"{k}={v}" for k, v in sorted(d.items())) or "-"


def run_one(seed: int, opts: SimOptions) -> tuple[RunResult, float]:
    """One run, timed; an exception escaping the simulator itself becomes a failure of kind
    ``simulator-error`` carrying its traceback's last lines."""
    t0 = time.perf_counter()
    try:
        r = run_seed(seed, opts)
    except Exception:  # noqa: BLE001 - reported with its seed, never swallowed
        tb = traceback.format_exc().strip().splitlines()
        r = RunResult(seed=seed, steps=0, quiet_steps=0, sim_time_s=0.0,
                      violation=("simulator-error", " | ".join(tb[-4:])))
    return r, time.perf_counter() - t0


def _worker(args: tuple[int, SimOptions]) -> tuple[RunResult, float]:
    return run_one(*args)


class _Progress:
    """rich's progress bar on a terminal; none when ``out`` is not a terminal (logs, pipes),
    when FASTRAFT_PROGRESS=0, or when rich is not installed: then only the final line.
    The bar is redrawn from here, never from a thread of its own (the workers are forked)."""

    def __init__(self, out: TextIO | None, total: int) -> None:
        self.out = out
        self.total = total
        self.t0 = time.perf_counter()
        self.shown_at = 0.0
        self.bar = None
        tty = out is not None and hasattr(out, "isatty") and out.isatty()
        if tty and os.environ.get("FASTRAFT_PROGRESS", "") != "0":
            try:
                from rich.console import Console
                from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
                from rich.progress import TimeElapsedColumn, TimeRemainingColumn
            except ImportError:
                return
            self.bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                TimeElapsedColumn(), TimeRemainingColumn(),
                                console=Console(file=out), auto_refresh=False, transient=True)
            self.task = self.bar.add_task("seeds", total=total)
            self.bar.start()

    def line(self, s: CampaignSummary) -> str:
        elapsed = time.perf_counter() - self.t0
        return (f"{s.runs}/{self.total} seeds, {s.steps + s.quiet_steps} steps, "
                f"{len(s.failures)} violations, {elapsed:.0f} s")

    def show(self, s: CampaignSummary, final: bool = False) -> None:
        if self.out is None:
            return
        now = time.perf_counter()
        if self.bar is not None and (final or now - self.shown_at >= 0.1):
            self.shown_at = now
            self.bar.update(self.task, completed=s.runs, description=(
                f"{s.steps + s.quiet_steps} steps, {len(s.failures)} violations"))
            self.bar.refresh()
        if final:
            if self.bar is not None:
                self.bar.stop()
            self.out.write(self.line(s) + "\n")
            self.out.flush()


def run_campaign(seeds: Iterable[int], opts: SimOptions, jobs: int = 1,
                 progress: TextIO | None = None, time_budget_s: float | None = None,
                 on_failure: Callable[[RunResult], None] | None = None) -> CampaignSummary:
    """Run every seed (in order; ``jobs`` worker processes), stopping early only when
    ``time_budget_s`` of wall time is spent. ``on_failure`` is called with each failed run."""
    seeds = list(seeds)
    s = CampaignSummary(opts, first_seed=seeds[0] if seeds else 0, planned=len(seeds))
    bar = _Progress(progress, len(seeds))
    t0 = time.perf_counter()

    def take(r: RunResult, wall: float) -> bool:
        s.add(r, wall)
        if r.violation is not None and on_failure is not None:
            on_failure(r)
        bar.show(s)
        return time_budget_s is not None and time.perf_counter() - t0 > time_budget_s

    if jobs <= 1:
        for seed in seeds:
            if take(*run_one(seed, opts)):
                s.stopped_early = s.runs < len(seeds)
                break
    else:
        ctx = multiprocessing.get_context("fork" if os.name == "posix" else "spawn")
        with ctx.Pool(jobs) as pool:
            for r, wall in pool.imap(_worker, [(seed, opts) for seed in seeds], chunksize=1):
                if take(r, wall):
                    s.stopped_early = s.runs < len(seeds)
                    pool.terminate()
                    break
    s.wall_s = time.perf_counter() - t0
    bar.show(s, final=True)
    return s
