/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* The harness of the client tests: a real libuv loop, the fake ACME
 * server, a client, and order hooks that publish challenges to the fake
 * and record what happened. Include after cmocka.h. */

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "acme/client.h"
#include "acme/jws.h"
#include "fake-acme.h"

#define TEST_CLOCK 1800000000 /* 2027-01-15, the harness's Unix time */

struct harness {
        uv_loop_t loop;
        int64_t clock;
        struct acme_key *key;
        struct fake_acme *f;
        struct acme_client *c;
        struct acme_client_config cfg;
        struct acme_order *o;

        unsigned done_calls;
        int done_r;
        char *chain, *key_pem;
        struct acme_problem problem;

        unsigned installs, removes, live;
        int install_error;      /* install returns this (0: publish) */
        char dns_values[8][64]; /* what install got, in order */
        unsigned n_dns_values;
        unsigned on_account_calls;
        char *account_url;
        bool free_client_in_done;    /* acme_client_free from inside done */
        bool free_client_in_account; /* ... from inside on_account */
};

static inline int64_t h_now(void *ud)
{
        return *(int64_t *)ud;
}

static inline void h_on_account(void *ud, const char *url)
{
        struct harness *h = ud;

        h->on_account_calls++;
        free(h->account_url);
        h->account_url = strdup(url);
        if (h->free_client_in_account) {
                acme_client_free(h->c);
                h->c = NULL;
        }
}

static inline int h_install(void *ud, const struct acme_challenge *ch)
{
        struct harness *h = ud;

        if (h->install_error)
                return h->install_error;
        h->installs++;
        h->live++;
        if (ch->dns_value && h->n_dns_values < 8)
                snprintf(h->dns_values[h->n_dns_values++], 64, "%s", ch->dns_value);
        return fake_publish(h->f, ch);
}

static inline void h_remove(void *ud, const struct acme_challenge *ch)
{
        struct harness *h = ud;

        h->removes++;
        h->live--;
        fake_unpublish(h->f, ch);
}

static inline void h_done(void *ud, int r, struct acme_order_result *res)
{
        struct harness *h = ud;

        h->done_calls++;
        h->done_r = r;
        h->o = NULL;
        free(h->chain);
        free(h->key_pem);
        h->chain = res->chain_pem;
        res->chain_pem = NULL;
        h->key_pem = res->key_pem;
        res->key_pem = NULL;
        acme_problem_done(&h->problem);
        h->problem = res->problem;
        res->problem = (struct acme_problem){};
        if (h->free_client_in_done) {
                acme_client_free(h->c);
                h->c = NULL;
        }
}

static const struct acme_order_hooks h_hooks = {
        .install = h_install,
        .remove = h_remove,
        .done = h_done,
};

/* Loop, key, fake; the client comes from h_client() so tests can set
 * knobs and config first. */
static inline void h_init(struct harness *h)
{
        memset(h, 0, sizeof(*h));
        assert_int_equal(uv_loop_init(&h->loop), 0);
        h->clock = TEST_CLOCK;
        assert_int_equal(acme_key_generate(&h->key), 0);
        h->f = fake_acme_new(&h->loop, h->key, &h->clock);
        h->cfg = (struct acme_client_config){
                .loop = &h->loop,
                .http = &fake_acme_ops,
                .http_transport = h->f,
                .directory_url = FAKE_DIR_URL,
                .account_key = h->key,
                .email = "ops@example.net",
                .now = h_now,
                .now_ud = &h->clock,
                .on_account = h_on_account,
                .ud = h,
                .order_timeout_ms = 20000,
                .poll_min_ms = 1,
                .poll_max_ms = 4,
        };
}

static inline void h_client(struct harness *h)
{
        assert_int_equal(acme_client_new(&h->cfg, &h->c), 0);
}

/* Start an order and run the loop until nothing is left to do. */
static inline int h_order(struct harness *h, const char *const *names, size_t n,
                          enum acme_challenge_type type, const char *profile, const char *replaces)
{
        const struct acme_order_params p = {
                .names = names,
                .n_names = n,
                .type = type,
                .profile = profile,
                .replaces = replaces,
        };
        int r;

        if (!h->c)
                h_client(h);
        r = acme_order_start(h->c, &p, &h_hooks, h, &h->o);
        if (r < 0)
                return r;
        uv_run(&h->loop, UV_RUN_DEFAULT);
        return 0;
}

static inline void h_print_errors(const struct harness *h)
{
        for (unsigned i = 0; i < h->f->n_errors; i++)
                print_message("# fake: %s\n", h->f->errors[i]);
}

/* Free everything; the loop must close cleanly (no handle left). */
static inline void h_fini(struct harness *h)
{
        acme_client_free(h->c);
        h->c = NULL;
        fake_acme_free(h->f);
        uv_run(&h->loop, UV_RUN_DEFAULT);
        assert_int_equal(uv_loop_close(&h->loop), 0);
        acme_key_free(h->key);
        free(h->chain);
        free(h->key_pem);
        free(h->account_url);
        acme_problem_done(&h->problem);
}

/* The fake saw nothing wrong and every installed challenge was removed. */
static inline void h_assert_clean(const struct harness *h)
{
        h_print_errors(h);
        assert_int_equal(h->f->n_errors, 0);
        assert_int_equal(h->installs, h->removes);
        assert_int_equal(h->f->n_pub, 0);
}
