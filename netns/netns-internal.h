/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* Private to netns/: the libnl boundary (errors mapped to -errno once,
 * here), error texts, and the jobs that run on a namespace thread. */

#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>

#include "common/macros.h"
#include "netns/netns.h"

struct nl_sock;

#define NETNS_DEFAULT_RUN_DIR "/run/netns"

/* ---- errors ---- */

/* Replace *reterr (when @reterr is not NULL) with "<fmt...>: <strerror(-r)>"
 * and return @r. */
int netns__fail(char **reterr, int r, const char *fmt, ...) _printf_(3, 4);
/* Map a libnl error (-NLE_*) to -errno. Prefer netns__nl_call(), which
 * returns the kernel's own errno. */
int netns__nle_to_errno(int nle);

/* ---- netlink ---- */

/* A NETLINK_ROUTE socket bound to the network namespace of the thread that
 * opened it, with an error callback that keeps the kernel's errno and
 * extended-ack message of the last failed request. */
struct netns__nl {
        struct nl_sock *sk;
        int kernel_errno; /* errno of the last NLMSG_ERROR, 0 when none */
        char extack[256]; /* its NLMSGERR_ATTR_MSG, "" when none */
};

int netns__nl_open(struct netns__nl **ret);
struct netns__nl *netns__nl_free(struct netns__nl *nl);
static inline void netns__nl_freep(struct netns__nl **nl)
{
        netns__nl_free(*nl);
}
/* Clear the recorded error before a request. */
void netns__nl_begin(struct netns__nl *nl);
/* Turn the libnl return value @nle of the request into 0 or -errno. */
int netns__nl_end(struct netns__nl *nl, int nle);
#define netns__nl_call(nl, expr)                                                                   \
        ({                                                                                         \
                struct netns__nl *_nl_ = (nl);                                                     \
                netns__nl_begin(_nl_);                                                             \
                netns__nl_end(_nl_, (expr));                                                       \
        })
/* Like netns__fail(), with the kernel's extended-ack text appended. */
int netns__nl_fail(const struct netns__nl *nl, char **reterr, int r, const char *fmt, ...)
        _printf_(4, 5);

/* ---- namespace files ---- */

/* "<run_dir>/<name>" with the default run dir for "". Returns 0, -EINVAL
 * for a name that is not a plain file name, -ENAMETOOLONG. */
int netns__path(const struct netns_config *c, char *buf, size_t size);
/* Open a network namespace file: 0 and *ret_fd, -ENOENT, -EINVAL when the
 * file is not a network namespace, or -errno (with *reterr set as by
 * netns__fail()). */
int netns__open(const char *path, int *ret_fd, char **reterr);
/* setns() the calling thread into the network namespace @fd; @name is for
 * the error text. */
int netns__enter(int fd, const char *name, char **reterr);

/* ---- namespace threads ---- */

/* Start a thread with every signal blocked: threads that switch namespaces
 * take no signals, those belong to the owner's loop. 0 or -errno. */
int netns__thread_start(pthread_t *t, void *(*fn)(void *), void *arg);
/* Open the calling thread's network namespace: the host namespace of the
 * threads it starts. */
int netns__open_home(int *ret_fd);

/* ---- jobs (run on a namespace thread, which they may leave in any
 * namespace: the caller moves the thread back to @home_fd) ---- */

int netns__reconcile_here(const struct netns_config *c, int home_fd, struct strbuf *report,
                          char **reterr);
int netns__teardown_here(const struct netns_config *c, int home_fd, struct strbuf *report,
                         char **reterr);
/* Looks only: the thread stays in the host namespace. @current may be NULL. */
int netns__check_here(const struct netns_config *c, const struct netns_config *current,
                      char **reterr);
int netns__socket_here(const struct netns_socket_req *req, int *ret_fd, char **reterr);
int netns__monitor_here(const char *netns_path, int *ret_fd, char **reterr);
