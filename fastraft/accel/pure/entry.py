"""The log entry, pure-Python twin of ``fastraft.accel.compiled.entry`` (the spec)."""

from __future__ import annotations

from fastraft.accel.pure.ints import MAX_U64 as _MAX_U64

_KIND_NAMES = ("BLANK", "NORMAL", "MEMBERSHIP")


class Entry:
    """One log entry: ``term``, ``index``, ``kind`` (an ``EntryKind`` value) and ``payload``.

    Immutable; equal when all four fields are equal. ``term`` and ``index`` are u64,
    ``kind`` is 0..255 (known kinds: 0 blank, 1 normal, 2 membership), ``payload`` is bytes.
    """

    __slots__ = ("term", "index", "kind", "payload")

    def __init__(self, term, index, kind=1, payload=b""):
        term = int(term)
        index = int(index)
        kind = int(kind)
        if not 0 <= term <= _MAX_U64 or not 0 <= index <= _MAX_U64:
            raise OverflowError("term and index must fit in an unsigned 64-bit integer")
        if not 0 <= kind <= 255:
            raise OverflowError("kind must fit in an unsigned 8-bit integer")
        if type(payload) is not bytes:
            if isinstance(payload, (bytearray, memoryview)):
                payload = bytes(payload)
            else:
                raise TypeError(f"payload must be bytes, not {type(payload).__name__}")
        setattr_ = object.__setattr__
        setattr_(self, "term", term)
        setattr_(self, "index", index)
        setattr_(self, "kind", kind)
        setattr_(self, "payload", payload)

    def __setattr__(self, name, value):
        raise AttributeError("Entry is immutable")

    __delattr__ = __setattr__

    def __eq__(self, other):
        if not hasattr(other, "payload") or not hasattr(other, "kind"):
            return NotImplemented
        return (self.term, self.index, self.kind, self.payload) == (
            other.term, other.index, other.kind, other.payload)

    def __ne__(self, other):
        eq = self.__eq__(other)
        return eq if eq is NotImplemented else not eq

    def __hash__(self):
        return hash((self.term, self.index, self.kind, self.payload))

    def __repr__(self):
        kind = _KIND_NAMES[self.kind] if self.kind < len(_KIND_NAMES) else str(self.kind)
        return f"Entry(term={self.term}, index={self.index}, kind={kind}, payload={self.payload!r})"

    def __reduce__(self):
        return (type(self), (self.term, self.index, self.kind, self.payload))
