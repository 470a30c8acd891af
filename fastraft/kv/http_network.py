"""Raft over HTTP: the user-written network of the guide's chapter 3, on the node's one HTTP
address. A request message is POSTed, codec-encoded (``fastraft.codec.encode_message``), to
the route of its kind; the answer is the response message, codec-encoded (200), or no body
(204: the node has no answer to it, see ``fastraft.net.protocol``)::

    POST /raft-vote         VoteRequest            -> VoteResponse
    POST /raft-append       AppendEntriesRequest   -> AppendEntriesResponse
    POST /raft-snapshot     InstallSnapshotRequest -> InstallSnapshotResponse
    POST /raft-timeout-now  TimeoutNowRequest      -> TimeoutNowResponse

Outbound, ``HttpNetwork`` gives one ``HttpRaftClient`` per peer; a member's ``Node.addr`` is
its HTTP address. The client implements only ``send`` (one request, one answer): the runtime
then sends a peer's requests one at a time, in order, so AppendEntries reach the follower in
the order the leader sent them (HTTP/1.1 has no pipelining). The built-in TCP network
(``fastraft.net.tcp``) pipelines and is the faster default; this one shows how little a
network needs.

Inbound, ``handle_raft_rpc`` decodes the body, checks that the message is the route's kind
and hands it to the node; bytes that do not decode get 400 and reach nothing.

Over HTTPS (``tls``, the node's ``fastraft.net.tls.TlsConfig``), as the TCP network does: each
node dials with its own certificate, so the serving node knows the caller's node id from the
certificate's SAN URI (``fastraft.kv.access``: the Raft routes take only node certificates of
this cluster) and drops, with 403, a message whose ``sender`` is another node; the dialling
node checks that the certificate of the node that answered names the cluster and the node it
dialled, and discards the answer otherwise. (httpx sends the request before this check can be
made: a request dialled to the wrong member of the cluster reaches that member, which handles
it as the sender's, harmless in Raft; its answer is never used.)
"""

from __future__ import annotations

import trio

from .. import codec
from ..errors import CodecError, FastraftError
from ..messages import (AppendEntriesRequest, InstallSnapshotRequest, Message, TimeoutNowRequest,
                        VoteRequest)
from ..net.protocol import RaftClient, RemoteError, RequestTimeout, Unreachable
from ..net.tls import TlsConfig, peer_identity
from ..types import Node

__all__ = ["RAFT_ROUTES", "HttpNetwork", "HttpRaftClient", "handle_raft_rpc"]

#: The route of each request kind, and the kind each route takes.
RAFT_ROUTES: dict[str, type[Message]] = {
    "/raft-vote": VoteRequest,
    "/raft-append": AppendEntriesRequest,
    "/raft-snapshot": InstallSnapshotRequest,
    "/raft-timeout-now": TimeoutNowRequest,
}
_ROUTE_OF = {cls: route for route, cls in RAFT_ROUTES.items()}
_OCTETS = b"application/octet-stream"
_TEXT = b"text/plain; charset=utf-8"


async def handle_raft_rpc(raft, route: str, body: bytes,
                          max_frame_bytes: int = codec.DEFAULT_MAX_FRAME_BYTES,
                          sender_id: int | None = None) -> tuple[int, bytes, bytes]:
    """Serve one Raft RPC for ``raft`` (a ``fastraft.Raft``): returns (HTTP status, body,
    content type). 400 for bytes that do not decode or a message of the wrong kind, 403 for a
    message whose sender is not ``sender_id`` (the node the connection authenticated, when it
    did), 503 when the node cannot serve it (shutting down)."""
    try:
        request = codec.decode_message(body, max_frame_bytes)
    except CodecError as e:
        return 400, f"bad Raft message: {e}".encode(), _TEXT
    if type(request) is not RAFT_ROUTES[route]:
        return 400, (f"{route} takes {RAFT_ROUTES[route].__name__}, "
                     f"not {type(request).__name__}").encode(), _TEXT
    if sender_id is not None and request.sender != sender_id:
        return 403, (f"dropped: the message says it is from node {request.sender}, the "
                     f"connection's certificate is node {sender_id}'s").encode(), _TEXT
    try:
        reply = await raft.submit_request(request)
        response = await reply.result()
    except FastraftError as e:
        return 503, f"{type(e).__name__}: {e}".encode(), _TEXT
    if response is None:
        return 204, b"", _OCTETS
    return 200, codec.encode_message(response), _OCTETS


class HttpNetwork:
    """The HTTP ``RaftNetwork``. ``connect_timeout_s`` bounds a dial; the request's own
    timeout (given by the runtime) bounds the rest. ``max_frame_bytes`` bounds an answer.
    ``tls``: HTTPS with this node's certificate (see the module docstring)."""

    def __init__(self, *, connect_timeout_s: float = 1.0,
                 max_frame_bytes: int = codec.DEFAULT_MAX_FRAME_BYTES,
                 tls: TlsConfig | None = None) -> None:
        if connect_timeout_s <= 0:
            raise ValueError("connect_timeout_s must be > 0")
        self.connect_timeout_s = connect_timeout_s
        self.max_frame_bytes = max_frame_bytes
        self.tls = tls

    def client(self, target_id: int, node: Node) -> "HttpRaftClient":
        return HttpRaftClient(self, target_id, node)


class HttpRaftClient(RaftClient):
    """Requests to one peer over HTTP/1.1 keep-alive (one connection: one request at a time)."""

    def __init__(self, network: HttpNetwork, target_id: int, node: Node) -> None:
        import httpx  # the kv extra

        self._httpx = httpx
        self.network = network
        self.target_id = target_id
        self.node = node
        tls = network.tls
        self._base = f"{'https' if tls else 'http'}://{node.addr}"
        self._client = httpx.AsyncClient(
            trust_env=False, limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
            timeout=httpx.Timeout(None, connect=network.connect_timeout_s),
            verify=tls.client_context() if tls else True)
        self._checked_ssl = None  # the TLS connection whose certificate was found right
        self._closed = False

    async def send(self, request: Message) -> Message | None:
        if self._closed:
            raise Unreachable("client closed")
        route = _ROUTE_OF.get(type(request))
        if route is None:
            raise TypeError(f"{type(request).__name__} is not a request message")
        httpx = self._httpx
        try:
            answer = await self._client.post(self._base + route,
                                             content=codec.encode_message(request),
                                             headers={"content-type": "application/octet-stream"})
        except httpx.ConnectError as e:
            raise Unreachable(f"cannot connect to node {self.target_id} at {self.node.addr}: {e}") from None
        except httpx.TimeoutException as e:
            raise RequestTimeout(f"node {self.target_id}: {type(e).__name__}") from None
        except httpx.HTTPError as e:
            raise Unreachable(f"node {self.target_id}: {type(e).__name__}: {e}") from None
        if self.network.tls is not None:
            self._check_server(answer)
        if answer.status_code == 204:
            return None
        if answer.status_code != 200:
            raise RemoteError(f"node {self.target_id} answered HTTP {answer.status_code}: "
                              f"{answer.content[:200].decode('utf-8', 'replace')}")
        try:
            return codec.decode_message(answer.content, self.network.max_frame_bytes)
        except CodecError as e:
            raise RemoteError(f"node {self.target_id} answered bytes that do not decode: {e}") from None

    def _check_server(self, answer) -> None:
        """The answer came from node ``target_id`` of our cluster (its certificate's URI),
        else RemoteError: the answer is dropped. Checked once per connection."""
        stream = answer.extensions.get("network_stream")
        ssl_object = stream.get_extra_info("ssl_object") if stream is not None else None
        if ssl_object is not None and ssl_object is self._checked_ssl:
            return
        identity = peer_identity(ssl_object.getpeercert()) if ssl_object is not None else None
        want = (self.network.tls.cluster_id, self.target_id)
        if identity != want:
            raise RemoteError(f"dialled node {self.target_id} of cluster {want[0]!r} at "
                              f"{self.node.addr}; the certificate there names "
                              f"{'no fastraft node' if identity is None else identity}; "
                              "its answer is dropped")
        self._checked_ssl = ssl_object

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            # closing may run as the peer's sender is cancelled: finish it, briefly
            with trio.CancelScope(shield=True), trio.move_on_after(1.0):
                await self._client.aclose()
