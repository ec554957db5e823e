/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* The certificate manager: which names get a certificate from the ACME
 * server, when orders run, where the challenges are answered, and what the
 * operator sees.
 *
 *   - FQDN workloads that terminate TLS: one certificate per FQDN, HTTP-01
 *     (answered on :80 by the engine through the token store below).
 *   - Name workloads that terminate TLS: one "*.<domain>" + "<domain>"
 *     certificate per gateway domain, DNS-01 (answered by the responder in
 *     dnsd.c), shared by every name; kept and renewed while the domain is
 *     configured, even when its last name workload is gone.
 *   - Passthrough workloads: none.
 *
 * Until a certificate is issued the self-signed one of daemon/certs.c is
 * served; an issued certificate is stored with gw_certs_install() and the
 * routes that use it are put again, so new handshakes get it at once and
 * open connections are not touched.
 *
 * Everything runs on the daemon's loop thread, except the HTTP-01 token
 * lookup, which the proxy workers call (it takes a mutex). */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct gw_daemon;
struct strbuf;
struct wl_proxy;

/* The HTTP-01 token store: created before the proxy engine (which calls
 * gw_acme_token_lookup from its workers) and freed after it. */
struct gw_acme_tokens;
int gw_acme_tokens_new(struct gw_acme_tokens **ret);
struct gw_acme_tokens *gw_acme_tokens_free(struct gw_acme_tokens *t);
/* A proxy_acme_token_cb (proxy/proxy.h) with @ud the token store: the key
 * authorization of @token if it was installed for @host. Thread-safe. */
int gw_acme_token_lookup(void *ud, const char *host, const char *token, char *out, size_t size);

/* Start managing: load the account key (made on first use), read what is
 * stored for every workload and schedule orders. Call after the workloads
 * are restored and the proxy routes exist. Returns 0 or -errno (logged). */
int gw_acme_start(struct gw_daemon *d);
/* SIGHUP: [acme] or the capability changed. */
void gw_acme_apply(struct gw_daemon *d);
/* A workload was committed (@p) or deleted (@p NULL); @old is what it
 * replaced, if anything. */
void gw_acme_workload_changed(struct gw_daemon *d, const struct wl_proxy *old,
                              const struct wl_proxy *p);
/* Cancel orders (their challenges are removed), save the backoff state and
 * close handles. Idempotent. */
void gw_acme_stop(struct gw_daemon *d);
void gw_acme_free(struct gw_daemon *d);

/* The operator bus method ListCertificates: an array of maps. */
int gw_acme_encode_list(struct gw_daemon *d, struct strbuf *out);
/* Prometheus text for certificates and orders. */
int gw_acme_render_metrics(struct gw_daemon *d, struct strbuf *out);
