/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* Engine-internal: per-client connection limits, shared by every worker.
 *
 * A client is its address: IPv4 (also as ::ffff:a.b.c.d on a dual-stack
 * listener) by the full address, IPv6 by its /64 (one subscriber usually
 * gets a whole /64, and an attacker picks addresses inside it for free).
 * For each client the table counts open connections per port (:443, :80)
 * and meters new connections with a GCRA token bucket (a burst of one
 * second's worth, then the configured rate).
 *
 * Shared, not per worker: all workers accept from one queue, so a client's
 * connections land on whichever worker accepts first; a per-worker table
 * would split a cap unpredictably. The cost is one bucket spinlock per
 * accept and per close (a 16-slot scan, a few hundred ns).
 *
 * Bounded: a fixed number of buckets of CLIMIT_BUCKET_SLOTS slots, sized
 * once from the global connection cap (at most CLIMIT_MAX_SLOTS slots).
 * A slot whose client has no open connection only remembers its rate
 * state, and is reused for another client when its bucket is full (the
 * oldest first); a flood of distinct addresses therefore only recycles
 * slots, never grows memory. A client whose bucket is full of clients with
 * open connections is admitted untracked (counted in @untracked): only
 * the global cap applies to it. The slot hash is SipHash under a random
 * key, so a remote party cannot aim its addresses at one bucket.
 *
 * Thread-safety: every function may be called from any thread; the limits
 * are atomics (changed live), each bucket has its own lock. */

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "common/siphash.h"

#define CLIMIT_BUCKET_SLOTS 16u
#define CLIMIT_MIN_SLOTS    1024u
#define CLIMIT_MAX_SLOTS    (1u << 18) /* 8 MiB of slots at most */
#define CLIMIT_OFF          UINT32_MAX /* a per-client limit that is not applied */

enum climit_port {
        CLIMIT_HTTPS,
        CLIMIT_HTTP,
        _CLIMIT_PORT_MAX,
};

/* Why an accepted connection was refused (proxy.h: enum proxy_limit_reason). */
enum climit_verdict {
        CLIMIT_ADMIT = -1,
        CLIMIT_PER_CLIENT = 0, /* the client has per_client connections on this port */
        CLIMIT_RATE = 1,       /* the client opened more than rate per second */
        CLIMIT_TOTAL = 2,      /* the engine has total client connections */
};

struct climit_slot {
        uint8_t key[16];                  /* the client (see climit_key()) */
        uint64_t tat_us;                  /* GCRA: theoretical arrival time, µs */
        uint32_t conns[_CLIMIT_PORT_MAX]; /* open connections per port */
};

struct climit_bucket {
        atomic_flag lock; /* guards @slots */
        struct climit_slot slots[CLIMIT_BUCKET_SLOTS];
};

struct climits {
        struct siphash_key hkey;
        struct climit_bucket *buckets;
        unsigned n_buckets;              /* a power of two */
        atomic_uint total;               /* open client connections, every worker */
        atomic_uint max_total;           /* cap on @total */
        atomic_uint per_client;          /* connections per client per port; CLIMIT_OFF */
        atomic_uint rate;                /* new connections per second per client; CLIMIT_OFF */
        atomic_uint_least64_t untracked; /* admitted without a slot (bucket full) */
};

/* Size the table for @max_total connections. Returns 0 or -ENOMEM. */
int climits_init(struct climits *t, unsigned max_total, unsigned per_client, unsigned rate);
void climits_done(struct climits *t);

/* Change the limits live; connections over a lowered limit stay. */
void climits_set(struct climits *t, unsigned max_total, unsigned per_client, unsigned rate);

/* A connection from @peer was accepted on @port at @now_us (monotonic).
 * Returns CLIMIT_ADMIT and a handle for climits_release() in *ret_handle
 * (0: admitted untracked by the table, only by the total), or the reason
 * it is refused (nothing is counted then). */
enum climit_verdict climits_admit(struct climits *t, const struct sockaddr_storage *peer,
                                  enum climit_port port, uint64_t now_us, uint32_t *ret_handle);

/* The connection admitted with @handle is gone. */
void climits_release(struct climits *t, uint32_t handle);

/* The key of @peer: IPv4 as ::ffff:a.b.c.d, IPv6 by its /64 with the rest
 * zero. Returns false for another family (such a peer is not tracked). */
bool climit_key(const struct sockaddr_storage *peer, uint8_t ret[16]);
