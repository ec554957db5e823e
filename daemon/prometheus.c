/* SPDX-License-Identifier: Apache-2.0 */
/* The Prometheus text exposition on [metrics] listen: a small HTTP/1.1
 * server on the daemon's loop. GET /metrics answers the exposition
 * (text/plain; version=0.0.4); GET /healthz answers 200 "ok" or 503 with
 * one problem per line (health.c); anything else is 404. One request per
 * connection (Connection: close). Bounded: a request head of at most
 * PROM_HEAD_MAX bytes, PROM_TIMEOUT_MS from accept to the last byte
 * written, at most PROM_CONNS connections (more are closed at accept).
 *
 * Per workload the names are those of Traefik's service metrics, with the
 * workload ID as the service (as zos's Traefik reported them, without the
 * "@file" suffix) plus its host; engine-wide figures are gatewayd_*. The
 * list is in docs/internals/daemon.md. */
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "common/list.h"
#include "common/log.h"
#include "common/macros.h"
#include "common/strbuf.h"
#include "daemon/accesslog.h"
#include "daemon/acme.h"
#include "daemon/daemon.h"
#include "daemon/dnsd.h"
#include "gw-commit.h"
#include "gw-version.h"
#include "netns/netns.h"
#include "proxy/proxy.h"
#include "proxy/routes.h"
#include "proxy/svcstats.h"

#define PROM_HEAD_MAX   4096
#define PROM_TIMEOUT_MS 30000
#define PROM_CONNS      8
#define PROM_RETRY_MS   5000
#define PROM_DRAIN_MAX  (64 * 1024) /* read and dropped after the answer, before closing */

#define PROM_ACCEPT_BATCH      16  /* accepts per wakeup */
#define PROM_ACCEPT_BACKOFF_MS 100 /* polling pauses this long after EMFILE & co. */

struct prom_conn {
        struct gw_prom *pm;
        struct prom_conn *prev, *next;
        uv_tcp_t tcp;
        uv_timer_t timer;
        uv_write_t wreq;
        uv_shutdown_t sreq;
        char head[PROM_HEAD_MAX];
        size_t head_len;
        char *out;  /* the response head being written */
        char *body; /* ... and its body */
        unsigned open_handles;
        size_t drained;
        bool answered;
};

struct gw_prom {
        struct gw_daemon *d;
        uv_poll_t listener; /* on @lfd; we accept4() (see on_listener_io) */
        int lfd;            /* the listening socket, closed with @listener */
        uv_timer_t retry;   /* reopening the listener, or resuming it after an accept error */
        bool listening;     /* @listener is open */
        struct sockaddr_storage addr;
        socklen_t addr_len; /* of the open listener */
        struct prom_conn *conns;
        unsigned n_conns;
        unsigned open_handles;
        char *last_error;
        bool reopen;  /* when the listener is closed, listen again as configured */
        bool closing; /* gw_prom_close(): free when the last handle is closed */
};

/* ======================================================================
 * The exposition
 * ====================================================================== */

/* A label value: backslash, double quote and line feed escaped. */
static int put_label(struct strbuf *b, const char *s)
{
        int r = 0;

        for (; *s && r >= 0; s++) {
                if (*s == '\\')
                        r = strbuf_puts(b, "\\\\");
                else if (*s == '"')
                        r = strbuf_puts(b, "\\\"");
                else if (*s == '\n')
                        r = strbuf_puts(b, "\\n");
                else
                        r = strbuf_putc(b, *s);
        }
        return r;
}

static int put_family(struct strbuf *b, const char *name, const char *type, const char *help)
{
        return strbuf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* One per-route family: what each route contributes is render_route()'s
 * business. */
enum route_metric {
        RM_REQUESTS_BY_CODE, /* traefik_service_requests_total{code,method,protocol} */
        RM_DURATION,         /* traefik_service_request_duration_seconds{protocol} */
        RM_VERSION,          /* gatewayd_service_requests_by_version_total{version} */
        RM_REQUEST_BYTES,
        RM_RESPONSE_BYTES,
        RM_REQUESTS, /* gatewayd_service_requests_total{mode=} */
};

struct render_ctx {
        struct strbuf *b;
        enum route_metric m;
        const char *name;
};

/* @name{service="<id>" (the label set is left open). */
static int put_service(struct strbuf *b, const char *name, const char *suffix,
                       const struct proxy_route *r)
{
        int k = strbuf_printf(b, "%s%s{service=\"", name, suffix);

        if (k >= 0)
                k = put_label(b, r->id);
        return k;
}

/* A duration in µs as seconds, exactly (no float rounding). */
static int put_seconds(struct strbuf *b, uint64_t us)
{
        return strbuf_printf(b, "%" PRIu64 ".%06" PRIu64, us / 1000000u, us % 1000000u);
}

/* A bucket bound as Prometheus' Go client writes it ("0.1", "5"): queries
 * match le by its text. */
static int put_le(struct strbuf *b, uint64_t us)
{
        char buf[32];
        int n = snprintf(buf, sizeof(buf), "%" PRIu64 ".%06" PRIu64, us / 1000000u, us % 1000000u);

        while (n > 0 && buf[n - 1] == '0')
                n--;
        if (n > 0 && buf[n - 1] == '.')
                n--;
        buf[n] = 0;
        return strbuf_puts(b, buf);
}

static int render_codes(struct render_ctx *ctx, const struct proxy_route *r,
                        const struct proxy_svcstats_values *sv)
{
        int k = 0;

        for (size_t i = 0; i < sv->n_codes && k >= 0; i++) {
                const struct proxy_svc_code_count *cc = &sv->codes[i];

                k = put_service(ctx->b, ctx->name, "", r);
                /* An overflow bucket (the workload's slots were all taken)
                 * is a status class with an unknown method. */
                if (k >= 0 && cc->overflow && cc->status > 0)
                        k = strbuf_printf(ctx->b, "\",code=\"%uxx\",method=\"other\"", cc->status);
                else if (k >= 0 && cc->overflow)
                        k = strbuf_puts(ctx->b, "\",code=\"0\",method=\"other\"");
                else if (k >= 0)
                        k = strbuf_printf(ctx->b, "\",code=\"%u\",method=\"%s\"", cc->status,
                                          proxy_method_str(cc->method));
                if (k >= 0)
                        k = strbuf_printf(ctx->b, ",protocol=\"%s\"} %" PRIu64 "\n",
                                          proxy_svc_protocol_str(cc->protocol), cc->count);
        }
        return k;
}

static int render_duration(struct render_ctx *ctx, const struct proxy_route *r,
                           const struct proxy_svcstats_values *sv)
{
        int k = 0;

        for (unsigned p = 0; p < _PROXY_SVC_PROTOCOL_MAX && k >= 0; p++) {
                const char *proto = proxy_svc_protocol_str(p);
                uint64_t count = 0;

                for (size_t b = 0; b <= PROXY_SVC_DURATION_BUCKETS; b++)
                        count += sv->duration[p][b];
                if (!count)
                        continue; /* a protocol appears once it was used */
                count = 0;
                for (size_t b = 0; b <= PROXY_SVC_DURATION_BUCKETS && k >= 0; b++) {
                        count += sv->duration[p][b]; /* the buckets are cumulative */
                        k = put_service(ctx->b, ctx->name, "_bucket", r);
                        if (k >= 0)
                                k = strbuf_printf(ctx->b, "\",protocol=\"%s\",le=\"", proto);
                        if (k >= 0 && b < PROXY_SVC_DURATION_BUCKETS)
                                k = put_le(ctx->b, proxy_svc_duration_bounds_us[b]);
                        else if (k >= 0)
                                k = strbuf_puts(ctx->b, "+Inf");
                        if (k >= 0)
                                k = strbuf_printf(ctx->b, "\"} %" PRIu64 "\n", count);
                }
                if (k >= 0)
                        k = put_service(ctx->b, ctx->name, "_sum", r);
                if (k >= 0)
                        k = strbuf_printf(ctx->b, "\",protocol=\"%s\"} ", proto);
                if (k >= 0)
                        k = put_seconds(ctx->b, sv->duration_sum_us[p]);
                if (k >= 0)
                        k = strbuf_putc(ctx->b, '\n');
                if (k >= 0)
                        k = put_service(ctx->b, ctx->name, "_count", r);
                if (k >= 0)
                        k = strbuf_printf(ctx->b, "\",protocol=\"%s\"} %" PRIu64 "\n", proto,
                                          count);
        }
        return k;
}

static int render_versions(struct render_ctx *ctx, const struct proxy_route *r,
                           const struct proxy_svcstats_values *sv)
{
        int k = 0;

        for (unsigned v = 0; v < _PROXY_HTTP_VERSION_MAX && k >= 0; v++) {
                if (!sv->version[v])
                        continue;
                k = put_service(ctx->b, ctx->name, "", r);
                if (k >= 0)
                        k = strbuf_printf(ctx->b, "\",version=\"%s\"} %" PRIu64 "\n",
                                          proxy_http_version_str(v), sv->version[v]);
        }
        return k;
}

static int render_route(struct proxy_route *r, void *userdata)
{
        struct render_ctx *ctx = userdata;
        struct proxy_counters_values v;
        struct proxy_svcstats_values sv;
        int k = 0;

        proxy_counters_read(r->counters, &v);
        /* Like Traefik: a service has series once it had traffic (this keeps
         * the text proportional to the busy workloads, not to all 100k). */
        if (!v.requests && !v.request_bytes && !v.response_bytes)
                return 0;
        switch (ctx->m) {
        case RM_REQUESTS_BY_CODE:
        case RM_DURATION:
        case RM_VERSION:
                /* Kept since the start (not in counters.json): a workload
                 * has these once it answered an HTTP request since. */
                if (!proxy_svcstats_read(r->counters, &sv))
                        return 0;
                k = ctx->m == RM_REQUESTS_BY_CODE ? render_codes(ctx, r, &sv)
                    : ctx->m == RM_DURATION       ? render_duration(ctx, r, &sv)
                                                  : render_versions(ctx, r, &sv);
                break;
        case RM_REQUEST_BYTES:
        case RM_RESPONSE_BYTES:
                k = put_service(ctx->b, ctx->name, "", r);
                if (k >= 0)
                        k = strbuf_printf(ctx->b, "\"} %" PRIu64 "\n",
                                          ctx->m == RM_REQUEST_BYTES ? v.request_bytes
                                                                     : v.response_bytes);
                break;
        case RM_REQUESTS:
                k = put_service(ctx->b, ctx->name, "", r);
                if (k >= 0)
                        k = strbuf_printf(ctx->b, "\",mode=\"%s\"} %" PRIu64 "\n",
                                          proxy_route_mode_str(r->mode), v.requests);
                break;
        }
        return k < 0 ? k : 0;
}

static int render_routes(struct strbuf *b, const struct proxy_routes *s)
{
        static const struct {
                enum route_metric m;
                const char *name, *type, *help;
        } families[] = {
                {RM_REQUESTS_BY_CODE, "traefik_service_requests_total", "counter",
                 "HTTP requests a terminated workload answered, by status code, method and "
                 "protocol (code=\"0\": none was sent)."},
                {RM_DURATION, "traefik_service_request_duration_seconds", "histogram",
                 "From a request's complete head to the end of its response (a WebSocket "
                 "upgrade: to its 101, the tunnel's lifetime left out)."},
                {RM_VERSION, "gatewayd_service_requests_by_version_total", "counter",
                 "HTTP requests a terminated workload answered, by HTTP version of the client."},
                {RM_REQUEST_BYTES, "traefik_service_requests_bytes_total", "counter",
                 "Bytes from clients to the workload's backends (raw TLS for passthrough)."},
                {RM_RESPONSE_BYTES, "traefik_service_responses_bytes_total", "counter",
                 "Bytes from the workload's backends to clients (raw TLS for passthrough)."},
                {RM_REQUESTS, "gatewayd_service_requests_total", "counter",
                 "HTTP requests (terminate) or TCP connections (passthrough) of a workload."},
        };
        int r = 0;

        for (size_t i = 0; i < ELEMENTSOF(families) && r >= 0; i++) {
                struct render_ctx ctx = {b, families[i].m, families[i].name};

                r = put_family(b, families[i].name, families[i].type, families[i].help);
                if (r >= 0)
                        r = proxy_routes_foreach(s, render_route, &ctx);
        }
        return r;
}

/* Backend health (docs/internals/proxy.md, "Backend health"): per
 * workload, each backend's state and the failures by reason. Bounded like
 * the traffic families: a workload has series once it had traffic or a
 * failure, not all 100k idle ones. */
struct backends_ctx {
        struct strbuf *b;
        bool failures; /* the failures family, else gatewayd_backend_up */
};

static int put_backend_service(struct strbuf *b, const char *name, const struct proxy_route *r)
{
        int k = strbuf_printf(b, "%s{service=\"", name);

        if (k >= 0)
                k = put_label(b, r->id);
        return k;
}

static int render_route_backends(struct proxy_route *r, void *userdata)
{
        struct backends_ctx *ctx = userdata;
        struct proxy_counters_values v;
        uint64_t failed = 0;
        int k = 0;

        proxy_counters_read(r->counters, &v);
        for (unsigned i = 0; i < _PROXY_BACKEND_FAIL_MAX; i++)
                failed += v.backend_failures[i];
        if (!v.requests && !failed)
                return 0;
        if (ctx->failures) {
                for (unsigned i = 0; i < _PROXY_BACKEND_FAIL_MAX && k >= 0; i++) {
                        if (!v.backend_failures[i])
                                continue;
                        k = put_backend_service(ctx->b, "gatewayd_backend_failures_total", r);
                        if (k >= 0)
                                k = strbuf_printf(ctx->b, "\",reason=\"%s\"} %" PRIu64 "\n",
                                                  proxy_backend_failure_str(i),
                                                  v.backend_failures[i]);
                }
                return k < 0 ? k : 0;
        }
        for (size_t i = 0; i < r->n_backends && k >= 0; i++) {
                struct proxy_backend_health_values hv;

                proxy_backend_health_read(r->backends[i].health, &hv);
                k = put_backend_service(ctx->b, "gatewayd_backend_up", r);
                if (k >= 0)
                        k = strbuf_puts(ctx->b, "\",backend=\"");
                if (k >= 0)
                        k = put_label(ctx->b, r->backends[i].text);
                if (k >= 0)
                        k = strbuf_printf(ctx->b, "\"} %d\n", !hv.down);
        }
        return k < 0 ? k : 0;
}

static int render_backends(struct strbuf *b, const struct proxy_routes *s)
{
        struct backends_ctx ctx = {b, false};
        int r;

        r = put_family(b, "gatewayd_backend_up", "gauge",
                       "1 while a backend of a workload is up, 0 while it is marked down "
                       "(passive failures, active checks).");
        if (r >= 0)
                r = proxy_routes_foreach(s, render_route_backends, &ctx);
        if (r >= 0)
                r = put_family(b, "gatewayd_backend_failures_total", "counter",
                               "Backend failures of a workload's requests by reason: connect "
                               "(refused, unreachable), timeout (connect), reset (before any "
                               "response byte).");
        ctx.failures = true;
        if (r >= 0)
                r = proxy_routes_foreach(s, render_route_backends, &ctx);
        return r;
}

/* Backend sockets made inside namespaces (netns_sockpool). */
static int render_sockpool(struct gw_daemon *d, struct strbuf *b)
{
        struct netns_sockpool_stats ps;
        int r = 0;

        if (!gw_proxy_sockpool_stats(d, &ps))
                return 0;
        const struct {
                const char *name, *type, *help;
                unsigned long long v;
        } rows[] = {
                {"gatewayd_sockpool_pooled", "gauge", "Backend sockets pre-created in namespaces.",
                 ps.pooled},
                {"gatewayd_sockpool_namespaces", "gauge", "Namespaces the socket pool serves.",
                 ps.namespaces},
                {"gatewayd_sockpool_fast_total", "counter",
                 "Backend sockets handed out without waiting.", ps.fast},
                {"gatewayd_sockpool_slow_total", "counter",
                 "Backend sockets that waited for the pool's thread.", ps.slow},
                {"gatewayd_sockpool_timeouts_total", "counter",
                 "Backend sockets the pool could not make in time.", ps.timeouts},
        };
        for (size_t i = 0; i < ELEMENTSOF(rows) && r >= 0; i++) {
                r = put_family(b, rows[i].name, rows[i].type, rows[i].help);
                if (r >= 0)
                        r = strbuf_printf(b, "%s %llu\n", rows[i].name, rows[i].v);
        }
        return r;
}

/* What /healthz checks, as gauges a farmer can alert on (health.c). A
 * check that does not apply (not configured) has no series. */
static int render_health(struct gw_daemon *d, struct strbuf *b)
{
        const struct gw_health *h = &d->health;
        int n = gw_health_problems(d, NULL), r;

        if (n < 0)
                return n;
        r = put_family(b, "gatewayd_healthy", "gauge",
                       "1 when GET /healthz answers 200: the namespace ready, every configured "
                       "listener bound, the bus connected.");
        if (r >= 0)
                r = strbuf_printf(b, "gatewayd_healthy %d\n", n == 0);
        if (r >= 0)
                r = put_family(b, "gatewayd_namespace_ready", "gauge",
                               "1 while the managed gateway namespace is ready.");
        if (r >= 0 && h->checks[GW_CHECK_NAMESPACE].wanted)
                r = strbuf_printf(b, "gatewayd_namespace_ready %d\n",
                                  h->checks[GW_CHECK_NAMESPACE].ok);
        if (r >= 0)
                r = put_family(b, "gatewayd_overlay_up", "gauge",
                               "1 while a configured overlay network (ygg, mycelium) has its "
                               "link, address and route in the ready gateway namespace.");
        for (unsigned o = 0; o < _GW_OVERLAY_MAX && r >= 0; o++)
                if (h->overlays[o].wanted)
                        r = strbuf_printf(b, "gatewayd_overlay_up{overlay=\"%s\"} %d\n",
                                          gw_overlays[o].name, h->overlays[o].ok);
        if (r >= 0)
                r = put_family(b, "gatewayd_listener_up", "gauge",
                               "1 while a configured listener accepts on its configured address.");
        for (enum gw_check c = GW_CHECK_HTTPS; c <= GW_CHECK_DNS && r >= 0; c++)
                if (h->checks[c].wanted)
                        r = strbuf_printf(b, "gatewayd_listener_up{listener=\"%s\"} %d\n",
                                          gw_check_to_string(c), h->checks[c].ok);
        if (r >= 0)
                r = put_family(b, "gatewayd_bus_connected", "gauge",
                               "1 while the bus transport is connected to Redis.");
        if (r >= 0)
                r = strbuf_printf(b, "gatewayd_bus_connected %d\n", h->checks[GW_CHECK_BUS].ok);
        if (r >= 0)
                r = put_family(b, "gatewayd_state_corrupt_files", "gauge",
                               "Workload state files set aside as corrupt (*.corrupt-*): those "
                               "workloads are not served until deployed again.");
        if (r >= 0)
                r = strbuf_printf(b, "gatewayd_state_corrupt_files %zu\n", d->n_corrupt);
        if (r >= 0)
                r = put_family(b, "gatewayd_reload_success", "gauge",
                               "0 when the last SIGHUP was refused (the running configuration "
                               "was kept), else 1.");
        if (r >= 0)
                r = strbuf_printf(b, "gatewayd_reload_success %d\n",
                                  h->reload.result != GW_RELOAD_FAILED);
        if (r >= 0)
                r = put_family(b, "gatewayd_reload_timestamp_seconds", "gauge",
                               "Time of the last SIGHUP, applied or refused (0: none since the "
                               "start).");
        if (r >= 0)
                r = strbuf_printf(b, "gatewayd_reload_timestamp_seconds %" PRIu64 "\n",
                                  h->reload.at_usec / 1000000u);
        /* Traefik's names (v2.4..2.8 for the failure pair, still the
         * names its dashboards use). */
        const struct {
                const char *name, *type, *help;
                uint64_t v;
        } traefik[] = {
                {"traefik_config_reloads_total", "counter",
                 "Configuration reloads (SIGHUP or the bus Reload) applied since the start.",
                 h->reload.applied},
                {"traefik_config_reloads_failure_total", "counter",
                 "Configuration reloads refused since the start (the running one was kept).",
                 h->reload.refused},
                {"traefik_config_last_reload_success", "gauge",
                 "Time the running configuration was applied (at the start or by a reload).",
                 h->reload.ok_at_usec / 1000000u},
                {"traefik_config_last_reload_failure", "gauge",
                 "Time of the last refused reload (0: none since the start).",
                 h->reload.failed_at_usec / 1000000u},
        };
        for (size_t i = 0; i < ELEMENTSOF(traefik) && r >= 0; i++) {
                r = put_family(b, traefik[i].name, traefik[i].type, traefik[i].help);
                if (r >= 0)
                        r = strbuf_printf(b, "%s %" PRIu64 "\n", traefik[i].name, traefik[i].v);
        }
        return r;
}

static int render_engine(struct gw_daemon *d, struct strbuf *b, size_t n_routes)
{
        struct proxy_engine_stats st;
        unsigned workers = 0;
        bool engine = gw_proxy_stats(d, &st, &workers);
        /* True, not "an engine exists": it accepts on a configured listener
         * in the namespace now at the path (health.c). */
        bool serving =
                engine && (gw_health_ok(d, GW_CHECK_HTTPS) || gw_health_ok(d, GW_CHECK_HTTP));
        const struct {
                const char *name, *help;
                uint64_t v;
        } counters[] = {
                {"gatewayd_connections_accepted_total", "Connections accepted on :443 and :80.",
                 st.accepted},
                {"gatewayd_tls_handshakes_total", "Completed TLS handshakes (terminated names).",
                 st.tls_handshakes},
                {"gatewayd_tls_resumed_total", "TLS handshakes that resumed a session.",
                 st.tls_resumed},
                {"gatewayd_upstream_connects_total", "New backend connections for HTTP.",
                 st.upstream_connects},
                {"gatewayd_upstream_reused_total",
                 "HTTP requests sent on a pooled backend connection.", st.upstream_reused},
                {"gatewayd_upstream_connect_errors_total",
                 "Failed backend connection attempts (including timeouts).", st.connect_errors},
        };
        const struct {
                const char *name, *help;
                uint64_t v;
        } gauges[] = {
                {"gatewayd_workloads", "Workloads accepted over the bus.",
                 wl_registry_size(d->reg)},
                {"gatewayd_routes", "Names the proxy routes.", n_routes},
                {"gatewayd_proxy_serving",
                 "1 while the proxy accepts on a configured listener in the gateway namespace "
                 "now at its path, else 0.",
                 serving},
                {"gatewayd_proxy_workers", "Proxy worker threads.", workers},
                {"gatewayd_connections_active", "Connections open now.", st.active},
        };
        int r = 0;

        for (size_t i = 0; i < ELEMENTSOF(gauges) && r >= 0; i++) {
                r = put_family(b, gauges[i].name, "gauge", gauges[i].help);
                if (r >= 0)
                        r = strbuf_printf(b, "%s %" PRIu64 "\n", gauges[i].name, gauges[i].v);
        }
        for (size_t i = 0; i < ELEMENTSOF(counters) && r >= 0; i++) {
                r = put_family(b, counters[i].name, "counter", counters[i].help);
                if (r >= 0)
                        r = strbuf_printf(b, "%s %" PRIu64 "\n", counters[i].name, counters[i].v);
        }
        if (r >= 0)
                r = put_family(b, "gatewayd_connections_closed_total", "counter",
                               "Connections closed, by reason.");
        for (unsigned i = 0; i < _PROXY_CLOSE_MAX && r >= 0; i++) {
                const char *reason = proxy_close_reason_str(i);

                if (reason)
                        r = strbuf_printf(
                                b, "gatewayd_connections_closed_total{reason=\"%s\"} %" PRIu64 "\n",
                                reason, st.closed[i]);
        }
        /* Traefik v3's name and labels (v2's traefik_entrypoint_open_connections
         * counted requests in flight by method; these are TCP connections). */
        if (r >= 0)
                r = put_family(b, "traefik_open_connections", "gauge",
                               "Client connections open now, by entry point (https: :443, "
                               "http: :80).");
        for (unsigned i = 0; i < ELEMENTSOF(st.open) && r >= 0; i++)
                r = strbuf_printf(b,
                                  "traefik_open_connections{entrypoint=\"%s\",protocol=\"TCP\"} "
                                  "%" PRIu64 "\n",
                                  i == 0 ? "https" : "http", st.open[i]);
        if (r >= 0)
                r = put_family(b, "gatewayd_build_info", "gauge",
                               "Always 1; the version and git commit of the running gatewayd.");
        if (r >= 0)
                r = strbuf_puts(b, "gatewayd_build_info{version=\"");
        if (r >= 0)
                r = put_label(b, GATEWAYD_VERSION);
        if (r >= 0)
                r = strbuf_puts(b, "\",commit=\"");
        if (r >= 0)
                r = put_label(b, GATEWAYD_COMMIT);
        if (r >= 0)
                r = strbuf_puts(b, "\"} 1\n");
        if (r >= 0)
                r = put_family(b, "gatewayd_limit_rejections_total", "counter",
                               "Connections closed at accept for a client limit ([limits]), by "
                               "entry point and reason.");
        for (unsigned p = 0; p < 2 && r >= 0; p++)
                for (unsigned i = 0; i < _PROXY_LIMIT_MAX && r >= 0; i++)
                        r = strbuf_printf(b,
                                          "gatewayd_limit_rejections_total{entrypoint=\"%s\","
                                          "reason=\"%s\"} %" PRIu64 "\n",
                                          p == 0 ? "https" : "http", proxy_limit_reason_str(i),
                                          st.limit_rejections[p][i]);
        if (r >= 0)
                r = render_sockpool(d, b);
        if (r >= 0)
                r = put_family(b, "gatewayd_http_requests_total", "counter",
                               "HTTP responses sent (the backends' and the gateway's own), by "
                               "status class.");
        for (unsigned i = 0; i < 5 && r >= 0; i++)
                r = strbuf_printf(b, "gatewayd_http_requests_total{code=\"%uxx\"} %" PRIu64 "\n",
                                  i + 1, st.http_status[i]);
        return r;
}

int gw_prom_render(struct gw_daemon *d, struct strbuf *out)
{
        _cleanup_(proxy_routes_unrefp) struct proxy_routes *s = gw_proxy_snapshot(d);
        int r = 0;

        gw_health_refresh(d);
        if (s)
                r = render_routes(out, s);
        if (s && r >= 0)
                r = render_backends(out, s);
        if (r >= 0)
                r = render_engine(d, out, s ? proxy_routes_size(s) : 0);
        if (r >= 0)
                r = render_health(d, out);
        if (r >= 0)
                r = gw_acme_render_metrics(d, out);
        if (r >= 0)
                r = gw_dnsd_render_metrics(d, out);
        if (r >= 0)
                r = gw_accesslog_render_metrics(d, out);
        return r;
}

/* ======================================================================
 * The HTTP side
 * ====================================================================== */

static void conn_on_closed(uv_handle_t *h)
{
        struct prom_conn *c = h->data;
        struct gw_prom *pm = c->pm;

        if (--c->open_handles > 0)
                return;
        LIST_REMOVE(pm->conns, c);
        pm->n_conns--;
        free(c->out);
        free(c->body);
        free(c);
        if (pm->closing && pm->open_handles == 0 && !pm->conns) {
                free(pm->last_error);
                free(pm);
        }
}

static void conn_close(struct prom_conn *c)
{
        if (!uv_is_closing((uv_handle_t *)&c->tcp))
                uv_close((uv_handle_t *)&c->tcp, conn_on_closed);
        if (!uv_is_closing((uv_handle_t *)&c->timer))
                uv_close((uv_handle_t *)&c->timer, conn_on_closed);
}

static void on_conn_timeout(uv_timer_t *t)
{
        conn_close(t->data);
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
        struct prom_conn *c = req->data;

        if (status < 0)
                conn_close(c);
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf);
static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf);

static void on_written(uv_write_t *w, int status)
{
        struct prom_conn *c = w->data;

        /* The response says Connection: close. Half-close and read what the
         * client still sends until its EOF: closing with unread bytes would
         * reset the connection, and the client might lose the answer. */
        if (status < 0) {
                conn_close(c);
                return;
        }
        c->sreq.data = c;
        if (uv_shutdown(&c->sreq, (uv_stream_t *)&c->tcp, on_shutdown) < 0 ||
            uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) < 0)
                conn_close(c);
}

/* Answer and close; @body (may be NULL) is taken over. */
static void respond(struct prom_conn *c, int status, const char *reason, const char *type,
                    char *body, size_t body_len)
{
        _cleanup_strbuf_ struct strbuf b = STRBUF_INIT;
        uv_buf_t bufs[2];
        int r;

        c->answered = true;
        c->body = body;
        uv_read_stop((uv_stream_t *)&c->tcp);
        r = strbuf_printf(&b,
                          "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                          "Connection: close\r\n\r\n",
                          status, reason, type, body_len);
        if (r < 0) {
                conn_close(c);
                return;
        }
        bufs[0] = uv_buf_init(b.data, (unsigned)b.len);
        bufs[1] = uv_buf_init(body, (unsigned)body_len);
        c->out = strbuf_steal(&b);
        c->wreq.data = c;
        if (uv_write(&c->wreq, (uv_stream_t *)&c->tcp, bufs, body_len ? 2 : 1, on_written) < 0)
                conn_close(c);
}

static void respond_text(struct prom_conn *c, int status, const char *reason, const char *text)
{
        char *body = strdup(text);

        if (!body) {
                conn_close(c);
                return;
        }
        respond(c, status, reason, "text/plain; charset=utf-8", body, strlen(body));
}

/* 200 "ok" when nothing is wrong, else 503 and one problem per line. */
static void handle_healthz(struct prom_conn *c)
{
        _cleanup_strbuf_ struct strbuf body = STRBUF_INIT;
        size_t len;
        int n;

        gw_health_refresh(c->pm->d);
        n = gw_health_problems(c->pm->d, &body);
        if (n < 0 || (n == 0 && strbuf_puts(&body, "ok\n") < 0)) {
                respond_text(c, 500, "Internal Server Error", "out of memory\n");
                return;
        }
        len = body.len;
        if (n > 0)
                respond(c, 503, "Service Unavailable", "text/plain; charset=utf-8",
                        strbuf_steal(&body), len);
        else
                respond(c, 200, "OK", "text/plain; charset=utf-8", strbuf_steal(&body), len);
}

/* The request line of a complete head: "GET /metrics HTTP/1.1". */
static void handle_request(struct prom_conn *c)
{
        char *line = c->head, *eol = memchr(c->head, '\n', c->head_len);
        char *sp1, *sp2, *q;

        *eol = 0;
        if (eol > line && eol[-1] == '\r')
                eol[-1] = 0;
        sp1 = strchr(line, ' ');
        sp2 = sp1 ? strchr(sp1 + 1, ' ') : NULL;
        if (!sp1 || !sp2 || strncmp(sp2 + 1, "HTTP/1.", 7) != 0) {
                respond_text(c, 400, "Bad Request", "bad request\n");
                return;
        }
        *sp1 = *sp2 = 0;
        q = strchr(sp1 + 1, '?');
        if (q)
                *q = 0;
        if (streq(line, "GET") && streq(sp1 + 1, "/metrics")) {
                _cleanup_strbuf_ struct strbuf body = STRBUF_INIT;

                size_t len;

                if (gw_prom_render(c->pm->d, &body) < 0) {
                        respond_text(c, 500, "Internal Server Error", "out of memory\n");
                        return;
                }
                len = body.len;
                respond(c, 200, "OK", "text/plain; version=0.0.4; charset=utf-8",
                        strbuf_steal(&body), len);
                return;
        }
        if (streq(line, "GET") && streq(sp1 + 1, "/healthz")) {
                handle_healthz(c);
                return;
        }
        respond_text(c, 404, "Not Found", "not found\n");
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
        struct prom_conn *c = h->data;

        if (c->answered) /* draining: the head is no longer needed */
                *buf = uv_buf_init(c->head, sizeof(c->head));
        else
                *buf = uv_buf_init(c->head + c->head_len,
                                   (unsigned)(sizeof(c->head) - c->head_len - 1));
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
        struct prom_conn *c = s->data;

        if (c->answered) {
                if (n < 0 || (c->drained += (size_t)n) > PROM_DRAIN_MAX)
                        conn_close(c);
                return;
        }
        if (n < 0) {
                conn_close(c);
                return;
        }
        c->head_len += (size_t)n;
        c->head[c->head_len] = 0;
        if (memchr(c->head, 0, c->head_len)) {
                respond_text(c, 400, "Bad Request", "bad request\n");
                return;
        }
        if (strstr(c->head, "\r\n\r\n") || strstr(c->head, "\n\n")) {
                handle_request(c);
                return;
        }
        if (c->head_len >= sizeof(c->head) - 1)
                respond_text(c, 431, "Request Header Fields Too Large", "request too large\n");
}

/* Serve the accepted socket @fd (taken). */
static void prom_accept(struct gw_prom *pm, int fd)
{
        struct prom_conn *c;

        c = calloc(1, sizeof(*c));
        if (!c) {
                close(fd);
                return;
        }
        c->pm = pm;
        uv_tcp_init(pm->d->loop, &c->tcp);
        uv_timer_init(pm->d->loop, &c->timer);
        c->tcp.data = c->timer.data = c;
        c->open_handles = 2;
        LIST_PREPEND(pm->conns, c);
        pm->n_conns++;
        if (uv_tcp_open(&c->tcp, fd) < 0) {
                close(fd); /* not adopted */
                conn_close(c);
                return;
        }
        if (pm->n_conns > PROM_CONNS) {
                conn_close(c);
                return;
        }
        uv_timer_start(&c->timer, on_conn_timeout, PROM_TIMEOUT_MS, 0);
        if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) < 0)
                conn_close(c);
}

static void on_retry(uv_timer_t *t);

/* Accept in a bounded batch. Not uv_listen(): libuv's accept loop retries
 * EMFILE at once, without end when its spare descriptor was taken by
 * another thread, and that would stall the whole daemon loop (issue 10).
 * On EMFILE, ENFILE, ENOMEM, ENOBUFS (or anything unexpected) polling
 * pauses for PROM_ACCEPT_BACKOFF_MS instead; clients wait in the queue. */
static void on_listener_io(uv_poll_t *p, int status, int events)
{
        struct gw_prom *pm = p->data;

        if (status < 0)
                goto pause;
        for (unsigned i = 0; i < PROM_ACCEPT_BATCH; i++) {
                int fd = accept4(pm->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

                if (fd >= 0) {
                        prom_accept(pm, fd);
                        continue;
                }
                if (errno == EAGAIN)
                        return;
                if (errno != EINTR && errno != ECONNABORTED)
                        goto pause;
        }
        return;
pause:
        uv_poll_stop(&pm->listener);
        uv_timer_start(&pm->retry, on_retry, PROM_ACCEPT_BACKOFF_MS, 0);
}

/* ======================================================================
 * The listener
 * ====================================================================== */

static void on_listener_closed(uv_handle_t *h)
{
        struct gw_prom *pm = h->data;

        pm->open_handles--;
        if (h == (uv_handle_t *)&pm->listener) {
                pm->listening = false;
                pm->lfd = safe_close(pm->lfd);
        }
        if (pm->closing && pm->open_handles == 0 && !pm->conns) {
                free(pm->last_error);
                free(pm);
                return;
        }
        /* A new address waits for the old socket to be gone. */
        if (!pm->closing && pm->reopen && h == (uv_handle_t *)&pm->listener) {
                pm->reopen = false;
                gw_prom_apply(pm->d);
        }
}

static void prom_listen(struct gw_prom *pm);

static void on_retry(uv_timer_t *t)
{
        struct gw_prom *pm = t->data;

        /* The end of an accept backoff, or the retry of a failed listen. */
        if (pm->listening && !uv_is_closing((uv_handle_t *)&pm->listener)) {
                if (uv_poll_start(&pm->listener, UV_READABLE, on_listener_io) < 0)
                        uv_timer_start(&pm->retry, on_retry, PROM_ACCEPT_BACKOFF_MS, 0);
                return;
        }
        gw_prom_apply(pm->d);
}

/* A listening socket on @sa, as uv_tcp_bind() + uv_listen() made it
 * (SO_REUSEADDR; IPv6 also accepts IPv4). Returns the fd or -errno. */
static int listen_socket(const struct sockaddr_storage *sa, socklen_t len)
{
        int fd, one = 1, zero = 0, r;

        fd = socket(sa->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
            (sa->ss_family == AF_INET6 &&
             setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero)) < 0) ||
            bind(fd, (const struct sockaddr *)sa, len) < 0 || listen(fd, 64) < 0) {
                r = -errno;
                close(fd);
                return r;
        }
        return fd;
}

static void prom_listen(struct gw_prom *pm)
{
        const struct gw_config *cfg = &pm->d->cfg;
        char what[INET6_ADDRSTRLEN + 16];
        int r;

        gw_sockaddr_to_string((const struct sockaddr *)&cfg->metrics_listen, what, sizeof(what));
        pm->addr = cfg->metrics_listen;
        pm->addr_len = cfg->metrics_listen_len;
        r = listen_socket(&cfg->metrics_listen, cfg->metrics_listen_len);
        if (r >= 0) {
                pm->lfd = r;
                r = uv_poll_init(pm->d->loop, &pm->listener, pm->lfd);
                if (r < 0)
                        pm->lfd = safe_close(pm->lfd);
        }
        if (r >= 0) {
                pm->listener.data = pm;
                pm->listening = true;
                pm->open_handles++;
                r = uv_poll_start(&pm->listener, UV_READABLE, on_listener_io);
                if (r < 0)
                        uv_close((uv_handle_t *)&pm->listener, on_listener_closed);
        }
        gw_health_set(pm->d, GW_CHECK_METRICS, true, r >= 0, what, r < 0 ? uv_strerror(r) : NULL);
        if (r < 0) {
                if (!pm->last_error || !streq(pm->last_error, uv_strerror(r))) {
                        log_error("Cannot serve metrics on %s: %s; retrying", what, uv_strerror(r));
                        free(pm->last_error);
                        pm->last_error = strdup(uv_strerror(r));
                }
                /* The retry timer reopens it. */
                pm->addr_len = 0;
                pm->reopen = false;
                uv_timer_start(&pm->retry, on_retry, PROM_RETRY_MS, 0);
                return;
        }
        pm->last_error = mfree(pm->last_error);
        log_info("Serving metrics on http://%s/metrics", what);
}

void gw_prom_apply(struct gw_daemon *d)
{
        const struct gw_config *cfg = &d->cfg;
        struct gw_prom *pm = d->prom;

        if (d->stopping)
                return;
        /* At the start, after the configuration was read: Traefik's
         * last_reload_success counts the first load too. */
        if (!d->health.reload.ok_at_usec) {
                struct timespec ts;

                (void)clock_gettime(CLOCK_REALTIME, &ts);
                d->health.reload.ok_at_usec =
                        (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
        }
        if (!pm) {
                pm = calloc(1, sizeof(*pm));
                if (!pm) {
                        log_error("Cannot serve metrics: out of memory");
                        return;
                }
                pm->d = d;
                pm->lfd = -1;
                uv_timer_init(d->loop, &pm->retry);
                pm->retry.data = pm;
                pm->open_handles = 1;
                d->prom = pm;
        }
        if (pm->listening) {
                if (uv_is_closing((uv_handle_t *)&pm->listener)) {
                        pm->reopen = true; /* on_listener_closed() applies again */
                        return;
                }
                if (pm->addr_len == cfg->metrics_listen_len &&
                    memcmp(&pm->addr, &cfg->metrics_listen, pm->addr_len) == 0)
                        return;
                pm->reopen = true;
                uv_close((uv_handle_t *)&pm->listener, on_listener_closed);
                return;
        }
        uv_timer_stop(&pm->retry);
        if (cfg->metrics_listen_len == 0) {
                gw_health_set(d, GW_CHECK_METRICS, false, false, NULL, NULL);
                return;
        }
        prom_listen(pm);
}

void gw_prom_close(struct gw_daemon *d)
{
        struct gw_prom *pm = d->prom;

        if (!pm)
                return;
        /* Freed by the last close callback. */
        d->prom = NULL;
        pm->closing = true;
        for (struct prom_conn *c = pm->conns; c; c = c->next)
                conn_close(c);
        if (pm->listening && !uv_is_closing((uv_handle_t *)&pm->listener))
                uv_close((uv_handle_t *)&pm->listener, on_listener_closed);
        uv_close((uv_handle_t *)&pm->retry, on_listener_closed);
}
