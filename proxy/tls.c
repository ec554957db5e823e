/* SPDX-License-Identifier: Apache-2.0 */
#include "proxy/tls.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/bytestring.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/pool.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "common/macros.h"
#include "common/siphash.h"

/* Enough for a leaf and a few intermediates; a longer chain is refused. */
#define CERT_CHAIN_MAX 8
/* DNS names kept from the leaf's subjectAltName. */
#define CERT_NAMES_MAX 100

/* The certificates after the leaf come from one pool for the process: the
 * thousands of certificates one CA issued to a node share its intermediate
 * (about 1 KiB each), which is then kept once. Leaves are unique and stay
 * out of it. The pool lives as long as the process (BoringSSL frees a pool
 * only when it is empty); without it (no memory) chains are not shared. */
static CRYPTO_BUFFER_POOL *chain_pool;
static pthread_once_t chain_pool_once = PTHREAD_ONCE_INIT;

static void chain_pool_init(void)
{
        chain_pool = CRYPTO_BUFFER_POOL_new();
}

struct proxy_cert {
        atomic_uint n_ref;
        size_t n_chain;
        CRYPTO_BUFFER *chain[CERT_CHAIN_MAX];
        EVP_PKEY *key;
        long long not_after;
        size_t n_names;
        char **names; /* lower-case, no trailing dot; "*.parent" for wildcards */
};

struct proxy_tls {
        SSL_CTX *ctx;
};

static void seterr(char **reterr, const char *fmt, ...) _printf_(2, 3);
static void seterr(char **reterr, const char *fmt, ...)
{
        va_list ap;

        if (!reterr)
                return;
        va_start(ap, fmt);
        if (vasprintf(reterr, fmt, ap) < 0)
                *reterr = NULL;
        va_end(ap);
}

static void cert_free(struct proxy_cert *c)
{
        for (size_t i = 0; i < c->n_chain; i++)
                CRYPTO_BUFFER_free(c->chain[i]);
        EVP_PKEY_free(c->key);
        for (size_t i = 0; i < c->n_names; i++)
                free(c->names[i]);
        free(c->names);
        free(c);
}

struct proxy_cert *proxy_cert_ref(struct proxy_cert *c)
{
        if (c)
                atomic_fetch_add_explicit(&c->n_ref, 1, memory_order_relaxed);
        return c;
}

struct proxy_cert *proxy_cert_unref(struct proxy_cert *c)
{
        if (c && atomic_fetch_sub_explicit(&c->n_ref, 1, memory_order_acq_rel) == 1)
                cert_free(c);
        return NULL;
}

/* Keep @s (@len bytes) lower-cased without one trailing dot. A name that is
 * empty, longer than a DNS name can be or holds a NUL is ignored (returns
 * 0); -ENOMEM if the copy fails. */
static int cert_add_name(struct proxy_cert *c, const unsigned char *s, size_t len)
{
        char *n;

        if (len > 0 && s[len - 1] == '.')
                len--;
        if (c->n_names >= CERT_NAMES_MAX || len == 0 || len > 253 || memchr(s, 0, len))
                return 0;
        n = malloc(len + 1);
        if (!n)
                return -ENOMEM;
        for (size_t i = 0; i < len; i++)
                n[i] = (char)ascii_tolower(s[i]);
        n[len] = 0;
        c->names[c->n_names++] = n;
        return 0;
}

static int cert_collect_names(struct proxy_cert *c, X509 *leaf)
{
        GENERAL_NAMES *sans;
        int r = 0;

        c->names = calloc(CERT_NAMES_MAX, sizeof(char *));
        if (!c->names)
                return -ENOMEM;
        sans = X509_get_ext_d2i(leaf, NID_subject_alt_name, NULL, NULL);
        if (sans) {
                for (size_t i = 0; i < sk_GENERAL_NAME_num(sans); i++) {
                        const GENERAL_NAME *g = sk_GENERAL_NAME_value(sans, i);

                        if (g->type != GEN_DNS)
                                continue;
                        r = cert_add_name(c, ASN1_STRING_get0_data(g->d.dNSName),
                                          (size_t)ASN1_STRING_length(g->d.dNSName));
                        if (r < 0)
                                break;
                }
                GENERAL_NAMES_free(sans);
                if (r < 0 || c->n_names > 0)
                        return r;
        }
        /* No dNSName: the subject's common name. */
        X509_NAME *subj = X509_get_subject_name(leaf);
        int idx = subj ? X509_NAME_get_index_by_NID(subj, NID_commonName, -1) : -1;
        if (idx >= 0) {
                ASN1_STRING *cn = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subj, idx));
                if (cn)
                        r = cert_add_name(c, ASN1_STRING_get0_data(cn),
                                          (size_t)ASN1_STRING_length(cn));
        }
        return r;
}

static int cert_not_after(X509 *leaf, long long *ret)
{
        ASN1_TIME *epoch = ASN1_TIME_set(NULL, 0);
        int days, secs, ok;

        if (!epoch)
                return -ENOMEM;
        ok = ASN1_TIME_diff(&days, &secs, epoch, X509_get0_notAfter(leaf));
        ASN1_TIME_free(epoch);
        if (!ok)
                return -EINVAL;
        *ret = (long long)days * 86400 + secs;
        return 0;
}

int proxy_cert_new_pem(const char *chain_pem, size_t chain_len, const char *key_pem, size_t key_len,
                       struct proxy_cert **ret, char **reterr)
{
        struct proxy_cert *c = NULL;
        X509 *leaf = NULL, *x = NULL;
        BIO *bio = NULL;
        int r;

        if (!chain_pem || !key_pem || chain_len > INT_MAX || key_len > INT_MAX || !ret)
                return -EINVAL;
        c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        atomic_init(&c->n_ref, 1);

        bio = BIO_new_mem_buf(chain_pem, (int)chain_len);
        if (!bio) {
                r = -ENOMEM;
                goto fail;
        }
        while ((x = PEM_read_bio_X509(bio, NULL, NULL, NULL))) {
                uint8_t *der = NULL;
                int der_len;

                if (c->n_chain >= CERT_CHAIN_MAX) {
                        seterr(reterr, "certificate chain longer than %d certificates",
                               CERT_CHAIN_MAX);
                        r = -EINVAL;
                        goto fail;
                }
                der_len = i2d_X509(x, &der);
                if (der_len <= 0) {
                        r = -ENOMEM;
                        goto fail;
                }
                if (c->n_chain > 0)
                        (void)pthread_once(&chain_pool_once, chain_pool_init);
                c->chain[c->n_chain] =
                        CRYPTO_BUFFER_new(der, (size_t)der_len, c->n_chain > 0 ? chain_pool : NULL);
                OPENSSL_free(der);
                if (!c->chain[c->n_chain]) {
                        r = -ENOMEM;
                        goto fail;
                }
                c->n_chain++;
                if (!leaf)
                        leaf = TAKE_PTR(x);
                else
                        X509_free(TAKE_PTR(x));
        }
        {
                /* The loop ends on "no start line" after the last PEM block;
                 * any other error is a damaged certificate in the chain. */
                uint32_t e = ERR_peek_last_error();

                ERR_clear_error();
                if (c->n_chain > 0 &&
                    !(ERR_GET_LIB(e) == ERR_LIB_PEM && ERR_GET_REASON(e) == PEM_R_NO_START_LINE)) {
                        seterr(reterr, "certificate %zu in chain does not parse", c->n_chain + 1);
                        r = -EINVAL;
                        goto fail;
                }
        }
        BIO_free(bio);
        bio = NULL;
        if (!leaf) {
                seterr(reterr, "no certificate in chain");
                r = -EINVAL;
                goto fail;
        }

        bio = BIO_new_mem_buf(key_pem, (int)key_len);
        if (!bio) {
                r = -ENOMEM;
                goto fail;
        }
        c->key = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
        if (!c->key) {
                ERR_clear_error();
                seterr(reterr, "no private key in key file");
                r = -EINVAL;
                goto fail;
        }
        if (!X509_check_private_key(leaf, c->key)) {
                ERR_clear_error();
                seterr(reterr, "private key does not match the certificate");
                r = -EINVAL;
                goto fail;
        }
        r = cert_not_after(leaf, &c->not_after);
        if (r < 0) {
                seterr(reterr, "unreadable notAfter in the certificate");
                goto fail;
        }
        r = cert_collect_names(c, leaf);
        if (r < 0)
                goto fail;
        if (c->n_names == 0) {
                seterr(reterr, "certificate names no DNS name (subjectAltName or CN)");
                r = -EINVAL;
                goto fail;
        }
        {
                /* Collected into room for CERT_NAMES_MAX (800 bytes); keep
                 * what is used, since a node holds thousands of them. */
                char **names = realloc(c->names, c->n_names * sizeof(*c->names));

                if (names)
                        c->names = names;
        }
        X509_free(leaf);
        BIO_free(bio);
        *ret = c;
        return 0;
fail:
        X509_free(leaf);
        X509_free(x);
        BIO_free(bio);
        cert_free(c);
        return r;
}

bool proxy_cert_covers(const struct proxy_cert *c, const char *host, size_t len)
{
        if (!c || !host)
                return false;
        if (len > 0 && host[len - 1] == '.')
                len--;
        if (len == 0)
                return false;
        for (size_t i = 0; i < c->n_names; i++) {
                const char *n = c->names[i];
                size_t nlen = strlen(n);

                if (nlen == len && strncasecmp(n, host, len) == 0)
                        return true;
                if (nlen > 2 && n[0] == '*' && n[1] == '.') {
                        /* "*.parent": one non-empty label, then ".parent". */
                        const char *dot = memchr(host, '.', len);
                        size_t rest;

                        if (!dot || dot == host)
                                continue;
                        rest = len - (size_t)(dot - host);
                        if (rest == nlen - 1 && strncasecmp(n + 1, dot, rest) == 0)
                                return true;
                }
        }
        return false;
}

long long proxy_cert_not_after(const struct proxy_cert *c)
{
        return c ? c->not_after : 0;
}

const CRYPTO_BUFFER *proxy_cert_chain(const struct proxy_cert *c, size_t i)
{
        return c && i < c->n_chain ? c->chain[i] : NULL;
}

/* ---- the server context ---- */

static const uint8_t alpn_h2[] = {2, 'h', '2'};
static const uint8_t alpn_http11[] = {8, 'h', 't', 't', 'p', '/', '1', '.', '1'};

static bool alpn_offered(const uint8_t *in, unsigned in_len, const uint8_t *want,
                         const uint8_t **out, uint8_t *out_len, bool *bad)
{
        CBS protos, proto;

        CBS_init(&protos, in, in_len);
        while (CBS_len(&protos) > 0) {
                if (!CBS_get_u8_length_prefixed(&protos, &proto)) {
                        *bad = true;
                        return false;
                }
                if (CBS_len(&proto) == want[0] &&
                    memcmp(CBS_data(&proto), want + 1, want[0]) == 0) {
                        *out = CBS_data(&proto);
                        *out_len = (uint8_t)CBS_len(&proto);
                        return true;
                }
        }
        return false;
}

/* Our preference, whatever the client's order: h2, then http/1.1. */
static int alpn_select(SSL *ssl, const uint8_t **out, uint8_t *out_len, const uint8_t *in,
                       unsigned in_len, void *arg)
{
        bool bad = false;

        (void)ssl;
        (void)arg;
        if (alpn_offered(in, in_len, alpn_h2, out, out_len, &bad))
                return SSL_TLSEXT_ERR_OK;
        if (!bad && alpn_offered(in, in_len, alpn_http11, out, out_len, &bad))
                return SSL_TLSEXT_ERR_OK;
        /* Neither offered: no ALPN, HTTP/1.1. */
        return SSL_TLSEXT_ERR_NOACK;
}

bool proxy_tls_alpn_h2(const SSL *ssl)
{
        const uint8_t *p;
        unsigned len;

        SSL_get0_alpn_selected(ssl, &p, &len);
        return len == alpn_h2[0] && memcmp(p, alpn_h2 + 1, len) == 0;
}

/* TLS 1.2 suites: ECDHE with AEADs only, ECDSA first. TLS 1.3's suites are
 * fixed in BoringSSL and are all AEADs. */
static const char cipher_list[] = "ECDHE-ECDSA-AES128-GCM-SHA256:"
                                  "ECDHE-ECDSA-CHACHA20-POLY1305:"
                                  "ECDHE-ECDSA-AES256-GCM-SHA384:"
                                  "ECDHE-RSA-AES128-GCM-SHA256:"
                                  "ECDHE-RSA-CHACHA20-POLY1305:"
                                  "ECDHE-RSA-AES256-GCM-SHA384";

int proxy_tls_new(struct proxy_tls **ret)
{
        struct proxy_tls *t;
        SSL_CTX *ctx;

        t = calloc(1, sizeof(*t));
        if (!t)
                return -ENOMEM;
        /* Buffers instead of X509 objects: certificates are installed per
         * connection from CRYPTO_BUFFERs; we never verify client certs. */
        ctx = SSL_CTX_new(TLS_with_buffers_method());
        if (!ctx) {
                free(t);
                return -ENOMEM;
        }
        t->ctx = ctx;
        if (!SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) ||
            !SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) ||
            !SSL_CTX_set_strict_cipher_list(ctx, cipher_list) ||
            !SSL_CTX_set1_curves_list(ctx, "X25519:P-256")) {
                ERR_clear_error();
                proxy_tls_free(t);
                return -EIO;
        }
        /* Stateless tickets only, with BoringSSL's own key rotation (every
         * SSL_DEFAULT_TICKET_KEY_ROTATION_INTERVAL, the previous key still
         * accepted). One TLS 1.3 ticket per handshake: each costs an
         * encryption, and HTTP/1.1 clients resume one connection at a
         * time. */
        SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
        SSL_CTX_set_num_tickets(ctx, 1);
        SSL_CTX_set_mode(ctx, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
        SSL_CTX_set_options(ctx, SSL_OP_CIPHER_SERVER_PREFERENCE);
        SSL_CTX_set_alpn_select_cb(ctx, alpn_select, NULL);
        *ret = t;
        return 0;
}

struct proxy_tls *proxy_tls_free(struct proxy_tls *t)
{
        if (t) {
                SSL_CTX_free(t->ctx);
                free(t);
        }
        return NULL;
}

int proxy_tls_new_ssl(struct proxy_tls *t, const struct proxy_cert *cert, SSL **ret)
{
        SSL *ssl;

        if (!t || !cert || !ret)
                return -EINVAL;
        ssl = SSL_new(t->ctx);
        if (!ssl)
                return -ENOMEM;
        if (!SSL_set_chain_and_key(ssl, cert->chain, cert->n_chain, cert->key, NULL)) {
                ERR_clear_error();
                SSL_free(ssl);
                return -ENOMEM;
        }
        /* Free the handshake configuration once the handshake is done:
         * memory per idle connection. */
        SSL_set_shed_handshake_config(ssl, 1);
        SSL_set_accept_state(ssl);
        *ret = ssl;
        return 0;
}

SSL_CTX *proxy_tls_ctx(struct proxy_tls *t)
{
        return t ? t->ctx : NULL;
}
