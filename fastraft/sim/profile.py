"""What a run is made of: the options a campaign fixes (``SimOptions``) and the parameters one
seed draws (``Profile``): cluster shape, engine configuration, latencies, clocks, rates.

Every random choice here comes from the run's one ``random.Random(seed)``, in a fixed order,
so a seed decides the profile as it decides everything else.
"""

from __future__ import annotations

import dataclasses
import math
import random
from dataclasses import dataclass, field

from fastraft.core import Config

__all__ = ["FAULT_KINDS", "ADMIN_KINDS", "SimOptions", "Profile", "draw_profile"]

#: Every fault the simulator injects (see faults.py for what each does).
FAULT_KINDS = ("crash", "partition", "isolate", "one-way", "drop", "duplicate", "delay",
               "corrupt", "pause", "slow-disk")
#: Admin requests issued during the run (see workload.py).
ADMIN_KINDS = ("add-learner", "change-membership", "transfer-leader", "snapshot", "purge",
               "elect")

# Clock rates stay within this ratio of real time. Lease reads assume drift below the engine's
# lease_drift_ratio margin (0.1 of the minimum election timeout by default): with rates in
# [1 - d, 1 + d] the margin holds while 0.9 * (1 + d) <= 1 - d, i.e. d <= 0.052.
MAX_CLOCK_DRIFT = 0.02


@dataclass(frozen=True)
class SimOptions:
    """Options of a run that a campaign fixes for every seed.

    * ``steps``: events processed in the fault phase (then a quiet phase checks liveness);
    * ``min_nodes`` / ``max_nodes``: cluster size range (3..7);
    * ``faults``: the fault kinds enabled; ``admin``: the admin requests enabled;
    * ``quiet_s``: simulated seconds the healed cluster gets to elect a leader and commit a
      write; ``quiet_max_steps``: a bound on the events of that phase;
    * ``lin_budget``: search steps per key for the linearizability checker (beyond: the key
      is reported inconclusive, never a pass);
    * ``fault_rate``: how many times more often faults strike than the seed's profile says;
    * ``config``: engine Config fields forced for every seed, as (name, value) pairs;
    * ``disabled_checks``: checker kinds to skip (tests that show one checker on its own);
    * ``trace``: record every event as a text line.
    """

    steps: int = 2000
    min_nodes: int = 3
    max_nodes: int = 7
    faults: frozenset = frozenset(FAULT_KINDS)
    admin: frozenset = frozenset(ADMIN_KINDS)
    quiet_s: float = 30.0
    quiet_max_steps: int = 200_000
    lin_budget: int = 200_000
    fault_rate: float = 1.0
    config: tuple = ()
    disabled_checks: frozenset = frozenset()
    trace: bool = False

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise ValueError("steps must be >= 1")
        if not 3 <= self.min_nodes <= self.max_nodes <= 7:
            raise ValueError("nodes must satisfy 3 <= min_nodes <= max_nodes <= 7")
        unknown = set(self.faults) - set(FAULT_KINDS)
        if unknown:
            raise ValueError(f"unknown fault kinds: {sorted(unknown)}")
        unknown = set(self.admin) - set(ADMIN_KINDS)
        if unknown:
            raise ValueError(f"unknown admin kinds: {sorted(unknown)}")
        if not self.fault_rate > 0:
            raise ValueError("fault_rate must be > 0")
        fields = {f.name for f in dataclasses.fields(Config)}
        for name, _ in self.config:
            if name not in fields:
                raise ValueError(f"unknown engine config field {name!r}")
        if self.config:
            dataclasses.replace(Config(), **dict(self.config)).validate()  # ConfigError early


@dataclass(frozen=True)
class Profile:
    """The parameters one seed draws. Times in seconds."""

    n_nodes: int
    n_voters: int
    init: str  # "all": initialize() on every node; "one": on one node; "storage": pre-written
    config: Config
    durable_sm: bool
    clock_rate: tuple[float, ...]  # per node id - 1
    clock_offset_s: tuple[float, ...]
    tick_jitter_s: float
    net_latency_s: tuple[float, float]
    net_slow_p: float
    net_slow_max_s: float
    disk_sync_s: tuple[float, float]
    sm_op_s: tuple[float, float]
    keep_pending_p: float  # chance a crash keeps a prefix of un-synced writes
    fault_interval_s: float
    admin_interval_s: float
    clients: int
    keys: int
    read_ratio: float
    think_s: tuple[float, float]
    client_timeout_s: float
    extra: dict = field(default_factory=dict)


def _engine_config(rng: random.Random, forced: tuple) -> Config:
    hb = rng.choice((10, 20, 30, 50))
    emin = hb * rng.choice((3, 4, 5, 6))
    emax = emin + rng.choice((50, 100, 150))
    check_quorum = rng.random() < 0.8
    c = Config(
        heartbeat_interval_ms=hb,
        election_timeout_min_ms=emin,
        election_timeout_max_ms=emax,
        pre_vote=rng.random() < 0.8,
        check_quorum=check_quorum,
        lease_read=check_quorum and rng.random() < 0.5,
        max_payload_entries=rng.choice((1, 3, 16, 64, 300)),
        max_message_bytes=rng.choice((1024, 4096, 1 << 20)),
        max_inflight=rng.choice((1, 2, 4, 32)),
        replication_lag_threshold=rng.choice((1, 10, 1000)),
        max_cached_entries=rng.choice((0, 8, 64, 65536)),
        max_cached_bytes=rng.choice((2048, 64 << 20)),
        snapshot_policy_logs_since_last=rng.choice((0, 10, 40, 200)),
        max_in_snapshot_log_to_keep=rng.choice((0, 5, 50)),
        purge_batch_size=rng.choice((1, 8)),
        snapshot_max_chunk_bytes=rng.choice((64, 300, 4096)),
        max_pending_reads=rng.choice((4, 64)),
    )
    if forced:
        c = dataclasses.replace(c, **dict(forced))
    return c.validate()


def _within_timing_rule(p: Profile, forced: tuple) -> Profile:
    """Raft stays live only while broadcastTime << electionTimeout (Raft §5.6, thesis §3.8),
    where a vote's broadcast time includes saving it: the candidate saves its own vote, the
    request crosses the network, the voter saves its vote, the answer crosses back. A profile
    whose slowest such round (network and disk at the top of their drawn ranges; the rare slow
    messages of ``net_slow_p`` aside) reaches the minimum election timeout describes a cluster
    Raft does not promise to keep electing leaders (seed 92360 drew 3-30 ms per hop, syncs up
    to 20 ms and 30-80 ms election timeouts: candidates gave up a term before its granted
    votes arrived, for 30 simulated seconds). Such a profile gets its election timeouts raised
    above that round plus one heartbeat interval, as an operator would configure them, the
    range's width kept. Nothing is redrawn, so every other profile is what it was; election
    timeouts forced with ``SimOptions.config`` are left alone."""
    c = p.config
    round_s = 2 * (p.net_latency_s[1] + p.disk_sync_s[1])
    if round_s < c.election_timeout_min_s or any(
            name.startswith("election_timeout") for name, _ in forced):
        return p
    emin_ms = math.ceil(round_s * 1000) + c.heartbeat_interval_ms
    emax_ms = emin_ms + c.election_timeout_max_ms - c.election_timeout_min_ms
    config = dataclasses.replace(c, election_timeout_min_ms=emin_ms,
                                 election_timeout_max_ms=emax_ms).validate()
    return dataclasses.replace(p, config=config)


def draw_profile(rng: random.Random, opts: SimOptions) -> Profile:
    n = rng.randint(opts.min_nodes, opts.max_nodes)
    n_voters = rng.randint(3, n) if rng.random() < 0.7 else n
    init = "storage" if n_voters < n else rng.choice(("all", "one", "storage"))
    config = _engine_config(rng, opts.config)
    lat_lo = rng.choice((0.0002, 0.001, 0.003))
    emin_s = config.election_timeout_min_s
    return _within_timing_rule(Profile(
        n_nodes=n,
        n_voters=n_voters,
        init=init,
        config=config,
        durable_sm=rng.random() < 0.5,
        clock_rate=tuple(1.0 + rng.uniform(-MAX_CLOCK_DRIFT, MAX_CLOCK_DRIFT) for _ in range(n)),
        clock_offset_s=tuple(rng.uniform(0.0, 1000.0) for _ in range(n)),
        tick_jitter_s=rng.choice((0.0001, 0.002)),
        net_latency_s=(lat_lo, lat_lo * rng.choice((2, 5, 10))),
        net_slow_p=rng.choice((0.0, 0.01, 0.05)),
        net_slow_max_s=emin_s * rng.choice((0.5, 2.0)),
        disk_sync_s=(0.0002, rng.choice((0.001, 0.005, 0.02))),
        sm_op_s=(0.0, rng.choice((0.0005, 0.003))),
        keep_pending_p=rng.choice((0.0, 0.5)),
        fault_interval_s=emin_s * rng.choice((0.5, 1.0, 3.0)) / opts.fault_rate,
        admin_interval_s=emin_s * rng.choice((1.0, 4.0)),
        clients=rng.randint(2, 4),
        keys=rng.randint(1, 4),
        read_ratio=rng.choice((0.3, 0.5, 0.7)),
        think_s=(0.0, rng.choice((0.002, 0.01))),
        client_timeout_s=emin_s * rng.choice((3.0, 10.0)),
    ), opts.config)
