"""The state machine every library runs in the cluster benchmarks (raftbench's reference):
``state[key] = value; applied += 1``, in a dict in memory, as PySyncObj's does.

A NORMAL entry's payload is the command: ``key`` as a u32 (little-endian) then ``value``.
Snapshots use the KV example's snapshot format (``fastraft.kv.snapshot_format``), keys as
decimal strings and values in hex (the format holds UTF-8 text), so installing one is checked
frame by frame like any other.
"""

from __future__ import annotations

import io
import operator
import os
import struct
from typing import BinaryIO, Sequence

from fastraft.errors import CodecError, StorageError
from fastraft.kv.snapshot_format import SnapshotWriter, read_snapshot
from fastraft.kv.state_machine import check_snapshot_matches
from fastraft.storage.protocols import Snapshot, StateMachine
from fastraft.types import EntryKind, LogId, Membership, SnapshotMeta, StoredMembership

__all__ = ["DictStateMachine", "encode_put"]

_KEY = struct.Struct("<I")
_key = operator.itemgetter(slice(0, 4))  # the key, kept as its 4 bytes
_value = operator.itemgetter(slice(4, None))


def encode_put(key: int, value: bytes) -> bytes:
    """The payload of ``put(key, value)``."""
    return _KEY.pack(key) + value


class DictStateMachine(StateMachine):
    """``applied`` counts the NORMAL entries applied (raftbench's consistency check)."""

    def __init__(self) -> None:
        self.data: dict[bytes, bytes] = {}  # the key's 4 bytes -> value
        self.applied = 0
        self._last_applied: LogId | None = None
        self._membership = StoredMembership()
        self._snapshot: tuple[SnapshotMeta, bytes] | None = None
        self._closed = False

    def _check_open(self) -> None:
        if self._closed:
            raise StorageError("the benchmark state machine is closed")

    async def applied_state(self):
        self._check_open()
        return self._last_applied, self._membership

    async def apply(self, entries: Sequence) -> list:
        self._check_open()
        if not entries:
            return []
        kinds = [e.kind for e in entries]
        if kinds.count(EntryKind.NORMAL) == len(kinds):
            # the common batch: all puts, applied with C-level iteration
            payloads = [e.payload for e in entries]
            self.data.update(zip(map(_key, payloads), map(_value, payloads)))
            self.applied += len(payloads)
        else:
            for e, kind in zip(entries, kinds):
                if kind == EntryKind.NORMAL:
                    self.data[_key(e.payload)] = _value(e.payload)
                    self.applied += 1
                elif kind == EntryKind.MEMBERSHIP:
                    self._membership = StoredMembership(LogId(e.term, e.index),
                                                        Membership.from_bytes(e.payload))
        last = entries[-1]
        self._last_applied = LogId(last.term, last.index)
        return [None] * len(entries)

    async def build_snapshot(self) -> Snapshot:
        self._check_open()
        meta = SnapshotMeta(self._last_applied, self._membership,
                            f"{self._last_applied.term}-{self._last_applied.index}-{os.urandom(4).hex()}"
                            if self._last_applied else f"0-0-{os.urandom(4).hex()}")
        out = io.BytesIO()
        w = SnapshotWriter(out, meta)
        named = sorted((str(_KEY.unpack(k)[0]).encode(), v) for k, v in self.data.items())
        for name, value in named:
            w.add(name, value.hex().encode())
        w.add(b"~applied", str(self.applied).encode())  # '~' sorts after every digit
        w.finish()
        self._snapshot = (meta, out.getvalue())
        return Snapshot(meta, io.BytesIO(self._snapshot[1]))

    async def get_current_snapshot(self) -> Snapshot | None:
        self._check_open()
        if self._snapshot is None:
            return None
        return Snapshot(self._snapshot[0], io.BytesIO(self._snapshot[1]))

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
        state, applied = {}, 0
        for k, v in pairs:
            if k == b"~applied":
                applied = int(v)
            else:
                try:
                    state[_KEY.pack(int(k))] = bytes.fromhex(v.decode())
                except (ValueError, struct.error) as e:
                    raise CodecError(f"bad benchmark snapshot pair: {e}") from None
        self.data, self.applied = state, applied
        self._last_applied = meta.last_log_id
        self._membership = meta.last_membership
        self._snapshot = (meta, blob)

    async def aclose(self) -> None:
        self._closed = True
