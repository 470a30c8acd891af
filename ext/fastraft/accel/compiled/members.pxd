from libc.stdint cimport uint8_t, uint64_t


cdef enum:
    # Replication modes (Member.mode), the values of progress.PROBE, PIPELINE, SNAPSHOT.
    C_PROBE = 0
    C_PIPELINE = 1
    C_SNAPSHOT = 2
    # Bits of Member.role: which voter configuration a member belongs to (none: a learner).
    IN_A = 1
    IN_B = 2
    # Values of Member.vote.
    NO_VOTE = 0
    GRANTED = 1
    REJECTED = 2


cdef struct Member:
    # Replication (Raft §5.3): next is stored minus one, so that every next in [1, 2**64]
    # (next = match + 1 with match up to 2**64 - 1) fits in a u64.
    uint64_t match
    uint64_t next_m1
    uint64_t snap
    uint64_t seq
    # The in-flight window: if_count last indexes from if_head in a ring of max_inflight.
    Py_ssize_t if_head
    Py_ssize_t if_count
    uint8_t role
    uint8_t mode
    uint8_t paused
    uint8_t active
    uint8_t vote


cdef class MemberTable:
    cdef readonly Py_ssize_t max_inflight
    # node id -> slot; slots follow the ids in ascending order
    cdef dict _slot
    cdef list _ids
    cdef Member *_m
    cdef uint64_t *_if_buf
    # room for one value per member: the quorum computations sort here
    cdef uint64_t *_scratch
    cdef Py_ssize_t _n
    cdef bint _joint

    cdef Member *_member(self, object node_id) except NULL
