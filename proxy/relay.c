/* SPDX-License-Identifier: Apache-2.0 */
#include "proxy/relay.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/macros.h"

/* Reads per direction per step from a plain socket that keeps delivering
 * full buffers, so one busy connection cannot starve the worker (epoll is
 * level-triggered: the rest is reported again). */
#define RELAY_BATCH 32u

void relay_init(struct relay *r, struct sock *client, struct sock *backend, uint8_t *shared,
                uint32_t cap, struct proxy_counters *counters, bool half_close)
{
        *r = (struct relay){.s = {client, backend},
                            .shared = shared,
                            .shared_cap = cap,
                            .bytes = {.c = counters},
                            .half_close = half_close};
        /* A side may have reached EOF before the relay started. */
        r->d[RELAY_UP].eof = client->eof;
        r->d[RELAY_DOWN].eof = backend->eof;
}

void relay_own_buffer(struct relay *r, unsigned d, uint8_t *buf, uint32_t cap, uint32_t off,
                      uint32_t len)
{
        struct relay_dir *dir = &r->d[d];

        assert(off <= len && len <= cap);
        dir->own = buf;
        dir->own_cap = cap;
        dir->buf = buf;
        dir->off = off;
        dir->len = len;
}

void relay_preload(struct relay *r, unsigned d, uint8_t *buf, uint32_t len)
{
        struct relay_dir *dir = &r->d[d];

        assert(!dir->buf);
        if (len == 0) {
                free(buf);
                return;
        }
        dir->buf = buf;
        dir->off = 0;
        dir->len = len;
        dir->owned_rest = true;
}

static void dir_drained(struct relay_dir *dir)
{
        if (dir->owned_rest)
                free(dir->buf);
        dir->owned_rest = false;
        dir->buf = dir->own;
        dir->off = dir->len = 0;
}

/* Write what direction @d holds. Returns 0 (all written, or blocked: then
 * the bytes stay in a buffer the next read does not touch) or -errno. */
static int dir_write(struct relay *r, unsigned d, bool *progress)
{
        struct relay_dir *dir = &r->d[d];
        uint64_t written = 0;
        struct iovq q;
        int k;

        iovq_reset(&q);
        iovq_add(&q, dir->buf + dir->off, dir->len - dir->off);
        k = sock_write(r->s[!d], &q, &written);
        if (written) {
                dir->off += (uint32_t)written;
                proxy_counters_batch_add(&r->bytes, d == RELAY_DOWN, written);
                r->total[d] += written;
                *progress = true;
        }
        if (k < 0) {
                r->err_side = (uint8_t)!d;
                return k;
        }
        if (dir->off == dir->len) {
                dir_drained(dir);
                return 0;
        }
        if (dir->buf == r->shared) {
                /* The shared buffer is needed by the next read. */
                uint32_t n = dir->len - dir->off;
                uint8_t *rest = malloc(n);

                if (!rest)
                        return -ENOMEM;
                memcpy(rest, dir->buf + dir->off, n);
                dir->buf = rest;
                dir->off = 0;
                dir->len = n;
                dir->owned_rest = true;
        }
        return 0;
}

/* Move direction @d forward as far as it goes. */
static int dir_step(struct relay *r, unsigned d, bool *progress)
{
        struct relay_dir *dir = &r->d[d];
        struct sock *src = r->s[d], *dst = r->s[!d];
        int k;

        for (unsigned n = 0;; n++) {
                if (dir->len > dir->off) {
                        k = dir_write(r, d, progress);
                        if (k < 0)
                                return k;
                        if (dir->len > dir->off)
                                return 0; /* blocked: wait for EV_WRITE */
                }
                if (dir->eof) {
                        if (r->half_close && !dir->shut) {
                                /* Pass the EOF on, keep the other way open. */
                                sock_shutdown(dst);
                                dir->shut = true;
                        }
                        return 0;
                }
                if (!sock_can_read(src) || (n >= RELAY_BATCH && !sock_buffered(src)))
                        return 0;
                {
                        uint8_t *buf = dir->own ? dir->own : r->shared;
                        uint32_t cap = dir->own ? dir->own_cap : r->shared_cap;
                        ssize_t got = sock_read(src, buf, cap);

                        if (got == -EAGAIN)
                                return 0;
                        if (got < 0) {
                                r->err_side = (uint8_t)d;
                                return (int)got;
                        }
                        *progress = true;
                        if (got == 0) {
                                dir->eof = true;
                                continue;
                        }
                        dir->buf = buf;
                        dir->off = 0;
                        dir->len = (uint32_t)got;
                }
        }
}

static bool dir_drained_eof(const struct relay_dir *dir)
{
        return dir->eof && dir->len == dir->off;
}

int relay_step(struct relay *r, bool *progress)
{
        int k;

        for (unsigned d = 0; d < 2; d++) {
                k = dir_step(r, d, progress);
                if (k < 0)
                        return k;
        }
        if (r->half_close)
                return r->d[0].shut && r->d[1].shut;
        return dir_drained_eof(&r->d[0]) || dir_drained_eof(&r->d[1]);
}

int relay_poll(struct relay *r)
{
        for (unsigned i = 0; i < 2; i++) {
                const struct relay_dir *dir = &r->d[i];
                int k = sock_want(r->s[i], !dir->eof && dir->len == dir->off);

                if (k < 0) {
                        r->err_side = (uint8_t)i;
                        return k;
                }
        }
        return 0;
}

void relay_done(struct relay *r)
{
        proxy_counters_batch_flush(&r->bytes);
        for (unsigned d = 0; d < 2; d++)
                if (r->d[d].owned_rest)
                        r->d[d].buf = mfree(r->d[d].buf);
}
