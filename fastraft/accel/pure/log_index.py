"""The log index, pure-Python twin of ``fastraft.accel.compiled.log_index`` (this file is the spec).

What the engine consults on every message, without reading storage: the last log id, the
last purged log id, the term at any index, the first and last index of a term (the hints of
fast backtracking, Raft §5.3), the first conflict between incoming entries and the local log,
and a cache of the newest entries so a leader replicates without reading storage.

Terms change rarely, so terms are stored as runs: run k covers the indexes
[run_start[k], run_start[k+1]) (the last run ends at ``last_index``) and all of them have
term run_term[k]. A lookup is a binary search over the runs: O(log runs).

Invariant: purged_index <= last_index; the log holds the indexes (purged_index, last_index].
Invariant: runs cover (purged_index, last_index] exactly, starts and terms strictly increase,
    no run is empty; an empty log (last_index == purged_index) has no run.
Invariant: last_term == term of last_index (purged_term when the log is empty).
Invariant: the cache holds exactly the entries [cache_lo, last_index + 1), a suffix of the log,
    with cached_count <= max_cached_entries and cached_bytes <= max_cached_bytes.

Sizes: an entry counts ``len(payload) + ENTRY_OVERHEAD_BYTES`` bytes, its encoded size inside a
message (the codec's per-entry header: term u64, index u64, kind u8, length u32), used both for
the cache bound and for the byte limit of ``entries()``.

All methods check their arguments before changing anything: on ValueError or IndexError the
index is unchanged.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right

from fastraft.accel.pure.entry import Entry

__all__ = ["LogIndex", "ENTRY_OVERHEAD_BYTES", "KIND_MEMBERSHIP"]

#: Bytes counted per entry on top of its payload (term, index, kind, length prefix), as the
#: codec's ENTRY_HEADER_SIZE.
ENTRY_OVERHEAD_BYTES = 21
#: The entry kind whose indexes ``append_entries`` reports (``EntryKind.MEMBERSHIP``).
KIND_MEMBERSHIP = 2

_MAX_U64 = (1 << 64) - 1
# Drop the evicted head of the cache lists once it is this long and at least half of them,
# so eviction stays amortized O(1) without a ring buffer.
_COMPACT_MIN = 1024


class LogIndex:
    """Index of one node's log: term runs, purge point and a bounded cache of recent entries.

    Read-only attributes: ``last_index``, ``last_term`` (the last log id; (0, 0) for an empty
    log that was never purged), ``purged_index``, ``purged_term`` (the last purged log id,
    (0, 0) if none), ``max_cached_entries``, ``max_cached_bytes``.
    """

    __slots__ = (
        "last_index", "last_term", "purged_index", "purged_term",
        "max_cached_entries", "max_cached_bytes",
        "_run_start", "_run_term",
        "_cache", "_cum", "_head", "_base_bytes",
    )

    def __init__(self, max_cached_entries: int = 4096, max_cached_bytes: int = 64 << 20) -> None:
        """An empty log (last log id (0, 0)) with an empty cache.

        ``max_cached_entries`` >= 0 and ``max_cached_bytes`` >= 0 bound the cache (0 disables
        it). Raises ValueError on a negative bound.
        """
        max_cached_entries = int(max_cached_entries)
        max_cached_bytes = int(max_cached_bytes)
        if max_cached_entries < 0 or max_cached_bytes < 0:
            raise ValueError("cache bounds must be >= 0")
        self.max_cached_entries = max_cached_entries
        self.max_cached_bytes = max_cached_bytes
        self.last_index = 0
        self.last_term = 0
        self.purged_index = 0
        self.purged_term = 0
        self._run_start: list[int] = []
        self._run_term: list[int] = []
        # The cache: _cache[_head:] are the entries [cache_lo, last_index]; _cum[k] is the
        # running byte total through _cache[k]; _base_bytes is the total before _cache[_head].
        self._cache: list[Entry] = []
        self._cum: list[int] = []
        self._head = 0
        self._base_bytes = 0

    # -- reading -------------------------------------------------------------------------------

    @property
    def first_index(self) -> int:
        """The first index the log may hold: purged_index + 1 (the log may be empty). O(1)."""
        return self.purged_index + 1

    @property
    def cache_lo(self) -> int:
        """The first cached index; the cache is [cache_lo, last_index + 1). O(1)."""
        return self.last_index + 1 - (len(self._cache) - self._head)

    @property
    def cached_count(self) -> int:
        """Number of cached entries. O(1)."""
        return len(self._cache) - self._head

    @property
    def cached_bytes(self) -> int:
        """Counted bytes of the cached entries. O(1)."""
        if self._head == len(self._cache):
            return 0
        return self._cum[-1] - self._base_bytes

    @property
    def run_count(self) -> int:
        """Number of term runs in the log. O(1)."""
        return len(self._run_start)

    def term_runs(self) -> list[tuple[int, int]]:
        """The runs as (first_index, term) pairs, oldest first. O(runs)."""
        return list(zip(self._run_start, self._run_term))

    def term_at(self, index: int) -> int:
        """The term of the entry at ``index``; ``purged_term`` at ``purged_index``.

        Raises IndexError unless purged_index <= index <= last_index. O(log runs).
        """
        if index == self.purged_index:
            return self.purged_term
        if index < self.purged_index or index > self.last_index:
            raise IndexError(
                f"index {index} outside the log [{self.purged_index}, {self.last_index}]")
        return self._run_term[bisect_right(self._run_start, index) - 1]

    def matches(self, index: int, term: int) -> bool:
        """Whether the log has an entry (term, index): the AppendEntries consistency check
        (Raft §5.3).

        Indexes below ``purged_index`` match any term: purged entries were committed and a
        committed entry is in every later leader's log (Raft §5.4, Leader Completeness).
        False when index > last_index. Raises ValueError on a negative index. O(log runs).
        """
        if index < 0:
            raise ValueError(f"index must be >= 0, got {index}")
        if index < self.purged_index:
            return True
        if index > self.last_index:
            return False
        return self.term_at(index) == term

    def first_index_of_term(self, term: int) -> int:
        """The first index in the log (> purged_index) whose entry has ``term``, or 0 when no
        entry of the log has that term. The follower's hint on a rejection (Raft §5.3).
        O(log runs)."""
        k = bisect_right(self._run_term, term) - 1
        if k >= 0 and self._run_term[k] == term:
            return self._run_start[k]
        return 0

    def last_index_of_term(self, term: int) -> int:
        """The last index in the log whose entry has ``term``, or 0 when no entry of the log
        has that term. The leader's answer to a hint: resume after its own last entry of the
        follower's conflicting term (Raft §5.3). O(log runs)."""
        k = bisect_right(self._run_term, term) - 1
        if k >= 0 and self._run_term[k] == term:
            if k + 1 < len(self._run_start):
                return self._run_start[k + 1] - 1
            return self.last_index
        return 0

    def find_conflict(self, entries: list) -> int:
        """The index of the first entry of ``entries`` that the log lacks or holds with another
        term, or 0 when the log already holds all of them (Raft §5.3, receiver step 3).

        ``entries`` must be contiguous (each index one more than the previous); entries at or
        below ``purged_index`` count as held. Raises ValueError if they are not contiguous.
        O(len(entries) * log runs).
        """
        n = len(entries)
        if n == 0:
            return 0
        first = entries[0].index
        for k in range(n):
            if entries[k].index != first + k:
                raise ValueError("entries are not contiguous")
        purged = self.purged_index
        last = self.last_index
        for k in range(n):
            e = entries[k]
            i = e.index
            if i <= purged:
                continue
            if i > last or self.term_at(i) != e.term:
                return i
        return 0

    def check_entries(self, entries: list, prev_index: int, prev_term: int, max_term: int) -> list[int]:
        """Check that ``entries`` can follow (prev_term, prev_index) in a leader's log of term
        ``max_term``: contiguous from prev_index + 1, terms >= max(prev_term, 1), never
        decreasing, at most max_term. Reads nothing of the log: a follower runs it on an
        incoming AppendEntries before it truncates anything.

        Returns the indexes of the entries of kind MEMBERSHIP, usually []. Raises ValueError
        naming the first bad entry. O(len(entries)).
        """
        term = prev_term if prev_term > 1 else 1
        members: list[int] = []
        for k in range(len(entries)):
            e = entries[k]
            if e.index != prev_index + 1 + k:
                raise ValueError(
                    f"entry index {e.index} does not follow at {prev_index + 1 + k}")
            if e.term < term or e.term > max_term:
                raise ValueError(
                    f"entry {e.index} has term {e.term}, outside [{term}, {max_term}]")
            term = e.term
            if e.kind == KIND_MEMBERSHIP:
                members.append(e.index)
        return members

    def is_cached(self, index: int) -> bool:
        """Whether the entry at ``index`` is in the cache. O(1)."""
        return self.cache_lo <= index <= self.last_index

    def entries(self, lo: int, hi: int, max_entries: int, max_bytes: int) -> list:
        """Cached entries from ``lo``: at most ``max_entries`` of [lo, hi), stopping before the
        counted bytes would exceed ``max_bytes``, but never fewer than one when lo < hi (a
        message must make progress even with an entry larger than the limit).

        Raises IndexError unless cache_lo <= lo <= hi <= last_index + 1; ValueError if
        max_entries < 1. O(log n + returned).
        """
        if max_entries < 1:
            raise ValueError("max_entries must be >= 1")
        cache_lo = self.cache_lo
        if lo < cache_lo or hi > self.last_index + 1 or lo > hi:
            raise IndexError(
                f"[{lo}, {hi}) is not within the cached range [{cache_lo}, {self.last_index + 1})")
        if lo == hi:
            return []
        a = self._head + (lo - cache_lo)
        b = min(a + (hi - lo), a + max_entries)
        before = self._cum[a - 1] if a > self._head else self._base_bytes
        # the last position whose running total stays within the budget
        fit = bisect_right(self._cum, before + max_bytes, a, b)
        if fit == a:
            fit = a + 1
        return self._cache[a:fit]

    # -- changing ------------------------------------------------------------------------------

    def append_entries(self, entries: list) -> list[int]:
        """Append ``entries``, which must continue the log: the first at last_index + 1, each
        index one more than the previous, terms >= 1 and never decreasing (from last_term on).
        The entries are cached (evicting the oldest beyond the bounds).

        Returns the indexes of the appended entries of kind MEMBERSHIP, usually []: a
        configuration takes effect as soon as it is in the log (thesis §4.1).
        Raises ValueError if the entries do not continue the log. O(len(entries)).
        """
        n = len(entries)
        if n == 0:
            return []
        expect = self.last_index + 1
        term = self.last_term
        members: list[int] = []
        for k in range(n):
            e = entries[k]
            if e.index != expect + k:
                raise ValueError(
                    f"entry index {e.index} does not continue the log at {expect + k}")
            if e.term < term or e.term == 0:
                raise ValueError(
                    f"entry {e.index} has term {e.term}, below the log's term {term} or zero")
            term = e.term
            if e.kind == KIND_MEMBERSHIP:
                members.append(e.index)
        for k in range(n):
            t = entries[k].term
            if not self._run_term or self._run_term[-1] != t:
                self._run_start.append(expect + k)
                self._run_term.append(t)
        self.last_index = expect + n - 1
        self.last_term = term
        self._cache_extend(entries)
        return members

    def append_payloads(self, term: int, kind: int, payloads: list) -> list:
        """Create and append one entry of ``term`` and ``kind`` per payload, at indexes
        last_index + 1, ...; returns the new entries (a leader's proposals, Raft §5.3).

        Raises ValueError if term < last_term or term == 0, TypeError if a payload is not
        bytes-like, OverflowError if kind does not fit in u8; nothing is appended then.
        O(len(payloads)).
        """
        if term < self.last_term or term == 0:
            raise ValueError(f"term {term} is below the log's term {self.last_term} or zero")
        if term > _MAX_U64:
            raise OverflowError("term must fit in an unsigned 64-bit integer")
        n = len(payloads)
        if n == 0:
            return []
        start = self.last_index + 1
        new = [Entry(term, start + k, kind, payloads[k]) for k in range(n)]
        if not self._run_term or self._run_term[-1] != term:
            self._run_start.append(start)
            self._run_term.append(term)
        self.last_index = start + n - 1
        self.last_term = term
        self._cache_extend(new)
        return new

    def append_term_run(self, term: int, last_index: int) -> None:
        """Declare that the log continues with entries of ``term`` up to ``last_index``,
        without the entries (they are not cached). Rebuilds the index at start from what
        storage holds: reset(purged), then one call per run.

        Raises ValueError unless last_index > self.last_index and term >= max(last_term, 1);
        OverflowError if term or last_index does not fit in u64. O(1).
        """
        if last_index <= self.last_index:
            raise ValueError(f"run end {last_index} does not extend the log past {self.last_index}")
        if term < self.last_term or term == 0:
            raise ValueError(f"term {term} is below the log's term {self.last_term} or zero")
        if term > _MAX_U64 or last_index > _MAX_U64:
            raise OverflowError("term and index must fit in an unsigned 64-bit integer")
        if not self._run_term or self._run_term[-1] != term:
            self._run_start.append(self.last_index + 1)
            self._run_term.append(term)
        self.last_index = last_index
        self.last_term = term
        # the cache must stay a suffix of the log: entries not given cannot be cached
        self._cache_clear()

    def truncate_after(self, index: int) -> None:
        """Delete the entries after ``index``: the log then ends at ``index`` (a follower's
        conflicting suffix, Raft §5.3). No-op when index >= last_index.

        Raises ValueError if index < purged_index (purged entries are committed and can never
        conflict). O(log runs + removed runs + removed cached entries).
        """
        if index >= self.last_index:
            return
        if index < self.purged_index:
            raise ValueError(
                f"cannot truncate after {index}: entries up to {self.purged_index} are purged")
        if index == self.purged_index:
            del self._run_start[:]
            del self._run_term[:]
            self.last_term = self.purged_term
        else:
            k = bisect_right(self._run_start, index) - 1
            del self._run_start[k + 1:]
            del self._run_term[k + 1:]
            self.last_term = self._run_term[k]
        cache_lo = self.cache_lo
        if index < cache_lo:
            self._cache_clear()
        else:
            keep = self._head + (index + 1 - cache_lo)
            del self._cache[keep:]
            del self._cum[keep:]
        self.last_index = index

    def purge_upto(self, index: int) -> None:
        """Forget the entries up to and including ``index`` (log compaction, Raft §7): the last
        purged log id becomes (term_at(index), index). No-op when index <= purged_index.

        Raises IndexError if index > last_index (use ``reset`` to move past the log).
        O(log runs + removed runs).
        """
        if index <= self.purged_index:
            return
        if index > self.last_index:
            raise IndexError(f"cannot purge up to {index}: the log ends at {self.last_index}")
        term = self.term_at(index)
        if index == self.last_index:
            del self._run_start[:]
            del self._run_term[:]
        else:
            k = bisect_right(self._run_start, index + 1) - 1
            del self._run_start[:k]
            del self._run_term[:k]
            self._run_start[0] = index + 1
        cache_lo = self.cache_lo
        if index >= cache_lo:
            drop = index + 1 - cache_lo
            self._base_bytes = self._cum[self._head + drop - 1]
            self._head += drop
            self._maybe_compact()
        self.purged_index = index
        self.purged_term = term

    def reset(self, term: int, index: int) -> None:
        """Make the log empty after (term, index): purged and last log id both become
        (term, index), no run, empty cache. For a snapshot install (Raft §7) and for a start
        from storage. Raises ValueError on a negative value or when exactly one of term and
        index is 0. O(cached)."""
        if term < 0 or index < 0 or (term == 0) != (index == 0):
            raise ValueError(f"bad log id ({term}, {index})")
        if term > _MAX_U64 or index > _MAX_U64:
            raise OverflowError("term and index must fit in an unsigned 64-bit integer")
        del self._run_start[:]
        del self._run_term[:]
        self.purged_index = self.last_index = index
        self.purged_term = self.last_term = term
        self._cache_clear()

    # -- the cache -----------------------------------------------------------------------------

    def _cache_extend(self, entries: list) -> None:
        cache = self._cache
        cum = self._cum
        total = cum[-1] if cum else self._base_bytes
        for e in entries:
            total += len(e.payload) + ENTRY_OVERHEAD_BYTES
            cache.append(e)
            cum.append(total)
        # evict the oldest until both bounds hold (possibly everything)
        max_n = self.max_cached_entries
        max_b = self.max_cached_bytes
        head = self._head
        n = len(cache)
        if n - head > max_n:
            head = n - max_n
        if head < n:
            before = cum[head - 1] if head > self._head else self._base_bytes
            if total - before > max_b:
                # keep from just after the first position j whose running total leaves at
                # most max_b bytes behind it: total - cum[j] <= max_b
                head = bisect_left(cum, total - max_b, head, n) + 1
        if head != self._head:
            self._base_bytes = cum[head - 1]
            self._head = head
            self._maybe_compact()

    def _cache_clear(self) -> None:
        del self._cache[:]
        del self._cum[:]
        self._head = 0
        self._base_bytes = 0

    def _maybe_compact(self) -> None:
        head = self._head
        if head == len(self._cache):
            self._cache_clear()
        elif head >= _COMPACT_MIN and head * 2 >= len(self._cache):
            del self._cache[:head]
            del self._cum[:head]
            self._head = 0

    def __repr__(self) -> str:
        return (f"LogIndex(purged=({self.purged_term}, {self.purged_index}), "
                f"last=({self.last_term}, {self.last_index}), runs={self.run_count}, "
                f"cached=[{self.cache_lo}, {self.last_index + 1}))")
