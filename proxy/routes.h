/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* The proxy's route table: immutable, reference-counted snapshots that
 * worker threads read without a lock, and a builder that daemon/ uses to
 * derive the next snapshot from the current one.
 *
 *   - struct proxy_route: one name (host) -> backends, immutable once built.
 *     Its counters block is a separate refcounted object that every version
 *     of the same workload ID shares, so replacing the backends keeps the
 *     counts.
 *   - struct proxy_routes: a snapshot. Two persistent hash tries (CHAMP:
 *     compressed hash-array mapped prefix trees, 32-way, keyed SipHash-1-3)
 *     index it by host and by workload ID. A change copies only the path
 *     from the root to the changed entry (about 4 nodes at 100k routes);
 *     everything else is shared with the previous snapshot, so the cost of
 *     one change does not grow with the table.
 *   - struct proxy_routes_builder: add/replace/remove on top of a base
 *     snapshot, then commit. Nodes the builder created itself are edited in
 *     place until the commit (Clojure-style transients), so bulk loads do not
 *     copy a path per entry.
 *   - struct proxy_route_table: the published pointer. proxy_routes_acquire()
 *     is lock-free for readers; proxy_route_table_publish() swaps the pointer
 *     and drops the table's ref on the old snapshot only after a grace
 *     period (no reader is between loading the old pointer and taking its
 *     own reference), deferring the drop rather than blocking.
 *     The safety argument is in routes.c above proxy_routes_acquire().
 *
 * Threading: snapshots and routes may be read and ref'd/unref'd from any
 * thread. A builder is single-threaded. Publishing is done by one thread at
 * a time (the daemon's loop); acquire may run concurrently on any number of
 * threads. */

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct proxy_cert;     /* proxy/tls.h */
struct proxy_svcstats; /* proxy/svcstats.h */

#define PROXY_ROUTE_HOST_MAX         253 /* bytes in a host name, without a trailing dot */
#define PROXY_ROUTE_LABEL_MAX        63  /* bytes in one label */
#define PROXY_ROUTE_ID_MAX           255 /* bytes in a workload ID */
#define PROXY_ROUTE_BACKENDS_MAX     64  /* backends per route (as WL_BACKENDS_MAX) */
#define PROXY_ROUTE_BACKEND_TEXT_MAX 512 /* bytes per backend text (as WL_BACKEND_MAX) */
#define PROXY_ROUTE_NETNS_MAX        4095

enum proxy_route_mode {
        PROXY_ROUTE_TERMINATE,   /* TLS (if any) ends here; HTTP/1.1 to the backends */
        PROXY_ROUTE_PASSTHROUGH, /* raw TCP relay chosen by SNI; TLS ends at the backend */
        _PROXY_ROUTE_MODE_MAX,
};

const char *proxy_route_mode_str(enum proxy_route_mode m);

/* ---- counters ---- */

/* Per-workload traffic counters. Updated with relaxed atomics from any
 * worker; readers get a consistent value per field, not across fields. */
struct proxy_counters {
        atomic_uint n_ref;
        atomic_uint_least64_t requests;      /* requests (terminate) or connections (passthrough) */
        atomic_uint_least64_t request_bytes; /* client -> backend payload bytes */
        atomic_uint_least64_t response_bytes; /* backend -> client payload bytes */
        atomic_uint_least64_t status[5];      /* [0] = 1xx ... [4] = 5xx */
        /* Codes, methods, durations, versions (svcstats.h): allocated at the
         * first HTTP request, NULL until then; freed with the block. */
        struct proxy_svcstats *_Atomic svc;
        atomic_uint_least64_t backend_failures[3]; /* by enum proxy_backend_failure */
};

struct proxy_counters_values {
        uint64_t requests;
        uint64_t request_bytes;
        uint64_t response_bytes;
        uint64_t status[5];
        uint64_t backend_failures[3];
};

/* A zeroed block with one reference. Returns 0 or -ENOMEM. */
int proxy_counters_new(struct proxy_counters **ret);
struct proxy_counters *proxy_counters_ref(struct proxy_counters *c);
/* Drops a reference; frees on the last. Accepts NULL; returns NULL. */
struct proxy_counters *proxy_counters_unref(struct proxy_counters *c);
static inline void proxy_counters_unrefp(struct proxy_counters **c)
{
        proxy_counters_unref(*c);
}

/* Count one finished request. @status outside 100..599 (e.g. 0 for a
 * passthrough connection) counts no status class. */
void proxy_counters_add(struct proxy_counters *c, unsigned status, uint64_t request_bytes,
                        uint64_t response_bytes);
void proxy_counters_read(struct proxy_counters *c, struct proxy_counters_values *ret);

/* Bytes a long-lived stream (a passthrough connection, a WebSocket tunnel)
 * moved, added to its route's shared block in batches of this many bytes
 * per direction and at the end: a stream shows up while it runs, without
 * an atomic add per read. */
#define PROXY_COUNTERS_BATCH_BYTES (256u * 1024u)

struct proxy_counters_batch {
        struct proxy_counters *c; /* borrowed: the owner holds the route (and so @c) */
        uint64_t pending[2];      /* [0] request bytes, [1] response bytes not yet added */
};

/* Add what is pending to b->c (nothing without one). */
void proxy_counters_batch_flush(struct proxy_counters_batch *b);

/* Count @n bytes in direction @response (false: client -> backend). */
static inline void proxy_counters_batch_add(struct proxy_counters_batch *b, bool response,
                                            uint64_t n)
{
        b->pending[response] += n;
        if (b->pending[response] >= PROXY_COUNTERS_BATCH_BYTES)
                proxy_counters_batch_flush(b);
}

/* ---- backend health ---- */

/* Why a backend was marked down (docs/internals/proxy.md, "Backend
 * health"); also the reason label of the failure counters. */
enum proxy_backend_failure {
        PROXY_BACKEND_FAIL_CONNECT, /* connect() failed: refused, unreachable, ... */
        PROXY_BACKEND_FAIL_TIMEOUT, /* no connection within connect_timeout_ms */
        PROXY_BACKEND_FAIL_RESET,   /* a new connection reset or closed before any response byte */
        _PROXY_BACKEND_FAIL_MAX,
};

/* "connect", "timeout", "reset"; NULL when out of range. */
const char *proxy_backend_failure_str(enum proxy_backend_failure f);

/* The health of one backend of one workload: shared by every worker
 * (relaxed atomics, no lock) and by every version of the route that keeps
 * this backend (same address and port), so a route update does not forget
 * that a backend is down. Written by the engine only. */
struct proxy_backend_health {
        atomic_uint n_ref;
        atomic_bool down;                   /* requests avoid it while another backend is up */
        atomic_bool checking;               /* a worker owns its active check */
        atomic_uint fails;                  /* failures in a row (the back-off's exponent) */
        atomic_uint last_error;             /* enum proxy_backend_failure + 1; 0: none yet */
        atomic_int last_errno;              /* the errno of the last failure (positive), 0: none */
        atomic_int_least64_t since_ms;      /* CLOCK_REALTIME ms of the last up/down change */
        atomic_int_least64_t last_error_ms; /* CLOCK_REALTIME ms of the last failure */
};

struct proxy_backend_health_values {
        bool down;
        bool has_error;
        enum proxy_backend_failure last_error;
        int last_errno;
        int64_t since_ms; /* 0: up since the route was made */
        int64_t last_error_ms;
};

/* A fresh "up" block with one reference. 0 or -ENOMEM. */
int proxy_backend_health_new(struct proxy_backend_health **ret);
struct proxy_backend_health *proxy_backend_health_ref(struct proxy_backend_health *h);
/* Accepts NULL; returns NULL. */
struct proxy_backend_health *proxy_backend_health_unref(struct proxy_backend_health *h);
void proxy_backend_health_read(const struct proxy_backend_health *h,
                               struct proxy_backend_health_values *ret);

/* ---- routes ---- */

struct proxy_backend {
        struct sockaddr_storage addr; /* AF_INET or AF_INET6, ready for connect() */
        socklen_t addr_len; /* sizeof(struct sockaddr_in) or sizeof(struct sockaddr_in6) */
        const char *text;   /* the workload's original text, for logs and the bus */
        /* In a route: never NULL, shared with the previous version of the
         * route when it had the same address. Ignored in a spec. */
        struct proxy_backend_health *health;
};

/* Immutable after the builder created it (except @rr_next, the engine's
 * atomic round-robin cursor); shared by every snapshot that contains it.
 * A connection that needs its route beyond the snapshot it looked it up
 * in takes proxy_route_ref(). */
struct proxy_route {
        atomic_uint n_ref;
        enum proxy_route_mode mode;
        uint64_t generation;             /* snapshot generation that introduced this version */
        const char *id;                  /* workload ID, for counters and logs */
        const char *host;                /* lower-case FQDN, no trailing dot; may be "*.parent" */
        const char *netns;               /* namespace path to dial backends in, or NULL */
        struct proxy_counters *counters; /* shared by all versions of @id; never NULL */
        struct proxy_cert *cert;         /* TERMINATE: certificate for TLS (may be NULL) */
        size_t id_len;
        size_t host_len;
        size_t n_backends;   /* >= 1 */
        atomic_uint rr_next; /* round-robin backend cursor: the one mutable field (engine) */
        struct proxy_backend backends[];
};

struct proxy_route *proxy_route_ref(struct proxy_route *r);
/* Drops a reference; frees on the last. Accepts NULL; returns NULL. */
struct proxy_route *proxy_route_unref(struct proxy_route *r);
static inline void proxy_route_unrefp(struct proxy_route **r)
{
        proxy_route_unref(*r);
}

/* ---- snapshots ---- */

struct proxy_routes;

struct proxy_routes *proxy_routes_ref(struct proxy_routes *s);
/* Drops a reference. The last one frees the nodes this snapshot does not
 * share with others (O(changed nodes) for a snapshot that differs from its
 * successor by one change). Accepts NULL; returns NULL. */
struct proxy_routes *proxy_routes_unref(struct proxy_routes *s);
static inline void proxy_routes_unrefp(struct proxy_routes **s)
{
        proxy_routes_unref(*s);
}

size_t proxy_routes_size(const struct proxy_routes *s);
/* 0 for the table's initial empty snapshot, +1 per commit. */
uint64_t proxy_routes_generation(const struct proxy_routes *s);

/* The route for @host (@len bytes, need not be NUL-terminated; ASCII case
 * ignored; one trailing dot ignored; the caller strips any ":port"). NULL if
 * there is none. The pointer is borrowed from @s: valid while the caller
 * holds @s, or longer after proxy_route_ref(). Does not allocate. */
struct proxy_route *proxy_routes_lookup(const struct proxy_routes *s, const char *host, size_t len);
/* The route for workload ID @id (exact bytes), or NULL. Borrowed as above. */
struct proxy_route *proxy_routes_lookup_id(const struct proxy_routes *s, const char *id);
/* Whether @r (the route a connection was routed with, held by it) is still
 * served as it was: @s has a route of the same workload ID with the same
 * host and mode. Other changes (backends, certificate) make a new route
 * object but leave connections alone; those keep the route they hold. */
bool proxy_route_still_current(const struct proxy_routes *s, const struct proxy_route *r);
/* For certificate and SNI selection: the route for @host, else the route
 * stored under "*.<parent of @host>" (one label, RFC 6125 §6.4.3), else NULL.
 * Borrowed as above. */
struct proxy_route *proxy_routes_lookup_wildcard(const struct proxy_routes *s, const char *host,
                                                 size_t len);

/* Write "*.<parent>" of @host (lower-cased, NUL-terminated) into @buf.
 * Returns its length, -EINVAL if @host has no parent ("com", ".com", "a."),
 * or -ENOBUFS if @size is too small. */
int proxy_host_wildcard(const char *host, size_t len, char *buf, size_t size);

/* Call @cb for every route (unspecified order) until it returns non-zero,
 * which is then returned; 0 when all were visited. */
int proxy_routes_foreach(const struct proxy_routes *s,
                         int (*cb)(struct proxy_route *r, void *userdata), void *userdata);

/* ---- builder ---- */

struct proxy_route_spec {
        const char *id;                       /* workload ID, 1..PROXY_ROUTE_ID_MAX bytes */
        const char *host;                     /* any case; one trailing dot allowed */
        enum proxy_route_mode mode;           /* */
        const struct proxy_backend *backends; /* copied, including the text */
        size_t n_backends;                    /* 1..PROXY_ROUTE_BACKENDS_MAX */
        const char *netns;                    /* absolute path or NULL; copied */
        struct proxy_counters *counters; /* NULL: the previous version's block, else a new one */
        struct proxy_cert *cert; /* TERMINATE only (else must be NULL): the certificate served
                                  * for this host (and the hosts its wildcard route covers);
                                  * a reference is taken. NULL: no TLS for this route */
};

struct proxy_routes_builder;

/* Start a builder on top of @base (borrowed; NULL for an empty table).
 * Returns 0 or -ENOMEM. */
int proxy_routes_builder_new(const struct proxy_routes *base, struct proxy_routes_builder **ret);
struct proxy_routes_builder *proxy_routes_builder_free(struct proxy_routes_builder *b);
static inline void proxy_routes_builder_freep(struct proxy_routes_builder **b)
{
        proxy_routes_builder_free(*b);
}

/* Add or replace the route of @spec->id. The counters block carries over
 * from the previous version of the same ID unless @spec->counters is set;
 * so does the health of each backend whose address (incl. port) the
 * previous version also had (compared as proxy_backend.addr).
 * If the ID had another host, that host is removed (a rename).
 * Returns 0 (added), 1 (replaced), 2 (identical to the current version:
 * nothing changed, the route object and its generation are kept),
 * -EINVAL (bad spec), -EEXIST (the host belongs to another ID; remove that
 * first). On -EINVAL/-EEXIST the builder is unchanged. -ENOMEM poisons the
 * builder: every later call returns -ENOMEM; free it and start again. */
int proxy_routes_builder_put(struct proxy_routes_builder *b, const struct proxy_route_spec *spec);
/* Remove the route of @host / of workload @id. Returns 1 (removed),
 * 0 (there was none), or -ENOMEM (poisons, as above). */
int proxy_routes_builder_remove_host(struct proxy_routes_builder *b, const char *host);
int proxy_routes_builder_remove_id(struct proxy_routes_builder *b, const char *id);
/* The route the builder currently has for @host, borrowed until the next
 * change to the builder. */
struct proxy_route *proxy_routes_builder_lookup(const struct proxy_routes_builder *b,
                                                const char *host);
size_t proxy_routes_builder_size(const struct proxy_routes_builder *b);

/* Freeze the builder's state into a new snapshot with generation
 * base + 1, returned with one reference in @ret. The builder stays usable
 * and now builds on that snapshot. Returns 0, -ENOMEM, or the builder's
 * poison error. */
int proxy_routes_builder_commit(struct proxy_routes_builder *b, struct proxy_routes **ret);

/* ---- the published table ---- */

struct proxy_route_table;

/* A table publishing an empty snapshot of generation 0. 0 or -ENOMEM. */
int proxy_route_table_new(struct proxy_route_table **ret);
/* Only once no thread can call acquire any more (workers joined). Snapshots
 * still held elsewhere stay valid. Accepts NULL; returns NULL. */
struct proxy_route_table *proxy_route_table_free(struct proxy_route_table *t);

/* Make @s current (the table takes its own reference; the caller keeps
 * theirs). Every acquire that starts after this returns @s. Never blocks:
 * the table's reference on the old snapshot is dropped once no reader can
 * still be taking a reference to it, normally before this returns; if a
 * reader was preempted inside acquire it is dropped by a later publish or
 * proxy_route_table_reclaim(). Returns 0, or -ESTALE if @s was not built
 * on the current snapshot (its generation is not current + 1: another
 * commit won; rebuild). One publishing thread at a time. */
int proxy_route_table_publish(struct proxy_route_table *t, struct proxy_routes *s);

/* Retry dropping replaced snapshots that publish had to leave behind.
 * Returns how many are still waiting; the daemon calls it from a short
 * timer while that is > 0. Same thread rules as publish. */
size_t proxy_route_table_reclaim(struct proxy_route_table *t);

/* The current snapshot with a new reference (never NULL). Lock-free; safe
 * on any thread concurrently with publish. */
struct proxy_routes *proxy_routes_acquire(struct proxy_route_table *t);

/* For a worker that keeps one snapshot ref in @cache (NULL at first): if
 * the table still publishes *cache, return it without any atomic
 * read-modify-write; otherwise swap *cache for a fresh acquire. Returns
 * *cache, borrowed from the cache. The worker unrefs *cache when it stops. */
struct proxy_routes *proxy_routes_refresh(struct proxy_route_table *t, struct proxy_routes **cache);
