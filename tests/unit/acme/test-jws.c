/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <jansson.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/ec_key.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/nid.h>
#include <openssl/pem.h>
#include <openssl/sha.h>

#include "acme-test.h"
#include "acme/jws.h"
#include "common/base64.h"
#include "common/macros.h"

/* openssl ecparam -name prime256v1 -genkey -noout (SEC1) */
static const char sec1_pem[] = "-----BEGIN EC PRIVATE KEY-----\n"
                               "MHcCAQEEIDGGyYTBXHIUzGF8HCXlzsZrz4KbIbWV+ZXM5ZwE9UwaoAoGCCqGSM49\n"
                               "AwEHoUQDQgAEYj1t29Qq58xO7lyRNOG767gq+9lYutoM2Rjqn0LZf0c4rqCVjt2a\n"
                               "Mp0h0/TkZs2Nto0m2o17XMIWeB3wyDl9yA==\n"
                               "-----END EC PRIVATE KEY-----\n";
/* openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 (PKCS#8) */
static const char pkcs8_pem[] = "-----BEGIN PRIVATE KEY-----\n"
                                "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg7T+MFwdxn3WO5KKI\n"
                                "HGTqx5d6eJ1LWjLVxtFLa/se8pmhRANCAATVn9w63mSHotKQcpLfSsocy2adQDHL\n"
                                "x3OceY3t6UhZ1hngESzyheblS208TogTQTYmra7WYGKPvkIWtLdQB4Ha\n"
                                "-----END PRIVATE KEY-----\n";
/* P-384, RSA-1024, an encrypted PKCS#8 P-256 key and Ed25519: all refused. */
static const char p384_pem[] = "-----BEGIN PRIVATE KEY-----\n"
                               "MIG2AgEAMBAGByqGSM49AgEGBSuBBAAiBIGeMIGbAgEBBDAoekxGLkzn4T+QNvna\n"
                               "kq4foSkTfzBQp49we02M/PdWuSJRnyR7rmi4YuM5UGIdF66hZANiAARNBAKK6DS1\n"
                               "fWcAu5fth81Dp73qZ61WSwzs1ldqK2oTf3ssR6pw3rV55VB3tknWWLKLQPIAkWna\n"
                               "bM42upHB3hSm42Bs5mCq1yOkAEERZ6BXNyFZgXqUiQ+Ehbdl7NPeH/A=\n"
                               "-----END PRIVATE KEY-----\n";
static const char rsa_pem[] = "-----BEGIN PRIVATE KEY-----\n"
                              "MIICdwIBADANBgkqhkiG9w0BAQEFAASCAmEwggJdAgEAAoGBAL8wAvmM0NyolnpZ\n"
                              "GCetg71CaLwL5J0JXP2RKE/A+3bukrb0N27kLySSmjnrfq6rAD7sIDPCvcnnvnsW\n"
                              "2e5UvdcKUNewIwUBG1iyl+gDcrv9+yb4880XGQD/9mEDKE8tgY0wWXhfb7ueBsSw\n"
                              "tvrKuuAGBNM5gcqc9kqsLxYv4gq7AgMBAAECgYB1bAx3rmfdDmIVVMEEJYqi47Wl\n"
                              "wPwxAr4tMkj66sDHI/HSEh41qknWAYBdkGhm6Lmm66k/gRzFc+LGgJtqyHsrFrt0\n"
                              "PRGBLus96JRPhoJCeIxgVV9Dipy/NsEpS2EKY7ydCySPSl9eUfhivwKY6VLq4FjO\n"
                              "+2X3kyMCTksgFwJMIQJBAOaOyIunHsRjywXZWhJFAwHPRiWf8cXDHQZsX3CCvHLC\n"
                              "mVfUk2YDcsYSM6ZN1ceehDu6YneMDq4/YZnpGRNbznECQQDUSQbdXfk5yETSMpF1\n"
                              "25nqzy/gbPEDRRnasLT80En78xTK55mr2EMCXCR3DTXAnft3BsecF51O1/LDIc3A\n"
                              "2pnrAkEAmcRu0l1Cct7Pn/YHUZn/WGyiLyPOfwQTTp5mxMYc4zkQRni7WdVA7gNj\n"
                              "uS2+P6VkMeWsGGkrvWD+OkUxeSzIsQJBAMDjnh40zklnpMkN88gQgxmtqsYUlyYu\n"
                              "eqCQodN5+0+4fzMjICnaNoEFcojOcwITSrPLcEJv3psOc2JE6+0JdIMCQE7IZYey\n"
                              "6DZ2GvhlizR7tRMM0/ys5fxT5EH3oeysVK4gBZg6hTpjdVpmcq2ctZ5l1cNSX53S\n"
                              "MhU5LAykBtv2GG0=\n"
                              "-----END PRIVATE KEY-----\n";
static const char encrypted_pem[] =
        "-----BEGIN ENCRYPTED PRIVATE KEY-----\n"
        "MIHsMFcGCSqGSIb3DQEFDTBKMCkGCSqGSIb3DQEFDDAcBAi3+GT6GAGPFgICCAAw\n"
        "DAYIKoZIhvcNAgkFADAdBglghkgBZQMEASoEEHp8pverwRgoh7kJOjj6AvYEgZBT\n"
        "t/WHf/n2HqCie/ubpO7iGAjkzquGTpwGccr8V34jzZCf8OZfwjBkmxBoVKfLJukb\n"
        "CjvFFG7rxlfRoY75UOyvi11gqptCwuQ4Y+SXzJvXOTaw32tQeyasUVb7rD0mXONZ\n"
        "KxU6UH5wVIlbL6CKB7baA2kYlEH7kq6ftzmJv9cO5gzQHOYYK5hkR7l1IChzEoM=\n"
        "-----END ENCRYPTED PRIVATE KEY-----\n";
static const char ed25519_pem[] =
        "-----BEGIN PRIVATE KEY-----\n"
        "MC4CAQAwBQYDK2VwBCIEIJeyiS0AmljySePUpeWx3z6BPP76X7WHy8yH+2gQaEWT\n"
        "-----END PRIVATE KEY-----\n";

/* The P-256 key of RFC 7515 appendix A.3 (JWK members d, x, y). */
#define A3_D   "jpsQnnGQmL-YBIffH1136cspYG6-0iY7X1fCE9-E9LI"
#define A3_X   "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU"
#define A3_Y   "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"
#define A3_JWK "{\"crv\":\"P-256\",\"kty\":\"EC\",\"x\":\"" A3_X "\",\"y\":\"" A3_Y "\"}"

static uint8_t *b64d(const char *s, size_t *len)
{
        uint8_t *out = NULL;

        assert_int_equal(base64url_decode(s, strlen(s), &out, len), 0);
        return out;
}

/* The RFC 7515 A.3 key as PEM, built from d with BoringSSL; @sec1 picks
 * "EC PRIVATE KEY" instead of PKCS#8. */
static char *a3_pem(bool sec1)
{
        _cleanup_free_ uint8_t *d = NULL;
        EC_KEY *ec = EC_KEY_new_by_curve_name(NID_X9_62_prime256v1);
        const EC_GROUP *g = EC_KEY_get0_group(ec);
        EC_POINT *pub = EC_POINT_new(g);
        BIGNUM *bn;
        EVP_PKEY *pkey = EVP_PKEY_new();
        BIO *bio = BIO_new(BIO_s_mem());
        const uint8_t *data;
        size_t len;
        char *out;

        d = b64d(A3_D, &len);
        assert_int_equal(len, 32);
        bn = BN_bin2bn(d, len, NULL);
        assert_true(EC_KEY_set_private_key(ec, bn));
        assert_true(EC_POINT_mul(g, pub, bn, NULL, NULL, NULL));
        assert_true(EC_KEY_set_public_key(ec, pub));
        assert_true(EVP_PKEY_set1_EC_KEY(pkey, ec));
        if (sec1)
                assert_true(PEM_write_bio_ECPrivateKey(bio, ec, NULL, NULL, 0, NULL, NULL));
        else
                assert_true(PEM_write_bio_PKCS8PrivateKey(bio, pkey, NULL, NULL, 0, NULL, NULL));
        assert_true(BIO_mem_contents(bio, &data, &len));
        out = memdup_suffix0((const char *)data, len);
        BIO_free(bio);
        EVP_PKEY_free(pkey);
        BN_free(bn);
        EC_POINT_free(pub);
        EC_KEY_free(ec);
        return out;
}

/* The JWK of the RFC's key is exactly the canonical form RFC 7638 §3.2
 * prescribes, from both PEM flavours. */
static void test_jwk_rfc7515_key(void **state)
{
        for (int sec1 = 0; sec1 <= 1; sec1++) {
                _cleanup_free_ char *pem = a3_pem(sec1);
                _cleanup_(acme_key_freep) struct acme_key *k = NULL;
                uint8_t digest[SHA256_DIGEST_LENGTH];
                char want[ACME_THUMBPRINT_LEN + 1];

                assert_int_equal(acme_key_from_pem(pem, strlen(pem), &k), 0);
                assert_string_equal(acme_key_jwk(k), A3_JWK);
                SHA256((const uint8_t *)A3_JWK, strlen(A3_JWK), digest);
                base64url_encode_to(digest, sizeof(digest), want);
                assert_string_equal(acme_key_thumbprint(k), want);
        }
}

/* The thumbprint, checked with the openssl command over the RFC's JWK. */
static void test_thumbprint_openssl_cli(void **state)
{
        _cleanup_free_ char *pem = a3_pem(false);
        _cleanup_(acme_key_freep) struct acme_key *k = NULL;
        char out[128];

        if (!have_openssl_cli())
                skip();
        assert_int_equal(acme_key_from_pem(pem, strlen(pem), &k), 0);
        assert_int_equal(run_cmd(out, sizeof(out),
                                 "printf '%%s' '%s' | openssl dgst -sha256 -binary | openssl "
                                 "base64 -A | tr '+/' '-_' | tr -d '='",
                                 A3_JWK),
                         0);
        assert_string_equal(acme_key_thumbprint(k), out);
}

static void test_from_pem_accepts_sec1_and_pkcs8(void **state)
{
        _cleanup_(acme_key_freep) struct acme_key *a = NULL, *b = NULL;

        assert_int_equal(acme_key_from_pem(sec1_pem, strlen(sec1_pem), &a), 0);
        assert_int_equal(acme_key_from_pem(pkcs8_pem, strlen(pkcs8_pem), &b), 0);
        assert_string_not_equal(acme_key_jwk(a), acme_key_jwk(b));
}

static void test_from_pem_rejects(void **state)
{
        static const char garbage[] =
                "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n";
        const char *bad[] = {p384_pem, rsa_pem, encrypted_pem, ed25519_pem, garbage, "", "x"};

        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                struct acme_key *k = (struct acme_key *)0x1;

                assert_int_equal(acme_key_from_pem(bad[i], strlen(bad[i]), &k), -EINVAL);
                assert_ptr_equal(k, (struct acme_key *)0x1);
        }
        assert_int_equal(acme_key_from_pem(NULL, 0, &(struct acme_key *){NULL}), -EINVAL);
}

static void test_pem_round_trip(void **state)
{
        _cleanup_(acme_key_freep) struct acme_key *k = NULL, *k2 = NULL, *k3 = NULL;
        _cleanup_free_ char *pem = NULL;
        size_t len;

        assert_int_equal(acme_key_generate(&k), 0);
        assert_int_equal(acme_key_to_pem(k, &pem, &len), 0);
        assert_int_equal(strlen(pem), len);
        assert_true(strncmp(pem, "-----BEGIN PRIVATE KEY-----\n", 28) == 0);
        assert_int_equal(acme_key_from_pem(pem, len, &k2), 0);
        assert_string_equal(acme_key_jwk(k), acme_key_jwk(k2));
        assert_string_equal(acme_key_thumbprint(k), acme_key_thumbprint(k2));
        assert_int_equal(acme_key_copy(k2, &k3), 0);
        k2 = acme_key_free(k2);
        assert_null(k2);
        assert_string_equal(acme_key_jwk(k), acme_key_jwk(k3));
}

/* x and y are always 32 bytes, even when the coordinate has leading zero
 * bytes (RFC 7518 §6.2.1.2): generate keys until one has. */
static void test_jwk_coordinates_zero_padded(void **state)
{
        bool seen = false;

        for (int i = 0; i < 5000 && !seen; i++) {
                _cleanup_(acme_key_freep) struct acme_key *k = NULL;
                _cleanup_(json_decrefp) json_t *jwk = NULL;
                _cleanup_free_ uint8_t *x = NULL, *y = NULL;
                size_t xl, yl;

                assert_int_equal(acme_key_generate(&k), 0);
                jwk = json_loads(acme_key_jwk(k), 0, NULL);
                assert_non_null(jwk);
                assert_int_equal(json_object_size(jwk), 4);
                assert_string_equal(json_string_value(json_object_get(jwk, "crv")), "P-256");
                assert_string_equal(json_string_value(json_object_get(jwk, "kty")), "EC");
                x = b64d(json_string_value(json_object_get(jwk, "x")), &xl);
                y = b64d(json_string_value(json_object_get(jwk, "y")), &yl);
                assert_int_equal(xl, 32);
                assert_int_equal(yl, 32);
                seen = x[0] == 0 || y[0] == 0;
        }
        assert_true(seen);
}

/* The public key of @k, rebuilt from its JWK (what a server does). */
static EC_KEY *ec_from_jwk(json_t *jwk)
{
        _cleanup_free_ uint8_t *x = NULL, *y = NULL;
        EC_KEY *ec = EC_KEY_new_by_curve_name(NID_X9_62_prime256v1);
        BIGNUM *bx, *by;
        size_t xl, yl;

        x = b64d(json_string_value(json_object_get(jwk, "x")), &xl);
        y = b64d(json_string_value(json_object_get(jwk, "y")), &yl);
        bx = BN_bin2bn(x, xl, NULL);
        by = BN_bin2bn(y, yl, NULL);
        assert_true(EC_KEY_set_public_key_affine_coordinates(ec, bx, by));
        BN_free(bx);
        BN_free(by);
        return ec;
}

struct parsed_jws {
        json_t *protected_hdr;
        char *payload;
        uint8_t *sig;
        size_t sig_len;
        char *signing_input;
};

static void parsed_jws_done(struct parsed_jws *p)
{
        json_decref(p->protected_hdr);
        free(p->payload);
        free(p->sig);
        free(p->signing_input);
}

static void parse_jws(const char *text, struct parsed_jws *ret)
{
        _cleanup_(json_decrefp) json_t *o = json_loads(text, JSON_REJECT_DUPLICATES, NULL);
        _cleanup_free_ uint8_t *hdr = NULL;
        const char *p, *pl, *s;
        size_t len;

        assert_non_null(o);
        assert_int_equal(json_object_size(o), 3);
        p = json_string_value(json_object_get(o, "protected"));
        pl = json_string_value(json_object_get(o, "payload"));
        s = json_string_value(json_object_get(o, "signature"));
        assert_non_null(p);
        assert_non_null(pl);
        assert_non_null(s);
        hdr = b64d(p, &len);
        ret->protected_hdr = json_loadb((const char *)hdr, len, JSON_REJECT_DUPLICATES, NULL);
        assert_non_null(ret->protected_hdr);
        ret->payload = (char *)b64d(pl, &len);
        ret->sig = b64d(s, &ret->sig_len);
        assert_true(asprintf(&ret->signing_input, "%s.%s", p, pl) > 0);
}

static bool verify_es256(EC_KEY *ec, const char *input, const uint8_t *sig, size_t sig_len)
{
        uint8_t digest[SHA256_DIGEST_LENGTH];
        ECDSA_SIG *es = ECDSA_SIG_new();
        BIGNUM *r = BN_bin2bn(sig, 32, NULL), *s = BN_bin2bn(sig + 32, 32, NULL);
        bool ok;

        assert_int_equal(sig_len, 64);
        assert_true(ECDSA_SIG_set0(es, r, s));
        SHA256((const uint8_t *)input, strlen(input), digest);
        ok = ECDSA_do_verify(digest, sizeof(digest), es, ec) == 1;
        ECDSA_SIG_free(es);
        return ok;
}

/* A newAccount-style JWS (jwk) and a kid JWS: exactly the members RFC 8555
 * §6.2 requires, and a raw r||s ES256 signature that BoringSSL verifies
 * with the public key taken from the JWK. Repeated so that r or s values
 * with leading zero bytes occur (about 1 in 128 signatures). */
static void test_sign_jwk_and_kid(void **state)
{
        _cleanup_(acme_key_freep) struct acme_key *k = NULL;
        _cleanup_(json_decrefp) json_t *jwk = NULL;
        EC_KEY *ec;
        bool short_rs = false;

        assert_int_equal(acme_key_generate(&k), 0);
        jwk = json_loads(acme_key_jwk(k), 0, NULL);
        ec = ec_from_jwk(jwk);
        /* At least 400, and on until a short r or s came by: with 400 only,
         * about 1 run in 25 saw none (each signature has one with p ~ 1/128),
         * and the test failed by chance. 20,000 make a miss ~e^-150. */
        for (int i = 0; i < 400 || (!short_rs && i < 20000); i++) {
                _cleanup_free_ char *out = NULL;
                struct parsed_jws p = {};
                const char *kid = i % 2 ? "https://ca.test/acct/1" : NULL;
                const char *payload = i % 3 ? "{\"termsOfServiceAgreed\":true}" : "";
                json_t *h;
                size_t len;

                assert_int_equal(acme_jws_sign(k, kid, "nonce-\"1\"", "https://ca.test/new-acct",
                                               payload, &out, &len),
                                 0);
                assert_int_equal(strlen(out), len);
                parse_jws(out, &p);
                h = p.protected_hdr;
                assert_int_equal(json_object_size(h), 4);
                assert_string_equal(json_string_value(json_object_get(h, "alg")), "ES256");
                assert_string_equal(json_string_value(json_object_get(h, "nonce")), "nonce-\"1\"");
                assert_string_equal(json_string_value(json_object_get(h, "url")),
                                    "https://ca.test/new-acct");
                if (kid) {
                        assert_string_equal(json_string_value(json_object_get(h, "kid")), kid);
                        assert_null(json_object_get(h, "jwk"));
                } else {
                        assert_true(json_equal(json_object_get(h, "jwk"), jwk));
                        assert_null(json_object_get(h, "kid"));
                }
                assert_string_equal(p.payload, payload);
                /* Not DER: a DER ECDSA-Sig-Value of P-256 is 8..72 bytes and
                 * starts with a SEQUENCE tag; JWS wants exactly 64. */
                assert_int_equal(p.sig_len, 64);
                assert_true(verify_es256(ec, p.signing_input, p.sig, p.sig_len));
                short_rs |= p.sig[0] == 0 || p.sig[32] == 0;
                /* A flipped bit anywhere must fail. */
                p.sig[i % 64] ^= 0x10;
                assert_false(verify_es256(ec, p.signing_input, p.sig, p.sig_len));
                parsed_jws_done(&p);
        }
        assert_true(short_rs);
        EC_KEY_free(ec);
}

/* POST-as-GET has an empty payload member (RFC 8555 §6.3), not "e30". */
static void test_post_as_get(void **state)
{
        _cleanup_(acme_key_freep) struct acme_key *k = NULL;
        _cleanup_(json_decrefp) json_t *o = NULL;
        _cleanup_free_ char *out = NULL;

        assert_int_equal(acme_key_generate(&k), 0);
        assert_int_equal(acme_jws_sign(k, "https://ca.test/acct/1", "n", "https://ca.test/o/1", "",
                                       &out, NULL),
                         0);
        o = json_loads(out, 0, NULL);
        assert_string_equal(json_string_value(json_object_get(o, "payload")), "");
}

static void test_sign_rejects(void **state)
{
        _cleanup_(acme_key_freep) struct acme_key *k = NULL;
        char *out = NULL;

        assert_int_equal(acme_key_generate(&k), 0);
        assert_int_equal(acme_jws_sign(k, NULL, "", "https://x/", "", &out, NULL), -EINVAL);
        assert_int_equal(acme_jws_sign(k, NULL, NULL, "https://x/", "", &out, NULL), -EINVAL);
        assert_int_equal(acme_jws_sign(k, NULL, "n", "", "", &out, NULL), -EINVAL);
        assert_int_equal(acme_jws_sign(k, "", "n", "https://x/", "", &out, NULL), -EINVAL);
        assert_null(out);
}

/* The signature also verifies with the openssl command (after converting
 * r||s to the DER form that openssl dgst expects). */
static void test_sign_verifies_with_openssl_cli(void **state)
{
        _cleanup_(acme_key_freep) struct acme_key *k = NULL;
        _cleanup_free_ char *out = NULL, *key_pem = NULL, *pub_path = NULL, *sig_path = NULL,
                            *in_path = NULL;
        _cleanup_(json_decrefp) json_t *jwk = NULL;
        struct parsed_jws p = {};
        ECDSA_SIG *es = ECDSA_SIG_new();
        uint8_t *der = NULL;
        size_t der_len;
        char *dir, res[256];
        EC_KEY *ec;
        BIO *bio;

        if (!have_openssl_cli())
                skip();
        dir = tmpdir_make();
        assert_non_null(dir);
        assert_int_equal(acme_key_generate(&k), 0);
        assert_int_equal(
                acme_jws_sign(k, NULL, "abc", "https://ca.test/x", "{\"a\":1}", &out, NULL), 0);
        parse_jws(out, &p);
        assert_true(
                ECDSA_SIG_set0(es, BN_bin2bn(p.sig, 32, NULL), BN_bin2bn(p.sig + 32, 32, NULL)));
        assert_true(ECDSA_SIG_to_bytes(&der, &der_len, es));
        assert_true(der_len != 64 || der[0] == 0x30);

        jwk = json_loads(acme_key_jwk(k), 0, NULL);
        ec = ec_from_jwk(jwk);
        assert_true(asprintf(&pub_path, "%s/pub.pem", dir) > 0);
        assert_true(asprintf(&sig_path, "%s/sig.der", dir) > 0);
        assert_true(asprintf(&in_path, "%s/input", dir) > 0);
        bio = BIO_new_file(pub_path, "w");
        assert_true(PEM_write_bio_EC_PUBKEY(bio, ec));
        BIO_free(bio);
        assert_int_equal(write_text(sig_path, der, der_len), 0);
        assert_int_equal(write_text(in_path, p.signing_input, strlen(p.signing_input)), 0);
        assert_int_equal(run_cmd(res, sizeof(res),
                                 "openssl dgst -sha256 -verify %s -signature %s %s", pub_path,
                                 sig_path, in_path),
                         0);
        assert_string_equal(res, "Verified OK");
        /* And the raw 64 bytes are not what openssl accepts as a signature. */
        assert_int_equal(write_text(sig_path, p.sig, 64), 0);
        assert_int_not_equal(run_cmd(res, sizeof(res),
                                     "openssl dgst -sha256 -verify %s -signature %s %s 2>/dev/null",
                                     pub_path, sig_path, in_path),
                             0);
        OPENSSL_free(der);
        ECDSA_SIG_free(es);
        EC_KEY_free(ec);
        parsed_jws_done(&p);
        tmpdir_remove(dir);
        (void)key_pem;
}

static void test_key_authorization_and_dns01(void **state)
{
        _cleanup_(acme_key_freep) struct acme_key *k = NULL;
        _cleanup_free_ char *ka = NULL, *want = NULL;
        char dns[ACME_DNS01_VALUE_LEN + 1], want_dns[ACME_DNS01_VALUE_LEN + 1];
        uint8_t digest[SHA256_DIGEST_LENGTH];
        char *bad = NULL;

        assert_int_equal(acme_key_generate(&k), 0);
        assert_int_equal(
                acme_key_authorization(k, "evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA", &ka), 0);
        assert_true(asprintf(&want, "evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA.%s",
                             acme_key_thumbprint(k)) > 0);
        assert_string_equal(ka, want);

        acme_dns01_value(ka, dns);
        SHA256((const uint8_t *)want, strlen(want), digest);
        base64url_encode_to(digest, sizeof(digest), want_dns);
        assert_string_equal(dns, want_dns);
        assert_int_equal(strlen(dns), 43);

        assert_int_equal(acme_key_authorization(k, "", &bad), -EINVAL);
        assert_int_equal(acme_key_authorization(k, "../etc/passwd", &bad), -EINVAL);
        assert_int_equal(acme_key_authorization(k, "a.b", &bad), -EINVAL);
        assert_int_equal(acme_key_authorization(k, "a b", &bad), -EINVAL);
        assert_int_equal(acme_key_authorization(k, NULL, &bad), -EINVAL);
        assert_null(bad);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_jwk_rfc7515_key),
                cmocka_unit_test(test_thumbprint_openssl_cli),
                cmocka_unit_test(test_from_pem_accepts_sec1_and_pkcs8),
                cmocka_unit_test(test_from_pem_rejects),
                cmocka_unit_test(test_pem_round_trip),
                cmocka_unit_test(test_jwk_coordinates_zero_padded),
                cmocka_unit_test(test_sign_jwk_and_kid),
                cmocka_unit_test(test_post_as_get),
                cmocka_unit_test(test_sign_rejects),
                cmocka_unit_test(test_sign_verifies_with_openssl_cli),
                cmocka_unit_test(test_key_authorization_and_dns01),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
