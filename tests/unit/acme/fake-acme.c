/* SPDX-License-Identifier: Apache-2.0 */
#include "fake-acme.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/bn.h>
#include <openssl/bytestring.h>
#include <openssl/ec.h>
#include <openssl/ec_key.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/nid.h>
#include <openssl/pem.h>
#include <openssl/sha.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "acme/jws.h"
#include "common/base64.h"
#include "common/macros.h"
#include "common/strbuf.h"

#define MAX_ORDERS  16
#define MAX_AUTHZ   8 /* per order */
#define MAX_NONCES  8192
#define MAX_HEADERS 8

struct fake_authz {
        char identifier[256];
        bool wildcard;
        int status;             /* 0 pending, 1 valid, 2 invalid */
        bool posted[2];         /* challenge POSTed, per type */
        unsigned polls_left;    /* pending polls after the POST */
        char token[2][64];      /* per type */
        uint64_t next_poll_ms;  /* Retry-After: no poll before this loop time */
        char error_detail[128]; /* the challenge error when invalid */
};

struct fake_order {
        bool used;
        char names[MAX_AUTHZ][256];
        size_t n_names;
        int status; /* 0 pending/ready (computed), 2 processing, 3 valid, 4 invalid */
        struct fake_authz authz[MAX_AUTHZ];
        unsigned processing_left;
        unsigned finalizes;
        uint64_t next_poll_ms;
        char *chain;
};

struct pending {
        struct pending *prev, *next;
        acme_http_cb *cb;
        void *ud;
        int r;
        bool held;
        int status;
        char *hname[MAX_HEADERS], *hvalue[MAX_HEADERS];
        size_t n_headers;
        char *body;
        size_t body_len;
};

struct fake_private {
        EC_KEY *account_pub; /* from the account key */
        char jwk[256];       /* expected canonical JWK */
        char thumbprint[64];
        EVP_PKEY *ca_key;
        X509 *ca;
        bool nonce_used[MAX_NONCES];
        unsigned nonces_issued;
        struct fake_order orders[MAX_ORDERS];
        struct pending *queue; /* answers due on the next loop turn */
        uv_timer_t timer;
        bool finalize_refused;
};

static void fake_error(struct fake_acme *f, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));
static void fake_error(struct fake_acme *f, const char *fmt, ...)
{
        va_list ap;
        char *s;

        va_start(ap, fmt);
        if (vasprintf(&s, fmt, ap) < 0)
                s = NULL;
        va_end(ap);
        if (f->n_errors < FAKE_MAX_ERRORS)
                f->errors[f->n_errors++] = s;
        else
                free(s);
}

/* ---- responses ------------------------------------------------------------ */

static void resp_header(struct pending *p, const char *name, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
static void resp_header(struct pending *p, const char *name, const char *fmt, ...)
{
        va_list ap;

        assert(p->n_headers < MAX_HEADERS);
        p->hname[p->n_headers] = strdup(name);
        va_start(ap, fmt);
        assert(vasprintf(&p->hvalue[p->n_headers], fmt, ap) >= 0);
        va_end(ap);
        p->n_headers++;
}

static void resp_drop_header(struct pending *p, const char *name)
{
        for (size_t i = 0; i < p->n_headers; i++)
                if (strcasecmp(p->hname[i], name) == 0) {
                        free(p->hname[i]);
                        free(p->hvalue[i]);
                        p->hname[i] = p->hname[p->n_headers - 1];
                        p->hvalue[i] = p->hvalue[p->n_headers - 1];
                        p->n_headers--;
                        i--;
                }
}

static void resp_body(struct pending *p, const char *s)
{
        free(p->body);
        p->body = strdup(s);
        p->body_len = strlen(s);
}

static void resp_json(struct pending *p, int status, json_t *o)
{
        char *s = json_dumps(o, JSON_COMPACT);

        p->status = status;
        resp_body(p, s);
        free(s);
        json_decref(o);
        resp_header(p, "Content-Type", "application/json");
}

static void resp_problem(struct pending *p, int status, const char *type, const char *detail)
{
        json_t *o = json_pack("{s:s,s:s,s:i}", "type", type, "detail", detail, "status", status);

        resp_json(p, status, o);
        resp_drop_header(p, "Content-Type");
        resp_header(p, "Content-Type", "application/problem+json");
}

static void new_nonce(struct fake_acme *f, struct pending *p)
{
        resp_header(p, "Replay-Nonce", "nonce-%u", ++f->priv->nonces_issued);
}

static void pending_free(struct pending *p)
{
        for (size_t i = 0; i < p->n_headers; i++) {
                free(p->hname[i]);
                free(p->hvalue[i]);
        }
        free(p->body);
        free(p);
}

/* ---- mutations -------------------------------------------------------------- */

static json_t *wrong_value(unsigned v)
{
        switch (v % 6) {
        case 0:
                return json_null();
        case 1:
                return json_integer(-7);
        case 2:
                return json_string("x y\x01z");
        case 3:
                return json_pack("[i,s]", 1, "a");
        case 4:
                return json_pack("{s:i}", "k", 1);
        default: {
                char *big = malloc(70000);
                json_t *s;

                memset(big, 'A', 69999);
                big[69999] = 0;
                s = json_string(big);
                free(big);
                return s;
        }
        }
}

/* Replace the @n-th member value met depth-first; returns true if found. */
static bool mutate_member(json_t *o, unsigned *n, unsigned v)
{
        if (json_is_object(o)) {
                const char *key;
                json_t *val;
                void *tmp;

                json_object_foreach_safe(o, tmp, key, val)
                {
                        if ((*n)-- == 0) {
                                json_object_set_new(o, key, wrong_value(v));
                                return true;
                        }
                        if (mutate_member(val, n, v))
                                return true;
                }
        } else if (json_is_array(o)) {
                for (size_t i = 0; i < json_array_size(o); i++) {
                        if ((*n)-- == 0) {
                                json_array_set_new(o, i, wrong_value(v));
                                return true;
                        }
                        if (mutate_member(json_array_get(o, i), n, v))
                                return true;
                }
        }
        return false;
}

static void mutate(struct fake_acme *f, struct pending *p)
{
        f->mutated = f->mutation != FAKE_MUT_MEMBER;
        switch (f->mutation) {
        case FAKE_MUT_NONE:
        case _FAKE_MUT_MAX:
                break;
        case FAKE_MUT_TRUNCATE:
                if (p->body) {
                        p->body_len /= 2;
                        p->body[p->body_len] = 0;
                }
                break;
        case FAKE_MUT_GARBAGE: {
                static const char g[] = "\x89PNG\r\n\x1a\n\xff\xfe{\"status\":";
                free(p->body);
                p->body = malloc(sizeof(g));
                memcpy(p->body, g, sizeof(g));
                p->body_len = sizeof(g) - 1;
                break;
        }
        case FAKE_MUT_EMPTY:
                resp_body(p, "");
                break;
        case FAKE_MUT_NOT_OBJECT:
                resp_body(p, "[1,2]");
                break;
        case FAKE_MUT_MEMBER: {
                json_t *o = p->body ? json_loads(p->body, 0, NULL) : NULL;
                unsigned n = f->mutate_member;
                char *s;

                if (o && mutate_member(o, &n, f->mutate_value)) {
                        f->mutated = true;
                        s = json_dumps(o, JSON_COMPACT);
                        resp_body(p, s);
                        free(s);
                }
                json_decref(o);
                break;
        }
        case FAKE_MUT_NO_HEADERS:
                resp_drop_header(p, "Location");
                resp_drop_header(p, "Replay-Nonce");
                resp_drop_header(p, "Retry-After");
                break;
        case FAKE_MUT_BAD_HEADERS:
                resp_drop_header(p, "Location");
                resp_drop_header(p, "Replay-Nonce");
                resp_drop_header(p, "Retry-After");
                resp_header(p, "Location", "ftp://x");
                resp_header(p, "Replay-Nonce", "a b");
                resp_header(p, "Retry-After", "soon");
                break;
        case FAKE_MUT_STATUS_500:
                p->status = 500;
                break;
        }
}

/* ---- JWS and CSR checks ------------------------------------------------------- */

static uint8_t *b64d(const char *s, size_t *len)
{
        uint8_t *out = NULL;

        if (!s || base64url_decode(s, strlen(s), &out, len) < 0)
                return NULL;
        return out;
}

struct jws {
        json_t *hdr;
        char *payload; /* decoded */
};

/* Verify a flattened JWS as RFC 8555 §6.2 wants it; NULL (and an error
 * recorded) when anything is off. */
static bool verify_jws(struct fake_acme *f, const struct acme_http_request *req, bool want_jwk,
                       struct jws *ret, bool *ret_bad_nonce)
{
        struct fake_private *pv = f->priv;
        _cleanup_(json_decrefp) json_t *o = NULL;
        const char *prot, *pl, *sig, *nonce, *alg, *url;
        _cleanup_free_ uint8_t *hdr_raw = NULL, *sig_raw = NULL;
        _cleanup_free_ char *input = NULL;
        uint8_t digest[SHA256_DIGEST_LENGTH];
        size_t len, sig_len;
        json_t *hdr;
        ECDSA_SIG *es;
        unsigned n;
        bool ok;

        *ret_bad_nonce = false;
        if (!req->content_type || strcmp(req->content_type, "application/jose+json") != 0)
                fake_error(f, "%s: Content-Type %s", req->url, req->content_type ?: "(none)");
        o = json_loadb(req->body, req->body_len, JSON_REJECT_DUPLICATES, NULL);
        if (!json_is_object(o) || json_object_size(o) != 3) {
                fake_error(f, "%s: body is not a flattened JWS", req->url);
                return false;
        }
        prot = json_string_value(json_object_get(o, "protected"));
        pl = json_string_value(json_object_get(o, "payload"));
        sig = json_string_value(json_object_get(o, "signature"));
        hdr_raw = b64d(prot, &len);
        if (!hdr_raw || !pl || !sig) {
                fake_error(f, "%s: JWS members missing", req->url);
                return false;
        }
        hdr = json_loadb((const char *)hdr_raw, len, JSON_REJECT_DUPLICATES, NULL);
        if (!json_is_object(hdr)) {
                fake_error(f, "%s: protected header is not JSON", req->url);
                json_decref(hdr);
                return false;
        }
        ret->hdr = hdr;
        alg = json_string_value(json_object_get(hdr, "alg"));
        nonce = json_string_value(json_object_get(hdr, "nonce"));
        url = json_string_value(json_object_get(hdr, "url"));
        if (!alg || strcmp(alg, "ES256") != 0)
                fake_error(f, "%s: alg %s", req->url, alg ?: "(none)");
        if (!url || strcmp(url, req->url) != 0)
                fake_error(f, "%s: protected url %s", req->url, url ?: "(none)");
        if (json_object_size(hdr) != 4)
                fake_error(f, "%s: protected header has %zu members", req->url,
                           json_object_size(hdr));
        if (want_jwk) {
                json_t *jwk = json_object_get(hdr, "jwk");
                char *s = jwk ? json_dumps(jwk, JSON_COMPACT | JSON_SORT_KEYS) : NULL;

                if (!s || strcmp(s, pv->jwk) != 0 || json_object_get(hdr, "kid"))
                        fake_error(f, "%s: jwk %s, want %s", req->url, s ?: "(none)", pv->jwk);
                free(s);
        } else if (json_object_get(hdr, "jwk")) {
                fake_error(f, "%s: jwk where kid belongs", req->url);
        }
        /* The nonce: one this server issued and nobody used yet. */
        if (!nonce || sscanf(nonce, "nonce-%u", &n) != 1 || n == 0 || n > pv->nonces_issued ||
            n >= MAX_NONCES) {
                fake_error(f, "%s: nonce %s was never issued", req->url, nonce ?: "(none)");
                *ret_bad_nonce = true;
        } else if (pv->nonce_used[n]) {
                fake_error(f, "%s: nonce %s used twice", req->url, nonce);
                *ret_bad_nonce = true;
        } else {
                pv->nonce_used[n] = true;
        }
        /* ES256: exactly 64 bytes r||s over "<protected>.<payload>". */
        sig_raw = b64d(sig, &sig_len);
        if (!sig_raw || sig_len != 64) {
                fake_error(f, "%s: signature of %zu bytes", req->url, sig_raw ? sig_len : 0);
                return false;
        }
        assert(asprintf(&input, "%s.%s", prot, pl) > 0);
        SHA256((const uint8_t *)input, strlen(input), digest);
        es = ECDSA_SIG_new();
        ECDSA_SIG_set0(es, BN_bin2bn(sig_raw, 32, NULL), BN_bin2bn(sig_raw + 32, 32, NULL));
        ok = ECDSA_do_verify(digest, sizeof(digest), es, pv->account_pub) == 1;
        ECDSA_SIG_free(es);
        if (!ok) {
                fake_error(f, "%s: signature does not verify", req->url);
                return false;
        }
        ret->payload = (char *)b64d(pl, &len);
        if (!ret->payload) {
                fake_error(f, "%s: payload is not base64url", req->url);
                return false;
        }
        return true;
}

static char *cert_pem(X509 *x)
{
        BIO *bio = BIO_new(BIO_s_mem());
        const uint8_t *d;
        size_t len;
        char *s;

        assert(PEM_write_bio_X509(bio, x));
        BIO_mem_contents(bio, &d, &len);
        s = memdup_suffix0((const char *)d, len);
        BIO_free(bio);
        return s;
}

static const uint8_t fake_aki[20] = {0xfa, 0xce, 1,  2,  3,  4,  5,  6,  7,  8,
                                     9,    10,   11, 12, 13, 14, 15, 16, 17, 18};

/* Check the CSR of @o's finalize and issue the chain; false on a bad CSR. */
static bool issue(struct fake_acme *f, struct fake_order *o, const char *csr_b64)
{
        struct fake_private *pv = f->priv;
        _cleanup_free_ uint8_t *der = NULL;
        const uint8_t *p;
        size_t len, n_names;
        X509_REQ *req;
        EVP_PKEY *pub = NULL, *other = NULL;
        STACK_OF(X509_EXTENSION) *exts = NULL;
        GENERAL_NAMES *gens = NULL;
        X509 *x = NULL;
        bool ok = false;
        uint8_t serial_bytes[9] = {0x8a, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88};
        char *leaf, *ca;

        der = b64d(csr_b64, &len);
        if (!der) {
                fake_error(f, "finalize: csr is not base64url");
                return false;
        }
        p = der;
        req = d2i_X509_REQ(NULL, &p, (long)len);
        if (!req || p != der + len) {
                fake_error(f, "finalize: csr is not DER PKCS#10");
                goto out;
        }
        pub = X509_REQ_get_pubkey(req);
        if (!pub || X509_REQ_verify(req, pub) != 1) {
                fake_error(f, "finalize: csr signature does not verify");
                goto out;
        }
        if (EC_POINT_cmp(EC_KEY_get0_group(pv->account_pub),
                         EC_KEY_get0_public_key(pv->account_pub),
                         EC_KEY_get0_public_key(EVP_PKEY_get0_EC_KEY(pub)), NULL) == 0) {
                fake_error(f, "finalize: csr is signed with the account key");
                goto out;
        }
        exts = X509_REQ_get_extensions(req);
        for (size_t i = 0; exts && i < sk_X509_EXTENSION_num(exts); i++) {
                X509_EXTENSION *e = sk_X509_EXTENSION_value(exts, i);

                if (OBJ_obj2nid(X509_EXTENSION_get_object(e)) == NID_subject_alt_name)
                        gens = X509V3_EXT_d2i(e);
        }
        n_names = gens ? sk_GENERAL_NAME_num(gens) : 0;
        if (n_names != o->n_names) {
                fake_error(f, "finalize: csr has %zu names, the order %zu", n_names, o->n_names);
                goto out;
        }
        for (size_t i = 0; i < o->n_names; i++) {
                bool found = false;

                for (size_t j = 0; j < n_names; j++) {
                        const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, j);

                        found |= g->type == GEN_DNS &&
                                 (size_t)ASN1_STRING_length(g->d.dNSName) == strlen(o->names[i]) &&
                                 memcmp(ASN1_STRING_get0_data(g->d.dNSName), o->names[i],
                                        strlen(o->names[i])) == 0;
                }
                if (!found) {
                        fake_error(f, "finalize: csr lacks %s", o->names[i]);
                        goto out;
                }
        }

        /* The certificate: CSR key and names, our CA, a serial with the high
         * bit set, an AKI: everything acme/cert.c reads. */
        x = X509_new();
        {
                BIGNUM *bn = BN_bin2bn(serial_bytes, sizeof(serial_bytes), NULL);
                ASN1_INTEGER *serial = BN_to_ASN1_INTEGER(bn, NULL);
                AUTHORITY_KEYID *akid = AUTHORITY_KEYID_new();
                GENERAL_NAMES *sans = sk_GENERAL_NAME_new_null();
                time_t now = (time_t)*f->clock;

                X509_set_version(x, X509_VERSION_3);
                X509_set_serialNumber(x, serial);
                X509_set_issuer_name(x, X509_get_subject_name(pv->ca));
                ASN1_TIME_set(X509_getm_notBefore(x), now);
                ASN1_TIME_set(X509_getm_notAfter(x), now + 90 * 86400);
                if (f->cert_wrong_key) {
                        EC_KEY *ec = EC_KEY_new_by_curve_name(NID_X9_62_prime256v1);

                        EC_KEY_generate_key(ec);
                        other = EVP_PKEY_new();
                        EVP_PKEY_assign_EC_KEY(other, ec);
                }
                X509_set_pubkey(x, other ?: pub);
                akid->keyid = ASN1_OCTET_STRING_new();
                ASN1_OCTET_STRING_set(akid->keyid, fake_aki, sizeof(fake_aki));
                X509_add1_ext_i2d(x, NID_authority_key_identifier, akid, 0, X509V3_ADD_DEFAULT);
                for (size_t i = 0; i < o->n_names - (f->cert_missing_name ? 1 : 0); i++) {
                        GENERAL_NAME *g = GENERAL_NAME_new();
                        ASN1_IA5STRING *ia5 = ASN1_IA5STRING_new();

                        ASN1_STRING_set(ia5, o->names[i], (int)strlen(o->names[i]));
                        GENERAL_NAME_set0_value(g, GEN_DNS, ia5);
                        sk_GENERAL_NAME_push(sans, g);
                }
                X509_add1_ext_i2d(x, NID_subject_alt_name, sans, 0, X509V3_ADD_DEFAULT);
                X509_sign(x, pv->ca_key, EVP_sha256());
                GENERAL_NAMES_free(sans);
                AUTHORITY_KEYID_free(akid);
                ASN1_INTEGER_free(serial);
                BN_free(bn);
        }
        if (f->cert_bad_point) {
                /* Move the leaf's EC point off the curve in the DER: the
                 * certificate still parses, its key no longer decodes. */
                uint8_t *der_x = NULL, point[65];
                const uint8_t *q;
                int n = i2d_X509(x, &der_x);
                EC_KEY *ec = EVP_PKEY_get0_EC_KEY(pub);
                uint8_t *at;

                EC_POINT_point2oct(EC_KEY_get0_group(ec), EC_KEY_get0_public_key(ec),
                                   POINT_CONVERSION_UNCOMPRESSED, point, sizeof(point), NULL);
                at = memmem(der_x, (size_t)n, point, sizeof(point));
                assert(at);
                at[64] ^= 1;
                q = der_x;
                X509_free(x);
                x = d2i_X509(NULL, &q, n);
                assert(x);
                OPENSSL_free(der_x);
        }
        leaf = cert_pem(x);
        ca = cert_pem(pv->ca);
        free(o->chain);
        assert(asprintf(&o->chain, "%s%s", leaf, ca) > 0);
        free(leaf);
        free(ca);
        {
                char a[64], s[64];
                uint8_t with_zero[10] = {0};

                memcpy(with_zero + 1, serial_bytes, sizeof(serial_bytes));
                base64url_encode_to(fake_aki, sizeof(fake_aki), a);
                base64url_encode_to(with_zero, sizeof(with_zero), s);
                free(f->issued_cert_id);
                assert(asprintf(&f->issued_cert_id, "%s.%s", a, s) > 0);
        }
        ok = true;
out:
        X509_free(x);
        GENERAL_NAMES_free(gens);
        if (exts)
                sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
        EVP_PKEY_free(other);
        EVP_PKEY_free(pub);
        X509_REQ_free(req);
        return ok;
}

/* ---- objects ------------------------------------------------------------------ */

static const char *const type_names[2] = {"http-01", "dns-01"};

static bool order_ready(const struct fake_order *o)
{
        for (size_t i = 0; i < o->n_names; i++)
                if (o->authz[i].status != 1)
                        return false;
        return true;
}

static json_t *order_json(struct fake_order *o, size_t idx)
{
        static const char *const st[] = {"pending", "?", "processing", "valid", "invalid"};
        json_t *ids = json_array(), *authzs = json_array(), *j;
        char url[128];

        for (size_t i = 0; i < o->n_names; i++) {
                json_array_append_new(ids,
                                      json_pack("{s:s,s:s}", "type", "dns", "value", o->names[i]));
                snprintf(url, sizeof(url), FAKE_BASE "/authz/%zu/%zu", idx, i);
                json_array_append_new(authzs, json_string(url));
        }
        snprintf(url, sizeof(url), FAKE_BASE "/finalize/%zu", idx);
        j = json_pack("{s:s,s:s,s:o,s:o,s:s}", "status",
                      o->status == 0 && order_ready(o) ? "ready" : st[o->status], "expires",
                      "2030-01-01T00:00:00Z", "identifiers", ids, "authorizations", authzs,
                      "finalize", url);
        if (o->status == 3) {
                snprintf(url, sizeof(url), FAKE_BASE "/cert/%zu", idx);
                json_object_set_new(j, "certificate", json_string(url));
        }
        if (o->status == 4)
                json_object_set_new(j, "error",
                                    json_pack("{s:s,s:s}", "type",
                                              "urn:ietf:params:acme:error:unauthorized", "detail",
                                              "an authorization failed"));
        return j;
}

static json_t *challenge_json(const struct fake_authz *a, size_t oi, size_t ai, int t)
{
        char url[128];
        json_t *c;

        snprintf(url, sizeof(url), FAKE_BASE "/chall/%zu/%zu/%d", oi, ai, t);
        c = json_pack("{s:s,s:s,s:s,s:s}", "type", type_names[t], "url", url, "token", a->token[t],
                      "status",
                      a->status == 1   ? "valid"
                      : a->status == 2 ? (a->posted[t] ? "invalid" : "pending")
                      : a->posted[t]   ? "processing"
                                       : "pending");
        if (a->status == 2 && a->posted[t])
                json_object_set_new(c, "error",
                                    json_pack("{s:s,s:s}", "type",
                                              "urn:ietf:params:acme:error:incorrectResponse",
                                              "detail", a->error_detail));
        return c;
}

static json_t *authz_json(const struct fake_authz *a, size_t oi, size_t ai, bool no_http01)
{
        static const char *const st[] = {"pending", "valid", "invalid"};
        json_t *chs = json_array();
        json_t *j;

        for (int t = 0; t < 2; t++)
                if (!(t == 0 && (a->wildcard || no_http01)))
                        json_array_append_new(chs, challenge_json(a, oi, ai, t));
        j = json_pack("{s:{s:s,s:s},s:s,s:s,s:o}", "identifier", "type", "dns", "value",
                      a->identifier, "status", st[a->status], "expires", "2030-01-01T00:00:00Z",
                      "challenges", chs);
        if (a->wildcard)
                json_object_set_new(j, "wildcard", json_true());
        return j;
}

/* ---- published challenges ------------------------------------------------------- */

static void expected_dns(const struct fake_acme *f, const char *token, char out[64])
{
        char ka[256];
        uint8_t d[SHA256_DIGEST_LENGTH];

        snprintf(ka, sizeof(ka), "%s.%s", token, f->priv->thumbprint);
        SHA256((const uint8_t *)ka, strlen(ka), d);
        base64url_encode_to(d, sizeof(d), out);
}

static bool published(const struct fake_acme *f, int t, const struct fake_authz *a)
{
        char ka[256], dns[64];

        snprintf(ka, sizeof(ka), "%s.%s", a->token[t], f->priv->thumbprint);
        expected_dns(f, a->token[t], dns);
        for (unsigned i = 0; i < f->n_pub; i++) {
                const struct fake_published *p = &f->pub[i];

                if ((int)p->type != t || strcmp(p->identifier, a->identifier) != 0 ||
                    p->wildcard != a->wildcard)
                        continue;
                if (t == 0 && strcmp(p->token, a->token[0]) == 0 && strcmp(p->key_auth, ka) == 0)
                        return true;
                if (t == 1 && p->dns_value && strcmp(p->dns_value, dns) == 0)
                        return true;
        }
        return false;
}

int fake_publish(struct fake_acme *f, const struct acme_challenge *ch)
{
        struct fake_published *p;

        if (f->n_pub == FAKE_MAX_PUB)
                return -ENOSPC;
        p = &f->pub[f->n_pub++];
        p->type = ch->type;
        p->identifier = strdup(ch->identifier);
        p->wildcard = ch->wildcard;
        p->token = strdup(ch->token);
        p->key_auth = strdup(ch->key_authorization);
        p->dns_value = ch->dns_value ? strdup(ch->dns_value) : NULL;
        f->max_pub = MAX(f->max_pub, f->n_pub);
        return 0;
}

void fake_unpublish(struct fake_acme *f, const struct acme_challenge *ch)
{
        for (unsigned i = 0; i < f->n_pub; i++) {
                struct fake_published *p = &f->pub[i];

                if (p->type != ch->type || strcmp(p->identifier, ch->identifier) != 0 ||
                    p->wildcard != ch->wildcard || strcmp(p->token, ch->token) != 0)
                        continue;
                free(p->identifier);
                free(p->token);
                free(p->key_auth);
                free(p->dns_value);
                f->pub[i] = f->pub[--f->n_pub];
                return;
        }
        fake_error(f, "remove of a challenge never installed (%s)", ch->identifier);
}

const char *fake_thumbprint(const struct fake_acme *f)
{
        return f->priv->thumbprint;
}

/* ---- request handling ------------------------------------------------------------ */

static void retry_after(struct fake_acme *f, struct pending *p, uint64_t *next_poll_ms)
{
        uint64_t secs;

        if (f->retry_after_date_s > 0) {
                time_t t = (time_t)(*f->clock + f->retry_after_date_s);
                struct tm tm;
                char buf[64];

                gmtime_r(&t, &tm);
                strftime(buf, sizeof(buf), "%a, %d %b %Y %H:%M:%S GMT", &tm);
                resp_header(p, "Retry-After", "%s", buf);
                secs = (uint64_t)f->retry_after_date_s;
        } else if (f->retry_after) {
                resp_header(p, "Retry-After", "%s", f->retry_after);
                secs = strtoull(f->retry_after, NULL, 10);
        } else {
                secs = 0;
        }
        *next_poll_ms = uv_now(f->loop) + secs * 1000;
}

static void check_poll_time(struct fake_acme *f, const char *what, uint64_t next_poll_ms)
{
        uint64_t now = uv_now(f->loop);

        if (f->n_poll_times < FAKE_MAX_POLLS)
                f->poll_times[f->n_poll_times++] = now;
        if (now < next_poll_ms)
                fake_error(f, "%s polled %" PRIu64 " ms before its Retry-After", what,
                           next_poll_ms - now);
}

static bool sscan_order(const char *path, const char *prefix, size_t *oi)
{
        char tail;

        return strncmp(path, prefix, strlen(prefix)) == 0 &&
               sscanf(path + strlen(prefix), "%zu%c", oi, &tail) == 1 && *oi < MAX_ORDERS;
}

static void handle_post(struct fake_acme *f, const struct acme_http_request *req, struct pending *p)
{
        struct fake_private *pv = f->priv;
        const char *path = req->url + strlen(FAKE_BASE);
        bool new_account = strcmp(path, "/acct") == 0, bad_nonce;
        struct jws jws = {};
        const char *kid;
        size_t oi, ai;
        int t;

        new_nonce(f, p);
        f->n_signed++;
        if (!verify_jws(f, req, new_account, &jws, &bad_nonce)) {
                resp_problem(p, 400, "urn:ietf:params:acme:error:malformed", "bad JWS");
                goto out;
        }
        if (bad_nonce) {
                resp_problem(p, 400, "urn:ietf:params:acme:error:badNonce", "bad nonce");
                goto out;
        }
        for (size_t i = 0; i < ELEMENTSOF(f->bad_nonce_at) && f->bad_nonce_at[i]; i++)
                if (f->bad_nonce_at[i] == f->n_signed) {
                        resp_problem(p, 400, "urn:ietf:params:acme:error:badNonce",
                                     "JWS has an invalid anti-replay nonce");
                        goto out;
                }
        if (f->bad_nonce_always && f->n_signed >= f->bad_nonce_always) {
                resp_problem(p, 400, "urn:ietf:params:acme:error:badNonce", "always bad");
                goto out;
        }

        if (new_account) {
                json_t *pl = json_loads(jws.payload, 0, NULL);
                char loc[64];

                f->n_new_account++;
                if (!json_is_true(json_object_get(pl, "termsOfServiceAgreed")))
                        fake_error(f, "newAccount without termsOfServiceAgreed");
                if (!f->account_url) {
                        snprintf(loc, sizeof(loc), FAKE_BASE "/acct/%u", ++f->accounts);
                        f->account_url = strdup(loc);
                        resp_json(p, 201,
                                  json_pack("{s:s,s:O*}", "status", "valid", "contact",
                                            json_object_get(pl, "contact")));
                } else {
                        resp_json(p, 200, json_pack("{s:s}", "status", "valid"));
                }
                resp_header(p, "Location", "%s", f->account_url);
                json_decref(pl);
                goto out;
        }

        kid = json_string_value(json_object_get(jws.hdr, "kid"));
        if (f->forget_account_at && f->forget_account_at == f->n_signed) {
                free(f->account_url);
                f->account_url = NULL;
        }
        if (!f->account_url || !kid || strcmp(kid, f->account_url) != 0) {
                if (f->account_url)
                        fake_error(f, "%s: kid %s, account %s", req->url, kid ?: "(none)",
                                   f->account_url);
                resp_problem(p, 400, "urn:ietf:params:acme:error:accountDoesNotExist",
                             "no such account");
                goto out;
        }

        if (strcmp(path, "/order") == 0) {
                json_t *pl = json_loads(jws.payload, 0, NULL),
                       *ids = json_object_get(pl, "identifiers");
                const char *replaces = json_string_value(json_object_get(pl, "replaces"));
                const char *profile = json_string_value(json_object_get(pl, "profile"));
                struct fake_order *o = NULL;
                char loc[64];

                f->n_new_order++;
                if (f->new_order_404) {
                        f->new_order_404--;
                        resp_problem(p, 404, "about:blank", "moved");
                        json_decref(pl);
                        goto out;
                }
                free(f->new_order_profile);
                free(f->new_order_replaces);
                f->new_order_profile = profile ? strdup(profile) : NULL;
                f->new_order_replaces = replaces ? strdup(replaces) : NULL;
                f->new_orders_with_replaces += replaces != NULL;
                if (!json_is_array(ids) || json_array_size(ids) == 0 ||
                    json_array_size(ids) > MAX_AUTHZ) {
                        fake_error(f, "newOrder identifiers: %s", jws.payload);
                        resp_problem(p, 400, "urn:ietf:params:acme:error:malformed", "ids");
                        json_decref(pl);
                        goto out;
                }
                if (f->rate_limited) {
                        resp_json(p, 429,
                                  json_pack("{s:s,s:s,s:[{s:s,s:s,s:{s:s,s:s}}]}", "type",
                                            "urn:ietf:params:acme:error:rateLimited", "detail",
                                            "too many certificates already issued", "subproblems",
                                            "type", "urn:ietf:params:acme:error:rateLimited",
                                            "detail", "5 per week", "identifier", "type", "dns",
                                            "value",
                                            json_string_value(json_object_get(
                                                    json_array_get(ids, 0), "value"))));
                        resp_header(p, "Retry-After", "3600");
                        json_decref(pl);
                        goto out;
                }
                if (replaces && f->replaces_reject == 400) {
                        resp_problem(p, 400, "urn:ietf:params:acme:error:malformed",
                                     "unknown field \"replaces\"");
                        json_decref(pl);
                        goto out;
                }
                if (replaces && f->replaces_reject == 409) {
                        resp_problem(p, 409, "urn:ietf:params:acme:error:alreadyReplaced",
                                     "certificate already replaced");
                        json_decref(pl);
                        goto out;
                }
                for (oi = 0; oi < MAX_ORDERS; oi++)
                        if (!pv->orders[oi].used) {
                                o = &pv->orders[oi];
                                break;
                        }
                assert(o);
                o->used = true;
                o->n_names = json_array_size(ids);
                o->processing_left = f->order_processing_polls;
                for (size_t i = 0; i < o->n_names; i++) {
                        const char *v =
                                json_string_value(json_object_get(json_array_get(ids, i), "value"));
                        struct fake_authz *a = &o->authz[i];

                        snprintf(o->names[i], sizeof(o->names[i]), "%s", v ?: "");
                        a->wildcard = strncmp(o->names[i], "*.", 2) == 0;
                        snprintf(a->identifier, sizeof(a->identifier), "%s",
                                 o->names[i] + (a->wildcard ? 2 : 0));
                        a->polls_left = f->authz_pending_polls;
                        a->status = f->new_order_ready ? 1 : 0;
                        for (t = 0; t < 2; t++)
                                snprintf(a->token[t], sizeof(a->token[t]), "tok_%zu_%zu_%d-X", oi,
                                         i, t);
                }
                snprintf(loc, sizeof(loc), FAKE_BASE "/order/%zu", oi);
                resp_json(p, 201, order_json(o, oi));
                resp_header(p, "Location", "%s", loc);
                json_decref(pl);
                goto out;
        }

        /* Everything below is for an existing order. */
        if (sscanf(path, "/chall/%zu/%zu/%d", &oi, &ai, &t) == 3 && oi < MAX_ORDERS &&
            pv->orders[oi].used && ai < pv->orders[oi].n_names && t >= 0 && t < 2) {
                struct fake_order *o = &pv->orders[oi];
                struct fake_authz *a = &o->authz[ai];

                f->n_challenge_posts++;
                if (strcmp(jws.payload, "{}") != 0)
                        fake_error(f, "challenge POST payload %s", jws.payload);
                if (a->posted[t])
                        fake_error(f, "challenge %s POSTed twice", a->identifier);
                a->posted[t] = true;
                /* Every pending authorization for this name must be
                 * answerable now: the CA may look at any of them. */
                for (size_t i = 0; i < o->n_names; i++) {
                        struct fake_authz *b = &o->authz[i];

                        if (b->status != 0 || strcmp(b->identifier, a->identifier) != 0)
                                continue;
                        if (!published(f, t, b)) {
                                fake_error(f, "challenge for %s%s POSTed before %s%s was published",
                                           a->wildcard ? "*." : "", a->identifier,
                                           b->wildcard ? "*." : "", b->identifier);
                                b->status = 2;
                                b->posted[t] = true;
                                snprintf(b->error_detail, sizeof(b->error_detail), "no TXT record");
                        }
                }
                if (f->invalid_challenge && a->status == 0) {
                        a->status = 2;
                        char d[sizeof(a->error_detail)];

                        snprintf(d, sizeof(d),
                                 "Incorrect TXT record \"x\" found at _acme-challenge.%s",
                                 a->identifier);
                        memcpy(a->error_detail, d, sizeof(d));
                }
                if (a->status == 0 && a->polls_left == 0)
                        a->status = 1;
                resp_json(p, 200, challenge_json(a, oi, ai, t));
                retry_after(f, p, &a->next_poll_ms);
                goto out;
        }
        if (sscanf(path, "/authz/%zu/%zu", &oi, &ai) == 2 && oi < MAX_ORDERS &&
            pv->orders[oi].used && ai < pv->orders[oi].n_names) {
                struct fake_authz *a = &pv->orders[oi].authz[ai];

                if (*jws.payload)
                        fake_error(f, "authorization POST-as-GET with payload %s", jws.payload);
                if (a->posted[0] || a->posted[1]) {
                        f->n_authz_polls++;
                        check_poll_time(f, a->identifier, a->next_poll_ms);
                        if (a->status == 0 && a->polls_left > 0 && --a->polls_left == 0)
                                a->status = 1;
                }
                resp_json(p, 200, authz_json(a, oi, ai, f->no_http01));
                if (a->status == 0)
                        retry_after(f, p, &a->next_poll_ms);
                goto out;
        }
        if (sscan_order(path, "/order/", &oi) && pv->orders[oi].used) {
                struct fake_order *o = &pv->orders[oi];

                if (*jws.payload)
                        fake_error(f, "order POST-as-GET with payload %s", jws.payload);
                f->n_order_polls++;
                check_poll_time(f, "order", o->next_poll_ms);
                if (o->status == 2 && (o->processing_left == 0 || --o->processing_left == 0))
                        o->status = 3;
                resp_json(p, 200, order_json(o, oi));
                if (o->status == 2)
                        retry_after(f, p, &o->next_poll_ms);
                goto out;
        }
        if (sscan_order(path, "/finalize/", &oi) && pv->orders[oi].used) {
                struct fake_order *o = &pv->orders[oi];
                json_t *pl = json_loads(jws.payload, 0, NULL);
                const char *csr = json_string_value(json_object_get(pl, "csr"));

                f->n_finalize++;
                f->n_pub_at_finalize = f->n_pub;
                if (f->finalize_not_ready && !pv->finalize_refused) {
                        pv->finalize_refused = true;
                        resp_problem(p, 403, "urn:ietf:params:acme:error:orderNotReady",
                                     "order not ready");
                } else if (o->status != 0 || !order_ready(o)) {
                        fake_error(f, "finalize of an order that is not ready");
                        resp_problem(p, 403, "urn:ietf:params:acme:error:orderNotReady",
                                     "order not ready");
                } else if (!csr || json_object_size(pl) != 1 || !issue(f, o, csr)) {
                        resp_problem(p, 400, "urn:ietf:params:acme:error:badCSR", "bad CSR");
                } else {
                        o->status = o->processing_left ? 2 : 3;
                        resp_json(p, 200, order_json(o, oi));
                        if (o->status == 2)
                                retry_after(f, p, &o->next_poll_ms);
                }
                json_decref(pl);
                goto out;
        }
        if (sscan_order(path, "/cert/", &oi) && pv->orders[oi].used && pv->orders[oi].chain) {
                f->n_cert++;
                if (*jws.payload)
                        fake_error(f, "certificate POST-as-GET with payload %s", jws.payload);
                if (!req->accept || strcmp(req->accept, "application/pem-certificate-chain") != 0)
                        fake_error(f, "certificate download with Accept %s",
                                   req->accept ?: "(none)");
                p->status = 200;
                resp_body(p, pv->orders[oi].chain);
                resp_header(p, "Content-Type", "application/pem-certificate-chain");
                goto out;
        }
        fake_error(f, "POST to unknown URL %s", req->url);
        resp_problem(p, 404, "urn:ietf:params:acme:error:malformed", "no such resource");
out:
        json_decref(jws.hdr);
        free(jws.payload);
}

static void handle(struct fake_acme *f, const struct acme_http_request *req, struct pending *p)
{
        const char *path;

        if (strncmp(req->url, FAKE_BASE "/", strlen(FAKE_BASE) + 1) != 0) {
                fake_error(f, "request to foreign URL %s", req->url);
                resp_problem(p, 404, "about:blank", "not here");
                return;
        }
        path = req->url + strlen(FAKE_BASE);
        if (f->busy_at == f->n_requests) {
                resp_problem(p, 503, "urn:ietf:params:acme:error:serverInternal", "busy");
                resp_header(p, "Retry-After", "0");
                new_nonce(f, p);
                return;
        }
        if (strcmp(req->method, "POST") == 0) {
                handle_post(f, req, p);
                return;
        }
        if (strcmp(req->method, "HEAD") == 0 && strcmp(path, "/nonce") == 0) {
                f->n_nonce++;
                p->status = 200;
                if (!f->nonce_less_new_nonce)
                        new_nonce(f, p);
                resp_header(p, "Cache-Control", "no-store");
                return;
        }
        if (strcmp(req->method, "GET") == 0 && strcmp(path, "/dir") == 0) {
                json_t *d = json_pack("{s:s,s:s,s:s,s:s,s:s}", "newNonce", FAKE_BASE "/nonce",
                                      "newAccount", FAKE_BASE "/acct", "newOrder",
                                      FAKE_BASE "/order", "revokeCert", FAKE_BASE "/revoke",
                                      "keyChange", FAKE_BASE "/key-change");
                json_t *meta = json_pack("{s:s}", "termsOfService", FAKE_BASE "/tos");

                f->n_dir++;
                if (f->nonce_on_get)
                        new_nonce(f, p);
                if (f->dir_without_new_order)
                        json_object_del(d, "newOrder");
                if (f->ari)
                        json_object_set_new(d, "renewalInfo", json_string(FAKE_BASE "/ari"));
                if (f->profiles[0]) {
                        json_t *pr = json_object();

                        for (size_t i = 0; i < ELEMENTSOF(f->profiles) && f->profiles[i]; i++)
                                json_object_set_new(pr, f->profiles[i], json_string("a profile"));
                        json_object_set_new(meta, "profiles", pr);
                }
                if (f->eab_required)
                        json_object_set_new(meta, "externalAccountRequired", json_true());
                json_object_set_new(d, "meta", meta);
                resp_json(p, 200, d);
                return;
        }
        if (strcmp(req->method, "GET") == 0 && strncmp(path, "/ari/", 5) == 0) {
                f->n_ari++;
                if (f->nonce_on_get)
                        new_nonce(f, p);
                if (!f->ari) {
                        fake_error(f, "ARI request without renewalInfo in the directory");
                } else if ((f->issued_cert_id && strcmp(path + 5, f->issued_cert_id) == 0) ||
                           strcmp(path + 5, "aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE") == 0) {
                        resp_json(p, 200,
                                  json_pack("{s:{s:s,s:s},s:s}", "suggestedWindow", "start",
                                            f->ari_window[0] ?: "2025-01-02T04:00:00Z", "end",
                                            f->ari_window[1] ?: "2025-01-03T04:00:00.123+02:00",
                                            "explanationURL", FAKE_BASE "/why"));
                        resp_header(p, "Retry-After", "21600");
                        return;
                }
                resp_problem(p, 404, "urn:ietf:params:acme:error:malformed", "unknown certificate");
                return;
        }
        fake_error(f, "%s to unknown URL %s", req->method, req->url);
        resp_problem(p, 404, "about:blank", "no such resource");
}

/* ---- the transport -------------------------------------------------------------- */

static void deliver(struct fake_acme *f)
{
        struct fake_private *pv = f->priv;
        struct pending *p;

        /* One at a time from the head: a callback may send or cancel. */
        for (p = pv->queue; p && p->held; p = p->next)
                ;
        while (p) {
                struct acme_http_header hdrs[MAX_HEADERS];
                struct acme_http_response resp = {.status = p->status,
                                                  .headers = hdrs,
                                                  .n_headers = p->n_headers,
                                                  .body = p->body ?: "",
                                                  .body_len = p->body ? p->body_len : 0};

                for (size_t i = 0; i < p->n_headers; i++)
                        hdrs[i] = (struct acme_http_header){p->hname[i], p->hvalue[i]};
                if (p->prev)
                        p->prev->next = p->next;
                else
                        pv->queue = p->next;
                if (p->next)
                        p->next->prev = p->prev;
                p->cb(p->ud, p->r, p->r < 0 ? NULL : &resp);
                pending_free(p);
                for (p = pv->queue; p && p->held; p = p->next)
                        ;
        }
}

static void on_fake_timer(uv_timer_t *t)
{
        deliver(t->data);
}

static int fake_request(void *transport, const struct acme_http_request *req, acme_http_cb *cb,
                        void *ud, void **ret_handle)
{
        struct fake_acme *f = transport;
        struct pending *p = calloc(1, sizeof(*p)), **tail;

        assert(p);
        p->cb = cb;
        p->ud = ud;
        f->n_requests++;
        if (f->transport_error_at == f->n_requests ||
            (f->transport_error_prefix && !f->n_transport_errors &&
             strncmp(req->url + strlen(FAKE_BASE), f->transport_error_prefix,
                     strlen(f->transport_error_prefix)) == 0)) {
                f->n_transport_errors++;
                p->r = f->transport_error;
        } else {
                handle(f, req, p);
                if (f->mutate_at == f->n_requests)
                        mutate(f, p);
        }
        if (f->hold_at == f->n_requests ||
            (f->hold_prefix &&
             strncmp(req->url + strlen(FAKE_BASE), f->hold_prefix, strlen(f->hold_prefix)) == 0 &&
             !f->n_held)) {
                p->held = true;
                f->n_held++;
        }
        /* Append: answers come in request order. */
        for (tail = &f->priv->queue; *tail; tail = &(*tail)->next)
                p->prev = *tail;
        *tail = p;
        uv_timer_start(&f->priv->timer, on_fake_timer, 0, 0);
        *ret_handle = p;
        return 0;
}

static void fake_cancel(void *transport, void *handle)
{
        struct fake_acme *f = transport;
        struct pending *p = handle;

        f->n_cancelled++;
        if (p->prev)
                p->prev->next = p->next;
        else
                f->priv->queue = p->next;
        if (p->next)
                p->next->prev = p->prev;
        pending_free(p);
}

const struct acme_http_ops fake_acme_ops = {
        .request = fake_request,
        .cancel = fake_cancel,
};

/* ---- lifecycle ------------------------------------------------------------------ */

/* The JWK and thumbprint of @k's public key, computed here from the EC
 * point, not with acme/jws.c. */
static void derive_expected(struct fake_private *pv, const struct acme_key *k)
{
        char *pem;
        size_t len;
        BIO *bio;
        EVP_PKEY *pkey;
        BIGNUM *x = BN_new(), *y = BN_new();
        uint8_t xb[32], yb[32], d[SHA256_DIGEST_LENGTH];
        char xs[64], ys[64];

        assert(acme_key_to_pem(k, &pem, &len) == 0);
        bio = BIO_new_mem_buf(pem, (ssize_t)len);
        pkey = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
        assert(pkey);
        pv->account_pub = EC_KEY_new_by_curve_name(NID_X9_62_prime256v1);
        EC_KEY_set_public_key(pv->account_pub, EC_KEY_get0_public_key(EVP_PKEY_get0_EC_KEY(pkey)));
        EC_POINT_get_affine_coordinates_GFp(EC_KEY_get0_group(pv->account_pub),
                                            EC_KEY_get0_public_key(pv->account_pub), x, y, NULL);
        BN_bn2bin_padded(xb, 32, x);
        BN_bn2bin_padded(yb, 32, y);
        base64url_encode_to(xb, 32, xs);
        base64url_encode_to(yb, 32, ys);
        snprintf(pv->jwk, sizeof(pv->jwk),
                 "{\"crv\":\"P-256\",\"kty\":\"EC\",\"x\":\"%s\",\"y\":\"%s\"}", xs, ys);
        SHA256((const uint8_t *)pv->jwk, strlen(pv->jwk), d);
        base64url_encode_to(d, sizeof(d), pv->thumbprint);
        BN_free(x);
        BN_free(y);
        EVP_PKEY_free(pkey);
        BIO_free(bio);
        free(pem);
}

static void make_ca(struct fake_private *pv)
{
        EC_KEY *ec = EC_KEY_new_by_curve_name(NID_X9_62_prime256v1);
        X509_NAME *n = X509_NAME_new();
        ASN1_INTEGER *serial = ASN1_INTEGER_new();

        EC_KEY_generate_key(ec);
        pv->ca_key = EVP_PKEY_new();
        EVP_PKEY_assign_EC_KEY(pv->ca_key, ec);
        pv->ca = X509_new();
        X509_NAME_add_entry_by_NID(n, NID_organizationName, MBSTRING_ASC,
                                   (const uint8_t *)"Fake ACME", -1, -1, 0);
        X509_NAME_add_entry_by_NID(n, NID_commonName, MBSTRING_ASC,
                                   (const uint8_t *)"Fake Intermediate", -1, -1, 0);
        ASN1_INTEGER_set(serial, 1);
        X509_set_version(pv->ca, X509_VERSION_3);
        X509_set_serialNumber(pv->ca, serial);
        X509_set_subject_name(pv->ca, n);
        X509_set_issuer_name(pv->ca, n);
        ASN1_TIME_set(X509_getm_notBefore(pv->ca), 0);
        ASN1_TIME_set(X509_getm_notAfter(pv->ca), 4000000000);
        X509_set_pubkey(pv->ca, pv->ca_key);
        X509_sign(pv->ca, pv->ca_key, EVP_sha256());
        ASN1_INTEGER_free(serial);
        X509_NAME_free(n);
}

struct fake_acme *fake_acme_new(uv_loop_t *loop, const struct acme_key *account_key, int64_t *clock)
{
        struct fake_acme *f = calloc(1, sizeof(*f));

        assert(f);
        f->loop = loop;
        f->clock = clock;
        f->priv = calloc(1, sizeof(*f->priv));
        assert(f->priv);
        derive_expected(f->priv, account_key);
        make_ca(f->priv);
        uv_timer_init(loop, &f->priv->timer);
        f->priv->timer.data = f;
        return f;
}

static void on_fake_close(uv_handle_t *h)
{
        struct fake_acme *f = h->data;

        free(f->priv);
        free(f);
}

void fake_acme_free(struct fake_acme *f)
{
        struct fake_private *pv;

        if (!f)
                return;
        pv = f->priv;
        while (pv->queue) {
                struct pending *p = pv->queue;

                pv->queue = p->next;
                pending_free(p);
        }
        for (size_t i = 0; i < MAX_ORDERS; i++)
                free(pv->orders[i].chain);
        for (unsigned i = 0; i < f->n_pub; i++) {
                free(f->pub[i].identifier);
                free(f->pub[i].token);
                free(f->pub[i].key_auth);
                free(f->pub[i].dns_value);
        }
        for (unsigned i = 0; i < f->n_errors; i++)
                free(f->errors[i]);
        free(f->new_order_profile);
        free(f->new_order_replaces);
        free(f->issued_cert_id);
        free(f->account_url);
        EC_KEY_free(pv->account_pub);
        EVP_PKEY_free(pv->ca_key);
        X509_free(pv->ca);
        uv_close((uv_handle_t *)&pv->timer, on_fake_close);
}
