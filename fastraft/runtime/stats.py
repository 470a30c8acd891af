"""Counters and latency histograms of one node, for exporters (``Raft.stats()``); the state
itself (term, role, indexes) is in ``RaftMetrics``."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from ..latency import LatencyHistogram

__all__ = ["NodeStats", "take_stats"]


@dataclass(frozen=True, slots=True)
class NodeStats:
    """Totals since the node opened: ``proposals`` (entries it appended as leader),
    ``commits`` (entries it saw committed), ``elections_started`` and ``elections_won``;
    ``append_latency`` (an append handed to the log store until durable) and
    ``sync_latency`` (one synced write batch of the store; None if the store does not
    measure it). Histograms are copies, taken with the counters."""

    proposals: int
    commits: int
    elections_started: int
    elections_won: int
    append_latency: LatencyHistogram
    sync_latency: LatencyHistogram | None


def take_stats(rt: Any) -> NodeStats:
    """A ``NodeStats`` of the runtime ``rt``, taken now."""
    op = rt.oplog
    sync = getattr(rt.log_store, "sync_latency", None)
    return NodeStats(op.proposals, op.commits, op.elections_started, op.elections_won,
                     copy.deepcopy(rt.log_writer.append_latency),
                     copy.deepcopy(sync) if isinstance(sync, LatencyHistogram) else None)
