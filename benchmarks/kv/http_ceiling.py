"""The HTTP server's own ceiling: hypercorn's trio worker, configured exactly as a KV node
configures it (``fastraft.kv.server``), serving an ASGI app that reads each request's body
and answers every POST with the same successful-write answer, with no Raft, no storage and
no parsing behind it. Whatever a KV node does per request comes on top of this, so its
requests/s under the same load generator bound what the KV API can reach on the machine.

    python benchmarks/kv/http_ceiling.py 127.0.0.1:0     # prints "listening HOST:PORT"

GET /metrics answers like a KV node that leads, pointing at itself, so that the load
generator's fastraft target finds it.
"""

from __future__ import annotations

import json
import sys

import trio

from fastraft.kv.server import _bind_http_socket, _hypercorn_config

ANSWER = (b'{"Ok":{"log_id":{"leader_id":{"term":1,"node_id":1},"index":1},'
          b'"data":{"value":"v"}}}')


class FixedAnswerApp:
    def __init__(self, addr: str) -> None:
        self.metrics = json.dumps({"Ok": {
            "id": 1, "state": "Leader", "current_term": 1, "current_leader": 1,
            "last_log_index": 1, "membership_config": {"membership": {
                "nodes": {"1": {"addr": addr}}}}}}).encode()

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


async def main(addr: str) -> None:
    from hypercorn.trio import serve

    fd, bound = _bind_http_socket(addr)
    print(f"listening {bound}", flush=True)
    await serve(FixedAnswerApp(bound), _hypercorn_config(fd))


if __name__ == "__main__":
    trio.run(main, sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:0")
