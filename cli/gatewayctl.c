/* SPDX-License-Identifier: Apache-2.0 */

/* gatewayctl: the operator's tool for gatewayd. It talks zbus exactly as
 * the node OS does (proto/bus-sync.h), so anything it can do, provisiond
 * can do too, and vice versa. See docs/gatewayctl.md. */

#include <assert.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/mp-json.h"
#include "cli/table.h"
#include "common/macros.h"
#include "common/strbuf.h"
#include "gw-commit.h"
#include "gw-version.h"
#include "proto/bus-sync.h"
#include "proto/codec.h"
#include "proto/mp-read.h"

#define DEFAULT_BROKER     "unix:///var/run/redis.sock"
#define DEFAULT_TIMEOUT_MS 10000u
/* Info() while every worker is busy: wait no longer than zbusdebug does
 * for the status object (§1.3), the call would only queue behind them. */
#define BUSY_INFO_TIMEOUT_MS 3000u
#define MAX_TIMEOUT_S        86400.0

#define GW_MODULE         "gateway"
#define GW_OBJECT         "manager"
#define GW_VERSION        "0.0.1"
#define GW_QUEUE          GW_MODULE "." GW_OBJECT "@" GW_VERSION
#define GW_STATUS_OBJECT  "zbus"
#define GW_STATUS_VERSION "1.0"
#define GW_STATUS_QUEUE   GW_MODULE "." GW_STATUS_OBJECT "@" GW_STATUS_VERSION

enum {
        CTL_EXIT_OK = 0,
        CTL_EXIT_DAEMON = 1,    /* the daemon answered with an error */
        CTL_EXIT_USAGE = 2,     /* bad command line */
        CTL_EXIT_TRANSPORT = 3, /* broker unreachable, no reply in time, invalid reply */
};

enum {
        ARG_BROKER = 0x100,
        ARG_JSON,
        ARG_TIMEOUT,
        ARG_VERSION,
        ARG_PASSTHROUGH,
        ARG_NETWORK,
};

struct ctl {
        const char *broker;
        bool json;
        unsigned timeout_ms;
        struct proto_sync_client *client; /* connected on first use */
};

/* A string inside a reply buffer (not NUL-terminated). */
struct slice {
        const char *p;
        size_t n;
        bool set; /* present and not nil */
};

static inline void proto_response_donep(struct proto_response *r)
{
        proto_response_done(r);
}

static inline void proto_str_donep(struct proto_str *s)
{
        proto_str_done(s);
}

/* ======================================================================
 * Help texts
 * ====================================================================== */

#define COMMON_HELP                                                                                \
        "\nCommon options (accepted before or after the command):\n"                               \
        "      --broker URL   Redis broker: unix:///PATH or tcp://[PASSWORD@]HOST:PORT\n"          \
        "                     (default: $GATEWAYCTL_BROKER, else " DEFAULT_BROKER ")\n"            \
        "      --json         Print the reply as JSON on stdout, errors as {\"error\": ...}\n"     \
        "      --timeout SEC  Seconds to wait for a reply (default: 10)\n"                         \
        "  -h, --help         Show help\n"                                                         \
        "      --version      Show the version\n"

static const char main_help[] =
        "Usage: gatewayctl [OPTIONS] COMMAND [ARGS...]\n"
        "\n"
        "Operate gatewayd, the node's web gateway, over zbus (Redis). Requests go to\n"
        "the queue " GW_QUEUE ", the way the node OS sends them.\n"
        "\n"
        "Commands:\n"
        "  deploy name WLID NAME BACKEND...  Expose NAME.<node domain>; prints the FQDN\n"
        "  deploy fqdn WLID FQDN BACKEND...  Expose a domain the user owns\n"
        "  delete WLID                       Remove a proxy (name or FQDN)\n"
        "  list                              List the proxies\n"
        "  show WLID                         Show one proxy\n"
        "  metrics                           Show traffic counters per workload\n"
        "  status                            Show the bus workers and the daemon state\n"
        "  certs                             Show the managed certificates (ACME)\n"
        "  reload                            Reload the daemon's configuration file\n"
        "  help [COMMAND]                    Show help for a command\n" COMMON_HELP "\n"
        "Exit status: 0 success, 1 the daemon returned an error, 2 usage error,\n"
        "3 broker unreachable, no reply in time or an invalid reply.\n";

static const char deploy_help[] =
        "Usage: gatewayctl deploy name WLID NAME BACKEND... [--passthrough] [--network NAME]\n"
        "       gatewayctl deploy fqdn WLID FQDN BACKEND... [--passthrough] [--network NAME]\n"
        "\n"
        "Create the proxy of workload WLID (<twin>-<deployment>-<name>, e.g.\n"
        "37-1976-myapp): SetNamedProxy or SetFQDNProxy.\n"
        "\n"
        "  name  serves NAME.<node domain>; prints the FQDN the daemon assigned.\n"
        "        The name contract must be reserved by the workload's twin.\n"
        "  fqdn  serves FQDN, whose DNS must point at the node's public IP.\n"
        "\n"
        "BACKEND is http://IP[:PORT] (TLS is terminated on the gateway) or, with\n"
        "--passthrough, IP:PORT (TLS goes to the backend untouched, routed by SNI).\n"
        "\n"
        "Options:\n"
        "      --passthrough  Forward TLS to the backends instead of terminating it\n"
        "      --network NAME Reach the backends over the user's private network NAME\n" COMMON_HELP;

static const char delete_help[] = "Usage: gatewayctl delete WLID\n"
                                  "\n"
                                  "Remove the proxy of workload WLID, name or FQDN\n"
                                  "(DeleteNamedProxy). Unknown IDs succeed.\n" COMMON_HELP;

static const char list_help[] =
        "Usage: gatewayctl list\n"
        "\n"
        "List every proxy (ListProxies) as a table: ID, KIND, FQDN, MODE (terminate or\n"
        "passthrough), BACKENDS, REQ BYTES, RESP BYTES.\n" COMMON_HELP;

static const char show_help[] = "Usage: gatewayctl show WLID\n"
                                "\n"
                                "Show the proxy of workload WLID (GetProxy), one \"key: value\"\n"
                                "per line.\n" COMMON_HELP;

static const char metrics_help[] =
        "Usage: gatewayctl metrics\n"
        "\n"
        "Show the bytes of HTTP requests and responses per workload (Metrics), as the\n"
        "node OS collects them for billing. TLS passthrough proxies have no counters.\n"
        "\"-\" means the workload is absent from that map.\n" COMMON_HELP;

static const char certs_help[] =
        "Usage: gatewayctl certs\n"
        "\n"
        "List the certificates gatewayd manages (ListCertificates): one per FQDN\n"
        "workload that terminates TLS (HTTP-01) and one wildcard per gateway domain\n"
        "(DNS-01). Columns: NAME, CHALLENGE, STATE (self-signed: none issued yet,\n"
        "pending: first order running, valid, renewing, failed: the last order failed\n"
        "and the next attempt is scheduled), ISSUER, NOT AFTER, NEXT (the next order or\n"
        "renewal check), WORKLOADS, and the last error with its time. Times are UTC.\n" COMMON_HELP;

static const char status_help[] =
        "Usage: gatewayctl status\n"
        "\n"
        "Ask the zbus status object (" GW_STATUS_QUEUE ") for the registered objects and\n"
        "what each worker is doing, then ask the manager for its state (Info). If the\n"
        "manager does not answer in time because its worker is busy, the status part is\n"
        "still printed and the manager is reported busy (exit status 0).\n" COMMON_HELP;

static const char reload_help[] =
        "Usage: gatewayctl reload\n"
        "\n"
        "Make gatewayd read its configuration file again, as SIGHUP (systemctl reload)\n"
        "does, and wait for the outcome (Reload): prints the file's path when the new\n"
        "configuration is applied; when it is refused, prints why (every error of the\n"
        "file, one per line) and exits with status 1, and the running configuration\n"
        "stays. A reload already under way read the file before the call came: the\n"
        "answer is that of the next one.\n" COMMON_HELP;

/* ======================================================================
 * Output
 * ====================================================================== */

static int usage_error(const char *fmt, ...) _printf_(1, 2);
static int usage_error(const char *fmt, ...)
{
        va_list ap;

        fputs("gatewayctl: ", stderr);
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputs("\nTry 'gatewayctl --help' for more information.\n", stderr);
        return CTL_EXIT_USAGE;
}

static void print_json_error(const char *msg, size_t n)
{
        _cleanup_strbuf_ struct strbuf b = STRBUF_INIT;

        if (strbuf_puts(&b, "{\"error\": ") < 0 || cli_json_put_string(&b, msg, n) < 0 ||
            strbuf_puts(&b, "}\n") < 0) {
                fputs("{\"error\": \"out of memory\"}\n", stdout);
                return;
        }
        fwrite(b.data, 1, b.len, stdout);
}

/* A failure of the tool itself: "gatewayctl: <msg>" on stderr, or
 * {"error": "<msg>"} on stdout with --json. Returns @code. */
static int fail(const struct ctl *ctl, int code, const char *fmt, ...) _printf_(3, 4);
static int fail(const struct ctl *ctl, int code, const char *fmt, ...)
{
        _cleanup_free_ char *msg = NULL;
        va_list ap;
        int k;

        va_start(ap, fmt);
        k = vasprintf(&msg, fmt, ap);
        va_end(ap);
        if (k < 0) {
                msg = NULL;
                fputs("gatewayctl: out of memory\n", stderr);
                return code;
        }
        if (ctl->json)
                print_json_error(msg, strlen(msg));
        else
                fprintf(stderr, "gatewayctl: %s\n", msg);
        return code;
}

/* An error text from the daemon, printed verbatim (it can span lines:
 * multierror texts do). Returns CTL_EXIT_DAEMON. */
static int daemon_error(const struct ctl *ctl, const struct proto_str *msg)
{
        static const char empty[] = "the daemon returned an empty protocol error";
        const char *s = msg->n > 0 ? msg->s : empty;
        size_t n = msg->n > 0 ? msg->n : strlen(empty);

        if (ctl->json) {
                print_json_error(s, n);
        } else {
                fwrite(s, 1, n, stderr);
                if (s[n - 1] != '\n')
                        fputc('\n', stderr);
        }
        return CTL_EXIT_DAEMON;
}

static int emit(const struct ctl *ctl, const struct strbuf *b)
{
        if (b->len > 0)
                fwrite(b->data, 1, b->len, stdout);
        if (fflush(stdout) != 0 || ferror(stdout))
                return fail(ctl, CTL_EXIT_TRANSPORT, "could not write output: %m");
        return CTL_EXIT_OK;
}

static int oom(const struct ctl *ctl)
{
        return fail(ctl, CTL_EXIT_TRANSPORT, "out of memory");
}

/* Append remote text for a terminal: control characters become '?'. */
static int put_sanitized(struct strbuf *b, const char *s, size_t n)
{
        _cleanup_free_ char *c = cli_sanitize(s, n);

        if (!c)
                return -ENOMEM;
        return strbuf_append(b, c, n);
}

static int put_slice(struct strbuf *b, const struct slice *s)
{
        if (!s->set || s->n == 0)
                return strbuf_putc(b, '-');
        return put_sanitized(b, s->p, s->n);
}

/* Byte counters are float64 on the wire (Prometheus sums): print whole
 * numbers without a fraction. */
static int put_bytes(struct strbuf *b, double v)
{
        if (isfinite(v) && v == floor(v) && fabs(v) < 9007199254740992.0)
                return strbuf_printf(b, "%.0f", v);
        return cli_put_double(b, v);
}

/* ======================================================================
 * Calls
 * ====================================================================== */

/* Call @method; returns 0 with @ret filled, or a -errno with *reterr. */
static int call_raw(struct ctl *ctl, const char *object, const char *version, const char *method,
                    const struct proto_str *inputs, size_t n_inputs, unsigned timeout_ms,
                    struct proto_response *ret, char **reterr)
{
        int r;

        if (!ctl->client) {
                r = proto_sync_client_new(ctl->broker, &ctl->client, reterr);
                if (r == -EINVAL) /* only a malformed broker URL */
                        return r;
                if (r < 0)
                        return r;
        }
        return proto_sync_call(ctl->client, GW_MODULE, object, version, method, inputs, n_inputs,
                               timeout_ms, ret, reterr);
}

static int report_call_error(const struct ctl *ctl, const char *queue, unsigned timeout_ms, int r,
                             const char *err)
{
        if (r == -EINVAL)
                return usage_error("%s", err ? err : "invalid broker URL");
        if (r == -ETIMEDOUT)
                return fail(ctl, CTL_EXIT_TRANSPORT,
                            "no reply from %s within %gs: is gatewayd running?%s%s%s", queue,
                            timeout_ms / 1000.0, err ? " (" : "", strempty(err), err ? ")" : "");
        if (err)
                return fail(ctl, CTL_EXIT_TRANSPORT, "%s", err);
        return fail(ctl, CTL_EXIT_TRANSPORT, "call to %s failed: %s", queue, strerror(-r));
}

/* Call a manager method. Returns CTL_EXIT_OK with @ret filled and free of
 * errors, or an exit code after printing why. */
static int call_manager(struct ctl *ctl, const char *method, const struct proto_str *inputs,
                        size_t n_inputs, struct proto_response *ret)
{
        _cleanup_free_ char *err = NULL;
        int r;

        r = call_raw(ctl, GW_OBJECT, GW_VERSION, method, inputs, n_inputs, ctl->timeout_ms, ret,
                     &err);
        if (r < 0)
                return report_call_error(ctl, GW_QUEUE, ctl->timeout_ms, r, err);
        /* A top-level Error is a protocol failure (unknown method, bad
         * arguments); Output.Error the method's own. The Go stubs ignore
         * an empty Message, and so do we (§2.4). */
        if (ret->has_protocol_error)
                return daemon_error(ctl, &ret->protocol_error);
        if (ret->has_error && ret->error.n > 0)
                return daemon_error(ctl, &ret->error);
        return CTL_EXIT_OK;
}

static int invalid_reply(const struct ctl *ctl, const char *method, int r)
{
        if (r == -ENOMEM)
                return oom(ctl);
        return fail(ctl, CTL_EXIT_TRANSPORT, "invalid reply to %s(): %s", method,
                    r == -EDOM ? "unexpected value type" : "malformed msgpack");
}

/* Print Data as JSON (null when absent), pretty, with a final newline. */
static int emit_data_json(const struct ctl *ctl, const char *method,
                          const struct proto_response *resp, const char *if_nil)
{
        _cleanup_strbuf_ struct strbuf b = STRBUF_INIT;
        enum mp_type t = MP_NIL;
        int r;

        if (resp->has_data) {
                struct mp_reader rd;

                mp_reader_init(&rd, resp->data.s, resp->data.n);
                if (mp_peek_type(&rd, &t) < 0)
                        return invalid_reply(ctl, method, -EBADMSG);
        }
        r = resp->has_data ? cli_mp_to_json(&b, resp->data.s, resp->data.n, true) : 0;
        if (r >= 0 && t == MP_NIL) {
                strbuf_reset(&b);
                r = strbuf_puts(&b, if_nil);
        }
        if (r < 0)
                return invalid_reply(ctl, method, r);
        if (strbuf_putc(&b, '\n') < 0)
                return oom(ctl);
        return emit(ctl, &b);
}

/* Encode one argument document into @ret (owned). */
static int arg_str(struct proto_str *ret, const char *s)
{
        _cleanup_strbuf_ struct strbuf b = STRBUF_INIT;
        int r;

        r = proto_encode_str(&b, s);
        if (r < 0)
                return r;
        ret->n = b.len;
        ret->s = strbuf_steal(&b);
        return ret->s ? 0 : -ENOMEM;
}

/* ======================================================================
 * Reply decoding helpers (mp-read with Go's decoder rules, §2.2)
 * ====================================================================== */

static int read_slice(struct mp_reader *r, struct slice *ret)
{
        bool nil;
        int k = mp_read_strlike(r, &ret->p, &ret->n, &nil);

        if (k < 0)
                return k;
        ret->set = !nil;
        return 0;
}

/* A time field: ext -1 (what Go sends), an RFC3339 string (also accepted
 * by Go's decoder) or nil. Renders into @buf ("-" when nil). */
static int read_time(struct mp_reader *r, char *buf, size_t size)
{
        enum mp_type t;
        int64_t sec;
        uint32_t nsec;
        int k;

        k = mp_peek_type(r, &t);
        if (k < 0)
                return k;
        if (t == MP_STR || t == MP_BIN || t == MP_NIL) {
                struct slice s;
                _cleanup_free_ char *c = NULL;

                k = read_slice(r, &s);
                if (k < 0)
                        return k;
                if (!s.set || s.n == 0) {
                        snprintf(buf, size, "-");
                        return 0;
                }
                c = cli_sanitize(s.p, s.n);
                if (!c)
                        return -ENOMEM;
                snprintf(buf, size, "%s", c);
                return 0;
        }
        k = mp_read_timestamp(r, &sec, &nsec);
        if (k < 0)
                return k;
        if (cli_format_time(buf, size, sec, nsec, false) < 0)
                snprintf(buf, size, "@%" PRId64, sec);
        return 0;
}

/* Render one scalar for "key: value" output. */
static int put_scalar(struct strbuf *b, struct mp_reader *r)
{
        struct mp_reader save = *r;
        struct mp_value v;
        char buf[64];
        int64_t sec;
        uint32_t nsec;
        int k;

        if (mp_read_timestamp(r, &sec, &nsec) >= 0 &&
            cli_format_time(buf, sizeof(buf), sec, nsec, false) >= 0)
                return strbuf_puts(b, buf);
        *r = save;
        k = mp_read(r, &v);
        if (k < 0)
                return k;
        switch (v.type) {
        case MP_NIL:
                return strbuf_putc(b, '-');
        case MP_BOOL:
                return strbuf_puts(b, v.b ? "yes" : "no");
        case MP_INT:
                return strbuf_printf(b, "%" PRId64, v.i);
        case MP_UINT:
                return strbuf_printf(b, "%" PRIu64, v.u);
        case MP_FLOAT:
                return cli_put_double(b, v.f);
        case MP_STR:
        case MP_BIN:
                if (v.s.n == 0)
                        return strbuf_putc(b, '-');
                return put_sanitized(b, v.s.p, v.s.n);
        default:
                /* Containers and other exts: compact JSON, it is readable. */
                *r = save;
                return cli_mp_item_to_json(b, r, -1);
        }
}

/* ---- ProxyInfo ---- */

struct proxy_info {
        struct slice id, kind, fqdn, name, network;
        bool passthrough;
        struct strbuf backends; /* comma-joined, sanitised */
        size_t n_backends;
        char created[64], updated[64];
        double request_bytes, response_bytes;
        struct strbuf health; /* one line per backend, for show */
        size_t n_health;
};

static void proxy_info_done(struct proxy_info *pi)
{
        strbuf_done(&pi->backends);
        strbuf_done(&pi->health);
}

/* ProxyInfo.BackendHealth[i] */
struct backend_health {
        struct slice backend, last_error;
        bool up;
        char since[64], last_error_time[64];
};

static const char *const backend_health_fields[] = {
        "Backend", "Up", "Since", "LastError", "LastErrorTime",
};

static int on_backend_health_field(int idx, struct mp_reader *r, void *ud)
{
        struct backend_health *h = ud;

        switch (idx) {
        case 0:
                return read_slice(r, &h->backend);
        case 1:
                return mp_read_bool(r, &h->up);
        case 2:
                return read_time(r, h->since, sizeof(h->since));
        case 3:
                return read_slice(r, &h->last_error);
        default:
                return read_time(r, h->last_error_time, sizeof(h->last_error_time));
        }
}

/* "  BACKEND: up|down since TIME, last error TIME: ERROR" per backend. */
static int read_backend_health(struct mp_reader *r, struct proxy_info *pi)
{
        uint32_t count;
        int k;

        k = mp_read_array(r, &count, NULL);
        if (k < 0)
                return k;
        for (uint32_t i = 0; i < count; i++) {
                struct backend_health h = {.since = "-", .last_error_time = "-"};
                bool nil;

                k = mp_read_struct(r, backend_health_fields, ELEMENTSOF(backend_health_fields),
                                   on_backend_health_field, &h, &nil);
                if (k < 0)
                        return k;
                if (nil)
                        continue;
                if ((k = strbuf_puts(&pi->health, "\n  ")) < 0 ||
                    (k = put_sanitized(&pi->health, h.backend.p ? h.backend.p : "", h.backend.n)) <
                            0 ||
                    (k = strbuf_printf(&pi->health, ": %s since %s", h.up ? "up" : "down",
                                       h.since)) < 0)
                        return k;
                if (h.last_error.set && h.last_error.n > 0 &&
                    ((k = strbuf_printf(&pi->health, ", last error %s: ", h.last_error_time)) < 0 ||
                     (k = put_sanitized(&pi->health, h.last_error.p, h.last_error.n)) < 0))
                        return k;
                pi->n_health++;
        }
        return 0;
}

static int read_backends(struct mp_reader *r, struct proxy_info *pi)
{
        uint32_t count;
        int k;

        k = mp_read_array(r, &count, NULL);
        if (k < 0)
                return k;
        for (uint32_t i = 0; i < count; i++) {
                struct slice s;

                k = read_slice(r, &s);
                if (k < 0)
                        return k;
                if (i > 0 && (k = strbuf_putc(&pi->backends, ',')) < 0)
                        return k;
                if ((k = put_sanitized(&pi->backends, s.p ? s.p : "", s.n)) < 0)
                        return k;
                pi->n_backends++;
        }
        return 0;
}

/* ProxyInfo, in the daemon's field order (also read positionally). */
static const char *const proxy_info_fields[] = {
        "ID",      "Kind",    "FQDN",    "Name",         "Backends",      "TLSPassthrough",
        "Network", "Created", "Updated", "RequestBytes", "ResponseBytes", "BackendHealth",
};

static int on_proxy_info_field(int idx, struct mp_reader *r, void *ud)
{
        struct proxy_info *ret = ud;

        switch (idx) {
        case 0:
                return read_slice(r, &ret->id);
        case 1:
                return read_slice(r, &ret->kind);
        case 2:
                return read_slice(r, &ret->fqdn);
        case 3:
                return read_slice(r, &ret->name);
        case 4:
                return read_backends(r, ret);
        case 5:
                return mp_read_bool(r, &ret->passthrough);
        case 6:
                return read_slice(r, &ret->network);
        case 7:
                return read_time(r, ret->created, sizeof(ret->created));
        case 8:
                return read_time(r, ret->updated, sizeof(ret->updated));
        case 9:
                return mp_read_float(r, &ret->request_bytes);
        case 10:
                return mp_read_float(r, &ret->response_bytes);
        default:
                return read_backend_health(r, ret);
        }
}

static int proxy_info_read(struct mp_reader *r, struct proxy_info *ret)
{
        bool nil;
        int k;

        *ret = (struct proxy_info){};
        snprintf(ret->created, sizeof(ret->created), "-");
        snprintf(ret->updated, sizeof(ret->updated), "-");

        k = mp_read_struct(r, proxy_info_fields, ELEMENTSOF(proxy_info_fields), on_proxy_info_field,
                           ret, &nil);
        if (k < 0)
                return k;
        if (nil)
                return -EDOM;
        return 0;
}

static const char *proxy_mode(const struct proxy_info *pi)
{
        return pi->passthrough ? "passthrough" : "terminate";
}

/* ======================================================================
 * Option parsing
 * ====================================================================== */

#define COMMON_OPTIONS                                                                             \
        {"help", no_argument, NULL, 'h'}, {"broker", required_argument, NULL, ARG_BROKER},         \
                {"json", no_argument, NULL, ARG_JSON},                                             \
                {"timeout", required_argument, NULL, ARG_TIMEOUT},                                 \
        {                                                                                          \
                "version", no_argument, NULL, ARG_VERSION                                          \
        }

static int parse_timeout(const char *s, unsigned *ret)
{
        char *end;
        double v;

        errno = 0;
        v = strtod(s, &end);
        if (errno || end == s || *end || !isfinite(v) || v <= 0 || v > MAX_TIMEOUT_S)
                return -EINVAL;
        *ret = (unsigned)llround(v * 1000.0);
        if (*ret == 0)
                *ret = 1;
        return 0;
}

typedef int opt_cb(int c, const char *arg, void *userdata);

/* Parse @argv (argv[0] is the command name) with the common options plus
 * @opts. Returns -1 to go on (optind is the first positional), or an exit
 * code (help and version print and return 0). @stop_at_positional stops at
 * the first non-option (for the global options before the command). */
static int parse_options(struct ctl *ctl, int argc, char **argv, const struct option *opts,
                         bool stop_at_positional, const char *help, opt_cb *cb, void *userdata)
{
        int c, k;

        optind = 0; /* glibc: reinitialise, as each command parses its own argv */
        opterr = 0;
        while ((c = getopt_long(argc, argv, stop_at_positional ? "+:h" : ":h", opts, NULL)) >= 0) {
                switch (c) {
                case 'h':
                        fputs(help, stdout);
                        return CTL_EXIT_OK;
                case ARG_VERSION:
                        printf("gatewayctl %s (commit %s)\n", GATEWAYD_VERSION, GATEWAYD_COMMIT);
                        return CTL_EXIT_OK;
                case ARG_BROKER:
                        ctl->broker = optarg;
                        break;
                case ARG_JSON:
                        ctl->json = true;
                        break;
                case ARG_TIMEOUT:
                        if (parse_timeout(optarg, &ctl->timeout_ms) < 0)
                                return usage_error("invalid --timeout '%s': expected seconds "
                                                   "(> 0, at most %g)",
                                                   optarg, MAX_TIMEOUT_S);
                        break;
                case ':':
                        return usage_error("option '%s' requires an argument", argv[optind - 1]);
                case '?':
                        if (optopt)
                                return usage_error("invalid option -- '%c'", optopt);
                        return usage_error("unrecognized option '%s'", argv[optind - 1]);
                default:
                        assert(cb);
                        k = cb(c, optarg, userdata);
                        if (k >= 0)
                                return k;
                        break;
                }
        }
        return -1;
}

/* ======================================================================
 * Commands
 * ====================================================================== */

static const struct option plain_options[] = {COMMON_OPTIONS, {}};

/* A command that takes no argument and makes one call without inputs:
 * parse its options, call @method into @ret, and with --json print Data
 * (@json_nil when it is nil). Returns -1 when the caller goes on with
 * @ret, else the exit status. */
static int call_no_args(struct ctl *ctl, int argc, char **argv, const char *cmd, const char *help,
                        const char *method, const char *json_nil, struct proto_response *ret)
{
        int k;

        k = parse_options(ctl, argc, argv, plain_options, false, help, NULL, NULL);
        if (k >= 0)
                return k;
        if (argc - optind != 0)
                return usage_error("%s: unexpected argument '%s'", cmd, argv[optind]);
        k = call_manager(ctl, method, NULL, 0, ret);
        if (k != CTL_EXIT_OK)
                return k;
        if (ctl->json)
                return emit_data_json(ctl, method, ret, json_nil);
        return -1;
}

struct deploy_opts {
        bool passthrough;
        const char *network;
};

static int on_deploy_opt(int c, const char *arg, void *userdata)
{
        struct deploy_opts *o = userdata;

        switch (c) {
        case ARG_PASSTHROUGH:
                o->passthrough = true;
                return -1;
        case ARG_NETWORK:
                o->network = arg;
                return -1;
        }
        return usage_error("unexpected option");
}

static int cmd_deploy(struct ctl *ctl, int argc, char **argv)
{
        static const struct option opts[] = {
                COMMON_OPTIONS,
                {"passthrough", no_argument, NULL, ARG_PASSTHROUGH},
                {"network", required_argument, NULL, ARG_NETWORK},
                {},
        };
        _cleanup_(proto_response_donep) struct proto_response resp = {};
        _cleanup_(proto_str_donep) struct proto_str wlid = {};
        _cleanup_strbuf_ struct strbuf cfg = STRBUF_INIT, out = STRBUF_INIT;
        struct deploy_opts o = {};
        const char *kind, *method;
        bool fqdn;
        int k;

        k = parse_options(ctl, argc, argv, opts, false, deploy_help, on_deploy_opt, &o);
        if (k >= 0)
                return k;
        if (argc - optind < 1)
                return usage_error("deploy: expected 'name' or 'fqdn'");
        kind = argv[optind];
        if (streq(kind, "name"))
                fqdn = false;
        else if (streq(kind, "fqdn"))
                fqdn = true;
        else
                return usage_error("deploy: unknown kind '%s': expected 'name' or 'fqdn'", kind);
        if (argc - optind < 4)
                return usage_error("deploy %s: expected WLID %s BACKEND...", kind,
                                   fqdn ? "FQDN" : "NAME");
        method = fqdn ? "SetFQDNProxy" : "SetNamedProxy";

        if (arg_str(&wlid, argv[optind + 1]) < 0 ||
            proto_gw_proxy_encode(&cfg, fqdn, o.passthrough, (const char *const *)argv + optind + 3,
                                  (size_t)(argc - optind - 3), o.network, argv[optind + 2]) < 0)
                return oom(ctl);

        k = call_manager(ctl, method,
                         (const struct proto_str[]){wlid, {.s = cfg.data, .n = cfg.len}}, 2, &resp);
        if (k != CTL_EXIT_OK)
                return k;

        if (!fqdn && resp.has_data) {
                _cleanup_(proto_str_donep) struct proto_str name = {};

                k = proto_decode_str(resp.data.s, resp.data.n, &name);
                if (k < 0)
                        return invalid_reply(ctl, method, k);
                if (ctl->json) {
                        k = strbuf_puts(&out, "{\"fqdn\": ");
                        if (k >= 0)
                                k = cli_json_put_string(&out, name.s, name.n);
                        if (k >= 0)
                                k = strbuf_puts(&out, "}\n");
                } else {
                        k = put_sanitized(&out, name.s, name.n);
                        if (k >= 0)
                                k = strbuf_putc(&out, '\n');
                }
        } else {
                k = ctl->json ? strbuf_puts(&out, "{}\n") : 0;
        }
        if (k < 0)
                return oom(ctl);
        return emit(ctl, &out);
}

static int cmd_delete(struct ctl *ctl, int argc, char **argv)
{
        _cleanup_(proto_response_donep) struct proto_response resp = {};
        _cleanup_(proto_str_donep) struct proto_str wlid = {};
        _cleanup_strbuf_ struct strbuf out = STRBUF_INIT;
        int k;

        k = parse_options(ctl, argc, argv, plain_options, false, delete_help, NULL, NULL);
        if (k >= 0)
                return k;
        if (argc - optind != 1)
                return usage_error("delete: expected exactly one WLID");
        if (arg_str(&wlid, argv[optind]) < 0)
                return oom(ctl);
        k = call_manager(ctl, "DeleteNamedProxy", &wlid, 1, &resp);
        if (k != CTL_EXIT_OK)
                return k;
        if (ctl->json && strbuf_puts(&out, "{}\n") < 0)
                return oom(ctl);
        return emit(ctl, &out);
}

static int cmd_list(struct ctl *ctl, int argc, char **argv)
{
        static const char *const headers[] = {"ID",       "KIND",      "FQDN",      "MODE",
                                              "BACKENDS", "REQ BYTES", "RESP BYTES"};
        _cleanup_(proto_response_donep) struct proto_response resp = {};
        _cleanup_(cli_table_freep) struct cli_table *t = NULL;
        _cleanup_strbuf_ struct strbuf out = STRBUF_INIT;
        struct mp_reader r;
        uint32_t count = 0;
        int k;

        /* A Go nil slice arrives as nil: scripts get [] either way. */
        k = call_no_args(ctl, argc, argv, "list", list_help, "ListProxies", "[]", &resp);
        if (k >= 0)
                return k;

        t = cli_table_new(headers, ELEMENTSOF(headers), 1u << 5 | 1u << 6);
        if (!t)
                return oom(ctl);
        if (resp.has_data) {
                mp_reader_init(&r, resp.data.s, resp.data.n);
                k = mp_read_array(&r, &count, NULL);
                if (k < 0)
                        return invalid_reply(ctl, "ListProxies", k);
        }
        for (uint32_t i = 0; i < count; i++) {
                _cleanup_strbuf_ struct strbuf id = STRBUF_INIT, kind = STRBUF_INIT,
                                               fqdn = STRBUF_INIT, req = STRBUF_INIT,
                                               rsp = STRBUF_INIT;
                struct proxy_info pi;

                k = proxy_info_read(&r, &pi);
                if (k < 0) {
                        proxy_info_done(&pi);
                        return invalid_reply(ctl, "ListProxies", k);
                }
                if (put_slice(&id, &pi.id) < 0 || put_slice(&kind, &pi.kind) < 0 ||
                    put_slice(&fqdn, &pi.fqdn) < 0 || put_bytes(&req, pi.request_bytes) < 0 ||
                    put_bytes(&rsp, pi.response_bytes) < 0 ||
                    cli_table_add_row(t, (const char *const[]){id.data, kind.data, fqdn.data,
                                                               proxy_mode(&pi), pi.backends.data,
                                                               req.data, rsp.data}) < 0) {
                        proxy_info_done(&pi);
                        return oom(ctl);
                }
                proxy_info_done(&pi);
        }
        if (resp.has_data && mp_remaining(&r) != 0)
                return invalid_reply(ctl, "ListProxies", -EBADMSG);
        k = cli_table_print(t, stdout);
        if (k == -ENOMEM)
                return oom(ctl);
        return emit(ctl, &out);
}

/* ---- ListCertificates ---- */

struct cert_info {
        struct slice name, challenge, state, issuer, last_error;
        int64_t not_after, next_attempt, last_error_time;
        uint64_t workloads;
};

static const char *const cert_info_fields[] = {
        "Name",     "Names",   "Challenge",   "State",     "Issuer",        "NotBefore",
        "NotAfter", "RenewAt", "NextAttempt", "LastError", "LastErrorTime", "Workloads",
};

static int on_cert_info_field(int idx, struct mp_reader *r, void *ud)
{
        struct cert_info *ci = ud;
        int64_t ignored;

        switch (idx) {
        case 0:
                return read_slice(r, &ci->name);
        case 1:
                return mp_skip(r); /* the names are in Name; --json shows them */
        case 2:
                return read_slice(r, &ci->challenge);
        case 3:
                return read_slice(r, &ci->state);
        case 4:
                return read_slice(r, &ci->issuer);
        case 6:
                return mp_read_int64(r, &ci->not_after);
        case 8:
                return mp_read_int64(r, &ci->next_attempt);
        case 9:
                return read_slice(r, &ci->last_error);
        case 10:
                return mp_read_int64(r, &ci->last_error_time);
        case 11:
                return mp_read_uint64(r, &ci->workloads);
        default:
                return mp_read_int64(r, &ignored);
        }
}

/* Unix seconds as "YYYY-MM-DD HH:MM" UTC, "-" for 0. */
static int put_unix_time(struct strbuf *b, int64_t t)
{
        time_t tt = (time_t)t;
        char buf[32];
        struct tm tm;

        if (t <= 0 || !gmtime_r(&tt, &tm) || !strftime(buf, sizeof(buf), "%Y-%m-%d %H:%M", &tm))
                return strbuf_putc(b, '-');
        return strbuf_puts(b, buf);
}

static int cmd_certs(struct ctl *ctl, int argc, char **argv)
{
        static const char *const headers[] = {"NAME",      "CHALLENGE", "STATE",     "ISSUER",
                                              "NOT AFTER", "NEXT",      "WORKLOADS", "LAST ERROR"};
        _cleanup_(proto_response_donep) struct proto_response resp = {};
        _cleanup_(cli_table_freep) struct cli_table *t = NULL;
        _cleanup_strbuf_ struct strbuf out = STRBUF_INIT;
        struct mp_reader r;
        uint32_t count = 0;
        int k;

        k = call_no_args(ctl, argc, argv, "certs", certs_help, "ListCertificates", "[]", &resp);
        if (k >= 0)
                return k;

        t = cli_table_new(headers, ELEMENTSOF(headers), 1u << 6);
        if (!t)
                return oom(ctl);
        if (resp.has_data) {
                mp_reader_init(&r, resp.data.s, resp.data.n);
                k = mp_read_array(&r, &count, NULL);
                if (k < 0)
                        return invalid_reply(ctl, "ListCertificates", k);
        }
        for (uint32_t i = 0; i < count; i++) {
                _cleanup_strbuf_ struct strbuf name = STRBUF_INIT, ch = STRBUF_INIT,
                                               state = STRBUF_INIT, issuer = STRBUF_INIT,
                                               na = STRBUF_INIT, next = STRBUF_INIT,
                                               wl = STRBUF_INIT, err = STRBUF_INIT;
                struct cert_info ci = {};
                bool nil;

                k = mp_read_struct(&r, cert_info_fields, ELEMENTSOF(cert_info_fields),
                                   on_cert_info_field, &ci, &nil);
                if (k >= 0 && nil)
                        k = -EDOM;
                if (k < 0)
                        return invalid_reply(ctl, "ListCertificates", k);
                k = put_slice(&name, &ci.name);
                if (k >= 0)
                        k = put_slice(&ch, &ci.challenge);
                if (k >= 0)
                        k = put_slice(&state, &ci.state);
                if (k >= 0)
                        k = put_slice(&issuer, &ci.issuer);
                if (k >= 0)
                        k = put_unix_time(&na, ci.not_after);
                if (k >= 0)
                        k = put_unix_time(&next, ci.next_attempt);
                if (k >= 0)
                        k = strbuf_printf(&wl, "%" PRIu64, ci.workloads);
                if (k >= 0 && ci.last_error.set && ci.last_error.n > 0) {
                        k = put_unix_time(&err, ci.last_error_time);
                        if (k >= 0)
                                k = strbuf_puts(&err, " ");
                        if (k >= 0)
                                k = put_slice(&err, &ci.last_error);
                } else if (k >= 0) {
                        k = strbuf_putc(&err, '-');
                }
                if (k < 0 ||
                    cli_table_add_row(t, (const char *const[]){name.data, ch.data, state.data,
                                                               issuer.data, na.data, next.data,
                                                               wl.data, err.data}) < 0)
                        return oom(ctl);
        }
        if (resp.has_data && mp_remaining(&r) != 0)
                return invalid_reply(ctl, "ListCertificates", -EBADMSG);
        k = cli_table_print(t, stdout);
        if (k == -ENOMEM)
                return oom(ctl);
        return emit(ctl, &out);
}

static int cmd_show(struct ctl *ctl, int argc, char **argv)
{
        _cleanup_(proto_response_donep) struct proto_response resp = {};
        _cleanup_(proto_str_donep) struct proto_str wlid = {};
        _cleanup_(proxy_info_done) struct proxy_info pi = {};
        _cleanup_strbuf_ struct strbuf out = STRBUF_INIT;
        struct mp_reader r;
        int k;

        k = parse_options(ctl, argc, argv, plain_options, false, show_help, NULL, NULL);
        if (k >= 0)
                return k;
        if (argc - optind != 1)
                return usage_error("show: expected exactly one WLID");
        if (arg_str(&wlid, argv[optind]) < 0)
                return oom(ctl);
        k = call_manager(ctl, "GetProxy", &wlid, 1, &resp);
        if (k != CTL_EXIT_OK)
                return k;
        if (ctl->json)
                return emit_data_json(ctl, "GetProxy", &resp, "null");

        if (!resp.has_data)
                return invalid_reply(ctl, "GetProxy", -EDOM);
        mp_reader_init(&r, resp.data.s, resp.data.n);
        k = proxy_info_read(&r, &pi);
        if (k >= 0 && mp_remaining(&r) != 0)
                k = -EBADMSG;
        if (k < 0)
                return invalid_reply(ctl, "GetProxy", k);

        if (strbuf_puts(&out, "id: ") < 0 || put_slice(&out, &pi.id) < 0 ||
            strbuf_puts(&out, "\nkind: ") < 0 || put_slice(&out, &pi.kind) < 0 ||
            strbuf_puts(&out, "\nfqdn: ") < 0 || put_slice(&out, &pi.fqdn) < 0 ||
            strbuf_puts(&out, "\nname: ") < 0 || put_slice(&out, &pi.name) < 0 ||
            strbuf_printf(&out, "\nmode: %s\nbackends: %s\nnetwork: ", proxy_mode(&pi),
                          pi.n_backends > 0 ? pi.backends.data : "-") < 0 ||
            put_slice(&out, &pi.network) < 0 ||
            strbuf_printf(&out, "\ncreated: %s\nupdated: %s\nrequest bytes: ", pi.created,
                          pi.updated) < 0 ||
            put_bytes(&out, pi.request_bytes) < 0 || strbuf_puts(&out, "\nresponse bytes: ") < 0 ||
            put_bytes(&out, pi.response_bytes) < 0 ||
            strbuf_printf(&out, "\nbackend health:%s", pi.n_health > 0 ? pi.health.data : " -") <
                    0 ||
            strbuf_putc(&out, '\n') < 0)
                return oom(ctl);
        return emit(ctl, &out);
}

/* ---- metrics ---- */

struct metric_row {
        char *id;
        bool has_req, has_resp;
        double req, resp;
};

struct metric_rows {
        struct metric_row *rows;
        size_t n, cap;
};

static void metric_rows_done(struct metric_rows *m)
{
        for (size_t i = 0; i < m->n; i++)
                free(m->rows[i].id);
        free(m->rows);
}

static int on_metric(int which, const char *id, size_t id_len, double v, void *userdata)
{
        struct metric_rows *m = userdata;
        struct metric_row *row = NULL;

        /* Linear search: one row per workload on this node, a few hundred
         * at most. */
        for (size_t i = 0; i < m->n && !row; i++)
                if (strlen(m->rows[i].id) == id_len && memcmp(m->rows[i].id, id, id_len) == 0)
                        row = &m->rows[i];
        if (!row) {
                if (m->n == m->cap) {
                        size_t cap = MAX(m->cap * 2, (size_t)16);
                        struct metric_row *p = reallocarray(m->rows, cap, sizeof(*p));

                        if (!p)
                                return -ENOMEM;
                        m->rows = p;
                        m->cap = cap;
                }
                row = &m->rows[m->n];
                *row = (struct metric_row){.id = cli_sanitize(id, id_len)};
                if (!row->id)
                        return -ENOMEM;
                m->n++;
        }
        if (which == 0) {
                row->has_req = true;
                row->req += v;
        } else {
                row->has_resp = true;
                row->resp += v;
        }
        return 0;
}

static int metric_row_cmp(const void *a, const void *b)
{
        return strcmp(((const struct metric_row *)a)->id, ((const struct metric_row *)b)->id);
}

static int cmd_metrics(struct ctl *ctl, int argc, char **argv)
{
        static const char *const headers[] = {"ID", "REQUEST BYTES", "RESPONSE BYTES"};
        _cleanup_(proto_response_donep) struct proto_response resp = {};
        _cleanup_(metric_rows_done) struct metric_rows m = {};
        _cleanup_(cli_table_freep) struct cli_table *t = NULL;
        int k;

        k = call_no_args(ctl, argc, argv, "metrics", metrics_help, "Metrics", "null", &resp);
        if (k >= 0)
                return k;

        if (resp.has_data) {
                k = proto_metrics_decode(resp.data.s, resp.data.n, on_metric, &m);
                if (k < 0)
                        return invalid_reply(ctl, "Metrics", k);
        }
        if (m.n > 0)
                qsort(m.rows, m.n, sizeof(*m.rows), metric_row_cmp);
        t = cli_table_new(headers, ELEMENTSOF(headers), 1u << 1 | 1u << 2);
        if (!t)
                return oom(ctl);
        for (size_t i = 0; i < m.n; i++) {
                _cleanup_strbuf_ struct strbuf req = STRBUF_INIT, rsp = STRBUF_INIT;
                const struct metric_row *row = &m.rows[i];

                if ((row->has_req && put_bytes(&req, row->req) < 0) ||
                    (row->has_resp && put_bytes(&rsp, row->resp) < 0) ||
                    cli_table_add_row(t, (const char *const[]){row->id, req.data, rsp.data}) < 0)
                        return oom(ctl);
        }
        k = cli_table_print(t, stdout);
        if (k == -ENOMEM)
                return oom(ctl);
        return emit(ctl, &(struct strbuf){});
}

/* ---- status ---- */

struct status_text {
        struct strbuf objects; /* "manager@0.0.1, ..." */
        struct strbuf workers; /* one line per worker */
        unsigned n_workers, n_free;
};

static void status_text_done(struct status_text *s)
{
        strbuf_done(&s->objects);
        strbuf_done(&s->workers);
}

static const char *const object_id_fields[] = {"Name", "Version"};

static int on_object_id_field(int idx, struct mp_reader *r, void *ud)
{
        struct slice *name_version = ud;

        return read_slice(r, &name_version[idx]);
}

static int read_object_id(struct mp_reader *r, struct strbuf *out)
{
        struct slice nv[2] = {}, name, version;
        int k;

        k = mp_read_struct(r, object_id_fields, 2, on_object_id_field, nv, NULL);
        if (k < 0)
                return k;
        name = nv[0];
        version = nv[1];
        if (out->len > 0 && (k = strbuf_puts(out, ", ")) < 0)
                return k;
        if ((k = put_sanitized(out, strempty(name.p), name.n)) < 0)
                return k;
        /* ObjectID.String(): no "@" for an empty version. */
        if (version.n > 0 &&
            ((k = strbuf_putc(out, '@')) < 0 || (k = put_sanitized(out, version.p, version.n)) < 0))
                return k;
        return 0;
}

static const char *const worker_fields[] = {"State", "StartTime", "Action"};

struct worker_text {
        struct slice state, action;
        char since[64];
};

static int on_worker_field(int idx, struct mp_reader *r, void *ud)
{
        struct worker_text *w = ud;

        if (idx == 1)
                return read_time(r, w->since, sizeof(w->since));
        return read_slice(r, idx == 0 ? &w->state : &w->action);
}

static int read_worker(struct mp_reader *r, struct status_text *st)
{
        struct worker_text w = {.since = "-"};
        int k;

        k = mp_read_struct(r, worker_fields, ELEMENTSOF(worker_fields), on_worker_field, &w, NULL);
        if (k < 0)
                return k;
        if (w.state.n == 4 && memcmp(w.state.p, "free", 4) == 0)
                st->n_free++;
        if ((k = strbuf_printf(&st->workers, "worker %u: ", st->n_workers++)) < 0 ||
            (k = put_slice(&st->workers, &w.state)) < 0 ||
            (k = strbuf_printf(&st->workers, " since %s", w.since)) < 0)
                return k;
        if (w.action.n > 0 && ((k = strbuf_putc(&st->workers, ' ')) < 0 ||
                               (k = put_sanitized(&st->workers, w.action.p, w.action.n)) < 0))
                return k;
        return strbuf_putc(&st->workers, '\n');
}

static int status_read(const void *p, size_t n, struct status_text *st)
{
        struct mp_reader r;
        uint32_t count, items;
        int k;

        mp_reader_init(&r, p, n);
        k = mp_read_map(&r, &count, NULL);
        if (k < 0)
                return k;
        for (uint32_t i = 0; i < count; i++) {
                const char *kp;
                size_t kn;
                bool objects;

                k = mp_read_strlike(&r, &kp, &kn, NULL);
                if (k < 0)
                        return k;
                objects = mp_str_is(kp, kn, "Objects");
                if (!objects && !mp_str_is(kp, kn, "Workers")) {
                        k = mp_skip(&r);
                        if (k < 0)
                                return k;
                        continue;
                }
                k = mp_read_array(&r, &items, NULL);
                if (k < 0)
                        return k;
                for (uint32_t j = 0; j < items; j++) {
                        k = objects ? read_object_id(&r, &st->objects) : read_worker(&r, st);
                        if (k < 0)
                                return k;
                }
        }
        return mp_remaining(&r) == 0 ? 0 : -EBADMSG;
}

/* Info() labels for the human output; other keys print as sent. */
static const struct {
        const char *key, *label;
} info_labels[] = {
        {"Version", "version"},
        {"Commit", "commit"},
        {"Enabled", "enabled"},
        {"Domain", "domain"},
        {"Workloads", "workloads"},
        {"PublicConfig", "public config"},
        {"PublicIPv4", "public ipv4"},
        {"PublicIPv6", "public ipv6"},
        {"NameValidation", "name validation"},
        {"Bus", "bus"},
};

/* ---- Info's "Health" (daemon/health.c) ---- */

/* One checked component: the namespace, an overlay, a listener, the bus. */
struct health_part {
        struct slice name, where, error;
        bool has_wanted, wanted, has_ok, ok;
        char since[64]; /* "-" when never */
};

static bool key_is_any(const char *p, size_t n, const char *const *keys)
{
        for (; *keys; keys++)
                if (mp_str_is(p, n, *keys))
                        return true;
        return false;
}

static int health_part_read(struct mp_reader *r, struct health_part *ret)
{
        static const char *const wanted_keys[] = {"Managed", "Configured", NULL};
        static const char *const ok_keys[] = {"Ready", "Bound", "Connected", "Up", NULL};
        static const char *const where_keys[] = {"Path", "Address", "Broker", NULL};
        uint32_t count;
        int k;

        *ret = (struct health_part){.since = "-"};
        k = mp_read_map(r, &count, NULL);
        for (uint32_t i = 0; i < count && k >= 0; i++) {
                const char *kp;
                size_t kn;

                k = mp_read_key(r, &kp, &kn);
                if (k < 0)
                        break;
                if (mp_str_is(kp, kn, "Name")) {
                        k = read_slice(r, &ret->name);
                } else if (key_is_any(kp, kn, wanted_keys)) {
                        k = mp_read_bool(r, &ret->wanted);
                        ret->has_wanted = true;
                } else if (key_is_any(kp, kn, ok_keys)) {
                        k = mp_read_bool(r, &ret->ok);
                        ret->has_ok = true;
                } else if (key_is_any(kp, kn, where_keys)) {
                        k = read_slice(r, &ret->where);
                } else if (mp_str_is(kp, kn, "Error")) {
                        k = read_slice(r, &ret->error);
                } else if (mp_str_is(kp, kn, "Since")) {
                        k = read_time(r, ret->since, sizeof(ret->since));
                } else {
                        k = mp_skip(r);
                }
        }
        return k;
}

/* "<label>: <state>[ since <time>][: <error>][ (<where>)]" */
static int health_part_put(struct strbuf *out, const char *label, const struct slice *name,
                           const struct health_part *h, const char *ok_text, const char *bad_text,
                           const char *unwanted_text)
{
        int k;

        k = strbuf_puts(out, label);
        if (k >= 0 && name && name->set && (k = strbuf_putc(out, ' ')) >= 0)
                k = put_sanitized(out, name->p, name->n);
        if (k >= 0)
                k = strbuf_puts(out, ": ");
        if (k >= 0 && h->has_wanted && !h->wanted)
                return strbuf_printf(out, "%s\n", unwanted_text);
        if (k >= 0)
                k = strbuf_puts(out, h->ok ? ok_text : bad_text);
        if (k >= 0 && !streq(h->since, "-"))
                k = strbuf_printf(out, " since %s", h->since);
        if (k >= 0 && !h->ok && h->error.set && h->error.n > 0 && (k = strbuf_puts(out, ": ")) >= 0)
                k = put_sanitized(out, h->error.p, h->error.n);
        if (k >= 0 && h->where.set && h->where.n > 0 && (k = strbuf_puts(out, " (")) >= 0 &&
            (k = put_sanitized(out, h->where.p, h->where.n)) >= 0)
                k = strbuf_putc(out, ')');
        if (k >= 0)
                k = strbuf_putc(out, '\n');
        return k;
}

static int health_reload_put(struct mp_reader *r, struct strbuf *out)
{
        struct slice result = {}, error = {};
        char t[64] = "-";
        uint32_t count;
        int k;

        k = mp_read_map(r, &count, NULL);
        for (uint32_t i = 0; i < count && k >= 0; i++) {
                const char *kp;
                size_t kn;

                k = mp_read_key(r, &kp, &kn);
                if (k < 0)
                        break;
                if (mp_str_is(kp, kn, "Result"))
                        k = read_slice(r, &result);
                else if (mp_str_is(kp, kn, "Error"))
                        k = read_slice(r, &error);
                else if (mp_str_is(kp, kn, "Time"))
                        k = read_time(r, t, sizeof(t));
                else
                        k = mp_skip(r);
        }
        if (k < 0)
                return k;
        k = strbuf_puts(out, "last reload: ");
        if (k >= 0)
                k = put_slice(out, &result);
        if (k >= 0 && !streq(t, "-"))
                k = strbuf_printf(out, " at %s", t);
        if (k >= 0 && error.set && error.n > 0 && (k = strbuf_puts(out, ": ")) >= 0)
                k = put_sanitized(out, error.p, error.n);
        if (k >= 0)
                k = strbuf_putc(out, '\n');
        return k;
}

/* The Health map as lines of their own: "health: ok", then one line per
 * component. Keys it does not know are printed as sent. */
static int health_render(struct mp_reader *r, struct strbuf *out)
{
        uint32_t count;
        int k;

        k = mp_read_map(r, &count, NULL);
        for (uint32_t i = 0; i < count && k >= 0; i++) {
                struct health_part h;
                const char *kp;
                size_t kn;

                k = mp_read_key(r, &kp, &kn);
                if (k < 0)
                        break;
                if (mp_str_is(kp, kn, "Healthy")) {
                        bool ok;

                        k = mp_read_bool(r, &ok);
                        if (k >= 0)
                                k = strbuf_printf(out, "health: %s\n", ok ? "ok" : "failing");
                } else if (mp_str_is(kp, kn, "Problems")) {
                        k = mp_skip(r); /* the lines below say the same, in place */
                } else if (mp_str_is(kp, kn, "Namespace")) {
                        k = health_part_read(r, &h);
                        if (k >= 0)
                                k = health_part_put(out, "namespace", NULL, &h, "ready",
                                                    "not ready", "not managed");
                } else if (mp_str_is(kp, kn, "Bus")) {
                        k = health_part_read(r, &h);
                        if (k >= 0)
                                k = health_part_put(out, "bus connection", NULL, &h, "connected",
                                                    "not connected", "not configured");
                } else if (mp_str_is(kp, kn, "Listeners")) {
                        uint32_t n;

                        k = mp_read_array(r, &n, NULL);
                        for (uint32_t j = 0; j < n && k >= 0; j++) {
                                k = health_part_read(r, &h);
                                if (k >= 0)
                                        k = health_part_put(out, "listener", &h.name, &h, "bound",
                                                            "not bound", "not configured");
                        }
                } else if (mp_str_is(kp, kn, "Overlays")) {
                        uint32_t n;

                        k = mp_read_array(r, &n, NULL);
                        for (uint32_t j = 0; j < n && k >= 0; j++) {
                                k = health_part_read(r, &h);
                                if (k >= 0)
                                        k = health_part_put(out, "overlay", &h.name, &h, "up",
                                                            "down", "not configured");
                        }
                } else if (mp_str_is(kp, kn, "Reload")) {
                        k = health_reload_put(r, out);
                } else if (mp_str_is(kp, kn, "CorruptStateFiles")) {
                        uint64_t v;

                        k = mp_read_uint64(r, &v);
                        if (k >= 0)
                                k = strbuf_printf(out, "corrupt state files: %" PRIu64 "%s\n", v,
                                                  v ? " (their workloads must be deployed again)"
                                                    : "");
                } else if (mp_str_is(kp, kn, "CorruptWorkloads")) {
                        uint32_t n;

                        k = mp_read_array(r, &n, NULL);
                        for (uint32_t j = 0; j < n && k >= 0; j++) {
                                struct slice id;

                                k = read_slice(r, &id);
                                if (k >= 0)
                                        k = strbuf_puts(out, "corrupt workload: ");
                                if (k >= 0)
                                        k = put_slice(out, &id);
                                if (k >= 0)
                                        k = strbuf_putc(out, '\n');
                        }
                } else {
                        k = put_sanitized(out, kp, kn);
                        if (k >= 0)
                                k = strbuf_puts(out, ": ");
                        if (k >= 0)
                                k = put_scalar(out, r);
                        if (k >= 0)
                                k = strbuf_putc(out, '\n');
                }
        }
        return k;
}

static int info_render(const void *p, size_t n, struct strbuf *out)
{
        struct mp_reader r;
        uint32_t count;
        int k;

        mp_reader_init(&r, p, n);
        k = mp_read_map(&r, &count, NULL);
        if (k < 0)
                return k;
        for (uint32_t i = 0; i < count; i++) {
                const char *kp, *label = NULL;
                size_t kn;

                k = mp_read_strlike(&r, &kp, &kn, NULL);
                if (k < 0)
                        return k;
                if (mp_str_is(kp, kn, "Health")) {
                        enum mp_type t;

                        /* Anything but a map (a newer daemon?) prints as sent. */
                        if (mp_peek_type(&r, &t) >= 0 && t == MP_MAP) {
                                k = health_render(&r, out);
                                if (k < 0)
                                        return k;
                                continue;
                        }
                }
                for (size_t j = 0; j < ELEMENTSOF(info_labels) && !label; j++)
                        if (mp_str_is(kp, kn, info_labels[j].key))
                                label = info_labels[j].label;
                k = label ? strbuf_puts(out, label) : put_sanitized(out, kp, kn);
                if (k >= 0)
                        k = strbuf_puts(out, ": ");
                if (k >= 0)
                        k = put_scalar(out, &r);
                if (k >= 0)
                        k = strbuf_putc(out, '\n');
                if (k < 0)
                        return k;
        }
        return mp_remaining(&r) == 0 ? 0 : -EBADMSG;
}

static int status_emit_json(const struct ctl *ctl, const struct proto_response *status,
                            const struct proto_response *info, const char *info_error)
{
        _cleanup_strbuf_ struct strbuf b = STRBUF_INIT;
        struct mp_reader r;
        int k;

        k = strbuf_puts(&b, "{\n  \"status\": ");
        if (k >= 0 && status->has_data) {
                mp_reader_init(&r, status->data.s, status->data.n);
                k = cli_mp_item_to_json(&b, &r, 1);
                if (k < 0)
                        return invalid_reply(ctl, "status", k);
        } else if (k >= 0) {
                k = strbuf_puts(&b, "null");
        }
        if (k >= 0)
                k = strbuf_puts(&b, ",\n  \"info\": ");
        if (k >= 0 && info && info->has_data) {
                mp_reader_init(&r, info->data.s, info->data.n);
                k = cli_mp_item_to_json(&b, &r, 1);
                if (k < 0)
                        return invalid_reply(ctl, "Info", k);
        } else if (k >= 0) {
                k = strbuf_puts(&b, "null");
        }
        if (k >= 0 && info_error) {
                k = strbuf_puts(&b, ",\n  \"info_error\": ");
                if (k >= 0)
                        k = cli_json_put_string(&b, info_error, strlen(info_error));
        }
        if (k >= 0)
                k = strbuf_puts(&b, "\n}\n");
        if (k < 0)
                return oom(ctl);
        return emit(ctl, &b);
}

static int cmd_status(struct ctl *ctl, int argc, char **argv)
{
        _cleanup_(proto_response_donep) struct proto_response status = {}, info = {};
        _cleanup_(status_text_done) struct status_text st = {};
        _cleanup_strbuf_ struct strbuf out = STRBUF_INIT;
        _cleanup_free_ char *err = NULL, *info_error = NULL;
        const struct proto_str *info_msg = NULL;
        unsigned info_timeout;
        bool have_info = false;
        int k, ret = CTL_EXIT_OK;

        k = parse_options(ctl, argc, argv, plain_options, false, status_help, NULL, NULL);
        if (k >= 0)
                return k;
        if (argc - optind != 0)
                return usage_error("status: unexpected argument '%s'", argv[optind]);

        /* The status object ignores Method and Inputs; the Go client sends
         * "" and [] (§1.3). */
        k = call_raw(ctl, GW_STATUS_OBJECT, GW_STATUS_VERSION, "", NULL, 0, ctl->timeout_ms,
                     &status, &err);
        if (k < 0)
                return report_call_error(ctl, GW_STATUS_QUEUE, ctl->timeout_ms, k, err);
        if (status.has_protocol_error)
                return daemon_error(ctl, &status.protocol_error);
        if (status.has_error && status.error.n > 0)
                return daemon_error(ctl, &status.error);
        if (!status.has_data)
                return invalid_reply(ctl, "status", -EDOM);
        k = status_read(status.data.s, status.data.n, &st);
        if (k < 0)
                return invalid_reply(ctl, "status", k);

        info_timeout = ctl->timeout_ms;
        if (st.n_workers > 0 && st.n_free == 0)
                info_timeout = MIN(info_timeout, BUSY_INFO_TIMEOUT_MS);
        err = mfree(err);
        k = call_raw(ctl, GW_OBJECT, GW_VERSION, "Info", NULL, 0, info_timeout, &info, &err);
        if (k == -ETIMEDOUT) {
                if (asprintf(&info_error, "busy (no reply to Info() within %gs)",
                             info_timeout / 1000.0) < 0)
                        return oom(ctl);
        } else if (k < 0) {
                return report_call_error(ctl, GW_QUEUE, info_timeout, k, err);
        } else if (info.has_protocol_error) {
                info_msg = &info.protocol_error;
        } else if (info.has_error && info.error.n > 0) {
                info_msg = &info.error;
        } else {
                have_info = true;
        }
        if (info_msg) {
                info_error = strndup(info_msg->s, info_msg->n);
                if (!info_error)
                        return oom(ctl);
                ret = CTL_EXIT_DAEMON;
        }

        if (ctl->json) {
                k = status_emit_json(ctl, &status, have_info ? &info : NULL, info_error);
                return k != CTL_EXIT_OK ? k : ret;
        }

        if (strbuf_puts(&out, "objects: ") < 0 ||
            strbuf_puts(&out, st.objects.len > 0 ? st.objects.data : "-") < 0 ||
            strbuf_putc(&out, '\n') < 0 ||
            (st.workers.len > 0 && strbuf_puts(&out, st.workers.data) < 0))
                return oom(ctl);
        if (have_info && info.has_data) {
                k = info_render(info.data.s, info.data.n, &out);
                if (k == -ENOMEM)
                        return oom(ctl);
                if (k < 0) {
                        emit(ctl, &(struct strbuf){});
                        return invalid_reply(ctl, "Info", k);
                }
        } else if (!info_msg && info_error &&
                   strbuf_printf(&out, "manager: %s\n", info_error) < 0) {
                return oom(ctl);
        }
        k = emit(ctl, &out);
        if (k != CTL_EXIT_OK)
                return k;
        if (info_msg)
                return daemon_error(ctl, info_msg);
        return ret;
}

static int cmd_reload(struct ctl *ctl, int argc, char **argv)
{
        _cleanup_(proto_response_donep) struct proto_response resp = {};
        _cleanup_strbuf_ struct strbuf out = STRBUF_INIT;
        const char *p;
        size_t n;
        bool nil;
        struct mp_reader r;
        int k;

        /* A refusal comes back as the method's error: printed verbatim, exit status 1. */
        k = call_no_args(ctl, argc, argv, "reload", reload_help, "Reload", "null", &resp);
        if (k >= 0)
                return k;
        if (!resp.has_data)
                return invalid_reply(ctl, "Reload", -EDOM);
        mp_reader_init(&r, resp.data.s, resp.data.n);
        k = mp_read_strlike(&r, &p, &n, &nil);
        if (k < 0 || nil)
                return invalid_reply(ctl, "Reload", k < 0 ? k : -EDOM);
        if (strbuf_puts(&out, "reloaded ") < 0 || put_sanitized(&out, p, n) < 0 ||
            strbuf_putc(&out, '\n') < 0)
                return oom(ctl);
        return emit(ctl, &out);
}

/* ======================================================================
 * main
 * ====================================================================== */

static const struct command {
        const char *name;
        int (*run)(struct ctl *ctl, int argc, char **argv);
        const char *help;
} commands[] = {
        {"deploy", cmd_deploy, deploy_help},    {"delete", cmd_delete, delete_help},
        {"list", cmd_list, list_help},          {"show", cmd_show, show_help},
        {"metrics", cmd_metrics, metrics_help}, {"status", cmd_status, status_help},
        {"certs", cmd_certs, certs_help},       {"reload", cmd_reload, reload_help},
};

static const struct command *find_command(const char *name)
{
        for (size_t i = 0; i < ELEMENTSOF(commands); i++)
                if (streq(commands[i].name, name))
                        return &commands[i];
        return NULL;
}

static int cmd_help(int argc, char **argv)
{
        const struct command *c;

        if (argc <= 1) {
                fputs(main_help, stdout);
                return CTL_EXIT_OK;
        }
        c = find_command(argv[1]);
        if (!c)
                return usage_error("help: unknown command '%s'", argv[1]);
        fputs(c->help, stdout);
        return CTL_EXIT_OK;
}

int main(int argc, char **argv)
{
        struct ctl ctl = {
                .broker = getenv("GATEWAYCTL_BROKER"),
                .timeout_ms = DEFAULT_TIMEOUT_MS,
        };
        const struct command *c;
        int k;

        if (!ctl.broker || !*ctl.broker)
                ctl.broker = DEFAULT_BROKER;

        k = parse_options(&ctl, argc, argv, plain_options, true, main_help, NULL, NULL);
        if (k >= 0)
                return k;
        if (optind >= argc)
                return usage_error("missing command");
        argc -= optind;
        argv += optind;
        if (streq(argv[0], "help"))
                return cmd_help(argc, argv);
        c = find_command(argv[0]);
        if (!c)
                return usage_error("unknown command '%s'", argv[0]);
        k = c->run(&ctl, argc, argv);
        proto_sync_client_free(ctl.client);
        return k;
}
