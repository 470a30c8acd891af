"""Mutual TLS on the Raft TCP network, over real sockets on 127.0.0.1 with certificates made
by ``fastraft.kv.certs``: a node proves its id with its certificate, a peer cannot speak for
another node, and nothing from a stranger (no certificate, another CA, another cluster, a
hello that does not match) reaches the node."""

import re
import struct

import pytest
import trio

from fastraft import Node
from fastraft.kv.certs import make_pki
from fastraft.messages import TimeoutNowRequest, VoteRequest
from fastraft.net import RemoteError, TcpNetwork, Unreachable, serve_raft_tcp
from fastraft.net.framing import FrameReader, encode_ok
from fastraft.net.limits import ListenerLimits, ListenerStats
from fastraft.net.tls import TlsConfig, encode_hello, message_sender, peer_identity
from fastraft.net.tls_stream import MAX_HANDSHAKE_BYTES, TlsStream
from net_fixtures import EchoHandler

CLUSTER = "c1"


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    base = tmp_path_factory.mktemp("pki")
    return {"main": make_pki(str(base / "main"), CLUSTER, [1, 2, 3]),
            # the same CA signs a second cluster's nodes: only the cluster id tells them apart
            "other_cluster": make_pki(str(base / "other"), "c2", [1], ca_from=str(base / "main")),
            "other_ca": make_pki(str(base / "rogue"), CLUSTER, [1])}


def tls_for(pki, node_id, which="main", cluster=CLUSTER, ca_of=None):
    p = pki[which]
    cert, key = p.nodes[node_id]
    return TlsConfig(cluster, node_id, (ca_of or p).ca, cert, key)


async def start_server(nursery, handler, tls, stats=None, **kw):
    listeners = await nursery.start(lambda task_status: serve_raft_tcp(
        handler, "127.0.0.1", 0, tls=tls, stats=stats, task_status=task_status, **kw))
    return Node(f"127.0.0.1:{listeners[0].socket.getsockname()[1]}")


def vote(sender, term=2):
    return VoteRequest(term=term, sender=sender, last_log_term=1, last_log_index=1)


def test_identity_is_the_node_uri_of_the_certificate():
    assert peer_identity({"subjectAltName": (("URI", "fastraft://c1/node/7"),)}) == ("c1", 7)
    for bad in ({}, {"subjectAltName": (("DNS", "localhost"),)},
                {"subjectAltName": (("URI", "fastraft://c1/node/0"),)},
                {"subjectAltName": (("URI", "fastraft://c1/client/admin"),)},
                {"subjectAltName": (("URI", "fastraft://c1/node/1"), ("URI", "fastraft://c1/node/2"))}):
        assert peer_identity(bad) is None
    assert message_sender(vote(3)) == 3
    assert message_sender(TimeoutNowRequest(term=1, sender=4)) == 4


def test_authenticated_peer_is_served_and_cannot_speak_for_another(pki):
    async def main():
        handler = EchoHandler(node_id=2)
        stats = ListenerStats()
        async with trio.open_nursery() as nursery:
            node = await start_server(nursery, handler, tls_for(pki, 2), stats)
            async with TcpNetwork(tls=tls_for(pki, 1)).client(2, node) as c:
                resp = await c.vote(vote(1, term=4), timeout_s=5)
                assert resp.sender == 2 and resp.granted
                # node 1 naming node 3 (say, the leader) as sender: dropped, answered with an error
                with pytest.raises(RemoteError, match="not the authenticated node 1"):
                    await c.vote(vote(3, term=6), timeout_s=5)
                resp = await c.vote(vote(1, term=8), timeout_s=5)  # the connection carries on
                assert resp.granted
            assert [r.sender for r in handler.seen] == [1, 1]
            assert stats.refused_senders == 1
            nursery.cancel_scope.cancel()

    trio.run(main)


@pytest.mark.parametrize("stranger", ["plain", "other_cluster", "other_ca", "wrong_id"])
def test_strangers_get_no_message_accepted(pki, stranger):
    async def main():
        handler = EchoHandler(node_id=2)
        stats = ListenerStats()
        async with trio.open_nursery() as nursery:
            node = await start_server(nursery, handler, tls_for(pki, 2), stats)
            if stranger == "plain":
                network = TcpNetwork()
            elif stranger == "other_cluster":  # a valid chain of our CA, for cluster c2
                network = TcpNetwork(tls=tls_for(pki, 1, "other_cluster", cluster="c2"))
            elif stranger == "other_ca":  # names node 1 of c1, signed by another CA
                network = TcpNetwork(tls=tls_for(pki, 1, "other_ca", ca_of=pki["main"]))
            else:  # node 1's certificate, configured as node 3: its hello does not match
                p = pki["main"]
                network = TcpNetwork(tls=TlsConfig(CLUSTER, 3, p.ca, *p.nodes[1]))
            async with network.client(2, node) as c:
                with pytest.raises((Unreachable, RemoteError)):
                    await c.vote(vote(1 if stranger != "wrong_id" else 3), timeout_s=5)
            with trio.fail_after(10):
                while stats.refused_handshakes < 1:  # the server saw and refused it
                    await trio.sleep(0.01)
            assert handler.seen == []
            nursery.cancel_scope.cancel()

    trio.run(main)


def test_client_refuses_a_server_that_is_not_its_target(pki):
    async def main():
        handler = EchoHandler(node_id=3)
        async with trio.open_nursery() as nursery:
            node = await start_server(nursery, handler, tls_for(pki, 3))
            # node 1 dials "node 2" at an address where node 3 answers
            async with TcpNetwork(tls=tls_for(pki, 1)).client(2, node) as c:
                with pytest.raises(Unreachable, match="names node 3"):
                    await c.vote(vote(1), timeout_s=5)
            assert handler.seen == []
            nursery.cancel_scope.cancel()

    trio.run(main)


@pytest.mark.parametrize("cert_of, hello_names", [("main", 3), ("other_cluster", 1)])
def test_a_hello_not_matching_the_certificate_closes_the_connection(pki, cert_of, hello_names):
    """By hand, a valid chain and then a hello that claims more than the certificate: node 1
    of c1 claiming node 3, or node 1 of cluster c2 claiming to be of c1."""
    async def main():
        handler = EchoHandler(node_id=2)
        stats = ListenerStats()
        me = tls_for(pki, 1, cert_of, cluster="c2" if cert_of == "other_cluster" else CLUSTER)
        async with trio.open_nursery() as nursery:
            node = await start_server(nursery, handler, tls_for(pki, 2), stats)
            host, port = node.addr.split(":")
            tcp = await trio.open_tcp_stream(host, int(port))
            stream = trio.SSLStream(tcp, me.client_context(), server_hostname=None)
            await stream.do_handshake()
            await stream.send_all(encode_hello(CLUSTER, hello_names) + encode_ok(1, vote(hello_names)))
            with trio.fail_after(10):
                try:
                    got = await FrameReader(stream).read()
                except trio.BrokenResourceError:  # closed without TLS's close_notify
                    got = None
                assert got is None  # closed without an answer
            await trio.aclose_forcefully(stream)
            assert handler.seen == []
            assert stats.refused_handshakes == 1
            nursery.cancel_scope.cancel()

    trio.run(main)


def test_handshake_timeout_closes_a_silent_connection(pki):
    async def main():
        stats = ListenerStats()
        async with trio.open_nursery() as nursery:
            node = await start_server(nursery, EchoHandler(2), tls_for(pki, 2), stats,
                                      limits=ListenerLimits(handshake_timeout_s=0.2))
            host, port = node.addr.split(":")
            tcp = await trio.open_tcp_stream(host, int(port))
            with trio.fail_after(10):
                assert await tcp.receive_some(100) == b""  # closed by the server
            assert stats.refused_handshakes == 1 and stats.connections == 0
            await tcp.aclose()
            nursery.cancel_scope.cancel()

    trio.run(main)


def test_hello_is_small_and_exact():
    raw = encode_hello("c1", 2)
    assert raw[:4] == b"FRH1" and raw[4] == 2 and raw[5:7] == b"c1"
    assert struct.unpack("<Q", raw[7:]) == (2,)


#: What OpenSSL takes as the length of a ClientHello (its limit is 131,396 bytes).
_HELLO_BODY_BYTES = 131_000


def _record(payload: bytes) -> bytes:
    """One plaintext TLS record of the handshake type."""
    return b"\x16\x03\x01" + struct.pack(">H", len(payload)) + payload


def _hello_one_byte_per_record(total_bytes: int) -> bytes:
    """A ClientHello announcing ``_HELLO_BODY_BYTES`` and sending its body one byte per
    record (TLS lets a handshake message span records): six bytes on the wire per byte of the
    message, so ``ssl`` keeps asking for more until 786,000 bytes have come."""
    out = bytearray(_record(b"\x01" + _HELLO_BODY_BYTES.to_bytes(3, "big")))
    for i in range((total_bytes - len(out)) // 6):  # bounded by total_bytes
        out += _record(bytes([i & 0xFF]))
    return bytes(out)


def test_a_handshake_that_never_completes_is_cut_at_max_handshake_bytes(pki):
    """Bytes that ``ssl`` takes as a handshake under way, past the bound: the handshake is
    refused once MAX_HANDSHAKE_BYTES have been read, before the peer has sent everything
    (without the bound it would read all of it, then meet the end of the stream)."""
    wire = _hello_one_byte_per_record(MAX_HANDSHAKE_BYTES + 384 * 1024)
    assert len(wire) < 6 * _HELLO_BODY_BYTES  # all of it leaves the hello incomplete

    async def main():
        listener = (await trio.open_tcp_listeners(0, host="127.0.0.1"))[0]
        peer = await trio.open_tcp_stream("127.0.0.1", listener.socket.getsockname()[1])
        server = TlsStream(await listener.accept(), tls_for(pki, 2).server_context(),
                           server_side=True)

        async def send_then_end():
            try:
                await peer.send_all(wire)
                await peer.send_eof()
            except trio.BrokenResourceError:
                pass  # the server closed first

        async with trio.open_nursery() as nursery:
            nursery.start_soon(send_then_end)
            with trio.fail_after(30):
                with pytest.raises(trio.BrokenResourceError, match="without completing") as got:
                    await server.do_handshake()
            await server.aclose()
            nursery.cancel_scope.cancel()
        received = int(re.search(r"sent (\d+) bytes", str(got.value)).group(1))
        assert MAX_HANDSHAKE_BYTES <= received < len(wire), received
        await peer.aclose()
        await listener.aclose()

    trio.run(main)


def test_tls_stream_gives_back_every_byte_in_order_whatever_the_sizes(pki):
    """Writes from 1 byte to several records (a record holds at most 16 KiB), many records
    per socket read, and reads asking for less than a record holds (the rest stays inside
    ``ssl``, with no ciphertext waiting): every byte comes out, in order."""
    sizes = [1, 100, 16383, 16384, 16385, 70000, 3, 250_000, 17, 16384 * 3]
    payload = bytes(i * 7 % 251 for i in range(sum(sizes)))
    read_limits = [7, 1000, 16384, 1 << 18, 16383]

    async def main():
        listener = (await trio.open_tcp_listeners(0, host="127.0.0.1"))[0]
        raw_client = await trio.open_tcp_stream("127.0.0.1", listener.socket.getsockname()[1])
        client = TlsStream(raw_client, tls_for(pki, 1).client_context(), server_side=False)
        server = TlsStream(await listener.accept(), tls_for(pki, 2).server_context(),
                           server_side=True)
        got = bytearray()

        async def send():
            at = 0
            for n in sizes:  # bounded
                await client.send_all(payload[at:at + n])
                at += n

        async def receive():
            for i in range(len(payload)):  # bounded: each turn takes at least one byte
                chunk = await server.receive_some(read_limits[i % len(read_limits)])
                assert 0 < len(chunk) <= read_limits[i % len(read_limits)]
                got.extend(chunk)
                if len(got) >= len(payload):
                    return

        with trio.fail_after(30):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(client.do_handshake)
                nursery.start_soon(server.do_handshake)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(send)
                nursery.start_soon(receive)
        assert bytes(got) == payload
        for s in (client, server, listener):
            await s.aclose()

    trio.run(main)
