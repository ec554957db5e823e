/* SPDX-License-Identifier: Apache-2.0 */
/* Integration tests for the proxy engine's :443 passthrough path, over
 * loopback: a real listening socket handed to an engine with two workers, a
 * blocking echo backend on its own threads, and blocking test clients that
 * use poll(). The ClientHellos are the captures in client-hellos.h.
 * Every test stops its engine, which fails unless each worker's
 * uv_loop_close() returned 0. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "client-hellos.h"
#include "common/macros.h"
#include "common/md5.h"
#include "proxy-test.h"
#include "proxy/proxy.h"
#include "proxy/routes.h"
#include "proxy/worker.h"

/* ---- helpers ---- */

static void write_all(int fd, const void *p, size_t n)
{
        const uint8_t *b = p;

        while (n > 0) {
                ssize_t k = write(fd, b, n);

                assert_true(k > 0);
                b += k;
                n -= (size_t)k;
        }
}

/* ---- the echo backend ---- */

#define BACKEND_CONNS 16
#define HEAD_MAX      65536

struct backend_conn {
        int fd;
        const char *trailer;
        pthread_t thread;
        atomic_bool done;       /* the peer closed and the thread ended */
        uint64_t received;      /* valid once done */
        uint8_t md5[16];        /* of everything received, valid once done */
        uint8_t head[HEAD_MAX]; /* the first bytes received */
        size_t head_len;
        struct md5_ctx ctx;
};

struct backend {
        int lfd;
        uint16_t port;
        pthread_t thread;
        atomic_uint n_conns;
        const char *trailer; /* written after the peer's EOF, before closing */
        struct backend_conn conns[BACKEND_CONNS];
};

static void *backend_conn_main(void *arg)
{
        struct backend_conn *bc = arg;
        static _Thread_local uint8_t buf[65536];

        md5_init(&bc->ctx);
        for (;;) {
                ssize_t n = read(bc->fd, buf, sizeof(buf));

                if (n == 0 && bc->trailer)
                        write_all(bc->fd, bc->trailer, strlen(bc->trailer));
                if (n <= 0)
                        break;
                if (bc->head_len < HEAD_MAX) {
                        size_t k = MIN((size_t)n, HEAD_MAX - bc->head_len);

                        memcpy(bc->head + bc->head_len, buf, k);
                        bc->head_len += k;
                }
                md5_update(&bc->ctx, buf, (size_t)n);
                bc->received += (uint64_t)n;
                for (ssize_t off = 0; off < n;) {
                        ssize_t k = write(bc->fd, buf + off, (size_t)(n - off));

                        if (k <= 0)
                                goto out;
                        off += k;
                }
        }
out:
        md5_final(&bc->ctx, bc->md5);
        close(bc->fd);
        atomic_store(&bc->done, true);
        return NULL;
}

static void *backend_main(void *arg)
{
        struct backend *b = arg;

        for (;;) {
                int fd = accept4(b->lfd, NULL, NULL, SOCK_CLOEXEC);
                unsigned i;

                if (fd < 0)
                        break;
                i = atomic_load(&b->n_conns);
                assert_true(i < BACKEND_CONNS);
                b->conns[i].fd = fd;
                b->conns[i].trailer = b->trailer;
                assert_int_equal(
                        pthread_create(&b->conns[i].thread, NULL, backend_conn_main, &b->conns[i]),
                        0);
                atomic_store(&b->n_conns, i + 1);
        }
        return NULL;
}

static struct backend *backend_start(void)
{
        struct backend *b = calloc(1, sizeof(*b));

        assert_non_null(b);
        b->lfd = listen_loopback(&b->port);
        assert_int_equal(pthread_create(&b->thread, NULL, backend_main, b), 0);
        return b;
}

static void backend_stop(struct backend *b)
{
        /* shutdown() wakes the blocked accept(). */
        shutdown(b->lfd, SHUT_RDWR);
        pthread_join(b->thread, NULL);
        close(b->lfd);
        for (unsigned i = 0; i < atomic_load(&b->n_conns); i++)
                pthread_join(b->conns[i].thread, NULL);
        free(b);
}

static struct backend_conn *backend_wait_done(struct backend *b, unsigned i)
{
        uint64_t end = now_ms() + WAIT_MS;

        while (now_ms() < end) {
                if (atomic_load(&b->n_conns) > i && atomic_load(&b->conns[i].done))
                        return &b->conns[i];
                sleep_ms(2);
        }
        fail_msg("backend connection %u did not finish", i);
        return NULL;
}

/* ---- routes ---- */

static void table_put(struct proxy_route_table *t, const char *id, const char *host,
                      enum proxy_route_mode mode, const uint16_t *ports, size_t n_ports)
{
        table_put_ip(t, id, host, mode, INADDR_LOOPBACK, ports, n_ports, NULL);
}

/* ---- fixture ---- */

struct fx {
        struct backend *backend;
        struct proxy_route_table *table;
        struct proxy_engine *engine;
        int lfd;
        uint16_t port;
};

static void fx_start(struct fx *f, const struct proxy_config *extra)
{
        struct proxy_config cfg = extra ? *extra : (struct proxy_config){0};

        memset(f, 0, sizeof(*f));
        f->backend = backend_start();
        assert_int_equal(proxy_route_table_new(&f->table), 0);
        f->lfd = listen_loopback(&f->port);
        if (!cfg.workers)
                cfg.workers = 2;
        cfg.https_fd = f->lfd;
        /* A caller's :80 listener (never fd 0: that is stdin). */
        cfg.http_fd = cfg.http_fd > 0 ? cfg.http_fd : -1;
        assert_int_equal(proxy_engine_new(&cfg, f->table, &f->engine), 0);
        assert_int_equal(proxy_engine_workers(f->engine), cfg.workers);
        assert_int_equal(proxy_engine_start(f->engine), 0);
        /* The engine has its own dups now. */
        close(f->lfd);
        f->lfd = -1;
}

static void fx_stop(struct fx *f)
{
        f->engine = engine_stop_free(f->engine);
        proxy_route_table_free(f->table);
        backend_stop(f->backend);
}

static void wait_idle(struct fx *f)
{
        wait_idle_engine(f->engine);
}

static uint64_t closed(struct fx *f, enum proxy_close_reason r)
{
        return engine_stats(f->engine).closed[r];
}

/* ---- the test client ---- */

struct xfer {
        const uint8_t *prefix; /* sent first */
        size_t prefix_len;
        uint64_t gen_len; /* then this many generated bytes */
        uint32_t seed;
        bool shut_wr;        /* shutdown(SHUT_WR) once everything is sent */
        uint64_t want;       /* stop after reading this many bytes; UINT64_MAX: until EOF */
        bool stall;          /* first only write, without reading, until nothing moves for 300 ms */
        uint64_t stalled_at; /* bytes written when the stall was reached */
        /* results */
        uint64_t sent;
        uint64_t received;
        bool eof;
        int error; /* read error (e.g. ECONNRESET), 0 if none */
        uint8_t sent_md5[16];
        uint8_t recv_md5[16];
        uint8_t head[4096]; /* the first bytes received */
        size_t head_len;
        size_t max_backlog; /* most bytes ever sent but not yet echoed */
};

/* Send and receive at the same time until done or @timeout_ms. */
static void xfer_run(int fd, struct xfer *x, unsigned timeout_ms)
{
        static uint8_t out[65536], in[65536];
        struct md5_ctx ms, mr;
        struct gen g = {.s = x->seed ? x->seed : 1};
        size_t out_off = 0, out_len = 0;
        uint64_t total = x->prefix_len + x->gen_len, end = now_ms() + timeout_ms;
        bool shut = false, stalling = x->stall;
        uint64_t last_progress = now_ms();
        int fl = fcntl(fd, F_GETFL);

        assert_int_equal(fcntl(fd, F_SETFL, fl | O_NONBLOCK), 0);
        md5_init(&ms);
        md5_init(&mr);
        for (;;) {
                struct pollfd p = {.fd = fd, .events = stalling ? 0 : POLLIN};
                bool more_out = x->sent < total || out_off < out_len;

                if (stalling && (!more_out || now_ms() - last_progress > 300)) {
                        stalling = false;
                        x->stalled_at = x->sent - (out_len - out_off);
                        continue;
                }

                if (!more_out && x->shut_wr && !shut) {
                        assert_int_equal(shutdown(fd, SHUT_WR), 0);
                        shut = true;
                }
                if (x->eof || x->error || x->received >= x->want)
                        break;
                if (more_out)
                        p.events |= POLLOUT;
                assert_true(now_ms() < end);
                assert_true(poll(&p, 1, stalling ? 50 : 100) >= 0);
                if (p.revents & POLLOUT) {
                        if (out_off == out_len) {
                                out_off = 0;
                                if (x->sent < x->prefix_len) {
                                        out_len = x->prefix_len - x->sent;
                                        memcpy(out, x->prefix + x->sent, out_len);
                                } else {
                                        out_len = MIN(sizeof(out), total - x->sent);
                                        gen_fill(&g, out, out_len);
                                }
                                md5_update(&ms, out, out_len);
                                x->sent += out_len;
                        }
                        ssize_t k = write(fd, out + out_off, out_len - out_off);

                        if (k > 0) {
                                out_off += (size_t)k;
                                last_progress = now_ms();
                        } else
                                assert_true(errno == EAGAIN);
                }
                if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
                        ssize_t k = read(fd, in, sizeof(in));

                        if (k > 0) {
                                size_t c = MIN((size_t)k, sizeof(x->head) - x->head_len);

                                memcpy(x->head + x->head_len, in, c);
                                x->head_len += c;
                                md5_update(&mr, in, (size_t)k);
                                x->received += (uint64_t)k;
                        } else if (k == 0) {
                                x->eof = true;
                        } else if (errno != EAGAIN) {
                                x->error = errno;
                        }
                }
                uint64_t in_flight = x->sent - (out_len - out_off) - x->received;

                if (in_flight > x->max_backlog && x->sent >= x->received)
                        x->max_backlog = in_flight;
        }
        md5_final(&ms, x->sent_md5);
        md5_final(&mr, x->recv_md5);
        assert_int_equal(fcntl(fd, F_SETFL, fl), 0);
}

/* Send @prefix + @n generated bytes, half-close, and read the echo to
 * EOF; check the echo and what the backend got (@bconn-th connection). */
static void echo_roundtrip(struct fx *f, int fd, const uint8_t *prefix, size_t prefix_len,
                           uint64_t n, unsigned bconn)
{
        struct xfer x = {.prefix = prefix,
                         .prefix_len = prefix_len,
                         .gen_len = n,
                         .seed = 7,
                         .shut_wr = true,
                         .want = UINT64_MAX};
        struct backend_conn *bc;

        xfer_run(fd, &x, 30000);
        assert_true(x.eof);
        assert_int_equal(x.error, 0);
        assert_int_equal(x.sent, prefix_len + n);
        assert_int_equal(x.received, x.sent);
        assert_memory_equal(x.sent_md5, x.recv_md5, 16);
        assert_memory_equal(x.head, prefix, MIN(prefix_len, sizeof(x.head)));

        bc = backend_wait_done(f->backend, bconn);
        assert_int_equal(bc->received, x.sent);
        assert_memory_equal(bc->md5, x.sent_md5, 16);
        assert_memory_equal(bc->head, prefix, prefix_len);
}

static void check_counters(struct proxy_counters *c, uint64_t requests, uint64_t req_bytes,
                           uint64_t resp_bytes)
{
        struct proxy_counters_values v;

        check_traffic(c, requests, req_bytes, resp_bytes, &v);
        for (unsigned i = 0; i < 5; i++)
                assert_int_equal(v.status[i], 0);
}

/* ---- tests ---- */

static void test_passthrough_echo(void **state)
{
        _cleanup_(proxy_counters_unrefp) struct proxy_counters *cnt = NULL;
        const uint64_t n = 1000;
        struct fx f;
        int fd;

        fx_start(&f, NULL);
        table_put(f.table, "w1", "example.com", PROXY_ROUTE_PASSTHROUGH, &f.backend->port, 1);
        cnt = route_counters(f.table, "w1");

        fd = connect_loopback(f.port);
        echo_roundtrip(&f, fd, cap_openssl_sni, sizeof(cap_openssl_sni), n, 0);
        close(fd);
        wait_idle(&f);
        check_counters(cnt, 1, sizeof(cap_openssl_sni) + n, sizeof(cap_openssl_sni) + n);
        assert_int_equal(closed(&f, PROXY_CLOSE_DONE), 1);

        /* Again on a fresh connection: the counters add up exactly. */
        fd = connect_loopback(f.port);
        echo_roundtrip(&f, fd, cap_openssl_sni, sizeof(cap_openssl_sni), 3 * n, 1);
        close(fd);
        wait_idle(&f);
        check_counters(cnt, 2, 2 * sizeof(cap_openssl_sni) + 4 * n,
                       2 * sizeof(cap_openssl_sni) + 4 * n);
        fx_stop(&f);
}

/* The client's read ends with EOF or a reset and nothing was echoed. */
static void expect_closed_silently(int fd, const uint8_t *p, size_t n)
{
        struct xfer x = {.prefix = p, .prefix_len = n, .want = UINT64_MAX};

        xfer_run(fd, &x, WAIT_MS);
        assert_true(x.eof || x.error == ECONNRESET || x.error == EPIPE);
        assert_int_equal(x.received, 0);
}

static void test_unknown_sni_closed(void **state)
{
        static const uint8_t http[] = "GET / HTTP/1.1\r\nHost: example.com\r\n\r\n";
        struct fx f;
        int fd;

        fx_start(&f, NULL);
        table_put(f.table, "w1", "example.com", PROXY_ROUTE_PASSTHROUGH, &f.backend->port, 1);

        fd = connect_loopback(f.port);
        expect_closed_silently(fd, cap_curl, sizeof(cap_curl)); /* www.example.com */
        close(fd);
        fd = connect_loopback(f.port);
        expect_closed_silently(fd, cap_openssl_nosni, sizeof(cap_openssl_nosni));
        close(fd);
        fd = connect_loopback(f.port);
        expect_closed_silently(fd, http, sizeof(http) - 1);
        close(fd);

        /* A terminating route without a TLS context (none configured):
         * closed, not relayed. */
        table_put(f.table, "w2", "www.example.com", PROXY_ROUTE_TERMINATE, &f.backend->port, 1);
        fd = connect_loopback(f.port);
        expect_closed_silently(fd, cap_curl, sizeof(cap_curl));
        close(fd);

        wait_idle(&f);
        assert_int_equal(closed(&f, PROXY_CLOSE_UNKNOWN_SNI), 1);
        assert_int_equal(closed(&f, PROXY_CLOSE_NO_SNI), 1);
        assert_int_equal(closed(&f, PROXY_CLOSE_BAD_HELLO), 1);
        assert_int_equal(closed(&f, PROXY_CLOSE_NO_TLS), 1);
        /* Nothing reached the backend. */
        assert_int_equal(atomic_load(&f.backend->n_conns), 0);
        fx_stop(&f);
}

static void test_split_hello(void **state)
{
        _cleanup_(proxy_counters_unrefp) struct proxy_counters *cnt = NULL;
        const size_t cut = 61;
        struct fx f;
        int fd;

        fx_start(&f, NULL);
        table_put(f.table, "w1", "example.com", PROXY_ROUTE_PASSTHROUGH, &f.backend->port, 1);
        cnt = route_counters(f.table, "w1");

        fd = connect_loopback(f.port);
        write_all(fd, cap_openssl_sni, cut);
        sleep_ms(50);
        struct xfer x = {.prefix = cap_openssl_sni + cut,
                         .prefix_len = sizeof(cap_openssl_sni) - cut,
                         .gen_len = 5000,
                         .seed = 3,
                         .shut_wr = true,
                         .want = UINT64_MAX};
        xfer_run(fd, &x, 10000);
        assert_true(x.eof);
        assert_int_equal(x.received, sizeof(cap_openssl_sni) + 5000);
        assert_memory_equal(x.head, cap_openssl_sni, sizeof(cap_openssl_sni));
        struct backend_conn *bc = backend_wait_done(f.backend, 0);
        assert_int_equal(bc->received, sizeof(cap_openssl_sni) + 5000);
        assert_memory_equal(bc->head, cap_openssl_sni, sizeof(cap_openssl_sni));
        close(fd);
        wait_idle(&f);
        check_counters(cnt, 1, sizeof(cap_openssl_sni) + 5000, sizeof(cap_openssl_sni) + 5000);
        fx_stop(&f);
}

static void test_handshake_timeout(void **state)
{
        struct proxy_config cfg = {.handshake_timeout_ms = 200};
        struct fx f;
        uint64_t t0;
        int fd;

        fx_start(&f, &cfg);
        table_put(f.table, "w1", "example.com", PROXY_ROUTE_PASSTHROUGH, &f.backend->port, 1);
        fd = connect_loopback(f.port);
        t0 = now_ms();
        expect_closed_silently(fd, cap_openssl_sni, 100);
        note("truncated hello closed after %llu ms\n", (unsigned long long)(now_ms() - t0));
        close(fd);
        wait_idle(&f);
        assert_int_equal(closed(&f, PROXY_CLOSE_HELLO_TIMEOUT), 1);
        assert_int_equal(atomic_load(&f.backend->n_conns), 0);
        fx_stop(&f);
}

static void test_route_delete_closes_only_its_connections(void **state)
{
        _cleanup_(proxy_counters_unrefp) struct proxy_counters *c1 = NULL, *c2 = NULL;
        struct fx f;
        int a, b;

        fx_start(&f, NULL);
        table_put(f.table, "w1", "example.com", PROXY_ROUTE_PASSTHROUGH, &f.backend->port, 1);
        table_put(f.table, "w2", "www.example.com", PROXY_ROUTE_PASSTHROUGH, &f.backend->port, 1);
        c1 = route_counters(f.table, "w1");
        c2 = route_counters(f.table, "w2");

        /* Both relaying: the hello and 100 bytes echoed on each. */
        a = connect_loopback(f.port);
        struct xfer xa = {.prefix = cap_openssl_sni,
                          .prefix_len = sizeof(cap_openssl_sni),
                          .gen_len = 100,
                          .seed = 11,
                          .want = sizeof(cap_openssl_sni) + 100};
        xfer_run(a, &xa, WAIT_MS);
        assert_int_equal(xa.received, xa.want);
        b = connect_loopback(f.port);
        struct xfer xb = {.prefix = cap_curl,
                          .prefix_len = sizeof(cap_curl),
                          .gen_len = 100,
                          .seed = 12,
                          .want = sizeof(cap_curl) + 100};
        xfer_run(b, &xb, WAIT_MS);
        assert_int_equal(xb.received, xb.want);

        table_remove(f.table, "w1");
        proxy_engine_routes_changed(f.engine);

        /* a is closed by the engine... */
        struct xfer xa2 = {.want = UINT64_MAX};
        xfer_run(a, &xa2, WAIT_MS);
        assert_true(xa2.eof || xa2.error == ECONNRESET);
        assert_int_equal(xa2.received, 0);
        close(a);

        /* ... while b keeps streaming, then ends normally. */
        const uint64_t more = 1u << 20;
        struct xfer xb2 = {.gen_len = more, .seed = 13, .shut_wr = true, .want = UINT64_MAX};
        xfer_run(b, &xb2, 30000);
        assert_true(xb2.eof);
        assert_int_equal(xb2.error, 0);
        assert_int_equal(xb2.received, more);
        assert_memory_equal(xb2.sent_md5, xb2.recv_md5, 16);
        close(b);

        wait_idle(&f);
        assert_int_equal(closed(&f, PROXY_CLOSE_ROUTE_REMOVED), 1);
        assert_int_equal(closed(&f, PROXY_CLOSE_DONE), 1);
        /* The removed route counted what it relayed before it went. */
        check_counters(c1, 1, sizeof(cap_openssl_sni) + 100, sizeof(cap_openssl_sni) + 100);
        check_counters(c2, 1, sizeof(cap_curl) + 100 + more, sizeof(cap_curl) + 100 + more);
        fx_stop(&f);
}

static void test_connect_failover(void **state)
{
        _cleanup_(proxy_counters_unrefp) struct proxy_counters *cnt = NULL;
        struct proxy_engine_stats st;
        uint16_t ports[2], dead;
        struct fx f;
        int fd;

        /* A port nobody listens on: bind, learn it, close. */
        fd = listen_loopback(&dead);
        close(fd);

        fx_start(&f, NULL);
        ports[0] = dead;
        ports[1] = f.backend->port;
        table_put(f.table, "w1", "example.com", PROXY_ROUTE_PASSTHROUGH, ports, 2);
        cnt = route_counters(f.table, "w1");
        /* Round robin starts once at each backend: one of the
         * connections meets the dead one first and moves on; it is down
         * from then on, so the others do not try it (backend health). */
        for (unsigned i = 0; i < 4; i++) {
                fd = connect_loopback(f.port);
                echo_roundtrip(&f, fd, cap_openssl_sni, sizeof(cap_openssl_sni), 10, i);
                close(fd);
        }
        wait_idle(&f);
        proxy_engine_stats(f.engine, &st);
        assert_int_equal(st.connect_errors, 1);
        check_counters(cnt, 4, 4 * (sizeof(cap_openssl_sni) + 10),
                       4 * (sizeof(cap_openssl_sni) + 10));
        {
                struct proxy_counters_values v;

                proxy_counters_read(cnt, &v);
                assert_int_equal(v.backend_failures[PROXY_BACKEND_FAIL_CONNECT], 1);
        }

        /* Every backend dead (and down: the update kept it): closed at
         * once, without another attempt. */
        table_put(f.table, "w1", "example.com", PROXY_ROUTE_PASSTHROUGH, &dead, 1);
        fd = connect_loopback(f.port);
        expect_closed_silently(fd, cap_openssl_sni, sizeof(cap_openssl_sni));
        close(fd);
        wait_idle(&f);
        assert_int_equal(closed(&f, PROXY_CLOSE_CONNECT_FAILED), 1);
        proxy_engine_stats(f.engine, &st);
        assert_int_equal(st.connect_errors, 1);
        fx_stop(&f);
}

static void test_max_conns_pauses_accept(void **state)
{
        struct proxy_config cfg = {.workers = 1, .max_conns_per_worker = 1};
        struct fx f;
        int a, b;

        fx_start(&f, &cfg);
        table_put(f.table, "w1", "example.com", PROXY_ROUTE_PASSTHROUGH, &f.backend->port, 1);
        a = connect_loopback(f.port);
        struct xfer xa = {.prefix = cap_openssl_sni,
                          .prefix_len = sizeof(cap_openssl_sni),
                          .want = sizeof(cap_openssl_sni)};
        xfer_run(a, &xa, WAIT_MS);
        assert_int_equal(xa.received, xa.want);

        /* The kernel completes b's handshake, but the engine does not take
         * it while a is open. */
        b = connect_loopback(f.port);
        write_all(b, cap_openssl_sni, sizeof(cap_openssl_sni));
        sleep_ms(200);
        assert_int_equal(atomic_load(&f.backend->n_conns), 1);

        close(a);
        struct xfer xb = {.shut_wr = true, .want = UINT64_MAX};
        xfer_run(b, &xb, WAIT_MS);
        assert_true(xb.eof);
        assert_int_equal(xb.received, sizeof(cap_openssl_sni));
        close(b);
        wait_idle(&f);
        fx_stop(&f);
}

/* Half-close: after the client's EOF reached the backend, the backend
 * still sends (a trailer), and the client gets it before the EOF. */
static void test_half_close(void **state)
{
        static const char trailer[] = "bye after your EOF";
        struct fx f;
        int fd;

        fx_start(&f, NULL);
        f.backend->trailer = trailer;
        table_put(f.table, "w1", "example.com", PROXY_ROUTE_PASSTHROUGH, &f.backend->port, 1);
        fd = connect_loopback(f.port);
        struct xfer x = {.prefix = cap_openssl_sni,
                         .prefix_len = sizeof(cap_openssl_sni),
                         .gen_len = 100,
                         .seed = 5,
                         .shut_wr = true,
                         .want = UINT64_MAX};
        xfer_run(fd, &x, WAIT_MS);
        assert_true(x.eof);
        assert_int_equal(x.received, sizeof(cap_openssl_sni) + 100 + strlen(trailer));
        assert_memory_equal(x.head + sizeof(cap_openssl_sni) + 100, trailer, strlen(trailer));
        close(fd);
        wait_idle(&f);
        assert_int_equal(closed(&f, PROXY_CLOSE_DONE), 1);
        fx_stop(&f);
}

static void test_idle_timeout(void **state)
{
        struct proxy_config cfg = {.idle_timeout_ms = 300};
        struct fx f;
        uint64_t t0;
        int fd;

        fx_start(&f, &cfg);
        table_put(f.table, "w1", "example.com", PROXY_ROUTE_PASSTHROUGH, &f.backend->port, 1);
        fd = connect_loopback(f.port);
        struct xfer x = {.prefix = cap_openssl_sni,
                         .prefix_len = sizeof(cap_openssl_sni),
                         .want = sizeof(cap_openssl_sni)};
        xfer_run(fd, &x, WAIT_MS);
        assert_int_equal(x.received, x.want);
        /* Traffic keeps it open past the timeout... */
        for (unsigned i = 0; i < 4; i++) {
                struct xfer y = {.gen_len = 10, .seed = 9, .want = 10};

                sleep_ms(150);
                xfer_run(fd, &y, WAIT_MS);
                assert_int_equal(y.received, 10);
        }
        /* ... silence closes it. */
        t0 = now_ms();
        struct xfer z = {.want = UINT64_MAX};
        xfer_run(fd, &z, WAIT_MS);
        assert_true(z.eof || z.error == ECONNRESET);
        note("idle connection closed after %llu ms\n", (unsigned long long)(now_ms() - t0));
        close(fd);
        wait_idle(&f);
        assert_int_equal(closed(&f, PROXY_CLOSE_IDLE_TIMEOUT), 1);
        fx_stop(&f);
}

/* Stop closes handshaking connections at once and relayed ones at the
 * stop deadline; it returns within that bound with clean loops. */
static void test_graceful_stop(void **state)
{
        struct proxy_config cfg = {.stop_timeout_ms = 300};
        struct proxy_engine_stats st;
        struct fx f;
        uint64_t t0, ms;
        int a, b;

        fx_start(&f, &cfg);
        table_put(f.table, "w1", "example.com", PROXY_ROUTE_PASSTHROUGH, &f.backend->port, 1);
        a = connect_loopback(f.port);
        struct xfer x = {.prefix = cap_openssl_sni,
                         .prefix_len = sizeof(cap_openssl_sni),
                         .want = sizeof(cap_openssl_sni)};
        xfer_run(a, &x, WAIT_MS);
        assert_int_equal(x.received, x.want);
        b = connect_loopback(f.port);
        write_all(b, cap_openssl_sni, 10);
        /* Wait until the engine has b. */
        for (uint64_t end = now_ms() + WAIT_MS;;) {
                proxy_engine_stats(f.engine, &st);
                if (st.accepted == 2)
                        break;
                assert_true(now_ms() < end);
                sleep_ms(2);
        }

        t0 = now_ms();
        assert_int_equal(proxy_engine_stop(f.engine), 0);
        ms = now_ms() - t0;
        note("stop with one relayed connection took %llu ms\n", (unsigned long long)ms);
        assert_true(ms >= 250 && ms < 3000);
        proxy_engine_stats(f.engine, &st);
        assert_int_equal(st.active, 0);
        assert_int_equal(st.closed[PROXY_CLOSE_STOP], 2);
        struct xfer za = {.want = UINT64_MAX}, zb = {.want = UINT64_MAX};
        xfer_run(a, &za, WAIT_MS);
        xfer_run(b, &zb, WAIT_MS);
        assert_true(za.eof || za.error == ECONNRESET);
        assert_true(zb.eof || zb.error == ECONNRESET);
        close(a);
        close(b);
        fx_stop(&f);
}

static void test_big_transfer(void **state)
{
        _cleanup_(proxy_counters_unrefp) struct proxy_counters *cnt = NULL;
        const uint64_t n = 20u << 20;
        struct fx f;
        long hwm0, hwm1;
        uint64_t t0, ms;
        int fd;

        fx_start(&f, NULL);
        table_put(f.table, "w1", "example.com", PROXY_ROUTE_PASSTHROUGH, &f.backend->port, 1);
        cnt = route_counters(f.table, "w1");

        hwm0 = vm_hwm_kib();
        t0 = now_ms();
        fd = connect_loopback(f.port);
        echo_roundtrip(&f, fd, cap_openssl_sni, sizeof(cap_openssl_sni), n, 0);
        ms = now_ms() - t0;
        close(fd);
        hwm1 = vm_hwm_kib();
        note("20 MiB each way in %llu ms; VmHWM %ld -> %ld KiB\n", (unsigned long long)ms, hwm0,
             hwm1);
#ifndef SANITIZED
        /* Unbounded buffering of a 20 MiB echo would show here; the relay
         * holds at most two 16 KiB buffers. Generous for allocator noise. */
        assert_true(hwm1 - hwm0 < 8 * 1024);
#endif
        wait_idle(&f);
        check_counters(cnt, 1, sizeof(cap_openssl_sni) + n, sizeof(cap_openssl_sni) + n);
        fx_stop(&f);
}

/* A client that writes but does not read: every buffer fills up and the
 * relay stops reading instead of buffering; then it all drains intact. */
static void test_backpressure_slow_reader(void **state)
{
        _cleanup_(proxy_counters_unrefp) struct proxy_counters *cnt = NULL;
        const uint64_t n = 64u << 20;
        struct fx f;
        long hwm0, hwm1;
        int fd;

        fx_start(&f, NULL);
        table_put(f.table, "w1", "example.com", PROXY_ROUTE_PASSTHROUGH, &f.backend->port, 1);
        cnt = route_counters(f.table, "w1");
        hwm0 = vm_hwm_kib();
        fd = connect_loopback(f.port);
        struct xfer x = {.prefix = cap_openssl_sni,
                         .prefix_len = sizeof(cap_openssl_sni),
                         .gen_len = n,
                         .seed = 21,
                         .shut_wr = true,
                         .want = UINT64_MAX,
                         .stall = true};
        xfer_run(fd, &x, 60000);
        hwm1 = vm_hwm_kib();
        note("stalled after %llu of %llu bytes; VmHWM %ld -> %ld KiB\n",
             (unsigned long long)x.stalled_at, (unsigned long long)x.sent, hwm0, hwm1);
        assert_true(x.stalled_at < x.sent);
        assert_true(x.eof);
        assert_int_equal(x.received, x.sent);
        assert_memory_equal(x.sent_md5, x.recv_md5, 16);
#ifndef SANITIZED
        assert_true(hwm1 - hwm0 < 8 * 1024);
#endif
        close(fd);
        wait_idle(&f);
        check_counters(cnt, 1, x.sent, x.sent);
        fx_stop(&f);
}

static void test_config_rejected(void **state)
{
        struct proxy_route_table *t;
        struct proxy_engine *e = NULL;
        struct proxy_config cfg = {.https_fd = -1, .http_fd = -1};

        assert_int_equal(proxy_route_table_new(&t), 0);
        assert_int_equal(proxy_engine_new(&cfg, t, &e), -EINVAL);
        cfg.https_fd = 0;
        cfg.relay_buf_size = 1;
        assert_int_equal(proxy_engine_new(&cfg, t, &e), -EINVAL);
        cfg.relay_buf_size = 0;
        cfg.max_head = 100;
        assert_int_equal(proxy_engine_new(&cfg, t, &e), -EINVAL);
        cfg.max_head = 0;
        cfg.max_headers = 1u << 20;
        assert_int_equal(proxy_engine_new(&cfg, t, &e), -EINVAL);
        assert_null(e);
        assert_string_equal(proxy_close_reason_str(PROXY_CLOSE_ROUTE_REMOVED), "route-removed");
        assert_string_equal(proxy_conn_state_str(PROXY_CONN_ST_RELAY), "relay");
        assert_null(proxy_conn_state_str(_PROXY_CONN_ST_MAX));
        proxy_route_table_free(t);
}

/* ---- issue 10: descriptor exhaustion ---- */

static void test_issue_10_fd_share(void **state)
{
        struct proxy_route_table *t;
        struct proxy_engine *e = NULL;
        struct proxy_config cfg = {.https_fd = 0, .http_fd = -1, .workers = 2};
        struct rlimit old, low;

        assert_int_equal(proxy_route_table_new(&t), 0);
        /* Too few for the workers: refused, not a worker with no room. */
        cfg.max_fds = 2 * PROXY_ENGINE_MIN_WORKER_FDS - 1;
        assert_int_equal(proxy_engine_new(&cfg, t, &e), -EMFILE);
        assert_null(e);

        /* Each worker: its share minus its own descriptors, two per connection. */
        cfg.max_fds = 2 * (PROXY_ENGINE_WORKER_FDS + 100);
        assert_int_equal(proxy_engine_new(&cfg, t, &e), 0);
        assert_int_equal(proxy_engine_max_conns(e), 50);
        assert_int_equal(proxy_engine_max_fds(e), cfg.max_fds);
        e = proxy_engine_free(e);
        /* A smaller explicit limit is kept, a larger one cut to the share. */
        cfg.max_conns_per_worker = 10;
        assert_int_equal(proxy_engine_new(&cfg, t, &e), 0);
        assert_int_equal(proxy_engine_max_conns(e), 10);
        e = proxy_engine_free(e);
        cfg.max_conns_per_worker = 1000;
        assert_int_equal(proxy_engine_new(&cfg, t, &e), 0);
        assert_int_equal(proxy_engine_max_conns(e), 50);
        e = proxy_engine_free(e);

        /* Unset: the soft RLIMIT_NOFILE minus the default reserve. */
        assert_int_equal(getrlimit(RLIMIT_NOFILE, &old), 0);
        low = old;
        low.rlim_cur = MIN(old.rlim_max, 1000);
        assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
        cfg.max_fds = 0;
        cfg.max_conns_per_worker = 0;
        assert_int_equal(proxy_engine_new(&cfg, t, &e), 0);
        assert_int_equal(setrlimit(RLIMIT_NOFILE, &old), 0);
        assert_int_equal(proxy_engine_max_fds(e), low.rlim_cur - PROXY_ENGINE_FD_RESERVE);
        assert_int_equal(proxy_engine_max_conns(e),
                         ((low.rlim_cur - PROXY_ENGINE_FD_RESERVE) / 2 - PROXY_ENGINE_WORKER_FDS) /
                                 2);
        e = proxy_engine_free(e);
        proxy_route_table_free(t);
}

/* The backend pool per backend: unset, no bound of its own (it grows with
 * demand within the worker's descriptors, see test-upstream.c); a bound is
 * kept, and one above the worker's connection limit is cut to it. */
static void test_pool_bound_derived(void **state)
{
        struct proxy_config cfg = {.https_fd = 0, .http_fd = -1, .workers = 2};
        struct proxy_config c;
        unsigned fds;

        cfg.max_fds = 2 * (PROXY_ENGINE_WORKER_FDS + 1000);
        assert_int_equal(proxy_config_resolve(&cfg, &c, &fds), 0);
        assert_int_equal(c.max_conns_per_worker, 500);
        assert_int_equal(c.upstream_idle_max, 0);
        cfg.upstream_idle_max = 20;
        assert_int_equal(proxy_config_resolve(&cfg, &c, &fds), 0);
        assert_int_equal(c.upstream_idle_max, 20);
        cfg.upstream_idle_max = 1u << 30;
        assert_int_equal(proxy_config_resolve(&cfg, &c, &fds), 0);
        assert_int_equal(c.upstream_idle_max, 500);
}

static uint64_t cpu_us(void)
{
        struct rusage ru;

        assert_int_equal(getrusage(RUSAGE_SELF, &ru), 0);
        return (uint64_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000 +
               (uint64_t)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
}

/* accept4() failing with EMFILE pauses the listener and retries from a
 * timer (no busy loop, and the clients are not dropped the way libuv's
 * spare-descriptor trick drops them), and the connections that waited in
 * the kernel's queue are served as soon as descriptors are free again. */
static void test_issue_10_emfile_pauses_accept(void **state)
{
        static const char get[] = "GET / HTTP/1.1\r\nHost: nowhere.test\r\n\r\n";
        struct proxy_config cfg = {.workers = 1};
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        struct rlimit old, low;
        int fill[1024];
        unsigned n_fill = 0;
        uint64_t b0, cpu0, cpu, end;
        uint16_t port80;
        struct fx f;
        char resp[64] = "";
        int a, b;

        cfg.http_fd = listen_loopback(&port80);
        fx_start(&f, &cfg);
        close(cfg.http_fd);
        table_put(f.table, "w1", "example.com", PROXY_ROUTE_PASSTHROUGH, &f.backend->port, 1);

        /* The clients' sockets first: they live in this process too. Then
         * every other descriptor is taken, and only then they connect. */
        a = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        b = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        assert_true(a >= 0 && b >= 0);
        assert_int_equal(getrlimit(RLIMIT_NOFILE, &old), 0);
        low = old;
        low.rlim_cur = MIN(old.rlim_cur, 1024);
        assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
        for (int fd; (fd = fcntl(0, F_DUPFD_CLOEXEC, 0)) >= 0;) {
                assert_true(n_fill < ELEMENTSOF(fill));
                fill[n_fill++] = fd;
        }
        assert_int_equal(errno, EMFILE);

        b0 = engine_stats(f.engine).accept_backoffs;
        sa.sin_port = htons(f.port);
        assert_int_equal(connect(a, (struct sockaddr *)&sa, sizeof(sa)), 0);
        sa.sin_port = htons(port80);
        assert_int_equal(connect(b, (struct sockaddr *)&sa, sizeof(sa)), 0);
        write_all(a, cap_openssl_sni, sizeof(cap_openssl_sni));
        write_all(b, get, strlen(get));
        end = now_ms() + WAIT_MS;
        while (engine_stats(f.engine).accept_backoffs < b0 + 2) {
                assert_true(now_ms() < end);
                sleep_ms(2);
        }

        /* Paused, not spinning: a few retries in half a second, little CPU. */
        b0 = engine_stats(f.engine).accept_backoffs;
        cpu0 = cpu_us();
        sleep_ms(500);
        cpu = cpu_us() - cpu0;
        b0 = engine_stats(f.engine).accept_backoffs - b0;
        note("exhausted for 500 ms: %" PRIu64 " us of CPU, %" PRIu64 " accept retries\n", cpu, b0);
        assert_true(cpu < 100000);
        assert_true(b0 <= 2 * (500 / 100 + 2));
        assert_int_equal(engine_stats(f.engine).accepted, 0);

        while (n_fill > 0)
                close(fill[--n_fill]);
        assert_int_equal(setrlimit(RLIMIT_NOFILE, &old), 0);

        /* Both waited in the queue and are served now. */
        struct xfer xa = {.want = sizeof(cap_openssl_sni)};
        xfer_run(a, &xa, WAIT_MS);
        assert_int_equal(xa.received, sizeof(cap_openssl_sni));
        assert_memory_equal(xa.head, cap_openssl_sni, sizeof(cap_openssl_sni));
        for (size_t n = 0; n < 12;) {
                ssize_t k = read(b, resp + n, 12 - n);

                assert_true(k > 0);
                n += (size_t)k;
        }
        assert_memory_equal(resp, "HTTP/1.1 404", 12);
        close(a);
        close(b);
        wait_idle(&f);
        fx_stop(&f);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_config_rejected),
                cmocka_unit_test(test_passthrough_echo),
                cmocka_unit_test(test_unknown_sni_closed),
                cmocka_unit_test(test_split_hello),
                cmocka_unit_test(test_handshake_timeout),
                cmocka_unit_test(test_route_delete_closes_only_its_connections),
                cmocka_unit_test(test_connect_failover),
                cmocka_unit_test(test_max_conns_pauses_accept),
                cmocka_unit_test(test_half_close),
                cmocka_unit_test(test_idle_timeout),
                cmocka_unit_test(test_graceful_stop),
                cmocka_unit_test(test_big_transfer),
                cmocka_unit_test(test_backpressure_slow_reader),
                cmocka_unit_test(test_issue_10_fd_share),
                cmocka_unit_test(test_pool_bound_derived),
                cmocka_unit_test(test_issue_10_emfile_pauses_accept),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
