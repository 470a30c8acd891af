"""The runtime's side of the engine's trust boundary (fastraft/core/guard.py): a request the
engine drops is answered at once with nothing, leaves nothing waiting, and shows in the
metrics; a sender's first drop is logged once (thesis §4.2.3, Raft §5.1)."""

import dataclasses
import logging

import trio

from fastraft import Entry
from fastraft.messages import AppendEntriesRequest, TimeoutNowRequest, VoteRequest
from fastraft.types import EntryKind

from cluster_fixtures import MemCluster, run


def test_a_dropped_request_is_answered_at_once_and_leaves_nothing_waiting(caplog):
    caplog.set_level(logging.WARNING, logger="fastraft.runtime")

    async def main():
        async with trio.open_nursery() as nursery:
            c = await MemCluster(nursery).start_all(3)
            lid = await c.wait_leader()
            follower = next(i for i in (1, 2, 3) if i != lid)
            raft = c.rafts[follower]
            term = raft.metrics().current_term
            rt = raft._rt
            forged = [
                AppendEntriesRequest(term=term + 1, sender=99, prev_log_term=0, prev_log_index=0,
                                     leader_commit=5, seq=1,
                                     entries=[Entry(term + 1, 1, EntryKind.NORMAL, b"x")]),
                VoteRequest(term=term + 1, sender=99, last_log_term=1 << 40,
                            last_log_index=1 << 40, pre_vote=False, leader_transfer=True),
                TimeoutNowRequest(term=term, sender=99),
                VoteRequest(term=(1 << 64) - 1, sender=lid, last_log_term=1, last_log_index=1,
                            pre_vote=False, leader_transfer=True),
            ]
            with trio.fail_after(0.5):  # simulated time: far below the reap age of 1 s
                for k in range(3):
                    for sender_id in range(99, 99 + 50):  # forged ids: nothing kept per id
                        msg = dataclasses.replace(forged[0], sender=sender_id)
                        assert await (await raft.submit_request(msg)).result() is None
                    for msg in forged[1:]:
                        assert await (await raft.submit_request(msg)).result() is None
            # the 159 forged requests left nothing waiting (nor does the idle leader's traffic)
            assert len(rt.inbound) == 0
            m = raft.metrics()
            assert m.dropped_messages == {"malformed": 3, "non_member": 153, "not_voter": 3,
                                          "timeout_now_not_from_leader": 0}
            assert m.current_term == term and m.current_leader == lid and not m.log_diverged
            await c.stop_all()

    run(main)
    lines = [r.getMessage() for r in caplog.records if "drops messages" in r.getMessage()]
    assert len(lines) == 51  # once per sender: 99..148 and the leader's id (malformed)
    assert any("drops messages from node 99 (non member" in line for line in lines)
