"""The operator's routes of a KV node, beside its API (``fastraft.kv.app`` asks here first):

    GET /metrics/prometheus            Prometheus text (``fastraft.kv.prometheus``)
    GET /metrics  Accept: text/plain   the same; any other Accept keeps the JSON of the API
    GET /health[?max_lag=N]            200 when this node knows a leader and has applied all
                                       but at most N (default 1000) committed entries;
                                       503 otherwise; either way a JSON body with the reason

``/health`` is for a load balancer or an orchestrator's readiness probe: a node without a
leader cannot serve writes or linearizable reads, and one far behind serves stale local reads.
"""

from __future__ import annotations

import json
from urllib.parse import parse_qs

__all__ = ["OpsRoutes", "DEFAULT_MAX_LAG", "health"]

#: Committed entries a node may have left to apply and still be healthy.
DEFAULT_MAX_LAG = 1000

_JSON = b"application/json"
_TEXT_TYPES = (b"text/plain", b"application/openmetrics-text")


def health(metrics, max_lag: int = DEFAULT_MAX_LAG) -> tuple[int, dict]:
    """(HTTP status, JSON body) for a node whose state is ``metrics`` (``RaftMetrics``)."""
    lag = max(0, metrics.committed - metrics.applied_index)
    body = {"id": metrics.id, "state": metrics.state.value, "term": metrics.current_term,
            "leader": metrics.current_leader, "apply_lag": lag}
    if metrics.state.value == "shutdown":
        reason = "the node has shut down"
    elif metrics.log_diverged:
        reason = (f"this node's committed log disagrees with its leader's "
                  f"({metrics.committed_conflicts} AppendEntries refused): it cannot follow; "
                  "remove it and add it back with a new id")
    elif metrics.current_leader is None:
        reason = "no leader known (not initialized, or an election is under way)"
    elif lag > max_lag:
        reason = f"{lag} committed entries not applied yet (more than {max_lag})"
    else:
        return 200, {"status": "ok", **body}
    return 503, {"status": "unavailable", "reason": reason, **body}


class OpsRoutes:
    """Answers the routes above for ``service`` (a ``KVService``); ``answer`` returns None
    for any other request, which the API then serves."""

    def __init__(self, service) -> None:
        self._service = service
        self._exporter = None  # built on the first scrape: prometheus_client loads then

    def answer(self, method: str, path: str, headers, query: bytes
               ) -> tuple[int, bytes, bytes] | None:
        """(status, body, content type), or None when the request is not an operator's.
        ``headers``: [(lower-case name, value)] as bytes; ``query``: the raw query string."""
        if method != "GET":
            return None
        if path == "/metrics/prometheus" or (path == "/metrics" and _wants_text(headers)):
            return 200, self._prometheus(), self._content_type
        if path == "/health":
            try:
                max_lag = _max_lag(query)
            except ValueError as e:
                return 400, _dumps({"Err": {"BadRequest": {"reason": str(e)}}}), _JSON
            status, body = health(self._service.raft.metrics(), max_lag)
            return status, _dumps(body), _JSON
        return None

    def _prometheus(self) -> bytes:
        if self._exporter is None:
            from .prometheus import CONTENT_TYPE, PrometheusExporter

            self._exporter = PrometheusExporter(self._service)
            self._content_type = CONTENT_TYPE.encode()
        return self._exporter.render()


def _wants_text(headers) -> bool:
    for name, value in headers:
        if name == b"accept":
            return any(t in value for t in _TEXT_TYPES) and _JSON not in value
    return False


def _max_lag(query_string: bytes) -> int:
    values = parse_qs(query_string.decode("latin-1")).get("max_lag")
    if not values:
        return DEFAULT_MAX_LAG
    if not values[0].isdigit() or len(values[0]) > 18:
        raise ValueError(f"max_lag must be a non-negative integer, got {values[0][:40]!r}")
    return int(values[0])


def _dumps(doc) -> bytes:
    return json.dumps(doc).encode()
