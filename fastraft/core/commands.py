"""The commands the engine emits and the runtime executes (openraft's Engine/Command split).

The runtime's obligations, which are all the ordering it must get right:

1. Execute commands in the order ``take_commands()`` returns them, per kind of resource:
   log writes (``AppendLog``, ``TruncateLog``, ``PurgeLog``) in order among themselves and
   after any ``SaveVote`` before them; state-machine work (``ApplyEntries``, ``BuildSnapshot``,
   ``SaveSnapshotChunk``, ``InstallSnapshot``) in order among themselves. Sends, reads of the
   log and answers to clients may overlap anything.
2. Report completions back: ``on_vote_saved`` after a ``SaveVote`` is durable,
   ``on_log_flushed(last_log_id)`` once an ``AppendLog`` (and every log write before it) is
   durable, ``on_snapshot_built`` / ``on_snapshot_installed``, ``on_entries_read``,
   ``on_snapshot_chunk_read``. Reporting several completions with only the latest is allowed.
3. Send every ``SendMessage`` as soon as convenient; one with a ``reply_to`` token answers the
   request stepped with that token (``Engine.step(msg, reply_to=token)``): hand it to that
   request's waiter, not to the network. Every request stepped with a token gets exactly one
   ``SendMessage`` or ``NoAnswer`` carrying that token, in time (a response waiting for a
   durable write keeps its token until it leaves). The engine emits a message only when every
   durable write it depends on has been reported (a vote reply after its ``SaveVote``, a
   follower's acknowledgement after its entries are flushed). The one write a message may
   overtake is the leader's own ``AppendLog``: a leader replicates in parallel with its own
   flush and counts itself only once the flush is reported (thesis §10.2.1).
4. Messages may be lost, duplicated or reordered; the engine copes. Commands may not be lost:
   if one fails (storage error), stop the node.

Every command is a frozen, slotted dataclass.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Hashable

from fastraft.messages import Message
from fastraft.types import LogId, SnapshotMeta, StoredMembership, Vote

__all__ = [
    "Command",
    "SaveVote",
    "AppendLog",
    "TruncateLog",
    "PurgeLog",
    "SendMessage",
    "NoAnswer",
    "ApplyEntries",
    "BuildSnapshot",
    "SaveSnapshotChunk",
    "InstallSnapshot",
    "ReadLog",
    "ReadSnapshotChunk",
    "Respond",
    "ReadReady",
    "StateChanged",
    "MembershipChanged",
]


class Command:
    """Base of every command."""

    __slots__ = ()


@dataclass(frozen=True, slots=True)
class SaveVote(Command):
    """Persist ``vote`` (term and voted-for, Raft Figure 2), then call ``on_vote_saved(vote)``.
    A later SaveVote supersedes an earlier one."""

    vote: Vote


@dataclass(frozen=True, slots=True)
class AppendLog(Command):
    """Append ``entries`` (contiguous, continuing the log as left by earlier log commands) to
    the log store, then, once durable, call ``on_log_flushed(last_log_id)``. Several appends
    may be flushed together and reported once with the last one's id (group commit)."""

    entries: list
    last_log_id: LogId


@dataclass(frozen=True, slots=True)
class TruncateLog(Command):
    """Delete every entry with index >= ``since`` (a conflicting suffix, Raft §5.3). Entries at
    or below the commit index are never truncated."""

    since: int


@dataclass(frozen=True, slots=True)
class PurgeLog(Command):
    """Delete every entry with index <= ``upto.index`` and remember ``upto`` as the last purged
    log id (Raft §7). ``upto`` may lie beyond the last entry (after a snapshot install): the
    log is then empty and continues at upto.index + 1. Purged entries are always covered by a
    snapshot already built or installed."""

    upto: LogId


@dataclass(frozen=True, slots=True)
class SendMessage(Command):
    """Send ``msg`` to node ``to``. Best effort: the protocol retries what is lost.

    ``reply_to`` is None for a message of the engine's own (a request, or an answer to a
    request stepped without a token); otherwise ``msg`` is the response to the request that
    was stepped with ``reply_to``, and goes to exactly that request's waiter (openraft's
    ``Command::Respond``)."""

    to: int
    msg: Message
    reply_to: Hashable | None = None


@dataclass(frozen=True, slots=True)
class NoAnswer(Command):
    """The request stepped with ``reply_to`` gets no response, for ``reason`` (dropped while a
    snapshot is installed, malformed, from a term that moved on before its answer was
    durable...): release its waiter now instead of letting it wait for a timeout. Raft
    tolerates the lost answer (the sender retries, §5.3)."""

    reply_to: Hashable
    reason: str


@dataclass(frozen=True, slots=True)
class ApplyEntries(Command):
    """Apply the committed entries [lo, hi) to the state machine, in order (Raft §5.3).
    ``entries`` holds them when the engine still had them cached, else None and the runtime
    reads them from the log store. Entries of kind BLANK and MEMBERSHIP are applied too (the
    state machine records the membership and the last applied log id)."""

    lo: int
    hi: int
    entries: list | None = None


@dataclass(frozen=True, slots=True)
class BuildSnapshot(Command):
    """Build a snapshot of the state machine as of every ``ApplyEntries`` issued before this
    command, then call ``on_snapshot_built(meta)``."""


@dataclass(frozen=True, slots=True)
class SaveSnapshotChunk(Command):
    """A follower received bytes [offset, offset + len(data)) of the leader's snapshot
    ``snapshot_id``: store them. Offset 0 starts a new snapshot (discard any partial one)."""

    snapshot_id: str
    offset: int
    data: bytes


@dataclass(frozen=True, slots=True)
class InstallSnapshot(Command):
    """Every chunk of the snapshot ``meta.snapshot_id`` was received: replace the state
    machine with it and make it durable, then call ``on_snapshot_installed(meta)``. The
    engine then emits the log commands that follow from it."""

    meta: SnapshotMeta


@dataclass(frozen=True, slots=True)
class ReadLog(Command):
    """Read entries [lo, hi) from the log store for replication to node ``node_id`` (they are
    no longer cached), then call ``on_entries_read(node_id, lo, entries)``; a prefix (or
    nothing, if they were purged meanwhile) is acceptable."""

    node_id: int
    lo: int
    hi: int


@dataclass(frozen=True, slots=True)
class ReadSnapshotChunk(Command):
    """Read at most ``max_bytes`` of the current snapshot ``snapshot_id`` at ``offset`` for
    node ``node_id``, then call ``on_snapshot_chunk_read(node_id, snapshot_id, offset, data,
    done)``; ``data=None`` if that snapshot is no longer available."""

    node_id: int
    snapshot_id: str
    offset: int
    max_bytes: int


@dataclass(frozen=True, slots=True)
class Respond(Command):
    """The answer to the request ``request_id`` (admin requests, reads refused): ``error`` is
    None on success, else an exception (ForwardToLeader, MembershipError, TransferFailed,
    Busy, OutcomeUnknown) to hand to the caller."""

    request_id: Hashable
    result: Any = None
    error: BaseException | None = None


@dataclass(frozen=True, slots=True)
class ReadReady(Command):
    """The read ``request_id`` is linearizable once the state machine has applied
    ``read_index`` (thesis §6.4): every ``ApplyEntries`` reaching it was emitted before this
    command, so a runtime that applies in order serves the read right away."""

    request_id: Hashable
    read_index: int


@dataclass(frozen=True, slots=True)
class StateChanged(Command):
    """The role, term or known leader changed (for metrics, and to fail waiting proposals)."""

    role: str
    term: int
    leader_id: int


@dataclass(frozen=True, slots=True)
class MembershipChanged(Command):
    """The effective membership (the last one in the log, thesis §4.1) or the committed one
    changed. Node addresses for ``SendMessage`` come from ``membership.nodes``."""

    membership: StoredMembership
    committed: StoredMembership = field(default_factory=StoredMembership)
