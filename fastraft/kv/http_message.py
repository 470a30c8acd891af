"""HTTP/1.1 messages for ``fastraft.kv.http_server``: what a server holds at most
(``Limits``), a request as the handler sees it (``Request``), its answer (``Response``),
the parser's callbacks for one connection (``RequestReader``) and an answer's bytes
(``render``).

The parser is httptools (llhttp, Node.js's HTTP parser, in C); request line, headers,
chunked framing and keep-alive rules all come from it, none are parsed here. It was picked
over h11 by measurement (``benchmarks/kv/http_ceiling.py``: the same fixed answer served at
half h11's CPU per request; see ``fastraft.kv.http_server``).
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from email.utils import formatdate
from http import HTTPStatus
from typing import Callable, Sequence

import httptools
import orjson

__all__ = ["Limits", "Request", "Response", "Refuse", "RequestReader", "render",
           "error_response"]


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
    #: an answer not taken by the client within this long closes its connection
    send_timeout_s: float = 30.0
    stop_grace_s: float = 5.0

    def __post_init__(self) -> None:
        for name in ("max_header_bytes", "max_body_bytes", "max_connections", "max_pipelined"):
            if type(getattr(self, name)) is not int or getattr(self, name) <= 0:
                raise ValueError(f"{name} must be a positive integer")
        for name in ("handshake_timeout_s", "header_timeout_s", "body_timeout_s",
                     "idle_timeout_s", "send_timeout_s", "stop_grace_s"):
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


class Refuse(Exception):
    """Answer ``status`` with ``reason`` and close the connection."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status


class RequestReader:
    """httptools' callbacks for one connection: collects requests as they complete.

    ``feed(data)`` hands the parser the bytes read; complete requests land in ``ready``.
    A callback that finds a limit passed raises ``Refuse``, which httptools hands back
    wrapped in its ``HttpParserCallbackError``.

    Invariant: ``ready`` holds complete requests in arrival order; a request in progress holds
    at most ``max_header_bytes`` of head and its path's body limit of body.
    """

    __slots__ = ("limits", "peer", "body_limit", "ready", "in_message", "head_done",
                 "continue_sent", "parser", "feed", "url", "headers", "head_bytes",
                 "body_chunks", "body_bytes", "limit", "deadline")

    def __init__(self, limits: Limits, body_limit: Callable[[str], int], peer=None) -> None:
        self.limits = limits
        self.peer = peer
        self.body_limit = body_limit
        self.ready: deque = deque()  # (Request, keep-alive after it), in arrival order
        self.in_message = False
        self.head_done = False
        self.continue_sent = False
        #: when the phase in progress (head, then body) must end; None: not yet set by the
        #: server (a phase began in the bytes just fed)
        self.deadline: float | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.feed = self.parser.feed_data
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
        self.continue_sent = False
        self.deadline = None  # the head's, set by the server after this feed
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
            raise Refuse(431, f"the request head exceeds {self.limits.max_header_bytes} bytes")

    def on_headers_complete(self) -> None:
        self.head_done = True
        self.deadline = None  # now the body's
        self.limit = self.body_limit(self._path())
        for name, value in self.headers:
            # llhttp has already refused a malformed or repeated-and-different Content-Length
            if name == b"content-length" and int(value) > self.limit:
                raise Refuse(413, f"the body is {int(value)} bytes; at most {self.limit} "
                                  "are accepted")

    def on_body(self, chunk: bytes) -> None:
        self.body_bytes += len(chunk)
        if self.body_bytes > self.limit:
            raise Refuse(413, f"the body exceeds {self.limit} bytes")
        self.body_chunks.append(chunk)

    def on_message_complete(self) -> None:
        if len(self.ready) >= self.limits.max_pipelined:
            raise Refuse(429, f"more than {self.limits.max_pipelined} requests pipelined "
                              "ahead of their answers")
        url = self.url
        q = url.find(b"?")
        chunks = self.body_chunks
        body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        if q < 0:
            path, query = url.decode("latin-1"), b""
        else:
            path, query = url[:q].decode("latin-1"), url[q + 1:]
        request = Request(self.parser.get_method().decode("latin-1"), path, query,
                          self.headers, body, self.peer)
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
    """The Date header line, formatted at most once a second."""

    second = -1
    line = b""

    @classmethod
    def now(cls) -> bytes:
        s = int(time.time())
        if s != cls.second:
            cls.second, cls.line = s, b"\r\ndate: " + formatdate(s, usegmt=True).encode()
        return cls.line


_STATUS_LINES = {s.value: b"HTTP/1.1 %d %s" % (s.value, s.phrase.encode()) for s in HTTPStatus}


def render(response: Response, close: bool, head_only: bool = False) -> bytes:
    """The bytes of ``response``: status line, headers, body (none for ``head_only``)."""
    status = response.status
    body = response.body
    head = (_STATUS_LINES.get(status) or b"HTTP/1.1 %d " % status) + _Date.now()
    head += b"\r\ncontent-type: %s\r\ncontent-length: %d" % (response.content_type, len(body))
    for name, value in response.headers:
        head += b"\r\n" + name + b": " + value
    if close:
        head += b"\r\nconnection: close"
    return head + b"\r\n\r\n" + (b"" if head_only else body)


def error_response(status: int, reason: str) -> Response:
    return Response(status, orjson.dumps({"Err": {"BadRequest": {"reason": reason}}}))
