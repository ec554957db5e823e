/* SPDX-License-Identifier: Apache-2.0 */
#include "proxy/worker.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>

#include "common/list.h"
#include "common/macros.h"
#include "proxy/climits.h"
#include "proxy/h1-server.h"
#include "proxy/routes.h"
#include "proxy/svcstats.h"

static void worker_maybe_finish(struct proxy_worker *w);

static void on_upstream_freed(void *ud)
{
        worker_maybe_finish(ud);
}

static unsigned on_pool_room(void *ud)
{
        return proxy_worker_pool_room(ud);
}

static struct proxy_routes *on_health_snap(void *ud)
{
        return proxy_worker_snap(ud);
}

int proxy_worker_init(struct proxy_worker *w, uv_loop_t *loop, const struct proxy_config *cfg,
                      struct proxy_route_table *routes, unsigned fds,
                      void (*conn_freed)(struct proxy_worker *w))
{
        const uint64_t durs[_PROXY_TQ_MAX] = {
                [PROXY_TQ_HANDSHAKE] = cfg->handshake_timeout_ms,
                [PROXY_TQ_REQUEST] = cfg->request_timeout_ms,
                [PROXY_TQ_KEEPALIVE] = cfg->keepalive_timeout_ms,
                [PROXY_TQ_CONNECT] = cfg->connect_timeout_ms,
                [PROXY_TQ_UPSTREAM] = cfg->upstream_timeout_ms,
                [PROXY_TQ_IDLE] = cfg->idle_timeout_ms,
                [PROXY_TQ_LINGER] = PROXY_LINGER_MS,
                [PROXY_TQ_POOL] = cfg->upstream_idle_timeout_ms,
                [PROXY_TQ_BACKOFF] = PROXY_BACKOFF_MS,
                [PROXY_TQ_BODY] = cfg->body_timeout_ms,
                [PROXY_TQ_SEND] = cfg->send_timeout_ms,
        };
        int r;

        w->cfg = cfg;
        w->routes = routes;
        w->fds = fds;
        w->conn_freed = conn_freed;
        w->rbuf = malloc(cfg->relay_buf_size);
        w->scratch = malloc(PROXY_SCRATCH_SIZE);
        if (!w->rbuf || !w->scratch)
                return -ENOMEM;
        r = ev_init(&w->ev, loop, durs, _PROXY_TQ_MAX);
        if (r < 0)
                return r;
        w->ev_init = true;
        r = upstream_pool_init(&w->pool, &(struct upstream_pool_env){
                                                 .ev = &w->ev,
                                                 .factory = cfg->socket_factory,
                                                 .factory_ud = cfg->socket_factory_ud,
                                                 .idle_max = cfg->upstream_idle_max,
                                                 .max_total = cfg->max_conns_per_worker,
                                                 .tq_pool = PROXY_TQ_POOL,
                                                 .room = on_pool_room,
                                                 .freed = on_upstream_freed,
                                                 .ud = w,
                                         });
        if (r < 0)
                return r;
        proxy_health_init(&w->health, &(struct proxy_health_env){
                                              .loop = loop,
                                              .ev = &w->ev,
                                              .pool = &w->pool,
                                              .tq_connect = PROXY_TQ_CONNECT,
                                              .tq_response = PROXY_TQ_UPSTREAM,
                                              .check_min_ms = cfg->backend_check_min_ms,
                                              .check_max_ms = cfg->backend_check_max_ms,
                                              .snap = on_health_snap,
                                              .ud = w,
                                      });
        return h1_ctx_new(w, &w->h1);
}

void proxy_worker_done(struct proxy_worker *w)
{
        assert(w->n_conns == 0 && w->pool.n_open == 0);
        w->h1 = h1_ctx_free(w->h1);
        upstream_pool_done(&w->pool);
        if (w->ev_init)
                ev_done(&w->ev);
        w->ev_init = false;
        w->snap = proxy_routes_unref(w->snap);
        w->rbuf = mfree(w->rbuf);
        w->scratch = mfree(w->scratch);
}

struct proxy_routes *proxy_worker_snap(struct proxy_worker *w)
{
        return proxy_routes_refresh(w->routes, &w->snap);
}

/* ---- connections ---- */

void proxy_conn_add(struct proxy_worker *w, struct proxy_conn *c, const struct proxy_conn_ops *ops,
                    bool https)
{
        c->w = w;
        c->ops = ops;
        c->https = https;
        /* The accept path admitted it (climits_admit()): the connection
         * holds that count until it is freed. */
        c->climit = w->admit_handle;
        c->climit_held = w->admitted;
        w->admit_handle = 0;
        w->admitted = false;
        LIST_PREPEND(w->conns, c);
        w->n_conns++;
        atomic_fetch_add_explicit(&w->stats.active, 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&w->stats.open[!https], 1, memory_order_relaxed);
}

void proxy_conn_switch(struct proxy_conn *from, struct proxy_conn *to,
                       const struct proxy_conn_ops *ops)
{
        struct proxy_worker *w = from->w;

        /* The new one goes first, so a walk that is at @from goes on with
         * the connections after it, not with @to. */
        LIST_REMOVE(w->conns, from);
        to->w = w;
        to->ops = ops;
        to->https = from->https;
        to->climit = from->climit;
        to->climit_held = from->climit_held;
        LIST_PREPEND(w->conns, to);
}

void proxy_conn_freed(struct proxy_conn *c, enum proxy_close_reason reason)
{
        struct proxy_worker *w = c->w;

        LIST_REMOVE(w->conns, c);
        w->n_conns--;
        if (c->climit_held)
                climits_release(w->climits, c->climit);
        atomic_fetch_sub_explicit(&w->stats.active, 1, memory_order_relaxed);
        atomic_fetch_sub_explicit(&w->stats.open[!c->https], 1, memory_order_relaxed);
        proxy_stat_add(&w->stats.closed[reason], 1);
        if (w->conn_freed)
                w->conn_freed(w);
        worker_maybe_finish(w);
}

void proxy_request_done(struct proxy_worker *w, struct proxy_route *route,
                        const struct proxy_request_info *ri)
{
        unsigned status = ri->status;

        if (status >= 100 && status <= 599) {
                proxy_stat_add(&w->stats.http_requests, 1);
                proxy_stat_add(&w->stats.http_status[status / 100 - 1], 1);
        }
        if (!route)
                return;
        proxy_counters_add(route->counters, status, ri->req_bytes, ri->resp_bytes);
        /* -ENOMEM: the request is in the plain counters above only. */
        (void)proxy_svcstats_add(route->counters, ri);
}

/* Descriptors: a client connection claims two of the worker's share (its
 * socket and a backend's, which it may open at any time), an idle pooled
 * backend connection one. max_conns_per_worker <= fds / 2, so client
 * connections below the limit always fit; the pool gets what they leave. */
unsigned proxy_worker_pool_room(const struct proxy_worker *w)
{
        unsigned claimed = 2 * w->n_conns;

        return claimed < w->fds ? w->fds - claimed : 0;
}

void proxy_worker_apply_limits(struct proxy_worker *w, const struct proxy_config *cfg)
{
        static const unsigned tqs[] = {
                PROXY_TQ_HANDSHAKE, PROXY_TQ_REQUEST, PROXY_TQ_KEEPALIVE, PROXY_TQ_CONNECT,
                PROXY_TQ_UPSTREAM,  PROXY_TQ_IDLE,    PROXY_TQ_BODY,      PROXY_TQ_SEND,
        };
        const uint64_t durs[] = {
                cfg->handshake_timeout_ms, cfg->request_timeout_ms,  cfg->keepalive_timeout_ms,
                cfg->connect_timeout_ms,   cfg->upstream_timeout_ms, cfg->idle_timeout_ms,
                cfg->body_timeout_ms,      cfg->send_timeout_ms,
        };

        for (unsigned i = 0; i < ELEMENTSOF(tqs); i++)
                if (w->ev.tq[tqs[i]].dur != durs[i])
                        ev_tq_set_dur(&w->ev, tqs[i], durs[i]);
}

/* ---- route changes and stop ---- */

void proxy_worker_routes_changed(struct proxy_worker *w)
{
        const struct proxy_routes *snap = proxy_worker_snap(w);

        /* O(connections) lookups per change. A connection closing (or
         * switching protocol) stays on the list until it is freed from the
         * reap, so walking on is safe. */
        for (struct proxy_conn *c = w->conns, *next; c; c = next) {
                next = c->next;
                c->ops->routes_changed(c);
        }
        upstream_pool_routes_changed(&w->pool, snap);
}

static void on_ev_stopped(struct ev *ev, void *ud)
{
        struct proxy_worker *w = ud;

        w->finished = true;
        if (w->conn_freed)
                w->conn_freed(w);
}

static void worker_maybe_finish(struct proxy_worker *w)
{
        if (!w->stopping || w->ev_stopping || w->n_conns > 0 || w->pool.n_open > 0)
                return;
        w->ev_stopping = true;
        ev_stop(&w->ev, on_ev_stopped, w);
}

void proxy_worker_begin_stop(struct proxy_worker *w)
{
        if (w->stopping)
                return;
        w->stopping = true;
        for (struct proxy_conn *c = w->conns, *next; c; c = next) {
                next = c->next;
                c->ops->stop(c, false);
        }
        upstream_pool_close_idle(&w->pool);
        proxy_health_stop(&w->health);
        h1_ctx_begin_stop(w->h1);
        worker_maybe_finish(w);
}

void proxy_worker_close_all(struct proxy_worker *w)
{
        proxy_worker_begin_stop(w);
        for (struct proxy_conn *c = w->conns, *next; c; c = next) {
                next = c->next;
                c->ops->stop(c, true);
        }
        upstream_pool_close_idle(&w->pool);
        worker_maybe_finish(w);
}
