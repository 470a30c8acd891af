"""Unit tests of the codec, one operation at a time, against both flavours (compiled and pure
twin) in every run, plus the public module fastraft.codec (the flavour the chooser picked).

The frame layout asserted here is the one documented in fastraft.accel.pure.codec.
"""

import importlib
import struct
import tracemalloc
from dataclasses import make_dataclass

import crc32c
import pytest

import fastraft
from fastraft import CodecError, accel, codec
from fastraft.messages import (MESSAGE_TYPES, AppendEntriesRequest, VoteRequest, VoteResponse,
                               wire_fields)

FLAVOURS = ("compiled", "pure")
HEADER = struct.Struct("<BBHII")


@pytest.fixture(params=FLAVOURS)
def flavour(request):
    """(codec module, Entry class) of one flavour."""
    mod = importlib.import_module(f"fastraft.accel.{request.param}.codec")
    entry = importlib.import_module(f"fastraft.accel.{request.param}.entry")
    return mod, entry.Entry


def frame(kind, body, version=2, reserved=0, crc=None):
    """A frame with any header fields, checksum correct unless given."""
    crc = crc32c.crc32c(body) if crc is None else crc
    return HEADER.pack(version, kind, reserved, len(body), crc) + body


def entry_bytes(term, index, kind, payload):
    return struct.pack("<QQBI", term, index, kind, len(payload)) + payload


class Duck:
    """Not an Entry, but has the four attributes the codec reads."""

    def __init__(self, term, index, kind, payload):
        self.term, self.index, self.kind, self.payload = term, index, kind, payload


# --- constants and layout ----------------------------------------------------------------


def test_constants(flavour):
    m, _ = flavour
    assert (m.WIRE_VERSION, m.HEADER_SIZE, m.DEFAULT_MAX_FRAME_BYTES) == (2, 12, 64 << 20)
    assert (m.FRAME_ENTRIES, m.FRAME_MESSAGE) == (1, 2)
    assert (m.ENTRY_HEADER_SIZE, m.MAX_ENTRY_KIND) == (21, 2)
    assert m.MAX_ENTRY_KIND == max(fastraft.EntryKind)


def test_entry_batch_layout_is_the_documented_one(flavour):
    m, E = flavour
    data = m.encode_entries([E(2, 7, 1, b"abc"), E(2, 8, 0, b"")])
    body = struct.pack("<I", 2) + entry_bytes(2, 7, 1, b"abc") + entry_bytes(2, 8, 0, b"")
    assert data == frame(1, body)
    assert m.frame_size(data) == len(data) == 12 + 4 + 2 * 21 + 3


def test_message_layout_is_the_documented_one(flavour):
    m, E = flavour
    msg = VoteResponse(term=5, sender=3, granted=True)
    body = bytes([VoteResponse.TAG])
    for name, kind in wire_fields(VoteResponse):
        value = getattr(msg, name)
        body += struct.pack("<Q", value) if kind == "u64" else bytes([value])
    assert m.encode_message(msg) == frame(2, body)


# --- entry batches -----------------------------------------------------------------------


def test_entries_round_trip_with_every_kind_and_edge_values(flavour):
    m, E = flavour
    entries = [E(0, 0, 0, b""), E(1, 1, 1, b"x" * 5000), E(2**64 - 1, 2**64 - 1, 2, b"\0\xff")]
    out = m.decode_entries(m.encode_entries(entries))
    assert out == entries
    assert all(type(e) is E for e in out)
    assert [(e.term, e.index, e.kind, e.payload) for e in out] == [
        (e.term, e.index, e.kind, e.payload) for e in entries]


def test_empty_batch(flavour):
    m, _ = flavour
    data = m.encode_entries([])
    assert len(data) == 16 and m.decode_entries(data) == []


def test_encode_accepts_any_iterable_and_duck_entries(flavour):
    m, E = flavour
    want = [E(1, 1, 1, b"a"), E(1, 2, 1, b"bc")]
    ducks = [Duck(1, 1, fastraft.EntryKind.NORMAL, bytearray(b"a")), Duck(1, 2, 1, memoryview(b"bc"))]
    for given in (ducks, tuple(ducks), iter(ducks), (d for d in ducks)):
        assert m.decode_entries(m.encode_entries(given)) == want
    assert m.encode_entries(want) == m.encode_entries(ducks)
    assert type(ducks[0].payload) is bytearray  # the caller's objects are not changed


def test_decode_accepts_any_contiguous_buffer(flavour):
    m, E = flavour
    entries = [E(3, 4, 1, b"payload")]
    data = m.encode_entries(entries)
    for given in (bytearray(data), memoryview(data), memoryview(b"xx" + data)[2:]):
        assert m.decode_entries(given) == entries
    with pytest.raises(TypeError, match="contiguous"):
        m.decode_entries(memoryview(data * 2)[::2])
    with pytest.raises(TypeError, match="bytes-like"):
        m.decode_entries("not bytes")


@pytest.mark.parametrize("bad, exc, message", [
    (Duck(-1, 1, 1, b""), OverflowError, "entry 0: term -1 does not fit in u64"),
    (Duck(1, 2**64, 1, b""), OverflowError, "entry 0: index 18446744073709551616 does not fit"),
    (Duck(1.0, 1, 1, b""), TypeError, "entry 0: term must be an int, not float"),
    (Duck(1, 1, 3, b""), ValueError, "entry 0: unknown entry kind 3"),
    (Duck(1, 1, "1", b""), TypeError, "entry 0: kind must be an int, not str"),
    (Duck(1, 1, 1, "text"), TypeError, "entry 0: payload must be bytes, not str"),
])
def test_encode_refuses_bad_entries(flavour, bad, exc, message):
    m, E = flavour
    with pytest.raises(exc, match=message.replace("(", r"\(")):
        m.encode_entries([bad])
    with pytest.raises(exc, match=message.replace("entry 0", "entry 1")):
        m.encode_entries([E(1, 1, 1, b""), bad])


def test_entry_with_an_unknown_kind_is_refused(flavour):
    m, E = flavour
    with pytest.raises(ValueError, match="entry 0: unknown entry kind 200"):
        m.encode_entries([E(1, 1, 200, b"")])


def test_encode_refuses_a_frame_over_the_limit(flavour):
    m, E = flavour
    entries = [E(1, 1, 1, b"x" * 100)]
    size = 12 + 4 + 21 + 100
    assert len(m.encode_entries(entries, max_frame_bytes=size)) == size
    with pytest.raises(ValueError, match=f"frame of {size} bytes exceeds the limit of {size - 1}"):
        m.encode_entries(entries, max_frame_bytes=size - 1)


def test_limit_argument_is_checked(flavour):
    m, _ = flavour
    data = m.encode_entries([])
    with pytest.raises(ValueError, match="at least 12"):
        m.decode_entries(data, max_frame_bytes=11)
    with pytest.raises(TypeError, match="max_frame_bytes must be an int"):
        m.decode_entries(data, max_frame_bytes=1e6)
    assert m.decode_entries(data, max_frame_bytes=2**70) == []


def test_decode_entries_errors(flavour):
    m, E = flavour
    good = m.encode_entries([E(1, 1, 1, b"abc")])
    cases = {
        "truncated frame header: 11 of 12 bytes": good[:11],
        f"truncated frame: {len(good) - 1} of {len(good)} bytes": good[:-1],
        "2 bytes of trailing garbage after the frame": good + b"\0\0",
        "unsupported wire version 9 (this build speaks 2)": b"\x09" + good[1:],
        "unknown frame kind 0": good[:1] + b"\0" + good[2:],
        "reserved header field is 1, must be 0": good[:2] + b"\1" + good[3:],
        "expected an entry batch frame, got a message frame": frame(2, good[12:]),
        "unknown frame kind 3": frame(3, good[12:]),
        "truncated entry count": frame(1, b"\1\0"),
        "2 entries cannot fit in the 21 bytes left": frame(1, struct.pack("<I", 2) + bytes(21)),
        "entry 0: unknown entry kind 3": frame(1, struct.pack("<I", 1) + entry_bytes(1, 1, 3, b"")),
        "entry 0: payload of 4 bytes overruns the 3 bytes left":
            frame(1, struct.pack("<I", 1) + entry_bytes(1, 1, 1, b"abcd")[:-1]),
        "entry 1: truncated entry header":
            frame(1, struct.pack("<I", 2) + entry_bytes(1, 1, 1, bytes(20)) + bytes(20)),
        "5 bytes of trailing garbage after the entries":
            frame(1, struct.pack("<I", 1) + entry_bytes(1, 1, 1, b"") + bytes(5)),
    }
    for message, data in cases.items():
        with pytest.raises(CodecError) as info:
            m.decode_entries(data)
        assert str(info.value) == message
        assert isinstance(info.value, ValueError)


def test_checksum_mismatch_is_named(flavour):
    m, E = flavour
    good = bytearray(m.encode_entries([E(1, 1, 1, b"abc")]))
    good[-1] ^= 0x10
    with pytest.raises(CodecError, match=r"checksum mismatch: header says 0x[0-9a-f]{8}, body"):
        m.decode_entries(bytes(good))


def test_oversized_frame_is_refused_before_anything_is_allocated(flavour):
    m, _ = flavour
    claims_4gib = HEADER.pack(codec.WIRE_VERSION, 1, 0, 2**32 - 1, 0)
    tracemalloc.start()
    try:
        with pytest.raises(CodecError, match="exceeds the limit of 67108864 bytes"):
            m.decode_entries(claims_4gib)
        with pytest.raises(CodecError, match="exceeds the limit of 1000 bytes"):
            m.frame_size(claims_4gib, max_frame_bytes=1000)
        with pytest.raises(CodecError, match="truncated frame: 12 of 4294967307 bytes"):
            m.decode_entries(claims_4gib, max_frame_bytes=2**40)
        # A count that claims four billion entries in a few bytes.
        with pytest.raises(CodecError, match="4294967295 entries cannot fit in the 0 bytes"):
            m.decode_entries(frame(1, b"\xff\xff\xff\xff"))
        with pytest.raises(CodecError, match="payload of 4294967295 bytes overruns"):
            m.decode_entries(frame(1, struct.pack("<IQQBI", 1, 1, 1, 1, 2**32 - 1)))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20


# --- frame_size --------------------------------------------------------------------------


def test_frame_size_reads_only_the_header(flavour):
    m, E = flavour
    data = m.encode_entries([E(1, 1, 1, b"x" * 50)])
    assert m.frame_size(data[:12]) == len(data)
    assert m.frame_size(data + b"next frame") == len(data)
    assert m.frame_size(memoryview(data)[:12]) == len(data)
    assert m.frame_size(bytearray(data[:12])) == len(data)
    # A corrupt body is the decoder's business, not frame_size's.
    assert m.frame_size(data[:12] + bytes(len(data) - 12)) == len(data)
    for kind in (1, 2):
        assert m.frame_size(HEADER.pack(codec.WIRE_VERSION, kind, 0, 100, 0)) == 112


def test_frame_size_errors(flavour):
    m, _ = flavour
    with pytest.raises(CodecError, match="truncated frame header: 5 of 12 bytes"):
        m.frame_size(bytes(5))
    with pytest.raises(CodecError, match="unsupported wire version 0"):
        m.frame_size(bytes(12))
    for kind in (0, 3, 4, 255):
        with pytest.raises(CodecError, match=f"^unknown frame kind {kind}$"):
            m.frame_size(HEADER.pack(codec.WIRE_VERSION, kind, 0, 0, 0))
    with pytest.raises(CodecError, match="reserved header field is 256"):
        m.frame_size(HEADER.pack(codec.WIRE_VERSION, 1, 256, 0, 0))
    with pytest.raises(CodecError, match="frame of 113 bytes exceeds the limit of 112 bytes"):
        m.frame_size(HEADER.pack(codec.WIRE_VERSION, 1, 0, 101, 0), max_frame_bytes=112)
    with pytest.raises(TypeError, match="bytes-like"):
        m.frame_size(12)


def test_kind_3_is_an_unknown_frame_kind(flavour):
    """Kind 3 was the per-entry storage record, now removed: every decoder refuses it as it
    refuses any unknown kind (before looking at the body), and the number stays unused."""
    m, E = flavour
    body = struct.pack("<QQB", 1, 1, 1) + b"payload"  # what such a record held
    for data in (frame(3, body), frame(3, m.encode_entries([E(1, 1, 1, b"x")])[12:])):
        for decode in (m.decode_entries, m.decode_message, m.frame_size):
            with pytest.raises(CodecError, match="^unknown frame kind 3$"):
                decode(data)
    assert 3 not in (m.FRAME_ENTRIES, m.FRAME_MESSAGE)


# --- messages ----------------------------------------------------------------------------


def _sample(cls, Entry):
    """An instance of ``cls`` with a distinct, non-default value in every field."""
    values = {"u64": lambda i: 2**63 + i, "bool": lambda i: i % 2 == 0,
              "bytes": lambda i: bytes([i]) * i, "str": lambda i: f"snap-\u00e9-{i}",
              "entries": lambda i: [Entry(7, 100 + k, k % 3, b"e" * k) for k in range(i)]}
    return cls(**{name: values[kind](i) for i, (name, kind) in enumerate(wire_fields(cls))})


def test_every_message_type_round_trips(flavour):
    m, E = flavour
    assert MESSAGE_TYPES, "the engine defines messages"
    for tag, cls in MESSAGE_TYPES.items():
        msg = _sample(cls, E)
        data = m.encode_message(msg)
        assert data[12] == tag and m.frame_size(data) == len(data)
        out = m.decode_message(data)
        assert type(out) is cls and out == msg
        for name, kind in wire_fields(cls):
            if kind == "entries":
                assert all(type(e) is E for e in getattr(out, name))


def test_message_encode_errors(flavour):
    m, E = flavour
    with pytest.raises(OverflowError, match="VoteRequest.term = 18446744073709551616 does not fit"):
        m.encode_message(VoteRequest(term=2**64, sender=1, last_log_term=0, last_log_index=0))
    with pytest.raises(TypeError, match="VoteRequest.sender must be an int, not str"):
        m.encode_message(VoteRequest(term=1, sender="1", last_log_term=0, last_log_index=0))
    with pytest.raises(TypeError, match="int is not a message type"):
        m.encode_message(5)

    class Unregistered(VoteRequest):
        __slots__ = ()

    with pytest.raises(TypeError, match="Unregistered is not a message type"):
        m.encode_message(Unregistered(term=1, sender=1, last_log_term=0, last_log_index=0))
    with pytest.raises(ValueError, match="AppendEntriesRequest.entries: entry 1: unknown entry kind 9"):
        m.encode_message(AppendEntriesRequest(term=1, sender=1, prev_log_term=0, prev_log_index=0, leader_commit=0, seq=0, entries=[E(1, 1, 1, b""), Duck(1, 2, 9, b"")]))
    with pytest.raises(ValueError, match="exceeds the limit of 100 bytes"):
        m.encode_message(AppendEntriesRequest(term=1, sender=1, prev_log_term=0, prev_log_index=0, leader_commit=0, seq=0, entries=[E(1, 1, 1, b"x" * 100)]),
                         max_frame_bytes=100)


def test_message_str_and_bool_fields(flavour):
    m, E = flavour
    fields = [(cls, name, kind) for cls in MESSAGE_TYPES.values()
              for name, kind in wire_fields(cls) if kind in ("str", "bool")]
    assert {k for _, _, k in fields} == {"str", "bool"}
    for cls, name, kind in fields:
        msg = _sample(cls, E)
        data = m.encode_message(msg)
        # Locate the field: re-encode with a changed value and find where the bytes differ.
        changed = cls(**{n: ("\ud800" if kind == "str" else not getattr(msg, n)) if n == name
                         else getattr(msg, n) for n, _ in wire_fields(cls)})
        if kind == "str":
            with pytest.raises(ValueError, match=f"{cls.__name__}.{name} is not encodable as UTF-8"):
                m.encode_message(changed)
            value = getattr(msg, name).encode()
            at = data.index(struct.pack("<I", len(value)) + value) + 4
            bad = data[:at] + b"\xff" + data[at + 1:]
            with pytest.raises(CodecError, match=f"{cls.__name__}.{name}: invalid UTF-8"):
                m.decode_message(frame(2, bad[12:]))
        else:
            other = m.encode_message(changed)
            at = next(i for i in range(12, len(data)) if data[i] != other[i])
            bad = data[:at] + b"\x02" + data[at + 1:]
            with pytest.raises(CodecError, match=f"{cls.__name__}.{name}: bad bool byte 2"):
                m.decode_message(frame(2, bad[12:]))


def test_message_decode_errors(flavour):
    m, E = flavour
    with pytest.raises(CodecError, match="^empty message body$"):
        m.decode_message(frame(2, b""))
    unused = next(t for t in range(256) if t not in MESSAGE_TYPES)
    with pytest.raises(CodecError, match=f"^unknown message tag {unused}$"):
        m.decode_message(frame(2, bytes([unused])))
    data = m.encode_message(VoteRequest(term=1, sender=2, last_log_term=3, last_log_index=4))
    with pytest.raises(CodecError, match="^VoteRequest.term: truncated u64$"):
        m.decode_message(frame(2, data[12:17]))
    with pytest.raises(CodecError, match="^3 bytes of trailing garbage after VoteRequest$"):
        m.decode_message(frame(2, data[12:] + b"abc"))
    with pytest.raises(CodecError, match="^expected a message frame, got an entry batch frame$"):
        m.decode_message(m.encode_entries([]))
    ae = m.encode_message(AppendEntriesRequest(term=1, sender=1, prev_log_term=0, prev_log_index=0, leader_commit=0, seq=0, entries=[E(1, 1, 1, b"abc")]))
    with pytest.raises(CodecError, match="^AppendEntriesRequest.entries: entry 0: payload of 3"):
        m.decode_message(frame(2, ae[12:-1]))


def test_message_tables_drive_the_codec(flavour):
    """A field added to a message class is carried without any change to the codec."""
    m, E = flavour
    tag = next(t for t in range(256) if t not in MESSAGE_TYPES)
    from dataclasses import dataclass

    @dataclass(frozen=True, slots=True, kw_only=True)
    class Probe(fastraft.messages.Message):
        TAG = tag
        a: int
        b: str
        c: list
        d: bool
        e: bytes

    MESSAGE_TYPES[tag] = Probe
    try:
        msg = Probe(a=1, b="two", c=[E(3, 4, 1, b"5")], d=True, e=b"six")
        assert m.decode_message(m.encode_message(msg)) == msg
    finally:
        del MESSAGE_TYPES[tag]
    with pytest.raises(CodecError, match=f"unknown message tag {tag}"):
        m.decode_message(frame(2, bytes([tag]) + bytes(8)))


# --- the public module -------------------------------------------------------------------


def test_public_module_is_the_chosen_flavour():
    expected = "pure" if accel.pure_forced() else "compiled"
    impl = importlib.import_module(f"fastraft.accel.{expected}.codec")
    for name in codec.__all__:
        ours, theirs = getattr(codec, name), getattr(impl, name)
        assert ours is theirs if callable(theirs) else ours == theirs, name
    entries = codec.decode_entries(codec.encode_entries([fastraft.Entry(1, 1, 1, b"x")]))
    assert type(entries[0]) is fastraft.Entry
    assert issubclass(CodecError, ValueError)


def _register_probe(fields, check=None):
    """A keyword-only message dataclass with ``fields`` ((name, annotation) pairs) under an
    unused tag, running ``check(self)`` after construction; the caller removes it."""
    tag = next(t for t in range(256) if t not in MESSAGE_TYPES)

    def post_init(self):
        if check is not None:
            check(self)

    Probe = make_dataclass("Probe", list(fields), bases=(fastraft.messages.Message,),
                           namespace={"TAG": tag, "__post_init__": post_init},
                           frozen=True, kw_only=True)
    MESSAGE_TYPES[tag] = Probe
    return Probe


def test_unknown_field_kind_and_refused_construction(flavour):
    m, _ = flavour
    Probe = _register_probe((("a", "int"), ("b", "float")))
    try:
        with pytest.raises(TypeError, match=r"^Probe.b has unknown field kind 'float'$"):
            m.encode_message(Probe(a=1, b=2.0))
        with pytest.raises(CodecError, match=r"^Probe.b: unknown field kind 'float'$"):
            m.decode_message(frame(2, bytes([Probe.TAG]) + bytes(9)))
    finally:
        del MESSAGE_TYPES[Probe.TAG]

    def refuse(probe):
        if probe.a == 0:
            raise ValueError("a must not be 0")

    Probe = _register_probe((("a", "int"), ("b", "bytes")), refuse)
    try:
        assert m.decode_message(m.encode_message(Probe(a=1, b=bytearray(b"x")))) == Probe(a=1, b=b"x")
        assert m.encode_message(Probe(a=1, b=memoryview(b"x"))) == m.encode_message(Probe(a=1, b=b"x"))
        with pytest.raises(CodecError, match=r"^Probe: a must not be 0$"):
            m.decode_message(frame(2, bytes([Probe.TAG]) + bytes(8) + bytes(4)))
        with pytest.raises(CodecError, match=r"^Probe.b: truncated length$"):
            m.decode_message(frame(2, bytes([Probe.TAG]) + bytes(8) + bytes(3)))
        with pytest.raises(CodecError, match=r"^Probe.b: 5 bytes overrun the 4 bytes left$"):
            m.decode_message(frame(2, bytes([Probe.TAG]) + bytes(8) + b"\5\0\0\0abcd"))
        with pytest.raises(TypeError, match=r"^Probe.b must be bytes, not str$"):
            m.encode_message(Probe(a=1, b="x"))
    finally:
        del MESSAGE_TYPES[Probe.TAG]


def test_a_tag_outside_u8_is_refused(flavour):
    m, _ = flavour
    Probe = _register_probe((("a", "int"),))
    del MESSAGE_TYPES[Probe.TAG]
    Probe.TAG = 300
    MESSAGE_TYPES[300] = Probe
    try:
        with pytest.raises(ValueError, match=r"^Probe.TAG = 300 does not fit in u8$"):
            m.encode_message(Probe(a=1))
    finally:
        del MESSAGE_TYPES[300]


def test_encode_does_not_change_the_callers_list(flavour):
    m, E = flavour
    ducks = [Duck(1, 1, 1, b"a"), E(1, 2, 1, b"b")]
    before = list(ducks)
    m.encode_entries(ducks)
    m.encode_message(AppendEntriesRequest(term=1, sender=1, prev_log_term=0, prev_log_index=0, leader_commit=0, seq=0, entries=ducks))
    assert all(a is b for a, b in zip(ducks, before)) and len(ducks) == 2


def test_a_bad_frame_in_a_large_buffer_is_refused_without_copying_it(flavour):
    m, _ = flavour
    tracemalloc.start()
    try:
        for kind, decode in ((1, m.decode_entries), (2, m.decode_message)):
            big = bytearray(HEADER.pack(codec.WIRE_VERSION, kind, 0, 2**32 - 1, 0) + bytes(8 << 20))
            tracemalloc.reset_peak()  # the buffer is the test's; count only the decoder's
            with pytest.raises(CodecError, match="truncated frame: 8388620 of 4294967307"):
                decode(memoryview(big), max_frame_bytes=2**40)
            with pytest.raises(CodecError, match="exceeds the limit"):
                decode(big)
            current, peak = tracemalloc.get_traced_memory()
            assert peak - current < 1 << 20
            del big
    finally:
        tracemalloc.stop()
