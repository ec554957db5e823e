/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* Engine-internal: what the connections of one worker thread share, and
 * what every client connection is whatever protocol it speaks.
 *
 *   - struct proxy_worker: the event layer (one epoll set for every socket
 *     of the worker: clients on :443 and :80, backends), the deadline
 *     queues (enum proxy_tq, durations from struct proxy_config), the
 *     backend pool, the cached route snapshot, the statistics, the list of
 *     client connections, and the buffers they share. engine.c owns the
 *     thread, its loop and the listeners around it.
 *   - struct proxy_conn: the head of every client connection object (the
 *     :443 front, an HTTP/1.1 connection; later HTTP/2), on the worker's
 *     list for route changes, stop and the connection limit. A protocol
 *     switch (the :443 front handing a TLS connection to HTTP/1.1) replaces
 *     the object on the list: the connection is counted once, accepted to
 *     freed, and its socket never changes hands.
 *   - proxy_request_done(): the one place where the end of every request
 *     is known and counted (an access log goes here).
 *
 * Everything runs on the worker's thread, except that the statistics are
 * read by any thread (relaxed atomics). */

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <uv.h>

#include "proxy/access-log.h"
#include "proxy/ev.h"
#include "proxy/health.h"
#include "proxy/proxy.h"
#include "proxy/upstream.h"

struct proxy_request_info; /* proxy/svcstats.h */
struct proxy_route;
struct proxy_route_table;
struct proxy_routes;
struct h1_ctx;
struct climits;

/* The worker's deadline queues; each has one fixed duration. */
enum proxy_tq {
        PROXY_TQ_HANDSHAKE, /* accept -> ClientHello; ClientHello -> TLS handshake done */
        PROXY_TQ_REQUEST,   /* request head from its first byte; request body stall */
        PROXY_TQ_KEEPALIVE, /* idle client between requests */
        PROXY_TQ_CONNECT,   /* one backend connect attempt (on the backend socket) */
        PROXY_TQ_UPSTREAM,  /* request sent, response head due (on the backend socket) */
        PROXY_TQ_IDLE,      /* no progress: response body, our answer, tunnel, relay */
        PROXY_TQ_LINGER,    /* answered and half-closed: waiting for the client's EOF */
        PROXY_TQ_POOL,      /* idle pooled backend connection */
        PROXY_TQ_BACKOFF,   /* a listener paused after accept4() failed */
        PROXY_TQ_BODY,      /* request body: body_min_rate per body_timeout_ms */
        PROXY_TQ_SEND,      /* response owed to a client that does not take it */
        _PROXY_TQ_MAX,
};

#define PROXY_LINGER_MS    2000u          /* PROXY_TQ_LINGER */
#define PROXY_LINGER_MAX   (256u * 1024u) /* bytes drained while lingering, then close */
#define PROXY_BACKOFF_MS   100u           /* PROXY_TQ_BACKOFF */
#define PROXY_SCRATCH_SIZE 16384u

/* Written by the worker only, read by any thread. */
struct proxy_worker_stats {
        atomic_uint_least64_t accepted;
        atomic_uint_least64_t accept_backoffs;
        atomic_uint_least64_t active;
        atomic_uint_least64_t open[2]; /* active by entry point: [0] :443, [1] :80 */
        atomic_uint_least64_t tls_handshakes;
        atomic_uint_least64_t tls_resumed;
        atomic_uint_least64_t http_requests;
        atomic_uint_least64_t http_status[5];
        atomic_uint_least64_t upstream_connects;
        atomic_uint_least64_t upstream_reused;
        atomic_uint_least64_t connect_errors;
        atomic_uint_least64_t closed[_PROXY_CLOSE_MAX];
        atomic_uint_least64_t limit_rejections[2][_PROXY_LIMIT_MAX]; /* [0] :443, [1] :80 */
};

static inline void proxy_stat_add(atomic_uint_least64_t *a, uint64_t n)
{
        atomic_fetch_add_explicit(a, n, memory_order_relaxed);
}

struct proxy_conn;

/* What the worker asks of a connection, whatever its protocol. */
struct proxy_conn_ops {
        const char *name;
        /* The route table changed (the worker's snapshot is fresh): close
         * the connection if a route it serves is gone, renamed or changed
         * mode (proxy_route_still_current()); keep it otherwise. */
        void (*routes_changed)(struct proxy_conn *c);
        /* Stop: @now false: close unless a request or relay is in flight
         * (that one ends, then the connection closes); @now true: close. */
        void (*stop)(struct proxy_conn *c, bool now);
};

struct proxy_conn {
        struct proxy_conn *prev, *next; /* in w->conns */
        const struct proxy_conn_ops *ops;
        struct proxy_worker *w;
        bool https;       /* accepted on :443 (kept across a protocol switch) */
        uint32_t climit;  /* climits_admit()'s handle, released when freed */
        bool climit_held; /* counted by climits_admit() (the accept path) */
};

struct proxy_worker {
        struct ev ev;                     /* the epoll set, deferred frees, deadline queues */
        unsigned idx;                     /* the worker's index (per-worker rings, logs) */
        const struct proxy_config *cfg;   /* defaults resolved; outlives the worker */
        struct proxy_route_table *routes; /* */
        struct proxy_routes *snap;        /* cached snapshot (proxy_routes_refresh) */
        struct proxy_worker_stats stats;  /* */
        struct upstream_pool pool;        /* backend connections (pooled or not) */
        struct proxy_health health;       /* active checks of down backends (health.h) */
        struct h1_ctx *h1;                /* the HTTP/1.1 server's shared state */
        struct proxy_conn *conns;         /* client connections, closing ones included */
        unsigned n_conns;                 /* */
        unsigned fds;            /* descriptors for connections: two per client, one per pooled */
        uint8_t *rbuf;           /* the relay's shared read buffer, cfg->relay_buf_size */
        uint8_t *scratch;        /* PROXY_SCRATCH_SIZE: linger drains, ACME answers */
        struct climits *climits; /* the engine's client limits; NULL: none (tests) */
        uint32_t admit_handle;   /* climits handle of the connection being accepted */
        bool admitted;           /* ... which the next proxy_conn_add() takes */
        bool ev_init;            /* */
        bool stopping;           /* begin_stop: no new requests, nothing pooled */
        bool ev_stopping;        /* the last connection went: the event layer closes */
        bool finished;           /* ... and closed: the loop can end */
        /* A connection was freed, or the worker finished (the engine resumes
         * accepting, or ends the loop). */
        void (*conn_freed)(struct proxy_worker *w);
};

/* Check @cfg's bounds (-EINVAL), fill in every default, resolve the worker
 * count, max_fds (0: from RLIMIT_NOFILE) and max_conns_per_worker; the
 * descriptors each worker's connections may claim go to *ret_worker_fds
 * (-EMFILE when that leaves too few, see proxy.h). (config.c) */
int proxy_config_resolve(const struct proxy_config *cfg, struct proxy_config *ret,
                         unsigned *ret_worker_fds);
/* The fields that may change live (proxy_engine_set_limits()): check
 * @in's and write them, defaults filled in, into @c, which is resolved
 * already (workers, max_conns_per_worker). Returns 0 or -EINVAL (@c is
 * untouched then). (config.c) */
int proxy_config_resolve_live(const struct proxy_config *in, struct proxy_config *c);

/* Set up @w on @loop (its thread's), with @fds descriptors for client and
 * backend connections. Returns 0 or -errno; on failure proxy_worker_done()
 * undoes what was done. */
int proxy_worker_init(struct proxy_worker *w, uv_loop_t *loop, const struct proxy_config *cfg,
                      struct proxy_route_table *routes, unsigned fds,
                      void (*conn_freed)(struct proxy_worker *w));
/* Only once finished (or when nothing was ever accepted and the loop ran
 * to the end). */
void proxy_worker_done(struct proxy_worker *w);

/* The current snapshot, refreshed without an atomic RMW if unchanged. */
struct proxy_routes *proxy_worker_snap(struct proxy_worker *w);

/* A new client connection @c of @w speaking @ops, accepted on :443 if
 * @https, else on :80: on the list, active (and open on that entry point
 * until proxy_conn_freed()). */
void proxy_conn_add(struct proxy_worker *w, struct proxy_conn *c, const struct proxy_conn_ops *ops,
                    bool https);
/* @to takes @from's place (a protocol switch): @from is off the list and
 * may be freed; the count does not change. */
void proxy_conn_switch(struct proxy_conn *from, struct proxy_conn *to,
                       const struct proxy_conn_ops *ops);
/* @c's memory is about to go (from its socket's reap): off the list,
 * counted as closed for @reason; the engine may accept again. */
void proxy_conn_freed(struct proxy_conn *c, enum proxy_close_reason reason);

/* The end of one request, counted once: in the worker's statistics if
 * @ri->status is a status (100..599), and on @route if not NULL (a proxied
 * request: status, bytes, method, protocol, HTTP version and duration as
 * @ri says). The single place where a request's end is known. */
void proxy_request_done(struct proxy_worker *w, struct proxy_route *route,
                        const struct proxy_request_info *ri);

/* ---- the access log (access-engine.c) ---- */

/* Whether @w's lines go anywhere now (one relaxed load). */
static inline bool proxy_access_on(const struct proxy_worker *w)
{
        const struct proxy_access_sink *s = w->cfg->access_log;

        return s && atomic_load_explicit(&s->enabled, memory_order_relaxed);
}

/* CLOCK_MONOTONIC in ns while the log is on, 0 (no clock read) while off: a
 * record whose start is 0 was begun with the log off and is not written. */
uint64_t proxy_access_clock(const struct proxy_worker *w);

/* Backend @be (NULL: none), dialled on @port_override instead of its own
 * port if not 0, as a sockaddr in @ss; returns NULL or @ss. */
struct proxy_backend;
const struct sockaddr *proxy_access_backend(const struct proxy_backend *be, uint16_t port_override,
                                            struct sockaddr_storage *ss);

/* Push @rec into @w's ring (proxy__access_emit()). */
void proxy_access_emit(struct proxy_worker *w, struct proxy_access_record *rec);

/* Idle pooled connections the descriptors allow now: @fds minus two per
 * client connection. */
unsigned proxy_worker_pool_room(const struct proxy_worker *w);

/* The live limits changed: @cfg (the worker's own copy, updated by the
 * caller on the worker's thread) gives the deadline queues their new
 * durations. */
void proxy_worker_apply_limits(struct proxy_worker *w, const struct proxy_config *cfg);

/* The route table published a snapshot: refresh, ask every connection,
 * prune the pool. */
void proxy_worker_routes_changed(struct proxy_worker *w);
/* Graceful stop: connections not busy close, busy ones finish first; the
 * pool closes and pools nothing any more. */
void proxy_worker_begin_stop(struct proxy_worker *w);
/* The stop deadline: close everything now. */
void proxy_worker_close_all(struct proxy_worker *w);
