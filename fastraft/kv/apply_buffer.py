"""The lmdb KV state machine's write-behind buffer: applies land in memory at once, and a
background thread commits them to lmdb, with their applied index, in one synced transaction
every ``commit_interval_s`` (sooner once ``max_staged_keys`` keys or ``max_staged_bytes``
bytes wait), on a timer of its own: an apply signals nothing, so no thread hand-off is on the
path of the write it answers.

Why: a synced lmdb commit costs two ordered syncs (data pages, then the meta page), and one
per apply put both on the path of every client write. The log is the durable record of every
committed entry, and a state machine's ``last_applied`` is volatile state in Raft (Figure 2),
so the state machine need not be durable at each apply: like etcd's backend (committed in the
background every 100 ms; a restart replays the WAL past its consistent index), a crash rolls
this state machine back to its last commit, and the node applies the committed entries after
it again (``fastraft.storage.protocols.StateMachine``).

Why not lmdb's own flags: ``MDB_NOSYNC`` keeps the database whole only on a file system that
preserves the order of writes (lmdb's documentation: otherwise a system crash can corrupt
the database), which the page cache does not promise; ``MDB_NOMETASYNC`` keeps it whole but
still pays one data sync per commit on the write's path. Here every commit is lmdb's full
synced commit, so its integrity guarantee is unchanged; only how often commits happen is.

Layers, newest first: ``staged`` (applied since the last commit began), ``flushing`` (being
committed now), lmdb's committed state. A read takes the first layer holding the key.

Invariant: a commit holds the changes of whole apply batches and the applied index of the
last of them, in one transaction: a crash leaves the state of some applied index, never a
mix (Raft §5.3: each entry applied exactly once).
Invariant: ``flushing`` is emptied only after its commit returned, under ``_lock``, so no
read ever misses a change that is neither in a layer nor committed.
"""

from __future__ import annotations

import threading
from typing import Callable, TypeVar

from ..errors import StorageError
from ..types import LogId, StoredMembership

__all__ = ["ApplyBuffer", "CommitFn"]

T = TypeVar("T")
#: Commits (changes, applied, membership or None if unchanged) in one synced transaction;
#: a change's value None removes the key.
CommitFn = Callable[[dict, LogId, "StoredMembership | None"], None]
_Reader = Callable[[bytes], "bytes | None"]


class ApplyBuffer:
    """Staged applies and the thread that commits them; see the module docstring."""

    def __init__(self, commit: CommitFn, *, commit_interval_s: float, max_staged_keys: int,
                 max_staged_bytes: int, name: str) -> None:
        if commit_interval_s <= 0 or max_staged_keys < 1 or max_staged_bytes < 1:
            raise ValueError("commit_interval_s, max_staged_keys and max_staged_bytes must "
                             "be positive")
        self._commit = commit
        self._interval_s = commit_interval_s
        self._max_keys = max_staged_keys
        self._max_bytes = max_staged_bytes
        self._lock = threading.Lock()  # guards the layers; held only for memory work and reads
        self._commit_lock = threading.Lock()  # one commit at a time, in order
        self._staged: dict[bytes, bytes | None] = {}
        self._staged_bytes = 0
        self._staged_applied: LogId | None = None  # None: nothing staged
        self._staged_membership: StoredMembership | None = None
        self._flushing: dict[bytes, bytes | None] = {}
        self._failed: BaseException | None = None
        self._stopping = threading.Event()
        #: The last applied index known committed to lmdb by this buffer (None: none yet).
        self.durable_applied: LogId | None = None
        self._thread = threading.Thread(target=self._run, name=f"fastraft-sm-commit {name}",
                                        daemon=True)
        self._thread.start()

    # -- the trio thread's side -------------------------------------------------------------

    def read(self, key: bytes, read_committed: _Reader) -> bytes | None:
        """The value of ``key`` in the applied state (``read_committed`` reads lmdb)."""
        with self._lock:
            for layer in (self._staged, self._flushing):
                if key in layer:
                    return layer[key]
            return read_committed(key)

    def apply(self, run: Callable[[_Reader, Callable[[bytes, "bytes | None"], None]], T],
              applied: LogId, membership: Callable[[], "StoredMembership | None"],
              read_committed: _Reader) -> T:
        """Stage one apply batch: ``run(get, put)`` computes it (``put(key, None)`` removes a
        key); if it raises, nothing is staged. ``membership()`` (called after ``run``) is
        the batch's new membership, or None if it did not change one."""
        with self._lock:
            self._raise_if_failed()
            staged, flushing = self._staged, self._flushing
            batch: dict[bytes, bytes | None] = {}

            def get(key: bytes) -> bytes | None:
                for layer in (batch, staged, flushing):
                    if key in layer:
                        return layer[key]
                return read_committed(key)

            result = run(get, batch.__setitem__)
            changed = membership()
            staged.update(batch)
            self._staged_bytes += sum(len(k) + len(v or b"") for k, v in batch.items())
            self._staged_applied = applied
            if changed is not None:
                self._staged_membership = changed
        # Nothing is signalled: the commit thread finds the staged applies on its timer.
        # Waking it here would put a thread hand-off (an Event's condition, and the woken
        # thread taking the interpreter lock) on the path of the write this apply answers.
        return result

    def full(self) -> bool:
        """True when the staged applies reached a bound: commit them (``commit_now``, in a
        worker thread) before staging more."""
        return len(self._staged) >= self._max_keys or self._staged_bytes >= self._max_bytes

    # -- commits (any thread but the trio thread: they wait for a sync) ----------------------

    def commit_now(self) -> None:
        """Commit everything staged so far (blocking; the background thread does the same on
        its timer). StorageError if this or an earlier commit failed."""
        with self._commit_lock:
            with self._lock:
                self._raise_if_failed()
                if self._staged_applied is None:
                    return
                changes = self._flushing = self._staged
                applied, membership = self._staged_applied, self._staged_membership
                self._staged, self._staged_bytes = {}, 0
                self._staged_applied = self._staged_membership = None
            try:
                self._commit(changes, applied, membership)
            except BaseException as e:
                with self._lock:  # the layers stay: reads remain right, applies refuse
                    self._failed = e
                raise
            with self._lock:
                self._flushing = {}
                self.durable_applied = applied

    def close(self) -> None:
        """Stop the background thread and commit what is staged (blocking). Idempotent."""
        self._stopping.set()
        self._thread.join()
        self.commit_now()

    def _run(self) -> None:
        # A tick every interval, as etcd's backend commits: what was staged meanwhile is
        # committed (nothing staged: nothing written). An idle node's thread wakes once an
        # interval and goes back to sleep; under load a tick is the thread's only wake-up.
        # close() sets _stopping, which ends the wait at once, also one begun after it.
        while not self._stopping.wait(self._interval_s):  # ends when close() sets it
            try:
                self.commit_now()
            except BaseException:  # noqa: BLE001 - remembered in _failed: applies refuse
                return

    def _raise_if_failed(self) -> None:
        if self._failed is not None:
            raise StorageError(f"a background commit of the state machine failed: "
                               f"{self._failed}; applies since the last commit are not "
                               "durable, and this state machine applies nothing more")
