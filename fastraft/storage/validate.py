"""Argument checks every log store shares, so that all backends refuse the same misuse with
the same ValueError before anything is written."""

from __future__ import annotations

import operator
from typing import Sequence

from ..types import LogId

__all__ = ["check_append", "check_range", "check_truncate", "check_purge"]


def check_append(entries: Sequence, next_index: int, last_term: int) -> None:
    """Refuse a batch that cannot follow a log ending before ``next_index`` with
    ``last_term`` (Raft §5.3: a log is contiguous and its terms never decrease).

    O(1): the ends of the batch are checked (first index, last index against the length,
    first term against the log, last term against the first term), not every entry, so the
    check costs nothing per entry; the engine builds batches contiguous by construction.
    """
    n = len(entries)
    if n == 0:
        raise ValueError("append needs at least one entry")
    first, last = entries[0], entries[n - 1]
    if first.index != next_index:
        raise ValueError(
            f"append starts at index {first.index}, but the log's next index is {next_index} "
            "(the log must stay contiguous; truncate a conflicting suffix first)")
    if last.index != next_index + n - 1:
        raise ValueError(
            f"a batch of {n} entries from index {first.index} must end at "
            f"{next_index + n - 1}, not {last.index}")
    if first.term < last_term:
        raise ValueError(f"entry {first.index} has term {first.term}, below the log's last "
                         f"term {last_term} (terms in a log never decrease)")
    if last.term < first.term:
        raise ValueError(f"terms decrease within the batch ({first.term} to {last.term})")


def check_range(lo: int, hi: int, max_entries: int | None) -> tuple[int, int]:
    """(lo, hi) as ints; TypeError for things that are not integers, ValueError for a limit
    below 1."""
    if type(lo) is not int or type(hi) is not int:
        lo, hi = operator.index(lo), operator.index(hi)
    if max_entries is not None and max_entries < 1:
        raise ValueError(f"max_entries must be at least 1, got {max_entries}")
    return lo, hi


def check_truncate(since_index: int, last_purged: LogId | None) -> None:
    """Refuse to truncate into the purged (hence committed) prefix of the log."""
    floor = 0 if last_purged is None else last_purged.index
    if since_index <= floor:
        raise ValueError(f"cannot truncate since index {since_index}: entries up to {floor} "
                         "are purged, hence committed (Raft §5.4: committed entries stay)")


def check_purge(upto: LogId) -> None:
    if not isinstance(upto, LogId):
        raise TypeError(f"purge takes a LogId, not {type(upto).__name__}")
