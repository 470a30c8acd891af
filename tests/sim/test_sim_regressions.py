"""Every bug the simulator found, as a regression test with its seed.

Each seed failed on the engine commit named in its case, with the violation quoted, and passes
once the engine was fixed. A seed replays its scenario only while the simulator draws its
decisions the same way: after a change to the simulator's draws, find the seed again against
the named engine commit (``git worktree add <dir> <commit>`` and a campaign there).
"""

import pytest

from fastraft.sim import SimOptions, run_seed

CASES = [
    # (seed, options, engine commit that failed, what the simulator reported there)
    (230, SimOptions(steps=2000), "c873a40",
     "command-contract: node 4 ApplyEntries [64, 65) but the state machine is at 73: the engine "
     "emitted ApplyEntries for entries below a snapshot it was installing (fixed in 3565bcb)"),
    (247, SimOptions(steps=2000), "c873a40",
     "command-contract: node 2 ApplyEntries [25, 38) but the state machine is at 41 (the same "
     "bug as seed 230, reached through a restart)"),
    (812, SimOptions(steps=2000), "c873a40",
     "durable-before-send: node 3 acknowledges entries up to 93, durable only up to 92: a "
     "snapshot that replaced the log left the engine's flushed index above the new log, so new "
     "entries were acknowledged before their flush (fixed in 1c07408)"),
]


@pytest.mark.parametrize("seed,opts,commit,what", CASES, ids=[f"seed-{c[0]}" for c in CASES])
def test_found_bug_stays_fixed(seed, opts, commit, what):
    r = run_seed(seed, opts)
    assert r.violation is None, f"seed {seed} fails again ({what}): {r.violation}"
    assert r.recovered_s is not None
