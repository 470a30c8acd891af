"""The KV HTTP server (``fastraft.kv.http_server``) over real sockets on 127.0.0.1: keep-alive,
pipelining, every limit, slow and silent clients, garbage, graceful stop; and ``KVApp`` (the
ASGI adapter) under hypercorn. Timeouts are set small and checked by polling up to generous
deadlines; nothing asserts how long anything took. Answers are parsed with httptools'
response parser, not by hand."""

import json
import logging

import httptools
import httpx
import pytest
import trio

from fastraft.kv.http_server import Limits, Response, serve_http

DEADLINE_S = 20  # generous: the machine may be busy


class Answers:
    """Responses parsed from a byte stream: (status, {header: value}, body) each."""

    def __init__(self) -> None:
        self.done: list = []
        self.parser = httptools.HttpResponseParser(self)
        self.headers: dict = {}
        self.body = b""

    def on_header(self, name, value):
        self.headers[name.decode().lower()] = value.decode()

    def on_body(self, chunk):
        self.body += chunk

    def on_message_complete(self):
        self.done.append((self.parser.get_status_code(), self.headers, self.body))
        self.headers, self.body = {}, b""


async def receive_answers(stream, n: int, *, closed: bool = False):
    """Read until ``n`` answers arrived (and, with ``closed``, the server closed)."""
    answers = Answers()
    with trio.fail_after(DEADLINE_S):
        while len(answers.done) < n or closed:  # bounded by fail_after
            data = await stream.receive_some(65536)
            if not data:
                break
            answers.parser.feed_data(data)
    assert len(answers.done) >= n, answers.done
    return answers.done


async def echo(request):
    """Answers the body's length; ``/slow`` waits first, ``/boom`` fails."""
    if request.path == "/slow":
        await trio.sleep(0.3)
    if request.path == "/boom":
        raise RuntimeError("handler bug")
    return Response(200, json.dumps({"path": request.path, "length": len(request.body),
                                     "method": request.method}).encode())


def serving(limits=Limits(), handler=echo):
    """Decorator: run the test body with the server on a free port, then stop it."""

    def wrap(body):
        def test():
            async def main():
                listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
                port = listeners[0].socket.getsockname()[1]
                async with trio.open_nursery() as nursery:
                    scope = trio.CancelScope()

                    async def server(task_status):
                        with scope:
                            await serve_http(handler, listeners, limits=limits,
                                             task_status=task_status)

                    await nursery.start(server)
                    await body(port, scope)
                    scope.cancel()

            trio.run(main)

        test.__name__ = body.__name__
        test.__doc__ = body.__doc__
        return test

    return wrap


def post(path: str, body: bytes = b"", extra: str = "") -> bytes:
    return (f"POST {path} HTTP/1.1\r\nhost: t\r\ncontent-length: {len(body)}\r\n{extra}\r\n"
            .encode() + body)


@serving()
async def test_keep_alive_serves_many_requests_on_one_connection(port, _):
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    for i in range(5):
        await stream.send_all(post("/w", b"x" * i))
        [(status, headers, body)] = await receive_answers(stream, 1)
        assert status == 200 and json.loads(body)["length"] == i
        assert headers.get("connection") != "close"
    await stream.aclose()


@serving()
async def test_pipelined_requests_are_answered_in_order(port, _):
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    # the first is slow: the others must still come after it, in order
    await stream.send_all(post("/slow", b"1") + post("/a", b"22") + post("/b", b"333"))
    answers = await receive_answers(stream, 3)
    assert [json.loads(b)["path"] for _, _, b in answers] == ["/slow", "/a", "/b"]
    assert [json.loads(b)["length"] for _, _, b in answers] == [1, 2, 3]
    await stream.aclose()


@serving(Limits(max_pipelined=4))
async def test_requests_pipelined_past_the_bound_get_429_and_a_close(port, _):
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    await stream.send_all(post("/a") * 4)
    assert [s for s, _, _ in await receive_answers(stream, 4)] == [200] * 4
    await stream.send_all(post("/a") * 5)
    [(status, headers, _)] = await receive_answers(stream, 1, closed=True)
    assert status == 429 and headers["connection"] == "close"


@serving(Limits(max_header_bytes=1024))
async def test_a_head_over_the_limit_gets_431_and_a_close(port, _):
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    await stream.send_all(post("/w", b"", extra=f"x-big: {'a' * 2000}\r\n"))
    [(status, headers, body)] = await receive_answers(stream, 1, closed=True)
    assert status == 431 and headers["connection"] == "close"
    assert "1024" in json.loads(body)["Err"]["BadRequest"]["reason"]


@serving(Limits(max_body_bytes=100))
async def test_a_declared_body_over_the_limit_gets_413_before_it_is_sent(port, _):
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    # only the head: the server must answer from Content-Length alone
    await stream.send_all(b"POST /w HTTP/1.1\r\nhost: t\r\ncontent-length: 101\r\n\r\n")
    [(status, headers, body)] = await receive_answers(stream, 1, closed=True)
    assert status == 413 and headers["connection"] == "close"
    assert "at most 100" in json.loads(body)["Err"]["BadRequest"]["reason"]


@serving(Limits(max_body_bytes=100))
async def test_chunked_bodies_are_accepted_within_the_limit_and_refused_past_it(port, _):
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    head = b"POST /w HTTP/1.1\r\nhost: t\r\ntransfer-encoding: chunked\r\n\r\n"
    await stream.send_all(head + b"32\r\n" + b"a" * 50 + b"\r\n28\r\n" + b"b" * 40 + b"\r\n0\r\n\r\n")
    [(status, _, body)] = await receive_answers(stream, 1)
    assert status == 200 and json.loads(body)["length"] == 90
    await stream.send_all(head + b"40\r\n" + b"a" * 64 + b"\r\n40\r\n" + b"b" * 64 + b"\r\n")
    [(status, headers, body)] = await receive_answers(stream, 1, closed=True)
    assert status == 413 and headers["connection"] == "close"


@serving(Limits(max_connections=2))
async def test_connections_past_the_cap_get_503_and_a_close_and_the_others_go_on(port, _):
    held = [await trio.open_tcp_stream("127.0.0.1", port) for _ in range(2)]
    for s in held:  # make sure both are accepted and counted
        await s.send_all(post("/w"))
        await receive_answers(s, 1)
    extra = await trio.open_tcp_stream("127.0.0.1", port)
    [(status, headers, _)] = await receive_answers(extra, 1, closed=True)
    assert status == 503 and headers["connection"] == "close"
    await held[0].send_all(post("/w", b"ok"))
    assert (await receive_answers(held[0], 1))[0][0] == 200
    await held[1].aclose()
    # a closed connection frees its place (polled: the server notices the close first)
    with trio.fail_after(DEADLINE_S):
        while True:  # bounded by fail_after
            async with await trio.open_tcp_stream("127.0.0.1", port) as s:
                await s.send_all(post("/w"))
                if (await receive_answers(s, 1))[0][0] == 200:
                    break
            await trio.sleep(0.05)


@serving(Limits(header_timeout_s=0.5))
async def test_a_slowloris_client_gets_408_and_a_close_however_it_trickles(port, _):
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    head = b"POST /w HTTP/1.1\r\nhost: t\r\nx-slow: " + b"a" * 2000

    async def trickle():  # a byte every 20 ms: 40 s for the head, far past the bound
        for i in range(len(head)):
            try:
                await stream.send_all(head[i:i + 1])
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                return
            await trio.sleep(0.02)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(trickle)
        [(status, headers, body)] = await receive_answers(stream, 1, closed=True)
        nursery.cancel_scope.cancel()
    assert status == 408 and headers["connection"] == "close"
    assert "headers" in json.loads(body)["Err"]["BadRequest"]["reason"]


@serving(Limits(body_timeout_s=0.5))
async def test_a_body_that_stops_arriving_gets_408(port, _):
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    await stream.send_all(b"POST /w HTTP/1.1\r\nhost: t\r\ncontent-length: 10\r\n\r\nabc")
    [(status, headers, body)] = await receive_answers(stream, 1, closed=True)
    assert status == 408 and "body" in json.loads(body)["Err"]["BadRequest"]["reason"]


@serving(Limits(idle_timeout_s=0.5))
async def test_a_silent_connection_is_closed_after_the_idle_timeout(port, _):
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    await stream.send_all(post("/w"))
    await receive_answers(stream, 1)
    with trio.fail_after(DEADLINE_S):
        assert await stream.receive_some(100) == b""  # closed without a word


@pytest.mark.parametrize("garbage", [
    b"GARBAGE\r\n\r\n",
    b"\x00\xff\x10binary\r\n\r\n",
    b"POST /w HTTP/1.1\r\ncontent-length: nope\r\n\r\n",
    b"POST /w HTTP/1.1\r\ncontent-length: 1\r\ncontent-length: 2\r\n\r\n",
    b"GET / HTTP/9.9\r\n\r\n",
])
def test_garbage_gets_400_and_a_close_without_a_traceback_and_the_server_goes_on(garbage, caplog):
    @serving()
    async def body(port, _):
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        await stream.send_all(garbage)
        [(status, headers, _)] = await receive_answers(stream, 1, closed=True)
        assert status == 400 and headers["connection"] == "close"
        again = await trio.open_tcp_stream("127.0.0.1", port)
        await again.send_all(post("/w"))
        assert (await receive_answers(again, 1))[0][0] == 200

    with caplog.at_level(logging.DEBUG, logger="fastraft.kv.http"):
        body()
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []
    assert any("bad request bytes" in r.getMessage() for r in caplog.records)


@serving()
async def test_a_failing_handler_gets_500_and_the_connection_goes_on(port, _):
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    await stream.send_all(post("/boom"))
    assert (await receive_answers(stream, 1))[0][0] == 500
    await stream.send_all(post("/w"))
    assert (await receive_answers(stream, 1))[0][0] == 200


class TimeLimited:
    """``echo``, with a time limit on ``/stuck``, which never answers by itself."""

    async def __call__(self, request):
        if request.path == "/stuck":
            await trio.sleep_forever()
        return await echo(request)

    def time_limit(self, request):
        return (0.2, Response(200, b'{"late": true}')) if request.path == "/stuck" else None


@serving(handler=TimeLimited())
async def test_a_handler_past_its_time_limit_gets_its_late_answer_and_the_connection_goes_on(
        port, _):
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    await stream.send_all(post("/stuck") + post("/a", b"1"))  # the second waits its turn
    late, after = await receive_answers(stream, 2)
    assert late[0] == 200 and json.loads(late[2]) == {"late": True}
    assert late[1].get("connection") != "close"
    assert json.loads(after[2]) == {"path": "/a", "length": 1, "method": "POST"}
    await stream.send_all(post("/stuck"))  # again: a fresh bound for each request
    [(status, _, body)] = await receive_answers(stream, 1)
    assert json.loads(body) == {"late": True}


async def huge(request):
    return Response(200, b"x" * (64 << 20))  # far more than the sockets' buffers hold


@serving(Limits(send_timeout_s=0.3, max_connections=1), handler=huge)
async def test_a_client_that_does_not_take_its_answer_is_closed(port, _):
    stuck = await trio.open_tcp_stream("127.0.0.1", port)
    await stuck.send_all(post("/huge"))  # and never reads: the answer cannot leave
    with trio.fail_after(DEADLINE_S):
        while True:  # the only connection slot frees once the server gives up on it
            other = await trio.open_tcp_stream("127.0.0.1", port)
            await other.send_all(post("/huge"))
            if (await other.receive_some(12)).startswith(b"HTTP/1.1 200"):
                break  # not 503: the stuck connection was closed
            await other.aclose()
            await trio.sleep(0.05)
    received = 0
    with trio.fail_after(DEADLINE_S):
        while data := await stuck.receive_some(1 << 20):  # ends at the server's close
            received += len(data)
    assert received < 64 << 20


@serving()
async def test_expect_100_continue_gets_a_go_ahead_before_the_body(port, _):
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    await stream.send_all(b"POST /w HTTP/1.1\r\nhost: t\r\ncontent-length: 3\r\n"
                          b"expect: 100-continue\r\n\r\n")
    with trio.fail_after(DEADLINE_S):
        assert (await stream.receive_some(100)).startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
    await stream.send_all(b"abc")
    [(status, _, body)] = await receive_answers(stream, 1)
    assert status == 200 and json.loads(body)["length"] == 3


@serving(Limits(stop_grace_s=5))
async def test_stopping_finishes_the_requests_in_flight_and_closes_the_rest(port, scope):
    busy = await trio.open_tcp_stream("127.0.0.1", port)
    idle = await trio.open_tcp_stream("127.0.0.1", port)
    await idle.send_all(post("/w"))
    await receive_answers(idle, 1)
    await busy.send_all(post("/slow"))
    await trio.sleep(0.1)  # the slow request is in the handler (it sleeps 0.3 s)
    scope.cancel()
    [(status, headers, body)] = await receive_answers(busy, 1, closed=True)
    assert status == 200 and headers["connection"] == "close"
    with trio.fail_after(DEADLINE_S):
        assert await idle.receive_some(100) == b""
    with pytest.raises(OSError):
        await trio.open_tcp_stream("127.0.0.1", port)


def test_limits_refuse_nonsense():
    with pytest.raises(ValueError):
        Limits(max_connections=0)
    with pytest.raises(ValueError):
        Limits(idle_timeout_s=0)


def test_the_asgi_adapter_serves_the_kv_api_under_hypercorn():
    """README: KVApp under another ASGI server answers as the node's own server does."""
    from hypercorn.config import Config as HypercornConfig
    from hypercorn.trio import serve

    from fastraft.kv.app import KVApp
    from fastraft.kv.service import KVService, NodeInfo
    from fastraft.kv.state_machine import MemoryKVStateMachine

    class NoRaft:  # /read and /node touch no Raft; a node's Raft is tested elsewhere
        ensure_linearizable = None

    async def main():
        sm = MemoryKVStateMachine()
        service = KVService(NoRaft(), sm, NodeInfo(1, "127.0.0.1:1", "127.0.0.1:2", "tcp"))
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        port = listeners[0].socket.getsockname()[1]
        config = HypercornConfig()
        config.bind = [f"fd://{listeners[0].socket.detach()}"]
        async with trio.open_nursery() as nursery:
            nursery.start_soon(serve, KVApp(service), config)
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}",
                                         trust_env=False) as client:
                with trio.fail_after(DEADLINE_S):
                    while True:  # until hypercorn listens; bounded by fail_after
                        try:
                            r = await client.post("/read", content=b'"k"')
                            break
                        except httpx.ConnectError:
                            await trio.sleep(0.05)
                assert (r.status_code, r.json()) == (200, {"Ok": None})
                r = await client.post("/read", content=b"x" * (2 << 20))
                assert r.status_code == 413
                r = await client.get("/node")
                assert r.json()["Ok"]["id"] == 1
            nursery.cancel_scope.cancel()

    trio.run(main)


def test_the_readme_mounts_kvapp_under_hypercorn_as_written():
    """README.md, "The KV API under another ASGI server": its example serves /node."""
    import re
    from pathlib import Path

    from fastraft.testing import free_ports

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    [code] = [b for b in re.findall(r"```python\n(.*?)```", readme, flags=re.S) if "KVApp" in b]
    http_port, raft_port = free_ports(2)
    code = code.replace("21001", str(http_port)).replace("22001", str(raft_port))
    assert code.rstrip().endswith("trio.run(main)")
    namespace: dict = {}
    exec(compile(code.rstrip()[:-len("trio.run(main)")], "README", "exec"), namespace)

    async def main():
        async with trio.open_nursery() as nursery:
            nursery.start_soon(namespace["main"])
            async with httpx.AsyncClient(trust_env=False) as client:
                with trio.fail_after(DEADLINE_S):
                    while True:  # until the example listens; bounded by fail_after
                        try:
                            r = await client.get(f"http://127.0.0.1:{http_port}/node")
                            break
                        except httpx.ConnectError:
                            await trio.sleep(0.05)
            assert r.json()["Ok"] == {"id": 1, "addr": f"127.0.0.1:{http_port}",
                                      "raft_addr": f"127.0.0.1:{raft_port}", "network": "tcp"}
            nursery.cancel_scope.cancel()

    trio.run(main)
