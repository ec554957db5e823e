/* SPDX-License-Identifier: Apache-2.0 */
/* One ACME order (RFC 8555 §7.4) as an explicit state machine: each state
 * has at most one request (o->call) or one timer (o->wait) outstanding;
 * their callbacks only hand the event to order_step(). */
#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "acme/cert.h"
#include "acme/client-internal.h"
#include "acme/csr.h"
#include "acme/jws.h"
#include "common/base64.h"
#include "common/list.h"
#include "common/log.h"
#include "common/macros.h"

#define DNS_NAME_MAX  253
#define DNS_LABEL_MAX 63
#define PROFILE_MAX   64
#define TOKEN_MAX     256

enum order_state {
        ORDER_ST_START,      /* started; the first step runs on the next loop turn */
        ORDER_ST_NEW_ORDER,  /* POST newOrder */
        ORDER_ST_AUTHZ,      /* POST-as-GET authorization o->cur */
        ORDER_ST_CHALLENGE,  /* challenges installed; POST {} to challenge o->cur */
        ORDER_ST_WAIT_AUTHZ, /* poll delay before authorization o->cur */
        ORDER_ST_POLL_AUTHZ, /* POST-as-GET authorization o->cur until valid */
        ORDER_ST_FINALIZE,   /* POST the CSR */
        ORDER_ST_WAIT_ORDER, /* poll delay before the order */
        ORDER_ST_POLL_ORDER, /* POST-as-GET the order until valid */
        ORDER_ST_DOWNLOAD,   /* POST-as-GET the certificate chain */
        ORDER_ST_DONE,       /* finished; the order is being freed */
        _ORDER_ST_MAX,
};

static const char *order_state_str(enum order_state s)
{
        static const char *const names[_ORDER_ST_MAX] = {
                [ORDER_ST_START] = "start",
                [ORDER_ST_NEW_ORDER] = "new-order",
                [ORDER_ST_AUTHZ] = "authorization",
                [ORDER_ST_CHALLENGE] = "challenge",
                [ORDER_ST_WAIT_AUTHZ] = "wait-authorization",
                [ORDER_ST_POLL_AUTHZ] = "poll-authorization",
                [ORDER_ST_FINALIZE] = "finalize",
                [ORDER_ST_WAIT_ORDER] = "wait-order",
                [ORDER_ST_POLL_ORDER] = "poll-order",
                [ORDER_ST_DOWNLOAD] = "download",
                [ORDER_ST_DONE] = "done",
        };

        return (unsigned)s < _ORDER_ST_MAX ? names[s] : "?";
}

#define B(s) (1u << (s))
/* The legal transitions; anything else is a bug (asserted). Every state
 * may end in DONE (failure, deadline). */
static const unsigned order_next[_ORDER_ST_MAX] = {
        [ORDER_ST_START] = B(ORDER_ST_NEW_ORDER),
        [ORDER_ST_NEW_ORDER] = B(ORDER_ST_NEW_ORDER) | B(ORDER_ST_AUTHZ) | B(ORDER_ST_FINALIZE) |
                               B(ORDER_ST_WAIT_ORDER) | B(ORDER_ST_DOWNLOAD),
        [ORDER_ST_AUTHZ] = B(ORDER_ST_AUTHZ) | B(ORDER_ST_CHALLENGE) | B(ORDER_ST_WAIT_AUTHZ) |
                           B(ORDER_ST_FINALIZE),
        [ORDER_ST_CHALLENGE] = B(ORDER_ST_CHALLENGE) | B(ORDER_ST_WAIT_AUTHZ),
        [ORDER_ST_WAIT_AUTHZ] = B(ORDER_ST_POLL_AUTHZ),
        [ORDER_ST_POLL_AUTHZ] =
                B(ORDER_ST_POLL_AUTHZ) | B(ORDER_ST_WAIT_AUTHZ) | B(ORDER_ST_FINALIZE),
        [ORDER_ST_FINALIZE] = B(ORDER_ST_WAIT_ORDER) | B(ORDER_ST_DOWNLOAD),
        [ORDER_ST_WAIT_ORDER] = B(ORDER_ST_POLL_ORDER),
        [ORDER_ST_POLL_ORDER] =
                B(ORDER_ST_WAIT_ORDER) | B(ORDER_ST_FINALIZE) | B(ORDER_ST_DOWNLOAD),
        [ORDER_ST_DOWNLOAD] = 0,
        [ORDER_ST_DONE] = 0,
};

struct order_authz {
        char *url;        /* the authorization */
        char *identifier; /* its DNS name, without "*." */
        bool wildcard;    /* for "*.<identifier>" */
        bool valid;       /* status valid */
        bool post;        /* the challenge still needs its POST {} */
        bool installed;   /* install hook succeeded; remove pending */
        char *chall_url;  /* the challenge of the order's type */
        char *token;      /* its token */
        char *key_auth;   /* token.thumbprint */
        char dns_value[ACME_DNS01_VALUE_LEN + 1];
};

struct acme_order {
        struct acme_order *prev, *next; /* in client->orders */
        struct acme_client *c;
        enum order_state state;
        char **names; /* lower-case, as ordered */
        size_t n_names;
        enum acme_challenge_type type;
        char *profile;         /* NULL: none */
        char *replaces;        /* NULL: none */
        bool replaces_dropped; /* the server refused it once */
        struct acme_key *cert_key;
        struct acme_order_hooks hooks;
        void *ud;

        char *url;          /* the order (Location of newOrder) */
        char *finalize_url; /* from the order object */
        char *cert_url;     /* from the valid order object */
        char *csr_b64;      /* made once, sent by each finalize */
        struct order_authz *authz;
        size_t n_authz;
        size_t cur; /* the authorization the current state works on */
        unsigned polls, finalizes;
        uint64_t backoff_ms; /* the next poll delay without Retry-After; 0: start over */

        struct acme__call call;
        struct acme__wake wait;      /* START and the WAIT_* states */
        struct acme__wake deadline;  /* the whole order */
        struct acme_problem problem; /* why it failed */
        struct acme_order_result result;
};

enum order_event_kind {
        ORDER_EV_WAKE,     /* o->wait fired */
        ORDER_EV_REPLY,    /* o->call finished */
        ORDER_EV_DEADLINE, /* o->deadline fired */
};

struct order_event {
        enum order_event_kind kind;
        int r;                                 /* REPLY: 0 or the call's error */
        const struct acme_http_response *resp; /* REPLY with r = 0 */
        json_t *json;                          /* REPLY with r = 0, unless raw; borrowed */
};

static void order_set_state(struct acme_order *o, enum order_state next)
{
        assert(next == ORDER_ST_DONE || (order_next[o->state] & B(next)));
        log_debug("acme: order %s: %s -> %s", o->names[0], order_state_str(o->state),
                  order_state_str(next));
        o->state = next;
}

/* Record why the order fails; returns @r for `return order_fail(...)`. A
 * server-side refusal (-EPROTO) keeps error 0, as acme_problem says. */
static int order_fail(struct acme_order *o, int r, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
static int order_fail(struct acme_order *o, int r, const char *fmt, ...)
{
        _cleanup_free_ char *d = NULL;
        va_list ap;

        va_start(ap, fmt);
        if (vasprintf(&d, fmt, ap) < 0)
                d = NULL;
        va_end(ap);
        acme_problem_done(&o->problem);
        o->problem.error = r == -EPROTO ? 0 : r;
        o->problem.detail = d ? acme__sanitize(d, ACME_DETAIL_MAX) : NULL;
        o->problem.where =
                o->call.where ? strdup(o->call.where) : strdup(order_state_str(o->state));
        return r;
}

/* ---- challenges ----------------------------------------------------------- */

static void challenge_of(const struct acme_order *o, const struct order_authz *a,
                         struct acme_challenge *ret)
{
        *ret = (struct acme_challenge){
                .type = o->type,
                .identifier = a->identifier,
                .wildcard = a->wildcard,
                .token = a->token,
                .key_authorization = a->key_auth,
                .dns_value = o->type == ACME_CHALLENGE_DNS01 ? a->dns_value : NULL,
        };
}

static void remove_challenges(struct acme_order *o)
{
        for (size_t i = 0; i < o->n_authz; i++) {
                struct order_authz *a = &o->authz[i];
                struct acme_challenge ch;

                if (!a->installed)
                        continue;
                a->installed = false;
                challenge_of(o, a, &ch);
                if (o->hooks.remove)
                        o->hooks.remove(o->ud, &ch);
        }
}

/* Install every challenge the server will validate, before the first
 * POST: for "*.d" and "d" both TXT values at _acme-challenge.d must be
 * there when the CA looks, whichever it validates first. */
static int install_challenges(struct acme_order *o)
{
        for (size_t i = 0; i < o->n_authz; i++) {
                struct order_authz *a = &o->authz[i];
                struct acme_challenge ch;
                int r;

                if (a->valid)
                        continue;
                challenge_of(o, a, &ch);
                r = o->hooks.install(o->ud, &ch);
                if (r < 0) {
                        order_fail(o, r, "installing the %s challenge for %s%s failed: %s",
                                   acme_challenge_type_str(o->type), a->wildcard ? "*." : "",
                                   a->identifier, strerror(-r));
                        free(o->problem.where);
                        if (asprintf(&o->problem.where, "challenge %s%s", a->wildcard ? "*." : "",
                                     a->identifier) < 0)
                                o->problem.where = NULL;
                        return r;
                }
                a->installed = true;
        }
        return 0;
}

/* ---- requests ---------------------------------------------------------------- */

static void on_order_reply(struct acme__call *call, int r, const struct acme_http_response *resp,
                           json_t *json);

/* A kid-signed POST (@payload "" = POST-as-GET) for the current state;
 * @raw: the answer is the PEM chain, not JSON. */
static int order_post(struct acme_order *o, const char *url, const char *payload, bool raw,
                      const char *where_fmt, ...) __attribute__((format(printf, 5, 6)));
static int order_post(struct acme_order *o, const char *url, const char *payload, bool raw,
                      const char *where_fmt, ...)
{
        _cleanup_free_ char *where = NULL;
        va_list ap;
        int k;

        va_start(ap, where_fmt);
        k = vasprintf(&where, where_fmt, ap);
        va_end(ap);
        if (k < 0)
                return order_fail(o, -ENOMEM, "out of memory");
        acme__call_target(&o->call, url, payload, "%s", where);
        o->call.auth = ACME_CALL_POST_KID;
        o->call.idempotent = payload && !*payload;
        o->call.raw = raw;
        o->call.accept = raw ? "application/pem-certificate-chain" : NULL;
        acme__call_start(&o->call);
        return 0;
}

static int new_order_prepare(struct acme__call *call)
{
        struct acme_order *o = container_of(call, struct acme_order, call);
        struct acme_client *c = call->c;
        _cleanup_(json_decrefp) json_t *p = json_object();
        json_t *ids = json_array();
        char *payload, *url;

        if (!p || !ids || json_object_set_new(p, "identifiers", ids) < 0)
                return acme__call_fail(call, -ENOMEM, "out of memory");
        for (size_t i = 0; i < o->n_names; i++)
                if (json_array_append_new(
                            ids, json_pack("{s:s,s:s}", "type", "dns", "value", o->names[i])) < 0)
                        return acme__call_fail(call, -ENOMEM, "out of memory");
        /* draft-ietf-acme-profiles: a profile the CA does not list would
         * only get the order refused. */
        if (o->profile && acme_client_has_profile(c, o->profile) &&
            json_object_set_new(p, "profile", json_string(o->profile)) < 0)
                return acme__call_fail(call, -ENOMEM, "out of memory");
        if (o->replaces && !o->replaces_dropped &&
            json_object_set_new(p, "replaces", json_string(o->replaces)) < 0)
                return acme__call_fail(call, -ENOMEM, "out of memory");
        payload = json_dumps(p, JSON_COMPACT);
        url = strdup(c->dir.new_order);
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

static int send_new_order(struct acme_order *o)
{
        order_set_state(o, ORDER_ST_NEW_ORDER);
        acme__call_target(&o->call, NULL, NULL, "newOrder");
        o->call.auth = ACME_CALL_POST_KID;
        o->call.prepare = new_order_prepare;
        acme__call_start(&o->call);
        return 0;
}

static int send_authz(struct acme_order *o, enum order_state next)
{
        const struct order_authz *a = &o->authz[o->cur];

        order_set_state(o, next);
        if (a->identifier)
                return order_post(o, a->url, "", false, "authorization %s%s",
                                  a->wildcard ? "*." : "", a->identifier);
        return order_post(o, a->url, "", false, "authorization %s", a->url);
}

static int send_finalize(struct acme_order *o)
{
        _cleanup_free_ char *payload = NULL;

        /* Failures below are the finalize step's. */
        acme__call_target(&o->call, NULL, NULL, "finalize");
        if (o->finalizes++ >= ACME_FINALIZES_MAX)
                return order_fail(o, -EPROTO,
                                  "the order stayed \"ready\" after %u finalize requests",
                                  ACME_FINALIZES_MAX);
        if (!o->csr_b64) {
                _cleanup_free_ uint8_t *der = NULL;
                size_t len;
                int r;

                r = acme_csr_new(o->cert_key, (const char *const *)o->names, o->n_names, &der,
                                 &len);
                if (r >= 0)
                        r = base64url_encode(der, len, &o->csr_b64);
                if (r < 0)
                        return order_fail(o, r, "building the CSR failed: %s", strerror(-r));
        }
        if (asprintf(&payload, "{\"csr\":\"%s\"}", o->csr_b64) < 0) {
                payload = NULL;
                return order_fail(o, -ENOMEM, "out of memory");
        }
        order_set_state(o, ORDER_ST_FINALIZE);
        return order_post(o, o->finalize_url, payload, false, "finalize");
}

static int send_download(struct acme_order *o)
{
        order_set_state(o, ORDER_ST_DOWNLOAD);
        return order_post(o, o->cert_url, "", true, "certificate");
}

/* Wait before polling: the server's Retry-After, else the backoff (poll_min
 * doubling to poll_max). A wait past the deadline fails now, saying when
 * the server wanted to be asked again. */
static int order_wait(struct acme_order *o, enum order_state next,
                      const struct acme_http_response *resp)
{
        struct acme_client *c = o->c;
        uint64_t ra, delay,
                left = o->deadline.at > uv_now(c->loop) ? o->deadline.at - uv_now(c->loop) : 0;

        if (resp && acme__retry_after(resp, acme__now(c), &ra) >= 0) {
                delay = ra * 1000;
        } else {
                o->backoff_ms =
                        o->backoff_ms ? MIN(o->backoff_ms * 2, c->poll_max_ms) : c->poll_min_ms;
                delay = o->backoff_ms;
                ra = 0;
        }
        if (++o->polls > ACME_POLLS_MAX)
                return order_fail(o, -ETIMEDOUT, "still not done after %u polls", ACME_POLLS_MAX);
        if (delay > left) {
                order_fail(o, -ETIMEDOUT,
                           "the server asked to poll again in %" PRIu64
                           " s, after the order deadline",
                           (delay + 999) / 1000);
                o->problem.retry_after_s = ra;
                return -ETIMEDOUT;
        }
        order_set_state(o, next);
        acme__wake_arm(c, &o->wait, delay);
        return 0;
}

/* ---- parsing the server's objects ------------------------------------------------ */

static int dup_url(struct acme_order *o, const json_t *obj, const char *key, char **ret)
{
        const char *v = acme__json_str(obj, key);

        if (!acme__url_ok(v))
                return order_fail(o, -EBADMSG, "the answer's \"%s\" is not a usable https URL",
                                  key);
        free(*ret);
        *ret = strdup(v);
        return *ret ? 0 : order_fail(o, -ENOMEM, "out of memory");
}

/* The problem in @err (an "error" member), or a generic @what. */
static int fail_with_error(struct acme_order *o, const json_t *err, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
static int fail_with_error(struct acme_order *o, const json_t *err, const char *fmt, ...)
{
        _cleanup_free_ char *what = NULL;
        va_list ap;

        va_start(ap, fmt);
        if (vasprintf(&what, fmt, ap) < 0)
                what = NULL;
        va_end(ap);
        order_fail(o, -EPROTO, "%s", strempty(what));
        if (json_is_object(err)) {
                char *d = NULL;

                if (acme__problem_from_json(&o->problem, err) < 0)
                        return order_fail(o, -ENOMEM, "out of memory");
                /* Keep which authorization it was: "<what>: <CA's detail>". */
                if (o->problem.detail &&
                    asprintf(&d, "%s: %s", strempty(what), o->problem.detail) >= 0) {
                        free(o->problem.detail);
                        o->problem.detail = acme__sanitize(d, ACME_DETAIL_MAX);
                        free(d);
                }
        }
        return -EPROTO;
}

/* The order object (newOrder, finalize, polls): act on its status. */
static int on_order_object(struct acme_order *o, const json_t *obj,
                           const struct acme_http_response *resp)
{
        enum acme__status st = acme__status_of(obj);
        int r;

        if (st != ACME_STATUS_VALID && st != ACME_STATUS_INVALID) {
                r = dup_url(o, obj, "finalize", &o->finalize_url);
                if (r < 0)
                        return r;
        }
        switch (st) {
        case ACME_STATUS_PENDING:
                if (o->state == ORDER_ST_NEW_ORDER)
                        return 1; /* the caller reads the authorizations */
                /* A pending order after our authorizations went valid:
                 * the CA has not caught up yet. */
                return order_wait(o, ORDER_ST_WAIT_ORDER, resp);
        case ACME_STATUS_READY:
                return send_finalize(o);
        case ACME_STATUS_PROCESSING:
                return order_wait(o, ORDER_ST_WAIT_ORDER, resp);
        case ACME_STATUS_VALID:
                r = dup_url(o, obj, "certificate", &o->cert_url);
                return r < 0 ? r : send_download(o);
        case ACME_STATUS_INVALID:
                return fail_with_error(o, json_object_get(obj, "error"), "the order is invalid");
        default:
                return order_fail(o, -EBADMSG, "the order has status \"%.32s\"",
                                  strempty(acme__json_str(obj, "status")));
        }
}

static bool names_has(const struct acme_order *o, const char *name, size_t n)
{
        for (size_t i = 0; i < o->n_names; i++)
                if (strlen(o->names[i]) == n && strncasecmp(o->names[i], name, n) == 0)
                        return true;
        return false;
}

static int handle_new_order(struct acme_order *o, const struct order_event *ev)
{
        const json_t *authzs = json_object_get(ev->json, "authorizations");
        const char *loc = acme__header(ev->resp, "Location");
        size_t n;
        int r;

        if (!acme__url_ok(loc))
                return order_fail(o, -EBADMSG, "newOrder answer without a usable Location");
        free(o->url);
        o->url = strdup(loc);
        if (!o->url)
                return order_fail(o, -ENOMEM, "out of memory");
        r = on_order_object(o, ev->json, ev->resp);
        if (r <= 0)
                return r;
        n = json_is_array(authzs) ? json_array_size(authzs) : 0;
        if (n == 0 || n > o->n_names)
                return order_fail(o, -EBADMSG, "the order has %zu authorizations for %zu names", n,
                                  o->n_names);
        o->authz = calloc(n, sizeof(*o->authz));
        if (!o->authz)
                return order_fail(o, -ENOMEM, "out of memory");
        for (size_t i = 0; i < n; i++) {
                const char *u = json_string_value(json_array_get(authzs, i));

                if (!acme__url_ok(u))
                        return order_fail(o, -EBADMSG, "authorization %zu has no usable URL", i);
                o->authz[i].url = strdup(u);
                if (!o->authz[i].url)
                        return order_fail(o, -ENOMEM, "out of memory");
                o->n_authz = i + 1;
        }
        o->cur = 0;
        return send_authz(o, ORDER_ST_AUTHZ);
}

/* The challenge error of an invalid authorization: ours first, else any. */
static const json_t *authz_error(const struct acme_order *o, const json_t *obj)
{
        const json_t *chs = json_object_get(obj, "challenges"), *any = NULL;

        for (size_t i = 0; i < json_array_size(chs); i++) {
                const json_t *ch = json_array_get(chs, i), *err = json_object_get(ch, "error");

                if (!json_is_object(err))
                        continue;
                if (streq_ptr(acme__json_str(ch, "type"), acme_challenge_type_str(o->type)))
                        return err;
                any = any ?: err;
        }
        return any;
}

static int handle_authz(struct acme_order *o, const struct order_event *ev)
{
        struct order_authz *a = &o->authz[o->cur];
        const json_t *id = json_object_get(ev->json, "identifier");
        const json_t *chs = json_object_get(ev->json, "challenges");
        const char *value = acme__json_str(id, "value"), *want = acme_challenge_type_str(o->type);
        enum acme__status st = acme__status_of(ev->json);
        const json_t *ch = NULL;
        char full[DNS_NAME_MAX + 3];
        int r;

        if (!streq_ptr(acme__json_str(id, "type"), "dns") || !value || strlen(value) > DNS_NAME_MAX)
                return order_fail(o, -EBADMSG, "authorization without a DNS identifier");
        a->wildcard = json_is_true(json_object_get(ev->json, "wildcard"));
        snprintf(full, sizeof(full), "%s%s", a->wildcard ? "*." : "", value);
        /* Only names of this order: a confused or hostile CA must not
         * make the owner publish challenges for anything else. */
        if (!names_has(o, full, strlen(full)))
                return order_fail(o, -EBADMSG, "authorization for %s, which is not in the order",
                                  full);
        for (size_t i = 0; i < o->cur; i++)
                if (o->authz[i].wildcard == a->wildcard &&
                    strcasecmp(o->authz[i].identifier, value) == 0)
                        return order_fail(o, -EBADMSG, "two authorizations for %s", full);
        free(a->identifier);
        a->identifier = strdup(value);
        if (!a->identifier)
                return order_fail(o, -ENOMEM, "out of memory");

        switch (st) {
        case ACME_STATUS_VALID:
                a->valid = true;
                break;
        case ACME_STATUS_PENDING:
                for (size_t i = 0; i < json_array_size(chs); i++)
                        if (streq_ptr(acme__json_str(json_array_get(chs, i), "type"), want)) {
                                ch = json_array_get(chs, i);
                                break;
                        }
                if (!ch)
                        return order_fail(o, -EOPNOTSUPP, "the CA offers no %s challenge for %s",
                                          want, full);
                r = dup_url(o, ch, "url", &a->chall_url);
                if (r < 0)
                        return r;
                {
                        const char *token = acme__json_str(ch, "token");
                        enum acme__status cs = acme__status_of(ch);

                        if (!token || strlen(token) > TOKEN_MAX ||
                            acme_key_authorization(o->c->account_key, token, &a->key_auth) < 0)
                                return order_fail(o, -EBADMSG,
                                                  "the %s challenge for %s has a malformed token",
                                                  want, full);
                        a->token = strdup(token);
                        if (!a->token)
                                return order_fail(o, -ENOMEM, "out of memory");
                        acme_dns01_value(a->key_auth, a->dns_value);
                        /* processing: validation already runs (an order the
                         * CA reused); answerable, but not POSTed again. */
                        if (cs == ACME_STATUS_PENDING)
                                a->post = true;
                        else if (cs != ACME_STATUS_PROCESSING && cs != ACME_STATUS_VALID)
                                return fail_with_error(o, json_object_get(ch, "error"),
                                                       "the %s challenge for %s is %s", want, full,
                                                       acme__status_str(cs));
                }
                break;
        case ACME_STATUS_INVALID:
                return fail_with_error(o, authz_error(o, ev->json),
                                       "the authorization for %s is invalid", full);
        default:
                return order_fail(o, -EPROTO, "the authorization for %s is %.32s", full,
                                  acme__json_str(ev->json, "status") ?: "without status");
        }

        if (++o->cur < o->n_authz)
                return send_authz(o, ORDER_ST_AUTHZ);

        /* Every authorization is known: install, then POST. */
        r = install_challenges(o);
        if (r < 0)
                return r;
        for (o->cur = 0; o->cur < o->n_authz; o->cur++)
                if (o->authz[o->cur].post) {
                        order_set_state(o, ORDER_ST_CHALLENGE);
                        return order_post(o, o->authz[o->cur].chall_url, "{}", false,
                                          "challenge %s%s", o->authz[o->cur].wildcard ? "*." : "",
                                          o->authz[o->cur].identifier);
                }
        for (o->cur = 0; o->cur < o->n_authz; o->cur++)
                if (!o->authz[o->cur].valid) {
                        o->backoff_ms = 0;
                        return order_wait(o, ORDER_ST_WAIT_AUTHZ, NULL);
                }
        return send_finalize(o);
}

static int handle_challenge(struct acme_order *o, const struct order_event *ev)
{
        struct order_authz *a = &o->authz[o->cur];
        enum acme__status cs = acme__status_of(ev->json);

        if (cs == ACME_STATUS_INVALID)
                return fail_with_error(o, json_object_get(ev->json, "error"),
                                       "the %s challenge for %s%s is invalid",
                                       acme_challenge_type_str(o->type), a->wildcard ? "*." : "",
                                       a->identifier);
        a->post = false;
        for (o->cur++; o->cur < o->n_authz; o->cur++)
                if (o->authz[o->cur].post)
                        return order_post(o, o->authz[o->cur].chall_url, "{}", false,
                                          "challenge %s%s", o->authz[o->cur].wildcard ? "*." : "",
                                          o->authz[o->cur].identifier);
        for (o->cur = 0; o->cur < o->n_authz && o->authz[o->cur].valid; o->cur++)
                ;
        assert(o->cur < o->n_authz); /* a POSTed one is not valid yet */
        o->backoff_ms = 0;
        return order_wait(o, ORDER_ST_WAIT_AUTHZ, ev->resp);
}

static int handle_poll_authz(struct acme_order *o, const struct order_event *ev)
{
        struct order_authz *a = &o->authz[o->cur];
        enum acme__status st = acme__status_of(ev->json);

        switch (st) {
        case ACME_STATUS_VALID:
                a->valid = true;
                break;
        case ACME_STATUS_PENDING:
        case ACME_STATUS_PROCESSING: /* not an authorization status, but harmless */
                return order_wait(o, ORDER_ST_WAIT_AUTHZ, ev->resp);
        case ACME_STATUS_INVALID:
                return fail_with_error(o, authz_error(o, ev->json),
                                       "the authorization for %s%s is invalid",
                                       a->wildcard ? "*." : "", a->identifier);
        default:
                return order_fail(o, -EPROTO, "the authorization for %s%s is %.32s",
                                  a->wildcard ? "*." : "", a->identifier,
                                  acme__json_str(ev->json, "status") ?: "without status");
        }
        for (o->cur = 0; o->cur < o->n_authz; o->cur++)
                if (!o->authz[o->cur].valid) {
                        o->backoff_ms = 0;
                        return send_authz(o, ORDER_ST_POLL_AUTHZ);
                }
        /* All valid: the CA will not look again (RFC 8555 §7.5.1). */
        remove_challenges(o);
        o->backoff_ms = 0;
        return send_finalize(o);
}

static int handle_finalize(struct acme_order *o, const struct order_event *ev)
{
        /* A "ready" answer to finalize would loop; poll instead. */
        if (acme__status_of(ev->json) == ACME_STATUS_READY)
                return order_wait(o, ORDER_ST_WAIT_ORDER, ev->resp);
        return on_order_object(o, ev->json, ev->resp);
}

static int handle_download(struct acme_order *o, const struct order_event *ev)
{
        _cleanup_free_ char *chain = NULL, *key = NULL;
        struct acme_cert_info ci;
        size_t key_len;
        int r;

        if (!ev->resp->body || ev->resp->body_len == 0)
                return order_fail(o, -EBADMSG, "empty certificate chain");
        chain = strndup(ev->resp->body, ev->resp->body_len);
        if (!chain)
                return order_fail(o, -ENOMEM, "out of memory");
        r = acme_cert_info_parse(chain, strlen(chain), &ci);
        if (r < 0)
                return order_fail(o, r == -ENOMEM ? r : -EBADMSG,
                                  "the certificate chain does not parse: %s", strerror(-r));
        for (size_t i = 0; r >= 0 && i < o->n_names; i++) {
                bool found = false;

                for (size_t j = 0; j < ci.n_dns_names && !found; j++)
                        found = strcasecmp(ci.dns_names[j], o->names[i]) == 0;
                if (!found)
                        r = order_fail(o, -EBADMSG, "the certificate does not cover %s",
                                       o->names[i]);
        }
        acme_cert_info_done(&ci);
        if (r < 0)
                return r;
        r = acme_cert_matches_key(chain, strlen(chain), o->cert_key);
        if (r <= 0)
                return order_fail(o, r == -ENOMEM ? r : -EBADMSG,
                                  "the certificate is not for the key of the CSR");
        r = acme_key_to_pem(o->cert_key, &key, &key_len);
        if (r < 0)
                return order_fail(o, r, "out of memory");
        o->result.chain_len = strlen(chain);
        o->result.chain_pem = TAKE_PTR(chain);
        o->result.key_len = key_len;
        o->result.key_pem = TAKE_PTR(key);
        return 1; /* done */
}

/* Drop the replaces field once when the server refuses it: the renewal
 * matters more than the ARI hint. */
static bool retry_without_replaces(struct acme_order *o)
{
        const struct acme_problem *p = &o->call.problem;

        return o->replaces && !o->replaces_dropped &&
               (acme__problem_is(p, "alreadyReplaced") || acme__problem_is(p, "malformed") ||
                p->status == 409);
}

/* ---- the state machine ------------------------------------------------------------ */

static void order_free(struct acme_order *o)
{
        acme__call_clear(&o->call);
        acme__wake_disarm(o->c, &o->wait);
        acme__wake_disarm(o->c, &o->deadline);
        for (size_t i = 0; i < o->n_names; i++)
                free(o->names[i]);
        free(o->names);
        for (size_t i = 0; i < o->n_authz; i++) {
                free(o->authz[i].url);
                free(o->authz[i].identifier);
                free(o->authz[i].chall_url);
                free(o->authz[i].token);
                free(o->authz[i].key_auth);
        }
        free(o->authz);
        free(o->profile);
        free(o->replaces);
        free(o->url);
        free(o->finalize_url);
        free(o->cert_url);
        free(o->csr_b64);
        acme_key_free(o->cert_key);
        acme_problem_done(&o->problem);
        free(o->result.chain_pem);
        free(o->result.key_pem);
        acme_problem_done(&o->result.problem);
        free(o);
}

static void order_unlink(struct acme_order *o)
{
        struct acme_client *c = o->c;

        remove_challenges(o);
        acme__call_clear(&o->call);
        acme__wake_disarm(c, &o->wait);
        acme__wake_disarm(c, &o->deadline);
        LIST_REMOVE(c->orders, o);
        c->n_orders--;
}

/* The end: challenges removed, the order freed, then done (which may free
 * the client, so nothing touches either afterwards). */
static void order_finish(struct acme_order *o, int r)
{
        struct acme_order_hooks hooks = o->hooks;
        struct acme_order_result res = {};
        void *ud = o->ud;

        order_set_state(o, ORDER_ST_DONE);
        order_unlink(o);
        if (r >= 0) {
                res.chain_pem = TAKE_PTR(o->result.chain_pem);
                res.chain_len = o->result.chain_len;
                res.key_pem = TAKE_PTR(o->result.key_pem);
                res.key_len = o->result.key_len;
        } else {
                res.problem = o->problem;
                o->problem = (struct acme_problem){};
                log_debug("acme: order %s failed in %s: %s", o->names[0],
                          strempty(res.problem.where), strempty(res.problem.detail));
        }
        order_free(o);
        hooks.done(ud, r, &res);
        free(res.chain_pem);
        free(res.key_pem);
        acme_problem_done(&res.problem);
}

static void order_step(struct acme_order *o, const struct order_event *ev)
{
        int r = 0;

        if (ev->kind == ORDER_EV_DEADLINE) {
                r = order_fail(o, -ETIMEDOUT,
                               "the order did not complete within %" PRIu64 " s (in state %s)",
                               o->c->order_timeout_ms / 1000, order_state_str(o->state));
                order_finish(o, r);
                return;
        }
        if (ev->kind == ORDER_EV_REPLY && ev->r < 0) {
                if (o->state == ORDER_ST_NEW_ORDER && retry_without_replaces(o)) {
                        o->replaces_dropped = true;
                        r = send_new_order(o);
                } else if (o->state == ORDER_ST_FINALIZE &&
                           acme__problem_is(&o->call.problem, "orderNotReady")) {
                        /* Authorizations valid but the order not yet ready:
                         * poll it, finalize when it says ready. */
                        o->backoff_ms = 0;
                        r = order_wait(o, ORDER_ST_WAIT_ORDER, NULL);
                } else {
                        acme_problem_done(&o->problem);
                        o->problem = o->call.problem;
                        o->call.problem = (struct acme_problem){};
                        r = ev->r;
                }
                if (r < 0)
                        order_finish(o, r);
                return;
        }

        switch (o->state) {
        case ORDER_ST_START:
                r = send_new_order(o);
                break;
        case ORDER_ST_NEW_ORDER:
                r = handle_new_order(o, ev);
                break;
        case ORDER_ST_AUTHZ:
                r = handle_authz(o, ev);
                break;
        case ORDER_ST_CHALLENGE:
                r = handle_challenge(o, ev);
                break;
        case ORDER_ST_WAIT_AUTHZ:
                r = send_authz(o, ORDER_ST_POLL_AUTHZ);
                break;
        case ORDER_ST_POLL_AUTHZ:
                r = handle_poll_authz(o, ev);
                break;
        case ORDER_ST_FINALIZE:
                r = handle_finalize(o, ev);
                break;
        case ORDER_ST_WAIT_ORDER:
                order_set_state(o, ORDER_ST_POLL_ORDER);
                r = order_post(o, o->url, "", false, "order");
                break;
        case ORDER_ST_POLL_ORDER:
                r = on_order_object(o, ev->json, ev->resp);
                break;
        case ORDER_ST_DOWNLOAD:
                r = handle_download(o, ev);
                break;
        case ORDER_ST_DONE:
        case _ORDER_ST_MAX:
                assert(!"event for a finished order");
                return;
        }
        if (r != 0)
                order_finish(o, r < 0 ? r : 0);
}

static void on_order_reply(struct acme__call *call, int r, const struct acme_http_response *resp,
                           json_t *json)
{
        struct acme_order *o = container_of(call, struct acme_order, call);
        const struct order_event ev = {.kind = ORDER_EV_REPLY, .r = r, .resp = resp, .json = json};

        order_step(o, &ev);
        json_decref(json);
}

static void on_order_wait(struct acme__wake *w)
{
        struct acme_order *o = container_of(w, struct acme_order, wait);

        order_step(o, &(const struct order_event){.kind = ORDER_EV_WAKE});
}

static void on_order_deadline(struct acme__wake *w)
{
        struct acme_order *o = container_of(w, struct acme_order, deadline);

        order_step(o, &(const struct order_event){.kind = ORDER_EV_DEADLINE});
}

/* ---- the API ---------------------------------------------------------------------- */

/* A DNS name, optionally "*." + name: labels of 1..63 letters, digits,
 * '-' (not first or last) and '_', 253 bytes at most, no trailing dot. */
static bool order_name_ok(const char *s)
{
        size_t n = s ? strnlen(s, DNS_NAME_MAX + 3) : 0, label = 0;

        if (n >= 2 && s[0] == '*' && s[1] == '.') {
                s += 2;
                n -= 2;
        }
        if (n == 0 || n > DNS_NAME_MAX)
                return false;
        for (size_t i = 0; i < n; i++) {
                char ch = s[i];

                if (ch == '.') {
                        /* RFC 1123 §2.1: no empty label, no '-' at either end. */
                        if (label == 0 || s[i - 1] == '-')
                                return false;
                        label = 0;
                } else if (ch == '-' && label == 0) {
                        return false;
                } else if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                           (ch >= '0' && ch <= '9') || ch == '-' || ch == '_') {
                        if (++label > DNS_LABEL_MAX)
                                return false;
                } else {
                        return false;
                }
        }
        return label > 0 && s[n - 1] != '-';
}

int acme_order_start(struct acme_client *c, const struct acme_order_params *p,
                     const struct acme_order_hooks *hooks, void *ud, struct acme_order **ret)
{
        struct acme_order *o;
        int r;

        if (!c || c->freed || !p || !hooks || !hooks->install || !hooks->done || !p->names ||
            p->n_names == 0 || p->n_names > ACME_ORDER_NAMES_MAX ||
            (unsigned)p->type >= _ACME_CHALLENGE_MAX)
                return -EINVAL;
        if (p->profile && (!*p->profile || strlen(p->profile) > PROFILE_MAX))
                return -EINVAL;
        if (p->replaces && !acme__cert_id_ok(p->replaces))
                return -EINVAL;
        for (size_t i = 0; i < p->n_names; i++) {
                if (!order_name_ok(p->names[i]))
                        return -EINVAL;
                if (p->names[i][0] == '*' && p->type != ACME_CHALLENGE_DNS01)
                        return -EINVAL;
                for (size_t j = 0; j < i; j++)
                        if (strcasecmp(p->names[i], p->names[j]) == 0)
                                return -EINVAL;
        }
        if (c->n_orders >= ACME_ORDERS_MAX)
                return -EAGAIN;

        o = calloc(1, sizeof(*o));
        if (!o)
                return -ENOMEM;
        o->c = c;
        o->type = p->type;
        o->hooks = *hooks;
        o->ud = ud;
        acme__call_init(&o->call, c, on_order_reply);
        o->wait.fire = on_order_wait;
        o->deadline.fire = on_order_deadline;
        o->names = calloc(p->n_names, sizeof(char *));
        r = o->names ? 0 : -ENOMEM;
        for (size_t i = 0; r >= 0 && i < p->n_names; i++) {
                o->names[i] = strdup(p->names[i]);
                if (!o->names[i]) {
                        r = -ENOMEM;
                        break;
                }
                o->n_names = i + 1;
                for (char *q = o->names[i]; *q; q++)
                        if (*q >= 'A' && *q <= 'Z')
                                *q = (char)(*q - 'A' + 'a');
        }
        if (r >= 0 && p->profile && !(o->profile = strdup(p->profile)))
                r = -ENOMEM;
        if (r >= 0 && p->replaces && !(o->replaces = strdup(p->replaces)))
                r = -ENOMEM;
        if (r >= 0)
                r = p->cert_key ? acme_key_copy(p->cert_key, &o->cert_key)
                                : acme_key_generate(&o->cert_key);
        if (r < 0) {
                order_free(o);
                return r;
        }
        LIST_PREPEND(c->orders, o);
        c->n_orders++;
        acme__wake_arm(c, &o->deadline, c->order_timeout_ms);
        acme__wake_arm(c, &o->wait, 0);
        if (ret)
                *ret = o;
        return 0;
}

void acme_order_cancel(struct acme_order *o)
{
        if (!o)
                return;
        log_debug("acme: order %s cancelled in %s", o->names[0], order_state_str(o->state));
        order_unlink(o);
        order_free(o);
}
