"""atheris harness: the codec's decoders, compiled against pure (``targets.check_codec``).

    python tests/fuzz/fuzz_codec.py CORPUS_DIR [libFuzzer flags, e.g. -max_total_time=20]

``run.py`` runs it for a bounded time with a fresh corpus seeded by ``seeds.py``.
"""

import os
import sys

import atheris

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

with atheris.instrument_imports(include=["fastraft"]):
    import fastraft.accel.pure.codec  # noqa: F401 - instrumented for coverage feedback
    from targets import check_codec


def main() -> None:
    atheris.Setup(sys.argv, check_codec)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
