/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* Asynchronous host lookups (c-ares driven by the libuv loop) used to check
 * that an FQDN points at this node (protocol-zbus-gateway.md §4.2 step 4).
 * Nothing blocks the loop. */

#include <uv.h>

struct gw_dns;
struct gw_dns_query;

/* @addrs: the textual addresses found (A and AAAA), @n of them. On failure
 * @error is a Go-style text ("lookup <host> on <server>: no such host") and
 * @addrs is NULL. */
typedef void gw_dns_cb(const char *error, char **addrs, size_t n, void *userdata);

/* @resolver: "ip:port" or "[ip6]:port". Returns 0 or -errno. */
int gw_dns_new(uv_loop_t *loop, const char *resolver, unsigned timeout_ms, struct gw_dns **ret);
/* Cancels every running query — their callbacks do NOT run, so an owner
 * with a lookup in flight ends it itself first (gw_manager_apply_dns() fails
 * its calls, acme.c asks the new resolver) — and frees the resolver once its
 * handles are closed. Accepts NULL. */
void gw_dns_free(struct gw_dns *dns);
/* Start a lookup; @cb runs exactly once unless cancelled; it may run before
 * this returns (an /etc/hosts hit or an immediate failure). Returns 0 or -errno. */
int gw_dns_lookup(struct gw_dns *dns, const char *host, gw_dns_cb *cb, void *userdata,
                  struct gw_dns_query **ret);
/* Cancel: the callback will not run. */
void gw_dns_query_cancel(struct gw_dns_query *q);
