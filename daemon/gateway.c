/* SPDX-License-Identifier: Apache-2.0 */
/* The gateway.manager@0.0.1 object: zos's four methods plus read-only
 * operator methods. Each Set* call is a small asynchronous state machine
 * (public config -> name contract or DNS -> plan -> persist -> commit) so
 * that the loop, and with it the status object, never waits on I/O. The
 * checks run in the order protocol-zbus-gateway.md §4.1/§4.2 gives. */
#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "common/list.h"
#include "common/log.h"
#include "common/macros.h"
#include "common/strbuf.h"
#include "common/utf8.h"
#include "daemon/acme.h"
#include "daemon/daemon.h"
#include "daemon/dns.h"
#include "gw-commit.h"
#include "gw-version.h"
#include "proxy/routes.h"

enum op_step {
        OP_STEP_PUBCONF, /* waiting for the public config */
        OP_STEP_NAME,    /* waiting for api-gateway */
        OP_STEP_DNS,     /* waiting for the FQDN lookup */
        OP_STEP_DONE,
};

struct gw_op {
        struct gw_daemon *d;
        struct gw_op *prev, *next;
        struct proto_bus_call *call;
        bool fqdn; /* SetFQDNProxy, else SetNamedProxy */
        enum op_step step;
        struct wl_proxy *p;
        struct wl_public_config pc;
        struct wl_id wid;
        struct proto_bus_pending *pending;
        struct gw_name_check *check;
        struct gw_dns_query *query;
        char raw_id[128]; /* the ID argument as sent, escaped, for log lines */
};

static uint64_t now_usec(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_REALTIME, &ts);
        return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

bool gw_utf8_valid(const char *s, size_t n)
{
        /* Go strings may hold NUL, but no bus string we accept does. */
        return !memchr(s, 0, n) && utf8_valid(s, n);
}

/* ======================================================================
 * Replies
 * ====================================================================== */

enum result_kind {
        RESULT_NONE,    /* error-only method: Data nil */
        RESULT_STRING,  /* SetNamedProxy: "" on error */
        RESULT_METRICS, /* zero GatewayMetrics on error */
        RESULT_OTHER,   /* our extensions: a bin holding c0 (decodes as zero in Go) */
};

static void reply_error(struct proto_bus_call *call, enum result_kind kind, const char *error)
{
        _cleanup_strbuf_ struct strbuf data = STRBUF_INIT;
        int r = 0;

        switch (kind) {
        case RESULT_NONE:
                proto_bus_call_reply(call, NULL, 0, error);
                return;
        case RESULT_STRING:
                r = proto_encode_str(&data, "");
                break;
        case RESULT_METRICS:
                r = proto_metrics_encode(&data, NULL, 0, NULL, 0);
                break;
        case RESULT_OTHER:
                r = proto_encode_nil(&data);
                break;
        }
        if (r < 0) {
                proto_bus_call_reply(call, NULL, 0, error);
                return;
        }
        proto_bus_call_reply(call, data.data, data.len, error);
}

_printf_(3, 4) static void reply_errorf(struct proto_bus_call *call, enum result_kind kind,
                                        const char *fmt, ...)
{
        _cleanup_free_ char *msg = NULL;
        va_list ap;

        va_start(ap, fmt);
        if (vasprintf(&msg, fmt, ap) < 0)
                msg = NULL;
        va_end(ap);
        reply_error(call, kind, msg ? msg : "out of memory");
}

/* Check the argument count and decode argument @i as a string. Replies
 * with zbus's texts on failure and returns false. */
static bool args_count(struct proto_bus_call *call, enum result_kind kind, size_t want)
{
        const struct proto_request *req = proto_bus_call_request(call);

        if (req->n_inputs == want)
                return true;
        reply_errorf(call, kind, "invalid number of arguments expecting %zu got %zu", want,
                     req->n_inputs);
        return false;
}

static bool arg_string(struct proto_bus_call *call, enum result_kind kind, size_t i,
                       struct proto_str *ret)
{
        const struct proto_request *req = proto_bus_call_request(call);

        if (proto_decode_str(req->inputs[i].s, req->inputs[i].n, ret) < 0) {
                reply_errorf(call, kind, "invalid argument type [%zu] expecting string got", i);
                return false;
        }
        if (!gw_utf8_valid(ret->s, ret->n)) {
                proto_str_done(ret);
                reply_errorf(call, kind, "invalid argument [%zu]: not valid UTF-8 text", i);
                return false;
        }
        return true;
}

/* ======================================================================
 * Set*Proxy
 * ====================================================================== */

static void op_free(struct gw_op *op)
{
        struct gw_daemon *d = op->d;

        LIST_REMOVE(d->ops, op);
        wl_proxy_free(op->p);
        wl_public_config_done(&op->pc);
        free(op);
}

static void op_fail(struct gw_op *op, const char *error)
{
        op->step = OP_STEP_DONE;
        /* The ID as sent (escaped): it may be what failed to parse. */
        log_wl(LOG_INFO, op->raw_id, op->p ? op->p->fqdn : NULL, "%s \"%s\" refused: %s",
               op->fqdn ? "SetFQDNProxy" : "SetNamedProxy", op->raw_id, error);
        reply_error(op->call, op->fqdn ? RESULT_NONE : RESULT_STRING, error);
        op_free(op);
}

_printf_(2, 3) static void op_failf(struct gw_op *op, const char *fmt, ...)
{
        _cleanup_free_ char *msg = NULL;
        va_list ap;

        va_start(ap, fmt);
        if (vasprintf(&msg, fmt, ap) < 0)
                msg = NULL;
        va_end(ap);
        op_fail(op, msg ? msg : "out of memory");
}

static void op_fail_take(struct gw_op *op, char *error)
{
        op_fail(op, error ? error : "out of memory");
        free(error);
}

/* The capability switch and the gateway namespace (ensureGateway's part of
 * §4.1 step 3). Fails @op and returns false when either is not there. */
static bool op_gateway_available(struct gw_op *op)
{
        const char *why = NULL;

        if (!op->d->cfg.enabled) {
                op_fail(op, "gateway is not supported on this node: the gateway capability is "
                            "disabled in the node configuration");
                return false;
        }
        if (!gw_ns_ready(op->d, &why)) {
                op_failf(op,
                         "gateway is not supported on this node: the gateway network namespace "
                         "is not ready: %s",
                         why);
                return false;
        }
        return true;
}

/* §4.6: the private network must exist on this node. */
static int check_network(struct gw_daemon *d, const struct wl_proxy *p, char **reterr)
{
        char path[PATH_MAX];
        struct stat st;
        int r;

        if (!p->network)
                return 0;
        r = gw_ns_path(d, p->net_id, path, sizeof(path));
        if (r >= 0 && stat(path, &st) < 0)
                r = -errno;
        if (r < 0) {
                if (asprintf(reterr,
                             "failed to get user network: couldn't load network with id (%s): %s",
                             p->net_id,
                             r == -ENOENT ? "network namespace does not exist" : strerror(-r)) < 0)
                        *reterr = NULL;
                return r;
        }
        return 0;
}

static void op_finish(struct gw_op *op)
{
        _cleanup_strbuf_ struct strbuf data = STRBUF_INIT;
        struct gw_daemon *d = op->d;
        struct wl_plan plan = {};
        enum wl_plan_type type;
        char id[WL_ID_MAX + 1];
        char *err = NULL;
        int r;

        op->step = OP_STEP_DONE;
        /* The switch may have been turned off (SIGHUP) or the namespace lost
         * while this call waited on the bus or DNS. */
        if (!op_gateway_available(op))
                return;
        /* setupRouting §4.3: backends, domain conflict, then the network. */
        r = wl_plan_set(d->reg, op->p, &op->pc, &plan, &err);
        if (r < 0) {
                op_fail_take(op, err);
                return;
        }
        op->p = NULL; /* owned by the plan now */
        r = check_network(d, plan.new ? plan.new : plan.old, &err);
        if (r < 0) {
                wl_plan_done(&plan);
                op_fail_take(op, err);
                return;
        }

        if (plan.type == WL_PLAN_ADD || plan.type == WL_PLAN_REPLACE) {
                uint64_t now = now_usec();

                plan.new->created_usec = plan.old ? plan.old->created_usec : now;
                plan.new->updated_usec = now;
                /* Persist before the reply: nothing confirmed is lost. */
                r = gw_state_save(d->state, plan.new);
                if (r < 0) {
                        log_error_errno(r, "Failed to persist workload %s: %m", plan.new->id);
                        wl_plan_done(&plan);
                        op_failf(op, "couldn't open config file for writing: %s", strerror(-r));
                        return;
                }
                if (plan.type == WL_PLAN_REPLACE && plan.old &&
                    strcasecmp(plan.old->fqdn, plan.new->fqdn) != 0)
                        log_wl(LOG_INFO, plan.new->id, plan.old->fqdn, "Workload %s releases %s",
                               plan.new->id, plan.old->fqdn);
        }
        type = plan.type;
        {
                const struct wl_proxy *p = plan.new ? plan.new : plan.old;
                snprintf(id, sizeof(id), "%s", p->id);
                log_wl(LOG_INFO, p->id, p->fqdn, "%s %s: %s %s -> %zu backend(s)%s",
                       op->fqdn ? "SetFQDNProxy" : "SetNamedProxy", p->id,
                       wl_plan_type_to_string(plan.type), p->fqdn, p->n_backends,
                       p->tls_passthrough ? " (passthrough)" : "");
                if (!op->fqdn && proto_encode_str(&data, p->fqdn) < 0) {
                        wl_plan_done(&plan);
                        op_fail(op, "out of memory");
                        return;
                }
        }
        /* The previous version, for the route change (commit frees it). */
        _cleanup_(wl_proxy_freep) struct wl_proxy *old = NULL;
        if (plan.type == WL_PLAN_REPLACE && plan.old) {
                old = wl_proxy_dup(plan.old);
                if (!old) {
                        wl_plan_done(&plan);
                        op_fail(op, "out of memory");
                        return;
                }
        }
        r = wl_registry_commit(d->reg, &plan);
        if (r < 0) {
                /* The file is written but the registry could not take it: the
                 * caller gets an error and a re-send (or a restart) settles it. */
                wl_plan_done(&plan);
                op_fail(op, "out of memory");
                return;
        }
        wl_plan_done(&plan);
        /* Served by every proxy worker before the caller hears "done". A
         * route that cannot be made is logged; the workload stays accepted
         * (as zos accepts what Traefik then fails to serve). */
        if (type != WL_PLAN_NOOP) {
                (void)gw_proxy_workload_changed(d, old, wl_registry_get(d->reg, id));
                gw_acme_workload_changed(d, old, wl_registry_get(d->reg, id));
        }
        proto_bus_call_reply(op->call, op->fqdn ? NULL : data.data, op->fqdn ? 0 : data.len, NULL);
        op_free(op);
}

static void on_name_checked(enum gw_name_verdict v, const char *reason, void *userdata)
{
        struct gw_op *op = userdata;

        op->check = NULL;
        if (v != GW_NAME_OK) {
                op_failf(op, "failed to verify name contract: %s", reason);
                return;
        }
        op_finish(op);
}

static bool addr_matches(const char *addr, const struct wl_public_config *pc)
{
        char buf[INET6_ADDRSTRLEN];

        /* Go compares IP.String() forms. */
        if (pc->has_ipv4 && inet_ntop(AF_INET, &pc->ipv4, buf, sizeof(buf)) && streq(addr, buf))
                return true;
        if (pc->has_ipv6 && inet_ntop(AF_INET6, &pc->ipv6, buf, sizeof(buf)) && streq(addr, buf))
                return true;
        return false;
}

static void on_dns(const char *error, char **addrs, size_t n, void *userdata)
{
        struct gw_op *op = userdata;

        op->query = NULL;
        if (error) {
                op_failf(op, "failed to verify domain dns record: %s", error);
                return;
        }
        for (size_t i = 0; i < n; i++)
                if (addr_matches(addrs[i], &op->pc)) {
                        op_finish(op);
                        return;
                }
        op_fail(op, "failed to verify domain dns record: host doesn't point to the gateway ip");
}

static void on_pubconf(int r, const char *error, const struct wl_public_config *pc, void *userdata)
{
        struct gw_op *op = userdata;
        char *err = NULL;
        int k;

        if (r == -ECANCELED)
                return; /* the op was abandoned at shutdown */
        op->pending = NULL;
        if (r < 0) {
                op_failf(op, "gateway is not supported on this node: %s", error);
                return;
        }
        if (wl_public_config_copy(pc, &op->pc) < 0) {
                op_fail(op, "out of memory");
                return;
        }
        if (!op->fqdn) {
                /* §4.1 step 4, then the name contract (step 5). */
                k = wl_check_name_node(op->p, &op->pc, &err);
                if (k < 0) {
                        op_fail_take(op, err);
                        return;
                }
                if (op->d->cfg.name_validation == GW_NAME_VALIDATION_OFF) {
                        op_finish(op);
                        return;
                }
                op->step = OP_STEP_NAME;
                k = gw_name_check_start(op->d, op->p->name, op->wid.twin, on_name_checked, op,
                                        &op->check);
                if (k < 0)
                        op_failf(op, "failed to verify name contract: %s", strerror(-k));
                return;
        }
        /* §4.2 step 3, then DNS (step 4). */
        k = wl_check_fqdn_node(op->p, &op->pc, &err);
        if (k < 0) {
                op_fail_take(op, err);
                return;
        }
        if (!op->d->dns) {
                op_fail(op, "failed to verify domain dns record: no resolver configured");
                return;
        }
        op->step = OP_STEP_DNS;
        k = gw_dns_lookup(op->d->dns, op->p->fqdn, on_dns, op, &op->query);
        if (k < 0)
                op_failf(op, "failed to verify domain dns record: %s", strerror(-k));
}

static int proxy_from_args(const struct proto_gw_proxy *gp, const struct proto_str *id, bool fqdn,
                           struct wl_proxy **ret, char **reterr)
{
        _cleanup_(wl_proxy_freep) struct wl_proxy *p = wl_proxy_new();

        if (!p)
                return -ENOMEM;
        if (!gw_utf8_valid(gp->name.s, gp->name.n) ||
            (gp->has_network && !gw_utf8_valid(gp->network.s, gp->network.n))) {
                *reterr = strdup("invalid argument [1]: not valid UTF-8 text");
                return -EINVAL;
        }
        p->kind = fqdn ? WL_KIND_FQDN : WL_KIND_NAME;
        p->id = strdup(id->s);
        if (!p->id)
                return -ENOMEM;
        if (fqdn)
                p->fqdn = strdup(gp->name.s);
        else
                p->name = strdup(gp->name.s);
        if (!(fqdn ? p->fqdn : p->name))
                return -ENOMEM;
        p->tls_passthrough = gp->tls_passthrough;
        if (gp->has_network && !(p->network = strdup(gp->network.s)))
                return -ENOMEM;
        p->backends = calloc(gp->n_backends + 1, sizeof(char *));
        if (!p->backends)
                return -ENOMEM;
        for (size_t i = 0; i < gp->n_backends; i++) {
                if (!gw_utf8_valid(gp->backends[i].s, gp->backends[i].n)) {
                        *reterr = strdup("invalid argument [1]: not valid UTF-8 text");
                        return -EINVAL;
                }
                p->backends[i] = strdup(gp->backends[i].s);
                if (!p->backends[i])
                        return -ENOMEM;
                p->n_backends++;
        }
        *ret = TAKE_PTR(p);
        return 0;
}

static void handle_set(struct gw_daemon *d, struct proto_bus_call *call, bool fqdn)
{
        const struct proto_request *req = proto_bus_call_request(call);
        enum result_kind kind = fqdn ? RESULT_NONE : RESULT_STRING;
        struct proto_str id = {};
        struct proto_gw_proxy gp = {};
        struct gw_op *op;
        char *err = NULL;
        int r;

        if (!args_count(call, kind, 2) || !arg_string(call, kind, 0, &id))
                return;
        if (proto_gw_proxy_decode(req->inputs[1].s, req->inputs[1].n, fqdn, &gp) < 0) {
                proto_str_done(&id);
                reply_errorf(call, kind, "invalid argument type [1] expecting %s got",
                             fqdn ? "zos.GatewayFQDNProxy" : "zos.GatewayNameProxy");
                return;
        }
        op = calloc(1, sizeof(*op));
        if (!op) {
                proto_str_done(&id);
                proto_gw_proxy_done(&gp);
                reply_error(call, kind, "out of memory");
                return;
        }
        op->d = d;
        op->call = call;
        op->fqdn = fqdn;
        cescape(id.s, id.n, op->raw_id, sizeof(op->raw_id));
        LIST_PREPEND(d->ops, op);
        r = proxy_from_args(&gp, &id, fqdn, &op->p, &err);
        proto_str_done(&id);
        proto_gw_proxy_done(&gp);
        if (r < 0) {
                op_fail_take(op, r == -ENOMEM ? NULL : err);
                return;
        }

        /* §4.1 steps 1-2 / §4.2 step 1. */
        r = fqdn ? wl_check_fqdn_request(op->p, &err) : wl_check_name_request(op->p, &err);
        if (r < 0) {
                op_fail_take(op, err);
                return;
        }
        if (!fqdn) {
                r = wl_id_parse(op->p->id, &op->wid, &err);
                assert(r >= 0); /* checked above */
                free(err);
                err = NULL;
        }
        /* Step 3 (ensureGateway): the capability and the public config. */
        if (!op_gateway_available(op))
                return;
        op->step = OP_STEP_PUBCONF;
        r = gw_pubconf_get(d, on_pubconf, op, &op->pending);
        if (r < 0)
                op_failf(op, "gateway is not supported on this node: %s", strerror(-r));
}

/* A bus Reload waiting for the end of a reload that began after it came. */
struct gw_reload_wait {
        struct gw_reload_wait *next;
        struct proto_bus_call *call;
        uint64_t reload; /* d->reloads_started of the reload that answers it */
};

void gw_manager_cancel_all(struct gw_daemon *d)
{
        while (d->reload_waits) {
                struct gw_reload_wait *w = d->reload_waits;

                d->reload_waits = w->next;
                reply_error(w->call, RESULT_OTHER, "gatewayd is shutting down");
                free(w);
        }
        while (d->ops) {
                struct gw_op *op = d->ops;

                /* Cancelling makes the pending callbacks no-ops; the request
                 * stays in the inflight list and is handled after restart. */
                if (op->check)
                        gw_name_check_cancel(op->check);
                if (op->query)
                        gw_dns_query_cancel(op->query);
                if (op->pending)
                        proto_bus_request_cancel(op->pending);
                proto_bus_call_reply(op->call, NULL, 0, "gatewayd is shutting down");
                op_free(op);
        }
}

/* ======================================================================
 * DeleteNamedProxy, Metrics, operator methods
 * ====================================================================== */

static void handle_delete(struct gw_daemon *d, struct proto_bus_call *call)
{
        struct proto_str id = {};
        struct wl_plan plan = {};
        int r;

        if (!args_count(call, RESULT_NONE, 1) || !arg_string(call, RESULT_NONE, 0, &id))
                return;
        r = wl_plan_delete(d->reg, id.s, &plan);
        if (r >= 0 && plan.type == WL_PLAN_REMOVE) {
                _cleanup_(wl_proxy_freep) struct wl_proxy *old = wl_proxy_dup(plan.old);
                const char *fqdn = old ? old->fqdn : NULL;

                r = gw_state_remove(d->state, id.s);
                if (r < 0) {
                        log_error_errno(r, "Failed to remove state of workload %s: %m", id.s);
                        wl_plan_done(&plan);
                        reply_errorf(call, RESULT_NONE, "couldn't remove config file: %s",
                                     strerror(-r));
                        proto_str_done(&id);
                        return;
                }
                r = wl_registry_commit(d->reg, &plan);
                /* New connections are refused and open ones of this name
                 * closed before the reply. */
                if (r >= 0 && old) {
                        (void)gw_proxy_workload_changed(d, old, NULL);
                        gw_acme_workload_changed(d, old, NULL);
                }
                log_wl(LOG_INFO, id.s, fqdn, "DeleteNamedProxy %s: removed %s", id.s,
                       strempty(fqdn));
        }
        wl_plan_done(&plan);
        proto_str_done(&id);
        /* zos: always success, also for unknown IDs. */
        proto_bus_call_reply(call, NULL, 0, r < 0 ? "out of memory" : NULL);
}

struct metrics_ctx {
        const struct proxy_routes *routes;
        struct proto_metric *req, *resp;
        size_t n;
};

static int collect_metric(const struct wl_proxy *p, void *userdata)
{
        struct metrics_ctx *ctx = userdata;
        struct gw_counters c;

        gw_proxy_counters(ctx->routes, p->id, &c);
        ctx->req[ctx->n] = (struct proto_metric){p->id, (double)c.request_bytes};
        ctx->resp[ctx->n] = (struct proto_metric){p->id, (double)c.response_bytes};
        ctx->n++;
        return 0;
}

static void handle_metrics(struct gw_daemon *d, struct proto_bus_call *call)
{
        _cleanup_strbuf_ struct strbuf data = STRBUF_INIT;
        size_t n = wl_registry_size(d->reg);
        _cleanup_free_ struct proto_metric *rq = calloc(n + 1, sizeof(*rq));
        _cleanup_free_ struct proto_metric *rs = calloc(n + 1, sizeof(*rs));
        _cleanup_(proxy_routes_unrefp) struct proxy_routes *routes = gw_proxy_snapshot(d);
        struct metrics_ctx ctx = {routes, rq, rs, 0};

        if (!args_count(call, RESULT_METRICS, 0))
                return;
        if (!rq || !rs) {
                reply_error(call, RESULT_METRICS, "out of memory");
                return;
        }
        wl_registry_foreach(d->reg, collect_metric, &ctx);
        if (proto_metrics_encode(&data, rq, ctx.n, rs, ctx.n) < 0) {
                reply_error(call, RESULT_METRICS, "out of memory");
                return;
        }
        proto_bus_call_reply(call, data.data, data.len, NULL);
}

/* ProxyInfo.BackendHealth from the route's backends (none without one). */
struct health_rows {
        struct proto_backend_health rows[PROXY_ROUTE_BACKENDS_MAX];
        char errors[PROXY_ROUTE_BACKENDS_MAX][96];
        size_t n;
};

static void collect_health(const struct proxy_routes *routes, const char *id, struct health_rows *h)
{
        const struct proxy_route *r = routes ? proxy_routes_lookup_id(routes, id) : NULL;

        h->n = 0;
        for (size_t i = 0; r && i < r->n_backends && i < PROXY_ROUTE_BACKENDS_MAX; i++) {
                struct proxy_backend_health_values v;
                struct proto_backend_health *row = &h->rows[h->n];

                proxy_backend_health_read(r->backends[i].health, &v);
                *row = (struct proto_backend_health){
                        .backend = r->backends[i].text,
                        .up = !v.down,
                        .since_ms = v.since_ms,
                        .last_error_ms = v.has_error ? v.last_error_ms : 0,
                };
                if (v.has_error) {
                        snprintf(h->errors[h->n], sizeof(h->errors[h->n]), "%s%s%s",
                                 proxy_backend_failure_str(v.last_error), v.last_errno ? ": " : "",
                                 v.last_errno ? strerror(v.last_errno) : "");
                        row->last_error = h->errors[h->n];
                }
                h->n++;
        }
}

static int encode_proxy_info(const struct proxy_routes *routes, struct strbuf *out,
                             const struct wl_proxy *p)
{
        _cleanup_free_ struct health_rows *h = malloc(sizeof(*h));
        struct gw_counters c;

        if (!h)
                return -ENOMEM;
        collect_health(routes, p->id, h);
        gw_proxy_counters(routes, p->id, &c);
        struct proto_proxy_info pi = {
                .id = p->id,
                .kind = wl_kind_to_string(p->kind),
                .fqdn = p->fqdn,
                .name = p->name,
                .backends = (const char *const *)p->backends,
                .n_backends = p->n_backends,
                .tls_passthrough = p->tls_passthrough,
                .network = p->network,
                .created_sec = (int64_t)(p->created_usec / 1000000),
                .updated_sec = (int64_t)(p->updated_usec / 1000000),
                .request_bytes = (double)c.request_bytes,
                .response_bytes = (double)c.response_bytes,
                .health = h->rows,
                .n_health = h->n,
        };
        return proto_proxy_info_encode(out, &pi);
}

struct list_ctx {
        const struct proxy_routes *routes;
        struct strbuf *out;
};

static int list_one(const struct wl_proxy *p, void *userdata)
{
        struct list_ctx *ctx = userdata;

        return encode_proxy_info(ctx->routes, ctx->out, p);
}

static void handle_list(struct gw_daemon *d, struct proto_bus_call *call)
{
        _cleanup_strbuf_ struct strbuf data = STRBUF_INIT;
        _cleanup_(proxy_routes_unrefp) struct proxy_routes *routes = gw_proxy_snapshot(d);
        struct list_ctx ctx = {routes, &data};
        int r;

        if (!args_count(call, RESULT_OTHER, 0))
                return;
        r = proto_encode_array_header(&data, (uint32_t)wl_registry_size(d->reg));
        if (r >= 0)
                r = wl_registry_foreach(d->reg, list_one, &ctx);
        if (r < 0) {
                reply_error(call, RESULT_OTHER, "out of memory");
                return;
        }
        proto_bus_call_reply(call, data.data, data.len, NULL);
}

static void handle_get(struct gw_daemon *d, struct proto_bus_call *call)
{
        _cleanup_strbuf_ struct strbuf data = STRBUF_INIT;
        struct proto_str id = {};
        const struct wl_proxy *p;

        if (!args_count(call, RESULT_OTHER, 1) || !arg_string(call, RESULT_OTHER, 0, &id))
                return;
        p = wl_registry_get(d->reg, id.s);
        if (!p) {
                reply_errorf(call, RESULT_OTHER, "proxy with workload id '%s' not found", id.s);
                proto_str_done(&id);
                return;
        }
        proto_str_done(&id);
        _cleanup_(proxy_routes_unrefp) struct proxy_routes *routes = gw_proxy_snapshot(d);
        if (encode_proxy_info(routes, &data, p) < 0) {
                reply_error(call, RESULT_OTHER, "out of memory");
                return;
        }
        proto_bus_call_reply(call, data.data, data.len, NULL);
}

static void handle_list_certs(struct gw_daemon *d, struct proto_bus_call *call)
{
        _cleanup_strbuf_ struct strbuf data = STRBUF_INIT;

        if (!args_count(call, RESULT_OTHER, 0))
                return;
        if (gw_acme_encode_list(d, &data) < 0) {
                reply_error(call, RESULT_OTHER, "out of memory");
                return;
        }
        proto_bus_call_reply(call, data.data, data.len, NULL);
}

static void handle_info(struct gw_daemon *d, struct proto_bus_call *call)
{
        _cleanup_strbuf_ struct strbuf data = STRBUF_INIT;
        char v4[INET_ADDRSTRLEN + 4] = "", v6[INET6_ADDRSTRLEN + 4] = "";
        const struct wl_public_config *pc =
                d->cfg.public_config == GW_PUBLIC_CONFIG_BUS ? &d->pc_cache : &d->cfg.pc;
        int r;

        if (!args_count(call, RESULT_OTHER, 0))
                return;
        if (pc->has_ipv4 && inet_ntop(AF_INET, &pc->ipv4, v4, sizeof(v4)))
                snprintf(v4 + strlen(v4), sizeof(v4) - strlen(v4), "/%u", pc->ipv4_prefix);
        if (pc->has_ipv6 && inet_ntop(AF_INET6, &pc->ipv6, v6, sizeof(v6)))
                snprintf(v6 + strlen(v6), sizeof(v6) - strlen(v6), "/%u", pc->ipv6_prefix);
        gw_health_refresh(d);
        /* Keys are only ever added (gatewayctl prints unknown ones as sent). */
        r = proto_encode_map_header(&data, 11);
        if (r >= 0)
                r = proto_encode_key_str(&data, "Version", GATEWAYD_VERSION);
        if (r >= 0)
                r = proto_encode_key_str(&data, "Commit", GATEWAYD_COMMIT);
        if (r >= 0)
                r = proto_encode_key_bool(&data, "Enabled", d->cfg.enabled);
        if (r >= 0)
                r = proto_encode_key_str(&data, "Domain",
                                         strempty(pc->domain ? pc->domain : d->cfg.pc.domain));
        if (r >= 0)
                r = proto_encode_key_uint(&data, "Workloads", wl_registry_size(d->reg));
        if (r >= 0)
                r = proto_encode_key_str(&data, "PublicConfig",
                                         d->cfg.public_config == GW_PUBLIC_CONFIG_BUS ? "bus"
                                                                                      : "file");
        if (r >= 0)
                r = proto_encode_key_str(&data, "PublicIPv4", v4);
        if (r >= 0)
                r = proto_encode_key_str(&data, "PublicIPv6", v6);
        if (r >= 0)
                r = proto_encode_key_str(&data, "NameValidation",
                                         d->cfg.name_validation == GW_NAME_VALIDATION_BUS ? "bus"
                                                                                          : "off");
        if (r >= 0)
                r = proto_encode_key_str(&data, "Bus", proto_bus_queue(d->bus));
        if (r >= 0)
                r = proto_encode_str(&data, "Health");
        if (r >= 0)
                r = gw_health_encode(d, &data);
        if (r < 0) {
                reply_error(call, RESULT_OTHER, "out of memory");
                return;
        }
        proto_bus_call_reply(call, data.data, data.len, NULL);
}

/* Reload(): read the configuration file again, as SIGHUP does, and answer once that reload
 * has ended: Data is the file's path, or Error says why it was refused (every error of the
 * file, one per line). A reload under way when the call comes read the file before it: the
 * call waits for the next one (main.c runs it when this one ends). Each waiting call holds its
 * bus worker, so the workers bound how many wait. */
static void handle_reload(struct gw_daemon *d, struct proto_bus_call *call)
{
        struct gw_reload_wait *w;

        if (!args_count(call, RESULT_OTHER, 0))
                return;
        if (!d->reload) {
                reply_error(call, RESULT_OTHER, "reloading is not available");
                return;
        }
        w = malloc(sizeof(*w));
        if (!w) {
                reply_error(call, RESULT_OTHER, "out of memory");
                return;
        }
        *w = (struct gw_reload_wait){
                .next = d->reload_waits,
                .call = call,
                .reload = d->reloads_started + 1,
        };
        d->reload_waits = w;
        d->reload(d); /* may answer before it returns */
}

void gw_manager_reload_done(struct gw_daemon *d, bool ok, const char *error)
{
        struct gw_reload_wait **p = &d->reload_waits, *done = NULL;

        /* Take them off the list first: a reply can start the next queued call at once, and
         * that may be a Reload that begins (and ends) another reload. */
        while (*p) {
                struct gw_reload_wait *w = *p;

                if (w->reload > d->reloads_started) {
                        p = &w->next;
                        continue;
                }
                *p = w->next;
                w->next = done;
                done = w;
        }
        while (done) {
                struct gw_reload_wait *w = done;
                _cleanup_strbuf_ struct strbuf data = STRBUF_INIT;

                done = w->next;
                if (!ok)
                        reply_error(w->call, RESULT_OTHER, error ? error : "refused");
                else if (proto_encode_str(&data, d->config_path) < 0)
                        reply_error(w->call, RESULT_OTHER, "out of memory");
                else
                        proto_bus_call_reply(w->call, data.data, data.len, NULL);
                free(w);
        }
}

void gw_manager_on_request(struct proto_bus *bus, struct proto_bus_call *call, void *userdata)
{
        struct gw_daemon *d = userdata;
        const struct proto_request *req = proto_bus_call_request(call);
        const struct proto_str *m = &req->method;

        if (proto_str_eq(m, "SetNamedProxy"))
                handle_set(d, call, false);
        else if (proto_str_eq(m, "SetFQDNProxy"))
                handle_set(d, call, true);
        else if (proto_str_eq(m, "DeleteNamedProxy"))
                handle_delete(d, call);
        else if (proto_str_eq(m, "Metrics"))
                handle_metrics(d, call);
        else if (proto_str_eq(m, "ListProxies"))
                handle_list(d, call);
        else if (proto_str_eq(m, "GetProxy"))
                handle_get(d, call);
        else if (proto_str_eq(m, "Info"))
                handle_info(d, call);
        else if (proto_str_eq(m, "ListCertificates"))
                handle_list_certs(d, call);
        else if (proto_str_eq(m, "Reload"))
                handle_reload(d, call);
        else
                /* zbus's text; in Output.Error so Go callers do not crash. */
                proto_bus_call_reply(call, NULL, 0, "not a function");
}

/* ======================================================================
 * Restore, counters, DNS
 * ====================================================================== */

static void note_corrupt(struct gw_daemon *d, const struct gw_state_loaded *l)
{
        char **ids;
        char *id;

        if (!l->aside)
                return; /* not set aside: it is loaded again at the next start */
        d->n_corrupt++;
        if (!l->id || d->n_corrupt_ids >= GW_CORRUPT_IDS_MAX)
                return;
        id = strdup(l->id);
        ids = id ? reallocarray(d->corrupt_ids, d->n_corrupt_ids + 1, sizeof(char *)) : NULL;
        if (!ids) {
                free(id);
                return;
        }
        d->corrupt_ids = ids;
        d->corrupt_ids[d->n_corrupt_ids++] = id;
}

static void on_restored(const struct gw_state_loaded *l, void *userdata)
{
        struct gw_daemon *d = userdata;
        struct wl_proxy *p = l->p;
        char id[128];
        int r;

        if (!p) {
                note_corrupt(d, l);
                if (l->earlier)
                        return;
                /* The bus confirmed this workload once: say which one, so the
                 * farmer can ask for it to be deployed again. */
                cescape(strempty(l->id), strlen(strempty(l->id)), id, sizeof(id));
                log_wl(LOG_WARNING, id, NULL,
                       "Skipping the corrupt state of workload \"%s\" (it must be deployed "
                       "again): %s",
                       id, l->error);
                return;
        }
        /* wl_registry_restore() derives the network ID itself. */
        r = wl_registry_restore(d->reg, p);
        if (r < 0) {
                log_wl(LOG_WARNING, p->id, p->fqdn, "Skipping workload %s from state: %s", p->id,
                       r == -EEXIST ? "its domain or ID is already restored" : strerror(-r));
                wl_proxy_free(p);
                return;
        }
        log_wl(LOG_DEBUG, p->id, p->fqdn, "Restored workload %s (%s)", p->id, p->fqdn);
}

int gw_manager_restore(struct gw_daemon *d)
{
        int r;

        r = gw_state_load(d->state, on_restored, d);
        if (r < 0)
                return log_error_errno(r, "Failed to read state directory %s: %m", d->root);
        log_info("Restored %zu workload(s) from %s", wl_registry_size(d->reg), d->root);
        if (d->n_corrupt > 0)
                log_warning("%zu corrupt workload state file(s) set aside in %s/workloads "
                            "(*.corrupt-*): those workloads are not served until deployed again",
                            d->n_corrupt, d->root);
        return 0;
}

static int get_counter(const char *id, struct gw_counters *ret, void *userdata)
{
        gw_proxy_counters(userdata, id, ret);
        return 0;
}

int gw_manager_save_counters(struct gw_daemon *d)
{
        _cleanup_(proxy_routes_unrefp) struct proxy_routes *routes = gw_proxy_snapshot(d);

        /* Without routes (start-up failed) the file on disk is all there is. */
        if (!routes || !d->state)
                return 0;
        return gw_state_save_counters(d->state, d->reg, get_counter, routes);
}

int gw_manager_apply_dns(struct gw_daemon *d)
{
        struct gw_dns *dns = NULL;
        int r;

        r = gw_dns_new(d->loop, d->cfg.resolver, d->cfg.resolver_timeout_ms, &dns);
        if (r < 0)
                return log_error_errno(r, "Failed to set up resolver %s: %m", d->cfg.resolver);
        /* Install the new resolver first: failing a call below replies, which
         * may start the next queued call, and that one must use the new one. */
        struct gw_dns *old = d->dns;
        struct gw_op *stale[64];
        size_t n_stale = 0;

        d->dns = dns;
        for (struct gw_op *op = d->ops; op; op = op->next)
                if (op->query && n_stale < ELEMENTSOF(stale)) {
                        gw_dns_query_cancel(op->query);
                        op->query = NULL;
                        stale[n_stale++] = op;
                }
        for (size_t i = 0; i < n_stale; i++)
                op_fail(stale[i], "failed to verify domain dns record: resolver reconfigured");
        gw_dns_free(old);
        return 0;
}
