"""The network contract between a Raft node and its peers (the seed guide's RaftNetworkFactory
and RaftNetwork, told in trio).

Outbound, a node holds a ``RaftNetwork``: a factory that gives one ``RaftClient`` per target.
A client sends one request message and returns the matching response message::

    async with network.client(target_id, node) as client:
        resp = await client.append_entries(req, timeout_s=1.0)

Inbound, whatever receives a request (a TCP server, the in-memory router, a user's HTTP
endpoint) hands it to the node's ``handle_*`` entry points (``RaftHandler``) and sends back
what they return; ``dispatch`` picks the entry point by the request's type.

Contract of a client:

* ``send(request)`` returns the response to that request, None when the peer handled it and
  has no answer to it, or raises ``NetworkError``; it never returns a response to some other
  request (networks that pipeline pair them by id);
* it is cancel-safe: a request cancelled by its caller (a timeout) leaves the client usable
  for the next request, and a late response to the cancelled one is dropped;
* several requests may be in flight on one client at once (AppendEntries pipelining); the
  runtime bounds how many;
* ``aclose()`` releases every socket and task the client holds; after it, requests raise
  ``Unreachable``.

Why a request may have no answer: the engine answers each request on its own, but some it
decides not to answer (an AppendEntries that arrives while a snapshot is installed, a vote
request while a leader is known, a malformed batch). ``handle_*`` then returns None at once,
and a network carries that back as "no answer" (TCP: an EMPTY envelope); the sender simply
drops it. In process, the node's ``Reply`` also says why (``Reply.reason``).

Errors (defined in ``fastraft.errors``) say what the caller may do next: ``Unreachable`` (the
peer cannot be reached now: retry later, the request was not delivered), ``RequestTimeout``
(no answer in time: the request may or may not have been delivered), ``RemoteError`` (the peer
received it and could not serve it). Raft tolerates all three the same way: a lost message is
retried by the protocol (Raft §5.3).
"""

from __future__ import annotations

from typing import Awaitable, Callable, Protocol, TypeVar, runtime_checkable

import trio

from ..errors import NetworkError, RemoteError, RequestTimeout, Unreachable
from ..messages import (
    AppendEntriesRequest,
    AppendEntriesResponse,
    InstallSnapshotRequest,
    InstallSnapshotResponse,
    Message,
    TimeoutNowRequest,
    TimeoutNowResponse,
    VoteRequest,
    VoteResponse,
)
from ..reply import Reply
from ..types import Node

__all__ = [
    "NetworkError",
    "Unreachable",
    "RequestTimeout",
    "RemoteError",
    "RaftHandler",
    "PipelinedHandler",
    "RaftNetwork",
    "RaftClient",
    "Reply",
    "RESPONSE_TYPE",
    "dispatch",
    "submit",
]


#: The response class each request class expects.
RESPONSE_TYPE: dict[type[Message], type[Message]] = {
    AppendEntriesRequest: AppendEntriesResponse,
    VoteRequest: VoteResponse,
    InstallSnapshotRequest: InstallSnapshotResponse,
    TimeoutNowRequest: TimeoutNowResponse,
}

Resp = TypeVar("Resp", bound=Message)


@runtime_checkable
class RaftHandler(Protocol):
    """The inbound entry points of a node (``fastraft.Raft`` implements them). Each returns
    the response to send back, or None when there is none (see the module docstring)."""

    async def handle_append_entries(self, req: AppendEntriesRequest) -> AppendEntriesResponse | None: ...

    async def handle_vote(self, req: VoteRequest) -> VoteResponse | None: ...

    async def handle_install_snapshot(self, req: InstallSnapshotRequest) -> InstallSnapshotResponse | None: ...

    async def handle_timeout_now(self, req: TimeoutNowRequest) -> TimeoutNowResponse | None: ...


async def dispatch(handler: RaftHandler, request: Message) -> Message | None:
    """Hand ``request`` to the matching ``handle_*`` entry point of ``handler`` and return its
    response (or None). Raises TypeError for a message that is not a request."""
    t = type(request)
    if isinstance(request, AppendEntriesRequest):
        return await handler.handle_append_entries(request)
    if isinstance(request, VoteRequest):
        return await handler.handle_vote(request)
    if isinstance(request, InstallSnapshotRequest):
        return await handler.handle_install_snapshot(request)
    if isinstance(request, TimeoutNowRequest):
        return await handler.handle_timeout_now(request)
    raise TypeError(f"{t.__name__} is not a request message")


class _DeferredReply(Reply):
    """A reply whose request is only sent when someone waits for it (for clients that
    implement only ``send``, and handlers that implement only ``handle_*``)."""

    __slots__ = ("_call", "_arg", "_started")

    def __init__(self, call: Callable[[Message], Awaitable[Message | None]], arg: Message) -> None:
        super().__init__()
        self._call = call
        self._arg = arg
        self._started = False

    async def result(self) -> Message | None:
        if not self._started:
            self._started = True
            try:
                self.set_result(await self._call(self._arg))
            except trio.Cancelled:
                self.set_error(RequestTimeout("cancelled before the response arrived"))
                raise
            except Exception as e:  # every waiter sees the same failure
                self.set_error(e)
        return await super().result()


class PipelinedHandler:
    """A ``RaftHandler`` that takes a request without waiting for its answer (``fastraft.Raft``
    is one): ``submit_request`` queues the request, so that requests submitted one after
    another reach the node in that order, and returns the ``Reply`` to wait on."""

    __slots__ = ()

    async def submit_request(self, request: Message) -> Reply:
        raise NotImplementedError


async def submit(handler: RaftHandler, request: Message) -> Reply:
    """Hand ``request`` to ``handler`` so that requests submitted one after another reach the
    node in that order, and return the reply to wait on.

    A ``PipelinedHandler`` queues the request before this returns, which lets a server
    pipeline: read the next request while the node still works on this one. Any other handler
    is called when the reply is awaited.
    """
    if isinstance(handler, PipelinedHandler):
        return await handler.submit_request(request)
    return _DeferredReply(lambda req: dispatch(handler, req), request)


class RaftClient:
    """The outbound half for one target. Subclasses implement ``send`` or ``start`` (or
    both); the typed methods (the seed's append_entries, vote, install_snapshot, plus
    timeout_now) apply the timeout and check that the response has the right type.

    ``start(request)`` is the pipelining form: it returns once the request is queued for
    sending (requests started one after another go out in that order) and gives a ``Reply``
    to wait on; the runtime uses it to keep several AppendEntries in flight on one client.

    A client is an async context manager: leaving it calls ``aclose``.
    """

    target_id: int = 0
    #: True when ``start`` returns as soon as the request is queued (the response comes
    #: later, on its own); False when only waiting on the reply sends the request, so a
    #: caller wanting several in flight must wait on each in its own task.
    pipelined: bool = False

    async def send(self, request: Message) -> Message | None:
        """Send one request and return its response or None (see the module's contract)."""
        reply = await self.start(request)
        return await reply.result()

    async def start(self, request: Message) -> Reply:
        """Queue ``request`` for sending, in call order, and return its reply. May wait for
        a connection or for room in a bounded send queue; raises NetworkError like ``send``."""
        if type(self).send is RaftClient.send:
            raise NotImplementedError(f"{type(self).__name__} implements neither send nor start")
        return _DeferredReply(self.send, request)

    def start_nowait(self, request: Message) -> Reply | None:
        """``start`` without waiting, when that is possible at once (a pipelining client that
        is connected and has room in its send queue); None when it is not, and nothing was
        queued: the caller then uses ``start``. Never raises NetworkError."""
        return None

    async def aclose(self) -> None:
        """Release what the client holds. Idempotent."""

    async def request(self, request: Message, timeout_s: float) -> Message | None:
        """``send`` within ``timeout_s`` seconds; RequestTimeout when it takes longer, and a
        RemoteError when the response is neither None nor of the type the request expects."""
        expect = RESPONSE_TYPE.get(type(request))
        if expect is None:
            raise TypeError(f"{type(request).__name__} is not a request message")
        with trio.move_on_after(timeout_s) as scope:
            resp = await self.send(request)
        if scope.cancelled_caught:
            raise RequestTimeout(f"no response from node {self.target_id} in {timeout_s} s")
        if resp is not None and type(resp) is not expect:
            raise RemoteError(
                f"node {self.target_id} answered {type(request).__name__} with {type(resp).__name__}")
        return resp

    async def append_entries(self, req: AppendEntriesRequest, timeout_s: float) -> AppendEntriesResponse | None:
        return await self.request(req, timeout_s)  # type: ignore[return-value]

    async def vote(self, req: VoteRequest, timeout_s: float) -> VoteResponse | None:
        return await self.request(req, timeout_s)  # type: ignore[return-value]

    async def install_snapshot(self, req: InstallSnapshotRequest, timeout_s: float) -> InstallSnapshotResponse | None:
        return await self.request(req, timeout_s)  # type: ignore[return-value]

    async def timeout_now(self, req: TimeoutNowRequest, timeout_s: float) -> TimeoutNowResponse | None:
        return await self.request(req, timeout_s)  # type: ignore[return-value]

    async def __aenter__(self) -> "RaftClient":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


@runtime_checkable
class RaftNetwork(Protocol):
    """A factory of clients, one per target (the seed's RaftNetworkFactory).

    ``client`` is called by the node when it first needs to talk to ``target_id`` (and again
    when the target's address changes); ``node`` is the target's record from the membership.
    It must not block: connecting happens inside the client, on its first request.
    """

    def client(self, target_id: int, node: Node) -> RaftClient: ...
