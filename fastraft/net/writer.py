"""The sending half of one TCP connection, client or server side: a bounded queue of envelopes,
one write loop, and one write-now path.

    writer = FrameWriter(stream, capacity=1024)
    nursery.start_soon(writer.run, nursery.cancel_scope)
    writer.put_nowait(envelope)        # or: await writer.put(envelope)

The write loop takes everything queued since its last write and writes it with one socket
write (at most ``MAX_WRITE_BYTES`` per write). The write-now path: when the loop waits with
nothing queued and nothing in hand, ``put`` writes the envelope straight to the socket with
``os.write`` (what the socket takes at once, never blocking), which saves the loop task's turn:
on a single writer's path that is a good share of a hop's latency. What the socket did not
take is handed to the loop, which writes it before anything queued after it.

Invariant: bytes reach the socket in the order their envelopes were put. The write-now path
runs only while the loop is idle (it waits on an empty queue with nothing in hand), and a put
that queues marks the loop busy before the loop can run.

Under TLS (``fastraft.net.tls_stream.TlsStream``) both paths encrypt synchronously with
``seal``: one seal per batch in the loop, one per envelope on the write-now path, and the
ciphertext goes to the socket the same way plain bytes do.

The queue is a trio memory channel used with ``send_nowait`` (or ``send`` where the caller may
wait): bounded by ``capacity``; a full queue raises ``trio.WouldBlock`` from ``put_nowait`` and
makes ``put`` wait. ``on_written(n)``, when given, is called after each write with the number
of envelopes it completed (the server frees one unanswered-request slot per answer written,
so a peer that does not read its answers stops being read: TCP pushes back).
"""

from __future__ import annotations

import os
from typing import Callable

import trio

from .tls_stream import TlsStream

__all__ = ["FrameWriter", "MAX_WRITE_BYTES", "STREAM_ERRORS"]

#: Largest single write: bounds the bytes one join copies.
MAX_WRITE_BYTES = 4 * 1024 * 1024
#: What a broken or closed connection raises.
STREAM_ERRORS = (OSError, trio.BrokenResourceError, trio.ClosedResourceError)
#: POSIX sockets take ``os.write``: the write-now path is there only.
_WRITE_NOW = os.name == "posix"


class FrameWriter:
    """Writes envelopes to ``stream`` (a ``trio.SocketStream`` or a ``TlsStream`` over one)
    in the order they are put."""

    def __init__(self, stream, capacity: int,
                 on_written: Callable[[int], None] | None = None) -> None:
        if isinstance(stream, TlsStream):
            self._seal: Callable[[bytes], bytes] | None = stream.seal
            self._socket_stream = stream.transport
            stream.on_output = self._wake
        else:
            self._seal = None
            self._socket_stream = stream
        self._fd = (self._socket_stream.socket.fileno()
                    if _WRITE_NOW and isinstance(self._socket_stream, trio.SocketStream) else None)
        # + 1: room for the wake-up the write-now path queues when the socket took part
        self._send, self._recv = trio.open_memory_channel(capacity + 1)
        self._on_written = on_written
        #: the loop waits on an empty queue with nothing in hand (write-now is allowed)
        self._idle = False
        #: bytes (already sealed) the write-now path could not write: the loop writes them
        #: first; with the number of envelopes they complete
        self._carry = b""
        self._carry_count = 0

    def put_nowait(self, data: bytes) -> None:
        """Write or queue ``data``; trio.WouldBlock when the queue is full,
        trio.BrokenResourceError / ClosedResourceError when the connection is over."""
        if self._idle and self._fd is not None:
            self._write_now(data)
            return
        self._idle = False  # before handing over: the loop may be woken with it
        self._send.send_nowait(data)

    async def put(self, data: bytes) -> None:
        """``put_nowait``, but waits while the queue is full."""
        if self._idle and self._fd is not None:
            self._write_now(data)
            return
        self._idle = False
        await self._send.send(data)

    def _write_now(self, data: bytes) -> None:
        wire = self._seal(data) if self._seal is not None else data
        try:
            n = os.write(self._fd, wire)
        except (BlockingIOError, InterruptedError):
            n = 0
        except OSError:
            n = 0  # the loop meets the error again on its write and ends the connection
        if n == len(wire):
            if self._on_written is not None:
                self._on_written(1)
            return
        self._carry = wire[n:]
        self._carry_count = 1
        self._idle = False
        self._send.send_nowait(b"")  # wakes the loop: it writes the carry

    def _wake(self) -> None:
        """Make the loop write soon (TLS left bytes for the peer in its outgoing buffer)."""
        if self._idle:
            self._idle = False
            try:
                self._send.send_nowait(b"")
            except (trio.WouldBlock, trio.BrokenResourceError, trio.ClosedResourceError):
                pass

    def close(self) -> None:
        """End the queue: puts waiting or to come raise trio.BrokenResourceError."""
        self._idle = False  # no write-now on a connection that is ending
        self._recv.close()

    async def run(self, on_end: trio.CancelScope) -> None:
        """The write loop: until the stream fails or the queue is closed; either way it then
        cancels ``on_end`` (the connection's scope)."""
        recv = self._recv
        try:
            while True:  # ends with the connection
                try:
                    first = recv.receive_nowait()
                except trio.WouldBlock:
                    self._idle = True
                    try:
                        first = await recv.receive()
                    finally:
                        self._idle = False
                parts = [first]
                size = len(first)
                while size < MAX_WRITE_BYTES:
                    try:
                        nxt = recv.receive_nowait()
                    except trio.WouldBlock:
                        break
                    parts.append(nxt)
                    size += len(nxt)
                count = sum(1 for p in parts if p) + self._carry_count
                plain = parts[0] if len(parts) == 1 else b"".join(parts)
                wire = self._seal(plain) if self._seal is not None else plain
                if self._carry:
                    wire = self._carry + wire
                    self._carry = b""
                    self._carry_count = 0
                if wire:
                    await self._socket_stream.send_all(wire)
                if count and self._on_written is not None:
                    self._on_written(count)
        except (*STREAM_ERRORS, trio.EndOfChannel):
            pass
        finally:
            on_end.cancel()
