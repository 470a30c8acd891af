"""Helpers for driving one engine by hand: build it from a stated log, feed it inputs, and
read what it emitted."""

from __future__ import annotations

from fastraft import accel
from fastraft.core import (AppendLog, Config, Engine, InitialState, SaveVote, SendMessage)
from fastraft.messages import AppendEntriesRequest, AppendEntriesResponse, VoteRequest
from fastraft.types import EntryKind, LogId, Membership, Node, StoredMembership, Vote

Entry = accel.entry.Entry


def config(**kw) -> Config:
    base = dict(max_payload_entries=20, max_inflight=4, snapshot_policy_logs_since_last=0,
                heartbeat_interval_ms=50, election_timeout_min_ms=150,
                election_timeout_max_ms=300)  # openraft's timing: the tests' arithmetic
    base.update(kw)
    return Config(**base)


def membership(voters=(1, 2, 3), learners=()) -> Membership:
    nodes = {i: Node(f"127.0.0.1:{7000 + i}") for i in tuple(voters) + tuple(learners)}
    return Membership.uniform(nodes, voters)


def engine(node_id=1, terms=(1,), vote=None, voters=(1, 2, 3), learners=(), cfg=None,
           seed=7, committed=0, now=0.0) -> Engine:
    """An engine whose log has one entry per element of ``terms`` (entry 1 is the membership),
    as if read from storage at start."""
    runs = []
    for i, t in enumerate(terms, start=1):
        if runs and runs[-1][0] == t:
            runs[-1] = (t, i)
        else:
            runs.append((t, i))
    m = membership(voters, learners)
    sm = StoredMembership(LogId(terms[0], 1), m)
    state = InitialState(vote=vote or Vote(max(terms), 0), log_runs=tuple(runs),
                         committed=committed, membership=sm, prev_membership=sm)
    e = Engine(node_id, cfg or config(), seed, state, now=now)
    e.take_commands()
    return e


def membership_entry(voters=(1, 2, 3), learners=(), term=1, index=1):
    return Entry(term, index, EntryKind.MEMBERSHIP, membership(voters, learners).to_bytes())


def sent(cmds, kind=None, to=None):
    """The messages among ``cmds`` (optionally of one type, to one node)."""
    out = []
    for c in cmds:
        if isinstance(c, SendMessage) and (kind is None or isinstance(c.msg, kind)) \
                and (to is None or c.to == to):
            out.append(c.msg)
    return out


def of_type(cmds, kind):
    return [c for c in cmds if isinstance(c, kind)]


def complete_writes(e: Engine, cmds) -> list:
    """Report every SaveVote and AppendLog in ``cmds`` as durable; returns all commands emitted
    meanwhile and after (the original ones included)."""
    out = list(cmds)
    for c in cmds:
        if isinstance(c, SaveVote):
            e.on_vote_saved(c.vote)
        elif isinstance(c, AppendLog):
            e.on_log_flushed(c.last_log_id)
    more = e.take_commands()
    if more:
        out += complete_writes(e, more)
    return out


def make_leader(e: Engine, grant_from=(2,)) -> list:
    """Take ``e`` from follower to leader: election timeout, votes granted by ``grant_from``,
    writes completed. Pre-vote (if on) is answered the same way. Returns the commands."""
    from fastraft.messages import VoteResponse
    e.trigger_elect()
    out = complete_writes(e, e.take_commands())
    for _ in range(2):  # pre-vote round, then the vote round
        reqs = sent(out, VoteRequest)
        if not reqs:
            break
        req = reqs[-1]
        for v in grant_from:
            e.step(VoteResponse(term=req.term, sender=v, granted=True, pre_vote=req.pre_vote))
        out = complete_writes(e, e.take_commands())
    assert e.is_leader, e
    return out


def ack(e: Engine, frm: int, match: int, seq: int = 0) -> list:
    e.step(AppendEntriesResponse(term=e.term, sender=frm, success=True, match_index=match, hint_term=0, hint_index=0, seq=seq))
    return complete_writes(e, e.take_commands())


def append(term, leader, prev_term, prev_index, commit, entries, seq=0):
    return AppendEntriesRequest(term=term, sender=leader, prev_log_term=prev_term, prev_log_index=prev_index, leader_commit=commit, seq=seq, entries=list(entries))
