/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* Engine-internal: the :443 front. It peeks the ClientHello (tls-hello.h:
 * reassembled across records, bounded by hello_max, within
 * handshake_timeout_ms of accept) and routes by SNI (exact name, else
 * "*.parent"; never a fallback):
 *
 *   - a passthrough route: dial its backends (round-robin, failover, each
 *     attempt bounded by connect_timeout_ms), then relay bytes both ways
 *     (proxy/relay.h, half-close), the peeked bytes first; the connection
 *     counts as one request on the route;
 *   - a terminated route: TLS with the route's certificate on the same
 *     socket, the peeked bytes replayed into BoringSSL (a fresh
 *     handshake_timeout_ms), then HTTP/1.1 takes the connection over
 *     (h1_conn_start() with this object's place on the worker's list).
 *
 * States are enum proxy_conn_state (proxy.h), with a checked transition
 * table. */

struct proxy_worker;
struct sock;

/* Take the accepted :443 socket @s (its handler is set here; closed by this
 * module whatever happens) as a new connection of @w. Returns 0 or
 * -ENOMEM (then @s is closed). */
int tls_front_start(struct proxy_worker *w, struct sock *s);
