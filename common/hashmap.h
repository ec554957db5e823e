/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* A string-keyed hash map (key -> void *) with open addressing.
 *
 * Keys are BORROWED: the map stores the caller's pointer, never a copy, so
 * the key string must stay alive and unchanged while it is in the map (the
 * usual pattern is a key that points into the value, e.g. an object's id).
 * Borrowing keeps hashmap_put() free of per-entry allocations, so after a
 * successful hashmap_reserve() a put cannot fail; callers that update two
 * maps together rely on that to stay consistent.
 *
 * Lookups, inserts and removals are O(1) on average: linear probing at a
 * load factor of at most 3/4 with backward-shift deletion (no tombstones).
 * Keys are hashed with SipHash-1-3 under a per-map random key, so a remote
 * party that chooses the keys cannot force collisions. Values may be NULL;
 * use hashmap_contains() to tell "absent" from "NULL value".
 *
 * Not thread-safe: callers serialise access. */

#include <stdbool.h>
#include <stddef.h>

#include "common/macros.h"

struct hashmap;

enum {
        HASHMAP_ASCII_CASEFOLD = 1u << 0, /* keys equal when equal ignoring ASCII case */
};

/* Allocate an empty map. @flags is 0 or HASHMAP_ASCII_CASEFOLD. NULL on OOM. */
struct hashmap *hashmap_new(unsigned flags);
/* Free the map (not the keys or values). Accepts NULL; returns NULL. */
struct hashmap *hashmap_free(struct hashmap *m);
/* Free the map and call @free_value on every value. Accepts NULL; returns NULL. */
struct hashmap *hashmap_free_with(struct hashmap *m, void (*free_value)(void *value));
static inline void hashmap_freep(struct hashmap **m)
{
        hashmap_free(*m);
}

size_t hashmap_size(const struct hashmap *m);

/* The value stored under @key, or NULL when absent. */
void *hashmap_get(const struct hashmap *m, const char *key);
bool hashmap_contains(const struct hashmap *m, const char *key);

/* Make room for @n entries in total, so that puts up to that size allocate
 * nothing and cannot fail. Returns 0, -ENOMEM or -E2BIG (size overflow). */
int hashmap_reserve(struct hashmap *m, size_t n);

/* Insert @key -> @value, or replace the value of an existing key. On
 * replacement the stored key pointer is also switched to @key, so the old
 * key string may be freed afterwards. Returns 0 (inserted), 1 (replaced)
 * or -ENOMEM (map unchanged). */
int hashmap_put(struct hashmap *m, const char *key, void *value);

/* Remove @key. Returns its value, or NULL when absent (map unchanged).
 * Never allocates and never fails. */
void *hashmap_remove(struct hashmap *m, const char *key);

/* Remove every entry; keeps the allocated table. */
void hashmap_clear(struct hashmap *m);

/* Iterate: start with *state = 0 and call until it returns false. Either
 * output pointer may be NULL. The map must not be modified while iterating.
 * Order is unspecified and differs between maps. */
bool hashmap_iterate(const struct hashmap *m, size_t *state, const char **ret_key,
                     void **ret_value);
