"""Raft over TCP: a persistent, pipelined connection from each node to each peer it sends to,
and a server that fits a nursery.

Outbound (``TcpNetwork``, a ``RaftNetwork``)::

    network = TcpNetwork()
    async with network.client(2, Node("127.0.0.1:22002")) as client:
        resp = await client.append_entries(req, timeout_s=1.0)

Each client keeps one connection to its target (so a pair of nodes that both send holds one
connection in each direction; each side only ever writes requests on its own). Requests carry
ids (``framing``) and many may be in flight; a writer task puts every request queued since its
last write into one ``send_all``. The connection is opened on the first request; when it
fails, every request in flight on it fails with ``Unreachable`` and the next request opens a
new one, after a backoff that doubles from ``backoff_min_s`` to ``backoff_max_s`` while
attempts keep failing (requests inside the backoff fail at once, without dialling).

Inbound (``serve_raft_tcp``)::

    async with trio.open_nursery() as nursery:
        async with open_raft(...) as raft:
            await nursery.start(serve_raft_tcp, raft, "127.0.0.1", 22001)

Per connection, requests are handed to the node in the order they arrive (``submit``), so a
follower sees pipelined AppendEntries in order and can put them in one storage flush; each
answer goes back as soon as it is known (a request the node answers late holds up no other),
answers queued meanwhile coalesced into one write. A peer that sends bytes that do not parse,
or a frame over ``max_frame_bytes``, is logged and disconnected; the server carries on. The
server stops by itself when the node shuts down (if the handler offers ``wait_closed``).

Security: with a ``TlsConfig`` on both sides every connection is mutual TLS and speaks for
one authenticated node only (``fastraft.net.tls``); the listener's connections, waits and
buffered bytes are bounded by ``ListenerLimits`` (``fastraft.net.limits``).
"""

from __future__ import annotations

import errno
import itertools
import logging
import math
import os
from collections import deque
from functools import partial

import trio

from ..errors import CodecError, FastraftError, RaftShutdown
from ..messages import Message
from ..types import Node
from .framing import DEFAULT_MAX_FRAME_BYTES, ENVELOPE_SIZE, FrameReader, encode_error, encode_ok
from .limits import ListenerLimits, ListenerStats, RateLimitedLog
from .protocol import (RESPONSE_TYPE, RaftClient, RaftHandler, RemoteError, Reply, Unreachable,
                       _DeferredReply, submit)
from .tls import PeerRefused, TlsConfig, accept_server_tls, message_sender, open_client_tls, read_hello

__all__ = ["TcpNetwork", "TcpClient", "serve_raft_tcp", "parse_addr"]

log = logging.getLogger("fastraft.net.tcp")

#: Bounds of the per-connection queues (envelopes waiting to be written, requests waiting
#: for an answer); a full queue makes the next request wait, which slows the sender down.
_OUTBOX_ENVELOPES = 1024
_MAX_PENDING = 8192
#: Largest single write: bounds the bytes one join copies.
_MAX_WRITE_BYTES = 4 * 1024 * 1024


def parse_addr(addr: str) -> tuple[str, int]:
    """``"host:port"`` -> (host, port); ValueError when it is not that shape."""
    host, sep, port = addr.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"expected 'host:port', got {addr!r}")
    return host.strip("[]"), int(port)


_STREAM_ERRORS = (OSError, trio.BrokenResourceError, trio.ClosedResourceError)
#: Whether a frame may be written straight to the socket (``_write_now``): POSIX sockets
#: take ``os.write``.
_WRITE_NOW = os.name == "posix"


def _write_now(stream: trio.SocketStream, data: bytes) -> bytes:
    """Write what the socket takes at once, without blocking or yielding, and return the
    rest (b"" when all went). Only for a connection whose writer task is idle with nothing
    queued, so the bytes cannot overtake queued ones: it saves the writer task's turn,
    which on a single writer's path is a good share of the latency of a hop. Any error
    leaves everything to the writer task, which meets it again and ends the connection."""
    try:
        n = os.write(stream.socket.fileno(), data)
    except OSError:
        return data
    return data[n:] if n < len(data) else b""


async def _write_loop(stream: trio.abc.SendStream, outbox: trio.MemoryReceiveChannel,
                      on_end: trio.CancelScope) -> None:
    """Write envelopes as they are queued, everything queued since the last write at once.
    Ends when the outbox closes or the stream fails; either way cancels ``on_end``."""
    try:
        async for first in outbox:
            parts = [first]
            size = len(first)
            while size < _MAX_WRITE_BYTES:
                try:
                    nxt = outbox.receive_nowait()
                except (trio.WouldBlock, trio.EndOfChannel):
                    break
                parts.append(nxt)
                size += len(nxt)
            await stream.send_all(parts[0] if len(parts) == 1 else b"".join(parts))
    except _STREAM_ERRORS:
        pass
    finally:
        on_end.cancel()


class _Connection:
    """One open connection of a client: its stream, its write queue, its pending requests.

    ``writer_idle``: the writer task waits for the queue with nothing in hand, so a frame
    may go straight to the socket when the queue is empty (``_write_now``)."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.outbox_send, self.outbox_recv = trio.open_memory_channel(_OUTBOX_ENVELOPES)
        self.pending: dict[int, Reply] = {}
        self.broken = False
        self.raw_writes = _WRITE_NOW and isinstance(stream, trio.SocketStream)  # not under TLS

    def write_first(self, data: bytes) -> bytes:
        """Write ``data`` to the socket now if nothing is queued or being written before it;
        return what is left to queue (all of it, or b"" when all went)."""
        if self.raw_writes and not self.broken:
            queue = self.outbox_recv.statistics()
            if queue.tasks_waiting_receive and not queue.current_buffer_used:
                return _write_now(self.stream, data)
        return data

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
        if self._nursery is not None:
            self._nursery.cancel_scope.cancel()

    async def aclose(self) -> None:
        self._close_now()
        await trio.lowlevel.checkpoint()

    async def start(self, request: Message) -> Reply:
        conn = self._conn
        if conn is None or conn.broken:
            conn = await self._connect()
        if len(conn.pending) >= _MAX_PENDING:
            raise Unreachable(f"{_MAX_PENDING} requests to node {self.target_id} unanswered")
        request_id = next(self._ids)
        data = encode_ok(request_id, request)
        reply = _PendingReply(conn, request_id)
        conn.pending[request_id] = reply
        try:
            data = conn.write_first(data)
            if data:
                await conn.outbox_send.send(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            conn.pending.pop(request_id, None)
            raise Unreachable(f"connection to node {self.target_id} closed") from None
        except BaseException:
            conn.pending.pop(request_id, None)
            raise
        return reply

    def start_nowait(self, request: Message) -> Reply | None:
        conn = self._conn
        if conn is None or conn.broken or self._closed or len(conn.pending) >= _MAX_PENDING:
            return None
        request_id = next(self._ids)
        data = encode_ok(request_id, request)
        reply = _PendingReply(conn, request_id)
        conn.pending[request_id] = reply
        try:
            data = conn.write_first(data)
            if data:
                conn.outbox_send.send_nowait(data)
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

    async def _secure(self, stream: trio.SocketStream) -> trio.SSLStream:
        try:
            with trio.fail_after(self.network.handshake_timeout_s):
                return await open_client_tls(stream, self.network.tls, self.target_id)
        except BaseException as e:
            await trio.aclose_forcefully(stream)
            if isinstance(e, PeerRefused):
                log.warning("refused node %d at %s: %s", self.target_id, self.node.addr, e)
            raise

    async def _run_connection(self, conn: _Connection) -> None:
        error: BaseException = Unreachable(f"connection to node {self.target_id} closed")
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_write_loop, conn.stream, conn.outbox_recv, nursery.cancel_scope)
                error = await self._read_loop(conn)
                nursery.cancel_scope.cancel()
        finally:
            conn.fail_all(error)
            conn.outbox_recv.close()  # a request still queueing gets BrokenResourceError
            if self._conn is conn:
                self._conn = None
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
        except _STREAM_ERRORS as e:
            return Unreachable(f"connection to node {self.target_id} lost: {e}")


async def serve_raft_tcp(handler: RaftHandler, host: str, port: int, *,
                         max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES,
                         tls: TlsConfig | None = None, limits: ListenerLimits | None = None,
                         stats: ListenerStats | None = None,
                         task_status=trio.TASK_STATUS_IGNORED) -> None:
    """Serve Raft requests for ``handler`` (a ``fastraft.Raft``) on ``host:port`` until
    cancelled, or until the handler's ``wait_closed()`` returns when it has one.

    ``tls``: accept only mutual-TLS connections from nodes of our cluster (``fastraft.net.tls``).
    ``limits`` (``fastraft.net.limits``; defaults when None) bound connections, time and bytes;
    ``stats``, when given, is kept up to date with what the listener holds and refused.
    Reports the listeners through ``task_status.started`` (with port 0, the caller reads the
    chosen port from ``listeners[0].socket.getsockname()``).
    """
    limits = (limits or ListenerLimits()).clamped()
    server = _Server(handler, tls, limits, stats or ListenerStats(),
                     min(max_frame_bytes, limits.max_buffered_bytes - ENVELOPE_SIZE))
    async with trio.open_nursery() as nursery:
        listeners = await trio.open_tcp_listeners(port, host=host)
        for listener in listeners:
            nursery.start_soon(server.accept_loop, listener)
        task_status.started(listeners)
        wait_closed = getattr(handler, "wait_closed", None)
        if wait_closed is not None:
            await wait_closed()
            nursery.cancel_scope.cancel()


#: errnos of accept() that mean "out of a resource": pause, then accept again (trio's list).
_ACCEPT_CAPACITY_ERRNOS = {errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS}
_ACCEPT_PAUSE_S = 0.1


class _Server:
    """One listener's accept loop and its connections, within ``limits``."""

    def __init__(self, handler, tls, limits: ListenerLimits, stats: ListenerStats,
                 max_frame_bytes: int) -> None:
        self.handler = handler
        self.tls = tls
        self.limits = limits
        self.stats = stats
        self.max_frame_bytes = max_frame_bytes
        self.log_limited = RateLimitedLog(log, limits.error_log_interval_s)

    async def accept_loop(self, listener: trio.SocketListener) -> None:
        async with listener, trio.open_nursery() as nursery:
            while True:  # until cancelled
                try:
                    stream = await listener.accept()
                except OSError as e:
                    if e.errno not in _ACCEPT_CAPACITY_ERRNOS:
                        raise
                    self.log_limited(logging.ERROR, "raft listener cannot accept: %s; pausing", e)
                    await trio.sleep(_ACCEPT_PAUSE_S)
                    continue
                if self.stats.connections >= self.limits.max_connections:
                    self.stats.refused_connections += 1
                    self.log_limited(logging.WARNING, "raft listener: %d connections open, the "
                                     "limit; closing a new one from %s", self.stats.connections,
                                     _peer_name(stream))
                    await trio.aclose_forcefully(stream)
                    continue
                self.stats.connections += 1
                self.stats.accepted += 1
                nursery.start_soon(self.serve_connection, stream)

    # the connections' shared receive-buffer budget (``FrameReader``'s ``budget``)
    def room(self) -> int:
        return self.limits.max_total_buffered_bytes - self.stats.buffered_bytes

    def charge(self, delta: int) -> None:
        self.stats.charge(delta)

    async def serve_connection(self, stream: trio.SocketStream) -> None:
        peer = _peer_name(stream)
        try:
            peer_id = None
            if self.tls is not None:
                try:
                    with trio.fail_after(self.limits.handshake_timeout_s):
                        stream, peer_id = await accept_server_tls(stream, self.tls)
                except (PeerRefused, trio.TooSlowError, *_STREAM_ERRORS) as e:
                    self.stats.refused_handshakes += 1
                    self.log_limited(logging.WARNING, "refused a raft connection from %s: %s",
                                     peer, e or "handshake timed out")
                    return
            await _Served(self, stream, peer, peer_id).run()
        finally:
            self.stats.connections -= 1
            await trio.aclose_forcefully(stream)


class _Served:
    """One accepted connection. Requests are handed to the node in arrival order; each answer
    is written as soon as its reply resolves (answers carry request ids, so a request the
    node answers late, or never, holds up no other). At most ``_MAX_PENDING`` requests wait
    for an answer: then reading waits, which pushes back on the peer through TCP.

    With TLS, ``peer_id`` is the node its certificate names: the hello must name it too, and
    a request whose sender is another node is answered with an error and not handed over."""

    def __init__(self, server: _Server, stream: trio.abc.Stream, peer: str, peer_id: int | None) -> None:
        self.server = server
        self.handler = server.handler
        self.stream = stream
        self.max_frame_bytes = server.max_frame_bytes
        self.peer = peer
        self.peer_id = peer_id
        self.raw_writes = _WRITE_NOW and isinstance(stream, trio.SocketStream)  # not under TLS
        self.outbox: deque[bytes] = deque()  # bounded: one answer per unanswered request
        self.wake_writer = trio.Event()
        self.writer_idle = False  # the writer task waits with nothing in hand
        self.unanswered = 0
        self.room = trio.Event()
        self.sender_logged = False

    async def run(self) -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._write_loop, nursery.cancel_scope)
            await self._read_loop(nursery)
            nursery.cancel_scope.cancel()  # end of stream or a bad peer: answers owed are dropped

    def _answer(self, request_id: int, reply: Reply) -> None:
        error = reply.error
        if error is None:
            data = encode_ok(request_id, reply.value)
        else:
            if not isinstance(error, FastraftError):
                log.error("handler failed on a request", exc_info=error)
            data = encode_error(request_id, f"{type(error).__name__}: {error}")
        if self.raw_writes and self.writer_idle and not self.outbox:
            data = _write_now(self.stream, data)
        if data:
            self.outbox.append(data)
            self.wake_writer.set()
        self.unanswered -= 1
        if self.unanswered < _MAX_PENDING:
            self.room.set()

    async def _read_loop(self, nursery: trio.Nursery) -> None:
        limits = self.server.limits
        reader = FrameReader(self.stream, self.max_frame_bytes,
                             max_buffered_bytes=limits.max_buffered_bytes, budget=self.server,
                             idle_timeout_s=limits.idle_timeout_s,
                             frame_timeout_s=limits.frame_timeout_s)
        try:
            if self.peer_id is not None:
                with trio.fail_after(limits.handshake_timeout_s):
                    await read_hello(reader, self.server.tls.cluster_id, self.peer_id)
            while True:  # ends with the connection: EOF, error, a timeout or cancel
                while self.unanswered >= _MAX_PENDING:  # until answers free room
                    self.room = trio.Event()
                    await self.room.wait()
                got = await reader.read()  # TooSlowError when idle or slow too long
                if got is None:
                    return
                request_id, request = got
                if request is None or isinstance(request, str) or type(request) not in RESPONSE_TYPE:
                    raise CodecError(f"expected a request, got {type(request).__name__}")
                if self.peer_id is not None and message_sender(request) != self.peer_id:
                    self._refuse_sender(request_id, request)
                    continue
                try:
                    reply = await submit(self.handler, request)
                except RaftShutdown as e:
                    reply = Reply()
                    reply.set_error(e)
                self.unanswered += 1
                if isinstance(reply, _DeferredReply):
                    # a handler without submit_request runs when awaited: give it a task
                    nursery.start_soon(self._await_deferred, request_id, reply)
                else:
                    reply.on_done(partial(self._answer, request_id))
        except PeerRefused as e:
            self.server.stats.refused_handshakes += 1
            self.server.log_limited(logging.WARNING, "refused a raft connection from %s: %s",
                                    self.peer, e)
        except CodecError as e:
            self.server.log_limited(logging.WARNING, "peer %s sent bytes that do not parse or "
                                    "do not fit (%s); disconnected", self.peer, e)
        except trio.TooSlowError:
            self.server.stats.timeouts += 1
            self.server.log_limited(logging.INFO, "peer %s idle or too slow; disconnected", self.peer)
        except _STREAM_ERRORS as e:
            log.info("connection from %s lost: %s", self.peer, e)
        finally:
            reader.release()

    def _refuse_sender(self, request_id: int, request: Message) -> None:
        """Answer a request whose sender is not the authenticated peer with an error, and
        hand it to no one."""
        self.server.stats.refused_senders += 1
        if not self.sender_logged:
            self.sender_logged = True  # once per connection
            log.warning("node %d (%s) sent a %s naming node %s as its sender; dropped",
                        self.peer_id, self.peer, type(request).__name__, message_sender(request))
        reply = Reply()
        reply.set_error(PeerRefused(f"sender {message_sender(request)} is not the "
                                    f"authenticated node {self.peer_id}"))
        self.unanswered += 1
        self._answer(request_id, reply)

    async def _await_deferred(self, request_id: int, reply: Reply) -> None:
        try:
            await reply.result()
        except Exception:  # noqa: S110 - the reply holds the error; _answer reports it
            pass
        self._answer(request_id, reply)

    async def _write_loop(self, on_end: trio.CancelScope) -> None:
        out = self.outbox
        try:
            while True:  # ends with the connection
                if not out:
                    self.wake_writer = trio.Event()
                    self.writer_idle = True
                    try:
                        await self.wake_writer.wait()
                    finally:
                        self.writer_idle = False
                    continue
                parts = []
                size = 0
                while out and size < _MAX_WRITE_BYTES:
                    data = out.popleft()
                    parts.append(data)
                    size += len(data)
                await self.stream.send_all(parts[0] if len(parts) == 1 else b"".join(parts))
        except _STREAM_ERRORS:
            pass
        finally:
            on_end.cancel()


def _peer_name(stream: trio.SocketStream) -> str:
    try:
        host, port = stream.socket.getpeername()[:2]
        return f"{host}:{port}"
    except OSError:
        return "?"
