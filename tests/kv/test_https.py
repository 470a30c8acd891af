"""The KV API over HTTPS with client certificates, and Raft over that HTTPS (the HTTP network),
on real sockets: three nodes (``run_node``, memory stores) on 127.0.0.1 with certificates from
``fastraft.kv.certs``. Who may do what is ``fastraft.kv.access``; every refusal is checked to
change nothing (no entry appended, no term moved, no membership changed)."""

from __future__ import annotations

from functools import partial

import httpx
import pytest
import trio

from fastraft import codec
from fastraft.kv import Set
from fastraft.kv.access import ApiTls, Peer, authorize, peer_of_certificate
from fastraft.kv.api import Forbidden
from fastraft.kv.certs import make_pki
from fastraft.kv.client import ClusterUnavailable, KVClient, client_tls_context
from fastraft.kv.http_network import HttpNetwork
from fastraft.kv.server import NodeOptions, run_node
from fastraft.messages import VoteRequest
from fastraft.net.protocol import RemoteError
from fastraft.net.tls import TlsConfig
from fastraft.types import Node

CLUSTER = "c1"
TIMEOUT_S = 90


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    base = tmp_path_factory.mktemp("pki")
    ours = make_pki(str(base / "ours"), CLUSTER, [1, 2, 3],
                    [("admin", "admin"), ("app", "client")])
    # another CA that names the same cluster id: its certificates must not verify
    stranger = make_pki(str(base / "stranger"), CLUSTER, [1], [("admin", "admin")])
    # our CA, another cluster id: verifies, but names no member of ours
    other = make_pki(str(base / "other"), "c2", [1, 4], [("admin", "admin")],
                     ca_from=str(base / "ours"))
    return {"ours": ours, "stranger": stranger, "other": other}


def node_tls(pki, node_id: int, which: str = "ours") -> TlsConfig:
    p = pki[which]
    cert, key = p.nodes[node_id]
    return TlsConfig(p.cluster_id, node_id, p.ca, cert, key)


def client_ctx(pki, name: str | None, which: str = "ours", ca_of: str = "ours"):
    if name is None:
        return client_tls_context(pki[ca_of].ca)
    cert, key = pki[which].clients[name]
    return client_tls_context(pki[ca_of].ca, cert, key)


def node_cert_ctx(pki, node_id: int, which: str = "ours"):
    cert, key = pki[which].nodes[node_id]
    return client_tls_context(pki["ours"].ca, cert, key)


async def start_nodes(nursery, pki, ids=(1, 2, 3), **extra) -> dict:
    infos = {}
    for i in ids:
        options = NodeOptions(node_id=i, addr="127.0.0.1:0", network="http",
                              api_tls=ApiTls(node_tls(pki, i), **extra),
                              request_timeout_s=2.0)
        infos[i] = await nursery.start(partial(run_node, options))
    return infos


async def post(ctx, addr: str, path: str, body: bytes):
    """One POST over HTTPS with the ``ssl`` context ``ctx``: (status, body bytes)."""
    async with httpx.AsyncClient(verify=ctx, trust_env=False, timeout=10) as http:
        r = await http.post(f"https://{addr}{path}", content=body)
        return r.status_code, r.content


async def formed(nursery, pki) -> tuple[dict, KVClient]:
    infos = await start_nodes(nursery, pki)
    admin = KVClient([infos[i].addr for i in (1, 2, 3)], deadline_s=30,
                     tls=client_ctx(pki, "admin"))
    # members learned over HTTPS from each node (GET /node with node 1's certificate)
    await admin.init([(i, infos[i].addr) for i in (1, 2, 3)], addr=infos[1].addr)
    await admin.write(Set("k", "v0"))
    return infos, admin


async def metrics(admin: KVClient, addr: str) -> dict:
    return await admin.metrics(addr)


def test_roles_and_the_https_raft_network(pki):
    """The cluster forms and replicates over HTTPS (the Raft RPCs between node certificates);
    clients without the right certificate are refused and change nothing."""
    async def main():
        with trio.fail_after(TIMEOUT_S):
            async with trio.open_nursery() as nursery:
                infos, admin = await formed(nursery, pki)
                a1 = infos[1].addr
                leader = (await metrics(admin, a1))["current_leader"]
                la = infos[leader].addr
                # replicated to every node over the HTTPS Raft network
                for i in (1, 2, 3):
                    with trio.fail_after(20):
                        while await admin.read("k", addr=infos[i].addr) != "v0":
                            await trio.sleep(0.02)
                before = await metrics(admin, la)

                # 1. no client certificate: the handshake fails, nothing is read
                async with KVClient([la], deadline_s=2, tls=client_ctx(pki, None)) as anon:
                    with pytest.raises(ClusterUnavailable, match="TLS|SSL|certificate"):
                        await anon.write(Set("k", "anonymous"))
                # 2. a client certificate of another CA: the same
                async with KVClient([la], deadline_s=2,
                                    tls=client_ctx(pki, "admin", "stranger")) as alien:
                    with pytest.raises(ClusterUnavailable, match="TLS|SSL|certificate"):
                        await alien.write(Set("k", "alien"))
                # 3. a client (non-admin) certificate: the application routes, not the admin ones
                async with KVClient([la], deadline_s=10, tls=client_ctx(pki, "app")) as app:
                    assert (await app.write(Set("k", "v1"))).value == "v1"
                    assert await app.consistent_read("k") == "v1"
                    for call in (app.add_learner(9, "127.0.0.1:9", "127.0.0.1:9"),
                                 app.change_membership([1, 2]), app.remove_learner([3])):
                        with pytest.raises(Forbidden, match="needs a certificate with the admin"):
                            await call
                ctx_app = client_ctx(pki, "app")
                status, body = await post(ctx_app, la, "/init", b"[]")
                assert status == 403 and b"admin role" in body
                vote = VoteRequest(term=before["current_term"] + 5, sender=2, last_log_term=99,
                                   last_log_index=99, leader_transfer=True)
                for ctx in (ctx_app, client_ctx(pki, "admin")):  # Raft routes: nodes only
                    status, body = await post(ctx, la, "/raft-vote", codec.encode_message(vote))
                    assert status == 403 and b"node (this cluster's)" in body, body
                # 4. a node certificate of another cluster id, from our CA: no role here
                ctx_c2 = node_cert_ctx(pki, 1, "other")
                for path, body in (("/raft-vote", codec.encode_message(vote)),
                                   ("/write", b'{"Set":{"key":"k","value":"c2"}}')):
                    status, answer = await post(ctx_c2, la, path, body)
                    assert status == 403 and b"cluster 'c2'" in answer, answer
                # 5. a node of ours speaking for another node: dropped
                other, third = sorted({1, 2, 3} - {leader})
                forged = VoteRequest(term=before["current_term"] + 5, sender=third,
                                     last_log_term=99, last_log_index=99, leader_transfer=True)
                status, answer = await post(node_cert_ctx(pki, other), la, "/raft-vote",
                                            codec.encode_message(forged))
                assert status == 403 and b"dropped" in answer, answer

                # nothing changed: same term, leader, membership; the value is the app's
                after = await metrics(admin, la)
                assert after["current_term"] == before["current_term"]
                assert after["current_leader"] == leader
                assert after["membership_config"] == before["membership_config"]
                assert await admin.consistent_read("k") == "v1"
                assert after["refused_requests"] == {"role": 8, "sender": 1}
                assert after["read_rounds"]["rounds"] >= 1
                async with httpx.AsyncClient(verify=client_ctx(pki, "admin"),
                                             trust_env=False) as http:
                    text = (await http.get(f"https://{la}/metrics/prometheus")).text
                assert 'fastraft_refused_requests_total{reason="role"} 8.0' in text
                assert "fastraft_read_rounds_total" in text
                await admin.aclose()
                nursery.cancel_scope.cancel()

    trio.run(main)


def test_admin_certificate_changes_the_membership_and_a_client_one_cannot(pki):
    async def main():
        with trio.fail_after(TIMEOUT_S):
            async with trio.open_nursery() as nursery:
                infos = await start_nodes(nursery, pki)
                a1, a2 = infos[1].addr, infos[2].addr
                async with KVClient([a1], deadline_s=20, tls=client_ctx(pki, "app")) as app:
                    with pytest.raises(Forbidden):
                        await app.init()
                    assert (await app.metrics(a1))["membership_config"]["membership"]["configs"] == []
                async with KVClient([a1], deadline_s=20, tls=client_ctx(pki, "admin")) as admin:
                    await admin.init()
                    await admin.add_learner(2, a2)  # raft address learned over HTTPS
                    answer = await admin.change_membership([1, 2])
                    assert answer["membership"]["membership"]["configs"] == [[1, 2]]
                    assert (await admin.write(Set("x", "1"))).value == "1"
                nursery.cancel_scope.cancel()

    trio.run(main)


def test_anonymous_loopback_clients_get_the_application_routes_only(pki):
    async def main():
        with trio.fail_after(TIMEOUT_S):
            async with trio.open_nursery() as nursery:
                infos = await start_nodes(nursery, pki, ids=(1,), anonymous_loopback=True)
                a1 = infos[1].addr
                anon_ctx = client_ctx(pki, None)
                status, body = await post(anon_ctx, a1, "/init", b"[]")
                assert status == 403 and b"admin role" in body
                async with KVClient([a1], deadline_s=20, tls=client_ctx(pki, "admin")) as admin:
                    await admin.init()
                async with KVClient([a1], deadline_s=20, tls=anon_ctx) as anon:
                    assert (await anon.write(Set("a", "b"))).value == "b"
                    assert await anon.consistent_read("a") == "b"
                nursery.cancel_scope.cancel()

    trio.run(main)


def test_the_http_network_refuses_a_node_of_another_cluster_both_ways(pki):
    """A node of cluster c2 (same CA) cannot get a Raft message accepted by ours, and our node
    dialling a c2 node's address drops what it answers (its certificate names another
    cluster); a node of ours dialled at a member's address that is another node is refused
    alike (the id in the certificate is checked, not only the cluster)."""
    async def main():
        with trio.fail_after(TIMEOUT_S):
            async with trio.open_nursery() as nursery:
                ours = await start_nodes(nursery, pki, ids=(1, 2))
                theirs = await nursery.start(partial(run_node, NodeOptions(
                    node_id=4, addr="127.0.0.1:0", network="http",
                    api_tls=ApiTls(node_tls(pki, 4, "other")))))
                vote = VoteRequest(term=7, sender=1, last_log_term=0, last_log_index=0)
                admin = KVClient([ours[2].addr], tls=client_ctx(pki, "admin"))
                # c2's node 1 dials our node 2: node 2 refuses it (403, its term stays), and
                # the dialler drops the answer of a node that is not c2's
                client = HttpNetwork(tls=node_tls(pki, 1, "other")).client(
                    2, Node(ours[2].addr))
                with pytest.raises(RemoteError, match="names \\('c1', 2\\)"):
                    await client.send(vote)
                await client.aclose()
                assert (await admin.metrics(ours[2].addr))["current_term"] == 0
                # our node 1 dials "node 4" at c2's node 4: its answer is dropped
                client = HttpNetwork(tls=node_tls(pki, 1)).client(4, Node(theirs.addr))
                with pytest.raises(RemoteError, match="names|403"):
                    await client.send(vote)
                await client.aclose()
                # our node 1 dials "node 3" at node 2's address: the id does not match
                client = HttpNetwork(tls=node_tls(pki, 1)).client(3, Node(ours[2].addr))
                with pytest.raises(RemoteError, match="names"):
                    await client.send(vote)
                await client.aclose()
                # and the right one works: node 1 asks node 2 for a vote in term 7
                client = HttpNetwork(tls=node_tls(pki, 1)).client(2, Node(ours[2].addr))
                answer = await client.send(vote)
                assert answer is not None and answer.term == 7
                await client.aclose()
                assert (await admin.metrics(ours[2].addr))["current_term"] == 7
                await admin.aclose()
                nursery.cancel_scope.cancel()

    trio.run(main)


def test_peer_of_certificate_reads_roles_from_the_san_and_the_ou():
    def cert(uri, ou=None):
        subject = ((("organizationalUnitName", ou),),) if ou else ()
        return {"subjectAltName": (("URI", uri), ("DNS", "localhost")), "subject": subject}

    assert peer_of_certificate(cert("fastraft://c1/node/3"), "c1") == Peer("node", "node 3", 3)
    assert peer_of_certificate(cert("fastraft://c1/client/ops", "admin"), "c1").role == "admin"
    assert peer_of_certificate(cert("fastraft://c1/client/app", "client"), "c1").role == "client"
    for bad in (cert("fastraft://c2/client/ops", "admin"), cert("fastraft://c2/node/1"),
                cert("fastraft://c1/client/ops"), cert("https://example.com"), {}, None):
        peer = peer_of_certificate(bad, "c1")
        assert peer.role is None and peer.why
        for path in ("/write", "/init", "/raft-append", "/metrics"):
            assert authorize(peer, path) is not None
    node = Peer("node", "node 3", 3)
    assert authorize(node, "/raft-append") is None and authorize(node, "/write") is None
    assert authorize(node, "/change-membership") is not None
    client = Peer("client", "client 'app' (client)")
    assert authorize(client, "/consistent_read") is None
    assert "admin role" in authorize(client, "/add-learner")
    assert authorize(client, "/raft-vote") is not None
    admin = Peer("admin", "client 'ops' (admin)")
    assert authorize(admin, "/init") is None and authorize(admin, "/raft-vote") is not None
    assert authorize(client, "/init").startswith("/init needs a certificate with the admin role")
