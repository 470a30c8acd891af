#!/usr/bin/env python3
"""One benchmark node (``node_runtime.BenchNode``) driven by JSON lines on stdin/stdout, for
the cluster suite of ``python -m benchmarks`` (``benchmarks/clusters.py`` starts it; PySyncObj's
nodes speak the same protocol, ``benchmarks/peers/pysyncobj_node.py``):

    {"cmd": "status"}                          -> {"leader", "is_leader", "term", "applied", "last",
                                                   "snapshot"}
    {"cmd": "arm"}                             -> {"armed": true}; later {"ev": "led", "t": monotonic}
                                                  when this node led and committed a write
    {"cmd": "fill", "entries", "batch", "window"} -> fill()'s result
    {"cmd": "throughput", "window", "payload", "warmup_s", "duration_s"[, "batch"]} -> {"ops_s", ...}
                                                  (batch: client_write_many of that many)
    {"cmd": "open_loop", "rate", "payload", "warmup_s", "duration_s"} -> {"latency_ms": [...]}
    {"cmd": "latency", "payload", "warmup_s", "duration_s"[, "probe"]} -> one writer's {"p50_ms",
                                                  "p99_ms", ...} (probe false: no storage probe)
    {"cmd": "load_state", "keys", "value_bytes"} -> load_state()'s result (then a snapshot)
    {"cmd": "rss"}                             -> {"rss_kib", "hwm_kib"} from /proc/self/status
    {"cmd": "exit"}                            -> {"bye": true}

    python control_node.py --id 1 --nodes 1=127.0.0.1:p1,... --dir D [--init] [--conf JSON]

``--conf`` holds the engine's ``Config`` fields, and may name the node's ``log_store``
("lmdb", the default; "rocksdb"; "memory") and its ``state_machine`` (``node_runtime``).
"""

import argparse
import json
import os
import sys
import threading

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from node_runtime import BenchNode  # noqa: E402

_out_lock = threading.Lock()


def emit(obj) -> None:
    with _out_lock:
        sys.stdout.write(json.dumps(obj) + "\n")
        sys.stdout.flush()


#: --conf's "log_store" -> BenchNode's journal
JOURNALS = {"lmdb": "file", "rocksdb": "rocksdb", "memory": "memory"}


def proc_status() -> dict:
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                key, value = line.split(":", 1)
                out["rss_kib" if key == "VmRSS" else "hwm_kib"] = int(value.split()[0])
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--id", type=int, required=True)
    ap.add_argument("--nodes", required=True)
    ap.add_argument("--dir", required=True)
    ap.add_argument("--init", action="store_true")
    ap.add_argument("--conf", default="{}")
    a = ap.parse_args()
    nodes = {int(k): v for k, v in (p.split("=") for p in a.nodes.split(","))}
    conf = json.loads(a.conf)
    # the node's log store: "lmdb" (the default), "rocksdb" or "memory"; the rest is Config
    journal = JOURNALS[conf.pop("log_store", "lmdb")]
    node = BenchNode(a.id, nodes, a.dir, journal, conf, initialize=a.init)
    node.start()
    emit({"ready": True, "pid": os.getpid()})
    for line in sys.stdin:  # one command per line until "exit" or end of input
        msg = json.loads(line)
        cmd = msg["cmd"]
        if cmd == "status":
            m = node.metrics()
            emit({"leader": m.current_leader, "is_leader": m.is_leader, "term": m.current_term,
                  "applied": m.applied_index, "last": m.last_log_index,
                  "snapshot": getattr(m.snapshot, "index", None),
                  "purged": getattr(m.purged, "index", None)})
        elif cmd == "arm":
            def watch():
                t = node.call(node.first_write_as_leader, float(msg.get("timeout_s", 10.0)))
                emit({"ev": "led", "t": t, "id": a.id})
            threading.Thread(target=watch, daemon=True).start()
            emit({"armed": True})
        elif cmd == "fill":
            emit(node.call(node.fill, msg["entries"], msg.get("batch", 1000), msg.get("window", 8)))
        elif cmd == "throughput":
            r = node.call(node.throughput, [b"x" * max(0, msg["payload"] - 4)], msg["window"],
                          msg["warmup_s"], msg["duration_s"], 0, msg.get("batch", 1))
            emit({"ops_s": r["ops_per_s"], "errors": r["failed_in_window"],
                  "error_kinds": r["error_kinds"]})
        elif cmd == "open_loop":
            emit(node.call(node.open_loop, msg["payload"], msg["rate"], msg["warmup_s"],
                           msg["duration_s"]))
        elif cmd == "latency":
            emit(node.call(node.latency, [b"x" * max(0, msg["payload"] - 4)], msg["warmup_s"],
                           msg["duration_s"], 0, msg.get("probe", True)))
        elif cmd == "load_state":
            emit(node.call(node.load_state, msg["keys"], msg["value_bytes"]))
        elif cmd == "rss":
            emit(proc_status())
        elif cmd == "exit":
            break
    node.stop()
    emit({"bye": True})


if __name__ == "__main__":
    main()
