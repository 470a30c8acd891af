"""The integer bounds every pure twin shares, pure-Python twin of
``ext/fastraft/accel/compiled/ints.pxd`` (the compiled modules' inline helpers): log indexes,
terms and rounds are u64 and lengths u32, as on the wire.
"""

from __future__ import annotations

__all__ = ["MAX_U64", "MAX_U32", "check_u64"]

#: The largest u64 (an index, a term, a round).
MAX_U64 = (1 << 64) - 1
#: The largest u32 (a length or a count on the wire).
MAX_U32 = (1 << 32) - 1


def check_u64(value: int) -> None:
    """OverflowError unless ``value`` fits in a u64."""
    # What the tracker stores is a log index or a round: a u64, as on the wire (the compiled
    # tracker keeps them in C words, so a larger value has nowhere to go).
    if value > MAX_U64:
        raise OverflowError(f"{value} does not fit in an unsigned 64-bit integer")
