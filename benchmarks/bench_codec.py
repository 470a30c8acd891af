"""Codec micro benchmarks, compiled and pure side by side in one run.

    python -m pytest benchmarks/bench_codec.py --benchmark-group-by=group \
        --benchmark-columns=median,iqr,rounds,iterations

The target (codec task): encode + decode of 1,000 entries of 100 bytes, checksums and Entry
objects included, at least 10x faster compiled than pure and at most 150 ns per entry
compiled. ``extra_info["median_ns_per_item"]`` holds the per-entry (or per-message) median.
"""

import pytest

PAYLOAD = bytes(range(100))


def _entries(flavour, n):
    Entry = flavour["entry"].Entry
    return [Entry(7, 1000 + i, 1, PAYLOAD) for i in range(n)]


def _iterations(flavour, compiled, pure):
    return compiled if flavour["codec"].__name__.endswith(".compiled.codec") else pure


def test_entries_encode_decode(bench, flavour):
    n = bench.scaled(1000, 100)
    codec, entries = flavour["codec"], _entries(flavour, n)

    def round_trip():
        return codec.decode_entries(codec.encode_entries(entries))

    out = bench.run(f"entries: encode+decode {n} x 100 B", round_trip,
                    iterations=_iterations(flavour, 20, 2))
    assert out == entries
    bench.per_item(n)


def test_entries_encode(bench, flavour):
    n = bench.scaled(1000, 100)
    codec, entries = flavour["codec"], _entries(flavour, n)
    data = bench.run(f"entries: encode {n} x 100 B", codec.encode_entries, entries,
                     iterations=_iterations(flavour, 50, 5))
    assert len(data) == 16 + n * 121
    bench.per_item(n)


def test_entries_decode(bench, flavour):
    n = bench.scaled(1000, 100)
    codec, entries = flavour["codec"], _entries(flavour, n)
    data = codec.encode_entries(entries)
    out = bench.run(f"entries: decode {n} x 100 B", codec.decode_entries, data,
                    iterations=_iterations(flavour, 20, 2))
    assert out == entries
    bench.per_item(n)


@pytest.mark.parametrize("n_entries", [0, 100])
def test_message_append_entries(bench, flavour, n_entries):
    from fastraft.messages import AppendEntriesRequest

    codec = flavour["codec"]
    msg = AppendEntriesRequest(term=7, sender=1, prev_log_term=7, prev_log_index=999,
                               leader_commit=990, seq=42, entries=_entries(flavour, n_entries))

    def round_trip():
        return codec.decode_message(codec.encode_message(msg))

    out = bench.run(f"message: AppendEntries with {n_entries} x 100 B, encode+decode",
                    round_trip, iterations=_iterations(flavour, 200, 20))
    assert out == msg
    bench.per_item(1)


def test_message_vote_request(bench, flavour):
    from fastraft.messages import VoteRequest

    codec = flavour["codec"]
    msg = VoteRequest(term=8, sender=2, last_log_term=7, last_log_index=1000)

    def round_trip():
        return codec.decode_message(codec.encode_message(msg))

    out = bench.run("message: VoteRequest, encode+decode", round_trip,
                    iterations=_iterations(flavour, 1000, 200))
    assert out == msg
    bench.per_item(1)
