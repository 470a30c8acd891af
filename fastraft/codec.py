"""The wire and storage format of fastraft: log entries and Raft messages as checksummed,
length-prefixed frames.

This module re-exports the codec flavour chosen by ``fastraft.accel`` (the compiled one, or
its pure-Python twin when FASTRAFT_PURE_PYTHON=1 or no compiler was available); both raise
the same exceptions with the same messages. The frame layout is documented in
``fastraft.accel.pure.codec``.

* ``encode_entries(entries) -> bytes`` / ``decode_entries(data) -> list[Entry]``: a batch of
  entries in one frame with one checksum (replication, snapshots of the log tail, and the
  blocks of the lmdb log store).
* ``encode_message(msg) -> bytes`` / ``decode_message(data) -> Message``: one Raft message
  (``fastraft.messages``) per frame.
* ``frame_size(header) -> int``: validate the first HEADER_SIZE bytes of a frame read from a
  stream and return the whole frame's length, so exactly one frame is read.

Every decode function takes ``max_frame_bytes`` (DEFAULT_MAX_FRAME_BYTES, 64 MiB, unless
given), checked before anything is allocated, and raises ``fastraft.CodecError`` (a
ValueError) naming the problem for any input it cannot trust.
"""

from __future__ import annotations

from .accel import codec as _chosen
from .accel.pure import codec as _spec

#: The public names are the twin's (the spec); their values come from the chosen flavour.
__all__ = list(_spec.__all__)
globals().update({name: getattr(_chosen, name) for name in __all__})
