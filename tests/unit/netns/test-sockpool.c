/* SPDX-License-Identifier: Apache-2.0 */
/* sockpool.c: sockets really created in the target namespace (netns
 * cookie, an address and a listener that exist only there), a namespace
 * recreated at the same path, deleted namespaces not kept alive, errors,
 * many threads at once without fd leaks, and the limits. Namespaces are
 * created and deleted by the test under a temporary run_dir; the parts
 * that create them need root and skip without it. Prints the fast path's
 * cost as a TAP comment (a measurement, not an assertion). */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "netns-test.h"

#ifndef SO_NETNS_COOKIE
#define SO_NETNS_COOKIE 71
#endif

static struct ntest T;
static char PATH_A[160], PATH_B[160], PATH_C[160];
static char VETH_IN[IFNAMSIZ], VETH_HOST[IFNAMSIZ];

/* ---- helpers ---- */

static uint64_t cookie(int fd)
{
        uint64_t c = 0;
        socklen_t len = sizeof(c);

        if (getsockopt(fd, SOL_SOCKET, SO_NETNS_COOKIE, &c, &len) < 0)
                return 0;
        return c;
}

/* The cookie of the namespace at @path ("" = ours), through the module's
 * blocking call (a thread that enters the namespace itself). */
static uint64_t ns_cookie(const char *path)
{
        struct netns_socket_req req = {.family = AF_INET, .type = SOCK_DGRAM, .backlog = -1};
        uint64_t c;
        int fd = -1;

        snprintf(req.netns_path, sizeof(req.netns_path), "%s", path);
        assert_int_equal(netns_socket_sync(&req, &fd, NULL), 0);
        c = cookie(fd);
        close(fd);
        assert_true(c != 0);
        return c;
}

static ino_t my_netns(void)
{
        struct stat st;

        assert_int_equal(stat("/proc/thread-self/ns/net", &st), 0);
        return st.st_ino;
}

static int count_fds(void)
{
        DIR *d = opendir("/proc/self/fd");
        struct dirent *de;
        int n = 0;

        assert_non_null(d);
        while ((de = readdir(d)))
                if (de->d_name[0] != '.')
                        n++;
        closedir(d);
        return n - 1; /* the DIR's own fd */
}

static void *mkns_main(void *arg)
{
        const char *path = arg;
        int fd;

        if (unshare(CLONE_NEWNET) < 0)
                return (void *)(intptr_t)-errno;
        fd = open(path, O_RDONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        if (fd < 0)
                return (void *)(intptr_t)-errno;
        close(fd);
        if (mount("/proc/thread-self/ns/net", path, NULL, MS_BIND, NULL) < 0)
                return (void *)(intptr_t)-errno;
        return NULL;
}

/* A new network namespace bound at @path, with lo up and @addr4/32 on it
 * (an address that exists only there). */
static void ns_create(const char *path, const char *addr4)
{
        pthread_t t;
        void *r;

        assert_int_equal(pthread_create(&t, NULL, mkns_main, (void *)path), 0);
        assert_int_equal(pthread_join(t, &r), 0);
        assert_int_equal((int)(intptr_t)r, 0);
        assert_int_equal(ntest_sh("nsenter --net=%s sh -c 'ip link set lo up && "
                                  "ip addr add %s/32 dev lo'",
                                  path, addr4),
                         0);
}

static void ns_delete(const char *path)
{
        (void)umount2(path, MNT_DETACH);
        (void)unlink(path);
}

static struct netns_sockpool *pool_new(const struct netns_sockpool_limits *l)
{
        struct netns_sockpool *p = NULL;

        assert_int_equal(netns_sockpool_new(l, &p), 0);
        assert_non_null(p);
        return p;
}

static struct netns_sockpool_stats stats(struct netns_sockpool *p)
{
        struct netns_sockpool_stats s;

        netns_sockpool_get_stats(p, &s);
        return s;
}

/* Wait (bounded) until the pool holds @pooled fds. */
static bool wait_pooled(struct netns_sockpool *p, unsigned pooled)
{
        for (int i = 0; i < 50000; i++) {
                if (stats(p).pooled == pooled)
                        return true;
                usleep(100);
        }
        return false;
}

static int get(struct netns_sockpool *p, const char *path, int family)
{
        char *err = NULL;
        int fd = -1, r;

        r = netns_sockpool_socket(p, path, family, &fd, &err);
        if (r < 0)
                fail_msg("netns_sockpool_socket(%s, %d): %d %s", path, family, r, err);
        assert_null(err);
        assert_true(fd >= 0);
        return fd;
}

static uint64_t nsec(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int setup(void **state)
{
        ns_delete(PATH_A);
        ns_delete(PATH_B);
        ns_delete(PATH_C);
        if (if_nametoindex(VETH_HOST))
                (void)ntest_sh("ip link del %s 2>/dev/null", VETH_HOST);
        return 0;
}

/* ---- no privileges needed ---- */

/* NULL and "" are plain sockets in the caller's namespace. */
static void test_plain(void **state)
{
        struct netns_sockpool *p = pool_new(NULL);
        const char *paths[] = {NULL, ""};
        uint64_t mine = ns_cookie("");
        struct netns_sockpool_stats s;
        char *err = NULL;
        int fd = -1;

        for (size_t i = 0; i < ELEMENTSOF(paths); i++) {
                int fams[] = {AF_INET, AF_INET6};

                for (size_t j = 0; j < ELEMENTSOF(fams); j++) {
                        int v;
                        socklen_t len = sizeof(v);

                        fd = get(p, paths[i], fams[j]);
                        assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
                        assert_true(fcntl(fd, F_GETFL) & O_NONBLOCK);
                        assert_int_equal(getsockopt(fd, SOL_SOCKET, SO_TYPE, &v, &len), 0);
                        assert_int_equal(v, SOCK_STREAM);
                        assert_int_equal(getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &v, &len), 0);
                        assert_int_equal(v, fams[j]);
                        assert_true(cookie(fd) == mine);
                        close(fd);
                }
        }
        fd = -1;
        assert_int_equal(netns_sockpool_socket(p, "", AF_UNIX, &fd, &err), -EAFNOSUPPORT);
        assert_string_equal(err, "socket family 1: Address family not supported by protocol");
        assert_int_equal(fd, -1);
        free(err);
        s = stats(p);
        assert_int_equal(s.namespaces, 0);
        assert_int_equal(s.pooled, 0);
        assert_true(s.fast == 0 && s.slow == 0);
        assert_null(netns_sockpool_free(p));
        assert_null(netns_sockpool_free(NULL));
}

static void expect_error(struct netns_sockpool *p, const char *path, int family, int want,
                         const char *text)
{
        char *err = NULL;
        int fd = -1;

        assert_int_equal(netns_sockpool_socket(p, path, family, &fd, &err), want);
        assert_int_equal(fd, -1);
        assert_non_null(err);
        if (!strstr(err, text))
                fail_msg("error '%s' lacks '%s'", err, text);
        free(err);
        /* reterr may be NULL */
        assert_int_equal(netns_sockpool_socket(p, path, family, &fd, NULL), want);
}

static void test_errors(void **state)
{
        struct netns_sockpool *p = pool_new(NULL);
        char longpath[600];

        expect_error(p, "/nonexistent/netns/x", AF_INET, -ENOENT,
                     "namespace /nonexistent/netns/x does not exist: No such file or directory");
        /* not on nsfs: refused by the caller's stat() */
        expect_error(p, "/proc/self/status", AF_INET, -EINVAL,
                     "/proc/self/status is not a network namespace");
        expect_error(p, T.run_dir, AF_INET6, -EINVAL, "is not a network namespace");
        /* on nsfs but another kind of namespace: refused by the thread */
        expect_error(p, "/proc/self/ns/mnt", AF_INET, -EINVAL,
                     "/proc/self/ns/mnt is not a network namespace");
        expect_error(p, "netns/x", AF_INET, -EINVAL, "namespace path 'netns/x' is not absolute");
        memset(longpath, 'a', sizeof(longpath) - 1);
        longpath[0] = '/';
        longpath[sizeof(longpath) - 1] = 0;
        expect_error(p, longpath, AF_INET, -ENAMETOOLONG, "namespace path /aaa");
        expect_error(p, "/proc/self/ns/net", AF_UNIX, -EAFNOSUPPORT, "socket family 1");
        assert_int_equal(stats(p).namespaces, 0);
        assert_int_equal(stats(p).slow, 2); /* the two /proc/self/ns/mnt calls */
        netns_sockpool_free(p);
}

static int eperm_child(void)
{
        struct netns_sockpool *p = NULL;
        char *err = NULL;
        int fd = -1, r;

        /* keep /proc/self ours after the uid change */
        if (setgid(65534) < 0 || setuid(65534) < 0 || prctl(PR_SET_DUMPABLE, 1) < 0)
                return 2;
        if (netns_sockpool_new(NULL, &p) < 0)
                return 3;
        r = netns_sockpool_socket(p, "/proc/self/ns/net", AF_INET, &fd, &err);
        if (r != -EPERM || fd != -1 || !err ||
            !strstr(err, "permission denied entering namespace /proc/self/ns/net")) {
                fprintf(stderr, "r=%d err=%s\n", r, strempty(err));
                return 4;
        }
        return 0;
}

/* Entering a namespace needs CAP_SYS_ADMIN. */
static void test_eperm(void **state)
{
        pid_t pid;
        int status;

        if (!ntest_have_root()) {
                struct netns_sockpool *p = pool_new(NULL);

                expect_error(p, "/proc/self/ns/net", AF_INET, -EPERM,
                             "permission denied entering namespace /proc/self/ns/net");
                netns_sockpool_free(p);
                return;
        }
        pid = fork();
        assert_true(pid >= 0);
        if (pid == 0)
                _exit(eperm_child());
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
}

/* ---- root ---- */

/* Sockets from the pool live in the namespace: same netns cookie as one
 * made there by the blocking call, they can bind an address that exists
 * only there, and reach a listener that exists only there. */
static void test_in_namespace(void **state)
{
        struct netns_socket_req req = {
                .family = AF_INET, .type = SOCK_STREAM, .bind = true, .backlog = 4};
        struct sockaddr_in *lin = (struct sockaddr_in *)&req.addr;
        struct sockaddr_in a = {.sin_family = AF_INET};
        struct sockaddr_in6 a6 = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
        struct netns_sockpool *p;
        struct netns_sockpool_stats s;
        uint64_t host, ns;
        ino_t before = my_netns();
        socklen_t len = sizeof(a);
        int lfd = -1, fd, c, err = -1;

        if (!ntest_have_root())
                skip();
        ns_create(PATH_A, "198.51.100.7");
        host = ns_cookie("");
        ns = ns_cookie(PATH_A);
        assert_true(host != ns);

        /* premise: the address is not ours */
        inet_pton(AF_INET, "198.51.100.7", &a.sin_addr);
        fd = socket(AF_INET, SOCK_STREAM, 0);
        assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), -1);
        assert_int_equal(errno, EADDRNOTAVAIL);
        close(fd);

        /* a listener on 127.0.0.1 inside A */
        lin->sin_family = AF_INET;
        inet_pton(AF_INET, "127.0.0.1", &lin->sin_addr);
        req.addrlen = sizeof(*lin);
        snprintf(req.netns_path, sizeof(req.netns_path), "%s", PATH_A);
        assert_int_equal(netns_socket_sync(&req, &lfd, NULL), 0);
        assert_int_equal(getsockname(lfd, (struct sockaddr *)lin, &len), 0);

        p = pool_new(NULL);
        fd = get(p, PATH_A, AF_INET); /* first use: the slow path */
        s = stats(p);
        assert_true(s.slow == 1 && s.fast == 0 && s.namespaces == 1);
        assert_true(cookie(fd) == ns);
        assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
        close(fd);

        /* the stack fills up (per_stack 8); later calls are fast */
        assert_true(wait_pooled(p, 8));
        fd = get(p, PATH_A, AF_INET);
        s = stats(p);
        assert_true(s.slow == 1 && s.fast == 1);
        assert_true(cookie(fd) == ns);
        c = connect(fd, (struct sockaddr *)lin, sizeof(*lin));
        assert_true(c == 0 || errno == EINPROGRESS);
        {
                struct pollfd pf = {.fd = fd, .events = POLLOUT};

                assert_int_equal(poll(&pf, 1, 5000), 1);
                len = sizeof(err);
                assert_int_equal(getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len), 0);
                assert_int_equal(err, 0);
        }
        {
                struct pollfd pf = {.fd = lfd, .events = POLLIN};
                int afd;

                assert_int_equal(poll(&pf, 1, 5000), 1);
                afd = accept(lfd, NULL, NULL);
                assert_true(afd >= 0);
                close(afd);
        }
        close(fd);

        /* IPv6: its own stack, same namespace (::1 on A's lo) */
        fd = get(p, PATH_A, AF_INET6);
        assert_true(cookie(fd) == ns);
        assert_int_equal(bind(fd, (struct sockaddr *)&a6, sizeof(a6)), 0);
        close(fd);
        assert_true(wait_pooled(p, 7 + 8));
        assert_int_equal(stats(p).namespaces, 1);

        /* /proc/self/ns/net is a namespace path too */
        fd = get(p, "/proc/self/ns/net", AF_INET);
        assert_true(cookie(fd) == host);
        close(fd);

        /* Removed: -ENOENT at once, although the stack still holds fds. */
        ns_delete(PATH_A);
        expect_error(p, PATH_A, AF_INET, -ENOENT, "does not exist");

        assert_int_equal(my_netns(), before);
        close(lfd);
        netns_sockpool_free(p);
}

/* A namespace deleted and recreated at the same path: the caller's
 * identity check alone (the thread's periodic check is off here) keeps
 * the old namespace's pooled sockets from being handed out. */
static void test_recreated(void **state)
{
        struct netns_sockpool_limits l = {.check_ms = 3600000, .idle_ms = 3600000};
        struct netns_sockpool *p;
        struct netns_sockpool_stats s;
        uint64_t old, new;
        int fd;

        if (!ntest_have_root())
                skip();
        ns_create(PATH_A, "198.51.100.7");
        old = ns_cookie(PATH_A);
        p = pool_new(&l);
        fd = get(p, PATH_A, AF_INET);
        assert_true(cookie(fd) == old);
        close(fd);
        assert_true(wait_pooled(p, 8));

        ns_delete(PATH_A);
        ns_create(PATH_A, "198.51.100.8");
        new = ns_cookie(PATH_A);
        assert_true(new != old);
        for (int i = 0; i < 40; i++) {
                fd = get(p, PATH_A, AF_INET);
                if (cookie(fd) != new)
                        fail_msg("socket %d is not in the recreated namespace", i);
                close(fd);
        }
        s = stats(p);
        /* The old one is still tracked (its pooled fds untouched), beside the new one. */
        assert_int_equal(s.namespaces, 2);
        assert_int_equal(s.dropped_stale, 0);
        assert_true(s.slow >= 2);
        netns_sockpool_free(p);
}

/* The thread's periodic check drops the stacks of a deleted namespace, so
 * the pool does not keep it alive: its veth's host end goes away. */
static void test_deleted_not_kept(void **state)
{
        struct netns_sockpool_limits l = {.check_ms = 50, .idle_ms = 3600000};
        struct netns_sockpool *p;
        struct netns_sockpool_stats s;
        int fd, i;

        if (!ntest_have_root())
                skip();
        ns_create(PATH_B, "198.51.100.9");
        assert_int_equal(ntest_sh("nsenter --net=%s ip link add %s type veth peer name %s "
                                  "netns /proc/%d/ns/net",
                                  PATH_B, VETH_IN, VETH_HOST, (int)getpid()),
                         0);
        assert_true(if_nametoindex(VETH_HOST) > 0);
        p = pool_new(&l);
        fd = get(p, PATH_B, AF_INET6);
        close(fd);
        assert_true(wait_pooled(p, 8));

        ns_delete(PATH_B);
        for (i = 0; i < 500 && if_nametoindex(VETH_HOST) > 0; i++)
                usleep(10000);
        if (if_nametoindex(VETH_HOST) > 0)
                fail_msg("the deleted namespace is still alive after 5 s");
        s = stats(p);
        assert_int_equal(s.namespaces, 0);
        assert_int_equal(s.pooled, 0);
        assert_int_equal(s.dropped_stale, 1);
        netns_sockpool_free(p);
}

struct hammer {
        struct netns_sockpool *p;
        const char *paths[3];
        uint64_t cookies[3];
        int calls;
        int seed;
        /* results (checked on the main thread: cmocka asserts are not thread-safe) */
        int ok, wrong_ns, timeouts, other_errors, last_error;
        unsigned max_pooled_seen, max_namespaces_seen;
};

static void *hammer_main(void *arg)
{
        struct hammer *h = arg;

        for (int i = 0; i < h->calls; i++) {
                int k = (i + h->seed) % 3;
                int family = ((i / 3 + h->seed) & 1) ? AF_INET6 : AF_INET;
                char *err = NULL;
                int fd = -1, r;

                r = netns_sockpool_socket(h->p, h->paths[k], family, &fd, &err);
                if (r == 0 && cookie(fd) == h->cookies[k] && !err)
                        h->ok++;
                else if (r == 0)
                        h->wrong_ns++;
                else if (r == -ETIMEDOUT && err && strstr(err, "waiting") && fd == -1)
                        h->timeouts++;
                else {
                        h->other_errors++;
                        h->last_error = r;
                }
                safe_close(fd);
                free(err);
                if (i % 64 == 0) {
                        struct netns_sockpool_stats s;

                        netns_sockpool_get_stats(h->p, &s);
                        h->max_pooled_seen = MAX(h->max_pooled_seen, s.pooled);
                        h->max_namespaces_seen = MAX(h->max_namespaces_seen, s.namespaces);
                }
        }
        return NULL;
}

static void hammer(const struct netns_sockpool_limits *l, int calls, int *ret_timeouts)
{
        struct hammer h[8];
        pthread_t t[8];
        struct netns_sockpool *p;
        uint64_t host = ns_cookie(""), ca = ns_cookie(PATH_A), cb = ns_cookie(PATH_B);
        int before = count_fds(), timeouts = 0;

        p = pool_new(l);
        for (int i = 0; i < 8; i++) {
                h[i] = (struct hammer){.p = p,
                                       .paths = {PATH_A, PATH_B, ""},
                                       .cookies = {ca, cb, host},
                                       .calls = calls,
                                       .seed = i};
                assert_int_equal(pthread_create(&t[i], NULL, hammer_main, &h[i]), 0);
        }
        for (int i = 0; i < 8; i++) {
                assert_int_equal(pthread_join(t[i], NULL), 0);
                if (h[i].other_errors)
                        fail_msg("thread %d: %d errors, last %d", i, h[i].other_errors,
                                 h[i].last_error);
                assert_int_equal(h[i].wrong_ns, 0);
                assert_int_equal(h[i].ok + h[i].timeouts, calls);
                assert_true(h[i].max_pooled_seen <= (l->max_pooled ? l->max_pooled : 256));
                assert_true(h[i].max_namespaces_seen <= 2);
                timeouts += h[i].timeouts;
        }
        assert_true(stats(p).timeouts == (unsigned)timeouts);
        netns_sockpool_free(p);
        /* Every fd came back: the handed-out ones were closed, the pooled
         * and abandoned ones closed by the pool. */
        assert_int_equal(count_fds(), before);
        *ret_timeouts = timeouts;
}

/* Eight threads at once over two namespaces and our own, both families. */
static void test_concurrent(void **state)
{
        struct netns_sockpool_limits tight = {.per_stack = 1, .wait_ms = 1, .max_pooled = 3};
        int timeouts;

        if (!ntest_have_root())
                skip();
        ns_create(PATH_A, "198.51.100.7");
        ns_create(PATH_B, "198.51.100.9");
        hammer(&(struct netns_sockpool_limits){}, 2000, &timeouts);
        /* A 1 ms wait and tiny stacks: callers give up while the thread
         * works for them; what it makes for them then must not leak. */
        hammer(&tight, 500, &timeouts);
        printf("# sockpool: 8 threads x 500 calls with wait_ms=1: %d timed out\n", timeouts);
        fflush(stdout);
        ns_delete(PATH_A);
        ns_delete(PATH_B);
}

/* per_stack, max_pooled, max_namespaces (LRU) and idle_ms. */
static void test_limits(void **state)
{
        struct netns_sockpool_limits l = {
                .per_stack = 4,
                .max_pooled = 6,
                .max_namespaces = 2,
                .idle_ms = 1000, /* well past the steps below, even on a loaded machine */
                .check_ms = 50};
        const char *paths[] = {PATH_A, PATH_B, PATH_C};
        struct netns_sockpool *p;
        struct netns_sockpool_stats s;
        int base, fd, i;

        if (!ntest_have_root())
                skip();
        ns_create(PATH_A, "198.51.100.7");
        ns_create(PATH_B, "198.51.100.8");
        ns_create(PATH_C, "198.51.100.9");
        p = pool_new(&l);
        base = count_fds(); /* with the pool's own fd */

        close(get(p, PATH_A, AF_INET));
        assert_true(wait_pooled(p, 4)); /* per_stack */
        usleep(20000);
        assert_int_equal(stats(p).pooled, 4);
        close(get(p, PATH_A, AF_INET6));
        assert_true(wait_pooled(p, 6)); /* max_pooled: 4 + 2 */
        usleep(20000);
        assert_int_equal(count_fds() - base, 6);

        /* B needs room: A, used less recently, goes. */
        close(get(p, PATH_B, AF_INET));
        assert_true(wait_pooled(p, 4));
        s = stats(p);
        assert_int_equal(s.namespaces, 1);
        assert_true(s.dropped_lru >= 1);

        /* Round robin over three namespaces with room for two. */
        for (i = 0; i < 60; i++) {
                fd = get(p, paths[i % 3], i & 1 ? AF_INET6 : AF_INET);
                close(fd);
                s = stats(p);
                assert_true(s.namespaces <= 2);
                assert_true(s.pooled <= 6);
        }

        /* Unused for idle_ms: everything goes. */
        for (i = 0; i < 500 && (stats(p).namespaces > 0 || stats(p).pooled > 0); i++)
                usleep(10000);
        s = stats(p);
        assert_int_equal(s.namespaces, 0);
        assert_int_equal(s.pooled, 0);
        assert_true(s.dropped_idle >= 1);
        assert_int_equal(count_fds(), base);
        netns_sockpool_free(p);
        ns_delete(PATH_A);
        ns_delete(PATH_B);
        ns_delete(PATH_C);
}

/* Not an assertion on speed: the numbers for the record. */
static void test_measure(void **state)
{
        enum { CALLS = 10000, BATCH = 5 };
        struct netns_sockpool *p;
        struct netns_sockpool_stats s0, s1;
        struct netns_socket_req req = {.family = AF_INET, .type = SOCK_STREAM, .backlog = -1};
        uint64_t t, fast = 0, plain = 0, first, sync_ns, stat_ns;
        int fds[BATCH], rs[BATCH];

        if (!ntest_have_root())
                skip();
        ns_create(PATH_A, "198.51.100.7");
        p = pool_new(NULL);
        t = nsec();
        close(get(p, PATH_A, AF_INET));
        first = nsec() - t;
        s0 = stats(p);
        /* Pop BATCH (8 -> 3: the last pop asks for a refill), then wait for
         * the stack to be full again, so every timed call is a fast one. */
        for (int n = 0; n < CALLS; n += BATCH) {
                assert_true(wait_pooled(p, 8));
                t = nsec();
                for (int i = 0; i < BATCH; i++)
                        rs[i] = netns_sockpool_socket(p, PATH_A, AF_INET, &fds[i], NULL);
                fast += nsec() - t;
                for (int i = 0; i < BATCH; i++) {
                        assert_int_equal(rs[i], 0);
                        close(fds[i]);
                }
        }
        s1 = stats(p);
        assert_int_equal(s1.fast - s0.fast, CALLS);
        assert_int_equal(s1.slow, s0.slow);
        for (int n = 0; n < CALLS; n += BATCH) {
                t = nsec();
                for (int i = 0; i < BATCH; i++)
                        fds[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
                plain += nsec() - t;
                for (int i = 0; i < BATCH; i++)
                        close(fds[i]);
        }
        t = nsec();
        for (int i = 0; i < CALLS; i++) {
                struct stat st;

                assert_int_equal(stat(PATH_A, &st), 0);
        }
        stat_ns = (nsec() - t) / CALLS;
        snprintf(req.netns_path, sizeof(req.netns_path), "%s", PATH_A);
        t = nsec();
        for (int i = 0; i < 100; i++) {
                int fd = -1;

                assert_int_equal(netns_socket_sync(&req, &fd, NULL), 0);
                close(fd);
        }
        sync_ns = (nsec() - t) / 100;
        printf("# sockpool: fast path %llu ns/call over %d calls, of which stat() of the path "
               "%llu ns (plain socket(): %llu ns/call; first use of a namespace: %llu ns; "
               "netns_socket_sync(): %llu ns/call)\n",
               (unsigned long long)(fast / CALLS), CALLS, (unsigned long long)stat_ns,
               (unsigned long long)(plain / CALLS), (unsigned long long)first,
               (unsigned long long)sync_ns);
        fflush(stdout);
        netns_sockpool_free(p);
        ns_delete(PATH_A);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_plain),
                cmocka_unit_test(test_errors),
                cmocka_unit_test(test_eperm),
                cmocka_unit_test_setup(test_in_namespace, setup),
                cmocka_unit_test_setup(test_recreated, setup),
                cmocka_unit_test_setup(test_deleted_not_kept, setup),
                cmocka_unit_test_setup(test_concurrent, setup),
                cmocka_unit_test_setup(test_limits, setup),
                cmocka_unit_test_setup(test_measure, setup),
        };
        int r;

        if (ntest_init(&T, "s") < 0)
                return 1;
        snprintf(PATH_A, sizeof(PATH_A), "%s/a", T.run_dir);
        snprintf(PATH_B, sizeof(PATH_B), "%s/b", T.run_dir);
        snprintf(PATH_C, sizeof(PATH_C), "%s/c", T.run_dir);
        snprintf(VETH_IN, sizeof(VETH_IN), "gsi%u", (unsigned)getpid() % 1000000u);
        snprintf(VETH_HOST, sizeof(VETH_HOST), "gsh%u", (unsigned)getpid() % 1000000u);
        r = cmocka_run_group_tests(tests, NULL, NULL);
        setup(NULL);
        ntest_cleanup(&T);
        return r;
}
