/* SPDX-License-Identifier: Apache-2.0 */
#include "common/fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/macros.h"

static int write_all(int fd, const void *data, size_t n)
{
        const char *p = data;

        while (n > 0) {
                ssize_t k = write(fd, p, n);

                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                p += k;
                n -= (size_t)k;
        }
        return 0;
}

int write_file_atomic(const char *dir, const char *name, const void *data, size_t n, mode_t mode)
{
        _cleanup_close_ int dfd = -1, fd = -1;
        char tmp[NAME_MAX + 1];
        int r;

        if (!*name || strchr(name, '/') || strlen(name) > NAME_MAX - 16)
                return -EINVAL;
        dfd = open(dir, O_DIRECTORY | O_RDONLY | O_CLOEXEC);
        if (dfd < 0)
                return -errno;
        snprintf(tmp, sizeof(tmp), ".#%s.%ld", name, (long)getpid());
        fd = openat(dfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode);
        if (fd < 0)
                return -errno;
        r = write_all(fd, data, n);
        if (r >= 0 && fchmod(fd, mode) < 0)
                r = -errno;
        if (r >= 0 && fsync(fd) < 0)
                r = -errno;
        if (r >= 0 && renameat(dfd, tmp, dfd, name) < 0)
                r = -errno;
        if (r < 0) {
                (void)unlinkat(dfd, tmp, 0);
                return r;
        }
        /* The rename is durable only once the directory is synced. */
        if (fsync(dfd) < 0)
                return -errno;
        return 0;
}

int read_file_full(const char *path, size_t max, char **ret_data, size_t *ret_len)
{
        _cleanup_close_ int fd = -1;
        _cleanup_free_ char *buf = NULL;
        struct stat st;
        size_t len = 0;

        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return -errno;
        if (fstat(fd, &st) < 0)
                return -errno;
        if (!S_ISREG(st.st_mode))
                return -EBADF;
        if ((size_t)st.st_size > max)
                return -EFBIG;
        buf = malloc(max + 1 < (size_t)st.st_size + 4096 ? max + 1 : (size_t)st.st_size + 4096);
        if (!buf)
                return -ENOMEM;
        size_t cap = max + 1 < (size_t)st.st_size + 4096 ? max + 1 : (size_t)st.st_size + 4096;
        for (;;) {
                ssize_t k;

                if (len == cap - 1) {
                        if (len >= max)
                                return -EFBIG;
                        size_t ncap = MIN(cap * 2, max + 1);
                        char *p = realloc(buf, ncap);
                        if (!p)
                                return -ENOMEM;
                        buf = p;
                        cap = ncap;
                }
                k = read(fd, buf + len, cap - 1 - len);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (k == 0)
                        break;
                len += (size_t)k;
        }
        buf[len] = 0;
        *ret_data = TAKE_PTR(buf);
        if (ret_len)
                *ret_len = len;
        return 0;
}

int mkdir_p(const char *path, mode_t mode)
{
        _cleanup_free_ char *p = strdup(path);

        if (!p)
                return -ENOMEM;
        for (char *s = p + 1; *s; s++) {
                if (*s != '/')
                        continue;
                *s = 0;
                if (mkdir(p, mode) < 0 && errno != EEXIST)
                        return -errno;
                *s = '/';
        }
        if (mkdir(p, mode) < 0 && errno != EEXIST)
                return -errno;
        return 0;
}
