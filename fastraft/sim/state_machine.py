"""The simulated clients' state machine: a key-value register per key, plus a running digest.

Commands are ``put <op_id> <key> <value>`` (ASCII, one space between fields). Every applied
entry, whatever its kind, folds into ``digest``: two nodes that applied the same entries in the
same order hold the same digest, so comparing digests per index compares whole states.

Invariant: ``applied`` is the index of the last entry applied (or of the snapshot restored);
entries are applied at applied + 1 only.
"""

from __future__ import annotations

import hashlib
import json

from fastraft.errors import CodecError
from fastraft.types import EntryKind, LogId, Membership, StoredMembership

__all__ = ["KVStateMachine", "encode_put", "decode_put"]

_EMPTY_DIGEST = bytes(16)


def encode_put(op_id: int, key: str, value: str) -> bytes:
    return b"put %d %s %s" % (op_id, key.encode(), value.encode())


def decode_put(payload: bytes) -> tuple[int, str, str] | None:
    """(op_id, key, value) of a put command, None for any other payload."""
    parts = payload.split(b" ")
    if len(parts) != 4 or parts[0] != b"put":
        return None
    try:
        return int(parts[1]), parts[2].decode(), parts[3].decode()
    except (ValueError, UnicodeDecodeError):
        return None


def fold_digest(digest: bytes, term: int, index: int, kind: int, payload: bytes) -> bytes:
    h = hashlib.blake2b(digest, digest_size=16)
    h.update(b"%d/%d/%d/" % (term, index, kind))
    h.update(payload)
    return h.digest()


class KVStateMachine:
    """kv: key -> last value put; applied/applied_term: the last entry applied; membership:
    the last membership applied; digest: see the module docstring."""

    __slots__ = ("kv", "applied", "applied_term", "membership", "digest")

    def __init__(self) -> None:
        self.kv: dict[str, str] = {}
        self.applied = 0
        self.applied_term = 0
        self.membership = StoredMembership()
        self.digest = _EMPTY_DIGEST

    @property
    def applied_id(self) -> LogId | None:
        return LogId(self.applied_term, self.applied) if self.applied else None

    def apply(self, entry) -> tuple[int, str, str] | None:
        """Apply one entry at applied + 1; returns the put it carried, if any. Raises
        ValueError for an entry at any other index."""
        if entry.index != self.applied + 1:
            raise ValueError(f"apply of entry {entry.index} after {self.applied}")
        put = None
        if entry.kind == EntryKind.NORMAL:
            put = decode_put(entry.payload)
            if put is not None:
                self.kv[put[1]] = put[2]
        elif entry.kind == EntryKind.MEMBERSHIP:
            self.membership = StoredMembership(LogId(entry.term, entry.index),
                                               Membership.from_bytes(entry.payload))
        self.applied = entry.index
        self.applied_term = entry.term
        self.digest = fold_digest(self.digest, entry.term, entry.index, entry.kind,
                                  entry.payload)
        return put

    def to_bytes(self) -> bytes:
        m = self.membership
        doc = {
            "kv": sorted(self.kv.items()),
            "applied": [self.applied_term, self.applied],
            "digest": self.digest.hex(),
            "membership": None if m.log_id is None else
            [m.log_id.term, m.log_id.index, m.membership.to_bytes().decode()],
        }
        return json.dumps(doc, separators=(",", ":")).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> "KVStateMachine":
        """Inverse of ``to_bytes``; CodecError on anything else."""
        try:
            doc = json.loads(bytes(data).decode())
            sm = cls()
            sm.kv = {str(k): str(v) for k, v in doc["kv"]}
            sm.applied_term, sm.applied = (int(x) for x in doc["applied"])
            sm.digest = bytes.fromhex(doc["digest"])
            mem = doc["membership"]
            if mem is not None:
                sm.membership = StoredMembership(LogId(int(mem[0]), int(mem[1])),
                                                 Membership.from_bytes(mem[2].encode()))
            return sm
        except CodecError:
            raise
        except (ValueError, TypeError, KeyError, UnicodeDecodeError) as e:
            raise CodecError(f"bad state machine snapshot: {e}") from None
