/* SPDX-License-Identifier: Apache-2.0 */
/* The HTTP/1.1 server's access log lines (issue 11): one per request
 * (proxied, answered by us, or cut short) and one per WebSocket tunnel,
 * from what the connection and its exchange block hold at the end. */
#include <stdlib.h>
#include <string.h>

#include <openssl/ssl.h>

#include "common/macros.h"
#include "proxy/h1-internal.h"
#include "proxy/routes.h"

/* What a tunnel's line needs once x->in carries payload: one allocation,
 * only with the log on, freed with the tunnel. */
struct tun_log {
        uint32_t method_len, host_len, path_len;
        char data[]; /* method, host, path */
};

static struct proxy_access_str span(const struct xb *x, struct proxy_h1_span sp)
{
        return (struct proxy_access_str){(const char *)x->in + sp.off, sp.len};
}

void h1__access_tunnel_start(struct hconn *c)
{
        const struct xb *x = c->x;
        const struct proxy_h1_req *req = &x->req;
        struct tun_log *t;
        size_t ml, hl, pl;

        if (!x->e.start_ns || c->tun_log)
                return;
        /* At most the line's budgets (and one byte more, so the line still
         * says it was cut). */
        ml = MIN((size_t)req->method.len, (size_t)PROXY_ACCESS_METHOD_MAX + 1);
        hl = MIN((size_t)req->host.len, (size_t)PROXY_ACCESS_HOST_MAX + 1);
        pl = MIN((size_t)req->path.len, (size_t)PROXY_ACCESS_PATH_MAX + 1);
        t = malloc(sizeof(*t) + ml + hl + pl);
        if (!t)
                return; /* the line goes without them */
        t->method_len = (uint32_t)ml;
        t->host_len = (uint32_t)hl;
        t->path_len = (uint32_t)pl;
        memcpy(t->data, x->in + req->method.off, ml);
        memcpy(t->data + ml, x->in + req->host.off, hl);
        memcpy(t->data + ml + hl, x->in + req->path.off, pl);
        c->tun_log = (char *)t;
}

void h1__access_log(struct hconn *c, bool closed, enum proxy_close_reason reason)
{
        struct proxy_worker *w = c->base.w;
        struct xb *x = c->x;
        struct proxy_access_record rec = {0};
        struct sockaddr_storage cl, up;
        bool tunnel = c->state == HC_TUNNEL;

        if (!x || x->e.logged)
                return;
        x->e.logged = true;
        if (!x->e.start_ns || !proxy_access_on(w)) {
                c->tun_log = mfree(c->tun_log);
                return;
        }
        rec.start_ns = x->e.start_ns;
        rec.upstream_start_ns = x->e.up_start_ns;
        rec.upstream_head_ns = x->e.up_head_ns;
        rec.client = sock_peer_sockaddr(c->s, &cl);
        if (c->route && x->e.routed)
                rec.workload = (struct proxy_access_str){c->route->id, strlen(c->route->id)};
        if (tunnel && c->tun_log) {
                const struct tun_log *t = (const struct tun_log *)c->tun_log;

                rec.method = (struct proxy_access_str){t->data, t->method_len};
                rec.host = (struct proxy_access_str){t->data + t->method_len, t->host_len};
                rec.path = (struct proxy_access_str){t->data + t->method_len + t->host_len,
                                                     t->path_len};
        } else if (!tunnel && x->e.parsed) {
                rec.method = span(x, x->req.method);
                rec.path = span(x, x->req.path);
                if (x->e.analyzed && x->req.host.len > 0)
                        rec.host = span(x, x->req.host);
        }
        rec.req_bytes = x->e.req_bytes;
        rec.resp_bytes = x->e.resp_bytes;
        if (tunnel) {
                rec.req_bytes += x->relay.total[RELAY_UP];
                rec.resp_bytes += x->relay.total[RELAY_DOWN];
        }
        rec.status = x->e.status;
        if (x->e.proxied)
                rec.upstream = proxy_access_backend(x->ex.be, x->ex.dial_port, &up);
        rec.closed = closed;
        rec.close = (uint8_t)reason;
        rec.tls = c->s->ssl ? (uint8_t)proxy_access_tls_from_wire((uint16_t)SSL_version(c->s->ssl))
                            : PROXY_ACCESS_TLS_NONE;
        rec.proto = tunnel          ? PROXY_ACCESS_PROTO_WEBSOCKET
                    : x->e.client10 ? PROXY_ACCESS_PROTO_HTTP10
                                    : PROXY_ACCESS_PROTO_HTTP11;
        proxy_access_emit(w, &rec);
        c->tun_log = mfree(c->tun_log);
}
