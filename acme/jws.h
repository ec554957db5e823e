/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* ACME's JOSE subset (RFC 8555 §6.2, RFC 7515, RFC 7518 §3.4): P-256 keys,
 * their JWK and RFC 7638 thumbprint, ES256 flattened JWS, and the challenge
 * key authorization (RFC 8555 §8.1) with its dns-01 digest (§8.4).
 *
 * Keys are immutable once made, so the JWK and thumbprint are computed
 * once and a key may be shared (acme_key_copy) by an order and its owner. */

#include <stddef.h>

#include "common/macros.h"

struct acme_key;

/* base64url(SHA-256): 43 characters. */
#define ACME_THUMBPRINT_LEN  43
#define ACME_DNS01_VALUE_LEN 43

/* A new P-256 key. Returns 0, -ENOMEM or -EIO (no randomness). */
int acme_key_generate(struct acme_key **ret);
/* Parse a P-256 private key: PKCS#8 ("PRIVATE KEY") or SEC1 ("EC PRIVATE
 * KEY") PEM; the first key block in @pem counts. Returns 0, -EINVAL for
 * anything else (no PEM, encrypted, RSA, another curve, an invalid key) or
 * -ENOMEM. */
int acme_key_from_pem(const char *pem, size_t len, struct acme_key **ret);
/* The key as unencrypted PKCS#8 PEM (caller frees *ret; *ret_len excludes
 * the NUL). Returns 0 or -ENOMEM. */
int acme_key_to_pem(const struct acme_key *k, char **ret, size_t *ret_len);
/* Another handle on the same key (shared, reference-counted underneath). */
int acme_key_copy(const struct acme_key *k, struct acme_key **ret);
/* Accepts NULL; returns NULL. */
struct acme_key *acme_key_free(struct acme_key *k);
static inline void acme_key_freep(struct acme_key **k)
{
        acme_key_free(*k);
}

/* The public JWK in RFC 7638 canonical form, which is also what newAccount
 * sends: {"crv":"P-256","kty":"EC","x":"…","y":"…"} (lexicographic
 * members, no whitespace). Owned by the key. */
const char *acme_key_jwk(const struct acme_key *k);
/* base64url(SHA-256(canonical JWK)), RFC 7638 §3; owned by the key. */
const char *acme_key_thumbprint(const struct acme_key *k);

/* Sign @payload for a POST to @url (RFC 8555 §6.2): the flattened JSON
 * serialization {"protected":…,"payload":…,"signature":…} with the
 * protected header {"alg":"ES256", "kid":@kid or "jwk":<JWK> when @kid is
 * NULL, "nonce":@nonce, "url":@url}. @payload "" is a POST-as-GET
 * (§6.3: the payload member is the empty string). The signature is the
 * 64-byte r||s of RFC 7518 §3.4, not DER. Returns 0 with a NUL-terminated
 * *ret (caller frees; *ret_len may be NULL), -EINVAL when @nonce or @url
 * is empty or @kid is "", or -ENOMEM/-EIO. */
int acme_jws_sign(const struct acme_key *k, const char *kid, const char *nonce, const char *url,
                  const char *payload, char **ret, size_t *ret_len);

/* "<token>.<thumbprint>" (RFC 8555 §8.1). Returns 0 (caller frees), -EINVAL
 * when @token is empty or not base64url (§8.3: a token is used in a URL
 * path and a file name, so nothing else is accepted), or -ENOMEM. */
int acme_key_authorization(const struct acme_key *k, const char *token, char **ret);
/* The dns-01 TXT value: base64url(SHA-256(@key_authorization)) (§8.4). */
void acme_dns01_value(const char *key_authorization, char ret[ACME_DNS01_VALUE_LEN + 1]);
