/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* UTF-8 as RFC 3629 defines it (no overlong forms, no surrogates, nothing
 * above U+10FFFF), which is also what Go's unicode/utf8 accepts: the one
 * validator and decoder of the tree (the bus strings the daemon checks, the
 * workload IDs and names it quotes as Go does, the JSON gatewayctl
 * prints). */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define UTF8_RUNE_ERROR 0xFFFDu /* U+FFFD REPLACEMENT CHARACTER */
#define UTF8_MAX_LEN    4u      /* bytes of the longest sequence */

/* The length (1..4) of the well-formed sequence at the start of @s (@n >= 1
 * bytes), or 0 if there is none (a bad or truncated sequence). */
size_t utf8_seq_len(const char *s, size_t n);

/* Go's utf8.DecodeRune on @s (@n >= 1 bytes): the rune and its length in
 * *ret_size; a bad or truncated sequence decodes as (UTF8_RUNE_ERROR, 1). */
uint32_t utf8_decode(const char *s, size_t n, size_t *ret_size);

/* Whether all @n bytes of @s are well-formed UTF-8 (NUL bytes included:
 * callers that refuse them check separately). */
bool utf8_valid(const char *s, size_t n);

/* Encode @r into @out (UTF8_MAX_LEN bytes) and return the length; a
 * surrogate or a value above U+10FFFF is encoded as U+FFFD (Go's
 * utf8.AppendRune). */
size_t utf8_encode(uint32_t r, char out[static UTF8_MAX_LEN]);
