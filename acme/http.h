/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* The HTTPS/1.1 client under the ACME client: one request at a time per
 * connection, keep-alive connections per origin, on the caller's libuv
 * loop, BoringSSL for TLS (server certificate and host name verified
 * against the system roots and/or an extra CA file), proxy/http1's strict
 * response parser for the head, bounded bodies, and a pluggable resolver
 * (the daemon plugs in its c-ares lookups; by default uv_getaddrinfo()).
 *
 * Everything runs on the loop thread of @loop. Not a general HTTP client:
 * no redirects are followed (ACME never needs them), no cookies, no
 * proxies, no compression, no HTTP/2.
 *
 * The ACME client (acme/client.h) does not call these functions directly:
 * it takes a `struct acme_http_ops` so that its unit tests can answer
 * requests from an in-process fake server. acme_http_ops_default() wraps
 * the real client. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <uv.h>

struct acme_http;
struct acme_http_req;

struct acme_http_request {
        const char *method;       /* "GET", "HEAD" or "POST" */
        const char *url;          /* absolute "https://host[:port]/path?query" */
        const char *content_type; /* sent with a body, e.g. "application/jose+json"; NULL: none */
        const void *body;         /* POST body (copied before acme_http_request returns) */
        size_t body_len;          /* its length */
        const char *accept;       /* Accept header; NULL: none */
};

struct acme_http_header {
        const char *name;  /* as received */
        const char *value; /* leading/trailing whitespace removed */
};

/* One RFC 8288 Link header entry, e.g. `<https://x/up>;rel="up"`. */
struct acme_http_link {
        const char *url; /* resolved against the request URL if relative */
        const char *rel; /* the rel parameter, lower-cased, quotes removed */
};

/* Valid only during the callback. */
struct acme_http_response {
        int status;                             /* 100..599 */
        const struct acme_http_header *headers; /* every header field, in order */
        size_t n_headers;                       /* their number */
        const struct acme_http_link *links;     /* every Link entry, in order */
        size_t n_links;                         /* their number */
        const char *body;                       /* NUL-terminated (not counted in body_len) */
        size_t body_len;                        /* bytes of body */
};

/* @r: 0 with @resp, or a -errno with @resp NULL: -ECONNREFUSED, -ENETUNREACH,
 * -EHOSTUNREACH, -ETIMEDOUT (connect or whole-request deadline), -ENOENT
 * (the name does not resolve), -EPROTO (TLS failure, e.g. an untrusted
 * certificate or a name mismatch), -EBADMSG (malformed response), -E2BIG
 * (body larger than max_body), -ECONNRESET, -ENOMEM. */
typedef void acme_http_cb(void *ud, int r, const struct acme_http_response *resp);

/* A resolver: look up @host (never an IP literal) and call @done exactly once
 * with 0 and the addresses as text ("192.0.2.1", "2001:db8::1"; borrowed for
 * the call) or a -errno, unless cancelled. Returns 0 and a handle for
 * cancel, or -errno (then @done never runs). */
typedef void acme_resolve_done_cb(void *done_ud, int r, char *const *addrs, size_t n);
typedef int acme_resolve_fn(void *resolve_ud, const char *host, acme_resolve_done_cb *done,
                            void *done_ud, void **ret_handle);
typedef void acme_resolve_cancel_fn(void *resolve_ud, void *handle);

/* Zero means "the default" for numeric fields. */
struct acme_http_config {
        uv_loop_t *loop;          /* borrowed; outlives the client */
        const char *ca_file;      /* extra trust anchors (PEM file); NULL or "": none */
        bool no_system_roots;     /* trust only @ca_file (tests) */
        const char *system_roots; /* NULL: /etc/ssl/certs/ca-certificates.crt */
        acme_resolve_fn *resolve; /* NULL: uv_getaddrinfo() */
        acme_resolve_cancel_fn *resolve_cancel; /* with @resolve */
        void *resolve_ud;                       /* passed to both */
        const char *user_agent;                 /* NULL: "gatewayd/<version>" */
        uint64_t connect_timeout_ms;            /* per address tried; 0: 10 s */
        uint64_t timeout_ms;                    /* whole request incl. connect; 0: 30 s */
        uint64_t idle_timeout_ms;               /* keep-alive connection unused; 0: 30 s */
        size_t max_body;                        /* response body bound; 0: 1 MiB */
        unsigned max_conns_per_origin;          /* more requests wait in a queue; 0: 4 */
        unsigned max_queued; /* queued requests in total; 0: 256 (-EAGAIN beyond) */
};

/* Load the trust anchors and make a client. Returns 0, -ENOENT/-EINVAL with
 * *reterr ("ca_file /x: no certificate found", allocated, caller frees; may
 * be NULL) when the CA file is missing or unusable, or -ENOMEM. */
int acme_http_new(const struct acme_http_config *cfg, struct acme_http **ret, char **reterr);
/* Cancel every request (their callbacks do not run) and close every
 * connection; the memory is released from the handles' close callbacks, so
 * the loop must run afterwards. Accepts NULL. */
void acme_http_free(struct acme_http *h);

/* Start @req. @cb runs exactly once, never before this returns, unless the
 * request is cancelled. Returns 0 (and a handle in *ret if @ret is not NULL),
 * or -EINVAL (bad URL or method), -EAGAIN (queue full), -ENOMEM; then @cb
 * never runs. */
int acme_http_request(struct acme_http *h, const struct acme_http_request *req, acme_http_cb *cb,
                      void *ud, struct acme_http_req **ret);
/* The callback will not run. The connection the request was using is closed
 * if it was mid-exchange. Accepts NULL. */
void acme_http_cancel(struct acme_http_req *req);

/* Case-insensitive lookup of the first header named @name; NULL if absent. */
const char *acme_http_response_header(const struct acme_http_response *resp, const char *name);
/* The first Link with rel=@rel (lower-case), or NULL. */
const char *acme_http_response_link(const struct acme_http_response *resp, const char *rel);
/* Retry-After (RFC 9110 §10.2.3): delta-seconds or an HTTP-date, relative to
 * @now (Unix seconds). Returns 0 with the delay in seconds (0 for a date in
 * the past), -ENOENT when absent, -EINVAL when malformed. */
int acme_http_retry_after(const struct acme_http_response *resp, time_t now, uint64_t *ret_seconds);

/* The indirection the ACME client uses. @transport is the struct acme_http
 * (or a test's fake); handles are struct acme_http_req pointers (or the
 * fake's). */
struct acme_http_ops {
        int (*request)(void *transport, const struct acme_http_request *req, acme_http_cb *cb,
                       void *ud, void **ret_handle);
        void (*cancel)(void *transport, void *handle);
};
/* The ops of the real client above. */
const struct acme_http_ops *acme_http_ops_default(void);
