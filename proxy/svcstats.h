/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* Per-service (per-workload) HTTP request statistics: what Traefik's
 * traefik_service_requests_total{code,method,protocol} and
 * traefik_service_request_duration_seconds need, plus the HTTP version.
 *
 * They hang off a route's struct proxy_counters (routes.h), so every
 * version of a workload ID shares them, and are allocated at the first
 * HTTP request the workload answers: a route without HTTP traffic (a
 * passthrough one, or one never asked) costs one pointer. Once allocated
 * the block has a fixed size (struct proxy_svcstats, about 330 bytes):
 *
 *   - (status code, method, protocol) -> count in PROXY_SVC_CODE_SLOTS
 *     slots, each one 64-bit word (the key in the top 16 bits, the count
 *     in the low 48), claimed by the first request with that key (CAS from
 *     0) and never given back. Requests whose key finds no slot count in an
 *     overflow bucket by status class and protocol. So a workload has at
 *     most 16 + 10 series whatever its clients send.
 *   - a duration histogram per protocol (Traefik's default buckets, 0.1,
 *     0.3, 1.2, 5 s, and +Inf), stored non-cumulative, with the sum in µs.
 *   - a count per HTTP version (1.0, 1.1, 2).
 *
 * Threading: any worker adds with relaxed atomics (no lock, no batching:
 * four atomic adds per request on a block the route already shares);
 * readers get a consistent value per field, not across fields. */

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct proxy_counters; /* proxy/routes.h */

/* Traefik's bounded method set; anything else is OTHER. */
enum proxy_method {
        PROXY_METHOD_OTHER,
        PROXY_METHOD_GET,
        PROXY_METHOD_HEAD,
        PROXY_METHOD_POST,
        PROXY_METHOD_PUT,
        PROXY_METHOD_DELETE,
        PROXY_METHOD_PATCH,
        PROXY_METHOD_OPTIONS,
        PROXY_METHOD_CONNECT,
        PROXY_METHOD_TRACE,
        _PROXY_METHOD_MAX,
};

/* "GET" ... "TRACE", "OTHER"; NULL out of range. */
const char *proxy_method_str(enum proxy_method m);
/* The method of the token @p (@n bytes, case-sensitive as RFC 9110 §9.1
 * says); PROXY_METHOD_OTHER for any other token. */
enum proxy_method proxy_method_from_token(const char *p, size_t n);

/* The protocol label as Traefik writes it. */
enum proxy_svc_protocol {
        PROXY_SVC_HTTP,      /* "http": a request and its response */
        PROXY_SVC_WEBSOCKET, /* "websocket": a request that asked for a WebSocket upgrade */
        _PROXY_SVC_PROTOCOL_MAX,
};

const char *proxy_svc_protocol_str(enum proxy_svc_protocol p);

enum proxy_http_version {
        PROXY_HTTP_1_0,
        PROXY_HTTP_1_1,
        PROXY_HTTP_2,
        _PROXY_HTTP_VERSION_MAX,
};

/* "1.0", "1.1", "2"; NULL out of range. */
const char *proxy_http_version_str(enum proxy_http_version v);

/* One finished request as the protocol saw it (h1 today; h2 sets version 2). */
struct proxy_request_info {
        unsigned status;                 /* final status sent; 0: none (the client left first) */
        enum proxy_method method;        /* */
        enum proxy_http_version version; /* */
        bool websocket;                  /* an upgrade to WebSocket was asked for */
        uint64_t req_bytes;              /* as received from the client (head + body) */
        uint64_t resp_bytes;             /* as written to the client (head + body) */
        uint64_t duration_us; /* request head complete -> response done (a tunnel: its 101) */
};

#define PROXY_SVC_CODE_SLOTS       16
#define PROXY_SVC_DURATION_BUCKETS 4 /* finite upper bounds; +Inf is one more */
#define PROXY_SVC_COUNT_BITS       48
#define PROXY_SVC_COUNT_MASK       ((UINT64_C(1) << PROXY_SVC_COUNT_BITS) - 1)

/* Upper bounds of the finite buckets in µs: 0.1, 0.3, 1.2, 5 s. */
extern const uint64_t proxy_svc_duration_bounds_us[PROXY_SVC_DURATION_BUCKETS];

struct proxy_svcstats {
        atomic_uint_least64_t code_slots[PROXY_SVC_CODE_SLOTS];     /* key << 48 | count; 0: free */
        atomic_uint_least64_t overflow[5][_PROXY_SVC_PROTOCOL_MAX]; /* [class - 1][protocol] */
        atomic_uint_least64_t no_status[_PROXY_SVC_PROTOCOL_MAX];   /* status 0, slots full */
        /* [protocol][bucket]: bucket i < 4 counts durations in (bound[i-1], bound[i]],
         * bucket 4 those above 5 s (non-cumulative; the reader sums). */
        atomic_uint_least64_t duration[_PROXY_SVC_PROTOCOL_MAX][PROXY_SVC_DURATION_BUCKETS + 1];
        atomic_uint_least64_t duration_sum_us[_PROXY_SVC_PROTOCOL_MAX];
        atomic_uint_least64_t version[_PROXY_HTTP_VERSION_MAX];
};

/* What a reader gets. Series with a zero count are left out. */
struct proxy_svc_code_count {
        unsigned status; /* 0..599, or 1..5 for an overflow bucket (class) */
        bool overflow;   /* a status class, method unknown (rendered "other") */
        enum proxy_method method;
        enum proxy_svc_protocol protocol;
        uint64_t count;
};

struct proxy_svcstats_values {
        struct proxy_svc_code_count codes[PROXY_SVC_CODE_SLOTS + 6 * _PROXY_SVC_PROTOCOL_MAX];
        size_t n_codes;
        uint64_t duration[_PROXY_SVC_PROTOCOL_MAX][PROXY_SVC_DURATION_BUCKETS + 1];
        uint64_t duration_sum_us[_PROXY_SVC_PROTOCOL_MAX];
        uint64_t version[_PROXY_HTTP_VERSION_MAX];
};

/* Count @ri on @c's statistics, allocating them at the first request.
 * Returns 0, or -ENOMEM when they could not be allocated (the request
 * then counts only in @c's plain counters). */
int proxy_svcstats_add(struct proxy_counters *c, const struct proxy_request_info *ri);

/* Read @c's statistics. Returns false (and leaves @ret alone) when the
 * workload never answered an HTTP request. */
bool proxy_svcstats_read(struct proxy_counters *c, struct proxy_svcstats_values *ret);

/* Freeing is proxy_counters_unref()'s (routes.c). */
void proxy__svcstats_free(struct proxy_svcstats *s);
