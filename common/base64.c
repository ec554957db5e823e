/* SPDX-License-Identifier: Apache-2.0 */
#include "common/base64.h"

#include <errno.h>
#include <stdlib.h>

static const char alphabet[64] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* The 6-bit value of @c, or -1 outside the URL-safe alphabet. */
static int value_of(unsigned char c)
{
        if (c >= 'A' && c <= 'Z')
                return c - 'A';
        if (c >= 'a' && c <= 'z')
                return c - 'a' + 26;
        if (c >= '0' && c <= '9')
                return c - '0' + 52;
        if (c == '-')
                return 62;
        if (c == '_')
                return 63;
        return -1;
}

size_t base64url_encode_to(const void *p, size_t n, char *out)
{
        const uint8_t *s = p;
        size_t o = 0, i = 0;

        for (; n - i >= 3; i += 3) {
                uint32_t v = (uint32_t)s[i] << 16 | (uint32_t)s[i + 1] << 8 | s[i + 2];

                out[o++] = alphabet[v >> 18];
                out[o++] = alphabet[(v >> 12) & 63];
                out[o++] = alphabet[(v >> 6) & 63];
                out[o++] = alphabet[v & 63];
        }
        if (n - i == 1) {
                uint32_t v = (uint32_t)s[i] << 16;

                out[o++] = alphabet[v >> 18];
                out[o++] = alphabet[(v >> 12) & 63];
        } else if (n - i == 2) {
                uint32_t v = (uint32_t)s[i] << 16 | (uint32_t)s[i + 1] << 8;

                out[o++] = alphabet[v >> 18];
                out[o++] = alphabet[(v >> 12) & 63];
                out[o++] = alphabet[(v >> 6) & 63];
        }
        out[o] = 0;
        return o;
}

int base64url_encode(const void *p, size_t n, char **ret)
{
        char *out;

        /* 4 characters per 3 bytes: anything near SIZE_MAX / 4 * 3 overflows. */
        if (n > (SIZE_MAX - 4) / 4 * 3)
                return -E2BIG;
        out = malloc(BASE64URL_LEN(n) + 1);
        if (!out)
                return -ENOMEM;
        base64url_encode_to(p, n, out);
        *ret = out;
        return 0;
}

int base64url_decode(const char *s, size_t n, uint8_t **ret, size_t *ret_len)
{
        uint8_t *out;
        size_t o = 0, i = 0, rem = n % 4;
        uint32_t v = 0;

        if (rem == 1)
                return -EINVAL;
        out = malloc(n / 4 * 3 + (rem ? rem - 1 : 0) + 1);
        if (!out)
                return -ENOMEM;
        for (; i < n; i++) {
                int d = value_of((unsigned char)s[i]);

                if (d < 0) {
                        free(out);
                        return -EINVAL;
                }
                v = v << 6 | (uint32_t)d;
                if (i % 4 == 3) {
                        out[o++] = (uint8_t)(v >> 16);
                        out[o++] = (uint8_t)(v >> 8);
                        out[o++] = (uint8_t)v;
                        v = 0;
                }
        }
        /* A final group of 2 characters carries 12 bits for 1 byte, of 3
         * characters 18 bits for 2 bytes: the spare low bits must be zero
         * (RFC 4648 §3.5 allows rejecting them, and one text per value is
         * what signature and nonce comparisons want). */
        if (rem == 2) {
                if (v & 0xf) {
                        free(out);
                        return -EINVAL;
                }
                out[o++] = (uint8_t)(v >> 4);
        } else if (rem == 3) {
                if (v & 0x3) {
                        free(out);
                        return -EINVAL;
                }
                out[o++] = (uint8_t)(v >> 10);
                out[o++] = (uint8_t)(v >> 2);
        }
        out[o] = 0;
        *ret = out;
        *ret_len = o;
        return 0;
}

bool base64url_is_valid(const char *s, size_t n)
{
        if (n == 0)
                return false;
        for (size_t i = 0; i < n; i++)
                if (value_of((unsigned char)s[i]) < 0)
                        return false;
        return true;
}
