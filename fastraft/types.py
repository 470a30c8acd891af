"""Value types shared by every layer: frozen, slotted, comparable, hashable.

``Entry`` is not here: it is the codec's object (compiled or pure twin, see fastraft.accel)
and is re-exported as ``fastraft.Entry``.

Node ids are positive ints; 0 means "no node". Log indexes start at 1; index 0 with term 0
is the empty log's "last log id" (Raft §5.3: the entry before the first one).
"""

from __future__ import annotations

import enum
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator, Mapping, NoReturn

from .errors import CodecError

__all__ = [
    "EntryKind",
    "LogId",
    "Vote",
    "Node",
    "Membership",
    "StoredMembership",
    "SnapshotMeta",
    "ClientWriteResponse",
    "ClientWriteResponses",
]


class EntryKind(enum.IntEnum):
    """What a log entry carries. The values are part of the on-disk and wire format."""

    BLANK = 0  #: a new leader's no-op entry (Raft §5.4.2, §8)
    NORMAL = 1  #: an application payload
    MEMBERSHIP = 2  #: a ``Membership`` encoded by ``Membership.to_bytes`` (Raft §6)


@dataclass(frozen=True, slots=True, order=True)
class LogId:
    """The identity of a log entry: (term, index). Ordered by term, then index (Raft §5.4.1)."""

    term: int
    index: int


@dataclass(frozen=True, slots=True)
class Vote:
    """The durable vote of a node (Raft §5.2, Figure 2: currentTerm and votedFor).

    ``node_id`` is the candidate voted for in ``term`` (0: none yet). ``committed`` is True once
    that candidate is known to have won (it leads ``term``), as openraft's committed vote.
    Invariant: a node's saved vote never goes back: (term, committed) only grows, and within
    one term ``node_id`` changes only from 0.
    """

    term: int = 0
    node_id: int = 0
    committed: bool = False


@dataclass(frozen=True, slots=True)
class Node:
    """Where a node is reached. ``addr`` is what the Raft network dials (``host:port``);
    ``data`` holds further strings an application needs (for example its HTTP address)."""

    addr: str = ""
    data: tuple[tuple[str, str], ...] = ()

    @classmethod
    def make(cls, addr: str, **data: str) -> "Node":
        return cls(addr, tuple(sorted(data.items())))

    def get(self, key: str, default: str | None = None) -> str | None:
        for k, v in self.data:
            if k == key:
                return v
        return default


@dataclass(frozen=True, slots=True)
class Membership:
    """A cluster configuration (Raft §6).

    ``configs`` holds one voter set (uniform) or two (joint consensus, C_old,new: a decision
    needs a majority of each). ``nodes`` maps every member, voter or learner, to its address;
    a node in ``nodes`` but in no config is a learner (it replicates, never counts).

    Invariant: every voter has a node record; ids are positive; no config is empty.
    """

    configs: tuple[frozenset[int], ...] = ()
    nodes: Mapping[int, Node] = field(default_factory=dict)

    def __post_init__(self) -> None:
        configs = tuple(frozenset(int(i) for i in c) for c in self.configs)
        nodes = {int(k): v for k, v in dict(self.nodes).items()}
        object.__setattr__(self, "configs", configs)
        object.__setattr__(self, "nodes", _FrozenDict(nodes))
        if len(configs) > 2:
            raise ValueError("a membership holds one config, or two during a joint change")
        for c in configs:
            if not c:
                raise ValueError("a voter config must not be empty")
            for i in c:
                if i <= 0:
                    raise ValueError(f"node id must be positive, got {i}")
                if i not in nodes:
                    raise ValueError(f"voter {i} has no node record")
        for i, n in nodes.items():
            if i <= 0:
                raise ValueError(f"node id must be positive, got {i}")
            if not isinstance(n, Node):
                raise ValueError(f"node {i}: expected Node, got {type(n).__name__}")

    @classmethod
    def uniform(cls, nodes: Mapping[int, Node], voters: Iterable[int] | None = None) -> "Membership":
        """All of ``nodes`` vote, or only ``voters`` (the rest learn)."""
        v = frozenset(nodes) if voters is None else frozenset(voters)
        return cls((v,), nodes)

    @property
    def is_joint(self) -> bool:
        return len(self.configs) == 2

    def voter_ids(self) -> frozenset[int]:
        """Every id that votes in some config."""
        out: frozenset[int] = frozenset()
        for c in self.configs:
            out |= c
        return out

    def learner_ids(self) -> frozenset[int]:
        return frozenset(self.nodes) - self.voter_ids()

    def is_voter(self, node_id: int) -> bool:
        return any(node_id in c for c in self.configs)

    def to_bytes(self) -> bytes:
        """The payload of a MEMBERSHIP entry: canonical JSON (sorted), UTF-8."""
        doc = {
            "configs": [sorted(c) for c in self.configs],
            "nodes": {str(k): [n.addr, dict(n.data)] for k, n in sorted(self.nodes.items())},
        }
        return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> "Membership":
        """Inverse of ``to_bytes``; raises CodecError on anything else."""
        try:
            doc = json.loads(bytes(data).decode())
            configs = tuple(frozenset(_strict_int(i) for i in c) for c in doc["configs"])
            nodes = {}
            for k, v in doc["nodes"].items():
                addr, extra = v
                if not isinstance(addr, str) or not isinstance(extra, dict):
                    raise ValueError("node record must be [addr, {data}]")
                if not all(isinstance(a, str) and isinstance(b, str) for a, b in extra.items()):
                    raise ValueError("node data must map strings to strings")
                nodes[_strict_int(int(k))] = Node(addr, tuple(sorted(extra.items())))
            return cls(configs, nodes)
        except CodecError:
            raise
        except (ValueError, TypeError, KeyError, AttributeError, UnicodeDecodeError) as e:
            raise CodecError(f"bad membership payload: {e}") from None


def _strict_int(v: object) -> int:
    if type(v) is not int:
        raise ValueError(f"node id must be an integer, got {v!r}")
    return v


class _FrozenDict(dict):  # type: ignore[type-arg]
    """A dict that refuses changes, so a Membership stays immutable and hashable."""

    __slots__ = ()

    def _refuse(self, *a: object, **k: object) -> NoReturn:
        raise TypeError("membership nodes are immutable")

    __setitem__ = __delitem__ = clear = pop = popitem = setdefault = update = _refuse

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(frozenset(self.items()))


@dataclass(frozen=True, slots=True)
class StoredMembership:
    """A membership and the log id of the entry that carried it (None: the initial empty one)."""

    log_id: LogId | None = None
    membership: Membership = field(default_factory=Membership)


@dataclass(frozen=True, slots=True)
class SnapshotMeta:
    """What a snapshot covers (Raft §7): every entry up to ``last_log_id`` is in it, and
    ``last_membership`` is the latest membership among those entries."""

    last_log_id: LogId | None
    last_membership: StoredMembership
    snapshot_id: str


class ClientWriteResponse:
    """What a client write returns once its entry is applied (openraft's
    ``ClientWriteResponse``): the entry's ``log_id``, the state machine's response ``data``,
    and ``membership``, the configuration the entry installed if it was a membership entry
    (never for ``client_write``, whose entries are NORMAL: None).

    It keeps the term and index and builds the ``LogId`` when asked: a write at full speed
    should not pay for an object its caller may never read."""

    __slots__ = ("_term", "_index", "data", "membership")

    def __init__(self, log_id: LogId, data: Any, membership: Membership | None = None) -> None:
        self._term = log_id.term
        self._index = log_id.index
        self.data = data
        self.membership = membership

    @classmethod
    def _at(cls, term: int, index: int, data: Any) -> "ClientWriteResponse":
        r = _new_response(cls)
        r._term, r._index, r.data, r.membership = term, index, data, None
        return r

    @property
    def log_id(self) -> LogId:
        return LogId(self._term, self._index)

    def __eq__(self, other: object) -> bool:
        return (type(other) is ClientWriteResponse and self._term == other._term
                and self._index == other._index and self.data == other.data
                and self.membership == other.membership)

    __hash__ = None  # type: ignore[assignment]  # data may be anything

    def __repr__(self) -> str:
        return (f"ClientWriteResponse(log_id={self.log_id!r}, data={self.data!r}, "
                f"membership={self.membership!r})")


_new_response = object.__new__


class ClientWriteResponses(Sequence[ClientWriteResponse]):
    """What ``client_write_many`` returns: the ``ClientWriteResponse`` of each payload, in
    order, as a read-only sequence over the consecutive entries [first_index, first_index +
    len) of ``term``. Each response is built when read, so a batch of thousands costs one
    object until its caller looks."""

    __slots__ = ("_term", "_first", "_data")

    def __init__(self, term: int, first_index: int, data: list[Any]) -> None:
        self._term = term
        self._first = first_index
        self._data = data

    def __len__(self) -> int:
        return len(self._data)

    def __getitem__(self, i: Any) -> Any:
        if isinstance(i, slice):
            return [self[k] for k in range(*i.indices(len(self._data)))]
        n = len(self._data)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError("response index out of range")
        return ClientWriteResponse._at(self._term, self._first + i, self._data[i])

    def __iter__(self) -> Iterator[ClientWriteResponse]:
        at, term, first = ClientWriteResponse._at, self._term, self._first
        for i, d in enumerate(self._data):
            yield at(term, first + i, d)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, ClientWriteResponses):
            return (self._term, self._first, self._data) == (other._term, other._first,
                                                             other._data)
        return isinstance(other, (list, tuple)) and list(self) == list(other)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"ClientWriteResponses({list(self)!r})"
