"""One fastraft node as an OS process, for tests that kill processes: lmdb log store and KV
state machine in ``--dir``, Raft over TCP on its own address, controlled by JSON lines on
stdin/stdout (never the Raft network):

    {"cmd": "status"}                      -> {"id", "state", "term", "leader", "applied", "committed"}
    {"cmd": "write", "key": k, "value": v} -> {"ok": response} | {"error": name, "leader": id}
    {"cmd": "get", "key": k}               -> {"value": v} (local state machine)
    {"cmd": "writes", "first": n, "count": c, "in_flight": w, "seconds": s}
        -> one line {"acked": k, "log_id": [term, index]} per write as it is acknowledged,
           then {"done": true, "acked": a, "failed": f}: keys k<n> ... k<n+c-1> (value str(i)),
           written by w concurrent writers, for at most s seconds; stops at the first failure
    {"cmd": "exit"}                        -> {"bye": true}, then a clean shutdown

    python proc_node.py --id 1 --dir D --nodes 1=127.0.0.1:p1,2=...,3=... [--init] [--tls PKI]
                        [--log-store lmdb|rocksdb] [--snapshot-every N]

``--snapshot-every N``: build a snapshot every N applied entries and purge the log right up
to it (``max_in_snapshot_log_to_keep=0``: the purge that leaves the least to re-apply from).

``--tls PKI``: mutual TLS between the nodes, with the certificates ``fastraft.kv.certs`` wrote
into the folder PKI for cluster id "proc-test".
"""

import argparse
import json
import os
import sys
from functools import partial

import trio

from fastraft import Node
from fastraft.core import Config
from fastraft.kv import LmdbKVStateMachine, Set, encode_command
from fastraft.net import TcpNetwork, serve_raft_tcp
from fastraft.net.tcp import parse_addr
from fastraft.net.tls import TlsConfig
from fastraft.runtime import open_raft
from fastraft.storage import LmdbLogStore


def reply(obj) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


async def handle(raft, sm, msg):
    cmd = msg["cmd"]
    if cmd == "status":
        m = raft.metrics()
        return {"id": m.id, "state": m.state.value, "term": m.current_term,
                "leader": m.current_leader, "applied": m.applied_index, "committed": m.committed}
    if cmd == "write":
        try:
            with trio.fail_after(5):
                resp = await raft.client_write(encode_command(Set(msg["key"], msg["value"])))
            return {"ok": resp.data, "log_id": [resp.log_id.term, resp.log_id.index]}
        except Exception as e:  # the test decides what an error means
            return {"error": type(e).__name__, "leader": getattr(e, "leader_id", None)}
    if cmd == "get":
        return {"value": sm.get(msg["key"])}
    if cmd == "writes":
        return await pipelined_writes(raft, msg)
    raise ValueError(f"unknown command {cmd!r}")


async def pipelined_writes(raft, msg):
    """Several client writes in flight at once, each acknowledgement reported as it comes
    (a power cut lands between a write's acknowledgement and its store's sync only when
    writes overlap). Bounded by ``count`` and by ``seconds``."""
    first, count = msg["first"], msg["count"]
    nxt = [first]
    counts = {"acked": 0, "failed": 0}

    async def writer(cancel):
        while nxt[0] < first + count:  # bounded by count (and by the deadline)
            n = nxt[0]
            nxt[0] += 1
            try:
                with trio.fail_after(5):
                    resp = await raft.client_write(encode_command(Set(f"k{n}", str(n))))
            except Exception:  # the leader lost: the test sees the writes acknowledged so far
                counts["failed"] += 1
                cancel.cancel()
                return
            counts["acked"] += 1
            reply({"acked": f"k{n}", "log_id": [resp.log_id.term, resp.log_id.index]})

    with trio.move_on_after(msg["seconds"]):
        async with trio.open_nursery() as nursery:
            for _ in range(msg["in_flight"]):
                nursery.start_soon(writer, nursery.cancel_scope)
    return {"done": True, **counts}


async def main(args) -> None:
    nodes = {}
    for part in args.nodes.split(","):
        i, a = part.split("=")
        nodes[int(i)] = Node(a)
    host, port = parse_addr(nodes[args.id].addr)
    if args.log_store == "rocksdb":
        from fastraft.storage.rocksdb_log import RocksLogStore
        log_store = await RocksLogStore.open(os.path.join(args.dir, "log"))
    else:
        log_store = await LmdbLogStore.open(os.path.join(args.dir, "log"))
    sm = await LmdbKVStateMachine.open(os.path.join(args.dir, "sm"))
    tls = None
    if args.tls:
        tls = TlsConfig("proc-test", args.id, os.path.join(args.tls, "ca.pem"),
                        os.path.join(args.tls, f"node-{args.id}.pem"),
                        os.path.join(args.tls, f"node-{args.id}-key.pem"))
    stdin = trio.lowlevel.FdStream(os.dup(0))
    async with trio.open_nursery() as nursery:
        config = Config()
        if args.snapshot_every:
            config = Config(snapshot_policy_logs_since_last=args.snapshot_every,
                            max_in_snapshot_log_to_keep=0)
        async with open_raft(args.id, config, log_store=log_store, state_machine=sm,
                             network=TcpNetwork(tls=tls)) as raft:
            await nursery.start(partial(serve_raft_tcp, raft, host, port, tls=tls))
            if args.init and raft.metrics().last_log_index == 0:
                await raft.initialize(nodes)
            reply({"ready": True, "pid": os.getpid()})
            buf = b""
            while True:  # one command per line until "exit" or end of input
                chunk = await stdin.receive_some(65536)
                if not chunk:
                    break
                buf += chunk
                stop = False
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    msg = json.loads(line)
                    if msg["cmd"] == "exit":
                        stop = True
                        break
                    reply(await handle(raft, sm, msg))
                if stop:
                    break
    await stdin.aclose()
    reply({"bye": True})


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--id", type=int, required=True)
    ap.add_argument("--dir", required=True)
    ap.add_argument("--nodes", required=True)
    ap.add_argument("--init", action="store_true")
    ap.add_argument("--tls", help="folder of the cluster's certificates (fastraft.kv.certs)")
    ap.add_argument("--log-store", choices=["lmdb", "rocksdb"], default="lmdb")
    ap.add_argument("--snapshot-every", type=int, default=0)
    trio.run(main, ap.parse_args())
