"""The KV node's HTTP/1.1 server (``fastraft.kv.http_server``) on a real 127.0.0.1 socket:
keep-alive, one write per answer's bytes, and bad request heads answered without harm."""

import socket

import trio

from fastraft.kv.http_server import serve_asgi_http


async def _echo_app(scope, receive, send):
    """Answers with the method, path and the whole body; /refuse answers without reading
    the body; /boom raises."""
    if scope["path"] == "/boom":
        raise RuntimeError("boom")
    body = b""
    if scope["path"] != "/refuse":
        for _ in range(1000):  # bounded: bodies in these tests are small
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
    content = b"%s %s %s" % (scope["method"].encode(), scope["path"].encode(), body)
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": content})


def _bound_fd() -> tuple[int, int]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    return sock.detach(), port


async def _read_response(stream, buf: bytearray) -> tuple[bytes, dict, bytes]:
    """(status line, headers, body) of one response read from ``stream``."""
    with trio.fail_after(5):
        while b"\r\n\r\n" not in buf:
            data = await stream.receive_some(65536)
            assert data, "the server closed before answering"
            buf += data
        end = buf.index(b"\r\n\r\n")
        lines = bytes(buf[:end]).split(b"\r\n")
        del buf[:end + 4]
        headers = dict(line.split(b": ", 1) for line in lines[1:])
        length = int(headers[b"content-length"])
        while len(buf) < length:
            data = await stream.receive_some(65536)
            assert data
            buf += data
        body = bytes(buf[:length])
        del buf[:length]
        return lines[0], headers, body


async def _at_eof(stream) -> bool:
    with trio.fail_after(5):
        return await stream.receive_some(100) == b""


def _with_server(test, **kwargs):
    async def main():
        fd, port = _bound_fd()
        async with trio.open_nursery() as nursery:
            await nursery.start(lambda task_status: serve_asgi_http(
                _echo_app, fd, task_status=task_status, **kwargs))
            stream = await trio.open_tcp_stream("127.0.0.1", port)
            async with stream:
                await test(stream, port)
            nursery.cancel_scope.cancel()
    trio.run(main)


def test_requests_on_one_connection_are_answered_in_turn():
    async def test(stream, port):
        buf = bytearray()
        # two requests sent at once: the second waits in the buffer for its turn
        await stream.send_all(b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
                              b"GET /b?q=1 HTTP/1.1\r\nHost: x\r\n\r\n")
        status, headers, body = await _read_response(stream, buf)
        assert status == b"HTTP/1.1 200 OK" and body == b"POST /a hello"
        assert b"connection" not in headers
        status, headers, body = await _read_response(stream, buf)
        assert status == b"HTTP/1.1 200 OK" and body == b"GET /b "
        await stream.send_all(b"POST /c HTTP/1.1\r\nContent-Length: 3\r\nConnection: close\r\n\r\nxyz")
        status, headers, body = await _read_response(stream, buf)
        assert body == b"POST /c xyz" and headers[b"connection"] == b"close"
        assert await _at_eof(stream)
    _with_server(test)


def test_a_body_sent_in_pieces_is_read_whole():
    async def test(stream, port):
        buf = bytearray()
        await stream.send_all(b"POST /p HTTP/1.1\r\nContent-Length: 10\r\n\r\n01234")
        await trio.sleep(0.05)
        await stream.send_all(b"56789")
        _, _, body = await _read_response(stream, buf)
        assert body == b"POST /p 0123456789"
    _with_server(test)


def test_http_1_0_closes_after_the_answer():
    async def test(stream, port):
        buf = bytearray()
        await stream.send_all(b"GET /old HTTP/1.0\r\n\r\n")
        _, headers, body = await _read_response(stream, buf)
        assert body == b"GET /old " and headers[b"connection"] == b"close"
        assert await _at_eof(stream)
    _with_server(test)


def test_a_body_the_app_did_not_read_closes_the_connection():
    async def test(stream, port):
        buf = bytearray()
        await stream.send_all(b"POST /refuse HTTP/1.1\r\nContent-Length: 4\r\n\r\nabcd")
        _, headers, body = await _read_response(stream, buf)
        assert body == b"POST /refuse " and headers[b"connection"] == b"close"
        assert await _at_eof(stream)
    _with_server(test)


def test_bad_heads_are_answered_and_the_server_goes_on():
    cases = [
        (b"NONSENSE\r\n\r\n", b"400"),
        (b"GET / HTTP/2.0\r\n\r\n", b"400"),
        (b"POST / HTTP/1.1\r\nContent-Length: ten\r\n\r\n", b"400"),
        (b"POST / HTTP/1.1\r\nbroken header\r\n\r\n", b"400"),
        (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", b"501"),
        (b"GET / HTTP/1.1\r\nX: " + b"a" * 5000 + b"\r\n\r\n", b"431"),
    ]

    async def test(stream, port):
        for request, code in cases:
            async with await trio.open_tcp_stream("127.0.0.1", port) as s:
                await s.send_all(request)
                status, headers, _ = await _read_response(s, bytearray())
                assert status.split(b" ")[1] == code, (request[:40], status)
                assert headers[b"connection"] == b"close"
                assert await _at_eof(s)
        # an app that raises gets a 500 and a closed connection
        async with await trio.open_tcp_stream("127.0.0.1", port) as s:
            await s.send_all(b"GET /boom HTTP/1.1\r\n\r\n")
            status, _, _ = await _read_response(s, bytearray())
            assert status.startswith(b"HTTP/1.1 500")
            assert await _at_eof(s)
        # the first connection is still served
        await stream.send_all(b"GET /still HTTP/1.1\r\n\r\n")
        _, _, body = await _read_response(stream, bytearray())
        assert body == b"GET /still "
    _with_server(test, max_head_bytes=4096)


def test_an_idle_connection_is_closed():
    async def test(stream, port):
        assert await _at_eof(stream)
    _with_server(test, idle_timeout_s=0.2)
