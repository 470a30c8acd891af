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

With ``--no-disk`` the commits are skipped: what remains is the processes and the loopback
network alone.

    python latency_floor.py --writes 3000 --max-seconds 10 [--no-disk]

prints one JSON line: p50_ms, p99_ms, writes.
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


class SyncedLog:
    """A fresh lmdb environment, synced on commit as the log store's, taking one record per
    commit."""

    def __init__(self, path: str) -> None:
        shutil.rmtree(path, ignore_errors=True)
        self.env = lmdb.open(path, map_size=1 << 30, sync=True, metasync=True, max_dbs=2)
        self.db = self.env.open_db(b"log")
        self.next = 1

    def commit_one(self) -> None:
        with self.env.begin(write=True, db=self.db) as txn:
            txn.put(self.next.to_bytes(8, "big"), RECORD, append=True)
        self.next += 1


async def follower(port: int, path: str | None) -> None:
    log = SyncedLog(path) if path else None

    async def serve(stream: trio.SocketStream) -> None:
        while True:  # until the leader closes the connection
            got = await stream.receive_some(65536)
            if not got:
                return
            for _ in range(len(got)):  # bounded by the bytes received
                if log is not None:
                    await trio.to_thread.run_sync(log.commit_one)
            await stream.send_all(b"a" * len(got))

    listeners = await trio.open_tcp_listeners(port, host="127.0.0.1")
    with trio.move_on_after(600):  # the leader kills this process long before
        await trio.serve_listeners(serve, listeners)


async def leader(ports: list[int], path: str | None, writes: int, max_s: float) -> list[float]:
    log = SyncedLog(path) if path else None
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
            await trio.to_thread.run_sync(log.commit_one)
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


def measure(writes: int, max_s: float, disk: bool) -> dict:
    work = tempfile.mkdtemp(prefix="fastraft-floor-")
    ports = free_ports(2)
    children = []
    try:
        for k, port in enumerate(ports):
            cmd = [sys.executable, os.path.abspath(__file__), "--follower", str(port)]
            if disk:
                cmd += ["--path", os.path.join(work, f"f{k}")]
            children.append(subprocess.Popen(cmd))
        lat = trio.run(leader, ports, os.path.join(work, "leader") if disk else None, writes, max_s)
    finally:
        for child in children:
            child.kill()
            child.wait(10)
        shutil.rmtree(work, ignore_errors=True)
    lat.sort()
    return {"p50_ms": lat[len(lat) // 2] * 1e3, "p99_ms": lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1e3,
            "writes": len(lat), "disk": disk}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--writes", type=int, default=3000)
    ap.add_argument("--max-seconds", type=float, default=10.0)
    ap.add_argument("--no-disk", action="store_true")
    ap.add_argument("--follower", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--path", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.follower:
        trio.run(follower, args.follower, args.path)
        return {}
    out = measure(args.writes, args.max_seconds, not args.no_disk)
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    main()
