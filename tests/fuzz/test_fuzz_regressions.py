"""Every fuzzing seed and every saved input of ``corpus/<target>/`` through its target, in
every test run: ``check_codec`` (both builds compared), the real TCP server's reading path,
the TCP client's reader and the TLS handshake of both sides (``peer_targets``).

Saved inputs: ``campaign-*`` are the inputs an atheris campaign kept for the coverage they
reach (a wide, cheap replay); the others are inputs that made a fuzzer fail, named for what
they found, kept so that it stays fixed (``bool-byte-2-builds-disagree``: a bool byte of 2
that one build accepted; ``error-text-over-1024``: an error envelope whose announced text
exceeds the bound, which must be the documented ``CodecError``, not a server crash)."""

import os

import pytest

import peer_targets
import seeds
from targets import FrameServer, check_codec

HERE = os.path.dirname(os.path.abspath(__file__))


def saved(target: str) -> list[bytes]:
    folder = os.path.join(HERE, "corpus", target)
    if not os.path.isdir(folder):
        return []
    return [open(os.path.join(folder, f), "rb").read() for f in sorted(os.listdir(folder))
            if not f.startswith(".")]


def test_codec_seeds_and_saved_inputs():
    inputs = seeds.codec_seeds() + saved("codec")
    assert len(inputs) > len(seeds.codec_seeds())  # the saved inputs are there
    for data in inputs:
        check_codec(data)


@pytest.fixture(scope="module")
def frame_server():
    server = FrameServer().start()
    yield server
    server.stop()


def test_frame_reader_seeds_and_saved_inputs(frame_server):
    inputs = seeds.frame_reader_seeds() + saved("frame_reader")
    assert len(inputs) > len(seeds.frame_reader_seeds())
    for data in inputs:
        frame_server.check(data)
    frame_server.check_alive()


def test_client_reader_seeds_and_saved_inputs():
    for data in seeds.client_reader_seeds() + saved("client_reader"):
        peer_targets.check_client_reader(data)


def test_tls_handshake_seeds_and_saved_inputs():
    for data in seeds.tls_handshake_seeds() + saved("tls_handshake"):
        peer_targets.check_tls_handshake(data)
    peer_targets.check_alive()
