/* SPDX-License-Identifier: Apache-2.0 */
#include "common/siphash.h"

#include <sys/random.h>
#include <sys/types.h>

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND                                                                                   \
        do {                                                                                       \
                v0 += v1;                                                                          \
                v1 = ROTL(v1, 13);                                                                 \
                v1 ^= v0;                                                                          \
                v0 = ROTL(v0, 32);                                                                 \
                v2 += v3;                                                                          \
                v3 = ROTL(v3, 16);                                                                 \
                v3 ^= v2;                                                                          \
                v0 += v3;                                                                          \
                v3 = ROTL(v3, 21);                                                                 \
                v3 ^= v0;                                                                          \
                v2 += v1;                                                                          \
                v1 = ROTL(v1, 17);                                                                 \
                v1 ^= v2;                                                                          \
                v2 = ROTL(v2, 32);                                                                 \
        } while (0)

uint64_t siphash13(const struct siphash_key *k, const void *p, size_t len, bool casefold)
{
        const unsigned char *s = p;
        uint64_t v0 = UINT64_C(0x736f6d6570736575) ^ k->k0;
        uint64_t v1 = UINT64_C(0x646f72616e646f6d) ^ k->k1;
        uint64_t v2 = UINT64_C(0x6c7967656e657261) ^ k->k0;
        uint64_t v3 = UINT64_C(0x7465646279746573) ^ k->k1;
        uint64_t word = 0, b;

        for (size_t i = 0; i < len; i++) {
                unsigned char c = casefold ? ascii_tolower(s[i]) : s[i];

                word |= (uint64_t)c << (8 * (i & 7));
                if ((i & 7) == 7) {
                        v3 ^= word;
                        SIPROUND;
                        v0 ^= word;
                        word = 0;
                }
        }
        b = ((uint64_t)len << 56) | word;
        v3 ^= b;
        SIPROUND;
        v0 ^= b;
        v2 ^= 0xff;
        SIPROUND;
        SIPROUND;
        SIPROUND;
        return v0 ^ v1 ^ v2 ^ v3;
}

void siphash_key_random(struct siphash_key *ret)
{
        static uint64_t counter;
        uint64_t k[2];

        /* GRND_NONBLOCK: never stall daemon start-up on an uninitialised
         * pool. The fallback is weaker (ASLR + a counter) but still differs
         * per key. */
        if (getrandom(k, sizeof(k), GRND_NONBLOCK) != (ssize_t)sizeof(k)) {
                k[0] = (uint64_t)(uintptr_t)ret ^ UINT64_C(0x9e3779b97f4a7c15);
                k[1] = (uint64_t)(uintptr_t)&counter ^
                       (__atomic_add_fetch(&counter, 1, __ATOMIC_RELAXED) *
                        UINT64_C(0xbf58476d1ce4e5b9));
        }
        ret->k0 = k[0];
        ret->k1 = k[1];
}
