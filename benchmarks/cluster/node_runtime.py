"""One fastraft node for the cluster benchmarks, run by trio in a background thread so that a
synchronous driver (raftbench's node loop, or ``control_node.py``) can call into it.

The node is what an application embeds: ``open_raft`` with an lmdb log store synced to disk
(journal "file"; journal "rocksdb": the RocksDB log store) or a memory one (journal "memory"), the benchmark's dict state machine, TCP
between nodes (``serve_raft_tcp``); with ``state_machine: "lmdb"`` in the engine settings, the KV example's
durable lmdb state machine instead (``fastraft.kv.LmdbKVStateMachine``, the node's puts as KV
``Set`` commands), whose snapshots are files streamed to and from disk, so a state of 1 GB
fits in memory. Load is generated inside this process, on the node's own
trio loop, as ``window`` tasks each awaiting ``client_write`` (or ``client_write_many`` of
``batch`` payloads) in a loop: exactly ``window`` writes (or batches) in flight.

With ``FASTRAFT_BENCH_TLS`` set to a folder of certificates (``fastraft.kv.certs``, cluster id
"bench"), the nodes talk mutual TLS.
"""

from __future__ import annotations

import os
import shutil
import statistics
import threading
import time
from functools import partial

import trio

from fastraft import Entry, FastraftError, Node
from fastraft.core import Config
from fastraft.net import TcpNetwork, serve_raft_tcp
from fastraft.net.tcp import parse_addr
from fastraft.net.tls import TlsConfig
from fastraft.runtime import ServerState, open_raft
from fastraft.storage import LmdbLogStore, MemoryLogStore
from dict_sm import DictStateMachine, encode_put
from open_loop import offer_writes

__all__ = ["BenchNode", "percentiles_ms"]

KEY_SPACE = 1024  # raftbench's key space


def percentiles_ms(samples_s: list[float]) -> dict:
    """p50/p90/p99/p99.9/max in ms of latencies in seconds (nearest rank, as raftbench)."""
    s = sorted(samples_s)
    if not s:
        return {"count": 0}

    def pct(q):
        k = max(0, min(len(s) - 1, -(-q * len(s) // 100) - 1))
        return s[int(k)] * 1e3

    return {"count": len(s), "p50_ms": pct(50), "p90_ms": pct(90), "p99_ms": pct(99),
            "p999_ms": pct(99.9), "max_ms": s[-1] * 1e3, "mean_ms": statistics.fmean(s) * 1e3}


def bench_tls(node_id: int) -> TlsConfig | None:
    """Node ``node_id``'s TLS settings when FASTRAFT_BENCH_TLS names a certificate folder."""
    folder = os.environ.get("FASTRAFT_BENCH_TLS")
    if not folder:
        return None
    return TlsConfig("bench", node_id, os.path.join(folder, "ca.pem"),
                     os.path.join(folder, f"node-{node_id}.pem"),
                     os.path.join(folder, f"node-{node_id}-key.pem"))


class BenchNode:
    """Node ``node_id`` of ``nodes`` ({id: "host:port"}), data under ``data_dir``."""

    def __init__(self, node_id: int, nodes: dict[int, str], data_dir: str, journal: str,
                 engine_conf: dict | None = None, initialize: bool = False) -> None:
        self.node_id = node_id
        self.nodes = {i: Node(a) for i, a in nodes.items()}
        self.data_dir = data_dir
        self.journal = journal
        engine_conf = dict(engine_conf or {})
        self.sm_kind = engine_conf.pop("state_machine", "dict")
        if self.sm_kind not in ("dict", "lmdb"):
            raise ValueError(f"state_machine: 'dict' or 'lmdb', not {self.sm_kind!r}")
        self.config = Config(**engine_conf)
        self.initialize = initialize
        self.sm = DictStateMachine()  # replaced by the lmdb one on start when asked for
        self.raft = None
        self._token = None
        self._stop: trio.Event | None = None
        self._started = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._thread_main, name="fastraft-node", daemon=True)

    # -- lifecycle (driver thread) ------------------------------------------------------------

    def start(self, timeout_s: float = 60.0) -> None:
        self._thread.start()
        if not self._started.wait(timeout_s):
            raise RuntimeError("node did not start in time")
        if self._error is not None:
            raise self._error

    def stop(self) -> None:
        if self._token is not None and self._thread.is_alive():
            trio.from_thread.run_sync(self._stop.set, trio_token=self._token)
        self._thread.join(60)

    def call(self, async_fn, *args):
        """Run ``async_fn(*args)`` on the node's trio loop and return its result."""
        return trio.from_thread.run(async_fn, *args, trio_token=self._token)

    def metrics(self):
        return trio.from_thread.run_sync(self.raft.metrics, trio_token=self._token)

    # -- the trio side ---------------------------------------------------------------------------

    def _thread_main(self) -> None:
        try:
            trio.run(self._main)
        except BaseException as e:  # reported to the driver, which fails the run
            self._error = e
            self._started.set()
            raise

    async def _main(self) -> None:
        self._token = trio.lowlevel.current_trio_token()
        self._stop = trio.Event()
        os.makedirs(self.data_dir, exist_ok=True)
        if self.journal == "file":
            log_store = await LmdbLogStore.open(os.path.join(self.data_dir, f"node{self.node_id}"))
        elif self.journal == "rocksdb":
            from fastraft.storage.rocksdb_log import RocksLogStore
            log_store = await RocksLogStore.open(os.path.join(self.data_dir, f"rocks{self.node_id}"))
        else:
            log_store = MemoryLogStore()
        if self.sm_kind == "lmdb":
            from fastraft.kv.lmdb_state_machine import LmdbKVStateMachine
            self.sm = await LmdbKVStateMachine.open(os.path.join(self.data_dir, f"kv{self.node_id}"))
        host, port = parse_addr(self.nodes[self.node_id].addr)
        tls = bench_tls(self.node_id)
        async with trio.open_nursery() as nursery:
            async with open_raft(self.node_id, self.config, log_store=log_store,
                                 state_machine=self.sm, network=TcpNetwork(tls=tls)) as raft:
                await nursery.start(partial(serve_raft_tcp, raft, host, port, tls=tls))
                if self.initialize and raft.metrics().last_log_index == 0:
                    await raft.initialize(self.nodes)
                self.raft = raft
                self._started.set()
                await self._stop.wait()
            nursery.cancel_scope.cancel()

    # -- load (trio side; call through ``call``) --------------------------------------------

    @staticmethod
    def commands(payloads: list[bytes], key_offset: int, count: int = 4096) -> list[bytes]:
        return [encode_put((key_offset + i) % KEY_SPACE, payloads[i % len(payloads)])
                for i in range(count)]

    async def throughput(self, payloads, window, warmup_s, duration_s, key_offset=0, batch=1) -> dict:
        """Closed loop: ``window`` tasks, each awaiting one write (or one batch of ``batch``)
        at a time; entries committed per second between warmup_s and warmup_s + duration_s."""
        raft = self.raft
        cmds = self.commands(payloads, key_offset)
        ncmd = len(cmds)
        counts = [0, 0]  # entries committed, calls failed
        kinds: dict[str, int] = {}  # failed calls by error class
        clock = trio.current_time
        t_meas = clock() + warmup_s
        t_end = t_meas + duration_s
        marks = {}

        async def mark():
            await trio.sleep_until(t_meas)
            marks["start"] = (clock(), counts[0], counts[1])
            await trio.sleep_until(t_end)
            marks["end"] = (clock(), counts[0], counts[1])

        async def worker(w: int):
            i = w * batch
            while clock() < t_end:  # bounded by the measured window
                try:
                    if batch == 1:
                        await raft.client_write(cmds[i % ncmd])
                    else:
                        lo = i % ncmd
                        chunk = cmds[lo:lo + batch]
                        if len(chunk) < batch:
                            chunk = chunk + cmds[:batch - len(chunk)]
                        await raft.client_write_many(chunk)
                    counts[0] += batch
                except FastraftError as e:
                    counts[1] += 1
                    kinds[type(e).__name__] = kinds.get(type(e).__name__, 0) + 1
                    await trio.sleep(0.01)
                i += window * batch

        async with trio.open_nursery() as nursery:
            nursery.start_soon(mark)
            for w in range(window):
                nursery.start_soon(worker, w)
                if w % 256 == 255:
                    await trio.sleep(0)  # ramp up: a first step of 10,000 tasks at once starves the node
        (t0, ok0, err0), (t1, ok1, err1) = marks["start"], marks["end"]
        elapsed = t1 - t0
        return {"ops_per_s": (ok1 - ok0) / elapsed, "committed_in_window": ok1 - ok0,
                "failed_in_window": err1 - err0, "window_s": elapsed, "batch": batch,
                "ok_total": counts[0], "failed_total": counts[1], "unfinished_after_drain": 0,
                "error_kinds": kinds}

    async def latency(self, payloads, warmup_s, duration_s, key_offset=0, probe=True) -> dict:
        """One writer, one write at a time; with ``probe``, the storage's own synced-append
        latency measured in this process just before and just after (``storage_probe``)."""
        raft = self.raft
        cmds = self.commands(payloads, key_offset)
        before = await self.storage_probe(len(payloads[0]), max_s=3.0) if probe else None
        lats, errors = [], 0
        t_meas = time.perf_counter() + warmup_s
        t_end = t_meas + duration_s
        i = 0
        while True:  # bounded by the measured window
            s = time.perf_counter()
            if s >= t_end:
                break
            try:
                await raft.client_write(cmds[i % len(cmds)])
                ok = True
            except FastraftError:
                ok = False
            e = time.perf_counter()
            if s >= t_meas:
                if ok:
                    lats.append(e - s)
                else:
                    errors += 1
            i += 1
        res = percentiles_ms(lats)
        res.update(errors=errors, ops_per_s=len(lats) / duration_s)
        if not probe:
            return res
        after = await self.storage_probe(len(payloads[0]), max_s=3.0)
        res["storage_before"], res["storage_after"] = before, after
        both = before["samples"] + after["samples"]
        res["storage_append_p50_ms"] = percentiles_ms(both)["p50_ms"]
        res["storage_append_p99_ms"] = percentiles_ms(both)["p99_ms"]
        res["p50_over_storage_p50"] = res["p50_ms"] / res["storage_append_p50_ms"]
        for side in (before, after):
            del side["samples"]
        return res

    async def storage_probe(self, payload_bytes: int, max_s: float = 3.0, max_samples: int = 2000) -> dict:
        """Synced appends of one entry at a time to a fresh lmdb log store beside this node's:
        the storage's own latency for what every write needs once."""
        path = os.path.join(self.data_dir, f"probe{self.node_id}")
        shutil.rmtree(path, ignore_errors=True)
        store = await LmdbLogStore.open(path)
        samples = []
        try:
            payload = os.urandom(payload_bytes)
            deadline = time.perf_counter() + max_s
            for i in range(1, max_samples + 1):  # bounded in count and time
                s = time.perf_counter()
                await store.append([Entry(1, i, 1, payload)])
                samples.append(time.perf_counter() - s)
                if time.perf_counter() > deadline:
                    break
        finally:
            await store.aclose()
            shutil.rmtree(path, ignore_errors=True)
        out = percentiles_ms(samples)
        out["samples"] = samples
        return out

    async def fill(self, entries: int, batch: int = 1000, window: int = 8, payload_bytes: int = 100) -> dict:
        """Commit about ``entries`` entries of ``payload_bytes`` (client_write_many of
        ``batch``, ``window`` batches in flight); stops early if this node stops leading.
        Returns how many were committed and how long it took."""
        raft = self.raft
        pool = self.commands([os.urandom(payload_bytes - 4) for _ in range(64)], 0)
        per_worker = -(-entries // (batch * window))
        done = [0]
        failed = []
        t0 = time.perf_counter()

        async def worker(w):
            for k in range(per_worker):  # bounded
                if failed:
                    return
                lo = ((w + k * window) * batch) % len(pool)
                chunk = (pool[lo:] + pool)[:batch]
                try:
                    await raft.client_write_many(chunk)
                except FastraftError as e:
                    failed.append(type(e).__name__)
                    return
                done[0] += batch

        async with trio.open_nursery() as nursery:
            for w in range(window):
                nursery.start_soon(worker, w)
        dt = time.perf_counter() - t0
        return {"entries": done[0], "seconds": dt, "entries_per_s": done[0] / dt,
                "error": failed[0] if failed else None}

    async def open_loop(self, payload_bytes: int, rate: float, warmup_s: float,
                        duration_s: float, max_in_flight: int = 4096) -> dict:
        """Writes of ``payload_bytes`` started on a fixed schedule, ``rate`` per second, on
        this node (``open_loop.offer_writes``)."""
        cmds = self.commands([b"x" * max(0, payload_bytes - 4)], 0)
        return await offer_writes(self.raft, cmds, rate, warmup_s, duration_s, max_in_flight)

    async def load_state(self, keys: int, value_bytes: int, batch: int = 64,
                         window: int = 4) -> dict:
        """Put ``keys`` distinct keys of ``value_bytes`` each (so the state machine holds
        about keys * value_bytes bytes), then build a snapshot covering them and purge the log
        it covers (Raft §7)."""
        raft = self.raft
        if self.sm_kind == "lmdb":
            from fastraft.kv.commands import Set, encode_command
            text = "s" * value_bytes

            def put(k: int) -> bytes:
                return encode_command(Set(f"k{k:08d}", text))
        else:
            value = b"s" * value_bytes

            def put(k: int) -> bytes:
                return encode_put(k, value)
        t0 = time.perf_counter()

        async def worker(w: int) -> None:
            for lo in range(w * batch, keys, window * batch):  # bounded by keys
                await raft.client_write_many([put(k) for k in range(lo, min(keys, lo + batch))])

        async with trio.open_nursery() as nursery:
            for w in range(window):
                nursery.start_soon(worker, w)
        last = raft.metrics().last_log_index
        await raft.trigger.snapshot()
        deadline = trio.current_time() + 300
        while trio.current_time() < deadline:  # bounded: until the snapshot covers ``last``
            snap = raft.metrics().snapshot
            if snap is not None and snap.index >= last:
                break
            await trio.sleep(0.05)
        # purge what the snapshot covers, so a follower behind it needs the snapshot (§7)
        await raft.trigger.purge_log(last)
        while trio.current_time() < deadline:  # bounded: until the purge is done
            purged = raft.metrics().purged
            if purged is not None and purged.index >= last:
                break
            await trio.sleep(0.05)
        return {"keys": keys, "bytes": keys * value_bytes, "load_s": time.perf_counter() - t0,
                "snapshot_index": getattr(raft.metrics().snapshot, "index", None)}

    async def first_write_as_leader(self, timeout_s: float) -> float | None:
        """Wait until this node leads, then write once; the time.monotonic() at which that
        write was committed and applied, or None if it did not lead within ``timeout_s``."""
        raft = self.raft
        deadline = trio.current_time() + timeout_s
        cmd = encode_put(0, b"failover")
        while trio.current_time() < deadline:  # bounded by the deadline
            try:
                await raft.wait(max(0.0, deadline - trio.current_time())).state(ServerState.LEADER)
            except FastraftError:
                return None
            try:
                await raft.client_write(cmd)
                return time.monotonic()
            except FastraftError:
                await trio.sleep(0.001)  # lost it again at once; wait for the next term
        return None
