"""The JSON of the KV API's answers (``fastraft.kv.api`` says what they mean): the ``Ok`` and
``Err`` envelopes, the error kinds and their HTTP statuses, and the records a node reports
(log ids, members, the membership, metrics) in openraft's names. The server encodes them; the
client decodes what it needs (``error_from_json``, ``write_result_from_json``).
"""

from __future__ import annotations

from typing import Callable

import orjson

from ..core import Busy, LeaderTransferring, MembershipError
from ..errors import ForwardToLeader, OutcomeUnknown, RaftShutdown
from ..types import LogId, Membership, Node, StoredMembership
from .api import (APIError, BadRequest, Fatal, Forbidden, Unavailable, WriteResult, api_addr_of,
                  make_node, short)

__all__ = [
    "ok_body",
    "err_body",
    "error_json",
    "error_status",
    "error_from_json",
    "log_id_json",
    "node_json",
    "membership_json",
    "metrics_json",
    "write_result_from_json",
]


def _dumps(doc: object) -> bytes:
    return orjson.dumps(doc, option=orjson.OPT_NON_STR_KEYS)  # int keys as strings, as json does


def ok_body(value: object) -> bytes:
    return _dumps({"Ok": value})


def err_body(error: dict) -> bytes:
    return _dumps({"Err": error})


def node_json(node: Node | None) -> dict | None:
    if node is None:
        return None
    return {"addr": api_addr_of(node), "raft_addr": node.addr}


def error_json(error: BaseException, *, write: bool = False) -> dict:
    """The ``Err`` value for ``error``. With ``write``, an error that does not prove the entry
    was never appended becomes OutcomeUnknown."""
    if isinstance(error, BadRequest):
        return {"BadRequest": {"reason": error.reason}}
    if isinstance(error, Forbidden):
        return {"Forbidden": {"reason": error.reason}}
    if isinstance(error, ForwardToLeader):
        return {"APIError": {"ForwardToLeader": {"leader_id": error.leader_id,
                                                  "leader_node": node_json(error.leader_node)}}}
    if isinstance(error, (LeaderTransferring, Busy, Unavailable)):
        return {"APIError": {"Unavailable": {"reason": str(error)}}}
    if isinstance(error, MembershipError):
        return {"APIError": {"MembershipError": {"reason": str(error)}}}
    if isinstance(error, OutcomeUnknown) or (write and isinstance(error, (RaftShutdown, Fatal))):
        return {"APIError": {"OutcomeUnknown": {"reason": str(error) or type(error).__name__}}}
    if isinstance(error, RaftShutdown):
        return {"APIError": {"Unavailable": {"reason": str(error)}}}
    if isinstance(error, Fatal):
        return {"Fatal": {"reason": str(error)}}
    return {"Fatal": {"reason": f"{type(error).__name__}: {error}"}}


def error_status(error_doc: dict) -> int:
    """The HTTP status that carries the ``Err`` value ``error_doc``."""
    if "BadRequest" in error_doc:
        return 400
    if "Forbidden" in error_doc:
        return 403
    if "Fatal" in error_doc:
        return 500
    return 200


def error_from_json(status: int, doc: object) -> BaseException:
    """The exception a client raises for an ``Err`` answer (the inverse of ``error_json``)."""
    err = doc.get("Err") if isinstance(doc, dict) else None
    if isinstance(err, dict) and len(err) == 1:
        ((kind, detail),) = err.items()
        if kind == "BadRequest" and isinstance(detail, dict):
            return BadRequest(str(detail.get("reason")))
        if kind == "Forbidden" and isinstance(detail, dict):
            return Forbidden(str(detail.get("reason")))
        if kind == "Fatal" and isinstance(detail, dict):
            return Fatal(str(detail.get("reason")))
        if kind == "APIError" and isinstance(detail, dict) and len(detail) == 1:
            ((name, info),) = detail.items()
            info = info if isinstance(info, dict) else {}
            if name == "ForwardToLeader":
                leader_id = info.get("leader_id")
                node = info.get("leader_node")
                leader_node = None
                if isinstance(node, dict) and isinstance(node.get("addr"), str):
                    leader_node = make_node(node["addr"], str(node.get("raft_addr") or node["addr"]))
                return ForwardToLeader(leader_id if type(leader_id) is int else None, leader_node)
            reason = str(info.get("reason"))
            if name == "OutcomeUnknown":
                return OutcomeUnknown(reason)
            if name == "Unavailable":
                return Unavailable(reason)
            if name == "MembershipError":
                return MembershipError(reason)
    return APIError(f"unexpected answer (HTTP {status}): {short(doc)}", status, doc)


def log_id_json(log_id: LogId | None, leader_id: int | None) -> dict | None:
    """openraft's log id: ``{"leader_id": {"term": t, "node_id": n}, "index": i}``;
    ``node_id`` is null where the leader of that term is not known here."""
    if log_id is None:
        return None
    return {"leader_id": {"term": log_id.term, "node_id": leader_id}, "index": log_id.index}


def write_result_from_json(doc: object) -> WriteResult:
    """The ``Ok`` value of a /write answer as a WriteResult; APIError if it has another shape."""
    try:
        lid = doc["log_id"]
        leader = lid["leader_id"]
        term, node_id, index = leader["term"], leader["node_id"], lid["index"]
        data = doc["data"]
        if not all(type(v) is int for v in (term, node_id, index)) or not isinstance(data, dict):
            raise TypeError("field types")
    except (KeyError, TypeError) as e:
        raise APIError(f"a write answer of unexpected shape ({e}): {short(doc)}") from None
    return WriteResult(LogId(term, index), node_id, data)


def membership_json(stored: StoredMembership,
                    leader_of: Callable[[int], int | None] = lambda term: None) -> dict:
    """openraft's membership config: ``{"log_id", "membership": {"configs", "nodes",
    "learners"}}`` (``configs`` holds two voter lists during a joint change)."""
    m: Membership = stored.membership
    lid = stored.log_id
    return {
        "log_id": log_id_json(lid, leader_of(lid.term) if lid is not None else None),
        "membership": {
            "configs": [sorted(c) for c in m.configs],
            "nodes": {str(i): node_json(n) for i, n in sorted(m.nodes.items())},
            "learners": sorted(m.learner_ids()),
        },
    }


_STATE_NAMES = {"learner": "Learner", "follower": "Follower", "candidate": "Candidate",
                "leader": "Leader", "shutdown": "Shutdown"}


def metrics_json(m) -> dict:
    """A ``fastraft.runtime.RaftMetrics`` in openraft's names (``state`` is "Leader",
    "Follower", "Candidate", "Learner" or "Shutdown"; ``replication``, the index each peer
    matches, is null unless this node leads), and fastraft's own: the peers' messages dropped
    unhandled by reason, and ``log_diverged``, true once this node refused entries that would
    rewrite its committed log (a health check reports the node unhealthy then)."""
    def leader_of(term: int) -> int | None:
        return m.current_leader if term == m.current_term else None

    return {
        "id": m.id,
        "state": _STATE_NAMES[m.state.value],
        "current_term": m.current_term,
        "vote": {"leader_id": {"term": m.vote.term, "node_id": m.vote.node_id or None},
                 "committed": m.vote.committed},
        "last_log_index": m.last_log_index,
        "last_applied": log_id_json(m.last_applied, leader_of(m.last_applied.term)
                                    if m.last_applied is not None else None),
        "committed": m.committed,
        "snapshot": log_id_json(m.snapshot, None),
        "purged": log_id_json(m.purged, None),
        "current_leader": m.current_leader,
        "membership_config": membership_json(m.membership, leader_of),
        "replication": ({str(k): v for k, v in sorted(m.replication.items())}
                        if m.is_leader else None),
        "dropped_messages": dict(m.dropped_messages),
        "committed_conflicts": m.committed_conflicts,
        "log_diverged": m.log_diverged,
    }
