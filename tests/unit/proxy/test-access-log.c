/* SPDX-License-Identifier: Apache-2.0 */
/* The access log line (proxy/access-log.c), field by field: every line is
 * parsed back with jansson, so it is valid JSON, and the exact text is
 * checked where the escaping is the point. */
#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "common/macros.h"
#include "common/spsc-ring.h"
#include "proxy/access-log.h"
#include "proxy/proxy.h"

#define START_NS 1000000000ull
/* 2026-12-07T17:07:28.123456789Z, the start; the end is 1834567 ns later. */
#define START_REAL_NS 1796663248123456789ull
#define DUR_NS        1834567ull

static char line[PROXY_ACCESS_LINE_MAX + 1];

static struct sockaddr_in sin4(const char *a, uint16_t port)
{
        struct sockaddr_in s = {.sin_family = AF_INET, .sin_port = htons(port)};

        assert_int_equal(inet_pton(AF_INET, a, &s.sin_addr), 1);
        return s;
}

static struct sockaddr_in6 sin6(const char *a, uint16_t port, uint32_t scope)
{
        struct sockaddr_in6 s = {.sin6_family = AF_INET6, .sin6_port = htons(port)};

        assert_int_equal(inet_pton(AF_INET6, a, &s.sin6_addr), 1);
        s.sin6_scope_id = scope;
        return s;
}

static struct proxy_access_str str_n(const char *s, size_t n)
{
        return (struct proxy_access_str){s, n};
}

static struct proxy_access_str str(const char *s)
{
        return str_n(s, strlen(s));
}

/* Format into @line (NUL-terminated), check the invariants every line has,
 * and return its length. */
static size_t fmt(const struct proxy_access_record *rec, unsigned flags)
{
        int n = proxy_access_format(rec, flags, line, PROXY_ACCESS_LINE_MAX);

        assert_true(n > 0 && n <= (int)PROXY_ACCESS_LINE_MAX);
        line[n] = 0;
        assert_int_equal(line[n - 1], '\n');
        for (int i = 0; i < n - 1; i++)
                assert_true(line[i] >= 0x20 && line[i] <= 0x7e); /* printable ASCII */
        return (size_t)n;
}

static json_t *parse_flags(size_t n, size_t flags)
{
        json_error_t err;
        json_t *j = json_loadb(line, n - 1, JSON_ALLOW_NUL | JSON_REJECT_DUPLICATES | flags, &err);

        if (!j)
                fail_msg("not JSON (%s at %d): %s", err.text, err.position, line);
        assert_true(json_is_object(j));
        return j;
}

static json_t *parse(size_t n)
{
        return parse_flags(n, 0);
}

static void assert_str_field(json_t *j, const char *key, const char *want)
{
        json_t *v = json_object_get(j, key);

        assert_non_null(v);
        if (!json_is_string(v))
                fail_msg("%s is not a string", key);
        assert_string_equal(json_string_value(v), want);
}

static void assert_int_field(json_t *j, const char *key, long long want)
{
        json_t *v = json_object_get(j, key);

        assert_non_null(v);
        if (!json_is_integer(v))
                fail_msg("%s is not an integer", key);
        assert_int_equal(json_integer_value(v), want);
}

static void assert_null_field(json_t *j, const char *key)
{
        json_t *v = json_object_get(j, key);

        assert_non_null(v);
        if (!json_is_null(v))
                fail_msg("%s is not null", key);
}

static struct proxy_access_record full_record(const struct sockaddr_in *client,
                                              const struct sockaddr_in6 *up)
{
        return (struct proxy_access_record){
                .start_ns = START_NS,
                .end_ns = START_NS + DUR_NS,
                .realtime_ns = START_REAL_NS + DUR_NS,
                .upstream_start_ns = START_NS + 100000,
                .upstream_head_ns = START_NS + 1602000,
                .client = (const struct sockaddr *)client,
                .upstream = (const struct sockaddr *)up,
                .workload = str("42-web"),
                .host = str("web.gw.example.com"),
                .method = str("GET"),
                .path = str("/index.html?token=secret"),
                .req_bytes = 78,
                .resp_bytes = 1432,
                .status = 200,
                .proto = PROXY_ACCESS_PROTO_HTTP11,
                .tls = PROXY_ACCESS_TLS_1_3,
        };
}

static void test_http_request(void **state)
{
        struct sockaddr_in client = sin4("203.0.113.5", 51234);
        struct sockaddr_in6 up = sin6("300:1::2", 8080, 0);
        struct proxy_access_record rec = full_record(&client, &up);
        size_t n = fmt(&rec, 0);
        json_t *j;

        assert_string_equal(
                line,
                "{\"time\":\"2026-12-07T17:07:28.123456Z\",\"client\":\"203.0.113.5\","
                "\"client_port\":51234,\"workload\":\"42-web\",\"host\":\"web.gw.example.com\","
                "\"method\":\"GET\",\"path\":\"/index.html\",\"status\":200,\"req_bytes\":78,"
                "\"resp_bytes\":1432,\"duration_us\":1834,\"upstream\":\"[300:1::2]:8080\","
                "\"upstream_us\":1502,\"close\":null,\"tls\":\"TLSv1.3\",\"proto\":\"HTTP/1.1\"}\n");
        j = parse(n);
        assert_int_equal(json_object_size(j), 16);
        assert_str_field(j, "time", "2026-12-07T17:07:28.123456Z");
        assert_str_field(j, "client", "203.0.113.5");
        assert_int_field(j, "client_port", 51234);
        assert_str_field(j, "workload", "42-web");
        assert_str_field(j, "host", "web.gw.example.com");
        assert_str_field(j, "method", "GET");
        assert_str_field(j, "path", "/index.html");
        assert_int_field(j, "status", 200);
        assert_int_field(j, "req_bytes", 78);
        assert_int_field(j, "resp_bytes", 1432);
        assert_int_field(j, "duration_us", 1834);
        assert_str_field(j, "upstream", "[300:1::2]:8080");
        assert_int_field(j, "upstream_us", 1502);
        assert_null_field(j, "close");
        assert_str_field(j, "tls", "TLSv1.3");
        assert_str_field(j, "proto", "HTTP/1.1");
        json_decref(j);

        /* The last request of a connection says why it ended. */
        rec.closed = true;
        rec.close = PROXY_CLOSE_KEEPALIVE_DONE;
        j = parse(fmt(&rec, 0));
        assert_str_field(j, "close", "keepalive-done");
        json_decref(j);
}

/* A passthrough tunnel: no method, path or status; an IPv6 client. */
static void test_passthrough(void **state)
{
        struct sockaddr_in6 client = sin6("2001:db8::5", 40000, 0);
        struct sockaddr_in up = sin4("10.20.30.40", 443);
        struct proxy_access_record rec = {
                .start_ns = 5,
                .end_ns = 5 + 60000000000ull,
                .realtime_ns = 1700000060000000000ull,
                .upstream_start_ns = 10,
                .upstream_head_ns = 10 + 2500000,
                .client = (const struct sockaddr *)&client,
                .upstream = (const struct sockaddr *)&up,
                .workload = str("7-db"),
                .host = str("db.example.org"),
                .req_bytes = 123456789012ull,
                .resp_bytes = 9,
                .closed = true,
                .close = PROXY_CLOSE_DONE,
                .proto = PROXY_ACCESS_PROTO_PASSTHROUGH,
        };
        json_t *j = parse(fmt(&rec, 0));

        assert_str_field(j, "time", "2023-11-14T22:13:20.000000Z");
        assert_str_field(j, "client", "2001:db8::5");
        assert_int_field(j, "client_port", 40000);
        assert_null_field(j, "method");
        assert_null_field(j, "path");
        assert_null_field(j, "status");
        assert_int_field(j, "req_bytes", 123456789012ll);
        assert_int_field(j, "duration_us", 60000000);
        assert_str_field(j, "upstream", "10.20.30.40:443");
        assert_int_field(j, "upstream_us", 2500);
        assert_str_field(j, "close", "done");
        assert_null_field(j, "tls");
        assert_str_field(j, "proto", "TLS passthrough");
        json_decref(j);
}

/* A connection that ended before any request: only what is known. */
static void test_nothing_known(void **state)
{
        struct proxy_access_record rec = {};
        json_t *j = parse(fmt(&rec, 0));

        assert_str_field(j, "time", "1970-01-01T00:00:00.000000Z");
        assert_null_field(j, "client");
        assert_null_field(j, "client_port");
        assert_null_field(j, "workload");
        assert_null_field(j, "host");
        assert_null_field(j, "upstream");
        assert_null_field(j, "upstream_us");
        assert_null_field(j, "close");
        assert_null_field(j, "proto");
        assert_int_field(j, "duration_us", 0);
        assert_null(json_object_get(j, "truncated"));
        json_decref(j);

        /* An empty string is not null. */
        rec.host = str("");
        j = parse(fmt(&rec, 0));
        assert_str_field(j, "host", "");
        json_decref(j);

        /* An upstream attempt without a response head: no upstream time. */
        rec.upstream_start_ns = 7;
        j = parse(fmt(&rec, 0));
        assert_null_field(j, "upstream_us");
        json_decref(j);
}

static void test_query(void **state)
{
        struct proxy_access_record rec = {.path = str("/a/b?c=d&e=f?g")};
        json_t *j;

        j = parse(fmt(&rec, 0));
        assert_str_field(j, "path", "/a/b");
        json_decref(j);
        j = parse(fmt(&rec, PROXY_ACCESS_KEEP_QUERY));
        assert_str_field(j, "path", "/a/b?c=d&e=f?g");
        json_decref(j);
        rec.path = str("?only");
        j = parse(fmt(&rec, 0));
        assert_str_field(j, "path", "");
        json_decref(j);
        rec.path = str("*");
        j = parse(fmt(&rec, 0));
        assert_str_field(j, "path", "*");
        json_decref(j);
}

/* What ends up between the quotes of "path" (keeping the query, so '?'
 * is just a byte), and what JSON makes of it again. */
static void check_escape(const char *in, size_t in_len, const char *want_raw, const char *want)
{
        struct proxy_access_record rec = {.path = str_n(in, in_len)};
        size_t n = fmt(&rec, PROXY_ACCESS_KEEP_QUERY);
        const char *p = strstr(line, ",\"path\":\""), *q;
        json_t *j;

        assert_non_null(p);
        p += 9;
        q = strstr(p, "\",\"status\":");
        assert_non_null(q);
        if ((size_t)(q - p) != strlen(want_raw) || memcmp(p, want_raw, strlen(want_raw)) != 0)
                fail_msg("escaped as %.*s, want %s", (int)(q - p), p, want_raw);
        j = parse(n);
        assert_str_field(j, "path", want);
        assert_null(json_object_get(j, "truncated"));
        json_decref(j);
}

#define ESC(in, raw, want) check_escape((in), sizeof(in) - 1, (raw), (want))

static void test_escaping(void **state)
{
        ESC("plain/ascii-~!", "plain/ascii-~!", "plain/ascii-~!");
        ESC("a\"b\\c", "a\\\"b\\\\c", "a\"b\\c");
        ESC("\b\f\n\r\t", "\\b\\f\\n\\r\\t", "\b\f\n\r\t");
        ESC("\x01\x1f\x7f\x0b", "\\u0001\\u001f\\u007f\\u000b", "\x01\x1f\x7f\x0b");
        /* NUL inside a length-counted string. */
        check_escape("a\0b", 3, "a\\u0000b", "a");
        /* Well-formed UTF-8: escaped, so the line stays ASCII. */
        ESC("\xc3\xa9", "\\u00e9", "\xc3\xa9");
        ESC("\xe2\x82\xac", "\\u20ac", "\xe2\x82\xac");
        ESC("\xf0\x9f\x98\x80", "\\ud83d\\ude00", "\xf0\x9f\x98\x80");
        ESC("\xf4\x8f\xbf\xbf", "\\udbff\\udfff", "\xf4\x8f\xbf\xbf"); /* U+10FFFF */
        ESC("\xc2\x85", "\\u0085", "\xc2\x85");                        /* C1 control NEL */
        ESC("\xe2\x80\xae\xe2\x80\xa8", "\\u202e\\u2028",
            "\xe2\x80\xae\xe2\x80\xa8"); /* bidi override, line separator */
        /* Not UTF-8: one U+FFFD per byte that is not part of a sequence. */
        ESC("\x80", "\\ufffd", "\xef\xbf\xbd");
        ESC("\xff", "\\ufffd", "\xef\xbf\xbd");
        ESC("\xc0\x80", "\\ufffd\\ufffd", "\xef\xbf\xbd\xef\xbf\xbd"); /* overlong NUL */
        ESC("\xe0\x80\xaf", "\\ufffd\\ufffd\\ufffd",
            "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"); /* overlong '/' */
        ESC("\xed\xa0\x80", "\\ufffd\\ufffd\\ufffd",
            "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"); /* surrogate */
        ESC("\xf4\x90\x80\x80", "\\ufffd\\ufffd\\ufffd\\ufffd",
            "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");       /* > U+10FFFF */
        ESC("\xe2\x82", "\\ufffd\\ufffd", "\xef\xbf\xbd\xef\xbf\xbd"); /* cut at the end */
        ESC("\xe2\x82"
            "A",
            "\\ufffd\\ufffdA",
            "\xef\xbf\xbd\xef\xbf\xbd"
            "A"); /* cut */
        ESC("\xf0\x9f\x98", "\\ufffd\\ufffd\\ufffd", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");
        ESC("\xc3\xa9\xff\xc3\xa9", "\\u00e9\\ufffd\\u00e9", "\xc3\xa9\xef\xbf\xbd\xc3\xa9");

        /* The other strings go through the same escaping. */
        struct proxy_access_record rec = {
                .workload = str("w\"1"),
                .host = str("h\n"),
                .method = str("G\x1b[31mET"),
        };
        json_t *j = parse(fmt(&rec, 0));

        assert_non_null(strstr(line, "\"method\":\"G\\u001b[31mET\""));
        assert_str_field(j, "workload", "w\"1");
        assert_str_field(j, "host", "h\n");
        assert_str_field(j, "method", "G\x1b[31mET");
        json_decref(j);
}

static size_t field_len(json_t *j, const char *key)
{
        return json_string_length(json_object_get(j, key));
}

static void test_truncation(void **state)
{
        static char big[12000];
        struct proxy_access_record rec = {};
        json_t *j;
        size_t n;

        /* Exactly the budget: whole, not truncated. */
        memset(big, 'a', sizeof(big));
        rec.path = str_n(big, PROXY_ACCESS_PATH_MAX);
        j = parse(fmt(&rec, 0));
        assert_int_equal(field_len(j, "path"), PROXY_ACCESS_PATH_MAX);
        assert_null(json_object_get(j, "truncated"));
        json_decref(j);

        /* One more: cut at the budget and marked. */
        rec.path = str_n(big, PROXY_ACCESS_PATH_MAX + 1);
        j = parse(fmt(&rec, 0));
        assert_int_equal(field_len(j, "path"), PROXY_ACCESS_PATH_MAX);
        assert_true(json_is_true(json_object_get(j, "truncated")));
        json_decref(j);

        /* The query goes first: a long query alone truncates nothing. */
        memcpy(big, "/x?", 3);
        rec.path = str_n(big, sizeof(big));
        j = parse(fmt(&rec, 0));
        assert_str_field(j, "path", "/x");
        assert_null(json_object_get(j, "truncated"));
        json_decref(j);
        memset(big, 'a', sizeof(big));

        /* Escapes are never split: 6 bytes each, 341 fit in 2048. */
        for (size_t i = 0; i + 1 < sizeof(big); i += 2)
                memcpy(big + i, "\xc3\xa9", 2);
        rec.path = str_n(big, 2000);
        n = fmt(&rec, 0);
        j = parse(n);
        assert_int_equal(json_string_length(json_object_get(j, "path")), 341 * 2);
        assert_true(json_is_true(json_object_get(j, "truncated")));
        json_decref(j);

        /* Nor surrogate pairs: 12 bytes each, 170 fit. */
        for (size_t i = 0; i + 3 < sizeof(big); i += 4)
                memcpy(big + i, "\xf0\x9f\x98\x80", 4);
        rec.path = str_n(big, 4000);
        j = parse(fmt(&rec, 0));
        assert_int_equal(field_len(j, "path"), 170 * 4);
        assert_true(json_is_true(json_object_get(j, "truncated")));
        json_decref(j);

        /* The other budgets. */
        memset(big, 'w', sizeof(big));
        rec = (struct proxy_access_record){
                .workload = str_n(big, 1000),
                .host = str_n(big, 1000),
                .method = str_n(big, 1000),
        };
        j = parse(fmt(&rec, 0));
        assert_int_equal(field_len(j, "workload"), PROXY_ACCESS_WORKLOAD_MAX);
        assert_int_equal(field_len(j, "host"), PROXY_ACCESS_HOST_MAX);
        assert_int_equal(field_len(j, "method"), PROXY_ACCESS_METHOD_MAX);
        assert_true(json_is_true(json_object_get(j, "truncated")));
        json_decref(j);
}

/* The longest line there is: every string past its budget with the
 * longest escapes, the longest addresses and numbers. It fits
 * PROXY_ACCESS_LINE_MAX, the fixed part fits PROXY_ACCESS_FIXED_MAX, and a
 * buffer one byte short is refused without a byte written past it. */
static void test_longest_line(void **state)
{
        static char big[8000];
        struct sockaddr_in6 client = sin6("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 65535, 0);
        struct sockaddr_in6 up = sin6("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 65535, UINT32_MAX);
        struct proxy_access_record rec = {
                .start_ns = 0,
                .end_ns = UINT64_MAX,
                .realtime_ns = UINT64_MAX,
                .upstream_start_ns = 1,
                .upstream_head_ns = UINT64_MAX,
                .client = (const struct sockaddr *)&client,
                .upstream = (const struct sockaddr *)&up,
                .req_bytes = UINT64_MAX,
                .resp_bytes = UINT64_MAX,
                .status = 999,
                .closed = true,
                .close = PROXY_CLOSE_REQUEST_TIMEOUT,
                .proto = PROXY_ACCESS_PROTO_PASSTHROUGH,
                .tls = PROXY_ACCESS_TLS_1_3,
        };
        char buf[PROXY_ACCESS_LINE_MAX + 16];
        size_t n, strings;
        json_t *j;

        for (size_t i = 0; i + 3 < sizeof(big); i += 4)
                memcpy(big + i, "\xf0\x9f\x98\x80", 4);
        rec.workload = rec.host = rec.method = rec.path = str_n(big, sizeof(big));
        n = fmt(&rec, PROXY_ACCESS_KEEP_QUERY);
        /* Numbers above INT64_MAX: jansson reads them as doubles only. */
        j = parse_flags(n, JSON_DECODE_INT_AS_REAL);
        strings = (field_len(j, "workload") + field_len(j, "host") + field_len(j, "method") +
                   field_len(j, "path")) *
                  3; /* each 4-byte character is 12 output bytes */
        assert_true(strings <= PROXY_ACCESS_WORKLOAD_MAX + PROXY_ACCESS_HOST_MAX +
                                       PROXY_ACCESS_METHOD_MAX + PROXY_ACCESS_PATH_MAX);
        assert_true(n - strings <= PROXY_ACCESS_FIXED_MAX);
        print_message("# longest line %zu bytes, %zu of them outside the strings\n", n,
                      n - strings);
        assert_non_null(strstr(line, "\"duration_us\":18446744073709551,"));
        assert_non_null(strstr(line, "\"req_bytes\":18446744073709551615,"));
        json_decref(j);

        for (size_t size = 0; size < n; size++) {
                memset(buf, 0x5a, sizeof(buf));
                assert_int_equal(proxy_access_format(&rec, PROXY_ACCESS_KEEP_QUERY, buf, size),
                                 -ENOBUFS);
                for (size_t i = size; i < sizeof(buf); i++)
                        assert_int_equal(buf[i], 0x5a);
        }
        assert_int_equal(proxy_access_format(&rec, PROXY_ACCESS_KEEP_QUERY, buf, n), (int)n);
        assert_memory_equal(buf, line, n);
}

/* Addresses as inet_ntop() writes them (a differential check), with the
 * port separate for the client and in the string for the upstream. */
static void check_v6(const uint8_t a[16])
{
        struct sockaddr_in6 s = {.sin6_family = AF_INET6, .sin6_port = htons(8443)};
        struct proxy_access_record rec = {.client = (const struct sockaddr *)&s,
                                          .upstream = (const struct sockaddr *)&s};
        char want[INET6_ADDRSTRLEN], up[INET6_ADDRSTRLEN + 16];
        json_t *j;

        memcpy(&s.sin6_addr, a, 16);
        assert_non_null(inet_ntop(AF_INET6, a, want, sizeof(want)));
        j = parse(fmt(&rec, 0));
        assert_str_field(j, "client", want);
        snprintf(up, sizeof(up), "[%s]:8443", want);
        assert_str_field(j, "upstream", up);
        json_decref(j);
}

static void test_addresses(void **state)
{
        static const char *const v6[] = {
                "::",
                "::1",
                "1::",
                "::ffff:1.2.3.4",
                "::1.2.3.4",
                "::ffff:0:1.2.3.4",
                "::ffff",
                "::fffe:1.2.3.4",
                "1:0:0:2:0:0:0:3",
                "1:0:0:0:2:0:0:3",
                "1:0:2:0:3:0:4:0",
                "0:1:0:0:0:0:0:0",
                "2001:db8::ffff:0:1",
                "fe80::1:0:0:0",
                "1:2:3:4:5:6:7:8",
                "0:0:1::",
                "::0:1:2:3:4:5",
                "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
        };
        struct sockaddr_in6 s6;
        struct sockaddr_in s4;
        uint8_t a[16];
        unsigned seed = 12345;
        json_t *j;

        for (size_t i = 0; i < ELEMENTSOF(v6); i++) {
                assert_int_equal(inet_pton(AF_INET6, v6[i], a), 1);
                check_v6(a);
        }
        /* Random addresses, with zero groups made likely. */
        for (unsigned k = 0; k < 20000; k++) {
                for (unsigned i = 0; i < 8; i++) {
                        unsigned r = (unsigned)rand_r(&seed);
                        unsigned v = r % 3 == 0   ? 0
                                     : r % 3 == 1 ? (r >> 4) & 0xffff
                                                  : (r >> 4) & 0xf;

                        a[2 * i] = (uint8_t)(v >> 8);
                        a[2 * i + 1] = (uint8_t)v;
                }
                check_v6(a);
        }
        for (unsigned k = 0; k < 2000; k++) {
                char want[INET_ADDRSTRLEN], up[INET_ADDRSTRLEN + 8];
                struct proxy_access_record rec = {.client = (const struct sockaddr *)&s4,
                                                  .upstream = (const struct sockaddr *)&s4};

                s4 = (struct sockaddr_in){.sin_family = AF_INET, .sin_port = htons((uint16_t)k)};
                s4.sin_addr.s_addr = k < 2 ? (k ? 0xffffffffu : 0) : (uint32_t)rand_r(&seed);
                inet_ntop(AF_INET, &s4.sin_addr, want, sizeof(want));
                j = parse(fmt(&rec, 0));
                assert_str_field(j, "client", want);
                assert_int_field(j, "client_port", k);
                snprintf(up, sizeof(up), "%s:%u", want, k);
                assert_str_field(j, "upstream", up);
                json_decref(j);
        }

        /* A link-local backend keeps its interface index. */
        s6 = sin6("fe80::1", 80, 3);
        struct proxy_access_record rec = {.upstream = (const struct sockaddr *)&s6};
        j = parse(fmt(&rec, 0));
        assert_str_field(j, "upstream", "[fe80::1%3]:80");
        json_decref(j);

        /* Another family is not an address. */
        struct sockaddr other = {.sa_family = AF_UNIX};
        rec = (struct proxy_access_record){.client = &other, .upstream = &other};
        j = parse(fmt(&rec, 0));
        assert_null_field(j, "client");
        assert_null_field(j, "client_port");
        assert_null_field(j, "upstream");
        json_decref(j);
}

/* "time" against gmtime_r() over five centuries, and the start computed
 * from the end's wall clock. */
static void test_time(void **state)
{
        struct proxy_access_record rec = {};
        unsigned seed = 777;
        json_t *j;

        for (unsigned k = 0; k < 20000; k++) {
                uint64_t sec = k < 4 ? (uint64_t[]){0, 951782400, 4107542399, 17179869183}[k]
                                     : ((uint64_t)rand_r(&seed) << 16 ^ (uint64_t)rand_r(&seed)) %
                                               17179869184ull; /* up to 2514 */
                uint64_t us = (uint64_t)rand_r(&seed) % 1000000;
                time_t t = (time_t)sec;
                struct tm tm;
                char want[64];

                gmtime_r(&t, &tm);
                snprintf(want, sizeof(want), "%04d-%02d-%02dT%02d:%02d:%02d.%06uZ",
                         tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                         tm.tm_sec, (unsigned)us);
                rec.realtime_ns = sec * 1000000000ull + us * 1000 + 999;
                j = parse(fmt(&rec, 0));
                assert_str_field(j, "time", want);
                json_decref(j);
        }
        /* 2000-02-29 existed, 2100-02-29 does not. */
        rec.realtime_ns = 951782400ull * 1000000000ull;
        j = parse(fmt(&rec, 0));
        assert_str_field(j, "time", "2000-02-29T00:00:00.000000Z");
        json_decref(j);
        rec.realtime_ns = 4107542400ull * 1000000000ull;
        j = parse(fmt(&rec, 0));
        assert_str_field(j, "time", "2100-03-01T00:00:00.000000Z");
        json_decref(j);
        /* A duration longer than the wall clock (a bogus record) is the epoch. */
        rec = (struct proxy_access_record){
                .start_ns = 1, .end_ns = 100000000000ull, .realtime_ns = 5};
        j = parse(fmt(&rec, 0));
        assert_str_field(j, "time", "1970-01-01T00:00:00.000000Z");
        json_decref(j);
}

static void test_enums(void **state)
{
        struct proxy_access_record rec = {.closed = true};
        json_t *j;

        assert_string_equal(proxy_access_proto_str(PROXY_ACCESS_PROTO_HTTP10), "HTTP/1.0");
        assert_string_equal(proxy_access_proto_str(PROXY_ACCESS_PROTO_HTTP2), "HTTP/2");
        assert_string_equal(proxy_access_proto_str(PROXY_ACCESS_PROTO_WEBSOCKET), "WebSocket");
        assert_null(proxy_access_proto_str(PROXY_ACCESS_PROTO_NONE));
        assert_null(proxy_access_proto_str(_PROXY_ACCESS_PROTO_MAX));
        assert_int_equal(proxy_access_tls_from_wire(0x0301), PROXY_ACCESS_TLS_1_0);
        assert_int_equal(proxy_access_tls_from_wire(0x0302), PROXY_ACCESS_TLS_1_1);
        assert_int_equal(proxy_access_tls_from_wire(0x0303), PROXY_ACCESS_TLS_1_2);
        assert_int_equal(proxy_access_tls_from_wire(0x0304), PROXY_ACCESS_TLS_1_3);
        assert_int_equal(proxy_access_tls_from_wire(0x0300), PROXY_ACCESS_TLS_NONE);
        assert_int_equal(proxy_access_tls_from_wire(0x7f1c), PROXY_ACCESS_TLS_NONE);
        assert_string_equal(proxy_access_tls_str(PROXY_ACCESS_TLS_1_2), "TLSv1.2");
        assert_null(proxy_access_tls_str(_PROXY_ACCESS_TLS_MAX));

        /* Every close reason by its counter name; anything else is null. */
        for (unsigned r = 0; r < _PROXY_CLOSE_MAX; r++) {
                rec.close = (uint8_t)r;
                j = parse(fmt(&rec, 0));
                assert_str_field(j, "close", proxy_close_reason_str(r));
                json_decref(j);
        }
        rec.close = _PROXY_CLOSE_MAX;
        rec.proto = 200;
        rec.tls = 200;
        j = parse(fmt(&rec, 0));
        assert_null_field(j, "close");
        assert_null_field(j, "proto");
        assert_null_field(j, "tls");
        json_decref(j);

        /* Status: three digits or null. */
        static const struct {
                unsigned status;
                int want; /* -1: null */
        } st[] = {{0, -1}, {99, -1}, {100, 100}, {101, 101}, {999, 999}, {1000, -1}};
        for (size_t i = 0; i < ELEMENTSOF(st); i++) {
                rec = (struct proxy_access_record){.status = st[i].status};
                j = parse(fmt(&rec, 0));
                if (st[i].want < 0)
                        assert_null_field(j, "status");
                else
                        assert_int_field(j, "status", st[i].want);
                json_decref(j);
        }
}

/* ---- the sink ---- */

static unsigned wakes;

static void on_wake(void *ud)
{
        assert_ptr_equal(ud, &wakes);
        wakes++;
}

static size_t ring_read(struct spsc_ring *r, char *out, size_t size)
{
        struct iovec iov[2];
        unsigned n = spsc_ring_peek(r, iov);
        size_t len = 0;

        for (unsigned i = 0; i < n; i++) {
                assert_true(len + iov[i].iov_len <= size);
                memcpy(out + len, iov[i].iov_base, iov[i].iov_len);
                len += iov[i].iov_len;
        }
        spsc_ring_consume(r, len);
        return len;
}

static void test_emit(void **state)
{
        _cleanup_(spsc_ring_freep) struct spsc_ring *ring = NULL;
        struct proxy_access_slot slot = {};
        struct proxy_access_sink sink = {
                .n_slots = 1, .slots = &slot, .wake = on_wake, .wake_ud = &wakes};
        struct sockaddr_in client = sin4("192.0.2.1", 1234);
        struct sockaddr_in6 up = sin6("300:1::2", 8080, 0);
        struct proxy_access_record rec = full_record(&client, &up), copy;
        static char got[65536];
        size_t n, len, pushed = 0;
        int r;

        assert_int_equal(spsc_ring_new(16384, &ring), 0);
        slot.ring = ring;
        atomic_init(&slot.dropped, 0);

        /* Off (and no sink at all): nothing is formatted or queued. */
        assert_int_equal(proxy__access_emit(NULL, 0, &rec), 0);
        assert_int_equal(proxy__access_emit(&sink, 0, &rec), 0);
        assert_int_equal(spsc_ring_used(ring), 0);

        /* On: the line in the ring is exactly what the formatter writes. */
        atomic_store(&sink.enabled, true);
        copy = rec;
        assert_int_equal(proxy__access_emit(&sink, 0, &copy), 0);
        n = fmt(&rec, 0);
        len = ring_read(ring, got, sizeof(got));
        assert_int_equal(len, n);
        assert_memory_equal(got, line, n);
        atomic_store(&sink.keep_query, true);
        assert_int_equal(proxy__access_emit(&sink, 0, &copy), 0);
        len = ring_read(ring, got, sizeof(got));
        got[len] = 0;
        assert_non_null(strstr(got, "\"path\":\"/index.html?token=secret\""));
        atomic_store(&sink.keep_query, false);

        /* The clocks are read when the record has none: "time" is the
         * start, the wall clock now minus the duration. */
        struct timespec before, after;
        copy = (struct proxy_access_record){.start_ns = 0};
        clock_gettime(CLOCK_MONOTONIC, &before);
        copy.start_ns = (uint64_t)before.tv_sec * 1000000000ull + (uint64_t)before.tv_nsec;
        assert_int_equal(proxy__access_emit(&sink, 0, &copy), 0);
        clock_gettime(CLOCK_REALTIME, &after);
        assert_true(copy.end_ns >= copy.start_ns);
        assert_true(copy.realtime_ns > 1700000000ull * 1000000000ull);
        assert_true(copy.realtime_ns <=
                    (uint64_t)after.tv_sec * 1000000000ull + (uint64_t)after.tv_nsec);
        ring_read(ring, got, sizeof(got));

        /* A record whose end was taken earlier: the wall clock is moved
         * back to it. */
        struct timespec now_m, now_r;
        clock_gettime(CLOCK_MONOTONIC, &now_m);
        clock_gettime(CLOCK_REALTIME, &now_r);
        copy = (struct proxy_access_record){};
        copy.end_ns =
                (uint64_t)now_m.tv_sec * 1000000000ull + (uint64_t)now_m.tv_nsec - 5000000000ull;
        copy.start_ns = copy.end_ns;
        assert_int_equal(proxy__access_emit(&sink, 0, &copy), 0);
        int64_t skew = (int64_t)((uint64_t)now_r.tv_sec * 1000000000ull + (uint64_t)now_r.tv_nsec -
                                 5000000000ull - copy.realtime_ns);
        assert_true(skew < 1000000000 && skew > -1000000000);
        ring_read(ring, got, sizeof(got));

        /* Fill the ring: one wakeup when it passes half, then drops. */
        wakes = 0;
        for (;;) {
                copy = rec;
                r = proxy__access_emit(&sink, 0, &copy);
                if (r < 0)
                        break;
                pushed += n;
        }
        assert_int_equal(r, -ENOBUFS);
        assert_int_equal(wakes, 1);
        assert_int_equal(atomic_load(&slot.dropped), 1);
        assert_int_equal(spsc_ring_used(ring), pushed);
        assert_true(16384 - pushed < n);
        len = ring_read(ring, got, sizeof(got));
        assert_int_equal(len, pushed);
        for (size_t off = 0; off < len; off += n)
                assert_memory_equal(got + off, line, n); /* whole lines only */

        /* A worker without a slot of its own never pushes: it counts. */
        copy = rec;
        assert_int_equal(proxy__access_emit(&sink, 1, &copy), -ENOBUFS);
        assert_int_equal(atomic_load(&slot.dropped), 2);
        assert_int_equal(spsc_ring_used(ring), 0);

        /* Draining and passing half again wakes again. */
        wakes = 0;
        for (size_t k = 0; k < 16384 / 2 / n + 1; k++) {
                copy = rec;
                assert_int_equal(proxy__access_emit(&sink, 0, &copy), 0);
        }
        assert_int_equal(wakes, 1);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_http_request),  cmocka_unit_test(test_passthrough),
                cmocka_unit_test(test_nothing_known), cmocka_unit_test(test_query),
                cmocka_unit_test(test_escaping),      cmocka_unit_test(test_truncation),
                cmocka_unit_test(test_longest_line),  cmocka_unit_test(test_addresses),
                cmocka_unit_test(test_time),          cmocka_unit_test(test_enums),
                cmocka_unit_test(test_emit),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
