/* SPDX-License-Identifier: Apache-2.0 */
/* The byte relay over socketpairs on a real loop: preloaded bytes first,
 * the shared buffer with remainders copied out under backpressure (and the
 * source not read meanwhile), half-close (passthrough) against close on
 * either EOF (WebSocket), exact byte counts, and whose socket failed. */
#include <errno.h>
#include <fcntl.h>
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
#include <uv.h>

#include "common/macros.h"
#include "proxy/ev.h"
#include "proxy/relay.h"
#include "proxy/routes.h"
#include "proxy/sock.h"

struct fx {
        uv_loop_t loop;
        struct ev ev;
        struct sock *client, *backend; /* the relay's ends */
        int c, b;                      /* the test's ends: the client and the backend */
        struct relay r;
        struct proxy_counters *cnt;
        uint8_t shared[1024];
        int result; /* last relay_step() */
        bool progress;
};

static void on_sock(struct sock *s, unsigned events)
{
        struct fx *f = s->data;

        f->result = relay_step(&f->r, &f->progress);
        if (f->result == 0)
                assert_int_equal(relay_poll(&f->r), 0);
}

static void fx_start(struct fx *f, bool half_close)
{
        uint64_t durs[1] = {1000};
        int a[2], b[2];

        memset(f, 0, sizeof(*f));
        assert_int_equal(uv_loop_init(&f->loop), 0);
        assert_int_equal(ev_init(&f->ev, &f->loop, durs, 1), 0);
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, a), 0);
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, b), 0);
        assert_int_equal(sock_new(&f->ev, a[0], on_sock, f, &f->client), 0);
        assert_int_equal(sock_new(&f->ev, b[0], on_sock, f, &f->backend), 0);
        f->c = a[1];
        f->b = b[1];
        assert_int_equal(proxy_counters_new(&f->cnt), 0);
        relay_init(&f->r, f->client, f->backend, f->shared, sizeof(f->shared), f->cnt, half_close);
}

static void on_stopped(struct ev *ev, void *ud)
{
}

static void fx_stop(struct fx *f)
{
        relay_done(&f->r);
        sock_close(f->client, false, NULL);
        sock_close(f->backend, false, NULL);
        ev_stop(&f->ev, on_stopped, NULL);
        assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
        ev_done(&f->ev);
        assert_int_equal(uv_loop_close(&f->loop), 0);
        if (f->c >= 0)
                close(f->c);
        if (f->b >= 0)
                close(f->b);
        proxy_counters_unref(f->cnt);
}

/* One relay step with both sockets marked readable, as after events. */
static int kick(struct fx *f)
{
        f->client->rd_ready = f->backend->rd_ready = true;
        f->result = relay_step(&f->r, &f->progress);
        if (f->result == 0)
                assert_int_equal(relay_poll(&f->r), 0);
        return f->result;
}

static void spin(struct fx *f, unsigned n)
{
        for (unsigned i = 0; i < n; i++)
                (void)uv_run(&f->loop, UV_RUN_NOWAIT);
}

static size_t read_all(int fd, char *buf, size_t size)
{
        size_t n = 0;
        ssize_t k;

        while (n < size && (k = read(fd, buf + n, size - n)) > 0)
                n += (size_t)k;
        return n;
}

/* Preloaded bytes go first; then both ways; bytes counted as written. */
static void test_preload_and_count(void **state)
{
        struct proxy_counters_values v;
        struct fx f;
        char buf[64];
        uint8_t *hello = malloc(5);

        fx_start(&f, true);
        memcpy(hello, "HELLO", 5);
        relay_preload(&f.r, RELAY_UP, hello, 5);
        assert_int_equal(write(f.c, "more", 4), 4);
        assert_int_equal(kick(&f), 0);
        assert_int_equal(read_all(f.b, buf, sizeof(buf)), 9);
        assert_memory_equal(buf, "HELLOmore", 9);
        assert_int_equal(write(f.b, "answer", 6), 6);
        spin(&f, 3);
        assert_int_equal(read_all(f.c, buf, sizeof(buf)), 6);
        assert_memory_equal(buf, "answer", 6);
        relay_done(&f.r);
        proxy_counters_read(f.cnt, &v);
        assert_int_equal(v.request_bytes, 9);
        assert_int_equal(v.response_bytes, 6);
        fx_stop(&f);
}

/* A destination that does not read: what it did not take is copied out of
 * the shared buffer, the source is not read meanwhile (no read interest),
 * and everything arrives, in order, once it reads. */
static void test_backpressure(void **state)
{
        static char big[256 * 1024], got[256 * 1024];
        struct fx f;
        size_t sent = 0, n = 0;
        int small = 4096;

        for (size_t i = 0; i < sizeof(big); i++)
                big[i] = (char)(i * 7 + 3);
        fx_start(&f, true);
        assert_int_equal(setsockopt(f.backend->h.fd, SOL_SOCKET, SO_SNDBUF, &small, sizeof(small)),
                         0);
        /* The client sends until its socket is full. */
        for (;;) {
                ssize_t k = write(f.c, big + sent, sizeof(big) - sent);

                if (k <= 0)
                        break;
                sent += (size_t)k;
        }
        assert_int_equal(kick(&f), 0);
        assert_true(f.r.d[RELAY_UP].len > f.r.d[RELAY_UP].off);
        assert_true(f.r.d[RELAY_UP].owned_rest);
        assert_false(f.client->h.events & EV_READ);
        assert_true(f.backend->h.events & EV_WRITE);
        /* Drain the backend side; the relay moves the rest along. */
        for (unsigned i = 0; i < 100000 && n < sent; i++) {
                ssize_t k = read(f.b, got + n, sizeof(got) - n);

                if (k > 0)
                        n += (size_t)k;
                spin(&f, 1);
        }
        assert_int_equal(n, sent);
        assert_memory_equal(got, big, sent);
        fx_stop(&f);
}

/* Passthrough: one side's EOF is passed on (SHUT_WR), the other direction
 * keeps flowing; done once both were passed on. */
static void test_half_close(void **state)
{
        struct fx f;
        char buf[16];

        fx_start(&f, true);
        assert_int_equal(shutdown(f.c, SHUT_WR), 0);
        assert_int_equal(kick(&f), 0);
        assert_true(f.r.d[RELAY_UP].shut);
        assert_int_equal(read(f.b, buf, sizeof(buf)), 0); /* the EOF arrived */
        assert_int_equal(write(f.b, "late", 4), 4);
        spin(&f, 3);
        assert_int_equal(read(f.c, buf, sizeof(buf)), 4);
        assert_int_equal(f.result, 0);
        close(f.b);
        f.b = -1;
        spin(&f, 3);
        assert_int_equal(f.result, 1);
        fx_stop(&f);
}

/* WebSocket: buffers of its own, either EOF ends it once drained. */
static void test_close_on_eof(void **state)
{
        static uint8_t up[64], down[64];
        struct fx f;
        char buf[16];

        fx_start(&f, false);
        memcpy(up, "xxpipelined", 11);
        relay_own_buffer(&f.r, RELAY_UP, up, sizeof(up), 2, 11);
        relay_own_buffer(&f.r, RELAY_DOWN, down, sizeof(down), 0, 0);
        assert_int_equal(kick(&f), 0);
        assert_int_equal(read(f.b, buf, sizeof(buf)), 9);
        assert_memory_equal(buf, "pipelined", 9);
        assert_int_equal(write(f.b, "bye", 3), 3);
        close(f.b);
        f.b = -1;
        /* A short read means drained; the EOF comes with the next event. */
        assert_int_equal(kick(&f), 0);
        spin(&f, 3);
        assert_int_equal(f.result, 1);
        assert_int_equal(read(f.c, buf, sizeof(buf)), 3);
        fx_stop(&f);
}

/* A write to a backend that went away fails on the backend's side. */
static void test_error_side(void **state)
{
        struct fx f;

        fx_start(&f, true);
        close(f.b);
        f.b = -1;
        assert_int_equal(write(f.c, "x", 1), 1);
        f.client->rd_ready = true;
        f.backend->rd_ready = false;
        assert_true(relay_step(&f.r, &f.progress) < 0);
        assert_int_equal(f.r.err_side, 1);
        fx_stop(&f);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_preload_and_count), cmocka_unit_test(test_backpressure),
                cmocka_unit_test(test_half_close),        cmocka_unit_test(test_close_on_eof),
                cmocka_unit_test(test_error_side),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
