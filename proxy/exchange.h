/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* One exchange: a request sent to a backend of a route and its response
 * read back, over HTTP/1.1 (h2o's http1client.c). It is the unit every
 * server protocol proxies with: an HTTP/1.1 connection runs one exchange
 * per request, an HTTP/2 connection one per stream. The server side keeps
 * the client, its framing and what is answered (502/503/504 are its
 * decisions); the exchange keeps the backend side:
 *
 *   - choosing a backend: round-robin from the route's cursor over the
 *     backends that are not down (proxy/health.h), failing over to the
 *     next on a factory/connect error or connect timeout, a pooled
 *     connection first, else a new one (proxy/upstream.h);
 *   - backend health: a connect error or timeout, or a new connection that
 *     fails before any response byte, is reported (the backend goes down);
 *   - one retry on a fresh connection when a pooled one failed before any
 *     response byte and the request has no body (it can be sent again);
 *     after a new connection failed that way, the next backend, when the
 *     request is safe to resend (exch_retry());
 *   - the request: the serialised head (the caller's memory) and the body,
 *     framed by an h1_pump from the caller's buffer into the queue towards
 *     the backend;
 *   - the response: read into the caller's buffer, the head parsed
 *     (proxy_h1_resp), the body decoded by an h1_pump into the caller's
 *     output queue; the caller releases what it wrote; the trailer
 *     section of a chunked body is kept (h1_pump_keep_trailers()): into
 *     the last chunk of a chunked queue, else at respp.tr_off/tr_len;
 *   - the end: the backend connection back to the pool when it was used
 *     to the end and may be reused, closed otherwise;
 *   - deadlines on the backend socket: connect_timeout per attempt while
 *     connecting, upstream_timeout from "request sent" to the response
 *     head. Their expiry and the socket's readiness reach the owner through
 *     ops->wake(); x->ev_timeout tells a deadline passed.
 *
 * Nothing here answers a client or knows its protocol. */

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "proxy/h1-body.h"
#include "proxy/http1.h"
#include "proxy/sock.h"

struct proxy_health;
struct proxy_backend;
struct proxy_route;
struct upstream;
struct upstream_pool;

/* What every exchange of a worker shares. */
struct exch_env {
        struct upstream_pool *pool;
        unsigned tq_connect;                  /* deadline queue: one connect attempt */
        unsigned tq_upstream;                 /* deadline queue: request sent, response head due */
        const struct proxy_h1_limits *limits; /* response heads, chunked framing */
        atomic_uint_least64_t *st_connects;   /* new backend connections */
        atomic_uint_least64_t *st_reused;     /* exchanges on a pooled connection */
        atomic_uint_least64_t *st_connect_errors; /* failed attempts (incl. timeouts) */
        struct proxy_health *health; /* backend failures go here (NULL: counted only) */
};

struct exch_ops {
        /* The backend socket is ready, or a deadline passed (x->ev_timeout):
         * step the owner. */
        void (*wake)(void *owner);
};

struct exch {
        const struct exch_env *env;
        const struct exch_ops *ops;
        void *owner;
        struct proxy_route *route; /* borrowed: the owner holds it for the exchange */
        struct upstream *up;       /* the backend connection, NULL before and after */

        /* Request towards the backend. */
        const uint8_t *head; /* the serialised head (the owner's memory) */
        uint32_t head_len;   /* */
        struct h1_pump reqp; /* the body, from the owner's buffer into @uq */
        struct iovq uq;      /* head and body on their way to the backend */

        /* Response from the backend, in the owner's buffer @uin. */
        uint8_t *uin;
        uint32_t ucap;
        uint32_t uoff, ulen, ufill;        /* uin[uoff, ufill) is queued by the owner; [ufill, ulen)
                                            * not yet looked at (ufill: up to where the owner's
                                            * queue points) */
        struct proxy_h1_header *resp_hdrs; /* @max_headers entries */
        unsigned max_headers;
        struct proxy_h1_resp resp;
        struct h1_pump respp; /* the body, from @uin into the owner's queue */

        unsigned first_backend; /* the route's round-robin cursor value */
        unsigned attempt;       /* backends tried (or skipped as down) */
        unsigned cur;           /* the index of the backend of @up */
        uint16_t dial_port;     /* non-zero: dial this port instead (ACME on :80) */
        bool head_req;          /* method HEAD: the response has no body */
        bool idempotent;        /* set by the owner after exch_begin(): the method is
                                 * idempotent (RFC 9110 9.2.2), see exch_retry() */
        bool all_down;          /* exch_connect() failed because every backend is down */
        bool req_sent_all;      /* the whole request reached the backend */
        bool resp_any;          /* the backend sent at least one byte */
        bool resp_head;         /* the owner took the final response head */
        bool interim;           /* the owner queued a 1xx head */
        bool upgrade;           /* the owner queued a 101 head (tunnel once written) */
        bool retried;           /* a pooled connection failed; this is the fresh one */
        bool no_pool;           /* the next attempt dials */
        bool all_factory;       /* every attempt so far failed in the socket factory */
        bool ev_timeout;        /* a deadline of the backend socket passed */
        bool progress;          /* bytes moved to or from the backend since cleared */
        /* The backend of the last attempt (the route's), NULL: none yet. */
        const struct proxy_backend *be;
};

/* Bind @x to its worker and owner and to the owner's response buffer
 * (@uin, @ucap bytes) and header array (@max_headers). */
void exch_init(struct exch *x, const struct exch_env *env, const struct exch_ops *ops, void *owner,
               uint8_t *uin, uint32_t ucap, struct proxy_h1_header *resp_hdrs,
               unsigned max_headers);

/* Start an exchange for @route (dial @port instead of the backends' own if
 * not 0) with the serialised request head @head and a body framed @body
 * (@content_length for PROXY_H1_BODY_LENGTH). */
void exch_begin(struct exch *x, struct proxy_route *route, uint16_t port, const uint8_t *head,
                uint32_t head_len, enum proxy_h1_body body, uint64_t content_length, bool head_req);

/* Get a connected backend. Returns 1 when one is attached (its queue holds
 * the head: the owner starts feeding the body from its beginning), 0 while
 * a connect is in progress (wake() comes), or -EHOSTUNREACH when every
 * backend failed or is down (x->all_factory: only the socket factory did;
 * x->all_down: every backend of the route is down now; both a 503 rather
 * than a 502). Down backends are skipped (not for a @port override). */
int exch_connect(struct exch *x);

/* The backend connection failed (error or EOF) before the response head.
 * If no response byte came:
 *   - a pooled connection (the backend may have closed it while idle): one
 *     more attempt on a fresh connection to the same backend if the
 *     request has no body;
 *   - a new connection: the backend is reported (reset) and the next
 *     backend is tried if the request is safe to resend: x->idempotent
 *     and no body (so nothing of it was consumed from the client).
 * Nothing reached the client in either case (no response byte, so no 1xx).
 * Returns true if the owner connects again. */
bool exch_retry(struct exch *x);

/* Queue request body from @buf[*pos, len) (advancing *pos); @eof ends a
 * close-delimited source. Returns 0 or -EBADMSG/-EMSGSIZE (bad chunked
 * framing from the client). */
static inline int exch_req_fill(struct exch *x, uint8_t *buf, uint32_t *pos, uint32_t len, bool eof)
{
        return h1_pump_finished(&x->reqp) ? 0 : h1_pump_fill(&x->reqp, buf, pos, len, eof, &x->uq);
}

/* Write the request queue to the backend; once it is empty and the body
 * complete, req_sent_all is set. Returns 0 or -errno (the backend failed). */
int exch_req_flush(struct exch *x);

/* Read backend bytes into the buffer when there is room and the response
 * is not complete. @compact: the owner's queue is empty, so the unread
 * tail may be moved to the front of a full buffer. Returns 1 when bytes
 * came or EOF was seen, 0 when nothing did, -errno on a socket error
 * (also in x->up->s->err), -EMSGSIZE when a head fills the buffer. */
int exch_recv(struct exch *x, bool compact);

/* Parse the response head in the buffer: its length, -EAGAIN for more, or
 * -EBADMSG. */
static inline int exch_resp_parse(struct exch *x)
{
        return proxy_h1_resp_parse(&x->resp, x->uin, x->ulen);
}

/* The owner took the head of @len bytes: a final one framed @dst towards
 * it (its first body bytes are queued into @q), or an interim/101 one
 * (@final false; nothing queued). Returns 0 or -EBADMSG (bad framing). */
int exch_resp_head_taken(struct exch *x, int len, bool final, enum proxy_h1_body dst,
                         struct iovq *q);

/* The interim head was written: drop it and parse the next head. */
void exch_resp_next_head(struct exch *x);

/* Queue the next body bytes into @q (empty), framed as the head said;
 * framing consumed without data is released at once. Returns 0 or
 * -EBADMSG/-EMSGSIZE. */
int exch_resp_body(struct exch *x, struct iovq *q);

/* The owner wrote everything it had queued: release it in the buffer. */
static inline void exch_resp_release(struct exch *x)
{
        x->uoff = x->ufill;
}

/* The response is complete and written: give the backend connection back
 * to the pool if it was used to the end, else close it. */
void exch_end(struct exch *x);

/* Drop the backend connection (failure, our own answer, client gone). */
void exch_abort(struct exch *x);

/* Declare the backend socket's interest and deadline for the owner's
 * state; @read: the owner wants response bytes. Returns 0 or -errno. */
int exch_poll(struct exch *x, bool read);
