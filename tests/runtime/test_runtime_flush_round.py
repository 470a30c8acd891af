"""Where and in what order the runtime's rounds run (fastraft/runtime/node.py): a follower's
acknowledgement leaves from its log flush's completion, not a round later ("flush round"), and
never before it (Raft §5.3 with the runtime's obligation: a follower acknowledges only entries
that are durable, commands.py item 3); a flush round does not append from inside the store's
completion; heartbeats and votes go before queued client work (Raft §5.6)."""

import trio
import trio.testing

from fastraft import Entry, Node
from fastraft.core import Config, Role
from fastraft.kv import MemoryKVStateMachine
from fastraft.messages import AppendEntriesRequest, AppendEntriesResponse, VoteRequest
from fastraft.net import MemoryRouter
from fastraft.runtime import open_raft
from fastraft.runtime.proposals import Proposal
from fastraft.storage import MemoryLogStore
from fastraft.types import EntryKind


class HeldFlushLog(MemoryLogStore):
    """A memory log whose appends become durable only when the test says so (as the lmdb
    store reports a sync from a callback on the trio thread)."""

    def __init__(self) -> None:
        super().__init__()
        self.unflushed: list = []
        self.completing = False

    def append_nowait(self, entries, on_durable, coalesce=False) -> None:
        # a store's completion loop (group_commit.py's) is not made to take new writes from
        # inside itself: the runtime must not append from a completion callback
        assert not self.completing, "append_nowait called from inside a completion"
        self._append_now(entries)
        self.unflushed.append(on_durable)

    def flush_all(self) -> None:
        waiting, self.unflushed = self.unflushed, []
        self.completing = True
        try:
            for on_durable in waiting:
                on_durable(None)
        finally:
            self.completing = False


def test_the_acknowledgement_leaves_with_the_flush_completion():
    async def main():
        store = HeldFlushLog()
        nodes = {i: Node(f"n{i}") for i in (1, 2, 3)}
        async with open_raft(2, Config(), log_store=store, state_machine=MemoryKVStateMachine(),
                             network=MemoryRouter().network(2)) as raft:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(raft.initialize, nodes)
                await trio.testing.wait_all_tasks_blocked()
                store.flush_all()  # the membership entry
                await trio.testing.wait_all_tasks_blocked()
            rt = raft._rt
            prev_term = rt.engine.log.term_at(1)
            request = AppendEntriesRequest(
                term=1, sender=1, prev_log_term=prev_term, prev_log_index=1, leader_commit=1,
                entries=[Entry(1, 2, EntryKind.NORMAL, b"x")])
            reply = rt.submit_request(request)
            await trio.testing.wait_all_tasks_blocked()
            # appended, not durable: no acknowledgement yet (it would promise a lost entry)
            assert len(store.unflushed) == 1 and not reply.done
            store.flush_all()
            # no await since the flush completed: the engine task has had no turn, and the
            # answer is already there
            assert reply.done, "the acknowledgement waited for the engine task's next round"
            response = reply.value
            assert type(response) is AppendEntriesResponse
            assert response.success and response.match_index == 2

    # time stands still: no election timer fires while the test holds the flush
    trio.run(main, clock=trio.testing.MockClock())


def test_a_flush_round_appends_nothing_inside_the_completion_and_wakes_the_engine_task():
    """A write queued when a flush completes is proposed by the engine task (woken by the
    flush round), its AppendLog reaching the store after the store's completion callback
    returned; it becomes durable and commits."""
    async def main():
        store = HeldFlushLog()
        async with open_raft(1, Config(), log_store=store, state_machine=MemoryKVStateMachine(),
                             network=MemoryRouter().network(1)) as raft:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(raft.initialize, {1: Node("n1")})
                await trio.testing.wait_all_tasks_blocked()
                store.flush_all()
                await trio.testing.wait_all_tasks_blocked()
            await raft.trigger.elect()
            for _ in range(3):  # the vote, the leader's blank entry: each flushed
                await trio.testing.wait_all_tasks_blocked()
                store.flush_all()
            rt = raft._rt
            assert rt.engine.role == Role.LEADER
            before = rt.engine.log.last_index
            async with trio.open_nursery() as nursery:
                nursery.start_soon(raft.client_write, b"first")
                await trio.testing.wait_all_tasks_blocked()
                assert rt.engine.log.last_index == before + 1 and len(store.unflushed) == 1
                rt.proposals.queue(Proposal([b"second"], many=False))  # the engine not woken
                store.flush_all()  # nothing is appended from inside the completion (the store
                assert store.unflushed == []  # asserts it), the engine task is woken...
                await trio.testing.wait_all_tasks_blocked()
                assert rt.engine.log.last_index == before + 2  # ...and proposes the second
                assert len(store.unflushed) == 1
                store.flush_all()
                await trio.testing.wait_all_tasks_blocked()
            assert rt.engine.committed == before + 2

    trio.run(main, clock=trio.testing.MockClock())


def test_heartbeats_and_votes_are_handled_before_queued_client_work():
    """Raft §5.6: with inputs queued for the engine task (it is busy), a heartbeat or a vote
    request arriving later is taken first in its round."""
    async def main():
        store = HeldFlushLog()
        async with open_raft(2, Config(), log_store=store, state_machine=MemoryKVStateMachine(),
                             network=MemoryRouter().network(2)) as raft:
            await trio.testing.wait_all_tasks_blocked()
            rt = raft._rt
            seen = []
            rt.post(seen.append, "idle")  # the engine task is parked: runs at once
            assert seen == ["idle"]
            rt._inputs.put((seen.append, ("client work",)))  # now it has work queued
            entries = AppendEntriesRequest(term=1, sender=1, prev_log_term=0, prev_log_index=0,
                                           leader_commit=0, entries=[Entry(1, 1, EntryKind.NORMAL, b"x")])
            heartbeat = AppendEntriesRequest(term=1, sender=1, prev_log_term=0, prev_log_index=0,
                                             leader_commit=0)
            vote = VoteRequest(term=1, sender=3, last_log_term=0, last_log_index=0)
            for request in (entries, heartbeat, vote):
                rt.submit_request(request)
            order = [args[0] for _, args in rt._inputs.take_batch(10)]
            assert order[:2] == [heartbeat, vote] and order[2:] == ["client work", entries]

    trio.run(main, clock=trio.testing.MockClock())
