/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* Engine-internal: the HTTP/2 server (RFC 9113), on :443 once the TLS front
 * completed a handshake for a terminated route whose client chose ALPN
 * "h2" (no h2c). libnghttp2 keeps the framing, HPACK and flow-control
 * state; we feed it with nghttp2_session_mem_recv() from the socket and
 * write what nghttp2_session_mem_send() produces, on the same struct sock
 * the front handed over.
 *
 * Each stream is one exchange with a backend (proxy/exchange.h), over
 * HTTP/1.1 through the worker's pool: its HEADERS become an HTTP/1.1
 * request head that the HTTP/1.1 parser checks and the HTTP/1.1 serialiser
 * rewrites (the same Host rules, X-Forwarded-* and X-Real-IP as HTTP/1.1);
 * the backend's response head becomes HEADERS, its body DATA.
 *
 * Backpressure both ways, no unbounded buffering: request DATA is
 * acknowledged (WINDOW_UPDATE, nghttp2_session_consume()) only once the
 * backend took it, so a stream never holds more than its window
 * (H2_STREAM_WINDOW); a response body is read from the backend only into
 * the stream's response buffer and handed to nghttp2 as the client's
 * window and our socket allow (a deferred data provider, resumed when the
 * backend sends more).
 *
 * Defences (docs/internals/proxy.md, "HTTP/2"): at most 100 concurrent
 * streams; a stream reset rate limit (rapid reset) and a bound on
 * CONTINUATION frames; decoded header bytes and fields per stream capped
 * at max_head/max_headers (431); a budget of protocol "glitches" (invalid
 * frames, streams we reset, oversized header lists) that ends the
 * connection with GOAWAY; at most this many queued SETTINGS/PING
 * acknowledgements; deadlines per stream (header block, request body
 * stall, response progress: a client that never opens its window is
 * reset) and per connection (keep-alive between streams); at most
 * H2_MAX_REQUESTS streams per connection, then GOAWAY. */

#include "proxy/worker.h"

struct proxy_route;
struct sock;

/* Serve HTTP/2 on @s (TLS, handshake done, ALPN h2), with @sni_route the
 * route the SNI chose (a reference is taken; its certificate must cover
 * every :authority). The connection takes @from's place on the worker's
 * list (@from may be freed once this returns 0). Returns 0, or -ENOMEM /
 * -ESHUTDOWN (stopping): then nothing changed and @s is still the
 * caller's. */
int h2_conn_start(struct proxy_worker *w, struct sock *s, struct proxy_route *sni_route,
                  struct proxy_conn *from);
