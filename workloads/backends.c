/* SPDX-License-Identifier: Apache-2.0 */
#include "workloads/workloads.h"
/* The module header first: it must compile on its own. */

#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <string.h>
#include <sys/types.h>

#include "common/macros.h"
#include "common/strbuf.h"
#include "common/utf8.h"
#include "workloads/workloads-internal.h"

/* Backend validation exactly as zos gridtypes/zos/gw.go (Backend.Valid,
 * asIpPort, ValidateBackends) with the Go standard library underneath it:
 * net.SplitHostPort, net.ParseIP (netip.ParseAddr), strconv.ParseUint,
 * net/url.Parse + URL.Hostname/Port, strconv.Quote for the quoted parts of
 * error texts, and hashicorp/go-multierror's list format.
 *
 * Go version emulated: zosbase pins toolchain go1.24, so url.Parse follows
 * Go 1.24 including the CVE-2025-47912 fix (1.24.8): brackets in a host
 * must hold an IPv6 literal ("invalid IP-literal", "invalid host:
 * ParseAddr(...)"). Colons in an unbracketed host are not strict (Go 1.26's
 * urlstrictcolons): the last colon starts the port. Everything here was
 * written from the Go sources, not checked against a Go binary. */

struct span {
        const char *p;
        size_t n;
};

static ssize_t span_index(struct span s, char c)
{
        const char *q = memchr(s.p, c, s.n);

        return q ? q - s.p : -1;
}

static ssize_t span_last(struct span s, char c)
{
        for (size_t i = s.n; i > 0; i--)
                if (s.p[i - 1] == c)
                        return (ssize_t)(i - 1);
        return -1;
}

static bool span_has_prefix(struct span s, const char *prefix)
{
        size_t m = strlen(prefix);

        return s.n >= m && memcmp(s.p, prefix, m) == 0;
}

static struct span span_tail(struct span s, size_t from)
{
        return (struct span){s.p + from, s.n - from};
}

static struct span span_head(struct span s, size_t to)
{
        return (struct span){s.p, to};
}

/* Keep -ENOMEM from a strbuf operation, turn success into -EINVAL: the
 * value every "append an error text" helper below returns. */
static int einval_unless(int r)
{
        return r < 0 ? r : -EINVAL;
}

/* ---- strconv.Quote ---- */

/* unicode.IsPrint, approximated: exact for ASCII and Latin-1; above that it
 * refuses the space separators, the common format characters, surrogates,
 * private use, noncharacters and the unassigned tail of the planes, and
 * accepts the rest. Go's tables also refuse scattered unassigned code
 * points, which only matters for error texts quoting such input. */
static bool go_is_print(uint32_t r)
{
        static const uint32_t not_print[][2] = {
                {0x0080, 0x00a0},   {0x00ad, 0x00ad},   {0x0600, 0x0605},    {0x061c, 0x061c},
                {0x06dd, 0x06dd},   {0x070f, 0x070f},   {0x08e2, 0x08e2},    {0x1680, 0x1680},
                {0x180e, 0x180e},   {0x2000, 0x200f},   {0x2028, 0x202f},    {0x205f, 0x206f},
                {0x3000, 0x3000},   {0xd800, 0xf8ff},   {0xfeff, 0xfeff},    {0xfff0, 0xfffb},
                {0xfffe, 0xffff},   {0x110bd, 0x110bd}, {0x110cd, 0x110cd},  {0x1bca0, 0x1bca3},
                {0x1d173, 0x1d17a}, {0x323b0, 0xe00ff}, {0xe01f0, 0x10ffff},
        };

        if (r < 0x80)
                return r >= 0x20 && r < 0x7f;
        for (size_t i = 0; i < ELEMENTSOF(not_print); i++)
                if (r >= not_print[i][0] && r <= not_print[i][1])
                        return false;
        return true;
}

int wl__go_quote(struct strbuf *b, const char *s, size_t n)
{
        static const char hex[] = "0123456789abcdef";
        int r = strbuf_putc(b, '"');

        for (size_t i = 0; r >= 0 && i < n;) {
                size_t size;
                uint32_t c = utf8_decode(s + i, n - i, &size);
                char esc[10];

                if (size == 1 && c == UTF8_RUNE_ERROR) {
                        /* An invalid byte is shown as \xNN. */
                        esc[0] = '\\';
                        esc[1] = 'x';
                        esc[2] = hex[(unsigned char)s[i] >> 4];
                        esc[3] = hex[(unsigned char)s[i] & 0xF];
                        r = strbuf_append(b, esc, 4);
                        i++;
                        continue;
                }
                if (c == '"' || c == '\\') {
                        esc[0] = '\\';
                        esc[1] = (char)c;
                        r = strbuf_append(b, esc, 2);
                } else if (go_is_print(c)) {
                        r = strbuf_append(b, s + i, size);
                } else if (c == '\a' || c == '\b' || c == '\f' || c == '\n' || c == '\r' ||
                           c == '\t' || c == '\v') {
                        static const char letters[] = "abtnvfr"; /* '\a'..'\r' = 7..13 */

                        esc[0] = '\\';
                        esc[1] = letters[c - '\a'];
                        r = strbuf_append(b, esc, 2);
                } else if (c < ' ' || c == 0x7f) {
                        r = strbuf_printf(b, "\\x%02x", c);
                } else if (c < 0x10000) {
                        r = strbuf_printf(b, "\\u%04x", c);
                } else {
                        r = strbuf_printf(b, "\\U%08x", c);
                }
                i += size;
        }
        if (r < 0)
                return r;
        return strbuf_putc(b, '"');
}

/* ---- netip.ParseAddr / net.ParseIP ---- */

struct go_addr {
        uint8_t ip[16]; /* IPv4 as ::ffff:a.b.c.d */
        bool is4;       /* parsed as dotted IPv4 (netip Is4), not IPv6 */
        bool zone;      /* had a %zone */
};

/* parseAddrError.Error(): ParseAddr("<in>"): <msg>[ (at "<at>")]. */
static int addr_error(struct strbuf *err, struct span in, const char *msg, struct span at)
{
        int r;

        if (!err)
                return -EINVAL;
        r = strbuf_puts(err, "ParseAddr(");
        if (r >= 0)
                r = wl__go_quote(err, in.p, in.n);
        if (r >= 0)
                r = strbuf_printf(err, "): %s", msg);
        if (r >= 0 && at.n > 0) {
                r = strbuf_puts(err, " (at ");
                if (r >= 0)
                        r = wl__go_quote(err, at.p, at.n);
                if (r >= 0)
                        r = strbuf_putc(err, ')');
        }
        return einval_unless(r);
}

static const struct span NO_AT = {"", 0};

/* parseIPv4Fields(in, off, end, fields). */
static int parse_ipv4_fields(struct span in, size_t off, size_t end, uint8_t fields[4],
                             struct strbuf *err)
{
        struct span s = {in.p + off, end - off};
        unsigned val = 0, pos = 0, dig = 0;

        for (size_t i = 0; i < s.n; i++) {
                char c = s.p[i];

                if (c >= '0' && c <= '9') {
                        if (dig == 1 && val == 0)
                                return addr_error(err, in, "IPv4 field has octet with leading zero",
                                                  NO_AT);
                        val = val * 10 + (unsigned)(c - '0');
                        dig++;
                        if (val > 255)
                                return addr_error(err, in, "IPv4 field has value >255", NO_AT);
                } else if (c == '.') {
                        if (i == 0 || i == s.n - 1 || s.p[i - 1] == '.')
                                return addr_error(err, in,
                                                  "IPv4 field must have at least one digit",
                                                  span_tail(s, i));
                        if (pos == 3)
                                return addr_error(err, in, "IPv4 address too long", NO_AT);
                        fields[pos++] = (uint8_t)val;
                        val = 0;
                        dig = 0;
                } else {
                        return addr_error(err, in, "unexpected character", span_tail(s, i));
                }
        }
        if (pos < 3)
                return addr_error(err, in, "IPv4 address too short", NO_AT);
        fields[3] = (uint8_t)val;
        return 0;
}

/* netip parseIPv6. */
static int parse_ipv6(struct span in, struct go_addr *ret, struct strbuf *err)
{
        struct span s = in;
        uint8_t ip[16] = {};
        ssize_t pct = span_index(in, '%');
        size_t zone_len = 0;
        int ellipsis = -1, i = 0;

        if (pct >= 0) {
                zone_len = in.n - (size_t)pct - 1;
                s.n = (size_t)pct;
                if (zone_len == 0)
                        return addr_error(err, in, "zone must be a non-empty string", NO_AT);
        }

        if (s.n >= 2 && s.p[0] == ':' && s.p[1] == ':') {
                ellipsis = 0;
                s = span_tail(s, 2);
                if (s.n == 0)
                        goto done; /* "::" */
        }

        while (i < 16) {
                uint32_t acc = 0;
                size_t off;

                for (off = 0; off < s.n; off++) {
                        int d = unhexchar(s.p[off]);

                        if (d < 0)
                                break;
                        acc = (acc << 4) + (uint32_t)d;
                        if (off > 3)
                                return addr_error(err, in, "each group must have 4 or less digits",
                                                  s);
                        if (acc > 0xFFFF)
                                return addr_error(err, in, "IPv6 field has value >=2^16", s);
                }
                if (off == 0)
                        return addr_error(err, in,
                                          "each colon-separated field must have at least one digit",
                                          s);

                if (off < s.n && s.p[off] == '.') {
                        size_t end = in.n - (pct >= 0 ? zone_len + 1 : 0);
                        int r;

                        if (ellipsis < 0 && i != 12)
                                return addr_error(
                                        err, in,
                                        "embedded IPv4 address must replace the final 2 fields of the address",
                                        s);
                        if (i + 4 > 16)
                                return addr_error(
                                        err, in,
                                        "too many hex fields to fit an embedded IPv4 at the end of the address",
                                        s);
                        r = parse_ipv4_fields(in, end - s.n, end, ip + i, err);
                        if (r < 0)
                                return r;
                        s = span_tail(s, s.n);
                        i += 4;
                        break;
                }

                ip[i] = (uint8_t)(acc >> 8);
                ip[i + 1] = (uint8_t)acc;
                i += 2;

                s = span_tail(s, off);
                if (s.n == 0)
                        break;
                if (s.p[0] != ':')
                        return addr_error(err, in, "unexpected character, want colon", s);
                if (s.n == 1)
                        return addr_error(err, in, "colon must be followed by more characters", s);
                s = span_tail(s, 1);

                if (s.p[0] == ':') {
                        if (ellipsis >= 0)
                                return addr_error(err, in, "multiple :: in address", s);
                        ellipsis = i;
                        s = span_tail(s, 1);
                        if (s.n == 0)
                                break;
                }
        }

        if (s.n != 0)
                return addr_error(err, in, "trailing garbage after address", s);

        if (i < 16) {
                int n = 16 - i;

                if (ellipsis < 0)
                        return addr_error(err, in, "address string too short", NO_AT);
                for (int j = i - 1; j >= ellipsis; j--)
                        ip[j + n] = ip[j];
                memset(ip + ellipsis, 0, (size_t)n);
        } else if (ellipsis >= 0) {
                return addr_error(err, in, "the :: must expand to at least one field of zeros",
                                  NO_AT);
        }

done:
        memcpy(ret->ip, ip, 16);
        ret->is4 = false;
        ret->zone = pct >= 0;
        return 0;
}

/* netip.ParseAddr. On failure appends Go's error text to @err (if any). */
static int parse_addr(struct span in, struct go_addr *ret, struct strbuf *err)
{
        for (size_t i = 0; i < in.n; i++) {
                switch (in.p[i]) {
                case '.': {
                        uint8_t f[4];
                        int r = parse_ipv4_fields(in, 0, in.n, f, err);

                        if (r < 0)
                                return r;
                        memset(ret->ip, 0, 10);
                        ret->ip[10] = ret->ip[11] = 0xff;
                        memcpy(ret->ip + 12, f, 4);
                        ret->is4 = true;
                        ret->zone = false;
                        return 0;
                }
                case ':':
                        return parse_ipv6(in, ret, err);
                case '%':
                        /* Assumed to be a zone with the address missing. */
                        return addr_error(err, in, "missing IPv6 address", NO_AT);
                }
        }
        return addr_error(err, in, "unable to parse IP", NO_AT);
}

bool wl__go_parse_ip(const char *s, size_t n, uint8_t ret[16])
{
        struct go_addr a;

        /* net.ParseIP: netip.ParseAddr, refusing zones, as a 16-byte IP. */
        if (parse_addr((struct span){s, n}, &a, NULL) < 0 || a.zone)
                return false;
        memcpy(ret, a.ip, 16);
        return true;
}

/* net.IP.IsLoopback on the 16-byte form: 127/8 (also as ::ffff:127.x), ::1.
 * Note ::127.0.0.1 (IPv4-compatible, no ffff) is not loopback for Go. */
static bool ip_is_loopback(const uint8_t ip[16])
{
        static const uint8_t v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        static const uint8_t loopback6[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};

        if (memcmp(ip, v4mapped, 12) == 0)
                return ip[12] == 127;
        return memcmp(ip, loopback6, 16) == 0;
}

/* ---- net.SplitHostPort ---- */

static int addr_err(struct strbuf *err, struct span addr, const char *why)
{
        /* net.AddrError.Error(): "address <addr>: <why>", or <why> alone when addr == "". */
        if (addr.n > 0)
                return einval_unless(
                        strbuf_printf(err, "address %.*s: %s", (int)addr.n, addr.p, why));
        return einval_unless(strbuf_puts(err, why));
}

static int split_host_port(struct span hp, struct span *ret_host, struct span *ret_port,
                           struct strbuf *err)
{
        static const char missing_port[] = "missing port in address";
        static const char too_many_colons[] = "too many colons in address";
        ssize_t i = span_last(hp, ':');
        size_t j = 0, k = 0;
        struct span host;

        if (i < 0)
                return addr_err(err, hp, missing_port);

        if (hp.p[0] == '[') {
                ssize_t end = span_index(hp, ']');

                if (end < 0)
                        return addr_err(err, hp, "missing ']' in address");
                if ((size_t)end + 1 == hp.n)
                        return addr_err(err, hp, missing_port);
                if (end + 1 != i) {
                        if (hp.p[end + 1] == ':')
                                return addr_err(err, hp, too_many_colons);
                        return addr_err(err, hp, missing_port);
                }
                host = (struct span){hp.p + 1, (size_t)end - 1};
                j = 1;
                k = (size_t)end + 1;
        } else {
                host = span_head(hp, (size_t)i);
                if (span_index(host, ':') >= 0)
                        return addr_err(err, hp, too_many_colons);
        }
        if (span_index(span_tail(hp, j), '[') >= 0)
                return addr_err(err, hp, "unexpected '[' in address");
        if (span_index(span_tail(hp, k), ']') >= 0)
                return addr_err(err, hp, "unexpected ']' in address");

        *ret_host = host;
        *ret_port = span_tail(hp, (size_t)i + 1);
        return 0;
}

/* strconv.ParseUint(s, 10, 64) success test: decimal digits only, no sign,
 * no underscores, fits 64 bits. */
static bool parse_uint64(struct span s, uint64_t *ret)
{
        uint64_t v = 0;

        if (s.n == 0)
                return false;
        for (size_t i = 0; i < s.n; i++) {
                unsigned d;

                if (s.p[i] < '0' || s.p[i] > '9')
                        return false;
                d = (unsigned)(s.p[i] - '0');
                if (v > (UINT64_MAX - d) / 10)
                        return false;
                v = v * 10 + d;
        }
        *ret = v;
        return true;
}

/* zos asIpPort: the cause text goes to @err. */
static int as_ip_port(struct span b, uint8_t ret_ip[16], uint16_t *ret_port, struct strbuf *err)
{
        _cleanup_strbuf_ struct strbuf split_err = STRBUF_INIT;
        struct span host, port;
        uint64_t v;
        int r;

        r = split_host_port(b, &host, &port, &split_err);
        if (r == -EINVAL)
                /* asIpPort wraps the SplitHostPort error once; Valid() wraps
                 * every asIpPort error again: hence the doubled prefix. */
                return einval_unless(strbuf_printf(err,
                                                   "failed to parse backend %.*s with error: %s",
                                                   (int)b.n, b.p, split_err.data));
        if (r < 0)
                return r;
        if (!wl__go_parse_ip(host.p, host.n, ret_ip))
                return einval_unless(strbuf_puts(err, "invalid ip"));
        if (!parse_uint64(port, &v))
                return einval_unless(
                        strbuf_printf(err, "invalid port in backend: %.*s", (int)port.n, port.p));
        if (v > 65535)
                return einval_unless(
                        strbuf_printf(err, "port '%.*s' must be <= 65535", (int)port.n, port.p));
        *ret_port = (uint16_t)v;
        return 0;
}

/* ---- net/url.Parse (the parts a backend URL goes through) ---- */

enum url_mode {
        ENC_PATH,
        ENC_HOST,
        ENC_ZONE,
        ENC_USERPASS,
        ENC_FRAGMENT,
};

/* url.shouldEscape. */
static bool should_escape(unsigned char c, enum url_mode mode)
{
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
                return false;
        if (mode == ENC_HOST || mode == ENC_ZONE) {
                /* sub-delims, plus : [ ] for host:port and [ipv6], plus < > " */
                if (c && strchr("!$&'()*+,;=:[]<>\"", c))
                        return false;
        }
        switch (c) {
        case '-':
        case '_':
        case '.':
        case '~':
                return false;
        case '$':
        case '&':
        case '+':
        case ',':
        case '/':
        case ':':
        case ';':
        case '=':
        case '?':
        case '@':
                switch (mode) {
                case ENC_PATH:
                        return c == '?';
                case ENC_USERPASS:
                        return c == '@' || c == '/' || c == '?' || c == ':';
                case ENC_FRAGMENT:
                        return false;
                default:
                        break;
                }
                break;
        default:
                break;
        }
        if (mode == ENC_FRAGMENT && (c == '!' || c == '(' || c == ')' || c == '*'))
                return false;
        return true;
}

/* "<before><strconv.Quote(s)><after>": net/url's error texts. */
static int quoted_error(struct strbuf *err, const char *before, struct span s, const char *after)
{
        int r = strbuf_puts(err, before);

        if (r >= 0)
                r = wl__go_quote(err, s.p, s.n);
        if (r >= 0)
                r = strbuf_puts(err, after);
        return einval_unless(r);
}

static int escape_error(struct strbuf *err, struct span s)
{
        return quoted_error(err, "invalid URL escape ", s, "");
}

/* url.unescape: validate @s in @mode and, when @out is given, append the
 * decoded bytes. Error texts are Go's EscapeError / InvalidHostError. */
static int unescape(struct span s, enum url_mode mode, struct strbuf *out, struct strbuf *err)
{
        int r;

        for (size_t i = 0; i < s.n;) {
                unsigned char c = (unsigned char)s.p[i];

                if (c == '%') {
                        if (i + 2 >= s.n || unhexchar(s.p[i + 1]) < 0 ||
                            unhexchar(s.p[i + 2]) < 0) {
                                struct span e = span_tail(s, i);

                                return escape_error(err, span_head(e, MIN(e.n, (size_t)3)));
                        }
                        /* RFC 3986 §3.2.2: a host may %-encode only non-ASCII
                         * bytes; RFC 6874 adds %25 for the zone. */
                        if (mode == ENC_HOST && unhexchar(s.p[i + 1]) < 8 &&
                            memcmp(s.p + i, "%25", 3) != 0)
                                return escape_error(err, (struct span){s.p + i, 3});
                        if (mode == ENC_ZONE) {
                                unsigned v = (unsigned)(unhexchar(s.p[i + 1]) << 4 |
                                                        unhexchar(s.p[i + 2]));

                                if (memcmp(s.p + i, "%25", 3) != 0 && v != ' ' &&
                                    should_escape((unsigned char)v, ENC_HOST))
                                        return escape_error(err, (struct span){s.p + i, 3});
                        }
                        i += 3;
                        continue;
                }
                if ((mode == ENC_HOST || mode == ENC_ZONE) && c < 0x80 && should_escape(c, mode))
                        return quoted_error(err, "invalid character ", (struct span){s.p + i, 1},
                                            " in host name");
                i++;
        }

        if (!out)
                return 0;
        for (size_t i = 0; i < s.n;) {
                char c = s.p[i];

                if (c == '%') {
                        c = (char)(unhexchar(s.p[i + 1]) << 4 | unhexchar(s.p[i + 2]));
                        i += 3;
                } else {
                        i++;
                }
                r = strbuf_putc(out, c);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* url.validOptionalPort: "" or ":" followed by ASCII digits. */
static bool valid_optional_port(struct span port)
{
        if (port.n == 0)
                return true;
        if (port.p[0] != ':')
                return false;
        for (size_t i = 1; i < port.n; i++)
                if (port.p[i] < '0' || port.p[i] > '9')
                        return false;
        return true;
}

static int invalid_port_error(struct strbuf *err, struct span colon_port)
{
        return quoted_error(err, "invalid port ", colon_port, " after host");
}

/* url.parseHost (Go 1.24.8+): appends the unescaped host to @out. */
static int parse_host(struct span host, struct strbuf *out, struct strbuf *err)
{
        ssize_t open = span_last(host, '[');
        int r;

        if (open > 0)
                return einval_unless(strbuf_puts(err, "invalid IP-literal"));
        if (open == 0) {
                _cleanup_strbuf_ struct strbuf name = STRBUF_INIT, aerr = STRBUF_INIT;
                ssize_t close = span_last(host, ']'), zone;
                struct span colon_port, hostname;
                struct go_addr addr;

                if (close < 0)
                        return einval_unless(strbuf_puts(err, "missing ']' in host"));
                colon_port = span_tail(host, (size_t)close + 1);
                if (!valid_optional_port(colon_port))
                        return invalid_port_error(err, colon_port);
                /* unescape(colonPort, encodeHost) cannot fail on ":digits". */

                hostname = (struct span){host.p + 1, (size_t)close - 1};
                zone = -1;
                for (size_t i = 0; i + 3 <= hostname.n; i++)
                        if (memcmp(hostname.p + i, "%25", 3) == 0) {
                                zone = (ssize_t)i;
                                break;
                        }
                if (zone >= 0) {
                        r = unescape(span_head(hostname, (size_t)zone), ENC_HOST, &name, err);
                        if (r >= 0)
                                r = unescape(span_tail(hostname, (size_t)zone), ENC_ZONE, &name,
                                             err);
                } else {
                        r = unescape(hostname, ENC_HOST, &name, err);
                }
                if (r < 0)
                        return r;

                /* Only an IPv6 literal may be bracketed (RFC 3986); IPv4-mapped is fine. */
                r = parse_addr((struct span){strempty(name.data), name.len}, &addr, &aerr);
                if (r == -EINVAL)
                        return einval_unless(strbuf_printf(err, "invalid host: %s", aerr.data));
                if (r < 0)
                        return r;
                if (addr.is4)
                        return einval_unless(strbuf_puts(err, "invalid IP-literal"));

                r = strbuf_putc(out, '[');
                if (r >= 0)
                        r = strbuf_append(out, name.data, name.len);
                if (r >= 0)
                        r = strbuf_putc(out, ']');
                if (r >= 0)
                        r = strbuf_append(out, colon_port.p, colon_port.n);
                return r;
        }

        ssize_t i = span_last(host, ':');
        if (i >= 0 && !valid_optional_port(span_tail(host, (size_t)i)))
                return invalid_port_error(err, span_tail(host, (size_t)i));
        return unescape(host, ENC_HOST, out, err);
}

/* url.validUserinfo: RFC 3986 userinfo characters, plus '@' (Go issue 3439). */
static bool valid_userinfo(struct span s)
{
        for (size_t i = 0; i < s.n; i++) {
                unsigned char c = (unsigned char)s.p[i];

                if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
                        continue;
                if (c && strchr("-._:~!$&'()*+,;=%@", c))
                        continue;
                return false;
        }
        return true;
}

static int parse_authority(struct span a, struct strbuf *host, struct strbuf *err)
{
        ssize_t at = span_last(a, '@');
        struct span userinfo;
        ssize_t colon;
        int r;

        r = parse_host(at < 0 ? a : span_tail(a, (size_t)at + 1), host, err);
        if (r < 0 || at < 0)
                return r;
        userinfo = span_head(a, (size_t)at);
        if (!valid_userinfo(userinfo))
                return einval_unless(strbuf_puts(err, "net/url: invalid userinfo"));
        colon = span_index(userinfo, ':');
        if (colon < 0)
                return unescape(userinfo, ENC_USERPASS, NULL, err);
        r = unescape(span_head(userinfo, (size_t)colon), ENC_USERPASS, NULL, err);
        if (r < 0)
                return r;
        return unescape(span_tail(userinfo, (size_t)colon + 1), ENC_USERPASS, NULL, err);
}

struct go_url {
        bool http;          /* Scheme (lower-cased by the parser) == "http" */
        struct strbuf host; /* Host: unescaped host[:port], "" when absent */
};

static void go_url_done(struct go_url *u)
{
        strbuf_done(&u->host);
}

/* url.parse(rawURL, viaRequest=false) without the fragment. */
static int url_parse_main(struct span s, struct go_url *u, struct strbuf *err)
{
        struct span rest = s;
        size_t scheme_len = 0, nq = 0;
        ssize_t q;

        for (size_t i = 0; i < s.n; i++)
                if ((unsigned char)s.p[i] < ' ' || s.p[i] == 0x7f)
                        return einval_unless(
                                strbuf_puts(err, "net/url: invalid control character in URL"));

        if (s.n == 1 && s.p[0] == '*')
                return 0; /* Path "*", no scheme */

        /* getScheme */
        for (size_t i = 0; i < s.n; i++) {
                char c = s.p[i];

                if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
                        continue;
                if ((c >= '0' && c <= '9') || c == '+' || c == '-' || c == '.') {
                        if (i == 0)
                                break;
                        continue;
                }
                if (c == ':') {
                        if (i == 0)
                                return einval_unless(strbuf_puts(err, "missing protocol scheme"));
                        scheme_len = i;
                        rest = span_tail(s, i + 1);
                }
                break;
        }
        u->http = scheme_len == 4 && (s.p[0] | 0x20) == 'h' && (s.p[1] | 0x20) == 't' &&
                  (s.p[2] | 0x20) == 't' && (s.p[3] | 0x20) == 'p';

        for (size_t i = 0; i < rest.n; i++)
                nq += rest.p[i] == '?';
        if (rest.n > 0 && rest.p[rest.n - 1] == '?' && nq == 1) {
                rest.n--; /* ForceQuery */
        } else {
                q = span_index(rest, '?');
                if (q >= 0)
                        rest.n = (size_t)q; /* RawQuery is not validated by Parse */
        }

        if (!span_has_prefix(rest, "/")) {
                ssize_t slash;

                if (scheme_len > 0)
                        return 0; /* Opaque: rootless path, no host */
                slash = span_index(rest, '/');
                if (span_index(slash < 0 ? rest : span_head(rest, (size_t)slash), ':') >= 0)
                        return einval_unless(
                                strbuf_puts(err, "first path segment in URL cannot contain colon"));
        }

        if ((scheme_len > 0 || !span_has_prefix(rest, "///")) && span_has_prefix(rest, "//")) {
                struct span authority = span_tail(rest, 2);
                ssize_t slash = span_index(authority, '/');
                int r;

                rest = (struct span){"", 0};
                if (slash >= 0) {
                        rest = span_tail(authority, (size_t)slash);
                        authority.n = (size_t)slash;
                }
                r = parse_authority(authority, &u->host, err);
                if (r < 0)
                        return r;
        }

        return unescape(rest, ENC_PATH, NULL, err); /* setPath */
}

/* url.Parse. On failure @err holds url.Error's text: parse "<url>": <why>. */
static int url_parse(const char *raw, struct go_url *u, struct strbuf *err)
{
        _cleanup_strbuf_ struct strbuf why = STRBUF_INIT;
        struct span s = {raw, strlen(raw)}, main = s;
        ssize_t hash = span_index(s, '#');
        int r;

        if (hash >= 0)
                main.n = (size_t)hash;
        r = url_parse_main(main, u, &why);
        if (r == -EINVAL)
                goto fail; /* reported with the URL cut at '#' */
        if (r < 0)
                return r;
        if (hash >= 0) {
                r = unescape(span_tail(s, (size_t)hash + 1), ENC_FRAGMENT, NULL, &why);
                if (r == -EINVAL) {
                        main = s; /* setFragment errors quote the whole URL */
                        goto fail;
                }
                if (r < 0)
                        return r;
        }
        return 0;

fail:
        r = strbuf_puts(err, "parse ");
        if (r >= 0)
                r = wl__go_quote(err, main.p, main.n);
        if (r >= 0)
                r = strbuf_printf(err, ": %.*s", (int)why.len, strempty(why.data));
        return einval_unless(r);
}

/* url.URL.Hostname and Port: split Host at its last colon when what follows
 * is digits, then strip one pair of brackets. */
static void url_hostname(const struct go_url *u, struct span *ret_host, struct span *ret_port)
{
        struct span host = {strempty(u->host.data), u->host.len}, port = {"", 0};
        ssize_t colon = span_last(host, ':');

        if (colon >= 0 && valid_optional_port(span_tail(host, (size_t)colon))) {
                port = span_tail(host, (size_t)colon + 1);
                host.n = (size_t)colon;
        }
        if (host.n >= 2 && host.p[0] == '[' && host.p[host.n - 1] == ']')
                host = (struct span){host.p + 1, host.n - 2};
        *ret_host = host;
        *ret_port = port;
}

/* ---- zos Backend.Valid ---- */

/* Validate one backend; on failure append the cause (the text zos wraps in
 * "failed to validate backend '<b>': ") to @why and return -EINVAL. On
 * success fill the backend's IP and port. */
static int backend_check(const char *b, bool passthrough, uint8_t ret_ip[16], uint16_t *ret_port,
                         struct strbuf *why)
{
        _cleanup_strbuf_ struct strbuf cause = STRBUF_INIT;
        _cleanup_(go_url_done) struct go_url u = {};
        struct span host, port;
        uint64_t v = 80;
        int r;

        if (passthrough) {
                r = as_ip_port((struct span){b, strlen(b)}, ret_ip, ret_port, &cause);
                if (r == -EINVAL)
                        return einval_unless(
                                strbuf_printf(why, "failed to parse backend %s with error: %.*s", b,
                                              (int)cause.len, cause.data));
                return r;
        }

        r = url_parse(b, &u, &cause);
        if (r == -EINVAL)
                return einval_unless(strbuf_printf(why, "failed to parse backend with error: %.*s",
                                                   (int)cause.len, cause.data));
        if (r < 0)
                return r;
        if (!u.http)
                return einval_unless(strbuf_puts(why, "scheme expected to be http"));
        url_hostname(&u, &host, &port);
        if (!wl__go_parse_ip(host.p, host.n, ret_ip) || ip_is_loopback(ret_ip))
                return einval_unless(strbuf_printf(why, "invalid ip address in backend: %.*s",
                                                   (int)host.n, host.p));

        /* Deviation: zos leaves the port of a URL backend unchecked and
         * Traefik then fails every request to it; we refuse it up front,
         * with the text zos uses for passthrough ports. */
        if (port.n > 0 && (!parse_uint64(port, &v) || v > 65535))
                return einval_unless(
                        strbuf_printf(why, "port '%.*s' must be <= 65535", (int)port.n, port.p));
        *ret_port = (uint16_t)v;
        return 0;
}

static bool ip_equal_public(const uint8_t ip[16], const struct wl_public_config *pc)
{
        uint8_t v4[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

        /* net.IP.Equal: 4- and 16-byte IPv4 forms compare equal; an unset
         * (nil) public IP matches nothing. */
        if (!pc)
                return false;
        if (pc->has_ipv4) {
                memcpy(v4 + 12, &pc->ipv4, 4);
                if (memcmp(ip, v4, 16) == 0)
                        return true;
        }
        return pc->has_ipv6 && memcmp(ip, &pc->ipv6, 16) == 0;
}

int wl_validate_backends(const struct wl_proxy *p, const struct wl_public_config *pc, char **reterr)
{
        _cleanup_strbuf_ struct strbuf list = STRBUF_INIT;
        size_t nerr = 0;
        int r;

        assert(p);

        /* Phase 1: every backend's syntax, all failures collected
         * (go-multierror ListFormatFunc):
         *   "1 error occurred:\n\t* <m>\n\n"
         *   "N errors occurred:\n\t* <m1>\n\t* <m2>\n\n" */
        for (size_t i = 0; i < p->n_backends; i++) {
                _cleanup_strbuf_ struct strbuf why = STRBUF_INIT;
                const char *b = strempty(p->backends[i]);
                uint8_t ip[16];
                uint16_t port;

                r = backend_check(b, p->tls_passthrough, ip, &port, &why);
                if (r == -EINVAL) {
                        r = strbuf_printf(&list, "\n\t* failed to validate backend '%s': %.*s", b,
                                          (int)why.len, why.data);
                        nerr++;
                }
                if (r < 0)
                        return r;
        }
        if (nerr > 0)
                return wl__fail(reterr, -EINVAL, "%zu error%s occurred:%s\n\n", nerr,
                                nerr == 1 ? "" : "s", list.data);

        /* Phase 2 (§4.3 "Then, for each backend"): no backend may be the
         * node's own public IP. Resolved as a separate, plain error after the
         * syntax errors, because the protocol document gives it unwrapped
         * and as a second step; the first offending backend is reported.
         * Like zos, the ip:port form is tried first, then the URL host. */
        for (size_t i = 0; i < p->n_backends; i++) {
                _cleanup_strbuf_ struct strbuf scratch = STRBUF_INIT;
                const char *b = strempty(p->backends[i]);
                uint8_t ip[16];
                uint16_t port;

                r = backend_check(b, true, ip, &port, &scratch);
                if (r == -EINVAL) {
                        strbuf_reset(&scratch);
                        r = backend_check(b, false, ip, &port, &scratch);
                }
                if (r == -ENOMEM)
                        return r;
                if (r == 0 && ip_equal_public(ip, pc))
                        return wl__fail(reterr, -EINVAL,
                                        "backend %s points to the node's own public IP address", b);
        }
        return 0;
}

int wl_backend_address(const char *backend, bool passthrough, struct sockaddr_in6 *ret)
{
        _cleanup_strbuf_ struct strbuf why = STRBUF_INIT;
        uint8_t ip[16];
        uint16_t port;
        int r;

        assert(backend && ret);

        r = backend_check(backend, passthrough, ip, &port, &why);
        if (r < 0)
                return r;
        *ret = (struct sockaddr_in6){
                .sin6_family = AF_INET6,
                .sin6_port = htons(port),
        };
        memcpy(&ret->sin6_addr, ip, 16);
        return 0;
}
