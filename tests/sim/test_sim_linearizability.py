"""The Wing-Gong-Lowe linearizability checker on hand-made register histories."""

from fastraft.sim.linearizability import HistoryOp, check_history, check_key


def put(op_id, value, invoke, complete, key="k"):
    return HistoryOp(op_id, "put", key, value, invoke, complete)


def get(op_id, value, invoke, complete, key="k"):
    return HistoryOp(op_id, "get", key, value, invoke, complete)


def test_sequential_history_is_linearizable():
    h = [put(1, "a", 1, 2), get(2, "a", 3, 4), put(3, "b", 5, 6), get(4, "b", 7, 8)]
    r = check_key("k", h)
    assert r.ok and not r.inconclusive
    assert r.ops == 4


def test_read_of_initial_value_before_any_write():
    assert check_key("k", [get(1, None, 1, 2), put(2, "a", 3, 4)]).ok


def test_stale_read_after_a_completed_write_is_not_linearizable():
    h = [put(1, "a", 1, 2), put(2, "b", 3, 4), get(3, "a", 5, 6)]
    r = check_key("k", h)
    assert not r.ok and not r.inconclusive
    assert "get#3" in r.detail


def test_concurrent_write_may_be_seen_or_not():
    # the put overlaps both reads: the first may miss it, the second may see it
    h = [put(1, "a", 1, 10), get(2, None, 2, 3), get(3, "a", 4, 5)]
    assert check_key("k", h).ok


def test_reads_cannot_go_back_in_time():
    # once a read returned "a", a later read cannot return the older initial value
    h = [put(1, "a", 1, 10), get(2, "a", 2, 3), get(3, None, 4, 5)]
    assert not check_key("k", h).ok


def test_value_that_no_write_produced_is_caught_at_once():
    r = check_key("k", [put(1, "a", 1, 2), get(2, "zz", 3, 4)])
    assert not r.ok
    assert "no put wrote" in r.detail
    assert r.steps == 0


def test_open_write_may_take_effect_late():
    # an unknown-outcome put (complete None) seen long after its invocation
    h = [put(1, "a", 1, None), get(2, None, 2, 3), put(3, "b", 4, 5), get(4, "a", 6, 7)]
    assert check_key("k", h).ok


def test_open_write_may_never_take_effect():
    h = [put(1, "a", 1, None), get(2, None, 2, 3), get(3, None, 4, 5)]
    assert check_key("k", h).ok


def test_open_write_cannot_take_effect_before_its_invocation():
    h = [get(1, "a", 1, 2), put(2, "a", 3, None)]
    assert not check_key("k", h).ok


def test_open_write_cannot_be_seen_then_unseen():
    h = [put(1, "a", 1, None), get(2, "a", 2, 3), get(3, None, 4, 5)]
    assert not check_key("k", h).ok


def test_keys_are_checked_separately():
    h = [put(1, "a", 1, 2, key="x"), put(2, "b", 3, 4, key="y"), get(3, "a", 5, 6, key="x"),
         get(4, None, 7, 8, key="z")]
    results = check_history(h)
    assert [r.key for r in results] == ["x", "y", "z"]
    assert all(r.ok for r in results)
    bad = check_history(h + [get(5, "b", 9, 10, key="x")])
    assert [r.ok for r in bad] == [False, True, True]


def test_memoisation_keeps_wide_concurrency_cheap():
    # 14 overlapping puts and a read that must come after all of them: without memoisation
    # the search would try every order of the puts (14! of them)
    n = 14
    h = [put(i, f"v{i}", i, 1000 + i) for i in range(1, n + 1)]
    h.append(get(99, f"v{n}", 2000, 2001))
    r = check_key("k", h, budget=200_000)
    assert r.ok and r.steps < 200_000


def test_budget_exhaustion_is_inconclusive_not_a_pass():
    n = 12
    h = [put(i, f"v{i}", i, 1000 + i) for i in range(1, n + 1)]
    # impossible (w overwrote every v before the read), and only the whole search shows it
    h += [put(98, "w", 1500, 1600), get(99, "v1", 2000, 2001)]
    small = check_key("k", h, budget=50)
    assert not small.ok and small.inconclusive
    full = check_key("k", h, budget=2_000_000)
    assert not full.ok and not full.inconclusive
