"""Crash safety, for real: a child process writes to a durable log store (lmdb, and rocksdb
when its extra is installed) as fast as it can and is killed with SIGKILL at a random
moment; on reopen every write it reported complete is
there, the log is contiguous with intact records, and the vote is the last one saved.

The rounds share one store, so each child also recovers what the previous one left.
FASTRAFT_CRASH_ROUNDS sets the number of rounds (default 25); the whole test is bounded by
its timeout.
"""

import os
import pathlib
import random
import signal
import subprocess
import sys
import threading
import time

import pytest
import trio

from fastraft import LogId
from crash_stores import OPENERS, durable_kinds

CHILD = pathlib.Path(__file__).with_name("crash_child.py")
ROUNDS = int(os.environ.get("FASTRAFT_CRASH_ROUNDS", "25"))
READY_TIMEOUT_S = 20.0


class Model:
    """What the child reported, and so what the reopened store must hold."""

    def __init__(self) -> None:
        self.terms: dict[int, int] = {}  # index -> term of every reported durable entry
        self.last_min = 0  # the log ends at least here ...
        self.vote_terms = {0}  # the vote term is one of these
        self.purged_min = 0
        self.purged_max = 0
        self.appends = 0

    def absorb(self, lines: list[str]) -> None:
        pending_vote = pending_purge = pending_truncate = None
        for line in lines:
            kind, *args = line.split()
            nums = [int(a) for a in args]
            if kind == "A":
                first, last, term = nums
                for i in range(first, last + 1):
                    self.terms[i] = term
                self.last_min = max(self.last_min, last)
                self.appends += 1
            elif kind == "v":
                pending_vote = nums[0]
            elif kind == "V":
                self.vote_terms, pending_vote = {nums[0]}, None
            elif kind == "p":
                pending_purge = nums[0]
            elif kind == "P":
                self.purged_min = self.purged_max = nums[0]
                pending_purge = None
            elif kind == "t":
                pending_truncate = nums[0]
            elif kind == "T":
                self._truncated(nums[0])
                pending_truncate = None
            elif kind == "E":
                raise AssertionError(f"the child's store failed: {line}")
        # A write issued but not reported may or may not have reached the disk.
        if pending_vote is not None:
            self.vote_terms = self.vote_terms | {pending_vote}
        if pending_purge is not None:
            self.purged_max = pending_purge
        if pending_truncate is not None:
            self._truncated(pending_truncate)

    def _truncated(self, since: int) -> None:
        self.terms = {i: t for i, t in self.terms.items() if i < since}
        self.last_min = min(self.last_min, since - 1)


def run_child(path: pathlib.Path, seed: int, rng: random.Random, kind: str = "lmdb") -> list[str]:
    """Start a child, let it write for a random while after it opened the store, SIGKILL it,
    and return every complete line it reported."""
    child = subprocess.Popen([sys.executable, str(CHILD), str(path), str(seed), kind],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    raw: list[bytes] = []
    opened = threading.Event()

    def read() -> None:  # drain the pipe as the child writes, so it never blocks on it
        for line in child.stdout:
            raw.append(line)
            opened.set()
        opened.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        opened.wait(READY_TIMEOUT_S)
        time.sleep(rng.uniform(0.02, 0.4))  # then kill it at a random moment
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.wait(timeout=30)
        reader.join(timeout=30)
    stderr = child.stderr.read().decode(errors="replace")
    child.stdout.close()
    child.stderr.close()
    assert child.returncode == -signal.SIGKILL, f"child ended on its own: {stderr}"
    # A line without its newline was cut by the kill: it reports nothing.
    complete = [line.decode() for line in raw if line.endswith(b"\n")]
    assert complete and complete[0].startswith("R "), f"child never opened the store: {stderr}"
    return complete


async def check_store(path: pathlib.Path, model: Model, round_no: int, kind: str = "lmdb") -> None:
    where = f"after kill {round_no}"
    store = await OPENERS[kind](path)  # verifies every checksum and the contiguity
    try:
        state = await store.get_log_state()
        last = 0 if state.last_log_id is None else state.last_log_id.index
        purged = 0 if state.last_purged_log_id is None else state.last_purged_log_id.index
        assert last >= model.last_min, f"{where}: log ends at {last}, {model.last_min} was durable"
        assert model.purged_min <= purged <= model.purged_max, f"{where}: purged to {purged}"
        vote = await store.read_vote()
        assert (0 if vote is None else vote.term) in model.vote_terms, f"{where}: vote {vote}"
        got = await store.read_entries(purged + 1, last + 1)
        assert [e.index for e in got] == list(range(purged + 1, last + 1)), f"{where}: gap"
        for e in got:
            assert e.payload == f"{e.term}:{e.index}:".encode().ljust(100, b"."), where
            if e.index in model.terms:
                assert e.term == model.terms[e.index], f"{where}: entry {e.index} changed term"
        terms = [e.term for e in got]
        assert terms == sorted(terms), f"{where}: terms decrease"
        if state.last_log_id is not None and got:
            assert state.last_log_id == LogId(got[-1].term, got[-1].index)
    finally:
        await store.aclose()


@pytest.mark.slow
@pytest.mark.timeout(240)
@pytest.mark.parametrize("kind", durable_kinds())
def test_sigkill_at_random_moments_loses_no_completed_write(tmp_path, kind):
    rng = random.Random(int(os.environ.get("FASTRAFT_CRASH_SEED", "20240611")))
    path = tmp_path / "node"
    model = Model()
    for round_no in range(1, ROUNDS + 1):
        lines = run_child(path, rng.randrange(1 << 30), rng, kind)
        ready_last = int(lines[0].split()[1])
        assert ready_last >= model.last_min, f"round {round_no}: reopened log lost entries"
        model.absorb(lines[1:])
        trio.run(check_store, path, model, round_no, kind)
    # The rounds did real work: appends completed, and were checked after each kill.
    assert model.appends > ROUNDS
