/* SPDX-License-Identifier: Apache-2.0 */
#include "common/md5.h"

#include <string.h>

/* Per-round shift amounts and the sine-derived constants T[i] =
 * floor(2^32 * abs(sin(i + 1))), RFC 1321 §3.4. */
static const uint8_t S[4][4] = {
        {7, 12, 17, 22}, /* round 1 */
        {5, 9, 14, 20},  /* round 2 */
        {4, 11, 16, 23}, /* round 3 */
        {6, 10, 15, 21}, /* round 4 */
};

static const uint32_t T[64] = {
        0xd76aa478, 0xe8c7b756, 0x242070db, 0xc1bdceee, 0xf57c0faf, 0x4787c62a, 0xa8304613,
        0xfd469501, 0x698098d8, 0x8b44f7af, 0xffff5bb1, 0x895cd7be, 0x6b901122, 0xfd987193,
        0xa679438e, 0x49b40821, 0xf61e2562, 0xc040b340, 0x265e5a51, 0xe9b6c7aa, 0xd62f105d,
        0x02441453, 0xd8a1e681, 0xe7d3fbc8, 0x21e1cde6, 0xc33707d6, 0xf4d50d87, 0x455a14ed,
        0xa9e3e905, 0xfcefa3f8, 0x676f02d9, 0x8d2a4c8a, 0xfffa3942, 0x8771f681, 0x6d9d6122,
        0xfde5380c, 0xa4beea44, 0x4bdecfa9, 0xf6bb4b60, 0xbebfbc70, 0x289b7ec6, 0xeaa127fa,
        0xd4ef3085, 0x04881d05, 0xd9d4d039, 0xe6db99e5, 0x1fa27cf8, 0xc4ac5665, 0xf4292244,
        0x432aff97, 0xab9423a7, 0xfc93a039, 0x655b59c3, 0x8f0ccc92, 0xffeff47d, 0x85845dd1,
        0x6fa87e4f, 0xfe2ce6e0, 0xa3014314, 0x4e0811a1, 0xf7537e82, 0xbd3af235, 0x2ad7d2bb,
        0xeb86d391,
};

static inline uint32_t rotl32(uint32_t x, unsigned n)
{
        return (x << n) | (x >> (32 - n));
}

static void transform(uint32_t state[4], const uint8_t block[64])
{
        uint32_t a = state[0], b = state[1], c = state[2], d = state[3];
        uint32_t x[16];

        /* MD5 is little-endian by definition (RFC 1321 §2). */
        for (unsigned i = 0; i < 16; i++)
                x[i] = (uint32_t)block[4 * i] | (uint32_t)block[4 * i + 1] << 8 |
                       (uint32_t)block[4 * i + 2] << 16 | (uint32_t)block[4 * i + 3] << 24;

        for (unsigned i = 0; i < 64; i++) {
                uint32_t f, tmp;
                unsigned g;

                if (i < 16) {
                        f = (b & c) | (~b & d);
                        g = i;
                } else if (i < 32) {
                        f = (b & d) | (c & ~d);
                        g = (5 * i + 1) & 15;
                } else if (i < 48) {
                        f = b ^ c ^ d;
                        g = (3 * i + 5) & 15;
                } else {
                        f = c ^ (b | ~d);
                        g = (7 * i) & 15;
                }
                tmp = d;
                d = c;
                c = b;
                b = b + rotl32(a + f + T[i] + x[g], S[i / 16][i % 4]);
                a = tmp;
        }

        state[0] += a;
        state[1] += b;
        state[2] += c;
        state[3] += d;
}

void md5_init(struct md5_ctx *c)
{
        *c = (struct md5_ctx){
                .state = {0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476},
        };
}

void md5_update(struct md5_ctx *c, const void *data, size_t n)
{
        const uint8_t *p = data;
        size_t used = c->len & 63;

        c->len += n;
        if (used) {
                size_t take = 64 - used < n ? 64 - used : n;

                memcpy(c->buf + used, p, take);
                p += take;
                n -= take;
                if (used + take < 64)
                        return;
                transform(c->state, c->buf);
        }
        for (; n >= 64; p += 64, n -= 64)
                transform(c->state, p);
        if (n)
                memcpy(c->buf, p, n);
}

void md5_final(struct md5_ctx *c, uint8_t ret[MD5_DIGEST_SIZE])
{
        static const uint8_t pad[64] = {0x80};
        uint64_t bits = c->len * 8;
        size_t used = c->len & 63;
        uint8_t lenbuf[8];

        /* Pad to 56 mod 64, then append the bit length, little-endian. */
        md5_update(c, pad, used < 56 ? 56 - used : 120 - used);
        for (unsigned i = 0; i < 8; i++)
                lenbuf[i] = (uint8_t)(bits >> (8 * i));
        md5_update(c, lenbuf, 8);

        for (unsigned i = 0; i < 4; i++)
                for (unsigned j = 0; j < 4; j++)
                        ret[4 * i + j] = (uint8_t)(c->state[i] >> (8 * j));
}

void md5(const void *data, size_t n, uint8_t ret[MD5_DIGEST_SIZE])
{
        struct md5_ctx c;

        md5_init(&c);
        md5_update(&c, data, n);
        md5_final(&c, ret);
}
