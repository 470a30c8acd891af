"""Unit tests of the log index (term runs, purge, conflicts, hints, the bounded cache).

Run against every flavour present: the pure twin always, the compiled module once it exists.
A model-based property test checks every operation against a plain list of (term, index).
"""

import importlib

import hypothesis.strategies as st
import pytest
from hypothesis import given
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

FLAVOURS = ["pure"]
try:
    importlib.import_module("fastraft.accel.compiled.log_index")
    FLAVOURS.append("compiled")
except ImportError:
    pass


def _mods(flavour):
    li = importlib.import_module(f"fastraft.accel.{flavour}.log_index")
    en = importlib.import_module(f"fastraft.accel.{flavour}.entry")
    return li, en.Entry


@pytest.fixture(params=FLAVOURS)
def mods(request):
    return _mods(request.param)


def _fill(li_mod, Entry, terms, max_n=1000, max_b=1 << 20):
    """A log whose entry k+1 has term terms[k]."""
    li = li_mod.LogIndex(max_n, max_b)
    li.append_entries([Entry(t, k + 1, 1, b"p%d" % (k + 1)) for k, t in enumerate(terms)])
    return li


def test_empty_log(mods):
    m, _ = mods
    li = m.LogIndex()
    assert (li.last_term, li.last_index, li.purged_term, li.purged_index) == (0, 0, 0, 0)
    assert li.first_index == 1 and li.term_at(0) == 0
    assert li.cache_lo == 1 and li.cached_count == 0 and li.cached_bytes == 0
    assert li.matches(0, 0) and not li.matches(1, 1)
    assert li.first_index_of_term(1) == 0 and li.last_index_of_term(1) == 0
    assert li.term_runs() == [] and li.run_count == 0
    with pytest.raises(IndexError):
        li.term_at(1)


def test_term_runs_and_lookup(mods):
    m, E = mods
    li = _fill(m, E, [1, 1, 1, 2, 2, 5, 5, 5, 5, 6])
    assert li.term_runs() == [(1, 1), (4, 2), (6, 5), (10, 6)]
    assert [li.term_at(i) for i in range(0, 11)] == [0, 1, 1, 1, 2, 2, 5, 5, 5, 5, 6]
    assert (li.last_term, li.last_index) == (6, 10)
    assert li.first_index_of_term(5) == 6 and li.last_index_of_term(5) == 9
    assert li.first_index_of_term(6) == 10 and li.last_index_of_term(6) == 10
    assert li.first_index_of_term(3) == 0 and li.last_index_of_term(3) == 0
    assert li.first_index_of_term(7) == 0 and li.last_index_of_term(0) == 0
    assert li.matches(5, 2) and not li.matches(5, 5) and not li.matches(11, 6)
    with pytest.raises(IndexError):
        li.term_at(11)
    with pytest.raises(ValueError):
        li.matches(-1, 0)


def test_append_payloads_creates_entries_and_reports_nothing_partial(mods):
    m, E = mods
    li = m.LogIndex()
    out = li.append_payloads(3, 1, [b"a", b"bb", bytearray(b"c")])
    assert out == [E(3, 1, 1, b"a"), E(3, 2, 1, b"bb"), E(3, 3, 1, b"c")]
    assert (li.last_term, li.last_index) == (3, 3)
    assert li.append_payloads(3, 1, []) == [] and li.last_index == 3
    with pytest.raises(TypeError):
        li.append_payloads(3, 1, [b"ok", "not bytes"])
    with pytest.raises(ValueError):
        li.append_payloads(2, 1, [b"x"])
    with pytest.raises(ValueError):
        m.LogIndex().append_payloads(0, 1, [b"x"])
    assert (li.last_term, li.last_index, li.cached_count) == (3, 3, 3)
    assert li.append_payloads(4, 0, [b""]) == [E(4, 4, 0, b"")]
    assert li.term_runs() == [(1, 3), (4, 4)]


def test_append_entries_checks_continuity_and_reports_memberships(mods):
    m, E = mods
    li = m.LogIndex()
    assert li.append_entries([E(1, 1, 0), E(1, 2, 2, b"{}"), E(2, 3, 1), E(2, 4, 2, b"{}")]) == [2, 4]
    assert li.append_entries([]) == []
    for bad in ([E(2, 6, 1)], [E(2, 5, 1), E(2, 7, 1)], [E(1, 5, 1)], [E(3, 5, 1), E(2, 6, 1)]):
        with pytest.raises(ValueError):
            li.append_entries(bad)
    assert (li.last_term, li.last_index, li.cached_count) == (2, 4, 4)
    with pytest.raises(ValueError):
        m.LogIndex().append_entries([E(0, 1, 1)])


def test_find_conflict(mods):
    m, E = mods
    li = _fill(m, E, [1, 1, 2, 2, 3])
    assert li.find_conflict([]) == 0
    assert li.find_conflict([E(1, 2), E(2, 3)]) == 0
    assert li.find_conflict([E(2, 4), E(3, 5), E(3, 6)]) == 6
    assert li.find_conflict([E(2, 4), E(4, 5)]) == 5
    assert li.find_conflict([E(1, 1), E(4, 2)]) == 2
    assert li.find_conflict([E(9, 7)]) == 7
    li.purge_upto(3)
    # purged entries count as held, whatever their term
    assert li.find_conflict([E(7, 2), E(7, 3), E(2, 4)]) == 0
    assert li.find_conflict([E(7, 3), E(7, 4)]) == 4
    with pytest.raises(ValueError):
        li.find_conflict([E(2, 4), E(3, 6)])


def test_truncate_after(mods):
    m, E = mods
    li = _fill(m, E, [1, 1, 2, 2, 3, 3])
    li.truncate_after(10)
    assert li.last_index == 6
    li.truncate_after(4)
    assert (li.last_term, li.last_index) == (2, 4) and li.term_runs() == [(1, 1), (3, 2)]
    assert li.cache_lo == 1 and li.cached_count == 4
    assert li.entries(1, 5, 10, 1 << 20)[-1] == E(2, 4, 1, b"p4")
    li.truncate_after(2)
    assert (li.last_term, li.last_index) == (1, 2) and li.term_runs() == [(1, 1)]
    li.append_entries([E(5, 3, 1)])
    assert li.term_runs() == [(1, 1), (3, 5)] and li.term_at(3) == 5
    li.purge_upto(1)
    with pytest.raises(ValueError):
        li.truncate_after(0)
    li.truncate_after(1)
    assert (li.last_term, li.last_index) == (1, 1) and li.term_runs() == [] and li.cached_count == 0


def test_purge_upto(mods):
    m, E = mods
    li = _fill(m, E, [1, 1, 2, 2, 3, 3])
    li.purge_upto(0)
    assert li.purged_index == 0
    li.purge_upto(2)
    assert (li.purged_term, li.purged_index, li.first_index) == (1, 2, 3)
    assert li.term_runs() == [(3, 2), (5, 3)] and li.cache_lo == 3
    assert li.term_at(2) == 1
    with pytest.raises(IndexError):
        li.term_at(1)
    li.purge_upto(3)
    assert li.term_runs() == [(4, 2), (5, 3)]
    li.purge_upto(4)
    assert li.term_runs() == [(5, 3)] and li.first_index_of_term(2) == 0
    li.purge_upto(1)  # behind the purge point: nothing to do
    assert li.purged_index == 4
    with pytest.raises(IndexError):
        li.purge_upto(7)
    li.purge_upto(6)
    assert (li.purged_term, li.purged_index, li.last_term, li.last_index) == (3, 6, 3, 6)
    assert li.term_runs() == [] and li.cached_count == 0 and li.cache_lo == 7
    li.append_payloads(3, 1, [b"x"])
    assert li.term_runs() == [(7, 3)]


def test_reset_and_append_term_run(mods):
    m, E = mods
    li = _fill(m, E, [1, 2, 3])
    li.reset(5, 100)
    assert (li.purged_term, li.purged_index, li.last_term, li.last_index) == (5, 100, 5, 100)
    assert li.term_runs() == [] and li.cached_count == 0 and li.cache_lo == 101
    for bad in ((0, 3), (3, 0), (-1, -1)):
        with pytest.raises(ValueError):
            li.reset(*bad)
    li.append_term_run(5, 120)
    li.append_term_run(7, 130)
    assert li.term_runs() == [(101, 5), (121, 7)] and (li.last_term, li.last_index) == (7, 130)
    assert li.cached_count == 0 and li.term_at(125) == 7
    with pytest.raises(ValueError):
        li.append_term_run(7, 130)
    with pytest.raises(ValueError):
        li.append_term_run(6, 140)
    li.append_payloads(7, 1, [b"z"])
    assert li.cache_lo == 131 and li.entries(131, 132, 1, 0) == [E(7, 131, 1, b"z")]
    li.append_term_run(8, 140)  # entries not given: the cache must not pretend to hold them
    assert li.cached_count == 0 and li.cache_lo == 141
    li.reset(0, 0)
    assert li.last_index == 0


def test_cache_bounded_by_count(mods):
    m, E = mods
    li = m.LogIndex(max_cached_entries=4, max_cached_bytes=1 << 20)
    li.append_payloads(1, 1, [b"x"] * 10)
    assert li.cache_lo == 7 and li.cached_count == 4
    assert li.cached_bytes == 4 * (1 + m.ENTRY_OVERHEAD_BYTES)
    assert li.is_cached(7) and li.is_cached(10) and not li.is_cached(6) and not li.is_cached(11)
    with pytest.raises(IndexError):
        li.entries(6, 8, 10, 1000)
    zero = m.LogIndex(max_cached_entries=0)
    zero.append_payloads(1, 1, [b"x"])
    assert zero.cached_count == 0 and zero.cache_lo == 2


def test_cache_bounded_by_bytes(mods):
    m, E = mods
    o = m.ENTRY_OVERHEAD_BYTES
    li = m.LogIndex(max_cached_entries=100, max_cached_bytes=3 * (10 + o))
    li.append_payloads(1, 1, [b"a" * 10] * 5)
    assert li.cached_count == 3 and li.cache_lo == 3 and li.cached_bytes == 3 * (10 + o)
    li.append_payloads(1, 1, [b"b" * 25])  # needs the room of more than one old entry
    assert li.cache_lo == 5 and li.cached_bytes == (10 + o) + (25 + o)
    li.append_payloads(1, 1, [b"c" * 1000])  # larger than the whole cache
    assert li.cached_count == 0 and li.cache_lo == 8 and li.cached_bytes == 0
    li.append_payloads(1, 1, [b"d"])
    assert li.cache_lo == 8 and li.cached_count == 1


def test_entries_limits(mods):
    m, E = mods
    o = m.ENTRY_OVERHEAD_BYTES
    li = m.LogIndex()
    li.append_payloads(1, 1, [b"x" * 10] * 20)
    assert [e.index for e in li.entries(3, 8, 100, 1 << 20)] == [3, 4, 5, 6, 7]
    assert [e.index for e in li.entries(3, 21, 4, 1 << 20)] == [3, 4, 5, 6]
    assert [e.index for e in li.entries(3, 21, 100, 3 * (10 + o))] == [3, 4, 5]
    assert [e.index for e in li.entries(3, 21, 100, 3 * (10 + o) - 1)] == [3, 4]
    assert [e.index for e in li.entries(3, 21, 100, 1)] == [3]  # always progress
    assert li.entries(5, 5, 1, 1) == []
    with pytest.raises(IndexError):
        li.entries(3, 22, 10, 10)
    with pytest.raises(IndexError):
        li.entries(5, 4, 10, 10)
    with pytest.raises(ValueError):
        li.entries(3, 5, 0, 10)
    li.purge_upto(10)
    assert li.cache_lo == 11 and [e.index for e in li.entries(11, 13, 9, 1 << 20)] == [11, 12]


def test_cache_survives_long_runs_of_eviction(mods):
    m, E = mods
    li = m.LogIndex(max_cached_entries=50, max_cached_bytes=1 << 30)
    for k in range(100):
        li.append_payloads(1, 1, [b"%d" % (k * 30 + j) for j in range(30)])
    assert li.cached_count == 50 and li.cache_lo == 2951
    got = li.entries(2951, 3001, 1000, 1 << 30)
    assert [e.payload for e in got] == [b"%d" % (i - 1) for i in range(2951, 3001)]


def test_bad_bounds(mods):
    m, _ = mods
    with pytest.raises(ValueError):
        m.LogIndex(-1, 10)
    with pytest.raises(ValueError):
        m.LogIndex(10, -1)


class LogModel(RuleBasedStateMachine):
    """Every operation against a list model: log[k] is the term of index purged + 1 + k."""

    flavour = "pure"

    def __init__(self):
        super().__init__()
        self.m, self.E = _mods(self.flavour)
        self.li = self.m.LogIndex(max_cached_entries=7, max_cached_bytes=200)
        self.purged = (0, 0)
        self.log = []  # terms of (purged, last]
        self.payload = {}

    def _last(self):
        return self.purged[1] + len(self.log)

    def _last_term(self):
        return self.log[-1] if self.log else self.purged[0]

    @rule(n=st.integers(1, 6), bump=st.integers(0, 2), size=st.integers(0, 40))
    def propose(self, n, bump, size):
        term = max(self._last_term(), 1) + bump
        start = self._last() + 1
        payloads = [bytes([65 + (start + k) % 26]) * size for k in range(n)]
        out = self.li.append_payloads(term, 1, payloads)
        assert [e.index for e in out] == list(range(start, start + n))
        self.log += [term] * n
        for k in range(n):
            self.payload[start + k] = payloads[k]

    @precondition(lambda self: self.log)
    @rule(back=st.integers(0, 10))
    def truncate(self, back):
        keep = max(len(self.log) - back, 0)
        self.li.truncate_after(self.purged[1] + keep)
        del self.log[keep:]

    @precondition(lambda self: self.log)
    @rule(k=st.integers(0, 10))
    def purge(self, k):
        k = min(k, len(self.log) - 1)
        idx = self.purged[1] + k + 1
        self.li.purge_upto(idx)
        self.purged = (self.log[k], idx)
        del self.log[:k + 1]

    @rule(skip=st.integers(0, 5))
    def reset(self, skip):
        term = max(self._last_term(), 1)
        idx = self._last() + skip + 1
        self.li.reset(term, idx)
        self.purged = (term, idx)
        self.log = []

    @rule(delta=st.integers(-3, 3), term_shift=st.integers(-1, 2), n=st.integers(1, 4))
    def conflict(self, delta, term_shift, n):
        first = max(self.purged[1] + 1 + delta, 1)
        terms = []
        for k in range(n):
            i = first + k
            base = self.log[i - self.purged[1] - 1] if self.purged[1] < i <= self._last() else 1
            terms.append(max(base + term_shift, 1))
        ents = [self.E(terms[k], first + k) for k in range(n)]
        expect = 0
        for e in ents:
            if e.index <= self.purged[1]:
                continue
            if e.index > self._last() or self.log[e.index - self.purged[1] - 1] != e.term:
                expect = e.index
                break
        assert self.li.find_conflict(ents) == expect

    @invariant()
    def agrees(self):
        li = self.li
        assert (li.purged_term, li.purged_index) == self.purged
        assert (li.last_term, li.last_index) == (self._last_term(), self._last())
        for k, t in enumerate(self.log):
            assert li.term_at(self.purged[1] + 1 + k) == t
        for t in set(self.log):
            firsts = [self.purged[1] + 1 + k for k, x in enumerate(self.log) if x == t]
            assert li.first_index_of_term(t) == firsts[0]
            assert li.last_index_of_term(t) == firsts[-1]
        lo = li.cache_lo
        assert lo > self.purged[1] and li.cached_count == self._last() + 1 - lo
        assert li.cached_count <= 7 and li.cached_bytes <= 200
        got = li.entries(lo, self._last() + 1, 1000, 1 << 30)
        assert [e.index for e in got] == list(range(lo, self._last() + 1))
        assert [e.payload for e in got] == [self.payload[e.index] for e in got]
        assert li.cached_bytes == sum(len(e.payload) + self.m.ENTRY_OVERHEAD_BYTES for e in got)


for _f in FLAVOURS:
    globals()[f"TestLogModel_{_f}"] = type(f"LogModel_{_f}", (LogModel,), {"flavour": _f}).TestCase


@given(st.lists(st.integers(1, 4), min_size=1, max_size=30), st.integers(1, 400))
def test_entries_byte_limit_property(sizes_terms, max_bytes):
    for flavour in FLAVOURS:
        m, E = _mods(flavour)
        li = m.LogIndex()
        li.append_payloads(1, 1, [b"z" * (t * 7) for t in sizes_terms])
        got = li.entries(1, len(sizes_terms) + 1, 1000, max_bytes)
        total = sum(len(e.payload) + m.ENTRY_OVERHEAD_BYTES for e in got)
        assert len(got) >= 1
        assert len(got) == 1 or total <= max_bytes
        if len(got) < len(sizes_terms):
            nxt = sizes_terms[len(got)] * 7 + m.ENTRY_OVERHEAD_BYTES
            assert total + nxt > max_bytes


def test_check_entries(mods):
    m, E = mods
    li = _fill(m, E, [1, 2])
    assert li.check_entries([], 5, 3, 3) == []
    assert li.check_entries([E(2, 3, 1), E(3, 4, 2, b"{}"), E(3, 5, 1)], 2, 2, 3) == [4]
    for bad in ([E(2, 4, 1)], [E(1, 3, 1)], [E(4, 3, 1)], [E(3, 3, 1), E(2, 4, 1)],
                [E(2, 3, 1), E(2, 5, 1)]):
        with pytest.raises(ValueError):
            li.check_entries(bad, 2, 2, 3)
    with pytest.raises(ValueError):
        li.check_entries([E(0, 1, 1)], 0, 0, 3)  # term 0 is never a leader's
    assert (li.last_index, li.last_term) == (2, 2)  # reads nothing, changes nothing
