"""Differential tests: the compiled log index against its pure twin (the spec).

A hypothesis state machine drives one compiled and one pure ``LogIndex`` with the same random
operations, good and bad: indexes around every boundary (purge point, log end, cache start),
values outside u64, entries that do not continue the log, payloads of the wrong type. After
every call both must return equal results or raise the same exception type with the same
message; a call that raises must leave both unchanged; and after every step every observable
part of the two indexes (ids, runs, cache bounds and contents, repr) must be equal.
"""

import copy
import importlib
import pickle

import hypothesis.strategies as st
import pytest
from hypothesis import settings
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

C = importlib.import_module("fastraft.accel.compiled.log_index")
P = importlib.import_module("fastraft.accel.pure.log_index")
CE = importlib.import_module("fastraft.accel.compiled.entry").Entry
PE = importlib.import_module("fastraft.accel.pure.entry").Entry

MAX = (1 << 64) - 1
#: Values at the edges of the u64 domain, tried as any integer argument.
SPECIALS = [-(1 << 70), -1, 0, 1, MAX - 1, MAX, MAX + 1, 1 << 70]


def norm(v):
    """A comparable form of a result: entries by their fields, ints and bools apart."""
    if isinstance(v, list):
        return [norm(x) for x in v]
    if isinstance(v, tuple):
        return tuple(norm(x) for x in v)
    if hasattr(v, "payload"):
        return ("Entry", v.term, v.index, v.kind, v.payload)
    return (type(v).__name__, v)


def outcome(fn, *args):
    try:
        return ("ok", norm(fn(*args)))
    except Exception as e:  # every exception is part of the contract: type and message
        return ("raise", type(e), str(e))


def state(li):
    """Everything a caller can observe of a log index."""
    cached = []
    if li.cached_count:
        cached = norm(li.entries(li.cache_lo, li.last_index + 1, 1 << 70, 1 << 70))
    return (li.last_index, li.last_term, li.purged_index, li.purged_term, li.first_index,
            li.cache_lo, li.cached_count, li.cached_bytes, li.run_count, li.term_runs(),
            li.max_cached_entries, li.max_cached_bytes, repr(li), cached)


def near(lo, hi):
    """An integer in [lo - 3, hi + 3] mostly, else one of the u64 edge values."""
    hi = max(lo, hi)
    return st.one_of(st.integers(lo - 3, hi + 3), st.integers(lo - 3, hi + 3),
                     st.integers(lo - 3, hi + 3), st.sampled_from(SPECIALS))


def clamp(v):
    return min(max(v, 0), MAX)


@st.composite
def entry_specs(draw, start, term, *, wild=True):
    """(term, index, kind, payload) tuples that mostly continue from (term, start)."""
    n = draw(st.integers(0, 6))
    out = []
    idx = start
    for _ in range(n):
        term += draw(st.sampled_from([0, 0, 0, 1, 2]))
        if wild and draw(st.integers(0, 15)) == 0:
            term = draw(st.sampled_from([0, term - 1, term + 5]))
        if wild and draw(st.integers(0, 15)) == 0:
            idx += draw(st.sampled_from([-1, 1, 2]))
        size = draw(st.integers(0, 50))
        kind = draw(st.sampled_from([0, 1, 1, 1, 2]))
        out.append((clamp(term), clamp(idx), kind, bytes([65 + idx % 26]) * size))
        idx += 1
    return out


class LogIndexDiff(RuleBasedStateMachine):
    """One compiled and one pure LogIndex, driven in lockstep."""

    @initialize(max_n=st.sampled_from([0, 1, 3, 7, 4096]),
                max_b=st.sampled_from([0, 30, 120, 400, 64 << 20]))
    def setup(self, max_n, max_b):
        self.c = C.LogIndex(max_n, max_b)
        self.p = P.LogIndex(max_n, max_b)

    def both(self, name, *args, c_args=None, mutates=False):
        # the compiled side suffices: the invariant keeps it equal to the pure side
        before = state(self.c) if mutates else None
        rc = outcome(getattr(self.c, name), *(args if c_args is None else c_args))
        rp = outcome(getattr(self.p, name), *args)
        assert rc == rp, f"{name}{args}: compiled {rc} != pure {rp}"
        if mutates and rp[0] == "raise":
            assert state(self.c) == before, f"{name}{args} raised and changed"
            assert state(self.p) == before, f"{name}{args} raised and changed"
        return rp

    def _entries(self, data, specs):
        """The same entries for each flavour; now and then pure ones for the compiled too."""
        pure = [PE(*s) for s in specs]
        cross = data.draw(st.sampled_from([False, False, False, True]), label="cross")
        return (pure if cross else [CE(*s) for s in specs]), pure

    def _index(self, data, extra=3):
        p = self.p
        return data.draw(near(p.purged_index, p.last_index + extra), label="index")

    def _term(self, data):
        return data.draw(near(self.p.last_term, self.p.last_term + 2), label="term")

    # -- changing ------------------------------------------------------------------------------

    @rule(data=st.data(),
          kind=st.sampled_from([0, 1, 1, 2, 255, 256, -1]),
          sizes=st.lists(st.integers(0, 60), max_size=6),
          odd=st.sampled_from([None] * 6 + [bytearray(b"ba"), memoryview(b"mv"), "str", 7]))
    def append_payloads(self, data, kind, sizes, odd):
        term = self._term(data)
        payloads = [bytes([97 + k]) * n for k, n in enumerate(sizes)]
        if odd is not None and payloads:
            payloads[data.draw(st.integers(0, len(payloads) - 1))] = odd
        self.both("append_payloads", term, kind, payloads, mutates=True)

    @rule(data=st.data())
    def append_entries(self, data):
        p = self.p
        start = data.draw(st.one_of(st.just(p.last_index + 1), st.just(p.last_index + 1),
                                    near(p.last_index - 1, p.last_index + 2)), label="start")
        specs = data.draw(entry_specs(start, max(p.last_term, 1)))
        c_ents, p_ents = self._entries(data, specs)
        self.both("append_entries", p_ents, c_args=(c_ents,), mutates=True)

    @rule(data=st.data())
    def append_term_run(self, data):
        last_index = data.draw(near(self.p.last_index, self.p.last_index + 20), label="last")
        self.both("append_term_run", self._term(data), last_index, mutates=True)

    @rule(data=st.data())
    def truncate_after(self, data):
        self.both("truncate_after", self._index(data), mutates=True)

    @rule(data=st.data())
    def purge_upto(self, data):
        self.both("purge_upto", self._index(data), mutates=True)

    @rule(data=st.data(), skip=st.integers(0, 4))
    def reset(self, data, skip):
        index = data.draw(near(self.p.last_index, self.p.last_index + skip), label="index")
        self.both("reset", self._term(data), index, mutates=True)

    # -- reading -------------------------------------------------------------------------------

    @rule(data=st.data())
    def lookups(self, data):
        index = self._index(data)
        term = self._term(data)
        self.both("term_at", index)
        self.both("matches", index, term)
        self.both("is_cached", index)
        self.both("first_index_of_term", term)
        self.both("last_index_of_term", term)

    @rule(data=st.data())
    def terms_of_every_run(self, data):
        for start, term in self.p.term_runs():
            self.both("first_index_of_term", term)
            self.both("last_index_of_term", term)
            self.both("term_at", start)
            self.both("matches", start, term)

    @rule(data=st.data())
    def find_conflict(self, data):
        p = self.p
        start = data.draw(near(p.purged_index - 2, p.last_index + 1), label="start")
        specs = []
        for spec in data.draw(entry_specs(start, 1)):
            t, i, kind, payload = spec
            # mostly the log's own term at that index, so that the first conflict is deep
            if p.purged_index < i <= p.last_index and data.draw(st.integers(0, 3)):
                t = p.term_at(i)
            specs.append((t, i, kind, payload))
        c_ents, p_ents = self._entries(data, specs)
        self.both("find_conflict", p_ents, c_args=(c_ents,))

    @rule(data=st.data())
    def check_entries(self, data):
        prev = self._index(data)
        prev_term = self._term(data)
        max_term = data.draw(near(prev_term, prev_term + 4), label="max_term")
        specs = data.draw(entry_specs(clamp(prev + 1), max(clamp(prev_term), 1)))
        c_ents, p_ents = self._entries(data, specs)
        self.both("check_entries", p_ents, prev, prev_term, max_term,
                  c_args=(c_ents, prev, prev_term, max_term))

    @rule(data=st.data(),
          max_entries=st.sampled_from([-1, 0, 1, 2, 5, 1000, 1 << 70]),
          max_bytes=st.sampled_from([-5, 0, 1, 21, 50, 100, 300, 1 << 20, MAX, 1 << 70]))
    def entries(self, data, max_entries, max_bytes):
        p = self.p
        lo = data.draw(near(p.cache_lo, p.last_index + 1), label="lo")
        hi = data.draw(st.one_of(st.integers(lo, max(lo, p.last_index + 2)),
                                 near(lo, max(lo, p.last_index + 1))), label="hi")
        self.both("entries", lo, hi, max_entries, max_bytes)

    @rule(how=st.sampled_from(["pickle", "deepcopy"]))
    def copy_both(self, how):
        """Carry on with copies: a copy must behave as the original (the twin copies through
        its slots, the compiled module through __reduce__)."""
        dup = (lambda o: pickle.loads(pickle.dumps(o))) if how == "pickle" else copy.deepcopy
        c, p = dup(self.c), dup(self.p)
        assert type(c) is type(self.c) and state(c) == state(self.c)
        self.c, self.p = c, p

    @invariant()
    def same_state(self):
        assert state(self.c) == state(self.p)

    @invariant()
    def compiled_holds_compiled_entries(self):
        if self.c.cached_count:
            got = self.c.entries(self.c.cache_lo, self.c.last_index + 1, 1 << 20, 1 << 40)
            assert all(type(e) is CE for e in got)


TestLogIndexDiff = LogIndexDiff.TestCase
TestLogIndexDiff.settings = settings(settings(), stateful_step_count=50, deadline=None)


# -- fixed cases at the edges, where a C word would wrap -----------------------------------------


def _pair(*args):
    return C.LogIndex(*args), P.LogIndex(*args)


def _same(pair, name, *args):
    rc = outcome(getattr(pair[0], name), *args)
    rp = outcome(getattr(pair[1], name), *args)
    assert rc == rp, f"{name}{args}: compiled {rc} != pure {rp}"
    assert state(pair[0]) == state(pair[1])
    return rp


def test_log_ending_at_the_largest_index():
    pair = _pair(8, 1000)
    _same(pair, "reset", 3, MAX - 2)
    assert _same(pair, "append_payloads", 3, 1, [b"a", b"b"])[0] == "ok"
    assert pair[1].last_index == MAX and pair[1].cache_lo == MAX - 1
    # one more entry would need index 2**64
    assert _same(pair, "append_payloads", 3, 1, [b"c"])[1] is OverflowError
    assert _same(pair, "append_payloads", 3, 300, [b"c"])[1] is OverflowError
    assert _same(pair, "append_entries", [PE(3, MAX, 1, b"")])[1] is ValueError
    assert _same(pair, "append_term_run", 4, MAX)[1] is ValueError
    assert _same(pair, "entries", MAX - 1, 1 << 64, 10, 1 << 70)[1] == norm(
        [PE(3, MAX - 1, 1, b"a"), PE(3, MAX, 1, b"b")])
    assert _same(pair, "entries", 1 << 64, 1 << 64, 1, 0) == ("ok", [])
    _same(pair, "is_cached", MAX)
    _same(pair, "find_conflict", [PE(3, MAX, 1, b"")])
    _same(pair, "check_entries", [PE(3, MAX, 1, b"")], MAX - 1, 3, 3)
    _same(pair, "check_entries", [PE(3, MAX, 1, b"")], MAX, 3, 3)
    _same(pair, "purge_upto", MAX)
    assert pair[1].cache_lo == 1 << 64 and pair[1].first_index == 1 << 64
    _same(pair, "is_cached", MAX)
    _same(pair, "entries", 1 << 64, 1 << 64, 1, 0)
    _same(pair, "truncate_after", MAX)


def test_values_beyond_u64_raise_as_the_twin():
    pair = _pair()
    for args in ((1 << 64, 5), (5, 1 << 64), (-1, 5), (0, 5), (1, 0)):
        _same(pair, "reset", *args)
    _same(pair, "append_term_run", 1 << 64, 10)
    _same(pair, "append_term_run", 2, 1 << 64)
    _same(pair, "append_payloads", 1 << 64, 1, [b"x"])
    for bad in (-1, 0, 1 << 64):
        _same(pair, "term_at", bad)
        _same(pair, "matches", bad, 0)
        _same(pair, "truncate_after", bad)
        _same(pair, "purge_upto", bad)
    for bounds in ((-1, 0), (0, -1)):
        assert outcome(C.LogIndex, *bounds) == outcome(P.LogIndex, *bounds)
    big = _pair(1 << 70, 1 << 70)
    assert state(big[0]) == state(big[1])
    _same(big, "append_payloads", 1, 1, [b"x" * 100] * 3)


def test_foreign_entries_are_converted_and_bad_ones_refused():
    c = C.LogIndex()
    assert c.append_entries([PE(1, 1, 2, b"m"), PE(1, 2, 1, b"x")]) == [1]
    got = c.entries(1, 3, 10, 1000)
    assert [type(e) for e in got] == [CE, CE] and got == [CE(1, 1, 2, b"m"), CE(1, 2, 1, b"x")]
    with pytest.raises(AttributeError):
        c.append_entries([object()])
    assert c.last_index == 2


def test_payload_kinds_of_proposals():
    pair = _pair()
    for payload in (bytearray(b"ab"), memoryview(b"cd"), "ef", None, 3):
        _same(pair, "append_payloads", 1, 1, [b"ok", payload])
    out = pair[0].append_payloads(1, 1, [b"z"])
    assert type(out[0]) is CE and type(out[0].payload) is bytes
