"""The engine's configuration: openraft's names and defaults where openraft has the setting,
with the unit in the name (``heartbeat_interval_ms`` is openraft's ``heartbeat_interval``)."""

from __future__ import annotations

from dataclasses import dataclass

from fastraft.errors import ConfigError

__all__ = ["Config"]


@dataclass(frozen=True, slots=True)
class Config:
    """Tunables of one engine. Immutable; ``validate()`` raises ConfigError on any value or
    combination that cannot work, naming the fields.

    Timing (Raft §5.2; the broadcast time must be well below the election timeout, §5.6):

    * ``heartbeat_interval_ms``: a leader's heartbeat period (100 ms, etcd's default).
    * ``election_timeout_min_ms`` / ``election_timeout_max_ms``: a follower that hears no
      leader for a timeout drawn uniformly from [min, max) starts an election (1,000 / 2,000
      ms, etcd's 1,000 ms randomized as etcd does). Not openraft's 50 / 150-300 ms: the
      leader's heartbeat leaves only when its event loop gets to it, and a leader with 10,000
      writes in flight on a shared 2-core machine stalls its loop for up to ~0.8 s (the
      writers' own tasks run between the engine's rounds), which deposed it within seconds
      with 150-300 ms; 1-2 s rides that out (tests/runtime/test_runtime_load.py), at the cost
      of a slower failover. Latency-sensitive deployments on quiet machines may lower them.

    Protocol switches (both on by default, as the thesis recommends together):

    * ``pre_vote``: ask "would you vote for me?" before raising the term (thesis §9.6), so a
      node cut off by a partition cannot depose a healthy leader when it returns.
    * ``check_quorum``: a leader that has not heard from a quorum within an election timeout
      steps down, and a follower that heard from a leader within the minimum election timeout
      ignores vote requests (thesis §6.2, §4.2.3).
    * ``lease_read``: serve reads on the leader's lease instead of a heartbeat round
      (thesis §6.4.1); needs ``check_quorum``. ``lease_drift_ratio`` is the share of the
      minimum election timeout kept as margin against clock drift.

    Replication and flow control (thesis §10.2.2 pipelining):

    * ``max_payload_entries``: entries per AppendEntries. openraft's default is 300; this one
      is 2048, since ``max_message_bytes`` bounds a message's size anyway and with small
      entries each message carries a fixed cost on both sides (with 100-byte entries written
      in batches of 1,000, 300 per message cost about a sixth of a 3-node cluster's
      throughput).
    * ``max_message_bytes``: counted bytes per AppendEntries (entries' payload and headers);
      one entry larger than this still goes alone.
    * ``max_inflight``: AppendEntries messages in flight to one follower.
    * ``replication_lag_threshold``: a learner added with ``blocking`` is reported caught up
      once it lags the leader by fewer entries than this (openraft default 5000).
    * ``max_cached_entries`` / ``max_cached_bytes``: the leader's cache of recent entries; a
      follower further behind is served through ``ReadLog`` from storage.

    Snapshots and compaction (Raft §7):

    * ``snapshot_policy_logs_since_last``: build a snapshot once this many entries were applied
      since the last one (openraft ``SnapshotPolicy::LogsSinceLast(5000)``); 0 never.
    * ``max_in_snapshot_log_to_keep``: entries a snapshot covers that stay in the log, so
      followers a little behind catch up without a snapshot (openraft default 1000).
    * ``purge_batch_size``: purge only once this many entries can go (openraft default 1).
    * ``snapshot_max_chunk_bytes``: bytes per InstallSnapshot chunk (openraft's
      ``snapshot_max_chunk_size``, 3 MiB).

    Bounds on pending client work: ``max_pending_reads`` (ReadIndex requests waiting for
    confirmation or apply).
    """

    heartbeat_interval_ms: int = 100
    election_timeout_min_ms: int = 1000
    election_timeout_max_ms: int = 2000
    pre_vote: bool = True
    check_quorum: bool = True
    lease_read: bool = False
    lease_drift_ratio: float = 0.1
    max_payload_entries: int = 2048
    max_message_bytes: int = 4 << 20
    max_inflight: int = 32
    replication_lag_threshold: int = 5000
    max_cached_entries: int = 65536
    max_cached_bytes: int = 64 << 20
    snapshot_policy_logs_since_last: int = 5000
    max_in_snapshot_log_to_keep: int = 1000
    purge_batch_size: int = 1
    snapshot_max_chunk_bytes: int = 3 << 20
    max_pending_reads: int = 65536

    def validate(self) -> "Config":
        """Return self if every value and combination works, else raise ConfigError."""
        problems = []
        ints = ("heartbeat_interval_ms", "election_timeout_min_ms", "election_timeout_max_ms",
                "max_payload_entries", "max_message_bytes", "max_inflight",
                "replication_lag_threshold", "max_cached_entries", "max_cached_bytes",
                "snapshot_policy_logs_since_last", "max_in_snapshot_log_to_keep",
                "purge_batch_size", "snapshot_max_chunk_bytes", "max_pending_reads")
        for name in ints:
            v = getattr(self, name)
            if type(v) is not int:
                problems.append(f"{name} must be an int, got {v!r}")
        for name in ("pre_vote", "check_quorum", "lease_read"):
            if type(getattr(self, name)) is not bool:
                problems.append(f"{name} must be a bool, got {getattr(self, name)!r}")
        if problems:
            raise ConfigError("; ".join(problems))
        for name in ("heartbeat_interval_ms", "election_timeout_min_ms", "max_payload_entries",
                     "max_inflight", "replication_lag_threshold", "purge_batch_size",
                     "snapshot_max_chunk_bytes", "max_pending_reads"):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("max_cached_entries", "max_cached_bytes", "snapshot_policy_logs_since_last",
                     "max_in_snapshot_log_to_keep"):
            if getattr(self, name) < 0:
                problems.append(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.election_timeout_max_ms <= self.election_timeout_min_ms:
            problems.append("election_timeout_max_ms must be greater than election_timeout_min_ms "
                            f"({self.election_timeout_max_ms} <= {self.election_timeout_min_ms})")
        if self.heartbeat_interval_ms >= self.election_timeout_min_ms:
            problems.append("heartbeat_interval_ms must be below election_timeout_min_ms, or "
                            "followers time out between heartbeats "
                            f"({self.heartbeat_interval_ms} >= {self.election_timeout_min_ms})")
        if self.max_message_bytes < 1024:
            problems.append(f"max_message_bytes must be >= 1024, got {self.max_message_bytes}")
        if self.max_inflight > 4096:
            problems.append(f"max_inflight must be <= 4096, got {self.max_inflight}")
        if self.lease_read and not self.check_quorum:
            problems.append("lease_read needs check_quorum: without it a deposed leader may "
                            "still believe its lease")
        if not isinstance(self.lease_drift_ratio, (int, float)) or not (
                0.0 <= self.lease_drift_ratio < 1.0):
            problems.append(f"lease_drift_ratio must be in [0, 1), got {self.lease_drift_ratio!r}")
        if problems:
            raise ConfigError("; ".join(problems))
        return self

    # -- derived values in seconds (inputs carry time as float seconds) --------------------------

    @property
    def heartbeat_interval_s(self) -> float:
        return self.heartbeat_interval_ms / 1000.0

    @property
    def election_timeout_min_s(self) -> float:
        return self.election_timeout_min_ms / 1000.0

    @property
    def election_timeout_max_s(self) -> float:
        return self.election_timeout_max_ms / 1000.0
