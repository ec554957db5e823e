/* SPDX-License-Identifier: Apache-2.0 */
#include "proxy/routes.h"

#include <assert.h>
#include <errno.h>
#include <netinet/in.h>
#include <sched.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/macros.h"
#include "common/siphash.h"
#include "proxy/svcstats.h"
#include "proxy/tls.h"

/* ======================================================================
 * Design notes
 *
 * Why a persistent trie and not a copied hash table: with 100k routes a
 * flat open-addressing table is 2^18 slots x 8 B = 2 MiB per index, 4 MiB
 * for host + ID. Copying that per change measured 65-110 us best case
 * (test-routes, warm pages; ASan 1.6 ms), more when the copy faults in
 * fresh pages, and it grows linearly (1M routes: ~1 ms); every pinned old
 * snapshot keeps a whole copy alive. CHAMP copies only the root-to-leaf
 * path: at 100k routes ~4 nodes per index (root 32 slots, then ~32, ~3,
 * ~1), under 1 KiB, and a snapshot pinned by a long connection keeps only
 * its own path alive. Measured: one change (builder, put, commit, publish,
 * free) ~4 us at 100k routes. Lookup is ~4 dependent loads plus one key
 * compare.
 *
 * Node layout (CHAMP, Steindorfer & Vinju 2015): two 32-bit bitmaps per
 * node; slots[] holds the routes of datamap's bits in bit order, followed
 * by the subnodes of nodemap's bits. Each level uses 5 hash bits; the 13th
 * level (shift 60) uses the last 4. Keys whose 64-bit hashes are equal end
 * in a collision node (shift >= 64) that is a plain array. The hash is
 * SipHash-1-3 under a random key per table lineage, so workload owners who
 * choose names cannot build collision chains on purpose.
 *
 * Canonical form (kept by remove): a non-root node never holds a single
 * route and nothing else; such a node is inlined into its parent.
 *
 * Every slot owns one reference to what it points at (route or node). A
 * node's refcount counts the parents (in any snapshot or builder) that
 * point at it; nodes are freed by whichever thread drops the last
 * snapshot, hence atomic counts.
 * ====================================================================== */

#define BITS      5
#define FANOUT    (1u << BITS)
#define HASH_BITS 64

enum key_kind {
        KEY_HOST, /* stored lower-case; lookups fold ASCII case */
        KEY_ID,   /* exact bytes */
};

struct key {
        const char *s;
        size_t len;
        uint64_t hash;
};

struct node {
        atomic_uint n_ref;
        uint32_t datamap;      /* bit f: slots[] holds a route for hash fragment f */
        uint32_t nodemap;      /* bit f: slots[] holds a subnode for hash fragment f */
        uint32_t n_collisions; /* collision nodes only: number of routes; else 0 */
        uint64_t edit;         /* the builder edit that may change this node in place */
        void *slots[];         /* routes in datamap order, then subnodes in nodemap order */
};

struct proxy_routes {
        atomic_uint n_ref;
        uint64_t generation;
        uint64_t k0, k1; /* SipHash key of this lineage; fixed so snapshots can share nodes */
        size_t size;
        struct node *roots[2];             /* [KEY_HOST], [KEY_ID]; NULL when empty */
        struct proxy_routes *retired_next; /* table's retired list; publisher only */
};

struct proxy_routes_builder {
        uint64_t edit;            /* nodes carrying this value are ours alone */
        uint64_t base_generation; /* generation of the snapshot we build on */
        uint64_t k0, k1;
        size_t size;
        struct node *roots[2];
        int error; /* sticky -ENOMEM: the two indexes may disagree */
};

/* One reader-indicator stripe per cache line. A thread always uses the
 * same stripe; with up to READER_STRIPES threads each has its own. */
#define READER_STRIPES 64
#define CACHE_LINE     64
/* Pause iterations per busy stripe before publish gives up waiting and
 * leaves the old snapshot for a later reclaim (~10-40 us on x86). */
#define PUBLISH_SPIN 256

struct reader_stripe {
        alignas(CACHE_LINE) atomic_ulong n; /* threads of this stripe inside acquire */
};

struct proxy_route_table {
        alignas(CACHE_LINE) _Atomic(struct proxy_routes *) current; /* holds one reference */
        atomic_flag publishing;       /* catches concurrent publishers (a contract violation) */
        struct proxy_routes *retired; /* publisher only: replaced snapshots still holding the
                                       * table's reference, linked by retired_next */
        uint64_t retired_seen;        /* publisher only: stripes seen at 0 since the newest
                                       * retirement (bit i = readers[i]) */
        struct reader_stripe readers[READER_STRIPES];
};

#ifdef PROXY_ROUTES_TEST_HOOKS
/* tests/unit only: narrow the hash to force deep paths and collision nodes,
 * and widen the window between loading the pointer and taking the
 * reference in acquire, so a broken scheme fails under ASan/TSan. */
static uint64_t test_hash_mask = UINT64_MAX;
static void (*test_acquire_window)(void);
#endif

/* ---- hashing ---- */

/* SipHash-1-3 (common/siphash) over @len bytes, ASCII-folded if @casefold,
 * so a Host header can be hashed where it lies in the request buffer. */
static uint64_t hash_bytes(uint64_t k0, uint64_t k1, const char *s, size_t len, bool casefold)
{
        const struct siphash_key key = {k0, k1};
        uint64_t h = siphash13(&key, s, len, casefold);

#ifdef PROXY_ROUTES_TEST_HOOKS
        h &= test_hash_mask;
#endif
        return h;
}

static void random_key(uint64_t *k0, uint64_t *k1)
{
        struct siphash_key key;

        siphash_key_random(&key);
        *k0 = key.k0;
        *k1 = key.k1;
}

static struct key make_key(uint64_t k0, uint64_t k1, enum key_kind kind, const char *s, size_t len)
{
        return (struct key){
                .s = s,
                .len = len,
                .hash = hash_bytes(k0, k1, s, len, kind == KEY_HOST),
        };
}

static bool route_matches(const struct proxy_route *r, enum key_kind kind, const struct key *k)
{
        if (kind == KEY_ID)
                return r->id_len == k->len && memcmp(r->id, k->s, k->len) == 0;
        if (r->host_len != k->len)
                return false;
        /* r->host is lower-case already; fold only the probe. */
        for (size_t i = 0; i < k->len; i++)
                if ((unsigned char)r->host[i] != ascii_tolower((unsigned char)k->s[i]))
                        return false;
        return true;
}

static uint64_t route_hash(uint64_t k0, uint64_t k1, const struct proxy_route *r,
                           enum key_kind kind)
{
        if (kind == KEY_ID)
                return hash_bytes(k0, k1, r->id, r->id_len, false);
        return hash_bytes(k0, k1, r->host, r->host_len, false);
}

/* ---- counters ---- */

int proxy_counters_new(struct proxy_counters **ret)
{
        struct proxy_counters *c;

        assert(ret);
        c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        atomic_init(&c->n_ref, 1);
        *ret = c;
        return 0;
}

struct proxy_counters *proxy_counters_ref(struct proxy_counters *c)
{
        if (c)
                atomic_fetch_add_explicit(&c->n_ref, 1, memory_order_relaxed);
        return c;
}

struct proxy_counters *proxy_counters_unref(struct proxy_counters *c)
{
        if (c && atomic_fetch_sub_explicit(&c->n_ref, 1, memory_order_acq_rel) == 1) {
                proxy__svcstats_free(atomic_load_explicit(&c->svc, memory_order_relaxed));
                free(c);
        }
        return NULL;
}

void proxy_counters_add(struct proxy_counters *c, unsigned status, uint64_t request_bytes,
                        uint64_t response_bytes)
{
        assert(c);
        atomic_fetch_add_explicit(&c->requests, 1, memory_order_relaxed);
        if (request_bytes)
                atomic_fetch_add_explicit(&c->request_bytes, request_bytes, memory_order_relaxed);
        if (response_bytes)
                atomic_fetch_add_explicit(&c->response_bytes, response_bytes, memory_order_relaxed);
        if (status >= 100 && status <= 599)
                atomic_fetch_add_explicit(&c->status[status / 100 - 1], 1, memory_order_relaxed);
}

void proxy_counters_read(struct proxy_counters *c, struct proxy_counters_values *ret)
{
        assert(c && ret);
        ret->requests = atomic_load_explicit(&c->requests, memory_order_relaxed);
        ret->request_bytes = atomic_load_explicit(&c->request_bytes, memory_order_relaxed);
        ret->response_bytes = atomic_load_explicit(&c->response_bytes, memory_order_relaxed);
        for (size_t i = 0; i < ELEMENTSOF(ret->status); i++)
                ret->status[i] = atomic_load_explicit(&c->status[i], memory_order_relaxed);
        for (size_t i = 0; i < ELEMENTSOF(ret->backend_failures); i++)
                ret->backend_failures[i] =
                        atomic_load_explicit(&c->backend_failures[i], memory_order_relaxed);
}

void proxy_counters_batch_flush(struct proxy_counters_batch *b)
{
        assert(b);
        if (b->c && b->pending[0])
                atomic_fetch_add_explicit(&b->c->request_bytes, b->pending[0],
                                          memory_order_relaxed);
        if (b->c && b->pending[1])
                atomic_fetch_add_explicit(&b->c->response_bytes, b->pending[1],
                                          memory_order_relaxed);
        b->pending[0] = b->pending[1] = 0;
}

/* ---- backend health ---- */

const char *proxy_backend_failure_str(enum proxy_backend_failure f)
{
        switch (f) {
        case PROXY_BACKEND_FAIL_CONNECT:
                return "connect";
        case PROXY_BACKEND_FAIL_TIMEOUT:
                return "timeout";
        case PROXY_BACKEND_FAIL_RESET:
                return "reset";
        default:
                return NULL;
        }
}

int proxy_backend_health_new(struct proxy_backend_health **ret)
{
        struct proxy_backend_health *h;

        assert(ret);
        h = calloc(1, sizeof(*h));
        if (!h)
                return -ENOMEM;
        atomic_init(&h->n_ref, 1);
        *ret = h;
        return 0;
}

struct proxy_backend_health *proxy_backend_health_ref(struct proxy_backend_health *h)
{
        if (h)
                atomic_fetch_add_explicit(&h->n_ref, 1, memory_order_relaxed);
        return h;
}

struct proxy_backend_health *proxy_backend_health_unref(struct proxy_backend_health *h)
{
        if (h && atomic_fetch_sub_explicit(&h->n_ref, 1, memory_order_acq_rel) == 1)
                free(h);
        return NULL;
}

void proxy_backend_health_read(const struct proxy_backend_health *h,
                               struct proxy_backend_health_values *ret)
{
        unsigned e;

        assert(h && ret);
        e = atomic_load_explicit(&h->last_error, memory_order_relaxed);
        *ret = (struct proxy_backend_health_values){
                .down = atomic_load_explicit(&h->down, memory_order_relaxed),
                .has_error = e > 0 && e <= _PROXY_BACKEND_FAIL_MAX,
                .last_error = e > 0 ? (enum proxy_backend_failure)(e - 1) : 0,
                .last_errno = atomic_load_explicit(&h->last_errno, memory_order_relaxed),
                .since_ms = atomic_load_explicit(&h->since_ms, memory_order_relaxed),
                .last_error_ms = atomic_load_explicit(&h->last_error_ms, memory_order_relaxed),
        };
}

/* ---- routes ---- */

const char *proxy_route_mode_str(enum proxy_route_mode m)
{
        switch (m) {
        case PROXY_ROUTE_TERMINATE:
                return "terminate";
        case PROXY_ROUTE_PASSTHROUGH:
                return "passthrough";
        default:
                return NULL;
        }
}

struct proxy_route *proxy_route_ref(struct proxy_route *r)
{
        if (r)
                atomic_fetch_add_explicit(&r->n_ref, 1, memory_order_relaxed);
        return r;
}

struct proxy_route *proxy_route_unref(struct proxy_route *r)
{
        if (r && atomic_fetch_sub_explicit(&r->n_ref, 1, memory_order_acq_rel) == 1) {
                proxy_counters_unref(r->counters);
                proxy_cert_unref(r->cert);
                for (size_t i = 0; i < r->n_backends; i++)
                        proxy_backend_health_unref(r->backends[i].health);
                free(r);
        }
        return NULL;
}

/* Lower-case @host into @buf (PROXY_ROUTE_HOST_MAX + 1 bytes) without its
 * trailing dot and check it is a DNS name (LDH plus '_', labels 1..63, an
 * optional "*" first label). Returns the length or -EINVAL. */
static int normalize_host(const char *host, char *buf)
{
        size_t len, label = 0;

        if (!host)
                return -EINVAL;
        len = strnlen(host, PROXY_ROUTE_HOST_MAX + 2);
        if (len > 0 && host[len - 1] == '.')
                len--;
        if (len == 0 || len > PROXY_ROUTE_HOST_MAX)
                return -EINVAL;
        for (size_t i = 0; i < len; i++) {
                unsigned char c = ascii_tolower((unsigned char)host[i]);

                if (c == '.') {
                        if (label == 0)
                                return -EINVAL;
                        label = 0;
                } else if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
                           c == '_' || (c == '*' && i == 0 && len > 2 && host[1] == '.')) {
                        if (++label > PROXY_ROUTE_LABEL_MAX)
                                return -EINVAL;
                } else {
                        return -EINVAL;
                }
                buf[i] = (char)c;
        }
        if (label == 0) /* "a.com.." */
                return -EINVAL;
        buf[len] = 0;
        return (int)len;
}

static int validate_spec(const struct proxy_route_spec *spec, size_t *ret_id_len,
                         size_t *ret_netns_len, size_t *ret_text_len)
{
        size_t id_len, netns_len = 0, text_len = 0;

        if (!spec->id || (unsigned)spec->mode >= _PROXY_ROUTE_MODE_MAX)
                return -EINVAL;
        if (spec->cert && spec->mode != PROXY_ROUTE_TERMINATE)
                return -EINVAL;
        id_len = strnlen(spec->id, PROXY_ROUTE_ID_MAX + 1);
        if (id_len == 0 || id_len > PROXY_ROUTE_ID_MAX)
                return -EINVAL;
        if (spec->netns) {
                netns_len = strnlen(spec->netns, PROXY_ROUTE_NETNS_MAX + 1);
                if (spec->netns[0] != '/' || netns_len > PROXY_ROUTE_NETNS_MAX)
                        return -EINVAL;
        }
        if (spec->n_backends == 0 || spec->n_backends > PROXY_ROUTE_BACKENDS_MAX || !spec->backends)
                return -EINVAL;
        for (size_t i = 0; i < spec->n_backends; i++) {
                const struct proxy_backend *be = &spec->backends[i];
                size_t n;

                if (!((be->addr.ss_family == AF_INET &&
                       be->addr_len == sizeof(struct sockaddr_in)) ||
                      (be->addr.ss_family == AF_INET6 &&
                       be->addr_len == sizeof(struct sockaddr_in6))))
                        return -EINVAL;
                if (!be->text)
                        return -EINVAL;
                n = strnlen(be->text, PROXY_ROUTE_BACKEND_TEXT_MAX + 1);
                if (n == 0 || n > PROXY_ROUTE_BACKEND_TEXT_MAX)
                        return -EINVAL;
                text_len += n + 1;
        }
        *ret_id_len = id_len;
        *ret_netns_len = netns_len;
        *ret_text_len = text_len;
        return 0;
}

/* Does @r already say exactly what @spec says (for the normalised @host)? */
static bool route_equals_spec(const struct proxy_route *r, const struct proxy_route_spec *spec,
                              const char *host)
{
        if (r->mode != spec->mode || !streq(r->host, host) || !streq_ptr(r->netns, spec->netns) ||
            r->n_backends != spec->n_backends || r->cert != spec->cert ||
            (spec->counters && spec->counters != r->counters))
                return false;
        for (size_t i = 0; i < r->n_backends; i++) {
                const struct proxy_backend *a = &r->backends[i], *b = &spec->backends[i];

                if (a->addr_len != b->addr_len || memcmp(&a->addr, &b->addr, a->addr_len) != 0 ||
                    !streq(a->text, b->text))
                        return false;
        }
        return true;
}

/* The health block of @prev's backend with the address of @be, if @prev
 * dials in the same namespace; NULL otherwise. */
static struct proxy_backend_health *health_of(const struct proxy_route *prev,
                                              const struct proxy_route_spec *spec,
                                              const struct proxy_backend *be)
{
        if (!prev || !streq_ptr(prev->netns, spec->netns))
                return NULL;
        for (size_t i = 0; i < prev->n_backends; i++) {
                const struct proxy_backend *a = &prev->backends[i];

                if (a->addr_len == be->addr_len && memcmp(&a->addr, &be->addr, a->addr_len) == 0)
                        return a->health;
        }
        return NULL;
}

/* One allocation: the struct, the backends, then id, host, netns and
 * backend texts (the health blocks are their own: shared, or new). Takes
 * a new reference on @counters. */
static int route_new(const struct proxy_route_spec *spec, const char *host, size_t host_len,
                     size_t id_len, size_t netns_len, size_t text_len,
                     struct proxy_counters *counters, const struct proxy_route *prev,
                     uint64_t generation, struct proxy_route **ret)
{
        size_t n = spec->n_backends;
        size_t size = sizeof(struct proxy_route) + n * sizeof(struct proxy_backend) + id_len + 1 +
                      host_len + 1 + (spec->netns ? netns_len + 1 : 0) + text_len;
        struct proxy_route *r;
        char *p;

        r = malloc(size);
        if (!r)
                return -ENOMEM;
        atomic_init(&r->n_ref, 1);
        r->mode = spec->mode;
        r->generation = generation;
        r->counters = proxy_counters_ref(counters);
        r->cert = proxy_cert_ref(spec->cert);
        r->id_len = id_len;
        r->host_len = host_len;
        r->n_backends = n;
        atomic_init(&r->rr_next, 0);

        p = (char *)&r->backends[n];
        r->id = memcpy(p, spec->id, id_len + 1);
        p += id_len + 1;
        r->host = memcpy(p, host, host_len + 1);
        p += host_len + 1;
        r->netns = NULL;
        if (spec->netns) {
                r->netns = memcpy(p, spec->netns, netns_len + 1);
                p += netns_len + 1;
        }
        for (size_t i = 0; i < n; i++) {
                size_t l = strlen(spec->backends[i].text);

                memset(&r->backends[i].addr, 0, sizeof(r->backends[i].addr));
                memcpy(&r->backends[i].addr, &spec->backends[i].addr, spec->backends[i].addr_len);
                r->backends[i].addr_len = spec->backends[i].addr_len;
                r->backends[i].text = memcpy(p, spec->backends[i].text, l + 1);
                p += l + 1;
                r->backends[i].health =
                        proxy_backend_health_ref(health_of(prev, spec, &spec->backends[i]));
        }
        for (size_t i = 0; i < n; i++) {
                if (r->backends[i].health)
                        continue;
                if (proxy_backend_health_new(&r->backends[i].health) < 0) {
                        proxy_route_unref(r);
                        return -ENOMEM;
                }
        }
        *ret = r;
        return 0;
}

/* ======================================================================
 * The trie
 * ====================================================================== */

static inline unsigned frag(uint64_t hash, unsigned shift)
{
        return (unsigned)(hash >> shift) & (FANOUT - 1);
}

static inline unsigned n_data(const struct node *n)
{
        return n->n_collisions ? n->n_collisions : (unsigned)__builtin_popcount(n->datamap);
}

static inline unsigned n_slots(const struct node *n)
{
        return n_data(n) + (unsigned)__builtin_popcount(n->nodemap);
}

static inline unsigned below(uint32_t map, uint32_t bit)
{
        return (unsigned)__builtin_popcount(map & (bit - 1));
}

static struct node *node_alloc(size_t slots, uint64_t edit)
{
        struct node *n = malloc(sizeof(struct node) + slots * sizeof(void *));

        if (!n)
                return NULL;
        atomic_init(&n->n_ref, 1);
        n->datamap = n->nodemap = n->n_collisions = 0;
        n->edit = edit;
        return n;
}

static struct node *node_ref(struct node *n)
{
        if (n)
                atomic_fetch_add_explicit(&n->n_ref, 1, memory_order_relaxed);
        return n;
}

static void node_unref(struct node *n)
{
        unsigned d, s;

        if (!n || atomic_fetch_sub_explicit(&n->n_ref, 1, memory_order_acq_rel) != 1)
                return;
        d = n_data(n);
        s = n_slots(n);
        for (unsigned i = 0; i < d; i++)
                proxy_route_unref(n->slots[i]);
        /* Recursion depth is bounded by the trie height (<= 14). */
        for (unsigned i = d; i < s; i++)
                node_unref(n->slots[i]);
        free(n);
}

static struct proxy_route *node_find(const struct node *n, enum key_kind kind, const struct key *k)
{
        for (unsigned shift = 0; n; shift += BITS) {
                uint32_t bit;

                if (shift >= HASH_BITS) {
                        for (unsigned i = 0; i < n->n_collisions; i++)
                                if (route_matches(n->slots[i], kind, k))
                                        return n->slots[i];
                        return NULL;
                }
                bit = 1u << frag(k->hash, shift);
                if (n->datamap & bit) {
                        struct proxy_route *r = n->slots[below(n->datamap, bit)];

                        return route_matches(r, kind, k) ? r : NULL;
                }
                if (!(n->nodemap & bit))
                        return NULL;
                n = n->slots[n_data(n) + below(n->nodemap, bit)];
        }
        return NULL;
}

/* Make *np writable by @edit with room for @min_slots slots: in place if
 * the builder created it since its last commit, else as a private copy
 * (which takes a reference on every child and drops one on the original).
 * On failure *np is unchanged. */
static int node_own(struct node **np, uint64_t edit, size_t min_slots)
{
        struct node *n = *np, *c;
        unsigned used = n_slots(n);
        size_t want = MAX((size_t)used, min_slots);

        if (n->edit == edit) {
                if (min_slots <= used)
                        return 0;
                c = realloc(n, sizeof(struct node) + want * sizeof(void *));
                if (!c)
                        return -ENOMEM;
                *np = c;
                return 0;
        }
        c = node_alloc(want, edit);
        if (!c)
                return -ENOMEM;
        c->datamap = n->datamap;
        c->nodemap = n->nodemap;
        c->n_collisions = n->n_collisions;
        memcpy(c->slots, n->slots, used * sizeof(void *));
        for (unsigned i = 0, d = n_data(c); i < used; i++) {
                if (i < d)
                        proxy_route_ref(c->slots[i]);
                else
                        node_ref(c->slots[i]);
        }
        node_unref(n);
        *np = c;
        return 0;
}

/* A new subtrie holding @r1 and @r2 (different keys) from @shift down.
 * Takes references on both routes only on success. */
static struct node *node_merge(uint64_t edit, unsigned shift, struct proxy_route *r1, uint64_t h1,
                               struct proxy_route *r2, uint64_t h2)
{
        struct node *n, *sub;
        unsigned f1, f2;

        if (shift >= HASH_BITS) {
                n = node_alloc(2, edit);
                if (!n)
                        return NULL;
                n->n_collisions = 2;
                n->slots[0] = proxy_route_ref(r1);
                n->slots[1] = proxy_route_ref(r2);
                return n;
        }
        f1 = frag(h1, shift);
        f2 = frag(h2, shift);
        if (f1 == f2) {
                sub = node_merge(edit, shift + BITS, r1, h1, r2, h2);
                if (!sub)
                        return NULL;
                n = node_alloc(1, edit);
                if (!n) {
                        node_unref(sub);
                        return NULL;
                }
                n->nodemap = 1u << f1;
                n->slots[0] = sub;
                return n;
        }
        n = node_alloc(2, edit);
        if (!n)
                return NULL;
        n->datamap = (1u << f1) | (1u << f2);
        n->slots[f1 < f2 ? 0 : 1] = proxy_route_ref(r1);
        n->slots[f1 < f2 ? 1 : 0] = proxy_route_ref(r2);
        return n;
}

struct trie_op {
        uint64_t edit;
        uint64_t k0, k1;
        enum key_kind kind;
        const struct key *key;
};

/* Insert or replace @r under op->key in the subtrie *np (non-NULL) at
 * @shift. The trie takes its own reference on @r. On failure the subtrie
 * is still valid (possibly a private copy of the original). */
static int node_put(struct node **np, unsigned shift, const struct trie_op *op,
                    struct proxy_route *r)
{
        struct node *n = *np;
        uint32_t bit;
        unsigned d;
        int ret;

        if (shift >= HASH_BITS) {
                unsigned c = n->n_collisions;

                for (unsigned i = 0; i < c; i++)
                        if (route_matches(n->slots[i], op->kind, op->key)) {
                                ret = node_own(np, op->edit, 0);
                                if (ret < 0)
                                        return ret;
                                proxy_route_unref((*np)->slots[i]);
                                (*np)->slots[i] = proxy_route_ref(r);
                                return 0;
                        }
                ret = node_own(np, op->edit, c + 1);
                if (ret < 0)
                        return ret;
                (*np)->slots[c] = proxy_route_ref(r);
                (*np)->n_collisions = c + 1;
                return 0;
        }

        bit = 1u << frag(op->key->hash, shift);
        d = n_data(n);
        if (n->datamap & bit) {
                unsigned di = below(n->datamap, bit), ni = below(n->nodemap, bit);
                struct proxy_route *e = n->slots[di];
                struct node *sub;
                void **s;

                if (route_matches(e, op->kind, op->key)) {
                        ret = node_own(np, op->edit, 0);
                        if (ret < 0)
                                return ret;
                        proxy_route_unref((*np)->slots[di]);
                        (*np)->slots[di] = proxy_route_ref(r);
                        return 0;
                }
                /* Push the existing route and @r one level down. */
                ret = node_own(np, op->edit, 0);
                if (ret < 0)
                        return ret;
                sub = node_merge(op->edit, shift + BITS, e, route_hash(op->k0, op->k1, e, op->kind),
                                 r, op->key->hash);
                if (!sub)
                        return -ENOMEM;
                n = *np;
                s = n->slots;
                /* Drop data slot di (the merge holds its own ref on e), then
                 * insert the subnode at node index ni. Same slot count. */
                proxy_route_unref(s[di]);
                memmove(&s[di], &s[di + 1], (n_slots(n) - di - 1) * sizeof(void *));
                memmove(&s[d - 1 + ni + 1], &s[d - 1 + ni], (n_slots(n) - d - ni) * sizeof(void *));
                s[d - 1 + ni] = sub;
                n->datamap &= ~bit;
                n->nodemap |= bit;
                return 0;
        }
        if (n->nodemap & bit) {
                unsigned i = d + below(n->nodemap, bit);

                /* Own the parent first so the child's new address can be
                 * stored in it. */
                ret = node_own(np, op->edit, 0);
                if (ret < 0)
                        return ret;
                return node_put((struct node **)&(*np)->slots[i], shift + BITS, op, r);
        }

        /* A free fragment: a new data slot. */
        {
                unsigned used = n_slots(n), di = below(n->datamap, bit);
                void **s;

                ret = node_own(np, op->edit, used + 1);
                if (ret < 0)
                        return ret;
                n = *np;
                s = n->slots;
                memmove(&s[di + 1], &s[di], (used - di) * sizeof(void *));
                s[di] = proxy_route_ref(r);
                n->datamap |= bit;
                return 0;
        }
}

static bool node_is_single_route(const struct node *n)
{
        return n->nodemap == 0 && n_data(n) == 1;
}

/* Remove op->key, which must be present, from the subtrie *np at @shift.
 * On failure the subtrie is still valid and still holds the key. */
static int node_remove(struct node **np, unsigned shift, const struct trie_op *op)
{
        struct node *n;
        uint32_t bit;
        unsigned d, used;
        void **s;
        int ret;

        ret = node_own(np, op->edit, 0);
        if (ret < 0)
                return ret;
        n = *np;
        s = n->slots;
        used = n_slots(n);

        if (shift >= HASH_BITS) {
                for (unsigned i = 0; i < n->n_collisions; i++)
                        if (route_matches(s[i], op->kind, op->key)) {
                                proxy_route_unref(s[i]);
                                memmove(&s[i], &s[i + 1], (used - i - 1) * sizeof(void *));
                                n->n_collisions--;
                                return 0;
                        }
                assert(!"key not in collision node");
                return -ENOENT;
        }

        bit = 1u << frag(op->key->hash, shift);
        d = n_data(n);
        if (n->datamap & bit) {
                unsigned di = below(n->datamap, bit);

                assert(route_matches(s[di], op->kind, op->key));
                proxy_route_unref(s[di]);
                memmove(&s[di], &s[di + 1], (used - di - 1) * sizeof(void *));
                n->datamap &= ~bit;
                return 0;
        }

        assert(n->nodemap & bit);
        {
                unsigned ni = below(n->nodemap, bit), di = below(n->datamap, bit);
                struct node **cp = (struct node **)&s[d + ni];
                struct proxy_route *last;

                ret = node_remove(cp, shift + BITS, op);
                if (ret < 0)
                        return ret;
                if (!node_is_single_route(*cp))
                        return 0;
                /* Canonical form: inline the child's last route here. */
                last = proxy_route_ref((*cp)->slots[0]);
                node_unref(*cp);
                memmove(&s[d + ni], &s[d + ni + 1], (used - d - ni - 1) * sizeof(void *));
                memmove(&s[di + 1], &s[di], (used - 1 - di) * sizeof(void *));
                s[di] = last;
                n->nodemap &= ~bit;
                n->datamap |= bit;
                return 0;
        }
}

static int trie_put(struct node **root, const struct trie_op *op, struct proxy_route *r)
{
        if (!*root) {
                struct node *n = node_alloc(1, op->edit);

                if (!n)
                        return -ENOMEM;
                n->datamap = 1u << frag(op->key->hash, 0);
                n->slots[0] = proxy_route_ref(r);
                *root = n;
                return 0;
        }
        return node_put(root, 0, op, r);
}

static int trie_remove(struct node **root, const struct trie_op *op)
{
        int r;

        r = node_remove(root, 0, op);
        if (r < 0)
                return r;
        if (n_slots(*root) == 0) {
                node_unref(*root);
                *root = NULL;
        }
        return 0;
}

static int node_foreach(const struct node *n, int (*cb)(struct proxy_route *r, void *userdata),
                        void *userdata)
{
        unsigned d = n_data(n), s = n_slots(n);
        int r;

        for (unsigned i = 0; i < d; i++) {
                r = cb(n->slots[i], userdata);
                if (r != 0)
                        return r;
        }
        for (unsigned i = d; i < s; i++) {
                r = node_foreach(n->slots[i], cb, userdata);
                if (r != 0)
                        return r;
        }
        return 0;
}

/* ======================================================================
 * Snapshots
 * ====================================================================== */

struct proxy_routes *proxy_routes_ref(struct proxy_routes *s)
{
        if (s)
                atomic_fetch_add_explicit(&s->n_ref, 1, memory_order_relaxed);
        return s;
}

struct proxy_routes *proxy_routes_unref(struct proxy_routes *s)
{
        if (s && atomic_fetch_sub_explicit(&s->n_ref, 1, memory_order_acq_rel) == 1) {
                node_unref(s->roots[KEY_HOST]);
                node_unref(s->roots[KEY_ID]);
                free(s);
        }
        return NULL;
}

size_t proxy_routes_size(const struct proxy_routes *s)
{
        assert(s);
        return s->size;
}

uint64_t proxy_routes_generation(const struct proxy_routes *s)
{
        assert(s);
        return s->generation;
}

struct proxy_route *proxy_routes_lookup(const struct proxy_routes *s, const char *host, size_t len)
{
        struct key k;

        assert(s);
        if (!host)
                return NULL;
        if (len > 0 && host[len - 1] == '.')
                len--;
        /* A client cannot ask for a wildcard entry by name. */
        if (len == 0 || len > PROXY_ROUTE_HOST_MAX || host[0] == '*' || !s->roots[KEY_HOST])
                return NULL;
        k = make_key(s->k0, s->k1, KEY_HOST, host, len);
        return node_find(s->roots[KEY_HOST], KEY_HOST, &k);
}

struct proxy_route *proxy_routes_lookup_id(const struct proxy_routes *s, const char *id)
{
        struct key k;
        size_t len;

        assert(s);
        if (!id || !s->roots[KEY_ID])
                return NULL;
        len = strnlen(id, PROXY_ROUTE_ID_MAX + 1);
        if (len > PROXY_ROUTE_ID_MAX)
                return NULL;
        k = make_key(s->k0, s->k1, KEY_ID, id, len);
        return node_find(s->roots[KEY_ID], KEY_ID, &k);
}

bool proxy_route_still_current(const struct proxy_routes *s, const struct proxy_route *r)
{
        const struct proxy_route *now = proxy_routes_lookup_id(s, r->id);

        if (now == r)
                return true;
        return now && now->mode == r->mode && streq(now->host, r->host);
}

int proxy_host_wildcard(const char *host, size_t len, char *buf, size_t size)
{
        const char *dot;
        size_t plen;

        assert(host && buf);
        if (len > 0 && host[len - 1] == '.')
                len--;
        dot = memchr(host, '.', len);
        if (!dot || dot == host || (size_t)(dot - host) + 1 >= len)
                return -EINVAL;
        plen = len - (size_t)(dot - host) - 1;
        if (plen + 3 > size)
                return -ENOBUFS;
        buf[0] = '*';
        buf[1] = '.';
        for (size_t i = 0; i < plen; i++)
                buf[2 + i] = (char)ascii_tolower((unsigned char)dot[1 + i]);
        buf[2 + plen] = 0;
        return (int)(plen + 2);
}

struct proxy_route *proxy_routes_lookup_wildcard(const struct proxy_routes *s, const char *host,
                                                 size_t len)
{
        char buf[PROXY_ROUTE_HOST_MAX + 3];
        struct proxy_route *r;
        struct key k;
        int n;

        r = proxy_routes_lookup(s, host, len);
        if (r || !host || len == 0 || host[0] == '*' || !s->roots[KEY_HOST])
                return r;
        n = proxy_host_wildcard(host, len, buf, sizeof(buf));
        if (n < 0 || n > PROXY_ROUTE_HOST_MAX)
                return NULL;
        k = make_key(s->k0, s->k1, KEY_HOST, buf, (size_t)n);
        return node_find(s->roots[KEY_HOST], KEY_HOST, &k);
}

int proxy_routes_foreach(const struct proxy_routes *s,
                         int (*cb)(struct proxy_route *r, void *userdata), void *userdata)
{
        assert(s && cb);
        if (!s->roots[KEY_HOST])
                return 0;
        return node_foreach(s->roots[KEY_HOST], cb, userdata);
}

/* ======================================================================
 * Builder
 * ====================================================================== */

static uint64_t new_edit(void)
{
        static atomic_uint_least64_t next = 1;

        return atomic_fetch_add_explicit(&next, 1, memory_order_relaxed);
}

int proxy_routes_builder_new(const struct proxy_routes *base, struct proxy_routes_builder **ret)
{
        struct proxy_routes_builder *b;

        assert(ret);
        b = calloc(1, sizeof(*b));
        if (!b)
                return -ENOMEM;
        b->edit = new_edit();
        if (base) {
                b->base_generation = base->generation;
                b->k0 = base->k0;
                b->k1 = base->k1;
                b->size = base->size;
                b->roots[KEY_HOST] = node_ref(base->roots[KEY_HOST]);
                b->roots[KEY_ID] = node_ref(base->roots[KEY_ID]);
        } else {
                random_key(&b->k0, &b->k1);
        }
        *ret = b;
        return 0;
}

struct proxy_routes_builder *proxy_routes_builder_free(struct proxy_routes_builder *b)
{
        if (b) {
                node_unref(b->roots[KEY_HOST]);
                node_unref(b->roots[KEY_ID]);
                free(b);
        }
        return NULL;
}

size_t proxy_routes_builder_size(const struct proxy_routes_builder *b)
{
        assert(b);
        return b->size;
}

static struct trie_op builder_op(const struct proxy_routes_builder *b, enum key_kind kind,
                                 const struct key *k)
{
        return (struct trie_op){.edit = b->edit, .k0 = b->k0, .k1 = b->k1, .kind = kind, .key = k};
}

struct proxy_route *proxy_routes_builder_lookup(const struct proxy_routes_builder *b,
                                                const char *host)
{
        char buf[PROXY_ROUTE_HOST_MAX + 1];
        struct key k;
        int n;

        assert(b);
        n = normalize_host(host, buf);
        if (n < 0 || !b->roots[KEY_HOST])
                return NULL;
        k = make_key(b->k0, b->k1, KEY_HOST, buf, (size_t)n);
        return node_find(b->roots[KEY_HOST], KEY_HOST, &k);
}

/* Remove @r (present in both indexes) from the builder. */
static int builder_drop(struct proxy_routes_builder *b, struct proxy_route *r)
{
        _cleanup_(proxy_route_unrefp) _unused_ struct proxy_route *keep = proxy_route_ref(r);
        struct key hk = make_key(b->k0, b->k1, KEY_HOST, r->host, r->host_len);
        struct key ik = make_key(b->k0, b->k1, KEY_ID, r->id, r->id_len);
        struct trie_op hop = builder_op(b, KEY_HOST, &hk), iop = builder_op(b, KEY_ID, &ik);
        int ret;

        /* @keep: the tries may hold the only references; @r's strings are
         * the keys until both removals are done. */
        ret = trie_remove(&b->roots[KEY_HOST], &hop);
        if (ret < 0)
                return (b->error = ret);
        ret = trie_remove(&b->roots[KEY_ID], &iop);
        if (ret < 0)
                return (b->error = ret);
        b->size--;
        return 1;
}

int proxy_routes_builder_put(struct proxy_routes_builder *b, const struct proxy_route_spec *spec)
{
        _cleanup_(proxy_route_unrefp) struct proxy_route *r = NULL;
        _cleanup_(proxy_counters_unrefp) struct proxy_counters *fresh = NULL;
        struct proxy_route *by_host, *by_id;
        struct proxy_counters *counters;
        char host[PROXY_ROUTE_HOST_MAX + 1];
        size_t id_len, netns_len, text_len;
        struct key hk, ik;
        struct trie_op hop, iop;
        int host_len, ret;

        assert(b && spec);
        if (b->error)
                return b->error;
        host_len = normalize_host(spec->host, host);
        if (host_len < 0)
                return host_len;
        ret = validate_spec(spec, &id_len, &netns_len, &text_len);
        if (ret < 0)
                return ret;

        hk = make_key(b->k0, b->k1, KEY_HOST, host, (size_t)host_len);
        ik = make_key(b->k0, b->k1, KEY_ID, spec->id, id_len);
        by_host = b->roots[KEY_HOST] ? node_find(b->roots[KEY_HOST], KEY_HOST, &hk) : NULL;
        by_id = b->roots[KEY_ID] ? node_find(b->roots[KEY_ID], KEY_ID, &ik) : NULL;
        if (by_host && by_host != by_id)
                return -EEXIST;
        if (by_id && route_equals_spec(by_id, spec, host))
                return 2;

        counters = spec->counters ? spec->counters : by_id ? by_id->counters : NULL;
        if (!counters) {
                ret = proxy_counters_new(&fresh);
                if (ret < 0)
                        return ret;
                counters = fresh;
        }
        ret = route_new(spec, host, (size_t)host_len, id_len, netns_len, text_len, counters, by_id,
                        b->base_generation + 1, &r);
        if (ret < 0)
                return ret;

        /* From here on a failure leaves host and ID indexes disagreeing,
         * hence the poison. */
        if (by_id && !by_host) {
                /* Rename: the ID's old host goes away (size - 1, + 1 below). */
                ret = builder_drop(b, by_id);
                if (ret < 0)
                        return ret;
        }
        hop = builder_op(b, KEY_HOST, &hk);
        iop = builder_op(b, KEY_ID, &ik);
        ret = trie_put(&b->roots[KEY_HOST], &hop, r);
        if (ret < 0)
                return (b->error = ret);
        ret = trie_put(&b->roots[KEY_ID], &iop, r);
        if (ret < 0)
                return (b->error = ret);
        if (!by_host)
                b->size++;
        return by_id ? 1 : 0;
}

int proxy_routes_builder_remove_host(struct proxy_routes_builder *b, const char *host)
{
        struct proxy_route *r;

        assert(b);
        if (b->error)
                return b->error;
        r = proxy_routes_builder_lookup(b, host);
        if (!r)
                return 0;
        return builder_drop(b, r);
}

int proxy_routes_builder_remove_id(struct proxy_routes_builder *b, const char *id)
{
        struct proxy_route *r;
        struct key k;
        size_t len;

        assert(b);
        if (b->error)
                return b->error;
        if (!id || !b->roots[KEY_ID])
                return 0;
        len = strnlen(id, PROXY_ROUTE_ID_MAX + 1);
        if (len > PROXY_ROUTE_ID_MAX)
                return 0;
        k = make_key(b->k0, b->k1, KEY_ID, id, len);
        r = node_find(b->roots[KEY_ID], KEY_ID, &k);
        if (!r)
                return 0;
        return builder_drop(b, r);
}

int proxy_routes_builder_commit(struct proxy_routes_builder *b, struct proxy_routes **ret)
{
        struct proxy_routes *s;

        assert(b && ret);
        if (b->error)
                return b->error;
        s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        atomic_init(&s->n_ref, 1);
        s->generation = b->base_generation + 1;
        s->k0 = b->k0;
        s->k1 = b->k1;
        s->size = b->size;
        s->roots[KEY_HOST] = node_ref(b->roots[KEY_HOST]);
        s->roots[KEY_ID] = node_ref(b->roots[KEY_ID]);
        /* The snapshot now shares every node: from here on the builder must
         * copy before writing, which a fresh edit value guarantees. */
        b->edit = new_edit();
        b->base_generation = s->generation;
        *ret = s;
        return 0;
}

/* ======================================================================
 * The published table
 *
 * The race to avoid: a reader loads t->current, the publisher swaps the
 * pointer and drops the table's reference (the last one), the snapshot is
 * freed, and the reader increments a refcount in freed memory. Readers
 * therefore announce themselves in a per-thread stripe counter around the
 * load-and-ref (a reader indicator, as in BRAVO or Linux's
 * percpu-rwsem), and the publisher, after swapping, drops the old
 * snapshot's table reference only once it has seen every stripe at zero.
 *
 * Why that suffices (all four operations below are seq_cst, so they lie in
 * one total order S):
 *   reader R:  (1) stripe += 1   (2) p = current   (3) ref(p)   (4) stripe -= 1
 *   publisher: (a) current = new (b) read each stripe until 0   (c) unref(old)
 * Suppose R read the old pointer in (2). Then (2) precedes (a) in S, so
 * (1) precedes (b)'s load of R's stripe, and that load reads a value of the
 * stripe's modification order at or after (1). All stripe updates are
 * read-modify-writes, so a read of 0 at or after (1) must include (4) (if
 * it did not, R's +1 would be counted without its -1 and the value would be
 * >= 1). The load thus reads from the release sequence headed by (4) and
 * synchronises with it: (3) happens before (c), so the table's reference is
 * still there when R increments, and R's reference keeps the snapshot
 * alive afterwards. A reader whose (1) comes after (b)'s load of its stripe
 * has its (2) after (a) in S and reads the new pointer.
 * Any other reference holder cannot drop the count to 0 first, because
 * the table's own reference is released only in (c).
 *
 * (b) only has to see each stripe at zero once, at some time after (a):
 * each stripe is checked on its own, not as a consistent sum, so continuous
 * acquires cannot starve the publisher (a stripe used by one thread is zero
 * between two of its acquires). Readers stay inside (1)-(4) for a handful of
 * instructions, so publish normally sees every stripe at zero at once and
 * drops the old snapshot before returning. A reader preempted inside
 * (1)-(4) would make that wait last its time slice (measured: up to ~10 ms
 * with more busy threads than CPUs), so publish never blocks: it spins a
 * little per stripe, and otherwise keeps the old snapshot on a retired list
 * that the next publish or proxy_route_table_reclaim() finishes. The
 * snapshot is already invisible to new acquires either way; only its memory
 * is released later.
 * ====================================================================== */

static unsigned reader_stripe(void)
{
        static atomic_uint next;
        static _Thread_local unsigned mine; /* stripe + 1; 0 until first use */

        if (_unlikely_(mine == 0))
                mine = atomic_fetch_add_explicit(&next, 1, memory_order_relaxed) % READER_STRIPES +
                       1;
        return mine - 1;
}

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
        __builtin_ia32_pause();
#elif defined(__aarch64__)
        __asm__ __volatile__("yield");
#endif
}

int proxy_route_table_new(struct proxy_route_table **ret)
{
        struct proxy_route_table *t;
        struct proxy_routes *empty;

        assert(ret);
        empty = calloc(1, sizeof(*empty));
        if (!empty)
                return -ENOMEM;
        atomic_init(&empty->n_ref, 1);
        random_key(&empty->k0, &empty->k1);

        t = aligned_alloc(alignof(struct proxy_route_table), sizeof(*t));
        if (!t) {
                free(empty);
                return -ENOMEM;
        }
        atomic_init(&t->current, empty);
        atomic_flag_clear(&t->publishing);
        t->retired = NULL;
        t->retired_seen = 0;
        for (size_t i = 0; i < READER_STRIPES; i++)
                atomic_init(&t->readers[i].n, 0);
        *ret = t;
        return 0;
}

struct proxy_route_table *proxy_route_table_free(struct proxy_route_table *t)
{
        if (t) {
                /* No readers are left, so nothing needs to be waited for. */
                while (t->retired) {
                        struct proxy_routes *r = t->retired;

                        t->retired = r->retired_next;
                        proxy_routes_unref(r);
                }
                proxy_routes_unref(atomic_load_explicit(&t->current, memory_order_acquire));
                free(t);
        }
        return NULL;
}

struct proxy_routes *proxy_routes_acquire(struct proxy_route_table *t)
{
        atomic_ulong *stripe = &t->readers[reader_stripe()].n;
        struct proxy_routes *s;

        atomic_fetch_add_explicit(stripe, 1, memory_order_seq_cst);  /* (1) */
        s = atomic_load_explicit(&t->current, memory_order_seq_cst); /* (2) */
#ifdef PROXY_ROUTES_TEST_HOOKS
        if (test_acquire_window)
                test_acquire_window();
#endif
        atomic_fetch_add_explicit(&s->n_ref, 1, memory_order_relaxed); /* (3) */
        atomic_fetch_sub_explicit(stripe, 1, memory_order_seq_cst);    /* (4) */
        return s;
}

struct proxy_routes *proxy_routes_refresh(struct proxy_route_table *t, struct proxy_routes **cache)
{
        assert(t && cache);
        /* No ABA: *cache is held, so no other snapshot can have its address. */
        if (*cache && atomic_load_explicit(&t->current, memory_order_acquire) == *cache)
                return *cache;
        proxy_routes_unref(*cache);
        *cache = proxy_routes_acquire(t);
        return *cache;
}

/* (b) and (c): look at every stripe not yet seen at zero since the newest
 * retirement, spinning up to @spin times on each; once all have been seen
 * at zero, drop the table's reference on every retired snapshot (a stripe
 * seen at zero after the newest exchange was also seen after the older
 * ones). Returns how many snapshots remain retired. */
static size_t reclaim(struct proxy_route_table *t, unsigned spin)
{
        const uint64_t all =
                READER_STRIPES == 64 ? UINT64_MAX : (UINT64_C(1) << READER_STRIPES) - 1;
        size_t n = 0;

        if (!t->retired)
                return 0;
        for (size_t i = 0; i < READER_STRIPES; i++) {
                uint64_t bit = UINT64_C(1) << i;

                if (t->retired_seen & bit)
                        continue;
                for (unsigned k = 0;; k++) {
                        if (atomic_load_explicit(&t->readers[i].n, memory_order_seq_cst) == 0) {
                                t->retired_seen |= bit;
                                break;
                        }
                        if (k >= spin)
                                break;
                        cpu_relax();
                }
        }
        if (t->retired_seen != all) {
                for (struct proxy_routes *r = t->retired; r; r = r->retired_next)
                        n++;
                return n;
        }
        while (t->retired) {
                struct proxy_routes *r = t->retired;

                t->retired = r->retired_next;
                proxy_routes_unref(r); /* (c) */
        }
        t->retired_seen = 0;
        return 0;
}

size_t proxy_route_table_reclaim(struct proxy_route_table *t)
{
        size_t n;

        assert(t);
        if (atomic_flag_test_and_set_explicit(&t->publishing, memory_order_acquire))
                assert(!"proxy_route_table_reclaim() concurrent with a publish");
        n = reclaim(t, 0);
        atomic_flag_clear_explicit(&t->publishing, memory_order_release);
        return n;
}

int proxy_route_table_publish(struct proxy_route_table *t, struct proxy_routes *s)
{
        struct proxy_routes *old;

        assert(t && s);
        /* A second concurrent publisher is a bug in the caller. */
        if (atomic_flag_test_and_set_explicit(&t->publishing, memory_order_acquire))
                assert(!"concurrent proxy_route_table_publish()");

        /* Only publishers write t->current, so this load cannot race. */
        old = atomic_load_explicit(&t->current, memory_order_relaxed);
        if (s->generation != old->generation + 1) {
                atomic_flag_clear_explicit(&t->publishing, memory_order_release);
                return -ESTALE;
        }

        proxy_routes_ref(s);
        atomic_exchange_explicit(&t->current, s, memory_order_seq_cst); /* (a) */
        old->retired_next = t->retired;
        t->retired = old;
        /* Earlier observations predate this exchange: start over. */
        t->retired_seen = 0;
        reclaim(t, PUBLISH_SPIN);

        atomic_flag_clear_explicit(&t->publishing, memory_order_release);
        return 0;
}
