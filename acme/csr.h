/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* The PKCS#10 certificate signing request (RFC 2986) sent to an ACME
 * order's finalize URL (RFC 8555 §7.4): the names in a subjectAltName
 * extension request, signed with the certificate's key. */

#include <stddef.h>
#include <stdint.h>

struct acme_key;

#define ACME_CSR_MAX_NAMES 100 /* RFC 8555 sets no limit; Let's Encrypt's is 100 */
#define ACME_CSR_CN_MAX    64  /* ub-common-name (RFC 5280 appendix A.1) */

/* A DER CSR for @names (DNS names, "*.d" allowed; 1..ACME_CSR_MAX_NAMES),
 * ECDSA P-256 with SHA-256 by @key. Every name goes into the SAN
 * extension; the subject is CN=<first name> when it fits in 64 bytes,
 * else empty (then the SAN is marked critical, RFC 5280 §4.2.1.6).
 * Returns 0 with *ret (caller frees with free()), -EINVAL for no names, too
 * many, or a name that is empty, longer than 253 bytes or not made of
 * letters, digits, '-', '_', '.' and '*', or -ENOMEM/-EIO. */
int acme_csr_new(const struct acme_key *key, const char *const *names, size_t n, uint8_t **ret,
                 size_t *ret_len);
