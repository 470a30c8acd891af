"""The KV node's HTTP API, one set of handlers: ``KVHandler`` routes each request to
``KVService`` (the API of ``fastraft.kv.api``) or, with the HTTP Raft network, to the node's
Raft RPC entry points (``fastraft.kv.http_network``). ``fastraft.kv.http_server`` calls it
directly; ``KVApp`` is a thin ASGI adapter over the same handler, so that any ASGI server
(hypercorn, uvicorn) can serve a node's API too.

Why two call shapes: behind the ASGI shape (a scope dict, receive and send awaitables, two
send messages per answer) the node's server answered a fixed reply 16% slower at 64 clients
(12,900 against 15,300 requests/s, 51 against 45 µs of CPU each; medians of 3 of
``benchmarks/kv/run_vs_etcd.py``'s ceiling rows), past the 10% a node can spare, so the
node's server takes ``Request`` objects and ASGI is an adapter for other servers.

Routes::

    POST /write  /read  /consistent_read            application API (JSON)
    POST /init  /add-learner  /change-membership  /remove-learner
                                                    admin API (JSON)
    GET  /metrics  /node                            this node's metrics, and who it is
    GET  /metrics/prometheus  /health               for operators (``fastraft.kv.ops``)
    POST /raft-vote  /raft-append  /raft-snapshot  /raft-timeout-now
                                                    Raft RPCs, codec frames (HTTP network only)

Over HTTPS (``tls``, an ``fastraft.kv.access.ApiTls``) every request is first checked against
the role its connection's certificate carries (read once, when the connection's handshake
completes): a route the role does not open gets 403 with the reason, before its body is
parsed, and nothing changes; a Raft message whose sender is not the certificate's node is
dropped with 403. ``refused`` counts both, by reason (``/metrics``).

Input is never trusted: a body over its bound (``body_limit``: checked by the server from
Content-Length before reading and while reading), bytes that are not JSON, JSON of the wrong
shape, an unknown path or method all get a 4xx answer saying what was wrong; nothing is
changed and the node goes on serving. An unexpected exception in a handler is logged and
answered with 500.
"""

from __future__ import annotations

import logging
from collections import Counter

import trio

from ..codec import DEFAULT_MAX_FRAME_BYTES
from .answers import err_body, error_json, error_status, ok_body
from .api import (MAX_BODY_BYTES, BadRequest, parse_add_learner, parse_change_membership,
                  parse_init, parse_json, parse_key, parse_remove_learner, parse_write)
from .http_network import RAFT_ROUTES, handle_raft_rpc
from .access import ApiTls, authorize, identify
from .http_message import Request, Response
from .ops import OpsRoutes
from .service import KVService

__all__ = ["KVHandler", "KVApp"]

log = logging.getLogger("fastraft.kv.app")

_JSON = b"application/json"


class _Disconnected(Exception):
    """The client went away before its request body arrived."""


class KVHandler:
    """The handler of one KV node: ``await handler(Request) -> Response``. ``raft_rpc``
    serves the Raft RPC routes (HTTP network); ``tls``: the HTTPS API's roles (the server then
    calls ``authenticate`` once per connection)."""

    def __init__(self, service: KVService, *, raft_rpc: bool = False,
                 max_body_bytes: int = MAX_BODY_BYTES,
                 max_rpc_bytes: int = DEFAULT_MAX_FRAME_BYTES,
                 tls: ApiTls | None = None) -> None:
        self.service = service
        self.tls = tls
        self.refused: Counter = Counter()  # requests refused: "role" or "sender"
        if tls is not None:  # the server looks for this method: only with TLS
            self.authenticate = self._authenticate
        service.refused = self.refused  # shown in /metrics
        self.raft_rpc = raft_rpc
        self.max_body_bytes = max_body_bytes
        self.max_rpc_bytes = max_rpc_bytes
        s = service
        self._post = {
            "/write": self._write,
            "/read": self._read,
            "/consistent_read": self._consistent_read,
            "/init": self._init,
            "/add-learner": self._add_learner,
            "/change-membership": self._change_membership,
            "/remove-learner": self._remove_learner,
        }
        self._get = {"/metrics": s.metrics, "/node": s.node_info}
        # the answers of a write and a consistent read that ran out of time (time_limit)
        self._limits = {
            "/write": (s.write_timeout_s,
                       Response(200, err_body(error_json(s.write_late(), write=True)))),
            "/consistent_read": (s.read_timeout_s, Response(200, err_body(error_json(
                s.read_late())))),
        }
        self._ops = OpsRoutes(service)  # /health, /metrics/prometheus (fastraft.kv.ops)

    def body_limit(self, path: str) -> int:
        """The most body bytes a request to ``path`` may carry."""
        return self.max_rpc_bytes if self.raft_rpc and path in RAFT_ROUTES else self.max_body_bytes

    def time_limit(self, request: Request) -> tuple[float, Response] | None:
        """How long ``request`` may take, and the answer if it takes longer (a write:
        OutcomeUnknown; a consistent read: Unavailable); None: its handler bounds itself.
        The caller keeps the bound: the node's server, or ``KVApp``."""
        return self._limits.get(request.path)

    async def _authenticate(self, stream):
        return await identify(stream, self.tls)

    async def __call__(self, request: Request) -> Response:
        method, path, body = request.method, request.path, request.body
        if self.tls is not None:
            peer = request.peer
            reason = ("the connection is not authenticated (serve the API with "
                      "fastraft.kv.http_server)" if peer is None else authorize(peer, path))
            if reason is not None:
                self.refused["role"] += 1
                log.debug("403 %s %s: %s", method, path, reason)
                return Response(403, err_body({"Forbidden": {"reason": reason}}))
        if len(body) > self.body_limit(path):
            return Response(413, err_body({"BadRequest": {"reason": (
                f"the body is {len(body)} bytes; at most {self.body_limit(path)} "
                "are accepted")}}))
        try:
            if self.raft_rpc and path in RAFT_ROUTES:
                if method != "POST":
                    raise _MethodNotAllowed("POST")
                sender = request.peer.node_id if self.tls is not None else None
                status, content, ctype = await handle_raft_rpc(
                    self.service.raft, path, body, self.max_rpc_bytes, sender)
                if status == 403:
                    self.refused["sender"] += 1
                return Response(status, content, ctype)
            ops = self._ops.answer(method, path, request.headers, request.query)
            if ops is not None:
                return Response(*ops)
            handler = self._post.get(path)
            if handler is not None:
                if method != "POST":
                    raise _MethodNotAllowed("POST")
                status, content = await handler(body)
            elif path in self._get:
                if method != "GET":
                    raise _MethodNotAllowed("GET")
                status, content = 200, ok_body(self._get[path]())
            else:
                return Response(404, err_body({"BadRequest": {
                    "reason": f"no such endpoint: {method} {path}"}}))
        except _MethodNotAllowed as e:
            return Response(405, err_body({"BadRequest": {
                "reason": f"{path} takes {e.allowed}, not {method}"}}), _JSON,
                ((b"allow", e.allowed.encode()),))
        except BadRequest as e:
            status, content = 400, err_body(error_json(e))
        except Exception as e:
            log.exception("%s %s failed", method, path)
            status, content = 500, err_body(error_json(e))
        return Response(status, content)

    # -- handlers: body bytes -> (status, answer bytes) -----------------------------------------

    async def _write(self, body: bytes) -> tuple[int, bytes]:
        command = parse_write(body)
        try:
            return 200, ok_body(await self.service.write(command))
        except Exception as e:
            return _error(e, write=True)

    async def _read(self, body: bytes) -> tuple[int, bytes]:
        key = parse_key(parse_json(body))
        try:
            return 200, ok_body(await self.service.read(key))
        except Exception as e:
            return _error(e)

    async def _consistent_read(self, body: bytes) -> tuple[int, bytes]:
        key = parse_key(parse_json(body))
        try:
            return 200, ok_body(await self.service.consistent_read(key))
        except Exception as e:
            return _error(e)

    async def _init(self, body: bytes) -> tuple[int, bytes]:
        members = parse_init(parse_json(body))
        try:
            return 200, ok_body(await self.service.init(members))
        except Exception as e:
            return _error(e)

    async def _add_learner(self, body: bytes) -> tuple[int, bytes]:
        node_id, addr, raft_addr = parse_add_learner(parse_json(body))
        try:
            return 200, ok_body(await self.service.add_learner(node_id, addr, raft_addr))
        except Exception as e:
            return _error(e)

    async def _change_membership(self, body: bytes) -> tuple[int, bytes]:
        voters = parse_change_membership(parse_json(body))
        try:
            return 200, ok_body(await self.service.change_membership(voters))
        except Exception as e:
            return _error(e)

    async def _remove_learner(self, body: bytes) -> tuple[int, bytes]:
        node_ids = parse_remove_learner(parse_json(body))
        try:
            return 200, ok_body(await self.service.remove_learner(node_ids))
        except Exception as e:
            return _error(e)


def _error(error: Exception, write: bool = False) -> tuple[int, bytes]:
    doc = error_json(error, write=write)
    status = error_status(doc)
    if status == 500:
        log.error("request failed: %s: %s", type(error).__name__, error)
    return status, err_body(doc)


class _MethodNotAllowed(Exception):
    def __init__(self, allowed: str) -> None:
        self.allowed = allowed


async def _read_body(scope, receive, limit: int) -> bytes:
    """The whole request body, refused (BadRequest) past ``limit`` bytes."""
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                declared = int(value)
            except ValueError:
                raise BadRequest("Content-Length is not a number") from None
            if declared > limit:
                raise BadRequest(f"the body is {declared} bytes; at most {limit} are accepted")
    chunks = []
    size = 0
    while True:  # one ASGI message per chunk; bounded by ``limit``
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _Disconnected()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BadRequest(f"the body exceeds {limit} bytes")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def _respond(send, response: Response) -> None:
    headers = [(b"content-type", response.content_type),
               (b"content-length", b"%d" % len(response.body))]
    headers.extend(response.headers)
    await send({"type": "http.response.start", "status": response.status, "headers": headers})
    await send({"type": "http.response.body", "body": response.body})


async def _lifespan(receive, send) -> None:
    while True:  # the server sends startup, then shutdown
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


class KVApp:
    """The ASGI app of one KV node: reads the body (bounded as ``KVHandler.body_limit``
    says), then answers what the node's ``KVHandler`` answers."""

    def __init__(self, service: KVService, **options) -> None:
        self.handler = KVHandler(service, **options)

    async def __call__(self, scope, receive, send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await _lifespan(receive, send)
            return
        if kind != "http":
            return
        path = scope["path"]
        try:
            body = await _read_body(scope, receive, self.handler.body_limit(path))
        except _Disconnected:
            return
        except BadRequest as e:
            await _respond(send, Response(413, err_body(error_json(e))))
            return
        q = scope.get("query_string", b"")
        request = Request(scope["method"], path, q, list(scope.get("headers", ())), body)
        limit = self.handler.time_limit(request)
        if limit is None:
            response = await self.handler(request)
        else:
            response = limit[1]  # unless the handler answers in time
            with trio.move_on_after(limit[0]):
                response = await self.handler(request)
        await _respond(send, response)
