"""hypothesis over a node facing a hostile peer (the targets of ``peer_targets``, real sockets
on 127.0.0.1): the TCP client's reader gets structured answers (envelopes of every status
with real, mutated or cut message bodies, in any id order, plain and under TLS), and the TLS
handshake gets real handshake messages with bytes flipped, cut, or spliced. Every example must
end within ``peer_targets.HANG_S`` with an answer or a documented error.

The suite runs a quick, reproducible set; CI's fuzzing step (``run.py --peer-examples N``)
asks for N examples per test, drawn at random each run.
"""

from __future__ import annotations

import os
import struct

import hypothesis.strategies as st
from hypothesis import HealthCheck, given, settings

import peer_targets
from fastraft.messages import (AppendEntriesResponse, InstallSnapshotResponse,
                               TimeoutNowResponse, VoteResponse)
from fastraft.net.framing import MAX_ERROR_TEXT_BYTES, STATUS_EMPTY, STATUS_ERROR, STATUS_OK, encode_ok

FUZZ_EXAMPLES = int(os.environ.get("FASTRAFT_FUZZ_PEER_EXAMPLES", "0"))
CAMPAIGN = settings(max_examples=FUZZ_EXAMPLES or 40, deadline=None, print_blob=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
                    **({"derandomize": False} if FUZZ_EXAMPLES else {}))

U64 = st.integers(0, (1 << 64) - 1)
RESPONSES = st.one_of(
    st.builds(VoteResponse, term=U64, sender=U64, granted=st.booleans(), pre_vote=st.booleans()),
    st.builds(AppendEntriesResponse, term=U64, sender=U64, success=st.booleans(),
              match_index=U64, seq=U64),
    st.builds(InstallSnapshotResponse, term=U64, sender=U64, snapshot_id=st.text(max_size=40),
              next_offset=U64, done=st.booleans()),
    st.builds(TimeoutNowResponse, term=U64, sender=U64),
)


@st.composite
def envelopes(draw) -> bytes:
    """One envelope: an answer to the request (id 1) or to no request, of any status, with a
    body that may be a real message, mutated, cut, or made up."""
    request_id = draw(st.sampled_from([1, 1, 1, 0, 2, (1 << 64) - 1]))
    status = draw(st.sampled_from([STATUS_OK, STATUS_OK, STATUS_ERROR, STATUS_EMPTY, 3, 255]))
    head = struct.pack("<QB", request_id, status)
    if status == STATUS_OK:
        body = encode_ok(request_id, draw(RESPONSES))[len(head):]
    elif status == STATUS_ERROR:
        n = draw(st.sampled_from([0, 5, MAX_ERROR_TEXT_BYTES, MAX_ERROR_TEXT_BYTES + 1, 65535]))
        body = struct.pack("<H", n) + draw(st.binary(max_size=min(n, 1100)))
    else:
        body = b""
    if body and draw(st.booleans()):
        at = draw(st.integers(0, len(body) - 1))
        body = body[:at] + bytes([body[at] ^ draw(st.integers(1, 255))]) + body[at + 1:]
    if draw(st.integers(0, 4)) == 0:
        body = body[:draw(st.integers(0, len(body)))]
    return head + body


@CAMPAIGN
@given(mode=st.integers(0, 2), answers=st.lists(envelopes(), min_size=0, max_size=4),
       tail=st.binary(max_size=24))
def test_client_reader_gets_an_answer_or_a_clear_error(mode, answers, tail):
    peer_targets.check_client_reader(bytes([mode]) + b"".join(answers) + tail)


def _mutate(draw, data: bytes) -> bytes:
    for _ in range(draw(st.integers(0, 4))):
        at = draw(st.integers(0, len(data) - 1))
        how = draw(st.integers(0, 3))
        if how == 0:  # flip a byte
            data = data[:at] + bytes([data[at] ^ draw(st.integers(1, 255))]) + data[at + 1:]
        elif how == 1:  # cut
            data = data[:max(1, at)]
        elif how == 2:  # insert bytes
            data = data[:at] + draw(st.binary(min_size=1, max_size=16)) + data[at:]
        else:  # a length field's worth of 0xff (TLS lengths are 2 or 3 bytes)
            data = data[:at] + b"\xff\xff\xff" + data[at + 3:]
    return data


@CAMPAIGN
@given(st.data())
def test_tls_handshake_of_the_server_refuses_a_broken_client_hello(data):
    if data.draw(st.booleans()):
        hello = _mutate(data.draw, _HELLO)
    else:  # a whole handshake record of made-up bytes: ssl must refuse it, not wait for more
        body = data.draw(st.binary(min_size=1, max_size=300))
        hello = bytes([22, 3, 1]) + len(body).to_bytes(2, "big") + body
    peer_targets.check_tls_handshake(b"\x01" + hello)


@CAMPAIGN
@given(st.data())
def test_tls_handshake_of_the_client_refuses_a_broken_server_answer(data):
    flight = data.draw(st.sampled_from([_FLIGHT]))
    peer_targets.check_tls_handshake(b"\x00" + _mutate(data.draw, flight))


def test_the_server_still_serves_a_real_node_after_the_campaign():
    peer_targets.check_alive(_HELLO[:40])


_HELLO = peer_targets.client_hello()
_FLIGHT = peer_targets.server_flight()
