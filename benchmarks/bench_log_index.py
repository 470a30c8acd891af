"""Log index micro benchmarks, compiled and pure side by side in one run.

    python -m pytest benchmarks/bench_log_index.py --benchmark-group-by=group \\
        --benchmark-columns=median,iqr,rounds,iterations

The target (log index task): term lookup at least 3x faster compiled than pure; the batch
operations the engine runs per message timed too: appending 100 proposals (leader) or 100
received entries (follower), find_conflict and check_entries over 100 entries, and the cached
slice of 100 entries an AppendEntries carries. ``extra_info["median_ns_per_item"]`` holds the
median per lookup or per entry. Lookups run in a Python loop of 1,000 calls, whose own cost
(some tens of ns a call, the same for both flavours) is included in both.
"""

import random

import pytest

BATCH = 100
PAYLOAD = bytes(range(100))
RUN_LEN = 100


def _log(flavour, runs, *, cached_entries=0):
    """A log of ``runs`` term runs of RUN_LEN entries (terms 1, 2, ...), the last
    ``cached_entries`` of them appended as entries (so cached), the rest declared as runs."""
    li = flavour["log_index"].LogIndex(max_cached_entries=4096, max_cached_bytes=64 << 20)
    total = runs * RUN_LEN
    declared = total - cached_entries
    for r in range(runs):
        end = min((r + 1) * RUN_LEN, declared)
        if end > li.last_index:
            li.append_term_run(r + 1, end)
    for k in range(cached_entries):
        i = declared + 1 + k
        li.append_payloads((i - 1) // RUN_LEN + 1, 1, [PAYLOAD])
    assert li.last_index == total and li.run_count == runs
    return li


def _is_compiled(flavour):
    return flavour["log_index"].__name__.endswith(".compiled.log_index")


@pytest.mark.parametrize("runs", [5, 10_000])
def test_term_at(bench, flavour, runs):
    li = _log(flavour, runs)
    rng = random.Random(7)
    n = bench.scaled(1000, 200)
    # the engine mostly asks about recent indexes; a leader's hint lookups go anywhere
    idxs = [rng.randint(1, li.last_index) for _ in range(n)]
    term_at = li.term_at

    def lookups():
        t = 0
        for i in idxs:
            t = term_at(i)
        return t

    bench.run(f"term_at: {n} lookups in {runs} runs", lookups,
              iterations=10 if _is_compiled(flavour) else 3)
    assert [li.term_at(i) for i in idxs[:50]] == [(i - 1) // RUN_LEN + 1 for i in idxs[:50]]
    bench.per_item(n)


def test_matches(bench, flavour):
    li = _log(flavour, 50)
    rng = random.Random(8)
    n = bench.scaled(1000, 200)
    pairs = [(i, (i - 1) // RUN_LEN + 1) for i in (rng.randint(1, li.last_index) for _ in range(n))]
    matches = li.matches

    def checks():
        ok = True
        for i, t in pairs:
            ok = matches(i, t)
        return ok

    assert bench.run(f"matches: {n} consistency checks in 50 runs", checks,
                     iterations=10 if _is_compiled(flavour) else 3)
    bench.per_item(n)


def test_append_payloads(bench, flavour):
    li = _log(flavour, 5)
    term = li.last_term
    payloads = [PAYLOAD] * BATCH

    def append():
        return li.append_payloads(term, 1, payloads)

    out = bench.run(f"append_payloads: {BATCH} x 100 B (leader proposals)", append,
                    rounds=bench.scaled(50, 3), iterations=20)
    assert len(out) == BATCH and out[-1].index == li.last_index
    assert li.cached_count <= 4096  # evicting as it goes: bounded
    bench.per_item(BATCH)


def test_append_entries(bench, flavour):
    li = _log(flavour, 5)
    Entry = flavour["entry"].Entry
    rounds, iterations, warmup = bench.scaled(50, 3), 20, 2
    calls = (rounds + warmup) * iterations + 1  # pedantic calls once more for the result
    base = li.last_index
    term = li.last_term
    batches = iter([[Entry(term, base + c * BATCH + k + 1, 1, PAYLOAD) for k in range(BATCH)]
                    for c in range(calls)])

    def append():
        return li.append_entries(next(batches))

    assert bench.run(f"append_entries: {BATCH} x 100 B (follower)", append,
                     rounds=rounds, iterations=iterations, warmup_rounds=warmup) == []
    bench.per_item(BATCH)


@pytest.mark.parametrize("runs_spanned", [1, 2])
def test_find_conflict(bench, flavour, runs_spanned):
    li = _log(flavour, 200, cached_entries=0)
    Entry = flavour["entry"].Entry
    # 100 entries the follower already holds (the whole batch is scanned), spanning
    # one or several term runs
    first = li.last_index - 2 * RUN_LEN + 1 + (RUN_LEN // 2) * (runs_spanned - 1)
    ents = [Entry(li.term_at(first + k), first + k, 1, PAYLOAD) for k in range(BATCH)]
    assert len({e.term for e in ents}) == runs_spanned
    assert bench.run(f"find_conflict: {BATCH} held entries over {runs_spanned} run(s)",
                     li.find_conflict, ents,
                     iterations=200 if _is_compiled(flavour) else 20) == 0
    bench.per_item(BATCH)


def test_check_entries(bench, flavour):
    li = _log(flavour, 5)
    Entry = flavour["entry"].Entry
    prev = li.last_index
    ents = [Entry(9, prev + 1 + k, 1, PAYLOAD) for k in range(BATCH)]
    assert bench.run(f"check_entries: {BATCH} incoming entries", li.check_entries, ents,
                     prev, li.last_term, 9,
                     iterations=200 if _is_compiled(flavour) else 20) == []
    bench.per_item(BATCH)


def test_cached_slice(bench, flavour):
    li = _log(flavour, 50, cached_entries=4096)
    lo = li.last_index - 1000

    def slice_for_append_entries():
        return li.entries(lo, li.last_index + 1, BATCH, 1 << 20)

    out = bench.run(f"entries: cached slice of {BATCH} x 100 B for AppendEntries",
                    slice_for_append_entries, iterations=200 if _is_compiled(flavour) else 20)
    assert len(out) == BATCH and out[0].index == lo
    bench.per_item(BATCH)
