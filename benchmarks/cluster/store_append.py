#!/usr/bin/env python3
"""Each durable log store's synced append of one entry against the raw cost of the same bytes
through the same engine, and against the floor of each thread hand-off, all open at once
and interleaved append by append (A B C, then B C A, ...: the order rotates) in one run.
For each engine E (``lmdb``, ``rocksdb``):

* ``E_raw``: the engine's own synced write of the entry's encoded block, called straight on
  the trio thread (it blocks it): one synced lmdb commit (sync + metasync, as the store's
  environment), or one rocksdict ``WriteBatch`` written with ``sync=True``;
* ``E_raw_thread``: the same raw write in a worker started for it with
  ``trio.lowlevel.start_thread_soon``, handed back with ``TrioToken.run_sync_soon`` (the
  floor of the per-batch worker design);
* ``E_raw_queue``: the same raw write in one long-lived thread fed by a
  ``queue.SimpleQueue``, handed back with ``run_sync_soon`` (the floor of the writer-thread
  design);
* ``E_store_old``: ``await store.append([entry])`` through the per-batch worker design (the
  one ``fastraft.storage.group_commit`` replaced, kept here as ``ThreadPerBatchPipeline``);
* ``E_store``: ``await store.append([entry])`` as shipped (one writer thread per store).

    python benchmarks/cluster/store_append.py [--reps 3] [--appends 500] [--payload 100]
        [--engines lmdb,rocksdb] [--kinds raw_thread,raw_queue,store_old,store]

prints one JSON line per rep and case, then a summary: the median over reps of each case's
p50 (µs), and each case over its engine's raw write (``E_case_over_raw``).
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import shutil
import statistics
import sys
import tempfile
import threading
import time
from functools import partial

import lmdb
import trio

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(os.path.dirname(HERE)))
from fastraft import Entry  # noqa: E402
from fastraft.codec import encode_entries  # noqa: E402
from fastraft.storage import LmdbLogStore  # noqa: E402
from fastraft.storage.group_commit import WritePipeline  # noqa: E402


def p50_us(samples):
    return statistics.median(samples) * 1e6


# -- the raw writes ------------------------------------------------------------------------


class LmdbRaw:
    def __init__(self, path):
        self.env = lmdb.open(path, map_size=1 << 30, sync=True, metasync=True, map_async=False,
                             max_dbs=4, readahead=False)
        self.db = self.env.open_db(b"log")

    def write(self, entries):
        value = encode_entries(entries)
        with self.env.begin(write=True, db=self.db) as txn:
            txn.put(entries[0].index.to_bytes(8, "big"), value, append=True)

    def close(self):
        self.env.close()


class RocksRaw:
    def __init__(self, path):
        import rocksdict
        self.rocksdict = rocksdict
        opts = rocksdict.Options(raw_mode=True)
        opts.create_if_missing(True)
        self.db = rocksdict.Rdict(path, opts)
        self.wo = rocksdict.WriteOptions()
        self.wo.sync = True

    def write(self, entries):
        value = encode_entries(entries)
        batch = self.rocksdict.WriteBatch(raw_mode=True)
        batch.put(b"L" + entries[0].index.to_bytes(8, "big"), value)
        self.db.write(batch, self.wo)

    def close(self):
        self.db.close()


class Direct:
    """The raw write on the trio thread."""

    def __init__(self, raw):
        self.raw = raw

    async def append(self, entries):
        self.raw.write(entries)

    async def aclose(self):
        self.raw.close()


class ThreadPerWrite(Direct):
    """The raw write in a worker started for it, the outcome handed back to trio."""

    async def append(self, entries):
        token = trio.lowlevel.current_trio_token()
        event = trio.Event()
        trio.lowlevel.start_thread_soon(partial(self.raw.write, entries),
                                        lambda _result: token.run_sync_soon(event.set))
        await event.wait()


class QueueThread(Direct):
    """The raw write in one long-lived thread fed by a SimpleQueue."""

    def __init__(self, raw):
        super().__init__(raw)
        self.jobs = queue.SimpleQueue()
        self.token = None
        self.thread = threading.Thread(target=self.loop, daemon=True)
        self.thread.start()

    def loop(self):
        for _ in range(10**9):  # bounded; ends on None
            job = self.jobs.get()
            if job is None:
                return
            entries, event = job
            self.raw.write(entries)
            self.token.run_sync_soon(event.set)

    async def append(self, entries):
        self.token = trio.lowlevel.current_trio_token()
        event = trio.Event()
        self.jobs.put((entries, event))
        await event.wait()

    async def aclose(self):
        self.jobs.put(None)
        self.thread.join()
        self.raw.close()


# -- the replaced group-commit design, for comparison ---------------------------------------------


class ThreadPerBatchPipeline(WritePipeline):
    """The design ``group_commit`` replaced: each batch in a worker started with
    ``trio.lowlevel.start_thread_soon``; its outcome handed back with ``run_sync_soon``, and
    the next batch started from the trio thread with what was queued meanwhile."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._queued: list = []
        self._in_flight = False

    def submit(self, op, done, coalesce=False):
        self.check()
        self._pending.append((op, done, coalesce))
        self._queued.append(op)
        if not self._in_flight:
            self._start_batch()

    def _start_batch(self):
        n = self._max_batch_ops
        ops, self._queued = self._queued[:n], self._queued[n:]
        self._in_flight = True
        token = trio.lowlevel.current_trio_token()
        started = time.perf_counter()

        def deliver(result):  # in the worker
            try:
                token.run_sync_soon(self._batch_done, len(ops), result, started)
            except trio.RunFinishedError:
                pass

        trio.lowlevel.start_thread_soon(partial(self._run_batch, ops), deliver)

    def _batch_done(self, n, result, started):
        self._in_flight = False
        self._finish(n, result, started)
        if self._queued and self._failure is None:
            self._start_batch()

    async def aclose(self):
        with trio.CancelScope(shield=True):
            await self.wait_idle()


def with_old_pipeline(store):
    store._pipeline = ThreadPerBatchPipeline(store._pipeline._name, store._write_batch,
                                             store._on_committed)
    return store


# -- the cases ----------------------------------------------------------------------------------

KINDS = ("raw", "raw_thread", "raw_queue", "store_old", "store")


async def open_case(engine, kind, path):
    if kind.startswith("raw"):
        raw = LmdbRaw(path) if engine == "lmdb" else RocksRaw(path)
        return {"raw": Direct, "raw_thread": ThreadPerWrite, "raw_queue": QueueThread}[kind](raw)
    if engine == "lmdb":
        store = await LmdbLogStore.open(path)
    else:
        from fastraft.storage.rocksdb_log import RocksLogStore
        store = await RocksLogStore.open(path)
    return with_old_pipeline(store) if kind == "store_old" else store


async def one_rep(base, rep, n, payload, cases):
    """Every case open at once; append i goes to each case in turn, starting with case i mod
    the number of cases (a write's cost depends on what the disk did just before it), so the
    machine's noise and the order fall on all of them alike."""
    stores = {}
    for engine, kind in cases:
        path = os.path.join(base, f"{engine}-{kind}-{rep}")
        stores[engine, kind] = await open_case(engine, kind, path)
    samples = {case: [] for case in cases}
    try:
        for i in range(1, n + 1):  # bounded
            entries = [Entry(1, i, 1, payload)]
            k = i % len(cases)
            for case in cases[k:] + cases[:k]:
                t = time.perf_counter()
                await stores[case].append(entries)
                samples[case].append(time.perf_counter() - t)
    finally:
        for store in stores.values():
            await store.aclose()
    return samples


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--appends", type=int, default=500)
    ap.add_argument("--payload", type=int, default=100)
    ap.add_argument("--engines", default="lmdb,rocksdb")
    ap.add_argument("--kinds", default=",".join(KINDS),
                    help="which cases of each engine (raw is always run: the ratios need it)")
    ap.add_argument("--dir", default=None, help="where the stores go (default: a temp dir)")
    args = ap.parse_args()
    engines = args.engines.split(",")
    kinds = ["raw"] + [k for k in args.kinds.split(",") if k in KINDS and k != "raw"]
    cases = [(engine, kind) for engine in engines for kind in kinds]
    base = tempfile.mkdtemp(dir=args.dir, prefix="store-append-")
    payload = os.urandom(args.payload)
    results: dict = {case: [] for case in cases}
    try:
        for rep in range(args.reps):
            by_case = trio.run(one_rep, base, rep, args.appends, payload, cases)
            for case in cases:
                samples = sorted(by_case[case])
                p50 = p50_us(samples)
                results[case].append(p50)
                print(json.dumps({"rep": rep, "case": "_".join(case), "p50_us": round(p50, 1),
                                  "p99_us": round(samples[int(len(samples) * 0.99) - 1] * 1e6, 1)}),
                      flush=True)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    med = {case: statistics.median(v) for case, v in results.items()}
    summary = {f"{e}_{k}_p50_us": round(v, 1) for (e, k), v in med.items()}
    for engine, kind in cases:
        if kind != "raw":
            summary[f"{engine}_{kind}_over_raw"] = round(med[engine, kind] / med[engine, "raw"], 3)
    for engine in engines:
        for a, b in (("store", "store_old"), ("store", "raw_queue"), ("store_old", "raw_thread")):
            if (engine, a) in med and (engine, b) in med:
                summary[f"{engine}_{a}_over_{b}"] = round(med[engine, a] / med[engine, b], 3)
    print(json.dumps({"summary": summary}), flush=True)


if __name__ == "__main__":
    main()
