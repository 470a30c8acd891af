#!/usr/bin/env python3
"""The floor under the single-writer latency of a three-node cluster: the same processes,
loopback hops and synced commits a replicated write needs, and nothing else.

One "leader" and two "followers", each an OS process running trio, talk over TCP on
127.0.0.1. Per write the leader sends one byte to both followers and starts its own synced
lmdb commit of one 130-byte record in a worker thread; each follower, on receiving the byte,
does the same commit in a worker thread and answers one byte. The write is done when two of
the three (the leader's own commit, the followers' answers) are done: a majority of three,
with the leader writing its log in parallel with replicating, as the runtime does (Raft
§10.2.1 of the thesis). No Raft, no codec, no state machine.

``--store`` picks each node's synced write, so that the runtime's one-writer latency on a
log store can be set beside that store's own floor:

* ``lmdb`` (the default): one synced lmdb commit (sync + metasync, as ``LmdbEnv``);
* ``rocksdb``: one rocksdict ``WriteBatch`` holding the record, written with ``sync=True``
  (as ``RocksLogStore``; needs ``fastraft[rocksdb]``);
* ``memory``: the record appended to a list on the trio thread (as ``MemoryLogStore``): no
  sync and no thread, what remains is the processes and the loopback network alone
  (``--no-disk`` is the same).

The disk writes run in a worker thread (``trio.to_thread.run_sync``), as a store's do. The
followers listen on RAFTBENCH_BASE_PORT + 1 and + 2 when it is set, else on free ports.

    python benchmarks/cluster/latency_floor.py --writes 3000 --max-seconds 10 --store lmdb
    python benchmarks/cluster/latency_floor.py --writes 3000 --max-seconds 10 --store rocksdb
    python benchmarks/cluster/latency_floor.py --writes 3000 --max-seconds 10 --store memory

prints one JSON line: p50_ms, p99_ms, writes, store.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import lmdb
import trio

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(os.path.dirname(HERE)))
from fastraft.testing import free_ports  # noqa: E402

RECORD = os.urandom(130)  # about one 100-byte entry in the log store's record format


STORES = ("lmdb", "rocksdb", "memory")


class SyncedLog:
    """A fresh lmdb environment, synced on commit as the log store's, taking one record per
    commit."""

    in_thread = True

    def __init__(self, path: str) -> None:
        shutil.rmtree(path, ignore_errors=True)
        self.env = lmdb.open(path, map_size=1 << 30, sync=True, metasync=True, max_dbs=2)
        self.db = self.env.open_db(b"log")
        self.next = 1

    def commit_one(self) -> None:
        with self.env.begin(write=True, db=self.db) as txn:
            txn.put(self.next.to_bytes(8, "big"), RECORD, append=True)
        self.next += 1


class SyncedRocks:
    """A fresh RocksDB database taking one record per synced write batch."""

    in_thread = True

    def __init__(self, path: str) -> None:
        import rocksdict
        shutil.rmtree(path, ignore_errors=True)
        opts = rocksdict.Options(raw_mode=True)
        opts.create_if_missing(True)
        self.rocksdict = rocksdict
        self.db = rocksdict.Rdict(path, opts)
        self.sync = rocksdict.WriteOptions()
        self.sync.sync = True
        self.next = 1

    def commit_one(self) -> None:
        batch = self.rocksdict.WriteBatch(raw_mode=True)
        batch.put(b"L" + self.next.to_bytes(8, "big"), RECORD)
        self.db.write(batch, self.sync)
        self.next += 1


class MemoryLog:
    """The record appended to a list (bounded: the oldest half goes past 100,000)."""

    in_thread = False

    def __init__(self, path: str) -> None:
        self.records: list[bytes] = []

    def commit_one(self) -> None:
        self.records.append(RECORD)
        if len(self.records) > 100_000:
            del self.records[:50_000]


def open_log(store: str, path: str):
    return {"lmdb": SyncedLog, "rocksdb": SyncedRocks, "memory": MemoryLog}[store](path)


async def commit(log) -> None:
    if log.in_thread:
        await trio.to_thread.run_sync(log.commit_one)
    else:
        log.commit_one()


async def follower(port: int, path: str | None, store: str) -> None:
    log = open_log(store, path) if path else None

    async def serve(stream: trio.SocketStream) -> None:
        try:
            while True:  # until the leader closes the connection
                got = await stream.receive_some(65536)
                if not got:
                    return
                for _ in range(len(got)):  # bounded by the bytes received
                    if log is not None:
                        await commit(log)
                await stream.send_all(b"a" * len(got))
        except trio.BrokenResourceError:
            return  # the leader went first: the run is over

    listeners = await trio.open_tcp_listeners(port, host="127.0.0.1")
    with trio.move_on_after(600):  # the leader kills this process long before
        await trio.serve_listeners(serve, listeners)


async def leader(ports: list[int], path: str | None, writes: int, max_s: float,
                 store: str) -> list[float]:
    log = open_log(store, path) if path else None
    streams = []
    for port in ports:
        with trio.fail_after(10):
            while True:  # until the follower listens (bounded by fail_after)
                try:
                    streams.append(await trio.open_tcp_stream("127.0.0.1", port))
                    break
                except OSError:
                    await trio.sleep(0.05)
    acked = [0] * len(streams)
    own = [0]
    changed = [trio.Event()]

    async def read_acks(k: int, stream: trio.SocketStream) -> None:
        while True:  # until cancelled below
            got = await stream.receive_some(4096)
            if not got:
                return
            acked[k] += len(got)
            changed[0].set()

    async def own_commit(i: int) -> None:
        if log is not None:
            await commit(log)
        own[0] = i
        changed[0].set()

    latencies = []
    deadline = time.perf_counter() + max_s
    async with trio.open_nursery() as nursery:
        for k, stream in enumerate(streams):
            nursery.start_soon(read_acks, k, stream)
        for i in range(1, writes + 1):  # bounded in count and time
            start = time.perf_counter()
            for stream in streams:
                await stream.send_all(b"x")
            nursery.start_soon(own_commit, i)
            while (own[0] >= i) + sum(a >= i for a in acked) < 2:
                changed[0] = trio.Event()
                await changed[0].wait()
            latencies.append(time.perf_counter() - start)
            if start > deadline:
                break
        while own[0] < i:  # let the last own commit finish before closing
            changed[0] = trio.Event()
            await changed[0].wait()
        nursery.cancel_scope.cancel()
    for stream in streams:
        await stream.aclose()
    return latencies


def measure(writes: int, max_s: float, disk: bool, store: str | None = None) -> dict:
    """One run; ``store`` as ``--store`` (default: ``lmdb`` with ``disk``, else no write)."""
    if store is None:
        store = "lmdb" if disk else "memory"
    work = tempfile.mkdtemp(prefix="fastraft-floor-")
    base = os.environ.get("RAFTBENCH_BASE_PORT")
    ports = [int(base) + 1, int(base) + 2] if base else free_ports(2)
    children = []
    try:
        for k, port in enumerate(ports):
            cmd = [sys.executable, os.path.abspath(__file__), "--follower", str(port),
                   "--store", store, "--path", os.path.join(work, f"f{k}")]
            children.append(subprocess.Popen(cmd))
        lat = trio.run(leader, ports, os.path.join(work, "leader"), writes, max_s, store)
    finally:
        for child in children:
            child.kill()
            child.wait(10)
        shutil.rmtree(work, ignore_errors=True)
    lat.sort()
    return {"p50_ms": lat[len(lat) // 2] * 1e3, "p99_ms": lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1e3,
            "writes": len(lat), "disk": store != "memory", "store": store}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--writes", type=int, default=3000)
    ap.add_argument("--max-seconds", type=float, default=10.0)
    ap.add_argument("--store", choices=STORES, default="lmdb")
    ap.add_argument("--no-disk", action="store_true", help="the same as --store memory")
    ap.add_argument("--follower", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--path", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.follower:
        trio.run(follower, args.follower, args.path, args.store)
        return {}
    out = measure(args.writes, args.max_seconds, True, "memory" if args.no_disk else args.store)
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    main()
