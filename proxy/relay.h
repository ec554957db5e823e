/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* The byte relay between two sockets: SNI passthrough (client <-> the
 * route's TLS backend) and WebSocket tunnels after a 101 (client, maybe
 * TLS, <-> backend). Protocol-free: it moves bytes both ways through
 * struct sock, counts them for the route, and reports when it is done.
 *
 * Buffers: a direction with a buffer of its own (a WebSocket tunnel keeps
 * its exchange block) reads into it and writes from it. A direction
 * without one reads into the worker's shared buffer and writes on at once;
 * only what the destination did not take is copied into a buffer of its
 * own (malloc), freed once written. So an idle or flowing passthrough
 * connection holds no buffer, a blocked one at most the shared buffer's
 * size per direction. Either way a source is not read while its bytes are
 * not written (backpressure).
 *
 * Ends: with half_close (passthrough) one side's EOF is passed on with
 * SHUT_WR once its bytes are written and the other direction keeps going;
 * the relay is done when both were passed on. Without (WebSocket), either
 * side's EOF ends it once what the other side is owed has been written.
 *
 * Counting: bytes are counted when the destination socket took them and
 * reach the route's counters in batches (struct proxy_counters_batch) and
 * at relay_done(). */

#include <stdbool.h>
#include <stdint.h>

#include "proxy/routes.h"
#include "proxy/sock.h"

enum {
        RELAY_UP,   /* client -> backend (request bytes) */
        RELAY_DOWN, /* backend -> client (response bytes) */
};

struct relay_dir {
        uint8_t *buf;      /* pending bytes are buf[off, len) */
        uint32_t off, len; /* */
        uint8_t *own;      /* a buffer of the direction's own (@own_cap), or NULL */
        uint32_t own_cap;  /* */
        bool owned_rest;   /* @buf is a malloc()ed remainder (freed once written) */
        bool eof;          /* the source reached EOF */
        bool shut;         /* ... and it was passed on (half_close) */
};

struct relay {
        struct sock *s[2];                 /* [0] client, [1] backend */
        struct relay_dir d[2];             /* [RELAY_UP], [RELAY_DOWN]; source of d[i] is s[i] */
        uint8_t *shared;                   /* the worker's read buffer, @shared_cap bytes */
        uint32_t shared_cap;               /* */
        struct proxy_counters_batch bytes; /* bytes.c: the route's counters (borrowed) */
        uint64_t total[2];                 /* bytes written per direction (the access log) */
        bool half_close;                   /* see above */
        uint8_t err_side;                  /* after an error: 0 the client, 1 the backend failed */
};

/* Set up @r between @client and @backend (both borrowed; the caller keeps
 * and closes them), counting on @counters (borrowed, may be NULL),
 * reading into @shared (@cap bytes) where a direction has no buffer of its
 * own. */
void relay_init(struct relay *r, struct sock *client, struct sock *backend, uint8_t *shared,
                uint32_t cap, struct proxy_counters *counters, bool half_close);

/* Give direction @d a buffer of its own (@cap bytes), holding bytes read
 * before, @buf[off, len), to write first. */
void relay_own_buffer(struct relay *r, unsigned d, uint8_t *buf, uint32_t cap, uint32_t off,
                      uint32_t len);

/* Bytes read before the relay started, to write first in direction @d:
 * @buf[0, len), malloc()ed, taken (freed once written). */
void relay_preload(struct relay *r, unsigned d, uint8_t *buf, uint32_t len);

/* Move bytes both ways as far as they go without blocking. Returns 0 (wait
 * for events), 1 (done: see "Ends" above), -ENOMEM (no memory for a
 * remainder) or another -errno with r->err_side telling whose socket
 * failed. Sets *progress when bytes moved or an EOF was seen. */
int relay_step(struct relay *r, bool *progress);

/* Declare both sockets' interest. Returns 0 or -errno (the client's socket
 * in err_side 0, the backend's in 1). */
int relay_poll(struct relay *r);

/* Flush the counters and free remainders; the sockets are the caller's. */
void relay_done(struct relay *r);
