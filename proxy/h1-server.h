/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* Engine-internal: the HTTP/1.1 server, on :80 (plain) and on :443 once the
 * TLS front completed a handshake for a terminated route.
 *
 * Behaviour (docs/internals/proxy.md has the details):
 *   - Requests parsed with proxy/http1 (strict, resumable), one at a time:
 *     pipelined requests wait in the read buffer and are answered in order.
 *   - Routing by Host (port stripped): on TLS the Host must be covered by
 *     the connection's certificate (proxy_cert_covers) and be a known
 *     TERMINATE route, else 421. On :80: /.well-known/acme-challenge/<token>
 *     goes to cfg->acme_token for a terminated name or is proxied to port
 *     80 of the passthrough route's backend address; any other request for
 *     a known name gets 308 to https://<host><target> (or is proxied when
 *     cfg->http_plain); an unknown name gets 404.
 *   - Proxying through one exchange per request (proxy/exchange.h):
 *     re-serialised head (X-Forwarded-*, X-Real-IP, hop-by-hop removed),
 *     bodies streamed both ways with backpressure, keep-alive to the client
 *     and through the worker's backend pool; 502/503/504 when the backend
 *     side fails. A WebSocket upgrade answered 101 becomes a byte relay
 *     (proxy/relay.h) on the same sockets.
 *   - Every answer of our own (308, 404, 421, ACME, 4xx for bad requests,
 *     502/503/504) carries Content-Length and "Connection: close": the
 *     connection then half-closes and drains the client (bounded).
 *   - Counting: each finished request once, through proxy_request_done()
 *     (status, request bytes as received, response bytes as written);
 *     tunnelled bytes as they flow. Our own answers count in the worker's
 *     statistics only, 502/503/504 of a proxied request also on its route. */

#include "proxy/worker.h"

struct proxy_route;
struct sock;
struct h1_ctx;

/* The statistics' method (enum proxy_method, svcstats.h) of the parser's
 * PROXY_H1_METHOD_* @method_id: the HTTP/2 server counts the same way. */
uint8_t proxy_h1_method_stat(unsigned method_id);

/* The server's state shared by a worker's connections (exchange blocks,
 * limits). Returns 0 or -ENOMEM. */
int h1_ctx_new(struct proxy_worker *w, struct h1_ctx **ret);
/* The worker stops: free the cached blocks (and cache none afterwards). */
void h1_ctx_begin_stop(struct h1_ctx *ctx);
/* Accepts NULL; returns NULL. */
struct h1_ctx *h1_ctx_free(struct h1_ctx *ctx);

/* Serve HTTP/1.1 on @s: plain (a :80 connection; @sni_route NULL), or TLS
 * after the handshake, with @sni_route the route the SNI chose (a
 * reference is taken; its certificate must cover every Host). With @from
 * the connection takes @from's place on the worker's list (a protocol
 * switch: @from may be freed once this returns 0); else it is added. From
 * then on @s is the connection's. Returns 0, or -ENOMEM / -ESHUTDOWN
 * (stopping): then nothing changed and @s is still the caller's. */
int h1_conn_start(struct proxy_worker *w, struct sock *s, struct proxy_route *sni_route,
                  struct proxy_conn *from);
