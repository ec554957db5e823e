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

#include "acme/client-internal.h"
#include "client-test.h"
#include "common/macros.h"

static const char *const one[] = {"example.com"};

static void test_new_rejects(void **state)
{
        struct harness h;
        struct acme_client *c = (struct acme_client *)0x1;
        struct acme_client_config cfg;
        struct acme_http_ops no_cancel = {.request = fake_acme_ops.request};

        h_init(&h);
        assert_int_equal(acme_client_new(NULL, &c), -EINVAL);
        cfg = h.cfg;
        cfg.loop = NULL;
        assert_int_equal(acme_client_new(&cfg, &c), -EINVAL);
        cfg = h.cfg;
        cfg.http = &no_cancel;
        assert_int_equal(acme_client_new(&cfg, &c), -EINVAL);
        cfg = h.cfg;
        cfg.account_key = NULL;
        assert_int_equal(acme_client_new(&cfg, &c), -EINVAL);
        cfg = h.cfg;
        cfg.directory_url = "http://ca.test/dir"; /* RFC 8555 §6.1: HTTPS only */
        assert_int_equal(acme_client_new(&cfg, &c), -EINVAL);
        cfg = h.cfg;
        cfg.directory_url = NULL;
        assert_int_equal(acme_client_new(&cfg, &c), -EINVAL);
        cfg = h.cfg;
        cfg.account_url = "acct/1";
        assert_int_equal(acme_client_new(&cfg, &c), -EINVAL);
        assert_ptr_equal(c, (struct acme_client *)0x1);
        /* No I/O until the first order. */
        h_client(&h);
        uv_run(&h.loop, UV_RUN_NOWAIT);
        assert_int_equal(h.f->n_requests, 0);
        assert_false(acme_client_has_ari(h.c));
        acme_client_free(NULL);
        h_fini(&h);
}

/* A directory that fails (HTTP error, garbage, no newOrder) fails the
 * orders waiting for it, "directory" named; the next order fetches it
 * again. */
static void test_directory_errors(void **state)
{
        static const enum fake_mutation muts[] = {FAKE_MUT_STATUS_500, FAKE_MUT_GARBAGE,
                                                  FAKE_MUT_NOT_OBJECT};

        for (size_t i = 0; i <= ELEMENTSOF(muts); i++) {
                struct harness h;

                h_init(&h);
                if (i < ELEMENTSOF(muts)) {
                        h.f->mutate_at = 1;
                        h.f->mutation = muts[i];
                } else {
                        h.f->dir_without_new_order = true;
                }
                assert_int_equal(h_order(&h, one, 1, ACME_CHALLENGE_HTTP01, NULL, NULL), 0);
                assert_int_equal(h.done_calls, 1);
                assert_true(h.done_r == -EPROTO || h.done_r == -EBADMSG);
                assert_string_equal(h.problem.where, "directory");
                assert_non_null(h.problem.detail);
                h.f->dir_without_new_order = false;
                assert_int_equal(h_order(&h, one, 1, ACME_CHALLENGE_HTTP01, NULL, NULL), 0);
                assert_int_equal(h.done_r, 0);
                assert_int_equal(h.f->n_dir, 2);
                h_assert_clean(&h);
                h_fini(&h);
        }
}

/* The directory is kept for 24 h of the clock the client was given. */
static void test_directory_refetched_after_a_day(void **state)
{
        struct harness h;

        h_init(&h);
        assert_int_equal(h_order(&h, one, 1, ACME_CHALLENGE_HTTP01, NULL, NULL), 0);
        assert_int_equal(h.done_r, 0);
        h.clock += 23 * 3600;
        assert_int_equal(h_order(&h, one, 1, ACME_CHALLENGE_HTTP01, NULL, NULL), 0);
        assert_int_equal(h.done_r, 0);
        assert_int_equal(h.f->n_dir, 1);
        h.clock += 3600;
        h.f->ari = true;
        assert_false(acme_client_has_ari(h.c));
        assert_int_equal(h_order(&h, one, 1, ACME_CHALLENGE_HTTP01, NULL, NULL), 0);
        assert_int_equal(h.done_r, 0);
        assert_int_equal(h.f->n_dir, 2);
        assert_true(acme_client_has_ari(h.c));
        h_assert_clean(&h);
        h_fini(&h);
}

/* A 404 from newOrder marks the directory stale: the next order fetches
 * it again. */
static void test_directory_stale_after_404(void **state)
{
        struct harness h;

        h_init(&h);
        h.f->new_order_404 = 1;
        assert_int_equal(h_order(&h, one, 1, ACME_CHALLENGE_HTTP01, NULL, NULL), 0);
        assert_int_equal(h.done_r, -EPROTO);
        assert_int_equal(h.problem.status, 404);
        assert_int_equal(h_order(&h, one, 1, ACME_CHALLENGE_HTTP01, NULL, NULL), 0);
        assert_int_equal(h.done_r, 0);
        assert_int_equal(h.f->n_dir, 2);
        h_assert_clean(&h);
        h_fini(&h);
}

/* Orders started together share one directory fetch and one newAccount;
 * a later order reuses pooled nonces (no newNonce). */
static void test_orders_share_directory_account_and_nonces(void **state)
{
        static const char *const a[] = {"a.example.com"}, *const b[] = {"b.example.com"},
                                 *const c[] = {"*.c.example.com", "c.example.com"};
        struct harness h;
        unsigned nonces;

        h_init(&h);
        h.f->authz_pending_polls = 2;
        h_client(&h);
        assert_int_equal(acme_order_start(h.c,
                                          &(struct acme_order_params){.names = a, .n_names = 1},
                                          &h_hooks, &h, NULL),
                         0);
        assert_int_equal(acme_order_start(h.c,
                                          &(struct acme_order_params){.names = b, .n_names = 1},
                                          &h_hooks, &h, NULL),
                         0);
        uv_run(&h.loop, UV_RUN_DEFAULT);
        assert_int_equal(h.done_calls, 2);
        assert_int_equal(h.done_r, 0);
        assert_int_equal(h.f->n_dir, 1);
        assert_int_equal(h.f->n_new_account, 1);
        assert_int_equal(h.on_account_calls, 1);
        nonces = h.f->n_nonce;
        assert_true(nonces <= 2);
        assert_int_equal(h_order(&h, c, 2, ACME_CHALLENGE_DNS01, NULL, NULL), 0);
        assert_int_equal(h.done_r, 0);
        assert_int_equal(h.f->n_nonce, nonces);
        h_assert_clean(&h);
        h_fini(&h);
}

static void on_ari_count(void *ud, int r, struct acme_renewal_info *ri,
                         const struct acme_problem *problem)
{
        (*(unsigned *)ud)++;
}

/* Every answer's Replay-Nonce goes to the pool, which keeps 8. */
static void test_nonce_pool_bounded(void **state)
{
        struct harness h;
        unsigned calls = 0;

        h_init(&h);
        h.f->ari = true;
        h.f->nonce_on_get = true;
        h_client(&h);
        for (int i = 0; i < 20; i++) {
                assert_int_equal(acme_ari_fetch(h.c, "aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE",
                                                on_ari_count, &calls, NULL),
                                 0);
                uv_run(&h.loop, UV_RUN_DEFAULT);
        }
        assert_int_equal(calls, 20);
        assert_int_equal(h.c->n_nonces, ACME_NONCE_POOL_MAX);
        /* The newest is used first and no newNonce is needed. */
        assert_int_equal(h_order(&h, one, 1, ACME_CHALLENGE_HTTP01, NULL, NULL), 0);
        assert_int_equal(h.done_r, 0);
        assert_int_equal(h.f->n_nonce, 0);
        h_assert_clean(&h);
        h_fini(&h);
}

/* on_account may free the client: the waiting order is cancelled, its
 * done never runs. */
static void test_free_client_in_on_account(void **state)
{
        struct harness h;

        h_init(&h);
        h.free_client_in_account = true;
        assert_int_equal(h_order(&h, one, 1, ACME_CHALLENGE_HTTP01, NULL, NULL), 0);
        assert_int_equal(h.on_account_calls, 1);
        assert_null(h.c);
        assert_int_equal(h.done_calls, 0);
        assert_int_equal(h.f->n_new_order, 0);
        h_fini(&h);
}

/* A failed registration fails every order waiting for it, and the next
 * order tries again. */
static void test_account_failure_shared(void **state)
{
        static const char *const a[] = {"a.example.com"}, *const b[] = {"b.example.com"};
        struct harness h;

        h_init(&h);
        h.f->mutate_at = 3; /* newAccount */
        h.f->mutation = FAKE_MUT_NO_HEADERS;
        h_client(&h);
        assert_int_equal(acme_order_start(h.c,
                                          &(struct acme_order_params){.names = a, .n_names = 1},
                                          &h_hooks, &h, NULL),
                         0);
        assert_int_equal(acme_order_start(h.c,
                                          &(struct acme_order_params){.names = b, .n_names = 1},
                                          &h_hooks, &h, NULL),
                         0);
        uv_run(&h.loop, UV_RUN_DEFAULT);
        assert_int_equal(h.done_calls, 2);
        assert_int_equal(h.done_r, -EBADMSG);
        assert_string_equal(h.problem.where, "newAccount");
        assert_non_null(strstr(h.problem.detail, "Location"));
        assert_int_equal(h.on_account_calls, 0);
        assert_int_equal(h_order(&h, one, 1, ACME_CHALLENGE_HTTP01, NULL, NULL), 0);
        assert_int_equal(h.done_r, 0);
        assert_int_equal(h.on_account_calls, 1);
        assert_int_equal(h.f->n_new_account, 2);
        h_fini(&h);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_new_rejects),
                cmocka_unit_test(test_directory_errors),
                cmocka_unit_test(test_directory_refetched_after_a_day),
                cmocka_unit_test(test_directory_stale_after_404),
                cmocka_unit_test(test_orders_share_directory_account_and_nonces),
                cmocka_unit_test(test_nonce_pool_bounded),
                cmocka_unit_test(test_free_client_in_on_account),
                cmocka_unit_test(test_account_failure_shared),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
