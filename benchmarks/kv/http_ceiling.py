"""An HTTP server's own ceiling: a server on trio that reads each request's body and answers
every POST with the same successful-write answer, with no Raft, no storage and no parsing
behind it. Whatever a KV node does per request comes on top of this, so its requests/s under
the same load generator bound what the KV API can reach on the machine.

    python benchmarks/kv/http_ceiling.py SERVER 127.0.0.1:0     # prints "listening HOST:PORT"

SERVER is one of:

* ``fastraft``: ``fastraft.kv.http_server`` (httptools) with a direct handler, as a KV node
  serves its API;
* ``fastraft-asgi``: the same server hosting an ASGI app through a minimal ASGI adapter
  (scope dict, receive and send callables): the cost of the ASGI call shape alone;
* ``h11``: h11's connection state machine driven directly from a trio stream (one task per
  connection, keep-alive): the pure-Python parser on the same footing;
* ``hypercorn``: hypercorn's trio worker serving the ASGI app, configured for keep-alive
  (no request cap per connection, no access log).

GET /metrics answers like a KV node that leads, pointing at itself, so that the load
generator's fastraft target finds it.
"""

from __future__ import annotations

import json
import logging
import sys

import trio

from fastraft.kv.http_server import Response, serve_http
from fastraft.kv.server import bind_http_listener

ANSWER = (b'{"Ok":{"log_id":{"leader_id":{"term":1,"node_id":1},"index":1},'
          b'"data":{"value":"v"}}}')
SERVERS = ("fastraft", "fastraft-asgi", "h11", "hypercorn")


def metrics_answer(addr: str) -> bytes:
    return json.dumps({"Ok": {
        "id": 1, "state": "Leader", "current_term": 1, "current_leader": 1,
        "last_log_index": 1, "membership_config": {"membership": {
            "nodes": {"1": {"addr": addr}}}}}}).encode()


class FixedAnswerApp:
    """The ASGI app: reads the body, answers ANSWER (or the metrics on /metrics)."""

    def __init__(self, addr: str) -> None:
        self.metrics = metrics_answer(addr)

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "lifespan":
            while True:  # startup, then shutdown
                message = await receive()
                done = message["type"] == "lifespan.shutdown"
                await send({"type": message["type"] + ".complete"})
                if done:
                    return
        if scope["type"] != "http":
            return
        more = True
        while more:  # one ASGI message per body chunk; the body ends it
            message = await receive()
            more = message.get("more_body", False) and message["type"] == "http.request"
        content = self.metrics if scope["path"] == "/metrics" else ANSWER
        await send({"type": "http.response.start", "status": 200, "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", b"%d" % len(content))]})
        await send({"type": "http.response.body", "body": content})


def asgi_handler(app):
    """A direct handler hosting the ASGI ``app``: one scope, receive and send per request."""

    async def handle(request):
        sent = []
        delivered = False

        async def receive():
            nonlocal delivered
            if delivered:
                return {"type": "http.disconnect"}
            delivered = True
            return {"type": "http.request", "body": request.body, "more_body": False}

        async def send(message):
            sent.append(message)

        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
                 "method": request.method, "scheme": "http", "path": request.path,
                 "raw_path": request.path.encode(), "query_string": request.query,
                 "root_path": "", "headers": request.headers, "client": None, "server": None}
        await app(scope, receive, send)
        start, body = sent[0], b"".join(m.get("body", b"") for m in sent[1:])
        ctype = next((v for n, v in start["headers"] if n == b"content-type"), b"text/plain")
        return Response(start["status"], body, ctype)

    return handle


async def serve_h11(listener, metrics: bytes) -> None:
    import h11

    async def connection(stream):
        conn = h11.Connection(h11.SERVER)
        async with stream:
            while True:  # one request per turn, until the client closes
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    data = await stream.receive_some(65536)
                    conn.receive_data(data)
                    if not data:
                        return
                    continue
                if isinstance(event, h11.Request):
                    path = event.target
                    while not isinstance(event, h11.EndOfMessage):  # the body, then its end
                        event = conn.next_event()
                        if event is h11.NEED_DATA:
                            conn.receive_data(await stream.receive_some(65536))
                    content = metrics if path == b"/metrics" else ANSWER
                    out = conn.send(h11.Response(status_code=200, headers=[
                        ("content-type", "application/json"),
                        ("content-length", str(len(content)))]))
                    out += conn.send(h11.Data(data=content)) + conn.send(h11.EndOfMessage())
                    await stream.send_all(out)
                    if conn.our_state is h11.MUST_CLOSE:
                        return
                    conn.start_next_cycle()
                elif isinstance(event, h11.ConnectionClosed):
                    return

    await trio.serve_listeners(connection, [listener])


async def main(server: str, addr: str) -> None:
    listener, bound = await bind_http_listener(addr)
    print(f"listening {bound}", flush=True)
    metrics = metrics_answer(bound)
    if server == "fastraft":
        async def fixed(request):
            return Response(200, metrics if request.path == "/metrics" else ANSWER)
        await serve_http(fixed, [listener])
    elif server == "fastraft-asgi":
        await serve_http(asgi_handler(FixedAnswerApp(bound)), [listener])
    elif server == "h11":
        await serve_h11(listener, metrics)
    else:
        from hypercorn.config import Config
        from hypercorn.trio import serve

        config = Config()
        config.bind = [f"fd://{listener.socket.detach()}"]
        config.accesslog = None
        config.errorlog = logging.getLogger("hypercorn")
        config.keep_alive_timeout = 30
        config.keep_alive_max_requests = 1 << 30  # a load generator keeps its connections
        await serve(FixedAnswerApp(bound), config)


if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in SERVERS:
        sys.exit(f"usage: http_ceiling.py {{{','.join(SERVERS)}}} [HOST:PORT]")
    trio.run(main, sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "127.0.0.1:0")
