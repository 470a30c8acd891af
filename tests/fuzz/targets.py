"""What the fuzzers check, one function per target, shared by the atheris harnesses
(``fuzz_codec.py``, ``fuzz_frame_reader.py``, run for a bounded time by ``run.py``) and by the
regression tests that replay every input of ``corpus/`` (``test_fuzz_regressions.py``).

* ``check_codec(data)``: the codec's decode functions (``decode_message``,
  ``decode_entries``, ``frame_size``) of both builds, compiled and pure, on one input. The
  first byte picks how the rest is used: as a whole frame as it is, or as a frame body given a
  valid header and CRC32C (random bytes almost never pass the checksum, so without this the
  fuzzer would stop at it). Failures: an exception other than ``CodecError``, the two builds
  disagreeing (result, or exception message), or a decoded message that does not encode back
  to the same bytes (the decoder is strict, so every accepted frame is canonical).
* ``FrameServer.check(data)``: the bytes sent on a fresh connection to a real
  ``serve_raft_tcp`` on 127.0.0.1 (its own trio thread, an echo node behind it), then the
  write side closed. Failures: the server not closing the connection within ``HANG_S`` (a
  hang), the server task dying (any exception but the documented ``CodecError`` escapes
  the reading path and ends ``serve_raft_tcp``), or the server not answering a valid request
  on a new connection afterwards.
"""

from __future__ import annotations

import logging
import socket
import struct
import threading

import crc32c
import trio

from fastraft.errors import CodecError
from fastraft.accel.pure import codec as pure
from fastraft.net import PipelinedHandler

try:
    from fastraft.accel.compiled import codec as compiled
except ImportError:  # a source tree without the compiled core: the pure build alone
    compiled = None

FLAVOURS = tuple(m for m in (compiled, pure) if m is not None)
#: Frame limit used by the codec target: small, so that size checks are reachable.
MAX_FRAME = 1 << 16


def with_header(kind: int, body: bytes, version: int = pure.WIRE_VERSION) -> bytes:
    return struct.pack("<BBHII", version, kind, 0, len(body), crc32c.crc32c(body)) + body


def _outcome(fn, data):
    try:
        return ("ok", fn(data, max_frame_bytes=MAX_FRAME))
    except CodecError as e:
        return ("CodecError", str(e))
    # anything else propagates: the fuzzer reports it as a crash


def _comparable(value):
    """Decoded values of either build as plain data (the builds have their own Entry types)."""
    if isinstance(value, list):
        return [_comparable(v) for v in value]
    if hasattr(value, "payload") and hasattr(value, "index"):
        return ("entry", value.term, value.index, int(value.kind), bytes(value.payload))
    if hasattr(value, "__dataclass_fields__"):
        return (type(value).__name__,) + tuple(
            _comparable(getattr(value, f)) for f in value.__dataclass_fields__)
    return value


def check_codec(data: bytes) -> None:
    if not data:
        return
    mode, rest = data[0], data[1:]
    if mode & 3 == 0:
        frame = rest  # as it came
    else:
        kind = pure.FRAME_MESSAGE if mode & 3 == 1 else (pure.FRAME_ENTRIES if mode & 3 == 2
                                                          else mode >> 2)
        frame = with_header(kind, rest)
    for name in ("decode_message", "decode_entries", "frame_size"):
        arg = frame[:pure.HEADER_SIZE] if name == "frame_size" else frame
        got = [_outcome(getattr(m, name), arg) for m in FLAVOURS]
        seen = [(g[0], _comparable(g[1])) for g in got]
        assert all(s == seen[0] for s in seen), f"{name}: the builds disagree: {seen}"
        if got[0][0] == "ok" and name != "frame_size":
            for m, g in zip(FLAVOURS, got):
                encode = m.encode_message if name == "decode_message" else m.encode_entries
                again = encode(g[1], max_frame_bytes=MAX_FRAME)
                assert again == frame, f"{name}: decoded frame does not encode back to itself"


# --- the TCP server's reading path -------------------------------------------------------


class EchoNode(PipelinedHandler):
    """A node behind the server that answers every request at once (as a ``PipelinedHandler``:
    the path a fastraft node takes), with a response built from the request."""

    async def submit_request(self, req):
        from fastraft.messages import (AppendEntriesResponse, InstallSnapshotResponse,
                                       TimeoutNowResponse, VoteRequest, VoteResponse,
                                       AppendEntriesRequest, InstallSnapshotRequest)
        from fastraft.net import Reply

        if isinstance(req, VoteRequest):
            resp = VoteResponse(term=req.term, sender=1, granted=False, pre_vote=req.pre_vote)
        elif isinstance(req, AppendEntriesRequest):
            resp = AppendEntriesResponse(term=req.term, sender=1, success=False,
                                         match_index=0, seq=req.seq)
        elif isinstance(req, InstallSnapshotRequest):
            resp = InstallSnapshotResponse(term=req.term, sender=1, snapshot_id=req.snapshot_id,
                                           next_offset=0, done=False)
        else:
            resp = TimeoutNowResponse(term=req.term, sender=1)
        reply = Reply()
        reply.set_result(resp)
        return reply

#: Longest the server may take to close a connection whose peer has sent everything.
HANG_S = 5.0


class FrameServer:
    """A real ``serve_raft_tcp`` in a thread of its own (``start()``/``stop()``)."""

    def __init__(self) -> None:
        self.port: int | None = None
        self.error: BaseException | None = None
        self._ready = threading.Event()
        self._token = None
        self._thread = threading.Thread(target=self._run, name="frame-server", daemon=True)

    def start(self) -> "FrameServer":
        self._thread.start()
        if not self._ready.wait(30) or self.port is None:
            raise RuntimeError(f"the server did not start: {self.error!r}")
        return self

    def stop(self) -> None:
        if self._token is not None and self._thread.is_alive():
            try:
                self._token.run_sync_soon(self._cancel.cancel)
            except trio.RunFinishedError:
                pass
        self._thread.join(10)

    def _run(self) -> None:
        try:
            trio.run(self._main)
        except BaseException as e:  # noqa: BLE001 - reported by check()
            self.error = e
            self._ready.set()

    async def _main(self) -> None:
        from fastraft.net.limits import ListenerLimits

        self._token = trio.lowlevel.current_trio_token()
        logging.getLogger("fastraft.net.tcp").setLevel(logging.ERROR)  # refusals are expected
        limits = ListenerLimits(max_buffered_bytes=1 << 20, max_total_buffered_bytes=8 << 20,
                                frame_timeout_s=HANG_S / 2, idle_timeout_s=HANG_S / 2)
        with trio.CancelScope() as self._cancel:
            async with trio.open_nursery() as nursery:
                listeners = await nursery.start(self._serve, limits)
                self.port = listeners[0].socket.getsockname()[1]
                self._ready.set()

    async def _serve(self, limits, task_status) -> None:
        from fastraft.net import serve_raft_tcp

        try:
            await serve_raft_tcp(EchoNode(), "127.0.0.1", 0, limits=limits,
                                 task_status=task_status)
        except BaseException as e:
            self.error = e  # as soon as it leaves the server, so check() names the right input
            raise

    def _settle(self) -> None:
        """Let the server's loop run a few rounds, so that an exception raised while it
        handled the last input has left ``serve_raft_tcp`` before we look."""
        async def rounds():
            for _ in range(8):
                await trio.sleep(0)
        try:
            trio.from_thread.run(rounds, trio_token=self._token)
        except BaseException:  # noqa: BLE001 - the run is over or ending: check() says why
            pass

    def _exchange(self, data: bytes) -> bytes:
        """Send ``data``, close our write side, read until the server closes; the bytes it
        answered. AssertionError when it does not close within HANG_S."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=HANG_S) as s:
            try:
                s.sendall(data)
                s.shutdown(socket.SHUT_WR)
            except OSError:
                pass  # the server closed first (it refused what it read): fine
            got = bytearray()
            try:
                while True:  # bounded: each recv waits at most HANG_S, the answers are finite
                    chunk = s.recv(1 << 16)
                    if not chunk:
                        return bytes(got)
                    got += chunk
                    if len(got) > 64 << 20:
                        raise AssertionError("the server answered more than 64 MiB")
            except socket.timeout:
                raise AssertionError(f"the server did not close the connection within "
                                     f"{HANG_S} s: a hang") from None
            except ConnectionResetError:
                return bytes(got)

    def check(self, data: bytes) -> None:
        self._exchange(data)
        self._settle()
        assert self.error is None and self._thread.is_alive(), f"the server died: {self.error!r}"

    def check_alive(self) -> None:
        """A valid request on a new connection still gets its answer."""
        from fastraft.messages import VoteRequest
        from fastraft.net.framing import encode_ok

        answer = self._exchange(encode_ok(7, VoteRequest(term=1, sender=2, last_log_term=0,
                                                         last_log_index=0)))
        assert answer[:8] == struct.pack("<Q", 7), f"no answer to a valid request: {answer!r}"
        assert self.error is None, f"the server died: {self.error!r}"
