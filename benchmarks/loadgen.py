"""The HTTP load generator every KV point uses, for fastraft and etcd alike: ``clients``
keep-alive HTTP/1.1 connections to one endpoint, each sending its next request as soon as the
previous answer arrived (closed loop). Latencies of the requests that start after the warm-up
and finish before the end are kept, in nanoseconds, in one ``array`` (numpy reads it as is).

A target (``FastraftKV``, ``Etcd``) says how a write and a read look on the wire, whether an
answer is a success, and which endpoint leads; the generator is the same for both.

Bounds: ``clients`` connections, one request in flight on each, answers of at most 1 MiB;
the point ends at warm-up + duration + ``io_timeout_s`` whatever the server does. Each
connection is an asyncio Protocol that sends its next request from ``data_received``: no task
switch per request, so the generator costs the machine as little as it can.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
import urllib.request
from array import array

VALUE = b"v" * 100
KEY_SPACE = 10_000


class FastraftKV:
    name = "fastraft"

    @staticmethod
    def request(op: str, key: str) -> tuple[str, bytes]:
        if op == "write":
            return "/write", json.dumps({"Set": {"key": key, "value": VALUE.decode()}}).encode()
        return "/consistent_read", json.dumps(key).encode()

    @staticmethod
    def ok(op: str, status: int, body: bytes) -> bool:
        return status == 200 and body.startswith(b'{"Ok"') and (op == "write" or body != b'{"Ok":null}')

    @staticmethod
    def leader(endpoints: list[str]) -> str | None:
        for ep in endpoints:
            try:
                with urllib.request.urlopen(ep + "/metrics", timeout=2) as r:
                    m = json.loads(r.read())["Ok"]
            except (OSError, ValueError, KeyError):
                continue
            lid = m.get("current_leader")
            if lid is not None:
                return "http://" + m["membership_config"]["membership"]["nodes"][str(lid)]["addr"]
        return None


class Etcd:
    """etcd's JSON gateway (v3 API over HTTP): put, and range (linearizable by default)."""

    name = "etcd"

    @staticmethod
    def request(op: str, key: str) -> tuple[str, bytes]:
        k = base64.b64encode(key.encode()).decode()
        if op == "write":
            return "/v3/kv/put", json.dumps({"key": k, "value": base64.b64encode(VALUE).decode()}).encode()
        return "/v3/kv/range", json.dumps({"key": k}).encode()

    @staticmethod
    def ok(op: str, status: int, body: bytes) -> bool:
        return status == 200 and b'"header"' in body and (op == "write" or b'"kvs"' in body)

    @staticmethod
    def leader(endpoints: list[str]) -> str | None:
        for ep in endpoints:
            try:
                req = urllib.request.Request(ep + "/v3/maintenance/status", data=b"{}",
                                             method="POST")
                with urllib.request.urlopen(req, timeout=2) as r:
                    st = json.loads(r.read())
            except (OSError, ValueError):
                continue
            if st.get("leader") and st.get("leader") == st.get("header", {}).get("member_id"):
                return ep
        return None


TARGETS = {"fastraft": FastraftKV, "etcd": Etcd}


async def _read_answer(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    length = _content_length(head)
    return int(head[9:12]), await reader.readexactly(length) if length else b""


def _content_length(head: bytes) -> int:
    for line in head.split(b"\r\n")[1:]:
        if line[:15].lower() == b"content-length:":
            return int(line[15:])
    return 0


class _Connection(asyncio.Protocol):
    """One keep-alive connection with one request in flight: sends the next request from
    ``data_received`` as soon as an answer is complete (no task switch per request)."""

    def __init__(self, point: "_Point", first: int) -> None:
        self.point, self.i = point, first
        self.buf = bytearray()
        self.done = asyncio.get_running_loop().create_future()

    def connection_made(self, transport) -> None:
        self.transport = transport
        self._send()

    def _send(self) -> None:
        pt = self.point
        self.sent = time.perf_counter_ns()
        if self.sent >= pt.t_end:
            self.transport.close()
            return
        self.transport.write(pt.requests[self.i % len(pt.requests)])
        self.i += pt.clients

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        if len(buf) > 1 << 20:  # bounded: no answer of the KV API is this long
            self.transport.close()
            return
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            return
        head = bytes(buf[:end])
        length = _content_length(head)
        if len(buf) < end + 4 + length:
            return
        e = time.perf_counter_ns()
        pt = self.point
        pt.answered += 1
        if self.sent >= pt.t_meas and e <= pt.t_end:
            if pt.ok(int(head[9:12]), bytes(buf[end + 4:end + 4 + length])):
                pt.lat.append(e - self.sent)
            else:
                pt.errors += 1
        del buf[:end + 4 + length]
        self._send()

    def connection_lost(self, exc) -> None:
        if not self.done.done():
            self.done.set_result(exc)


class _Point:
    def __init__(self, host, target, op, clients, warmup_s, duration_s, keys) -> None:
        self.clients, self.lat, self.errors = clients, array("q"), 0
        self.answered = 0  # every answer of the point, warm-up included (for CPU per answer)
        self.ok = lambda status, body: target.ok(op, status, body)
        self.requests = []
        for k in range(min(keys, 4096)):  # pre-rendered, as many as keys (at most 4096)
            path, body = target.request(op, f"k{k * 7919 % keys}")
            self.requests.append(b"POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json"
                                 b"\r\nContent-Length: %d\r\n\r\n" % (path.encode(), host.encode(),
                                                                        len(body)) + body)
        now = time.perf_counter_ns()
        self.t_meas = now + int(warmup_s * 1e9)
        self.t_end = self.t_meas + int(duration_s * 1e9)


async def _closed_loop(url: str, target, op: str, clients: int, warmup_s: float,
                       duration_s: float, keys: int, io_timeout_s: float) -> dict:
    host, port = url.split("//", 1)[1].rsplit(":", 1)
    loop = asyncio.get_running_loop()
    pt = _Point(host, target, op, clients, warmup_s, duration_s, keys)
    conns, failures = [], []
    for c in range(clients):
        try:
            _, proto = await loop.create_connection(lambda c=c: _Connection(pt, c), host, int(port))
            conns.append(proto)
        except OSError as e:
            failures.append(repr(e))
    # bounded: every connection closes itself at t_end; one slower than io_timeout_s is cut
    wait_s = (pt.t_end - time.perf_counter_ns()) / 1e9 + io_timeout_s
    _, late = await asyncio.wait([p.done for p in conns], timeout=max(0.0, wait_s))
    for p in conns:
        p.transport.close()
    if late:
        failures.append(f"{len(late)} connections without an answer for {io_timeout_s} s")
    return {"ops_s": len(pt.lat) / duration_s, "ok": len(pt.lat), "errors": pt.errors,
            "answered": pt.answered, "client_failures": failures[:3], "latency_ns": pt.lat}


def _cpu_s(pids: list[int]) -> float:
    """User + system CPU seconds of ``pids`` (from /proc; 0 for any gone)."""
    import os

    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
        except (OSError, IndexError, ValueError):
            pass
    return total


def run_point(url: str, target_name: str, op: str, clients: int, warmup_s: float,
              duration_s: float, keys: int = KEY_SPACE, server_pids: list[int] = (),
              io_timeout_s: float = 30.0) -> dict:
    """One closed-loop point against ``url``: ops/s, errors, latencies (ns array), the
    server processes' CPU seconds (in all, and each) and this process's own, all over the
    whole point (warm-up included): divide them by ``answered``, the answers in that time."""
    import os

    target = TARGETS[target_name]
    pids = list(server_pids)
    each0 = [_cpu_s([pid]) for pid in pids]
    own0 = os.times()
    out = asyncio.run(_closed_loop(url, target, op, clients, warmup_s, duration_s, keys,
                                   io_timeout_s))
    own1 = os.times()
    each = [_cpu_s([pid]) - c0 for pid, c0 in zip(pids, each0)]
    out["server_cpu_s"] = sum(each)
    out["server_cpu_s_each"] = each  # in the order of server_pids
    # this process (the generator, and whatever else it runs) over the whole point
    out["loadgen_cpu_s"] = (own1.user - own0.user) + (own1.system - own0.system)
    return out


def preload(url: str, target_name: str, keys: int, clients: int = 32,
            timeout_s: float = 120.0) -> None:
    """Write every key once (so reads find them): ``keys`` writes, ``clients`` at a time."""
    target = TARGETS[target_name]
    host, port = url.split("//", 1)[1].rsplit(":", 1)

    async def main():
        async def client(c):
            reader, writer = await asyncio.open_connection(host, int(port))
            try:
                for i in range(c, keys, clients):  # bounded: keys / clients writes
                    path, body = target.request("write", f"k{i}")
                    writer.write(b"POST %s HTTP/1.1\r\nHost: h\r\nContent-Length: %d\r\n\r\n"
                                 % (path.encode(), len(body)) + body)
                    status, answer = await _read_answer(reader)
                    if not target.ok("write", status, answer):
                        raise RuntimeError(f"preload write failed: {status} {answer[:200]!r}")
            finally:
                writer.close()

        await asyncio.wait_for(asyncio.gather(*(client(c) for c in range(clients))), timeout_s)

    asyncio.run(main())
