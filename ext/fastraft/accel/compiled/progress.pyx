# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, binding=False
"""The progress tracker, compiled. Twin: fastraft/accel/pure/progress.py, which is the spec:
same names, signatures, results, exception types and messages.

Per-member state is one C struct per slot (slots in ascending id order), the in-flight windows
one C array of ``max_inflight`` u64 per slot, and the quorum computations sort the members'
values in a preallocated C array (insertion sort: configurations are small; qsort beyond 32).
Node ids are looked up in a dict, as the twin does, so any int id works.

Integer arguments are read as u64 with one C call; a value outside [0, 2**64) is treated as
the twin treats it (a negative one compares below every index; one above 2**64 - 1 raises
OverflowError where it would be stored). Arguments must be integers (``int`` or ``bool``;
other numbers raise TypeError here), and ``max_inflight`` must fit in a C ssize_t (the twin
fails later, when it sizes the windows, for a bound that large).

Invariant: the invariants of the twin, and _m, _scratch hold _n slots, _if_buf
    _n * max_inflight values; every C array access is below those sizes.
"""

from cpython.long cimport PyLong_AsLongLongAndOverflow
from cpython.pyport cimport PY_SSIZE_T_MAX
from libc.stdint cimport uint8_t, uint64_t
from libc.stdlib cimport calloc, free, qsort

__all__ = [
    "ProgressTracker",
    "PROBE", "PIPELINE", "SNAPSHOT",
    "VOTE_PENDING", "VOTE_WON", "VOTE_LOST",
]

#: Replication modes.
PROBE = 0
PIPELINE = 1
SNAPSHOT = 2

#: Results of ``vote_result``.
VOTE_PENDING = 0
VOTE_WON = 1
VOTE_LOST = 2

cdef enum:
    C_PROBE = 0
    C_PIPELINE = 1
    C_SNAPSHOT = 2
    C_VOTE_PENDING = 0
    C_VOTE_WON = 1
    C_VOTE_LOST = 2
    # Bits of Member.role: which voter configuration a member belongs to (none: a learner).
    IN_A = 1
    IN_B = 2
    # Values of Member.vote.
    NO_VOTE = 0
    GRANTED = 1
    REJECTED = 2
    INSERTION_SORT_MAX = 32

cdef uint64_t MAX_U64 = 0xFFFFFFFFFFFFFFFF
cdef object PY_MAX_U64 = (1 << 64) - 1
cdef object PY_TWO_64 = 1 << 64


cdef int read_u64(object x, uint64_t *out) except -2:
    """Read an integer argument: 0 when 0 <= x < 2**64 (stored in *out), -1 when x < 0,
    1 when x >= 2**64. TypeError when x is not an integer."""
    cdef int overflow = 0
    cdef long long v = PyLong_AsLongLongAndOverflow(x, &overflow)
    if overflow == 0:
        if v < 0:
            return -1
        out[0] = <uint64_t>v
        return 0
    if overflow < 0:
        return -1
    if x > PY_MAX_U64:
        return 1
    out[0] = <uint64_t>x
    return 0


cdef int index_arg(object x, uint64_t *out) except -2:
    """read_u64 for an index the tracker may store: OverflowError above 2**64 - 1."""
    cdef int r = read_u64(x, out)
    if r > 0:
        raise OverflowError(f"{x} does not fit in an unsigned 64-bit integer")
    return r


cdef inline object plus1(uint64_t v):
    """v + 1 as a Python int, also for v == 2**64 - 1."""
    if v == MAX_U64:
        return PY_TWO_64
    return v + 1


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


cdef class ProgressTracker:
    """Per-member replication progress, quorums and tallies. See the module docstring.

    ``max_inflight`` (>= 1) bounds the messages in flight to one member in PIPELINE mode.
    Starts with no member: call ``set_membership`` first.
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

    # -- per-member reads ----------------------------------------------------------------------

    cdef Member *_member(self, object node_id) except NULL:
        s = self._slot.get(node_id)
        if s is None:
            raise ValueError(f"node {node_id} is not tracked")
        return &self._m[<Py_ssize_t>s]

    def match_index(self, node_id):
        """Highest index known to be replicated on ``node_id``. O(1)."""
        return self._member(node_id).match

    def next_index(self, node_id):
        """Next index to send to ``node_id``. O(1)."""
        return plus1(self._member(node_id).next_m1)

    def mode(self, node_id):
        """PROBE, PIPELINE or SNAPSHOT. O(1)."""
        return self._member(node_id).mode

    def inflight_count(self, node_id):
        """Messages with entries in flight to ``node_id`` (PIPELINE mode only). O(1)."""
        return self._member(node_id).if_count

    def pending_snapshot(self, node_id):
        """The last index of the snapshot being sent (SNAPSHOT mode), else 0. O(1)."""
        cdef Member *p = self._member(node_id)
        return p.snap if p.mode == C_SNAPSHOT else 0

    def can_send(self, node_id):
        """Whether a message with entries may go to ``node_id`` now: PROBE and no probe
        unanswered, or PIPELINE with room in the window; never in SNAPSHOT. O(1)."""
        cdef Member *p = self._member(node_id)
        if p.mode == C_PIPELINE:
            return p.if_count < self.max_inflight
        if p.mode == C_PROBE:
            return not p.paused
        return False

    # -- replication ---------------------------------------------------------------------------

    def reset(self, next_index):
        """Start a new leadership (Raft §5.3: nextIndex = leader's last + 1, matchIndex = 0):
        every member to PROBE, match 0, next ``next_index``, empty window, inactive, seq 0,
        no vote. Raises ValueError if next_index < 1, OverflowError if it does not fit in u64.
        O(members)."""
        cdef uint64_t nxt = 0
        cdef Py_ssize_t k
        cdef Member *p
        cdef int r = read_u64(next_index, &nxt)
        if r < 0 or (r == 0 and nxt < 1):
            raise ValueError(f"next_index must be >= 1, got {next_index}")
        index_arg(next_index, &nxt)
        for k in range(self._n):
            p = &self._m[k]
            p.match = 0
            p.next_m1 = nxt - 1
            p.mode = C_PROBE
            p.paused = 0
            p.snap = 0
            p.active = 0
            p.seq = 0
            p.vote = NO_VOTE
            p.if_head = 0
            p.if_count = 0

    def update_match(self, node_id, index):
        """Raise match to ``index`` (and next past it) without touching the mode or window:
        the leader's own durable log end (thesis §10.2.1). Returns whether match grew. O(1)."""
        cdef Member *p = self._member(node_id)
        cdef uint64_t v = 0
        if index_arg(index, &v) < 0 or v <= p.match:
            return False
        p.match = v
        if p.next_m1 < v:
            p.next_m1 = v
        return True

    def on_sent(self, node_id, last_index):
        """Record an AppendEntries to ``node_id`` carrying entries [next, last_index].

        PIPELINE: needs last_index >= next (entries, not a heartbeat) and room in the window;
        next becomes last_index + 1. PROBE: needs last_index >= next - 1 (a probe may carry no
        entry); the member pauses until an answer or ``resume``, next stays. Raises ValueError
        otherwise (SNAPSHOT mode, full window, a range not starting at next). O(1).
        """
        cdef Member *p = self._member(node_id)
        cdef uint64_t v = 0
        cdef int r = index_arg(last_index, &v)
        cdef Py_ssize_t s, c, w
        if p.mode == C_PIPELINE:
            if r < 0 or v <= p.next_m1:
                raise ValueError(f"nothing to send: last {last_index} < next {plus1(p.next_m1)}")
            c = p.if_count
            w = self.max_inflight
            if c >= w:
                raise ValueError(f"in-flight window to node {node_id} is full")
            s = p - self._m
            self._if_buf[s * w + (p.if_head + c) % w] = v
            p.if_count = c + 1
            p.next_m1 = v
        elif p.mode == C_PROBE:
            if r < 0 or v < p.next_m1:
                raise ValueError(
                    f"probe ends at {last_index}, before next {plus1(p.next_m1)} - 1")
            p.paused = 1
        else:
            raise ValueError(f"node {node_id} is receiving a snapshot")

    def on_ack(self, node_id, match_index):
        """A successful AppendEntries response: ``node_id`` matches the leader up to
        ``match_index``. Raises match and next, frees the window up to it; PROBE switches to
        PIPELINE when match_index >= next - 1 (the probe was answered: the follower's position
        is found; next becomes match + 1), and SNAPSHOT too once match reaches the snapshot.
        Returns whether match grew (the commit index may move). O(freed)."""
        cdef Member *p = self._member(node_id)
        cdef uint64_t v = 0
        cdef int r = index_arg(match_index, &v)
        cdef bint grew = r == 0 and v > p.match
        if grew:
            p.match = v
            if p.next_m1 < v:
                p.next_m1 = v
        if p.mode == C_PROBE:
            # only the answer to the probe itself (at next - 1 or beyond) locates the follower
            if r == 0 and v >= p.next_m1:
                p.mode = C_PIPELINE
                p.paused = 0
                p.next_m1 = p.match
        elif p.mode == C_SNAPSHOT:
            if p.match >= p.snap:
                p.mode = C_PIPELINE
                p.next_m1 = p.match
                p.paused = 0
        else:
            self._free_upto(p, p.match)
        return grew

    def on_reject(self, node_id, rejected_index, next_hint):
        """A rejected AppendEntries whose prev_log_index was ``rejected_index``; ``next_hint``
        is where the leader would resume from the follower's hint (Raft §5.3). Stale
        rejections (at or below match; PROBE: not the outstanding probe; SNAPSHOT: any) are
        ignored and return False: a rejection at or below match cannot move next, so answering
        it with a resend would repeat the same probe once per rejection (the next heartbeat
        retries it). Otherwise the member goes to PROBE with an empty
        window and next = max(min(rejected_index, next_hint), match + 1); returns True. O(1).
        """
        cdef Member *p = self._member(node_id)
        cdef uint64_t rej = 0, hint = 0, nxt
        cdef int rr = index_arg(rejected_index, &rej), rh = index_arg(next_hint, &hint)
        if p.mode == C_PIPELINE:
            if rr < 0 or rej <= p.match:
                return False
        elif p.mode == C_PROBE:
            if rr < 0 or rej != p.next_m1 or rej <= p.match:
                return False
        else:
            return False
        # next = max(min(rej, hint), match + 1); a negative hint is below match + 1
        nxt = rej if rh < 0 or rej < hint else hint
        if rh < 0 or nxt <= p.match:
            p.next_m1 = p.match
        else:
            p.next_m1 = nxt - 1
        p.mode = C_PROBE
        p.paused = 0
        p.if_count = 0
        p.if_head = 0
        return True

    def resume(self, node_id):
        """Let the next probe go to ``node_id`` (an answer arrived or a heartbeat interval
        passed). No effect outside PROBE. O(1)."""
        cdef Member *p = self._member(node_id)
        if p.mode == C_PROBE:
            p.paused = 0

    def become_probe(self, node_id):
        """Back to PROBE from any mode with an empty window, next = match + 1 (the member is
        unreachable or the snapshot failed). O(1)."""
        cdef Member *p = self._member(node_id)
        p.mode = C_PROBE
        p.paused = 0
        p.next_m1 = p.match
        p.if_count = 0
        p.if_head = 0

    def become_snapshot(self, node_id, snapshot_index):
        """Pause entries to ``node_id`` while a snapshot covering up to ``snapshot_index`` is
        sent (Raft §7). Raises ValueError if snapshot_index <= match. O(1)."""
        cdef Member *p = self._member(node_id)
        cdef uint64_t v = 0
        if index_arg(snapshot_index, &v) < 0 or v <= p.match:
            raise ValueError(
                f"snapshot up to {snapshot_index} is not ahead of match {p.match}")
        p.mode = C_SNAPSHOT
        p.snap = v
        p.paused = 0
        p.if_count = 0
        p.if_head = 0

    def on_snapshot_done(self, node_id, snapshot_index):
        """``node_id`` installed a snapshot up to ``snapshot_index``: match rises to it, then
        PROBE from match + 1 (entries after the snapshot follow). O(1)."""
        cdef Member *p = self._member(node_id)
        cdef uint64_t v = 0
        if index_arg(snapshot_index, &v) == 0 and v > p.match:
            p.match = v
        p.mode = C_PROBE
        p.paused = 0
        p.next_m1 = p.match
        p.if_count = 0
        p.if_head = 0

    cdef void _free_upto(self, Member *p, uint64_t index) noexcept:
        cdef Py_ssize_t w = self.max_inflight, h = p.if_head, c = p.if_count
        cdef uint64_t *ring = self._if_buf + (p - self._m) * w
        while c and ring[h] <= index:
            h = (h + 1) % w
            c -= 1
        p.if_head = h if c else 0
        p.if_count = c

    # -- quorums -------------------------------------------------------------------------------

    cdef uint64_t _quorum_value(self, bint of_seq) noexcept:
        # Per config, the largest v that a majority holds (>= v): the (n // 2 + 1)-th largest;
        # joint: the least of the two (Raft §6). 0 with no member.
        cdef uint64_t res = 0, q
        cdef bint have = False
        cdef uint8_t bit
        cdef Py_ssize_t s, cnt
        for bit in range(IN_A, IN_B + 1):
            cnt = 0
            for s in range(self._n):
                if self._m[s].role & bit:
                    self._scratch[cnt] = self._m[s].seq if of_seq else self._m[s].match
                    cnt += 1
            if cnt == 0:
                continue
            q = kth_largest(self._scratch, cnt, cnt // 2)
            if not have or q < res:
                res = q
                have = True
        return res

    def committed_index(self):
        """The highest index matched by a majority of every voter configuration (Raft §5.3,
        §6); 0 with no member. The engine commits it only if its term is the leader's
        (Raft §5.4.2). O(members log members)."""
        return self._quorum_value(False)

    def mark_active(self, node_id):
        """``node_id`` was heard from (check-quorum). O(1)."""
        self._member(node_id).active = 1

    def is_active(self, node_id):
        """Whether ``node_id`` was heard from since the last ``reset_active``. O(1)."""
        return self._member(node_id).active != 0

    def reset_active(self):
        """Forget who was heard from: a new check-quorum period starts. O(members)."""
        cdef Py_ssize_t s
        for s in range(self._n):
            self._m[s].active = 0

    def quorum_active(self):
        """Whether a majority of every voter configuration was heard from (a leader that is
        not stays no longer: check-quorum, thesis §6.2). O(members)."""
        cdef uint8_t bit
        cdef Py_ssize_t s, n, active
        for bit in range(IN_A, IN_B + 1):
            n = 0
            active = 0
            for s in range(self._n):
                if self._m[s].role & bit:
                    n += 1
                    active += self._m[s].active
            if n and active < n // 2 + 1:
                return False
        return self._n > 0

    def on_seq_ack(self, node_id, seq):
        """``node_id`` acknowledged the leader's round ``seq`` (and so every earlier one).
        O(1)."""
        cdef Member *p = self._member(node_id)
        cdef uint64_t v = 0
        if index_arg(seq, &v) == 0 and v > p.seq:
            p.seq = v

    def acked_seq(self, node_id):
        """The highest round ``node_id`` acknowledged. O(1)."""
        return self._member(node_id).seq

    def quorum_seq(self):
        """The highest round acknowledged by a majority of every voter configuration: reads
        registered before that round may be served (ReadIndex, thesis §6.4). O(members log
        members)."""
        return self._quorum_value(True)

    # -- votes ---------------------------------------------------------------------------------

    def reset_votes(self):
        """Forget every vote: a new election or pre-vote starts. O(members)."""
        cdef Py_ssize_t s
        for s in range(self._n):
            self._m[s].vote = NO_VOTE

    def record_vote(self, node_id, granted):
        """Record ``node_id``'s answer; the first answer of a member counts, later ones are
        ignored. Returns False (and records nothing) for a learner. O(1)."""
        cdef Member *p = self._member(node_id)
        if not p.role:
            return False
        if p.vote == NO_VOTE:
            p.vote = GRANTED if granted else REJECTED
        return True

    def vote_result(self):
        """VOTE_WON once a majority of every configuration granted, VOTE_LOST once some
        configuration can no longer reach a majority, else VOTE_PENDING (Raft §5.2, §6).
        O(members)."""
        cdef bint won = True
        cdef uint8_t bit
        cdef Py_ssize_t s, n, g, r, q
        for bit in range(IN_A, IN_B + 1):
            n = g = r = 0
            for s in range(self._n):
                if self._m[s].role & bit:
                    n += 1
                    if self._m[s].vote == GRANTED:
                        g += 1
                    elif self._m[s].vote == REJECTED:
                        r += 1
            if not n:
                continue
            q = n // 2 + 1
            if r > n - q:
                return C_VOTE_LOST
            if g < q:
                won = False
        if not self._n:
            return C_VOTE_PENDING
        return C_VOTE_WON if won else C_VOTE_PENDING

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
        return (ProgressTracker, (self.max_inflight,), (self._joint, members))

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

    def __repr__(self):
        cdef Py_ssize_t s
        cdef Member *p
        parts = []
        for s in range(self._n):
            p = &self._m[s]
            mode = ("probe", "pipeline", "snapshot")[p.mode]
            parts.append(f"{self._ids[s]}:{'v' if p.role else 'l'} m={p.match} "
                         f"n={plus1(p.next_m1)} {mode} if={p.if_count}")
        return f"ProgressTracker({'; '.join(parts)})"
