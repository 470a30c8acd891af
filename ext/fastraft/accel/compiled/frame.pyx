# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""The frame of the codec, compiled: the 12-byte header, its checksum and the frame size
limit. Twin: fastraft/accel/pure/frame.py, which is the spec (the layout is documented in
fastraft/accel/pure/codec.py): same exception types with the same messages for the same
input.

A frame is the header and a body of [HEADER_SIZE, HEADER_SIZE + body length); the entry
batches (codec_entries) and the messages (codec) write their bodies into a frame from
``new_frame`` and ``seal`` it, and read them from a frame ``open_frame`` checked: C calls
through frame.pxd.

The checksum is CRC32C (Castagnoli). On x86 with SSE4.2 (checked at run time) the checksum of
a small buffer is computed inline with the crc32 instruction, so a small frame's checksum
costs a few nanoseconds instead of a Python call; a large buffer, or a machine without
SSE4.2, goes to the crc32c package, which interleaves several streams for throughput. Both
compute the same function (the differential tests compare them).
"""

from cpython.buffer cimport PyBUF_READ
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.memoryview cimport PyMemoryView_FromMemory
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t

from fastraft.accel.compiled.ints cimport (
    MAX_U32, fr_load_u16, fr_load_u32, fr_store_u32)

cdef extern from *:
    """
    #include <stdint.h>
    #include <string.h>

    #if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    #include <nmmintrin.h>
    /* One stream of crc32 instructions: the latency-bound loop is fastest below a few KiB. */
    __attribute__((target("sse4.2")))
    static uint32_t fr_crc32c_inline(const unsigned char *p, size_t n) {
        uint64_t c = 0xFFFFFFFFu;
        while (n >= 8) {
            uint64_t w; memcpy(&w, p, 8);
            c = _mm_crc32_u64(c, w);
            p += 8; n -= 8;
        }
        uint32_t c32 = (uint32_t)c;
        while (n > 0) { c32 = _mm_crc32_u8(c32, *p); p++; n--; }
        return c32 ^ 0xFFFFFFFFu;
    }
    static int fr_crc32c_inline_available(void) {
        __builtin_cpu_init();
        return __builtin_cpu_supports("sse4.2") ? 1 : 0;
    }
    #else
    static uint32_t fr_crc32c_inline(const unsigned char *p, size_t n) {
        (void)p; (void)n; return 0;
    }
    static int fr_crc32c_inline_available(void) { return 0; }
    #endif
    """
    uint32_t fr_crc32c_inline(const unsigned char *p, size_t n) nogil
    int fr_crc32c_inline_available() nogil

# The crc32c package is imported on first use, not here: its own import pulls in socket
# (through importlib.metadata), and importing fastraft's engine must load no I/O module.
cdef object _crc32c_package = None

from fastraft.errors import CodecError

__all__ = ["WIRE_VERSION", "HEADER_SIZE", "DEFAULT_MAX_FRAME_BYTES", "FRAME_ENTRIES",
           "FRAME_MESSAGE", "frame_size"]

WIRE_VERSION = 2  # see the twin for what changed in version 2
HEADER_SIZE = 12
DEFAULT_MAX_FRAME_BYTES = 64 * 1024 * 1024
FRAME_ENTRIES = 1
FRAME_MESSAGE = 2

# Limits above this are clamped: no frame can be this long (its body length is a u32).
cdef uint64_t LIMIT_CLAMP = 1 << 40
# Below this many bytes one stream of crc32 instructions beats a call into the package.
cdef Py_ssize_t INLINE_CRC_MAX_BYTES = 4096
cdef bint inline_crc = fr_crc32c_inline_available()

_FRAME_NAMES = {1: "an entry batch", 2: "a message"}


cdef uint32_t checksum(const unsigned char *p, Py_ssize_t n) except? 0:
    if inline_crc and n <= INLINE_CRC_MAX_BYTES:
        return fr_crc32c_inline(p, <size_t>n)
    global _crc32c_package
    if _crc32c_package is None:
        from crc32c import crc32c as _crc32c_package
    return _crc32c_package(PyMemoryView_FromMemory(<char *>p, n, PyBUF_READ))


cdef uint64_t check_limit(object max_frame_bytes) except 0:
    if not isinstance(max_frame_bytes, int):
        raise TypeError(f"max_frame_bytes must be an int, not {type(max_frame_bytes).__name__}")
    if max_frame_bytes < C_HEADER:
        raise ValueError(f"max_frame_bytes must be at least {C_HEADER}, got {max_frame_bytes}")
    if max_frame_bytes > LIMIT_CLAMP:
        return LIMIT_CLAMP
    return <uint64_t>max_frame_bytes


cdef object contiguous(object data):
    """A byte view of any contiguous bytes-like object (the same checks as the twin)."""
    try:
        view = memoryview(data)
    except TypeError:
        raise TypeError(f"expected a bytes-like object, not {type(data).__name__}") from None
    if not view.c_contiguous:
        raise TypeError("expected a contiguous bytes-like object")
    return view.cast("B")


cdef Py_ssize_t _read_header(const unsigned char *p, Py_ssize_t size, uint64_t limit,
                             object max_frame_bytes, int *kind_out, uint32_t *crc_out) except -1:
    """Validate a header; return the whole frame's length (the twin's _read_header)."""
    if size < C_HEADER:
        raise CodecError(f"truncated frame header: {size} of {C_HEADER} bytes")
    cdef uint8_t version = p[0]
    cdef uint8_t kind = p[1]
    cdef uint16_t reserved = fr_load_u16(p + 2)
    cdef uint64_t total = C_HEADER + <uint64_t>fr_load_u32(p + 4)
    if version != C_VERSION:
        raise CodecError(f"unsupported wire version {version} (this build speaks {C_VERSION})")
    if kind < C_ENTRIES or kind > C_MESSAGE:  # 3, once a per-entry record, is unknown too
        raise CodecError(f"unknown frame kind {kind}")
    if reserved != 0:
        raise CodecError(f"reserved header field is {reserved}, must be 0")
    if total > limit:
        raise CodecError(f"frame of {total} bytes exceeds the limit of "
                         f"{int(max_frame_bytes)} bytes")
    kind_out[0] = kind
    crc_out[0] = fr_load_u32(p + 8)
    return <Py_ssize_t>total


cdef Py_ssize_t open_frame(const unsigned char *p, Py_ssize_t size, int expected_kind,
                            uint64_t limit, object max_frame_bytes) except -1:
    """Validate a whole frame of ``expected_kind``; return its length."""
    cdef int kind
    cdef uint32_t crc, actual
    cdef Py_ssize_t total = _read_header(p, size, limit, max_frame_bytes, &kind, &crc)
    if kind != expected_kind:
        raise CodecError(f"expected {_FRAME_NAMES[expected_kind]} frame, "
                         f"got {_FRAME_NAMES[kind]} frame")
    if size < total:
        raise CodecError(f"truncated frame: {size} of {total} bytes")
    if size > total:
        raise CodecError(f"{size - total} bytes of trailing garbage after the frame")
    actual = checksum(p + C_HEADER, total - C_HEADER)
    if actual != crc:
        raise CodecError(f"checksum mismatch: header says {crc:#010x}, "
                         f"body has {actual:#010x}")
    return total


cdef bytes new_frame(Py_ssize_t body_len, uint64_t limit, object max_frame_bytes):
    """An uninitialised frame of ``body_len`` body bytes, within the limit."""
    cdef uint64_t total = C_HEADER + <uint64_t>body_len
    if total > limit:
        raise ValueError(f"frame of {total} bytes exceeds the limit of "
                         f"{int(max_frame_bytes)} bytes")
    if <uint64_t>body_len > MAX_U32:
        raise ValueError(f"frame body of {body_len} bytes does not fit in u32")
    return PyBytes_FromStringAndSize(NULL, <Py_ssize_t>total)


cdef int seal(bytes frame, uint8_t kind) except -1:
    """Write the header of a frame whose body is complete."""
    cdef unsigned char *w = <unsigned char *>PyBytes_AS_STRING(frame)
    cdef Py_ssize_t body_len = PyBytes_GET_SIZE(frame) - C_HEADER
    w[0] = C_VERSION
    w[1] = kind
    w[2] = 0
    w[3] = 0
    fr_store_u32(w + 4, <uint32_t>body_len)
    fr_store_u32(w + 8, checksum(w + C_HEADER, body_len))
    return 0


def frame_size(header, max_frame_bytes=DEFAULT_MAX_FRAME_BYTES):
    """Validate a frame header and return the whole frame's length (header + body).

    ``header`` holds at least the first HEADER_SIZE bytes of a frame (more is ignored).
    CodecError for a short header, a wrong version, an unknown frame kind, a set reserved
    field or a frame longer than ``max_frame_bytes``; the checksum is not checked here.
    """
    cdef uint64_t limit = check_limit(max_frame_bytes)
    cdef int kind
    cdef uint32_t crc
    if type(header) is not bytes:
        header = contiguous(header)[:C_HEADER].tobytes()
    cdef Py_ssize_t size = PyBytes_GET_SIZE(header)
    return _read_header(<const unsigned char *>PyBytes_AS_STRING(header),
                        size if size < C_HEADER else C_HEADER,
                        limit, max_frame_bytes, &kind, &crc)


