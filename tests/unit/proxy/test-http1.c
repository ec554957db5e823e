/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/macros.h"
#include "proxy/http1.h"

#define CAP 32

static const struct proxy_h1_limits limits = {
        .max_head = 8192,
        .max_headers = 24,
        .max_target = 1024,
};

struct msg {
        struct proxy_h1_req req;
        struct proxy_h1_header hdrs[CAP];
        int parse_r; /* proxy_h1_req_parse() result */
        int r;       /* parse result, or analyze result once parsed */
};

/* Field by field: the struct has padding. */
static void assert_same_header(const struct proxy_h1_header *a, const struct proxy_h1_header *b)
{
        assert_int_equal(a->name.off, b->name.off);
        assert_int_equal(a->name.len, b->name.len);
        assert_int_equal(a->value.off, b->value.off);
        assert_int_equal(a->value.len, b->value.len);
        assert_int_equal(a->line_len, b->line_len);
        assert_int_equal(a->id, b->id);
        assert_int_equal(a->flags, b->flags);
}

static void assert_same_req(const struct proxy_h1_req *a, const struct proxy_h1_req *b)
{
        assert_int_equal(a->h.err, b->h.err);
        assert_int_equal(a->h.n_headers, b->h.n_headers);
        assert_int_equal(a->h.head_len, b->h.head_len);
        assert_int_equal(a->h.minor, b->h.minor);
        assert_memory_equal(&a->method, &b->method, sizeof(a->method));
        assert_memory_equal(&a->target, &b->target, sizeof(a->target));
        assert_memory_equal(&a->path, &b->path, sizeof(a->path));
        assert_memory_equal(&a->authority, &b->authority, sizeof(a->authority));
        assert_int_equal(a->form, b->form);
        assert_int_equal(a->method_id, b->method_id);
        for (uint32_t i = 0; i < a->h.n_headers; i++)
                assert_same_header(&a->h.headers[i], &b->h.headers[i]);
}

/* Parse @s whole, and again one byte at a time; both must agree. Then
 * analyze if the head is complete. Returns the final result. */
static int req_run(const char *s, size_t n, struct msg *m, const struct proxy_h1_limits *l)
{
        struct msg *one = calloc(1, sizeof(*one));
        int r1 = -EAGAIN;

        assert_non_null(one);
        proxy_h1_req_init(&m->req, l, m->hdrs, CAP);
        proxy_h1_req_init(&one->req, l, one->hdrs, CAP);
        m->parse_r = proxy_h1_req_parse(&m->req, (const uint8_t *)s, n);
        for (size_t k = 1; k <= n && r1 == -EAGAIN; k++)
                r1 = proxy_h1_req_parse(&one->req, (const uint8_t *)s, k);
        if (n == 0)
                r1 = proxy_h1_req_parse(&one->req, (const uint8_t *)s, 0);
        assert_int_equal(m->parse_r, r1);
        assert_same_req(&m->req, &one->req);
        free(one);

        m->r = m->parse_r;
        if (m->parse_r > 0)
                m->r = proxy_h1_req_analyze(&m->req, (const uint8_t *)s);
        return m->r;
}

static int req(const char *s, struct msg *m)
{
        return req_run(s, strlen(s), m, &limits);
}

static char *span_dup(const char *buf, struct proxy_h1_span sp)
{
        static char tmp[4][512];
        static int k;
        char *t = tmp[k++ & 3];

        assert_true(sp.len < sizeof(tmp[0]));
        memcpy(t, buf + sp.off, sp.len);
        t[sp.len] = 0;
        return t;
}

/* ---- valid requests ---- */

static void test_req_simple_get(void **state)
{
        const char *s = "GET /index.html?q=1 HTTP/1.1\r\n"
                        "Host: example.com\r\n"
                        "User-Agent:  curl/8.0  \r\n"
                        "Accept: */*\r\n"
                        "\r\n";
        struct msg m;

        assert_int_equal(req(s, &m), 0);
        assert_int_equal(m.parse_r, (int)strlen(s));
        assert_int_equal(m.req.h.head_len, strlen(s));
        assert_string_equal(span_dup(s, m.req.method), "GET");
        assert_int_equal(m.req.method_id, PROXY_H1_METHOD_GET);
        assert_string_equal(span_dup(s, m.req.target), "/index.html?q=1");
        assert_string_equal(span_dup(s, m.req.path), "/index.html?q=1");
        assert_int_equal(m.req.form, PROXY_H1_FORM_ORIGIN);
        assert_int_equal(m.req.h.minor, 1);
        assert_int_equal(m.req.h.n_headers, 3);
        assert_string_equal(span_dup(s, m.req.h.headers[1].name), "User-Agent");
        assert_string_equal(span_dup(s, m.req.h.headers[1].value), "curl/8.0");
        assert_int_equal(m.req.h.headers[1].line_len, strlen("User-Agent:  curl/8.0  "));
        assert_int_equal(m.req.h.headers[0].id, PROXY_H1_HDR_HOST);
        assert_int_equal(m.req.host_index, 0);
        assert_string_equal(span_dup(s, m.req.host), "example.com");
        assert_int_equal(m.req.port, 0);
        assert_int_equal(m.req.h.body, PROXY_H1_BODY_NONE);
        assert_true(m.req.h.keep_alive);
        assert_int_equal(m.req.flags, 0);
}

static void test_req_shapes(void **state)
{
        struct msg m;
        const char *s;

        /* Leading empty lines are skipped (RFC 9112 §2.2). */
        s = "\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n";
        assert_int_equal(req(s, &m), 0);
        assert_string_equal(span_dup(s, m.req.method), "GET");

        /* POST with a body: the head length excludes it. */
        s = "POST /f HTTP/1.1\r\nHost: a:8080\r\nContent-Length: 5\r\n\r\nhello";
        assert_int_equal(req(s, &m), 0);
        assert_int_equal(m.parse_r, (int)strlen(s) - 5);
        assert_int_equal(m.req.h.body, PROXY_H1_BODY_LENGTH);
        assert_int_equal(m.req.h.content_length, 5);
        assert_int_equal(m.req.port, 8080);
        assert_string_equal(span_dup(s, m.req.host), "a");

        /* Content-Length: 0 and leading zeros. */
        s = "PUT /x HTTP/1.1\r\nHost: a\r\nContent-Length: 0000\r\n\r\n";
        assert_int_equal(req(s, &m), 0);
        assert_int_equal(m.req.h.body, PROXY_H1_BODY_LENGTH);
        assert_int_equal(m.req.h.content_length, 0);

        /* Largest Content-Length. */
        s = "PUT /x HTTP/1.1\r\nHost: a\r\nContent-Length: 9223372036854775807\r\n\r\n";
        assert_int_equal(req(s, &m), 0);
        assert_int_equal(m.req.h.content_length, INT64_MAX);

        /* Chunked, any case, with OWS (tab included: it is OWS). */
        s = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\tChunked \r\n\r\n";
        assert_int_equal(req(s, &m), 0);
        assert_int_equal(m.req.h.body, PROXY_H1_BODY_CHUNKED);

        /* Absolute-form whose authority equals Host. */
        s = "GET http://Example.com:81/p?q HTTP/1.1\r\nHost: example.com:81\r\n\r\n";
        assert_int_equal(req(s, &m), 0);
        assert_int_equal(m.req.form, PROXY_H1_FORM_ABSOLUTE);
        assert_string_equal(span_dup(s, m.req.authority), "Example.com:81");
        assert_string_equal(span_dup(s, m.req.path), "/p?q");

        s = "GET HTTPS://a HTTP/1.1\r\nHost: a\r\n\r\n";
        assert_int_equal(req(s, &m), 0);
        assert_int_equal(m.req.path.len, 0);

        /* Asterisk-form for OPTIONS. */
        s = "OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n";
        assert_int_equal(req(s, &m), 0);
        assert_int_equal(m.req.form, PROXY_H1_FORM_ASTERISK);
        assert_int_equal(m.req.method_id, PROXY_H1_METHOD_OPTIONS);

        /* CONNECT authority-form is parsed and reported (the engine refuses). */
        s = "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n";
        assert_int_equal(req(s, &m), 0);
        assert_int_equal(m.req.form, PROXY_H1_FORM_AUTHORITY);
        assert_int_equal(m.req.method_id, PROXY_H1_METHOD_CONNECT);
        assert_string_equal(span_dup(s, m.req.authority), "example.com:443");

        /* HTTP/1.0: Host optional, close by default, keep-alive on request. */
        s = "GET / HTTP/1.0\r\n\r\n";
        assert_int_equal(req(s, &m), 0);
        assert_int_equal(m.req.h.minor, 0);
        assert_false(m.req.h.keep_alive);
        assert_int_equal(m.req.host_index, -1);
        s = "GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n";
        assert_int_equal(req(s, &m), 0);
        assert_true(m.req.h.keep_alive);
        s = "GET http://h.example/ HTTP/1.0\r\n\r\n";
        assert_int_equal(req(s, &m), 0);
        assert_string_equal(span_dup(s, m.req.host), "h.example");

        /* HTTP/1.1 close. */
        s = "GET / HTTP/1.1\r\nHost: a\r\nConnection: foo, , close\r\n\r\n";
        assert_int_equal(req(s, &m), 0);
        assert_false(m.req.h.keep_alive);

        /* Empty value, obs-text and odd but legal tokens. */
        s = "M-SEARCH /%7e?a=b|c HTTP/1.1\r\nHost: [2001:db8::1]:8443\r\nX-Empty:\r\n"
            "X-Utf8: caf\xc3\xa9\r\nX!#$%&'*+-.^_`|~: v\r\n\r\n";
        assert_int_equal(req(s, &m), 0);
        assert_int_equal(m.req.method_id, PROXY_H1_METHOD_OTHER);
        assert_string_equal(span_dup(s, m.req.host), "[2001:db8::1]");
        assert_int_equal(m.req.port, 8443);
        assert_int_equal(m.req.h.headers[1].value.len, 0);
        assert_string_equal(span_dup(s, m.req.h.headers[2].value), "caf\xc3\xa9");

        /* Expect: 100-continue. */
        s = "POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\nContent-Length: 1\r\n\r\n";
        assert_int_equal(req(s, &m), 0);
        assert_true(m.req.flags & PROXY_H1_REQ_EXPECT_CONTINUE);

        /* WebSocket upgrade. */
        s = "GET /ws HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, Upgrade\r\n"
            "Upgrade: websocket\r\nSec-WebSocket-Key: x\r\n\r\n";
        assert_int_equal(req(s, &m), 0);
        assert_true(m.req.flags & PROXY_H1_REQ_WEBSOCKET);
        assert_true(m.req.h.conn_upgrade);
        /* Without Connection: upgrade, or on POST, it is no upgrade. */
        s = "GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n";
        assert_int_equal(req(s, &m), 0);
        assert_false(m.req.flags & PROXY_H1_REQ_WEBSOCKET);
        s = "POST /ws HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n";
        assert_int_equal(req(s, &m), 0);
        assert_false(m.req.flags & PROXY_H1_REQ_WEBSOCKET);

        /* h2c is flagged. */
        s = "GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, HTTP2-Settings\r\n"
            "Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n";
        assert_int_equal(req(s, &m), 0);
        assert_true(m.req.flags & PROXY_H1_REQ_H2C);
        assert_false(m.req.flags & PROXY_H1_REQ_WEBSOCKET);
}

static void test_req_hop_by_hop_marking(void **state)
{
        const char *s = "GET / HTTP/1.1\r\nHost: a\r\nConnection: X-Secret, host, Keep-Alive\r\n"
                        "Keep-Alive: timeout=5\r\nx-secret: 1\r\nTE: trailers\r\n"
                        "Proxy-Authorization: Basic x\r\nX-Other: 2\r\nTrailer: X\r\n"
                        "Proxy-Connection: keep-alive\r\n\r\n";
        struct msg m;
        unsigned hop = 0;

        assert_int_equal(req(s, &m), 0);
        for (uint32_t i = 0; i < m.req.h.n_headers; i++) {
                const struct proxy_h1_header *h = &m.req.h.headers[i];
                const char *name = span_dup(s, h->name);
                bool want = strcasecmp(name, "host") != 0 && strcasecmp(name, "x-other") != 0;

                assert_int_equal(!!(h->flags & PROXY_H1_HF_HOP), want);
                hop += want;
        }
        assert_int_equal(hop, 7);
}

/* ---- rejections ---- */

struct reject_case {
        const char *in;
        size_t n; /* inputs may hold NUL bytes */
        int r;
        enum proxy_h1_err err;
        int status;
};

static void run_rejects(const struct reject_case *cases, size_t n)
{
        for (size_t i = 0; i < n; i++) {
                struct msg m;
                int r = req_run(cases[i].in, cases[i].n, &m, &limits);

                if (r != cases[i].r || m.req.h.err != cases[i].err)
                        fail_msg("case %zu %s: got %d %s, want %d %s", i, cases[i].in, r,
                                 proxy_h1_err_to_string(m.req.h.err), cases[i].r,
                                 proxy_h1_err_to_string(cases[i].err));
                assert_int_equal(proxy_h1_err_status(m.req.h.err), cases[i].status);
                /* A failed message stays failed. */
                if (m.parse_r < 0)
                        assert_int_equal(proxy_h1_req_parse(&m.req, (const uint8_t *)cases[i].in,
                                                            cases[i].n),
                                         cases[i].r);
        }
}

#define H "Host: a\r\n"
#define R(s, r, e, st)                                                                             \
        {                                                                                          \
                s, sizeof(s) - 1, r, e, st                                                         \
        }

static const struct reject_case request_line_rejects[] = {
        R("GET / HTTP/1.2\r\n" H "\r\n", -EPROTONOSUPPORT, PROXY_H1_E_VERSION_UNSUPPORTED, 505),
        R("GET / HTTP/2.0\r\n" H "\r\n", -EPROTONOSUPPORT, PROXY_H1_E_VERSION_UNSUPPORTED, 505),
        R("GET / HTTP/0.9\r\n" H "\r\n", -EPROTONOSUPPORT, PROXY_H1_E_VERSION_UNSUPPORTED, 505),
        R("GET / http/1.1\r\n" H "\r\n", -EBADMSG, PROXY_H1_E_VERSION, 400),
        R("GET / HTTP/1.10\r\n" H "\r\n", -EBADMSG, PROXY_H1_E_VERSION, 400),
        R("GET / HTTP/1\r\n" H "\r\n", -EBADMSG, PROXY_H1_E_VERSION, 400),
        R("GET / HTTP/1.1 \r\n" H "\r\n", -EBADMSG, PROXY_H1_E_REQUEST_LINE, 400),
        R("GET / HTTP/1.1\n" H "\r\n", -EBADMSG, PROXY_H1_E_BARE_LF, 400),
        R("GET / HTTP/1.1\rX" H "\r\n", -EBADMSG, PROXY_H1_E_BARE_CR, 400),
        R("GET /\r\n\r\n", -EBADMSG, PROXY_H1_E_REQUEST_LINE, 400),
        R("GET  / HTTP/1.1\r\n" H "\r\n", -EBADMSG, PROXY_H1_E_REQUEST_LINE, 400),
        R("GET /  HTTP/1.1\r\n" H "\r\n", -EBADMSG, PROXY_H1_E_REQUEST_LINE, 400),
        R("GET\t/ HTTP/1.1\r\n" H "\r\n", -EBADMSG, PROXY_H1_E_METHOD, 400),
        R(" GET / HTTP/1.1\r\n" H "\r\n", -EBADMSG, PROXY_H1_E_METHOD, 400),
        R("G(T / HTTP/1.1\r\n" H "\r\n", -EBADMSG, PROXY_H1_E_METHOD, 400),
        R("\nGET / HTTP/1.1\r\n" H "\r\n", -EBADMSG, PROXY_H1_E_BARE_LF, 400),
        R("GET /a\x01 HTTP/1.1\r\n" H "\r\n", -EBADMSG, PROXY_H1_E_TARGET, 400),
        R("GET /\xc3\xa9 HTTP/1.1\r\n" H "\r\n", -EBADMSG, PROXY_H1_E_TARGET, 400),
        R("GET /a#frag HTTP/1.1\r\n" H "\r\n", -EBADMSG, PROXY_H1_E_TARGET, 400),
        R("GET /a\tb HTTP/1.1\r\n" H "\r\n", -EBADMSG, PROXY_H1_E_TARGET, 400),
        R("GET * HTTP/1.1\r\n" H "\r\n", -EBADMSG, PROXY_H1_E_TARGET, 400),
        R("OPTIONS *x HTTP/1.1\r\n" H "\r\n", -EBADMSG, PROXY_H1_E_TARGET, 400),
        R("GET a.b/c HTTP/1.1\r\n" H "\r\n", -EBADMSG, PROXY_H1_E_TARGET, 400),
        R("GET ftp://a/ HTTP/1.1\r\n" H "\r\n", -EBADMSG, PROXY_H1_E_TARGET, 400),
        R("GET http:/a/ HTTP/1.1\r\n" H "\r\n", -EBADMSG, PROXY_H1_E_TARGET, 400),
        R("GET http:///x HTTP/1.1\r\n" H "\r\n", -EBADMSG, PROXY_H1_E_TARGET, 400),
        R("GET http://u@a/ HTTP/1.1\r\n" H "\r\n", -EBADMSG, PROXY_H1_E_TARGET, 400),
        R("GET http://a:/ HTTP/1.1\r\n" H "\r\n", -EBADMSG, PROXY_H1_E_TARGET, 400),
        R("CONNECT a HTTP/1.1\r\n" H "\r\n", -EBADMSG, PROXY_H1_E_TARGET, 400),
        R("CONNECT /x HTTP/1.1\r\n" H "\r\n", -EBADMSG, PROXY_H1_E_TARGET, 400),
};

static const struct reject_case field_rejects[] = {
        /* obs-fold, leading white space line, bare LF, space before colon */
        R("GET / HTTP/1.1\r\n" H "X: a\r\n b\r\n\r\n", -EBADMSG, PROXY_H1_E_OBS_FOLD, 400),
        R("GET / HTTP/1.1\r\n" H "X: a\r\n\tb\r\n\r\n", -EBADMSG, PROXY_H1_E_OBS_FOLD, 400),
        R("GET / HTTP/1.1\r\n " H "\r\n", -EBADMSG, PROXY_H1_E_WS_LINE, 400),
        R("GET / HTTP/1.1\r\n" H "X: a\n\r\n", -EBADMSG, PROXY_H1_E_BARE_LF, 400),
        R("GET / HTTP/1.1\r\n" H "\n", -EBADMSG, PROXY_H1_E_BARE_LF, 400),
        R("GET / HTTP/1.1\r\n" H "\r\r\n", -EBADMSG, PROXY_H1_E_BARE_CR, 400),
        R("GET / HTTP/1.1\r\n" H "X: a\rb\r\n\r\n", -EBADMSG, PROXY_H1_E_BARE_CR, 400),
        R("GET / HTTP/1.1\r\nHost : a\r\n\r\n", -EBADMSG, PROXY_H1_E_WS_BEFORE_COLON, 400),
        R("GET / HTTP/1.1\r\nHost\t: a\r\n\r\n", -EBADMSG, PROXY_H1_E_WS_BEFORE_COLON, 400),
        R("GET / HTTP/1.1\r\n" H ": a\r\n\r\n", -EBADMSG, PROXY_H1_E_HEADER_NAME, 400),
        R("GET / HTTP/1.1\r\n" H "X\r\n\r\n", -EBADMSG, PROXY_H1_E_HEADER_NAME, 400),
        R("GET / HTTP/1.1\r\n" H "X(y): a\r\n\r\n", -EBADMSG, PROXY_H1_E_HEADER_NAME, 400),
        R("GET / HTTP/1.1\r\n" H "X\xc3: a\r\n\r\n", -EBADMSG, PROXY_H1_E_HEADER_NAME, 400),
        R("GET / HTTP/1.1\r\n" H "X: a\x7f\r\n\r\n", -EBADMSG, PROXY_H1_E_HEADER_VALUE, 400),
        R("GET / HTTP/1.1\r\n" H "X: a\x0b\r\n\r\n", -EBADMSG, PROXY_H1_E_HEADER_VALUE, 400),
        R("GET / HTTP/1.1\r\n" H "X: \x1b[0m\r\n\r\n", -EBADMSG, PROXY_H1_E_HEADER_VALUE, 400),
        /* Host */
        R("GET / HTTP/1.1\r\n\r\n", -EBADMSG, PROXY_H1_E_HOST_MISSING, 400),
        R("GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", -EBADMSG, PROXY_H1_E_HOST_DUPLICATE, 400),
        R("GET / HTTP/1.1\r\nHost:\r\n\r\n", -EBADMSG, PROXY_H1_E_HOST_INVALID, 400),
        R("GET / HTTP/1.1\r\nHost: a b\r\n\r\n", -EBADMSG, PROXY_H1_E_HOST_INVALID, 400),
        R("GET / HTTP/1.1\r\nHost: u@a\r\n\r\n", -EBADMSG, PROXY_H1_E_HOST_INVALID, 400),
        R("GET / HTTP/1.1\r\nHost: a:\r\n\r\n", -EBADMSG, PROXY_H1_E_HOST_INVALID, 400),
        R("GET / HTTP/1.1\r\nHost: a:0\r\n\r\n", -EBADMSG, PROXY_H1_E_HOST_INVALID, 400),
        R("GET / HTTP/1.1\r\nHost: a:65536\r\n\r\n", -EBADMSG, PROXY_H1_E_HOST_INVALID, 400),
        R("GET / HTTP/1.1\r\nHost: a:123456\r\n\r\n", -EBADMSG, PROXY_H1_E_HOST_INVALID, 400),
        R("GET / HTTP/1.1\r\nHost: a:8x\r\n\r\n", -EBADMSG, PROXY_H1_E_HOST_INVALID, 400),
        R("GET / HTTP/1.1\r\nHost: a,b\r\n\r\n", -EBADMSG, PROXY_H1_E_HOST_INVALID, 400),
        R("GET / HTTP/1.1\r\nHost: a%2eb\r\n\r\n", -EBADMSG, PROXY_H1_E_HOST_INVALID, 400),
        R("GET / HTTP/1.1\r\nHost: [::1\r\n\r\n", -EBADMSG, PROXY_H1_E_HOST_INVALID, 400),
        R("GET / HTTP/1.1\r\nHost: [zz::1]\r\n\r\n", -EBADMSG, PROXY_H1_E_HOST_INVALID, 400),
        R("GET / HTTP/1.1\r\nHost: [v1.x]\r\n\r\n", -EBADMSG, PROXY_H1_E_HOST_INVALID, 400),
        R("GET / HTTP/1.1\r\nHost: [fe80::1%25eth0]\r\n\r\n", -EBADMSG, PROXY_H1_E_HOST_INVALID,
          400),
        R("GET http://b/ HTTP/1.1\r\nHost: a\r\n\r\n", -EBADMSG, PROXY_H1_E_HOST_MISMATCH, 400),
        R("GET http://a:80/ HTTP/1.1\r\nHost: a\r\n\r\n", -EBADMSG, PROXY_H1_E_HOST_MISMATCH, 400),
        R("GET http://a/ HTTP/1.1\r\n\r\n", -EBADMSG, PROXY_H1_E_HOST_MISSING, 400),
        /* Connection, Upgrade, Expect */
        R("GET / HTTP/1.1\r\n" H "Connection: a b\r\n\r\n", -EBADMSG, PROXY_H1_E_CONNECTION, 400),
        R("GET / HTTP/1.1\r\n" H "Connection: a,b,c,d,e,f,g,h,i,j,k,l,m,n,o,p,q\r\n\r\n", -EBADMSG,
          PROXY_H1_E_CONNECTION, 400),
        R("GET / HTTP/1.1\r\n" H "Upgrade: web socket\r\n\r\n", -EBADMSG, PROXY_H1_E_UPGRADE, 400),
        R("GET / HTTP/1.1\r\n" H "Upgrade: a/\r\n\r\n", -EBADMSG, PROXY_H1_E_UPGRADE, 400),
        R("GET / HTTP/1.1\r\n" H "Expect: 200-ok\r\n\r\n", -EBADMSG, PROXY_H1_E_EXPECT, 417),
};

/* PortSwigger's request smuggling list plus RFC 9112 §6 framing. */
static const struct reject_case smuggling_rejects[] = {
        /* CL.TE / TE.CL: both present, in either order */
        R("POST / HTTP/1.1\r\n" H "Content-Length: 13\r\nTransfer-Encoding: chunked\r\n\r\n",
          -EBADMSG, PROXY_H1_E_TE_AND_CL, 400),
        R("POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
          -EBADMSG, PROXY_H1_E_TE_AND_CL, 400),
        R("POST / HTTP/1.1\r\n" H "Transfer-Encoding: xchunked\r\nContent-Length: 3\r\n\r\n",
          -EBADMSG, PROXY_H1_E_TE_AND_CL, 400),
        /* TE.TE obfuscations */
        R("POST / HTTP/1.1\r\n" H "Transfer-Encoding: xchunked\r\n\r\n", -EBADMSG,
          PROXY_H1_E_TE_NOT_CHUNKED, 400),
        R("POST / HTTP/1.1\r\n" H "Transfer-Encoding : chunked\r\n\r\n", -EBADMSG,
          PROXY_H1_E_WS_BEFORE_COLON, 400),
        R("POST / HTTP/1.1\r\n" H " Transfer-Encoding: chunked\r\n\r\n", -EBADMSG,
          PROXY_H1_E_OBS_FOLD, 400),
        R("POST / HTTP/1.1\r\n Transfer-Encoding: chunked\r\n" H "\r\n", -EBADMSG,
          PROXY_H1_E_WS_LINE, 400),
        R("POST / HTTP/1.1\r\n" H "Transfer-Encoding:\r\n chunked\r\n\r\n", -EBADMSG,
          PROXY_H1_E_OBS_FOLD, 400),
        R("POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked, identity\r\n\r\n", -EBADMSG,
          PROXY_H1_E_TE_NOT_CHUNKED, 400),
        R("POST / HTTP/1.1\r\n" H "Transfer-Encoding: identity\r\n\r\n", -EBADMSG,
          PROXY_H1_E_TE_NOT_CHUNKED, 400),
        R("POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked, chunked\r\n\r\n", -EBADMSG,
          PROXY_H1_E_TE_NOT_CHUNKED, 400),
        R("POST / HTTP/1.1\r\n" H "Transfer-Encoding: gzip, chunked\r\n\r\n", -EOPNOTSUPP,
          PROXY_H1_E_TE_UNKNOWN, 501),
        R("POST / HTTP/1.1\r\n" H "Transfer-Encoding: gzip\r\n\r\n", -EBADMSG,
          PROXY_H1_E_TE_NOT_CHUNKED, 400),
        R("POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\nTransfer-Encoding: x\r\n\r\n",
          -EBADMSG, PROXY_H1_E_TE_DUPLICATE, 400),
        R("POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\n"
          "Transfer-Encoding: chunked\r\n\r\n",
          -EBADMSG, PROXY_H1_E_TE_DUPLICATE, 400),
        R("POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked\x0b\r\n\r\n", -EBADMSG,
          PROXY_H1_E_HEADER_VALUE, 400),
        R("POST / HTTP/1.1\r\n" H "Transfer-Encoding: \"chunked\"\r\n\r\n", -EBADMSG,
          PROXY_H1_E_TE_INVALID, 400),
        R("POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked;q=1\r\n\r\n", -EBADMSG,
          PROXY_H1_E_TE_INVALID, 400),
        R("POST / HTTP/1.1\r\n" H "Transfer-Encoding: ,chunked\r\n\r\n", -EBADMSG,
          PROXY_H1_E_TE_INVALID, 400),
        R("POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunk\r\n\r\n", -EBADMSG,
          PROXY_H1_E_TE_NOT_CHUNKED, 400),
        R("POST / HTTP/1.1\r\n" H "Transfer-Encoding:\r\n\r\n", -EBADMSG, PROXY_H1_E_TE_INVALID,
          400),
        R("POST / HTTP/1.1\r\n" H "Transfer_Encoding: chunked\r\n\r\n", -EBADMSG,
          PROXY_H1_E_HEADER_NAME, 400),
        R("POST / HTTP/1.1\r\n" H "Content_Length: 5\r\n\r\n", -EBADMSG, PROXY_H1_E_HEADER_NAME,
          400),
        R("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", -EBADMSG, PROXY_H1_E_TE_HTTP10,
          400),
        R("POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked\0\r\n\r\n", -EBADMSG,
          PROXY_H1_E_HEADER_VALUE, 400),
        /* Content-Length variants */
        R("POST / HTTP/1.1\r\n" H "Content-Length: 5\r\nContent-Length: 6\r\n\r\n", -EBADMSG,
          PROXY_H1_E_CL_DUPLICATE, 400),
        R("POST / HTTP/1.1\r\n" H "Content-Length: 5\r\nContent-Length: 5\r\n\r\n", -EBADMSG,
          PROXY_H1_E_CL_DUPLICATE, 400),
        R("POST / HTTP/1.1\r\n" H "Content-Length: 5, 5\r\n\r\n", -EBADMSG, PROXY_H1_E_CL_INVALID,
          400),
        R("POST / HTTP/1.1\r\n" H "Content-Length: +5\r\n\r\n", -EBADMSG, PROXY_H1_E_CL_INVALID,
          400),
        R("POST / HTTP/1.1\r\n" H "Content-Length: -1\r\n\r\n", -EBADMSG, PROXY_H1_E_CL_INVALID,
          400),
        R("POST / HTTP/1.1\r\n" H "Content-Length: 5 6\r\n\r\n", -EBADMSG, PROXY_H1_E_CL_INVALID,
          400),
        R("POST / HTTP/1.1\r\n" H "Content-Length: 0x10\r\n\r\n", -EBADMSG, PROXY_H1_E_CL_INVALID,
          400),
        R("POST / HTTP/1.1\r\n" H "Content-Length: 1e3\r\n\r\n", -EBADMSG, PROXY_H1_E_CL_INVALID,
          400),
        R("POST / HTTP/1.1\r\n" H "Content-Length:\r\n\r\n", -EBADMSG, PROXY_H1_E_CL_INVALID, 400),
        R("POST / HTTP/1.1\r\n" H "Content-Length: 9223372036854775808\r\n\r\n", -EBADMSG,
          PROXY_H1_E_CL_INVALID, 400),
        R("POST / HTTP/1.1\r\n" H "Content-Length: 99999999999999999999999\r\n\r\n", -EBADMSG,
          PROXY_H1_E_CL_INVALID, 400),
        R("POST / HTTP/1.1\r\n" H "Content-Length: 18446744073709551621\r\n\r\n", -EBADMSG,
          PROXY_H1_E_CL_INVALID, 400),
        R("POST / HTTP/1.1\r\n" H "Content-Length: \xef\xbc\x95\r\n\r\n", -EBADMSG,
          PROXY_H1_E_CL_INVALID, 400),
        R("POST / HTTP/1.1\r\n" H "Content-Length: 5\0\r\n\r\n", -EBADMSG, PROXY_H1_E_HEADER_VALUE,
          400),
        R("POST / HTTP/1.1\r\n" H "Content-Length\n: 5\r\n\r\n", -EBADMSG, PROXY_H1_E_HEADER_NAME,
          400),
        /* h2c smuggling over obs-fold cannot sneak past either. */
        R("GET / HTTP/1.1\r\n" H "Upgrade: websocket\r\n h2c\r\n\r\n", -EBADMSG,
          PROXY_H1_E_OBS_FOLD, 400),
};

static void test_req_request_line_rejects(void **state)
{
        run_rejects(request_line_rejects, ELEMENTSOF(request_line_rejects));
}

static void test_req_field_rejects(void **state)
{
        run_rejects(field_rejects, ELEMENTSOF(field_rejects));
}

static void test_req_smuggling_rejects(void **state)
{
        run_rejects(smuggling_rejects, ELEMENTSOF(smuggling_rejects));
}

static void test_req_nul_anywhere(void **state)
{
        /* A NUL at any position of a valid request is refused, never
         * truncates the message. */
        const char s[] = "POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n\r\n";
        size_t n = sizeof(s) - 1;

        for (size_t i = 0; i < n; i++) {
                char t[sizeof(s)];
                struct msg m;

                memcpy(t, s, sizeof(s));
                t[i] = 0;
                assert_true(req_run(t, n, &m, &limits) < 0);
                assert_int_not_equal(m.req.h.err, PROXY_H1_OK);
        }
}

static void test_req_limits(void **state)
{
        struct proxy_h1_limits l = {.max_head = 64, .max_headers = 2, .max_target = 8};
        struct msg m;

        /* Target exactly at the limit, then one over: 414. */
        assert_int_equal(req_run("GET /2345678 HTTP/1.1\r\nHost: a\r\n\r\n",
                                 strlen("GET /2345678 HTTP/1.1\r\nHost: a\r\n\r\n"), &m, &l),
                         0);
        assert_int_equal(req_run("GET /23456789 HTTP/1.1\r\n", 24, &m, &l), -ENAMETOOLONG);
        assert_int_equal(m.req.h.err, PROXY_H1_E_TARGET_TOO_LONG);
        assert_int_equal(proxy_h1_err_status(m.req.h.err), 414);
        /* Detected before the end of the target arrives. */
        assert_int_equal(req_run("GET /23456789", 13, &m, &l), -ENAMETOOLONG);

        /* Header count: 2 fine, 3 is 431. */
        assert_int_equal(req_run("GET / HTTP/1.1\r\nHost: a\r\nA: b\r\n\r\n", 33, &m, &l), 0);
        assert_int_equal(req_run("GET / HTTP/1.1\r\nHost: a\r\nA: b\r\nC: d\r\n\r\n", 39, &m, &l),
                         -EMSGSIZE);
        assert_int_equal(m.req.h.err, PROXY_H1_E_TOO_MANY_HEADERS);
        assert_int_equal(proxy_h1_err_status(m.req.h.err), 431);

        /* Head bytes: exactly 64 is fine, 65 is 431, even without the end. */
        {
                char s[128];
                size_t n;

                snprintf(s, sizeof(s), "GET / HTTP/1.1\r\nHost: a\r\nX: %s\r\n\r\n",
                         "01234567890123456789012345678901");
                n = strlen(s);
                assert_int_equal(n, 64);
                assert_int_equal(req_run(s, n, &m, &l), 0);
                assert_int_equal(m.parse_r, 64);
                snprintf(s, sizeof(s), "GET / HTTP/1.1\r\nHost: a\r\nX: %s\r\n\r\n",
                         "012345678901234567890123456789012");
                n = strlen(s);
                assert_int_equal(req_run(s, n, &m, &l), -EMSGSIZE);
                assert_int_equal(m.req.h.err, PROXY_H1_E_HEAD_TOO_LARGE);
                assert_int_equal(req_run(s, 70, &m, &l), -EMSGSIZE);
                assert_int_equal(req_run(s, 64, &m, &l), -EMSGSIZE);
                assert_int_equal(req_run(s, 63, &m, &l), -EAGAIN);
        }

        /* A header array smaller than max_headers bounds the count too. */
        {
                struct proxy_h1_req r;
                struct proxy_h1_header hd[1];
                const char *s = "GET / HTTP/1.1\r\nHost: a\r\nA: b\r\n\r\n";

                proxy_h1_req_init(&r, &limits, hd, 1);
                assert_int_equal(proxy_h1_req_parse(&r, (const uint8_t *)s, strlen(s)), -EMSGSIZE);
        }
}

/* Every split point gives the same result as one call (and every prefix is
 * -EAGAIN), and the parser never re-reads: the scan position only grows. */
static void test_req_splits(void **state)
{
        const char *s = "\r\nPOST http://example.com/upload?x=1 HTTP/1.1\r\n"
                        "Host: example.com\r\nTransfer-Encoding: chunked\r\n"
                        "X-Forwarded-For: 1.1.1.1\r\nCookie: a=b; c=d\r\nX-Empty:   \r\n\r\nBODY";
        size_t n = strlen(s);
        struct msg whole;

        assert_int_equal(req(s, &whole), 0);
        for (size_t k = 0; k <= n; k++) {
                struct proxy_h1_req r;
                struct proxy_h1_header hd[CAP];
                int r1, r2;

                proxy_h1_req_init(&r, &limits, hd, CAP);
                r1 = proxy_h1_req_parse(&r, (const uint8_t *)s, k);
                if (k < (size_t)whole.parse_r) {
                        assert_int_equal(r1, -EAGAIN);
                        assert_int_equal(r.h.scan.pos, k);
                }
                r2 = proxy_h1_req_parse(&r, (const uint8_t *)s, n);
                assert_int_equal(r2, whole.parse_r);
                assert_int_equal(proxy_h1_req_analyze(&r, (const uint8_t *)s), 0);
                assert_same_req(&r, &whole.req);
                assert_int_equal(r.h.body, PROXY_H1_BODY_CHUNKED);
        }
}

/* ---- responses ---- */

struct rmsg {
        struct proxy_h1_resp resp;
        struct proxy_h1_header hdrs[CAP];
        int parse_r;
};

static int resp_run(const char *s, bool head, struct rmsg *m)
{
        struct rmsg one;
        size_t n = strlen(s);
        int r1 = -EAGAIN;

        proxy_h1_resp_init(&m->resp, &limits, m->hdrs, CAP);
        proxy_h1_resp_init(&one.resp, &limits, one.hdrs, CAP);
        m->parse_r = proxy_h1_resp_parse(&m->resp, (const uint8_t *)s, n);
        for (size_t k = 1; k <= n && r1 == -EAGAIN; k++)
                r1 = proxy_h1_resp_parse(&one.resp, (const uint8_t *)s, k);
        assert_int_equal(m->parse_r, r1);
        assert_int_equal(m->resp.h.err, one.resp.h.err);
        assert_int_equal(m->resp.status, one.resp.status);
        assert_memory_equal(&m->resp.reason, &one.resp.reason, sizeof(m->resp.reason));
        assert_int_equal(m->resp.h.n_headers, one.resp.h.n_headers);
        for (uint32_t i = 0; i < m->resp.h.n_headers; i++)
                assert_same_header(&m->hdrs[i], &one.hdrs[i]);
        if (m->parse_r < 0)
                return m->parse_r;
        return proxy_h1_resp_analyze(&m->resp, (const uint8_t *)s, head);
}

static void test_resp_framing(void **state)
{
        struct rmsg m;
        const char *s;

        s = "HTTP/1.1 200 OK\r\nContent-Length: 12\r\nServer: x\r\n\r\nhello world!";
        assert_int_equal(resp_run(s, false, &m), 0);
        assert_int_equal(m.parse_r, (int)strlen(s) - 12);
        assert_int_equal(m.resp.status, 200);
        assert_string_equal(span_dup(s, m.resp.reason), "OK");
        assert_int_equal(m.resp.h.body, PROXY_H1_BODY_LENGTH);
        assert_int_equal(m.resp.h.content_length, 12);
        assert_true(m.resp.h.keep_alive);

        s = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert_int_equal(resp_run(s, false, &m), 0);
        assert_int_equal(m.resp.h.body, PROXY_H1_BODY_CHUNKED);
        assert_true(m.resp.h.keep_alive);

        /* No framing: read until close, never reusable. */
        s = "HTTP/1.1 200 OK\r\nServer: x\r\n\r\n";
        assert_int_equal(resp_run(s, false, &m), 0);
        assert_int_equal(m.resp.h.body, PROXY_H1_BODY_CLOSE);
        assert_false(m.resp.h.keep_alive);
        s = "HTTP/1.0 200 OK\r\n\r\n";
        assert_int_equal(resp_run(s, false, &m), 0);
        assert_int_equal(m.resp.h.body, PROXY_H1_BODY_CLOSE);

        /* HTTP/1.0 keep-alive with a length. */
        s = "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\n";
        assert_int_equal(resp_run(s, false, &m), 0);
        assert_true(m.resp.h.keep_alive);
        s = "HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n";
        assert_int_equal(resp_run(s, false, &m), 0);
        assert_false(m.resp.h.keep_alive);
        s = "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\n";
        assert_int_equal(resp_run(s, false, &m), 0);
        assert_false(m.resp.h.keep_alive);

        /* 1xx, 204, 304 and HEAD: no body whatever the fields say. */
        s = "HTTP/1.1 100 Continue\r\n\r\n";
        assert_int_equal(resp_run(s, false, &m), 0);
        assert_int_equal(m.resp.status, 100);
        assert_int_equal(m.resp.h.body, PROXY_H1_BODY_NONE);
        assert_true(m.resp.h.keep_alive);
        s = "HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n";
        assert_int_equal(resp_run(s, false, &m), 0);
        assert_int_equal(m.resp.h.body, PROXY_H1_BODY_NONE);
        s = "HTTP/1.1 204\r\n\r\n";
        assert_int_equal(resp_run(s, false, &m), 0);
        assert_int_equal(m.resp.status, 204);
        assert_int_equal(m.resp.reason.len, 0);
        assert_int_equal(m.resp.h.body, PROXY_H1_BODY_NONE);
        s = "HTTP/1.1 204 \r\n\r\n";
        assert_int_equal(resp_run(s, false, &m), 0);
        assert_int_equal(m.resp.h.body, PROXY_H1_BODY_NONE);
        s = "HTTP/1.1 304 Not Modified\r\nContent-Length: 100\r\n\r\n";
        assert_int_equal(resp_run(s, false, &m), 0);
        assert_int_equal(m.resp.h.body, PROXY_H1_BODY_NONE);
        assert_true(m.resp.h.has_content_length);
        assert_true(m.resp.h.keep_alive);
        s = "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n";
        assert_int_equal(resp_run(s, true, &m), 0);
        assert_int_equal(m.resp.h.body, PROXY_H1_BODY_NONE);
        s = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert_int_equal(resp_run(s, true, &m), 0);
        assert_int_equal(m.resp.h.body, PROXY_H1_BODY_NONE);
        s = "HTTP/1.1 200 OK\r\n\r\n";
        assert_int_equal(resp_run(s, true, &m), 0);
        assert_int_equal(m.resp.h.body, PROXY_H1_BODY_NONE);
        assert_true(m.resp.h.keep_alive);

        /* 101 with a WebSocket upgrade. */
        s = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";
        assert_int_equal(resp_run(s, false, &m), 0);
        assert_int_equal(m.resp.status, 101);
        assert_true(m.resp.h.upgrade_websocket);
        assert_true(m.resp.h.conn_upgrade);

        /* Reason phrase with obs-text and tabs. */
        s = "HTTP/1.1 404 Nicht\tgefunden \xe2\x9c\x97\r\n\r\n";
        assert_int_equal(resp_run(s, true, &m), 0);
        assert_string_equal(span_dup(s, m.resp.reason), "Nicht\tgefunden \xe2\x9c\x97");
}

#define R2(s, e)                                                                                   \
        {                                                                                          \
                s, sizeof(s) - 1, e                                                                \
        }

static void test_resp_rejects(void **state)
{
        static const struct {
                const char *in;
                size_t n;
                enum proxy_h1_err err;
        } cases[] = {
                R2("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
                   PROXY_H1_E_TE_AND_CL),
                R2("HTTP/1.1 204 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
                   PROXY_H1_E_TE_AND_CL),
                R2("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
                   PROXY_H1_E_CL_DUPLICATE),
                R2("HTTP/1.1 200 OK\r\nContent-Length: 1,1\r\n\r\n", PROXY_H1_E_CL_INVALID),
                R2("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", PROXY_H1_E_TE_NOT_CHUNKED),
                R2("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
                   PROXY_H1_E_TE_UNKNOWN),
                R2("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n"
                   "\r\n",
                   PROXY_H1_E_TE_DUPLICATE),
                R2("HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", PROXY_H1_E_TE_HTTP10),
                R2("HTTP/1.1 200 OK\r\nTransfer_Encoding: chunked\r\n\r\n", PROXY_H1_E_HEADER_NAME),
                R2("HTTP/2.0 200 OK\r\n\r\n", PROXY_H1_E_STATUS_LINE),
                R2("HTTP/1.2 200 OK\r\n\r\n", PROXY_H1_E_VERSION_UNSUPPORTED),
                R2("http/1.1 200 OK\r\n\r\n", PROXY_H1_E_STATUS_LINE),
                R2("HTTP/1.1 99 OK\r\n\r\n", PROXY_H1_E_STATUS_LINE),
                R2("HTTP/1.1 099 OK\r\n\r\n", PROXY_H1_E_STATUS_LINE),
                R2("HTTP/1.1 600 OK\r\n\r\n", PROXY_H1_E_STATUS_LINE),
                R2("HTTP/1.1 2000 OK\r\n\r\n", PROXY_H1_E_STATUS_LINE),
                R2("HTTP/1.1  200 OK\r\n\r\n", PROXY_H1_E_STATUS_LINE),
                R2("HTTP/1.1 200 OK\n\r\n", PROXY_H1_E_BARE_LF),
                R2("HTTP/1.1 200 O\x01K\r\n\r\n", PROXY_H1_E_STATUS_LINE),
                R2("HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n", PROXY_H1_E_OBS_FOLD),
                R2("HTTP/1.1 200 OK\r\nX: a\n\r\n", PROXY_H1_E_BARE_LF),
                R2("HTTP/1.1 200 OK\r\nX : a\r\n\r\n", PROXY_H1_E_WS_BEFORE_COLON),
                R2("HTTP/1.1 200 OK\r\nX: \0\r\n\r\n", PROXY_H1_E_HEADER_VALUE),
                R2("\r\nHTTP/1.1 200 OK\r\n\r\n", PROXY_H1_E_STATUS_LINE),
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                struct rmsg m;
                size_t n = cases[i].n;
                int r;

                proxy_h1_resp_init(&m.resp, &limits, m.hdrs, CAP);
                r = proxy_h1_resp_parse(&m.resp, (const uint8_t *)cases[i].in, n);
                if (r > 0)
                        r = proxy_h1_resp_analyze(&m.resp, (const uint8_t *)cases[i].in, false);
                if (r >= 0 || m.resp.h.err != cases[i].err)
                        fail_msg("case %zu: got %d %s, want %s", i, r,
                                 proxy_h1_err_to_string(m.resp.h.err),
                                 proxy_h1_err_to_string(cases[i].err));
                if (cases[i].err != PROXY_H1_E_TE_UNKNOWN &&
                    cases[i].err != PROXY_H1_E_VERSION_UNSUPPORTED)
                        assert_int_equal(r, -EBADMSG);
        }
}

/* ---- chunked ---- */

/* Decode @in fed in pieces of @step bytes (0: all at once); collect data.
 * Returns the total consumed, or the error. */
static int chunked_run(const char *in, size_t n, size_t step, char *out, size_t *out_len,
                       struct proxy_h1_chunked *c)
{
        size_t pos = 0;

        proxy_h1_chunked_init(c, 64, 128, 4);
        *out_len = 0;
        while (pos < n && !proxy_h1_chunked_done(c)) {
                size_t avail = step ? MIN(step, n - pos) : n - pos, dl;
                int r = proxy_h1_chunked_decode(c, (const uint8_t *)in + pos, avail, &dl);

                if (r < 0)
                        return r;
                assert_true((size_t)r <= avail);
                assert_true(dl <= (size_t)r);
                memcpy(out + *out_len, in + pos + r - dl, dl);
                *out_len += dl;
                pos += (size_t)r;
                if (r == 0)
                        break;
        }
        return (int)pos;
}

static void test_chunked_decode(void **state)
{
        const char *in = "5\r\nhello\r\n"
                         "6;name=value;q=\"a b\"\r\n world\r\n"
                         "00A \t; ext\r\n0123456789\r\n"
                         "0\r\nX-Trailer: t\r\nY:\r\n\r\n"
                         "GET / HTTP/1.1\r\n";
        const char *want = "hello world0123456789";
        size_t n = strlen(in), tail = strlen("GET / HTTP/1.1\r\n");

        for (size_t step = 0; step <= n; step++) {
                struct proxy_h1_chunked c;
                char out[128];
                size_t ol;
                int r = chunked_run(in, n, step, out, &ol, &c);

                assert_int_equal(r, (int)(n - tail));
                assert_true(proxy_h1_chunked_done(&c));
                assert_int_equal(ol, strlen(want));
                assert_memory_equal(out, want, ol);
                /* Done: nothing more is consumed. */
                size_t dl;
                assert_int_equal(proxy_h1_chunked_decode(&c, (const uint8_t *)"x", 1, &dl), 0);
        }

        /* Two-piece splits at every point. */
        for (size_t k = 0; k <= n; k++) {
                struct proxy_h1_chunked c;
                char out[128];
                size_t ol = 0, pos = 0, dl;

                proxy_h1_chunked_init(&c, 64, 128, 4);
                for (int part = 0; part < 2; part++) {
                        size_t lim = part == 0 ? k : n;

                        while (pos < lim && !proxy_h1_chunked_done(&c)) {
                                int r = proxy_h1_chunked_decode(&c, (const uint8_t *)in + pos,
                                                                lim - pos, &dl);

                                assert_true(r > 0);
                                memcpy(out + ol, in + pos + r - dl, dl);
                                ol += dl;
                                pos += (size_t)r;
                        }
                }
                assert_true(proxy_h1_chunked_done(&c));
                assert_int_equal(pos, n - tail);
                assert_memory_equal(out, want, ol);
                assert_int_equal(ol, strlen(want));
        }
}

static void test_chunked_sizes(void **state)
{
        struct proxy_h1_chunked c;
        char out[64];
        size_t ol, dl;

        /* Largest accepted chunk-size: INT64_MAX. */
        proxy_h1_chunked_init(&c, 64, 128, 4);
        assert_int_equal(
                proxy_h1_chunked_decode(&c, (const uint8_t *)"7fffffffffffffff\r\nab", 20, &dl),
                20);
        assert_int_equal(dl, 2);
        assert_int_equal(c.remaining, (uint64_t)INT64_MAX - 2);
        proxy_h1_chunked_init(&c, 64, 128, 4);
        assert_int_equal(
                proxy_h1_chunked_decode(&c, (const uint8_t *)"00007FFFFFFFFFFFFFFF\r\n", 22, &dl),
                22);
        assert_int_equal(c.remaining, (uint64_t)INT64_MAX);

        /* One past, and 2^64 and beyond: refused, whatever the split. */
        static const char *const over[] = {
                "8000000000000000\r\n",
                "ffffffffffffffff\r\n",
                "10000000000000000\r\n",
                "100000000000000001\r\n",
        };
        for (size_t i = 0; i < ELEMENTSOF(over); i++)
                for (size_t step = 0; step < 4; step++) {
                        assert_int_equal(chunked_run(over[i], strlen(over[i]), step, out, &ol, &c),
                                         -EBADMSG);
                        assert_int_equal(c.err, PROXY_H1_E_CHUNK_SIZE);
                }

        /* Chunk line length bound (digits + extensions). */
        {
                char big[200];

                memset(big, '0', 70);
                memcpy(big + 70, "1\r\na\r\n0\r\n\r\n", 12);
                assert_int_equal(chunked_run(big, strlen(big), 0, out, &ol, &c), -EBADMSG);
                assert_int_equal(c.err, PROXY_H1_E_CHUNK_SIZE);
                memcpy(big, "1;", 2);
                memset(big + 2, 'x', 80);
                memcpy(big + 82, "\r\na\r\n0\r\n\r\n", 11);
                assert_int_equal(chunked_run(big, strlen(big), 1, out, &ol, &c), -EBADMSG);
                assert_int_equal(c.err, PROXY_H1_E_CHUNK_EXT);
        }
}

#define R3(s, r, e)                                                                                \
        {                                                                                          \
                s, sizeof(s) - 1, r, e                                                             \
        }

static void test_chunked_rejects(void **state)
{
        static const struct {
                const char *in;
                size_t n;
                int r;
                enum proxy_h1_err err;
        } cases[] = {
                R3("\r\n", -EBADMSG, PROXY_H1_E_CHUNK_SIZE),
                R3("x\r\n", -EBADMSG, PROXY_H1_E_CHUNK_SIZE),
                R3("-1\r\n", -EBADMSG, PROXY_H1_E_CHUNK_SIZE),
                R3("+1\r\n", -EBADMSG, PROXY_H1_E_CHUNK_SIZE),
                R3(" 1\r\n", -EBADMSG, PROXY_H1_E_CHUNK_SIZE),
                R3("0x1\r\n", -EBADMSG, PROXY_H1_E_CHUNK_SIZE),
                R3("1 \r\na\r\n", -EBADMSG, PROXY_H1_E_CHUNK_SIZE),
                R3("1\na\r\n", -EBADMSG, PROXY_H1_E_CHUNK_CRLF),
                R3("1\r\na\n0\r\n\r\n", -EBADMSG, PROXY_H1_E_CHUNK_CRLF),
                R3("1\r\nab\r\n", -EBADMSG, PROXY_H1_E_CHUNK_CRLF),
                R3("1\r\na\r0\r\n", -EBADMSG, PROXY_H1_E_CHUNK_CRLF),
                R3("1;a\nb\r\na\r\n", -EBADMSG, PROXY_H1_E_CHUNK_CRLF),
                R3("1;a\rb\r\na\r\n", -EBADMSG, PROXY_H1_E_CHUNK_CRLF),
                R3("1;a\0\r\na\r\n", -EBADMSG, PROXY_H1_E_CHUNK_EXT),
                R3("1\r\r\na\r\n", -EBADMSG, PROXY_H1_E_CHUNK_CRLF),
                R3("0\r\n\n", -EBADMSG, PROXY_H1_E_CHUNK_CRLF),
                R3("0\r\nX: a\n\r\n", -EBADMSG, PROXY_H1_E_CHUNK_CRLF),
                R3("0\r\nX: a\r\n b\r\n\r\n", -EBADMSG, PROXY_H1_E_OBS_FOLD),
                R3("0\r\nX : a\r\n\r\n", -EBADMSG, PROXY_H1_E_WS_BEFORE_COLON),
                R3("0\r\n: a\r\n\r\n", -EBADMSG, PROXY_H1_E_TRAILER),
                R3("0\r\nX\r\n\r\n", -EBADMSG, PROXY_H1_E_TRAILER),
                R3("0\r\nX: \x7f\r\n\r\n", -EBADMSG, PROXY_H1_E_TRAILER),
                R3("0\r\nA:1\r\nB:2\r\nC:3\r\nD:4\r\nE:5\r\n\r\n", -EMSGSIZE,
                   PROXY_H1_E_TRAILER_TOO_LARGE),
                R3("0\r\nA: 01234567890123456789012345678901234567890123456789012345678901234567"
                   "89012345678901234567890123456789012345678901234567890123456789\r\n\r\n",
                   -EMSGSIZE, PROXY_H1_E_TRAILER_TOO_LARGE),
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++)
                for (size_t step = 0; step < 3; step++) {
                        struct proxy_h1_chunked c;
                        char out[256];
                        size_t ol;
                        int r;

                        r = chunked_run(cases[i].in, cases[i].n, step, out, &ol, &c);
                        if (r != cases[i].r || c.err != cases[i].err)
                                fail_msg("case %zu step %zu: got %d %s", i, step, r,
                                         proxy_h1_err_to_string(c.err));
                        /* Stays failed. */
                        assert_int_equal(proxy_h1_chunked_decode(&c, (const uint8_t *)"0", 1, &ol),
                                         cases[i].r);
                }
}

/* Decode @in with the trailer section kept, handed over in two pieces
 * split at @k: the caller presents the held bytes again, as the engine's
 * buffer does. Returns the last result; the trailer fields' offset in @in
 * and their length in *ret_off, *ret_len once done. */
static int keep_run(const char *in, size_t n, size_t k, uint32_t max_trailer, char *out,
                    size_t *out_len, size_t *ret_off, size_t *ret_len, struct proxy_h1_chunked *c)
{
        size_t pos = 0, dl;
        int r = 0;

        proxy_h1_chunked_init(c, 64, max_trailer, 4);
        proxy_h1_chunked_keep_trailers(c);
        *out_len = 0;
        for (int part = 0; part < 2 && !proxy_h1_chunked_done(c); part++) {
                size_t lim = part == 0 ? k : n;

                while (pos < lim && !proxy_h1_chunked_done(c)) {
                        r = proxy_h1_chunked_decode(c, (const uint8_t *)in + pos, lim - pos, &dl);
                        if (r < 0)
                                return r;
                        memcpy(out + *out_len, in + pos + r - dl, dl);
                        *out_len += dl;
                        if (proxy_h1_chunked_done(c)) {
                                proxy_h1_chunked_trailers(c, r, ret_off, ret_len);
                                *ret_off += pos;
                        }
                        pos += (size_t)r;
                        if (r == 0) {
                                /* Everything given is held: the section so
                                 * far, from its first byte. */
                                assert_int_equal(proxy_h1_chunked_held(c), lim - pos);
                                break;
                        }
                }
        }
        return (int)pos;
}

static void test_chunked_keep_trailers(void **state)
{
        const char *in = "5\r\nhello\r\n"
                         "0\r\nX-Trailer: t \r\nGrpc-Status:0\r\nContent-Length: 5\r\nY:\r\n\r\n"
                         "NEXT";
        const char *fields = "X-Trailer: t \r\nGrpc-Status:0\r\nContent-Length: 5\r\nY:\r\n";
        size_t n = strlen(in), tail = 4, fl = strlen(fields);

        for (size_t k = 0; k <= n; k++) {
                struct proxy_h1_chunked c;
                struct proxy_h1_span nm, v;
                char out[64];
                uint8_t tr[128];
                size_t ol, off = 0, len = 0, pos = 0;
                int r = keep_run(in, n, k, 128, out, &ol, &off, &len, &c);

                assert_int_equal(r, (int)(n - tail));
                assert_true(proxy_h1_chunked_done(&c));
                assert_int_equal(proxy_h1_chunked_held(&c), 0);
                assert_int_equal(ol, 5);
                assert_memory_equal(out, "hello", 5);
                assert_int_equal(len, fl);
                assert_memory_equal(in + off, fields, fl);
                /* Content-Length must not be a trailer: dropped, the other
                 * lines byte-exact. */
                memcpy(tr, in + off, len);
                len = proxy_h1_trailers_filter(tr, len);
                assert_int_equal(len, strlen("X-Trailer: t \r\nGrpc-Status:0\r\nY:\r\n"));
                assert_memory_equal(tr, "X-Trailer: t \r\nGrpc-Status:0\r\nY:\r\n", len);
                assert_true(proxy_h1_trailer_next(tr, len, &pos, &nm, &v));
                assert_memory_equal(tr + nm.off, "X-Trailer", nm.len);
                assert_int_equal(nm.len, 9);
                assert_int_equal(v.len, 1);
                assert_memory_equal(tr + v.off, "t", 1);
                assert_true(proxy_h1_trailer_next(tr, len, &pos, &nm, &v));
                assert_int_equal(nm.len, 11);
                assert_int_equal(v.len, 1);
                assert_memory_equal(tr + v.off, "0", 1);
                assert_true(proxy_h1_trailer_next(tr, len, &pos, &nm, &v));
                assert_int_equal(nm.len, 1);
                assert_int_equal(v.len, 0);
                assert_false(proxy_h1_trailer_next(tr, len, &pos, &nm, &v));
        }

        /* Byte by byte: only the section is held, never the data before. */
        {
                struct proxy_h1_chunked c;
                size_t pos = 0, dl, lim;

                proxy_h1_chunked_init(&c, 64, 128, 4);
                proxy_h1_chunked_keep_trailers(&c);
                for (lim = 1; lim <= n && !proxy_h1_chunked_done(&c); lim++) {
                        int r = proxy_h1_chunked_decode(&c, (const uint8_t *)in + pos, lim - pos,
                                                        &dl);

                        assert_true(r >= 0);
                        pos += (size_t)r;
                        if (!proxy_h1_chunked_done(&c))
                                assert_true(pos <= 13 && proxy_h1_chunked_held(&c) == lim - pos);
                }
                assert_true(proxy_h1_chunked_done(&c));
                assert_int_equal(pos, n - tail);
        }

        /* No trailers: an empty field section. */
        {
                struct proxy_h1_chunked c;
                char out[8];
                size_t ol, off = 99, len = 99;

                for (size_t k = 0; k <= 10; k++) {
                        assert_int_equal(keep_run("1\r\na\r\n0\r\n\r\n", 11, k, 128, out, &ol, &off,
                                                  &len, &c),
                                         11);
                        assert_int_equal(len, 0);
                        assert_int_equal(off, 9);
                }
        }
}

/* The limits hold for a kept section, which is not counted twice however
 * it is split: exactly max_trailer bytes pass, one more is refused. */
static void test_chunked_keep_limits(void **state)
{
        char in[256], out[64];
        size_t ol, off, len;

        for (size_t extra = 0; extra < 2; extra++) {
                /* Section: "A: " value CRLF CRLF = 128 (+1) bytes. */
                size_t vl = 128 - 7 + extra, n = 0;

                n += (size_t)sprintf(in, "0\r\nA: ");
                memset(in + n, 'v', vl);
                n += vl;
                n += (size_t)sprintf(in + n, "\r\n\r\n");
                for (size_t k = 0; k <= n; k++) {
                        struct proxy_h1_chunked c;
                        int r = keep_run(in, n, k, 128, out, &ol, &off, &len, &c);

                        if (extra) {
                                assert_int_equal(r, -EMSGSIZE);
                                assert_int_equal(c.err, PROXY_H1_E_TRAILER_TOO_LARGE);
                        } else {
                                assert_int_equal(r, (int)n);
                                assert_int_equal(len, 128 - 2);
                        }
                }
        }
        /* Fields: at most 4. */
        for (size_t k = 0; k < 30; k++) {
                static const char many[] = "0\r\nA:1\r\nB:2\r\nC:3\r\nD:4\r\nE:5\r\n\r\n";
                struct proxy_h1_chunked c;

                assert_int_equal(keep_run(many, sizeof(many) - 1, k, 128, out, &ol, &off, &len, &c),
                                 -EMSGSIZE);
                assert_int_equal(c.err, PROXY_H1_E_TRAILER_TOO_LARGE);
        }
        /* Syntax errors as without keeping. */
        {
                struct proxy_h1_chunked c;

                assert_int_equal(
                        keep_run("0\r\nX : a\r\n\r\n", 12, 5, 128, out, &ol, &off, &len, &c),
                        -EBADMSG);
                assert_int_equal(c.err, PROXY_H1_E_WS_BEFORE_COLON);
        }
}

static void test_trailer_allowed(void **state)
{
        static const char *const no[] = {
                "Content-Length", "transfer-encoding",
                "HOST",           "connection",
                "keep-alive",     "te",
                "trailer",        "upgrade",
                "content-type",   "content-encoding",
                "content-range",  "authorization",
                "set-cookie",     "cookie",
                "cache-control",  "proxy-authorization",
                "expect",         "if-none-match",
                "range",          "age",
        };
        static const char *const yes[] = {
                "grpc-status", "grpc-message", "x-checksum", "server-timing",
                "digest",      "etag-x",       "t",          "tee"};

        for (size_t i = 0; i < ELEMENTSOF(no); i++)
                assert_false(proxy_h1_trailer_allowed((const uint8_t *)no[i], strlen(no[i])));
        for (size_t i = 0; i < ELEMENTSOF(yes); i++)
                assert_true(proxy_h1_trailer_allowed((const uint8_t *)yes[i], strlen(yes[i])));
}

static void test_chunk_encode(void **state)
{
        uint8_t h[PROXY_H1_CHUNK_HEAD_MAX], out[64];

        assert_int_equal(proxy_h1_chunk_head(h, 1), 3);
        assert_memory_equal(h, "1\r\n", 3);
        assert_int_equal(proxy_h1_chunk_head(h, 0x1a2), 5);
        assert_memory_equal(h, "1a2\r\n", 5);
        assert_int_equal(proxy_h1_chunk_head(h, UINT64_MAX), 18);
        assert_memory_equal(h, "ffffffffffffffff\r\n", 18);
        assert_int_equal(proxy_h1_chunk_head(h, 0x10), 4);
        assert_memory_equal(h, "10\r\n", 4);

        assert_int_equal(proxy_h1_chunk_encode((const uint8_t *)"hello", 5, out, sizeof(out)), 10);
        assert_memory_equal(out, "5\r\nhello\r\n", 10);
        assert_int_equal(proxy_h1_chunk_encode((const uint8_t *)"hello", 5, out, 9), -ENOBUFS);
        assert_int_equal(proxy_h1_chunk_encode((const uint8_t *)"", 0, out, 0), 0);
        assert_string_equal(PROXY_H1_CHUNK_LAST, "0\r\n\r\n");

        /* Round trip through the decoder. */
        {
                struct proxy_h1_chunked c;
                uint8_t buf[64];
                size_t dl;
                int n = proxy_h1_chunk_encode((const uint8_t *)"abc", 3, buf, sizeof(buf));

                memcpy(buf + n, PROXY_H1_CHUNK_LAST, 5);
                proxy_h1_chunked_init(&c, 64, 64, 4);
                assert_int_equal(proxy_h1_chunked_decode(&c, buf, (size_t)n + 5, &dl), 6);
                assert_int_equal(dl, 3);
                assert_int_equal(proxy_h1_chunked_decode(&c, buf + 6, (size_t)n + 5 - 6, &dl),
                                 n + 5 - 6);
                assert_true(proxy_h1_chunked_done(&c));
        }
}

/* ---- serialisation ---- */

static void expect_rewrite(const char *in, const struct proxy_h1_forward *f, const char *want)
{
        struct msg m;
        uint8_t out[2048];
        size_t wl = strlen(want);
        int r;

        assert_int_equal(req(in, &m), 0);
        r = proxy_h1_req_serialize(&m.req, (const uint8_t *)in, f, out, sizeof(out));
        if (r != (int)wl || memcmp(out, want, wl) != 0)
                fail_msg("got %d:\n%.*s\nwant:\n%s", r, r > 0 ? r : 0, out, want);
        /* Every smaller buffer is refused, never truncated. */
        for (size_t k = 0; k < wl; k++)
                assert_int_equal(proxy_h1_req_serialize(&m.req, (const uint8_t *)in, f, out, k),
                                 -ENOBUFS);
}

static void test_rewrite_basic(void **state)
{
        const struct proxy_h1_forward f = {
                .client_ip = "203.0.113.7",
                .host = "example.com",
                .https = true,
        };

        expect_rewrite("GET /a?b=c HTTP/1.1\r\nHost: example.com\r\nUser-Agent:  x y \r\n"
                       "Accept: */*\r\n\r\n",
                       &f,
                       "GET /a?b=c HTTP/1.1\r\nHost: example.com\r\nUser-Agent:  x y \r\n"
                       "Accept: */*\r\n"
                       "X-Forwarded-For: 203.0.113.7\r\nX-Forwarded-Proto: https\r\n"
                       "X-Forwarded-Host: example.com\r\nX-Real-IP: 203.0.113.7\r\n"
                       "Connection: keep-alive\r\n\r\n");

        /* Client's X-Forwarded-For kept and extended, over several fields;
         * spoofed X-Real-IP / -Proto / -Host dropped; hop-by-hop removed;
         * Content-Length regenerated canonically. */
        expect_rewrite("POST /up HTTP/1.1\r\nx-forwarded-for: 10.0.0.1, ,10.0.0.2\r\n"
                       "Host: example.com\r\nX-Real-IP: 127.0.0.1\r\nX-Forwarded-Proto: http\r\n"
                       "X-Forwarded-Host: evil\r\nConnection: keep-alive, X-Drop\r\n"
                       "X-Drop: 1\r\nKeep-Alive: 5\r\nTE: trailers\r\nTrailer: X\r\n"
                       "Proxy-Authorization: Basic Zm9v\r\nProxy-Connection: close\r\n"
                       "Content-Length: 007\r\nX-Forwarded-For: 10.0.0.3\r\n"
                       "Cookie: a=1\r\n\r\n",
                       &f,
                       "POST /up HTTP/1.1\r\nHost: example.com\r\nCookie: a=1\r\n"
                       "X-Forwarded-For: 10.0.0.1, 10.0.0.2, 10.0.0.3, 203.0.113.7\r\n"
                       "X-Forwarded-Proto: https\r\nX-Forwarded-Host: example.com\r\n"
                       "X-Real-IP: 203.0.113.7\r\nContent-Length: 7\r\n"
                       "Connection: keep-alive\r\n\r\n");

        /* replace_xff drops the client's list. */
        {
                struct proxy_h1_forward g = f;

                g.replace_xff = true;
                g.https = false;
                g.client_ip = "2001:db8::7";
                expect_rewrite("GET / HTTP/1.1\r\nHost: example.com\r\nX-Forwarded-For: 1.2.3.4\r\n"
                               "\r\n",
                               &g,
                               "GET / HTTP/1.1\r\nHost: example.com\r\n"
                               "X-Forwarded-For: 2001:db8::7\r\nX-Forwarded-Proto: http\r\n"
                               "X-Forwarded-Host: example.com\r\nX-Real-IP: 2001:db8::7\r\n"
                               "Connection: keep-alive\r\n\r\n");
        }
}

static void test_rewrite_shapes(void **state)
{
        const struct proxy_h1_forward f = {
                .client_ip = "198.51.100.1",
                .host = "h.example:8443",
                .https = true,
        };

        /* Chunked body: TE re-added; absolute-form becomes origin-form. */
        expect_rewrite("POST HTTP://h.example:8443?x=1 HTTP/1.1\r\nHost: h.example:8443\r\n"
                       "Transfer-Encoding: chunked\r\n\r\n",
                       &f,
                       "POST /?x=1 HTTP/1.1\r\nHost: h.example:8443\r\n"
                       "X-Forwarded-For: 198.51.100.1\r\nX-Forwarded-Proto: https\r\n"
                       "X-Forwarded-Host: h.example:8443\r\nX-Real-IP: 198.51.100.1\r\n"
                       "Transfer-Encoding: chunked\r\nConnection: keep-alive\r\n\r\n");

        /* HTTP/1.0 without Host: we add it and speak HTTP/1.1. */
        expect_rewrite("GET /old HTTP/1.0\r\nAccept: text/html\r\n\r\n", &f,
                       "GET /old HTTP/1.1\r\nHost: h.example:8443\r\nAccept: text/html\r\n"
                       "X-Forwarded-For: 198.51.100.1\r\nX-Forwarded-Proto: https\r\n"
                       "X-Forwarded-Host: h.example:8443\r\nX-Real-IP: 198.51.100.1\r\n"
                       "Connection: keep-alive\r\n\r\n");

        /* WebSocket: Upgrade canonical, Sec-* kept byte-exact. */
        expect_rewrite("GET /chat HTTP/1.1\r\nHost: h.example:8443\r\n"
                       "Upgrade: websocket, h2c\r\nConnection: Upgrade\r\n"
                       "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                       "Sec-WebSocket-Version: 13\r\n\r\n",
                       &f,
                       "GET /chat HTTP/1.1\r\nHost: h.example:8443\r\n"
                       "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                       "Sec-WebSocket-Version: 13\r\n"
                       "X-Forwarded-For: 198.51.100.1\r\nX-Forwarded-Proto: https\r\n"
                       "X-Forwarded-Host: h.example:8443\r\nX-Real-IP: 198.51.100.1\r\n"
                       "Connection: upgrade\r\nUpgrade: websocket\r\n\r\n");

        /* h2c: Upgrade and HTTP2-Settings dropped, plain keep-alive. */
        expect_rewrite("GET / HTTP/1.1\r\nHost: h.example:8443\r\nConnection: Upgrade, "
                       "HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABk\r\n\r\n",
                       &f,
                       "GET / HTTP/1.1\r\nHost: h.example:8443\r\n"
                       "X-Forwarded-For: 198.51.100.1\r\nX-Forwarded-Proto: https\r\n"
                       "X-Forwarded-Host: h.example:8443\r\nX-Real-IP: 198.51.100.1\r\n"
                       "Connection: keep-alive\r\n\r\n");

        /* OPTIONS * stays asterisk-form. */
        expect_rewrite("OPTIONS * HTTP/1.1\r\nHost: h.example:8443\r\n\r\n", &f,
                       "OPTIONS * HTTP/1.1\r\nHost: h.example:8443\r\n"
                       "X-Forwarded-For: 198.51.100.1\r\nX-Forwarded-Proto: https\r\n"
                       "X-Forwarded-Host: h.example:8443\r\nX-Real-IP: 198.51.100.1\r\n"
                       "Connection: keep-alive\r\n\r\n");
}

static void test_rewrite_invalid_inputs(void **state)
{
        const char *in = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";
        static const char *const bad_ips[] = {
                "1.2.3.4\r\nX-Evil: 1", "1.2.3", "", "::1%eth0", "[::1]", "1.2.3.4:80", "a",
        };
        static const char *const bad_hosts[] = {"a\r\nX: y", "", "a b", "a:0", "[::1"};
        struct msg m;
        uint8_t out[512];

        assert_int_equal(req(in, &m), 0);
        for (size_t i = 0; i < ELEMENTSOF(bad_ips); i++) {
                struct proxy_h1_forward f = {.client_ip = bad_ips[i], .host = "a"};

                assert_int_equal(
                        proxy_h1_req_serialize(&m.req, (const uint8_t *)in, &f, out, sizeof(out)),
                        -EINVAL);
        }
        for (size_t i = 0; i < ELEMENTSOF(bad_hosts); i++) {
                struct proxy_h1_forward f = {.client_ip = "1.2.3.4", .host = bad_hosts[i]};

                assert_int_equal(
                        proxy_h1_req_serialize(&m.req, (const uint8_t *)in, &f, out, sizeof(out)),
                        -EINVAL);
        }
        {
                const char *c = "CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n";
                struct proxy_h1_forward f = {.client_ip = "1.2.3.4", .host = "a:443"};
                struct msg cm;

                assert_int_equal(req(c, &cm), 0);
                assert_int_equal(
                        proxy_h1_req_serialize(&cm.req, (const uint8_t *)c, &f, out, sizeof(out)),
                        -EINVAL);
        }
        {
                struct proxy_h1_forward f = {.client_ip = NULL, .host = "a"};

                assert_int_equal(
                        proxy_h1_req_serialize(&m.req, (const uint8_t *)in, &f, out, sizeof(out)),
                        -EINVAL);
        }
}

static void expect_resp(const char *in, bool head, const struct proxy_h1_resp_opts *o,
                        const char *want, enum proxy_h1_body want_body)
{
        struct rmsg m;
        uint8_t out[1024];
        enum proxy_h1_body b = _PROXY_H1_BODY_MAX;
        size_t wl = strlen(want);
        int r;

        assert_int_equal(resp_run(in, head, &m), 0);
        r = proxy_h1_resp_serialize(&m.resp, (const uint8_t *)in, o, out, sizeof(out), &b);
        if (r != (int)wl || memcmp(out, want, wl) != 0)
                fail_msg("got %d:\n%.*s\nwant:\n%s", r, r > 0 ? r : 0, out, want);
        assert_int_equal(b, want_body);
        for (size_t k = 0; k < wl; k++) {
                b = _PROXY_H1_BODY_MAX;
                assert_int_equal(
                        proxy_h1_resp_serialize(&m.resp, (const uint8_t *)in, o, out, k, &b),
                        -ENOBUFS);
                assert_int_equal(b, _PROXY_H1_BODY_MAX);
        }
}

static void test_resp_serialize(void **state)
{
        const struct proxy_h1_resp_opts ka11 = {.keep_alive = true};
        const struct proxy_h1_resp_opts ka10 = {.keep_alive = true, .client_http10 = true};
        const struct proxy_h1_resp_opts close11 = {.keep_alive = false};

        expect_resp("HTTP/1.1 200 OK\r\nServer: s\r\nContent-Length: 05\r\nConnection: x-a\r\n"
                    "X-A: 1\r\nKeep-Alive: timeout=5\r\n\r\n",
                    false, &ka11, "HTTP/1.1 200 OK\r\nServer: s\r\nContent-Length: 5\r\n\r\n",
                    PROXY_H1_BODY_LENGTH);
        expect_resp("HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\n", false, &close11,
                    "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\n",
                    PROXY_H1_BODY_LENGTH);
        /* Chunked from the backend: chunked to 1.1, close-delimited to 1.0. */
        expect_resp("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X\r\n\r\n", false,
                    &ka11, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
                    PROXY_H1_BODY_CHUNKED);
        expect_resp("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", false, &ka10,
                    "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n", PROXY_H1_BODY_CLOSE);
        /* Close-delimited from the backend: chunked to 1.1 keeps the client. */
        expect_resp("HTTP/1.0 200 OK\r\nServer: old\r\n\r\n", false, &ka11,
                    "HTTP/1.1 200 OK\r\nServer: old\r\nTransfer-Encoding: chunked\r\n\r\n",
                    PROXY_H1_BODY_CHUNKED);
        expect_resp("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n", false, &ka10,
                    "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nConnection: keep-alive\r\n\r\n",
                    PROXY_H1_BODY_LENGTH);
        /* HEAD and 304 keep Content-Length; 204 and 1xx drop it. */
        expect_resp("HTTP/1.1 200 OK\r\nContent-Length: 42\r\n\r\n", true, &ka11,
                    "HTTP/1.1 200 OK\r\nContent-Length: 42\r\n\r\n", PROXY_H1_BODY_NONE);
        expect_resp("HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\nContent-Length: 42\r\n\r\n", false,
                    &ka11, "HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\nContent-Length: 42\r\n\r\n",
                    PROXY_H1_BODY_NONE);
        expect_resp("HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n", false, &ka11,
                    "HTTP/1.1 204 No Content\r\n\r\n", PROXY_H1_BODY_NONE);
        expect_resp("HTTP/1.1 100 Continue\r\n\r\n", false, &close11,
                    "HTTP/1.1 100 Continue\r\n\r\n", PROXY_H1_BODY_NONE);
        expect_resp("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                    "Connection: upgrade\r\nSec-WebSocket-Accept: abc=\r\n\r\n",
                    false, &ka11,
                    "HTTP/1.1 101 Switching Protocols\r\nSec-WebSocket-Accept: abc=\r\n"
                    "Connection: upgrade\r\nUpgrade: websocket\r\n\r\n",
                    PROXY_H1_BODY_NONE);
        expect_resp("HTTP/1.1 404\r\nProxy-Authenticate: Basic\r\nContent-Length: 0\r\n\r\n", false,
                    &ka11, "HTTP/1.1 404 \r\nContent-Length: 0\r\n\r\n", PROXY_H1_BODY_LENGTH);
}

static void test_enum_strings(void **state)
{
        for (int i = 0; i < _PROXY_H1_E_MAX; i++) {
                assert_non_null(proxy_h1_err_to_string(i));
                assert_true(i == 0 || proxy_h1_err_status(i) >= 400);
        }
        for (int i = 0; i < _PROXY_H1_BODY_MAX; i++)
                assert_non_null(proxy_h1_body_to_string(i));
        for (int i = 0; i < _PROXY_H1_FORM_MAX; i++)
                assert_non_null(proxy_h1_form_to_string(i));
        for (int i = 0; i < _PROXY_H1_METHOD_MAX; i++)
                assert_non_null(proxy_h1_method_to_string(i));
        for (int i = 0; i < _PROXY_H1_HDR_MAX; i++)
                assert_non_null(proxy_h1_hdr_to_string(i));
        assert_null(proxy_h1_err_to_string(_PROXY_H1_E_MAX));
        assert_null(proxy_h1_body_to_string(_PROXY_H1_BODY_MAX));
        assert_null(proxy_h1_form_to_string(-1));
        assert_null(proxy_h1_method_to_string(_PROXY_H1_METHOD_MAX));
        assert_null(proxy_h1_hdr_to_string(_PROXY_H1_HDR_MAX));
        assert_string_equal(proxy_h1_err_to_string(PROXY_H1_E_TE_AND_CL),
                            "transfer-encoding-and-content-length");
        assert_int_equal(proxy_h1_err_status(PROXY_H1_OK), 0);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_req_simple_get),
                cmocka_unit_test(test_req_shapes),
                cmocka_unit_test(test_req_hop_by_hop_marking),
                cmocka_unit_test(test_req_request_line_rejects),
                cmocka_unit_test(test_req_field_rejects),
                cmocka_unit_test(test_req_smuggling_rejects),
                cmocka_unit_test(test_req_nul_anywhere),
                cmocka_unit_test(test_req_limits),
                cmocka_unit_test(test_req_splits),
                cmocka_unit_test(test_resp_framing),
                cmocka_unit_test(test_resp_rejects),
                cmocka_unit_test(test_chunked_decode),
                cmocka_unit_test(test_chunked_keep_trailers),
                cmocka_unit_test(test_chunked_keep_limits),
                cmocka_unit_test(test_trailer_allowed),
                cmocka_unit_test(test_chunked_sizes),
                cmocka_unit_test(test_chunked_rejects),
                cmocka_unit_test(test_chunk_encode),
                cmocka_unit_test(test_rewrite_basic),
                cmocka_unit_test(test_rewrite_shapes),
                cmocka_unit_test(test_rewrite_invalid_inputs),
                cmocka_unit_test(test_resp_serialize),
                cmocka_unit_test(test_enum_strings),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
