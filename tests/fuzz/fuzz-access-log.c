/* SPDX-License-Identifier: Apache-2.0 */
/* The access log line (proxy/access-log.c). The input's first HDR bytes
 * are the record's numbers, addresses and enums, and the lengths that cut
 * the rest into the four strings (workload, host, method, path: any bytes
 * a client could send). The line must be printable ASCII ending in one
 * '\n', at most PROXY_ACCESS_LINE_MAX bytes, a JSON object with the keys in
 * their order, and each string must decode (by this file's own JSON and
 * UTF-8 code) to a prefix of what went in (a byte that is not UTF-8 as
 * U+FFFD, the query cut from the path), whole unless "truncated" is set.
 * A buffer one byte too short is refused without a byte written past it. */
#include <errno.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/access-log.h"
#include "proxy/proxy.h"

#define CHECK(x)                                                                                   \
        do {                                                                                       \
                if (!(x))                                                                          \
                        abort();                                                                   \
        } while (0)

struct hdr {
        uint8_t flags; /* see F_* */
        uint8_t close, proto, tls;
        uint16_t status;
        uint16_t len[3];   /* workload, host, method; the path is the rest */
        uint16_t short_by; /* F_SHORT: the buffer is this much (mod length) too short */
        uint16_t cport, uport;
        uint32_t scope;
        uint64_t start, end, real, ustart, uhead, req, resp;
        uint8_t caddr[16], uaddr[16];
};

#define F_KEEP_QUERY (1u << 0)
#define F_CLIENT_V6  (1u << 1)
#define F_UP_V6      (1u << 2)
#define F_NO_CLIENT  (1u << 3)
#define F_NO_UP      (1u << 4)
#define F_CLOSED     (1u << 5)
#define F_SHORT      (1u << 6)
#define F_NULL_STR   (1u << 7) /* the empty strings are null instead */

#define HDR sizeof(struct hdr)

/* ---- a JSON reader just big enough for the line ---- */

struct rd {
        const char *p, *end;
};

static bool eat(struct rd *r, const char *lit)
{
        size_t n = strlen(lit);

        if ((size_t)(r->end - r->p) < n || memcmp(r->p, lit, n) != 0)
                return false;
        r->p += n;
        return true;
}

static int hexval(char c)
{
        if (c >= '0' && c <= '9')
                return c - '0';
        if (c >= 'a' && c <= 'f')
                return c - 'a' + 10;
        return -1; /* the formatter writes lower case only */
}

static uint32_t hex4(struct rd *r)
{
        uint32_t v = 0;

        CHECK(r->end - r->p >= 4);
        for (int i = 0; i < 4; i++) {
                int h = hexval(*r->p++);

                CHECK(h >= 0);
                v = v << 4 | (uint32_t)h;
        }
        return v;
}

/* A JSON string into code points (@cp, at most @max); returns the count and
 * the bytes it took between the quotes in *ret_raw. */
static size_t read_string(struct rd *r, uint32_t *cp, size_t max, size_t *ret_raw)
{
        const char *start;
        size_t n = 0;

        CHECK(eat(r, "\""));
        start = r->p;
        for (;;) {
                uint32_t c;

                CHECK(r->p < r->end);
                if (*r->p == '"')
                        break;
                if (*r->p != '\\') {
                        c = (uint8_t)*r->p++;
                        CHECK(c >= 0x20 && c < 0x7f); /* no raw control or non-ASCII byte */
                } else {
                        r->p++;
                        CHECK(r->p < r->end);
                        switch (*r->p++) {
                        case '"':
                                c = '"';
                                break;
                        case '\\':
                                c = '\\';
                                break;
                        case 'b':
                                c = '\b';
                                break;
                        case 'f':
                                c = '\f';
                                break;
                        case 'n':
                                c = '\n';
                                break;
                        case 'r':
                                c = '\r';
                                break;
                        case 't':
                                c = '\t';
                                break;
                        case 'u':
                                c = hex4(r);
                                CHECK(c < 0xdc00 || c > 0xdfff); /* no lone low surrogate */
                                if (c >= 0xd800 && c <= 0xdbff) {
                                        uint32_t lo;

                                        CHECK(eat(r, "\\u"));
                                        lo = hex4(r);
                                        CHECK(lo >= 0xdc00 && lo <= 0xdfff);
                                        c = 0x10000 + ((c - 0xd800) << 10) + (lo - 0xdc00);
                                } else if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
                                        abort(); /* printable ASCII is never escaped */
                                }
                                break;
                        default:
                                abort();
                        }
                }
                CHECK(n < max);
                cp[n++] = c;
        }
        *ret_raw = (size_t)(r->p - start);
        r->p++;
        return n;
}

static bool read_null(struct rd *r)
{
        return eat(r, "null");
}

static uint64_t read_u64(struct rd *r)
{
        uint64_t v = 0;
        const char *s = r->p;

        while (r->p < r->end && *r->p >= '0' && *r->p <= '9') {
                CHECK(v <= (UINT64_MAX - 9) / 10 + 1);
                v = v * 10 + (uint64_t)(*r->p++ - '0');
        }
        CHECK(r->p > s);
        CHECK(r->p - s == 1 || *s != '0'); /* no leading zeros */
        return v;
}

/* ---- what the strings should decode to ---- */

/* RFC 3629, written differently from the formatter on purpose: the
 * smallest code point each length may encode and the surrogate gap. */
static size_t ref_decode(const uint8_t *s, size_t n, uint32_t *out)
{
        size_t k = 0;

        for (size_t i = 0; i < n;) {
                static const uint32_t min[5] = {0, 0, 0x80, 0x800, 0x10000};
                uint8_t b = s[i];
                size_t len = b < 0x80             ? 1
                             : (b & 0xe0) == 0xc0 ? 2
                             : (b & 0xf0) == 0xe0 ? 3
                             : (b & 0xf8) == 0xf0 ? 4
                                                  : 0;
                uint32_t c = len == 1 ? b : len == 2 ? b & 0x1fu : len == 3 ? b & 0x0fu : b & 0x07u;
                bool ok = len > 0 && i + len <= n;

                for (size_t j = 1; ok && j < len; j++) {
                        ok = (s[i + j] & 0xc0) == 0x80;
                        c = c << 6 | (s[i + j] & 0x3fu);
                }
                if (ok && len > 1)
                        ok = c >= min[len] && c <= 0x10ffff && (c < 0xd800 || c > 0xdfff);
                if (!ok) {
                        out[k++] = 0xfffd;
                        i++;
                } else {
                        out[k++] = c;
                        i += len;
                }
        }
        return k;
}

static uint32_t got[PROXY_ACCESS_LINE_MAX], want[PROXY_ACCESS_LINE_MAX];

/* Output bytes of one code point in a string. */
static size_t esc_len(uint32_t c)
{
        if (c == '"' || c == '\\' || c == '\b' || c == '\f' || c == '\n' || c == '\r' || c == '\t')
                return 2;
        if (c >= 0x20 && c < 0x7f)
                return 1;
        return c >= 0x10000 ? 12 : 6;
}

/* The next value is the string @in (NULL: null): a prefix of it within
 * @budget escaped bytes; sets *cut when it is not all of it. */
static void check_string(struct rd *r, const uint8_t *in, size_t in_len, bool is_null,
                         size_t budget, bool *cut)
{
        size_t n, m, raw;

        if (is_null) {
                CHECK(read_null(r));
                return;
        }
        n = read_string(r, got, PROXY_ACCESS_LINE_MAX, &raw);
        CHECK(raw <= budget);
        /* Every input byte makes at least one output byte, so what fits is
         * within the first @budget bytes; 4 more complete the sequence
         * the cut fell in. Longer input cannot fit whole. */
        m = ref_decode(in, in_len < budget + 4 ? in_len : budget + 4, want);
        CHECK(n <= m);
        CHECK(memcmp(got, want, n * sizeof(uint32_t)) == 0);
        if (n < m || in_len > budget + 4) {
                *cut = true;
                /* Cut only where the next escape would not have fitted. */
                CHECK(n < m && raw + esc_len(want[n]) > budget);
        }
}

static void check_u64_or_null(struct rd *r, bool is_null, uint64_t v)
{
        if (is_null)
                CHECK(read_null(r));
        else
                CHECK(read_u64(r) == v);
}

static void check_enum_string(struct rd *r, const char *s)
{
        size_t raw, n;

        if (!s) {
                CHECK(read_null(r));
                return;
        }
        n = read_string(r, got, 64, &raw);
        CHECK(n == strlen(s) && raw == n);
        for (size_t i = 0; i < n; i++)
                CHECK(got[i] == (uint8_t)s[i]);
}

/* An address string: only what inet_ntop() may write (the unit test
 * compares it with inet_ntop()). */
static void check_addr(struct rd *r, bool is_null)
{
        size_t raw, n;

        if (is_null) {
                CHECK(read_null(r));
                return;
        }
        n = read_string(r, got, 80, &raw);
        CHECK(n > 0 && n == raw);
        for (size_t i = 0; i < n; i++)
                CHECK(strchr("0123456789abcdef:.[]%", (int)got[i]));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        static char buf[PROXY_ACCESS_LINE_MAX + 64];
        struct sockaddr_in c4 = {.sin_family = AF_INET}, u4 = {.sin_family = AF_INET};
        struct sockaddr_in6 c6 = {.sin6_family = AF_INET6}, u6 = {.sin6_family = AF_INET6};
        struct proxy_access_record rec = {};
        const uint8_t *s[4];
        size_t sl[4], rest, path_len;
        struct hdr h = {};
        bool cut = false, nulls[4];
        unsigned flags;
        struct rd r;
        int n, k;

        memcpy(&h, data, size < HDR ? size : HDR);
        data += size < HDR ? size : HDR;
        rest = size < HDR ? 0 : size - HDR;
        for (unsigned i = 0; i < 3; i++) {
                sl[i] = rest ? h.len[i] % (rest + 1) : 0;
                s[i] = data;
                data += sl[i];
                rest -= sl[i];
        }
        s[3] = data;
        sl[3] = rest;
        for (unsigned i = 0; i < 4; i++)
                nulls[i] = (h.flags & F_NULL_STR) && sl[i] == 0;

        memcpy(&c4.sin_addr, h.caddr, 4);
        memcpy(&u4.sin_addr, h.uaddr, 4);
        c4.sin_port = c6.sin6_port = htons(h.cport);
        u4.sin_port = u6.sin6_port = htons(h.uport);
        memcpy(&c6.sin6_addr, h.caddr, 16);
        memcpy(&u6.sin6_addr, h.uaddr, 16);
        u6.sin6_scope_id = h.scope;
        rec = (struct proxy_access_record){
                .start_ns = h.start,
                .end_ns = h.end,
                .realtime_ns = h.real,
                .upstream_start_ns = h.ustart,
                .upstream_head_ns = h.uhead,
                .client = h.flags & F_NO_CLIENT   ? NULL
                          : h.flags & F_CLIENT_V6 ? (const struct sockaddr *)&c6
                                                  : (const struct sockaddr *)&c4,
                .upstream = h.flags & F_NO_UP   ? NULL
                            : h.flags & F_UP_V6 ? (const struct sockaddr *)&u6
                                                : (const struct sockaddr *)&u4,
                .workload = {nulls[0] ? NULL : (const char *)s[0], sl[0]},
                .host = {nulls[1] ? NULL : (const char *)s[1], sl[1]},
                .method = {nulls[2] ? NULL : (const char *)s[2], sl[2]},
                .path = {nulls[3] ? NULL : (const char *)s[3], sl[3]},
                .req_bytes = h.req,
                .resp_bytes = h.resp,
                .status = h.status,
                .closed = h.flags & F_CLOSED,
                .close = h.close,
                .proto = h.proto,
                .tls = h.tls,
        };
        flags = h.flags & F_KEEP_QUERY ? PROXY_ACCESS_KEEP_QUERY : 0;

        n = proxy_access_format(&rec, flags, buf, PROXY_ACCESS_LINE_MAX);
        CHECK(n > 0 && n <= (int)PROXY_ACCESS_LINE_MAX);
        CHECK(buf[n - 1] == '\n');
        for (int i = 0; i < n - 1; i++)
                CHECK(buf[i] >= 0x20 && buf[i] < 0x7f);

        r = (struct rd){buf, buf + n - 1};
        CHECK(eat(&r, "{\"time\":\""));
        CHECK(r.end - r.p > 28 && r.p[4] == '-' && r.p[10] == 'T' && r.p[26] == 'Z');
        r.p += 27;
        CHECK(eat(&r, "\",\"client\":"));
        check_addr(&r, !rec.client);
        CHECK(eat(&r, ",\"client_port\":"));
        check_u64_or_null(&r, !rec.client, h.cport);
        CHECK(eat(&r, ",\"workload\":"));
        check_string(&r, s[0], sl[0], nulls[0], PROXY_ACCESS_WORKLOAD_MAX, &cut);
        CHECK(eat(&r, ",\"host\":"));
        check_string(&r, s[1], sl[1], nulls[1], PROXY_ACCESS_HOST_MAX, &cut);
        CHECK(eat(&r, ",\"method\":"));
        check_string(&r, s[2], sl[2], nulls[2], PROXY_ACCESS_METHOD_MAX, &cut);
        CHECK(eat(&r, ",\"path\":"));
        path_len = sl[3];
        if (!(flags & PROXY_ACCESS_KEEP_QUERY)) {
                const uint8_t *q = memchr(s[3], '?', sl[3]);

                if (q)
                        path_len = (size_t)(q - s[3]);
        }
        check_string(&r, s[3], path_len, nulls[3], PROXY_ACCESS_PATH_MAX, &cut);
        CHECK(eat(&r, ",\"status\":"));
        check_u64_or_null(&r, h.status < 100 || h.status > 999, h.status);
        CHECK(eat(&r, ",\"req_bytes\":"));
        CHECK(read_u64(&r) == h.req);
        CHECK(eat(&r, ",\"resp_bytes\":"));
        CHECK(read_u64(&r) == h.resp);
        CHECK(eat(&r, ",\"duration_us\":"));
        CHECK(read_u64(&r) == (h.end > h.start ? (h.end - h.start) / 1000 : 0));
        CHECK(eat(&r, ",\"upstream\":"));
        check_addr(&r, !rec.upstream);
        CHECK(eat(&r, ",\"upstream_us\":"));
        check_u64_or_null(&r, !h.ustart || h.uhead < h.ustart, (h.uhead - h.ustart) / 1000);
        CHECK(eat(&r, ",\"close\":"));
        check_enum_string(&r, rec.closed ? proxy_close_reason_str(h.close) : NULL);
        CHECK(eat(&r, ",\"tls\":"));
        check_enum_string(&r, proxy_access_tls_str(h.tls));
        CHECK(eat(&r, ",\"proto\":"));
        check_enum_string(&r, proxy_access_proto_str(h.proto));
        if (cut)
                CHECK(eat(&r, ",\"truncated\":true"));
        CHECK(eat(&r, "}"));
        CHECK(r.p == r.end);

        /* Too small a buffer: refused, nothing written past it. */
        if (h.flags & F_SHORT) {
                size_t small = (size_t)n - 1 - h.short_by % (size_t)n;

                memset(buf, 0x5a, sizeof(buf));
                k = proxy_access_format(&rec, flags, buf, small);
                CHECK(k == -ENOBUFS);
                for (size_t i = small; i < sizeof(buf); i++)
                        CHECK(buf[i] == 0x5a);
        }
        return 0;
}
