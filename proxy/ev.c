/* SPDX-License-Identifier: Apache-2.0 */
#include "proxy/ev.h"

#include <assert.h>
#include <errno.h>
#include <stddef.h>
#include <sys/epoll.h>

#include "common/macros.h"

#define EP_BATCH  64u /* events fetched per epoll_wait() */
#define EP_ROUNDS 4u  /* epoll_wait() calls per wakeup before the loop runs its timers */

/* ---- the epoll set ---- */

void ev_handle_init(struct ev_handle *h, int fd, ev_cb *cb)
{
        *h = (struct ev_handle){.fd = fd, .tq = EV_TQ_NONE, .cb = cb};
}

int ev__set(struct ev *ev, struct ev_handle *h, unsigned events)
{
        struct epoll_event e = {0};
        int op;

        if (h->closing)
                return 0;
        assert(h->fd >= 0);
        if (events == 0) {
                op = EPOLL_CTL_DEL;
        } else {
                op = h->in_set ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
                e.events =
                        ((events & EV_READ) ? EPOLLIN : 0) | ((events & EV_WRITE) ? EPOLLOUT : 0);
                e.data.ptr = h;
        }
        if (epoll_ctl(ev->epfd, op, h->fd, &e) < 0)
                return -errno;
        h->in_set = events != 0;
        h->events = (uint8_t)events;
        return 0;
}

/* Take @h off the deferred list's head. */
static struct ev_handle *defer_pop(struct ev *ev)
{
        struct ev_handle *h = ev->defer;

        ev->defer = h->dnext == h ? NULL : h->dnext;
        h->dnext = NULL;
        return h;
}

/* After a batch: the handles ev_defer()ed during it. Their callbacks act at
 * once (dispatching is off), so none is deferred again. */
static void run_deferred(struct ev *ev)
{
        while (ev->defer && !ev->stopping) {
                struct ev_handle *h = defer_pop(ev);

                if (!h->closing)
                        h->cb(h, EV_DEFER);
        }
}

/* The worker's loop saw the epoll set readable: dispatch what is ready. A
 * few rounds at most, so a busy set cannot starve the loop's timers. */
static void on_epoll(uv_poll_t *p, int status, int events)
{
        struct ev *ev = p->data;
        struct epoll_event evs[EP_BATCH];

        for (unsigned round = 0; round < EP_ROUNDS; round++) {
                int n = epoll_wait(ev->epfd, evs, (int)ELEMENTSOF(evs), 0);

                ev->dispatching = true;
                for (int i = 0; i < n; i++) {
                        struct ev_handle *h = evs[i].data.ptr;
                        uint32_t e = evs[i].events;
                        unsigned what = 0;

                        /* Closed (or taken out) earlier in this batch. */
                        if (h->closing || !h->in_set)
                                continue;
                        if (e & (EPOLLERR | EPOLLHUP))
                                what = h->events; /* the next read or write says what */
                        if (e & EPOLLIN)
                                what |= EV_READ;
                        if (e & EPOLLOUT)
                                what |= EV_WRITE;
                        what &= h->events;
                        if (what)
                                h->cb(h, what);
                }
                ev->dispatching = false;
                run_deferred(ev);
                if (n < (int)ELEMENTSOF(evs))
                        return;
        }
}

/* ---- deferred freeing ---- */

static void on_reap(uv_timer_t *t)
{
        struct ev *ev = t->data;

        while (ev->reap) {
                struct ev_handle *h = ev->reap;

                ev->reap = h->reap;
                h->free(h); /* frees the object holding @h */
        }
}

static void tq_unlink(struct ev_handle *h)
{
        if (h->tq == EV_TQ_NONE)
                return;
        h->tl.prev->next = h->tl.next;
        h->tl.next->prev = h->tl.prev;
        h->tl.prev = h->tl.next = NULL;
        h->tq = EV_TQ_NONE;
}

void ev_close(struct ev *ev, struct ev_handle *h, ev_free_cb *free_cb)
{
        assert(!h->closing && !ev->stopping);
        tq_unlink(h);
        h->closing = true;
        h->free = free_cb;
        h->reap = ev->reap;
        ev->reap = h;
        if (!uv_is_active((uv_handle_t *)&ev->reap_timer))
                (void)uv_timer_start(&ev->reap_timer, on_reap, 0, 0);
}

/* ---- deadline queues ---- */

static void on_tq_timer(uv_timer_t *t);

static void tq_arm(struct ev_tq *q, uint64_t ms)
{
        if (q->ev->stopping)
                return;
        (void)uv_timer_start(&q->timer, on_tq_timer, ms, 0);
        q->armed = true;
}

void ev__deadline(struct ev *ev, struct ev_handle *h, unsigned tq)
{
        struct ev_tq *q;
        uint64_t now;

        if (tq == EV_TQ_NONE) {
                tq_unlink(h);
                return;
        }
        assert(tq < ev->n_tq && !h->closing);
        q = &ev->tq[tq];
        now = ev_now(ev);
        if (h->tq == tq && h->since == now)
                return;
        tq_unlink(h);
        h->since = now;
        h->tq = (uint8_t)tq;
        h->tl.prev = q->head.prev;
        h->tl.next = &q->head;
        q->head.prev->next = &h->tl;
        q->head.prev = &h->tl;
        /* An armed timer fires for an entry at least as old as this one,
         * and re-arms for the next from there. */
        if (!q->armed)
                tq_arm(q, q->dur);
}

void ev_tq_set_dur(struct ev *ev, unsigned tq, uint64_t dur)
{
        struct ev_tq *q;
        struct ev_link *l;
        uint64_t now;

        assert(tq < ev->n_tq);
        q = &ev->tq[tq];
        q->dur = dur ? dur : 1;
        /* Every deadline in the queue moves by the same amount, so the FIFO
         * stays sorted; only the timer for its head must be set anew. */
        if (q->armed) {
                (void)uv_timer_stop(&q->timer);
                q->armed = false;
        }
        l = q->head.next;
        if (l == &q->head)
                return;
        now = ev_now(ev);
        tq_arm(q,
               ev_handle_of(l)->since + q->dur > now ? ev_handle_of(l)->since + q->dur - now : 0);
}

static void on_tq_timer(uv_timer_t *t)
{
        struct ev_tq *q = container_of(t, struct ev_tq, timer);
        uint64_t now = ev_now(q->ev);

        q->armed = false;
        for (;;) {
                struct ev_link *l = q->head.next;
                struct ev_handle *h;

                if (l == &q->head)
                        return;
                h = ev_handle_of(l);
                if (h->since + q->dur > now)
                        return tq_arm(q, h->since + q->dur - now);
                tq_unlink(h);
                h->cb(h, EV_TIMEOUT);
        }
}

/* ---- setup and teardown ---- */

int ev_init(struct ev *ev, uv_loop_t *loop, const uint64_t *durs, unsigned n_tq)
{
        int r;

        if (n_tq > EV_TQ_MAX)
                return -EINVAL;
        *ev = (struct ev){.loop = loop, .n_tq = n_tq};
        ev->epfd = epoll_create1(EPOLL_CLOEXEC);
        if (ev->epfd < 0)
                return -errno;
        r = uv_poll_init(loop, &ev->poll, ev->epfd);
        if (r < 0) {
                ev->epfd = safe_close(ev->epfd);
                return r;
        }
        ev->poll.data = ev;
        ev->n_uv = 1;
        (void)uv_timer_init(loop, &ev->reap_timer);
        ev->reap_timer.data = ev;
        ev->n_uv++;
        for (unsigned k = 0; k < n_tq; k++) {
                struct ev_tq *q = &ev->tq[k];

                q->head.prev = q->head.next = &q->head;
                q->dur = durs[k] ? durs[k] : 1;
                q->ev = ev;
                (void)uv_timer_init(loop, &q->timer);
                q->timer.data = ev;
                ev->n_uv++;
        }
        r = uv_poll_start(&ev->poll, UV_READABLE, on_epoll);
        if (r < 0) {
                /* Handles were initialised: they must go through close. */
                ev_stop(ev, NULL, NULL);
                return r;
        }
        return 0;
}

static void on_uv_closed(uv_handle_t *h)
{
        struct ev *ev = h->data;

        assert(ev->n_uv > 0);
        if (--ev->n_uv == 0 && ev->stopped)
                ev->stopped(ev, ev->stopped_ud);
}

void ev_stop(struct ev *ev, void (*stopped)(struct ev *ev, void *ud), void *ud)
{
        if (ev->stopping)
                return;
        ev->stopping = true;
        ev->stopped = stopped;
        ev->stopped_ud = ud;
        /* Deferred callbacks are not run any more. */
        while (ev->defer)
                (void)defer_pop(ev);
        /* Frees still waiting run now (the reap timer is about to close).
         * The caller may itself be a free callback of the reap, called
         * when the last handle went: this nested run takes the rest of the
         * list, and the outer one then finds it empty. */
        on_reap(&ev->reap_timer);
        uv_close((uv_handle_t *)&ev->poll, on_uv_closed);
        uv_close((uv_handle_t *)&ev->reap_timer, on_uv_closed);
        for (unsigned k = 0; k < ev->n_tq; k++)
                uv_close((uv_handle_t *)&ev->tq[k].timer, on_uv_closed);
}

void ev_done(struct ev *ev)
{
        assert(!ev->reap);
        ev->epfd = safe_close(ev->epfd);
}
