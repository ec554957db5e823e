/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* SipHash-1-3 (Aumasson/Bernstein) with a random per-table key, for hash
 * tables whose keys a remote party chooses (workload IDs, host names). */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct siphash_key {
        uint64_t k0, k1;
};

/* A fresh random key (getrandom, never blocking; a weaker per-call fallback
 * if the pool is not initialised yet). */
void siphash_key_random(struct siphash_key *ret);

/* Hash @len bytes; with @casefold, ASCII letters hash as lower case, so a
 * name can be hashed where it lies without a lower-cased copy. */
uint64_t siphash13(const struct siphash_key *k, const void *p, size_t len, bool casefold);

static inline unsigned char ascii_tolower(unsigned char c)
{
        return c >= 'A' && c <= 'Z' ? (unsigned char)(c + ('a' - 'A')) : c;
}
