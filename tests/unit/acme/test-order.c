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

#include "acme/cert.h"
#include "client-test.h"
#include "common/macros.h"

/* The issued chain is for the names and the key handed back. */
static void assert_issued(const struct harness *h, const char *const *names, size_t n)
{
        _cleanup_(acme_key_freep) struct acme_key *k = NULL;
        struct acme_cert_info ci;

        assert_int_equal(h->done_r, 0);
        assert_non_null(h->chain);
        assert_non_null(h->key_pem);
        assert_int_equal(acme_cert_info_parse(h->chain, strlen(h->chain), &ci), 0);
        assert_int_equal(ci.n_certs, 2);
        assert_int_equal(ci.n_dns_names, n);
        for (size_t i = 0; i < n; i++)
                assert_string_equal(ci.dns_names[i], names[i]);
        assert_string_equal(ci.issuer, "O=Fake ACME, CN=Fake Intermediate");
        assert_string_equal(ci.ari_id, h->f->issued_cert_id);
        acme_cert_info_done(&ci);
        assert_int_equal(acme_key_from_pem(h->key_pem, strlen(h->key_pem), &k), 0);
        assert_int_equal(acme_cert_matches_key(h->chain, strlen(h->chain), k), 1);
        /* Not the account key (RFC 8555 §11.1). */
        assert_string_not_equal(acme_key_jwk(k), acme_key_jwk(h->key));
}

/* ---- happy paths ------------------------------------------------------------ */

static void test_http01_happy_path(void **state)
{
        static const char *const names[] = {"example.com", "www.example.com"};
        struct harness h;

        h_init(&h);
        h.f->authz_pending_polls = 2;
        h.f->order_processing_polls = 1;
        assert_int_equal(h_order(&h, names, 2, ACME_CHALLENGE_HTTP01, NULL, NULL), 0);
        h_assert_clean(&h);
        assert_int_equal(h.done_calls, 1);
        assert_issued(&h, names, 2);
        assert_int_equal(h.installs, 2);
        /* Removed once the authorizations were valid, before finalize. */
        assert_int_equal(h.f->n_pub_at_finalize, 0);
        assert_int_equal(h.on_account_calls, 1);
        assert_string_equal(h.account_url, FAKE_BASE "/acct/1");
        assert_int_equal(h.f->n_dir, 1);
        assert_int_equal(h.f->n_new_account, 1);
        assert_int_equal(h.f->n_new_order, 1);
        assert_int_equal(h.f->n_challenge_posts, 2);
        assert_int_equal(h.f->n_finalize, 1);
        assert_int_equal(h.f->n_cert, 1);
        /* One newNonce: every later nonce came from a response. */
        assert_int_equal(h.f->n_nonce, 1);
        assert_null(h.f->new_order_profile);
        assert_null(h.f->new_order_replaces);
        h_fini(&h);
}

/* "*.example.org" and "example.org": two authorizations, two TXT values at
 * _acme-challenge.example.org, both published before either challenge is
 * POSTed (the fake fails validation otherwise). */
static void test_dns01_wildcard_and_apex(void **state)
{
        static const char *const names[] = {"*.example.org", "example.org"};
        struct harness h;

        h_init(&h);
        h.f->authz_pending_polls = 1;
        assert_int_equal(h_order(&h, names, 2, ACME_CHALLENGE_DNS01, NULL, NULL), 0);
        h_assert_clean(&h);
        assert_int_equal(h.done_calls, 1);
        assert_issued(&h, names, 2);
        assert_int_equal(h.installs, 2);
        assert_int_equal(h.f->max_pub, 2);
        assert_int_equal(h.n_dns_values, 2);
        assert_string_not_equal(h.dns_values[0], h.dns_values[1]);
        h_fini(&h);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_http01_happy_path),
                cmocka_unit_test(test_dns01_wildcard_and_apex),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
