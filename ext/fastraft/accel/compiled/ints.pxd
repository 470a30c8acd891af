# The integer helpers every compiled module shares, inline (declared and defined here, so a
# call costs nothing and no module imports another for them):
#
# * reading a Python int argument as a u64 (read_u64, index_arg), with the twins' treatment of
#   a value outside [0, 2**64): a negative one compares below every index, a larger one
#   raises where it would be stored;
# * u64 + 1 as a Python int without wrapping (plus1: next = match + 1 up to 2**64);
# * growing a C array of u64 (grow: the term runs and the cache's running byte totals);
# * little-endian loads and stores whatever the host's byte order (the codec's wire integers).

from cpython.long cimport PyLong_AsLongLongAndOverflow
from cpython.pyport cimport PY_SSIZE_T_MAX
from libc.stdint cimport uint16_t, uint32_t, uint64_t
from libc.stdlib cimport realloc

cdef extern from *:
    """
    #include <stdint.h>
    #include <string.h>

    #define FR_MAX_U64 UINT64_MAX
    #define FR_MAX_U32 UINT32_MAX

    static inline uint64_t fr_load_u64(const unsigned char *p) {
        uint64_t v; memcpy(&v, p, 8);
    #if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
        v = __builtin_bswap64(v);
    #endif
        return v;
    }
    static inline uint32_t fr_load_u32(const unsigned char *p) {
        uint32_t v; memcpy(&v, p, 4);
    #if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
        v = __builtin_bswap32(v);
    #endif
        return v;
    }
    static inline uint16_t fr_load_u16(const unsigned char *p) {
        return (uint16_t)(p[0] | (p[1] << 8));
    }
    static inline void fr_store_u64(unsigned char *p, uint64_t v) {
    #if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
        v = __builtin_bswap64(v);
    #endif
        memcpy(p, &v, 8);
    }
    static inline void fr_store_u32(unsigned char *p, uint32_t v) {
    #if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
        v = __builtin_bswap32(v);
    #endif
        memcpy(p, &v, 4);
    }
    """
    const uint64_t MAX_U64 "FR_MAX_U64"
    const uint64_t MAX_U32 "FR_MAX_U32"
    uint64_t fr_load_u64(const unsigned char *p) nogil
    uint32_t fr_load_u32(const unsigned char *p) nogil
    uint16_t fr_load_u16(const unsigned char *p) nogil
    void fr_store_u64(unsigned char *p, uint64_t v) nogil
    void fr_store_u32(unsigned char *p, uint32_t v) nogil


cdef inline int read_u64(object x, uint64_t *out) except -2:
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
    if x > <object>MAX_U64:
        return 1
    out[0] = <uint64_t>x
    return 0


cdef inline int index_arg(object x, uint64_t *out) except -2:
    """read_u64 for a value that will be stored: OverflowError above 2**64 - 1."""
    cdef int r = read_u64(x, out)
    if r > 0:
        raise OverflowError(f"{x} does not fit in an unsigned 64-bit integer")
    return r


cdef inline object plus1(uint64_t v):
    """v + 1 as a Python int, also for v == 2**64 - 1."""
    if v == MAX_U64:
        return (<object>MAX_U64) + 1
    return v + 1


cdef inline int grow(uint64_t **arr, Py_ssize_t need, Py_ssize_t *cap) except -1:
    """Make room for ``need`` items in *arr (capacity *cap); MemoryError leaves it as it was."""
    cdef Py_ssize_t c = cap[0]
    cdef Py_ssize_t max_items = PY_SSIZE_T_MAX // 8
    cdef uint64_t *p
    if need <= c:
        return 0
    if need > max_items:
        raise MemoryError()
    while c < need:
        c = c * 2 if c < max_items // 2 else max_items
    p = <uint64_t *>realloc(arr[0], <size_t>c * sizeof(uint64_t))
    if p == NULL:
        raise MemoryError()
    arr[0] = p
    cap[0] = c
    return 0
