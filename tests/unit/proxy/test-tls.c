/* SPDX-License-Identifier: Apache-2.0 */
/* proxy/tls.c: certificates from PEM (good, bad, mismatched inputs), the
 * covers() rules, and real handshakes over a socketpair between an SSL from
 * proxy_tls_new_ssl() and a BoringSSL client: versions, suites, groups,
 * ALPN, chains and session resumption. Certificates are made here with
 * BoringSSL, so every case states exactly what it feeds in. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/ec_key.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/mem.h>
#include <openssl/nid.h>
#include <openssl/obj.h>
#include <openssl/pem.h>
#include <openssl/pool.h>
#include <openssl/rsa.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "common/macros.h"
#include "proxy/tls.h"

#define DAY (24LL * 60 * 60)

/* ---- making certificates ---- */

enum key_fmt {
        KEY_PKCS8,
        KEY_SEC1,  /* "EC PRIVATE KEY" */
        KEY_PKCS1, /* "RSA PRIVATE KEY" */
};

static EVP_PKEY *ec_key(int nid)
{
        EVP_PKEY *k = EVP_PKEY_new();
        EC_KEY *ec = EC_KEY_new_by_curve_name(nid);

        assert_non_null(k);
        assert_non_null(ec);
        assert_int_equal(EC_KEY_generate_key(ec), 1);
        assert_int_equal(EVP_PKEY_assign_EC_KEY(k, ec), 1);
        return k;
}

static EVP_PKEY *rsa_key(void)
{
        EVP_PKEY *k = EVP_PKEY_new();
        RSA *rsa = RSA_new();
        BIGNUM *e = BN_new();

        assert_non_null(k);
        assert_non_null(rsa);
        assert_non_null(e);
        assert_int_equal(BN_set_word(e, RSA_F4), 1);
        assert_int_equal(RSA_generate_key_ex(rsa, 2048, e, NULL), 1);
        assert_int_equal(EVP_PKEY_assign_RSA(k, rsa), 1);
        BN_free(e);
        return k;
}

struct spec {
        const char *cn;         /* subject CN, or NULL */
        const char *const *dns; /* SAN dNSNames (NULL-terminated), or NULL: no SAN */
        bool ip_san;            /* add an iPAddress SAN 192.0.2.1 */
        long long not_after;    /* seconds from now; 0: 90 days */
        EVP_PKEY *key;          /* the subject's key */
        X509 *issuer;           /* NULL: self-signed */
        EVP_PKEY *issuer_key;   /* with @issuer */
        bool ca;
};

static void add_ext(X509 *x, int nid, void *value, int crit)
{
        assert_int_equal(X509_add1_ext_i2d(x, nid, value, crit, X509V3_ADD_DEFAULT), 1);
}

static X509 *make_x509(const struct spec *s)
{
        X509 *x = X509_new();
        X509_NAME *name = X509_NAME_new();
        BASIC_CONSTRAINTS *bc = BASIC_CONSTRAINTS_new();
        time_t now = time(NULL);
        static uint64_t serial = 1000;

        assert_non_null(x);
        assert_non_null(name);
        assert_non_null(bc);
        assert_int_equal(X509_set_version(x, X509_VERSION_3), 1);
        assert_int_equal(ASN1_INTEGER_set_uint64(X509_get_serialNumber(x), serial++), 1);
        if (s->cn)
                assert_int_equal(X509_NAME_add_entry_by_NID(name, NID_commonName, MBSTRING_ASC,
                                                            (const uint8_t *)s->cn, -1, -1, 0),
                                 1);
        else
                assert_int_equal(X509_NAME_add_entry_by_NID(name, NID_organizationName,
                                                            MBSTRING_ASC, (const uint8_t *)"test",
                                                            -1, -1, 0),
                                 1);
        assert_int_equal(X509_set_subject_name(x, name), 1);
        assert_int_equal(
                X509_set_issuer_name(x, s->issuer ? X509_get_subject_name(s->issuer) : name), 1);
        assert_non_null(ASN1_TIME_adj(X509_getm_notBefore(x), now, 0, -3600));
        assert_non_null(ASN1_TIME_adj(X509_getm_notAfter(x), now, 0,
                                      (long)(s->not_after ? s->not_after : 90 * DAY)));
        assert_int_equal(X509_set_pubkey(x, s->key), 1);
        bc->ca = s->ca ? 0xff : 0;
        add_ext(x, NID_basic_constraints, bc, 1);
        BASIC_CONSTRAINTS_free(bc);
        if (s->dns || s->ip_san) {
                GENERAL_NAMES *gens = sk_GENERAL_NAME_new_null();

                assert_non_null(gens);
                for (size_t i = 0; s->dns && s->dns[i]; i++) {
                        GENERAL_NAME *g = GENERAL_NAME_new();
                        ASN1_IA5STRING *v = ASN1_IA5STRING_new();

                        assert_non_null(g);
                        assert_non_null(v);
                        assert_int_equal(ASN1_STRING_set(v, s->dns[i], (int)strlen(s->dns[i])), 1);
                        GENERAL_NAME_set0_value(g, GEN_DNS, v);
                        assert_true(sk_GENERAL_NAME_push(gens, g) > 0);
                }
                if (s->ip_san) {
                        GENERAL_NAME *g = GENERAL_NAME_new();
                        ASN1_OCTET_STRING *v = ASN1_OCTET_STRING_new();
                        static const uint8_t ip[4] = {192, 0, 2, 1};

                        assert_non_null(g);
                        assert_non_null(v);
                        assert_int_equal(ASN1_OCTET_STRING_set(v, ip, 4), 1);
                        GENERAL_NAME_set0_value(g, GEN_IPADD, v);
                        assert_true(sk_GENERAL_NAME_push(gens, g) > 0);
                }
                add_ext(x, NID_subject_alt_name, gens, 0);
                GENERAL_NAMES_free(gens);
        }
        assert_true(X509_sign(x, s->issuer_key ? s->issuer_key : s->key, EVP_sha256()) > 0);
        X509_NAME_free(name);
        return x;
}

/* PEM text of @x appended to *@buf (allocated, NUL-terminated). */
static void pem_append_x509(char **buf, size_t *len, X509 *x)
{
        BIO *b = BIO_new(BIO_s_mem());
        const uint8_t *data;
        size_t n;

        assert_non_null(b);
        assert_int_equal(PEM_write_bio_X509(b, x), 1);
        assert_int_equal(BIO_mem_contents(b, &data, &n), 1);
        *buf = realloc(*buf, *len + n + 1);
        assert_non_null(*buf);
        memcpy(*buf + *len, data, n);
        *len += n;
        (*buf)[*len] = 0;
        BIO_free(b);
}

static char *pem_x509(X509 *x, size_t *ret_len)
{
        char *buf = NULL;

        *ret_len = 0;
        pem_append_x509(&buf, ret_len, x);
        return buf;
}

static char *pem_key(EVP_PKEY *k, enum key_fmt f, size_t *ret_len)
{
        BIO *b = BIO_new(BIO_s_mem());
        const uint8_t *data;
        size_t n;
        char *out;
        int ok = 0;

        assert_non_null(b);
        switch (f) {
        case KEY_PKCS8:
                ok = PEM_write_bio_PKCS8PrivateKey(b, k, NULL, NULL, 0, NULL, NULL);
                break;
        case KEY_SEC1:
                ok = PEM_write_bio_ECPrivateKey(b, EVP_PKEY_get0_EC_KEY(k), NULL, NULL, 0, NULL,
                                                NULL);
                break;
        case KEY_PKCS1:
                ok = PEM_write_bio_RSAPrivateKey(b, EVP_PKEY_get0_RSA(k), NULL, NULL, 0, NULL,
                                                 NULL);
                break;
        }
        assert_int_equal(ok, 1);
        assert_int_equal(BIO_mem_contents(b, &data, &n), 1);
        out = malloc(n + 1);
        assert_non_null(out);
        memcpy(out, data, n);
        out[n] = 0;
        *ret_len = n;
        BIO_free(b);
        return out;
}

/* A self-signed P-256 certificate for @dns (NULL-terminated) as a
 * proxy_cert; the caller unrefs. */
static struct proxy_cert *cert_for(const char *const *dns, const char *cn)
{
        EVP_PKEY *k = ec_key(NID_X9_62_prime256v1);
        X509 *x = make_x509(&(struct spec){.cn = cn, .dns = dns, .key = k});
        size_t clen, klen;
        char *crt = pem_x509(x, &clen), *key = pem_key(k, KEY_PKCS8, &klen), *err = NULL;
        struct proxy_cert *c = NULL;
        int r = proxy_cert_new_pem(crt, clen, key, klen, &c, &err);

        if (r < 0)
                fail_msg("proxy_cert_new_pem: %d %s", r, strempty(err));
        assert_non_null(c);
        free(crt);
        free(key);
        X509_free(x);
        EVP_PKEY_free(k);
        return c;
}

/* Expect proxy_cert_new_pem() to refuse with -EINVAL and @want in the text. */
static void expect_refused(const char *crt, size_t clen, const char *key, size_t klen,
                           const char *want)
{
        struct proxy_cert *c = NULL;
        char *err = NULL;
        int r = proxy_cert_new_pem(crt, clen, key, klen, &c, &err);

        if (r != -EINVAL || !err || !strstr(err, want))
                fail_msg("want -EINVAL \"%s\", got %d \"%s\"", want, r, strempty(err));
        assert_null(c);
        free(err);
        /* reterr may be NULL. */
        assert_int_equal(proxy_cert_new_pem(crt, clen, key, klen, &c, NULL), -EINVAL);
        assert_null(c);
        assert_int_equal(ERR_peek_error(), 0); /* no stale errors left for the next SSL call */
}

/* A copy of @s (@len bytes) without a terminating NUL, so ASan sees any
 * read past @len. */
static char *exact(const char *s, size_t len)
{
        char *p = malloc(len ? len : 1);

        assert_non_null(p);
        memcpy(p, s, len);
        return p;
}

/* ---- handshakes ---- */

struct conn {
        SSL *server, *client;
        int sv[2];
};

static SSL_SESSION *saved_session;

static int on_new_session(SSL *ssl, SSL_SESSION *s)
{
        SSL_SESSION_free(saved_session);
        saved_session = s; /* we take the reference */
        return 1;
}

static SSL_CTX *client_ctx(uint16_t min, uint16_t max)
{
        SSL_CTX *ctx = SSL_CTX_new(TLS_method());

        assert_non_null(ctx);
        assert_int_equal(SSL_CTX_set_min_proto_version(ctx, min), 1);
        assert_int_equal(SSL_CTX_set_max_proto_version(ctx, max), 1);
        SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT);
        SSL_CTX_sess_set_new_cb(ctx, on_new_session);
        return ctx;
}

/* Drive both ends until both finished (true) or one failed (false). */
static bool drive(SSL *server, SSL *client)
{
        for (int i = 0; i < 50; i++) {
                int rs = SSL_do_handshake(server), rc = SSL_do_handshake(client);

                if (rs == 1 && rc == 1)
                        return true;
                if (rs != 1 && SSL_get_error(server, rs) != SSL_ERROR_WANT_READ)
                        return false;
                if (rc != 1 && SSL_get_error(client, rc) != SSL_ERROR_WANT_READ)
                        return false;
        }
        return false;
}

static void conn_open(struct conn *c, struct proxy_tls *t, const struct proxy_cert *cert,
                      SSL_CTX *cctx, SSL_SESSION *resume)
{
        assert_int_equal(proxy_tls_new_ssl(t, cert, &c->server), 0);
        assert_non_null(c->server);
        c->client = SSL_new(cctx);
        assert_non_null(c->client);
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, c->sv), 0);
        assert_int_equal(SSL_set_fd(c->server, c->sv[0]), 1);
        assert_int_equal(SSL_set_fd(c->client, c->sv[1]), 1);
        SSL_set_connect_state(c->client);
        if (resume)
                assert_int_equal(SSL_set_session(c->client, resume), 1);
}

static void conn_close(struct conn *c)
{
        SSL_free(c->server);
        SSL_free(c->client);
        close(c->sv[0]);
        close(c->sv[1]);
        ERR_clear_error();
        *c = (struct conn){0};
}

/* Application data both ways; the client's reads also take in TLS 1.3
 * NewSessionTicket messages. */
static void exchange(struct conn *c)
{
        char buf[16];

        assert_int_equal(SSL_write(c->client, "ping", 4), 4);
        assert_int_equal(SSL_read(c->server, buf, sizeof(buf)), 4);
        assert_memory_equal(buf, "ping", 4);
        assert_int_equal(SSL_write(c->server, "pong", 4), 4);
        assert_int_equal(SSL_read(c->client, buf, sizeof(buf)), 4);
        assert_memory_equal(buf, "pong", 4);
}

static struct proxy_tls *tls_ctx(void)
{
        struct proxy_tls *t = NULL;

        assert_int_equal(proxy_tls_new(&t), 0);
        assert_non_null(t);
        assert_non_null(proxy_tls_ctx(t));
        return t;
}

static const char *const example_names[] = {"www.example.com", NULL};

/* ---- proxy_cert_new_pem ---- */

static void test_pem_good(void **state)
{
        EVP_PKEY *ec = ec_key(NID_X9_62_prime256v1), *ec384 = ec_key(NID_secp384r1),
                 *rsa = rsa_key();
        const struct {
                EVP_PKEY *key;
                enum key_fmt fmt;
        } cases[] = {
                {ec, KEY_PKCS8},   {ec, KEY_SEC1},   {ec384, KEY_PKCS8},
                {ec384, KEY_SEC1}, {rsa, KEY_PKCS8}, {rsa, KEY_PKCS1},
        };
        long long now = (long long)time(NULL);

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                X509 *x = make_x509(&(struct spec){.cn = "www.example.com",
                                                   .dns = example_names,
                                                   .key = cases[i].key,
                                                   .not_after = 10 * DAY});
                size_t clen, klen;
                char *crt = pem_x509(x, &clen), *key = pem_key(cases[i].key, cases[i].fmt, &klen);
                char *crt_x = exact(crt, clen), *key_x = exact(key, klen), *err = NULL;
                struct proxy_cert *c = NULL;

                if (proxy_cert_new_pem(crt_x, clen, key_x, klen, &c, &err) != 0)
                        fail_msg("case %zu: %s", i, strempty(err));
                assert_null(err);
                assert_true(proxy_cert_covers(c, "www.example.com", 15));
                assert_true(proxy_cert_not_after(c) >= now + 10 * DAY - 60);
                assert_true(proxy_cert_not_after(c) <= now + 10 * DAY + 60);
                assert_ptr_equal(proxy_cert_ref(c), c);
                assert_null(proxy_cert_unref(c));
                assert_null(proxy_cert_unref(c));
                free(crt);
                free(key);
                free(crt_x);
                free(key_x);
                X509_free(x);
        }
        assert_null(proxy_cert_unref(NULL));
        assert_null(proxy_cert_ref(NULL));
        assert_int_equal(proxy_cert_not_after(NULL), 0);
        EVP_PKEY_free(ec);
        EVP_PKEY_free(ec384);
        EVP_PKEY_free(rsa);
}

static void test_pem_chain(void **state)
{
        EVP_PKEY *ca_key = ec_key(NID_X9_62_prime256v1), *leaf_key = ec_key(NID_X9_62_prime256v1);
        X509 *ca = make_x509(&(struct spec){.cn = "Test CA", .key = ca_key, .ca = true});
        X509 *leaf =
                make_x509(&(struct spec){.cn = "leaf.example.com",
                                         .dns = (const char *const[]){"leaf.example.com", NULL},
                                         .key = leaf_key,
                                         .issuer = ca,
                                         .issuer_key = ca_key,
                                         .not_after = 30 * DAY});
        _cleanup_(proxy_tls_freep) struct proxy_tls *t = tls_ctx();
        struct proxy_cert *c = NULL;
        char *chain = NULL, *key, *err = NULL;
        size_t clen = 0, klen;
        SSL_CTX *cctx = client_ctx(TLS1_2_VERSION, TLS1_3_VERSION);
        struct conn conn;
        const STACK_OF(CRYPTO_BUFFER) * peer;
        uint8_t *der = NULL;
        int der_len;

        pem_append_x509(&chain, &clen, leaf);
        pem_append_x509(&chain, &clen, ca);
        key = pem_key(leaf_key, KEY_PKCS8, &klen);
        if (proxy_cert_new_pem(chain, clen, key, klen, &c, &err) != 0)
                fail_msg("%s", strempty(err));
        /* The leaf is the first certificate: its names and dates count. */
        assert_true(proxy_cert_covers(c, "leaf.example.com", 16));
        assert_false(proxy_cert_covers(c, "Test CA", 7));
        assert_true(llabs(proxy_cert_not_after(c) - ((long long)time(NULL) + 30 * DAY)) < 60);

        /* The whole chain is served, leaf first. */
        conn_open(&conn, t, c, cctx, NULL);
        assert_true(drive(conn.server, conn.client));
        peer = SSL_get0_peer_certificates(conn.client);
        assert_non_null(peer);
        assert_int_equal(sk_CRYPTO_BUFFER_num(peer), 2);
        der_len = i2d_X509(leaf, &der);
        assert_true(der_len > 0);
        assert_int_equal(CRYPTO_BUFFER_len(sk_CRYPTO_BUFFER_value(peer, 0)), der_len);
        assert_memory_equal(CRYPTO_BUFFER_data(sk_CRYPTO_BUFFER_value(peer, 0)), der,
                            (size_t)der_len);
        OPENSSL_free(der);
        conn_close(&conn);

        /* The key of the CA (the second certificate) does not match the leaf. */
        free(key);
        key = pem_key(ca_key, KEY_PKCS8, &klen);
        expect_refused(chain, clen, key, klen, "private key does not match the certificate");

        proxy_cert_unref(c);
        free(chain);
        free(key);
        X509_free(ca);
        X509_free(leaf);
        EVP_PKEY_free(ca_key);
        EVP_PKEY_free(leaf_key);
        SSL_CTX_free(cctx);
}

/* Certificates one CA issued share its intermediate: a node holds
 * thousands, and each would otherwise keep its own copy (about 1 KiB). */
static void test_pem_chain_shared(void **state)
{
        EVP_PKEY *ca_key = ec_key(NID_X9_62_prime256v1);
        X509 *ca = make_x509(&(struct spec){.cn = "Test CA", .key = ca_key, .ca = true});
        struct proxy_cert *c[3] = {};
        const char *const names[3] = {"a.example.com", "b.example.com", "c.example.com"};
        const CRYPTO_BUFFER *inter;
        uint8_t *der = NULL;
        int der_len = i2d_X509(ca, &der);

        assert_true(der_len > 0);
        for (size_t i = 0; i < ELEMENTSOF(c); i++) {
                EVP_PKEY *k = ec_key(NID_X9_62_prime256v1);
                X509 *leaf = make_x509(&(struct spec){.cn = names[i],
                                                      .dns = (const char *const[]){names[i], NULL},
                                                      .key = k,
                                                      .issuer = ca,
                                                      .issuer_key = ca_key});
                char *chain = NULL, *key, *err = NULL;
                size_t clen = 0, klen;

                pem_append_x509(&chain, &clen, leaf);
                pem_append_x509(&chain, &clen, ca);
                key = pem_key(k, KEY_PKCS8, &klen);
                if (proxy_cert_new_pem(chain, clen, key, klen, &c[i], &err) != 0)
                        fail_msg("%s", strempty(err));
                free(chain);
                free(key);
                X509_free(leaf);
                EVP_PKEY_free(k);
        }
        inter = proxy_cert_chain(c[0], 1);
        assert_non_null(inter);
        assert_int_equal(CRYPTO_BUFFER_len(inter), der_len);
        assert_memory_equal(CRYPTO_BUFFER_data(inter), der, (size_t)der_len);
        assert_null(proxy_cert_chain(c[0], 2));
        assert_null(proxy_cert_chain(NULL, 0));
        for (size_t i = 1; i < ELEMENTSOF(c); i++) {
                /* One buffer for the intermediate, one leaf each. */
                assert_ptr_equal(proxy_cert_chain(c[i], 1), inter);
                assert_ptr_not_equal(proxy_cert_chain(c[i], 0), proxy_cert_chain(c[0], 0));
                assert_true(proxy_cert_covers(c[i], names[i], strlen(names[i])));
                assert_false(proxy_cert_covers(c[i], names[0], strlen(names[0])));
        }
        /* The shared buffer outlives the certificate that made it. */
        proxy_cert_unref(c[0]);
        assert_memory_equal(CRYPTO_BUFFER_data(proxy_cert_chain(c[1], 1)), der, (size_t)der_len);
        proxy_cert_unref(c[1]);
        proxy_cert_unref(c[2]);
        OPENSSL_free(der);
        X509_free(ca);
        EVP_PKEY_free(ca_key);
}

static void test_pem_bad(void **state)
{
        EVP_PKEY *k = ec_key(NID_X9_62_prime256v1), *other = ec_key(NID_X9_62_prime256v1),
                 *rsa = rsa_key();
        X509 *x = make_x509(&(struct spec){.cn = "a.example", .dns = example_names, .key = k});
        X509 *noname = make_x509(&(struct spec){.key = k});
        X509 *ip_only = make_x509(&(struct spec){.ip_san = true, .key = k});
        size_t clen, klen, olen, rlen, nlen, iplen, long_len = 0;
        char *crt = pem_x509(x, &clen), *key = pem_key(k, KEY_PKCS8, &klen);
        char *okey = pem_key(other, KEY_PKCS8, &olen), *rkey = pem_key(rsa, KEY_PKCS1, &rlen);
        char *ncrt = pem_x509(noname, &nlen), *ipcrt = pem_x509(ip_only, &iplen);
        char *long_chain = NULL, *buf;
        struct proxy_cert *c = NULL;

        /* Certificate side. */
        expect_refused("", 0, key, klen, "no certificate in chain");
        expect_refused("garbage\n", 8, key, klen, "no certificate in chain");
        expect_refused(key, klen, key, klen, "no certificate in chain");
        /* Only the first @len bytes count. */
        expect_refused(crt, clen / 2, key, klen, "no certificate in chain");
        /* A PEM block whose base64 is damaged. */
        buf = strdup(crt);
        assert_non_null(buf);
        buf[40] = '!';
        expect_refused(buf, clen, key, klen, "no certificate in chain");
        free(buf);
        for (int i = 0; i < 9; i++)
                pem_append_x509(&long_chain, &long_len, x);
        expect_refused(long_chain, long_len, key, klen, "certificate chain longer than 8");
        expect_refused(ncrt, nlen, key, klen, "certificate names no DNS name");
        expect_refused(ipcrt, iplen, key, klen, "certificate names no DNS name");

        /* Key side. */
        expect_refused(crt, clen, "", 0, "no private key in key file");
        expect_refused(crt, clen, "garbage\n", 8, "no private key in key file");
        expect_refused(crt, clen, crt, clen, "no private key in key file");
        expect_refused(crt, clen, key, klen / 2, "no private key in key file");
        expect_refused(crt, clen, okey, olen, "private key does not match the certificate");
        expect_refused(crt, clen, rkey, rlen, "private key does not match the certificate");

        /* An encrypted key is refused (no passphrase prompt, no hang). */
        {
                BIO *b = BIO_new(BIO_s_mem());
                const uint8_t *data;
                size_t n;
                static char pass[] = "secret";

                assert_non_null(b);
                assert_int_equal(PEM_write_bio_PKCS8PrivateKey(b, k, EVP_aes_128_cbc(), pass,
                                                               (int)strlen(pass), NULL, NULL),
                                 1);
                assert_int_equal(BIO_mem_contents(b, &data, &n), 1);
                expect_refused(crt, clen, (const char *)data, n, "no private key in key file");
                BIO_free(b);
        }

        /* Argument checks. */
        assert_int_equal(proxy_cert_new_pem(NULL, 0, key, klen, &c, NULL), -EINVAL);
        assert_int_equal(proxy_cert_new_pem(crt, clen, NULL, 0, &c, NULL), -EINVAL);
        assert_null(c);

        /* A good pair still works after all that. */
        assert_int_equal(proxy_cert_new_pem(crt, clen, key, klen, &c, NULL), 0);
        proxy_cert_unref(c);

        free(crt);
        free(key);
        free(okey);
        free(rkey);
        free(ncrt);
        free(ipcrt);
        free(long_chain);
        X509_free(x);
        X509_free(noname);
        X509_free(ip_only);
        EVP_PKEY_free(k);
        EVP_PKEY_free(other);
        EVP_PKEY_free(rsa);
}

/* FIXME(proxy/tls.c): a chain whose second certificate is damaged is
 * accepted with the leaf alone (the PEM loop stops at the first block it
 * cannot read and treats that as the end). A truncated or corrupt
 * intermediate must be refused, or a broken chain gets served. */
static void test_pem_bad_intermediate(void **state)
{
        EVP_PKEY *k = ec_key(NID_X9_62_prime256v1);
        X509 *x = make_x509(&(struct spec){.cn = "a.example", .dns = example_names, .key = k});
        size_t clen = 0, klen, one;
        char *chain = NULL, *key = pem_key(k, KEY_PKCS8, &klen);

        pem_append_x509(&chain, &clen, x);
        one = clen;
        pem_append_x509(&chain, &clen, x);
        /* Damage the base64 of the second block. */
        chain[one + 40] = '!';
        expect_refused(chain, clen, key, klen, "certificate");
        /* Or cut it in the middle. */
        expect_refused(chain, one + (clen - one) / 2, key, klen, "certificate");
        free(chain);
        free(key);
        X509_free(x);
        EVP_PKEY_free(k);
}

/* ---- covers ---- */

static bool covers(const struct proxy_cert *c, const char *host)
{
        return proxy_cert_covers(c, host, strlen(host));
}

static void test_covers(void **state)
{
        struct proxy_cert *c =
                cert_for((const char *const[]){"exact.example.com", "*.wild.example.com",
                                               "UPPER.Example.ORG", "trail.example.net.",
                                               "f*.partial.example.com", NULL},
                         "cn.example.com");

        /* Exact, any case, one trailing dot. */
        assert_true(covers(c, "exact.example.com"));
        assert_true(covers(c, "EXACT.Example.COM"));
        assert_true(covers(c, "exact.example.com."));
        assert_false(covers(c, "exact.example.com.."));
        assert_false(covers(c, "xexact.example.com"));
        assert_false(covers(c, "exact.example.co"));
        assert_false(covers(c, "exact.example.comm"));
        assert_false(covers(c, "www.exact.example.com"));
        assert_false(covers(c, ""));
        assert_false(covers(c, "."));
        /* SAN entries are matched case-insensitively, trailing dot dropped. */
        assert_true(covers(c, "upper.example.org"));
        assert_true(covers(c, "trail.example.net"));
        assert_true(covers(c, "trail.example.net."));

        /* Wildcard: exactly one whole label. */
        assert_true(covers(c, "a.wild.example.com"));
        assert_true(covers(c, "A-b_c.WILD.example.com."));
        assert_false(covers(c, "wild.example.com"));
        assert_false(covers(c, ".wild.example.com"));
        assert_false(covers(c, "a.b.wild.example.com"));
        assert_false(covers(c, "awild.example.com"));
        assert_false(covers(c, "a.wild.example.com.evil"));
        /* Partial-label wildcards are not wildcards. */
        assert_false(covers(c, "foo.partial.example.com"));
        /* The CN does not count when there are dNSNames. */
        assert_false(covers(c, "cn.example.com"));

        /* @len bounds the host; NULs inside never match. */
        assert_true(proxy_cert_covers(c, "exact.example.comXYZ", 17));
        assert_false(proxy_cert_covers(c, "exact.example.com", 16));
        assert_false(proxy_cert_covers(c, "exact.example.com\0", 18));
        assert_false(proxy_cert_covers(c, "exact\0example.com", 17));
        assert_false(proxy_cert_covers(c, "a\0wild.example.com", 18));
        assert_false(proxy_cert_covers(c, NULL, 0));
        assert_false(proxy_cert_covers(NULL, "exact.example.com", 17));
        proxy_cert_unref(c);

        /* Without any dNSName, the CN (also as a wildcard). */
        c = cert_for(NULL, "CN.Example.com");
        assert_true(covers(c, "cn.example.com"));
        assert_true(covers(c, "CN.EXAMPLE.COM."));
        assert_false(covers(c, "x.cn.example.com"));
        proxy_cert_unref(c);
        c = cert_for(NULL, "*.cnwild.example.com");
        assert_true(covers(c, "x.cnwild.example.com"));
        assert_false(covers(c, "cnwild.example.com"));
        assert_false(covers(c, "y.x.cnwild.example.com"));
        proxy_cert_unref(c);

        /* A SAN with only an IP address: the CN is used too. */
        {
                EVP_PKEY *k = ec_key(NID_X9_62_prime256v1);
                X509 *x =
                        make_x509(&(struct spec){.cn = "ip.example.com", .ip_san = true, .key = k});
                size_t clen, klen;
                char *crt = pem_x509(x, &clen), *key = pem_key(k, KEY_PKCS8, &klen);

                assert_int_equal(proxy_cert_new_pem(crt, clen, key, klen, &c, NULL), 0);
                assert_true(covers(c, "ip.example.com"));
                assert_false(covers(c, "192.0.2.1"));
                proxy_cert_unref(c);
                free(crt);
                free(key);
                X509_free(x);
                EVP_PKEY_free(k);
        }
}

/* ---- handshakes ---- */

struct hs_result {
        bool ok;
        uint16_t version;
        const SSL_CIPHER *cipher;
        uint16_t group;
        char alpn[32];
        bool reused;
        int err; /* on failure: the reason of the last error queued (either end) */
};

/* One handshake with a client built by @setup_client (may be NULL). */
static struct hs_result handshake(struct proxy_tls *t, const struct proxy_cert *cert, SSL_CTX *cctx,
                                  SSL_SESSION *resume, void (*setup_client)(SSL *))
{
        struct hs_result r = {0};
        struct conn c;
        const uint8_t *alpn;
        unsigned alpn_len;

        conn_open(&c, t, cert, cctx, resume);
        if (setup_client)
                setup_client(c.client);
        r.ok = drive(c.server, c.client);
        if (r.ok) {
                exchange(&c);
                r.version = (uint16_t)SSL_version(c.client);
                assert_int_equal(SSL_version(c.server), r.version);
                r.cipher = SSL_get_current_cipher(c.client);
                assert_ptr_equal(SSL_get_current_cipher(c.server), r.cipher);
                r.group = SSL_get_curve_id(c.client);
                SSL_get0_alpn_selected(c.client, &alpn, &alpn_len);
                assert_true(alpn_len < sizeof(r.alpn));
                if (alpn_len > 0)
                        memcpy(r.alpn, alpn, alpn_len);
                r.reused = SSL_session_reused(c.client);
                assert_int_equal(SSL_session_reused(c.server), r.reused);
        } else
                r.err = ERR_GET_REASON(ERR_peek_last_error());
        conn_close(&c);
        return r;
}

static void set_alpn(SSL *ssl, const char *wire, size_t len)
{
        assert_int_equal(SSL_set_alpn_protos(ssl, (const uint8_t *)wire, len), 0);
}
static void alpn_h2_http11(SSL *ssl)
{
        set_alpn(ssl, "\x02h2\x08http/1.1", 12);
}
static void alpn_http11_h2(SSL *ssl)
{
        set_alpn(ssl, "\x08http/1.1\x02h2", 12);
}
static void alpn_h2(SSL *ssl)
{
        set_alpn(ssl, "\x02h2", 3);
}
static void alpn_http11(SSL *ssl)
{
        set_alpn(ssl, "\x08http/1.1", 9);
}
static void alpn_other(SSL *ssl)
{
        set_alpn(ssl, "\x06spdy/3\x08http/1.0", 16);
}
static void groups_p384(SSL *ssl)
{
        assert_int_equal(SSL_set1_curves_list(ssl, "P-384"), 1);
}
static void groups_p256(SSL *ssl)
{
        assert_int_equal(SSL_set1_curves_list(ssl, "P-256"), 1);
}
static void cbc_only(SSL *ssl)
{
        assert_int_equal(SSL_set_strict_cipher_list(ssl,
                                                    "ECDHE-ECDSA-AES128-SHA:ECDHE-RSA-AES128-SHA:"
                                                    "AES128-GCM-SHA256:AES128-SHA"),
                         1);
}
static void rsa_kx_only(SSL *ssl)
{
        assert_int_equal(SSL_set_strict_cipher_list(ssl, "AES128-GCM-SHA256:AES256-GCM-SHA384"), 1);
}

static void test_versions(void **state)
{
        _cleanup_(proxy_tls_freep) struct proxy_tls *t = tls_ctx();
        struct proxy_cert *c = cert_for(example_names, NULL);
        SSL_CTX *c13 = client_ctx(TLS1_VERSION, TLS1_3_VERSION);
        SSL_CTX *c12 = client_ctx(TLS1_VERSION, TLS1_2_VERSION);
        SSL_CTX *c11 = client_ctx(TLS1_VERSION, TLS1_1_VERSION);
        SSL_CTX *c10 = client_ctx(TLS1_VERSION, TLS1_VERSION);
        struct hs_result r;

        r = handshake(t, c, c13, NULL, NULL);
        assert_true(r.ok);
        assert_int_equal(r.version, TLS1_3_VERSION);
        assert_true(SSL_CIPHER_is_aead(r.cipher));
        assert_int_equal(r.group, SSL_CURVE_X25519);

        r = handshake(t, c, c12, NULL, NULL);
        assert_true(r.ok);
        assert_int_equal(r.version, TLS1_2_VERSION);
        assert_true(SSL_CIPHER_is_aead(r.cipher));
        assert_int_equal(SSL_CIPHER_get_kx_nid(r.cipher), NID_kx_ecdhe);
        assert_int_equal(SSL_CIPHER_get_auth_nid(r.cipher), NID_auth_ecdsa);

        /* Refused for the version itself (protocol_version), not merely for
         * lack of a TLS 1.2 suite. */
        r = handshake(t, c, c11, NULL, NULL);
        assert_false(r.ok);
        assert_int_equal(r.err, SSL_R_TLSV1_ALERT_PROTOCOL_VERSION);
        r = handshake(t, c, c10, NULL, NULL);
        assert_false(r.ok);
        assert_int_equal(r.err, SSL_R_TLSV1_ALERT_PROTOCOL_VERSION);

        /* Still serving after refusals. */
        assert_true(handshake(t, c, c13, NULL, NULL).ok);

        proxy_cert_unref(c);
        SSL_CTX_free(c13);
        SSL_CTX_free(c12);
        SSL_CTX_free(c11);
        SSL_CTX_free(c10);
}

static void test_suites_and_groups(void **state)
{
        _cleanup_(proxy_tls_freep) struct proxy_tls *t = tls_ctx();
        struct proxy_cert *c = cert_for(example_names, NULL);
        SSL_CTX *c13 = client_ctx(TLS1_3_VERSION, TLS1_3_VERSION);
        SSL_CTX *c12 = client_ctx(TLS1_2_VERSION, TLS1_2_VERSION);
        struct hs_result r;

        /* Only P-384 offered: no common group. */
        assert_false(handshake(t, c, c13, NULL, groups_p384).ok);
        assert_false(handshake(t, c, c12, NULL, groups_p384).ok);
        r = handshake(t, c, c13, NULL, groups_p256);
        assert_true(r.ok);
        assert_int_equal(r.group, SSL_CURVE_SECP256R1);
        r = handshake(t, c, c12, NULL, groups_p256);
        assert_true(r.ok);
        assert_int_equal(r.group, SSL_CURVE_SECP256R1);

        /* TLS 1.2 without an ECDHE+AEAD suite: refused. */
        assert_false(handshake(t, c, c12, NULL, cbc_only).ok);
        assert_false(handshake(t, c, c12, NULL, rsa_kx_only).ok);
        proxy_cert_unref(c);

        /* An RSA certificate gets ECDHE-RSA with an AEAD. */
        {
                EVP_PKEY *k = rsa_key();
                X509 *x = make_x509(&(struct spec){.dns = example_names, .key = k});
                size_t clen, klen;
                char *crt = pem_x509(x, &clen), *key = pem_key(k, KEY_PKCS1, &klen);

                assert_int_equal(proxy_cert_new_pem(crt, clen, key, klen, &c, NULL), 0);
                r = handshake(t, c, c12, NULL, NULL);
                assert_true(r.ok);
                assert_true(SSL_CIPHER_is_aead(r.cipher));
                assert_int_equal(SSL_CIPHER_get_kx_nid(r.cipher), NID_kx_ecdhe);
                assert_int_equal(SSL_CIPHER_get_auth_nid(r.cipher), NID_auth_rsa);
                r = handshake(t, c, c13, NULL, NULL);
                assert_true(r.ok);
                assert_true(SSL_CIPHER_is_aead(r.cipher));
                proxy_cert_unref(c);
                free(crt);
                free(key);
                X509_free(x);
                EVP_PKEY_free(k);
        }
        SSL_CTX_free(c13);
        SSL_CTX_free(c12);
}

static void test_alpn(void **state)
{
        _cleanup_(proxy_tls_freep) struct proxy_tls *t = tls_ctx();
        struct proxy_cert *c = cert_for(example_names, NULL);
        SSL_CTX *c13 = client_ctx(TLS1_2_VERSION, TLS1_3_VERSION);
        SSL_CTX *c12 = client_ctx(TLS1_2_VERSION, TLS1_2_VERSION);
        SSL_CTX *ctxs[] = {c13, c12};
        struct hs_result r;

        for (size_t i = 0; i < ELEMENTSOF(ctxs); i++) {
                /* h2 whenever offered (our preference, whatever the
                 * client's order), else http/1.1. */
                r = handshake(t, c, ctxs[i], NULL, alpn_h2_http11);
                assert_true(r.ok);
                assert_string_equal(r.alpn, "h2");
                r = handshake(t, c, ctxs[i], NULL, alpn_http11_h2);
                assert_true(r.ok);
                assert_string_equal(r.alpn, "h2");
                r = handshake(t, c, ctxs[i], NULL, alpn_http11);
                assert_true(r.ok);
                assert_string_equal(r.alpn, "http/1.1");
                r = handshake(t, c, ctxs[i], NULL, alpn_h2);
                assert_true(r.ok);
                assert_string_equal(r.alpn, "h2");
                /* Only unknown protocols: no ALPN, no failure. */
                r = handshake(t, c, ctxs[i], NULL, alpn_other);
                assert_true(r.ok);
                assert_string_equal(r.alpn, "");
                r = handshake(t, c, ctxs[i], NULL, NULL);
                assert_true(r.ok);
                assert_string_equal(r.alpn, "");
        }
        proxy_cert_unref(c);
        SSL_CTX_free(c13);
        SSL_CTX_free(c12);
}

static void no_ticket(SSL *ssl)
{
        SSL_set_options(ssl, SSL_OP_NO_TICKET);
}

static void test_resumption(void **state)
{
        _cleanup_(proxy_tls_freep) struct proxy_tls *t = tls_ctx(), *t2 = tls_ctx();
        struct proxy_cert *c = cert_for(example_names, NULL);
        SSL_CTX *c13 = client_ctx(TLS1_3_VERSION, TLS1_3_VERSION);
        SSL_CTX *c12 = client_ctx(TLS1_2_VERSION, TLS1_2_VERSION);
        SSL_CTX *ctxs[] = {c13, c12};
        struct hs_result r;

        for (size_t i = 0; i < ELEMENTSOF(ctxs); i++) {
                SSL_SESSION *s;

                SSL_SESSION_free(TAKE_PTR(saved_session));
                r = handshake(t, c, ctxs[i], NULL, NULL);
                assert_true(r.ok);
                assert_false(r.reused);
                assert_non_null(saved_session); /* a ticket came */
                s = TAKE_PTR(saved_session);
                assert_true(SSL_SESSION_is_resumable(s));

                /* A second connection (a new SSL from the same context)
                 * resumes. */
                r = handshake(t, c, ctxs[i], s, NULL);
                assert_true(r.ok);
                assert_true(r.reused);
                SSL_SESSION_free(TAKE_PTR(saved_session));

                /* Another context has other ticket keys: a full handshake. */
                r = handshake(t2, c, ctxs[i], s, NULL);
                assert_true(r.ok);
                assert_false(r.reused);
                SSL_SESSION_free(TAKE_PTR(saved_session));
                SSL_SESSION_free(s);
        }

        /* No session cache: a TLS 1.2 client without tickets gets no
         * session ID, so nothing it could resume. */
        {
                struct conn conn;
                unsigned id_len = 1;

                SSL_SESSION_free(TAKE_PTR(saved_session));
                conn_open(&conn, t, c, c12, NULL);
                no_ticket(conn.client);
                assert_true(drive(conn.server, conn.client));
                exchange(&conn);
                assert_non_null(SSL_SESSION_get_id(SSL_get_session(conn.server), &id_len));
                assert_int_equal(id_len, 0);
                assert_false(SSL_SESSION_is_resumable(SSL_get_session(conn.client)));
                assert_null(saved_session);
                conn_close(&conn);
        }

        proxy_cert_unref(c);
        SSL_CTX_free(c13);
        SSL_CTX_free(c12);
}

/* FIXME(proxy/tls.c): tls.h promises "handshake config shed after the
 * handshake (memory per idle connection)", but proxy_tls_new_ssl() never
 * calls SSL_set_shed_handshake_config(ssl, 1), so every idle connection
 * keeps its handshake configuration (cipher list, curves, certificate
 * references...). Observable: SSL_get_ciphers() queries that
 * configuration and returns NULL once it is shed. */
static void test_shed_config(void **state)
{
        _cleanup_(proxy_tls_freep) struct proxy_tls *t = tls_ctx();
        struct proxy_cert *c = cert_for(example_names, NULL);
        SSL_CTX *cctx = client_ctx(TLS1_2_VERSION, TLS1_3_VERSION);
        struct conn conn;

        conn_open(&conn, t, c, cctx, NULL);
        /* Configured until the handshake... */
        assert_non_null(SSL_get_ciphers(conn.server));
        assert_true(drive(conn.server, conn.client));
        exchange(&conn);
        /* ...shed after it; the connection keeps working. */
        assert_null(SSL_get_ciphers(conn.server));
        assert_non_null(SSL_get_current_cipher(conn.server));
        exchange(&conn);
        conn_close(&conn);
        proxy_cert_unref(c);
        SSL_CTX_free(cctx);
}

static void test_garbage_client(void **state)
{
        _cleanup_(proxy_tls_freep) struct proxy_tls *t = tls_ctx();
        struct proxy_cert *c = cert_for(example_names, NULL);
        static const char http[] = "GET / HTTP/1.1\r\nHost: www.example.com\r\n\r\n";
        SSL *ssl = NULL;
        int sv[2], r;

        assert_int_equal(proxy_tls_new_ssl(t, c, &ssl), 0);
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
        assert_int_equal(SSL_set_fd(ssl, sv[0]), 1);
        assert_int_equal(write(sv[1], http, sizeof(http) - 1), (ssize_t)sizeof(http) - 1);
        r = SSL_do_handshake(ssl);
        assert_int_equal(r, -1);
        assert_int_equal(SSL_get_error(ssl, r), SSL_ERROR_SSL);
        ERR_clear_error();
        SSL_free(ssl);
        close(sv[0]);
        close(sv[1]);

        /* The certificate outlives the SSL: the SSL holds its own references. */
        assert_int_equal(proxy_tls_new_ssl(t, c, &ssl), 0);
        proxy_cert_unref(c);
        {
                SSL_CTX *cctx = client_ctx(TLS1_2_VERSION, TLS1_3_VERSION);
                SSL *client = SSL_new(cctx);

                assert_non_null(client);
                assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
                assert_int_equal(SSL_set_fd(ssl, sv[0]), 1);
                assert_int_equal(SSL_set_fd(client, sv[1]), 1);
                SSL_set_connect_state(client);
                assert_true(drive(ssl, client));
                SSL_free(client);
                SSL_CTX_free(cctx);
                close(sv[0]);
                close(sv[1]);
        }
        SSL_free(ssl);

        assert_int_equal(proxy_tls_new_ssl(t, NULL, &ssl), -EINVAL);
        assert_null(proxy_tls_free(NULL));
        assert_null(proxy_tls_ctx(NULL));
}

static int free_saved_session(void **state)
{
        SSL_SESSION_free(TAKE_PTR(saved_session));
        return 0;
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_pem_good),
                cmocka_unit_test(test_pem_chain),
                cmocka_unit_test(test_pem_chain_shared),
                cmocka_unit_test(test_pem_bad),
                cmocka_unit_test(test_pem_bad_intermediate),
                cmocka_unit_test(test_covers),
                cmocka_unit_test(test_versions),
                cmocka_unit_test(test_suites_and_groups),
                cmocka_unit_test(test_alpn),
                cmocka_unit_test(test_resumption),
                cmocka_unit_test(test_shed_config),
                cmocka_unit_test(test_garbage_client),
        };

        return cmocka_run_group_tests(tests, NULL, free_saved_session);
}
