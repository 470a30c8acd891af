#!/usr/bin/env python3
"""Where one KV write's time goes: timestamps along its path on the leader, from the request's
bytes read to the answer's bytes written, with the load generator's own latency beside them.

    python benchmarks/kv/write_path.py [--clients 1] [--duration 10] [--base-port 28000]

Three ``fastraft-kv serve`` processes (lmdb stores, TCP between nodes) start with probes
installed at interpreter start-up (a ``sitecustomize`` module written to a temporary folder
on their PYTHONPATH): each probe appends (name, ``perf_counter_ns``) to a list in memory,
written to a file when the node exits. The probes, in path order:

* ``rx``: the HTTP server read a request's bytes (``_SocketIO.receive`` returned);
* ``w0`` / ``w1``: ``KVService.write`` began / returned;
* ``sub0`` / ``sub1``: ``RaftRuntime.submit_write`` began / returned (a lone writer's inline
  round: the proposal, the AppendEntries sends, the leader's own append handed to its store);
* ``psend``: a message handed to a peer's sender; ``ap0``: an append handed to the store;
* ``ack``: a peer's response reached the runtime; ``fl0`` / ``fl1``: the leader's own flush
  reported / its flush round done (the commit, once a follower acknowledged too);
* ``apl0``: the applier took the batch; ``sm0`` / ``sm1``: the state machine's apply;
  ``onap``: the runtime settling the waiting writes;
* ``tx0`` / ``tx1``: the answer's send began / returned.

With one client the requests do not overlap, so each request's probes are read as offsets
from its ``rx``; the median offset of each probe is printed (a probe seen in fewer than a
third of the requests, a heartbeat's say, is left out). Followers: the median time from a
peer's request reaching the runtime (``freq``) to its answer (``fans``). Medians only: on a
shared machine any single request may be descheduled anywhere.

Bounds: the run lasts warm-up + duration (plus the cluster's start and stop); each node
keeps at most 3 million probe records.
"""

from __future__ import annotations

import argparse
import collections
import glob
import json
import os
import shutil
import statistics
import sys
import tempfile
import threading

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from benchmarks import loadgen  # noqa: E402
from benchmarks.kv_suite import _leader  # noqa: E402

PROBES = '''
import os
_out = os.environ.get("FASTRAFT_WRITE_PATH_PROBES")
if _out:
    import atexit, functools, inspect, sys, time
    _ns, _buf, _MAX = time.perf_counter_ns, [], 3_000_000

    def _dump():
        with open(f"{_out}.{os.getpid()}.txt", "w") as f:
            f.write(" ".join(sys.argv) + "\\n")
            f.writelines(f"{c} {t}\\n" for c, t in _buf)
    atexit.register(_dump)

    def _wrap(cls, name, before=None, after=None):
        orig = getattr(cls, name)
        if inspect.iscoroutinefunction(orig):
            async def probed(*a, **k):
                if before and len(_buf) < _MAX: _buf.append((before, _ns()))
                r = await orig(*a, **k)
                if after and len(_buf) < _MAX: _buf.append((after, _ns()))
                return r
        else:
            def probed(*a, **k):
                if before and len(_buf) < _MAX: _buf.append((before, _ns()))
                r = orig(*a, **k)
                if after and len(_buf) < _MAX: _buf.append((after, _ns()))
                return r
        setattr(cls, name, functools.wraps(orig)(probed))

    from fastraft.kv import http_server, service, lmdb_state_machine as sm
    from fastraft.runtime import applier, inbound, log_writer, node, peers
    _wrap(http_server._SocketIO, "receive", after="rx")
    _wrap(http_server._SocketIO, "send_all", before="tx0", after="tx1")
    _wrap(service.KVService, "write", before="w0", after="w1")
    _wrap(node.RaftRuntime, "submit_write", before="sub0", after="sub1")
    _wrap(node.RaftRuntime, "_on_peer_response", before="ack")
    _wrap(node.RaftRuntime, "submit_request", before="freq")
    _wrap(node.RaftRuntime, "_on_flushed", before="fl0", after="fl1")
    _wrap(node.RaftRuntime, "_on_applied", before="onap")
    _wrap(log_writer.LogWriter, "_issue_nowait", before="ap0")
    _wrap(peers.PeerSender, "send", before="psend")
    _wrap(applier.Applier, "_apply_batch", before="apl0")
    _wrap(sm.LmdbKVStateMachine, "apply", before="sm0", after="sm1")
    _wrap(inbound.InboundReplies, "answer", before="fans")
'''


def start_cluster(workdir: str, base_port: int, env: dict) -> dict:
    """Three probed KV nodes, formed through the API, kept up by trio in a background thread
    until ``state["down"]`` is set; returns that state (endpoints, pids, trio token)."""
    import trio

    state: dict = {}
    up = threading.Event()

    async def serve() -> None:
        from fastraft.kv.client import KVClient
        from fastraft.kv.local_cluster import LocalCluster, NodeProcess

        state["token"] = trio.lowlevel.current_trio_token()
        state["down"] = trio.Event()
        async with LocalCluster(workdir, store="lmdb", network="tcp", env=env) as cluster:
            for i in (1, 2, 3):
                cluster.nodes[i] = NodeProcess(
                    i, f"127.0.0.1:{base_port + i}", f"127.0.0.1:{base_port + 10 + i}",
                    os.path.join(workdir, f"n{i}"), os.path.join(workdir, f"n{i}.log"))
                await cluster.restart(i)
            addrs = cluster.addrs()
            async with KVClient(addrs, deadline_s=30) as client:
                await client.init(addr=addrs[0])
                for i in (2, 3):
                    await client.add_learner(i, addrs[i - 1])
                await client.change_membership([1, 2, 3])
            state["endpoints"] = [f"http://{a}" for a in addrs]
            state["pids"] = [cluster.nodes[i].pid for i in (1, 2, 3)]
            up.set()
            await state["down"].wait()

    def main() -> None:
        try:
            trio.run(serve)
        except BaseException as e:  # reported below
            state["error"] = e
            up.set()

    state["thread"] = threading.Thread(target=main, daemon=True)
    state["thread"].start()
    if not up.wait(120) or "error" in state:
        raise RuntimeError(f"the KV cluster did not start: {state.get('error')}")
    return state


def stop_cluster(state: dict) -> None:
    import trio

    trio.from_thread.run_sync(state["down"].set, trio_token=state["token"])
    state["thread"].join(60)


def leader_offsets(events: list[tuple[str, int]]) -> tuple[int, dict[str, float]]:
    """(requests, {probe: median µs after rx}) over the requests from ``rx`` to ``tx1``;
    a probe seen n times in one request is named ``probe#n`` from its second time."""
    offsets: dict[str, list[int]] = collections.defaultdict(list)
    requests = 0
    i = 0
    while i < len(events):  # each step moves i forward
        if events[i][0] != "rx":
            i += 1
            continue
        t0, seen, j = events[i][1], {}, i + 1
        while j < len(events) and events[j][0] != "rx":
            name, n = events[j][0], 1
            key = name
            while key in seen:
                n += 1
                key = f"{name}#{n}"
            seen[key] = events[j][1] - t0
            if name == "tx1":
                break
            j += 1
        if "w0" in seen and "tx1" in seen:  # a write, answered
            requests += 1
            for key, v in seen.items():
                offsets[key].append(v)
        i = j
    return requests, {k: statistics.median(v) / 1e3 for k, v in offsets.items()
                      if len(v) >= requests / 3}


def follower_answer_us(events: list[tuple[str, int]]) -> list[int]:
    out, start = [], None
    for name, t in events:
        if name == "freq":
            start = t
        elif name == "fans" and start is not None:
            out.append(t - start)
            start = None
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clients", type=int, default=1)
    ap.add_argument("--duration", type=float, default=10.0)
    ap.add_argument("--warmup", type=float, default=2.0)
    ap.add_argument("--base-port", type=int, default=int(os.environ.get("RAFTBENCH_BASE_PORT",
                                                                          "28000")))
    ap.add_argument("--workdir", default=None, help="default: a temporary folder, removed")
    args = ap.parse_args()
    workdir = args.workdir or tempfile.mkdtemp(prefix="fastraft-write-path-")
    probes_dir = os.path.join(workdir, "probes")
    os.makedirs(probes_dir, exist_ok=True)
    with open(os.path.join(probes_dir, "sitecustomize.py"), "w") as f:
        f.write(PROBES)
    prefix = os.path.join(workdir, "probes-out")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [probes_dir] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]),
        FASTRAFT_WRITE_PATH_PROBES=prefix)
    try:
        state = start_cluster(os.path.join(workdir, "cluster"), args.base_port, env)
        try:
            leader = _leader("fastraft", state["endpoints"])
            loadgen.preload(leader, "fastraft", 2000)
            r = loadgen.run_point(leader, "fastraft", "write", args.clients, args.warmup,
                                  args.duration, 2000, state["pids"])
        finally:
            stop_cluster(state)
        lat = sorted(r["latency_ns"])
        print(json.dumps({"clients": args.clients, "writes_s": round(r["ops_s"]),
                          "p50_ms": lat[len(lat) // 2] / 1e6 if lat else None,
                          "p99_ms": lat[int(len(lat) * 0.99)] / 1e6 if lat else None,
                          "load_avg": os.getloadavg()[0]}))
        for path in sorted(glob.glob(prefix + ".*.txt")):
            with open(path) as f:
                argv = f.readline().split()
                events = [(name, int(t)) for name, t in (line.split() for line in f)]
            node_id = argv[argv.index("--id") + 1] if "--id" in argv else "?"
            if sum(1 for name, _ in events if name == "rx") > 10:
                requests, offsets = leader_offsets(events)
                print(f"node {node_id} (serving the load): {requests} writes, median µs "
                      "after the request's bytes were read:")
                for name, us in sorted(offsets.items(), key=lambda kv: kv[1]):
                    print(f"  {name:8s} {us:9.1f}")
            else:
                answers = sorted(follower_answer_us(events))
                if answers:
                    print(f"node {node_id}: peer request to answer, median "
                          f"{answers[len(answers) // 2] / 1e3:.1f} µs over {len(answers)}")
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
