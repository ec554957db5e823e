/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* Our hiredis <-> libuv adapter. hiredis 0.14's bundled adapter ignores a
 * poll error status; libuv reports POLLERR (e.g. a Unix socket whose
 * listener died before accepting it) that way *and stops the handle*, so
 * the connection would hang forever, never read and never disconnected.
 * This adapter lets hiredis read on an error, which turns it into a clean
 * disconnect. */

#include <uv.h>

struct redisAsyncContext;

/* Returns 0 or -ENOMEM / -EEXIST (already attached). */
int proto_bus_uv_attach(struct redisAsyncContext *ac, uv_loop_t *loop);
