/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* The daemon's shared state: wiring of bus -> workloads -> state (and,
 * with later issues, netns/proxy/acme). Everything here runs on the main
 * libuv loop; no locks. */

#include <stdbool.h>
#include <stdint.h>

#include <uv.h>

#include "daemon/config.h"
#include "daemon/state.h"
#include "proto/bus.h"
#include "workloads/workloads.h"

struct gw_dns;
struct gw_op;
struct strbuf;
struct hashmap;
struct gw_revalidator;
struct gw_reload_wait;
struct gw_ns;
struct gw_prom;
struct gw_acme;
struct gw_acme_tokens;
struct gw_dnsd;
struct gw_certs;
struct gw_proxy;
struct gw_accesslog;
struct netns_worker;
struct netns_sockpool_stats;
struct proxy_engine_stats;
struct proxy_routes;

/* health.c: the checks /healthz, the health gauges and Info report. */
enum gw_check {
        GW_CHECK_NAMESPACE, /* the gateway namespace is ready (wanted when managed and enabled) */
        GW_CHECK_HTTPS,     /* the proxy accepts on the configured https address */
        GW_CHECK_HTTP,      /* ... and on the http one */
        GW_CHECK_METRICS,   /* the [metrics] listen endpoint is bound */
        GW_CHECK_DNS,       /* the _acme-challenge responder listens (UDP and TCP) */
        GW_CHECK_BUS,       /* the bus transport is connected to Redis */
        _GW_CHECK_MAX,
};

struct gw_health_check {
        bool set;            /* reported at least once */
        bool wanted;         /* applies: configured, enabled */
        bool ok;             /* ready / bound / connected (false when not wanted) */
        char *where;         /* what it is about: a path, an address, the broker */
        char *error;         /* why it is not ok now; NULL when ok or not wanted */
        char *last_error;    /* the last cause seen, kept after recovery */
        uint64_t since_usec; /* CLOCK_REALTIME of the last change of wanted/ok */
};

enum gw_reload_result {
        GW_RELOAD_NONE, /* no SIGHUP since the start */
        GW_RELOAD_OK,
        GW_RELOAD_FAILED, /* refused: the configuration running was kept */
        _GW_RELOAD_MAX,
};

/* One struct: extend it with a check above (and a row in health.c). */
struct gw_health {
        struct gw_health_check checks[_GW_CHECK_MAX];
        /* By enum gw_overlay: wanted while configured in a managed, enabled
         * namespace; ok while it is up (its link, address and route are in
         * the namespace now at the path); where: the gateway's address on it. */
        struct gw_health_check overlays[_GW_OVERLAY_MAX];
        struct {
                enum gw_reload_result result;
                char *error;             /* why the last reload was refused */
                uint64_t at_usec;        /* CLOCK_REALTIME of the last reload, 0 = none */
                uint64_t ok_at_usec;     /* ... of the last configuration applied: the start's
                                          * (set by the metrics endpoint) or a reload's */
                uint64_t applied;        /* reloads applied since the start */
                uint64_t refused;        /* reloads refused since the start */
                uint64_t failed_at_usec; /* ... the last of them, 0 = none */
        } reload;
};

#define GW_MODULE         "gateway"
#define GW_OBJECT         "manager"
#define GW_OBJECT_VERSION "0.0.1"

struct gw_daemon {
        uv_loop_t *loop;
        char *config_path;
        char *root;
        char *broker;
        unsigned workers;

        struct gw_config cfg;
        struct wl_public_config pc_cache; /* last public config from the networker (bus mode) */
        struct proto_bus *bus;
        struct gw_state *state;
        struct wl_registry *reg;
        struct gw_dns *dns;
        struct gw_op *ops; /* Set* calls in progress */
        struct gw_revalidator *reval;
        struct gw_ns *ns;              /* the gateway namespace keeper (gwns.c) */
        struct gw_proxy *proxy;        /* routes and the proxy engine (proxy.c) */
        struct gw_prom *prom;          /* the Prometheus endpoint (prometheus.c) */
        struct gw_acme *acme;          /* the certificate manager (acme.c) */
        struct gw_acme_tokens *tokens; /* HTTP-01 answers for the engine (acme.c) */
        struct gw_dnsd *dnsd;          /* the _acme-challenge responder (dnsd.c) */
        struct gw_accesslog *alog;     /* the access log's rings and writer (accesslog.c) */
        char **corrupt_ids;            /* IDs of workload files set aside as corrupt (at most
                                        * GW_CORRUPT_IDS_MAX kept), for status and Info */
        size_t n_corrupt_ids;          /* entries in @corrupt_ids */
        size_t n_corrupt;              /* corrupt workload files in the state directory */
        struct gw_health health;
        struct gw_config *reload_cfg; /* a SIGHUP's file waiting for its namespace check */
        bool reload_again;            /* another SIGHUP came meanwhile */

        void (*reload)(struct gw_daemon *d); /* main.c's SIGHUP handling, for the bus Reload */
        uint64_t reloads_started;            /* reloads that began reading the file */
        struct gw_reload_wait *reload_waits; /* bus Reload calls waiting for a result */

        uv_signal_t sig_term, sig_int, sig_hup;
        uv_signal_t sig_usr1; /* reopen the access log (logrotate) */
        uv_timer_t watchdog;
        uv_timer_t counters_timer;
        uint64_t watchdog_usec;
        bool ready;
        bool stopping;
        int exit_code;
        uint64_t started_usec;
};

#define GW_CORRUPT_IDS_MAX 100

/* gateway.c: the manager@0.0.1 object. */
void gw_manager_on_request(struct proto_bus *bus, struct proto_bus_call *call, void *userdata);
/* Abandon all in-flight calls (they are handled again after a restart). */
void gw_manager_cancel_all(struct gw_daemon *d);
/* A reload ended (@error: why it was refused, one line per error): answer the Reload calls
 * that came before it began reading the file. */
void gw_manager_reload_done(struct gw_daemon *d, bool ok, const char *error);
/* Restore workloads from the state dir into the registry. */
int gw_manager_restore(struct gw_daemon *d);
/* (Re)create the resolver from the config. */
int gw_manager_apply_dns(struct gw_daemon *d);
/* Write counters.json from the routes' counters. */
int gw_manager_save_counters(struct gw_daemon *d);

/* pubconf.c: the node's public configuration (from the file or the bus). */
typedef void gw_pubconf_cb(int r, const char *error, const struct wl_public_config *pc,
                           void *userdata);
/* Fetch: @cb may run before this returns (file mode). Returns 0 or -errno
 * (then @cb never runs). @ret receives a cancellable handle in bus mode. */
int gw_pubconf_get(struct gw_daemon *d, gw_pubconf_cb *cb, void *userdata,
                   struct proto_bus_pending **ret);
/* Convert the networker's PublicConfig. */
int gw_pubconf_from_proto(const struct proto_public_config *in, struct wl_public_config *out);
/* The gateway domain in force: [gateway] domain, else (public_config =
 * bus) the networker's as last fetched; NULL when there is none (yet).
 * Borrowed until the next reload or fetch. */
const char *gw_pubconf_domain(const struct gw_daemon *d);

/* names.c: name-contract validation through api-gateway (§4.8). */
enum gw_name_verdict {
        GW_NAME_OK,
        GW_NAME_INVALID, /* a user error: reserve first / wrong state / twin mismatch */
        GW_NAME_ERROR,   /* anything else (transport, chain errors) */
};
struct gw_name_check;
typedef void gw_name_check_cb(enum gw_name_verdict v, const char *reason, void *userdata);
/* Start a check of @name for @twin; @cb runs exactly once, later. */
int gw_name_check_start(struct gw_daemon *d, const char *name, uint32_t twin, gw_name_check_cb *cb,
                        void *userdata, struct gw_name_check **ret);
void gw_name_check_cancel(struct gw_name_check *c);

int gw_revalidator_start(struct gw_daemon *d);
void gw_revalidator_stop(struct gw_daemon *d);
/* Apply a new interval (SIGHUP). */
void gw_revalidator_reconfigure(struct gw_daemon *d);

/* health.c */
/* Record the state of check @c: @wanted (it applies), @ok, @where (what it
 * is about), @error (why not ok; ignored when ok). The time of a change of
 * @wanted/@ok is kept. Never fails (texts stay as they were on -ENOMEM). */
void gw_health_set(struct gw_daemon *d, enum gw_check c, bool wanted, bool ok, const char *where,
                   const char *error);
/* The same for overlay @o (not a /healthz problem of its own: the
 * namespace check says why it is down). */
void gw_health_set_overlay(struct gw_daemon *d, enum gw_overlay o, bool wanted, bool ok,
                           const char *where, const char *error);
/* A SIGHUP was applied (@ok) or refused (@error says why). */
void gw_health_reload_done(struct gw_daemon *d, bool ok, const char *error);
/* Re-read what changes without an event (the namespace at its path, the
 * bus connection). Call before reporting. */
void gw_health_refresh(struct gw_daemon *d);
/* The number of wanted checks that are not ok, each appended to @out (may
 * be NULL) as "<check> <where>: <state>: <cause>\n". -ENOMEM. */
int gw_health_problems(struct gw_daemon *d, struct strbuf *out);
/* Is check @c wanted and ok? */
bool gw_health_ok(struct gw_daemon *d, enum gw_check c);
/* "namespace", "https", "http", "metrics", "bus"; NULL otherwise. */
const char *gw_check_to_string(enum gw_check c);
/* Append the Info "Health" map (msgpack). 0 or -ENOMEM. */
int gw_health_encode(struct gw_daemon *d, struct strbuf *out);
void gw_health_done(struct gw_health *h);

/* gwns.c: the gateway network namespace. */
int gw_ns_start(struct gw_daemon *d);
/* Re-evaluate after a configuration change (SIGHUP). */
void gw_ns_apply(struct gw_daemon *d);
/* Before a SIGHUP applies @nc: when it would build the namespace from other
 * links, name or directory (or turn it on), check on the namespace worker
 * that it can be built here (netns_check()) before anything is torn down.
 * Returns 0 when no check is needed, 1 when @cb runs later (with 0, or
 * -errno and the cause; never after gw_ns_stop()), or -errno with
 * *reterr. One check at a time. */
typedef void gw_ns_check_cb(struct gw_daemon *d, int r, const char *error);
int gw_ns_check(struct gw_daemon *d, const struct gw_config *nc, gw_ns_check_cb *cb, char **reterr);
/* Report the namespace's state to health.c, checking that the namespace
 * at its path is still the one made ready. */
void gw_ns_health_refresh(struct gw_daemon *d);
/* True when the namespace is not managed or is ready; else *ret_error says why. */
bool gw_ns_ready(struct gw_daemon *d, const char **ret_error);
void gw_ns_stop(struct gw_daemon *d);
/* The path of the gateway namespace (@net_id NULL) or of the private
 * network @net_id ("<netns_dir>/n-<net_id>", zos's name) into @buf.
 * Returns 0 or -ENAMETOOLONG. */
int gw_ns_path(const struct gw_daemon *d, const char *net_id, char *buf, size_t size);
/* The identity of a namespace file (the nsfs device and inode of what is
 * bound at a path): a namespace deleted and made anew at the same path has
 * another one, and none is reused while a socket made in it is open. */
struct gw_ns_id {
        uint64_t dev, ino;
};
/* 0 and *ret, or -errno (-ENOENT: nothing at @path). */
int gw_ns_id_of(const char *path, struct gw_ns_id *ret);
static inline bool gw_ns_id_eq(const struct gw_ns_id *a, const struct gw_ns_id *b)
{
        return a->dev == b->dev && a->ino == b->ino;
}
/* The worker that opens sockets inside namespaces (for the proxy). */
struct netns_worker *gw_ns_worker(struct gw_daemon *d);

/* proxy.c: the route table and the proxy engine. */
/* Create the table, certificate store, TLS context and socket pool, load a
 * route for every workload in the registry and the counters from
 * counters.json. Does not serve yet (gw_proxy_apply()). Returns 0 or -errno
 * (logged). */
int gw_proxy_start(struct gw_daemon *d);
/* Re-evaluate serving after a configuration change (start, SIGHUP): the
 * capability switch, ports, address, http_plain. */
void gw_proxy_apply(struct gw_daemon *d);
/* The gateway namespace is ready (after every successful reconcile).
 * Listeners in a namespace other than the one now at the path (made anew,
 * whichever way) are replaced: the proxy compares namespace identities. */
void gw_proxy_ns_ready(struct gw_daemon *d);
/* Report the listeners' state to health.c (bound only when the engine
 * accepts on the configured address in the namespace now at the path). */
void gw_proxy_health_refresh(struct gw_daemon *d);
/* A committed registry change, before the bus reply: @old (the previous
 * version, or NULL) -> @p (the new one, or NULL when deleted). Updates and
 * publishes the routes and tells the engine; forgets a deleted FQDN's
 * certificate. Returns 0 or -errno (logged; the workload stays accepted). */
int gw_proxy_workload_changed(struct gw_daemon *d, const struct wl_proxy *old,
                              const struct wl_proxy *p);
/* The socket pool's counters; false when there is no pool. */
bool gw_proxy_sockpool_stats(struct gw_daemon *d, struct netns_sockpool_stats *ret);
/* The current snapshot with a reference (NULL until gw_proxy_start() has
 * loaded the routes and counters). */
struct proxy_routes *gw_proxy_snapshot(struct gw_daemon *d);
/* Workload @id's counters in @s (zero when it has no route). */
void gw_proxy_counters(const struct proxy_routes *s, const char *id, struct gw_counters *ret);
/* Engine statistics, monotonic over engine restarts; returns whether the
 * engine is serving. */
bool gw_proxy_stats(struct gw_daemon *d, struct proxy_engine_stats *ret, unsigned *ret_workers);
/* Descriptors the daemon keeps for everything but the proxy's connections
 * (bus, state, metrics, netns, DNS, the backend socket pool): the engine
 * may use the open-file limit minus this. */
unsigned gw_fd_reserve(void);
/* The certificate name a terminated workload is served with: "*.<domain>"
 * for a name workload (its FQDN minus "<name>."), the FQDN otherwise.
 * Returns 0 or -ENOBUFS. */
int gw_proxy_cert_name(const struct wl_proxy *p, char *buf, size_t size);
/* The certificate for @name was replaced (gw_certs_install()): put every
 * route served with it again and publish, so new handshakes use it; open
 * connections are not touched. Returns 0 or -errno. */
int gw_proxy_cert_changed(struct gw_daemon *d, const char *name);
/* The certificate store (NULL when it could not be opened). */
struct gw_certs *gw_proxy_certs(struct gw_daemon *d);
/* Graceful engine stop (SIGTERM): blocks for at most the engine's stop
 * timeout. */
void gw_proxy_stop(struct gw_daemon *d);
/* SIGTERM's drain: the listeners close at once, the workers stop on the
 * thread pool (requests and tunnels in flight finish up to the engine's
 * stop timeout, then the rest is closed) while the loop runs on and sends
 * STATUS= with what is left; @done is called on the loop once the engine
 * is stopped (at once when none serves). */
void gw_proxy_drain(struct gw_daemon *d, void (*done)(struct gw_daemon *d));
/* Stop and close the handles (then run the loop dry and call free). */
void gw_proxy_close(struct gw_daemon *d);
void gw_proxy_free(struct gw_daemon *d);

/* prometheus.c: the [metrics] listen endpoint. */
/* (Re)open the listener as configured (start, SIGHUP). */
void gw_prom_apply(struct gw_daemon *d);
/* Close everything; freed once the loop has run the close callbacks. */
void gw_prom_close(struct gw_daemon *d);
/* The exposition text (exposed for tests). Returns 0 or -ENOMEM. */
int gw_prom_render(struct gw_daemon *d, struct strbuf *out);

/* utf8 checks for bus strings */
bool gw_utf8_valid(const char *s, size_t n);
