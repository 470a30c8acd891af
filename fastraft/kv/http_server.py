"""A small HTTP/1.1 server for trio: one task per connection, keep-alive, pipelined requests
answered in order, every answer written in one send, and a bound on everything a client can
make it hold.

    async with trio.open_nursery() as nursery:
        listeners = await trio.open_tcp_listeners(8080, host="127.0.0.1")
        await nursery.start(serve_http, handler, listeners)

``handler(request)`` is an async callable taking a ``Request`` (the whole body already read)
and returning a ``Response`` (``fastraft.kv.http_message``); it may define
``body_limit(path) -> int`` to accept bodies larger or smaller than ``Limits.max_body_bytes``
on some paths. The listeners are any ``trio.abc.Listener`` of byte streams, so a TLS
listener (``fastraft.net.tls_stream``'s ``TlsListener``) serves HTTPS unchanged. A handler
may also define ``async authenticate(stream) -> peer``: called once per connection before its
first request (the TLS handshake runs there, bounded by ``Limits.handshake_timeout_s``), its
result is every request's ``peer``; if it raises a stream error the connection is closed
without a word. And it may define ``time_limit(request) -> (seconds, Response) | None``: the
server then answers that Response (and cancels the handler) if the handler has not answered
within that many seconds; the connection goes on.

The parser is httptools (llhttp), driven by ``fastraft.kv.http_message.RequestReader``. It
was picked over h11 by measurement: ``benchmarks/kv/http_ceiling.py`` serves a fixed answer
with this server, with h11 driven from a trio stream and with hypercorn, under the same
closed-loop load (64 keep-alive clients) in one run. Medians of 3 on 2 shared cores: this
server 15,300 requests/s at 45 µs of server CPU each, h11 8,200 at 94 µs, hypercorn 1,150 at
460 µs. h11 would spend twice the CPU per request on parsing alone. With the per-request
path below, the same fixed answer costs this server 30 to 33 µs of CPU (``python -m
benchmarks --suites kv``: the ``ceiling`` row; hypercorn's, ``ceiling-hypercorn``, 750 µs).

What a request costs the server is what decides a node's writes/s on a small machine (the
node's one trio thread also runs Raft), so the per-request path holds no cancel scope and,
on a plain TCP connection, no trio socket wrapper:

* timeouts, the handler's time limits among them, are deadlines kept on the connection (one
  float store per phase) and enforced by one reaper task per server, which cancels the
  connection's cancel scope once its deadline passed (checked every eighth of the shortest
  timeout, between 10 ms and 0.5 s: a timeout may fire up to that much late); a trio cancel
  scope per request and phase cost more than parsing the request;
* on a ``trio.SocketStream``, a connection waits for its socket to be readable and then
  reads it, and writes an answer straight to the socket: the read that trio's stream would
  try first (the next request is almost never there yet when its answer just left) and
  the extra scheduler pass after each send are saved; a send the socket cannot take at once
  falls back to the stream's ``send_all``. Other streams (TLS) use the stream's methods.

Limits (``Limits``, each with a safe default):

* header bytes (request line + headers) past ``max_header_bytes``: 431, close;
* a body past the path's limit: 413 and close, from Content-Length before any of it is read,
  and for chunked bodies (accepted, decoded by the parser) as soon as the count passes it;
* more than ``max_connections`` open connections: the extra one gets 503 and is closed;
* more than ``max_pipelined`` complete requests received ahead of their answers: 429, close
  (one receive of 64 KiB could otherwise queue thousands of tiny requests);
* a connection's ``authenticate`` (its TLS handshake) not done within
  ``handshake_timeout_s``: closed;
* a request's headers not complete ``header_timeout_s`` after its first byte (slowloris),
  or its body not complete ``body_timeout_s`` after its headers: 408 and close;
* no new request within ``idle_timeout_s`` of the last answer: closed without a word;
* an answer the client does not take within ``send_timeout_s``: closed;
* bytes that are not HTTP/1.1: 400 and close, logged at debug, never a traceback.

Stopping: cancelling ``serve_http`` closes the listeners, closes idle connections, lets the
requests in flight finish for up to ``Limits.stop_grace_s`` (each answered with
``connection: close``), then cancels what is left.
"""

from __future__ import annotations

import logging
import math
import os
from typing import Awaitable, Callable, Sequence

import httptools
import trio

from .http_message import (Limits, Refuse, Request, RequestReader, Response, error_response,
                           render)

__all__ = ["Limits", "Request", "Response", "serve_http"]

log = logging.getLogger("fastraft.kv.http")

_RECEIVE_BYTES = 65536

Handler = Callable[[Request], Awaitable[Response]]

# A connection's phases: what its deadline bounds, and what its expiry means.
_IDLE, _HEAD, _BODY, _HANDLING, _SENDING = range(5)


class _Connection:
    """What the reaper needs of a connection. Invariant: ``deadline`` bounds the phase in
    progress (infinite while a handler without a time limit runs); ``scope`` is the cancel
    scope the conversation runs in; ``turn`` counts the requests handled.

    A cancel lands at the connection task's next checkpoint, which may come after the phase
    it was meant for ended (the task was already woken): ``expired`` remembers which phase
    and turn the cancel was for, so the connection can tell such a stale cancel and resume
    the wait it interrupted.
    """

    __slots__ = ("phase", "deadline", "scope", "late", "turn", "expired")

    def __init__(self) -> None:
        self.phase = _IDLE
        self.deadline = math.inf
        self.scope: trio.CancelScope | None = None
        self.turn = 0
        self.expired: tuple[int, int] | None = None
        #: while a handler with a time limit runs: (the answer if it runs out of time,
        #: close after it, HEAD request)
        self.late: tuple[Response, bool, bool] | None = None

    def cancel(self) -> None:
        """End the phase in progress."""
        self.expired = (self.phase, self.turn)
        self.scope.cancel()


class _SocketIO:
    """Reads and writes of a plain ``trio.SocketStream``, straight on its socket (see the
    module docstring). Only the connection's task uses the socket."""

    __slots__ = ("stream", "fd")

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.fd = stream.socket.fileno()

    async def receive(self) -> bytes:
        fd = self.fd
        while True:  # ends with data, EOF or an error; a spurious wake-up waits again
            await trio.lowlevel.wait_readable(fd)
            try:
                return os.read(fd, _RECEIVE_BYTES)
            except BlockingIOError:
                continue
            except OSError as e:
                raise trio.BrokenResourceError(f"receive failed: {e}") from e

    async def send_all(self, data: bytes) -> None:
        try:
            sent = os.write(self.fd, data)
        except BlockingIOError:
            sent = 0
        except OSError as e:
            raise trio.BrokenResourceError(f"send failed: {e}") from e
        if sent < len(data):  # the socket's buffer is full: wait for room the trio way
            await self.stream.send_all(memoryview(data)[sent:])


class _StreamIO:
    """Reads and writes of any other stream (TLS), through its own methods."""

    __slots__ = ("receive", "send_all")

    def __init__(self, stream) -> None:
        self.send_all = stream.send_all
        receive_some = stream.receive_some
        self.receive = lambda: receive_some(_RECEIVE_BYTES)


def _reap_interval_s(shortest_timeout_s: float) -> float:
    return min(0.5, max(0.01, shortest_timeout_s / 8))


class _Server:
    def __init__(self, handler: Handler, limits: Limits) -> None:
        self.handler = handler
        self.limits = limits
        custom = getattr(handler, "body_limit", None)
        self.body_limit = custom if custom is not None else (lambda path: limits.max_body_bytes)
        self.authenticate = getattr(handler, "authenticate", None)
        self.time_limit = getattr(handler, "time_limit", None)
        self.reap_interval_s = _reap_interval_s(min(
            limits.header_timeout_s, limits.body_timeout_s, limits.idle_timeout_s,
            limits.send_timeout_s))
        self.connections: set[_Connection] = set()  # conversing (authenticated) ones
        self.open_connections = 0  # counted from accept, for the cap
        self.stopping = False
        self.conn_scope = trio.CancelScope(shield=True)  # outer cancel only starts the stop

    async def run_connections(self, task_status) -> None:
        with self.conn_scope:
            async with trio.open_nursery() as reaping:
                reaping.start_soon(self.reap)
                async with trio.open_nursery() as nursery:
                    self.stopped = trio.Event()
                    task_status.started(nursery)
                    await self.stopped.wait()
                reaping.cancel_scope.cancel()  # every connection has ended

    async def reap(self) -> None:
        """Cancel every connection whose phase outlived its deadline (see ``_Connection``)."""
        while True:  # until the server's connection nursery ends
            await trio.sleep(self.reap_interval_s)
            now = trio.current_time()
            for conn in self.connections:
                if conn.deadline <= now:
                    conn.cancel()

    def begin_stop(self) -> None:
        self.stopping = True
        for conn in self.connections:
            if conn.phase == _IDLE:
                conn.cancel()
        self.conn_scope.deadline = trio.current_time() + self.limits.stop_grace_s
        self.stopped.set()

    async def accept_loop(self, listener, nursery) -> None:
        while True:  # until cancelled
            try:
                stream = await listener.accept()
            except OSError as e:  # e.g. out of file descriptors: wait, do not spin
                log.warning("accept failed: %s", e)
                await trio.sleep(0.1)
                continue
            nursery.start_soon(self.serve_connection, stream)

    async def serve_connection(self, stream) -> None:
        try:
            if self.open_connections >= self.limits.max_connections:  # refused: not counted
                await self._send_and_close(stream, render(error_response(
                    503, f"more than {self.limits.max_connections} connections"), close=True))
                return
            self.open_connections += 1
            try:
                peer = None
                if self.authenticate is not None:
                    with trio.move_on_after(self.limits.handshake_timeout_s):
                        peer = await self.authenticate(stream)
                    if peer is None:
                        log.debug("a connection did not authenticate in time")
                        return
                await self._converse(stream, peer)
            finally:
                self.open_connections -= 1
        except (trio.BrokenResourceError, trio.ClosedResourceError) as e:
            log.debug("connection lost: %s", e)
        except Exception:  # a bug here must cost one connection, not the server
            log.exception("connection failed")
        finally:
            with trio.CancelScope(shield=True), trio.move_on_after(1):
                await stream.aclose()

    async def _send_and_close(self, stream, data: bytes) -> None:
        """Send a last answer, then read (and drop) what the client still sends for a moment,
        so that closing with unread bytes does not reset the connection before the client
        read the answer."""
        with trio.move_on_after(self.limits.send_timeout_s):
            await stream.send_all(data)
            if hasattr(stream, "send_eof"):
                await stream.send_eof()
        with trio.move_on_after(1):
            for _ in range(16):  # at most 16 receives
                if not await stream.receive_some(_RECEIVE_BYTES):
                    break

    async def _converse(self, stream, peer) -> None:
        reader = RequestReader(self.limits, self.body_limit, peer)
        io = _SocketIO(stream) if type(stream) is trio.SocketStream else _StreamIO(stream)
        conn = _Connection()
        self.connections.add(conn)
        try:
            pending = None  # an answer to send first: a handler's, given when it ran late
            while True:  # a new cancel scope after a handler ran late or a stale cancel
                with trio.CancelScope() as conn.scope:
                    last = await self._exchange(io, reader, conn, pending)
                if not conn.scope.cancelled_caught:
                    break
                # the reaper (or the stop) ended a phase
                phase = conn.phase
                stale = conn.expired != (phase, conn.turn)
                pending = None
                if phase == _HANDLING and conn.late is not None:
                    response, close, head_only = conn.late  # ran late, or cut off by a stale
                    conn.late = None                        # cancel: either way unanswered
                    close = close or self.stopping
                    pending = (render(response, close, head_only), close)
                    continue
                if stale and phase in (_IDLE, _HEAD, _BODY):
                    continue  # it cut off a wait for bytes: nothing was lost, wait again
                if phase not in (_HEAD, _BODY):
                    return  # idle, stopping, a client not taking its answer: close, no word
                what = "body" if phase == _BODY else "headers"
                last = self._flush(reader, 408, f"the request's {what} did not arrive in time")
                break
        finally:
            self.connections.discard(conn)
        if last is not None:
            await self._send_and_close(stream, last)

    async def _exchange(self, io, reader: RequestReader, conn: _Connection,
                        pending: tuple[bytes, bool] | None) -> bytes | None:
        """Send ``pending`` (an answer, close after it), then answer requests until the
        connection is to close; returns the last answer to send before closing (a refusal),
        if any."""
        limits = self.limits
        ready = reader.ready
        current_time = trio.current_time
        time_limit = self.time_limit
        if pending is not None:
            conn.phase, conn.deadline = _SENDING, current_time() + limits.send_timeout_s
            await io.send_all(pending[0])
            if pending[1]:
                return None
        while True:  # one receive per turn; ends on close, error or timeout
            while ready:  # answer every complete request, in order
                request, keep_alive = ready.popleft()
                conn.turn += 1
                head_only = request.method == "HEAD"
                limit = time_limit(request) if time_limit is not None else None
                if limit is None:
                    conn.late = None
                    conn.phase, conn.deadline = _HANDLING, math.inf
                else:
                    seconds, late = limit
                    conn.late = (late, not keep_alive, head_only)
                    conn.phase, conn.deadline = _HANDLING, current_time() + seconds
                    if seconds < 8 * self.reap_interval_s:  # keep its precision
                        self.reap_interval_s = _reap_interval_s(seconds)
                response = await self._answer(request)
                conn.late = None
                close = not keep_alive or self.stopping  # stopping may begin meanwhile
                conn.phase, conn.deadline = _SENDING, current_time() + limits.send_timeout_s
                await io.send_all(render(response, close, head_only))
                if close:
                    return None
            if reader.in_message:
                if reader.deadline is None:  # a phase began in the last bytes
                    reader.deadline = current_time() + (
                        limits.body_timeout_s if reader.head_done else limits.header_timeout_s)
                conn.phase = _BODY if reader.head_done else _HEAD
                conn.deadline = reader.deadline
                if reader.wants_continue():
                    await io.send_all(b"HTTP/1.1 100 Continue\r\n\r\n")
            else:
                if self.stopping:
                    return None
                conn.phase, conn.deadline = _IDLE, current_time() + limits.idle_timeout_s
            data = await io.receive()
            if not data:
                return None
            try:
                reader.feed(data)
            except httptools.HttpParserCallbackError as e:  # a callback raised
                refusal = e.__context__ if isinstance(e.__context__, Refuse) else None
                if refusal is None:
                    raise
                log.debug("refused a request: %d %s", refusal.status, refusal)
                return self._flush(reader, refusal.status, str(refusal))
            except httptools.HttpParserUpgrade:
                return self._flush(reader, 501, "protocol upgrades are not supported")
            except httptools.HttpParserError as e:
                log.debug("bad request bytes: %s", e)
                return self._flush(reader, 400, f"malformed HTTP/1.1 request: {e}")

    def _flush(self, reader: RequestReader, status: int, reason: str) -> bytes:
        """The error answer, after nothing: requests complete before the bad one are dropped
        with it (the client sees the connection close and may resend them)."""
        reader.ready.clear()
        return render(error_response(status, reason), close=True)

    async def _answer(self, request: Request) -> Response:
        try:
            return await self.handler(request)
        except Exception:
            log.exception("%s %s failed", request.method, request.path)
            return error_response(500, "internal error")


async def serve_http(handler: Handler, listeners: Sequence, *, limits: Limits = Limits(),
                     task_status=trio.TASK_STATUS_IGNORED) -> None:
    """Serve ``handler`` on ``listeners`` until cancelled; then stop gracefully (see the
    module docstring). ``task_status.started()`` once accepting."""
    server = _Server(handler, limits)
    async with trio.open_nursery() as nursery:
        connections = await nursery.start(server.run_connections)
        try:
            async with trio.open_nursery() as accepting:
                for listener in listeners:
                    accepting.start_soon(server.accept_loop, listener, connections)
                task_status.started()
        finally:
            server.begin_stop()
            with trio.CancelScope(shield=True), trio.move_on_after(1):
                for listener in listeners:
                    await listener.aclose()
