"""One fastraft node as an OS process for the load test: default ``Config``, lmdb log store
and KV state machine in ``--dir``, Raft over TCP, controlled by JSON lines on stdin/stdout:

    {"cmd": "status"} -> {"id", "state", "term", "leader", "committed", "applied",
                          "snapshots_sent", "elections", "max_stall_s"}
    {"cmd": "load", "in_flight": n, "seconds": s}
        -> {"started": true} at once; n tasks each write (client_write, 100-byte values) one
           at a time until s seconds passed; then {"done": writes, "errors": {name: count}}
    {"cmd": "exit"} -> {"bye": true}

``snapshots_sent`` counts InstallSnapshot requests this node sent (its network's own count);
``elections`` counts the times this node became a candidate; ``max_stall_s`` is the longest its
event loop was late waking a 10 ms sleep (what delays its heartbeats).

``LOAD_NODE_CONFIG`` (JSON) overrides Config fields, for experiments; the test uses none.

    python load_node.py --id 1 --dir D --nodes 1=127.0.0.1:p1,2=...,3=... [--init]
"""

import argparse
import json
import os
import sys

import trio

from fastraft import Node
from fastraft.core import Config
from fastraft.kv import LmdbKVStateMachine, Set, encode_command
from fastraft.messages import InstallSnapshotRequest
from fastraft.net import TcpNetwork, serve_raft_tcp
from fastraft.net.tcp import TcpClient, parse_addr
from fastraft.runtime import open_raft
from fastraft.errors import RaftShutdown
from fastraft.runtime.metrics import WaitTimeout
from fastraft.storage import LmdbLogStore


class CountingClient(TcpClient):
    def _count(self, request):
        if type(request) is InstallSnapshotRequest:
            self.network.snapshots_sent += 1

    async def start(self, request):
        self._count(request)
        return await super().start(request)

    def start_nowait(self, request):
        reply = super().start_nowait(request)
        if reply is not None:
            self._count(request)
        return reply


class CountingNetwork(TcpNetwork):
    """The TCP network, counting the InstallSnapshot requests it carries."""

    def __init__(self) -> None:
        super().__init__()
        self.snapshots_sent = 0

    def client(self, target_id, node):
        return CountingClient(self, target_id, node)


def reply(obj) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


async def load(raft, in_flight: int, seconds: float) -> None:
    done = 0
    errors: dict[str, int] = {}
    value = "v" * 100
    deadline = trio.current_time() + seconds

    async def writer(k: int) -> None:
        nonlocal done
        n = 0
        while trio.current_time() < deadline and n < 10_000_000:
            n += 1
            try:
                await raft.client_write(encode_command(Set(f"k{k}", value)))
                done += 1
            except Exception as e:  # counted and reported: the test asserts there are none
                name = type(e).__name__
                errors[name] = errors.get(name, 0) + 1
                await trio.sleep(0.01)

    async with trio.open_nursery() as nursery:
        for k in range(in_flight):
            nursery.start_soon(writer, k)
            if k % 500 == 499:
                await trio.sleep(0)  # clients arrive in groups, not in one 10,000-task step
    reply({"done": done, "errors": errors})


async def main(args) -> None:
    nodes = {}
    for part in args.nodes.split(","):
        i, a = part.split("=")
        nodes[int(i)] = Node(a)
    host, port = parse_addr(nodes[args.id].addr)
    log_store = await LmdbLogStore.open(os.path.join(args.dir, "log"))
    sm = await LmdbKVStateMachine.open(os.path.join(args.dir, "sm"))
    network = CountingNetwork()
    stdin = trio.lowlevel.FdStream(os.dup(0))
    elections = 0
    async with trio.open_nursery() as nursery:
        config = Config(**json.loads(os.environ.get("LOAD_NODE_CONFIG", "{}"))).validate()
        async with open_raft(args.id, config, log_store=log_store, state_machine=sm,
                             network=network) as raft:
            await nursery.start(serve_raft_tcp, raft, host, port)
            if args.init and raft.metrics().last_log_index == 0:
                await raft.initialize(nodes)

            async def count_elections() -> None:
                nonlocal elections
                state = None
                while True:
                    try:
                        m = await raft.wait(3600.0).metrics(lambda m: m.state != state,
                                                            "state change")
                    except WaitTimeout:
                        continue
                    except RaftShutdown:
                        return  # the node is shutting down: nothing left to count
                    state = m.state
                    if state.value in ("candidate", "pre_candidate"):
                        elections += 1  # an election timer fired

            nursery.start_soon(count_elections)
            stall = [0.0]

            async def watch_stalls() -> None:  # how late a 10 ms sleep wakes up: loop stalls
                while True:
                    t0 = trio.current_time()
                    await trio.sleep(0.01)
                    stall[0] = max(stall[0], trio.current_time() - t0 - 0.01)

            nursery.start_soon(watch_stalls)
            reply({"ready": True, "pid": os.getpid()})
            buf = b""
            stop = False
            while not stop:
                chunk = await stdin.receive_some(65536)
                if not chunk:
                    break
                buf += chunk
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    msg = json.loads(line)
                    if msg["cmd"] == "exit":
                        stop = True
                        break
                    if msg["cmd"] == "status":
                        m = raft.metrics()
                        reply({"id": m.id, "state": m.state.value, "term": m.current_term,
                               "leader": m.current_leader, "committed": m.committed,
                               "applied": m.last_applied.index if m.last_applied else 0,
                               "snapshots_sent": network.snapshots_sent,
                               "elections": elections, "max_stall_s": round(stall[0], 3)})
                    elif msg["cmd"] == "load":
                        nursery.start_soon(load, raft, int(msg["in_flight"]),
                                           float(msg["seconds"]))
                        reply({"started": True})
                    else:
                        raise ValueError(f"unknown command {msg['cmd']!r}")
            nursery.cancel_scope.cancel()
    await stdin.aclose()
    reply({"bye": True})


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--id", type=int, required=True)
    ap.add_argument("--dir", required=True)
    ap.add_argument("--nodes", required=True)
    ap.add_argument("--init", action="store_true")
    trio.run(main, ap.parse_args())
