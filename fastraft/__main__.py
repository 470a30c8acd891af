"""The ``fastraft`` command.

    fastraft demo      a three-node replicated KV store on this machine (needs the kv extra)
    fastraft kv ...    the ``fastraft-kv`` command (serve a KV node, or talk to a cluster)
    fastraft --version
"""

from __future__ import annotations

import sys

from ._cli import Parser, run_command, version_text

__all__ = ["main"]

PROG = "fastraft"


def _parser() -> Parser:
    p = Parser(prog=PROG, description="Raft consensus for Python: the fastraft command.")
    p.add_argument("--version", action="version", version=version_text(PROG))
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sub.add_parser("demo", help="start a three-node KV cluster on this machine, write, kill "
                   "the leader, recover (needs the kv extra)")
    sub.add_parser("kv", help="the fastraft-kv command: serve a KV node, or talk to a cluster "
                   "(fastraft kv --help)", add_help=False)
    return p


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else list(argv)
    if args[:1] == ["kv"]:  # everything after it is fastraft-kv's
        from .kv.cli import main as kv

        return kv(args[1:])
    return run_command(PROG, lambda: _run(args))


def _run(args: list[str]) -> int:
    parsed = _parser().parse_args(args)
    if parsed.command == "demo":
        from .kv.demo import main as demo

        return demo()
    return 2  # unreachable: argparse requires a command


if __name__ == "__main__":
    sys.exit(main())
