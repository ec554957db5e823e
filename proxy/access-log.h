/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* The access log's record, its JSON line, and the seam between the engine
 * and the daemon's writer (issue 11).
 *
 * One record per HTTP request, per tunnel (TLS passthrough, WebSocket) and
 * per connection that ends before any request was read (a bad ClientHello,
 * an unknown name, a failed TLS handshake). The engine fills a struct
 * proxy_access_record on its worker thread from what it knows at the end
 * of the request and calls proxy__access_emit(), which formats the line
 * into that worker's ring of the sink (common/spsc-ring.h) and returns:
 * no lock, no syscall (except a wakeup when a ring passes half full), no
 * allocation. A full ring drops the line and counts it; the proxy never
 * waits for the log. The daemon's writer thread (daemon/accesslog.c)
 * drains the rings to a file, stderr or the journal.
 *
 * The line (proxy_access_format()) is one JSON object with the keys in a
 * fixed order, always all of them (null when unknown), plus "truncated"
 * when a string was cut:
 *
 *   {"time":"2026-12-07T17:07:28.123456Z","client":"203.0.113.5",
 *    "client_port":51234,"workload":"42-web","host":"web.gw.example.com",
 *    "method":"GET","path":"/index.html","status":200,"req_bytes":78,
 *    "resp_bytes":1432,"duration_us":1834,"upstream":"[300:1::2]:8080",
 *    "upstream_us":1502,"close":null,"tls":"TLSv1.3","proto":"HTTP/1.1"}
 *
 * (one line, no spaces). Strings are escaped so that the line is printable
 * ASCII whatever a client sent: '"' and '\\' as \" and \\, \b \f \n \r \t,
 * other control bytes and DEL as \u00XX, well-formed UTF-8 (RFC 3629) as
 * \uXXXX (a surrogate pair above U+FFFF), and each byte that is not part of
 * well-formed UTF-8 as \ufffd (Go's encoding/json does the same; the byte's
 * value is lost, but every consumer gets valid JSON and no terminal escape
 * or bidi control survives into a file someone views). The query string
 * ('?' and what follows) is left out of "path" unless the sink keeps it.
 * Each string has an output budget (PROXY_ACCESS_*_MAX); a longer one is
 * cut before the escape that would not fit, and "truncated":true is added,
 * so a line is never longer than PROXY_ACCESS_LINE_MAX. */

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct spsc_ring;

/* Output bytes (escaped, without quotes) per string field, and the longest
 * line including its '\n'. The fixed fields need at most
 * PROXY_ACCESS_FIXED_MAX; test-access-log checks both with a worst-case
 * record. 4096 is also PIPE_BUF: a line written alone to a pipe is never
 * interleaved with another writer's bytes. */
#define PROXY_ACCESS_WORKLOAD_MAX 384u
#define PROXY_ACCESS_HOST_MAX     384u
#define PROXY_ACCESS_METHOD_MAX   32u
#define PROXY_ACCESS_PATH_MAX     2048u
#define PROXY_ACCESS_FIXED_MAX    640u
#define PROXY_ACCESS_LINE_MAX     4096u

_Static_assert(PROXY_ACCESS_WORKLOAD_MAX + PROXY_ACCESS_HOST_MAX + PROXY_ACCESS_METHOD_MAX +
                               PROXY_ACCESS_PATH_MAX + PROXY_ACCESS_FIXED_MAX <=
                       PROXY_ACCESS_LINE_MAX,
               "an access log line fits PROXY_ACCESS_LINE_MAX");

/* What was served ("proto"). */
enum proxy_access_proto {
        PROXY_ACCESS_PROTO_NONE,        /* ended before a protocol was known: null */
        PROXY_ACCESS_PROTO_HTTP10,      /* "HTTP/1.0" */
        PROXY_ACCESS_PROTO_HTTP11,      /* "HTTP/1.1" */
        PROXY_ACCESS_PROTO_HTTP2,       /* "HTTP/2" */
        PROXY_ACCESS_PROTO_PASSTHROUGH, /* "TLS passthrough": relayed by SNI, one per connection */
        PROXY_ACCESS_PROTO_WEBSOCKET,   /* "WebSocket": the tunnel after a 101 */
        _PROXY_ACCESS_PROTO_MAX,
};

const char *proxy_access_proto_str(enum proxy_access_proto p);

/* The TLS version the client connection negotiated ("tls"). */
enum proxy_access_tls {
        PROXY_ACCESS_TLS_NONE, /* plain HTTP, or not known (passthrough: the backend's): null */
        PROXY_ACCESS_TLS_1_0,  /* "TLSv1.0" */
        PROXY_ACCESS_TLS_1_1,  /* "TLSv1.1" */
        PROXY_ACCESS_TLS_1_2,  /* "TLSv1.2" */
        PROXY_ACCESS_TLS_1_3,  /* "TLSv1.3" */
        _PROXY_ACCESS_TLS_MAX,
};

const char *proxy_access_tls_str(enum proxy_access_tls t);

/* From the wire version (SSL_version(): 0x0301 .. 0x0304); anything else is
 * PROXY_ACCESS_TLS_NONE. */
enum proxy_access_tls proxy_access_tls_from_wire(uint16_t version);

/* Bytes in the caller's buffers; @p NULL means unknown (null in JSON), a
 * non-NULL @p with @n 0 is the empty string. Not NUL-terminated. */
struct proxy_access_str {
        const char *p;
        size_t n;
};

#define PROXY_ACCESS_STR(s) ((struct proxy_access_str){(s), sizeof(s) - 1})

/* Everything one line says. Times are nanoseconds of CLOCK_MONOTONIC except
 * @realtime_ns; zero-initialise and set what is known. Pointers are
 * borrowed for the call only. */
struct proxy_access_record {
        uint64_t start_ns;                /* the request's first byte; for a tunnel or a
                                           * connection record: the accept */
        uint64_t end_ns;                  /* the response's last byte or the close; 0: now */
        uint64_t realtime_ns;             /* CLOCK_REALTIME at @end_ns; 0: now. "time" is
                                           * @realtime_ns - (@end_ns - @start_ns): the start */
        uint64_t upstream_start_ns;       /* the first backend attempt began (a connect, or a
                                           * pooled connection taken); 0: no backend */
        uint64_t upstream_head_ns;        /* the response head arrived (a tunnel: the backend
                                           * connection was established); 0: not yet */
        const struct sockaddr *client;    /* the peer (AF_INET/AF_INET6), NULL: unknown */
        const struct sockaddr *upstream;  /* the backend that served (the last one tried),
                                           * NULL: none */
        struct proxy_access_str workload; /* the route's workload ID */
        struct proxy_access_str host;     /* the Host routed on (port stripped), or the SNI */
        struct proxy_access_str method;   /* as received */
        struct proxy_access_str path;     /* the request-target's path and query as received;
                                           * the query is cut here unless kept */
        uint64_t req_bytes;               /* from the client: head + body (a tunnel: all) */
        uint64_t resp_bytes;              /* to the client: head + body (a tunnel: all) */
        unsigned status;                  /* the final status sent, 100..999; 0: none (null) */
        bool closed;                      /* the client connection ended with this record */
        uint8_t close;                    /* enum proxy_close_reason (proxy.h), if @closed */
        uint8_t proto;                    /* enum proxy_access_proto */
        uint8_t tls;                      /* enum proxy_access_tls */
};

/* Flags of proxy_access_format(). */
#define PROXY_ACCESS_KEEP_QUERY (1u << 0) /* log the query string as well */

/* Format @rec as one JSON line, '\n' included, into @buf (@size bytes; no
 * NUL is written). Needs @rec->realtime_ns and @rec->end_ns set (0 is
 * taken as the epoch and as "duration 0"). Returns the length (at most
 * PROXY_ACCESS_LINE_MAX), or -ENOBUFS when @size is smaller than the line
 * (never with PROXY_ACCESS_LINE_MAX bytes). Pure: no clock, no locale, no
 * allocation. */
int proxy_access_format(const struct proxy_access_record *rec, unsigned flags, char *buf,
                        size_t size);

/* ---- the sink: what the daemon hands the engine (proxy_config.access_log) ---- */

/* A worker's ring and what it lost. */
struct proxy_access_slot {
        struct spsc_ring *ring;        /* the worker of this index is its only producer */
        atomic_uint_least64_t dropped; /* lines lost because the ring was full */
};

/* Called by a worker right after its push filled its ring past half, once
 * per crossing: the writer should drain now rather than at its next tick.
 * Must be thread-safe and must not block. */
typedef void proxy_access_wake_cb(void *ud);

/* Owned by the daemon (daemon/accesslog.c), borrowed by the engine for its
 * whole life. */
struct proxy_access_sink {
        atomic_bool enabled;             /* format and push only while set (off: one load) */
        atomic_bool keep_query;          /* PROXY_ACCESS_KEEP_QUERY */
        unsigned n_slots;                /* >= 1 */
        struct proxy_access_slot *slots; /* [n_slots]; worker i pushes into slot i; a worker
                                          * with no slot of its own (i >= n_slots) counts
                                          * its lines as dropped in slot i % n_slots */
        proxy_access_wake_cb *wake;      /* NULL: the writer only polls */
        void *wake_ud;
};

/* Engine side, on worker @worker's thread: fill @rec's end_ns and
 * realtime_ns if 0 (one clock_gettime each), format it and push it into the
 * worker's slot. Returns 0 when queued or the sink is off/NULL, -ENOBUFS
 * when the ring was full (counted in the slot's @dropped). Never blocks. */
int proxy__access_emit(struct proxy_access_sink *sink, unsigned worker,
                       struct proxy_access_record *rec);
