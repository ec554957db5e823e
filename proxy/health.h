/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* Backend health, the engine's side (docs/internals/proxy.md, "Backend
 * health"). The state of each backend is a struct proxy_backend_health
 * (proxy/routes.h) that every worker reads and writes with relaxed atomics
 * and that every version of a route keeping the backend shares. Here:
 *
 *   - passive: a request path reports a failure (connect error, connect
 *     timeout, reset before any response byte on a new connection); the
 *     backend is counted and marked down, and the worker that marked it
 *     takes its active check unless another one already has it;
 *   - active: while down, a check every few seconds (jittered exponential
 *     back-off between check_min_ms and check_max_ms): a TCP connect for
 *     passthrough routes, `HEAD /` for terminated ones (any HTTP response
 *     counts as up), dialled like a request (the pool's socket factory, so
 *     in the route's namespace), without a client request paying for it.
 *     A success marks the backend up.
 *
 * One struct proxy_health per worker; everything here runs on that
 * worker's thread. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "proxy/routes.h"

struct ev;
struct proxy_routes;
struct upstream_pool;
struct proxy_hcheck;

struct proxy_health_env {
        uv_loop_t *loop;
        struct ev *ev;
        struct upstream_pool *pool; /* dials the checks */
        unsigned tq_connect;        /* deadline queue: a check's connect */
        unsigned tq_response;       /* deadline queue: a check's response */
        uint64_t check_min_ms;      /* first check after this (jittered) */
        uint64_t check_max_ms;      /* the back-off's bound */
        /* The current route snapshot (borrowed): a check follows its route
         * to the current version and ends when the backend is gone. */
        struct proxy_routes *(*snap)(void *ud);
        void *ud;
};

struct proxy_health {
        struct proxy_health_env env;
        struct proxy_hcheck *checks; /* running on this worker */
        unsigned n_checks;
        uint64_t rnd; /* xorshift state for the jitter */
        bool stopping;
};

void proxy_health_init(struct proxy_health *hs, const struct proxy_health_env *env);
/* Close every check: its socket now, its memory once its timer closed (the
 * loop must run). Their backends keep their state; no check owns them. */
void proxy_health_stop(struct proxy_health *hs);

/* Backend @idx of @route failed for @f (@err: positive errno or 0). Counts
 * it on the route's counters, records it and marks the backend down; the
 * first worker to mark it starts its check. @hs NULL: counted and recorded
 * only. */
void proxy_health_report(struct proxy_health *hs, struct proxy_route *route, size_t idx,
                         enum proxy_backend_failure f, int err);

/* Backend @idx of @route is down: if no worker checks it (its check ended
 * with the engine that ran it, or could not start), this one takes it. */
void proxy_health_adopt(struct proxy_health *hs, struct proxy_route *route, size_t idx);

static inline bool proxy_backend_down(const struct proxy_backend *be)
{
        return atomic_load_explicit(&be->health->down, memory_order_relaxed);
}

/* Whether every backend of @r is down. */
bool proxy_route_all_down(const struct proxy_route *r);

/* The delay before check number @fails + 1 (@fails >= 1 failures in a
 * row): min << (fails - 1), at most max, then "equal jitter" (half fixed,
 * half random from @rnd). Exposed for the tests. */
uint64_t proxy_health_backoff_ms(uint64_t min_ms, uint64_t max_ms, unsigned fails, uint64_t *rnd);
