"""Heartbeats and votes overtake queued client work (Raft §5.6: broadcast time must stay well
below the election timeout however much client work waits), told in simulated time under
``trio.testing.MockClock``: deterministic, no real-clock timing.

* On the way out: a leader's sender to a peer whose link carries one request at a time holds a
  whole window of AppendEntries (``Config().max_inflight``); a heartbeat and a vote request
  sent after them reach the peer within two round trips, not after the window.
* On the way in: a node whose engine task is busy has more client work queued than one round
  takes; a heartbeat and a vote request that arrive after it are answered in the first round,
  while most of that work still waits.
"""

import trio
import trio.testing

from fastraft import Entry, Node
from fastraft.core import Config
from fastraft.kv import MemoryKVStateMachine
from fastraft.messages import (AppendEntriesRequest, AppendEntriesResponse, VoteRequest,
                               VoteResponse)
from fastraft.net import MemoryRouter
from fastraft.runtime import open_raft
from fastraft.runtime.node import _MAX_INPUTS_PER_ROUND
from fastraft.runtime.peers import PeerSender
from fastraft.storage import MemoryLogStore
from fastraft.types import EntryKind

HOP_S = 0.02  # one way; a round trip is 40 ms


class ArrivalLog:
    """A peer that answers at once and notes what arrived when (simulated time)."""

    def __init__(self):
        self.arrivals = []  # (kind, term, time)

    async def handle_append_entries(self, req):
        self.arrivals.append(("entries" if req.entries else "heartbeat", req.term,
                              trio.current_time()))
        return AppendEntriesResponse(term=req.term, sender=2, success=True, match_index=0)

    async def handle_vote(self, req):
        self.arrivals.append(("vote", req.term, trio.current_time()))
        return VoteResponse(term=req.term, sender=2, granted=False)


def test_a_heartbeat_and_a_vote_overtake_a_window_of_queued_entries():
    window = Config().max_inflight

    async def main():
        peer = ArrivalLog()
        router = MemoryRouter(delay_s=HOP_S)
        router.register(2, peer)
        answers = []
        async with trio.open_nursery() as nursery:
            # one request on the link at a time, as on one ordered stream
            sender = PeerSender(2, Node(""), router.network(1), answers.append, timeout_s=60.0,
                                snapshot_timeout_s=60.0, max_in_flight=1)
            nursery.start_soon(sender.run)
            await trio.testing.wait_all_tasks_blocked()
            t0 = trio.current_time()
            for i in range(window):
                sender.send(AppendEntriesRequest(
                    term=1, sender=1, prev_log_term=1, prev_log_index=i, leader_commit=0,
                    entries=[Entry(1, i + 1, EntryKind.NORMAL, b"x" * 1024)]))
            sender.send(AppendEntriesRequest(term=1, sender=1, prev_log_term=0,
                                             prev_log_index=0, leader_commit=0))
            sender.send(VoteRequest(term=2, sender=1, last_log_term=1, last_log_index=0))
            with trio.fail_after(window * 4 * HOP_S + 10):
                while len(answers) < window + 2:  # bounded by the fail_after
                    await trio.sleep(HOP_S)
            sender.stop()
        kinds = [kind for kind, _, _ in peer.arrivals]
        at = {kind: t - t0 for kind, _, t in peer.arrivals if kind != "entries"}
        # at most the entries the sender had taken already go before them
        assert kinds.index("heartbeat") <= 1 and kinds.index("vote") <= 2, kinds[:5]
        assert at["heartbeat"] <= 2 * 2 * HOP_S and at["vote"] <= 3 * 2 * HOP_S, at
        # in FIFO order they would have waited a window of round trips: longer than the
        # election timeout the followers give a leader
        assert window * 2 * HOP_S >= Config().election_timeout_min_ms / 1000
        # and the entries still reach the peer, in order
        entries = [t for kind, _, t in peer.arrivals if kind == "entries"]
        assert len(entries) == window and entries == sorted(entries)

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))


def test_a_busy_node_answers_a_heartbeat_and_a_vote_before_the_work_queued_ahead():
    backlog = _MAX_INPUTS_PER_ROUND + 1000

    async def main():
        nodes = {i: Node(f"n{i}") for i in (1, 2, 3)}
        async with open_raft(2, Config(), log_store=MemoryLogStore(),
                             state_machine=MemoryKVStateMachine(),
                             network=MemoryRouter().network(2)) as raft:
            await raft.initialize(nodes)
            rt = raft._rt
            # node 1 leads term 1 (this node learns it from its first AppendEntries)
            first = await raft.submit_request(AppendEntriesRequest(
                term=1, sender=1, prev_log_term=rt.engine.log.term_at(1), prev_log_index=1,
                leader_commit=1))
            assert (await first.result()).success
            start = rt.engine.log.last_index
            rt._inputs.wake_consumer()  # the engine task has been woken: it is busy
            work = []
            for i in range(backlog):  # the leader's entries, one per request
                index = start + i
                work.append(await raft.submit_request(AppendEntriesRequest(
                    term=1, sender=1, prev_log_term=1 if i else rt.engine.log.term_at(start),
                    prev_log_index=index, leader_commit=1,
                    entries=[Entry(1, index + 1, EntryKind.NORMAL, b"w")])))
            heartbeat = await raft.submit_request(AppendEntriesRequest(
                term=1, sender=1, prev_log_term=rt.engine.log.term_at(start),
                prev_log_index=start, leader_commit=1))
            vote = await raft.submit_request(VoteRequest(
                term=1, sender=3, last_log_term=0, last_log_index=0))
            assert rt.engine.log.last_index == start  # nothing handled yet: all queued
            # how much of the queued work the node had handled when each answer was given
            handled_at = {}
            for name, reply in (("heartbeat", heartbeat), ("vote", vote)):
                reply.on_done(lambda r, name=name: handled_at.setdefault(
                    name, rt.engine.log.last_index))
            with trio.fail_after(5):
                await work[-1].result()
            assert rt.engine.log.last_index == start + backlog
            # answered in the engine task's first round, which takes at most
            # _MAX_INPUTS_PER_ROUND inputs: at least 1,000 of the entries still waited
            assert handled_at["heartbeat"] <= start + backlog - 1000, handled_at
            assert handled_at["vote"] <= start + backlog - 1000, handled_at
            assert heartbeat.value.success and vote.value.granted is False

    trio.run(main, clock=trio.testing.MockClock())


def test_writers_an_apply_woke_are_proposed_as_one_batch():
    """A closed loop of 32 writers on the leader: after an apply settles a batch of writes,
    the writers it wakes write again and are proposed together, one AppendLog and one
    AppendEntries per peer (thesis §10.2.1: batching is what buys throughput). The lone-
    writer inline round must not take the first of them out alone: it did, and half the
    batches held one write, doubling rounds, messages and follower syncs (at 256 writes in
    flight over TCP: a fifth less throughput, a third more CPU per write)."""
    from cluster_fixtures import MemCluster, kv_set, run

    async def main():
        sizes = []
        async with trio.open_nursery() as nursery:
            c = await MemCluster(nursery).start_all(3)
            raft = c.rafts[await c.wait_leader()]
            proposals = raft._rt.proposals
            register = proposals.register

            def counting_register(batch, first_index, term):
                sizes.append(len(batch))
                return register(batch, first_index, term)

            proposals.register = counting_register

            async def writer(w):
                for n in range(20):
                    await raft.client_write(kv_set(f"w{w}", str(n)))

            async with trio.open_nursery() as writers:
                for w in range(32):
                    writers.start_soon(writer, w)
            proposals.register = register
            await c.stop_all()
        assert sum(sizes) == 32 * 20
        singles = sum(1 for s in sizes if s == 1)
        assert singles <= len(sizes) // 10, f"{singles} of {len(sizes)} batches held one write"

    run(main)
