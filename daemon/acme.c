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
#include "daemon/certs.h"
#include "daemon/daemon.h"
#include "daemon/dns.h"
#include "daemon/dnsd.h"
#include "gw-version.h"
#include "proto/codec.h"
#include "workloads/workloads.h"

#define ORDERS_MAX     4    /* orders in flight at once (rate limits, memory) */
#define TOKENS_MAX     256  /* HTTP-01 challenges installed at once */
#define STATE_SAVE_MS  5000 /* backoff state written at most this often */
#define STATE_FILE_MAX (64u << 20)
#define ERROR_TEXT_MAX 512   /* bytes of a problem kept per certificate */
#define ARI_OFF_SEC    86400 /* after "no renewalInfo": ask the directory again in a day */
#define ARI_SAVE_SEC   3600  /* state.json written this late when only ARI times changed */
#define PASS_MIN_MS    1000  /* timer granularity for future events */
#define PASS_DELAY_MS  10    /* from a change to its scheduling pass */

/* ======================================================================
 * HTTP-01 token store (the only part used from other threads)
 * ====================================================================== */

struct token {
        char *host;    /* identifier, lower-case */
        char *token;   /* as the server gave it */
        char *keyauth; /* the response body */
};

struct gw_acme_tokens {
        pthread_mutex_t lock; /* guards n and entries */
        size_t n;
        struct token entries[TOKENS_MAX];
};

int gw_acme_tokens_new(struct gw_acme_tokens **ret)
{
        struct gw_acme_tokens *t = calloc(1, sizeof(*t));

        if (!t)
                return -ENOMEM;
        pthread_mutex_init(&t->lock, NULL);
        *ret = t;
        return 0;
}

static void token_done(struct token *e)
{
        free(e->host);
        free(e->token);
        if (e->keyauth)
                OPENSSL_cleanse(e->keyauth, strlen(e->keyauth));
        free(e->keyauth);
        *e = (struct token){};
}

struct gw_acme_tokens *gw_acme_tokens_free(struct gw_acme_tokens *t)
{
        if (!t)
                return NULL;
        for (size_t i = 0; i < t->n; i++)
                token_done(&t->entries[i]);
        pthread_mutex_destroy(&t->lock);
        free(t);
        return NULL;
}

static int tokens_add(struct gw_acme_tokens *t, const char *host, const char *token,
                      const char *keyauth)
{
        struct token e = {strdup(host), strdup(token), strdup(keyauth)};
        int r = 0;

        if (!e.host || !e.token || !e.keyauth) {
                token_done(&e);
                return -ENOMEM;
        }
        for (char *p = e.host; *p; p++)
                *p = (char)ascii_tolower((unsigned char)*p);
        pthread_mutex_lock(&t->lock);
        if (t->n < TOKENS_MAX)
                t->entries[t->n++] = e;
        else
                r = -ENOSPC;
        pthread_mutex_unlock(&t->lock);
        if (r < 0)
                token_done(&e);
        return r;
}

static void tokens_remove(struct gw_acme_tokens *t, const char *host, const char *token)
{
        pthread_mutex_lock(&t->lock);
        for (size_t i = 0; i < t->n; i++)
                if (strcasecmp(t->entries[i].host, host) == 0 &&
                    streq(t->entries[i].token, token)) {
                        token_done(&t->entries[i]);
                        t->entries[i] = t->entries[--t->n];
                        t->entries[t->n] = (struct token){};
                        break;
                }
        pthread_mutex_unlock(&t->lock);
}

int gw_acme_token_lookup(void *ud, const char *host, const char *token, char *out, size_t size)
{
        struct gw_acme_tokens *t = ud;
        int r = -ENOENT;

        if (!t)
                return -ENOENT;
        pthread_mutex_lock(&t->lock);
        for (size_t i = 0; i < t->n; i++) {
                const struct token *e = &t->entries[i];
                size_t n;

                /* The token must have been given for this very name: a
                 * token of one identifier is not served under another. */
                if (strcasecmp(e->host, host) != 0 || !streq(e->token, token))
                        continue;
                n = strlen(e->keyauth);
                if (n >= size) {
                        r = -ENOBUFS;
                        break;
                }
                memcpy(out, e->keyauth, n + 1);
                r = (int)n;
                break;
        }
        pthread_mutex_unlock(&t->lock);
        return r;
}

/* ======================================================================
 * Managed certificates
 * ====================================================================== */

enum mcert_state {
        MC_SELF_SIGNED, /* no issued certificate, no order yet (or ACME off) */
        MC_PENDING,     /* first order in flight */
        MC_VALID,       /* issued and not due */
        MC_RENEWING,    /* issued, renewal order in flight */
        MC_FAILED,      /* the last order failed; the next attempt is scheduled */
        _MC_STATE_MAX,
};

static const char *const mcert_state_names[_MC_STATE_MAX] = {
        [MC_SELF_SIGNED] = "self-signed", [MC_PENDING] = "pending", [MC_VALID] = "valid",
        [MC_RENEWING] = "renewing",       [MC_FAILED] = "failed",
};

struct mcert {
        struct gw_acme *m;
        char *key;      /* "*.d" or the FQDN, lower-case: the hashmap key */
        char *names[2]; /* what the order asks for: [key] or ["*.d", "d"] */
        size_t n_names;
        enum acme_challenge_type type; /* http-01 for an FQDN, dns-01 for a wildcard */
        unsigned refs;                 /* terminated workloads served with it */
        uint64_t seed;                 /* spreads this certificate's times */

        bool has_cert;      /* an issued, unexpired certificate is stored */
        int64_t not_before; /* its validity */
        int64_t not_after;
        char *issuer;      /* short printable issuer */
        char *ari_id;      /* ARI certificate ID, or NULL */
        int64_t renew_at;  /* when the renewal order is due */
        int64_t ari_next;  /* when to ask the server's renewalInfo again (0: now) */
        bool ari_window;   /* renew_at comes from an ARI window */
        int64_t issued_at; /* when this process installed it (0: loaded) */

        struct acme_sched_backoff backoff; /* failed orders in a row, and when to try again */
        char *last_error;                  /* "<type>: <detail>" of the last failure, or NULL */
        int64_t last_error_at;

        struct acme_order *order; /* in flight */
        struct acme_ari_req *ari; /* in flight */
        bool order_is_renewal;    /* the order replaces a valid certificate */
        bool refused;             /* never ordered: the store could not keep it (last_error) */
        const char *held;         /* challenge_blocked()'s reason last logged (static), or NULL */
        char *dns_values[2];      /* dns-01 values installed for the order */
};

struct gw_acme {
        struct gw_daemon *d;
        struct hashmap *certs; /* key -> struct mcert */
        char *dir;             /* <root>/acme */
        char *state_path;      /* <dir>/state.json */

        struct acme_key *account_key;
        char *account_url; /* for account_dir */
        char *account_dir; /* the directory URL the account belongs to */
        struct acme_http *http;
        struct acme_client *client;
        char *client_sig;             /* directory|email|ca_file the client was made for */
        struct resolve_req *resolves; /* the HTTPS client's lookups in flight */

        uv_timer_t timer;      /* next scheduling pass */
        uv_timer_t save_timer; /* debounced state.json write */
        bool timer_init, save_pending, pass_queued, stopped;
        unsigned in_flight;   /* orders */
        int64_t no_ari_until; /* the directory has no renewalInfo: not before this */

        /* Counters for Prometheus. */
        uint64_t orders_valid, orders_invalid, orders_rate_limited, orders_error;
        uint64_t ari_fetches, ari_errors;
};

static int64_t now_sec(void)
{
        return (int64_t)time(NULL);
}

static const char *fmt_time(int64_t t, char buf[static 32])
{
        time_t tt = (time_t)t;
        struct tm tm;

        if (!gmtime_r(&tt, &tm) || !strftime(buf, 32, "%Y-%m-%d %H:%M UTC", &tm))
                snprintf(buf, 32, "%" PRId64, t);
        return buf;
}

static enum mcert_state mcert_state(const struct mcert *c)
{
        if (c->order)
                return c->has_cert ? MC_RENEWING : MC_PENDING;
        if (c->backoff.failures > 0 || c->refused)
                return MC_FAILED;
        return c->has_cert ? MC_VALID : MC_SELF_SIGNED;
}

static bool acme_on(const struct gw_daemon *d)
{
        return d->cfg.enabled && d->cfg.acme_enabled && d->acme && !d->acme->stopped &&
               d->acme->account_key;
}

static void queue_pass(struct gw_acme *m);

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
        int64_t now = now_sec();

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

static struct mcert *mcert_get(struct gw_acme *m, const char *key)
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
        c = mcert_get(m, k);
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
                c->last_error_at = now_sec();
                log_warning("No certificate is ordered for %s: %s", k, why ? why : strerror(-r));
        }
        if (getrandom(&c->seed, sizeof(c->seed), GRND_NONBLOCK) != sizeof(c->seed))
                c->seed = (uint64_t)(uintptr_t)c ^ (uint64_t)now_sec();
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
        struct mcert *c = mcert_get(m, key);
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
        queue_pass(m);
}

static void cert_ref(struct gw_acme *m, const char *key)
{
        struct mcert *c = mcert_ensure(m, key);

        if (!c) {
                log_error("Out of memory: the certificate for %s is not managed", key);
                return;
        }
        c->refs++;
        queue_pass(m);
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
                c = mcert_get(m, key_w);
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
 * Backoff state (state.json): survives restarts so that a failing name
 * does not hit the server again at every start.
 * ====================================================================== */

static void on_save_timer(uv_timer_t *t)
{
        struct gw_acme *m = t->data;
        json_t *o = json_object();
        size_t state = 0;
        const char *key;
        char *text;
        void *v;
        int r = -ENOMEM;

        m->save_pending = false;
        if (!o)
                goto fail;
        while (hashmap_iterate(m->certs, &state, &key, &v)) {
                const struct mcert *c = v;
                json_t *e;

                if (c->backoff.failures == 0 && c->ari_next == 0)
                        continue;
                e = json_pack("{s:I, s:I, s:s?, s:I, s:I}", "failures",
                              (json_int_t)c->backoff.failures, "next_attempt",
                              (json_int_t)c->backoff.next, "last_error", c->last_error,
                              "last_error_at", (json_int_t)c->last_error_at, "ari_next",
                              (json_int_t)c->ari_next);
                if (!e || json_object_set_new(o, key, e) < 0)
                        goto fail;
        }
        text = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
        json_decref(o);
        o = NULL;
        if (!text)
                goto fail;
        r = write_file_atomic(m->dir, "state.json", text, strlen(text), 0600);
        free(text);
        if (r >= 0)
                return;
fail:
        json_decref(o);
        log_warning_errno(r, "Failed to save the ACME backoff state to %s: %m", m->state_path);
}

/* Write state.json within @ms, or when an earlier write is already due. */
static void save_within(struct gw_acme *m, uint64_t ms)
{
        if (!m->timer_init || (m->save_pending && uv_timer_get_due_in(&m->save_timer) <= ms))
                return;
        m->save_pending = true;
        uv_timer_start(&m->save_timer, on_save_timer, ms, 0);
}

static void save_soon(struct gw_acme *m)
{
        save_within(m, STATE_SAVE_MS);
}

static void load_state(struct gw_acme *m)
{
        int64_t now = now_sec();
        _cleanup_free_ char *text = NULL;
        json_t *o, *v;
        const char *key;
        size_t len;
        int r;

        r = read_file_full(m->state_path, STATE_FILE_MAX, &text, &len);
        if (r == -ENOENT)
                return;
        if (r < 0) {
                log_warning_errno(r, "Failed to read %s (backoff state starts afresh): %m",
                                  m->state_path);
                return;
        }
        o = json_loadb(text, len, 0, NULL);
        if (!json_is_object(o)) {
                _cleanup_free_ char *aside = NULL;

                json_decref(o);
                /* Kept for a look; the next save writes a new one. */
                if (asprintf(&aside, "%s.corrupt-%lld", m->state_path, (long long)now) >= 0 &&
                    rename(m->state_path, aside) >= 0)
                        log_warning("%s is not a JSON object; moved aside to %s, the backoff "
                                    "state starts afresh",
                                    m->state_path, aside);
                else
                        log_warning("%s is not a JSON object; the backoff state starts afresh",
                                    m->state_path);
                return;
        }
        json_object_foreach(o, key, v)
        {
                struct mcert *c = mcert_get(m, key);
                json_int_t failures = 0, next = 0, at = 0, ari = 0;
                json_t *jerr = NULL;
                const char *err;

                /* "last_error" is null for a certificate without one (most
                 * of them): "s" would refuse the entry, ARI times and all. */
                if (!c || c->refused ||
                    json_unpack(v, "{s?I, s?I, s?o, s?I, s?I}", "failures", &failures,
                                "next_attempt", &next, "last_error", &jerr, "last_error_at", &at,
                                "ari_next", &ari) < 0)
                        continue;
                err = json_string_value(jerr);
                c->backoff.failures = failures > 0 && failures < 1000 ? (unsigned)failures : 0;
                /* Nothing further ahead than the scheduler ever sets (a
                 * Retry-After is honoured up to 7 days, ARI re-checked at
                 * least daily): a damaged value must not stop a name's
                 * orders for good (or overflow the timer's milliseconds). */
                c->backoff.next = MAX(MIN(next, now + ACME_SCHED_RETRY_AFTER_MAX), 0);
                c->last_error_at = at;
                c->ari_next = MAX(MIN(ari, now + MAX(ARI_OFF_SEC, ACME_SCHED_ARI_MAX)), 0);
                if (err && !(c->last_error = strndup(err, ERROR_TEXT_MAX)))
                        continue;
        }
        json_decref(o);
}

/* ======================================================================
 * Account and client
 * ====================================================================== */

static int load_account(struct gw_acme *m)
{
        _cleanup_free_ char *path = NULL, *pem = NULL, *meta_path = NULL, *meta = NULL;
        bool new_key = false;
        size_t len;
        int r;

        if (asprintf(&path, "%s/account.key", m->dir) < 0)
                return -ENOMEM;
        r = read_file_full(path, 64 * 1024, &pem, &len);
        if (r >= 0) {
                r = acme_key_from_pem(pem, len, &m->account_key);
                OPENSSL_cleanse(pem, len);
                if (r < 0) {
                        _cleanup_free_ char *aside = NULL;

                        /* Never silently replace an account key: keep the file. */
                        if (asprintf(&aside, "%s.corrupt-%lld", path, (long long)now_sec()) >= 0 &&
                            rename(path, aside) >= 0)
                                log_warning("The ACME account key %s is damaged; moved aside to "
                                            "%s, a new account is made",
                                            path, aside);
                        else
                                return log_error_errno(r, "The ACME account key %s is damaged: %m",
                                                       path);
                }
        } else if (r != -ENOENT) {
                return log_error_errno(r, "Failed to read the ACME account key %s: %m", path);
        }
        if (!m->account_key) {
                _cleanup_free_ char *out = NULL;
                size_t n = 0;

                r = acme_key_generate(&m->account_key);
                if (r >= 0)
                        r = acme_key_to_pem(m->account_key, &out, &n);
                if (r >= 0)
                        r = write_file_atomic(m->dir, "account.key", out, n, 0600);
                if (out)
                        OPENSSL_cleanse(out, n);
                if (r < 0) {
                        /* Not used unless stored: a restart would make
                         * another account. */
                        m->account_key = acme_key_free(m->account_key);
                        return log_error_errno(r, "Failed to create the ACME account key: %m");
                }
                log_info("Created a new ACME account key in %s", path);
                new_key = true;
        }

        /* The account URL belongs to one directory and one key: a new key
         * (the old one was damaged) signing under the old key's account
         * URL has every request refused, so it registers anew. Files
         * written before the key was recorded in them are trusted only
         * with the key they were written with, which a new key is not. */
        if (asprintf(&meta_path, "%s/account.json", m->dir) < 0)
                return -ENOMEM;
        if (read_file_full(meta_path, 64 * 1024, &meta, &len) >= 0) {
                json_t *o = json_loadb(meta, len, 0, NULL);
                const char *dir = NULL, *url = NULL, *key = NULL;

                if (o &&
                    json_unpack(o, "{s:s, s:s, s?s}", "directory", &dir, "url", &url, "key",
                                &key) == 0 &&
                    (key ? streq(key, acme_key_thumbprint(m->account_key)) : !new_key)) {
                        m->account_dir = strdup(dir);
                        m->account_url = strdup(url);
                }
                json_decref(o);
        }
        return 0;
}

static void on_account(void *ud, const char *account_url)
{
        struct gw_acme *m = ud;
        const char *dir = m->d->cfg.acme_directory;
        json_t *o;
        char *text;
        int r = -ENOMEM;

        log_info("ACME account at %s: %s", dir, account_url);
        free(m->account_url);
        free(m->account_dir);
        m->account_url = strdup(account_url);
        m->account_dir = strdup(dir);
        o = json_pack("{s:s, s:s, s:s}", "directory", dir, "url", account_url, "key",
                      acme_key_thumbprint(m->account_key));
        text = o ? json_dumps(o, JSON_COMPACT) : NULL;
        json_decref(o);
        if (text)
                r = write_file_atomic(m->dir, "account.json", text, strlen(text), 0600);
        free(text);
        if (r < 0)
                log_warning_errno(r, "Failed to save the ACME account URL: %m");
}

/* The daemon's c-ares resolver behind the HTTPS client's hook. A SIGHUP
 * that changes [dns] replaces d->dns, and gw_dns_free() drops the old
 * one's queries without calling back (and frees them): requests are kept
 * in a list so gw_acme_apply() can ask the new resolver again. */
struct resolve_req {
        struct gw_acme *m;
        struct resolve_req *prev, *next; /* in m->resolves */
        acme_resolve_done_cb *done;
        void *done_ud;
        struct gw_dns *dns; /* the resolver asked; its query dies with it */
        struct gw_dns_query *q;
        char *host;
};

static void resolve_req_free(struct resolve_req *rr)
{
        LIST_REMOVE(rr->m->resolves, rr);
        free(rr->host);
        free(rr);
}

static void on_resolved(const char *error, char **addrs, size_t n, void *userdata)
{
        struct resolve_req *rr = userdata;
        acme_resolve_done_cb *done = rr->done;
        void *done_ud = rr->done_ud;

        /* Gone before the call: @done may start another lookup. */
        resolve_req_free(rr);
        done(done_ud, error ? -ENOENT : 0, error ? NULL : addrs, error ? 0 : n);
}

static int resolve(void *resolve_ud, const char *host, acme_resolve_done_cb *done, void *done_ud,
                   void **ret_handle)
{
        struct gw_daemon *d = resolve_ud;
        struct resolve_req *rr;
        int r;

        if (!d->dns || !d->acme)
                return -ENOTCONN;
        rr = calloc(1, sizeof(*rr));
        if (!rr)
                return -ENOMEM;
        rr->host = strdup(host);
        if (!rr->host) {
                free(rr);
                return -ENOMEM;
        }
        rr->m = d->acme;
        rr->done = done;
        rr->done_ud = done_ud;
        rr->dns = d->dns;
        LIST_PREPEND(rr->m->resolves, rr);
        *ret_handle = rr;
        r = gw_dns_lookup(d->dns, host, on_resolved, rr, &rr->q);
        if (r < 0) {
                resolve_req_free(rr);
                return r;
        }
        return 0;
}

static void resolve_cancel(void *resolve_ud, void *handle)
{
        struct gw_daemon *d = resolve_ud;
        struct resolve_req *rr = handle;

        /* A query of a replaced resolver is freed already. */
        if (rr->dns == d->dns)
                gw_dns_query_cancel(rr->q);
        resolve_req_free(rr);
}

/* After a SIGHUP replaced the resolver: lookups the old one took with it
 * are made again with the new one (or fail, which the HTTPS client
 * reports like any failed lookup). */
static void resolves_retry(struct gw_acme *m)
{
        struct gw_dns *dns = m->d->dns;

        /* From the head each time: a failure's callback may start or cancel
         * other lookups. */
        for (;;) {
                struct resolve_req *rr = m->resolves;
                int r = -ENOTCONN;

                while (rr && rr->dns == dns)
                        rr = rr->next;
                if (!rr)
                        return;
                log_debug("Looking up %s again with the new resolver", rr->host);
                rr->dns = dns;
                rr->q = NULL;
                if (dns)
                        r = gw_dns_lookup(dns, rr->host, on_resolved, rr, &rr->q);
                if (r < 0) {
                        acme_resolve_done_cb *done = rr->done;
                        void *done_ud = rr->done_ud;

                        resolve_req_free(rr);
                        done(done_ud, r, NULL, 0);
                }
        }
}

static void client_close(struct gw_acme *m)
{
        size_t state = 0;
        const char *key;
        void *v;

        /* Orders belong to the client: cancel them first (hooks remove the
         * challenges), then the client, then its transport. */
        while (hashmap_iterate(m->certs, &state, &key, &v)) {
                struct mcert *c = v;

                if (c->order) {
                        acme_order_cancel(c->order);
                        c->order = NULL;
                        m->in_flight--;
                }
                if (c->ari) {
                        acme_ari_cancel(c->ari);
                        c->ari = NULL;
                }
        }
        acme_client_free(m->client);
        m->client = NULL;
        acme_http_free(m->http);
        m->http = NULL;
        m->client_sig = mfree(m->client_sig);
}

static int client_open(struct gw_acme *m)
{
        const struct gw_config *cfg = &m->d->cfg;
        _cleanup_free_ char *sig = NULL, *err = NULL;
        int r;

        if (asprintf(&sig, "%s|%s|%s", cfg->acme_directory, strempty(cfg->acme_email),
                     strempty(cfg->acme_ca_file)) < 0)
                return -ENOMEM;
        if (m->client && streq(sig, m->client_sig))
                return 0;
        client_close(m);

        struct acme_http_config hc = {
                .loop = m->d->loop,
                .ca_file = cfg->acme_ca_file,
                .resolve = resolve,
                .resolve_cancel = resolve_cancel,
                .resolve_ud = m->d,
                .user_agent = "gatewayd/" GATEWAYD_VERSION,
        };
        r = acme_http_new(&hc, &m->http, &err);
        if (r < 0)
                return log_error_errno(r, "ACME is off: the HTTPS client cannot start: %s",
                                       err ? err : strerror(-r));
        struct acme_client_config cc = {
                .loop = m->d->loop,
                .http = acme_http_ops_default(),
                .http_transport = m->http,
                .directory_url = cfg->acme_directory,
                .account_key = m->account_key,
                .account_url = m->account_dir && streq(m->account_dir, cfg->acme_directory)
                                       ? m->account_url
                                       : NULL,
                .email = cfg->acme_email,
                .on_account = on_account,
                .ud = m,
        };
        r = acme_client_new(&cc, &m->client);
        if (r < 0) {
                acme_http_free(m->http);
                m->http = NULL;
                return log_error_errno(r, "ACME is off: cannot make the client: %m");
        }
        m->client_sig = TAKE_PTR(sig);
        m->no_ari_until = 0;
        return 0;
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
                return tokens_add(d->tokens, ch->identifier, ch->token, ch->key_authorization);
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
                tokens_remove(d->tokens, ch->identifier, ch->token);
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
        c->last_error_at = now_sec();
}

static void on_order_done(void *ud, int r, struct acme_order_result *res)
{
        struct mcert *c = ud;
        struct gw_acme *m = c->m;
        struct gw_daemon *d = m->d;
        int64_t now = now_sec();

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
                         fmt_time(c->not_after, when));
                save_soon(m);
                queue_pass(m);
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
        save_soon(m);
        queue_pass(m);
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
        int64_t now = now_sec();

        c->ari = NULL;
        if (r == -EOPNOTSUPP) {
                m->no_ari_until = now + ARI_OFF_SEC;
                c->ari_next = m->no_ari_until;
                queue_pass(m);
                return;
        }
        if (r < 0) {
                m->ari_errors++;
                log_debug("renewalInfo for %s failed: %s", c->key,
                          problem && problem->detail ? problem->detail : strerror(-r));
                c->ari_next = now + (int64_t)acme_sched_ari_recheck(
                                            problem && problem->retry_after_s,
                                            problem ? problem->retry_after_s : 0, c->seed);
                queue_pass(m);
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
        save_within(m, ARI_SAVE_SEC * 1000);
        queue_pass(m);
}

/* ======================================================================
 * The scheduling pass
 * ====================================================================== */

/* When @c next needs something, or INT64_MAX. */
static int64_t mcert_due(const struct gw_acme *m, const struct mcert *c, bool *ret_ari)
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
static const char *challenge_blocked(const struct gw_acme *m, const struct mcert *c, bool *ret_wait)
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
        int64_t now = now_sec(), next = INT64_MAX;
        size_t state = 0;
        const char *key;
        void *v;

        m->pass_queued = false;
        if (!acme_on(m->d))
                return;
        if (!m->client && client_open(m) < 0)
                return;
        while (hashmap_iterate(m->certs, &state, &key, &v)) {
                struct mcert *c = v;
                bool ari, wait;
                int64_t due = mcert_due(m, c, &ari);
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
                why = challenge_blocked(m, c, &wait);
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
static void queue_pass(struct gw_acme *m)
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
        if (load_account(m) < 0)
                log_notice("ACME is off until a SIGHUP finds a usable account key");

        r = wl_registry_foreach(d->reg, ref_one, m);
        if (r < 0)
                return log_error_errno(r, "Failed to look at the workloads' certificates: %m");
        sync_domain(m);
        load_state(m);
        log_info("Managing %zu certificate(s) with ACME (%s)%s", hashmap_size(m->certs),
                 d->cfg.acme_directory, acme_on(d) ? "" : "; ACME is off");
        queue_pass(m);
        return 0;
}

void gw_acme_apply(struct gw_daemon *d)
{
        struct gw_acme *m = d->acme;

        if (!m)
                return;
        resolves_retry(m);
        sync_domain(m);
        if (!m->account_key && d->cfg.enabled && d->cfg.acme_enabled && load_account(m) < 0)
                log_notice("ACME is off until a SIGHUP finds a usable account key");
        if (!acme_on(d)) {
                client_close(m);
                return;
        }
        /* A new directory, contact or CA: a new client (orders restart). */
        if (m->client && client_open(m) < 0)
                return;
        queue_pass(m);
}

void gw_acme_stop(struct gw_daemon *d)
{
        struct gw_acme *m = d->acme;

        if (!m || m->stopped)
                return;
        client_close(m);
        if (m->save_pending) {
                uv_timer_stop(&m->save_timer);
                on_save_timer(&m->save_timer);
        }
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

/* ======================================================================
 * Visibility
 * ====================================================================== */

static int encode_one(struct strbuf *out, const struct mcert *c)
{
        int64_t now = now_sec();
        bool ari, wait, held;
        int64_t due = mcert_due(c->m, c, &ari);
        int r;

        r = proto_encode_map_header(out, 12);
        if (r >= 0)
                r = proto_encode_key_str(out, "Name", c->key);
        if (r >= 0)
                r = proto_encode_str(out, "Names");
        if (r >= 0)
                r = proto_encode_array_header(out, (uint32_t)c->n_names);
        for (size_t i = 0; r >= 0 && i < c->n_names; i++)
                r = proto_encode_str(out, c->names[i]);
        if (r >= 0)
                r = proto_encode_key_str(out, "Challenge", acme_challenge_type_str(c->type));
        if (r >= 0)
                r = proto_encode_key_str(out, "State", mcert_state_names[mcert_state(c)]);
        if (r >= 0)
                r = proto_encode_key_str(out, "Issuer", strempty(c->issuer));
        if (r >= 0 && (r = proto_encode_str(out, "NotBefore")) >= 0)
                r = proto_encode_int64(out, c->has_cert ? c->not_before : 0);
        if (r >= 0 && (r = proto_encode_str(out, "NotAfter")) >= 0)
                r = proto_encode_int64(out, c->has_cert ? c->not_after : 0);
        if (r >= 0 && (r = proto_encode_str(out, "RenewAt")) >= 0)
                r = proto_encode_int64(out, c->has_cert ? c->renew_at : 0);
        /* Held by the configuration: nothing happens before a SIGHUP. */
        held = challenge_blocked(c->m, c, &wait) && !wait;
        if (r >= 0 && (r = proto_encode_str(out, "NextAttempt")) >= 0)
                r = proto_encode_int64(out,
                                       c->order || !acme_on(c->m->d) || due == INT64_MAX || held
                                               ? 0
                                               : MAX(due, now));
        if (r >= 0)
                r = proto_encode_key_str(out, "LastError", strempty(c->last_error));
        if (r >= 0 && (r = proto_encode_str(out, "LastErrorTime")) >= 0)
                r = proto_encode_int64(out, c->last_error ? c->last_error_at : 0);
        if (r >= 0)
                r = proto_encode_key_uint(out, "Workloads", c->refs);
        return r;
}

int gw_acme_encode_list(struct gw_daemon *d, struct strbuf *out)
{
        struct gw_acme *m = d->acme;
        size_t state = 0;
        const char *key;
        void *v;
        int r;

        r = proto_encode_array_header(out, m ? (uint32_t)hashmap_size(m->certs) : 0);
        while (r >= 0 && m && hashmap_iterate(m->certs, &state, &key, &v))
                r = encode_one(out, v);
        return r;
}

/* A label value in the exposition format (backslash, quote, newline). */
static int put_label(struct strbuf *out, const char *s)
{
        int r = 0;

        for (; r >= 0 && *s; s++) {
                if (*s == '\\' || *s == '"')
                        r = strbuf_putc(out, '\\');
                if (r >= 0)
                        r = *s == '\n' ? strbuf_puts(out, "\\n") : strbuf_putc(out, *s);
        }
        return r;
}

int gw_acme_render_metrics(struct gw_daemon *d, struct strbuf *out)
{
        struct gw_acme *m = d->acme;
        unsigned by_state[_MC_STATE_MAX] = {};
        size_t state = 0;
        const char *key;
        void *v;
        int r;

        if (!m)
                return 0;
        r = strbuf_puts(out, "# HELP traefik_tls_certs_not_after Certificate expiry (Unix time) of "
                             "the certificates gatewayd obtained.\n"
                             "# TYPE traefik_tls_certs_not_after gauge\n");
        while (r >= 0 && hashmap_iterate(m->certs, &state, &key, &v)) {
                const struct mcert *c = v;

                by_state[mcert_state(c)]++;
                if (!c->has_cert)
                        continue;
                r = strbuf_puts(out, "traefik_tls_certs_not_after{cn=\"");
                if (r >= 0)
                        r = put_label(out, c->key);
                if (r >= 0)
                        r = strbuf_puts(out, "\",sans=\"");
                for (size_t i = 0; r >= 0 && i < c->n_names; i++) {
                        if (i > 0)
                                r = strbuf_putc(out, ',');
                        if (r >= 0)
                                r = put_label(out, c->names[i]);
                }
                if (r >= 0)
                        r = strbuf_printf(out, "\"} %" PRId64 "\n", c->not_after);
        }
        if (r >= 0)
                r = strbuf_puts(out, "# HELP gatewayd_acme_certificates Managed certificates by "
                                     "state.\n# TYPE gatewayd_acme_certificates gauge\n");
        for (int i = 0; r >= 0 && i < _MC_STATE_MAX; i++)
                r = strbuf_printf(out, "gatewayd_acme_certificates{state=\"%s\"} %u\n",
                                  mcert_state_names[i], by_state[i]);
        if (r >= 0)
                r = strbuf_printf(
                        out,
                        "# HELP gatewayd_acme_orders_total ACME orders by result.\n"
                        "# TYPE gatewayd_acme_orders_total counter\n"
                        "gatewayd_acme_orders_total{result=\"valid\"} %" PRIu64 "\n"
                        "gatewayd_acme_orders_total{result=\"invalid\"} %" PRIu64 "\n"
                        "gatewayd_acme_orders_total{result=\"rate_limited\"} %" PRIu64 "\n"
                        "gatewayd_acme_orders_total{result=\"error\"} %" PRIu64 "\n"
                        "# HELP gatewayd_acme_orders_in_flight ACME orders running now.\n"
                        "# TYPE gatewayd_acme_orders_in_flight gauge\n"
                        "gatewayd_acme_orders_in_flight %u\n"
                        "# HELP gatewayd_acme_renewal_info_total ARI renewalInfo answers by "
                        "result.\n"
                        "# TYPE gatewayd_acme_renewal_info_total counter\n"
                        "gatewayd_acme_renewal_info_total{result=\"ok\"} %" PRIu64 "\n"
                        "gatewayd_acme_renewal_info_total{result=\"error\"} %" PRIu64 "\n",
                        m->orders_valid, m->orders_invalid, m->orders_rate_limited, m->orders_error,
                        m->in_flight, m->ari_fetches, m->ari_errors);
        return r;
}
