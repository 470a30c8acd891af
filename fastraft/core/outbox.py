"""The durable-before-send gate (Raft Figure 2: persist before responding) and the answers
owed to requests.

Every command leaves through ``_emit``; every message through ``_send``, which emits it at
once or holds it until the vote it depends on is saved (``on_vote_saved``) and the log is
durable up to what it acknowledges (``on_log_flushed``). A request stepped with a ``reply_to``
token is owed one answer: ``_send(..., reply_to=token)`` or ``_no_answer(token, reason)``,
now or, after ``_answer_later(token)``, from a later input; ``_unanswered`` names the token of
the request being stepped until one of these happened (``step`` refuses it otherwise).

Reads: ``vote``, ``_saved_vote``, ``flushed``. Writes: ``vote`` (``_set_vote``, the one place
it changes), ``_held``, ``_unanswered``, ``_out``.

Invariant: a held message leaves only once what it depends on is durable, keeps its token,
and is refused (NoAnswer) rather than sent if a newer term began before that (it would claim
entries a newer leader may overwrite).
Invariant: at most ``_MAX_HELD`` messages are held.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Hashable

from fastraft.messages import Message
from fastraft.types import Vote

from .commands import Command, NoAnswer, SaveVote, SendMessage

__all__ = ["OutboxMixin"]

# Messages waiting for durable state: beyond this many, a new one is not held but refused
# (NoAnswer; the protocol retries lost messages), so a runtime that never reports its writes
# cannot grow us unbounded. Requests in flight are bounded by the sender's window long before.
_MAX_HELD = 4096


@dataclass(slots=True)
class _Held:
    """A message waiting for the vote ``need`` (None: none) to be saved and the log to be
    durable up to ``after_flush``; ``reply_to`` is the token of the request it answers (None:
    nobody waits on it)."""

    need: Vote | None
    after_flush: int
    to: int
    msg: Message
    reply_to: Hashable | None


class OutboxMixin:
    def _init_outbox(self, saved_vote: Vote) -> None:
        self._out: list[Command] = []
        self.vote = saved_vote
        self._saved_vote = saved_vote
        self._held: list[_Held] = []
        self._unanswered = None  # the token of the request being stepped, until answered

    def _emit(self, cmd: Command) -> None:
        self._out.append(cmd)

    def _set_vote(self, vote: Vote) -> None:
        """Change the vote in memory and ask the runtime to save it (Raft Figure 2: persist
        before responding)."""
        if vote.term > self.vote.term:
            # acknowledgements for an older term would claim entries a newer leader may
            # overwrite: they must never leave
            keep = []
            for h in self._held:
                if h.msg.term >= vote.term:
                    keep.append(h)
                elif h.reply_to is not None:
                    self._emit(NoAnswer(h.reply_to, f"its answer in term {h.msg.term} was "
                                                    f"not yet durable when term {vote.term} began"))
            self._held = keep
        self.vote = vote
        self._emit(SaveVote(vote))

    def _vote_durable(self, need: Vote) -> bool:
        s = self._saved_vote
        # within a term the vote only moves from "nobody" to a candidate, so a saved vote for
        # a candidate also covers the term alone (the runtime may report only the latest save)
        return s.term > need.term or (s.term == need.term and need.node_id in (0, s.node_id))

    def _send(self, to: int, msg: Message, after_vote: bool = False, after_flush: int = 0,
              reply_to=None) -> None:
        """Emit ``msg`` now, or hold it until the vote as of now is saved (``after_vote``) and the
        log is durable up to ``after_flush``. ``reply_to``: the token of the request ``msg``
        answers (None: a message of our own, or an answer nobody waits on)."""
        if reply_to is not None and reply_to == self._unanswered:
            self._unanswered = None
        need = self.vote if after_vote else None
        if (need is None or self._vote_durable(need)) and self.flushed >= after_flush:
            self._out.append(SendMessage(to, msg, reply_to))
            return
        # Every request gets a response of its own, even when a later acknowledgement would
        # cover it: its sender waits for exactly that answer.
        if len(self._held) >= _MAX_HELD:
            if reply_to is not None:
                self._emit(NoAnswer(reply_to, f"{_MAX_HELD} answers already wait for durable "
                                              f"state"))
            return
        self._held.append(_Held(need, after_flush, to, msg, reply_to))

    def _answer_later(self, reply_to) -> None:
        """The request being stepped with ``reply_to`` is answered by a later input (which
        keeps the token): ``step`` must not refuse it."""
        if reply_to is not None and reply_to == self._unanswered:
            self._unanswered = None

    def _no_answer(self, reply_to, reason: str) -> None:
        """The request stepped with ``reply_to`` (None: nobody waits) gets no answer."""
        if reply_to is not None:
            if reply_to == self._unanswered:
                self._unanswered = None
            self._emit(NoAnswer(reply_to, reason))

    def _release_held(self) -> None:
        if not self._held:
            return
        keep = []
        flushed = self.flushed
        for h in self._held:
            need = h.need
            if (need is None or self._vote_durable(need)) and flushed >= h.after_flush:
                self._out.append(SendMessage(h.to, h.msg, h.reply_to))
            else:
                keep.append(h)
        self._held = keep
