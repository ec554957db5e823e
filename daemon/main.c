/* SPDX-License-Identifier: Apache-2.0 */
/* gatewayd: the Zero-OS web gateway daemon. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <systemd/sd-daemon.h>
#include <systemd/sd-journal.h>

#include "common/log.h"
#include "common/macros.h"
#include "daemon/accesslog.h"
#include "daemon/acme.h"
#include "daemon/daemon.h"
#include "daemon/dns.h"
#include "daemon/dnsd.h"
#include "gw-commit.h"
#include "gw-version.h"

#define DEFAULT_BROKER   "unix:///var/run/redis.sock"
#define DEFAULT_ROOT     "/var/cache/modules/gateway"
#define DEFAULT_CONFIG   "/etc/gatewayd/gatewayd.conf"
#define COUNTERS_SAVE_MS (60 * 1000)

static void sink_journal(int level, const struct log_fields *f, const char *msg)
{
        sd_journal_send("MESSAGE=%s", msg, "PRIORITY=%i", level, "SYSLOG_IDENTIFIER=gatewayd",
                        "WORKLOAD_ID=%s", f && f->workload_id ? f->workload_id : "", "DOMAIN=%s",
                        f && f->domain ? f->domain : "", NULL);
}

static void help(void)
{
        printf("Usage: gatewayd [OPTIONS]\n"
               "\n"
               "The Zero-OS web gateway: serves gateway.manager@0.0.1 on the node's zbus.\n"
               "\n"
               "  --broker URL       Redis broker: unix:///path or tcp://[pass@]host:port\n"
               "                     (default %s)\n"
               "  --root DIR         state directory (default %s)\n"
               "  --workers N        bus workers: calls handled at once (default 1)\n"
               "  --config FILE      node configuration (default %s)\n"
               "  --log-level LEVEL  debug|info|notice|warning|error (overrides [log] level)\n"
               "  --log-target T     auto|journal|stderr (default auto: journal under systemd)\n"
               "  -t, --check-config\n"
               "                     check the configuration file as a reload would, print\n"
               "                     every error, and exit: 0 valid, 1 not\n"
               "  -h, --help         show this help\n"
               "  --version          show the version and the commit\n",
               DEFAULT_BROKER, DEFAULT_ROOT, DEFAULT_CONFIG);
}

static void notify_status(struct gw_daemon *d, const char *fmt, ...) _printf_(2, 3);
static void notify_status(struct gw_daemon *d, const char *fmt, ...)
{
        char buf[512];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(buf, sizeof(buf), fmt, ap);
        va_end(ap);
        sd_notifyf(0, "STATUS=%s", buf);
}

static void on_bus_state(struct proto_bus *bus, bool connected, const char *reason, void *ud)
{
        struct gw_daemon *d = ud;

        gw_health_set(d, GW_CHECK_BUS, true, connected, d->broker,
                      reason ? reason : "disconnected");
        if (connected) {
                log_info("Serving %s on %s (%u worker%s, %zu workload%s)", proto_bus_queue(bus),
                         d->broker, d->workers, d->workers == 1 ? "" : "s",
                         wl_registry_size(d->reg), wl_registry_size(d->reg) == 1 ? "" : "s");
                if (!d->ready) {
                        d->ready = true;
                        sd_notify(0, "READY=1");
                }
                notify_status(d, "Serving %s, %zu workload(s)", proto_bus_queue(bus),
                              wl_registry_size(d->reg));
        } else {
                log_warning("Lost the bus (%s); reconnecting", reason ? reason : "unknown");
                notify_status(d, "Waiting for Redis at %s: %s", d->broker,
                              reason ? reason : "disconnected");
        }
}

/* Rate-limited: any local process that can write to Redis can send these. */
static void on_bus_garbage(struct proto_bus *bus, size_t len, int error, void *ud)
{
        if (error == -EDESTADDRREQ)
                log_ratelimit_warning("Dropping requests without ReplyTo on %s",
                                      proto_bus_queue(bus));
        else if (error == -E2BIG)
                log_ratelimit_warning("Dropping requests larger than [bus] max_payload on %s",
                                      proto_bus_queue(bus));
        else
                log_ratelimit_warning_errno(error, "Ignoring undecodable requests on %s: %m",
                                            proto_bus_queue(bus));
        log_debug("Dropped a request of %zu bytes: %s", len, strerror(-error));
}

static void on_bus_stopped(struct proto_bus *bus, void *ud)
{
        log_debug("Bus stopped");
}

static void close_handle(uv_handle_t *h)
{
        if (!uv_is_closing(h))
                uv_close(h, NULL);
}

static void daemon_stop_finish(struct gw_daemon *d);

static void daemon_stop(struct gw_daemon *d, const char *why)
{
        if (d->stopping)
                return;
        d->stopping = true;
        log_info("Stopping (%s)", why);
        sd_notify(0, "STOPPING=1");
        /* Stop the bus first: calls still in flight then reply nothing and
         * stay in the inflight list for the next start. */
        proto_bus_stop(d->bus, on_bus_stopped, d);
        gw_manager_cancel_all(d);
        gw_revalidator_stop(d);
        gw_prom_close(d);
        /* Orders are cancelled (their challenges removed) before the
         * responder and the engine that answer them go. */
        gw_acme_stop(d);
        gw_dnsd_stop(d);
        /* Graceful: requests and tunnels in flight get the engine's stop
         * timeout while the loop runs on (STATUS= says what is left); their
         * bytes are in the counters once they are closed, then the rest of
         * the stop saves them. */
        gw_proxy_drain(d, daemon_stop_finish);
}

/* After the drain: the namespace, the state, the handles; the loop then runs
 * dry and main() exits 0. */
static void daemon_stop_finish(struct gw_daemon *d)
{
        int r;

        gw_ns_stop(d);
        gw_dns_free(d->dns);
        d->dns = NULL;
        r = gw_manager_save_counters(d);
        if (r < 0)
                log_warning_errno(r, "Failed to save counters: %m");
        gw_proxy_close(d);
        close_handle((uv_handle_t *)&d->sig_term);
        close_handle((uv_handle_t *)&d->sig_int);
        close_handle((uv_handle_t *)&d->sig_hup);
        close_handle((uv_handle_t *)&d->sig_usr1);
        close_handle((uv_handle_t *)&d->watchdog);
        close_handle((uv_handle_t *)&d->counters_timer);
        (void)log_ratelimit_flush(true);
}

static void on_sigterm(uv_signal_t *s, int signum)
{
        daemon_stop(s->data, signum == SIGINT ? "SIGINT" : "SIGTERM");
}

static void apply_log_level(const struct gw_config *c, int cli_level)
{
        log_set_max_level(cli_level >= 0 ? cli_level : c->log_level);
}

static int cli_log_level = -1;

static void reload(struct gw_daemon *d);

/* Log every line of @text (each error of a configuration file) as a message of its own,
 * after @prefix. */
static void log_error_lines(const char *prefix, const char *text)
{
        for (const char *p = text, *nl; p; p = nl ? nl + 1 : NULL) {
                nl = strchr(p, '\n');
                log_error("%s%.*s", prefix, nl ? (int)(nl - p) : (int)strlen(p), p);
        }
}

/* The end of every SIGHUP or bus Reload, applied or refused. */
static void reload_finish(struct gw_daemon *d, bool ok, const char *error)
{
        if (!ok)
                log_error_lines("Refusing the new configuration, keeping the old one: ", error);
        gw_health_reload_done(d, ok, error);
        sd_notify(0, "READY=1");
        gw_manager_reload_done(d, ok, error);
        if (d->reload_again && !d->stopping) {
                d->reload_again = false;
                reload(d);
        }
}

static struct gw_config *config_free(struct gw_config *c)
{
        if (c) {
                gw_config_done(c);
                free(c);
        }
        return NULL;
}

/* Apply @nc (taken over) as a whole. */
static void reload_apply(struct gw_daemon *d, struct gw_config *nc_p)
{
        struct gw_config nc = *nc_p, old;
        unsigned old_workers = d->cfg.proxy_workers;
        bool dns_changed, pc_changed;

        free(nc_p);
        dns_changed = !streq_ptr(nc.resolver, d->cfg.resolver) ||
                      nc.resolver_timeout_ms != d->cfg.resolver_timeout_ms;
        pc_changed = !streq_ptr(nc.pc.domain, d->cfg.pc.domain) ||
                     nc.pc.has_ipv4 != d->cfg.pc.has_ipv4 || nc.pc.has_ipv6 != d->cfg.pc.has_ipv6 ||
                     memcmp(&nc.pc.ipv4, &d->cfg.pc.ipv4, sizeof(nc.pc.ipv4)) != 0 ||
                     memcmp(&nc.pc.ipv6, &d->cfg.pc.ipv6, sizeof(nc.pc.ipv6)) != 0;
        if (nc.enabled != d->cfg.enabled)
                log_notice("Gateway capability turned %s", nc.enabled ? "on" : "off");
        if (pc_changed)
                log_notice("Public configuration changed: domain '%s'", strempty(nc.pc.domain));
        old = d->cfg;
        d->cfg = nc;
        gw_config_done(&old);
        apply_log_level(&d->cfg, cli_log_level);
        if (dns_changed)
                (void)gw_manager_apply_dns(d);
        if (pc_changed) {
                /* A new public config from the networker is fetched on demand. */
                wl_public_config_done(&d->pc_cache);
                d->pc_cache = (struct wl_public_config){};
        }
        if (d->cfg.proxy_workers != old_workers)
                log_notice("[proxy] workers changed: takes effect at the next start");
        gw_ns_apply(d);
        gw_proxy_apply(d);
        gw_prom_apply(d);
        gw_accesslog_apply(d);
        gw_dnsd_apply(d);
        gw_acme_apply(d);
        gw_revalidator_reconfigure(d);
        log_info("Configuration reloaded from %s", d->config_path);
        reload_finish(d, true, NULL);
}

static void on_reload_checked(struct gw_daemon *d, int r, const char *error)
{
        struct gw_config *nc = TAKE_PTR(d->reload_cfg);
        _cleanup_free_ char *msg = NULL;

        if (r >= 0) {
                reload_apply(d, nc);
                return;
        }
        config_free(nc);
        if (asprintf(&msg, "%s: [namespace]: cannot be built on this node: %s", d->config_path,
                     error ? error : strerror(-r)) < 0)
                msg = NULL;
        reload_finish(d, false, msg ? msg : "the namespace cannot be built on this node");
}

/* SIGHUP. A file that does not parse, or whose gateway namespace cannot be
 * built here (checked on the namespace worker before anything is torn
 * down), is refused as a whole: the configuration running stays. */
static void reload(struct gw_daemon *d)
{
        _cleanup_free_ char *err = NULL;
        struct gw_config *nc;
        int r;

        if (d->reload_cfg) {
                /* Read the file again once the check of the last one is done. */
                d->reload_again = true;
                return;
        }
        sd_notify(0, "RELOADING=1");
        d->reloads_started++;
        nc = calloc(1, sizeof(*nc));
        if (!nc) {
                reload_finish(d, false, "out of memory");
                return;
        }
        r = gw_config_load(d->config_path, nc, &err);
        if (r < 0) {
                free(nc);
                reload_finish(d, false, err ? err : strerror(-r));
                return;
        }
        r = gw_ns_check(d, nc, on_reload_checked, &err);
        if (r < 0) {
                _cleanup_free_ char *msg = NULL;

                config_free(nc);
                if (asprintf(&msg, "%s: [namespace]: %s", d->config_path,
                             err ? err : strerror(-r)) < 0)
                        msg = NULL;
                reload_finish(d, false, msg ? msg : strerror(-r));
                return;
        }
        if (r > 0) {
                d->reload_cfg = nc; /* on_reload_checked() goes on */
                return;
        }
        reload_apply(d, nc);
}

static void on_sighup(uv_signal_t *s, int signum)
{
        struct gw_daemon *d = s->data;

        /* Whatever the reload says: logrotate's postrotate may send either. */
        gw_accesslog_reopen(d);
        if (d->stopping)
                /* Draining: a reload would start what is being stopped. */
                return;
        reload(d);
}

static void on_sigusr1(uv_signal_t *s, int signum)
{
        gw_accesslog_reopen(s->data);
}

/* --check-config: what a reload reads, without starting anything. */
static int check_config(const char *path)
{
        _cleanup_free_ char *err = NULL;
        struct gw_config c;
        int r;

        r = gw_config_load(path, &c, &err);
        if (r >= 0) {
                gw_config_done(&c);
                printf("%s: OK\n", path);
                return 0;
        }
        if (!err) {
                fprintf(stderr, "gatewayd: %s: %s\n", path, strerror(-r));
                return 1;
        }
        /* Without a prefix: "<file>:<line>: ..." is what editors jump to. */
        fprintf(stderr, "%s\n", err);
        if (r == -EINVAL)
                fprintf(stderr, "gatewayd: %s: not valid, a reload would be refused\n", path);
        return 1;
}

static void on_watchdog(uv_timer_t *t)
{
        sd_notify(0, "WATCHDOG=1");
}

static void on_counters_timer(uv_timer_t *t)
{
        struct gw_daemon *d = t->data;
        int r = gw_manager_save_counters(d);

        if (r < 0)
                log_warning_errno(r, "Failed to save counters: %m");
        /* Counts of rate-limited warnings whose window ended. */
        (void)log_ratelimit_flush(false);
}

/* Every proxied connection takes one or two fds: run with the soft fd
 * limit raised to the hard one (systemd's unit sets LimitNOFILE; zinit and
 * shells usually leave the soft limit at 1024), like nginx's
 * worker_rlimit_nofile. The proxy's share and connection limit are derived
 * from the result when it starts (gw_fd_reserve() in proxy.c). */
static void raise_nofile(void)
{
        struct rlimit rl;

        if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur >= rl.rlim_max)
                return;
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
                log_warning_errno(-errno, "Could not raise the open-file limit to %llu: %m",
                                  (unsigned long long)rl.rlim_max);
        else
                log_debug("Open-file limit raised to %llu", (unsigned long long)rl.rlim_max);
}

int main(int argc, char *argv[])
{
        enum {
                ARG_BROKER = 0x100,
                ARG_ROOT,
                ARG_WORKERS,
                ARG_CONFIG,
                ARG_LOG_LEVEL,
                ARG_LOG_TARGET,
                ARG_VERSION,
                ARG_CHECK_CONFIG,
        };
        static const struct option options[] = {
                {"broker", required_argument, NULL, ARG_BROKER},
                {"root", required_argument, NULL, ARG_ROOT},
                {"workers", required_argument, NULL, ARG_WORKERS},
                {"config", required_argument, NULL, ARG_CONFIG},
                {"log-level", required_argument, NULL, ARG_LOG_LEVEL},
                {"log-target", required_argument, NULL, ARG_LOG_TARGET},
                {"help", no_argument, NULL, 'h'},
                {"version", no_argument, NULL, ARG_VERSION},
                {"check-config", no_argument, NULL, ARG_CHECK_CONFIG},
                {}};
        const char *broker = DEFAULT_BROKER, *root = DEFAULT_ROOT, *config = DEFAULT_CONFIG;
        const char *log_target = "auto";
        bool config_given = false, check = false;
        long workers = 1;
        struct gw_daemon d = {};
        _cleanup_free_ char *err = NULL;
        uv_loop_t loop;
        char *end;
        int c, r;

        while ((c = getopt_long(argc, argv, "ht", options, NULL)) >= 0) {
                switch (c) {
                case ARG_BROKER:
                        broker = optarg;
                        break;
                case ARG_ROOT:
                        root = optarg;
                        break;
                case ARG_WORKERS:
                        errno = 0;
                        workers = strtol(optarg, &end, 10);
                        if (errno || *end || workers < 0 || workers > 64) {
                                fprintf(stderr, "gatewayd: --workers: expected 1..64, got '%s'\n",
                                        optarg);
                                return 2;
                        }
                        break;
                case ARG_CONFIG:
                        config = optarg;
                        config_given = true;
                        break;
                case ARG_LOG_LEVEL:
                        cli_log_level = log_level_from_string(optarg);
                        if (cli_log_level < 0) {
                                fprintf(stderr, "gatewayd: --log-level: unknown level '%s'\n",
                                        optarg);
                                return 2;
                        }
                        break;
                case ARG_LOG_TARGET:
                        log_target = optarg;
                        if (!streq(optarg, "auto") && !streq(optarg, "journal") &&
                            !streq(optarg, "stderr")) {
                                fprintf(stderr, "gatewayd: --log-target: expected auto, journal "
                                                "or stderr\n");
                                return 2;
                        }
                        break;
                case 'h':
                        help();
                        return 0;
                case 't':
                case ARG_CHECK_CONFIG:
                        check = true;
                        break;
                case ARG_VERSION:
                        printf("gatewayd %s (commit %s)\n", GATEWAYD_VERSION, GATEWAYD_COMMIT);
                        return 0;
                default:
                        return 2;
                }
        }
        if (optind < argc) {
                fprintf(stderr, "gatewayd: unexpected argument '%s'\n", argv[optind]);
                return 2;
        }
        if (workers == 0) {
                fprintf(stderr, "gatewayd: invalid number of workers\n");
                return 2;
        }
        if (check)
                return check_config(config);
        /* Under systemd, stderr is connected to the journal (JOURNAL_STREAM). */
        if (streq(log_target, "journal") || (streq(log_target, "auto") && getenv("JOURNAL_STREAM")))
                log_set_sink(sink_journal);

        r = gw_config_load(config, &d.cfg, &err);
        if (r == -ENOENT && !config_given) {
                log_warning("No configuration file at %s: the gateway capability stays off",
                            config);
                free(err);
                err = NULL;
                r = gw_config_init(&d.cfg);
        }
        if (r < 0) {
                /* Each error once: the log is stderr, or the journal that stderr goes to under
                 * systemd; only a journal reached otherwise leaves the terminal without it. */
                log_error_lines("", err ? err : strerror(-r));
                if (streq(log_target, "journal") && !getenv("JOURNAL_STREAM"))
                        fprintf(stderr, "%s\n", err ? err : strerror(-r));
                return 1;
        }
        apply_log_level(&d.cfg, cli_log_level);
        raise_nofile();

        d.config_path = (char *)config;
        d.root = (char *)root;
        d.broker = (char *)broker;
        d.workers = (unsigned)workers;
        d.loop = &loop;
        d.reload = reload;
        d.exit_code = 1; /* until the loop runs */
        gw_health_set(&d, GW_CHECK_BUS, true, false, broker, "not connected yet");
        signal(SIGPIPE, SIG_IGN);
        r = uv_loop_init(&loop);
        if (r < 0) {
                log_error_errno(r, "Failed to create the event loop: %m");
                gw_config_done(&d.cfg);
                return 1;
        }

        /* Steps that create no loop handles: failures just free. */
        struct proto_bus_options bo = {
                .broker = broker,
                .module = GW_MODULE,
                .object_name = GW_OBJECT,
                .object_version = GW_OBJECT_VERSION,
                .workers = d.workers,
                .max_payload = d.cfg.max_payload,
                .serve = true,
                .on_request = gw_manager_on_request,
                .on_state = on_bus_state,
                .on_garbage = on_bus_garbage,
                .userdata = &d,
        };
        r = proto_bus_new(&loop, &bo, &d.bus, &err);
        if (r < 0) {
                log_error("Invalid --broker: %s", err ? err : strerror(-r));
                fprintf(stderr, "gatewayd: --broker: %s\n", err ? err : strerror(-r));
                goto finish;
        }
        r = gw_state_open(root, &d.state);
        if (r < 0) {
                log_error_errno(r, "Failed to open state directory %s: %m", root);
                goto finish;
        }
        d.reg = wl_registry_new();
        if (!d.reg) {
                log_error("Out of memory");
                goto finish;
        }
        if (gw_manager_restore(&d) < 0)
                goto finish;

        /* From here on handles exist: failures stop the daemon through the loop. */
        uv_signal_init(&loop, &d.sig_term);
        uv_signal_init(&loop, &d.sig_int);
        uv_signal_init(&loop, &d.sig_hup);
        d.sig_term.data = d.sig_int.data = d.sig_hup.data = &d;
        uv_signal_start(&d.sig_term, on_sigterm, SIGTERM);
        uv_signal_start(&d.sig_int, on_sigterm, SIGINT);
        uv_signal_start(&d.sig_hup, on_sighup, SIGHUP);
        uv_signal_init(&loop, &d.sig_usr1);
        d.sig_usr1.data = &d;
        uv_signal_start(&d.sig_usr1, on_sigusr1, SIGUSR1);
        uv_timer_init(&loop, &d.watchdog);
        uv_timer_init(&loop, &d.counters_timer);
        d.counters_timer.data = &d;
        notify_status(&d, "Connecting to %s", broker);
        /* Like zos, which finishes New() before serving: requests wait in
         * Redis until the gateway namespace has settled (gwns.c resumes). */
        proto_bus_pause(d.bus);
        proto_bus_start(d.bus);
        if (gw_acme_tokens_new(&d.tokens) < 0) {
                log_error("Out of memory");
                goto finish;
        }
        if (gw_manager_apply_dns(&d) < 0 || gw_revalidator_start(&d) < 0 ||
            gw_accesslog_start(&d) < 0 || gw_proxy_start(&d) < 0 || gw_ns_start(&d) < 0 ||
            gw_dnsd_start(&d) < 0 || gw_acme_start(&d) < 0) {
                daemon_stop(&d, "start-up failed");
                uv_run(&loop, UV_RUN_DEFAULT);
                goto finish;
        }
        /* Serves once the gateway namespace is ready (at once when it is
         * not managed). */
        gw_proxy_apply(&d);
        gw_prom_apply(&d);
        d.exit_code = 0;
        uv_timer_start(&d.counters_timer, on_counters_timer, COUNTERS_SAVE_MS, COUNTERS_SAVE_MS);
        if (sd_watchdog_enabled(0, &d.watchdog_usec) > 0 && d.watchdog_usec > 0)
                uv_timer_start(&d.watchdog, on_watchdog, d.watchdog_usec / 2000,
                               d.watchdog_usec / 2000);
        log_info("gatewayd %s starting: broker %s, state %s, config %s", GATEWAYD_VERSION, broker,
                 root, config);

        uv_run(&loop, UV_RUN_DEFAULT);

finish:
        d.bus = proto_bus_free(d.bus);
        r = uv_loop_close(&loop);
        if (r < 0)
                log_debug_errno(r, "Event loop not clean at exit: %m");
        gw_acme_free(&d);
        gw_dnsd_free(&d);
        gw_proxy_free(&d);
        gw_accesslog_stop(&d); /* after every engine: nothing pushes any more */
        d.tokens = gw_acme_tokens_free(d.tokens);
        wl_registry_free(d.reg);
        gw_state_free(d.state);
        for (size_t i = 0; i < d.n_corrupt_ids; i++)
                free(d.corrupt_ids[i]);
        free(d.corrupt_ids);
        gw_config_done(&d.cfg);
        d.reload_cfg = config_free(d.reload_cfg); /* stopped during its check */
        gw_health_done(&d.health);
        wl_public_config_done(&d.pc_cache);
        log_info("Stopped");
        return d.exit_code;
}
