"""The runtime's side of the engine's trust boundary (fastraft/core/guard.py): a request the
engine drops is answered at once with nothing, leaves nothing waiting, and shows in the
metrics; a sender's first drop is logged once (thesis §4.2.3, Raft §5.1)."""

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
                AppendEntriesRequest(term + 1, 99, 0, 0, 5, 1, [Entry(term + 1, 1, EntryKind.NORMAL,
                                                                     b"x")]),
                VoteRequest(term + 1, 99, 1 << 40, 1 << 40, False, True),
                TimeoutNowRequest(term, 99),
                VoteRequest((1 << 64) - 1, lid, 1, 1, False, True),
            ]
            with trio.fail_after(0.5):  # simulated time: far below the reap age of 1 s
                for k in range(3):
                    for sender_id in range(99, 99 + 50):  # forged ids: nothing kept per id
                        msg = forged[0].__class__(*[sender_id if f == "leader_id" else
                                                    getattr(forged[0], f)
                                                    for f, _ in forged[0].FIELDS])
                        assert await (await raft.submit_request(msg)).result() is None
                    for msg in forged[1:]:
                        assert await (await raft.submit_request(msg)).result() is None
            assert {peer for peer, _ in rt.inbound._waiting} <= {1, 2, 3}
            m = raft.metrics()
            assert m.dropped_messages == {"malformed": 3, "non_member": 153, "not_voter": 3,
                                          "timeout_now_not_from_leader": 0}
            assert m.current_term == term and m.current_leader == lid and not m.log_diverged
            await c.stop_all()

    run(main)
    lines = [r.getMessage() for r in caplog.records if "drops messages" in r.getMessage()]
    assert len(lines) == 51  # once per sender: 99..148 and the leader's id (malformed)
    assert any("drops messages from node 99 (non member" in line for line in lines)
