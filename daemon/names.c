/* SPDX-License-Identifier: Apache-2.0 */
/* Name-contract validation through the api-gateway bus module, and the
 * periodic revalidation that asks provisiond to decommission workloads
 * whose name contract went away (protocol-zbus-gateway.md §4.8). The
 * revalidation runs on its own timer with asynchronous bus calls, never on
 * a bus worker, so provisiond's DeleteNamedProxy call-back cannot deadlock. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/hashmap.h"
#include "common/log.h"
#include "common/macros.h"
#include "daemon/daemon.h"

#define API_MODULE  "api-gateway"
#define API_OBJECT  "api-gateway"
#define API_VERSION "0.0.1"

struct gw_name_check {
        struct gw_daemon *d;
        char *name;
        uint32_t twin;
        uint64_t contract_id;
        gw_name_check_cb *cb;
        void *userdata;
        struct proto_bus_pending *pending;
        bool cancelled;
};

static void check_done(struct gw_name_check *c, enum gw_name_verdict v, const char *reason)
{
        if (!c->cancelled)
                c->cb(v, reason, c->userdata);
        free(c->name);
        free(c);
}

_printf_(2, 3) static void check_errorf(struct gw_name_check *c, const char *fmt, ...)
{
        _cleanup_free_ char *msg = NULL;
        va_list ap;

        va_start(ap, fmt);
        if (vasprintf(&msg, fmt, ap) < 0)
                msg = NULL;
        va_end(ap);
        check_done(c, GW_NAME_ERROR, msg ? msg : "out of memory");
}

/* Common reply handling: transport errors and Output.Error. Returns true
 * when the check was finished here. */
static bool reply_failed(struct gw_name_check *c, int r, const struct proto_response *resp,
                         const char *method)
{
        c->pending = NULL;
        if (r < 0) {
                check_errorf(c, "%s.%s@%s %s failed: %s", API_MODULE, API_OBJECT, API_VERSION,
                             method, r == -ETIMEDOUT ? "no reply (timeout)" : strerror(-r));
                return true;
        }
        if (resp->has_protocol_error || (resp->has_error && resp->error.n > 0)) {
                const struct proto_str *e =
                        resp->has_protocol_error ? &resp->protocol_error : &resp->error;

                check_errorf(c, "%.*s", (int)e->n, e->s);
                return true;
        }
        if (!resp->has_data) {
                check_done(c, GW_NAME_ERROR, "invalid reply from api-gateway: no data");
                return true;
        }
        return false;
}

static void on_contract(int r, const struct proto_response *resp, void *userdata)
{
        struct gw_name_check *c = userdata;
        struct proto_substrate_error e = {};
        struct proto_contract ct = {};

        if (reply_failed(c, r, resp, "GetContract"))
                return;
        if (proto_contract_result_decode(resp->data.s, resp->data.n, &ct, &e) < 0) {
                check_done(c, GW_NAME_ERROR, "invalid reply from api-gateway GetContract");
                return;
        }
        if (e.code == 1) {
                check_errorf(c,
                             "contract by name returned %llu, but retrieving it results in "
                             "'not found' error",
                             (unsigned long long)c->contract_id);
        } else if (e.code != 0 && e.has_err) {
                check_errorf(c, "%.*s", (int)e.err.n, e.err.s);
        } else if (!ct.is_created && !ct.is_grace_period) {
                check_done(c, GW_NAME_INVALID,
                           "the name contract must be in Created or GracePeriod state");
        } else if (ct.twin_id != c->twin) {
                check_done(c, GW_NAME_INVALID, "twin id mismatch");
        } else {
                check_done(c, GW_NAME_OK, NULL);
        }
        proto_substrate_error_done(&e);
}

static void on_contract_id(int r, const struct proto_response *resp, void *userdata)
{
        _cleanup_strbuf_ struct strbuf arg = STRBUF_INIT;
        struct gw_name_check *c = userdata;
        struct proto_substrate_error e = {};
        struct proto_str in;
        uint64_t id = 0;
        int k;

        if (reply_failed(c, r, resp, "GetContractIDByNameRegistration"))
                return;
        if (proto_contract_id_result_decode(resp->data.s, resp->data.n, &id, &e) < 0) {
                check_done(c, GW_NAME_ERROR,
                           "invalid reply from api-gateway GetContractIDByNameRegistration");
                return;
        }
        if (e.code == 1) {
                proto_substrate_error_done(&e);
                check_done(c, GW_NAME_INVALID,
                           "a name contract with the given name must be reserved first");
                return;
        }
        if (e.code != 0 && e.has_err) {
                check_errorf(c, "%.*s", (int)e.err.n, e.err.s);
                proto_substrate_error_done(&e);
                return;
        }
        proto_substrate_error_done(&e);
        if (c->cancelled) {
                check_done(c, GW_NAME_ERROR, "cancelled");
                return;
        }
        c->contract_id = id;
        k = proto_encode_uint64(&arg, id);
        in = (struct proto_str){arg.data, arg.len};
        if (k >= 0)
                k = proto_bus_request(c->d->bus, API_MODULE, API_OBJECT, API_VERSION, "GetContract",
                                      &in, 1, c->d->cfg.call_timeout_ms, on_contract, c,
                                      &c->pending);
        if (k < 0)
                check_errorf(c, "api-gateway GetContract failed: %s", strerror(-k));
}

int gw_name_check_start(struct gw_daemon *d, const char *name, uint32_t twin, gw_name_check_cb *cb,
                        void *userdata, struct gw_name_check **ret)
{
        _cleanup_strbuf_ struct strbuf arg = STRBUF_INIT;
        struct gw_name_check *c;
        struct proto_str in;
        int r;

        c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        c->d = d;
        c->twin = twin;
        c->cb = cb;
        c->userdata = userdata;
        c->name = strdup(name);
        r = c->name ? proto_encode_str(&arg, name) : -ENOMEM;
        in = (struct proto_str){arg.data, arg.len};
        if (r >= 0)
                r = proto_bus_request(d->bus, API_MODULE, API_OBJECT, API_VERSION,
                                      "GetContractIDByNameRegistration", &in, 1,
                                      d->cfg.call_timeout_ms, on_contract_id, c, &c->pending);
        if (r < 0) {
                free(c->name);
                free(c);
                return r;
        }
        if (ret)
                *ret = c;
        return 0;
}

void gw_name_check_cancel(struct gw_name_check *c)
{
        if (!c)
                return;
        c->cancelled = true;
        /* The pending call's callback then finishes and frees @c. */
        if (c->pending)
                proto_bus_request_cancel(c->pending);
}

/* ======================================================================
 * Revalidation
 * ====================================================================== */

struct gw_revalidator {
        struct gw_daemon *d;
        uv_timer_t timer;
        bool running;
        char **ids; /* snapshot of name workloads for this run */
        size_t n_ids, next;
        struct wl_public_config pc;
        struct gw_name_check *check;
        struct proto_bus_pending *pending;
        char *current; /* workload being checked */
        bool stopping;
};

static void reval_next(struct gw_revalidator *rv);

static void reval_end(struct gw_revalidator *rv)
{
        for (size_t i = 0; i < rv->n_ids; i++)
                free(rv->ids[i]);
        rv->ids = mfree(rv->ids);
        rv->n_ids = rv->next = 0;
        wl_public_config_done(&rv->pc);
        rv->current = mfree(rv->current);
        rv->running = false;
}

static void on_decommissioned(int r, const struct proto_response *resp, void *userdata)
{
        struct gw_revalidator *rv = userdata;

        /* Cancelled only when stopping: @rv may be gone already. */
        if (r == -ECANCELED)
                return;
        rv->pending = NULL;
        if (r < 0)
                log_warning_errno(r, "Failed to ask provision to decommission workload %s: %m",
                                  rv->current);
        else if (resp->has_error && resp->error.n > 0)
                log_warning("provision refused to decommission workload %s: %.*s", rv->current,
                            (int)resp->error.n, resp->error.s);
        reval_next(rv);
}

static void on_reval_check(enum gw_name_verdict v, const char *reason, void *userdata)
{
        _cleanup_strbuf_ struct strbuf a0 = STRBUF_INIT, a1 = STRBUF_INIT;
        struct gw_revalidator *rv = userdata;
        struct proto_str in[2];
        int r;

        rv->check = NULL;
        if (rv->stopping)
                return;
        if (v == GW_NAME_OK) {
                reval_next(rv);
                return;
        }
        if (v == GW_NAME_ERROR) {
                log_wl(LOG_WARNING, rv->current, NULL,
                       "Name contract revalidation of %s failed (kept): %s", rv->current, reason);
                reval_next(rv);
                return;
        }
        log_wl(LOG_NOTICE, rv->current, NULL,
               "Name contract of workload %s is no longer valid (%s); asking provision to decommission it",
               rv->current, reason);
        r = proto_encode_str(&a0, rv->current);
        if (r >= 0)
                r = proto_encode_str(&a1, reason);
        in[0] = (struct proto_str){a0.data, a0.len};
        in[1] = (struct proto_str){a1.data, a1.len};
        if (r >= 0)
                r = proto_bus_request(rv->d->bus, "provision", "provision", "0.0.1",
                                      "DecommissionCached", in, 2, rv->d->cfg.call_timeout_ms,
                                      on_decommissioned, rv, &rv->pending);
        if (r < 0) {
                log_warning_errno(r, "Failed to call provision DecommissionCached: %m");
                reval_next(rv);
        }
}

static void reval_next(struct gw_revalidator *rv)
{
        struct gw_daemon *d = rv->d;

        while (!rv->stopping && rv->next < rv->n_ids) {
                const char *id = rv->ids[rv->next++];
                const struct wl_proxy *p = wl_registry_get(d->reg, id);
                const char *domain = rv->pc.domain;
                size_t fl, dl;
                struct wl_id wid;
                _cleanup_free_ char *err = NULL, *name = NULL;
                int r;

                if (!p || p->kind != WL_KIND_NAME || !p->fqdn)
                        continue;
                if (wl_id_parse(p->id, &wid, &err) < 0)
                        continue;
                fl = strlen(p->fqdn);
                dl = strlen(domain);
                /* Skip domains not under the current domain (as zos does). */
                if (fl <= dl + 1 || strcasecmp(p->fqdn + fl - dl, domain) != 0 ||
                    p->fqdn[fl - dl - 1] != '.')
                        continue;
                name = strndup(p->fqdn, fl - dl - 1);
                if (!name)
                        break;
                free(rv->current);
                rv->current = strdup(p->id);
                if (!rv->current)
                        break; /* out of memory: end this run, the next one retries */
                r = gw_name_check_start(d, name, wid.twin, on_reval_check, rv, &rv->check);
                if (r < 0) {
                        log_warning_errno(r, "Failed to start name revalidation: %m");
                        continue;
                }
                return;
        }
        if (!rv->stopping)
                log_debug("Name contract revalidation finished (%zu workloads)", rv->n_ids);
        reval_end(rv);
}

struct snapshot_ctx {
        struct gw_revalidator *rv;
        size_t cap;
};

static int collect_name(const struct wl_proxy *p, void *userdata)
{
        struct snapshot_ctx *ctx = userdata;
        struct gw_revalidator *rv = ctx->rv;

        if (p->kind != WL_KIND_NAME)
                return 0;
        if (rv->n_ids == ctx->cap) {
                size_t cap = ctx->cap ? ctx->cap * 2 : 64;
                char **n = realloc(rv->ids, cap * sizeof(char *));
                if (!n)
                        return -ENOMEM;
                rv->ids = n;
                ctx->cap = cap;
        }
        rv->ids[rv->n_ids] = strdup(p->id);
        if (!rv->ids[rv->n_ids])
                return -ENOMEM;
        rv->n_ids++;
        return 0;
}

static void on_reval_pubconf(int r, const char *error, const struct wl_public_config *pc,
                             void *userdata)
{
        struct gw_revalidator *rv = userdata;
        struct snapshot_ctx ctx = {rv, 0};

        if (r == -ECANCELED)
                return; /* stopping: @rv may be gone already */
        rv->pending = NULL;
        if (rv->stopping)
                return;
        /* zos: a public-config error or an empty domain means nothing to do. */
        if (r < 0 || !pc->domain || !*pc->domain) {
                reval_end(rv);
                return;
        }
        if (wl_public_config_copy(pc, &rv->pc) < 0 ||
            wl_registry_foreach(rv->d->reg, collect_name, &ctx) < 0) {
                log_warning("Name contract revalidation skipped: out of memory");
                reval_end(rv);
                return;
        }
        reval_next(rv);
}

static void on_reval_timer(uv_timer_t *t)
{
        struct gw_revalidator *rv = t->data;
        struct gw_daemon *d = rv->d;
        int r;

        if (rv->running || d->stopping)
                return;
        if (d->cfg.name_validation != GW_NAME_VALIDATION_BUS || !d->cfg.enabled)
                return;
        rv->running = true;
        log_debug("Name contract revalidation started");
        r = gw_pubconf_get(d, on_reval_pubconf, rv, &rv->pending);
        if (r < 0) {
                log_warning_errno(r, "Name contract revalidation skipped: %m");
                rv->running = false;
        }
}

static void on_reval_closed(uv_handle_t *h)
{
        free(h->data);
}

int gw_revalidator_start(struct gw_daemon *d)
{
        struct gw_revalidator *rv = calloc(1, sizeof(*rv));

        if (!rv)
                return -ENOMEM;
        rv->d = d;
        uv_timer_init(d->loop, &rv->timer);
        rv->timer.data = rv;
        d->reval = rv;
        gw_revalidator_reconfigure(d);
        return 0;
}

void gw_revalidator_reconfigure(struct gw_daemon *d)
{
        struct gw_revalidator *rv = d->reval;
        uint64_t ms;

        if (!rv)
                return;
        /* zos: first run one interval after start, then every interval. */
        ms = (uint64_t)d->cfg.revalidate_interval_sec * 1000;
        if (ms == 0)
                ms = 3600 * 1000;
        uv_timer_start(&rv->timer, on_reval_timer, ms, ms);
}

void gw_revalidator_stop(struct gw_daemon *d)
{
        struct gw_revalidator *rv = d->reval;

        if (!rv)
                return;
        rv->stopping = true;
        if (rv->check)
                gw_name_check_cancel(rv->check);
        if (rv->pending)
                proto_bus_request_cancel(rv->pending);
        reval_end(rv);
        uv_timer_stop(&rv->timer);
        uv_close((uv_handle_t *)&rv->timer, on_reval_closed);
        d->reval = NULL;
}
