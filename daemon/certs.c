/* SPDX-License-Identifier: Apache-2.0 */
#include "daemon/certs.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

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
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "common/fileio.h"
#include "common/hashmap.h"
#include "common/log.h"
#include "common/macros.h"
#include "common/siphash.h"
#include "proxy/tls.h"
#include "ssl/ssl-util.h"

#define CERT_NAME_MAX    253    /* bytes, as a DNS name */
#define CERT_LABEL_MAX   63     /* bytes per label */
#define CERT_CN_MAX      64     /* ub-common-name (RFC 5280) */
#define CERTS_MAX        262144 /* cached names; the registry holds at most 200000 */
#define CERT_FILE_MAX    (1024 * 1024)
#define CERT_VALID_DAYS  397
#define CERT_BACKDATE    3600                  /* notBefore = now - 1 h */
#define CERT_RENEW_AHEAD (30LL * 24 * 60 * 60) /* replace when expiring within 30 days */
/* write_file_atomic() refuses longer names (it needs room for its temp name). */
#define CERT_FILE_NAME_MAX (NAME_MAX - 16)
#define WILDCARD_PREFIX    "_wildcard."

struct cert_entry {
        struct proxy_cert *cert;
        bool issued; /* from <dir>/acme/ (else self-signed) */
        char name[]; /* the hashmap key */
};

struct gw_certs {
        char *dir;
        char *issued_dir;      /* <dir>/acme: certificates an ACME server issued */
        struct hashmap *cache; /* normalized name -> struct cert_entry */
};

static int fail(char **reterr, int error, const char *fmt, ...) _printf_(3, 4);
static int fail(char **reterr, int error, const char *fmt, ...)
{
        va_list ap;

        if (reterr) {
                va_start(ap, fmt);
                if (vasprintf(reterr, fmt, ap) < 0)
                        *reterr = NULL;
                va_end(ap);
        }
        return error;
}

/* BoringSSL's error queue -> -errno and a text, once, here. */
static int fail_ssl(char **reterr, const char *what, const char *name)
{
        uint32_t e = ERR_peek_last_error();
        char buf[256] = "unknown error";
        int r = ERR_GET_REASON(e) == ERR_R_MALLOC_FAILURE ? -ENOMEM : -EIO;

        if (e)
                ERR_error_string_n(e, buf, sizeof(buf));
        ERR_clear_error();
        return fail(reterr, r, "failed to %s for %s: %s", what, name, buf);
}

/* Lower-case @name into @buf (CERT_NAME_MAX + 1 bytes), dropping one
 * trailing dot. Accepted: labels of 1..63 bytes of [a-z0-9_-] separated by
 * dots, and a whole left-most label "*" in front of at least one more
 * label. That keeps every file name plain (no '/', no leading '.', nothing
 * a shell or a SAN parser could misread). */
static int name_normalize(const char *name, char *buf, char **reterr)
{
        size_t n, label = 0;

        if (!name || !*name)
                return fail(reterr, -EINVAL, "empty certificate name");
        n = strnlen(name, CERT_NAME_MAX + 2);
        if (n > 1 && name[n - 1] == '.')
                n--;
        if (n > CERT_NAME_MAX)
                return fail(reterr, -EINVAL, "certificate name longer than %d bytes",
                            CERT_NAME_MAX);
        for (size_t i = 0; i < n; i++) {
                unsigned char ch = (unsigned char)name[i];

                if (ch == '.') {
                        if (label == 0)
                                return fail(reterr, -EINVAL,
                                            "empty label in certificate name \"%.*s\"", (int)n,
                                            name);
                        label = 0;
                        buf[i] = '.';
                        continue;
                }
                if (ch == '*') {
                        if (i != 0 || n < 3 || name[1] != '.')
                                return fail(reterr, -EINVAL,
                                            "'*' is allowed only as the whole first label of a "
                                            "certificate name");
                } else if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                             (ch >= '0' && ch <= '9') || ch == '-' || ch == '_')) {
                        if (ch >= 0x21 && ch < 0x7f)
                                return fail(reterr, -EINVAL,
                                            "invalid character '%c' in certificate name", ch);
                        return fail(reterr, -EINVAL, "invalid byte 0x%02x in certificate name", ch);
                }
                if (++label > CERT_LABEL_MAX)
                        return fail(reterr, -EINVAL,
                                    "label longer than %d bytes in certificate name",
                                    CERT_LABEL_MAX);
                buf[i] = (char)ascii_tolower(ch);
        }
        if (label == 0)
                return fail(reterr, -EINVAL, "empty label in certificate name \"%.*s\"", (int)n,
                            name);
        buf[n] = 0;
        return 0;
}

/* "<file>.crt" / "<file>.key" for a normalized name; false when the file
 * name would be too long for write_file_atomic() (names near 253 bytes):
 * such a certificate is kept in memory only. */
static bool file_name(const char *name, const char *suffix, char *buf, size_t size)
{
        int k;

        if (name[0] == '*')
                k = snprintf(buf, size, WILDCARD_PREFIX "%s.%s", name + 2, suffix);
        else
                k = snprintf(buf, size, "%s.%s", name, suffix);
        return k > 0 && (size_t)k < size && (size_t)k <= CERT_FILE_NAME_MAX;
}

static int pem_of(BIO *bio, char **ret, size_t *ret_len)
{
        const uint8_t *data;
        size_t len;
        char *p;

        if (!BIO_mem_contents(bio, &data, &len))
                return -EIO;
        p = malloc(len + 1);
        if (!p)
                return -ENOMEM;
        memcpy(p, data, len);
        p[len] = 0;
        *ret = p;
        *ret_len = len;
        return 0;
}

static int add_extensions(X509 *x, const char *name, bool san_critical)
{
        _cleanup_(BASIC_CONSTRAINTS_freep) BASIC_CONSTRAINTS *bc = NULL;
        _cleanup_(ASN1_BIT_STRING_freep) ASN1_BIT_STRING *ku = NULL;
        _cleanup_(EXTENDED_KEY_USAGE_freep) EXTENDED_KEY_USAGE *eku = NULL;
        _cleanup_(GENERAL_NAMES_freep) GENERAL_NAMES *gens = NULL;
        _cleanup_(GENERAL_NAME_freep) GENERAL_NAME *gen = NULL;
        _cleanup_(ASN1_IA5STRING_freep) ASN1_IA5STRING *dns = NULL;
        ASN1_OBJECT *server_auth;

        bc = BASIC_CONSTRAINTS_new();
        if (!bc)
                return -1;
        bc->ca = 0;
        if (!X509_add1_ext_i2d(x, NID_basic_constraints, bc, 1, X509V3_ADD_DEFAULT))
                return -1;

        ku = ASN1_BIT_STRING_new();
        if (!ku || !ASN1_BIT_STRING_set_bit(ku, 0 /* digitalSignature */, 1) ||
            !X509_add1_ext_i2d(x, NID_key_usage, ku, 1, X509V3_ADD_DEFAULT))
                return -1;

        eku = sk_ASN1_OBJECT_new_null();
        server_auth = OBJ_nid2obj(NID_server_auth);
        if (!eku || !server_auth || !sk_ASN1_OBJECT_push(eku, server_auth) ||
            !X509_add1_ext_i2d(x, NID_ext_key_usage, eku, 0, X509V3_ADD_DEFAULT))
                return -1;

        gens = sk_GENERAL_NAME_new_null();
        gen = GENERAL_NAME_new();
        dns = ASN1_IA5STRING_new();
        if (!gens || !gen || !dns || !ASN1_STRING_set(dns, name, (int)strlen(name)))
                return -1;
        GENERAL_NAME_set0_value(gen, GEN_DNS, TAKE_PTR(dns));
        if (!sk_GENERAL_NAME_push(gens, gen))
                return -1;
        gen = NULL;
        if (!X509_add1_ext_i2d(x, NID_subject_alt_name, gens, san_critical, X509V3_ADD_DEFAULT))
                return -1;
        return 0;
}

/* A new key and self-signed certificate for normalized @name, as PEM. */
static int generate(const char *name, char **ret_crt, size_t *ret_crt_len, char **ret_key,
                    size_t *ret_key_len, char **reterr)
{
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *pkey = NULL;
        _cleanup_(X509_freep) X509 *x = NULL;
        _cleanup_(X509_NAME_freep) X509_NAME *subject = NULL;
        _cleanup_(BIO_freep) BIO *crt_bio = NULL, *key_bio = NULL;
        _cleanup_(BN_freep) BIGNUM *bn = NULL;
        _cleanup_(ASN1_INTEGER_freep) ASN1_INTEGER *serial = NULL;
        _cleanup_free_ char *crt = NULL, *key = NULL;
        size_t crt_len, key_len;
        uint8_t rnd[16];
        bool long_name = strlen(name) > CERT_CN_MAX;
        time_t now = time(NULL);
        EC_KEY *ec;
        int r;

        ec = EC_KEY_new_by_curve_name(NID_X9_62_prime256v1);
        if (!ec || !EC_KEY_generate_key(ec)) {
                EC_KEY_free(ec);
                return fail_ssl(reterr, "generate a P-256 key", name);
        }
        pkey = EVP_PKEY_new();
        if (!pkey || !EVP_PKEY_assign_EC_KEY(pkey, ec)) {
                EC_KEY_free(ec);
                return fail_ssl(reterr, "generate a P-256 key", name);
        }

        /* 128 random bits, positive and non-zero (RFC 5280 §4.1.2.2). */
        RAND_bytes(rnd, sizeof(rnd));
        bn = BN_bin2bn(rnd, sizeof(rnd), NULL);
        if (bn && BN_is_zero(bn) && !BN_one(bn))
                bn = (BN_free(bn), NULL);
        serial = bn ? BN_to_ASN1_INTEGER(bn, NULL) : NULL;

        /* The subject is CN=name. A name longer than ub-common-name cannot be
         * a CN; then the subject names the issuer instead and the SAN, the
         * only identity, is critical (RFC 5280 §4.2.1.6). */
        subject = X509_NAME_new();
        if (!subject)
                return fail_ssl(reterr, "build a certificate", name);
        if (long_name)
                r = X509_NAME_add_entry_by_NID(subject, NID_organizationName, MBSTRING_ASC,
                                               (const uint8_t *)"gatewayd self-signed", -1, -1, 0);
        else
                r = X509_NAME_add_entry_by_NID(subject, NID_commonName, MBSTRING_ASC,
                                               (const uint8_t *)name, -1, -1, 0);

        x = X509_new();
        if (!r || !serial || !x || !X509_set_version(x, X509_VERSION_3) ||
            !X509_set_serialNumber(x, serial) || !X509_set_subject_name(x, subject) ||
            !X509_set_issuer_name(x, subject) ||
            !ASN1_TIME_adj(X509_getm_notBefore(x), now, 0, -CERT_BACKDATE) ||
            !ASN1_TIME_adj(X509_getm_notAfter(x), now, CERT_VALID_DAYS, 0) ||
            !X509_set_pubkey(x, pkey) || add_extensions(x, name, long_name) < 0 ||
            !X509_sign(x, pkey, EVP_sha256()))
                return fail_ssl(reterr, "build a certificate", name);

        crt_bio = BIO_new(BIO_s_mem());
        key_bio = BIO_new(BIO_s_mem());
        if (!crt_bio || !key_bio || !PEM_write_bio_X509(crt_bio, x) ||
            !PEM_write_bio_PKCS8PrivateKey(key_bio, pkey, NULL, NULL, 0, NULL, NULL))
                return fail_ssl(reterr, "write PEM", name);
        r = pem_of(crt_bio, &crt, &crt_len);
        if (r >= 0)
                r = pem_of(key_bio, &key, &key_len);
        if (r < 0)
                return fail(reterr, r, "failed to write PEM for %s: %s", name, strerror(-r));
        *ret_crt = TAKE_PTR(crt);
        *ret_crt_len = crt_len;
        *ret_key = TAKE_PTR(key);
        *ret_key_len = key_len;
        return 0;
}

/* Load <dir>/<file>.{crt,key}. Returns 1 with *ret, 0 when neither file
 * exists, or -errno with a reason (*why) why the pair must be replaced. */
static int load(struct gw_certs *c, const char *name, const char *crt_file, const char *key_file,
                struct proxy_cert **ret, char **why)
{
        _cleanup_(proxy_cert_unrefp) struct proxy_cert *cert = NULL;
        _cleanup_free_ char *crt_path = NULL, *key_path = NULL, *crt = NULL, *key = NULL,
                            *err = NULL;
        size_t crt_len = 0, key_len = 0;
        struct stat st;
        long long not_after;
        int rc, rk;

        if (asprintf(&crt_path, "%s/%s", c->dir, crt_file) < 0) {
                crt_path = NULL;
                return fail(why, -ENOMEM, "out of memory");
        }
        if (asprintf(&key_path, "%s/%s", c->dir, key_file) < 0) {
                key_path = NULL;
                return fail(why, -ENOMEM, "out of memory");
        }
        rc = read_file_full(crt_path, CERT_FILE_MAX, &crt, &crt_len);
        rk = read_file_full(key_path, CERT_FILE_MAX, &key, &key_len);
        if (rc == -ENOENT && rk == -ENOENT)
                return 0;
        if (rc < 0)
                return fail(why, rc, "cannot read %s: %s", crt_path, strerror(-rc));
        if (rk < 0)
                return fail(why, rk, "cannot read %s: %s", key_path, strerror(-rk));

        rc = proxy_cert_new_pem(crt, crt_len, key, key_len, &cert, &err);
        if (rc < 0)
                return fail(why, rc, "%s", err ? err : strerror(-rc));
        if (!proxy_cert_covers(cert, name, strlen(name)))
                return fail(why, -EINVAL, "certificate does not cover %s", name);
        not_after = proxy_cert_not_after(cert);
        if (not_after < (long long)time(NULL) + CERT_RENEW_AHEAD) {
                time_t t = (time_t)not_after;
                char date[64] = "?";
                struct tm tm;

                if (gmtime_r(&t, &tm))
                        strftime(date, sizeof(date), "%Y-%m-%d %H:%M:%S UTC", &tm);
                return fail(why, -EINVAL, "certificate expires within 30 days (notAfter %s)", date);
        }

        /* A key readable by others was not written by us; tighten it. */
        if (stat(key_path, &st) >= 0 && (st.st_mode & 0077) && chmod(key_path, 0600) >= 0)
                log_warning("Key file %s was mode %04o, set to 0600", key_path,
                            (unsigned)(st.st_mode & 07777));
        *ret = TAKE_PTR(cert);
        return 1;
}

static int save(struct gw_certs *c, const char *file, const char *data, size_t len, mode_t mode,
                char **reterr)
{
        int r = write_file_atomic(c->dir, file, data, len, mode);

        if (r < 0)
                return fail(reterr, r, "failed to write %s/%s: %s", c->dir, file, strerror(-r));
        return 0;
}

/* Generate for @name and, when @crt_file is set, save the pair (key first:
 * a crash in between leaves a mismatched pair, which load() replaces). */
static int create(struct gw_certs *c, const char *name, const char *crt_file, const char *key_file,
                  struct proxy_cert **ret, char **reterr)
{
        _cleanup_(proxy_cert_unrefp) struct proxy_cert *cert = NULL;
        _cleanup_free_ char *crt = NULL, *key = NULL, *err = NULL;
        size_t crt_len = 0, key_len = 0;
        int r;

        r = generate(name, &crt, &crt_len, &key, &key_len, reterr);
        if (r < 0)
                return r;
        r = proxy_cert_new_pem(crt, crt_len, key, key_len, &cert, &err);
        if (r < 0)
                r = fail(reterr, r, "generated certificate for %s does not load: %s", name,
                         err ? err : strerror(-r));
        if (r >= 0 && crt_file)
                r = save(c, key_file, key, key_len, 0600, reterr);
        if (r >= 0 && crt_file)
                r = save(c, crt_file, crt, crt_len, 0644, reterr);
        /* The key lived in a heap buffer; do not leave it behind. */
        OPENSSL_cleanse(key, key_len);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(cert);
        return 0;
}

static void entry_free(void *p)
{
        struct cert_entry *e = p;

        if (!e)
                return;
        proxy_cert_unref(e->cert);
        free(e);
}

/* ======================================================================
 * Issued certificates: <dir>/acme/<file>.pem, the chain then the key in one
 * file, so that one atomic write replaces both (a pair of files could be
 * left mismatched by a crash in between).
 * ====================================================================== */

/* Split a combined PEM at its private key block: the chain before it, the
 * key from it on. Returns 0, or -EINVAL when there is no key block. */
static int split_combined(const char *pem, size_t len, size_t *ret_chain_len)
{
        static const char *const markers[] = {"-----BEGIN PRIVATE KEY-----",
                                              "-----BEGIN EC PRIVATE KEY-----"};
        const char *best = NULL;

        for (size_t i = 0; i < ELEMENTSOF(markers); i++) {
                const char *m = memmem(pem, len, markers[i], strlen(markers[i]));

                if (m && (!best || m < best))
                        best = m;
        }
        if (!best || best == pem)
                return -EINVAL;
        *ret_chain_len = (size_t)(best - pem);
        return 0;
}

/* Move a damaged issued file aside so it is not read again (the manager
 * then orders a new certificate). */
static void issued_move_aside(struct gw_certs *c, const char *file)
{
        _cleanup_free_ char *aside = NULL;
        _cleanup_close_ int dfd = -1;

        if (asprintf(&aside, "%s.corrupt-%lld", file, (long long)time(NULL)) < 0)
                return;
        dfd = open(c->issued_dir, O_DIRECTORY | O_RDONLY | O_CLOEXEC);
        if (dfd < 0 || renameat(dfd, file, dfd, aside) < 0) {
                log_warning_errno(-errno, "Failed to move %s/%s aside: %m", c->issued_dir, file);
                return;
        }
        (void)fsync(dfd);
        log_warning("Moved the damaged certificate file %s/%s aside to %s", c->issued_dir, file,
                    aside);
}

/* Read and check <issued_dir>/<file>.pem. Returns 1 with *ret (and the
 * file's text if @ret_pem), 0 when there is none or it expired (the file
 * stays: the manager renews it), or -errno with *why when it is damaged
 * (then it has been moved aside). */
static int load_issued(struct gw_certs *c, const char *name, struct proxy_cert **ret,
                       char **ret_pem, size_t *ret_len, char **why)
{
        _cleanup_(proxy_cert_unrefp) struct proxy_cert *cert = NULL;
        _cleanup_free_ char *path = NULL, *pem = NULL, *err = NULL;
        char file[NAME_MAX + 1];
        size_t len = 0, chain_len;
        int r;

        if (!file_name(name, "pem", file, sizeof(file)))
                return 0;
        if (asprintf(&path, "%s/%s", c->issued_dir, file) < 0) {
                path = NULL;
                return fail(why, -ENOMEM, "out of memory");
        }
        r = read_file_full(path, CERT_FILE_MAX, &pem, &len);
        if (r == -ENOENT)
                return 0;
        if (r < 0 && r != -EFBIG)
                return fail(why, r, "cannot read %s: %s", path, strerror(-r));
        if (r >= 0)
                r = split_combined(pem, len, &chain_len);
        if (r >= 0)
                r = proxy_cert_new_pem(pem, chain_len, pem + chain_len, len - chain_len, &cert,
                                       &err);
        if (r >= 0 && !proxy_cert_covers(cert, name, strlen(name)))
                r = fail(&err, -EINVAL, "certificate does not cover %s", name);
        if (r < 0) {
                if (r != -ENOMEM) {
                        (void)fail(why, r, "%s: %s", path,
                                   err            ? err
                                   : r == -EINVAL ? "no private key"
                                                  : strerror(-r));
                        issued_move_aside(c, file);
                        return r;
                }
                return fail(why, r, "out of memory");
        }
        if (proxy_cert_not_after(cert) <= (long long)time(NULL))
                return 0;
        *ret = TAKE_PTR(cert);
        if (ret_pem) {
                *ret_pem = TAKE_PTR(pem);
                *ret_len = len;
        } else if (pem) {
                OPENSSL_cleanse(pem, len);
        }
        return 1;
}

/* The text of <issued_dir>/<file>.pem, unchecked: 1, 0 when there is none,
 * or -errno. */
static int read_issued(struct gw_certs *c, const char *name, char **ret, size_t *ret_len)
{
        _cleanup_free_ char *path = NULL;
        char file[NAME_MAX + 1];
        int r;

        if (!file_name(name, "pem", file, sizeof(file)))
                return 0;
        if (asprintf(&path, "%s/%s", c->issued_dir, file) < 0) {
                path = NULL;
                return -ENOMEM;
        }
        r = read_file_full(path, CERT_FILE_MAX, ret, ret_len);
        if (r == -ENOENT)
                return 0;
        return r < 0 ? r : 1;
}

int gw_certs_issued_pem(struct gw_certs *c, const char *name, char **ret_pem, size_t *ret_len)
{
        _cleanup_(proxy_cert_unrefp) struct proxy_cert *cert = NULL;
        _cleanup_free_ char *why = NULL, *pem = NULL;
        char norm[CERT_NAME_MAX + 1];
        struct cert_entry *e;
        size_t len = 0, chain_len;
        int r;

        r = name_normalize(name, norm, NULL);
        if (r < 0)
                return r;
        e = hashmap_get(c->cache, norm);
        if (e && e->issued) {
                /* Served from this very file, which was checked (it loads,
                 * the key matches, it covers the name) when it was read or
                 * installed: only the chain is wanted, so no key is parsed
                 * again. At start the routes load every certificate before
                 * the manager asks (10,000 keys: 1.3 s). */
                if (proxy_cert_not_after(e->cert) <= (long long)time(NULL))
                        return 0;
                r = read_issued(c, norm, &pem, &len);
        } else {
                r = load_issued(c, norm, &cert, &pem, &len, &why);
                if (r < 0 && r != -ENOMEM)
                        log_warning("Issued certificate for %s is damaged: %s", norm,
                                    strempty(why));
        }
        if (r <= 0)
                return r;
        /* Only the chain leaves this file: the key stays with the proxy. */
        if (split_combined(pem, len, &chain_len) < 0)
                return -EINVAL;
        OPENSSL_cleanse(pem + chain_len, len - chain_len);
        pem[chain_len] = 0;
        *ret_pem = TAKE_PTR(pem);
        *ret_len = chain_len;
        return 1;
}

int gw_certs_check_name(const char *name, char **reterr)
{
        char norm[CERT_NAME_MAX + 1], file[NAME_MAX + 1];
        int r;

        if (reterr)
                *reterr = NULL;
        r = name_normalize(name, norm, reterr);
        if (r < 0)
                return r;
        if (!file_name(norm, "pem", file, sizeof(file)))
                return fail(reterr, -ENAMETOOLONG,
                            "certificate name too long to store (at most %d bytes)",
                            CERT_FILE_NAME_MAX - (int)strlen(".pem") -
                                    (norm[0] == '*' ? (int)strlen(WILDCARD_PREFIX) - 2 : 0));
        return 0;
}

int gw_certs_install(struct gw_certs *c, const char *name, const char *chain, size_t chain_len,
                     const char *key, size_t key_len, struct proxy_cert **ret, char **reterr)
{
        _cleanup_(proxy_cert_unrefp) struct proxy_cert *cert = NULL;
        _cleanup_free_ char *err = NULL, *pem = NULL;
        char norm[CERT_NAME_MAX + 1], file[NAME_MAX + 1];
        struct cert_entry *e;
        size_t n;
        int r;

        if (reterr)
                *reterr = NULL;
        r = name_normalize(name, norm, reterr);
        if (r < 0)
                return r;
        r = proxy_cert_new_pem(chain, chain_len, key, key_len, &cert, &err);
        if (r < 0)
                return fail(reterr, r, "the issued certificate for %s does not load: %s", norm,
                            err ? err : strerror(-r));
        if (!proxy_cert_covers(cert, norm, strlen(norm)))
                return fail(reterr, -EINVAL, "the issued certificate does not cover %s", norm);
        if (!file_name(norm, "pem", file, sizeof(file)))
                return fail(reterr, -ENAMETOOLONG, "certificate name %s too long for a file", norm);
        /* The chain, a line break if it lacks one, then the key. */
        pem = malloc(chain_len + 1 + key_len);
        if (!pem)
                return fail(reterr, -ENOMEM, "out of memory");
        memcpy(pem, chain, chain_len);
        n = chain_len;
        if (n > 0 && pem[n - 1] != '\n')
                pem[n++] = '\n';
        memcpy(pem + n, key, key_len);
        n += key_len;
        r = mkdir_p(c->issued_dir, 0700);
        if (r >= 0)
                r = write_file_atomic(c->issued_dir, file, pem, n, 0600);
        OPENSSL_cleanse(pem, n);
        if (r < 0)
                return fail(reterr, r, "failed to write %s/%s: %s", c->issued_dir, file,
                            strerror(-r));

        n = strlen(norm);
        e = malloc(sizeof(*e) + n + 1);
        if (!e)
                return fail(reterr, -ENOMEM, "out of memory");
        memcpy(e->name, norm, n + 1);
        e->cert = TAKE_PTR(cert);
        e->issued = true;
        /* Replaces the cached one: routes still holding it keep their
         * reference until they are put again, so no connection is cut. */
        entry_free(hashmap_remove(c->cache, norm));
        r = hashmap_put(c->cache, e->name, e);
        if (r < 0) {
                entry_free(e);
                return fail(reterr, r, "out of memory");
        }
        *ret = e->cert;
        return 0;
}

bool gw_certs_serves_issued(struct gw_certs *c, const char *name)
{
        char norm[CERT_NAME_MAX + 1];
        struct cert_entry *e;

        if (name_normalize(name, norm, NULL) < 0)
                return false;
        e = hashmap_get(c->cache, norm);
        return e && e->issued;
}

/* Temporary files of write_file_atomic() left by a crash: ".#<file>.<pid>". */
static void remove_stale_temps(const char *dir)
{
        DIR *d = opendir(dir);
        struct dirent *de;

        if (!d)
                return;
        while ((de = readdir(d))) {
                if (strncmp(de->d_name, ".#", 2) != 0 ||
                    (!strstr(de->d_name, ".crt.") && !strstr(de->d_name, ".key.")))
                        continue;
                if (unlinkat(dirfd(d), de->d_name, 0) >= 0)
                        log_debug("Removed stale temporary file %s/%s", dir, de->d_name);
        }
        closedir(d);
}

int gw_certs_new(const char *dir, struct gw_certs **ret)
{
        struct gw_certs *c;
        struct stat st;
        int r;

        r = mkdir_p(dir, 0700);
        if (r < 0)
                return log_error_errno(r, "Failed to create certificate directory %s: %m", dir);
        if (stat(dir, &st) < 0)
                return log_error_errno(-errno, "Failed to stat %s: %m", dir);
        if (!S_ISDIR(st.st_mode))
                return log_error_errno(-ENOTDIR, "Certificate directory %s: %m", dir);
        if ((st.st_mode & 07777) != 0700) {
                if (chmod(dir, 0700) < 0)
                        return log_error_errno(-errno, "Failed to chmod 0700 %s: %m", dir);
                log_notice("Certificate directory %s was mode %04o, set to 0700", dir,
                           (unsigned)(st.st_mode & 07777));
        }
        remove_stale_temps(dir);

        c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        c->dir = strdup(dir);
        if (asprintf(&c->issued_dir, "%s/acme", dir) < 0)
                c->issued_dir = NULL;
        c->cache = hashmap_new(0);
        if (!c->dir || !c->issued_dir || !c->cache) {
                gw_certs_free(c);
                return -ENOMEM;
        }
        *ret = c;
        return 0;
}

struct gw_certs *gw_certs_free(struct gw_certs *c)
{
        if (!c)
                return NULL;
        hashmap_free_with(c->cache, entry_free);
        free(c->dir);
        free(c->issued_dir);
        free(c);
        return NULL;
}

int gw_certs_get(struct gw_certs *c, const char *name, struct proxy_cert **ret, char **reterr)
{
        _cleanup_(proxy_cert_unrefp) struct proxy_cert *cert = NULL;
        _cleanup_free_ char *why = NULL;
        char norm[CERT_NAME_MAX + 1], crt_file[NAME_MAX + 1], key_file[NAME_MAX + 1];
        struct cert_entry *e;
        bool persist, issued;
        size_t n;
        int r;

        if (reterr)
                *reterr = NULL;
        r = name_normalize(name, norm, reterr);
        if (r < 0)
                return r;
        e = hashmap_get(c->cache, norm);
        if (e) {
                *ret = e->cert;
                return 0;
        }
        if (hashmap_size(c->cache) >= CERTS_MAX)
                return fail(reterr, -ENOSPC, "too many certificates (at most %d)", CERTS_MAX);

        persist = file_name(norm, "crt", crt_file, sizeof(crt_file)) &&
                  file_name(norm, "key", key_file, sizeof(key_file));
        /* A certificate an ACME server issued comes first. */
        r = load_issued(c, norm, &cert, NULL, NULL, &why);
        if (r < 0 && r != -ENOMEM)
                log_warning("Issued certificate for %s is damaged: %s", norm, strempty(why));
        why = mfree(why);
        issued = r > 0;
        if (issued)
                log_debug("Loaded the issued certificate for %s", norm);
        else if (persist) {
                r = load(c, norm, crt_file, key_file, &cert, &why);
                if (r > 0)
                        log_debug("Loaded the certificate for %s from %s/%s", norm, c->dir,
                                  crt_file);
                else if (r == 0)
                        log_info("Generating a self-signed certificate for %s", norm);
                else if (r < 0)
                        log_warning("Replacing the certificate for %s: %s", norm, strempty(why));
        } else {
                log_warning("Certificate name %s is too long for a file name; its self-signed "
                            "certificate is kept in memory only",
                            norm);
        }
        if (!cert) {
                _cleanup_free_ char *err = NULL;

                r = create(c, norm, persist ? crt_file : NULL, persist ? key_file : NULL, &cert,
                           &err);
                if (r < 0) {
                        log_error_errno(r, "Failed to create a certificate for %s: %s", norm,
                                        strempty(err));
                        if (reterr)
                                *reterr = TAKE_PTR(err);
                        return r;
                }
        }

        n = strlen(norm);
        e = malloc(sizeof(*e) + n + 1);
        if (!e)
                return fail(reterr, -ENOMEM, "out of memory");
        memcpy(e->name, norm, n + 1);
        e->cert = TAKE_PTR(cert);
        e->issued = issued;
        r = hashmap_put(c->cache, e->name, e);
        if (r < 0) {
                entry_free(e);
                return fail(reterr, r, "out of memory");
        }
        *ret = e->cert;
        return 0;
}

void gw_certs_forget(struct gw_certs *c, const char *name, bool remove_files)
{
        char norm[CERT_NAME_MAX + 1], crt_file[NAME_MAX + 1], key_file[NAME_MAX + 1];
        _cleanup_close_ int dfd = -1;
        bool removed = false;

        if (name_normalize(name, norm, NULL) < 0)
                return;
        entry_free(hashmap_remove(c->cache, norm));
        if (!remove_files || !file_name(norm, "crt", crt_file, sizeof(crt_file)) ||
            !file_name(norm, "key", key_file, sizeof(key_file)))
                return;
        dfd = open(c->dir, O_DIRECTORY | O_RDONLY | O_CLOEXEC);
        if (dfd < 0) {
                log_warning_errno(-errno, "Failed to open %s: %m", c->dir);
                return;
        }
        for (int i = 0; i < 2; i++) {
                const char *f = i == 0 ? crt_file : key_file;

                if (unlinkat(dfd, f, 0) >= 0)
                        removed = true;
                else if (errno != ENOENT)
                        log_warning_errno(-errno, "Failed to remove %s/%s: %m", c->dir, f);
        }
        if (removed)
                (void)fsync(dfd);
        if (file_name(norm, "pem", crt_file, sizeof(crt_file))) {
                safe_close(dfd);
                dfd = open(c->issued_dir, O_DIRECTORY | O_RDONLY | O_CLOEXEC);
                if (dfd >= 0 && unlinkat(dfd, crt_file, 0) >= 0) {
                        (void)fsync(dfd);
                        removed = true;
                } else if (dfd >= 0 && errno != ENOENT) {
                        log_warning_errno(-errno, "Failed to remove %s/%s: %m", c->issued_dir,
                                          crt_file);
                }
        }
        if (removed)
                log_info("Removed the certificate files of %s", norm);
}
