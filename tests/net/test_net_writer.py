"""The connection writer (``fastraft.net.writer.FrameWriter``) and the synchronous TLS stream
under it (``fastraft.net.tls_stream.TlsStream``), over real sockets on 127.0.0.1: frames
arrive whole and in the order they were put, whichever path wrote them (the write-now path,
a partial write-now whose rest the loop writes, or the loop's batches), with TLS as without;
every envelope is reported written exactly once; the queue is bounded; a closed writer
refuses frames."""

import os
import struct

import pytest
import trio

from fastraft.kv.certs import make_pki
from fastraft.net.tls import TlsConfig
from fastraft.net.tls_stream import TlsStream
from fastraft.net.writer import FrameWriter

BIG = 6 << 20  # more than a loopback socket takes at once


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_pki(str(tmp_path_factory.mktemp("pki")), "c1", [1, 2])


async def socket_pair(pki, tls: bool):
    """(sending stream, receiving stream) of one TCP connection on 127.0.0.1."""
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listeners[0].socket.getsockname()[1]
    client = await trio.open_tcp_stream("127.0.0.1", port)
    server = await listeners[0].accept()
    await listeners[0].aclose()
    if not tls:
        return client, server
    def config(i):
        return TlsConfig("c1", i, pki.ca, *pki.nodes[i])
    a = TlsStream(client, config(1).client_context(), server_side=False)
    b = TlsStream(server, config(2).server_context(), server_side=True)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(a.do_handshake)
        nursery.start_soon(b.do_handshake)
    return a, b


def frame(i: int, size: int) -> bytes:
    return struct.pack("<QI", i, size) + bytes([i % 251]) * size


async def read_frames(stream, n: int) -> list[tuple[int, int]]:
    buf = bytearray()
    out = []
    with trio.fail_after(60):
        while len(out) < n:  # bounded: n frames, each read under the deadline
            chunk = await stream.receive_some(1 << 20)
            assert chunk, "the stream ended early"
            buf += chunk
            while len(buf) >= 12:
                i, size = struct.unpack_from("<QI", buf)
                if len(buf) < 12 + size:
                    break
                assert buf[12:12 + size] == bytes([i % 251]) * size, f"frame {i} damaged"
                out.append((i, size))
                del buf[:12 + size]
    return out


@pytest.mark.parametrize("tls", [False, True], ids=["plain", "tls"])
def test_frames_arrive_whole_and_in_order_whichever_path_wrote_them(pki, tls):
    async def main():
        send, recv = await socket_pair(pki, tls)
        written = []
        writer = FrameWriter(send, 64, on_written=written.append)
        sizes = [10, BIG, 10, 10, BIG, 10, 3, BIG]
        async with trio.open_nursery() as nursery:
            nursery.start_soon(writer.run, nursery.cancel_scope)
            await trio.testing.wait_all_tasks_blocked()  # the loop waits: the next put writes now
            reading = trio.Event()
            got = []

            async def reader():
                got.extend(await read_frames(recv, len(sizes)))
                reading.set()

            nursery.start_soon(reader)
            for i, size in enumerate(sizes):
                if i % 3 == 2:
                    await writer.put(frame(i, size))
                else:
                    writer.put_nowait(frame(i, size))
                if i % 2:
                    await trio.sleep(0)  # let the loop and the reader run in between
            await reading.wait()
            nursery.cancel_scope.cancel()
        assert got == list(enumerate(sizes))
        assert sum(written) == len(sizes)  # each envelope reported written once

    trio.run(main)


@pytest.mark.skipif(os.name != "posix", reason="the write-now path is POSIX only")
def test_a_frame_put_while_the_loop_is_idle_is_written_before_put_returns(pki):
    async def main():
        send, recv = await socket_pair(pki, tls=True)
        written = []
        writer = FrameWriter(send, 4, on_written=written.append)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(writer.run, nursery.cancel_scope)
            await trio.testing.wait_all_tasks_blocked()
            writer.put_nowait(frame(1, 100))
            assert written == [1]  # no task switch needed: sealed and written at once
            assert await read_frames(recv, 1) == [(1, 100)]
            nursery.cancel_scope.cancel()

    trio.run(main)


def test_the_queue_is_bounded_and_a_closed_writer_refuses(pki):
    async def main():
        send, _recv = await socket_pair(pki, tls=False)
        writer = FrameWriter(send, 3)  # its loop is not running: nothing leaves the queue
        for i in range(4):  # capacity + the one slot kept for the write-now path's wake-up
            writer.put_nowait(frame(i, 1))
        with pytest.raises(trio.WouldBlock):
            writer.put_nowait(frame(9, 1))
        writer.close()
        with pytest.raises(trio.BrokenResourceError):
            writer.put_nowait(frame(10, 1))
        with pytest.raises(trio.BrokenResourceError):
            await writer.put(frame(11, 1))

    trio.run(main)


def test_tls_stream_reads_many_records_and_ends_at_a_close_without_close_notify(pki):
    async def main():
        a, b = await socket_pair(pki, tls=True)
        for i in range(20):  # 20 TLS records
            await a.send_all(b"r%02d" % i)
        got = b""
        with trio.fail_after(30):
            while len(got) < 60:  # bounded: 60 bytes expected
                got += await b.receive_some(1 << 16)
        assert got == b"".join(b"r%02d" % i for i in range(20))
        await a.transport.send_eof()
        assert await b.receive_some() == b""  # a close without close_notify ends the stream

    trio.run(main)
