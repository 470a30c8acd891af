"""Raft §6 joint consensus at the engine level: "Agreement (for elections and entry
commitment) requires separate majorities from both the old and new configurations". The
counting itself is tested in tests/accel; these pin what the engine does with it: who becomes
leader, and what commits.
"""

import pytest

from fastraft.core import Engine, InitialState
from fastraft.messages import AppendEntriesResponse, VoteRequest, VoteResponse
from fastraft.types import LogId, Membership, Node, StoredMembership, Vote

from .helpers import complete_writes, config, sent

OLD = frozenset({1, 2, 3})
NEW = frozenset({3, 4, 5})


def joint_engine(node_id: int) -> Engine:
    """A voter whose log's only entry (1, 1) is the joint configuration C_old,new."""
    m = Membership((OLD, NEW), {i: Node(f"127.0.0.1:{7000 + i}") for i in OLD | NEW})
    sm = StoredMembership(LogId(1, 1), m)
    state = InitialState(vote=Vote(1, 0), log_runs=((1, 1),), committed=0, membership=sm,
                         prev_membership=sm)
    e = Engine(node_id, config(), 7, state)
    e.take_commands()
    return e


def campaign(e: Engine, granted) -> bool:
    """Run ``e``'s election with votes granted by ``granted`` in every round (pre-vote, then
    the vote) and denied by the other voters; True if it won."""
    e.trigger_elect()
    out = complete_writes(e, e.take_commands())
    for _ in range(2):
        reqs = sent(out, VoteRequest)
        if not reqs or e.is_leader:
            break
        req = reqs[-1]
        for v in sorted(granted):
            e.step(VoteResponse(term=req.term, sender=v, granted=True, pre_vote=req.pre_vote))
        for v in sorted((OLD | NEW) - {e.id} - set(granted)):
            # a voter denies from its own term: 1 before the real vote, the candidate's after
            e.step(VoteResponse(term=1 if req.pre_vote else req.term, sender=v, granted=False,
                                pre_vote=req.pre_vote))
        out = complete_writes(e, e.take_commands())
    return e.is_leader


@pytest.mark.parametrize("granted,wins", [
    ({1, 2}, False),     # all of C_old, but of C_new only 3 itself
    ({4, 5}, False),     # C_new: all of it, C_old: only 3 itself
    ({1, 4}, True),      # {1, 3} of C_old and {3, 4} of C_new
    ({2, 5}, True),
    ({1, 2, 4}, True),
    (set(), False),
])
def test_joint_election_needs_a_majority_of_each_configuration(granted, wins):
    assert campaign(joint_engine(3), granted) is wins


def test_a_new_configuration_majority_alone_commits_nothing():
    """Leader 3 of the joint configuration: acknowledgements from all of C_new but no one else
    of C_old leave every entry uncommitted; one more from C_old commits."""
    e = joint_engine(3)
    assert campaign(e, {1, 4})
    e.propose([b"x"])
    complete_writes(e, e.take_commands())
    last = e.log.last_index
    for p in (4, 5):
        e.step(AppendEntriesResponse(term=e.term, sender=p, success=True, match_index=last))
    complete_writes(e, e.take_commands())
    assert e.committed == 0  # C_new = {3, 4, 5} all hold it, C_old = {1, 2, 3} only 3
    e.step(AppendEntriesResponse(term=e.term, sender=2, success=True, match_index=last))
    complete_writes(e, e.take_commands())
    assert e.committed == last
