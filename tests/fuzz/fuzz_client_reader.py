"""atheris harness: a node's TCP client reading what a hostile peer answers (plain, raw
bytes under TLS, sealed TLS records; ``peer_targets.check_client_reader``): no hang, no
crash, only the documented errors.

    python tests/fuzz/fuzz_client_reader.py CORPUS_DIR [libFuzzer flags, e.g. -max_total_time=20]
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
    from peer_targets import check_client_reader


def main() -> None:
    atheris.Setup(sys.argv, check_client_reader)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
