"""The runtime's queue idiom on its hot path: one producer task puts items in bursts, one
consumer task waits, wakes and drains what is queued (as the engine task, the log writer, the
applier and each peer sender do). ``fastraft.runtime.work_queue.WorkQueue`` side by side with
the alternatives it was chosen over: a trio memory channel drained with ``receive_nowait``, a
memory channel read one ``receive`` at a time, and a deque with a re-armed ``trio.Event`` (the
runtime's earlier idiom). The row to read is ``median_ns_per_item``.
"""

from collections import deque

import pytest
import trio

from fastraft.runtime.work_queue import WorkQueue


async def _run(producer, consumer):
    async with trio.open_nursery() as nursery:
        nursery.start_soon(consumer)
        nursery.start_soon(producer)


def work_queue(items, burst):
    q = WorkQueue(1 << 20)

    async def consumer():
        got = 0
        while got < items:  # bounded: the producer puts exactly ``items``
            await q.wait()
            got += len(q.take_batch(4096))

    async def producer():
        for _ in range(items // burst):
            for _ in range(burst):
                q.put(1)
            await trio.lowlevel.checkpoint()

    trio.run(_run, producer, consumer)


def channel_drain(items, burst):
    send, receive = trio.open_memory_channel(1 << 20)

    async def consumer():
        got = 0
        while got < items:
            await receive.receive()
            got += 1
            while True:  # drain what is queued; ends at WouldBlock
                try:
                    receive.receive_nowait()
                except trio.WouldBlock:
                    break
                got += 1

    async def producer():
        for _ in range(items // burst):
            for _ in range(burst):
                send.send_nowait(1)
            await trio.lowlevel.checkpoint()

    trio.run(_run, producer, consumer)


def channel_receive(items, burst):
    send, receive = trio.open_memory_channel(1 << 20)

    async def consumer():
        for _ in range(items):
            await receive.receive()

    async def producer():
        for _ in range(items // burst):
            for _ in range(burst):
                send.send_nowait(1)
            await trio.lowlevel.checkpoint()

    trio.run(_run, producer, consumer)


def deque_event(items, burst):
    q = deque()
    wake = [trio.Event()]

    async def consumer():
        got = 0
        while got < items:
            if not q:
                wake[0] = trio.Event()
                await wake[0].wait()
                continue
            while q:
                q.popleft()
                got += 1

    async def producer():
        for _ in range(items // burst):
            for _ in range(burst):
                q.append(1)
                wake[0].set()
            await trio.lowlevel.checkpoint()

    trio.run(_run, producer, consumer)


@pytest.mark.parametrize("burst", [1, 16, 256])
@pytest.mark.parametrize("idiom", [work_queue, channel_drain, channel_receive, deque_event],
                         ids=lambda f: f.__name__)
def test_queue_idiom(bench, idiom, burst):
    items = bench.scaled(65_536, 4_096)
    bench.run(f"queue idiom, bursts of {burst}", idiom, items, burst, rounds=7)
    bench.per_item(items)
