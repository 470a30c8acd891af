"""Forged Raft frames against a real cluster: three ``fastraft-kv serve`` processes on 127.0.0.1
with lmdb stores, attacked through their Raft TCP ports by a process that is no member (the
attacks of the trust-boundary issue). Each test sends its frames over a real socket, then
checks that the cluster still has its leader, in the same term, takes writes, and counts what
it dropped. Run in both builds (the nodes inherit FASTRAFT_PURE_PYTHON).

The rows that go through the HTTP Raft network run over plain HTTP and over HTTPS (``https``:
the cluster of the README's secured section, its Raft RPCs between node certificates). Over
HTTPS the attacker holds a node certificate of the cluster's CA: a member's own (a member
gone rogue: only the engine's bounds protect), or node 99's (a node the CA certified that is
no member); a message whose ``sender`` is not the certificate's node is refused with 403
before the engine sees it (spoofing the leader is impossible), and one sent without a node
certificate too. Spoofing over the TCP network's mutual TLS is tested in tests/net.

Raft §5.1 (terms), §5.3-5.4 (log matching, committed entries), thesis §3.10 (TimeoutNow),
§4.2.3 (disruptive servers), §6.2 and §9.6 (check-quorum, pre-vote)."""

from __future__ import annotations

import os
import shutil

import ssl

import httpx
import pytest
import trio

from fastraft import Entry, Vote, codec
from fastraft.kv import Set
from fastraft.kv.client import KVClient
from fastraft.kv.certs import make_pki
from fastraft.kv.client import client_tls_context
from fastraft.kv.commands import encode_command
from fastraft.kv.http_network import RAFT_ROUTES
from fastraft.kv.local_cluster import LocalCluster, NodeStartError
from fastraft.messages import AppendEntriesRequest, TimeoutNowRequest, VoteRequest
from fastraft.net.framing import FrameReader, encode_ok
from fastraft.net.tcp import parse_addr
from fastraft.storage import LmdbLogStore
from fastraft.types import EntryKind

TIMEOUT_S = 120
U64_MAX = (1 << 64) - 1
STRANGER = 99
CLUSTER_ID = "attacked"


async def send_frames(raft_addr: str, msgs: list, answer_timeout_s: float = 2.0) -> list:
    """Send ``msgs`` as request frames on a fresh connection to ``raft_addr`` and return the
    answers read within ``answer_timeout_s`` (dropped requests get none or an empty one)."""
    host, port = parse_addr(raft_addr)
    stream = await trio.open_tcp_stream(host, port)
    answers = []
    async with stream:
        await stream.send_all(b"".join(encode_ok(k + 1, m) for k, m in enumerate(msgs)))
        reader = FrameReader(stream)
        with trio.move_on_after(answer_timeout_s):
            while len(answers) < len(msgs):  # bounded by the count and the deadline
                got = await reader.read()
                if got is None:
                    break
                answers.append(got[1])
    return answers


async def post_raft_rpc(addr: str, msg, tls: ssl.SSLContext | None = None) -> int:
    """POST ``msg`` to its Raft route on a node's HTTP address (the KV example's HTTP network),
    as a hand-written HTTP/1.1 request, over TLS with ``tls`` (a client context holding the
    certificate to show); the response's status."""
    body = codec.encode_message(msg)
    route = {cls: route for route, cls in RAFT_ROUTES.items()}[type(msg)]
    host, port = parse_addr(addr)
    stream = await trio.open_tcp_stream(host, port)
    if tls is not None:
        stream = trio.SSLStream(stream, tls, server_hostname=None, https_compatible=True)
    async with stream:
        await stream.send_all(
            f"POST {route} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/octet-stream"
            f"\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body)
        head = b""
        with trio.move_on_after(5):
            while b"\r\n" not in head and len(head) < 4096:  # bounded by size and time
                chunk = await stream.receive_some(4096)
                if not chunk:
                    break
                head += chunk
    return int(head.split(b" ", 2)[1])


def node_tls(cluster: LocalCluster, node_id: int) -> ssl.SSLContext | None:
    """A client context showing node ``node_id``'s certificate (None for a plain cluster)."""
    if cluster.peer_tls is None:
        return None
    folder = cluster.peer_tls[0]
    return client_tls_context(os.path.join(folder, "ca.pem"),
                              os.path.join(folder, f"node-{node_id}.pem"),
                              os.path.join(folder, f"node-{node_id}-key.pem"))


async def post_as(cluster: LocalCluster, addr: str, msg) -> int:
    """``post_raft_rpc`` of ``msg`` to ``addr``; over HTTPS with the certificate of the node
    ``msg`` names as its sender."""
    return await post_raft_rpc(addr, msg, node_tls(cluster, msg.sender))


async def metrics_until(client: KVClient, addr: str, predicate, what: str, timeout_s=20.0):
    """The node's metrics once ``predicate`` holds (polled, bounded)."""
    m = None
    with trio.move_on_after(timeout_s):
        while True:
            m = await client.metrics(addr)
            if predicate(m):
                return m
            await trio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}; last metrics: {m}")


async def start_three(cluster: LocalCluster, client: KVClient) -> dict:
    """Nodes 1-3 (started by ``run_cluster``) initialized as one cluster and led by node 1;
    the leader's metrics."""
    nodes = cluster.nodes
    await client.init([(i, nodes[i].addr, nodes[i].raft_addr) for i in (1, 2, 3)],
                      addr=nodes[1].addr)
    await metrics_until(client, nodes[1].addr, lambda m: m["state"] == "Leader",
                        "node 1 to lead")
    await client.write(Set("before", "1"))
    for i in (1, 2, 3):
        await metrics_until(client, nodes[i].addr,
                            lambda m: m["current_leader"] == 1 and m["last_applied"] is not None
                            and m["last_applied"]["index"] >= 2, f"node {i} to follow node 1")
    return await client.metrics(nodes[1].addr)


#: As in test_cluster: Raft over HTTP/1.1 needs slower timers on a loaded machine.
SLOW_TIMERS = ("--heartbeat-ms", "100", "--election-timeout-ms", "1000", "2000")


def run_cluster(tmp_path, attack, network: str = "tcp") -> None:
    """Three nodes with the Raft ``network`` "tcp", "http", or "https" (the http network over
    the HTTPS API, node certificates from ``fastraft.kv.certs``, node 99's among them), and
    ``attack(cluster, client)`` run against them; the client holds an admin certificate."""
    peer_tls = None
    if network == "https":
        pki = os.path.join(str(tmp_path), "pki")
        make_pki(pki, CLUSTER_ID, [1, 2, 3, STRANGER])
        peer_tls = (pki, CLUSTER_ID)

    async def main():
        with trio.fail_after(TIMEOUT_S):
            async with LocalCluster(str(tmp_path), verbose=1,
                                    network="tcp" if network == "tcp" else "http",
                                    serve_args=SLOW_TIMERS if network != "tcp" else (),
                                    peer_tls=peer_tls) as cluster:
                try:
                    for i in (1, 2, 3):
                        await cluster.start(i)
                    async with KVClient(cluster.addrs(), deadline_s=20,
                                        tls=cluster.client_tls("admin")) as client:
                        await attack(cluster, client)
                except BaseException:
                    for i in sorted(cluster.nodes):  # shown by pytest with the failure
                        print(f"--- node {i} log ---\n{cluster.log_tail(i)}")
                    raise

    trio.run(main)


async def assert_refused_over_https(cluster: LocalCluster, client: KVClient, msg) -> None:
    """Over HTTPS, ``msg`` sent with another node's certificate (node 99's, or a member's
    when ``msg`` claims node 99) and sent with a client certificate are refused with 403 by
    every node, before the engine: the refusals are counted, the engine's drops are not."""
    if cluster.peer_tls is None:
        return
    before = {i: await client.metrics(cluster.nodes[i].addr) for i in (1, 2, 3)}
    other = 1 if msg.sender == STRANGER else STRANGER
    for i in (1, 2, 3):
        addr = cluster.nodes[i].addr
        assert await post_raft_rpc(addr, msg, node_tls(cluster, other)) == 403
        assert await post_raft_rpc(addr, msg, cluster.client_tls("admin")) == 403
    for i in (1, 2, 3):
        m = await client.metrics(cluster.nodes[i].addr)
        refused, was = m["refused_requests"], before[i]["refused_requests"]
        assert refused.get("sender", 0) == was.get("sender", 0) + 1, (i, refused)
        assert refused.get("role", 0) == was.get("role", 0) + 1, (i, refused)
        assert m["dropped_messages"] == before[i]["dropped_messages"], (i, m)
        assert m["current_term"] == before[i]["current_term"]


async def assert_healthy(cluster: LocalCluster, client: KVClient, term: int, key: str) -> None:
    """Leader 1 still leads in ``term``; a write through it reaches every node."""
    await client.write(Set(key, "ok"), addr=cluster.nodes[1].addr)
    for i in (1, 2, 3):
        addr = cluster.nodes[i].addr
        with trio.fail_after(20):
            while await client.read(key, addr=addr) != "ok":  # bounded by fail_after
                await trio.sleep(0.02)
        m = await client.metrics(addr)
        assert m["current_term"] == term and m["current_leader"] == 1, (i, m)
        assert cluster.nodes[i].running


def dropped(m: dict, reason: str) -> int:
    return m.get("dropped_messages", {}).get(reason, 0)


# -- the table's rows ----------------------------------------------------------------------------

@pytest.mark.parametrize("network", ["tcp", "http", "https"])
def test_vote_request_with_term_2_64_minus_1_and_leader_transfer(tmp_path, network):
    """Row 1: the leader voted, stepped down, and the next election's term + 1 overflowed u64
    on every node, for ever (the term was persisted). Also through ``/raft-vote`` with the
    HTTP network, and over HTTPS from a member's own certificate."""
    async def attack(cluster, client):
        m = await start_three(cluster, client)
        term = m["current_term"]
        for i in (1, 2, 3):
            candidate = 3 if i == 2 else 2  # a member's id: only the bound on terms protects
            msg = VoteRequest(term=U64_MAX, sender=candidate, last_log_term=U64_MAX,
                              last_log_index=U64_MAX, pre_vote=False, leader_transfer=True)
            if network == "tcp":
                assert await send_frames(cluster.nodes[i].raft_addr, [msg]) == [None]
            else:
                assert await post_as(cluster, cluster.nodes[i].addr, msg) == 204  # no answer
        for i in (1, 2, 3):
            await metrics_until(client, cluster.nodes[i].addr,
                                lambda m: dropped(m, "malformed") >= 1 or m["current_term"] != term,
                                f"node {i} to handle the vote request")
        await assert_refused_over_https(cluster, client, msg)
        await assert_healthy(cluster, client, term, "after-vote")
        for i in (1, 2, 3):
            assert dropped(await client.metrics(cluster.nodes[i].addr), "malformed") == 1
        # nothing of it was persisted: every node restarts into a working cluster
        for i in (1, 2, 3):
            await cluster.kill(i)
        for i in (1, 2, 3):
            await cluster.restart(i)
        await client.write(Set("after-restart", "ok"))
        for i in (1, 2, 3):
            m = await client.metrics(cluster.nodes[i].addr)
            assert m["current_term"] < 1 << 62

    run_cluster(tmp_path, attack, network)


@pytest.mark.parametrize("network", ["tcp", "https"])
def test_append_entries_from_non_member_99_is_not_committed(tmp_path, network):
    """Row 2: followers accepted "leader 99" and its forged write committed on all three.
    Over HTTPS node 99 holds a certificate of the cluster's CA: it is still no member."""
    async def attack(cluster, client):
        m = await start_three(cluster, client)
        term, last = m["current_term"], m["last_log_index"]
        forged = Entry(term + 1, last + 1, EntryKind.NORMAL, encode_command(Set("forged", "x")))
        msg = AppendEntriesRequest(term=term + 1, sender=STRANGER, prev_log_term=term,
                                   prev_log_index=last, leader_commit=last + 1, seq=1,
                                   entries=[forged])
        for i in (1, 2, 3):  # no answer
            if network == "tcp":
                assert await send_frames(cluster.nodes[i].raft_addr, [msg]) == [None]
            else:
                assert await post_as(cluster, cluster.nodes[i].addr, msg) == 204
        for i in (2, 3):
            await metrics_until(client, cluster.nodes[i].addr,
                                lambda m: dropped(m, "non_member") >= 1 or m["current_term"] > term,
                                f"node {i} to handle the forged append")
        await assert_healthy(cluster, client, term, "after-append")
        for i in (1, 2, 3):
            assert await client.read("forged", addr=cluster.nodes[i].addr) is None
            assert dropped(await client.metrics(cluster.nodes[i].addr), "non_member") == 1
        assert "drops messages from node 99" in cluster.log_tail(2, 100_000)
        await assert_refused_over_https(cluster, client, msg)

    run_cluster(tmp_path, attack, network)


def test_vote_request_storm_from_non_member_99_with_leader_transfer(tmp_path):
    """Row 4: six transfer vote requests a second from node 99 left the cluster without a
    leader for as long as they came (thesis §4.2.3)."""
    async def attack(cluster, client):
        m = await start_three(cluster, client)
        term = m["current_term"]
        writes = 0

        async def storm():
            for k in range(18):  # three seconds at six a second
                for i in (1, 2, 3):
                    msg = VoteRequest(term=term + 1 + k, sender=STRANGER, last_log_term=1 << 40,
                                      last_log_index=1 << 40, pre_vote=k % 2 == 1,
                                      leader_transfer=True)
                    await send_frames(cluster.nodes[i].raft_addr, [msg], 0.0)
                await trio.sleep(1 / 6)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(storm)
            for k in range(10):
                await client.write(Set(f"during-{k}", "ok"))
                writes += 1
                await trio.sleep(0.2)
        assert writes == 10
        for i in (1, 2, 3):
            await metrics_until(client, cluster.nodes[i].addr,
                                lambda m: dropped(m, "not_voter") >= 18, f"node {i}'s drops")
        await assert_healthy(cluster, client, term, "after-storm")
        for i in (1, 2, 3):  # logged once per sender, however often it sends
            assert cluster.log_tail(i, 1_000_000).count("drops messages from node 99") == 1

    run_cluster(tmp_path, attack)


@pytest.mark.parametrize("network", ["tcp", "https"])
def test_timeout_now_from_non_member_99(tmp_path, network):
    """Row 5: a follower started an election at once: an outsider picked the leader (over
    HTTPS: an outsider with a certificate of the cluster's CA)."""
    async def attack(cluster, client):
        m = await start_three(cluster, client)
        term = m["current_term"]
        msgs = [TimeoutNowRequest(term=term, sender=STRANGER),
                TimeoutNowRequest(term=term + 1, sender=STRANGER)]
        for target in (2, 3):
            if network == "tcp":
                answers = await send_frames(cluster.nodes[target].raft_addr, msgs)
                assert answers == [None, None]
            else:
                for msg in msgs:
                    assert await post_as(cluster, cluster.nodes[target].addr, msg) == 204
        for i in (2, 3):
            await metrics_until(client, cluster.nodes[i].addr,
                                lambda m: dropped(m, "non_member") >= 2 or m["current_term"] > term,
                                f"node {i} to handle TimeoutNow")
        await assert_healthy(cluster, client, term, "after-timeout-now")
        await assert_refused_over_https(cluster, client, msgs[1])

    run_cluster(tmp_path, attack, network)


def test_follower_that_must_drop_entries_rewriting_its_committed_log_says_so(tmp_path):
    """Last row: a node whose committed entries its leader's log lacks (lost elsewhere: here
    two of three nodes lost their data and were initialized anew) refused that leader's
    entries for ever, logging nothing. Now it logs an ERROR and its metrics say its log
    diverged (for a health check)."""
    async def attack(cluster, client):
        m = await start_three(cluster, client)
        # a leader of a later term, so that the old log's terms differ from the new one's
        await cluster.kill(1)
        for k in range(5):
            await client.write(Set(f"old-{k}", "1"))
        node3 = cluster.nodes[3].addr
        m3 = await metrics_until(client, node3,
                                 lambda m3: m3["committed"] >= m["last_log_index"] + 6
                                 and m3["current_term"] > m["current_term"], "node 3 to commit")
        assert m3["current_leader"] in (2, 3)
        for i in (1, 2, 3):
            await cluster.kill(i)
        for i in (1, 2):  # their disks are lost; they start empty, on the same addresses
            shutil.rmtree(cluster.nodes[i].data_dir)
            await cluster.restart(i)
        nodes = cluster.nodes
        await client.init([(i, nodes[i].addr, nodes[i].raft_addr) for i in (1, 2, 3)],
                          addr=nodes[1].addr)
        for k in range(8):
            await client.write(Set(f"new-{k}", "2"))
        await cluster.restart(3)
        diverged = None
        with trio.move_on_after(30):
            while diverged is None:  # bounded by the deadline
                for i in (1, 2, 3):
                    try:
                        m = await client.metrics(nodes[i].addr)
                    except Exception:
                        continue
                    if m.get("log_diverged"):
                        diverged = i
                await trio.sleep(0.1)
        assert diverged is not None, "no node reported the divergence"
        m = await client.metrics(nodes[diverged].addr)
        assert m["committed_conflicts"] >= 1
        assert "would rewrite its committed log" in cluster.log_tail(diverged, 200_000)
        async with httpx.AsyncClient(timeout=10) as http:  # and the health check says so
            health = await http.get(f"http://{nodes[diverged].addr}/health")
        assert health.status_code == 503 and "disagrees" in health.json()["reason"]

    run_cluster(tmp_path, attack)


def test_a_persisted_term_beyond_the_ceiling_stops_the_start_with_a_clear_error(tmp_path):
    """Row 1's aftermath: a term of 2**64-1 on disk made every restart crash again. Now the
    node refuses to start, saying which value is wrong, and the others carry on."""
    async def attack(cluster, client):
        m = await start_three(cluster, client)
        await cluster.stop(3)
        store = await LmdbLogStore.open(os.path.join(cluster.nodes[3].data_dir, "log"))
        try:
            await store.save_vote(Vote(U64_MAX, 0))
        finally:
            await store.aclose()
        with pytest.raises(NodeStartError, match=r"saved term \d+ is outside \[0, 2\*\*62\)"):
            await cluster.restart(3)
        await client.write(Set("still", "ok"), addr=cluster.nodes[1].addr)
        assert (await client.metrics(cluster.nodes[1].addr))["current_term"] == m["current_term"]

    run_cluster(tmp_path, attack)
