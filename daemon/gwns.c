/* SPDX-License-Identifier: Apache-2.0 */
/* Keeps the gateway's network namespace matching the configuration: one
 * reconcile at a time on the netns worker thread, triggered at start, on
 * SIGHUP, on netlink events from inside the namespace (debounced) and by a
 * periodic check that also notices a namespace deleted from outside. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include "common/log.h"
#include "common/macros.h"
#include "daemon/daemon.h"
#include "daemon/dnsd.h"
#include "netns/netns.h"

_Static_assert(_GW_OVERLAY_MAX <= NETNS_OVERLAYS_MAX, "a netns_config has room for every overlay");

#define CHECK_INTERVAL_MS 3000
#define DEBOUNCE_MS       200

struct gw_ns {
        struct gw_daemon *d;
        struct netns_worker *w;
        uv_poll_t worker_poll;
        uv_timer_t check_timer;
        uv_timer_t debounce;
        uv_poll_t mon_poll;
        int mon_fd;
        bool mon_open;
        bool mon_pending; /* a monitor socket was requested */
        bool busy;        /* a reconcile or teardown is running */
        bool again;       /* another run was requested meanwhile */
        bool fetching;    /* public config requested from the networker */
        bool managed;     /* the namespace exists because of us (for teardown) */
        bool ready;
        bool stopping;
        bool settled;     /* the first outcome is known: the bus serves requests */
        bool mon_reopen;  /* open a new monitor once the old handle is closed */
        bool applying;    /* a new configuration is waiting for its reconcile */
        bool run_applies; /* the reconcile running is that one: its changes are not drift */
        unsigned open_handles;
        char *error;              /* why the namespace is not ready, NULL when it is */
        struct netns_config last; /* what the last teardown must remove */
        struct gw_ns_id id;       /* the namespace the last successful reconcile made ready */
        bool has_id;
        gw_ns_check_cb *check_cb; /* a SIGHUP's check is running */
};

static void ns_run(struct gw_ns *ns);

static bool ns_wanted(const struct gw_daemon *d)
{
        return d->cfg.enabled && d->cfg.ns_public_link;
}

int gw_ns_id_of(const char *path, struct gw_ns_id *ret)
{
        struct stat st;

        if (stat(path, &st) < 0)
                return -errno;
        *ret = (struct gw_ns_id){.dev = st.st_dev, .ino = st.st_ino};
        return 0;
}

/* Tell health.c: ready only while the namespace at the path is still the
 * one the last reconcile made ready (a deletion from outside is seen at
 * the next report, not only at the next periodic check). */
static void ns_report(struct gw_ns *ns)
{
        struct gw_daemon *d = ns->d;
        const char *error = ns->error;
        struct gw_ns_id cur;
        char path[600] = "";
        bool ok = ns->ready;

        (void)gw_ns_path(d, NULL, path, sizeof(path));
        if (ok && ns->has_id && (gw_ns_id_of(path, &cur) < 0 || !gw_ns_id_eq(&cur, &ns->id))) {
                ok = false;
                error = "deleted or replaced from outside gatewayd; being repaired";
        }
        gw_health_set(d, GW_CHECK_NAMESPACE, ns_wanted(d), ok, path,
                      error ? error : "being set up");
        /* Every overlay is built by the same reconcile, which succeeds as a
         * whole or not: each configured one is up exactly while the
         * namespace is ready, and down for the namespace's reason. */
        for (unsigned i = 0; i < _GW_OVERLAY_MAX; i++) {
                const struct gw_overlay_config *oc = &d->cfg.overlays[i];
                char addr[INET6_ADDRSTRLEN + 8] = "";

                if (oc->link && inet_ntop(AF_INET6, &oc->address, addr, sizeof(addr)))
                        snprintf(addr + strlen(addr), sizeof(addr) - strlen(addr), "/%u",
                                 oc->prefix);
                gw_health_set_overlay(d, i, ns_wanted(d) && oc->link, ok, addr,
                                      error ? error : "being set up");
        }
}

void gw_ns_health_refresh(struct gw_daemon *d)
{
        if (d->ns)
                ns_report(d->ns);
}

/* The first outcome (ready, failed, or not managed) lets the bus take
 * requests: until then Set* calls would fail with "being set up". */
static void settle(struct gw_ns *ns)
{
        if (ns->settled)
                return;
        ns->settled = true;
        proto_bus_resume(ns->d->bus);
}

static void set_error(struct gw_ns *ns, const char *error)
{
        if (error)
                settle(ns);
        if (!streq_ptr(ns->error, error)) {
                free(ns->error);
                ns->error = error ? strdup(error) : NULL;
                if (error)
                        log_error("Gateway namespace %s is not ready: %s", ns->d->cfg.ns_name,
                                  error);
        }
        ns_report(ns);
}

/* The netns configuration of @cfg (the running one, or a SIGHUP's). */
static int build_config(const struct gw_daemon *d, const struct gw_config *cfg,
                        struct netns_config *c, char **reterr)
{
        const struct wl_public_config *pc =
                cfg->public_config == GW_PUBLIC_CONFIG_BUS ? &d->pc_cache : &cfg->pc;
        int r;

        *c = (struct netns_config){};
        snprintf(c->name, sizeof(c->name), "%s", cfg->ns_name);
        snprintf(c->run_dir, sizeof(c->run_dir), "%s", cfg->netns_dir);
        r = netns_link_spec_parse(cfg->ns_public_link, "public", &c->public_link, reterr);
        if (r < 0)
                return r;
        if (pc->has_ipv4) {
                c->public_v4.family = AF_INET;
                c->public_v4.v4 = pc->ipv4;
                c->public_v4.prefixlen = pc->ipv4_prefix;
                c->gw4 = pc->gw4;
        }
        if (pc->has_ipv6) {
                c->public_v6.family = AF_INET6;
                c->public_v6.v6 = pc->ipv6;
                c->public_v6.prefixlen = pc->ipv6_prefix;
                c->gw6 = pc->gw6;
        }
        /* An overlay whose keys are absent is not there (config.c checked
         * that a configured one has all three). */
        for (unsigned i = 0; i < _GW_OVERLAY_MAX; i++) {
                const struct gw_overlay_config *oc = &cfg->overlays[i];
                struct netns_overlay *o;

                if (!oc->link) {
                        /* Not there: a link left by an earlier configuration
                         * (or run) goes, with its routes. */
                        snprintf(c->absent[c->n_absent++], IFNAMSIZ, "%s", gw_overlays[i].name);
                        continue;
                }
                o = &c->overlays[c->n_overlays++];
                r = netns_link_spec_parse(oc->link, gw_overlays[i].name, &o->link, reterr);
                if (r < 0)
                        return r;
                o->address = (struct netns_prefix){
                        .family = AF_INET6, .v6 = oc->address, .prefixlen = oc->prefix};
                o->router = oc->router;
                o->prefix = (struct netns_prefix){.family = AF_INET6,
                                                  .v6 = gw_overlays[i].prefix,
                                                  .prefixlen = gw_overlays[i].prefixlen};
        }
        return 0;
}

/* Must @last (built) be torn down before @c is built: another name,
 * directory or public link, or an overlay moved to another link (as a
 * change of ygg_link always did)? An overlay added or removed is built or
 * removed in place by reconcile (netns_config.absent), like a repair:
 * nothing that works is touched. */
static bool needs_rebuild(const struct netns_config *last, const struct netns_config *c)
{
        if (!streq(last->name, c->name) || !streq(last->run_dir, c->run_dir) ||
            memcmp(&last->public_link, &c->public_link, sizeof(c->public_link)) != 0)
                return true;
        for (unsigned i = 0; i < last->n_overlays; i++)
                for (unsigned j = 0; j < c->n_overlays; j++)
                        if (streq(last->overlays[i].link.name, c->overlays[j].link.name) &&
                            memcmp(&last->overlays[i].link, &c->overlays[j].link,
                                   sizeof(c->overlays[j].link)) != 0)
                                return true;
        return false;
}

/* Do @a and @b ask for the same links (public and every overlay's)? */
static bool same_links(const struct gw_config *a, const struct gw_config *b)
{
        if (!streq_ptr(a->ns_public_link, b->ns_public_link))
                return false;
        for (unsigned i = 0; i < _GW_OVERLAY_MAX; i++)
                if (!streq_ptr(a->overlays[i].link, b->overlays[i].link))
                        return false;
        return true;
}

/* ---- the monitor socket ---- */

static void mon_open(struct gw_ns *ns);

static void on_handle_closed(uv_handle_t *h)
{
        struct gw_ns *ns = h->data;

        ns->open_handles--;
        if (h == (uv_handle_t *)&ns->mon_poll) {
                safe_close(ns->mon_fd);
                ns->mon_fd = -1;
                ns->mon_open = false;
                if (ns->mon_reopen && !ns->stopping) {
                        ns->mon_reopen = false;
                        mon_open(ns);
                }
        }
        if (ns->stopping && ns->open_handles == 0) {
                free(ns->error);
                free(ns);
        }
}

static void mon_close(struct gw_ns *ns)
{
        if (!ns->mon_open || uv_is_closing((uv_handle_t *)&ns->mon_poll))
                return;
        uv_poll_stop(&ns->mon_poll);
        uv_close((uv_handle_t *)&ns->mon_poll, on_handle_closed);
}

static void on_debounce(uv_timer_t *t)
{
        ns_run(t->data);
}

static void on_mon_readable(uv_poll_t *p, int status, int events)
{
        struct gw_ns *ns = p->data;
        char buf[8192];

        /* Drain: any change inside the namespace means "check again". */
        while (recv(ns->mon_fd, buf, sizeof(buf), MSG_DONTWAIT) > 0)
                ;
        if (status < 0) {
                mon_close(ns);
                return;
        }
        uv_timer_start(&ns->debounce, on_debounce, DEBOUNCE_MS, 0);
}

static void on_monitor(int r, int fd, const char *error, void *userdata)
{
        struct gw_ns *ns = userdata;

        ns->mon_pending = false;
        if (r >= 0 && !ns_wanted(ns->d)) {
                /* Disabled meanwhile: do not pin a torn-down namespace. */
                safe_close(fd);
                return;
        }
        if (r < 0) {
                log_debug("No netlink monitor in the gateway namespace: %s", strempty(error));
                return;
        }
        if (ns->stopping || ns->mon_open) {
                safe_close(fd);
                return;
        }
        if (uv_poll_init(ns->d->loop, &ns->mon_poll, fd) < 0) {
                safe_close(fd);
                return;
        }
        ns->mon_poll.data = ns;
        ns->mon_fd = fd;
        ns->mon_open = true;
        ns->open_handles++;
        uv_poll_start(&ns->mon_poll, UV_READABLE, on_mon_readable);
}

static void mon_open(struct gw_ns *ns)
{
        char path[600];

        if (ns->mon_pending)
                return;
        if (ns->mon_open) {
                if (uv_is_closing((uv_handle_t *)&ns->mon_poll))
                        ns->mon_reopen = true;
                return;
        }
        if (gw_ns_path(ns->d, NULL, path, sizeof(path)) >= 0 &&
            netns_worker_monitor(ns->w, path, on_monitor, ns) >= 0)
                ns->mon_pending = true;
}

int gw_ns_path(const struct gw_daemon *d, const char *net_id, char *buf, size_t size)
{
        int n = net_id ? snprintf(buf, size, "%s/n-%s", d->cfg.netns_dir, net_id)
                       : snprintf(buf, size, "%s/%s", d->cfg.netns_dir, d->cfg.ns_name);

        return n >= 0 && (size_t)n < size ? 0 : -ENAMETOOLONG;
}

/* ---- reconcile / teardown ---- */

static void log_report(struct gw_ns *ns, const char *report, bool first)
{
        _cleanup_free_ char *copy = strdup(report);
        char *save = NULL;

        if (!copy)
                return;
        for (char *line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
                if (first)
                        log_info("Gateway namespace %s: %s", ns->d->cfg.ns_name, line);
                else
                        /* Someone on the node can make it drift over and
                         * over (a flapping link): the same repair is
                         * counted, not logged each time. */
                        log_ratelimit_warning("Gateway namespace %s drifted, repaired: %s",
                                              ns->d->cfg.ns_name, line);
        }
}

static void job_done(struct gw_ns *ns)
{
        ns->busy = false;
        if (ns->again && !ns->stopping) {
                ns->again = false;
                ns_run(ns);
        }
}

static void on_reconciled(int r, const char *report, const char *error, void *userdata)
{
        struct gw_ns *ns = userdata;
        bool first = !ns->ready, applied = ns->run_applies;
        struct gw_ns_id id = {};
        char path[600];

        if (r == -ECANCELED || ns->stopping)
                return;
        if (r < 0) {
                ns->ready = false;
                set_error(ns, error ? error : strerror(-r));
        } else {
                if (report && *report)
                        log_report(ns, report, (first && !ns->managed) || applied);
                if (!ns->ready)
                        log_info("Gateway namespace %s is ready", ns->d->cfg.ns_name);
                /* Which namespace is ready, not what this run's report
                 * says: an earlier run that failed may have made it. */
                if (gw_ns_path(ns->d, NULL, path, sizeof(path)) >= 0)
                        (void)gw_ns_id_of(path, &id);
                if (ns->has_id && !gw_ns_id_eq(&id, &ns->id)) {
                        log_notice("Gateway namespace %s was made anew: watching it and moving "
                                   "the listeners into it",
                                   ns->d->cfg.ns_name);
                        mon_close(ns); /* mon_open() below opens one in the new namespace */
                }
                ns->id = id;
                ns->has_id = true;
                ns->ready = true;
                ns->managed = true;
                set_error(ns, NULL);
                settle(ns);
                mon_open(ns);
                gw_proxy_ns_ready(ns->d);
                gw_dnsd_ns_ready(ns->d);
        }
        job_done(ns);
}

static void on_teardown(int r, const char *report, const char *error, void *userdata)
{
        struct gw_ns *ns = userdata;

        if (r == -ECANCELED || ns->stopping)
                return;
        if (r < 0)
                log_error("Failed to remove gateway namespace %s: %s", ns->last.name,
                          error ? error : strerror(-r));
        else
                log_info("Gateway namespace %s removed", ns->last.name);
        ns->managed = false;
        ns->has_id = false;
        ns_report(ns);
        job_done(ns);
}

static void on_ns_pubconf(int r, const char *error, const struct wl_public_config *pc,
                          void *userdata)
{
        struct gw_ns *ns = userdata;
        _cleanup_free_ char *msg = NULL;

        if (r == -ECANCELED)
                return;
        ns->fetching = false;
        if (r < 0) {
                if (asprintf(&msg, "no public configuration: %s", error) < 0)
                        msg = NULL;
                set_error(ns, msg ? msg : "no public configuration");
                job_done(ns);
                return;
        }
        /* pubconf.c stored it in pc_cache. */
        ns->busy = false;
        ns_run(ns);
}

static void ns_run(struct gw_ns *ns)
{
        struct gw_daemon *d = ns->d;
        _cleanup_free_ char *err = NULL;
        struct netns_config c;
        int r;

        if (ns->stopping)
                return;
        if (ns->busy) {
                ns->again = true;
                return;
        }
        if (!ns_wanted(d)) {
                ns->ready = false;
                set_error(ns, NULL); /* and reported: not wanted */
                settle(ns);
                if (!ns->managed)
                        return;
                mon_close(ns);
                ns->busy = true;
                if (netns_worker_teardown(ns->w, &ns->last, on_teardown, ns) < 0) {
                        ns->busy = false;
                        log_error("Failed to start tearing down the gateway namespace");
                }
                return;
        }
        if (d->cfg.public_config == GW_PUBLIC_CONFIG_BUS && !d->pc_cache.has_ipv4 &&
            !d->pc_cache.has_ipv6) {
                ns->busy = true;
                ns->fetching = true;
                r = gw_pubconf_get(d, on_ns_pubconf, ns, NULL);
                if (r < 0) {
                        ns->busy = ns->fetching = false;
                        set_error(ns, "no public configuration: the bus is not available");
                }
                return;
        }
        r = build_config(d, &d->cfg, &c, &err);
        if (r < 0) {
                set_error(ns, err ? err : strerror(-r));
                return;
        }
        /* A renamed namespace or changed links: remove the old one first.
         * A SIGHUP checked that the new one can be built (gw_ns_check()),
         * an added overlay's link included. */
        if (ns->managed && needs_rebuild(&ns->last, &c)) {
                ns->ready = false; /* being rebuilt: not an error */
                set_error(ns, NULL);
                mon_close(ns);
                ns->busy = true;
                ns->again = true;
                if (netns_worker_teardown(ns->w, &ns->last, on_teardown, ns) < 0)
                        ns->busy = ns->again = false;
                return;
        }
        ns->last = c;
        ns->busy = true;
        ns->run_applies = ns->applying;
        ns->applying = false;
        if (netns_worker_reconcile(ns->w, &c, on_reconciled, ns) < 0) {
                ns->busy = false;
                set_error(ns, "out of memory");
        }
}

static void on_worker_event(uv_poll_t *p, int status, int events)
{
        struct gw_ns *ns = p->data;

        netns_worker_dispatch(ns->w);
}

static void on_check(uv_timer_t *t)
{
        struct gw_ns *ns = t->data;

        if (ns_wanted(ns->d) || ns->managed)
                ns_run(ns);
}

int gw_ns_start(struct gw_daemon *d)
{
        struct gw_ns *ns;
        int r;

        ns = calloc(1, sizeof(*ns));
        if (!ns)
                return -ENOMEM;
        ns->d = d;
        ns->mon_fd = -1;
        r = netns_worker_new(&ns->w);
        if (r < 0) {
                free(ns);
                return log_error_errno(r, "Failed to start the namespace worker: %m");
        }
        uv_poll_init(d->loop, &ns->worker_poll, netns_worker_fd(ns->w));
        uv_timer_init(d->loop, &ns->check_timer);
        uv_timer_init(d->loop, &ns->debounce);
        ns->worker_poll.data = ns->check_timer.data = ns->debounce.data = ns;
        ns->open_handles = 3;
        uv_poll_start(&ns->worker_poll, UV_READABLE, on_worker_event);
        uv_timer_start(&ns->check_timer, on_check, CHECK_INTERVAL_MS, CHECK_INTERVAL_MS);
        d->ns = ns;
        if (d->cfg.enabled && !d->cfg.ns_public_link)
                log_notice("No [namespace] links configured: the gateway namespace is not managed");
        /* Disabled at start but our namespace is still there (an earlier run):
         * tear it down, moved links included. */
        if (!ns_wanted(d) && d->cfg.ns_public_link &&
            netns_exists(d->cfg.netns_dir, d->cfg.ns_name)) {
                _cleanup_free_ char *err = NULL;

                if (build_config(d, &d->cfg, &ns->last, &err) >= 0) {
                        log_notice(
                                "Gateway namespace %s exists but the capability is off: removing it",
                                d->cfg.ns_name);
                        ns->managed = true;
                }
        }
        ns_run(ns);
        ns_report(ns);
        return 0;
}

void gw_ns_apply(struct gw_daemon *d)
{
        if (!d->ns)
                return;
        /* What the new file changes (an overlay added, an address) is said
         * as done, not as a repair of drift. */
        d->ns->applying = true;
        ns_run(d->ns);
        ns_report(d->ns);
}

static void on_checked(int r, const char *report, const char *error, void *userdata)
{
        struct gw_ns *ns = userdata;
        gw_ns_check_cb *cb = TAKE_PTR(ns->check_cb);

        if (r == -ECANCELED || ns->stopping || !cb)
                return;
        cb(ns->d, r, error);
}

int gw_ns_check(struct gw_daemon *d, const struct gw_config *nc, gw_ns_check_cb *cb, char **reterr)
{
        struct gw_ns *ns = d->ns;
        struct netns_config c;
        int r;

        if (!ns || !nc->enabled || !nc->ns_public_link)
                return 0; /* no namespace to build: a teardown at most */
        if (ns->check_cb)
                return -EBUSY;
        /* The same links, name and directory are repaired in place: nothing
         * is torn down, so nothing working is put at risk. */
        if (ns_wanted(d) && same_links(nc, &d->cfg) && streq_ptr(nc->ns_name, d->cfg.ns_name) &&
            streq_ptr(nc->netns_dir, d->cfg.netns_dir))
                return 0;
        r = build_config(d, nc, &c, reterr);
        if (r < 0)
                return r;
        r = netns_worker_check(ns->w, &c, ns->managed ? &ns->last : NULL, on_checked, ns);
        if (r < 0)
                return r;
        ns->check_cb = cb;
        return 1;
}

bool gw_ns_ready(struct gw_daemon *d, const char **ret_error)
{
        struct gw_ns *ns = d->ns;

        if (!d->cfg.ns_public_link || !ns)
                return true;
        if (ns->ready)
                return true;
        *ret_error = ns->error ? ns->error : "it is being set up";
        return false;
}

void gw_ns_stop(struct gw_daemon *d)
{
        struct gw_ns *ns = d->ns;

        if (!ns)
                return;
        d->ns = NULL;
        ns->stopping = true;
        /* The namespace itself stays: a restart finds it and reconciles. */
        ns->w = netns_worker_free(ns->w);
        mon_close(ns);
        uv_close((uv_handle_t *)&ns->worker_poll, on_handle_closed);
        uv_close((uv_handle_t *)&ns->check_timer, on_handle_closed);
        uv_close((uv_handle_t *)&ns->debounce, on_handle_closed);
}

struct netns_worker *gw_ns_worker(struct gw_daemon *d)
{
        return d->ns ? d->ns->w : NULL;
}
