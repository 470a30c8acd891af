"""Readable traces: a script of inputs (lines starting with ``>``) each followed by exactly the
commands the engine must emit, one per line, in order.

Inputs::

    > tick 0.3                    time is now 0.3 s
    > saved 2/1                   on_vote_saved(Vote(2, 1))
    > flushed 2/3                 on_log_flushed(LogId(2, 3))
    > recv <message>              step(message), a Python expression over the message classes
    > recv@t1 <message>           step(message, reply_to="t1"): a request whose sender waits
    > propose a b                 propose([b"a", b"b"])
    > read r1                     read_index("r1")
    > call <expression>           any other input, e.g. call e.trigger_elect()

Expressions see the message classes, ``E`` (Entry), ``members()`` (the 3-voter membership),
``e`` (the engine), ``Node`` and ``LogId``.

Commands are rendered compactly (see ``render``); entries as ``term/index:payload``.
"""

from __future__ import annotations

import dataclasses
import textwrap

from fastraft import messages
from fastraft.core import (AppendLog, ApplyEntries, BuildSnapshot, InstallSnapshot,
                           MembershipChanged, PurgeLog, ReadLog, ReadReady, ReadSnapshotChunk,
                           NoAnswer, Respond, SaveSnapshotChunk, SaveVote, SendMessage,
                           StateChanged, TruncateLog)
from fastraft.types import LogId, Node, Vote

from .helpers import Entry, membership

_KIND = {0: "blank", 1: "", 2: "member"}


def _entry(e) -> str:
    tag = _KIND.get(e.kind, str(e.kind))
    body = e.payload.decode() if e.kind == 1 else tag
    return f"{e.term}/{e.index}:{body}"


def _lid(lid) -> str:
    return "-" if lid is None else f"{lid.term}/{lid.index}"


def _msg(m) -> str:
    parts = []
    for f in dataclasses.fields(m):
        v = getattr(m, f.name)
        if f.name == "entries":
            v = "[" + " ".join(_entry(e) for e in v) + "]"
        elif f.name == "membership":
            v = "..."
        parts.append(f"{f.name}={v}")
    return f"{type(m).__name__}(" + ", ".join(parts) + ")"


def render(c) -> str:
    t = type(c)
    if t is SaveVote:
        return f"save vote {c.vote.term}/{c.vote.node_id or '-'}"
    if t is AppendLog:
        return f"append [{' '.join(_entry(e) for e in c.entries)}] up to {_lid(c.last_log_id)}"
    if t is TruncateLog:
        return f"truncate from {c.since}"
    if t is PurgeLog:
        return f"purge up to {_lid(c.upto)}"
    if t is SendMessage:
        if c.reply_to is not None:
            return f"answer {c.reply_to} to {c.to} {_msg(c.msg)}"
        return f"send {c.to} {_msg(c.msg)}"
    if t is NoAnswer:
        return f"no answer {c.reply_to}: {c.reason}"
    if t is ApplyEntries:
        return f"apply [{c.lo}, {c.hi})" + ("" if c.entries is not None else " from storage")
    if t is StateChanged:
        return f"state {c.role} term={c.term} leader={c.leader_id}"
    if t is MembershipChanged:
        m = c.membership
        voters = " ".join("{" + ",".join(map(str, sorted(cf))) + "}" for cf in m.membership.configs)
        return f"membership {_lid(m.log_id)} {voters} committed {_lid(c.committed.log_id)}"
    if t is Respond:
        if c.error is not None:
            return f"respond {c.request_id} error {type(c.error).__name__}"
        return f"respond {c.request_id} ok {c.result}"
    if t is ReadReady:
        return f"read ready {c.request_id} at {c.read_index}"
    if t is BuildSnapshot:
        return "build snapshot"
    if t is InstallSnapshot:
        return f"install snapshot {c.meta.snapshot_id} up to {_lid(c.meta.last_log_id)}"
    if t is SaveSnapshotChunk:
        return f"save chunk {c.snapshot_id} at {c.offset}: {c.data!r}"
    if t is ReadLog:
        return f"read log for {c.node_id} [{c.lo}, {c.hi})"
    if t is ReadSnapshotChunk:
        return f"read chunk {c.snapshot_id} at {c.offset} for {c.node_id}"
    raise AssertionError(f"unknown command {c!r}")


def _apply_input(e, line: str) -> None:
    verb, _, rest = line.partition(" ")
    if verb == "tick":
        e.tick(float(rest))
    elif verb == "saved":
        t, n = rest.split("/")
        e.on_vote_saved(Vote(int(t), 0 if n == "-" else int(n)))
    elif verb == "flushed":
        t, i = rest.split("/")
        e.on_log_flushed(LogId(int(t), int(i)))
    elif verb == "recv" or verb.startswith("recv@"):
        ns = {n: getattr(messages, n) for n in messages.__all__}
        ns.update(E=Entry, members=membership)
        e.step(eval(rest, ns), reply_to=verb[5:] or None)
    elif verb == "propose":
        e.propose([p.encode() for p in rest.split()])
    elif verb == "read":
        e.read_index(rest)
    elif verb == "call":
        eval(rest, {"e": e, "LogId": LogId, "Node": Node})
    else:
        raise AssertionError(f"unknown input {line!r}")


def play(e, script: str) -> None:
    """Run ``script`` against engine ``e``; on a mismatch, fail showing the expected and the
    actual commands of the input that differed."""
    lines = [ln.rstrip() for ln in textwrap.dedent(script).strip().splitlines()]
    e.take_commands()
    k = 0
    while k < len(lines):
        line = lines[k]
        assert line.startswith("> "), f"expected an input line, got {line!r}"
        expected = []
        k += 1
        while k < len(lines) and not lines[k].startswith("> "):
            if lines[k].strip():
                expected.append(lines[k].strip())
            k += 1
        _apply_input(e, line[2:].strip())
        got = [render(c) for c in e.take_commands()]
        assert got == expected, (
            f"after {line!r}\nexpected:\n  " + "\n  ".join(expected)
            + "\ngot:\n  " + "\n  ".join(got))
