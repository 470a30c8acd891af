"""Raft messages: what engines exchange, one frozen class per kind (Raft Figure 2, §6, §7,
thesis §3.10, §6.4, §9.6).

Every message names its ``sender`` (the node id it comes from, as etcd's ``Message.From``)
and the sender's ``term``; the engine reads both before anything else. Responses travel back
as messages too. Messages are built with keywords only (``VoteResponse(term=3, sender=2,
granted=True)``), so a reader sees what each value is.

Each class declares ``TAG`` (its u8 on the wire, never reused). Its wire layout is its
dataclass fields in declaration order, each field's kind given by its annotation (see
``wire_fields``): ``int`` is a u64, ``bool`` one byte, ``bytes`` and ``str`` a u32 length then
the bytes, ``list`` a batch of ``fastraft.Entry``. The codec derives its tables from these
fields, so a new field or message is encoded without a codec change; bump
``fastraft.codec.WIRE_VERSION`` when the wire changes.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

__all__ = [
    "Message",
    "VoteRequest",
    "VoteResponse",
    "AppendEntriesRequest",
    "AppendEntriesResponse",
    "InstallSnapshotRequest",
    "InstallSnapshotResponse",
    "TimeoutNowRequest",
    "TimeoutNowResponse",
    "MESSAGE_TYPES",
    "wire_fields",
]


class Message:
    """Base of all messages. ``TAG`` is set by each subclass; every subclass is a frozen,
    slotted, keyword-only dataclass with ``term`` and ``sender`` fields."""

    __slots__ = ()
    TAG: int = 0
    term: int
    sender: int


@dataclass(frozen=True, slots=True, kw_only=True)
class VoteRequest(Message):
    """RequestVote (Raft §5.2), or a pre-vote (thesis §9.6) when ``pre_vote``: a pre-vote asks
    "would you vote for me in ``term``?" without anyone changing their term or vote.
    ``leader_transfer`` marks a campaign started by TimeoutNow (thesis §3.10): voters grant it
    even while they still hear from a leader."""

    TAG = 1
    term: int
    sender: int
    last_log_term: int
    last_log_index: int
    pre_vote: bool = False
    leader_transfer: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class VoteResponse(Message):
    """Reply to a VoteRequest. ``term`` is the voter's current term (for a granted pre-vote,
    the term the candidate asked about)."""

    TAG = 2
    term: int
    sender: int
    granted: bool
    pre_vote: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class AppendEntriesRequest(Message):
    """AppendEntries (Raft §5.3): ``entries`` follow (prev_log_term, prev_log_index); an empty
    list is a heartbeat. ``seq`` numbers the leader's rounds so that acknowledgements can
    confirm leadership for ReadIndex (thesis §6.4) and check-quorum."""

    TAG = 3
    term: int
    sender: int
    prev_log_term: int
    prev_log_index: int
    leader_commit: int
    seq: int = 0
    entries: list = field(default_factory=list)


@dataclass(frozen=True, slots=True, kw_only=True)
class AppendEntriesResponse(Message):
    """Reply to AppendEntries. On success ``match_index`` is the last index known to match the
    leader's log. On rejection ``match_index`` is the rejected prev_log_index and
    (``hint_term``, ``hint_index``) let the leader skip back a whole term at a time
    (Raft §5.3, the optimisation at the end of the section)."""

    TAG = 4
    term: int
    sender: int
    success: bool
    match_index: int
    hint_term: int = 0
    hint_index: int = 0
    seq: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class InstallSnapshotRequest(Message):
    """One chunk of InstallSnapshot (Raft §7): ``data`` is the snapshot's bytes at ``offset``;
    ``done`` marks the last chunk. The snapshot covers the log up to
    (last_log_term, last_log_index) and its last membership is ``membership`` (the bytes of
    ``Membership.to_bytes``) carried by the entry at (membership_term, membership_index)."""

    TAG = 5
    term: int
    sender: int
    snapshot_id: str
    last_log_term: int
    last_log_index: int
    membership_term: int
    membership_index: int
    membership: bytes
    offset: int
    data: bytes
    done: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class InstallSnapshotResponse(Message):
    """Reply to a snapshot chunk: the follower expects ``next_offset`` next (resumable
    transfer); ``done`` once the whole snapshot is installed."""

    TAG = 6
    term: int
    sender: int
    snapshot_id: str
    next_offset: int
    done: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class TimeoutNowRequest(Message):
    """Leadership transfer (thesis §3.10): the target starts an election at once."""

    TAG = 7
    term: int
    sender: int


@dataclass(frozen=True, slots=True, kw_only=True)
class TimeoutNowResponse(Message):
    """Acknowledges TimeoutNow, for networks that pair every request with a response."""

    TAG = 8
    term: int
    sender: int


#: Every message class by its wire tag.
MESSAGE_TYPES: dict[int, type[Message]] = {
    cls.TAG: cls
    for cls in (VoteRequest, VoteResponse, AppendEntriesRequest, AppendEntriesResponse,
                InstallSnapshotRequest, InstallSnapshotResponse, TimeoutNowRequest,
                TimeoutNowResponse)
}


# The wire kind of each annotation (annotations are strings here: ``from __future__``).
_WIRE_KINDS = {"int": "u64", "bool": "bool", "bytes": "bytes", "str": "str", "list": "entries"}


def wire_fields(cls: type) -> tuple[tuple[str, str], ...]:
    """(name, kind) of each field of the message dataclass ``cls``, in wire order (the
    declaration order). Kinds are ``u64``, ``bool``, ``bytes``, ``str`` and ``entries``; an
    annotation with no wire kind is returned as its own text, which the codec refuses by name.
    """
    out = []
    for f in fields(cls):
        ann = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", repr(f.type))
        out.append((f.name, _WIRE_KINDS.get(ann, ann)))
    return tuple(out)
