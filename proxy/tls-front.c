/* SPDX-License-Identifier: Apache-2.0 */
#include "proxy/tls-front.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/ssl.h>

#include "common/log.h"
#include "common/macros.h"
#include "proxy/h1-server.h"
#include "proxy/h2-server.h"
#include "proxy/relay.h"
#include "proxy/routes.h"
#include "proxy/sock.h"
#include "proxy/tls-hello.h"
#include "proxy/tls.h"
#include "proxy/upstream.h"
#include "proxy/worker.h"

/* Raw bytes buffered while peeking, beyond the message bound: record
 * headers (5 bytes per record) and early data after the hello. A hello cut
 * into hundreds of tiny records is refused rather than buffered. */
#define HELLO_RAW_SLACK 2048u

struct front {
        struct proxy_conn base; /* on the worker's list */
        struct sock *s;         /* the client; its deadline is the connection's */
        uint8_t state;          /* enum proxy_conn_state */
        uint8_t reason;         /* enum proxy_close_reason, once CLOSING */
        bool ev_timeout;        /* the client socket's deadline passed */
        bool up_timeout;        /* the backend's connect deadline passed */
        bool timer_reset;       /* state entered: restart the deadline */
        bool progress;          /* relay: bytes moved during this step */
        bool handed;            /* TLS done: HTTP/1.1 takes over after this step */

        /* READ_HELLO */
        uint8_t *hello_mem; /* raw bytes [0, raw_cap), then the message buffer */
        size_t raw_len;     /* raw bytes received so far */
        size_t raw_cap;     /* */
        struct proxy_tls_hello hello;

        /* TLS_HANDSHAKE, CONNECT_UPSTREAM, RELAY */
        struct proxy_route *route; /* pinned: the SNI's route */
        struct upstream *up;       /* passthrough: the backend */
        unsigned first_backend;    /* the route's round-robin cursor value */
        unsigned attempt;          /* backends tried (or skipped as down) */
        unsigned cur;              /* the index of the backend of @up */
        struct relay relay;        /* RELAY */

        /* The access log (times 0 while it is off). */
        uint64_t start_ns;              /* the accept */
        uint64_t up_start_ns;           /* passthrough: the first backend attempt */
        uint64_t up_head_ns;            /* ... connected */
        const struct proxy_backend *be; /* ... of the last attempt (c->route's) */
        char *sni;                      /* passthrough: the SNI (the hello goes to the relay) */
};

static const char *const state_names[_PROXY_CONN_ST_MAX] = {
        [PROXY_CONN_ST_ACCEPTED] = "accepted",
        [PROXY_CONN_ST_READ_HELLO] = "read-hello",
        [PROXY_CONN_ST_TLS_HANDSHAKE] = "tls-handshake",
        [PROXY_CONN_ST_CONNECT_UPSTREAM] = "connect-upstream",
        [PROXY_CONN_ST_RELAY] = "relay",
        [PROXY_CONN_ST_CLOSING] = "closing",
};

const char *proxy_conn_state_str(enum proxy_conn_state s)
{
        if ((unsigned)s >= _PROXY_CONN_ST_MAX)
                return NULL;
        return state_names[s];
}

#define B(s) (1u << (s))
/* Legal transitions: allowed[from] has bit (1u << to). Every state may go
 * to CLOSING. TLS_HANDSHAKE ends by handing the connection to HTTP/1.1
 * (the object is freed, it does not change state). */
static const unsigned allowed[_PROXY_CONN_ST_MAX] = {
        [PROXY_CONN_ST_ACCEPTED] = B(PROXY_CONN_ST_READ_HELLO),
        [PROXY_CONN_ST_READ_HELLO] =
                B(PROXY_CONN_ST_TLS_HANDSHAKE) | B(PROXY_CONN_ST_CONNECT_UPSTREAM),
        [PROXY_CONN_ST_TLS_HANDSHAKE] = 0,
        [PROXY_CONN_ST_CONNECT_UPSTREAM] = B(PROXY_CONN_ST_RELAY),
        [PROXY_CONN_ST_RELAY] = 0,
        [PROXY_CONN_ST_CLOSING] = 0,
};
#undef B

static void set_state(struct front *c, enum proxy_conn_state next)
{
        assert(next == PROXY_CONN_ST_CLOSING ? c->state != PROXY_CONN_ST_CLOSING
                                             : (allowed[c->state] & (1u << next)) != 0);
        log_debug("proxy: conn %p: %s -> %s", (void *)c, proxy_conn_state_str(c->state),
                  proxy_conn_state_str(next));
        c->state = (uint8_t)next;
        c->timer_reset = true;
}

/* ---- lifetime ---- */

static void on_front_freed(void *data)
{
        struct front *c = data;

        proxy_route_unref(c->route);
        free(c->hello_mem);
        free(c->sni);
        proxy_conn_freed(&c->base, c->reason);
        free(c);
}

/* The access log's line of a passthrough connection, or of one that ended
 * before a request (a bad or unknown ClientHello, a failed handshake): only
 * once the client sent something. */
static void front_access_log(struct front *c, enum proxy_close_reason reason)
{
        struct proxy_worker *w = c->base.w;
        struct proxy_access_record rec = {0};
        struct sockaddr_storage cl, up;
        bool pt = c->state == PROXY_CONN_ST_CONNECT_UPSTREAM || c->state == PROXY_CONN_ST_RELAY;
        const char *sni = NULL;

        if (!c->start_ns || !proxy_access_on(w))
                return;
        if (!pt && c->raw_len == 0)
                return; /* nothing was sent: a scan, an idle connect */
        rec.start_ns = c->start_ns;
        rec.client = sock_peer_sockaddr(c->s, &cl);
        if (c->route)
                rec.workload = (struct proxy_access_str){c->route->id, strlen(c->route->id)};
        if (pt)
                sni = c->sni;
        else if (c->hello_mem && proxy_tls_hello_done(&c->hello))
                sni = proxy_tls_hello_sni(&c->hello);
        else if (c->route)
                sni = c->route->host; /* TLS began: the SNI chose this route */
        if (sni)
                rec.host = (struct proxy_access_str){sni, strlen(sni)};
        if (pt) {
                rec.upstream_start_ns = c->up_start_ns;
                rec.upstream_head_ns = c->up_head_ns;
                rec.upstream = proxy_access_backend(c->be, 0, &up);
                rec.req_bytes = c->relay.total[RELAY_UP];
                rec.resp_bytes = c->relay.total[RELAY_DOWN];
                rec.proto = PROXY_ACCESS_PROTO_PASSTHROUGH;
        } else {
                rec.req_bytes = c->raw_len; /* the hello (and what came with it) */
        }
        rec.closed = true;
        rec.close = (uint8_t)reason;
        proxy_access_emit(w, &rec);
}

static void front_close(struct front *c, enum proxy_close_reason reason)
{
        if (c->state == PROXY_CONN_ST_CLOSING)
                return;
        log_debug("proxy: conn %p: closing: %s", (void *)c, proxy_close_reason_str(reason));
        front_access_log(c, reason);
        if (c->state == PROXY_CONN_ST_RELAY)
                relay_done(&c->relay);
        c->reason = (uint8_t)reason;
        set_state(c, PROXY_CONN_ST_CLOSING);
        upstream_close(TAKE_PTR(c->up));
        sock_close(c->s, /* orderly= */ false, on_front_freed);
}

/* ---- the ClientHello ---- */

/* TLS with the route's certificate on this very socket: what was read so
 * far is replayed into BoringSSL first. */
static void start_tls(struct front *c, struct proxy_route *route)
{
        const struct proxy_config *cfg = c->base.w->cfg;
        SSL *ssl;
        int r;

        if (!cfg->tls || !route->cert)
                return front_close(c, PROXY_CLOSE_NO_TLS);
        c->route = proxy_route_ref(route);
        r = proxy_tls_new_ssl(cfg->tls, route->cert, &ssl);
        if (r >= 0)
                r = sock_tls_accept(c->s, ssl);
        if (r >= 0)
                r = sock_replay(c->s, c->hello_mem, c->raw_len);
        if (r < 0)
                return front_close(c, r == -ENOMEM ? PROXY_CLOSE_NOMEM : PROXY_CLOSE_CLIENT_ERROR);
        c->hello_mem = mfree(c->hello_mem);
        set_state(c, PROXY_CONN_ST_TLS_HANDSHAKE);
}

static void step_read_hello(struct front *c)
{
        struct proxy_worker *w = c->base.w;
        struct proxy_route *route;
        const char *sni;
        int r;

        while (!c->hello_mem || !proxy_tls_hello_done(&c->hello)) {
                ssize_t n;

                if (!sock_can_read(c->s))
                        break;
                if (!c->hello_mem) {
                        size_t hello_max = w->cfg->hello_max;

                        /* Allocated on the first read: a connection that
                         * sends nothing holds no buffer. */
                        c->raw_cap = hello_max + HELLO_RAW_SLACK;
                        c->hello_mem = malloc(c->raw_cap + hello_max);
                        if (!c->hello_mem)
                                return front_close(c, PROXY_CLOSE_NOMEM);
                        proxy_tls_hello_init(&c->hello, c->hello_mem + c->raw_cap, hello_max);
                }
                if (c->raw_len == c->raw_cap)
                        return front_close(c, PROXY_CLOSE_BAD_HELLO);
                n = sock_read(c->s, c->hello_mem + c->raw_len, c->raw_cap - c->raw_len);
                if (n == -EAGAIN)
                        break;
                if (n == 0)
                        return front_close(c, PROXY_CLOSE_CLIENT_EOF);
                if (n < 0)
                        return front_close(c, PROXY_CLOSE_CLIENT_ERROR);
                r = proxy_tls_hello_feed(&c->hello, c->hello_mem + c->raw_len, (size_t)n);
                c->raw_len += (size_t)n;
                if (r == -EAGAIN && c->raw_len == c->raw_cap)
                        r = -E2BIG;
                if (r < 0 && r != -EAGAIN) {
                        log_debug("proxy: conn %p: ClientHello refused: %s", (void *)c,
                                  strerror(-r));
                        return front_close(c, PROXY_CLOSE_BAD_HELLO);
                }
        }
        if (!c->hello_mem || !proxy_tls_hello_done(&c->hello)) {
                /* A timeout that raced with the completing read loses. */
                if (c->ev_timeout)
                        front_close(c, PROXY_CLOSE_HELLO_TIMEOUT);
                return;
        }

        /* The hello is complete. Nothing more is read until a backend is
         * there (or TLS starts): whatever else arrived with it is in the
         * raw buffer and goes first. */
        c->ev_timeout = false;
        sni = proxy_tls_hello_sni(&c->hello);
        if (!sni)
                return front_close(c, PROXY_CLOSE_NO_SNI);
        /* Exact name, else the wildcard of its parent: no other fallback. */
        route = proxy_routes_lookup_wildcard(proxy_worker_snap(w), sni, strlen(sni));
        if (!route)
                return front_close(c, PROXY_CLOSE_UNKNOWN_SNI);
        if (route->mode != PROXY_ROUTE_PASSTHROUGH)
                return start_tls(c, route);

        c->route = proxy_route_ref(route);
        if (c->start_ns) {
                /* Without it the line has no host: no allocation failure
                 * stops the connection. */
                c->sni = strdup(sni);
                c->up_start_ns = proxy_access_clock(w);
        }
        /* A passthrough connection is one request (proxy/routes.h). */
        proxy_counters_add(route->counters, /* status= */ 0, 0, 0);
        c->first_backend = atomic_fetch_add_explicit(&route->rr_next, 1, memory_order_relaxed);
        c->attempt = 0;
        set_state(c, PROXY_CONN_ST_CONNECT_UPSTREAM);
}

static void step_tls_handshake(struct front *c)
{
        struct proxy_worker_stats *st = &c->base.w->stats;
        int r;

        if (c->ev_timeout)
                return front_close(c, PROXY_CLOSE_HELLO_TIMEOUT);
        if (c->s->err)
                return front_close(c, PROXY_CLOSE_CLIENT_ERROR);
        r = sock_handshake(c->s);
        if (r == 0)
                return;
        if (r > 0) {
                proxy_stat_add(&st->tls_handshakes, 1);
                if (SSL_session_reused(c->s->ssl))
                        proxy_stat_add(&st->tls_resumed, 1);
                c->handed = true;
                return;
        }
        if (c->s->bio_eof)
                return front_close(c, PROXY_CLOSE_CLIENT_EOF);
        if (c->s->err)
                return front_close(c, PROXY_CLOSE_CLIENT_ERROR);
        log_debug("proxy: conn %p: TLS handshake failed", (void *)c);
        front_close(c, PROXY_CLOSE_TLS_HANDSHAKE);
}

/* ---- passthrough ---- */

static void on_up_event(struct sock *s, unsigned events);

static void start_relay(struct front *c)
{
        struct proxy_worker *w = c->base.w;

        if (c->start_ns)
                c->up_head_ns = proxy_access_clock(w);
        relay_init(&c->relay, c->s, c->up->s, w->rbuf, (uint32_t)w->cfg->relay_buf_size,
                   c->route->counters, /* half_close= */ true);
        /* Everything the client sent so far (the hello, maybe early data) is
         * the first thing the backend gets. */
        relay_preload(&c->relay, RELAY_UP, TAKE_PTR(c->hello_mem), (uint32_t)c->raw_len);
        set_state(c, PROXY_CONN_ST_RELAY);
}

static void step_connect(struct front *c)
{
        struct proxy_worker *w = c->base.w;
        struct proxy_route *route = c->route;
        bool factory_failed;
        int r;

        if (c->up) {
                int soerr;

                if (c->up_timeout)
                        soerr = ETIMEDOUT;
                else if (!c->up->s->connect_event && !c->up->s->err)
                        return; /* still connecting */
                else if (c->up->s->err)
                        soerr = -c->up->s->err;
                else
                        soerr = -sock_connect_result(c->up->s);
                c->up_timeout = false;
                if (soerr == 0) {
                        sock_deadline(c->up->s, EV_TQ_NONE);
                        return start_relay(c);
                }
                log_debug("proxy: conn %p: backend connect: %s", (void *)c, strerror(soerr));
                proxy_stat_add(&w->stats.connect_errors, 1);
                upstream_close(TAKE_PTR(c->up));
                proxy_health_report(&w->health, route, c->cur,
                                    soerr == ETIMEDOUT ? PROXY_BACKEND_FAIL_TIMEOUT
                                                       : PROXY_BACKEND_FAIL_CONNECT,
                                    soerr);
        }
        /* Only healthy backends while there is one; all down: closed. A
         * passthrough connection is not retried after it was relayed (the
         * backend may have taken the hello), nor is a reset counted: what
         * the client sends is the backend's TLS, not ours to judge. */
        while (c->attempt < route->n_backends) {
                const struct proxy_backend *be;
                struct upstream_key k;

                c->cur = (c->first_backend + c->attempt) % route->n_backends;
                be = &route->backends[c->cur];
                c->attempt++;
                if (proxy_backend_down(be)) {
                        proxy_health_adopt(&w->health, route, c->cur);
                        continue;
                }
                c->be = be;
                upstream_key_of(&k, (const struct sockaddr *)&be->addr, 0);
                r = upstream_dial(&w->pool, route, &k, /* pooled= */ false, on_up_event, c, &c->up,
                                  &factory_failed);
                if (r < 0) {
                        log_debug("proxy: conn %p: backend %s: %s", (void *)c, be->text,
                                  strerror(-r));
                        proxy_stat_add(&w->stats.connect_errors, 1);
                        if (!factory_failed)
                                proxy_health_report(&w->health, route, c->cur,
                                                    PROXY_BACKEND_FAIL_CONNECT, -r);
                        continue;
                }
                if (!c->up->s->connecting)
                        return start_relay(c);
                /* Each attempt gets the whole connect timeout. */
                sock_deadline(c->up->s, PROXY_TQ_CONNECT);
                return;
        }
        front_close(c, PROXY_CLOSE_CONNECT_FAILED);
}

static void step_relay(struct front *c)
{
        int r;

        if (c->ev_timeout)
                return front_close(c, PROXY_CLOSE_IDLE_TIMEOUT);
        r = relay_step(&c->relay, &c->progress);
        if (r == -ENOMEM)
                return front_close(c, PROXY_CLOSE_NOMEM);
        if (r < 0)
                return front_close(c, c->relay.err_side ? PROXY_CLOSE_UPSTREAM_ERROR
                                                        : PROXY_CLOSE_CLIENT_ERROR);
        if (r > 0)
                front_close(c, PROXY_CLOSE_DONE);
}

/* ---- the step driver ---- */

/* HTTP/2 (ALPN h2) or HTTP/1.1 takes the connection (its socket, its place
 * on the list); this object goes. The last thing a step does: nothing may
 * touch @c after. */
static void hand_to_h1(struct front *c)
{
        struct proxy_route *route = TAKE_PTR(c->route);
        int r;

        if (proxy_tls_alpn_h2(c->s->ssl))
                r = h2_conn_start(c->base.w, c->s, route, &c->base);
        else
                r = h1_conn_start(c->base.w, c->s, route, &c->base);
        if (r < 0) {
                c->route = route;
                c->handed = false;
                return front_close(c, r == -ENOMEM ? PROXY_CLOSE_NOMEM : PROXY_CLOSE_STOP);
        }
        proxy_route_unref(route);
        free(c);
}

static void front_step(struct front *c)
{
        unsigned tq;
        bool refresh = false;
        int r;

        for (;;) {
                enum proxy_conn_state before = c->state;

                switch (c->state) {
                case PROXY_CONN_ST_ACCEPTED:
                        set_state(c, PROXY_CONN_ST_READ_HELLO);
                        break;
                case PROXY_CONN_ST_READ_HELLO:
                        step_read_hello(c);
                        break;
                case PROXY_CONN_ST_TLS_HANDSHAKE:
                        step_tls_handshake(c);
                        break;
                case PROXY_CONN_ST_CONNECT_UPSTREAM:
                        step_connect(c);
                        break;
                case PROXY_CONN_ST_RELAY:
                        step_relay(c);
                        break;
                default:
                        return;
                }
                if (c->state == PROXY_CONN_ST_CLOSING)
                        return;
                if (c->handed)
                        return hand_to_h1(c);
                if (c->state == before)
                        break;
                c->ev_timeout = false;
        }
        c->ev_timeout = false;

        switch (c->state) {
        case PROXY_CONN_ST_READ_HELLO:
        case PROXY_CONN_ST_TLS_HANDSHAKE:
                /* From accept for the hello, afresh for the handshake. */
                tq = PROXY_TQ_HANDSHAKE;
                break;
        case PROXY_CONN_ST_RELAY:
                /* No bytes either way for idle_timeout_ms. */
                tq = PROXY_TQ_IDLE;
                refresh = true;
                break;
        default:
                /* CONNECT_UPSTREAM: the backend socket has the deadline. */
                tq = EV_TQ_NONE;
                break;
        }
        if (tq != c->s->h.tq || c->timer_reset || (refresh && c->progress))
                sock_deadline(c->s, tq);
        c->timer_reset = false;
        c->progress = false;

        switch (c->state) {
        case PROXY_CONN_ST_RELAY:
                r = relay_poll(&c->relay);
                if (r < 0)
                        front_close(c, c->relay.err_side ? PROXY_CLOSE_UPSTREAM_ERROR
                                                         : PROXY_CLOSE_CLIENT_ERROR);
                return;
        case PROXY_CONN_ST_CONNECT_UPSTREAM:
                if (sock_want(c->s, false) < 0)
                        return front_close(c, PROXY_CLOSE_CLIENT_ERROR);
                if (sock_want(c->up->s, false) < 0)
                        front_close(c, PROXY_CLOSE_UPSTREAM_ERROR);
                return;
        default:
                if (sock_want(c->s, true) < 0)
                        front_close(c, PROXY_CLOSE_CLIENT_ERROR);
                return;
        }
}

static void on_client_event(struct sock *s, unsigned events)
{
        struct front *c = s->data;

        if (c->state == PROXY_CONN_ST_CLOSING)
                return;
        if (events & EV_TIMEOUT)
                c->ev_timeout = true;
        front_step(c);
}

static void on_up_event(struct sock *s, unsigned events)
{
        struct front *c = s->data;

        if (c->state == PROXY_CONN_ST_CLOSING)
                return;
        if (events & EV_TIMEOUT)
                c->up_timeout = true;
        front_step(c);
}

/* ---- the worker's view ---- */

static void on_routes_changed(struct proxy_conn *pc)
{
        struct front *c = container_of(pc, struct front, base);

        if (c->route && c->state != PROXY_CONN_ST_CLOSING &&
            !proxy_route_still_current(c->base.w->snap, c->route))
                front_close(c, PROXY_CLOSE_ROUTE_REMOVED);
}

static void on_stop(struct proxy_conn *pc, bool now)
{
        struct front *c = container_of(pc, struct front, base);

        /* A relayed connection may finish until the stop deadline. */
        if (now || c->state != PROXY_CONN_ST_RELAY)
                front_close(c, PROXY_CLOSE_STOP);
}

static const struct proxy_conn_ops front_ops = {
        .name = "tls-front",
        .routes_changed = on_routes_changed,
        .stop = on_stop,
};

int tls_front_start(struct proxy_worker *w, struct sock *s)
{
        struct front *c = calloc(1, sizeof(*c));

        if (!c) {
                sock_close(s, false, NULL);
                return -ENOMEM;
        }
        c->s = s;
        c->state = PROXY_CONN_ST_ACCEPTED;
        c->start_ns = proxy_access_clock(w);
        sock_set_cb(s, on_client_event, c);
        proxy_conn_add(w, &c->base, &front_ops, /* https= */ true);
        front_step(c);
        return 0;
}
