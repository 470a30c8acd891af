"""What the engine's trust boundary (``fastraft.core.guard``) saw, told to the log: the
engine does no I/O, so after each round the runtime logs its new reports.

* The first dropped message of each sender: one WARNING per sender for the node's life (the
  engine bounds how many senders it reports); later drops only count in the metrics
  (``RaftMetrics.dropped_messages``).
* A refusal of entries that would rewrite this node's committed log: one ERROR per leader and
  term. Such a leader's log lacks entries this node holds as committed (they were lost
  elsewhere: Raft §5.4's Leader Completeness no longer holds), so this node cannot follow it;
  ``RaftMetrics.log_diverged`` stays set so that a health check can report it.
"""

from __future__ import annotations

import logging

__all__ = ["GuardLog"]

log = logging.getLogger("fastraft.runtime")


class GuardLog:
    """Logs the reports of one node's engine; call ``after_round`` after each round."""

    def __init__(self, node_id: int) -> None:
        self.node_id = node_id
        self._conflicts_seen = 0
        self._conflict_logged: tuple[int, int] | None = None

    def after_round(self, engine) -> None:
        for r in engine.take_guard_reports():
            log.warning("node %d drops messages from node %d (%s; the first: %s); further "
                        "drops from it are only counted in the metrics", self.node_id, r.sender,
                        r.reason.replace("_", " "), r.what)
        if engine.committed_conflicts != self._conflicts_seen:
            self._conflicts_seen = engine.committed_conflicts
            c = engine.committed_conflict
            if self._conflict_logged != (c.leader_id, c.term):
                self._conflict_logged = (c.leader_id, c.term)
                log.error(
                    "node %d refuses the entries of leader %d (term %d): they would rewrite its "
                    "committed log at index %d (committed up to %d). The leader's log lost "
                    "committed entries, so this node cannot follow it; find which log is right "
                    "before any node is restored or removed", self.node_id, c.leader_id, c.term,
                    c.index, engine.committed)
