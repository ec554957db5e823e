/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* base64url (RFC 4648 §5) without padding, as JOSE and ACME use it
 * (RFC 7515 §2, RFC 8555 §6.1). Decoding is strict: only the URL-safe
 * alphabet, no padding, no whitespace, and the unused low bits of the last
 * character must be zero, so every byte string has exactly one accepted
 * text (a signature or nonce cannot be re-encoded into a second form). */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Characters needed for @n bytes, without the terminating NUL. */
#define BASE64URL_LEN(n) (((n) / 3) * 4 + ((n) % 3 ? (n) % 3 + 1 : 0))

/* Encode @n bytes into @out, which must hold BASE64URL_LEN(@n) + 1 bytes.
 * Returns the text length (the NUL is written after it). */
size_t base64url_encode_to(const void *p, size_t n, char *out);

/* Encode into a new NUL-terminated string (caller frees). Returns 0,
 * -E2BIG if the text length would overflow size_t, or -ENOMEM. */
int base64url_encode(const void *p, size_t n, char **ret);

/* Decode the @n characters at @s into a new buffer (caller frees; one NUL
 * byte is appended after *ret_len bytes so decoded text can be used as a C
 * string). Returns 0, -EINVAL for a character outside the alphabet
 * (including '=' and whitespace), a length of 4k+1, or non-zero unused
 * bits, or -ENOMEM. Nothing is returned on failure. */
int base64url_decode(const char *s, size_t n, uint8_t **ret, size_t *ret_len);

/* Does @s (@n characters) consist of base64url alphabet characters only?
 * (Tokens and nonces are such strings; an empty string is not.) */
bool base64url_is_valid(const char *s, size_t n);
