"""Peers' requests waiting for the engine's answers, each by its own reply token.

A request enters the engine with a token (``Engine.step(request, reply_to=token)``); the
engine answers it with a ``SendMessage`` carrying that token (at once, or once what the answer
depends on is durable) or with ``NoAnswer(token, reason)`` when it will not answer. The token
is the key here, so a response reaches exactly the request it answers, whatever order the
engine answers in (openraft's ``Command::Respond``); nothing is paired by guesswork, and
nothing waits for a timeout.

Invariant: at most ``max_waiting`` requests wait; a request beyond that is not given to the
engine but answered "no answer" at once (networks bound their requests in flight long before:
the bound only guards against a network that does not).
"""

from __future__ import annotations

from ..reply import Reply

__all__ = ["InboundReplies"]


class InboundReplies:
    """Requests from peers that wait for the engine's responses; see the module docstring."""

    def __init__(self, max_waiting: int = 16384) -> None:
        self._waiting: dict[int, Reply] = {}
        self._max_waiting = max_waiting
        self._last_token = 0

    def __len__(self) -> int:
        return len(self._waiting)

    def expect(self, reply: Reply) -> int | None:
        """The token for a request whose answer resolves ``reply``; None (and ``reply``
        answered "no answer") when ``max_waiting`` requests already wait."""
        if len(self._waiting) >= self._max_waiting:
            reply.no_answer(f"{self._max_waiting} requests already wait for the engine")
            return None
        self._last_token += 1
        self._waiting[self._last_token] = reply
        return self._last_token

    def answer(self, token: int, response) -> None:
        """The engine answered the request ``token`` with ``response``."""
        reply = self._waiting.pop(token, None)
        if reply is not None:
            reply.set_result(response)

    def no_answer(self, token: int, reason: str) -> None:
        """The engine will not answer the request ``token``, because of ``reason``."""
        reply = self._waiting.pop(token, None)
        if reply is not None:
            reply.no_answer(reason)

    def fail_all(self, error: BaseException) -> None:
        """The node stops: every waiting request fails with ``error``."""
        waiting, self._waiting = self._waiting, {}
        for reply in waiting.values():
            reply.set_error(error)
