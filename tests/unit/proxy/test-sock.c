/* SPDX-License-Identifier: Apache-2.0 */
/* The socket object on a real loop (proxy/ev.h) over socketpairs and
 * loopback: replayed bytes first, gathered writes and backpressure, a
 * server-side TLS handshake fed a peeked prefix, close_notify on an orderly
 * close, deferred freeing, and non-blocking connects. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <uv.h>

#include "common/macros.h"
#include "proxy-test.h"
#include "proxy/ev.h"
#include "proxy/sock.h"
#include "proxy/tls.h"
#include "ssl/ssl-util.h"

struct fx {
        uv_loop_t loop;
        struct ev ev;
        unsigned n_events;
        unsigned last_events;
        bool freed;
};

static void on_sock(struct sock *s, unsigned events)
{
        struct fx *f = s->data;

        f->n_events++;
        f->last_events = events;
}

static void on_freed(void *data)
{
        struct fx *f = data;

        f->freed = true;
}

static void fx_init(struct fx *f)
{
        uint64_t durs[1] = {1000};

        memset(f, 0, sizeof(*f));
        assert_int_equal(uv_loop_init(&f->loop), 0);
        assert_int_equal(ev_init(&f->ev, &f->loop, durs, 1), 0);
}

static void on_stopped(struct ev *ev, void *ud)
{
}

static void fx_done(struct fx *f)
{
        ev_stop(&f->ev, on_stopped, NULL);
        assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
        ev_done(&f->ev);
        assert_int_equal(uv_loop_close(&f->loop), 0);
}

static void pair(int sp[2])
{
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sp), 0);
}

/* Replayed bytes come before the socket's; EOF is reported once. */
static void test_replay_then_socket(void **state)
{
        struct fx f;
        struct sock *s;
        char buf[64];
        int sp[2];

        fx_init(&f);
        pair(sp);
        assert_int_equal(sock_new(&f.ev, sp[0], on_sock, &f, &s), 0);
        assert_int_equal(sock_replay(s, (const uint8_t *)"peeked ", 7), 0);
        assert_true(sock_buffered(s));
        assert_int_equal(write(sp[1], "live", 4), 4);
        assert_int_equal(sock_read(s, buf, 3), 3);
        assert_memory_equal(buf, "pee", 3);
        assert_int_equal(sock_read(s, buf, sizeof(buf)), 4);
        assert_memory_equal(buf, "ked ", 4);
        assert_false(sock_buffered(s));
        /* Nothing was announced yet: the event says the socket has bytes. */
        assert_int_equal(sock_want(s, true), 0);
        (void)uv_run(&f.loop, UV_RUN_NOWAIT);
        assert_true(f.n_events >= 1 && (f.last_events & EV_READ));
        assert_true(s->rd_ready);
        assert_int_equal(sock_read(s, buf, sizeof(buf)), 4);
        assert_memory_equal(buf, "live", 4);
        /* A short read drained the socket. */
        assert_false(s->rd_ready);
        close(sp[1]);
        s->rd_ready = true;
        assert_int_equal(sock_read(s, buf, sizeof(buf)), 0);
        assert_true(s->eof);
        sock_close(s, true, on_freed);
        assert_false(f.freed); /* from the reap */
        fx_done(&f);
        assert_true(f.freed);
}

/* A gathered write goes out whole; a full socket buffer sets wr_blocked,
 * and EV_WRITE clears it once the peer read. */
static void test_write_backpressure(void **state)
{
        static uint8_t big[1 << 20];
        struct fx f;
        struct sock *s;
        struct iovq q;
        uint64_t counted = 0;
        char buf[64];
        int sp[2], small = 4096;

        fx_init(&f);
        pair(sp);
        assert_int_equal(setsockopt(sp[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof(small)), 0);
        assert_int_equal(sock_new(&f.ev, sp[0], on_sock, &f, &s), 0);
        iovq_reset(&q);
        iovq_add(&q, "one ", 4);
        iovq_add(&q, "two ", 4);
        iovq_add(&q, "three", 5);
        assert_int_equal(sock_write(s, &q, &counted), 0);
        assert_int_equal(q.left, 0);
        assert_int_equal(counted, 13);
        assert_int_equal(read(sp[1], buf, sizeof(buf)), 13);
        assert_memory_equal(buf, "one two three", 13);

        iovq_add(&q, big, sizeof(big));
        assert_int_equal(sock_write(s, &q, &counted), 0);
        assert_true(q.left > 0);
        assert_true(s->wr_blocked);
        assert_int_equal(counted, 13 + sizeof(big) - q.left);
        assert_int_equal(sock_want(s, false), 0);
        assert_int_equal(s->h.events, EV_WRITE);
        while (read(sp[1], big, sizeof(big)) > 0)
                ;
        (void)uv_run(&f.loop, UV_RUN_NOWAIT);
        assert_true(f.last_events & EV_WRITE);
        assert_false(s->wr_blocked);
        sock_close(s, false, NULL);
        close(sp[1]);
        fx_done(&f);
}

/* ---- TLS ---- */

/* Step the client and the loop until @done(client) or a bound. */
static bool pump(struct fx *f, struct sock *s, SSL *cl, bool (*done)(SSL *cl, struct sock *s))
{
        for (unsigned i = 0; i < 2000; i++) {
                if (done(cl, s))
                        return true;
                (void)uv_run(&f->loop, UV_RUN_NOWAIT);
                if (s->ssl && !s->tls_done) {
                        int r = sock_handshake(s);

                        assert_true(r >= 0);
                        assert_int_equal(sock_want(s, true), 0);
                }
                usleep(200);
        }
        return false;
}

static bool both_done(SSL *cl, struct sock *s)
{
        int r = SSL_do_handshake(cl);

        if (r != 1)
                assert_int_equal(SSL_get_error(cl, r), SSL_ERROR_WANT_READ);
        return r == 1 && s->tls_done;
}

/* The first bytes of the ClientHello were read by someone else (the :443
 * front): replayed into the TLS stack, the handshake completes; then
 * plaintext goes both ways, gathered into one record with the buffers
 * lent, and an orderly close sends close_notify. */
static void test_tls_replayed_hello(void **state)
{
        _cleanup_(proxy_tls_freep) struct proxy_tls *t = NULL;
        _cleanup_(proxy_cert_unrefp) struct proxy_cert *cert = make_cert("s.test", "DNS:s.test", 1);
        _cleanup_(SSL_CTX_freep) SSL_CTX *cctx = SSL_CTX_new(TLS_method());
        _cleanup_(SSL_freep) SSL *cl = NULL;
        static uint8_t rin[SOCK_TLS_RIN_CAP], tx[SOCK_TLS_TX_CAP];
        struct sock_tlsbuf tb = {.rin = rin, .tx = tx};
        struct fx f;
        struct sock *s;
        SSL *ssl;
        uint8_t peek[64];
        char buf[64];
        struct iovq q;
        ssize_t k;
        int sp[2];

        fx_init(&f);
        pair(sp);
        assert_int_equal(proxy_tls_new(&t), 0);
        cl = SSL_new(cctx);
        assert_non_null(cl);
        assert_true(SSL_set_fd(cl, sp[1]));
        SSL_set_connect_state(cl);
        assert_true(SSL_set_tlsext_host_name(cl, "s.test"));
        assert_int_equal(SSL_do_handshake(cl), -1); /* the hello is sent */
        k = read(sp[0], peek, sizeof(peek));
        assert_int_equal(k, sizeof(peek));

        assert_int_equal(sock_new(&f.ev, sp[0], on_sock, &f, &s), 0);
        assert_int_equal(proxy_tls_new_ssl(t, cert, &ssl), 0);
        assert_int_equal(sock_tls_accept(s, ssl), 0);
        assert_int_equal(sock_replay(s, peek, (size_t)k), 0);
        s->rd_ready = true;
        assert_true(pump(&f, s, cl, both_done));

        sock_tls_lend(s, &tb);
        assert_int_equal(SSL_write(cl, "ping", 4), 4);
        s->rd_ready = true;
        for (unsigned i = 0; i < 100 && (k = sock_read(s, buf, sizeof(buf))) == -EAGAIN; i++)
                usleep(1000), s->rd_ready = true;
        assert_int_equal(k, 4);
        assert_memory_equal(buf, "ping", 4);

        iovq_reset(&q);
        iovq_add(&q, "po", 2);
        iovq_add(&q, "ng", 2);
        assert_int_equal(sock_write(s, &q, NULL), 0);
        assert_int_equal(q.left, 0);
        /* Gathered: one record, so one SSL_read() gets all of it. */
        assert_int_equal(SSL_read(cl, buf, sizeof(buf)), 4);
        assert_memory_equal(buf, "pong", 4);

        sock_tls_lend(s, NULL);
        sock_close(s, true, NULL);
        assert_int_equal(SSL_read(cl, buf, sizeof(buf)), 0);
        assert_int_equal(SSL_get_error(cl, 0), SSL_ERROR_ZERO_RETURN);
        close(sp[1]);
        fx_done(&f);
}

/* A failed handshake (not TLS at all) is -EPROTO, not a crash. */
static void test_tls_garbage(void **state)
{
        _cleanup_(proxy_tls_freep) struct proxy_tls *t = NULL;
        _cleanup_(proxy_cert_unrefp) struct proxy_cert *cert = make_cert("s.test", "DNS:s.test", 1);
        struct fx f;
        struct sock *s;
        SSL *ssl;
        int sp[2];

        fx_init(&f);
        pair(sp);
        assert_int_equal(proxy_tls_new(&t), 0);
        assert_int_equal(sock_new(&f.ev, sp[0], on_sock, &f, &s), 0);
        assert_int_equal(proxy_tls_new_ssl(t, cert, &ssl), 0);
        assert_int_equal(sock_tls_accept(s, ssl), 0);
        assert_int_equal(sock_replay(s, (const uint8_t *)"GET / HTTP/1.1\r\n\r\n", 18), 0);
        assert_int_equal(sock_handshake(s), -EPROTO);
        assert_false(s->tls_done);
        /* Not orderly: no close_notify for a connection that never was. */
        sock_close(s, true, NULL);
        close(sp[1]);
        fx_done(&f);
}

/* ---- connecting ---- */

static void test_connect(void **state)
{
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        socklen_t len = sizeof(a);
        struct fx f;
        struct sock *s;
        int lfd, fd;

        fx_init(&f);
        lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        assert_true(lfd >= 0);
        assert_int_equal(bind(lfd, (struct sockaddr *)&a, sizeof(a)), 0);
        assert_int_equal(listen(lfd, 8), 0);
        assert_int_equal(getsockname(lfd, (struct sockaddr *)&a, &len), 0);

        fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        assert_int_equal(sock_new(&f.ev, fd, on_sock, &f, &s), 0);
        assert_int_equal(sock_connect(s, (struct sockaddr *)&a, sizeof(a)), 0);
        if (s->connecting) {
                assert_int_equal(sock_want(s, false), 0);
                assert_int_equal(s->h.events, EV_WRITE);
                for (unsigned i = 0; i < 1000 && !s->connect_event; i++)
                        (void)uv_run(&f.loop, UV_RUN_ONCE);
                assert_true(s->connect_event);
                assert_int_equal(sock_connect_result(s), 0);
                assert_false(s->connecting);
        }
        sock_close(s, false, NULL);

        /* Nobody listens any more: refused, reported by the result. */
        close(lfd);
        fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        assert_int_equal(sock_new(&f.ev, fd, on_sock, &f, &s), 0);
        int r = sock_connect(s, (struct sockaddr *)&a, sizeof(a));
        if (r == 0) {
                assert_true(s->connecting);
                assert_int_equal(sock_want(s, false), 0);
                for (unsigned i = 0; i < 1000 && !s->connect_event; i++)
                        (void)uv_run(&f.loop, UV_RUN_ONCE);
                r = sock_connect_result(s);
        }
        assert_int_equal(r, -ECONNREFUSED);
        sock_close(s, false, NULL);
        fx_done(&f);
}

static void test_peer_str(void **state)
{
        struct sockaddr_storage ss = {0};
        struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
        struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
        struct sock s = {0};
        char buf[INET6_ADDRSTRLEN];

        a4->sin_family = AF_INET;
        a4->sin_addr.s_addr = htonl(0x0a00fe01);
        sock_set_peer(&s, &ss);
        sock_peer_str(&s, buf, sizeof(buf));
        assert_string_equal(buf, "10.0.254.1");
        memset(&ss, 0, sizeof(ss));
        a6->sin6_family = AF_INET6;
        assert_int_equal(inet_pton(AF_INET6, "::ffff:192.0.2.7", &a6->sin6_addr), 1);
        sock_set_peer(&s, &ss);
        sock_peer_str(&s, buf, sizeof(buf));
        assert_string_equal(buf, "192.0.2.7");
        assert_int_equal(inet_pton(AF_INET6, "2001:db8::1", &a6->sin6_addr), 1);
        sock_set_peer(&s, &ss);
        sock_peer_str(&s, buf, sizeof(buf));
        assert_string_equal(buf, "2001:db8::1");
}

static void test_peer_sockaddr(void **state)
{
        struct sockaddr_storage ss = {0}, out;
        struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
        struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
        const struct sockaddr_in *o4 = (const struct sockaddr_in *)&out;
        const struct sockaddr_in6 *o6 = (const struct sockaddr_in6 *)&out;
        struct sock s = {0};

        /* Nothing recorded: unknown. */
        assert_ptr_equal(sock_peer_sockaddr(&s, &out), (const struct sockaddr *)&out);
        assert_int_equal(out.ss_family, AF_UNSPEC);
        a4->sin_family = AF_INET;
        a4->sin_addr.s_addr = htonl(0xc0000207);
        a4->sin_port = htons(51234);
        sock_set_peer(&s, &ss);
        sock_peer_sockaddr(&s, &out);
        assert_int_equal(out.ss_family, AF_INET);
        assert_int_equal(ntohl(o4->sin_addr.s_addr), 0xc0000207);
        assert_int_equal(ntohs(o4->sin_port), 51234);
        /* A mapped IPv4 address comes back as AF_INET, with its port. */
        memset(&ss, 0, sizeof(ss));
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons(443);
        assert_int_equal(inet_pton(AF_INET6, "::ffff:192.0.2.8", &a6->sin6_addr), 1);
        sock_set_peer(&s, &ss);
        sock_peer_sockaddr(&s, &out);
        assert_int_equal(out.ss_family, AF_INET);
        assert_int_equal(ntohl(o4->sin_addr.s_addr), 0xc0000208);
        assert_int_equal(ntohs(o4->sin_port), 443);
        assert_int_equal(inet_pton(AF_INET6, "2001:db8::1", &a6->sin6_addr), 1);
        a6->sin6_port = htons(1);
        sock_set_peer(&s, &ss);
        sock_peer_sockaddr(&s, &out);
        assert_int_equal(out.ss_family, AF_INET6);
        assert_memory_equal(&o6->sin6_addr, &a6->sin6_addr, 16);
        assert_int_equal(ntohs(o6->sin6_port), 1);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_replay_then_socket),
                cmocka_unit_test(test_peer_sockaddr),
                cmocka_unit_test(test_write_backpressure),
                cmocka_unit_test(test_tls_replayed_hello),
                cmocka_unit_test(test_tls_garbage),
                cmocka_unit_test(test_connect),
                cmocka_unit_test(test_peer_str),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
