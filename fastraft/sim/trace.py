"""The trace: a text log of every event of a run, one line each, for replaying a failure by eye.

Lines look like ``   12.345678 n3 recv AppendEntries t=4 from=1 prev=4/17 commit=16 seq=9
[4/18:put,4/19:blank]``: the simulated time in seconds (fixed 6 decimals), the node, what
happened. Rendering is deterministic (no ids, no hashes of str, no wall clock), so two runs of
one seed produce identical bytes. A run without a trace pays nothing for it: callers test
``trace.on`` before building a line.
"""

from __future__ import annotations

from typing import TextIO

from fastraft import messages as m
from fastraft.core import (AppendLog, ApplyEntries, InstallSnapshot, PurgeLog, ReadLog, ReadReady,
                           ReadSnapshotChunk, Respond, SaveSnapshotChunk, SaveVote, SendMessage,
                           StateChanged, TruncateLog, MembershipChanged)

__all__ = ["Trace", "render_message", "render_command"]

_KIND = {0: "blank", 2: "member"}


class Trace:
    """Collects lines in memory (``lines``) or writes them to ``out``; ``on`` is False for a
    run without a trace."""

    __slots__ = ("on", "lines", "out", "count")

    def __init__(self, on: bool = False, out: TextIO | None = None) -> None:
        self.on = on
        self.out = out
        self.lines: list[str] = []
        self.count = 0

    def emit(self, now: float, who: str, text: str) -> None:
        line = f"{now:12.6f} {who} {text}"
        self.count += 1
        if self.out is not None:
            self.out.write(line + "\n")
        else:
            self.lines.append(line)

    def text(self) -> str:
        return "".join(line + "\n" for line in self.lines)


def _entries(ents) -> str:
    if not ents:
        return "[]"
    if len(ents) > 4:
        a, b = ents[0], ents[-1]
        return f"[{a.term}/{a.index}..{b.term}/{b.index} x{len(ents)}]"
    parts = []
    for e in ents:
        body = _KIND.get(e.kind) or e.payload.split(b" ", 1)[0].decode("ascii", "replace")
        parts.append(f"{e.term}/{e.index}:{body}")
    return "[" + ",".join(parts) + "]"


def render_message(msg) -> str:
    t = type(msg)
    if t is m.AppendEntriesRequest:
        return (f"AppendEntries t={msg.term} from={msg.sender} prev={msg.prev_log_term}/"
                f"{msg.prev_log_index} commit={msg.leader_commit} seq={msg.seq} "
                f"{_entries(msg.entries)}")
    if t is m.AppendEntriesResponse:
        return (f"AppendEntriesResp t={msg.term} from={msg.sender} "
                f"{'ok' if msg.success else 'reject'} match={msg.match_index} "
                f"hint={msg.hint_term}/{msg.hint_index} seq={msg.seq}")
    if t is m.VoteRequest:
        kind = "PreVote" if msg.pre_vote else "Vote"
        return (f"{kind} t={msg.term} from={msg.sender} last={msg.last_log_term}/"
                f"{msg.last_log_index}{' transfer' if msg.leader_transfer else ''}")
    if t is m.VoteResponse:
        kind = "PreVoteResp" if msg.pre_vote else "VoteResp"
        return f"{kind} t={msg.term} from={msg.sender} {'granted' if msg.granted else 'denied'}"
    if t is m.InstallSnapshotRequest:
        return (f"InstallSnapshot t={msg.term} from={msg.sender} id={msg.snapshot_id} "
                f"last={msg.last_log_term}/{msg.last_log_index} off={msg.offset} "
                f"len={len(msg.data)}{' done' if msg.done else ''}")
    if t is m.InstallSnapshotResponse:
        return (f"InstallSnapshotResp t={msg.term} from={msg.sender} id={msg.snapshot_id} "
                f"next={msg.next_offset}{' done' if msg.done else ''}")
    if t is m.TimeoutNowRequest:
        return f"TimeoutNow t={msg.term} from={msg.sender}"
    if t is m.TimeoutNowResponse:
        return f"TimeoutNowResp t={msg.term} from={msg.sender}"
    return repr(msg)


def _lid(lid) -> str:
    return "-" if lid is None else f"{lid.term}/{lid.index}"


def render_command(c) -> str:
    t = type(c)
    if t is SendMessage:
        return f"send->{c.to} {render_message(c.msg)}"
    if t is AppendLog:
        return f"AppendLog {_entries(c.entries)}"
    if t is SaveVote:
        v = c.vote
        return f"SaveVote t={v.term} for={v.node_id}{' committed' if v.committed else ''}"
    if t is TruncateLog:
        return f"TruncateLog since={c.since}"
    if t is PurgeLog:
        return f"PurgeLog upto={_lid(c.upto)}"
    if t is ApplyEntries:
        return f"ApplyEntries [{c.lo},{c.hi}){'' if c.entries is not None else ' read'}"
    if t is InstallSnapshot:
        return f"InstallSnapshot {c.meta.snapshot_id} last={_lid(c.meta.last_log_id)}"
    if t is SaveSnapshotChunk:
        return f"SaveSnapshotChunk {c.snapshot_id} off={c.offset} len={len(c.data)}"
    if t is ReadLog:
        return f"ReadLog for={c.node_id} [{c.lo},{c.hi})"
    if t is ReadSnapshotChunk:
        return f"ReadSnapshotChunk for={c.node_id} {c.snapshot_id} off={c.offset}"
    if t is Respond:
        what = "ok" if c.error is None else type(c.error).__name__
        return f"Respond {c.request_id} {what} {c.result if c.error is None else ''}".rstrip()
    if t is ReadReady:
        return f"ReadReady {c.request_id} index={c.read_index}"
    if t is StateChanged:
        return f"StateChanged {c.role} t={c.term} leader={c.leader_id}"
    if t is MembershipChanged:
        mem = c.membership
        configs = "/".join(",".join(str(i) for i in sorted(cf)) for cf in mem.membership.configs)
        learners = ",".join(str(i) for i in sorted(mem.membership.learner_ids()))
        return (f"MembershipChanged at={_lid(mem.log_id)} voters={configs} "
                f"learners={learners or '-'} committed_at={_lid(c.committed.log_id)}")
    return type(c).__name__
