/* SPDX-License-Identifier: Apache-2.0 */
/* The access log's writer thread (issue 11). The engine's workers format
 * lines into one ring each (proxy/access-log.c); this thread drains them.
 *
 * Why a thread and not the loop: a write to a file can take milliseconds
 * (a slow disk, a full journal), and the loop answers the bus. Why a tick
 * and not a wakeup per line: a wakeup is a syscall on the worker (an
 * eventfd write, ~0.5 µs, more than formatting and queueing the line) and
 * a write per line on this side; with a tick, a busy worker's lines leave
 * in batches of a few hundred per write and an idle gateway costs ten
 * wakeups a second. A burst that fills half a ring wakes the writer at
 * once (one eventfd write per crossing), so the tick only bounds how late
 * a line of a quiet gateway appears (GW_ACCESSLOG_TICK_MS). */
#include "daemon/accesslog.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <systemd/sd-journal.h>
#include <uv.h>

#include "common/log.h"
#include "common/macros.h"
#include "common/spsc-ring.h"
#include "common/strbuf.h"
#include "daemon/daemon.h"
#include "proxy/access-log.h"

enum target_kind {
        T_OFF,
        T_FILE,    /* a path we opened */
        T_STDERR,  /* our copy of fd 2 */
        T_JOURNAL, /* sd_journal_sendv(), one line per entry */
};

enum write_mode {
        W_BATCH,  /* a regular file: everything queued in one writev() */
        W_CHUNKS, /* a pipe, FIFO or terminal (non-blocking): whole lines, <= PIPE_BUF each */
        W_SEND,   /* a stream socket (stderr under systemd): the same with send(MSG_DONTWAIT) */
};

struct target {
        enum target_kind kind;
        enum write_mode mode;
        int fd; /* T_FILE, T_STDERR; else -1 */
};

struct gw_accesslog {
        struct proxy_access_sink sink;
        int efd; /* eventfd: wakes the writer (workers at half full, the loop thread) */
        pthread_t thread;
        bool started;

        /* @lock guards what the loop thread asks of the writer. */
        pthread_mutex_t lock;
        pthread_cond_t cond;  /* @flushed advanced */
        struct target next;   /* switch to this before the next write, if @has_next */
        uint64_t *next_cut;   /* [n_slots]: each ring's spsc_ring_pushed() when @next was
                               * asked for; the old target gets the lines before it */
        bool has_next;        /* */
        bool stop;            /* drain, then end the thread */
        uint64_t flush_req;   /* flushes asked for */
        uint64_t flushed;     /* ... and done: every ring written up to its state then */
        bool writer_finished; /* the thread ended: no flush can complete any more */

        /* The loop thread's own. */
        char *spec; /* the target as configured ("stderr", "journal", a path), NULL: off */

        /* The writer thread's own. */
        struct target cur;
        uint64_t *cut;     /* [n_slots]: a copy of @next_cut taken with @next */
        bool blocked;      /* cur would block: wait for POLLOUT */
        uint64_t retry_at; /* CLOCK_MONOTONIC ms: no write before (after an error) */
        bool failing;      /* an error was logged and no write succeeded since */
        char jbuf[sizeof("MESSAGE=") + PROXY_ACCESS_LINE_MAX]; /* one line for the journal */

        atomic_uint_least64_t written;      /* lines */
        atomic_uint_least64_t write_errors; /* failed writes */
        atomic_uint_least64_t lost;         /* lines still queued at the stop or while off */
};

static uint64_t now_ms(void)
{
        struct timespec ts;

        (void)clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void target_close(struct target *t)
{
        t->fd = safe_close(t->fd);
        t->kind = T_OFF;
}

static uint64_t count_lines(const void *p, size_t n)
{
        const char *s = p, *end = s + n;
        uint64_t k = 0;

        while (s < end && (s = memchr(s, '\n', (size_t)(end - s)))) {
                k++;
                s++;
        }
        return k;
}

/* ======================================================================
 * The writer thread
 * ====================================================================== */

static void wake(struct gw_accesslog *al)
{
        uint64_t one = 1;

        /* EAGAIN only when the counter is near overflow: it is awake then. */
        (void)!write(al->efd, &one, sizeof(one));
}

static void on_ring_half_full(void *ud)
{
        wake(ud);
}

/* An error of the target: counted, retried later, logged once until a
 * write succeeds again. */
static int write_failed(struct gw_accesslog *al, int r)
{
        atomic_fetch_add_explicit(&al->write_errors, 1, memory_order_relaxed);
        al->retry_at = now_ms() + GW_ACCESSLOG_RETRY_MS;
        if (!al->failing) {
                al->failing = true;
                log_warning_errno(r,
                                  "Cannot write the access log (%s): %m; lines stay queued "
                                  "and are dropped once a worker's buffer is full",
                                  al->cur.kind == T_JOURNAL ? "journal" : "file or stderr");
        }
        return -EIO;
}

static void write_succeeded(struct gw_accesslog *al, uint64_t lines)
{
        atomic_fetch_add_explicit(&al->written, lines, memory_order_relaxed);
        if (al->failing && lines > 0) {
                al->failing = false;
                log_info("Writing the access log again");
        }
}

/* The longest prefix of @iov (@n spans) of at most @max bytes that ends in
 * '\n'; 0 if the first line is longer (it cannot be: lines are at most
 * PROXY_ACCESS_LINE_MAX). */
static size_t whole_lines(const struct iovec *iov, unsigned n, size_t max)
{
        size_t off = 0, best = 0;

        for (unsigned i = 0; i < n && off < max; i++) {
                size_t len = MIN(iov[i].iov_len, max - off);
                const char *base = iov[i].iov_base, *nl = memrchr(base, '\n', len);

                if (nl)
                        best = off + (size_t)(nl - base) + 1;
                off += iov[i].iov_len;
        }
        return best;
}

/* The first @len bytes of @iov as at most two spans in @out. */
static unsigned cut_spans(const struct iovec *iov, unsigned n, size_t len, struct iovec out[2])
{
        unsigned k = 0;

        for (unsigned i = 0; i < n && len > 0; i++) {
                out[k] = iov[i];
                out[k].iov_len = MIN(iov[i].iov_len, len);
                len -= out[k].iov_len;
                k++;
        }
        return k;
}

/* A file or stderr: write what @iov holds. Returns 0 when all of it was
 * written, -EAGAIN (blocked), -EIO (error, retry later). */
static int write_fd(struct gw_accesslog *al, struct spsc_ring *ring, struct iovec *iov, unsigned n)
{
        for (;;) {
                struct iovec part[2];
                unsigned k = n;
                size_t len = 0, i;
                ssize_t w;

                for (i = 0; i < n; i++)
                        len += iov[i].iov_len;
                if (len == 0)
                        return 0;
                if (al->cur.mode != W_BATCH) {
                        /* Whole lines of at most PIPE_BUF: the kernel writes
                         * such a chunk into a pipe at once or not at all,
                         * never mixed with another writer's bytes. */
                        len = whole_lines(iov, n, PIPE_BUF);
                        assert(len > 0);
                        k = cut_spans(iov, n, len, part);
                }
                if (al->cur.mode == W_SEND) {
                        struct msghdr mh = {.msg_iov = part, .msg_iovlen = k};

                        w = sendmsg(al->cur.fd, &mh, MSG_DONTWAIT | MSG_NOSIGNAL);
                } else {
                        w = writev(al->cur.fd, al->cur.mode == W_BATCH ? iov : part, (int)k);
                }
                if (w < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno == EAGAIN) {
                                al->blocked = true;
                                return -EAGAIN;
                        }
                        return write_failed(al, -errno);
                }
                if (w == 0)
                        return write_failed(al, -EIO);
                /* Count the lines whose '\n' went out, then release them
                 * (a short write leaves the rest of a line for the next). */
                uint64_t lines = 0;
                size_t left = (size_t)w;

                for (i = 0; i < n && left > 0; i++) {
                        size_t m = MIN(left, iov[i].iov_len);

                        lines += count_lines(iov[i].iov_base, m);
                        iov[i].iov_base = (char *)iov[i].iov_base + m;
                        iov[i].iov_len -= m;
                        left -= m;
                }
                spsc_ring_consume(ring, (size_t)w);
                write_succeeded(al, lines);
        }
}

/* The value of "workload" in @line, as written there (escaped), for the
 * journal's WORKLOAD_ID= field; empty when null. */
static size_t line_workload(const char *line, size_t n, const char **ret)
{
        static const char key[] = ",\"workload\":\"";
        const char *p = memmem(line, n, key, sizeof(key) - 1), *end = line + n, *q;

        *ret = "";
        if (!p)
                return 0;
        p += sizeof(key) - 1;
        for (q = p; q < end && *q != '"'; q++)
                if (*q == '\\')
                        q++;
        if (q >= end)
                return 0;
        *ret = p;
        return (size_t)(q - p);
}

/* The journal: one entry per line, MESSAGE= the JSON and a few fields to
 * select them by (journalctl GATEWAYD_ACCESS=1 WORKLOAD_ID=...). Returns as
 * write_fd() does. */
static int write_journal(struct gw_accesslog *al, struct spsc_ring *ring, struct iovec *iov,
                         unsigned n)
{
        static const char prefix[] = "MESSAGE=";

        for (;;) {
                char wl[sizeof("WORKLOAD_ID=") + PROXY_ACCESS_WORKLOAD_MAX];
                size_t len = 0, got = 0, wl_len;
                const char *nl = NULL, *wlp;
                struct iovec f[5];
                int r;

                /* The next line, copied behind "MESSAGE=" (it may wrap). */
                for (unsigned i = 0; i < n && !nl; i++) {
                        nl = memchr(iov[i].iov_base, '\n', iov[i].iov_len);
                        len = nl ? (size_t)(nl - (const char *)iov[i].iov_base) + 1
                                 : iov[i].iov_len;
                        if (got + len > PROXY_ACCESS_LINE_MAX)
                                return write_failed(al, -EBADMSG); /* not our line */
                        memcpy(al->jbuf + sizeof(prefix) - 1 + got, iov[i].iov_base, len);
                        got += len;
                }
                if (!nl)
                        return 0; /* nothing, or a partial line (cannot be: pushes are whole) */
                memcpy(al->jbuf, prefix, sizeof(prefix) - 1);
                wl_len = MIN(line_workload(al->jbuf + sizeof(prefix) - 1, got - 1, &wlp),
                             (size_t)PROXY_ACCESS_WORKLOAD_MAX);
                memcpy(wl, "WORKLOAD_ID=", 12);
                memcpy(wl + 12, wlp, wl_len);
                f[0] = (struct iovec){al->jbuf, sizeof(prefix) - 1 + got - 1};
                f[1] = (struct iovec){(char *)"PRIORITY=6", 10};
                f[2] = (struct iovec){(char *)"SYSLOG_IDENTIFIER=gatewayd", 26};
                f[3] = (struct iovec){(char *)"GATEWAYD_ACCESS=1", 17};
                f[4] = (struct iovec){wl, 12 + wl_len};
                r = sd_journal_sendv(f, 5);
                if (r < 0)
                        return write_failed(al, r);
                spsc_ring_consume(ring, got);
                write_succeeded(al, 1);
                /* Advance the spans past the line. */
                for (unsigned i = 0; i < n && got > 0; i++) {
                        size_t m = MIN(got, iov[i].iov_len);

                        iov[i].iov_base = (char *)iov[i].iov_base + m;
                        iov[i].iov_len -= m;
                        got -= m;
                }
        }
}

/* Discard what @ring holds (the log is off): counted as lost. */
static void discard(struct gw_accesslog *al, struct spsc_ring *ring, struct iovec *iov, unsigned n)
{
        size_t len = 0;
        uint64_t lines = 0;

        for (unsigned i = 0; i < n; i++) {
                lines += count_lines(iov[i].iov_base, iov[i].iov_len);
                len += iov[i].iov_len;
        }
        spsc_ring_consume(ring, len);
        atomic_fetch_add_explicit(&al->lost, lines, memory_order_relaxed);
}

/* One pass over the rings: write what each held when the pass reached it
 * (with @cut, only the bytes before cut[i]). Returns 0 when all of that was
 * written, -EAGAIN when the target would block, -EIO after an error (retry
 * at @retry_at). */
static int drain(struct gw_accesslog *al, const uint64_t *cut)
{
        if (al->retry_at && now_ms() < al->retry_at)
                return -EIO;
        al->retry_at = 0;
        al->blocked = false;
        for (unsigned i = 0; i < al->sink.n_slots; i++) {
                struct spsc_ring *ring = al->sink.slots[i].ring;
                struct iovec all[2], iov[2];
                unsigned n = spsc_ring_peek(ring, all);
                int r = 0;

                if (n == 0)
                        continue;
                if (cut) {
                        uint64_t done = spsc_ring_consumed(ring);

                        if (cut[i] <= done)
                                continue;
                        n = cut_spans(all, n, (size_t)(cut[i] - done), iov);
                } else {
                        memcpy(iov, all, sizeof(iov));
                }
                switch (al->cur.kind) {
                case T_OFF:
                        discard(al, ring, iov, n);
                        break;
                case T_JOURNAL:
                        r = write_journal(al, ring, iov, n);
                        break;
                default:
                        r = write_fd(al, ring, iov, n);
                        break;
                }
                if (r < 0)
                        return r;
        }
        return 0;
}

static bool any_above_half(struct gw_accesslog *al)
{
        for (unsigned i = 0; i < al->sink.n_slots; i++) {
                struct spsc_ring *ring = al->sink.slots[i].ring;

                if (spsc_ring_used(ring) >= spsc_ring_size(ring) / 2)
                        return true;
        }
        return false;
}

/* What is still queued when the writer gives up (the stop timeout passed). */
static void count_lost(struct gw_accesslog *al)
{
        for (unsigned i = 0; i < al->sink.n_slots; i++) {
                struct spsc_ring *ring = al->sink.slots[i].ring;
                struct iovec iov[2];
                unsigned n = spsc_ring_peek(ring, iov);

                if (n > 0)
                        discard(al, ring, iov, n);
        }
}

static void *writer_main(void *ud)
{
        struct gw_accesslog *al = ud;
        uint64_t deadline = 0;
        bool stopping = false;
        sigset_t all;

        /* Signals are the loop's (libuv's handlers); a write to a pipe
         * whose reader left fails with EPIPE here instead of a SIGPIPE
         * that would end a process that did not ignore it. */
        sigfillset(&all);
        pthread_sigmask(SIG_BLOCK, &all, NULL);
        for (;;) {
                struct target old = {.kind = T_OFF, .fd = -1};
                uint64_t flush_gen, now;
                struct pollfd pfd[2];
                int r, timeout;

                pthread_mutex_lock(&al->lock);
                if (al->has_next) {
                        old = al->cur;
                        al->cur = al->next;
                        al->next = (struct target){.kind = T_OFF, .fd = -1};
                        al->has_next = false;
                        memcpy(al->cut, al->next_cut, al->sink.n_slots * sizeof(*al->cut));
                }
                if (al->stop && !stopping) {
                        stopping = true;
                        deadline = now_ms() + GW_ACCESSLOG_STOP_TIMEOUT_MS;
                }
                flush_gen = al->flush_req;
                pthread_mutex_unlock(&al->lock);

                if (old.kind != T_OFF) {
                        /* What was queued before the switch was asked for
                         * goes to the old target (one attempt; what it does
                         * not take goes to the new one), then it is closed. */
                        struct target nt = al->cur;

                        al->cur = old;
                        al->retry_at = 0;
                        (void)drain(al, al->cut);
                        al->cur = nt;
                        target_close(&old);
                        al->retry_at = 0;
                        al->failing = false;
                }

                r = drain(al, NULL);
                if (r == 0) {
                        pthread_mutex_lock(&al->lock);
                        if (al->flushed < flush_gen) {
                                al->flushed = flush_gen;
                                pthread_cond_broadcast(&al->cond);
                        }
                        pthread_mutex_unlock(&al->lock);
                }
                now = now_ms();
                if (stopping && (r == 0 || now >= deadline))
                        break;

                timeout = GW_ACCESSLOG_TICK_MS;
                /* A ring that filled past half while the pass wrote will
                 * send no wakeup (that is once per crossing): go on at once
                 * rather than let it fill up during a tick. */
                if (r == 0 && any_above_half(al))
                        timeout = 0;
                if (r == -EIO && al->retry_at > now)
                        timeout = (int)MIN(al->retry_at - now, (uint64_t)GW_ACCESSLOG_RETRY_MS);
                if (stopping)
                        timeout = (int)MIN((uint64_t)timeout, deadline - now);
                pfd[0] = (struct pollfd){.fd = al->efd, .events = POLLIN};
                pfd[1] = (struct pollfd){.fd = al->cur.fd, .events = POLLOUT};
                r = poll(pfd, al->blocked && al->cur.fd >= 0 ? 2 : 1, timeout);
                if (r > 0 && (pfd[0].revents & POLLIN)) {
                        uint64_t v;

                        (void)!read(al->efd, &v, sizeof(v));
                }
        }
        count_lost(al);
        pthread_mutex_lock(&al->lock);
        al->writer_finished = true;
        pthread_cond_broadcast(&al->cond);
        pthread_mutex_unlock(&al->lock);
        return NULL;
}

/* ======================================================================
 * The loop thread's side
 * ====================================================================== */

/* stderr: a copy that can be written without blocking and without
 * changing fd 2 for anyone else (O_NONBLOCK belongs to the open file
 * description, which fd 2 shares with the daemon's own log and its
 * parent). */
static int stderr_open(struct target *t, char **reterr)
{
        struct stat st;
        int fd;

        if (fstat(STDERR_FILENO, &st) < 0)
                goto fail;
        if (S_ISREG(st.st_mode)) {
                /* A shared offset: a new description would overwrite. */
                t->mode = W_BATCH;
                fd = fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 3);
        } else if (S_ISSOCK(st.st_mode)) {
                t->mode = W_SEND;
                fd = fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 3);
        } else {
                /* A pipe or terminal: a description of our own. */
                t->mode = W_CHUNKS;
                fd = open("/proc/self/fd/2", O_WRONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
        }
        if (fd < 0)
                goto fail;
        t->kind = T_STDERR;
        t->fd = fd;
        return 0;
fail:
        fd = -errno;
        if (reterr && asprintf(reterr, "stderr: %s", strerror(-fd)) < 0)
                *reterr = NULL;
        return fd;
}

static int file_open(const char *path, struct target *t, char **reterr)
{
        struct stat st;
        int fd, r;

        /* O_NONBLOCK: a FIFO without a reader fails (ENXIO) instead of
         * blocking the loop, and one with a slow reader is polled. */
        fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY | O_NONBLOCK, 0640);
        if (fd < 0) {
                r = -errno;
                goto fail;
        }
        if (fstat(fd, &st) < 0) {
                r = -errno;
                safe_close(fd);
                goto fail;
        }
        t->kind = T_FILE;
        t->mode = S_ISREG(st.st_mode) ? W_BATCH : S_ISSOCK(st.st_mode) ? W_SEND : W_CHUNKS;
        t->fd = fd;
        return 0;
fail:
        if (reterr && asprintf(reterr, "%s: %s", path,
                               r == -ENXIO ? "a FIFO without a reader" : strerror(-r)) < 0)
                *reterr = NULL;
        return r;
}

int gw_accesslog_new(unsigned n_workers, size_t ring_size, struct gw_accesslog **ret)
{
        struct gw_accesslog *al;
        pthread_condattr_t ca;
        int r;

        if (n_workers == 0 || n_workers > 4096)
                return -EINVAL;
        al = calloc(1, sizeof(*al));
        if (!al)
                return -ENOMEM;
        al->efd = -1;
        al->cur = al->next = (struct target){.kind = T_OFF, .fd = -1};
        pthread_mutex_init(&al->lock, NULL);
        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        pthread_cond_init(&al->cond, &ca);
        pthread_condattr_destroy(&ca);
        atomic_init(&al->sink.enabled, false);
        atomic_init(&al->sink.keep_query, false);
        al->sink.wake = on_ring_half_full;
        al->sink.wake_ud = al;
        al->sink.slots = calloc(n_workers, sizeof(*al->sink.slots));
        if (!al->sink.slots) {
                r = -ENOMEM;
                goto fail;
        }
        al->sink.n_slots = n_workers;
        al->next_cut = calloc(n_workers, sizeof(*al->next_cut));
        al->cut = calloc(n_workers, sizeof(*al->cut));
        if (!al->next_cut || !al->cut) {
                r = -ENOMEM;
                goto fail;
        }
        for (unsigned i = 0; i < n_workers; i++) {
                atomic_init(&al->sink.slots[i].dropped, 0);
                r = spsc_ring_new(ring_size, &al->sink.slots[i].ring);
                if (r < 0)
                        goto fail;
        }
        al->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (al->efd < 0) {
                r = -errno;
                goto fail;
        }
        r = -pthread_create(&al->thread, NULL, writer_main, al);
        if (r < 0)
                goto fail;
        al->started = true;
        *ret = al;
        return 0;
fail:
        gw_accesslog_free(al);
        return r;
}

struct gw_accesslog *gw_accesslog_free(struct gw_accesslog *al)
{
        if (!al)
                return NULL;
        atomic_store_explicit(&al->sink.enabled, false, memory_order_relaxed);
        if (al->started) {
                pthread_mutex_lock(&al->lock);
                al->stop = true;
                pthread_mutex_unlock(&al->lock);
                wake(al);
                pthread_join(al->thread, NULL);
        }
        target_close(&al->cur);
        target_close(&al->next);
        for (unsigned i = 0; al->sink.slots && i < al->sink.n_slots; i++)
                spsc_ring_free(al->sink.slots[i].ring);
        free(al->sink.slots);
        free(al->next_cut);
        free(al->cut);
        safe_close(al->efd);
        pthread_cond_destroy(&al->cond);
        pthread_mutex_destroy(&al->lock);
        free(al->spec);
        free(al);
        return NULL;
}

struct proxy_access_sink *gw_accesslog_sink(struct gw_accesslog *al)
{
        return al ? &al->sink : NULL;
}

int gw_accesslog_set_target(struct gw_accesslog *al, const char *target, bool keep_query,
                            char **reterr)
{
        struct target t = {.kind = T_OFF, .mode = W_BATCH, .fd = -1}, old;
        char *spec = NULL;
        int r = 0;

        if (reterr)
                *reterr = NULL;
        if (target && target[0]) {
                spec = strdup(target);
                if (!spec)
                        return -ENOMEM;
                if (streq(target, "journal"))
                        t.kind = T_JOURNAL;
                else if (streq(target, "stderr"))
                        r = stderr_open(&t, reterr);
                else if (target[0] == '/')
                        r = file_open(target, &t, reterr);
                else
                        r = -EINVAL;
                if (r < 0) {
                        if (r == -EINVAL && reterr &&
                            asprintf(reterr, "'%s': expected an absolute path, stderr or journal",
                                     target) < 0)
                                *reterr = NULL;
                        free(spec);
                        return r;
                }
        }
        free(al->spec);
        al->spec = spec;
        /* Off first, so that no line is queued for a target that is gone;
         * on last, so that lines wait in the rings for the new one. */
        if (t.kind == T_OFF)
                atomic_store_explicit(&al->sink.enabled, false, memory_order_relaxed);
        atomic_store_explicit(&al->sink.keep_query, keep_query, memory_order_relaxed);
        pthread_mutex_lock(&al->lock);
        old = al->next;
        al->next = t;
        al->has_next = true;
        for (unsigned i = 0; i < al->sink.n_slots; i++)
                al->next_cut[i] = spsc_ring_pushed(al->sink.slots[i].ring);
        pthread_mutex_unlock(&al->lock);
        /* A switch the writer had not taken yet: this one replaces it. */
        target_close(&old);
        if (t.kind != T_OFF)
                atomic_store_explicit(&al->sink.enabled, true, memory_order_relaxed);
        wake(al);
        return 0;
}

int gw_accesslog_flush(struct gw_accesslog *al, unsigned timeout_ms)
{
        struct timespec until;
        uint64_t gen;
        int r = 0;

        clock_gettime(CLOCK_MONOTONIC, &until);
        until.tv_sec += timeout_ms / 1000;
        until.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
                until.tv_sec++;
                until.tv_nsec -= 1000000000L;
        }
        pthread_mutex_lock(&al->lock);
        gen = ++al->flush_req;
        pthread_mutex_unlock(&al->lock);
        wake(al);
        pthread_mutex_lock(&al->lock);
        while (al->flushed < gen && !al->writer_finished && r == 0)
                r = -pthread_cond_timedwait(&al->cond, &al->lock, &until);
        if (al->flushed < gen)
                r = -ETIMEDOUT;
        pthread_mutex_unlock(&al->lock);
        return r;
}

void gw_accesslog_stats(const struct gw_accesslog *al, struct gw_accesslog_stats *ret)
{
        *ret = (struct gw_accesslog_stats){};
        if (!al)
                return;
        ret->written = atomic_load_explicit(&al->written, memory_order_relaxed);
        ret->write_errors = atomic_load_explicit(&al->write_errors, memory_order_relaxed);
        ret->dropped = atomic_load_explicit(&al->lost, memory_order_relaxed);
        for (unsigned i = 0; i < al->sink.n_slots; i++)
                ret->dropped +=
                        atomic_load_explicit(&al->sink.slots[i].dropped, memory_order_relaxed);
}

/* ======================================================================
 * The daemon's glue
 * ====================================================================== */

static void log_target_error(const char *what, const char *err, int r)
{
        log_error("Cannot %s the access log %s; %s", what, err ? err : strerror(-r),
                  streq(what, "open") ? "it stays off" : "keeping the one in use");
}

int gw_accesslog_start(struct gw_daemon *d)
{
        unsigned n = d->cfg.proxy_workers ? d->cfg.proxy_workers : uv_available_parallelism();
        _cleanup_free_ char *err = NULL;
        int r;

        r = gw_accesslog_new(n, GW_ACCESSLOG_RING_SIZE, &d->alog);
        if (r < 0)
                return log_error_errno(r, "Failed to set up the access log: %m");
        r = gw_accesslog_set_target(d->alog, d->cfg.log_access, d->cfg.log_access_query, &err);
        if (r < 0)
                log_target_error("open", err, r);
        else if (d->cfg.log_access)
                log_info("Access log: %s", d->cfg.log_access);
        return 0;
}

void gw_accesslog_apply(struct gw_daemon *d)
{
        _cleanup_free_ char *err = NULL;
        int r;

        if (!d->alog || (streq_ptr(d->alog->spec, d->cfg.log_access) &&
                         atomic_load(&d->alog->sink.keep_query) == d->cfg.log_access_query))
                return;
        r = gw_accesslog_set_target(d->alog, d->cfg.log_access, d->cfg.log_access_query, &err);
        if (r < 0)
                return log_target_error("switch to", err, r);
        log_notice("Access log: %s", d->cfg.log_access ? d->cfg.log_access : "off");
}

void gw_accesslog_reopen(struct gw_daemon *d)
{
        _cleanup_free_ char *err = NULL;
        char *spec;
        int r;

        if (!d->alog || !d->alog->spec || d->alog->spec[0] != '/')
                return;
        spec = strdup(d->alog->spec);
        if (!spec)
                return (void)log_error_errno(-ENOMEM, "Cannot reopen the access log: %m");
        r = gw_accesslog_set_target(d->alog, spec, atomic_load(&d->alog->sink.keep_query), &err);
        free(spec);
        if (r < 0)
                return log_target_error("reopen", err, r);
        log_debug("Access log reopened");
}

void gw_accesslog_stop(struct gw_daemon *d)
{
        d->alog = gw_accesslog_free(d->alog);
}

int gw_accesslog_render_metrics(struct gw_daemon *d, struct strbuf *out)
{
        struct gw_accesslog_stats st;
        int r = 0;

        gw_accesslog_stats(d->alog, &st);
        const struct {
                const char *name, *help;
                uint64_t v;
        } rows[] = {
                {"gatewayd_access_log_lines_total", "Access log lines written.", st.written},
                {"gatewayd_access_log_dropped_total",
                 "Access log lines lost: a proxy worker's buffer was full (the writer could not "
                 "keep up), or lines were still queued at the stop.",
                 st.dropped},
                {"gatewayd_access_log_write_errors_total",
                 "Failed writes to the access log target (retried every second).", st.write_errors},
        };
        for (size_t i = 0; i < ELEMENTSOF(rows) && r >= 0; i++)
                r = strbuf_printf(out, "# HELP %s %s\n# TYPE %s counter\n%s %" PRIu64 "\n",
                                  rows[i].name, rows[i].help, rows[i].name, rows[i].name,
                                  rows[i].v);
        return r;
}
