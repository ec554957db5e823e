/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* Certificates for terminated names until the ACME issue lands: one
 * self-signed ECDSA P-256 certificate per FQDN workload, and one per
 * wildcard "*.<gateway domain>" shared by every name workload, kept in
 * <root>/certs/ so a restart serves the same certificate.
 *
 * Files: <dir>/<file>.crt (PEM chain) and <dir>/<file>.key (PEM PKCS#8,
 * mode 0600), where <file> is the lower-cased name with a leading "*."
 * written as "_wildcard." (e.g. "_wildcard.gw.example.com.crt"). Written
 * atomically (temp + fsync + rename + fsync(dir)). A file pair that is
 * unreadable, does not parse, does not cover the name, or expires within
 * 30 days is replaced by a new one (logged).
 *
 * Certificates: serial 128 random bits, subject CN = name, SAN dNSName =
 * name, notBefore = now - 1 h, notAfter = now + 397 days, basicConstraints
 * CA:FALSE, keyUsage digitalSignature, extKeyUsage serverAuth, signed
 * ecdsa-with-SHA256 by its own key.
 *
 * Everything runs on the daemon's loop thread; generating one takes about
 * a millisecond, loading one from disk tens of microseconds. */

#include <stdbool.h>
#include <stddef.h>

struct gw_certs;
struct proxy_cert;

/* @dir is created (0700) if missing. Returns 0 or -errno. */
int gw_certs_new(const char *dir, struct gw_certs **ret);
/* Accepts NULL; returns NULL. Certificates still referenced by routes stay
 * valid (they are reference-counted). */
struct gw_certs *gw_certs_free(struct gw_certs *c);
static inline void gw_certs_freep(struct gw_certs **c)
{
        gw_certs_free(*c);
}

/* The certificate for @name (a host name, or "*.<domain>"): from the
 * cache, else loaded from the directory, else generated and saved. Returns
 * 0 with a borrowed pointer in *ret (valid until gw_certs_forget(@name) or
 * gw_certs_free(); take proxy_cert_ref() to keep it), or -errno with
 * *reterr (allocated; the caller frees; may be NULL). */
int gw_certs_get(struct gw_certs *c, const char *name, struct proxy_cert **ret, char **reterr);

/* Certificates an ACME server issued live in <dir>/acme/<file>.pem (the
 * chain, then the PKCS#8 key; mode 0600; one atomic write). gw_certs_get()
 * prefers such a certificate while it has not expired; a damaged file is
 * logged and moved aside ("<file>.pem.corrupt-<time>"), and the self-signed
 * one is served until a new one is installed. */

/* Check an issued chain and key (it loads, the key matches, it covers
 * @name), store it and make it the one gw_certs_get() returns from now on.
 * Routes holding the previous certificate keep it until they are put again.
 * Returns 0 with a borrowed *ret, or -EINVAL/-ENAMETOOLONG/-errno with
 * *reterr (allocated; may be NULL). */
int gw_certs_install(struct gw_certs *c, const char *name, const char *chain, size_t chain_len,
                     const char *key, size_t key_len, struct proxy_cert **ret, char **reterr);
/* Could a certificate issued for @name be stored (a name the store accepts
 * whose file name fits)? Returns 0, or -EINVAL/-ENAMETOOLONG with *reterr
 * (allocated; may be NULL): the manager orders nothing for such a name. */
int gw_certs_check_name(const char *name, char **reterr);
/* The stored issued chain of @name (PEM, allocated, NUL-terminated; the key
 * is not returned): 1, 0 when there is none or it expired, or -errno (a
 * damaged file is logged and moved aside). */
int gw_certs_issued_pem(struct gw_certs *c, const char *name, char **ret_pem, size_t *ret_len);
/* Is the certificate gw_certs_get() returns for @name an issued one? */
bool gw_certs_serves_issued(struct gw_certs *c, const char *name);

/* Drop @name from the cache and, if @remove_files, delete its files, the
 * issued one included (a deleted FQDN workload). Unknown names are ignored. */
void gw_certs_forget(struct gw_certs *c, const char *name, bool remove_files);
