/* SPDX-License-Identifier: Apache-2.0 */
/* Integration tests for the HTTP side of the proxy engine (h1-*.c) over
 * loopback: an engine with :443 and :80 listeners, a small blocking HTTP/1.1
 * backend on threads, and real clients: plain sockets, and BoringSSL TLS
 * clients against a self-signed ECDSA P-256 certificate made here. Every
 * test stops its engine, which fails unless each worker's loop closed
 * cleanly. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "common/macros.h"
#include "common/md5.h"
#include "proxy-test.h"
#include "proxy/proxy.h"
#include "proxy/routes.h"
#include "proxy/tls.h"

/* ---- helpers ---- */

static int connect_to(uint16_t port)
{
        struct timeval tv = {.tv_sec = 10};
        int fd = connect_loopback(port);

        /* A test that waits for bytes that never come fails instead of
         * hanging. */
        assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
        return fd;
}

static void fd_write_all(int fd, const void *p, size_t n)
{
        const uint8_t *b = p;

        while (n > 0) {
                ssize_t k = send(fd, b, n, MSG_NOSIGNAL);

                if (k <= 0)
                        return;
                b += k;
                n -= (size_t)k;
        }
}

static void gen_md5(uint32_t seed, uint64_t n, uint8_t out[16])
{
        struct gen g = {.s = seed};
        struct md5_ctx m;
        uint8_t buf[16384];

        md5_init(&m);
        while (n > 0) {
                size_t k = (size_t)MIN(n, (uint64_t)sizeof(buf));

                gen_fill(&g, buf, k);
                md5_update(&m, buf, k);
                n -= k;
        }
        md5_final(&m, out);
}

static const char *find_header(const char *head, const char *name, char *out, size_t size)
{
        size_t nl = strlen(name);

        for (const char *p = strstr(head, "\r\n"); p && p[2] != '\r'; p = strstr(p + 2, "\r\n")) {
                const char *line = p + 2, *end = strstr(line, "\r\n");

                if (!end)
                        break;
                if ((size_t)(end - line) > nl && strncasecmp(line, name, nl) == 0 &&
                    line[nl] == ':') {
                        const char *v = line + nl + 1;
                        size_t l;

                        while (*v == ' ' || *v == '\t')
                                v++;
                        l = (size_t)(end - v);
                        if (l >= size)
                                l = size - 1;
                        memcpy(out, v, l);
                        out[l] = 0;
                        return out;
                }
        }
        return NULL;
}

/* ---- a buffered reader over a fd or an SSL ---- */

struct rd {
        int fd;
        SSL *ssl;
        uint8_t buf[65536];
        size_t off, len;
        uint64_t rx;       /* bytes read from the connection */
        uint64_t tx;       /* bytes written */
        unsigned slow_ms;  /* sleep before each read (a slow reader) */
        size_t slow_chunk; /* ... reading at most this much each time */
};

/* 1 with more bytes, 0 at EOF, -1 on error. */
static int rd_fill(struct rd *r)
{
        ssize_t k;
        size_t want;

        if (r->off == r->len)
                r->off = r->len = 0;
        if (r->off > 0 && r->len == sizeof(r->buf)) {
                memmove(r->buf, r->buf + r->off, r->len - r->off);
                r->len -= r->off;
                r->off = 0;
        }
        want = sizeof(r->buf) - r->len;
        if (r->slow_chunk && want > r->slow_chunk)
                want = r->slow_chunk;
        if (r->slow_ms)
                sleep_ms(r->slow_ms);
        if (r->ssl) {
                k = SSL_read(r->ssl, r->buf + r->len, (int)want);
                if (k <= 0)
                        return SSL_get_error(r->ssl, (int)k) == SSL_ERROR_ZERO_RETURN ? 0 : -1;
        } else {
                k = read(r->fd, r->buf + r->len, want);
                if (k < 0)
                        return -1;
                if (k == 0)
                        return 0;
        }
        r->len += (size_t)k;
        r->rx += (uint64_t)k;
        return 1;
}

static void rd_write(struct rd *r, const void *p, size_t n)
{
        if (r->ssl) {
                assert_int_equal(SSL_write(r->ssl, p, (int)n), (int)n);
        } else {
                fd_write_all(r->fd, p, n);
        }
        r->tx += n;
}

/* A line ending in CRLF (without it) into @out; false at EOF. */
static bool rd_line(struct rd *r, char *out, size_t size)
{
        for (;;) {
                uint8_t *e = memmem(r->buf + r->off, r->len - r->off, "\r\n", 2);

                if (e) {
                        size_t l = (size_t)(e - (r->buf + r->off));

                        assert_true(l < size);
                        memcpy(out, r->buf + r->off, l);
                        out[l] = 0;
                        r->off += l + 2;
                        return true;
                }
                if (rd_fill(r) <= 0)
                        return false;
        }
}

/* The head up to and including the empty line, NUL-terminated. */
static bool rd_head(struct rd *r, char *out, size_t size)
{
        for (;;) {
                uint8_t *e = memmem(r->buf + r->off, r->len - r->off, "\r\n\r\n", 4);

                if (e) {
                        size_t l = (size_t)(e - (r->buf + r->off)) + 4;

                        assert_true(l < size);
                        memcpy(out, r->buf + r->off, l);
                        out[l] = 0;
                        r->off += l;
                        return true;
                }
                if (rd_fill(r) <= 0)
                        return false;
        }
}

/* Read @n body bytes into the md5 (and @keep, first bytes). */
static bool rd_body(struct rd *r, uint64_t n, struct md5_ctx *m, uint8_t *keep, size_t keep_size,
                    size_t *kept)
{
        while (n > 0) {
                if (r->off == r->len && rd_fill(r) <= 0)
                        return false;
                size_t k = (size_t)MIN(n, (uint64_t)(r->len - r->off));

                if (m)
                        md5_update(m, r->buf + r->off, k);
                if (keep && *kept < keep_size) {
                        size_t c = MIN(k, keep_size - *kept);

                        memcpy(keep + *kept, r->buf + r->off, c);
                        *kept += c;
                }
                r->off += k;
                n -= k;
        }
        return true;
}

/* A parsed message: head, framing, body digest. */
struct msg {
        char head[16384];
        char line[256]; /* start line */
        unsigned status;
        uint64_t body_len;
        uint8_t md5[16];
        uint8_t body[4096]; /* the first bytes */
        size_t body_kept;
        bool chunked;
        bool close;
        bool eof_body; /* close-delimited */
};

/* Read a body framed per @m (request: no close-delimited). */
static bool rd_msg_body(struct rd *r, struct msg *m, bool response, bool head_req)
{
        char v[64];
        struct md5_ctx ctx;

        md5_init(&ctx);
        m->body_len = 0;
        m->body_kept = 0;
        m->chunked = find_header(m->head, "Transfer-Encoding", v, sizeof(v)) &&
                     strcasecmp(v, "chunked") == 0;
        m->close = find_header(m->head, "Connection", v, sizeof(v)) && strcasecmp(v, "close") == 0;
        if (head_req || (response && (m->status == 204 || m->status == 304 || m->status < 200))) {
                md5_final(&ctx, m->md5);
                return true;
        }
        if (m->chunked) {
                char line[128];

                for (;;) {
                        uint64_t n;

                        if (!rd_line(r, line, sizeof(line)))
                                return false;
                        n = strtoull(line, NULL, 16);
                        if (n == 0)
                                break;
                        if (!rd_body(r, n, &ctx, m->body, sizeof(m->body), &m->body_kept))
                                return false;
                        m->body_len += n;
                        if (!rd_line(r, line, sizeof(line)))
                                return false;
                }
                /* Trailers, then the empty line. */
                while (rd_line(r, line, sizeof(line)) && line[0])
                        ;
        } else if (find_header(m->head, "Content-Length", v, sizeof(v))) {
                m->body_len = strtoull(v, NULL, 10);
                if (!rd_body(r, m->body_len, &ctx, m->body, sizeof(m->body), &m->body_kept))
                        return false;
        } else if (response) {
                m->eof_body = true;
                for (;;) {
                        if (r->off == r->len && rd_fill(r) <= 0)
                                break;
                        size_t k = r->len - r->off;

                        md5_update(&ctx, r->buf + r->off, k);
                        if (m->body_kept < sizeof(m->body)) {
                                size_t c = MIN(k, sizeof(m->body) - m->body_kept);

                                memcpy(m->body + m->body_kept, r->buf + r->off, c);
                                m->body_kept += c;
                        }
                        m->body_len += k;
                        r->off += k;
                }
        }
        md5_final(&ctx, m->md5);
        return true;
}

static bool rd_response(struct rd *r, struct msg *m, bool head_req)
{
        memset(m, 0, sizeof(*m));
        if (!rd_head(r, m->head, sizeof(m->head)))
                return false;
        sscanf(m->head, "HTTP/1.%*d %u", &m->status);
        return rd_msg_body(r, m, true, head_req);
}

/* After a response: the connection reaches EOF (or a reset) with nothing else. */
static void rd_expect_eof(struct rd *r)
{
        assert_int_equal(r->len - r->off, 0);
        assert_true(rd_fill(r) <= 0);
}

/* ---- the backend ---- */

#define BE_CONNS 64
#define BE_REQS  256

struct breq {
        char head[16384];
        uint64_t body_len;
        uint8_t body_md5[16];
        atomic_bool done; /* the fields above are written (release) */
};

struct backend {
        int lfd;
        uint16_t port;
        pthread_t thread;
        atomic_uint n_conns;
        atomic_uint n_reqs;
        atomic_uint n_open;
        unsigned slow_ms;      /* /slow waits this long */
        atomic_bool reset_all; /* reset each connection once a request head came */
        atomic_uint n_resets;
        pthread_mutex_t mu;
        struct breq reqs[BE_REQS];
        pthread_t conn_threads[BE_CONNS];
        int conn_fds[BE_CONNS];
};

struct bconn {
        struct backend *b;
        int fd;
};

static void be_respond_gen(struct rd *r, uint64_t n, uint32_t seed, bool chunked, bool close_delim)
{
        struct gen g = {.s = seed};
        static _Thread_local uint8_t buf[32768];
        char head[256];
        int k;

        if (close_delim)
                k = snprintf(head, sizeof(head), "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n");
        else if (chunked)
                k = snprintf(head, sizeof(head),
                             "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
        else
                k = snprintf(head, sizeof(head), "HTTP/1.1 200 OK\r\nContent-Length: %llu\r\n\r\n",
                             (unsigned long long)n);
        fd_write_all(r->fd, head, (size_t)k);
        while (n > 0) {
                size_t c = (size_t)MIN(n, (uint64_t)(chunked ? 10000 : sizeof(buf)));

                gen_fill(&g, buf, c);
                if (chunked) {
                        k = snprintf(head, sizeof(head), "%zx;ext=1\r\n", c);
                        fd_write_all(r->fd, head, (size_t)k);
                }
                fd_write_all(r->fd, buf, c);
                if (chunked)
                        fd_write_all(r->fd, "\r\n", 2);
                n -= c;
        }
        if (chunked)
                fd_write_all(r->fd, "0\r\nX-Trailer: t\r\n\r\n", 20);
}

static void *be_conn_main(void *arg)
{
        struct bconn *bc = arg;
        struct backend *b = bc->b;
        struct rd *r = calloc(1, sizeof(*r));
        struct msg *m = calloc(1, sizeof(*m));

        r->fd = bc->fd;
        for (;;) {
                char method[16] = "", path[512] = "", v[64];
                unsigned idx;

                memset(m, 0, sizeof(*m));
                if (!rd_head(r, m->head, sizeof(m->head)))
                        break;
                if (atomic_load(&b->reset_all)) {
                        struct linger lg = {.l_onoff = 1, .l_linger = 0};

                        (void)setsockopt(r->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
                        atomic_fetch_add(&b->n_resets, 1);
                        break;
                }
                sscanf(m->head, "%15s %511s", method, path);
                if (!rd_msg_body(r, m, false, false))
                        break;
                idx = atomic_fetch_add(&b->n_reqs, 1);
                if (idx < BE_REQS) {
                        pthread_mutex_lock(&b->mu);
                        snprintf(b->reqs[idx].head, sizeof(b->reqs[idx].head), "%s", m->head);
                        b->reqs[idx].body_len = m->body_len;
                        memcpy(b->reqs[idx].body_md5, m->md5, 16);
                        atomic_store_explicit(&b->reqs[idx].done, true, memory_order_release);
                        pthread_mutex_unlock(&b->mu);
                }
                bool head_req = streq(method, "HEAD");

                if (strncmp(path, "/ws", 3) == 0) {
                        static const char up[] = "HTTP/1.1 101 Switching Protocols\r\n"
                                                 "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                                                 "Sec-WebSocket-Accept: x\r\n\r\n";
                        uint8_t buf[4096];

                        fd_write_all(r->fd, up, sizeof(up) - 1);
                        /* Echo raw bytes (what came after the head first). */
                        if (r->len > r->off)
                                fd_write_all(r->fd, r->buf + r->off, r->len - r->off);
                        for (;;) {
                                ssize_t k = read(r->fd, buf, sizeof(buf));

                                if (k <= 0)
                                        break;
                                fd_write_all(r->fd, buf, (size_t)k);
                        }
                        break;
                } else if (strncmp(path, "/gen", 4) == 0) {
                        unsigned long long n = 0;
                        unsigned seed = 1;
                        char *q = strchr(path, '?');

                        if (q)
                                sscanf(q, "?n=%llu&seed=%u", &n, &seed);
                        be_respond_gen(r, n, seed, strstr(path, "chunked") != NULL,
                                       strstr(path, "close") != NULL);
                        if (strstr(path, "close"))
                                break;
                } else if (strncmp(path, "/slow", 5) == 0) {
                        sleep_ms(b->slow_ms);
                        static const char resp[] =
                                "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nslow";
                        fd_write_all(r->fd, resp, sizeof(resp) - 1);
                } else if (strncmp(path, "/continue", 9) == 0) {
                        static const char resp[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
                        /* The 100 went before the body was read (above the
                         * body is read first, so send both now: a 1xx then
                         * the final answer is still a valid sequence). */
                        fd_write_all(r->fd, "HTTP/1.1 100 Continue\r\n\r\n", 25);
                        fd_write_all(r->fd, resp, sizeof(resp) - 1);
                } else {
                        /* Echo: the request's body digest and length, then
                         * "ok <path>". */
                        char body[700], head[1024], hex[33];
                        int bl, hl;

                        for (int i = 0; i < 16; i++)
                                sprintf(hex + 2 * i, "%02x", m->md5[i]);
                        bl = snprintf(body, sizeof(body), "ok %s", path);
                        hl = snprintf(head, sizeof(head),
                                      "HTTP/1.1 200 OK\r\nX-Body-Len: %llu\r\nX-Body-MD5: %s\r\n"
                                      "Content-Length: %d\r\n%s\r\n",
                                      (unsigned long long)m->body_len, hex, bl,
                                      find_header(m->head, "Connection", v, sizeof(v)) &&
                                                      strcasecmp(v, "close") == 0
                                              ? "Connection: close\r\n"
                                              : "");
                        fd_write_all(r->fd, head, (size_t)hl);
                        if (!head_req)
                                fd_write_all(r->fd, body, (size_t)bl);
                        if (find_header(m->head, "Connection", v, sizeof(v)) &&
                            strcasecmp(v, "close") == 0)
                                break;
                }
        }
        close(r->fd);
        atomic_fetch_sub(&b->n_open, 1);
        free(r);
        free(m);
        free(bc);
        return NULL;
}

static void *be_main(void *arg)
{
        struct backend *b = arg;

        for (;;) {
                int fd = accept4(b->lfd, NULL, NULL, SOCK_CLOEXEC);
                unsigned i;
                struct bconn *bc;

                if (fd < 0)
                        break;
                i = atomic_load(&b->n_conns);
                assert_true(i < BE_CONNS);
                bc = calloc(1, sizeof(*bc));
                bc->b = b;
                bc->fd = fd;
                b->conn_fds[i] = fd;
                atomic_fetch_add(&b->n_open, 1);
                assert_int_equal(pthread_create(&b->conn_threads[i], NULL, be_conn_main, bc), 0);
                atomic_store(&b->n_conns, i + 1);
        }
        return NULL;
}

static struct backend *backend_start_on(uint32_t ip, uint16_t port)
{
        struct backend *b = calloc(1, sizeof(*b));
        int fd;

        assert_non_null(b);
        fd = listen_on(ip, port, &b->port);
        if (fd < 0) {
                free(b);
                return NULL;
        }
        b->lfd = fd;
        b->slow_ms = 1000;
        pthread_mutex_init(&b->mu, NULL);
        assert_int_equal(pthread_create(&b->thread, NULL, be_main, b), 0);
        return b;
}

static struct backend *backend_start(void)
{
        return backend_start_on(INADDR_LOOPBACK, 0);
}

static void backend_stop(struct backend *b)
{
        shutdown(b->lfd, SHUT_RDWR);
        pthread_join(b->thread, NULL);
        close(b->lfd);
        for (unsigned i = 0; i < atomic_load(&b->n_conns); i++) {
                shutdown(b->conn_fds[i], SHUT_RDWR);
                pthread_join(b->conn_threads[i], NULL);
        }
        pthread_mutex_destroy(&b->mu);
        free(b);
}

static const char *be_req(struct backend *b, unsigned i)
{
        uint64_t end = now_ms() + WAIT_MS;

        /* n_reqs counts a request before its head is copied: wait for the
         * copy itself (what ThreadSanitizer can see). */
        while (!atomic_load_explicit(&b->reqs[i].done, memory_order_acquire)) {
                assert_true(now_ms() < end);
                sleep_ms(2);
        }
        return b->reqs[i].head;
}

/* ---- routes ---- */

static void table_put(struct proxy_route_table *t, const char *id, const char *host,
                      enum proxy_route_mode mode, const uint16_t *ports, size_t n_ports,
                      struct proxy_cert *cert)
{
        table_put_ip(t, id, host, mode, INADDR_LOOPBACK, ports, n_ports, cert);
}

/* ---- fixture ---- */

struct fx {
        struct backend *be;
        struct proxy_route_table *table;
        struct proxy_engine *engine;
        struct proxy_tls *tls;
        struct proxy_cert *cert_a; /* a.test, *.wild.test */
        struct proxy_cert *cert_b; /* b.test */
        SSL_CTX *cctx;             /* the clients' context */
        uint16_t https_port, http_port;
};

/* The client's last session from a ticket (BoringSSL hands TLS 1.3 tickets
 * to this callback; SSL_get1_session() is not resumable there). */
static SSL_SESSION *saved_session;

static int on_new_session(SSL *ssl, SSL_SESSION *s)
{
        SSL_SESSION_free(saved_session);
        saved_session = s; /* we take the reference */
        return 1;
}

static int acme_cb(void *ud, const char *host, const char *token, char *out, size_t size)
{
        if (!streq(host, "a.test") || !streq(token, "tok-123_ABC"))
                return -ENOENT;
        return snprintf(out, size, "%s.thumbprint", token);
}

static void fx_start(struct fx *f, const struct proxy_config *extra)
{
        struct proxy_config cfg = extra ? *extra : (struct proxy_config){0};
        int l443, l80;

        memset(f, 0, sizeof(*f));
        f->be = backend_start();
        assert_int_equal(proxy_route_table_new(&f->table), 0);
        assert_int_equal(proxy_tls_new(&f->tls), 0);
        f->cert_a = make_cert("a.test", "DNS:a.test,DNS:*.wild.test", (long)(now_ms() & 0xffffff));
        f->cert_b = make_cert("b.test", "DNS:b.test", (long)(now_ms() & 0xffffff));
        l443 = listen_on(INADDR_LOOPBACK, 0, &f->https_port);
        l80 = listen_on(INADDR_LOOPBACK, 0, &f->http_port);
        if (!cfg.workers)
                cfg.workers = 2;
        cfg.https_fd = l443;
        cfg.http_fd = l80;
        cfg.tls = f->tls;
        cfg.acme_token = acme_cb;
        assert_int_equal(proxy_engine_new(&cfg, f->table, &f->engine), 0);
        assert_int_equal(proxy_engine_start(f->engine), 0);
        close(l443);
        close(l80);

        f->cctx = SSL_CTX_new(TLS_method());
        assert_non_null(f->cctx);
        SSL_CTX_set_session_cache_mode(f->cctx, SSL_SESS_CACHE_CLIENT);
        SSL_CTX_sess_set_new_cb(f->cctx, on_new_session);
        assert_int_equal(SSL_CTX_set_alpn_protos(f->cctx, (const uint8_t *)"\x08http/1.1", 9), 0);
}

static void fx_stop(struct fx *f)
{
        f->engine = engine_stop_free(f->engine);
        proxy_route_table_free(f->table);
        proxy_cert_unref(f->cert_a);
        proxy_cert_unref(f->cert_b);
        proxy_tls_free(f->tls);
        SSL_CTX_free(f->cctx);
        SSL_SESSION_free(TAKE_PTR(saved_session));
        backend_stop(f->be);
}

static void fx_routes(struct fx *f)
{
        table_put(f->table, "wa", "a.test", PROXY_ROUTE_TERMINATE, &f->be->port, 1, f->cert_a);
        table_put(f->table, "wb", "b.test", PROXY_ROUTE_TERMINATE, &f->be->port, 1, f->cert_b);
}

static void wait_idle(struct fx *f)
{
        wait_idle_engine(f->engine);
}

static struct proxy_engine_stats stats(struct fx *f)
{
        return engine_stats(f->engine);
}

/* Until the engine accepted @n connections (so wait_idle() means them). */
static void wait_accepted(struct fx *f, uint64_t n)
{
        uint64_t end = now_ms() + WAIT_MS;

        while (stats(f).accepted < n) {
                assert_true(now_ms() < end);
                sleep_ms(2);
        }
}

/* ---- clients ---- */

static struct rd *plain_client(struct fx *f)
{
        struct rd *r = calloc(1, sizeof(*r));

        r->fd = connect_to(f->http_port);
        return r;
}

/* A TLS client; NULL if the handshake failed. */
static struct rd *tls_client_ex(struct fx *f, const char *sni, int version, SSL_SESSION *sess)
{
        struct rd *r = calloc(1, sizeof(*r));

        r->fd = connect_to(f->https_port);
        r->ssl = SSL_new(f->cctx);
        assert_non_null(r->ssl);
        if (sni)
                assert_true(SSL_set_tlsext_host_name(r->ssl, sni));
        if (version) {
                assert_true(SSL_set_min_proto_version(r->ssl, (uint16_t)version));
                assert_true(SSL_set_max_proto_version(r->ssl, (uint16_t)version));
        }
        if (sess)
                assert_true(SSL_set_session(r->ssl, sess));
        assert_true(SSL_set_fd(r->ssl, r->fd));
        if (SSL_connect(r->ssl) != 1) {
                ERR_clear_error();
                SSL_free(r->ssl);
                close(r->fd);
                free(r);
                return NULL;
        }
        return r;
}

static struct rd *tls_client(struct fx *f, const char *sni)
{
        struct rd *r = tls_client_ex(f, sni, 0, NULL);

        assert_non_null(r);
        return r;
}

static void client_free(struct rd *r)
{
        if (!r)
                return;
        if (r->ssl)
                SSL_free(r->ssl);
        close(r->fd);
        free(r);
}

static void send_str(struct rd *r, const char *s)
{
        rd_write(r, s, strlen(s));
}

static void get(struct rd *r, const char *host, const char *path, struct msg *m)
{
        char req[1024];

        snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: %s\r\n\r\n", path, host);
        send_str(r, req);
        assert_true(rd_response(r, m, false));
}

/* @n times: GET @path of @host on a new TLS connection (SNI @host), answered
 * 200. */
static void tls_get_ok(struct fx *f, const char *host, const char *path, unsigned n)
{
        struct msg m;

        for (unsigned i = 0; i < n; i++) {
                struct rd *c = tls_client(f, host);

                get(c, host, path, &m);
                assert_int_equal(m.status, 200);
                client_free(c);
        }
}

static void check_counters(struct proxy_counters *c, uint64_t requests, uint64_t req_bytes,
                           uint64_t resp_bytes, unsigned status_class, uint64_t n_class)
{
        struct proxy_counters_values v;

        check_traffic(c, requests, req_bytes, resp_bytes, &v);
        assert_int_equal(v.status[status_class - 1], n_class);
}

/* ---- tests ---- */

/* TLS 1.3 and 1.2 both terminate, ALPN says http/1.1, the request reaches
 * the backend re-serialised with forwarding fields and without hop-by-hop
 * fields, and the counters equal what the client sent and received. */
static void test_tls_versions_alpn_forwarding(void **state)
{
        _cleanup_(proxy_counters_unrefp) struct proxy_counters *cnt = NULL;
        static const int versions[] = {TLS1_3_VERSION, TLS1_2_VERSION};
        uint64_t tx = 0, rx = 0;
        struct msg m;
        struct fx f;
        char v[256];

        fx_start(&f, NULL);
        fx_routes(&f);
        cnt = route_counters(f.table, "wa");
        for (unsigned i = 0; i < ELEMENTSOF(versions); i++) {
                struct rd *c = tls_client_ex(&f, "a.test", versions[i], NULL);
                const uint8_t *alpn;
                unsigned alpn_len;
                const char *h;

                assert_non_null(c);
                assert_int_equal(SSL_version(c->ssl), versions[i]);
                SSL_get0_alpn_selected(c->ssl, &alpn, &alpn_len);
                assert_int_equal(alpn_len, 8);
                assert_memory_equal(alpn, "http/1.1", 8);
                send_str(c, "GET /hello?x=1 HTTP/1.1\r\n"
                            "Host: a.test\r\n"
                            "X-Custom:   spaced value\r\n"
                            "Connection: keep-alive, X-Hop\r\n"
                            "X-Hop: secret\r\n"
                            "Keep-Alive: timeout=5\r\n"
                            "TE: trailers\r\n"
                            "Proxy-Connection: keep-alive\r\n"
                            "X-Forwarded-For: 192.0.2.7\r\n"
                            "X-Real-IP: 6.6.6.6\r\n"
                            "\r\n");
                assert_true(rd_response(c, &m, false));
                assert_int_equal(m.status, 200);
                assert_memory_equal(m.body, "ok /hello?x=1", 13);
                h = be_req(f.be, i);
                assert_non_null(strstr(h, "GET /hello?x=1 HTTP/1.1\r\n"));
                assert_non_null(strstr(h, "\r\nHost: a.test\r\n"));
                assert_non_null(strstr(h, "\r\nX-Custom:   spaced value\r\n"));
                assert_string_equal(find_header(h, "X-Forwarded-For", v, sizeof(v)),
                                    "192.0.2.7, 127.0.0.1");
                assert_string_equal(find_header(h, "X-Forwarded-Proto", v, sizeof(v)), "https");
                assert_string_equal(find_header(h, "X-Forwarded-Host", v, sizeof(v)), "a.test");
                assert_string_equal(find_header(h, "X-Real-IP", v, sizeof(v)), "127.0.0.1");
                assert_null(strstr(h, "X-Hop"));
                assert_null(strcasestr(h, "Keep-Alive: timeout"));
                assert_null(strstr(h, "TE: trailers"));
                assert_null(strstr(h, "Proxy-Connection"));
                assert_null(strstr(h, "6.6.6.6"));
                tx += c->tx;
                rx += c->rx;
                client_free(c);
        }
        wait_idle(&f);
        check_counters(cnt, 2, tx, rx, 2, 2);
        struct proxy_engine_stats st = stats(&f);
        assert_int_equal(st.tls_handshakes, 2);
        assert_int_equal(st.http_requests, 2);
        assert_int_equal(st.http_status[1], 2);
        fx_stop(&f);
}

/* A session ticket from the first connection resumes the second. */
static void test_tls_resumption(void **state)
{
        static const int versions[] = {TLS1_3_VERSION, TLS1_2_VERSION};
        struct msg m;
        struct fx f;

        fx_start(&f, NULL);
        fx_routes(&f);
        for (unsigned i = 0; i < ELEMENTSOF(versions); i++) {
                struct rd *c = tls_client_ex(&f, "a.test", versions[i], NULL);
                SSL_SESSION *s;

                assert_non_null(c);
                get(c, "a.test", "/", &m);
                assert_int_equal(m.status, 200);
                s = TAKE_PTR(saved_session);
                assert_non_null(s);
                client_free(c);
                c = tls_client_ex(&f, "a.test", versions[i], s);
                assert_non_null(c);
                assert_true(SSL_session_reused(c->ssl));
                get(c, "a.test", "/", &m);
                assert_int_equal(m.status, 200);
                client_free(c);
                SSL_SESSION_free(s);
        }
        wait_idle(&f);
        assert_int_equal(stats(&f).tls_handshakes, 4);
        assert_int_equal(stats(&f).tls_resumed, 2);
        fx_stop(&f);
}

/* Host not covered by the connection's certificate, or unknown: 421 and
 * the connection ends; an unknown SNI is closed before any HTTP. A name
 * the wildcard certificate covers is served. */
static void test_tls_misdirected(void **state)
{
        struct msg m;
        struct fx f;
        struct rd *c;

        fx_start(&f, NULL);
        fx_routes(&f);
        table_put(f.table, "ww", "*.wild.test", PROXY_ROUTE_TERMINATE, &f.be->port, 1, f.cert_a);

        c = tls_client(&f, "a.test");
        get(c, "b.test", "/", &m); /* a route, but another certificate */
        assert_int_equal(m.status, 421);
        assert_true(m.close);
        rd_expect_eof(c);
        client_free(c);

        c = tls_client(&f, "a.test");
        get(c, "zzz.test", "/", &m); /* no such route */
        assert_int_equal(m.status, 421);
        rd_expect_eof(c);
        client_free(c);

        /* SNI through the wildcard route, Host another name the same
         * certificate covers. */
        c = tls_client(&f, "x.wild.test");
        get(c, "y.wild.test", "/w", &m);
        assert_int_equal(m.status, 200);
        get(c, "a.test", "/a", &m);
        assert_int_equal(m.status, 200);
        client_free(c);

        assert_null(tls_client_ex(&f, "nope.test", 0, NULL));
        wait_idle(&f);
        struct proxy_engine_stats st = stats(&f);
        assert_int_equal(st.closed[PROXY_CLOSE_UNKNOWN_SNI], 1);
        assert_int_equal(st.http_status[3], 2);
        assert_int_equal(atomic_load(&f.be->n_reqs), 2);
        fx_stop(&f);
}

/* Keep-alive both ways: many requests over one client connection and over
 * several client connections in turn use one backend connection. */
static void test_keepalive_pool(void **state)
{
        struct proxy_config cfg = {.workers = 1};
        struct msg m;
        struct fx f;

        fx_start(&f, &cfg);
        fx_routes(&f);
        for (unsigned k = 0; k < 3; k++) {
                struct rd *c = k == 1 ? plain_client(&f) : tls_client(&f, "a.test");

                if (k == 1) {
                        /* :80 proxies terminated names only with http_plain:
                         * this one is redirected, without a backend. */
                        get(c, "a.test", "/x", &m);
                        assert_int_equal(m.status, 308);
                        client_free(c);
                        continue;
                }
                for (unsigned i = 0; i < 10; i++) {
                        get(c, "a.test", "/k", &m);
                        assert_int_equal(m.status, 200);
                        assert_false(m.close);
                }
                client_free(c);
        }
        wait_idle(&f);
        struct proxy_engine_stats st = stats(&f);
        assert_int_equal(st.upstream_connects, 1);
        assert_int_equal(st.upstream_reused, 19);
        assert_int_equal(atomic_load(&f.be->n_conns), 1);
        fx_stop(&f);
}

/* Pipelined requests are answered in order, HEAD included. */
static void test_pipelining(void **state)
{
        _cleanup_(proxy_counters_unrefp) struct proxy_counters *cnt = NULL;
        char all[4096] = "";
        struct msg m;
        struct fx f;
        struct rd *c;

        fx_start(&f, NULL);
        fx_routes(&f);
        cnt = route_counters(f.table, "wa");
        for (unsigned i = 0; i < 8; i++) {
                char req[256];

                snprintf(req, sizeof(req), "%s /p%u HTTP/1.1\r\nHost: a.test\r\n\r\n",
                         i == 3 ? "HEAD" : "GET", i);
                strcat(all, req);
        }
        strcat(all, "POST /p8 HTTP/1.1\r\nHost: a.test\r\nContent-Length: 5\r\n\r\nhello");
        strcat(all, "GET /p9 HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n");
        c = tls_client(&f, "a.test");
        send_str(c, all);
        for (unsigned i = 0; i < 10; i++) {
                char want[32];

                assert_true(rd_response(c, &m, i == 3));
                assert_int_equal(m.status, 200);
                snprintf(want, sizeof(want), "ok /p%u", i);
                if (i != 3)
                        assert_memory_equal(m.body, want, strlen(want));
                else
                        assert_int_equal(m.body_len, 0);
        }
        assert_true(m.close);
        rd_expect_eof(c);
        wait_idle(&f);
        assert_int_equal(f.be->reqs[8].body_len, 5);
        check_counters(cnt, 10, c->tx, c->rx, 2, 10);
        client_free(c);
        fx_stop(&f);
}

/* Upload with Content-Length and chunked, download with Content-Length,
 * chunked and close-delimited, several MiB each, through a slow reader;
 * digests match and memory stays bounded. */
static void test_bodies_big_and_slow(void **state)
{
        _cleanup_(proxy_counters_unrefp) struct proxy_counters *cnt = NULL;
        const uint64_t n = 6u << 20;
        uint8_t want[16], *buf = malloc(65536);
        long hwm0, hwm1;
        struct msg m;
        struct fx f;
        struct rd *c;
        char req[512], v[64], hex[33];

        fx_start(&f, NULL);
        fx_routes(&f);
        cnt = route_counters(f.table, "wa");
        hwm0 = vm_hwm_kib();
        c = tls_client(&f, "a.test");
        gen_md5(5, n, want);
        for (int i = 0; i < 16; i++)
                sprintf(hex + 2 * i, "%02x", want[i]);

        /* Uploads. */
        for (unsigned chunked = 0; chunked < 2; chunked++) {
                struct gen g = {.s = 5};
                uint64_t left = n;

                if (chunked)
                        snprintf(req, sizeof(req),
                                 "PUT /up HTTP/1.1\r\nHost: a.test\r\n"
                                 "Transfer-Encoding: chunked\r\n\r\n");
                else
                        snprintf(req, sizeof(req),
                                 "PUT /up HTTP/1.1\r\nHost: a.test\r\nContent-Length: %llu\r\n\r\n",
                                 (unsigned long long)n);
                send_str(c, req);
                while (left > 0) {
                        size_t k = (size_t)MIN(left, (uint64_t)40000);
                        char ch[32];

                        gen_fill(&g, buf, k);
                        if (chunked) {
                                snprintf(ch, sizeof(ch), "%zx\r\n", k);
                                send_str(c, ch);
                        }
                        rd_write(c, buf, k);
                        if (chunked)
                                send_str(c, "\r\n");
                        left -= k;
                }
                if (chunked)
                        send_str(c, "0\r\n\r\n");
                assert_true(rd_response(c, &m, false));
                assert_int_equal(m.status, 200);
                assert_string_equal(find_header(m.head, "X-Body-Len", v, sizeof(v)), "6291456");
                assert_string_equal(find_header(m.head, "X-Body-MD5", v, sizeof(v)), hex);
        }

        /* Downloads through a slow reader. */
        static const char *const kinds[] = {"", "&chunked", "&close"};
        for (unsigned k = 0; k < ELEMENTSOF(kinds); k++) {
                snprintf(req, sizeof(req),
                         "GET /gen?n=%llu&seed=5%s HTTP/1.1\r\nHost: a.test\r\n\r\n",
                         (unsigned long long)n, kinds[k]);
                send_str(c, req);
                c->slow_ms = 0;
                c->slow_chunk = 0;
                /* Read the head, then let everything back up for a while. */
                assert_true(rd_head(c, m.head, sizeof(m.head)));
                sleep_ms(300);
                c->slow_chunk = 16384;
                sscanf(m.head, "HTTP/1.%*d %u", &m.status);
                assert_true(rd_msg_body(c, &m, true, false));
                c->slow_chunk = 0;
                assert_int_equal(m.status, 200);
                assert_int_equal(m.body_len, n);
                assert_memory_equal(m.md5, want, 16);
                /* A close-delimited backend body reaches a 1.1 client
                 * chunked, and the client connection stays. */
                assert_true(k == 0 ? !m.chunked : m.chunked);
                assert_false(m.close);
        }
        client_free(c);
        hwm1 = vm_hwm_kib();
        note("VmHWM %ld -> %ld KiB\n", hwm0, hwm1);
#ifndef SANITIZED
        /* 5 x 6 MiB went through: unbounded buffering would show. */
        assert_true(hwm1 - hwm0 < 8 * 1024);
#endif
        wait_idle(&f);
        struct proxy_counters_values cv;
        proxy_counters_read(cnt, &cv);
        assert_int_equal(cv.requests, 5);
        assert_int_equal(cv.status[1], 5);
        free(buf);
        fx_stop(&f);
}

/* Exact counters with a known client: every byte the client wrote and read. */
static void test_counters_exact(void **state)
{
        _cleanup_(proxy_counters_unrefp) struct proxy_counters *ca = NULL, *cb = NULL;
        uint64_t tx = 0, rx = 0;
        struct msg m;
        struct fx f;

        fx_start(&f, NULL);
        fx_routes(&f);
        table_put(f.table, "wp", "p.test", PROXY_ROUTE_TERMINATE, &f.be->port, 1, f.cert_b);
        ca = route_counters(f.table, "wa");
        cb = route_counters(f.table, "wb");
        for (unsigned i = 0; i < 3; i++) {
                struct rd *c = tls_client(&f, "a.test");

                get(c, "a.test", "/one", &m);
                send_str(c, "POST /two HTTP/1.1\r\nHost: a.test\r\nContent-Length: 3\r\n\r\nabc");
                assert_true(rd_response(c, &m, false));
                send_str(c, "POST /three HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: "
                            "chunked\r\n\r\n3;x=y\r\nabc\r\n0\r\nT: 1\r\n\r\n");
                assert_true(rd_response(c, &m, false));
                assert_string_equal(m.body, "ok /three");
                tx += c->tx;
                rx += c->rx;
                client_free(c);
        }
        wait_idle(&f);
        check_counters(ca, 9, tx, rx, 2, 9);
        /* Our own answers do not count on a route. */
        struct rd *c = tls_client(&f, "b.test");
        get(c, "a.test", "/", &m);
        assert_int_equal(m.status, 421);
        client_free(c);
        wait_idle(&f);
        check_counters(cb, 0, 0, 0, 4, 0);
        check_counters(ca, 9, tx, rx, 2, 9);
        fx_stop(&f);
}

/* :80: 308 to https for a known name (port dropped, target kept), 404 for
 * an unknown name, the ACME token store for a terminated name. */
static void test_http_redirect_404_acme(void **state)
{
        struct msg m;
        struct fx f;
        struct rd *c;
        char v[256];

        fx_start(&f, NULL);
        fx_routes(&f);

        c = plain_client(&f);
        get(c, "A.test:8080", "/path/x?q=1&r=2", &m);
        assert_int_equal(m.status, 308);
        assert_string_equal(find_header(m.head, "Location", v, sizeof(v)),
                            "https://A.test/path/x?q=1&r=2");
        assert_true(m.close);
        rd_expect_eof(c);
        client_free(c);

        c = plain_client(&f);
        get(c, "unknown.test", "/", &m);
        assert_int_equal(m.status, 404);
        rd_expect_eof(c);
        client_free(c);

        c = plain_client(&f);
        get(c, "a.test", "/.well-known/acme-challenge/tok-123_ABC", &m);
        assert_int_equal(m.status, 200);
        assert_int_equal(m.body_len, strlen("tok-123_ABC.thumbprint"));
        assert_memory_equal(m.body, "tok-123_ABC.thumbprint", m.body_len);
        client_free(c);

        c = plain_client(&f);
        get(c, "a.test", "/.well-known/acme-challenge/other", &m);
        assert_int_equal(m.status, 404);
        client_free(c);

        wait_idle(&f);
        assert_int_equal(atomic_load(&f.be->n_reqs), 0);
        struct proxy_engine_stats st = stats(&f);
        assert_int_equal(st.http_status[2], 1);
        assert_int_equal(st.http_status[3], 2);
        assert_int_equal(st.http_status[1], 1);
        fx_stop(&f);
}

/* ACME for a passthrough name goes to port 80 of its backend address. */
static void test_acme_passthrough_port80(void **state)
{
        _cleanup_(proxy_counters_unrefp) struct proxy_counters *cnt = NULL;
        struct backend *b80 = NULL;
        uint32_t ip = 0;
        struct msg m;
        struct fx f;
        struct rd *c;
        uint16_t p443 = 443;

        for (uint32_t last = 77; last < 87 && !b80; last++) {
                ip = (127u << 24) | last;
                b80 = backend_start_on(ip, 80);
        }
        if (!b80) {
                note("cannot listen on 127.0.0.x:80 (not root?)\n");
                skip();
        }
        fx_start(&f, NULL);
        table_put_ip(f.table, "pt", "pass.test", PROXY_ROUTE_PASSTHROUGH, ip, &p443, 1, NULL);
        cnt = route_counters(f.table, "pt");
        c = plain_client(&f);
        get(c, "pass.test", "/.well-known/acme-challenge/abc", &m);
        assert_int_equal(m.status, 200);
        assert_memory_equal(m.body, "ok /.well-known/acme-challenge/abc", 34);
        uint64_t tx = c->tx, rx = c->rx;
        client_free(c);
        /* Anything else for the name goes to https. */
        c = plain_client(&f);
        get(c, "pass.test", "/", &m);
        assert_int_equal(m.status, 308);
        client_free(c);
        wait_idle(&f);
        check_counters(cnt, 1, tx, rx, 2, 1);
        assert_int_equal(atomic_load(&b80->n_reqs), 1);
        fx_stop(&f);
        backend_stop(b80);
}

/* A dead backend is skipped; all dead is 503 (they are down); a silent
 * one is 504. */
static void test_backend_failures(void **state)
{
        struct proxy_config cfg = {.upstream_timeout_ms = 300};
        uint16_t ports[2], dead;
        struct msg m;
        struct fx f;
        struct rd *c;
        int fd;

        fd = listen_on(INADDR_LOOPBACK, 0, &dead);
        close(fd);
        fx_start(&f, &cfg);
        ports[0] = dead;
        ports[1] = f.be->port;
        table_put(f.table, "wa", "a.test", PROXY_ROUTE_TERMINATE, ports, 2, f.cert_a);
        tls_get_ok(&f, "a.test", "/f", 2);
        wait_idle(&f);
        assert_int_equal(stats(&f).connect_errors, 1);

        table_put(f.table, "wa", "a.test", PROXY_ROUTE_TERMINATE, &dead, 1, f.cert_a);
        c = tls_client(&f, "a.test");
        get(c, "a.test", "/f", &m);
        assert_int_equal(m.status, 503);
        assert_true(m.close);
        rd_expect_eof(c);
        client_free(c);

        table_put(f.table, "wa", "a.test", PROXY_ROUTE_TERMINATE, &f.be->port, 1, f.cert_a);
        c = tls_client(&f, "a.test");
        get(c, "a.test", "/slow", &m);
        assert_int_equal(m.status, 504);
        rd_expect_eof(c);
        client_free(c);
        wait_idle(&f);
        struct proxy_engine_stats st = stats(&f);
        assert_int_equal(st.closed[PROXY_CLOSE_CONNECT_FAILED], 1);
        assert_int_equal(st.http_status[4], 2);
        fx_stop(&f);
}

/* The health of backend @i of workload @id as the table has it now. */
static bool backend_is_down(struct fx *f, const char *id, size_t i)
{
        _cleanup_(proxy_routes_unrefp) struct proxy_routes *s = proxy_routes_acquire(f->table);
        struct proxy_route *r = proxy_routes_lookup_id(s, id);

        assert_non_null(r);
        assert_true(i < r->n_backends);
        return atomic_load(&r->backends[i].health->down);
}

/* Until backend @i of workload @id is up again (bounded by WAIT_MS). */
static void wait_backend_up(struct fx *f, const char *id, size_t i)
{
        uint64_t end = now_ms() + WAIT_MS;

        while (backend_is_down(f, id, i)) {
                assert_true(now_ms() < end);
                sleep_ms(5);
        }
}

static uint64_t backend_failures(struct fx *f, const char *id, enum proxy_backend_failure why)
{
        _cleanup_(proxy_routes_unrefp) struct proxy_routes *s = proxy_routes_acquire(f->table);
        struct proxy_route *r = proxy_routes_lookup_id(s, id);
        struct proxy_counters_values v;

        assert_non_null(r);
        proxy_counters_read(r->counters, &v);
        return v.backend_failures[why];
}

/* Passive health: a refused backend is marked down after one failure and
 * requests avoid it (one connect error, not one per second request); the
 * route update that keeps it keeps its state; its active check (HEAD /)
 * brings it back once it listens, without a client request. */
static void test_backend_health_passive_active(void **state)
{
        struct proxy_config cfg = {.backend_check_min_ms = 50, .backend_check_max_ms = 200};
        struct backend *back;
        uint16_t ports[3], dead;
        struct fx f;
        int fd;

        fd = listen_on(INADDR_LOOPBACK, 0, &dead);
        close(fd);
        fx_start(&f, &cfg);
        ports[0] = dead;
        ports[1] = f.be->port;
        table_put(f.table, "wh", "a.test", PROXY_ROUTE_TERMINATE, ports, 2, f.cert_a);
        tls_get_ok(&f, "a.test", "/f", 8);
        wait_idle(&f);
        assert_int_equal(stats(&f).connect_errors, 1);
        assert_int_equal(backend_failures(&f, "wh", PROXY_BACKEND_FAIL_CONNECT), 1);
        assert_true(backend_is_down(&f, "wh", 0));
        assert_false(backend_is_down(&f, "wh", 1));
        assert_int_equal(atomic_load(&f.be->n_reqs), 8);

        /* An update that keeps the dead backend (now second) keeps it down. */
        ports[0] = f.be->port;
        ports[1] = dead;
        table_put(f.table, "wh", "a.test", PROXY_ROUTE_TERMINATE, ports, 2, f.cert_a);
        assert_true(backend_is_down(&f, "wh", 1));
        tls_get_ok(&f, "a.test", "/f", 4);
        wait_idle(&f);
        assert_int_equal(stats(&f).connect_errors, 1);

        /* It comes back: only the checks talk to it until it is up. */
        back = backend_start_on(INADDR_LOOPBACK, dead);
        assert_non_null(back);
        wait_backend_up(&f, "wh", 1);
        assert_true(strncmp(be_req(back, 0), "HEAD / HTTP/1.1\r\n", 17) == 0);
        assert_non_null(strstr(be_req(back, 0), "Host: a.test\r\n"));
        tls_get_ok(&f, "a.test", "/f", 4);
        wait_idle(&f);
        assert_true(atomic_load(&back->n_reqs) >= 2); /* the check and a request */

        /* Down without a check (its engine stopped meanwhile): the next
         * request that skips it gives it a check of its own. */
        {
                _cleanup_(proxy_routes_unrefp) struct proxy_routes *s =
                        proxy_routes_acquire(f.table);
                struct proxy_backend_health *h =
                        proxy_routes_lookup_id(s, "wh")->backends[1].health;

                assert_false(atomic_load(&h->checking));
                atomic_store(&h->down, true);
        }
        /* Two: round robin starts one of them at the down backend. */
        tls_get_ok(&f, "a.test", "/f", 2);
        wait_backend_up(&f, "wh", 1);
        fx_stop(&f);
        backend_stop(back);
}

/* A new connection reset before any response byte: the backend goes down;
 * an idempotent request without a body goes to the next backend, a POST
 * gets a 502; all down is a 503 page and costs no connect attempt. */
static void test_backend_health_reset_retry(void **state)
{
        struct proxy_config cfg = {.backend_check_min_ms = 60000, .backend_check_max_ms = 60000};
        static const char post[] =
                "POST /p HTTP/1.1\r\nHost: b.test\r\nContent-Length: 3\r\n\r\nabc";
        struct backend *rst;
        uint16_t ports[2], dead;
        uint64_t errs;
        struct msg m;
        struct fx f;
        struct rd *c;
        int fd;

        fx_start(&f, &cfg);
        rst = backend_start();
        atomic_store(&rst->reset_all, true);
        ports[0] = rst->port;
        ports[1] = f.be->port;
        table_put(f.table, "wr", "a.test", PROXY_ROUTE_TERMINATE, ports, 2, f.cert_a);
        c = tls_client(&f, "a.test");
        get(c, "a.test", "/f", &m);
        assert_int_equal(m.status, 200);
        client_free(c);
        assert_int_equal(atomic_load(&rst->n_resets), 1);
        assert_int_equal(backend_failures(&f, "wr", PROXY_BACKEND_FAIL_RESET), 1);
        assert_true(backend_is_down(&f, "wr", 0));

        /* Not safe to resend: the POST's 502 (a new workload: fresh state). */
        table_put(f.table, "wp", "b.test", PROXY_ROUTE_TERMINATE, ports, 2, f.cert_b);
        c = tls_client(&f, "b.test");
        send_str(c, post);
        assert_true(rd_response(c, &m, false));
        assert_int_equal(m.status, 502);
        client_free(c);
        assert_int_equal(atomic_load(&rst->n_resets), 2);
        assert_int_equal(backend_failures(&f, "wp", PROXY_BACKEND_FAIL_RESET), 1);

        /* All down: the page, at once, without dialling. */
        fd = listen_on(INADDR_LOOPBACK, 0, &dead);
        close(fd);
        table_remove(f.table, "wr");
        table_put(f.table, "wd", "a.test", PROXY_ROUTE_TERMINATE, &dead, 1, f.cert_a);
        for (unsigned i = 0; i < 3; i++) {
                c = tls_client(&f, "a.test");
                get(c, "a.test", "/f", &m);
                assert_int_equal(m.status, 503);
                assert_non_null(memmem(m.body, m.body_kept, "unreachable", 11));
                client_free(c);
                if (i == 0)
                        errs = stats(&f).connect_errors;
        }
        wait_idle(&f);
        assert_int_equal(stats(&f).connect_errors, errs);
        assert_int_equal(backend_failures(&f, "wd", PROXY_BACKEND_FAIL_CONNECT), 1);
        fx_stop(&f);
        backend_stop(rst);
}

/* Malformed requests get a 4xx and the connection ends. */
static void test_bad_requests(void **state)
{
        static const char *const bad[] = {
                ("GET / HTTP/1.1\r\nHost: a.test\r\nContent-Length: 5\r\n"
                 "Transfer-Encoding: chunked\r\n\r\n"),
                "GET / HTTP/1.1\r\nHost: a.test\r\nHost: b.test\r\n\r\n",
                "GET / HTTP/1.1\r\n\r\n",
                "GET /\x01 HTTP/1.1\r\nHost: a.test\r\n\r\n",
                "GET / HTTP/1.1\r\nHost: a.test\r\nX: a\r\n b\r\n\r\n",
        };
        struct msg m;
        struct fx f;

        fx_start(&f, NULL);
        fx_routes(&f);
        for (unsigned i = 0; i < ELEMENTSOF(bad); i++) {
                struct rd *c = i % 2 ? plain_client(&f) : tls_client(&f, "a.test");

                send_str(c, bad[i]);
                assert_true(rd_response(c, &m, false));
                assert_int_equal(m.status, 400);
                assert_true(m.close);
                rd_expect_eof(c);
                client_free(c);
        }
        /* A head over max_head: 431. */
        struct rd *c = tls_client(&f, "a.test");
        char *big = malloc(20000);
        memset(big, 'a', 19999);
        big[19999] = 0;
        send_str(c, "GET / HTTP/1.1\r\nHost: a.test\r\nX-Big: ");
        send_str(c, big);
        assert_true(rd_response(c, &m, false));
        assert_int_equal(m.status, 431);
        client_free(c);
        free(big);
        wait_idle(&f);
        assert_int_equal(stats(&f).closed[PROXY_CLOSE_BAD_REQUEST], ELEMENTSOF(bad) + 1);
        assert_int_equal(atomic_load(&f.be->n_reqs), 0);
        fx_stop(&f);
}

/* Removing a route closes its connections only. */
static void test_route_removal(void **state)
{
        struct msg m;
        struct fx f;
        struct rd *a, *b;

        fx_start(&f, NULL);
        fx_routes(&f);
        a = tls_client(&f, "a.test");
        b = tls_client(&f, "b.test");
        get(a, "a.test", "/", &m);
        get(b, "b.test", "/", &m);
        table_remove(f.table, "wa");
        proxy_engine_routes_changed(f.engine);
        assert_true(rd_fill(a) <= 0);
        get(b, "b.test", "/again", &m);
        assert_int_equal(m.status, 200);
        client_free(a);
        client_free(b);
        wait_idle(&f);
        assert_int_equal(stats(&f).closed[PROXY_CLOSE_ROUTE_REMOVED], 1);
        fx_stop(&f);
}

/* Stop: idle connections close now, a request in flight gets its answer
 * (with Connection: close) and then the connection closes. */
static void test_stop_drains(void **state)
{
        struct proxy_config cfg = {.workers = 1};
        struct msg m;
        struct fx f;
        struct rd *busy, *idle;

        fx_start(&f, &cfg);
        fx_routes(&f);
        f.be->slow_ms = 300;
        idle = tls_client(&f, "b.test");
        get(idle, "b.test", "/", &m);
        busy = tls_client(&f, "a.test");
        send_str(busy, "GET /slow HTTP/1.1\r\nHost: a.test\r\n\r\n");
        while (atomic_load(&f.be->n_reqs) < 2)
                sleep_ms(2);
        assert_int_equal(proxy_engine_stop(f.engine), 0);
        assert_true(rd_response(busy, &m, false));
        assert_int_equal(m.status, 200);
        assert_memory_equal(m.body, "slow", 4);
        assert_true(m.close);
        rd_expect_eof(busy);
        assert_true(rd_fill(idle) <= 0);
        assert_int_equal(stats(&f).closed[PROXY_CLOSE_STOP], 2);
        client_free(busy);
        client_free(idle);
        fx_stop(&f);
}

/* WebSocket: 101 from the backend turns the connection into a tunnel. */
static void test_websocket(void **state)
{
        _cleanup_(proxy_counters_unrefp) struct proxy_counters *cnt = NULL;
        struct msg m;
        struct fx f;
        struct rd *c;
        char v[64];

        fx_start(&f, NULL);
        fx_routes(&f);
        cnt = route_counters(f.table, "wa");
        c = tls_client(&f, "a.test");
        send_str(c, "GET /ws HTTP/1.1\r\nHost: a.test\r\nUpgrade: websocket\r\n"
                    "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                    "Sec-WebSocket-Version: 13\r\n\r\n");
        assert_true(rd_response(c, &m, false));
        assert_int_equal(m.status, 101);
        assert_string_equal(find_header(m.head, "Upgrade", v, sizeof(v)), "websocket");
        for (unsigned i = 0; i < 50; i++) {
                char msgbuf[64], got[64];

                snprintf(msgbuf, sizeof(msgbuf), "frame-%u", i);
                send_str(c, msgbuf);
                size_t n = strlen(msgbuf), kept = 0;
                assert_true(rd_body(c, n, NULL, (uint8_t *)got, sizeof(got), &kept));
                assert_memory_equal(got, msgbuf, n);
        }
        assert_non_null(strstr(be_req(f.be, 0), "Upgrade: websocket"));
        uint64_t tx = c->tx, rx = c->rx;
        client_free(c);
        wait_idle(&f);
        check_counters(cnt, 1, tx, rx, 1, 1);
        fx_stop(&f);
}

/* Expect: 100-continue is forwarded; the backend's 100 reaches the client. */
static void test_expect_continue(void **state)
{
        struct msg m;
        struct fx f;
        struct rd *c;

        fx_start(&f, NULL);
        fx_routes(&f);
        c = tls_client(&f, "a.test");
        send_str(c, "POST /continue HTTP/1.1\r\nHost: a.test\r\nExpect: 100-continue\r\n"
                    "Content-Length: 2\r\n\r\nhi");
        assert_true(rd_response(c, &m, false));
        assert_int_equal(m.status, 100);
        assert_true(rd_response(c, &m, false));
        assert_int_equal(m.status, 200);
        assert_non_null(strstr(be_req(f.be, 0), "Expect: 100-continue"));
        client_free(c);
        wait_idle(&f);
        fx_stop(&f);
}

/* http_plain: :80 proxies terminated names (X-Forwarded-Proto: http). */
static void test_http_plain(void **state)
{
        struct proxy_config cfg = {.http_plain = true};
        struct msg m;
        struct fx f;
        struct rd *c;
        char v[64];

        fx_start(&f, &cfg);
        fx_routes(&f);
        c = plain_client(&f);
        get(c, "a.test", "/plain", &m);
        assert_int_equal(m.status, 200);
        assert_string_equal(find_header(be_req(f.be, 0), "X-Forwarded-Proto", v, sizeof(v)),
                            "http");
        client_free(c);
        wait_idle(&f);
        fx_stop(&f);
}

/* Listeners can be swapped under a running engine; -1 stops a port. */
static void test_replace_listeners(void **state)
{
        struct msg m;
        struct fx f;
        struct rd *c;
        uint16_t p443, p80;
        int l443, l80;

        fx_start(&f, NULL);
        fx_routes(&f);
        l443 = listen_on(INADDR_LOOPBACK, 0, &p443);
        l80 = listen_on(INADDR_LOOPBACK, 0, &p80);
        assert_int_equal(proxy_engine_replace_listeners(f.engine, l443, l80), 0);
        close(l443);
        close(l80);
        f.https_port = p443;
        f.http_port = p80;
        /* No wait needed: the new sockets queue connections until the
         * workers poll them. */
        c = tls_client(&f, "a.test");
        get(c, "a.test", "/", &m);
        assert_int_equal(m.status, 200);
        client_free(c);
        c = plain_client(&f);
        get(c, "a.test", "/", &m);
        assert_int_equal(m.status, 308);
        client_free(c);
        assert_int_equal(proxy_engine_replace_listeners(f.engine, -1, -1), 0);
        wait_idle(&f);
        fx_stop(&f);
}

/* A replaced listener whose socket someone else still holds open (the
 * daemon keeps its own copy of each listener until the swap is done, and
 * every worker has a dup): a connection queued on the old socket must not
 * wake a worker for the listener it freed. epoll keys its entries on the
 * open file description, so close() of a dup leaves the entry in the set. */
static void test_replaced_listener_held_open(void **state)
{
        struct msg m;
        struct fx f;
        struct rd *c;
        uint16_t old_port, new_port;
        int old_fd, new_fd, conns[4];

        fx_start(&f, NULL);
        fx_routes(&f);
        old_fd = listen_on(INADDR_LOOPBACK, 0, &old_port);
        assert_int_equal(proxy_engine_replace_listeners(f.engine, old_fd, -1), 0);
        f.https_port = old_port;
        c = tls_client(&f, "a.test");
        get(c, "a.test", "/", &m);
        assert_int_equal(m.status, 200);
        client_free(c);

        new_fd = listen_on(INADDR_LOOPBACK, 0, &new_port);
        assert_int_equal(proxy_engine_replace_listeners(f.engine, new_fd, -1), 0);
        close(new_fd);
        f.https_port = new_port;
        for (int i = 0; i < 4; i++) { /* both workers have swapped */
                c = tls_client(&f, "a.test");
                get(c, "a.test", "/", &m);
                assert_int_equal(m.status, 200);
                client_free(c);
        }
        sleep_ms(50);
        /* @old_fd still listens: these wait in its backlog, and the
         * workers' stale epoll entries (if any) report them. */
        for (size_t i = 0; i < ELEMENTSOF(conns); i++)
                conns[i] = connect_loopback(old_port);
        sleep_ms(100);
        c = tls_client(&f, "a.test");
        get(c, "a.test", "/", &m);
        assert_int_equal(m.status, 200);
        client_free(c);
        for (size_t i = 0; i < ELEMENTSOF(conns); i++)
                close(conns[i]);
        close(old_fd);
        wait_idle(&f);
        fx_stop(&f);
}

/* Timeouts: an idle keep-alive connection closes, a request head that
 * does not complete in time gets 408. */
static void test_timeouts(void **state)
{
        struct proxy_config cfg = {.keepalive_timeout_ms = 200, .request_timeout_ms = 300};
        struct msg m;
        struct fx f;
        struct rd *c;

        fx_start(&f, &cfg);
        fx_routes(&f);
        c = tls_client(&f, "a.test");
        get(c, "a.test", "/", &m);
        assert_int_equal(m.status, 200);
        /* Silence after the answer: the engine closes (close_notify). */
        assert_true(rd_fill(c) <= 0);
        client_free(c);

        c = plain_client(&f);
        send_str(c, "GET / HTTP/1.1\r\nHost: a.te");
        assert_true(rd_response(c, &m, false));
        assert_int_equal(m.status, 408);
        assert_true(m.close);
        client_free(c);
        wait_idle(&f);
        struct proxy_engine_stats st = stats(&f);
        assert_int_equal(st.closed[PROXY_CLOSE_KEEPALIVE_DONE], 1);
        assert_int_equal(st.closed[PROXY_CLOSE_REQUEST_TIMEOUT], 1);
        fx_stop(&f);
}

/* max_conns_per_worker counts :80 and terminated :443 connections alike. */
static void test_conn_limit_both_kinds(void **state)
{
        struct proxy_config cfg = {.workers = 1, .max_conns_per_worker = 1};
        struct msg m;
        struct fx f;
        struct rd *a, *b;

        fx_start(&f, &cfg);
        fx_routes(&f);
        a = plain_client(&f);
        send_str(a, "GET /a HTTP/1.1\r\nHost: a.test\r\n\r\n");
        assert_true(rd_response(a, &m, false));
        assert_int_equal(m.status, 308);
        /* a lingers until we close it; b's TCP handshake completes in the
         * kernel, but the engine takes it only after a is gone. */
        b = calloc(1, sizeof(*b));
        b->fd = connect_to(f.https_port);
        sleep_ms(200);
        assert_int_equal(stats(&f).accepted, 1);
        client_free(a);
        b->ssl = SSL_new(f.cctx);
        assert_true(SSL_set_tlsext_host_name(b->ssl, "a.test"));
        assert_true(SSL_set_fd(b->ssl, b->fd));
        assert_int_equal(SSL_connect(b->ssl), 1);
        get(b, "a.test", "/b", &m);
        assert_int_equal(m.status, 200);
        assert_int_equal(stats(&f).accepted, 2);
        client_free(b);
        wait_idle(&f);
        fx_stop(&f);
}

/* ---- a chunked upload into a backend that does not read yet ---- */

struct up_writer {
        int fd;
        uint64_t n; /* body bytes */
};

/* Chunks of varying sizes (so the proxy's re-encoded chunk heads differ),
 * generated from seed 7. */
static void *up_writer_main(void *arg)
{
        struct up_writer *u = arg;
        struct gen g = {.s = 7}, sz = {.s = 99};
        static const char head[] = "PUT /up HTTP/1.1\r\nHost: a.test\r\n"
                                   "Transfer-Encoding: chunked\r\n\r\n";
        uint8_t buf[8192];
        uint64_t left = u->n;

        fd_write_all(u->fd, head, sizeof(head) - 1);
        while (left > 0) {
                uint8_t r;
                size_t k;
                char ch[32];

                gen_fill(&sz, &r, 1);
                k = (size_t)MIN(left, (uint64_t)(r % 2 ? 1 + r : 4096 + r * 16));
                gen_fill(&g, buf, k);
                snprintf(ch, sizeof(ch), "%zx\r\n", k);
                fd_write_all(u->fd, ch, strlen(ch));
                fd_write_all(u->fd, buf, k);
                fd_write_all(u->fd, "\r\n", 2);
                left -= k;
        }
        fd_write_all(u->fd, "0\r\n\r\n", 5);
        return NULL;
}

/* Strictly decode a chunked body from @r: size lines of hex digits only,
 * exactly CRLF after each chunk's data. */
static bool rd_chunked_strict(struct rd *r, uint64_t *ret_len, uint8_t md5[16])
{
        struct md5_ctx ctx;
        char line[128];

        md5_init(&ctx);
        *ret_len = 0;
        for (;;) {
                uint64_t n;
                char *end;

                if (!rd_line(r, line, sizeof(line)) || !line[0] ||
                    strspn(line, "0123456789abcdefABCDEF") != strlen(line))
                        return false;
                n = strtoull(line, &end, 16);
                if (n == 0)
                        break;
                if (!rd_body(r, n, &ctx, NULL, 0, NULL))
                        return false;
                *ret_len += n;
                if (!rd_line(r, line, sizeof(line)) || line[0])
                        return false;
        }
        if (!rd_line(r, line, sizeof(line)) || line[0])
                return false;
        md5_final(&ctx, md5);
        return true;
}

/* The request body is re-chunked while the backend's socket is full: the
 * chunk heads still queued must not be overwritten by the next batch. */
static void test_chunked_upload_backpressure(void **state)
{
        struct proxy_config cfg = {.http_plain = true, .workers = 1};
        const uint64_t n = 12u << 20;
        struct up_writer u = {.n = n};
        struct rd *be = calloc(1, sizeof(*be)), *c;
        uint8_t want[16], got[16];
        uint64_t len = 0;
        struct pollfd pfd;
        pthread_t th;
        uint16_t port;
        struct msg m;
        struct fx f;
        int lfd, small = 4096;

        fx_start(&f, &cfg);
        lfd = listen_on(INADDR_LOOPBACK, 0, &port);
        assert_int_equal(setsockopt(lfd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small)), 0);
        table_put(f.table, "wa", "a.test", PROXY_ROUTE_TERMINATE, &port, 1, f.cert_a);
        c = plain_client(&f);
        u.fd = c->fd;
        assert_int_equal(pthread_create(&th, NULL, up_writer_main, &u), 0);
        pfd = (struct pollfd){.fd = lfd, .events = POLLIN};
        assert_int_equal(poll(&pfd, 1, WAIT_MS), 1);
        be->fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
        assert_true(be->fd >= 0);
        /* Let everything back up: the proxy's queue to us stays non-empty
         * while the client keeps sending. */
        sleep_ms(500);
        assert_true(rd_head(be, m.head, sizeof(m.head)));
        assert_true(rd_chunked_strict(be, &len, got));
        assert_int_equal(len, n);
        gen_md5(7, n, want);
        assert_memory_equal(got, want, 16);
        fd_write_all(be->fd, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 38);
        pthread_join(th, NULL);
        assert_true(rd_response(c, &m, false));
        assert_int_equal(m.status, 200);
        client_free(c);
        close(be->fd);
        free(be);
        close(lfd);
        wait_idle(&f);
        fx_stop(&f);
}

/* The pool is bounded in total, not only per backend: one client walking
 * through many names must not leave an idle backend connection (an fd) per
 * name. A worker keeps at most max_conns_per_worker idle ones. */
static void test_pool_total_bound(void **state)
{
        struct proxy_config cfg = {.http_plain = true, .workers = 1, .max_conns_per_worker = 4};
        struct backend *bes[8];
        struct msg m;
        struct fx f;
        struct rd *c;
        uint64_t end;
        unsigned open;

        fx_start(&f, &cfg);
        c = plain_client(&f);
        for (unsigned i = 0; i < ELEMENTSOF(bes); i++) {
                char id[16], host[32];

                bes[i] = backend_start();
                snprintf(id, sizeof(id), "w%u", i);
                snprintf(host, sizeof(host), "h%u.test", i);
                table_put(f.table, id, host, PROXY_ROUTE_TERMINATE, &bes[i]->port, 1, NULL);
                get(c, host, "/", &m);
                assert_int_equal(m.status, 200);
        }
        /* The evicted connections reach EOF at their backends. */
        end = now_ms() + WAIT_MS;
        for (;;) {
                open = 0;
                for (unsigned i = 0; i < ELEMENTSOF(bes); i++)
                        open += atomic_load(&bes[i]->n_open);
                if (open <= cfg.max_conns_per_worker || now_ms() > end)
                        break;
                sleep_ms(2);
        }
        note("backend connections still open: %u\n", open);
        assert_true(open <= cfg.max_conns_per_worker);
        client_free(c);
        wait_idle(&f);
        fx_stop(&f);
        for (unsigned i = 0; i < ELEMENTSOF(bes); i++)
                backend_stop(bes[i]);
}

/* Until @b has @n connections open (the proxy closed the others). */
static void wait_backend_open(struct backend *b, unsigned n)
{
        uint64_t end = now_ms() + WAIT_MS;

        while (atomic_load(&b->n_open) != n) {
                if (now_ms() > end)
                        fail_msg("backend: %u connections open, want %u", atomic_load(&b->n_open),
                                 n);
                sleep_ms(2);
        }
}

/* Issue 10: idle pooled backend connections live on what the worker's
 * descriptor share leaves after two per client connection. A worker full of
 * clients pools nothing, and a new client makes the pool give way. */
static void test_issue_10_pool_yields_to_clients(void **state)
{
        /* 16 descriptors for connections: at most 8 clients. */
        struct proxy_config cfg = {
                .http_plain = true, .workers = 1, .max_fds = PROXY_ENGINE_WORKER_FDS + 16};
        struct rd *c[9];
        uint64_t reused;
        struct msg m;
        struct fx f;

        fx_start(&f, &cfg);
        fx_routes(&f);
        assert_int_equal(proxy_engine_max_conns(f.engine), 8);

        /* 7 clients one after the other: one backend connection, pooled
         * between their requests (7 clients leave room for 2). */
        for (unsigned i = 0; i < 7; i++) {
                c[i] = plain_client(&f);
                get(c[i], "a.test", "/x", &m);
                assert_int_equal(m.status, 200);
        }
        wait_backend_open(f.be, 1);
        assert_int_equal(stats(&f).upstream_connects, 1);
        assert_int_equal(stats(&f).upstream_reused, 6);

        /* The 8th client needs the pooled connection's descriptor: the pool
         * closes it at accept, and its own backend connection is not pooled
         * after the response either (no room left). */
        c[7] = plain_client(&f);
        wait_accepted(&f, 8);
        wait_backend_open(f.be, 0);
        reused = stats(&f).upstream_reused;
        get(c[7], "a.test", "/x", &m);
        assert_int_equal(m.status, 200);
        wait_backend_open(f.be, 0);
        assert_int_equal(stats(&f).upstream_reused, reused);

        /* A 9th waits in the kernel's queue until a client leaves. */
        c[8] = plain_client(&f);
        sleep_ms(200);
        assert_int_equal(stats(&f).accepted, 8);
        client_free(c[0]);
        get(c[8], "a.test", "/x", &m);
        assert_int_equal(m.status, 200);
        assert_int_equal(stats(&f).accepted, 9);

        /* Fewer clients: pooling again. */
        for (unsigned i = 1; i < 5; i++)
                client_free(c[i]);
        wait_accepted(&f, 9);
        for (uint64_t end = now_ms() + WAIT_MS; stats(&f).active != 4;)
                assert_true(now_ms() < end);
        reused = stats(&f).upstream_reused;
        get(c[5], "a.test", "/x", &m);
        assert_int_equal(m.status, 200);
        get(c[6], "a.test", "/x", &m);
        assert_int_equal(m.status, 200);
        assert_int_equal(stats(&f).upstream_reused, reused + 1);
        assert_true(atomic_load(&f.be->n_open) >= 1);
        for (unsigned i = 5; i < 9; i++)
                client_free(c[i]);
        wait_idle(&f);
        fx_stop(&f);
}

static unsigned count_fds(void)
{
        char path[64];
        unsigned n = 0;

        for (int fd = 0; fd < 4096; fd++) {
                snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
                if (fcntl(fd, F_GETFD) >= 0)
                        n++;
        }
        return n;
}

/* Teardown paths leave no fd behind: a backend closing mid-body, a client
 * closing mid-upload and mid-response, a stop during a TLS handshake and
 * with a request in flight. */
static void test_teardown_no_fd_leak(void **state)
{
        unsigned before = count_fds(), after;
        struct proxy_config cfg = {.http_plain = true, .workers = 1, .connect_timeout_ms = 300};
        struct rd *be = calloc(1, sizeof(*be)), *c, *hs, *inflight;
        struct sockaddr_in sa;
        uint16_t ports[2];
        int full, filler;
        struct pollfd pfd;
        uint16_t port;
        struct msg m;
        struct fx f;
        SSL *ssl;
        int lfd;

        fx_start(&f, &cfg);
        fx_routes(&f);
        lfd = listen_on(INADDR_LOOPBACK, 0, &port);
        table_put(f.table, "wr", "r.test", PROXY_ROUTE_TERMINATE, &port, 1, NULL);
        full = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        assert_int_equal(
                bind(full,
                     (struct sockaddr *)&(struct sockaddr_in){
                             .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)},
                     sizeof(struct sockaddr_in)),
                0);
        assert_int_equal(listen(full, 0), 0);
        assert_int_equal(getsockname(full, (struct sockaddr *)&sa, &(socklen_t){sizeof(sa)}), 0);
        ports[0] = ntohs(sa.sin_port);
        ports[1] = f.be->port;
        filler = connect_to(ports[0]);
        table_put(f.table, "wu", "u.test", PROXY_ROUTE_TERMINATE, ports, 2, NULL);

        /* The backend promises 1000 bytes, sends 10 and closes. */
        c = plain_client(&f);
        send_str(c, "GET /cut HTTP/1.1\r\nHost: r.test\r\n\r\n");
        pfd = (struct pollfd){.fd = lfd, .events = POLLIN};
        assert_int_equal(poll(&pfd, 1, WAIT_MS), 1);
        be->fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
        assert_true(rd_head(be, m.head, sizeof(m.head)));
        fd_write_all(be->fd, "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n0123456789", 51);
        close(be->fd);
        assert_true(rd_head(c, m.head, sizeof(m.head)));
        while (rd_fill(c) > 0)
                ;
        client_free(c);
        wait_accepted(&f, 1);
        wait_idle(&f);

        /* The client leaves in the middle of an upload, while the request
         * waits for a backend (the first one's accept queue is full, so its
         * connect times out; the second one takes the request). */
        c = plain_client(&f);
        send_str(c, "PUT /up HTTP/1.1\r\nHost: u.test\r\nContent-Length: 100000\r\n\r\nabc");
        client_free(c);
        /* Not after request_timeout_ms (the backend holds on to its end of
         * the truncated request): at once. */
        wait_accepted(&f, 2);
        wait_idle(&f);

        /* ... and in the middle of a big response it does not read. */
        c = plain_client(&f);
        send_str(c, "GET /gen?n=20000000&seed=1 HTTP/1.1\r\nHost: a.test\r\n\r\n");
        assert_true(rd_head(c, m.head, sizeof(m.head)));
        client_free(c);
        wait_accepted(&f, 3);
        wait_idle(&f);

        /* Stop with a TLS handshake pending and a request in flight. */
        /* Only the ClientHello goes out (made with memory BIOs): the
         * server answers and waits in its handshake for our Finished. */
        hs = calloc(1, sizeof(*hs));
        hs->fd = connect_to(f.https_port);
        ssl = SSL_new(f.cctx);
        assert_true(SSL_set_tlsext_host_name(ssl, "a.test"));
        {
                BIO *rb = BIO_new(BIO_s_mem()), *wb = BIO_new(BIO_s_mem());
                const uint8_t *p;
                size_t n;

                SSL_set_bio(ssl, rb, wb);
                assert_true(SSL_connect(ssl) < 0);
                assert_true(BIO_mem_contents(wb, &p, &n) && n > 0);
                fd_write_all(hs->fd, p, n);
        }
        /* The server's flight arrives: the hello was handed over. */
        assert_true(rd_fill(hs) > 0);
        inflight = plain_client(&f);
        send_str(inflight, "GET /slow HTTP/1.1\r\nHost: a.test\r\n\r\n");
        (void)be_req(f.be, 0);
        sleep_ms(50);
        fx_stop(&f);
        SSL_free(ssl);
        client_free(hs);
        client_free(inflight);
        close(lfd);
        close(filler);
        close(full);
        free(be);
        after = count_fds();
        note("fds %u -> %u\n", before, after);
        assert_int_equal(after, before);
}

/* ---- issue 11: client limits and minimum rates ---- */

/* A client connection from source address @src (any 127/8 address is
 * local) to @port. */
static struct rd *client_from(const char *src, uint16_t port)
{
        struct sockaddr_in a = {.sin_family = AF_INET},
                           b = {.sin_family = AF_INET, .sin_port = htons(port)};
        struct timeval tv = {.tv_sec = 10};
        struct rd *r = calloc(1, sizeof(*r));

        assert_int_equal(inet_pton(AF_INET, src, &a.sin_addr), 1);
        b.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        r->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        assert_true(r->fd >= 0);
        assert_int_equal(bind(r->fd, (struct sockaddr *)&a, sizeof(a)), 0);
        assert_int_equal(connect(r->fd, (struct sockaddr *)&b, sizeof(b)), 0);
        assert_int_equal(setsockopt(r->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
        return r;
}

/* A TLS client from @src; the handshake must succeed. */
static struct rd *tls_client_from(struct fx *f, const char *src, const char *sni)
{
        struct rd *r = client_from(src, f->https_port);

        r->ssl = SSL_new(f->cctx);
        assert_true(SSL_set_tlsext_host_name(r->ssl, sni));
        assert_true(SSL_set_fd(r->ssl, r->fd));
        assert_int_equal(SSL_connect(r->ssl), 1);
        return r;
}

/* The engine refused @r at accept: on :80 a 429 (or 503) then EOF. */
static void expect_refused_http(struct rd *r, unsigned status)
{
        struct msg m;

        send_str(r, "GET / HTTP/1.1\r\nHost: a.test\r\n\r\n");
        assert_true(rd_response(r, &m, false));
        assert_int_equal(m.status, status);
        assert_true(m.close);
        assert_true(rd_fill(r) <= 0);
}

static void test_issue_11_per_client_cap(void **state)
{
        struct proxy_config cfg = {.max_conns_per_client = 2, .new_conns_per_sec = PROXY_LIMIT_OFF};
        struct rd *a[2], *x, *other, *t;
        struct proxy_engine_stats st;
        struct msg m;
        struct fx f;

        fx_start(&f, &cfg);
        fx_routes(&f);
        /* Two idle :80 connections from 127.0.0.5: its share on :80. */
        a[0] = client_from("127.0.0.5", f.http_port);
        a[1] = client_from("127.0.0.5", f.http_port);
        wait_accepted(&f, 2);
        x = client_from("127.0.0.5", f.http_port);
        expect_refused_http(x, 429);
        client_free(x);
        /* Another address is served, and so is :443 from the same one. */
        other = client_from("127.0.0.6", f.http_port);
        get(other, "a.test", "/", &m);
        assert_int_equal(m.status, 308);
        client_free(other);
        t = tls_client_from(&f, "127.0.0.5", "a.test");
        get(t, "a.test", "/", &m);
        assert_int_equal(m.status, 200);
        client_free(t);
        st = stats(&f);
        assert_int_equal(st.limit_rejections[1][PROXY_LIMIT_PER_CLIENT], 1);
        assert_int_equal(st.limit_rejections[0][PROXY_LIMIT_PER_CLIENT], 0);
        /* One leaves: the address has room again. */
        client_free(a[0]);
        for (uint64_t end = now_ms() + WAIT_MS; stats(&f).active != 1;)
                assert_true(now_ms() < end);
        x = client_from("127.0.0.5", f.http_port);
        get(x, "a.test", "/", &m);
        assert_int_equal(m.status, 308);
        client_free(x);
        client_free(a[1]);
        wait_idle(&f);
        assert_int_equal(stats(&f).open_connections, 0);
        fx_stop(&f);
}

static void test_issue_11_conn_rate(void **state)
{
        struct proxy_config cfg = {.new_conns_per_sec = 5};
        struct rd *c;
        struct msg m;
        struct fx f;

        fx_start(&f, &cfg);
        fx_routes(&f);
        /* A burst of one second's worth passes... */
        for (unsigned i = 0; i < 5; i++) {
                c = client_from("127.0.0.7", f.http_port);
                get(c, "a.test", "/", &m);
                assert_int_equal(m.status, 308);
                client_free(c);
        }
        /* ... the next within that second is refused, another address not. */
        c = client_from("127.0.0.7", f.http_port);
        expect_refused_http(c, 429);
        client_free(c);
        c = client_from("127.0.0.8", f.http_port);
        get(c, "a.test", "/", &m);
        assert_int_equal(m.status, 308);
        client_free(c);
        /* :443 is metered with the same budget: closed before a handshake. */
        c = client_from("127.0.0.7", f.https_port);
        assert_true(rd_fill(c) <= 0);
        client_free(c);
        assert_int_equal(stats(&f).limit_rejections[1][PROXY_LIMIT_RATE], 1);
        assert_int_equal(stats(&f).limit_rejections[0][PROXY_LIMIT_RATE], 1);
        /* 200 ms of credit later: one more. */
        sleep_ms(450);
        c = client_from("127.0.0.7", f.http_port);
        get(c, "a.test", "/", &m);
        assert_int_equal(m.status, 308);
        client_free(c);
        wait_idle(&f);
        fx_stop(&f);
}

static void test_issue_11_total_cap(void **state)
{
        struct proxy_config cfg = {.max_connections = 2,
                                   .max_conns_per_client = PROXY_LIMIT_OFF,
                                   .new_conns_per_sec = PROXY_LIMIT_OFF};
        struct rd *a, *b, *x;
        struct fx f;

        fx_start(&f, &cfg);
        fx_routes(&f);
        a = client_from("127.0.0.9", f.http_port);
        b = client_from("127.0.0.10", f.https_port);
        wait_accepted(&f, 2);
        x = client_from("127.0.0.11", f.http_port);
        expect_refused_http(x, 503);
        client_free(x);
        assert_int_equal(stats(&f).limit_rejections[1][PROXY_LIMIT_TOTAL], 1);
        assert_int_equal(stats(&f).open_connections, 2);
        client_free(a);
        client_free(b);
        wait_idle(&f);
        fx_stop(&f);
}

/* A :80 connection that never sends a byte has the handshake deadline, not
 * the keep-alive one; after a request it has the keep-alive one. */
static void test_issue_11_idle_plain_first_request(void **state)
{
        struct proxy_config cfg = {
                .http_plain = true, .handshake_timeout_ms = 300, .keepalive_timeout_ms = 5000};
        struct msg m;
        struct fx f;
        struct rd *c, *d;
        uint64_t t0;

        fx_start(&f, &cfg);
        fx_routes(&f);
        d = plain_client(&f);
        get(d, "a.test", "/x", &m);
        t0 = now_ms();
        c = plain_client(&f);
        assert_true(rd_fill(c) <= 0);
        note("idle first connection closed after %llu ms\n", (unsigned long long)(now_ms() - t0));
        assert_true(now_ms() - t0 < 2000);
        client_free(c);
        /* Past the handshake deadline, the served one still works. */
        sleep_ms(200);
        get(d, "a.test", "/y", &m);
        assert_int_equal(m.status, 200);
        client_free(d);
        wait_idle(&f);
        assert_int_equal(stats(&f).closed[PROXY_CLOSE_REQUEST_TIMEOUT], 1);
        fx_stop(&f);
}

/* A request body that trickles is cut once it falls below body_min_rate
 * for a body period, although every byte would have restarted an idle
 * timer; a body at speed passes. */
static void test_issue_11_slow_body(void **state)
{
        struct proxy_config cfg = {
                .http_plain = true, .body_timeout_ms = 500, .body_min_rate = 1000};
        static uint8_t body[100000];
        struct msg m;
        struct fx f;
        struct rd *c;
        uint64_t t0;
        bool answered = false;

        fx_start(&f, &cfg);
        fx_routes(&f);
        c = plain_client(&f);
        send_str(c, "POST /up HTTP/1.1\r\nHost: a.test\r\nContent-Length: 100000\r\n\r\n");
        rd_write(c, body, sizeof(body));
        assert_true(rd_response(c, &m, false));
        assert_int_equal(m.status, 200);
        assert_non_null(strstr(m.head, "X-Body-Len: 100000"));
        client_free(c);

        c = plain_client(&f);
        t0 = now_ms();
        send_str(c, "POST /up HTTP/1.1\r\nHost: a.test\r\nContent-Length: 100000\r\n\r\n");
        /* 5 bytes every 100 ms: 50 B/s, each byte "progress". */
        for (unsigned i = 0; i < 40 && !answered; i++) {
                struct pollfd p = {.fd = c->fd, .events = POLLIN};

                if (write(c->fd, "xxxxx", 5) != 5)
                        break;
                answered = poll(&p, 1, 100) == 1;
        }
        assert_true(rd_response(c, &m, false));
        note("slow body answered %u after %llu ms\n", m.status,
             (unsigned long long)(now_ms() - t0));
        assert_int_equal(m.status, 408);
        assert_true(now_ms() - t0 < 3000);
        client_free(c);
        wait_idle(&f);
        assert_int_equal(stats(&f).closed[PROXY_CLOSE_BODY_TOO_SLOW], 1);
        fx_stop(&f);
}

/* A client that does not read its response is cut once it took less than
 * send_min_rate for a send period (the backend connection goes with it). */
static void test_issue_11_slow_reader(void **state)
{
        struct proxy_config cfg = {
                .http_plain = true, .send_timeout_ms = 400, .send_min_rate = 100000};
        int small = 4096;
        struct fx f;
        struct rd *c;
        uint64_t t0;

        fx_start(&f, &cfg);
        fx_routes(&f);
        c = calloc(1, sizeof(*c));
        c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        assert_int_equal(setsockopt(c->fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small)), 0);
        {
                struct sockaddr_in a = {.sin_family = AF_INET,
                                        .sin_port = htons(f.http_port),
                                        .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};

                assert_int_equal(connect(c->fd, (struct sockaddr *)&a, sizeof(a)), 0);
        }
        t0 = now_ms();
        send_str(c, "GET /gen?n=200000000&seed=3 HTTP/1.1\r\nHost: a.test\r\n\r\n");
        for (uint64_t end = now_ms() + WAIT_MS; stats(&f).closed[PROXY_CLOSE_SEND_TOO_SLOW] == 0;) {
                assert_true(now_ms() < end);
                sleep_ms(10);
        }
        note("slow reader cut after %llu ms\n", (unsigned long long)(now_ms() - t0));
        client_free(c);
        wait_idle(&f);
        fx_stop(&f);
}

/* proxy_engine_set_limits(): a live change reaches deadlines already
 * running; a bad value changes nothing. */
static void test_issue_11_set_limits_live(void **state)
{
        struct proxy_config cfg = {.handshake_timeout_ms = 20000, .max_conns_per_client = 4};
        struct proxy_config bad = {.handshake_timeout_ms = 8ull * 24 * 3600 * 1000};
        struct proxy_config live = {.handshake_timeout_ms = 300,
                                    .max_conns_per_client = 1,
                                    .new_conns_per_sec = PROXY_LIMIT_OFF};
        struct rd *c, *x;
        struct fx f;
        uint64_t t0;

        fx_start(&f, &cfg);
        fx_routes(&f);
        c = client_from("127.0.0.12", f.http_port);
        wait_accepted(&f, 1);
        assert_int_equal(proxy_engine_set_limits(f.engine, &bad), -EINVAL);
        t0 = now_ms();
        assert_int_equal(proxy_engine_set_limits(f.engine, &live), 0);
        /* The connection idle since before the change goes at once. */
        assert_true(rd_fill(c) <= 0);
        assert_true(now_ms() - t0 < 2000);
        client_free(c);
        wait_idle(&f);
        c = client_from("127.0.0.12", f.http_port);
        wait_accepted(&f, 2);
        x = client_from("127.0.0.12", f.http_port);
        expect_refused_http(x, 429);
        client_free(x);
        client_free(c);
        wait_idle(&f);
        fx_stop(&f);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_tls_versions_alpn_forwarding),
                cmocka_unit_test(test_tls_resumption),
                cmocka_unit_test(test_tls_misdirected),
                cmocka_unit_test(test_keepalive_pool),
                cmocka_unit_test(test_pipelining),
                cmocka_unit_test(test_bodies_big_and_slow),
                cmocka_unit_test(test_counters_exact),
                cmocka_unit_test(test_http_redirect_404_acme),
                cmocka_unit_test(test_acme_passthrough_port80),
                cmocka_unit_test(test_backend_failures),
                cmocka_unit_test(test_backend_health_passive_active),
                cmocka_unit_test(test_backend_health_reset_retry),
                cmocka_unit_test(test_bad_requests),
                cmocka_unit_test(test_route_removal),
                cmocka_unit_test(test_stop_drains),
                cmocka_unit_test(test_websocket),
                cmocka_unit_test(test_expect_continue),
                cmocka_unit_test(test_http_plain),
                cmocka_unit_test(test_replace_listeners),
                cmocka_unit_test(test_replaced_listener_held_open),
                cmocka_unit_test(test_timeouts),
                cmocka_unit_test(test_conn_limit_both_kinds),
                cmocka_unit_test(test_chunked_upload_backpressure),
                cmocka_unit_test(test_pool_total_bound),
                cmocka_unit_test(test_issue_10_pool_yields_to_clients),
                cmocka_unit_test(test_issue_11_per_client_cap),
                cmocka_unit_test(test_issue_11_conn_rate),
                cmocka_unit_test(test_issue_11_total_cap),
                cmocka_unit_test(test_issue_11_idle_plain_first_request),
                cmocka_unit_test(test_issue_11_slow_body),
                cmocka_unit_test(test_issue_11_slow_reader),
                cmocka_unit_test(test_issue_11_set_limits_live),
                cmocka_unit_test(test_teardown_no_fd_leak),
        };

        signal(SIGPIPE, SIG_IGN);
        return cmocka_run_group_tests(tests, NULL, NULL);
}
