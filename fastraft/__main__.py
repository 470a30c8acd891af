"""The ``fastraft`` command.

    fastraft demo      a three-node replicated KV store on this machine (needs the kv extra)
    fastraft kv ...    the ``fastraft-kv`` command (serve a KV node, or talk to a cluster)
"""

from __future__ import annotations

import sys

__all__ = ["main"]

USAGE = """usage: fastraft COMMAND

commands:
  demo     start a three-node KV cluster on this machine, write, kill the leader, recover
  kv ...   the fastraft-kv command: serve a KV node, or talk to a cluster (fastraft kv --help)
"""


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else list(argv)
    if args[:1] == ["demo"] and len(args) == 1:
        from .kv.demo import main as demo

        return demo()
    if args[:1] == ["kv"]:
        from .kv.cli import main as kv

        return kv(args[1:])
    if args[:1] in (["-h"], ["--help"]):
        print(USAGE, end="")
        return 0
    print(USAGE, end="", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
