"""A small HTTP/1.1 server for trio: one task per connection, keep-alive, pipelined requests
answered in order, every answer written in one send, and a bound on everything a client can
make it hold.

    async with trio.open_nursery() as nursery:
        listeners = await trio.open_tcp_listeners(8080, host="127.0.0.1")
        await nursery.start(serve_http, handler, listeners)

``handler(request)`` is an async callable taking a ``Request`` (the whole body already read)
and returning a ``Response``; it may define ``body_limit(path) -> int`` to accept bodies
larger or smaller than ``Limits.max_body_bytes`` on some paths. The listeners are any
``trio.abc.Listener`` of byte streams, so a TLS listener (``fastraft.net.tls_stream``'s
``TlsListener``) serves HTTPS unchanged. A handler may also define ``async authenticate(stream)
-> peer``: called once per connection before its first request (the TLS handshake runs there,
bounded by ``Limits.handshake_timeout_s``), its result is every request's ``peer``; if it raises a stream
error the connection is closed without a word.

The parser is httptools (llhttp, Node.js's HTTP parser, in C); request line, headers,
chunked framing and keep-alive rules all come from it. It was picked over h11 by measurement:
``benchmarks/kv/run_vs_etcd.py`` runs ``http_ceiling.py``, a fixed answer served by this
server, by h11 driven from a trio stream and by hypercorn, under the same closed-loop load (64
keep-alive clients) in one run. Medians of 3 on 2 shared cores: this server 15,300 requests/s
at 45 µs of server CPU each, h11 8,200 at 94 µs, hypercorn 1,150 at 460 µs. h11 would spend
twice the CPU per request on parsing alone.

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
* bytes that are not HTTP/1.1: 400 and close, logged at debug, never a traceback.

Stopping: cancelling ``serve_http`` closes the listeners, closes idle connections, lets the
requests in flight finish for up to ``Limits.stop_grace_s`` (each answered with
``connection: close``), then cancels what is left.
"""

from __future__ import annotations

import json
import logging
import time
from collections import deque
from dataclasses import dataclass, field
from email.utils import formatdate
from http import HTTPStatus
from typing import Awaitable, Callable, Sequence

import httptools
import trio

__all__ = ["Limits", "Request", "Response", "serve_http"]

log = logging.getLogger("fastraft.kv.http")

_RECEIVE_BYTES = 65536


@dataclass(frozen=True)
class Limits:
    """What one server holds at most, and how long it waits for a client."""

    max_header_bytes: int = 16384
    max_body_bytes: int = 1 << 20
    max_connections: int = 1000
    max_pipelined: int = 128
    handshake_timeout_s: float = 10.0
    header_timeout_s: float = 10.0
    body_timeout_s: float = 30.0
    idle_timeout_s: float = 60.0
    stop_grace_s: float = 5.0

    def __post_init__(self) -> None:
        for name in ("max_header_bytes", "max_body_bytes", "max_connections", "max_pipelined"):
            if type(getattr(self, name)) is not int or getattr(self, name) <= 0:
                raise ValueError(f"{name} must be a positive integer")
        for name in ("handshake_timeout_s", "header_timeout_s", "body_timeout_s", "idle_timeout_s", "stop_grace_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive")


@dataclass(slots=True)
class Request:
    method: str
    path: str  # without the query
    query: bytes
    headers: list  # [(lower-case name, value)] as bytes, in arrival order
    body: bytes
    peer: object = None  # what the handler's ``authenticate`` said of the connection


@dataclass(slots=True)
class Response:
    status: int
    body: bytes = b""
    content_type: bytes = b"application/json"
    headers: Sequence[tuple[bytes, bytes]] = field(default_factory=tuple)


Handler = Callable[[Request], Awaitable[Response]]


class _Refuse(Exception):
    """Answer ``status`` with ``reason`` and close the connection."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status


class _Message:
    """httptools' callbacks for one connection: collects requests as they complete.

    Invariant: ``ready`` holds complete requests in arrival order; a request in progress holds
    at most ``max_header_bytes`` of head and its path's body limit of body.
    """

    def __init__(self, limits: Limits, body_limit, peer=None) -> None:
        self.limits = limits
        self.peer = peer
        self.body_limit = body_limit
        self.ready: deque = deque()  # (Request, keep-alive after it), in arrival order
        self.in_message = False
        self.head_done = False
        self.deadline = None
        self.continue_sent = False
        self.parser = httptools.HttpRequestParser(self)
        self._reset()

    def _reset(self) -> None:
        self.url = b""
        self.headers: list = []
        self.head_bytes = 0
        self.body_chunks: list = []
        self.body_bytes = 0
        self.limit = self.limits.max_body_bytes

    def on_message_begin(self) -> None:
        self.in_message = True
        self.head_done = False
        self.deadline = None  # the head's deadline, set by the server after this feed
        self.continue_sent = False
        self._reset()

    def on_url(self, url: bytes) -> None:
        self.url += url
        self._count_head(len(url))

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count_head(len(name) + len(value) + 4)
        self.headers.append((name.lower(), value))

    def _count_head(self, n: int) -> None:
        self.head_bytes += n
        if self.head_bytes > self.limits.max_header_bytes:
            raise _Refuse(431, f"the request head exceeds {self.limits.max_header_bytes} bytes")

    def on_headers_complete(self) -> None:
        self.head_done = True
        self.deadline = None  # now the body's deadline
        self.limit = self.body_limit(self._path())
        for name, value in self.headers:
            # llhttp has already refused a malformed or repeated-and-different Content-Length
            if name == b"content-length" and int(value) > self.limit:
                raise _Refuse(413, f"the body is {int(value)} bytes; at most {self.limit} "
                                   "are accepted")

    def on_body(self, chunk: bytes) -> None:
        self.body_bytes += len(chunk)
        if self.body_bytes > self.limit:
            raise _Refuse(413, f"the body exceeds {self.limit} bytes")
        self.body_chunks.append(chunk)

    def on_message_complete(self) -> None:
        if len(self.ready) >= self.limits.max_pipelined:
            raise _Refuse(429, f"more than {self.limits.max_pipelined} requests pipelined "
                               "ahead of their answers")
        path = self._path()
        url = self.url
        q = url.find(b"?")
        chunks = self.body_chunks
        body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        request = Request(self.parser.get_method().decode("latin-1"), path,
                          url[q + 1:] if q >= 0 else b"", self.headers, body, self.peer)
        self.ready.append((request, self.parser.should_keep_alive()))
        self.in_message = False
        self.head_done = False

    def _path(self) -> str:
        url = self.url
        q = url.find(b"?")
        return (url[:q] if q >= 0 else url).decode("latin-1")

    def wants_continue(self) -> bool:
        """Whether the request in progress waits for ``100 Continue`` before its body (sent
        once, after its Content-Length passed the limit check)."""
        if not self.in_message or not self.head_done or self.continue_sent:
            return False
        self.continue_sent = any(n == b"expect" and v.lower() == b"100-continue"
                                 for n, v in self.headers)
        return self.continue_sent


class _Date:
    """The Date header, formatted at most once a second."""

    second = -1
    value = b""

    @classmethod
    def now(cls) -> bytes:
        s = int(time.time())
        if s != cls.second:
            cls.second, cls.value = s, formatdate(s, usegmt=True).encode()
        return cls.value


def _render(response: Response, close: bool, head_only: bool = False) -> bytes:
    try:
        phrase = HTTPStatus(response.status).phrase.encode()
    except ValueError:
        phrase = b""
    body = response.body
    lines = [b"HTTP/1.1 %d %s" % (response.status, phrase), b"date: " + _Date.now(),
             b"content-type: " + response.content_type, b"content-length: %d" % len(body)]
    lines.extend(name + b": " + value for name, value in response.headers)
    if close:
        lines.append(b"connection: close")
    lines.append(b"\r\n")
    return b"\r\n".join(lines) + (b"" if head_only else body)


def _error_response(status: int, reason: str) -> Response:
    return Response(status, json.dumps({"Err": {"BadRequest": {"reason": reason}}}).encode())


class _Server:
    def __init__(self, handler: Handler, limits: Limits) -> None:
        self.handler = handler
        self.limits = limits
        custom = getattr(handler, "body_limit", None)
        self.body_limit = custom if custom is not None else (lambda path: limits.max_body_bytes)
        self.authenticate = getattr(handler, "authenticate", None)
        self.connections = 0
        self.stopping = False
        self.idle_scopes: set = set()  # cancel scopes of connections waiting for a request
        self.conn_scope = trio.CancelScope(shield=True)  # outer cancel only starts the stop

    async def run_connections(self, task_status) -> None:
        with self.conn_scope:
            async with trio.open_nursery() as nursery:
                self.stopped = trio.Event()
                task_status.started(nursery)
                await self.stopped.wait()

    def begin_stop(self) -> None:
        self.stopping = True
        for scope in list(self.idle_scopes):
            scope.cancel()
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
            if self.connections >= self.limits.max_connections:  # refused ones do not count
                await self._send_and_close(stream, _render(_error_response(
                    503, f"more than {self.limits.max_connections} connections"), close=True))
                return
            self.connections += 1
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
                self.connections -= 1
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
        with trio.move_on_after(self.limits.header_timeout_s):
            await stream.send_all(data)
            if hasattr(stream, "send_eof"):
                await stream.send_eof()
        with trio.move_on_after(1):
            for _ in range(16):  # at most 16 receives
                if not await stream.receive_some(_RECEIVE_BYTES):
                    break

    async def _converse(self, stream, peer) -> None:
        limits = self.limits
        msg = _Message(limits, self.body_limit, peer)
        while True:  # one receive per turn; ends on close, error or timeout
            while msg.ready:  # answer every complete request, in order
                request, keep_alive = msg.ready.popleft()
                response = await self._answer(request)
                close = not keep_alive or self.stopping  # stopping may begin meanwhile
                await stream.send_all(_render(response, close, request.method == "HEAD"))
                if close:
                    return
            if self.stopping and not msg.in_message:
                return
            if msg.wants_continue():
                await stream.send_all(b"HTTP/1.1 100 Continue\r\n\r\n")
            idle = not msg.in_message
            deadline = trio.current_time() + limits.idle_timeout_s if idle else msg.deadline
            with trio.CancelScope(deadline=deadline) as scope:
                if idle:
                    self.idle_scopes.add(scope)
                try:
                    data = await stream.receive_some(_RECEIVE_BYTES)
                finally:
                    self.idle_scopes.discard(scope)
            if scope.cancelled_caught:
                if idle:
                    return  # idle timeout or stopping: close without a word
                phase = "body" if msg.head_done else "headers"
                await self._send_and_close(stream, self._flush(
                    msg, 408, f"the request's {phase} did not arrive in time"))
                return
            if not data:
                return
            try:
                msg.parser.feed_data(data)
            except httptools.HttpParserCallbackError as e:  # a callback raised
                refusal = e.__context__ if isinstance(e.__context__, _Refuse) else None
                if refusal is None:
                    raise
                log.debug("refused a request: %d %s", refusal.status, refusal)
                await self._send_and_close(stream, self._flush(
                    msg, refusal.status, str(refusal)))
                return
            except httptools.HttpParserUpgrade:
                await self._send_and_close(stream, self._flush(
                    msg, 501, "protocol upgrades are not supported"))
                return
            except httptools.HttpParserError as e:
                log.debug("bad request bytes: %s", e)
                await self._send_and_close(stream, self._flush(
                    msg, 400, f"malformed HTTP/1.1 request: {e}"))
                return
            if msg.in_message and msg.deadline is None:  # a phase began in these bytes
                msg.deadline = trio.current_time() + (
                    limits.body_timeout_s if msg.head_done else limits.header_timeout_s)

    def _flush(self, msg: _Message, status: int, reason: str) -> bytes:
        """The error answer, after nothing: requests complete before the bad one are dropped
        with it (the client sees the connection close and may resend them)."""
        msg.ready.clear()
        return _render(_error_response(status, reason), close=True)

    async def _answer(self, request: Request) -> Response:
        try:
            return await self.handler(request)
        except Exception:
            log.exception("%s %s failed", request.method, request.path)
            return _error_response(500, "internal error")


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
