"""TLS over a trio socket stream with the encryption done synchronously, so that a frame can
be encrypted and written without a task switch.

``TlsStream`` keeps an ``ssl.SSLObject`` on two ``ssl.MemoryBIO`` buffers (as trio's
``SSLStream`` does), but exposes the encryption step on its own: ``seal(plaintext)`` encrypts
into the outgoing buffer and returns the ciphertext to write, at once, without awaiting. The
connection's writer (``fastraft.net.writer``) then treats TLS like plain TCP: the same write
loop (one ``seal`` and one socket write per batch of frames) and the same write-now path
(``os.write`` of the sealed frame when nothing is queued before it). trio's ``SSLStream``
cannot do either: every ``send_all`` awaits, so each frame costs the writer task's turn, and
each receive returns at most one TLS record.

Why this is sound:

* the ``SSLObject`` is used by one trio task at a time with no await between its calls, so
  ``seal`` calls are ordered as the frames are, and each ciphertext is written in the order
  it was sealed (the writer guarantees that, ``fastraft.net.writer``);
* ``receive_some`` decrypts every whole record that has arrived, up to ``max_bytes``, so a
  burst of pipelined frames costs one call;
* bytes that decrypting produces for the peer (a TLS 1.3 KeyUpdate answer) wait in the
  outgoing buffer and leave with the next ``seal``; ``on_output`` (set by the writer) is
  called so the writer makes that next write soon.

The handshake (``do_handshake``, or the first ``send_all`` / ``receive_some``) and the
certificate checks are those of ``ssl``: the contexts of ``fastraft.net.tls`` (CA,
``CERT_REQUIRED``, TLS 1.2 at least) decide; a failed handshake is ``trio.BrokenResourceError``
whose ``__cause__`` is the ``ssl`` error, after the alert that says why ("unknown CA",
"certificate required") has been sent to the peer: without it a TLS 1.3 client sees only a
closed connection after its request, unable to tell a refusal from a crash. The handshake
reads at most ``MAX_HANDSHAKE_BYTES`` of ciphertext; the caller bounds its time. A peer that
closes the TCP connection without TLS's close_notify ends the stream (``b""``) like a clean
close: the framing on top (envelopes, HTTP) detects a stream cut inside a frame.

``TlsListener`` wraps a trio listener: it accepts ``TlsStream`` connections whose handshake runs on
their first use (the HTTPS API serves them like trio's ``SSLStream`` with
``https_compatible=True``).
"""

from __future__ import annotations

import ssl
from typing import Callable

import trio

__all__ = ["TlsStream", "TlsListener", "MAX_HANDSHAKE_BYTES"]

#: Largest single read from the socket.
_RECEIVE_BYTES = 256 * 1024
#: Ciphertext a handshake may read: certificate chains are a few KiB; a peer that sends more
#: without finishing is refused (the handshake's time is bounded by the caller).
MAX_HANDSHAKE_BYTES = 256 * 1024
#: After a refused handshake, how long (and how many reads) to take what the peer still
#: sends, so that closing with unread bytes does not reset the connection and lose the alert.
_ALERT_LINGER_S = 1.0
_ALERT_LINGER_READS = 16


class TlsStream:
    """A TLS connection over ``transport`` (a connected ``trio.SocketStream``)."""

    def __init__(self, transport: trio.SocketStream, context: ssl.SSLContext, *,
                 server_side: bool) -> None:
        self.transport = transport
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self._ssl = context.wrap_bio(self._incoming, self._outgoing, server_side=server_side,
                                     server_hostname=None)
        self._eof = False
        self._handshaken = False
        #: the last read filled what it asked for: the record may hold more plaintext
        self._plain_left = False
        #: called (no arguments) when decrypting left bytes for the peer in the outgoing
        #: buffer: the writer makes sure a write follows (``seal(b"")`` picks them up)
        self.on_output: Callable[[], None] | None = None

    @property
    def socket(self):
        return self.transport.socket

    def getpeercert(self) -> dict | None:
        return self._ssl.getpeercert()

    async def do_handshake(self) -> None:
        """Run the TLS handshake to its end (at once if it is done); trio.BrokenResourceError
        when it fails (the peer's certificate is refused, the peer refused ours, the
        connection ended, or the peer sent more than ``MAX_HANDSHAKE_BYTES`` meanwhile)."""
        received = 0
        while not self._handshaken:  # bounded: each turn reads bytes, at most MAX_HANDSHAKE_BYTES
            try:
                self._ssl.do_handshake()
                self._handshaken = True
            except ssl.SSLWantReadError:
                pass
            except ssl.SSLError as e:
                await self._send_alert()
                raise trio.BrokenResourceError(f"TLS handshake failed: {e}") from e
            out = self._outgoing.read()
            if out:
                await self.transport.send_all(out)
            if self._handshaken:
                return
            if received >= MAX_HANDSHAKE_BYTES:
                raise trio.BrokenResourceError(f"TLS handshake failed: the peer sent "
                                               f"{received} bytes without completing it")
            got = await self._receive_ciphertext()
            if not got:
                raise trio.BrokenResourceError("the peer closed the connection during the TLS "
                                               "handshake")
            received += got

    async def _send_alert(self) -> None:
        """Send what ``ssl`` wrote when the handshake failed (the alert that says why: it
        helps the peer's operator), then take what the peer still sends for a moment; best
        effort, bounded in time and reads."""
        out = self._outgoing.read()
        if not out:
            return
        with trio.move_on_after(_ALERT_LINGER_S):
            try:
                await self.transport.send_all(out)
                for _ in range(_ALERT_LINGER_READS):
                    if not await self.transport.receive_some(_RECEIVE_BYTES):
                        break
            except (OSError, trio.BrokenResourceError, trio.ClosedResourceError):
                pass

    async def _receive_ciphertext(self) -> int:
        """Read once from the socket into the incoming buffer; the bytes read (0: the end)."""
        chunk = await self.transport.receive_some(_RECEIVE_BYTES)
        if not chunk:
            self._incoming.write_eof()
            return 0
        self._incoming.write(chunk)
        return len(chunk)

    def seal(self, plaintext: bytes) -> bytes:
        """Encrypt ``plaintext`` (b"" for none) and return every byte waiting for the peer;
        the caller writes them before the next ``seal``'s."""
        if plaintext:
            self._ssl.write(plaintext)
        return self._outgoing.read()

    async def send_all(self, data: bytes) -> None:
        if not self._handshaken:
            await self.do_handshake()
        await self.transport.send_all(self.seal(data))

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        """Up to ``max_bytes`` of plaintext (everything decryptable, at least one byte); b""
        at the end of the stream. trio.BrokenResourceError on bytes that are not valid TLS."""
        if not self._handshaken:
            await self.do_handshake()
        limit = max_bytes or _RECEIVE_BYTES
        while True:  # bounded: each turn reads from the socket, or ends the stream
            got = self._decrypt(limit)
            if got is not None:
                return got
            if self._eof or not await self._receive_ciphertext():
                self._eof = True
                got = self._decrypt(limit)
                return got or b""

    def _decrypt(self, limit: int) -> bytes | None:
        """Whatever whole records hold, up to ``limit`` bytes; None when none is complete.

        ``ssl`` is asked only while it may hold something: ciphertext in the incoming buffer,
        the rest of a record a read stopped inside (``_plain_left``), or the end. A question
        it cannot answer raises SSLWantReadError, and every call into it releases the GIL
        (another thread, the log's writer, may then take it and make this one wait): one
        read per record that came is the least. (Each read asks for all the room left:
        capping it at one record's 16 KiB measured slower, ``ssl`` allocates what is asked
        and shrinks it to what it read.)"""
        incoming = self._incoming
        if not (incoming.pending or self._plain_left or self._eof):
            return None
        parts = []
        size = 0
        try:
            while size < limit:  # bounded: each turn takes a record, or leaves
                want = limit - size
                part = self._ssl.read(want)
                if not part:
                    break
                parts.append(part)
                size += len(part)
                # a read that got less than it asked for ended its record
                self._plain_left = len(part) == want
                if not (self._plain_left or incoming.pending):
                    break
        except ssl.SSLWantReadError:
            self._plain_left = False
        except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
            self._eof = True  # close_notify, or a TCP close without it: the end either way
        except ssl.SSLError as e:
            raise trio.BrokenResourceError(f"bad TLS data: {e}") from e
        if self._outgoing.pending and self.on_output is not None:
            self.on_output()
        if parts:
            return parts[0] if len(parts) == 1 else b"".join(parts)
        return b"" if self._eof else None

    async def aclose(self) -> None:
        await self.transport.aclose()


class TlsListener(trio.abc.Listener[TlsStream]):
    """``listener``'s connections as server-side ``TlsStream`` objects with ``context``; each
    handshakes on its first use (or its ``do_handshake``), so a slow peer holds up only its
    own connection's task."""

    def __init__(self, listener: trio.abc.Listener, context: ssl.SSLContext) -> None:
        self.transport_listener = listener
        self._context = context

    async def accept(self) -> TlsStream:
        return TlsStream(await self.transport_listener.accept(), self._context, server_side=True)

    async def aclose(self) -> None:
        await self.transport_listener.aclose()
