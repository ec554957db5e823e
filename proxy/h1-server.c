/* SPDX-License-Identifier: Apache-2.0 */
#include "proxy/h1-server.h"

#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "common/log.h"
#include "common/macros.h"
#include "proxy/h1-internal.h"
#include "proxy/routes.h"

/* Design notes (docs/internals/proxy.md has the long form):
 *
 *  - A connection is one explicit state machine (enum hc_state, transition
 *    table hc_allowed); socket events and deadlines only record what
 *    happened and call h1__step(), which runs steps until the state stops
 *    changing, then puts the client socket in the deadline queue of its
 *    state and declares both sockets' interest.
 *  - Memory: an idle connection is a struct hconn and its struct sock (and
 *    for TLS its SSL); everything needed while a request is in flight (head
 *    buffers, body buffers, parsers, output queues, the exchange, the TLS
 *    buffers lent to the socket) is one "exchange block" taken from a
 *    per-worker free list and given back when the connection goes idle.
 *  - The backend side of each request is an exchange (proxy/exchange.h),
 *    which carries its own deadlines on the backend socket. */

static const char *const hc_state_names[_HC_MAX] = {
        [HC_IDLE] = "idle",     [HC_HEAD] = "head",       [HC_CONNECT] = "connect",
        [HC_PROXY] = "proxy",   [HC_RESPOND] = "respond", [HC_TUNNEL] = "tunnel",
        [HC_LINGER] = "linger", [HC_CLOSING] = "closing",
};

#define B(s) (1u << (s))
/* Legal transitions (every state may also go to CLOSING). */
static const unsigned hc_allowed[_HC_MAX] = {
        [HC_IDLE] = B(HC_HEAD),
        [HC_HEAD] = B(HC_IDLE) | B(HC_CONNECT) | B(HC_RESPOND),
        [HC_CONNECT] = B(HC_PROXY) | B(HC_RESPOND),
        [HC_PROXY] = B(HC_CONNECT) | B(HC_RESPOND) | B(HC_TUNNEL) | B(HC_IDLE) | B(HC_HEAD) |
                     B(HC_LINGER),
        [HC_RESPOND] = B(HC_LINGER),
        [HC_TUNNEL] = 0,
        [HC_LINGER] = 0,
        [HC_CLOSING] = 0,
};
#undef B

/* ---- exchange blocks ---- */

static struct xb *xb_get(struct h1_ctx *ctx, bool tls)
{
        struct xb *x = ctx->free_blocks[tls];
        size_t hdrs = (size_t)ctx->req_limits.max_headers * sizeof(struct proxy_h1_header);
        size_t size;
        uint8_t *p;

        if (x) {
                ctx->free_blocks[tls] = x->next_free;
                ctx->n_free_blocks[tls]--;
        } else {
                size = sizeof(*x) + 2 * hdrs + ctx->in_cap + ctx->uin_cap + ctx->hout_cap +
                       ctx->cout_cap + (tls ? SOCK_TLS_TX_CAP + SOCK_TLS_RIN_CAP : 0);
                x = malloc(size);
                if (!x)
                        return NULL;
                p = (uint8_t *)(x + 1);
                x->req_hdrs = (struct proxy_h1_header *)p;
                p += hdrs;
                /* The response buffer and headers are the exchange's. */
                exch_init(&x->ex, &ctx->exch_env, &h1__exch_ops, NULL, p + hdrs + ctx->in_cap,
                          ctx->uin_cap, (struct proxy_h1_header *)p, ctx->resp_limits.max_headers);
                p += hdrs;
                x->in = p;
                p += ctx->in_cap;
                p += ctx->uin_cap;
                x->hout = p;
                p += ctx->hout_cap;
                x->cout = p;
                p += ctx->cout_cap;
                x->tb.tx = tls ? p : NULL;
                x->tb.rin = tls ? p + SOCK_TLS_TX_CAP : NULL;
                x->tls = tls;
        }
        x->next_free = NULL;
        x->in_off = x->in_len = x->in_fill = 0;
        x->rx_bytes = x->rate_mark = 0;
        iovq_reset(&x->cq);
        return x;
}

static void xb_put(struct h1_ctx *ctx, struct xb *x)
{
        if (!x)
                return;
        if (ctx->n_free_blocks[x->tls] >= H1_BLOCK_CACHE_MAX || ctx->w->stopping) {
                free(x);
                return;
        }
        x->next_free = ctx->free_blocks[x->tls];
        ctx->free_blocks[x->tls] = x;
        ctx->n_free_blocks[x->tls]++;
}

/* ---- client I/O ---- */

bool h1__tls_buffered(const struct hconn *c)
{
        return sock_buffered(c->s);
}

bool h1__can_read(const struct hconn *c)
{
        return sock_can_read(c->s);
}

/* Read into @p. Returns > 0 bytes, 0 at EOF, -EAGAIN, or another -errno. */
static ssize_t hc_read(struct hconn *c, uint8_t *p, size_t n)
{
        ssize_t k = sock_read(c->s, p, n);

        if (k > 0) {
                c->progress = true;
                if (c->x)
                        c->x->rx_bytes += (uint64_t)k;
        }
        return k;
}

/* Write @q to the client. Adds the bytes written to *counted. Returns 0
 * (possibly with bytes left: wr_blocked is set) or -errno. */
int h1__flush(struct hconn *c, struct iovq *q, uint64_t *counted)
{
        size_t before = q->left;
        int r = sock_write(c->s, q, counted);

        if (q->left < before)
                c->progress = true;
        return r;
}

/* ---- connection lifetime ---- */

void h1__set_state(struct hconn *c, enum hc_state next)
{
        assert(next == HC_CLOSING ? c->state != HC_CLOSING
                                  : (hc_allowed[c->state] & (1u << next)) != 0);
        log_debug("proxy: hconn %p: %s -> %s", (void *)c, hc_state_names[c->state],
                  hc_state_names[next]);
        c->state = (uint8_t)next;
        c->timer_reset = true;
}

void h1__set_route(struct hconn *c, struct proxy_route *r)
{
        if (c->route == r)
                return;
        proxy_route_unref(c->route);
        c->route = proxy_route_ref(r);
}

/* Count the current exchange once: on the route if it was proxied, and in
 * the worker's statistics if a status was answered. */
void h1__account(struct hconn *c)
{
        struct xb *x = c->x;
        struct proxy_request_info ri;
        uint64_t now;

        if (!x || x->e.accounted)
                return;
        x->e.accounted = true;
        now = x->e.start_us ? uv_hrtime() / 1000u : 0;
        ri = (struct proxy_request_info){
                .status = x->e.status,
                .method = x->e.method,
                .version = x->e.version,
                .websocket = x->e.websocket,
                .req_bytes = x->e.req_bytes,
                .resp_bytes = x->e.resp_bytes,
                .duration_us = now > x->e.start_us ? now - x->e.start_us : 0,
        };
        proxy_request_done(c->base.w, x->e.proxied ? c->route : NULL, &ri);
}

static void hc_take_block(struct hconn *c, struct xb *x)
{
        c->x = x;
        x->ex.owner = c;
        if (c->s->ssl)
                sock_tls_lend(c->s, &x->tb);
}

void h1__release_block(struct hconn *c)
{
        if (c->x && c->s->ssl)
                sock_tls_lend(c->s, NULL);
        xb_put(hc_ctx(c), TAKE_PTR(c->x));
}

/* From the reap, after the socket was closed (sock_close()). */
static void on_hc_freed(void *data)
{
        struct hconn *c = data;

        proxy_route_unref(c->route);
        proxy_route_unref(c->sni_route);
        free(c->tun_log);
        proxy_conn_freed(&c->base, c->reason);
        free(c);
}

static bool reason_is_orderly(enum proxy_close_reason r)
{
        switch (r) {
        case PROXY_CLOSE_DONE:
        case PROXY_CLOSE_KEEPALIVE_DONE:
        case PROXY_CLOSE_IDLE_TIMEOUT:
        case PROXY_CLOSE_REQUEST_TIMEOUT:
        case PROXY_CLOSE_ROUTE_REMOVED:
        case PROXY_CLOSE_STOP:
                return true;
        default:
                return false;
        }
}

void h1__close(struct hconn *c, enum proxy_close_reason reason)
{
        if (c->state == HC_CLOSING)
                return;
        log_debug("proxy: hconn %p: closing: %s", (void *)c, proxy_close_reason_str(reason));
        /* A request cut short (or a tunnel's end) has its line now; a
         * connection woken without a byte of a new request has none. */
        if (c->x && (c->state != HC_HEAD || c->x->in_len > 0))
                h1__access_log(c, true, reason);
        if (c->x && c->x->e.proxied)
                h1__account(c);
        if (c->state == HC_TUNNEL)
                relay_done(&c->x->relay);
        c->reason = (uint8_t)reason;
        h1__set_state(c, HC_CLOSING);
        if (c->x)
                exch_abort(&c->x->ex);
        h1__release_block(c);
        sock_close(c->s, reason_is_orderly(reason), on_hc_freed);
}

static void on_hc_event(struct sock *s, unsigned events)
{
        struct hconn *c = s->data;

        if (c->state == HC_CLOSING)
                return;
        if (events & EV_TIMEOUT)
                c->ev_timeout = true;
        h1__step(c);
}

/* ---- ending a connection gracefully ---- */

/* Half-close towards the client and wait (bounded) for its EOF, so that
 * unread request bytes do not turn our last answer into a reset. */
void h1__linger(struct hconn *c, enum proxy_close_reason reason)
{
        if (c->s->eof || c->s->err)
                return h1__close(c, reason);
        sock_shutdown(c->s);
        h1__release_block(c);
        c->reason = (uint8_t)reason;
        c->linger_bytes = 0;
        h1__set_state(c, HC_LINGER);
}

static void step_linger(struct hconn *c)
{
        if (c->ev_timeout || sock_linger(c->s, c->base.w->scratch, PROXY_SCRATCH_SIZE,
                                         &c->linger_bytes, PROXY_LINGER_MAX) == 0)
                h1__close(c, c->reason);
}

/* ---- starting and ending requests ---- */

void h1__begin_request(struct hconn *c)
{
        struct xb *x = c->x;

        memset(&x->e, 0, sizeof(x->e));
        x->e.start_ns = proxy_access_clock(c->base.w);
        if (x->in_off > 0) {
                memmove(x->in, x->in + x->in_off, x->in_len - x->in_off);
                x->in_len -= x->in_off;
                x->in_off = 0;
        }
        x->in_fill = 0;
        proxy_h1_req_init(&x->req, &hc_ctx(c)->req_limits, x->req_hdrs,
                          hc_ctx(c)->req_limits.max_headers);
}

/* ---- steps (CONNECT, PROXY, TUNNEL: h1-proxy.c) ---- */

/* Why an idle connection whose deadline passed ends: a connection that
 * never sent a request had the handshake-class deadline. */
static enum proxy_close_reason idle_reason(const struct hconn *c)
{
        return c->served ? PROXY_CLOSE_KEEPALIVE_DONE : PROXY_CLOSE_REQUEST_TIMEOUT;
}

static void step_idle(struct hconn *c)
{
        struct xb *x;

        if (c->ev_timeout)
                return h1__close(c, idle_reason(c));
        if (c->s->err)
                return h1__close(c, PROXY_CLOSE_CLIENT_ERROR);
        if (!h1__can_read(c))
                return;
        x = xb_get(hc_ctx(c), c->s->ssl != NULL);
        if (!x)
                return h1__close(c, PROXY_CLOSE_NOMEM);
        hc_take_block(c, x);
        h1__set_state(c, HC_HEAD);
        h1__begin_request(c);
}

/* Read client bytes into the exchange block while there is room (HEAD,
 * CONNECT, PROXY). Returns 0, or -errno after closing @c. */
int h1__fill_in(struct hconn *c)
{
        struct xb *x = c->x;
        uint32_t cap = hc_ctx(c)->in_cap;
        ssize_t n;

        if (c->s->eof || !h1__can_read(c))
                return 0;
        if (x->in_len == cap && x->in_off > 0 && x->ex.uq.left == 0 && c->state != HC_HEAD) {
                memmove(x->in, x->in + x->in_off, x->in_len - x->in_off);
                x->in_len -= x->in_off;
                x->in_fill = x->in_fill > x->in_off ? x->in_fill - x->in_off : 0;
                x->in_off = 0;
        }
        if (x->in_len == cap)
                return 0;
        n = hc_read(c, x->in + x->in_len, cap - x->in_len);
        if (n > 0) {
                x->in_len += (uint32_t)n;
                return 0;
        }
        if (n == 0) {
                c->s->eof = true;
                return 0;
        }
        if (n == -EAGAIN)
                return 0;
        c->s->err = (int)n;
        h1__close(c, PROXY_CLOSE_CLIENT_ERROR);
        return (int)n;
}

static void step_head(struct hconn *c)
{
        struct xb *x = c->x;
        int r;

        if (c->ev_timeout) {
                c->ev_timeout = false;
                if (x->in_len == 0)
                        return h1__close(c, idle_reason(c));
                return h1__respond(c, 408, PROXY_CLOSE_REQUEST_TIMEOUT, NULL);
        }
        if (c->s->err)
                return h1__close(c, PROXY_CLOSE_CLIENT_ERROR);
        for (;;) {
                if (x->in_len > 0) {
                        r = proxy_h1_req_parse(&x->req, x->in, x->in_len);
                        if (r >= 0) {
                                c->served = true;
                                return h1__dispatch(c, r);
                        }
                        if (r != -EAGAIN)
                                return h1__bad_request(c, proxy_h1_err_status(x->req.h.err));
                        if (x->in_len == hc_ctx(c)->in_cap)
                                return h1__bad_request(c, 431);
                }
                if (c->s->eof)
                        return h1__close(c, x->in_len ? PROXY_CLOSE_CLIENT_EOF
                                                      : PROXY_CLOSE_KEEPALIVE_DONE);
                if (!h1__can_read(c)) {
                        if (x->in_len == 0 && !h1__tls_buffered(c)) {
                                /* Woken for nothing (or TLS records without
                                 * data): idle again, without the block. */
                                h1__release_block(c);
                                h1__set_state(c, HC_IDLE);
                        }
                        return;
                }
                if (h1__fill_in(c) < 0)
                        return;
        }
}

static void step_respond(struct hconn *c)
{
        struct xb *x = c->x;
        int r;

        if (c->ev_timeout)
                return h1__close(c, c->tq == PROXY_TQ_SEND ? PROXY_CLOSE_SEND_TOO_SLOW
                                                           : PROXY_CLOSE_IDLE_TIMEOUT);
        if (c->s->err)
                return h1__close(c, PROXY_CLOSE_CLIENT_ERROR);
        r = h1__flush(c, &x->cq, &x->e.resp_bytes);
        if (r < 0) {
                c->s->err = r;
                return h1__close(c, PROXY_CLOSE_CLIENT_ERROR);
        }
        if (x->cq.left > 0)
                return;
        h1__account(c);
        h1__access_log(c, true, x->e.close);
        h1__linger(c, x->e.close);
}

/* ---- the step driver ---- */

/* The queue of a connection that owes the client bytes: SEND while the
 * client does not take them (a write is blocked), so that it must take
 * send_min_rate; IDLE while the bytes are waiting on the backend. */
static unsigned hc_owed_kind(const struct hconn *c)
{
        return c->x->cq.left > 0 && c->s->wr_blocked ? PROXY_TQ_SEND : PROXY_TQ_IDLE;
}

/* The deadline queue for @c's state; *refresh: progress moves the
 * deadline (for BODY and SEND only enough progress, see h1__step()). */
static unsigned hc_timeout_kind(const struct hconn *c, bool *refresh)
{
        const struct xb *x = c->x;

        *refresh = false;
        switch (c->state) {
        case HC_IDLE:
                /* A :80 connection that never sent a request gets no more
                 * time than a TLS handshake would (issue 11): idle sockets
                 * are what a flood of connections is made of. */
                return c->served || c->s->ssl ? PROXY_TQ_KEEPALIVE : PROXY_TQ_HANDSHAKE;
        case HC_HEAD:
                if (x && x->in_len > 0)
                        return PROXY_TQ_REQUEST;
                return c->served || c->s->ssl ? PROXY_TQ_KEEPALIVE : PROXY_TQ_HANDSHAKE;
        case HC_CONNECT:
                /* The backend socket has the connect deadline. */
                return EV_TQ_NONE;
        case HC_PROXY:
                if (!x->ex.resp_head && !x->ex.upgrade) {
                        *refresh = true;
                        /* The body is due from the client at its minimum
                         * rate, unless our buffer is full (the backend is
                         * not taking it: that is not the client's fault). */
                        if (!x->ex.reqp.done && x->in_len < hc_ctx(c)->in_cap)
                                return PROXY_TQ_BODY;
                        if (x->ex.interim)
                                return hc_owed_kind(c);
                        /* Once sent, the backend socket has the
                         * response-head deadline. */
                        if (x->ex.req_sent_all) {
                                *refresh = false;
                                return EV_TQ_NONE;
                        }
                        return PROXY_TQ_REQUEST;
                }
                *refresh = true;
                return hc_owed_kind(c);
        case HC_RESPOND:
                *refresh = true;
                return hc_owed_kind(c);
        case HC_TUNNEL:
                *refresh = true;
                return PROXY_TQ_IDLE;
        case HC_LINGER:
                return PROXY_TQ_LINGER;
        default:
                return EV_TQ_NONE;
        }
}

/* For a BODY or SEND deadline: the bytes that count as progress (read from
 * the client, written to it) and how many make enough per period; 0: any
 * progress moves the deadline. */
static uint64_t hc_rate_counter(const struct hconn *c, unsigned kind, uint64_t *quota)
{
        const struct proxy_config *cfg = c->base.w->cfg;
        uint32_t rate = kind == PROXY_TQ_BODY ? cfg->body_min_rate : cfg->send_min_rate;
        uint64_t period = kind == PROXY_TQ_BODY ? cfg->body_timeout_ms : cfg->send_timeout_ms;

        *quota = 0;
        if (kind != PROXY_TQ_BODY && kind != PROXY_TQ_SEND)
                return 0;
        if (rate != PROXY_LIMIT_OFF)
                *quota = MAX((uint64_t)rate * period / 1000, 1);
        return kind == PROXY_TQ_BODY ? c->x->rx_bytes : c->x->e.resp_bytes;
}

/* Whether the client socket should be read (write interest is the
 * socket's: while a write is blocked). */
static bool hc_want_read(const struct hconn *c)
{
        const struct xb *x = c->x;
        bool rd;

        switch (c->state) {
        case HC_LINGER:
                rd = true;
                break;
        case HC_IDLE:
                rd = !c->s->eof;
                break;
        case HC_HEAD:
        case HC_CONNECT:
        case HC_PROXY:
                rd = !c->s->eof && x->in_len < hc_ctx(c)->in_cap;
                break;
        default:
                rd = false;
                break;
        }
        return rd;
}

void h1__step(struct hconn *c)
{
        uint64_t quota;
        unsigned kind;
        bool refresh;
        int r;

        for (;;) {
                enum hc_state before = c->state;

                switch (c->state) {
                case HC_IDLE:
                        step_idle(c);
                        break;
                case HC_HEAD:
                        step_head(c);
                        break;
                case HC_CONNECT:
                        h1__step_connect(c);
                        break;
                case HC_PROXY:
                        h1__step_proxy(c);
                        break;
                case HC_RESPOND:
                        step_respond(c);
                        break;
                case HC_TUNNEL:
                        h1__step_tunnel(c);
                        break;
                case HC_LINGER:
                        step_linger(c);
                        break;
                default:
                        return;
                }
                if (c->state == HC_CLOSING)
                        return;
                if (c->state == before)
                        break;
                c->ev_timeout = false;
                if (c->x)
                        c->x->ex.ev_timeout = false;
        }
        c->ev_timeout = false;
        if (c->x) {
                c->x->ex.ev_timeout = false;
                c->progress |= c->x->ex.progress;
                c->x->ex.progress = false;
        }

        kind = hc_timeout_kind(c, &refresh);
        if (kind != c->s->h.tq || c->timer_reset) {
                sock_deadline(c->s, kind);
                if (c->x)
                        c->x->rate_mark = hc_rate_counter(c, kind, &quota);
        } else if (refresh && c->progress) {
                /* A minimum rate: the deadline moves only once a period's
                 * worth of bytes moved since it was set (nginx's
                 * client_body_timeout restarts on every byte, so one byte
                 * per period holds a backend connection forever). */
                uint64_t n = hc_rate_counter(c, kind, &quota);

                if (!quota || n - c->x->rate_mark >= quota) {
                        sock_deadline(c->s, kind);
                        c->x->rate_mark = n;
                }
        }
        c->tq = (uint8_t)kind;
        c->timer_reset = false;
        c->progress = false;

        if (c->state == HC_TUNNEL) {
                r = relay_poll(&c->x->relay);
                if (r < 0)
                        return h1__close(c, c->x->relay.err_side ? PROXY_CLOSE_UPSTREAM_ERROR
                                                                 : PROXY_CLOSE_CLIENT_ERROR);
                return;
        }
        r = sock_want(c->s, hc_want_read(c));
        if (r < 0)
                return h1__close(c, PROXY_CLOSE_CLIENT_ERROR);
        if (c->x && exch_poll(&c->x->ex, h1__up_want_read(c)) < 0)
                return h1__close(c, PROXY_CLOSE_UPSTREAM_ERROR);
}

/* ---- the worker's view: route changes and stop ---- */

static void on_routes_changed(struct proxy_conn *pc)
{
        struct hconn *c = container_of(pc, struct hconn, base);
        const struct proxy_routes *snap = c->base.w->snap;

        if (c->state == HC_CLOSING)
                return;
        if (c->sni_route && !proxy_route_still_current(snap, c->sni_route))
                return h1__close(c, PROXY_CLOSE_ROUTE_REMOVED);
        if (!c->route || proxy_route_still_current(snap, c->route))
                return;
        if (c->x && c->x->e.proxied && c->state != HC_LINGER)
                return h1__close(c, PROXY_CLOSE_ROUTE_REMOVED);
        /* Only a cache between requests: drop it. */
        c->route = proxy_route_unref(c->route);
}

static void on_stop(struct proxy_conn *pc, bool now)
{
        struct hconn *c = container_of(pc, struct hconn, base);

        switch (c->state) {
        case HC_HEAD:
                /* A request whose head is arriving is served like one in
                 * flight (its answer says "Connection: close"; the request
                 * deadline bounds it); woken without a byte, it is idle. */
                if (!now && c->x && c->x->in_len > 0)
                        return;
                return h1__close(c, PROXY_CLOSE_STOP);
        case HC_IDLE:
        case HC_LINGER:
                return h1__close(c, PROXY_CLOSE_STOP);
        default:
                /* A request in flight finishes (its answer says
                 * "Connection: close") unless the deadline passed. */
                if (now)
                        h1__close(c, PROXY_CLOSE_STOP);
                return;
        }
}

static const struct proxy_conn_ops hc_ops = {
        .name = "http/1.1",
        .routes_changed = on_routes_changed,
        .stop = on_stop,
};

/* ---- public API ---- */

int h1_ctx_new(struct proxy_worker *w, struct h1_ctx **ret)
{
        const struct proxy_config *cfg = w->cfg;
        struct h1_ctx *ctx;

        ctx = calloc(1, sizeof(*ctx));
        if (!ctx)
                return -ENOMEM;
        ctx->w = w;
        ctx->cfg = cfg;
        ctx->req_limits = (struct proxy_h1_limits){.max_head = cfg->max_head,
                                                   .max_headers = cfg->max_headers,
                                                   .max_target = cfg->max_head};
        ctx->resp_limits = ctx->req_limits;
        ctx->in_cap = cfg->max_head;
        /* Room for a 16 KiB body behind a full head: one read, one write. */
        ctx->uin_cap = cfg->max_head + H1_UIN_EXTRA;
        ctx->hout_cap = cfg->max_head + H1_HOUT_SLACK;
        ctx->cout_cap = cfg->max_head + H1_COUT_SLACK;
        ctx->exch_env = (struct exch_env){
                .pool = &w->pool,
                .tq_connect = PROXY_TQ_CONNECT,
                .tq_upstream = PROXY_TQ_UPSTREAM,
                .limits = &ctx->resp_limits,
                .st_connects = &w->stats.upstream_connects,
                .st_reused = &w->stats.upstream_reused,
                .st_connect_errors = &w->stats.connect_errors,
                .health = &w->health,
        };
        *ret = ctx;
        return 0;
}

static void free_blocks(struct h1_ctx *ctx)
{
        for (unsigned t = 0; t < 2; t++)
                while (ctx->free_blocks[t]) {
                        struct xb *x = ctx->free_blocks[t];

                        ctx->free_blocks[t] = x->next_free;
                        free(x);
                }
        ctx->n_free_blocks[0] = ctx->n_free_blocks[1] = 0;
}

void h1_ctx_begin_stop(struct h1_ctx *ctx)
{
        if (ctx)
                free_blocks(ctx);
}

struct h1_ctx *h1_ctx_free(struct h1_ctx *ctx)
{
        if (!ctx)
                return NULL;
        free_blocks(ctx);
        free(ctx);
        return NULL;
}

int h1_conn_start(struct proxy_worker *w, struct sock *s, struct proxy_route *sni_route,
                  struct proxy_conn *from)
{
        struct hconn *c;

        assert(w && s);
        if (w->stopping)
                return -ESHUTDOWN;
        c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        c->s = s;
        c->sni_route = proxy_route_ref(sni_route);
        c->state = HC_IDLE;
        if (from)
                proxy_conn_switch(from, &c->base, &hc_ops);
        else
                proxy_conn_add(w, &c->base, &hc_ops, /* https= */ s->ssl != NULL);
        sock_set_cb(s, on_hc_event, c);
        /* Clients usually send at once: try before waiting for an event
         * (after a TLS handshake, replayed bytes may be waiting too). */
        c->s->rd_ready = true;
        c->timer_reset = true;
        h1__step(c);
        return 0;
}
