"""Storage benchmarks: lmdb log appends and purges against raw lmdb synced transactions,
the log's layout on raw lmdb (one value per entry or per batch), reads of 1,000 consecutive
entries, and the memory store's appends; compiled and pure codec side by side.

    python -m pytest benchmarks/bench_storage.py --benchmark-json=storage.json
    python benchmarks/bench_storage.py storage.json      # the table: throughputs and ratios

Targets (storage task):
* lmdb log appends with group commit reach at least 70% of the raw lmdb synced-transaction
  throughput for the same batch sizes (1, 10, 100, 1000 entries of 100 bytes).
  ``test_lmdb_append_vs_raw`` pairs them in every round: K batches through raw lmdb (one
  synced transaction per batch putting the same blocks under the same keys as the store,
  one value per batch, on the calling thread), and the same K batches through
  ``LmdbLogStore.append`` (durable on return) by one writer, or by four whose appends share
  syncs (group commit). The halves alternate in order, and ``extra_info["ratio"]`` is the
  median over rounds of store / raw throughput, so the disk's drift on a shared machine
  cancels out.
* purging 100,000 entries appended in batches of 1,000 (``test_lmdb_purge_vs_raw``) is
  faster through the store than deleting them one value per entry on raw lmdb (the layout
  of log format 1);
* ``test_raw_lmdb_entry_vs_block_values``: why the log stores one value per batch, on raw
  lmdb alone (ratio = per-batch throughput / per-entry throughput);
* reading 1,000 consecutive entries from the lmdb store costs at most 2 us per entry
  (``extra_info["median_ns_per_item"]``);
* the memory store appends at least 1,000,000 entries/s in batches of 100.

The trio side of the lmdb store runs in one long-lived trio run on a helper thread, reached
with ``trio.from_thread.run`` once per round, so that cost is shared by the round's K
batches.
"""

import json
import os
import statistics
import sys
import threading
import time
from itertools import count

import lmdb
import pytest
import trio

from fastraft import Entry, LogId
from fastraft.codec import encode_entries
from fastraft.storage import LmdbLogStore, MemoryLogStore
from fastraft.storage import lmdb_log_layout, log_blocks
from fastraft.storage.lmdb_log_layout import encode_blocks, key_of

PAYLOAD = bytes(range(100))
BATCHES = (1, 10, 100, 1000)
if os.environ.get("FASTRAFT_BENCH_QUICK", "") not in ("", "0"):
    BATCHES = (1000,)  # the smoke run: every case once, at the batch that syncs least
#: Batches per round, so that a round lasts tens of milliseconds.
PER_ROUND = {1: 40, 10: 40, 100: 20, 1000: 5}
ROUNDS = 30
WARMUP = 2


def _rounds(bench):
    return 3 if bench.quick else ROUNDS + WARMUP + 1


def _per_round(bench, batch):
    return max(1, PER_ROUND[batch] // (4 if bench.quick else 1))


def _run_now(coro):
    """Run a coroutine that never suspends (the memory store, lmdb reads) without trio."""
    try:
        coro.send(None)
    except StopIteration as stop:
        return stop.value
    coro.close()
    raise RuntimeError("the coroutine suspended")


@pytest.fixture
def codec_flavour(flavour, monkeypatch):
    """Make the lmdb store encode and decode with ``flavour``'s codec."""
    codec = flavour["codec"]
    # the blocks' encoding and decoding live in log_blocks; the layout re-encodes a block
    # it truncates
    monkeypatch.setattr(log_blocks, "encode_entries", codec.encode_entries)
    monkeypatch.setattr(log_blocks, "decode_entries", codec.decode_entries)
    monkeypatch.setattr(lmdb_log_layout, "encode_entries", codec.encode_entries)
    return flavour


class TrioThread:
    """A trio run on a helper thread, kept for the whole benchmark."""

    def __init__(self):
        self._token = None
        self._stop = None
        ready = threading.Event()

        async def serve():
            self._token = trio.lowlevel.current_trio_token()
            self._stop = trio.Event()
            ready.set()
            await self._stop.wait()

        self._thread = threading.Thread(target=trio.run, args=(serve,), daemon=True)
        self._thread.start()
        ready.wait(10)

    def call(self, async_fn, *args):
        return trio.from_thread.run(async_fn, *args, trio_token=self._token)

    def close(self):
        trio.from_thread.run_sync(self._stop.set, trio_token=self._token)
        self._thread.join(10)


@pytest.fixture
def trio_thread():
    portal = TrioThread()
    yield portal
    portal.close()


def _prepared(Entry, bench, batch):
    """Batches for every round: round r holds K consecutive batches of ``batch`` entries."""
    k, index = _per_round(bench, batch), count(1)
    return iter([[[Entry(1, next(index), 1, PAYLOAD) for _ in range(batch)] for _ in range(k)]
                 for _ in range(_rounds(bench))])


class Paired:
    """Times of the two halves of each round (baseline, contender), so that their ratio is
    taken round by round: on a shared machine the disk's speed drifts between rounds far
    more than between the two halves of one round."""

    def __init__(self):
        self.base, self.other = [], []
        self._rounds = 0

    def run(self, base_fn, base_args, other_fn, other_args):
        """Time both halves of a round; which goes first alternates, so that neither pays
        for what the other left behind (dirty pages, a cold cache) more often."""
        first = self._rounds % 2 == 0
        self._rounds += 1
        if first:
            self.base.append(_timed(base_fn, *base_args))
        self.other.append(_timed(other_fn, *other_args))
        if not first:
            self.base.append(_timed(base_fn, *base_args))

    def record(self, bench, batch, base_name, other_name, items=None):
        """Throughputs of both halves (``items`` per round, by default the round's batches'
        entries) and the median of the rounds' ratios, in the benchmark's extra info."""
        n = _per_round(bench, batch) * batch if items is None else items
        ratios = sorted(b / o for b, o in zip(self.base, self.other))
        info = bench.benchmark.extra_info
        info[f"{base_name}_entries_per_s"] = round(n / statistics.median(self.base))
        info[f"{other_name}_entries_per_s"] = round(n / statistics.median(self.other))
        info["ratio"] = round(statistics.median(ratios), 3)
        return info["ratio"]


def _raw_writer(path, writemap):
    """The baseline writer: one synced lmdb transaction per batch, putting its values
    (encoded beforehand: the baseline pays only for lmdb) under big-endian index keys.
    A batch is [(index, value)]: one value per entry, or one per block."""
    env = lmdb.open(str(path), map_size=1 << 30, sync=True, metasync=True, max_dbs=8,
                    writemap=writemap)
    db = env.open_db(b"log")

    def write(batches):
        for items in batches:
            with env.begin(write=True, db=db) as txn:
                txn.cursor().putmulti([(key_of(i), v) for i, v in items], append=True)

    return env, write


def _one_value_per_entry(entries):
    """One checksummed value per entry, as log format 1 stored them. The codec no longer has
    that format's per-entry record, so each value is an entries frame holding one entry
    (``encode_entries([e])``: 8 bytes more per value than a record, the same work)."""
    return [encode_entries([e]) for e in entries]


def _per_entry(batch):
    """A batch as one value per entry (the layout of log format 1)."""
    return list(zip(range(batch[0].index, batch[0].index + len(batch)),
                    _one_value_per_entry(batch)))


def _timed(fn, *args):
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start


async def _append_sequentially(store, batches):
    for batch in batches:
        await store.append(batch)


async def _append_concurrently(store, batches, writers=4):
    queue = list(reversed(batches))

    async def writer():
        while queue:
            # Taking the next batch and issuing it happen without a checkpoint between
            # them, so batches are issued in index order whatever the scheduling.
            await store.append(queue.pop())

    async with trio.open_nursery() as nursery:
        for _ in range(writers):
            nursery.start_soon(writer)


@pytest.mark.parametrize("writers", [1, 4])
@pytest.mark.parametrize("batch", BATCHES)
def test_lmdb_append_vs_raw(bench, codec_flavour, trio_thread, tmp_path, batch, writers):
    """Each round: K batches through raw lmdb (the baseline), then the same K batches
    through LmdbLogStore.append (durable on return) by one writer, or by four whose appends
    share syncs (group commit). extra_info: both throughputs and their ratio (store / raw,
    median of the rounds' ratios); the timing row is the whole round (both halves)."""
    Entry = codec_flavour["entry"].Entry
    env, raw_write = _raw_writer(tmp_path / "raw", writemap=False)
    store = trio_thread.call(LmdbLogStore.open, tmp_path / "store")
    raw_rounds = iter([[encode_blocks(b) for b in rnd] for rnd in _prepared(Entry, bench, batch)])
    store_rounds = _prepared(Entry, bench, batch)
    append = _append_sequentially if writers == 1 else _append_concurrently
    paired = Paired()

    def one_round():
        paired.run(raw_write, (next(raw_rounds),),
                   trio_thread.call, (append, store, next(store_rounds)))

    bench.run(f"append: batch {batch} x 100 B, {writers} writer(s)", one_round, rounds=ROUNDS,
              warmup_rounds=WARMUP)
    paired.base, paired.other = paired.base[-ROUNDS:], paired.other[-ROUNDS:]
    paired.record(bench, batch, "raw", "store")
    trio_thread.call(store.aclose)
    env.close()


def _compare_raw_writers(bench, tmp_path, batch, title, base, other):
    """Pair two raw writers over the same batches, alternating in every round, and record
    both throughputs and their ratio. ``base`` and ``other`` are (name, writemap, layout),
    ``layout`` turning a batch of entries into its [(index, value)]."""
    writers = [_raw_writer(tmp_path / name, writemap=writemap)
               for name, writemap, _ in (base, other)]
    rounds = iter([([base[2](b) for b in rnd], [other[2](b) for b in rnd])
                   for rnd in _prepared(Entry, bench, batch)])
    paired = Paired()

    def one_round():
        base_batches, other_batches = next(rounds)
        paired.run(writers[0][1], (base_batches,), writers[1][1], (other_batches,))

    bench.run(title, one_round, rounds=ROUNDS, warmup_rounds=WARMUP)
    paired.base, paired.other = paired.base[-ROUNDS:], paired.other[-ROUNDS:]
    paired.record(bench, batch, base[0], other[0])
    for env, _ in writers:
        env.close()


@pytest.mark.parametrize("batch", BATCHES)
def test_raw_lmdb_writemap_vs_plain(bench, tmp_path, batch):
    """Why writemap stays off: raw synced transactions without and with writemap, paired
    per round (ratio = writemap throughput / plain throughput)."""
    _compare_raw_writers(bench, tmp_path, batch,
                         f"raw lmdb: batch {batch} x 100 B, plain then writemap",
                         ("plain", False, _per_entry), ("writemap", True, _per_entry))


@pytest.mark.parametrize("batch", BATCHES)
def test_raw_lmdb_entry_vs_block_values(bench, tmp_path, batch):
    """Why the log stores a batch as one value: raw synced transactions putting a batch as
    one value per entry, then as one value (ratio = per-batch throughput / per-entry)."""
    _compare_raw_writers(bench, tmp_path, batch,
                         f"raw lmdb: batch {batch} x 100 B, value per entry then per batch",
                         ("entry", False, _per_entry), ("block", False, encode_blocks))


async def _fill(store, batches):
    """Append ``batches`` through the non-async path, so that group commit writes them in a
    few transactions (each batch stays one append: one block in the lmdb log)."""
    done = trio.Event()
    last = len(batches) - 1
    for i, batch in enumerate(batches):
        store.append_nowait(batch, lambda error, i=i: done.set() if i == last or error else None)
    await done.wait()


async def _purge(store, upto):
    await store.purge(upto)


def _raw_entry_log(path):
    """Raw lmdb holding one record per entry (the layout of log format 1), and a function
    deleting the lowest ``n`` records in synced transactions of ``step`` deletions, one
    cursor.delete per record, as that format's purge did."""
    env = lmdb.open(str(path), map_size=1 << 30, sync=True, metasync=True, max_dbs=8)
    db = env.open_db(b"log")

    def fill(first, records):
        with env.begin(write=True, db=db) as txn:
            keys = map(key_of, range(first, first + len(records)))
            txn.cursor().putmulti(zip(keys, records), append=True)

    def purge(n, step):
        for _ in range(0, n, step):
            with env.begin(write=True, db=db) as txn:
                cursor = txn.cursor()
                cursor.first()
                for _ in range(step):
                    cursor.delete()

    return env, fill, purge


PURGE_ENTRIES = 100_000
PURGE_BATCH = 1000
PURGE_STEP = 10_000  # LmdbLogStore's default purge_batch_entries
PURGE_ROUNDS = 10


def test_lmdb_purge_vs_raw(bench, codec_flavour, trio_thread, tmp_path):
    """Each round: 100,000 entries of 100 bytes, appended (untimed) in batches of 1,000,
    are purged whole: by ``LmdbLogStore.purge`` (default purge_batch_entries, so one synced
    transaction per 10,000 entries), and on raw lmdb holding one record per entry, deleted
    one cursor.delete at a time in synced transactions of 10,000 (the baseline: per-entry
    deletion). extra_info: both throughputs and their ratio (store / raw); the timing row is
    the whole round, appends included."""
    Entry = codec_flavour["entry"].Entry
    n = bench.scaled(PURGE_ENTRIES, PURGE_ENTRIES // 10)
    env, raw_fill, raw_purge = _raw_entry_log(tmp_path / "raw")
    store = trio_thread.call(LmdbLogStore.open, tmp_path / "store")
    records = _one_value_per_entry([Entry(1, i, 1, PAYLOAD) for i in range(1, n + 1)])
    rounds = count(0)
    paired = Paired()

    def one_round():
        first = next(rounds) * n + 1
        batches = [[Entry(1, i, 1, PAYLOAD) for i in range(lo, lo + PURGE_BATCH)]
                   for lo in range(first, first + n, PURGE_BATCH)]
        trio_thread.call(_fill, store, batches)
        raw_fill(first, records)
        paired.run(raw_purge, (n, PURGE_STEP),
                   trio_thread.call, (_purge, store, LogId(1, first + n - 1)))

    bench.run(f"purge: {n} entries appended in batches of {PURGE_BATCH}", one_round,
              rounds=PURGE_ROUNDS, warmup_rounds=1)
    paired.base, paired.other = paired.base[-PURGE_ROUNDS:], paired.other[-PURGE_ROUNDS:]
    paired.record(bench, PURGE_BATCH, "raw", "store", items=n)
    state = trio_thread.call(store.get_log_state)
    assert state.last_purged_log_id == state.last_log_id == LogId(1, next(rounds) * n)
    trio_thread.call(store.aclose)
    env.close()


def test_lmdb_read_1000(bench, codec_flavour, trio_thread, tmp_path):
    """read_entries of 1,000 consecutive entries of 100 bytes (checksums verified)."""
    Entry = codec_flavour["entry"].Entry
    n = 1000
    store = trio_thread.call(LmdbLogStore.open, tmp_path)
    trio_thread.call(store.append, [Entry(1, i, 1, PAYLOAD) for i in range(1, 5 * n + 1)])
    starts = count(0)

    def read():
        lo = 1 + (next(starts) % 4) * n
        return _run_now(store.read_entries(lo, lo + n))

    got = bench.run(f"read: {n} consecutive x 100 B", read, rounds=200, iterations=5)
    assert len(got) == n and got[-1].payload == PAYLOAD
    bench.per_item(n)
    trio_thread.call(store.aclose)


def test_memory_append_batches_of_100(bench, flavour):
    """MemoryLogStore.append in batches of 100: entries per second."""
    Entry, batch, k = flavour["entry"].Entry, 100, bench.scaled(100, 10)
    batches = [[Entry(1, b * batch + i + 1, 1, PAYLOAD) for i in range(batch)] for b in range(k)]

    def one_round():
        store = MemoryLogStore()
        for entries in batches:
            _run_now(store.append(entries))
        return store

    store = bench.run(f"memory append: {k} batches of {batch}", one_round, rounds=50,
                      iterations=3)
    assert _run_now(store.get_log_state()).last_log_id.index == k * batch
    bench.per_item(k * batch)


def table(json_path):
    """The storage table from a ``--benchmark-json`` file:
    ``python benchmarks/bench_storage.py results.json``."""
    rows = []
    for b in json.load(open(json_path))["benchmarks"]:
        info, median = b["extra_info"], b["stats"]["median"]
        if "ratio" in info:
            a, c = [k for k in info if k.endswith("_entries_per_s")]
            rows.append(f"{b['name']:45} {a[:-14]:>8} {info[a]:>10,}/s  {c[:-14]:>8} "
                        f"{info[c]:>10,}/s  ratio {info['ratio']:.2f}")
        elif "median_ns_per_item" in info:
            extra = (f"  {round(1e9 / info['median_ns_per_item']):,} entries/s"
                     if "memory" in b["name"] else "")
            rows.append(f"{b['name']:45} median {median * 1e6:9.1f} us  "
                        f"{info['median_ns_per_item']:8.1f} ns/entry{extra}")
    print("\n".join(rows))


if __name__ == "__main__":
    table(sys.argv[1])
