/* SPDX-License-Identifier: Apache-2.0 */
/* The ACME client object: its timer, directory, account, nonce pool and
 * the request layer every order and ARI request goes through (JWS
 * signing, badNonce and 503 resends, accountDoesNotExist). */
#include "acme/client.h"

#include <assert.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "acme/client-internal.h"
#include "acme/jws.h"
#include "common/list.h"
#include "common/log.h"
#include "common/macros.h"

/* ---- clock and wakes -------------------------------------------------- */

int64_t acme__now(const struct acme_client *c)
{
        return c->now ? c->now(c->now_ud) : (int64_t)time(NULL);
}

static void on_timer(uv_timer_t *t);

static void timer_rearm(struct acme_client *c)
{
        uint64_t now;

        if (c->freed)
                return;
        if (!c->wakes) {
                uv_timer_stop(&c->timer);
                return;
        }
        now = uv_now(c->loop);
        uv_timer_start(&c->timer, on_timer, c->wakes->at > now ? c->wakes->at - now : 0, 0);
}

void acme__wake_arm(struct acme_client *c, struct acme__wake *w, uint64_t delay_ms)
{
        struct acme__wake *p;

        if (w->armed)
                LIST_REMOVE(c->wakes, w);
        w->at = uv_now(c->loop) + MIN(delay_ms, UINT64_MAX / 2);
        w->seq = ++c->wake_seq;
        w->armed = true;
        /* Sorted, and after the wakes due at the same time (FIFO). */
        if (!c->wakes || w->at < c->wakes->at) {
                LIST_PREPEND(c->wakes, w);
        } else {
                for (p = c->wakes; p->next && p->next->at <= w->at; p = p->next)
                        ;
                w->prev = p;
                w->next = p->next;
                if (p->next)
                        p->next->prev = w;
                p->next = w;
        }
        timer_rearm(c);
}

void acme__wake_disarm(struct acme_client *c, struct acme__wake *w)
{
        if (!w->armed)
                return;
        LIST_REMOVE(c->wakes, w);
        w->armed = false;
        timer_rearm(c);
}

static void on_timer(uv_timer_t *t)
{
        struct acme_client *c = container_of(t, struct acme_client, timer);
        uint64_t now = uv_now(c->loop), last = c->wake_seq;

        /* Fire what is due, one at a time from the head: a fired wake may
         * disarm others, cancel orders or free the client. Wakes armed
         * while firing wait for the next loop turn even with delay 0, so a
         * server answering "retry now" cannot pin the loop here. */
        for (;;) {
                struct acme__wake *w = c->wakes;

                while (w && w->at <= now && w->seq > last)
                        w = w->next;
                if (c->freed || !w || w->at > now)
                        break;
                LIST_REMOVE(c->wakes, w);
                w->armed = false;
                w->fire(w);
        }
        timer_rearm(c);
}

/* ---- nonce pool ------------------------------------------------------- */

static void nonce_put(struct acme_client *c, const char *v)
{
        char *n;

        if (!acme__nonce_ok(v))
                return;
        n = strdup(v);
        if (!n)
                return; /* a nonce is an optimisation; newNonce gets another */
        if (c->n_nonces == ACME_NONCE_POOL_MAX) {
                free(c->nonces[0]);
                memmove(c->nonces, c->nonces + 1, (ACME_NONCE_POOL_MAX - 1) * sizeof(char *));
                c->n_nonces--;
        }
        c->nonces[c->n_nonces++] = n;
}

/* The newest nonce: the least likely to have expired on the server. */
static char *nonce_take(struct acme_client *c)
{
        return c->n_nonces ? c->nonces[--c->n_nonces] : NULL;
}

/* ---- the request layer ------------------------------------------------ */

const char *acme__call_state_str(enum acme__call_state s)
{
        static const char *const names[_ACME_CALL_ST_MAX] = {
                [ACME_CALL_ST_IDLE] = "idle",
                [ACME_CALL_ST_WAIT_DIR] = "wait-directory",
                [ACME_CALL_ST_WAIT_ACCOUNT] = "wait-account",
                [ACME_CALL_ST_NONCE] = "nonce",
                [ACME_CALL_ST_SEND] = "send",
                [ACME_CALL_ST_BACKOFF] = "backoff",
                [ACME_CALL_ST_FAILING] = "failing",
        };

        return (unsigned)s < _ACME_CALL_ST_MAX ? names[s] : "?";
}

#define B(s) (1u << (s))
/* Which states a call may move to from each state. */
static const unsigned call_next[_ACME_CALL_ST_MAX] = {
        [ACME_CALL_ST_IDLE] = B(ACME_CALL_ST_WAIT_DIR) | B(ACME_CALL_ST_WAIT_ACCOUNT) |
                              B(ACME_CALL_ST_NONCE) | B(ACME_CALL_ST_SEND) |
                              B(ACME_CALL_ST_BACKOFF) | B(ACME_CALL_ST_FAILING),
        [ACME_CALL_ST_WAIT_DIR] = B(ACME_CALL_ST_IDLE),
        [ACME_CALL_ST_WAIT_ACCOUNT] = B(ACME_CALL_ST_IDLE),
        [ACME_CALL_ST_NONCE] = B(ACME_CALL_ST_IDLE),
        [ACME_CALL_ST_SEND] = B(ACME_CALL_ST_IDLE),
        [ACME_CALL_ST_BACKOFF] = B(ACME_CALL_ST_IDLE),
        [ACME_CALL_ST_FAILING] = B(ACME_CALL_ST_IDLE),
};

static void call_set_state(struct acme__call *call, enum acme__call_state next)
{
        if (call->state == next)
                return;
        assert(call_next[call->state] & B(next));
        log_debug("acme: request %s: %s -> %s", strempty(call->where),
                  acme__call_state_str(call->state), acme__call_state_str(next));
        call->state = next;
}

static void call_step(struct acme__call *call);

/* Park @call at the end of @list: waiters resume in the order they came. */
static void park(struct acme__call **list, struct acme__call *call)
{
        struct acme__call *p = *list;

        if (!p) {
                LIST_PREPEND(*list, call);
                return;
        }
        while (p->next)
                p = p->next;
        call->prev = p;
        call->next = NULL;
        p->next = call;
}

static void call_finish_failure(struct acme__call *call)
{
        int r = call->fail_r;

        call_set_state(call, ACME_CALL_ST_IDLE);
        call->fail_r = 0;
        if (!call->problem.where && call->where)
                call->problem.where = strdup(call->where);
        call->done(call, r, NULL, NULL);
}

static void on_call_wake(struct acme__wake *w)
{
        struct acme__call *call = container_of(w, struct acme__call, wake);

        if (call->state == ACME_CALL_ST_FAILING) {
                call_finish_failure(call);
        } else {
                assert(call->state == ACME_CALL_ST_BACKOFF);
                call_set_state(call, ACME_CALL_ST_IDLE);
                call_step(call);
        }
}

/* Fail from the next loop turn: the owner never sees done inside its own
 * call (acme_order_start, a step of its state machine). */
static void call_defer_failure(struct acme__call *call, int r)
{
        call->fail_r = r;
        call_set_state(call, ACME_CALL_ST_FAILING);
        acme__wake_arm(call->c, &call->wake, 0);
}

static void call_backoff(struct acme__call *call, uint64_t delay_ms)
{
        call_set_state(call, ACME_CALL_ST_BACKOFF);
        acme__wake_arm(call->c, &call->wake, delay_ms);
}

void acme__call_init(struct acme__call *call, struct acme_client *c, acme__call_done_cb *done)
{
        *call = (struct acme__call){.c = c, .done = done, .needs_dir = true};
        call->wake.fire = on_call_wake;
}

static int problem_vset(struct acme_problem *p, int r, const char *fmt, va_list ap) _printf_(3, 0);
static int problem_vset(struct acme_problem *p, int r, const char *fmt, va_list ap)
{
        _cleanup_free_ char *d = NULL;

        if (vasprintf(&d, fmt, ap) < 0)
                d = NULL;
        free(p->detail);
        p->detail = d ? acme__sanitize(d, ACME_DETAIL_MAX) : NULL;
        p->error = r == -EPROTO ? 0 : r;
        return r;
}

int acme__call_fail(struct acme__call *call, int r, const char *fmt, ...)
{
        va_list ap;

        va_start(ap, fmt);
        problem_vset(&call->problem, r, fmt, ap);
        va_end(ap);
        call->fail_r = r;
        return r;
}

void acme__call_clear(struct acme__call *call)
{
        struct acme_client *c = call->c;

        if (call->http) {
                c->http->cancel(c->transport, call->http);
                call->http = NULL;
        }
        if (call->state == ACME_CALL_ST_WAIT_DIR)
                LIST_REMOVE(c->dir_waiters, call);
        else if (call->state == ACME_CALL_ST_WAIT_ACCOUNT)
                LIST_REMOVE(c->acct_waiters, call);
        acme__wake_disarm(c, &call->wake);
        free(call->url);
        free(call->payload);
        free(call->where);
        free(call->nonce);
        free(call->kid);
        acme_problem_done(&call->problem);
        acme__call_init(call, c, call->done);
}

int acme__call_target(struct acme__call *call, const char *url, const char *payload,
                      const char *where_fmt, ...)
{
        va_list ap;
        int k;

        acme__call_clear(call);
        va_start(ap, where_fmt);
        k = vasprintf(&call->where, where_fmt, ap);
        va_end(ap);
        if (k < 0)
                call->where = NULL;
        call->url = url ? strdup(url) : NULL;
        call->payload = payload ? strdup(payload) : NULL;
        if (k < 0 || (url && !call->url) || (payload && !call->payload))
                return acme__call_fail(call, -ENOMEM, "out of memory");
        return 0;
}

void acme__call_start(struct acme__call *call)
{
        assert(call->state == ACME_CALL_ST_IDLE && call->done);
        call_step(call);
}

/* ---- directory --------------------------------------------------------- */

static void dir_clear(struct acme__directory *d)
{
        free(d->new_nonce);
        free(d->new_account);
        free(d->new_order);
        free(d->renewal_info);
        for (size_t i = 0; i < d->n_profiles; i++)
                free(d->profiles[i]);
        free(d->profiles);
        *d = (struct acme__directory){};
}

static bool dir_usable(const struct acme_client *c)
{
        return c->dir.loaded && !c->dir.stale &&
               acme__now(c) - c->dir.fetched_at < ACME_DIR_MAX_AGE_S;
}

static bool profile_name_ok(const char *s)
{
        size_t n = strnlen(s, ACME_PROFILE_NAME_MAX + 1);

        if (n == 0 || n > ACME_PROFILE_NAME_MAX)
                return false;
        for (size_t i = 0; i < n; i++)
                if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f)
                        return false;
        return true;
}

static int dir_parse(struct acme_client *c, struct acme__call *call, const json_t *o)
{
        struct acme__directory d = {};
        const char *nn = acme__json_str(o, "newNonce"), *na = acme__json_str(o, "newAccount"),
                   *no = acme__json_str(o, "newOrder"), *ri = acme__json_str(o, "renewalInfo");
        const json_t *meta = json_object_get(o, "meta");
        const json_t *profiles = json_object_get(meta, "profiles");
        const char *key;
        json_t *value;

        if (!acme__url_ok(nn) || !acme__url_ok(na) || !acme__url_ok(no))
                return acme__call_fail(call, -EBADMSG,
                                       "the directory lacks usable newNonce, newAccount and "
                                       "newOrder URLs");
        d.new_nonce = strdup(nn);
        d.new_account = strdup(na);
        d.new_order = strdup(no);
        /* A malformed renewalInfo means no ARI, not an unusable CA. */
        d.renewal_info = acme__url_ok(ri) ? strdup(ri) : NULL;
        if (!d.new_nonce || !d.new_account || !d.new_order || (acme__url_ok(ri) && !d.renewal_info))
                goto nomem;
        if (json_is_object(profiles)) {
                d.profiles = calloc(MIN(json_object_size(profiles), (size_t)ACME_PROFILES_MAX),
                                    sizeof(char *));
                if (!d.profiles && json_object_size(profiles) > 0)
                        goto nomem;
                json_object_foreach((json_t *)profiles, key, value)
                {
                        if (d.n_profiles == ACME_PROFILES_MAX)
                                break;
                        if (!profile_name_ok(key))
                                continue;
                        d.profiles[d.n_profiles] = strdup(key);
                        if (!d.profiles[d.n_profiles])
                                goto nomem;
                        d.n_profiles++;
                }
        }
        d.eab_required = json_is_true(json_object_get(meta, "externalAccountRequired"));
        d.loaded = true;
        d.fetched_at = acme__now(c);
        dir_clear(&c->dir);
        c->dir = d;
        return 0;
nomem:
        dir_clear(&d);
        return acme__call_fail(call, -ENOMEM, "out of memory");
}

/* Hand @call's failure to every call parked in @list, from the next loop
 * turn (each gets its own copy of the problem). */
static void fail_waiters(struct acme__call **list, const struct acme__call *from, int r)
{
        struct acme__call *w;

        while ((w = *list)) {
                LIST_REMOVE(*list, w);
                call_set_state(w, ACME_CALL_ST_IDLE);
                acme_problem_done(&w->problem);
                if (acme__problem_copy(&w->problem, &from->problem) < 0)
                        w->problem.error = -ENOMEM;
                if (!w->problem.where && from->where)
                        w->problem.where = strdup(from->where);
                call_defer_failure(w, r);
        }
}

static void wake_waiters(struct acme_client *c, struct acme__call **list)
{
        struct acme__call *w;

        /* call_step never completes a call synchronously, so nothing here
         * can free the client or the other waiters. */
        while (!c->freed && (w = *list)) {
                LIST_REMOVE(*list, w);
                call_set_state(w, ACME_CALL_ST_IDLE);
                call_step(w);
        }
}

static void on_directory(struct acme__call *call, int r, const struct acme_http_response *resp,
                         json_t *json)
{
        struct acme_client *c = call->c;

        c->dir_fetching = false;
        if (r >= 0)
                r = dir_parse(c, call, json);
        json_decref(json);
        if (r < 0) {
                fail_waiters(&c->dir_waiters, call, r);
                acme__call_clear(call);
                return;
        }
        acme__call_clear(call);
        wake_waiters(c, &c->dir_waiters);
}

static void start_directory(struct acme_client *c)
{
        struct acme__call *call = &c->dir_call;

        if (c->dir_fetching)
                return;
        c->dir_fetching = true;
        acme__call_target(call, c->directory_url, NULL, "directory");
        call->auth = ACME_CALL_GET;
        call->needs_dir = false;
        call->idempotent = true;
        call->accept = "application/json";
        acme__call_start(call);
}

bool acme_client_has_ari(const struct acme_client *c)
{
        return c && c->dir.loaded && c->dir.renewal_info;
}

bool acme_client_has_profile(const struct acme_client *c, const char *profile)
{
        if (!c || !profile || !c->dir.loaded)
                return false;
        for (size_t i = 0; i < c->dir.n_profiles; i++)
                if (streq(c->dir.profiles[i], profile))
                        return true;
        return false;
}

/* ---- account ------------------------------------------------------------ */

static int account_prepare(struct acme__call *call)
{
        struct acme_client *c = call->c;
        _cleanup_(json_decrefp) json_t *o = json_object();
        _cleanup_free_ char *contact = NULL;
        char *url, *payload;

        if (c->dir.eab_required)
                return acme__call_fail(call, -EOPNOTSUPP,
                                       "the CA requires external account binding, which is not "
                                       "supported");
        if (!o || json_object_set_new(o, "termsOfServiceAgreed", json_true()) < 0)
                return acme__call_fail(call, -ENOMEM, "out of memory");
        if (c->email) {
                json_t *a = json_array();

                if (asprintf(&contact, "mailto:%s", c->email) < 0)
                        contact = NULL;
                if (!a || !contact || json_object_set_new(o, "contact", a) < 0 ||
                    json_array_append_new(a, json_string(contact)) < 0)
                        return acme__call_fail(call, -ENOMEM, "out of memory");
        }
        payload = json_dumps(o, JSON_COMPACT);
        url = strdup(c->dir.new_account);
        if (!payload || !url) {
                free(payload);
                free(url);
                return acme__call_fail(call, -ENOMEM, "out of memory");
        }
        free(call->url);
        free(call->payload);
        call->url = url;
        call->payload = payload;
        return 0;
}

static void on_account_registered(struct acme__call *call, int r,
                                  const struct acme_http_response *resp, json_t *json)
{
        struct acme_client *c = call->c;
        const char *loc = r >= 0 ? acme__header(resp, "Location") : NULL;
        enum acme__status st = r >= 0 ? acme__status_of(json) : ACME_STATUS_UNKNOWN;
        char *url = NULL;

        c->acct_registering = false;
        if (r >= 0 && !acme__url_ok(loc))
                r = acme__call_fail(call, -EBADMSG, "newAccount answer without a usable Location");
        else if (r >= 0 && st != ACME_STATUS_VALID && st != ACME_STATUS_UNKNOWN)
                r = acme__call_fail(call, -EPROTO, "the account is %s", acme__status_str(st));
        json_decref(json);
        if (r >= 0) {
                url = strdup(loc);
                if (!url)
                        r = acme__call_fail(call, -ENOMEM, "out of memory");
        }
        if (r < 0) {
                fail_waiters(&c->acct_waiters, call, r);
                acme__call_clear(call);
                return;
        }
        acme__call_clear(call);
        free(c->account_url);
        c->account_url = url;
        log_debug("acme: account %s", url);
        if (c->on_account) {
                c->on_account(c->ud, url);
                if (c->freed)
                        return;
        }
        wake_waiters(c, &c->acct_waiters);
}

static void start_account(struct acme_client *c)
{
        struct acme__call *call = &c->acct_call;

        if (c->acct_registering)
                return;
        c->acct_registering = true;
        acme__call_target(call, NULL, NULL, "newAccount");
        call->auth = ACME_CALL_POST_JWK;
        call->prepare = account_prepare;
        acme__call_start(call);
}

/* ---- sending ------------------------------------------------------------- */

static void on_http(void *ud, int r, const struct acme_http_response *resp);

static void call_send(struct acme__call *call, const char *method, const char *url,
                      const char *body, size_t body_len, enum acme__call_state next)
{
        struct acme_client *c = call->c;
        const struct acme_http_request req = {
                .method = method,
                .url = url,
                .content_type = body ? "application/jose+json" : NULL,
                .body = body,
                .body_len = body_len,
                .accept = next == ACME_CALL_ST_SEND ? call->accept : NULL,
        };
        int r;

        r = c->http->request(c->transport, &req, on_http, call, &call->http);
        if (r < 0) {
                call->http = NULL;
                acme__call_fail(call, r, "%s %s: %s", method, url, strerror(-r));
                call_defer_failure(call, r);
                return;
        }
        call_set_state(call, next);
}

/* Everything needed before this request can go out, in order: the
 * directory, the account (for kid), the URL and payload, a nonce. */
static void call_step(struct acme__call *call)
{
        struct acme_client *c = call->c;
        _cleanup_free_ char *nonce = NULL, *jws = NULL;
        size_t jws_len = 0;
        int r;

        assert(call->state == ACME_CALL_ST_IDLE);
        if (call->fail_r < 0) {
                call_defer_failure(call, call->fail_r);
                return;
        }
        if (call->needs_dir && !dir_usable(c)) {
                call_set_state(call, ACME_CALL_ST_WAIT_DIR);
                park(&c->dir_waiters, call);
                start_directory(c);
                return;
        }
        if (call->auth == ACME_CALL_POST_KID && !c->account_url) {
                call_set_state(call, ACME_CALL_ST_WAIT_ACCOUNT);
                park(&c->acct_waiters, call);
                start_account(c);
                return;
        }
        if (call->prepare) {
                r = call->prepare(call);
                if (r < 0) {
                        call_defer_failure(call, r);
                        return;
                }
        }
        if (!call->url) {
                call_defer_failure(call, acme__call_fail(call, -ENOMEM, "out of memory"));
                return;
        }
        if (call->auth == ACME_CALL_GET) {
                call_send(call, "GET", call->url, NULL, 0, ACME_CALL_ST_SEND);
                return;
        }

        nonce = call->nonce ? TAKE_PTR(call->nonce) : nonce_take(c);
        if (!nonce) {
                if (call->nonce_fetches++ >= ACME_NONCE_FETCHES) {
                        call_defer_failure(
                                call, acme__call_fail(call, -EPROTO,
                                                      "newNonce answered without a Replay-Nonce"));
                        return;
                }
                call_send(call, "HEAD", c->dir.new_nonce, NULL, 0, ACME_CALL_ST_NONCE);
                return;
        }
        free(call->kid);
        call->kid = NULL;
        if (call->auth == ACME_CALL_POST_KID) {
                call->kid = strdup(c->account_url);
                if (!call->kid) {
                        call_defer_failure(call, acme__call_fail(call, -ENOMEM, "out of memory"));
                        return;
                }
        }
        r = acme_jws_sign(c->account_key, call->kid, nonce, call->url, strempty(call->payload),
                          &jws, &jws_len);
        if (r < 0) {
                call_defer_failure(call, acme__call_fail(call, r, "signing: %s", strerror(-r)));
                return;
        }
        call_send(call, "POST", call->url, jws, jws_len, ACME_CALL_ST_SEND);
}

static bool transport_retriable(int r)
{
        return r == -ECONNRESET || r == -ETIMEDOUT || r == -ECONNREFUSED || r == -ECONNABORTED ||
               r == -EPIPE || r == -EAGAIN;
}

/* Is @url one the directory handed out (so a 404 means it moved)? */
static bool is_dir_url(const struct acme_client *c, const char *url)
{
        return streq_ptr(url, c->dir.new_nonce) || streq_ptr(url, c->dir.new_account) ||
               streq_ptr(url, c->dir.new_order);
}

static void on_http_error_status(struct acme__call *call, const struct acme_http_response *resp)
{
        struct acme_client *c = call->c;
        const char *nonce = acme__header(resp, "Replay-Nonce");
        struct acme_problem *p = &call->problem;

        acme_problem_done(p);
        if (acme__problem_from_response(p, resp, acme__now(c)) < 0)
                p->error = -ENOMEM;
        /* RFC 8555 §6.5: the badNonce answer carries a fresh nonce; sign
         * the resend with exactly that one. */
        if (call->auth != ACME_CALL_GET && acme__problem_is(p, "badNonce") &&
            call->bad_nonces < ACME_BAD_NONCE_RETRIES) {
                call->bad_nonces++;
                log_debug("acme: %s: badNonce, resending (%u of %u)", strempty(call->where),
                          call->bad_nonces, ACME_BAD_NONCE_RETRIES);
                acme_problem_done(p);
                if (acme__nonce_ok(nonce))
                        call->nonce = strdup(nonce);
                call_step(call);
                return;
        }
        nonce_put(c, nonce);
        if (resp->status == 503 && acme__header(resp, "Retry-After") &&
            p->retry_after_s <= ACME_BUSY_WAIT_MAX_S && call->busy_retries < ACME_BUSY_RETRIES) {
                call->busy_retries++;
                acme_problem_done(p);
                call_backoff(call, p->retry_after_s * 1000);
                return;
        }
        if (call->auth == ACME_CALL_POST_KID && acme__problem_is(p, "accountDoesNotExist") &&
            !call->reregistered) {
                /* The CA forgot the account (or it is another CA behind the
                 * same URL): register again, once, and resend. */
                call->reregistered = true;
                acme_problem_done(p);
                if (streq_ptr(c->account_url, call->kid)) {
                        free(c->account_url);
                        c->account_url = NULL;
                }
                call_step(call);
                return;
        }
        if (resp->status == 404 && is_dir_url(c, call->url))
                c->dir.stale = true;
        call_defer_failure(call, -EPROTO);
}

static void on_http(void *ud, int r, const struct acme_http_response *resp)
{
        struct acme__call *call = ud;
        struct acme_client *c = call->c;
        json_t *json = NULL;

        call->http = NULL;
        if (call->state == ACME_CALL_ST_NONCE) {
                call_set_state(call, ACME_CALL_ST_IDLE);
                if (r < 0) {
                        acme__call_fail(call, r, "newNonce: %s", strerror(-r));
                        call_defer_failure(call, r);
                        return;
                }
                nonce_put(c, acme__header(resp, "Replay-Nonce"));
                call_step(call);
                return;
        }
        assert(call->state == ACME_CALL_ST_SEND);
        call_set_state(call, ACME_CALL_ST_IDLE);
        if (r < 0) {
                if (call->idempotent && transport_retriable(r) &&
                    call->transport_retries < ACME_TRANSPORT_RETRIES) {
                        call->transport_retries++;
                        call_backoff(call, c->poll_min_ms);
                        return;
                }
                acme__call_fail(call, r, "%s", strerror(-r));
                call_defer_failure(call, r);
                return;
        }
        if (resp->status < 200 || resp->status > 299) {
                on_http_error_status(call, resp);
                return;
        }
        nonce_put(c, acme__header(resp, "Replay-Nonce"));
        if (!call->raw) {
                json = json_loadb(resp->body, resp->body_len, 0, NULL);
                if (!json_is_object(json)) {
                        json_decref(json);
                        acme__call_fail(call, -EBADMSG,
                                        "HTTP %d with a body that is not a JSON object",
                                        resp->status);
                        call->problem.status = resp->status;
                        call_defer_failure(call, -EBADMSG);
                        return;
                }
        }
        call->done(call, 0, resp, json);
}

/* ---- the client ----------------------------------------------------------- */

static void on_timer_close(uv_handle_t *h)
{
        free(container_of((uv_timer_t *)h, struct acme_client, timer));
}

int acme_client_new(const struct acme_client_config *cfg, struct acme_client **ret)
{
        struct acme_client *c;
        int r;

        if (!cfg || !cfg->loop || !cfg->http || !cfg->http->request || !cfg->http->cancel ||
            !cfg->account_key || !acme__url_ok(cfg->directory_url) ||
            (cfg->account_url && *cfg->account_url && !acme__url_ok(cfg->account_url)))
                return -EINVAL;
        c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        c->loop = cfg->loop;
        c->http = cfg->http;
        c->transport = cfg->http_transport;
        c->account_key = cfg->account_key;
        c->now = cfg->now;
        c->now_ud = cfg->now_ud;
        c->on_account = cfg->on_account;
        c->ud = cfg->ud;
        c->order_timeout_ms = cfg->order_timeout_ms ?: 10 * 60 * 1000;
        c->poll_min_ms = cfg->poll_min_ms ?: 1000;
        c->poll_max_ms = MAX(cfg->poll_max_ms ?: 10 * 1000, c->poll_min_ms);
        c->directory_url = strdup(cfg->directory_url);
        if (cfg->account_url && *cfg->account_url)
                c->account_url = strdup(cfg->account_url);
        if (cfg->email && *cfg->email)
                c->email = strdup(cfg->email);
        if (!c->directory_url || (cfg->account_url && *cfg->account_url && !c->account_url) ||
            (cfg->email && *cfg->email && !c->email)) {
                free(c->directory_url);
                free(c->account_url);
                free(c->email);
                free(c);
                return -ENOMEM;
        }
        r = uv_timer_init(c->loop, &c->timer);
        if (r < 0) {
                free(c->directory_url);
                free(c->account_url);
                free(c->email);
                free(c);
                return r;
        }
        acme__call_init(&c->dir_call, c, on_directory);
        acme__call_init(&c->acct_call, c, on_account_registered);
        *ret = c;
        return 0;
}

void acme_client_free(struct acme_client *c)
{
        if (!c)
                return;
        assert(!c->freed);
        /* Cancelling runs remove hooks; they must not see a half-freed
         * client, so the flag goes first and the memory goes last. */
        while (c->orders)
                acme_order_cancel(c->orders);
        while (c->aris)
                acme_ari_cancel(c->aris);
        acme__call_clear(&c->dir_call);
        acme__call_clear(&c->acct_call);
        c->freed = true;
        assert(!c->wakes && !c->dir_waiters && !c->acct_waiters);
        dir_clear(&c->dir);
        for (size_t i = 0; i < c->n_nonces; i++)
                free(c->nonces[i]);
        c->n_nonces = 0;
        free(c->directory_url);
        free(c->account_url);
        free(c->email);
        c->directory_url = c->account_url = c->email = NULL;
        uv_close((uv_handle_t *)&c->timer, on_timer_close);
}
