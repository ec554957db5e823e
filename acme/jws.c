/* SPDX-License-Identifier: Apache-2.0 */
#include "acme/jws.h"

#include <assert.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/nid.h>
#include <openssl/pem.h>
#include <openssl/sha.h>

#include "acme/crypto-internal.h"
#include "common/base64.h"
#include "common/strbuf.h"

#define P256_FIELD_BYTES 32
#define PEM_MAX          (64 * 1024) /* a P-256 key is ~250 bytes of PEM */
/* {"crv":"P-256","kty":"EC","x":"<43>","y":"<43>"} */
#define JWK_MAX 128

struct acme_key {
        EVP_PKEY *pkey;
        char jwk[JWK_MAX];                        /* canonical JWK (RFC 7638 §3.2) */
        char thumbprint[ACME_THUMBPRINT_LEN + 1]; /* base64url(SHA-256(jwk)) */
};

int acme__ssl_error(int fallback)
{
        uint32_t e = ERR_peek_last_error();
        int r = e && ERR_GET_REASON(e) == ERR_R_MALLOC_FAILURE ? -ENOMEM : fallback;

        ERR_clear_error();
        return r;
}

EVP_PKEY *acme__key_pkey(const struct acme_key *k)
{
        return k->pkey;
}

/* Is @pkey an EC key on P-256 with a private part? */
static bool is_p256_private(const EVP_PKEY *pkey)
{
        const EC_KEY *ec = EVP_PKEY_get0_EC_KEY(pkey);
        const EC_GROUP *g = ec ? EC_KEY_get0_group(ec) : NULL;

        return g && EC_GROUP_get_curve_name(g) == NID_X9_62_prime256v1 &&
               EC_KEY_get0_private_key(ec) && EC_KEY_get0_public_key(ec) && EC_KEY_check_key(ec);
}

/* Fill in the cached JWK and thumbprint. */
static int key_finish(struct acme_key *k)
{
        const EC_KEY *ec = EVP_PKEY_get0_EC_KEY(k->pkey);
        _cleanup_(BN_freep) BIGNUM *x = BN_new(), *y = BN_new();
        uint8_t xb[P256_FIELD_BYTES], yb[P256_FIELD_BYTES], digest[SHA256_DIGEST_LENGTH];
        char xs[BASE64URL_LEN(P256_FIELD_BYTES) + 1], ys[BASE64URL_LEN(P256_FIELD_BYTES) + 1];
        int n;

        if (!x || !y ||
            !EC_POINT_get_affine_coordinates_GFp(EC_KEY_get0_group(ec), EC_KEY_get0_public_key(ec),
                                                 x, y, NULL) ||
            !BN_bn2bin_padded(xb, sizeof(xb), x) || !BN_bn2bin_padded(yb, sizeof(yb), y))
                return acme__ssl_error(-EIO);
        /* RFC 7518 §6.2.1.2: x and y are the full field size, zero-padded. */
        base64url_encode_to(xb, sizeof(xb), xs);
        base64url_encode_to(yb, sizeof(yb), ys);
        n = snprintf(k->jwk, sizeof(k->jwk),
                     "{\"crv\":\"P-256\",\"kty\":\"EC\",\"x\":\"%s\",\"y\":\"%s\"}", xs, ys);
        assert(n > 0 && (size_t)n < sizeof(k->jwk));
        SHA256((const uint8_t *)k->jwk, (size_t)n, digest);
        base64url_encode_to(digest, sizeof(digest), k->thumbprint);
        return 0;
}

static int key_new(EVP_PKEY *pkey, struct acme_key **ret)
{
        struct acme_key *k = calloc(1, sizeof(*k));
        int r;

        if (!k)
                return -ENOMEM;
        k->pkey = pkey;
        r = key_finish(k);
        if (r < 0) {
                k->pkey = NULL; /* still the caller's */
                free(k);
                return r;
        }
        *ret = k;
        return 0;
}

int acme_key_generate(struct acme_key **ret)
{
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *pkey = EVP_PKEY_new();
        _cleanup_(EC_KEY_freep) EC_KEY *ec = EC_KEY_new_by_curve_name(NID_X9_62_prime256v1);
        int r;

        if (!pkey || !ec)
                return acme__ssl_error(-ENOMEM);
        if (!EC_KEY_generate_key(ec))
                return acme__ssl_error(-EIO);
        if (!EVP_PKEY_assign_EC_KEY(pkey, ec))
                return acme__ssl_error(-ENOMEM);
        ec = NULL; /* now owned by pkey */
        r = key_new(pkey, ret);
        if (r < 0)
                return r;
        pkey = NULL;
        return 0;
}

/* Never prompt for or accept a passphrase: an encrypted key is refused. */
static int no_password(char *buf, int size, int rwflag, void *ud)
{
        return -1;
}

int acme_key_from_pem(const char *pem, size_t len, struct acme_key **ret)
{
        _cleanup_(BIO_freep) BIO *bio = NULL;
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *pkey = NULL;
        int r;

        if (!pem || len == 0 || len > PEM_MAX)
                return -EINVAL;
        bio = BIO_new_mem_buf(pem, (ssize_t)len);
        if (!bio)
                return acme__ssl_error(-ENOMEM);
        /* Handles "PRIVATE KEY" (PKCS#8) and "EC PRIVATE KEY" (SEC1). */
        pkey = PEM_read_bio_PrivateKey(bio, NULL, no_password, NULL);
        if (!pkey)
                return acme__ssl_error(-EINVAL);
        if (EVP_PKEY_id(pkey) != EVP_PKEY_EC || !is_p256_private(pkey))
                return acme__ssl_error(-EINVAL);
        r = key_new(pkey, ret);
        if (r < 0)
                return r;
        pkey = NULL;
        return 0;
}

int acme_key_to_pem(const struct acme_key *k, char **ret, size_t *ret_len)
{
        _cleanup_(BIO_freep) BIO *bio = BIO_new(BIO_s_mem());
        const uint8_t *data;
        size_t len;
        char *p;

        if (!bio || !PEM_write_bio_PKCS8PrivateKey(bio, k->pkey, NULL, NULL, 0, NULL, NULL) ||
            !BIO_mem_contents(bio, &data, &len))
                return acme__ssl_error(-ENOMEM);
        p = malloc(len + 1);
        if (!p)
                return -ENOMEM;
        memcpy(p, data, len);
        p[len] = 0;
        *ret = p;
        if (ret_len)
                *ret_len = len;
        return 0;
}

int acme_key_copy(const struct acme_key *k, struct acme_key **ret)
{
        struct acme_key *n = malloc(sizeof(*n));

        if (!n)
                return -ENOMEM;
        *n = *k;
        EVP_PKEY_up_ref(n->pkey);
        *ret = n;
        return 0;
}

struct acme_key *acme_key_free(struct acme_key *k)
{
        if (k) {
                EVP_PKEY_free(k->pkey);
                free(k);
        }
        return NULL;
}

const char *acme_key_jwk(const struct acme_key *k)
{
        return k->jwk;
}

const char *acme_key_thumbprint(const struct acme_key *k)
{
        return k->thumbprint;
}

/* ES256 over @input: SHA-256, then ECDSA, then the fixed-width r||s of
 * RFC 7518 §3.4 (BoringSSL hands out the DER ECDSA-Sig-Value form, which
 * JWS does not use). */
static int sign_es256(const struct acme_key *k, const char *input, size_t n,
                      uint8_t ret[2 * P256_FIELD_BYTES])
{
        _cleanup_(ECDSA_SIG_freep) ECDSA_SIG *sig = NULL;
        uint8_t digest[SHA256_DIGEST_LENGTH];
        const BIGNUM *r, *s;

        SHA256((const uint8_t *)input, n, digest);
        sig = ECDSA_do_sign(digest, sizeof(digest), EVP_PKEY_get0_EC_KEY(k->pkey));
        if (!sig)
                return acme__ssl_error(-EIO);
        ECDSA_SIG_get0(sig, &r, &s);
        if (!BN_bn2bin_padded(ret, P256_FIELD_BYTES, r) ||
            !BN_bn2bin_padded(ret + P256_FIELD_BYTES, P256_FIELD_BYTES, s))
                return acme__ssl_error(-EIO);
        return 0;
}

int acme_jws_sign(const struct acme_key *k, const char *kid, const char *nonce, const char *url,
                  const char *payload, char **ret, size_t *ret_len)
{
        _cleanup_strbuf_ struct strbuf hdr = STRBUF_INIT, input = STRBUF_INIT, out = STRBUF_INIT;
        _cleanup_free_ char *h64 = NULL, *p64 = NULL;
        uint8_t sig[2 * P256_FIELD_BYTES];
        char s64[BASE64URL_LEN(2 * P256_FIELD_BYTES) + 1];
        int r;

        assert(k && payload && ret);
        if (!nonce || !*nonce || !url || !*url || (kid && !*kid))
                return -EINVAL;

        r = strbuf_puts(&hdr, "{\"alg\":\"ES256\",");
        if (r >= 0 && kid) {
                r = strbuf_puts(&hdr, "\"kid\":");
                if (r >= 0)
                        r = strbuf_put_json_string(&hdr, kid, strlen(kid));
        } else if (r >= 0) {
                r = strbuf_printf(&hdr, "\"jwk\":%s", k->jwk);
        }
        if (r >= 0)
                r = strbuf_puts(&hdr, ",\"nonce\":");
        if (r >= 0)
                r = strbuf_put_json_string(&hdr, nonce, strlen(nonce));
        if (r >= 0)
                r = strbuf_puts(&hdr, ",\"url\":");
        if (r >= 0)
                r = strbuf_put_json_string(&hdr, url, strlen(url));
        if (r >= 0)
                r = strbuf_putc(&hdr, '}');
        if (r < 0)
                return r;

        r = base64url_encode(hdr.data, hdr.len, &h64);
        if (r >= 0)
                r = base64url_encode(payload, strlen(payload), &p64);
        /* The signing input is b64(protected) "." b64(payload) (RFC 7515 §5.1). */
        if (r >= 0)
                r = strbuf_printf(&input, "%s.%s", h64, p64);
        if (r >= 0)
                r = sign_es256(k, input.data, input.len, sig);
        if (r < 0)
                return r;
        base64url_encode_to(sig, sizeof(sig), s64);
        r = strbuf_printf(&out, "{\"protected\":\"%s\",\"payload\":\"%s\",\"signature\":\"%s\"}",
                          h64, p64, s64);
        if (r < 0)
                return r;
        if (ret_len)
                *ret_len = out.len;
        *ret = strbuf_steal(&out);
        return 0;
}

int acme_key_authorization(const struct acme_key *k, const char *token, char **ret)
{
        char *s;

        if (!token || !base64url_is_valid(token, strlen(token)))
                return -EINVAL;
        if (asprintf(&s, "%s.%s", token, k->thumbprint) < 0)
                return -ENOMEM;
        *ret = s;
        return 0;
}

void acme_dns01_value(const char *key_authorization, char ret[ACME_DNS01_VALUE_LEN + 1])
{
        uint8_t digest[SHA256_DIGEST_LENGTH];

        SHA256((const uint8_t *)key_authorization, strlen(key_authorization), digest);
        base64url_encode_to(digest, sizeof(digest), ret);
}
