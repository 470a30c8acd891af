"""Mutual TLS for the Raft TCP network: who is on the other end of a connection, proven.

Every node holds a certificate signed by the cluster's CA that names it, as the SAN URI
``fastraft://<cluster-id>/node/<id>`` (``fastraft-kv certs`` makes a throwaway set). Both ends
verify the other's chain (``ssl.CERT_REQUIRED``, the cluster's CA only) and read its identity
from that URI:

* the dialling side checks that the server is the node it meant to reach (same cluster id,
  the target's id), then sends the hello: ``b"FRH1" | u8 n | n bytes of cluster id | u64
  sender id`` (little-endian);
* the serving side takes the client's identity from its certificate and then requires the
  hello to name the same cluster id and the same node; anything else closes the connection;
* from then on every request whose sender (``message_sender``) is not the authenticated node
  is dropped, answered with an error, counted and logged once per connection: a peer cannot
  speak for another, so spoofing the leader's id is impossible.

A certificate of another cluster id, of another CA, or without a node URI is refused during
the handshake, before one message is read. Hostnames are not checked: the node id in the URI
is the identity, and addresses may change. The TLS connection itself is a ``TlsStream``
(``fastraft.net.tls_stream``: ``ssl`` on memory buffers, encrypting without a task switch).
"""

from __future__ import annotations

import re
import ssl
import struct
from dataclasses import dataclass

import trio

from ..errors import CodecError, ConfigError
from ..messages import Message
from .tls_stream import TlsStream

__all__ = ["TlsConfig", "PeerRefused", "message_sender", "peer_identity", "encode_hello",
           "read_hello", "open_client_tls", "accept_server_tls"]

_HELLO_MAGIC = b"FRH1"
_HELLO_HEAD = struct.Struct("<4sB")
_HELLO_ID = struct.Struct("<Q")
_NODE_URI = re.compile(r"^fastraft://([A-Za-z0-9][A-Za-z0-9._-]{0,62})/node/([1-9][0-9]{0,18})$")


class PeerRefused(CodecError):
    """The peer is not who the connection needs: no valid certificate, another cluster, or a
    hello that does not match its certificate. The connection is closed."""


def message_sender(msg: Message) -> int | None:
    """The node ``msg`` says it comes from (``sender``, which the engine reads), None for a
    non-message."""
    return msg.sender if isinstance(msg, Message) else None


@dataclass(frozen=True)
class TlsConfig:
    """This node's side of mutual TLS: ``cluster_id``, its ``node_id`` (both must match its
    certificate's URI, or peers refuse it), and PEM files of the CA, its certificate and key.
    ``server_context()`` / ``client_context()`` build the ``ssl`` contexts (once each)."""

    cluster_id: str
    node_id: int
    ca_file: str
    cert_file: str
    key_file: str

    def __post_init__(self) -> None:
        if not _NODE_URI.match(f"fastraft://{self.cluster_id}/node/{self.node_id}"):
            raise ConfigError(f"bad cluster id {self.cluster_id!r} or node id {self.node_id!r}")
        # build both now: a missing or mismatched file is a ConfigError at start, not a
        # failure on the first connection
        object.__setattr__(self, "_server", self._context(ssl.Purpose.CLIENT_AUTH))
        object.__setattr__(self, "_client", self._context(ssl.Purpose.SERVER_AUTH))

    def _context(self, purpose: ssl.Purpose) -> ssl.SSLContext:
        try:
            ctx = ssl.create_default_context(purpose, cafile=self.ca_file)
            ctx.load_cert_chain(self.cert_file, self.key_file)
        except (OSError, ssl.SSLError) as e:
            raise ConfigError(f"cannot load the TLS files (CA {self.ca_file}, certificate "
                              f"{self.cert_file}, key {self.key_file}): {e}") from None
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.check_hostname = False  # the identity is the node URI, checked after the handshake
        ctx.verify_mode = ssl.CERT_REQUIRED
        return ctx

    def server_context(self) -> ssl.SSLContext:
        return self._server

    def client_context(self) -> ssl.SSLContext:
        return self._client


def peer_identity(cert: dict | None) -> tuple[str, int] | None:
    """(cluster id, node id) from a verified peer certificate (``getpeercert()``); None
    unless it carries exactly one node URI."""
    if not cert:
        return None
    found = [m for kind, value in cert.get("subjectAltName", ())
             if kind == "URI" and (m := _NODE_URI.match(value))]
    if len(found) != 1:
        return None
    return found[0].group(1), int(found[0].group(2))


def encode_hello(cluster_id: str, node_id: int) -> bytes:
    raw = cluster_id.encode("ascii")
    return _HELLO_HEAD.pack(_HELLO_MAGIC, len(raw)) + raw + _HELLO_ID.pack(node_id)


async def read_hello(reader, cluster_id: str, peer_id: int) -> None:
    """Read the hello with ``reader`` (a ``FrameReader``) and check it names ``cluster_id``
    and ``peer_id`` (from the certificate); PeerRefused otherwise."""
    magic, n = _HELLO_HEAD.unpack(await reader.read_exact(_HELLO_HEAD.size))
    if magic != _HELLO_MAGIC:
        raise PeerRefused("the first frame is not a hello")
    claimed_cluster = (await reader.read_exact(n)).decode("ascii", "replace")
    (claimed_id,) = _HELLO_ID.unpack(await reader.read_exact(_HELLO_ID.size))
    if claimed_cluster != cluster_id or claimed_id != peer_id:
        raise PeerRefused(f"hello names node {claimed_id} of cluster {claimed_cluster!r}, its "
                          f"certificate node {peer_id} of cluster {cluster_id!r}")


def _verified_identity(stream: TlsStream, cluster_id: str) -> int:
    identity = peer_identity(stream.getpeercert())
    if identity is None:
        raise PeerRefused("the peer's certificate names no fastraft node")
    if identity[0] != cluster_id:
        raise PeerRefused(f"the peer is node {identity[1]} of cluster {identity[0]!r}, "
                          f"not of {cluster_id!r}")
    return identity[1]


async def open_client_tls(stream: trio.SocketStream, tls: TlsConfig, target_id: int) -> TlsStream:
    """Wrap a dialled stream: handshake, check the server is node ``target_id`` of our cluster,
    send the hello. PeerRefused or a stream error when it fails (the caller closes ``stream``)."""
    ssl_stream = TlsStream(stream, tls.client_context(), server_side=False)
    try:
        await ssl_stream.do_handshake()
    except trio.BrokenResourceError as e:
        raise PeerRefused(f"TLS handshake with node {target_id} failed: {e.__cause__ or e}") from None
    got = _verified_identity(ssl_stream, tls.cluster_id)
    if got != target_id:
        raise PeerRefused(f"dialled node {target_id}, its certificate names node {got}")
    await ssl_stream.send_all(encode_hello(tls.cluster_id, tls.node_id))
    return ssl_stream


async def accept_server_tls(stream: trio.SocketStream, tls: TlsConfig) -> tuple[TlsStream, int]:
    """Wrap an accepted stream: handshake (the client must show a certificate of our CA), and
    return it with the node id its certificate names. The caller then reads the hello
    (``read_hello``) before any request."""
    ssl_stream = TlsStream(stream, tls.server_context(), server_side=True)
    try:
        await ssl_stream.do_handshake()
    except trio.BrokenResourceError as e:
        raise PeerRefused(f"TLS handshake failed: {e.__cause__ or e}") from None
    return ssl_stream, _verified_identity(ssl_stream, tls.cluster_id)
