/* SPDX-License-Identifier: Apache-2.0 */
#include "daemon/dnsd.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "acme/dns-server.h"
#include "acme/dns.h"
#include "common/list.h"
#include "common/log.h"
#include "common/macros.h"
#include "common/siphash.h"
#include "common/strbuf.h"
#include "daemon/daemon.h"
#include "netns/netns.h"

#define RETRY_MIN_MS 1000
#define RETRY_MAX_MS 30000
#define TXT_MAX      32 /* DNS-01 values pending at once (orders in flight x 2) */
#define ZONE_TTL     60 /* values change: keep resolvers' copies short */
#define TCP_BACKLOG  64

enum { S_UDP, S_TCP, _S_MAX };

/* What the responder listens on (or should). */
struct dnsd_spec {
        char netns[512]; /* "" = the daemon's own namespace */
        struct sockaddr_storage addr;
        socklen_t addr_len;
        uint16_t port;         /* 0: off */
        struct gw_ns_id ns_id; /* the namespace at @netns when asked for (managed only) */
};

/* One netns_worker_socket() request; outlives a newer batch (its callback
 * then sees a stale generation and closes its fd). */
struct dnsd_req {
        struct gw_dnsd *s;
        struct dnsd_req *prev, *next;
        uint64_t gen;
        unsigned idx;
};

struct txt {
        char *domain; /* lower-case */
        char *value;
};

struct gw_dnsd {
        struct gw_daemon *d;
        struct acme_dns_server *srv;

        struct dnsd_spec have; /* what srv serves (port 0: nothing) */
        struct dnsd_spec want; /* what the batch opens */
        bool opening;
        uint64_t gen;
        int fds[_S_MAX];
        unsigned pending;
        char *error;      /* first error of the batch */
        char *last_error; /* last logged (logged once per cause) */
        struct dnsd_req *reqs;
        uv_timer_t retry_timer;
        unsigned retry_ms;
        bool timer_init, stopped;
        char desc[800];

        struct txt txt[TXT_MAX];
        size_t n_txt;
        uint32_t serial;
};

static void dnsd_apply(struct gw_dnsd *s);

/* ======================================================================
 * Zones
 * ====================================================================== */

static bool domain_seen(const char *const *domains, size_t n, const char *d)
{
        for (size_t i = 0; i < n; i++)
                if (strcasecmp(domains[i], d) == 0)
                        return true;
        return false;
}

/* Hand the current zones to the server. */
static void zones_push(struct gw_dnsd *s)
{
        const char *domains[ACME_DNS_ZONES_MAX];
        char apex[ACME_DNS_ZONES_MAX][300], rname[ACME_DNS_ZONES_MAX][300];
        const char *ns[ACME_DNS_ZONES_MAX][1];
        const char *txt[ACME_DNS_ZONES_MAX][ACME_DNS_TXT_MAX];
        struct acme_dns_zone zones[ACME_DNS_ZONES_MAX] = {};
        const char *cfg_domain = gw_pubconf_domain(s->d);
        _cleanup_free_ char *err = NULL;
        size_t n = 0;
        int r;

        if (!s->srv)
                return;
        if (cfg_domain && *cfg_domain)
                domains[n++] = cfg_domain;
        for (size_t i = 0; i < s->n_txt && n < ACME_DNS_ZONES_MAX; i++)
                if (!domain_seen(domains, n, s->txt[i].domain))
                        domains[n++] = s->txt[i].domain;
        /* Serial: seconds, bumped past the last one when changes come faster. */
        s->serial = MAX(s->serial + 1, (uint32_t)time(NULL));
        for (size_t z = 0; z < n; z++) {
                size_t k = 0;

                snprintf(apex[z], sizeof(apex[z]), "_acme-challenge.%s", domains[z]);
                snprintf(rname[z], sizeof(rname[z]), "hostmaster.%s", domains[z]);
                for (char *p = apex[z]; *p; p++)
                        *p = (char)ascii_tolower((unsigned char)*p);
                for (char *p = rname[z]; *p; p++)
                        *p = (char)ascii_tolower((unsigned char)*p);
                /* zos documents the delegation to the gateway domain itself
                 * (docs/dns-delegation.md): the NS and SOA name it too. */
                ns[z][0] = domains[z];
                for (size_t i = 0; i < s->n_txt && k < ACME_DNS_TXT_MAX; i++)
                        if (strcasecmp(s->txt[i].domain, domains[z]) == 0)
                                txt[z][k++] = s->txt[i].value;
                zones[z] = (struct acme_dns_zone){
                        .apex = apex[z],
                        .ns = ns[z],
                        .n_ns = 1,
                        .soa = {.mname = domains[z],
                                .rname = rname[z],
                                .serial = s->serial,
                                .refresh = 3600,
                                .retry = 600,
                                .expire = 86400,
                                .minimum = ZONE_TTL},
                        .ttl = ZONE_TTL,
                        .txt = txt[z],
                        .n_txt = k,
                };
        }
        r = acme_dns_server_set_zones(s->srv, zones, n, &err);
        if (r < 0)
                log_warning("The _acme-challenge responder cannot serve these zones: %s",
                            err ? err : strerror(-r));
}

int gw_dnsd_txt_add(struct gw_daemon *d, const char *domain, const char *value)
{
        struct gw_dnsd *s = d->dnsd;
        struct txt t;

        if (!s)
                return -ENOTCONN;
        if (s->n_txt >= TXT_MAX)
                return -ENOSPC;
        if (strlen(domain) > 253 - strlen("_acme-challenge.") || strlen(value) > 255)
                return -EINVAL;
        t.domain = strdup(domain);
        t.value = strdup(value);
        if (!t.domain || !t.value) {
                free(t.domain);
                free(t.value);
                return -ENOMEM;
        }
        for (char *p = t.domain; *p; p++)
                *p = (char)ascii_tolower((unsigned char)*p);
        s->txt[s->n_txt++] = t;
        zones_push(s);
        return 0;
}

void gw_dnsd_txt_remove(struct gw_daemon *d, const char *domain, const char *value)
{
        struct gw_dnsd *s = d->dnsd;

        if (!s)
                return;
        for (size_t i = 0; i < s->n_txt; i++)
                if (strcasecmp(s->txt[i].domain, domain) == 0 && streq(s->txt[i].value, value)) {
                        free(s->txt[i].domain);
                        free(s->txt[i].value);
                        s->txt[i] = s->txt[--s->n_txt];
                        zones_push(s);
                        return;
                }
}

/* ======================================================================
 * Sockets
 * ====================================================================== */

static void describe(const struct dnsd_spec *sp, char *buf, size_t size)
{
        char addr[INET6_ADDRSTRLEN + 16];

        gw_sockaddr_to_string((const struct sockaddr *)&sp->addr, addr, sizeof(addr));
        if (sp->addr.ss_family == AF_INET6)
                snprintf(buf, size, "[%s]:%u%s%s", addr, sp->port, sp->netns[0] ? " in " : "",
                         sp->netns);
        else
                snprintf(buf, size, "%s:%u%s%s", addr, sp->port, sp->netns[0] ? " in " : "",
                         sp->netns);
}

static bool spec_equal(const struct dnsd_spec *a, const struct dnsd_spec *b)
{
        return streq(a->netns, b->netns) && a->addr_len == b->addr_len &&
               memcmp(&a->addr, &b->addr, a->addr_len) == 0 && a->port == b->port &&
               gw_ns_id_eq(&a->ns_id, &b->ns_id);
}

static void batch_cancel(struct gw_dnsd *s)
{
        s->gen++;
        s->opening = false;
        s->pending = 0;
        s->error = mfree(s->error);
        for (unsigned i = 0; i < _S_MAX; i++)
                s->fds[i] = safe_close(s->fds[i]);
}

static void on_retry(uv_timer_t *t)
{
        dnsd_apply(t->data);
}

static void retry_later(struct gw_dnsd *s)
{
        uv_timer_start(&s->retry_timer, on_retry, s->retry_ms, 0);
        s->retry_ms = MIN(s->retry_ms * 2, RETRY_MAX_MS);
}

static void batch_done(struct gw_dnsd *s)
{
        _cleanup_free_ char *err = TAKE_PTR(s->error);
        char what[sizeof(s->desc)];
        int r = err ? -EIO : 0;

        s->opening = false;
        describe(&s->want, what, sizeof(what));
        if (r >= 0) {
                r = acme_dns_server_set_sockets(s->srv, &s->fds[S_UDP], 1, &s->fds[S_TCP], 1);
                if (r >= 0)
                        s->fds[S_UDP] = s->fds[S_TCP] = -1; /* the server's now */
                else if (asprintf(&err, "%s", strerror(-r)) < 0)
                        err = NULL;
        }
        for (unsigned i = 0; i < _S_MAX; i++)
                s->fds[i] = safe_close(s->fds[i]);
        if (r < 0) {
                if (!streq_ptr(s->last_error, err)) {
                        log_error("The _acme-challenge responder cannot listen on %s: %s; "
                                  "retrying",
                                  what, err ? err : strerror(-r));
                        free(s->last_error);
                        s->last_error = err ? strdup(err) : NULL;
                }
                snprintf(s->desc, sizeof(s->desc), "not listening: %s", err ? err : strerror(-r));
                /* Configured and not bound where configured (sockets of an
                 * earlier spec may still serve, but not what is asked). */
                gw_health_set(s->d, GW_CHECK_DNS, true, false, what, err ? err : strerror(-r));
                retry_later(s);
                return;
        }
        s->have = s->want;
        s->retry_ms = RETRY_MIN_MS;
        s->last_error = mfree(s->last_error);
        snprintf(s->desc, sizeof(s->desc), "%s", what);
        gw_health_set(s->d, GW_CHECK_DNS, true, true, what, NULL);
        log_info("The _acme-challenge responder listens on %s (UDP and TCP)", what);
}

static void on_socket(int r, int fd, const char *error, void *userdata)
{
        struct dnsd_req *req = userdata;
        struct gw_dnsd *s = req->s;
        bool current = req->gen == s->gen && s->opening;
        unsigned idx = req->idx;

        LIST_REMOVE(s->reqs, req);
        free(req);
        if (!current || s->stopped) {
                safe_close(fd);
                return;
        }
        if (r < 0) {
                if (!s->error && !(s->error = strdup(error ? error : strerror(-r))))
                        s->error = strdup("out of memory");
        } else {
                s->fds[idx] = fd;
        }
        if (--s->pending == 0)
                batch_done(s);
}

static int batch_start(struct gw_dnsd *s, const struct dnsd_spec *want)
{
        struct netns_worker *w = gw_ns_worker(s->d);

        if (!w)
                return -ENODEV;
        batch_cancel(s);
        s->want = *want;
        s->opening = true;
        for (unsigned i = 0; i < _S_MAX; i++) {
                struct netns_socket_req sr = {
                        .family = want->addr.ss_family,
                        .type = i == S_UDP ? SOCK_DGRAM : SOCK_STREAM,
                        .bind = true,
                        .addr = want->addr,
                        .addrlen = want->addr_len,
                        .backlog = i == S_TCP ? TCP_BACKLOG : -1,
                };
                struct dnsd_req *req;

                snprintf(sr.netns_path, sizeof(sr.netns_path), "%s", want->netns);
                if (sr.addr.ss_family == AF_INET)
                        ((struct sockaddr_in *)&sr.addr)->sin_port = htons(want->port);
                else
                        ((struct sockaddr_in6 *)&sr.addr)->sin6_port = htons(want->port);
                req = calloc(1, sizeof(*req));
                if (!req)
                        goto oom;
                *req = (struct dnsd_req){.s = s, .gen = s->gen, .idx = i};
                if (netns_worker_socket(w, &sr, on_socket, req) < 0) {
                        free(req);
                        goto oom;
                }
                LIST_PREPEND(s->reqs, req);
                s->pending++;
        }
        return 0;
oom:
        batch_cancel(s);
        return -ENOMEM;
}

/* Stop listening (no fds): established TCP queries finish. */
static void listen_none(struct gw_dnsd *s, const char *why)
{
        batch_cancel(s);
        if (s->have.port) {
                (void)acme_dns_server_set_sockets(s->srv, NULL, 0, NULL, 0);
                log_info("The _acme-challenge responder stopped listening (%s)", why);
        }
        s->have = (struct dnsd_spec){};
        snprintf(s->desc, sizeof(s->desc), "off: %s", why);
        gw_health_set(s->d, GW_CHECK_DNS, false, false, NULL, NULL);
}

static void dnsd_apply(struct gw_dnsd *s)
{
        struct gw_daemon *d = s->d;
        struct dnsd_spec want = {};
        bool managed = d->cfg.ns_public_link != NULL;
        const char *why = NULL;
        int r;

        if (s->stopped)
                return;
        uv_timer_stop(&s->retry_timer);
        zones_push(s);
        if (!d->cfg.enabled || !d->cfg.dns_listen_port) {
                listen_none(s, !d->cfg.enabled ? "the gateway capability is off"
                                               : "[dns] listen_port = 0");
                return;
        }
        if (!s->have.port && !gw_ns_ready(d, &why)) {
                /* Its readiness calls gw_dnsd_ns_ready(). */
                batch_cancel(s);
                snprintf(s->desc, sizeof(s->desc), "waiting for the gateway namespace");
                gw_health_set(s->d, GW_CHECK_DNS, true, false, NULL,
                              "waiting for the gateway namespace");
                return;
        }
        if (managed) {
                (void)gw_ns_path(d, NULL, want.netns, sizeof(want.netns));
                /* The namespace now at the path: a new one gets new sockets
                 * (those in a deleted namespace receive nothing). */
                (void)gw_ns_id_of(want.netns, &want.ns_id);
        }
        want.addr = d->cfg.proxy_address;
        want.addr_len = d->cfg.proxy_address_len;
        want.port = d->cfg.dns_listen_port;
        if (s->have.port && spec_equal(&s->have, &want)) {
                batch_cancel(s);
                return;
        }
        if (s->opening && spec_equal(&s->want, &want))
                return;
        r = batch_start(s, &want);
        if (r < 0) {
                log_error_errno(r, "Failed to open the _acme-challenge responder's sockets: %m");
                retry_later(s);
        }
}

/* ======================================================================
 * Lifecycle
 * ====================================================================== */

int gw_dnsd_start(struct gw_daemon *d)
{
        struct acme_dns_server_config cfg = {.loop = d->loop};
        struct gw_dnsd *s;
        int r;

        s = calloc(1, sizeof(*s));
        if (!s)
                return log_error_errno(-ENOMEM, "Out of memory");
        s->d = d;
        s->fds[S_UDP] = s->fds[S_TCP] = -1;
        s->retry_ms = RETRY_MIN_MS;
        snprintf(s->desc, sizeof(s->desc), "not started");
        d->dnsd = s;
        r = acme_dns_server_new(&cfg, &s->srv);
        if (r < 0)
                return log_error_errno(r, "Failed to create the _acme-challenge responder: %m");
        uv_timer_init(d->loop, &s->retry_timer);
        s->retry_timer.data = s;
        s->timer_init = true;
        dnsd_apply(s);
        return 0;
}

void gw_dnsd_apply(struct gw_daemon *d)
{
        if (d->dnsd) {
                d->dnsd->retry_ms = RETRY_MIN_MS;
                dnsd_apply(d->dnsd);
        }
}

void gw_dnsd_ns_ready(struct gw_daemon *d)
{
        struct gw_dnsd *s = d->dnsd;

        if (!s)
                return;
        s->retry_ms = RETRY_MIN_MS;
        dnsd_apply(s);
}

bool gw_dnsd_serving(struct gw_daemon *d)
{
        return d->dnsd && d->dnsd->have.port != 0;
}

const char *gw_dnsd_describe(struct gw_daemon *d)
{
        return d->dnsd ? d->dnsd->desc : "not started";
}

void gw_dnsd_stop(struct gw_daemon *d)
{
        struct gw_dnsd *s = d->dnsd;

        if (!s || s->stopped)
                return;
        s->stopped = true;
        batch_cancel(s);
        if (s->timer_init)
                uv_close((uv_handle_t *)&s->retry_timer, NULL);
        acme_dns_server_free(s->srv);
        s->srv = NULL;
}

void gw_dnsd_free(struct gw_daemon *d)
{
        struct gw_dnsd *s = d->dnsd;

        if (!s)
                return;
        /* Requests still with the netns worker see s->stopped... but the
         * worker is stopped before this, and stopping it runs their
         * callbacks; anything left is dropped with its fd closed. */
        while (s->reqs) {
                struct dnsd_req *req = s->reqs;

                LIST_REMOVE(s->reqs, req);
                free(req);
        }
        for (size_t i = 0; i < s->n_txt; i++) {
                free(s->txt[i].domain);
                free(s->txt[i].value);
        }
        free(s->error);
        free(s->last_error);
        free(s);
        d->dnsd = NULL;
}

int gw_dnsd_render_metrics(struct gw_daemon *d, struct strbuf *out)
{
        struct acme_dns_stats st = {};

        if (!d->dnsd || !d->dnsd->srv)
                return 0;
        acme_dns_server_stats(d->dnsd->srv, &st);
        return strbuf_printf(
                out,
                "# HELP gatewayd_dns_queries_total Queries to the _acme-challenge responder.\n"
                "# TYPE gatewayd_dns_queries_total counter\n"
                "gatewayd_dns_queries_total %" PRIu64 "\n"
                "# HELP gatewayd_dns_answers_total Its answers by response code.\n"
                "# TYPE gatewayd_dns_answers_total counter\n"
                "gatewayd_dns_answers_total{rcode=\"NOERROR\"} %" PRIu64 "\n"
                "gatewayd_dns_answers_total{rcode=\"NXDOMAIN\"} %" PRIu64 "\n"
                "gatewayd_dns_answers_total{rcode=\"REFUSED\"} %" PRIu64 "\n"
                "gatewayd_dns_answers_total{rcode=\"FORMERR\"} %" PRIu64 "\n"
                "gatewayd_dns_answers_total{rcode=\"NOTIMP\"} %" PRIu64 "\n"
                "gatewayd_dns_answers_total{rcode=\"BADVERS\"} %" PRIu64 "\n"
                "# HELP gatewayd_dns_truncated_total UDP answers sent with TC=1.\n"
                "# TYPE gatewayd_dns_truncated_total counter\n"
                "gatewayd_dns_truncated_total %" PRIu64 "\n"
                "# HELP gatewayd_dns_dropped_total Queries not answered (malformed beyond an "
                "answer, reflection sources, sends the socket refused).\n"
                "# TYPE gatewayd_dns_dropped_total counter\n"
                "gatewayd_dns_dropped_total %" PRIu64 "\n"
                "# HELP gatewayd_dns_tcp_connections_total TCP connections by outcome.\n"
                "# TYPE gatewayd_dns_tcp_connections_total counter\n"
                "gatewayd_dns_tcp_connections_total{result=\"accepted\"} %" PRIu64 "\n"
                "gatewayd_dns_tcp_connections_total{result=\"refused\"} %" PRIu64 "\n"
                "gatewayd_dns_tcp_connections_total{result=\"timeout\"} %" PRIu64 "\n",
                st.queries, st.noerror, st.nxdomain, st.refused, st.formerr, st.notimp, st.badvers,
                st.truncated, st.dropped + st.send_failed, st.tcp_accepted, st.tcp_refused,
                st.tcp_timeouts);
}
