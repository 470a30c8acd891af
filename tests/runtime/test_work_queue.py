"""The runtime's queue (fastraft/runtime/work_queue.py): FIFO per lane, urgent lane first,
bounded, one consumer parked without polling and woken by a put."""

import pytest
import trio
import trio.testing

from fastraft.runtime.work_queue import QueueFull, WorkQueue


def test_lanes_come_out_urgent_first_each_in_order():
    q = WorkQueue(10)
    for x in (1, 2, 3):
        q.put(x)
    q.put_urgent("a")
    q.put_urgent("b")
    assert len(q) == 5 and q.peek() == "a"
    assert q.take_batch(3) == ["a", "b", 1]
    assert q.take() == 2 and q.take_batch(10) == [3]
    assert not q and q.take_batch(10) == []
    with pytest.raises(IndexError):
        q.take()


def test_the_bound_holds_on_every_road():
    q = WorkQueue(2)
    q.put(1)
    q.put(2)
    with pytest.raises(QueueFull):
        q.put(3)
    assert q.put_dropping_oldest(3) == 1  # drops the oldest ordinary item
    assert q.put_urgent("u") == 2  # urgent work drops ordinary work first
    assert q.put_urgent("v") == 3
    assert q.put_urgent("w") == "u"  # then the stalest urgent item
    assert len(q) == 2 and q.clear() == ["v", "w"]
    with pytest.raises(ValueError):
        WorkQueue(0)


def test_the_consumer_parks_until_a_put_and_is_woken_once():
    async def main():
        q = WorkQueue(8)
        got = []

        async def consumer():
            for _ in range(3):  # three wake-ups, then done
                await q.wait()
                got.append(q.take_batch(8))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(consumer)
            await trio.testing.wait_all_tasks_blocked()
            assert got == []  # parked, not polling
            q.put(1)
            q.put(2)  # both before the consumer runs: one wake-up takes both
            await trio.testing.wait_all_tasks_blocked()
            q.put_urgent(3)
            await trio.testing.wait_all_tasks_blocked()
            q.wake_consumer()  # woken without an item: wait() returns, the batch is empty
            await trio.testing.wait_all_tasks_blocked()
        assert got == [[1, 2], [3], []]

    trio.run(main)


def test_a_cancelled_wait_leaves_no_waiter_behind():
    async def main():
        q = WorkQueue(4)
        with trio.move_on_after(0.01):
            await q.wait()
        q.put(1)  # nobody to wake: must not reschedule a task that left
        await q.wait()  # returns at once: an item is queued
        assert q.take() == 1

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
