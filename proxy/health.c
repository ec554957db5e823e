/* SPDX-License-Identifier: Apache-2.0 */
#include "proxy/health.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/list.h"
#include "common/log.h"
#include "common/macros.h"
#include "common/siphash.h"
#include "proxy/ev.h"
#include "proxy/upstream.h"

/* "HEAD / HTTP/1.1\r\nHost: " + host + the rest. */
#define CHECK_REQ_MAX (PROXY_ROUTE_HOST_MAX + 128)

/* One active check: a backend that is down, checked from this worker until
 * it answers or its route no longer has it. */
struct proxy_hcheck {
        struct proxy_hcheck *prev, *next; /* in hs->checks */
        struct proxy_health *hs;
        struct proxy_route *route;      /* ref: the version last checked with */
        struct proxy_backend_health *h; /* ref */
        struct upstream *u;             /* the check's connection, or NULL */
        uv_timer_t timer;
        struct iovq q; /* the HEAD request on its way */
        uint32_t got;  /* response bytes compared with "HTTP/" */
        bool sent;     /* the request went out: the response is due */
        bool closing;  /* the timer is closing: the memory goes with it */
        char req[CHECK_REQ_MAX];
};

static int64_t realtime_ms(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_REALTIME, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

uint64_t proxy_health_backoff_ms(uint64_t min_ms, uint64_t max_ms, unsigned fails, uint64_t *rnd)
{
        uint64_t d = min_ms, x = *rnd;

        for (unsigned i = 1; i < fails && d < max_ms; i++)
                d *= 2;
        d = MIN(d, max_ms);
        /* xorshift64 */
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *rnd = x;
        return d - d / 2 + (d / 2 ? x % (d / 2 + 1) : 0);
}

bool proxy_route_all_down(const struct proxy_route *r)
{
        for (size_t i = 0; i < r->n_backends; i++)
                if (!proxy_backend_down(&r->backends[i]))
                        return false;
        return true;
}

void proxy_health_init(struct proxy_health *hs, const struct proxy_health_env *env)
{
        struct siphash_key k;

        *hs = (struct proxy_health){.env = *env};
        siphash_key_random(&k);
        memcpy(&hs->rnd, &k, sizeof(hs->rnd));
        hs->rnd |= 1;
}

/* ---- checks ---- */

static void on_timer_closed(uv_handle_t *t)
{
        struct proxy_hcheck *c = t->data;

        proxy_route_unref(c->route);
        proxy_backend_health_unref(c->h);
        free(c);
}

/* The check ends (the backend is up, gone, or the worker stops): nobody
 * owns the backend's check any more. */
static void check_end(struct proxy_hcheck *c)
{
        struct proxy_health *hs = c->hs;

        if (c->closing)
                return;
        c->closing = true;
        upstream_close(TAKE_PTR(c->u));
        atomic_store_explicit(&c->h->checking, false, memory_order_relaxed);
        LIST_REMOVE(hs->checks, c);
        hs->n_checks--;
        uv_close((uv_handle_t *)&c->timer, on_timer_closed);
}

static void on_check_timer(uv_timer_t *t);

static void check_schedule(struct proxy_hcheck *c)
{
        struct proxy_health *hs = c->hs;
        unsigned fails = atomic_load_explicit(&c->h->fails, memory_order_relaxed);
        uint64_t d = proxy_health_backoff_ms(hs->env.check_min_ms, hs->env.check_max_ms,
                                             MAX(fails, 1u), &hs->rnd);

        (void)uv_timer_start(&c->timer, on_check_timer, d, 0);
}

static const char *backend_text(const struct proxy_hcheck *c)
{
        for (size_t i = 0; i < c->route->n_backends; i++)
                if (c->route->backends[i].health == c->h)
                        return c->route->backends[i].text;
        return "?";
}

static void check_failed(struct proxy_hcheck *c, enum proxy_backend_failure f, int err)
{
        struct proxy_backend_health *h = c->h;

        upstream_close(TAKE_PTR(c->u));
        atomic_fetch_add_explicit(&h->fails, 1, memory_order_relaxed);
        atomic_store_explicit(&h->last_error, (unsigned)f + 1, memory_order_relaxed);
        atomic_store_explicit(&h->last_errno, err, memory_order_relaxed);
        atomic_store_explicit(&h->last_error_ms, realtime_ms(), memory_order_relaxed);
        /* Also after another worker's check marked it up meanwhile: this
         * one just saw it fail. */
        if (!atomic_exchange_explicit(&h->down, true, memory_order_relaxed))
                atomic_store_explicit(&h->since_ms, realtime_ms(), memory_order_relaxed);
        log_debug("proxy: check of backend %s of %s failed: %s%s%s", backend_text(c), c->route->id,
                  proxy_backend_failure_str(f), err ? ": " : "", err ? strerror(err) : "");
        check_schedule(c);
}

static void check_ok(struct proxy_hcheck *c)
{
        struct proxy_backend_health *h = c->h;

        log_info("proxy: backend %s of %s is up again", backend_text(c), c->route->id);
        atomic_store_explicit(&h->fails, 0, memory_order_relaxed);
        /* "checking" goes first (check_end): a failure reported after the
         * backend is up again starts a new check instead of being left
         * down without one. */
        check_end(c);
        atomic_store_explicit(&h->since_ms, realtime_ms(), memory_order_relaxed);
        atomic_store_explicit(&h->down, false, memory_order_relaxed);
}

/* Read the response: any "HTTP/" is an answer. */
static void check_read(struct proxy_hcheck *c)
{
        static const char want[] = "HTTP/";
        struct sock *s = c->u->s;
        char buf[64];
        ssize_t k;

        while (s->rd_ready) {
                k = sock_read(s, buf, sizeof(buf));
                if (k == -EAGAIN)
                        break;
                if (k <= 0)
                        return check_failed(c, PROXY_BACKEND_FAIL_RESET, k < 0 ? (int)-k : 0);
                for (ssize_t i = 0; i < k && c->got < sizeof(want) - 1; i++, c->got++)
                        if (buf[i] != want[c->got])
                                return check_failed(c, PROXY_BACKEND_FAIL_RESET, EPROTO);
                if (c->got == sizeof(want) - 1)
                        return check_ok(c);
        }
        if (sock_want(s, true) < 0)
                check_failed(c, PROXY_BACKEND_FAIL_RESET, EIO);
}

static void check_connected(struct proxy_hcheck *c)
{
        struct sock *s = c->u->s;
        int r;

        if (c->route->mode == PROXY_ROUTE_PASSTHROUGH)
                return check_ok(c); /* the TLS belongs to the backend: a connect is all */
        if (!c->sent) {
                r = sock_write(s, &c->q, NULL);
                if (r < 0)
                        return check_failed(c, PROXY_BACKEND_FAIL_RESET, -r);
                if (c->q.left > 0) {
                        if (sock_want(s, false) < 0)
                                check_failed(c, PROXY_BACKEND_FAIL_RESET, EIO);
                        return;
                }
                c->sent = true;
                sock_deadline(s, c->hs->env.tq_response);
        }
        check_read(c);
}

static void on_check_event(struct sock *s, unsigned events)
{
        struct proxy_hcheck *c = s->data;
        int r;

        if (events & EV_TIMEOUT)
                return check_failed(
                        c, s->connecting ? PROXY_BACKEND_FAIL_TIMEOUT : PROXY_BACKEND_FAIL_RESET,
                        ETIMEDOUT);
        if (s->connecting) {
                if (!s->connect_event && !s->err)
                        return;
                r = s->err ? s->err : sock_connect_result(s);
                if (r < 0)
                        return check_failed(c, PROXY_BACKEND_FAIL_CONNECT, -r);
                sock_deadline(s, EV_TQ_NONE);
        }
        check_connected(c);
}

static void on_check_timer(uv_timer_t *t)
{
        struct proxy_hcheck *c = t->data;
        struct proxy_health *hs = c->hs;
        const struct proxy_routes *snap = hs->env.snap(hs->env.ud);
        struct proxy_route *now = proxy_routes_lookup_id(snap, c->route->id);
        const struct proxy_backend *be = NULL;
        struct upstream_key k;
        bool factory_failed;
        int r;

        if (hs->stopping)
                return;
        /* The route of the workload as it is now (renamed or with another
         * mode too: the block says it is the same backend), if it still
         * has this backend. */
        if (!now)
                return check_end(c);
        for (size_t i = 0; i < now->n_backends && !be; i++)
                if (now->backends[i].health == c->h)
                        be = &now->backends[i];
        if (!be)
                return check_end(c);
        if (now != c->route) {
                proxy_route_unref(c->route);
                c->route = proxy_route_ref(now);
        }

        c->got = 0;
        c->sent = false;
        iovq_reset(&c->q);
        if (c->route->mode == PROXY_ROUTE_TERMINATE) {
                const char *host = c->route->host;
                int n;

                if (host[0] == '*' && host[1] == '.')
                        host += 2; /* a wildcard route: its parent name */
                n = snprintf(c->req, sizeof(c->req),
                             "HEAD / HTTP/1.1\r\nHost: %s\r\nUser-Agent: gatewayd-health-check\r\n"
                             "Connection: close\r\n\r\n",
                             host);
                assert(n > 0 && (size_t)n < sizeof(c->req));
                iovq_add(&c->q, c->req, (size_t)n);
        }
        upstream_key_of(&k, (const struct sockaddr *)&be->addr, 0);
        r = upstream_dial(hs->env.pool, c->route, &k, /* pooled= */ false, on_check_event, c, &c->u,
                          &factory_failed);
        if (r < 0) {
                c->u = NULL;
                if (factory_failed) {
                        /* Not the backend's fault: try again later. */
                        check_schedule(c);
                        return;
                }
                return check_failed(c, PROXY_BACKEND_FAIL_CONNECT, -r);
        }
        if (!c->u->s->connecting)
                return check_connected(c);
        sock_deadline(c->u->s, hs->env.tq_connect);
        if (sock_want(c->u->s, false) < 0)
                check_failed(c, PROXY_BACKEND_FAIL_CONNECT, EIO);
}

static int check_start(struct proxy_health *hs, struct proxy_route *route, size_t idx)
{
        struct proxy_hcheck *c = calloc(1, sizeof(*c));

        if (!c)
                return -ENOMEM;
        if (uv_timer_init(hs->env.loop, &c->timer) < 0) {
                free(c);
                return -ENOMEM;
        }
        c->timer.data = c;
        c->hs = hs;
        c->route = proxy_route_ref(route);
        c->h = proxy_backend_health_ref(route->backends[idx].health);
        LIST_PREPEND(hs->checks, c);
        hs->n_checks++;
        check_schedule(c);
        return 0;
}

void proxy_health_report(struct proxy_health *hs, struct proxy_route *route, size_t idx,
                         enum proxy_backend_failure f, int err)
{
        struct proxy_backend_health *h;
        int64_t now = realtime_ms();

        assert(route && idx < route->n_backends && (unsigned)f < _PROXY_BACKEND_FAIL_MAX);
        h = route->backends[idx].health;
        atomic_fetch_add_explicit(&route->counters->backend_failures[f], 1, memory_order_relaxed);
        atomic_store_explicit(&h->last_error, (unsigned)f + 1, memory_order_relaxed);
        atomic_store_explicit(&h->last_errno, err, memory_order_relaxed);
        atomic_store_explicit(&h->last_error_ms, now, memory_order_relaxed);
        if (!hs || hs->stopping)
                return;
        /* The first to mark it down logs it; the first to claim its check
         * runs it. Without a check it would never come back: if none can be
         * started it is not marked down. */
        if (atomic_exchange_explicit(&h->checking, true, memory_order_relaxed)) {
                if (!atomic_exchange_explicit(&h->down, true, memory_order_relaxed))
                        atomic_store_explicit(&h->since_ms, now, memory_order_relaxed);
                return;
        }
        atomic_store_explicit(&h->fails, 1, memory_order_relaxed);
        if (check_start(hs, route, idx) < 0) {
                atomic_store_explicit(&h->checking, false, memory_order_relaxed);
                return;
        }
        if (!atomic_exchange_explicit(&h->down, true, memory_order_relaxed)) {
                atomic_store_explicit(&h->since_ms, now, memory_order_relaxed);
                log_info("proxy: backend %s of %s is down: %s%s%s", route->backends[idx].text,
                         route->id, proxy_backend_failure_str(f), err ? ": " : "",
                         err ? strerror(err) : "");
        }
}

void proxy_health_adopt(struct proxy_health *hs, struct proxy_route *route, size_t idx)
{
        struct proxy_backend_health *h = route->backends[idx].health;

        if (!hs || hs->stopping || atomic_load_explicit(&h->checking, memory_order_relaxed) ||
            atomic_exchange_explicit(&h->checking, true, memory_order_relaxed))
                return;
        if (check_start(hs, route, idx) < 0)
                atomic_store_explicit(&h->checking, false, memory_order_relaxed);
}

void proxy_health_stop(struct proxy_health *hs)
{
        hs->stopping = true;
        while (hs->checks)
                check_end(hs->checks);
}
