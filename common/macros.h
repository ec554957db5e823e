/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* Scoped cleanup, ownership transfer and errno helpers (systemd style). */

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define _cleanup_(f)   __attribute__((cleanup(f)))
#define _unused_       __attribute__((unused))
#define _printf_(a, b) __attribute__((format(printf, a, b)))
#define _noreturn_     __attribute__((noreturn))
#define _likely_(x)    __builtin_expect(!!(x), 1)
#define _unlikely_(x)  __builtin_expect(!!(x), 0)

#define ELEMENTSOF(x) (sizeof(x) / sizeof((x)[0]))
#undef MIN
#undef MAX
#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))

#define container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

/* Take ownership of a pointer or fd: the variable is reset so its
 * cleanup attribute does nothing. */
#define TAKE_PTR(p)                                                                                \
        ({                                                                                         \
                __typeof__(p) _p_ = (p);                                                           \
                (p) = NULL;                                                                        \
                _p_;                                                                               \
        })
#define TAKE_FD(fd)                                                                                \
        ({                                                                                         \
                int _fd_ = (fd);                                                                   \
                (fd) = -1;                                                                         \
                _fd_;                                                                              \
        })

static inline void freep(void *p)
{
        free(*(void **)p);
}
#define _cleanup_free_ _cleanup_(freep)

static inline int safe_close(int fd)
{
        if (fd >= 0) {
                int saved = errno;
                (void)close(fd);
                errno = saved;
        }
        return -1;
}
static inline void closep(int *fd)
{
        safe_close(*fd);
}
#define _cleanup_close_ _cleanup_(closep)

/* Convert a libc "-1 and errno" return into -errno. */
static inline int neg_errno(int r)
{
        return r < 0 ? -errno : r;
}

static inline int errno_or_eio(void)
{
        return errno > 0 ? -errno : -EIO;
}

static inline int streq(const char *a, const char *b)
{
        return strcmp(a, b) == 0;
}

static inline int streq_ptr(const char *a, const char *b)
{
        if (!a || !b)
                return a == b;
        return strcmp(a, b) == 0;
}

static inline const char *strempty(const char *s)
{
        return s ? s : "";
}

/* The value of one hexadecimal digit (either case), or -1. */
static inline int unhexchar(char c)
{
        if (c >= '0' && c <= '9')
                return c - '0';
        if (c >= 'a' && c <= 'f')
                return c - 'a' + 10;
        if (c >= 'A' && c <= 'F')
                return c - 'A' + 10;
        return -1;
}

static inline void *mfree(void *p)
{
        free(p);
        return NULL;
}

/* A NUL-terminated copy of @n bytes that need not be NUL-terminated
 * themselves (strndup() may read past them looking for one: ASan's
 * strict_string_checks says so). NULL on OOM. */
static inline char *memdup_suffix0(const void *p, size_t n)
{
        char *c = malloc(n + 1);

        if (!c)
                return NULL;
        if (n)
                memcpy(c, p, n);
        c[n] = 0;
        return c;
}
