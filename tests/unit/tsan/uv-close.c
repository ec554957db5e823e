/* SPDX-License-Identifier: Apache-2.0 */
/* Linked into every unit test of a ThreadSanitizer build (-Db_sanitize=thread),
 * never into gatewayd.
 *
 * Debian's libuv is not built with TSan, and on Linux it closes descriptors
 * with syscall(SYS_close) (uv__close_nocancel() in src/unix/core.c), which
 * TSan does not intercept. TSan then keeps such a descriptor's number as
 * still open, owned by the thread that created it, and when another thread
 * gets the same number from the kernel through a call it does not intercept
 * either (fcntl(F_DUPFD_CLOEXEC), as proxy/engine.c's hand-over does) and
 * uses it, TSan reports a data race between that thread's send() and the
 * first thread's accept4(): a fd race that the kernel's ordering of
 * close-then-reuse rules out. A libuv built with TSan tells TSan about its
 * closes with __sanitizer_syscall_pre_close(); this does the same for the
 * system library by interposing syscall(): TSan then models every close, so
 * a real race between a close and a use of the same descriptor is still
 * reported. */
#include <dlfcn.h>
#include <sanitizer/linux_syscall_hooks.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <sys/syscall.h>

long syscall(long number, ...);

long syscall(long number, ...)
{
        static _Atomic(long (*)(long, ...)) real;
        long (*fn)(long, ...) = atomic_load_explicit(&real, memory_order_relaxed);
        long a[6], r;
        va_list ap;

        /* Like glibc's syscall(): always six arguments; the ones a call did
         * not pass are whatever the registers hold and are ignored. */
        va_start(ap, number);
        for (int i = 0; i < 6; i++)
                a[i] = va_arg(ap, long);
        va_end(ap);
        if (!fn) {
                fn = (long (*)(long, ...))dlsym(RTLD_NEXT, "syscall");
                atomic_store_explicit(&real, fn, memory_order_relaxed);
        }
        if (number == SYS_close)
                __sanitizer_syscall_pre_close(a[0]);
        r = fn(number, a[0], a[1], a[2], a[3], a[4], a[5]);
        if (number == SYS_close)
                __sanitizer_syscall_post_close(r, a[0]);
        return r;
}
