"""Argument checks every store shares, so that all backends refuse the same misuse with the
same ValueError before anything is written (openraft 0.8.3's defensive checks, told for
fastraft's split of log store and state machine).

A refused call changes nothing stored: every check here runs before the store writes.
"""

from __future__ import annotations

import operator
from typing import Sequence

from .. import accel
from ..accel.pure import log_index as pure_log_index
from ..types import LogId, Vote

__all__ = ["check_append", "check_range", "check_truncate", "check_purge", "check_vote",
           "check_batch", "check_apply"]

# check_entries reads nothing of its log index, so one shared instance serves every store
_CHECKER = accel.log_index.LogIndex()
_ATTRIBUTE_CHECKER = pure_log_index.LogIndex()
_MAX_TERM = (1 << 64) - 1


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


def check_batch(entries: Sequence, what: str, prev_index: int, prev_term: int) -> None:
    """Refuse a batch that cannot follow the entry (``prev_term``, ``prev_index``): empty,
    an index anywhere in it that is not the next one (a gap or a repeat, also inside the
    batch), or a term below ``prev_term`` or below the entry before it.

    Every entry is checked, in one call of the accelerated log index's ``check_entries``
    (a C loop in the compiled build), not in a Python loop per entry.
    """
    if len(entries) == 0:
        raise ValueError(f"{what} needs at least one entry")
    try:
        try:
            _CHECKER.check_entries(entries, prev_index, prev_term, _MAX_TERM)
        except TypeError:
            # objects the compiled checker cannot convert (a payload of the wrong type): check
            # their indexes and terms with the twin, and leave the payload to the codec's
            # error, which names the entry by its position
            _ATTRIBUTE_CHECKER.check_entries(entries, prev_index, prev_term, _MAX_TERM)
    except ValueError as e:
        raise ValueError(f"{what} of {len(entries)} entries after index {prev_index}: "
                         f"{e}") from None


def check_append(entries: Sequence, next_index: int, last_term: int) -> None:
    """Refuse a batch that cannot follow a log ending before ``next_index`` with
    ``last_term`` (Raft §5.3: a log is contiguous and its terms never decrease).

    Every entry's index and term is checked (``check_batch``), so a gap inside the batch is
    refused too, not only one at its ends.
    """
    if len(entries) and entries[0].index != next_index:
        raise ValueError(
            f"append starts at index {entries[0].index}, but the log's next index is "
            f"{next_index} (the log must stay contiguous; truncate a conflicting suffix first)")
    check_batch(entries, "append", next_index - 1, last_term)


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
    expected = 1 if last_applied is None else last_applied.index + 1
    if len(entries) and entries[0].index != expected:
        raise ValueError(f"apply of entries from {entries[0].index} does not continue after "
                         f"the last applied index {expected - 1}")
    check_batch(entries, "apply", expected - 1, 0 if last_applied is None else last_applied.term)
