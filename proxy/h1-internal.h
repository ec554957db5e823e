/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* Engine-internal, shared by the files of the HTTP/1.1 server only:
 * h1-server.c (connections, their states, exchange blocks, the step
 * driver), h1-route.c (routing by Host and our own answers), h1-proxy.c
 * (proxying through an exchange, WebSocket tunnels). Functions named h1__*
 * are private to these three files. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proxy/exchange.h"
#include "proxy/h1-body.h"
#include "proxy/h1-server.h"
#include "proxy/http1.h"
#include "proxy/relay.h"
#include "proxy/sock.h"
#include "proxy/svcstats.h"
#include "proxy/worker.h"

#define H1_UIN_EXTRA       16384u /* response buffer beyond max_head */
#define H1_BLOCK_CACHE_MAX 16u
#define H1_HOUT_SLACK      1024u /* forwarding fields we add to a request head */
#define H1_COUT_SLACK      1024u /* our own fields (Location, framing) on a response head */

enum hc_state {
        HC_IDLE,    /* between requests, no exchange block */
        HC_HEAD,    /* reading a request head */
        HC_CONNECT, /* picking/dialing a backend */
        HC_PROXY,   /* request and response flowing */
        HC_RESPOND, /* writing our own answer, then LINGER */
        HC_TUNNEL,  /* WebSocket after 101: raw bytes both ways */
        HC_LINGER,  /* write side shut, draining the client until EOF */
        HC_CLOSING, /* the socket is closed; freed from its reap */
        _HC_MAX,
};

/* Per-request state of the client side, reset at the start of every
 * request (the backend side is the exchange, struct exch). */
struct hreq {
        uint64_t start_ns;             /* access log: the request began (0: log off then) */
        uint64_t up_start_ns;          /* ... the first backend attempt began */
        uint64_t up_head_ns;           /* ... the final (or 101) response head arrived */
        uint64_t req_bytes;            /* request bytes received from the client (head + body) */
        uint64_t resp_bytes;           /* response bytes written to the client */
        uint64_t start_us;             /* uv_hrtime() in µs when the head was complete, 0 before */
        unsigned status;               /* final status answered, 0 until known */
        uint8_t method;                /* enum proxy_method, for the route's statistics */
        uint8_t version;               /* enum proxy_http_version: 1.0 or 1.1 */
        enum proxy_close_reason close; /* RESPOND: why the connection ends afterwards */
        bool proxied;                  /* counted on c->route */
        bool accounted;                /* */
        bool head_req;                 /* method HEAD */
        bool client10;                 /* HTTP/1.0 client */
        bool websocket;                /* a WebSocket upgrade was forwarded */
        bool resp_done;                /* the response is completely written */
        bool keep_alive;               /* the client connection survives this exchange */
        bool parsed;                   /* the head parsed: method and target are in x->in */
        bool analyzed;                 /* ... and analyzed: the Host too */
        bool routed;                   /* c->route is this request's (the line's workload) */
        bool logged;                   /* the access log's line is out (or skipped) */
};

/* The exchange block: memory a connection needs only while it is busy. */
struct xb {
        struct xb *next_free;
        bool tls;
        uint8_t *in;           /* client bytes: request head, body, pipelined requests */
        uint8_t *hout;         /* the request head for the backend */
        uint8_t *cout;         /* the response head (or our answer) for the client */
        struct sock_tlsbuf tb; /* TLS: lent to the client socket while the block is held */
        struct proxy_h1_header *req_hdrs, *resp_hdrs;
        uint32_t in_off, in_len, in_fill; /* [in_off, in_fill) is queued in ex.uq */
        struct proxy_h1_req req;
        struct iovq cq;     /* to the client */
        struct exch ex;     /* the backend side: connection, request queue, response */
        struct relay relay; /* TUNNEL: the bytes after a 101, through in and ex.uin */
        struct hreq e;
        uint64_t rx_bytes;  /* bytes read from the client while the block is held */
        uint64_t rate_mark; /* BODY/SEND deadline: rx_bytes/e.resp_bytes when it was set */
};

struct hconn {
        struct proxy_conn base;        /* on the worker's list (base.w: the worker) */
        struct sock *s;                /* the client socket; its deadline is the connection's */
        struct xb *x;                  /* exchange block, NULL while idle */
        struct proxy_route *sni_route; /* TLS: the route the SNI chose (ref) */
        struct proxy_route *route;     /* route of the current/last request (ref, cached) */
        char *tun_log; /* TUNNEL with the access log on: method, host, path (h1-access.c) */
        uint32_t linger_bytes;
        uint8_t state;
        uint8_t reason;   /* enum proxy_close_reason, once CLOSING */
        uint8_t tq;       /* the deadline queue h1__step() put the client socket in */
        bool served;      /* a request head was received: idle is keep-alive now */
        bool ev_timeout;  /* the deadline passed */
        bool timer_reset; /* state entered: restart the deadline */
        bool progress;    /* bytes moved during this step */
};

/* The HTTP/1.1 server's state shared by the connections of one worker. */
struct h1_ctx {
        struct proxy_worker *w;
        const struct proxy_config *cfg;
        struct exch_env exch_env;  /* what every exchange of the worker shares */
        struct xb *free_blocks[2]; /* [tls] */
        unsigned n_free_blocks[2];
        uint32_t in_cap, uin_cap, hout_cap, cout_cap;
        struct proxy_h1_limits req_limits, resp_limits;
};

static inline struct h1_ctx *hc_ctx(const struct hconn *c)
{
        return c->base.w->h1;
}

/* What an answer of our own says beyond its status line. */
struct ans {
        const char *loc_host; /* 308: Location host (no port) */
        size_t loc_host_len;
        const uint8_t *loc_path; /* 308: target */
        size_t loc_path_len;
        const char *body; /* NULL: "<code> <reason>\n" */
        size_t body_len;
        const char *ctype;
};

/* ---- h1-server.c ---- */

/* Run the state machine until it waits; then deadlines and interest. */
void h1__step(struct hconn *c);
/* Enter @next (checked against the transition table; the deadline
 * restarts). */
void h1__set_state(struct hconn *c, enum hc_state next);
/* Close the connection (its backend too): the socket now, memory from the
 * reap. A proxied request in flight is counted first. */
void h1__close(struct hconn *c, enum proxy_close_reason reason);
/* Half-close towards the client and drain it (bounded) before closing. */
void h1__linger(struct hconn *c, enum proxy_close_reason reason);
/* Count the current request once (proxy_request_done()). */
void h1__account(struct hconn *c);
/* The route of the current request (a reference is kept). */
void h1__set_route(struct hconn *c, struct proxy_route *r);
/* A new request on the same block: pipelined bytes move to the front. */
void h1__begin_request(struct hconn *c);
/* Give the exchange block back (idle). */
void h1__release_block(struct hconn *c);
/* Read client bytes into the block while there is room. Returns 0, or
 * -errno after closing the connection. */
int h1__fill_in(struct hconn *c);
/* Write @q to the client, adding what went out to *counted. */
int h1__flush(struct hconn *c, struct iovq *q, uint64_t *counted);
/* Client bytes wait that no event will announce (TLS, replayed). */
bool h1__tls_buffered(const struct hconn *c);
/* The client socket can be read now. */
bool h1__can_read(const struct hconn *c);

/* ---- h1-route.c ---- */

/* A complete request head of @head_len bytes is in the block: route it
 * (proxy, answer ourselves, redirect). */
void h1__dispatch(struct hconn *c, int head_len);
/* Answer the current request ourselves and end the connection afterwards
 * (with @reason); a backend connection in use is dropped. */
void h1__respond(struct hconn *c, unsigned status, enum proxy_close_reason reason,
                 const struct ans *a);
/* Answer a malformed request (@status, or 400 when <= 0). */
void h1__bad_request(struct hconn *c, int status);

/* ---- h1-access.c ---- */

/* The access log's line for the current request, once (nothing when the
 * log is off or was off when it began): @closed with @reason when the
 * client connection ends with it. Before the block's buffers move on. */
void h1__access_log(struct hconn *c, bool closed, enum proxy_close_reason reason);
/* A WebSocket tunnel starts (x->in becomes payload): keep what its line
 * needs, logged by h1__access_log() at the close. */
void h1__access_tunnel_start(struct hconn *c);

/* ---- h1-proxy.c ---- */

/* The exchanges' owner callbacks (the backend socket wakes the connection). */
extern const struct exch_ops h1__exch_ops;
/* Proxy the parsed request to @route's backends (port @port, if not 0). */
void h1__proxy_begin(struct hconn *c, struct proxy_route *route, uint16_t port);
void h1__step_connect(struct hconn *c);
void h1__step_proxy(struct hconn *c);
void h1__step_tunnel(struct hconn *c);
/* Whether the backend socket should be read in the current state. */
bool h1__up_want_read(const struct hconn *c);
