"""The lmdb KV state machine's apply, timed as the client waits for it: N entries applied
one ``apply`` call at a time (one client writing one key at a time) or in batches, on a
fresh store in a temporary directory (on the disk that holds ``--dir``), then closed.

    python benchmarks/kv/sm_apply.py [--entries 2000] [--batch 1] [--reps 3] [--dir PATH]
    python benchmarks/kv/sm_apply.py --raw-lmdb [--entries 2000] [--reps 3] [--dir PATH]

Prints one JSON line: the per-call latency p50/p99 in µs (median over reps), the applies
per second while applying, and the seconds ``aclose`` took (a store that commits in the
background commits what is staged there). Runs against whatever fastraft is importable, so
the same file measures two checkouts side by side (run it with each one's interpreter).

``--raw-lmdb``: the options this design was chosen among, without fastraft: one lmdb commit
of one 130-byte put, p50 in µs, with lmdb's full sync (data then meta page), with
MDB_NOMETASYNC (``metasync=False``: one data sync per commit) and with MDB_NOSYNC
(``sync=False``: no sync; lmdb keeps integrity only if the file system keeps write order).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time

import trio

from fastraft import Entry
from fastraft.kv import LmdbKVStateMachine, Set, encode_command
from fastraft.types import EntryKind


def entry(index: int) -> Entry:
    value = f"{index:08d}".ljust(100, "x")  # 100-byte values over 10,000 keys
    return Entry(1, index, EntryKind.NORMAL, encode_command(Set(f"key{index % 10000}", value)))


async def one_rep(path: str, entries: int, batch: int) -> dict:
    sm = await LmdbKVStateMachine.open(path)
    calls = []
    t0 = time.perf_counter()
    for lo in range(1, entries + 1, batch):
        chunk = [entry(i) for i in range(lo, min(entries, lo + batch - 1) + 1)]
        t = time.perf_counter()
        await sm.apply(chunk)
        calls.append(time.perf_counter() - t)
    applying_s = time.perf_counter() - t0
    t = time.perf_counter()
    await sm.aclose()
    close_s = time.perf_counter() - t
    calls.sort()
    return {"p50_us": calls[len(calls) // 2] * 1e6, "p99_us": calls[int(len(calls) * 0.99)] * 1e6,
            "applies_per_s": entries / applying_s, "close_s": close_s}


def raw_lmdb(path: str, entries: int) -> dict:
    import lmdb

    out = {}
    for name, flags in (("full_sync_p50_us", {}), ("nometasync_p50_us", {"metasync": False}),
                        ("nosync_p50_us", {"sync": False})):
        env = lmdb.open(f"{path}/{name}", map_size=1 << 28, **flags)
        times = []
        for i in range(entries):
            t = time.perf_counter()
            with env.begin(write=True) as txn:
                txn.put(b"key%d" % (i % 10000), b"v" * 130)
            times.append(time.perf_counter() - t)
        env.close()
        times.sort()
        out[name] = times[len(times) // 2] * 1e6
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--entries", type=int, default=2000)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--dir", default=None, help="where the temporary stores go")
    ap.add_argument("--raw-lmdb", action="store_true")
    args = ap.parse_args()
    reps = []
    for _ in range(args.reps):
        with tempfile.TemporaryDirectory(dir=args.dir, prefix="sm-apply-") as path:
            if args.raw_lmdb:
                reps.append(raw_lmdb(path, args.entries))
            else:
                reps.append(trio.run(one_rep, path, args.entries, args.batch))
    out = {k: round(statistics.median(r[k] for r in reps), 3) for k in reps[0]}
    out.update(entries=args.entries, batch=args.batch, reps=args.reps)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
