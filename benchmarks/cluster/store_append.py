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
  design), timed when the waiting task has woken;
* ``E_raw_queue_cb``: the same, timed inside the ``run_sync_soon`` callback, where the
  runtime's flush round runs (no waiting task to wake after it);
* ``E_raw_lock``: the writer thread parked on a ``threading.Lock`` (released by the trio
  thread to hand it a write) instead of a queue; handed back as ``raw_queue_cb``;
* ``E_raw_fd``: fed as ``raw_queue``; handed back by writing an ``eventfd`` that the waiting
  task waits on itself (``trio.lowlevel.wait_readable``), instead of ``run_sync_soon``
  (which wakes trio's entry-queue task, which then wakes the waiter);
* ``E_store_old``: ``await store.append([entry])`` through the per-batch worker design (the
  one ``fastraft.storage.group_commit`` replaced, kept here as ``ThreadPerBatchPipeline``);
* ``E_store``: ``await store.append([entry])`` as shipped (one writer thread per store);
* ``E_store_nowait``: ``store.append_nowait([entry], on_durable)``, the road the runtime
  takes, timed when ``on_durable`` runs on the trio thread (where the runtime's flush round
  runs);
* ``E_store_noted``: the same, each append preceded by ``store.note_committed`` of the entry
  before it, as the runtime does (the commit index rides in the append's write).

    python benchmarks/cluster/store_append.py [--reps 3] [--appends 500] [--payload 100]
        [--engines lmdb,rocksdb] [--kinds raw_thread,raw_queue,raw_queue_cb,raw_lock,raw_fd,
        store_old,store,store_nowait,store_noted]

prints one JSON line per rep and case, then a summary: the median over reps of each case's
p50 (µs), each case over its engine's raw write (``E_case_over_raw``), and for the stores the
synced write batches per append (``E_case_syncs_per_append``: 1.0 means the noted commit
index cost no sync of its own).
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
from fastraft.types import LogId  # noqa: E402


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
    """The raw write in one long-lived thread fed by a SimpleQueue; with ``at_callback``,
    ``append`` returns the time the hand-back callback ran on the trio thread."""

    def __init__(self, raw, at_callback=False):
        super().__init__(raw)
        self.at_callback = at_callback
        self.jobs = queue.SimpleQueue()
        self.token = None
        self.thread = threading.Thread(target=self.loop, daemon=True)
        self.thread.start()

    def loop(self):
        for _ in range(10**9):  # bounded; ends on None
            job = self.jobs.get()
            if job is None:
                return
            entries, done = job
            self.raw.write(entries)
            self.token.run_sync_soon(done)

    async def append(self, entries):
        self.token = trio.lowlevel.current_trio_token()
        event = trio.Event()
        end = []

        def done():
            end.append(time.perf_counter())
            event.set()

        self.jobs.put((entries, done))
        await event.wait()
        return end[0] if self.at_callback else None

    async def aclose(self):
        self.jobs.put(None)
        self.thread.join()
        self.raw.close()


class LockThread(Direct):
    """The raw write in one long-lived thread parked on a ``threading.Lock`` that the trio
    thread releases to hand it a write; handed back with ``run_sync_soon``, timed there."""

    def __init__(self, raw):
        super().__init__(raw)
        self.go = threading.Lock()
        self.go.acquire()
        self.job = None
        self.token = None
        self.thread = threading.Thread(target=self.loop, daemon=True)
        self.thread.start()

    def loop(self):
        for _ in range(10**9):  # bounded; ends on a None job
            self.go.acquire()
            job, self.job = self.job, None
            if job is None:
                return
            entries, done = job
            self.raw.write(entries)
            self.token.run_sync_soon(done)

    async def append(self, entries):
        self.token = trio.lowlevel.current_trio_token()
        event = trio.Event()
        end = []

        def done():
            end.append(time.perf_counter())
            event.set()

        self.job = (entries, done)
        self.go.release()
        await event.wait()
        return end[0]

    async def aclose(self):
        self.job = None
        self.go.release()
        self.thread.join()
        self.raw.close()


class EventFdThread(Direct):
    """The raw write in one long-lived thread fed by a SimpleQueue, handed back through an
    eventfd the waiting task waits on itself (no entry-queue task in between)."""

    def __init__(self, raw):
        super().__init__(raw)
        self.jobs = queue.SimpleQueue()
        self.fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self.thread = threading.Thread(target=self.loop, daemon=True)
        self.thread.start()

    def loop(self):
        for _ in range(10**9):  # bounded; ends on None
            entries = self.jobs.get()
            if entries is None:
                return
            self.raw.write(entries)
            os.eventfd_write(self.fd, 1)

    async def append(self, entries):
        self.jobs.put(entries)
        for _ in range(10**6):  # bounded; until the writer has signalled
            try:
                os.eventfd_read(self.fd)
                break
            except BlockingIOError:
                await trio.lowlevel.wait_readable(self.fd)

    async def aclose(self):
        self.jobs.put(None)
        self.thread.join()
        os.close(self.fd)
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


class Noted:
    """The store as the runtime drives it: before each append the commit index (here the
    entry before it) is noted, to ride in the append's own synced write."""

    def __init__(self, store):
        self.store = store
        self.sync_latency = store.sync_latency

    async def append(self, entries):
        first = entries[0]
        if first.index > 1:
            self.store.note_committed(LogId(first.term, first.index - 1))
        await self.store.append(entries)

    async def aclose(self):
        await self.store.aclose()


class Nowait:
    """The store as the runtime drives it: ``append_nowait``, timed when ``on_durable`` runs
    on the trio thread (the runtime's flush round runs there, without another task turn)."""

    def __init__(self, store):
        self.store = store
        self.sync_latency = store.sync_latency

    async def append(self, entries):
        event = trio.Event()
        end = []

        def on_durable(error):
            end.append(time.perf_counter())
            if error is not None:
                end.append(error)
            event.set()

        self.store.append_nowait(entries, on_durable, True)
        await event.wait()
        if len(end) > 1:
            raise end[1]
        return end[0]

    async def aclose(self):
        await self.store.aclose()


# -- the cases ----------------------------------------------------------------------------------

KINDS = ("raw", "raw_thread", "raw_queue", "raw_queue_cb", "raw_lock", "raw_fd", "store_old",
         "store", "store_nowait", "store_noted")


async def open_case(engine, kind, path):
    if kind.startswith("raw"):
        raw = LmdbRaw(path) if engine == "lmdb" else RocksRaw(path)
        return {"raw": Direct, "raw_thread": ThreadPerWrite, "raw_queue": QueueThread,
                "raw_queue_cb": partial(QueueThread, at_callback=True), "raw_lock": LockThread,
                "raw_fd": EventFdThread}[kind](raw)
    if engine == "lmdb":
        store = await LmdbLogStore.open(path)
    else:
        from fastraft.storage.rocksdb_log import RocksLogStore
        store = await RocksLogStore.open(path)
    if kind == "store_noted":
        return Noted(store)
    if kind == "store_nowait":
        return Nowait(store)
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
    syncs = {}
    try:
        for i in range(1, n + 1):  # bounded
            entries = [Entry(1, i, 1, payload)]
            k = i % len(cases)
            for case in cases[k:] + cases[:k]:
                t = time.perf_counter()
                end = await stores[case].append(entries)  # a case may time its own end
                samples[case].append((end or time.perf_counter()) - t)
        for case, store in stores.items():  # synced write batches per append
            if hasattr(store, "sync_latency"):
                syncs[case] = store.sync_latency.count / n
    finally:
        for store in stores.values():
            await store.aclose()
    return samples, syncs


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
    syncs_per_append: dict = {}
    try:
        for rep in range(args.reps):
            by_case, syncs = trio.run(one_rep, base, rep, args.appends, payload, cases)
            for case in cases:
                samples = sorted(by_case[case])
                p50 = p50_us(samples)
                results[case].append(p50)
                line = {"rep": rep, "case": "_".join(case), "p50_us": round(p50, 1),
                        "p99_us": round(samples[int(len(samples) * 0.99) - 1] * 1e6, 1)}
                if case in syncs:
                    line["syncs_per_append"] = syncs_per_append[case] = syncs[case]
                print(json.dumps(line), flush=True)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    med = {case: statistics.median(v) for case, v in results.items()}
    summary = {f"{e}_{k}_p50_us": round(v, 1) for (e, k), v in med.items()}
    for engine, kind in cases:
        if kind != "raw":
            summary[f"{engine}_{kind}_over_raw"] = round(med[engine, kind] / med[engine, "raw"], 3)
    for (engine, kind), per in syncs_per_append.items():
        summary[f"{engine}_{kind}_syncs_per_append"] = per
    for engine in engines:
        for a, b in (("store", "store_old"), ("store", "raw_queue"), ("store_old", "raw_thread"),
                     ("store_noted", "store"), ("store_nowait", "raw_queue_cb"),
                     ("raw_queue_cb", "raw_queue"), ("raw_lock", "raw_queue_cb"),
                     ("raw_fd", "raw_queue")):
            if (engine, a) in med and (engine, b) in med:
                summary[f"{engine}_{a}_over_{b}"] = round(med[engine, a] / med[engine, b], 3)
    print(json.dumps({"summary": summary}), flush=True)


if __name__ == "__main__":
    main()
