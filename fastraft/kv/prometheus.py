"""A KV node's metrics in the Prometheus text format, through ``prometheus_client`` (the kv
extra): served on ``GET /metrics/prometheus`` and on ``GET /metrics`` with
``Accept: text/plain`` (``fastraft.kv.ops``).

Everything is read at scrape time from the node (``Raft.metrics()`` and ``Raft.stats()``):
nothing is updated on the write path for this exporter, so a node nobody scrapes pays nothing.

Metrics (all prefixed ``fastraft_``)::

    node_info{node_id, addr, raft_addr, network}   1
    term, leader_id (0: none known), role{role}     gauges (role: 1 for the role played)
    last_log_index, committed_index, applied_index, snapshot_index, purged_index
    peer_match_index{peer}, peer_replication_lag_entries{peer}   leader only (Raft §5.3)
    proposals_total, commits_total, elections_started_total, elections_won_total
    read_rounds_total, consistent_reads_total   ReadIndex rounds begun, the reads they served
    refused_requests_total{reason}               403s of the HTTPS API (role, sender)
    log_append_seconds    histogram: an append handed to the log store until durable
    log_sync_seconds      histogram: one synced write batch of the log store (lmdb only)
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (CounterMetricFamily, GaugeMetricFamily,
                                    HistogramMetricFamily)
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from ..latency import LatencyHistogram

__all__ = ["PrometheusExporter", "CONTENT_TYPE"]

CONTENT_TYPE = CONTENT_TYPE_LATEST
_ROLES = ("learner", "follower", "candidate", "leader", "shutdown")


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(f"fastraft_{name}", doc, value=value)


def _histogram(name: str, doc: str, h: LatencyHistogram) -> HistogramMetricFamily:
    buckets = [("+Inf" if b == float("inf") else repr(float(b)), n) for b, n in h.cumulative()]
    return HistogramMetricFamily(f"fastraft_{name}", doc, buckets=buckets, sum_value=h.sum)


class _NodeCollector:
    def __init__(self, service) -> None:
        self._service = service

    def collect(self):
        s = self._service
        m = s.raft.metrics()
        st = s.raft.stats()
        info = s.info
        node = GaugeMetricFamily("fastraft_node_info", "this node: its id and addresses",
                                 labels=["node_id", "addr", "raft_addr", "network"])
        node.add_metric([str(info.node_id), info.addr, info.raft_addr, info.network], 1)
        yield node
        yield _gauge("term", "the current term (Raft §5.1)", m.current_term)
        yield _gauge("leader_id", "the leader this node knows of (0: none)",
                     m.current_leader or 0)
        role = GaugeMetricFamily("fastraft_role", "1 for the role this node plays",
                                 labels=["role"])
        for name in _ROLES:
            role.add_metric([name], 1 if m.state.value == name else 0)
        yield role
        yield _gauge("last_log_index", "index of the last entry in the log", m.last_log_index)
        yield _gauge("committed_index", "the commit index this node knows", m.committed)
        yield _gauge("applied_index", "the last entry applied to the state machine",
                     m.applied_index)
        yield _gauge("snapshot_index", "the last entry the snapshot covers (0: none)",
                     m.snapshot.index if m.snapshot is not None else 0)
        yield _gauge("purged_index", "the last entry purged from the log (0: none)",
                     m.purged.index if m.purged is not None else 0)
        match = GaugeMetricFamily("fastraft_peer_match_index",
                                  "leader: the last index known to match on each peer",
                                  labels=["peer"])
        lag = GaugeMetricFamily("fastraft_peer_replication_lag_entries",
                                "leader: entries of its log each peer does not have yet",
                                labels=["peer"])
        for peer, index in sorted(m.replication.items()):
            match.add_metric([str(peer)], index)
            lag.add_metric([str(peer)], max(0, m.last_log_index - index))
        yield match
        yield lag
        for name, doc, value in (
                ("proposals", "entries this node appended as leader", st.proposals),
                ("commits", "entries this node saw committed", st.commits),
                ("elections_started", "elections this node started as candidate",
                 st.elections_started),
                ("elections_won", "elections this node won", st.elections_won),
                ("read_rounds", "ReadIndex rounds begun for consistent reads (thesis §6.4)",
                 s.read_rounds),
                ("consistent_reads", "consistent reads that waited for a ReadIndex round",
                 s.consistent_reads)):
            yield CounterMetricFamily(f"fastraft_{name}", doc, value=value)
        refused = CounterMetricFamily("fastraft_refused_requests",
                                      "requests the HTTPS API refused with 403", labels=["reason"])
        for reason in ("role", "sender"):
            refused.add_metric([reason], s.refused.get(reason, 0))
        yield refused
        yield _histogram("log_append_seconds",
                         "an append handed to the log store until it is durable",
                         st.append_latency)
        if st.sync_latency is not None:
            yield _histogram("log_sync_seconds", "one synced write batch of the log store",
                             st.sync_latency)


class PrometheusExporter:
    """Renders ``service`` (a ``KVService``) as Prometheus text, on demand."""

    def __init__(self, service) -> None:
        self._registry = CollectorRegistry(auto_describe=False)
        self._registry.register(_NodeCollector(service))

    def render(self) -> bytes:
        return generate_latest(self._registry)
