"""Snapshots and log compaction (Raft §7).

Policy: once ``snapshot_policy_logs_since_last`` entries were applied since the last snapshot,
the engine asks the runtime to build one; once built, the log is purged up to the snapshot
minus ``max_in_snapshot_log_to_keep`` entries, so a follower a little behind still catches up
from the log. A follower that needs purged entries gets the snapshot instead, in chunks of at
most ``snapshot_max_chunk_bytes``: the follower answers each chunk with the offset it expects
next, so a lost chunk or a restarted transfer resumes where the follower is.

Reads: ``role``, ``vote``, ``config``, ``_now``, ``progress``, the membership. Writes:
``snapshot``, ``_snapshot_index``, ``_building_snapshot``, ``_snap_sends``, ``_snap_recv``, the
log's purge point; an install also writes the log, ``flushed``, ``applied``, ``committed`` and
the membership (``_set_membership_from_snapshot``); on a leader, a follower's ``progress`` and
``_progress_at`` when its snapshot is done.

Invariant: the log is purged only up to a snapshot already built or installed.
Invariant: a follower answers the last chunk only once the snapshot is installed (durable);
its log is then purged up to the snapshot, or replaced if it does not continue the snapshot.
"""

from __future__ import annotations

from fastraft.errors import CodecError
from fastraft.messages import InstallSnapshotRequest, InstallSnapshotResponse
from fastraft.types import LogId, Membership, SnapshotMeta, StoredMembership

from .commands import (BuildSnapshot, InstallSnapshot, PurgeLog, ReadSnapshotChunk,
                       SaveSnapshotChunk, TruncateLog)
from .state import Role

__all__ = ["SnapshotMixin"]


class _Send:
    """The leader's transfer of a snapshot to one follower."""

    __slots__ = ("meta", "offset", "reading", "sent_at")

    def __init__(self, meta: SnapshotMeta):
        self.meta = meta
        self.offset = 0
        self.reading = False
        self.sent_at = float("-inf")


class _Receive:
    """A follower's reception of a snapshot from its leader."""

    __slots__ = ("snapshot_id", "leader_id", "offset", "meta", "reply_to")

    def __init__(self, snapshot_id: str, leader_id: int):
        self.snapshot_id = snapshot_id
        self.leader_id = leader_id
        self.offset = 0
        self.meta: SnapshotMeta | None = None  # set once complete: installing
        self.reply_to = None  # the last chunk's token: answered once the install is durable


class SnapshotMixin:
    def _init_snapshot(self) -> None:
        self._snap_sends: dict[int, _Send] = {}
        self._snap_recv: _Receive | None = None

    # -- building and purging --------------------------------------------------------------------

    def trigger_snapshot(self) -> None:
        """Admin: build a snapshot now (no-op while one is being built)."""
        if not self._building_snapshot:
            self._building_snapshot = True
            self._emit(BuildSnapshot())

    def _maybe_build_snapshot(self) -> None:
        n = self.config.snapshot_policy_logs_since_last
        if n and self.applied - self._snapshot_index >= n:
            self.trigger_snapshot()

    def on_snapshot_built(self, meta: SnapshotMeta) -> None:
        """A ``BuildSnapshot`` completed with ``meta``; the log may now be purged behind it.
        Raises ValueError if the snapshot claims entries not yet applied."""
        self._building_snapshot = False
        lid = meta.last_log_id
        if lid is None:
            return
        if lid.index > self.applied:
            raise ValueError(f"snapshot up to {lid.index} is ahead of applied {self.applied}")
        if lid.index >= self._snapshot_index:
            self.snapshot = meta
            self._snapshot_index = lid.index
        self._maybe_purge(self._policy_purge_upto(lid.index), force=False)
        self._notify()

    def _policy_purge_upto(self, snapshot_index: int) -> int:
        """Where the snapshot policy purges to: ``max_in_snapshot_log_to_keep`` behind the
        snapshot, and on a leader no further than what every follower heard from recently
        (``is_active``) has matched, so that a live follower that lags a little is sent
        entries, not a whole snapshot (Raft §7: snapshots are for followers far behind).
        A silent follower holds nothing back, and neither does one more than
        ``replication_lag_threshold`` entries behind, so the log stays bounded."""
        upto = snapshot_index - self.config.max_in_snapshot_log_to_keep
        if self.role == Role.LEADER:
            p = self.progress
            floor = snapshot_index - self.config.replication_lag_threshold
            for peer in p.node_ids():
                if peer != self.id and p.is_active(peer):
                    upto = min(upto, max(p.match_index(peer), floor))
        return upto

    def trigger_purge(self, upto: int) -> None:
        """Admin: purge the log up to ``upto``, capped at the current snapshot (Raft §7)."""
        self._maybe_purge(upto, force=True)

    def _maybe_purge(self, upto: int, force: bool) -> None:
        log = self.log
        upto = min(upto, self._snapshot_index, self.applied, log.last_index)
        if upto <= log.purged_index:
            return
        if not force and upto - log.purged_index < self.config.purge_batch_size:
            return
        term = log.term_at(upto)
        log.purge_upto(upto)
        self._emit(PurgeLog(LogId(term, upto)))

    # -- the leader sends --------------------------------------------------------------------------

    def _start_snapshot_send(self, peer: int) -> None:
        snap = self.snapshot
        if snap is None or snap.last_log_id is None:
            return  # nothing was purged without a snapshot, so this cannot last
        p = self.progress
        if snap.last_log_id.index <= p.match_index(peer):
            return
        p.become_snapshot(peer, snap.last_log_id.index)
        st = _Send(snap)
        self._snap_sends[peer] = st
        self._read_chunk(peer, st)

    def _read_chunk(self, peer: int, st: _Send) -> None:
        st.reading = True
        self._emit(ReadSnapshotChunk(peer, st.meta.snapshot_id, st.offset,
                                     self.config.snapshot_max_chunk_bytes))

    def on_snapshot_chunk_read(self, node_id: int, snapshot_id: str, offset: int,
                               data: bytes | None, done: bool) -> None:
        """A ``ReadSnapshotChunk`` completed: ``data`` at ``offset`` (None: the snapshot is gone,
        start over with the current one), ``done`` if it is the last chunk."""
        st = self._snap_sends.get(node_id)
        if (self.role != Role.LEADER or st is None or not st.reading
                or st.meta.snapshot_id != snapshot_id or st.offset != offset):
            return
        st.reading = False
        if data is None:
            del self._snap_sends[node_id]
            if self.progress.is_tracked(node_id):
                self.progress.become_probe(node_id)
            return  # the next heartbeat starts over
        meta = st.meta
        mem = meta.last_membership
        mlid = mem.log_id or LogId(0, 0)
        st.sent_at = self._now
        self._send(node_id, InstallSnapshotRequest(
            term=self.vote.term, sender=self.id, snapshot_id=snapshot_id,
            last_log_term=meta.last_log_id.term, last_log_index=meta.last_log_id.index,
            membership_term=mlid.term, membership_index=mlid.index,
            membership=mem.membership.to_bytes(), offset=offset, data=bytes(data),
            done=bool(done)))

    def _handle_install_snapshot_response(self, m: InstallSnapshotResponse) -> None:
        """The leader, in its term: a follower's answer to a chunk."""
        peer = m.sender
        st = self._snap_sends.get(peer)
        if (st is None or st.meta.snapshot_id != m.snapshot_id or not self.progress.is_tracked(peer)):
            return
        self.progress.mark_active(peer)
        if st.reading:
            return  # the chunk being read answers this
        if m.done:
            del self._snap_sends[peer]
            self.progress.on_snapshot_done(peer, st.meta.last_log_id.index)
            self._progress_at[peer] = self._now
            self._maybe_commit()
            if self.role == Role.LEADER:
                self._maybe_send_append(peer)
                self._on_follower_progress(peer)
            return
        st.offset = m.next_offset
        self._read_chunk(peer, st)

    def _resend_stalled_snapshots(self) -> None:
        for peer, st in list(self._snap_sends.items()):
            if not st.reading and self._now - st.sent_at >= self.config.election_timeout_min_s:
                self._read_chunk(peer, st)

    def _stop_snapshot_sends(self) -> None:
        self._snap_sends.clear()

    # -- the follower receives ---------------------------------------------------------------------

    def _snapshot_installing(self) -> bool:
        return self._snap_recv is not None and self._snap_recv.meta is not None

    def _reply_snapshot(self, to: int, snapshot_id: str, next_offset: int, done: bool,
                        reply_to, after_flush: int = 0) -> None:
        self._send(to, InstallSnapshotResponse(term=self.vote.term, sender=self.id,
                                               snapshot_id=snapshot_id, next_offset=next_offset,
                                               done=done),
                   after_vote=True, after_flush=after_flush, reply_to=reply_to)

    def _handle_install_snapshot(self, m: InstallSnapshotRequest, reply_to=None) -> None:
        """A follower of ``m.sender`` in ``m.term`` (the term rule and ``_step_follower``
        made it one): take one chunk (Raft §7's receiver)."""
        if self._snapshot_installing():
            self._no_answer(reply_to, "a snapshot is being installed")
            return
        if m.last_log_index <= self.committed:
            # everything it covers is committed here already (Raft §7: retain the log); "done"
            # makes the leader count these entries as matched, so it waits until they are
            # durable here (a crash before the flush would lose what the leader thinks we hold)
            self._reply_snapshot(m.sender, m.snapshot_id, m.offset + len(m.data), True, reply_to,
                                 after_flush=m.last_log_index)
            return
        if m.last_log_term == 0 or m.last_log_term > m.term:
            self._no_answer(reply_to, "not a snapshot a leader of this term can hold")
            return
        rx = self._snap_recv
        if m.offset == 0:
            rx = self._snap_recv = _Receive(m.snapshot_id, m.sender)
        elif rx is None or rx.snapshot_id != m.snapshot_id:
            self._reply_snapshot(m.sender, m.snapshot_id, 0, False, reply_to)
            return
        if m.offset != rx.offset:
            self._reply_snapshot(m.sender, m.snapshot_id, rx.offset, False, reply_to)
            return
        membership = None
        if m.done:
            try:
                membership = Membership.from_bytes(m.membership)
            except CodecError:
                self._snap_recv = None
                self._no_answer(reply_to, "the snapshot's membership does not decode")
                return
        rx.leader_id = m.sender
        self._emit(SaveSnapshotChunk(m.snapshot_id, m.offset, m.data))
        rx.offset += len(m.data)
        if not m.done:
            self._reply_snapshot(m.sender, m.snapshot_id, rx.offset, False, reply_to)
            return
        rx.reply_to = reply_to
        self._answer_later(reply_to)  # by on_snapshot_installed
        mlid = LogId(m.membership_term, m.membership_index) if m.membership_index else None
        rx.meta = SnapshotMeta(LogId(m.last_log_term, m.last_log_index),
                               StoredMembership(mlid, membership), m.snapshot_id)
        self._emit(InstallSnapshot(rx.meta))

    def on_snapshot_installed(self, meta: SnapshotMeta) -> None:
        """An ``InstallSnapshot(meta)`` is durable: adopt it, fix the log (keep a suffix that
        continues the snapshot, else discard the log), answer the leader. Raises ValueError for
        a snapshot the engine did not ask to install."""
        rx = self._snap_recv
        if rx is None or rx.meta != meta:
            raise ValueError(f"snapshot {meta.snapshot_id!r} was not being installed")
        self._snap_recv = None
        lid = meta.last_log_id
        idx = lid.index
        log = self.log
        if log.purged_index <= idx <= log.last_index and log.term_at(idx) == lid.term:
            if idx > log.purged_index:
                log.purge_upto(idx)
                self._emit(PurgeLog(lid))
            if self._membership.log_id is None or self._membership.log_id.index <= idx:
                self._set_membership_from_snapshot(meta.last_membership)
        else:
            # The whole log goes (Raft §7). A log reaching the snapshot's index holds another
            # term there, so nothing after this node's commit index is committed: that part
            # goes by truncation, the committed prefix (all below the snapshot) by the purge,
            # past the log's end then. Truncating from the log's start instead would cut
            # committed entries, which TruncateLog never does (a store refuses it).
            if log.last_index >= idx:
                self._emit(TruncateLog(max(self.committed, log.purged_index) + 1))
            log.reset(lid.term, idx)
            self._emit(PurgeLog(lid))
            self._set_membership_from_snapshot(meta.last_membership)
            # the discarded entries no longer count as durable: what comes after the snapshot
            # must be flushed anew before it is acknowledged
            self.flushed = idx
        if idx > self.flushed:
            self.flushed = idx
        if idx > self.applied:
            self.applied = idx
        if idx > self.committed:
            self.committed = idx
        self.snapshot = meta
        self._snapshot_index = max(self._snapshot_index, idx)
        self._on_commit_membership()
        self._reply_snapshot(rx.leader_id, meta.snapshot_id, rx.offset, True, rx.reply_to)
        self._release_held()
        self._maybe_apply()
        self._notify()
