/* SPDX-License-Identifier: Apache-2.0 */
#include "proxy/svcstats.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/macros.h"
#include "proxy/routes.h"

const uint64_t proxy_svc_duration_bounds_us[PROXY_SVC_DURATION_BUCKETS] = {
        100000,
        300000,
        1200000,
        5000000,
};

static const char *const method_names[_PROXY_METHOD_MAX] = {
        [PROXY_METHOD_OTHER] = "OTHER",     [PROXY_METHOD_GET] = "GET",
        [PROXY_METHOD_HEAD] = "HEAD",       [PROXY_METHOD_POST] = "POST",
        [PROXY_METHOD_PUT] = "PUT",         [PROXY_METHOD_DELETE] = "DELETE",
        [PROXY_METHOD_PATCH] = "PATCH",     [PROXY_METHOD_OPTIONS] = "OPTIONS",
        [PROXY_METHOD_CONNECT] = "CONNECT", [PROXY_METHOD_TRACE] = "TRACE",
};

const char *proxy_method_str(enum proxy_method m)
{
        return (unsigned)m < _PROXY_METHOD_MAX ? method_names[m] : NULL;
}

enum proxy_method proxy_method_from_token(const char *p, size_t n)
{
        assert(p || n == 0);
        for (unsigned i = PROXY_METHOD_GET; i < _PROXY_METHOD_MAX; i++)
                if (strlen(method_names[i]) == n && memcmp(p, method_names[i], n) == 0)
                        return i;
        return PROXY_METHOD_OTHER;
}

const char *proxy_svc_protocol_str(enum proxy_svc_protocol p)
{
        switch (p) {
        case PROXY_SVC_HTTP:
                return "http";
        case PROXY_SVC_WEBSOCKET:
                return "websocket";
        default:
                return NULL;
        }
}

const char *proxy_http_version_str(enum proxy_http_version v)
{
        switch (v) {
        case PROXY_HTTP_1_0:
                return "1.0";
        case PROXY_HTTP_1_1:
                return "1.1";
        case PROXY_HTTP_2:
                return "2";
        default:
                return NULL;
        }
}

/* A slot key: the status (10 bits), the method (4), the protocol (1) and a
 * bit that makes every key non-zero (0 is a free slot). */
#define KEY_VALID (1u << 15)

static uint64_t slot_key(unsigned status, enum proxy_method m, enum proxy_svc_protocol p)
{
        return (uint64_t)(KEY_VALID | status | (unsigned)m << 10 | (unsigned)p << 14)
               << PROXY_SVC_COUNT_BITS;
}

static struct proxy_svcstats *get_stats(struct proxy_counters *c)
{
        struct proxy_svcstats *s = atomic_load_explicit(&c->svc, memory_order_acquire), *want;

        if (s)
                return s;
        want = calloc(1, sizeof(*want));
        if (!want)
                return NULL;
        /* Two workers may race for the first request: one block wins. */
        if (atomic_compare_exchange_strong_explicit(&c->svc, &s, want, memory_order_acq_rel,
                                                    memory_order_acquire))
                return want;
        free(want);
        return s;
}

/* The slot of @key, claiming a free one; NULL when all are taken. Slots
 * are filled from the first, so the commonest keys are found first. */
static atomic_uint_least64_t *find_slot(struct proxy_svcstats *s, uint64_t key)
{
        for (size_t i = 0; i < PROXY_SVC_CODE_SLOTS; i++) {
                atomic_uint_least64_t *a = &s->code_slots[i];
                uint64_t v = atomic_load_explicit(a, memory_order_relaxed);

                if (v == 0) {
                        /* Claim it with a count of 0; the caller adds 1 like
                         * everybody else, so a lost race costs nothing. */
                        if (atomic_compare_exchange_strong_explicit(
                                    a, &v, key, memory_order_relaxed, memory_order_relaxed))
                                return a;
                }
                if ((v & ~PROXY_SVC_COUNT_MASK) == key)
                        return a;
        }
        return NULL;
}

int proxy_svcstats_add(struct proxy_counters *c, const struct proxy_request_info *ri)
{
        struct proxy_svcstats *s;
        enum proxy_svc_protocol p = ri->websocket ? PROXY_SVC_WEBSOCKET : PROXY_SVC_HTTP;
        enum proxy_method m =
                (unsigned)ri->method < _PROXY_METHOD_MAX ? ri->method : PROXY_METHOD_OTHER;
        unsigned status = ri->status <= 599 ? ri->status : 0;
        atomic_uint_least64_t *slot;
        size_t b = 0;

        assert(c && ri);
        s = get_stats(c);
        if (!s)
                return -ENOMEM;
        slot = find_slot(s, slot_key(status, m, p));
        if (slot)
                /* The count never reaches 2^48 (a million requests a second
                 * for nine years), so it never carries into the key. */
                atomic_fetch_add_explicit(slot, 1, memory_order_relaxed);
        else if (status >= 100)
                atomic_fetch_add_explicit(&s->overflow[status / 100 - 1][p], 1,
                                          memory_order_relaxed);
        else
                atomic_fetch_add_explicit(&s->no_status[p], 1, memory_order_relaxed);
        while (b < PROXY_SVC_DURATION_BUCKETS && ri->duration_us > proxy_svc_duration_bounds_us[b])
                b++;
        atomic_fetch_add_explicit(&s->duration[p][b], 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&s->duration_sum_us[p], ri->duration_us, memory_order_relaxed);
        if ((unsigned)ri->version < _PROXY_HTTP_VERSION_MAX)
                atomic_fetch_add_explicit(&s->version[ri->version], 1, memory_order_relaxed);
        return 0;
}

bool proxy_svcstats_read(struct proxy_counters *c, struct proxy_svcstats_values *ret)
{
        struct proxy_svcstats *s;
        size_t n = 0;

        assert(c && ret);
        s = atomic_load_explicit(&c->svc, memory_order_acquire);
        if (!s)
                return false;
        for (size_t i = 0; i < PROXY_SVC_CODE_SLOTS; i++) {
                uint64_t v = atomic_load_explicit(&s->code_slots[i], memory_order_relaxed);
                unsigned key = (unsigned)(v >> PROXY_SVC_COUNT_BITS);

                if (!(v & PROXY_SVC_COUNT_MASK))
                        continue;
                ret->codes[n++] = (struct proxy_svc_code_count){
                        .status = key & 0x3ffu,
                        .method = (key >> 10) & 0xfu,
                        .protocol = (key >> 14) & 1u,
                        .count = v & PROXY_SVC_COUNT_MASK,
                };
        }
        for (unsigned p = 0; p < _PROXY_SVC_PROTOCOL_MAX; p++) {
                for (unsigned k = 0; k <= 5; k++) {
                        uint64_t v =
                                atomic_load_explicit(k < 5 ? &s->overflow[k][p] : &s->no_status[p],
                                                     memory_order_relaxed);

                        if (!v)
                                continue;
                        ret->codes[n++] = (struct proxy_svc_code_count){
                                .status = k < 5 ? k + 1 : 0,
                                .overflow = true,
                                .method = PROXY_METHOD_OTHER,
                                .protocol = p,
                                .count = v,
                        };
                }
                for (size_t b = 0; b <= PROXY_SVC_DURATION_BUCKETS; b++)
                        ret->duration[p][b] =
                                atomic_load_explicit(&s->duration[p][b], memory_order_relaxed);
                ret->duration_sum_us[p] =
                        atomic_load_explicit(&s->duration_sum_us[p], memory_order_relaxed);
        }
        assert(n <= ELEMENTSOF(ret->codes));
        ret->n_codes = n;
        for (size_t v = 0; v < _PROXY_HTTP_VERSION_MAX; v++)
                ret->version[v] = atomic_load_explicit(&s->version[v], memory_order_relaxed);
        return true;
}

void proxy__svcstats_free(struct proxy_svcstats *s)
{
        free(s);
}
