"""One KV node, put together (the guide's chapter 4): its stores, its Raft network, the Raft
node, and the HTTP API served by ``fastraft.kv.http_server`` (limits: ``NodeOptions.http_limits``).

    options = NodeOptions(node_id=1, addr="127.0.0.1:21001", raft_addr="127.0.0.1:22001",
                          store="lmdb", data_dir="./n1")
    async with trio.open_nursery() as nursery:
        info = await nursery.start(run_node, options)   # serving once this returns

``run_node`` runs until cancelled or until the Raft node stops (a storage failure); leaving
stops the HTTP server (requests in flight may finish within ``Limits.stop_grace_s``), then
closes the Raft listener, the node and its stores, in that order. A port of 0
in ``addr`` or ``raft_addr`` picks a free one; the ``NodeInfo`` reported through
``task_status`` has the real addresses.

Stores: ``memory`` (the guide's memstore: nothing survives the process) or ``lmdb`` (the log
in ``data_dir/log``, the state machine in ``data_dir/state``; a restarted node recovers its
log, vote and state from them). A data directory remembers the id of the node that made it
and refuses to serve another id, and refuses to start empty once its stores are lost
(``fastraft.kv.data_dir``; ``force_new_store`` overrides).

Raft network: ``tcp`` (the built-in pipelined TCP network on ``raft_addr``, the default) or
``http`` (``fastraft.kv.http_network``: Raft RPCs on the HTTP address, ``raft_addr`` unused).

Security: ``peer_tls`` (``fastraft.net.tls.TlsConfig``) makes the tcp network mutual TLS between
nodes of one cluster; ``raft_limits`` bounds its listener (``fastraft.net.limits``).
``api_tls`` (``fastraft.kv.access.ApiTls``) serves the HTTP API over HTTPS with client
certificates and roles, and with the http network makes Raft over HTTPS between the nodes'
certificates (``fastraft.kv.http_network``); the same node certificate serves both. Unless
``insecure``, an address that is not loopback is refused where nothing authenticates its
callers: the Raft address without ``peer_tls``, and the HTTP address without ``api_tls``, since
whoever reaches them could write, vote and change the membership. A node raises its soft limit
on open files at start; the Raft listener takes at most a quarter of it.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import socket
from dataclasses import dataclass, field
from functools import partial

import trio

from ..core import Config
from ..errors import ConfigError
from ..net.limits import ListenerLimits, raise_fd_limit
from ..net.tcp import TcpNetwork, serve_raft_tcp
from ..net.tls import TlsConfig
from ..net.tls_stream import TlsListener
from ..runtime import open_raft
from ..storage import LmdbLogStore, MemoryLogStore
from . import data_dir
from .api import BadRequest, check_addr
from .access import ApiTls
from .app import KVHandler
from .http_server import Limits, serve_http
from .http_network import HttpNetwork
from .lmdb_state_machine import LmdbKVStateMachine
from .service import KVService, NodeInfo, fetch_node_info
from .state_machine import MemoryKVStateMachine

__all__ = ["NodeOptions", "run_node", "STORES", "LOG_STORES", "NETWORKS"]

log = logging.getLogger("fastraft.kv.server")

STORES = ("memory", "lmdb")
#: Durable log stores (``store="lmdb"``): the state machine is lmdb either way.
LOG_STORES = ("lmdb", "rocksdb")
NETWORKS = ("tcp", "http")


@dataclass(frozen=True)
class NodeOptions:
    """How to run one KV node; ``check()`` raises ConfigError for anything that cannot work."""

    node_id: int
    addr: str
    raft_addr: str | None = None
    network: str = "tcp"
    store: str = "memory"
    data_dir: str | None = None
    #: The durable log store (README: "what each log store promises and costs"); RocksDB
    #: needs ``fastraft[rocksdb]``.
    log_store: str = "lmdb"
    config: Config = field(default_factory=Config)
    write_timeout_s: float = 10.0
    read_timeout_s: float = 10.0
    request_timeout_s: float = 1.0
    http_limits: Limits = field(default_factory=Limits)
    #: Start even if this node's claimed data directory lost its log or state store (the
    #: node then starts empty: see ``fastraft.kv.data_dir``).
    force_new_store: bool = False
    peer_tls: TlsConfig | None = None
    api_tls: ApiTls | None = None
    raft_limits: ListenerLimits | None = None
    insecure: bool = False

    def check(self) -> "NodeOptions":
        if type(self.node_id) is not int or self.node_id <= 0:
            raise ConfigError(f"the node id must be a positive integer, got {self.node_id!r}")
        for what, addr in (("addr", self.addr), ("raft_addr", self.raft_addr)):
            if addr is not None:
                try:
                    check_addr(addr, what)
                except BadRequest as e:
                    raise ConfigError(str(e)) from None
        if self.network not in NETWORKS:
            raise ConfigError(f"network must be one of {NETWORKS}, got {self.network!r}")
        if self.network == "tcp" and self.raft_addr is None:
            raise ConfigError("the tcp raft network needs a raft address (--raft-addr)")
        if self.store not in STORES:
            raise ConfigError(f"store must be one of {STORES}, got {self.store!r}")
        if self.store == "lmdb" and not self.data_dir:
            raise ConfigError("the lmdb store needs a data directory (--data)")
        if self.log_store not in LOG_STORES:
            raise ConfigError(f"log_store must be one of {LOG_STORES}, got {self.log_store!r}")
        self.config.validate()
        if self.peer_tls is not None:
            if self.network != "tcp":
                raise ConfigError("peer TLS is for the tcp raft network (the http one runs over "
                                  "the HTTPS API: api_tls)")
            if self.peer_tls.node_id != self.node_id:
                raise ConfigError(f"the peer TLS settings are for node {self.peer_tls.node_id}, "
                                  f"not node {self.node_id}")
        if self.api_tls is not None and self.api_tls.node.node_id != self.node_id:
            raise ConfigError(f"the API's TLS settings are for node {self.api_tls.node.node_id}, "
                              f"not node {self.node_id}")
        if not self.insecure:
            exposed = []
            if self.api_tls is None:
                exposed.append(("HTTP address", self.addr, "the HTTP API has no TLS configured",
                                "configure TLS (--cluster-id, --peer-cacert, --peer-cert, "
                                "--peer-key), "))
            if self.network == "tcp" and self.peer_tls is None:
                exposed.append(("raft address", self.raft_addr, "no peer TLS is configured",
                                "configure peer TLS (--cluster-id, --peer-cacert, --peer-cert, "
                                "--peer-key), "))
            for what, addr, why, fix in exposed:
                if not _is_loopback(addr):
                    raise ConfigError(
                        f"refusing the {what} {addr}: {why}, so anyone who reaches it could "
                        f"write, vote and change the membership. {fix.capitalize()}serve it "
                        f"on 127.0.0.1, or pass --insecure on a network you trust")
        return self


def _is_loopback(addr: str) -> bool:
    host = addr.rpartition(":")[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name other than localhost: it may resolve anywhere


async def bind_http_listener(addr: str, backlog: int = 1024) -> tuple[trio.SocketListener, str]:
    """A listening TCP socket for ``addr`` (port 0: any free port), as a trio listener, and
    the address it is bound to."""
    host, port = addr.rsplit(":", 1)
    host = host.strip("[]")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = trio.socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        await sock.bind((host, int(port)))
        sock.listen(backlog)
        bound = sock.getsockname()[1]
    except BaseException:
        sock.close()
        raise
    shown = f"[{host}]" if family == socket.AF_INET6 else host
    return trio.SocketListener(sock), f"{shown}:{bound}"


async def _open_stores(options: NodeOptions):
    """(log store, state machine) under the data directory: the state machine in an lmdb
    environment of its own, the log in another or in RocksDB (``log_store``).

    Two environments, not one shared: lmdb runs one write transaction at a time per
    environment, so with one the log's appends (the next batch) would wait for the state
    machine's applies (the last batch) and the node's rounds could not overlap.
    """
    if options.store == "memory":
        return MemoryLogStore(), MemoryKVStateMachine()
    path = options.data_dir
    await trio.to_thread.run_sync(os.makedirs, path, 0o777, True)
    claimed = await trio.to_thread.run_sync(
        data_dir.check_claimed, path, options.node_id, options.force_new_store,
        options.log_store)
    log_path = os.path.join(path, "log")  # each kind refuses a directory of the other
    if options.log_store == "rocksdb":
        from ..storage.rocksdb_log import RocksLogStore
        log_store = await RocksLogStore.open(log_path)
    else:
        log_store = await LmdbLogStore.open(log_path)
    try:
        sm = await LmdbKVStateMachine.open(os.path.join(path, "state"))
        if not claimed:  # only now that both stores exist on disk
            await trio.to_thread.run_sync(data_dir.claim, path, options.node_id)
    except BaseException:
        with trio.CancelScope(shield=True):
            await log_store.aclose()
        raise
    return log_store, sm


async def run_node(options: NodeOptions, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
    """Run the node described by ``options`` until cancelled (see the module docstring)."""
    options.check()
    raise_fd_limit(log)
    listener, http_addr = await bind_http_listener(options.addr)
    api_tls = options.api_tls
    if api_tls is not None:
        # HTTP clients close without TLS's close_notify (TlsStream takes that as the end);
        # a refused handshake sends its alert (fastraft.net.tls_stream)
        listener = TlsListener(listener, api_tls.server_context())
    try:
        log_store, sm = await _open_stores(options)
    except BaseException:
        await listener.aclose()
        raise
    network = (TcpNetwork(tls=options.peer_tls) if options.network == "tcp"
               else HttpNetwork(tls=api_tls.node if api_tls is not None else None))
    async with open_raft(options.node_id, options.config, log_store=log_store,
                         state_machine=sm, network=network,
                         request_timeout_s=options.request_timeout_s) as raft:
        async with trio.open_nursery() as nursery:
            if options.network == "tcp":
                host, port = _split(options.raft_addr)
                listeners = await nursery.start(partial(
                    serve_raft_tcp, raft, host, port, tls=options.peer_tls,
                    limits=options.raft_limits))
                raft_addr = f"{host}:{listeners[0].socket.getsockname()[1]}"
            else:
                raft_addr = http_addr
            info = NodeInfo(options.node_id, http_addr, raft_addr, options.network)
            fetch_info = (fetch_node_info if api_tls is None else
                          partial(fetch_node_info, tls_context=api_tls.client_context()))
            service = KVService(raft, sm, info, write_timeout_s=options.write_timeout_s,
                                read_timeout_s=options.read_timeout_s, fetch_info=fetch_info)
            handler = KVHandler(service, raft_rpc=options.network == "http",
                                max_body_bytes=options.http_limits.max_body_bytes, tls=api_tls)
            await nursery.start(partial(serve_http, handler, [listener],
                                        limits=options.http_limits))
            log.info("node %d serving %s on %s, raft (%s) on %s, store %s%s",
                     options.node_id, "HTTPS" if api_tls else "HTTP", http_addr, options.network,
                     raft_addr, options.store,
                     f" (log: {options.log_store}) in {options.data_dir}" if options.data_dir else "",
                     extra={"node_id": options.node_id})
            task_status.started(info)
            try:
                await raft.wait_closed()  # the node stopped on its own: a storage failure
                log.error("node %d stopped; closing its HTTP server", options.node_id)
            finally:
                log.info("node %d stopping: HTTP on %s, raft on %s", options.node_id,
                         http_addr, raft_addr, extra={"node_id": options.node_id})
                nursery.cancel_scope.cancel()


def _split(addr: str) -> tuple[str, int]:
    host, port = addr.rsplit(":", 1)
    return host.strip("[]"), int(port)
