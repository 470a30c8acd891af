# cython: language_level=3, boundscheck=False, wraparound=False
"""The log entry, compiled. Twin: fastraft/accel/pure/entry.py (the spec)."""

from libc.stdint cimport uint64_t, uint8_t

_KIND_NAMES = ("BLANK", "NORMAL", "MEMBERSHIP")


cdef class Entry:
    """One log entry: ``term``, ``index``, ``kind`` (an ``EntryKind`` value) and ``payload``.

    Immutable; equal when all four fields are equal. ``term`` and ``index`` are u64,
    ``kind`` is 0..255 (known kinds: 0 blank, 1 normal, 2 membership), ``payload`` is bytes.
    """

    def __init__(self, term, index, kind=1, payload=b""):
        if type(payload) is not bytes:
            if isinstance(payload, (bytearray, memoryview)):
                payload = bytes(payload)
            else:
                raise TypeError(f"payload must be bytes, not {type(payload).__name__}")
        if term < 0 or index < 0:
            raise OverflowError("term and index must fit in an unsigned 64-bit integer")
        if kind < 0 or kind > 255:
            raise OverflowError("kind must fit in an unsigned 8-bit integer")
        self.term = term
        self.index = index
        self.kind = kind
        self.payload = payload

    def __eq__(self, other):
        if not hasattr(other, "payload") or not hasattr(other, "kind"):
            return NotImplemented
        return (self.term == other.term and self.index == other.index
                and self.kind == other.kind and self.payload == other.payload)

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


cdef Entry make_entry(uint64_t term, uint64_t index, uint8_t kind, bytes payload):
    """Build an Entry without the Python-level __init__ (the hot path of decode and propose)."""
    cdef Entry e = Entry.__new__(Entry)
    e.term = term
    e.index = index
    e.kind = kind
    e.payload = payload
    return e
