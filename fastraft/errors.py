"""The errors fastraft raises: a short, deliberate list.

Three kinds are kept apart because each asks the caller for something different:

* misuse by the caller (``ConfigError``, ``ValueError`` from an API): fix the call;
* a peer, a client or a file that sends bytes we cannot trust (``CodecError``): drop the
  input, keep running, nothing stored changes;
* storage that failed or holds data we cannot trust (``StorageError``): stop the node,
  an operator must look.

Client-facing outcomes of a write (``ForwardToLeader``, ``OutcomeUnknown``) say whether
the request may be resent safely.
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
