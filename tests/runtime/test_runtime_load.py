"""Defaults that hold under load: three nodes as three OS processes over TCP on 127.0.0.1,
lmdb logs, the default ``Config``, and 10,000 client writes kept in flight on the leader.
Throughout: no election timer fires, no term changes, the leader stays, and no snapshot is sent
to a follower (both followers are live and keep up; Raft §7 snapshots are for followers far
behind). Heartbeats must reach followers in time however much client work is queued (Raft
§5.2, §5.6: broadcast time well below the election timeout).

The load lasts ``FASTRAFT_LOAD_TEST_S`` seconds (15 by default, bounded for CI; 60 for the
full run).
"""

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
NODE = os.path.join(HERE, "load_node.py")
IN_FLIGHT = 10_000
LOAD_S = float(os.environ.get("FASTRAFT_LOAD_TEST_S", "15"))


class LoadProc:
    """One load_node.py process; "done" reports are kept apart from request answers."""

    def __init__(self, node_id, data_dir, nodes_arg, init, log_path):
        self.id = node_id
        self.log = open(log_path, "a")
        cmd = [sys.executable, NODE, "--id", str(node_id), "--dir", data_dir, "--nodes", nodes_arg]
        if init:
            cmd.append("--init")
        self.p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=self.log, text=True, bufsize=1)
        self.answers = queue.Queue()
        self.reports = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        ready = self._get(self.answers, 60)
        assert ready.get("ready"), ready

    def _read(self):
        for line in self.p.stdout:
            msg = json.loads(line)
            (self.reports if "done" in msg else self.answers).put(msg)
        self.answers.put(None)
        self.reports.put(None)

    def _get(self, q, timeout):
        msg = q.get(timeout=timeout)
        if msg is None:
            raise RuntimeError(f"node {self.id} exited")
        return msg

    def request(self, obj, timeout=30):
        self.p.stdin.write(json.dumps(obj) + "\n")
        self.p.stdin.flush()
        return self._get(self.answers, timeout)

    def report(self, timeout):
        return self._get(self.reports, timeout)

    def stop(self):
        if self.p.poll() is None:
            try:
                self.p.stdin.write(json.dumps({"cmd": "exit"}) + "\n")
                self.p.stdin.flush()
                self.p.wait(30)
            except Exception:
                os.kill(self.p.pid, signal.SIGKILL)
                self.p.wait(10)
        self.log.close()


def wait_leader(procs, timeout_s=30.0):
    deadline = time.monotonic() + timeout_s
    st = []
    while time.monotonic() < deadline:
        st = [p.request({"cmd": "status"}) for p in procs]
        leaders = {s["leader"] for s in st}
        if len(leaders) == 1 and None not in leaders and \
                any(s["id"] == s["leader"] and s["state"] == "leader" for s in st):
            return st
        time.sleep(0.05)
    raise AssertionError(f"no leader within {timeout_s} s: {st}")


@pytest.mark.slow
@pytest.mark.timeout(LOAD_S + 240)
def test_default_config_keeps_its_leader_with_10000_writes_in_flight(tmp_path):
    ports = free_ports(3)
    nodes_arg = ",".join(f"{i}=127.0.0.1:{ports[i - 1]}" for i in (1, 2, 3))
    logs = {i: str(tmp_path / f"node{i}.log") for i in (1, 2, 3)}
    procs = {}
    try:
        for i in (1, 2, 3):
            procs[i] = LoadProc(i, str(tmp_path / f"node{i}"), nodes_arg, i == 1, logs[i])
        before = wait_leader(list(procs.values()))
        leader_id = before[0]["leader"]
        term = before[0]["term"]
        elections = {s["id"]: s["elections"] for s in before}
        leader = procs[leader_id]
        assert leader.request({"cmd": "load", "in_flight": IN_FLIGHT, "seconds": LOAD_S}) \
            == {"started": True}
        seen = []
        deadline = time.monotonic() + LOAD_S + 120  # the writes in flight drain after LOAD_S
        done = None
        while done is None:
            assert time.monotonic() < deadline, "the load did not finish"
            for p in procs.values():
                s = p.request({"cmd": "status"})
                seen.append(s)
                assert (s["term"], s["leader"]) == (term, leader_id), seen[-3:]
                assert s["elections"] == elections[s["id"]], s
                assert s["snapshots_sent"] == 0, s
            try:
                done = leader.report(timeout=0.5)
            except queue.Empty:
                pass
        # a follower learns the last commit index with the leader's next AppendEntries or
        # heartbeat (Raft §5.3), a moment after the leader answered the last write
        committed_by = time.monotonic() + 30
        while True:  # bounded by the deadline
            after = wait_leader(list(procs.values()))
            if all(s["committed"] >= done["done"] for s in after) \
                    or time.monotonic() > committed_by:
                break
            time.sleep(0.05)
    finally:
        for p in procs.values():
            p.stop()
    assert done["errors"] == {}, done
    assert done["done"] >= IN_FLIGHT, done  # every writer got answers, many times over
    for s in after:
        assert (s["term"], s["leader"]) == (term, leader_id), s
        assert s["elections"] == elections[s["id"]] and s["snapshots_sent"] == 0, s
        assert s["committed"] >= done["done"], s
    for i in (1, 2, 3):
        with open(logs[i]) as f:
            assert "Traceback" not in f.read(), f"node {i} logged a traceback"
