"""The operator's log (fastraft.runtime.oplog): an in-memory cluster logs its elections,
step-downs with their reason, membership changes and unreachable peers at INFO/WARNING, one
line each, with the node id and term as fields of every record."""

import logging

import trio

from fastraft.runtime import ServerState
from fastraft.runtime.oplog import LOGGER_NAME
from cluster_fixtures import MemCluster, addr, kv_set, run


def _lines(caplog, level=logging.INFO):
    return [r for r in caplog.records if r.name == LOGGER_NAME and r.levelno >= level]


def _with(records, text):
    return [r for r in records if text in r.getMessage()]


def _check_fields(records):
    assert records
    for r in records:
        assert isinstance(r.node_id, int) and isinstance(r.term, int)
        assert r.getMessage().startswith(f"node {r.node_id} term {r.term}: ")


def test_election_and_start_stop_are_logged_once_with_fields(caplog):
    caplog.set_level(logging.INFO, logger=LOGGER_NAME)

    async def main():
        async with trio.open_nursery() as nursery:
            c = await MemCluster(nursery).start_all(3)
            lid = await c.wait_leader()
            term = c.rafts[lid].metrics().current_term
            for i in (1, 2, 3):  # every follower has heard from the leader
                await c.rafts[i].wait(5).current_leader(lid)
            await c.stop_all()
            return lid, term

    lid, term = run(main)
    records = _lines(caplog)
    _check_fields(records)
    elected = _with(records, "elected leader")
    assert [(r.node_id, r.term) for r in elected] == [(lid, term)]
    for i in {1, 2, 3} - {lid}:
        assert _with([r for r in records if r.node_id == i], f"node {lid} is the leader")
    assert len(_with(records, "started as")) == 3
    assert "MemoryLogStore" in _with(records, "started as")[0].getMessage()
    assert len([r for r in records if r.getMessage().endswith(": stopped")]) == 3


def test_step_down_reasons_and_unreachable_peer_warned_once_each_way(caplog):
    caplog.set_level(logging.INFO, logger=LOGGER_NAME)

    async def main():
        async with trio.open_nursery() as nursery:
            c = await MemCluster(nursery).start_all(3)
            lid = await c.wait_leader()
            # a follower cut off for many election timeouts: the leader warns once, then
            # once when it answers again
            f = next(i for i in (1, 2, 3) if i != lid)
            c.router.isolate(f)
            await trio.sleep(10 * c.config.election_timeout_max_s)
            c.router.heal()
            await c.rafts[lid].client_write(kv_set("a", "1"))
            await trio.sleep(2 * c.config.election_timeout_max_s)
            phase_one[0] = len(caplog.records)  # later phases may cut off the same node again
            # the leader cut off: it steps down for want of a quorum (thesis §6.2)
            lid = await c.wait_leader()
            c.router.isolate(lid)
            others = [i for i in (1, 2, 3) if i != lid]
            new = await c.wait_leader(among=others)
            await c.rafts[lid].wait(10).metrics(lambda m: m.state is not ServerState.LEADER,
                                                "old leader steps down")
            c.router.heal()
            await c.wait_leader()
            # a transfer: the leader steps down naming the node it handed over to
            leader = await c.wait_leader()
            target = next(i for i in (1, 2, 3) if i != leader)
            await c.rafts[leader].transfer_leader(target)
            await c.rafts[target].wait(10).state(ServerState.LEADER)
            await c.stop_all()
            return f, lid, new, leader, target

    phase_one = [0]
    f, old, new, leader, target = run(main)
    records = _lines(caplog)
    _check_fields(records)
    first = set(map(id, caplog.records[:phase_one[0]]))
    warnings = [r for r in records if r.levelno == logging.WARNING and id(r) in first]
    unreachable = [r for r in warnings if f"peer {f} (" in r.getMessage()
                   and "unreachable" in r.getMessage()]
    back = [r for r in warnings if f"peer {f} (" in r.getMessage()
            and "answers again" in r.getMessage()]
    assert len(unreachable) == 1 and len(back) == 1, [r.getMessage() for r in warnings]
    assert unreachable[0].created <= back[0].created
    down = [r for r in _with(records, "stepped down") if r.node_id == old]
    assert any("check-quorum" in r.getMessage() for r in down), [r.getMessage() for r in down]
    handed = [r for r in _with(records, "stepped down") if r.node_id == leader]
    assert any(f"handed to node {target}" in r.getMessage() for r in handed)
    assert any(r.node_id == new for r in _with(records, "elected leader"))


def test_membership_change_proposed_and_committed_with_old_and_new_members(caplog):
    caplog.set_level(logging.INFO, logger=LOGGER_NAME)

    async def main():
        async with trio.open_nursery() as nursery:
            c = await MemCluster(nursery).start_all(3)
            lid = await c.wait_leader()
            await c.start(4)
            await c.rafts[lid].add_learner(4, addr(4))
            await c.rafts[lid].change_membership({1, 2, 3, 4})
            last = c.rafts[lid].metrics().last_log_index
            for i in (1, 2, 3, 4):  # every node knows the final membership committed
                await c.rafts[i].wait(10).applied_index(last)
            await c.rafts[lid].trigger.snapshot()
            await c.rafts[lid].wait(10).snapshot(last)
            await c.stop_all()
            return lid

    lid = run(main)
    records = _lines(caplog)
    _check_fields(records)
    proposed = [r.getMessage() for r in _with(records, "membership change proposed")]
    assert all(r.node_id == lid for r in _with(records, "membership change proposed"))
    assert any("voters [1, 2, 3] learners [] -> voters [1, 2, 3] learners [4]" in m
               for m in proposed), proposed
    # the joint configuration, then the final one (Raft §6)
    assert any("-> voters [1, 2, 3] -> [1, 2, 3, 4] learners []" in m for m in proposed), proposed
    committed = [r for r in _with(records, "membership committed")
                 if "voters [1, 2, 3, 4] learners []" in r.getMessage()]
    assert {r.node_id for r in committed} == {1, 2, 3, 4}
    built = [r for r in _with(records, "snapshot built") if r.node_id == lid]
    assert len(built) == 1 and "covering the log up to index" in built[0].getMessage()
