"""Log replication (Raft §5.3), commitment (§5.4.2) and flow control (thesis §10.2).

The leader appends proposals as one batch, sends them at once to every follower (in parallel
with its own flush, thesis §10.2.1) and counts itself only once its flush is reported.
Followers are probed one message at a time until their log position is found (rejections carry
a conflict term and its first index so the leader skips a term at a time), then fed in
pipeline: up to ``max_inflight`` messages of at most ``max_payload_entries`` entries and
``max_message_bytes``. A new leader appends a blank entry and commits by counting only entries
of its own term (Raft §5.4.2).

Reads: ``vote``, ``role``, ``config``, ``_now``, ``_seq`` (reads.py's round), ``_transfer``
(no proposals during one). Writes: the log, ``progress``, ``committed``, ``applied``,
``flushed``, and its own timers and windows (``_heartbeat_at``, ``_check_quorum_at``,
``_log_reads``, ``_progress_at``, ``_leader_first_index``). Calls membership.py when entries
carry a configuration or the commit moves, snapshot.py when a follower needs purged entries,
reads.py on each round and apply, membership.py and transfer.py when a follower progresses.

Invariant: a follower acknowledges entries only once they are durable (the reply is held
until ``on_log_flushed`` covers them).
Invariant: entries at or below the commit index are never truncated.
"""

from __future__ import annotations

from fastraft.errors import CodecError, LeaderTransferring
from fastraft.messages import AppendEntriesRequest, AppendEntriesResponse
from fastraft.types import EntryKind, LogId, Membership

from ._prims import ENTRY_OVERHEAD_BYTES
from ._prims import progress as _progress
from .commands import AppendLog, ApplyEntries, ReadLog, TruncateLog
from .state import Role

__all__ = ["ReplicationMixin"]

# Room kept in max_message_bytes for the message's own fields and frame header.
_MESSAGE_OVERHEAD_BYTES = 256


class ReplicationMixin:
    def _init_replication(self) -> None:
        self._heartbeat_at = float("inf")
        self._check_quorum_at = float("inf")
        self._leader_first_index = 0
        self._log_reads: dict[int, int] = {}
        self._progress_at: dict[int, float] = {}
        self._entry_budget = self.config.max_message_bytes - _MESSAGE_OVERHEAD_BYTES

    # -- becoming leader -------------------------------------------------------------------------

    def _start_leading(self) -> None:
        """This node just became leader (roles.py): reset every follower's progress and the
        timers, append the blank entry of the term (Raft §5.4.2, §8)."""
        self._track_membership()
        p = self.progress
        p.reset(self.log.last_index + 1)
        if p.is_tracked(self.id):
            p.update_match(self.id, self.flushed)
            p.mark_active(self.id)
        self._log_reads.clear()
        self._progress_at = {}
        self._heartbeat_at = self._now + self.config.heartbeat_interval_s
        self._check_quorum_at = self._now + self.config.election_timeout_min_s
        entries = self.log.append_payloads(self.vote.term, EntryKind.BLANK, [b""])
        self._leader_first_index = entries[0].index
        self._emit(AppendLog(entries, LogId(self.vote.term, entries[0].index)))

    def _stop_replication(self) -> None:
        self._log_reads.clear()
        self._progress_at = {}
        self._heartbeat_at = float("inf")
        self._check_quorum_at = float("inf")
        self._stop_snapshot_sends()

    # -- proposals -------------------------------------------------------------------------------

    def propose(self, payloads: list, kind: int = EntryKind.NORMAL) -> LogId:
        """Append one entry per payload (one batch) and start replicating it; returns the log
        id of the first entry, the others follow at consecutive indexes.

        Raises ForwardToLeader on a non-leader and LeaderTransferring during a transfer
        (nothing is appended then), ValueError for an empty batch or a MEMBERSHIP kind
        (use change_membership), TypeError for a payload that is not bytes. The outcome of each
        entry is known when it is applied: the runtime compares the term of the entry applied
        at that index with the returned term (another term: the proposal was lost).
        """
        if self.role != Role.LEADER:
            raise self.forward_to_leader()
        if self._transfer is not None:
            raise LeaderTransferring(self._transfer.target)
        if not payloads:
            raise ValueError("propose needs at least one payload")
        if kind not in (EntryKind.NORMAL, EntryKind.BLANK):
            raise ValueError(f"cannot propose entries of kind {kind!r}")
        entries = self.log.append_payloads(self.vote.term, kind, payloads)
        last = entries[-1].index
        self._emit(AppendLog(entries, LogId(self.vote.term, last)))
        self._replicate_all()
        return LogId(self.vote.term, entries[0].index)

    # -- sending ---------------------------------------------------------------------------------

    def _peers(self):
        return [i for i in self.progress.node_ids() if i != self.id]

    def _replicate_all(self) -> None:
        for peer in self._peers():
            self._maybe_send_append(peer)

    def _maybe_send_append(self, peer: int) -> None:
        """Send ``peer`` what it lacks, as far as its mode and window allow."""
        p = self.progress
        log = self.log
        if not p.is_tracked(peer):
            return
        while p.can_send(peer) and peer not in self._log_reads:
            nxt = p.next_index(peer)
            prev = nxt - 1
            if prev < log.purged_index:
                self._start_snapshot_send(peer)
                return
            last = log.last_index
            if nxt > last:
                if p.mode(peer) == _progress.PROBE:
                    # nothing new, but the follower's position is unknown: an empty probe at
                    # next - 1 finds it (rejections backtrack from there)
                    self._send_entries(peer, prev, [])
                return
            if not log.is_cached(nxt):
                self._log_reads[peer] = nxt
                self._emit(ReadLog(peer, nxt, min(last + 1, nxt + self.config.max_payload_entries)))
                return
            ents = log.entries(nxt, last + 1, self.config.max_payload_entries, self._entry_budget)
            self._send_entries(peer, prev, ents)

    def _send_entries(self, peer: int, prev: int, ents: list) -> None:
        p = self.progress
        if p.inflight_count(peer) == 0:
            self._progress_at[peer] = self._now
        p.on_sent(peer, ents[-1].index if ents else prev)
        self._send(peer, AppendEntriesRequest(
            term=self.vote.term, sender=self.id, prev_log_term=self.log.term_at(prev),
            prev_log_index=prev, leader_commit=self.committed, seq=self._seq, entries=ents))

    def on_entries_read(self, node_id: int, lo: int, entries: list) -> None:
        """A ``ReadLog(node_id, lo, hi)`` completed with ``entries`` (a prefix of [lo, hi),
        possibly empty if purged meanwhile): send them if still wanted."""
        if self._log_reads.get(node_id) != lo:
            return
        del self._log_reads[node_id]
        p = self.progress
        if self.role != Role.LEADER or not p.is_tracked(node_id):
            return
        log = self.log
        if entries and p.next_index(node_id) == lo and p.can_send(node_id) and lo > log.purged_index:
            first, last = entries[0], entries[-1]
            n = last.index - lo + 1
            if (first.index == lo and n == len(entries) and last.index <= log.last_index
                    and log.term_at(last.index) == last.term):
                ents = entries[:self.config.max_payload_entries]
                total = 0
                for k, e in enumerate(ents):  # cold path: a follower far behind
                    total += len(e.payload) + ENTRY_OVERHEAD_BYTES
                    if total > self._entry_budget and k:
                        ents = ents[:k]
                        break
                self._send_entries(node_id, lo - 1, ents)
        self._maybe_send_append(node_id)
        self._notify()

    def _broadcast_heartbeat(self) -> None:
        """One heartbeat round: a new ``seq`` (ReadIndex, lease), an AppendEntries at each
        follower's match (which it holds, so the check passes), probes resumed, stalled
        pipelines restarted from match."""
        self._heartbeat_at = self._now + self.config.heartbeat_interval_s
        self._new_round()
        p = self.progress
        log = self.log
        stall_s = self.config.election_timeout_min_s
        for peer in self._peers():
            m = p.match_index(peer)
            if m >= log.purged_index:
                prev, prev_term = m, log.term_at(m)
            else:
                prev, prev_term = 0, 0  # matches every log; the follower gets a snapshot
            self._send(peer, AppendEntriesRequest(
                term=self.vote.term, sender=self.id, prev_log_term=prev_term,
                prev_log_index=prev, leader_commit=min(self.committed, m), seq=self._seq))
            mode = p.mode(peer)
            if mode == _progress.PROBE:
                p.resume(peer)
            elif (mode == _progress.PIPELINE and p.inflight_count(peer)
                  and self._now - self._progress_at.get(peer, self._now) >= stall_s):
                p.become_probe(peer)  # messages were lost: restart from what is known
            self._maybe_send_append(peer)
        self._resend_stalled_snapshots()

    def trigger_heartbeat(self) -> None:
        """Admin: send a heartbeat round now (no-op unless leader)."""
        if self.role == Role.LEADER:
            self._broadcast_heartbeat()

    def _leader_tick(self) -> None:
        if self._now >= self._heartbeat_at:
            self._broadcast_heartbeat()
        self._maybe_check_quorum()
        if self.role == Role.LEADER:
            self._maybe_expire_transfer()
        self._notify()

    # -- the follower side -----------------------------------------------------------------------

    def _handle_append_entries(self, m: AppendEntriesRequest, reply_to=None) -> None:
        """A follower of ``m.sender`` in ``m.term`` (the term rule and ``_step_follower``
        made it one): Raft §5.3's receiver steps. The acknowledgement leaves once the entries
        it covers are durable."""
        log = self.log
        if self._snapshot_installing():
            # the log is about to be replaced; the leader resends
            self._no_answer(reply_to, "a snapshot is being installed")
            return
        if not log.matches(m.prev_log_index, m.prev_log_term):
            if m.prev_log_index > log.last_index:
                hint_term, hint_index = 0, log.last_index + 1
            else:
                hint_term = log.term_at(m.prev_log_index)
                hint_index = log.first_index_of_term(hint_term) or log.first_index
            self._send(m.sender, AppendEntriesResponse(
                term=self.vote.term, sender=self.id, success=False, match_index=m.prev_log_index,
                hint_term=hint_term, hint_index=hint_index, seq=m.seq),
                after_vote=True, reply_to=reply_to)
            return
        ents = m.entries
        if ents and not self._accept_entries(m, ents):
            self._no_answer(reply_to, "malformed entries, or entries that would rewrite "
                                      "committed ones")
            return
        last_new = m.prev_log_index + len(ents)
        commit = min(m.leader_commit, last_new)
        if commit > self.committed:
            self._advance_commit(commit)
        self._send(m.sender, AppendEntriesResponse(
            term=self.vote.term, sender=self.id, success=True, match_index=last_new, seq=m.seq),
            after_vote=True, after_flush=last_new, reply_to=reply_to)

    def _accept_entries(self, m: AppendEntriesRequest, ents: list) -> bool:
        """Merge a leader's entries into the log (Raft §5.3 receiver steps 3-4). False if the
        batch is malformed or would rewrite committed entries: then nothing changes."""
        log = self.log
        try:
            members = log.check_entries(ents, m.prev_log_index, m.prev_log_term, m.term)
            decoded = {}
            first = ents[0].index
            for idx in members:
                decoded[idx] = Membership.from_bytes(ents[idx - first].payload)
        except (ValueError, CodecError):
            return False  # a broken leader; drop the message, the log stays as it was
        c = log.find_conflict(ents)
        if c == 0:
            return True
        if c <= self.committed:
            self._on_committed_conflict(m.sender, m.term, c)  # guard.py: report it
            return False
        if c <= log.last_index:
            log.truncate_after(c - 1)
            self._emit(TruncateLog(c))
            if self.flushed > c - 1:
                self.flushed = c - 1
            self._revert_membership(c - 1)
        new = ents[c - first:] if c > first else ents
        log.append_entries(new)
        self._emit(AppendLog(new, LogId(log.last_term, log.last_index)))
        for idx in members:
            if idx >= c:
                self._apply_membership(ents[idx - first], decoded[idx])
        return True

    # -- the leader side of responses ------------------------------------------------------------

    def _handle_append_entries_response(self, m: AppendEntriesResponse) -> None:
        """The leader, in its term: a follower's acknowledgement or rejection."""
        p = self.progress
        peer = m.sender
        if not p.is_tracked(peer):
            return
        p.mark_active(peer)
        if m.seq:
            self._on_round_ack(peer, m.seq)
        if m.success:
            if m.match_index > self.log.last_index:
                return  # claims entries this leader never sent
            if p.on_ack(peer, m.match_index):
                self._progress_at[peer] = self._now
                self._maybe_commit()
            if self.role == Role.LEADER:
                self._maybe_send_append(peer)
                self._on_follower_progress(peer)
        else:
            if m.hint_term == 0:
                nxt = m.hint_index
            else:
                k = self.log.last_index_of_term(m.hint_term)
                nxt = k + 1 if k else m.hint_index
            if p.on_reject(peer, m.match_index, max(nxt, 1)):
                self._maybe_send_append(peer)

    def _maybe_commit(self) -> None:
        """Commit what a quorum holds, if it is of the leader's term (Raft §5.4.2)."""
        c = self.progress.committed_index()
        if c > self.committed and self.log.term_at(c) == self.vote.term:
            self._advance_commit(c)

    # -- commit and apply ------------------------------------------------------------------------

    def _advance_commit(self, index: int) -> None:
        self.committed = index
        self._on_commit_membership()
        self._maybe_apply()

    def _maybe_apply(self) -> None:
        """Apply what is committed and durable here (a state machine must never get ahead of
        the local log it would be rebuilt from)."""
        hi = min(self.committed, self.flushed)
        if hi <= self.applied or self._snapshot_installing():
            # while a snapshot replaces the state machine, entries wait: the snapshot may
            # cover them, and an apply after the install would land on the new state
            return
        lo = self.applied + 1
        log = self.log
        ents = None
        if log.cache_lo <= lo and hi <= log.last_index:
            ents = log.entries(lo, hi + 1, hi + 1 - lo, 1 << 62)
        self._emit(ApplyEntries(lo, hi + 1, ents))
        self.applied = hi
        self._maybe_build_snapshot()
        self._maybe_serve_reads()

    def on_log_flushed(self, log_id: LogId) -> None:
        """Every log write up to the ``AppendLog`` ending at ``log_id`` is durable. A report
        for entries since truncated is ignored."""
        idx = log_id.index
        log = self.log
        if idx <= self.flushed or idx > log.last_index or idx < log.purged_index:
            return
        if log.term_at(idx) != log_id.term:
            return
        self.flushed = idx
        if self.role == Role.LEADER and self.progress.is_tracked(self.id):
            if self.progress.update_match(self.id, idx):
                self._maybe_commit()
        self._release_held()
        self._maybe_apply()
        self._notify()

