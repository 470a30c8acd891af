"""The KV store's HTTP API as data: its errors, what each request body must be, and a node's
record. Shared by the server (``fastraft.kv.app``) and the client (``fastraft.kv.client``);
no HTTP library is imported here. The JSON of every answer is ``fastraft.kv.answers``.

The API follows openraft's raft-kv-memstore example. Every answer is an envelope::

    {"Ok": value}                                       the request was served
    {"Err": {"APIError": {"ForwardToLeader": {...}}}}   not served, see below
    {"Err": {"BadRequest": {"reason": "..."}}}          HTTP 400: the input is wrong
    {"Err": {"Forbidden": {"reason": "..."}}}           HTTP 403: the connection's certificate
                                                        lacks the route's role (HTTPS API,
                                                        ``fastraft.kv.access``); nothing done

API errors, and what a client may do about each:

* ``ForwardToLeader {"leader_id": n|null, "leader_node": {"addr", "raft_addr"}|null}``: this
  node does not lead; nothing was appended to its log. Resend to the leader.
* ``OutcomeUnknown {"reason"}``: a write was appended but its fate is unknown (leadership lost
  before it committed, a timeout): the entry may still commit. Resending may apply it twice.
* ``Unavailable {"reason"}``: nothing was done (leadership being transferred, too many reads
  pending, the node shutting down, a read that timed out). Retry later.
* ``MembershipError {"reason"}``: a membership request refused before anything was appended
  (another change in progress, already initialized).
* ``Fatal {"reason"}`` (HTTP 500): the node failed (its storage); it serves no more.

Node records travel as ``{"addr": HTTP address, "raft_addr": Raft address}``; inside the
membership a KV node is ``Node(raft_addr, api=addr)`` (``make_node``), so the Raft network
dials ``Node.addr`` and clients follow ``api``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import orjson

from ..errors import CodecError, FastraftError
from ..types import LogId, Node
from .commands import MAX_KEY_BYTES, Command, decode_command

__all__ = [
    "MAX_BODY_BYTES",
    "BadRequest",
    "Forbidden",
    "Unavailable",
    "Fatal",
    "APIError",
    "WriteResult",
    "make_node",
    "api_addr_of",
    "check_addr",
    "parse_json",
    "parse_write",
    "parse_key",
    "parse_init",
    "parse_add_learner",
    "parse_change_membership",
    "parse_remove_learner",
]

#: The largest request body the API accepts (Raft RPCs over HTTP have their own bound).
MAX_BODY_BYTES = 1 << 20
#: The most members an /init or /change-membership request may name.
MAX_MEMBERS = 1024
_MAX_ADDR_CHARS = 255


class BadRequest(FastraftError, ValueError):
    """The request is not what the API takes (HTTP 400); ``reason`` says what was wrong.
    Nothing was done."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class Forbidden(FastraftError):
    """The node refused the request (HTTP 403): the client's certificate does not carry the
    role the route needs; ``reason`` says which. Nothing was done; retrying cannot help."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class Unavailable(FastraftError):
    """The node did nothing and may succeed later (see the module docstring)."""


class Fatal(FastraftError):
    """The node failed and serves no more (HTTP 500)."""


class APIError(FastraftError):
    """An answer a client did not expect (an error kind it does not know, or a body that is
    not the API's JSON); ``status`` is the HTTP status, ``body`` what came back."""

    def __init__(self, message: str, status: int = 0, body: object = None) -> None:
        self.status = status
        self.body = body
        super().__init__(message)


@dataclass(frozen=True, slots=True)
class WriteResult:
    """The answer to a write: where it sits in the log, who appended it, and what the state
    machine answered (``data``: ``{"value": value after the write}``, plus ``"swapped"`` for
    a compare-and-swap)."""

    log_id: LogId
    leader_id: int
    data: dict

    @property
    def value(self) -> str | None:
        return self.data.get("value")

    @property
    def swapped(self) -> bool | None:
        return self.data.get("swapped")


# -- node records ---------------------------------------------------------------------------


def make_node(addr: str, raft_addr: str) -> Node:
    """The membership record of a KV node: the Raft network dials ``raft_addr``; clients
    are sent to ``addr`` (the HTTP API)."""
    return Node.make(raft_addr, api=addr)


def api_addr_of(node: Node) -> str:
    """The HTTP address of a member (its Raft address for a record made without one)."""
    return node.get("api") or node.addr


def check_addr(addr: object, what: str = "address") -> str:
    """``addr`` if it is a ``"host:port"`` string, else BadRequest."""
    if not isinstance(addr, str) or not addr or len(addr) > _MAX_ADDR_CHARS:
        raise BadRequest(f"{what} must be a 'host:port' string, got {short(addr)}")
    host, sep, port = addr.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) < 65536:
        raise BadRequest(f"{what} must be a 'host:port' string, got {short(addr)}")
    return addr


def short(value: object) -> str:
    text = json.dumps(value) if isinstance(value, (str, int, float, list, dict, type(None))) else repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


# -- request bodies -------------------------------------------------------------------------


def parse_json(body: bytes) -> object:
    """The JSON document of a request body; BadRequest if it is not UTF-8 JSON."""
    try:
        return orjson.loads(body)  # the codec of fastraft.kv.commands, for the same reasons
    except orjson.JSONDecodeError as e:
        raise BadRequest(f"the body is not UTF-8 JSON: {e}") from None


def parse_write(body: bytes) -> Command:
    """A /write body: ``{"Set": {...}}``, ``{"Delete": {...}}`` or ``{"CompareAndSwap": {...}}``
    (``fastraft.kv.commands``); BadRequest naming the problem otherwise."""
    try:
        return decode_command(body)
    except CodecError as e:
        raise BadRequest(str(e)) from None


def parse_key(doc: object) -> str:
    """A /read or /consistent_read body: the key, a JSON string."""
    if not isinstance(doc, str) or not doc:
        raise BadRequest(f"the body must be the key, a non-empty JSON string; got {short(doc)}")
    try:
        size = len(doc.encode("utf-8"))
    except UnicodeEncodeError:
        raise BadRequest("the key is not valid Unicode text") from None
    if size > MAX_KEY_BYTES:
        raise BadRequest(f"the key is {size} bytes long; at most {MAX_KEY_BYTES} are allowed")
    return doc


def _node_id(value: object, what: str) -> int:
    if type(value) is not int or not 0 < value < 1 << 63:
        raise BadRequest(f"{what} must be a positive integer node id, got {short(value)}")
    return value


def _member(doc: object, what: str) -> tuple[int, str, str | None]:
    if not isinstance(doc, list) or len(doc) not in (2, 3):
        raise BadRequest(f"{what} must be [id, \"addr\"] or [id, \"addr\", \"raft_addr\"], "
                         f"got {short(doc)}")
    node_id = _node_id(doc[0], f"{what}: the id")
    addr = check_addr(doc[1], f"{what}: the address")
    raft_addr = check_addr(doc[2], f"{what}: the raft address") if len(doc) == 3 else None
    return node_id, addr, raft_addr


def parse_init(doc: object) -> list[tuple[int, str, str | None]]:
    """An /init body: ``[]`` (this node alone) or ``[[id, "addr"], ...]`` (each may add its
    raft address as a third item). Returns (id, addr, raft_addr or None) per member."""
    if not isinstance(doc, list):
        raise BadRequest(f"/init takes a list of [id, \"addr\"] pairs, got {short(doc)}")
    if len(doc) > MAX_MEMBERS:
        raise BadRequest(f"/init names {len(doc)} members; at most {MAX_MEMBERS} are allowed")
    members = [_member(item, f"member {i}") for i, item in enumerate(doc)]
    ids = [m[0] for m in members]
    if len(set(ids)) != len(ids):
        raise BadRequest(f"/init names a node id twice: {ids}")
    return members


def parse_add_learner(doc: object) -> tuple[int, str, str | None]:
    """An /add-learner body: ``[id, "addr"]`` or ``[id, "addr", "raft_addr"]``."""
    return _member(doc, "/add-learner")


def parse_change_membership(doc: object) -> frozenset[int]:
    """A /change-membership body: the new voter ids, ``[1, 2, 3]`` (not empty)."""
    if not isinstance(doc, list) or not doc:
        raise BadRequest(f"/change-membership takes a non-empty list of node ids, got {short(doc)}")
    if len(doc) > MAX_MEMBERS:
        raise BadRequest(f"/change-membership names {len(doc)} ids; at most {MAX_MEMBERS}")
    return frozenset(_node_id(v, "each voter") for v in doc)


def parse_remove_learner(doc: object) -> frozenset[int]:
    """A /remove-learner body: the learner ids to drop, ``[4, 5]`` (not empty)."""
    if not isinstance(doc, list) or not doc:
        raise BadRequest(f"/remove-learner takes a non-empty list of node ids, got {short(doc)}")
    if len(doc) > MAX_MEMBERS:
        raise BadRequest(f"/remove-learner names {len(doc)} ids; at most {MAX_MEMBERS}")
    return frozenset(_node_id(v, "each learner") for v in doc)
