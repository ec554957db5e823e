/* SPDX-License-Identifier: Apache-2.0 */
#include "daemon/config.h"

#include <arpa/inet.h>
#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>

#include <ini.h>

#include "common/fileio.h"
#include "common/macros.h"
#include "common/strbuf.h"

/* The node configuration file: a static key table drives inih.
 *
 * inih (Debian r55, built with INI_HANDLER_LINENO=0) does not tell the handler which line it
 * is on, silently splits lines longer than its buffer, and treats an indented line after a key
 * as a continuation of that key's value. We therefore feed it through our own reader, which
 * counts lines, refuses over-long lines and NUL bytes, and classifies each line the same way
 * inih will (see classify_line()), so that every error carries the right line number and a
 * message that names what is wrong.
 *
 * Every error of the file is collected (gatewayd --check-config prints them all), each once, in
 * line order. Parsing goes on after an error; what could only be a consequence of an earlier
 * error is not reported: keys under a section header that was refused, and checks across keys
 * that involve a refused value or that follow a line the parser could not attribute to a key. */

#define CONFIG_FILE_MAX (1024 * 1024) /* bytes; a real file is a few hundred */
/* Errors kept per load: a file of garbage has one per line, and every one of them is a log line
 * on a refused reload. The rest are counted in a last line. */
#define CONFIG_ERRORS_MAX 100

#define MSEC_PER_SEC  UINT64_C(1000)
#define MSEC_PER_MIN  (60 * MSEC_PER_SEC)
#define MSEC_PER_HOUR (60 * MSEC_PER_MIN)
#define MSEC_PER_DAY  (24 * MSEC_PER_HOUR)

struct parse_ctx;
struct config_key;

/* Parse @value into @field (inside the struct gw_config being built). Returns 0, -EINVAL after
 * writing the reason with set_reason(), or -ENOMEM. */
typedef int config_parse_fn(struct parse_ctx *ctx, const struct config_key *k, const char *value,
                            void *field);

struct enum_name {
        const char *name;
        int value;
};

/* One row per key. Adding a key is adding a row (and a field in struct gw_config). */
struct config_key {
        const char *section;
        const char *key;
        config_parse_fn *parse;
        size_t offset;     /* of the field in struct gw_config */
        uint64_t min, max; /* parse_duration_*: milliseconds; parse_size: bytes; parse_uint */
        const struct enum_name *names; /* parse_enum: NULL-terminated */
        bool allow_empty;              /* an empty value is passed to @parse (else an error) */
};

enum line_kind {
        LINE_BLANK,        /* empty or comment */
        LINE_SECTION,      /* "[name]" */
        LINE_KEY,          /* "key = value" */
        LINE_CONTINUATION, /* indented line after a key: inih appends it to that key */
        LINE_BAD,          /* inih will report a syntax error */
};

struct config_error {
        unsigned line; /* 0: about the file as a whole (checks across keys) */
        char *msg;     /* complete message */
};

struct parse_ctx {
        const char *name; /* file name used in messages */
        const char *text; /* the whole file */
        size_t len;
        size_t pos;          /* start of the next line in @text */
        unsigned line;       /* number of the line inih is processing */
        enum line_kind kind; /* of that line */
        bool after_key;      /* mirrors inih's "prev_name is set" */

        struct gw_config c; /* being built */
        unsigned *set_line; /* per config_keys[] row: line that set it, or 0 */
        bool *key_bad;      /* per config_keys[] row: a value of it was refused */
        bool section_bad;   /* the current section header was refused: skip its keys */
        bool unsure;        /* a line was not understood: skip the checks across keys */

        char reason[1024];           /* written by parsers via set_reason() */
        struct config_error *errors; /* every error, in the order found */
        size_t n_errors;             /* at most CONFIG_ERRORS_MAX */
        size_t n_dropped;            /* errors past CONFIG_ERRORS_MAX */
        bool oom;
};

/* ---- value parsers ---------------------------------------------------------------------- */

static int set_reason(struct parse_ctx *ctx, const char *fmt, ...) _printf_(2, 3);
static int set_reason(struct parse_ctx *ctx, const char *fmt, ...)
{
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(ctx->reason, sizeof(ctx->reason), fmt, ap);
        va_end(ap);
        return -EINVAL;
}

/* Replace the string field @s with a copy of the first @n bytes of @value. */
static int set_string(char **s, const char *value, size_t n)
{
        char *copy = strndup(value, n);

        if (!copy)
                return -ENOMEM;
        free(*s);
        *s = copy;
        return 0;
}

static int parse_bool(struct parse_ctx *ctx, const struct config_key *k, const char *value,
                      void *field)
{
        static const char *const yes[] = {"yes", "true", "on", "1"};
        static const char *const no[] = {"no", "false", "off", "0"};
        bool *b = field;

        for (size_t i = 0; i < ELEMENTSOF(yes); i++) {
                if (strcasecmp(value, yes[i]) == 0) {
                        *b = true;
                        return 0;
                }
                if (strcasecmp(value, no[i]) == 0) {
                        *b = false;
                        return 0;
                }
        }
        return set_reason(ctx, "invalid boolean '%s' (expected yes/no, true/false, on/off or 1/0)",
                          value);
}

static int parse_enum(struct parse_ctx *ctx, const struct config_key *k, const char *value,
                      void *field)
{
        char expected[128] = "";
        size_t n = 0;

        assert(k->names);
        for (const struct enum_name *e = k->names; e->name; e++)
                if (strcasecmp(value, e->name) == 0) {
                        *(int *)field = e->value;
                        return 0;
                }

        for (const struct enum_name *e = k->names; e->name; e++, n++)
                ;
        for (size_t i = 0; i < n; i++) {
                size_t l = strlen(expected);

                snprintf(expected + l, sizeof(expected) - l, "%s%s",
                         i == 0 ? "" : (i + 1 == n ? " or " : ", "), k->names[i].name);
        }
        return set_reason(ctx, "invalid value '%s' (expected %s)", value, expected);
}

/* Digits only (no sign, no blanks). Advances *p past them, also when returning -ERANGE, so
 * that the caller can still tell a bad suffix from a big number. */
static int parse_digits(const char **p, uint64_t *ret)
{
        const char *s = *p;
        uint64_t v = 0;
        bool overflow = false;

        if (!isdigit((unsigned char)*s))
                return -EINVAL;
        for (; isdigit((unsigned char)*s); s++) {
                unsigned d = (unsigned)(*s - '0');

                if (v > (UINT64_MAX - d) / 10)
                        overflow = true;
                else
                        v = v * 10 + d;
        }
        *p = s;
        if (overflow)
                return -ERANGE;
        *ret = v;
        return 0;
}

static const char *skip_blanks(const char *s)
{
        while (*s == ' ' || *s == '\t')
                s++;
        return s;
}

/* Parse "<n>[unit]" into milliseconds; @default_unit applies when there is no unit. */
static int duration_from_string(const char *value, uint64_t default_unit, uint64_t *ret_ms)
{
        static const struct {
                const char *suffix;
                uint64_t ms;
        } units[] = {
                {"ms", 1},           {"s", MSEC_PER_SEC}, {"m", MSEC_PER_MIN}, {"h", MSEC_PER_HOUR},
                {"d", MSEC_PER_DAY},
        };
        const char *p = value;
        uint64_t n = 0, unit = default_unit;
        int r;

        r = parse_digits(&p, &n);
        if (r == -EINVAL)
                return r;
        p = skip_blanks(p);
        if (*p) {
                size_t i;

                for (i = 0; i < ELEMENTSOF(units); i++)
                        if (streq(p, units[i].suffix))
                                break;
                if (i == ELEMENTSOF(units))
                        return -EINVAL;
                unit = units[i].ms;
        }
        if (r < 0 || n > UINT64_MAX / unit)
                return -ERANGE;
        *ret_ms = n * unit;
        return 0;
}

/* The largest unit that divides @ms exactly, e.g. "100ms", "10s", "1h". */
static void format_duration(uint64_t ms, char *buf, size_t n)
{
        if (ms && ms % MSEC_PER_DAY == 0)
                snprintf(buf, n, "%" PRIu64 "d", ms / MSEC_PER_DAY);
        else if (ms && ms % MSEC_PER_HOUR == 0)
                snprintf(buf, n, "%" PRIu64 "h", ms / MSEC_PER_HOUR);
        else if (ms && ms % MSEC_PER_MIN == 0)
                snprintf(buf, n, "%" PRIu64 "m", ms / MSEC_PER_MIN);
        else if (ms && ms % MSEC_PER_SEC == 0)
                snprintf(buf, n, "%" PRIu64 "s", ms / MSEC_PER_SEC);
        else
                snprintf(buf, n, "%" PRIu64 "ms", ms);
}

static int parse_duration(struct parse_ctx *ctx, const struct config_key *k, const char *value,
                          uint64_t default_unit, uint64_t *ret_ms)
{
        char lo[32], hi[32];
        uint64_t ms;
        int r;

        format_duration(k->min, lo, sizeof(lo));
        format_duration(k->max, hi, sizeof(hi));
        r = duration_from_string(value, default_unit, &ms);
        if (r == -EINVAL)
                return set_reason(
                        ctx,
                        "invalid duration '%s' (expected a number with an optional unit ms, s, m, h or d)",
                        value);
        if (r < 0 || ms < k->min || ms > k->max)
                return set_reason(ctx, "duration '%s' is out of range (%s to %s)", value, lo, hi);
        *ret_ms = ms;
        return 0;
}

/* A duration stored in seconds; a bare number is seconds. */
static int parse_duration_sec(struct parse_ctx *ctx, const struct config_key *k, const char *value,
                              void *field)
{
        uint64_t ms;
        int r;

        r = parse_duration(ctx, k, value, MSEC_PER_SEC, &ms);
        if (r < 0)
                return r;
        if (ms % MSEC_PER_SEC != 0)
                return set_reason(ctx, "duration '%s' is not a whole number of seconds", value);
        *(unsigned *)field = (unsigned)(ms / MSEC_PER_SEC);
        return 0;
}

/* A duration stored in milliseconds; a bare number is milliseconds. */
static int parse_duration_ms(struct parse_ctx *ctx, const struct config_key *k, const char *value,
                             void *field)
{
        uint64_t ms;
        int r;

        r = parse_duration(ctx, k, value, 1, &ms);
        if (r < 0)
                return r;
        *(unsigned *)field = (unsigned)ms;
        return 0;
}

static void format_size(uint64_t n, char *buf, size_t size)
{
        if (n && n % (1024 * 1024 * 1024) == 0)
                snprintf(buf, size, "%" PRIu64 "G", n / (1024 * 1024 * 1024));
        else if (n && n % (1024 * 1024) == 0)
                snprintf(buf, size, "%" PRIu64 "M", n / (1024 * 1024));
        else if (n && n % 1024 == 0)
                snprintf(buf, size, "%" PRIu64 "K", n / 1024);
        else
                snprintf(buf, size, "%" PRIu64, n);
}

/* Bytes, with an optional binary suffix K, M or G. */
static int parse_size(struct parse_ctx *ctx, const struct config_key *k, const char *value,
                      void *field)
{
        const char *p = value;
        uint64_t n = 0, mult = 1;
        char lo[32], hi[32];
        int r;

        format_size(k->min, lo, sizeof(lo));
        format_size(k->max, hi, sizeof(hi));
        r = parse_digits(&p, &n);
        if (r == -EINVAL)
                goto invalid;
        p = skip_blanks(p);
        if (streq(p, "K"))
                mult = 1024;
        else if (streq(p, "M"))
                mult = 1024 * 1024;
        else if (streq(p, "G"))
                mult = 1024 * 1024 * 1024;
        else if (*p)
                goto invalid;
        if (r < 0 || n > UINT64_MAX / mult || n * mult < k->min || n * mult > k->max)
                return set_reason(ctx, "size '%s' is out of range (%s to %s)", value, lo, hi);
        *(unsigned *)field = (unsigned)(n * mult);
        return 0;
invalid:
        return set_reason(
                ctx,
                "invalid size '%s' (expected a number of bytes with an optional suffix K, M or G)",
                value);
}

/* A gateway domain: RFC 1123 host name syntax, at least two labels, lower case. We refuse
 * upper case instead of folding it: workload FQDNs are built as name + "." + domain without
 * normalisation (as zos does), and the same spelling must be used everywhere. */
static int parse_domain(struct parse_ctx *ctx, const struct config_key *k, const char *value,
                        void *field)
{
        char **s = field;
        size_t len = strlen(value), labels = 0;
        const char *label = value;

        if (len == 0) {
                *s = mfree(*s);
                return 0;
        }
        if (len > WL_NAME_MAX)
                return set_reason(ctx, "invalid domain '%s': longer than %d characters", value,
                                  WL_NAME_MAX);
        for (const char *p = value; *p; p++)
                if (isupper((unsigned char)*p)) {
                        char lower[WL_NAME_MAX + 1];

                        for (size_t i = 0; i <= len; i++)
                                lower[i] = (char)tolower((unsigned char)value[i]);
                        return set_reason(
                                ctx,
                                "invalid domain '%s': upper-case letters are not allowed (write '%s')",
                                value, lower);
                }

        for (;;) {
                size_t n = strcspn(label, ".");
                bool digits_only = true;

                if (n == 0)
                        return set_reason(ctx, "invalid domain '%s': empty label", value);
                if (n > 63)
                        return set_reason(
                                ctx,
                                "invalid domain '%s': label '%.*s' is longer than 63 characters",
                                value, (int)n, label);
                for (size_t i = 0; i < n; i++) {
                        unsigned char c = (unsigned char)label[i];

                        if (!isdigit(c))
                                digits_only = false;
                        if (!(c >= 'a' && c <= 'z') && !isdigit(c) && c != '-') {
                                if (c < 0x20 || c > 0x7e)
                                        return set_reason(
                                                ctx,
                                                "invalid domain '%s': byte 0x%02x is not allowed (use a-z, 0-9 and '-')",
                                                value, c);
                                return set_reason(
                                        ctx,
                                        "invalid domain '%s': character '%c' is not allowed (use a-z, 0-9 and '-')",
                                        value, c);
                        }
                }
                if (label[0] == '-' || label[n - 1] == '-')
                        return set_reason(
                                ctx, "invalid domain '%s': label '%.*s' starts or ends with '-'",
                                value, (int)n, label);
                labels++;
                if (label[n] == '\0') {
                        /* RFC 1123 §2.1: the top-level label is alphabetic, which also
                         * keeps IPv4 addresses out. */
                        if (digits_only)
                                return set_reason(
                                        ctx, "invalid domain '%s': the last label is all digits",
                                        value);
                        break;
                }
                label += n + 1;
        }
        if (labels < 2)
                return set_reason(
                        ctx,
                        "invalid domain '%s': needs at least two labels (like gw1.example.net)",
                        value);

        return set_string(s, value, strlen(value));
}

/* Decimal prefix length 0..@max, no sign or blanks. */
static int prefix_from_string(const char *s, unsigned max, uint8_t *ret)
{
        uint64_t v;
        int r;

        if (strlen(s) > 3)
                return -EINVAL;
        r = parse_digits(&s, &v);
        if (r < 0 || *s || v > max)
                return -EINVAL;
        *ret = (uint8_t)v;
        return 0;
}

union in_any {
        struct in_addr v4;
        struct in6_addr v6;
        uint8_t bytes[16];
};

static bool in4_is_usable(const struct in_addr *a)
{
        uint32_t h = ntohl(a->s_addr);

        /* 0/8 "this network", 127/8 loopback, 224/4 multicast, 240/4 reserved + broadcast. */
        return (h >> 24) != 0 && (h >> 24) != 127 && (h >> 28) < 14;
}

static bool in6_is_usable(const struct in6_addr *a, bool allow_link_local)
{
        if (IN6_IS_ADDR_UNSPECIFIED(a) || IN6_IS_ADDR_LOOPBACK(a) || IN6_IS_ADDR_MULTICAST(a) ||
            IN6_IS_ADDR_V4MAPPED(a))
                return false;
        return allow_link_local || !IN6_IS_ADDR_LINKLOCAL(a);
}

/* "address/prefix". Rejects a missing prefix, unusable addresses, and the subnet's own
 * network (or IPv4 broadcast) address, a common slip for the node's address. */
static int parse_cidr(struct parse_ctx *ctx, int family, const char *value, void *ret_addr,
                      uint8_t *ret_prefix)
{
        const char *what = family == AF_INET ? "IPv4" : "IPv6";
        unsigned bits = family == AF_INET ? 32 : 128;
        char host[INET6_ADDRSTRLEN], net[INET6_ADDRSTRLEN];
        const char *slash = strchr(value, '/');
        union in_any addr, net_addr;
        uint8_t prefix;
        size_t alen = family == AF_INET ? 4 : 16;
        bool all_zero = true, all_one = true;

        if (!slash)
                return set_reason(ctx, "invalid %s address/prefix '%s': missing '/<prefix length>'",
                                  what, value);
        if ((size_t)(slash - value) >= sizeof(host))
                goto bad_address;
        memcpy(host, value, (size_t)(slash - value));
        host[slash - value] = '\0';
        if (inet_pton(family, host, &addr) != 1)
                goto bad_address;
        if (prefix_from_string(slash + 1, bits, &prefix) < 0)
                return set_reason(
                        ctx,
                        "invalid %s address/prefix '%s': prefix length must be a number from 0 to %u",
                        what, value, bits);
        if (family == AF_INET ? !in4_is_usable(&addr.v4) : !in6_is_usable(&addr.v6, false))
                return set_reason(ctx, "invalid %s address/prefix '%s': %s is not a usable %s",
                                  what, value, host,
                                  family == AF_INET ? "unicast address" : "global unicast address");

        /* Host part all zeros (or all ones for IPv4) when the subnet has room for hosts. */
        for (unsigned i = 0; i < alen * 8; i++) {
                bool bit = addr.bytes[i / 8] & (0x80 >> (i % 8));

                if (i < prefix)
                        continue;
                if (bit)
                        all_zero = false;
                else
                        all_one = false;
        }
        net_addr = addr;
        for (unsigned i = prefix; i < alen * 8; i++)
                net_addr.bytes[i / 8] &= (uint8_t) ~(0x80 >> (i % 8));
        inet_ntop(family, &net_addr, net, sizeof(net));
        if (prefix + 1u < bits && all_zero)
                return set_reason(
                        ctx,
                        "invalid %s address/prefix '%s': that is the subnet address of %s/%u, not an address of this node",
                        what, value, net, prefix);
        if (family == AF_INET && prefix + 1u < bits && all_one)
                return set_reason(
                        ctx,
                        "invalid %s address/prefix '%s': that is the broadcast address of %s/%u",
                        what, value, net, prefix);

        memcpy(ret_addr, &addr, alen);
        *ret_prefix = prefix;
        return 0;
bad_address:
        return set_reason(ctx, "invalid %s address/prefix '%s': '%.*s' is not an %s address", what,
                          value, (int)(slash - value), value, what);
}

static int parse_pc_ipv4(struct parse_ctx *ctx, const struct config_key *k, const char *value,
                         void *field)
{
        struct wl_public_config *pc = field;
        int r;

        r = parse_cidr(ctx, AF_INET, value, &pc->ipv4, &pc->ipv4_prefix);
        if (r < 0)
                return r;
        pc->has_ipv4 = true;
        return 0;
}

static int parse_pc_ipv6(struct parse_ctx *ctx, const struct config_key *k, const char *value,
                         void *field)
{
        struct wl_public_config *pc = field;
        int r;

        r = parse_cidr(ctx, AF_INET6, value, &pc->ipv6, &pc->ipv6_prefix);
        if (r < 0)
                return r;
        pc->has_ipv6 = true;
        return 0;
}

static int parse_pc_gw4(struct parse_ctx *ctx, const struct config_key *k, const char *value,
                        void *field)
{
        struct wl_public_config *pc = field;
        struct in_addr a;

        if (inet_pton(AF_INET, value, &a) != 1)
                return set_reason(ctx, "invalid IPv4 address '%s'", value);
        if (!in4_is_usable(&a))
                return set_reason(ctx, "%s is not a usable unicast address", value);
        pc->gw4 = a;
        pc->has_gw4 = true;
        return 0;
}

/* A link-local router address (fe80::1) is the usual IPv6 default gateway, so it is allowed. */
static int parse_pc_gw6(struct parse_ctx *ctx, const struct config_key *k, const char *value,
                        void *field)
{
        struct wl_public_config *pc = field;
        struct in6_addr a;

        if (inet_pton(AF_INET6, value, &a) != 1)
                return set_reason(ctx, "invalid IPv6 address '%s'", value);
        if (!in6_is_usable(&a, true))
                return set_reason(ctx, "%s is not a usable unicast address", value);
        pc->gw6 = a;
        pc->has_gw6 = true;
        return 0;
}

/* "IPv4", "IPv4:port", "IPv6", "[IPv6]" or "[IPv6]:port"; the port defaults to 53. Host names
 * are refused: looking them up would need the resolver we are configuring. Stored normalised
 * as "IPv4:port" or "[IPv6]:port". */
static int parse_resolver(struct parse_ctx *ctx, const struct config_key *k, const char *value,
                          void *field)
{
        char host[INET6_ADDRSTRLEN + 1], text[INET6_ADDRSTRLEN], buf[INET6_ADDRSTRLEN + 16];
        const char *port = NULL, *rb;
        union in_any addr;
        uint64_t portnum = 53;
        int family;
        char **s = field;
        size_t n;

        if (value[0] == '[') {
                rb = strchr(value, ']');
                if (!rb)
                        goto invalid;
                n = (size_t)(rb - value - 1);
                if (rb[1] == ':')
                        port = rb + 2;
                else if (rb[1] != '\0')
                        goto invalid;
                family = AF_INET6;
                if (n >= sizeof(host))
                        goto invalid;
                memcpy(host, value + 1, n);
        } else {
                const char *colon = strchr(value, ':');

                if (colon && strchr(colon + 1, ':')) {
                        /* Two or more colons: a bare IPv6 address. */
                        family = AF_INET6;
                        n = strlen(value);
                } else {
                        family = AF_INET;
                        n = colon ? (size_t)(colon - value) : strlen(value);
                        if (colon)
                                port = colon + 1;
                }
                if (n >= sizeof(host))
                        goto invalid;
                memcpy(host, value, n);
        }
        host[n] = '\0';
        if (inet_pton(family, host, &addr) != 1)
                goto invalid;
        /* Loopback is fine here: a local caching resolver (127.0.0.53, ::1). */
        if (family == AF_INET
                    ? !in4_is_usable(&addr.v4) && addr.bytes[0] != 127
                    : IN6_IS_ADDR_UNSPECIFIED(&addr.v6) || IN6_IS_ADDR_MULTICAST(&addr.v6))
                return set_reason(ctx, "invalid resolver '%s': %s is not a usable unicast address",
                                  value, host);
        if (port) {
                const char *p = port;

                if (strlen(port) > 5 || parse_digits(&p, &portnum) < 0 || *p || portnum == 0 ||
                    portnum > 65535)
                        return set_reason(
                                ctx, "invalid resolver '%s': port must be a number from 1 to 65535",
                                value);
        }

        inet_ntop(family, &addr, text, sizeof(text));
        snprintf(buf, sizeof(buf), family == AF_INET ? "%s:%" PRIu64 : "[%s]:%" PRIu64, text,
                 portnum);
        return set_string(s, buf, strlen(buf));
invalid:
        return set_reason(
                ctx,
                "invalid resolver '%s': expected IPv4, IPv4:port, IPv6 or [IPv6]:port (host names are not allowed)",
                value);
}

/* An absolute path, stored without trailing slashes ("/" stays "/"). */
static int parse_abs_path(struct parse_ctx *ctx, const struct config_key *k, const char *value,
                          void *field)
{
        char **s = field;
        size_t n = strlen(value);

        if (value[0] != '/')
                return set_reason(ctx, "'%s' is not an absolute path", value);
        while (n > 1 && value[n - 1] == '/')
                n--;
        return set_string(s, value, n);
}

/* An https:// URL of printable ASCII with a host (RFC 8555 §6.1: ACME is HTTPS only). */
static int parse_https_url(struct parse_ctx *ctx, const struct config_key *k, const char *value,
                           void *field)
{
        size_t n = strlen(value);

        if (strncasecmp(value, "https://", 8) != 0)
                return set_reason(ctx, "'%s' is not an https:// URL", value);
        if (n > 2048)
                return set_reason(ctx, "URL longer than 2048 bytes");
        for (size_t i = 0; i < n; i++)
                if ((unsigned char)value[i] <= 0x20 || (unsigned char)value[i] >= 0x7f)
                        return set_reason(ctx, "URL with a space or a non-ASCII byte");
        if (n == 8 || value[8] == '/' || value[8] == ':')
                return set_reason(ctx, "'%s' has no host", value);
        return set_string(field, value, n);
}

/* A contact address for the ACME account: local@domain, printable ASCII. */
static int parse_email(struct parse_ctx *ctx, const struct config_key *k, const char *value,
                       void *field)
{
        const char *at = strchr(value, '@');
        size_t n = strlen(value);

        if (!value[0]) {
                *(char **)field = mfree(*(char **)field);
                return 0;
        }
        if (n > 254 || !at || at == value || !at[1] || strchr(at + 1, '@'))
                return set_reason(ctx, "invalid e-mail address '%s'", value);
        for (size_t i = 0; i < n; i++)
                if ((unsigned char)value[i] <= 0x20 || (unsigned char)value[i] >= 0x7f ||
                    strchr("<>()[],;:\\\"", value[i]))
                        return set_reason(ctx, "invalid e-mail address '%s'", value);
        return set_string(field, value, n);
}

/* An absolute path to a file that can be read now (checked at every load, so
 * a reload with a missing file is refused instead of failing later). */
static int parse_readable_file(struct parse_ctx *ctx, const struct config_key *k, const char *value,
                               void *field)
{
        struct stat st;

        if (!value[0]) {
                *(char **)field = mfree(*(char **)field);
                return 0;
        }
        if (value[0] != '/')
                return set_reason(ctx, "'%s' is not an absolute path", value);
        if (stat(value, &st) < 0 || access(value, R_OK) < 0)
                return set_reason(ctx, "cannot read '%s': %s", value, strerror(errno));
        if (!S_ISREG(st.st_mode))
                return set_reason(ctx, "'%s' is not a regular file", value);
        return set_string(field, value, strlen(value));
}

/* An ACME profile name (draft-ietf-acme-profiles): a short token. */
static int parse_profile(struct parse_ctx *ctx, const struct config_key *k, const char *value,
                         void *field)
{
        size_t n = strlen(value);

        if (!value[0]) {
                *(char **)field = mfree(*(char **)field);
                return 0;
        }
        if (n > 64)
                return set_reason(ctx, "profile name longer than 64 bytes");
        for (size_t i = 0; i < n; i++)
                if (!isalnum((unsigned char)value[i]) && !strchr("_.-", value[i]))
                        return set_reason(ctx,
                                          "invalid profile '%s': use letters, digits, '_', '.' "
                                          "and '-'",
                                          value);
        return set_string(field, value, n);
}

/* A namespace name: what iproute2 accepts as a file name under /run/netns, kept simple. */
static int parse_ns_name(struct parse_ctx *ctx, const struct config_key *k, const char *value,
                         void *field)
{
        char **s = field;
        size_t n = strlen(value);

        if (n == 0 || n > 63)
                return set_reason(ctx, "namespace name must be 1 to 63 characters");
        for (size_t i = 0; i < n; i++)
                if (!isalnum((unsigned char)value[i]) && !strchr("_.-", value[i]))
                        return set_reason(
                                ctx,
                                "invalid namespace name '%s': use letters, digits, '_', '.' and '-'",
                                value);
        if (value[0] == '.')
                return set_reason(ctx, "invalid namespace name '%s': must not start with '.'",
                                  value);
        return set_string(s, value, strlen(value));
}

/* "veth:<host-side name>", "macvlan:<parent>" or "move:<ifname>"; interface names as the
 * kernel takes them (1-15 bytes, no '/', ':' or whitespace). */
static int parse_link_spec(struct parse_ctx *ctx, const struct config_key *k, const char *value,
                           void *field)
{
        static const char *const kinds[] = {"veth:", "macvlan:", "move:"};
        char **s = field;
        const char *name = NULL;
        size_t n;

        for (size_t i = 0; i < ELEMENTSOF(kinds); i++)
                if (strncmp(value, kinds[i], strlen(kinds[i])) == 0)
                        name = value + strlen(kinds[i]);
        if (!name)
                return set_reason(
                        ctx,
                        "invalid link '%s': expected veth:<name>, macvlan:<parent> or move:<ifname>",
                        value);
        n = strlen(name);
        if (n == 0 || n > 15)
                return set_reason(ctx, "invalid link '%s': interface names are 1 to 15 characters",
                                  value);
        for (size_t i = 0; i < n; i++)
                if (name[i] == '/' || name[i] == ':' || isspace((unsigned char)name[i]))
                        return set_reason(
                                ctx, "invalid link '%s': '%c' is not allowed in an interface name",
                                value, name[i]);
        if (streq(name, ".") || streq(name, ".."))
                return set_reason(ctx, "invalid link '%s'", value);
        return set_string(s, value, strlen(value));
}

const struct gw_overlay_info gw_overlays[_GW_OVERLAY_MAX] = {
        /* Node addresses 200::/8, their routed subnets 300::/8. */
        [GW_OVERLAY_YGG] = {"ygg", "Yggdrasil", "200::/7", {.s6_addr = {0x02}}, 7, true},
        /* Node addresses and subnets in 400::/7 (zos networkd). */
        [GW_OVERLAY_MYCELIUM] = {"mycelium", "Mycelium", "400::/7", {.s6_addr = {0x04}}, 7, false},
};

static bool in6_in_overlay(const struct in6_addr *a, const struct gw_overlay_info *o)
{
        unsigned bytes = o->prefixlen / 8, bits = o->prefixlen % 8;

        if (memcmp(a->s6_addr, o->prefix.s6_addr, bytes) != 0)
                return false;
        return !bits || ((a->s6_addr[bytes] ^ o->prefix.s6_addr[bytes]) &
                         (uint8_t)(0xff << (8 - bits))) == 0;
}

/* @field is one of ctx->c.overlays: which overlay a key belongs to. */
static const struct gw_overlay_info *overlay_of(struct parse_ctx *ctx, const void *field)
{
        return &gw_overlays[(const struct gw_overlay_config *)field - ctx->c.overlays];
}

static int parse_overlay_address(struct parse_ctx *ctx, const struct config_key *k,
                                 const char *value, void *field)
{
        const struct gw_overlay_info *info = overlay_of(ctx, field);
        struct gw_overlay_config *o = field;
        int r;

        r = parse_cidr(ctx, AF_INET6, value, &o->address, &o->prefix);
        if (r < 0)
                return r;
        if (!in6_in_overlay(&o->address, info))
                return set_reason(ctx, "'%s' is not a %s address (%s)", value, info->title,
                                  info->prefix_str);
        o->has_address = true;
        return 0;
}

static int parse_overlay_router(struct parse_ctx *ctx, const struct config_key *k,
                                const char *value, void *field)
{
        const struct gw_overlay_info *info = overlay_of(ctx, field);
        struct gw_overlay_config *o = field;
        struct in6_addr a;

        if (inet_pton(AF_INET6, value, &a) != 1)
                return set_reason(ctx, "invalid IPv6 address '%s'", value);
        if (!in6_in_overlay(&a, info) && !IN6_IS_ADDR_LINKLOCAL(&a))
                return set_reason(ctx, "'%s' is neither a %s (%s) nor a link-local address", value,
                                  info->title, info->prefix_str);
        o->router = a;
        o->has_router = true;
        return 0;
}

/* A decimal number in [k->min, k->max]. */
static int parse_number(struct parse_ctx *ctx, const struct config_key *k, const char *value,
                        uint64_t *ret)
{
        const char *p = value;
        uint64_t n = 0;
        int r;

        r = parse_digits(&p, &n);
        if (r == -EINVAL || *p)
                return set_reason(ctx, "invalid number '%s' (expected %" PRIu64 " to %" PRIu64 ")",
                                  value, k->min, k->max);
        if (r < 0 || n < k->min || n > k->max)
                return set_reason(ctx, "%s is out of range (%" PRIu64 " to %" PRIu64 ")", value,
                                  k->min, k->max);
        *ret = n;
        return 0;
}

static int parse_uint(struct parse_ctx *ctx, const struct config_key *k, const char *value,
                      void *field)
{
        uint64_t n;
        int r;

        assert(k->max <= UINT_MAX);
        r = parse_number(ctx, k, value, &n);
        if (r < 0)
                return r;
        *(unsigned *)field = (unsigned)n;
        return 0;
}

/* A TCP port; 0 means "no listener". */
static int parse_port(struct parse_ctx *ctx, const struct config_key *k, const char *value,
                      void *field)
{
        uint64_t n;
        int r;

        assert(k->max <= UINT16_MAX);
        r = parse_number(ctx, k, value, &n);
        if (r < 0)
                return r;
        *(uint16_t *)field = (uint16_t)n;
        return 0;
}

const char *gw_sockaddr_to_string(const struct sockaddr *sa, char *buf, size_t size)
{
        char text[INET6_ADDRSTRLEN] = "?";
        unsigned port = 0;

        if (sa->sa_family == AF_INET) {
                const struct sockaddr_in *in = (const struct sockaddr_in *)sa;

                inet_ntop(AF_INET, &in->sin_addr, text, sizeof(text));
                port = ntohs(in->sin_port);
                if (port)
                        snprintf(buf, size, "%s:%u", text, port);
                else
                        snprintf(buf, size, "%s", text);
        } else if (sa->sa_family == AF_INET6) {
                const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;

                inet_ntop(AF_INET6, &in6->sin6_addr, text, sizeof(text));
                port = ntohs(in6->sin6_port);
                if (port)
                        snprintf(buf, size, "[%s]:%u", text, port);
                else
                        snprintf(buf, size, "%s", text);
        } else {
                snprintf(buf, size, "?");
        }
        return buf;
}

/* An IP literal (no port, no brackets, no zone) into a sockaddr with port 0. */
static int ip_to_sockaddr(const char *host, struct sockaddr_storage *ss, socklen_t *ret_len)
{
        struct sockaddr_in *in = (struct sockaddr_in *)ss;
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;

        memset(ss, 0, sizeof(*ss));
        if (inet_pton(AF_INET, host, &in->sin_addr) == 1) {
                in->sin_family = AF_INET;
                *ret_len = sizeof(*in);
                return 0;
        }
        if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
                in6->sin6_family = AF_INET6;
                *ret_len = sizeof(*in6);
                return 0;
        }
        return -EINVAL;
}

static bool sockaddr_is_multicast(const struct sockaddr_storage *ss)
{
        if (ss->ss_family == AF_INET)
                return (ntohl(((const struct sockaddr_in *)ss)->sin_addr.s_addr) >> 28) == 14;
        return IN6_IS_ADDR_MULTICAST(&((const struct sockaddr_in6 *)ss)->sin6_addr);
}

/* [proxy] address: an IPv4 or IPv6 literal to listen on ("::" = every address, both
 * families). */
static int parse_listen_address(struct parse_ctx *ctx, const struct config_key *k,
                                const char *value, void *field)
{
        struct gw_config *c = field;
        struct sockaddr_storage ss;
        socklen_t len;

        if (ip_to_sockaddr(value, &ss, &len) < 0)
                return set_reason(
                        ctx,
                        "invalid address '%s' (expected an IPv4 or IPv6 address such as 0.0.0.0, :: or 203.0.113.10, without port or brackets)",
                        value);
        if (sockaddr_is_multicast(&ss))
                return set_reason(ctx, "%s is a multicast address", value);
        c->proxy_address = ss;
        c->proxy_address_len = len;
        return 0;
}

/* [metrics] listen: "IPv4:port" or "[IPv6]:port"; empty = off. */
static int parse_metrics_listen(struct parse_ctx *ctx, const struct config_key *k,
                                const char *value, void *field)
{
        struct gw_config *c = field;
        char host[INET6_ADDRSTRLEN + 1];
        const char *port, *p;
        struct sockaddr_storage ss;
        socklen_t len;
        uint64_t n = 0;
        size_t hl;

        if (!value[0]) {
                memset(&c->metrics_listen, 0, sizeof(c->metrics_listen));
                c->metrics_listen_len = 0;
                return 0;
        }
        if (value[0] == '[') {
                const char *rb = strchr(value, ']');

                if (!rb || rb[1] != ':')
                        goto invalid;
                hl = (size_t)(rb - value - 1);
                if (hl >= sizeof(host))
                        goto invalid;
                memcpy(host, value + 1, hl);
                host[hl] = 0;
                port = rb + 2;
                if (ip_to_sockaddr(host, &ss, &len) < 0 || ss.ss_family != AF_INET6)
                        goto invalid;
        } else {
                const char *colon = strchr(value, ':');

                if (!colon || strchr(colon + 1, ':'))
                        goto invalid;
                hl = (size_t)(colon - value);
                if (hl >= sizeof(host))
                        goto invalid;
                memcpy(host, value, hl);
                host[hl] = 0;
                port = colon + 1;
                if (ip_to_sockaddr(host, &ss, &len) < 0 || ss.ss_family != AF_INET)
                        goto invalid;
        }
        p = port;
        if (strlen(port) > 5 || parse_digits(&p, &n) < 0 || *p || n == 0 || n > 65535)
                return set_reason(
                        ctx, "invalid listen address '%s': port must be a number from 1 to 65535",
                        value);
        if (sockaddr_is_multicast(&ss))
                return set_reason(ctx, "invalid listen address '%s': %s is a multicast address",
                                  value, host);
        if (ss.ss_family == AF_INET)
                ((struct sockaddr_in *)&ss)->sin_port = htons((uint16_t)n);
        else
                ((struct sockaddr_in6 *)&ss)->sin6_port = htons((uint16_t)n);
        c->metrics_listen = ss;
        c->metrics_listen_len = len;
        return 0;
invalid:
        return set_reason(
                ctx,
                "invalid listen address '%s' (expected IPv4:port or [IPv6]:port, or empty for off)",
                value);
}

/* [log] access: empty (off), "stderr", "journal", or an absolute path whose directory exists
 * and that is not a directory itself. Opening it is the daemon's business (an open that fails
 * is logged and the log stays where it was). */
static int parse_access_log(struct parse_ctx *ctx, const struct config_key *k, const char *value,
                            void *field)
{
        char **s = field, dir[PATH_MAX];
        const char *slash;
        struct stat st;
        size_t n = strlen(value);

        if (!value[0]) {
                *s = mfree(*s);
                return 0;
        }
        if (strcasecmp(value, "stderr") == 0)
                return set_string(s, "stderr", 6);
        if (strcasecmp(value, "journal") == 0)
                return set_string(s, "journal", 7);
        if (value[0] != '/')
                return set_reason(ctx, "'%s' is neither stderr, journal nor an absolute path",
                                  value);
        if (n >= sizeof(dir))
                return set_reason(ctx, "path longer than %zu bytes", sizeof(dir) - 1);
        if (value[n - 1] == '/' || (stat(value, &st) == 0 && S_ISDIR(st.st_mode)))
                return set_reason(ctx, "'%s' is a directory", value);
        slash = strrchr(value, '/');
        n = slash == value ? 1 : (size_t)(slash - value); /* "/x": the root */
        memcpy(dir, value, n);
        dir[n] = 0;
        if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode))
                return set_reason(ctx, "directory '%s' of '%s' does not exist", dir, value);
        return set_string(s, value, strlen(value));
}

/* ---- the key table ---------------------------------------------------------------------- */

static const struct enum_name public_config_names[] = {
        {"file", GW_PUBLIC_CONFIG_FILE},
        {"bus", GW_PUBLIC_CONFIG_BUS},
        {},
};

static const struct enum_name name_validation_names[] = {
        {"bus", GW_NAME_VALIDATION_BUS},
        {"off", GW_NAME_VALIDATION_OFF},
        {},
};

static const struct enum_name log_level_names[] = {
        {"debug", LOG_DEBUG},     {"info", LOG_INFO}, {"notice", LOG_NOTICE},
        {"warning", LOG_WARNING}, {"error", LOG_ERR}, {},
};

/* parse_enum() stores an int. */
_Static_assert(sizeof(enum gw_public_config_source) == sizeof(int), "enum size");
_Static_assert(sizeof(enum gw_name_validation) == sizeof(int), "enum size");

#define OFF(field) offsetof(struct gw_config, field)

static const struct config_key config_keys[] = {
        {"gateway", "enabled", parse_bool, OFF(enabled)},
        {"gateway", "domain", parse_domain, OFF(pc.domain), .allow_empty = true},
        {"gateway", "public_config", parse_enum, OFF(public_config), .names = public_config_names},
        {"gateway", "public_ipv4", parse_pc_ipv4, OFF(pc)},
        {"gateway", "gateway_ipv4", parse_pc_gw4, OFF(pc)},
        {"gateway", "public_ipv6", parse_pc_ipv6, OFF(pc)},
        {"gateway", "gateway_ipv6", parse_pc_gw6, OFF(pc)},

        {"names", "validation", parse_enum, OFF(name_validation), .names = name_validation_names},
        {"names", "revalidate_interval", parse_duration_sec, OFF(revalidate_interval_sec),
         .min = MSEC_PER_SEC, .max = 7 * MSEC_PER_DAY},

        {"dns", "resolver", parse_resolver, OFF(resolver)},
        {"dns", "timeout", parse_duration_ms, OFF(resolver_timeout_ms), .min = 100,
         .max = 5 * MSEC_PER_MIN},
        {"dns", "listen_port", parse_port, OFF(dns_listen_port), .min = 0, .max = 65535},

        {"acme", "enabled", parse_bool, OFF(acme_enabled)},
        {"acme", "directory", parse_https_url, OFF(acme_directory)},
        {"acme", "email", parse_email, OFF(acme_email), .allow_empty = true},
        {"acme", "ca_file", parse_readable_file, OFF(acme_ca_file), .allow_empty = true},
        {"acme", "profile", parse_profile, OFF(acme_profile), .allow_empty = true},

        {"bus", "call_timeout", parse_duration_ms, OFF(call_timeout_ms), .min = 100,
         .max = MSEC_PER_HOUR},
        {"bus", "max_payload", parse_size, OFF(max_payload), .min = 4 * 1024,
         .max = 64 * 1024 * 1024},

        {"namespace", "netns_dir", parse_abs_path, OFF(netns_dir)},
        {"namespace", "name", parse_ns_name, OFF(ns_name)},
        {"namespace", "public_link", parse_link_spec, OFF(ns_public_link)},
        {"namespace", "ygg_link", parse_link_spec, OFF(overlays[GW_OVERLAY_YGG].link)},
        {"namespace", "ygg_address", parse_overlay_address, OFF(overlays[GW_OVERLAY_YGG])},
        {"namespace", "ygg_router", parse_overlay_router, OFF(overlays[GW_OVERLAY_YGG])},
        {"namespace", "mycelium_link", parse_link_spec, OFF(overlays[GW_OVERLAY_MYCELIUM].link)},
        {"namespace", "mycelium_address", parse_overlay_address,
         OFF(overlays[GW_OVERLAY_MYCELIUM])},
        {"namespace", "mycelium_router", parse_overlay_router, OFF(overlays[GW_OVERLAY_MYCELIUM])},

        {"proxy", "http_port", parse_port, OFF(http_port), .min = 0, .max = 65535},
        {"proxy", "https_port", parse_port, OFF(https_port), .min = 0, .max = 65535},
        {"proxy", "workers", parse_uint, OFF(proxy_workers), .min = 0, .max = 1024},
        {"proxy", "address", parse_listen_address, 0},
        {"proxy", "http_plain", parse_bool, OFF(http_plain)},

        {"limits", "handshake_timeout", parse_duration_ms, OFF(limits.handshake_timeout_ms),
         .min = 100, .max = 10 * MSEC_PER_MIN},
        {"limits", "request_head_timeout", parse_duration_ms, OFF(limits.request_head_timeout_ms),
         .min = 100, .max = MSEC_PER_HOUR},
        {"limits", "body_timeout", parse_duration_ms, OFF(limits.body_timeout_ms), .min = 100,
         .max = MSEC_PER_HOUR},
        {"limits", "body_min_rate", parse_size, OFF(limits.body_min_rate), .min = 0,
         .max = 1024 * 1024 * 1024},
        {"limits", "send_timeout", parse_duration_ms, OFF(limits.send_timeout_ms), .min = 100,
         .max = MSEC_PER_HOUR},
        {"limits", "send_min_rate", parse_size, OFF(limits.send_min_rate), .min = 0,
         .max = 1024 * 1024 * 1024},
        {"limits", "keepalive_timeout", parse_duration_ms, OFF(limits.keepalive_timeout_ms),
         .min = 100, .max = MSEC_PER_HOUR},
        {"limits", "upstream_connect_timeout", parse_duration_ms, OFF(limits.connect_timeout_ms),
         .min = 100, .max = 10 * MSEC_PER_MIN},
        {"limits", "upstream_response_timeout", parse_duration_ms, OFF(limits.response_timeout_ms),
         .min = 100, .max = MSEC_PER_DAY},
        {"limits", "tunnel_idle_timeout", parse_duration_ms, OFF(limits.tunnel_idle_timeout_ms),
         .min = 100, .max = MSEC_PER_DAY},
        {"limits", "drain_timeout", parse_duration_ms, OFF(limits.drain_timeout_ms), .min = 100,
         .max = MSEC_PER_HOUR},
        {"limits", "max_head_size", parse_size, OFF(limits.max_head_size), .min = 1024,
         .max = 1024 * 1024},
        {"limits", "max_headers", parse_uint, OFF(limits.max_headers), .min = 1, .max = 4096},
        {"limits", "max_connections", parse_uint, OFF(limits.max_connections), .min = 0,
         .max = 100 * 1000 * 1000},
        {"limits", "connections_per_client", parse_uint, OFF(limits.connections_per_client),
         .min = 0, .max = 1000 * 1000},
        {"limits", "new_connections_per_second", parse_uint, OFF(limits.new_connections_per_sec),
         .min = 0, .max = 1000 * 1000},
        {"limits", "pool_size", parse_uint, OFF(limits.pool_size), .min = 0, .max = 65536},

        {"metrics", "listen", parse_metrics_listen, 0, .allow_empty = true},

        {"log", "level", parse_enum, OFF(log_level), .names = log_level_names},
        {"log", "access", parse_access_log, OFF(log_access), .allow_empty = true},
        {"log", "access_query", parse_bool, OFF(log_access_query)},
};

static const struct config_key *find_key(const char *section, const char *key, size_t *ret_idx)
{
        for (size_t i = 0; i < ELEMENTSOF(config_keys); i++)
                if (streq(config_keys[i].section, section) && streq(config_keys[i].key, key)) {
                        if (ret_idx)
                                *ret_idx = i;
                        return &config_keys[i];
                }
        return NULL;
}

static bool section_known(const char *section)
{
        for (size_t i = 0; i < ELEMENTSOF(config_keys); i++)
                if (streq(config_keys[i].section, section))
                        return true;
        return false;
}

/* "gateway, names, dns, bus or log", in table order. */
static void known_sections(char *buf, size_t n)
{
        const char *seen[ELEMENTSOF(config_keys)];
        size_t k = 0;

        buf[0] = 0;
        for (size_t i = 0; i < ELEMENTSOF(config_keys); i++) {
                size_t j;

                for (j = 0; j < k; j++)
                        if (streq(seen[j], config_keys[i].section))
                                break;
                if (j == k)
                        seen[k++] = config_keys[i].section;
        }
        for (size_t i = 0; i < k; i++) {
                size_t l = strlen(buf);

                snprintf(buf + l, n - l, "%s%s", i == 0 ? "" : (i + 1 == k ? " or " : ", "),
                         seen[i]);
        }
}

/* ---- errors ----------------------------------------------------------------------------- */

/* Record "<file>[:<line>]: [[<section>]][ <key>]: <reason>", unless the same message is recorded
 * already. Returns -EINVAL. */
static int fail(struct parse_ctx *ctx, unsigned line, const char *section, const char *key,
                const char *fmt, ...) _printf_(5, 6);
static int fail(struct parse_ctx *ctx, unsigned line, const char *section, const char *key,
                const char *fmt, ...)
{
        _cleanup_strbuf_ struct strbuf b = STRBUF_INIT;
        struct config_error *e;
        va_list ap;
        int r;

        if (ctx->oom)
                return -EINVAL;
        r = strbuf_puts(&b, ctx->name);
        if (r >= 0 && line > 0)
                r = strbuf_printf(&b, ":%u", line);
        if (r >= 0)
                r = strbuf_puts(&b, ":");
        if (r >= 0 && section)
                r = strbuf_printf(&b, " [%s]", section);
        if (r >= 0 && key)
                r = strbuf_printf(&b, " %s", key);
        if (r >= 0 && (section || key))
                r = strbuf_puts(&b, ":");
        if (r >= 0)
                r = strbuf_puts(&b, " ");
        if (r >= 0) {
                va_start(ap, fmt);
                r = strbuf_vprintf(&b, fmt, ap);
                va_end(ap);
        }
        if (r < 0) {
                ctx->oom = true;
                return -EINVAL;
        }
        for (size_t i = 0; i < ctx->n_errors; i++)
                if (streq(ctx->errors[i].msg, b.data))
                        return -EINVAL;
        if (ctx->n_errors >= CONFIG_ERRORS_MAX) {
                ctx->n_dropped++;
                return -EINVAL;
        }
        e = reallocarray(ctx->errors, ctx->n_errors + 1, sizeof(*e));
        if (!e) {
                ctx->oom = true;
                return -EINVAL;
        }
        ctx->errors = e;
        ctx->errors[ctx->n_errors++] = (struct config_error){line, strbuf_steal(&b)};
        return -EINVAL;
}

static bool has_error_on_line(const struct parse_ctx *ctx, unsigned line)
{
        for (size_t i = 0; i < ctx->n_errors; i++)
                if (ctx->errors[i].line == line)
                        return true;
        return false;
}

/* For sorting: errors about the file as a whole after those of a line. */
static unsigned sort_line(const struct config_error *e)
{
        return e->line ? e->line : UINT_MAX;
}

/* Every error, one per line (no final newline), in line order; NULL on -ENOMEM. */
static char *errors_join(struct parse_ctx *ctx)
{
        _cleanup_strbuf_ struct strbuf b = STRBUF_INIT;
        int r = 0;

        /* In line order, keeping the order found within a line (insertion sort: stable, and
         * there are at most CONFIG_ERRORS_MAX). */
        for (size_t i = 1; i < ctx->n_errors; i++) {
                struct config_error t = ctx->errors[i];
                size_t j = i;

                for (; j > 0 && sort_line(&ctx->errors[j - 1]) > sort_line(&t); j--)
                        ctx->errors[j] = ctx->errors[j - 1];
                ctx->errors[j] = t;
        }
        for (size_t i = 0; i < ctx->n_errors && r >= 0; i++)
                r = strbuf_printf(&b, "%s%s", i ? "\n" : "", ctx->errors[i].msg);
        if (r >= 0 && ctx->n_dropped > 0)
                r = strbuf_printf(&b, "\n%s: %zu more error%s not shown", ctx->name, ctx->n_dropped,
                                  ctx->n_dropped == 1 ? "" : "s");
        if (r < 0)
                return NULL;
        return strbuf_steal(&b);
}

/* ---- did you mean ----------------------------------------------------------------------- */

/* Optimal string alignment distance (Levenshtein plus adjacent transpositions, so "prot" is
 * one edit from "port"), ignoring case. Names longer than 64 bytes are never a typo of ours:
 * they get a distance too large to suggest anything. */
static size_t edit_distance(const char *a, const char *b)
{
        size_t m = strlen(a), n = strlen(b);
        size_t d0[65], d1[65], d2[65], *prev2 = d0, *prev = d1, *cur = d2;

        if (m > 64 || n > 64)
                return SIZE_MAX;
        for (size_t j = 0; j <= n; j++)
                prev[j] = j;
        for (size_t i = 1; i <= m; i++) {
                size_t *t;

                cur[0] = i;
                for (size_t j = 1; j <= n; j++) {
                        char ca = (char)tolower((unsigned char)a[i - 1]);
                        char cb = (char)tolower((unsigned char)b[j - 1]);
                        size_t v = prev[j - 1] + (ca != cb);

                        v = MIN(v, prev[j] + 1);
                        v = MIN(v, cur[j - 1] + 1);
                        if (i > 1 && j > 1 && ca == tolower((unsigned char)b[j - 2]) &&
                            tolower((unsigned char)a[i - 2]) == cb)
                                v = MIN(v, prev2[j - 2] + 1);
                        cur[j] = v;
                }
                t = prev2;
                prev2 = prev;
                prev = cur;
                cur = t;
        }
        return prev[n];
}

/* How many edits a suggestion may be away from what was written: one in three characters, so
 * that a short name is not "corrected" into an unrelated one ("cache" is two edits from
 * "acme"). */
static size_t max_edits(const char *written)
{
        return MAX(strlen(written) / 3, (size_t)1);
}

/* The section closest to @section, or NULL. */
static const char *suggest_section(const char *section)
{
        const char *best = NULL;
        size_t best_d = max_edits(section) + 1;

        for (size_t i = 0; i < ELEMENTSOF(config_keys); i++) {
                size_t d = edit_distance(section, config_keys[i].section);

                if (d < best_d) {
                        best = config_keys[i].section;
                        best_d = d;
                }
        }
        return best;
}

/* The key closest to @key: one of @section's if one is close enough, else the same name (or a
 * close one) in another section. NULL if none is. */
static const struct config_key *suggest_key(const char *section, const char *key)
{
        const struct config_key *best = NULL;
        size_t best_score = SIZE_MAX, limit = max_edits(key);

        for (size_t i = 0; i < ELEMENTSOF(config_keys); i++) {
                const struct config_key *k = &config_keys[i];
                size_t d = edit_distance(key, k->key), score;

                if (d > limit)
                        continue;
                /* One edit more weighs more than being in another section. */
                score = 2 * d + !streq(k->section, section);
                if (score < best_score) {
                        best = k;
                        best_score = score;
                }
        }
        return best;
}

/* ---- the inih reader and handler -------------------------------------------------------- */

/* Same as inih's find_chars_or_comment(): the first of @chars, or the start of an inline
 * comment (a ';' after whitespace), or the terminating NUL. */
static const char *find_chars_or_comment(const char *s, const char *chars)
{
        bool was_space = false;

        while (*s && (!chars || !strchr(chars, *s)) &&
               !(INI_ALLOW_INLINE_COMMENTS && was_space &&
                 strchr(INI_INLINE_COMMENT_PREFIXES, *s))) {
                was_space = isspace((unsigned char)*s);
                s++;
        }
        return s;
}

/* Decide what inih will make of @line (its exact rules, see ini_parse_stream()), and report
 * what it would only count as an error: a section header without ']', a line without '='. */
static void classify_line(struct parse_ctx *ctx, const char *line)
{
        const char *start = line, *end, *rest;
        size_t n;

        if (ctx->line == 1 && (unsigned char)start[0] == 0xEF && (unsigned char)start[1] == 0xBB &&
            (unsigned char)start[2] == 0xBF)
                start += 3;
        while (*start && isspace((unsigned char)*start))
                start++;
        n = strlen(start);
        while (n > 0 && isspace((unsigned char)start[n - 1]))
                n--;

        if (n == 0 || strchr(INI_START_COMMENT_PREFIXES, *start)) {
                ctx->kind = LINE_BLANK;
                return;
        }
        if (INI_ALLOW_MULTILINE && ctx->after_key && start > line) {
                ctx->kind = LINE_CONTINUATION;
                return;
        }
        if (*start == '[') {
                char section[INI_MAX_LINE];

                end = find_chars_or_comment(start + 1, "]");
                if (*end != ']') {
                        /* inih keeps the previous section: the keys that follow were meant
                         * for another one, so they are not checked against it. */
                        ctx->kind = LINE_BAD;
                        ctx->section_bad = true;
                        ctx->unsure = true;
                        fail(ctx, ctx->line, NULL, NULL,
                             "syntax error: section header without closing ']'");
                        return;
                }
                ctx->kind = LINE_SECTION;
                ctx->after_key = false;
                /* inih ignores whatever follows the ']', so "[gateway] enabled = yes" would
                 * lose the key silently. Allow only a comment there. */
                for (rest = end + 1; isspace((unsigned char)*rest); rest++)
                        ;
                if (*rest && !strchr(";#", *rest)) {
                        ctx->unsure = true;
                        fail(ctx, ctx->line, NULL, NULL,
                             "syntax error: text after the section header's ']'");
                }
                snprintf(section, sizeof(section), "%.*s", (int)(end - start - 1), start + 1);
                ctx->section_bad = !section_known(section);
                if (ctx->section_bad) {
                        const char *s = suggest_section(section);
                        char known[128];

                        /* Its keys are reported with the header, not one by one. */
                        ctx->unsure = true;
                        known_sections(known, sizeof(known));
                        if (s)
                                fail(ctx, ctx->line, section, NULL,
                                     "unknown section (did you mean [%s]?)", s);
                        else
                                fail(ctx, ctx->line, section, NULL, "unknown section (expected %s)",
                                     known);
                }
                return;
        }
        end = find_chars_or_comment(start, "=:");
        if (*end != '=' && *end != ':') {
                ctx->kind = LINE_BAD;
                ctx->unsure = true;
                fail(ctx, ctx->line, NULL, NULL, "syntax error: expected 'key = value'");
                return;
        }
        ctx->kind = LINE_KEY;
        ctx->after_key = end > start;
}

/* fgets()-like: hands inih one line (with its '\n') per call and counts lines. Stops the
 * parse (returns NULL) at the end of the text. A line inih cannot take whole is reported and
 * handed over as an empty line, so that the lines after it are still checked. */
static char *on_read_line(char *str, int num, void *stream)
{
        struct parse_ctx *ctx = stream;
        const char *p, *nl;
        bool too_long, nul;
        size_t n, max;

        assert(num >= 3);
        if (ctx->pos >= ctx->len || ctx->oom)
                return NULL;

        p = ctx->text + ctx->pos;
        nl = memchr(p, '\n', ctx->len - ctx->pos);
        n = nl ? (size_t)(nl - p) + 1 : ctx->len - ctx->pos;
        ctx->pos += n;
        ctx->line++;

        /* Room for the line, its '\n' and the NUL. A longer line would be split by inih and
         * its tail parsed as a line of its own. */
        max = (size_t)num - 2;
        too_long = n - (nl ? 1 : 0) > max;
        nul = !too_long && memchr(p, '\0', n);
        if (too_long || nul) {
                const char *q = p;

                if (too_long)
                        fail(ctx, ctx->line, NULL, NULL, "line is longer than %zu bytes", max);
                else
                        fail(ctx, ctx->line, NULL, NULL, "line contains a NUL byte");
                ctx->unsure = true;
                /* A lost section header: its keys would land in the section before it. */
                while (q < p + n && (*q == ' ' || *q == '\t'))
                        q++;
                if (q < p + n && *q == '[')
                        ctx->section_bad = true;
                /* inih treats an empty line as a comment: its state stays as it was. */
                memcpy(str, "\n", 2);
                classify_line(ctx, str);
                return str;
        }
        memcpy(str, p, n);
        str[n] = '\0';
        classify_line(ctx, str);
        return str;
}

/* The handler of one key line. Returns 1, or 0 after recording an error (inih counts it and
 * goes on with the next line). */
static int on_key(void *user, const char *section, const char *name, const char *value)
{
        struct parse_ctx *ctx = user;
        const struct config_key *k, *s;
        size_t idx;
        int r;

        if (ctx->oom)
                return 0;
        /* Reported with its header already. */
        if (ctx->section_bad)
                return 1;

        if (ctx->kind == LINE_CONTINUATION) {
                ctx->unsure = true;
                if (find_key(section, name, &idx))
                        ctx->key_bad[idx] = true;
                fail(ctx, ctx->line, section[0] ? section : NULL, name,
                     "indented line would continue this key's value; continuation lines are not supported (remove the indentation)");
                return 0;
        }
        if (!name[0]) {
                ctx->unsure = true;
                fail(ctx, ctx->line, section[0] ? section : NULL, NULL,
                     "syntax error: missing key before '='");
                return 0;
        }
        if (!section[0]) {
                ctx->unsure = true;
                fail(ctx, ctx->line, NULL, name,
                     "key outside of any section (add a section header such as [gateway] above it)");
                return 0;
        }
        k = find_key(section, name, &idx);
        if (!k) {
                s = suggest_key(section, name);
                if (!s) {
                        fail(ctx, ctx->line, section, name, "unknown key");
                        return 0;
                }
                /* It was probably meant: checks across keys that involve it would only
                 * report its absence. */
                (void)find_key(s->section, s->key, &idx);
                ctx->key_bad[idx] = true;
                if (streq(s->section, section))
                        fail(ctx, ctx->line, section, name, "unknown key (did you mean '%s'?)",
                             s->key);
                else
                        fail(ctx, ctx->line, section, name,
                             "unknown key (did you mean '%s' in [%s]?)", s->key, s->section);
                return 0;
        }
        if (ctx->set_line[idx]) {
                fail(ctx, ctx->line, section, name, "duplicate key (first set on line %u)",
                     ctx->set_line[idx]);
                return 0;
        }
        ctx->set_line[idx] = ctx->line;

        if (!value[0] && !k->allow_empty)
                r = set_reason(ctx, "empty value");
        else
                r = k->parse(ctx, k, value, (uint8_t *)&ctx->c + k->offset);
        if (r == -ENOMEM) {
                ctx->oom = true;
                return 0;
        }
        if (r < 0) {
                ctx->key_bad[idx] = true;
                fail(ctx, ctx->line, section, name, "%s", ctx->reason);
                return 0;
        }
        return 1;
}

/* ---- cross-key checks ------------------------------------------------------------------- */

static unsigned line_of(const struct parse_ctx *ctx, const char *section, const char *key)
{
        size_t idx = 0;

        if (!find_key(section, key, &idx))
                assert(!"no such key");
        return ctx->set_line[idx];
}

/* True when none of the keys named (in @section, NULL-terminated) had a value refused: a check
 * across keys that involves such a key would only report a consequence of that error. */
static bool keys_ok(const struct parse_ctx *ctx, const char *section, ...)
        __attribute__((sentinel));
static bool keys_ok(const struct parse_ctx *ctx, const char *section, ...)
{
        bool ok = true;
        const char *key;
        va_list ap;

        va_start(ap, section);
        while ((key = va_arg(ap, const char *))) {
                size_t idx = 0;

                if (!find_key(section, key, &idx))
                        assert(!"no such key");
                if (ctx->key_bad[idx])
                        ok = false;
        }
        va_end(ap);
        return ok;
}

static void check_address_pair(struct parse_ctx *ctx, const char *pub, bool has_pub, const char *gw,
                               bool has_gw, bool same)
{
        unsigned gw_line = line_of(ctx, "gateway", gw);

        if (!keys_ok(ctx, "gateway", pub, gw, NULL))
                return;
        if (has_gw && !has_pub)
                fail(ctx, gw_line, "gateway", gw, "set without %s", pub);
        else if (has_pub && !has_gw)
                fail(ctx, 0, "gateway", gw,
                     "required when %s is set (the gateway namespace needs a default route)", pub);
        else if (has_pub && has_gw && same)
                fail(ctx, gw_line, "gateway", gw, "is the node's own address (%s)", pub);
}

/* The namespace is managed when public_link is set; then every key of the
 * required overlays is needed, and an optional overlay has all its keys or
 * none. Every problem is reported; none that only follows from a key that
 * was already refused. */
static void check_namespace(struct parse_ctx *ctx)
{
        const struct gw_config *c = &ctx->c;
        static const char *const suffixes[] = {"link", "address", "router"};
        bool have[_GW_OVERLAY_MAX][ELEMENTSOF(suffixes)], any[_GW_OVERLAY_MAX] = {};
        bool any_key = c->ns_public_link, bad[_GW_OVERLAY_MAX] = {};
        char key[_GW_OVERLAY_MAX][ELEMENTSOF(suffixes)][64], other[64];

        for (unsigned i = 0; i < _GW_OVERLAY_MAX; i++) {
                const struct gw_overlay_config *o = &c->overlays[i];

                have[i][0] = o->link != NULL;
                have[i][1] = o->has_address;
                have[i][2] = o->has_router;
                for (size_t j = 0; j < ELEMENTSOF(suffixes); j++) {
                        snprintf(key[i][j], sizeof(key[i][j]), "%s_%s", gw_overlays[i].name,
                                 suffixes[j]);
                        any[i] = any[i] || have[i][j];
                }
                any_key = any_key || any[i];
                bad[i] = !keys_ok(ctx, "namespace", key[i][0], key[i][1], key[i][2], NULL);
        }
        if (!any_key || !keys_ok(ctx, "namespace", "public_link", NULL))
                return;
        if (!c->ns_public_link) {
                for (unsigned i = 0; i < _GW_OVERLAY_MAX; i++) {
                        const char *n = gw_overlays[i].name;

                        if (any[i] && !bad[i]) {
                                fail(ctx, 0, "namespace", "public_link",
                                     "required when any of %s_link, %s_address, %s_router is set",
                                     n, n, n);
                                return;
                        }
                }
                return;
        }
        for (unsigned i = 0; i < _GW_OVERLAY_MAX; i++) {
                const char *set = NULL;

                if (bad[i] || (!gw_overlays[i].required && !any[i]))
                        continue; /* refused already, or not there */
                for (size_t j = 0; j < ELEMENTSOF(suffixes) && !set; j++)
                        if (have[i][j])
                                set = suffixes[j];
                for (size_t j = 0; j < ELEMENTSOF(suffixes); j++) {
                        if (have[i][j])
                                continue;
                        if (gw_overlays[i].required)
                                fail(ctx, 0, "namespace", key[i][j],
                                     "required when public_link is set");
                        else
                                fail(ctx, 0, "namespace", key[i][j], "required when %s_%s is set",
                                     gw_overlays[i].name, set);
                        bad[i] = true;
                }
        }
        for (unsigned i = 0; i < _GW_OVERLAY_MAX; i++) {
                const struct gw_overlay_config *o = &c->overlays[i];

                if (!o->link || bad[i])
                        continue;
                if (streq(strchr(c->ns_public_link, ':') + 1, strchr(o->link, ':') + 1))
                        fail(ctx, line_of(ctx, "namespace", key[i][0]), "namespace", key[i][0],
                             "uses the same interface as public_link");
                for (unsigned j = 0; j < i; j++) {
                        if (!c->overlays[j].link || bad[j] ||
                            !streq(strchr(c->overlays[j].link, ':') + 1, strchr(o->link, ':') + 1))
                                continue;
                        snprintf(other, sizeof(other), "%s_link", gw_overlays[j].name);
                        fail(ctx, line_of(ctx, "namespace", key[i][0]), "namespace", key[i][0],
                             "uses the same interface as %s", other);
                }
                if (memcmp(&o->address, &o->router, sizeof(o->router)) == 0)
                        fail(ctx, line_of(ctx, "namespace", key[i][2]), "namespace", key[i][2],
                             "is the gateway's own %s_address", gw_overlays[i].name);
        }
}

static void check_proxy(struct parse_ctx *ctx)
{
        const struct gw_config *c = &ctx->c;
        unsigned hl = line_of(ctx, "proxy", "http_port"), sl = line_of(ctx, "proxy", "https_port");

        if (!keys_ok(ctx, "proxy", "http_port", "https_port", NULL))
                return;
        /* Name the key set last (one of them was set: the defaults differ). */
        if (c->http_port && c->http_port == c->https_port)
                fail(ctx, MAX(hl, sl), "proxy", sl >= hl ? "https_port" : "http_port",
                     "is the same port as %s (%u)", sl >= hl ? "http_port" : "https_port",
                     c->http_port);
}

static void check_public_addresses(struct parse_ctx *ctx)
{
        static const char *const address_keys[] = {"public_ipv4", "gateway_ipv4", "public_ipv6",
                                                   "gateway_ipv6"};
        const struct wl_public_config *pc = &ctx->c.pc;

        if (!keys_ok(ctx, "gateway", "public_config", NULL))
                return;
        if (ctx->c.public_config == GW_PUBLIC_CONFIG_BUS) {
                /* The networker supplies the addresses: a file value would be ignored, which
                 * is never what the farmer meant. */
                for (size_t i = 0; i < ELEMENTSOF(address_keys); i++) {
                        unsigned line = line_of(ctx, "gateway", address_keys[i]);

                        if (line)
                                fail(ctx, line, "gateway", address_keys[i],
                                     "only used when public_config = file (it is bus)");
                }
                return;
        }

        check_address_pair(ctx, "public_ipv4", pc->has_ipv4, "gateway_ipv4", pc->has_gw4,
                           pc->ipv4.s_addr == pc->gw4.s_addr);
        check_address_pair(ctx, "public_ipv6", pc->has_ipv6, "gateway_ipv6", pc->has_gw6,
                           memcmp(&pc->ipv6, &pc->gw6, sizeof(pc->ipv6)) == 0);
        if (ctx->c.enabled && !pc->has_ipv4 && !pc->has_ipv6 &&
            keys_ok(ctx, "gateway", "enabled", "public_ipv4", "public_ipv6", NULL))
                fail(ctx, 0, "gateway", "public_ipv4",
                     "required when public_config = file and enabled = yes (set public_ipv4, public_ipv6 or both)");
}

/* Checks across keys, once the whole file is read. Skipped after a line that was not understood
 * (it may have been meant to set any key). */
static void check_consistency(struct parse_ctx *ctx)
{
        if (ctx->unsure)
                return;
        check_namespace(ctx);
        check_proxy(ctx);
        check_public_addresses(ctx);
}

/* ---- public API ------------------------------------------------------------------------- */

const char *gw_public_config_source_to_string(enum gw_public_config_source s)
{
        for (const struct enum_name *e = public_config_names; e->name; e++)
                if (e->value == (int)s)
                        return e->name;
        return NULL;
}

const char *gw_name_validation_to_string(enum gw_name_validation v)
{
        for (const struct enum_name *e = name_validation_names; e->name; e++)
                if (e->value == (int)v)
                        return e->name;
        return NULL;
}

int gw_config_init(struct gw_config *c)
{
        assert(c);

        *c = (struct gw_config){
                .enabled = false,
                .public_config = GW_PUBLIC_CONFIG_BUS,
                .name_validation = GW_NAME_VALIDATION_BUS,
                .revalidate_interval_sec = 3600,
                .resolver_timeout_ms = 10 * 1000,
                .call_timeout_ms = 60 * 1000,
                .max_payload = 1024 * 1024,
                .dns_listen_port = 53,
                .acme_enabled = true,
                .http_port = 80,
                .https_port = 443,
                .proxy_address_len = sizeof(struct sockaddr_in6),
                .metrics_listen_len = sizeof(struct sockaddr_in),
                .log_level = LOG_INFO,
                .limits =
                        {
                                .handshake_timeout_ms = 10 * 1000,
                                .request_head_timeout_ms = 30 * 1000,
                                .body_timeout_ms = 30 * 1000,
                                .body_min_rate = 256,
                                .send_timeout_ms = 60 * 1000,
                                .send_min_rate = 256,
                                .keepalive_timeout_ms = 60 * 1000,
                                .connect_timeout_ms = 5 * 1000,
                                .response_timeout_ms = 60 * 1000,
                                .tunnel_idle_timeout_ms = 300 * 1000,
                                .drain_timeout_ms = 30 * 1000,
                                .max_head_size = 16 * 1024,
                                .max_headers = 100,
                                .max_connections = 0,
                                .connections_per_client = 1024,
                                .new_connections_per_sec = 256,
                                .pool_size = 0,
                        },
        };
        /* [proxy] address = "::" (dual-stack), [metrics] listen = 127.0.0.1:8082. */
        c->proxy_address.ss_family = AF_INET6;
        {
                struct sockaddr_in *m = (struct sockaddr_in *)&c->metrics_listen;

                m->sin_family = AF_INET;
                m->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
                m->sin_port = htons(8082);
        }
        c->resolver = strdup("8.8.8.8:53");
        c->acme_directory = strdup(GW_ACME_DIRECTORY_DEFAULT);
        c->netns_dir = strdup("/run/netns");
        c->ns_name = strdup("gateway");
        if (!c->resolver || !c->acme_directory || !c->netns_dir || !c->ns_name) {
                gw_config_done(c);
                return -ENOMEM;
        }
        return 0;
}

void gw_config_done(struct gw_config *c)
{
        if (!c)
                return;
        free(c->path);
        free(c->resolver);
        free(c->acme_directory);
        free(c->acme_email);
        free(c->acme_ca_file);
        free(c->acme_profile);
        free(c->netns_dir);
        free(c->ns_name);
        free(c->ns_public_link);
        free(c->log_access);
        for (unsigned i = 0; i < _GW_OVERLAY_MAX; i++)
                free(c->overlays[i].link);
        /* The only owned field of struct wl_public_config; see wl_public_config_done(). */
        free(c->pc.domain);
        *c = (struct gw_config){};
}

static void parse_ctx_done(struct parse_ctx *ctx)
{
        gw_config_done(&ctx->c);
        free(ctx->set_line);
        free(ctx->key_bad);
        for (size_t i = 0; i < ctx->n_errors; i++)
                free(ctx->errors[i].msg);
        free(ctx->errors);
}

static void set_reterr(char **reterr, char *msg)
{
        if (reterr)
                *reterr = msg;
        else
                free(msg);
}

static int load_text(const char *name, const char *text, size_t len, struct gw_config *ret,
                     char **reterr)
{
        _cleanup_(parse_ctx_done) struct parse_ctx ctx = {
                .name = name,
                .text = text,
                .len = len,
        };
        int r;

        assert(name && text && ret);

        r = gw_config_init(&ctx.c);
        if (r < 0)
                goto oom;
        ctx.c.path = strdup(name);
        ctx.set_line = calloc(ELEMENTSOF(config_keys), sizeof(unsigned));
        ctx.key_bad = calloc(ELEMENTSOF(config_keys), sizeof(bool));
        if (!ctx.c.path || !ctx.set_line || !ctx.key_bad)
                goto oom;

        r = ini_parse_stream(on_read_line, &ctx, on_key, &ctx);
        if (ctx.oom || r == -2)
                goto oom;
        /* inih found an error our line classifier did not foresee: still name the line. (inih
         * returns the line of its first error only.) */
        if (r > 0 && !has_error_on_line(&ctx, (unsigned)r)) {
                ctx.unsure = true;
                fail(&ctx, (unsigned)r, NULL, NULL, "syntax error");
        }
        check_consistency(&ctx);
        if (ctx.oom)
                goto oom;
        if (ctx.n_errors > 0) {
                char *msg = errors_join(&ctx);

                if (!msg)
                        goto oom;
                set_reterr(reterr, msg);
                return -EINVAL;
        }

        *ret = ctx.c;
        ctx.c = (struct gw_config){};
        return 0;
oom:
        set_reterr(reterr, NULL);
        return -ENOMEM;
}

int gw_config_load_string(const char *name, const char *text, struct gw_config *ret, char **reterr)
{
        return load_text(name, text, strlen(text), ret, reterr);
}

int gw_config_load(const char *path, struct gw_config *ret, char **reterr)
{
        _cleanup_strbuf_ struct strbuf b = STRBUF_INIT;
        _cleanup_free_ char *data = NULL;
        size_t len;
        int r;

        assert(path && ret);

        r = read_file_full(path, CONFIG_FILE_MAX, &data, &len);
        if (r >= 0)
                return load_text(path, data, len, ret, reterr);

        if (r == -EFBIG) {
                (void)strbuf_printf(&b, "%s: file is larger than %d bytes", path, CONFIG_FILE_MAX);
        } else if (r == -EBADF) {
                (void)strbuf_printf(&b, "%s: not a regular file", path);
        } else {
                errno = -r;
                (void)strbuf_printf(&b, "%s: %m", path);
        }
        set_reterr(reterr, b.data ? strbuf_steal(&b) : NULL);
        return r;
}
