#!/usr/bin/env python3
"""Cluster scenarios raftbench has no mode for, on three ``control_node.py`` processes over
TCP on 127.0.0.1 with lmdb logs synced to disk:

* ``failover``: SIGKILL the leader; time from the kill to the first write committed by the
  new leader (each follower waits to lead, then writes at once). Default Config (election
  timeouts 1-2 s). The killed node restarts from its disk before the next trial.
* ``memory``: commit N entries of 100 bytes (client_write_many of 1000, 8 in flight) with
  the default snapshot policy, then report each node's RSS (and peak RSS).

    python scenarios.py failover --trials 20
    python scenarios.py memory --entries 1000000
"""

import argparse
import json
import os
import queue
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

from fastraft.testing.ports import free_ports

HERE = os.path.dirname(os.path.abspath(__file__))
NODE = os.path.join(HERE, "control_node.py")


class Proc:
    def __init__(self, node_id, nodes_arg, data_dir, init, conf, log_path):
        cmd = [sys.executable, NODE, "--id", str(node_id), "--nodes", nodes_arg, "--dir", data_dir,
               "--conf", json.dumps(conf)]
        if init:
            cmd.append("--init")
        self.id = node_id
        self.log = open(log_path, "a")
        self.p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=self.log, text=True, bufsize=1)
        self.replies, self.events = queue.Queue(), queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        assert self.replies.get(timeout=60).get("ready")

    def _read(self):
        for line in self.p.stdout:
            msg = json.loads(line)
            (self.events if msg.get("ev") else self.replies).put(msg)
        self.replies.put(None)

    def request(self, obj, timeout=600):
        self.p.stdin.write(json.dumps(obj) + "\n")
        self.p.stdin.flush()
        msg = self.replies.get(timeout=timeout)
        if msg is None:
            raise RuntimeError(f"node {self.id} exited")
        return msg

    def kill(self):
        os.kill(self.p.pid, signal.SIGKILL)
        self.p.wait(30)

    def exit(self):
        try:
            self.request({"cmd": "exit"}, timeout=60)
            self.p.wait(60)
        except Exception:
            self.kill()
        self.log.close()


class Cluster:
    def __init__(self, workdir, conf=None):
        self.workdir = workdir
        self.conf = conf or {}
        ports = free_ports(3)
        self.nodes_arg = ",".join(f"{i}=127.0.0.1:{ports[i - 1]}" for i in (1, 2, 3))
        self.procs = {i: self.spawn(i, i == 1) for i in (1, 2, 3)}

    def spawn(self, i, init=False):
        return Proc(i, self.nodes_arg, os.path.join(self.workdir, f"node{i}"), init, self.conf,
                    os.path.join(self.workdir, f"node{i}.log"))

    def leader(self, timeout_s=30.0):
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            st = {i: p.request({"cmd": "status"}) for i, p in self.procs.items()}
            lead = {s["leader"] for s in st.values()}
            if len(lead) == 1 and None not in lead:
                lid = lead.pop()
                if st[lid]["is_leader"]:
                    return lid, st
            time.sleep(0.05)
        raise RuntimeError(f"no leader in {timeout_s} s")

    def stop(self):
        for p in self.procs.values():
            p.exit()


def failover(args):
    c = Cluster(args.workdir)
    results = []
    try:
        for trial in range(args.trials):  # bounded
            lid, st = c.leader()
            time.sleep(args.settle)
            followers = [p for i, p in c.procs.items() if i != lid]
            for p in followers:
                assert p.request({"cmd": "arm", "timeout_s": 10.0})["armed"]
            t_kill = time.monotonic()
            c.procs[lid].kill()
            firsts = []
            for p in followers:
                ev = p.events.get(timeout=30)
                if ev["t"] is not None:
                    firsts.append(ev["t"])
            ms = (min(firsts) - t_kill) * 1e3 if firsts else None
            results.append(ms)
            print(f"  trial {trial}: {ms:.0f} ms" if ms is not None else f"  trial {trial}: no new leader",
                  flush=True)
            c.procs[lid].log.close()
            c.procs[lid] = c.spawn(lid)  # restarts from its disk, catches up
            lid2, st = c.leader()
            target = st[lid2]["applied"]
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:  # bounded: until the restarted node caught up
                if c.procs[lid].request({"cmd": "status"})["applied"] >= target:
                    break
                time.sleep(0.05)
    finally:
        c.stop()
    ok = sorted(r for r in results if r is not None)
    summary = {"scenario": "failover", "trials": len(results), "failed_trials": len(results) - len(ok),
               "p50_ms": statistics.median(ok) if ok else None,
               "max_ms": ok[-1] if ok else None, "min_ms": ok[0] if ok else None, "all_ms": results}
    print(json.dumps(summary))
    return summary


def memory(args):
    c = Cluster(args.workdir)
    try:
        done, t0 = 0, time.monotonic()
        for _ in range(1000):  # bounded: each round commits or finds the new leader
            if done >= args.entries:
                break
            lid, _ = c.leader()
            r = c.procs[lid].request({"cmd": "fill", "entries": min(100_000, args.entries - done),
                                      "batch": 1000, "window": 8})
            done += r["entries"]
        elapsed = time.monotonic() - t0
        lid, st = c.leader()
        rss = {i: p.request({"cmd": "rss"}) for i, p in c.procs.items()}
    finally:
        c.stop()
    summary = {"scenario": "memory", "entries": done, "seconds": elapsed, "leader": lid,
               "rss_mib": {i: r["rss_kib"] / 1024 for i, r in rss.items()},
               "peak_rss_mib": {i: r["hwm_kib"] / 1024 for i, r in rss.items()}}
    print(json.dumps(summary))
    return summary


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("scenario", choices=["failover", "memory"])
    ap.add_argument("--trials", type=int, default=20)
    ap.add_argument("--settle", type=float, default=1.0)
    ap.add_argument("--entries", type=int, default=1_000_000)
    ap.add_argument("--workdir", default=None)
    args = ap.parse_args(argv)
    own = args.workdir is None
    args.workdir = args.workdir or tempfile.mkdtemp(prefix="fastraft-scenario-")
    try:
        return failover(args) if args.scenario == "failover" else memory(args)
    finally:
        if own:
            shutil.rmtree(args.workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
