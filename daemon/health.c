/* SPDX-License-Identifier: Apache-2.0 */
/* What the node really does, in one place, for GET /healthz, the health
 * gauges and the bus Info (issue 10).
 *
 * Each module that owns a piece of state reports it here when it changes
 * (gw_health_set()): gwns.c the namespace, proxy.c the :443/:80 listeners,
 * prometheus.c its own listener, main.c the bus connection and reloads.
 * What can change without an event reaching the daemon (the namespace
 * deleted or replaced at its path from outside, the transport's
 * connections) is read again by gw_health_refresh() before every report,
 * so a report is never older than the request that asks for it.
 *
 * A check that is not wanted (the namespace is not managed, a port is 0,
 * the gateway is off) is no problem and has no gauge. The overlays (issue
 * 12) are reported the same way but are no problems of their own: one is
 * up exactly while the namespace is ready, whose check says why not. Adding a check is
 * one enum value, one row in @checks below and a gw_health_set() call in
 * its owner. */
#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/macros.h"
#include "common/strbuf.h"
#include "daemon/daemon.h"
#include "proto/codec.h"

/* How each check is named in /healthz, the gauges and Info. */
static const struct {
        const char *name;     /* /healthz and gauge label */
        const char *ok_text;  /* human state when ok */
        const char *bad_text; /* ... and when not */
        const char *ok_key;   /* Info: the state */
        const char *want_key; /* Info: whether it applies */
        const char *where_key;
} checks[_GW_CHECK_MAX] = {
        [GW_CHECK_NAMESPACE] = {"namespace", "ready", "not ready", "Ready", "Managed", "Path"},
        [GW_CHECK_HTTPS] = {"https", "bound", "not bound", "Bound", "Configured", "Address"},
        [GW_CHECK_HTTP] = {"http", "bound", "not bound", "Bound", "Configured", "Address"},
        [GW_CHECK_METRICS] = {"metrics", "bound", "not bound", "Bound", "Configured", "Address"},
        [GW_CHECK_DNS] = {"dns", "bound", "not bound", "Bound", "Configured", "Address"},
        [GW_CHECK_BUS] = {"bus", "connected", "not connected", "Connected", "Configured", "Broker"},
};

const char *gw_check_to_string(enum gw_check c)
{
        return (unsigned)c < _GW_CHECK_MAX ? checks[c].name : NULL;
}

static const char *const reload_results[_GW_RELOAD_MAX] = {
        [GW_RELOAD_NONE] = "none",
        [GW_RELOAD_OK] = "ok",
        [GW_RELOAD_FAILED] = "failed",
};

static uint64_t realtime_usec(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_REALTIME, &ts);
        return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* Replace *@p by a copy of @s unless equal. On -ENOMEM the old text stays:
 * a report may be stale in its wording, never in its state. */
static void set_text(char **p, const char *s)
{
        char *copy;

        if (streq_ptr(*p, s))
                return;
        if (!s) {
                *p = mfree(*p);
                return;
        }
        copy = strdup(s);
        if (!copy)
                return;
        free(*p);
        *p = copy;
}

static void check_set(struct gw_health_check *k, bool wanted, bool ok, const char *where,
                      const char *error)
{
        ok = ok && wanted;
        if (!k->set || k->wanted != wanted || k->ok != ok)
                k->since_usec = realtime_usec();
        k->set = true;
        k->wanted = wanted;
        k->ok = ok;
        set_text(&k->where, where);
        /* The cause is said only while it applies; the last one stays. */
        if (ok || !wanted)
                error = NULL;
        else if (!error)
                error = "unknown";
        set_text(&k->error, error);
        if (error)
                set_text(&k->last_error, error);
}

void gw_health_set(struct gw_daemon *d, enum gw_check c, bool wanted, bool ok, const char *where,
                   const char *error)
{
        assert((unsigned)c < _GW_CHECK_MAX);
        check_set(&d->health.checks[c], wanted, ok, where, error);
}

void gw_health_set_overlay(struct gw_daemon *d, enum gw_overlay o, bool wanted, bool ok,
                           const char *where, const char *error)
{
        assert((unsigned)o < _GW_OVERLAY_MAX);
        check_set(&d->health.overlays[o], wanted, ok, where, error);
}

void gw_health_reload_done(struct gw_daemon *d, bool ok, const char *error)
{
        d->health.reload.result = ok ? GW_RELOAD_OK : GW_RELOAD_FAILED;
        d->health.reload.at_usec = realtime_usec();
        if (ok) {
                d->health.reload.ok_at_usec = d->health.reload.at_usec;
                d->health.reload.applied++;
        } else {
                d->health.reload.refused++;
                d->health.reload.failed_at_usec = d->health.reload.at_usec;
        }
        set_text(&d->health.reload.error, ok ? NULL : error ? error : "unknown");
}

void gw_health_refresh(struct gw_daemon *d)
{
        gw_ns_health_refresh(d);
        gw_proxy_health_refresh(d);
        /* The transport is the authority; on_bus_state() brings the reason. */
        if (d->bus && proto_bus_connected(d->bus) != d->health.checks[GW_CHECK_BUS].ok)
                gw_health_set(d, GW_CHECK_BUS, true, proto_bus_connected(d->bus), d->broker,
                              d->health.checks[GW_CHECK_BUS].error ?: "disconnected");
}

/* @s on one line: a line break in a cause (a kernel text, a path given on
 * the command line) would otherwise split one problem in two. */
static int put_line_text(struct strbuf *out, const char *s)
{
        int r = 0;

        for (; s && *s && r >= 0; s++)
                r = strbuf_putc(out, *s == '\n' || *s == '\r' ? ' ' : *s);
        return r;
}

/* "<check> <where>: <state>: <cause>", without the line feed. */
static int put_problem(struct strbuf *out, enum gw_check c, const struct gw_health_check *k)
{
        int r = strbuf_puts(out, checks[c].name);

        if (r >= 0 && k->where && (r = strbuf_putc(out, ' ')) >= 0)
                r = put_line_text(out, k->where);
        if (r >= 0)
                r = strbuf_printf(out, ": %s: ", checks[c].bad_text);
        if (r >= 0)
                r = put_line_text(out, k->error);
        return r;
}

int gw_health_problems(struct gw_daemon *d, struct strbuf *out)
{
        int n = 0, r;

        for (unsigned c = 0; c < _GW_CHECK_MAX; c++) {
                const struct gw_health_check *k = &d->health.checks[c];

                if (!k->wanted || k->ok)
                        continue;
                n++;
                if (out) {
                        r = put_problem(out, c, k);
                        if (r >= 0)
                                r = strbuf_putc(out, '\n');
                        if (r < 0)
                                return r;
                }
        }
        return n;
}

bool gw_health_ok(struct gw_daemon *d, enum gw_check c)
{
        return d->health.checks[c].wanted && d->health.checks[c].ok;
}

/* ---- Info ---- */

static int encode_time(struct strbuf *out, const char *key, uint64_t usec)
{
        int r = proto_encode_str(out, key);

        if (r < 0)
                return r;
        if (!usec)
                return proto_encode_nil(out);
        return proto_encode_time(out, (int64_t)(usec / 1000000u),
                                 (uint32_t)(usec % 1000000u) * 1000u);
}

/* The three keys every check's map ends with: "Error", "LastError", "Since". */
static int encode_check_state(struct strbuf *out, const struct gw_health_check *k)
{
        int r = proto_encode_key_str(out, "Error", strempty(k->error));

        if (r >= 0)
                r = proto_encode_key_str(out, "LastError", strempty(k->last_error));
        if (r >= 0)
                r = encode_time(out, "Since", k->since_usec);
        return r;
}

static int encode_check_map(struct strbuf *out, enum gw_check c, const struct gw_health_check *k,
                            bool named)
{
        int r;

        r = proto_encode_map_header(out, named ? 7 : 6);
        if (r >= 0 && named)
                r = proto_encode_key_str(out, "Name", checks[c].name);
        if (r >= 0)
                r = proto_encode_key_bool(out, checks[c].want_key, k->wanted);
        if (r >= 0)
                r = proto_encode_key_bool(out, checks[c].ok_key, k->wanted && k->ok);
        if (r >= 0)
                r = proto_encode_key_str(out, checks[c].where_key, strempty(k->where));
        if (r >= 0)
                r = encode_check_state(out, k);
        return r;
}

/* {"Name", "Configured", "Up", "Address", "Prefix", "Router", "Error",
 * "LastError", "Since"}: every overlay gatewayd knows, configured or not. */
static int encode_overlay_map(struct strbuf *out, const struct gw_config *cfg, enum gw_overlay o,
                              const struct gw_health_check *k)
{
        const struct gw_overlay_config *oc = &cfg->overlays[o];
        char router[INET6_ADDRSTRLEN] = "";
        int r;

        if (oc->link && !inet_ntop(AF_INET6, &oc->router, router, sizeof(router)))
                router[0] = 0;
        r = proto_encode_map_header(out, 9);
        if (r >= 0)
                r = proto_encode_key_str(out, "Name", gw_overlays[o].name);
        if (r >= 0)
                r = proto_encode_key_bool(out, "Configured", k->wanted);
        if (r >= 0)
                r = proto_encode_key_bool(out, "Up", k->wanted && k->ok);
        if (r >= 0)
                r = proto_encode_key_str(out, "Address", k->wanted ? strempty(k->where) : "");
        if (r >= 0)
                r = proto_encode_key_str(out, "Prefix", gw_overlays[o].prefix_str);
        if (r >= 0)
                r = proto_encode_key_str(out, "Router", k->wanted ? router : "");
        if (r >= 0)
                r = encode_check_state(out, k);
        return r;
}

int gw_health_encode(struct gw_daemon *d, struct strbuf *out)
{
        static const enum gw_check listeners[] = {GW_CHECK_HTTPS, GW_CHECK_HTTP, GW_CHECK_METRICS,
                                                  GW_CHECK_DNS};
        const struct gw_health *h = &d->health;
        int n, r;

        n = gw_health_problems(d, NULL);
        if (n < 0)
                return n;
        r = proto_encode_map_header(out, 9);
        if (r >= 0)
                r = proto_encode_key_bool(out, "Healthy", n == 0);
        /* Workloads the bus confirmed whose state file was corrupt: they
         * are not served until deployed again (not a /healthz problem: the
         * node serves everything else). */
        if (r >= 0)
                r = proto_encode_key_uint(out, "CorruptStateFiles", d->n_corrupt);
        if (r >= 0)
                r = proto_encode_str(out, "CorruptWorkloads");
        if (r >= 0)
                r = proto_encode_array_header(out, (uint32_t)d->n_corrupt_ids);
        for (size_t i = 0; i < d->n_corrupt_ids && r >= 0; i++)
                r = proto_encode_str(out, d->corrupt_ids[i]);
        if (r >= 0)
                r = proto_encode_str(out, "Problems");
        if (r >= 0)
                r = proto_encode_array_header(out, (uint32_t)n);
        for (unsigned c = 0; c < _GW_CHECK_MAX && r >= 0; c++) {
                _cleanup_strbuf_ struct strbuf line = STRBUF_INIT;

                if (!h->checks[c].wanted || h->checks[c].ok)
                        continue;
                r = put_problem(&line, c, &h->checks[c]);
                if (r >= 0)
                        r = proto_encode_str(out, line.data);
        }
        if (r >= 0)
                r = proto_encode_str(out, "Namespace");
        if (r >= 0)
                r = encode_check_map(out, GW_CHECK_NAMESPACE, &h->checks[GW_CHECK_NAMESPACE],
                                     false);
        if (r >= 0)
                r = proto_encode_str(out, "Overlays");
        if (r >= 0)
                r = proto_encode_array_header(out, _GW_OVERLAY_MAX);
        for (unsigned o = 0; o < _GW_OVERLAY_MAX && r >= 0; o++)
                r = encode_overlay_map(out, &d->cfg, o, &h->overlays[o]);
        if (r >= 0)
                r = proto_encode_str(out, "Listeners");
        if (r >= 0)
                r = proto_encode_array_header(out, ELEMENTSOF(listeners));
        for (size_t i = 0; i < ELEMENTSOF(listeners) && r >= 0; i++)
                r = encode_check_map(out, listeners[i], &h->checks[listeners[i]], true);
        if (r >= 0)
                r = proto_encode_str(out, "Bus");
        if (r >= 0)
                r = encode_check_map(out, GW_CHECK_BUS, &h->checks[GW_CHECK_BUS], false);
        if (r >= 0)
                r = proto_encode_str(out, "Reload");
        if (r >= 0)
                r = proto_encode_map_header(out, 3);
        if (r >= 0)
                r = proto_encode_key_str(out, "Result", reload_results[h->reload.result]);
        if (r >= 0)
                r = proto_encode_key_str(out, "Error", strempty(h->reload.error));
        if (r >= 0)
                r = encode_time(out, "Time", h->reload.at_usec);
        return r;
}

void gw_health_done(struct gw_health *h)
{
        for (unsigned c = 0; c < _GW_CHECK_MAX; c++) {
                free(h->checks[c].where);
                free(h->checks[c].error);
                free(h->checks[c].last_error);
        }
        for (unsigned o = 0; o < _GW_OVERLAY_MAX; o++) {
                free(h->overlays[o].where);
                free(h->overlays[o].error);
                free(h->overlays[o].last_error);
        }
        free(h->reload.error);
        *h = (struct gw_health){};
}
