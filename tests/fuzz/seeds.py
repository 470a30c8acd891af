"""Seed inputs for the fuzzers: one valid frame of every message kind and of an entry batch
(each also as a bare body, for ``check_codec``'s framing modes), and valid request envelopes,
an error and an empty envelope, and a TLS hello, for the frame reader; response envelopes
for the client's reader; a real ClientHello and a real server's answer to one for the TLS
handshake. New message kinds are covered without changing this file (``MESSAGE_TYPES``)."""

from __future__ import annotations

import os

from fastraft.accel.pure import codec
from fastraft.accel.pure.entry import Entry
from fastraft.messages import MESSAGE_TYPES, wire_fields
from fastraft.net.framing import encode_error, encode_ok
from fastraft.net.tls import encode_hello

_SAMPLE = {"u64": 3, "bool": True, "bytes": b"snap", "str": "id-1",
           "entries": [Entry(1, 1, 0, b""), Entry(2, 2, 1, b"payload")]}


def sample_messages() -> list:
    return [cls(**{name: _SAMPLE[kind] for name, kind in wire_fields(cls)})
            for cls in sorted(MESSAGE_TYPES.values(), key=lambda c: c.TAG)]


def codec_seeds() -> list[bytes]:
    frames = [codec.encode_message(m) for m in sample_messages()]
    frames.append(codec.encode_entries(_SAMPLE["entries"]))
    out = []
    for f in frames:
        out.append(b"\x00" + f)  # the frame as it is
        out.append(bytes([1 if f[1] == codec.FRAME_MESSAGE else 2]) + f[codec.HEADER_SIZE:])
    return out


def frame_reader_seeds() -> list[bytes]:
    msgs = sample_messages()
    requests = [m for m in msgs if type(m).__name__.endswith("Request")]
    out = [encode_ok(i + 1, m) for i, m in enumerate(requests)]
    out.append(b"".join(out))  # pipelined
    out.append(encode_error(9, "no"))
    out.append(encode_ok(10, None))
    out.append(encode_hello("c1", 2) + out[0])
    return out


def client_reader_seeds() -> list[bytes]:
    """Answers to the client's request (id 1) in each mode of ``check_client_reader``: every
    response kind, an error, an empty answer, two pipelined, one cut short."""
    msgs = sample_messages()
    answers = [encode_ok(1, m) for m in msgs if type(m).__name__.endswith("Response")]
    answers += [encode_error(1, "no"), encode_ok(1, None), answers[0] + answers[0],
                answers[0][:-3], encode_ok(2, msgs[0])]
    return [bytes([mode]) + a for mode in range(3) for a in answers]


def tls_handshake_seeds() -> list[bytes]:
    """A real server's answer to a ClientHello (mode 0: to the dialling client) and a real
    ClientHello (mode 1: to the server), whole and cut."""
    from peer_targets import client_hello, server_flight

    flight, hello = server_flight(), client_hello()
    return [b"\x00" + flight, b"\x00" + flight[:64], b"\x01" + hello, b"\x01" + hello[:64]]


def write(directory: str, seeds: list[bytes]) -> None:
    os.makedirs(directory, exist_ok=True)
    for i, data in enumerate(seeds):
        with open(os.path.join(directory, f"seed-{i:03d}"), "wb") as f:
            f.write(data)
