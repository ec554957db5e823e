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
 * proxies, no compression, no HTTP/2, https only (RFC 8555 §6.1).
 *
 * Connections: each resolved address is tried in turn (IPv6 and IPv4
 * alternating, at most 8), each TCP connect and then the TLS handshake
 * bounded by connect_timeout_ms. A request on a pooled connection that
 * fails before any byte of its response (the server closed the connection
 * while it was idle) is resent once on a new connection; POSTs too: the
 * resent JWS carries the nonce the server either never saw or rejects with
 * badNonce, so nothing is done twice. docs/internals/acme.md has the rest.
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
        const char *url;          /* absolute "https://host[:port]/path?query" (copied) */
        const char *content_type; /* POST only, e.g. "application/jose+json"; NULL: none */
        const void *body;         /* POST body (copied before acme_http_request returns) */
        size_t body_len;          /* its length */
        const char *accept;       /* Accept header; NULL: none */
};

struct acme_http_header {
        const char *name;  /* as received */
        const char *value; /* leading/trailing whitespace removed */
};

/* One RFC 8288 Link header entry, e.g. `<https://x/up>;rel="up"`: one per
 * relation type (rel="a b" gives two), entries without rel or with a
 * malformed syntax are skipped, at most 64 per response. */
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
        const char *body;                       /* NUL-terminated (not counted in body_len); ""
                                                 * for HEAD, 204 and 304 */
        size_t body_len;                        /* bytes of body */
};

/* @r: 0 with @resp (any status: 4xx/5xx are responses too), or a -errno
 * with @resp NULL: -ECONNREFUSED, -ENETUNREACH, -EHOSTUNREACH (the last
 * address's), -ETIMEDOUT (connect, handshake or whole-request deadline),
 * -ENOENT (the name does not resolve), -EPROTO (TLS failure, e.g. an
 * untrusted certificate or a name mismatch), -EBADMSG (malformed response),
 * -E2BIG (body larger than max_body), -ECONNRESET (closed mid-response, or
 * a close-delimited body without a TLS close_notify: possibly truncated),
 * -ENOMEM. Always called from the loop, never from inside a function of
 * this API. The callback may start requests, cancel others, or free the
 * client. */
typedef void acme_http_cb(void *ud, int r, const struct acme_http_response *resp);

/* A resolver: look up @host (never an IP literal) and call @done exactly once
 * with 0 and the addresses as text ("192.0.2.1", "2001:db8::1"; borrowed for
 * the call; both families welcome) or a -errno (-ENOENT when the name does
 * not exist), unless cancelled. @done may run before the resolver returns
 * (a cache hit); @done_ud is then valid for that call only. Returns 0 and a
 * handle for cancel, or -errno (then @done never runs). After cancel, @done
 * must not run. */
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
        unsigned max_conns;  /* connections of all origins; 0: 16 (idle ones of other
                              * origins are closed to make room, else requests queue) */
};

/* Load the trust anchors and make a client. Returns 0; -ENOENT, -EACCES or
 * -EINVAL with *reterr ("ca_file /x: no certificate found", allocated,
 * caller frees; @reterr may be NULL) when the CA file or the system roots
 * are missing, unreadable, larger than 16 MiB or hold no certificate, or
 * no_system_roots is set without a ca_file; -EINVAL without a loop or with
 * a resolve hook but no resolve_cancel; or -ENOMEM. */
int acme_http_new(const struct acme_http_config *cfg, struct acme_http **ret, char **reterr);
/* Cancel every request (their callbacks do not run) and close every
 * connection; the memory is released from the handles' close callbacks, so
 * the loop must run afterwards. Accepts NULL. May be called from inside a
 * request's callback. */
void acme_http_free(struct acme_http *h);

/* Start @req. @cb runs exactly once, never before this returns, unless the
 * request is cancelled. Returns 0 (and a handle in *ret if @ret is not NULL),
 * or -EINVAL (not an https URL, userinfo, a method other than GET/HEAD/POST,
 * a GET/HEAD body, CR/LF/CTL in a field value), -EAGAIN (it would have to
 * wait and max_queued requests already do), -ENOMEM; then @cb never runs.
 * The handle is valid until @cb returns or the request is cancelled. */
int acme_http_request(struct acme_http *h, const struct acme_http_request *req, acme_http_cb *cb,
                      void *ud, struct acme_http_req **ret);
/* The callback will not run. The connection the request was using (or
 * being opened for it) is closed. Accepts NULL; does nothing from inside the
 * request's own callback; must not be called after that callback returned. */
void acme_http_cancel(struct acme_http_req *req);

/* Case-insensitive lookup of the first header named @name; NULL if absent. */
const char *acme_http_response_header(const struct acme_http_response *resp, const char *name);
/* The first Link with rel=@rel (lower-case), or NULL. */
const char *acme_http_response_link(const struct acme_http_response *resp, const char *rel);
/* Retry-After (RFC 9110 §10.2.3): delta-seconds or an HTTP-date (IMF-fixdate,
 * or the obsolete RFC 850 and asctime forms), relative to @now (Unix
 * seconds). Returns 0 with the delay in seconds (0 for a date in the past;
 * an overflowing delta-seconds counts as 2^31), -ENOENT when absent,
 * -EINVAL when malformed. */
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
