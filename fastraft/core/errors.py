"""Refusals the engine answers requests with (in ``Respond.error`` or raised by ``propose``).

Each says whether the request may simply be retried, and where. Together with
``fastraft.ForwardToLeader`` (not the leader: retry at the leader it names) and
``fastraft.OutcomeUnknown`` (appended, fate unknown) they are every answer a client can get
from the engine other than success.
"""

from __future__ import annotations

from fastraft.errors import FastraftError

__all__ = ["LeaderTransferring", "TransferFailed", "MembershipError", "Busy"]


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
