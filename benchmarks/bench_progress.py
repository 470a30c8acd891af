"""Progress tracker micro benchmarks, compiled and pure side by side in one run.

    python -m pytest benchmarks/bench_progress.py --benchmark-group-by=group \\
        --benchmark-columns=median,iqr,rounds,iterations

The target (progress task): the commit index at least 3x faster compiled than pure; timed too
the per-message work of a leader on an acknowledgement (record the send, take the ack, move
the commit index) and a vote tally. ``extra_info["median_ns_per_item"]`` holds the median per
call. Calls run in a Python loop of 1,000, whose own cost (some tens of ns a call, the same for
both flavours) is included in both.
"""

import pytest

LOOP = 1000

# (voters, joint voters, learners)
CONFIGS = {
    "3 voters": ([1, 2, 3], [], []),
    "5 voters + 2 learners": ([1, 2, 3, 4, 5], [], [6, 7]),
    "9 voters": (list(range(1, 10)), [], []),
    "joint 5 + 5": ([1, 2, 3, 4, 5], [4, 5, 6, 7, 8], []),
}


def _tracker(flavour, config):
    voters, joint, learners = CONFIGS[config]
    t = flavour["progress"].ProgressTracker(max_inflight=64)
    t.set_membership(voters, joint, learners, 1)
    for i in t.node_ids():
        t.update_match(i, 1000 + 37 * i % 101)
    return t


def _is_compiled(flavour):
    return flavour["progress"].__name__.endswith(".compiled.progress")


@pytest.mark.parametrize("config", list(CONFIGS))
def test_committed_index(bench, flavour, config):
    t = _tracker(flavour, config)
    n = bench.scaled(LOOP, 100)
    committed_index = t.committed_index

    def compute():
        c = 0
        for _ in range(n):
            c = committed_index()
        return c

    out = bench.run(f"committed_index: {config}", compute,
                    iterations=5 if _is_compiled(flavour) else 1)
    assert out == t.committed_index() > 1000
    bench.per_item(n)


@pytest.mark.parametrize("config", ["3 voters", "5 voters + 2 learners"])
def test_ack_then_commit(bench, flavour, config):
    """What a leader does per AppendEntries round trip to one follower in PIPELINE mode."""
    t = _tracker(flavour, config)
    t.on_ack(2, t.match_index(2))  # the probe is answered: PIPELINE from here
    n = bench.scaled(LOOP, 100)
    on_sent, on_ack, committed_index = t.on_sent, t.on_ack, t.committed_index
    state = {"last": t.next_index(2) - 1}

    def round_trips():
        last = state["last"]
        c = 0
        for _ in range(n):
            last += 100
            on_sent(2, last)
            if on_ack(2, last):
                c = committed_index()
        state["last"] = last
        return c

    assert bench.run(f"on_sent + on_ack + committed_index: {config}", round_trips,
                     iterations=5 if _is_compiled(flavour) else 1) >= 1000
    assert t.mode(2) == flavour["progress"].PIPELINE and t.inflight_count(2) == 0
    bench.per_item(n)


def test_vote_tally(bench, flavour):
    """An election in a 5-voter config: reset, five answers, the result after each."""
    t = _tracker(flavour, "5 voters + 2 learners")
    won = flavour["progress"].VOTE_WON
    n = bench.scaled(LOOP // 5, 20)
    reset_votes, record_vote, vote_result = t.reset_votes, t.record_vote, t.vote_result

    def elections():
        r = 0
        for _ in range(n):
            reset_votes()
            for i in (1, 2, 3, 4, 5):
                record_vote(i, i != 4)
                r = vote_result()
        return r

    assert bench.run("record_vote + vote_result: 5 voters", elections,
                     iterations=5 if _is_compiled(flavour) else 1) == won
    bench.per_item(n * 5)
