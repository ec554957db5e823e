/* SPDX-License-Identifier: Apache-2.0 */
/* The HTTP/1.1 server: proxying a request through an exchange (connect,
 * request and response both ways, keep-alive), and the WebSocket tunnel
 * after a 101. */
#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <string.h>

#include "common/log.h"
#include "common/macros.h"
#include "proxy/h1-internal.h"
#include "proxy/routes.h"
#include "proxy/upstream.h"

static void hc_exchange_end(struct hconn *c);

/* ---- the exchange ---- */

/* The exchange's backend socket is ready or its deadline passed. */
static void on_exch_wake(void *owner)
{
        struct hconn *c = owner;

        if (c->state == HC_CLOSING)
                return;
        h1__step(c);
}

const struct exch_ops h1__exch_ops = {
        .wake = on_exch_wake,
};

/* RFC 9110 9.2.2: a request with this method may be sent again after a
 * failure (an unknown method is not assumed to be). */
static bool method_idempotent(enum proxy_h1_method m)
{
        switch (m) {
        case PROXY_H1_METHOD_GET:
        case PROXY_H1_METHOD_HEAD:
        case PROXY_H1_METHOD_PUT:
        case PROXY_H1_METHOD_DELETE:
        case PROXY_H1_METHOD_OPTIONS:
        case PROXY_H1_METHOD_TRACE:
                return true;
        default:
                return false;
        }
}

/* Proxy the parsed request to @route's backends (port @port, if non-zero). */
void h1__proxy_begin(struct hconn *c, struct proxy_route *route, uint16_t port)
{
        struct h1_ctx *ctx = hc_ctx(c);
        struct xb *x = c->x;
        const struct proxy_h1_req *req = &x->req;
        char ip[INET6_ADDRSTRLEN], host[PROXY_ROUTE_HOST_MAX + 16];
        struct proxy_h1_span hs;
        struct proxy_h1_forward f = {.client_ip = ip, .host = host, .https = c->s->ssl != NULL};
        int r;

        h1__set_route(c, route);
        sock_peer_str(c->s, ip, sizeof(ip));
        hs = req->host_index >= 0 ? req->h.headers[req->host_index].value : req->authority;
        if (hs.len >= sizeof(host))
                return h1__bad_request(c, 400);
        memcpy(host, x->in + hs.off, hs.len);
        host[hs.len] = 0;
        r = proxy_h1_req_serialize(req, x->in, &f, x->hout, ctx->hout_cap);
        if (r < 0)
                return h1__bad_request(c, r == -ENOBUFS ? 431 : 400);
        x->e.proxied = x->e.routed = true;
        if (x->e.start_ns)
                x->e.up_start_ns = proxy_access_clock(ctx->w);
        x->e.websocket = (req->flags & PROXY_H1_REQ_WEBSOCKET) != 0;
        exch_begin(&x->ex, route, port, x->hout, (uint32_t)r, req->h.body, req->h.content_length,
                   x->e.head_req);
        x->ex.idempotent = method_idempotent(req->method_id);
        h1__set_state(c, HC_CONNECT);
}

/* Every backend is down: 503 with a page that says so (the health checks
 * bring a backend back without a request, docs/internals/proxy.md). */
static const char down_page[] =
        "503 Service Unavailable\n\n"
        "The backend of this site is unreachable. Please try again later.\n";

static void hc_no_backend(struct hconn *c)
{
        const struct exch *ex = &c->x->ex;

        if (ex->all_down)
                return h1__respond(
                        c, 503, PROXY_CLOSE_CONNECT_FAILED,
                        &(struct ans){.body = down_page, .body_len = sizeof(down_page) - 1});
        h1__respond(c, ex->all_factory ? 503 : 502, PROXY_CLOSE_CONNECT_FAILED, NULL);
}

void h1__step_connect(struct hconn *c)
{
        struct xb *x = c->x;
        int r;

        if (c->s->err)
                return h1__close(c, PROXY_CLOSE_CLIENT_ERROR);
        if (h1__fill_in(c) < 0)
                return;
        r = exch_connect(&x->ex);
        if (r == 0)
                return; /* connecting */
        if (r < 0)
                return hc_no_backend(c);
        /* The body starts right after the head, on every attempt. */
        x->in_fill = x->in_off;
        h1__set_state(c, HC_PROXY);
}

/* ---- proxying ---- */

/* The pooled connection failed before answering: try once more on a new
 * connection to the same backend, if the request can be sent again. */
static bool hc_retry(struct hconn *c)
{
        if (!exch_retry(&c->x->ex))
                return false;
        h1__set_state(c, HC_CONNECT);
        return true;
}

/* The backend failed or misbehaved before the response head reached the
 * client: 502 (or a retry); afterwards the client connection just ends. */
static void hc_upstream_failed(struct hconn *c, enum proxy_close_reason reason)
{
        struct exch *ex = &c->x->ex;

        if (hc_retry(c))
                return;
        if (!ex->resp_head && !ex->interim && !ex->upgrade)
                return h1__respond(c, 502, reason, NULL);
        h1__close(c, reason);
}

static void hc_tunnel_start(struct hconn *c)
{
        struct xb *x = c->x;
        struct exch *ex = &x->ex;

        /* The upgrade request and the 101 count as one request; the bytes
         * that follow are added to the route's byte counters as they flow. */
        h1__account(c);
        h1__access_tunnel_start(c);
        relay_init(&x->relay, c->s, ex->up->s, NULL, 0, c->route->counters,
                   /* half_close= */ false);
        /* Whatever followed the 101 head from the backend, and whatever the
         * client sent after its request, is tunnel payload; the block's
         * buffers stay the tunnel's. */
        relay_own_buffer(&x->relay, RELAY_UP, x->in, hc_ctx(c)->in_cap, x->in_off, x->in_len);
        relay_own_buffer(&x->relay, RELAY_DOWN, ex->uin, ex->ucap, ex->uoff, ex->ulen);
        h1__set_state(c, HC_TUNNEL);
}

/* A complete response head of @len bytes is in the exchange's buffer.
 * Returns true if the state changed (the caller returns). */
static bool hc_resp_head(struct hconn *c, int len)
{
        struct h1_ctx *ctx = hc_ctx(c);
        struct xb *x = c->x;
        struct exch *ex = &x->ex;
        struct proxy_h1_resp *resp = &ex->resp;
        struct proxy_h1_resp_opts o;
        enum proxy_h1_body body;
        int r;

        if (proxy_h1_resp_analyze(resp, ex->uin, x->e.head_req) < 0) {
                hc_upstream_failed(c, PROXY_CLOSE_BAD_RESPONSE);
                return true;
        }
        o = (struct proxy_h1_resp_opts){.client_http10 = x->e.client10};
        if (resp->status < 200 && resp->status != 101) {
                /* Interim (100 Continue, 103 Early Hints): passed on to a
                 * 1.1 client, dropped for a 1.0 one. */
                if (!x->e.client10) {
                        r = proxy_h1_resp_serialize(resp, ex->uin, &o, x->cout, ctx->cout_cap,
                                                    &body);
                        if (r < 0) {
                                hc_upstream_failed(c, PROXY_CLOSE_BAD_RESPONSE);
                                return true;
                        }
                        iovq_add(&x->cq, x->cout, (size_t)r);
                }
                ex->interim = true;
                (void)exch_resp_head_taken(ex, len, false, PROXY_H1_BODY_NONE, &x->cq);
                return false;
        }
        if (resp->status == 101) {
                if (!x->e.websocket) {
                        hc_upstream_failed(c, PROXY_CLOSE_BAD_RESPONSE);
                        return true;
                }
                r = proxy_h1_resp_serialize(resp, ex->uin, &o, x->cout, ctx->cout_cap, &body);
                if (r < 0) {
                        hc_upstream_failed(c, PROXY_CLOSE_BAD_RESPONSE);
                        return true;
                }
                x->e.status = 101;
                if (x->e.start_ns)
                        x->e.up_head_ns = proxy_access_clock(ctx->w);
                ex->upgrade = true;
                iovq_add(&x->cq, x->cout, (size_t)r);
                (void)exch_resp_head_taken(ex, len, false, PROXY_H1_BODY_NONE, &x->cq);
                return false;
        }

        /* The client connection stays only if its request was read entirely
         * (otherwise we cannot know where the next one starts). */
        o.keep_alive = x->req.h.keep_alive && ex->reqp.done && !c->s->eof && !ctx->w->stopping;
        r = proxy_h1_resp_serialize(resp, ex->uin, &o, x->cout, ctx->cout_cap, &body);
        if (r < 0) {
                hc_upstream_failed(c, PROXY_CLOSE_BAD_RESPONSE);
                return true;
        }
        x->e.status = resp->status;
        if (x->e.start_ns)
                x->e.up_head_ns = proxy_access_clock(ctx->w);
        x->e.keep_alive = o.keep_alive && body != PROXY_H1_BODY_CLOSE;
        iovq_add(&x->cq, x->cout, (size_t)r);
        if (exch_resp_head_taken(ex, len, true, body, &x->cq) < 0) {
                h1__close(c, PROXY_CLOSE_BAD_RESPONSE);
                return true;
        }
        return false;
}

/* The response direction of PROXY. Returns true if the state changed. */
static bool hc_pump_response(struct hconn *c, bool *moved)
{
        struct xb *x = c->x;
        struct exch *ex = &x->ex;
        struct upstream *u;
        int r;

        if (x->cq.left > 0) {
                r = h1__flush(c, &x->cq, &x->e.resp_bytes);
                if (r < 0) {
                        c->s->err = r;
                        h1__close(c, PROXY_CLOSE_CLIENT_ERROR);
                        return true;
                }
                if (x->cq.left > 0)
                        goto read;
                *moved = true;
        }
        if (ex->uoff != ex->ufill || ex->upgrade || ex->interim) {
                /* Everything queued was written: release it. */
                exch_resp_release(ex);
                if (ex->upgrade) {
                        hc_tunnel_start(c);
                        return true;
                }
                if (ex->interim)
                        exch_resp_next_head(ex);
        }
        if (!ex->resp_head) {
                if (ex->ulen > 0 && !ex->interim && !ex->upgrade) {
                        r = exch_resp_parse(ex);
                        if (r >= 0) {
                                *moved = true;
                                return hc_resp_head(c, r);
                        }
                        if (r != -EAGAIN) {
                                hc_upstream_failed(c, PROXY_CLOSE_BAD_RESPONSE);
                                return true;
                        }
                }
        } else if (x->cq.left == 0) {
                if (exch_resp_body(ex, &x->cq) < 0) {
                        h1__close(c, PROXY_CLOSE_BAD_RESPONSE);
                        return true;
                }
                if (x->cq.left > 0) {
                        *moved = true;
                } else if (h1_pump_finished(&ex->respp)) {
                        x->e.resp_done = true;
                        return false;
                }
        }

read:
        r = exch_recv(ex, x->cq.left == 0);
        if (r == -EMSGSIZE) {
                hc_upstream_failed(c, PROXY_CLOSE_BAD_RESPONSE);
                return true;
        }
        if (r > 0)
                *moved = true;
        u = ex->up;
        if (u && u->s->err) {
                hc_upstream_failed(c, PROXY_CLOSE_UPSTREAM_ERROR);
                return true;
        }
        if (u && u->s->eof) {
                if (!ex->resp_head && !ex->interim && !ex->upgrade && ex->ulen == ex->uoff) {
                        if (!ex->resp_any && hc_retry(c))
                                return true;
                        hc_upstream_failed(c, PROXY_CLOSE_UPSTREAM_ERROR);
                        return true;
                }
                if (!ex->resp_head && ex->ulen > 0 && !ex->interim && !ex->upgrade) {
                        /* A head cut short. */
                        if (exch_resp_parse(ex) == -EAGAIN) {
                                hc_upstream_failed(c, PROXY_CLOSE_BAD_RESPONSE);
                                return true;
                        }
                }
                /* The body cut short (a trailer section the pump holds
                 * will not be completed either). */
                if (ex->resp_head && !ex->respp.done && ex->respp.src != PROXY_H1_BODY_CLOSE &&
                    ex->ulen - ex->uoff == h1_pump_held(&ex->respp) && x->cq.left == 0) {
                        h1__close(c, PROXY_CLOSE_BAD_RESPONSE);
                        return true;
                }
        }
        return false;
}

void h1__step_proxy(struct hconn *c)
{
        struct xb *x = c->x;
        struct exch *ex = &x->ex;
        int r;

        if (c->ev_timeout || ex->ev_timeout) {
                bool client = c->ev_timeout;

                c->ev_timeout = ex->ev_timeout = false;
                if (client && c->tq == PROXY_TQ_BODY)
                        /* Below body_min_rate: nothing of the answer went
                         * out yet (interim aside), so it can say why. */
                        return ex->interim ? h1__close(c, PROXY_CLOSE_BODY_TOO_SLOW)
                                           : h1__respond(c, 408, PROXY_CLOSE_BODY_TOO_SLOW, NULL);
                if (client && c->tq == PROXY_TQ_SEND)
                        return h1__close(c, PROXY_CLOSE_SEND_TOO_SLOW);
                if (ex->resp_head || ex->interim || ex->upgrade)
                        return h1__close(c, PROXY_CLOSE_IDLE_TIMEOUT);
                if (!ex->reqp.done)
                        return h1__respond(c, 408, PROXY_CLOSE_REQUEST_TIMEOUT, NULL);
                return h1__respond(c, 504, PROXY_CLOSE_UPSTREAM_ERROR, NULL);
        }
        if (c->s->err)
                return h1__close(c, PROXY_CLOSE_CLIENT_ERROR);
        assert(ex->up);

        for (;;) {
                bool moved = false;

                /* Client -> backend: the head, then the body. Body bytes are
                 * appended to the queue while it has room; the buffer region
                 * they come from is released once the queue is written. */
                if (!ex->req_sent_all) {
                        uint32_t pos = x->in_fill;

                        r = exch_req_fill(ex, x->in, &pos, x->in_len, false);
                        if (r < 0) {
                                if (!ex->resp_head && !ex->interim && !ex->upgrade &&
                                    x->cq.left == 0)
                                        return h1__bad_request(c, 400);
                                return h1__close(c, PROXY_CLOSE_BAD_REQUEST);
                        }
                        x->e.req_bytes += pos - x->in_fill;
                        x->in_fill = pos;
                        if (ex->uq.left > 0) {
                                r = exch_req_flush(ex);
                                if (r < 0)
                                        return hc_upstream_failed(c, PROXY_CLOSE_UPSTREAM_ERROR);
                                if (ex->uq.left == 0)
                                        moved = true;
                        } else {
                                (void)exch_req_flush(ex);
                        }
                        if (ex->uq.left == 0) {
                                x->in_off = x->in_fill;
                                if (x->in_off == x->in_len)
                                        x->in_off = x->in_len = x->in_fill = 0;
                        }
                }

                /* Request body, or pipelined requests, while there is room. */
                if (!c->s->eof && h1__can_read(c)) {
                        uint32_t before = x->in_len;

                        if (h1__fill_in(c) < 0)
                                return;
                        if (x->in_len != before || c->s->eof)
                                moved = true;
                }
                /* The client gave up in the middle of its request (its EOF
                 * may have come while a backend was being connected): once
                 * what it sent is queued, nothing will complete the body. */
                if (c->s->eof && !ex->reqp.done && x->in_fill == x->in_len)
                        return h1__close(c, PROXY_CLOSE_CLIENT_EOF);

                /* Backend -> client. */
                if (!x->e.resp_done && hc_pump_response(c, &moved))
                        return;
                if (x->e.resp_done) {
                        if (!ex->req_sent_all) {
                                /* The backend answered before it took the
                                 * whole request: that connection cannot be
                                 * reused (exch_end), and what was queued for
                                 * it is dropped. */
                                iovq_reset(&ex->uq);
                                x->in_off = x->in_fill;
                        }
                        return hc_exchange_end(c);
                }
                if (!moved)
                        return;
        }
}

/* The response is complete: count it, give the backend connection back and
 * wait for the next request (or end the connection). */
static void hc_exchange_end(struct hconn *c)
{
        struct h1_ctx *ctx = hc_ctx(c);
        struct xb *x = c->x;

        h1__account(c);
        /* The line before the block's buffers move on; whether the client
         * connection ends with it as the branches below decide. */
        h1__access_log(c, c->s->eof || ctx->w->stopping || !x->e.keep_alive,
                       !c->s->eof && ctx->w->stopping ? PROXY_CLOSE_STOP
                                                      : PROXY_CLOSE_KEEPALIVE_DONE);
        exch_end(&x->ex);
        if (c->s->eof)
                return h1__close(c, PROXY_CLOSE_KEEPALIVE_DONE);
        if (ctx->w->stopping)
                /* The answer is written; nothing more is read, and waiting
                 * for the client's EOF would hold up the stop. */
                return h1__close(c, PROXY_CLOSE_STOP);
        if (!x->e.keep_alive) {
                /* The client asked for the close itself and everything it
                 * sent was read and forwarded: no unread bytes can turn the
                 * answer into a reset, so close at once (as nginx does)
                 * instead of a half-close and a wait for its EOF — that costs
                 * a shutdown, a read and two poll changes per connection. */
                if (!x->req.h.keep_alive && x->ex.req_sent_all && x->in_off == x->in_len &&
                    !h1__tls_buffered(c))
                        return h1__close(c, PROXY_CLOSE_KEEPALIVE_DONE);
                return h1__linger(c, PROXY_CLOSE_KEEPALIVE_DONE);
        }
        if (x->in_off < x->in_len || h1__tls_buffered(c)) {
                h1__set_state(c, HC_HEAD);
                h1__begin_request(c);
                return;
        }
        h1__release_block(c);
        h1__set_state(c, HC_IDLE);
}

void h1__step_tunnel(struct hconn *c)
{
        struct xb *x = c->x;
        bool progress = false;
        int r;

        if (c->ev_timeout)
                return h1__close(c, PROXY_CLOSE_IDLE_TIMEOUT);
        if (c->s->err)
                return h1__close(c, PROXY_CLOSE_CLIENT_ERROR);
        if (x->ex.up->s->err)
                return h1__close(c, PROXY_CLOSE_UPSTREAM_ERROR);
        r = relay_step(&x->relay, &progress);
        if (progress)
                c->progress = true;
        if (r == -ENOMEM)
                return h1__close(c, PROXY_CLOSE_NOMEM);
        if (r < 0)
                return h1__close(c, x->relay.err_side ? PROXY_CLOSE_UPSTREAM_ERROR
                                                      : PROXY_CLOSE_CLIENT_ERROR);
        if (r > 0)
                h1__close(c, PROXY_CLOSE_DONE);
}

/* Whether the backend socket should be read. */
bool h1__up_want_read(const struct hconn *c)
{
        const struct xb *x = c->x;
        const struct exch *ex = &x->ex;

        switch (c->state) {
        case HC_PROXY:
                return ex->ulen < ex->ucap && !(ex->resp_head && ex->respp.done);
        default:
                return false;
        }
}
