"""Quorums over the member table, pure-Python twin of ``fastraft.accel.compiled.quorum``
(this file is the spec). Each function takes per-member lists (one item per slot of the
member table, members) and the members' roles:

* ``quorum_value``: per voter configuration the largest value a majority holds (>= it), the
  least of the two under joint consensus (Raft §5.3 commit, §6; thesis §6.4 ReadIndex);
* ``quorum_active``: whether a majority of every configuration was heard from (check-quorum,
  thesis §6.2);
* ``vote_result``: won, lost or pending (Raft §5.2, §6).

A configuration with no member does not count; learners (role 0) never count.
"""

from __future__ import annotations

from fastraft.accel.pure.members import GRANTED, IN_A, IN_B, REJECTED

__all__ = ["quorum_value", "quorum_active", "vote_result",
           "VOTE_PENDING", "VOTE_WON", "VOTE_LOST"]

#: Results of ``vote_result``.
VOTE_PENDING = 0
VOTE_WON = 1
VOTE_LOST = 2


def quorum_value(values: list, roles: list) -> int:
    """Per configuration the (count // 2 + 1)-th largest of ``values``; joint: the least of
    the two. 0 with no voter. Sorting a handful of ints: members are few."""
    res = -1
    for bit in (IN_A, IN_B):
        vals = sorted((v for v, r in zip(values, roles) if r & bit), reverse=True)
        if not vals:
            continue
        q = vals[len(vals) // 2]
        if res < 0 or q < res:
            res = q
    return res if res >= 0 else 0


def quorum_active(active: list, roles: list) -> bool:
    """Whether a majority of every configuration is active; False with no member."""
    for bit in (IN_A, IN_B):
        n = 0
        heard = 0
        for a, r in zip(active, roles):
            if r & bit:
                n += 1
                heard += a
        if n and heard < n // 2 + 1:
            return False
    return bool(roles)


def vote_result(votes: list, roles: list) -> int:
    """VOTE_WON once a majority of every configuration granted, VOTE_LOST once some
    configuration can no longer reach a majority, else VOTE_PENDING."""
    won = True
    for bit in (IN_A, IN_B):
        n = g = r = 0
        for v, role in zip(votes, roles):
            if role & bit:
                n += 1
                if v == GRANTED:
                    g += 1
                elif v == REJECTED:
                    r += 1
        if not n:
            continue
        q = n // 2 + 1
        if r > n - q:
            return VOTE_LOST
        if g < q:
            won = False
    if not roles:
        return VOTE_PENDING
    return VOTE_WON if won else VOTE_PENDING
