"""Bounds on what strangers can make the Raft TCP listener hold: connections, time and bytes.

``ListenerLimits`` (every field has a safe default; all are per listener)::

    max_connections           connections open at once; beyond it a new one is closed at
                              once. Clamped at start to a quarter of the process's soft fd
                              limit, so that the HTTP side keeps accepting when the Raft port
                              is flooded.
    handshake_timeout_s       a TLS handshake, and the hello frame after it, must end within this
    frame_timeout_s           a frame whose first byte has arrived must be complete within this
    idle_timeout_s            a connection that sends nothing for this long is closed (a peer
                              that has requests to send dials again: the client side redials on
                              its next request)
    max_buffered_bytes        bytes one connection may hold unparsed; a frame announced larger
                              is refused when its header arrives, and the buffer grows only with
                              bytes that arrive, never from an announced length
    max_total_buffered_bytes  the same, summed over the listener's connections: a connection
                              that finds it reached is closed. Reads already under way when
                              it is reached may each add one read (256 KiB) beyond it.
    error_log_interval_s      accept errors (EMFILE...) and refused connections are logged at
                              most once per this many seconds, with a count of those not logged

``ListenerStats`` counts what the listener holds and refused (for metrics and tests).
``raise_fd_limit()`` raises the process's soft fd limit to its hard limit (a node calls it at
start).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import trio

__all__ = ["ListenerLimits", "ListenerStats", "RateLimitedLog", "raise_fd_limit", "soft_fd_limit"]


@dataclass(frozen=True)
class ListenerLimits:
    max_connections: int = 256
    handshake_timeout_s: float = 5.0
    frame_timeout_s: float = 15.0
    idle_timeout_s: float = 300.0
    max_buffered_bytes: int = 16 << 20
    max_total_buffered_bytes: int = 64 << 20
    error_log_interval_s: float = 1.0

    def __post_init__(self) -> None:
        for name in ("max_connections", "max_buffered_bytes", "max_total_buffered_bytes"):
            if type(getattr(self, name)) is not int or getattr(self, name) < 1:
                raise ValueError(f"{name} must be a positive int, got {getattr(self, name)!r}")
        for name in ("handshake_timeout_s", "frame_timeout_s", "idle_timeout_s",
                     "error_log_interval_s"):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or not v > 0 or math.isnan(v):
                raise ValueError(f"{name} must be a positive number of seconds, got {v!r}")
        if self.max_total_buffered_bytes < self.max_buffered_bytes:
            raise ValueError("max_total_buffered_bytes must be >= max_buffered_bytes")

    def clamped(self) -> "ListenerLimits":
        """These limits with ``max_connections`` at most a quarter of the soft fd limit."""
        cap = max(1, soft_fd_limit() // 4)
        if self.max_connections <= cap:
            return self
        return ListenerLimits(**{**self.__dict__, "max_connections": cap})


class ListenerStats:
    """What a listener holds now and has refused so far. ``buffered_bytes`` is the sum of the
    connections' receive buffers (``peak_buffered_bytes`` its highest value)."""

    def __init__(self) -> None:
        self.connections = 0
        self.accepted = 0
        self.refused_connections = 0
        self.refused_handshakes = 0
        self.refused_senders = 0  # messages dropped: their sender is not the authenticated peer
        self.timeouts = 0
        self.buffered_bytes = 0
        self.peak_buffered_bytes = 0

    def charge(self, delta: int) -> None:
        self.buffered_bytes += delta
        if self.buffered_bytes > self.peak_buffered_bytes:
            self.peak_buffered_bytes = self.buffered_bytes

    def as_dict(self) -> dict:
        return dict(self.__dict__)


class RateLimitedLog:
    """Log one message per ``interval_s`` at most; the next one says how many were skipped."""

    def __init__(self, logger: logging.Logger, interval_s: float) -> None:
        self._log = logger
        self._interval_s = interval_s
        self._next_at = -math.inf
        self._skipped = 0

    def __call__(self, level: int, fmt: str, *args) -> None:
        now = trio.current_time()
        if now < self._next_at:
            self._skipped += 1
            return
        self._next_at = now + self._interval_s
        skipped, self._skipped = self._skipped, 0
        if skipped:
            fmt += " (%d more like it not logged)"
            args = (*args, skipped)
        self._log.log(level, fmt, *args)


def soft_fd_limit() -> int:
    try:
        import resource
    except ImportError:  # not POSIX
        return 1 << 16
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return soft if soft != resource.RLIM_INFINITY else 1 << 20


def raise_fd_limit(log: logging.Logger | None = None) -> int:
    """Raise the soft limit on open files to the hard limit; return the soft limit now."""
    try:
        import resource
    except ImportError:
        return soft_fd_limit()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError) as e:  # e.g. macOS caps it below an infinite hard limit
            if log is not None:
                log.info("could not raise the open-file limit from %d to %d: %s", soft, hard, e)
    return soft_fd_limit()
