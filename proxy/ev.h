/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* The event layer of one engine worker: an epoll set of our own, watched
 * from the worker's libuv loop as one fd; deferred freeing of closed
 * handles; FIFO deadline queues. It knows nothing above it: a handle's
 * owner is reached only through the handle's callback.
 *
 *   - struct ev_handle: an fd in the epoll set (or fd -1: a deadline only)
 *     with a callback for readiness and for its deadline. Interest changes
 *     cost one epoll_ctl when something changes and none otherwise; close()
 *     of the fd takes it out of the set only when no other fd shares its
 *     open file description (a dup'd listener must ev_set(h, 0) first).
 *     Not one uv_poll_t per socket:
 *     uv_poll_init() probes with EPOLL_CTL_ADD+DEL and an ioctl, every
 *     uv_poll_start() DELs and re-ADDs (docs/internals/proxy.md).
 *   - Deferred freeing: after ev_close() the handle gets no callback, and
 *     its free callback runs from a zero-delay timer, so an event already
 *     fetched for it in the same epoll batch is skipped rather than
 *     dispatched to freed memory (h2o's evloop does the same).
 *   - Deadlines: each queue has one fixed duration, so a FIFO list per
 *     queue is sorted by deadline; one uv_timer_t per queue fires for its
 *     head. Putting a handle at the tail is O(1) and starts no timer when
 *     the queue's timer is armed; a handle is in at most one queue. A
 *     request that arrives and finishes within one loop iteration touches
 *     no timer at all.
 *
 * Everything runs on the worker's loop thread; nothing here is
 * thread-safe. */

#include <stdbool.h>
#include <stdint.h>

#include <uv.h>

#define EV_READ    (1u << 0) /* readable, or EOF/an error to collect */
#define EV_WRITE   (1u << 1) /* writable (a connect completed or failed) */
#define EV_TIMEOUT (1u << 2) /* the handle's deadline passed (it left its queue) */
#define EV_DEFER   (1u << 3) /* ev_defer() asked for it: the batch of events is done */

#define EV_TQ_MAX  16u   /* deadline queues per loop */
#define EV_TQ_NONE 0xffu /* ev_handle.tq when not queued */

struct ev;
struct ev_handle;

/* @events (EV_READ | EV_WRITE, or EV_TIMEOUT) happened to @h. Called from
 * the loop only, never from inside an ev_*() call. The owner finds its
 * object with container_of(). */
typedef void ev_cb(struct ev_handle *h, unsigned events);
/* Runs from the reap after ev_close(): free the object holding @h. */
typedef void ev_free_cb(struct ev_handle *h);

struct ev_link {
        struct ev_link *prev, *next;
};

struct ev_handle {
        int fd;         /* -1: deadlines only */
        uint8_t events; /* EV_READ | EV_WRITE registered in the set */
        uint8_t tq;     /* deadline queue, EV_TQ_NONE */
        bool in_set;    /* registered in the epoll set */
        bool closing;   /* ev_close() called: no more callbacks */
        union {
                ev_cb *cb;        /* while open */
                ev_free_cb *free; /* once closing */
        };
        union {
                struct ev_link tl;      /* in queue @tq */
                struct ev_handle *reap; /* once closing: the reap list */
        };
        uint64_t since;          /* ev_now() when queued; the deadline is since + the duration */
        struct ev_handle *dnext; /* in ev->defer (the last one points to itself); NULL: not */
};

struct ev_tq {
        struct ev_link head; /* sentinel of a circular list, oldest first */
        uv_timer_t timer;
        uint64_t dur; /* ms */
        struct ev *ev;
        bool armed;
};

struct ev {
        uv_loop_t *loop;
        int epfd;
        uv_poll_t poll;        /* the loop's watch on @epfd */
        uv_timer_t reap_timer; /* runs the free callbacks of ev_close() */
        struct ev_handle *reap;
        struct ev_tq tq[EV_TQ_MAX];
        unsigned n_tq;
        unsigned n_uv;           /* libuv handles not yet through their close callback */
        struct ev_handle *defer; /* ev_defer()ed handles, called back after the batch */
        bool dispatching;        /* inside on_epoll()'s batch: ev_defer() works */
        bool stopping;           /* ev_stop() called: no timer is started any more */
        void (*stopped)(struct ev *ev, void *ud);
        void *stopped_ud;
};

/* Create the epoll set and the libuv handles on @loop, with @n_tq deadline
 * queues of @durs[i] ms each (0 counts as 1). Returns 0, -EINVAL (too many
 * queues) or -errno; on failure nothing needs undoing. */
int ev_init(struct ev *ev, uv_loop_t *loop, const uint64_t *durs, unsigned n_tq);

/* Close the libuv handles; @stopped runs once all of them went through
 * their close callbacks (the loop can end). No deadline fires afterwards;
 * handles still open are the caller's bug. */
void ev_stop(struct ev *ev, void (*stopped)(struct ev *ev, void *ud), void *ud);

/* After @stopped (or when ev_init() failed): close the epoll set. */
void ev_done(struct ev *ev);

/* The loop's cached time in ms (uv_now()). */
static inline uint64_t ev_now(const struct ev *ev)
{
        return uv_now(ev->loop);
}

/* Set up @h for @fd (-1: deadlines only); no interest yet. */
void ev_handle_init(struct ev_handle *h, int fd, ev_cb *cb);

int ev__set(struct ev *ev, struct ev_handle *h, unsigned events);
void ev__deadline(struct ev *ev, struct ev_handle *h, unsigned tq);

/* Register interest @events (EV_READ | EV_WRITE; 0 takes the fd out of the
 * set): one epoll_ctl when something changes, none otherwise (that check is
 * inline: it runs several times per request). Returns 0 or -errno. Does
 * nothing on a closing handle. */
static inline int ev_set(struct ev *ev, struct ev_handle *h, unsigned events)
{
        if (events == h->events && (h->in_set || events == 0))
                return 0;
        return ev__set(ev, h, events);
}

/* Put @h at the tail of queue @tq (EV_TQ_NONE: out of any queue); its
 * deadline is now + the queue's duration. Nothing happens when @h is
 * already in @tq since this same ms. */
static inline void ev_deadline(struct ev *ev, struct ev_handle *h, unsigned tq)
{
        if (tq == EV_TQ_NONE && h->tq == EV_TQ_NONE)
                return;
        ev__deadline(ev, h, tq);
}

/* Called back once with EV_DEFER when the current batch of events has been
 * dispatched, however many times it was asked during it: an owner woken by
 * several sockets in one batch (an HTTP/2 connection by the backends of its
 * streams) does its work once for all of them. Works only while an event
 * of the epoll set is being dispatched: otherwise (deadlines, outside the
 * loop) returns false and the caller acts at once. A closed handle gets no
 * callback. Returns true when deferred. */
static inline bool ev_defer(struct ev *ev, struct ev_handle *h)
{
        if (!ev->dispatching || ev->stopping || h->closing)
                return false;
        if (!h->dnext) {
                h->dnext = ev->defer ? ev->defer : h;
                ev->defer = h;
        }
        return true;
}

/* Give queue @tq the duration @dur ms (0 counts as 1) from now on: the
 * deadlines of the handles in it move by the difference (a live change of
 * a timeout). */
void ev_tq_set_dur(struct ev *ev, unsigned tq, uint64_t dur);

/* No more callbacks for @h; @free runs from the reap, on a later loop
 * iteration. The fd is the owner's to close (close() takes it out of the
 * set unless a dup of it is open elsewhere: then ev_set(h, 0) first);
 * closing it at once is fine. */
void ev_close(struct ev *ev, struct ev_handle *h, ev_free_cb *free);

/* Handles in queue @tq, oldest first: for walks that may close the
 * current one (fetch the next link first). */
static inline struct ev_link *ev_tq_first(struct ev *ev, unsigned tq)
{
        struct ev_link *l = ev->tq[tq].head.next;

        return l == &ev->tq[tq].head ? NULL : l;
}
static inline struct ev_link *ev_tq_next(struct ev *ev, unsigned tq, struct ev_link *l)
{
        return l->next == &ev->tq[tq].head ? NULL : l->next;
}
static inline struct ev_handle *ev_handle_of(struct ev_link *l)
{
        return (struct ev_handle *)((char *)l - __builtin_offsetof(struct ev_handle, tl));
}
