/* SPDX-License-Identifier: Apache-2.0 */
/* The backend pool on a real loop against loopback listeners: dial and
 * reuse (LIFO per backend), the per-backend, total and room() bounds, idle
 * connections closed by the backend's EOF or their deadline, route changes,
 * factory failures, and stop. No HTTP anywhere: the pool is protocol-free. */
#include <errno.h>
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

#include "proxy-test.h"
#include "proxy/ev.h"
#include "proxy/upstream.h"

#define TQ_POOL 0

struct fx {
        uv_loop_t loop;
        struct ev ev;
        struct upstream_pool pool;
        struct proxy_route_table *table;
        struct proxy_routes *snap;
        int lfd[2];
        uint16_t port[2];
        unsigned room;
        unsigned n_freed;
        int factory_error; /* != 0: the factory fails with it */
};

static unsigned on_room(void *ud)
{
        return ((struct fx *)ud)->room;
}

static void on_freed(void *ud)
{
        ((struct fx *)ud)->n_freed++;
}

static int factory(void *ud, const struct proxy_route *r, const struct sockaddr *addr,
                   socklen_t len, int *ret_fd)
{
        struct fx *f = ud;

        if (f->factory_error)
                return f->factory_error;
        return proxy_socket_factory_default(NULL, r, addr, len, ret_fd);
}

static void on_user_event(struct sock *s, unsigned events)
{
}

static void fx_start(struct fx *f, unsigned idle_max, unsigned max_total, uint64_t idle_ms)
{
        uint64_t durs[1] = {idle_ms};

        memset(f, 0, sizeof(*f));
        f->room = 1000;
        assert_int_equal(uv_loop_init(&f->loop), 0);
        assert_int_equal(ev_init(&f->ev, &f->loop, durs, 1), 0);
        assert_int_equal(upstream_pool_init(&f->pool,
                                            &(struct upstream_pool_env){
                                                    .ev = &f->ev,
                                                    .factory = factory,
                                                    .factory_ud = f,
                                                    .idle_max = idle_max,
                                                    .max_total = max_total,
                                                    .tq_pool = TQ_POOL,
                                                    .room = on_room,
                                                    .freed = on_freed,
                                                    .ud = f,
                                            }),
                         0);
        assert_int_equal(proxy_route_table_new(&f->table), 0);
        for (unsigned i = 0; i < 2; i++)
                f->lfd[i] = listen_loopback(&f->port[i]);
        table_put_ip(f->table, "w1", "a.test", PROXY_ROUTE_TERMINATE, INADDR_LOOPBACK, f->port, 2,
                     NULL);
        f->snap = proxy_routes_acquire(f->table);
}

static void on_stopped(struct ev *ev, void *ud)
{
}

static void fx_stop(struct fx *f)
{
        upstream_pool_close_idle(&f->pool);
        /* Frees come from the reap. */
        while (f->pool.n_open > 0)
                (void)uv_run(&f->loop, UV_RUN_NOWAIT);
        upstream_pool_done(&f->pool);
        ev_stop(&f->ev, on_stopped, NULL);
        assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
        ev_done(&f->ev);
        assert_int_equal(uv_loop_close(&f->loop), 0);
        proxy_routes_unref(f->snap);
        proxy_route_table_free(f->table);
        for (unsigned i = 0; i < 2; i++)
                close(f->lfd[i]);
}

static struct proxy_route *route(struct fx *f)
{
        return proxy_routes_lookup_id(f->snap, "w1");
}

static void key(struct fx *f, unsigned i, struct upstream_key *k)
{
        const struct proxy_route *r = route(f);

        upstream_key_of(k, (const struct sockaddr *)&r->backends[i].addr, 0);
}

/* Dial backend @i and wait until connected; the backend side is accepted
 * into *ret_peer if not NULL (else closed at the end by the listener's
 * close). */
static struct upstream *dial(struct fx *f, unsigned i, int *ret_peer)
{
        struct upstream_key k;
        struct upstream *u;
        bool ff;

        key(f, i, &k);
        assert_int_equal(upstream_dial(&f->pool, route(f), &k, true, on_user_event, f, &u, &ff), 0);
        assert_false(ff);
        assert_int_equal(sock_want(u->s, false), 0);
        for (unsigned n = 0; n < 1000 && u->s->connecting && !u->s->connect_event; n++)
                (void)uv_run(&f->loop, UV_RUN_ONCE);
        if (u->s->connecting)
                assert_int_equal(sock_connect_result(u->s), 0);
        if (ret_peer) {
                *ret_peer = accept4(f->lfd[i], NULL, NULL, SOCK_CLOEXEC);
                assert_true(*ret_peer >= 0);
        }
        return u;
}

/* Released connections come back LIFO per backend, marked reused. */
static void test_reuse(void **state)
{
        struct upstream_key k0, k1;
        struct upstream *a, *b, *c;
        struct fx f;
        int pa, pb, pc;

        fx_start(&f, 8, 100, 10000);
        a = dial(&f, 0, &pa);
        b = dial(&f, 0, &pb);
        c = dial(&f, 1, &pc);
        assert_int_equal(f.pool.n_open, 3);
        upstream_release(a, true);
        upstream_release(b, true);
        upstream_release(c, true);
        assert_int_equal(f.pool.n_idle, 3);
        key(&f, 0, &k0);
        key(&f, 1, &k1);
        assert_ptr_equal(upstream_take(&f.pool, &k0, NULL), b);
        assert_true(b->reused);
        assert_int_equal(f.pool.n_idle, 2);
        /* Another namespace is another pool entry. */
        assert_null(upstream_take(&f.pool, &k0, "/run/netns/other"));
        assert_ptr_equal(upstream_take(&f.pool, &k0, NULL), a);
        assert_null(upstream_take(&f.pool, &k0, NULL));
        assert_ptr_equal(upstream_take(&f.pool, &k1, NULL), c);
        /* Not reusable: closed, not pooled. */
        upstream_release(a, false);
        upstream_release(b, true);
        upstream_close(c);
        assert_int_equal(f.pool.n_idle, 1);
        fx_stop(&f);
        assert_int_equal(f.n_freed, 3);
        close(pa);
        close(pb);
        close(pc);
}

/* idle_max per backend, max_total and room() in all: at the bound the
 * connection idle the longest goes. */
static void test_bounds(void **state)
{
        struct upstream *u[4];
        struct upstream_key k0;
        struct fx f;
        int p[4];

        fx_start(&f, 2, 100, 10000);
        for (unsigned i = 0; i < 4; i++)
                u[i] = dial(&f, 0, &p[i]);
        for (unsigned i = 0; i < 4; i++)
                upstream_release(u[i], true);
        /* The per-backend bound closed the third and fourth. */
        assert_int_equal(f.pool.n_idle, 2);
        for (unsigned n = 0; n < 100 && f.n_freed < 2; n++)
                (void)uv_run(&f.loop, UV_RUN_NOWAIT);
        assert_int_equal(f.n_freed, 2);

        /* room() now allows one: the two idle ones make room for the new. */
        f.room = 1;
        u[2] = dial(&f, 1, NULL);
        upstream_release(u[2], true);
        assert_int_equal(f.pool.n_idle, 1);
        key(&f, 0, &k0);
        assert_null(upstream_take(&f.pool, &k0, NULL));
        /* No room at all: a released connection is closed. */
        f.room = 0;
        u[3] = dial(&f, 1, NULL);
        upstream_release(u[3], true);
        assert_int_equal(f.pool.n_idle, 1);
        /* trim() closes down to what the caller keeps. */
        upstream_pool_trim(&f.pool, 0);
        assert_int_equal(f.pool.n_idle, 0);
        fx_stop(&f);
        for (unsigned i = 0; i < 4; i++)
                close(p[i]);
}

/* idle_max 0 (the engine's default): the pool keeps every connection a
 * burst needed, far beyond the old fixed 64 per backend, bounded only by
 * room(); unused, they go after the idle deadline. */
#define BURST 150u
static void test_grows_with_demand(void **state)
{
        struct upstream *u[BURST];
        struct upstream_key k0;
        struct fx f;
        int p[BURST], q[BURST];
        unsigned n;

        fx_start(&f, 0, 1000, 300);
        key(&f, 0, &k0);
        /* BURST requests at once need BURST connections. */
        for (unsigned i = 0; i < BURST; i++)
                u[i] = dial(&f, 0, &p[i]);
        for (unsigned i = 0; i < BURST; i++)
                upstream_release(u[i], true);
        assert_int_equal(f.pool.n_idle, BURST);
        /* The next burst reuses all of them: not one new connection. */
        for (n = 0; n < BURST; n++) {
                u[n] = upstream_take(&f.pool, &k0, NULL);
                assert_non_null(u[n]);
                assert_true(u[n]->reused);
        }
        assert_null(upstream_take(&f.pool, &k0, NULL));
        assert_int_equal(f.pool.n_open, BURST);
        for (unsigned i = 0; i < BURST; i++)
                upstream_release(u[i], true);
        assert_int_equal(f.pool.n_idle, BURST);
        /* Demand drops to one request at a time: LIFO keeps using the same
         * connection, the rest idles out after 300 ms. */
        for (unsigned round = 0; round < 20 && f.pool.n_idle > 1; round++) {
                u[0] = upstream_take(&f.pool, &k0, NULL);
                assert_non_null(u[0]);
                upstream_release(u[0], true);
                for (unsigned t = 0; t < 50; t++) {
                        (void)uv_run(&f.loop, UV_RUN_NOWAIT);
                        sleep_ms(1);
                }
        }
        LOOP_UNTIL(&f.loop, f.pool.n_idle == 1);
        assert_int_equal(f.pool.n_idle, 1);
        /* And with no demand at all, the last one goes too. */
        LOOP_UNTIL(&f.loop, f.pool.n_idle == 0);

        /* The descriptor budget still bounds it: room() for 100. */
        f.room = 100;
        for (unsigned i = 0; i < BURST; i++)
                u[i] = dial(&f, 1, &q[i]);
        for (unsigned i = 0; i < BURST; i++)
                upstream_release(u[i], true);
        assert_int_equal(f.pool.n_idle, 100);
        fx_stop(&f);
        for (unsigned i = 0; i < BURST; i++) {
                close(p[i]);
                close(q[i]);
        }
}

/* The backend closing an idle connection, or the idle deadline, closes it
 * from the pool. */
static void test_idle_close(void **state)
{
        struct upstream *a, *b;
        struct fx f;
        int pa, pb;

        fx_start(&f, 8, 100, 50);
        a = dial(&f, 0, &pa);
        b = dial(&f, 0, &pb);
        upstream_release(a, true);
        close(pa);
        for (unsigned n = 0; n < 1000 && f.pool.n_idle > 0; n++)
                (void)uv_run(&f.loop, UV_RUN_ONCE);
        assert_int_equal(f.pool.n_idle, 0);

        upstream_release(b, true);
        assert_int_equal(f.pool.n_idle, 1);
        /* Nothing happens on the socket: the 50 ms deadline closes it. */
        LOOP_UNTIL(&f.loop, f.pool.n_idle == 0);
        assert_int_equal(f.pool.n_idle, 0);
        fx_stop(&f);
        close(pb);
}

/* A route change closes idle connections to backends the route no longer
 * lists, or of a route that is gone; others stay. */
static void test_routes_changed(void **state)
{
        struct upstream *a, *b;
        struct fx f;
        int pa, pb;

        fx_start(&f, 8, 100, 10000);
        a = dial(&f, 0, &pa);
        b = dial(&f, 1, &pb);
        upstream_release(a, true);
        upstream_release(b, true);
        /* The route now lists only backend 0. */
        table_put_ip(f.table, "w1", "a.test", PROXY_ROUTE_TERMINATE, INADDR_LOOPBACK, f.port, 1,
                     NULL);
        proxy_routes_unref(f.snap);
        f.snap = proxy_routes_acquire(f.table);
        upstream_pool_routes_changed(&f.pool, f.snap);
        assert_int_equal(f.pool.n_idle, 1);
        table_remove(f.table, "w1");
        {
                _cleanup_(proxy_routes_unrefp) struct proxy_routes *s =
                        proxy_routes_acquire(f.table);

                upstream_pool_routes_changed(&f.pool, s);
        }
        assert_int_equal(f.pool.n_idle, 0);
        fx_stop(&f);
        close(pa);
        close(pb);
}

/* The factory's error is the dial's, and it says so. */
static void test_factory_failure(void **state)
{
        struct upstream_key k;
        struct upstream *u = NULL;
        struct fx f;
        bool ff = false;

        fx_start(&f, 8, 100, 10000);
        f.factory_error = -EMFILE;
        key(&f, 0, &k);
        assert_int_equal(upstream_dial(&f.pool, route(&f), &k, true, on_user_event, &f, &u, &ff),
                         -EMFILE);
        assert_true(ff);
        assert_null(u);
        assert_int_equal(f.pool.n_open, 0);
        assert_int_equal(f.n_freed, 1);
        fx_stop(&f);
}

/* After close_idle() (stop) nothing is pooled any more. */
static void test_closed_pool(void **state)
{
        struct upstream *a;
        struct fx f;
        int pa;

        fx_start(&f, 8, 100, 10000);
        a = dial(&f, 0, &pa);
        upstream_pool_close_idle(&f.pool);
        upstream_release(a, true);
        assert_int_equal(f.pool.n_idle, 0);
        fx_stop(&f);
        close(pa);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_reuse),
                cmocka_unit_test(test_bounds),
                cmocka_unit_test(test_idle_close),
                cmocka_unit_test(test_routes_changed),
                cmocka_unit_test(test_factory_failure),
                cmocka_unit_test(test_closed_pool),
                cmocka_unit_test(test_grows_with_demand),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
