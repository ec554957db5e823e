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
#include <openssl/nid.h>
#include <openssl/obj.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "acme-test.h"
#include "acme/csr.h"
#include "acme/jws.h"
#include "common/macros.h"

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

/* Parse @der as a CSR and check everything RFC 8555 §7.4 and the header
 * promise: version 1, ECDSA-SHA256 signature that verifies with @k's public
 * key, the SAN request with exactly @names, CN as documented. */
static void check_csr(const uint8_t *der, size_t len, const struct acme_key *k,
                      const char *const *names, size_t n)
{
        const uint8_t *p = der;
        X509_REQ *req = d2i_X509_REQ(NULL, &p, (long)len);
        EVP_PKEY *want = pkey_of(k), *got;
        STACK_OF(X509_EXTENSION) * exts;
        GENERAL_NAMES *gens = NULL;
        X509_NAME *subj;
        int idx, crit = 0;

        assert_non_null(req);
        assert_ptr_equal(p, der + len); /* nothing after the CSR */
        assert_int_equal(X509_REQ_get_version(req), X509_REQ_VERSION_1);
        assert_int_equal(X509_REQ_get_signature_nid(req), NID_ecdsa_with_SHA256);
        got = X509_REQ_get_pubkey(req);
        assert_int_equal(EVP_PKEY_cmp(got, want), 1);
        assert_int_equal(X509_REQ_verify(req, want), 1);

        exts = X509_REQ_get_extensions(req);
        assert_non_null(exts);
        for (size_t i = 0; i < sk_X509_EXTENSION_num(exts); i++) {
                X509_EXTENSION *e = sk_X509_EXTENSION_value(exts, i);

                if (OBJ_obj2nid(X509_EXTENSION_get_object(e)) == NID_subject_alt_name) {
                        assert_null(gens);
                        gens = X509V3_EXT_d2i(e);
                        crit = X509_EXTENSION_get_critical(e);
                }
        }
        assert_non_null(gens);
        assert_int_equal(sk_GENERAL_NAME_num(gens), n);
        for (size_t i = 0; i < n; i++) {
                const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);

                assert_int_equal(g->type, GEN_DNS);
                assert_int_equal(ASN1_STRING_length(g->d.dNSName), strlen(names[i]));
                assert_memory_equal(ASN1_STRING_get0_data(g->d.dNSName), names[i],
                                    strlen(names[i]));
        }

        subj = X509_REQ_get_subject_name(req);
        idx = X509_NAME_get_index_by_NID(subj, NID_commonName, -1);
        if (strlen(names[0]) <= 64) {
                ASN1_STRING *cn;

                assert_int_equal(X509_NAME_entry_count(subj), 1);
                assert_true(idx >= 0);
                cn = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subj, idx));
                assert_int_equal(ASN1_STRING_length(cn), strlen(names[0]));
                assert_memory_equal(ASN1_STRING_get0_data(cn), names[0], strlen(names[0]));
                assert_false(crit);
        } else {
                assert_int_equal(X509_NAME_entry_count(subj), 0);
                assert_true(crit);
        }

        GENERAL_NAMES_free(gens);
        sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
        EVP_PKEY_free(got);
        EVP_PKEY_free(want);
        X509_REQ_free(req);
}

static void test_csr_names_and_signature(void **state)
{
        static const char *const names[] = {"example.com", "*.example.com", "www.example.com"};
        _cleanup_(acme_key_freep) struct acme_key *k = NULL;
        _cleanup_free_ uint8_t *der = NULL;
        size_t len;

        assert_int_equal(acme_key_generate(&k), 0);
        assert_int_equal(acme_csr_new(k, names, ELEMENTSOF(names), &der, &len), 0);
        check_csr(der, len, k, names, ELEMENTSOF(names));
}

/* A first name of 64 bytes is the CN; of 65 bytes, there is no CN and the
 * SAN is critical. */
static void test_csr_cn_limit(void **state)
{
        char n64[65], n65[66];
        _cleanup_(acme_key_freep) struct acme_key *k = NULL;

        memset(n64, 'a', sizeof(n64));
        memcpy(n64 + 60, ".com", 5);
        memset(n65, 'b', sizeof(n65));
        memcpy(n65 + 61, ".com", 5);
        assert_int_equal(strlen(n64), 64);
        assert_int_equal(strlen(n65), 65);
        assert_int_equal(acme_key_generate(&k), 0);
        {
                const char *names[] = {n64, "short.example"};
                _cleanup_free_ uint8_t *der = NULL;
                size_t len;

                assert_int_equal(acme_csr_new(k, names, 2, &der, &len), 0);
                check_csr(der, len, k, names, 2);
        }
        {
                const char *names[] = {n65, "short.example"};
                _cleanup_free_ uint8_t *der = NULL;
                size_t len;

                assert_int_equal(acme_csr_new(k, names, 2, &der, &len), 0);
                check_csr(der, len, k, names, 2);
        }
}

static void test_csr_hundred_names(void **state)
{
        char bufs[ACME_CSR_MAX_NAMES][32];
        const char *names[ACME_CSR_MAX_NAMES + 1];
        _cleanup_(acme_key_freep) struct acme_key *k = NULL;
        _cleanup_free_ uint8_t *der = NULL;
        uint8_t *none = NULL;
        size_t len;

        for (size_t i = 0; i < ACME_CSR_MAX_NAMES; i++) {
                snprintf(bufs[i], sizeof(bufs[i]), "n%zu.example.net", i);
                names[i] = bufs[i];
        }
        names[ACME_CSR_MAX_NAMES] = "one-too-many.example.net";
        assert_int_equal(acme_key_generate(&k), 0);
        assert_int_equal(acme_csr_new(k, names, ACME_CSR_MAX_NAMES, &der, &len), 0);
        check_csr(der, len, k, names, ACME_CSR_MAX_NAMES);
        assert_int_equal(acme_csr_new(k, names, ACME_CSR_MAX_NAMES + 1, &none, &len), -EINVAL);
        assert_null(none);
}

static void test_csr_rejects(void **state)
{
        char long_name[300];
        _cleanup_(acme_key_freep) struct acme_key *k = NULL;
        const char *bad[] = {"",          "a b.example", "a/b.example",
                             "é.example", "a\n.example", long_name};
        uint8_t *der = NULL;
        size_t len = 0;

        memset(long_name, 'a', sizeof(long_name));
        long_name[254] = 0;
        assert_int_equal(acme_key_generate(&k), 0);
        assert_int_equal(acme_csr_new(k, bad, 0, &der, &len), -EINVAL);
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                const char *names[] = {"ok.example", bad[i]};

                assert_int_equal(acme_csr_new(k, names, 2, &der, &len), -EINVAL);
        }
        {
                const char *names[] = {NULL};

                assert_int_equal(acme_csr_new(k, names, 1, &der, &len), -EINVAL);
        }
        assert_null(der);
}

/* openssl req verifies the self-signature and lists the SANs. */
static void test_csr_openssl_cli(void **state)
{
        static const char *const names[] = {"gw.example.org", "*.gw.example.org"};
        _cleanup_(acme_key_freep) struct acme_key *k = NULL;
        _cleanup_free_ uint8_t *der = NULL;
        _cleanup_free_ char *path = NULL;
        char out[8192], *dir;
        size_t len;

        if (!have_openssl_cli())
                skip();
        dir = tmpdir_make();
        assert_non_null(dir);
        assert_int_equal(acme_key_generate(&k), 0);
        assert_int_equal(acme_csr_new(k, names, 2, &der, &len), 0);
        assert_true(asprintf(&path, "%s/csr.der", dir) > 0);
        assert_int_equal(write_text(path, der, len), 0);
        assert_int_equal(run_cmd(out, sizeof(out),
                                 "openssl req -inform DER -in %s -noout -verify 2>&1", path),
                         0);
        assert_non_null(strstr(out, "verify OK"));
        assert_int_equal(
                run_cmd(out, sizeof(out), "openssl req -inform DER -in %s -noout -text", path), 0);
        assert_non_null(strstr(out, "DNS:gw.example.org, DNS:*.gw.example.org"));
        assert_non_null(strstr(out, "Subject: CN = gw.example.org"));
        assert_non_null(strstr(out, "ecdsa-with-SHA256"));
        assert_non_null(strstr(out, "NIST CURVE: P-256"));
        tmpdir_remove(dir);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_csr_names_and_signature), cmocka_unit_test(test_csr_cn_limit),
                cmocka_unit_test(test_csr_hundred_names),       cmocka_unit_test(test_csr_rejects),
                cmocka_unit_test(test_csr_openssl_cli),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
