/* SPDX-License-Identifier: Apache-2.0 */
/* The HTTPS client: requests, the queue, keep-alive pools per origin,
 * deadlines, the one retry of a request that a pooled connection lost.
 * Connections are acme/http-conn.c's; messages acme/http-msg.c's. */
#include "acme/http.h"

#include <assert.h>
#include <errno.h>
#include <netdb.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <openssl/ssl.h>
#include <uv.h>

#include "acme/http-internal.h"
#include "common/list.h"
#include "common/log.h"
#include "common/macros.h"
#include "gw-version.h"

#define DEFAULT_CONNECT_TIMEOUT_MS 10000u
#define DEFAULT_TIMEOUT_MS         30000u
#define DEFAULT_IDLE_TIMEOUT_MS    30000u
#define DEFAULT_MAX_BODY           (1u << 20)
#define DEFAULT_MAX_PER_ORIGIN     4u
#define DEFAULT_MAX_CONNS          16u
#define DEFAULT_MAX_QUEUED         256u

struct origin {
        struct origin *prev, *next; /* in acme_http.origins */
        struct acme_http *h;
        char *host;
        bool ip;
        uint16_t port;
        struct acme_http_conn *conns; /* every connection, whatever its state */
        unsigned n_conns;
        unsigned n_reqs; /* requests that refer to it */
};

enum req_state {
        REQ_QUEUED,     /* in the queue, waiting for a connection */
        REQ_CONNECTING, /* a connection is being opened for it */
        REQ_ACTIVE,     /* on a connection: written, response awaited */
        REQ_DONE,       /* result kept, the callback runs from the timer */
        REQ_DELIVERING, /* in its callback */
        REQ_CLOSED,     /* timer closing; freed by its close callback */
};

struct acme_http_req {
        struct acme_http_req *prev, *next;   /* in acme_http.reqs until delivered */
        struct acme_http_req *qprev, *qnext; /* in the queue while QUEUED */
        struct acme_http *h;
        struct origin *o; /* until DONE */
        enum req_state st;
        acme_http_cb *cb;
        void *ud;
        char *url;  /* the base for relative Link URLs */
        char *wire; /* head and body, resent as is on the retry */
        size_t wire_len;
        bool head_request;
        bool retried; /* the one retry on a fresh connection was used */
        bool fresh;   /* do not take an idle connection */
        struct acme_http_conn *conn;
        uv_timer_t timer; /* the whole-request deadline, then the delivery */
        int result;
        struct acme_http_result res;
};

struct acme_http {
        struct acme_http_env env;
        char *user_agent;
        uint64_t timeout_ms, idle_timeout_ms;
        size_t max_body;
        unsigned max_per_origin, max_conns, max_queued;
        struct origin *origins;
        struct acme_http_req *reqs; /* not yet delivered nor cancelled */
        struct acme_http_req *q_head, *q_tail;
        unsigned n_queued;
        unsigned n_conns;
        bool freeing;
};

/* ================================================================
 * Queue, origins, connections
 * ================================================================ */

static void q_remove(struct acme_http *h, struct acme_http_req *q)
{
        assert(q->st == REQ_QUEUED);
        if (q->qprev)
                q->qprev->qnext = q->qnext;
        else
                h->q_head = q->qnext;
        if (q->qnext)
                q->qnext->qprev = q->qprev;
        else
                h->q_tail = q->qprev;
        q->qprev = q->qnext = NULL;
        h->n_queued--;
}

static void q_add(struct acme_http *h, struct acme_http_req *q, bool front)
{
        q->st = REQ_QUEUED;
        if (front) {
                q->qprev = NULL;
                q->qnext = h->q_head;
                if (h->q_head)
                        h->q_head->qprev = q;
                else
                        h->q_tail = q;
                h->q_head = q;
        } else {
                q->qnext = NULL;
                q->qprev = h->q_tail;
                if (h->q_tail)
                        h->q_tail->qnext = q;
                else
                        h->q_head = q;
                h->q_tail = q;
        }
        h->n_queued++;
}

static void origin_put(struct origin *o)
{
        if (!o || o->n_conns > 0 || o->n_reqs > 0)
                return;
        LIST_REMOVE(o->h->origins, o);
        free(o->host);
        free(o);
}

static int origin_get(struct acme_http *h, const struct acme_url *u, struct origin **ret)
{
        struct origin *o;

        for (o = h->origins; o; o = o->next)
                if (o->port == u->port && streq(o->host, u->host))
                        break;
        if (!o) {
                o = calloc(1, sizeof(*o));
                if (!o)
                        return -ENOMEM;
                o->host = strdup(u->host);
                if (!o->host) {
                        free(o);
                        return -ENOMEM;
                }
                o->h = h;
                o->ip = u->ip;
                o->port = u->port;
                LIST_PREPEND(h->origins, o);
        }
        *ret = o;
        return 0;
}

/* Close @c and forget it. */
static void conn_drop(struct acme_http_conn *c)
{
        struct origin *o = c->owner;

        LIST_REMOVE(o->conns, c);
        o->n_conns--;
        o->h->n_conns--;
        c->req = NULL;
        acme_http__conn_close(c);
        origin_put(o);
}

/* The idle connection of @o used last (@newest) or first. */
static struct acme_http_conn *origin_idle(struct origin *o, bool newest)
{
        struct acme_http_conn *best = NULL;

        for (struct acme_http_conn *c = o->conns; c; c = c->next)
                if (c->st == ACME_HTTP_CONN_IDLE &&
                    (!best || (newest ? c->idle_since > best->idle_since
                                      : c->idle_since < best->idle_since)))
                        best = c;
        return best;
}

static struct acme_http_conn *oldest_idle(struct acme_http *h)
{
        struct acme_http_conn *best = NULL;

        for (struct origin *o = h->origins; o; o = o->next) {
                struct acme_http_conn *c = origin_idle(o, false);

                if (c && (!best || c->idle_since < best->idle_since))
                        best = c;
        }
        return best;
}

/* ================================================================
 * Requests
 * ================================================================ */

static void maybe_release(struct acme_http_env *env)
{
        struct acme_http *h = container_of(env, struct acme_http, env);

        if (!h->freeing || env->live > 0)
                return;
        free(h->user_agent);
        free(h);
}

static void on_req_closed(uv_handle_t *hd)
{
        struct acme_http_req *q = container_of((uv_timer_t *)hd, struct acme_http_req, timer);
        struct acme_http *h = q->h;

        acme_http__result_done(&q->res);
        free(q->url);
        free(q->wire);
        free(q);
        h->env.live--;
        maybe_release(&h->env);
}

/* Forget @q (no callback) and release it. */
static void req_close(struct acme_http_req *q)
{
        struct acme_http_conn *c = q->conn;

        switch (q->st) {
        case REQ_QUEUED:
                q_remove(q->h, q);
                break;
        case REQ_CONNECTING:
        case REQ_ACTIVE:
                /* Mid-exchange (or never used): the connection goes too. */
                q->conn = NULL;
                conn_drop(c);
                break;
        case REQ_DONE:
        case REQ_DELIVERING:
                break;
        case REQ_CLOSED:
                return;
        }
        if (q->o) {
                q->o->n_reqs--;
                origin_put(TAKE_PTR(q->o));
        }
        if (q->st != REQ_DELIVERING)
                LIST_REMOVE(q->h->reqs, q);
        q->st = REQ_CLOSED;
        uv_close((uv_handle_t *)&q->timer, on_req_closed);
}

static void on_deliver(uv_timer_t *t)
{
        struct acme_http_req *q = container_of(t, struct acme_http_req, timer);

        assert(q->st == REQ_DONE);
        LIST_REMOVE(q->h->reqs, q);
        q->st = REQ_DELIVERING;
        q->cb(q->ud, q->result, q->result < 0 ? NULL : &q->res.resp);
        req_close(q);
}

/* The request's outcome is known: detach it and call back from the loop,
 * so no callback runs inside a function of ours that the caller called. */
static void req_finish(struct acme_http_req *q, int r)
{
        q->result = r;
        q->conn = NULL;
        if (q->o) {
                q->o->n_reqs--;
                origin_put(TAKE_PTR(q->o));
        }
        q->st = REQ_DONE;
        (void)uv_timer_start(&q->timer, on_deliver, 0, 0);
}

static void req_send(struct acme_http_req *q, struct acme_http_conn *c)
{
        q->st = REQ_ACTIVE;
        q->conn = c;
        c->req = q;
        acme_http__conn_send(c, q->wire, q->wire_len, q->head_request, q->h->max_body);
}

/* Start every queued request that can start, in order: on an idle
 * connection of its origin, else on a new one while the origin and the
 * client have room (an idle connection of another origin is closed to make
 * room). Afterwards every queued request is blocked. Never calls back. */
static void dispatch(struct acme_http *h)
{
        struct acme_http_req *q, *next;

        for (q = h->q_head; q; q = next) {
                struct origin *o = q->o;
                struct acme_http_conn *c;
                int r;

                next = q->qnext;
                c = q->fresh ? NULL : origin_idle(o, true);
                if (c) {
                        q_remove(h, q);
                        req_send(q, c);
                        continue;
                }
                if (o->n_conns >= h->max_per_origin) {
                        /* A retry wants a new connection: replace an idle one. */
                        c = q->fresh ? origin_idle(o, false) : NULL;
                        if (!c)
                                continue;
                        conn_drop(c);
                }
                if (h->n_conns >= h->max_conns) {
                        c = oldest_idle(h);
                        if (!c)
                                continue;
                        conn_drop(c);
                }
                q_remove(h, q);
                r = acme_http__conn_new(&h->env, o->host, o->ip, o->port, &c);
                if (r < 0) {
                        req_finish(q, r);
                        continue;
                }
                c->owner = o;
                LIST_PREPEND(o->conns, c);
                o->n_conns++;
                h->n_conns++;
                q->st = REQ_CONNECTING;
                q->conn = c;
                c->req = q;
        }
}

static void on_req_deadline(uv_timer_t *t)
{
        struct acme_http_req *q = container_of(t, struct acme_http_req, timer);
        struct acme_http *h = q->h;
        struct acme_http_conn *c = q->conn;

        if (q->st == REQ_QUEUED) {
                q_remove(h, q);
        } else if (c) {
                q->conn = NULL;
                conn_drop(c);
        }
        req_finish(q, -ETIMEDOUT);
        dispatch(h);
}

static void on_conn_event(struct acme_http_conn *c, enum acme_http_conn_event ev, int r)
{
        struct origin *o = c->owner;
        struct acme_http *h = o->h;
        struct acme_http_req *q = c->req;

        switch (ev) {
        case ACME_HTTP_CONN_EV_READY:
                assert(q && q->st == REQ_CONNECTING);
                req_send(q, c);
                return;
        case ACME_HTTP_CONN_EV_RESPONSE:
                assert(q && q->st == REQ_ACTIVE);
                c->req = NULL;
                r = acme_http__rd_take(&c->rd, q->url, &q->res);
                if (r >= 0 && acme_http__rd_keep_alive(&c->rd)) {
                        c->idle_since = uv_now(h->env.loop);
                        acme_http__conn_idle(c, h->idle_timeout_ms);
                } else {
                        conn_drop(c);
                }
                req_finish(q, r);
                break;
        case ACME_HTTP_CONN_EV_FAILED:
                /* A reused connection that failed before any byte of the
                 * response: most likely the server closed it while idle,
                 * crossing our request. Resend once on a new connection.
                 * POSTs too: a resent JWS carries the same nonce, which the
                 * server either never saw (the request works) or already
                 * consumed (badNonce, which the protocol client retries
                 * with a fresh nonce), so nothing is done twice. */
                if (q && q->st == REQ_ACTIVE && !q->retried && c->n_responses > 0 &&
                    c->rd.received == 0) {
                        log_debug_errno(r, "acme-http %s: pooled connection lost (%m), retrying",
                                        q->url);
                        q->conn = NULL;
                        conn_drop(c);
                        q->retried = q->fresh = true;
                        q_add(h, q, /* front= */ true);
                } else {
                        conn_drop(c);
                        if (q)
                                req_finish(q, r);
                }
                break;
        }
        dispatch(h);
}

int acme_http_request(struct acme_http *h, const struct acme_http_request *req, acme_http_cb *cb,
                      void *ud, struct acme_http_req **ret)
{
        _cleanup_(acme_http__url_done) struct acme_url u = {};
        struct acme_http_req *q;
        struct origin *o;
        int r;

        if (!h || h->freeing || !req || !req->url || !cb)
                return -EINVAL;
        r = acme_http__url_parse(req->url, &u);
        if (r < 0)
                return r;
        q = calloc(1, sizeof(*q));
        if (!q)
                return -ENOMEM;
        q->url = strdup(req->url);
        r = q->url ? acme_http__request_build(req, &u, h->user_agent, &q->wire, &q->wire_len)
                   : -ENOMEM;
        if (r >= 0)
                r = origin_get(h, &u, &o);
        if (r < 0) {
                free(q->url);
                free(q->wire);
                free(q);
                return r;
        }
        q->h = h;
        q->o = o;
        o->n_reqs++;
        q->cb = cb;
        q->ud = ud;
        q->head_request = streq(req->method, "HEAD");
        (void)uv_timer_init(h->env.loop, &q->timer);
        h->env.live++;
        LIST_PREPEND(h->reqs, q);
        (void)uv_timer_start(&q->timer, on_req_deadline, h->timeout_ms, 0);

        q_add(h, q, /* front= */ false);
        dispatch(h);
        /* Queued only if it must wait; then the queue bound applies. */
        if (q->st == REQ_QUEUED && h->n_queued > h->max_queued) {
                req_close(q);
                return -EAGAIN;
        }
        if (ret)
                *ret = q;
        return 0;
}

void acme_http_cancel(struct acme_http_req *q)
{
        struct acme_http *h;

        /* From inside its own callback: nothing left to cancel. */
        if (!q || q->st == REQ_DELIVERING || q->st == REQ_CLOSED)
                return;
        h = q->h;
        req_close(q);
        dispatch(h);
}

/* ================================================================
 * The default resolver: uv_getaddrinfo()
 * ================================================================ */

struct gai {
        uv_getaddrinfo_t req;
        acme_resolve_done_cb *done;
        void *done_ud;
        bool cancelled;
};

static void on_gai(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
        struct gai *g = container_of(req, struct gai, req);
        char text[ACME_HTTP_MAX_ADDRS][INET6_ADDRSTRLEN];
        char *addrs[ACME_HTTP_MAX_ADDRS];
        size_t n = 0;

        if (!g->cancelled) {
                if (status < 0) {
                        g->done(g->done_ud, status == UV_EAI_MEMORY ? -ENOMEM : -ENOENT, NULL, 0);
                } else {
                        for (struct addrinfo *a = res; a && n < ACME_HTTP_MAX_ADDRS;
                             a = a->ai_next) {
                                if ((a->ai_family != AF_INET && a->ai_family != AF_INET6) ||
                                    uv_ip_name(a->ai_addr, text[n], sizeof(text[n])) < 0)
                                        continue;
                                addrs[n] = text[n];
                                n++;
                        }
                        g->done(g->done_ud, n ? 0 : -ENOENT, addrs, n);
                }
        }
        uv_freeaddrinfo(res);
        free(g);
}

int acme_http__resolve_default(void *resolve_ud, const char *host, acme_resolve_done_cb *done,
                               void *done_ud, void **ret_handle)
{
        const struct addrinfo hints = {
                .ai_family = AF_UNSPEC,
                .ai_socktype = SOCK_STREAM,
                .ai_protocol = IPPROTO_TCP,
        };
        struct gai *g;
        int r;

        g = calloc(1, sizeof(*g));
        if (!g)
                return -ENOMEM;
        g->done = done;
        g->done_ud = done_ud;
        r = uv_getaddrinfo(resolve_ud, &g->req, on_gai, host, NULL, &hints);
        if (r < 0) {
                free(g);
                return r == UV_EAI_MEMORY ? -ENOMEM : -ENOENT;
        }
        *ret_handle = g;
        return 0;
}

void acme_http__resolve_default_cancel(void *resolve_ud, void *handle)
{
        struct gai *g = handle;

        /* If the lookup already runs on the thread pool it cannot be
         * cancelled: its callback then frees it without calling back. */
        g->cancelled = true;
        (void)uv_cancel((uv_req_t *)&g->req);
}

/* ================================================================
 * The client
 * ================================================================ */

int acme_http_new(const struct acme_http_config *cfg, struct acme_http **ret, char **reterr)
{
        struct acme_http *h;
        int r;

        if (reterr)
                *reterr = NULL;
        if (!cfg || !cfg->loop || !ret || (cfg->resolve && !cfg->resolve_cancel))
                return -EINVAL;
        h = calloc(1, sizeof(*h));
        if (!h)
                return -ENOMEM;
        r = acme_http__tls_ctx_new(cfg, &h->env.ctx, reterr);
        if (r < 0) {
                free(h);
                return r;
        }
        h->user_agent = strdup(cfg->user_agent ? cfg->user_agent : "gatewayd/" GATEWAYD_VERSION);
        if (!h->user_agent) {
                SSL_CTX_free(h->env.ctx);
                free(h);
                return -ENOMEM;
        }
        h->env.loop = cfg->loop;
        h->env.resolve = cfg->resolve ? cfg->resolve : acme_http__resolve_default;
        h->env.resolve_cancel =
                cfg->resolve ? cfg->resolve_cancel : acme_http__resolve_default_cancel;
        h->env.resolve_ud = cfg->resolve ? cfg->resolve_ud : cfg->loop;
        h->env.connect_timeout_ms = cfg->connect_timeout_ms ?: DEFAULT_CONNECT_TIMEOUT_MS;
        h->env.on_event = on_conn_event;
        h->env.on_release = maybe_release;
        h->timeout_ms = cfg->timeout_ms ?: DEFAULT_TIMEOUT_MS;
        h->idle_timeout_ms = cfg->idle_timeout_ms ?: DEFAULT_IDLE_TIMEOUT_MS;
        h->max_body = cfg->max_body ?: DEFAULT_MAX_BODY;
        h->max_per_origin = cfg->max_conns_per_origin ?: DEFAULT_MAX_PER_ORIGIN;
        h->max_conns = cfg->max_conns ?: DEFAULT_MAX_CONNS;
        h->max_queued = cfg->max_queued ?: DEFAULT_MAX_QUEUED;
        *ret = h;
        return 0;
}

void acme_http_free(struct acme_http *h)
{
        if (!h || h->freeing)
                return;
        h->freeing = true;
        while (h->reqs)
                req_close(h->reqs);
        for (struct origin *o = h->origins, *next; o; o = next) {
                next = o->next;
                while (o->conns && o->conns->next)
                        conn_drop(o->conns);
                /* The last one frees the origin: nothing refers to it. */
                if (o->conns)
                        conn_drop(o->conns);
        }
        SSL_CTX_free(h->env.ctx);
        h->env.ctx = NULL;
        maybe_release(&h->env);
}

/* ================================================================
 * The ops the protocol client uses
 * ================================================================ */

static int ops_request(void *transport, const struct acme_http_request *req, acme_http_cb *cb,
                       void *ud, void **ret_handle)
{
        struct acme_http_req *q = NULL;
        int r = acme_http_request(transport, req, cb, ud, &q);

        if (r >= 0 && ret_handle)
                *ret_handle = q;
        return r;
}

static void ops_cancel(void *transport, void *handle)
{
        acme_http_cancel(handle);
}

const struct acme_http_ops *acme_http_ops_default(void)
{
        static const struct acme_http_ops ops = {
                .request = ops_request,
                .cancel = ops_cancel,
        };
        return &ops;
}
