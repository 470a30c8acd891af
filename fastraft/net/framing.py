"""The TCP wire: codec frames wrapped in a small envelope that carries a request id, so that
requests can be pipelined on one connection and answered out of order.

One envelope::

    u64 request_id | u8 status | body
    status 0 (OK):     body is one codec frame (fastraft.codec: header, then message body)
    status 1 (ERROR):  body is u16 length | that many bytes of UTF-8 text (at most 1024)
    status 2 (EMPTY):  no body

A request always has status OK. A response carries the id of its request; ERROR says the
peer received the request and could not serve it (the client raises RemoteError); EMPTY says
the peer handled it and has no answer to it (it answered a later request from us instead, or
ignored this one: see ``fastraft.net.protocol``). All integers little-endian.

The frame's own header is validated (``codec.frame_size``) before the body is read, so an
oversized or malformed frame is refused before anything is allocated for it. Any bytes that
do not parse raise ``CodecError``; the connection is then unusable (the stream position is
lost) and must be closed.
"""

from __future__ import annotations

import struct

import trio

from .. import codec
from ..errors import CodecError
from ..messages import Message

__all__ = [
    "ENVELOPE_SIZE",
    "STATUS_OK",
    "STATUS_ERROR",
    "STATUS_EMPTY",
    "MAX_ERROR_TEXT_BYTES",
    "DEFAULT_MAX_FRAME_BYTES",
    "encode_ok",
    "encode_error",
    "FrameReader",
]

_ENVELOPE = struct.Struct("<QB")
_TEXT_LEN = struct.Struct("<H")
ENVELOPE_SIZE = _ENVELOPE.size
STATUS_OK = 0
STATUS_ERROR = 1
STATUS_EMPTY = 2
MAX_ERROR_TEXT_BYTES = 1024
#: Largest codec frame accepted by default; bounds the memory one peer can make us allocate.
DEFAULT_MAX_FRAME_BYTES = codec.DEFAULT_MAX_FRAME_BYTES
#: Largest single read from the socket: a frame's announced length never sizes a read.
_READ_BYTES = 256 * 1024


def encode_ok(request_id: int, msg: Message | None) -> bytes:
    """One envelope carrying ``msg`` (a request, or the response to ``request_id``); an
    EMPTY answer when ``msg`` is None."""
    if msg is None:
        return _ENVELOPE.pack(request_id, STATUS_EMPTY)
    return _ENVELOPE.pack(request_id, STATUS_OK) + codec.encode_message(msg)


def encode_error(request_id: int, text: str) -> bytes:
    """One ERROR envelope answering ``request_id``; ``text`` is cut to 1024 bytes."""
    raw = text.encode("utf-8", "replace")[:MAX_ERROR_TEXT_BYTES]
    return _ENVELOPE.pack(request_id, STATUS_ERROR) + _TEXT_LEN.pack(len(raw)) + raw


class FrameReader:
    """Reads envelopes from a trio stream, one at a time.

    ``read()`` returns ``(request_id, message)`` for OK envelopes, ``(request_id, text)`` for
    ERROR ones, ``(request_id, None)`` for EMPTY ones, and None at a clean end of stream
    (between envelopes). Raises CodecError on
    bytes that do not parse and on a stream that ends inside an envelope.

    Cancel-safe: bytes already received stay in the reader's buffer, so a cancelled read can
    be retried without losing the stream's position.
    """

    def __init__(self, stream: trio.abc.ReceiveStream, max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES,
                 *, max_buffered_bytes: int | None = None, budget=None,
                 idle_timeout_s: float | None = None, frame_timeout_s: float | None = None):
        if max_frame_bytes < codec.HEADER_SIZE:
            raise ValueError(f"max_frame_bytes must be at least {codec.HEADER_SIZE}")
        self._stream = stream
        self._max_frame_bytes = max_frame_bytes
        #: Bound on the buffer: by default one largest envelope and one read beyond it.
        self._max_buffered = max_buffered_bytes or (max_frame_bytes + ENVELOPE_SIZE + _READ_BYTES)
        #: shared with other readers (``room()``, ``charge(delta)``): bounds their sum
        self._budget = budget
        self._charged = 0
        #: With both timeouts: waiting for the first byte of an envelope may take
        #: idle_timeout_s, the rest of it frame_timeout_s from when we first wait for it;
        #: trio.TooSlowError when either runs out.
        self._timed = idle_timeout_s is not None and frame_timeout_s is not None
        self._idle_timeout_s = idle_timeout_s
        self._frame_timeout_s = frame_timeout_s
        self._frame_deadline: float | None = None
        self._buf = bytearray()
        self._pos = 0  # Invariant: self._buf[:self._pos] has been consumed

    def _available(self) -> int:
        return len(self._buf) - self._pos

    def _compact(self) -> None:
        del self._buf[: self._pos]
        self._pos = 0
        self._recharge()

    def _recharge(self) -> None:
        if self._budget is not None and len(self._buf) != self._charged:
            delta, self._charged = len(self._buf) - self._charged, len(self._buf)
            self._budget.charge(delta)

    def release(self) -> None:
        """Drop whatever is buffered (the connection is over) and report it freed."""
        self._buf = bytearray()
        self._pos = 0
        self._recharge()

    async def _fill(self, need: int) -> bool:
        """Make at least ``need`` unconsumed bytes available; False at end of stream.

        The buffer grows with bytes that arrive (reads of at most ``_READ_BYTES``), never
        by a length announced in a header; CodecError when it would pass its bound."""
        if self._pos and self._pos * 2 >= len(self._buf):
            # compact once half the buffer is consumed: amortised O(1) per byte
            self._compact()
        while self._available() < need:
            room = self._max_buffered - len(self._buf)
            if room <= 0 and self._pos:
                self._compact()
                room = self._max_buffered - len(self._buf)
            if room <= 0:
                raise CodecError(f"more than {self._max_buffered} bytes buffered on one connection")
            if self._budget is not None:
                room = min(room, self._budget.room())
                if room <= 0:
                    raise CodecError("the buffers shared with other connections are full")
            if self._timed:
                chunk = await self._receive_timed(min(_READ_BYTES, room))
            else:
                chunk = await self._stream.receive_some(min(_READ_BYTES, room))
            if not chunk:
                return False
            self._buf += chunk
            self._recharge()
        return True

    async def _receive_timed(self, max_bytes: int) -> bytes:
        # one cancel scope per wait on the socket, not per frame: pipelined frames that
        # arrive together cost none
        now = trio.current_time()
        if not self._available():
            deadline = now + self._idle_timeout_s
        else:
            if self._frame_deadline is None:
                self._frame_deadline = now + self._frame_timeout_s
            deadline = self._frame_deadline
        with trio.move_on_at(deadline):
            return await self._stream.receive_some(max_bytes)
        raise trio.TooSlowError("idle too long" if not self._available() else "frame too slow")

    async def read_exact(self, n: int) -> bytes:
        """The next ``n`` raw bytes (a preamble outside the envelopes); CodecError if the
        stream ends first."""
        if not await self._fill(n):
            raise CodecError(f"stream ended inside a {n}-byte preamble")
        return self._take(n)

    def _take(self, n: int) -> bytes:
        out = bytes(self._buf[self._pos: self._pos + n])
        self._pos += n
        return out

    async def read(self) -> tuple[int, Message | str | None] | None:
        self._frame_deadline = None
        if not await self._fill(ENVELOPE_SIZE):
            if self._available():
                raise CodecError("stream ended inside an envelope")
            return None
        request_id, status = _ENVELOPE.unpack_from(self._buf, self._pos)
        if status == STATUS_OK:
            head = ENVELOPE_SIZE + codec.HEADER_SIZE
            if not await self._fill(head):
                raise CodecError("stream ended inside a frame header")
            header = bytes(self._buf[self._pos + ENVELOPE_SIZE: self._pos + head])
            size = codec.frame_size(header, max_frame_bytes=self._max_frame_bytes)
            if not await self._fill(ENVELOPE_SIZE + size):
                raise CodecError("stream ended inside a frame")
            self._pos += ENVELOPE_SIZE
            return request_id, codec.decode_message(self._take(size), max_frame_bytes=self._max_frame_bytes)
        if status == STATUS_ERROR:
            head = ENVELOPE_SIZE + _TEXT_LEN.size
            if not await self._fill(head):
                raise CodecError("stream ended inside an error envelope")
            (n,) = _TEXT_LEN.unpack_from(self._buf, self._pos + ENVELOPE_SIZE)
            if n > MAX_ERROR_TEXT_BYTES:
                raise CodecError(f"error text of {n} bytes exceeds {MAX_ERROR_TEXT_BYTES}")
            if not await self._fill(head + n):
                raise CodecError("stream ended inside an error text")
            self._pos += head
            return request_id, self._take(n).decode("utf-8", "replace")
        if status == STATUS_EMPTY:
            self._pos += ENVELOPE_SIZE
            return request_id, None
        raise CodecError(f"unknown envelope status {status}")
