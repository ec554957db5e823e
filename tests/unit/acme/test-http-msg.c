/* SPDX-License-Identifier: Apache-2.0 */
/* acme/http-msg.c: URLs (parse, RFC 3986 §5.4 resolution), the request
 * head, the response reader (every framing, split at every byte, bounds),
 * Link (RFC 8288) and Retry-After / HTTP-date. Pure: no loop, no sockets. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "acme/http-internal.h"
#include "common/macros.h"

/* ---- URLs ---- */

static void check_url(const char *url, const char *host, bool ip, unsigned port,
                      const char *authority, const char *path)
{
        struct acme_url u = {};

        assert_int_equal(acme_http__url_parse(url, &u), 0);
        assert_string_equal(u.host, host);
        assert_int_equal(u.ip, ip);
        assert_int_equal(u.port, port);
        assert_string_equal(u.authority, authority);
        assert_string_equal(u.path, path);
        acme_http__url_done(&u);
}

static void test_url_parse(void **state)
{
        static const char *const bad[] = {
                "http://a.test/",
                "ftp://a.test/",
                "https//a.test/",
                "https://",
                "https:///x",
                "https://u@a.test/",
                "https://u:p@a.test/",
                "https://a.test:0/",
                "https://a.test:65536/",
                "https://a.test:/",
                "https://a.test:12a/",
                "https://a.test:123456/",
                "https://[::1/",
                "https://[::1]x/",
                "https://[fe80::1%25eth0]/",
                "https://[1.2.3.4]/",
                "https://a test/",
                "https://a.test/a b",
                "https://a.test/\r\nX: y",
                "https://a.test/\x7f",
                "https://a.test/\xc3\xa9",
                "https://a!b/",
                "",
        };
        struct acme_url u = {.host = (char *)"untouched"};

        check_url("https://Example.COM/dir/x?y=1&z#frag", "example.com", false, 443, "example.com",
                  "/dir/x?y=1&z");
        check_url("HTTPS://a.test:8443", "a.test", false, 8443, "a.test:8443", "/");
        check_url("https://a.test?q=1", "a.test", false, 443, "a.test", "/?q=1");
        check_url("https://a.test#f", "a.test", false, 443, "a.test", "/");
        check_url("https://a.test:443/", "a.test", false, 443, "a.test", "/");
        check_url("https://127.0.0.1:14000/dir", "127.0.0.1", true, 14000, "127.0.0.1:14000",
                  "/dir");
        check_url("https://[::1]:14000/dir", "::1", true, 14000, "[::1]:14000", "/dir");
        check_url("https://[2001:DB8::1]/", "2001:db8::1", true, 443, "[2001:db8::1]", "/");
        check_url("https://acme-v02.api.letsencrypt.org/acme/new-nonce",
                  "acme-v02.api.letsencrypt.org", false, 443, "acme-v02.api.letsencrypt.org",
                  "/acme/new-nonce");
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                int r = acme_http__url_parse(bad[i], &u);

                if (r != -EINVAL)
                        fail_msg("accepted %s", bad[i]);
        }
        assert_string_equal(u.host, "untouched");
}

/* RFC 3986 §5.4, normal and abnormal examples (with the one base). */
static void test_url_resolve(void **state)
{
        static const char *const cases[][2] = {
                {"g:h", "g:h"},
                {"g", "http://a/b/c/g"},
                {"./g", "http://a/b/c/g"},
                {"g/", "http://a/b/c/g/"},
                {"/g", "http://a/g"},
                {"//g", "http://g"},
                {"?y", "http://a/b/c/d;p?y"},
                {"g?y", "http://a/b/c/g?y"},
                {"#s", "http://a/b/c/d;p?q#s"},
                {"g#s", "http://a/b/c/g#s"},
                {"g?y#s", "http://a/b/c/g?y#s"},
                {";x", "http://a/b/c/;x"},
                {"g;x", "http://a/b/c/g;x"},
                {"g;x?y#s", "http://a/b/c/g;x?y#s"},
                {"", "http://a/b/c/d;p?q"},
                {".", "http://a/b/c/"},
                {"./", "http://a/b/c/"},
                {"..", "http://a/b/"},
                {"../", "http://a/b/"},
                {"../g", "http://a/b/g"},
                {"../..", "http://a/"},
                {"../../", "http://a/"},
                {"../../g", "http://a/g"},
                {"../../../g", "http://a/g"},
                {"../../../../g", "http://a/g"},
                {"/./g", "http://a/g"},
                {"/../g", "http://a/g"},
                {"g.", "http://a/b/c/g."},
                {".g", "http://a/b/c/.g"},
                {"g..", "http://a/b/c/g.."},
                {"..g", "http://a/b/c/..g"},
                {"./../g", "http://a/b/g"},
                {"./g/.", "http://a/b/c/g/"},
                {"g/./h", "http://a/b/c/g/h"},
                {"g/../h", "http://a/b/c/h"},
                {"g;x=1/./y", "http://a/b/c/g;x=1/y"},
                {"g;x=1/../y", "http://a/b/c/y"},
                {"g?y/./x", "http://a/b/c/g?y/./x"},
                {"g?y/../x", "http://a/b/c/g?y/../x"},
                {"g#s/./x", "http://a/b/c/g#s/./x"},
                {"g#s/../x", "http://a/b/c/g#s/../x"},
                {"http:g", "http:g"},
        };
        char *out = NULL;

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                assert_int_equal(acme_http__url_resolve("http://a/b/c/d;p?q", cases[i][0],
                                                        strlen(cases[i][0]), &out),
                                 0);
                if (!streq(out, cases[i][1]))
                        fail_msg("%s: got %s, want %s", cases[i][0], out, cases[i][1]);
                free(out);
        }
        /* An ACME server's relative Link against the request URL. */
        assert_int_equal(acme_http__url_resolve("https://ca.test:14000/acme/cert/1?x",
                                                "/acme/issuer/0", 14, &out),
                         0);
        assert_string_equal(out, "https://ca.test:14000/acme/issuer/0");
        free(out);
        assert_int_equal(acme_http__url_resolve("https://ca.test", "up", 2, &out), 0);
        assert_string_equal(out, "https://ca.test/up");
        free(out);
        /* Only the @n bytes count. */
        assert_int_equal(acme_http__url_resolve("https://ca.test/a/b", "c>junk", 1, &out), 0);
        assert_string_equal(out, "https://ca.test/a/c");
        free(out);
        out = (char *)"untouched";
        assert_int_equal(acme_http__url_resolve("https://ca.test/", "a b", 3, &out), -EINVAL);
        assert_int_equal(acme_http__url_resolve("/relative/base", "x", 1, &out), -EINVAL);
        assert_string_equal(out, "untouched");
}

/* ---- the request head ---- */

static void check_build(const struct acme_http_request *req, const char *url, const char *want)
{
        struct acme_url u = {};
        char *buf = NULL;
        size_t len = 0;

        assert_int_equal(acme_http__url_parse(url, &u), 0);
        assert_int_equal(acme_http__request_build(req, &u, "gatewayd/test", &buf, &len), 0);
        assert_int_equal(len, strlen(want));
        assert_memory_equal(buf, want, len);
        free(buf);
        acme_http__url_done(&u);
}

static void test_request_build(void **state)
{
        struct acme_url u = {};
        char *buf = NULL;
        size_t len = 0;

        check_build(&(struct acme_http_request){.method = "GET", .url = ""}, "https://ca.test/dir",
                    "GET /dir HTTP/1.1\r\nHost: ca.test\r\nUser-Agent: gatewayd/test\r\n"
                    "Connection: keep-alive\r\n\r\n");
        check_build(&(struct acme_http_request){.method = "HEAD", .accept = "*/*"},
                    "https://[::1]:14000/nonce?x=1#f",
                    "HEAD /nonce?x=1 HTTP/1.1\r\nHost: [::1]:14000\r\nUser-Agent: gatewayd/test\r\n"
                    "Accept: */*\r\nConnection: keep-alive\r\n\r\n");
        check_build(&(struct acme_http_request){.method = "POST",
                                                .content_type = "application/jose+json",
                                                .body = "{\"a\":1}",
                                                .body_len = 7},
                    "https://ca.test:8443/new-order",
                    "POST /new-order HTTP/1.1\r\nHost: ca.test:8443\r\n"
                    "User-Agent: gatewayd/test\r\nContent-Type: application/jose+json\r\n"
                    "Content-Length: 7\r\nConnection: keep-alive\r\n\r\n{\"a\":1}");
        check_build(&(struct acme_http_request){.method = "POST"}, "https://ca.test/x",
                    "POST /x HTTP/1.1\r\nHost: ca.test\r\nUser-Agent: gatewayd/test\r\n"
                    "Content-Length: 0\r\nConnection: keep-alive\r\n\r\n");

        assert_int_equal(acme_http__url_parse("https://ca.test/", &u), 0);
        assert_int_equal(acme_http__request_build(&(struct acme_http_request){.method = "PUT"}, &u,
                                                  "ua", &buf, &len),
                         -EINVAL);
        assert_int_equal(acme_http__request_build(&(struct acme_http_request){.method = "get"}, &u,
                                                  "ua", &buf, &len),
                         -EINVAL);
        assert_int_equal(
                acme_http__request_build(&(struct acme_http_request){}, &u, "ua", &buf, &len),
                -EINVAL);
        assert_int_equal(
                acme_http__request_build(
                        &(struct acme_http_request){.method = "GET", .body = "x", .body_len = 1},
                        &u, "ua", &buf, &len),
                -EINVAL);
        assert_int_equal(acme_http__request_build(
                                 &(struct acme_http_request){.method = "POST", .body_len = 1}, &u,
                                 "ua", &buf, &len),
                         -EINVAL);
        assert_int_equal(acme_http__request_build(
                                 &(struct acme_http_request){.method = "GET",
                                                             .accept = "a\r\nX-Injected: 1"},
                                 &u, "ua", &buf, &len),
                         -EINVAL);
        assert_int_equal(
                acme_http__request_build(
                        &(struct acme_http_request){.method = "POST", .content_type = "a\nb"}, &u,
                        "ua", &buf, &len),
                -EINVAL);
        assert_int_equal(acme_http__request_build(&(struct acme_http_request){.method = "GET"}, &u,
                                                  "ua\r\n", &buf, &len),
                         -EINVAL);
        assert_null(buf);
        acme_http__url_done(&u);
}

/* ---- the response reader ---- */

struct got {
        int r; /* of the last feed: 1 done, 0 more, < 0 */
        struct acme_http_result res;
        bool keep_alive;
};

/* Feed @wire in pieces of @step bytes (0: all at once). */
static void read_resp(const char *wire, size_t len, size_t step, size_t max_body, bool head,
                      struct got *g)
{
        struct acme_http_rd rd;
        size_t off = 0;

        *g = (struct got){};
        acme_http__rd_init(&rd, max_body, head);
        /* Past the end too: later bytes must mark the response trailing. */
        do {
                size_t k = step ? MIN(step, len - off) : len - off;

                g->r = acme_http__rd_feed(&rd, (const uint8_t *)wire + off, k);
                off += k;
        } while (g->r >= 0 && off < len);
        if (g->r == 1) {
                g->keep_alive = acme_http__rd_keep_alive(&rd);
                assert_int_equal(acme_http__rd_take(&rd, "https://ca.test/acme/x", &g->res), 0);
        }
        acme_http__rd_done(&rd);
}

static void check_resp(const char *wire, int status, const char *body, bool keep_alive)
{
        size_t len = strlen(wire);

        /* Every split gives the same answer. */
        for (size_t step = 0; step <= len; step = step ? step * 2 + 1 : 1) {
                struct got g;

                read_resp(wire, len, step, 1 << 20, false, &g);
                if (g.r != 1)
                        fail_msg("step %zu: %d for %s", step, g.r, wire);
                assert_int_equal(g.res.resp.status, status);
                assert_int_equal(g.res.resp.body_len, strlen(body));
                assert_string_equal(g.res.resp.body, body);
                assert_int_equal(g.keep_alive, keep_alive);
                acme_http__result_done(&g.res);
        }
}

static int resp_error(const char *wire, size_t max_body)
{
        struct got g;

        read_resp(wire, strlen(wire), 0, max_body, false, &g);
        acme_http__result_done(&g.res);
        return g.r;
}

static void test_reader_framing(void **state)
{
        const char *wire;
        struct got g;

        check_resp("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", 200, "hello", true);
        check_resp("HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n", 201, "", true);
        check_resp("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                   "5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-T: 1\r\n\r\n",
                   200, "hello world", true);
        check_resp("HTTP/1.1 204 No Content\r\n\r\n", 204, "", true);
        check_resp("HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n", 304, "", true);
        check_resp("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok", 200, "ok",
                   false);
        check_resp("HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok", 200, "ok", false);
        check_resp("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok", 200,
                   "ok", true);
        /* Interim responses are skipped, 103 with its own fields. */
        check_resp("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>; "
                   "rel=preload\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
                   200, "ok", true);
        /* Bytes after the end: complete, but not reusable. */
        check_resp("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokEXTRA", 200, "ok", false);

        /* HEAD: Content-Length describes the GET; no body follows. */
        wire = "HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n";
        read_resp(wire, strlen(wire), 0, 10, true, &g);
        assert_int_equal(g.r, 1);
        assert_int_equal(g.res.resp.body_len, 0);
        assert_string_equal(acme_http_response_header(&g.res.resp, "content-length"), "99");
        assert_true(g.keep_alive);
        acme_http__result_done(&g.res);
}

static void test_reader_close_delimited(void **state)
{
        const char *wire = "HTTP/1.1 200 OK\r\nServer: x\r\n\r\nuntil the end";
        struct acme_http_result res = {};
        struct acme_http_rd rd;

        acme_http__rd_init(&rd, 100, false);
        assert_int_equal(acme_http__rd_feed(&rd, (const uint8_t *)wire, strlen(wire)), 0);
        assert_int_equal(acme_http__rd_eof(&rd, /* clean= */ true), 1);
        assert_false(acme_http__rd_keep_alive(&rd));
        assert_int_equal(acme_http__rd_take(&rd, "https://ca.test/", &res), 0);
        assert_string_equal(res.resp.body, "until the end");
        acme_http__result_done(&res);
        acme_http__rd_done(&rd);

        /* Without close_notify the end may be a truncation. */
        acme_http__rd_init(&rd, 100, false);
        assert_int_equal(acme_http__rd_feed(&rd, (const uint8_t *)wire, strlen(wire)), 0);
        assert_int_equal(acme_http__rd_eof(&rd, /* clean= */ false), -ECONNRESET);
        acme_http__rd_done(&rd);

        /* EOF inside a Content-Length body, a chunked body or the head. */
        acme_http__rd_init(&rd, 100, false);
        wire = "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort";
        assert_int_equal(acme_http__rd_feed(&rd, (const uint8_t *)wire, strlen(wire)), 0);
        assert_int_equal(acme_http__rd_eof(&rd, true), -ECONNRESET);
        acme_http__rd_done(&rd);
        acme_http__rd_init(&rd, 100, false);
        wire = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel";
        assert_int_equal(acme_http__rd_feed(&rd, (const uint8_t *)wire, strlen(wire)), 0);
        assert_int_equal(acme_http__rd_eof(&rd, true), -ECONNRESET);
        acme_http__rd_done(&rd);
        acme_http__rd_init(&rd, 100, false);
        assert_int_equal(acme_http__rd_feed(&rd, (const uint8_t *)"HTTP/1.1 2", 10), 0);
        assert_int_equal(acme_http__rd_eof(&rd, true), -ECONNRESET);
        assert_int_equal(rd.received, 10);
        acme_http__rd_done(&rd);
        acme_http__rd_init(&rd, 100, false);
        assert_int_equal(acme_http__rd_eof(&rd, true), -ECONNRESET);
        assert_int_equal(rd.received, 0);
        acme_http__rd_done(&rd);
}

static void test_reader_errors(void **state)
{
        char *big;
        struct strbuf b = STRBUF_INIT;

        assert_int_equal(resp_error("HTTP/1.1 20 OK\r\n\r\n", 100), -EBADMSG);
        assert_int_equal(resp_error("HTTP/2 200\r\n\r\n", 100), -EBADMSG);
        assert_int_equal(resp_error("hello\r\n\r\n", 100), -EBADMSG);
        assert_int_equal(resp_error("HTTP/1.1 200 OK\nContent-Length: 0\n\n", 100), -EBADMSG);
        assert_int_equal(resp_error("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: "
                                    "2\r\n\r\nab",
                                    100),
                         -EBADMSG);
        assert_int_equal(resp_error("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: "
                                    "chunked\r\n\r\n",
                                    100),
                         -EBADMSG);
        assert_int_equal(resp_error("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", 100),
                         -EBADMSG);
        assert_int_equal(
                resp_error("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 100),
                -EBADMSG);
        assert_int_equal(resp_error("HTTP/1.1 101 Switching Protocols\r\n\r\n", 100), -EBADMSG);
        /* Nine interim responses: one too many. */
        for (int i = 0; i < 9; i++)
                assert_int_equal(strbuf_puts(&b, "HTTP/1.1 100 Continue\r\n\r\n"), 0);
        assert_int_equal(strbuf_puts(&b, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"), 0);
        assert_int_equal(resp_error(b.data, 100), -EBADMSG);
        strbuf_done(&b);

        /* Bodies over max_body: by Content-Length at once, else as they come. */
        assert_int_equal(resp_error("HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n", 10), -E2BIG);
        assert_int_equal(resp_error("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123456789", 10),
                         1);
        assert_int_equal(resp_error("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                                    "6\r\n012345\r\n5\r\n6789a\r\n0\r\n\r\n",
                                    10),
                         -E2BIG);
        assert_int_equal(resp_error("HTTP/1.1 200 OK\r\n\r\n0123456789a", 10), -E2BIG);

        /* A head over 64 KiB, and more than 128 fields. */
        big = malloc(ACME_HTTP_MAX_HEAD + 64);
        assert_non_null(big);
        strcpy(big, "HTTP/1.1 200 OK\r\nX: ");
        memset(big + strlen(big), 'a', ACME_HTTP_MAX_HEAD);
        strcpy(big + ACME_HTTP_MAX_HEAD, "\r\n\r\n");
        assert_int_equal(resp_error(big, 100), -EBADMSG);
        free(big);
        assert_int_equal(strbuf_puts(&b, "HTTP/1.1 200 OK\r\n"), 0);
        for (int i = 0; i < 129; i++)
                assert_int_equal(strbuf_printf(&b, "X-%d: v\r\n", i), 0);
        assert_int_equal(strbuf_puts(&b, "Content-Length: 0\r\n\r\n"), 0);
        assert_int_equal(resp_error(b.data, 100), -EBADMSG);
        strbuf_done(&b);
}

static void test_reader_take(void **state)
{
        const char *wire = "HTTP/1.1 200 OK\r\n"
                           "Replay-Nonce:   abc-123  \r\n"
                           "Link: <https://ca.test/dir>;rel=\"index\"\r\n"
                           "Empty:\r\n"
                           "link: </acme/issuer/1>; rel=\"up\", <alt>;rel=alternate\r\n"
                           "Content-Length: 3\r\n\r\n{ }";
        struct got g;

        read_resp(wire, strlen(wire), 7, 100, false, &g);
        assert_int_equal(g.r, 1);
        assert_int_equal(g.res.resp.n_headers, 5);
        assert_string_equal(g.res.resp.headers[0].name, "Replay-Nonce");
        assert_string_equal(g.res.resp.headers[0].value, "abc-123");
        assert_string_equal(g.res.resp.headers[2].name, "Empty");
        assert_string_equal(g.res.resp.headers[2].value, "");
        assert_string_equal(acme_http_response_header(&g.res.resp, "REPLAY-NONCE"), "abc-123");
        assert_null(acme_http_response_header(&g.res.resp, "Replay"));
        assert_int_equal(g.res.resp.n_links, 3);
        assert_string_equal(acme_http_response_link(&g.res.resp, "index"), "https://ca.test/dir");
        assert_string_equal(acme_http_response_link(&g.res.resp, "up"),
                            "https://ca.test/acme/issuer/1");
        assert_string_equal(acme_http_response_link(&g.res.resp, "alternate"),
                            "https://ca.test/acme/alt");
        assert_null(acme_http_response_link(&g.res.resp, "next"));
        assert_string_equal(g.res.resp.body, "{ }");
        acme_http__result_done(&g.res);
}

/* ---- Link ---- */

static size_t links_of(const char *const *values, size_t n, struct acme_http_link **ret)
{
        struct acme_http_header h[8];
        size_t count = 0;

        assert_true(n <= ELEMENTSOF(h));
        for (size_t i = 0; i < n; i++)
                h[i] = (struct acme_http_header){.name = i % 2 ? "LINK" : "Link",
                                                 .value = values[i]};
        assert_int_equal(acme_http__links_parse("https://ca.test/a/b?q", h, n, ret, &count), 0);
        return count;
}

static void test_links(void **state)
{
        static const char *const v1[] = {
                "<https://ca.test/x>; rel=\"up\"; title=\"a, b; c\", </y>;rel=alternate",
                "<z>; REL=\"Next Prev\"",
                "<no-rel>; title=x, <bad url>; rel=up, garbage; rel=up, <ok>; rel=\"ok\"",
                "<q>; rel=\"a\\\"b\"; rel=second, <w>;rel=x;anchor=\"#p\"",
                "<e>; rel=\"unterminated, <f>; rel=f",
                "",
        };
        struct acme_http_link *l = NULL;
        size_t n = links_of(v1, ELEMENTSOF(v1), &l);
        static const char *const want[][2] = {
                {"https://ca.test/x", "up"},     {"https://ca.test/y", "alternate"},
                {"https://ca.test/a/z", "next"}, {"https://ca.test/a/z", "prev"},
                {"https://ca.test/a/ok", "ok"},  {"https://ca.test/a/q", "a\"b"},
                {"https://ca.test/a/w", "x"},
        };

        for (size_t i = 0; i < n; i++)
                print_message("# link %zu: %s %s\n", i, l[i].rel, l[i].url);
        assert_int_equal(n, ELEMENTSOF(want));
        for (size_t i = 0; i < n; i++) {
                assert_string_equal(l[i].url, want[i][0]);
                assert_string_equal(l[i].rel, want[i][1]);
        }
        acme_http__links_free(l, n);
}

static void test_links_bounded(void **state)
{
        struct strbuf b = STRBUF_INIT;
        struct acme_http_link *l = NULL;
        const char *v[1];

        for (int i = 0; i < 100; i++)
                assert_int_equal(strbuf_printf(&b, "<u%d>;rel=r%d,", i, i), 0);
        v[0] = b.data;
        assert_int_equal(links_of(v, 1, &l), ACME_HTTP_MAX_LINKS);
        assert_string_equal(l[ACME_HTTP_MAX_LINKS - 1].rel, "r63");
        acme_http__links_free(l, ACME_HTTP_MAX_LINKS);
        strbuf_done(&b);
}

/* ---- dates and Retry-After ---- */

#define NOW 1784000000 /* 2026-07-14 03:33:20 UTC */

static int64_t date(const char *s)
{
        int64_t t = -1;

        assert_int_equal(acme_http__date_parse(s, NOW, &t), 0);
        return t;
}

static void test_dates(void **state)
{
        static const char *const bad[] = {
                "Sun, 06 Nov 1994 08:49:37 UTC",
                "Sun, 6 Nov 1994 08:49:37 GMT",
                "Sun, 06 Nov 1994 08:49:37 GMT ",
                "Sun, 06 Nov 1994 8:49:37 GMT",
                "Sun, 06 nov 1994 08:49:37 GMT",
                "Xyz, 06 Nov 1994 08:49:37 GMT",
                "Sun, 30 Feb 2024 08:49:37 GMT",
                "Sun, 29 Feb 2023 08:49:37 GMT",
                "Sun, 06 Nov 1994 24:00:00 GMT",
                "Sun, 06 Nov 1994 23:60:00 GMT",
                "Sun, 00 Nov 1994 08:49:37 GMT",
                "Sunday, 06-Nov-1994 08:49:37 GMT",
                "Sun Nov 6 08:49:37 1994",
                "Sun Nov  6 08:49:37 94",
                "Sun, 06 Nov 1994 08:49:37",
                "",
                "Sun",
                "1994-11-06T08:49:37Z",
        };
        int64_t t = 7;

        assert_int_equal(date("Sun, 06 Nov 1994 08:49:37 GMT"), 784111777);
        assert_int_equal(date("Sunday, 06-Nov-94 08:49:37 GMT"), 784111777);
        assert_int_equal(date("Sun Nov  6 08:49:37 1994"), 784111777);
        assert_int_equal(date("Thu, 01 Jan 1970 00:00:00 GMT"), 0);
        assert_int_equal(date("Thu, 29 Feb 2024 12:00:00 GMT"), 1709208000);
        assert_int_equal(date("Tue, 29 Feb 2000 00:00:00 GMT"), 951782400);
        assert_int_equal(date("Fri, 31 Dec 9999 23:59:59 GMT"), 253402300799);
        /* RFC 850 years: more than 50 years ahead means the last century. */
        assert_int_equal(date("Monday, 01-Jan-30 00:00:00 GMT"), 1893456000);
        assert_int_equal(date("Thursday, 01-Jan-99 00:00:00 GMT"), 915148800);
        for (size_t i = 0; i < ELEMENTSOF(bad); i++)
                if (acme_http__date_parse(bad[i], NOW, &t) != -EINVAL)
                        fail_msg("accepted %s", bad[i]);
        assert_int_equal(t, 7);
}

static int retry_after(const char *v, uint64_t *s)
{
        struct acme_http_header h[] = {{"Content-Length", "0"}, {"retry-after", v}};
        struct acme_http_response resp = {.status = 503, .headers = h, .n_headers = v ? 2 : 1};

        return acme_http_retry_after(&resp, NOW, s);
}

static void test_retry_after(void **state)
{
        uint64_t s = 42;

        assert_int_equal(retry_after("120", &s), 0);
        assert_int_equal(s, 120);
        assert_int_equal(retry_after("0", &s), 0);
        assert_int_equal(s, 0);
        assert_int_equal(retry_after("99999999999999999999999", &s), 0);
        assert_int_equal(s, 1ull << 31);
        assert_int_equal(retry_after("Tue, 14 Jul 2026 03:35:20 GMT", &s), 0);
        assert_int_equal(s, 120);
        assert_int_equal(retry_after("Sun, 06 Nov 1994 08:49:37 GMT", &s), 0);
        assert_int_equal(s, 0);
        s = 42;
        assert_int_equal(retry_after(NULL, &s), -ENOENT);
        assert_int_equal(retry_after("", &s), -EINVAL);
        assert_int_equal(retry_after("12a", &s), -EINVAL);
        assert_int_equal(retry_after("-5", &s), -EINVAL);
        assert_int_equal(retry_after("1.5", &s), -EINVAL);
        assert_int_equal(retry_after("soon", &s), -EINVAL);
        assert_int_equal(s, 42);
        assert_int_equal(acme_http_retry_after(NULL, NOW, &s), -ENOENT);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_url_parse),
                cmocka_unit_test(test_url_resolve),
                cmocka_unit_test(test_request_build),
                cmocka_unit_test(test_reader_framing),
                cmocka_unit_test(test_reader_close_delimited),
                cmocka_unit_test(test_reader_errors),
                cmocka_unit_test(test_reader_take),
                cmocka_unit_test(test_links),
                cmocka_unit_test(test_links_bounded),
                cmocka_unit_test(test_dates),
                cmocka_unit_test(test_retry_after),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
