"""What a node reports about itself: an immutable snapshot (``RaftMetrics``) and a way to
wait until the snapshot satisfies a condition (``Wait``), in the shape of openraft's
``RaftMetrics`` and ``Raft::wait``.

    m = raft.metrics()                       # a frozen snapshot, taken now
    await raft.wait(timeout_s=5).applied_index(42)
    await raft.wait(5).current_leader(1)
    await raft.wait(5).state(ServerState.LEADER)
    await raft.wait(5).metrics(lambda m: m.committed >= 10, "commit 10")

A wait that does not see its condition in time raises ``WaitTimeout`` naming what it waited
for and carrying the last snapshot it saw; one on a node that shuts down raises
``RaftShutdown``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Callable, Iterable, Mapping

import trio

from ..errors import FastraftError, RaftShutdown
from ..types import LogId, StoredMembership, Vote

__all__ = ["ServerState", "RaftMetrics", "MetricsWatch", "Wait", "WaitTimeout"]


class ServerState(enum.Enum):
    """The role a node plays (Raft §5.1, plus learners of §6 and thesis §4.2.1)."""

    LEARNER = "learner"
    FOLLOWER = "follower"
    CANDIDATE = "candidate"
    LEADER = "leader"
    SHUTDOWN = "shutdown"


@dataclass(frozen=True, slots=True)
class RaftMetrics:
    """A node's state at one moment. Log ids are None where nothing exists yet.

    ``committed`` is the commit index as this node knows it. ``replication`` maps each peer
    the leader replicates to (voters and learners, not itself) to the last index known to
    match on that peer; it is empty unless ``state`` is LEADER.

    ``dropped_messages`` counts the peers' messages the engine dropped unhandled, by reason
    (``fastraft.core.guard``: malformed, from a non-member, a vote request from a non-voter,
    TimeoutNow not from the leader). ``committed_conflicts`` counts AppendEntries refused
    because they would rewrite this node's committed log; once it is non-zero,
    ``log_diverged`` is True for the life of the process: the cluster's logs disagree on
    committed entries and this node cannot follow its leader (a health check reports it).
    """

    id: int
    state: ServerState
    current_term: int
    vote: Vote
    last_log_index: int
    last_applied: LogId | None
    committed: int
    snapshot: LogId | None
    purged: LogId | None
    current_leader: int | None
    membership: StoredMembership
    replication: Mapping[int, int] = field(default_factory=dict)
    dropped_messages: Mapping[str, int] = field(default_factory=dict)
    committed_conflicts: int = 0

    @property
    def log_diverged(self) -> bool:
        return self.committed_conflicts > 0

    @property
    def applied_index(self) -> int:
        return 0 if self.last_applied is None else self.last_applied.index

    @property
    def is_leader(self) -> bool:
        return self.state is ServerState.LEADER


class WaitTimeout(FastraftError, TimeoutError):
    """A wait did not see its condition in time. ``what`` names the condition and
    ``metrics`` is the last snapshot seen."""

    def __init__(self, what: str, timeout_s: float, metrics: RaftMetrics) -> None:
        self.what = what
        self.metrics = metrics
        super().__init__(f"timed out after {timeout_s} s waiting for {what}; last metrics: {metrics}")


class MetricsWatch:
    """Lets tasks wait for the node's metrics to change.

    The runtime calls ``notify()`` after every change it makes (cheap: it only wakes the
    waiters there are); snapshots are built on demand by ``take`` (given by the runtime),
    so a node nobody watches pays nothing per change.
    """

    def __init__(self, take: Callable[[], RaftMetrics]) -> None:
        self.take = take
        self._changed = trio.Event()
        self._closed = False

    def notify(self) -> None:
        """Something changed: wake every waiter (each re-checks its condition)."""
        if self._changed.statistics().tasks_waiting:
            self._changed.set()
            self._changed = trio.Event()

    def close(self) -> None:
        """The node shut down: wake every waiter for the last time."""
        self._closed = True
        self._changed.set()

    @property
    def closed(self) -> bool:
        return self._closed

    async def wait_until(self, predicate: Callable[[RaftMetrics], bool], what: str,
                         timeout_s: float) -> RaftMetrics:
        """Return the first snapshot for which ``predicate`` holds, checked now and after
        each change, within ``timeout_s`` (WaitTimeout after, RaftShutdown if the node
        stops first)."""
        m = self.take()
        with trio.move_on_after(timeout_s):
            while True:  # one round per change of the node; ends by deadline or shutdown
                if predicate(m):
                    return m
                if self._closed:
                    raise RaftShutdown(f"the node shut down while waiting for {what}")
                await self._changed.wait()
                m = self.take()
        raise WaitTimeout(what, timeout_s, m)


class Wait:
    """Conditions to wait for, each within ``timeout_s`` (from ``Raft.wait``)."""

    def __init__(self, watch: MetricsWatch, timeout_s: float) -> None:
        self._watch = watch
        self.timeout_s = timeout_s

    async def metrics(self, predicate: Callable[[RaftMetrics], bool], what: str) -> RaftMetrics:
        """Until ``predicate(metrics)`` holds; ``what`` describes it in a timeout."""
        return await self._watch.wait_until(predicate, what, self.timeout_s)

    async def applied_index(self, index: int) -> RaftMetrics:
        """Until every entry up to ``index`` has been applied on this node."""
        return await self.metrics(lambda m: m.applied_index >= index, f"applied index >= {index}")

    async def log_index(self, index: int) -> RaftMetrics:
        """Until this node's log reaches ``index``."""
        return await self.metrics(lambda m: m.last_log_index >= index, f"last log index >= {index}")

    async def current_leader(self, leader_id: int | None) -> RaftMetrics:
        """Until this node knows ``leader_id`` as the leader."""
        return await self.metrics(lambda m: m.current_leader == leader_id, f"leader == {leader_id}")

    async def state(self, state: ServerState) -> RaftMetrics:
        """Until this node plays ``state``."""
        return await self.metrics(lambda m: m.state is state, f"state == {state.value}")

    async def snapshot(self, index: int) -> RaftMetrics:
        """Until this node holds a snapshot covering at least ``index``."""
        return await self.metrics(lambda m: m.snapshot is not None and m.snapshot.index >= index,
                                  f"snapshot covering index {index}")

    async def purged(self, index: int) -> RaftMetrics:
        """Until this node's log is purged at least up to ``index``."""
        return await self.metrics(lambda m: m.purged is not None and m.purged.index >= index,
                                  f"log purged up to {index}")

    async def voter_ids(self, ids: Iterable[int]) -> RaftMetrics:
        """Until this node's effective membership has exactly the voters ``ids`` (uniform)."""
        want = frozenset(ids)
        return await self.metrics(
            lambda m: m.membership.membership.configs == (want,), f"voters == {sorted(want)}")
