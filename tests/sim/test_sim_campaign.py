"""The bounded campaign CI runs in both builds: every fault kind and admin request enabled, no
violation allowed. A failure names each seed and the command that replays it.

``FASTRAFT_SIM_SEEDS`` / ``FASTRAFT_SIM_STEPS`` resize it (defaults 200 x 1500, about half a
minute on one core); the 10,000 x 2,000 campaign is run by hand with
``python -m fastraft.sim --seeds 10000 --steps 2000``.
"""

import os

from fastraft.sim import ADMIN_KINDS, FAULT_KINDS, SimOptions, run_campaign

SEEDS = int(os.environ.get("FASTRAFT_SIM_SEEDS", "200"))
STEPS = int(os.environ.get("FASTRAFT_SIM_STEPS", "1500"))


def test_bounded_campaign_finds_no_violation():
    opts = SimOptions(steps=STEPS)
    assert opts.faults == frozenset(FAULT_KINDS) and opts.admin == frozenset(ADMIN_KINDS)
    s = run_campaign(range(SEEDS), opts, time_budget_s=600)
    assert s.runs == SEEDS, s.render()
    assert s.failures == [], s.render()
    # the campaign did what it claims: every fault struck, the cluster did real work
    assert set(s.faults) == set(FAULT_KINDS), s.faults
    assert set(s.admin) >= set(ADMIN_KINDS) - {"add-learner"}, s.admin
    assert s.steps == SEEDS * STEPS
    assert s.ops.get("ok", 0) > SEEDS * 10
    assert s.lin_keys >= SEEDS and s.lin_inconclusive == 0
    for what in ("leader-elected", "snapshot-built", "snapshot-installed", "truncate",
                 "joint-config", "read-served", "corrupt-refused"):
        assert s.events.get(what, 0) > 0, (what, s.events)
