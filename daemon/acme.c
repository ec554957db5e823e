/* SPDX-License-Identifier: Apache-2.0 */
#include "daemon/acme.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>

#include <openssl/mem.h>

#include "acme/cert.h"
#include "acme/client.h"
#include "acme/http.h"
#include "acme/jws.h"
#include "acme/schedule.h"
#include "common/fileio.h"
#include "common/hashmap.h"
#include "common/list.h"
#include "common/log.h"
#include "common/macros.h"
#include "common/siphash.h"
#include "common/strbuf.h"
#include "daemon/acme-internal.h"
#include "daemon/certs.h"
#include "daemon/daemon.h"
#include "daemon/dns.h"
#include "daemon/dnsd.h"
#include "gw-version.h"
#include "proto/codec.h"
#include "workloads/workloads.h"

const char *const gw_acme__state_names[_MC_STATE_MAX] = {
        [MC_SELF_SIGNED] = "self-signed", [MC_PENDING] = "pending", [MC_VALID] = "valid",
        [MC_RENEWING] = "renewing",       [MC_FAILED] = "failed",
};

int64_t gw_acme__now(void)
{
        return (int64_t)time(NULL);
}

const char *gw_acme__fmt_time(int64_t t, char buf[static 32])
{
        time_t tt = (time_t)t;
        struct tm tm;

        if (!gmtime_r(&tt, &tm) || !strftime(buf, 32, "%Y-%m-%d %H:%M UTC", &tm))
                snprintf(buf, 32, "%" PRId64, t);
        return buf;
}

enum mcert_state gw_acme__state(const struct mcert *c)
{
        if (c->order)
                return c->has_cert ? MC_RENEWING : MC_PENDING;
        if (c->backoff.failures > 0 || c->refused)
                return MC_FAILED;
        return c->has_cert ? MC_VALID : MC_SELF_SIGNED;
}

bool gw_acme__on(const struct gw_daemon *d)
{
        return d->cfg.enabled && d->cfg.acme_enabled && d->acme && !d->acme->stopped &&
               d->acme->account_key;
}

static void mcert_free(struct mcert *c)
{
        if (!c)
                return;
        if (c->order) {
                /* Removes installed challenges through the hooks. */
                acme_order_cancel(c->order);
                c->order = NULL;
                c->m->in_flight--;
        }
        if (c->ari)
                acme_ari_cancel(c->ari);
        free(c->key);
        for (size_t i = 0; i < c->n_names; i++)
                free(c->names[i]);
        free(c->issuer);
        free(c->ari_id);
        free(c->last_error);
        for (size_t i = 0; i < ELEMENTSOF(c->dns_values); i++)
                free(c->dns_values[i]);
        free(c);
}

static void mcert_freep_void(void *p)
{
        mcert_free(p);
}

/* Forget what is known of the issued certificate. */
static void mcert_clear_cert(struct mcert *c)
{
        c->has_cert = false;
        c->not_before = c->not_after = c->renew_at = 0;
        c->issuer = mfree(c->issuer);
        c->ari_id = mfree(c->ari_id);
        c->ari_window = false;
        c->ari_next = 0;
}

/* The renewal time without ARI (acme/sched.h: two thirds of the lifetime,
 * spread by the certificate's seed). */
static void mcert_schedule_renewal(struct mcert *c)
{
        int64_t now = gw_acme__now();

        if (acme_sched_renewal_time(c->not_before, c->not_after, NULL, now, c->seed, &c->renew_at) <
            0)
                c->renew_at = now; /* a validity we cannot read: renew */
        c->ari_window = false;
}

/* Take the facts of an issued chain. Returns 0 or -errno (not usable). */
static int mcert_set_chain(struct mcert *c, const char *pem, size_t len)
{
        struct acme_cert_info ci = {};
        int r;

        r = acme_cert_info_parse(pem, len, &ci);
        if (r < 0)
                return r;
        mcert_clear_cert(c);
        c->has_cert = true;
        c->not_before = ci.not_before;
        c->not_after = ci.not_after;
        c->issuer = TAKE_PTR(ci.issuer);
        c->ari_id = TAKE_PTR(ci.ari_id);
        acme_cert_info_done(&ci);
        mcert_schedule_renewal(c);
        return 0;
}

/* Look at what the store holds for @c (at start, or when a certificate
 * comes back into use). */
static void mcert_load(struct mcert *c)
{
        _cleanup_free_ char *pem = NULL;
        size_t len = 0;
        int r;

        r = gw_certs_issued_pem(gw_proxy_certs(c->m->d), c->key, &pem, &len);
        if (r <= 0) {
                mcert_clear_cert(c);
                return;
        }
        r = mcert_set_chain(c, pem, len);
        if (r < 0) {
                log_warning_errno(r, "Stored certificate for %s cannot be read: %m", c->key);
                mcert_clear_cert(c);
        }
}

struct mcert *gw_acme__get(struct gw_acme *m, const char *key)
{
        return hashmap_get(m->certs, key);
}

/* Find or make the entry for @key ("*.d" or an FQDN, any case). */
static struct mcert *mcert_ensure(struct gw_acme *m, const char *key)
{
        _cleanup_free_ char *why = NULL;
        struct mcert *c;
        char *k;
        int r;

        k = strdup(key);
        if (!k)
                return NULL;
        for (char *p = k; *p; p++)
                *p = (char)ascii_tolower((unsigned char)*p);
        c = gw_acme__get(m, k);
        if (c) {
                free(k);
                return c;
        }
        c = calloc(1, sizeof(*c));
        if (!c) {
                free(k);
                return NULL;
        }
        c->m = m;
        c->key = k;
        if (k[0] == '*' && k[1] == '.') {
                c->type = ACME_CHALLENGE_DNS01;
                c->names[0] = strdup(k);
                c->names[1] = strdup(k + 2);
                c->n_names = 2;
        } else {
                c->type = ACME_CHALLENGE_HTTP01;
                c->names[0] = strdup(k);
                c->n_names = 1;
        }
        if (!c->names[0] || (c->n_names == 2 && !c->names[1])) {
                mcert_free(c);
                return NULL;
        }
        /* A certificate the store cannot keep would be issued, thrown away
         * and ordered again after each backoff, spending the CA's limits. */
        r = gw_certs_check_name(k, &why);
        if (r < 0) {
                c->refused = true;
                if (asprintf(&c->last_error, "not ordered: %s", why ? why : strerror(-r)) < 0)
                        c->last_error = NULL;
                c->last_error_at = gw_acme__now();
                log_warning("No certificate is ordered for %s: %s", k, why ? why : strerror(-r));
        }
        if (getrandom(&c->seed, sizeof(c->seed), GRND_NONBLOCK) != sizeof(c->seed))
                c->seed = (uint64_t)(uintptr_t)c ^ (uint64_t)gw_acme__now();
        r = hashmap_put(m->certs, c->key, c);
        if (r < 0) {
                mcert_free(c);
                return NULL;
        }
        mcert_load(c);
        return c;
}

/* ======================================================================
 * Which certificates: from the workloads
 * ====================================================================== */

/* The certificate a workload is served with, when it terminates TLS: the
 * same rule as the routes (daemon/proxy.c). Returns false for passthrough. */
static bool workload_cert(const struct wl_proxy *p, char *buf, size_t size)
{
        if (!p || p->tls_passthrough || !p->fqdn)
                return false;
        return gw_proxy_cert_name(p, buf, size) >= 0;
}

static void cert_unref(struct gw_acme *m, const char *key)
{
        struct mcert *c = gw_acme__get(m, key);
        const char *domain = gw_pubconf_domain(m->d);

        if (!c || c->refs == 0)
                return;
        if (--c->refs > 0)
                return;
        /* The gateway domain's wildcard stays while the domain is configured. */
        if (c->type == ACME_CHALLENGE_DNS01 && domain && strcasecmp(c->key + 2, domain) == 0)
                return;
        log_info("No workload uses the certificate for %s any more; renewals stop", c->key);
        hashmap_remove(m->certs, c->key);
        mcert_free(c);
        gw_acme__queue_pass(m);
}

static void cert_ref(struct gw_acme *m, const char *key)
{
        struct mcert *c = mcert_ensure(m, key);

        if (!c) {
                log_error("Out of memory: the certificate for %s is not managed", key);
                return;
        }
        c->refs++;
        gw_acme__queue_pass(m);
}

void gw_acme_workload_changed(struct gw_daemon *d, const struct wl_proxy *old,
                              const struct wl_proxy *p)
{
        char a[300], b[300];
        bool has_a, has_b;

        if (!d->acme)
                return;
        has_a = workload_cert(old, a, sizeof(a));
        has_b = workload_cert(p, b, sizeof(b));
        if (has_a && has_b && strcasecmp(a, b) == 0)
                return;
        if (has_b)
                cert_ref(d->acme, b);
        if (has_a)
                cert_unref(d->acme, a);
}

static int ref_one(const struct wl_proxy *p, void *userdata)
{
        struct gw_acme *m = userdata;
        char key[300];

        if (workload_cert(p, key, sizeof(key)))
                cert_ref(m, key);
        return 0;
}

/* The configured domain's wildcard exists while the domain does, so its
 * renewal continues when the last name workload goes; a new domain starts
 * with none until a name workload needs it. */
static void sync_domain(struct gw_acme *m)
{
        const char *domain = gw_pubconf_domain(m->d);
        size_t state = 0;
        const char *key;
        void *v;

        for (bool again = true; again;) {
                again = false;
                state = 0;
                while (hashmap_iterate(m->certs, &state, &key, &v)) {
                        struct mcert *c = v;

                        if (c->refs > 0 || c->type != ACME_CHALLENGE_DNS01 ||
                            (domain && strcasecmp(c->key + 2, domain) == 0))
                                continue;
                        hashmap_remove(m->certs, c->key);
                        mcert_free(c);
                        again = true; /* the iteration state is stale */
                        break;
                }
        }
        if (domain && *domain) {
                _cleanup_free_ char *key_w = NULL;
                struct mcert *c;

                if (asprintf(&key_w, "*.%s", domain) < 0)
                        return;
                c = gw_acme__get(m, key_w);
                /* Keep renewing a stored wildcard even with no name workload. */
                if (!c) {
                        _cleanup_free_ char *pem = NULL;
                        size_t len;

                        if (gw_certs_issued_pem(gw_proxy_certs(m->d), key_w, &pem, &len) > 0)
                                (void)mcert_ensure(m, key_w);
                }
        }
}

/* ======================================================================
 * Orders
 * ====================================================================== */

static void routes_use(struct gw_acme *m, const char *key)
{
        /* Put again every route served with @key: new handshakes get the
         * new certificate, open connections keep theirs. */
        int r = gw_proxy_cert_changed(m->d, key);

        if (r < 0)
                log_warning_errno(r, "Failed to update the routes using %s: %m", key);
}

static int on_install(void *ud, const struct acme_challenge *ch)
{
        struct mcert *c = ud;
        struct gw_daemon *d = c->m->d;
        int r;

        if (ch->type == ACME_CHALLENGE_HTTP01)
                return gw_acme__tokens_add(d->tokens, ch->identifier, ch->token,
                                           ch->key_authorization);
        /* dns-01: the TXT at _acme-challenge.<identifier>, two at once while
         * "*.d" and "d" are validated. */
        if (!gw_dnsd_serving(d))
                return -ENOTCONN;
        r = gw_dnsd_txt_add(d, ch->identifier, ch->dns_value);
        if (r < 0)
                return r;
        for (size_t i = 0; i < ELEMENTSOF(c->dns_values); i++)
                if (!c->dns_values[i]) {
                        c->dns_values[i] = strdup(ch->dns_value);
                        break;
                }
        return 0;
}

static void on_remove(void *ud, const struct acme_challenge *ch)
{
        struct mcert *c = ud;
        struct gw_daemon *d = c->m->d;

        if (ch->type == ACME_CHALLENGE_HTTP01) {
                gw_acme__tokens_remove(d->tokens, ch->identifier, ch->token);
                return;
        }
        gw_dnsd_txt_remove(d, ch->identifier, ch->dns_value);
        for (size_t i = 0; i < ELEMENTSOF(c->dns_values); i++)
                if (c->dns_values[i] && streq(c->dns_values[i], ch->dns_value))
                        c->dns_values[i] = mfree(c->dns_values[i]);
}

static void set_error(struct mcert *c, int r, const struct acme_problem *p)
{
        _cleanup_free_ char *text = NULL;
        const char *type = p ? acme_problem_short_type(p) : NULL;

        if (p && (p->type || p->detail)) {
                if (asprintf(&text, "%s%s%s%s%s", p->where ? p->where : "", p->where ? ": " : "",
                             type ? type : "", type && p->detail ? ": " : "",
                             p->detail ? p->detail : "") < 0)
                        text = NULL;
        } else if (asprintf(&text, "%s%s%s", p && p->where ? p->where : "",
                            p && p->where ? ": " : "",
                            strerror(-(p && p->error ? p->error : r))) < 0) {
                text = NULL;
        }
        /* Kept as the server wrote it (bounded): log lines blank control
         * characters, gatewayctl sanitises what it prints. */
        free(c->last_error);
        c->last_error = text ? strndup(text, ERROR_TEXT_MAX) : NULL;
        c->last_error_at = gw_acme__now();
}

static void on_order_done(void *ud, int r, struct acme_order_result *res)
{
        struct mcert *c = ud;
        struct gw_acme *m = c->m;
        struct gw_daemon *d = m->d;
        int64_t now = gw_acme__now();

        c->order = NULL;
        m->in_flight--;
        if (r >= 0) {
                _cleanup_free_ char *err = NULL;
                struct proxy_cert *cert;
                char when[32];

                r = gw_certs_install(gw_proxy_certs(d), c->key, res->chain_pem, res->chain_len,
                                     res->key_pem, res->key_len, &cert, &err);
                if (r >= 0)
                        r = mcert_set_chain(c, res->chain_pem, res->chain_len);
                if (r < 0) {
                        struct acme_problem p = {.error = r, .where = (char *)"install"};

                        log_warning("The certificate issued for %s cannot be used: %s", c->key,
                                    err ? err : strerror(-r));
                        set_error(c, r, &p);
                        goto failed;
                }
                m->orders_valid++;
                acme_sched_succeeded(&c->backoff);
                c->issued_at = now;
                c->ari_next = now + (int64_t)acme_sched_ari_recheck(false, 0, c->seed);
                routes_use(m, c->key);
                log_info("%s the certificate for %s (issuer %s, valid until %s)",
                         c->order_is_renewal ? "Renewed" : "Obtained", c->key, strempty(c->issuer),
                         gw_acme__fmt_time(c->not_after, when));
                gw_acme__save_soon(m);
                gw_acme__queue_pass(m);
                return;
        }
        set_error(c, r, &res->problem);
        if (res->problem.type && strstr(res->problem.type, ":rateLimited"))
                m->orders_rate_limited++;
        else if (res->problem.type)
                m->orders_invalid++;
        else
                m->orders_error++;
        log_warning("ACME order for %s failed: %s", c->key, strempty(c->last_error));
failed:
        acme_sched_failed(&c->backoff, now, res->problem.retry_after_s,
                          c->has_cert ? c->not_after : 0, c->seed);
        gw_acme__save_soon(m);
        gw_acme__queue_pass(m);
}

static int order_start(struct mcert *c)
{
        struct gw_acme *m = c->m;
        const struct gw_config *cfg = &m->d->cfg;
        static const struct acme_order_hooks hooks = {
                .install = on_install,
                .remove = on_remove,
                .done = on_order_done,
        };
        struct acme_order_params p = {
                .names = (const char *const *)c->names,
                .n_names = c->n_names,
                .type = c->type,
                .profile = cfg->acme_profile,
                .replaces = c->has_cert && acme_client_has_ari(m->client) ? c->ari_id : NULL,
        };
        int r;

        r = acme_order_start(m->client, &p, &hooks, c, &c->order);
        if (r < 0)
                return r;
        c->order_is_renewal = c->has_cert;
        m->in_flight++;
        log_debug("ACME order for %s started", c->key);
        return 0;
}

static void on_ari(void *ud, int r, struct acme_renewal_info *ri,
                   const struct acme_problem *problem)
{
        struct mcert *c = ud;
        struct gw_acme *m = c->m;
        int64_t now = gw_acme__now();

        c->ari = NULL;
        if (r == -EOPNOTSUPP) {
                m->no_ari_until = now + ARI_OFF_SEC;
                c->ari_next = m->no_ari_until;
                gw_acme__queue_pass(m);
                return;
        }
        if (r < 0) {
                m->ari_errors++;
                log_debug("renewalInfo for %s failed: %s", c->key,
                          problem && problem->detail ? problem->detail : strerror(-r));
                c->ari_next = now + (int64_t)acme_sched_ari_recheck(
                                            problem && problem->retry_after_s,
                                            problem ? problem->retry_after_s : 0, c->seed);
                gw_acme__queue_pass(m);
                return;
        }
        m->ari_fetches++;
        struct acme_sched_window w = {ri->start, ri->end};
        int64_t at;

        if (acme_sched_renewal_time(c->not_before, c->not_after, &w, now, c->seed, &at) == 0) {
                c->renew_at = at;
                c->ari_window = true;
        }
        c->ari_next = now + (int64_t)acme_sched_ari_recheck(ri->retry_after_s > 0,
                                                            ri->retry_after_s, c->seed);
        /* The file holds every certificate (about 120 bytes each): with
         * 10,000 of them, rechecked every 6 hours, answers come every 2 s
         * and a write per answer would rewrite 1.2 MB every 5 s. The times
         * only spare the CA a request after a restart; a clean stop writes
         * them, a crash loses at most an hour of them. */
        gw_acme__save_within(m, ARI_SAVE_SEC * 1000);
        gw_acme__queue_pass(m);
}

/* ======================================================================
 * The scheduling pass
 * ====================================================================== */

/* When @c next needs something, or INT64_MAX. */
int64_t gw_acme__due(const struct gw_acme *m, const struct mcert *c, bool *ret_ari)
{
        int64_t order_at, ari_at = INT64_MAX;

        *ret_ari = false;
        if (c->order || c->ari || c->refused)
                return INT64_MAX;
        order_at = c->has_cert ? c->renew_at : 0;
        if (c->backoff.next > order_at)
                order_at = c->backoff.next;
        if (c->has_cert && c->ari_id)
                ari_at = MAX(c->ari_next, m->no_ari_until);
        if (ari_at < order_at) {
                *ret_ari = true;
                return ari_at;
        }
        return order_at;
}

/* Can @c's challenge be answered now? NULL if so, else why not; *ret_wait
 * when it will be without a SIGHUP (the listener is configured but not
 * serving yet: at start, while the namespace is made, or while a bind is
 * retried). An order that nobody answers would only spend the CA's
 * failed-validation limit and start a backoff. */
const char *gw_acme__challenge_blocked(const struct gw_acme *m, const struct mcert *c,
                                       bool *ret_wait)
{
        struct gw_daemon *d = m->d;

        *ret_wait = false;
        if (c->type == ACME_CHALLENGE_HTTP01) {
                if (!d->cfg.http_port)
                        return "not ordered: HTTP-01 is answered on [proxy] http_port, which is 0";
                *ret_wait = !gw_health_ok(d, GW_CHECK_HTTP);
                return *ret_wait ? "the http listener is not serving yet" : NULL;
        }
        if (!d->cfg.dns_listen_port)
                return "not ordered: DNS-01 is answered by the [dns] listen_port responder, which "
                       "is off (0)";
        *ret_wait = !gw_dnsd_serving(d);
        return *ret_wait ? "the _acme-challenge responder is not listening yet" : NULL;
}

static void on_timer(uv_timer_t *t);

static void run_pass(struct gw_acme *m)
{
        int64_t now = gw_acme__now(), next = INT64_MAX;
        size_t state = 0;
        const char *key;
        void *v;

        m->pass_queued = false;
        if (!gw_acme__on(m->d))
                return;
        if (!m->client && gw_acme__client_open(m) < 0)
                return;
        while (hashmap_iterate(m->certs, &state, &key, &v)) {
                struct mcert *c = v;
                bool ari, wait;
                int64_t due = gw_acme__due(m, c, &ari);
                const char *why;
                int r;

                if (due > now) {
                        next = MIN(next, due);
                        continue;
                }
                if (ari) {
                        r = acme_ari_fetch(m->client, c->ari_id, on_ari, c, &c->ari);
                        if (r < 0) {
                                c->ari_next =
                                        now + (int64_t)acme_sched_ari_recheck(false, 0, c->seed);
                                next = MIN(next, c->ari_next);
                        }
                        continue;
                }
                why = gw_acme__challenge_blocked(m, c, &wait);
                if (wait) {
                        /* Nothing logged: this is the normal start-up. */
                        next = MIN(next, now + PASS_MIN_MS / 1000);
                        continue;
                }
                if (why) {
                        /* Configuration: logged once (a pointer compare: a
                         * pass walks every entry); a SIGHUP runs a pass. */
                        if (c->held != why) {
                                log_warning("No certificate is ordered for %s: %s", c->key,
                                            why + strlen("not ordered: "));
                                free(c->last_error);
                                c->last_error = strdup(why);
                                c->last_error_at = now;
                                c->held = why;
                        }
                        continue;
                }
                c->held = NULL;
                if (m->in_flight >= ORDERS_MAX)
                        continue; /* the next order's end runs another pass */
                r = order_start(c);
                if (r < 0) {
                        struct acme_problem p = {.error = r, .where = (char *)"newOrder"};

                        set_error(c, r, &p);
                        acme_sched_failed(&c->backoff, now, 0, c->has_cert ? c->not_after : 0,
                                          c->seed);
                        next = MIN(next, c->backoff.next);
                }
        }
        if (next != INT64_MAX) {
                uint64_t ms = next <= now ? PASS_MIN_MS : (uint64_t)(next - now) * 1000;

                uv_timer_start(&m->timer, on_timer, MAX(ms, (uint64_t)PASS_MIN_MS), 0);
        } else {
                uv_timer_stop(&m->timer);
        }
}

static void on_timer(uv_timer_t *t)
{
        run_pass(t->data);
}

/* A pass a little later, so a burst of changes (a restore, a reload) runs
 * one pass, and after the bus reply queued with the change is written:
 * libuv runs due timers before it polls, and the pass walks every entry
 * and may sign and send an order (with 10,000 certificates about 1.5 ms
 * ahead of the SetFQDNProxy reply, bench/acme_scale.py). The loop's time
 * is updated first: the change may have taken a while (files, fsync). */
void gw_acme__queue_pass(struct gw_acme *m)
{
        if (m->pass_queued || !m->timer_init || m->stopped)
                return;
        m->pass_queued = true;
        uv_update_time(m->d->loop);
        uv_timer_start(&m->timer, on_timer, PASS_DELAY_MS, 0);
}

/* ======================================================================
 * Lifecycle
 * ====================================================================== */

int gw_acme_start(struct gw_daemon *d)
{
        struct gw_acme *m;
        int r;

        m = calloc(1, sizeof(*m));
        if (!m)
                return log_error_errno(-ENOMEM, "Out of memory");
        m->d = d;
        d->acme = m;
        m->certs = hashmap_new(0);
        if (!m->certs || asprintf(&m->dir, "%s/acme", d->root) < 0 ||
            asprintf(&m->state_path, "%s/acme/state.json", d->root) < 0)
                return log_error_errno(-ENOMEM, "Out of memory");
        r = mkdir_p(m->dir, 0700);
        if (r < 0) /* the account key cannot be stored: ACME stays off */
                log_error_errno(r, "Failed to create %s: %m", m->dir);
        uv_timer_init(d->loop, &m->timer);
        uv_timer_init(d->loop, &m->save_timer);
        m->timer.data = m->save_timer.data = m;
        m->timer_init = true;
        /* ACME problems never keep the gateway from serving: without a
         * usable key (logged) ACME stays off until a SIGHUP finds one. */
        if (gw_acme__load_account(m) < 0)
                log_notice("ACME is off until a SIGHUP finds a usable account key");

        r = wl_registry_foreach(d->reg, ref_one, m);
        if (r < 0)
                return log_error_errno(r, "Failed to look at the workloads' certificates: %m");
        sync_domain(m);
        gw_acme__load_state(m);
        log_info("Managing %zu certificate(s) with ACME (%s)%s", hashmap_size(m->certs),
                 d->cfg.acme_directory, gw_acme__on(d) ? "" : "; ACME is off");
        gw_acme__queue_pass(m);
        return 0;
}

void gw_acme_apply(struct gw_daemon *d)
{
        struct gw_acme *m = d->acme;

        if (!m)
                return;
        gw_acme__resolves_retry(m);
        sync_domain(m);
        if (!m->account_key && d->cfg.enabled && d->cfg.acme_enabled &&
            gw_acme__load_account(m) < 0)
                log_notice("ACME is off until a SIGHUP finds a usable account key");
        if (!gw_acme__on(d)) {
                gw_acme__client_close(m);
                return;
        }
        /* A new directory, contact or CA: a new client (orders restart). */
        if (m->client && gw_acme__client_open(m) < 0)
                return;
        gw_acme__queue_pass(m);
}

void gw_acme_stop(struct gw_daemon *d)
{
        struct gw_acme *m = d->acme;

        if (!m || m->stopped)
                return;
        gw_acme__client_close(m);
        gw_acme__save_now(m);
        m->stopped = true;
        if (m->timer_init) {
                uv_close((uv_handle_t *)&m->timer, NULL);
                uv_close((uv_handle_t *)&m->save_timer, NULL);
        }
}

void gw_acme_free(struct gw_daemon *d)
{
        struct gw_acme *m = d->acme;

        if (!m)
                return;
        hashmap_free_with(m->certs, mcert_freep_void);
        acme_key_free(m->account_key);
        free(m->account_url);
        free(m->account_dir);
        free(m->dir);
        free(m->state_path);
        free(m);
        d->acme = NULL;
}
