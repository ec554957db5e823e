/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>

#include <openssl/mem.h>

#include "acme/cert.h"
#include "acme/client.h"
#include "acme/http.h"
#include "acme/jws.h"
#include "acme/schedule.h"
#include "common/fileio.h"
#include "common/hashmap.h"
#include "common/list.h"
#include "common/log.h"
#include "common/macros.h"
#include "common/siphash.h"
#include "common/strbuf.h"
#include "daemon/acme-internal.h"
#include "daemon/acme.h"
#include "daemon/certs.h"
#include "daemon/daemon.h"
#include "daemon/dns.h"
#include "daemon/dnsd.h"
#include "gw-version.h"
#include "proto/codec.h"
#include "workloads/workloads.h"

/* ======================================================================
 * Visibility
 * ====================================================================== */

static int encode_one(struct strbuf *out, const struct mcert *c)
{
        int64_t now = gw_acme__now();
        bool ari, wait, held;
        int64_t due = gw_acme__due(c->m, c, &ari);
        int r;

        r = proto_encode_map_header(out, 12);
        if (r >= 0)
                r = proto_encode_key_str(out, "Name", c->key);
        if (r >= 0)
                r = proto_encode_str(out, "Names");
        if (r >= 0)
                r = proto_encode_array_header(out, (uint32_t)c->n_names);
        for (size_t i = 0; r >= 0 && i < c->n_names; i++)
                r = proto_encode_str(out, c->names[i]);
        if (r >= 0)
                r = proto_encode_key_str(out, "Challenge", acme_challenge_type_str(c->type));
        if (r >= 0)
                r = proto_encode_key_str(out, "State", gw_acme__state_names[gw_acme__state(c)]);
        if (r >= 0)
                r = proto_encode_key_str(out, "Issuer", strempty(c->issuer));
        if (r >= 0 && (r = proto_encode_str(out, "NotBefore")) >= 0)
                r = proto_encode_int64(out, c->has_cert ? c->not_before : 0);
        if (r >= 0 && (r = proto_encode_str(out, "NotAfter")) >= 0)
                r = proto_encode_int64(out, c->has_cert ? c->not_after : 0);
        if (r >= 0 && (r = proto_encode_str(out, "RenewAt")) >= 0)
                r = proto_encode_int64(out, c->has_cert ? c->renew_at : 0);
        /* Held by the configuration: nothing happens before a SIGHUP. */
        held = gw_acme__challenge_blocked(c->m, c, &wait) && !wait;
        if (r >= 0 && (r = proto_encode_str(out, "NextAttempt")) >= 0)
                r = proto_encode_int64(out,
                                       c->order || !gw_acme__on(c->m->d) || due == INT64_MAX || held
                                               ? 0
                                               : MAX(due, now));
        if (r >= 0)
                r = proto_encode_key_str(out, "LastError", strempty(c->last_error));
        if (r >= 0 && (r = proto_encode_str(out, "LastErrorTime")) >= 0)
                r = proto_encode_int64(out, c->last_error ? c->last_error_at : 0);
        if (r >= 0)
                r = proto_encode_key_uint(out, "Workloads", c->refs);
        return r;
}

int gw_acme_encode_list(struct gw_daemon *d, struct strbuf *out)
{
        struct gw_acme *m = d->acme;
        size_t state = 0;
        const char *key;
        void *v;
        int r;

        r = proto_encode_array_header(out, m ? (uint32_t)hashmap_size(m->certs) : 0);
        while (r >= 0 && m && hashmap_iterate(m->certs, &state, &key, &v))
                r = encode_one(out, v);
        return r;
}

/* A label value in the exposition format (backslash, quote, newline). */
static int put_label(struct strbuf *out, const char *s)
{
        int r = 0;

        for (; r >= 0 && *s; s++) {
                if (*s == '\\' || *s == '"')
                        r = strbuf_putc(out, '\\');
                if (r >= 0)
                        r = *s == '\n' ? strbuf_puts(out, "\\n") : strbuf_putc(out, *s);
        }
        return r;
}

int gw_acme_render_metrics(struct gw_daemon *d, struct strbuf *out)
{
        struct gw_acme *m = d->acme;
        unsigned by_state[_MC_STATE_MAX] = {};
        size_t state = 0;
        const char *key;
        void *v;
        int r;

        if (!m)
                return 0;
        r = strbuf_puts(out, "# HELP traefik_tls_certs_not_after Certificate expiry (Unix time) of "
                             "the certificates gatewayd obtained.\n"
                             "# TYPE traefik_tls_certs_not_after gauge\n");
        while (r >= 0 && hashmap_iterate(m->certs, &state, &key, &v)) {
                const struct mcert *c = v;

                by_state[gw_acme__state(c)]++;
                if (!c->has_cert)
                        continue;
                r = strbuf_puts(out, "traefik_tls_certs_not_after{cn=\"");
                if (r >= 0)
                        r = put_label(out, c->key);
                if (r >= 0)
                        r = strbuf_puts(out, "\",sans=\"");
                for (size_t i = 0; r >= 0 && i < c->n_names; i++) {
                        if (i > 0)
                                r = strbuf_putc(out, ',');
                        if (r >= 0)
                                r = put_label(out, c->names[i]);
                }
                if (r >= 0)
                        r = strbuf_printf(out, "\"} %" PRId64 "\n", c->not_after);
        }
        if (r >= 0)
                r = strbuf_puts(out, "# HELP gatewayd_acme_certificates Managed certificates by "
                                     "state.\n# TYPE gatewayd_acme_certificates gauge\n");
        for (int i = 0; r >= 0 && i < _MC_STATE_MAX; i++)
                r = strbuf_printf(out, "gatewayd_acme_certificates{state=\"%s\"} %u\n",
                                  gw_acme__state_names[i], by_state[i]);
        if (r >= 0)
                r = strbuf_printf(
                        out,
                        "# HELP gatewayd_acme_orders_total ACME orders by result.\n"
                        "# TYPE gatewayd_acme_orders_total counter\n"
                        "gatewayd_acme_orders_total{result=\"valid\"} %" PRIu64 "\n"
                        "gatewayd_acme_orders_total{result=\"invalid\"} %" PRIu64 "\n"
                        "gatewayd_acme_orders_total{result=\"rate_limited\"} %" PRIu64 "\n"
                        "gatewayd_acme_orders_total{result=\"error\"} %" PRIu64 "\n"
                        "# HELP gatewayd_acme_orders_in_flight ACME orders running now.\n"
                        "# TYPE gatewayd_acme_orders_in_flight gauge\n"
                        "gatewayd_acme_orders_in_flight %u\n"
                        "# HELP gatewayd_acme_renewal_info_total ARI renewalInfo answers by "
                        "result.\n"
                        "# TYPE gatewayd_acme_renewal_info_total counter\n"
                        "gatewayd_acme_renewal_info_total{result=\"ok\"} %" PRIu64 "\n"
                        "gatewayd_acme_renewal_info_total{result=\"error\"} %" PRIu64 "\n",
                        m->orders_valid, m->orders_invalid, m->orders_rate_limited, m->orders_error,
                        m->in_flight, m->ari_fetches, m->ari_errors);
        return r;
}
