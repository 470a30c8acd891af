"""fastraft.sim: deterministic simulation testing of the real engine (after TigerBeetle's VOPR
and FoundationDB's simulator).

The simulator drives N ``fastraft.core.Engine`` instances (the code that runs in production)
with simulated time, network, disks, crashes and clients, every decision drawn from one seed,
and checks Raft's safety properties after every step, liveness once the faults stop, and the
linearizability of the client history at the end. The same seed gives the same trace, byte for
byte.

* ``run_seed(seed, opts) -> RunResult``: one run;
* ``SimOptions``: what a campaign fixes (steps, cluster sizes, fault kinds, ...);
* ``run_campaign(...)``: many seeds with a summary; ``python -m fastraft.sim`` on the command
  line (``--seeds 1000 --steps 5000`` for a campaign, ``--seed N --trace`` to replay one).
"""

from .campaign import CampaignSummary, replay_command, run_campaign
from .checkers import KINDS, SafetyChecker, Violation
from .linearizability import HistoryOp, KeyResult, check_history, check_key
from .profile import ADMIN_KINDS, FAULT_KINDS, Profile, SimOptions
from .simulation import RunResult, Simulation, run_seed

__all__ = [
    "run_seed",
    "Simulation",
    "RunResult",
    "SimOptions",
    "Profile",
    "FAULT_KINDS",
    "ADMIN_KINDS",
    "KINDS",
    "Violation",
    "SafetyChecker",
    "HistoryOp",
    "KeyResult",
    "check_key",
    "check_history",
    "run_campaign",
    "CampaignSummary",
    "replay_command",
]
