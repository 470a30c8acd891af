"""The dialling side of the TCP network (``TcpNetwork``, a ``RaftNetwork``): one persistent,
pipelined connection from a node to each peer it sends to (the overview is in
``fastraft.net.tcp``).

Requests carry ids (``framing``) and many may be in flight; the connection's ``FrameWriter``
puts every request queued since its last write into one write, or writes a request at once
when nothing is queued before it. The connection is opened on the first request; when it
fails, every request in flight on it fails with ``Unreachable`` and the next request opens a
new one, after a backoff that doubles from ``backoff_min_s`` to ``backoff_max_s`` while
attempts keep failing (requests inside the backoff fail at once, without dialling).
"""

from __future__ import annotations

import itertools
import logging
import math

import trio

from ..errors import CodecError
from ..messages import Message
from ..types import Node
from .framing import DEFAULT_MAX_FRAME_BYTES, FrameReader, encode_ok
from .protocol import RaftClient, RemoteError, Reply, Unreachable
from .tls import PeerRefused, TlsConfig, open_client_tls
from .writer import STREAM_ERRORS, FrameWriter

__all__ = ["TcpNetwork", "TcpClient", "parse_addr", "MAX_PENDING"]

log = logging.getLogger("fastraft.net.tcp")

#: Bounds of a connection's queues: envelopes waiting to be written (a full queue makes the
#: next request wait, which slows the sender down), requests waiting for an answer (on the
#: server side too: beyond it, reading waits).
_OUTBOX_ENVELOPES = 1024
MAX_PENDING = 8192


def parse_addr(addr: str) -> tuple[str, int]:
    """``"host:port"`` -> (host, port); ValueError when it is not that shape."""
    host, sep, port = addr.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"expected 'host:port', got {addr!r}")
    return host.strip("[]"), int(port)


class _Connection:
    """One open connection of a client: its stream, its writer, its pending requests."""

    def __init__(self, stream) -> None:
        self.stream = stream
        self.writer = FrameWriter(stream, _OUTBOX_ENVELOPES)
        self.pending: dict[int, Reply] = {}
        self.broken = False

    def fail_all(self, error: BaseException) -> None:
        self.broken = True
        pending, self.pending = self.pending, {}
        for reply in pending.values():
            reply.set_error(error)


class _PendingReply(Reply):
    """A reply slot of a TCP request; waiting on it and being cancelled frees the slot."""

    __slots__ = ("_conn", "_request_id")

    def __init__(self, conn: _Connection, request_id: int) -> None:
        super().__init__()
        self._conn = conn
        self._request_id = request_id

    async def result(self) -> Message | None:
        try:
            return await super().result()
        finally:
            if not self.done:
                self._conn.pending.pop(self._request_id, None)

    def cancel(self) -> None:
        self._conn.pending.pop(self._request_id, None)
        super().cancel()


class TcpNetwork:
    """The TCP ``RaftNetwork``: gives a ``TcpClient`` per target.

    ``connect_timeout_s`` bounds one dial; ``backoff_min_s``/``backoff_max_s`` bound the
    pause between failing dials; ``max_frame_bytes`` bounds a response frame. With ``tls``
    (``fastraft.net.tls``) every connection is mutual TLS, and a server whose certificate is
    not the target node of our cluster is refused (``Unreachable``).
    """

    def __init__(self, *, connect_timeout_s: float = 1.0, backoff_min_s: float = 0.05,
                 backoff_max_s: float = 1.0, max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES,
                 tls: TlsConfig | None = None, handshake_timeout_s: float = 5.0) -> None:
        if connect_timeout_s <= 0 or backoff_min_s < 0 or backoff_max_s < backoff_min_s:
            raise ValueError("need connect_timeout_s > 0 and 0 <= backoff_min_s <= backoff_max_s")
        self.connect_timeout_s = connect_timeout_s
        self.backoff_min_s = backoff_min_s
        self.backoff_max_s = backoff_max_s
        self.max_frame_bytes = max_frame_bytes
        self.tls = tls
        self.handshake_timeout_s = handshake_timeout_s

    def client(self, target_id: int, node: Node) -> "TcpClient":
        return TcpClient(self, target_id, node)


class TcpClient(RaftClient):
    """Requests to one target over one persistent connection. Use it as an async context
    manager: it runs the connection's reader and writer tasks in a nursery of its own."""

    pipelined = True

    def __init__(self, network: TcpNetwork, target_id: int, node: Node) -> None:
        self.network = network
        self.target_id = target_id
        self.node = node
        self._host, self._port = parse_addr(node.addr)
        self._ids = itertools.count(1)
        self._conn: _Connection | None = None
        self._connect_lock = trio.Lock()
        self._retry_at = -math.inf
        self._backoff_s = 0.0
        self._nursery_cm = None
        self._nursery: trio.Nursery | None = None
        self._closed = False
        self.connects = 0  #: connections opened so far (for tests and metrics)

    async def __aenter__(self) -> "TcpClient":
        self._nursery_cm = trio.open_nursery()
        self._nursery = await self._nursery_cm.__aenter__()
        return self

    async def __aexit__(self, *exc):
        # nothing may await before the nursery is exited: a checkpoint in a cancelled task
        # would raise and leave the nursery open
        self._close_now()
        cm, self._nursery_cm = self._nursery_cm, None
        if cm is not None:
            return await cm.__aexit__(*exc)
        return False

    def _close_now(self) -> None:
        """Refuse new requests, fail those in flight, stop the connection's tasks (they close
        the socket on their way out)."""
        self._closed = True
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.fail_all(Unreachable("client closed"))
            conn.writer.close()
        if self._nursery is not None:
            self._nursery.cancel_scope.cancel()

    async def aclose(self) -> None:
        self._close_now()
        await trio.lowlevel.checkpoint()

    def _register(self, conn: _Connection, request: Message) -> tuple[int, bytes, _PendingReply]:
        """A new request id, its envelope, and its reply slot (pending on ``conn``)."""
        request_id = next(self._ids)
        data = encode_ok(request_id, request)  # before the slot: a refused message leaves none
        reply = _PendingReply(conn, request_id)
        conn.pending[request_id] = reply
        return request_id, data, reply

    async def start(self, request: Message) -> Reply:
        conn = self._conn
        if conn is None or conn.broken:
            conn = await self._connect()
        if len(conn.pending) >= MAX_PENDING:
            raise Unreachable(f"{MAX_PENDING} requests to node {self.target_id} unanswered")
        request_id, data, reply = self._register(conn, request)
        try:
            await conn.writer.put(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            conn.pending.pop(request_id, None)
            raise Unreachable(f"connection to node {self.target_id} closed") from None
        except BaseException:
            conn.pending.pop(request_id, None)
            raise
        return reply

    def start_nowait(self, request: Message) -> Reply | None:
        conn = self._conn
        if conn is None or conn.broken or self._closed or len(conn.pending) >= MAX_PENDING:
            return None
        request_id, data, reply = self._register(conn, request)
        try:
            conn.writer.put_nowait(data)
        except (trio.WouldBlock, trio.BrokenResourceError, trio.ClosedResourceError):
            conn.pending.pop(request_id, None)  # its id stays unused: harmless
            return None
        return reply

    async def _connect(self) -> _Connection:
        if self._closed:
            raise Unreachable("client closed")
        if self._nursery is None:
            raise RuntimeError("use the client as 'async with network.client(...) as client'")
        async with self._connect_lock:
            if self._conn is not None and not self._conn.broken:
                return self._conn  # another request connected while we waited
            if trio.current_time() < self._retry_at:
                raise Unreachable(f"node {self.target_id} unreachable; next dial after backoff")
            try:
                with trio.fail_after(self.network.connect_timeout_s):
                    stream = await trio.open_tcp_stream(self._host, self._port)
                if self.network.tls is not None:
                    stream = await self._secure(stream)
            except (OSError, trio.TooSlowError, PeerRefused, trio.BrokenResourceError) as e:
                self._backoff_s = min(self.network.backoff_max_s,
                                      max(self.network.backoff_min_s, self._backoff_s * 2))
                self._retry_at = trio.current_time() + self._backoff_s
                raise Unreachable(f"cannot connect to node {self.target_id} at {self.node.addr}: {e}") from None
            self._backoff_s = 0.0
            self._retry_at = -math.inf
            self.connects += 1
            conn = _Connection(stream)
            self._conn = conn
            self._nursery.start_soon(self._run_connection, conn)
            return conn

    async def _secure(self, stream: trio.SocketStream):
        try:
            with trio.fail_after(self.network.handshake_timeout_s):
                return await open_client_tls(stream, self.network.tls, self.target_id)
        except BaseException as e:
            with trio.CancelScope(shield=True):  # a cancelled close must not replace ``e``
                await trio.aclose_forcefully(stream)
            if isinstance(e, PeerRefused):
                log.warning("refused node %d at %s: %s", self.target_id, self.node.addr, e)
            raise

    async def _run_connection(self, conn: _Connection) -> None:
        error: BaseException = Unreachable(f"connection to node {self.target_id} closed")
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(conn.writer.run, nursery.cancel_scope)
                error = await self._read_loop(conn)
                nursery.cancel_scope.cancel()
        finally:
            conn.fail_all(error)
            conn.writer.close()  # a request still queueing gets BrokenResourceError
            if self._conn is conn:
                self._conn = None
            # shielded: when the client's scope is cancelled (it closes), the close's checkpoint
            # would raise Cancelled here and replace, so lose, an error the tasks raised
            with trio.CancelScope(shield=True):
                await trio.aclose_forcefully(conn.stream)

    async def _read_loop(self, conn: _Connection) -> BaseException:
        """Pair responses with their requests until the connection ends; return why it did."""
        reader = FrameReader(conn.stream, self.network.max_frame_bytes)
        try:
            while True:  # ends with the connection: EOF, error or cancel
                got = await reader.read()
                if got is None:
                    return Unreachable(f"node {self.target_id} closed the connection")
                request_id, body = got
                reply = conn.pending.pop(request_id, None)
                if reply is None:
                    continue  # its request was cancelled (timed out); the answer is late
                if isinstance(body, str):
                    reply.set_error(RemoteError(f"node {self.target_id}: {body}"))
                else:
                    reply.set_result(body)
        except CodecError as e:
            log.warning("node %d sent bytes that do not parse (%s); disconnecting", self.target_id, e)
            return Unreachable(f"node {self.target_id} sent a bad frame: {e}")
        except STREAM_ERRORS as e:
            return Unreachable(f"connection to node {self.target_id} lost: {e}")
