"""python -m fastraft.sim: campaigns with a summary, replays with a trace, and failures that
print their seed and the command that replays them."""

import shlex
from unittest import mock

from fastraft.core import Engine
from fastraft.sim import FAULT_KINDS, SimOptions, replay_command
from fastraft.sim.__main__ import main, parse


def _apply_before_commit(self):
    committed = self.committed
    self.committed = max(committed, self.flushed)
    try:
        _maybe_apply(self)
    finally:
        self.committed = committed


_maybe_apply = Engine._maybe_apply


def test_campaign_prints_a_summary(capsys):
    assert main(["--seeds", "3", "--start", "4", "--steps", "300"]) == 0
    out, err = capsys.readouterr()
    assert "seeds 4..6, 300 steps each" in out
    assert "runs:        3 of 3" in out
    assert "steps:       900 in fault phases" in out
    assert "faults:" in out and "slowest seed:" in out
    assert "violations:  0" in out
    assert "3/3 seeds" in err  # the progress bar


def test_replay_writes_the_trace(tmp_path, capsys):
    path = tmp_path / "seed2.txt"
    assert main(["--seed", "2", "--steps", "300", "--trace", str(path)]) == 0
    out = capsys.readouterr().out
    assert "ok: no violation" in out
    lines = path.read_text().splitlines()
    assert lines[0].endswith("seed 2 fastraft.sim " + lines[0].split()[-1])
    assert any(" recv AppendEntries " in line for line in lines)
    assert any("live: probe" in line for line in lines)


def test_a_failure_prints_its_seed_replay_command_and_trace(tmp_path, capsys):
    with mock.patch.object(Engine, "_maybe_apply", _apply_before_commit):
        code = main(["--seeds", "2", "--steps", "300", "--trace-dir", str(tmp_path)])
        out, err = capsys.readouterr()
        assert code == 1
        assert "violations:  2" in out
        assert "seed 0: applied-regressed:" in out
        assert "replay: " in out and "--seed 0 --steps 300 --trace" in out
        assert "seed 0 FAILED: applied-regressed" in err
        trace = (tmp_path / "seed-0.trace").read_text().splitlines()
        assert "VIOLATION applied-regressed" in trace[-1]
        # the printed command replays the same failure
        assert main(["--seed", "0", "--steps", "300"]) == 1
        out = capsys.readouterr().out
        assert "VIOLATION applied-regressed" in out and "replay: " in out


def test_replay_command_round_trips_every_option():
    opts = SimOptions(steps=321, min_nodes=4, max_nodes=5,
                      faults=frozenset(FAULT_KINDS) - {"crash", "pause"},
                      admin=frozenset({"snapshot"}), quiet_s=12.5, lin_budget=999,
                      fault_rate=2.5, config=(("pre_vote", False), ("max_inflight", 3)),
                      disabled_checks=frozenset({"linearizability"}))
    cmd = replay_command(7, opts)
    argv = shlex.split(cmd)
    argv = argv[argv.index("fastraft.sim") + 1:]
    args, parsed = parse(argv)
    assert args.seed == 7 and args.trace == "-"
    assert parsed == opts


def test_bad_arguments_exit_with_2(capsys):
    assert main(["--nodes", "2", "9"]) == 2
    assert main(["--set", "max_inflight=0", "--seed", "1"]) == 2
    assert "error:" in capsys.readouterr().err
