"""A ReadIndex read right after a partition heals is never stale (thesis §6.4; Raft §8): the
old leader, cut off while the majority elected a new one and committed a newer value, still
believes it leads when the network heals. A linearizable read it is asked for then must
either be refused or return the newer value: the heartbeat round that confirms a read reaches
followers of a newer term, whose answers depose it.

Scripted on real nodes (open_raft over the in-memory network, memory stores) under
MockClock; check-quorum is off so that the old leader does not step down on its own during the
partition, which is exactly when a stale read would be possible.
"""

import dataclasses

import trio

from fastraft.errors import ForwardToLeader
from fastraft.runtime import ServerState

from cluster_fixtures import CONFIG, MemCluster, kv_set, run

CONFIG_NO_CHECK_QUORUM = dataclasses.replace(CONFIG, check_quorum=False)


async def _read_right_after_heal(pending_read: bool):
    outcome = {}
    async with trio.open_nursery() as nursery:
        c = await MemCluster(nursery, config=CONFIG_NO_CHECK_QUORUM, seed=4).start_all(3)
        old = await c.wait_leader(timeout_s=30)
        await c.rafts[old].client_write(kv_set("k", "v1"))
        others = [i for i in (1, 2, 3) if i != old]
        c.router.partition([old], others)
        new = await c.wait_leader(among=others, timeout_s=60)
        await c.rafts[new].client_write(kv_set("k", "v2"))
        assert c.rafts[old].metrics().state is ServerState.LEADER  # it does not know yet
        assert c.sms[old].get("k") == "v1"

        async def read():
            try:
                with trio.fail_after(30):
                    await c.rafts[old].ensure_linearizable()
            except ForwardToLeader:
                outcome["read"] = "refused"
            else:
                outcome["read"] = c.sms[old].get("k")

        if pending_read:  # asked while cut off, still waiting when the network heals
            nursery.start_soon(read)
            await trio.sleep(0.5)
            assert "read" not in outcome  # no quorum confirmed it in the minority
            c.router.heal()
            with trio.fail_after(60):
                while "read" not in outcome:  # bounded by the deadline
                    await trio.sleep(0.01)
        else:  # asked the moment the network heals
            c.router.heal()
            await read()
        outcome["leader_after"] = await c.wait_leader(timeout_s=60)
        await c.stop_all()
    return old, new, outcome


def test_read_on_the_old_leader_right_after_heal_is_refused_or_fresh():
    old, new, outcome = run(_read_right_after_heal, False)
    assert outcome["read"] in ("refused", "v2"), outcome
    assert outcome["leader_after"] != old or outcome["read"] == "v2"


def test_read_pending_across_the_heal_is_refused_or_fresh():
    old, new, outcome = run(_read_right_after_heal, True)
    assert outcome["read"] in ("refused", "v2"), outcome
