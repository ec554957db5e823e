/* SPDX-License-Identifier: Apache-2.0 */
#include "common/utf8.h"

size_t utf8_seq_len(const char *str, size_t n)
{
        const unsigned char *s = (const unsigned char *)str;
        unsigned char c = s[0], lo = 0x80, hi = 0xbf;
        size_t len;

        if (c < 0x80)
                return 1;
        /* The second byte's range excludes overlong forms (E0, F0),
         * surrogates (ED) and values above U+10FFFF (F4); C0, C1 and F5..FF
         * never start a sequence (RFC 3629 §4). */
        if (c >= 0xc2 && c <= 0xdf) {
                len = 2;
        } else if (c >= 0xe0 && c <= 0xef) {
                len = 3;
                if (c == 0xe0)
                        lo = 0xa0;
                else if (c == 0xed)
                        hi = 0x9f;
        } else if (c >= 0xf0 && c <= 0xf4) {
                len = 4;
                if (c == 0xf0)
                        lo = 0x90;
                else if (c == 0xf4)
                        hi = 0x8f;
        } else {
                return 0;
        }
        if (n < len || s[1] < lo || s[1] > hi)
                return 0;
        for (size_t i = 2; i < len; i++)
                if ((s[i] & 0xc0) != 0x80)
                        return 0;
        return len;
}

uint32_t utf8_decode(const char *str, size_t n, size_t *ret_size)
{
        const unsigned char *s = (const unsigned char *)str;
        size_t len = utf8_seq_len(str, n);
        uint32_t r;

        if (len == 0) {
                *ret_size = 1;
                return UTF8_RUNE_ERROR;
        }
        *ret_size = len;
        if (len == 1)
                return s[0];
        r = s[0] & (0x7fu >> len);
        for (size_t i = 1; i < len; i++)
                r = (r << 6) | (s[i] & 0x3fu);
        return r;
}

bool utf8_valid(const char *s, size_t n)
{
        for (size_t i = 0; i < n;) {
                size_t k = utf8_seq_len(s + i, n - i);

                if (k == 0)
                        return false;
                i += k;
        }
        return true;
}

size_t utf8_encode(uint32_t r, char out[static UTF8_MAX_LEN])
{
        if (r > 0x10ffff || (r >= 0xd800 && r <= 0xdfff))
                r = UTF8_RUNE_ERROR;
        if (r < 0x80) {
                out[0] = (char)r;
                return 1;
        }
        if (r < 0x800) {
                out[0] = (char)(0xc0 | (r >> 6));
                out[1] = (char)(0x80 | (r & 0x3f));
                return 2;
        }
        if (r < 0x10000) {
                out[0] = (char)(0xe0 | (r >> 12));
                out[1] = (char)(0x80 | ((r >> 6) & 0x3f));
                out[2] = (char)(0x80 | (r & 0x3f));
                return 3;
        }
        out[0] = (char)(0xf0 | (r >> 18));
        out[1] = (char)(0x80 | ((r >> 12) & 0x3f));
        out[2] = (char)(0x80 | ((r >> 6) & 0x3f));
        out[3] = (char)(0x80 | (r & 0x3f));
        return 4;
}
