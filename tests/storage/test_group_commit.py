"""The group-commit pipeline (fastraft.storage.group_commit): its writer thread lives and ends
with the store, batches run in submission order, and a failure fails the pipeline for good
(what was pending and what comes after fail with the same error; nothing after the failed
batch is written). The pipeline is driven here with a batch function of the test's own,
which records what it "writes" and fails or waits when told to; the stores' own use of it
runs in the conformance suite and the crash tests."""

import threading

import pytest
import trio
import trio.testing

from fastraft import Entry, StorageError
from fastraft.testing.helpers import open_durable_log_store
from fastraft.storage.group_commit import WritePipeline

WAIT_S = 30  # a generous bound on every wait for the writer thread


def entries(lo, hi):
    return [Entry(1, i, 1, b"v%d" % i) for i in range(lo, hi)]


def test_the_writer_thread_starts_with_the_first_write_and_ends_with_the_store(tmp_path):
    async def main():
        store = await open_durable_log_store("lmdb", tmp_path / "lmdb")
        assert store._pipeline._thread is None  # a store that never writes has no thread
        await store.append(entries(1, 4))
        thread = store._pipeline._thread
        assert thread is not None and thread.is_alive()
        await store.append(entries(4, 9))
        assert store._pipeline._thread is thread  # one thread for the store's life
        await store.aclose()
        assert not thread.is_alive()
        assert thread not in threading.enumerate()
        with pytest.raises(StorageError, match="closed"):
            await store.append(entries(9, 10))

    trio.run(main)


def test_the_rocksdb_store_writes_on_the_trio_thread_and_its_task_ends_with_it(tmp_path):
    """rocksdict holds the interpreter lock through a synced write, so the RocksDB store's
    batches run on the trio thread (group_commit.py): no thread, one task for the store's
    life, ended by aclose."""

    async def main():
        threads = set(threading.enumerate())
        store = await open_durable_log_store("rocksdb", tmp_path / "rocksdb")
        pipe = store._pipeline
        assert pipe._task is None
        await store.append(entries(1, 4))
        task = pipe._task
        assert task is not None and pipe._thread is None
        await store.append(entries(4, 9))
        assert pipe._task is task
        assert set(threading.enumerate()) <= threads  # no writer thread came
        await store.aclose()
        assert pipe._task_ended.is_set()
        with pytest.raises(StorageError, match="closed"):
            await store.append(entries(9, 10))

    trio.run(main)


class Recorder:
    """A batch function: records each batch; holds a batch with an op whose name starts
    with "hold" until ``release`` is set; fails a batch with an op whose name ends with
    "bad" (after holding it)."""

    def __init__(self):
        self.batches: list[list[str]] = []
        self.holding = threading.Event()
        self.release = threading.Event()

    def run_batch(self, ops):
        if any(op.startswith("hold") for op in ops):
            self.holding.set()
            assert self.release.wait(WAIT_S)
        if any(op.endswith("bad") for op in ops):
            raise OSError("the disk said no")
        self.batches.append(list(ops))
        return [f"wrote {op}" for op in ops]


def test_batches_run_in_order_and_each_op_gets_its_result():
    async def main():
        rec = Recorder()
        seen = []
        pipe = WritePipeline("test", rec.run_batch, lambda ops, results: seen.extend(ops))
        got = []
        pipe.submit("hold", lambda e, r: got.append((e, r)))
        with trio.fail_after(WAIT_S):
            await trio.to_thread.run_sync(rec.holding.wait)
        for name in ("a", "b", "c"):  # queued while the first batch is held
            pipe.submit(name, lambda e, r: got.append((e, r)))
        assert pipe.queued_ops() == ["hold", "a", "b", "c"]
        rec.release.set()
        with trio.fail_after(WAIT_S):
            await pipe.wait_idle()
        assert rec.batches == [["hold"], ["a", "b", "c"]]  # the three shared one batch
        assert seen == ["hold", "a", "b", "c"]
        assert got == [(None, f"wrote {n}") for n in ("hold", "a", "b", "c")]
        await pipe.aclose()

    trio.run(main)


def test_a_failed_batch_fails_what_is_pending_and_everything_after_and_writes_no_more():
    async def main():
        rec = Recorder()
        pipe = WritePipeline("test", rec.run_batch, lambda ops, results: None)
        assert await pipe.run("a") == "wrote a"
        got = {}
        pipe.submit("hold-bad", lambda e, r: got.setdefault("hold-bad", e))
        with trio.fail_after(WAIT_S):
            await trio.to_thread.run_sync(rec.holding.wait)
        pipe.submit("c", lambda e, r: got.setdefault("c", e))  # queued behind it
        pipe.submit("d", lambda e, r: got.setdefault("d", e))
        rec.release.set()  # the held batch fails
        with trio.fail_after(WAIT_S):
            await pipe.wait_idle()
        error = got["hold-bad"]
        assert isinstance(error, OSError) and got == {"hold-bad": error, "c": error, "d": error}
        assert pipe.failure is error
        with pytest.raises(StorageError, match="earlier write failed"):
            pipe.submit("d", lambda e, r: None)
        with pytest.raises(StorageError, match="earlier write failed"):
            await pipe.run("e")
        thread = pipe._thread
        await pipe.aclose()
        assert not thread.is_alive()
        assert rec.batches == [["a"]]  # "c" and "d", queued behind the failure, never written

    trio.run(main)


def test_a_failure_of_the_stores_bookkeeping_fails_the_pipeline_for_good():
    async def main():
        rec = Recorder()

        def on_committed(ops, results):
            if "boom" in ops:
                raise RuntimeError("bookkeeping broke")

        pipe = WritePipeline("test", rec.run_batch, on_committed)
        got = {}
        pipe.submit("boom", lambda e, r: got.setdefault("boom", e))
        pipe.submit("after", lambda e, r: got.setdefault("after", e))
        with trio.fail_after(WAIT_S):
            await pipe.wait_idle()
        assert isinstance(got["boom"], RuntimeError)
        assert got["after"] is got["boom"]  # in the same batch or a later one: failed alike
        with pytest.raises(StorageError, match="earlier write failed"):
            pipe.submit("later", lambda e, r: None)
        await pipe.aclose()
        assert all("later" not in batch for batch in rec.batches)

    trio.run(main)


def test_coalesced_reports_one_per_batch_and_never_across_an_uncoalesced_op():
    """Ops submitted with ``coalesce`` are reported once per batch, by the last of a run of
    them (its report stands for the earlier ones); an op without it, and the coalesced op just
    before it, are still reported, in order; a failure reaches every op."""

    async def main():
        rec = Recorder()
        pipe = WritePipeline("test", rec.run_batch, lambda ops, results: None)
        got = []

        def report(name):
            return lambda e, r: got.append((name, e))

        pipe.submit("hold", report("hold"), True)
        with trio.fail_after(WAIT_S):
            await trio.to_thread.run_sync(rec.holding.wait)
        for name in ("a", "b", "c"):
            pipe.submit(name, report(name), True)
        pipe.submit("vote", report("vote"))  # not coalesced: a vote's waiter needs its own
        for name in ("d", "e"):
            pipe.submit(name, report(name), True)
        rec.release.set()
        with trio.fail_after(WAIT_S):
            await pipe.wait_idle()
        assert rec.batches == [["hold"], ["a", "b", "c", "vote", "d", "e"]]
        assert got == [("hold", None), ("c", None), ("vote", None), ("e", None)]

        await pipe.aclose()

        rec = Recorder()
        pipe = WritePipeline("test", rec.run_batch, lambda ops, results: None)
        got.clear()
        pipe.submit("hold-bad", report("hold-bad"), True)
        with trio.fail_after(WAIT_S):
            await trio.to_thread.run_sync(rec.holding.wait)
        pipe.submit("f", report("f"), True)
        pipe.submit("g", report("g"), True)
        rec.release.set()
        with trio.fail_after(WAIT_S):
            await pipe.wait_idle()
        assert [name for name, _ in got] == ["hold-bad", "f", "g"]
        assert all(isinstance(e, OSError) for _, e in got)
        await pipe.aclose()

    trio.run(main)


# -- writer="trio": the batches on the trio thread ------------------------------------------


def test_on_trio_what_is_submitted_before_the_writer_runs_is_one_batch_and_order_holds():
    """Ops submitted in one go form one batch; ops submitted while a batch is reported (from
    its callbacks) or by another task meanwhile form the next; results come in order."""

    async def main():
        rec = Recorder()
        pipe = WritePipeline("test", rec.run_batch, lambda ops, results: None, writer="trio")
        got = []

        def report(name):
            def done(e, r):
                got.append((name, e, r))
                if name == "b":  # a callback that writes again, as the flush round does
                    pipe.submit("d", report("d"))
            return done

        for name in ("a", "b", "c"):
            pipe.submit(name, report(name))
        assert rec.batches == []  # nothing written inside submit: the caller's round goes on
        with trio.fail_after(WAIT_S):
            await pipe.wait_idle()
        assert rec.batches == [["a", "b", "c"], ["d"]]
        assert got == [(n, None, f"wrote {n}") for n in ("a", "b", "c", "d")]
        assert pipe._thread is None
        assert await pipe.run("e") == "wrote e"  # the parked writer wakes for a later write
        await pipe.aclose()
        assert pipe._task_ended.is_set()
        with pytest.raises(StorageError, match="closed"):
            pipe.submit("f", report("f"))

    trio.run(main)


def test_on_trio_other_tasks_run_between_two_batches():
    """The writer yields after each batch: a task woken by a report gets to run (and may
    submit) before a chain of writes, each submitted by the report of the one before (as a
    flush round appends again), has ended, so a busy store does not starve the node's loop.
    (trio runs the tasks of one scheduler pass in either order, so the other task runs within
    the first few batches, not at a fixed one; 2**-40 is the chance of it waiting for all.)"""

    async def main():
        rec = Recorder()
        pipe = WritePipeline("test", rec.run_batch, lambda ops, results: None, writer="trio")
        chain = 40
        written = []
        seen_at = []
        first_done = trio.Event()

        def next_link(e, r):
            written.append(r)
            first_done.set()
            if len(written) < chain:
                pipe.submit(f"link{len(written)}", next_link)

        async def other():
            await first_done.wait()
            seen_at.append(len(written))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(other)
            await trio.testing.wait_all_tasks_blocked()
            pipe.submit("link0", next_link)
            with trio.fail_after(WAIT_S):
                await pipe.wait_idle()
        assert len(written) == chain
        assert seen_at and seen_at[0] < chain  # it ran while the chain was being written
        assert [b[0] for b in rec.batches] == [f"link{i}" for i in range(chain)]
        await pipe.aclose()

    trio.run(main)


def test_on_trio_a_failed_batch_fails_what_is_pending_and_the_writer_ends():
    async def main():
        rec = Recorder()
        pipe = WritePipeline("test", rec.run_batch, lambda ops, results: None, writer="trio")
        assert await pipe.run("a") == "wrote a"
        got = {}
        pipe.submit("bad", lambda e, r: got.setdefault("bad", e))
        pipe.submit("c", lambda e, r: got.setdefault("c", e))  # same batch: failed with it
        with trio.fail_after(WAIT_S):
            await pipe.wait_idle()
        error = got["bad"]
        assert isinstance(error, OSError) and got == {"bad": error, "c": error}
        with trio.fail_after(WAIT_S):
            await pipe._task_ended.wait()  # the writer ended with the failure
        with pytest.raises(StorageError, match="earlier write failed"):
            pipe.submit("d", lambda e, r: None)
        await pipe.aclose()
        assert rec.batches == [["a"]]

    trio.run(main)


def test_on_trio_the_writer_ends_with_the_run_when_the_pipeline_is_not_closed():
    ended = []

    async def main():
        pipe = WritePipeline("test", Recorder().run_batch, lambda ops, results: None,
                             writer="trio")
        assert await pipe.run("a") == "wrote a"
        ended.append(pipe._task_ended)  # parked when main returns: cancelled with the run

    trio.run(main)
    assert ended[0].is_set()


def test_writer_kind_is_checked():
    with pytest.raises(ValueError, match="writer"):
        WritePipeline("test", Recorder().run_batch, lambda ops, results: None, writer="fiber")
