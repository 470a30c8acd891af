"""A fresh etcd cluster of three members on 127.0.0.1 for one benchmark run, with etcd's
default durability (its WAL fsyncs every commit), stopped and deleted afterwards.

    with EtcdCluster(workdir, ports) as c:   # ports: 6 numbers (3 client, 3 peer)
        c.endpoints, c.pids

``available()`` says why etcd cannot run here (None when it can).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
import urllib.request


def available() -> str | None:
    if shutil.which("etcd") is None:
        return "etcd is not installed (Debian/Ubuntu: apt-get install -y etcd-server)"
    return None


def version() -> str:
    try:
        out = subprocess.run(["etcd", "--version"], capture_output=True, text=True, timeout=10)
        return out.stdout.split("\n", 1)[0].split(":", 1)[-1].strip()
    except (OSError, subprocess.SubprocessError):
        return "?"


class EtcdCluster:
    def __init__(self, workdir: str, ports: list[int], members: int = 3) -> None:
        self.dir = os.path.join(workdir, "etcd")
        self.client_ports, self.peer_ports = ports[:members], ports[members:2 * members]
        self.members = members
        self.procs: list[subprocess.Popen] = []
        self.endpoints = [f"http://127.0.0.1:{p}" for p in self.client_ports]

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.procs]

    def __enter__(self) -> "EtcdCluster":
        initial = ",".join(f"n{i}=http://127.0.0.1:{p}" for i, p in enumerate(self.peer_ports, 1))
        token = f"bench-{os.getpid()}-{int(time.time())}"
        os.makedirs(self.dir, exist_ok=True)
        try:
            for i, (cp, pp) in enumerate(zip(self.client_ports, self.peer_ports), 1):
                log = open(os.path.join(self.dir, f"n{i}.log"), "w")
                self.procs.append(subprocess.Popen(
                    ["etcd", "--name", f"n{i}", "--data-dir", os.path.join(self.dir, f"n{i}"),
                     "--listen-client-urls", f"http://127.0.0.1:{cp}",
                     "--advertise-client-urls", f"http://127.0.0.1:{cp}",
                     "--listen-peer-urls", f"http://127.0.0.1:{pp}",
                     "--initial-advertise-peer-urls", f"http://127.0.0.1:{pp}",
                     "--initial-cluster", initial, "--initial-cluster-token", token,
                     "--initial-cluster-state", "new", "--logger", "zap", "--log-level", "warn"],
                    stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL))
                log.close()
            self._wait_leader(60.0)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _wait_leader(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:  # bounded by the deadline
            for p in self.procs:
                if p.poll() is not None:
                    with open(os.path.join(self.dir, f"n{self.procs.index(p) + 1}.log")) as f:
                        tail = f.read()[-600:].strip()  # the folder goes with the run: say why
                    raise RuntimeError(f"etcd member exited ({p.returncode}): {tail}")
            try:
                leaders = set()
                for ep in self.endpoints:
                    req = urllib.request.Request(ep + "/v3/maintenance/status", data=b"{}",
                                                 method="POST")
                    with urllib.request.urlopen(req, timeout=1) as r:
                        leaders.add(json.loads(r.read()).get("leader"))
                if len(leaders) == 1 and None not in leaders:
                    return
            except (OSError, ValueError):
                pass
            time.sleep(0.2)
        raise RuntimeError(f"etcd cluster had no leader in {timeout_s} s")

    def __exit__(self, *exc) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        # the data goes with the folder, so a member still stopping after 2 s (etcd members
        # stopped together wait on each other: 7 s measured) is killed
        deadline = time.monotonic() + 2.0
        for p in self.procs:
            try:
                p.wait(max(0.01, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)
