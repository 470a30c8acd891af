"""The engine's commands carried out: ``CommandExecutors`` hands each command a round produced to
the part that executes it (``fastraft.core.commands`` lists the obligations), and keeps the
callers that wait for a ``Respond`` (admin calls, and the reads gathered into one ReadIndex).

* durable writes -> ``LogWriter`` (in order, group commit);
* state-machine work and read points -> ``Applier`` (in order, batched);
* messages -> a ``PeerSender`` per peer; responses (``SendMessage`` with a ``reply_to``) and
  ``NoAnswer`` -> the request waiting on exactly that token (``InboundReplies``);
* log and snapshot reads for replication -> a task each, reporting back through ``post`` (an
  input of a later round);
* answers -> the waiting caller; role and membership changes -> proposals, peers.

Invariant: an executor never awaits and never calls the engine: it is called inside a round
(``RaftRuntime``'s invariant: one round at a time, on the trio thread), and what it starts
reports back as an input of a later round.
Invariant: every request id in ``_admin`` or ``_read_groups`` is answered once, by the
engine's ``Respond`` (or ``ReadReady`` through the applier), or failed by ``fail_all``.
"""

from __future__ import annotations

import itertools
from typing import Callable

import trio

from ..core import commands as C
from ..core import Engine, Role
from ..reply import Reply
from .applier import Applier
from .inbound import InboundReplies
from .log_writer import LogWriter
from .peers import PeerSet
from .proposals import Proposals
from .snapshot_reader import SnapshotReader

__all__ = ["CommandExecutors"]


class CommandExecutors:
    """Executes ``engine``'s commands (see the module docstring). ``post(fn, *args)`` queues an
    input for a later round; ``on_failed(error)`` stops the node when a store fails."""

    def __init__(self, engine: Engine, *, nursery: trio.Nursery, log_store, log_writer: LogWriter,
                 applier: Applier, snapshots: SnapshotReader, peers: PeerSet,
                 inbound: InboundReplies, proposals: Proposals, post: Callable[..., None],
                 on_failed: Callable[[BaseException], None]) -> None:
        self._engine = engine
        self._nursery = nursery
        self._log_store = log_store
        self._log_writer = log_writer
        self._snapshots = snapshots
        self._peers = peers
        self._inbound = inbound
        self._proposals = proposals
        self._post = post
        self._on_failed = on_failed
        self._role = engine.role
        self._request_ids = itertools.count(1)
        self._admin: dict[int, Reply] = {}  # admin request id -> its caller
        self._read_groups: dict[int, list[Reply]] = {}  # ReadIndex request id -> its readers
        self._table = {
            C.SendMessage: self._send, C.NoAnswer: self._no_answer,
            C.AppendLog: log_writer.submit, C.SaveVote: log_writer.submit,
            C.TruncateLog: log_writer.submit, C.PurgeLog: log_writer.submit,
            C.ApplyEntries: applier.submit, C.BuildSnapshot: applier.submit,
            C.SaveSnapshotChunk: applier.submit, C.InstallSnapshot: applier.submit,
            C.ReadReady: applier.submit,
            C.ReadLog: self._read_log, C.ReadSnapshotChunk: self._read_snapshot_chunk,
            C.Respond: self.respond, C.StateChanged: self._on_state_changed,
            C.MembershipChanged: self._on_membership_changed,
        }

    def execute_all(self) -> None:
        """Hand every command the engine has emitted to its executor, in order."""
        table = self._table
        for cmd in self._engine.take_commands():
            table[type(cmd)](cmd)
        self._log_writer.issue_held()  # after the round's sends (log_writer.py says why)

    # -- callers waiting for a Respond ----------------------------------------------------

    def expect_admin(self, reply: Reply) -> int:
        """The request id under which the engine's ``Respond`` resolves ``reply``."""
        rid = next(self._request_ids)
        self._admin[rid] = reply
        return rid

    def expect_reads(self, replies: list[Reply]) -> int:
        """The request id of one ReadIndex whose answer resolves all of ``replies``."""
        rid = next(self._request_ids)
        self._read_groups[rid] = replies
        return rid

    def respond(self, cmd: C.Respond) -> None:
        reply = self._admin.pop(cmd.request_id, None)
        replies = [reply] if reply is not None else self._read_groups.pop(cmd.request_id, ())
        for reply in replies:
            if cmd.error is not None:
                reply.set_error(cmd.error)
            else:
                reply.set_result(cmd.result)

    def on_read_ready(self, cmd: C.ReadReady) -> None:
        """The applier has applied everything emitted before ``cmd``: the reads may go."""
        self.respond(C.Respond(cmd.request_id, result=cmd.read_index))

    def fail_all(self, error: BaseException) -> None:
        """The node stops: every caller still waiting for a Respond fails with ``error``."""
        admin, self._admin = self._admin, {}
        groups, self._read_groups = self._read_groups, {}
        for reply in admin.values():
            reply.set_error(error)
        for group in groups.values():
            for reply in group:
                reply.set_error(error)

    # -- the executors --------------------------------------------------------------------

    def _send(self, cmd: C.SendMessage) -> None:
        if cmd.reply_to is not None:
            self._inbound.answer(cmd.reply_to, cmd.msg)
        else:
            self._peers.send(cmd.to, cmd.msg)

    def _no_answer(self, cmd: C.NoAnswer) -> None:
        self._inbound.no_answer(cmd.reply_to, cmd.reason)

    def _read_log(self, cmd: C.ReadLog) -> None:
        self._nursery.start_soon(self._read_log_task, cmd)

    async def _read_log_task(self, cmd: C.ReadLog) -> None:
        try:
            entries = await self._log_store.read_entries(cmd.lo, cmd.hi)
        except Exception as e:  # a log that cannot be read back is a failed store
            self._on_failed(e)
            return
        self._post(self._engine.on_entries_read, cmd.node_id, cmd.lo, entries)

    def _read_snapshot_chunk(self, cmd: C.ReadSnapshotChunk) -> None:
        self._nursery.start_soon(self._read_snapshot_chunk_task, cmd)

    async def _read_snapshot_chunk_task(self, cmd: C.ReadSnapshotChunk) -> None:
        try:
            data, done = await self._snapshots.read(cmd.snapshot_id, cmd.offset, cmd.max_bytes)
        except Exception as e:
            self._on_failed(e)
            return
        self._post(self._engine.on_snapshot_chunk_read, cmd.node_id, cmd.snapshot_id,
                   cmd.offset, data, done)

    def _on_state_changed(self, cmd: C.StateChanged) -> None:
        was_leader = self._role == Role.LEADER
        self._role = cmd.role
        if was_leader and cmd.role != Role.LEADER:
            eng = self._engine
            self._proposals.on_leadership_lost(eng.committed, eng.forward_to_leader())

    def _on_membership_changed(self, cmd: C.MembershipChanged) -> None:
        self._peers.update(dict(cmd.membership.membership.nodes))
