/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* The gateway's network namespace (libnl): create it the iproute2 way
 * (a bind mount of the namespace on <run_dir>/<name>), give it a public
 * link and a link per overlay network (Yggdrasil, Mycelium) with
 * addresses, routes and sysctls, keep it
 * correct (idempotent reconcile that reports what it repaired), tear it
 * down, and open sockets inside any named namespace.
 *
 * Namespace switching (setns/unshare) happens only here, and only on a
 * thread this module owns: the worker thread, or a short-lived thread for
 * the blocking calls (setns is per thread; never on a libuv loop or its
 * thread pool). The module does not use libuv: completions are signalled
 * on an eventfd that the owner polls, and delivered by
 * netns_worker_dispatch() on the owner's thread.
 *
 * "The host namespace" below is the network namespace of the thread that
 * called netns_worker_new() (or the blocking function): veth host ends and
 * macvlan parents live there, and moved links come from and go back there.
 *
 * Errors are -errno with a specific text in *reterr naming the cause
 * ("parent link eth9 of macvlan public not found in the host namespace:
 * No such device", "bind 203.0.113.10:443 in /run/netns/gateway: Address
 * already in use", "permission denied creating namespace gateway: ...").
 * *reterr is set only on failure, is allocated, and belongs to the caller
 * (free()); it may stay NULL on -ENOMEM. Every @reterr may be NULL. See
 * docs/internals/netns.md. */

#include <net/if.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

struct strbuf;

enum netns_link_kind {
        NETNS_LINK_VETH,    /* veth pair: host-side end <host>, inner end in the namespace */
        NETNS_LINK_MACVLAN, /* macvlan (bridge mode) on parent <host>, created inside */
        NETNS_LINK_MOVE,    /* an existing link <host> moved in and renamed */
        _NETNS_LINK_KIND_MAX,
};

struct netns_link_spec {
        enum netns_link_kind kind;
        char host[IFNAMSIZ]; /* veth host end / macvlan parent / link to move */
        char name[IFNAMSIZ]; /* name inside the namespace ("public", "ygg", "mycelium") */
};

/* Parse "veth:<name>", "macvlan:<parent>" or "move:<ifname>" into @ret, with
 * @inner_name as the link's name inside the namespace. Both names must be
 * valid interface names (1-15 characters, no '/', ':' or white space).
 * Returns 0 or -EINVAL (with *reterr); @ret is untouched on failure. */
int netns_link_spec_parse(const char *s, const char *inner_name, struct netns_link_spec *ret,
                          char **reterr);
/* "veth", "macvlan", "move"; NULL for other values. */
const char *netns_link_kind_to_string(enum netns_link_kind k);

struct netns_prefix {
        int family; /* AF_INET or AF_INET6; 0 = unset */
        union {
                struct in_addr v4;
                struct in6_addr v6;
        };
        unsigned char prefixlen;
};

/* An overlay network reached through a link of its own: the link (named
 * link.name inside, e.g. "ygg" or "mycelium"), the gateway's address on it
 * (from the node's subnet of that overlay) and one route for the overlay's
 * prefix via the node's router on it. */
struct netns_overlay {
        struct netns_link_spec link;
        struct netns_prefix address; /* AF_INET6, the gateway's address on the overlay */
        struct in6_addr router;      /* next hop for @prefix (not ::) */
        struct netns_prefix prefix;  /* AF_INET6, the overlay's prefix: 200::/7, 400::/7 */
};

#define NETNS_OVERLAYS_MAX 4

struct netns_config {
        char name[64];     /* namespace name (a file name under run_dir) */
        char run_dir[256]; /* where named namespaces live; "" = "/run/netns" */
        struct netns_link_spec public_link;
        struct netns_prefix public_v4; /* family 0 when absent */
        struct in_addr gw4;            /* default route next hop; 0.0.0.0 = no route */
        struct netns_prefix public_v6; /* family 0 when absent */
        struct in6_addr gw6;           /* default route next hop; :: = no route */
        struct netns_overlay overlays[NETNS_OVERLAYS_MAX]; /* built in this order */
        unsigned n_overlays; /* 0..NETNS_OVERLAYS_MAX; links, prefixes all distinct */
        /* Links the namespace must not have: the overlays known but not
         * configured. Reconcile removes them (and their routes with them)
         * like a link that is not the configured one; teardown too. */
        char absent[NETNS_OVERLAYS_MAX][IFNAMSIZ];
        unsigned n_absent; /* 0..NETNS_OVERLAYS_MAX */
};

/* ---- blocking operations ---- */

/* These run on a short-lived thread of their own (the caller's thread never
 * changes namespace) and block until done. The worker runs the same code. */

/* Make everything match @c: namespace, loopback up, the public link and
 * each overlay's link up with their addresses, default routes via the
 * gateways, each overlay's prefix (200::/7, 400::/7) via its router, no
 * link named in @c->absent, forwarding and router advertisements off.
 * Idempotent: a second
 * call changes nothing and appends nothing to @report (may be NULL). Each
 * change is appended to @report as one line ("created namespace gateway",
 * "added address 203.0.113.10/24 on public"). Returns 0 or -errno with
 * *reterr: -EINVAL for a bad @c, -ENODEV for a missing parent or moved
 * link, -EPERM/-EACCES without privileges, -EEXIST for a name clash in the
 * host namespace. Changes made before a failure stay (and are reported). */
int netns_reconcile(const struct netns_config *c, struct strbuf *report, char **reterr);
/* Remove the namespace, the veth pairs (by their host ends too) and the
 * macvlans; moved links (the configured ones, and any under a name in
 * @c->absent) go back to the host namespace under their old name and
 * admin state. Missing pieces are not errors. Each change is appended
 * to @report (may be NULL). Returns 0 or -errno with *reterr. */
int netns_teardown(const struct netns_config *c, struct strbuf *report, char **reterr);
/* Check, changing nothing, whether @c can be built on this node before
 * anything is torn down for it: @c is well formed, a macvlan parent and a
 * link to move exist in the host namespace (or come back there when
 * @current, the configuration built now, is torn down; NULL: none), and a
 * veth's host-side name is free or a veth. A link that @current's teardown
 * deletes (its veth host ends) does not count as present. Returns 0 or
 * -errno with *reterr: -EINVAL (bad @c), -ENODEV (missing parent or link,
 * same texts as netns_reconcile()), -EEXIST (host name taken by another
 * kind of link). What only building can tell (an address in use, kernel
 * refusals) is not checked. */
int netns_check(const struct netns_config *c, const struct netns_config *current, char **reterr);
/* Does <run_dir>/<name> hold a live network namespace (an nsfs bind
 * mount)? @run_dir NULL or "" means /run/netns. */
bool netns_exists(const char *run_dir, const char *name);

/* ---- the worker thread ---- */

struct netns_worker;

/* Start the worker thread (all signals blocked on it). Its host namespace
 * is the calling thread's. Returns 0 or -errno. */
int netns_worker_new(struct netns_worker **ret);
/* Joins the thread after the running job; pending and undispatched jobs
 * are dropped with -ECANCELED (callbacks are not run; their fds are
 * closed). Accepts NULL. Returns NULL. */
struct netns_worker *netns_worker_free(struct netns_worker *w);
/* An eventfd (CLOEXEC, non-blocking) that is readable while completions
 * wait for netns_worker_dispatch(). Owned by the worker. */
int netns_worker_fd(const struct netns_worker *w);
/* Run the callbacks of completed jobs on the calling thread, in submit
 * order. Call it from the owner thread only. */
void netns_worker_dispatch(struct netns_worker *w);

/* Callbacks run from netns_worker_dispatch(), never from the submit call.
 * A submit that returns < 0 never calls back. @report and @error are valid
 * during the callback only (@report is "" when nothing changed, @error is
 * NULL when r >= 0). */
typedef void netns_reconcile_cb(int r, const char *report, const char *error, void *userdata);
typedef void netns_fd_cb(int r, int fd, const char *error, void *userdata);

/* Queue netns_reconcile() / netns_teardown() of a copy of @c. Returns 0 or
 * -ENOMEM. */
int netns_worker_reconcile(struct netns_worker *w, const struct netns_config *c,
                           netns_reconcile_cb *cb, void *userdata);
int netns_worker_teardown(struct netns_worker *w, const struct netns_config *c,
                          netns_reconcile_cb *cb, void *userdata);
/* Queue netns_check() of copies of @c and @current (may be NULL); @cb gets
 * an empty report. Returns 0 or -ENOMEM. */
int netns_worker_check(struct netns_worker *w, const struct netns_config *c,
                       const struct netns_config *current, netns_reconcile_cb *cb, void *userdata);

struct netns_socket_req {
        char netns_path[512]; /* e.g. /run/netns/gateway; "" = the worker's host namespace */
        int family;           /* AF_INET / AF_INET6 */
        int type;             /* SOCK_STREAM / SOCK_DGRAM (CLOEXEC|NONBLOCK added) */
        int protocol;
        bool bind; /* bind to @addr (listening sockets); else @addr is unused */
        struct sockaddr_storage addr;
        socklen_t addrlen;
        int backlog;    /* >= 0: listen() with this backlog (only with @bind); < 0: no listen */
        bool reuseport; /* SO_REUSEPORT (one listener per proxy worker) */
        bool freebind;  /* IP_FREEBIND / IPV6_FREEBIND */
        bool v6only;    /* IPV6_V6ONLY (AF_INET6 only) */
};
/* Open a socket inside a namespace (stream sockets that bind also get
 * SO_REUSEADDR); @cb gets the fd (ownership passes to @cb; close it if
 * unwanted). Errors: -ENOENT (no such namespace), -EINVAL (not a network
 * namespace), -EPERM, -EADDRINUSE, -EADDRNOTAVAIL, ... Returns 0 or
 * -ENOMEM. */
int netns_worker_socket(struct netns_worker *w, const struct netns_socket_req *req, netns_fd_cb *cb,
                        void *userdata);
/* A NETLINK_ROUTE socket (CLOEXEC, non-blocking) inside @netns_path,
 * subscribed to link, address and route changes (drift detection). Read
 * and discard its messages; any readability means "something changed". It
 * keeps the namespace alive, so also poll netns_exists(). */
int netns_worker_monitor(struct netns_worker *w, const char *netns_path, netns_fd_cb *cb,
                         void *userdata);

/* Synchronous variant for tools and tests: runs on a short-lived thread.
 * Returns 0 and *ret_fd (the caller owns it), or -errno with *reterr. */
int netns_socket_sync(const struct netns_socket_req *req, int *ret_fd, char **reterr);

/* ---- the socket pool: fast outgoing sockets inside namespaces ---- */

/* For threads that must never setns() (libuv loops): unconnected TCP
 * sockets (SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC) created inside a
 * named network namespace, handed out from per-(namespace, family) stacks
 * that one background thread of the pool keeps filled. That thread is the
 * only one that setns()es (all signals blocked on it); it returns to the
 * namespace of the thread that called netns_sockpool_new() after each job.
 *
 * Stacks are keyed by the namespace's identity (st_dev/st_ino of the nsfs
 * file), found by stat()ing the path on every call: a namespace deleted
 * and recreated at the same path never gets the old one's sockets. The
 * thread also re-stats the paths it serves every check_ms and drops stacks
 * whose path is gone or now names another namespace, so pooled sockets do
 * not keep a deleted namespace alive for longer than that. See
 * docs/internals/netns.md. */

struct netns_sockpool;

/* 0 in any field = the default. Values above the maximum are clamped. */
struct netns_sockpool_limits {
        unsigned per_stack;      /* sockets kept per (namespace, family); 8, max 64 */
        unsigned max_pooled;     /* pre-created fds in total; 256, max 65536 */
        unsigned max_namespaces; /* tracked (least recently used dropped); 64, max 1024 */
        unsigned idle_ms;        /* drop a namespace's stacks unused this long; 30000 */
        unsigned wait_ms;        /* slow-path wait for the thread before -ETIMEDOUT; 1000 */
        unsigned check_ms;       /* how often the thread re-checks paths and idleness; 1000 */
};

struct netns_sockpool_stats {
        unsigned namespaces;              /* tracked now */
        unsigned pooled;                  /* pre-created fds held now */
        unsigned long long fast;          /* calls served from a stack without waiting */
        unsigned long long slow;          /* calls that asked the thread (first use, empty stack) */
        unsigned long long timeouts;      /* slow calls that gave up (-ETIMEDOUT) */
        unsigned long long dropped_idle;  /* namespaces dropped after idle_ms */
        unsigned long long dropped_stale; /* ... whose path vanished or names another namespace */
        unsigned long long dropped_lru;   /* ... to make room (max_namespaces, max_pooled) */
};

/* Start the pool's thread. @limits may be NULL (all defaults). Returns 0
 * or -errno. */
int netns_sockpool_new(const struct netns_sockpool_limits *limits, struct netns_sockpool **ret);
/* Join the thread and close every pooled fd. No call may be in progress.
 * Accepts NULL. Returns NULL. */
struct netns_sockpool *netns_sockpool_free(struct netns_sockpool *p);
static inline void netns_sockpool_freep(struct netns_sockpool **p)
{
        netns_sockpool_free(*p);
}

/* A new unconnected SOCK_STREAM socket (non-blocking, close-on-exec) of
 * @family (AF_INET or AF_INET6) inside the network namespace bound at
 * @netns_path (absolute, < 512 bytes); the caller owns *ret_fd. NULL or ""
 * is a plain socket() in the calling thread's namespace (no pool). Safe to
 * call from any number of threads at once; never changes the caller's
 * namespace. Fast path: stat(@netns_path) and a pop under a mutex. Slow
 * path (first use of a namespace, or its stack ran dry): the caller waits
 * up to wait_ms for the thread. Returns 0, or -errno with *reterr:
 * -EAFNOSUPPORT (family), -EINVAL (relative path, or not a network
 * namespace), -ENAMETOOLONG, -ENOENT (no such namespace), -EPERM/-EACCES
 * (entering it), -ETIMEDOUT, -ENOTRECOVERABLE (the thread could not return
 * to its namespace), -EMFILE/-ENFILE/-ENOMEM from socket(). */
int netns_sockpool_socket(struct netns_sockpool *p, const char *netns_path, int family, int *ret_fd,
                          char **reterr);
/* A consistent snapshot of the counters. */
void netns_sockpool_get_stats(struct netns_sockpool *p, struct netns_sockpool_stats *ret);
