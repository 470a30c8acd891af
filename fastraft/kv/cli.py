"""``fastraft-kv``: run a KV node, or talk to a cluster of them.

    fastraft-kv serve --id 1 --addr 127.0.0.1:21001 --raft-addr 127.0.0.1:22001 \\
                      --store lmdb --data ./n1
    fastraft-kv --cluster 127.0.0.1:21001 init
    fastraft-kv --cluster 127.0.0.1:21001 add-learner 2 127.0.0.1:21002
    fastraft-kv --cluster 127.0.0.1:21001 change-membership 1 2 3
    fastraft-kv --cluster 127.0.0.1:21001,127.0.0.1:21002 put foo bar
    fastraft-kv --cluster 127.0.0.1:21002 get foo          # linearizable; --local: this node
    fastraft-kv --cluster ... members | metrics [--json]

``serve`` prints one JSON line on stdout once the node serves (``{"id", "addr", "raft_addr",
"network", "pid"}``: with port 0 in an address, the port it picked), logs to stderr, and
stops cleanly on SIGINT or SIGTERM. Client commands exit with status 0 on success, 1 when
the cluster answered with an error (printed on stderr), 2 on bad usage; ``get`` exits with 1
when the key is absent.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys

import trio

from ..core import Config
from ..errors import FastraftError

__all__ = ["main", "metrics_table", "members_table"]

DEFAULT_CLUSTER = "127.0.0.1:21001"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="fastraft-kv", description=__doc__.split("\n\n")[0])
    p.add_argument("--cluster", default=os.environ.get("FASTRAFT_KV_CLUSTER", DEFAULT_CLUSTER),
                   help="comma-separated HTTP addresses of nodes (env FASTRAFT_KV_CLUSTER; "
                        f"default {DEFAULT_CLUSTER})")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds a command may take")
    p.add_argument("-v", "--verbose", action="count", default=0, help="log more (-vv: debug)")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    s = sub.add_parser("serve", help="run a KV node until SIGINT or SIGTERM")
    s.add_argument("--id", type=int, required=True, help="this node's id (a positive integer)")
    s.add_argument("--addr", required=True, help="HTTP address host:port (port 0: any free one)")
    s.add_argument("--raft-addr", help="raft address host:port for the tcp network")
    s.add_argument("--network", choices=("tcp", "http"), default="tcp",
                   help="raft RPCs over the built-in TCP network (default) or over HTTP on --addr")
    s.add_argument("--store", choices=("memory", "lmdb"), default="memory")
    s.add_argument("--data", help="data directory (lmdb store)")
    s.add_argument("--force-new-store", action="store_true",
                   help="start even if this node's data directory lost its stores (unsafe)")
    # etcd's defaults, as the engine's: a node shares its machine with other processes, and a
    # busy moment must not cost the cluster its leader
    s.add_argument("--heartbeat-ms", type=int, default=100)
    s.add_argument("--election-timeout-ms", type=int, nargs=2, default=(1000, 2000),
                   metavar=("MIN", "MAX"))
    s.add_argument("--snapshot-every", type=int, default=5000,
                   help="build a snapshot every this many applied entries (0: never)")
    # security: mutual TLS between nodes (certificates from `fastraft-kv certs` or your CA)
    sec = s.add_argument_group("security")
    sec.add_argument("--cluster-id", help="the cluster id the peer certificates name")
    sec.add_argument("--peer-cacert", help="CA of the cluster's node certificates (PEM)")
    sec.add_argument("--peer-cert", help="this node's certificate (PEM)")
    sec.add_argument("--peer-key", help="this node's key (PEM)")
    sec.add_argument("--insecure", action="store_true",
                     help="allow addresses other than loopback where nothing authenticates")

    from .certs import add_parser as add_certs_parser
    add_certs_parser(sub)
    sub.add_parser("init", help="initialize the cluster at the first --cluster address").add_argument(
        "members", nargs="*", metavar="ID=ADDR",
        help="initial members (default: that node alone); ADDR may be ADDR/RAFT_ADDR")
    a = sub.add_parser("add-learner", help="add a node as a learner; waits until it caught up")
    a.add_argument("id", type=int)
    a.add_argument("addr")
    a.add_argument("raft_addr", nargs="?", help="default: asked from the node itself")
    c = sub.add_parser("change-membership", help="set the voters (others leave)")
    c.add_argument("voters", type=int, nargs="+")
    sub.add_parser("put", help="set KEY to VALUE").add_argument("key")
    sub.choices["put"].add_argument("value")
    sub.add_parser("delete", help="remove KEY").add_argument("key")
    cas = sub.add_parser("cas", help="set KEY to VALUE if it holds EXPECTED")
    cas.add_argument("key")
    cas.add_argument("expected", nargs="?", help="omit with --absent")
    cas.add_argument("value")
    cas.add_argument("--absent", action="store_true", help="swap only if KEY is absent")
    g = sub.add_parser("get", help="print KEY's value (linearizable unless --local)")
    g.add_argument("key")
    g.add_argument("--local", action="store_true", help="read the first --cluster node's state")
    sub.add_parser("members", help="print the membership")
    m = sub.add_parser("metrics", help="print every --cluster node's metrics")
    m.add_argument("--json", action="store_true", help="as JSON lines")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    level = (logging.WARNING, logging.INFO, logging.DEBUG)[min(args.verbose, 2)]
    logging.basicConfig(level=level, stream=sys.stderr,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    # httpx logs every request at INFO: only with -vv
    logging.getLogger("httpx").setLevel(level if args.verbose >= 2 else logging.WARNING)
    try:
        if args.command == "serve":
            return _serve(args)
        if args.command == "certs":
            from .certs import run as run_certs
            return run_certs(args)
        return trio.run(_client_command, args)
    except ImportError as e:
        print(f"fastraft-kv: {e.name or e} is missing; install the extra: "
              "pip install 'fastraft[kv]'", file=sys.stderr)
        return 2
    except FastraftError as e:
        print(f"fastraft-kv: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


# -- serve ------------------------------------------------------------------------------------


def _serve(args) -> int:
    from ..net.tls import TlsConfig
    from .server import NodeOptions, run_node

    lo, hi = args.election_timeout_ms
    tls_args = (args.cluster_id, args.peer_cacert, args.peer_cert, args.peer_key)
    if any(tls_args) and not all(tls_args):
        print("fastraft-kv: peer TLS needs --cluster-id, --peer-cacert, --peer-cert and "
              "--peer-key together", file=sys.stderr)
        return 2
    options = NodeOptions(
        node_id=args.id, addr=args.addr, raft_addr=args.raft_addr, network=args.network,
        store=args.store, data_dir=args.data, force_new_store=args.force_new_store,
        insecure=args.insecure,
        peer_tls=TlsConfig(args.cluster_id, args.id, *tls_args[1:]) if all(tls_args) else None,
        config=Config(heartbeat_interval_ms=args.heartbeat_ms, election_timeout_min_ms=lo,
                      election_timeout_max_ms=hi,
                      snapshot_policy_logs_since_last=args.snapshot_every)).check()

    async def serve() -> None:
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async with trio.open_nursery() as nursery:
                async def node(task_status=trio.TASK_STATUS_IGNORED):
                    try:
                        await run_node(options, task_status=task_status)
                    finally:
                        nursery.cancel_scope.cancel()

                info = await nursery.start(node)
                print(json.dumps({**info.to_json(), "pid": os.getpid()}), flush=True)
                async for signum in signals:  # the first one stops the node
                    logging.getLogger("fastraft.kv").info("signal %d: stopping", signum)
                    nursery.cancel_scope.cancel()
                    break

    trio.run(serve)
    return 0


# -- client commands ----------------------------------------------------------------------------


async def _client_command(args) -> int:
    from .client import KVClient

    addrs = [a.strip() for a in args.cluster.split(",") if a.strip()]
    async with KVClient(addrs, deadline_s=args.timeout) as client:
        cmd = args.command
        if cmd == "init":
            members = [_member(m) for m in args.members] or None
            await client.init(members)
            print("initialized")
        elif cmd == "add-learner":
            answer = await client.add_learner(args.id, args.addr, args.raft_addr)
            print(f"node {args.id} added as a learner at log index {answer['log_id']['index']}")
        elif cmd == "change-membership":
            answer = await client.change_membership(args.voters)
            print(f"voters are now {sorted(args.voters)} (log index {answer['log_id']['index']})")
        elif cmd in ("put", "delete", "cas"):
            if cmd == "put":
                result = await client.set(args.key, args.value)
            elif cmd == "delete":
                result = await client.delete(args.key)
            else:
                if args.absent == (args.expected is not None):
                    print("fastraft-kv: cas takes EXPECTED or --absent", file=sys.stderr)
                    return 2
                result = await client.compare_and_swap(args.key, args.expected, args.value)
            print(json.dumps({"log_id": {"term": result.log_id.term, "index": result.log_id.index},
                              **result.data}))
        elif cmd == "get":
            if args.local:
                value = await client.read(args.key, addr=addrs[0])
            else:
                value = await client.consistent_read(args.key)
            if value is None:
                print(f"{args.key}: not found", file=sys.stderr)
                return 1
            print(value)
        elif cmd == "members":
            print(members_table(await client.metrics()))
        elif cmd == "metrics":
            rows = []
            for addr in addrs:
                try:
                    rows.append((addr, await client.metrics(addr)))
                except FastraftError as e:
                    rows.append((addr, e))
            if args.json:
                for addr, m in rows:
                    print(json.dumps(m if isinstance(m, dict) else {"addr": addr, "error": str(m)}))
            else:
                print(metrics_table(rows))
    return 0


def _member(text: str):
    node_id, sep, addr = text.partition("=")
    if not sep or not node_id.isdigit():
        raise SystemExit(f"fastraft-kv: expected ID=ADDR, got {text!r}")
    addr, _, raft_addr = addr.partition("/")
    return (int(node_id), addr, raft_addr) if raft_addr else (int(node_id), addr)


def _table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(r[i])) for r in [header] + rows) for i in range(len(header))]
    lines = ["  ".join(str(v).ljust(w) for v, w in zip(r, widths)).rstrip()
             for r in [header] + rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def members_table(metrics: dict) -> str:
    """The membership in ``metrics`` (JSON of one node) as a table."""
    config = metrics["membership_config"]["membership"]
    voters = set().union(*[set(c) for c in config["configs"]]) if config["configs"] else set()
    rows = []
    for node_id, node in config["nodes"].items():
        nid = int(node_id)
        role = "voter" if nid in voters else "learner"
        leader = "leader" if nid == metrics.get("current_leader") else ""
        rows.append([node_id, role, node["addr"], node["raft_addr"], leader])
    joint = " (joint: " + " -> ".join(str(c) for c in config["configs"]) + ")" \
        if len(config["configs"]) > 1 else ""
    return _table(["id", "role", "addr", "raft_addr", ""], rows) + joint


def metrics_table(rows: list) -> str:
    """One line per (addr, metrics JSON or an exception) pair."""
    header = ["node", "addr", "state", "term", "leader", "last log", "committed", "applied",
              "voters", "learners"]
    out = []
    for addr, m in rows:
        if not isinstance(m, dict):
            out.append(["?", addr, "down", "-", "-", "-", "-", "-", "-", "-"])
            continue
        membership = m["membership_config"]["membership"]
        applied = m["last_applied"]["index"] if m["last_applied"] else 0
        out.append([m["id"], addr, m["state"], m["current_term"], m["current_leader"] or "-",
                    m["last_log_index"], m["committed"], applied,
                    " -> ".join(",".join(map(str, c)) for c in membership["configs"]) or "-",
                    ",".join(map(str, membership["learners"])) or "-"])
    return _table(header, [[str(v) for v in r] for r in out])


if __name__ == "__main__":
    sys.exit(main())
