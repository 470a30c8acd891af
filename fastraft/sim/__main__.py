"""``python -m fastraft.sim``: run a campaign of seeds, or replay one seed with its trace.

    python -m fastraft.sim --seeds 1000 --steps 5000        # seeds 0..999, summary at the end
    python -m fastraft.sim --seed 17 --steps 5000 --trace   # replay seed 17, trace to stdout
    python -m fastraft.sim --seed 17 --trace run17.txt      # ... trace to a file

Exit status 0 when every run passed, 1 when a run found a violation (each failure prints its
seed and the command that replays it), 2 for bad arguments.
"""

from __future__ import annotations

import argparse
import os
import sys

from .campaign import replay_command, run_campaign
from .checkers import KINDS
from .profile import ADMIN_KINDS, FAULT_KINDS, SimOptions
from .simulation import run_seed


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m fastraft.sim",
                                description="Deterministic simulation of fastraft clusters.")
    one = p.add_mutually_exclusive_group()
    one.add_argument("--seeds", type=int, default=100, help="campaign: number of seeds (100)")
    one.add_argument("--seed", type=int, help="replay this one seed")
    p.add_argument("--start", type=int, default=0, help="campaign: first seed (0)")
    p.add_argument("--steps", type=int, default=SimOptions.steps,
                   help=f"events in the fault phase of each run ({SimOptions.steps})")
    p.add_argument("--nodes", type=int, nargs=2, metavar=("MIN", "MAX"),
                   default=(SimOptions.min_nodes, SimOptions.max_nodes),
                   help="cluster size range, within 3..7")
    p.add_argument("--no-fault", action="append", default=[], choices=FAULT_KINDS,
                   metavar="KIND", help=f"disable a fault kind: {', '.join(FAULT_KINDS)}")
    p.add_argument("--no-admin", action="append", default=[], choices=ADMIN_KINDS,
                   metavar="KIND", help=f"disable an admin request: {', '.join(ADMIN_KINDS)}")
    p.add_argument("--disable-check", action="append", default=[], choices=KINDS,
                   metavar="KIND", help="skip one checker (to study another)")
    p.add_argument("--quiet-s", type=float, default=SimOptions.quiet_s,
                   help="simulated seconds allowed to recover after the faults")
    p.add_argument("--quiet-max-steps", type=int, default=SimOptions.quiet_max_steps)
    p.add_argument("--lin-budget", type=int, default=SimOptions.lin_budget,
                   help="linearizability search steps per key")
    p.add_argument("--fault-rate", type=float, default=SimOptions.fault_rate,
                   help="faults strike this many times more often than each seed draws")
    p.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                   help="force an engine Config field for every seed, e.g. max_inflight=1")
    p.add_argument("--trace", nargs="?", const="-", metavar="FILE",
                   help="with --seed: write the trace to FILE (default stdout)")
    p.add_argument("--trace-dir", metavar="DIR",
                   help="campaign: write the trace of every failing seed into DIR")
    p.add_argument("--jobs", type=int, default=1, help="campaign: worker processes (1)")
    p.add_argument("--time-budget-s", type=float,
                   help="campaign: stop after this much wall time (reported as not finished)")
    return p


def options_from_args(args: argparse.Namespace) -> SimOptions:
    """The SimOptions the command line asks for (ValueError if they cannot work)."""
    forced = tuple(_parse_setting(s) for s in args.set)
    return SimOptions(steps=args.steps, min_nodes=args.nodes[0], max_nodes=args.nodes[1],
                      faults=frozenset(FAULT_KINDS) - set(args.no_fault),
                      admin=frozenset(ADMIN_KINDS) - set(args.no_admin),
                      quiet_s=args.quiet_s, quiet_max_steps=args.quiet_max_steps,
                      lin_budget=args.lin_budget, fault_rate=args.fault_rate, config=forced,
                      disabled_checks=frozenset(args.disable_check))


def parse(argv: list[str] | None = None) -> tuple[argparse.Namespace, SimOptions]:
    args = _parser().parse_args(argv)
    return args, options_from_args(args)


def main(argv: list[str] | None = None) -> int:
    try:
        args, opts = parse(argv)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.seed is not None:
        return _replay(args.seed, opts, args.trace)
    summary = run_campaign(range(args.start, args.start + args.seeds), opts, jobs=args.jobs,
                           progress=sys.stderr, time_budget_s=args.time_budget_s,
                           on_failure=lambda r: _on_failure(r, opts, args.trace_dir))
    print(summary.render())
    return 0 if not summary.failures else 1


def _parse_setting(text: str) -> tuple[str, object]:
    """``name=value`` with value an int, a float, true/false."""
    name, sep, raw = text.partition("=")
    if not sep or not name:
        raise ValueError(f"--set wants NAME=VALUE, got {text!r}")
    low = raw.lower()
    if low in ("true", "false"):
        return name, low == "true"
    try:
        return name, int(raw)
    except ValueError:
        pass
    try:
        return name, float(raw)
    except ValueError:
        raise ValueError(f"--set {name}: {raw!r} is not a number or true/false") from None


def _on_failure(r, opts: SimOptions, trace_dir: str | None) -> None:
    kind, detail = r.violation
    print(f"\nseed {r.seed} FAILED: {kind}: {detail}\n  replay: {replay_command(r.seed, opts)}",
          file=sys.stderr)
    if trace_dir:
        os.makedirs(trace_dir, exist_ok=True)
        path = os.path.join(trace_dir, f"seed-{r.seed}.trace")
        with open(path, "w", encoding="utf-8") as f:
            run_seed(r.seed, opts, trace_out=f)
        print(f"  trace: {path}", file=sys.stderr)


def _replay(seed: int, opts: SimOptions, trace: str | None) -> int:
    if trace is None:
        r = run_seed(seed, opts)
    elif trace == "-":
        r = run_seed(seed, opts, trace_out=sys.stdout)
    else:
        with open(trace, "w", encoding="utf-8") as f:
            r = run_seed(seed, opts, trace_out=f)
    out = sys.stderr if trace == "-" else sys.stdout
    print(f"seed {seed}: {r.steps} steps + {r.quiet_steps} quiet, {r.sim_time_s:.3f} s "
          f"simulated, faults {sum(r.faults.values())}, ops {r.ops}", file=out)
    print(f"profile: {r.profile}", file=out)
    if r.violation is None:
        rec = "-" if r.recovered_s is None else f"{r.recovered_s:.3f} s"
        print(f"ok: no violation; recovered {rec} after the faults", file=out)
        return 0
    print(f"VIOLATION {r.violation[0]}: {r.violation[1]}", file=out)
    print(f"replay: {replay_command(seed, opts)}", file=out)
    return 1


if __name__ == "__main__":
    sys.exit(main())
