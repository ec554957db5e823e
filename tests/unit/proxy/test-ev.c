/* SPDX-License-Identifier: Apache-2.0 */
/* The event layer on a real libuv loop: readiness over socketpairs,
 * deferred freeing of a handle closed while an event for it is pending,
 * the FIFO deadline queues, and a clean stop (uv_loop_close() == 0). */
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

#include "common/macros.h"
#include "proxy-test.h"
#include "proxy/ev.h"

struct obj {
        struct ev_handle h;
        struct ev *ev;
        unsigned n_read, n_write, n_timeout;
        unsigned order;          /* when it timed out: 1, 2, ... */
        struct obj *close_other; /* closed from our callback */
        struct obj *defer;       /* ev_defer()ed from our read callback */
        unsigned n_defer;        /* EV_DEFER callbacks */
        unsigned reads_at_defer; /* total_reads at the last one */
        bool deferred;           /* what ev_defer() said */
        bool *freed;             /* set by the free callback */
};

static unsigned timeout_seq;
static unsigned total_reads; /* across objects, some of which may be freed */

static void on_freed(struct ev_handle *h)
{
        struct obj *o = container_of(h, struct obj, h);

        *o->freed = true;
        if (o->h.fd >= 0)
                close(o->h.fd);
        free(o);
}

static void on_event(struct ev_handle *h, unsigned events)
{
        struct obj *o = container_of(h, struct obj, h);

        if (events & EV_READ) {
                char buf[64];

                o->n_read++;
                total_reads++;
                (void)read(h->fd, buf, sizeof(buf));
        }
        if (events & EV_WRITE)
                o->n_write++;
        if (events & EV_TIMEOUT)
                o->order = ++timeout_seq, o->n_timeout++;
        if (events & EV_DEFER) {
                assert_int_equal(events, EV_DEFER);
                o->n_defer++;
                o->reads_at_defer = total_reads;
                /* Not inside a batch any more: callers act at once. */
                assert_false(ev_defer(o->ev, h));
        }
        if ((events & EV_READ) && o->defer)
                o->deferred = ev_defer(o->ev, &o->defer->h);
        if (o->close_other) {
                ev_close(o->ev, &o->close_other->h, on_freed);
                /* Deferred: still there for the rest of the batch. */
                assert_false(*o->close_other->freed);
                o->close_other = NULL;
        }
}

static struct obj *obj_new(struct ev *ev, int fd, bool *freed)
{
        struct obj *o = calloc(1, sizeof(*o));

        assert_non_null(o);
        o->ev = ev;
        o->freed = freed;
        ev_handle_init(&o->h, fd, on_event);
        return o;
}

static bool stopped;

static void on_tick(uv_timer_t *t)
{
}

static void on_stopped(struct ev *ev, void *ud)
{
        stopped = true;
}

static void ev_setup(uv_loop_t *loop, struct ev *ev, uint64_t dur_ms)
{
        uint64_t durs[3] = {dur_ms, 2 * dur_ms, 0};

        assert_int_equal(uv_loop_init(loop), 0);
        assert_int_equal(ev_init(ev, loop, durs, 3), 0);
}

static void ev_teardown(uv_loop_t *loop, struct ev *ev)
{
        stopped = false;
        ev_stop(ev, on_stopped, NULL);
        assert_int_equal(uv_run(loop, UV_RUN_DEFAULT), 0);
        assert_true(stopped);
        ev_done(ev);
        assert_int_equal(uv_loop_close(loop), 0);
}

/* Interest is what the handle registered; removing it stops callbacks. */
static void test_readiness(void **state)
{
        uv_loop_t loop;
        struct ev ev;
        bool freed = false;
        int sp[2];
        struct obj *o;

        ev_setup(&loop, &ev, 50);
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sp), 0);
        o = obj_new(&ev, sp[0], &freed);
        assert_int_equal(ev_set(&ev, &o->h, EV_READ | EV_WRITE), 0);
        assert_int_equal(write(sp[1], "x", 1), 1);
        (void)uv_run(&loop, UV_RUN_NOWAIT);
        assert_int_equal(o->n_read, 1);
        assert_int_equal(o->n_write, 1);

        /* Write interest off: nothing while the peer is silent. */
        assert_int_equal(ev_set(&ev, &o->h, EV_READ), 0);
        (void)uv_run(&loop, UV_RUN_NOWAIT);
        assert_int_equal(o->n_read, 1);
        assert_int_equal(o->n_write, 1);
        /* Out of the set: unread bytes do not call back. */
        assert_int_equal(ev_set(&ev, &o->h, 0), 0);
        assert_false(o->h.in_set);
        assert_int_equal(write(sp[1], "y", 1), 1);
        (void)uv_run(&loop, UV_RUN_NOWAIT);
        assert_int_equal(o->n_read, 1);
        /* Back in: level-triggered, so the waiting byte is reported. */
        assert_int_equal(ev_set(&ev, &o->h, EV_READ), 0);
        (void)uv_run(&loop, UV_RUN_NOWAIT);
        assert_int_equal(o->n_read, 2);

        ev_close(&ev, &o->h, on_freed);
        assert_false(freed); /* deferred */
        close(sp[1]);
        ev_teardown(&loop, &ev);
        assert_true(freed);
}

/* Two handles ready in one batch, the first closes the second: the second
 * gets no callback and is freed on a later iteration, not at once. */
static void test_close_with_pending_event(void **state)
{
        uv_loop_t loop;
        struct ev ev;
        bool freed_a = false, freed_b = false;
        int a[2], b[2];
        struct obj *oa, *ob;

        ev_setup(&loop, &ev, 50);
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, a), 0);
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, b), 0);
        oa = obj_new(&ev, a[0], &freed_a);
        ob = obj_new(&ev, b[0], &freed_b);
        oa->close_other = ob;
        ob->close_other = oa;
        total_reads = 0;
        assert_int_equal(ev_set(&ev, &oa->h, EV_READ), 0);
        assert_int_equal(ev_set(&ev, &ob->h, EV_READ), 0);
        assert_int_equal(write(a[1], "x", 1), 1);
        assert_int_equal(write(b[1], "x", 1), 1);
        (void)uv_run(&loop, UV_RUN_ONCE);
        /* Whichever came first closed the other, which got no callback
         * although its event was in the same batch. */
        assert_int_equal(total_reads, 1);
        assert_true(freed_a != freed_b);
        if (!freed_a)
                ev_close(&ev, &oa->h, on_freed);
        else
                ev_close(&ev, &ob->h, on_freed);
        (void)uv_run(&loop, UV_RUN_NOWAIT);
        assert_true(freed_a && freed_b);
        close(a[1]);
        close(b[1]);
        ev_teardown(&loop, &ev);
}

/* ev_defer(): asked by several handles of one batch, the callback comes
 * once, after the whole batch; outside a batch it refuses; a handle closed
 * after it was deferred gets no callback. */
static void test_defer(void **state)
{
        uv_loop_t loop;
        struct ev ev;
        bool freed[4] = {0};
        int sp[3][2];
        struct obj *o[3], *sink;

        ev_setup(&loop, &ev, 50);
        total_reads = 0;
        sink = obj_new(&ev, -1, &freed[3]);
        assert_false(ev_defer(&ev, &sink->h));
        for (unsigned i = 0; i < 3; i++) {
                assert_int_equal(
                        socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sp[i]),
                        0);
                o[i] = obj_new(&ev, sp[i][0], &freed[i]);
                o[i]->defer = sink;
                assert_int_equal(ev_set(&ev, &o[i]->h, EV_READ), 0);
                assert_int_equal(write(sp[i][1], "x", 1), 1);
        }
        (void)uv_run(&loop, UV_RUN_NOWAIT);
        assert_int_equal(total_reads, 3);
        for (unsigned i = 0; i < 3; i++)
                assert_true(o[i]->deferred);
        assert_int_equal(sink->n_defer, 1);
        assert_int_equal(sink->reads_at_defer, 3);
        assert_null(sink->h.dnext);
        assert_null(ev.defer);
        /* Nothing more without events. */
        (void)uv_run(&loop, UV_RUN_NOWAIT);
        assert_int_equal(sink->n_defer, 1);

        /* Deferred, then closed in the same batch: no callback. */
        o[1]->defer = o[2]->defer = NULL;
        o[1]->close_other = sink;
        assert_int_equal(write(sp[0][1], "x", 1), 1);
        assert_int_equal(write(sp[1][1], "x", 1), 1);
        (void)uv_run(&loop, UV_RUN_NOWAIT);
        assert_int_equal(total_reads, 5);
        assert_int_equal(sink->n_defer, 1);
        for (unsigned i = 0; i < 3; i++) {
                ev_close(&ev, &o[i]->h, on_freed);
                close(sp[i][1]);
        }
        ev_teardown(&loop, &ev);
        for (unsigned i = 0; i < 4; i++)
                assert_true(freed[i]);
}

/* FIFO per queue: the entry queued (or re-queued) first expires first,
 * each exactly once; re-queueing postpones; EV_TQ_NONE cancels; fd-less
 * handles have deadlines too. */
static void test_deadlines(void **state)
{
        uv_loop_t loop;
        struct ev ev;
        bool freed[5] = {0};
        struct obj *o[5];
        uint64_t t0;

        ev_setup(&loop, &ev, 30);
        timeout_seq = 0;
        for (unsigned i = 0; i < 5; i++)
                o[i] = obj_new(&ev, -1, &freed[i]);
        ev_deadline(&ev, &o[0]->h, 0);
        ev_deadline(&ev, &o[1]->h, 0);
        ev_deadline(&ev, &o[2]->h, 0);
        ev_deadline(&ev, &o[3]->h, 1); /* twice as long */
        ev_deadline(&ev, &o[4]->h, 0);
        assert_ptr_equal(ev_tq_first(&ev, 0), &o[0]->h.tl);
        ev_deadline(&ev, &o[4]->h, EV_TQ_NONE);
        assert_int_equal(o[4]->h.tq, EV_TQ_NONE);
        /* Same ms: a no-op, the order stays. */
        ev_deadline(&ev, &o[0]->h, 0);
        assert_ptr_equal(ev_tq_first(&ev, 0), &o[0]->h.tl);
        t0 = uv_now(&loop);
        /* Let 10 ms pass (a timer of our own wakes the loop first), then
         * re-queue o[0]: now last in queue 0. */
        {
                uv_timer_t t;

                assert_int_equal(uv_timer_init(&loop, &t), 0);
                assert_int_equal(uv_timer_start(&t, on_tick, 10, 0), 0);
                (void)uv_run(&loop, UV_RUN_ONCE);
                uv_close((uv_handle_t *)&t, NULL);
        }
        assert_true(uv_now(&loop) >= t0 + 10);
        assert_int_equal(timeout_seq, 0);
        ev_deadline(&ev, &o[0]->h, 0);
        assert_ptr_equal(ev_tq_first(&ev, 0), &o[1]->h.tl);
        LOOP_UNTIL(&loop, timeout_seq >= 4);
        assert_int_equal(o[1]->order, 1);
        assert_int_equal(o[2]->order, 2);
        assert_int_equal(o[0]->order, 3);
        assert_int_equal(o[3]->order, 4);
        assert_true(uv_now(&loop) >= t0 + 60);
        for (unsigned i = 0; i < 5; i++) {
                assert_int_equal(o[i]->n_timeout, i == 4 ? 0 : 1);
                assert_int_equal(o[i]->h.tq, EV_TQ_NONE);
                ev_close(&ev, &o[i]->h, on_freed);
        }
        ev_teardown(&loop, &ev);
        for (unsigned i = 0; i < 5; i++)
                assert_true(freed[i]);
}

/* Issue 11: a queue's duration changed live moves the deadlines already
 * queued (shorter: they fire sooner; longer: later), in their order. */
static void test_issue_11_set_duration(void **state)
{
        uv_loop_t loop;
        struct ev ev;
        bool freed[3] = {0};
        struct obj *o[3];
        uint64_t t0;

        ev_setup(&loop, &ev, 10000);
        timeout_seq = 0;
        for (unsigned i = 0; i < 3; i++)
                o[i] = obj_new(&ev, -1, &freed[i]);
        t0 = uv_now(&loop);
        ev_deadline(&ev, &o[0]->h, 0);
        ev_deadline(&ev, &o[1]->h, 0);
        ev_deadline(&ev, &o[2]->h, 1); /* 20 s */
        /* 10 s -> 50 ms: the two in queue 0 fire now, in order. */
        ev_tq_set_dur(&ev, 0, 50);
        LOOP_UNTIL(&loop, timeout_seq >= 2);
        assert_int_equal(o[0]->order, 1);
        assert_int_equal(o[1]->order, 2);
        assert_true(uv_now(&loop) - t0 < 2000);
        assert_int_equal(o[2]->n_timeout, 0);
        /* Queue 1 longer, then shorter than what already passed: fires at
         * once. */
        ev_tq_set_dur(&ev, 1, 60000);
        ev_tq_set_dur(&ev, 1, 1);
        LOOP_UNTIL(&loop, timeout_seq >= 3);
        assert_int_equal(o[2]->order, 3);
        /* An empty queue takes a duration for what comes next. */
        ev_tq_set_dur(&ev, 0, 20);
        ev_deadline(&ev, &o[0]->h, 0);
        LOOP_UNTIL(&loop, timeout_seq >= 4);
        assert_int_equal(o[0]->n_timeout, 2);
        for (unsigned i = 0; i < 3; i++)
                ev_close(&ev, &o[i]->h, on_freed);
        ev_teardown(&loop, &ev);
        for (unsigned i = 0; i < 3; i++)
                assert_true(freed[i]);
}

/* A handle closed while queued leaves its queue (no timeout after). */
static void test_close_unqueues(void **state)
{
        uv_loop_t loop;
        struct ev ev;
        bool freed = false, freed2 = false;
        struct obj *o, *o2;

        ev_setup(&loop, &ev, 5);
        timeout_seq = 0;
        o = obj_new(&ev, -1, &freed);
        o2 = obj_new(&ev, -1, &freed2);
        ev_deadline(&ev, &o->h, 2);
        ev_deadline(&ev, &o2->h, 2);
        ev_close(&ev, &o->h, on_freed);
        assert_ptr_equal(ev_tq_first(&ev, 2), &o2->h.tl);
        LOOP_UNTIL(&loop, timeout_seq >= 1);
        assert_true(freed);
        assert_int_equal(o2->n_timeout, 1);
        ev_close(&ev, &o2->h, on_freed);
        ev_teardown(&loop, &ev);
        assert_true(freed2);
}

static void test_init_bounds(void **state)
{
        uint64_t durs[EV_TQ_MAX + 1] = {0};
        uv_loop_t loop;
        struct ev ev;

        assert_int_equal(uv_loop_init(&loop), 0);
        assert_int_equal(ev_init(&ev, &loop, durs, EV_TQ_MAX + 1), -EINVAL);
        assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_readiness),   cmocka_unit_test(test_close_with_pending_event),
                cmocka_unit_test(test_deadlines),   cmocka_unit_test(test_close_unqueues),
                cmocka_unit_test(test_init_bounds), cmocka_unit_test(test_issue_11_set_duration),
                cmocka_unit_test(test_defer),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
