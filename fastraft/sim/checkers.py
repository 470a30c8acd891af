"""Raft's safety properties, checked by the simulator after every step (Raft §5.2-§5.4,
Figure 3), plus the storage promises a node makes to its peers.

``SafetyChecker`` keeps what the properties need across steps and raises ``Violation(kind,
detail)`` on the first one that fails. It is the one safety checker of the project: the
simulator runs it over its nodes (``check``), and the engine's own tests over bare engines
(``check_engines``: the same properties but those that need a node's disk). Kinds (``KINDS``):

* ``election-safety``: at most one leader per term (Raft §5.2);
* ``log-matching``: two logs that hold an entry with the same index and term hold the same
  entry there (payload included) and agree on every entry before it (Raft §5.3);
* ``leader-completeness``: a leader of term T holds every entry committed in a term before T
  (Raft §5.4.1), checked when it is first seen and whenever the commit frontier moves;
* ``state-machine-safety``: no two nodes apply different entries (or reach different states)
  at one index, every node's committed entries agree, and nothing uncommitted is applied
  (Raft §5.4.3);
* ``commit-rule``: a leader moves its commit index only onto an entry of its own term; older
  entries commit with it, never by counting replicas (Raft §5.4.2, the Figure 8 trap);
* ``commit-regressed`` / ``applied-regressed``: within one run of an engine its commit index
  and applied index never go back, and applied <= committed;
* ``vote-regressed``: a node's durable vote never goes back: (term, committed) only grows and
  within one term the voted-for node changes only from 0 (Raft Figure 2), across crashes; and
  a node's term is never below the last term of its log;
* ``durable-before-send``: a message leaves only once the state it depends on is durable (a
  granted vote, the sender's term, the entries a follower acknowledges); and an engine never
  counts as durable (``flushed``) more log than it holds, or it would acknowledge entries it
  lacks;
* ``committed-truncated``: no log write removes a committed entry while its node is in the
  term that committed it or a later one (an older term's leader may rightly truncate it);
* ``command-contract``: the engine asked storage for something its command contract forbids;
* ``engine-error``: an engine input raised an exception it does not document;
* ``codec``: a corrupted message made the decoder raise something other than CodecError;
* ``linearizability``, ``lost-write``, ``liveness``: end-of-run checks (see simulation.py);
* ``message-storm``: a node sends faster than any workload explains (see storm.py).

A check listed in ``disabled`` is skipped, so a test can show that another checker catches the
same planted bug on its own.
"""

from __future__ import annotations

from bisect import bisect_right

from fastraft.core import Role
from fastraft.types import Vote

__all__ = ["KINDS", "Violation", "SafetyChecker", "compare_runs"]

KINDS = ("election-safety", "log-matching", "leader-completeness", "state-machine-safety",
         "commit-rule", "commit-regressed", "applied-regressed", "vote-regressed",
         "durable-before-send", "committed-truncated", "command-contract", "engine-error",
         "codec", "linearizability", "lost-write", "liveness", "message-storm")


class Violation(Exception):
    """A safety or liveness property failed; ``kind`` is one of ``KINDS``."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind = kind
        self.detail = detail


def _segments(runs: list, last: int, lo: int, hi: int) -> list[tuple[int, int, int]]:
    """(first, last, term) pieces of a run list [(start, term), ...] ending at ``last``,
    clipped to [lo, hi] (inclusive)."""
    out = []
    n = len(runs)
    k = max(bisect_right(runs, (lo, float("inf"))) - 1, 0)
    while k < n:
        start, term = runs[k]
        if start > hi:
            break
        end = runs[k + 1][0] - 1 if k + 1 < n else last
        a, b = max(start, lo), min(end, hi)
        if a <= b:
            out.append((a, b, term))
        k += 1
    return out


def compare_runs(ra: list, la: int, rb: list, lb: int, lo: int, hi: int) -> tuple[int, int]:
    """Compare two logs given as term runs over [lo, hi] (inclusive): (first index where their
    terms differ or 0, last index where they agree or 0)."""
    sa, sb = _segments(ra, la, lo, hi), _segments(rb, lb, lo, hi)
    i = j = 0
    first_diff = 0
    last_same = 0
    while i < len(sa) and j < len(sb):
        a0, a1, ta = sa[i]
        b0, b1, tb = sb[j]
        s, e = max(a0, b0), min(a1, b1)
        if s <= e:
            if ta != tb:
                if not first_diff:
                    first_diff = s
            else:
                last_same = e
        if a1 < b1:
            i += 1
        else:
            j += 1
    return first_diff, last_same


class _CommittedLog:
    """The committed log as term runs over (base, last], with the term in which each part was
    first seen committed (``commit_terms``: (last_index, term) pairs, index increasing)."""

    __slots__ = ("base", "last", "runs", "commit_terms")

    def __init__(self) -> None:
        self.base = 0
        self.last = 0
        self.runs: list[tuple[int, int]] = []
        self.commit_terms: list[tuple[int, int]] = []

    def term_at(self, index: int) -> int | None:
        if not self.base < index <= self.last:
            return None
        return self.runs[bisect_right(self.runs, (index, float("inf"))) - 1][1]

    def extend(self, segments: list, commit_term: int) -> None:
        for a, b, term in segments:
            if self.runs and self.runs[-1][1] == term:
                pass
            else:
                self.runs.append((a, term))
            self.last = b
        if self.commit_terms and self.commit_terms[-1][1] == commit_term:
            self.commit_terms[-1] = (self.last, commit_term)
        else:
            self.commit_terms.append((self.last, commit_term))

    def restart_at(self, base: int) -> None:
        self.base = self.last = base
        self.runs = []
        self.commit_terms = []

    def commit_term_at(self, index: int) -> int | None:
        """The term in which ``index`` was first seen committed (None outside (base, last])."""
        if not self.base < index <= self.last:
            return None
        for last, t in self.commit_terms:
            if index <= last:
                return t
        return None

    def committed_before(self, term: int) -> int:
        """The last index committed in a term before ``term`` (0 if none)."""
        for last, t in reversed(self.commit_terms):
            if t < term:
                return last
        return 0


class _BareNode:
    """An engine checked without a simulator node around it: no disk to compare its vote
    with, no log version (its log is compared with every other one at every check)."""

    __slots__ = ("engine",)
    disk = None
    log_version = None

    def __init__(self, engine) -> None:
        self.engine = engine


class SafetyChecker:
    """See the module docstring. The simulator calls ``check(nodes, dirty)`` after every step
    with the nodes that are up and the ids of those the step touched; a test that drives bare
    engines calls ``check_engines(engines)``."""

    def __init__(self, disabled: frozenset[str] = frozenset()) -> None:
        self.disabled = frozenset(disabled)
        self.leaders: dict[int, int] = {}
        self.committed = _CommittedLog()
        self.applied: dict[int, tuple] = {}  # index -> (term, kind, payload, digest)
        self.contents: dict[tuple[int, int], bytes] = {}  # (index, term) -> payload
        self._commit_seen: dict[int, int] = {}
        self._applied_seen: dict[int, int] = {}
        self._durable_votes: dict[int, Vote] = {}
        self._pair_seen: dict[tuple[int, int], tuple] = {}
        self.checks = 0

    def fail(self, kind: str, detail: str) -> None:
        if kind not in self.disabled:
            raise Violation(kind, detail)

    def forget(self, node_id: int) -> None:
        """``node_id`` restarted: its engine starts again from what was durable."""
        self._commit_seen.pop(node_id, None)
        self._applied_seen.pop(node_id, None)

    # -- after every step ------------------------------------------------------------------------

    def check_engines(self, engines) -> None:
        """Check engines that are up (``id``, ``role``, ``term``, ``committed``, ``applied``,
        ``flushed`` and ``log`` are read), all of them as touched by the last step."""
        nodes = {e.id: _BareNode(e) for e in engines}
        self.check(nodes, set(nodes))

    def check(self, nodes: dict, dirty: set) -> None:
        self.checks += 1
        frontier = self.committed.last
        for i in sorted(dirty):
            n = nodes.get(i)
            if n is not None:
                self._check_node(n)
        for i in sorted(dirty):
            n = nodes.get(i)
            if n is not None:
                self._extend_committed(n)
        if self.committed.last != frontier:
            for n in nodes.values():
                if n.engine.role == Role.LEADER:
                    self._check_leader_completeness(n)
        ids = sorted(nodes)
        for i in sorted(dirty):
            if i not in nodes:
                continue
            for j in ids:
                if j != i:
                    self._check_pair(nodes[min(i, j)], nodes[max(i, j)])

    def _check_node(self, n) -> None:
        e = n.engine
        if e.role == Role.LEADER:
            first = e.term not in self.leaders
            other = self.leaders.setdefault(e.term, e.id)
            if other != e.id:
                self.fail("election-safety", f"nodes {other} and {e.id} both lead term {e.term}")
            if first:
                self._check_leader_completeness(n)
        seen = self._commit_seen.get(e.id, 0)
        if e.committed < seen:
            self.fail("commit-regressed", f"node {e.id} commit index {seen} -> {e.committed}")
        if e.committed > seen and e.role == Role.LEADER:
            log = e.log
            if log.purged_index < e.committed <= log.last_index and \
                    log.term_at(e.committed) != e.term:
                self.fail("commit-rule", f"leader {e.id} of term {e.term} committed up to "
                          f"{e.committed}, an entry of term {log.term_at(e.committed)}")
        self._commit_seen[e.id] = e.committed
        seen = self._applied_seen.get(e.id, 0)
        if e.applied < seen:
            self.fail("applied-regressed", f"node {e.id} applied index {seen} -> {e.applied}")
        self._applied_seen[e.id] = e.applied
        if e.applied > e.committed:
            self.fail("applied-regressed", f"node {e.id} applied {e.applied} beyond its commit "
                      f"index {e.committed}")
        if e.flushed > e.log.last_index:
            self.fail("durable-before-send", f"node {e.id} counts {e.flushed} durable beyond "
                      f"its log's end {e.log.last_index}")
        if n.disk is not None and e.term < n.disk.durable_vote.term:
            self.fail("vote-regressed", f"node {e.id} is in term {e.term} below its durable "
                      f"term {n.disk.durable_vote.term}")
        if e.log.last_term > e.term:
            # every entry of term T comes from T's leader, so its holder knew term T; a node
            # whose log outruns its term lost a vote its log or snapshot already depended on
            self.fail("vote-regressed", f"node {e.id} holds an entry of term {e.log.last_term} "
                      f"while in term {e.term}")

    def _extend_committed(self, n) -> None:
        e, g = n.engine, self.committed
        log = e.log
        lo, hi = log.purged_index + 1, min(e.committed, log.last_index)
        if hi < lo:
            return
        runs = log.term_runs()
        a, b = max(lo, g.base + 1), min(hi, g.last)
        if a <= b:
            d, _ = compare_runs(runs, log.last_index, g.runs, g.last, a, b)
            if d:
                self.fail("state-machine-safety", f"node {e.id} committed term "
                          f"{log.term_at(d)} at {d}, the cluster committed term {g.term_at(d)}")
        if hi > g.last:
            if lo > g.last + 1:
                g.restart_at(lo - 1)  # only a snapshot covers the part in between
            g.extend(_segments(runs, log.last_index, max(lo, g.last + 1), hi), e.term)

    def _check_leader_completeness(self, n) -> None:
        e, g = n.engine, self.committed
        upto = g.committed_before(e.term)
        if upto <= g.base:
            return
        log = e.log
        if upto > log.last_index:
            self.fail("leader-completeness", f"leader {e.id} of term {e.term} ends at "
                      f"{log.last_index}; entries up to {upto} were committed before its term")
        lo = max(log.purged_index, g.base) + 1
        if lo <= upto:
            d, _ = compare_runs(log.term_runs(), log.last_index, g.runs, g.last, lo, upto)
            if d:
                self.fail("leader-completeness", f"leader {e.id} of term {e.term} holds term "
                          f"{log.term_at(d)} at {d}, committed before its term as term "
                          f"{g.term_at(d)}")

    def _check_pair(self, a, b) -> None:
        key = (a.engine.id, b.engine.id)
        versions = (a.log_version, b.log_version)
        if None not in versions:
            if self._pair_seen.get(key) == versions:
                return
            self._pair_seen[key] = versions
        la, lb = a.engine.log, b.engine.log
        lo = max(la.purged_index, lb.purged_index) + 1
        hi = min(la.last_index, lb.last_index)
        if lo > hi:
            return
        d, same = compare_runs(la.term_runs(), la.last_index, lb.term_runs(), lb.last_index,
                               lo, hi)
        if d and same > d:
            self.fail("log-matching", f"nodes {a.engine.id} and {b.engine.id} agree on the term "
                      f"at {same} but differ at {d}")

    # -- hooks called by the nodes ---------------------------------------------------------------

    def on_appended(self, node_id: int, entries: list) -> None:
        """Log matching on content: one payload per (index, term) in every log."""
        contents = self.contents
        for en in entries:
            key = (en.index, en.term)
            other = contents.setdefault(key, en.payload)
            if other != en.payload:
                self.fail("log-matching", f"node {node_id} holds a different entry at "
                          f"{en.term}/{en.index} than another node")

    def on_truncate(self, node_id: int, since: int, log, covered: int, term: int) -> None:
        """A log write by a node in ``term`` removes [since, ...). A violation if that removes
        a committed entry while the node is in the term that committed it or a later one:
        every leader of that term or a later one holds the entry (Raft §5.4.1, Leader
        Completeness), so no request of such a term conflicts with it. (A node that knows an
        entry is committed learned it in such a term, so this covers its own commit index.)
        A node still in an older term may rightly drop a committed entry it holds but does not
        know is committed: a stale leader's AppendEntries (Raft §5.3) reaches it before the
        newer leader does, which repairs its log later. Except what the durable snapshot up to
        ``covered`` replaces (Raft §7: a log that does not continue an installed snapshot is
        discarded whole)."""
        start = max(since, covered + 1)
        g = self.committed
        if start <= min(g.last, log.last_index):
            t = log.term_at(start)
            if t is not None and t == g.term_at(start) and term >= g.commit_term_at(start):
                self.fail("committed-truncated", f"node {node_id} in term {term} truncates "
                          f"from {since}, committed up to {g.last} in term "
                          f"{g.commit_term_at(start)}, snapshot up to {covered}")

    def on_applied(self, node_id: int, entry, digest: bytes) -> None:
        """A state machine applied ``entry`` and reached ``digest``."""
        g = self.committed
        if entry.index > g.last or (entry.index > g.base
                                    and g.term_at(entry.index) != entry.term):
            self.fail("state-machine-safety", f"node {node_id} applied {entry.term}/"
                      f"{entry.index}, not committed (committed up to {g.last})")
        rec = (entry.term, entry.kind, entry.payload, digest)
        other = self.applied.setdefault(entry.index, rec)
        if other != rec:
            what = "entry" if other[:3] != rec[:3] else "state"
            self.fail("state-machine-safety", f"node {node_id} applied a different {what} at "
                      f"{entry.index} (term {entry.term} vs {other[0]})")

    def on_durable_vote(self, node_id: int, vote: Vote) -> None:
        old = self._durable_votes.get(node_id, Vote())
        if (vote.term, vote.committed) < (old.term, old.committed) or (
                vote.term == old.term and old.node_id not in (0, vote.node_id)):
            self.fail("vote-regressed", f"node {node_id} durable vote {old} -> {vote}")
        self._durable_votes[node_id] = vote
