#!/usr/bin/env python3
"""fastraft under raftbench, the harness PySyncObj's figures come from, so both are measured
the same way in the same run: N nodes as OS processes on 127.0.0.1, load generated inside
the leader's process, closed loop with a fixed number of writes in flight.

raftbench is not part of this repository: point FASTRAFT_ANCHORS at the folder that holds
``pysyncobj/raftbench.py``. ``run.py`` drives this with PySyncObj's adapter side by side;
by hand:

    FASTRAFT_ANCHORS=/path/to/anchors python raftbench_fastraft.py throughput \\
        --payload 100 --window 256 --journal file
    ... throughput --conf batch=1000 --window 16        # client_write_many of 1000
    ... latency --payload 100 --journal file              # with the storage's own latency

Journal "file" is an lmdb log store synced on every commit (with ``--log-store rocksdb``, the
RocksDB log store, synced the same way); "memory" keeps the log in RAM.
``--tls``: the nodes talk mutual TLS, with a throwaway CA and certificates made for the run
(``fastraft.kv.certs``; ``tls_cost.py`` compares it with plain TCP side by side).
``--conf`` keys: ``batch`` (payloads per client_write_many call; 1: client_write), ``log_store``
(what ``--log-store`` sets), and any ``fastraft.core.Config`` field.
"""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
_anchors = os.environ.get("FASTRAFT_ANCHORS")
if not _anchors:
    sys.exit("set FASTRAFT_ANCHORS to the folder holding pysyncobj/raftbench.py")
sys.path.insert(0, os.path.join(_anchors, "pysyncobj"))

import raftbench  # noqa: E402


def _log_store_option(argv: list[str]) -> list[str]:
    """``--log-store KIND`` as the ``--conf log_store=KIND`` the nodes receive."""
    out = []
    it = iter(argv)
    for arg in it:
        if arg == "--log-store":
            out += ["--conf", f"log_store={next(it)}"]
        elif arg.startswith("--log-store="):
            out += ["--conf", "log_store=" + arg.split("=", 1)[1]]
        else:
            out.append(arg)
    return out

import fastraft  # noqa: E402
from node_runtime import BenchNode  # noqa: E402


class FastraftAdapter(raftbench.Adapter):
    name = "fastraft"
    command_encoding = "one log entry per write: u32 key + value (client_write / client_write_many)"

    def version(self):
        return f"{fastraft.__version__} ({'compiled' if fastraft.accelerated() else 'pure'} core)"

    def start(self, index, addrs, data_dir, journal, conf):
        conf = dict(conf)
        self.batch = int(conf.pop("batch", 1))
        log_store = conf.pop("log_store", "lmdb")
        if journal == "file" and log_store == "rocksdb":
            journal = "rocksdb"
        self.addrs = addrs
        nodes = {i + 1: a for i, a in enumerate(addrs)}
        self.node = BenchNode(index + 1, nodes, data_dir, journal, conf, initialize=index == 0)
        self.node.start()

    def leader(self):
        lid = self.node.metrics().current_leader
        return None if lid is None else self.addrs[lid - 1]

    def is_leader(self):
        return self.node.metrics().is_leader

    def applied(self):
        return self.node.sm.applied

    def extra_status(self):
        m = self.node.metrics()
        return {"term": m.current_term, "last_log_index": m.last_log_index,
                "committed": m.committed}

    def throughput(self, payloads, window, warmup, duration, key_offset=0):
        return self.node.call(self.node.throughput, payloads, window, warmup, duration,
                              key_offset, self.batch)

    def latency(self, payloads, warmup, duration, key_offset=0):
        return self.node.call(self.node.latency, payloads, warmup, duration, key_offset)

    def stop(self):
        self.node.stop()


def _enable_tls(argv: list) -> None:
    """Take ``--tls`` out of ``argv``; make certificates for the run and tell the node
    processes (raftbench starts them with this environment) where they are."""
    argv.remove("--tls")
    import atexit
    import shutil
    import tempfile

    from fastraft.kv.certs import make_pki

    folder = tempfile.mkdtemp(prefix="fastraft-bench-pki-")
    atexit.register(shutil.rmtree, folder, True)
    make_pki(folder, "bench", range(1, 10))
    os.environ["FASTRAFT_BENCH_TLS"] = folder


if __name__ == "__main__":
    if "--tls" in sys.argv:
        _enable_tls(sys.argv)
    sys.argv[1:] = _log_store_option(sys.argv[1:])
    raftbench.main(FastraftAdapter)
