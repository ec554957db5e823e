/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* Helpers private to workloads/ (and its unit tests): the pieces of the Go
 * standard library whose behaviour and error texts zos exposes on the bus. */

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/macros.h"
#include "common/strbuf.h"

/* Go fmt's isSpace: the unicode.White_Space set. */
bool wl__go_is_space(uint32_t r);
/* Append Go strconv.Quote(@s[0..n)). */
int wl__go_quote(struct strbuf *b, const char *s, size_t n);

/* Go net.ParseIP (netip.ParseAddr rules, zones refused) on @s[0..n): fills
 * the 16-byte form (IPv4 as ::ffff:a.b.c.d) and returns true, or false. */
bool wl__go_parse_ip(const char *s, size_t n, uint8_t ret[16]);

/* Set *reterr to the formatted text and return @error (a negative errno);
 * returns -ENOMEM (and leaves *reterr alone) when the text cannot be built. */
int wl__fail(char **reterr, int error, const char *fmt, ...) _printf_(3, 4);
