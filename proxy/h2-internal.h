/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* Engine-internal, shared by the files of the HTTP/2 server only:
 * h2-server.c (the connection: nghttp2 session, callbacks, step driver,
 * the worker's view) and h2-stream.c (a stream: its request head, routing,
 * exchange, response and deadlines). Functions named h2__* are private to
 * these two files. */

#include <nghttp2/nghttp2.h>
#include <stdbool.h>
#include <stdint.h>

#include "proxy/exchange.h"
#include "proxy/http1.h"
#include "proxy/sock.h"
#include "proxy/worker.h"

/* Design notes (docs/internals/proxy.md, "HTTP/2", has the long form):
 *
 *  - One step driver per connection (h2__step): read what the socket has
 *    into the worker's scratch buffer and feed it to nghttp2 (which takes
 *    all of it: flow control guarantees every DATA byte fits its stream's
 *    buffer), step every stream marked dirty (its exchange with the
 *    backend), then let
 *    nghttp2 produce frames while the socket takes them. nghttp2 callbacks
 *    only record; nothing inside them closes the connection.
 *  - A stream's memory (head buffers, the exchange's response buffer,
 *    header arrays) is one allocation made at its HEADERS; the request
 *    body buffer (H2_STREAM_WINDOW bytes) is allocated at its first DATA.
 *    Streams are freed in nghttp2's on_stream_close (from mem_recv or
 *    mem_send, never while a stream step runs) and their deadline handle
 *    from the event layer's reap. */

#define H2_MAX_STREAMS      100u       /* SETTINGS_MAX_CONCURRENT_STREAMS */
#define H2_STREAM_WINDOW    65535u     /* per stream: the request body buffer */
#define H2_CONN_WINDOW      (1u << 20) /* connection receive window */
#define H2_MAX_REQUESTS     1000u      /* streams per connection, then GOAWAY */
#define H2_GLITCH_MAX       100u       /* invalid frames, our resets, 431s: then GOAWAY */
#define H2_RESET_BURST      200u       /* client stream resets: token bucket size */
#define H2_RESET_RATE       50u        /* ... refilled per second */
#define H2_MAX_OUTBOUND_ACK 256u       /* queued SETTINGS/PING acknowledgements */
#define H2_MAX_SETTINGS     32u        /* entries in one SETTINGS frame */
#define H2_OUT_CAP          16384u     /* frames gathered for one write */
#define H2_HEAD_SLACK       512u       /* request line, Host, framing beyond the fields */
#define H2_HOUT_SLACK       1024u      /* forwarding fields the serialiser adds */
#define H2_UIN_EXTRA        16384u     /* response buffer beyond max_head */
#define H2_READS_PER_STEP   8u         /* socket reads before streams get a turn */
#define H2_FRAME_HD         9u

enum h2s_state {
        ST_HEADERS,  /* the request's header block is being received */
        ST_CONNECT,  /* picking/dialling a backend */
        ST_PROXY,    /* request and response flowing */
        ST_ANSWERED, /* our own answer submitted (no backend) */
};

struct h2c;

struct h2s {
        struct ev_handle h; /* deadlines only (fd -1) */
        struct h2s *prev, *next;
        struct h2c *c;
        int32_t id;
        uint8_t state;
        bool line_done;      /* the request line is in hb */
        bool hdr_bad;        /* too many or too large fields: 431 */
        bool have_authority; /* */
        bool have_length;    /* a content-length field */
        bool req_eof;        /* END_STREAM received */
        bool proxied;        /* counted on @route */
        bool resp_submitted; /* HEADERS of the response submitted */
        bool resp_eof;       /* the last DATA was handed to nghttp2 */
        bool deferred;       /* the data provider said DEFERRED */
        bool timeout;        /* the stream's deadline passed */
        bool progress;       /* DATA moved for this stream since its deadline was set */
        bool head_req;       /* method HEAD */
        bool dirty;          /* something happened: step it (else skipped) */
        bool trailers;       /* a trailer block came (in hb[0, tl_len)) */
        bool trailers_bad;   /* ... too large: dropped */
        unsigned status;
        uint8_t method_stat; /* enum proxy_method, for the statistics */
        /* The access log (times 0 while it is off): the stream's first
         * HEADERS, the exchange's start and its response head; @log_req
         * holds copies of method, host and path (one allocation, only with
         * the log on; NULL: the request never reached routing, no line). */
        uint64_t log_start_ns, log_up_ns, log_up_head_ns;
        char *log_req;
        uint16_t log_ml, log_hl, log_pl;
        uint64_t start_us;              /* request head complete (routed), for the duration */
        uint64_t req_bytes, resp_bytes; /* frames of this stream as they crossed the wire */
        uint32_t n_fields, dec_bytes;   /* decoded header fields and their bytes */

        /* The HTTP/1.1 head built from HEADERS (hb) and its pseudo-header
         * values and cookie crumbs on the way (pv, in hout's memory). */
        uint8_t *hb; /* after the dispatch: the request's trailer fields */
        uint32_t hb_len, tl_len;
        uint8_t *hout;
        uint32_t pv_len;
        struct proxy_h1_span method, path, authority, cookie;
        struct proxy_h1_req req;
        struct proxy_h1_header *req_hdrs;

        /* Request body from DATA: body[0, bfill) is queued towards the
         * backend, [bfill, blen) not yet; unconsumed window = blen. */
        uint8_t *body;
        uint32_t bfill, blen;

        struct proxy_route *route; /* ref while proxied */
        struct exch ex;
        struct iovq q; /* response body bytes in ex.uin not yet handed to nghttp2 */

        /* Our own answer's body. */
        char ans[64];
        uint32_t ans_len, ans_off;
        char status_str[12];
};

struct h2c {
        struct proxy_conn base;        /* on the worker's list (base.w: the worker) */
        struct sock *s;                /* the client socket */
        nghttp2_session *ng;           /* */
        struct proxy_route *sni_route; /* ref: its certificate must cover every :authority */
        struct h2s *streams;           /* open streams (with user data) */
        unsigned n_streams;
        unsigned n_requests; /* streams begun */
        unsigned glitches;
        uint32_t hdr_pending; /* bytes of a HEADERS frame that opens a stream */
        uint8_t *obuf;        /* H2_OUT_CAP: frames copied from mem_send */
        uint32_t olen;
        const uint8_t *pend; /* a frame too large for obuf (nghttp2's memory) */
        size_t pend_len;
        struct iovq oq;         /* obuf + pend on their way to the client */
        struct sock_tlsbuf *tb; /* lent to the socket while busy (TLS read-ahead, gathering) */
        uint8_t reason;         /* enum proxy_close_reason, once lingering or closing */
        bool lingering;         /* write side shut, draining the client until EOF */
        bool closing;
        bool fatal;       /* a callback decided the connection ends (no GOAWAY) */
        bool calm;        /* GOAWAY ENHANCE_YOUR_CALM submitted */
        bool proto_err;   /* a GOAWAY with an error code went out */
        bool ev_timeout;  /* the socket's deadline passed */
        bool timer_reset; /* restart the socket's deadline */
        bool progress;    /* bytes moved on the socket during this step */
        bool woken;       /* a stream's backend had news: a step is due (deferred) */
        uint32_t hb_cap, hout_cap, uin_cap;
        uint32_t linger_bytes;
        struct proxy_h1_limits req_limits, resp_limits;
        struct exch_env exch_env;
};

/* ---- h2-server.c ---- */

/* Run the connection until it waits; then deadlines and interest. */
void h2__step(struct h2c *c);
/* One more protocol error of the client's making; past the budget the
 * connection ends with GOAWAY ENHANCE_YOUR_CALM. */
void h2__glitch(struct h2c *c);

static inline struct h2s *h2__stream_of(struct h2c *c, int32_t id)
{
        return id > 0 ? nghttp2_session_get_stream_user_data(c->ng, id) : NULL;
}

/* ---- h2-stream.c ---- */

/* A stream at its HEADERS; NULL when out of memory. */
struct h2s *h2__stream_new(struct h2c *c, int32_t id);
/* The stream ends: counted, its backend let go, freed from the reap;
 * @session_alive: its unconsumed window is given back. */
void h2__stream_finish(struct h2s *st, bool session_alive);
/* Reset the stream with @code (RST_STREAM), dropping its backend. */
void h2__stream_reset(struct h2s *st, uint32_t code);
/* nghttp2's header callback: a field of a request's header block. */
int h2__on_header(nghttp2_session *ng, const nghttp2_frame *frame, const uint8_t *name, size_t nl,
                  const uint8_t *value, size_t vl, uint8_t flags, void *ud);
/* The header block ended: route, start the exchange or answer. */
void h2__stream_dispatch(struct h2s *st);
/* Move the stream's exchange on (after nghttp2 took the input). Returns
 * true when it should be stepped again at once. */
bool h2__stream_step(struct h2s *st);
/* The stream's deadline for its state and its backend's interest. Returns
 * 0 or -errno (the backend socket). */
int h2__stream_poll(struct h2s *st);
