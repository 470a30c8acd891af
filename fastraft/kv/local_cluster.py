"""KV nodes as separate OS processes on this machine (``fastraft-kv serve`` each), for the
demo, the tests and the benchmark.

    async with LocalCluster(base_dir) as cluster:
        n1 = await cluster.start(1)          # free ports on 127.0.0.1, lmdb in base_dir/n1
        await cluster.kill(1)                # SIGKILL: a crash
        await cluster.restart(1)             # same ports, same data

Each node's stderr goes to ``base_dir/n<id>.log``. A node is started with port 0 and reports
the ports it bound on its first stdout line, so there is no race for a port; a restart reuses
them. Leaving the block stops every node still running (SIGTERM, then SIGKILL after
``stop_timeout_s``); every wait is bounded.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass

import trio

from ..errors import FastraftError

__all__ = ["LocalCluster", "NodeProcess", "NodeStartError"]

_MAX_READY_LINE_BYTES = 4096


class NodeStartError(FastraftError):
    """A node process did not report ready in time, or exited first; the message ends with
    the tail of its log."""


@dataclass
class NodeProcess:
    """One node process: its id, addresses, data directory, log file and process."""

    node_id: int
    addr: str
    raft_addr: str
    data_dir: str
    log_path: str
    process: trio.Process | None = None

    @property
    def pid(self) -> int | None:
        return None if self.process is None else self.process.pid

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.returncode is None


class LocalCluster:
    """Node processes under ``base_dir``; see the module docstring.

    ``store`` and ``network`` are passed to every node (``--store``, ``--network``);
    ``serve_args`` are further ``fastraft-kv serve`` options; ``python`` runs the nodes;
    ``verbose`` raises their log level (1: info, 2: debug); ``env`` is their environment
    (default: this process's). ``peer_tls`` = (folder, cluster id): the nodes' certificates
    that ``fastraft-kv certs`` wrote there (``node-<id>.pem``...): mutual TLS between the
    nodes and HTTPS on their API; ``client_tls(name)`` is then a ``KVClient``'s ``tls`` for
    the client certificate ``client-<name>.pem``.
    """

    def __init__(self, base_dir: str, *, store: str = "lmdb", network: str = "tcp",
                 serve_args: tuple[str, ...] = (), python: str = sys.executable,
                 host: str = "127.0.0.1", start_timeout_s: float = 30.0,
                 stop_timeout_s: float = 5.0, verbose: int = 0,
                 env: dict[str, str] | None = None,
                 peer_tls: tuple[str, str] | None = None) -> None:
        self.base_dir = base_dir
        self.store = store
        self.network = network
        self.serve_args = tuple(serve_args)
        self.python = python
        self.host = host
        self.start_timeout_s = start_timeout_s
        self.stop_timeout_s = stop_timeout_s
        self.verbose = verbose
        self.env = env
        self.peer_tls = peer_tls
        self.nodes: dict[int, NodeProcess] = {}

    async def __aenter__(self) -> "LocalCluster":
        return self

    async def __aexit__(self, *exc) -> None:
        await self.aclose()

    def client_tls(self, name: str = "admin"):
        """``KVClient(tls=...)`` with the client certificate ``name`` (None without TLS)."""
        if self.peer_tls is None:
            return None
        from .client import client_tls_context

        folder = self.peer_tls[0]
        return client_tls_context(os.path.join(folder, "ca.pem"),
                                  os.path.join(folder, f"client-{name}.pem"),
                                  os.path.join(folder, f"client-{name}-key.pem"))

    def addrs(self, ids=None) -> list[str]:
        """The HTTP addresses of ``ids`` (default: every node started), in id order."""
        ids = sorted(self.nodes) if ids is None else ids
        return [self.nodes[i].addr for i in ids]

    async def start(self, node_id: int, port: int = 0, raft_port: int = 0) -> NodeProcess:
        """Start node ``node_id`` on these ports (0: free ones); return once it serves."""
        if node_id in self.nodes and self.nodes[node_id].running:
            raise ValueError(f"node {node_id} is running already")
        node = NodeProcess(node_id, f"{self.host}:{port}", f"{self.host}:{raft_port}",
                           os.path.join(self.base_dir, f"n{node_id}"),
                           os.path.join(self.base_dir, f"n{node_id}.log"))
        self.nodes[node_id] = node
        await self._launch(node)
        return node

    async def restart(self, node_id: int) -> NodeProcess:
        """Start a stopped or killed node again, on its ports, with its data."""
        node = self.nodes[node_id]
        if node.running:
            raise ValueError(f"node {node_id} is still running")
        await self._launch(node)
        return node

    async def _launch(self, node: NodeProcess) -> None:
        cmd = [self.python, "-m", "fastraft.kv", *["-v"] * self.verbose, "serve",
               "--id", str(node.node_id),
               "--addr", node.addr, "--store", self.store, "--network", self.network]
        if self.network == "tcp":
            cmd += ["--raft-addr", node.raft_addr]
        if self.store == "lmdb":
            cmd += ["--data", node.data_dir]
        if self.peer_tls is not None:
            folder, cluster_id = self.peer_tls
            cmd += ["--cluster-id", cluster_id, "--peer-cacert", os.path.join(folder, "ca.pem"),
                    "--peer-cert", os.path.join(folder, f"node-{node.node_id}.pem"),
                    "--peer-key", os.path.join(folder, f"node-{node.node_id}-key.pem")]
        cmd += list(self.serve_args)
        os.makedirs(self.base_dir, exist_ok=True)
        with open(node.log_path, "ab") as log:
            node.process = await trio.lowlevel.open_process(
                cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log, env=self.env)
        proc = node.process
        line = b""
        with trio.move_on_after(self.start_timeout_s):
            while not line.endswith(b"\n") and len(line) < _MAX_READY_LINE_BYTES:
                chunk = await proc.stdout.receive_some(_MAX_READY_LINE_BYTES)
                if not chunk:
                    break  # the process closed stdout: it exited
                line += chunk
        await proc.stdout.aclose()
        try:
            info = json.loads(line)
            node.addr, node.raft_addr = info["addr"], info["raft_addr"]
        except (ValueError, KeyError, TypeError):
            await self._reap(node, signal.SIGKILL)
            raise NodeStartError(f"node {node.node_id} did not start within "
                                 f"{self.start_timeout_s} s (exit status {proc.returncode}); "
                                 f"its log ends with:\n{self.log_tail(node.node_id)}") from None

    def log_tail(self, node_id: int, max_bytes: int = 4000) -> str:
        try:
            with open(self.nodes[node_id].log_path, "rb") as f:
                f.seek(0, os.SEEK_END)
                f.seek(max(0, f.tell() - max_bytes))
                return f.read().decode("utf-8", "replace")
        except OSError as e:
            return f"(no log: {e})"

    async def kill(self, node_id: int) -> None:
        """SIGKILL the node (a crash: nothing is flushed or closed) and reap it."""
        await self._reap(self.nodes[node_id], signal.SIGKILL)

    async def stop(self, node_id: int) -> None:
        """SIGTERM the node (a clean shutdown); SIGKILL if it is not gone in time."""
        await self._reap(self.nodes[node_id], signal.SIGTERM)

    async def _reap(self, node: NodeProcess, signum: int) -> None:
        proc = node.process
        if proc is None or proc.returncode is not None:
            return
        with trio.CancelScope(shield=True):  # never leave a process behind, even when cancelled
            proc.send_signal(signum)
            with trio.move_on_after(self.stop_timeout_s):
                await proc.wait()
            if proc.returncode is None:
                proc.kill()
                with trio.move_on_after(self.stop_timeout_s):
                    await proc.wait()

    async def aclose(self) -> None:
        """Stop every node still running."""
        with trio.CancelScope(shield=True):
            async with trio.open_nursery() as nursery:
                for node in self.nodes.values():
                    if node.running:
                        nursery.start_soon(self._reap, node, signal.SIGTERM)
