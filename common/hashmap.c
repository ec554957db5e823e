/* SPDX-License-Identifier: Apache-2.0 */
#include "common/hashmap.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/siphash.h"

#define MIN_CAPACITY 16

struct slot {
        const char *key; /* borrowed; NULL marks an empty slot */
        void *value;
        uint64_t hash; /* full hash of key, so probes and growth skip most key compares */
};

struct hashmap {
        struct slot *slots;     /* cap entries, NULL until the first put/reserve */
        size_t cap;             /* 0 or a power of two */
        size_t size;            /* occupied slots; always <= cap * 3 / 4 */
        unsigned flags;         /* HASHMAP_* */
        struct siphash_key key; /* random per map */
};

static uint64_t hash_key(const struct hashmap *m, const char *key)
{
        return siphash13(&m->key, key, strlen(key), m->flags & HASHMAP_ASCII_CASEFOLD);
}

static bool key_eq(const struct hashmap *m, const char *a, const char *b)
{
        if (!(m->flags & HASHMAP_ASCII_CASEFOLD))
                return strcmp(a, b) == 0;
        for (;; a++, b++) {
                if (ascii_tolower((unsigned char)*a) != ascii_tolower((unsigned char)*b))
                        return false;
                if (!*a)
                        return true;
        }
}

struct hashmap *hashmap_new(unsigned flags)
{
        struct hashmap *m = calloc(1, sizeof(*m));

        if (!m)
                return NULL;
        m->flags = flags;
        siphash_key_random(&m->key);
        return m;
}

struct hashmap *hashmap_free(struct hashmap *m)
{
        if (!m)
                return NULL;
        free(m->slots);
        free(m);
        return NULL;
}

struct hashmap *hashmap_free_with(struct hashmap *m, void (*free_value)(void *value))
{
        if (!m)
                return NULL;
        if (free_value)
                for (size_t i = 0; i < m->cap; i++)
                        if (m->slots[i].key)
                                free_value(m->slots[i].value);
        return hashmap_free(m);
}

size_t hashmap_size(const struct hashmap *m)
{
        return m ? m->size : 0;
}

/* Index of @key's slot, or of the empty slot where it would go. There is
 * always an empty slot (load <= 3/4), so the loop terminates. */
static size_t probe(const struct hashmap *m, const char *key, uint64_t h, bool *ret_found)
{
        size_t mask = m->cap - 1;

        for (size_t i = h & mask;; i = (i + 1) & mask) {
                const struct slot *s = &m->slots[i];

                if (!s->key) {
                        *ret_found = false;
                        return i;
                }
                if (s->hash == h && key_eq(m, s->key, key)) {
                        *ret_found = true;
                        return i;
                }
        }
}

static const struct slot *lookup(const struct hashmap *m, const char *key)
{
        bool found;
        size_t i;

        if (!m || m->size == 0 || !key)
                return NULL;
        i = probe(m, key, hash_key(m, key), &found);
        return found ? &m->slots[i] : NULL;
}

void *hashmap_get(const struct hashmap *m, const char *key)
{
        const struct slot *s = lookup(m, key);

        return s ? s->value : NULL;
}

bool hashmap_contains(const struct hashmap *m, const char *key)
{
        return lookup(m, key) != NULL;
}

static int resize(struct hashmap *m, size_t cap)
{
        struct slot *slots;
        size_t mask = cap - 1;

        if (cap > SIZE_MAX / sizeof(struct slot))
                return -E2BIG;
        slots = calloc(cap, sizeof(struct slot));
        if (!slots)
                return -ENOMEM;
        for (size_t i = 0; i < m->cap; i++) {
                const struct slot *s = &m->slots[i];
                size_t j;

                if (!s->key)
                        continue;
                for (j = s->hash & mask; slots[j].key; j = (j + 1) & mask)
                        ;
                slots[j] = *s;
        }
        free(m->slots);
        m->slots = slots;
        m->cap = cap;
        return 0;
}

int hashmap_reserve(struct hashmap *m, size_t n)
{
        size_t cap = m->cap ? m->cap : MIN_CAPACITY;

        /* Keep load <= 3/4: n <= cap - cap/4. */
        while (n > cap - cap / 4) {
                if (cap > SIZE_MAX / 2)
                        return -E2BIG;
                cap *= 2;
        }
        if (cap == m->cap)
                return 0;
        return resize(m, cap);
}

int hashmap_put(struct hashmap *m, const char *key, void *value)
{
        uint64_t h;
        bool found;
        size_t i;
        int r;

        if (!key)
                return -EINVAL;
        h = hash_key(m, key);
        if (m->cap) {
                i = probe(m, key, h, &found);
                if (found) {
                        m->slots[i].key = key;
                        m->slots[i].value = value;
                        return 1;
                }
        }
        if (m->size == SIZE_MAX)
                return -E2BIG;
        r = hashmap_reserve(m, m->size + 1);
        if (r < 0)
                return r;
        i = probe(m, key, h, &found);
        m->slots[i] = (struct slot){.key = key, .value = value, .hash = h};
        m->size++;
        return 0;
}

void *hashmap_remove(struct hashmap *m, const char *key)
{
        size_t mask, i, j;
        bool found;
        void *value;

        if (!m || m->size == 0 || !key)
                return NULL;
        i = probe(m, key, hash_key(m, key), &found);
        if (!found)
                return NULL;
        value = m->slots[i].value;
        mask = m->cap - 1;

        /* Backward-shift deletion (Knuth 6.4, Algorithm R): pull later
         * members of the cluster into the hole unless that would move them
         * before their home slot. */
        for (j = (i + 1) & mask; m->slots[j].key; j = (j + 1) & mask) {
                size_t home = m->slots[j].hash & mask;

                if (((j - home) & mask) >= ((j - i) & mask)) {
                        m->slots[i] = m->slots[j];
                        i = j;
                }
        }
        m->slots[i] = (struct slot){};
        m->size--;
        return value;
}

void hashmap_clear(struct hashmap *m)
{
        if (!m || !m->slots)
                return;
        memset(m->slots, 0, m->cap * sizeof(struct slot));
        m->size = 0;
}

bool hashmap_iterate(const struct hashmap *m, size_t *state, const char **ret_key, void **ret_value)
{
        if (!m)
                return false;
        for (size_t i = *state; i < m->cap; i++) {
                if (!m->slots[i].key)
                        continue;
                if (ret_key)
                        *ret_key = m->slots[i].key;
                if (ret_value)
                        *ret_value = m->slots[i].value;
                *state = i + 1;
                return true;
        }
        *state = m->cap;
        return false;
}
