/* SPDX-License-Identifier: Apache-2.0 */
#include "common/strbuf.h"

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int reserve(struct strbuf *b, size_t extra)
{
        size_t need, cap;
        char *p;

        if (extra > SIZE_MAX - b->len - 1)
                return -ENOMEM;
        need = b->len + extra + 1;
        if (b->limit && b->len + extra > b->limit)
                return -E2BIG;
        if (need <= b->cap)
                return 0;
        cap = b->cap ? b->cap : 64;
        while (cap < need)
                cap = cap > SIZE_MAX / 2 ? need : cap * 2;
        p = realloc(b->data, cap);
        if (!p)
                return -ENOMEM;
        b->data = p;
        b->cap = cap;
        return 0;
}

int strbuf_append(struct strbuf *b, const void *p, size_t n)
{
        int r = reserve(b, n);

        if (r < 0)
                return r;
        if (n)
                memcpy(b->data + b->len, p, n);
        b->len += n;
        b->data[b->len] = 0;
        return 0;
}

int strbuf_puts(struct strbuf *b, const char *s)
{
        return strbuf_append(b, s, strlen(s));
}

int strbuf_putc(struct strbuf *b, char c)
{
        return strbuf_append(b, &c, 1);
}

int strbuf_vprintf(struct strbuf *b, const char *fmt, va_list ap)
{
        va_list aq;
        int n, r;

        va_copy(aq, ap);
        n = vsnprintf(NULL, 0, fmt, aq);
        va_end(aq);
        if (n < 0)
                return -EINVAL;
        r = reserve(b, (size_t)n);
        if (r < 0)
                return r;
        vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
        b->len += (size_t)n;
        return 0;
}

int strbuf_printf(struct strbuf *b, const char *fmt, ...)
{
        va_list ap;
        int r;

        va_start(ap, fmt);
        r = strbuf_vprintf(b, fmt, ap);
        va_end(ap);
        return r;
}

int strbuf_put_json_string(struct strbuf *b, const char *s, size_t n)
{
        int r = strbuf_putc(b, '"');

        for (size_t i = 0; r >= 0 && i < n; i++) {
                unsigned char c = (unsigned char)s[i];

                if (c == '"' || c == '\\') {
                        char esc[2] = {'\\', (char)c};
                        r = strbuf_append(b, esc, 2);
                } else if (c == '\n') {
                        r = strbuf_puts(b, "\\n");
                } else if (c == '\t') {
                        r = strbuf_puts(b, "\\t");
                } else if (c < 0x20 || c == 0x7f) {
                        r = strbuf_printf(b, "\\u%04x", c);
                } else {
                        r = strbuf_putc(b, (char)c);
                }
        }
        if (r < 0)
                return r;
        return strbuf_putc(b, '"');
}

void strbuf_reset(struct strbuf *b)
{
        b->len = 0;
        if (b->data)
                b->data[0] = 0;
}

void strbuf_done(struct strbuf *b)
{
        free(b->data);
        b->data = NULL;
        b->len = b->cap = 0;
}

char *strbuf_steal(struct strbuf *b)
{
        char *p = b->data;

        if (!p)
                return strdup("");
        b->data = NULL;
        b->len = b->cap = 0;
        return p;
}

static size_t cescape_one(unsigned char c, char tmp[static 4])
{
        static const char hex[] = "0123456789abcdef";

        if (c == '\\' || c == '"') {
                tmp[0] = '\\';
                tmp[1] = (char)c;
                return 2;
        }
        if (c >= 0x20 && c < 0x7f) {
                tmp[0] = (char)c;
                return 1;
        }
        tmp[0] = '\\';
        tmp[1] = 'x';
        tmp[2] = hex[c >> 4];
        tmp[3] = hex[c & 15];
        return 4;
}

char *cescape(const void *p, size_t n, char *out, size_t size)
{
        const unsigned char *s = p;
        size_t o = 0, full = 0, room;
        char tmp[4];

        assert(size >= 4);
        for (size_t i = 0; i < n; i++)
                full += cescape_one(s[i], tmp);
        /* Everything, or as much as leaves room for "..." and the NUL. */
        room = full < size ? size - 1 : size - 4;
        for (size_t i = 0; i < n; i++) {
                size_t k = cescape_one(s[i], tmp);

                if (o + k > room)
                        break;
                memcpy(out + o, tmp, k);
                o += k;
        }
        if (full >= size) {
                memcpy(out + o, "...", 3);
                o += 3;
        }
        out[o] = 0;
        return out;
}
