"""The runtime's parts on their own: per-peer senders (a late or lost response never holds up
the ones behind it), the pairing of engine responses with waiting requests, and the
bookkeeping of pending client writes."""

import pytest
import trio
import trio.testing

from fastraft import Entry, Node
from fastraft.errors import ForwardToLeader, OutcomeUnknown, RaftShutdown
from fastraft.messages import AppendEntriesRequest, AppendEntriesResponse, VoteRequest, VoteResponse
from fastraft.net import MemoryRouter, TcpNetwork, serve_raft_tcp
from fastraft.runtime.inbound import InboundReplies
from fastraft.runtime.peers import PeerSender
from fastraft.runtime.proposals import Proposal, Proposals
from fastraft.net.protocol import PipelinedHandler
from fastraft.reply import Reply


class Voter:
    """Answers votes at once, except terms in ``hang`` (never answered)."""

    def __init__(self):
        self.hang = set()

    async def handle_vote(self, req):
        if req.term in self.hang:
            await trio.sleep_forever()
        return VoteResponse(term=req.term, sender=2, granted=True)


def mock_run(fn):
    return trio.run(fn, clock=trio.testing.MockClock(autojump_threshold=0))


@pytest.mark.parametrize("kind", ["memory", "tcp"])
def test_a_hung_request_does_not_hold_up_the_responses_behind_it(kind):
    async def main():
        voter = Voter()
        voter.hang.add(9)
        got = []
        async with trio.open_nursery() as nursery:
            if kind == "memory":
                router = MemoryRouter()
                router.register(2, voter)
                network, node = router.network(1), Node("")
            else:
                listeners = await nursery.start(serve_raft_tcp, voter, "127.0.0.1", 0)
                network = TcpNetwork()
                node = Node(f"127.0.0.1:{listeners[0].socket.getsockname()[1]}")
            sender = PeerSender(2, node, network, lambda m: got.append((m.term, trio.current_time())),
                                timeout_s=0.5, snapshot_timeout_s=5.0)
            nursery.start_soon(sender.run)
            t0 = trio.current_time()
            for term in (9, 2, 4):
                sender.send(VoteRequest(term=term, sender=1, last_log_term=0, last_log_index=0))
            with trio.fail_after(5):
                while len(got) < 2:  # bounded by the fail_after
                    await trio.sleep(0.01)
            # Both answered (in either order: the voter answers each in a task of its own).
            assert sorted(t for t, _ in got) == [2, 4]
            assert all(at - t0 < 0.4 for _, at in got)  # not after the hung one's deadline
            with trio.fail_after(5):
                while sender.failed < 1:  # the hung request expires and frees its slot
                    await trio.sleep(0.01)
            sender.send(VoteRequest(term=6, sender=1, last_log_term=0, last_log_index=0))
            with trio.fail_after(5):
                while len(got) < 3:
                    await trio.sleep(0.01)
            assert sender.sent == 4
            sender.stop()
            nursery.cancel_scope.cancel()

    if kind == "memory":
        mock_run(main)
    else:
        trio.run(main)


def _append(term, entries=()):
    return AppendEntriesRequest(term=term, sender=1, prev_log_term=0, prev_log_index=0,
                                leader_commit=0, entries=list(entries))


def test_full_queue_drops_the_oldest():
    sender = PeerSender(2, Node(""), MemoryRouter().network(1), lambda m: None,
                        timeout_s=1.0, snapshot_timeout_s=1.0, max_queued=3)
    for term in range(5):
        sender.send(_append(term, [Entry(term, 1, 1, b"x")]))
    assert [m.term for m in sender._queue.clear()] == [2, 3, 4] and sender.dropped == 2


def test_heartbeats_and_votes_overtake_queued_entries():
    """Raft §5.6: a heartbeat or vote request waits behind no client work. Queued behind
    entries (no connection yet), it is taken first; and it drops the oldest entries, never
    the other way round, when the queue is full."""
    sender = PeerSender(2, Node(""), MemoryRouter().network(1), lambda m: None,
                        timeout_s=1.0, snapshot_timeout_s=1.0, max_queued=4)
    for term in range(3):
        sender.send(_append(term, [Entry(term, 1, 1, b"x")]))
    sender.send(_append(7))  # a heartbeat
    sender.send(VoteRequest(term=8, sender=1, last_log_term=0, last_log_index=0))
    taken = sender._queue.clear()
    assert [(type(m).__name__, m.term) for m in taken] == [
        ("AppendEntriesRequest", 7), ("VoteRequest", 8),
        ("AppendEntriesRequest", 1), ("AppendEntriesRequest", 2)]
    assert sender.dropped == 1 and not taken[0].entries


def test_each_response_reaches_the_request_of_its_token():
    """Answers go by token, in whatever order the engine gives them; no answer carries its
    reason; beyond the bound a request is refused at once instead of evicting another."""
    async def main():
        inbound = InboundReplies(max_waiting=3)
        replies = [Reply() for _ in range(3)]
        tokens = [inbound.expect(r) for r in replies]
        assert len(set(tokens)) == 3 and len(inbound) == 3
        overflow = Reply()
        assert inbound.expect(overflow) is None
        assert overflow.done and overflow.value is None and "3 requests already wait" in overflow.reason
        acks = [AppendEntriesResponse(term=2, sender=3, success=True, match_index=i, seq=i)
                for i in range(3)]
        inbound.answer(tokens[2], acks[2])  # the last request is answered first
        assert replies[2].value is acks[2] and not replies[0].done and not replies[1].done
        inbound.no_answer(tokens[0], "a snapshot is being installed")
        assert replies[0].done and replies[0].value is None
        assert replies[0].reason == "a snapshot is being installed"
        inbound.answer(tokens[0], acks[0])  # already answered: nobody waits on that token
        assert replies[0].value is None and not replies[1].done and len(inbound) == 1
        inbound.fail_all(RaftShutdown("bye"))
        with pytest.raises(RaftShutdown):
            await replies[1].result()
        assert len(inbound) == 0

    trio.run(main)


def _entries(lo, hi, term=1):
    return [Entry(term, i, 1, b"") for i in range(lo, hi)]


def test_proposals_resolve_in_log_order_across_apply_batches():
    async def main():
        props = Proposals(max_entries=10)
        one, many = Proposal([b"a"], many=False), Proposal([b"b", b"c", b"d"], many=True)
        props.queue(one)
        props.queue(many)
        queued, payloads = props.take_queued()
        assert payloads == [b"a", b"b", b"c", b"d"] and len(props) == 4
        props.register(queued, first_index=5, term=2)
        settled = props.on_applied(_entries(5, 7, term=2), ["r5", "r6"], ForwardToLeader())
        assert settled == [one]
        settled = props.on_applied(_entries(7, 9, term=2), ["r7", "r8"], ForwardToLeader())
        assert settled == [many] and len(props) == 0
        for p in settled + [one]:
            p.wake()
        assert await one.outcome() == "r5"
        assert await many.outcome() == ["r6", "r7", "r8"]

    trio.run(main)


def test_proposal_overwritten_by_another_term_is_forwarded():
    async def main():
        props = Proposals(max_entries=10)
        p = Proposal([b"a"], many=False)
        props.queue(p)
        props.register(props.take_queued()[0], first_index=3, term=2)
        hint = ForwardToLeader(7, Node("x:1"))
        for q in props.on_applied(_entries(3, 4, term=3), [None], hint):
            q.wake()
        with pytest.raises(ForwardToLeader) as e:
            await p.outcome()
        assert e.value.leader_id == 7

    trio.run(main)


def test_leadership_lost_keeps_committed_proposals_and_fails_the_rest():
    async def main():
        props = Proposals(max_entries=10)
        a, b, c = (Proposal([x], many=False) for x in (b"a", b"b", b"c"))
        for p in (a, b):
            props.queue(p)
        props.register(props.take_queued()[0], first_index=1, term=1)
        props.queue(c)  # not proposed yet
        props.on_leadership_lost(committed=1, error_for_queued=ForwardToLeader())
        with pytest.raises(OutcomeUnknown):
            await b.outcome()
        with pytest.raises(ForwardToLeader):
            await c.outcome()
        for p in props.on_applied(_entries(1, 2), ["ra"], ForwardToLeader()):
            p.wake()
        assert await a.outcome() == "ra" and len(props) == 0

    trio.run(main)


def test_writers_wait_for_room():
    async def main():
        props = Proposals(max_entries=2)
        props.queue(Proposal([b"a", b"b"], many=True))
        waited = []

        async def writer():
            await props.wait_for_room(1)
            waited.append(trio.current_time())

        async with trio.open_nursery() as nursery:
            nursery.start_soon(writer)
            await trio.sleep(1)
            assert not waited
            props.refuse(props.take_queued()[0], ForwardToLeader())
        assert waited

    mock_run(main)


def test_a_proposal_wakes_its_caller_once_and_survives_the_caller_being_cancelled():
    async def main():
        settled_first = Proposal([b"a"], many=False)
        settled_first.settle(["r"])
        settled_first.wake()  # outcome known before anybody waits
        assert await settled_first.outcome() == "r"

        waited = Proposal([b"a", b"b"], many=True)
        got = []

        async def caller():
            got.append(await waited.outcome())

        async with trio.open_nursery() as nursery:
            nursery.start_soon(caller)
            await trio.sleep(1)
            assert got == []  # parked until woken
            waited.settle(["x", "y"])
            waited.wake()
        assert got == [["x", "y"]]

        abandoned = Proposal([b"a"], many=False)
        with trio.move_on_after(1) as scope:
            await abandoned.outcome()
        assert scope.cancelled_caught
        abandoned.settle(["late"])
        abandoned.wake()  # nobody is parked any more: waking must not touch the old task
        abandoned.fail(RaftShutdown("gone"))  # and a later failure changes nothing
        assert await abandoned.outcome() == "late"

    mock_run(main)


def test_requests_started_directly_or_by_the_sender_task_keep_their_order():
    """``send`` starts a request itself when nothing waits before it, else queues it for the
    sender task; the peer must see them in the order they were sent either way (Raft §5.3:
    AppendEntries of a pipeline arrive in order)."""
    class Recorder(PipelinedHandler):
        def __init__(self):
            self.terms = []

        async def submit_request(self, req):  # taken in arrival order, as a node does
            self.terms.append(req.term)
            reply = Reply()
            reply.set_result(VoteResponse(term=req.term, sender=2, granted=True))
            return reply

    async def main():
        rec = Recorder()
        got = []
        async with trio.open_nursery() as nursery:
            listeners = await nursery.start(serve_raft_tcp, rec, "127.0.0.1", 0)
            node = Node(f"127.0.0.1:{listeners[0].socket.getsockname()[1]}")
            sender = PeerSender(2, node, TcpNetwork(), lambda m: got.append(m.term),
                                timeout_s=5.0, snapshot_timeout_s=5.0, max_in_flight=8)
            nursery.start_soon(sender.run)
            term = 0
            # bursts sent without a pause overflow the 8 slots (the rest queue for the
            # sender task); with pauses, answers free slots between sends (direct starts)
            for burst, pause_every in ((1, 1), (30, 0), (12, 3), (200, 0), (20, 2), (60, 7)):
                for k in range(burst):
                    term += 1
                    sender.send(_append(term, [Entry(term, term, 1, b"x")]))  # not urgent
                    if pause_every and k % pause_every == pause_every - 1:
                        await trio.sleep(0.001)
                await trio.sleep(0.05)
            with trio.fail_after(10):
                while len(got) < term:  # bounded by the fail_after
                    await trio.sleep(0.01)
            assert rec.terms == list(range(1, term + 1))
            assert sorted(got) == list(range(1, term + 1))
            assert sender.sent == term and sender.failed == 0
            sender.stop()
            nursery.cancel_scope.cancel()

    trio.run(main)


def test_the_applier_owns_the_applied_index_and_a_snapshot_only_moves_it_forward():
    """An adopted snapshot moves ``last_applied`` to its end, never back (Raft §7: a snapshot
    older than what is applied changes nothing)."""
    from fastraft.kv import MemoryKVStateMachine
    from fastraft.runtime.applier import Applier
    from fastraft.storage import MemoryLogStore
    from fastraft.types import LogId

    def unused(*args):
        raise AssertionError("not called here")

    a = Applier(MemoryKVStateMachine(), MemoryLogStore(), on_applied=unused,
                on_read_ready=unused, on_snapshot_built=unused, on_snapshot_installed=unused,
                on_failed=unused, max_apply_entries=16)
    assert a.last_applied is None
    a.snapshot_adopted(LogId(2, 10))
    assert a.last_applied == LogId(2, 10)
    a.snapshot_adopted(LogId(1, 5))
    assert a.last_applied == LogId(2, 10)


def test_client_write_responses_name_each_entry_in_order():
    """client_write_many's answer is a read-only sequence: response k is the entry at
    first_index + k of the batch's term, with the k-th state-machine response."""
    from fastraft import ClientWriteResponse, ClientWriteResponses, LogId

    many = ClientWriteResponses(3, 10, ["a", "b", "c"])
    assert len(many) == 3 and [r.data for r in many] == ["a", "b", "c"]
    assert [r.log_id for r in many] == [LogId(3, 10), LogId(3, 11), LogId(3, 12)]
    assert many[-1] == ClientWriteResponse(LogId(3, 12), "c") and many[-1].membership is None
    assert many[1:] == [ClientWriteResponse(LogId(3, 11), "b"), ClientWriteResponse(LogId(3, 12), "c")]
    assert many == list(many) and many != ClientWriteResponses(3, 11, ["a", "b", "c"])
    with pytest.raises(IndexError):
        many[3]
