/* SPDX-License-Identifier: Apache-2.0 */
#include "proxy/access-log.h"

#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <time.h>

#include "common/macros.h"
#include "common/spsc-ring.h"
#include "proxy/proxy.h"

static const char *const proto_names[_PROXY_ACCESS_PROTO_MAX] = {
        [PROXY_ACCESS_PROTO_NONE] = NULL,
        [PROXY_ACCESS_PROTO_HTTP10] = "HTTP/1.0",
        [PROXY_ACCESS_PROTO_HTTP11] = "HTTP/1.1",
        [PROXY_ACCESS_PROTO_HTTP2] = "HTTP/2",
        [PROXY_ACCESS_PROTO_PASSTHROUGH] = "TLS passthrough",
        [PROXY_ACCESS_PROTO_WEBSOCKET] = "WebSocket",
};

static const char *const tls_names[_PROXY_ACCESS_TLS_MAX] = {
        [PROXY_ACCESS_TLS_NONE] = NULL,     [PROXY_ACCESS_TLS_1_0] = "TLSv1.0",
        [PROXY_ACCESS_TLS_1_1] = "TLSv1.1", [PROXY_ACCESS_TLS_1_2] = "TLSv1.2",
        [PROXY_ACCESS_TLS_1_3] = "TLSv1.3",
};

const char *proxy_access_proto_str(enum proxy_access_proto p)
{
        return (unsigned)p < _PROXY_ACCESS_PROTO_MAX ? proto_names[p] : NULL;
}

const char *proxy_access_tls_str(enum proxy_access_tls t)
{
        return (unsigned)t < _PROXY_ACCESS_TLS_MAX ? tls_names[t] : NULL;
}

enum proxy_access_tls proxy_access_tls_from_wire(uint16_t version)
{
        switch (version) {
        case 0x0301:
                return PROXY_ACCESS_TLS_1_0;
        case 0x0302:
                return PROXY_ACCESS_TLS_1_1;
        case 0x0303:
                return PROXY_ACCESS_TLS_1_2;
        case 0x0304:
                return PROXY_ACCESS_TLS_1_3;
        default:
                return PROXY_ACCESS_TLS_NONE;
        }
}

/* ======================================================================
 * Output with a hard end
 * ====================================================================== */

/* Every put checks the room left; once something did not fit, nothing more
 * is written and the result is -ENOBUFS. */
struct out {
        char *p;
        char *end;
        bool full;
};

static void put(struct out *o, const void *s, size_t n)
{
        if (o->full || (size_t)(o->end - o->p) < n) {
                o->full = true;
                return;
        }
        memcpy(o->p, s, n);
        o->p += n;
}

#define PUTS(o, lit) put((o), (lit), sizeof(lit) - 1)

static void put_u64(struct out *o, uint64_t v)
{
        char tmp[20];
        size_t i = sizeof(tmp);

        do {
                tmp[--i] = (char)('0' + v % 10);
                v /= 10;
        } while (v);
        put(o, tmp + i, sizeof(tmp) - i);
}

/* @v as exactly @width digits (zero-padded; @v must fit). */
static char *fmt_fixed(char *p, unsigned v, unsigned width)
{
        for (unsigned i = width; i > 0; i--) {
                p[i - 1] = (char)('0' + v % 10);
                v /= 10;
        }
        return p + width;
}

/* ======================================================================
 * Time: RFC 3339 in UTC, without gmtime_r() (glibc's takes a process-wide
 * lock, which every worker would contend on)
 * ====================================================================== */

/* Days since 1970-01-01 to a civil date (H. Hinnant's days_from_civil
 * inverse; exact for the proleptic Gregorian calendar). */
static void civil_from_days(uint64_t days, unsigned *ret_y, unsigned *ret_m, unsigned *ret_d)
{
        uint64_t z = days + 719468; /* days since 0000-03-01 */
        uint64_t era = z / 146097;
        unsigned doe = (unsigned)(z - era * 146097);
        unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
        unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        unsigned mp = (5 * doy + 2) / 153;
        unsigned m = mp < 10 ? mp + 3 : mp - 9;

        *ret_d = doy - (153 * mp + 2) / 5 + 1;
        *ret_m = m;
        *ret_y = (unsigned)(yoe + era * 400) + (m <= 2);
}

static void put_time(struct out *o, uint64_t ns)
{
        uint64_t s = ns / 1000000000u, days = s / 86400;
        unsigned sod = (unsigned)(s % 86400), y, m, d;
        char buf[32], *p = buf;

        civil_from_days(days, &y, &m, &d);
        /* uint64_t nanoseconds end in 2554: four digits are enough. */
        p = fmt_fixed(p, y, 4);
        *p++ = '-';
        p = fmt_fixed(p, m, 2);
        *p++ = '-';
        p = fmt_fixed(p, d, 2);
        *p++ = 'T';
        p = fmt_fixed(p, sod / 3600, 2);
        *p++ = ':';
        p = fmt_fixed(p, sod / 60 % 60, 2);
        *p++ = ':';
        p = fmt_fixed(p, sod % 60, 2);
        *p++ = '.';
        p = fmt_fixed(p, (unsigned)(ns % 1000000000u / 1000u), 6);
        *p++ = 'Z';
        put(o, buf, (size_t)(p - buf));
}

/* ======================================================================
 * Addresses, as inet_ntop() writes them (without its snprintf() cost)
 * ====================================================================== */

static char *fmt_dec(char *p, unsigned v)
{
        char tmp[10];
        size_t i = sizeof(tmp);

        do {
                tmp[--i] = (char)('0' + v % 10);
                v /= 10;
        } while (v);
        memcpy(p, tmp + i, sizeof(tmp) - i);
        return p + sizeof(tmp) - i;
}

static char *fmt_ipv4(char *p, const uint8_t a[4])
{
        for (unsigned i = 0; i < 4; i++) {
                if (i)
                        *p++ = '.';
                p = fmt_dec(p, a[i]);
        }
        return p;
}

/* RFC 5952 (the longest run of two or more zero groups, the first of equal
 * ones, becomes "::"; lower-case hex without leading zeros), with the last
 * 32 bits dotted for ::ffff:0:0/96 and for ::/96 past ::1 as glibc's
 * inet_ntop() does, so lines match what other tools print. */
static char *fmt_ipv6(char *p, const uint8_t a[16])
{
        static const char hex[] = "0123456789abcdef";
        unsigned w[8], best = 8, best_len = 0;

        for (unsigned i = 0; i < 8; i++)
                w[i] = (unsigned)a[2 * i] << 8 | a[2 * i + 1];
        for (unsigned i = 0, j; i < 8; i = j + 1) {
                for (j = i; j < 8 && w[j] == 0;)
                        j++;
                if (j - i > best_len) {
                        best = i;
                        best_len = j - i;
                }
        }
        if (best_len < 2)
                best = 8;
        for (unsigned i = 0; i < 8; i++) {
                if (best < 8 && i >= best && i < best + best_len) {
                        if (i == best)
                                *p++ = ':';
                        continue;
                }
                if (i)
                        *p++ = ':';
                if (i == 6 && best == 0 && (best_len == 6 || (best_len == 5 && w[5] == 0xffff)))
                        return fmt_ipv4(p, a + 12);
                for (int s = 12; s >= 0; s -= 4)
                        if (s == 0 || w[i] >> s)
                                *p++ = hex[w[i] >> s & 0xf];
        }
        if (best < 8 && best + best_len == 8)
                *p++ = ':';
        return p;
}

/* The address alone ("client") or with its port ("upstream": "a.b.c.d:p",
 * "[v6%scope]:p"). Anything but AF_INET/AF_INET6 is null. */
static void put_addr(struct out *o, const struct sockaddr *sa, bool with_port, unsigned *ret_port)
{
        char buf[INET6_ADDRSTRLEN + 24], *p = buf;
        unsigned port;

        if (sa && sa->sa_family == AF_INET) {
                const struct sockaddr_in *in = (const struct sockaddr_in *)sa;

                *p++ = '"';
                p = fmt_ipv4(p, (const uint8_t *)&in->sin_addr);
                port = ntohs(in->sin_port);
        } else if (sa && sa->sa_family == AF_INET6) {
                const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;

                *p++ = '"';
                if (with_port)
                        *p++ = '[';
                p = fmt_ipv6(p, in6->sin6_addr.s6_addr);
                if (in6->sin6_scope_id) {
                        *p++ = '%';
                        p = fmt_dec(p, in6->sin6_scope_id);
                }
                if (with_port)
                        *p++ = ']';
                port = ntohs(in6->sin6_port);
        } else {
                if (ret_port)
                        *ret_port = UINT32_MAX;
                return PUTS(o, "null");
        }
        if (with_port) {
                *p++ = ':';
                p = fmt_dec(p, port);
        }
        *p++ = '"';
        if (ret_port)
                *ret_port = port;
        put(o, buf, (size_t)(p - buf));
}

/* ======================================================================
 * JSON strings of remote bytes
 * ====================================================================== */

enum {
        C_PASS,  /* printable ASCII but '"' and '\\' */
        C_SHORT, /* a two-byte escape */
        C_CTRL,  /* \u00XX */
        C_HIGH,  /* 0x80..0xff: UTF-8 or not */
};

/* clang-format off */
static const uint8_t cclass[256] = {
        [0x00 ... 0x07] = C_CTRL,
        ['\b'] = C_SHORT, ['\t'] = C_SHORT, ['\n'] = C_SHORT,
        [0x0b] = C_CTRL,
        ['\f'] = C_SHORT, ['\r'] = C_SHORT,
        [0x0e ... 0x1f] = C_CTRL,
        ['"'] = C_SHORT, ['\\'] = C_SHORT,
        [0x7f] = C_CTRL,
        [0x80 ... 0xff] = C_HIGH,
};
/* clang-format on */

static char short_escape(uint8_t c)
{
        switch (c) {
        case '\b':
                return 'b';
        case '\f':
                return 'f';
        case '\n':
                return 'n';
        case '\r':
                return 'r';
        case '\t':
                return 't';
        default:
                return (char)c; /* '"' and '\\' */
        }
}

/* The length (2..4) of the well-formed UTF-8 sequence (RFC 3629: no
 * overlong forms, no surrogates, nothing above U+10FFFF) at @s, @n >= 1
 * bytes starting with a byte >= 0x80, and its code point; 0 if there is
 * none. */
static size_t utf8_decode(const uint8_t *s, size_t n, uint32_t *ret_cp)
{
        uint8_t c = s[0], lo = 0x80, hi = 0xbf;
        size_t len;
        uint32_t cp;

        if (c >= 0xc2 && c <= 0xdf) {
                len = 2;
                cp = c & 0x1f;
        } else if (c >= 0xe0 && c <= 0xef) {
                len = 3;
                cp = c & 0x0f;
                if (c == 0xe0)
                        lo = 0xa0; /* overlong */
                else if (c == 0xed)
                        hi = 0x9f; /* surrogates */
        } else if (c >= 0xf0 && c <= 0xf4) {
                len = 4;
                cp = c & 0x07;
                if (c == 0xf0)
                        lo = 0x90; /* overlong */
                else if (c == 0xf4)
                        hi = 0x8f; /* above U+10FFFF */
        } else {
                return 0;
        }
        if (n < len || s[1] < lo || s[1] > hi)
                return 0;
        cp = cp << 6 | (s[1] & 0x3f);
        for (size_t i = 2; i < len; i++) {
                if (s[i] < 0x80 || s[i] > 0xbf)
                        return 0;
                cp = cp << 6 | (s[i] & 0x3f);
        }
        *ret_cp = cp;
        return len;
}

static char *fmt_u_escape(char *p, uint32_t v)
{
        static const char hex[] = "0123456789abcdef";

        *p++ = '\\';
        *p++ = 'u';
        *p++ = hex[v >> 12 & 0xf];
        *p++ = hex[v >> 8 & 0xf];
        *p++ = hex[v >> 4 & 0xf];
        *p++ = hex[v & 0xf];
        return p;
}

/* "@s" for one of our own names (close reasons, TLS versions, protocols:
 * nothing to escape), or null for NULL. */
static void put_name(struct out *o, const char *s)
{
        if (!s)
                return PUTS(o, "null");
        PUTS(o, "\"");
        put(o, s, strlen(s));
        PUTS(o, "\"");
}

/* "…" with every byte of @s escaped (see access-log.h), at most @budget
 * output bytes between the quotes; an escape that would not fit is left
 * out with everything after it, and *truncated is set. NULL @s is null. */
static void put_str(struct out *o, struct proxy_access_str s, size_t budget, bool *truncated)
{
        const uint8_t *p = (const uint8_t *)s.p, *end;

        if (!s.p)
                return PUTS(o, "null");
        end = p + s.n;
        PUTS(o, "\"");
        while (p < end && !o->full) {
                char esc[12], *e = esc;
                const uint8_t *q = p;
                size_t len, k;
                uint32_t cp;

                while (q < end && cclass[*q] == C_PASS)
                        q++;
                if (q > p) {
                        len = MIN((size_t)(q - p), budget);
                        put(o, p, len);
                        budget -= len;
                        p += len;
                        if (p < q) {
                                *truncated = true;
                                break;
                        }
                        continue;
                }
                switch (cclass[*p]) {
                case C_SHORT:
                        *e++ = '\\';
                        *e++ = short_escape(*p);
                        k = 1;
                        break;
                case C_CTRL:
                        e = fmt_u_escape(e, *p);
                        k = 1;
                        break;
                default:
                        k = utf8_decode(p, (size_t)(end - p), &cp);
                        if (k == 0) {
                                /* Not UTF-8: the byte is replaced, one each. */
                                e = fmt_u_escape(e, 0xfffd);
                                k = 1;
                        } else if (cp >= 0x10000) {
                                cp -= 0x10000;
                                e = fmt_u_escape(e, 0xd800 + (cp >> 10));
                                e = fmt_u_escape(e, 0xdc00 + (cp & 0x3ff));
                        } else {
                                e = fmt_u_escape(e, cp);
                        }
                        break;
                }
                len = (size_t)(e - esc);
                if (len > budget) {
                        *truncated = true;
                        break;
                }
                put(o, esc, len);
                budget -= len;
                p += k;
        }
        PUTS(o, "\"");
}

/* ======================================================================
 * The line
 * ====================================================================== */

int proxy_access_format(const struct proxy_access_record *rec, unsigned flags, char *buf,
                        size_t size)
{
        struct out o = {buf, buf + size, false};
        struct proxy_access_str path = rec->path;
        uint64_t dur = rec->end_ns > rec->start_ns ? rec->end_ns - rec->start_ns : 0;
        bool truncated = false;
        unsigned port;

        if (path.p && !(flags & PROXY_ACCESS_KEEP_QUERY)) {
                const char *q = memchr(path.p, '?', path.n);

                if (q)
                        path.n = (size_t)(q - path.p);
        }

        PUTS(&o, "{\"time\":\"");
        put_time(&o, rec->realtime_ns > dur ? rec->realtime_ns - dur : 0);
        PUTS(&o, "\",\"client\":");
        put_addr(&o, rec->client, false, &port);
        PUTS(&o, ",\"client_port\":");
        if (port <= UINT16_MAX)
                put_u64(&o, port);
        else
                PUTS(&o, "null");
        PUTS(&o, ",\"workload\":");
        put_str(&o, rec->workload, PROXY_ACCESS_WORKLOAD_MAX, &truncated);
        PUTS(&o, ",\"host\":");
        put_str(&o, rec->host, PROXY_ACCESS_HOST_MAX, &truncated);
        PUTS(&o, ",\"method\":");
        put_str(&o, rec->method, PROXY_ACCESS_METHOD_MAX, &truncated);
        PUTS(&o, ",\"path\":");
        put_str(&o, path, PROXY_ACCESS_PATH_MAX, &truncated);
        PUTS(&o, ",\"status\":");
        if (rec->status >= 100 && rec->status <= 999)
                put_u64(&o, rec->status);
        else
                PUTS(&o, "null");
        PUTS(&o, ",\"req_bytes\":");
        put_u64(&o, rec->req_bytes);
        PUTS(&o, ",\"resp_bytes\":");
        put_u64(&o, rec->resp_bytes);
        PUTS(&o, ",\"duration_us\":");
        put_u64(&o, dur / 1000u);
        PUTS(&o, ",\"upstream\":");
        put_addr(&o, rec->upstream, true, NULL);
        PUTS(&o, ",\"upstream_us\":");
        if (rec->upstream_start_ns && rec->upstream_head_ns >= rec->upstream_start_ns)
                put_u64(&o, (rec->upstream_head_ns - rec->upstream_start_ns) / 1000u);
        else
                PUTS(&o, "null");
        PUTS(&o, ",\"close\":");
        put_name(&o, rec->closed ? proxy_close_reason_str(rec->close) : NULL);
        PUTS(&o, ",\"tls\":");
        put_name(&o, proxy_access_tls_str(rec->tls));
        PUTS(&o, ",\"proto\":");
        put_name(&o, proxy_access_proto_str(rec->proto));
        if (truncated)
                PUTS(&o, ",\"truncated\":true");
        PUTS(&o, "}\n");
        if (o.full)
                return -ENOBUFS;
        return (int)(o.p - buf);
}

/* ======================================================================
 * The engine's side of the sink
 * ====================================================================== */

static uint64_t now_ns(clockid_t clock)
{
        struct timespec ts;

        (void)clock_gettime(clock, &ts);
        return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int proxy__access_emit(struct proxy_access_sink *sink, unsigned worker,
                       struct proxy_access_record *rec)
{
        char line[PROXY_ACCESS_LINE_MAX];
        struct proxy_access_slot *slot;
        unsigned flags = 0;
        size_t half;
        int n, used;

        if (!sink || !atomic_load_explicit(&sink->enabled, memory_order_relaxed))
                return 0;
        slot = &sink->slots[worker % sink->n_slots];
        if (worker >= sink->n_slots)
                goto drop; /* slot i % n has another producer: never push there */
        if (!rec->realtime_ns) {
                uint64_t mono = now_ns(CLOCK_MONOTONIC);

                rec->realtime_ns = now_ns(CLOCK_REALTIME);
                if (!rec->end_ns)
                        rec->end_ns = mono;
                else if (rec->end_ns < mono)
                        rec->realtime_ns -= MIN(mono - rec->end_ns, rec->realtime_ns);
        } else if (!rec->end_ns) {
                rec->end_ns = now_ns(CLOCK_MONOTONIC);
        }
        if (atomic_load_explicit(&sink->keep_query, memory_order_relaxed))
                flags |= PROXY_ACCESS_KEEP_QUERY;
        n = proxy_access_format(rec, flags, line, sizeof(line));
        if (n < 0)
                goto drop; /* cannot happen: the line always fits */
        used = spsc_ring_push(slot->ring, line, (size_t)n);
        if (used < 0)
                goto drop;
        /* Once per crossing of the half: a burst gets the writer at once,
         * a trickle costs no syscall and waits for the writer's tick. */
        half = spsc_ring_size(slot->ring) / 2;
        if (sink->wake && (size_t)used >= half && (size_t)used - (size_t)n < half)
                sink->wake(sink->wake_ud);
        return 0;
drop:
        atomic_fetch_add_explicit(&slot->dropped, 1, memory_order_relaxed);
        return -ENOBUFS;
}
