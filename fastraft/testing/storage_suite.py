"""The storage conformance suite: does a (log store, state machine) pair keep the contract of
``fastraft.storage.protocols``? (openraft's ``testing::Suite``, told for fastraft.)

Run it from your own pytest file in a few lines::

    import fastraft.testing
    from fastraft.kv import MemoryKVStateMachine
    from fastraft.storage import MemoryLogStore

    class TestMyStores(fastraft.testing.StorageSuite):
        async def open_stores(self, path):
            return MemoryLogStore(), MemoryKVStateMachine()

``path`` is a fresh, empty directory for each opening. For stores that persist, subclass
``DurableStorageSuite`` instead: it adds the cases that close the stores and open them again
on the same ``path``, and checks that every completed write survived.

If your state machine does not speak the KV example's commands, override ``normal_payload``
(a valid NORMAL payload numbered n) and ``expected_normal_response`` (the response applying
it on an empty state gives, or ``ANY``) together, and ``bad_payload`` (one it cannot parse).
If closing your stores takes more than ``aclose()`` on each (a shared environment), override
``close_stores``.

Without pytest, ``run_storage_suite(open_stores, base_dir)`` runs every case and raises the
first failure. ``CASES`` maps each case's name to its coroutine function.
"""

from __future__ import annotations

import os
import pathlib
import tempfile
from typing import Any, Awaitable, Callable

import trio

from ..kv.commands import Set, encode_command
from ..storage.protocols import LogStore, StateMachine

__all__ = ["StorageSuite", "DurableStorageSuite", "SuiteContext", "ANY", "CASES",
           "DURABLE_CASES", "run_storage_suite"]


class _Any:
    def __eq__(self, other: object) -> bool:
        return True

    def __repr__(self) -> str:
        return "ANY"


#: Matches any response (for ``expected_normal_response``).
ANY: Any = _Any()

Case = Callable[["SuiteContext"], Awaitable[None]]
#: Every case a store must pass, by name, in the order they run.
CASES: dict[str, Case] = {}
#: The cases that reopen the stores (only for stores that persist).
DURABLE_CASES: dict[str, Case] = {}


def case(fn: Case) -> Case:
    CASES[fn.__name__] = fn
    return fn


def durable_case(fn: Case) -> Case:
    DURABLE_CASES[fn.__name__] = fn
    return fn


class SuiteContext:
    """What a case works with: the primary pair (``log``, ``sm``), more pairs on demand, a
    reopen for durable stores, and the suite's payload hooks."""

    def __init__(self, suite: "StorageSuite", base: pathlib.Path) -> None:
        self.suite = suite
        self.base = base
        self._open: list[tuple[LogStore, StateMachine]] = []
        self._paths: dict[int, pathlib.Path] = {}
        self.log: LogStore = None  # type: ignore[assignment]
        self.sm: StateMachine = None  # type: ignore[assignment]

    async def open_pair(self) -> tuple[LogStore, StateMachine]:
        """A new pair of empty stores, in a directory of its own."""
        path = self.base / f"stores-{len(self._paths)}"
        path.mkdir(parents=True)
        pair = await self.suite.open_stores(path)
        self._open.append(pair)
        self._paths[id(pair[0])] = path
        if self.log is None:
            self.log, self.sm = pair
        return pair

    async def reopen(self) -> None:
        """Close the primary pair and open it again on the same directory."""
        path = self._paths.pop(id(self.log))
        self._open.remove((self.log, self.sm))
        await self.suite.close_stores(self.log, self.sm)
        pair = await self.suite.open_stores(path)
        self._open.append(pair)
        self._paths[id(pair[0])] = path
        self.log, self.sm = pair

    def payload(self, n: int) -> bytes:
        return self.suite.normal_payload(n)

    def response(self, n: int) -> Any:
        return self.suite.expected_normal_response(n)

    async def aclose(self) -> None:
        while self._open:
            log, sm = self._open.pop()
            await self.suite.close_stores(log, sm)


class StorageSuite:
    """Base class of a pytest test class: one test per case of ``CASES``.

    Override ``open_stores``; the test methods (``test_<case>``) are inherited.
    """

    #: Upper bound on one case, in seconds.
    case_timeout_s: float = 60.0

    async def open_stores(self, path: pathlib.Path) -> tuple[LogStore, StateMachine]:
        """A new (log store, state machine) pair on ``path`` (an existing directory); for a
        directory that already holds stores, open them as they are."""
        raise NotImplementedError("override open_stores(path) -> (log_store, state_machine)")

    async def close_stores(self, log: LogStore, sm: StateMachine) -> None:
        await sm.aclose()
        await log.aclose()

    def normal_payload(self, n: int) -> bytes:
        """A valid NORMAL payload, numbered ``n`` (default: a KV Set of key-n to value-n)."""
        return encode_command(Set(f"key-{n}", f"value-{n}"))

    def expected_normal_response(self, n: int) -> Any:
        """The response to applying ``normal_payload(n)`` (or ``ANY``)."""
        return {"value": f"value-{n}"}

    def bad_payload(self) -> bytes:
        """A NORMAL payload the state machine cannot parse."""
        return b"\xff this is not a command"

    def run_case(self, fn: Case, base_dir: str | os.PathLike) -> None:
        """Run one case on fresh stores under ``base_dir`` (blocking: starts ``trio.run``)."""
        async def main() -> None:
            ctx = SuiteContext(self, pathlib.Path(base_dir))
            with trio.fail_after(self.case_timeout_s):
                try:
                    await ctx.open_pair()
                    await fn(ctx)
                finally:
                    with trio.CancelScope(shield=True):
                        await ctx.aclose()

        trio.run(main)


class DurableStorageSuite(StorageSuite):
    """``StorageSuite`` plus the cases that reopen the stores (``DURABLE_CASES``)."""


def _add_tests(cls: type, cases: dict[str, Case]) -> None:
    for name, fn in cases.items():
        def test(self, tmp_path, _fn=fn) -> None:
            self.run_case(_fn, tmp_path)

        test.__name__ = f"test_{name}"
        test.__qualname__ = f"{cls.__name__}.test_{name}"
        test.__doc__ = fn.__doc__
        setattr(cls, test.__name__, test)


async def run_storage_suite(open_stores: Callable[[pathlib.Path], Awaitable[tuple]],
                            base_dir: str | os.PathLike | None = None,
                            durable: bool = False) -> list[str]:
    """Run every case (and the durable ones if ``durable``) on pairs from ``open_stores``,
    inside the current trio run; raise the first failure. Returns the names run."""
    suite = (DurableStorageSuite if durable else StorageSuite)()
    suite.open_stores = open_stores  # type: ignore[method-assign]
    names = []
    cases = dict(CASES, **(DURABLE_CASES if durable else {}))
    with tempfile.TemporaryDirectory(dir=base_dir) as tmp:
        for name, fn in cases.items():
            ctx = SuiteContext(suite, pathlib.Path(tmp) / name)
            try:
                await ctx.open_pair()
                await fn(ctx)
            except BaseException as e:
                e.add_note(f"storage suite case: {name}")
                raise
            finally:
                with trio.CancelScope(shield=True):
                    await ctx.aclose()
            names.append(name)
    return names


def _install() -> None:
    """Called once the case modules are imported: give the classes their test methods."""
    _add_tests(StorageSuite, CASES)
    _add_tests(DurableStorageSuite, DURABLE_CASES)
