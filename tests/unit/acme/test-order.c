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

/* ---- nonces ----------------------------------------------------------------- */

/* badNonce on several requests (newAccount, newOrder, a challenge, ...):
 * each is resent with the nonce of the error answer, so no newNonce is
 * needed again and the fake never sees a nonce twice. */
static void test_bad_nonce_on_several_requests(void **state)
{
        static const char *const names[] = {"example.com"};
        struct harness h;

        h_init(&h);
        h.f->authz_pending_polls = 1;
        h.f->bad_nonce_at[0] = 1; /* newAccount */
        h.f->bad_nonce_at[1] = 3; /* newOrder (after newAccount's resend) */
        h.f->bad_nonce_at[2] = 4; /* newOrder again */
        h.f->bad_nonce_at[3] = 7; /* the challenge */
        h.f->bad_nonce_at[4] = 9; /* ... */
        assert_int_equal(h_order(&h, names, 1, ACME_CHALLENGE_HTTP01, NULL, NULL), 0);
        h_assert_clean(&h);
        assert_issued(&h, names, 1);
        assert_int_equal(h.f->n_nonce, 1);
        h_fini(&h);
}

/* Five resends at most; then the badNonce problem ends the order. */
static void test_bad_nonce_gives_up(void **state)
{
        static const char *const names[] = {"example.com"};
        struct harness h;

        h_init(&h);
        h.f->bad_nonce_always = 2; /* everything after newAccount */
        assert_int_equal(h_order(&h, names, 1, ACME_CHALLENGE_HTTP01, NULL, NULL), 0);
        assert_int_equal(h.done_calls, 1);
        assert_int_equal(h.done_r, -EPROTO);
        assert_string_equal(acme_problem_short_type(&h.problem), "badNonce");
        assert_string_equal(h.problem.where, "newOrder");
        assert_int_equal(h.problem.status, 400);
        assert_int_equal(h.problem.error, 0);
        assert_int_equal(h.f->n_signed, 1 + 1 + 5);
        assert_null(h.chain);
        h_fini(&h);
}

/* A newNonce answer without Replay-Nonce: three tries, then a clean error. */
static void test_new_nonce_without_nonce(void **state)
{
        static const char *const names[] = {"example.com"};
        struct harness h;

        h_init(&h);
        h.f->nonce_less_new_nonce = true;
        assert_int_equal(h_order(&h, names, 1, ACME_CHALLENGE_HTTP01, NULL, NULL), 0);
        assert_int_equal(h.done_r, -EPROTO);
        assert_string_equal(h.problem.where, "newAccount");
        assert_non_null(strstr(h.problem.detail, "Replay-Nonce"));
        assert_int_equal(h.f->n_nonce, 3);
        assert_int_equal(h.f->n_signed, 0);
        h_fini(&h);
}

/* ---- Retry-After and polling ----------------------------------------------------- */

/* The fake answers pending/processing with Retry-After: 1 and records an
 * error if the client polls earlier (loop time). */
static void test_retry_after_honoured_on_polling(void **state)
{
        static const char *const names[] = {"example.com"};
        struct harness h;

        h_init(&h);
        h.f->retry_after = "1";
        h.f->authz_pending_polls = 2;
        h.f->order_processing_polls = 1;
        assert_int_equal(h_order(&h, names, 1, ACME_CHALLENGE_HTTP01, NULL, NULL), 0);
        h_assert_clean(&h);
        assert_issued(&h, names, 1);
        assert_int_equal(h.f->n_authz_polls, 2);
        assert_int_equal(h.f->n_order_polls, 1);
        h_fini(&h);
}

/* Retry-After as an HTTP-date, relative to the clock the client was given
 * (which is not the machine's). */
static void test_retry_after_http_date(void **state)
{
        static const char *const names[] = {"example.com"};
        struct harness h;

        h_init(&h);
        h.f->retry_after_date_s = 1;
        h.f->authz_pending_polls = 1;
        assert_int_equal(h_order(&h, names, 1, ACME_CHALLENGE_HTTP01, NULL, NULL), 0);
        h_assert_clean(&h);
        assert_issued(&h, names, 1);
        h_fini(&h);
}

/* Without Retry-After: poll_min doubling up to poll_max. */
static void test_backoff_without_retry_after(void **state)
{
        static const char *const names[] = {"example.com"};
        static const uint64_t want[] = {20, 40, 80, 80, 80};
        struct harness h;

        h_init(&h);
        h.cfg.poll_min_ms = 20;
        h.cfg.poll_max_ms = 80;
        h.f->authz_pending_polls = 5;
        assert_int_equal(h_order(&h, names, 1, ACME_CHALLENGE_HTTP01, NULL, NULL), 0);
        h_assert_clean(&h);
        assert_issued(&h, names, 1);
        assert_int_equal(h.f->n_poll_times, 5);
        for (unsigned i = 1; i < 5; i++)
                assert_true(h.f->poll_times[i] - h.f->poll_times[i - 1] >= want[i]);
        h_fini(&h);
}

/* A Retry-After beyond the order deadline fails now, with the delay. */
static void test_retry_after_past_deadline(void **state)
{
        static const char *const names[] = {"example.com"};
        struct harness h;

        h_init(&h);
        h.cfg.order_timeout_ms = 5000;
        h.f->retry_after = "3600";
        h.f->authz_pending_polls = 1;
        assert_int_equal(h_order(&h, names, 1, ACME_CHALLENGE_HTTP01, NULL, NULL), 0);
        assert_int_equal(h.done_r, -ETIMEDOUT);
        assert_int_equal(h.problem.error, -ETIMEDOUT);
        assert_int_equal(h.problem.retry_after_s, 3600);
        assert_int_equal(h.installs, h.removes);
        h_fini(&h);
}

/* A server that never finishes: the poll bound ends it. */
static void test_poll_bound(void **state)
{
        static const char *const names[] = {"example.com"};
        struct harness h;

        h_init(&h);
        h.f->retry_after = "0";
        h.f->authz_pending_polls = 100000;
        assert_int_equal(h_order(&h, names, 1, ACME_CHALLENGE_HTTP01, NULL, NULL), 0);
        assert_int_equal(h.done_r, -ETIMEDOUT);
        assert_non_null(strstr(h.problem.detail, "128 polls"));
        assert_int_equal(h.f->n_authz_polls, 128);
        assert_int_equal(h.installs, h.removes);
        h_fini(&h);
}

/* A request that never comes back: the order deadline cancels it. */
static void test_order_deadline(void **state)
{
        static const char *const names[] = {"example.com"};
        struct harness h;

        h_init(&h);
        h.cfg.order_timeout_ms = 200;
        h.f->hold_prefix = "/authz/";
        h.f->authz_pending_polls = 1;
        assert_int_equal(h_order(&h, names, 1, ACME_CHALLENGE_HTTP01, NULL, NULL), 0);
        assert_int_equal(h.done_r, -ETIMEDOUT);
        assert_non_null(strstr(h.problem.detail, "within"));
        assert_int_equal(h.f->n_cancelled, 1);
        h_assert_clean(&h);
        h_fini(&h);
}

/* ---- problems ----------------------------------------------------------------- */

static void test_rate_limited(void **state)
{
        static const char *const names[] = {"example.com", "www.example.com"};
        struct harness h;

        h_init(&h);
        h.f->rate_limited = true;
        assert_int_equal(h_order(&h, names, 2, ACME_CHALLENGE_HTTP01, NULL, NULL), 0);
        assert_int_equal(h.done_calls, 1);
        assert_int_equal(h.done_r, -EPROTO);
        assert_string_equal(h.problem.type, "urn:ietf:params:acme:error:rateLimited");
        assert_string_equal(acme_problem_short_type(&h.problem), "rateLimited");
        assert_int_equal(h.problem.status, 429);
        assert_int_equal(h.problem.retry_after_s, 3600);
        assert_string_equal(h.problem.where, "newOrder");
        assert_string_equal(h.problem.detail, "too many certificates already issued "
                                              "(example.com: rateLimited: 5 per week)");
        assert_int_equal(h.installs, 0);
        /* Never retried. */
        assert_int_equal(h.f->n_new_order, 1);
        h_assert_clean(&h);
        h_fini(&h);
}

static void test_invalid_challenge(void **state)
{
        static const char *const names[] = {"*.example.org", "example.org"};
        struct harness h;

        h_init(&h);
        h.f->invalid_challenge = true;
        assert_int_equal(h_order(&h, names, 2, ACME_CHALLENGE_DNS01, NULL, NULL), 0);
        assert_int_equal(h.done_r, -EPROTO);
        assert_string_equal(acme_problem_short_type(&h.problem), "incorrectResponse");
        assert_non_null(strstr(h.problem.detail,
                               "Incorrect TXT record \"x\" found at _acme-challenge.example.org"));
        assert_non_null(strstr(h.problem.detail, "example.org is invalid"));
        assert_non_null(h.problem.where);
        assert_int_equal(h.installs, 2);
        h_assert_clean(&h);
        h_fini(&h);
}

static void test_install_failure(void **state)
{
        static const char *const names[] = {"example.com"};
        struct harness h;

        h_init(&h);
        h.install_error = -ENOSPC;
        assert_int_equal(h_order(&h, names, 1, ACME_CHALLENGE_HTTP01, NULL, NULL), 0);
        assert_int_equal(h.done_r, -ENOSPC);
        assert_int_equal(h.problem.error, -ENOSPC);
        assert_string_equal(h.problem.where, "challenge example.com");
        assert_int_equal(h.f->n_challenge_posts, 0);
        h_assert_clean(&h);
        h_fini(&h);
}

static void test_no_http01_offered(void **state)
{
        static const char *const names[] = {"example.com"};
        struct harness h;

        h_init(&h);
        h.f->no_http01 = true;
        assert_int_equal(h_order(&h, names, 1, ACME_CHALLENGE_HTTP01, NULL, NULL), 0);
        assert_int_equal(h.done_r, -EOPNOTSUPP);
        assert_non_null(strstr(h.problem.detail, "no http-01 challenge"));
        h_assert_clean(&h);
        h_fini(&h);
}

static void test_eab_required(void **state)
{
        static const char *const names[] = {"example.com"};
        struct harness h;

        h_init(&h);
        h.f->eab_required = true;
        assert_int_equal(h_order(&h, names, 1, ACME_CHALLENGE_HTTP01, NULL, NULL), 0);
        assert_int_equal(h.done_r, -EOPNOTSUPP);
        assert_string_equal(h.problem.where, "newAccount");
        assert_int_equal(h.f->n_new_account, 0);
        h_fini(&h);
}

/* A chain for another key, missing a name, or with a leaf key that does
 * not decode: refused as malformed, not handed out. */
static void test_bad_certificate_refused(void **state)
{
        static const char *const names[] = {"example.com", "www.example.com"};

        for (int i = 0; i < 3; i++) {
                struct harness h;

                h_init(&h);
                h.f->cert_wrong_key = i == 0;
                h.f->cert_missing_name = i == 1;
                h.f->cert_bad_point = i == 2;
                assert_int_equal(h_order(&h, names, 2, ACME_CHALLENGE_HTTP01, NULL, NULL), 0);
                assert_int_equal(h.done_r, -EBADMSG);
                assert_string_equal(h.problem.where, "certificate");
                assert_null(h.chain);
                assert_null(h.key_pem);
                h_assert_clean(&h);
                h_fini(&h);
        }
}

/* ---- order shapes -------------------------------------------------------------- */

/* orderNotReady on finalize: poll the order, finalize when ready. */
static void test_finalize_order_not_ready(void **state)
{
        static const char *const names[] = {"example.com"};
        struct harness h;

        h_init(&h);
        h.f->finalize_not_ready = true;
        assert_int_equal(h_order(&h, names, 1, ACME_CHALLENGE_HTTP01, NULL, NULL), 0);
        h_assert_clean(&h);
        assert_issued(&h, names, 1);
        assert_int_equal(h.f->n_finalize, 2);
        h_fini(&h);
}

/* An order whose authorizations are already valid: nothing to install. */
static void test_authorizations_already_valid(void **state)
{
        static const char *const names[] = {"example.com", "*.example.com"};
        struct harness h;

        h_init(&h);
        h.f->new_order_ready = true;
        assert_int_equal(h_order(&h, names, 2, ACME_CHALLENGE_DNS01, NULL, NULL), 0);
        h_assert_clean(&h);
        assert_issued(&h, names, 2);
        assert_int_equal(h.installs, 0);
        assert_int_equal(h.f->n_challenge_posts, 0);
        h_fini(&h);
}

/* A given certificate key is the one certified. */
static void test_given_cert_key(void **state)
{
        static const char *const names[] = {"example.com"};
        _cleanup_(acme_key_freep) struct acme_key *ck = NULL, *got = NULL;
        struct harness h;
        struct acme_order_params p = {.names = names, .n_names = 1, .type = ACME_CHALLENGE_HTTP01};

        h_init(&h);
        h_client(&h);
        assert_int_equal(acme_key_generate(&ck), 0);
        p.cert_key = ck;
        assert_int_equal(acme_order_start(h.c, &p, &h_hooks, &h, NULL), 0);
        uv_run(&h.loop, UV_RUN_DEFAULT);
        h_assert_clean(&h);
        assert_int_equal(h.done_r, 0);
        assert_int_equal(acme_cert_matches_key(h.chain, strlen(h.chain), ck), 1);
        assert_int_equal(acme_key_from_pem(h.key_pem, strlen(h.key_pem), &got), 0);
        assert_string_equal(acme_key_jwk(got), acme_key_jwk(ck));
        h_fini(&h);
}

/* ---- profiles and replaces ------------------------------------------------------ */

static void test_profile_sent_only_when_listed(void **state)
{
        static const char *const names[] = {"example.com"};
        struct harness h;

        h_init(&h);
        h.f->profiles[0] = "classic";
        h.f->profiles[1] = "shortlived";
        h_client(&h);
        assert_false(acme_client_has_profile(h.c, "shortlived")); /* no directory yet */
        assert_int_equal(h_order(&h, names, 1, ACME_CHALLENGE_HTTP01, "shortlived", NULL), 0);
        h_assert_clean(&h);
        assert_int_equal(h.done_r, 0);
        assert_string_equal(h.f->new_order_profile, "shortlived");
        assert_true(acme_client_has_profile(h.c, "shortlived"));
        assert_false(acme_client_has_profile(h.c, "tlsserver"));

        assert_int_equal(h_order(&h, names, 1, ACME_CHALLENGE_HTTP01, "tlsserver", NULL), 0);
        h_assert_clean(&h);
        assert_int_equal(h.done_r, 0);
        assert_null(h.f->new_order_profile);
        h_fini(&h);

        /* A CA without meta.profiles gets none. */
        h_init(&h);
        assert_int_equal(h_order(&h, names, 1, ACME_CHALLENGE_HTTP01, "shortlived", NULL), 0);
        assert_int_equal(h.done_r, 0);
        assert_null(h.f->new_order_profile);
        h_assert_clean(&h);
        h_fini(&h);
}

#define CERT_ID "aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE"

static void test_replaces_sent(void **state)
{
        static const char *const names[] = {"example.com"};
        struct harness h;

        h_init(&h);
        assert_int_equal(h_order(&h, names, 1, ACME_CHALLENGE_HTTP01, NULL, CERT_ID), 0);
        h_assert_clean(&h);
        assert_int_equal(h.done_r, 0);
        assert_string_equal(h.f->new_order_replaces, CERT_ID);
        assert_int_equal(h.f->n_new_order, 1);
        h_fini(&h);
}

/* A server that refuses the replaces field (400 malformed, or 409
 * alreadyReplaced): one more newOrder without it. */
static void test_replaces_rejected_retried_without(void **state)
{
        static const char *const names[] = {"example.com"};
        static const int rejects[] = {400, 409};

        for (size_t i = 0; i < ELEMENTSOF(rejects); i++) {
                struct harness h;

                h_init(&h);
                h.f->replaces_reject = rejects[i];
                assert_int_equal(h_order(&h, names, 1, ACME_CHALLENGE_HTTP01, NULL, CERT_ID), 0);
                h_assert_clean(&h);
                assert_int_equal(h.done_r, 0);
                assert_int_equal(h.f->n_new_order, 2);
                assert_int_equal(h.f->new_orders_with_replaces, 1);
                assert_null(h.f->new_order_replaces);
                h_fini(&h);
        }
}

/* ---- account ------------------------------------------------------------------ */

/* A stored account URL skips newAccount. */
static void test_known_account_skips_registration(void **state)
{
        static const char *const names[] = {"example.com"};
        struct harness h;

        h_init(&h);
        h.f->account_url = strdup(FAKE_BASE "/acct/7");
        h.cfg.account_url = FAKE_BASE "/acct/7";
        assert_int_equal(h_order(&h, names, 1, ACME_CHALLENGE_HTTP01, NULL, NULL), 0);
        h_assert_clean(&h);
        assert_int_equal(h.done_r, 0);
        assert_int_equal(h.f->n_new_account, 0);
        assert_int_equal(h.on_account_calls, 0);
        h_fini(&h);
}

/* The CA forgot the account mid-order (or never knew the stored URL):
 * register again, tell the owner, resend. */
static void test_account_does_not_exist_registers_again(void **state)
{
        static const char *const names[] = {"example.com"};
        struct harness h;

        h_init(&h);
        h.f->forget_account_at = 4; /* a POST-as-GET of the authorization */
        assert_int_equal(h_order(&h, names, 1, ACME_CHALLENGE_HTTP01, NULL, NULL), 0);
        h_assert_clean(&h);
        assert_int_equal(h.done_r, 0);
        assert_int_equal(h.f->n_new_account, 2);
        assert_int_equal(h.on_account_calls, 2);
        assert_string_equal(h.account_url, FAKE_BASE "/acct/2");
        h_fini(&h);

        h_init(&h);
        h.cfg.account_url = FAKE_BASE "/acct/99"; /* unknown to the CA */
        assert_int_equal(h_order(&h, names, 1, ACME_CHALLENGE_HTTP01, NULL, NULL), 0);
        h_assert_clean(&h);
        assert_int_equal(h.done_r, 0);
        assert_int_equal(h.f->n_new_account, 1);
        assert_int_equal(h.on_account_calls, 1);
        assert_string_equal(h.account_url, FAKE_BASE "/acct/1");
        h_fini(&h);
}

/* ---- transport ------------------------------------------------------------------ */

/* 503 with Retry-After: resent after the delay. */
static void test_busy_server_retried(void **state)
{
        static const char *const names[] = {"example.com"};

        for (unsigned at = 1; at <= 8; at++) {
                struct harness h;

                h_init(&h);
                h.f->busy_at = at;
                assert_int_equal(h_order(&h, names, 1, ACME_CHALLENGE_HTTP01, NULL, NULL), 0);
                h_assert_clean(&h);
                assert_int_equal(h.done_r, 0);
                h_fini(&h);
        }
}

/* A connection reset on a POST-as-GET is resent; on newOrder (not
 * idempotent) it ends the order with the transport error. */
static void test_transport_errors(void **state)
{
        static const char *const names[] = {"example.com"};
        struct harness h;

        h_init(&h);
        h.f->transport_error_prefix = "/authz/";
        h.f->transport_error = -ECONNRESET;
        assert_int_equal(h_order(&h, names, 1, ACME_CHALLENGE_HTTP01, NULL, NULL), 0);
        h_assert_clean(&h);
        assert_int_equal(h.done_r, 0);
        h_fini(&h);

        h_init(&h);
        h.f->transport_error_prefix = "/order";
        h.f->transport_error = -ECONNRESET;
        assert_int_equal(h_order(&h, names, 1, ACME_CHALLENGE_HTTP01, NULL, NULL), 0);
        assert_int_equal(h.done_r, -ECONNRESET);
        assert_int_equal(h.problem.error, -ECONNRESET);
        assert_string_equal(h.problem.where, "newOrder");
        h_assert_clean(&h);
        h_fini(&h);
}

/* ---- cancellation ---------------------------------------------------------------- */

struct cancel_ctx {
        struct harness *h;
        uv_timer_t t;
        unsigned installs_seen, removes_seen;
        bool free_client;
};

static void on_cancel_timer(uv_timer_t *t)
{
        struct cancel_ctx *x = t->data;

        x->installs_seen = x->h->installs;
        x->removes_seen = x->h->removes;
        if (x->free_client) {
                acme_client_free(x->h->c);
                x->h->c = NULL;
        } else {
                acme_order_cancel(x->h->o);
        }
        uv_close((uv_handle_t *)t, NULL);
}

/* Cancel while a challenge POST is in flight, while waiting to poll, and
 * while the directory is being fetched: installed challenges are removed,
 * done never runs, the request in flight is cancelled. */
static void test_cancel_mid_order(void **state)
{
        static const char *const names[] = {"*.example.org", "example.org"};
        static const struct {
                const char *hold;
                const char *retry_after;
                unsigned installs;
                unsigned cancelled;
        } cases[] = {
                {"/chall/", NULL, 2, 1},
                {NULL, "5", 2, 0},
                {"/dir", NULL, 0, 0}, /* the directory GET is the client's, not the order's */
                {"/finalize/", NULL, 2, 1},
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                const struct acme_order_params p = {
                        .names = names, .n_names = 2, .type = ACME_CHALLENGE_DNS01};
                struct harness h;
                struct cancel_ctx x = {.h = &h};

                h_init(&h);
                h.f->hold_prefix = cases[i].hold;
                h.f->retry_after = cases[i].retry_after;
                h.f->authz_pending_polls = 1;
                h_client(&h);
                assert_int_equal(acme_order_start(h.c, &p, &h_hooks, &h, &h.o), 0);
                uv_timer_init(&h.loop, &x.t);
                x.t.data = &x;
                uv_timer_start(&x.t, on_cancel_timer, 100, 0);
                uv_run(&h.loop, UV_RUN_DEFAULT);
                assert_int_equal(x.installs_seen, cases[i].installs);
                /* At finalize they were already removed (all valid). */
                if (!cases[i].hold || strcmp(cases[i].hold, "/finalize/") != 0)
                        assert_int_equal(x.removes_seen, 0);
                assert_int_equal(h.done_calls, 0);
                assert_int_equal(h.f->n_cancelled, cases[i].cancelled);
                h_assert_clean(&h);
                h_fini(&h);
        }
}

/* Freeing the client with orders in flight cancels them (hooks->remove
 * runs, done does not). */
static void test_client_free_cancels_orders(void **state)
{
        static const char *const a[] = {"a.example.com"}, *const b[] = {"b.example.com"};
        struct harness h;
        struct cancel_ctx x = {.h = &h, .free_client = true};

        h_init(&h);
        h.f->retry_after = "5";
        h.f->authz_pending_polls = 1;
        h_client(&h);
        assert_int_equal(acme_order_start(h.c,
                                          &(struct acme_order_params){.names = a, .n_names = 1},
                                          &h_hooks, &h, NULL),
                         0);
        assert_int_equal(acme_order_start(h.c,
                                          &(struct acme_order_params){.names = b, .n_names = 1},
                                          &h_hooks, &h, NULL),
                         0);
        uv_timer_init(&h.loop, &x.t);
        x.t.data = &x;
        uv_timer_start(&x.t, on_cancel_timer, 100, 0);
        uv_run(&h.loop, UV_RUN_DEFAULT);
        assert_int_equal(x.installs_seen, 2);
        assert_int_equal(h.done_calls, 0);
        h_assert_clean(&h);
        /* One directory fetch and one registration served both orders. */
        assert_int_equal(h.f->n_dir, 1);
        assert_int_equal(h.f->n_new_account, 1);
        h_fini(&h);
}

/* done may free the client. */
static void test_free_client_in_done(void **state)
{
        static const char *const names[] = {"example.com"};
        struct harness h;

        h_init(&h);
        h.free_client_in_done = true;
        assert_int_equal(h_order(&h, names, 1, ACME_CHALLENGE_HTTP01, NULL, NULL), 0);
        assert_int_equal(h.done_r, 0);
        assert_null(h.c);
        h_assert_clean(&h);
        h_fini(&h);
}

static void test_start_rejects(void **state)
{
        static const char *const dup[] = {"a.example", "A.example"};
        static const char *const wild[] = {"*.example"};
        static const char *const bad[] = {
                "a..example", "-",           "a-.example", "-a.example", "a b", "*",
                "*.",         "a.*.example", "example.",   ".example",   ""};
        const char *many[101];
        char bufs[101][16];
        struct harness h;
        struct acme_order *o = (struct acme_order *)0x1;

        h_init(&h);
        h_client(&h);
        for (size_t i = 0; i < 101; i++) {
                snprintf(bufs[i], sizeof(bufs[i]), "n%zu.example", i);
                many[i] = bufs[i];
        }
#define START(names_, n_, type_, profile_, replaces_)                                              \
        acme_order_start(h.c,                                                                      \
                         &(struct acme_order_params){.names = names_,                              \
                                                     .n_names = n_,                                \
                                                     .type = type_,                                \
                                                     .profile = profile_,                          \
                                                     .replaces = replaces_},                       \
                         &h_hooks, &h, &o)
        assert_int_equal(START(dup, 2, ACME_CHALLENGE_HTTP01, NULL, NULL), -EINVAL);
        assert_int_equal(START(wild, 1, ACME_CHALLENGE_HTTP01, NULL, NULL), -EINVAL);
        for (size_t i = 0; i < ELEMENTSOF(bad); i++)
                assert_int_equal(START(&bad[i], 1, ACME_CHALLENGE_DNS01, NULL, NULL), -EINVAL);
        assert_int_equal(START(many, 101, ACME_CHALLENGE_HTTP01, NULL, NULL), -EINVAL);
        assert_int_equal(START(many, 0, ACME_CHALLENGE_HTTP01, NULL, NULL), -EINVAL);
        assert_int_equal(START(many, 1, (enum acme_challenge_type)7, NULL, NULL), -EINVAL);
        assert_int_equal(START(many, 1, ACME_CHALLENGE_HTTP01, "", NULL), -EINVAL);
        assert_int_equal(START(many, 1, ACME_CHALLENGE_HTTP01, NULL, "no-dot"), -EINVAL);
        assert_int_equal(START(many, 1, ACME_CHALLENGE_HTTP01, NULL, "a.b/c"), -EINVAL);
        assert_ptr_equal(o, (struct acme_order *)0x1);
        /* 100 is fine; nothing ran synchronously. */
        assert_int_equal(START(many, 100, ACME_CHALLENGE_HTTP01, NULL, NULL), 0);
        assert_int_equal(h.f->n_requests, 0);
        assert_int_equal(h.done_calls, 0);
        acme_order_cancel(o);
#undef START
        h_fini(&h);
}

/* ---- malformed answers ---------------------------------------------------------- */

struct mutated_run {
        unsigned requests; /* requests the fake saw */
        bool mutated;      /* the mutation applied */
        int r;
};

/* One order (wildcard + apex, dns-01, profile, replaces, polls) with the
 * answer to request @at mutated: done runs exactly once, with a clean
 * problem on failure; every installed challenge is removed; the loop
 * closes. */
static void run_mutated(enum fake_mutation m, unsigned at, unsigned member, unsigned value,
                        struct mutated_run *ret)
{
        static const char *const names[] = {"*.example.org", "example.org"};
        struct harness h;

        h_init(&h);
        h.cfg.order_timeout_ms = 3000;
        h.f->authz_pending_polls = 1;
        h.f->order_processing_polls = 1;
        h.f->profiles[0] = "p";
        h.f->retry_after = "0";
        h.f->mutate_at = at;
        h.f->mutation = m;
        h.f->mutate_member = member;
        h.f->mutate_value = value;
        assert_int_equal(h_order(&h, names, 2, ACME_CHALLENGE_DNS01, "p", CERT_ID), 0);
        if (h.done_calls != 1 || h.installs != h.removes || h.f->n_pub != 0)
                print_message("# mutation %d at %u member %u value %u: done %u, installs %u, "
                              "removes %u\n",
                              m, at, member, value, h.done_calls, h.installs, h.removes);
        assert_int_equal(h.done_calls, 1);
        assert_int_equal(h.installs, h.removes);
        assert_int_equal(h.f->n_pub, 0);
        if (h.done_r < 0) {
                assert_non_null(h.problem.where);
                assert_true(h.problem.detail || h.problem.type);
                assert_null(h.chain);
                assert_null(h.key_pem);
                /* A request never failed on a timer: nothing waited for the
                 * deadline because of a malformed answer. */
                assert_int_not_equal(h.done_r, -ETIMEDOUT);
        } else {
                assert_issued(&h, names, 2);
        }
        ret->requests = h.f->n_requests;
        ret->mutated = h.f->mutated;
        ret->r = h.done_r;
        h_fini(&h);
}

static void test_malformed_answers_everywhere(void **state)
{
        struct mutated_run base, run;
        unsigned runs = 0, failures = 0;

        run_mutated(FAKE_MUT_NONE, 0, 0, 0, &base);
        assert_int_equal(base.r, 0);
        for (unsigned at = 1; at <= base.requests; at++) {
                for (int m = FAKE_MUT_TRUNCATE; m < _FAKE_MUT_MAX; m++) {
                        if (m == FAKE_MUT_MEMBER)
                                continue;
                        run_mutated(m, at, 0, 0, &run);
                        runs++;
                        failures += run.r < 0;
                }
                for (unsigned member = 0;; member++) {
                        for (unsigned value = 0; value < 6; value++) {
                                run_mutated(FAKE_MUT_MEMBER, at, member, value, &run);
                                runs++;
                                failures += run.r < 0;
                        }
                        if (!run.mutated)
                                break;
                }
        }
        print_message("# %u mutated orders over %u requests, %u failed cleanly, the rest "
                      "succeeded\n",
                      runs, base.requests, failures);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_http01_happy_path),
                cmocka_unit_test(test_dns01_wildcard_and_apex),
                cmocka_unit_test(test_bad_nonce_on_several_requests),
                cmocka_unit_test(test_bad_nonce_gives_up),
                cmocka_unit_test(test_new_nonce_without_nonce),
                cmocka_unit_test(test_retry_after_honoured_on_polling),
                cmocka_unit_test(test_retry_after_http_date),
                cmocka_unit_test(test_backoff_without_retry_after),
                cmocka_unit_test(test_retry_after_past_deadline),
                cmocka_unit_test(test_poll_bound),
                cmocka_unit_test(test_order_deadline),
                cmocka_unit_test(test_rate_limited),
                cmocka_unit_test(test_invalid_challenge),
                cmocka_unit_test(test_install_failure),
                cmocka_unit_test(test_no_http01_offered),
                cmocka_unit_test(test_eab_required),
                cmocka_unit_test(test_bad_certificate_refused),
                cmocka_unit_test(test_finalize_order_not_ready),
                cmocka_unit_test(test_authorizations_already_valid),
                cmocka_unit_test(test_given_cert_key),
                cmocka_unit_test(test_profile_sent_only_when_listed),
                cmocka_unit_test(test_replaces_sent),
                cmocka_unit_test(test_replaces_rejected_retried_without),
                cmocka_unit_test(test_known_account_skips_registration),
                cmocka_unit_test(test_account_does_not_exist_registers_again),
                cmocka_unit_test(test_busy_server_retried),
                cmocka_unit_test(test_transport_errors),
                cmocka_unit_test(test_cancel_mid_order),
                cmocka_unit_test(test_client_free_cancels_orders),
                cmocka_unit_test(test_free_client_in_done),
                cmocka_unit_test(test_start_rejects),
                cmocka_unit_test(test_malformed_answers_everywhere),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
