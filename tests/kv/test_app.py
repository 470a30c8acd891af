"""The KV HTTP API on in-process nodes (``kv_fixtures``): openraft's answer shapes, where
requests are served, and that bad input gets 400 and changes nothing."""

import pytest
import trio

from fastraft.kv.api import MAX_BODY_BYTES
from kv_fixtures import KVTestCluster, addr, raft_addr, run


def test_the_guide_flow_answers_in_openraft_shapes():
    async def main():
        async with trio.open_nursery() as nursery:
            c = KVTestCluster(nursery)
            leader = await c.form(3)
            assert leader == 1
            status, doc = await c.post(1, "/write", {"Set": {"key": "foo", "value": "bar"}})
            assert status == 200
            index = c.raft(1).metrics().last_log_index
            assert doc == {"Ok": {"log_id": {"leader_id": {"term": c.raft(1).metrics().current_term,
                                                           "node_id": 1}, "index": index},
                                  "data": {"value": "bar"}}}
            cas = {"CompareAndSwap": {"key": "foo", "expected": "bar", "value": "baz"}}
            assert (await c.post(1, "/write", cas))[1]["Ok"]["data"] == {"value": "baz", "swapped": True}
            assert (await c.post(1, "/write", cas))[1]["Ok"]["data"] == {"value": "baz", "swapped": False}
            absent = {"CompareAndSwap": {"key": "new", "expected": None, "value": "1"}}
            assert (await c.post(1, "/write", absent))[1]["Ok"]["data"] == {"value": "1", "swapped": True}
            deleted = await c.post(1, "/write", {"Delete": {"key": "new"}})
            assert deleted[1]["Ok"]["data"] == {"value": None}
            assert await c.post(1, "/consistent_read", "foo") == (200, {"Ok": "baz"})
            assert await c.post(1, "/read", "new") == (200, {"Ok": None})
            # every node applies it; its local read then answers
            last = c.raft(1).metrics().last_log_index
            for i in (2, 3):
                await c.raft(i).wait(5).applied_index(last)
                assert await c.post(i, "/read", "foo") == (200, {"Ok": "baz"})

            status, doc = await c.get(2, "/metrics")
            m = doc["Ok"]
            assert status == 200 and m["id"] == 2 and m["state"] == "Follower"
            assert m["current_leader"] == 1 and m["replication"] is None
            config = m["membership_config"]["membership"]
            assert config["configs"] == [[1, 2, 3]] and config["learners"] == []
            # raft addresses were learned from the nodes themselves (GET /node)
            assert config["nodes"] == {str(i): {"addr": addr(i), "raft_addr": raft_addr(i)}
                                       for i in (1, 2, 3)}
            m1 = (await c.get(1, "/metrics"))[1]["Ok"]
            assert m1["state"] == "Leader" and set(m1["replication"]) == {"2", "3"}
            assert await c.get(3, "/node") == (200, {"Ok": {"id": 3, "addr": addr(3),
                                                            "raft_addr": raft_addr(3),
                                                            "network": "tcp"}})
            await c.stop_all()

    run(main)


def test_a_follower_refuses_without_appending_and_names_the_leader():
    async def main():
        async with trio.open_nursery() as nursery:
            c = KVTestCluster(nursery)
            await c.form(3)
            # every node has the leader's whole log first, so that "before" is settled
            last = c.raft(1).metrics().last_log_index
            for i in (2, 3):
                await c.raft(i).wait(10).log_index(last)
            before = {i: c.raft(i).metrics().last_log_index for i in (1, 2, 3)}
            forward = {"Err": {"APIError": {"ForwardToLeader": {
                "leader_id": 1, "leader_node": {"addr": addr(1), "raft_addr": raft_addr(1)}}}}}
            assert await c.post(2, "/write", {"Set": {"key": "k", "value": "v"}}) == (200, forward)
            assert await c.post(3, "/consistent_read", "k") == (200, forward)
            assert await c.post(3, "/change-membership", [1, 2]) == (200, forward)
            assert await c.post(2, "/add-learner", [4, addr(4)]) == (200, forward)
            await trio.sleep(1)
            assert {i: c.raft(i).metrics().last_log_index for i in (1, 2, 3)} == before
            assert c.sms[1].get("k") is None
            await c.stop_all()

    run(main)


BAD_WRITES = [
    (b"not json", "not UTF-8 JSON"),
    (b"\xff\xfe", "not UTF-8 JSON"),
    (b"[]", "exactly one of Set, Delete, CompareAndSwap"),
    (b'{"Set": {"key": "a"}}', "Set takes exactly the fields key, value"),
    (b'{"Set": {"key": "a", "value": "b", "extra": 1}}', "Set takes exactly the fields"),
    (b'{"Set": {"key": "", "value": "b"}}', "key must be a non-empty string"),
    (b'{"Set": {"key": 1, "value": "b"}}', "key must be a non-empty string"),
    (b'{"Set": {"key": "a", "value": 2}}', "value must be a string"),
    # a lone surrogate escape is text no replica could store: the codec refuses it
    (b'{"Set": {"key": "a", "value": "\\ud800"}}', "not UTF-8 JSON"),
    (b'{"Put": {"key": "a", "value": "b"}}', "unknown command 'Put'"),
    (b'{"Set": {"key": "a", "value": "b"}, "Delete": {"key": "a"}}', "exactly one of"),
    (b'{"CompareAndSwap": {"key": "a", "expected": 5, "value": "b"}}', "expected must be a string or null"),
    (('{"Set": {"key": "%s", "value": "b"}}' % ("k" * 600)).encode(), "key longer than 511 bytes"),
    (b"[" * 100_000 + b"]" * 100_000, "not UTF-8 JSON"),
]

BAD_ADMIN = [
    ("/read", b"5", "non-empty JSON string"),
    ("/read", b'""', "non-empty JSON string"),
    ("/consistent_read", b'{"key": "a"}', "non-empty JSON string"),
    ("/consistent_read", ('"%s"' % ("x" * 600)).encode(), "at most 511 are allowed"),
    ("/init", b'{"1": "a"}', "list of [id"),
    ("/init", b'[[1, "127.0.0.1:1"], [1, "127.0.0.1:2"]]', "names a node id twice"),
    ("/init", b'[[0, "127.0.0.1:1"]]', "positive integer node id"),
    ("/init", b'[[true, "127.0.0.1:1"]]', "positive integer node id"),
    ("/init", b'[[1, "nohostport"]]', "'host:port'"),
    ("/add-learner", b"[4]", "must be [id, \"addr\"]"),
    ("/add-learner", b'[4, "127.0.0.1:21004", 5]', "raft address must be"),
    ("/add-learner", b'["4", "127.0.0.1:21004"]', "positive integer node id"),
    ("/add-learner", b'[5, "127.0.0.1:21002"]', "is node 2, not 5"),
    ("/add-learner", b'[9, "127.0.0.1:21009"]', "cannot learn the raft address"),
    ("/change-membership", b'[]', "non-empty list"),
    ("/change-membership", b'[1, 2, 9]', "node ids [9] are not members"),
    ("/change-membership", b'[1, "2"]', "positive integer node id"),
    ("/change-membership", b'{"voters": [1]}', "non-empty list"),
]


def test_bad_input_gets_400_saying_why_and_changes_nothing():
    async def main():
        async with trio.open_nursery() as nursery:
            c = KVTestCluster(nursery)
            await c.form(3)
            await c.post(1, "/write", {"Set": {"key": "keep", "value": "me"}})
            before = c.raft(1).metrics()
            for body, why in BAD_WRITES:
                status, doc = await c.post(1, "/write", raw=body)
                assert status == 400, body[:80]
                assert why in doc["Err"]["BadRequest"]["reason"], (body[:80], doc)
            for path, body, why in BAD_ADMIN:
                status, doc = await c.post(1, path, raw=body)
                assert status == 400, (path, body)
                assert why in doc["Err"]["BadRequest"]["reason"], (path, body, doc)
            status, doc = await c.post(1, "/write", raw=b"x" * (MAX_BODY_BYTES + 1))
            assert status == 413 and "at most" in doc["Err"]["BadRequest"]["reason"]
            r = await c.http[1].get("/write")
            assert r.status_code == 405 and r.headers["allow"] == "POST"
            r = await c.http[1].post("/metrics")
            assert r.status_code == 405
            r = await c.http[1].get("/no-such-thing")
            assert r.status_code == 404 and "no such endpoint" in r.text
            # the Raft RPC routes exist only with the HTTP network
            r = await c.http[1].post("/raft-append", content=b"\x00")
            assert r.status_code == 404
            after = c.raft(1).metrics()
            assert after.last_log_index == before.last_log_index
            assert after.membership == before.membership
            assert await c.post(1, "/consistent_read", "keep") == (200, {"Ok": "me"})
            assert (await c.post(1, "/write", {"Set": {"key": "still", "value": "ok"}}))[0] == 200
            await c.stop_all()

    run(main)


def test_init_refusals():
    async def main():
        async with trio.open_nursery() as nursery:
            c = KVTestCluster(nursery)
            await c.start(1)
            await c.start(2)
            status, doc = await c.post(1, "/init", [[2, addr(2)]])
            assert status == 400 and "must be one of the members" in doc["Err"]["BadRequest"]["reason"]
            status, doc = await c.post(1, "/init", [[1, addr(1)], [2, addr(2)]])
            assert (status, doc) == (200, {"Ok": None})
            status, doc = await c.post(1, "/init", [])
            assert doc == {"Err": {"APIError": {"MembershipError": {"reason": "already initialized"}}}}
            leader = await c.wait_leader([1, 2])
            m = (await c.get(leader, "/metrics"))[1]["Ok"]
            assert m["membership_config"]["membership"]["configs"] == [[1, 2]]
            assert m["membership_config"]["membership"]["nodes"]["2"] == {
                "addr": addr(2), "raft_addr": raft_addr(2)}
            await c.stop_all()

    run(main)


@pytest.mark.parametrize("write_timeout_s", [0.05, 30.0])
def test_a_write_cut_off_from_its_quorum_has_an_unknown_outcome(write_timeout_s):
    """Appended on the leader, never committed: the answer is OutcomeUnknown, never
    ForwardToLeader (with a short timeout: not answered in time; with a long one: the leader
    steps down, thesis §6.2 check-quorum)."""
    async def main():
        async with trio.open_nursery() as nursery:
            c = KVTestCluster(nursery, write_timeout_s=write_timeout_s)
            leader = await c.form(3)
            before = c.raft(leader).metrics().last_log_index
            c.router.isolate(leader)
            status, doc = await c.post(leader, "/write", {"Set": {"key": "lost", "value": "?"}})
            assert status == 200
            reason = doc["Err"]["APIError"]["OutcomeUnknown"]["reason"]
            assert reason
            assert c.raft(leader).metrics().last_log_index == before + 1  # it was appended
            c.router.heal()
            await c.stop_all()

    run(main)


def test_shrink_to_one_node_through_the_api():
    async def main():
        async with trio.open_nursery() as nursery:
            c = KVTestCluster(nursery)
            await c.form(3)
            status, doc = await c.post(1, "/change-membership", [3])
            assert status == 200
            assert doc["Ok"]["membership"]["membership"]["configs"] == [[3]]
            assert doc["Ok"]["log_id"]["leader_id"]["node_id"] == 1
            await c.wait_leader([3])
            status, doc = await c.post(3, "/write", {"Set": {"key": "foo", "value": "zoo"}})
            assert doc["Ok"]["log_id"]["leader_id"]["node_id"] == 3
            assert await c.post(3, "/consistent_read", "foo") == (200, {"Ok": "zoo"})
            await c.stop_all()

    run(main)
