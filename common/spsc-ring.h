/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* A lock-free byte ring for exactly one producer thread and one consumer
 * thread (C11 atomics, no lock, no syscall). Capacity is fixed at creation.
 * A push is all or nothing: it copies a whole message or fails when the
 * free space is smaller, so the consumer never sees part of one. Messages
 * carry no framing of their own; the access log pushes lines that end in
 * '\n' and its writer writes the bytes as they come.
 *
 * Positions are byte counts since creation (64-bit, they do not wrap in
 * practice); head is written only by the producer, tail only by the
 * consumer, each on its own cache line. The producer publishes bytes with
 * a release store of head after copying them, the consumer frees space
 * with a release store of tail after it is done with them; each side reads
 * the other's position with an acquire load. */

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#define SPSC_RING_MIN_SIZE 64u
#define SPSC_RING_MAX_SIZE (1u << 30)

struct spsc_ring;

/* Allocate a ring of @size bytes (a power of two in SPSC_RING_MIN_SIZE ..
 * SPSC_RING_MAX_SIZE, else -EINVAL). The buffer is calloc()ed, so pages
 * that were never written cost no memory. Returns 0 or -ENOMEM. */
int spsc_ring_new(size_t size, struct spsc_ring **ret);

/* Accepts NULL; returns NULL. Neither side may use the ring any more. */
struct spsc_ring *spsc_ring_free(struct spsc_ring *r);
static inline void spsc_ring_freep(struct spsc_ring **r)
{
        spsc_ring_free(*r);
}

size_t spsc_ring_size(const struct spsc_ring *r);

/* Producer: append @n bytes of @p (n >= 1). Returns the bytes in use after
 * the push (at least @n; the consumer may have freed more meanwhile),
 * -ENOBUFS when fewer than @n bytes are free (nothing was written: the
 * caller counts a drop), or -EMSGSIZE when @n exceeds the capacity. */
int spsc_ring_push(struct spsc_ring *r, const void *p, size_t n);

/* Consumer: the readable bytes as up to two spans (the second when they
 * wrap around the end), in @iov[2]. Returns the number of spans (0: empty).
 * The spans stay valid and unchanged until spsc_ring_consume(). */
unsigned spsc_ring_peek(struct spsc_ring *r, struct iovec iov[2]);

/* Consumer: release the first @n bytes of what spsc_ring_peek() returned
 * (at most that many), making room for the producer. */
void spsc_ring_consume(struct spsc_ring *r, size_t n);

/* Either side: bytes in use now (a snapshot; exact when called by the
 * consumer with no push in flight). */
size_t spsc_ring_used(const struct spsc_ring *r);

/* Any thread: bytes pushed since creation. Always the end of a message, so
 * a consumer told this position can stop exactly after what was pushed
 * before it was read (the access log's switch of target). */
uint64_t spsc_ring_pushed(const struct spsc_ring *r);

/* Consumer: bytes consumed since creation. */
uint64_t spsc_ring_consumed(const struct spsc_ring *r);
