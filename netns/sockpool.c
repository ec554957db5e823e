/* SPDX-License-Identifier: Apache-2.0 */
/* The socket pool: per-namespace stacks of pre-created TCP sockets, kept
 * filled by one thread, the only one here that setns()es.
 *
 * Locking: one mutex guards the entries, their stacks, the request queue
 * and the counters. Callers only pop from stacks and queue requests; the
 * thread alone inserts, removes and refills entries, so it may read an
 * entry's identity and path without the lock, and an entry it looked up
 * stays valid across its own unlocked sections. Sockets are created and
 * dropped fds are closed outside the lock. */

#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "netns/netns-internal.h"

#define DEFAULT_PER_STACK      8u
#define MAX_PER_STACK          64u
#define DEFAULT_MAX_POOLED     256u
#define MAX_MAX_POOLED         65536u
#define DEFAULT_MAX_NAMESPACES 64u
#define MAX_MAX_NAMESPACES     1024u
#define DEFAULT_IDLE_MS        30000u
#define DEFAULT_WAIT_MS        1000u
#define DEFAULT_CHECK_MS       1000u
#define PATH_SIZE              512u /* like netns_socket_req.netns_path, with the NUL */

#define SOCK_FLAGS (SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC)

struct stack {
        unsigned n;
        bool refill; /* the thread was asked to refill it and has not yet */
        int fds[MAX_PER_STACK];
};

struct entry {
        dev_t dev; /* the namespace's identity: its nsfs inode */
        ino_t ino;
        uint64_t last_used; /* ms, CLOCK_MONOTONIC_COARSE */
        struct stack st[2]; /* AF_INET, AF_INET6 */
        char path[];        /* how the thread reaches it: the path of its first use */
};

enum {
        REQ_QUEUED,
        REQ_RUNNING,
        REQ_DONE,
};

struct request {
        struct request *next;
        int family;
        int state;
        bool abandoned; /* the caller timed out while it was running: the thread frees it */
        int r;
        int fd;
        char *error;
        char path[];
};

struct netns_sockpool {
        struct netns_sockpool_limits lim; /* resolved: no zeros */
        unsigned low;                     /* refill a stack that fell below this */
        dev_t nsfs_dev;                   /* st_dev of every namespace file */
        int home_fd;                      /* the thread's own namespace */
        pthread_t thread;

        pthread_mutex_t lock;
        pthread_cond_t wake; /* to the thread: requests, refills, stop */
        pthread_cond_t done; /* to callers: a request completed (CLOCK_MONOTONIC) */

        /* guarded by lock */
        struct request *queue, **queue_tail;
        bool refill_wanted; /* some stack has refill set */
        bool stop;
        bool broken; /* the thread could not return home: no more namespace work */
        unsigned n_ents;
        unsigned pooled;
        ino_t *inos;         /* [max_namespaces], compact (first n_ents), scanned on lookups */
        struct entry **ents; /* parallel to inos */
        struct netns_sockpool_stats stats;

        /* the thread's scratch space */
        int *closing; /* fds dropped under the lock, closed after */
        unsigned n_closing;
        bool *stale; /* [max_namespaces] */
};

static uint64_t now_ms(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
        return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static struct timespec deadline_in(unsigned ms)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_sec += ms / 1000u;
        ts.tv_nsec += (long)(ms % 1000u) * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000L;
        }
        return ts;
}

static int family_index(int family)
{
        return family == AF_INET ? 0 : family == AF_INET6 ? 1 : -1;
}

static unsigned clamp_default(unsigned v, unsigned def, unsigned max)
{
        return v == 0 ? def : MIN(v, max);
}

/* ---- entries (lock held) ---- */

static int find(const struct netns_sockpool *p, dev_t dev, ino_t ino)
{
        for (unsigned i = 0; i < p->n_ents; i++)
                if (p->inos[i] == ino && p->ents[i]->dev == dev)
                        return (int)i;
        return -1;
}

/* Move an entry's fds to p->closing. */
static void empty_entry(struct netns_sockpool *p, struct entry *e)
{
        for (unsigned f = 0; f < ELEMENTSOF(e->st); f++) {
                struct stack *s = &e->st[f];

                while (s->n > 0) {
                        p->closing[p->n_closing++] = s->fds[--s->n];
                        p->pooled--;
                }
                s->refill = false;
        }
}

static void remove_entry(struct netns_sockpool *p, unsigned i)
{
        struct entry *e = p->ents[i];

        empty_entry(p, e);
        p->n_ents--;
        p->ents[i] = p->ents[p->n_ents];
        p->inos[i] = p->inos[p->n_ents];
        free(e);
}

/* The least recently used entry other than @keep (NULL: any) that holds
 * fds (when @with_fds) and was used no later than @not_after; -1 if none. */
static int lru(const struct netns_sockpool *p, const struct entry *keep, bool with_fds,
               uint64_t not_after)
{
        int best = -1;

        for (unsigned i = 0; i < p->n_ents; i++) {
                const struct entry *e = p->ents[i];

                if (e == keep || e->last_used > not_after)
                        continue;
                if (with_fds && e->st[0].n + e->st[1].n == 0)
                        continue;
                if (best < 0 || e->last_used < p->ents[best]->last_used)
                        best = (int)i;
        }
        return best;
}

/* Track a new namespace, dropping the least recently used one when full.
 * NULL on -ENOMEM (the caller then serves without pooling). */
static struct entry *insert(struct netns_sockpool *p, dev_t dev, ino_t ino, const char *path)
{
        struct entry *e;

        if (p->n_ents >= p->lim.max_namespaces) {
                int victim = lru(p, NULL, false, UINT64_MAX);

                assert(victim >= 0);
                remove_entry(p, (unsigned)victim);
                p->stats.dropped_lru++;
        }
        e = calloc(1, sizeof(*e) + strlen(path) + 1);
        if (!e)
                return NULL;
        e->dev = dev;
        e->ino = ino;
        strcpy(e->path, path);
        p->ents[p->n_ents] = e;
        p->inos[p->n_ents] = ino;
        p->n_ents++;
        return e;
}

/* How many sockets to make for @e's stack @f: up to per_stack, within
 * max_pooled, making room by dropping namespaces used less recently than
 * @e. Only the thread adds fds, so the room stays until it pushes. */
static unsigned plan_refill(struct netns_sockpool *p, struct entry *e, int f)
{
        unsigned want = p->lim.per_stack - MIN(e->st[f].n, p->lim.per_stack);

        while (p->lim.max_pooled - p->pooled < want) {
                int victim = lru(p, e, true, e->last_used);

                if (victim < 0)
                        break;
                remove_entry(p, (unsigned)victim);
                p->stats.dropped_lru++;
        }
        return MIN(want, p->lim.max_pooled - p->pooled);
}

/* Push fds the thread made for @e's stack @f; any excess goes to closing. */
static void push(struct netns_sockpool *p, struct entry *e, int f, const int *fds, unsigned n)
{
        struct stack *s = &e->st[f];

        for (unsigned i = 0; i < n; i++) {
                if (s->n < p->lim.per_stack && p->pooled < p->lim.max_pooled) {
                        s->fds[s->n++] = fds[i];
                        p->pooled++;
                } else {
                        p->closing[p->n_closing++] = fds[i];
                }
        }
}

/* Close what was dropped under the lock. Thread only, lock not held. */
static void close_dropped(struct netns_sockpool *p)
{
        for (unsigned i = 0; i < p->n_closing; i++)
                safe_close(p->closing[i]);
        p->n_closing = 0;
}

/* ---- namespace files (thread and callers) ---- */

/* The caller's cheap check: stat() gives the identity; a file on another
 * file system than nsfs cannot be a namespace. (Other namespace types do
 * live on nsfs: the thread's NS_GET_NSTYPE catches those.) */
static int check_path(const struct netns_sockpool *p, const char *path, struct stat *st,
                      char **reterr)
{
        if (path[0] != '/')
                return netns__fail(reterr, -EINVAL, "namespace path '%s' is not absolute", path);
        if (strnlen(path, PATH_SIZE) >= PATH_SIZE)
                return netns__fail(reterr, -ENAMETOOLONG, "namespace path %.64s...", path);
        if (stat(path, st) < 0) {
                if (errno == ENOENT)
                        return netns__fail(reterr, -ENOENT, "namespace %s does not exist", path);
                return netns__fail(reterr, -errno, "checking namespace %s", path);
        }
        if (st->st_dev != p->nsfs_dev)
                return netns__fail(reterr, -EINVAL, "%s is not a network namespace", path);
        return 0;
}

/* netns__open(), and the namespace's identity. */
static int open_ns(const char *path, int *ret_fd, struct stat *st, char **reterr)
{
        _cleanup_close_ int fd = -1;
        int r;

        r = netns__open(path, &fd, reterr);
        if (r < 0)
                return r;
        if (fstat(fd, st) < 0)
                return netns__fail(reterr, -errno, "checking namespace %s", path);
        *ret_fd = TAKE_FD(fd);
        return 0;
}

/* ---- the thread's work ---- */

/* Enter @nsfd, make up to @n sockets into @fds, and go home. Returns how
 * many were made (with *reterr set if fewer), or -errno when none. Marks
 * the pool broken if the thread cannot return home. */
static int make_sockets(struct netns_sockpool *p, int nsfd, const char *path, int family, int *fds,
                        unsigned n, char **reterr)
{
        unsigned made = 0;
        int r;

        r = netns__enter(nsfd, path, reterr);
        if (r < 0)
                return r;
        while (made < n) {
                int fd = socket(family, SOCK_FLAGS, 0);

                if (fd < 0) {
                        r = netns__fail(reterr, -errno, "creating a socket in %s", path);
                        break;
                }
                fds[made++] = fd;
        }
        if (setns(p->home_fd, CLONE_NEWNET) < 0) {
                /* The sockets are fine: they belong to @path for good.
                 * But nothing else may run in the wrong namespace. */
                pthread_mutex_lock(&p->lock);
                p->broken = true;
                pthread_mutex_unlock(&p->lock);
        }
        return made > 0 ? (int)made : r;
}

/* Pop from @e's stack @f and ask for a refill if it ran low. */
static int pop(struct netns_sockpool *p, struct entry *e, int f)
{
        struct stack *s = &e->st[f];
        int fd;

        e->last_used = now_ms();
        if (s->n == 0)
                return -1;
        fd = s->fds[--s->n];
        p->pooled--;
        if (s->n < p->low && !s->refill) {
                s->refill = true;
                p->refill_wanted = true;
                pthread_cond_signal(&p->wake);
        }
        return fd;
}

/* A caller's request: a socket from the stack if the namespace at the path
 * now has one, otherwise one made for it together with the refill. */
static void serve(struct netns_sockpool *p, struct request *q)
{
        _cleanup_close_ int nsfd = -1;
        int fds[MAX_PER_STACK + 1];
        int f = family_index(q->family);
        struct entry *e = NULL;
        struct stat st;
        unsigned k = 0;
        int i, n;

        q->r = open_ns(q->path, &nsfd, &st, &q->error);
        if (q->r < 0)
                return;

        pthread_mutex_lock(&p->lock);
        if (p->broken) {
                pthread_mutex_unlock(&p->lock);
                q->r = netns__fail(&q->error, -ENOTRECOVERABLE,
                                   "the socket pool thread is stuck in another namespace");
                return;
        }
        i = find(p, st.st_dev, st.st_ino);
        if (i >= 0) {
                e = p->ents[i];
                q->fd = pop(p, e, f);
                if (q->fd >= 0) {
                        pthread_mutex_unlock(&p->lock);
                        return;
                }
        } else {
                e = insert(p, st.st_dev, st.st_ino, q->path);
        }
        if (e) {
                e->last_used = now_ms();
                k = plan_refill(p, e, f);
        }
        pthread_mutex_unlock(&p->lock);
        close_dropped(p);

        n = make_sockets(p, nsfd, q->path, q->family, fds, 1 + k, &q->error);
        if (n < 0) {
                q->r = n;
                return;
        }
        q->r = 0;
        q->fd = fds[0];
        free(q->error); /* a refill that came up short is not the caller's error */
        q->error = NULL;
        pthread_mutex_lock(&p->lock);
        if (e) {
                push(p, e, f, fds + 1, (unsigned)n - 1);
                e->st[f].refill = false;
        } else {
                for (int j = 1; j < n; j++)
                        p->closing[p->n_closing++] = fds[j];
        }
        pthread_mutex_unlock(&p->lock);
        close_dropped(p);
}

/* Refill one stack that asked for it. Called and returns with the lock
 * held. */
static void refill_one(struct netns_sockpool *p)
{
        _cleanup_close_ int nsfd = -1;
        int fds[MAX_PER_STACK];
        struct entry *e = NULL;
        struct stat st;
        unsigned k;
        int f = 0, n;

        for (unsigned i = 0; i < p->n_ents && !e; i++)
                for (f = 0; f < 2; f++)
                        if (p->ents[i]->st[f].refill) {
                                e = p->ents[i];
                                break;
                        }
        if (!e) {
                p->refill_wanted = false;
                return;
        }
        k = p->broken ? 0 : plan_refill(p, e, f);
        if (k == 0) {
                /* Nothing to do, or no room: the next pop below the mark asks again. */
                e->st[f].refill = false;
                pthread_mutex_unlock(&p->lock);
                close_dropped(p);
                pthread_mutex_lock(&p->lock);
                return;
        }
        pthread_mutex_unlock(&p->lock);
        close_dropped(p);

        if (open_ns(e->path, &nsfd, &st, NULL) < 0 || st.st_dev != e->dev || st.st_ino != e->ino) {
                /* Gone, or the path names another namespace now. */
                pthread_mutex_lock(&p->lock);
                remove_entry(p, (unsigned)find(p, e->dev, e->ino));
                p->stats.dropped_stale++;
                pthread_mutex_unlock(&p->lock);
                close_dropped(p);
                pthread_mutex_lock(&p->lock);
                return;
        }
        n = make_sockets(p, nsfd, e->path, (f == 0 ? AF_INET : AF_INET6), fds, k, NULL);
        pthread_mutex_lock(&p->lock);
        if (n > 0)
                push(p, e, f, fds, (unsigned)n);
        e->st[f].refill = false;
        pthread_mutex_unlock(&p->lock);
        close_dropped(p);
        pthread_mutex_lock(&p->lock);
}

/* Drop namespaces unused for idle_ms, and those whose path is gone or
 * names another namespace now (so pooled sockets do not keep a deleted
 * namespace alive). Called and returns with the lock held. */
static void sweep(struct netns_sockpool *p)
{
        uint64_t now;

        /* Only this thread changes the entry set: stat without the lock. */
        pthread_mutex_unlock(&p->lock);
        for (unsigned i = 0; i < p->n_ents; i++) {
                const struct entry *e = p->ents[i];
                struct stat st;

                p->stale[i] = stat(e->path, &st) < 0 || st.st_dev != e->dev || st.st_ino != e->ino;
        }
        now = now_ms();
        pthread_mutex_lock(&p->lock);
        /* Downwards: removal moves the last entry, already looked at, into i. */
        for (unsigned i = p->n_ents; i-- > 0;) {
                if (p->stale[i]) {
                        remove_entry(p, i);
                        p->stats.dropped_stale++;
                } else if (now - MIN(now, p->ents[i]->last_used) >= p->lim.idle_ms) {
                        remove_entry(p, i);
                        p->stats.dropped_idle++;
                }
        }
        pthread_mutex_unlock(&p->lock);
        close_dropped(p);
        pthread_mutex_lock(&p->lock);
}

static void complete(struct netns_sockpool *p, struct request *q)
{
        if (q->abandoned) {
                safe_close(q->fd);
                free(q->error);
                free(q);
                return;
        }
        q->state = REQ_DONE;
        pthread_cond_broadcast(&p->done);
}

static void *pool_main(void *arg)
{
        struct netns_sockpool *p = arg;
        uint64_t next_check = now_ms() + p->lim.check_ms;

        pthread_mutex_lock(&p->lock);
        while (!p->stop) {
                struct request *q = p->queue;
                uint64_t now = now_ms();

                /* First, so that a steady load cannot postpone it. */
                if (p->n_ents == 0) {
                        next_check = now + p->lim.check_ms;
                } else if (now >= next_check) {
                        sweep(p);
                        next_check = now_ms() + p->lim.check_ms;
                        continue;
                }
                if (q) {
                        p->queue = q->next;
                        if (!p->queue)
                                p->queue_tail = &p->queue;
                        q->next = NULL;
                        q->state = REQ_RUNNING;
                        pthread_mutex_unlock(&p->lock);
                        serve(p, q);
                        pthread_mutex_lock(&p->lock);
                        complete(p, q);
                        continue;
                }
                if (p->refill_wanted) {
                        refill_one(p);
                        continue;
                }
                if (p->n_ents == 0) {
                        pthread_cond_wait(&p->wake, &p->lock);
                } else {
                        struct timespec ts = deadline_in((unsigned)(next_check - now));

                        pthread_cond_timedwait(&p->wake, &p->lock, &ts);
                }
        }
        pthread_mutex_unlock(&p->lock);
        return NULL;
}

/* ---- callers ---- */

static int ask_thread(struct netns_sockpool *p, const char *path, int family, int *ret_fd,
                      char **reterr)
{
        struct timespec deadline = deadline_in(p->lim.wait_ms);
        size_t len = strlen(path);
        struct request *q;
        int r;

        q = calloc(1, sizeof(*q) + len + 1);
        if (!q)
                return -ENOMEM;
        memcpy(q->path, path, len + 1);
        q->family = family;
        q->fd = -1;

        pthread_mutex_lock(&p->lock);
        p->stats.slow++;
        *p->queue_tail = q;
        p->queue_tail = &q->next;
        pthread_cond_signal(&p->wake);
        while (q->state != REQ_DONE)
                if (pthread_cond_timedwait(&p->done, &p->lock, &deadline) == ETIMEDOUT)
                        break;
        if (q->state == REQ_DONE) {
                pthread_mutex_unlock(&p->lock);
                r = q->r;
                if (r >= 0)
                        *ret_fd = q->fd;
                else if (reterr) {
                        free(*reterr);
                        *reterr = TAKE_PTR(q->error);
                }
                free(q->error);
                free(q);
                return r;
        }
        p->stats.timeouts++;
        if (q->state == REQ_QUEUED) {
                struct request **pp = &p->queue;

                while (*pp != q)
                        pp = &(*pp)->next;
                *pp = q->next;
                if (!*pp)
                        p->queue_tail = pp;
                free(q);
        } else {
                q->abandoned = true;
        }
        pthread_mutex_unlock(&p->lock);
        return netns__fail(reterr, -ETIMEDOUT, "waiting %u ms for a socket in %s", p->lim.wait_ms,
                           path);
}

int netns_sockpool_socket(struct netns_sockpool *p, const char *netns_path, int family, int *ret_fd,
                          char **reterr)
{
        struct stat st;
        int f, i, r, fd = -1;

        assert(p && ret_fd);
        f = family_index(family);
        if (f < 0)
                return netns__fail(reterr, -EAFNOSUPPORT, "socket family %d", family);
        if (!netns_path || !netns_path[0]) {
                fd = socket(family, SOCK_FLAGS, 0);
                if (fd < 0)
                        return netns__fail(reterr, -errno, "creating a socket");
                *ret_fd = fd;
                return 0;
        }
        r = check_path(p, netns_path, &st, reterr);
        if (r < 0)
                return r;

        pthread_mutex_lock(&p->lock);
        i = find(p, st.st_dev, st.st_ino);
        if (i >= 0) {
                fd = pop(p, p->ents[i], f);
                if (fd >= 0)
                        p->stats.fast++;
        }
        pthread_mutex_unlock(&p->lock);
        if (fd >= 0) {
                *ret_fd = fd;
                return 0;
        }
        return ask_thread(p, netns_path, family, ret_fd, reterr);
}

void netns_sockpool_get_stats(struct netns_sockpool *p, struct netns_sockpool_stats *ret)
{
        assert(p && ret);
        pthread_mutex_lock(&p->lock);
        *ret = p->stats;
        ret->namespaces = p->n_ents;
        ret->pooled = p->pooled;
        pthread_mutex_unlock(&p->lock);
}

/* ---- life cycle ---- */

static struct netns_sockpool *pool_release(struct netns_sockpool *p)
{
        free(p->inos);
        free(p->ents);
        free(p->closing);
        free(p->stale);
        safe_close(p->home_fd);
        free(p);
        return NULL;
}

int netns_sockpool_new(const struct netns_sockpool_limits *limits, struct netns_sockpool **ret)
{
        const struct netns_sockpool_limits none = {};
        pthread_condattr_t ca;
        struct netns_sockpool *p;
        struct stat st;
        int r;

        assert(ret);
        if (!limits)
                limits = &none;
        p = calloc(1, sizeof(*p));
        if (!p)
                return -ENOMEM;
        p->home_fd = -1;
        p->lim.per_stack = clamp_default(limits->per_stack, DEFAULT_PER_STACK, MAX_PER_STACK);
        p->lim.max_pooled = clamp_default(limits->max_pooled, DEFAULT_MAX_POOLED, MAX_MAX_POOLED);
        p->lim.max_namespaces =
                clamp_default(limits->max_namespaces, DEFAULT_MAX_NAMESPACES, MAX_MAX_NAMESPACES);
        p->lim.idle_ms = clamp_default(limits->idle_ms, DEFAULT_IDLE_MS, UINT32_MAX / 2);
        p->lim.wait_ms = clamp_default(limits->wait_ms, DEFAULT_WAIT_MS, UINT32_MAX / 2);
        p->lim.check_ms = clamp_default(limits->check_ms, DEFAULT_CHECK_MS, UINT32_MAX / 2);
        p->low = (p->lim.per_stack + 1) / 2;
        p->queue_tail = &p->queue;

        p->inos = calloc(p->lim.max_namespaces, sizeof(*p->inos));
        p->ents = calloc(p->lim.max_namespaces, sizeof(*p->ents));
        p->stale = calloc(p->lim.max_namespaces, sizeof(*p->stale));
        /* Dropped fds are pooled ones, plus at most one refill's worth. */
        p->closing = calloc(p->lim.max_pooled + MAX_PER_STACK + 1, sizeof(*p->closing));
        if (!p->inos || !p->ents || !p->stale || !p->closing) {
                pool_release(p);
                return -ENOMEM;
        }
        r = netns__open_home(&p->home_fd);
        if (r >= 0 && fstat(p->home_fd, &st) < 0)
                r = -errno;
        if (r < 0) {
                pool_release(p);
                return r;
        }
        p->nsfs_dev = st.st_dev;

        pthread_mutex_init(&p->lock, NULL);
        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        pthread_cond_init(&p->wake, &ca);
        pthread_cond_init(&p->done, &ca);
        pthread_condattr_destroy(&ca);

        r = netns__thread_start(&p->thread, pool_main, p);
        if (r < 0) {
                pthread_cond_destroy(&p->done);
                pthread_cond_destroy(&p->wake);
                pthread_mutex_destroy(&p->lock);
                pool_release(p);
                return r;
        }
        *ret = p;
        return 0;
}

struct netns_sockpool *netns_sockpool_free(struct netns_sockpool *p)
{
        if (!p)
                return NULL;
        pthread_mutex_lock(&p->lock);
        p->stop = true;
        pthread_cond_signal(&p->wake);
        pthread_mutex_unlock(&p->lock);
        pthread_join(p->thread, NULL);

        while (p->n_ents > 0) {
                remove_entry(p, p->n_ents - 1);
                close_dropped(p);
        }
        /* No caller may be waiting (the contract); drop what is left. */
        while (p->queue) {
                struct request *q = p->queue;

                p->queue = q->next;
                free(q);
        }
        pthread_cond_destroy(&p->done);
        pthread_cond_destroy(&p->wake);
        pthread_mutex_destroy(&p->lock);
        return pool_release(p);
}
