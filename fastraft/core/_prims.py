"""The one place the engine takes its accelerated primitives from.

``fastraft.accel`` chooses the compiled or the pure set as a whole. The log index and the
progress tracker join that set once their compiled twins exist; until then the pure twins are
used here, with the chosen ``Entry`` (a pure log index works with either Entry flavour).
"""

from __future__ import annotations

from fastraft import accel

from fastraft.accel.pure import log_index as _pure_log_index
from fastraft.accel.pure import progress as _pure_progress

__all__ = ["Entry", "LogIndex", "ProgressTracker", "progress", "log_index",
           "ENTRY_OVERHEAD_BYTES", "KIND_MEMBERSHIP"]

log_index = getattr(accel, "log_index", None) or _pure_log_index
progress = getattr(accel, "progress", None) or _pure_progress

Entry = accel.entry.Entry
LogIndex = log_index.LogIndex
ProgressTracker = progress.ProgressTracker
ENTRY_OVERHEAD_BYTES = log_index.ENTRY_OVERHEAD_BYTES
KIND_MEMBERSHIP = log_index.KIND_MEMBERSHIP
