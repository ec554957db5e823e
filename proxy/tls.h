/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* Server-side TLS for terminated routes (BoringSSL).
 *
 *   - struct proxy_cert: one certificate chain and its private key, parsed
 *     once (CRYPTO_BUFFERs + EVP_PKEY) and reference-counted, so thousands
 *     of routes can share one wildcard certificate and a handshake installs
 *     it with SSL_set_chain_and_key() without parsing anything. It also
 *     keeps the DNS names of the leaf (subjectAltName dNSName entries,
 *     lower-cased) for the "Host covered by the connection's certificate"
 *     check.
 *   - struct proxy_tls: the shared SSL_CTX: TLS 1.2 and 1.3 only, ECDHE
 *     with AEAD suites only (AES-GCM, ChaCha20-Poly1305), X25519 and P-256,
 *     ALPN "h2" preferred, then "http/1.1" (a client offering neither gets
 *     no ALPN, not a failure: HTTP/1.1), stateless session tickets whose keys BoringSSL rotates
 *     itself (SSL_DEFAULT_TICKET_KEY_ROTATION_INTERVAL, keeping the previous
 *     key so tickets stay valid across one rotation), no session cache,
 *     buffers released when idle, handshake config shed after the
 *     handshake (memory per idle connection).
 *
 * Threading: a proxy_tls and proxy_certs may be used from any thread once
 * created (SSL_CTX is thread-safe for SSL_new; refcounts are atomic). */

#include <stdbool.h>
#include <stddef.h>

#include <openssl/base.h>

struct proxy_cert;
struct proxy_tls;

/* Parse a PEM chain (leaf first, then intermediates) and its PEM private
 * key (PKCS#8, SEC1 "EC PRIVATE KEY" or PKCS#1 RSA). Checks that the key
 * matches the leaf. Returns 0 with one reference in *ret, or -EINVAL with a
 * specific *reterr ("no certificate in chain", "private key does not match
 * the certificate", ...; allocated, caller frees; may be NULL) or -ENOMEM. */
int proxy_cert_new_pem(const char *chain_pem, size_t chain_len, const char *key_pem, size_t key_len,
                       struct proxy_cert **ret, char **reterr);
struct proxy_cert *proxy_cert_ref(struct proxy_cert *c);
/* Accepts NULL; returns NULL. */
struct proxy_cert *proxy_cert_unref(struct proxy_cert *c);
static inline void proxy_cert_unrefp(struct proxy_cert **c)
{
        proxy_cert_unref(*c);
}

/* Does the leaf cover @host (@len bytes, any case, no port, one trailing
 * dot ignored)? An exact dNSName match, or a "*.parent" entry matching
 * exactly one label in front of "parent" (RFC 6125 §6.4.3: the wildcard is
 * the whole left-most label; "*.a.b" covers "x.a.b", not "a.b" nor
 * "y.x.a.b"). Without any dNSName the subject CN is used. */
bool proxy_cert_covers(const struct proxy_cert *c, const char *host, size_t len);
/* The leaf's notAfter as Unix seconds (for renewal and metrics). */
long long proxy_cert_not_after(const struct proxy_cert *c);
/* Certificate @i of the chain (0: the leaf), or NULL past its end. Those
 * after the leaf come from a pool of the process: equal intermediates of
 * different certificates are one buffer. */
const CRYPTO_BUFFER *proxy_cert_chain(const struct proxy_cert *c, size_t i);

/* The shared server context. Returns 0 or -ENOMEM/-EIO. */
int proxy_tls_new(struct proxy_tls **ret);
/* Accepts NULL; returns NULL. Only once no SSL made from it is alive. */
struct proxy_tls *proxy_tls_free(struct proxy_tls *t);
static inline void proxy_tls_freep(struct proxy_tls **t)
{
        proxy_tls_free(*t);
}

/* A server SSL object for one accepted connection that will present @cert
 * (installed with SSL_set_chain_and_key; the SSL holds its own references).
 * The caller sets the BIO (SSL_set_bio / SSL_set_fd) and drives the
 * handshake. Returns 0 and *ret, or -ENOMEM. */
int proxy_tls_new_ssl(struct proxy_tls *t, const struct proxy_cert *cert, SSL **ret);

/* The SSL_CTX, for tests and for the engine's own tuning. Borrowed. */
SSL_CTX *proxy_tls_ctx(struct proxy_tls *t);

/* The handshake chose ALPN "h2" on @ssl. */
bool proxy_tls_alpn_h2(const SSL *ssl);
