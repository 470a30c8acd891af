"""The open-loop load generator of the cluster suite: writes started on a fixed schedule,
``rate`` per second, whatever the answers do, each timed from its scheduled start (so a
stalled node shows in the figures instead of slowing the offered load).

It runs on the leader's own trio loop, beside the node. That loop is busy: one scheduler
pass (the engine's round, flush completions, sends, applies) may take longer than the gap
between two writes. So every wake-up starts all the writes due by then, not one: a
generator that started one write per wake-up fell behind by a pass each time, offered at
most one write per pass of the node's loop, and reported its own lag as write latency.
"""

from __future__ import annotations

import trio

from fastraft import FastraftError

__all__ = ["offer_writes"]


async def offer_writes(raft, cmds: list[bytes], rate: float, warmup_s: float,
                       duration_s: float, max_in_flight: int = 4096) -> dict:
    """``client_write`` of ``cmds`` (in turn) on ``raft`` at ``rate`` per second for
    ``warmup_s + duration_s``; latencies (ms, from each write's scheduled start) of the
    writes scheduled after the warm-up. Writes beyond ``max_in_flight`` outstanding are
    dropped and counted; what is not answered 30 s after the schedule ends is left
    unfinished and counted."""
    clock = trio.current_time
    t0 = clock()
    t_meas = t0 + warmup_s
    n = int((warmup_s + duration_s) * rate)
    lat, state = [], {"pending": 0, "dropped": 0, "errors": 0}

    async def one(i: int, t_sched: float) -> None:
        try:
            await raft.client_write(cmds[i % len(cmds)])
            if t_sched >= t_meas:
                lat.append((clock() - t_sched) * 1e3)
        except FastraftError:
            state["errors"] += 1
        finally:
            state["pending"] -= 1

    with trio.move_on_after(warmup_s + duration_s + 30):  # bounded: 30 s to drain
        async with trio.open_nursery() as nursery:
            i = 0
            while i < n:  # bounded: n writes on a fixed schedule
                await trio.sleep_until(t0 + i / rate)
                due = clock()
                while i < n and t0 + i / rate <= due:  # bounded by n: every write due now
                    t_sched = t0 + i / rate
                    if state["pending"] >= max_in_flight:
                        state["dropped"] += 1
                    else:
                        state["pending"] += 1
                        nursery.start_soon(one, i, t_sched)
                    i += 1
    return {"latency_ms": lat, "dropped": state["dropped"], "errors": state["errors"],
            "unfinished": state["pending"]}
