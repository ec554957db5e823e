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
#include "acme/client-internal.h"
#include "client-test.h"
#include "common/macros.h"

#define RFC_ID "aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE"

struct ari_result {
        unsigned calls;
        int r;
        struct acme_renewal_info ri;
        struct acme_problem problem;
};

static void on_ari(void *ud, int r, struct acme_renewal_info *ri,
                   const struct acme_problem *problem)
{
        struct ari_result *res = ud;

        res->calls++;
        res->r = r;
        if (r >= 0) {
                assert_non_null(ri);
                assert_null(problem);
                res->ri = *ri;
                ri->explanation_url = NULL; /* taken */
        } else {
                assert_null(ri);
                assert_non_null(problem);
                assert_int_equal(acme__problem_copy(&res->problem, problem), 0);
        }
}

static void ari_result_done(struct ari_result *res)
{
        acme_renewal_info_done(&res->ri);
        acme_problem_done(&res->problem);
}

static int fetch(struct harness *h, const char *id, struct ari_result *res)
{
        int r;

        if (!h->c)
                h_client(h);
        r = acme_ari_fetch(h->c, id, on_ari, res, NULL);
        if (r < 0)
                return r;
        /* Never from inside acme_ari_fetch. */
        assert_int_equal(res->calls, 0);
        uv_run(&h->loop, UV_RUN_DEFAULT);
        return 0;
}

static void test_ari_happy_path(void **state)
{
        struct harness h;
        struct ari_result res = {};

        h_init(&h);
        h.f->ari = true;
        assert_int_equal(fetch(&h, RFC_ID, &res), 0);
        assert_int_equal(res.calls, 1);
        assert_int_equal(res.r, 0);
        assert_int_equal(res.ri.start, 1735790400); /* 2025-01-02T04:00:00Z */
        assert_int_equal(res.ri.end, 1735869600);   /* 2025-01-03T04:00:00.123+02:00 */
        assert_string_equal(res.ri.explanation_url, FAKE_BASE "/why");
        assert_int_equal(res.ri.retry_after_s, 21600);
        assert_true(acme_client_has_ari(h.c));
        /* Unauthenticated GETs: no account, no nonce. */
        assert_int_equal(h.f->n_new_account, 0);
        assert_int_equal(h.f->n_nonce, 0);
        ari_result_done(&res);
        h_fini(&h);
}

/* The ARI ID that acme/cert.c computes from an issued chain is the one
 * the CA computed (independently, in the fake) for that certificate. */
static void test_ari_for_issued_certificate(void **state)
{
        static const char *const names[] = {"example.com"};
        struct harness h;
        struct ari_result res = {};
        struct acme_cert_info ci;

        h_init(&h);
        h.f->ari = true;
        assert_int_equal(h_order(&h, names, 1, ACME_CHALLENGE_HTTP01, NULL, NULL), 0);
        assert_int_equal(h.done_r, 0);
        assert_int_equal(acme_cert_info_parse(h.chain, strlen(h.chain), &ci), 0);
        assert_int_equal(fetch(&h, ci.ari_id, &res), 0);
        assert_int_equal(res.r, 0);
        assert_int_equal(h.f->n_ari, 1);
        acme_cert_info_done(&ci);
        ari_result_done(&res);
        h_fini(&h);
}

/* No renewalInfo in the directory: -EOPNOTSUPP, through the callback,
 * whether the directory was known before or not. */
static void test_ari_not_supported(void **state)
{
        struct harness h;
        struct ari_result a = {}, b = {};

        h_init(&h);
        assert_int_equal(fetch(&h, RFC_ID, &a), 0);
        assert_int_equal(a.calls, 1);
        assert_int_equal(a.r, -EOPNOTSUPP);
        assert_int_equal(a.problem.error, -EOPNOTSUPP);
        assert_non_null(strstr(a.problem.detail, "renewalInfo"));
        assert_false(acme_client_has_ari(h.c));
        assert_int_equal(fetch(&h, RFC_ID, &b), 0);
        assert_int_equal(b.calls, 1);
        assert_int_equal(b.r, -EOPNOTSUPP);
        assert_int_equal(h.f->n_ari, 0);
        assert_int_equal(h.f->n_dir, 1);
        ari_result_done(&a);
        ari_result_done(&b);
        h_fini(&h);
}

static void test_ari_unknown_certificate(void **state)
{
        struct harness h;
        struct ari_result res = {};

        h_init(&h);
        h.f->ari = true;
        assert_int_equal(fetch(&h, "AAAA.AQ", &res), 0);
        assert_int_equal(res.r, -EPROTO);
        assert_int_equal(res.problem.status, 404);
        assert_string_equal(acme_problem_short_type(&res.problem), "malformed");
        assert_string_equal(res.problem.where, "renewalInfo AAAA.AQ");
        ari_result_done(&res);
        h_fini(&h);
}

static void test_ari_malformed_window(void **state)
{
        static const char *const windows[][2] = {
                {"yesterday", "2025-01-03T00:00:00Z"},
                {"2025-01-03T00:00:00Z", "2025-01-02T00:00:00Z"}, /* ends before it starts */
                {"2025-01-02T00:00:00Z", "2025-02-30T00:00:00Z"},
        };

        for (size_t i = 0; i < ELEMENTSOF(windows); i++) {
                struct harness h;
                struct ari_result res = {};

                h_init(&h);
                h.f->ari = true;
                h.f->ari_window[0] = windows[i][0];
                h.f->ari_window[1] = windows[i][1];
                assert_int_equal(fetch(&h, RFC_ID, &res), 0);
                assert_int_equal(res.r, -EBADMSG);
                assert_int_equal(res.problem.error, -EBADMSG);
                ari_result_done(&res);
                h_fini(&h);
        }
        /* Garbage and wrong member types everywhere in the answer. */
        for (int m = FAKE_MUT_TRUNCATE; m < _FAKE_MUT_MAX; m++)
                for (unsigned member = 0; member < 5; member++)
                        for (unsigned value = 0; value < 6; value++) {
                                struct harness h;
                                struct ari_result res = {};

                                if (m != FAKE_MUT_MEMBER && (member || value))
                                        continue;
                                h_init(&h);
                                h.f->ari = true;
                                h.f->mutate_at = 2;
                                h.f->mutation = m;
                                h.f->mutate_member = member;
                                h.f->mutate_value = value;
                                assert_int_equal(fetch(&h, RFC_ID, &res), 0);
                                assert_int_equal(res.calls, 1);
                                if (res.r < 0)
                                        assert_non_null(res.problem.detail);
                                ari_result_done(&res);
                                h_fini(&h);
                        }
}

static void test_ari_rejects_ids(void **state)
{
        static const char *const bad[] = {"", "abc", "a.b.c", "a/b.c", ".x", "x.", "a.b=", NULL};
        struct harness h;
        struct ari_result res = {};

        h_init(&h);
        h.f->ari = true;
        for (size_t i = 0; i < ELEMENTSOF(bad); i++)
                assert_int_equal(fetch(&h, bad[i], &res), -EINVAL);
        assert_int_equal(res.calls, 0);
        assert_int_equal(h.f->n_requests, 0);
        h_fini(&h);
}

/* Cancelled: the callback never runs, the request is cancelled; freeing
 * the client cancels the rest. */
static void test_ari_cancel(void **state)
{
        struct harness h;
        struct ari_result a = {}, b = {};
        struct acme_ari_req *req;

        h_init(&h);
        h.f->ari = true;
        h.f->hold_prefix = "/ari/";
        h_client(&h);
        assert_int_equal(acme_ari_fetch(h.c, RFC_ID, on_ari, &a, &req), 0);
        assert_int_equal(acme_ari_fetch(h.c, RFC_ID, on_ari, &b, NULL), 0);
        uv_run(&h.loop, UV_RUN_DEFAULT);
        assert_int_equal(h.f->n_held, 1);
        assert_int_equal(b.calls, 1); /* the second was not held */
        acme_ari_cancel(req);
        assert_int_equal(h.f->n_cancelled, 1);
        assert_int_equal(acme_ari_fetch(h.c, RFC_ID, on_ari, &b, NULL), 0);
        acme_ari_cancel(NULL);
        h_fini(&h); /* frees the client with one request parked */
        assert_int_equal(a.calls, 0);
        assert_int_equal(b.calls, 1);
        ari_result_done(&a);
        ari_result_done(&b);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_ari_happy_path),
                cmocka_unit_test(test_ari_for_issued_certificate),
                cmocka_unit_test(test_ari_not_supported),
                cmocka_unit_test(test_ari_unknown_certificate),
                cmocka_unit_test(test_ari_malformed_window),
                cmocka_unit_test(test_ari_rejects_ids),
                cmocka_unit_test(test_ari_cancel),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
