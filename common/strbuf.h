/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* A growable byte/string buffer with an optional hard size limit. The
 * buffer is always NUL-terminated after any successful append. */

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "common/macros.h"

struct strbuf {
        char *data;   /* NUL-terminated contents, NULL until the first append */
        size_t len;   /* bytes used, not counting the terminator */
        size_t cap;   /* bytes allocated */
        size_t limit; /* appends that would grow len past this fail with -E2BIG; 0: none */
};

/* clang-format off */
#define STRBUF_INIT {}
/* clang-format on */

/* Append @n bytes. Returns 0, -ENOMEM, or -E2BIG (buffer unchanged). */
int strbuf_append(struct strbuf *b, const void *p, size_t n);
int strbuf_puts(struct strbuf *b, const char *s);
int strbuf_putc(struct strbuf *b, char c);
int strbuf_printf(struct strbuf *b, const char *fmt, ...) _printf_(2, 3);
int strbuf_vprintf(struct strbuf *b, const char *fmt, va_list ap) _printf_(2, 0);
/* Append @s with JSON string escaping, including the quotes. */
int strbuf_put_json_string(struct strbuf *b, const char *s, size_t n);
/* Write @n bytes of untrusted @p into @out (@size >= 4 bytes) for a log
 * line: printable ASCII as is, '\\' and '"' escaped, everything else as
 * \xNN; cut with "..." when it does not fit. Always NUL-terminated.
 * Returns @out. */
char *cescape(const void *p, size_t n, char *out, size_t size);
void strbuf_reset(struct strbuf *b);
void strbuf_done(struct strbuf *b);
/* Hand over the contents (never NULL on success: "" for an empty buffer). */
char *strbuf_steal(struct strbuf *b);

static inline void strbuf_donep(struct strbuf *b)
{
        strbuf_done(b);
}
#define _cleanup_strbuf_ _cleanup_(strbuf_donep)
