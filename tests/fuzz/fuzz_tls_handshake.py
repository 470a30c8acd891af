"""atheris harness: the TLS handshake of both sides (a dialling client, ``serve_raft_tcp``)
against bytes that are not a peer's (``peer_targets.check_tls_handshake``): no hang, no
crash, only the documented errors; every 200 inputs and at the end, the server still serves
a real node.

    python tests/fuzz/fuzz_tls_handshake.py CORPUS_DIR [libFuzzer flags, e.g. -max_total_time=20]
"""

import os
import sys

import atheris

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

with atheris.instrument_imports(include=["fastraft"]):
    import fastraft.net.framing  # noqa: F401 - instrumented for coverage feedback
    import fastraft.net.tcp_client  # noqa: F401
    import fastraft.net.tls  # noqa: F401
    import fastraft.net.tls_stream  # noqa: F401
    from peer_targets import check_alive, check_tls_handshake

_runs = 0


def one_input(data: bytes) -> None:
    global _runs
    check_tls_handshake(data)
    _runs += 1
    if _runs % 200 == 0:  # the server still serves a real node
        check_alive()


def main() -> None:
    import atexit

    atexit.register(check_alive)
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
