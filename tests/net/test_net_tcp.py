"""Raft over TCP on 127.0.0.1: round trips, pipelining in order, timeouts, bad peers,
reconnection with backoff, and a server that stops with its node."""

import logging
import struct

import pytest
import trio

from fastraft import Entry, Node
from fastraft.codec import WIRE_VERSION
from fastraft.messages import (
    InstallSnapshotRequest,
    TimeoutNowRequest,
    TimeoutNowResponse,
    VoteRequest,
)
from fastraft.net import RemoteError, RequestTimeout, TcpNetwork, Unreachable, serve_raft_tcp
from fastraft.net.framing import FrameReader, encode_ok
from fastraft.net.tcp import parse_addr
from fastraft.testing import free_ports
from net_fixtures import EchoHandler, OrderedEchoHandler, append_request


async def start_server(nursery, handler, **kw):
    listeners = await nursery.start(lambda task_status: serve_raft_tcp(
        handler, "127.0.0.1", 0, task_status=task_status, **kw))
    port = listeners[0].socket.getsockname()[1]
    return Node(f"127.0.0.1:{port}")


def run(fn):
    trio.run(fn)


def test_parse_addr():
    assert parse_addr("127.0.0.1:22001") == ("127.0.0.1", 22001)
    assert parse_addr("[::1]:5") == ("::1", 5)
    for bad in ("127.0.0.1", ":5", "h:0", "h:99999", "h:x"):
        with pytest.raises(ValueError):
            parse_addr(bad)


def test_round_trip_of_every_kind():
    async def main():
        async with trio.open_nursery() as nursery:
            handler = EchoHandler(node_id=2)
            node = await start_server(nursery, handler)
            async with TcpNetwork().client(2, node) as c:
                r = await c.append_entries(append_request(term=2, seq=3, prev=7, entries=[Entry(2, 8, 1, b"abc")]), 2.0)
                assert (r.sender, r.match_index, r.seq) == (2, 8, 3)
                assert (await c.vote(VoteRequest(term=4, sender=1, last_log_term=2, last_log_index=8), 2.0)).granted
                s = await c.install_snapshot(InstallSnapshotRequest(
                    term=4, sender=1, snapshot_id="snap", last_log_term=2, last_log_index=8, membership_term=1, membership_index=1, membership=b"{}", offset=0, data=b"x" * 100_000, done=True), 5.0)
                assert (s.next_offset, s.done) == (100_000, True)
                assert await c.timeout_now(TimeoutNowRequest(term=4, sender=1), 2.0) == TimeoutNowResponse(term=4, sender=2)
                assert c.connects == 1  # one persistent connection for all of them
            assert handler.seen[0].entries == [Entry(2, 8, 1, b"abc")]
            nursery.cancel_scope.cancel()

    run(main)


def test_pipelined_requests_reach_the_node_in_order_and_answers_match():
    async def main():
        async with trio.open_nursery() as nursery:
            handler = OrderedEchoHandler(nursery, node_id=2, delay_s=0.001)
            node = await start_server(nursery, handler)
            async with TcpNetwork().client(2, node) as c:
                replies = [await c.start(append_request(seq=i, prev=i)) for i in range(300)]
                got = [await r.result() for r in reversed(replies)]
            assert [r.seq for r in got] == list(reversed(range(300)))
            assert [r.match_index for r in got] == [r.seq for r in got]
            assert [req.seq for req in handler.submitted] == list(range(300))
            nursery.cancel_scope.cancel()

    run(main)


def test_request_without_answer_returns_none():
    async def main():
        async with trio.open_nursery() as nursery:
            handler = EchoHandler(node_id=2)
            handler.silent_terms.add(5)
            node = await start_server(nursery, handler)
            async with TcpNetwork().client(2, node) as c:
                assert await c.append_entries(append_request(term=5), 2.0) is None
                assert (await c.append_entries(append_request(term=6), 2.0)).term == 6
            nursery.cancel_scope.cancel()

    run(main)


def test_timeout_leaves_the_client_usable_and_drops_the_late_answer():
    async def main():
        async with trio.open_nursery() as nursery:
            handler = EchoHandler(node_id=2)
            handler.delay_s = 0.3
            node = await start_server(nursery, handler)
            async with TcpNetwork().client(2, node) as c:
                with pytest.raises(RequestTimeout):
                    await c.vote(VoteRequest(term=2, sender=1, last_log_term=0, last_log_index=0), 0.05)
                handler.delay_s = 0.0
                # the first answer arrives late, while this one waits: it must not be taken
                v = await c.vote(VoteRequest(term=3, sender=1, last_log_term=0, last_log_index=0), 2.0)
                assert (v.term, v.granted) == (3, False)
                await trio.sleep(0.35)
                assert (await c.vote(VoteRequest(term=4, sender=1, last_log_term=0, last_log_index=0), 2.0)).term == 4
                assert c.connects == 1
            nursery.cancel_scope.cancel()

    run(main)


def test_node_that_cannot_serve_answers_remote_error_and_connection_stays():
    async def main():
        async with trio.open_nursery() as nursery:
            handler = EchoHandler(node_id=2)
            node = await start_server(nursery, handler)
            async with TcpNetwork().client(2, node) as c:
                handler.shutting_down = True
                with pytest.raises(RemoteError, match="RaftShutdown"):
                    await c.vote(VoteRequest(term=2, sender=1, last_log_term=0, last_log_index=0), 2.0)
                handler.shutting_down = False
                assert (await c.vote(VoteRequest(term=2, sender=1, last_log_term=0, last_log_index=0), 2.0)).granted
                assert c.connects == 1
            nursery.cancel_scope.cancel()

    run(main)


@pytest.mark.parametrize("garbage", [
    b"\x00" * 64,                                                        # zero header
    struct.pack("<QB", 1, 0) + b"GARBAGE!" * 8,                          # bad frame header
    struct.pack("<QB", 1, 0) + struct.pack("<BBHII", WIRE_VERSION, 2, 0, 1 << 30, 0),  # oversized
    encode_ok(1, TimeoutNowResponse(term=1, sender=1)),                              # a response as request
])
def test_peer_sending_garbage_is_dropped_and_logged_and_server_carries_on(garbage, caplog):
    async def main():
        async with trio.open_nursery() as nursery:
            handler = EchoHandler(node_id=2)
            node = await start_server(nursery, handler, max_frame_bytes=1 << 20)
            host, port = parse_addr(node.addr)
            bad = await trio.open_tcp_stream(host, port)
            await bad.send_all(garbage)
            with trio.fail_after(5):
                rest = await bad.receive_some(1024)
            assert rest == b""  # the server hung up on us
            await bad.aclose()
            async with TcpNetwork().client(2, node) as c:
                assert (await c.vote(VoteRequest(term=2, sender=1, last_log_term=0, last_log_index=0), 2.0)).granted
            nursery.cancel_scope.cancel()

    with caplog.at_level(logging.WARNING, logger="fastraft.net.tcp"):
        run(main)
    assert any("disconnected" in r.getMessage() for r in caplog.records)


def test_garbage_answer_fails_requests_and_client_reconnects(caplog):
    async def main():
        async with trio.open_nursery() as nursery:
            conns = []

            async def liar(stream):
                conns.append(stream)
                await stream.receive_some(1024)
                await stream.send_all(b"\xff" * 64)
                await trio.sleep_forever()

            listeners = await nursery.start(trio.serve_tcp, liar, 0)
            port = listeners[0].socket.getsockname()[1]
            net = TcpNetwork(backoff_min_s=0.0)
            async with net.client(2, Node(f"127.0.0.1:{port}")) as c:
                with pytest.raises(Unreachable, match="bad frame"):
                    await c.vote(VoteRequest(term=2, sender=1, last_log_term=0, last_log_index=0), 2.0)
                with pytest.raises(Unreachable):
                    await c.vote(VoteRequest(term=2, sender=1, last_log_term=0, last_log_index=0), 2.0)
                assert c.connects == 2  # a fresh connection after the bad one was dropped
            nursery.cancel_scope.cancel()

    with caplog.at_level(logging.WARNING, logger="fastraft.net.tcp"):
        run(main)
    assert any("do not parse" in r.getMessage() for r in caplog.records)


def test_dead_peer_backoff_then_reconnect():
    async def main():
        port = free_ports(1)[0]
        node = Node(f"127.0.0.1:{port}")
        net = TcpNetwork(backoff_min_s=0.2, backoff_max_s=0.4)
        async with trio.open_nursery() as nursery:
            async with net.client(2, node) as c:
                t0 = trio.current_time()
                with pytest.raises(Unreachable, match="cannot connect"):
                    await c.vote(VoteRequest(term=2, sender=1, last_log_term=0, last_log_index=0), 2.0)
                with pytest.raises(Unreachable, match="backoff"):
                    await c.vote(VoteRequest(term=2, sender=1, last_log_term=0, last_log_index=0), 2.0)  # inside the backoff: no dial
                assert trio.current_time() - t0 < 0.2
                handler = EchoHandler(node_id=2)
                await nursery.start(lambda task_status: serve_raft_tcp(
                    handler, "127.0.0.1", port, task_status=task_status))
                await trio.sleep(0.25)
                assert (await c.vote(VoteRequest(term=2, sender=1, last_log_term=0, last_log_index=0), 2.0)).granted
                assert c.connects == 1
            nursery.cancel_scope.cancel()

    run(main)


def test_server_restart_fails_in_flight_requests_then_reconnects():
    async def main():
        port = free_ports(1)[0]
        node = Node(f"127.0.0.1:{port}")
        async with trio.open_nursery() as outer:
            async with TcpNetwork(backoff_min_s=0.0).client(2, node) as c:
                handler = EchoHandler(node_id=2)
                handler.hang_terms.add(9)
                async with trio.open_nursery() as server:
                    await server.start(lambda task_status: serve_raft_tcp(
                        handler, "127.0.0.1", port, task_status=task_status))
                    assert (await c.vote(VoteRequest(term=2, sender=1, last_log_term=0, last_log_index=0), 2.0)).granted
                    hanging = await c.start(VoteRequest(term=9, sender=1, last_log_term=0, last_log_index=0))
                    await trio.sleep(0.05)
                    server.cancel_scope.cancel()  # the node goes down with a request in flight
                with pytest.raises(Unreachable):
                    with trio.fail_after(5):
                        await hanging.result()
                await outer.start(lambda task_status: serve_raft_tcp(
                    handler, "127.0.0.1", port, task_status=task_status))
                assert (await c.vote(VoteRequest(term=4, sender=1, last_log_term=0, last_log_index=0), 2.0)).granted
                assert c.connects == 2
            outer.cancel_scope.cancel()

    run(main)


def test_server_stops_when_its_node_closes():
    class ClosingHandler(EchoHandler):
        def __init__(self):
            super().__init__()
            self.closed = trio.Event()

        async def wait_closed(self):
            await self.closed.wait()

    async def main():
        handler = ClosingHandler()
        with trio.fail_after(5):
            async with trio.open_nursery() as nursery:
                node = await start_server(nursery, handler)
                async with TcpNetwork().client(2, node) as c:
                    assert (await c.vote(VoteRequest(term=2, sender=1, last_log_term=0, last_log_index=0), 2.0)).granted
                    handler.closed.set()
                # the nursery exits by itself: serve_raft_tcp returned
        host, port = parse_addr(node.addr)
        with pytest.raises(OSError):
            await trio.open_tcp_stream(host, port)

    run(main)


def test_client_cancelled_with_an_open_connection_closes_cleanly():
    async def main():
        async with trio.open_nursery() as nursery:
            node = await start_server(nursery, EchoHandler(node_id=2))
            with trio.move_on_after(0.2) as scope:
                async with TcpNetwork().client(2, node) as c:
                    assert (await c.vote(VoteRequest(term=2, sender=1, last_log_term=0, last_log_index=0), 2.0)).granted
                    await trio.sleep_forever()  # cancelled here, with the connection open
            assert scope.cancelled_caught
            nursery.cancel_scope.cancel()

    run(main)  # trio raises if the client's nursery outlived its task


def test_client_must_be_entered_and_refuses_after_close():
    async def main():
        c = TcpNetwork().client(2, Node("127.0.0.1:1"))
        with pytest.raises(RuntimeError, match="async with"):
            await c.vote(VoteRequest(term=2, sender=1, last_log_term=0, last_log_index=0), 1.0)
        async with c:
            pass
        with pytest.raises(Unreachable):
            await c.vote(VoteRequest(term=2, sender=1, last_log_term=0, last_log_index=0), 1.0)

    run(main)


def test_network_settings_are_checked():
    with pytest.raises(ValueError):
        TcpNetwork(connect_timeout_s=0)
    with pytest.raises(ValueError):
        TcpNetwork(backoff_min_s=2, backoff_max_s=1)
    with pytest.raises(ValueError):
        TcpNetwork().client(2, Node("nowhere"))


def test_frames_written_straight_to_the_socket_never_overtake_queued_ones():
    """A request started while the connection's writer is idle goes straight to the socket;
    a frame larger than the socket takes at once leaves its rest queued, and every frame
    after it queues behind. The node must still see every request whole and in order."""
    async def main():
        async with trio.open_nursery() as nursery:
            handler = OrderedEchoHandler(nursery, node_id=2)
            node = await start_server(nursery, handler)
            async with TcpNetwork().client(2, node) as c:
                await (await c.start(append_request(seq=0))).result()  # connected, writer idle
                big = b"\xab" * (8 << 20)  # more than a loopback socket buffer takes at once
                replies = []
                for seq in range(1, 13):
                    entries = [Entry(1, 1, 1, big)] if seq % 4 == 1 else []
                    replies.append(c.start_nowait(append_request(seq=seq, entries=entries)))
                    # Let the writer and the node run: the socket drains while the rest
                    # of a big frame is still being written.
                    await trio.sleep(0.0005 * (seq % 3))
                assert all(r is not None for r in replies)
                got = [await r.result() for r in replies]
            assert [r.seq for r in got] == list(range(1, 13))
            assert [req.seq for req in handler.submitted] == list(range(13))
            assert all(req.entries[0].payload == big for req in handler.submitted[1::4])
            nursery.cancel_scope.cancel()

    run(main)


def test_answers_reach_a_client_that_reads_late():
    """The server writes answers straight to the socket while its writer is idle and queues
    them once the socket is full: a client that sends many requests before reading any
    answer still gets each answer once, with its own id. (Sending happens in its own task:
    once MAX_PENDING answers wait to be written the server stops reading, so a client that
    only sends would be pushed back for good, as TCP intends.)"""
    async def main():
        async with trio.open_nursery() as nursery:
            node = await start_server(nursery, EchoHandler(node_id=2))
            host, port = parse_addr(node.addr)
            stream = await trio.open_tcp_stream(host, port)
            n = 20_000
            nursery.start_soon(stream.send_all, b"".join(
                encode_ok(i, append_request(seq=i, prev=i)) for i in range(1, n + 1)))
            await trio.sleep(0.2)  # the server answers into a socket nobody reads yet
            reader = FrameReader(stream, 1 << 20)
            seen = set()
            with trio.fail_after(30):
                for _ in range(n):  # bounded: one frame per request
                    request_id, body = await reader.read()
                    assert body.seq == request_id and body.match_index == request_id
                    seen.add(request_id)
            assert seen == set(range(1, n + 1))
            await stream.aclose()
            nursery.cancel_scope.cancel()

    run(main)


def test_a_connection_holds_at_most_max_pending_requests_owed_an_answer(monkeypatch):
    """Past MAX_PENDING requests read and not yet answered on the wire, the server reads no
    more from that connection (TCP pushes back on the peer): what a peer can make it hold is
    bounded. A slot frees when its answer has been written."""
    import fastraft.net.tcp_server as tcp_server

    monkeypatch.setattr(tcp_server, "MAX_PENDING", 8)

    async def main():
        async with trio.open_nursery() as nursery:
            handler = EchoHandler(node_id=2)
            handler.hang_terms.add(1)  # term 1: never answered
            node = await start_server(nursery, handler)
            host, port = parse_addr(node.addr)
            stream = await trio.open_tcp_stream(host, port)
            await stream.send_all(b"".join(encode_ok(i, append_request(term=1, seq=i))
                                           for i in range(1, 21)))
            with trio.fail_after(10):
                while len(handler.seen) < 8:  # bounded by the deadline
                    await trio.sleep(0.01)
            await trio.sleep(0.3)  # room for a wrong 9th read to happen
            assert len(handler.seen) == 8
            await stream.aclose()
            nursery.cancel_scope.cancel()

    run(main)
