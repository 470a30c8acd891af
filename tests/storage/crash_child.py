"""The child of the SIGKILL test: writes to an lmdb log store as fast as it can, and reports
on stdout every write that completed, until it is killed.

Usage: python crash_child.py <store directory> <seed> [<store kind>]

The store kind is a name of ``crash_stores.OPENERS`` (default lmdb).

Each line is written with one os.write (atomic on a pipe) after the write it reports
returned (or, for appends, after its durability callback ran):

    R <last index>                  opened; the log ends at <last index>
    A <first> <last> <term>         entries [first, last] of <term> are durable
    v <term> / V <term>             a vote of <term> is being saved / is durable
    p <index> / P <index>           a purge up to <index> is issued / is durable
    t <since> / T <since>           a truncation since <since> is issued / is durable

An entry's payload is derived from its term and index (``payload``), so the parent can tell
a torn or misplaced record from a good one.
"""

import os
import random
import sys
import time

import trio

from fastraft import Entry, LogId, Vote
from crash_stores import OPENERS

MAX_RUN_S = 20.0
MAX_IN_FLIGHT = 16


def payload(term: int, index: int) -> bytes:
    return f"{term}:{index}:".encode().ljust(100, b".")


def emit(*fields) -> None:
    os.write(1, (" ".join(str(f) for f in fields) + "\n").encode())


async def main(path: str, seed: int, kind: str) -> None:
    rng = random.Random(seed)
    store = await OPENERS[kind](path)
    state = await store.get_log_state()
    vote = await store.read_vote() or Vote()
    next_index = state.next_index
    term = max(vote.term, 0 if state.last_log_id is None else state.last_log_id.term, 1)
    durable_last = next_index - 1
    purged = 0 if state.last_purged_log_id is None else state.last_purged_log_id.index
    emit("R", durable_last)
    in_flight = 0
    drained = trio.Event()
    drained.set()

    def on_durable(first: int, last: int, batch_term: int, error) -> None:
        nonlocal in_flight, durable_last
        if error is not None:
            emit("E", error)
            os._exit(3)
        durable_last = max(durable_last, last)
        emit("A", first, last, batch_term)
        in_flight -= 1
        if in_flight == 0:
            drained.set()

    async def drain() -> None:
        await drained.wait()

    deadline = time.monotonic() + MAX_RUN_S
    while time.monotonic() < deadline:
        r = rng.random()
        if r < 0.9:
            while in_flight >= MAX_IN_FLIGHT:
                await trio.sleep(0.0005)
            n = rng.randint(1, 40)
            first = next_index
            batch = [Entry(term, i, 1, payload(term, i)) for i in range(first, first + n)]
            next_index += n
            in_flight += 1
            drained = trio.Event() if in_flight == 1 else drained
            store.append_nowait(batch, lambda err, a=first, b=first + n - 1, t=term:
                                on_durable(a, b, t, err))
            if rng.random() < 0.7:
                await trio.sleep(0)
        elif r < 0.95:
            await drain()
            term += 1
            emit("v", term)
            await store.save_vote(Vote(term, 1))
            emit("V", term)
        elif r < 0.98:
            await drain()
            if durable_last - 5 > purged:
                upto = rng.randint(purged + 1, durable_last - 5)
                got = await store.read_entries(upto, upto + 1)
                emit("p", upto)
                await store.purge(LogId(got[0].term, upto))
                purged = upto
                emit("P", upto)
        else:
            await drain()
            if durable_last > purged + 1:
                since = rng.randint(purged + 2, durable_last)
                emit("t", since)
                await store.truncate(since)
                emit("T", since)
                next_index = since
                durable_last = since - 1
                term += 1
    await store.aclose()


if __name__ == "__main__":
    trio.run(main, sys.argv[1], int(sys.argv[2]), sys.argv[3] if len(sys.argv) > 3 else "lmdb")
