"""Argument checks every store shares, so that all backends refuse the same misuse with the
same ValueError before anything is written (openraft 0.8.3's defensive checks, told for
fastraft's split of log store and state machine).

A refused call changes nothing stored: every check here runs before the store writes.
"""

from __future__ import annotations

import operator
from operator import attrgetter
from typing import Sequence

from ..types import LogId, Vote

__all__ = ["check_append", "check_range", "check_truncate", "check_purge", "check_vote",
           "check_batch", "check_apply"]

_index = attrgetter("index")
_term = attrgetter("term")


def check_vote(current: Vote | None, vote: Vote) -> None:
    """Refuse a vote that would go back (Raft §5.2: currentTerm only grows, and a node votes
    for at most one candidate per term).

    Within one term a vote may move from nobody to a candidate, and from not committed to
    committed (a leader was established, openraft's committed vote); it may not move to
    another candidate, back to nobody, or back from committed.
    """
    if not isinstance(vote, Vote):
        raise TypeError(f"save_vote takes a Vote, not {type(vote).__name__}")
    if current is None or vote == current or vote.term > current.term:
        return
    if vote.term < current.term:
        raise ValueError(f"vote {vote} would take the term back from {current.term}")
    if current.committed:
        raise ValueError(f"vote {vote} would replace the committed vote {current} of term "
                         f"{current.term}")
    if not vote.committed and current.node_id not in (0, vote.node_id):
        raise ValueError(f"vote {vote} would change the vote of term {current.term} from "
                         f"node {current.node_id} (one vote per term, Raft §5.2)")


def check_batch(entries: Sequence, what: str) -> None:
    """Refuse an empty batch, a batch whose indexes are not consecutive (a gap or a repeat
    anywhere inside it), or whose terms decrease. The comparisons run in C (map, list
    equality), not in a Python loop per entry."""
    n = len(entries)
    if n == 0:
        raise ValueError(f"{what} needs at least one entry")
    first = entries[0].index
    if n > 1:
        if list(map(_index, entries)) != list(range(first, first + n)):
            raise ValueError(f"{what}: the indexes of a batch of {n} entries from {first} are "
                             "not consecutive")
        terms = list(map(_term, entries))
        if terms != sorted(terms):
            raise ValueError(f"{what}: terms decrease within the batch of {n} entries from "
                             f"{first}")


def check_append(entries: Sequence, next_index: int, last_term: int) -> None:
    """Refuse a batch that cannot follow a log ending before ``next_index`` with
    ``last_term`` (Raft §5.3: a log is contiguous and its terms never decrease).

    Every entry's index and term is checked (``check_batch``), so a gap inside the batch is
    refused too, not only one at its ends.
    """
    check_batch(entries, "append")
    first = entries[0]
    if first.index != next_index:
        raise ValueError(
            f"append starts at index {first.index}, but the log's next index is {next_index} "
            "(the log must stay contiguous; truncate a conflicting suffix first)")
    if first.term < last_term:
        raise ValueError(f"entry {first.index} has term {first.term}, below the log's last "
                         f"term {last_term} (terms in a log never decrease)")


def check_range(lo: int, hi: int, max_entries: int | None) -> tuple[int, int]:
    """(lo, hi) as ints; TypeError for things that are not integers, ValueError for a limit
    below 1."""
    if type(lo) is not int or type(hi) is not int:
        lo, hi = operator.index(lo), operator.index(hi)
    if max_entries is not None and max_entries < 1:
        raise ValueError(f"max_entries must be at least 1, got {max_entries}")
    return lo, hi


def check_truncate(since_index: int, last_purged: LogId | None,
                   committed: LogId | None = None) -> None:
    """Refuse to truncate into the purged or the committed prefix of the log (Raft §5.4:
    committed entries stay); ``committed`` is the id the store saved with save_committed."""
    floor = 0 if last_purged is None else last_purged.index
    if committed is not None and committed.index > floor:
        floor = committed.index
    if since_index <= floor:
        raise ValueError(f"cannot truncate since index {since_index}: entries up to {floor} "
                         "are purged or committed (Raft §5.4: committed entries stay)")


def check_purge(upto: LogId, committed: LogId | None = None) -> None:
    """Refuse to purge past the committed id the store saved (only committed, hence applied
    and snapshotted, entries may be purged, Raft §7); a store that saved none checks only
    the type."""
    if not isinstance(upto, LogId):
        raise TypeError(f"purge takes a LogId, not {type(upto).__name__}")
    if committed is not None and upto.index > committed.index:
        raise ValueError(f"cannot purge up to {upto}: only entries up to the committed "
                         f"{committed} may be purged (Raft §7: a snapshot covers them)")


def check_apply(entries: Sequence, last_applied: LogId | None) -> None:
    """Refuse an apply that does not continue right after ``last_applied``: empty, a gap or
    repeat (inside the batch or against ``last_applied``), or a term below the last applied
    one. Applying an entry twice or skipping one would make the replica diverge (Raft §5.3)."""
    check_batch(entries, "apply")
    first = entries[0]
    expected = 1 if last_applied is None else last_applied.index + 1
    if first.index != expected:
        raise ValueError(f"apply of entries from {first.index} does not continue after the "
                         f"last applied index {expected - 1}")
    if last_applied is not None and first.term < last_applied.term:
        raise ValueError(f"apply of entry {first.index} with term {first.term}, below the "
                         f"last applied term {last_applied.term}")
