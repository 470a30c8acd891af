"""``fastraft-kv certs``: a throwaway certificate authority and the certificates a test
cluster needs, for mutual TLS between nodes (and, later, between clients and nodes).

    fastraft-kv certs --out ./pki --cluster-id demo --nodes 1 2 3 --clients admin:admin app

writes, in ``./pki``::

    ca.pem, ca-key.pem                 the cluster's CA (self-signed)
    node-<id>.pem, node-<id>-key.pem   one per node: SAN URI fastraft://<cluster>/node/<id>
    client-<name>.pem, ...-key.pem     one per client: SAN URI fastraft://<cluster>/client/<name>,
                                       its role ("admin" or "client") as the subject's OU

Keys are ECDSA P-256 (cheap handshakes), unencrypted, written with mode 0600: this is a tool
for tests and demos. A production cluster's certificates come from the operator's own CA; all
fastraft reads from them is the SAN URI (``fastraft.net.tls``).
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import re
from dataclasses import dataclass

__all__ = ["ROLES", "Pki", "make_pki", "node_uri", "client_uri"]

ROLES = ("admin", "client")
_CLUSTER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")


def node_uri(cluster_id: str, node_id: int) -> str:
    return f"fastraft://{cluster_id}/node/{node_id}"


def client_uri(cluster_id: str, name: str) -> str:
    return f"fastraft://{cluster_id}/client/{name}"


@dataclass(frozen=True)
class Pki:
    """Paths of what ``make_pki`` wrote: ``ca``; ``nodes[id]`` and ``clients[name]`` are
    (certificate, key) pairs."""

    cluster_id: str
    ca: str
    nodes: dict
    clients: dict


def make_pki(out_dir: str, cluster_id: str, node_ids, clients=(("admin", "admin"),),
             *, days: int = 365, ca_from: str | None = None) -> Pki:
    """Write a CA, one certificate per node id and one per (name, role) client into
    ``out_dir``; ValueError for an id, name or role that cannot be used. ``ca_from``: the
    folder of an earlier run whose CA signs these too (one CA for several clusters)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    if not _CLUSTER_ID.match(cluster_id):
        raise ValueError(f"cluster id must be 1-63 letters, digits, '.', '_' or '-', got {cluster_id!r}")
    node_ids = [int(i) for i in node_ids]
    if any(i <= 0 for i in node_ids):
        raise ValueError("node ids must be positive integers")
    clients = [(n, r) for n, r in clients]
    for name, role in clients:
        if not _NAME.match(name) or role not in ROLES:
            raise ValueError(f"client {name!r} with role {role!r}: roles are {ROLES}")
    os.makedirs(out_dir, exist_ok=True)
    now = datetime.datetime.now(datetime.timezone.utc)
    not_before, not_after = now - datetime.timedelta(minutes=5), now + datetime.timedelta(days=days)

    def write(name: str, cert, key) -> tuple[str, str]:
        cert_path = os.path.join(out_dir, f"{name}.pem")
        key_path = os.path.join(out_dir, f"{name}-key.pem")
        with open(cert_path, "wb") as f:
            f.write(cert.public_bytes(serialization.Encoding.PEM))
        fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(key.private_bytes(serialization.Encoding.PEM,
                                      serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))
        return cert_path, key_path

    if ca_from is not None:
        with open(os.path.join(ca_from, "ca.pem"), "rb") as f:
            ca_cert = x509.load_pem_x509_certificate(f.read())
        with open(os.path.join(ca_from, "ca-key.pem"), "rb") as f:
            ca_key = serialization.load_pem_private_key(f.read(), password=None)
        ca_name = ca_cert.subject
    else:
        ca_cert = None
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "fastraft"),
                             x509.NameAttribute(NameOID.COMMON_NAME, f"fastraft CA {cluster_id}")])
    ca_cert = ca_cert or (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
               .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(not_before).not_valid_after(not_after)
               .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
               .add_extension(x509.KeyUsage(True, False, False, False, False, True, True, False, False),
                              critical=True)
               .sign(ca_key, hashes.SHA256()))
    ca_path, _ = write("ca", ca_cert, ca_key)

    def leaf(common_name: str, unit: str, uri: str, usages):
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "fastraft"),
                             x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, unit),
                             x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        # localhost and 127.0.0.1 too, so that ordinary HTTPS clients accept a node's
        # certificate on a test machine
        san = x509.SubjectAlternativeName([
            x509.UniformResourceIdentifier(uri), x509.DNSName("localhost"),
            x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
        cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(ca_name)
                .public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(not_before).not_valid_after(not_after)
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                .add_extension(san, critical=False)
                .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
                .sign(ca_key, hashes.SHA256()))
        return cert, key

    both = [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
    nodes = {i: write(f"node-{i}", *leaf(f"node {i}", "node", node_uri(cluster_id, i), both))
             for i in node_ids}
    out_clients = {name: write(f"client-{name}", *leaf(name, role, client_uri(cluster_id, name),
                                                        [ExtendedKeyUsageOID.CLIENT_AUTH]))
                   for name, role in clients}
    return Pki(cluster_id, ca_path, nodes, out_clients)


def add_parser(sub) -> None:
    """The ``certs`` subcommand of ``fastraft-kv``."""
    c = sub.add_parser("certs", help="make a throwaway CA, node and client certificates")
    c.add_argument("--out", required=True, help="folder to write them to")
    c.add_argument("--cluster-id", required=True, help="the cluster id the certificates name")
    c.add_argument("--nodes", type=int, nargs="+", required=True, metavar="ID")
    c.add_argument("--clients", nargs="*", default=["admin:admin"], metavar="NAME[:ROLE]",
                   help="client certificates; ROLE admin or client (default client)")
    c.add_argument("--days", type=int, default=365)


def run(args) -> int:
    clients = [(c.partition(":")[0], c.partition(":")[2] or "client") for c in args.clients]
    try:
        pki = make_pki(args.out, args.cluster_id, args.nodes, clients, days=args.days)
    except ValueError as e:
        print(f"fastraft-kv certs: {e}")
        return 2
    print(f"CA {pki.ca}")
    for i, (cert, key) in pki.nodes.items():
        print(f"node {i}: {cert} {key}")
    for name, (cert, key) in pki.clients.items():
        print(f"client {name}: {cert} {key}")
    return 0
