/* SPDX-License-Identifier: Apache-2.0 */
#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <openssl/ssl.h>

#include "common/list.h"
#include "common/log.h"
#include "common/macros.h"
#include "proxy/ev.h"
#include "proxy/exchange.h"
#include "proxy/h1-body.h"
#include "proxy/h1-server.h"
#include "proxy/http1.h"
#include "proxy/relay.h"
#include "proxy/routes.h"
#include "proxy/sock.h"
#include "proxy/tls.h"
#include "proxy/upstream.h"
#include "proxy/worker.h"

/* Design notes (docs/internals/proxy.md has the long form):
 *
 *  - Sockets are raw non-blocking fds in an epoll set of the worker's own
 *    (proxy/ev.h), which the worker's libuv loop watches as one fd; all
 *    reads and writes are ours (recv/sendmsg, SSL_read/SSL_write through a
 *    BIO of our own). Not uv_poll_t: uv_poll_init() costs an epoll
 *    ADD+DEL probe and an ioctl, every uv_poll_start() a DEL and an ADD,
 *    and closing a DEL — five syscalls per connection before any I/O;
 *    here a connection costs one EPOLL_CTL_ADD, interest changes one MOD,
 *    and close() removes the fd. Read interest stays on while a side may
 *    be read; write interest is added only while a write would block.
 *  - A connection is one explicit state machine (enum hc_state, transition
 *    table hc_allowed); poll and timer callbacks only record the event and
 *    call hc_step().
 *  - Memory: an idle connection is a struct hconn (and for TLS its SSL);
 *    everything needed while a request is in flight (head buffers, body
 *    buffers, parsers, output queues) is one "exchange block" taken from a
 *    per-worker free list and given back when the connection goes idle.
 *  - Timeouts: no timer per connection. Every kind of deadline has a fixed
 *    duration, so a FIFO list per kind is sorted by deadline; one uv_timer
 *    per list fires for its head. Moving a connection between lists or to
 *    the tail of its list is O(1) and touches no timer. */

#define UIN_EXTRA       16384u /* response buffer beyond max_head */
#define LINGER_MAX      (256u * 1024u)
#define BLOCK_CACHE_MAX 16u
#define HOUT_SLACK      1024u /* forwarding fields we add to a request head */
#define COUT_SLACK      1024u /* our own fields (Location, framing) on a response head */
#define ACME_PREFIX     "/.well-known/acme-challenge/"
#define ACME_OUT_MAX    1024u

/* ---- connections ---- */

enum hc_state {
        HC_IDLE,    /* between requests, no exchange block */
        HC_HEAD,    /* reading a request head */
        HC_CONNECT, /* picking/dialing a backend */
        HC_PROXY,   /* request and response flowing */
        HC_RESPOND, /* writing our own answer, then LINGER */
        HC_TUNNEL,  /* WebSocket after 101: raw bytes both ways */
        HC_LINGER,  /* write side shut, draining the client until EOF */
        HC_CLOSING, /* the socket is closed; freed from its reap */
        _HC_MAX,
};

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

/* Per-request state of the client side, reset at the start of every
 * request (the backend side is the exchange, struct exch). */
struct hreq {
        uint64_t req_bytes;            /* request bytes received from the client (head + body) */
        uint64_t resp_bytes;           /* response bytes written to the client */
        unsigned status;               /* final status answered, 0 until known */
        enum proxy_close_reason close; /* RESPOND: why the connection ends afterwards */
        bool proxied;                  /* counted on c->route */
        bool accounted;                /* */
        bool head_req;                 /* method HEAD */
        bool client10;                 /* HTTP/1.0 client */
        bool websocket;                /* a WebSocket upgrade was forwarded */
        bool resp_done;                /* the response is completely written */
        bool keep_alive;               /* the client connection survives this exchange */
};

/* The exchange block: memory a connection needs only while it is busy. */
struct xb {
        struct xb *next_free;
        bool tls;
        uint8_t *in;           /* client bytes: request head, body, pipelined requests */
        uint8_t *hout;         /* the request head for the backend */
        uint8_t *cout;         /* the response head (or our answer) for the client */
        struct sock_tlsbuf tb; /* TLS: lent to the client socket while the block is held */
        struct proxy_h1_header *req_hdrs, *resp_hdrs;
        uint32_t in_off, in_len, in_fill; /* [in_off, in_fill) is queued in ex.uq */
        struct proxy_h1_req req;
        struct iovq cq;     /* to the client */
        struct exch ex;     /* the backend side: connection, request queue, response */
        struct relay relay; /* TUNNEL: the bytes after a 101, through in and ex.uin */
        struct hreq e;
};

struct hconn {
        struct proxy_conn base;        /* on the worker's list (base.w: the worker) */
        struct sock *s;                /* the client socket; its deadline is the connection's */
        struct xb *x;                  /* exchange block, NULL while idle */
        struct proxy_route *sni_route; /* TLS: the route the SNI chose (ref) */
        struct proxy_route *route;     /* route of the current/last request (ref, cached) */
        uint32_t linger_bytes;
        uint8_t state;
        uint8_t reason;   /* enum proxy_close_reason, once CLOSING */
        bool ev_timeout;  /* the deadline passed */
        bool timer_reset; /* state entered: restart the deadline */
        bool progress;    /* bytes moved during this step */
};

/* The HTTP/1.1 server's state shared by the connections of one worker. */
struct h1_ctx {
        struct proxy_worker *w;
        const struct proxy_config *cfg;
        struct exch_env exch_env;  /* what every exchange of the worker shares */
        struct xb *free_blocks[2]; /* [tls] */
        unsigned n_free_blocks[2];
        uint32_t in_cap, uin_cap, hout_cap, cout_cap;
        struct proxy_h1_limits req_limits, resp_limits;
};

/* ---- small helpers ---- */

static struct h1_ctx *hc_ctx(const struct hconn *c)
{
        return c->base.w->h1;
}

static void hc_step(struct hconn *c);
static void hc_close(struct hconn *c, enum proxy_close_reason reason);

static const struct exch_ops hc_exch_ops;

/* ---- exchange blocks ---- */

static struct xb *xb_get(struct h1_ctx *hw, bool tls)
{
        struct xb *x = hw->free_blocks[tls];
        size_t hdrs = (size_t)hw->req_limits.max_headers * sizeof(struct proxy_h1_header);
        size_t size;
        uint8_t *p;

        if (x) {
                hw->free_blocks[tls] = x->next_free;
                hw->n_free_blocks[tls]--;
        } else {
                size = sizeof(*x) + 2 * hdrs + hw->in_cap + hw->uin_cap + hw->hout_cap +
                       hw->cout_cap + (tls ? SOCK_TLS_TX_CAP + SOCK_TLS_RIN_CAP : 0);
                x = malloc(size);
                if (!x)
                        return NULL;
                p = (uint8_t *)(x + 1);
                x->req_hdrs = (struct proxy_h1_header *)p;
                p += hdrs;
                /* The response buffer and headers are the exchange's. */
                exch_init(&x->ex, &hw->exch_env, &hc_exch_ops, NULL, p + hdrs + hw->in_cap,
                          hw->uin_cap, (struct proxy_h1_header *)p, hw->resp_limits.max_headers);
                p += hdrs;
                x->in = p;
                p += hw->in_cap;
                p += hw->uin_cap;
                x->hout = p;
                p += hw->hout_cap;
                x->cout = p;
                p += hw->cout_cap;
                x->tb.tx = tls ? p : NULL;
                x->tb.rin = tls ? p + SOCK_TLS_TX_CAP : NULL;
                x->tls = tls;
        }
        x->next_free = NULL;
        x->in_off = x->in_len = x->in_fill = 0;
        iovq_reset(&x->cq);
        return x;
}

static void xb_put(struct h1_ctx *hw, struct xb *x)
{
        if (!x)
                return;
        if (hw->n_free_blocks[x->tls] >= BLOCK_CACHE_MAX || hw->w->stopping) {
                free(x);
                return;
        }
        x->next_free = hw->free_blocks[x->tls];
        hw->free_blocks[x->tls] = x;
        hw->n_free_blocks[x->tls]++;
}

/* ---- client I/O ---- */

static bool hc_tls_buffered(const struct hconn *c)
{
        return sock_buffered(c->s);
}

static bool hc_can_read(const struct hconn *c)
{
        return sock_can_read(c->s);
}

/* Read into @p. Returns > 0 bytes, 0 at EOF, -EAGAIN, or another -errno. */
static ssize_t hc_read(struct hconn *c, uint8_t *p, size_t n)
{
        ssize_t k = sock_read(c->s, p, n);

        if (k > 0)
                c->progress = true;
        return k;
}

/* Write @q to the client. Adds the bytes written to *counted. Returns 0
 * (possibly with bytes left: wr_blocked is set) or -errno. */
static int hc_flush(struct hconn *c, struct iovq *q, uint64_t *counted)
{
        size_t before = q->left;
        int r = sock_write(c->s, q, counted);

        if (q->left < before)
                c->progress = true;
        return r;
}

/* ---- the backend side ---- */

/* The exchange's backend socket is ready or its deadline passed. */
static void on_exch_wake(void *owner)
{
        struct hconn *c = owner;

        if (c->state == HC_CLOSING)
                return;
        hc_step(c);
}

static const struct exch_ops hc_exch_ops = {
        .wake = on_exch_wake,
};

/* ---- connection lifetime ---- */

static void hc_set_state(struct hconn *c, enum hc_state next)
{
        assert(next == HC_CLOSING ? c->state != HC_CLOSING
                                  : (hc_allowed[c->state] & (1u << next)) != 0);
        log_debug("proxy: hconn %p: %s -> %s", (void *)c, hc_state_names[c->state],
                  hc_state_names[next]);
        c->state = (uint8_t)next;
        c->timer_reset = true;
}

static void hc_set_route(struct hconn *c, struct proxy_route *r)
{
        if (c->route == r)
                return;
        proxy_route_unref(c->route);
        c->route = proxy_route_ref(r);
}

/* Count the current exchange once: on the route if it was proxied, and in
 * the worker's statistics if a status was answered. */
static void hc_account(struct hconn *c)
{
        struct xb *x = c->x;

        if (!x || x->e.accounted)
                return;
        x->e.accounted = true;
        proxy_request_done(c->base.w, x->e.proxied ? c->route : NULL, x->e.status, x->e.req_bytes,
                           x->e.resp_bytes);
}

static void hc_take_block(struct hconn *c, struct xb *x)
{
        c->x = x;
        x->ex.owner = c;
        if (c->s->ssl)
                sock_tls_lend(c->s, &x->tb);
}

static void hc_release_block(struct hconn *c)
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

static void hc_close(struct hconn *c, enum proxy_close_reason reason)
{
        if (c->state == HC_CLOSING)
                return;
        log_debug("proxy: hconn %p: closing: %s", (void *)c, proxy_close_reason_str(reason));
        if (c->x && c->x->e.proxied)
                hc_account(c);
        if (c->state == HC_TUNNEL)
                relay_done(&c->x->relay);
        c->reason = (uint8_t)reason;
        hc_set_state(c, HC_CLOSING);
        if (c->x)
                exch_abort(&c->x->ex);
        hc_release_block(c);
        sock_close(c->s, reason_is_orderly(reason), on_hc_freed);
}

static void on_hc_event(struct sock *s, unsigned events)
{
        struct hconn *c = s->data;

        if (c->state == HC_CLOSING)
                return;
        if (events & EV_TIMEOUT)
                c->ev_timeout = true;
        hc_step(c);
}

/* ---- our own answers ---- */

static const char *status_reason(unsigned s)
{
        switch (s) {
        case 200:
                return "OK";
        case 308:
                return "Permanent Redirect";
        case 400:
                return "Bad Request";
        case 404:
                return "Not Found";
        case 408:
                return "Request Timeout";
        case 414:
                return "URI Too Long";
        case 417:
                return "Expectation Failed";
        case 421:
                return "Misdirected Request";
        case 431:
                return "Request Header Fields Too Large";
        case 501:
                return "Not Implemented";
        case 502:
                return "Bad Gateway";
        case 503:
                return "Service Unavailable";
        case 504:
                return "Gateway Timeout";
        case 505:
                return "HTTP Version Not Supported";
        default:
                return "Internal Server Error";
        }
}

struct ans {
        const char *loc_host; /* 308: Location host (no port) */
        size_t loc_host_len;
        const uint8_t *loc_path; /* 308: target */
        size_t loc_path_len;
        const char *body; /* NULL: "<code> <reason>\n" */
        size_t body_len;
        const char *ctype;
};

/* Answer the current request ourselves and end the connection afterwards
 * (with @reason). A backend connection in use is closed. */
static void hc_respond(struct hconn *c, unsigned status, enum proxy_close_reason reason,
                       const struct ans *a)
{
        struct xb *x = c->x;
        char line[96];
        const char *rs = status_reason(status);
        size_t n = 0, cap = hc_ctx(c)->cout_cap, bl;
        int k;

        if (x)
                exch_abort(&x->ex);
        if (!x || x->cq.left > 0)
                /* Something is already on its way to the client: an answer
                 * now would corrupt the stream. */
                return hc_close(c, reason);
        if (a && a->body) {
                bl = a->body_len;
        } else {
                k = snprintf(line, sizeof(line), "%u %s\n", status, rs);
                bl = (size_t)k;
        }

#define PUT(p, l)                                                                                  \
        do {                                                                                       \
                size_t _l = (l);                                                                   \
                if (n + _l > cap)                                                                  \
                        return hc_close(c, reason);                                                \
                memcpy(x->cout + n, (p), _l);                                                      \
                n += _l;                                                                           \
        } while (0)
#define PUTS(s) PUT((s), strlen(s))
        {
                char head[160];

                k = snprintf(head, sizeof(head),
                             "HTTP/1.1 %u %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n",
                             status, rs, a && a->ctype ? a->ctype : "text/plain", bl);
                PUT(head, (size_t)k);
        }
        if (a && a->loc_host) {
                PUTS("Location: https://");
                PUT(a->loc_host, a->loc_host_len);
                PUT(a->loc_path, a->loc_path_len);
                PUTS("\r\n");
        }
        PUTS("Connection: close\r\n\r\n");
        if (!x->e.head_req) {
                if (a && a->body)
                        PUT(a->body, bl);
                else
                        PUT(line, bl);
        }
#undef PUTS
#undef PUT

        x->e.status = status;
        x->e.close = reason;
        x->e.keep_alive = false;
        iovq_add(&x->cq, x->cout, n);
        hc_set_state(c, HC_RESPOND);
}

static void hc_bad_request(struct hconn *c, int status)
{
        log_debug("proxy: hconn %p: bad request: %s", (void *)c,
                  proxy_h1_err_to_string(c->x->req.h.err));
        hc_respond(c, status > 0 ? (unsigned)status : 400, PROXY_CLOSE_BAD_REQUEST, NULL);
}

/* ---- ending a connection gracefully ---- */

/* Half-close towards the client and wait (bounded) for its EOF, so that
 * unread request bytes do not turn our last answer into a reset. */
static void hc_linger(struct hconn *c, enum proxy_close_reason reason)
{
        if (c->s->eof || c->s->err)
                return hc_close(c, reason);
        sock_shutdown(c->s);
        hc_release_block(c);
        c->reason = (uint8_t)reason;
        c->linger_bytes = 0;
        hc_set_state(c, HC_LINGER);
}

static void step_linger(struct hconn *c)
{
        if (c->ev_timeout || c->s->err)
                return hc_close(c, c->reason);
        while (c->s->rd_ready) {
                ssize_t k = sock_drain(c->s, c->base.w->scratch, PROXY_SCRATCH_SIZE);

                if (k > 0) {
                        c->linger_bytes += (uint32_t)k;
                        if (c->linger_bytes > LINGER_MAX)
                                return hc_close(c, c->reason);
                        continue;
                }
                if (k == -EAGAIN)
                        return;
                return hc_close(c, c->reason);
        }
}

/* ---- starting and ending requests ---- */

static void hc_begin_request(struct hconn *c)
{
        struct xb *x = c->x;

        memset(&x->e, 0, sizeof(x->e));
        if (x->in_off > 0) {
                memmove(x->in, x->in + x->in_off, x->in_len - x->in_off);
                x->in_len -= x->in_off;
                x->in_off = 0;
        }
        x->in_fill = 0;
        proxy_h1_req_init(&x->req, &hc_ctx(c)->req_limits, x->req_hdrs,
                          hc_ctx(c)->req_limits.max_headers);
}

/* The response is complete: count it, give the backend connection back and
 * wait for the next request (or end the connection). */
static void hc_exchange_end(struct hconn *c)
{
        struct h1_ctx *hw = hc_ctx(c);
        struct xb *x = c->x;

        hc_account(c);
        exch_end(&x->ex);
        if (c->s->eof)
                return hc_close(c, PROXY_CLOSE_KEEPALIVE_DONE);
        if (hw->w->stopping)
                /* The answer is written; nothing more is read, and waiting
                 * for the client's EOF would hold up the stop. */
                return hc_close(c, PROXY_CLOSE_STOP);
        if (!x->e.keep_alive) {
                /* The client asked for the close itself and everything it
                 * sent was read and forwarded: no unread bytes can turn the
                 * answer into a reset, so close at once (as nginx does)
                 * instead of a half-close and a wait for its EOF — that costs
                 * a shutdown, a read and two poll changes per connection. */
                if (!x->req.h.keep_alive && x->ex.req_sent_all && x->in_off == x->in_len &&
                    !hc_tls_buffered(c))
                        return hc_close(c, PROXY_CLOSE_KEEPALIVE_DONE);
                return hc_linger(c, PROXY_CLOSE_KEEPALIVE_DONE);
        }
        if (x->in_off < x->in_len || hc_tls_buffered(c)) {
                hc_set_state(c, HC_HEAD);
                hc_begin_request(c);
                return;
        }
        hc_release_block(c);
        hc_set_state(c, HC_IDLE);
}

/* ---- routing ---- */

static bool is_token_char(uint8_t ch)
{
        return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
               ch == '-' || ch == '_';
}

static void hc_acme_answer(struct hconn *c, const char *host, const uint8_t *tok, size_t tok_len)
{
        const struct proxy_config *cfg = hc_ctx(c)->cfg;
        char token[256], *out = (char *)c->base.w->scratch;
        struct ans a = {.ctype = "application/octet-stream"};
        int r = -ENOENT;

        if (tok_len > 0 && tok_len < sizeof(token) && cfg->acme_token) {
                memcpy(token, tok, tok_len);
                token[tok_len] = 0;
                r = cfg->acme_token(cfg->acme_token_ud, host, token, out, ACME_OUT_MAX);
        }
        if (r == -ENOENT)
                return hc_respond(c, 404, PROXY_CLOSE_KEEPALIVE_DONE, NULL);
        if (r < 0 || (size_t)r > ACME_OUT_MAX)
                return hc_respond(c, 500, PROXY_CLOSE_KEEPALIVE_DONE, NULL);
        a.body = out;
        a.body_len = (size_t)r;
        hc_respond(c, 200, PROXY_CLOSE_KEEPALIVE_DONE, &a);
}

/* Proxy the parsed request to @route's backends (port @port, if non-zero). */
static void hc_proxy_begin(struct hconn *c, struct proxy_route *route, uint16_t port)
{
        struct h1_ctx *hw = hc_ctx(c);
        struct xb *x = c->x;
        const struct proxy_h1_req *req = &x->req;
        char ip[INET6_ADDRSTRLEN], host[PROXY_ROUTE_HOST_MAX + 16];
        struct proxy_h1_span hs;
        struct proxy_h1_forward f = {.client_ip = ip, .host = host, .https = c->s->ssl != NULL};
        int r;

        hc_set_route(c, route);
        sock_peer_str(c->s, ip, sizeof(ip));
        hs = req->host_index >= 0 ? req->h.headers[req->host_index].value : req->authority;
        if (hs.len >= sizeof(host))
                return hc_bad_request(c, 400);
        memcpy(host, x->in + hs.off, hs.len);
        host[hs.len] = 0;
        r = proxy_h1_req_serialize(req, x->in, &f, x->hout, hw->hout_cap);
        if (r < 0)
                return hc_bad_request(c, r == -ENOBUFS ? 431 : 400);
        x->e.proxied = true;
        x->e.websocket = (req->flags & PROXY_H1_REQ_WEBSOCKET) != 0;
        exch_begin(&x->ex, route, port, x->hout, (uint32_t)r, req->h.body, req->h.content_length,
                   x->e.head_req);
        hc_set_state(c, HC_CONNECT);
}

static void hc_dispatch(struct hconn *c, int head_len)
{
        struct h1_ctx *hw = hc_ctx(c);
        const struct proxy_config *cfg = hw->cfg;
        struct xb *x = c->x;
        struct proxy_h1_req *req = &x->req;
        struct proxy_routes *snap;
        struct proxy_route *route;
        char host[PROXY_ROUTE_HOST_MAX + 1];
        const uint8_t *path;
        size_t hl, pl;
        int r;

        x->in_off = (uint32_t)head_len;
        x->e.req_bytes = (uint64_t)head_len;
        x->e.head_req = req->method_id == PROXY_H1_METHOD_HEAD;
        x->e.client10 = req->h.minor == 0;
        r = proxy_h1_req_analyze(req, x->in);
        if (r < 0)
                return hc_bad_request(c, proxy_h1_err_status(req->h.err));
        if (req->form == PROXY_H1_FORM_AUTHORITY || req->h.body == PROXY_H1_BODY_CLOSE)
                return hc_bad_request(c, 400);
        hl = req->host.len;
        if (hl == 0 || hl > PROXY_ROUTE_HOST_MAX)
                /* HTTP/1.0 without Host, or nothing we could route. */
                return hc_bad_request(c, 400);
        for (size_t i = 0; i < hl; i++)
                host[i] = (char)ascii_tolower(x->in[req->host.off + i]);
        if (host[hl - 1] == '.')
                hl--;
        if (hl == 0)
                return hc_bad_request(c, 400);
        host[hl] = 0;

        snap = proxy_worker_snap(hw->w);
        route = proxy_routes_lookup_wildcard(snap, host, hl);

        if (c->s->ssl) {
                /* The connection's certificate must cover the name, and the
                 * name must be ours and terminated here (RFC 9110 §7.4). */
                if (!route || route->mode != PROXY_ROUTE_TERMINATE ||
                    !proxy_cert_covers(c->sni_route->cert, host, hl))
                        return hc_respond(c, 421, PROXY_CLOSE_KEEPALIVE_DONE, NULL);
                return hc_proxy_begin(c, route, 0);
        }

        if (!route)
                return hc_respond(c, 404, PROXY_CLOSE_KEEPALIVE_DONE, NULL);
        path = x->in + req->path.off;
        pl = req->path.len;
        if (pl >= sizeof(ACME_PREFIX) - 1 &&
            memcmp(path, ACME_PREFIX, sizeof(ACME_PREFIX) - 1) == 0) {
                const uint8_t *tok = path + sizeof(ACME_PREFIX) - 1;
                size_t tl = 0;

                if (route->mode == PROXY_ROUTE_PASSTHROUGH)
                        /* The backend terminates TLS itself and gets its own
                         * certificate over its port 80. */
                        return hc_proxy_begin(c, route, 80);
                while (tl < pl - (sizeof(ACME_PREFIX) - 1) && is_token_char(tok[tl]))
                        tl++;
                if (tl != pl - (sizeof(ACME_PREFIX) - 1))
                        return hc_respond(c, 404, PROXY_CLOSE_KEEPALIVE_DONE, NULL);
                return hc_acme_answer(c, host, tok, tl);
        }
        if (route->mode == PROXY_ROUTE_TERMINATE && cfg->http_plain)
                return hc_proxy_begin(c, route, 0);

        struct ans a = {.loc_host = (const char *)x->in + req->host.off,
                        .loc_host_len = req->host.len,
                        .loc_path = path,
                        .loc_path_len = pl};
        if (req->form == PROXY_H1_FORM_ASTERISK || pl == 0 || path[0] != '/') {
                a.loc_path = (const uint8_t *)"/";
                a.loc_path_len = 1;
        }
        hc_respond(c, 308, PROXY_CLOSE_KEEPALIVE_DONE, &a);
}

/* ---- steps ---- */

static void step_idle(struct hconn *c)
{
        struct xb *x;

        if (c->ev_timeout)
                return hc_close(c, PROXY_CLOSE_KEEPALIVE_DONE);
        if (c->s->err)
                return hc_close(c, PROXY_CLOSE_CLIENT_ERROR);
        if (!hc_can_read(c))
                return;
        x = xb_get(hc_ctx(c), c->s->ssl != NULL);
        if (!x)
                return hc_close(c, PROXY_CLOSE_NOMEM);
        hc_take_block(c, x);
        hc_set_state(c, HC_HEAD);
        hc_begin_request(c);
}

/* Read client bytes into the exchange block while there is room (HEAD,
 * CONNECT, PROXY). Returns 0, or -errno after closing @c. */
static int hc_fill_in(struct hconn *c)
{
        struct xb *x = c->x;
        uint32_t cap = hc_ctx(c)->in_cap;
        ssize_t n;

        if (c->s->eof || !hc_can_read(c))
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
        hc_close(c, PROXY_CLOSE_CLIENT_ERROR);
        return (int)n;
}

static void step_head(struct hconn *c)
{
        struct xb *x = c->x;
        int r;

        if (c->ev_timeout) {
                c->ev_timeout = false;
                if (x->in_len == 0)
                        return hc_close(c, PROXY_CLOSE_KEEPALIVE_DONE);
                return hc_respond(c, 408, PROXY_CLOSE_REQUEST_TIMEOUT, NULL);
        }
        if (c->s->err)
                return hc_close(c, PROXY_CLOSE_CLIENT_ERROR);
        for (;;) {
                if (x->in_len > 0) {
                        r = proxy_h1_req_parse(&x->req, x->in, x->in_len);
                        if (r >= 0)
                                return hc_dispatch(c, r);
                        if (r != -EAGAIN)
                                return hc_bad_request(c, proxy_h1_err_status(x->req.h.err));
                        if (x->in_len == hc_ctx(c)->in_cap)
                                return hc_bad_request(c, 431);
                }
                if (c->s->eof)
                        return hc_close(c, x->in_len ? PROXY_CLOSE_CLIENT_EOF
                                                     : PROXY_CLOSE_KEEPALIVE_DONE);
                if (!hc_can_read(c)) {
                        if (x->in_len == 0 && !hc_tls_buffered(c)) {
                                /* Woken for nothing (or TLS records without
                                 * data): idle again, without the block. */
                                hc_release_block(c);
                                hc_set_state(c, HC_IDLE);
                        }
                        return;
                }
                if (hc_fill_in(c) < 0)
                        return;
        }
}

static void hc_no_backend(struct hconn *c)
{
        hc_respond(c, c->x->ex.all_factory ? 503 : 502, PROXY_CLOSE_CONNECT_FAILED, NULL);
}

static void step_connect(struct hconn *c)
{
        struct xb *x = c->x;
        int r;

        if (c->s->err)
                return hc_close(c, PROXY_CLOSE_CLIENT_ERROR);
        if (hc_fill_in(c) < 0)
                return;
        r = exch_connect(&x->ex);
        if (r == 0)
                return; /* connecting */
        if (r < 0)
                return hc_no_backend(c);
        /* The body starts right after the head, on every attempt. */
        x->in_fill = x->in_off;
        hc_set_state(c, HC_PROXY);
}

/* The pooled connection failed before answering: try once more on a new
 * connection to the same backend, if the request can be sent again. */
static bool hc_retry(struct hconn *c)
{
        if (!exch_retry(&c->x->ex))
                return false;
        hc_set_state(c, HC_CONNECT);
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
                return hc_respond(c, 502, reason, NULL);
        hc_close(c, reason);
}

static void hc_tunnel_start(struct hconn *c);

/* A complete response head of @len bytes is in the exchange's buffer.
 * Returns true if the state changed (the caller returns). */
static bool hc_resp_head(struct hconn *c, int len)
{
        struct h1_ctx *hw = hc_ctx(c);
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
                        r = proxy_h1_resp_serialize(resp, ex->uin, &o, x->cout, hw->cout_cap,
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
                r = proxy_h1_resp_serialize(resp, ex->uin, &o, x->cout, hw->cout_cap, &body);
                if (r < 0) {
                        hc_upstream_failed(c, PROXY_CLOSE_BAD_RESPONSE);
                        return true;
                }
                x->e.status = 101;
                ex->upgrade = true;
                iovq_add(&x->cq, x->cout, (size_t)r);
                (void)exch_resp_head_taken(ex, len, false, PROXY_H1_BODY_NONE, &x->cq);
                return false;
        }

        /* The client connection stays only if its request was read entirely
         * (otherwise we cannot know where the next one starts). */
        o.keep_alive = x->req.h.keep_alive && ex->reqp.done && !c->s->eof && !hw->w->stopping;
        r = proxy_h1_resp_serialize(resp, ex->uin, &o, x->cout, hw->cout_cap, &body);
        if (r < 0) {
                hc_upstream_failed(c, PROXY_CLOSE_BAD_RESPONSE);
                return true;
        }
        x->e.status = resp->status;
        x->e.keep_alive = o.keep_alive && body != PROXY_H1_BODY_CLOSE;
        iovq_add(&x->cq, x->cout, (size_t)r);
        if (exch_resp_head_taken(ex, len, true, body, &x->cq) < 0) {
                hc_close(c, PROXY_CLOSE_BAD_RESPONSE);
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
                r = hc_flush(c, &x->cq, &x->e.resp_bytes);
                if (r < 0) {
                        c->s->err = r;
                        hc_close(c, PROXY_CLOSE_CLIENT_ERROR);
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
                        hc_close(c, PROXY_CLOSE_BAD_RESPONSE);
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
                if (ex->resp_head && !ex->respp.done && ex->respp.src != PROXY_H1_BODY_CLOSE &&
                    ex->uoff == ex->ulen && x->cq.left == 0) {
                        hc_close(c, PROXY_CLOSE_BAD_RESPONSE);
                        return true;
                }
        }
        return false;
}

static void step_proxy(struct hconn *c)
{
        struct xb *x = c->x;
        struct exch *ex = &x->ex;
        int r;

        if (c->ev_timeout || ex->ev_timeout) {
                c->ev_timeout = ex->ev_timeout = false;
                if (ex->resp_head || ex->interim || ex->upgrade)
                        return hc_close(c, PROXY_CLOSE_IDLE_TIMEOUT);
                if (!ex->reqp.done)
                        return hc_respond(c, 408, PROXY_CLOSE_REQUEST_TIMEOUT, NULL);
                return hc_respond(c, 504, PROXY_CLOSE_UPSTREAM_ERROR, NULL);
        }
        if (c->s->err)
                return hc_close(c, PROXY_CLOSE_CLIENT_ERROR);
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
                                        return hc_bad_request(c, 400);
                                return hc_close(c, PROXY_CLOSE_BAD_REQUEST);
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
                if (!c->s->eof && hc_can_read(c)) {
                        uint32_t before = x->in_len;

                        if (hc_fill_in(c) < 0)
                                return;
                        if (x->in_len != before || c->s->eof)
                                moved = true;
                }
                /* The client gave up in the middle of its request (its EOF
                 * may have come while a backend was being connected): once
                 * what it sent is queued, nothing will complete the body. */
                if (c->s->eof && !ex->reqp.done && x->in_fill == x->in_len)
                        return hc_close(c, PROXY_CLOSE_CLIENT_EOF);

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

static void step_respond(struct hconn *c)
{
        struct xb *x = c->x;
        int r;

        if (c->ev_timeout)
                return hc_close(c, PROXY_CLOSE_IDLE_TIMEOUT);
        if (c->s->err)
                return hc_close(c, PROXY_CLOSE_CLIENT_ERROR);
        r = hc_flush(c, &x->cq, &x->e.resp_bytes);
        if (r < 0) {
                c->s->err = r;
                return hc_close(c, PROXY_CLOSE_CLIENT_ERROR);
        }
        if (x->cq.left > 0)
                return;
        hc_account(c);
        hc_linger(c, x->e.close);
}

/* ---- WebSocket tunnel ---- */

static void hc_tunnel_start(struct hconn *c)
{
        struct xb *x = c->x;
        struct exch *ex = &x->ex;

        /* The upgrade request and the 101 count as one request; the bytes
         * that follow are added to the route's byte counters as they flow. */
        hc_account(c);
        relay_init(&x->relay, c->s, ex->up->s, NULL, 0, c->route->counters,
                   /* half_close= */ false);
        /* Whatever followed the 101 head from the backend, and whatever the
         * client sent after its request, is tunnel payload; the block's
         * buffers stay the tunnel's. */
        relay_own_buffer(&x->relay, RELAY_UP, x->in, hc_ctx(c)->in_cap, x->in_off, x->in_len);
        relay_own_buffer(&x->relay, RELAY_DOWN, ex->uin, ex->ucap, ex->uoff, ex->ulen);
        hc_set_state(c, HC_TUNNEL);
}

static void step_tunnel(struct hconn *c)
{
        struct xb *x = c->x;
        bool progress = false;
        int r;

        if (c->ev_timeout)
                return hc_close(c, PROXY_CLOSE_IDLE_TIMEOUT);
        if (c->s->err)
                return hc_close(c, PROXY_CLOSE_CLIENT_ERROR);
        if (x->ex.up->s->err)
                return hc_close(c, PROXY_CLOSE_UPSTREAM_ERROR);
        r = relay_step(&x->relay, &progress);
        if (progress)
                c->progress = true;
        if (r == -ENOMEM)
                return hc_close(c, PROXY_CLOSE_NOMEM);
        if (r < 0)
                return hc_close(c, x->relay.err_side ? PROXY_CLOSE_UPSTREAM_ERROR
                                                     : PROXY_CLOSE_CLIENT_ERROR);
        if (r > 0)
                hc_close(c, PROXY_CLOSE_DONE);
}

/* ---- the step driver ---- */

static unsigned hc_timeout_kind(const struct hconn *c, bool *refresh)
{
        const struct xb *x = c->x;

        *refresh = false;
        switch (c->state) {
        case HC_IDLE:
                return PROXY_TQ_KEEPALIVE;
        case HC_HEAD:
                return x && x->in_len > 0 ? PROXY_TQ_REQUEST : PROXY_TQ_KEEPALIVE;
        case HC_CONNECT:
                /* The backend socket has the connect deadline. */
                return EV_TQ_NONE;
        case HC_PROXY:
                if (!x->ex.resp_head && !x->ex.interim && !x->ex.upgrade) {
                        /* Once sent, the backend socket has the
                         * response-head deadline. */
                        if (x->ex.req_sent_all)
                                return EV_TQ_NONE;
                        *refresh = true;
                        return PROXY_TQ_REQUEST;
                }
                *refresh = true;
                return PROXY_TQ_IDLE;
        case HC_RESPOND:
        case HC_TUNNEL:
                *refresh = true;
                return PROXY_TQ_IDLE;
        case HC_LINGER:
                return PROXY_TQ_LINGER;
        default:
                return EV_TQ_NONE;
        }
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

/* Whether the backend socket should be read. */
static bool up_want_read(const struct hconn *c)
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

static void hc_step(struct hconn *c)
{
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
                        step_connect(c);
                        break;
                case HC_PROXY:
                        step_proxy(c);
                        break;
                case HC_RESPOND:
                        step_respond(c);
                        break;
                case HC_TUNNEL:
                        step_tunnel(c);
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
        if (kind != c->s->h.tq || c->timer_reset || (refresh && c->progress))
                sock_deadline(c->s, kind);
        c->timer_reset = false;
        c->progress = false;

        if (c->state == HC_TUNNEL) {
                r = relay_poll(&c->x->relay);
                if (r < 0)
                        return hc_close(c, c->x->relay.err_side ? PROXY_CLOSE_UPSTREAM_ERROR
                                                                : PROXY_CLOSE_CLIENT_ERROR);
                return;
        }
        r = sock_want(c->s, hc_want_read(c));
        if (r < 0)
                return hc_close(c, PROXY_CLOSE_CLIENT_ERROR);
        if (c->x && exch_poll(&c->x->ex, up_want_read(c)) < 0)
                return hc_close(c, PROXY_CLOSE_UPSTREAM_ERROR);
}

/* ---- the worker's view: route changes and stop ---- */

static void on_routes_changed(struct proxy_conn *pc)
{
        struct hconn *c = container_of(pc, struct hconn, base);
        const struct proxy_routes *snap = c->base.w->snap;

        if (c->state == HC_CLOSING)
                return;
        if (c->sni_route && !proxy_route_still_current(snap, c->sni_route))
                return hc_close(c, PROXY_CLOSE_ROUTE_REMOVED);
        if (!c->route || proxy_route_still_current(snap, c->route))
                return;
        if (c->x && c->x->e.proxied && c->state != HC_LINGER)
                return hc_close(c, PROXY_CLOSE_ROUTE_REMOVED);
        /* Only a cache between requests: drop it. */
        c->route = proxy_route_unref(c->route);
}

static void on_stop(struct proxy_conn *pc, bool now)
{
        struct hconn *c = container_of(pc, struct hconn, base);

        switch (c->state) {
        case HC_IDLE:
        case HC_LINGER:
        case HC_HEAD: /* a partial request is not answered */
                return hc_close(c, PROXY_CLOSE_STOP);
        default:
                /* A request in flight finishes (its answer says
                 * "Connection: close") unless the deadline passed. */
                if (now)
                        hc_close(c, PROXY_CLOSE_STOP);
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
        struct h1_ctx *hw;

        hw = calloc(1, sizeof(*hw));
        if (!hw)
                return -ENOMEM;
        hw->w = w;
        hw->cfg = cfg;
        hw->req_limits = (struct proxy_h1_limits){.max_head = cfg->max_head,
                                                  .max_headers = cfg->max_headers,
                                                  .max_target = cfg->max_head};
        hw->resp_limits = hw->req_limits;
        hw->in_cap = cfg->max_head;
        /* Room for a 16 KiB body behind a full head: one read, one write. */
        hw->uin_cap = cfg->max_head + UIN_EXTRA;
        hw->hout_cap = cfg->max_head + HOUT_SLACK;
        hw->cout_cap = cfg->max_head + COUT_SLACK;
        hw->exch_env = (struct exch_env){
                .pool = &w->pool,
                .tq_connect = PROXY_TQ_CONNECT,
                .tq_upstream = PROXY_TQ_UPSTREAM,
                .limits = &hw->resp_limits,
                .st_connects = &w->stats.upstream_connects,
                .st_reused = &w->stats.upstream_reused,
                .st_connect_errors = &w->stats.connect_errors,
        };
        *ret = hw;
        return 0;
}

static void free_blocks(struct h1_ctx *hw)
{
        for (unsigned t = 0; t < 2; t++)
                while (hw->free_blocks[t]) {
                        struct xb *x = hw->free_blocks[t];

                        hw->free_blocks[t] = x->next_free;
                        free(x);
                }
        hw->n_free_blocks[0] = hw->n_free_blocks[1] = 0;
}

void h1_ctx_begin_stop(struct h1_ctx *hw)
{
        if (hw)
                free_blocks(hw);
}

struct h1_ctx *h1_ctx_free(struct h1_ctx *hw)
{
        if (!hw)
                return NULL;
        free_blocks(hw);
        free(hw);
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
                proxy_conn_add(w, &c->base, &hc_ops);
        sock_set_cb(s, on_hc_event, c);
        /* Clients usually send at once: try before waiting for an event
         * (after a TLS handshake, replayed bytes may be waiting too). */
        c->s->rd_ready = true;
        c->timer_reset = true;
        hc_step(c);
        return 0;
}
