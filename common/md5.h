/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* MD5 (RFC 1321). Not for security: gatewayd needs it only to derive the
 * zos network ID (protocol-zbus-gateway.md §4.6), which is defined with it. */

#include <stddef.h>
#include <stdint.h>

#define MD5_DIGEST_SIZE 16

struct md5_ctx {
        uint32_t state[4]; /* A, B, C, D */
        uint64_t len;      /* message bytes hashed so far */
        uint8_t buf[64];   /* pending partial block */
};

void md5_init(struct md5_ctx *c);
void md5_update(struct md5_ctx *c, const void *data, size_t n);
/* Writes the digest and leaves @c in an unspecified state (md5_init() to reuse). */
void md5_final(struct md5_ctx *c, uint8_t ret[MD5_DIGEST_SIZE]);
/* One-shot helper. */
void md5(const void *data, size_t n, uint8_t ret[MD5_DIGEST_SIZE]);
