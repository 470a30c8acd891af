"""What the commands (``fastraft``, ``fastraft-kv``) share: a parser whose usage errors are
one line, help that shows defaults, ``--version``, and turning any error that ends a command
into one line on stderr and an exit status:

    0     done
    1     any error (the cluster refused, a timeout, a port in use, a missing extra...)
    2     bad usage (argparse's own convention)
    130   interrupted (Ctrl-C: 128 + SIGINT, as shells report it)

trio wraps errors raised in nurseries in exception groups; a command's user sees the error
inside, never a group's traceback (``leaf_error``).
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Callable, NoReturn

from .errors import FastraftError

try:  # Python 3.11+
    from builtins import BaseExceptionGroup
except ImportError:  # 3.10: the backport (a declared dependency there)
    from exceptiongroup import BaseExceptionGroup

__all__ = ["EXIT_ERROR", "EXIT_USAGE", "EXIT_INTERRUPTED", "Parser", "HelpFormatter",
           "UsageError", "leaf_error", "run_command", "version_text"]

EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

log = logging.getLogger("fastraft.cli")


class UsageError(Exception):
    """The command line asks for something that cannot be: exit 2, one line."""


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Help that shows each option's default and keeps the description's line breaks."""


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line (``prog: error (see prog --help)``)."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: {message} (see {self.prog} --help)\n")


def version_text(prog: str) -> str:
    import fastraft

    core = "compiled" if fastraft.accelerated() else "pure-Python"
    py = ".".join(map(str, sys.version_info[:3]))
    return f"{prog} {fastraft.__version__} ({core} core, Python {py})"


def leaf_error(error: BaseException) -> BaseException:
    """The error a user should see: inside exception groups, a KeyboardInterrupt if there is
    one, else the first error that is not a cancellation."""
    if not isinstance(error, BaseExceptionGroup):
        return error
    leaves: list[BaseException] = []

    def walk(e: BaseException) -> None:
        if isinstance(e, BaseExceptionGroup):
            for inner in e.exceptions:
                walk(inner)
        else:
            leaves.append(e)

    walk(error)
    for leaf in leaves:
        if isinstance(leaf, KeyboardInterrupt):
            return leaf
    meaningful = [e for e in leaves if type(e).__name__ != "Cancelled"]
    return (meaningful or leaves or [error])[0]


def describe(error: BaseException) -> tuple[int, str]:
    """(exit status, one line) for an error that ended a command."""
    e = leaf_error(error)
    if isinstance(e, KeyboardInterrupt):
        return EXIT_INTERRUPTED, "interrupted"
    if isinstance(e, UsageError):
        return EXIT_USAGE, str(e)
    package = (getattr(e, "name", None) or "").split(".")[0]
    if isinstance(e, ImportError) and package in ("httptools", "httpx", "prometheus_client"):
        return EXIT_ERROR, (f"{package} is missing: install the kv extra "
                            "(pip install 'fastraft[kv]')")
    if isinstance(e, FastraftError):
        return EXIT_ERROR, f"{type(e).__name__}: {e}"
    if isinstance(e, OSError):
        where = f" ({e.filename})" if e.filename else ""
        return EXIT_ERROR, f"{e.strerror or e}{where}"
    return EXIT_ERROR, f"{type(e).__name__}: {e}"


def run_command(prog: str, fn: Callable[[], int]) -> int:
    """Run ``fn`` (a command's body, returning its exit status); any error becomes one line
    on stderr and its exit status (see the module docstring). The traceback goes to the
    ``fastraft.cli`` logger at DEBUG (``-vv``)."""
    try:
        return fn()
    except SystemExit:
        raise
    except BaseException as error:  # noqa: BLE001 - every way out becomes one line
        status, line = describe(error)
        if status == EXIT_ERROR and not isinstance(leaf_error(error), (FastraftError, OSError)):
            log.debug("%s failed", prog, exc_info=error)
        print(f"{prog}: {line}".replace("\n", " "), file=sys.stderr)
        return status
