#!/usr/bin/env python3
"""Each durable log store's synced append of one entry against the raw cost of the same bytes
through the same engine, called from one thread (one trio task; the raw writes straight,
with no thread hand-off), interleaved append by append (A B C D A B C D) in one run:

* ``lmdb_raw``: one synced lmdb commit putting the entry's encoded block (sync + metasync,
  as the store's environment);
* ``lmdb_store``: ``await LmdbLogStore.append([entry])``;
* ``rocksdb_raw``: one rocksdict ``WriteBatch`` holding the same block, written with
  ``sync=True``;
* ``rocksdb_store``: ``await RocksLogStore.append([entry])``.

    python benchmarks/cluster/store_append.py [--reps 3] [--appends 500] [--payload 100]

prints one JSON line per rep and case, then a summary: the median over reps of each case's
p50 (µs), and store/raw for each engine.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time

import lmdb
import trio

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(os.path.dirname(HERE)))
from fastraft import Entry  # noqa: E402
from fastraft.codec import encode_entries  # noqa: E402
from fastraft.storage import LmdbLogStore  # noqa: E402


def p50_us(samples):
    return statistics.median(samples) * 1e6


class LmdbRaw:
    def __init__(self, path):
        self.env = lmdb.open(path, map_size=1 << 30, sync=True, metasync=True, map_async=False,
                             max_dbs=4, readahead=False)
        self.db = self.env.open_db(b"log")

    async def append(self, entries):
        value = encode_entries(entries)
        with self.env.begin(write=True, db=self.db) as txn:
            txn.put(entries[0].index.to_bytes(8, "big"), value, append=True)

    async def aclose(self):
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

    async def append(self, entries):
        value = encode_entries(entries)
        batch = self.rocksdict.WriteBatch(raw_mode=True)
        batch.put(b"L" + entries[0].index.to_bytes(8, "big"), value)
        self.db.write(batch, self.wo)

    async def aclose(self):
        self.db.close()


async def open_case(name, path):
    if name == "lmdb_raw":
        return LmdbRaw(path)
    if name == "rocksdb_raw":
        return RocksRaw(path)
    if name == "lmdb_store":
        return await LmdbLogStore.open(path)
    from fastraft.storage.rocksdb_log import RocksLogStore
    return await RocksLogStore.open(path)


CASES = ("lmdb_raw", "lmdb_store", "rocksdb_raw", "rocksdb_store")


async def one_rep(base, rep, n, payload):
    """Every case open at once; append i goes to each case in turn (A B C D A B C D ...), so
    the machine's noise falls on all of them alike."""
    stores = {name: await open_case(name, os.path.join(base, f"{name}-{rep}")) for name in CASES}
    samples = {name: [] for name in CASES}
    try:
        for i in range(1, n + 1):  # bounded
            entries = [Entry(1, i, 1, payload)]
            for name in CASES:
                t = time.perf_counter()
                await stores[name].append(entries)
                samples[name].append(time.perf_counter() - t)
    finally:
        for store in stores.values():
            await store.aclose()
    return samples


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--appends", type=int, default=500)
    ap.add_argument("--payload", type=int, default=100)
    ap.add_argument("--dir", default=None, help="where the stores go (default: a temp dir)")
    args = ap.parse_args()
    base = tempfile.mkdtemp(dir=args.dir, prefix="store-append-")
    payload = os.urandom(args.payload)
    results: dict[str, list[float]] = {name: [] for name in CASES}
    try:
        for rep in range(args.reps):
            by_case = trio.run(one_rep, base, rep, args.appends, payload)
            for name in CASES:
                samples = by_case[name]
                p50 = p50_us(samples)
                results[name].append(p50)
                print(json.dumps({"rep": rep, "case": name, "p50_us": round(p50, 1),
                                  "p99_us": round(sorted(samples)[int(len(samples) * 0.99) - 1] * 1e6, 1)}),
                      flush=True)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    med = {name: statistics.median(v) for name, v in results.items()}
    summary = {f"{name}_p50_us": round(v, 1) for name, v in med.items()}
    summary["lmdb_store_over_raw"] = round(med["lmdb_store"] / med["lmdb_raw"], 3)
    summary["rocksdb_store_over_raw"] = round(med["rocksdb_store"] / med["rocksdb_raw"], 3)
    print(json.dumps({"summary": summary}), flush=True)


if __name__ == "__main__":
    main()
