"""Every run is decided by its seed: the same seed gives the same trace, byte for byte, in
this process, in another process with another string-hash seed, with or without a trace."""

import os
import subprocess
import sys

from fastraft.sim import SimOptions, run_seed

STEPS = 600


def test_same_seed_same_trace_bytes():
    opts = SimOptions(steps=STEPS, trace=True)
    a = run_seed(11, opts)
    b = run_seed(11, opts)
    assert a.trace and a.trace.count("\n") > STEPS
    assert a.trace.encode() == b.trace.encode()
    assert a == b


def test_different_seeds_differ():
    opts = SimOptions(steps=STEPS, trace=True)
    assert run_seed(11, opts).trace != run_seed(12, opts).trace


def test_tracing_does_not_change_the_run():
    with_trace = run_seed(5, SimOptions(steps=STEPS, trace=True))
    without = run_seed(5, SimOptions(steps=STEPS))
    assert without.trace is None
    with_trace.trace = None
    assert with_trace == without


def test_trace_to_a_file_matches_the_trace_in_memory(tmp_path):
    path = tmp_path / "t.txt"
    with open(path, "w", encoding="utf-8") as f:
        run_seed(7, SimOptions(steps=STEPS), trace_out=f)
    assert path.read_bytes() == run_seed(7, SimOptions(steps=STEPS, trace=True)).trace.encode()


def test_replay_in_other_processes_gives_identical_bytes(tmp_path):
    """Two interpreters with different str hash seeds (so set and dict orders of strings
    differ) write the same trace for one seed."""
    outs = []
    for hash_seed in ("1", "2"):
        path = tmp_path / f"trace-{hash_seed}.txt"
        env = dict(os.environ, PYTHONHASHSEED=hash_seed)
        proc = subprocess.run([sys.executable, "-m", "fastraft.sim", "--seed", "3", "--steps",
                               str(STEPS), "--trace", str(path)],
                              env=env, capture_output=True, timeout=120)
        assert proc.returncode in (0, 1), proc.stderr  # 1: the run found a violation
        outs.append(path.read_bytes())
    assert len(outs[0]) > 10_000
    assert outs[0] == outs[1]
