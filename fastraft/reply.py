"""``Reply``: a result still to come, resolved once (trio). The runtime hands one to each caller
that waits on the node (a peer's request, an admin call, a read point), and networks hand one
to each request they send; both sides are trio tasks of one process."""

from __future__ import annotations

import trio

from .errors import RequestTimeout
from .messages import Message

__all__ = ["Reply"]


class Reply:
    """A response still to come: resolved once, with a message (or None: no answer, with the
    ``reason`` when one was given) or with an exception.

    Several tasks may wait on it (``result``), each getting the same outcome; or one callback
    (``on_done``) runs when it resolves, so that a sender with many requests in flight need
    not wait on them one by one. ``cancel`` says nobody waits any longer.
    """

    __slots__ = ("_event", "_value", "_error", "_callback", "reason")

    def __init__(self) -> None:
        self._event = trio.Event()
        self._value: Message | None = None
        self._error: BaseException | None = None
        self._callback = None
        #: Why the request got no answer (set by ``no_answer``), else None.
        self.reason: str | None = None

    @property
    def done(self) -> bool:
        return self._event.is_set()

    @property
    def value(self) -> Message | None:
        """The response once resolved without error (None before, or for no answer)."""
        return self._value

    @property
    def error(self) -> BaseException | None:
        return self._error

    def set_result(self, value: Message | None) -> None:
        """Resolve with ``value``; does nothing if already resolved."""
        if not self._event.is_set():
            self._value = value
            self._resolved()

    def no_answer(self, reason: str) -> None:
        """Resolve with None (no answer) because of ``reason``; does nothing if resolved."""
        if not self._event.is_set():
            self.reason = reason
            self._resolved()

    def set_error(self, error: BaseException) -> None:
        """Resolve with ``error`` (raised by ``result``); does nothing if already resolved."""
        if not self._event.is_set():
            self._error = error
            self._resolved()

    def _resolved(self) -> None:
        self._event.set()
        callback, self._callback = self._callback, None
        if callback is not None:
            callback(self)

    def on_done(self, callback) -> None:
        """Call ``callback(reply)`` once resolved (at once if it already is); one callback."""
        if self._event.is_set():
            callback(self)
        else:
            self._callback = callback

    def cancel(self) -> None:
        """Nobody waits for this response any longer (its deadline passed)."""
        self.set_error(RequestTimeout("the request's deadline passed"))

    async def result(self) -> Message | None:
        """Wait for the outcome: return the message (or None) or raise the error."""
        await self._event.wait()
        if self._error is not None:
            raise self._error
        return self._value  # type: ignore[return-value]
