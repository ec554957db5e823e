/* SPDX-License-Identifier: Apache-2.0 */
#include "proxy/climits.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "common/macros.h"

#define US_PER_SEC 1000000u

bool climit_key(const struct sockaddr_storage *peer, uint8_t ret[16])
{
        memset(ret, 0, 16);
        if (peer->ss_family == AF_INET) {
                const struct sockaddr_in *in = (const struct sockaddr_in *)peer;

                ret[10] = ret[11] = 0xff;
                memcpy(ret + 12, &in->sin_addr, 4);
                return true;
        }
        if (peer->ss_family == AF_INET6) {
                const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)peer;

                /* A dual-stack listener shows IPv4 clients as ::ffff:a.b.c.d:
                 * the whole address is the client, as for AF_INET. */
                if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr)) {
                        memcpy(ret, &in6->sin6_addr, 16);
                        return true;
                }
                memcpy(ret, &in6->sin6_addr, 8);
                return true;
        }
        return false;
}

static unsigned slots_for(unsigned max_total)
{
        unsigned n = CLIMIT_MIN_SLOTS;

        while (n < max_total && n < CLIMIT_MAX_SLOTS)
                n <<= 1;
        return n;
}

int climits_init(struct climits *t, unsigned max_total, unsigned per_client, unsigned rate)
{
        unsigned slots = slots_for(max_total);

        memset(t, 0, sizeof(*t));
        siphash_key_random(&t->hkey);
        t->n_buckets = slots / CLIMIT_BUCKET_SLOTS;
        /* calloc: untouched buckets cost no memory until a client hashes
         * there. */
        t->buckets = calloc(t->n_buckets, sizeof(*t->buckets));
        if (!t->buckets)
                return -ENOMEM;
        for (unsigned i = 0; i < t->n_buckets; i++)
                atomic_flag_clear(&t->buckets[i].lock);
        atomic_init(&t->total, 0);
        atomic_init(&t->untracked, 0);
        climits_set(t, max_total, per_client, rate);
        return 0;
}

void climits_done(struct climits *t)
{
        t->buckets = mfree(t->buckets);
}

void climits_set(struct climits *t, unsigned max_total, unsigned per_client, unsigned rate)
{
        atomic_store_explicit(&t->max_total, max_total, memory_order_relaxed);
        atomic_store_explicit(&t->per_client, per_client, memory_order_relaxed);
        atomic_store_explicit(&t->rate, rate, memory_order_relaxed);
}

static void bucket_lock(struct climit_bucket *b)
{
        while (atomic_flag_test_and_set_explicit(&b->lock, memory_order_acquire))
                ;
}

static void bucket_unlock(struct climit_bucket *b)
{
        atomic_flag_clear_explicit(&b->lock, memory_order_release);
}

static bool slot_busy(const struct climit_slot *s)
{
        return s->conns[0] || s->conns[1];
}

static void total_release(struct climits *t)
{
        atomic_fetch_sub_explicit(&t->total, 1, memory_order_relaxed);
}

enum climit_verdict climits_admit(struct climits *t, const struct sockaddr_storage *peer,
                                  enum climit_port port, uint64_t now_us, uint32_t *ret_handle)
{
        unsigned per_client = atomic_load_explicit(&t->per_client, memory_order_relaxed);
        unsigned rate = atomic_load_explicit(&t->rate, memory_order_relaxed);
        unsigned max_total = atomic_load_explicit(&t->max_total, memory_order_relaxed);
        struct climit_slot *s = NULL, *victim = NULL;
        struct climit_bucket *b;
        uint8_t key[16];
        unsigned bi, si;

        *ret_handle = 0;
        if (atomic_fetch_add_explicit(&t->total, 1, memory_order_relaxed) >= max_total) {
                total_release(t);
                return CLIMIT_TOTAL;
        }
        if ((per_client == CLIMIT_OFF && rate == CLIMIT_OFF) || !climit_key(peer, key))
                return CLIMIT_ADMIT;

        bi = (unsigned)siphash13(&t->hkey, key, sizeof(key), false) & (t->n_buckets - 1);
        b = &t->buckets[bi];
        bucket_lock(b);
        for (si = 0; si < CLIMIT_BUCKET_SLOTS; si++) {
                struct climit_slot *c = &b->slots[si];

                if (memcmp(c->key, key, sizeof(key)) == 0 && (slot_busy(c) || c->tat_us)) {
                        s = c;
                        break;
                }
                /* Free: no connection and no rate state that still counts;
                 * else the oldest idle one may go. */
                if (!slot_busy(c) && (!victim || c->tat_us < victim->tat_us))
                        victim = c;
        }
        if (!s) {
                if (!victim) {
                        bucket_unlock(b);
                        atomic_fetch_add_explicit(&t->untracked, 1, memory_order_relaxed);
                        return CLIMIT_ADMIT;
                }
                s = victim;
                memcpy(s->key, key, sizeof(key));
                s->tat_us = 0;
                si = (unsigned)(s - b->slots);
        }
        if (per_client != CLIMIT_OFF && s->conns[port] >= per_client) {
                bucket_unlock(b);
                total_release(t);
                return CLIMIT_PER_CLIENT;
        }
        if (rate != CLIMIT_OFF) {
                /* GCRA: each connection costs @inc µs of credit, and up to one
                 * second of credit may be spent ahead (a burst of @rate). */
                uint64_t inc = US_PER_SEC / rate ? US_PER_SEC / rate : 1;
                uint64_t tat = MAX(s->tat_us, now_us);

                if (tat - now_us + inc > US_PER_SEC) {
                        bucket_unlock(b);
                        total_release(t);
                        return CLIMIT_RATE;
                }
                s->tat_us = tat + inc;
        } else if (!s->tat_us) {
                s->tat_us = 1; /* marks the slot as this key's */
        }
        s->conns[port]++;
        bucket_unlock(b);
        *ret_handle = ((bi * CLIMIT_BUCKET_SLOTS + si) << 1 | (uint32_t)port) + 1;
        return CLIMIT_ADMIT;
}

void climits_release(struct climits *t, uint32_t handle)
{
        total_release(t);
        if (handle) {
                uint32_t h = handle - 1, idx = h >> 1;
                struct climit_bucket *b = &t->buckets[idx / CLIMIT_BUCKET_SLOTS];
                struct climit_slot *s = &b->slots[idx % CLIMIT_BUCKET_SLOTS];

                bucket_lock(b);
                if (s->conns[h & 1])
                        s->conns[h & 1]--;
                bucket_unlock(b);
        }
}
