# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, binding=False
"""The member table under the progress tracker, compiled. Twin:
fastraft/accel/pure/members.py, which is the spec: same names, signatures, results, exception
types and messages.

Per-member state is one C struct per slot (members.pxd; slots in ascending id order), the
in-flight windows one C array of ``max_inflight`` u64 per slot, and ``_scratch`` one u64 per
slot for the quorum computations (quorum) to sort in. Node ids are looked up in a dict, as
the twin does, so any int id works. ``MemberTable`` is the base of ``ProgressTracker``
(progress), which reads and writes the structs directly (``_member``, a C method).

Integer arguments are read as u64 with one C call (ints.pxd); ``max_inflight`` must fit in a
C ssize_t (the twin fails later, when it sizes the windows, for a bound that large).

Invariant: the invariants of the twin, and _m, _scratch hold _n slots, _if_buf
    _n * max_inflight values; every C array access is below those sizes.
"""

from cpython.pyport cimport PY_SSIZE_T_MAX
from libc.stdint cimport uint64_t
from libc.stdlib cimport calloc, free

from fastraft.accel.compiled.ints cimport index_arg

__all__ = ["MemberTable"]


cdef class MemberTable:
    """The tracked members: voters of one or two configurations and learners, each with the
    state ``ProgressTracker`` keeps for it. See the module docstring.

    ``max_inflight`` (>= 1) bounds each member's in-flight window. Starts with no member:
    call ``set_membership`` first.
    """

    def __cinit__(self, *args, **kwargs):
        self._slot = {}
        self._ids = []
        self._m = NULL
        self._if_buf = NULL
        self._scratch = NULL
        self._n = 0
        self._joint = False

    def __dealloc__(self):
        free(self._m)
        free(self._if_buf)
        free(self._scratch)

    def __init__(self, max_inflight):
        max_inflight = int(max_inflight)
        if max_inflight < 1:
            raise ValueError(f"max_inflight must be >= 1, got {max_inflight}")
        self.max_inflight = max_inflight

    # -- membership ----------------------------------------------------------------------------

    def set_membership(self, voters, joint_voters, learners, next_index):
        """Track exactly the given members: ``voters`` (a non-empty configuration),
        ``joint_voters`` (the second configuration of a joint consensus, or empty) and
        ``learners`` (members in neither). Members already tracked keep all their state; new
        ones start in PROBE with match 0, next ``next_index``, no vote, inactive, seq 0.

        Raises ValueError if ``voters`` is empty, an id is not positive, a learner is also a
        voter, or next_index < 1; OverflowError if next_index does not fit in u64. O(members).
        """
        cdef uint64_t nxt = 0
        cdef Py_ssize_t n, k, j, w = self.max_inflight
        cdef Member *new_m
        cdef Member *om
        cdef Member *nm
        cdef uint64_t *new_buf
        cdef uint64_t *new_scratch
        a = sorted({int(i) for i in voters})
        b = sorted({int(i) for i in joint_voters})
        ls = sorted({int(i) for i in learners})
        if not a:
            raise ValueError("the voter configuration must not be empty")
        if next_index < 1:
            raise ValueError(f"next_index must be >= 1, got {next_index}")
        for i in a + b + ls:
            if i <= 0:
                raise ValueError(f"node id must be positive, got {i}")
        both = set(a) | set(b)
        for i in ls:
            if i in both:
                raise ValueError(f"node {i} cannot be both a voter and a learner")
        index_arg(next_index, &nxt)
        sa, sb = set(a), set(b)
        ids = sorted(both | set(ls))
        n = len(ids)
        if w > PY_SSIZE_T_MAX // <Py_ssize_t>sizeof(uint64_t) // n:
            raise MemoryError()
        new_m = <Member *>calloc(<size_t>n, sizeof(Member))
        new_buf = <uint64_t *>calloc(<size_t>(n * w), sizeof(uint64_t))
        new_scratch = <uint64_t *>calloc(<size_t>n, sizeof(uint64_t))
        if new_m == NULL or new_buf == NULL or new_scratch == NULL:
            free(new_m)
            free(new_buf)
            free(new_scratch)
            raise MemoryError()
        old = self._slot
        for k in range(n):
            i = ids[k]
            nm = &new_m[k]
            s = old.get(i)
            if s is None:
                nm.next_m1 = nxt - 1
                nm.mode = C_PROBE
                nm.vote = NO_VOTE
            else:
                om = &self._m[<Py_ssize_t>s]
                nm[0] = om[0]
                # the window moves to the start of the member's new ring
                for j in range(om.if_count):
                    new_buf[k * w + j] = self._if_buf[<Py_ssize_t>s * w + (om.if_head + j) % w]
                nm.if_head = 0
            nm.role = (IN_A if i in sa else 0) | (IN_B if i in sb else 0)
        free(self._m)
        free(self._if_buf)
        free(self._scratch)
        self._m = new_m
        self._if_buf = new_buf
        self._scratch = new_scratch
        self._n = n
        self._slot = {ids[k]: k for k in range(n)}
        self._ids = ids
        self._joint = bool(b)

    @property
    def is_joint(self):
        """True when two voter configurations are tracked (joint consensus). O(1)."""
        return self._joint

    def node_ids(self):
        """Every tracked id, ascending. O(members)."""
        return list(self._ids)

    def voter_ids(self):
        """The ids that vote in some configuration, ascending. O(members)."""
        cdef Py_ssize_t k
        return [self._ids[k] for k in range(self._n) if self._m[k].role]

    def learner_ids(self):
        """The tracked ids that vote in no configuration, ascending. O(members)."""
        cdef Py_ssize_t k
        return [self._ids[k] for k in range(self._n) if not self._m[k].role]

    def is_tracked(self, node_id):
        """Whether ``node_id`` is a member. O(1)."""
        return node_id in self._slot

    def is_voter(self, node_id):
        """Whether ``node_id`` votes in some configuration (False if untracked). O(1)."""
        s = self._slot.get(node_id)
        return s is not None and self._m[<Py_ssize_t>s].role != 0

    cdef Member *_member(self, object node_id) except NULL:
        # The struct of a tracked member; ValueError for any other id (every public method
        # taking a node id reads its member through here first, before it changes anything).
        s = self._slot.get(node_id)
        if s is None:
            raise ValueError(f"node {node_id} is not tracked")
        return &self._m[<Py_ssize_t>s]

    # -- copying -------------------------------------------------------------------------------

    def __reduce__(self):
        """Pickle and copy support (the twin copies through its slots): the window bound, and
        per member its id and state, in-flight window oldest first."""
        cdef Py_ssize_t s, j, w = self.max_inflight
        cdef Member *p
        members = []
        for s in range(self._n):
            p = &self._m[s]
            window = [self._if_buf[s * w + (p.if_head + j) % w] for j in range(p.if_count)]
            members.append((self._ids[s], p.role, p.match, p.next_m1, p.snap, p.seq, p.mode,
                            p.paused, p.active, p.vote, window))
        return (type(self), (self.max_inflight,), (self._joint, members))

    def __setstate__(self, state):
        cdef Py_ssize_t n, s, j, w = self.max_inflight
        cdef Member *p
        joint, members = state
        n = len(members)
        if n and w > PY_SSIZE_T_MAX // <Py_ssize_t>sizeof(uint64_t) // n:
            raise MemoryError()
        free(self._m)
        free(self._if_buf)
        free(self._scratch)
        self._n = 0
        self._slot = {}
        self._ids = []
        self._m = <Member *>calloc(<size_t>max(n, 1), sizeof(Member))
        self._if_buf = <uint64_t *>calloc(<size_t>max(n * w, 1), sizeof(uint64_t))
        self._scratch = <uint64_t *>calloc(<size_t>max(n, 1), sizeof(uint64_t))
        if self._m == NULL or self._if_buf == NULL or self._scratch == NULL:
            raise MemoryError()
        ids = []
        for s in range(n):
            (i, role, match, next_m1, snap, seq, mode, paused, active, vote,
             window) = members[s]
            if len(window) > w:
                raise ValueError("in-flight window larger than max_inflight")
            p = &self._m[s]
            p.role, p.match, p.next_m1, p.snap, p.seq = role, match, next_m1, snap, seq
            p.mode, p.paused, p.active, p.vote = mode, paused, active, vote
            p.if_head = 0
            p.if_count = len(window)
            for j in range(p.if_count):
                self._if_buf[s * w + j] = window[j]
            ids.append(i)
        self._n = n
        self._ids = ids
        self._slot = {ids[s]: s for s in range(n)}
        self._joint = joint
