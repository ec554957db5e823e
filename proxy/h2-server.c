/* SPDX-License-Identifier: Apache-2.0 */
#include "proxy/h2-server.h"

#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <nghttp2/nghttp2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/macros.h"
#include "common/siphash.h"
#include "proxy/exchange.h"
#include "proxy/routes.h"
#include "proxy/sock.h"
#include "proxy/tls.h"

/* Design notes (docs/internals/proxy.md, "HTTP/2", has the long form):
 *
 *  - One step driver per connection (h2_step): read what the socket has
 *    into the worker's scratch buffer and feed it to nghttp2 (which takes
 *    all of it: flow control guarantees every DATA byte fits its stream's
 *    buffer), step every stream (its exchange with the backend), then let
 *    nghttp2 produce frames while the socket takes them. nghttp2 callbacks
 *    only record; nothing inside them closes the connection.
 *  - A stream's memory (head buffers, the exchange's response buffer,
 *    header arrays) is one allocation made at its HEADERS; the request
 *    body buffer (H2_STREAM_WINDOW bytes) is allocated at its first DATA.
 *    Streams are freed in nghttp2's on_stream_close (from mem_recv or
 *    mem_send, never while a stream step runs) and their deadline handle
 *    from the event layer's reap. */

#define H2_MAX_STREAMS       100u       /* SETTINGS_MAX_CONCURRENT_STREAMS */
#define H2_STREAM_WINDOW     65535u     /* per stream: the request body buffer */
#define H2_CONN_WINDOW       (1u << 20) /* connection receive window */
#define H2_MAX_REQUESTS      1000u      /* streams per connection, then GOAWAY */
#define H2_GLITCH_MAX        100u       /* invalid frames, our resets, 431s: then GOAWAY */
#define H2_RESET_BURST       200u       /* client stream resets: token bucket size */
#define H2_RESET_RATE        50u        /* ... refilled per second */
#define H2_MAX_CONTINUATIONS 8u         /* CONTINUATION frames per header block */
#define H2_MAX_OUTBOUND_ACK  256u       /* queued SETTINGS/PING acknowledgements */
#define H2_MAX_SETTINGS      32u        /* entries in one SETTINGS frame */
#define H2_OUT_CAP           16384u     /* frames gathered for one write */
#define H2_HEAD_SLACK        512u       /* request line, Host, framing beyond the fields */
#define H2_HOUT_SLACK        1024u      /* forwarding fields the serialiser adds */
#define H2_UIN_EXTRA         16384u     /* response buffer beyond max_head */
#define H2_READS_PER_STEP    8u         /* socket reads before streams get a turn */
#define H2_FRAME_HD          9u

enum h2s_state {
        ST_HEADERS,  /* the request's header block is being received */
        ST_CONNECT,  /* picking/dialling a backend */
        ST_PROXY,    /* request and response flowing */
        ST_ANSWERED, /* our own answer submitted (no backend) */
};

struct h2c;

struct h2s {
        struct ev_handle h; /* deadlines only (fd -1) */
        struct h2s *prev, *next;
        struct h2c *c;
        int32_t id;
        uint8_t state;
        bool line_done;      /* the request line is in hb */
        bool hdr_bad;        /* too many or too large fields: 431 */
        bool have_authority; /* */
        bool have_length;    /* a content-length field */
        bool req_eof;        /* END_STREAM received */
        bool proxied;        /* counted on @route */
        bool resp_submitted; /* HEADERS of the response submitted */
        bool resp_eof;       /* the last DATA was handed to nghttp2 */
        bool deferred;       /* the data provider said DEFERRED */
        bool timeout;        /* the stream's deadline passed */
        bool progress;       /* DATA moved for this stream since its deadline was set */
        bool head_req;       /* method HEAD */
        unsigned status;
        uint64_t req_bytes, resp_bytes; /* frames of this stream as they crossed the wire */
        uint32_t n_fields, dec_bytes;   /* decoded header fields and their bytes */

        /* The HTTP/1.1 head built from HEADERS (hb) and its pseudo-header
         * values and cookie crumbs on the way (pv, in hout's memory). */
        uint8_t *hb;
        uint32_t hb_len;
        uint8_t *hout;
        uint32_t pv_len;
        struct proxy_h1_span method, path, authority, cookie;
        struct proxy_h1_req req;
        struct proxy_h1_header *req_hdrs;

        /* Request body from DATA: body[0, bfill) is queued towards the
         * backend, [bfill, blen) not yet; unconsumed window = blen. */
        uint8_t *body;
        uint32_t bfill, blen;

        struct proxy_route *route; /* ref while proxied */
        struct exch ex;
        struct iovq q; /* response body bytes in ex.uin not yet handed to nghttp2 */

        /* Our own answer's body. */
        char ans[64];
        uint32_t ans_len, ans_off;
        char status_str[12];
};

struct h2c {
        struct proxy_conn base;        /* on the worker's list (base.w: the worker) */
        struct sock *s;                /* the client socket */
        nghttp2_session *ng;           /* */
        struct proxy_route *sni_route; /* ref: its certificate must cover every :authority */
        struct h2s *streams;           /* open streams (with user data) */
        unsigned n_streams;
        unsigned n_requests; /* streams begun */
        unsigned glitches;
        uint32_t hdr_pending; /* bytes of a HEADERS frame that opens a stream */
        uint8_t *obuf;        /* H2_OUT_CAP: frames copied from mem_send */
        uint32_t olen;
        const uint8_t *pend; /* a frame too large for obuf (nghttp2's memory) */
        size_t pend_len;
        struct iovq oq; /* obuf + pend on their way to the client */
        uint8_t reason; /* enum proxy_close_reason, once closing */
        bool closing;
        bool fatal;       /* a callback decided the connection ends (no GOAWAY) */
        bool calm;        /* GOAWAY ENHANCE_YOUR_CALM submitted */
        bool ev_timeout;  /* the socket's deadline passed */
        bool timer_reset; /* restart the socket's deadline */
        bool progress;    /* bytes moved on the socket during this step */
        uint32_t hb_cap, hout_cap, uin_cap;
        struct proxy_h1_limits req_limits, resp_limits;
        struct exch_env exch_env;
};

static void h2_step(struct h2c *c);

static struct h2s *stream_of(struct h2c *c, int32_t id)
{
        return id > 0 ? nghttp2_session_get_stream_user_data(c->ng, id) : NULL;
}

static void glitch(struct h2c *c)
{
        if (++c->glitches <= H2_GLITCH_MAX || c->calm)
                return;
        log_debug("proxy: h2 %p: too many protocol errors", (void *)c);
        c->calm = true;
        (void)nghttp2_session_terminate_session(c->ng, NGHTTP2_ENHANCE_YOUR_CALM);
}

/* ---- streams: lifetime ---- */

static void on_stream_timeout(struct ev_handle *h, unsigned events)
{
        struct h2s *st = container_of(h, struct h2s, h);

        (void)events;
        st->timeout = true;
        h2_step(st->c);
}

static void on_stream_freed(struct ev_handle *h)
{
        struct h2s *st = container_of(h, struct h2s, h);

        free(st->body);
        free(st);
}

static const struct exch_ops h2_exch_ops;

static struct h2s *stream_new(struct h2c *c, int32_t id)
{
        size_t hdrs = (size_t)(c->req_limits.max_headers) * sizeof(struct proxy_h1_header);
        size_t rhdrs = (size_t)c->resp_limits.max_headers * sizeof(struct proxy_h1_header);
        struct h2s *st;
        uint8_t *p;

        st = malloc(sizeof(*st) + hdrs + rhdrs + c->hb_cap + c->hout_cap + c->uin_cap);
        if (!st)
                return NULL;
        memset(st, 0, sizeof(*st));
        p = (uint8_t *)(st + 1);
        st->req_hdrs = (struct proxy_h1_header *)p;
        p += hdrs;
        exch_init(&st->ex, &c->exch_env, &h2_exch_ops, st, p + rhdrs + c->hb_cap + c->hout_cap,
                  c->uin_cap, (struct proxy_h1_header *)p, c->resp_limits.max_headers);
        st->ex.http_version = 20;
        p += rhdrs;
        st->hb = p;
        p += c->hb_cap;
        st->hout = p;
        st->c = c;
        st->id = id;
        st->state = ST_HEADERS;
        ev_handle_init(&st->h, -1, on_stream_timeout);
        st->next = c->streams;
        if (c->streams)
                c->streams->prev = st;
        c->streams = st;
        c->n_streams++;
        return st;
}

/* The stream ends (nghttp2 closed it, or the connection goes): count it,
 * let the backend connection go, free it from the reap. */
static void stream_finish(struct h2s *st, bool session_alive)
{
        struct h2c *c = st->c;

        proxy_request_done(c->base.w, st->proxied ? st->route : NULL, st->status, st->req_bytes,
                           st->resp_bytes);
        if (st->ex.up) {
                if (st->resp_eof && st->q.left == 0)
                        exch_end(&st->ex);
                else
                        exch_abort(&st->ex);
        }
        /* Window the client used for bytes we never passed on. */
        if (session_alive && st->blen > 0)
                (void)nghttp2_session_consume_connection(c->ng, st->blen);
        proxy_route_unref(st->route);
        if (st->prev)
                st->prev->next = st->next;
        else
                c->streams = st->next;
        if (st->next)
                st->next->prev = st->prev;
        if (--c->n_streams == 0)
                c->timer_reset = true;
        ev_close(c->s->ev, &st->h, on_stream_freed);
}

static void stream_reset(struct h2s *st, uint32_t code)
{
        (void)nghttp2_submit_rst_stream(st->c->ng, NGHTTP2_FLAG_NONE, st->id, code);
        if (st->ex.up && !(st->resp_eof && st->q.left == 0))
                exch_abort(&st->ex);
}

/* ---- responses ---- */

static ssize_t on_read_answer(nghttp2_session *ng, int32_t id, uint8_t *buf, size_t len,
                              uint32_t *flags, nghttp2_data_source *src, void *ud)
{
        struct h2s *st = src->ptr;
        size_t n = st->ans_len - st->ans_off;

        (void)ng;
        (void)id;
        (void)ud;
        if (n > len)
                n = len;
        memcpy(buf, st->ans + st->ans_off, n);
        st->ans_off += (uint32_t)n;
        if (st->ans_off == st->ans_len) {
                *flags |= NGHTTP2_DATA_FLAG_EOF;
                st->resp_eof = true;
        }
        return (ssize_t)n;
}

/* Answer the stream ourselves (no backend, or the backend failed before
 * its head): @status with a short text body. */
static void stream_answer(struct h2s *st, unsigned status)
{
        struct h2c *c = st->c;
        char clen[16];
        nghttp2_data_provider dp = {.source.ptr = st, .read_callback = on_read_answer};
        int k;

        if (st->ex.up)
                exch_abort(&st->ex);
        if (st->resp_submitted)
                return stream_reset(st, NGHTTP2_INTERNAL_ERROR);
        k = snprintf(st->ans, sizeof(st->ans), "%u\n", status);
        st->ans_len = (uint32_t)k;
        st->ans_off = 0;
        (void)snprintf(st->status_str, sizeof(st->status_str), "%u", status);
        (void)snprintf(clen, sizeof(clen), "%u", st->ans_len);
        nghttp2_nv nva[] = {
                {(uint8_t *)":status", (uint8_t *)st->status_str, 7, strlen(st->status_str),
                 NGHTTP2_NV_FLAG_NONE},
                {(uint8_t *)"content-type", (uint8_t *)"text/plain", 12, 10, NGHTTP2_NV_FLAG_NONE},
                {(uint8_t *)"content-length", (uint8_t *)clen, 14, strlen(clen),
                 NGHTTP2_NV_FLAG_NONE},
        };
        st->status = status;
        st->state = ST_ANSWERED;
        st->resp_submitted = true;
        if (nghttp2_submit_response(c->ng, st->id, nva, ELEMENTSOF(nva),
                                    st->head_req ? NULL : &dp) < 0)
                return stream_reset(st, NGHTTP2_INTERNAL_ERROR);
        if (st->head_req)
                st->resp_eof = true;
}

/* The backend failed before its response head reached the client: 502, or
 * one retry of a bodiless request on a fresh connection. */
static void stream_upstream_failed(struct h2s *st)
{
        if (!st->resp_submitted && exch_retry(&st->ex)) {
                st->state = ST_CONNECT;
                return;
        }
        stream_answer(st, 502);
}

static ssize_t on_read_body(nghttp2_session *ng, int32_t id, uint8_t *buf, size_t len,
                            uint32_t *flags, nghttp2_data_source *src, void *ud)
{
        struct h2s *st = src->ptr;
        struct exch *ex = &st->ex;
        size_t n = 0;

        (void)ng;
        (void)id;
        (void)ud;
        while (n < len) {
                struct iovec *v;
                size_t k;

                if (st->q.left == 0) {
                        exch_resp_release(ex);
                        if (exch_resp_body(ex, &st->q) < 0)
                                return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
                        if (st->q.left == 0)
                                break;
                }
                v = &st->q.iov[st->q.i];
                k = MIN(v->iov_len, len - n);
                memcpy(buf + n, v->iov_base, k);
                iovq_advance(&st->q, k);
                n += k;
        }
        if (st->q.left == 0)
                exch_resp_release(ex);
        if (st->q.left == 0 && h1_pump_finished(&ex->respp)) {
                *flags |= NGHTTP2_DATA_FLAG_EOF;
                st->resp_eof = true;
                return (ssize_t)n;
        }
        if (n == 0) {
                st->deferred = true;
                return NGHTTP2_ERR_DEFERRED;
        }
        return (ssize_t)n;
}

static bool is_hop_field(const uint8_t *n, size_t l)
{
        static const char *const hop[] = {"connection",        "keep-alive", "proxy-connection",
                                          "transfer-encoding", "upgrade",    "te"};

        for (size_t i = 0; i < ELEMENTSOF(hop); i++)
                if (strlen(hop[i]) == l && memcmp(hop[i], n, l) == 0)
                        return true;
        return false;
}

/* A final response head of @len bytes is in the exchange's buffer:
 * HEADERS (and a data provider) for the client. */
static void stream_resp_head(struct h2s *st, int len)
{
        struct h2c *c = st->c;
        struct exch *ex = &st->ex;
        struct proxy_h1_resp *resp = &ex->resp;
        nghttp2_data_provider dp = {.source.ptr = st, .read_callback = on_read_body};
        nghttp2_nv *nva;
        size_t n = 0;
        int r;

        if (proxy_h1_resp_analyze(resp, ex->uin, st->head_req) < 0 || resp->status == 101)
                return stream_upstream_failed(st);
        if (resp->status < 200) {
                /* Interim (100, 103): not passed on. */
                (void)exch_resp_head_taken(ex, len, false, PROXY_H1_BODY_NONE, &st->q);
                exch_resp_release(ex);
                ex->interim = true;
                exch_resp_next_head(ex);
                return;
        }
        nva = malloc((resp->h.n_headers + 1) * sizeof(*nva));
        if (!nva)
                return stream_reset(st, NGHTTP2_INTERNAL_ERROR);
        (void)snprintf(st->status_str, sizeof(st->status_str), "%u", resp->status);
        nva[n++] = (nghttp2_nv){(uint8_t *)":status", (uint8_t *)st->status_str, 7,
                                strlen(st->status_str), NGHTTP2_NV_FLAG_NONE};
        for (uint32_t i = 0; i < resp->h.n_headers; i++) {
                const struct proxy_h1_header *h = &resp->h.headers[i];
                uint8_t *name = ex->uin + h->name.off;

                /* HTTP/2 field names are lower case; the head is not
                 * forwarded as bytes, so lower-case it in place. */
                for (uint32_t j = 0; j < h->name.len; j++)
                        name[j] = ascii_tolower(name[j]);
                if ((h->flags & PROXY_H1_HF_HOP) || is_hop_field(name, h->name.len))
                        continue;
                nva[n++] = (nghttp2_nv){name, ex->uin + h->value.off, h->name.len, h->value.len,
                                        NGHTTP2_NV_FLAG_NONE};
        }
        st->status = resp->status;
        r = exch_resp_head_taken(ex, len, true, PROXY_H1_BODY_CLOSE, &st->q);
        if (r < 0) {
                free(nva);
                return stream_upstream_failed(st);
        }
        st->resp_submitted = true;
        if (resp->h.body == PROXY_H1_BODY_NONE)
                st->resp_eof = true;
        r = nghttp2_submit_response(c->ng, st->id, nva, n,
                                    resp->h.body == PROXY_H1_BODY_NONE ? NULL : &dp);
        free(nva);
        if (r < 0)
                stream_reset(st, NGHTTP2_INTERNAL_ERROR);
}

/* ---- requests: HEADERS into an HTTP/1.1 head ---- */

static bool hb_put(struct h2s *st, const void *p, size_t n)
{
        if (n > st->c->hb_cap - st->hb_len)
                return false;
        memcpy(st->hb + st->hb_len, p, n);
        st->hb_len += (uint32_t)n;
        return true;
}

static bool pv_put(struct h2s *st, struct proxy_h1_span *sp, const uint8_t *v, size_t n)
{
        if (n > st->c->hout_cap - st->pv_len)
                return false;
        memcpy(st->hout + st->pv_len, v, n);
        *sp = (struct proxy_h1_span){.off = st->pv_len, .len = (uint32_t)n};
        st->pv_len += (uint32_t)n;
        return true;
}

/* "METHOD path HTTP/1.1" and Host from :authority. */
static bool put_request_line(struct h2s *st)
{
        st->line_done = true;
        return hb_put(st, st->hout + st->method.off, st->method.len) && hb_put(st, " ", 1) &&
               hb_put(st, st->hout + st->path.off, st->path.len) &&
               hb_put(st, " HTTP/1.1\r\n", 11) &&
               (!st->have_authority ||
                (hb_put(st, "host: ", 6) &&
                 hb_put(st, st->hout + st->authority.off, st->authority.len) &&
                 hb_put(st, "\r\n", 2)));
}

static int on_header(nghttp2_session *ng, const nghttp2_frame *frame, const uint8_t *name,
                     size_t nl, const uint8_t *value, size_t vl, uint8_t flags, void *ud)
{
        struct h2c *c = ud;
        struct h2s *st = stream_of(c, frame->hd.stream_id);

        (void)ng;
        (void)flags;
        if (!st || st->state != ST_HEADERS)
                return 0; /* trailers: dropped */
        if (st->hdr_bad)
                return 0;
        st->n_fields++;
        st->dec_bytes += (uint32_t)MIN(nl + vl, (size_t)UINT32_MAX / 2);
        if (st->n_fields > c->req_limits.max_headers - 2 ||
            st->dec_bytes > c->req_limits.max_head - H2_HEAD_SLACK) {
                /* HPACK makes a large list cheap to send; decoded it is
                 * bounded like an HTTP/1.1 head. */
                st->hdr_bad = true;
                glitch(c);
                return 0;
        }
        if (nl > 0 && name[0] == ':') {
                struct proxy_h1_span *sp = NULL;

                if (nl == 7 && memcmp(name, ":method", 7) == 0)
                        sp = &st->method;
                else if (nl == 5 && memcmp(name, ":path", 5) == 0)
                        sp = &st->path;
                else if (nl == 10 && memcmp(name, ":authority", 10) == 0) {
                        sp = &st->authority;
                        st->have_authority = true;
                }
                if (sp && !pv_put(st, sp, value, vl))
                        st->hdr_bad = true;
                return 0;
        }
        if (!st->line_done && !put_request_line(st)) {
                st->hdr_bad = true;
                return 0;
        }
        if (nl == 6 && memcmp(name, "cookie", 6) == 0) {
                /* RFC 9113 §8.2.3: crumbs joined with "; " for HTTP/1.1. */
                uint32_t start = st->cookie.len ? st->cookie.off : st->pv_len;

                if ((st->cookie.len &&
                     !pv_put(st, &(struct proxy_h1_span){0}, (const uint8_t *)"; ", 2)) ||
                    !pv_put(st, &(struct proxy_h1_span){0}, value, vl)) {
                        st->hdr_bad = true;
                        return 0;
                }
                st->cookie = (struct proxy_h1_span){.off = start, .len = st->pv_len - start};
                return 0;
        }
        if (nl == 4 && memcmp(name, "host", 4) == 0 && st->have_authority)
                return 0; /* :authority wins */
        if (nl == 14 && memcmp(name, "content-length", 14) == 0)
                st->have_length = true;
        if (!hb_put(st, name, nl) || !hb_put(st, ": ", 2) || !hb_put(st, value, vl) ||
            !hb_put(st, "\r\n", 2))
                st->hdr_bad = true;
        return 0;
}

/* The request's header block is complete: route it and start its
 * exchange, or answer it ourselves. */
static void stream_dispatch(struct h2s *st)
{
        struct h2c *c = st->c;
        struct proxy_worker *w = c->base.w;
        struct proxy_h1_req *req = &st->req;
        struct proxy_route *route;
        char ip[INET6_ADDRSTRLEN], host[PROXY_ROUTE_HOST_MAX + 16], lhost[PROXY_ROUTE_HOST_MAX + 1];
        struct proxy_h1_span hs;
        struct proxy_h1_forward f = {.client_ip = ip, .host = host, .https = true};
        size_t hl;
        int r;

        if (st->hdr_bad)
                return stream_answer(st, 431);
        if (st->method.len == 7 && memcmp(st->hout + st->method.off, "CONNECT", 7) == 0)
                /* Not a forward proxy; RFC 8441 is not offered. */
                return stream_answer(st, 405);
        if (!st->line_done && !put_request_line(st))
                return stream_answer(st, 431);
        if (st->cookie.len &&
            (!hb_put(st, "cookie: ", 8) || !hb_put(st, st->hout + st->cookie.off, st->cookie.len) ||
             !hb_put(st, "\r\n", 2)))
                return stream_answer(st, 431);
        if (!st->req_eof && !st->have_length && !hb_put(st, "transfer-encoding: chunked\r\n", 28))
                return stream_answer(st, 431);
        if (!hb_put(st, "\r\n", 2))
                return stream_answer(st, 431);

        proxy_h1_req_init(req, &c->req_limits, st->req_hdrs, c->req_limits.max_headers);
        r = proxy_h1_req_parse(req, st->hb, st->hb_len);
        if (r != (int)st->hb_len)
                return stream_answer(st, r == -EMSGSIZE ? 431 : 400);
        if (proxy_h1_req_analyze(req, st->hb) < 0 || req->form != PROXY_H1_FORM_ORIGIN ||
            (st->req_eof && req->h.body != PROXY_H1_BODY_NONE &&
             !(req->h.body == PROXY_H1_BODY_LENGTH && req->h.content_length == 0)))
                return stream_answer(st, 400);
        st->head_req = req->method_id == PROXY_H1_METHOD_HEAD;
        hl = req->host.len;
        if (hl == 0 || hl > PROXY_ROUTE_HOST_MAX)
                return stream_answer(st, 400);
        for (size_t i = 0; i < hl; i++)
                lhost[i] = (char)ascii_tolower(st->hb[req->host.off + i]);
        if (lhost[hl - 1] == '.')
                hl--;
        if (hl == 0)
                return stream_answer(st, 400);
        lhost[hl] = 0;
        route = proxy_routes_lookup_wildcard(proxy_worker_snap(w), lhost, hl);
        /* The connection's certificate must cover the name, and the name
         * must be ours and terminated here (RFC 9110 §7.4; coalescing). */
        if (!route || route->mode != PROXY_ROUTE_TERMINATE ||
            !proxy_cert_covers(c->sni_route->cert, lhost, hl))
                return stream_answer(st, 421);

        sock_peer_str(c->s, ip, sizeof(ip));
        hs = req->host_index >= 0 ? req->h.headers[req->host_index].value : req->authority;
        if (hs.len >= sizeof(host))
                return stream_answer(st, 400);
        memcpy(host, st->hb + hs.off, hs.len);
        host[hs.len] = 0;
        r = proxy_h1_req_serialize(req, st->hb, &f, st->hout, c->hout_cap);
        if (r < 0)
                return stream_answer(st, r == -ENOBUFS ? 431 : 400);
        st->route = proxy_route_ref(route);
        st->proxied = true;
        exch_begin(&st->ex, route, 0, st->hout, (uint32_t)r, req->h.body, req->h.content_length,
                   st->head_req);
        if (req->h.body == PROXY_H1_BODY_CHUNKED)
                /* DATA until END_STREAM, chunked towards the backend. */
                h1_pump_init(&st->ex.reqp, PROXY_H1_BODY_CLOSE, PROXY_H1_BODY_CHUNKED, 0,
                             &c->resp_limits);
        st->state = ST_CONNECT;
}

/* ---- nghttp2 callbacks: record, never close ---- */

static int on_begin_frame(nghttp2_session *ng, const nghttp2_frame_hd *hd, void *ud)
{
        struct h2c *c = ud;
        struct h2s *st = stream_of(c, hd->stream_id);

        (void)ng;
        if (st)
                st->req_bytes += H2_FRAME_HD + hd->length;
        else if (hd->type == NGHTTP2_HEADERS)
                c->hdr_pending = H2_FRAME_HD + (uint32_t)hd->length;
        return 0;
}

static int on_begin_headers(nghttp2_session *ng, const nghttp2_frame *frame, void *ud)
{
        struct h2c *c = ud;
        struct h2s *st;

        if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST)
                return 0;
        st = stream_new(c, frame->hd.stream_id);
        if (!st)
                return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
        st->req_bytes = c->hdr_pending;
        c->hdr_pending = 0;
        nghttp2_session_set_stream_user_data(ng, st->id, st);
        /* The header block must end within request_timeout_ms. */
        ev_deadline(c->s->ev, &st->h, PROXY_TQ_REQUEST);
        if (++c->n_requests == H2_MAX_REQUESTS)
                /* This one is served; later streams are refused. */
                (void)nghttp2_submit_goaway(ng, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_NO_ERROR, NULL,
                                            0);
        return 0;
}

static int on_frame_recv(nghttp2_session *ng, const nghttp2_frame *frame, void *ud)
{
        struct h2c *c = ud;
        struct h2s *st = stream_of(c, frame->hd.stream_id);

        (void)ng;
        if (!st)
                return 0;
        if ((frame->hd.type == NGHTTP2_DATA || frame->hd.type == NGHTTP2_HEADERS) &&
            (frame->hd.flags & NGHTTP2_FLAG_END_STREAM))
                st->req_eof = true;
        if (frame->hd.type == NGHTTP2_HEADERS && frame->headers.cat == NGHTTP2_HCAT_REQUEST &&
            st->state == ST_HEADERS) {
                ev_deadline(c->s->ev, &st->h, EV_TQ_NONE);
                stream_dispatch(st);
        }
        return 0;
}

static int on_data_chunk(nghttp2_session *ng, uint8_t flags, int32_t id, const uint8_t *data,
                         size_t len, void *ud)
{
        struct h2c *c = ud;
        struct h2s *st = stream_of(c, id);

        (void)flags;
        if (!st || (st->state != ST_CONNECT && st->state != ST_PROXY) || st->ex.req_sent_all ||
            (st->resp_eof && !st->ex.up)) {
                /* Nobody takes these bytes: give the window back now. */
                (void)nghttp2_session_consume(ng, id, len);
                return 0;
        }
        if (!st->body) {
                st->body = malloc(H2_STREAM_WINDOW);
                if (!st->body)
                        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
        }
        /* Flow control: unconsumed bytes never exceed the stream window. */
        if (len > H2_STREAM_WINDOW - st->blen)
                return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
        memcpy(st->body + st->blen, data, len);
        st->blen += (uint32_t)len;
        st->progress = true;
        return 0;
}

static int on_frame_send(nghttp2_session *ng, const nghttp2_frame *frame, void *ud)
{
        struct h2c *c = ud;
        struct h2s *st = stream_of(c, frame->hd.stream_id);

        if (frame->hd.type == NGHTTP2_RST_STREAM &&
            frame->rst_stream.error_code != NGHTTP2_NO_ERROR)
                glitch(c);
        if (!st)
                return 0;
        st->resp_bytes += H2_FRAME_HD + frame->hd.length;
        if (frame->hd.type == NGHTTP2_DATA)
                st->progress = true;
        if ((frame->hd.type == NGHTTP2_DATA || frame->hd.type == NGHTTP2_HEADERS) &&
            (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) && !st->req_eof)
                /* Answered before the request ended: the client may stop
                 * sending (RFC 9113 §8.1). */
                (void)nghttp2_submit_rst_stream(ng, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_NO_ERROR);
        return 0;
}

static int on_invalid_frame(nghttp2_session *ng, const nghttp2_frame *frame, int err, void *ud)
{
        (void)ng;
        (void)frame;
        (void)err;
        glitch(ud);
        return 0;
}

static int on_stream_close(nghttp2_session *ng, int32_t id, uint32_t code, void *ud)
{
        struct h2c *c = ud;
        struct h2s *st = stream_of(c, id);

        (void)code;
        if (!st)
                return 0;
        nghttp2_session_set_stream_user_data(ng, id, NULL);
        stream_finish(st, true);
        return 0;
}

/* ---- the exchange of a stream ---- */

static void on_exch_wake(void *owner)
{
        struct h2s *st = owner;

        if (!st->c->closing)
                h2_step(st->c);
}

static const struct exch_ops h2_exch_ops = {
        .wake = on_exch_wake,
};

static void stream_proxy(struct h2s *st)
{
        struct h2c *c = st->c;
        struct exch *ex = &st->ex;
        struct upstream *u;
        int r;

        if (ex->ev_timeout) {
                /* No response head within upstream_timeout_ms. */
                ex->ev_timeout = false;
                return stream_answer(st, 504);
        }
        if (!ex->req_sent_all && ex->up) {
                uint32_t pos = st->bfill;

                r = exch_req_fill(ex, st->body, &pos, st->blen, st->req_eof);
                if (r < 0)
                        return stream_answer(st, 400);
                st->bfill = pos;
                if (exch_req_flush(ex) < 0)
                        return stream_upstream_failed(st);
                if (ex->uq.left == 0 && st->bfill > 0) {
                        /* Sent: the client may send that much more. */
                        (void)nghttp2_session_consume(c->ng, st->id, st->bfill);
                        memmove(st->body, st->body + st->bfill, st->blen - st->bfill);
                        st->blen -= st->bfill;
                        st->bfill = 0;
                }
        }
        if (st->resp_eof)
                goto done;
        r = exch_recv(ex, st->q.left == 0);
        if (r == -EMSGSIZE)
                return stream_upstream_failed(st);
        u = ex->up;
        if (!ex->resp_head) {
                while (!ex->resp_head && ex->ulen > 0 && st->state == ST_PROXY) {
                        r = exch_resp_parse(ex);
                        if (r == -EAGAIN)
                                break;
                        if (r < 0)
                                return stream_upstream_failed(st);
                        stream_resp_head(st, r);
                }
                if (st->state != ST_PROXY || st->resp_submitted)
                        return;
                if (u && u->s->err)
                        return stream_upstream_failed(st);
                if (u && u->s->eof) {
                        if (!ex->resp_any && exch_retry(ex)) {
                                st->state = ST_CONNECT;
                                return;
                        }
                        return stream_upstream_failed(st);
                }
                return;
        }
        if (u && u->s->err)
                return stream_reset(st, NGHTTP2_INTERNAL_ERROR);
        if (st->deferred && (r > 0 || ex->ulen > ex->uoff || (u && u->s->eof))) {
                st->deferred = false;
                (void)nghttp2_session_resume_data(c->ng, st->id);
        }
        if (u && u->s->eof && !ex->respp.done && ex->respp.src != PROXY_H1_BODY_CLOSE &&
            ex->uoff == ex->ulen && st->q.left == 0)
                /* The body was cut short. */
                return stream_reset(st, NGHTTP2_INTERNAL_ERROR);
done:
        if (st->resp_eof && st->q.left == 0 && ex->up)
                exch_end(ex);
}

static void stream_step(struct h2s *st)
{
        int r;

        if (st->timeout) {
                st->timeout = false;
                if (st->state == ST_HEADERS) {
                        /* A header block left open blocks the connection. */
                        st->c->fatal = true;
                        st->c->reason = PROXY_CLOSE_REQUEST_TIMEOUT;
                        return;
                }
                if (!st->resp_submitted && !st->req_eof)
                        return stream_answer(st, 408);
                /* No progress: a stalled client (window never opened) or
                 * backend. */
                return stream_reset(st, NGHTTP2_CANCEL);
        }
        if (st->state == ST_CONNECT) {
                r = exch_connect(&st->ex);
                if (r == 0)
                        return;
                if (r < 0)
                        return stream_answer(st, st->ex.all_factory ? 503 : 502);
                st->bfill = 0;
                st->state = ST_PROXY;
        }
        if (st->state == ST_PROXY)
                stream_proxy(st);
}

/* The stream's deadline for its state; and its backend's interest. */
static int stream_poll(struct h2s *st)
{
        struct exch *ex = &st->ex;
        unsigned tq = EV_TQ_NONE;
        bool refresh = false;

        switch (st->state) {
        case ST_HEADERS:
                return 0; /* set once at its begin */
        case ST_CONNECT:
                break;
        case ST_PROXY:
                if (st->resp_submitted) {
                        tq = st->resp_eof ? EV_TQ_NONE : PROXY_TQ_IDLE;
                        refresh = true;
                } else if (!st->req_eof) {
                        tq = PROXY_TQ_REQUEST;
                        refresh = true;
                }
                break;
        case ST_ANSWERED:
                tq = st->resp_eof ? EV_TQ_NONE : PROXY_TQ_IDLE;
                refresh = true;
                break;
        }
        if (tq != st->h.tq || (refresh && st->progress))
                ev_deadline(st->c->s->ev, &st->h, tq);
        st->progress = false;
        if (st->state != ST_PROXY && st->state != ST_CONNECT)
                return 0;
        return exch_poll(ex, ex->ulen < ex->ucap && !(ex->resp_head && ex->respp.done));
}

/* ---- the connection ---- */

static void on_h2_freed(void *data)
{
        struct h2c *c = data;

        proxy_route_unref(c->sni_route);
        free(c->obuf);
        proxy_conn_freed(&c->base, c->reason);
        free(c);
}

static void h2_close(struct h2c *c, enum proxy_close_reason reason)
{
        if (c->closing)
                return;
        log_debug("proxy: h2 %p: closing: %s", (void *)c, proxy_close_reason_str(reason));
        c->closing = true;
        c->reason = (uint8_t)reason;
        while (c->streams)
                stream_finish(c->streams, false);
        nghttp2_session_del(c->ng);
        c->ng = NULL;
        sock_close(c->s,
                   reason == PROXY_CLOSE_DONE || reason == PROXY_CLOSE_KEEPALIVE_DONE ||
                           reason == PROXY_CLOSE_IDLE_TIMEOUT || reason == PROXY_CLOSE_STOP,
                   on_h2_freed);
}

/* Let nghttp2 produce frames while the socket takes them. Returns 0
 * (wr_blocked set if the socket is full) or -errno. */
static int h2_send(struct h2c *c)
{
        for (;;) {
                size_t before;
                int r;

                if (c->oq.left == 0) {
                        c->olen = 0;
                        c->pend = NULL;
                        while (!c->pend && c->olen < H2_OUT_CAP) {
                                const uint8_t *p;
                                ssize_t n = nghttp2_session_mem_send(c->ng, &p);

                                if (n < 0)
                                        return -EPROTO;
                                if (n == 0)
                                        break;
                                if (!c->obuf) {
                                        c->obuf = malloc(H2_OUT_CAP);
                                        if (!c->obuf)
                                                return -ENOMEM;
                                }
                                if ((size_t)n <= H2_OUT_CAP - c->olen) {
                                        memcpy(c->obuf + c->olen, p, (size_t)n);
                                        c->olen += (uint32_t)n;
                                } else {
                                        c->pend = p;
                                        c->pend_len = (size_t)n;
                                }
                        }
                        iovq_reset(&c->oq);
                        iovq_add(&c->oq, c->obuf, c->olen);
                        if (c->pend)
                                iovq_add(&c->oq, c->pend, c->pend_len);
                        if (c->oq.left == 0) {
                                if (c->n_streams == 0)
                                        c->obuf = mfree(c->obuf);
                                return 0;
                        }
                }
                before = c->oq.left;
                r = sock_write(c->s, &c->oq, NULL);
                if (r < 0)
                        return r;
                if (c->oq.left < before)
                        c->progress = true;
                if (c->oq.left > 0)
                        return 0;
        }
}

/* Read what the socket has and feed nghttp2. Returns 1 when bytes came,
 * 0 when none, -1 after closing the connection. */
static int h2_recv(struct h2c *c)
{
        uint8_t *buf = c->base.w->scratch;
        int got = 0;

        for (unsigned i = 0; i < H2_READS_PER_STEP; i++) {
                ssize_t k, rv;

                /* A client that does not read what we send is not read
                 * either (its PINGs and SETTINGS wait in the kernel). */
                if (c->s->wr_blocked || !sock_can_read(c->s) || !nghttp2_session_want_read(c->ng))
                        break;
                k = sock_read(c->s, buf, PROXY_SCRATCH_SIZE);
                if (k == -EAGAIN)
                        break;
                if (k == 0) {
                        h2_close(c, c->n_streams ? PROXY_CLOSE_CLIENT_EOF
                                                 : PROXY_CLOSE_KEEPALIVE_DONE);
                        return -1;
                }
                if (k < 0) {
                        c->s->err = (int)k;
                        h2_close(c, PROXY_CLOSE_CLIENT_ERROR);
                        return -1;
                }
                c->progress = true;
                got = 1;
                rv = nghttp2_session_mem_recv(c->ng, buf, (size_t)k);
                if (rv < 0 || c->fatal) {
                        log_debug("proxy: h2 %p: %s", (void *)c,
                                  rv < 0 ? nghttp2_strerror((int)rv) : "deadline");
                        /* A protocol error left a GOAWAY queued: try it. */
                        (void)h2_send(c);
                        h2_close(c, c->fatal ? (enum proxy_close_reason)c->reason
                                             : PROXY_CLOSE_BAD_REQUEST);
                        return -1;
                }
        }
        return got;
}

static void h2_step(struct h2c *c)
{
        unsigned tq;
        int r;

        if (c->closing)
                return;
        for (;;) {
                c->progress = false;
                if (c->ev_timeout) {
                        c->ev_timeout = false;
                        if (c->n_streams == 0) {
                                (void)nghttp2_submit_goaway(
                                        c->ng, NGHTTP2_FLAG_NONE,
                                        nghttp2_session_get_last_proc_stream_id(c->ng),
                                        NGHTTP2_NO_ERROR, NULL, 0);
                                (void)h2_send(c);
                                return h2_close(c, PROXY_CLOSE_KEEPALIVE_DONE);
                        }
                }
                if (c->s->err)
                        return h2_close(c, PROXY_CLOSE_CLIENT_ERROR);
                if (h2_recv(c) < 0)
                        return;
                for (struct h2s *st = c->streams; st; st = st->next)
                        stream_step(st);
                if (c->fatal)
                        return h2_close(c, (enum proxy_close_reason)c->reason);
                r = h2_send(c);
                if (r < 0) {
                        c->s->err = r;
                        return h2_close(c, r == -EPROTO ? PROXY_CLOSE_BAD_REQUEST
                                                        : PROXY_CLOSE_CLIENT_ERROR);
                }
                if (!c->progress)
                        break;
        }
        if (!nghttp2_session_want_read(c->ng) && !nghttp2_session_want_write(c->ng) &&
            c->oq.left == 0)
                return h2_close(c, c->calm ? PROXY_CLOSE_BAD_REQUEST : PROXY_CLOSE_KEEPALIVE_DONE);

        /* Deadlines: between streams the keep-alive one; while streams are
         * open each has its own, and the socket none. */
        tq = c->n_streams ? EV_TQ_NONE : PROXY_TQ_KEEPALIVE;
        if (tq != c->s->h.tq || c->timer_reset)
                sock_deadline(c->s, tq);
        c->timer_reset = false;
        c->progress = false;
        for (struct h2s *st = c->streams; st; st = st->next)
                if (stream_poll(st) < 0)
                        stream_reset(st, NGHTTP2_INTERNAL_ERROR);
        r = sock_want(c->s, !c->s->wr_blocked && nghttp2_session_want_read(c->ng));
        if (r < 0)
                h2_close(c, PROXY_CLOSE_CLIENT_ERROR);
}

static void on_h2_event(struct sock *s, unsigned events)
{
        struct h2c *c = s->data;

        if (c->closing)
                return;
        if (events & EV_TIMEOUT)
                c->ev_timeout = true;
        h2_step(c);
}

/* ---- the worker's view: route changes and stop ---- */

static void on_routes_changed(struct proxy_conn *pc)
{
        struct h2c *c = container_of(pc, struct h2c, base);
        const struct proxy_routes *snap = c->base.w->snap;

        if (c->closing)
                return;
        if (!proxy_route_still_current(snap, c->sni_route))
                return h2_close(c, PROXY_CLOSE_ROUTE_REMOVED);
        for (struct h2s *st = c->streams; st; st = st->next)
                if (st->route && !proxy_route_still_current(snap, st->route))
                        stream_reset(st, NGHTTP2_REFUSED_STREAM);
        h2_step(c);
}

static void on_stop(struct proxy_conn *pc, bool now)
{
        struct h2c *c = container_of(pc, struct h2c, base);

        if (c->closing)
                return;
        if (now)
                return h2_close(c, PROXY_CLOSE_STOP);
        /* Streams begun finish; no new ones (RFC 9113 §6.8). */
        (void)nghttp2_submit_goaway(c->ng, NGHTTP2_FLAG_NONE,
                                    nghttp2_session_get_last_proc_stream_id(c->ng),
                                    NGHTTP2_NO_ERROR, NULL, 0);
        if (c->n_streams == 0) {
                (void)h2_send(c);
                return h2_close(c, PROXY_CLOSE_STOP);
        }
        h2_step(c);
}

static const struct proxy_conn_ops h2_ops = {
        .name = "h2",
        .routes_changed = on_routes_changed,
        .stop = on_stop,
};

/* ---- public API ---- */

static int h2_session_new(struct h2c *c)
{
        const struct proxy_config *cfg = c->base.w->cfg;
        nghttp2_session_callbacks *cb;
        nghttp2_option *opt;
        nghttp2_settings_entry iv[] = {
                {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, H2_MAX_STREAMS},
                {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, H2_STREAM_WINDOW},
                {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, cfg->max_head},
                {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
        };
        int r;

        if (nghttp2_session_callbacks_new(&cb) != 0)
                return -ENOMEM;
        nghttp2_session_callbacks_set_on_begin_frame_callback(cb, on_begin_frame);
        nghttp2_session_callbacks_set_on_begin_headers_callback(cb, on_begin_headers);
        nghttp2_session_callbacks_set_on_header_callback(cb, on_header);
        nghttp2_session_callbacks_set_on_frame_recv_callback(cb, on_frame_recv);
        nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, on_data_chunk);
        nghttp2_session_callbacks_set_on_frame_send_callback(cb, on_frame_send);
        nghttp2_session_callbacks_set_on_invalid_frame_recv_callback(cb, on_invalid_frame);
        nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_stream_close);
        if (nghttp2_option_new(&opt) != 0) {
                nghttp2_session_callbacks_del(cb);
                return -ENOMEM;
        }
        /* Request DATA is acknowledged only once the backend took it. */
        nghttp2_option_set_no_auto_window_update(opt, 1);
        nghttp2_option_set_max_outbound_ack(opt, H2_MAX_OUTBOUND_ACK);
        nghttp2_option_set_max_settings(opt, H2_MAX_SETTINGS);
        nghttp2_option_set_stream_reset_rate_limit(opt, H2_RESET_BURST, H2_RESET_RATE);
        /* A header list of max_head bytes fits in HEADERS and one
         * CONTINUATION of the default frame size; two more for clients
         * that split differently (nghttp2's own default is 8). */
        nghttp2_option_set_max_continuations(opt, cfg->max_head / 16384 + 2);
        r = nghttp2_session_server_new2(&c->ng, cb, c, opt);
        nghttp2_option_del(opt);
        nghttp2_session_callbacks_del(cb);
        if (r != 0)
                return -ENOMEM;
        if (nghttp2_submit_settings(c->ng, NGHTTP2_FLAG_NONE, iv, ELEMENTSOF(iv)) != 0 ||
            nghttp2_session_set_local_window_size(c->ng, NGHTTP2_FLAG_NONE, 0, H2_CONN_WINDOW) !=
                    0) {
                nghttp2_session_del(TAKE_PTR(c->ng));
                return -ENOMEM;
        }
        return 0;
}

int h2_conn_start(struct proxy_worker *w, struct sock *s, struct proxy_route *sni_route,
                  struct proxy_conn *from)
{
        const struct proxy_config *cfg = w->cfg;
        struct h2c *c;

        assert(w && s && sni_route && from);
        if (w->stopping)
                return -ESHUTDOWN;
        c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        c->base.w = w;
        c->s = s;
        /* Two more fields than a client may send: Host from :authority and
         * our framing. */
        c->req_limits = (struct proxy_h1_limits){.max_head = cfg->max_head + H2_HEAD_SLACK,
                                                 .max_headers = cfg->max_headers + 2,
                                                 .max_target = cfg->max_head};
        c->resp_limits = (struct proxy_h1_limits){.max_head = cfg->max_head,
                                                  .max_headers = cfg->max_headers,
                                                  .max_target = cfg->max_head};
        c->hb_cap = c->req_limits.max_head;
        c->hout_cap = cfg->max_head + H2_HEAD_SLACK + H2_HOUT_SLACK;
        c->uin_cap = cfg->max_head + H2_UIN_EXTRA;
        c->exch_env = (struct exch_env){
                .pool = &w->pool,
                .tq_connect = PROXY_TQ_CONNECT,
                .tq_upstream = PROXY_TQ_UPSTREAM,
                .limits = &c->resp_limits,
                .st_connects = &w->stats.upstream_connects,
                .st_reused = &w->stats.upstream_reused,
                .st_connect_errors = &w->stats.connect_errors,
        };
        if (h2_session_new(c) < 0) {
                free(c);
                return -ENOMEM;
        }
        c->sni_route = proxy_route_ref(sni_route);
        proxy_conn_switch(from, &c->base, &h2_ops);
        sock_set_cb(s, on_h2_event, c);
        /* The preface usually came with the handshake's last flight. */
        s->rd_ready = true;
        c->timer_reset = true;
        h2_step(c);
        return 0;
}
