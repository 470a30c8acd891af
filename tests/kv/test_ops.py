"""The operator's routes (fastraft.kv.ops): Prometheus text parsed by prometheus_client's own
parser, JSON kept as /metrics' default, and /health's 200/503 with the reason."""

import dataclasses
import json
import tempfile

import httpx
import trio
from prometheus_client.parser import text_string_to_metric_families

from fastraft.kv import MemoryKVStateMachine
from fastraft.kv.app import KVApp
from fastraft.kv.service import KVService, NodeInfo
from fastraft.net import MemoryRouter
from fastraft.runtime import open_raft
from fastraft.storage import LmdbLogStore
from kv_fixtures import KVTestCluster, addr, run


def _families(text: str) -> dict:
    return {f.name: f for f in text_string_to_metric_families(text)}


def _value(families, name, **labels):
    """The value of sample ``name`` (a counter's ``_total``, a histogram's ``_count``...)."""
    for family in families.values():
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return s.value
    raise KeyError((name, labels))


async def _text(c, i, path="/metrics/prometheus", headers=None):
    r = await c.http[i].get(path, headers=headers or {})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    return r.text


def test_prometheus_text_parses_and_reports_the_cluster():
    async def main():
        async with trio.open_nursery() as nursery:
            c = KVTestCluster(nursery)
            leader = await c.form(3)
            for i in range(5):
                status, _ = await c.post(leader, "/write", {"Set": {"key": f"k{i}", "value": "v"}})
                assert status == 200
            m = c.raft(leader).metrics()
            for i in (1, 2, 3):
                await c.raft(i).wait(5).applied_index(m.last_log_index)
            texts = {i: await _text(c, i) for i in (1, 2, 3)}
            negotiated = await _text(c, 2, "/metrics", {"accept": "text/plain;version=0.0.4"})
            json_default = await c.get(2, "/metrics")
            await c.stop_all()
            return leader, m, texts, negotiated, json_default

    leader, m, texts, negotiated, (status, doc) = run(main)
    fam = _families(texts[leader])
    assert _value(fam, "fastraft_term") == m.current_term
    assert _value(fam, "fastraft_leader_id") == leader
    assert _value(fam, "fastraft_role", role="leader") == 1
    assert _value(fam, "fastraft_role", role="follower") == 0
    assert _value(fam, "fastraft_node_info", node_id=str(leader), addr=addr(leader)) == 1
    assert _value(fam, "fastraft_last_log_index") == m.last_log_index
    assert _value(fam, "fastraft_committed_index") == m.committed
    for peer in {1, 2, 3} - {leader}:
        assert _value(fam, "fastraft_peer_match_index", peer=str(peer)) == m.last_log_index
        assert _value(fam, "fastraft_peer_replication_lag_entries", peer=str(peer)) == 0
    # membership entries, the leader's blank entry and the five writes (Raft §8)
    assert _value(fam, "fastraft_proposals_total") >= 5
    assert _value(fam, "fastraft_commits_total") == m.committed
    assert _value(fam, "fastraft_elections_won_total") == 1
    assert fam["fastraft_log_append_seconds"].type == "histogram"
    count = _value(fam, "fastraft_log_append_seconds_count")
    assert count >= 1
    assert _value(fam, "fastraft_log_append_seconds_bucket", le="+Inf") == count
    assert "fastraft_log_sync_seconds" not in fam  # the memory store does not sync
    follower = _families(texts[2 if leader != 2 else 3])
    assert _value(follower, "fastraft_role", role="follower") == 1
    assert _value(follower, "fastraft_applied_index") == m.last_log_index
    assert not [s for s in follower["fastraft_peer_match_index"].samples]
    assert "fastraft_term" in _families(negotiated)
    assert status == 200 and doc["Ok"]["id"] == 2  # JSON stays the default


def test_health_answers_503_with_the_reason_until_there_is_a_leader():
    async def main():
        async with trio.open_nursery() as nursery:
            c = KVTestCluster(nursery)
            await c.start(1)
            before = await c.get(1, "/health")
            await c.post(1, "/init", [])
            await c.wait_leader([1])
            after = await c.get(1, "/health")
            strict = await c.get(1, "/health?max_lag=0")
            bad = await c.get(1, "/health?max_lag=-1")
            await c.stop_all()
            return before, after, strict, bad

    before, after, strict, bad = run(main)
    assert before[0] == 503 and before[1]["status"] == "unavailable"
    assert "no leader" in before[1]["reason"] and before[1]["leader"] is None
    assert after == (200, {"status": "ok", "id": 1, "state": "leader", "term": after[1]["term"],
                           "leader": 1, "apply_lag": 0})
    assert strict[0] == 200
    assert bad[0] == 400 and "max_lag" in bad[1]["Err"]["BadRequest"]["reason"]


def test_health_is_503_when_applies_lag_behind_the_bound():
    from fastraft.kv.ops import health
    from fastraft.runtime.metrics import RaftMetrics, ServerState
    from fastraft.types import LogId, StoredMembership, Vote

    def metrics(committed, applied):
        return RaftMetrics(id=1, state=ServerState.FOLLOWER, current_term=2, vote=Vote(2, 1),
                           last_log_index=committed, last_applied=LogId(2, applied),
                           committed=committed, snapshot=None, purged=None, current_leader=1,
                           membership=StoredMembership())

    assert health(metrics(1500, 500), max_lag=999)[0] == 503
    assert "1000 committed entries not applied" in health(metrics(1500, 500), 999)[1]["reason"]
    assert health(metrics(1500, 500), max_lag=1000)[0] == 200
    assert health(metrics(1500, 501), max_lag=999)[0] == 200
    # a follower that had to refuse entries rewriting its committed log (core/guard.py)
    diverged = dataclasses.replace(metrics(10, 10), committed_conflicts=1)
    assert health(diverged)[0] == 503 and "disagrees" in health(diverged)[1]["reason"]


def test_lmdb_node_reports_its_fsync_latency():
    """On a real lmdb log (fsync'd), the sync histogram counts the store's synced batches."""

    async def main(path):
        router = MemoryRouter()
        async with open_raft(1, log_store=await LmdbLogStore.open(path),
                             state_machine=MemoryKVStateMachine(),
                             network=router.network(1)) as raft:
            service = KVService(raft, MemoryKVStateMachine(), NodeInfo(1, addr(1), addr(1), "tcp"))
            app = KVApp(service)
            from fastraft import Node
            await raft.initialize({1: Node(addr(1))})
            await raft.wait(10).current_leader(1)
            for i in range(3):
                await raft.client_write(json.dumps({"Set": {"key": "k", "value": str(i)}}).encode())
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                         base_url="http://n1") as http:
                r = await http.get("/metrics/prometheus")
            return r.text

    with tempfile.TemporaryDirectory() as d:
        text = trio.run(main, f"{d}/log")
    fam = _families(text)
    assert fam["fastraft_log_sync_seconds"].type == "histogram"
    synced = _value(fam, "fastraft_log_sync_seconds_count")
    assert synced >= 3  # the vote, the membership, the writes: each a synced batch at least once
    assert _value(fam, "fastraft_log_sync_seconds_sum") > 0
