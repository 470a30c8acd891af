"""The serving side of the TCP network (``serve_raft_tcp``): the listener's accept loop within
its limits, and each accepted connection's reader (the overview is in ``fastraft.net.tcp``).

Per connection, requests are handed to the node in the order they arrive (``submit``), so a
follower sees pipelined AppendEntries in order and can put them in one storage flush; each
answer goes back as soon as it is known (a request the node answers late holds up no other),
through the connection's ``FrameWriter``. A peer that sends bytes that do not parse, or a frame
over ``max_frame_bytes``, is logged and disconnected; the server carries on.
"""

from __future__ import annotations

import errno
import logging
from functools import partial

import trio

from ..errors import CodecError, FastraftError, RaftShutdown
from ..messages import Message
from .framing import DEFAULT_MAX_FRAME_BYTES, ENVELOPE_SIZE, FrameReader, encode_error, encode_ok
from .limits import ListenerLimits, ListenerStats, RateLimitedLog
from .protocol import RESPONSE_TYPE, RaftHandler, Reply, _DeferredReply, submit
from .tcp_client import MAX_PENDING
from .tls import PeerRefused, accept_server_tls, message_sender, read_hello
from .writer import STREAM_ERRORS, FrameWriter

__all__ = ["serve_raft_tcp"]

log = logging.getLogger("fastraft.net.tcp")

#: errnos of accept() that mean "out of a resource": pause, then accept again (trio's list).
_ACCEPT_CAPACITY_ERRNOS = {errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS}
_ACCEPT_PAUSE_S = 0.1


async def serve_raft_tcp(handler: RaftHandler, host: str, port: int, *,
                         max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES,
                         tls=None, limits: ListenerLimits | None = None,
                         stats: ListenerStats | None = None,
                         task_status=trio.TASK_STATUS_IGNORED) -> None:
    """Serve Raft requests for ``handler`` (a ``fastraft.Raft``) on ``host:port`` until
    cancelled, or until the handler's ``wait_closed()`` returns when it has one.

    ``tls`` (a ``fastraft.net.tls.TlsConfig``): accept only mutual-TLS connections from nodes
    of our cluster. ``limits`` (``fastraft.net.limits``; defaults when None) bound connections,
    time and bytes; ``stats``, when given, is kept up to date with what the listener holds and
    refused. Reports the listeners through ``task_status.started`` (with port 0, the caller
    reads the chosen port from ``listeners[0].socket.getsockname()``).
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
        try:
            async with trio.open_nursery() as nursery:
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
        finally:
            # shielded, as each connection's close: the listener's close must not replace
            # an error of a connection with the cancellation that stops the server
            with trio.CancelScope(shield=True):
                await trio.aclose_forcefully(listener)

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
                except (PeerRefused, trio.TooSlowError, *STREAM_ERRORS) as e:
                    self.stats.refused_handshakes += 1
                    self.log_limited(logging.WARNING, "refused a raft connection from %s: %s",
                                     peer, e or "handshake timed out")
                    return
            await _Served(self, stream, peer, peer_id).run()
        finally:
            self.stats.connections -= 1
            # shielded: when the server is cancelled (it stops), the close's checkpoint would
            # raise Cancelled here and replace, so lose, an error the connection raised
            with trio.CancelScope(shield=True):
                await trio.aclose_forcefully(stream)


class _Served:
    """One accepted connection. Requests are handed to the node in arrival order; each answer
    is written as soon as its reply resolves (answers carry request ids, so a request the
    node answers late, or never, holds up no other).

    Invariant: at most ``MAX_PENDING`` requests are read and not yet answered on the wire (a
    slot of ``slots`` is taken before a request is read and given back when its answer has
    been written): a peer that sends without reading its answers stops being read, and TCP
    pushes back on it; the answers queued are bounded by the same number.

    With TLS, ``peer_id`` is the node its certificate names: the hello must name it too, and
    a request whose sender is another node is answered with an error and not handed over."""

    def __init__(self, server: _Server, stream, peer: str, peer_id: int | None) -> None:
        self.server = server
        self.handler = server.handler
        self.stream = stream
        self.peer = peer
        self.peer_id = peer_id
        self.slots = trio.Semaphore(MAX_PENDING)
        self.writer = FrameWriter(stream, MAX_PENDING, on_written=self._written)
        self.sender_logged = False

    async def run(self) -> None:
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self.writer.run, nursery.cancel_scope)
                await self._read_loop(nursery)
                nursery.cancel_scope.cancel()  # end of stream or a bad peer: answers owed are dropped
        finally:
            self.writer.close()  # answers resolved later go nowhere

    def _written(self, count: int) -> None:
        for _ in range(count):
            self.slots.release()

    def _answer(self, request_id: int, reply: Reply) -> None:
        error = reply.error
        if error is None:
            data = encode_ok(request_id, reply.value)
        else:
            if not isinstance(error, FastraftError):
                log.error("handler failed on a request", exc_info=error)
            data = encode_error(request_id, f"{type(error).__name__}: {error}")
        try:
            self.writer.put_nowait(data)  # never full: one answer per slot taken
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass  # the connection is over: the answer has no one to go to

    async def _read_loop(self, nursery: trio.Nursery) -> None:
        limits = self.server.limits
        reader = FrameReader(self.stream, self.server.max_frame_bytes,
                             max_buffered_bytes=limits.max_buffered_bytes, budget=self.server,
                             idle_timeout_s=limits.idle_timeout_s,
                             frame_timeout_s=limits.frame_timeout_s)
        try:
            if self.peer_id is not None:
                with trio.fail_after(limits.handshake_timeout_s):
                    await read_hello(reader, self.server.tls.cluster_id, self.peer_id)
            while True:  # ends with the connection: EOF, error, a timeout or cancel
                try:
                    self.slots.acquire_nowait()
                except trio.WouldBlock:  # MAX_PENDING answers owed: wait until one is written
                    await self.slots.acquire()
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
        except STREAM_ERRORS as e:
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
        self._answer(request_id, reply)

    async def _await_deferred(self, request_id: int, reply: Reply) -> None:
        try:
            await reply.result()
        except Exception:  # noqa: S110 - the reply holds the error; _answer reports it
            pass
        self._answer(request_id, reply)


def _peer_name(stream: trio.SocketStream) -> str:
    try:
        host, port = stream.socket.getpeername()[:2]
        return f"{host}:{port}"
    except OSError:
        return "?"
