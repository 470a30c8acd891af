"""Linearizability of a key-value history (Herlihy & Wing), checked per key with the
Wing-Gong-Lowe search and memoisation (Lowe, "Testing for linearizability", 2017; the same
algorithm as Porcupine and Knossos' linear checker).

Each key is a register (initially None): ``put(v)`` sets it, ``get`` returns it. A history is
linearizable if every operation can be placed at one instant between its invocation and its
completion so that the sequence obeys the register. Operations on different keys commute, so
the history is linearizable iff each key's sub-history is (linearizability is compositional).

Open operations (a put whose outcome is unknown: invoked, never completed) may take effect at
any point after their invocation, or never; a put no read ever returned is dropped, as placing
it last is always allowed. Failed operations and unanswered reads had no effect and are not
part of the history.

The search is bounded by ``budget`` steps per key: a key that needs more is reported
inconclusive, never as passing.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["HistoryOp", "KeyResult", "check_key", "check_history"]

_OPEN = float("inf")


@dataclass(frozen=True, slots=True)
class HistoryOp:
    """``invoke`` < ``complete`` are positions in one total order of real time; ``complete``
    is None for an open put. ``value`` is what a put wrote or what a get returned."""

    op_id: int
    kind: str  # "put" or "get"
    key: str
    value: str | None
    invoke: int
    complete: int | None


@dataclass(frozen=True, slots=True)
class KeyResult:
    key: str
    ok: bool
    inconclusive: bool
    ops: int
    steps: int
    detail: str = ""


def check_key(key: str, ops: list[HistoryOp], budget: int = 200_000) -> KeyResult:
    """Search a linearization of one key's operations; see the module docstring."""
    read = {op.value for op in ops if op.kind == "get"}
    ops = [op for op in ops
           if op.kind == "get" or op.complete is not None or op.value in read]
    written = {op.value for op in ops if op.kind == "put"}
    for op in ops:
        if op.kind == "get" and op.value is not None and op.value not in written:
            return KeyResult(key, False, False, len(ops), 0,
                             f"get#{op.op_id} returned {op.value!r}, which no put wrote")
    n = len(ops)
    if n == 0:
        return KeyResult(key, True, False, 0, 0)
    # events 1..2n: call of op k is 2k+1, its return 2k+2; 0 is the list head
    order = sorted([(op.invoke, 0, 2 * k + 1) for k, op in enumerate(ops)]
                   + [(op.complete if op.complete is not None else _OPEN, 1, 2 * k + 2)
                      for k, op in enumerate(ops)])
    nxt = [0] * (2 * n + 2)
    prv = [0] * (2 * n + 2)
    last = 0
    for _, _, ev in order:
        nxt[last] = ev
        prv[ev] = last
        last = ev
    nxt[last] = 0  # circular end marker: 0 means "end of list"

    def lift(call: int) -> None:
        ret = call + 1
        nxt[prv[call]] = nxt[call]
        prv[nxt[call]] = prv[call]
        nxt[prv[ret]] = nxt[ret]
        prv[nxt[ret]] = prv[ret]

    def unlift(call: int) -> None:
        ret = call + 1
        prv[nxt[ret]] = ret
        nxt[prv[ret]] = ret
        prv[nxt[call]] = call
        nxt[prv[call]] = call

    definite_left = sum(1 for op in ops if op.complete is not None)
    state: str | None = None
    linearized = 0
    cache: set = set()
    stack: list[tuple[int, str | None]] = []
    best = 0
    best_stuck = -1
    steps = 0
    entry = nxt[0]
    while definite_left:
        steps += 1
        if steps > budget:
            return KeyResult(key, False, True, n, steps,
                             f"search budget of {budget} steps exhausted")
        if entry & 1:  # a call
            k = entry >> 1
            op = ops[k]
            if op.kind == "put":
                ok, new_state = True, op.value
            else:
                ok, new_state = op.value == state, state
            if ok:
                lin = linearized | (1 << k)
                memo = (lin, new_state)
                if memo not in cache:
                    cache.add(memo)
                    stack.append((entry, state))
                    state, linearized = new_state, lin
                    lift(entry)
                    if op.complete is not None:
                        definite_left -= 1
                    if len(stack) > best:
                        best = len(stack)
                    entry = nxt[0]
                    continue
            entry = nxt[entry]
        else:  # a return whose operation was not placed before it
            if not stack:
                stuck = ops[best_stuck if best_stuck >= 0 else (entry - 2) >> 1]
                return KeyResult(key, False, False, n, steps, _explain(ops, best, stuck))
            if len(stack) == best:
                best_stuck = (entry - 2) >> 1
            call, state = stack.pop()
            k = call >> 1
            linearized &= ~(1 << k)
            unlift(call)
            if ops[k].complete is not None:
                definite_left += 1
            entry = nxt[call]
    return KeyResult(key, True, False, n, steps)


def _explain(ops: list[HistoryOp], best: int, stuck: HistoryOp) -> str:
    return (f"no linearization of {len(ops)} operations (at most {best} placed); "
            f"{stuck.kind}#{stuck.op_id} value={stuck.value!r} invoked at {stuck.invoke}, "
            f"completed at {stuck.complete} could not be placed before its completion")


def check_history(ops: list[HistoryOp], budget: int = 200_000) -> list[KeyResult]:
    """Check every key's sub-history; results in key order."""
    by_key: dict[str, list[HistoryOp]] = {}
    for op in ops:
        by_key.setdefault(op.key, []).append(op)
    return [check_key(k, by_key[k], budget) for k in sorted(by_key)]
