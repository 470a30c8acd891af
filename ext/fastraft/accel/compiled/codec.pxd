# The C-level primitives of the compiled codec: little-endian loads and stores whatever the
# host's byte order, and CRC32C (Castagnoli) on a raw buffer. On x86 with SSE4.2 (checked at
# run time) the checksum of a small buffer is computed inline with the crc32 instruction, so a
# small frame's checksum costs a few nanoseconds instead of a Python call; a large buffer, or a
# machine without SSE4.2, goes to the crc32c package, which interleaves several streams for
# throughput. Both compute the same function (the differential tests compare them).

from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t

cdef extern from *:
    """
    #include <stdint.h>
    #include <string.h>

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
    uint64_t fr_load_u64(const unsigned char *p) nogil
    uint32_t fr_load_u32(const unsigned char *p) nogil
    uint16_t fr_load_u16(const unsigned char *p) nogil
    void fr_store_u64(unsigned char *p, uint64_t v) nogil
    void fr_store_u32(unsigned char *p, uint32_t v) nogil
    uint32_t fr_crc32c_inline(const unsigned char *p, size_t n) nogil
    int fr_crc32c_inline_available() nogil
