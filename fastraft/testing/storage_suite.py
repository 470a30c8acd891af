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

The cases live in ``log_cases`` (vote, log state, reads, append, truncate, purge),
``sm_cases`` (start-up state, memberships, apply, snapshots), ``startup_cases`` (start-up
when the stores disagree, term runs at start, reads after appends), ``misuse_cases`` (calls
every store must refuse, changing nothing: openraft 0.8.3's defensive ``df_*`` cases) and
``durable_cases`` (reopen).

Compared with openraft's newest ``testing/log/suite.rs``, case by case (indexes and terms
there start at 0, here at 1; "repairs" and "n/a" are explained below the table):

=================================================  ==========================================
openraft case                                      fastraft case(s)
=================================================  ==========================================
last_membership_in_log_initial                     last_membership_in_log_initial
last_membership_in_log                             last_membership_in_log
last_membership_in_log_multi_step                  last_membership_in_log_multi_step
get_membership_initial                             membership_initial
get_membership_from_log_and_empty_sm               membership_from_log_and_empty_sm
get_membership_from_empty_log_and_sm               membership_from_empty_log_and_sm
get_membership_from_log_le_sm_last_applied         membership_log_behind_sm
get_membership_from_log_gt_sm_last_applied_1       membership_log_ahead_of_sm_1
get_membership_from_log_gt_sm_last_applied_2       membership_log_ahead_of_sm_2
get_initial_state_without_init                     initial_state_without_data
get_initial_state_membership_from_empty_log_and_sm initial_state_membership_from_empty_log_and_sm
get_initial_state_membership_from_sm_inlog_is_..   initial_state_membership_from_sm_when_the_log_is_behind,
                                                   initial_state_membership_from_log_and_sm
get_initial_state_membership_from_log_insm_is_..   initial_state_membership_from_the_log_after_a_purge
get_initial_state_with_state                       initial_state_with_data
get_initial_state_last_log_gt_sm                   initial_state_log_ahead_of_sm
get_initial_state_last_log_lt_sm                   initial_state_log_behind_sm
get_initial_state_inverted_log_order               initial_state_inverted_log_order (repairs)
get_initial_state_conflict_at_same_index           initial_state_conflict_at_same_index,
                                                   initial_state_conflict_with_a_tail_and_a_committed_id
                                                   (repairs)
get_initial_state_log_ids                          initial_state_log_ids (term runs)
get_initial_state_re_apply_committed               initial_state_reapplies_committed
save_vote                                          vote_save_and_read
get_log_entries                                    read_entries_full, read_entries_empty
limited_get_log_entries                            read_entries_limited
leader_bounded_stream                              n/a (no leader-bounded reader)
entries_stream                                     read_entries_full, read_entries_out_of_range
try_get_log_entry                                  read_single_entry
log_reader_reads_new_entries                       reads_see_entries_appended_later
initial_logs                                       read_entries_empty, read_single_entry
get_log_state                                      log_state
get_log_id                                         read_single_entry, log_state
last_id_in_log                                     log_state, log_state_ignores_the_state_machine
last_applied_state                                 last_applied_state
purge_logs_upto_0 / _5 / _20                       purge_upto_0 / _5 / _20, purge_older_is_ignored
delete_logs_after_11 / _5 / _0 / _none             truncate_after_11 / _5 / _0, truncate_none,
                                                   truncate_after_purge
append_to_log                                      append_to_log, append_rejects_a_gap_or_overlap
snapshot_meta                                      snapshot_meta, snapshot_meta_refers_to_membership
snapshot_meta_optional                             n/a (no optional snapshot build)
apply_single / apply_multiple                      apply_single / apply_multiple,
                                                   apply_unparsable_payload
transfer_snapshot                                  snapshot_build_install_current,
                                                   snapshot_install_replaces_state,
                                                   snapshot_install_rejects_garbage
(0.8.3) df_save_vote_ascending                     misuse_vote_going_back_is_refused,
                                                   misuse_vote_committed_in_same_term
(0.8.3) df_append_to_log_nonempty_input            misuse_empty_append_is_refused
(0.8.3) df_append_to_log_nonconsecutive_input      misuse_gap_inside_a_batch_is_refused
(0.8.3) df_append_to_log_eq_last_(applied_)plus_1  misuse_append_not_next_is_refused
(0.8.3) df_append_to_log_gt_last_(applied_)log_id  misuse_append_below_last_term_is_refused
(0.8.3) df_apply_nonempty_input, df_apply_index_   misuse_apply_empty_or_not_next_is_refused
        eq_last_applied_plus_one, df_apply_gt_..
(0.8.3) df_purge_applied_le_last_applied           misuse_purge_past_committed_is_refused
(0.8.3) df_delete_conflict_gt_last_applied         misuse_truncate_committed_is_refused
(0.8.3) df_get_initial_state_dirty_log,            initial_state_dirty_log_membership_is_dropped
        df_get_membership_config_dirty_log         (repairs)
=================================================  ==========================================

Repairs: where the log contradicts what the state machine applied (its tail older than the
applied entry, or another term at the applied index), openraft refuses to start; fastraft
drops the contradicting entries and purges the log up to the applied entry. What was
applied is committed, so an entry that conflicts with it is not (Raft §5.3, §5.4.3), and a
crash between a snapshot install and the purge of the log it replaces leaves exactly this
state (§7); refusing would keep a healthy node down. ``startup_cases`` checks the repair.

Not applicable, and why:

* ``leader_bounded_stream`` (a read that stops once the stored vote names another leader):
  fastraft's stores have no reader bound to a leader. The guarantee it gives, that a
  deposed leader never ships a newer leader's entries, is the engine's: a follower refuses
  an AppendEntries holding an entry whose term is above the message's (``check_entries``
  with ``max_term``, fastraft/core/replication.py), and a store read is one consistent view.
* ``snapshot_meta_optional`` (a snapshot builder the state machine may decline to give):
  fastraft's ``build_snapshot`` is not optional; the engine's snapshot policy alone decides
  when a snapshot is built, and the state machine must then build one.
* The 0.8.3 defensive cases against "applied": a fastraft log store does not see the state
  machine, so it checks purges and truncations against the committed id it saved
  (``save_committed``): it refuses a truncation of a committed entry and a purge of an
  uncommitted one, but cannot tell a purge of entries committed and not yet applied (the
  engine purges only what a snapshot covers, which is applied). A store that keeps no
  committed id checks neither; the runtime does not save one today, so on a running node
  these two checks guard the start-up repair and callers that save it.
  ``df_get_log_entries`` (an error for a range partly outside the log) is replaced by
  fastraft's contract of skipping what is outside (``read_entries_out_of_range``).
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
