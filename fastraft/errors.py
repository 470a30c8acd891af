"""The errors fastraft raises: a short, deliberate list.

Three kinds are kept apart because each asks the caller for something different:

* misuse by the caller (``ConfigError``, ``ValueError`` from an API): fix the call;
* a peer, a client or a file that sends bytes we cannot trust (``CodecError``): drop the
  input, keep running, nothing stored changes;
* storage that failed or holds data we cannot trust (``StorageError``): stop the node,
  an operator must look.

Client-facing outcomes of a request (``ForwardToLeader``, ``OutcomeUnknown``, and the
engine's refusals ``LeaderTransferring``, ``TransferFailed``, ``MembershipError``, ``Busy``)
say whether the request may be resent safely, and where. Network errors (``NetworkError``
and its three kinds) say what a sender may do next.

Every error class is defined here and nowhere else; ``fastraft.core`` and ``fastraft.net``
re-export the ones of their concern.
"""

from __future__ import annotations

__all__ = [
    "FastraftError",
    "CodecError",
    "StorageError",
    "ConfigError",
    "ForwardToLeader",
    "OutcomeUnknown",
    "RaftShutdown",
    "LeaderTransferring",
    "TransferFailed",
    "MembershipError",
    "Busy",
    "NetworkError",
    "Unreachable",
    "RequestTimeout",
    "RemoteError",
]


class FastraftError(Exception):
    """Base class of every error fastraft raises on purpose."""


class CodecError(FastraftError, ValueError):
    """Bytes that do not decode: truncated, oversized, wrong version, bad checksum, bad shape.

    Raised before anything is allocated for an oversized frame and before any state changes.
    """


class StorageError(FastraftError):
    """The storage failed, or holds data that fails its checksum or format check.

    The message says what and where (file, key or index). Raft cannot go on safely on top of
    a store that lost or corrupted durable state, so the node stops.
    """


class ConfigError(FastraftError, ValueError):
    """A configuration value, or combination of values, that cannot work."""


class ForwardToLeader(FastraftError):
    """This node does not lead; the request was not appended to its log and may be resent.

    ``leader_id`` and ``leader_node`` name the leader this node knows of, or are None.
    """

    def __init__(self, leader_id: int | None = None, leader_node: object = None) -> None:
        self.leader_id = leader_id
        self.leader_node = leader_node
        super().__init__(f"not the leader; forward to leader {leader_id} ({leader_node})")


class OutcomeUnknown(FastraftError):
    """The write was appended but its fate is unknown (leadership lost, timeout).

    The entry may still commit: resending it may apply it twice.
    """


class RaftShutdown(FastraftError):
    """The node is shutting down or has shut down; the request was not served."""


# -- the engine's refusals (answers in ``Respond.error``, or raised by ``propose``) ----------------


class LeaderTransferring(FastraftError):
    """The leader is handing leadership to ``target_id`` (thesis §3.10) and takes no
    proposal meanwhile; nothing was appended. Retry shortly, at the new leader."""

    def __init__(self, target_id: int):
        self.target_id = target_id
        super().__init__(f"leadership is being transferred to node {target_id}; retry there")


class TransferFailed(FastraftError):
    """A leadership transfer did not complete (timeout, target unknown or not a voter, or
    replaced by another transfer). The old leader keeps leading; a retry is safe."""


class MembershipError(FastraftError):
    """A membership request was refused before anything was appended: another change is in
    progress, the cluster is already initialized, a voter has no address, or the new
    configuration is empty. Fix the request or wait for the pending change, then retry."""


class Busy(FastraftError):
    """Too many requests are pending (for example ReadIndex reads); nothing was registered.
    Retry after the pending ones complete."""


# -- the network's errors (a request to a peer did not get its response) -------------------------
#
# They say what the caller may do next: ``Unreachable`` (not delivered: retry later),
# ``RequestTimeout`` (no answer in time: maybe delivered), ``RemoteError`` (the peer received it
# and could not serve it). Raft tolerates all three the same way: a lost message is retried by
# the protocol (Raft §5.3).


class NetworkError(FastraftError):
    """A request to a peer did not get its response."""


class Unreachable(NetworkError):
    """The peer could not be reached (refused, reset, closed, partitioned); not delivered."""


class RequestTimeout(NetworkError):
    """No response within the request's timeout; the peer may or may not have received it."""


class RemoteError(NetworkError):
    """The peer received the request and answered that it could not serve it (for example it
    is shutting down)."""
