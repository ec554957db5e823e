/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* The proxy engine: N worker threads, each with its own libuv loop, serving
 * connections accepted on listening sockets the caller hands in, routed by
 * the immutable snapshots of a struct proxy_route_table (proxy/routes.h).
 *
 * Listeners: the caller passes one bound socket per port (@https_fd,
 * @http_fd; either may be -1, not both). Every worker polls its own
 * F_DUPFD_CLOEXEC copy in its epoll set and accept4()s in bounded batches,
 * so all workers poll the same accept queue (one fd, no SO_REUSEPORT): the
 * kernel hands each connection to whichever worker accepts first. A worker
 * at its connection limit (both ports count) stops polling until a
 * connection of its own ends; a listener whose accept4() fails with
 * EMFILE, ENFILE, ENOMEM or ENOBUFS stops polling and retries from a timer
 * (never a busy loop). The caller keeps its own fds and may close them once
 * proxy_engine_start() returned. The engine calls listen() on them itself.
 *
 * Descriptors: the engine never holds more than max_fds descriptors. Each
 * worker gets max_fds / workers, keeps PROXY_ENGINE_WORKER_FDS of that for
 * itself (its loops, listener copies, epoll set) and counts every client
 * connection as two (client and backend socket) and every idle pooled
 * backend connection as one; at the bound it stops accepting, and closes
 * idle pooled connections to make room for clients. So a process limit
 * (RLIMIT_NOFILE) above max_fds is never reached by the proxy, whatever
 * clients do.
 *
 * :443 peeks the ClientHello: a passthrough route is relayed as TCP, a
 * terminated one switches to TLS with the route's certificate on the same
 * socket, then to HTTP/1.1 to the backends; :80 is HTTP (ACME challenges,
 * 308 to https, or proxying with @http_plain). See proxy/tls-front.h,
 * proxy/h1-server.h and docs/internals/proxy.md.
 *
 * Outgoing sockets come from a socket factory, which the daemon implements
 * with its namespace worker; the proxy cannot tell which namespace a socket
 * lives in.
 *
 * Threading: new/start/routes_changed/stop/free are called from one thread
 * (the daemon's loop); proxy_engine_stats() from any thread. Everything else
 * runs on the workers. The engine never logs above debug. */

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct proxy_route;
struct proxy_route_table;
struct proxy_engine;

/* Create a non-blocking, CLOEXEC, unconnected stream socket for dialing
 * @addr (@len bytes) on behalf of route @r (borrowed, for its netns and
 * ID). Called on a worker thread, so it must be thread-safe and must not
 * block for long. Returns 0 and the fd in @ret_fd (the engine owns it
 * afterwards), or a -errno; the engine then tries the next backend. */
typedef int proxy_socket_factory_cb(void *ud, const struct proxy_route *r,
                                    const struct sockaddr *addr, socklen_t len, int *ret_fd);

/* The default factory: socket(2) in the caller's own namespace. */
int proxy_socket_factory_default(void *ud, const struct proxy_route *r, const struct sockaddr *addr,
                                 socklen_t len, int *ret_fd);

/* The ACME HTTP-01 token store (filled by the ACME issue): for a request
 * "GET /.well-known/acme-challenge/<token>" on :80 for a known terminated
 * @host, write the key authorization for @token into @out (@size bytes)
 * and return its length, or -ENOENT (404) / another -errno (500). Called on
 * a worker thread: must be thread-safe and must not block. */
typedef int proxy_acme_token_cb(void *ud, const char *host, const char *token, char *out,
                                size_t size);

struct proxy_tls;         /* proxy/tls.h */
struct proxy_access_sink; /* proxy/access-log.h */

/* Descriptors a worker keeps for itself out of its share of max_fds: its
 * loop's epoll fd, eventfd and libuv's spare fd, its own epoll set, its two
 * listener copies and two more while the listeners are replaced, one just
 * accepted while pooled backend connections make room for it, and spares. */
#define PROXY_ENGINE_WORKER_FDS 16u
/* When max_fds is 0: the soft RLIMIT_NOFILE minus this many for the rest of
 * the process (stdio, a log socket, the caller's own loop). */
#define PROXY_ENGINE_FD_RESERVE 64u
/* The smallest per-worker share proxy_engine_new() accepts: room for the
 * worker itself and 8 connections. */
#define PROXY_ENGINE_MIN_WORKER_FDS (PROXY_ENGINE_WORKER_FDS + 16u)

/* Zero means "the default" for every numeric field. */
struct proxy_config {
        unsigned workers;                        /* worker threads; 0: one per CPU */
        int https_fd;                            /* bound TCP socket for :443, or -1 */
        int http_fd;                             /* bound TCP socket for :80, or -1 */
        unsigned max_fds;                        /* descriptors for the whole engine;
                                                  * 0: RLIMIT_NOFILE's soft limit
                                                  * - PROXY_ENGINE_FD_RESERVE */
        unsigned max_conns_per_worker;           /* accepting pauses at this; 0 or more
                                                  * than the fd share allows: half the
                                                  * share (see Descriptors above) */
        size_t hello_max;                        /* ClientHello bound; 0: 16384 */
        uint64_t handshake_timeout_ms;           /* accept -> hello / TLS handshake done; 0: 10 s */
        uint64_t connect_timeout_ms;             /* per backend attempt; 0: 5 s */
        uint64_t idle_timeout_ms;                /* relay with no bytes either way; 0: 300 s */
        uint64_t stop_timeout_ms;                /* graceful stop bound; 0: 5 s */
        size_t relay_buf_size;                   /* per direction per connection; 0: 16 KiB */
        proxy_socket_factory_cb *socket_factory; /* NULL: proxy_socket_factory_default */
        void *socket_factory_ud;                 /* passed to @socket_factory */

        /* HTTP (terminated routes on :443, everything on :80). */
        struct proxy_tls *tls;             /* borrowed; NULL: terminated routes on :443 close */
        bool http_plain;                   /* :80 proxies terminated routes instead of 308 */
        proxy_acme_token_cb *acme_token;   /* NULL: every challenge of a terminated name 404s */
        void *acme_token_ud;               /* passed to @acme_token */
        uint32_t max_head;                 /* request/response head bytes (431/502); 0: 16 KiB */
        uint32_t max_headers;              /* header fields per head; 0: 100 */
        uint64_t request_timeout_ms;       /* first byte -> complete request head; 0: 30 s */
        uint64_t keepalive_timeout_ms;     /* idle client between requests; 0: 60 s */
        uint64_t upstream_timeout_ms;      /* request sent -> response head (504); 0: 60 s */
        unsigned upstream_idle_max;        /* idle pooled connections per backend per worker;
                                            * 0: 512 */
        uint64_t upstream_idle_timeout_ms; /* a pooled connection unused this long closes;
                                            * 0: 30 s */

        /* The access log (proxy/access-log.h): borrowed, outlives the
         * engine; NULL: no access log. */
        struct proxy_access_sink *access_log;
};

/* Why a connection ended; counted per engine (proxy_engine_stats) and meant
 * for the access log. */
enum proxy_close_reason {
        PROXY_CLOSE_DONE,            /* both sides finished (EOF relayed both ways) */
        PROXY_CLOSE_CLIENT_EOF,      /* client closed before its ClientHello was complete */
        PROXY_CLOSE_CLIENT_ERROR,    /* read/write error on the client socket */
        PROXY_CLOSE_UPSTREAM_ERROR,  /* read/write error on the backend socket */
        PROXY_CLOSE_BAD_HELLO,       /* not TLS, malformed, or larger than hello_max */
        PROXY_CLOSE_HELLO_TIMEOUT,   /* no complete ClientHello within handshake_timeout_ms */
        PROXY_CLOSE_NO_SNI,          /* ClientHello without server_name */
        PROXY_CLOSE_UNKNOWN_SNI,     /* no route for the name */
        PROXY_CLOSE_NO_TLS,          /* terminated route but no TLS context or certificate */
        PROXY_CLOSE_CONNECT_FAILED,  /* every backend refused, failed or timed out */
        PROXY_CLOSE_IDLE_TIMEOUT,    /* no bytes either way within idle_timeout_ms */
        PROXY_CLOSE_ROUTE_REMOVED,   /* the route was deleted (or renamed/changed mode) */
        PROXY_CLOSE_STOP,            /* engine stopping */
        PROXY_CLOSE_NOMEM,           /* allocation failed */
        PROXY_CLOSE_TLS_HANDSHAKE,   /* TLS handshake failed (alert sent) */
        PROXY_CLOSE_BAD_REQUEST,     /* HTTP: malformed request answered 4xx, then closed */
        PROXY_CLOSE_KEEPALIVE_DONE,  /* HTTP: the client closed between requests, or ours:
                                      * keep-alive timeout, Connection: close, 421/308/404 */
        PROXY_CLOSE_REQUEST_TIMEOUT, /* HTTP: request head or body stalled */
        PROXY_CLOSE_BAD_RESPONSE,    /* HTTP: backend response malformed or cut short */
        _PROXY_CLOSE_MAX,
};

const char *proxy_close_reason_str(enum proxy_close_reason r);

/* The states of a :443 connection before HTTP/1.1 takes it over (the
 * transition table is in tls-front.c). */
enum proxy_conn_state {
        PROXY_CONN_ST_ACCEPTED,         /* accepted, not yet reading */
        PROXY_CONN_ST_READ_HELLO,       /* buffering and peeking the ClientHello */
        PROXY_CONN_ST_TLS_HANDSHAKE,    /* terminated route: TLS handshake on the socket */
        PROXY_CONN_ST_CONNECT_UPSTREAM, /* dialing a backend of a passthrough route */
        PROXY_CONN_ST_RELAY,            /* relaying bytes both ways */
        PROXY_CONN_ST_CLOSING,          /* the socket is closed; freed from its reap */
        _PROXY_CONN_ST_MAX,
};

const char *proxy_conn_state_str(enum proxy_conn_state s);

struct proxy_engine_stats {
        uint64_t accepted;                 /* connections accepted (:443 and :80) */
        uint64_t tls_handshakes;           /* completed TLS handshakes (terminated) */
        uint64_t tls_resumed;              /* ... of which resumed a session */
        uint64_t http_requests;            /* HTTP requests answered (any status, incl. ours) */
        uint64_t http_status[5];           /* ... by class, [0] = 1xx .. [4] = 5xx */
        uint64_t upstream_connects;        /* new backend connections for HTTP */
        uint64_t upstream_reused;          /* HTTP requests sent on a pooled connection */
        uint64_t active;                   /* connections not yet freed */
        uint64_t connect_errors;           /* failed backend attempts (incl. timeouts) */
        uint64_t accept_backoffs;          /* a listener paused after EMFILE, ENFILE, ENOMEM,
                                            * ENOBUFS (or another accept4() error) */
        uint64_t closed[_PROXY_CLOSE_MAX]; /* freed connections by reason */
};

/* Validate @cfg (copied) and allocate the engine; @routes is borrowed and
 * must outlive the engine. No thread or socket is touched yet. Returns 0,
 * -EINVAL (neither https_fd nor http_fd; absurd bounds: relay_buf_size
 * outside 1 KiB..1 MiB, max_head outside 1 KiB..1 MiB, max_headers > 4096,
 * hello_max or workers too large), -EMFILE (max_fds, or the open-file limit
 * when it is 0, leaves a worker less than PROXY_ENGINE_MIN_WORKER_FDS) or
 * -ENOMEM. */
int proxy_engine_new(const struct proxy_config *cfg, struct proxy_route_table *routes,
                     struct proxy_engine **ret);

/* Open the listeners on every worker and start the threads. Returns 0, or
 * the first -errno (dup, listen, epoll, thread creation); on failure
 * nothing keeps running and the engine may only be freed. */
int proxy_engine_start(struct proxy_engine *e);

/* Swap the listening sockets of a started engine (the gateway namespace
 * was recreated): every worker closes its copy of the old listeners and
 * polls dups of the new ones (-1: that port is not served). Connections
 * already accepted are untouched. Asynchronous: returns 0 once the workers
 * were told (the caller may close its fds then), or -EBADF/-ENOMEM. */
int proxy_engine_replace_listeners(struct proxy_engine *e, int https_fd, int http_fd);

/* Tell every worker that the route table published a new snapshot: each
 * refreshes its cached snapshot and closes the connections whose route
 * (looked up by workload ID) is gone, changed host or changed mode. Other
 * connections are untouched. New connections see new snapshots without
 * this call; it is about existing ones. Never blocks. */
void proxy_engine_routes_changed(struct proxy_engine *e);

/* Graceful stop: stop accepting, close connections still handshaking or
 * connecting, let relayed connections finish for up to stop_timeout_ms and
 * then close them, and join the workers. Returns 0, or -EBUSY if a worker's
 * loop still had handles (a bug; it is reported, not hidden). Idempotent. */
int proxy_engine_stop(struct proxy_engine *e);

/* Stop if needed, then free. Accepts NULL; returns NULL. */
struct proxy_engine *proxy_engine_free(struct proxy_engine *e);
static inline void proxy_engine_freep(struct proxy_engine **e)
{
        proxy_engine_free(*e);
}

/* Sum of all workers' counters (relaxed reads: each field is exact, the set
 * is not a snapshot). */
void proxy_engine_stats(const struct proxy_engine *e, struct proxy_engine_stats *ret);

/* The number of workers (after resolving workers = 0). */
unsigned proxy_engine_workers(const struct proxy_engine *e);

/* Connections a worker takes at most (max_conns_per_worker resolved) and
 * the descriptors the engine may hold in total (max_fds resolved). */
unsigned proxy_engine_max_conns(const struct proxy_engine *e);
unsigned proxy_engine_max_fds(const struct proxy_engine *e);
