"""One PySyncObj node for the cluster suite, run by the side venv's python (it imports nothing
of fastraft), driven by JSON lines on stdin/stdout exactly like ``cluster/control_node.py``:

    {"cmd": "status"}      -> {"is_leader", "leader", "applied"}
    {"cmd": "throughput", "window", "payload", "warmup_s", "duration_s"} -> {"ops_s", ...}
    {"cmd": "open_loop", "rate", "payload", "warmup_s", "duration_s"} -> {"latency_ms": [...]}
    {"cmd": "exit"}

The state machine is the benchmarks' reference (``state[key] = value; applied += 1``). PySyncObj
runs on its defaults: its journal in memory, never synced, appends batched on its timer.
Load is generated in this process, as fastraft's is in its node: ``window`` writes in flight
(each completion submits the next), or writes started on a fixed schedule (open loop).
"""

import argparse
import json
import os
import sys
import threading
import time

from pysyncobj import SyncObj, SyncObjConf, replicated

KEYS = 1024
MAX_OPEN_IN_FLIGHT = 4096  # as fastraft's open loop


class Bench(SyncObj):
    def __init__(self, self_addr, partners, data_dir):
        conf = SyncObjConf(fullDumpFile=None, journalFile=None)
        super().__init__(self_addr, partners, conf)
        self.data = {}
        self.applied = 0

    @replicated
    def put(self, key, value):
        self.data[key] = value
        self.applied += 1


def throughput(node, window, payload, warmup_s, duration_s):
    value = b"x" * payload
    lock = threading.Lock()
    state = {"ok": 0, "err": 0, "stop": False, "n": 0}
    t_meas = time.perf_counter() + warmup_s
    t_end = t_meas + duration_s

    def submit():
        with lock:
            state["n"] += 1
            k = state["n"] % KEYS
        node.put(k, value, callback=done)

    def done(result, error):
        with lock:
            if error == 0:
                state["ok"] += 1
            else:
                state["err"] += 1
        if time.perf_counter() < t_end:
            submit()

    for _ in range(window):
        submit()
    time.sleep(max(0.0, t_meas - time.perf_counter()))
    with lock:
        ok0, err0 = state["ok"], state["err"]
    time.sleep(max(0.0, t_end - time.perf_counter()))
    with lock:
        ok1, err1 = state["ok"], state["err"]
    time.sleep(0.2)  # let the last callbacks drain (they submit nothing after t_end)
    return {"ops_s": (ok1 - ok0) / duration_s, "errors": err1 - err0}


def open_loop(node, rate, payload, warmup_s, duration_s):
    value = b"x" * payload
    lat, lock = [], threading.Lock()
    pending = [0]
    dropped = 0
    t0 = time.perf_counter()
    t_meas = t0 + warmup_s
    n = int((warmup_s + duration_s) * rate)

    def make_done(t_sched):
        def done(result, error):
            e = time.perf_counter()
            with lock:
                pending[0] -= 1
                if error == 0 and t_sched >= t_meas:
                    lat.append((e - t_sched) * 1e3)
        return done

    for i in range(n):  # bounded: n writes on a fixed schedule
        t_sched = t0 + i / rate
        delay = t_sched - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        with lock:
            if pending[0] >= MAX_OPEN_IN_FLIGHT:
                dropped += 1
                continue
            pending[0] += 1
        node.put(i % KEYS, value, callback=make_done(t_sched))
    deadline = time.perf_counter() + 30
    while pending[0] and time.perf_counter() < deadline:  # bounded: 30 s to drain
        time.sleep(0.01)
    return {"latency_ms": lat, "dropped": dropped, "unfinished": pending[0]}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--id", type=int, required=True)
    ap.add_argument("--nodes", required=True)
    ap.add_argument("--dir", required=True)
    ap.add_argument("--init", action="store_true")  # every PySyncObj node starts the same way
    ap.add_argument("--conf", default="{}")
    a = ap.parse_args()
    nodes = dict(p.split("=") for p in a.nodes.split(","))
    me = nodes.pop(str(a.id))
    node = Bench(me, list(nodes.values()), a.dir)
    out = sys.stdout

    def emit(obj):
        out.write(json.dumps(obj) + "\n")
        out.flush()

    emit({"ready": True, "pid": os.getpid()})
    for line in sys.stdin:  # one command per line until "exit"
        msg = json.loads(line)
        cmd = msg["cmd"]
        if cmd == "status":
            leader = node._getLeader()
            emit({"is_leader": node._isLeader(), "leader": None if leader is None else str(leader),
                  "applied": node.applied})
        elif cmd == "throughput":
            emit(throughput(node, msg["window"], msg["payload"], msg["warmup_s"], msg["duration_s"]))
        elif cmd == "open_loop":
            emit(open_loop(node, msg["rate"], msg["payload"], msg["warmup_s"], msg["duration_s"]))
        elif cmd == "exit":
            break
    node.destroy()
    emit({"bye": True})


if __name__ == "__main__":
    main()
