/* SPDX-License-Identifier: Apache-2.0 */
/* Integration tests for the HTTP/2 server (h2-server.c) over loopback: an
 * engine with a :443 listener and short deadlines, a small blocking
 * HTTP/1.1 backend on a thread, and a BoringSSL client speaking h2 with
 * hand-built frames (so a test can send exactly the sequence it means,
 * including ones no library client would). The deadline tests fail without
 * the stream and connection deadlines: nothing else would end them. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <nghttp2/nghttp2.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "common/macros.h"
#include "proxy-test.h"
#include "proxy/proxy.h"
#include "proxy/routes.h"
#include "proxy/tls.h"

#define T_MS 300u /* request, keep-alive and idle deadlines of the engine */

/* ---- a blocking HTTP/1.1 backend: GET /n/<N> answers N bytes, GET /t a
 * chunked body with trailers (the section in pieces), a POST nothing ---- */

/* GET /t: "hello", then trailer fields, two of them that must not be
 * trailers; the trailer section reaches the proxy in several reads. */
static const char *const be_trailers[] = {
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n",
        "0\r\nGrpc-Sta",
        "tus: 0\r\nSet-Cookie: s",
        "=1\r\nX-Sum:  abc \r\nContent-Length: 3\r",
        "\n\r\n",
};

struct backend {
        int lfd;
        uint16_t port;
        pthread_t thr;
};

static void *be_conn_main(void *arg)
{
        int fd = (int)(intptr_t)arg;
        char buf[65536];
        size_t len = 0;

        for (;;) {
                char *end = memmem(buf, len, "\r\n\r\n", 4);
                unsigned long n = 0;
                char head[128];
                ssize_t k;

                if (!end) {
                        if (len == sizeof(buf))
                                break;
                        k = read(fd, buf + len, sizeof(buf) - len);
                        if (k <= 0)
                                break;
                        len += (size_t)k;
                        continue;
                }
                if (strncmp(buf, "POST ", 5) == 0) {
                        /* Reads nothing more and never answers, until the
                         * proxy closes the connection. */
                        char b;

                        while (recv(fd, &b, 1, MSG_PEEK) > 0)
                                sleep_ms(20);
                        break;
                }
                (void)sscanf(buf, "GET /n/%lu", &n);
                if (strncmp(buf, "GET /t ", 7) == 0) {
                        int one = 1;

                        memmove(buf, end + 4, len - (size_t)(end + 4 - buf));
                        len -= (size_t)(end + 4 - buf);
                        (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
                        for (size_t i = 0; i < ELEMENTSOF(be_trailers); i++) {
                                size_t l = strlen(be_trailers[i]);

                                if (write(fd, be_trailers[i], l) != (ssize_t)l)
                                        goto out;
                                sleep_ms(20);
                        }
                        continue;
                }
                memmove(buf, end + 4, len - (size_t)(end + 4 - buf));
                len -= (size_t)(end + 4 - buf);
                k = snprintf(head, sizeof(head), "HTTP/1.1 200 OK\r\nContent-Length: %lu\r\n\r\n",
                             n);
                if (write(fd, head, (size_t)k) != k)
                        break;
                while (n > 0) {
                        char chunk[4096];
                        size_t m = MIN(n, sizeof(chunk));

                        memset(chunk, 'x', m);
                        if (write(fd, chunk, m) != (ssize_t)m)
                                goto out;
                        n -= m;
                }
        }
out:
        close(fd);
        return NULL;
}

static void *be_main(void *arg)
{
        struct backend *b = arg;

        for (;;) {
                pthread_t t;
                int fd = accept(b->lfd, NULL, NULL);

                if (fd < 0)
                        return NULL;
                assert_int_equal(pthread_create(&t, NULL, be_conn_main, (void *)(intptr_t)fd), 0);
                pthread_detach(t);
        }
}

/* ---- fixture ---- */

struct fx {
        struct backend be;
        struct proxy_route_table *table;
        struct proxy_engine *engine;
        struct proxy_tls *tls;
        struct proxy_cert *cert;
        SSL_CTX *cctx;
        uint16_t https_port;
};

static void fx_start(struct fx *f)
{
        struct proxy_config cfg = {.workers = 1,
                                   .request_timeout_ms = T_MS,
                                   .keepalive_timeout_ms = T_MS,
                                   .idle_timeout_ms = T_MS};
        int l443;

        memset(f, 0, sizeof(*f));
        f->be.lfd = listen_loopback(&f->be.port);
        {
                /* Accepted sockets inherit it: a body the backend does not
                 * read backs up after a few KiB. */
                int small = 4096;

                assert_int_equal(
                        setsockopt(f->be.lfd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small)), 0);
        }
        assert_int_equal(pthread_create(&f->be.thr, NULL, be_main, &f->be), 0);
        assert_int_equal(proxy_route_table_new(&f->table), 0);
        assert_int_equal(proxy_tls_new(&f->tls), 0);
        f->cert = make_cert("a.test", "DNS:a.test", 1);
        table_put_ip(f->table, "wa", "a.test", PROXY_ROUTE_TERMINATE, INADDR_LOOPBACK, &f->be.port,
                     1, f->cert);
        l443 = listen_loopback(&f->https_port);
        cfg.https_fd = l443;
        cfg.http_fd = -1;
        cfg.tls = f->tls;
        assert_int_equal(proxy_engine_new(&cfg, f->table, &f->engine), 0);
        assert_int_equal(proxy_engine_start(f->engine), 0);
        close(l443);
        f->cctx = SSL_CTX_new(TLS_method());
        assert_non_null(f->cctx);
        assert_int_equal(
                SSL_CTX_set_alpn_protos(f->cctx, (const uint8_t *)"\x02h2\x08http/1.1", 12), 0);
}

static void fx_stop(struct fx *f)
{
        if (f->engine)
                f->engine = engine_stop_free(f->engine);
        proxy_route_table_free(f->table);
        proxy_cert_unref(f->cert);
        proxy_tls_free(f->tls);
        SSL_CTX_free(f->cctx);
        shutdown(f->be.lfd, SHUT_RDWR);
        close(f->be.lfd);
        pthread_join(f->be.thr, NULL);
}

/* ---- an h2 client of hand-built frames ---- */

struct cl {
        int fd;
        SSL *ssl;
        uint64_t sent1, recv1; /* bytes of stream 1's frames each way */
};

enum { F_DATA = 0, F_HEADERS = 1, F_RST = 3, F_SETTINGS = 4, F_PING = 6, F_GOAWAY = 7, F_WU = 8 };

static void cl_write(struct cl *c, const void *p, size_t n)
{
        assert_int_equal(SSL_write(c->ssl, p, (int)n), (int)n);
}

static void cl_frame(struct cl *c, uint8_t type, uint8_t flags, uint32_t sid, const void *p,
                     size_t n)
{
        uint8_t hd[9] = {
                (uint8_t)(n >> 16),   (uint8_t)(n >> 8),    (uint8_t)n,          type,        flags,
                (uint8_t)(sid >> 24), (uint8_t)(sid >> 16), (uint8_t)(sid >> 8), (uint8_t)sid};

        cl_write(c, hd, 9);
        if (n)
                cl_write(c, p, n);
        if (sid == 1)
                c->sent1 += 9 + n;
}

/* A TLS connection that chose h2, the preface and SETTINGS sent; with
 * @window (>= 0) SETTINGS_INITIAL_WINDOW_SIZE. */
static struct cl *cl_new(struct fx *f, long window)
{
        struct cl *c = calloc(1, sizeof(*c));
        struct timeval tv = {.tv_sec = 5};
        const uint8_t *alpn;
        unsigned alpn_len;
        uint8_t st[6] = {0,
                         4,
                         (uint8_t)(window >> 24),
                         (uint8_t)(window >> 16),
                         (uint8_t)(window >> 8),
                         (uint8_t)window};

        c->fd = connect_loopback(f->https_port);
        assert_int_equal(setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
        c->ssl = SSL_new(f->cctx);
        assert_true(SSL_set_tlsext_host_name(c->ssl, "a.test"));
        SSL_set_fd(c->ssl, c->fd);
        assert_int_equal(SSL_connect(c->ssl), 1);
        SSL_get0_alpn_selected(c->ssl, &alpn, &alpn_len);
        assert_int_equal(alpn_len, 2);
        assert_memory_equal(alpn, "h2", 2);
        cl_write(c, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 24);
        cl_frame(c, F_SETTINGS, 0, 0, st, window >= 0 ? 6 : 0);
        return c;
}

static void cl_free(struct cl *c)
{
        SSL_free(c->ssl);
        close(c->fd);
        free(c);
}

/* Read exactly @n bytes; false at EOF or on the receive timeout. */
static bool cl_read(struct cl *c, uint8_t *p, size_t n)
{
        while (n > 0) {
                int k = SSL_read(c->ssl, p, (int)n);

                if (k <= 0)
                        return false;
                p += k;
                n -= (size_t)k;
        }
        return true;
}

struct frame {
        uint8_t type, flags;
        uint32_t sid, len;
        uint8_t p[65536];
};

/* The next frame that is not SETTINGS/PING/WINDOW_UPDATE (acknowledging
 * the server's SETTINGS); false at EOF. */
static bool cl_next(struct cl *c, struct frame *fr)
{
        for (;;) {
                uint8_t hd[9];

                if (!cl_read(c, hd, 9))
                        return false;
                fr->len = (uint32_t)hd[0] << 16 | (uint32_t)hd[1] << 8 | hd[2];
                fr->type = hd[3];
                fr->flags = hd[4];
                fr->sid = ((uint32_t)hd[5] << 24 | (uint32_t)hd[6] << 16 | (uint32_t)hd[7] << 8 |
                           hd[8]) &
                          0x7fffffffu;
                assert_true(fr->len <= sizeof(fr->p));
                if (!cl_read(c, fr->p, fr->len))
                        return false;
                if (fr->sid == 1)
                        c->recv1 += 9 + fr->len;
                if (fr->type == F_SETTINGS && !(fr->flags & 1))
                        cl_frame(c, F_SETTINGS, 1, 0, NULL, 0);
                if (fr->type == F_SETTINGS || fr->type == F_PING || fr->type == F_WU)
                        continue;
                return true;
        }
}

/* Wait for the server's SETTINGS (acknowledged by cl_next()), so that no
 * acknowledgement of ours interleaves with what the test sends next. */
static void cl_settings(struct cl *c)
{
        uint8_t hd[9], p[256];
        uint32_t len;

        assert_true(cl_read(c, hd, 9));
        len = (uint32_t)hd[0] << 16 | (uint32_t)hd[1] << 8 | hd[2];
        assert_int_equal(hd[3], F_SETTINGS);
        assert_true(len <= sizeof(p) && cl_read(c, p, len));
        cl_frame(c, F_SETTINGS, 1, 0, NULL, 0);
}

/* HPACK: a literal field without indexing, new name (short strings). */
static size_t hp_lit(uint8_t *out, const char *name, const char *value)
{
        size_t nl = strlen(name), vl = strlen(value), n = 0;

        assert_true(nl < 127 && vl < 127);
        out[n++] = 0x00;
        out[n++] = (uint8_t)nl;
        memcpy(out + n, name, nl);
        n += nl;
        out[n++] = (uint8_t)vl;
        memcpy(out + n, value, vl);
        return n + vl;
}

static size_t hp_request(uint8_t *out, const char *method, const char *path)
{
        size_t n = 0;

        n += hp_lit(out + n, ":method", method);
        n += hp_lit(out + n, ":scheme", "https");
        n += hp_lit(out + n, ":authority", "a.test");
        n += hp_lit(out + n, ":path", path);
        return n;
}

#define END_STREAM  0x1
#define END_HEADERS 0x4

/* A GET of @path on stream 1, the whole request in one HEADERS frame. */
static void cl_get(struct cl *c, const char *path)
{
        uint8_t hb[256];
        size_t n = hp_request(hb, "GET", path);

        cl_frame(c, F_HEADERS, END_HEADERS | END_STREAM, 1, hb, n);
}

/* Read frames until stream 1 has ended, or EOF. */
static void cl_until_end1(struct cl *c, struct frame *fr)
{
        while (cl_next(c, fr))
                if (fr->sid == 1 && (fr->flags & END_STREAM))
                        break;
}

/* ---- tests ---- */

/* A GET over h2: 200 and the body; the route's counters are the bytes of
 * the stream's frames as they crossed the client side. */
/* The stream's counters once the worker counted it: one request, its
 * bytes as client stream 1 sent and received them. */
static void check_one_stream_counted(struct fx *f, struct cl *c)
{
        struct proxy_counters *ctr = route_counters(f->table, "wa");
        struct proxy_counters_values v;
        uint64_t end = now_ms() + WAIT_MS;

        do {
                proxy_counters_read(ctr, &v);
                if (v.requests == 1)
                        break;
                assert_true(now_ms() < end);
                sleep_ms(2);
        } while (true);
        check_traffic(ctr, 1, c->sent1, c->recv1, &v);
        proxy_counters_unref(ctr);
}

static void test_get_and_counters(void **state)
{
        struct fx f;
        struct cl *c;
        struct frame *fr = malloc(sizeof(*fr));
        size_t body = 0;
        bool headers = false, done = false;

        (void)state;
        fx_start(&f);
        c = cl_new(&f, -1);
        cl_get(c, "/n/20000");
        while (!done && cl_next(c, fr)) {
                if (fr->sid != 1)
                        continue;
                if (fr->type == F_HEADERS) {
                        /* :status 200 is HPACK static index 8. */
                        assert_int_equal(fr->p[0], 0x88);
                        headers = true;
                } else if (fr->type == F_DATA) {
                        body += fr->len;
                }
                done = fr->flags & END_STREAM;
        }
        assert_true(headers && done);
        assert_int_equal(body, 20000);
        check_one_stream_counted(&f, c);
        cl_free(c);
        free(fr);
        fx_stop(&f);
}

/* Decode a header block into "name: value\n" lines appended to @out. */
static void hp_decode(nghttp2_hd_inflater *inf, const uint8_t *p, size_t n, char *out, size_t size)
{
        for (;;) {
                nghttp2_nv nv;
                int fl = 0;
                ssize_t k = nghttp2_hd_inflate_hd2(inf, &nv, &fl, p, n, 1);

                assert_true(k >= 0);
                p += k;
                n -= (size_t)k;
                if (fl & NGHTTP2_HD_INFLATE_EMIT) {
                        size_t ol = strlen(out);

                        assert_true(ol + nv.namelen + nv.valuelen + 3 < size);
                        (void)snprintf(out + ol, size - ol, "%.*s: %.*s\n", (int)nv.namelen,
                                       nv.name, (int)nv.valuelen, nv.value);
                }
                if (fl & NGHTTP2_HD_INFLATE_FINAL) {
                        nghttp2_hd_inflate_end_headers(inf);
                        return;
                }
                assert_true(k > 0 || (fl & NGHTTP2_HD_INFLATE_EMIT));
        }
}

/* A backend's chunked response with trailers (the section split across
 * reads): DATA without END_STREAM, then a trailing HEADERS with
 * END_STREAM and the fields that may be trailers (lower-cased, OWS gone);
 * the route's counters include that frame. */
static void test_response_trailers(void **state)
{
        struct fx f;
        struct cl *c;
        struct frame *fr = malloc(sizeof(*fr));
        nghttp2_hd_inflater *inf;
        char body[64] = "", head[512] = "", trailers[512] = "";
        size_t bl = 0;
        unsigned n_headers = 0;
        bool done = false;

        (void)state;
        assert_int_equal(nghttp2_hd_inflate_new(&inf), 0);
        fx_start(&f);
        c = cl_new(&f, -1);
        cl_get(c, "/t");
        while (!done && cl_next(c, fr)) {
                if (fr->sid != 1)
                        continue;
                done = fr->flags & END_STREAM;
                if (fr->type == F_HEADERS) {
                        assert_true(fr->flags & END_HEADERS);
                        n_headers++;
                        hp_decode(inf, fr->p, fr->len, n_headers == 1 ? head : trailers,
                                  sizeof(head));
                        assert_int_equal(!!done, n_headers == 2);
                } else {
                        assert_int_equal(fr->type, F_DATA);
                        assert_false(done);
                        assert_true(bl + fr->len < sizeof(body));
                        memcpy(body + bl, fr->p, fr->len);
                        bl += fr->len;
                }
        }
        assert_true(done);
        assert_int_equal(n_headers, 2);
        assert_string_equal(body, "hello");
        assert_non_null(strstr(head, ":status: 200\n"));
        assert_string_equal(trailers, "grpc-status: 0\nx-sum: abc\n");
        check_one_stream_counted(&f, c);
        nghttp2_hd_inflate_del(inf);
        cl_free(c);
        free(fr);
        fx_stop(&f);
}

/* A client whose window stays 0 gets HEADERS and no DATA; the stream is
 * reset (CANCEL) once idle_timeout_ms passed without progress. */
static void test_zero_window_stall(void **state)
{
        struct fx f;
        struct cl *c;
        struct frame *fr = malloc(sizeof(*fr));
        uint8_t hb[256];
        size_t n;
        uint64_t t0;
        bool rst = false;

        (void)state;
        fx_start(&f);
        c = cl_new(&f, 0);
        n = hp_request(hb, "GET", "/n/5000");
        t0 = now_ms();
        cl_frame(c, F_HEADERS, END_HEADERS | END_STREAM, 1, hb, n);
        while (cl_next(c, fr)) {
                if (fr->sid != 1)
                        continue;
                assert_int_not_equal(fr->type, F_DATA);
                if (fr->type == F_RST) {
                        assert_int_equal(fr->p[3], 0x8); /* CANCEL */
                        rst = true;
                        break;
                }
        }
        assert_true(rst);
        assert_true(now_ms() - t0 >= T_MS - 50);
        cl_free(c);
        free(fr);
        fx_stop(&f);
}

/* A header block never ended (HEADERS without END_HEADERS, no
 * CONTINUATION) blocks the connection: closed after request_timeout_ms. */
static void test_header_block_deadline(void **state)
{
        struct fx f;
        struct cl *c;
        struct frame *fr = malloc(sizeof(*fr));
        uint8_t hb[256];
        size_t n;
        uint64_t t0;

        (void)state;
        fx_start(&f);
        c = cl_new(&f, -1);
        cl_settings(c);
        n = hp_request(hb, "GET", "/n/1");
        t0 = now_ms();
        cl_frame(c, F_HEADERS, END_STREAM, 1, hb, n);
        while (cl_next(c, fr))
                assert_int_not_equal(fr->type, F_HEADERS);
        assert_true(now_ms() - t0 >= T_MS - 50);
        assert_true(now_ms() - t0 < 4000); /* EOF, not the client's 5 s receive timeout */
        cl_free(c);
        free(fr);
        fx_stop(&f);
}

/* A request body that never comes: 408 after request_timeout_ms. */
static void test_request_body_stall(void **state)
{
        struct fx f;
        struct cl *c;
        struct frame *fr = malloc(sizeof(*fr));
        uint8_t hb[256];
        size_t n;
        uint64_t t0;
        bool got = false;

        (void)state;
        fx_start(&f);
        c = cl_new(&f, -1);
        n = hp_request(hb, "POST", "/n/1");
        n += hp_lit(hb + n, "content-length", "10");
        t0 = now_ms();
        cl_frame(c, F_HEADERS, END_HEADERS, 1, hb, n);
        while (cl_next(c, fr)) {
                if (fr->sid == 1 && fr->type == F_DATA) {
                        /* Our answers' body is the status (the HEADERS are
                         * Huffman-coded). */
                        assert_int_equal(fr->len, 4);
                        assert_memory_equal(fr->p, "408\n", 4);
                        got = true;
                        break;
                }
        }
        assert_true(got);
        assert_true(now_ms() - t0 >= T_MS - 50);
        cl_free(c);
        free(fr);
        fx_stop(&f);
}

/* Between streams the keep-alive deadline: GOAWAY (NO_ERROR), then EOF. */
static void test_keepalive_deadline(void **state)
{
        struct fx f;
        struct cl *c;
        struct frame *fr = malloc(sizeof(*fr));
        uint64_t t0;
        bool goaway = false;

        (void)state;
        fx_start(&f);
        c = cl_new(&f, -1);
        /* Before the request: the deadline starts once its stream ended,
         * which may be well before this thread reads that it did. */
        t0 = now_ms();
        cl_get(c, "/n/10");
        cl_until_end1(c, fr);
        while (cl_next(c, fr))
                if (fr->type == F_GOAWAY) {
                        assert_int_equal(fr->len, 8);
                        assert_int_equal(fr->p[7], 0); /* NO_ERROR */
                        goaway = true;
                }
        assert_true(goaway);
        assert_true(now_ms() - t0 >= T_MS - 50);
        assert_true(now_ms() - t0 < 4000);
        cl_free(c);
        free(fr);
        fx_stop(&f);
}

/* A route removed under an open connection: the connection, whose
 * certificate was the route's, ends. */
static void test_route_removed(void **state)
{
        struct fx f;
        struct cl *c;
        struct frame *fr = malloc(sizeof(*fr));
        uint64_t t0;

        (void)state;
        fx_start(&f);
        c = cl_new(&f, -1);
        cl_get(c, "/n/10");
        cl_until_end1(c, fr);
        t0 = now_ms();
        table_remove(f.table, "wa");
        while (cl_next(c, fr))
                ;
        assert_true(now_ms() - t0 < 3000); /* EOF, not the client's receive timeout */
        wait_idle_engine(f.engine);
        cl_free(c);
        free(fr);
        fx_stop(&f);
}

/* Request body backpressure: the backend reads nothing of the body, so
 * the client's window is given back only for what the backend socket took;
 * the client, sending as fast as its windows allow, is held far below the
 * 16 MiB it wants to send, and the stream is not reset. (With automatic
 * window updates it could send everything, and the stream's buffer would
 * overflow.) */
static void test_request_body_backpressure(void **state)
{
        struct fx f;
        struct cl *c;
        uint8_t hb[256], *chunk = calloc(1, 16384);
        struct timeval tv = {.tv_usec = 20000};
        int64_t conn_win = 65535, stream_win = 65535;
        uint64_t sent = 0, t_end, t_sent;
        size_t n;

        (void)state;
        fx_start(&f);
        c = cl_new(&f, -1);
        cl_settings(c);
        n = hp_request(hb, "POST", "/hold");
        n += hp_lit(hb + n, "content-length", "16777216");
        cl_frame(c, F_HEADERS, END_HEADERS, 1, hb, n);
        assert_int_equal(setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
        t_end = now_ms() + 3000;
        t_sent = now_ms();
        /* Until the windows stay shut for 150 ms (the engine's request
         * deadline, 300 ms, would then answer 408: no progress either way). */
        while (now_ms() < t_end && now_ms() - t_sent < 150 && sent < 16777216) {
                uint8_t hd[9], p[64];
                uint32_t len;

                if (conn_win >= 16384 && stream_win >= 16384) {
                        cl_frame(c, F_DATA, 0, 1, chunk, 16384);
                        t_sent = now_ms();
                        sent += 16384;
                        conn_win -= 16384;
                        stream_win -= 16384;
                        continue;
                }
                if (!cl_read(c, hd, 9))
                        continue; /* nothing within 20 ms */
                len = (uint32_t)hd[0] << 16 | (uint32_t)hd[1] << 8 | hd[2];
                assert_true(len <= sizeof(p) && cl_read(c, p, len));
                assert_int_not_equal(hd[3], F_RST);
                assert_int_not_equal(hd[3], F_GOAWAY);
                if (hd[3] == F_WU) {
                        int64_t inc = (int64_t)((uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
                                                (uint32_t)p[2] << 8 | p[3]);

                        if (hd[8] == 0)
                                conn_win += inc;
                        else
                                stream_win += inc;
                }
        }
        note("sent %llu bytes of 16 MiB while the backend read none\n", (unsigned long long)sent);
        assert_true(sent >= 65536 - 16384);
        /* The backend socket's kernel send buffer (tcp_wmem, 4 MiB here)
         * takes some; the stream holds at most its 64 KiB window. */
        assert_true(sent < 8 * 1024 * 1024);
        cl_free(c);
        free(chunk);
        fx_stop(&f);
}

static void *stop_main(void *arg)
{
        return (void *)(intptr_t)proxy_engine_stop(arg);
}

/* A graceful stop: an idle h2 connection gets GOAWAY and is closed, a
 * stream in flight first finishes. */
static void test_stop_goaway(void **state)
{
        struct fx f;
        struct cl *c, *c2;
        struct frame *fr = malloc(sizeof(*fr));
        uint8_t wu[4] = {0, 0x01, 0x86, 0xa0}; /* 100000 */
        size_t body = 0;
        bool goaway = false, ended = false;
        pthread_t t;
        void *ret;

        (void)state;
        fx_start(&f);
        c = cl_new(&f, -1);
        /* c2: a response in flight, held by a window of 0. */
        c2 = cl_new(&f, 0);
        cl_get(c2, "/n/100000");
        do
                assert_true(cl_next(c2, fr));
        while (!(fr->sid == 1 && fr->type == F_HEADERS));
        assert_int_equal(pthread_create(&t, NULL, stop_main, f.engine), 0);
        while (cl_next(c, fr))
                if (fr->type == F_GOAWAY)
                        goaway = true;
        assert_true(goaway);
        /* c2's stream completes before its connection goes. */
        goaway = false;
        cl_frame(c2, F_WU, 0, 0, wu, 4);
        cl_frame(c2, F_WU, 0, 1, wu, 4);
        while (cl_next(c2, fr)) {
                if (fr->type == F_GOAWAY)
                        goaway = true;
                if (fr->sid == 1 && fr->type == F_DATA) {
                        body += fr->len;
                        ended = fr->flags & END_STREAM;
                }
        }
        assert_true(goaway && ended);
        assert_int_equal(body, 100000);
        assert_int_equal(pthread_join(t, &ret), 0);
        assert_int_equal((intptr_t)ret, 0);
        assert_int_equal(engine_stats(f.engine).active, 0);
        f.engine = proxy_engine_free(f.engine);
        cl_free(c);
        cl_free(c2);
        free(fr);
        fx_stop(&f);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_get_and_counters),
                cmocka_unit_test(test_response_trailers),
                cmocka_unit_test(test_zero_window_stall),
                cmocka_unit_test(test_header_block_deadline),
                cmocka_unit_test(test_request_body_stall),
                cmocka_unit_test(test_keepalive_deadline),
                cmocka_unit_test(test_request_body_backpressure),
                cmocka_unit_test(test_route_removed),
                cmocka_unit_test(test_stop_goaway),
        };

        signal(SIGPIPE, SIG_IGN);
        return cmocka_run_group_tests(tests, NULL, NULL);
}
