"""The TCP envelope: request ids around codec frames, read from a stream in pieces."""

import struct

import pytest
import trio
import trio.testing

from fastraft import Entry, codec
from fastraft.errors import CodecError
from fastraft.messages import VoteRequest
from fastraft.net.framing import ENVELOPE_SIZE, FrameReader, encode_error, encode_ok
from net_fixtures import append_request


async def _read_all(data: bytes, chunk: int, max_frame_bytes=codec.DEFAULT_MAX_FRAME_BYTES):
    send, recv = trio.testing.memory_stream_one_way_pair()
    reader = FrameReader(recv, max_frame_bytes)
    out = []
    async with trio.open_nursery() as nursery:
        async def feed():
            for i in range(0, len(data), chunk):
                await send.send_all(data[i:i + chunk])
                await trio.sleep(0)
            await send.aclose()

        nursery.start_soon(feed)
        error = None
        try:
            for _ in range(1000):  # bounded: far more envelopes than any test sends
                got = await reader.read()
                if got is None:
                    break
                out.append(got)
        except CodecError as e:
            error = e  # raised below, outside the nursery, so it is not wrapped in a group
            nursery.cancel_scope.cancel()
    if error is not None:
        raise error
    return out


@pytest.mark.parametrize("chunk", [1, 7, 1 << 20])
def test_envelopes_survive_any_split(chunk):
    msgs = [append_request(seq=i, entries=[Entry(1, i + 1, 1, b"p" * i)]) for i in range(5)]
    data = (b"".join(encode_ok(100 + i, m) for i, m in enumerate(msgs)) + encode_error(7, "nope")
            + encode_ok(8, None))
    got = trio.run(_read_all, data, chunk)
    assert got == [(100 + i, m) for i, m in enumerate(msgs)] + [(7, "nope"), (8, None)]
    assert len(encode_ok(8, None)) == ENVELOPE_SIZE


def test_error_text_is_bounded():
    env = encode_error(1, "x" * 5000)
    assert len(env) == ENVELOPE_SIZE + 2 + 1024
    assert trio.run(_read_all, env, 100) == [(1, "x" * 1024)]


@pytest.mark.parametrize("cut", [3, ENVELOPE_SIZE + 2, ENVELOPE_SIZE + codec.HEADER_SIZE + 1])
def test_stream_ending_inside_an_envelope_is_a_codec_error(cut):
    data = encode_ok(1, VoteRequest(term=1, sender=1, last_log_term=0, last_log_index=0))
    with pytest.raises(CodecError):
        trio.run(_read_all, data[:cut], 4)


def test_unknown_status_is_a_codec_error():
    with pytest.raises(CodecError, match="status"):
        trio.run(_read_all, struct.pack("<QB", 1, 9) + b"\0" * 20, 64)


def test_bad_checksum_is_a_codec_error():
    data = bytearray(encode_ok(1, VoteRequest(term=1, sender=1, last_log_term=0, last_log_index=0)))
    data[-1] ^= 0xFF
    with pytest.raises(CodecError):
        trio.run(_read_all, bytes(data), 64)


def test_oversized_frame_refused_from_its_header():
    big = encode_ok(1, append_request(entries=[Entry(1, 1, 1, b"x" * 5000)]))
    # only the header reaches the reader: the size check must not wait for the body
    with pytest.raises(CodecError):
        trio.run(_read_all, big[:ENVELOPE_SIZE + codec.HEADER_SIZE], 64, 1024)


def test_too_small_limit_is_refused():
    send, recv = trio.testing.memory_stream_one_way_pair()
    with pytest.raises(ValueError):
        FrameReader(recv, 4)


def test_cancelled_read_keeps_the_stream_position():
    async def main():
        send, recv = trio.testing.memory_stream_one_way_pair()
        reader = FrameReader(recv)
        data = encode_ok(5, VoteRequest(term=3, sender=1, last_log_term=0, last_log_index=0))
        await send.send_all(data[:10])
        with trio.move_on_after(0.01):
            await reader.read()  # waits for the rest, then is cancelled
        await send.send_all(data[10:])
        assert await reader.read() == (5, VoteRequest(term=3, sender=1, last_log_term=0, last_log_index=0))

    trio.run(main)
