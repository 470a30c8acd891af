# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, binding=False
"""Quorums over the member table, compiled. Twin: fastraft/accel/pure/quorum.py, which is
the spec: same results for the same members.

Three C functions over the members' structs (members.pxd), called by ``ProgressTracker``
(progress) as C calls through the declarations in quorum.pxd:

* ``quorum_value``: per voter configuration the largest value a majority holds (>= it), the
  least of the two under joint consensus (Raft §5.3 commit, §6; thesis §6.4 ReadIndex);
* ``quorum_active``: whether a majority of every configuration was heard from (check-quorum,
  thesis §6.2);
* ``vote_result``: won, lost or pending (Raft §5.2, §6).

A configuration with no member does not count; learners (role 0) never count. The values are
sorted in the caller's ``scratch`` array (room for n values): insertion sort, as
configurations are small, and qsort beyond INSERTION_SORT_MAX members.
"""

from libc.stdint cimport uint8_t, uint64_t
from libc.stdlib cimport qsort

from fastraft.accel.compiled.members cimport GRANTED, IN_A, IN_B, REJECTED, Member

cdef enum:
    INSERTION_SORT_MAX = 32


cdef int cmp_desc(const void *a, const void *b) noexcept nogil:
    cdef uint64_t x = (<const uint64_t *>a)[0], y = (<const uint64_t *>b)[0]
    return (x < y) - (x > y)


cdef uint64_t kth_largest(uint64_t *v, Py_ssize_t n, Py_ssize_t k) noexcept nogil:
    """The value at position k (0-based) of v[0:n] sorted in descending order; sorts v."""
    cdef Py_ssize_t i, j
    cdef uint64_t x
    if n > INSERTION_SORT_MAX:
        qsort(v, <size_t>n, sizeof(uint64_t), cmp_desc)
        return v[k]
    for i in range(1, n):
        x = v[i]
        j = i - 1
        while j >= 0 and v[j] < x:
            v[j + 1] = v[j]
            j -= 1
        v[j + 1] = x
    return v[k]


cdef uint64_t quorum_value(const Member *m, Py_ssize_t n, uint64_t *scratch,
                           bint of_seq) noexcept:
    """Of m[0:n]'s match (or seq, ``of_seq``): per configuration the (count // 2 + 1)-th
    largest; joint: the least of the two. 0 with no voter."""
    cdef uint64_t res = 0, q
    cdef bint have = False
    cdef uint8_t bit
    cdef Py_ssize_t s, cnt
    for bit in range(IN_A, IN_B + 1):
        cnt = 0
        for s in range(n):
            if m[s].role & bit:
                scratch[cnt] = m[s].seq if of_seq else m[s].match
                cnt += 1
        if cnt == 0:
            continue
        q = kth_largest(scratch, cnt, cnt // 2)
        if not have or q < res:
            res = q
            have = True
    return res


cdef bint quorum_active(const Member *m, Py_ssize_t n) noexcept:
    """Whether a majority of every configuration of m[0:n] is active; False with no member."""
    cdef uint8_t bit
    cdef Py_ssize_t s, count, active
    for bit in range(IN_A, IN_B + 1):
        count = 0
        active = 0
        for s in range(n):
            if m[s].role & bit:
                count += 1
                active += m[s].active
        if count and active < count // 2 + 1:
            return False
    return n > 0


cdef int vote_result(const Member *m, Py_ssize_t n) noexcept:
    """C_VOTE_WON once a majority of every configuration of m[0:n] granted, C_VOTE_LOST once
    some configuration can no longer reach a majority, else C_VOTE_PENDING."""
    cdef bint won = True
    cdef uint8_t bit
    cdef Py_ssize_t s, count, g, r, q
    for bit in range(IN_A, IN_B + 1):
        count = g = r = 0
        for s in range(n):
            if m[s].role & bit:
                count += 1
                if m[s].vote == GRANTED:
                    g += 1
                elif m[s].vote == REJECTED:
                    r += 1
        if not count:
            continue
        q = count // 2 + 1
        if r > count - q:
            return C_VOTE_LOST
        if g < q:
            won = False
    if not n:
        return C_VOTE_PENDING
    return C_VOTE_WON if won else C_VOTE_PENDING
