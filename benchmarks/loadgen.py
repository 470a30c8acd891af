"""The HTTP load generator every KV point uses, for fastraft and etcd alike: ``clients``
keep-alive HTTP/1.1 connections to one endpoint, each sending its next request as soon as the
previous answer arrived (closed loop). Latencies of the requests that start after the warm-up
and finish before the end are kept, in nanoseconds, in one ``array`` (numpy reads it as is).

A target (``FastraftKV``, ``Etcd``) says how a write and a read look on the wire, whether an
answer is a success, and which endpoint leads; the generator is the same for both.

Bounds: ``clients`` connections, one request in flight on each; every read waits at most
``io_timeout_s``; the run ends at warm-up + duration whatever the server does.
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
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
            break
    return status, await reader.readexactly(length) if length else b""


async def _closed_loop(url: str, target, op: str, clients: int, warmup_s: float,
                       duration_s: float, keys: int, io_timeout_s: float) -> dict:
    host, port = url.split("//", 1)[1].rsplit(":", 1)
    lat = array("q")
    counts = {"ok": 0, "errors": 0}
    now = time.perf_counter_ns
    t_meas = now() + int(warmup_s * 1e9)
    t_end = t_meas + int(duration_s * 1e9)

    async def client(c: int) -> None:
        reader, writer = await asyncio.open_connection(host, int(port))
        i = c
        try:
            while True:  # bounded by t_end
                path, body = target.request(op, f"k{i % keys}")
                i += clients
                msg = (b"POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
                       b"Content-Length: %d\r\n\r\n" % (path.encode(), host.encode(), len(body)) + body)
                s = now()
                if s >= t_end:
                    return
                writer.write(msg)
                status, answer = await asyncio.wait_for(_read_answer(reader), io_timeout_s)
                e = now()
                if s >= t_meas and e <= t_end:
                    if target.ok(op, status, answer):
                        lat.append(e - s)
                        counts["ok"] += 1
                    else:
                        counts["errors"] += 1
        finally:
            writer.close()

    results = await asyncio.gather(*(client(c) for c in range(clients)), return_exceptions=True)
    failures = [repr(r) for r in results if isinstance(r, BaseException)]
    return {"ops_s": counts["ok"] / duration_s, "ok": counts["ok"], "errors": counts["errors"],
            "client_failures": failures[:3], "latency_ns": lat}


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
    """One closed-loop point against ``url``: ops/s, errors, latencies (ns array) and the
    server processes' CPU seconds per 1,000 ops."""
    target = TARGETS[target_name]
    cpu0 = _cpu_s(list(server_pids))
    out = asyncio.run(_closed_loop(url, target, op, clients, warmup_s, duration_s, keys,
                                   io_timeout_s))
    cpu = _cpu_s(list(server_pids)) - cpu0
    out["server_cpu_s"] = cpu
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
