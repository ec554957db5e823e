/* SPDX-License-Identifier: Apache-2.0 */
#include "common/spsc-ring.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/macros.h"

#define CACHE_LINE 64

struct spsc_ring {
        /* The producer's line: head is stored here, tail only loaded. */
        _Alignas(CACHE_LINE) _Atomic uint64_t head; /* bytes pushed since creation */
        /* The consumer's line. */
        _Alignas(CACHE_LINE) _Atomic uint64_t tail; /* bytes consumed since creation */
        /* Read-only after creation, shared by both. */
        _Alignas(CACHE_LINE) size_t size; /* a power of two */
        uint8_t *buf;                     /* [size] */
};

int spsc_ring_new(size_t size, struct spsc_ring **ret)
{
        struct spsc_ring *r;

        if (size < SPSC_RING_MIN_SIZE || size > SPSC_RING_MAX_SIZE || (size & (size - 1)))
                return -EINVAL;
        /* sizeof is a multiple of the alignment, as aligned_alloc() wants. */
        r = aligned_alloc(CACHE_LINE, sizeof(*r));
        if (!r)
                return -ENOMEM;
        *r = (struct spsc_ring){.size = size};
        /* calloc: a large buffer is fresh mmap()ed pages, resident only once
         * written, so an access log that is off costs no memory. */
        r->buf = calloc(1, size);
        if (!r->buf) {
                free(r);
                return -ENOMEM;
        }
        atomic_init(&r->head, 0);
        atomic_init(&r->tail, 0);
        *ret = r;
        return 0;
}

struct spsc_ring *spsc_ring_free(struct spsc_ring *r)
{
        if (r) {
                free(r->buf);
                free(r);
        }
        return NULL;
}

size_t spsc_ring_size(const struct spsc_ring *r)
{
        return r->size;
}

int spsc_ring_push(struct spsc_ring *r, const void *p, size_t n)
{
        uint64_t head = atomic_load_explicit(&r->head, memory_order_relaxed);
        /* Acquire: the consumer is done reading the bytes below tail before
         * they are overwritten here. */
        uint64_t tail = atomic_load_explicit(&r->tail, memory_order_acquire);
        size_t used = (size_t)(head - tail), off, first;

        assert(n > 0 && used <= r->size);
        if (n > r->size)
                return -EMSGSIZE;
        if (r->size - used < n)
                return -ENOBUFS;
        off = (size_t)head & (r->size - 1);
        first = MIN(n, r->size - off);
        memcpy(r->buf + off, p, first);
        if (first < n)
                memcpy(r->buf, (const uint8_t *)p + first, n - first);
        /* Release: the bytes are in place before the consumer sees them. */
        atomic_store_explicit(&r->head, head + n, memory_order_release);
        return (int)(used + n);
}

unsigned spsc_ring_peek(struct spsc_ring *r, struct iovec iov[2])
{
        uint64_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed);
        uint64_t head = atomic_load_explicit(&r->head, memory_order_acquire);
        size_t used = (size_t)(head - tail), off, first;

        assert(used <= r->size);
        if (used == 0)
                return 0;
        off = (size_t)tail & (r->size - 1);
        first = MIN(used, r->size - off);
        iov[0] = (struct iovec){.iov_base = r->buf + off, .iov_len = first};
        if (first == used)
                return 1;
        iov[1] = (struct iovec){.iov_base = r->buf, .iov_len = used - first};
        return 2;
}

void spsc_ring_consume(struct spsc_ring *r, size_t n)
{
        uint64_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed);

        assert(n <= (size_t)(atomic_load_explicit(&r->head, memory_order_relaxed) - tail));
        atomic_store_explicit(&r->tail, tail + n, memory_order_release);
}

size_t spsc_ring_used(const struct spsc_ring *r)
{
        uint64_t tail = atomic_load_explicit(&r->tail, memory_order_acquire);
        uint64_t head = atomic_load_explicit(&r->head, memory_order_acquire);

        /* Loaded in this order, head is never behind tail. */
        return (size_t)(head - tail);
}

uint64_t spsc_ring_pushed(const struct spsc_ring *r)
{
        return atomic_load_explicit(&r->head, memory_order_acquire);
}

uint64_t spsc_ring_consumed(const struct spsc_ring *r)
{
        return atomic_load_explicit(&r->tail, memory_order_relaxed);
}
