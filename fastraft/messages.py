"""Raft messages: what engines exchange, one frozen class per kind (Raft Figure 2, §6, §7,
thesis §3.10, §6.4, §9.6).

Every message names its sender (``candidate_id``, ``leader_id``, ``voter_id`` or
``follower_id``) and the sender's ``term``. Responses travel back as messages too: the engine
does not care whether the network pairs them with requests (RPC over TCP) or not (simulator).

Each class declares ``TAG`` (its u8 on the wire, never reused) and ``FIELDS``: (name, kind)
pairs in wire order, with kinds ``u64``, ``bool``, ``bytes``, ``str`` and ``entries`` (a list
of ``fastraft.Entry``). The codec is driven by these tables, so a new field or message is
encoded without a codec change; bump ``fastraft.codec.WIRE_VERSION`` when the wire changes.
Field order in ``FIELDS`` is the constructor's order.
"""

from __future__ import annotations

from dataclasses import dataclass, field

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
]


class Message:
    """Base of all messages. ``TAG`` and ``FIELDS`` are set by each subclass."""

    __slots__ = ()
    TAG: int = 0
    FIELDS: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class VoteRequest(Message):
    """RequestVote (Raft §5.2), or a pre-vote (thesis §9.6) when ``pre_vote``: a pre-vote asks
    "would you vote for me in ``term``?" without anyone changing their term or vote.
    ``leader_transfer`` marks a campaign started by TimeoutNow (thesis §3.10): voters grant it
    even while they still hear from a leader."""

    TAG = 1
    FIELDS = (("term", "u64"), ("candidate_id", "u64"), ("last_log_term", "u64"),
              ("last_log_index", "u64"), ("pre_vote", "bool"), ("leader_transfer", "bool"))
    term: int
    candidate_id: int
    last_log_term: int
    last_log_index: int
    pre_vote: bool = False
    leader_transfer: bool = False


@dataclass(frozen=True, slots=True)
class VoteResponse(Message):
    """Reply to a VoteRequest. ``term`` is the voter's current term (for a granted pre-vote,
    the term the candidate asked about)."""

    TAG = 2
    FIELDS = (("term", "u64"), ("voter_id", "u64"), ("granted", "bool"), ("pre_vote", "bool"))
    term: int
    voter_id: int
    granted: bool
    pre_vote: bool = False


@dataclass(frozen=True, slots=True)
class AppendEntriesRequest(Message):
    """AppendEntries (Raft §5.3): ``entries`` follow (prev_log_term, prev_log_index); an empty
    list is a heartbeat. ``seq`` numbers the leader's rounds so that acknowledgements can
    confirm leadership for ReadIndex (thesis §6.4) and check-quorum."""

    TAG = 3
    FIELDS = (("term", "u64"), ("leader_id", "u64"), ("prev_log_term", "u64"),
              ("prev_log_index", "u64"), ("leader_commit", "u64"), ("seq", "u64"),
              ("entries", "entries"))
    term: int
    leader_id: int
    prev_log_term: int
    prev_log_index: int
    leader_commit: int
    seq: int = 0
    entries: list = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class AppendEntriesResponse(Message):
    """Reply to AppendEntries. On success ``match_index`` is the last index known to match the
    leader's log. On rejection ``match_index`` is the rejected prev_log_index and
    (``hint_term``, ``hint_index``) let the leader skip back a whole term at a time
    (Raft §5.3, the optimisation at the end of the section)."""

    TAG = 4
    FIELDS = (("term", "u64"), ("follower_id", "u64"), ("success", "bool"),
              ("match_index", "u64"), ("hint_term", "u64"), ("hint_index", "u64"), ("seq", "u64"))
    term: int
    follower_id: int
    success: bool
    match_index: int
    hint_term: int = 0
    hint_index: int = 0
    seq: int = 0


@dataclass(frozen=True, slots=True)
class InstallSnapshotRequest(Message):
    """One chunk of InstallSnapshot (Raft §7): ``data`` is the snapshot's bytes at ``offset``;
    ``done`` marks the last chunk. The snapshot covers the log up to
    (last_log_term, last_log_index) and its last membership is ``membership`` (the bytes of
    ``Membership.to_bytes``) carried by the entry at (membership_term, membership_index)."""

    TAG = 5
    FIELDS = (("term", "u64"), ("leader_id", "u64"), ("snapshot_id", "str"),
              ("last_log_term", "u64"), ("last_log_index", "u64"),
              ("membership_term", "u64"), ("membership_index", "u64"), ("membership", "bytes"),
              ("offset", "u64"), ("data", "bytes"), ("done", "bool"))
    term: int
    leader_id: int
    snapshot_id: str
    last_log_term: int
    last_log_index: int
    membership_term: int
    membership_index: int
    membership: bytes
    offset: int
    data: bytes
    done: bool


@dataclass(frozen=True, slots=True)
class InstallSnapshotResponse(Message):
    """Reply to a snapshot chunk: the follower expects ``next_offset`` next (resumable
    transfer); ``done`` once the whole snapshot is installed."""

    TAG = 6
    FIELDS = (("term", "u64"), ("follower_id", "u64"), ("snapshot_id", "str"),
              ("next_offset", "u64"), ("done", "bool"))
    term: int
    follower_id: int
    snapshot_id: str
    next_offset: int
    done: bool


@dataclass(frozen=True, slots=True)
class TimeoutNowRequest(Message):
    """Leadership transfer (thesis §3.10): the target starts an election at once."""

    TAG = 7
    FIELDS = (("term", "u64"), ("leader_id", "u64"))
    term: int
    leader_id: int


@dataclass(frozen=True, slots=True)
class TimeoutNowResponse(Message):
    """Acknowledges TimeoutNow, for networks that pair every request with a response."""

    TAG = 8
    FIELDS = (("term", "u64"), ("follower_id", "u64"))
    term: int
    follower_id: int


#: Every message class by its wire tag.
MESSAGE_TYPES: dict[int, type[Message]] = {
    cls.TAG: cls
    for cls in (VoteRequest, VoteResponse, AppendEntriesRequest, AppendEntriesResponse,
                InstallSnapshotRequest, InstallSnapshotResponse, TimeoutNowRequest,
                TimeoutNowResponse)
}
