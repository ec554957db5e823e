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
        uint32_t tr_off;  /* kept trailers: the fields passed on, buf[tr_off, +tr_len) once done */
        uint32_t tr_len;  /* ... 0: none (or none allowed) */
        uint8_t heads[H1_PUMP_CHUNKS][PROXY_H1_CHUNK_HEAD_MAX];
};

/* A body framed @src (of @len bytes for PROXY_H1_BODY_LENGTH) to be sent
 * framed @dst; @lim bounds a chunked source's lines and trailers. */
void h1_pump_init(struct h1_pump *p, enum proxy_h1_body src, enum proxy_h1_body dst, uint64_t len,
                  const struct proxy_h1_limits *lim);

/* Keep a chunked source's trailer section (call after init; nothing for
 * another source). The source buffer then holds an incomplete section (at
 * most the limit's max_head bytes) at *pos until it is complete; then the
 * fields that may be trailers (proxy_h1_trailer_allowed()) are moved
 * together in place, at buf[tr_off, tr_off + tr_len), and go into the
 * last-chunk for a chunked destination ("0", the fields, the empty line).
 * For another destination they are the owner's to pass on (HTTP/2) or
 * drop. */
static inline void h1_pump_keep_trailers(struct h1_pump *p)
{
        if (p->src == PROXY_H1_BODY_CHUNKED)
                proxy_h1_chunked_keep_trailers(&p->ch);
}

/* Source bytes at *pos the pump looked at but holds (a kept trailer
 * section not yet complete). */
static inline uint32_t h1_pump_held(const struct h1_pump *p)
{
        return p->src == PROXY_H1_BODY_CHUNKED ? proxy_h1_chunked_held(&p->ch) : 0;
}

/* Everything, the last-chunk included, is queued. */
static inline bool h1_pump_finished(const struct h1_pump *p)
{
        return p->done && (p->dst != PROXY_H1_BODY_CHUNKED || p->last_queued);
}

/* Queue body bytes from @buf[*pos, len) into @q and advance *pos past what
 * was queued (the caller releases it once @q is written). @q may still hold
 * earlier batches: the chunk heads they point to are not reused until it
 * is empty. @eof: the source reached its end (ends a close-delimited
 * body). @buf is written only to filter a kept trailer section. Returns 0
 * or -EBADMSG/-EMSGSIZE for a malformed chunked source. */
int h1_pump_fill(struct h1_pump *p, uint8_t *buf, uint32_t *pos, uint32_t len, bool eof,
                 struct iovq *q);
