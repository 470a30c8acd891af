"""The fuzzing campaigns, each for a bounded time (CI's fuzzing step):

    python tests/fuzz/run.py [--seconds 15] [--http-examples 400] [--peer-examples 300]
        [--keep DIR]

* atheris over the codec (``fuzz_codec.py``: both builds, compared), the TCP server's frame
  reader (``fuzz_frame_reader.py``: bytes over a real socket into ``serve_raft_tcp``), the TCP
  client's reader (``fuzz_client_reader.py``: a hostile peer's answers, plain and under TLS)
  and the TLS handshake of both sides (``fuzz_tls_handshake.py``), ``--seconds`` each,
  starting from ``seeds.py`` and the saved inputs of ``corpus/<target>``;
* hypothesis over the KV HTTP API (``test_fuzz_http.py`` against a real ``fastraft-kv serve``
  process), ``--http-examples`` generated requests, and over the client's reader and the TLS
  handshake (``test_fuzz_peers.py``), ``--peer-examples`` generated inputs per test.

Prints each campaign's size (executions, seconds) and exits non-zero when one failed; an
input that made atheris fail is written under the working corpus directory (``crash-*``):
copy it into ``corpus/<target>/`` so that ``test_fuzz_regressions.py`` replays it for good.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)


def atheris_campaign(name: str, seeds: list[bytes], seconds: int, work: str) -> bool:
    import seeds as seeds_module

    corpus = os.path.join(work, name)
    seeds_module.write(corpus, seeds)
    saved = os.path.join(HERE, "corpus", name)
    for f in sorted(os.listdir(saved)) if os.path.isdir(saved) else ():
        shutil.copy(os.path.join(saved, f), os.path.join(corpus, "saved-" + f))
    cmd = [sys.executable, os.path.join(HERE, f"fuzz_{name}.py"), corpus,
           f"-max_total_time={seconds}", "-timeout=20", "-rss_limit_mb=2048",
           f"-artifact_prefix={corpus}{os.sep}", "-print_final_stats=1"]
    # libFuzzer ends the process without Python's atexit: its temporary files go under work
    tmp = os.path.join(work, "tmp")
    os.makedirs(tmp, exist_ok=True)
    started = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 120,
                          env=dict(os.environ, TMPDIR=tmp))
    took = time.monotonic() - started
    out = proc.stderr
    runs = re.findall(r"Done (\d+) runs", out) or re.findall(r"stat::number_of_executed_units:\s*(\d+)", out)
    print(f"atheris {name}: {runs[-1] if runs else '?'} executions in {took:.0f} s, "
          f"exit {proc.returncode}", flush=True)
    if proc.returncode != 0:
        print(out[-6000:], file=sys.stderr)
        crashes = [f for f in os.listdir(corpus) if f.startswith(("crash-", "timeout-", "oom-"))]
        print(f"failing inputs: {[os.path.join(corpus, f) for f in crashes]}", file=sys.stderr)
    return proc.returncode == 0


def http_campaign(examples: int) -> bool:
    env = dict(os.environ, FASTRAFT_FUZZ_HTTP_EXAMPLES=str(examples))
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "pytest", os.path.join(HERE, "test_fuzz_http.py"),
                           "-q", "-p", "no:cacheprovider"], env=env, timeout=900)
    print(f"hypothesis http: {examples} single + {max(20, examples // 4)} pipelined batches in "
          f"{time.monotonic() - started:.0f} s, exit {proc.returncode}", flush=True)
    return proc.returncode == 0


def peer_campaign(examples: int) -> bool:
    env = dict(os.environ, FASTRAFT_FUZZ_PEER_EXAMPLES=str(examples))
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "pytest", os.path.join(HERE, "test_fuzz_peers.py"),
                           "-q", "-p", "no:cacheprovider"], env=env, timeout=900)
    print(f"hypothesis peers: {examples} examples per test in {time.monotonic() - started:.0f} s, "
          f"exit {proc.returncode}", flush=True)
    return proc.returncode == 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=15)
    ap.add_argument("--http-examples", type=int, default=400)
    ap.add_argument("--peer-examples", type=int, default=300)
    ap.add_argument("--keep", help="working corpus directory (default: a temporary one)")
    args = ap.parse_args(argv)
    import seeds

    work = args.keep or tempfile.mkdtemp(prefix="fastraft-fuzz-")
    ok = atheris_campaign("codec", seeds.codec_seeds(), args.seconds, work)
    ok &= atheris_campaign("frame_reader", seeds.frame_reader_seeds(), args.seconds, work)
    ok &= atheris_campaign("client_reader", seeds.client_reader_seeds(), args.seconds, work)
    ok &= atheris_campaign("tls_handshake", seeds.tls_handshake_seeds(), args.seconds, work)
    ok &= http_campaign(args.http_examples)
    ok &= peer_campaign(args.peer_examples)
    print("fuzzing:", "no failures" if ok else f"FAILED (inputs under {work})")
    if ok and not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
