/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* The _acme-challenge DNS responder as the daemon runs it: acme/dns-server
 * on the daemon's loop, listening on UDP and TCP [dns] listen_port of the
 * [proxy] address inside the gateway namespace (the farmer delegates
 * `_acme-challenge.<domain>` there; docs/dns-delegation.md), with one zone
 * for the configured gateway domain (so the delegation can be checked with
 * dig before any order runs) and one for every other domain with a DNS-01
 * challenge pending: SOA and NS at the apex, TXT while a challenge is.
 *
 * The sockets are opened through the netns worker (never blocking the
 * loop), opened again when the namespace is made anew or the port or
 * address changes, and retried with a backoff when they cannot be bound. */

#include <stdbool.h>

struct gw_daemon;
struct strbuf;

int gw_dnsd_start(struct gw_daemon *d);
/* SIGHUP; the gateway namespace became ready (maybe a new one). */
void gw_dnsd_apply(struct gw_daemon *d);
void gw_dnsd_ns_ready(struct gw_daemon *d);
/* Close the sockets (handles close on the next loop run). */
void gw_dnsd_stop(struct gw_daemon *d);
void gw_dnsd_free(struct gw_daemon *d);

/* Are sockets bound (so a DNS-01 challenge can be answered)? */
bool gw_dnsd_serving(struct gw_daemon *d);
/* The bound address ("[::]:53") or why not (for status and health). */
const char *gw_dnsd_describe(struct gw_daemon *d);

/* A DNS-01 value at `_acme-challenge.<domain>` (several at once are fine).
 * Returns 0, -ENOSPC (too many), -EINVAL (a domain the responder cannot
 * serve) or -ENOMEM. */
int gw_dnsd_txt_add(struct gw_daemon *d, const char *domain, const char *value);
void gw_dnsd_txt_remove(struct gw_daemon *d, const char *domain, const char *value);

/* Prometheus text: queries by answer code, TCP counters. */
int gw_dnsd_render_metrics(struct gw_daemon *d, struct strbuf *out);
