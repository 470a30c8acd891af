"""The KV example's state machine: the apply rules every backend shares, and the in-memory
one (``MemoryKVStateMachine``). The durable one is ``fastraft.kv.lmdb_state_machine``.

Entries apply in log order (Raft §5.3): BLANK does nothing (response None), MEMBERSHIP
becomes the last membership (response None), NORMAL runs a command of
``fastraft.kv.commands`` (response a dict). An entry that cannot be parsed answers
``{"error": ...}`` and changes nothing, the same on every replica.
"""

from __future__ import annotations

import io
import os
from typing import BinaryIO, Callable, Sequence

from ..errors import CodecError, StorageError
from ..storage.protocols import Snapshot, StateMachine
from ..storage.validate import check_apply
from ..types import EntryKind, LogId, Membership, SnapshotMeta, StoredMembership
from .commands import decode_command, error_response, execute
from .snapshot_format import SnapshotWriter, read_snapshot

__all__ = ["MemoryKVStateMachine", "apply_entries", "check_apply_start", "new_snapshot_id",
           "check_snapshot_matches"]


def check_apply_start(entries: Sequence, last_applied: LogId | None) -> None:
    """Refuse entries that do not continue right after ``last_applied`` (ValueError, nothing
    applied): applying an entry twice, or skipping one, would make this replica diverge
    (Raft §5.3). See ``fastraft.storage.validate.check_apply``."""
    check_apply(entries, last_applied)


def apply_entries(entries: Sequence, membership: StoredMembership,
                  get: Callable[[str], str | None],
                  write: Callable[[str, str | None], None]) -> tuple[list, StoredMembership]:
    """Apply ``entries`` through ``get``/``write`` (value None removes the key); return the
    responses and the last membership afterwards. Pure apart from ``write``."""
    responses: list = []
    for entry in entries:
        kind = entry.kind
        if kind == EntryKind.NORMAL:
            try:
                command = decode_command(entry.payload)
            except CodecError as e:
                responses.append(error_response(str(e)))
                continue
            change, response = execute(command, get)
            if change is not None:
                write(change[0], change[1])
            responses.append(response)
        elif kind == EntryKind.MEMBERSHIP:
            try:
                membership = StoredMembership(LogId(entry.term, entry.index),
                                              Membership.from_bytes(entry.payload))
            except CodecError as e:
                responses.append(error_response(str(e)))
                continue
            responses.append(None)
        else:
            responses.append(None)
    return responses, membership


def new_snapshot_id(last_log_id: LogId | None) -> str:
    """``term-index-random``: names a snapshot uniquely, and says what it covers."""
    term, index = (0, 0) if last_log_id is None else (last_log_id.term, last_log_id.index)
    return f"{term}-{index}-{os.urandom(4).hex()}"


def check_snapshot_matches(meta: SnapshotMeta, embedded: SnapshotMeta) -> None:
    """The meta a leader sent with a snapshot must be the one its bytes carry."""
    if (embedded.last_log_id != meta.last_log_id
            or embedded.last_membership != meta.last_membership):
        raise CodecError(f"snapshot data covers {embedded.last_log_id} with membership at "
                         f"{embedded.last_membership.log_id}, but its meta says "
                         f"{meta.last_log_id} and {meta.last_membership.log_id}")


class MemoryKVStateMachine(StateMachine):
    """The KV state machine in a dict; snapshots are bytes in memory (``io.BytesIO``).

    Invariant: ``_data`` is the result of applying every entry up to ``_last_applied``.
    """

    def __init__(self) -> None:
        self._data: dict[str, str] = {}
        self._last_applied: LogId | None = None
        self._membership = StoredMembership()
        self._snapshot: tuple[SnapshotMeta, bytes] | None = None
        self._closed = False

    def _check_open(self) -> None:
        if self._closed:
            raise StorageError("the memory KV state machine is closed")

    def get(self, key: str) -> str | None:
        """The value of ``key`` in the applied state (a local read: it may lag the leader)."""
        self._check_open()
        return self._data.get(key)

    async def applied_state(self) -> tuple[LogId | None, StoredMembership]:
        self._check_open()
        return self._last_applied, self._membership

    async def apply(self, entries: Sequence) -> list:
        self._check_open()
        check_apply_start(entries, self._last_applied)
        data = self._data

        def write(key: str, value: str | None) -> None:
            if value is None:
                data.pop(key, None)
            else:
                data[key] = value

        responses, self._membership = apply_entries(entries, self._membership, data.get, write)
        last = entries[len(entries) - 1]
        self._last_applied = LogId(last.term, last.index)
        return responses

    def _encode(self, meta: SnapshotMeta) -> bytes:
        out = io.BytesIO()
        writer = SnapshotWriter(out, meta)
        for key, value in sorted((k.encode(), v.encode()) for k, v in self._data.items()):
            writer.add(key, value)
        writer.finish()
        return out.getvalue()

    async def build_snapshot(self) -> Snapshot:
        self._check_open()
        meta = SnapshotMeta(self._last_applied, self._membership,
                            new_snapshot_id(self._last_applied))
        blob = self._encode(meta)
        self._snapshot = (meta, blob)
        return Snapshot(meta, io.BytesIO(blob))

    async def get_current_snapshot(self) -> Snapshot | None:
        self._check_open()
        if self._snapshot is None:
            return None
        meta, blob = self._snapshot
        return Snapshot(meta, io.BytesIO(blob))

    async def begin_receiving_snapshot(self) -> BinaryIO:
        self._check_open()
        return io.BytesIO()

    async def install_snapshot(self, meta: SnapshotMeta, data: BinaryIO) -> None:
        self._check_open()
        try:
            data.seek(0)
            blob = data.read()
        finally:
            data.close()
        embedded, pairs = read_snapshot(io.BytesIO(blob))
        check_snapshot_matches(meta, embedded)
        state = {k.decode(): v.decode() for k, v in pairs}  # complete before anything changes
        self._data = state
        self._last_applied = meta.last_log_id
        self._membership = meta.last_membership
        self._snapshot = (meta, blob)

    async def aclose(self) -> None:
        self._closed = True
        self._data = {}
        self._snapshot = None
