/* SPDX-License-Identifier: Apache-2.0 */
/* Built only with -Db_sanitize=thread: the false fd race that uv-close.c
 * (linked into every unit test of that build) removes, reproduced on
 * purpose. Without uv-close.c, ThreadSanitizer reports a data race on the
 * descriptor and the test exits 66.
 *
 * Thread A creates a socket and closes it through libuv, as a proxy worker
 * closes a connection; thread B then takes the same number with
 * fcntl(F_DUPFD_CLOEXEC), as another worker's hand-over does, and writes
 * to it. The two threads are ordered only by the kernel's reuse of the
 * number and a relaxed flag, which gives TSan no happens-before edge, so
 * TSan must know about the close to see that B's descriptor is a new one. */
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <uv.h>

static atomic_int closed_fd = -1; /* A's descriptor number, once libuv closed it */

static void *thread_a(void *arg)
{
        uv_loop_t loop;
        uv_tcp_t tcp;
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

        assert_true(fd >= 0);
        assert_int_equal(uv_loop_init(&loop), 0);
        assert_int_equal(uv_tcp_init(&loop, &tcp), 0);
        assert_int_equal(uv_tcp_open(&tcp, fd), 0);
        uv_close((uv_handle_t *)&tcp, NULL); /* syscall(SYS_close) inside libuv */
        assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
        assert_int_equal(uv_loop_close(&loop), 0);
        atomic_store_explicit(&closed_fd, fd, memory_order_relaxed);
        return NULL;
}

static void *thread_b(void *arg)
{
        int *sp = arg, fd, want;

        while ((want = atomic_load_explicit(&closed_fd, memory_order_relaxed)) < 0)
                sched_yield();
        /* The lowest free number from @want up is @want itself. */
        fd = fcntl(sp[0], F_DUPFD_CLOEXEC, want);
        assert_int_equal(fd, want);
        assert_int_equal(write(fd, "x", 1), 1);
        assert_int_equal(close(fd), 0);
        return NULL;
}

static void test_fd_reused_after_libuv_close(void **state)
{
        pthread_t a, b;
        int sp[2];
        char c;

        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp), 0);
        assert_int_equal(pthread_create(&b, NULL, thread_b, sp), 0);
        assert_int_equal(pthread_create(&a, NULL, thread_a, NULL), 0);
        assert_int_equal(pthread_join(a, NULL), 0);
        assert_int_equal(pthread_join(b, NULL), 0);
        assert_int_equal(read(sp[1], &c, 1), 1);
        close(sp[0]);
        close(sp[1]);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_fd_reused_after_libuv_close),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
