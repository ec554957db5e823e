/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* Helpers shared by the acme/ unit tests: temporary files and the openssl
 * command (the CLI is an independent check; the test process itself links
 * BoringSSL only). */

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* A temporary directory for the test binary, removed by tmpdir_remove(). */
static inline char *tmpdir_make(void)
{
        static char dir[64];

        snprintf(dir, sizeof(dir), "/tmp/gw-acme-test-XXXXXX");
        return mkdtemp(dir);
}

static inline void tmpdir_remove(const char *dir)
{
        char cmd[256];

        if (!dir)
                return;
        snprintf(cmd, sizeof(cmd), "rm -rf -- '%s'", dir);
        (void)!system(cmd);
}

static inline int write_text(const char *path, const void *data, size_t n)
{
        FILE *f = fopen(path, "we");
        size_t w;

        if (!f)
                return -1;
        w = fwrite(data, 1, n, f);
        return fclose(f) == 0 && w == n ? 0 : -1;
}

/* Read a whole (small) file; NULL on failure. Caller frees. */
static inline char *read_text(const char *path, size_t *ret_len)
{
        FILE *f = fopen(path, "re");
        char *buf;
        size_t n;

        if (!f)
                return NULL;
        buf = malloc(1 << 20);
        if (!buf) {
                fclose(f);
                return NULL;
        }
        n = fread(buf, 1, (1 << 20) - 1, f);
        fclose(f);
        buf[n] = 0;
        if (ret_len)
                *ret_len = n;
        return buf;
}

/* Run a shell command; its stdout (trailing newline removed) into @out.
 * Returns the exit status, or -1. */
static inline int run_cmd(char *out, size_t size, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
static inline int run_cmd(char *out, size_t size, const char *fmt, ...)
{
        char cmd[4096];
        va_list ap;
        FILE *f;
        size_t n = 0;
        int st;

        va_start(ap, fmt);
        vsnprintf(cmd, sizeof(cmd), fmt, ap);
        va_end(ap);
        f = popen(cmd, "r");
        if (!f)
                return -1;
        if (out && size) {
                n = fread(out, 1, size - 1, f);
                out[n] = 0;
                while (n > 0 && (out[n - 1] == '\n' || out[n - 1] == '\r'))
                        out[--n] = 0;
        } else {
                char sink[256];

                while (fread(sink, 1, sizeof(sink), f) > 0)
                        ;
        }
        st = pclose(f);
        return st < 0 ? -1 : WEXITSTATUS(st);
}

static inline bool have_openssl_cli(void)
{
        return access("/usr/bin/openssl", X_OK) == 0;
}
