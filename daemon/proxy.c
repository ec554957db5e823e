/* SPDX-License-Identifier: Apache-2.0 */
/* The daemon's side of the proxy engine: the route table that mirrors the
 * workload registry, the engine's lifecycle (the capability switch, the
 * listeners inside the gateway namespace, graceful stop) and the socket
 * factory that dials backends inside namespaces.
 *
 * Routes: one persistent builder on top of the published snapshot. Every
 * committed workload change is put/removed, committed and published, and
 * the workers are told, before the bus reply leaves (gateway.c calls in
 * here after wl_registry_commit()). A restore at start loads every
 * workload into the builder and publishes once.
 *
 * Listeners: opened through the netns worker (inside the gateway namespace
 * when it is managed, else in the daemon's own namespace), so binding never
 * blocks the loop. What is asked for (struct listen_spec: namespace path
 * and the identity of the namespace now bound there, address, ports) is
 * compared with what the engine serves; a difference opens new sockets and
 * either starts the engine or swaps them in with
 * proxy_engine_replace_listeners(). Comparing the namespace's identity is
 * what moves the listeners into a namespace made anew, whichever path made
 * it (a repair, a reload, the switch, a run that failed half-way): there
 * is no "created" flag to forget. Failures are logged with their cause and
 * retried with a backoff; the bus is unaffected. Each listener's state goes
 * to health.c from one place, listeners_report().
 *
 * Stopping the engine joins its threads and may wait for relayed
 * connections (stop_timeout_ms): on SIGHUP (capability off) that runs on
 * the libuv thread pool so the loop keeps answering the bus; at SIGTERM it
 * runs inline, as the last thing before the state is saved. */
#include "proxy/proxy.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>

#include <systemd/sd-daemon.h>

#include "common/list.h"
#include "common/log.h"
#include "common/macros.h"
#include "daemon/accesslog.h"
#include "daemon/acme.h"
#include "daemon/certs.h"
#include "daemon/daemon.h"
#include "netns/netns.h"
#include "proxy/routes.h"
#include "proxy/tls.h"

#define RETRY_MIN_MS   1000
#define RETRY_MAX_MS   30000
#define RECLAIM_MS     10
#define LISTEN_BACKLOG 511
/* Draining (SIGTERM): STATUS= every DRAIN_STATUS_MS, a log line every
 * DRAIN_LOG_MS, and systemd told to wait the drain deadline plus
 * DRAIN_MARGIN_MS (the namespace's teardown and the state's save). */
#define DRAIN_STATUS_MS 1000u
#define DRAIN_LOG_MS    5000u
#define DRAIN_MARGIN_MS 15000u
/* Busy connections' deadline when the engine stops for a restart or the
 * capability switch (not SIGTERM). */
#define RESTART_STOP_MS 5000u

/* Descriptors the daemon keeps out of the proxy's reach (issue 10): the
 * engine gets the open-file limit minus these (proxy_config.max_fds), so
 * however many connections clients open, the bus, state writes, the
 * metrics endpoint and the namespace work still find free descriptors.
 * Counted generously (docs/internals/daemon.md, "Process limits"):
 *   stdio, journal and sd_notify sockets                          8
 *   the main loop (epoll, eventfd, signal pipes, libuv's spare)   8
 *   bus: 3 connections and up to 32 outgoing calls               35
 *   state and counters files being written, certificates          8
 *   metrics: the listener, 8 connections, one being refused      10
 *   DNS (c-ares sockets)                                          8
 *   netns worker (namespace fds, netlink, sockets being made)   16
 *   ACME client connections to the CA                             8
 *   the _acme-challenge responder (acme/dns-server.c defaults:
 *     4 listeners, 64 TCP connections, one being refused)        69
 *   margin                                                       22
 * plus the backend socket pool (pool_limits): max_pooled, per_stack being
 * made, and 3 of its own (home and target namespace, one being closed). */
#define FD_RESERVE_BASE 192u

static const struct netns_sockpool_limits pool_limits = {.per_stack = 8, .max_pooled = 256};

enum { L_HTTPS, L_HTTP, _L_MAX };

static const char *const listener_names[_L_MAX] = {"https", "http"};

/* What the engine listens on (or should). */
struct listen_spec {
        char netns[512]; /* "" = the daemon's own namespace */
        struct sockaddr_storage addr;
        socklen_t addr_len;
        uint16_t ports[_L_MAX]; /* 0 = not served */
        struct gw_ns_id ns_id;  /* the namespace at @netns when asked for (managed only) */
        bool http_plain;
};

/* One batch of netns_worker_socket() requests; outlives a newer batch
 * (its callbacks then see a stale generation and close their fd). */
struct listen_req {
        struct gw_proxy *gp;
        struct listen_req *prev, *next;
        uint64_t gen;
        unsigned idx;
};

struct gw_proxy {
        struct gw_daemon *d;
        struct proxy_route_table *table;
        struct proxy_routes_builder *builder; /* on top of the published snapshot */
        struct gw_certs *certs;               /* NULL: terminated routes have no certificate */
        struct proxy_tls *tls;                /* NULL: terminated routes close on :443 */
        struct netns_sockpool *pool;
        unsigned workers; /* [proxy] workers at start (needs a restart to change) */
        char *routes_ns;  /* the [namespace] settings the routes' netns paths came from */

        struct proxy_engine *engine; /* serving, or NULL */
        struct listen_spec have;     /* what @engine listens on */
        int have_fds[_L_MAX];        /* our copies of @engine's listeners (the engine has dups) */
        struct proxy_engine *dying;  /* being stopped on the thread pool */
        uint64_t dying_ms;           /* ... within this deadline */
        uv_work_t stop_work;
        struct proxy_engine_stats base; /* totals of engines already freed */
        struct gw_limits limits;        /* [limits] last given to @engine */

        /* Listener requests. */
        uint64_t gen;            /* of the current batch; bumped to cancel */
        bool opening;            /* a batch is in flight */
        struct listen_spec want; /* what the batch opens */
        int fds[_L_MAX];         /* results of the batch so far */
        unsigned pending;        /* callbacks of the batch still to come */
        char *error;             /* first error of the batch */
        char *berr[_L_MAX];      /* each listener's error in the batch */
        char *lerr[_L_MAX];      /* ... in the last batch that completed */
        struct listen_req *reqs; /* every batch with callbacks outstanding */
        char *last_error;        /* last logged listener error (logged once) */
        unsigned retry_ms;
        bool loaded; /* routes and counters.json are loaded */

        uv_timer_t retry_timer;
        uv_timer_t reclaim_timer;
        uv_timer_t drain_timer; /* STATUS= while draining */
        unsigned open_handles;
        bool stopped;
        /* SIGTERM's drain: called once the engine is stopped (gw_proxy_drain()). */
        void (*drained)(struct gw_daemon *d);
        uint64_t drain_start_ms, drain_deadline_ms; /* uv_now() */
};

static void proxy_apply(struct gw_proxy *gp);
static void listeners_report(struct gw_proxy *gp);

/* ======================================================================
 * Routes
 * ====================================================================== */

static void on_reclaim(uv_timer_t *t)
{
        struct gw_proxy *gp = t->data;

        if (proxy_route_table_reclaim(gp->table) == 0)
                uv_timer_stop(t);
}

/* Start a fresh builder on the published snapshot (after -ENOMEM poisoned
 * the old one: its unpublished changes are lost, the caller reports it). */
static int builder_reset(struct gw_proxy *gp)
{
        _cleanup_(proxy_routes_unrefp) struct proxy_routes *s = proxy_routes_acquire(gp->table);

        gp->builder = proxy_routes_builder_free(gp->builder);
        return proxy_routes_builder_new(s, &gp->builder);
}

/* Commit the builder, publish, and tell the workers. */
static int routes_publish(struct gw_proxy *gp)
{
        _cleanup_(proxy_routes_unrefp) struct proxy_routes *s = NULL;
        int r;

        r = proxy_routes_builder_commit(gp->builder, &s);
        if (r < 0) {
                (void)builder_reset(gp);
                return r;
        }
        /* -ESTALE cannot happen: this loop is the only publisher. */
        r = proxy_route_table_publish(gp->table, s);
        if (r < 0) {
                (void)builder_reset(gp);
                return r;
        }
        if (proxy_route_table_reclaim(gp->table) > 0 && !gp->stopped)
                uv_timer_start(&gp->reclaim_timer, on_reclaim, RECLAIM_MS, RECLAIM_MS);
        if (gp->engine)
                proxy_engine_routes_changed(gp->engine);
        return 0;
}

int gw_proxy_cert_name(const struct wl_proxy *p, char *buf, size_t size)
{
        if (p->kind == WL_KIND_NAME && p->name) {
                size_t n = strlen(p->name);

                if (strncasecmp(p->fqdn, p->name, n) == 0 && p->fqdn[n] == '.' && p->fqdn[n + 1])
                        return snprintf(buf, size, "*.%s", p->fqdn + n + 1) < (int)size ? 0
                                                                                        : -ENOBUFS;
        }
        return snprintf(buf, size, "%s", p->fqdn) < (int)size ? 0 : -ENOBUFS;
}

/* The namespace a workload's backends are dialed in: its private network,
 * else the gateway namespace when managed, else the daemon's own (*ret
 * NULL). Returns 0 or -ENAMETOOLONG. */
static int route_netns(struct gw_daemon *d, const struct wl_proxy *p, char *buf, size_t size,
                       const char **ret)
{
        *ret = NULL;
        if (!p->network && !d->cfg.ns_public_link)
                return 0;
        *ret = buf;
        return gw_ns_path(d, p->network ? p->net_id : NULL, buf, size);
}

/* wl_backend_address() gives IPv4 as ::ffff:a.b.c.d; dial it as AF_INET. */
static void backend_from_in6(const struct sockaddr_in6 *in6, struct proxy_backend *be)
{
        memset(&be->addr, 0, sizeof(be->addr));
        if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr)) {
                struct sockaddr_in *in = (struct sockaddr_in *)&be->addr;

                in->sin_family = AF_INET;
                in->sin_port = in6->sin6_port;
                memcpy(&in->sin_addr, &in6->sin6_addr.s6_addr[12], 4);
                be->addr_len = sizeof(*in);
        } else {
                memcpy(&be->addr, in6, sizeof(*in6));
                be->addr_len = sizeof(*in6);
        }
}

static int route_put(struct gw_proxy *gp, const struct wl_proxy *p, struct proxy_counters *counters,
                     char **reterr)
{
        struct proxy_backend bes[PROXY_ROUTE_BACKENDS_MAX];
        char netns[PATH_MAX], cname[PROXY_ROUTE_HOST_MAX + 3];
        struct proxy_route_spec spec = {
                .id = p->id,
                .host = p->fqdn,
                .mode = p->tls_passthrough ? PROXY_ROUTE_PASSTHROUGH : PROXY_ROUTE_TERMINATE,
                .backends = bes,
                .n_backends = p->n_backends,
                .counters = counters,
        };
        int r;

        if (!p->fqdn || p->n_backends == 0 || p->n_backends > ELEMENTSOF(bes)) {
                *reterr = strdup("no host or no backends");
                return -EINVAL;
        }
        for (size_t i = 0; i < p->n_backends; i++) {
                struct sockaddr_in6 in6;

                r = wl_backend_address(p->backends[i], p->tls_passthrough, &in6);
                if (r < 0) {
                        if (asprintf(reterr, "backend '%s' is not an address", p->backends[i]) < 0)
                                *reterr = NULL;
                        return r;
                }
                backend_from_in6(&in6, &bes[i]);
                bes[i].text = p->backends[i];
        }
        r = route_netns(gp->d, p, netns, sizeof(netns), &spec.netns);
        if (r < 0) {
                *reterr = strdup("namespace path too long");
                return r;
        }
        if (spec.mode == PROXY_ROUTE_TERMINATE && gp->certs &&
            gw_proxy_cert_name(p, cname, sizeof(cname)) >= 0) {
                _cleanup_free_ char *err = NULL;

                r = gw_certs_get(gp->certs, cname, &spec.cert, &err);
                if (r < 0) {
                        /* Still routed: plain HTTP works, TLS closes until a restart. */
                        log_wl(LOG_ERR, p->id, p->fqdn, "No certificate for %s (workload %s): %s",
                               cname, p->id, err ? err : strerror(-r));
                        spec.cert = NULL;
                }
        }
        r = proxy_routes_builder_put(gp->builder, &spec);
        if (r == -ENOMEM)
                (void)builder_reset(gp);
        if (r < 0)
                *reterr = strdup(r == -EEXIST   ? "the host is routed to another workload"
                                 : r == -EINVAL ? "the host, ID or a backend is not routable"
                                                : strerror(-r));
        return r;
}

int gw_proxy_workload_changed(struct gw_daemon *d, const struct wl_proxy *old,
                              const struct wl_proxy *p)
{
        struct gw_proxy *gp = d->proxy;
        _cleanup_free_ char *err = NULL;
        int r;

        if (!gp)
                return 0;
        if (p) {
                r = route_put(gp, p, NULL, &err);
                if (r < 0) {
                        log_wl(LOG_ERR, p->id, p->fqdn,
                               "Workload %s (%s) is accepted but cannot be served: %s", p->id,
                               p->fqdn, err ? err : strerror(-r));
                        /* Not under its previous host either. */
                        if (proxy_routes_builder_remove_id(gp->builder, p->id) > 0)
                                (void)routes_publish(gp);
                        return r;
                }
        } else if (old) {
                r = proxy_routes_builder_remove_id(gp->builder, old->id);
                if (r < 0) {
                        (void)builder_reset(gp);
                        return log_error_errno(r, "Failed to remove the route of %s: %m", old->id);
                }
        }
        r = routes_publish(gp);
        if (r < 0)
                return log_error_errno(r, "Failed to publish routes: %m");
        /* An FQDN workload's own certificate goes with its name. */
        if (gp->certs && old && old->kind == WL_KIND_FQDN && !old->tls_passthrough &&
            (!p || p->tls_passthrough || strcasecmp(old->fqdn, p->fqdn) != 0))
                gw_certs_forget(gp->certs, old->fqdn, true);
        return 0;
}

struct cert_changed_ctx {
        struct gw_proxy *gp;
        const char *name;
        size_t n;
};

static int put_if_cert(const struct wl_proxy *p, void *userdata)
{
        struct cert_changed_ctx *ctx = userdata;
        _cleanup_free_ char *err = NULL;
        char cname[PROXY_ROUTE_HOST_MAX + 3];
        int r;

        if (p->tls_passthrough || gw_proxy_cert_name(p, cname, sizeof(cname)) < 0 ||
            strcasecmp(cname, ctx->name) != 0)
                return 0;
        r = route_put(ctx->gp, p, NULL, &err);
        if (r == -ENOMEM)
                return r;
        if (r >= 0)
                ctx->n++;
        return 0;
}

int gw_proxy_cert_changed(struct gw_daemon *d, const char *name)
{
        struct gw_proxy *gp = d->proxy;
        struct cert_changed_ctx ctx = {gp, name, 0};
        int r;

        if (!gp || !gp->certs)
                return 0;
        r = wl_registry_foreach(d->reg, put_if_cert, &ctx);
        if (r < 0) {
                (void)builder_reset(gp);
                return r;
        }
        if (ctx.n == 0)
                return 0;
        log_debug("Certificate %s changed: %zu route(s) put again", name, ctx.n);
        return routes_publish(gp);
}

struct gw_certs *gw_proxy_certs(struct gw_daemon *d)
{
        return d->proxy ? d->proxy->certs : NULL;
}

struct restore_ctx {
        struct gw_proxy *gp;
        size_t n, failed;
};

static int restore_one(const struct wl_proxy *p, void *userdata)
{
        struct restore_ctx *ctx = userdata;
        _cleanup_free_ char *err = NULL;
        int r;

        r = route_put(ctx->gp, p, NULL, &err);
        if (r == -ENOMEM)
                return r;
        if (r < 0) {
                log_wl(LOG_ERR, p->id, p->fqdn, "Workload %s (%s) cannot be served: %s", p->id,
                       p->fqdn, err ? err : strerror(-r));
                ctx->failed++;
        } else {
                ctx->n++;
        }
        return 0;
}

static void on_counter_loaded(const char *id, const struct gw_counters *c, void *userdata)
{
        struct gw_proxy *gp = userdata;
        _cleanup_(proxy_routes_unrefp) struct proxy_routes *s = proxy_routes_acquire(gp->table);
        struct proxy_route *route = proxy_routes_lookup_id(s, id);
        struct proxy_counters *k;

        if (!route)
                return;
        /* No engine runs yet: nothing else writes these. */
        k = route->counters;
        atomic_store_explicit(&k->requests, c->requests, memory_order_relaxed);
        atomic_store_explicit(&k->request_bytes, c->request_bytes, memory_order_relaxed);
        atomic_store_explicit(&k->response_bytes, c->response_bytes, memory_order_relaxed);
        for (size_t i = 0; i < ELEMENTSOF(k->status); i++)
                atomic_store_explicit(&k->status[i], c->status[i], memory_order_relaxed);
}

/* What route_netns() depends on besides the workload. */
static char *routes_ns_key(struct gw_daemon *d)
{
        char *k;

        if (asprintf(&k, "%s/%s%s", d->cfg.netns_dir, d->cfg.ns_public_link ? d->cfg.ns_name : "",
                     d->cfg.ns_public_link ? " (managed)" : "") < 0)
                return NULL;
        return k;
}

static int routes_load(struct gw_proxy *gp)
{
        struct restore_ctx ctx = {.gp = gp};
        int r;

        free(gp->routes_ns);
        gp->routes_ns = routes_ns_key(gp->d);
        r = wl_registry_foreach(gp->d->reg, restore_one, &ctx);
        if (r >= 0)
                r = routes_publish(gp);
        if (r < 0)
                return log_error_errno(r, "Failed to load the routes: %m");
        log_info("Loaded %zu route%s%s", ctx.n, ctx.n == 1 ? "" : "s",
                 ctx.failed ? " (some workloads cannot be served, see above)" : "");
        return 0;
}

/* ======================================================================
 * Counters for the bus, the state file and Prometheus
 * ====================================================================== */

struct proxy_routes *gw_proxy_snapshot(struct gw_daemon *d)
{
        /* Not before counters.json is in: a save would write zeros. */
        return d->proxy && d->proxy->loaded ? proxy_routes_acquire(d->proxy->table) : NULL;
}

bool gw_proxy_sockpool_stats(struct gw_daemon *d, struct netns_sockpool_stats *ret)
{
        if (!d->proxy || !d->proxy->pool)
                return false;
        netns_sockpool_get_stats(d->proxy->pool, ret);
        return true;
}

void gw_proxy_counters(const struct proxy_routes *s, const char *id, struct gw_counters *ret)
{
        struct proxy_route *route = s ? proxy_routes_lookup_id(s, id) : NULL;
        struct proxy_counters_values v = {};

        if (route)
                proxy_counters_read(route->counters, &v);
        ret->requests = v.requests;
        ret->request_bytes = v.request_bytes;
        ret->response_bytes = v.response_bytes;
        memcpy(ret->status, v.status, sizeof(ret->status));
}

static void stats_add(struct proxy_engine_stats *to, const struct proxy_engine_stats *s)
{
        to->accepted += s->accepted;
        to->tls_handshakes += s->tls_handshakes;
        to->tls_resumed += s->tls_resumed;
        to->http_requests += s->http_requests;
        for (size_t i = 0; i < ELEMENTSOF(s->http_status); i++)
                to->http_status[i] += s->http_status[i];
        to->upstream_connects += s->upstream_connects;
        to->upstream_reused += s->upstream_reused;
        to->active += s->active;
        for (size_t i = 0; i < ELEMENTSOF(s->open); i++)
                to->open[i] += s->open[i];
        to->connect_errors += s->connect_errors;
        to->accept_backoffs += s->accept_backoffs;
        for (size_t i = 0; i < ELEMENTSOF(s->closed); i++)
                to->closed[i] += s->closed[i];
        for (size_t p = 0; p < ELEMENTSOF(s->limit_rejections); p++)
                for (size_t i = 0; i < ELEMENTSOF(s->limit_rejections[p]); i++)
                        to->limit_rejections[p][i] += s->limit_rejections[p][i];
        to->limit_untracked += s->limit_untracked;
        to->open_connections += s->open_connections;
}

bool gw_proxy_stats(struct gw_daemon *d, struct proxy_engine_stats *ret, unsigned *ret_workers)
{
        struct gw_proxy *gp = d->proxy;
        struct proxy_engine_stats s;

        *ret = (struct proxy_engine_stats){};
        *ret_workers = 0;
        if (!gp)
                return false;
        *ret = gp->base;
        ret->active = 0;
        ret->open[0] = ret->open[1] = 0;
        ret->open_connections = 0;
        if (gp->engine) {
                proxy_engine_stats(gp->engine, &s);
                stats_add(ret, &s);
                *ret_workers = proxy_engine_workers(gp->engine);
        }
        if (gp->dying) {
                proxy_engine_stats(gp->dying, &s);
                stats_add(ret, &s);
        }
        return gp->engine != NULL;
}

/* ======================================================================
 * The engine
 * ====================================================================== */

static int on_socket_needed(void *ud, const struct proxy_route *r, const struct sockaddr *addr,
                            socklen_t len, int *ret_fd)
{
        struct gw_proxy *gp = ud;
        char *err = NULL;
        int k;

        /* A worker thread: the pool is thread-safe; log at debug only. */
        k = netns_sockpool_socket(gp->pool, r->netns, addr->sa_family, ret_fd, &err);
        if (k < 0)
                log_debug("No socket for a backend of %s in %s: %s", r->id, strempty(r->netns),
                          err ? err : strerror(-k));
        free(err);
        return k;
}

/* Fold a stopped engine's totals into gp->base and free it. Returns NULL. */
static struct proxy_engine *engine_retire(struct gw_proxy *gp, struct proxy_engine *e)
{
        struct proxy_engine_stats s;

        proxy_engine_stats(e, &s);
        s.active = 0;
        s.open[0] = s.open[1] = 0;
        stats_add(&gp->base, &s);
        proxy_engine_free(e);
        log_info("Proxy stopped");
        return NULL;
}

static void drain_finish(struct gw_proxy *gp)
{
        void (*done)(struct gw_daemon *d) = TAKE_PTR(gp->drained);

        uv_timer_stop(&gp->drain_timer);
        if (done)
                done(gp->d);
}

static void on_engine_stopped(uv_work_t *w, int status)
{
        struct gw_proxy *gp = container_of(w, struct gw_proxy, stop_work);

        gp->dying = engine_retire(gp, gp->dying);
        if (!gp->stopped)
                proxy_apply(gp);
        else
                drain_finish(gp);
}

static void do_engine_stop(uv_work_t *w)
{
        struct gw_proxy *gp = container_of(w, struct gw_proxy, stop_work);
        int r = proxy_engine_stop_within(gp->dying, gp->dying_ms);

        if (r < 0)
                log_warning_errno(r, "Proxy workers did not stop cleanly: %m");
}

/* Stop the engine without blocking the loop (or inline when @sync): busy
 * connections get the engine's drain deadline, or at most RESTART_STOP_MS
 * when @restart (the capability switched off, an engine restart: serving
 * again must not wait for a whole drain). */
static void engine_stop(struct gw_proxy *gp, bool sync, bool restart)
{
        uint64_t ms;
        int r;

        if (!gp->engine)
                return;
        ms = proxy_engine_stop_timeout_ms(gp->engine);
        if (restart)
                ms = MIN(ms, (uint64_t)RESTART_STOP_MS);
        gp->have = (struct listen_spec){};
        /* Our copies would keep the ports listening with nobody accepting. */
        for (unsigned i = 0; i < _L_MAX; i++)
                gp->have_fds[i] = safe_close(gp->have_fds[i]);
        if (sync || gp->dying) {
                r = proxy_engine_stop_within(gp->engine, ms);
                if (r < 0)
                        log_warning_errno(r, "Proxy workers did not stop cleanly: %m");
                gp->engine = engine_retire(gp, gp->engine);
                return;
        }
        gp->dying_ms = ms;
        gp->dying = TAKE_PTR(gp->engine);
        r = uv_queue_work(gp->d->loop, &gp->stop_work, do_engine_stop, on_engine_stopped);
        if (r < 0) {
                gp->engine = TAKE_PTR(gp->dying);
                engine_stop(gp, true, restart);
        }
}

static void spec_describe(const struct listen_spec *s, char *buf, size_t size)
{
        char a[INET6_ADDRSTRLEN + 16];
        size_t n = 0;

        gw_sockaddr_to_string((const struct sockaddr *)&s->addr, a, sizeof(a));
        buf[0] = 0;
        for (unsigned i = 0; i < _L_MAX; i++)
                if (s->ports[i] && n < size)
                        n += (size_t)snprintf(
                                buf + n, size - n, "%s%s %s%s%s:%u", n ? ", " : "",
                                listener_names[i], s->addr.ss_family == AF_INET6 ? "[" : "", a,
                                s->addr.ss_family == AF_INET6 ? "]" : "", s->ports[i]);
        if (n < size)
                snprintf(buf + n, size - n, " in %s",
                         s->netns[0] ? s->netns : "the daemon's namespace");
}

static bool spec_equal(const struct listen_spec *a, const struct listen_spec *b)
{
        return streq(a->netns, b->netns) && a->addr_len == b->addr_len &&
               memcmp(&a->addr, &b->addr, a->addr_len) == 0 && a->ports[0] == b->ports[0] &&
               a->ports[1] == b->ports[1] && gw_ns_id_eq(&a->ns_id, &b->ns_id) &&
               a->http_plain == b->http_plain;
}

unsigned gw_fd_reserve(void)
{
        return FD_RESERVE_BASE + pool_limits.max_pooled + pool_limits.per_stack + 3;
}

/* The soft open-file limit (raised to the hard one at start). */
static uint64_t nofile_limit(void)
{
        struct rlimit rl;

        if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
                return 0;
        return rl.rlim_cur == RLIM_INFINITY ? UINT_MAX : MIN(rl.rlim_cur, UINT_MAX);
}

/* [limits] into the engine's configuration: a rate or per-client limit of 0
 * ("off" in the file) is PROXY_LIMIT_OFF there (its 0 is "the default"). */
static void limits_to_config(const struct gw_limits *l, struct proxy_config *c)
{
        c->handshake_timeout_ms = l->handshake_timeout_ms;
        c->request_timeout_ms = l->request_head_timeout_ms;
        c->body_timeout_ms = l->body_timeout_ms;
        c->body_min_rate = l->body_min_rate ? l->body_min_rate : PROXY_LIMIT_OFF;
        c->send_timeout_ms = l->send_timeout_ms;
        c->send_min_rate = l->send_min_rate ? l->send_min_rate : PROXY_LIMIT_OFF;
        c->keepalive_timeout_ms = l->keepalive_timeout_ms;
        c->connect_timeout_ms = l->connect_timeout_ms;
        c->upstream_timeout_ms = l->response_timeout_ms;
        c->idle_timeout_ms = l->tunnel_idle_timeout_ms;
        c->stop_timeout_ms = l->drain_timeout_ms;
        c->max_head = l->max_head_size;
        c->max_headers = l->max_headers;
        c->max_connections = l->max_connections;
        c->max_conns_per_client =
                l->connections_per_client ? l->connections_per_client : PROXY_LIMIT_OFF;
        c->new_conns_per_sec =
                l->new_connections_per_sec ? l->new_connections_per_sec : PROXY_LIMIT_OFF;
        c->upstream_idle_max = l->pool_size;
}

/* SIGHUP: the limits the engine can take live go to it now; the ones its
 * buffers and pool were sized with wait for its next start. */
static void apply_limits(struct gw_proxy *gp)
{
        const struct gw_limits *l = &gp->d->cfg.limits;
        struct proxy_config cfg = {};
        int r;

        if (!gp->engine || memcmp(&gp->limits, l, sizeof(*l)) == 0)
                return;
        limits_to_config(l, &cfg);
        r = proxy_engine_set_limits(gp->engine, &cfg);
        if (r < 0) {
                log_error_errno(r, "Failed to apply [limits] to the proxy: %m");
                return;
        }
        if (gp->limits.max_head_size != l->max_head_size ||
            gp->limits.max_headers != l->max_headers || gp->limits.pool_size != l->pool_size)
                log_notice("[limits] max_head_size, max_headers and pool_size take effect at the "
                           "next start of the proxy (restart gatewayd)");
        else
                log_info("[limits] applied");
        /* Asked for: the next engine starts with all of it. */
        gp->limits = *l;
}

/* The fds of a complete batch: start the engine or swap its listeners. */
static int engine_take_fds(struct gw_proxy *gp, char **reterr)
{
        struct proxy_config cfg = {
                .workers = gp->workers,
                .https_fd = gp->fds[L_HTTPS],
                .http_fd = gp->fds[L_HTTP],
                .socket_factory = on_socket_needed,
                .socket_factory_ud = gp,
                .tls = gp->tls,
                .http_plain = gp->want.http_plain,
                .acme_token = gw_acme_token_lookup,
                .acme_token_ud = gp->d->tokens,
                .access_log = gw_accesslog_sink(gp->d->alog),
        };
        int r;

        uint64_t limit = nofile_limit();

        if (gp->engine) {
                r = proxy_engine_replace_listeners(gp->engine, gp->fds[L_HTTPS], gp->fds[L_HTTP]);
                if (r < 0 && asprintf(reterr, "replacing the listeners: %s", strerror(-r)) < 0)
                        *reterr = NULL;
                return r;
        }
        limits_to_config(&gp->d->cfg.limits, &cfg);
        gp->limits = gp->d->cfg.limits;
        /* 0 would mean "the engine's own default": never pass it. */
        cfg.max_fds = limit > gw_fd_reserve() ? (unsigned)(limit - gw_fd_reserve()) : 0;
        r = cfg.max_fds ? proxy_engine_new(&cfg, gp->table, &gp->engine) : -EMFILE;
        if (r == -EMFILE) {
                if (asprintf(reterr,
                             "the open-file limit (%" PRIu64 ") leaves %u descriptors for the "
                             "proxy after the %u the daemon keeps, fewer than its workers need "
                             "(%u each); raise it (LimitNOFILE=, ulimit -n)",
                             limit, cfg.max_fds, gw_fd_reserve(), PROXY_ENGINE_MIN_WORKER_FDS) < 0)
                        *reterr = NULL;
                return r;
        }
        if (r >= 0) {
                r = proxy_engine_start(gp->engine);
                if (r < 0)
                        gp->engine = proxy_engine_free(gp->engine);
        }
        if (r < 0 && asprintf(reterr, "starting the proxy: %s", strerror(-r)) < 0)
                *reterr = NULL;
        return r;
}

static void on_retry(uv_timer_t *t)
{
        proxy_apply(t->data);
}

static void batch_done(struct gw_proxy *gp)
{
        _cleanup_free_ char *err = TAKE_PTR(gp->error);
        char what[1024];
        int r = err ? -EIO : 0;

        gp->opening = false;
        spec_describe(&gp->want, what, sizeof(what));
        if (r >= 0)
                r = engine_take_fds(gp, &err);
        for (unsigned i = 0; i < _L_MAX; i++) {
                if (r >= 0) {
                        /* Kept: handed over again when only the other one changes. */
                        safe_close(gp->have_fds[i]);
                        gp->have_fds[i] = TAKE_FD(gp->fds[i]);
                }
                gp->fds[i] = safe_close(gp->fds[i]);
                free(gp->lerr[i]);
                gp->lerr[i] = TAKE_PTR(gp->berr[i]);
        }
        if (r < 0) {
                /* Log a cause once, not at every retry. */
                if (!streq_ptr(gp->last_error, err)) {
                        log_error("Cannot serve %s: %s; retrying", what, err ? err : strerror(-r));
                        free(gp->last_error);
                        gp->last_error = err ? strdup(err) : NULL;
                } else {
                        log_debug("Still cannot serve %s: %s", what, strempty(err));
                }
                uv_timer_start(&gp->retry_timer, on_retry, gp->retry_ms, 0);
                gp->retry_ms = MIN(gp->retry_ms * 2, RETRY_MAX_MS);
                listeners_report(gp);
                return;
        }
        gp->have = gp->want;
        gp->retry_ms = RETRY_MIN_MS;
        gp->last_error = mfree(gp->last_error);
        log_info("Proxy serving %s (%u worker%s, at most %u connections each; %u descriptors of "
                 "the open-file limit %" PRIu64 ", %u kept for the daemon)",
                 what, proxy_engine_workers(gp->engine),
                 proxy_engine_workers(gp->engine) == 1 ? "" : "s",
                 proxy_engine_max_conns(gp->engine), proxy_engine_max_fds(gp->engine),
                 nofile_limit(), gw_fd_reserve());
        listeners_report(gp);
}

static void on_listener(int r, int fd, const char *error, void *userdata)
{
        struct listen_req *req = userdata;
        struct gw_proxy *gp = req->gp;
        bool current = req->gen == gp->gen && gp->opening;
        unsigned idx = req->idx;

        LIST_REMOVE(gp->reqs, req);
        free(req);
        if (!current || gp->stopped) {
                safe_close(fd);
                return;
        }
        if (r < 0) {
                /* netns' text names the address and the namespace. */
                if (!gp->error && !(gp->error = strdup(error ? error : strerror(-r))))
                        gp->error = strdup("out of memory");
                free(gp->berr[idx]);
                gp->berr[idx] = strdup(error ? error : strerror(-r));
        } else {
                gp->fds[idx] = fd;
        }
        if (--gp->pending == 0)
                batch_done(gp);
}

static void batch_cancel(struct gw_proxy *gp)
{
        gp->gen++;
        gp->opening = false;
        gp->pending = 0;
        gp->error = mfree(gp->error);
        for (unsigned i = 0; i < _L_MAX; i++) {
                gp->fds[i] = safe_close(gp->fds[i]);
                gp->berr[i] = mfree(gp->berr[i]);
        }
}

static int batch_start(struct gw_proxy *gp, const struct listen_spec *want)
{
        struct netns_worker *w = gw_ns_worker(gp->d);

        if (!w)
                return -ENODEV;
        batch_cancel(gp);
        gp->want = *want;
        gp->opening = true;
        for (unsigned i = 0; i < _L_MAX; i++) {
                struct netns_socket_req sr = {
                        .family = want->addr.ss_family,
                        .type = SOCK_STREAM,
                        .bind = true,
                        .addr = want->addr,
                        .addrlen = want->addr_len,
                        .backlog = LISTEN_BACKLOG,
                };
                struct listen_req *req;

                if (!want->ports[i])
                        continue;
                /* A listener the engine keeps serving is handed over again:
                 * binding its address anew would fail (EADDRINUSE) while
                 * the engine listens on it, and the batch could never
                 * complete when only the other port changed. */
                if (gp->engine && gp->have_fds[i] >= 0 && gp->have.ports[i] == want->ports[i] &&
                    streq(gp->have.netns, want->netns) &&
                    gw_ns_id_eq(&gp->have.ns_id, &want->ns_id) &&
                    gp->have.addr_len == want->addr_len &&
                    memcmp(&gp->have.addr, &want->addr, want->addr_len) == 0) {
                        gp->fds[i] = fcntl(gp->have_fds[i], F_DUPFD_CLOEXEC, 3);
                        if (gp->fds[i] < 0)
                                goto oom;
                        continue;
                }
                snprintf(sr.netns_path, sizeof(sr.netns_path), "%s", want->netns);
                if (sr.addr.ss_family == AF_INET)
                        ((struct sockaddr_in *)&sr.addr)->sin_port = htons(want->ports[i]);
                else
                        ((struct sockaddr_in6 *)&sr.addr)->sin6_port = htons(want->ports[i]);
                req = calloc(1, sizeof(*req));
                if (!req)
                        goto oom;
                *req = (struct listen_req){.gp = gp, .gen = gp->gen, .idx = i};
                if (netns_worker_socket(w, &sr, on_listener, req) < 0) {
                        free(req);
                        goto oom;
                }
                LIST_PREPEND(gp->reqs, req);
                gp->pending++;
        }
        if (gp->pending == 0)
                batch_done(gp); /* nothing to open: only a port turned off */
        return 0;
oom:
        /* Requests already queued see a stale generation. */
        batch_cancel(gp);
        return -ENOMEM;
}

/* The configured listen spec (ports, address, the namespace path and the
 * identity of what is bound there now) into @ret. */
static void spec_configured(struct gw_daemon *d, struct listen_spec *ret)
{
        *ret = (struct listen_spec){};
        if (d->cfg.ns_public_link) {
                (void)gw_ns_path(d, NULL, ret->netns, sizeof(ret->netns)); /* cut: bind fails */
                /* Nothing there ({0, 0}): a batch fails and is retried. */
                (void)gw_ns_id_of(ret->netns, &ret->ns_id);
        }
        ret->addr = d->cfg.proxy_address;
        ret->addr_len = d->cfg.proxy_address_len;
        ret->ports[L_HTTPS] = d->cfg.https_port;
        ret->ports[L_HTTP] = d->cfg.http_port;
        ret->http_plain = d->cfg.http_plain;
}

/* Each listener's state for health.c, derived in this one place from the
 * configuration, what the engine serves, and the namespace now at the path. */
static void listeners_report(struct gw_proxy *gp)
{
        static const enum gw_check check[_L_MAX] = {GW_CHECK_HTTPS, GW_CHECK_HTTP};
        struct gw_daemon *d = gp->d;
        bool managed = d->cfg.ns_public_link != NULL;
        struct listen_spec cfg;
        const char *why = NULL;
        char a[INET6_ADDRSTRLEN + 8];

        spec_configured(d, &cfg);
        gw_sockaddr_to_string((const struct sockaddr *)&cfg.addr, a, sizeof(a));
        for (unsigned i = 0; i < _L_MAX; i++) {
                _cleanup_free_ char *where = NULL, *msg = NULL;
                bool wanted = d->cfg.enabled && cfg.ports[i];
                bool in_other_ns =
                        gp->engine && managed && !gw_ns_id_eq(&gp->have.ns_id, &cfg.ns_id);
                bool bound = wanted && gp->engine && gp->have.ports[i] == cfg.ports[i] &&
                             streq(gp->have.netns, cfg.netns) &&
                             gp->have.addr_len == cfg.addr_len &&
                             memcmp(&gp->have.addr, &cfg.addr, cfg.addr_len) == 0 && !in_other_ns;
                const char *error = NULL;

                if (asprintf(&where, "%s%s%s:%u%s%s", cfg.addr.ss_family == AF_INET6 ? "[" : "", a,
                             cfg.addr.ss_family == AF_INET6 ? "]" : "", cfg.ports[i],
                             managed ? " in " : "", cfg.netns) < 0)
                        where = NULL;
                if (!bound && wanted) {
                        if (gp->lerr[i])
                                error = gp->lerr[i];
                        else if (in_other_ns)
                                error = "listening in a namespace that is no longer at the path "
                                        "(deleted or made anew); moved once it is ready";
                        else if (!gp->engine && managed && !gw_ns_ready(d, &why) &&
                                 asprintf(&msg, "waiting for the gateway namespace: %s", why) >= 0)
                                error = msg;
                        else if (gp->dying)
                                error = "the proxy is restarting";
                        else if (gp->opening)
                                error = "being opened";
                        else if (gp->last_error &&
                                 asprintf(&msg,
                                          "not opened (both listeners are opened together): %s",
                                          gp->last_error) >= 0)
                                error = msg;
                        else
                                error = "not opened";
                }
                gw_health_set(d, check[i], wanted, bound, where, error);
        }
}

void gw_proxy_health_refresh(struct gw_daemon *d)
{
        if (d->proxy)
                listeners_report(d->proxy);
}

static void apply_listeners(struct gw_proxy *gp)
{
        struct gw_daemon *d = gp->d;
        struct listen_spec want;
        const char *why = NULL;
        int r;

        if (gp->stopped || gp->dying)
                return; /* on_engine_stopped() applies again */
        uv_timer_stop(&gp->retry_timer);
        if (!d->cfg.enabled || (!d->cfg.https_port && !d->cfg.http_port) ||
            (!gp->engine && !gw_ns_ready(d, &why))) {
                /* Off, or (not serving yet and) the namespace is not ready: its
                 * readiness calls gw_proxy_ns_ready(). A namespace that breaks
                 * while serving does not stop the engine: only a namespace
                 * at the path other than the engine's makes new listeners. */
                batch_cancel(gp);
                if (gp->engine)
                        log_info("Stopping the proxy (%s)",
                                 !d->cfg.enabled ? "the gateway capability is off"
                                                 : "no port configured");
                engine_stop(gp, false, true);
                return;
        }
        spec_configured(d, &want);

        if (gp->engine && spec_equal(&gp->have, &want)) {
                batch_cancel(gp);
                return;
        }
        if (gp->opening && spec_equal(&gp->want, &want))
                return;
        /* The engine copies its configuration once: http_plain needs a new one. */
        if (gp->engine && gp->have.http_plain != want.http_plain) {
                batch_cancel(gp);
                log_info("Restarting the proxy (http_plain = %s)", want.http_plain ? "yes" : "no");
                engine_stop(gp, false, true);
                return;
        }
        r = batch_start(gp, &want);
        if (r < 0) {
                log_error_errno(r, "Failed to open the proxy listeners: %m");
                uv_timer_start(&gp->retry_timer, on_retry, gp->retry_ms, 0);
        }
}

static void proxy_apply(struct gw_proxy *gp)
{
        apply_listeners(gp);
        if (!gp->stopped)
                listeners_report(gp);
}

void gw_proxy_apply(struct gw_daemon *d)
{
        struct gw_proxy *gp = d->proxy;
        _cleanup_free_ char *key = NULL;

        if (!gp)
                return;
        /* Backends are dialed in namespaces named by [namespace]: a change
         * there re-puts every route (counters carry over by ID). */
        key = routes_ns_key(d);
        if (key && !streq_ptr(key, gp->routes_ns)) {
                log_info("Namespace settings changed: reloading the routes");
                (void)routes_load(gp);
        }
        gp->retry_ms = RETRY_MIN_MS;
        apply_limits(gp);
        proxy_apply(gp);
}

void gw_proxy_ns_ready(struct gw_daemon *d)
{
        struct gw_proxy *gp = d->proxy;

        if (!gp)
                return;
        gp->retry_ms = RETRY_MIN_MS;
        proxy_apply(gp);
}

/* ======================================================================
 * Lifecycle
 * ====================================================================== */

int gw_proxy_start(struct gw_daemon *d)
{
        _cleanup_free_ char *certdir = NULL;
        struct gw_proxy *gp;
        int r;

        gp = calloc(1, sizeof(*gp));
        if (!gp)
                return log_error_errno(-ENOMEM, "Failed to set up the proxy: %m");
        gp->d = d;
        gp->workers = d->cfg.proxy_workers;
        gp->retry_ms = RETRY_MIN_MS;
        for (unsigned i = 0; i < _L_MAX; i++)
                gp->fds[i] = gp->have_fds[i] = -1;
        uv_timer_init(d->loop, &gp->retry_timer);
        uv_timer_init(d->loop, &gp->reclaim_timer);
        uv_timer_init(d->loop, &gp->drain_timer);
        gp->retry_timer.data = gp->reclaim_timer.data = gp->drain_timer.data = gp;
        gp->open_handles = 3;
        d->proxy = gp;

        r = proxy_route_table_new(&gp->table);
        if (r >= 0)
                r = builder_reset(gp);
        if (r >= 0)
                r = netns_sockpool_new(&pool_limits, &gp->pool);
        if (r < 0)
                return log_error_errno(r, "Failed to set up the proxy: %m");
        r = proxy_tls_new(&gp->tls);
        if (r < 0)
                log_error_errno(r,
                                "No TLS context (terminated names will not be served on :443): %m");
        if (asprintf(&certdir, "%s/certs", d->root) < 0)
                return log_error_errno(-ENOMEM, "Failed to set up the proxy: %m");
        r = gw_certs_new(certdir, &gp->certs);
        if (r < 0)
                log_error_errno(r,
                                "No certificate store in %s (terminated names will not be "
                                "served on :443): %m",
                                certdir);

        r = routes_load(gp);
        if (r < 0)
                return r;
        r = gw_state_load_counters(d->state, on_counter_loaded, gp);
        if (r < 0 && r != -ENOENT)
                log_warning_errno(r, "Failed to read counters (starting from zero): %m");
        gp->loaded = true;
        return 0;
}

void gw_proxy_stop(struct gw_daemon *d)
{
        struct gw_proxy *gp = d->proxy;

        if (!gp || gp->stopped)
                return;
        gp->stopped = true;
        batch_cancel(gp);
        uv_timer_stop(&gp->retry_timer);
        if (gp->engine)
                log_info("Stopping the proxy");
        engine_stop(gp, true, false);
}

/* What is left of the drain, as systemd's STATUS= (and the log, every
 * DRAIN_LOG_MS). */
static void drain_report(struct gw_proxy *gp, bool log)
{
        struct proxy_engine_stats s;
        uint64_t now = uv_now(gp->d->loop);
        uint64_t left = gp->drain_deadline_ms > now ? gp->drain_deadline_ms - now : 0;

        if (!gp->dying)
                return;
        proxy_engine_stats(gp->dying, &s);
        sd_notifyf(0,
                   "STATUS=Draining: %" PRIu64 " connections with a request or tunnel in flight, "
                   "the rest are closed in %" PRIu64 " s",
                   s.active, (left + 999) / 1000);
        if (log)
                log_info("Draining: %" PRIu64 " connections in flight, %" PRIu64 " s left",
                         s.active, (left + 999) / 1000);
}

static void on_drain_timer(uv_timer_t *t)
{
        struct gw_proxy *gp = t->data;
        uint64_t elapsed = uv_now(gp->d->loop) - gp->drain_start_ms;

        drain_report(gp, elapsed / DRAIN_STATUS_MS % (DRAIN_LOG_MS / DRAIN_STATUS_MS) == 0);
}

void gw_proxy_drain(struct gw_daemon *d, void (*done)(struct gw_daemon *d))
{
        struct gw_proxy *gp = d->proxy;
        uint64_t timeout_ms;

        if (!gp) {
                done(d);
                return;
        }
        gp->stopped = true;
        batch_cancel(gp);
        uv_timer_stop(&gp->retry_timer);
        if (gp->engine) {
                timeout_ms = proxy_engine_stop_timeout_ms(gp->engine);
                log_info("Draining the proxy: new connections are refused, in-flight requests "
                         "and tunnels get %" PRIu64 " s",
                         (timeout_ms + 999) / 1000);
                /* systemd waits this long whatever TimeoutStopSec says (the
                 * rest of the stop, saving state, takes well under the margin). */
                sd_notifyf(0, "EXTEND_TIMEOUT_USEC=%" PRIu64,
                           (timeout_ms + DRAIN_MARGIN_MS) * UINT64_C(1000));
                gp->drain_start_ms = uv_now(d->loop);
                gp->drain_deadline_ms = gp->drain_start_ms + timeout_ms;
                /* Closes our copies of the listeners at once and stops the
                 * workers on the thread pool; the loop keeps running. */
                engine_stop(gp, false, false);
        }
        if (!gp->dying) {
                /* Nothing was serving, or the thread pool refused the work
                 * (engine_stop() then stopped inline). */
                done(d);
                return;
        }
        /* Also when a capability-off stop was already under way: it ends in
         * on_engine_stopped() too. */
        gp->drained = done;
        uv_timer_start(&gp->drain_timer, on_drain_timer, DRAIN_STATUS_MS, DRAIN_STATUS_MS);
        /* The count comes with the first tick: until the workers have seen
         * the stop, idle connections are still counted. */
        sd_notifyf(0,
                   "STATUS=Draining: new connections are refused, the rest are closed in %" PRIu64
                   " s",
                   (gp->drain_deadline_ms - gp->drain_start_ms + 999) / 1000);
}

static void on_handle_closed(uv_handle_t *h)
{
        struct gw_proxy *gp = h->data;

        gp->open_handles--;
}

void gw_proxy_close(struct gw_daemon *d)
{
        struct gw_proxy *gp = d->proxy;

        if (!gp)
                return;
        gw_proxy_stop(d);
        uv_close((uv_handle_t *)&gp->retry_timer, on_handle_closed);
        uv_close((uv_handle_t *)&gp->reclaim_timer, on_handle_closed);
        uv_close((uv_handle_t *)&gp->drain_timer, on_handle_closed);
}

void gw_proxy_free(struct gw_daemon *d)
{
        struct gw_proxy *gp = d->proxy;

        if (!gp)
                return;
        /* After the loop ran dry: handles closed, the stop work done, the
         * netns worker gone (its pending callbacks were dropped). */
        d->proxy = NULL;
        gp->engine = proxy_engine_free(gp->engine);
        gp->dying = proxy_engine_free(gp->dying);
        while (gp->reqs) {
                struct listen_req *req = gp->reqs;

                gp->reqs = req->next;
                free(req);
        }
        batch_cancel(gp);
        for (unsigned i = 0; i < _L_MAX; i++) {
                free(gp->lerr[i]);
                safe_close(gp->have_fds[i]);
        }
        free(gp->last_error);
        free(gp->routes_ns);
        gp->builder = proxy_routes_builder_free(gp->builder);
        gp->table = proxy_route_table_free(gp->table);
        gp->certs = gw_certs_free(gp->certs);
        gp->tls = proxy_tls_free(gp->tls);
        gp->pool = netns_sockpool_free(gp->pool);
        free(gp);
}
