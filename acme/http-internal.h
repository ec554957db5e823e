/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* Private to the HTTPS client (acme/http*.c): the pure message layer
 * (http-msg.c: URLs, the request head, the response reader; http-fields.c:
 * Link and Retry-After), the TLS context (http-trust.c) and the connection
 * layer (http-conn.c) that http.c drives.
 * Unit tests and the fuzz target include it; nothing else should. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <time.h>

#include <openssl/base.h>
#include <uv.h>

#include "acme/http.h"
#include "common/strbuf.h"
#include "proxy/http1.h"

/* Bounds on what a server can make us hold (docs/internals/acme.md). */
#define ACME_HTTP_MAX_HEAD      (64u * 1024) /* status line + fields */
#define ACME_HTTP_MAX_HEADERS   128u         /* field lines per response */
#define ACME_HTTP_MAX_LINKS     64u          /* Link entries kept per response */
#define ACME_HTTP_MAX_INTERIM   8u           /* 1xx responses skipped before the final one */
#define ACME_HTTP_MAX_ADDRS     8u           /* resolved addresses tried per connection */
#define ACME_HTTP_RETRY_MAX_SEC (1ull << 31) /* an overflowing delta-seconds (RFC 9111 §1.2.2) */

/* ---- URLs (http-msg.c) ---- */

struct acme_url {
        char *host;      /* lower-case DNS name, or an IP literal without brackets */
        bool ip;         /* @host is an IPv4 or IPv6 literal */
        uint16_t port;   /* 443 unless given */
        char *authority; /* the Host field: host or [v6], ":port" unless 443 */
        char *path;      /* origin-form target: "/path?query" (fragment removed) */
};

/* Parse an absolute "https://host[:port][/path][?query][#fragment]" URL.
 * Rejects other schemes, userinfo, empty or malformed hosts, IPv6 zone IDs,
 * ports outside 1..65535 and any byte outside visible ASCII. Returns 0,
 * -EINVAL or -ENOMEM; *ret is untouched on failure. */
int acme_http__url_parse(const char *url, struct acme_url *ret);
void acme_http__url_done(struct acme_url *u);

/* Resolve the URI-reference @ref[0..n) against the absolute @base (RFC 3986
 * §5.2, dot segments removed). Returns 0 and an allocated string, -EINVAL
 * (a reference that is not a URI-reference we accept) or -ENOMEM. */
int acme_http__url_resolve(const char *base, const char *ref, size_t n, char **ret);

/* ---- the request head (http-msg.c) ---- */

/* Serialise @req for @u into an allocated buffer (head and body). Returns 0
 * with *ret_buf and *ret_len, -EINVAL (method not GET/HEAD/POST, a body with
 * GET/HEAD, CR/LF/CTL in a field value) or -ENOMEM. */
int acme_http__request_build(const struct acme_http_request *req, const struct acme_url *u,
                             const char *user_agent, char **ret_buf, size_t *ret_len);

/* ---- the response reader (http-msg.c) ---- */

/* A response arriving on a connection: the head (proxy/http1's parser,
 * interim 1xx responses skipped), then the body by Content-Length, chunked
 * or close-delimited, bounded by max_body. Pure: bytes in, a verdict out. */
struct acme_http_rd {
        size_t max_body;
        bool head_request;
        uint8_t *head;   /* head bytes so far (ACME_HTTP_MAX_HEAD), then the head */
        size_t head_len; /* bytes in @head */
        struct proxy_h1_header fields[ACME_HTTP_MAX_HEADERS];
        struct proxy_h1_resp resp;
        bool head_done;     /* @resp is the final response, analysed */
        unsigned n_interim; /* 1xx responses skipped */
        struct proxy_h1_chunked chunked;
        uint64_t body_left; /* PROXY_H1_BODY_LENGTH: bytes still to come */
        struct strbuf body; /* limit max_body */
        uint64_t received;  /* every byte fed, interim responses included */
        bool done;          /* a complete response */
        bool trailing;      /* bytes after its end: the connection is not reusable */
};

void acme_http__rd_init(struct acme_http_rd *rd, size_t max_body, bool head_request);
void acme_http__rd_done(struct acme_http_rd *rd);
/* Feed received bytes. Returns 1 once the response is complete (later bytes
 * are counted as @trailing), 0 for more, -EBADMSG (malformed), -E2BIG (body
 * over max_body) or -ENOMEM. After an error the reader is dead. */
int acme_http__rd_feed(struct acme_http_rd *rd, const uint8_t *p, size_t n);
/* The peer closed. @clean: with a TLS close_notify. Returns 1 when that ends
 * a close-delimited body, else -ECONNRESET (a truncated response, or a
 * close-delimited body without close_notify: it may have been truncated). */
int acme_http__rd_eof(struct acme_http_rd *rd, bool clean);
/* Whether the connection may carry another request afterwards. */
bool acme_http__rd_keep_alive(const struct acme_http_rd *rd);

/* A complete response, owned by the request until its callback returned. */
struct acme_http_result {
        struct acme_http_response resp;
        char *head; /* the head bytes, fields NUL-terminated in place */
        struct acme_http_header *headers;
        struct acme_http_link *links; /* url strings owned, rel strings owned */
        char *body;
};

/* Move the response out of @rd (which is then empty) into @ret, with the
 * Link fields resolved against @url. Returns 0 or -ENOMEM. */
int acme_http__rd_take(struct acme_http_rd *rd, const char *url, struct acme_http_result *ret);
void acme_http__result_done(struct acme_http_result *res);

/* ---- Link and Retry-After (http-fields.c) ---- */

/* Every entry of every Link field of @headers (RFC 8288 §3), one per
 * relation type, URLs resolved against @base, at most ACME_HTTP_MAX_LINKS.
 * Malformed entries are skipped (a server's broken Link must not cost the
 * response). Returns 0 or -ENOMEM; the array and strings are allocated. */
int acme_http__links_parse(const char *base, const struct acme_http_header *headers, size_t n,
                           struct acme_http_link **ret, size_t *ret_n);
void acme_http__links_free(struct acme_http_link *links, size_t n);

/* An HTTP-date (RFC 9110 §5.6.7: IMF-fixdate, and the obsolete RFC 850 and
 * asctime forms) into Unix seconds. @now resolves RFC 850's two-digit year.
 * Returns 0 or -EINVAL. */
int acme_http__date_parse(const char *s, time_t now, int64_t *ret);

/* ---- connections (http-conn.c) ---- */

struct acme_http_conn;

enum acme_http_conn_state {
        ACME_HTTP_CONN_START,      /* created; the resolver is started from a timer */
        ACME_HTTP_CONN_RESOLVING,  /* waiting for the resolver */
        ACME_HTTP_CONN_CONNECTING, /* TCP connect to one address (connect timeout) */
        ACME_HTTP_CONN_HANDSHAKE,  /* TLS handshake (connect timeout again) */
        ACME_HTTP_CONN_READY,      /* TLS up, no exchange: the owner sends, idles or closes */
        ACME_HTTP_CONN_EXCHANGE,   /* writing a request, reading its response */
        ACME_HTTP_CONN_IDLE,       /* pooled: watching for the peer's close (idle timeout) */
        ACME_HTTP_CONN_DEAD,       /* failed; only close is left */
        ACME_HTTP_CONN_CLOSED,     /* handles closing; freed by the last close callback */
        _ACME_HTTP_CONN_STATE_MAX,
};
const char *acme_http__conn_state_str(enum acme_http_conn_state s);

enum acme_http_conn_event {
        ACME_HTTP_CONN_EV_READY,    /* connected, TLS verified: send a request */
        ACME_HTTP_CONN_EV_RESPONSE, /* the response is complete in c->rd; state READY */
        ACME_HTTP_CONN_EV_FAILED,   /* r < 0: the connection is DEAD; the owner closes it */
};

/* How a connection reports to its owner. Always called from a libuv
 * callback (never from inside a function the owner called), so the owner
 * may close the connection or start another exchange from it. */
typedef void acme_http_conn_cb(struct acme_http_conn *c, enum acme_http_conn_event ev, int r);

/* What every connection of one client shares. */
struct acme_http_env {
        uv_loop_t *loop;
        SSL_CTX *ctx;
        acme_resolve_fn *resolve;
        acme_resolve_cancel_fn *resolve_cancel;
        void *resolve_ud;
        uint64_t connect_timeout_ms;
        acme_http_conn_cb *on_event;
        /* Objects whose memory is not yet released (connections and the
         * owner's requests); on_release runs after each release. */
        unsigned live;
        void (*on_release)(struct acme_http_env *env);
};

struct acme_http_sock;

struct acme_http_conn {
        /* The owner's (http.c): */
        struct acme_http_conn *prev, *next; /* in the origin's list */
        void *owner;                        /* the origin */
        void *req;                          /* the request being served or connected for */
        uint64_t idle_since;                /* uv_now() when it became IDLE */

        struct acme_http_env *env;
        enum acme_http_conn_state st;
        char *host; /* a name to resolve, or an IP literal */
        bool ip;
        uint16_t port;
        struct sockaddr_storage addrs[ACME_HTTP_MAX_ADDRS];
        unsigned n_addrs, next_addr;
        int last_err;         /* of the last address tried */
        void *resolve_handle; /* while RESOLVING */
        struct acme_http_sock *sock;
        uv_timer_t timer; /* start kick, connect/handshake and idle deadlines */
        SSL *ssl;
        unsigned events; /* the poll events asked for */
        bool want_write; /* TLS needs the socket writable */
        bool eof;        /* the BIO read a TCP EOF */
        int io_err;      /* the BIO's last recv/send error */
        int pending_err; /* a failure to report from the timer */
        const char *out; /* the request being written (the owner keeps it) */
        size_t out_len, out_off;
        unsigned n_responses; /* complete exchanges: > 0 means reused */
        struct acme_http_rd rd;
};

/* Load the trust anchors and make the client context (TLS 1.2+, peer
 * verification; http-trust.c). Returns 0, -ENOENT/-EINVAL/-EACCES with
 * *reterr, -ENOMEM. */
int acme_http__tls_ctx_new(const struct acme_http_config *cfg, SSL_CTX **ret, char **reterr);

/* A connection to @host:@port (resolved unless @ip). Nothing happens before
 * the loop runs; then READY or FAILED is reported. Returns 0 or -ENOMEM. */
int acme_http__conn_new(struct acme_http_env *env, const char *host, bool ip, uint16_t port,
                        struct acme_http_conn **ret);
/* Start an exchange on a READY or IDLE connection: write @out[0..n) (kept
 * alive by the caller until RESPONSE or FAILED) and read the response. */
void acme_http__conn_send(struct acme_http_conn *c, const char *out, size_t n, bool head_request,
                          size_t max_body);
/* Pool a READY connection: watch for the peer's close, FAILED after
 * @timeout_ms or when the peer closes. */
void acme_http__conn_idle(struct acme_http_conn *c, uint64_t timeout_ms);
/* Close at any state; the memory goes from a close callback. */
void acme_http__conn_close(struct acme_http_conn *c);

/* The uv_getaddrinfo() resolver (http.c); resolve_ud is the uv_loop_t. */
int acme_http__resolve_default(void *resolve_ud, const char *host, acme_resolve_done_cb *done,
                               void *done_ud, void **ret_handle);
void acme_http__resolve_default_cancel(void *resolve_ud, void *handle);
