"""``fastraft-kv``: run a KV node, or talk to a cluster of them.

    fastraft-kv serve --id 1 --addr 127.0.0.1:21001 --raft-addr 127.0.0.1:22001 \\
                      --store lmdb --data ./n1
    fastraft-kv --cluster 127.0.0.1:21001 init
    fastraft-kv --cluster 127.0.0.1:21001 add-learner 2 127.0.0.1:21002
    fastraft-kv --cluster 127.0.0.1:21001 change-membership 1 2 3   # also removes voters
    fastraft-kv --cluster 127.0.0.1:21001 remove-learner 4
    fastraft-kv --cluster http://127.0.0.1:21001,127.0.0.1:21002 put foo bar
    fastraft-kv get foo --cluster 127.0.0.1:21002   # linearizable; --local: this node
    fastraft-kv --cluster ... members | metrics [--json]

    fastraft-kv --cacert ca.pem --cert client-admin.pem --key client-admin-key.pem \
                --cluster https://127.0.0.1:21001 members          # a node serving HTTPS

Global options (--cluster, --timeout, --cacert, --cert, --key, -v, --log-format) go before or
after the command.
``serve`` prints one JSON line on stdout once the node serves (``{"id", "addr", "raft_addr",
"network", "pid"}``: with port 0 in an address, the port it picked), logs to stderr (at INFO
its elections, membership changes and snapshots; -v: more, -vv: debug), and stops cleanly on
SIGINT or SIGTERM. Every command ends within --timeout seconds (serve excepted). Exit status:
0 on success, 1 on any error (one line on stderr: the cluster refused, a timeout, a port in
use...), 2 on bad usage, 130 when interrupted; ``get`` exits with 1 when the key is absent.
"""

from __future__ import annotations

import argparse
import errno
import json
import logging
import os
import signal
import sys

import trio

from .._cli import EXIT_INTERRUPTED, Parser, UsageError, leaf_error, run_command, version_text
from ..errors import ConfigError, FastraftError
from ..logs import FORMATS, configure

__all__ = ["main", "build_parser", "metrics_table", "members_table", "parse_cluster"]

PROG = "fastraft-kv"
DEFAULT_CLUSTER = "127.0.0.1:21001"
DEFAULT_TIMEOUT_S = 10.0
#: How long after --timeout a command still running is cancelled (the client's own deadline
#: is --timeout: its error, which says what it last saw, is the one to report).
HARD_STOP_GRACE_S = 1.0


def parse_cluster(text: str) -> list[str]:
    """``--cluster``: comma-separated ``host:port``, ``http://host:port[/]`` or
    ``https://...`` (HTTPS is used when --cacert is given, whatever the scheme says)."""
    from .api import BadRequest, check_addr

    addrs = []
    for item in (a.strip() for a in text.split(",")):
        if not item:
            continue
        scheme, sep, rest = item.partition("://")
        if sep:
            if scheme not in ("http", "https"):
                raise UsageError(f"--cluster {item}: use host:port, http:// or https://")
            item = rest.rstrip("/")
            if "/" in item:
                raise UsageError(f"--cluster takes node addresses, not paths: {item!r}")
        try:
            addrs.append(check_addr(item, "--cluster address"))
        except BadRequest as e:
            raise UsageError(str(e)) from None
    if not addrs:
        raise UsageError("--cluster names no address")
    return addrs


def _add_global_options(p, *, after_command: bool) -> None:
    """The options every command takes. Given again after the command they win; there, their
    default is suppressed so that one given before the command stays."""
    def default(value):
        return argparse.SUPPRESS if after_command else value

    env_cluster = os.environ.get("FASTRAFT_KV_CLUSTER", DEFAULT_CLUSTER)
    shown = " (default: %s)" if after_command else ""
    p.add_argument("--cluster", default=default(env_cluster), metavar="ADDRS",
                   help="comma-separated HTTP addresses of nodes, host:port or http://host:port "
                        "(env FASTRAFT_KV_CLUSTER)" + (shown % env_cluster if shown else ""))
    p.add_argument("--timeout", type=_positive_float, default=default(DEFAULT_TIMEOUT_S),
                   metavar="SECONDS", help="the most a command may take, retries included"
                   + (shown % DEFAULT_TIMEOUT_S if shown else ""))
    p.add_argument("--cacert", dest="tls_cacert", default=default(None), metavar="FILE",
                   help="HTTPS: trust nodes whose certificate this CA signed (PEM)")
    p.add_argument("--cert", dest="tls_cert", default=default(None), metavar="FILE",
                   help="HTTPS: this client's certificate (PEM), its role decides what it may do")
    p.add_argument("--key", dest="tls_key", default=default(None), metavar="FILE",
                   help="HTTPS: this client's key (PEM)")
    p.add_argument("-v", "--verbose", action="count", default=default(0),
                   help="log more: -v info from every part, -vv debug")
    p.add_argument("--log-format", choices=FORMATS, default=default("text"),
                   help="log lines as text, or as one JSON object each"
                   + (shown % "text" if shown else ""))


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}")
    return value


def build_parser() -> Parser:
    p = Parser(prog=PROG, description=__doc__.split("\n\n")[0] + "\n\n" + __doc__.split("\n\n")[1])
    p.add_argument("--version", action="version", version=version_text(PROG))
    _add_global_options(p, after_command=False)
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help: str, description: str | None = None):
        c = sub.add_parser(name, help=help, description=description or help)
        _add_global_options(c, after_command=True)
        return c

    from .serve_options import add_serve_options
    add_serve_options(command("serve", "run a KV node until SIGINT or SIGTERM"))
    from .certs import add_parser as add_certs_parser
    add_certs_parser(sub)
    command("init", "initialize the cluster at the first --cluster address").add_argument(
        "members", nargs="*", metavar="ID=ADDR",
        help="initial members (default: that node alone); ADDR may be ADDR/RAFT_ADDR")
    a = command("add-learner", "add a node as a learner; waits until it caught up")
    a.add_argument("id", type=int)
    a.add_argument("addr")
    a.add_argument("raft_addr", nargs="?", help="default: asked from the node itself")
    c = command("change-membership", "set the voters: voters left out leave the cluster",
                "Set the voters by joint consensus (Raft §6). Every voter must be a member "
                "already (add-learner first); voters left out leave the membership, which is "
                "how a voter is removed: with voters 1 2 3 4, 'change-membership 1 2 3' "
                "removes 4.")
    c.add_argument("voters", type=int, nargs="+")
    r = command("remove-learner", "remove learners from the membership (voters: see "
                "change-membership)")
    r.add_argument("ids", type=int, nargs="+", metavar="ID")
    command("put", "set KEY to VALUE").add_argument("key")
    sub.choices["put"].add_argument("value")
    command("delete", "remove KEY").add_argument("key")
    cas = command("cas", "set KEY to VALUE if it holds EXPECTED")
    cas.add_argument("key")
    cas.add_argument("expected", nargs="?", help="omit with --absent")
    cas.add_argument("value")
    cas.add_argument("--absent", action="store_true", help="swap only if KEY is absent")
    g = command("get", "print KEY's value (linearizable unless --local)")
    g.add_argument("key")
    g.add_argument("--local", action="store_true", help="read the first --cluster node's state")
    command("members", "print the membership")
    m = command("metrics", "print every --cluster node's metrics")
    m.add_argument("--json", action="store_true", help="as JSON lines")
    return p


def main(argv: list[str] | None = None) -> int:
    return run_command(PROG, lambda: _main(argv))


def _main(argv: list[str] | None) -> int:
    args = build_parser().parse_args(argv)
    configure(args.verbose, args.log_format)
    if args.command == "serve":
        return _serve(args)
    if args.command == "certs":
        from .certs import run as run_certs
        return run_certs(args)
    args.addrs = parse_cluster(args.cluster)
    return trio.run(_client_command, args)


# -- serve ------------------------------------------------------------------------------------


def _serve(args) -> int:
    from .serve_options import node_options
    from .server import run_node

    if any((args.tls_cacert, args.tls_cert, args.tls_key)):
        raise UsageError("serve takes the node's certificate as --peer-cacert, --peer-cert "
                         "and --peer-key (--cacert, --cert and --key are a client's)")
    options = node_options(args)

    stopped_by: list[int] = []  # the signal that stopped the node, if one did

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
                    logging.getLogger("fastraft.kv.cli").info(
                        "node %d: signal %d, stopping", options.node_id, signum,
                        extra={"node_id": options.node_id})
                    stopped_by.append(signum)
                    nursery.cancel_scope.cancel()
                    break

    try:
        trio.run(serve)
    except BaseException as error:
        e = leaf_error(error)
        if isinstance(e, OSError) and e.errno == errno.EADDRINUSE:
            raise ConfigError(f"an address is in use already (--addr {options.addr}, "
                              f"--raft-addr {options.raft_addr}): {e.strerror}") from None
        raise
    # Ctrl-C reads as an interruption, as shells report it (128 + SIGINT); SIGTERM is a
    # service manager's ordinary stop
    return EXIT_INTERRUPTED if stopped_by == [signal.SIGINT] else 0


# -- client commands ----------------------------------------------------------------------------


async def _client_command(args) -> int:
    """Every client command, bounded as a whole by --timeout (admin ones included): the
    client stops retrying at --timeout, and whatever still runs is cancelled
    ``HARD_STOP_GRACE_S`` later."""
    from .client import KVClient  # imported and built before the clock starts: the bound is
    # for waiting on the cluster, not for loading the HTTP client (slow on a busy machine)

    # the client gives up at --timeout and says what it last saw; the hard stop a moment
    # later is for anything that would not end on its own
    timeout = args.timeout
    async with KVClient(args.addrs, deadline_s=timeout, admin_timeout_s=timeout,
                        request_timeout_s=min(5.0, timeout), tls=_client_tls(args)) as client:
        with trio.move_on_after(args.timeout + HARD_STOP_GRACE_S) as scope:
            return await _run_client_command(args, client)
    assert scope.cancelled_caught
    raise ClientTimeout(f"{args.command}: no answer within --timeout {args.timeout:g} s from "
                        f"{', '.join(args.addrs)}")


def _client_tls(args):
    """The ``ssl`` context of --cacert/--cert/--key, None without --cacert."""
    from .client import client_tls_context

    if args.tls_cacert is None:
        if args.tls_cert or args.tls_key:
            raise UsageError("--cert and --key need --cacert (the CA the nodes' certificates "
                             "come from)")
        if args.cluster.lstrip().startswith("https://"):
            raise UsageError("https:// in --cluster needs --cacert")
        return None
    try:
        return client_tls_context(args.tls_cacert, args.tls_cert, args.tls_key)
    except ValueError as e:
        raise UsageError(str(e)) from None


class ClientTimeout(FastraftError, TimeoutError):
    """A client command did not finish within --timeout."""


class NotInitialized(FastraftError):
    """No node named by --cluster belongs to an initialized cluster."""


async def _require_initialized(client, addrs: list[str], timeout_s: float) -> None:
    """Refuse at once (NotInitialized) when every node of ``addrs`` that answers has no
    membership; when none answers, let the command itself report it."""
    answers: list[dict] = []

    async def ask(addr: str) -> None:
        with trio.move_on_after(timeout_s):
            try:
                answers.append(await client.metrics(addr))
            except FastraftError:
                pass

    async with trio.open_nursery() as nursery:
        for addr in addrs:
            nursery.start_soon(ask, addr)
    if answers and not any(a["membership_config"]["membership"]["configs"] for a in answers):
        raise NotInitialized(f"the cluster is not initialized (no membership on "
                             f"{', '.join(addrs)}): run '{PROG} init' first")


async def _run_client_command(args, client) -> int:
    addrs = args.addrs
    timeout = args.timeout
    cmd = args.command
    if cmd in ("put", "delete", "cas") or (cmd == "get" and not args.local):
        await _require_initialized(client, addrs, min(1.0, timeout / 4))
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
    elif cmd == "remove-learner":
        answer = await client.remove_learner(args.ids)
        print(f"learners {sorted(args.ids)} removed (log index {answer['log_id']['index']})")
    elif cmd in ("put", "delete", "cas"):
        if cmd == "put":
            result = await client.set(args.key, args.value)
        elif cmd == "delete":
            result = await client.delete(args.key)
        else:
            if args.absent == (args.expected is not None):
                raise UsageError("cas takes EXPECTED or --absent")
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
        raise UsageError(f"init: expected ID=ADDR, got {text!r}")
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
