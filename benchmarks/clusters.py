"""Clusters of node processes on 127.0.0.1 driven by JSON lines (one request, one answer; a
line with "ev" is an event): fastraft's ``cluster/control_node.py`` (lmdb synced to disk,
the embedded API, TCP between nodes) or PySyncObj's ``peers/pysyncobj_node.py`` run by the
side venv's python. Both speak the same protocol, so the suites drive them the same way.

Bounds: every request waits at most its timeout; a node that exits fails the request at once.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
FASTRAFT_NODE = os.path.join(HERE, "cluster", "control_node.py")
PYSYNCOBJ_NODE = os.path.join(HERE, "peers", "pysyncobj_node.py")


class Proc:
    def __init__(self, cmd: list[str], node_id: int, log_path: str, env: dict | None = None,
                 ready_timeout_s: float | None = 60.0) -> None:
        """Start the node and wait until it is ready (``ready_timeout_s``; None: do not wait,
        call ``wait_ready``)."""
        self.id, self.log_path = node_id, log_path
        self.log = open(log_path, "a")
        self.p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=self.log, text=True, bufsize=1, env=env)
        self.replies: queue.Queue = queue.Queue()
        self.events: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        if ready_timeout_s is not None:
            self.wait_ready(ready_timeout_s)

    def wait_ready(self, timeout_s: float = 60.0) -> None:
        log_path, node_id = self.log_path, self.id
        try:
            ready = self.replies.get(timeout=timeout_s)
        except queue.Empty:
            ready = None
        if not ready or not ready.get("ready"):
            self.log.flush()
            with open(log_path) as f:  # the run's folder goes at its end: say why here
                tail = f.read()[-600:].strip()
            raise RuntimeError(f"node {node_id} did not start: {tail}")

    def _read(self) -> None:
        for line in self.p.stdout:
            try:
                msg = json.loads(line)
            except ValueError:
                continue
            (self.events if msg.get("ev") else self.replies).put(msg)
        self.replies.put(None)

    def request(self, obj: dict, timeout: float = 600.0) -> dict:
        self.p.stdin.write(json.dumps(obj) + "\n")
        self.p.stdin.flush()
        msg = self.replies.get(timeout=timeout)
        if msg is None:
            raise RuntimeError(f"node {self.id} exited")
        return msg

    def kill(self) -> None:
        if self.p.poll() is None:
            os.kill(self.p.pid, signal.SIGKILL)
        self.p.wait(30)
        self.log.close()

    def exit(self) -> None:
        self.ask_exit()
        self.await_exit()

    def ask_exit(self) -> None:
        """Ask the node to stop, without waiting (``await_exit`` waits): a cluster asks all
        its nodes first, so they stop together."""
        try:
            self.p.stdin.write(json.dumps({"cmd": "exit"}) + "\n")
            self.p.stdin.flush()
        except OSError:
            pass  # gone already: await_exit reaps it

    def await_exit(self, timeout_s: float = 30.0) -> None:
        try:
            self.p.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()
            return
        self.log.close()


class Cluster:
    """``size`` nodes of ``kind`` ("fastraft" or "pysyncobj") on ``ports``, data in
    ``workdir``; node 1 initialises a fastraft cluster."""

    def __init__(self, kind: str, size: int, ports: list[int], workdir: str,
                 python: str | None = None, conf: dict | None = None) -> None:
        self.kind, self.size = kind, size
        self.workdir = os.path.join(workdir, f"{kind}-{size}-{ports[0]}")
        os.makedirs(self.workdir, exist_ok=True)
        self.python = python or sys.executable
        self.script = FASTRAFT_NODE if kind == "fastraft" else PYSYNCOBJ_NODE
        self.conf = conf or {}
        self.nodes_arg = ",".join(f"{i}=127.0.0.1:{ports[i - 1]}" for i in range(1, size + 1))
        self.procs: dict[int, Proc] = {}
        try:
            # started together, then waited for: a node's start is mostly its imports
            for i in range(1, size + 1):
                self.procs[i] = self.spawn(i, init=i == 1, wait=False)
            for p in self.procs.values():
                p.wait_ready()
            self.leader()
        except BaseException:
            self.stop()
            raise

    def spawn(self, i: int, init: bool = False, wait: bool = True) -> Proc:
        cmd = [self.python, self.script, "--id", str(i), "--nodes", self.nodes_arg,
               "--dir", os.path.join(self.workdir, f"node{i}"), "--conf", json.dumps(self.conf)]
        if init:
            cmd.append("--init")
        return Proc(cmd, i, os.path.join(self.workdir, f"node{i}.log"),
                    ready_timeout_s=60.0 if wait else None)

    @property
    def pids(self) -> list[int]:
        return [p.p.pid for p in self.procs.values()]

    def leader(self, timeout_s: float = 60.0) -> int:
        """The id of the node that leads and that every live node agrees on."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:  # bounded by the deadline
            st = {i: p.request({"cmd": "status"}, timeout=30) for i, p in self.procs.items()}
            leaders = [i for i, s in st.items() if s["is_leader"]]
            known = {s["leader"] for s in st.values()}
            if len(leaders) == 1 and None not in known and len(known) == 1:
                return leaders[0]
            time.sleep(0.05)
        raise RuntimeError(f"{self.kind}: no leader in {timeout_s} s")

    def on_leader(self, obj: dict, timeout: float = 600.0) -> dict:
        return self.procs[self.leader()].request(obj, timeout)

    def stop(self) -> None:
        for p in self.procs.values():
            p.ask_exit()
        for p in self.procs.values():
            p.await_exit()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> "Cluster":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
