"""Property tests of the codec: round trips in both flavours, the compiled module against its
pure twin (same bytes, same results, same exception type and message), a stateful machine
that runs random sequences of operations on both, and corruption: random bytes, truncations,
bit flips and checksum-valid garbage into every decode function raise only CodecError.

Messages are generated from fastraft.messages.MESSAGE_TYPES and each class's wire_fields, so new
fields and messages are covered without changing this file.
"""

import struct

import crc32c
import hypothesis.strategies as st
from hypothesis import example, given, settings
from hypothesis.stateful import Bundle, RuleBasedStateMachine, initialize, rule

from fastraft import CodecError
from fastraft.accel.compiled import codec as compiled
from fastraft.accel.compiled.entry import Entry as CompiledEntry
from fastraft.accel.pure import codec as pure
from fastraft.accel.pure.entry import Entry as PureEntry
from fastraft.messages import MESSAGE_TYPES, wire_fields

FLAVOURS = ((compiled, CompiledEntry), (pure, PureEntry))
DECODERS = ("decode_entries", "decode_message", "frame_size")

u64 = st.integers(0, 2**64 - 1)
payloads = st.binary(max_size=200)
entry_fields = st.tuples(u64, u64, st.integers(0, 2), payloads)
entry_lists = st.lists(entry_fields, max_size=12)


def make_entries(fields, Entry):
    return [Entry(*f) for f in fields]


def field_values(kind):
    return {"u64": u64, "bool": st.booleans(), "bytes": st.binary(max_size=100),
            "str": st.text(max_size=30), "entries": entry_lists}[kind]


@st.composite
def message_specs(draw):
    """(class, raw field values); entries stay as tuples so either flavour can build them."""
    cls = draw(st.sampled_from(sorted(MESSAGE_TYPES.values(), key=lambda c: c.TAG)))
    return cls, tuple(draw(field_values(kind)) for _, kind in wire_fields(cls))


def build_message(spec, Entry):
    cls, raw = spec
    return cls(**{name: make_entries(v, Entry) if kind == "entries" else v
                  for v, (name, kind) in zip(raw, wire_fields(cls))})


def outcome(fn, *args, **kwargs):
    """What a call did, comparable across flavours: ("ok", value) or ("raised", type, message)."""
    try:
        return ("ok", fn(*args, **kwargs))
    except Exception as e:  # the comparison itself is the assertion
        return ("raised", type(e).__name__, str(e))


def same_in_both(name, *args, **kwargs):
    """Run ``name`` on both flavours; assert identical outcomes and return it."""
    got = outcome(getattr(compiled, name), *args, **kwargs)
    want = outcome(getattr(pure, name), *args, **kwargs)
    assert got == want, f"{name}: compiled {got!r} != pure {want!r}"
    return got


def decode_only_codec_errors(data, **kwargs):
    """Every decode function of both flavours on ``data``: identical outcomes, and any
    exception is a CodecError."""
    for name in DECODERS:
        for mod, _ in FLAVOURS:
            try:
                getattr(mod, name)(data, **kwargs)
            except CodecError:
                pass
        same_in_both(name, data, **kwargs)


def with_header(kind, body):
    return struct.pack("<BBHII", pure.WIRE_VERSION, kind, 0, len(body), crc32c.crc32c(body)) + body


# --- round trips -------------------------------------------------------------------------


@given(entry_lists)
def test_entries_round_trip(fields):
    for mod, Entry in FLAVOURS:
        entries = make_entries(fields, Entry)
        data = mod.encode_entries(entries)
        assert mod.frame_size(data) == len(data)
        assert mod.decode_entries(data) == entries


@given(message_specs())
def test_messages_round_trip(spec):
    for mod, Entry in FLAVOURS:
        msg = build_message(spec, Entry)
        data = mod.encode_message(msg)
        assert mod.frame_size(data) == len(data)
        assert mod.decode_message(data) == msg


# --- differential ------------------------------------------------------------------------


@given(entry_lists, st.sampled_from([CompiledEntry, PureEntry]))
def test_both_flavours_write_the_same_bytes(fields, Entry):
    entries = make_entries(fields, Entry)
    frame = same_in_both("encode_entries", entries)[1]
    assert same_in_both("decode_entries", frame)[1] == entries


@given(message_specs(), st.sampled_from([CompiledEntry, PureEntry]))
def test_both_flavours_write_the_same_message_bytes(spec, Entry):
    data = same_in_both("encode_message", build_message(spec, Entry))[1]
    assert same_in_both("decode_message", data)[1] == build_message(spec, Entry)


@given(st.binary(min_size=4000, max_size=4200))
def test_checksums_agree_around_the_inline_threshold(payload):
    """The compiled module checksums small bodies inline and large ones in the package."""
    for n in (4096 - 37, 4096 - 36, 4096 - 35, len(payload)):
        entries = [CompiledEntry(1, 1, 1, payload[:n])]
        same_in_both("encode_entries", entries)


class Duck:
    def __init__(self, term, index, kind, payload):
        self.term, self.index, self.kind, self.payload = term, index, kind, payload


any_value = st.one_of(st.integers(-5, 2**65), st.floats(allow_nan=False), st.text(max_size=3),
                      st.binary(max_size=3), st.none(), st.booleans())
wild_entries = st.lists(st.one_of(
    entry_fields.map(lambda f: CompiledEntry(*f)),
    entry_fields.map(lambda f: PureEntry(*f)),
    st.tuples(any_value, any_value, any_value, any_value).map(lambda f: Duck(*f)),
    st.builds(CompiledEntry, u64, u64, st.integers(3, 255), payloads),
    any_value,
), max_size=5)


@given(wild_entries, st.integers(0, 400))
def test_encoding_anything_fails_the_same_way(items, limit):
    same_in_both("encode_entries", items, max_frame_bytes=limit)


@given(message_specs(), st.data())
def test_encoding_bad_field_values_fails_the_same_way(spec, data):
    cls, raw = spec
    i = data.draw(st.integers(0, len(raw) - 1))
    bad = data.draw(st.one_of(any_value, wild_entries))
    raw = raw[:i] + (bad,) + raw[i + 1:]
    msg = cls(**{name: v if j == i or kind != "entries" else make_entries(v, CompiledEntry)
                 for j, (v, (name, kind)) in enumerate(zip(raw, wire_fields(cls)))})
    same_in_both("encode_message", msg)


# --- corruption --------------------------------------------------------------------------


@given(st.binary(max_size=300), st.integers(12, 400))
def test_random_bytes_raise_only_codec_errors(data, limit):
    decode_only_codec_errors(data, max_frame_bytes=limit)
    decode_only_codec_errors(data)


@given(st.integers(0, 255).filter(lambda k: k not in (1, 2)), st.binary(max_size=300))
@example(3, b"")
@example(3, struct.pack("<QQB", 1, 1, 1) + b"payload")  # what such a record held
def test_unknown_frame_kinds_are_refused_the_same_way(kind, body):
    """Kind 3 (the removed per-entry record) included: any kind but 1 and 2 is refused by
    every decoder of both flavours with the same CodecError."""
    data = with_header(kind, body)
    for name in DECODERS:
        assert same_in_both(name, data) == ("raised", "CodecError", f"unknown frame kind {kind}")


@given(st.sampled_from([1, 2, 3]), st.binary(max_size=300))
def test_checksum_valid_garbage_raises_only_codec_errors(kind, body):
    """Bodies that pass the checksum but are not what the header says."""
    decode_only_codec_errors(with_header(kind, body))


@given(st.sampled_from([1, 2, 3]), message_specs(), st.data())
def test_truncated_and_spliced_bodies_raise_only_codec_errors(kind, spec, data):
    """Checksum-valid cuts of real bodies: every count and length is checked."""
    body = compiled.encode_message(build_message(spec, CompiledEntry))[12:]
    cut = data.draw(st.integers(0, len(body)))
    junk = data.draw(st.binary(max_size=8))
    decode_only_codec_errors(with_header(kind, body[:cut]))
    decode_only_codec_errors(with_header(kind, body[:cut] + junk + body[cut:]))


@given(st.one_of(message_specs().map(lambda s: compiled.encode_message(
                     build_message(s, CompiledEntry))),
                 entry_lists.map(lambda f: compiled.encode_entries(make_entries(f, PureEntry)))),
       st.data())
def test_every_bit_flip_and_truncation_is_detected(frame, data):
    """A CRC catches every single-bit error; the header checks catch the rest."""
    bit = data.draw(st.integers(0, len(frame) * 8 - 1))
    flipped = bytearray(frame)
    flipped[bit // 8] ^= 1 << (bit % 8)
    cut = data.draw(st.integers(0, len(frame) - 1))
    for bad in (bytes(flipped), frame[:cut]):
        for name in ("decode_entries", "decode_message"):
            for mod, _ in FLAVOURS:
                try:
                    getattr(mod, name)(bad)
                except CodecError:
                    continue
                raise AssertionError(f"{mod.__name__}.{name} accepted a corrupted frame")
        decode_only_codec_errors(bad)


# --- stateful: random sequences of operations on both flavours ----------------------------


class CodecMachine(RuleBasedStateMachine):
    """Frames are produced by either flavour, mangled, and fed back to both; every step must
    give identical outcomes, and decoding anything raises nothing but CodecError."""

    frames = Bundle("frames")

    @initialize(target=frames)
    def empty_batch(self):
        return same_in_both("encode_entries", [])[1]

    @rule(target=frames, fields=entry_lists, own=st.booleans())
    def encode_batch(self, fields, own):
        entries = make_entries(fields, CompiledEntry if own else PureEntry)
        frame = same_in_both("encode_entries", entries)[1]
        assert same_in_both("decode_entries", frame)[1] == entries
        return frame

    @rule(target=frames, spec=message_specs())
    def encode_message(self, spec):
        frame = same_in_both("encode_message", build_message(spec, PureEntry))[1]
        assert same_in_both("decode_message", frame)[1] == build_message(spec, CompiledEntry)
        return frame

    @rule(target=frames, frame=frames, at=st.integers(0, 10**6), mask=st.integers(1, 255))
    def flip(self, frame, at, mask):
        if not frame:
            return frame
        out = bytearray(frame)
        out[at % len(out)] ^= mask
        return bytes(out)

    @rule(target=frames, frame=frames, at=st.integers(0, 10**6))
    def truncate(self, frame, at):
        return frame[:at % (len(frame) + 1)]

    @rule(target=frames, a=frames, b=frames)
    def splice(self, a, b):
        return a[:12] + b[12:]

    @rule(target=frames, frame=frames, kind=st.sampled_from([1, 2, 3]))
    def reseal(self, frame, kind):
        """Keep the body, write a valid header of any kind around it."""
        return with_header(kind, frame[12:])

    @rule(frame=frames, limit=st.one_of(st.just(64 << 20), st.integers(12, 500)))
    def decode(self, frame, limit):
        decode_only_codec_errors(frame, max_frame_bytes=limit)


CodecMachine.TestCase.settings = settings(max_examples=60, stateful_step_count=25,
                                          deadline=None)
TestCodecMachine = CodecMachine.TestCase
