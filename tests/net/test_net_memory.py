"""The in-memory router: delivery of every request kind, and each fault it injects."""

import pytest
import trio
import trio.testing

from fastraft import Entry
from fastraft.messages import (
    AppendEntriesResponse,
    InstallSnapshotRequest,
    InstallSnapshotResponse,
    TimeoutNowRequest,
    TimeoutNowResponse,
    VoteRequest,
    VoteResponse,
)
from fastraft.net import MemoryRouter, RemoteError, RequestTimeout, Unreachable, dispatch
from net_fixtures import EchoHandler, append_request


def run(fn):
    """Run ``fn`` under a MockClock that jumps whenever every task waits: timeouts cost no
    wall time and every run takes the same simulated time."""
    clock = trio.testing.MockClock(autojump_threshold=0)
    return trio.run(fn, clock=clock)


def three_nodes(**kw):
    router = MemoryRouter(**kw)
    handlers = {i: EchoHandler(node_id=i) for i in (1, 2, 3)}
    for i, h in handlers.items():
        router.register(i, h)
    return router, handlers


def test_every_request_kind_gets_its_response():
    async def main():
        router, handlers = three_nodes()
        async with router.network(1).client(2, None) as c:
            r = await c.append_entries(append_request(term=3, seq=9, prev=4, entries=[Entry(3, 5, 1, b"x")]), 1.0)
            assert r == AppendEntriesResponse(term=3, sender=2, success=True, match_index=5, seq=9)
            v = await c.vote(VoteRequest(term=4, sender=1, last_log_term=3, last_log_index=5, pre_vote=True), 1.0)
            assert v == VoteResponse(term=4, sender=2, granted=True, pre_vote=True)
            s = await c.install_snapshot(InstallSnapshotRequest(
                term=4, sender=1, snapshot_id="s1", last_log_term=3, last_log_index=5,
                membership_term=1, membership_index=1, membership=b"{}", offset=10, data=b"abc",
                done=False), 1.0)
            assert s == InstallSnapshotResponse(term=4, sender=2, snapshot_id="s1", next_offset=13, done=False)
            t = await c.timeout_now(TimeoutNowRequest(term=4, sender=1), 1.0)
            assert t == TimeoutNowResponse(term=4, sender=2)
        assert len(handlers[2].seen) == 4 and not handlers[3].seen
        assert router.stats.delivered == 8  # four requests, four responses

    run(main)


def test_request_without_answer_returns_none():
    async def main():
        router, handlers = three_nodes(through_codec=True)
        handlers[2].silent_terms.add(5)
        assert await router.network(1).client(2, None).vote(VoteRequest(term=5, sender=1, last_log_term=0, last_log_index=0), 1.0) is None

    run(main)


def test_dispatch_refuses_a_response_message():
    async def main():
        with pytest.raises(TypeError):
            await dispatch(EchoHandler(), VoteResponse(term=1, sender=1, granted=True))

    run(main)


def test_unregistered_target_is_refused_at_once():
    async def main():
        router, _ = three_nodes()
        router.unregister(3)
        t0 = trio.current_time()
        with pytest.raises(Unreachable):
            await router.network(1).client(3, None).append_entries(append_request(), 5.0)
        assert trio.current_time() == t0
        assert router.stats.refused == 1

    run(main)


def test_partition_loses_messages_until_heal():
    async def main():
        router, handlers = three_nodes()
        router.partition({1, 2}, {3})
        net1 = router.network(1)
        assert (await net1.client(2, None).vote(VoteRequest(term=2, sender=1, last_log_term=0, last_log_index=0), 1.0)).granted
        t0 = trio.current_time()
        with pytest.raises(RequestTimeout):
            await net1.client(3, None).vote(VoteRequest(term=2, sender=1, last_log_term=0, last_log_index=0), 1.0)
        assert trio.current_time() - t0 == pytest.approx(1.0)  # a lost message hangs until the timeout
        assert not handlers[3].seen
        assert not router.can_reach(3, 2) and router.can_reach(2, 1)
        router.heal()
        assert (await net1.client(3, None).vote(VoteRequest(term=2, sender=1, last_log_term=0, last_log_index=0), 1.0)).granted
        assert router.stats.blocked == 1

    run(main)


def test_unnamed_nodes_form_one_group():
    router, _ = three_nodes()
    router.partition({1})
    assert router.can_reach(2, 3) and not router.can_reach(1, 2) and not router.can_reach(3, 1)
    with pytest.raises(ValueError):
        router.partition({1, 2}, {2, 3})


def test_isolate_cuts_one_node_both_ways():
    async def main():
        router, handlers = three_nodes()
        router.isolate(2)
        with pytest.raises(RequestTimeout):
            await router.network(1).client(2, None).vote(VoteRequest(term=2, sender=1, last_log_term=0, last_log_index=0), 0.5)
        with pytest.raises(RequestTimeout):
            await router.network(2).client(3, None).vote(VoteRequest(term=2, sender=2, last_log_term=0, last_log_index=0), 0.5)
        assert (await router.network(1).client(3, None).vote(VoteRequest(term=2, sender=1, last_log_term=0, last_log_index=0), 0.5)).granted
        assert not handlers[2].seen and len(handlers[3].seen) == 1
        router.heal()
        assert (await router.network(1).client(2, None).vote(VoteRequest(term=2, sender=1, last_log_term=0, last_log_index=0), 0.5)).granted

    run(main)


def test_partition_during_flight_loses_the_response():
    async def main():
        router, handlers = three_nodes(delay_s=0.1)
        c = router.network(1).client(2, None)
        async with trio.open_nursery() as nursery:
            outcome = []

            async def ask():
                try:
                    await c.vote(VoteRequest(term=2, sender=1, last_log_term=0, last_log_index=0), 1.0)
                    outcome.append("answered")
                except RequestTimeout:
                    outcome.append("timeout")

            nursery.start_soon(ask)
            await trio.sleep(0.15)  # the request arrived at 0.1; its response is on the way
            router.isolate(2)
        assert outcome == ["timeout"] and len(handlers[2].seen) == 1

    run(main)


def test_delay_applies_to_request_and_response():
    async def main():
        router, _ = three_nodes(delay_s=0.05)
        t0 = trio.current_time()
        await router.network(1).client(2, None).vote(VoteRequest(term=2, sender=1, last_log_term=0, last_log_index=0), 1.0)
        assert trio.current_time() - t0 == pytest.approx(0.1)

    run(main)


def _drop_pattern(seed):
    async def main():
        router, _ = three_nodes(seed=seed, drop_rate=0.5, jitter_s=0.01)
        c = router.network(1).client(2, None)
        pattern = []
        for i in range(40):
            try:
                await c.vote(VoteRequest(term=2 * i, sender=1, last_log_term=0, last_log_index=0), 0.1)
                pattern.append(1)
            except RequestTimeout:
                pattern.append(0)
        return pattern, router.stats

    return run(main)


def test_drop_rate_loses_some_and_replays_by_seed():
    pattern, stats = _drop_pattern(seed=11)
    assert 0 < sum(pattern) < 40  # with p = 0.5 each way, about a quarter get through
    # every failed request lost exactly one message (its request or its response)
    assert stats.dropped == 40 - sum(pattern)
    assert _drop_pattern(seed=11)[0] == pattern
    assert _drop_pattern(seed=12)[0] != pattern


def test_fault_settings_are_checked():
    router = MemoryRouter()
    for bad in (dict(drop_rate=1.5), dict(delay_s=-1), dict(jitter_s=-0.1)):
        with pytest.raises(ValueError):
            router.set_faults(**bad)
    router.set_faults(drop_rate=1.0)
    router.set_faults(delay_s=0.2)
    assert (router.drop_rate, router.delay_s, router.jitter_s) == (1.0, 0.2, 0.0)


def test_shutting_down_target_answers_remote_error():
    async def main():
        router, handlers = three_nodes()
        handlers[2].shutting_down = True
        with pytest.raises(RemoteError):
            await router.network(1).client(2, None).vote(VoteRequest(term=2, sender=1, last_log_term=0, last_log_index=0), 1.0)

    run(main)


def test_closed_client_refuses():
    async def main():
        router, _ = three_nodes()
        c = router.network(1).client(2, None)
        await c.aclose()
        with pytest.raises(Unreachable):
            await c.vote(VoteRequest(term=2, sender=1, last_log_term=0, last_log_index=0), 1.0)

    run(main)


def test_through_codec_gives_the_receiver_its_own_copy():
    async def main():
        router, handlers = three_nodes(through_codec=True)
        req = append_request(entries=[Entry(1, 1, 1, b"payload")])
        resp = await router.network(1).client(2, None).append_entries(req, 1.0)
        got = handlers[2].seen[0]
        assert got == req and got is not req and got.entries is not req.entries
        assert resp.match_index == 1

    run(main)


def test_pipelined_start_returns_replies_in_flight():
    async def main():
        router, handlers = three_nodes(delay_s=0.01)
        c = router.network(1).client(2, None)
        replies = [await c.start(append_request(seq=i)) for i in range(5)]
        results = []
        async with trio.open_nursery() as nursery:
            for r in replies:
                async def wait(r=r):
                    results.append((await r.result()).seq)
                nursery.start_soon(wait)
        assert sorted(results) == [0, 1, 2, 3, 4]
        with pytest.raises(TypeError):
            await c.request(VoteResponse(term=1, sender=1, granted=True), 1.0)

    run(main)


def test_handler_shutdown_error_reaches_every_waiter():
    async def main():
        router, handlers = three_nodes()
        handlers[2].shutting_down = True
        reply = await router.network(1).client(2, None).start(VoteRequest(term=2, sender=1, last_log_term=0, last_log_index=0))
        for _ in range(2):
            with pytest.raises(RemoteError):
                await reply.result()
        assert len(handlers[2].seen) == 1

    run(main)

