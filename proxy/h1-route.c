/* SPDX-License-Identifier: Apache-2.0 */
/* The HTTP/1.1 server: routing a request by Host and our own answers. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <uv.h>

#include "common/log.h"
#include "common/macros.h"
#include "proxy/h1-internal.h"
#include "proxy/routes.h"
#include "proxy/tls.h"

#define ACME_PREFIX  "/.well-known/acme-challenge/"
#define ACME_OUT_MAX 1024u

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

/* Answer the current request ourselves and end the connection afterwards
 * (with @reason). A backend connection in use is closed. */
void h1__respond(struct hconn *c, unsigned status, enum proxy_close_reason reason,
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
                return h1__close(c, reason);
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
                        return h1__close(c, reason);                                               \
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
        h1__set_state(c, HC_RESPOND);
}

void h1__bad_request(struct hconn *c, int status)
{
        log_debug("proxy: hconn %p: bad request: %s", (void *)c,
                  proxy_h1_err_to_string(c->x->req.h.err));
        h1__respond(c, status > 0 ? (unsigned)status : 400, PROXY_CLOSE_BAD_REQUEST, NULL);
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
                return h1__respond(c, 404, PROXY_CLOSE_KEEPALIVE_DONE, NULL);
        if (r < 0 || (size_t)r > ACME_OUT_MAX)
                return h1__respond(c, 500, PROXY_CLOSE_KEEPALIVE_DONE, NULL);
        a.body = out;
        a.body_len = (size_t)r;
        h1__respond(c, 200, PROXY_CLOSE_KEEPALIVE_DONE, &a);
}

/* The parser's methods as the route's statistics count them (Traefik's
 * set: the same nine, anything else OTHER). */
static const uint8_t h1_methods[_PROXY_H1_METHOD_MAX] = {
        [PROXY_H1_METHOD_OTHER] = PROXY_METHOD_OTHER,
        [PROXY_H1_METHOD_GET] = PROXY_METHOD_GET,
        [PROXY_H1_METHOD_HEAD] = PROXY_METHOD_HEAD,
        [PROXY_H1_METHOD_POST] = PROXY_METHOD_POST,
        [PROXY_H1_METHOD_PUT] = PROXY_METHOD_PUT,
        [PROXY_H1_METHOD_DELETE] = PROXY_METHOD_DELETE,
        [PROXY_H1_METHOD_CONNECT] = PROXY_METHOD_CONNECT,
        [PROXY_H1_METHOD_OPTIONS] = PROXY_METHOD_OPTIONS,
        [PROXY_H1_METHOD_TRACE] = PROXY_METHOD_TRACE,
        [PROXY_H1_METHOD_PATCH] = PROXY_METHOD_PATCH,
};

uint8_t proxy_h1_method_stat(unsigned method_id)
{
        return method_id < ELEMENTSOF(h1_methods) ? h1_methods[method_id] : PROXY_METHOD_OTHER;
}

void h1__dispatch(struct hconn *c, int head_len)
{
        struct h1_ctx *ctx = hc_ctx(c);
        const struct proxy_config *cfg = ctx->cfg;
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
        x->e.parsed = true;
        x->e.head_req = req->method_id == PROXY_H1_METHOD_HEAD;
        x->e.client10 = req->h.minor == 0;
        x->e.start_us = uv_hrtime() / 1000u;
        x->e.method = proxy_h1_method_stat(req->method_id);
        x->e.version = x->e.client10 ? PROXY_HTTP_1_0 : PROXY_HTTP_1_1;
        r = proxy_h1_req_analyze(req, x->in);
        if (r < 0)
                return h1__bad_request(c, proxy_h1_err_status(req->h.err));
        x->e.analyzed = true;
        if (req->form == PROXY_H1_FORM_AUTHORITY || req->h.body == PROXY_H1_BODY_CLOSE)
                return h1__bad_request(c, 400);
        hl = req->host.len;
        if (hl == 0 || hl > PROXY_ROUTE_HOST_MAX)
                /* HTTP/1.0 without Host, or nothing we could route. */
                return h1__bad_request(c, 400);
        for (size_t i = 0; i < hl; i++)
                host[i] = (char)ascii_tolower(x->in[req->host.off + i]);
        if (host[hl - 1] == '.')
                hl--;
        if (hl == 0)
                return h1__bad_request(c, 400);
        host[hl] = 0;

        snap = proxy_worker_snap(ctx->w);
        route = proxy_routes_lookup_wildcard(snap, host, hl);

        if (c->s->ssl) {
                /* The connection's certificate must cover the name, and the
                 * name must be ours and terminated here (RFC 9110 §7.4). */
                if (!route || route->mode != PROXY_ROUTE_TERMINATE ||
                    !proxy_cert_covers(c->sni_route->cert, host, hl))
                        return h1__respond(c, 421, PROXY_CLOSE_KEEPALIVE_DONE, NULL);
                return h1__proxy_begin(c, route, 0);
        }

        if (!route)
                return h1__respond(c, 404, PROXY_CLOSE_KEEPALIVE_DONE, NULL);
        path = x->in + req->path.off;
        pl = req->path.len;
        if (pl >= sizeof(ACME_PREFIX) - 1 &&
            memcmp(path, ACME_PREFIX, sizeof(ACME_PREFIX) - 1) == 0) {
                const uint8_t *tok = path + sizeof(ACME_PREFIX) - 1;
                size_t tl = 0;

                if (route->mode == PROXY_ROUTE_PASSTHROUGH)
                        /* The backend terminates TLS itself and gets its own
                         * certificate over its port 80. */
                        return h1__proxy_begin(c, route, 80);
                h1__set_route(c, route);
                x->e.routed = true;
                while (tl < pl - (sizeof(ACME_PREFIX) - 1) && is_token_char(tok[tl]))
                        tl++;
                if (tl != pl - (sizeof(ACME_PREFIX) - 1))
                        return h1__respond(c, 404, PROXY_CLOSE_KEEPALIVE_DONE, NULL);
                return hc_acme_answer(c, host, tok, tl);
        }
        if (route->mode == PROXY_ROUTE_TERMINATE && cfg->http_plain)
                return h1__proxy_begin(c, route, 0);

        h1__set_route(c, route);
        x->e.routed = true;
        struct ans a = {.loc_host = (const char *)x->in + req->host.off,
                        .loc_host_len = req->host.len,
                        .loc_path = path,
                        .loc_path_len = pl};
        if (req->form == PROXY_H1_FORM_ASTERISK || pl == 0 || path[0] != '/') {
                a.loc_path = (const uint8_t *)"/";
                a.loc_path_len = 1;
        }
        h1__respond(c, 308, PROXY_CLOSE_KEEPALIVE_DONE, &a);
}
