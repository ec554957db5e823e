/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/bn.h>
#include <openssl/nid.h>
#include <openssl/obj.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "acme-test.h"
#include "acme/cert.h"
#include "acme/jws.h"
#include "common/macros.h"
#include "common/strbuf.h"

/* What a test certificate should carry. */
struct spec {
        const uint8_t *serial; /* big-endian magnitude */
        size_t serial_len;
        const uint8_t *aki; /* keyIdentifier of the AKI; NULL: no AKI */
        size_t aki_len;
        const char *const *sans; /* NULL-terminated; NULL: no SAN extension */
        const char *issuer_o, *issuer_cn;
        int64_t not_before, not_after;
};

static EVP_PKEY *pkey_of(const struct acme_key *k)
{
        _cleanup_free_ char *pem = NULL;
        size_t len;
        BIO *bio;
        EVP_PKEY *pkey;

        assert_int_equal(acme_key_to_pem(k, &pem, &len), 0);
        bio = BIO_new_mem_buf(pem, (ssize_t)len);
        pkey = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
        BIO_free(bio);
        assert_non_null(pkey);
        return pkey;
}

/* A certificate for @subject_key signed by @issuer_key, as PEM appended to @out. */
static void make_cert(const struct spec *s, const struct acme_key *subject_key,
                      const struct acme_key *issuer_key, struct strbuf *out)
{
        EVP_PKEY *sub = pkey_of(subject_key), *iss = pkey_of(issuer_key);
        X509 *x = X509_new();
        X509_NAME *in = X509_NAME_new(), *sn = X509_NAME_new();
        BIGNUM *bn = BN_bin2bn(s->serial, s->serial_len, NULL);
        ASN1_INTEGER *serial = BN_to_ASN1_INTEGER(bn, NULL);
        BIO *bio = BIO_new(BIO_s_mem());
        const uint8_t *data;
        size_t len;

        if (s->issuer_o)
                assert_true(X509_NAME_add_entry_by_NID(in, NID_organizationName, MBSTRING_UTF8,
                                                       (const uint8_t *)s->issuer_o, -1, -1, 0));
        if (s->issuer_cn)
                assert_true(X509_NAME_add_entry_by_NID(in, NID_commonName, MBSTRING_UTF8,
                                                       (const uint8_t *)s->issuer_cn, -1, -1, 0));
        assert_true(X509_NAME_add_entry_by_NID(sn, NID_commonName, MBSTRING_ASC,
                                               (const uint8_t *)"leaf", -1, -1, 0));
        assert_true(X509_set_version(x, X509_VERSION_3));
        assert_true(X509_set_serialNumber(x, serial));
        assert_true(X509_set_issuer_name(x, in));
        assert_true(X509_set_subject_name(x, sn));
        assert_non_null(ASN1_TIME_set(X509_getm_notBefore(x), (time_t)s->not_before));
        assert_non_null(ASN1_TIME_set(X509_getm_notAfter(x), (time_t)s->not_after));
        assert_true(X509_set_pubkey(x, sub));
        if (s->aki) {
                AUTHORITY_KEYID *akid = AUTHORITY_KEYID_new();

                akid->keyid = ASN1_OCTET_STRING_new();
                assert_true(ASN1_OCTET_STRING_set(akid->keyid, s->aki, (int)s->aki_len));
                assert_true(X509_add1_ext_i2d(x, NID_authority_key_identifier, akid, 0,
                                              X509V3_ADD_DEFAULT));
                AUTHORITY_KEYID_free(akid);
        }
        if (s->sans) {
                GENERAL_NAMES *gens = sk_GENERAL_NAME_new_null();

                for (const char *const *n = s->sans; *n; n++) {
                        GENERAL_NAME *g = GENERAL_NAME_new();
                        ASN1_IA5STRING *ia5 = ASN1_IA5STRING_new();

                        assert_true(ASN1_STRING_set(ia5, *n, (int)strlen(*n)));
                        GENERAL_NAME_set0_value(g, GEN_DNS, ia5);
                        assert_true(sk_GENERAL_NAME_push(gens, g));
                }
                assert_true(
                        X509_add1_ext_i2d(x, NID_subject_alt_name, gens, 0, X509V3_ADD_DEFAULT));
                GENERAL_NAMES_free(gens);
        }
        assert_true(X509_sign(x, iss, EVP_sha256()));
        assert_true(PEM_write_bio_X509(bio, x));
        assert_true(BIO_mem_contents(bio, &data, &len));
        assert_int_equal(strbuf_append(out, data, len), 0);

        BIO_free(bio);
        ASN1_INTEGER_free(serial);
        BN_free(bn);
        X509_NAME_free(sn);
        X509_NAME_free(in);
        X509_free(x);
        EVP_PKEY_free(iss);
        EVP_PKEY_free(sub);
}

/* RFC 9773 §4.1's example: AKI keyIdentifier 69:88:5B:…:C8:D4, serial
 * 0x87654321 (high bit set, so its DER content is 00 87 65 43 21). */
static const uint8_t rfc_aki[] = {0x69, 0x88, 0x5B, 0x6B, 0x87, 0x46, 0x40, 0x41, 0xE1, 0xB3,
                                  0x7B, 0x84, 0x7B, 0xA0, 0xAE, 0x2C, 0xDE, 0x01, 0xC8, 0xD4};
static const uint8_t rfc_serial[] = {0x87, 0x65, 0x43, 0x21};

static void test_rfc9773_example(void **state)
{
        static const char *const sans[] = {"example.com", "*.example.com", NULL};
        const struct spec s = {
                .serial = rfc_serial,
                .serial_len = sizeof(rfc_serial),
                .aki = rfc_aki,
                .aki_len = sizeof(rfc_aki),
                .sans = sans,
                .issuer_o = "Example CA",
                .issuer_cn = "Example Intermediate R1",
                .not_before = 1700000000,
                .not_after = 1707776000,
        };
        _cleanup_(acme_key_freep) struct acme_key *leaf = NULL, *ca = NULL;
        _cleanup_strbuf_ struct strbuf pem = STRBUF_INIT;
        struct acme_cert_info ci;

        assert_int_equal(acme_key_generate(&leaf), 0);
        assert_int_equal(acme_key_generate(&ca), 0);
        make_cert(&s, leaf, ca, &pem);
        assert_int_equal(acme_cert_info_parse(pem.data, pem.len, &ci), 0);
        assert_string_equal(ci.ari_id, "aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE");
        assert_int_equal(ci.not_before, 1700000000);
        assert_int_equal(ci.not_after, 1707776000);
        assert_int_equal(ci.n_dns_names, 2);
        assert_string_equal(ci.dns_names[0], "example.com");
        assert_string_equal(ci.dns_names[1], "*.example.com");
        assert_string_equal(ci.issuer, "O=Example CA, CN=Example Intermediate R1");
        assert_int_equal(ci.n_certs, 1);
        assert_int_equal(acme_cert_matches_key(pem.data, pem.len, leaf), 1);
        assert_int_equal(acme_cert_matches_key(pem.data, pem.len, ca), 0);
        acme_cert_info_done(&ci);
        assert_null(ci.issuer);
}

/* A serial without the high bit has no leading zero; a chain's facts come
 * from its first certificate; dates after 2049 (GeneralizedTime) work. */
static void test_chain_and_plain_serial(void **state)
{
        static const uint8_t serial[] = {0x12, 0x34, 0x56, 0x78};
        static const uint8_t aki[] = {1, 2, 3};
        static const uint8_t ca_serial[] = {0x01};
        static const char *const sans[] = {"a.example", NULL};
        const struct spec s = {.serial = serial,
                               .serial_len = sizeof(serial),
                               .aki = aki,
                               .aki_len = sizeof(aki),
                               .sans = sans,
                               .issuer_cn = "Only CN",
                               .not_before = 2524608000, /* 2050-01-01 */
                               .not_after = 4102444800}; /* 2100-01-01 */
        const struct spec ca = {.serial = ca_serial,
                                .serial_len = 1,
                                .issuer_o = "Root Org",
                                .not_before = 0,
                                .not_after = 2000000000};
        _cleanup_(acme_key_freep) struct acme_key *k1 = NULL, *k2 = NULL;
        _cleanup_strbuf_ struct strbuf pem = STRBUF_INIT;
        struct acme_cert_info ci;

        assert_int_equal(acme_key_generate(&k1), 0);
        assert_int_equal(acme_key_generate(&k2), 0);
        make_cert(&s, k1, k2, &pem);
        assert_int_equal(strbuf_puts(&pem, "\nexplanatory text between blocks\n"), 0);
        make_cert(&ca, k2, k2, &pem);
        make_cert(&ca, k2, k2, &pem);
        assert_int_equal(acme_cert_info_parse(pem.data, pem.len, &ci), 0);
        assert_int_equal(ci.n_certs, 3);
        assert_string_equal(ci.ari_id, "AQID.EjRWeA");
        assert_int_equal(ci.not_before, 2524608000);
        assert_int_equal(ci.not_after, 4102444800);
        assert_string_equal(ci.issuer, "CN=Only CN");
        acme_cert_info_done(&ci);
        assert_int_equal(acme_cert_matches_key(pem.data, pem.len, k1), 1);
}

/* No AKI: no ARI identifier; no SAN: no names; no O/CN: a placeholder;
 * control bytes in the issuer are masked. */
static void test_missing_parts(void **state)
{
        static const uint8_t serial[] = {0xff};
        const struct spec s = {.serial = serial, .serial_len = 1, .not_after = 100};
        const struct spec ctl = {.serial = serial,
                                 .serial_len = 1,
                                 .issuer_o = "Evil\nOrg\x1b[31m",
                                 .not_after = 100};
        _cleanup_(acme_key_freep) struct acme_key *k = NULL;
        _cleanup_strbuf_ struct strbuf pem = STRBUF_INIT, pem2 = STRBUF_INIT;
        struct acme_cert_info ci;

        assert_int_equal(acme_key_generate(&k), 0);
        make_cert(&s, k, k, &pem);
        assert_int_equal(acme_cert_info_parse(pem.data, pem.len, &ci), 0);
        assert_null(ci.ari_id);
        assert_int_equal(ci.n_dns_names, 0);
        assert_null(ci.dns_names);
        assert_string_equal(ci.issuer, "(issuer without O or CN)");
        acme_cert_info_done(&ci);

        make_cert(&ctl, k, k, &pem2);
        assert_int_equal(acme_cert_info_parse(pem2.data, pem2.len, &ci), 0);
        assert_string_equal(ci.issuer, "O=Evil?Org?[31m");
        acme_cert_info_done(&ci);
}

static void test_rejects(void **state)
{
        static const uint8_t serial[] = {0x42};
        static const char *const bad_sans[] = {"ok.example", "bad name.example", NULL};
        const struct spec s = {.serial = serial, .serial_len = 1, .not_after = 100};
        const struct spec bad = {
                .serial = serial, .serial_len = 1, .not_after = 100, .sans = bad_sans};
        _cleanup_(acme_key_freep) struct acme_key *k = NULL;
        _cleanup_strbuf_ struct strbuf one = STRBUF_INIT, many = STRBUF_INIT, b = STRBUF_INIT;
        _cleanup_free_ char *truncated = NULL;
        struct acme_cert_info ci = {.n_certs = 77};

        assert_int_equal(acme_key_generate(&k), 0);
        make_cert(&s, k, k, &one);
        for (int i = 0; i < ACME_CERT_CHAIN_MAX + 1; i++)
                make_cert(&s, k, k, &many);
        make_cert(&bad, k, k, &b);

        assert_int_equal(acme_cert_info_parse("", 0, &ci), -EINVAL);
        assert_int_equal(acme_cert_info_parse("garbage", 7, &ci), -EINVAL);
        assert_int_equal(acme_cert_info_parse(many.data, many.len, &ci), -E2BIG);
        assert_int_equal(acme_cert_info_parse(b.data, b.len, &ci), -EINVAL);
        /* Cut in the middle of the base64, and with the END line missing. */
        truncated = strndup(one.data, one.len / 2);
        assert_int_equal(acme_cert_info_parse(truncated, strlen(truncated), &ci), -EINVAL);
        assert_int_equal(acme_cert_info_parse(one.data, one.len - 10, &ci), -EINVAL);
        /* A valid certificate followed by a broken block. */
        assert_int_equal(strbuf_append(&one, truncated, strlen(truncated)), 0);
        assert_int_equal(acme_cert_info_parse(one.data, one.len, &ci), -EINVAL);
        assert_int_equal(ci.n_certs, 77);
        assert_int_equal(acme_cert_matches_key("x", 1, k), -EINVAL);
}

/* A CA and a leaf made by the openssl command (serial with the high bit
 * set, AKI from the CA's SKI): the ARI identifier computed from openssl's
 * own printout of the serial and AKI, and notAfter from its date. */
static void test_openssl_cli_certificate(void **state)
{
        char *dir, out[4096], serial_hex[128], aki_hex[256], end[128], want[256];
        _cleanup_free_ char *pem = NULL, *path = NULL;
        struct acme_cert_info ci;
        size_t len = 0;

        if (!have_openssl_cli())
                skip();
        dir = tmpdir_make();
        assert_non_null(dir);
        assert_int_equal(
                run_cmd(out, sizeof(out),
                        "cd %s && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 "
                        "-nodes -keyout ca.key -out ca.crt -subj '/O=CLI Org/CN=CLI Root' -days 30 "
                        "2>&1 && openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
                        "-keyout leaf.key -out leaf.csr -subj '/CN=cli.example' 2>&1 && printf "
                        "'subjectAltName=DNS:cli.example,DNS:*.cli.example\\n"
                        "authorityKeyIdentifier=keyid\\n' > ext && openssl x509 -req -in leaf.csr "
                        "-CA ca.crt -CAkey ca.key -set_serial 0x80ff0011223344 -days 10 -extfile ext "
                        "-out leaf.crt 2>&1 && cat leaf.crt ca.crt > chain.pem",
                        dir),
                0);
        assert_int_equal(run_cmd(serial_hex, sizeof(serial_hex),
                                 "openssl x509 -in %s/leaf.crt -noout -serial | cut -d= -f2", dir),
                         0);
        assert_string_equal(serial_hex, "80FF0011223344");
        assert_int_equal(run_cmd(aki_hex, sizeof(aki_hex),
                                 "openssl x509 -in %s/leaf.crt -noout -ext authorityKeyIdentifier "
                                 "| tail -1 | tr -d ' :' | sed 's/^keyid//'",
                                 dir),
                         0);
        assert_true(strlen(aki_hex) == 40);
        /* base64url(AKI) "." base64url(00 80 ff 00 11 22 33 44), independently via xxd. */
        assert_int_equal(run_cmd(want, sizeof(want),
                                 "a=$(printf '%s' | xxd -r -p | openssl base64 -A | tr '+/' '-_' "
                                 "| tr -d =); s=$(printf '00%s' | xxd -r -p | openssl base64 -A | "
                                 "tr '+/' '-_' | tr -d =); echo \"$a.$s\"",
                                 aki_hex, serial_hex),
                         0);
        assert_int_equal(run_cmd(end, sizeof(end),
                                 "date -u -d \"$(openssl x509 -in %s/leaf.crt -noout -enddate | "
                                 "cut -d= -f2)\" +%%s",
                                 dir),
                         0);

        assert_true(asprintf(&path, "%s/chain.pem", dir) > 0);
        pem = read_text(path, &len);
        assert_non_null(pem);
        assert_int_equal(acme_cert_info_parse(pem, len, &ci), 0);
        assert_string_equal(ci.ari_id, want);
        assert_int_equal(ci.not_after, strtoll(end, NULL, 10));
        assert_int_equal(ci.not_after - ci.not_before, 10 * 86400);
        assert_int_equal(ci.n_certs, 2);
        assert_int_equal(ci.n_dns_names, 2);
        assert_string_equal(ci.dns_names[1], "*.cli.example");
        assert_string_equal(ci.issuer, "O=CLI Org, CN=CLI Root");
        acme_cert_info_done(&ci);
        tmpdir_remove(dir);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_rfc9773_example),
                cmocka_unit_test(test_chain_and_plain_serial),
                cmocka_unit_test(test_missing_parts),
                cmocka_unit_test(test_rejects),
                cmocka_unit_test(test_openssl_cli_certificate),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
