#!/usr/bin/env python3
"""What TLS costs one network hop, without Raft or storage: a ``TcpNetwork`` client and
``serve_raft_tcp`` on 127.0.0.1 in one process, a node behind the server that answers every
AppendEntries at once; plain and TLS alternated A B A B, medians and ratios.

    python benchmarks/cluster/tls_hop.py [--rounds 3] [--requests 3000] [--window 256]

Per round and case: the median round trip of one request at a time (µs), then requests/s with
``--window`` in flight (``--pipelined`` requests). ``tls_cost.py`` measures the same on the
whole cluster (three processes, synced lmdb log).
"""

import argparse
import statistics
import tempfile
import time

import trio

from fastraft import Node
from fastraft.kv.certs import make_pki
from fastraft.messages import AppendEntriesRequest, AppendEntriesResponse
from fastraft.net import PipelinedHandler, Reply, TcpNetwork, serve_raft_tcp
from fastraft.net.tls import TlsConfig


class AnswerAtOnce(PipelinedHandler):
    async def submit_request(self, req):
        reply = Reply()
        reply.set_result(AppendEntriesResponse(term=1, sender=2, success=True, match_index=0,
                                               seq=req.seq))
        return reply


def request(seq: int) -> AppendEntriesRequest:
    return AppendEntriesRequest(term=1, sender=1, prev_log_term=0, prev_log_index=0,
                                leader_commit=0, seq=seq, entries=[])


async def one_case(server_tls, client_tls, args) -> tuple[float, float]:
    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(lambda task_status: serve_raft_tcp(
            AnswerAtOnce(), "127.0.0.1", 0, tls=server_tls, task_status=task_status))
        node = Node(f"127.0.0.1:{listeners[0].socket.getsockname()[1]}")
        async with TcpNetwork(tls=client_tls).client(2, node) as client:
            await (await client.start(request(0))).result()  # connected
            rtts = []
            for i in range(args.requests):  # bounded
                started = time.perf_counter()
                await (await client.start(request(i))).result()
                rtts.append(time.perf_counter() - started)
            window = trio.Semaphore(args.window)
            started = time.perf_counter()

            async def wait(reply):
                await reply.result()
                window.release()

            async with trio.open_nursery() as waiters:
                for i in range(args.pipelined):  # bounded
                    await window.acquire()
                    waiters.start_soon(wait, await client.start(request(i)))
            per_s = args.pipelined / (time.perf_counter() - started)
        nursery.cancel_scope.cancel()
    return statistics.median(rtts) * 1e6, per_s


def main(argv=None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--requests", type=int, default=3000)
    ap.add_argument("--window", type=int, default=256)
    ap.add_argument("--pipelined", type=int, default=20000)
    args = ap.parse_args(argv)
    got = {"plain": [], "tls": []}
    with tempfile.TemporaryDirectory(prefix="fastraft-tls-hop-") as folder:
        pki = make_pki(folder, "c1", [1, 2])
        tls = (TlsConfig("c1", 2, pki.ca, *pki.nodes[2]), TlsConfig("c1", 1, pki.ca, *pki.nodes[1]))
        for _ in range(args.rounds):
            got["plain"].append(trio.run(one_case, None, None, args))
            got["tls"].append(trio.run(one_case, *tls, args))
    med = {k: (statistics.median(r[0] for r in v), statistics.median(r[1] for r in v))
           for k, v in got.items()}
    print("| case | plain | TLS | TLS / plain |\n|---|---|---|---|")
    print(f"| round trip, one at a time, µs (median of {args.rounds}) | {med['plain'][0]:.1f} | "
          f"{med['tls'][0]:.1f} | {med['tls'][0] / med['plain'][0]:.2f} |")
    print(f"| requests/s, {args.window} in flight (median of {args.rounds}) | {med['plain'][1]:.0f} | "
          f"{med['tls'][1]:.0f} | {med['tls'][1] / med['plain'][1]:.2f} |")
    print("per round:", {k: [(round(a, 1), round(b)) for a, b in v] for k, v in got.items()})


if __name__ == "__main__":
    main()
