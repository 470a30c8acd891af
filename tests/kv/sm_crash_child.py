"""The child of the state machine's SIGKILL test: applies entries to an lmdb KV state
machine as fast as it can, reporting on stdout, until it is killed.

Usage: python sm_crash_child.py <state machine directory> <seed>

    R <applied>      opened; the state machine reports <applied> (0: nothing)
    A <index>        entries up to <index> are applied (not necessarily durable)
    D <index>        entries up to <index> are durable (``durable_applied``)

Entry i's payload depends on i only (``entry``), so the parent replays the same log.
"""

import os
import random
import sys
import time

import trio

from fastraft import Entry
from fastraft.kv import CompareAndSwap, LmdbKVStateMachine, Set, encode_command
from fastraft.types import EntryKind

MAX_RUN_S = 20.0
KEYS = 97


def entry(index: int) -> Entry:
    """Sets, and every fifth a compare-and-swap whose outcome depends on the state."""
    if index % 5 == 0:
        cmd = CompareAndSwap(f"k{index * 3 % KEYS}", f"v{index - 3}", f"c{index}")
    else:
        cmd = Set(f"k{index % KEYS}", f"v{index}")
    return Entry(1, index, EntryKind.NORMAL, encode_command(cmd))


def emit(*fields) -> None:
    os.write(1, (" ".join(str(f) for f in fields) + "\n").encode())


async def main(path: str, seed: int) -> None:
    rng = random.Random(seed)
    sm = await LmdbKVStateMachine.open(path, commit_interval_s=0.01)
    applied, _ = await sm.applied_state()
    last = 0 if applied is None else applied.index
    emit("R", last)
    durable = last
    deadline = time.monotonic() + MAX_RUN_S
    while time.monotonic() < deadline:  # bounded; normally ends by SIGKILL
        n = rng.randint(1, 20)
        await sm.apply([entry(i) for i in range(last + 1, last + n + 1)])
        last += n
        emit("A", last)
        now = sm.durable_applied
        if now is not None and now.index != durable:
            durable = now.index
            emit("D", durable)
        await trio.sleep(0)


if __name__ == "__main__":
    trio.run(main, sys.argv[1], int(sys.argv[2]))
