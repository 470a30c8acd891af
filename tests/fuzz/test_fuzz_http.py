"""Hypothesis over the KV node's HTTP API: a real ``fastraft-kv serve`` process (lmdb store,
Raft RPCs over HTTP so their routes are served too) on 127.0.0.1, initialised as a one-node
cluster, gets generated requests over a raw socket: methods, paths (the routes, their
neighbours, random text), headers, bodies (JSON in the shapes the routes take, other JSON,
raw bytes), one request per connection and several pipelined on one.

Failures: an answer with a 5xx status, no answer at all (the server dropped the connection),
no answer within ``ANSWER_TIMEOUT_S`` (a hang), or the process gone. A 4xx is fine.

Membership stays as it is: the admin routes are fuzzed with bodies that name only this node
or ids the API refuses, so that a generated but valid ``/change-membership`` cannot make the
node wait for a voter that does not exist (that node would then rightly answer "unavailable").
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

import hypothesis.strategies as st
import pytest
from hypothesis import HealthCheck, given, settings

ANSWER_TIMEOUT_S = 15.0
#: Examples per test: a quick run by default; CI's fuzzing step (``run.py``) asks for more,
#: drawn at random each run instead of the suite's reproducible ones.
FUZZ_EXAMPLES = int(os.environ.get("FASTRAFT_FUZZ_HTTP_EXAMPLES", "0"))
CAMPAIGN = settings(max_examples=FUZZ_EXAMPLES or 60, deadline=None, print_blob=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
                    **({"derandomize": False} if FUZZ_EXAMPLES else {}))
ROUTES = ["/write", "/read", "/consistent_read", "/init", "/add-learner", "/change-membership",
          "/remove-learner", "/metrics", "/node", "/health", "/metrics/prometheus",
          "/raft-vote", "/raft-append", "/raft-snapshot", "/raft-timeout-now"]
MEMBERSHIP_ROUTES = {"/init", "/add-learner", "/change-membership", "/remove-learner"}


def _answer_line(sock: socket.socket) -> bytes:
    got = b""
    while b"\r\n" not in got and len(got) < 1 << 16:
        chunk = sock.recv(1 << 16)
        if not chunk:
            break
        got += chunk
    return got


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    data = tmp_path_factory.mktemp("fuzz-node")
    cmd = [sys.executable, "-m", "fastraft.kv", "serve", "--id", "1", "--addr", "127.0.0.1:0",
           "--store", "lmdb", "--data", str(data / "n1"), "--network", "http"]
    with open(data / "node.log", "wb") as log:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log)
    try:
        line = proc.stdout.readline(4096)  # its first line: the addresses it bound
        addr = json.loads(line)["addr"]
        host, port = addr.rsplit(":", 1)
        target = (host, int(port))
        status, _ = request(target, raw("POST", "/init", b"[]"))
        assert status == 200
        deadline = time.monotonic() + 30
        while request(target, raw("GET", "/health", b""))[0] != 200:  # bounded by the deadline
            assert time.monotonic() < deadline, "the node never became healthy"
            time.sleep(0.1)
        yield target, proc, data / "node.log"
    finally:
        proc.kill()
        proc.wait(10)


def raw(method: str, path: str, body: bytes, headers=(), length: bool = True) -> bytes:
    head = [f"{method} {path} HTTP/1.1", "Host: fuzz"]
    head += [f"{k}: {v}" for k, v in headers]
    if length:
        head.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(head) + "\r\n\r\n").encode("utf-8", "surrogateescape") + body


def request(target, data: bytes) -> tuple[int, bytes]:
    """Send ``data`` on a new connection; (status, first line) of the answer."""
    with socket.create_connection(target, timeout=ANSWER_TIMEOUT_S) as s:
        s.sendall(data)
        try:
            s.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        try:
            line = _answer_line(s)
        except socket.timeout:
            raise AssertionError(f"no answer within {ANSWER_TIMEOUT_S} s: {data[:200]!r}") from None
        except ConnectionResetError:
            line = b""
    assert line.startswith(b"HTTP/1.1 "), f"no answer (connection dropped): {data[:200]!r}"
    return int(line[9:12]), line


# --- generated requests ------------------------------------------------------------------

json_scalars = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70),
                         st.floats(allow_nan=False), st.text(max_size=40))
json_docs = st.recursive(json_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=5), st.dictionaries(st.text(max_size=10), inner, max_size=5)),
    max_leaves=20)
keys = st.one_of(st.text(min_size=1, max_size=20), st.text(max_size=2000), st.integers())
command_docs = st.one_of(
    st.fixed_dictionaries({"Set": st.fixed_dictionaries({"key": keys, "value": json_scalars})}),
    st.fixed_dictionaries({"Delete": st.fixed_dictionaries({"key": keys})}),
    st.fixed_dictionaries({"CompareAndSwap": st.fixed_dictionaries(
        {"key": keys, "expected": json_scalars, "value": json_scalars})}),
    st.dictionaries(st.sampled_from(["Set", "Delete", "CompareAndSwap", "Other"]), json_docs,
                    max_size=2))
# ids the API refuses (0, negative, huge, not ints) or this node alone
member_ids = st.one_of(st.just(1), st.integers(-5, 0), st.integers(2**63, 2**65),
                       st.text(max_size=3), st.none(), st.floats(allow_nan=False))
addrs = st.one_of(st.just("127.0.0.1:1"), st.text(max_size=30), st.integers())
admin_docs = st.one_of(st.lists(member_ids, max_size=4),
                       st.lists(st.tuples(member_ids, addrs).map(list), max_size=3),
                       st.tuples(member_ids, addrs).map(list), json_docs)


@st.composite
def bodies(draw, path: str) -> bytes:
    kind = draw(st.sampled_from(["shaped", "json", "raw"]))
    if kind == "raw":
        return draw(st.binary(max_size=300))
    if kind == "json" or path not in ROUTES:
        doc = draw(json_docs)
    elif path == "/write":
        doc = draw(command_docs)
    elif path in ("/read", "/consistent_read"):
        doc = draw(keys)
    elif path in MEMBERSHIP_ROUTES:
        doc = draw(admin_docs)
        if path == "/change-membership" and isinstance(doc, list):
            doc = [v for v in doc if v != 1 or len(doc) == 1]  # never a voter set with others
    else:
        doc = draw(json_docs)
    return json.dumps(doc).encode()


def mostly(common, rare, one_in: int = 8):
    """``common`` drawn (one_in - 1) times in one_in, ``rare`` otherwise: requests should
    mostly reach the handlers, and sometimes be odd on purpose."""
    return st.integers(0, one_in - 1).flatmap(lambda n: rare if n == 0 else common)


tokens = st.text(st.characters(min_codepoint=33, max_codepoint=126, exclude_characters=":"),
                 min_size=1, max_size=12)
methods = mostly(st.sampled_from(["POST"] * 4 + ["GET"] * 3 + ["PUT", "DELETE", "HEAD",
                                                              "OPTIONS", "PATCH"]), tokens)
paths = mostly(st.sampled_from(ROUTES), st.one_of(
    st.sampled_from(ROUTES).map(lambda r: r + "/x"),
    st.sampled_from(ROUTES).map(lambda r: r + "?a=1&b"),
    st.sampled_from(ROUTES).map(str.upper),
    tokens.map(lambda t: "/" + t)), one_in=4)
header_names = st.sampled_from(["Content-Type", "Accept", "Expect", "Connection", "X-Fuzz",
                                "Content-Encoding"]) | tokens
header_values = st.sampled_from(["application/json", "text/plain", "100-continue", "close",
                                 "keep-alive", "identity", "gzip", ""]) | st.text(
    st.characters(min_codepoint=32, max_codepoint=126), max_size=40)


@st.composite
def requests(draw) -> bytes:
    method = draw(methods)
    path = draw(paths)
    body = draw(bodies(path))
    headers = draw(mostly(st.just([]), st.lists(st.tuples(header_names, header_values),
                                                 min_size=1, max_size=3), one_in=3))
    return raw(method, path, body, headers, length=draw(mostly(st.just(True), st.just(False)))
               or not body)


def check(node, data: bytes) -> int:
    target, proc, log = node
    status, line = request(target, data)
    assert proc.poll() is None, f"the node exited ({proc.returncode}); see {log}"
    assert status < 500, f"{line!r} answering {data[:300]!r}"
    return status


@CAMPAIGN
@given(data=requests())
def test_any_request_gets_an_answer_below_500(node, data):
    check(node, data)


@settings(CAMPAIGN, max_examples=max(20, FUZZ_EXAMPLES // 4))
@given(batch=st.lists(requests(), min_size=2, max_size=6))
def test_pipelined_requests_get_answers_below_500(node, batch):
    target, proc, log = node
    with socket.create_connection(target, timeout=ANSWER_TIMEOUT_S) as s:
        s.sendall(b"".join(batch))
        try:
            s.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        got = b""
        try:
            while len(got) < 1 << 22:  # bounded: the answers are finite, each recv times out
                chunk = s.recv(1 << 16)
                if not chunk:
                    break
                got += chunk
        except socket.timeout:
            raise AssertionError(f"no end of answers within {ANSWER_TIMEOUT_S} s") from None
        except ConnectionResetError:
            pass
    assert got.startswith(b"HTTP/1.1 "), f"no answer at all to {b''.join(batch)[:300]!r}"
    statuses = [int(got[i + 9:i + 12]) for i in _find_all(got, b"HTTP/1.1 ")
                if got[i + 9:i + 12].isdigit()]
    assert statuses and all(s < 500 for s in statuses), statuses
    assert proc.poll() is None, f"the node exited ({proc.returncode}); see {log}"


def _find_all(data: bytes, needle: bytes) -> list[int]:
    out, i = [], data.find(needle)
    while i != -1:
        out.append(i)
        i = data.find(needle, i + 1)
    return out


def test_the_node_still_serves_after_the_campaign(node):
    target, proc, _ = node
    doc = json.dumps({"Set": {"key": "after", "value": "fuzz"}}).encode()
    assert check(node, raw("POST", "/write", doc, [("Content-Type", "application/json")])) == 200
