"""The cache of a log's newest entries, pure-Python twin of ``fastraft.accel.compiled.log_cache``
(this file is the spec): a leader replicates from it without reading storage.

The cache is a suffix of the log, [cache_lo, last_index + 1), bounded in entries and bytes; the
oldest entries are evicted first. Beside the entries it keeps their running byte totals, so the
byte limit of a slice is one binary search.

Invariant: the cache holds exactly the entries [cache_lo, last_index + 1), a suffix of the log,
    with cached_count <= max_cached_entries and cached_bytes <= max_cached_bytes.

Sizes: an entry counts ``len(payload) + ENTRY_OVERHEAD_BYTES`` bytes, its encoded size inside a
message (the codec's per-entry header: term u64, index u64, kind u8, length u32), used both for
the cache bound and for the byte limit of ``entries()``.

``LogCache`` extends ``LogTerms`` (the log ids the cache is a suffix of) and is the base of
``LogIndex`` (log_index), whose changes keep the runs and the cache in step.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right

from fastraft.accel.pure.entry import Entry
from fastraft.accel.pure.log_terms import LogTerms

__all__ = ["LogCache", "ENTRY_OVERHEAD_BYTES"]

#: Bytes counted per entry on top of its payload (term, index, kind, length prefix), as the
#: codec's ENTRY_HEADER_SIZE.
ENTRY_OVERHEAD_BYTES = 21

# Drop the evicted head of the cache lists once it is this long and at least half of them,
# so eviction stays amortized O(1) without a ring buffer.
_COMPACT_MIN = 1024


class LogCache(LogTerms):
    """The log ids and runs of ``LogTerms``, and a bounded cache of the newest entries.

    Read-only attributes: those of ``LogTerms``, ``max_cached_entries``, ``max_cached_bytes``.
    """

    __slots__ = ("max_cached_entries", "max_cached_bytes", "_cache", "_cum", "_head",
                 "_base_bytes")

    def __init__(self, max_cached_entries: int = 4096, max_cached_bytes: int = 64 << 20) -> None:
        """An empty log (last log id (0, 0)) with an empty cache.

        ``max_cached_entries`` >= 0 and ``max_cached_bytes`` >= 0 bound the cache (0 disables
        it). Raises ValueError on a negative bound.
        """
        max_cached_entries = int(max_cached_entries)
        max_cached_bytes = int(max_cached_bytes)
        if max_cached_entries < 0 or max_cached_bytes < 0:
            raise ValueError("cache bounds must be >= 0")
        super().__init__()
        self.max_cached_entries = max_cached_entries
        self.max_cached_bytes = max_cached_bytes
        # The cache: _cache[_head:] are the entries [cache_lo, last_index]; _cum[k] is the
        # running byte total through _cache[k]; _base_bytes is the total before _cache[_head].
        self._cache: list[Entry] = []
        self._cum: list[int] = []
        self._head = 0
        self._base_bytes = 0

    # -- reading -------------------------------------------------------------------------------

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


    def _cache_cut_after(self, index: int) -> None:
        # Drop the cached entries after ``index`` (the log is cut there). Requires
        # index < last_index, before last_index moves.
        cache_lo = self.cache_lo
        if index < cache_lo:
            self._cache_clear()
        else:
            keep = self._head + (index + 1 - cache_lo)
            del self._cache[keep:]
            del self._cum[keep:]

    def _cache_drop_upto(self, index: int) -> None:
        # Evict the cached entries up to and including ``index`` (they are purged). Requires
        # index <= last_index.
        cache_lo = self.cache_lo
        if index >= cache_lo:
            drop = index + 1 - cache_lo
            self._base_bytes = self._cum[self._head + drop - 1]
            self._head += drop
            self._maybe_compact()
