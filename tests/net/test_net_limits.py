"""The Raft TCP listener's bounds (``fastraft.net.limits``) over real sockets on 127.0.0.1:
connections beyond the limit are closed at once, frames announced huge allocate nothing, held
frames are bounded in bytes and in time, idle connections are closed, and accept errors such
as EMFILE are logged at most once per second. Every wait is bounded by a generous deadline."""

import os
import struct
import subprocess
import sys
import textwrap

import pytest
import trio

from fastraft import Node, codec
from fastraft.net import TcpNetwork, serve_raft_tcp
from fastraft.net.framing import ENVELOPE_SIZE
from fastraft.net.limits import ListenerLimits, ListenerStats, RateLimitedLog
from net_fixtures import EchoHandler, append_request

DEADLINE_S = 20


async def start_server(nursery, handler, stats, limits):
    listeners = await nursery.start(lambda task_status: serve_raft_tcp(
        handler, "127.0.0.1", 0, limits=limits, stats=stats, task_status=task_status))
    return Node(f"127.0.0.1:{listeners[0].socket.getsockname()[1]}")


async def dial(node):
    host, port = node.addr.split(":")
    return await trio.open_tcp_stream(host, int(port))


async def closed_by_peer(stream) -> bool:
    """True once the server has closed ``stream`` (EOF or reset), reading what it sends."""
    try:
        while True:  # bounded by the caller's deadline
            if not await stream.receive_some(1 << 16):
                return True
    except trio.BrokenResourceError:
        return True


def announcing_header(body_bytes: int) -> bytes:
    """An envelope and a codec header that announce a frame of ``body_bytes`` body bytes."""
    frame = codec.encode_message(append_request(term=1))
    header = bytearray(frame[:codec.HEADER_SIZE])
    struct.pack_into("<I", header, 4, body_bytes)
    return struct.pack("<QB", 1, 0) + bytes(header)


async def wait_for(condition, what):
    with trio.fail_after(DEADLINE_S):
        while not condition():  # bounded by the deadline
            await trio.sleep(0.01)


async def served(node) -> bool:
    async with TcpNetwork().client(2, node) as c:
        resp = await c.append_entries(append_request(term=5), timeout_s=5)
        return resp.term == 5


def test_connections_beyond_the_limit_are_closed_at_once():
    async def main():
        stats = ListenerStats()
        async with trio.open_nursery() as nursery:
            node = await start_server(nursery, EchoHandler(2), stats, ListenerLimits(max_connections=4))
            held = [await dial(node) for _ in range(4)]
            await wait_for(lambda: stats.connections == 4, "4 connections held")
            extra = [await dial(node) for _ in range(6)]
            with trio.fail_after(DEADLINE_S):
                for s in extra:
                    assert await closed_by_peer(s)
            assert stats.refused_connections == 6 and stats.connections == 4
            for s in held + extra:
                await s.aclose()
            await wait_for(lambda: stats.connections == 0, "all closed")
            assert await served(node)  # room again: a peer gets through
            nursery.cancel_scope.cancel()

    trio.run(main)


def test_frames_announced_huge_are_refused_before_any_memory_is_taken():
    """The attack: 4 connections each announce a frame just under 64 MiB (the codec's ceiling)
    and send 60 MiB of it. The listener refuses each at its header (over the per-connection
    bound) and never holds more than a read's worth of bytes; peers keep being served."""
    async def main():
        stats = ListenerStats()
        async with trio.open_nursery() as nursery:
            node = await start_server(nursery, EchoHandler(2), stats, ListenerLimits())
            attackers = [await dial(node) for _ in range(4)]
            chunk = b"\0" * (1 << 20)

            async def attack(s):
                try:
                    await s.send_all(announcing_header((64 << 20) - 64))
                    for _ in range(60):  # 60 MiB unless the server cuts us off first
                        await s.send_all(chunk)
                except trio.BrokenResourceError:
                    pass

            with trio.fail_after(DEADLINE_S):
                async with trio.open_nursery() as n:
                    for s in attackers:
                        n.start_soon(attack, s)
            await wait_for(lambda: stats.connections == 0, "attackers disconnected")
            assert stats.peak_buffered_bytes <= 4 * (256 << 10)  # one read each, at most
            assert stats.buffered_bytes == 0
            assert await served(node)
            for s in attackers:
                await s.aclose()
            nursery.cancel_scope.cancel()

    trio.run(main)


def test_held_frames_are_bounded_in_bytes_and_in_time():
    """4 connections each announce a frame that fits one connection's bound and send most
    of it, then hold: the listener's total stays near its bound (connections that reach it
    are closed) and the frame timeout closes the rest; nothing stays buffered."""
    async def main():
        stats = ListenerStats()
        limits = ListenerLimits(max_buffered_bytes=4 << 20, max_total_buffered_bytes=8 << 20,
                                frame_timeout_s=1.0)
        async with trio.open_nursery() as nursery:
            node = await start_server(nursery, EchoHandler(2), stats, limits)
            attackers = [await dial(node) for _ in range(4)]
            body = (4 << 20) - ENVELOPE_SIZE - codec.HEADER_SIZE - 1024
            with trio.fail_after(DEADLINE_S):
                for s in attackers:
                    try:
                        await s.send_all(announcing_header(body) + b"\0" * (body - (64 << 10)))
                    except trio.BrokenResourceError:
                        pass  # closed for crossing the total: fine
            await wait_for(lambda: stats.connections == 0, "held frames timed out")
            # the bound, plus one read per connection that was reading when it was reached
            assert stats.peak_buffered_bytes <= limits.max_total_buffered_bytes + 4 * (256 << 10)
            assert stats.peak_buffered_bytes >= 4 << 20  # it did buffer: the bound was reached
            assert stats.timeouts >= 1
            assert stats.buffered_bytes == 0
            assert await served(node)
            for s in attackers:
                await s.aclose()
            nursery.cancel_scope.cancel()

    trio.run(main)


def test_idle_connections_are_closed_and_peers_redial():
    async def main():
        stats = ListenerStats()
        async with trio.open_nursery() as nursery:
            node = await start_server(nursery, EchoHandler(2), stats,
                                      ListenerLimits(idle_timeout_s=0.3))
            silent = await dial(node)
            with trio.fail_after(DEADLINE_S):
                assert await closed_by_peer(silent)
            assert stats.timeouts == 1
            await silent.aclose()
            async with TcpNetwork(backoff_min_s=0.0).client(2, node) as c:
                assert (await c.append_entries(append_request(term=3), timeout_s=5)).term == 3
                await wait_for(lambda: stats.timeouts == 2, "the client's connection idled out")
                await wait_for(lambda: c._conn is None, "the client saw its connection end")
                assert (await c.append_entries(append_request(term=4), timeout_s=5)).term == 4
                assert c.connects == 2
            nursery.cancel_scope.cancel()

    trio.run(main)


def test_rate_limited_log_says_how_many_it_skipped(caplog):
    import logging

    async def main():
        logger = logging.getLogger("test.ratelimited")
        say = RateLimitedLog(logger, 1.0)
        for i in range(25):  # 25 events over 3 s of (mock) time
            say(logging.ERROR, "event %d", i)
            await trio.sleep(0.125)
        return [r.getMessage() for r in caplog.records if r.name == "test.ratelimited"]

    with caplog.at_level(logging.ERROR):
        lines = trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    assert lines == ["event 0", "event 8 (7 more like it not logged)",
                     "event 16 (7 more like it not logged)", "event 24 (7 more like it not logged)"]


ACCEPT_FLOOD = textwrap.dedent("""
    import os, resource, sys, trio
    from fastraft.net import serve_raft_tcp

    resource.setrlimit(resource.RLIMIT_NOFILE, (64, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))

    async def main():
        async with trio.open_nursery() as nursery:
            listeners = await nursery.start(serve_raft_tcp, object(), "127.0.0.1", 0)
            hog = []
            try:
                while True:  # until EMFILE: at most 64 files
                    hog.append(os.open(os.devnull, os.O_RDONLY))
            except OSError:
                pass
            print(listeners[0].socket.getsockname()[1], flush=True)
            await trio.sleep(2.5)  # the parent connects meanwhile: accept() fails with EMFILE
            nursery.cancel_scope.cancel()

    trio.run(main)
""")


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX resource limits")
def test_accept_errors_are_logged_at_most_once_a_second(tmp_path):
    """A node out of file descriptors: trio's own loop logged every retry (10 a second;
    thousands of lines in a minute); ours logs once a second with a count."""
    proc = subprocess.Popen([sys.executable, "-c", ACCEPT_FLOOD], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        port = int(proc.stdout.readline())
        import socket
        socks = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(5)]
        _, err = proc.communicate(timeout=60)
        for s in socks:
            s.close()
    finally:
        proc.kill()
        proc.wait()
    lines = [line for line in err.decode().splitlines() if "cannot accept" in line]
    assert proc.returncode == 0, err.decode()[-2000:]
    assert 1 <= len(lines) <= 3, err.decode()[-2000:]  # 2.5 s of failures at most 1 a second
    assert "EMFILE" in lines[0] or "Too many open files" in lines[0]
