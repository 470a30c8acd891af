"""Three nodes as three OS processes over TCP on 127.0.0.1 with lmdb stores: SIGKILL the
leader, a new one is elected, and no acknowledged write is lost once the old leader restarts
(Raft §5.4: leader completeness; durable-before-acknowledge on every node). Run with plain
TCP and with mutual TLS between the nodes."""

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time

import pytest

from fastraft.testing import free_ports

HERE = os.path.dirname(os.path.abspath(__file__))
NODE = os.path.join(HERE, "proc_node.py")


class Proc:
    """One node process and its JSON-lines control channel."""

    def __init__(self, node_id, data_dir, nodes_arg, init, log_path, tls=None, extra=()):
        self.id = node_id
        self.log = open(log_path, "a")
        cmd = [sys.executable, NODE, "--id", str(node_id), "--dir", data_dir, "--nodes", nodes_arg]
        if init:
            cmd.append("--init")
        if tls:
            cmd += ["--tls", tls]
        cmd += list(extra)
        self.p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=self.log, text=True, bufsize=1)
        self.q = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        ready = self.recv(30)
        assert ready.get("ready"), ready

    def _read(self):
        for line in self.p.stdout:
            self.q.put(json.loads(line))
        self.q.put(None)

    def recv(self, timeout):
        msg = self.q.get(timeout=timeout)
        if msg is None:
            raise RuntimeError(f"node {self.id} exited")
        return msg

    def request(self, obj, timeout=10):
        self.p.stdin.write(json.dumps(obj) + "\n")
        self.p.stdin.flush()
        return self.recv(timeout)

    def kill(self):
        os.kill(self.p.pid, signal.SIGKILL)
        self.p.wait(10)
        self.log.close()

    def exit(self):
        self.p.stdin.write(json.dumps({"cmd": "exit"}) + "\n")
        self.p.stdin.flush()
        assert self.recv(30) == {"bye": True}
        assert self.p.wait(30) == 0
        self.log.close()


def wait_leader(procs, timeout_s=20.0):
    """The id every live node agrees leads, once they do."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        st = [p.request({"cmd": "status"}) for p in procs]
        leaders = {s["leader"] for s in st}
        if len(leaders) == 1 and None not in leaders:
            lid = leaders.pop()
            if any(s["id"] == lid and s["state"] == "leader" for s in st):
                return lid
        time.sleep(0.05)
    raise AssertionError(f"no leader within {timeout_s} s: {st}")


def write_acked(procs, alive, leader, key, value, acked):
    """Write through ``leader``; if leadership moved meanwhile (a loaded machine can delay a
    heartbeat past an election timeout), find the new leader and write again (bounded).
    Returns the leader that acknowledged the write."""
    for _ in range(5):
        r = procs[leader].request({"cmd": "write", "key": key, "value": value})
        if "ok" in r:
            acked[key] = value
            return leader
        assert r.get("error") == "ForwardToLeader", r
        leader = wait_leader([procs[i] for i in alive])
    raise AssertionError(f"write of {key} not acknowledged after 5 tries: {r}")


@pytest.mark.slow
@pytest.mark.parametrize("tls", [False, True], ids=["plain", "tls"])
def test_sigkill_leader_loses_no_acknowledged_write(tmp_path, tls):
    pki = None
    if tls:
        from fastraft.kv.certs import make_pki
        pki = str(tmp_path / "pki")
        make_pki(pki, "proc-test", [1, 2, 3])
    ports = free_ports(3)
    nodes_arg = ",".join(f"{i}=127.0.0.1:{ports[i - 1]}" for i in (1, 2, 3))
    dirs = {i: str(tmp_path / f"node{i}") for i in (1, 2, 3)}
    logs = {i: str(tmp_path / f"node{i}.log") for i in (1, 2, 3)}
    procs = {i: Proc(i, dirs[i], nodes_arg, i == 1, logs[i], pki) for i in (1, 2, 3)}
    try:
        old = wait_leader(list(procs.values()))
        acked = {}
        for i in range(40):
            old = write_acked(procs, (1, 2, 3), old, f"k{i}", str(i), acked)
        procs[old].kill()
        t_kill = time.monotonic()
        rest = [p for i, p in procs.items() if i != old]
        new = wait_leader(rest)
        assert new != old
        elected_s = time.monotonic() - t_kill
        for i in range(40, 60):
            new = write_acked(procs, [n for n in procs if n != old], new, f"k{i}", str(i), acked)
        # the old leader comes back from its disk and catches up without losing anything
        procs[old] = Proc(old, dirs[old], nodes_arg, False, logs[old], pki)
        target = procs[new].request({"cmd": "status"})["committed"]
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if all(p.request({"cmd": "status"})["applied"] >= target for p in procs.values()):
                break
            time.sleep(0.05)
        for p in procs.values():
            for key, value in acked.items():
                assert p.request({"cmd": "get", "key": key}) == {"value": value}, (p.id, key)
        assert wait_leader(list(procs.values())) == new  # the restarted node did not disrupt it
        assert elected_s < 10
    finally:
        for p in procs.values():
            if p.p.poll() is None:
                try:
                    p.exit()
                except Exception:
                    p.kill()
    for i in (1, 2, 3):
        with open(logs[i]) as f:
            assert "Traceback" not in f.read(), f"node {i} logged a traceback"
