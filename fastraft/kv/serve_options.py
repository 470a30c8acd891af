"""``fastraft-kv serve``'s options, and the ``NodeOptions`` they make (``node_options``).

Security: ``--cluster-id --peer-cacert --peer-cert --peer-key`` give the node its certificate
(``fastraft-kv certs`` makes a throwaway set). With them the node speaks mutual TLS on its Raft
port (tcp network) and HTTPS on its API, where clients need a certificate of the same CA and
the admin and Raft routes a role (``fastraft.kv.access``); with the http network, Raft itself
runs over that HTTPS. ``--anonymous-loopback`` lets clients without a certificate use the
application routes from 127.0.0.1.

Limits: every field of the HTTP server's ``Limits`` (``--http-*``) and of the Raft listener's
``ListenerLimits`` (``--raft-*``) is an option, its safe default shown in ``--help``.
"""

from __future__ import annotations

import argparse
import dataclasses

from .._cli import UsageError
from ..core import Config
from ..net.limits import ListenerLimits
from .http_server import Limits

__all__ = ["add_serve_options", "node_options"]

_LIMIT_HELP = {
    "max_header_bytes": "bytes of a request's line and headers (431 beyond)",
    "max_body_bytes": "bytes of a request body (413 beyond)",
    "max_connections": "connections open at once (beyond: refused at once)",
    "max_pipelined": "requests received ahead of their answers on one connection",
    "handshake_timeout_s": "seconds for a TLS handshake",
    "header_timeout_s": "seconds for a request's headers once begun",
    "body_timeout_s": "seconds for a request's body once its headers arrived",
    "idle_timeout_s": "seconds a connection may stay silent",
    "stop_grace_s": "seconds requests in flight may take to finish at stop",
    "frame_timeout_s": "seconds for a frame once its first byte arrived",
    "max_buffered_bytes": "bytes one connection may hold unparsed",
    "max_total_buffered_bytes": "bytes all connections may hold unparsed",
    "error_log_interval_s": "seconds between two log lines of accept errors",
}


def _option(prefix: str, name: str) -> str:
    return f"--{prefix}-" + name.removesuffix("_s").replace("_", "-")


def _add_limit_options(group, prefix: str, limits_cls) -> None:
    for f in dataclasses.fields(limits_cls):
        default = f.default
        group.add_argument(_option(prefix, f.name), dest=f"{prefix}_{f.name}", type=type(default),
                           default=default, metavar="SECONDS" if f.name.endswith("_s") else "N",
                           help=f"{_LIMIT_HELP.get(f.name, f.name)} (default: %(default)s)")


def _limits(args, prefix: str, limits_cls):
    values = {f.name: getattr(args, f"{prefix}_{f.name}") for f in dataclasses.fields(limits_cls)}
    try:
        return limits_cls(**values)
    except ValueError as e:
        raise UsageError(f"{_option(prefix, str(e).split()[0])}: {e}") from None


def add_serve_options(s) -> None:
    s.add_argument("--id", type=int, required=True, help="this node's id (a positive integer)")
    s.add_argument("--addr", required=True, help="HTTP address host:port (port 0: any free one)")
    s.add_argument("--raft-addr", help="raft address host:port for the tcp network")
    s.add_argument("--network", choices=("tcp", "http"), default="tcp",
                   help="raft RPCs over the built-in TCP network or over HTTP on --addr")
    s.add_argument("--store", choices=("memory", "lmdb"), default="memory",
                   help="where the log and the state live (lmdb: durable, in --data)")
    s.add_argument("--data", help="data directory (lmdb store)")
    s.add_argument("--log-store", choices=("lmdb", "rocksdb"), default="lmdb",
                   help="the durable log's engine with --store lmdb (the state machine is lmdb "
                        "either way; rocksdb needs fastraft[rocksdb]: one sync per append "
                        "instead of lmdb's two, but its binding holds the interpreter lock "
                        "while it syncs)")
    s.add_argument("--force-new-store", action="store_true",
                   help="start even if this node's data directory lost its stores (unsafe)")
    # etcd's defaults, as the engine's: a node shares its machine with other processes, and a
    # busy moment must not cost the cluster its leader
    s.add_argument("--heartbeat-ms", type=int, default=100, help="leader heartbeat interval")
    s.add_argument("--election-timeout-ms", type=int, nargs=2, default=(1000, 2000),
                   metavar=("MIN", "MAX"), help="randomized election timeout range")
    # etcd's --snapshot-count default. Thesis §5.1: snapshot when the log has grown well past
    # the snapshot's size, so that snapshotting costs little of the disk and CPU. Every 5,000
    # entries (the engine's default, openraft's) a 10,000-key store of 100-byte values writes a
    # 1.2 MB snapshot per 0.65 MB of log, on all three nodes at the same index: measured at 64
    # clients, that stalled every node's loop together several times a second and doubled p99.
    s.add_argument("--snapshot-every", type=int, default=100_000,
                   help="build a snapshot every this many applied entries (0: never)")
    s.add_argument("--lease-read", action="store_true",
                   help="serve consistent reads from the leader's lease while it holds, "
                        "without a heartbeat round (thesis §6.4.1; relies on bounded clock "
                        "drift)")
    # security: certificates from `fastraft-kv certs` or your CA
    sec = s.add_argument_group("security (the node's certificate: mutual TLS on the Raft port "
                               "and HTTPS with client certificates on the API)")
    sec.add_argument("--cluster-id", help="the cluster id the certificates name")
    sec.add_argument("--peer-cacert", help="the cluster's CA (PEM)")
    sec.add_argument("--peer-cert", help="this node's certificate (PEM)")
    sec.add_argument("--peer-key", help="this node's key (PEM)")
    sec.add_argument("--anonymous-loopback", action="store_true",
                     help="with TLS: clients without a certificate may use the application "
                          "routes (not the admin or Raft ones) from a loopback address")
    sec.add_argument("--insecure", action="store_true",
                     help="allow addresses other than loopback where nothing authenticates")
    _add_limit_options(s.add_argument_group("HTTP API limits"), "http", Limits)
    _add_limit_options(s.add_argument_group("Raft listener limits (tcp network)"), "raft",
                       ListenerLimits)


def node_options(args: argparse.Namespace):
    """The checked ``NodeOptions`` of parsed ``serve`` arguments (UsageError, ConfigError)."""
    from ..net.tls import TlsConfig
    from .access import ApiTls
    from .server import NodeOptions

    lo, hi = args.election_timeout_ms
    tls_args = (args.cluster_id, args.peer_cacert, args.peer_cert, args.peer_key)
    if any(tls_args) and not all(tls_args):
        raise UsageError("TLS needs --cluster-id, --peer-cacert, --peer-cert and --peer-key "
                         "together")
    if args.anonymous_loopback and not all(tls_args):
        raise UsageError("--anonymous-loopback is for a node with TLS")
    node_tls = TlsConfig(args.cluster_id, args.id, *tls_args[1:]) if all(tls_args) else None
    return NodeOptions(
        node_id=args.id, addr=args.addr, raft_addr=args.raft_addr, network=args.network,
        store=args.store, data_dir=args.data, log_store=args.log_store,
        force_new_store=args.force_new_store,
        insecure=args.insecure,
        peer_tls=node_tls if args.network == "tcp" else None,
        api_tls=ApiTls(node_tls, args.anonymous_loopback) if node_tls is not None else None,
        http_limits=_limits(args, "http", Limits),
        raft_limits=_limits(args, "raft", ListenerLimits),
        config=Config(heartbeat_interval_ms=args.heartbeat_ms, election_timeout_min_ms=lo,
                      election_timeout_max_ms=hi, lease_read=args.lease_read,
                      snapshot_policy_logs_since_last=args.snapshot_every)).check()
