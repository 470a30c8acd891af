"""A latency histogram cheap enough for the write path: fixed bucket bounds, one bisect and
three additions per observation, no lock (observed on the trio thread only), no allocation.

Its shape is Prometheus's (cumulative buckets by upper bound, a sum and a count), so an
exporter can serve it as is; fastraft itself depends on no metrics library.
"""

from __future__ import annotations

from bisect import bisect_left

__all__ = ["LatencyHistogram", "DEFAULT_BOUNDS_S"]

#: Upper bounds in seconds: 50 µs (a fast SSD's fsync) to 10 s (a stalled disk).
DEFAULT_BOUNDS_S: tuple[float, ...] = (
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
    0.5, 1.0, 2.5, 5.0, 10.0)


class LatencyHistogram:
    """Counts of observed durations by bucket (``bounds`` ascending, a value lands in the
    first bucket whose bound is >= it, or past the last), with their count and sum.

    Invariant: ``count == sum(self.counts)``; ``len(counts) == len(bounds) + 1``.
    """

    __slots__ = ("bounds", "counts", "count", "sum")

    def __init__(self, bounds: tuple[float, ...] = DEFAULT_BOUNDS_S) -> None:
        if list(bounds) != sorted(set(bounds)) or not bounds:
            raise ValueError("bounds must be ascending and distinct")
        self.bounds = tuple(bounds)
        self.counts = [0] * (len(bounds) + 1)
        self.count = 0
        self.sum = 0.0

    def observe(self, seconds: float) -> None:
        self.counts[bisect_left(self.bounds, seconds)] += 1
        self.count += 1
        self.sum += seconds

    def cumulative(self) -> list[tuple[float, int]]:
        """``(upper bound, observations <= it)`` for each bound, then ``(inf, count)``."""
        out = []
        running = 0
        for bound, n in zip(self.bounds + (float("inf"),), self.counts):
            running += n
            out.append((bound, running))
        return out
