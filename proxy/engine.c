/* SPDX-License-Identifier: Apache-2.0 */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <uv.h>

#include "common/list.h"
#include "common/log.h"
#include "common/macros.h"
#include "proxy/http-conn.h"
#include "proxy/proxy.h"
#include "proxy/routes.h"
#include "proxy/tls-hello.h"

#define DEFAULT_HANDSHAKE_MS 10000u
#define DEFAULT_CONNECT_MS   5000u
#define DEFAULT_IDLE_MS      300000u
#define DEFAULT_STOP_MS      5000u
#define DEFAULT_RELAY_BUF    16384u
#define MIN_RELAY_BUF        1024u
#define MAX_RELAY_BUF        (1u << 20)
#define MAX_WORKERS          1024u
#define LISTEN_BACKLOG       511
#define ACCEPT_BATCH         32u  /* accepts per listener wakeup, for fairness */
#define ACCEPT_BACKOFF_MS    100u /* a listener paused by EMFILE & co. polls again after this */
#define DEFAULT_MAX_HEAD     16384u
#define MIN_MAX_HEAD         1024u
#define MAX_MAX_HEAD         (1u << 20)
#define DEFAULT_MAX_HEADERS  100u
#define MAX_MAX_HEADERS      4096u
#define DEFAULT_REQUEST_MS   30000u
#define DEFAULT_KEEPALIVE_MS 60000u
#define DEFAULT_UPSTREAM_MS  60000u
#define DEFAULT_POOL_MAX     64u
#define DEFAULT_POOL_IDLE_MS 30000u
/* Raw bytes buffered while peeking, beyond the message bound: record
 * headers (5 bytes per record) and early data after the hello. A hello cut
 * into hundreds of tiny records is refused rather than buffered. */
#define HELLO_RAW_SLACK 2048u

/* An int event field that holds no result yet. */
#define EV_NONE 1

enum {
        DIR_REQ,  /* client -> backend, request_bytes */
        DIR_RESP, /* backend -> client, response_bytes */
        _DIR_MAX,
};

enum buf_kind {
        BUF_NONE,   /* @buf is NULL */
        BUF_SHARED, /* the worker's read buffer: written on or copied out before the next read */
        BUF_OWNED,  /* malloc()ed remainder of a partial write */
        BUF_HELLO,  /* conn->hello_mem: the raw bytes read while peeking */
};

/* One relay direction: bytes read from one socket waiting to be written to
 * the other. Reads land in the worker's shared buffer and are written on at
 * once with uv_try_write(); only what the destination did not take is
 * copied into a buffer of this connection, and reading that side stops
 * until it has been written (the backpressure). So an idle or flowing
 * connection holds no buffer, a blocked one at most relay_buf_size per
 * direction. */
struct half {
        uint8_t *buf;       /* pending bytes, see @kind */
        size_t off;         /* pending bytes are buf[off, len) */
        size_t len;         /* */
        uv_write_t wreq;    /* the write in flight, if @writing */
        uv_shutdown_t sreq; /* shutdown of the other side's write end, if @shut */
        enum buf_kind kind; /* who owns @buf */
        bool reading;       /* uv_read_start() active on the source */
        bool writing;       /* uv_write() in flight */
        bool eof;           /* the source sent EOF */
        bool shut;          /* uv_shutdown() issued on the destination */
        bool shut_done;     /* ... and completed */
};

struct worker;

struct conn {
        struct conn *prev, *next; /* in worker->conns */
        struct worker *w;         /* owner */
        enum proxy_conn_state state;
        enum proxy_close_reason reason; /* set when entering CLOSING */
        unsigned n_handles;             /* initialised handles not yet through close_cb */
        bool upstream_init;             /* @upstream initialised and not yet closed */
        bool connecting;                /* uv_tcp_connect() issued, result pending */
        bool handed_over;               /* the socket went to the HTTP side (terminated TLS) */
        uv_tcp_t client;                /* */
        uv_tcp_t upstream;              /* */
        uv_timer_t timer;               /* handshake, connect or idle deadline */
        uv_connect_t creq;              /* */

        /* Events recorded by the callbacks, consumed by conn_step(). */
        ssize_t ev_read;   /* READ_HELLO: new bytes at hello_mem + raw_len, or UV_E* */
        int ev_connect;    /* connect result, EV_NONE while pending */
        int ev_error;      /* relay: first socket error, 0 if none */
        int ev_error_side; /* DIR_REQ: client side failed, DIR_RESP: backend side */
        bool ev_timeout;   /* the timer fired */

        /* READ_HELLO */
        uint8_t *hello_mem; /* raw bytes [0, raw_cap), then the message buffer */
        size_t raw_len;     /* raw bytes received so far */
        size_t raw_cap;     /* */
        struct proxy_tls_hello hello;

        /* CONNECT_UPSTREAM */
        struct proxy_route *route; /* pinned for the connection's life, NULL before lookup */
        unsigned first_backend;    /* the route's round-robin cursor value */
        unsigned attempt;          /* backends tried */

        /* RELAY */
        uint64_t last_active; /* uv_now() of the last read or write */
        struct half dir[_DIR_MAX];
        struct proxy_counters_batch bytes; /* written but not yet on the route's counters */
};

struct worker;

/* A worker's copy of one listening socket. Both ports are polled with a
 * uv_poll_t and accepted with accept4() here, not with uv_listen(): libuv's
 * accept loop answers EMFILE by calling accept() again at once, forever
 * when its one spare descriptor was taken by another thread, and a loop
 * stuck there never closes the connections that would free descriptors
 * (issue 10). Allocated, because replacing a listener needs the new handles
 * before the old ones' close callbacks ran. */
struct listener {
        uv_poll_t poll;     /* readable: connections wait */
        uv_timer_t backoff; /* polling again after an accept4() error */
        struct worker *w;
        int fd;             /* our copy of the socket (closed after the handles) */
        unsigned n_handles; /* initialised handles not yet through close_cb */
        bool https;         /* :443 (peek the ClientHello) or :80 (straight to the hw) */
        bool polling;       /* uv_poll_start() active */
        bool full;          /* paused: the worker is at its limit (a free resumes it) */
        bool backing_off;   /* paused: @backoff runs */
};

struct worker {
        struct proxy_engine *e;
        unsigned idx;
        uv_thread_t thread;
        uv_loop_t loop;
        uv_async_t async;      /* routes changed / stop requested / listeners replaced */
        struct listener *l443; /* our dup of https_fd, or NULL */
        struct listener *l80;  /* our dup of http_fd, or NULL */
        uv_timer_t stop_timer; /* graceful stop deadline */
        uint8_t *rbuf;         /* shared relay read buffer, relay_buf_size bytes */
        struct proxy_hw *hw;   /* the HTTP side (http-conn.c) */
        bool loop_init, async_init, stop_timer_init;
        bool thread_started;
        bool stopping;             /* stop began: listeners closed */
        bool finished;             /* worker handles closed: the loop will end */
        int loop_close_r;          /* uv_loop_close() result, read after join */
        struct conn *conns;        /* all live :443 connections, CLOSING included */
        unsigned n_conns;          /* */
        struct proxy_routes *snap; /* cached snapshot (proxy_routes_refresh) */
        atomic_bool stop_requested;

        /* proxy_engine_replace_listeners(): dups waiting for the worker. */
        uv_mutex_t lmutex;
        bool lmutex_init;
        bool new_listeners;
        int new_https_fd, new_http_fd;

        /* Statistics, written by this worker only, read by any thread. */
        atomic_uint_least64_t st_accepted;
        atomic_uint_least64_t st_accept_backoffs;
        atomic_uint_least64_t st_active;
        atomic_uint_least64_t st_closed[_PROXY_CLOSE_MAX];
        struct proxy_hw_stats hw_stats; /* also holds the :443 connect_errors */
};

struct proxy_engine {
        struct proxy_config cfg; /* defaults resolved */
        unsigned worker_fds;     /* each worker's share of max_fds for its connections */
        struct proxy_route_table *routes;
        bool started;
        bool stopped;
        unsigned n_workers;
        struct worker workers[];
};

static const char *const close_reason_names[_PROXY_CLOSE_MAX] = {
        [PROXY_CLOSE_DONE] = "done",
        [PROXY_CLOSE_CLIENT_EOF] = "client-eof",
        [PROXY_CLOSE_CLIENT_ERROR] = "client-error",
        [PROXY_CLOSE_UPSTREAM_ERROR] = "upstream-error",
        [PROXY_CLOSE_BAD_HELLO] = "bad-hello",
        [PROXY_CLOSE_HELLO_TIMEOUT] = "hello-timeout",
        [PROXY_CLOSE_NO_SNI] = "no-sni",
        [PROXY_CLOSE_UNKNOWN_SNI] = "unknown-sni",
        [PROXY_CLOSE_NO_TLS] = "no-tls",
        [PROXY_CLOSE_CONNECT_FAILED] = "connect-failed",
        [PROXY_CLOSE_IDLE_TIMEOUT] = "idle-timeout",
        [PROXY_CLOSE_ROUTE_REMOVED] = "route-removed",
        [PROXY_CLOSE_STOP] = "stop",
        [PROXY_CLOSE_NOMEM] = "nomem",
        [PROXY_CLOSE_TLS_HANDSHAKE] = "tls-handshake",
        [PROXY_CLOSE_BAD_REQUEST] = "bad-request",
        [PROXY_CLOSE_KEEPALIVE_DONE] = "keepalive-done",
        [PROXY_CLOSE_REQUEST_TIMEOUT] = "request-timeout",
        [PROXY_CLOSE_BAD_RESPONSE] = "bad-response",
};

const char *proxy_close_reason_str(enum proxy_close_reason r)
{
        if ((unsigned)r >= _PROXY_CLOSE_MAX)
                return NULL;
        return close_reason_names[r];
}

static const char *const conn_state_names[_PROXY_CONN_ST_MAX] = {
        [PROXY_CONN_ST_ACCEPTED] = "accepted",
        [PROXY_CONN_ST_READ_HELLO] = "read-hello",
        [PROXY_CONN_ST_CONNECT_UPSTREAM] = "connect-upstream",
        [PROXY_CONN_ST_UPSTREAM_RESET] = "upstream-reset",
        [PROXY_CONN_ST_RELAY] = "relay",
        [PROXY_CONN_ST_CLOSING] = "closing",
};

const char *proxy_conn_state_str(enum proxy_conn_state s)
{
        if ((unsigned)s >= _PROXY_CONN_ST_MAX)
                return NULL;
        return conn_state_names[s];
}

/* Legal transitions: allowed[from] has bit (1u << to). Every state may go
 * to CLOSING. A terminated route leaves READ_HELLO by handing its socket to
 * the HTTP side (http-conn.c) and closing this conn's handles (CLOSING,
 * not counted as a close). */
static const unsigned allowed[_PROXY_CONN_ST_MAX] = {
        [PROXY_CONN_ST_ACCEPTED] = 1u << PROXY_CONN_ST_READ_HELLO,
        [PROXY_CONN_ST_READ_HELLO] = 1u << PROXY_CONN_ST_CONNECT_UPSTREAM,
        [PROXY_CONN_ST_CONNECT_UPSTREAM] =
                1u << PROXY_CONN_ST_UPSTREAM_RESET | 1u << PROXY_CONN_ST_RELAY,
        [PROXY_CONN_ST_UPSTREAM_RESET] = 1u << PROXY_CONN_ST_CONNECT_UPSTREAM,
        [PROXY_CONN_ST_RELAY] = 0,
        [PROXY_CONN_ST_CLOSING] = 0,
};

static void conn_set_state(struct conn *c, enum proxy_conn_state next)
{
        assert(next == PROXY_CONN_ST_CLOSING ? c->state != PROXY_CONN_ST_CLOSING
                                             : (allowed[c->state] & (1u << next)) != 0);
        log_debug("proxy: conn %p: %s -> %s", (void *)c, proxy_conn_state_str(c->state),
                  proxy_conn_state_str(next));
        c->state = next;
}

/* ---- default socket factory ---- */

int proxy_socket_factory_default(void *ud, const struct proxy_route *r, const struct sockaddr *addr,
                                 socklen_t len, int *ret_fd)
{
        int fd;

        assert(addr && ret_fd);
        fd = socket(addr->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        *ret_fd = fd;
        return 0;
}

/* ---- connection lifetime ---- */

static void conn_step(struct conn *c);
static void worker_maybe_finish(struct worker *w);
static void worker_resume_accept(struct worker *w);

/* Connections of both kinds, for max_conns_per_worker. */
static unsigned worker_n_conns(const struct worker *w)
{
        return w->n_conns + proxy_hw_n_conns(w->hw);
}

/* Descriptors: a client connection claims two of the worker's share (its
 * socket and a backend's, which it may open at any time), an idle pooled
 * backend connection one. max_conns_per_worker <= worker_fds / 2, so client
 * connections below the limit always fit; the pool gets what they leave.
 * A terminated :443 connection counts twice for a moment (the engine's conn
 * is freed from its close callback after the hw took the socket), which
 * only errs on the safe side. */
static unsigned on_hw_pool_room(void *ud)
{
        const struct worker *w = ud;
        unsigned claimed = 2 * worker_n_conns(w);

        return claimed < w->e->worker_fds ? w->e->worker_fds - claimed : 0;
}

static bool worker_full(const struct worker *w)
{
        return worker_n_conns(w) >= w->e->cfg.max_conns_per_worker;
}

/* A client connection was just accepted (not yet counted): close idle
 * pooled backend connections whose descriptors it may need. Done after
 * accept4(), not before, so a wakeup that finds no connection closes
 * nothing; the one descriptor this runs ahead is part of
 * PROXY_ENGINE_WORKER_FDS. */
static void worker_make_room(struct worker *w)
{
        unsigned n = worker_n_conns(w) + 1;

        proxy_hw_pool_trim(w->hw, 2 * n < w->e->worker_fds ? w->e->worker_fds - 2 * n : 0);
}

static const struct proxy_config *conn_cfg(const struct conn *c)
{
        return &c->w->e->cfg;
}

static void conn_account(struct conn *c, unsigned d, size_t n)
{
        proxy_counters_batch_add(&c->bytes, d == DIR_RESP, n);
}

/* Runs from the last close_cb only: every handle is closed and no request
 * is pending, so nothing can reference @c any more. */
static void conn_free(struct conn *c)
{
        struct worker *w = c->w;

        assert(c->n_handles == 0);
        proxy_counters_batch_flush(&c->bytes);
        proxy_route_unref(c->route);
        for (unsigned d = 0; d < _DIR_MAX; d++)
                if (c->dir[d].kind == BUF_OWNED)
                        free(c->dir[d].buf);
        free(c->hello_mem);

        LIST_REMOVE(w->conns, c);
        w->n_conns--;
        atomic_fetch_sub_explicit(&w->st_active, 1, memory_order_relaxed);
        /* A handed-over socket lives on in the hw, which counts its end. */
        if (!c->handed_over)
                atomic_fetch_add_explicit(&w->st_closed[c->reason], 1, memory_order_relaxed);
        free(c);

        worker_resume_accept(w);
        worker_maybe_finish(w);
}

static void on_handle_close(uv_handle_t *h)
{
        struct conn *c = h->data;

        assert(c->n_handles > 0);
        c->n_handles--;
        if (h == (uv_handle_t *)&c->upstream)
                c->upstream_init = false;
        if (c->state == PROXY_CONN_ST_CLOSING) {
                if (c->n_handles == 0)
                        conn_free(c);
                return;
        }
        if (c->state == PROXY_CONN_ST_UPSTREAM_RESET)
                conn_step(c);
}

static void conn_close(struct conn *c, enum proxy_close_reason reason)
{
        if (c->state == PROXY_CONN_ST_CLOSING)
                return;
        log_debug("proxy: conn %p: closing: %s", (void *)c, proxy_close_reason_str(reason));
        c->reason = reason;
        conn_set_state(c, PROXY_CONN_ST_CLOSING);
        /* Pending writes, shutdowns and connects complete with UV_ECANCELED
         * before the close callbacks run; their callbacks ignore CLOSING. */
        if (!uv_is_closing((uv_handle_t *)&c->client))
                uv_close((uv_handle_t *)&c->client, on_handle_close);
        if (c->upstream_init && !uv_is_closing((uv_handle_t *)&c->upstream))
                uv_close((uv_handle_t *)&c->upstream, on_handle_close);
        if (!uv_is_closing((uv_handle_t *)&c->timer))
                uv_close((uv_handle_t *)&c->timer, on_handle_close);
}

/* ---- callbacks: record the event, then step ---- */

static struct half *conn_half_of(struct conn *c, uv_handle_t *h, unsigned *ret_d)
{
        unsigned d = h == (uv_handle_t *)&c->client ? DIR_REQ : DIR_RESP;

        if (ret_d)
                *ret_d = d;
        return &c->dir[d];
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
        struct conn *c = h->data;

        *buf = uv_buf_init(NULL, 0); /* libuv reports UV_ENOBUFS to on_read */
        if (c->state == PROXY_CONN_ST_READ_HELLO) {
                if (!c->hello_mem) {
                        size_t hello_max = conn_cfg(c)->hello_max;

                        c->raw_cap = hello_max + HELLO_RAW_SLACK;
                        c->hello_mem = malloc(c->raw_cap + hello_max);
                        if (!c->hello_mem)
                                return;
                        proxy_tls_hello_init(&c->hello, c->hello_mem + c->raw_cap, hello_max);
                }
                if (c->raw_len < c->raw_cap)
                        *buf = uv_buf_init((char *)c->hello_mem + c->raw_len,
                                           c->raw_cap - c->raw_len);
        } else if (c->state == PROXY_CONN_ST_RELAY) {
                struct half *d = conn_half_of(c, h, NULL);
                assert(!d->writing && d->len == 0 && d->kind == BUF_NONE);
                *buf = uv_buf_init((char *)c->w->rbuf, conn_cfg(c)->relay_buf_size);
        }
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
        struct conn *c = s->data;
        unsigned di;
        struct half *d;

        if (nread == 0)
                return; /* EAGAIN */
        switch (c->state) {
        case PROXY_CONN_ST_READ_HELLO:
                c->ev_read = nread;
                break;
        case PROXY_CONN_ST_RELAY:
                d = conn_half_of(c, (uv_handle_t *)s, &di);
                c->last_active = uv_now(s->loop);
                if (nread > 0) {
                        d->buf = c->w->rbuf;
                        d->kind = BUF_SHARED;
                        d->off = 0;
                        d->len = (size_t)nread;
                } else if (nread == UV_EOF) {
                        d->eof = true;
                        d->reading = false; /* libuv stopped reading at EOF */
                } else if (!c->ev_error) {
                        c->ev_error = (int)nread;
                        c->ev_error_side = di;
                }
                break;
        default:
                return;
        }
        conn_step(c);
}

static void on_write(uv_write_t *req, int status)
{
        struct conn *c = req->handle->data;
        unsigned di = req == &c->dir[DIR_REQ].wreq ? DIR_REQ : DIR_RESP;
        struct half *d = &c->dir[di];

        d->writing = false;
        if (c->state == PROXY_CONN_ST_CLOSING)
                return;
        if (status < 0) {
                if (!c->ev_error) {
                        c->ev_error = status;
                        c->ev_error_side = di == DIR_REQ ? DIR_RESP : DIR_REQ;
                }
        } else {
                conn_account(c, di, d->len - d->off);
                d->off = d->len = 0;
                c->last_active = uv_now(req->handle->loop);
        }
        conn_step(c);
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
        struct conn *c = req->handle->data;
        unsigned di = req == &c->dir[DIR_REQ].sreq ? DIR_REQ : DIR_RESP;

        if (c->state == PROXY_CONN_ST_CLOSING)
                return;
        if (status < 0 && !c->ev_error) {
                c->ev_error = status;
                c->ev_error_side = di == DIR_REQ ? DIR_RESP : DIR_REQ;
        }
        c->dir[di].shut_done = true;
        conn_step(c);
}

static void on_connect(uv_connect_t *req, int status)
{
        struct conn *c = req->handle->data;

        if (status == UV_ECANCELED || c->state != PROXY_CONN_ST_CONNECT_UPSTREAM)
                return; /* the handle is being closed */
        c->ev_connect = status;
        conn_step(c);
}

static void on_timer(uv_timer_t *t)
{
        struct conn *c = t->data;

        c->ev_timeout = true;
        conn_step(c);
}

/* ---- the state machine ---- */

static void step_accepted(struct conn *c)
{
        int r;

        (void)uv_tcp_nodelay(&c->client, 1);
        r = uv_read_start((uv_stream_t *)&c->client, on_alloc, on_read);
        if (r < 0)
                return conn_close(c, PROXY_CLOSE_CLIENT_ERROR);
        r = uv_timer_start(&c->timer, on_timer, conn_cfg(c)->handshake_timeout_ms, 0);
        if (r < 0)
                return conn_close(c, PROXY_CLOSE_CLIENT_ERROR);
        conn_set_state(c, PROXY_CONN_ST_READ_HELLO);
}

/* A terminated route: give the socket (a dup; libuv closes ours) and the
 * bytes read so far to the HTTP side, which does the TLS handshake. */
static void conn_hand_over(struct conn *c, struct proxy_route *route)
{
        struct sockaddr_storage peer;
        int len = sizeof(peer), fd, r;
        uv_os_fd_t ofd;

        if (!conn_cfg(c)->tls || !route->cert)
                return conn_close(c, PROXY_CLOSE_NO_TLS);
        if (uv_tcp_getpeername(&c->client, (struct sockaddr *)&peer, &len) < 0 ||
            uv_fileno((uv_handle_t *)&c->client, &ofd) < 0)
                return conn_close(c, PROXY_CLOSE_CLIENT_ERROR);
        fd = fcntl(ofd, F_DUPFD_CLOEXEC, 3);
        if (fd < 0)
                return conn_close(c, errno == EMFILE || errno == ENFILE ? PROXY_CLOSE_NOMEM
                                                                        : PROXY_CLOSE_CLIENT_ERROR);
        r = proxy_hw_accept(c->w->hw, fd, PROXY_HCONN_TLS, &peer, route, c->hello_mem, c->raw_len);
        if (r < 0)
                return conn_close(c, r == -ENOMEM ? PROXY_CLOSE_NOMEM : PROXY_CLOSE_CLIENT_ERROR);
        c->handed_over = true;
        conn_close(c, PROXY_CLOSE_DONE);
}

static void step_read_hello(struct conn *c)
{
        struct worker *w = c->w;
        struct proxy_routes *snap;
        struct proxy_route *route;
        const char *sni;
        int r;

        if (c->ev_read != 0) {
                ssize_t n = c->ev_read;

                c->ev_read = 0;
                if (n == UV_ENOBUFS)
                        /* Either malloc failed or the raw bound is full. */
                        return conn_close(c,
                                          c->hello_mem ? PROXY_CLOSE_BAD_HELLO : PROXY_CLOSE_NOMEM);
                if (n == UV_EOF)
                        return conn_close(c, PROXY_CLOSE_CLIENT_EOF);
                if (n < 0)
                        return conn_close(c, PROXY_CLOSE_CLIENT_ERROR);
                r = proxy_tls_hello_feed(&c->hello, c->hello_mem + c->raw_len, (size_t)n);
                c->raw_len += (size_t)n;
                if (r == -EAGAIN && c->raw_len == c->raw_cap)
                        r = -E2BIG;
                if (r < 0 && r != -EAGAIN) {
                        log_debug("proxy: conn %p: ClientHello refused: %s", (void *)c,
                                  strerror(-r));
                        return conn_close(c, PROXY_CLOSE_BAD_HELLO);
                }
        }
        if (!c->hello_mem || !proxy_tls_hello_done(&c->hello)) {
                /* A timeout that raced with the completing read loses. */
                if (c->ev_timeout)
                        conn_close(c, PROXY_CLOSE_HELLO_TIMEOUT);
                return;
        }

        /* The hello is complete. Stop reading until a backend is there:
         * whatever else arrived with it is already in the raw buffer and
         * is forwarded first. */
        c->ev_timeout = false;
        (void)uv_timer_stop(&c->timer);
        (void)uv_read_stop((uv_stream_t *)&c->client);

        sni = proxy_tls_hello_sni(&c->hello);
        if (!sni)
                return conn_close(c, PROXY_CLOSE_NO_SNI);
        /* No atomic RMW unless the table published since the last call. */
        snap = proxy_routes_refresh(w->e->routes, &w->snap);
        /* Exact name, else the wildcard of its parent: no other fallback. */
        route = proxy_routes_lookup_wildcard(snap, sni, strlen(sni));
        if (!route)
                return conn_close(c, PROXY_CLOSE_UNKNOWN_SNI);
        if (route->mode != PROXY_ROUTE_PASSTHROUGH)
                return conn_hand_over(c, route);

        c->route = proxy_route_ref(route);
        c->bytes.c = route->counters;
        /* A passthrough connection is one request (proxy/routes.h). */
        proxy_counters_add(route->counters, /* status= */ 0, 0, 0);
        c->first_backend = atomic_fetch_add_explicit(&route->rr_next, 1, memory_order_relaxed);
        c->attempt = 0;
        c->ev_connect = EV_NONE;
        conn_set_state(c, PROXY_CONN_ST_CONNECT_UPSTREAM);
}

/* Issue the connect to @be. On failure the caller resets @c->upstream if
 * it was initialised. */
static int conn_start_connect(struct conn *c, const struct proxy_backend *be)
{
        const struct proxy_config *cfg = conn_cfg(c);
        uv_loop_t *loop = &c->w->loop;
        int fd = -1, r;

        r = cfg->socket_factory(cfg->socket_factory_ud, c->route,
                                (const struct sockaddr *)&be->addr, be->addr_len, &fd);
        if (r < 0)
                return r;
        r = uv_tcp_init(loop, &c->upstream);
        if (r < 0) {
                safe_close(fd);
                return r;
        }
        c->upstream.data = c;
        c->upstream_init = true;
        c->n_handles++;
        r = uv_tcp_open(&c->upstream, fd);
        if (r < 0) {
                safe_close(fd);
                return r;
        }
        (void)uv_tcp_nodelay(&c->upstream, 1);
        r = uv_tcp_connect(&c->creq, &c->upstream, (const struct sockaddr *)&be->addr, on_connect);
        if (r < 0)
                return r;
        return uv_timer_start(&c->timer, on_timer, cfg->connect_timeout_ms, 0);
}

static void step_connect(struct conn *c)
{
        struct proxy_route *route = c->route;
        int r;

        if (!c->connecting) {
                if (c->attempt >= route->n_backends)
                        return conn_close(c, PROXY_CLOSE_CONNECT_FAILED);
                const struct proxy_backend *be =
                        &route->backends[(c->first_backend + c->attempt) % route->n_backends];
                c->attempt++;
                c->ev_connect = EV_NONE;
                c->ev_timeout = false;
                r = conn_start_connect(c, be);
                if (r >= 0) {
                        c->connecting = true;
                        return;
                }
                log_debug("proxy: conn %p: backend %s: %s", (void *)c, be->text, strerror(-r));
                atomic_fetch_add_explicit(&c->w->hw_stats.connect_errors, 1, memory_order_relaxed);
                if (c->upstream_init) {
                        uv_close((uv_handle_t *)&c->upstream, on_handle_close);
                        return conn_set_state(c, PROXY_CONN_ST_UPSTREAM_RESET);
                }
                return step_connect(c); /* bounded by n_backends */
        }

        if (c->ev_connect == EV_NONE && !c->ev_timeout)
                return;
        c->connecting = false;
        (void)uv_timer_stop(&c->timer);
        if (c->ev_connect == 0) {
                c->ev_timeout = false;
                c->last_active = uv_now(&c->w->loop);
                /* Everything the client sent so far (the hello, maybe early
                 * data) is the first thing the backend gets. */
                c->dir[DIR_REQ].buf = c->hello_mem;
                c->dir[DIR_REQ].kind = BUF_HELLO;
                c->dir[DIR_REQ].off = 0;
                c->dir[DIR_REQ].len = c->raw_len;
                r = uv_timer_start(&c->timer, on_timer, conn_cfg(c)->idle_timeout_ms, 0);
                if (r < 0)
                        return conn_close(c, PROXY_CLOSE_CLIENT_ERROR);
                return conn_set_state(c, PROXY_CONN_ST_RELAY);
        }
        log_debug("proxy: conn %p: backend connect: %s", (void *)c,
                  c->ev_timeout ? "timeout" : uv_strerror(c->ev_connect));
        atomic_fetch_add_explicit(&c->w->hw_stats.connect_errors, 1, memory_order_relaxed);
        /* Closing cancels a connect still in flight (timeout). */
        uv_close((uv_handle_t *)&c->upstream, on_handle_close);
        conn_set_state(c, PROXY_CONN_ST_UPSTREAM_RESET);
}

static void step_upstream_reset(struct conn *c)
{
        if (c->upstream_init)
                return; /* wait for on_handle_close */
        conn_set_state(c, PROXY_CONN_ST_CONNECT_UPSTREAM);
}

static uv_stream_t *conn_src(struct conn *c, unsigned d)
{
        return (uv_stream_t *)(d == DIR_REQ ? &c->client : &c->upstream);
}

static uv_stream_t *conn_dst(struct conn *c, unsigned d)
{
        return (uv_stream_t *)(d == DIR_REQ ? &c->upstream : &c->client);
}

/* Move direction @di forward as far as it goes without blocking. Returns
 * 0, or a -errno with *ret_side set to the failed side's direction. */
static int relay_half(struct conn *c, unsigned di, unsigned *ret_side)
{
        struct half *d = &c->dir[di];
        int r;

        if (d->len > d->off && !d->writing) {
                uv_buf_t b = uv_buf_init((char *)d->buf + d->off, d->len - d->off);

                r = uv_try_write(conn_dst(c, di), &b, 1);
                if (r >= 0) {
                        d->off += (size_t)r;
                        conn_account(c, di, (size_t)r);
                } else if (r != UV_EAGAIN) {
                        *ret_side = di == DIR_REQ ? DIR_RESP : DIR_REQ;
                        return r;
                }
                if (d->off < d->len && d->kind == BUF_SHARED) {
                        /* The shared buffer is needed by the next read. */
                        uint8_t *rest = malloc(d->len - d->off);

                        if (!rest)
                                return -ENOMEM;
                        memcpy(rest, d->buf + d->off, d->len - d->off);
                        d->buf = rest;
                        d->kind = BUF_OWNED;
                        d->len -= d->off;
                        d->off = 0;
                }
                if (d->off < d->len) {
                        b = uv_buf_init((char *)d->buf + d->off, d->len - d->off);
                        r = uv_write(&d->wreq, conn_dst(c, di), &b, 1, on_write);
                        if (r < 0) {
                                *ret_side = di == DIR_REQ ? DIR_RESP : DIR_REQ;
                                return r;
                        }
                        d->writing = true;
                } else {
                        d->off = d->len = 0;
                }
        }

        if (d->len == 0 && d->kind != BUF_NONE) {
                if (d->kind == BUF_OWNED)
                        free(d->buf);
                else if (d->kind == BUF_HELLO)
                        c->hello_mem = mfree(c->hello_mem);
                d->buf = NULL;
                d->kind = BUF_NONE;
        }

        bool drained = d->len == 0 && !d->writing;

        if (drained && !d->eof && !d->reading) {
                r = uv_read_start(conn_src(c, di), on_alloc, on_read);
                if (r < 0) {
                        *ret_side = di;
                        return r;
                }
                d->reading = true;
        } else if (!drained && d->reading) {
                (void)uv_read_stop(conn_src(c, di));
                d->reading = false;
        }
        if (drained && d->eof && !d->shut) {
                /* Half-close: pass the EOF on, keep the other way open. */
                r = uv_shutdown(&d->sreq, conn_dst(c, di), on_shutdown);
                if (r < 0) {
                        *ret_side = di == DIR_REQ ? DIR_RESP : DIR_REQ;
                        return r;
                }
                d->shut = true;
        }
        return 0;
}

static void step_relay(struct conn *c)
{
        unsigned side = DIR_REQ;
        int r;

        if (c->ev_error)
                return conn_close(c, c->ev_error_side == DIR_REQ ? PROXY_CLOSE_CLIENT_ERROR
                                                                 : PROXY_CLOSE_UPSTREAM_ERROR);
        if (c->ev_timeout) {
                uint64_t now = uv_now(&c->w->loop), idle = conn_cfg(c)->idle_timeout_ms;

                c->ev_timeout = false;
                if (now - c->last_active >= idle)
                        return conn_close(c, PROXY_CLOSE_IDLE_TIMEOUT);
                /* Re-armed lazily instead of on every read. */
                (void)uv_timer_start(&c->timer, on_timer, c->last_active + idle - now, 0);
        }
        for (unsigned d = 0; d < _DIR_MAX; d++) {
                r = relay_half(c, d, &side);
                if (r == -ENOMEM)
                        return conn_close(c, PROXY_CLOSE_NOMEM);
                if (r < 0)
                        return conn_close(c, side == DIR_REQ ? PROXY_CLOSE_CLIENT_ERROR
                                                             : PROXY_CLOSE_UPSTREAM_ERROR);
        }
        if (c->dir[DIR_REQ].shut_done && c->dir[DIR_RESP].shut_done)
                conn_close(c, PROXY_CLOSE_DONE);
}

/* Run the state machine until it has to wait for an event. @c is never
 * freed synchronously (only from a close_cb), so it stays valid here. */
static void conn_step(struct conn *c)
{
        for (;;) {
                enum proxy_conn_state before = c->state;

                switch (c->state) {
                case PROXY_CONN_ST_ACCEPTED:
                        step_accepted(c);
                        break;
                case PROXY_CONN_ST_READ_HELLO:
                        step_read_hello(c);
                        break;
                case PROXY_CONN_ST_CONNECT_UPSTREAM:
                        step_connect(c);
                        break;
                case PROXY_CONN_ST_UPSTREAM_RESET:
                        step_upstream_reset(c);
                        break;
                case PROXY_CONN_ST_RELAY:
                        step_relay(c);
                        break;
                case PROXY_CONN_ST_CLOSING:
                case _PROXY_CONN_ST_MAX:
                        return;
                }
                if (c->state == before)
                        return;
        }
}

/* ---- workers ---- */

static void on_listener(uv_poll_t *p, int status, int events);

/* A :443 connection: peek its ClientHello on a uv_tcp_t. Takes @fd. Returns
 * 0 (also when the connection was closed at once) or -ENOMEM. */
static int worker_accept_https(struct worker *w, int fd)
{
        struct conn *c;
        int r;

        c = calloc(1, sizeof(*c));
        if (!c) {
                safe_close(fd);
                return -ENOMEM;
        }
        c->w = w;
        c->state = PROXY_CONN_ST_ACCEPTED;
        c->ev_connect = EV_NONE;
        (void)uv_tcp_init(&w->loop, &c->client);
        (void)uv_timer_init(&w->loop, &c->timer);
        c->client.data = c;
        c->timer.data = c;
        c->n_handles = 2;
        LIST_PREPEND(w->conns, c);
        w->n_conns++;
        atomic_fetch_add_explicit(&w->st_active, 1, memory_order_relaxed);

        r = uv_tcp_open(&c->client, fd);
        if (r < 0) {
                safe_close(fd); /* not adopted */
                conn_close(c, PROXY_CLOSE_CLIENT_ERROR);
                return 0;
        }
        conn_step(c);
        return 0;
}

static void listener_backoff(struct listener *l);

/* Poll @l unless it is paused (worker full, backing off, stopping). */
static void listener_update(struct listener *l)
{
        bool want = !l->full && !l->backing_off && !l->w->stopping;

        if (want == l->polling)
                return;
        if (!want) {
                (void)uv_poll_stop(&l->poll);
                l->polling = false;
                return;
        }
        if (uv_poll_start(&l->poll, UV_READABLE, on_listener) < 0)
                return listener_backoff(l); /* tried again from the timer */
        l->polling = true;
}

static void on_backoff(uv_timer_t *t)
{
        struct listener *l = t->data;

        l->backing_off = false;
        listener_update(l);
}

/* accept4() failed for want of descriptors or memory: the listening socket
 * stays readable, so polling it would call us right back. Stop for a while
 * instead; connections wait in the kernel's queue meanwhile. */
static void listener_backoff(struct listener *l)
{
        atomic_fetch_add_explicit(&l->w->st_accept_backoffs, 1, memory_order_relaxed);
        l->backing_off = true;
        listener_update(l);
        (void)uv_timer_start(&l->backoff, on_backoff, ACCEPT_BACKOFF_MS, 0);
}

/* A connection was freed: listeners paused at the limit poll again. */
static void worker_resume_accept(struct worker *w)
{
        struct listener *ls[] = {w->l443, w->l80};

        if (w->stopping || worker_full(w))
                return;
        for (unsigned i = 0; i < ELEMENTSOF(ls); i++)
                if (ls[i] && ls[i]->full) {
                        ls[i]->full = false;
                        listener_update(ls[i]);
                }
}

/* accept4() in a bounded batch: :443 sockets go to a conn that peeks the
 * ClientHello, :80 sockets straight to the hw. */
static void on_listener(uv_poll_t *p, int status, int events)
{
        struct listener *l = p->data;
        struct worker *w = l->w;

        if (w->stopping)
                return;
        if (status < 0)
                return listener_backoff(l);
        for (unsigned i = 0; i < ACCEPT_BATCH; i++) {
                struct sockaddr_storage peer;
                socklen_t len = sizeof(peer);
                int fd, r;

                if (worker_full(w)) {
                        l->full = true;
                        return listener_update(l);
                }
                fd = accept4(l->fd, (struct sockaddr *)&peer, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
                if (fd < 0) {
                        switch (errno) {
                        case EAGAIN:
                                return;
                        case EINTR:
                        case ECONNABORTED:
                        /* accept(2): errors of the pending connection, which
                         * is gone; the next one may be fine. */
                        case EPROTO:
                        case ENOPROTOOPT:
                        case EHOSTDOWN:
                        case ENONET:
                        case EHOSTUNREACH:
                        case EOPNOTSUPP:
                        case ENETUNREACH:
                        case ENETDOWN:
                                continue;
                        default:
                                /* EMFILE, ENFILE, ENOBUFS, ENOMEM, or an error
                                 * that would come back at once (EBADF,
                                 * EINVAL): never retry it in a loop. */
                                return listener_backoff(l);
                        }
                }
                atomic_fetch_add_explicit(&w->st_accepted, 1, memory_order_relaxed);
                worker_make_room(w);
                /* On failure the fd was closed: the client sees a reset. */
                if (l->https)
                        r = worker_accept_https(w, fd);
                else
                        r = proxy_hw_accept(w->hw, fd, PROXY_HCONN_PLAIN, &peer, NULL, NULL, 0);
                if (r == -ENOMEM)
                        return listener_backoff(l);
        }
}

static void on_worker_handle_close(uv_handle_t *h)
{
}

static void on_listener_closed(uv_handle_t *h)
{
        struct listener *l = h->data;

        assert(l->n_handles > 0);
        if (--l->n_handles > 0)
                return;
        safe_close(l->fd);
        free(l);
}

static void listener_close(struct listener *l)
{
        if (!l)
                return;
        uv_close((uv_handle_t *)&l->poll, on_listener_closed);
        uv_close((uv_handle_t *)&l->backoff, on_listener_closed);
}

/* Listen on @fd (ours: closed whatever happens) and poll it. */
static int listener_open(struct worker *w, int fd, bool https, struct listener **ret)
{
        struct listener *l;
        int r;

        l = calloc(1, sizeof(*l));
        if (!l) {
                safe_close(fd);
                return -ENOMEM;
        }
        l->w = w;
        l->https = https;
        l->fd = fd;
        if (listen(fd, LISTEN_BACKLOG) < 0) {
                r = -errno;
                safe_close(fd);
                free(l);
                return r;
        }
        r = uv_poll_init(&w->loop, &l->poll, fd);
        if (r < 0) {
                safe_close(fd);
                free(l);
                return r;
        }
        l->poll.data = l;
        (void)uv_timer_init(&w->loop, &l->backoff);
        l->backoff.data = l;
        l->n_handles = 2;
        r = uv_poll_start(&l->poll, UV_READABLE, on_listener);
        if (r < 0) {
                listener_close(l);
                return r;
        }
        l->polling = true;
        *ret = l;
        return 0;
}

static void worker_maybe_finish(struct worker *w)
{
        if (!w->stopping || w->finished || w->n_conns > 0 || !proxy_hw_finished(w->hw))
                return;
        w->finished = true;
        uv_close((uv_handle_t *)&w->async, on_worker_handle_close);
        uv_close((uv_handle_t *)&w->stop_timer, on_worker_handle_close);
}

static void on_hw_conn_freed(void *ud)
{
        struct worker *w = ud;

        worker_resume_accept(w);
        worker_maybe_finish(w);
}

static void on_stop_timer(uv_timer_t *t)
{
        struct worker *w = t->data;

        for (struct conn *c = w->conns; c; c = c->next)
                conn_close(c, PROXY_CLOSE_STOP);
        proxy_hw_close_all(w->hw);
}

static void worker_take_new_listeners(struct worker *w, int *https_fd, int *http_fd)
{
        *https_fd = *http_fd = -1;
        if (!w->lmutex_init)
                return;
        uv_mutex_lock(&w->lmutex);
        if (w->new_listeners) {
                *https_fd = w->new_https_fd;
                *http_fd = w->new_http_fd;
                w->new_https_fd = w->new_http_fd = -1;
                w->new_listeners = false;
        }
        uv_mutex_unlock(&w->lmutex);
}

static void worker_begin_stop(struct worker *w)
{
        int a, b;

        w->stopping = true;
        /* Connections still in the kernel's accept queue are reset. */
        listener_close(TAKE_PTR(w->l443));
        listener_close(TAKE_PTR(w->l80));
        worker_take_new_listeners(w, &a, &b);
        safe_close(a);
        safe_close(b);
        for (struct conn *c = w->conns; c; c = c->next)
                if (c->state != PROXY_CONN_ST_RELAY)
                        conn_close(c, PROXY_CLOSE_STOP);
        proxy_hw_begin_stop(w->hw);
        (void)uv_timer_start(&w->stop_timer, on_stop_timer, w->e->cfg.stop_timeout_ms, 0);
        worker_maybe_finish(w);
}

static void worker_replace_listeners(struct worker *w)
{
        int https_fd, http_fd;

        worker_take_new_listeners(w, &https_fd, &http_fd);
        if (https_fd < 0 && http_fd < 0 && !w->l443 && !w->l80)
                return;
        listener_close(TAKE_PTR(w->l443));
        listener_close(TAKE_PTR(w->l80));
        /* A failure leaves that port unserved on this worker; the others
         * (and the next replace) are unaffected. A worker at its limit
         * pauses the new listeners at their first wakeup. */
        if (https_fd >= 0 && listener_open(w, https_fd, true, &w->l443) < 0)
                log_debug("proxy: worker %u: cannot listen on the new :443 socket", w->idx);
        if (http_fd >= 0 && listener_open(w, http_fd, false, &w->l80) < 0)
                log_debug("proxy: worker %u: cannot listen on the new :80 socket", w->idx);
}

static void on_async(uv_async_t *a)
{
        struct worker *w = a->data;
        struct proxy_routes *snap;
        bool pending;

        if (w->stopping)
                return;
        if (atomic_load_explicit(&w->stop_requested, memory_order_acquire))
                return worker_begin_stop(w);

        uv_mutex_lock(&w->lmutex);
        pending = w->new_listeners;
        uv_mutex_unlock(&w->lmutex);
        if (pending)
                worker_replace_listeners(w);

        snap = proxy_routes_refresh(w->e->routes, &w->snap);
        /* O(connections) lookups per change; conn_close() never frees
         * synchronously, so walking on is safe. */
        for (struct conn *c = w->conns; c; c = c->next)
                if (c->route && c->state != PROXY_CONN_ST_CLOSING &&
                    !proxy_route_still_current(snap, c->route))
                        conn_close(c, PROXY_CLOSE_ROUTE_REMOVED);
        proxy_hw_routes_changed(w->hw);
}

static void worker_main(void *arg)
{
        struct worker *w = arg;

        (void)uv_run(&w->loop, UV_RUN_DEFAULT);
        w->loop_close_r = uv_loop_close(&w->loop);
}

/* For a worker whose thread never started: close what was opened and run
 * the loop here until the close callbacks are through. */
static void worker_teardown_unstarted(struct worker *w)
{
        if (!w->loop_init)
                return;
        if (w->async_init)
                uv_close((uv_handle_t *)&w->async, on_worker_handle_close);
        listener_close(TAKE_PTR(w->l443));
        listener_close(TAKE_PTR(w->l80));
        if (w->stop_timer_init)
                uv_close((uv_handle_t *)&w->stop_timer, on_worker_handle_close);
        if (w->hw)
                proxy_hw_begin_stop(w->hw);
        (void)uv_run(&w->loop, UV_RUN_DEFAULT);
        w->loop_close_r = uv_loop_close(&w->loop);
        w->loop_init = false;
}

static int dup_fd(int fd)
{
        int r;

        if (fd < 0)
                return -1;
        r = fcntl(fd, F_DUPFD_CLOEXEC, 3);
        return r < 0 ? -errno : r;
}

static int worker_init(struct worker *w)
{
        const struct proxy_config *cfg = &w->e->cfg;
        struct proxy_hw_env env = {
                .loop = &w->loop,
                .cfg = cfg,
                .routes = w->e->routes,
                .snap = &w->snap,
                .stats = &w->hw_stats,
                .conn_freed = on_hw_conn_freed,
                .pool_room = on_hw_pool_room,
                .ud = w,
        };
        int fd, r;

        w->new_https_fd = w->new_http_fd = -1;
        w->hw_stats.closed = w->st_closed;
        w->hw_stats.active = &w->st_active;
        r = uv_mutex_init(&w->lmutex);
        if (r < 0)
                return r;
        w->lmutex_init = true;
        w->rbuf = malloc(cfg->relay_buf_size);
        if (!w->rbuf)
                return -ENOMEM;
        r = uv_loop_init(&w->loop);
        if (r < 0)
                return r;
        w->loop_init = true;
        r = uv_async_init(&w->loop, &w->async, on_async);
        if (r < 0)
                return r;
        w->async.data = w;
        w->async_init = true;
        r = uv_timer_init(&w->loop, &w->stop_timer);
        if (r < 0)
                return r;
        w->stop_timer.data = w;
        w->stop_timer_init = true;
        r = proxy_hw_new(&env, &w->hw);
        if (r < 0)
                return r;

        if (cfg->https_fd >= 0) {
                fd = dup_fd(cfg->https_fd);
                if (fd < 0)
                        return fd;
                r = listener_open(w, fd, true, &w->l443);
                if (r < 0)
                        return r;
        }
        if (cfg->http_fd >= 0) {
                fd = dup_fd(cfg->http_fd);
                if (fd < 0)
                        return fd;
                r = listener_open(w, fd, false, &w->l80);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* ---- engine ---- */

/* Resolve @c->max_fds (0: from RLIMIT_NOFILE) and @c->max_conns_per_worker
 * for @c->workers workers; the descriptors each worker's connections may
 * claim go to @ret_worker_fds (see on_hw_pool_room()). */
static int resolve_fds(struct proxy_config *c, unsigned *ret_worker_fds)
{
        unsigned share, worker_fds;

        if (!c->max_fds) {
                struct rlimit rl;
                uint64_t cur;

                if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
                        return -errno;
                cur = rl.rlim_cur == RLIM_INFINITY ? UINT_MAX : MIN(rl.rlim_cur, UINT_MAX);
                c->max_fds = cur > PROXY_ENGINE_FD_RESERVE ? cur - PROXY_ENGINE_FD_RESERVE : 0;
        }
        share = c->max_fds / c->workers;
        if (share < PROXY_ENGINE_MIN_WORKER_FDS)
                return -EMFILE;
        worker_fds = share - PROXY_ENGINE_WORKER_FDS;
        if (!c->max_conns_per_worker || c->max_conns_per_worker > worker_fds / 2)
                c->max_conns_per_worker = worker_fds / 2;
        *ret_worker_fds = worker_fds;
        return 0;
}

int proxy_engine_new(const struct proxy_config *cfg, struct proxy_route_table *routes,
                     struct proxy_engine **ret)
{
        struct proxy_engine *e;
        struct proxy_config c;
        unsigned n, worker_fds = 0;
        int r;

        assert(cfg && routes && ret);
        c = *cfg;
        if (c.https_fd < 0 && c.http_fd < 0)
                return -EINVAL;
        if (c.hello_max > PROXY_TLS_HELLO_MAX_LIMIT || c.workers > MAX_WORKERS)
                return -EINVAL;
        if (c.relay_buf_size &&
            (c.relay_buf_size < MIN_RELAY_BUF || c.relay_buf_size > MAX_RELAY_BUF))
                return -EINVAL;
        if (c.max_head && (c.max_head < MIN_MAX_HEAD || c.max_head > MAX_MAX_HEAD))
                return -EINVAL;
        if (c.max_headers > MAX_MAX_HEADERS)
                return -EINVAL;
        if (!c.max_head)
                c.max_head = DEFAULT_MAX_HEAD;
        if (!c.max_headers)
                c.max_headers = DEFAULT_MAX_HEADERS;
        if (!c.request_timeout_ms)
                c.request_timeout_ms = DEFAULT_REQUEST_MS;
        if (!c.keepalive_timeout_ms)
                c.keepalive_timeout_ms = DEFAULT_KEEPALIVE_MS;
        if (!c.upstream_timeout_ms)
                c.upstream_timeout_ms = DEFAULT_UPSTREAM_MS;
        if (!c.upstream_idle_max)
                c.upstream_idle_max = DEFAULT_POOL_MAX;
        if (!c.upstream_idle_timeout_ms)
                c.upstream_idle_timeout_ms = DEFAULT_POOL_IDLE_MS;
        if (!c.hello_max)
                c.hello_max = PROXY_TLS_HELLO_MAX_DEFAULT;
        if (!c.handshake_timeout_ms)
                c.handshake_timeout_ms = DEFAULT_HANDSHAKE_MS;
        if (!c.connect_timeout_ms)
                c.connect_timeout_ms = DEFAULT_CONNECT_MS;
        if (!c.idle_timeout_ms)
                c.idle_timeout_ms = DEFAULT_IDLE_MS;
        if (!c.stop_timeout_ms)
                c.stop_timeout_ms = DEFAULT_STOP_MS;
        if (!c.relay_buf_size)
                c.relay_buf_size = DEFAULT_RELAY_BUF;
        if (!c.socket_factory)
                c.socket_factory = proxy_socket_factory_default;

        n = c.workers ? c.workers : MIN(uv_available_parallelism(), MAX_WORKERS);
        if (n == 0)
                n = 1;
        c.workers = n;

        r = resolve_fds(&c, &worker_fds);
        if (r < 0)
                return r;

        e = calloc(1, sizeof(*e) + n * sizeof(struct worker));
        if (!e)
                return -ENOMEM;
        e->cfg = c;
        e->worker_fds = worker_fds;
        e->routes = routes;
        e->n_workers = n;
        for (unsigned i = 0; i < n; i++) {
                e->workers[i].e = e;
                e->workers[i].idx = i;
        }
        *ret = e;
        return 0;
}

int proxy_engine_start(struct proxy_engine *e)
{
        int r = 0;

        assert(e);
        if (e->started)
                return -EALREADY;
        e->started = true;
        for (unsigned i = 0; i < e->n_workers && r >= 0; i++)
                r = worker_init(&e->workers[i]);
        for (unsigned i = 0; i < e->n_workers && r >= 0; i++) {
                struct worker *w = &e->workers[i];

                /* Everything the thread uses was initialised above;
                 * thread creation orders those writes before its reads. */
                r = uv_thread_create(&w->thread, worker_main, w);
                if (r >= 0)
                        w->thread_started = true;
        }
        if (r < 0) {
                (void)proxy_engine_stop(e);
                return r;
        }
        return 0;
}

int proxy_engine_replace_listeners(struct proxy_engine *e, int https_fd, int http_fd)
{
        int r = 0;

        assert(e);
        if (!e->started || e->stopped)
                return -EBADF;
        if ((https_fd >= 0 && fcntl(https_fd, F_GETFD) < 0) ||
            (http_fd >= 0 && fcntl(http_fd, F_GETFD) < 0))
                return -EBADF;
        for (unsigned i = 0; i < e->n_workers; i++) {
                struct worker *w = &e->workers[i];
                int a = dup_fd(https_fd), b = dup_fd(http_fd), old_a, old_b;

                if (a < -1 || b < -1) {
                        r = a < -1 ? a : b;
                        safe_close(a);
                        safe_close(b);
                        /* Workers told so far keep their new sockets. */
                        return r == -EMFILE || r == -ENFILE ? -ENOMEM : r;
                }
                uv_mutex_lock(&w->lmutex);
                old_a = w->new_https_fd;
                old_b = w->new_http_fd;
                w->new_https_fd = a;
                w->new_http_fd = b;
                w->new_listeners = true;
                uv_mutex_unlock(&w->lmutex);
                /* A replace not yet picked up is superseded. */
                safe_close(old_a);
                safe_close(old_b);
                if (w->thread_started)
                        (void)uv_async_send(&w->async);
        }
        return 0;
}

void proxy_engine_routes_changed(struct proxy_engine *e)
{
        assert(e);
        if (!e->started || e->stopped)
                return;
        for (unsigned i = 0; i < e->n_workers; i++)
                if (e->workers[i].thread_started)
                        (void)uv_async_send(&e->workers[i].async);
}

int proxy_engine_stop(struct proxy_engine *e)
{
        int r = 0;

        assert(e);
        if (!e->started || e->stopped)
                return 0;
        e->stopped = true;
        for (unsigned i = 0; i < e->n_workers; i++) {
                struct worker *w = &e->workers[i];

                if (!w->thread_started)
                        continue;
                atomic_store_explicit(&w->stop_requested, true, memory_order_release);
                (void)uv_async_send(&w->async);
        }
        for (unsigned i = 0; i < e->n_workers; i++) {
                struct worker *w = &e->workers[i];

                if (w->thread_started) {
                        (void)uv_thread_join(&w->thread);
                        w->thread_started = false;
                        w->loop_init = false;
                } else {
                        worker_teardown_unstarted(w);
                }
                if (w->loop_close_r < 0 && r == 0) {
                        log_debug("proxy: worker %u: loop not empty at stop: %s", w->idx,
                                  uv_strerror(w->loop_close_r));
                        r = -EBUSY;
                }
                w->snap = proxy_routes_unref(w->snap);
                w->rbuf = mfree(w->rbuf);
                w->hw = proxy_hw_free(w->hw);
                if (w->lmutex_init) {
                        safe_close(w->new_https_fd);
                        safe_close(w->new_http_fd);
                        w->new_https_fd = w->new_http_fd = -1;
                        uv_mutex_destroy(&w->lmutex);
                        w->lmutex_init = false;
                }
        }
        return r;
}

struct proxy_engine *proxy_engine_free(struct proxy_engine *e)
{
        if (!e)
                return NULL;
        (void)proxy_engine_stop(e);
        free(e);
        return NULL;
}

void proxy_engine_stats(const struct proxy_engine *e, struct proxy_engine_stats *ret)
{
        assert(e && ret);
        memset(ret, 0, sizeof(*ret));
        for (unsigned i = 0; i < e->n_workers; i++) {
                const struct worker *w = &e->workers[i];

                const struct proxy_hw_stats *h = &w->hw_stats;

                ret->accepted += atomic_load_explicit(&w->st_accepted, memory_order_relaxed);
                ret->accept_backoffs +=
                        atomic_load_explicit(&w->st_accept_backoffs, memory_order_relaxed);
                ret->active += atomic_load_explicit(&w->st_active, memory_order_relaxed);
                ret->connect_errors +=
                        atomic_load_explicit(&h->connect_errors, memory_order_relaxed);
                ret->tls_handshakes +=
                        atomic_load_explicit(&h->tls_handshakes, memory_order_relaxed);
                ret->tls_resumed += atomic_load_explicit(&h->tls_resumed, memory_order_relaxed);
                ret->http_requests += atomic_load_explicit(&h->http_requests, memory_order_relaxed);
                for (unsigned k = 0; k < 5; k++)
                        ret->http_status[k] +=
                                atomic_load_explicit(&h->http_status[k], memory_order_relaxed);
                ret->upstream_connects +=
                        atomic_load_explicit(&h->upstream_connects, memory_order_relaxed);
                ret->upstream_reused +=
                        atomic_load_explicit(&h->upstream_reused, memory_order_relaxed);
                for (unsigned k = 0; k < _PROXY_CLOSE_MAX; k++)
                        ret->closed[k] +=
                                atomic_load_explicit(&w->st_closed[k], memory_order_relaxed);
        }
}

unsigned proxy_engine_workers(const struct proxy_engine *e)
{
        assert(e);
        return e->n_workers;
}

unsigned proxy_engine_max_conns(const struct proxy_engine *e)
{
        assert(e);
        return e->cfg.max_conns_per_worker;
}

unsigned proxy_engine_max_fds(const struct proxy_engine *e)
{
        assert(e);
        return e->cfg.max_fds;
}
