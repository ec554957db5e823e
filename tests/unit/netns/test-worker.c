/* SPDX-License-Identifier: Apache-2.0 */
/* worker.c: the blocking socket call, the worker's queue and callbacks,
 * sockets and monitors inside a namespace. The parts that create
 * namespaces need root and skip without it. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/strbuf.h"
#include "netns-test.h"

static struct ntest T;

/* Requests that fail before any namespace is touched. */
static void test_socket_bad_requests(void **state)
{
        struct netns_socket_req req = {.family = AF_UNIX, .type = SOCK_STREAM, .backlog = -1};
        char *err = NULL;
        int fd = -1;

        assert_int_equal(netns_socket_sync(&req, &fd, &err), -EAFNOSUPPORT);
        assert_non_null(err);
        assert_int_equal(fd, -1);
        free(err);
        err = NULL;

        req.family = AF_INET;
        req.bind = true; /* no address */
        assert_int_equal(netns_socket_sync(&req, &fd, &err), -EINVAL);
        assert_non_null(strstr(err, "bad bind address"));
        free(err);
        err = NULL;

        req.bind = false;
        strcpy(req.netns_path, "/nonexistent/netns/x");
        assert_int_equal(netns_socket_sync(&req, &fd, &err), -ENOENT);
        assert_non_null(strstr(err, "namespace /nonexistent/netns/x does not exist"));
        free(err);
        err = NULL;

        /* a file that is not a namespace */
        strcpy(req.netns_path, "/proc/self/status");
        assert_int_equal(netns_socket_sync(&req, &fd, &err), -EINVAL);
        assert_non_null(strstr(err, "is not a network namespace"));
        free(err);
}

/* "" is the caller's own namespace. */
static void test_socket_here(void **state)
{
        struct netns_socket_req req = {.family = AF_INET, .type = SOCK_DGRAM, .backlog = -1};
        char *err = NULL;
        int fd = -1, flags;

        assert_int_equal(netns_socket_sync(&req, &fd, &err), 0);
        assert_null(err);
        assert_true(fd >= 0);
        flags = fcntl(fd, F_GETFD);
        assert_true(flags & FD_CLOEXEC);
        assert_true(fcntl(fd, F_GETFL) & O_NONBLOCK);
        close(fd);
}

static ino_t my_netns(void)
{
        struct stat st;

        assert_int_equal(stat("/proc/thread-self/ns/net", &st), 0);
        return st.st_ino;
}

/* ---- worker ---- */

struct events {
        char log[1024]; /* "<tag>:<r>;" per callback, in dispatch order */
        int n;
        int fds[8];
        int n_fds;
        char report[4096];
        char error[512];
};

static void on_reconcile(int r, const char *report, const char *error, void *userdata)
{
        struct events *e = userdata;

        assert_non_null(report);
        if (r < 0)
                assert_non_null(error);
        else
                assert_null(error);
        snprintf(e->log + strlen(e->log), sizeof(e->log) - strlen(e->log), "R:%d;", r);
        snprintf(e->report, sizeof(e->report), "%s", report);
        snprintf(e->error, sizeof(e->error), "%s", error ? error : "");
        e->n++;
}

static void on_fd(int r, int fd, const char *error, void *userdata)
{
        struct events *e = userdata;

        if (r < 0) {
                assert_int_equal(fd, -1);
                assert_non_null(error);
                snprintf(e->error, sizeof(e->error), "%s", error);
        } else {
                assert_true(fd >= 0);
                assert_null(error);
                assert_true(e->n_fds < (int)ELEMENTSOF(e->fds));
                e->fds[e->n_fds++] = fd;
        }
        snprintf(e->log + strlen(e->log), sizeof(e->log) - strlen(e->log), "F:%d;", r);
        e->n++;
}

/* Poll the worker's eventfd and dispatch until @want callbacks ran. */
static void wait_for(struct netns_worker *w, struct events *e, int want)
{
        for (int i = 0; i < 300 && e->n < want; i++) {
                struct pollfd p = {.fd = netns_worker_fd(w), .events = POLLIN};

                if (poll(&p, 1, 100) > 0)
                        netns_worker_dispatch(w);
        }
        if (e->n < want)
                fail_msg("only %d of %d callbacks ran: %s", e->n, want, e->log);
}

static void test_worker_socket_here(void **state)
{
        struct netns_socket_req req = {.family = AF_INET6, .type = SOCK_DGRAM, .backlog = -1};
        struct netns_worker *w = NULL;
        struct events e = {};

        assert_int_equal(netns_worker_new(&w), 0);
        assert_true(fcntl(netns_worker_fd(w), F_GETFD) & FD_CLOEXEC);
        assert_int_equal(netns_worker_socket(w, &req, on_fd, &e), 0);
        /* never from the submit call */
        assert_int_equal(e.n, 0);
        req.family = AF_UNIX;
        assert_int_equal(netns_worker_socket(w, &req, on_fd, &e), 0);
        wait_for(w, &e, 2);
        assert_string_equal(e.log, "F:0;F:-97;"); /* in submit order; -EAFNOSUPPORT */
        assert_int_equal(e.n_fds, 1);
        close(e.fds[0]);
        netns_worker_free(w);
        assert_null(netns_worker_free(NULL));
}

/* Pending work is dropped without callbacks. */
static void test_worker_free_pending(void **state)
{
        struct netns_socket_req req = {.family = AF_INET, .type = SOCK_DGRAM, .backlog = -1};
        struct netns_worker *w = NULL;
        struct events e = {};

        assert_int_equal(netns_worker_new(&w), 0);
        for (int i = 0; i < 5; i++)
                assert_int_equal(netns_worker_socket(w, &req, on_fd, &e), 0);
        netns_worker_free(w);
        assert_int_equal(e.n, 0);
}

static int setup(void **state)
{
        ntest_reset(&T);
        return 0;
}

static void test_worker_namespace(void **state)
{
        struct netns_worker *w = NULL;
        struct netns_config c;
        struct events e = {};
        struct netns_socket_req req = {.family = AF_INET,
                                       .type = SOCK_STREAM,
                                       .bind = true,
                                       .backlog = 8,
                                       .reuseport = true};
        struct sockaddr_in *in = (struct sockaddr_in *)&req.addr;
        char pub[32], ygg[32], buf[64];
        ino_t before = my_netns();
        int mon, r;

        if (!ntest_have_root())
                skip();
        snprintf(pub, sizeof(pub), "veth:%s", T.pub);
        snprintf(ygg, sizeof(ygg), "veth:%s", T.ygg);
        ntest_config(&T, pub, ygg, &c);

        assert_int_equal(netns_worker_new(&w), 0);
        assert_int_equal(netns_worker_reconcile(w, &c, on_reconcile, &e), 0);
        assert_int_equal(netns_worker_monitor(w, T.path, on_fd, &e), 0);
        in->sin_family = AF_INET;
        in->sin_port = 0;
        inet_pton(AF_INET, "203.0.113.10", &in->sin_addr);
        req.addrlen = sizeof(*in);
        snprintf(req.netns_path, sizeof(req.netns_path), "%s", T.path);
        assert_int_equal(netns_worker_socket(w, &req, on_fd, &e), 0);
        wait_for(w, &e, 3);
        assert_string_equal(e.log, "R:0;F:0;F:0;");
        snprintf(buf, sizeof(buf), "created namespace %s", T.name);
        assert_true(ntest_has_line(e.report, buf));
        assert_true(ntest_has_line(e.report, "added route 200::/7 via 300:1:2:3::1 dev ygg"));
        assert_int_equal(e.n_fds, 2);
        mon = e.fds[0];
        assert_true(fcntl(mon, F_GETFD) & FD_CLOEXEC);
        assert_true(fcntl(mon, F_GETFL) & O_NONBLOCK);
        /* The listener is in the namespace: the address exists only there. */
        {
                int one;
                socklen_t len = sizeof(one);

                assert_int_equal(getsockopt(e.fds[1], SOL_SOCKET, SO_ACCEPTCONN, &one, &len), 0);
                assert_int_equal(one, 1);
                close(e.fds[1]);
        }
        /* The caller's thread never changed namespace. */
        assert_int_equal(my_netns(), before);

        /* Drift makes the monitor readable; reconcile repairs it. */
        {
                char drain[8192];

                while (read(mon, drain, sizeof(drain)) > 0)
                        ;
        }
        assert_int_equal(ntest_sh("nsenter --net=%s ip link set public down", T.path), 0);
        {
                struct pollfd p = {.fd = mon, .events = POLLIN};

                assert_int_equal(poll(&p, 1, 5000), 1);
        }
        close(mon);
        e = (struct events){};
        assert_int_equal(netns_worker_reconcile(w, &c, on_reconcile, &e), 0);
        assert_int_equal(netns_worker_reconcile(w, &c, on_reconcile, &e), 0);
        wait_for(w, &e, 2);
        assert_string_equal(e.log, "R:0;R:0;");
        assert_string_equal(e.report, ""); /* the second one */

        /* Errors reach the callback with their text. */
        e = (struct events){};
        assert_int_equal(netns_worker_monitor(w, "/nonexistent/ns", on_fd, &e), 0);
        wait_for(w, &e, 1);
        assert_string_equal(e.log, "F:-2;");
        assert_string_equal(e.error,
                            "namespace /nonexistent/ns does not exist: No such file or directory");

        e = (struct events){};
        assert_int_equal(netns_worker_teardown(w, &c, on_reconcile, &e), 0);
        wait_for(w, &e, 1);
        assert_string_equal(e.log, "R:0;");
        snprintf(buf, sizeof(buf), "deleted namespace %s", T.name);
        assert_true(ntest_has_line(e.report, buf));
        assert_false(netns_exists(T.run_dir, T.name));
        r = (int)if_nametoindex(T.pub);
        assert_int_equal(r, 0);
        assert_int_equal(my_netns(), before);
        netns_worker_free(w);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_socket_bad_requests),
                cmocka_unit_test(test_socket_here),
                cmocka_unit_test(test_worker_socket_here),
                cmocka_unit_test(test_worker_free_pending),
                cmocka_unit_test_setup(test_worker_namespace, setup),
        };
        int r;

        if (ntest_init(&T, "w") < 0)
                return 1;
        r = cmocka_run_group_tests(tests, NULL, NULL);
        ntest_cleanup(&T);
        return r;
}
