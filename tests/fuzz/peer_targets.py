"""What the fuzzers check of a node facing a hostile peer, one function per target, shared by
the atheris harnesses (``fuzz_client_reader.py``, ``fuzz_tls_handshake.py``, run for a bounded
time by ``run.py``), the hypothesis tests (``test_fuzz_peers.py``) and the replay of every
seed and saved input (``test_fuzz_regressions.py``).

Each input is one real exchange on 127.0.0.1 in a ``trio.run`` of its own; its first byte
picks the mode, the rest is what the hostile side sends:

* ``check_client_reader(data)``: a node's ``TcpClient`` (``fastraft.net.tcp_client``) sends
  one VoteRequest to a fake peer, which reads it and answers ``data``: mode 0 as raw bytes on a
  plain connection; under mutual TLS, after a real handshake and hello, mode 1 as raw bytes
  in place of TLS records, mode 2 sealed in valid TLS records (the frame reader behind TLS).
* ``check_tls_handshake(data)``: the TLS handshake of ``fastraft.net.tls_stream`` against
  bytes that are not a peer's: mode 0, a dialling ``TcpClient`` gets ``data`` as the server's
  answer to its ClientHello; mode 1, ``serve_raft_tcp`` with TLS gets ``data`` from a client
  that then closes its side, and must close the connection, stay up, and still serve a real
  node (checked every ``ALIVE_EVERY`` inputs and at the end).

The fake peer half-closes after sending and reads until the other side closes, so nothing is
lost to a reset. Failures (an exception, which the fuzzer reports with the input): the client
raising anything but the documented ``Unreachable`` / ``RemoteError`` for its request, or any
exception leaving its tasks; the server's tasks dying; either side not finishing within
``HANG_S`` (a hang: every wait on a hostile peer must be bounded).
"""

from __future__ import annotations

import atexit
import functools
import logging
import os
import shutil
import ssl
import tempfile

import trio
import trio.testing

from fastraft import Node
from fastraft.messages import VoteRequest, VoteResponse
from fastraft.net import PipelinedHandler, Reply, TcpNetwork, serve_raft_tcp
from fastraft.net.framing import encode_ok
from fastraft.net.limits import ListenerLimits
from fastraft.net.protocol import RemoteError, Unreachable
from fastraft.net.tls import TlsConfig, encode_hello
from fastraft.net.tls_stream import TlsStream

__all__ = ["HANG_S", "REQUEST", "check_client_reader", "check_tls_handshake", "check_alive",
           "client_hello", "server_flight", "pki"]

#: Longest one exchange may take; the client's and server's own bounds are well under it.
HANG_S = 5.0
#: The request the client sends (id 1 on a fresh client), and its wire form.
REQUEST = VoteRequest(term=3, sender=1, last_log_term=2, last_log_index=7)
REQUEST_WIRE = encode_ok(1, REQUEST)
CLUSTER_ID = "fuzz"
_LINGER_READS = 64

logging.getLogger("fastraft.net.tcp").setLevel(logging.CRITICAL)  # refusals are expected


@functools.lru_cache(maxsize=1)
def pki() -> tuple[TlsConfig, TlsConfig]:
    """(node 1's, node 2's) TLS settings, with a throwaway CA made once per process; its
    folder is kept while the process runs (the settings name its files) and removed at its
    exit."""
    from fastraft.kv.certs import make_pki

    folder = tempfile.mkdtemp(prefix="fastraft-fuzz-pki-")
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    made = make_pki(folder, CLUSTER_ID, [1, 2])
    return (TlsConfig(CLUSTER_ID, 1, made.ca, *made.nodes[1]),
            TlsConfig(CLUSTER_ID, 2, made.ca, *made.nodes[2]))


class AnswerVotes(PipelinedHandler):
    """The node behind the fuzzed server: answers a VoteRequest at once."""

    async def submit_request(self, req):
        reply = Reply()
        reply.set_result(VoteResponse(term=req.term, sender=2, granted=False))
        return reply


def _network(tls: TlsConfig | None) -> TcpNetwork:
    return TcpNetwork(connect_timeout_s=1.0, backoff_min_s=0.0, backoff_max_s=0.0, tls=tls,
                      handshake_timeout_s=HANG_S / 2)


async def _linger(stream) -> None:
    """Half-close (plain TCP) and read until the other side closes; bounded by the caller's
    deadline and by a count of reads."""
    try:
        if hasattr(stream, "send_eof"):
            await stream.send_eof()
        for _ in range(_LINGER_READS):
            if not await stream.receive_some(65536):
                return
    except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
        pass


async def _receive_at_least(stream, n: int) -> bytes:
    got = b""
    while len(got) < n:  # bounded by the caller's deadline and the peer's bytes
        chunk = await stream.receive_some(65536)
        if not chunk:
            break
        got += chunk
    return got


async def _dial_and_ask(port: int, tls: TlsConfig | None, peer_done: trio.Event) -> None:
    """Node 1 asks node 2 at ``port`` one VoteRequest: an answer, or one of the documented
    errors, is fine; anything else propagates. The client is left only once its connection
    has ended by itself (the peer has closed its side and seen ours closed): an exception of
    the connection's tasks then surfaces here, not masked by the client's closing."""
    async with _network(tls).client(2, Node(f"127.0.0.1:{port}")) as client:
        try:
            reply = await client.start(REQUEST)
            await reply.result()  # any message that decodes, or None, is an answer
        except (Unreachable, RemoteError):
            pass
        await peer_done.wait()
        await trio.testing.wait_all_tasks_blocked()


async def _exchange(serve_one, tls: TlsConfig | None) -> None:
    """A listener on a free port whose first connection goes to ``serve_one(stream)``, and
    the client dialling it; both within HANG_S."""
    with trio.fail_after(HANG_S):
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        port = listeners[0].socket.getsockname()[1]
        peer_done = trio.Event()
        async with trio.open_nursery() as nursery:

            async def peer():
                try:
                    stream = await listeners[0].accept()
                    async with stream:
                        await serve_one(stream)
                finally:
                    peer_done.set()

            nursery.start_soon(peer)
            await _dial_and_ask(port, tls, peer_done)
        for listener in listeners:
            await listener.aclose()


def check_client_reader(data: bytes) -> None:
    if not data:
        return
    mode, rest = data[0] % 3, data[1:]
    if mode == 0:
        async def serve_one(stream):
            await _receive_at_least(stream, len(REQUEST_WIRE))
            await stream.send_all(rest)
            await _linger(stream)
        trio.run(_exchange, serve_one, None)
        return
    client_tls, server_tls = pki()

    async def serve_tls(stream):
        tls = TlsStream(stream, server_tls.server_context(), server_side=True)
        try:
            await tls.do_handshake()
        except trio.BrokenResourceError:
            raise AssertionError("the real handshake failed") from None
        hello = encode_hello(CLUSTER_ID, 1)
        got = b""
        while len(got) < len(hello) + len(REQUEST_WIRE):  # bounded by HANG_S
            chunk = await tls.receive_some(65536)
            if not chunk:
                break
            got += chunk
        await stream.send_all(rest if mode == 1 else tls.seal(rest))
        await _linger(stream)

    trio.run(_exchange, serve_tls, client_tls)


def check_tls_handshake(data: bytes) -> None:
    if not data:
        return
    mode, rest = data[0] % 2, data[1:]
    client_tls, server_tls = pki()
    if mode == 0:
        async def serve_one(stream):
            await _receive_at_least(stream, 5)  # the ClientHello's record header at least
            await stream.send_all(rest)
            await _linger(stream)
        trio.run(_exchange, serve_one, client_tls)
        return
    trio.run(_against_server, rest, server_tls, None)


async def _against_server(data: bytes, server_tls: TlsConfig, real_client: TlsConfig | None) -> None:
    """``data`` from a raw client to ``serve_raft_tcp`` with TLS (it must close the connection
    within HANG_S and keep serving); with ``real_client``, then a real node's request too."""
    limits = ListenerLimits(handshake_timeout_s=HANG_S / 4, frame_timeout_s=HANG_S / 4,
                            idle_timeout_s=HANG_S / 4)
    with trio.fail_after(HANG_S):
        async with trio.open_nursery() as nursery:
            listeners = await nursery.start(functools.partial(
                serve_raft_tcp, AnswerVotes(), "127.0.0.1", 0, tls=server_tls, limits=limits))
            port = listeners[0].socket.getsockname()[1]
            stream = await trio.open_tcp_stream("127.0.0.1", port)
            async with stream:
                try:
                    await stream.send_all(data)
                except (trio.BrokenResourceError, OSError):
                    pass  # the server refused what it read and closed first: fine
                await _linger(stream)
            # the server's connection task ends by itself (an exception of it must surface
            # here, not be masked by the cancellation below)
            await trio.testing.wait_all_tasks_blocked()
            if real_client is not None:
                async with _network(real_client).client(2, Node(f"127.0.0.1:{port}")) as client:
                    answer = await (await client.start(REQUEST)).result()
                    assert isinstance(answer, VoteResponse), answer
            nursery.cancel_scope.cancel()


def check_alive(data: bytes = b"") -> None:
    """``data`` to a TLS server, then a real node's request on it gets its answer."""
    client_tls, server_tls = pki()
    trio.run(_against_server, data, server_tls, client_tls)


# -- seeds: real handshake messages, captured in memory ---------------------------------------


def client_hello() -> bytes:
    """The ClientHello a node sends when it dials (node 1's client context)."""
    client_tls, _ = pki()
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = client_tls.client_context().wrap_bio(incoming, outgoing, server_side=False)
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return outgoing.read()


def server_flight() -> bytes:
    """What node 2's server answers to a ClientHello (ServerHello and the encrypted rest)."""
    _, server_tls = pki()
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = server_tls.server_context().wrap_bio(incoming, outgoing, server_side=True)
    incoming.write(client_hello())
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return outgoing.read()


if os.environ.get("FASTRAFT_FUZZ_DEBUG"):
    logging.getLogger("fastraft.net.tcp").setLevel(logging.DEBUG)
