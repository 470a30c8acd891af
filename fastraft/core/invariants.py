"""Raft's safety properties (Raft §5.2, §5.3, §5.4, Figure 3), checked over a set of engines.

``InvariantChecker.check(engines)`` runs after every step of a test or a simulation and raises
``InvariantViolation`` naming the property, the nodes and the indexes:

* election safety: at most one leader per term;
* log matching: if two logs hold an entry with the same index and term, they agree on every
  entry before it (compared on terms, in O(runs));
* commit monotonicity: a node's commit index never goes back (``forget(node)`` after a
  restart, which may start from a lower persisted value);
* state machine safety: every node's committed entries agree with the committed log recorded
  so far, and applied <= committed;
* leader completeness: a leader of term T holds every entry recorded committed in a term
  before T (checked when the leader is first seen).

``record_applied`` checks the entries the state machines actually apply (content included).
The checker remembers the committed log as term runs and the applied entries by index:
memory grows with the log, so long simulations call ``trim_applied`` now and then.
"""

from __future__ import annotations

from typing import Iterable

from ._prims import LogIndex
from .state import Role

__all__ = ["InvariantViolation", "InvariantChecker", "log_segments"]


class InvariantViolation(AssertionError):
    """A Raft safety property does not hold."""


def log_segments(log, lo: int, hi: int) -> list[tuple[int, int, int]]:
    """The terms of ``log`` over [lo, hi) as (first, last, term) segments, oldest first.
    Requires log.purged_index < lo and hi <= log.last_index + 1."""
    out = []
    if lo >= hi:
        return out
    runs = log.term_runs()
    for k, (start, term) in enumerate(runs):
        end = runs[k + 1][0] - 1 if k + 1 < len(runs) else log.last_index
        a, b = max(start, lo), min(end, hi - 1)
        if a <= b:
            out.append((a, b, term))
    return out


def _first_disagreement(a, b, lo: int, hi: int) -> tuple[int, int] | None:
    """(first index where the logs' terms differ, last index where they agree) over [lo, hi),
    or None if they agree everywhere."""
    sa, sb = log_segments(a, lo, hi), log_segments(b, lo, hi)
    i = j = 0
    first_diff = None
    last_same = 0
    while i < len(sa) and j < len(sb):
        a0, a1, ta = sa[i]
        b0, b1, tb = sb[j]
        s, e = max(a0, b0), min(a1, b1)
        if s <= e:
            if ta != tb:
                if first_diff is None:
                    first_diff = s
            else:
                last_same = e
        if a1 < b1:
            i += 1
        else:
            j += 1
    if first_diff is None:
        return None
    return first_diff, last_same


class InvariantChecker:
    """Remembers what safety needs across steps; see the module docstring."""

    def __init__(self) -> None:
        self.leaders: dict[int, int] = {}  # term -> leader id
        self._commit_seen: dict[int, int] = {}
        self._committed = LogIndex(0, 0)  # the committed log, as term runs
        self._commit_terms: list[tuple[int, int]] = []  # (last_index, term it was seen in)
        self._applied: dict[int, tuple] = {}
        self.checks = 0

    def forget(self, node_id: int) -> None:
        """``node_id`` restarted: its commit index may restart lower."""
        self._commit_seen.pop(node_id, None)

    def check(self, engines: Iterable) -> None:
        engines = list(engines)
        self.checks += 1
        for e in engines:
            self._check_node(e)
        for e in engines:
            self._extend_committed(e)
        for k, a in enumerate(engines):
            for b in engines[k + 1:]:
                self._check_log_matching(a, b)

    def _fail(self, what: str) -> None:
        raise InvariantViolation(what)

    def _check_node(self, e) -> None:
        if e.role == Role.LEADER:
            first = e.term not in self.leaders
            other = self.leaders.setdefault(e.term, e.id)
            if other != e.id:
                self._fail(f"election safety: nodes {other} and {e.id} both lead term {e.term}")
            if first:
                self._check_leader_completeness(e)
        seen = self._commit_seen.get(e.id, 0)
        if e.committed < seen:
            self._fail(f"commit went back on node {e.id}: {seen} -> {e.committed}")
        self._commit_seen[e.id] = e.committed
        if e.applied > e.committed:
            self._fail(f"node {e.id} applied {e.applied} beyond committed {e.committed}")
        flushed = getattr(e, "flushed", 0)
        if flushed > e.log.last_index:
            self._fail(f"node {e.id} counts {flushed} durable beyond its log's end "
                       f"{e.log.last_index}")
        if e.log.last_term > e.term:
            self._fail(f"node {e.id} holds an entry of term {e.log.last_term} in term {e.term}")

    def _committed_span(self, e) -> tuple[int, int]:
        """The indexes of e's log that e knows committed: [lo, hi)."""
        return e.log.purged_index + 1, min(e.committed, e.log.last_index) + 1

    def _extend_committed(self, e) -> None:
        g = self._committed
        lo, hi = self._committed_span(e)
        # what both know committed must agree
        a, b = max(lo, g.purged_index + 1), min(hi, g.last_index + 1)
        if a < b:
            d = _first_disagreement(e.log, g, a, b)
            if d is not None:
                self._fail(f"state machine safety: node {e.id} committed term "
                           f"{e.log.term_at(d[0])} at {d[0]}, the cluster committed term "
                           f"{g.term_at(d[0])}")
        if hi - 1 > g.last_index:
            if lo > g.last_index + 1:
                # the node only has a snapshot of what lies between: restart the record there
                g.reset(e.log.term_at(lo - 1) if lo - 1 >= e.log.purged_index else 1, lo - 1)
            for first, last, term in log_segments(e.log, max(lo, g.last_index + 1), hi):
                g.append_term_run(max(term, g.last_term), last)
            if self._commit_terms and self._commit_terms[-1][1] == e.term:
                self._commit_terms[-1] = (g.last_index, e.term)
            else:
                self._commit_terms.append((g.last_index, e.term))

    def _check_leader_completeness(self, e) -> None:
        g = self._committed
        upto = 0
        for last, term in self._commit_terms:
            if term < e.term:
                upto = max(upto, last)
        lo = max(e.log.purged_index, g.purged_index) + 1
        if upto > e.log.last_index:
            self._fail(f"leader completeness: leader {e.id} of term {e.term} ends at "
                       f"{e.log.last_index}, entries up to {upto} were committed before")
        if lo <= upto:
            d = _first_disagreement(e.log, g, lo, upto + 1)
            if d is not None:
                self._fail(f"leader completeness: leader {e.id} of term {e.term} lacks the "
                           f"committed entry at {d[0]}")

    def _check_log_matching(self, a, b) -> None:
        lo = max(a.log.purged_index, b.log.purged_index) + 1
        hi = min(a.log.last_index, b.log.last_index) + 1
        if lo >= hi:
            return
        d = _first_disagreement(a.log, b.log, lo, hi)
        if d is not None and d[1] > d[0]:
            self._fail(f"log matching: nodes {a.id} and {b.id} agree on the term at {d[1]} "
                       f"but differ at {d[0]}")

    def record_applied(self, node_id: int, entries: Iterable) -> None:
        """State machine safety on content: every node applies the same entry at an index."""
        for en in entries:
            key = (en.term, en.kind, en.payload)
            other = self._applied.setdefault(en.index, key)
            if other != key:
                self._fail(f"node {node_id} applied {key!r} at {en.index}, another node "
                           f"applied {other!r}")

    def trim_applied(self, below: int) -> None:
        """Forget applied entries below ``below`` (bounded memory in long runs)."""
        for i in [i for i in self._applied if i < below]:
            del self._applied[i]
