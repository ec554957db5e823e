/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* HTTP/1.1 message bodies between two framings: a "pump" moves one body
 * from a source buffer into an iovec queue, decoding the source framing
 * (Content-Length, chunked, close-delimited) and encoding the
 * destination's (the same, chunked with chunk heads of our own, or raw),
 * without copying the data: the queue points into the source buffer, which
 * the caller keeps until the queue is written. The request body towards a
 * backend and the response body towards an HTTP/1.1 client use it; an
 * HTTP/2 stream gets raw data with PROXY_H1_BODY_CLOSE as destination. */

#include <stdbool.h>
#include <stdint.h>

#include "proxy/http1.h"
#include "proxy/sock.h"

#define H1_PUMP_CHUNKS 7u /* re-encoded chunks per batch (3 iovecs each) */

struct h1_pump {
        uint64_t left; /* LENGTH: body bytes still to come */
        struct proxy_h1_chunked ch;
        uint8_t src;      /* enum proxy_h1_body of the source */
        uint8_t dst;      /* enum proxy_h1_body towards the destination */
        bool done;        /* the source body ended: all of it is queued */
        bool last_queued; /* dst CHUNKED: the last-chunk is queued */
        uint8_t n_heads;  /* heads[] referenced by the queue (since it was last empty) */
        uint8_t heads[H1_PUMP_CHUNKS][PROXY_H1_CHUNK_HEAD_MAX];
};

/* A body framed @src (of @len bytes for PROXY_H1_BODY_LENGTH) to be sent
 * framed @dst; @lim bounds a chunked source's lines and trailers. */
void h1_pump_init(struct h1_pump *p, enum proxy_h1_body src, enum proxy_h1_body dst, uint64_t len,
                  const struct proxy_h1_limits *lim);

/* Everything, the last-chunk included, is queued. */
static inline bool h1_pump_finished(const struct h1_pump *p)
{
        return p->done && (p->dst != PROXY_H1_BODY_CHUNKED || p->last_queued);
}

/* Queue body bytes from @buf[*pos, len) into @q and advance *pos past what
 * was queued (the caller releases it once @q is written). @q may still hold
 * earlier batches: the chunk heads they point to are not reused until it
 * is empty. @eof: the source reached its end (ends a close-delimited
 * body). Returns 0 or -EBADMSG/-EMSGSIZE for a malformed chunked source. */
int h1_pump_fill(struct h1_pump *p, const uint8_t *buf, uint32_t *pos, uint32_t len, bool eof,
                 struct iovq *q);
