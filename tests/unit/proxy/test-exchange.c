/* SPDX-License-Identifier: Apache-2.0 */
/* The exchange (the backend side of one request) against loopback
 * backends the test plays itself, byte by byte: dial and pool reuse,
 * failover, the 503-vs-502 distinction, the one retry of a failed pooled
 * connection, the response head and body framing into the owner's queue,
 * and the response-head deadline. No client side: the test is the owner. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <uv.h>

#include "proxy-test.h"
#include "proxy/exchange.h"
#include "proxy/health.h"
#include "proxy/upstream.h"

enum { TQ_POOL, TQ_CONNECT, TQ_UPSTREAM, N_TQ };

#define UCAP 4096u

struct fx {
        uv_loop_t loop;
        struct ev ev;
        struct upstream_pool pool;
        struct exch_env env;
        struct proxy_h1_limits limits;
        atomic_uint_least64_t connects, reused, connect_errors;
        struct proxy_route_table *table;
        struct proxy_routes *snap;
        int lfd;
        uint16_t port, dead_port;
        int factory_error;
        unsigned wakes;
        struct exch x;
        uint8_t uin[UCAP];
        struct proxy_h1_header hdrs[32];
};

static int factory(void *ud, const struct proxy_route *r, const struct sockaddr *addr,
                   socklen_t len, int *ret_fd)
{
        struct fx *f = ud;

        if (f->factory_error)
                return f->factory_error;
        return proxy_socket_factory_default(NULL, r, addr, len, ret_fd);
}

static void on_wake(void *owner)
{
        ((struct fx *)owner)->wakes++;
}

static const struct exch_ops ops = {.wake = on_wake};

static void fx_start(struct fx *f, uint64_t upstream_ms)
{
        uint64_t durs[N_TQ] = {[TQ_POOL] = 10000, [TQ_CONNECT] = 2000, [TQ_UPSTREAM] = upstream_ms};
        int dead;

        memset(f, 0, sizeof(*f));
        assert_int_equal(uv_loop_init(&f->loop), 0);
        assert_int_equal(ev_init(&f->ev, &f->loop, durs, N_TQ), 0);
        assert_int_equal(upstream_pool_init(&f->pool,
                                            &(struct upstream_pool_env){
                                                    .ev = &f->ev,
                                                    .factory = factory,
                                                    .factory_ud = f,
                                                    .idle_max = 8,
                                                    .max_total = 100,
                                                    .tq_pool = TQ_POOL,
                                            }),
                         0);
        f->limits =
                (struct proxy_h1_limits){.max_head = 2048, .max_headers = 32, .max_target = 2048};
        f->env = (struct exch_env){.pool = &f->pool,
                                   .tq_connect = TQ_CONNECT,
                                   .tq_upstream = TQ_UPSTREAM,
                                   .limits = &f->limits,
                                   .st_connects = &f->connects,
                                   .st_reused = &f->reused,
                                   .st_connect_errors = &f->connect_errors};
        exch_init(&f->x, &f->env, &ops, f, f->uin, UCAP, f->hdrs, 32);
        f->lfd = listen_loopback(&f->port);
        /* A port nobody listens on: bind, read the port, close. */
        dead = listen_loopback(&f->dead_port);
        close(dead);
        assert_int_equal(proxy_route_table_new(&f->table), 0);
}

static struct proxy_route *route_to(struct fx *f, const uint16_t *ports, size_t n)
{
        table_put_ip(f->table, "w1", "a.test", PROXY_ROUTE_TERMINATE, INADDR_LOOPBACK, ports, n,
                     NULL);
        proxy_routes_unref(f->snap);
        f->snap = proxy_routes_acquire(f->table);
        return proxy_routes_lookup_id(f->snap, "w1");
}

static void on_stopped(struct ev *ev, void *ud)
{
}

static void fx_stop(struct fx *f)
{
        exch_abort(&f->x);
        upstream_pool_close_idle(&f->pool);
        while (f->pool.n_open > 0)
                (void)uv_run(&f->loop, UV_RUN_NOWAIT);
        upstream_pool_done(&f->pool);
        ev_stop(&f->ev, on_stopped, NULL);
        assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
        ev_done(&f->ev);
        assert_int_equal(uv_loop_close(&f->loop), 0);
        proxy_routes_unref(f->snap);
        proxy_route_table_free(f->table);
        close(f->lfd);
}

/* Run the loop until exch_connect() is done with a connect in progress. */
static int connect_wait(struct fx *f)
{
        int r;

        while ((r = exch_connect(&f->x)) == 0) {
                assert_int_equal(exch_poll(&f->x, false), 0);
                (void)uv_run(&f->loop, UV_RUN_ONCE);
        }
        return r;
}

static int accept_backend(struct fx *f)
{
        int fd = accept4(f->lfd, NULL, NULL, SOCK_CLOEXEC);

        assert_true(fd >= 0);
        return fd;
}

static void read_exact(int fd, const char *want)
{
        char buf[512];
        size_t n = strlen(want), got = 0;

        assert_true(n < sizeof(buf));
        while (got < n) {
                ssize_t k = read(fd, buf + got, n - got);

                assert_true(k > 0);
                got += (size_t)k;
        }
        assert_memory_equal(buf, want, n);
}

/* Send the request (head + @body), answer @response from the backend
 * (then close it if @close_be), read the response until its body is
 * complete, collecting the body into @out. */
static void run_exchange(struct fx *f, int be, const char *body, const char *response,
                         bool close_be, char *out, size_t size)
{
        struct exch *x = &f->x;
        struct iovq q;
        uint32_t pos = 0;
        size_t got = 0;
        int r;

        assert_int_equal(exch_req_fill(x, (uint8_t *)body, &pos, (uint32_t)strlen(body), false), 0);
        assert_int_equal(pos, strlen(body));
        assert_int_equal(exch_req_flush(x), 0);
        assert_true(x->req_sent_all);
        assert_int_equal(write(be, response, strlen(response)), (ssize_t)strlen(response));
        if (close_be)
                close(be);
        iovq_reset(&q);
        for (unsigned i = 0; i < 1000; i++) {
                x->up->s->rd_ready = true;
                assert_true(exch_recv(x, q.left == 0) >= 0);
                if (!x->resp_head) {
                        r = exch_resp_parse(x);
                        if (r == -EAGAIN)
                                continue;
                        assert_true(r > 0);
                        assert_int_equal(proxy_h1_resp_analyze(&x->resp, x->uin, false), 0);
                        assert_int_equal(exch_resp_head_taken(x, r, true, PROXY_H1_BODY_CLOSE, &q),
                                         0);
                } else if (q.left == 0) {
                        assert_int_equal(exch_resp_body(x, &q), 0);
                }
                for (unsigned k = q.i; k < q.n; k++) {
                        assert_true(got + q.iov[k].iov_len < size);
                        memcpy(out + got, q.iov[k].iov_base, q.iov[k].iov_len);
                        got += q.iov[k].iov_len;
                }
                iovq_reset(&q);
                exch_resp_release(x);
                if (x->resp_head && h1_pump_finished(&x->respp))
                        break;
        }
        out[got] = 0;
}

static const char *const HEAD = "GET / HTTP/1.1\r\nHost: a.test\r\n\r\n";

/* A new connection, then the pooled one for the next exchange. */
static void test_dial_then_pool(void **state)
{
        struct fx f;
        struct proxy_route *r;
        char out[256];
        int be;

        fx_start(&f, 5000);
        r = route_to(&f, &f.port, 1);
        exch_begin(&f.x, r, 0, (const uint8_t *)HEAD, (uint32_t)strlen(HEAD), PROXY_H1_BODY_NONE, 0,
                   false);
        assert_int_equal(connect_wait(&f), 1);
        assert_int_equal(atomic_load(&f.connects), 1);
        be = accept_backend(&f);
        run_exchange(&f, be, "", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", false, out,
                     sizeof(out));
        read_exact(be, HEAD);
        assert_string_equal(out, "hello");
        exch_end(&f.x);
        assert_null(f.x.up);
        assert_int_equal(f.pool.n_idle, 1);

        /* The next one takes it: connected at once, no new connect. */
        exch_begin(&f.x, r, 0, (const uint8_t *)HEAD, (uint32_t)strlen(HEAD), PROXY_H1_BODY_NONE, 0,
                   false);
        assert_int_equal(exch_connect(&f.x), 1);
        assert_int_equal(atomic_load(&f.reused), 1);
        assert_true(f.x.up->reused);
        run_exchange(&f, be, "", "HTTP/1.1 204 No Content\r\n\r\n", false, out, sizeof(out));
        read_exact(be, HEAD);
        exch_end(&f.x);
        assert_int_equal(f.pool.n_idle, 1);
        exch_begin(&f.x, r, 0, (const uint8_t *)HEAD, (uint32_t)strlen(HEAD), PROXY_H1_BODY_NONE, 0,
                   false);
        assert_int_equal(exch_connect(&f.x), 1);
        /* Close-delimited: the connection cannot be reused. */
        run_exchange(&f, be, "", "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nbye", true, out,
                     sizeof(out));
        assert_string_equal(out, "bye");
        exch_end(&f.x);
        assert_int_equal(f.pool.n_idle, 0);
        fx_stop(&f);
}

/* The first backend refuses: the next one serves, one connect error. Both
 * refuse: -EHOSTUNREACH, a 502 (not only the factory failed). */
static void test_failover(void **state)
{
        struct fx f;
        struct proxy_route *r;
        uint16_t ports[2];

        fx_start(&f, 5000);
        ports[0] = f.dead_port;
        ports[1] = f.port;
        r = route_to(&f, ports, 2);
        /* Start at the dead one whatever the cursor says. */
        atomic_store(&r->rr_next, 0);
        exch_begin(&f.x, r, 0, (const uint8_t *)HEAD, (uint32_t)strlen(HEAD), PROXY_H1_BODY_NONE, 0,
                   false);
        assert_int_equal(connect_wait(&f), 1);
        assert_int_equal(atomic_load(&f.connect_errors), 1);
        assert_int_equal(f.x.attempt, 2);
        close(accept_backend(&f));
        exch_abort(&f.x);

        ports[1] = f.dead_port;
        r = route_to(&f, ports, 2);
        exch_begin(&f.x, r, 0, (const uint8_t *)HEAD, (uint32_t)strlen(HEAD), PROXY_H1_BODY_NONE, 0,
                   false);
        assert_int_equal(connect_wait(&f), -EHOSTUNREACH);
        assert_false(f.x.all_factory);
        assert_null(f.x.up);

        /* Only the socket factory failed: the owner answers 503. */
        f.factory_error = -EMFILE;
        exch_begin(&f.x, r, 0, (const uint8_t *)HEAD, (uint32_t)strlen(HEAD), PROXY_H1_BODY_NONE, 0,
                   false);
        assert_int_equal(exch_connect(&f.x), -EHOSTUNREACH);
        assert_true(f.x.all_factory);
        fx_stop(&f);
}

/* A pooled connection the backend closed meanwhile: one retry on a fresh
 * connection for a request without a body, none with one. */
static void test_retry_once(void **state)
{
        struct fx f;
        struct proxy_route *r;
        char out[64];
        int be, be2;

        fx_start(&f, 5000);
        r = route_to(&f, &f.port, 1);
        exch_begin(&f.x, r, 0, (const uint8_t *)HEAD, (uint32_t)strlen(HEAD), PROXY_H1_BODY_NONE, 0,
                   false);
        assert_int_equal(connect_wait(&f), 1);
        be = accept_backend(&f);
        run_exchange(&f, be, "", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", false, out,
                     sizeof(out));
        exch_end(&f.x);
        assert_int_equal(f.pool.n_idle, 1);

        exch_begin(&f.x, r, 0, (const uint8_t *)HEAD, (uint32_t)strlen(HEAD), PROXY_H1_BODY_NONE, 0,
                   false);
        assert_int_equal(exch_connect(&f.x), 1);
        assert_true(f.x.up->reused);
        assert_true(exch_retry(&f.x));
        assert_true(f.x.retried);
        /* Fresh, not pooled, the same backend. */
        assert_int_equal(connect_wait(&f), 1);
        assert_false(f.x.up->reused);
        assert_false(exch_retry(&f.x)); /* only once */
        be2 = accept_backend(&f);
        close(be);
        close(be2);
        exch_abort(&f.x);

        /* With a body: not sent again. */
        exch_begin(&f.x, r, 0, (const uint8_t *)HEAD, (uint32_t)strlen(HEAD), PROXY_H1_BODY_LENGTH,
                   3, false);
        assert_int_equal(connect_wait(&f), 1);
        close(accept_backend(&f));
        f.x.up->reused = true;
        assert_false(exch_retry(&f.x));
        fx_stop(&f);
}

/* No response head within upstream_timeout of the request being sent: the
 * owner is woken with ev_timeout. An interim head stops the clock. */
static void test_upstream_deadline(void **state)
{
        struct fx f;
        struct proxy_route *r;
        int be;

        fx_start(&f, 60);
        r = route_to(&f, &f.port, 1);
        exch_begin(&f.x, r, 0, (const uint8_t *)HEAD, (uint32_t)strlen(HEAD), PROXY_H1_BODY_NONE, 0,
                   false);
        assert_int_equal(connect_wait(&f), 1);
        be = accept_backend(&f);
        assert_int_equal(exch_req_flush(&f.x), 0);
        assert_true(f.x.req_sent_all);
        assert_int_equal(exch_poll(&f.x, true), 0);
        assert_int_equal(f.x.up->s->h.tq, TQ_UPSTREAM);
        /* Owner queued an interim head: no deadline meanwhile. */
        f.x.interim = true;
        assert_int_equal(exch_poll(&f.x, true), 0);
        assert_int_equal(f.x.up->s->h.tq, EV_TQ_NONE);
        f.x.interim = false;
        assert_int_equal(exch_poll(&f.x, true), 0);
        f.wakes = 0;
        LOOP_UNTIL(&f.loop, f.x.ev_timeout);
        assert_int_equal(f.wakes, 1);
        close(be);
        fx_stop(&f);
}

/* A chunked response whose full buffer ends in framing only (the CRLF
 * after a chunk's data and half of the next size line) right after the
 * owner's queue was full: the owner writes, the next fill consumes the
 * framing without queueing anything, and the read that follows moves the
 * unread tail to the front. The consumed framing must not be moved along
 * and decoded a second time (it was, and the body came out wrong). */
/* The check back-off: doubles per failure from min up to max, half of it
 * random ("equal jitter"). */
static void test_health_backoff(void **state)
{
        uint64_t rnd = 0x9e3779b97f4a7c15ull, prev = 0;
        unsigned distinct = 0;

        for (unsigned fails = 1; fails <= 40; fails++) {
                uint64_t d = fails >= 4 ? 400 : 50ull << (fails - 1);

                for (unsigned i = 0; i < 50; i++) {
                        uint64_t v = proxy_health_backoff_ms(50, 400, fails, &rnd);

                        assert_true(v >= d - d / 2 && v <= d);
                        distinct += v != prev;
                        prev = v;
                }
        }
        assert_true(distinct > 100);
        assert_int_equal(proxy_health_backoff_ms(1, 1, 1, &rnd), 1);
}

static void test_chunk_framing_at_buffer_end(void **state)
{
        static const char head[] = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
        static char resp[2 * UCAP], want[UCAP];
        struct fx f;
        struct proxy_route *r;
        struct iovq q;
        size_t n = 0, s1, nw = 0, got = 0;
        char out[UCAP];
        int be, k;

        fx_start(&f, 5000);
        r = route_to(&f, &f.port, 1);
        exch_begin(&f.x, r, 0, (const uint8_t *)HEAD, (uint32_t)strlen(HEAD), PROXY_H1_BODY_NONE, 0,
                   false);
        assert_int_equal(connect_wait(&f), 1);
        be = accept_backend(&f);
        assert_int_equal(exch_req_flush(&f.x), 0);

        /* head, chunk 1 (3 hex digits), 20 chunks of one byte, then "1f"
         * (half a size line): exactly UCAP bytes. The owner's queue holds 21
         * pieces, so the first fill stops right after the last data byte. */
        s1 = UCAP - strlen(head) - 5 - 2 - 20 * 6 - 2;
        assert_true(s1 >= 0x100 && s1 < 0x1000);
        n += (size_t)sprintf(resp + n, "%s%zx\r\n", head, s1);
        memset(resp + n, 'a', s1);
        memset(want + nw, 'a', s1);
        n += s1;
        nw += s1;
        n += (size_t)sprintf(resp + n, "\r\n");
        for (unsigned i = 0; i < 20; i++) {
                n += (size_t)sprintf(resp + n, "1\r\nb\r\n");
                want[nw++] = 'b';
        }
        n += (size_t)sprintf(resp + n, "1f");
        assert_int_equal(n, UCAP);
        n += (size_t)sprintf(resp + n, "\r\n%031d\r\n0\r\n\r\n", 0);
        memset(want + nw, '0', 31);
        nw += 31;
        assert_int_equal(write(be, resp, n), (ssize_t)n);

        /* The owner's order, as HTTP/1.1's: write and release, fill, read. */
        iovq_reset(&q);
        f.x.up->s->rd_ready = true;
        assert_int_equal(exch_recv(&f.x, true), 1);
        assert_int_equal(f.x.ulen, UCAP);
        k = exch_resp_parse(&f.x);
        assert_int_equal(k, (int)strlen(head));
        assert_int_equal(proxy_h1_resp_analyze(&f.x.resp, f.x.uin, false), 0);
        assert_int_equal(exch_resp_head_taken(&f.x, k, true, PROXY_H1_BODY_CLOSE, &q), 0);
        assert_int_equal(q.n, 21);
        for (unsigned i = 0; i < 100; i++) {
                for (unsigned j = q.i; j < q.n; j++) {
                        assert_true(got + q.iov[j].iov_len <= sizeof(out));
                        memcpy(out + got, q.iov[j].iov_base, q.iov[j].iov_len);
                        got += q.iov[j].iov_len;
                }
                iovq_reset(&q);
                exch_resp_release(&f.x);
                if (h1_pump_finished(&f.x.respp))
                        break;
                assert_int_equal(exch_resp_body(&f.x, &q), 0);
                f.x.up->s->rd_ready = true;
                assert_true(exch_recv(&f.x, q.left == 0) >= 0);
        }
        assert_true(h1_pump_finished(&f.x.respp));
        assert_int_equal(got, nw);
        assert_memory_equal(out, want, nw);
        close(be);
        fx_stop(&f);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_dial_then_pool),
                cmocka_unit_test(test_failover),
                cmocka_unit_test(test_retry_once),
                cmocka_unit_test(test_upstream_deadline),
                cmocka_unit_test(test_chunk_framing_at_buffer_end),
                cmocka_unit_test(test_health_backoff),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
