"""The term rule, applied once to every message before its role's handler (core/roles.py):
Raft §5.1 ("if one server's current term is smaller than the other's, it updates its current
term...; if a candidate or leader discovers its term is out of date, it immediately reverts
to follower state; if a server receives a request with a stale term number, it rejects the
request"), with the pre-vote exceptions of thesis §9.6 and the leader lease of §4.2.3.
One table per direction, every message type in it, exact command lists."""

import pytest

from fastraft.core import NoAnswer, Role, SaveVote, SendMessage, StateChanged
from fastraft.messages import (AppendEntriesResponse, InstallSnapshotRequest,
                               InstallSnapshotResponse, TimeoutNowRequest, TimeoutNowResponse,
                               VoteRequest, VoteResponse)
from fastraft.types import Vote

from .helpers import append, complete_writes, config, engine, make_leader

TOKEN = ("req", 9)


def leader_in_term(term=2):
    """Node 1 leads term ``term`` of a 3-voter cluster (pre-vote and check-quorum off, so
    nothing else filters the messages); its writes are complete and its outbox empty."""
    e = engine(1, terms=(1,), vote=Vote(term - 1, 0),
               cfg=config(pre_vote=False, check_quorum=False))
    make_leader(e, grant_from=(2,))
    assert e.term == term
    complete_writes(e, e.take_commands())
    return e


def snapshot_chunk(term, sender=2):
    return InstallSnapshotRequest(term=term, sender=sender, snapshot_id="s", last_log_term=1,
                                  last_log_index=1, membership_term=0, membership_index=0,
                                  membership=b"", offset=0, data=b"", done=False)


NEWER_RESPONSES = [
    AppendEntriesResponse(term=5, sender=2, success=False, match_index=0),
    InstallSnapshotResponse(term=5, sender=2, snapshot_id="s", next_offset=0, done=False),
    TimeoutNowResponse(term=5, sender=2),
    VoteResponse(term=5, sender=2, granted=False),
]


@pytest.mark.parametrize("msg", NEWER_RESPONSES, ids=lambda m: type(m).__name__)
def test_a_response_from_a_newer_term_deposes_the_leader_and_is_dropped(msg):
    e = leader_in_term(2)
    e.step(msg)
    assert e.take_commands() == [SaveVote(Vote(5, 0)),
                                 StateChanged(Role.FOLLOWER, 5, 0)]
    assert (e.role, e.term, e.leader_id) == (Role.FOLLOWER, 5, 0)


def test_a_pre_vote_refusal_from_a_newer_term_matters_only_to_a_pre_candidate():
    """A pre-vote response answers a pre-candidate's question (thesis §9.6); any other role
    drops it whatever its term. A pre-candidate heeds a newer term in a refusal."""
    e = leader_in_term(2)
    e.step(VoteResponse(term=5, sender=2, granted=False, pre_vote=True))
    assert e.take_commands() == [] and e.role == Role.LEADER and e.term == 2

    p = engine(1, terms=(1,), vote=Vote(1, 0), cfg=config(pre_vote=True))
    p.trigger_elect()
    p.take_commands()
    assert p.role == Role.PRE_CANDIDATE
    p.step(VoteResponse(term=5, sender=2, granted=False, pre_vote=True))
    assert p.take_commands() == [SaveVote(Vote(5, 0)), StateChanged(Role.FOLLOWER, 5, 0)]


def test_a_leaders_request_from_a_newer_term_makes_its_sender_the_leader():
    e = leader_in_term(2)
    e.step(append(5, 3, 1, 1, 0, []), reply_to=TOKEN)
    assert e.take_commands() == [SaveVote(Vote(5, 0)), StateChanged(Role.FOLLOWER, 5, 3)]
    assert e.leader_id == 3
    # the answer carries the new term, so it leaves once that term is durable
    e.on_vote_saved(Vote(5, 0))
    assert e.take_commands() == [
        SendMessage(3, AppendEntriesResponse(term=5, sender=1, success=True, match_index=1),
                    TOKEN)]


def test_a_leaders_request_in_the_current_term_makes_a_leader_follow():
    """Two leaders in one term cannot happen (Raft §5.2); should one hear another, it
    follows it as a candidate would, rather than keep leading."""
    e = leader_in_term(2)
    e.step(append(2, 3, 1, 1, 0, []), reply_to=TOKEN)
    assert e.take_commands() == [
        SendMessage(3, AppendEntriesResponse(term=2, sender=1, success=True, match_index=1),
                    TOKEN),
        StateChanged(Role.FOLLOWER, 2, 3)]


STALE_REQUESTS = [
    (append(1, 2, 1, 1, 0, [], seq=4),
     AppendEntriesResponse(term=3, sender=1, success=False, match_index=1, seq=4)),
    (snapshot_chunk(1),
     InstallSnapshotResponse(term=3, sender=1, snapshot_id="s", next_offset=0, done=False)),
    (TimeoutNowRequest(term=1, sender=2), TimeoutNowResponse(term=3, sender=1)),
    (VoteRequest(term=1, sender=2, last_log_term=1, last_log_index=9),
     VoteResponse(term=3, sender=1, granted=False)),
    (VoteRequest(term=1, sender=2, last_log_term=1, last_log_index=9, pre_vote=True),
     VoteResponse(term=3, sender=1, granted=False, pre_vote=True)),
]


@pytest.mark.parametrize("req,answer", STALE_REQUESTS,
                         ids=lambda m: type(m).__name__ + ("-pre" if getattr(m, "pre_vote", 0)
                                                           else ""))
def test_a_request_from_an_older_term_is_refused_with_the_current_term(req, answer):
    e = leader_in_term(3)
    e.step(req, reply_to=TOKEN)
    assert e.take_commands() == [SendMessage(req.sender, answer, TOKEN)]
    assert (e.role, e.term) == (Role.LEADER, 3)


@pytest.mark.parametrize("msg", [
    AppendEntriesResponse(term=1, sender=2, success=True, match_index=2),
    InstallSnapshotResponse(term=1, sender=2, snapshot_id="s", next_offset=0, done=True),
    TimeoutNowResponse(term=1, sender=2),
    VoteResponse(term=1, sender=2, granted=True),
], ids=lambda m: type(m).__name__)
def test_a_response_from_an_older_term_is_dropped(msg):
    e = leader_in_term(3)
    before = e.progress.match_index(2)
    e.step(msg)
    assert e.take_commands() == []
    assert e.progress.match_index(2) == before and e.role == Role.LEADER


def test_a_pre_vote_request_asks_about_the_next_term_without_taking_it():
    """Thesis §9.6: granted or not, a pre-vote changes neither term nor vote."""
    e = engine(2, terms=(1,), vote=Vote(1, 0), cfg=config(check_quorum=False))
    e.step(VoteRequest(term=2, sender=1, last_log_term=1, last_log_index=1, pre_vote=True),
           reply_to=TOKEN)
    assert e.take_commands() == [
        SendMessage(1, VoteResponse(term=2, sender=2, granted=True, pre_vote=True), TOKEN)]
    assert e.vote == Vote(1, 0)


def test_within_the_leader_lease_a_newer_terms_vote_request_changes_nothing():
    """Thesis §4.2.3: a node that heard its leader within the minimum election timeout
    ignores vote requests, term included, and says so at once."""
    e = engine(2, terms=(1,), vote=Vote(1, 0), cfg=config(check_quorum=True))
    e.step(append(1, 1, 1, 1, 0, []))
    e.take_commands()
    e.step(VoteRequest(term=7, sender=3, last_log_term=1, last_log_index=1), reply_to=TOKEN)
    cmds = e.take_commands()
    assert len(cmds) == 1 and isinstance(cmds[0], NoAnswer) and cmds[0].reply_to == TOKEN
    assert (e.term, e.leader_id) == (1, 1)
