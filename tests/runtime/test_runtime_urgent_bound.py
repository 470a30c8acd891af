"""The bound on peers' messages queued for the engine refuses no heartbeat or vote because
AppendEntries filled the queue (Raft §5.6: a leader keeps its followers only while its
heartbeats arrive well within the election timeout; §5.2: elections need vote requests and
answers through), and urgent messages keep a bound of their own, since a stranger can send
them too. The bounds are lowered for the test (``monkeypatch``) so that filling them is quick;
simulated time (``trio.testing.MockClock``), no real-clock timing."""

import trio
import trio.testing

from fastraft import Entry, Node
from fastraft.core import Config
from fastraft.kv import MemoryKVStateMachine
from fastraft.messages import AppendEntriesRequest, VoteRequest, VoteResponse
from fastraft.net import MemoryRouter
from fastraft.runtime import node as runtime_node
from fastraft.runtime import open_raft
from fastraft.storage import MemoryLogStore
from fastraft.types import EntryKind

MESSAGE_BOUND = 64
URGENT_BOUND = 8


async def _follower_of_1(raft):
    """Node 2 of {1, 2, 3}, follower of node 1 in term 1; its engine task then marked busy, so
    what is submitted next queues (as while a round runs)."""
    await raft.initialize({i: Node(f"n{i}") for i in (1, 2, 3)})
    rt = raft._rt
    first = await raft.submit_request(AppendEntriesRequest(
        term=1, sender=1, prev_log_term=rt.engine.log.term_at(1), prev_log_index=1,
        leader_commit=1))
    assert (await first.result()).success
    rt._inputs.wake_consumer()  # the engine task has been woken: it is busy
    return rt


def _heartbeat(rt, sender=1):
    last = rt.engine.log.last_index
    return AppendEntriesRequest(term=1, sender=sender, prev_log_term=rt.engine.log.term_at(last),
                                prev_log_index=last, leader_commit=1)


def test_a_queue_full_of_append_entries_refuses_no_heartbeat_or_vote(monkeypatch):
    monkeypatch.setattr(runtime_node, "_MAX_MESSAGE_INPUTS", MESSAGE_BOUND)
    monkeypatch.setattr(runtime_node, "_MAX_URGENT_INPUTS", URGENT_BOUND)

    async def main():
        async with open_raft(2, Config(), log_store=MemoryLogStore(),
                             state_machine=MemoryKVStateMachine(),
                             network=MemoryRouter().network(2)) as raft:
            rt = await _follower_of_1(raft)
            start = rt.engine.log.last_index
            work = []
            for i in range(MESSAGE_BOUND):  # the leader's entries fill the ordinary share
                index = start + i
                work.append(await raft.submit_request(AppendEntriesRequest(
                    term=1, sender=1, prev_log_term=1 if i else rt.engine.log.term_at(start),
                    prev_log_index=index, leader_commit=1,
                    entries=[Entry(1, index + 1, EntryKind.NORMAL, b"w")])))
            assert not any(r.done for r in work) and len(rt._inputs) == MESSAGE_BOUND
            # one more AppendEntries with entries is refused: the bound holds
            extra = await raft.submit_request(AppendEntriesRequest(
                term=1, sender=1, prev_log_term=1, prev_log_index=start + MESSAGE_BOUND,
                leader_commit=1, entries=[Entry(1, start + MESSAGE_BOUND + 1,
                                                EntryKind.NORMAL, b"w")]))
            assert extra.done and extra.value is None and rt.refused_inputs == 1
            # the leader's heartbeat and a candidate's vote request still get in
            heartbeat = await raft.submit_request(_heartbeat(rt))
            vote = await raft.submit_request(VoteRequest(term=1, sender=3, last_log_term=0,
                                                         last_log_index=0))
            assert not heartbeat.done and not vote.done, "refused for the AppendEntries queued"
            # and a vote answer (this node asked for votes in an earlier term) is not dropped
            rt._on_peer_response(VoteResponse(term=1, sender=3, granted=False))
            assert rt._inputs.urgent_len == 3 and rt.refused_inputs == 1
            with trio.fail_after(5):
                await work[-1].result()
                await heartbeat.result()
                await vote.result()
            assert heartbeat.value.success and vote.value.granted is False
            assert rt.engine.log.last_index == start + MESSAGE_BOUND

    trio.run(main, clock=trio.testing.MockClock())


def test_urgent_messages_have_a_bound_of_their_own(monkeypatch):
    """A stranger (sender 99, a member of no configuration) floods heartbeats: beyond the
    urgent bound they are refused at once and the queue stops growing."""
    monkeypatch.setattr(runtime_node, "_MAX_MESSAGE_INPUTS", MESSAGE_BOUND)
    monkeypatch.setattr(runtime_node, "_MAX_URGENT_INPUTS", URGENT_BOUND)

    async def main():
        async with open_raft(2, Config(), log_store=MemoryLogStore(),
                             state_machine=MemoryKVStateMachine(),
                             network=MemoryRouter().network(2)) as raft:
            rt = await _follower_of_1(raft)
            flood = [await raft.submit_request(_heartbeat(rt, sender=99))
                     for _ in range(URGENT_BOUND * 4)]
            refused = [r for r in flood if r.done]
            assert flood[:URGENT_BOUND] == [r for r in flood if not r.done]
            assert len(refused) == 3 * URGENT_BOUND and all(r.value is None for r in refused)
            assert rt._inputs.urgent_len == URGENT_BOUND and len(rt._inputs) == URGENT_BOUND
            assert rt.refused_inputs == 3 * URGENT_BOUND
            rt._on_peer_response(VoteResponse(term=1, sender=99, granted=True))
            assert rt._inputs.urgent_len == URGENT_BOUND  # dropped too
            assert rt.refused_inputs == 3 * URGENT_BOUND + 1
            with trio.fail_after(5):
                for r in flood[:URGENT_BOUND]:
                    await r.result()  # handled (dropped by the engine: 99 is no member)
            # the queue drained, the real leader's heartbeat gets in and is answered
            heartbeat = await raft.submit_request(_heartbeat(rt))
            with trio.fail_after(5):
                assert (await heartbeat.result()).success

    trio.run(main, clock=trio.testing.MockClock())
