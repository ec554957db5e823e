/* SPDX-License-Identifier: Apache-2.0 */
/* The HTTP/2 server: one stream (its HEADERS into an HTTP/1.1 head, routing,
 * the exchange with a backend, the response, deadlines). */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/ssl.h>

#include "common/log.h"
#include "common/macros.h"
#include "common/siphash.h"
#include "proxy/h1-server.h"
#include "proxy/h2-internal.h"
#include "proxy/routes.h"
#include "proxy/svcstats.h"
#include "proxy/tls.h"

/* ---- streams: lifetime ---- */

static void on_stream_timeout(struct ev_handle *h, unsigned events)
{
        struct h2s *st = container_of(h, struct h2s, h);

        (void)events;
        st->timeout = true;
        st->dirty = true;
        h2__step(st->c);
}

static void on_stream_freed(struct ev_handle *h)
{
        struct h2s *st = container_of(h, struct h2s, h);

        free(st->log_req);
        free(st->body);
        free(st);
}

static const struct exch_ops h2_exch_ops;
static void stream_log(struct h2s *st);

struct h2s *h2__stream_new(struct h2c *c, int32_t id)
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
        p += rhdrs;
        st->hb = p;
        p += c->hb_cap;
        st->hout = p;
        st->c = c;
        st->id = id;
        st->state = ST_HEADERS;
        st->log_start_ns = proxy_access_clock(c->base.w);
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
void h2__stream_finish(struct h2s *st, bool session_alive)
{
        struct h2c *c = st->c;

        uint64_t now = st->start_us ? uv_hrtime() / 1000u : 0;
        struct proxy_request_info ri = {
                .status = st->status,
                .method = st->method_stat,
                .version = PROXY_HTTP_2,
                .req_bytes = st->req_bytes,
                .resp_bytes = st->resp_bytes,
                .duration_us = now > st->start_us ? now - st->start_us : 0,
        };

        proxy_request_done(c->base.w, st->proxied ? st->route : NULL, &ri);
        stream_log(st);
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

void h2__stream_reset(struct h2s *st, uint32_t code)
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

/* With the log on: copy the request's method, :authority and :path (still
 * in hout, where the pseudo-header values wait) for the stream's line. */
static void stream_log_request(struct h2s *st)
{
        size_t ml, hl, pl;

        if (!st->log_start_ns || st->log_req)
                return;
        /* At most the line's budgets (and one byte more, so the line still
         * says it was cut). */
        ml = MIN((size_t)st->method.len, (size_t)PROXY_ACCESS_METHOD_MAX + 1);
        hl = st->authority.len;
        /* The host routed on: the port goes ("name:443", "[v6]:443"). */
        for (size_t i = hl; i > 0; i--) {
                uint8_t ch = st->hout[st->authority.off + i - 1];

                if (ch == ':') {
                        if (i < hl)
                                hl = i - 1;
                        break;
                }
                if (ch < '0' || ch > '9')
                        break;
        }
        hl = MIN(hl, (size_t)PROXY_ACCESS_HOST_MAX + 1);
        pl = MIN((size_t)st->path.len, (size_t)PROXY_ACCESS_PATH_MAX + 1);
        st->log_req = malloc(ml + hl + pl + 1);
        if (!st->log_req)
                return; /* no line for it */
        memcpy(st->log_req, st->hout + st->method.off, ml);
        memcpy(st->log_req + ml, st->hout + st->authority.off, hl);
        memcpy(st->log_req + ml + hl, st->hout + st->path.off, pl);
        st->log_ml = (uint16_t)ml;
        st->log_hl = (uint16_t)hl;
        st->log_pl = (uint16_t)pl;
}

/* The stream's access log line (issue 11), at its end. */
static void stream_log(struct h2s *st)
{
        struct h2c *c = st->c;
        struct proxy_worker *w = c->base.w;
        struct proxy_access_record rec = {0};
        struct sockaddr_storage cl, up;

        if (!st->log_req)
                return;
        if (proxy_access_on(w)) {
                rec.start_ns = st->log_start_ns;
                rec.upstream_start_ns = st->log_up_ns;
                rec.upstream_head_ns = st->log_up_head_ns;
                rec.client = sock_peer_sockaddr(c->s, &cl);
                if (st->proxied)
                        rec.workload =
                                (struct proxy_access_str){st->route->id, strlen(st->route->id)};
                rec.method = (struct proxy_access_str){st->log_req, st->log_ml};
                rec.host = (struct proxy_access_str){st->log_req + st->log_ml, st->log_hl};
                rec.path = (struct proxy_access_str){st->log_req + st->log_ml + st->log_hl,
                                                     st->log_pl};
                rec.req_bytes = st->req_bytes;
                rec.resp_bytes = st->resp_bytes;
                rec.status = st->status;
                if (st->proxied)
                        rec.upstream = proxy_access_backend(st->ex.be, 0, &up);
                rec.tls = (uint8_t)proxy_access_tls_from_wire((uint16_t)SSL_version(c->s->ssl));
                rec.proto = PROXY_ACCESS_PROTO_HTTP2;
                proxy_access_emit(w, &rec);
        }
        st->log_req = mfree(st->log_req);
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
                return h2__stream_reset(st, NGHTTP2_INTERNAL_ERROR);
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
                return h2__stream_reset(st, NGHTTP2_INTERNAL_ERROR);
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

/* The backend's trailer fields, those that may be trailers (the pump kept
 * them in the response buffer, which no read touches once the body is
 * complete), as the stream's trailing HEADERS (names lower-cased in
 * place; nghttp2 copies the fields). Returns 0, or -ENOMEM/-EPROTO: then
 * the trailers are dropped and the last DATA ends the stream. */
static int stream_submit_trailers(struct h2s *st)
{
        struct exch *ex = &st->ex;
        uint8_t *p = ex->uin + ex->respp.tr_off;
        size_t len = ex->respp.tr_len, pos = 0, n = 0;
        struct proxy_h1_span name, value;
        nghttp2_nv *nva;
        int r;

        while (proxy_h1_trailer_next(p, len, &pos, &name, &value))
                n++;
        nva = malloc(n * sizeof(*nva));
        if (!nva)
                return -ENOMEM;
        pos = n = 0;
        while (proxy_h1_trailer_next(p, len, &pos, &name, &value)) {
                for (uint32_t j = 0; j < name.len; j++)
                        p[name.off + j] = ascii_tolower(p[name.off + j]);
                nva[n++] = (nghttp2_nv){p + name.off, p + value.off, name.len, value.len,
                                        NGHTTP2_NV_FLAG_NONE};
        }
        r = nghttp2_submit_trailer(st->c->ng, st->id, nva, n);
        free(nva);
        return r < 0 ? -EPROTO : 0;
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
        st->dirty = true; /* room in the response buffer: read the backend */
        if (st->q.left == 0 && h1_pump_finished(&ex->respp)) {
                *flags |= NGHTTP2_DATA_FLAG_EOF;
                /* Trailers: END_STREAM goes on their HEADERS instead. */
                if (ex->respp.tr_len > 0 && stream_submit_trailers(st) == 0)
                        *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
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
                return h2__stream_reset(st, NGHTTP2_INTERNAL_ERROR);
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
        if (st->log_start_ns)
                st->log_up_head_ns = proxy_access_clock(c->base.w);
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
                h2__stream_reset(st, NGHTTP2_INTERNAL_ERROR);
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

/* A field of the request's trailer block: kept (bounded like the head)
 * for a body chunked towards the backend, which carries it after the
 * last chunk (RFC 9112 §7.1.2); dropped for one with Content-Length (no
 * place for it in HTTP/1.1) and after our own answer. Fields that must not
 * be trailers (RFC 9110 §6.5.1: framing, routing, authentication,
 * connection; proxy_h1_trailer_allowed(), the list response trailers go
 * through too) are dropped. */
static int on_trailer(struct h2s *st, const nghttp2_frame *frame, const uint8_t *name, size_t nl,
                      const uint8_t *value, size_t vl)
{
        struct h2c *c = st->c;

        if (frame->headers.cat != NGHTTP2_HCAT_HEADERS || st->trailers_bad ||
            st->ex.reqp.src != PROXY_H1_BODY_CLOSE || st->state == ST_ANSWERED)
                return 0;
        st->dec_bytes += (uint32_t)MIN(nl + vl, (size_t)UINT32_MAX / 2);
        if (st->dec_bytes > c->req_limits.max_head - H2_HEAD_SLACK) {
                st->trailers_bad = true;
                st->tl_len = 0;
                h2__glitch(c);
                return 0;
        }
        if (!proxy_h1_trailer_allowed(name, nl))
                return 0;
        if (nl + vl + 4 > c->hb_cap - st->tl_len) {
                st->trailers_bad = true;
                st->tl_len = 0;
                return 0;
        }
        memcpy(st->hb + st->tl_len, name, nl);
        st->tl_len += (uint32_t)nl;
        memcpy(st->hb + st->tl_len, ": ", 2);
        st->tl_len += 2;
        memcpy(st->hb + st->tl_len, value, vl);
        st->tl_len += (uint32_t)vl;
        memcpy(st->hb + st->tl_len, "\r\n", 2);
        st->tl_len += 2;
        return 0;
}

int h2__on_header(nghttp2_session *ng, const nghttp2_frame *frame, const uint8_t *name, size_t nl,
                  const uint8_t *value, size_t vl, uint8_t flags, void *ud)
{
        struct h2c *c = ud;
        struct h2s *st = h2__stream_of(c, frame->hd.stream_id);

        (void)ng;
        (void)flags;
        if (!st)
                return 0;
        if (st->state != ST_HEADERS)
                return on_trailer(st, frame, name, nl, value, vl);
        if (st->hdr_bad)
                return 0;
        st->n_fields++;
        st->dec_bytes += (uint32_t)MIN(nl + vl, (size_t)UINT32_MAX / 2);
        if (st->n_fields > c->req_limits.max_headers - 2 ||
            st->dec_bytes > c->req_limits.max_head - H2_HEAD_SLACK) {
                /* HPACK makes a large list cheap to send; decoded it is
                 * bounded like an HTTP/1.1 head. */
                st->hdr_bad = true;
                h2__glitch(c);
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
void h2__stream_dispatch(struct h2s *st)
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

        stream_log_request(st);
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
        st->method_stat = proxy_h1_method_stat(req->method_id);
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
        st->start_us = uv_hrtime() / 1000u;
        if (st->log_start_ns)
                st->log_up_ns = proxy_access_clock(w);
        exch_begin(&st->ex, route, 0, st->hout, (uint32_t)r, req->h.body, req->h.content_length,
                   st->head_req);
        if (req->h.body == PROXY_H1_BODY_CHUNKED)
                /* DATA until END_STREAM, chunked towards the backend. */
                h1_pump_init(&st->ex.reqp, PROXY_H1_BODY_CLOSE, PROXY_H1_BODY_CHUNKED, 0,
                             &c->resp_limits);
        st->state = ST_CONNECT;
        st->dirty = true;
}

/* ---- the exchange of a stream ---- */

static void on_exch_wake(void *owner)
{
        struct h2s *st = owner;
        struct h2c *c = st->c;

        st->dirty = true;
        if (c->closing)
                return;
        /* The backends of many streams answer in one batch of events: one
         * step after it serves them all (one TLS record, one write to the
         * client, one pass over the streams' deadlines). */
        c->woken = true;
        if (!sock_defer(c->s))
                h2__step(c);
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

                /* With trailers, the last chunk is ours: "0", the fields,
                 * the empty line. */
                bool own_last =
                        st->trailers && st->tl_len > 0 && ex->reqp.src == PROXY_H1_BODY_CLOSE;

                r = exch_req_fill(ex, st->body, &pos, st->blen, st->req_eof && !own_last);
                if (r >= 0 && own_last && st->req_eof && pos == st->blen && !ex->reqp.done &&
                    (unsigned)ex->uq.n + 3 <= IOVQ_MAX) {
                        iovq_add(&ex->uq, "0\r\n", 3);
                        iovq_add(&ex->uq, st->hb, st->tl_len);
                        iovq_add(&ex->uq, "\r\n", 2);
                        ex->reqp.done = ex->reqp.last_queued = true;
                }
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
                return h2__stream_reset(st, NGHTTP2_INTERNAL_ERROR);
        /* Bytes the pump holds (a trailer section not yet complete) are
         * no news. */
        if (st->deferred &&
            (r > 0 || ex->ulen - ex->uoff > h1_pump_held(&ex->respp) || (u && u->s->eof))) {
                st->deferred = false;
                (void)nghttp2_session_resume_data(c->ng, st->id);
        }
        if (u && u->s->eof && !ex->respp.done && ex->respp.src != PROXY_H1_BODY_CLOSE &&
            ex->ulen - ex->uoff == h1_pump_held(&ex->respp) && st->q.left == 0)
                /* The body was cut short. */
                return h2__stream_reset(st, NGHTTP2_INTERNAL_ERROR);
done:
        if (st->resp_eof && st->q.left == 0 && ex->up)
                exch_end(ex);
}

static void stream_step1(struct h2s *st)
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
                return h2__stream_reset(st, NGHTTP2_CANCEL);
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

bool h2__stream_step(struct h2s *st)
{
        uint8_t state = st->state;

        st->dirty = false;
        st->ex.progress = false;
        stream_step1(st);
        /* Bytes moved to or from the backend, or a new state (a retry, a
         * connect done): there may be more to do at once. */
        if (st->ex.progress || st->state != state)
                st->dirty = true;
        return st->dirty;
}

/* The stream's deadline for its state; and its backend's interest. */
int h2__stream_poll(struct h2s *st)
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
