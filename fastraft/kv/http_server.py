"""A small HTTP/1.1 server on trio that runs an ASGI application (the KV node's ``KVApp``).

Why not a general ASGI server: the KV API is small JSON requests over keep-alive connections,
and a general server's per-request machinery (an event object per protocol step, a socket
write for the head, another for the body and a third for the end of the message, a task
restarted per request for the idle timeout) cost more CPU per write than the whole Raft path
once writes are batched. Here a request costs one parse of its head, one ASGI call and one
socket write for the whole answer.

What it speaks: HTTP/1.1 and 1.0 requests with a ``Content-Length`` body (or none);
keep-alive by default on 1.1, ``Connection: close`` honoured; no chunked request bodies
(answered 501), no pipelining beyond reading requests one after another on a connection.

Bounds: a request head of at most ``max_head_bytes`` (else 431 and the connection closes),
``max_connections`` connections served at once (more wait in the listen backlog), a connection
idle for ``idle_timeout_s`` between requests, or stalled that long within a body, is closed. The body is handed to the app in
chunks as it reads it (``receive``), so the app's own bound on the body applies before the
bytes are read; a body the app did not read whole closes the connection after the answer.
"""

from __future__ import annotations

import logging

import trio

__all__ = ["serve_asgi_http"]

log = logging.getLogger("fastraft.kv.http")

_CHUNK_BYTES = 65536
_REASONS = {200: b"OK", 400: b"Bad Request", 404: b"Not Found", 405: b"Method Not Allowed",
            411: b"Length Required", 413: b"Content Too Large",
            431: b"Request Header Fields Too Large", 500: b"Internal Server Error",
            501: b"Not Implemented"}


class _BadHead(Exception):
    def __init__(self, status: int, reason: str) -> None:
        self.status = status
        self.reason = reason
        super().__init__(reason)


def _parse_head(head: bytes) -> tuple[str, str, bytes, str, list, int, bool]:
    """(method, path, query, http_version, headers, content_length, keep_alive) of a request
    head (without its final CRLF CRLF); _BadHead if it is not one this server takes."""
    lines = head.split(b"\r\n")
    parts = lines[0].split(b" ")
    if len(parts) != 3 or not parts[2].startswith(b"HTTP/1."):
        raise _BadHead(400, "malformed request line")
    method_b, target, version_b = parts
    version = version_b[5:].decode("ascii", "replace")
    if version not in ("1.1", "1.0") or not method_b.isalpha():
        raise _BadHead(400, "unsupported request line")
    headers = []
    content_length = 0
    keep_alive = version == "1.1"
    for line in lines[1:]:
        name, sep, value = line.partition(b":")
        if not sep or not name or name != name.strip():
            raise _BadHead(400, "malformed header line")
        name = name.lower()
        value = value.strip()
        headers.append((name, value))
        if name == b"content-length":
            if not value.isdigit():
                raise _BadHead(400, "Content-Length is not a number")
            content_length = int(value)
        elif name == b"transfer-encoding":
            raise _BadHead(501, "chunked request bodies are not supported; send Content-Length")
        elif name == b"connection":
            tokens = {t.strip() for t in value.lower().split(b",")}
            if b"close" in tokens:
                keep_alive = False
            elif b"keep-alive" in tokens:
                keep_alive = True
    path_b, _, query = target.partition(b"?")
    try:
        path = path_b.decode("ascii")
    except UnicodeDecodeError:
        raise _BadHead(400, "the request target is not ASCII") from None
    return method_b.decode("ascii"), path, query, version, headers, content_length, keep_alive


def _response_head(status: int, headers, body_len: int | None, close: bool) -> bytes:
    out = [b"HTTP/1.1 %d %s\r\n" % (status, _REASONS.get(status, b"Unknown"))]
    has_length = False
    for name, value in headers:
        if name.lower() == b"content-length":
            has_length = True
        out.append(b"%s: %s\r\n" % (name, value))
    if not has_length and body_len is not None:
        out.append(b"content-length: %d\r\n" % body_len)
    if close:
        out.append(b"connection: close\r\n")
    out.append(b"\r\n")
    return b"".join(out)


class _Connection:
    """One client connection: requests read and answered one after another."""

    def __init__(self, app, stream: trio.SocketStream, server: tuple, max_head_bytes: int,
                 idle_timeout_s: float) -> None:
        self.app = app
        self.stream = stream
        self.server = server
        self.max_head_bytes = max_head_bytes
        self.idle_timeout_s = idle_timeout_s
        self.buf = bytearray()
        try:
            peer = stream.socket.getpeername()
            self.client = (peer[0], peer[1])
        except OSError:
            self.client = None

    async def _fill(self) -> bool:
        data = await self.stream.receive_some(_CHUNK_BYTES)
        if not data:
            return False
        self.buf += data
        return True

    async def _read_head(self) -> bytes | None:
        """The next request head, or None when the client closed (or idled out) between
        requests."""
        with trio.move_on_after(self.idle_timeout_s):
            while True:  # bounded by max_head_bytes
                end = self.buf.find(b"\r\n\r\n")
                if end >= 0:
                    head = bytes(self.buf[:end])
                    del self.buf[:end + 4]
                    if len(head) > self.max_head_bytes:
                        raise _BadHead(431, "the request head is too large")
                    return head
                if len(self.buf) > self.max_head_bytes:
                    raise _BadHead(431, "the request head is too large")
                if not await self._fill():
                    return None
        return None

    async def run(self) -> None:
        try:
            while True:  # one request per turn; ends when the connection closes
                try:
                    head = await self._read_head()
                    if head is None:
                        return
                    head = head.lstrip(b"\r\n")  # stray CRLFs between requests (RFC 9112 §2.2)
                    if not head:
                        continue
                    parsed = _parse_head(head)
                except _BadHead as e:
                    body = e.reason.encode()
                    await self.stream.send_all(_response_head(
                        e.status, [(b"content-type", b"text/plain")], len(body), True) + body)
                    return
                if not await self._serve(*parsed):
                    return
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return
        finally:
            with trio.CancelScope(shield=True), trio.move_on_after(1):
                await self.stream.aclose()

    async def _serve(self, method, path, query, version, headers, length, keep_alive) -> bool:
        """Answer one request; True if the connection may carry another."""
        scope = {"type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"},
                 "http_version": version, "method": method, "scheme": "http", "path": path,
                 "raw_path": path.encode("ascii"), "query_string": query, "root_path": "",
                 "headers": headers, "client": self.client, "server": self.server}
        remaining = length
        disconnected = False

        async def receive():
            nonlocal remaining, disconnected
            if disconnected:
                return {"type": "http.disconnect"}
            if remaining == 0:
                return {"type": "http.request", "body": b"", "more_body": False}
            if not self.buf:
                filled = False
                with trio.move_on_after(self.idle_timeout_s):  # a stalled body frees its slot
                    filled = await self._fill()
                if not filled:
                    disconnected = True
                    return {"type": "http.disconnect"}
            take = min(remaining, len(self.buf), _CHUNK_BYTES)
            chunk = bytes(self.buf[:take])
            del self.buf[:take]
            remaining -= take
            return {"type": "http.request", "body": chunk, "more_body": remaining > 0}

        state = {"status": 0, "headers": (), "started": False, "done": False}

        async def send(message):
            kind = message["type"]
            if kind == "http.response.start":
                state["status"] = int(message["status"])
                state["headers"] = message.get("headers", ())
            elif kind == "http.response.body":
                if state["done"]:
                    return
                body = bytes(message.get("body", b""))
                more = message.get("more_body", False)
                close = not keep_alive or remaining > 0 or disconnected
                if not state["started"]:
                    state["started"] = True
                    head = _response_head(state["status"], state["headers"],
                                          None if more else len(body), close)
                    await self.stream.send_all(head + body if body else head)
                elif body:
                    await self.stream.send_all(body)
                state["done"] = not more

        try:
            await self.app(scope, receive, send)
        except Exception:
            log.exception("%s %s failed", method, path)
            if state["started"]:
                return False
            body = b"internal server error"
            await self.stream.send_all(_response_head(
                500, [(b"content-type", b"text/plain")], len(body), True) + body)
            return False
        if not state["done"]:
            return False  # the app did not finish its answer: the stream is unusable
        # a body the app did not read leaves the connection mid-request
        return keep_alive and remaining == 0 and not disconnected


async def serve_asgi_http(app, fd: int, *, max_connections: int = 1024,
                          max_head_bytes: int = 16384, idle_timeout_s: float = 30.0,
                          backlog: int = 1024, task_status=trio.TASK_STATUS_IGNORED) -> None:
    """Serve ``app`` on the bound TCP socket ``fd`` (this call owns it from now) until
    cancelled. ``task_status.started()`` once it listens."""
    import socket as stdlib_socket

    sock = trio.socket.from_stdlib_socket(stdlib_socket.socket(fileno=fd))
    try:
        sock.listen(backlog)
        name = sock.getsockname()
        server = (name[0], name[1])
        listener = trio.SocketListener(sock)
    except BaseException:
        sock.close()
        raise
    slots = trio.Semaphore(max_connections)

    async def handle(stream: trio.SocketStream) -> None:
        try:
            await _Connection(app, stream, server, max_head_bytes, idle_timeout_s).run()
        finally:
            slots.release()

    async with listener:
        async with trio.open_nursery() as nursery:
            task_status.started()
            while True:  # one accepted connection per turn, until cancelled
                await slots.acquire()  # wait for room before accepting
                try:
                    stream = await listener.accept()
                except BaseException:
                    slots.release()
                    raise
                nursery.start_soon(handle, stream)
