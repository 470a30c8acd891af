"""Leadership transfer (thesis §3.10).

The leader stops taking proposals, brings the target's log up to its own, then sends it
TimeoutNow; the target campaigns at once, and voters grant it even while they still hear from
the old leader (the vote request says it is a transfer). The transfer ends when the old leader
sees a higher term (success), or after an election timeout (failure: it keeps leading and
takes proposals again).

Reads: ``role``, ``vote``, ``config``, ``_now``, the membership, ``progress``, the log's last
index. Writes: ``_transfer``. Calls ``_maybe_send_append`` to bring the target up to date and,
on the target, ``_become_candidate`` (roles.py).

Invariant: while a transfer is pending, ``propose`` appends nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Hashable

from fastraft.errors import TransferFailed
from fastraft.messages import TimeoutNowRequest, TimeoutNowResponse

from .commands import Respond
from .state import Role

__all__ = ["TransferMixin"]


@dataclass(slots=True)
class _Transfer:
    """A pending transfer to ``target``, asked by ``request_id`` in ``term``; it fails at
    ``deadline``; ``timeout_now_sent`` once the target was told to campaign."""

    target: int
    deadline: float
    request_id: Hashable
    term: int
    timeout_now_sent: bool = False


class TransferMixin:
    def _init_transfer(self) -> None:
        self._transfer: _Transfer | None = None

    @property
    def transfer_target(self) -> int:
        """The node leadership is being handed to, 0 if none."""
        return self._transfer.target if self._transfer is not None else 0

    def transfer_leader(self, request_id: Hashable, target: int) -> None:
        """Admin (leader): hand leadership to the voter ``target``. Answers
        ``Respond(request_id)`` once a higher term is seen (the target campaigned), or
        TransferFailed (not a voter, timed out after the maximum election timeout, replaced by
        another transfer), or ForwardToLeader on a non-leader."""
        if self.role != Role.LEADER:
            self._emit(Respond(request_id, error=self.forward_to_leader()))
            return
        if target == self.id:
            self._emit(Respond(request_id, result=None))
            return
        if not self._membership.membership.is_voter(target) or not self.progress.is_tracked(target):
            self._emit(Respond(request_id, error=TransferFailed(f"node {target} is not a voter")))
            return
        old = self._transfer
        if old is not None:
            self._emit(Respond(old.request_id, error=TransferFailed(
                f"replaced by a transfer to node {target}")))
        self._transfer = _Transfer(target=target,
                                   deadline=self._now + self.config.election_timeout_max_s,
                                   request_id=request_id, term=self.vote.term)
        self._maybe_send_append(target)
        self._maybe_send_timeout_now(target)

    def _maybe_send_timeout_now(self, peer: int) -> None:
        t = self._transfer
        if (t is None or t.target != peer or t.timeout_now_sent or self.role != Role.LEADER
                or not self.progress.is_tracked(peer)):
            return
        if self.progress.match_index(peer) >= self.log.last_index:
            t.timeout_now_sent = True
            self._send(peer, TimeoutNowRequest(term=self.vote.term, sender=self.id))

    def _maybe_expire_transfer(self) -> None:
        t = self._transfer
        if t is not None and self._now >= t.deadline:
            self._transfer = None
            self._emit(Respond(t.request_id, error=TransferFailed(
                f"node {t.target} did not take over within the election timeout")))

    def _end_transfer_on_step_down(self) -> None:
        t = self._transfer
        if t is None:
            return
        self._transfer = None
        if self.vote.term > t.term:
            self._emit(Respond(t.request_id, result=None))
        else:
            self._emit(Respond(t.request_id,
                               error=TransferFailed("leadership lost before the transfer")))

    def _handle_timeout_now(self, m: TimeoutNowRequest, reply_to=None) -> None:
        """A follower of ``m.sender`` in its term (guard.py drops any other TimeoutNow): the
        leader hands over, campaign at once."""
        if not self._can_campaign():
            self._no_answer(reply_to, "this node cannot campaign")
            return
        self._become_candidate(transfer=True)
        # answered in the new term, so the old leader stops at once
        self._send(m.sender, TimeoutNowResponse(term=self.vote.term, sender=self.id),
                   after_vote=True, reply_to=reply_to)
