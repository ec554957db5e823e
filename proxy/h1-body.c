/* SPDX-License-Identifier: Apache-2.0 */
#include "proxy/h1-body.h"

#include "common/macros.h"

#define CHUNK_LINE_MAX 4096u

void h1_pump_init(struct h1_pump *p, enum proxy_h1_body src, enum proxy_h1_body dst, uint64_t len,
                  const struct proxy_h1_limits *lim)
{
        p->src = (uint8_t)src;
        p->dst = (uint8_t)dst;
        p->left = src == PROXY_H1_BODY_LENGTH ? len : 0;
        p->done = src == PROXY_H1_BODY_NONE || (src == PROXY_H1_BODY_LENGTH && len == 0);
        /* A zero-length chunked body still needs its last-chunk. */
        p->last_queued = false;
        p->n_heads = 0;
        p->tr_off = p->tr_len = 0;
        if (src == PROXY_H1_BODY_CHUNKED)
                proxy_h1_chunked_init(&p->ch, CHUNK_LINE_MAX, lim->max_head, lim->max_headers);
}

int h1_pump_fill(struct h1_pump *p, uint8_t *buf, uint32_t *pos, uint32_t len, bool eof,
                 struct iovq *q)
{
        if (q->n == 0)
                p->n_heads = 0;
        while (!p->done && *pos < len && p->n_heads < H1_PUMP_CHUNKS && q->n + 4u <= IOVQ_MAX) {
                size_t avail = len - *pos, dl = 0;
                const uint8_t *data = buf + *pos;
                int r;

                switch (p->src) {
                case PROXY_H1_BODY_LENGTH:
                        dl = (size_t)MIN((uint64_t)avail, p->left);
                        *pos += (uint32_t)dl;
                        p->left -= dl;
                        p->done = p->left == 0;
                        break;
                case PROXY_H1_BODY_CHUNKED:
                        r = proxy_h1_chunked_decode(&p->ch, data, avail, &dl);
                        if (r < 0)
                                return r;
                        data = buf + *pos + (size_t)r - dl;
                        p->done = proxy_h1_chunked_done(&p->ch);
                        if (p->done && p->ch.keep) {
                                size_t off, tl;

                                proxy_h1_chunked_trailers(&p->ch, r, &off, &tl);
                                p->tr_off = *pos + (uint32_t)off;
                                p->tr_len = (uint32_t)proxy_h1_trailers_filter(buf + p->tr_off, tl);
                        }
                        *pos += (uint32_t)r;
                        if (r == 0)
                                return 0;
                        break;
                case PROXY_H1_BODY_CLOSE:
                        dl = avail;
                        *pos += (uint32_t)dl;
                        break;
                default:
                        p->done = true;
                        break;
                }
                if (dl > 0) {
                        if (p->dst == PROXY_H1_BODY_CHUNKED) {
                                size_t hl = proxy_h1_chunk_head(p->heads[p->n_heads], dl);

                                iovq_add(q, p->heads[p->n_heads], hl);
                                iovq_add(q, data, dl);
                                iovq_add(q, PROXY_H1_CHUNK_END, 2);
                                p->n_heads++;
                        } else {
                                iovq_add(q, data, dl);
                        }
                }
                if (p->src != PROXY_H1_BODY_CHUNKED)
                        break;
        }
        if (p->src == PROXY_H1_BODY_CLOSE && eof && *pos == len)
                p->done = true;
        if (p->done && p->dst == PROXY_H1_BODY_CHUNKED && !p->last_queued) {
                if (p->tr_len == 0 && q->n < IOVQ_MAX) {
                        iovq_add(q, PROXY_H1_CHUNK_LAST, sizeof(PROXY_H1_CHUNK_LAST) - 1);
                        p->last_queued = true;
                } else if (p->tr_len > 0 && q->n + 3u <= IOVQ_MAX) {
                        /* RFC 9112 §7.1.2; the fields stay in @buf, which
                         * the caller keeps until @q is written. */
                        iovq_add(q, "0\r\n", 3);
                        iovq_add(q, buf + p->tr_off, p->tr_len);
                        iovq_add(q, PROXY_H1_CHUNK_END, 2);
                        p->last_queued = true;
                }
        }
        return 0;
}
