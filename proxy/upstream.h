/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* Backend connections of one worker: dialling through the socket factory
 * (the daemon's netns socket pool) and the keep-alive pool, for any server
 * protocol (h2o's socketpool.c). An upstream is a struct sock plus its place
 * in the pool; whoever uses one sets its socket's handler (sock_set_cb()).
 * The pool reports to its owner only through the callbacks of struct
 * upstream_pool_env, and knows nothing about HTTP.
 *
 * The pool: per (namespace, backend address incl. port) a group with a
 * LIFO list of idle connections (at most idle_max when that is not 0), in
 * a hash table keyed with SipHash. In total at most max_total idle
 * connections, and no more than the owner's room() allows (the worker's
 * descriptor share after two per client connection); at the bound the
 * connection idle the longest makes room. So the pool grows with demand
 * (every connection a burst needed is kept while descriptors allow) and
 * shrinks when idle: LIFO reuse leaves the surplus at the bottom of each
 * list, where its deadline (queue tq_pool) closes it. Idle connections
 * keep read interest: EOF, an error or stray bytes close them too. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "common/siphash.h"
#include "proxy/proxy.h"
#include "proxy/sock.h"

struct proxy_route;
struct proxy_routes;
struct upstream_group;

struct upstream_pool_env {
        struct ev *ev;
        proxy_socket_factory_cb *factory; /* never NULL */
        void *factory_ud;
        unsigned idle_max;  /* idle connections per backend; 0: no bound of its own
                             * (max_total and room() still apply) */
        unsigned max_total; /* idle connections in all */
        unsigned tq_pool;   /* the deadline queue of idle connections */
        /* Idle connections the owner's descriptors allow now; NULL: no bound
         * beyond max_total. */
        unsigned (*room)(void *ud);
        /* An upstream was freed (memory too): the owner may be finished. */
        void (*freed)(void *ud);
        void *ud;
};

/* What a pooled connection is good for: one backend address and port. */
struct upstream_key {
        uint16_t family;
        uint16_t port; /* network order */
        uint32_t scope;
        uint8_t addr[16];
};

struct upstream_pool {
        struct upstream_pool_env env;
        struct upstream_group **buckets;
        size_t n_buckets, n_groups;
        struct siphash_key hkey;
        unsigned n_open; /* upstreams not yet freed */
        unsigned n_idle; /* idle in the pool, all groups */
        bool closed;     /* upstream_pool_close_idle(): nothing is pooled any more */
};

struct upstream {
        struct sock *s; /* NULL only while being dialled */
        struct upstream_pool *pool;
        struct upstream_group *grp; /* NULL: never pooled (a passthrough connection) */
        struct upstream *gnext;     /* in grp's idle list */
        struct upstream **gpprev;   /* */
        struct proxy_route *route;  /* last route served (ref), for route changes */
        bool reused;                /* taken from the pool for the current use */
        bool closing;               /* upstream_close() called */
};

/* The key for dialling @sa (port @port_override instead of its own if not
 * 0). */
void upstream_key_of(struct upstream_key *k, const struct sockaddr *sa, uint16_t port_override);

/* @env is copied. Returns 0 or -ENOMEM. */
int upstream_pool_init(struct upstream_pool *p, const struct upstream_pool_env *env);
/* Only once n_open is 0. */
void upstream_pool_done(struct upstream_pool *p);

/* The idle connection for @k in namespace @netns used most recently, out of
 * the pool (its handler is still the pool's: set yours), or NULL. */
struct upstream *upstream_take(struct upstream_pool *p, const struct upstream_key *k,
                               const char *netns);

/* Dial @k for @route (a reference is taken): a socket from the factory,
 * TCP_NODELAY, a non-blocking connect(); the socket's handler is @cb/@data.
 * @pooled: it may be given back to the pool later (a group is kept for it).
 * Returns 0 with *ret (s->connecting, or connected at once), -ENOMEM, or
 * the factory's or connect()'s -errno (*ret_factory_failed tells which). */
int upstream_dial(struct upstream_pool *p, struct proxy_route *route, const struct upstream_key *k,
                  bool pooled, sock_cb *cb, void *data, struct upstream **ret,
                  bool *ret_factory_failed);

/* The user is done with @u: back to the pool if @reusable (the exchange
 * ended cleanly, the backend keeps the connection) and there is room,
 * closed otherwise. */
void upstream_release(struct upstream *u, bool reusable);

/* Close @u (its socket now, the memory from the reap). Accepts NULL. */
void upstream_close(struct upstream *u);

/* Close idle connections, the longest idle first, until at most @keep are
 * left (their sockets are closed before this returns). */
void upstream_pool_trim(struct upstream_pool *p, unsigned keep);
/* Close every idle connection and pool nothing any more (stop). */
void upstream_pool_close_idle(struct upstream_pool *p);
/* The route table changed: close idle connections whose route (by ID) is
 * gone, changed host, mode or namespace, or no longer lists their backend. */
void upstream_pool_routes_changed(struct upstream_pool *p, const struct proxy_routes *snap);
