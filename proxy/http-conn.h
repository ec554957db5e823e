/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* Engine-internal: the HTTP/1.1 side of one engine worker ("hw").
 *
 * engine.c owns the worker thread, its loop and the listeners. It hands
 * every connection that speaks HTTP to this module as a plain fd:
 *   - :80 connections right after accept4() (PROXY_HCONN_PLAIN);
 *   - :443 connections whose SNI chose a terminated route, after the
 *     ClientHello was peeked: the bytes already read are passed as @prefix
 *     and must be fed to the TLS stack before anything read from the fd
 *     (PROXY_HCONN_TLS, with the route's certificate).
 * From then on the connection, its TLS session, its requests and the
 * upstream connections they use belong to this module, on the same loop
 * thread. Nothing here is thread-safe; everything runs on the worker.
 *
 * Behaviour (the list; docs/internals/proxy.md has the details):
 *   - TLS: handshake with the SNI route's certificate (proxy_tls_new_ssl),
 *     bounded by handshake_timeout_ms; ALPN http/1.1.
 *   - Requests parsed with proxy/http1 (strict, resumable), one at a time:
 *     pipelined requests wait in the read buffer and are answered in order.
 *   - Routing by Host (port stripped): on TLS the Host must be covered by
 *     the connection's certificate (proxy_cert_covers) and be a known
 *     TERMINATE route, else 421. On :80: /.well-known/acme-challenge/<token>
 *     goes to cfg->acme_token for a terminated name or is proxied to port
 *     80 of the passthrough route's backend address; any other request for
 *     a known name gets 308 to https://<host><target> (or is proxied when
 *     cfg->http_plain); an unknown name gets 404.
 *   - Proxying: re-serialised head (proxy_h1_req_serialize: X-Forwarded-*,
 *     X-Real-IP, hop-by-hop removed), bodies streamed both ways
 *     (Content-Length, chunked, close-delimited) with backpressure (reading
 *     one side stops while the other side's write is pending), keep-alive
 *     to the client and to the backends through a per-worker pool of idle
 *     upstream connections per (namespace, backend address). Round-robin
 *     over the route's backends (route->rr_next); connect failure or
 *     timeout -> next backend; all failed -> 502; no response head within
 *     upstream_timeout_ms -> 504. A pooled connection that fails before any
 *     response byte is retried once on a fresh connection.
 *   - Counters: each finished request adds to route->counters once
 *     (proxy_counters_add): the status, the bytes of the request as
 *     received from the client (head + body, after TLS) and the bytes of the
 *     response as sent to the client (head + body, before TLS). Our own
 *     answers (421, 308, 404, 4xx for bad requests) count on the worker's
 *     statistics only, not on a route.
 *   - Upstream sockets come from cfg->socket_factory (the route's
 *     namespace); connect() is issued here, non-blocking.
 *
 * Decisions (docs/internals/proxy.md has the reasons):
 *   - Expect: 100-continue is forwarded; the backend's 100 (any 1xx but
 *     101) is passed on to an HTTP/1.1 client and dropped for HTTP/1.0.
 *   - Every answer of our own (308, 404, 421, ACME, 400/408/414/417/431/
 *     501/505, 502/503/504) carries Content-Length and "Connection: close":
 *     the connection then half-closes and drains the client (bounded) before
 *     closing. 502/503/504 for a proxied request count on its route.
 *   - The pooled-connection retry applies to requests without a body.
 *   - TLS handshake timeout closes with PROXY_CLOSE_HELLO_TIMEOUT; EOF in
 *     the middle of a request (or handshake) with PROXY_CLOSE_CLIENT_EOF.
 *   - A WebSocket upgrade counts as one request (status 101) when the 101
 *     is written; tunnelled bytes are added to the route's byte counters
 *     as they flow (batched) and at close. */

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <uv.h>

#include "proxy/proxy.h"

struct proxy_route;
struct proxy_route_table;
struct proxy_routes;
struct proxy_hw;

/* Worker statistics this module updates (relaxed atomic adds; engine.c
 * owns the storage and sums it in proxy_engine_stats()). */
struct proxy_hw_stats {
        atomic_uint_least64_t tls_handshakes;
        atomic_uint_least64_t tls_resumed;
        atomic_uint_least64_t http_requests;
        atomic_uint_least64_t http_status[5];
        atomic_uint_least64_t upstream_connects;
        atomic_uint_least64_t upstream_reused;
        atomic_uint_least64_t connect_errors; /* shared with the :443 relay path */
        atomic_uint_least64_t *closed;        /* [_PROXY_CLOSE_MAX], per close reason */
        atomic_uint_least64_t *active;        /* live connections of the worker */
};

struct proxy_hw_env {
        uv_loop_t *loop;                  /* the worker's loop */
        const struct proxy_config *cfg;   /* defaults resolved by engine.c; outlives the hw */
        struct proxy_route_table *routes; /* for proxy_routes_refresh() */
        struct proxy_routes **snap;       /* the worker's cached snapshot (refresh into it) */
        struct proxy_hw_stats *stats;     /* */
        /* Called after a connection of this module was freed (the engine may
         * resume accepting), and once more when the hw became finished. */
        void (*conn_freed)(void *ud);
        /* How many idle pooled backend connections the worker's descriptor
         * share allows now (its share minus two per client connection);
         * NULL: max_conns_per_worker. */
        unsigned (*pool_room)(void *ud);
        void *ud;
};

enum proxy_hconn_kind {
        PROXY_HCONN_PLAIN, /* :80 */
        PROXY_HCONN_TLS,   /* :443, terminated */
};

/* Returns 0 or -ENOMEM. @env is copied. */
int proxy_hw_new(const struct proxy_hw_env *env, struct proxy_hw **ret);

/* Take over the accepted, non-blocking, CLOEXEC socket @fd (closed by this
 * module whatever happens) with @peer (the client's address). For TLS,
 * @route is the route the SNI selected (a reference is taken; its cert is
 * served) and @prefix/@prefix_len the bytes already read from @fd (copied).
 * Counts the connection in stats->active until it is freed. Returns 0, or
 * -ENOMEM / -EIO / -ESHUTDOWN after begin_stop (the fd was closed, nothing
 * else happened). */
int proxy_hw_accept(struct proxy_hw *hw, int fd, enum proxy_hconn_kind kind,
                    const struct sockaddr_storage *peer, struct proxy_route *route,
                    const uint8_t *prefix, size_t prefix_len);

/* The route table published a new snapshot (already refreshed into
 * *env->snap): close the connections whose SNI route or in-flight request's
 * route is gone, changed mode or changed host (compare by workload ID as
 * engine.c's route_still_current() does), and pooled upstream connections
 * no route uses any more. Others are untouched. */
void proxy_hw_routes_changed(struct proxy_hw *hw);

/* Graceful stop: no new requests are read; idle client connections and the
 * pool close now, a request in flight finishes its response and then the
 * connection closes. */
void proxy_hw_begin_stop(struct proxy_hw *hw);
/* Close everything now (the stop deadline passed). */
void proxy_hw_close_all(struct proxy_hw *hw);
/* Client connections not yet freed. */
unsigned proxy_hw_n_conns(const struct proxy_hw *hw);
/* Idle backend connections in the pool. */
unsigned proxy_hw_n_pooled(const struct proxy_hw *hw);
/* Close the pooled connections idle the longest until at most @keep are
 * left (their sockets are closed before this returns). */
void proxy_hw_pool_trim(struct proxy_hw *hw, unsigned keep);
/* True once every handle of this module (connections, pool, timers) went
 * through its close callback after begin_stop/close_all: the worker's loop
 * can end. */
bool proxy_hw_finished(const struct proxy_hw *hw);
/* Only when proxy_hw_finished() (or nothing was ever accepted). Accepts
 * NULL; returns NULL. */
struct proxy_hw *proxy_hw_free(struct proxy_hw *hw);
