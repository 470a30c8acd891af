"""Linearizable reads share ReadIndex rounds (``fastraft.kv.read_rounds``, thesis §6.4) and
are never stale; with the lease option (thesis §6.4.1) they skip the round while the lease
holds. Real Raft nodes on the in-memory router (``kv_fixtures``), under MockClock, so that no
heartbeat falls inside a burst of reads unless time passes; rounds are counted both by the
service and by the messages the router carried."""

import trio

from fastraft.core import Config
from fastraft.kv.api import Unavailable
from fastraft.kv.read_rounds import ReadRounds
from kv_fixtures import KVTestCluster, run

READERS = 50
# a round is an AppendEntries to each of the 2 followers and its answer: 4 deliveries
ROUND_MESSAGES = 4


def test_concurrent_consistent_reads_share_one_round_and_see_the_last_write():
    async def main():
        async with trio.open_nursery() as nursery:
            c = KVTestCluster(nursery)
            await c.form(3)
            service = c.services[1]
            for value in ("a", "b", "c"):  # each burst must see the write acknowledged before it
                assert (await c.post(1, "/write", {"Set": {"key": "k", "value": value}}))[0] == 200
                rounds, delivered = service.read_rounds, c.router.stats.delivered
                answers = []

                async def read():
                    answers.append(await c.post(1, "/consistent_read", "k"))

                async with trio.open_nursery() as readers:
                    for _ in range(READERS):
                        readers.start_soon(read)
                assert answers == [(200, {"Ok": value})] * READERS
                assert c.router.stats.delivered - delivered == ROUND_MESSAGES
                assert service.read_rounds - rounds == 1
            await c.stop_all()

    run(main)


def test_reads_racing_writes_never_return_a_value_older_than_the_last_acknowledged_write():
    async def main():
        async with trio.open_nursery() as nursery:
            c = KVTestCluster(nursery)
            await c.form(3)
            acknowledged = [0]  # the highest value whose write was answered
            stale = []

            async def writer():
                for v in range(1, 41):
                    status, _ = await c.post(1, "/write", {"Set": {"key": "k", "value": str(v)}})
                    assert status == 200
                    acknowledged[0] = v

            async def reader():
                for _ in range(40):
                    floor = acknowledged[0]
                    status, doc = await c.post(1, "/consistent_read", "k")
                    assert status == 200
                    got = int(doc["Ok"] or 0)
                    if got < floor:
                        stale.append((got, floor))
                    await trio.sleep(0.001)

            async with trio.open_nursery() as load:
                load.start_soon(writer)
                for _ in range(8):
                    load.start_soon(reader)
            assert stale == []
            # batching happened: fewer rounds than reads
            assert c.services[1].read_rounds < 8 * 40
            await c.stop_all()

    run(main)


def test_a_deposed_leader_never_answers_a_batch_of_reads_with_its_old_value():
    async def main():
        async with trio.open_nursery() as nursery:
            c = KVTestCluster(nursery)
            await c.form(3)
            await c.post(1, "/write", {"Set": {"key": "k", "value": "old"}})
            c.router.isolate(1)  # 1 still believes it leads; 2 and 3 elect a new leader
            new = await c.wait_leader([2, 3], timeout_s=30)
            assert (await c.post(new, "/write", {"Set": {"key": "k", "value": "new"}}))[0] == 200
            answers = []

            async def read():
                answers.append(await c.post(1, "/consistent_read", "k"))

            async with trio.open_nursery() as readers:
                for _ in range(10):
                    readers.start_soon(read)
            assert len(answers) == 10
            assert all("Ok" not in doc for _, doc in answers), answers
            c.router.heal()
            await c.stop_all()

    run(main)


def test_lease_reads_skip_the_round_while_the_lease_holds():
    async def main():
        config = Config(heartbeat_interval_ms=1000, election_timeout_min_ms=3000,
                        election_timeout_max_ms=6000, check_quorum=True, lease_read=True)
        async with trio.open_nursery() as nursery:
            c = KVTestCluster(nursery, config=config)
            await c.form(3)
            await c.post(1, "/write", {"Set": {"key": "k", "value": "v"}})
            await c.post(1, "/consistent_read", "k")  # a round acknowledged: the lease starts
            delivered = c.router.stats.delivered
            for _ in range(20):  # one at a time: no batching, only the lease can save rounds
                assert await c.post(1, "/consistent_read", "k") == (200, {"Ok": "v"})
            assert c.router.stats.delivered == delivered
            # past the lease with the followers cut off, a read is not served from the lease
            c.router.isolate(1)
            await trio.sleep(10)
            status, doc = await c.post(1, "/consistent_read", "k")
            assert "Ok" not in doc, doc  # check-quorum deposed it: it does not lead any more
            c.router.heal()
            await c.stop_all()

    run(main)


def test_a_round_that_fails_fails_its_whole_batch_and_the_next_batch_tries_again():
    async def main():
        outcomes = iter([RuntimeError("no quorum"), None])
        calls = []

        async def confirm():
            calls.append(trio.current_time())
            await trio.sleep(1)
            error = next(outcomes)
            if error is not None:
                raise error

        rounds = ReadRounds(confirm, timeout_s=5)
        results = []

        async def read():
            try:
                await rounds.wait()
                results.append("ok")
            except RuntimeError as e:
                results.append(str(e))

        async with trio.open_nursery() as n:
            for _ in range(3):
                n.start_soon(read)
            await trio.sleep(0.5)  # the first round is under way: these wait for the next
            for _ in range(2):
                n.start_soon(read)
        assert results == ["no quorum"] * 3 + ["ok"] * 2
        assert rounds.started == 2 and calls == [0.0, 1.0]

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))


def test_a_round_that_hangs_ends_with_unavailable_within_the_timeout():
    async def main():
        async def confirm():
            await trio.sleep_forever()

        rounds = ReadRounds(confirm, timeout_s=3)
        start = trio.current_time()
        try:
            await rounds.wait()
        except Unavailable:
            pass
        else:
            raise AssertionError("a hung round must not succeed")
        assert trio.current_time() - start == 3

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
