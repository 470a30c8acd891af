"""atheris harness: arbitrary bytes on a connection to a real ``serve_raft_tcp``
(``targets.FrameServer``): no hang, no server death, and the server still answers after.

    python tests/fuzz/fuzz_frame_reader.py CORPUS_DIR [libFuzzer flags, e.g. -max_total_time=20]
"""

import atexit
import os
import sys

import atheris

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

with atheris.instrument_imports(include=["fastraft"]):
    import fastraft.net.framing  # noqa: F401 - instrumented for coverage feedback
    import fastraft.net.tcp_server  # noqa: F401
    from targets import FrameServer

_server = None
_runs = 0


def one_input(data: bytes) -> None:
    global _runs
    _server.check(data)
    _runs += 1
    if _runs % 500 == 0:
        _server.check_alive()


def main() -> None:
    global _server
    _server = FrameServer().start()
    atexit.register(_server.check_alive)
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
