"""The lmdb KV state machine's applies off the sync path (``fastraft.kv.apply_buffer``):
visible at once, committed in the background with their applied index in one synced
transaction, bounded, and after a crash a state of some applied index, never a mix
(``fastraft.storage.protocols.StateMachine``: what a state machine may lose and must keep).

The SIGKILL test runs FASTRAFT_CRASH_ROUNDS rounds (default 8) on one store.
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
import trio.testing

from fastraft import LogId
from fastraft.errors import StorageError
from fastraft.kv import LmdbKVStateMachine, MemoryKVStateMachine, Set, encode_command
from fastraft.testing.helpers import kv_contents as contents
from fastraft.testing.helpers import normal

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from sm_crash_child import entry  # noqa: E402

CHILD = pathlib.Path(__file__).with_name("sm_crash_child.py")
ROUNDS = int(os.environ.get("FASTRAFT_CRASH_ROUNDS", "8"))


def sets(lo, hi, term=1):
    return [normal(term, i, encode_command(Set(f"k{i}", f"v{i}"))) for i in range(lo, hi)]


async def replay(upto: int) -> tuple:
    """What applying the child's entries 1..upto gives, on the in-memory state machine."""
    ref = MemoryKVStateMachine()
    for lo in range(1, upto + 1, 500):
        await ref.apply([entry(i) for i in range(lo, min(upto, lo + 499) + 1)])
    return await contents(ref) if upto else (None, [])


def test_applies_are_visible_at_once_and_committed_in_the_background(tmp_path):
    async def main():
        sm = await LmdbKVStateMachine.open(tmp_path, commit_interval_s=3600)
        assert await sm.apply(sets(1, 4)) == [{"value": f"v{i}"} for i in range(1, 4)]
        assert sm.get("k2") == "v2"  # visible before any commit
        assert sm.durable_applied is None  # the timer has not fired: nothing on disk yet
        snap = await sm.build_snapshot()  # a snapshot is a durable point
        snap.close()
        assert sm.durable_applied == LogId(1, 3) == snap.meta.last_log_id
        await sm.apply(sets(4, 6))
        assert sm.durable_applied == LogId(1, 3)
        await sm.aclose()  # a clean stop commits what is staged
        sm = await LmdbKVStateMachine.open(tmp_path)
        assert (await sm.applied_state())[0] == LogId(1, 5) == sm.durable_applied
        assert sm.get("k5") == "v5"
        await sm.aclose()

    trio.run(main)


def test_the_background_thread_commits_on_its_timer(tmp_path):
    async def main():
        sm = await LmdbKVStateMachine.open(tmp_path, commit_interval_s=0.01)
        await sm.apply(sets(1, 3))
        with trio.fail_after(30):  # polled up to a generous deadline, never timed
            while sm.durable_applied != LogId(1, 2):
                await trio.sleep(0.005)
        await sm.aclose()

    trio.run(main)


def test_an_apply_takes_no_scheduler_pass_unless_it_must_wait(tmp_path):
    """A client's write is answered after the apply of its entry: an apply that yields to
    the scheduler adds a pass to every write's latency. So an uncontended apply runs within
    its caller's scheduler step; one that finds the write lock held (an install under way)
    still waits for it, and applies after it."""
    class Steps(trio.abc.Instrument):
        """Counts the scheduler steps of one task: a step begun inside an await means that
        the await gave the scheduler a pass."""

        def __init__(self, task) -> None:
            self.task, self.steps = task, 0

        def before_task_step(self, task) -> None:
            if task is self.task:
                self.steps += 1

    async def main():
        sm = await LmdbKVStateMachine.open(tmp_path, commit_interval_s=3600)
        steps = Steps(trio.lowlevel.current_task())
        trio.lowlevel.add_instrument(steps)
        try:
            await sm.apply(sets(1, 3))
        finally:
            trio.lowlevel.remove_instrument(steps)
        assert steps.steps == 0  # the apply ran within the caller's step

        order = []
        await sm._write_lock.acquire()  # as install_snapshot holds it

        async def apply_later():
            await sm.apply(sets(3, 5))
            order.append("applied")

        async with trio.open_nursery() as nursery:
            nursery.start_soon(apply_later)
            await trio.testing.wait_all_tasks_blocked()
            order.append("lock released")
            assert sm.get("k3") is None  # not applied while the lock is held
            sm._write_lock.release()
        assert order == ["lock released", "applied"]
        assert sm.get("k4") == "v4" and (await sm.applied_state())[0] == LogId(1, 4)
        await sm.aclose()

    trio.run(main)


def test_applies_hand_nothing_to_the_commit_thread(tmp_path, monkeypatch):
    """The commit thread finds staged applies on its own timer: an apply wakes no thread
    (an Event set per apply cost a thread hand-off, and the interpreter lock taken by the
    woken thread, on the path of the write it answers). Counted: every notify of a
    threading.Condition (Event.set goes through one) during the applies."""
    async def main():
        sm = await LmdbKVStateMachine.open(tmp_path, commit_interval_s=0.01)
        notified = []
        real_notify = threading.Condition.notify

        def counting_notify(self, n=1):
            notified.append(threading.current_thread().name)
            return real_notify(self, n)

        with monkeypatch.context() as patched:
            patched.setattr(threading.Condition, "notify", counting_notify)
            for lo in range(1, 200, 4):  # across several ticks of the 10 ms timer
                await sm.apply(sets(lo, lo + 4))
                await trio.sleep(0.001)
        assert [name for name in notified if name == threading.current_thread().name] == []
        with trio.fail_after(30):  # and the timer still commits them: polled, never timed
            while sm.durable_applied != LogId(1, 200):
                await trio.sleep(0.01)
        await sm.aclose()

    trio.run(main)


def test_staged_applies_are_bounded(tmp_path):
    async def main():
        sm = await LmdbKVStateMachine.open(tmp_path, commit_interval_s=3600, max_staged_keys=10)
        for lo in range(1, 40, 3):
            await sm.apply(sets(lo, lo + 3))
            staged = lo + 2 - (0 if sm.durable_applied is None else sm.durable_applied.index)
            assert staged <= 10 + 3, staged  # at most the bound and one batch wait
        assert sm.durable_applied is not None
        await sm.aclose()

    trio.run(main)


def test_a_failed_background_commit_stops_the_applies(tmp_path):
    async def main():
        # a map that cannot grow: a big enough commit fails (a real lmdb MapFullError)
        sm = await LmdbKVStateMachine.open(tmp_path, commit_interval_s=3600,
                                           map_size_bytes=1 << 20, max_map_size_bytes=1 << 20)
        big = "x" * 4000
        await sm.apply([normal(1, i, encode_command(Set(f"k{i}", big))) for i in range(1, 400)])
        assert sm.get("k7") == big
        with pytest.raises(StorageError):
            await trio.to_thread.run_sync(sm._buffer.commit_now)
        assert sm.get("k7") == big  # reads stay right
        with pytest.raises(StorageError, match="background commit"):
            await sm.apply(sets(400, 401))
        await sm.aclose()
        sm = await LmdbKVStateMachine.open(tmp_path)
        assert (await sm.applied_state())[0] is None  # the failed commit left nothing
        await sm.aclose()

    trio.run(main)


def test_a_garbage_install_keeps_the_staged_applies(tmp_path):
    async def main():
        sm = await LmdbKVStateMachine.open(tmp_path, commit_interval_s=3600)
        await sm.apply(sets(1, 5))
        sink = await sm.begin_receiving_snapshot()
        sink.write(b"not a snapshot")
        snap_meta = (await MemoryKVStateMachine().build_snapshot()).meta
        with pytest.raises(Exception):
            await sm.install_snapshot(snap_meta, sink)
        assert (await sm.applied_state())[0] == LogId(1, 4) == sm.durable_applied
        assert sm.get("k4") == "v4"
        await sm.aclose()

    trio.run(main)


@pytest.mark.timeout(300)
def test_sigkill_leaves_the_state_of_some_applied_index(tmp_path):
    """Kill the applying child at random moments: on reopen the state equals a replay of the
    entries up to the applied index it reports (never a mix), that index is at least every
    one the child saw durable and at most what it applied; the next child goes on from it."""
    rng = random.Random(int(os.environ.get("FASTRAFT_CRASH_SEED", "20261207")))
    store = tmp_path / "sm"
    lost_applies = 0
    for rnd in range(ROUNDS):
        child = subprocess.Popen([sys.executable, str(CHILD), str(store), str(rnd)],
                                 stdout=subprocess.PIPE, text=True)
        lines: list[str] = []
        reader = threading.Thread(target=lambda: lines.extend(child.stdout), daemon=True)
        reader.start()
        deadline = time.monotonic() + 30
        while not any(line.startswith("D") for line in lines) and time.monotonic() < deadline:
            time.sleep(0.01)  # the first durable commit of this round
        time.sleep(rng.uniform(0.0, 0.3))
        os.kill(child.pid, signal.SIGKILL)
        child.wait(10)
        reader.join(10)
        applied_max = max([int(x.split()[1]) for x in lines if x[0] in "AR"], default=0)
        durable_min = max([int(x.split()[1]) for x in lines if x[0] in "DR"], default=0)

        async def check():
            sm = await LmdbKVStateMachine.open(store)
            try:
                got = await contents(sm)
            finally:
                await sm.aclose()
            index = 0 if got[0] is None else got[0].index
            assert durable_min <= index <= applied_max, (durable_min, index, applied_max)
            assert got == await replay(index), f"round {rnd}: state is not that of {index}"
            return applied_max - index

        lost_applies += trio.run(check)
    assert lost_applies > 0  # some kill did cost applies: the test saw the case it guards


def test_close_ends_when_it_races_the_background_commit():
    """close() sets its wake-up while the background thread waits for the commit lock (a
    snapshot's commit holds it); the thread's own commit must not clear that wake-up, or the
    thread waits for ever and close() never returns (regression)."""
    from fastraft.kv.apply_buffer import ApplyBuffer

    commits = []
    buf = ApplyBuffer(lambda changes, applied, membership: commits.append(applied),
                      commit_interval_s=0.01, max_staged_keys=1000, max_staged_bytes=1 << 20,
                      name="close-race")
    buf.apply(lambda get, put: put(b"k", b"v"), LogId(1, 1), lambda: None, lambda key: None)
    closer = threading.Thread(target=buf.close, daemon=True)
    with buf._commit_lock:  # as a commit_now() from another thread would
        time.sleep(0.3)  # not an assertion: lets the background thread reach the lock
        closer.start()
        for _ in range(1000):  # poll up to 10 s for close() to have signalled the thread
            if buf._stopping.is_set():
                break
            time.sleep(0.01)
        assert buf._stopping.is_set()
    closer.join(timeout=30)
    assert not closer.is_alive(), "close() hung: the background thread missed its wake-up"
    assert commits == [LogId(1, 1)] and buf.durable_applied == LogId(1, 1)


def test_a_snapshot_built_while_applies_go_on_is_the_state_of_its_own_index(tmp_path):
    """``concurrent_snapshot_builds``: the runtime applies while a build runs, so the build
    must copy one applied point, never a mix (Raft §7: a snapshot is the state at its last
    included index). Entries overwrite a small key space with values naming their index, so
    any mix of two points shows; the background commit runs every millisecond meanwhile."""
    assert LmdbKVStateMachine.concurrent_snapshot_builds

    def writes(lo, hi):  # entry i sets k(i mod 500) to v<i>
        return [normal(1, i, encode_command(Set(f"k{i % 500}", f"v{i}"))) for i in range(lo, hi)]

    async def main():
        sm = await LmdbKVStateMachine.open(tmp_path / "a", commit_interval_s=0.001)
        await sm.apply([normal(1, i, encode_command(Set(f"fill{i}", "x" * 100)))
                        for i in range(1, 20_001)])  # a state that takes a while to copy
        nxt, during = 20_001, 0
        built: list = []

        async def build():
            built.append(await sm.build_snapshot())

        async with trio.open_nursery() as nursery:
            nursery.start_soon(build)
            for _ in range(2000):  # bounded; ends when the build is done
                if built:
                    break
                await sm.apply(writes(nxt, nxt + 10))
                nxt += 10
                during += 1
                await trio.sleep(0.0005)  # real time: the build's and the commit's threads run
        snap = built[0]
        last = snap.meta.last_log_id.index
        assert during > 0 and 20_000 <= last < nxt, (during, last, nxt)
        other = await LmdbKVStateMachine.open(tmp_path / "b")
        sink = await other.begin_receiving_snapshot()
        sink.write(snap.data.read())
        snap.close()
        await other.install_snapshot(snap.meta, sink)
        ref = MemoryKVStateMachine()
        await ref.apply([normal(1, i, encode_command(Set(f"fill{i}", "x" * 100)))
                         for i in range(1, 20_001)])
        if last > 20_000:
            await ref.apply(writes(20_001, last + 1))
        assert (await contents(other))[1] == (await contents(ref))[1], f"not the state of {last}"
        await other.aclose()
        await sm.aclose()

    trio.run(main)
