/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* A blocking zbus client (hiredis, no event loop) for command-line tools:
 * it calls methods exactly as the Go client does (RPUSH the request to
 * <module>.<object>@<version>, then BLPOP <uuid> 1 until a reply or the
 * timeout). */

#include <stddef.h>

#include "proto/codec.h"

struct proto_sync_client;

/* Connect to @broker_url. Returns 0, or -errno with *reterr set to a
 * human-readable reason ("could not establish connection: ..."). */
int proto_sync_client_new(const char *broker_url, struct proto_sync_client **ret, char **reterr);
struct proto_sync_client *proto_sync_client_free(struct proto_sync_client *c);

/* Call @method with @n_inputs pre-encoded argument documents. On success
 * (a reply arrived) returns 0 and fills @ret (caller calls
 * proto_response_done); -ETIMEDOUT after @timeout_ms; other -errno with
 * *reterr for transport failures. */
int proto_sync_call(struct proto_sync_client *c, const char *module, const char *object,
                    const char *version, const char *method, const struct proto_str *inputs,
                    size_t n_inputs, unsigned timeout_ms, struct proto_response *ret,
                    char **reterr);
