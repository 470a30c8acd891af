"""Who may call which route of a KV node's HTTPS API: the peer's role is read once per
connection from its verified client certificate, and each request's route is checked against it.

The certificates are the ones ``fastraft-kv certs`` makes (or an operator's CA makes alike):

* a node of cluster C: SAN URI ``fastraft://C/node/<id>`` -> role ``node``, with its id;
* a client of cluster C: SAN URI ``fastraft://C/client/<name>``, its role the subject's OU,
  ``admin`` or ``client``.

Routes, and the roles each takes (``ROUTE_ROLES``)::

    admin    /init /add-learner /change-membership /remove-learner     admin
    raft     /raft-vote /raft-append /raft-snapshot /raft-timeout-now  node (its own id only)
    app      everything else (writes, reads, metrics, /node, /health)  admin, client or node;
                                                                       none, from loopback,
                                                                       if so configured

Why the Raft routes take node certificates and not admin ones: a Raft message speaks for its
``sender``; only a node certificate names one, so only with it can the node check that the
message comes from the node it says (as the TCP network does, ``fastraft.net.tls``). An admin
certificate is a person's or a tool's, and no tool has a reason to send Raft messages. Nodes get
no admin rights either: no node calls another's admin routes, so a stolen node key cannot add a
member.

A certificate that does not verify against the cluster's CA fails the TLS handshake (the
connection closes before a request is read). One that verifies but names another cluster, or
no fastraft identity, has no role: every request on it gets 403 with the reason, and changes
nothing. The check is made before the request's body is parsed.
"""

from __future__ import annotations

import ipaddress
import re
import ssl
from dataclasses import dataclass


from ..errors import ConfigError
from ..net.tls import TlsConfig, peer_identity
from ..net.tls_stream import TlsStream
from .http_network import RAFT_ROUTES

__all__ = ["ApiTls", "Peer", "ADMIN_ROUTES", "route_class", "authorize", "identify",
           "peer_of_certificate"]

ADMIN_ROUTES = frozenset({"/init", "/add-learner", "/change-membership", "/remove-learner"})
#: The roles each class of route accepts (``None``: no certificate, from loopback, when allowed).
ROUTE_ROLES = {"admin": frozenset({"admin"}), "raft": frozenset({"node"}),
               "app": frozenset({"admin", "client", "node"})}
_CLIENT_URI = re.compile(r"^fastraft://([A-Za-z0-9][A-Za-z0-9._-]{0,62})/client/"
                         r"([A-Za-z0-9][A-Za-z0-9._-]{0,62})$")
_CLIENT_ROLES = ("admin", "client")


@dataclass(frozen=True)
class ApiTls:
    """HTTPS for a node's API: ``node`` is the node's own TLS identity (its CA, certificate and
    key, as for the Raft port); ``anonymous_loopback`` lets clients without a certificate use
    the application routes from a loopback address (never the admin or Raft routes)."""

    node: TlsConfig
    anonymous_loopback: bool = False

    def __post_init__(self) -> None:
        try:
            ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=self.node.ca_file)
            ctx.load_cert_chain(self.node.cert_file, self.node.key_file)
        except (OSError, ssl.SSLError) as e:
            raise ConfigError(f"cannot load the API's TLS files: {e}") from None
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.verify_mode = ssl.CERT_OPTIONAL if self.anonymous_loopback else ssl.CERT_REQUIRED
        ctx.set_alpn_protocols(["http/1.1"])
        object.__setattr__(self, "_server", ctx)

    @property
    def cluster_id(self) -> str:
        return self.node.cluster_id

    def server_context(self) -> ssl.SSLContext:
        """The listener's context: a client certificate of the cluster's CA is required
        (optional with ``anonymous_loopback``: then ``identify`` checks the address)."""
        return self._server

    def client_context(self) -> ssl.SSLContext:
        """This node as a client of other nodes (the HTTP Raft network, ``GET /node``)."""
        return self.node.client_context()


@dataclass(frozen=True, slots=True)
class Peer:
    """Who is on the other end of one connection: ``role`` (``admin``, ``client``, ``node``
    or None), ``node_id`` for a node, and ``name`` (what its certificate says, for messages);
    ``why`` says why ``role`` is None."""

    role: str | None
    name: str
    node_id: int | None = None
    why: str = ""


def peer_of_certificate(cert: dict | None, cluster_id: str) -> Peer:
    """The Peer a verified certificate (``getpeercert()``) names for a node of ``cluster_id``."""
    if not cert:
        return Peer(None, "a client without a certificate",
                    why="it presented no client certificate")
    node = peer_identity(cert)
    if node is not None:
        cluster, node_id = node
        if cluster != cluster_id:
            return Peer(None, f"node {node_id} of cluster {cluster!r}",
                        why=f"its certificate is for cluster {cluster!r}, not {cluster_id!r}")
        return Peer("node", f"node {node_id}", node_id)
    clients = [m for kind, value in cert.get("subjectAltName", ())
               if kind == "URI" and (m := _CLIENT_URI.match(value))]
    if len(clients) != 1:
        return Peer(None, "a certificate without a fastraft identity",
                    why="its certificate names no fastraft node or client (SAN URI)")
    cluster, name = clients[0].group(1), clients[0].group(2)
    if cluster != cluster_id:
        return Peer(None, f"client {name!r} of cluster {cluster!r}",
                    why=f"its certificate is for cluster {cluster!r}, not {cluster_id!r}")
    units = {value for rdn in cert.get("subject", ()) for key, value in rdn
             if key == "organizationalUnitName"}
    roles = [r for r in _CLIENT_ROLES if r in units]
    if len(roles) != 1:
        return Peer(None, f"client {name!r}",
                    why="its certificate's OU names no single role (admin or client)")
    return Peer(roles[0], f"client {name!r} ({roles[0]})")


def _is_loopback_stream(stream) -> bool:
    sock = getattr(getattr(stream, "transport_stream", stream), "socket", None)
    try:
        host = sock.getpeername()[0] if sock is not None else None
        return host is not None and ipaddress.ip_address(host).is_loopback
    except (OSError, ValueError, IndexError):
        return False


async def identify(stream: TlsStream, tls: ApiTls) -> Peer:
    """Complete the handshake on an accepted connection and say who it is (once per
    connection). A certificate the CA did not sign, or none where one is required, fails here
    (trio.BrokenResourceError), after the TLS alert that says why ("certificate required",
    "unknown CA") is sent to the client (``TlsStream.do_handshake``)."""
    await stream.do_handshake()
    cert = stream.getpeercert()
    peer = peer_of_certificate(cert, tls.cluster_id)
    if not cert and tls.anonymous_loopback and _is_loopback_stream(stream):
        return Peer(None, "an anonymous loopback client", why="anonymous")
    return peer


def route_class(path: str) -> str:
    """``admin``, ``raft`` or ``app`` (see the module docstring)."""
    if path in ADMIN_ROUTES:
        return "admin"
    if path in RAFT_ROUTES:
        return "raft"
    return "app"


def authorize(peer: Peer, path: str) -> str | None:
    """None when ``peer`` may call ``path``; else the reason it may not (for a 403)."""
    kind = route_class(path)
    if peer.role is None:
        if kind == "app" and peer.why == "anonymous":
            return None
        return f"{path} needs a certificate with the {_needs(kind)} role; {peer.name} has no " \
               f"role here: {peer.why}"
    if peer.role in ROUTE_ROLES[kind]:
        return None
    return f"{path} needs a certificate with the {_needs(kind)} role; {peer.name} has the " \
           f"{peer.role} role"


def _needs(kind: str) -> str:
    return {"admin": "admin", "raft": "node (this cluster's)",
            "app": "admin, client or node"}[kind]
