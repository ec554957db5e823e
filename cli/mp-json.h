/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* A generic msgpack -> JSON printer for gatewayctl --json, and the small
 * text helpers the human output shares with it.
 *
 * Mapping: map -> object (non-string keys are rendered as JSON text and
 * then used as the key string), array -> array, str -> string (invalid
 * UTF-8 replaced by U+FFFD), bin -> string when it is valid UTF-8 (zbus
 * treats str and bin as interchangeable, §2.2), otherwise the base64 of
 * the bytes, integers -> numbers, floats -> numbers (NaN/Inf -> null),
 * bool, nil -> null, timestamp (ext -1) -> RFC3339 string in UTC with
 * nanoseconds (Go's RFC3339Nano), other ext -> {"ext": type, "base64":
 * "..."}. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/strbuf.h"
#include "proto/mp-read.h"

/* Append the whole msgpack document @p/@n as JSON. @pretty indents with
 * two spaces. Returns 0, -EBADMSG (malformed, trailing bytes, or nested
 * deeper than MP_MAX_DEPTH) or -ENOMEM; @out may hold partial output then. */
int cli_mp_to_json(struct strbuf *out, const void *p, size_t n, bool pretty);

/* Append the next item of @r as JSON; @indent < 0 means compact, else
 * the current indentation level. Same errors as cli_mp_to_json(). */
int cli_mp_item_to_json(struct strbuf *out, struct mp_reader *r, int indent);

/* Append @s as a quoted JSON string, replacing invalid UTF-8 by U+FFFD. */
int cli_json_put_string(struct strbuf *out, const char *s, size_t n);

/* Format a Go time as RFC3339 in UTC: with @nanos, the fraction is
 * printed as Go's RFC3339Nano does (trailing zeros trimmed); without, it
 * is dropped. Returns 0 or -ERANGE (year out of range or buffer small). */
int cli_format_time(char *buf, size_t size, int64_t sec, uint32_t nsec, bool nanos);

/* Append a double the shortest way that reads back exactly. */
int cli_put_double(struct strbuf *out, double v);
