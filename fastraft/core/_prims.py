"""The one place the engine takes its accelerated primitives from: the set that
``fastraft.accel`` chose (compiled, or the pure twins with ``FASTRAFT_PURE_PYTHON=1``), never a
mix, so the log index builds the same ``Entry`` the codec decodes. ``Engine.with_primitives``
builds an engine on the other flavour when a process needs both (benchmarks, differential
tests)."""

from __future__ import annotations

from fastraft import accel

__all__ = ["Entry", "LogIndex", "ProgressTracker", "progress", "log_index",
           "ENTRY_OVERHEAD_BYTES", "KIND_MEMBERSHIP"]

log_index = accel.log_index
progress = accel.progress

Entry = accel.entry.Entry
LogIndex = log_index.LogIndex
ProgressTracker = progress.ProgressTracker
ENTRY_OVERHEAD_BYTES = log_index.ENTRY_OVERHEAD_BYTES
KIND_MEMBERSHIP = log_index.KIND_MEMBERSHIP
