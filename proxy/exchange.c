/* SPDX-License-Identifier: Apache-2.0 */
#include "proxy/exchange.h"

#include <errno.h>
#include <string.h>

#include "common/log.h"
#include "common/macros.h"
#include "proxy/health.h"
#include "proxy/routes.h"
#include "proxy/upstream.h"

static void stat_add(atomic_uint_least64_t *a)
{
        atomic_fetch_add_explicit(a, 1, memory_order_relaxed);
}

/* The backend socket's events (its handler while attached). */
static void on_up_event(struct sock *s, unsigned events)
{
        struct exch *x = s->data;

        if (events & EV_TIMEOUT)
                x->ev_timeout = true;
        x->ops->wake(x->owner);
}

void exch_init(struct exch *x, const struct exch_env *env, const struct exch_ops *ops, void *owner,
               uint8_t *uin, uint32_t ucap, struct proxy_h1_header *resp_hdrs, unsigned max_headers)
{
        *x = (struct exch){.env = env,
                           .ops = ops,
                           .owner = owner,
                           .uin = uin,
                           .ucap = ucap,
                           .resp_hdrs = resp_hdrs,
                           .max_headers = max_headers};
}

void exch_begin(struct exch *x, struct proxy_route *route, uint16_t port, const uint8_t *head,
                uint32_t head_len, enum proxy_h1_body body, uint64_t content_length, bool head_req)
{
        x->route = route;
        x->up = NULL;
        x->head = head;
        x->head_len = head_len;
        h1_pump_init(&x->reqp, body, body, content_length, x->env->limits);
        iovq_reset(&x->uq);
        x->uoff = x->ulen = x->ufill = 0;
        proxy_h1_resp_init(&x->resp, x->env->limits, x->resp_hdrs, x->max_headers);
        x->first_backend = atomic_fetch_add_explicit(&route->rr_next, 1, memory_order_relaxed);
        x->attempt = 0;
        x->be = NULL;
        x->dial_port = port;
        x->head_req = head_req;
        x->idempotent = x->all_down = false;
        x->req_sent_all = x->resp_any = x->resp_head = x->interim = x->upgrade = false;
        x->retried = x->no_pool = x->ev_timeout = x->progress = false;
        x->all_factory = true;
}

/* @u carries this exchange from now on: the head goes first. */
static void exch_attach(struct exch *x, struct upstream *u)
{
        sock_set_cb(u->s, on_up_event, x);
        x->up = u;
        if (u->route != x->route) {
                proxy_route_unref(u->route);
                u->route = proxy_route_ref(x->route);
        }
        iovq_reset(&x->uq);
        iovq_add(&x->uq, x->head, x->head_len);
        x->resp_any = false;
        x->uoff = x->ulen = x->ufill = 0;
        proxy_h1_resp_init(&x->resp, x->env->limits, x->resp_hdrs, x->max_headers);
}

int exch_connect(struct exch *x)
{
        const struct exch_env *env = x->env;
        struct proxy_route *route = x->route;
        struct upstream *u = x->up;
        bool factory_failed;
        int r;

        if (u) {
                int soerr;

                if (x->ev_timeout) {
                        x->ev_timeout = false;
                        soerr = ETIMEDOUT;
                } else if (!u->s->connect_event && !u->s->err) {
                        return 0; /* still connecting */
                } else if (u->s->err) {
                        soerr = -u->s->err;
                } else {
                        soerr = -sock_connect_result(u->s);
                }
                if (soerr == 0) {
                        stat_add(env->st_connects);
                        sock_deadline(u->s, EV_TQ_NONE);
                        return 1;
                }
                log_debug("proxy: exchange %p: backend connect: %s", (void *)x, strerror(soerr));
                stat_add(env->st_connect_errors);
                x->all_factory = false;
                upstream_close(TAKE_PTR(x->up));
                if (!x->dial_port)
                        proxy_health_report(env->health, route, x->cur,
                                            soerr == ETIMEDOUT ? PROXY_BACKEND_FAIL_TIMEOUT
                                                               : PROXY_BACKEND_FAIL_CONNECT,
                                            soerr);
        }
        x->ev_timeout = false;

        while (x->attempt < route->n_backends) {
                const struct proxy_backend *be;
                struct upstream_key k;

                x->cur = (x->first_backend + x->attempt) % route->n_backends;
                be = &route->backends[x->cur];
                x->attempt++;
                /* Only healthy backends while there is one. */
                if (!x->dial_port && proxy_backend_down(be)) {
                        proxy_health_adopt(env->health, route, x->cur);
                        continue;
                }
                x->be = be;
                upstream_key_of(&k, (const struct sockaddr *)&be->addr, x->dial_port);
                if (!x->no_pool) {
                        u = upstream_take(env->pool, &k, route->netns);
                        if (u) {
                                stat_add(env->st_reused);
                                exch_attach(x, u);
                                return 1;
                        }
                }
                x->no_pool = false;
                r = upstream_dial(env->pool, route, &k, true, on_up_event, x, &u, &factory_failed);
                if (r < 0) {
                        log_debug("proxy: exchange %p: backend %s: %s", (void *)x, be->text,
                                  strerror(-r));
                        stat_add(env->st_connect_errors);
                        if (!factory_failed) {
                                x->all_factory = false;
                                if (!x->dial_port)
                                        proxy_health_report(env->health, route, x->cur,
                                                            PROXY_BACKEND_FAIL_CONNECT, -r);
                        }
                        continue;
                }
                x->all_factory = false;
                exch_attach(x, u);
                if (!u->s->connecting) {
                        stat_add(env->st_connects);
                        return 1;
                }
                /* Each attempt gets the whole connect timeout. */
                sock_deadline(u->s, env->tq_connect);
                return 0; /* wait for EV_WRITE */
        }
        x->all_down = !x->dial_port && proxy_route_all_down(route);
        if (x->all_down)
                x->all_factory = false;
        return -EHOSTUNREACH;
}

bool exch_retry(struct exch *x)
{
        struct upstream *u = x->up;

        if (!u || x->resp_any)
                return false;
        if (!u->reused) {
                int err = u->s->err ? -u->s->err : 0;

                /* A new connection: the backend failed (a stale pooled one
                 * says nothing about it). */
                if (!x->dial_port)
                        proxy_health_report(x->env->health, x->route, x->cur,
                                            PROXY_BACKEND_FAIL_RESET, err);
                if (!x->idempotent || x->reqp.src != PROXY_H1_BODY_NONE)
                        return false;
                log_debug("proxy: exchange %p: new connection failed, next backend", (void *)x);
                upstream_close(TAKE_PTR(x->up));
                x->no_pool = false;
                x->req_sent_all = false;
                return true;
        }
        if (x->retried || x->reqp.src != PROXY_H1_BODY_NONE)
                return false;
        log_debug("proxy: exchange %p: pooled connection failed, retrying once", (void *)x);
        upstream_close(TAKE_PTR(x->up));
        x->retried = true;
        x->no_pool = true;
        x->attempt--;
        x->req_sent_all = false;
        return true;
}

int exch_req_flush(struct exch *x)
{
        int r;

        if (x->uq.left > 0) {
                r = sock_write(x->up->s, &x->uq, NULL);
                if (r < 0)
                        return r;
                if (x->uq.left == 0)
                        x->progress = true;
        }
        if (x->uq.left == 0 && h1_pump_finished(&x->reqp))
                x->req_sent_all = true;
        return 0;
}

int exch_recv(struct exch *x, bool compact)
{
        struct upstream *u = x->up;
        ssize_t k;

        if (!u || u->s->eof || !u->s->rd_ready || (x->resp_head && x->respp.done))
                return 0;
        if (x->ulen == x->ucap && x->uoff > 0 && compact) {
                memmove(x->uin, x->uin + x->uoff, x->ulen - x->uoff);
                x->ulen -= x->uoff;
                x->uoff = x->ufill = 0;
        }
        if (x->ulen == x->ucap) {
                /* Cannot happen: the parser refuses a head of max_head. */
                if (!x->resp_head && !x->interim && !x->upgrade)
                        return -EMSGSIZE;
                return 0;
        }
        k = sock_read(u->s, x->uin + x->ulen, x->ucap - x->ulen);
        if (k > 0) {
                x->ulen += (uint32_t)k;
                x->resp_any = true;
                x->progress = true;
                return 1;
        }
        return k == 0 ? 1 : 0;
}

int exch_resp_head_taken(struct exch *x, int len, bool final, enum proxy_h1_body dst,
                         struct iovq *q)
{
        uint32_t pos = (uint32_t)len;
        int r;

        /* The head's bytes stay until the owner's queue is written. */
        x->uoff = 0;
        if (!final) {
                x->ufill = pos;
                return 0;
        }
        x->resp_head = true;
        h1_pump_init(&x->respp, x->resp.h.body, dst, x->resp.h.content_length, x->env->limits);
        /* Response trailers are passed on (a chunked client response, an
         * HTTP/2 stream): the section waits in @uin until complete, which
         * its limit (max_head) lets it do: ucap is larger. */
        h1_pump_keep_trailers(&x->respp);
        /* The body bytes that came with the head go out in the same write. */
        r = h1_pump_fill(&x->respp, x->uin, &pos, x->ulen, x->up && x->up->s->eof, q);
        x->ufill = pos;
        return r;
}

void exch_resp_next_head(struct exch *x)
{
        x->interim = false;
        memmove(x->uin, x->uin + x->uoff, x->ulen - x->uoff);
        x->ulen -= x->uoff;
        x->uoff = x->ufill = 0;
        proxy_h1_resp_init(&x->resp, x->env->limits, x->resp_hdrs, x->max_headers);
}

int exch_resp_body(struct exch *x, struct iovq *q)
{
        uint32_t pos;
        int r;

        if (x->uoff == x->ulen)
                x->uoff = x->ulen = x->ufill = 0;
        pos = x->uoff;
        r = h1_pump_fill(&x->respp, x->uin, &pos, x->ulen, x->up && x->up->s->eof, q);
        x->ufill = pos;
        /* Only framing consumed (a CRLF, part of a size line): nothing of it
         * is queued, so release it now. Left in [uoff, ufill), a compaction
         * before the owner's next release would move it to the front and
         * the decoder, which already took it, would see it twice. */
        if (q->left == 0)
                exch_resp_release(x);
        return r;
}

void exch_end(struct exch *x)
{
        struct upstream *u = TAKE_PTR(x->up);
        bool reusable;

        if (!u)
                return;
        /* Used to the end: the whole request went out, the response framing
         * ended it (not the close) and nothing more came. */
        reusable = x->req_sent_all && x->resp.h.keep_alive && x->uoff == x->ulen && !u->s->eof &&
                   !u->s->err && x->respp.src != PROXY_H1_BODY_CLOSE;
        upstream_release(u, reusable);
}

void exch_abort(struct exch *x)
{
        upstream_close(TAKE_PTR(x->up));
}

int exch_poll(struct exch *x, bool read)
{
        struct upstream *u = x->up;
        unsigned tq = EV_TQ_NONE;

        if (!u)
                return 0;
        if (u->s->connecting)
                tq = x->env->tq_connect;
        else if (x->req_sent_all && !x->resp_head && !x->interim && !x->upgrade)
                /* From the moment the request is out; not renewed by
                 * progress (interim heads stop it). */
                tq = x->env->tq_upstream;
        if (u->s->h.tq != tq)
                sock_deadline(u->s, tq);
        return sock_want(u->s, read && !u->s->connecting && !u->s->eof && !u->s->err);
}
