/* SPDX-License-Identifier: Apache-2.0 */
/* The namespace threads: the long-lived worker with its job queue, the
 * short-lived threads of the blocking calls, and the socket jobs. */

#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/strbuf.h"
#include "netns/netns-internal.h"

#ifndef SOL_NETLINK
#define SOL_NETLINK 270
#endif

/* ---- jobs ---- */

enum job_kind {
        JOB_RECONCILE,
        JOB_TEARDOWN,
        JOB_CHECK,
        JOB_SOCKET,
        JOB_MONITOR,
};

struct job {
        struct job *next;
        enum job_kind kind;
        union {
                struct netns_config config;  /* JOB_RECONCILE, JOB_TEARDOWN, JOB_CHECK */
                struct netns_socket_req req; /* JOB_SOCKET */
                char path[512];              /* JOB_MONITOR */
        };
        struct netns_config current; /* JOB_CHECK, when has_current */
        bool has_current;
        netns_reconcile_cb *reconcile_cb;
        netns_fd_cb *fd_cb;
        void *userdata;

        /* results */
        int r;
        int fd; /* JOB_SOCKET, JOB_MONITOR: owned until handed to fd_cb */
        struct strbuf report;
        char *error;
};

static struct job *job_free(struct job *j)
{
        if (!j)
                return NULL;
        safe_close(j->fd);
        strbuf_done(&j->report);
        free(j->error);
        free(j);
        return NULL;
}

static inline void job_freep(struct job **j)
{
        job_free(*j);
}

static struct job *job_new(enum job_kind kind)
{
        struct job *j = calloc(1, sizeof(*j));

        if (!j)
                return NULL;
        j->kind = kind;
        j->fd = -1;
        return j;
}

/* Move the calling thread back to @home_fd unless it is there: setns()
 * needs CAP_SYS_ADMIN even for the namespace one is in, and jobs that
 * stayed home (sockets in "", failures) must work without it. */
static int go_home(int home_fd)
{
        struct stat home, cur;

        if (fstat(home_fd, &home) < 0)
                return -errno;
        if (stat("/proc/thread-self/ns/net", &cur) == 0 && cur.st_dev == home.st_dev &&
            cur.st_ino == home.st_ino)
                return 0;
        if (setns(home_fd, CLONE_NEWNET) < 0)
                return -errno;
        return 0;
}

/* Run @j on the calling namespace thread, which is in the host namespace
 * @home_fd, and move the thread back there. Returns -errno only when the
 * thread could not return (it must not run anything else then). */
static int job_run(struct job *j, int home_fd)
{
        switch (j->kind) {
        case JOB_RECONCILE:
                j->r = netns__reconcile_here(&j->config, home_fd, &j->report, &j->error);
                break;
        case JOB_TEARDOWN:
                j->r = netns__teardown_here(&j->config, home_fd, &j->report, &j->error);
                break;
        case JOB_CHECK:
                j->r = netns__check_here(&j->config, j->has_current ? &j->current : NULL,
                                         &j->error);
                break;
        case JOB_SOCKET:
                j->r = netns__socket_here(&j->req, &j->fd, &j->error);
                break;
        case JOB_MONITOR:
                j->r = netns__monitor_here(j->path, &j->fd, &j->error);
                break;
        }
        if (j->r < 0 && !j->error)
                j->error = strdup(strerror(-j->r));
        return go_home(home_fd);
}

int netns__thread_start(pthread_t *t, void *(*fn)(void *), void *arg)
{
        sigset_t all, old;
        int r;

        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &old);
        r = pthread_create(t, NULL, fn, arg);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        return -r;
}

int netns__open_home(int *ret_fd)
{
        int fd = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);

        if (fd < 0)
                return -errno;
        *ret_fd = fd;
        return 0;
}

/* ---- blocking calls: one short-lived thread each ---- */

struct sync_ctx {
        struct job *job;
        int home_fd;
};

static void *sync_main(void *p)
{
        struct sync_ctx *s = p;

        /* The thread exits right after, so a failed return home is moot. */
        (void)job_run(s->job, s->home_fd);
        return NULL;
}

static int run_sync(struct job *j)
{
        _cleanup_close_ int home = -1;
        struct sync_ctx s = {.job = j};
        pthread_t t;
        int r;

        r = netns__open_home(&home);
        if (r < 0)
                return netns__fail(&j->error, r, "opening the current network namespace");
        s.home_fd = home;
        r = netns__thread_start(&t, sync_main, &s);
        if (r < 0)
                return netns__fail(&j->error, r, "starting a namespace thread");
        pthread_join(t, NULL);
        return j->r;
}

static void take_error(struct job *j, char **reterr)
{
        if (reterr) {
                free(*reterr);
                *reterr = TAKE_PTR(j->error);
        }
}

static int run_sync_config(enum job_kind kind, const struct netns_config *c, struct strbuf *report,
                           char **reterr)
{
        _cleanup_(job_freep) struct job *j = NULL;
        int r;

        assert(c);
        j = job_new(kind);
        if (!j)
                return -ENOMEM;
        j->config = *c;
        r = run_sync(j);
        /* Changes made before a failure are reported too. */
        if (report && j->report.len > 0) {
                int k = strbuf_append(report, j->report.data, j->report.len);
                if (k < 0 && r >= 0)
                        r = k;
        }
        if (r < 0)
                take_error(j, reterr);
        return r;
}

int netns_reconcile(const struct netns_config *c, struct strbuf *report, char **reterr)
{
        return run_sync_config(JOB_RECONCILE, c, report, reterr);
}

int netns_teardown(const struct netns_config *c, struct strbuf *report, char **reterr)
{
        return run_sync_config(JOB_TEARDOWN, c, report, reterr);
}

int netns_check(const struct netns_config *c, const struct netns_config *current, char **reterr)
{
        _cleanup_(job_freep) struct job *j = NULL;
        int r;

        assert(c);
        j = job_new(JOB_CHECK);
        if (!j)
                return -ENOMEM;
        j->config = *c;
        if (current) {
                j->current = *current;
                j->has_current = true;
        }
        r = run_sync(j);
        if (r < 0)
                take_error(j, reterr);
        return r;
}

int netns_socket_sync(const struct netns_socket_req *req, int *ret_fd, char **reterr)
{
        _cleanup_(job_freep) struct job *j = NULL;
        int r;

        assert(req && ret_fd);
        j = job_new(JOB_SOCKET);
        if (!j)
                return -ENOMEM;
        j->req = *req;
        r = run_sync(j);
        if (r < 0) {
                take_error(j, reterr);
                return r;
        }
        *ret_fd = TAKE_FD(j->fd);
        return 0;
}

/* ---- the worker ---- */

struct netns_worker {
        pthread_t thread;
        int home_fd; /* host namespace: that of the thread that made the worker */
        int efd;     /* eventfd: completions are waiting */

        pthread_mutex_t lock; /* guards the fields below */
        pthread_cond_t cond;  /* signalled on new pending jobs and on stop */
        struct job *pending, **pending_tail;
        struct job *done, **done_tail;
        bool stop;
        bool broken; /* the thread could not return to home_fd */
};

static void *worker_main(void *p)
{
        struct netns_worker *w = p;

        pthread_mutex_lock(&w->lock);
        for (;;) {
                struct job *j;
                uint64_t one = 1;

                while (!w->stop && !w->pending)
                        pthread_cond_wait(&w->cond, &w->lock);
                if (w->stop)
                        break;
                j = w->pending;
                w->pending = j->next;
                if (!w->pending)
                        w->pending_tail = &w->pending;
                j->next = NULL;
                if (w->broken) {
                        j->r = netns__fail(&j->error, -ENOTRECOVERABLE,
                                           "the namespace thread is stuck in another namespace");
                } else {
                        pthread_mutex_unlock(&w->lock);
                        if (job_run(j, w->home_fd) < 0) {
                                pthread_mutex_lock(&w->lock);
                                w->broken = true;
                        } else {
                                pthread_mutex_lock(&w->lock);
                        }
                }
                *w->done_tail = j;
                w->done_tail = &j->next;
                (void)!write(w->efd, &one, sizeof(one));
        }
        pthread_mutex_unlock(&w->lock);
        return NULL;
}

int netns_worker_new(struct netns_worker **ret)
{
        struct netns_worker *w;
        int r;

        assert(ret);
        w = calloc(1, sizeof(*w));
        if (!w)
                return -ENOMEM;
        w->home_fd = -1;
        w->pending_tail = &w->pending;
        w->done_tail = &w->done;
        w->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (w->efd < 0) {
                r = -errno;
                free(w);
                return r;
        }
        r = netns__open_home(&w->home_fd);
        if (r < 0)
                goto fail;
        pthread_mutex_init(&w->lock, NULL);
        pthread_cond_init(&w->cond, NULL);
        r = netns__thread_start(&w->thread, worker_main, w);
        if (r < 0) {
                pthread_cond_destroy(&w->cond);
                pthread_mutex_destroy(&w->lock);
                goto fail;
        }
        *ret = w;
        return 0;
fail:
        safe_close(w->home_fd);
        safe_close(w->efd);
        free(w);
        return r;
}

static void free_list(struct job *j)
{
        while (j) {
                struct job *next = j->next;
                job_free(j);
                j = next;
        }
}

struct netns_worker *netns_worker_free(struct netns_worker *w)
{
        if (!w)
                return NULL;
        pthread_mutex_lock(&w->lock);
        w->stop = true;
        pthread_cond_signal(&w->cond);
        pthread_mutex_unlock(&w->lock);
        pthread_join(w->thread, NULL);
        /* Dropped without callbacks (-ECANCELED); their fds are closed. */
        free_list(w->pending);
        free_list(w->done);
        pthread_cond_destroy(&w->cond);
        pthread_mutex_destroy(&w->lock);
        safe_close(w->home_fd);
        safe_close(w->efd);
        free(w);
        return NULL;
}

int netns_worker_fd(const struct netns_worker *w)
{
        assert(w);
        return w->efd;
}

void netns_worker_dispatch(struct netns_worker *w)
{
        struct job *list;
        uint64_t n;

        assert(w);
        (void)!read(w->efd, &n, sizeof(n));
        pthread_mutex_lock(&w->lock);
        list = w->done;
        w->done = NULL;
        w->done_tail = &w->done;
        pthread_mutex_unlock(&w->lock);

        while (list) {
                struct job *j = list;

                list = j->next;
                switch (j->kind) {
                case JOB_RECONCILE:
                case JOB_TEARDOWN:
                case JOB_CHECK:
                        j->reconcile_cb(j->r, j->report.data ? j->report.data : "",
                                        j->r < 0 ? j->error : NULL, j->userdata);
                        break;
                case JOB_SOCKET:
                case JOB_MONITOR:
                        j->fd_cb(j->r, j->r < 0 ? -1 : TAKE_FD(j->fd), j->r < 0 ? j->error : NULL,
                                 j->userdata);
                        break;
                }
                job_free(j);
        }
}

static int submit(struct netns_worker *w, struct job *j)
{
        pthread_mutex_lock(&w->lock);
        *w->pending_tail = j;
        w->pending_tail = &j->next;
        pthread_cond_signal(&w->cond);
        pthread_mutex_unlock(&w->lock);
        return 0;
}

static int submit_config(struct netns_worker *w, enum job_kind kind, const struct netns_config *c,
                         netns_reconcile_cb *cb, void *userdata)
{
        struct job *j;

        assert(w && c && cb);
        j = job_new(kind);
        if (!j)
                return -ENOMEM;
        j->config = *c;
        j->reconcile_cb = cb;
        j->userdata = userdata;
        return submit(w, j);
}

int netns_worker_reconcile(struct netns_worker *w, const struct netns_config *c,
                           netns_reconcile_cb *cb, void *userdata)
{
        return submit_config(w, JOB_RECONCILE, c, cb, userdata);
}

int netns_worker_teardown(struct netns_worker *w, const struct netns_config *c,
                          netns_reconcile_cb *cb, void *userdata)
{
        return submit_config(w, JOB_TEARDOWN, c, cb, userdata);
}

int netns_worker_check(struct netns_worker *w, const struct netns_config *c,
                       const struct netns_config *current, netns_reconcile_cb *cb, void *userdata)
{
        struct job *j;

        assert(w && c && cb);
        j = job_new(JOB_CHECK);
        if (!j)
                return -ENOMEM;
        j->config = *c;
        if (current) {
                j->current = *current;
                j->has_current = true;
        }
        j->reconcile_cb = cb;
        j->userdata = userdata;
        return submit(w, j);
}

int netns_worker_socket(struct netns_worker *w, const struct netns_socket_req *req, netns_fd_cb *cb,
                        void *userdata)
{
        struct job *j;

        assert(w && req && cb);
        j = job_new(JOB_SOCKET);
        if (!j)
                return -ENOMEM;
        j->req = *req;
        j->fd_cb = cb;
        j->userdata = userdata;
        return submit(w, j);
}

int netns_worker_monitor(struct netns_worker *w, const char *netns_path, netns_fd_cb *cb,
                         void *userdata)
{
        struct job *j;

        assert(w && netns_path && cb);
        if (strlen(netns_path) >= sizeof(j->path))
                return -ENAMETOOLONG;
        j = job_new(JOB_MONITOR);
        if (!j)
                return -ENOMEM;
        strcpy(j->path, netns_path);
        j->fd_cb = cb;
        j->userdata = userdata;
        return submit(w, j);
}

/* ---- socket jobs (on a namespace thread) ---- */

static int enter_path(const char *path, char **reterr)
{
        _cleanup_close_ int fd = -1;
        int r;

        r = netns__open(path, &fd, reterr);
        if (r < 0)
                return r;
        return netns__enter(fd, path, reterr);
}

static const char *fmt_sockaddr(const struct sockaddr_storage *ss, char *buf, size_t size)
{
        char a[INET6_ADDRSTRLEN] = "?";

        if (ss->ss_family == AF_INET) {
                const struct sockaddr_in *in = (const struct sockaddr_in *)ss;

                inet_ntop(AF_INET, &in->sin_addr, a, sizeof(a));
                snprintf(buf, size, "%s:%u", a, ntohs(in->sin_port));
        } else if (ss->ss_family == AF_INET6) {
                const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)ss;

                inet_ntop(AF_INET6, &in6->sin6_addr, a, sizeof(a));
                snprintf(buf, size, "[%s]:%u", a, ntohs(in6->sin6_port));
        } else {
                snprintf(buf, size, "(family %d)", ss->ss_family);
        }
        return buf;
}

static int set_opt(int fd, int level, int opt, const char *name, const char *where, char **reterr)
{
        int one = 1;

        if (setsockopt(fd, level, opt, &one, sizeof(one)) < 0)
                return netns__fail(reterr, -errno, "setting %s on a socket in %s", name, where);
        return 0;
}

int netns__socket_here(const struct netns_socket_req *req, int *ret_fd, char **reterr)
{
        const char *where = req->netns_path[0] ? req->netns_path : "the host namespace";
        _cleanup_close_ int fd = -1;
        char a[INET6_ADDRSTRLEN + 16];
        int r;

        if (req->family != AF_INET && req->family != AF_INET6)
                return netns__fail(reterr, -EAFNOSUPPORT, "socket family %d", req->family);
        if (req->bind && (req->addrlen == 0 || req->addrlen > sizeof(req->addr) ||
                          req->addr.ss_family != req->family))
                return netns__fail(reterr, -EINVAL, "bad bind address for a socket in %s", where);
        if (req->netns_path[0]) {
                r = enter_path(req->netns_path, reterr);
                if (r < 0)
                        return r;
        }
        fd = socket(req->family, req->type | SOCK_CLOEXEC | SOCK_NONBLOCK, req->protocol);
        if (fd < 0)
                return netns__fail(reterr, -errno, "creating a socket in %s", where);
        if (!req->bind) {
                *ret_fd = TAKE_FD(fd);
                return 0;
        }
        if ((req->type & 0xf) == SOCK_STREAM) {
                r = set_opt(fd, SOL_SOCKET, SO_REUSEADDR, "SO_REUSEADDR", where, reterr);
                if (r < 0)
                        return r;
        }
        if (req->reuseport) {
                r = set_opt(fd, SOL_SOCKET, SO_REUSEPORT, "SO_REUSEPORT", where, reterr);
                if (r < 0)
                        return r;
        }
        if (req->freebind) {
                r = req->family == AF_INET
                            ? set_opt(fd, SOL_IP, IP_FREEBIND, "IP_FREEBIND", where, reterr)
                            : set_opt(fd, SOL_IPV6, IPV6_FREEBIND, "IPV6_FREEBIND", where, reterr);
                if (r < 0)
                        return r;
        }
        if (req->v6only && req->family == AF_INET6) {
                r = set_opt(fd, SOL_IPV6, IPV6_V6ONLY, "IPV6_V6ONLY", where, reterr);
                if (r < 0)
                        return r;
        }
        if (bind(fd, (const struct sockaddr *)&req->addr, req->addrlen) < 0)
                return netns__fail(reterr, -errno, "bind %s in %s",
                                   fmt_sockaddr(&req->addr, a, sizeof(a)), where);
        if (req->backlog >= 0 && listen(fd, req->backlog) < 0)
                return netns__fail(reterr, -errno, "listen on %s in %s",
                                   fmt_sockaddr(&req->addr, a, sizeof(a)), where);
        *ret_fd = TAKE_FD(fd);
        return 0;
}

int netns__monitor_here(const char *netns_path, int *ret_fd, char **reterr)
{
        static const int groups[] = {RTNLGRP_LINK, RTNLGRP_IPV4_IFADDR, RTNLGRP_IPV6_IFADDR,
                                     RTNLGRP_IPV4_ROUTE, RTNLGRP_IPV6_ROUTE};
        struct sockaddr_nl sa = {.nl_family = AF_NETLINK};
        _cleanup_close_ int fd = -1;
        int r;

        r = enter_path(netns_path, reterr);
        if (r < 0)
                return r;
        fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, NETLINK_ROUTE);
        if (fd < 0)
                return netns__fail(reterr, -errno, "creating a netlink socket in %s", netns_path);
        if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
                return netns__fail(reterr, -errno, "binding a netlink socket in %s", netns_path);
        for (size_t i = 0; i < ELEMENTSOF(groups); i++)
                if (setsockopt(fd, SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, &groups[i],
                               sizeof(groups[i])) < 0)
                        return netns__fail(reterr, -errno,
                                           "subscribing to rtnetlink group %d in %s", groups[i],
                                           netns_path);
        *ret_fd = TAKE_FD(fd);
        return 0;
}
