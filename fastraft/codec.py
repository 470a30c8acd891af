"""The wire and storage format of fastraft: log entries and Raft messages as checksummed,
length-prefixed frames.

This module re-exports the codec flavour chosen by ``fastraft.accel`` (the compiled one, or
its pure-Python twin when FASTRAFT_PURE_PYTHON=1 or no compiler was available); both raise
the same exceptions with the same messages. The frame layout is documented in
``fastraft.accel.pure.codec``.

* ``encode_entries(entries) -> bytes`` / ``decode_entries(data) -> list[Entry]``: a batch of
  entries in one frame with one checksum (replication, snapshots of the log tail).
* ``encode_entry_records(entries) -> list[bytes]`` / ``decode_entry_records(records)`` /
  ``decode_entry_record(record)``: one self-checking frame per entry (the log store).
* ``encode_message(msg) -> bytes`` / ``decode_message(data) -> Message``: one Raft message
  (``fastraft.messages``) per frame.
* ``frame_size(header) -> int``: validate the first HEADER_SIZE bytes of a frame read from a
  stream and return the whole frame's length, so exactly one frame is read.

Every decode function takes ``max_frame_bytes`` (DEFAULT_MAX_FRAME_BYTES, 64 MiB, unless
given), checked before anything is allocated, and raises ``fastraft.CodecError`` (a
ValueError) naming the problem for any input it cannot trust.
"""

from __future__ import annotations

from . import accel as _accel

if "codec" in _accel.MODULES:
    _impl = _accel.codec
else:  # until the compiled codec joins the chosen set, the twin is the codec
    from .accel.pure import codec as _impl

WIRE_VERSION = _impl.WIRE_VERSION
HEADER_SIZE = _impl.HEADER_SIZE
DEFAULT_MAX_FRAME_BYTES = _impl.DEFAULT_MAX_FRAME_BYTES
FRAME_ENTRIES = _impl.FRAME_ENTRIES
FRAME_MESSAGE = _impl.FRAME_MESSAGE
FRAME_RECORD = _impl.FRAME_RECORD
ENTRY_HEADER_SIZE = _impl.ENTRY_HEADER_SIZE
RECORD_OVERHEAD = _impl.RECORD_OVERHEAD
MAX_ENTRY_KIND = _impl.MAX_ENTRY_KIND

frame_size = _impl.frame_size
encode_entries = _impl.encode_entries
decode_entries = _impl.decode_entries
encode_entry_records = _impl.encode_entry_records
decode_entry_records = _impl.decode_entry_records
decode_entry_record = _impl.decode_entry_record
encode_message = _impl.encode_message
decode_message = _impl.decode_message

__all__ = [
    "WIRE_VERSION",
    "HEADER_SIZE",
    "DEFAULT_MAX_FRAME_BYTES",
    "FRAME_ENTRIES",
    "FRAME_MESSAGE",
    "FRAME_RECORD",
    "ENTRY_HEADER_SIZE",
    "RECORD_OVERHEAD",
    "MAX_ENTRY_KIND",
    "frame_size",
    "encode_entries",
    "decode_entries",
    "encode_entry_records",
    "decode_entry_records",
    "decode_entry_record",
    "encode_message",
    "decode_message",
]
