/* SPDX-License-Identifier: Apache-2.0 */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <uv.h>

#include "common/log.h"
#include "common/macros.h"
#include "proxy/climits.h"
#include "proxy/ev.h"
#include "proxy/h1-server.h"
#include "proxy/proxy.h"
#include "proxy/routes.h"
#include "proxy/sock.h"
#include "proxy/tls-front.h"
#include "proxy/worker.h"

/* The engine: worker threads, their loops and listeners, and the public
 * API. Each worker's connections live on its struct proxy_worker
 * (worker.h): one epoll set for every socket (proxy/ev.h), watched from the
 * worker's libuv loop, which otherwise only carries the wakeup (uv_async_t)
 * and the stop deadline. */

#define LISTEN_BACKLOG 511
#define ACCEPT_BATCH   32u /* accepts per listener wakeup, for fairness */

struct worker;

/* A worker's copy of one listening socket, in the worker's epoll set and
 * accepted with accept4() here, not with uv_listen(): libuv's accept loop
 * answers EMFILE by calling accept() again at once, forever when its one
 * spare descriptor was taken by another thread, and a loop stuck there
 * never closes the connections that would free descriptors (issue 10).
 * Allocated: replacing a listener opens the new one while the old one's
 * memory waits for the reap. */
struct listener {
        struct ev_handle h; /* the fd; PROXY_TQ_BACKOFF while backing off */
        struct worker *w;
        bool https;       /* :443 (the TLS front) or :80 (HTTP/1.1) */
        bool full;        /* paused: the worker is at its limit (a free resumes it) */
        bool backing_off; /* paused: an accept4() error; the deadline resumes it */
};

struct worker {
        struct proxy_worker pw;  /* its connections, epoll set, pool (worker.h) */
        struct proxy_config cfg; /* the worker's own copy (pw.cfg): live limits change it */
        unsigned live_gen;       /* of the live limits in @cfg */
        struct proxy_engine *e;
        unsigned idx;
        uv_thread_t thread;
        uv_loop_t loop;
        uv_async_t async;      /* routes changed / stop requested / listeners replaced */
        struct listener *l443; /* our dup of https_fd, or NULL */
        struct listener *l80;  /* our dup of http_fd, or NULL */
        uv_timer_t stop_timer; /* graceful stop deadline */
        bool loop_init, async_init, stop_timer_init;
        bool thread_started;
        bool stopping;    /* stop began: listeners closed */
        bool finished;    /* worker handles closed: the loop will end */
        int loop_close_r; /* uv_loop_close() result, read after join */
        atomic_bool stop_requested;

        /* proxy_engine_replace_listeners(): dups waiting for the worker. */
        uv_mutex_t lmutex;
        bool lmutex_init;
        bool new_listeners;
        int new_https_fd, new_http_fd;
};

struct proxy_engine {
        struct proxy_config cfg; /* defaults resolved */
        unsigned worker_fds;     /* each worker's share of max_fds for its connections */
        struct climits climits;  /* per-client and total connection limits, all workers */
        bool climits_init;
        /* proxy_engine_set_limits(): the live fields for the workers. */
        uv_mutex_t live_mutex; /* guards @live */
        bool live_mutex_init;
        struct proxy_config live;
        atomic_uint live_gen;
        struct proxy_route_table *routes;
        bool started;
        bool stopped;
        uint64_t stop_ms; /* this stop's deadline (written before the workers are woken) */
        unsigned n_workers;
        struct worker workers[];
};

/* ---- accepting ---- */

static bool worker_full(const struct worker *w)
{
        return w->pw.n_conns >= w->e->cfg.max_conns_per_worker;
}

/* A client connection was just accepted (not yet counted): close idle
 * pooled backend connections whose descriptors it may need. Done after
 * accept4(), not before, so a wakeup that finds no connection closes
 * nothing; the one descriptor this runs ahead is part of
 * PROXY_ENGINE_WORKER_FDS. */
static void worker_make_room(struct worker *w)
{
        unsigned n = w->pw.n_conns + 1, fds = w->pw.fds;

        upstream_pool_trim(&w->pw.pool, 2 * n < fds ? fds - 2 * n : 0);
}

static void listener_backoff(struct listener *l);

/* Poll @l unless it is paused (worker full, backing off, stopping). */
static void listener_update(struct listener *l)
{
        bool want = !l->full && !l->backing_off && !l->w->stopping;

        if (ev_set(&l->w->pw.ev, &l->h, want ? EV_READ : 0) < 0 && want)
                listener_backoff(l); /* tried again after the backoff */
}

/* accept4() failed for want of descriptors or memory: the listening socket
 * stays readable, so polling it would call us right back. Stop for a while
 * instead; connections wait in the kernel's queue meanwhile. */
static void listener_backoff(struct listener *l)
{
        proxy_stat_add(&l->w->pw.stats.accept_backoffs, 1);
        l->backing_off = true;
        (void)ev_set(&l->w->pw.ev, &l->h, 0);
        ev_deadline(&l->w->pw.ev, &l->h, PROXY_TQ_BACKOFF);
}

/* A connection was freed: listeners paused at the limit poll again. */
static void worker_resume_accept(struct worker *w)
{
        struct listener *ls[] = {w->l443, w->l80};

        if (w->stopping || worker_full(w))
                return;
        for (unsigned i = 0; i < ELEMENTSOF(ls); i++)
                if (ls[i] && ls[i]->full) {
                        ls[i]->full = false;
                        listener_update(ls[i]);
                }
}

/* Wrap the accepted @fd and hand it to its protocol: the TLS front on :443,
 * HTTP/1.1 on :80. Returns 0, or -ENOMEM (the fd was closed: the client
 * sees a reset). */
static int worker_accept(struct worker *w, int fd, const struct sockaddr_storage *peer, bool https)
{
        struct sock *s;
        int r, one = 1;

        r = sock_new(&w->pw.ev, fd, NULL, NULL, &s);
        if (r < 0)
                return r;
        (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        sock_set_peer(s, peer);
        if (https)
                return tls_front_start(&w->pw, s);
        r = h1_conn_start(&w->pw, s, /* sni_route= */ NULL, /* from= */ NULL);
        if (r < 0)
                sock_close(s, false, NULL);
        return r == -ENOMEM ? r : 0;
}

static const char resp_429[] = "HTTP/1.1 429 Too Many Requests\r\n"
                               "Content-Type: text/plain\r\n"
                               "Content-Length: 22\r\n"
                               "Retry-After: 1\r\n"
                               "Connection: close\r\n"
                               "\r\n"
                               "429 Too Many Requests\n";
static const char resp_503[] = "HTTP/1.1 503 Service Unavailable\r\n"
                               "Content-Type: text/plain\r\n"
                               "Content-Length: 24\r\n"
                               "Retry-After: 1\r\n"
                               "Connection: close\r\n"
                               "\r\n"
                               "503 Service Unavailable\n";

/* @fd is over a client limit: close it at once, never reading more than
 * one buffer, never waiting. On :80 a request may already be there: read
 * it (so that close() sends a FIN, not a reset) and answer 429 (503 for
 * the total), which fits any socket buffer. On :443 nothing can be said
 * before a handshake, which is what the limit saves. */
static void worker_refuse(struct worker *w, int fd, bool https, enum climit_verdict v)
{
        proxy_stat_add(&w->pw.stats.limit_rejections[https ? 0 : 1][v], 1);
        if (!https) {
                const char *resp = v == CLIMIT_TOTAL ? resp_503 : resp_429;
                size_t len = v == CLIMIT_TOTAL ? sizeof(resp_503) - 1 : sizeof(resp_429) - 1;

                (void)recv(fd, w->pw.scratch, PROXY_SCRATCH_SIZE, MSG_DONTWAIT);
                (void)send(fd, resp, len, MSG_DONTWAIT | MSG_NOSIGNAL);
        }
        safe_close(fd);
}

/* accept4() in a bounded batch. */
static void on_listener(struct ev_handle *h, unsigned events)
{
        struct listener *l = container_of(h, struct listener, h);
        struct worker *w = l->w;

        if (w->stopping)
                return;
        if (events & EV_TIMEOUT) {
                l->backing_off = false;
                return listener_update(l);
        }
        for (unsigned i = 0; i < ACCEPT_BATCH; i++) {
                struct sockaddr_storage peer;
                socklen_t len = sizeof(peer);
                enum climit_verdict v;
                int fd, r;

                if (worker_full(w)) {
                        l->full = true;
                        return listener_update(l);
                }
                fd = accept4(l->h.fd, (struct sockaddr *)&peer, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
                if (fd < 0) {
                        switch (errno) {
                        case EAGAIN:
                                return;
                        case EINTR:
                        case ECONNABORTED:
                        /* accept(2): errors of the pending connection, which
                         * is gone; the next one may be fine. */
                        case EPROTO:
                        case ENOPROTOOPT:
                        case EHOSTDOWN:
                        case ENONET:
                        case EHOSTUNREACH:
                        case EOPNOTSUPP:
                        case ENETUNREACH:
                        case ENETDOWN:
                                continue;
                        default:
                                /* EMFILE, ENFILE, ENOBUFS, ENOMEM, or an error
                                 * that would come back at once (EBADF,
                                 * EINVAL): never retry it in a loop. */
                                return listener_backoff(l);
                        }
                }
                proxy_stat_add(&w->pw.stats.accepted, 1);
                v = climits_admit(&w->e->climits, &peer, l->https ? CLIMIT_HTTPS : CLIMIT_HTTP,
                                  uv_hrtime() / 1000, &w->pw.admit_handle);
                if (v != CLIMIT_ADMIT) {
                        worker_refuse(w, fd, l->https, v);
                        continue;
                }
                w->pw.admitted = true;
                worker_make_room(w);
                r = worker_accept(w, fd, &peer, l->https);
                if (w->pw.admitted) {
                        /* No connection object took the count. */
                        climits_release(&w->e->climits, w->pw.admit_handle);
                        w->pw.admit_handle = 0;
                        w->pw.admitted = false;
                }
                if (r == -ENOMEM)
                        return listener_backoff(l);
        }
}

static void on_listener_freed(struct ev_handle *h)
{
        free(container_of(h, struct listener, h));
}

static void listener_close(struct listener *l)
{
        if (!l)
                return;
        /* Out of the epoll set first: @fd is a dup, and epoll keys its
         * entries on the open file description, which the daemon's copy and
         * the other workers' dups keep open, so close() alone would leave
         * the entry reporting events for freed memory. The memory still
         * waits for the reap (an event may already be fetched for it). */
        (void)ev_set(&l->w->pw.ev, &l->h, 0);
        l->h.fd = safe_close(l->h.fd);
        ev_close(&l->w->pw.ev, &l->h, on_listener_freed);
}

/* Listen on @fd (ours: closed whatever happens) and poll it. */
static int listener_open(struct worker *w, int fd, bool https, struct listener **ret)
{
        struct listener *l;
        int r;

        l = calloc(1, sizeof(*l));
        if (!l) {
                safe_close(fd);
                return -ENOMEM;
        }
        l->w = w;
        l->https = https;
        ev_handle_init(&l->h, fd, on_listener);
        /* accept4() must never block the loop. O_NONBLOCK is a flag of the
         * open file description, which the caller's fd and every worker's
         * dup share (uv_poll_init() used to set it the same way). */
        if (ioctl(fd, FIONBIO, &(int){1}) < 0 || listen(fd, LISTEN_BACKLOG) < 0) {
                r = -errno;
                safe_close(fd);
                free(l);
                return r;
        }
        r = ev_set(&w->pw.ev, &l->h, EV_READ);
        if (r < 0) {
                safe_close(fd);
                free(l);
                return r;
        }
        *ret = l;
        return 0;
}

/* ---- workers ---- */

static void on_worker_handle_close(uv_handle_t *h)
{
}

/* The worker's connections: one was freed (resume accepting), or all of
 * it finished after a stop (close the worker's own handles). */
static void on_conn_freed(struct proxy_worker *pw)
{
        struct worker *w = container_of(pw, struct worker, pw);

        worker_resume_accept(w);
        if (!pw->finished || w->finished)
                return;
        w->finished = true;
        uv_close((uv_handle_t *)&w->async, on_worker_handle_close);
        uv_close((uv_handle_t *)&w->stop_timer, on_worker_handle_close);
}

static void on_stop_timer(uv_timer_t *t)
{
        struct worker *w = t->data;

        proxy_worker_close_all(&w->pw);
}

static void worker_take_new_listeners(struct worker *w, int *https_fd, int *http_fd)
{
        *https_fd = *http_fd = -1;
        if (!w->lmutex_init)
                return;
        uv_mutex_lock(&w->lmutex);
        if (w->new_listeners) {
                *https_fd = w->new_https_fd;
                *http_fd = w->new_http_fd;
                w->new_https_fd = w->new_http_fd = -1;
                w->new_listeners = false;
        }
        uv_mutex_unlock(&w->lmutex);
}

static void worker_begin_stop(struct worker *w)
{
        int a, b;

        w->stopping = true;
        /* Connections still in the kernel's accept queue are reset. */
        listener_close(TAKE_PTR(w->l443));
        listener_close(TAKE_PTR(w->l80));
        worker_take_new_listeners(w, &a, &b);
        safe_close(a);
        safe_close(b);
        (void)uv_timer_start(&w->stop_timer, on_stop_timer, w->e->stop_ms, 0);
        proxy_worker_begin_stop(&w->pw);
}

static void worker_replace_listeners(struct worker *w)
{
        int https_fd, http_fd;

        worker_take_new_listeners(w, &https_fd, &http_fd);
        if (https_fd < 0 && http_fd < 0 && !w->l443 && !w->l80)
                return;
        listener_close(TAKE_PTR(w->l443));
        listener_close(TAKE_PTR(w->l80));
        /* A failure leaves that port unserved on this worker; the others
         * (and the next replace) are unaffected. A worker at its limit
         * pauses the new listeners at their first wakeup. */
        if (https_fd >= 0 && listener_open(w, https_fd, true, &w->l443) < 0)
                log_debug("proxy: worker %u: cannot listen on the new :443 socket", w->idx);
        if (http_fd >= 0 && listener_open(w, http_fd, false, &w->l80) < 0)
                log_debug("proxy: worker %u: cannot listen on the new :80 socket", w->idx);
}

/* proxy_engine_set_limits() published new live limits: take them into the
 * worker's own copy of the configuration (only this thread reads it). */
static void worker_take_limits(struct worker *w)
{
        struct proxy_engine *e = w->e;
        unsigned gen = atomic_load_explicit(&e->live_gen, memory_order_acquire);

        if (gen == w->live_gen)
                return;
        uv_mutex_lock(&e->live_mutex);
        w->live_gen = atomic_load_explicit(&e->live_gen, memory_order_relaxed);
        (void)proxy_config_resolve_live(&e->live, &w->cfg);
        uv_mutex_unlock(&e->live_mutex);
        proxy_worker_apply_limits(&w->pw, &w->cfg);
}

static void on_async(uv_async_t *a)
{
        struct worker *w = a->data;
        bool pending;

        if (w->stopping)
                return;
        /* First: limits set just before a stop (a reload that also turns
         * the proxy off) bring the drain deadline the stop uses. */
        worker_take_limits(w);
        if (atomic_load_explicit(&w->stop_requested, memory_order_acquire))
                return worker_begin_stop(w);

        uv_mutex_lock(&w->lmutex);
        pending = w->new_listeners;
        uv_mutex_unlock(&w->lmutex);
        if (pending)
                worker_replace_listeners(w);
        proxy_worker_routes_changed(&w->pw);
}

static void worker_main(void *arg)
{
        struct worker *w = arg;

        (void)uv_run(&w->loop, UV_RUN_DEFAULT);
        w->loop_close_r = uv_loop_close(&w->loop);
}

/* For a worker whose thread never started: close what was opened and run
 * the loop here until the close callbacks are through. */
static void worker_teardown_unstarted(struct worker *w)
{
        if (!w->loop_init)
                return;
        listener_close(TAKE_PTR(w->l443));
        listener_close(TAKE_PTR(w->l80));
        w->stopping = true;
        if (w->pw.ev_init) {
                /* Nothing was accepted: this finishes at once and closes
                 * the worker's handles from on_conn_freed(). */
                proxy_worker_begin_stop(&w->pw);
        } else {
                if (w->async_init)
                        uv_close((uv_handle_t *)&w->async, on_worker_handle_close);
                if (w->stop_timer_init)
                        uv_close((uv_handle_t *)&w->stop_timer, on_worker_handle_close);
        }
        (void)uv_run(&w->loop, UV_RUN_DEFAULT);
        w->loop_close_r = uv_loop_close(&w->loop);
        w->loop_init = false;
}

static int dup_fd(int fd)
{
        int r;

        if (fd < 0)
                return -1;
        r = fcntl(fd, F_DUPFD_CLOEXEC, 3);
        return r < 0 ? -errno : r;
}

static int worker_init(struct worker *w)
{
        const struct proxy_config *cfg = &w->e->cfg;
        int fd, r;

        w->new_https_fd = w->new_http_fd = -1;
        w->pw.idx = w->idx;
        /* Live limits set before the start are in e->live already. */
        w->cfg = w->e->cfg;
        uv_mutex_lock(&w->e->live_mutex);
        w->live_gen = atomic_load_explicit(&w->e->live_gen, memory_order_relaxed);
        (void)proxy_config_resolve_live(&w->e->live, &w->cfg);
        uv_mutex_unlock(&w->e->live_mutex);
        w->pw.climits = &w->e->climits;
        r = uv_mutex_init(&w->lmutex);
        if (r < 0)
                return r;
        w->lmutex_init = true;
        r = uv_loop_init(&w->loop);
        if (r < 0)
                return r;
        w->loop_init = true;
        r = uv_async_init(&w->loop, &w->async, on_async);
        if (r < 0)
                return r;
        w->async.data = w;
        w->async_init = true;
        r = uv_timer_init(&w->loop, &w->stop_timer);
        if (r < 0)
                return r;
        w->stop_timer.data = w;
        w->stop_timer_init = true;
        r = proxy_worker_init(&w->pw, &w->loop, &w->cfg, w->e->routes, w->e->worker_fds,
                              on_conn_freed);
        if (r < 0)
                return r;

        if (cfg->https_fd >= 0) {
                fd = dup_fd(cfg->https_fd);
                if (fd < 0)
                        return fd;
                r = listener_open(w, fd, true, &w->l443);
                if (r < 0)
                        return r;
        }
        if (cfg->http_fd >= 0) {
                fd = dup_fd(cfg->http_fd);
                if (fd < 0)
                        return fd;
                r = listener_open(w, fd, false, &w->l80);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* ---- engine ---- */

int proxy_engine_new(const struct proxy_config *cfg, struct proxy_route_table *routes,
                     struct proxy_engine **ret)
{
        struct proxy_engine *e;
        struct proxy_config c;
        unsigned n, worker_fds = 0;
        int r;

        assert(cfg && routes && ret);
        r = proxy_config_resolve(cfg, &c, &worker_fds);
        if (r < 0)
                return r;
        n = c.workers;

        e = calloc(1, sizeof(*e) + n * sizeof(struct worker));
        if (!e)
                return -ENOMEM;
        e->cfg = c;
        e->worker_fds = worker_fds;
        e->routes = routes;
        e->n_workers = n;
        e->live = c;
        atomic_init(&e->live_gen, 0);
        r = uv_mutex_init(&e->live_mutex);
        if (r < 0) {
                free(e);
                return r;
        }
        e->live_mutex_init = true;
        r = climits_init(&e->climits, c.max_connections, c.max_conns_per_client,
                         c.new_conns_per_sec);
        if (r < 0) {
                proxy_engine_free(e);
                return r;
        }
        e->climits_init = true;
        for (unsigned i = 0; i < n; i++) {
                e->workers[i].e = e;
                e->workers[i].idx = i;
        }
        *ret = e;
        return 0;
}

int proxy_engine_start(struct proxy_engine *e)
{
        int r = 0;

        assert(e);
        if (e->started)
                return -EALREADY;
        e->started = true;
        for (unsigned i = 0; i < e->n_workers && r >= 0; i++)
                r = worker_init(&e->workers[i]);
        for (unsigned i = 0; i < e->n_workers && r >= 0; i++) {
                struct worker *w = &e->workers[i];

                /* Everything the thread uses was initialised above;
                 * thread creation orders those writes before its reads. */
                r = uv_thread_create(&w->thread, worker_main, w);
                if (r >= 0)
                        w->thread_started = true;
        }
        if (r < 0) {
                (void)proxy_engine_stop(e);
                return r;
        }
        return 0;
}

int proxy_engine_replace_listeners(struct proxy_engine *e, int https_fd, int http_fd)
{
        int r = 0;

        assert(e);
        if (!e->started || e->stopped)
                return -EBADF;
        if ((https_fd >= 0 && fcntl(https_fd, F_GETFD) < 0) ||
            (http_fd >= 0 && fcntl(http_fd, F_GETFD) < 0))
                return -EBADF;
        for (unsigned i = 0; i < e->n_workers; i++) {
                struct worker *w = &e->workers[i];
                int a = dup_fd(https_fd), b = dup_fd(http_fd), old_a, old_b;

                if (a < -1 || b < -1) {
                        r = a < -1 ? a : b;
                        safe_close(a);
                        safe_close(b);
                        /* Workers told so far keep their new sockets. */
                        return r == -EMFILE || r == -ENFILE ? -ENOMEM : r;
                }
                uv_mutex_lock(&w->lmutex);
                old_a = w->new_https_fd;
                old_b = w->new_http_fd;
                w->new_https_fd = a;
                w->new_http_fd = b;
                w->new_listeners = true;
                uv_mutex_unlock(&w->lmutex);
                /* A replace not yet picked up is superseded. */
                safe_close(old_a);
                safe_close(old_b);
                if (w->thread_started)
                        (void)uv_async_send(&w->async);
        }
        return 0;
}

void proxy_engine_routes_changed(struct proxy_engine *e)
{
        assert(e);
        if (!e->started || e->stopped)
                return;
        for (unsigned i = 0; i < e->n_workers; i++)
                if (e->workers[i].thread_started)
                        (void)uv_async_send(&e->workers[i].async);
}

int proxy_engine_stop(struct proxy_engine *e)
{
        assert(e);
        return proxy_engine_stop_within(e, e->cfg.stop_timeout_ms);
}

int proxy_engine_stop_within(struct proxy_engine *e, uint64_t timeout_ms)
{
        int r = 0;

        assert(e);
        if (!e->started || e->stopped)
                return 0;
        e->stopped = true;
        /* Read by each worker after its stop_requested (release/acquire). */
        e->stop_ms = timeout_ms;
        for (unsigned i = 0; i < e->n_workers; i++) {
                struct worker *w = &e->workers[i];

                if (!w->thread_started)
                        continue;
                atomic_store_explicit(&w->stop_requested, true, memory_order_release);
                (void)uv_async_send(&w->async);
        }
        for (unsigned i = 0; i < e->n_workers; i++) {
                struct worker *w = &e->workers[i];

                if (w->thread_started) {
                        (void)uv_thread_join(&w->thread);
                        w->thread_started = false;
                        w->loop_init = false;
                } else {
                        worker_teardown_unstarted(w);
                }
                if (w->loop_close_r < 0 && r == 0) {
                        log_debug("proxy: worker %u: loop not empty at stop: %s", w->idx,
                                  uv_strerror(w->loop_close_r));
                        r = -EBUSY;
                }
                proxy_worker_done(&w->pw);
                if (w->lmutex_init) {
                        safe_close(w->new_https_fd);
                        safe_close(w->new_http_fd);
                        w->new_https_fd = w->new_http_fd = -1;
                        uv_mutex_destroy(&w->lmutex);
                        w->lmutex_init = false;
                }
        }
        return r;
}

struct proxy_engine *proxy_engine_free(struct proxy_engine *e)
{
        if (!e)
                return NULL;
        (void)proxy_engine_stop(e);
        if (e->climits_init)
                climits_done(&e->climits);
        if (e->live_mutex_init)
                uv_mutex_destroy(&e->live_mutex);
        free(e);
        return NULL;
}

void proxy_engine_stats(const struct proxy_engine *e, struct proxy_engine_stats *ret)
{
        assert(e && ret);
        memset(ret, 0, sizeof(*ret));
        for (unsigned i = 0; i < e->n_workers; i++) {
                const struct worker *w = &e->workers[i];

                const struct proxy_worker_stats *h = &w->pw.stats;

                ret->accepted += atomic_load_explicit(&h->accepted, memory_order_relaxed);
                ret->accept_backoffs +=
                        atomic_load_explicit(&h->accept_backoffs, memory_order_relaxed);
                ret->active += atomic_load_explicit(&h->active, memory_order_relaxed);
                for (unsigned k = 0; k < 2; k++)
                        ret->open[k] += atomic_load_explicit(&h->open[k], memory_order_relaxed);
                ret->connect_errors +=
                        atomic_load_explicit(&h->connect_errors, memory_order_relaxed);
                ret->tls_handshakes +=
                        atomic_load_explicit(&h->tls_handshakes, memory_order_relaxed);
                ret->tls_resumed += atomic_load_explicit(&h->tls_resumed, memory_order_relaxed);
                ret->http_requests += atomic_load_explicit(&h->http_requests, memory_order_relaxed);
                for (unsigned k = 0; k < 5; k++)
                        ret->http_status[k] +=
                                atomic_load_explicit(&h->http_status[k], memory_order_relaxed);
                ret->upstream_connects +=
                        atomic_load_explicit(&h->upstream_connects, memory_order_relaxed);
                ret->upstream_reused +=
                        atomic_load_explicit(&h->upstream_reused, memory_order_relaxed);
                for (unsigned k = 0; k < _PROXY_CLOSE_MAX; k++)
                        ret->closed[k] += atomic_load_explicit(&h->closed[k], memory_order_relaxed);
                for (unsigned p = 0; p < 2; p++)
                        for (unsigned k = 0; k < _PROXY_LIMIT_MAX; k++)
                                ret->limit_rejections[p][k] += atomic_load_explicit(
                                        &h->limit_rejections[p][k], memory_order_relaxed);
        }
        if (e->climits_init) {
                ret->limit_untracked =
                        atomic_load_explicit(&e->climits.untracked, memory_order_relaxed);
                ret->open_connections =
                        atomic_load_explicit(&e->climits.total, memory_order_relaxed);
        }
}

int proxy_engine_set_limits(struct proxy_engine *e, const struct proxy_config *cfg)
{
        struct proxy_config c;
        int r;

        assert(e && cfg);
        uv_mutex_lock(&e->live_mutex);
        c = e->live;
        r = proxy_config_resolve_live(cfg, &c);
        if (r >= 0) {
                e->live = c;
                atomic_fetch_add_explicit(&e->live_gen, 1, memory_order_release);
        }
        uv_mutex_unlock(&e->live_mutex);
        if (r < 0)
                return r;
        climits_set(&e->climits, c.max_connections, c.max_conns_per_client, c.new_conns_per_sec);
        /* The owner thread's own reads of the configuration (a stop's
         * deadline) see the new drain deadline too; workers never read this
         * field of e->cfg (they have their copies). */
        e->cfg.stop_timeout_ms = c.stop_timeout_ms;
        if (!e->started || e->stopped)
                return 0;
        for (unsigned i = 0; i < e->n_workers; i++)
                if (e->workers[i].thread_started)
                        (void)uv_async_send(&e->workers[i].async);
        return 0;
}

unsigned proxy_engine_workers(const struct proxy_engine *e)
{
        assert(e);
        return e->n_workers;
}

unsigned proxy_engine_max_conns(const struct proxy_engine *e)
{
        assert(e);
        return e->cfg.max_conns_per_worker;
}

unsigned proxy_engine_max_fds(const struct proxy_engine *e)
{
        assert(e);
        return e->cfg.max_fds;
}

uint64_t proxy_engine_stop_timeout_ms(const struct proxy_engine *e)
{
        assert(e);
        return e->cfg.stop_timeout_ms;
}
