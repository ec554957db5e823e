/* SPDX-License-Identifier: Apache-2.0 */
/* Tests for the per-service request statistics: exact counts by code,
 * method and protocol, the bounded slot table and its overflow buckets,
 * the duration buckets' edges, versions, concurrent adders, and a printed
 * (not asserted) measurement of the memory per route. */
#include <malloc.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "common/macros.h"
#include "proxy/routes.h"
#include "proxy/svcstats.h"

#define note(...) printf("# " __VA_ARGS__)

static struct proxy_request_info req(unsigned status, enum proxy_method m, bool ws, uint64_t us)
{
        return (struct proxy_request_info){
                .status = status,
                .method = m,
                .version = PROXY_HTTP_1_1,
                .websocket = ws,
                .duration_us = us,
        };
}

/* The count of the exact series (status, method, protocol, overflow). */
static uint64_t find(const struct proxy_svcstats_values *v, unsigned status, enum proxy_method m,
                     enum proxy_svc_protocol p, bool overflow)
{
        for (size_t i = 0; i < v->n_codes; i++)
                if (v->codes[i].status == status && v->codes[i].method == m &&
                    v->codes[i].protocol == p && v->codes[i].overflow == overflow)
                        return v->codes[i].count;
        return 0;
}

static uint64_t total(const struct proxy_svcstats_values *v)
{
        uint64_t n = 0;

        for (size_t i = 0; i < v->n_codes; i++)
                n += v->codes[i].count;
        return n;
}

static void test_names(void **state)
{
        (void)state;
        assert_string_equal(proxy_method_str(PROXY_METHOD_PATCH), "PATCH");
        assert_string_equal(proxy_method_str(PROXY_METHOD_OTHER), "OTHER");
        assert_null(proxy_method_str(_PROXY_METHOD_MAX));
        assert_int_equal(proxy_method_from_token("OPTIONS", 7), PROXY_METHOD_OPTIONS);
        assert_int_equal(proxy_method_from_token("TRACE", 5), PROXY_METHOD_TRACE);
        assert_int_equal(proxy_method_from_token("get", 3), PROXY_METHOD_OTHER);
        assert_int_equal(proxy_method_from_token("GETX", 4), PROXY_METHOD_OTHER);
        assert_int_equal(proxy_method_from_token("GE", 2), PROXY_METHOD_OTHER);
        assert_int_equal(proxy_method_from_token(NULL, 0), PROXY_METHOD_OTHER);
        assert_string_equal(proxy_http_version_str(PROXY_HTTP_1_0), "1.0");
        assert_string_equal(proxy_http_version_str(PROXY_HTTP_2), "2");
        assert_string_equal(proxy_svc_protocol_str(PROXY_SVC_WEBSOCKET), "websocket");
}

static void test_exact(void **state)
{
        _cleanup_(proxy_counters_unrefp) struct proxy_counters *c = NULL;
        struct proxy_svcstats_values v;
        struct proxy_request_info ri;

        (void)state;
        assert_int_equal(proxy_counters_new(&c), 0);
        assert_false(proxy_svcstats_read(c, &v)); /* nothing allocated yet */
        assert_null(c->svc);
        for (int i = 0; i < 3; i++)
                assert_int_equal(proxy_svcstats_add(c,
                                                    &(struct proxy_request_info){
                                                            .status = 200,
                                                            .method = PROXY_METHOD_GET,
                                                            .version = PROXY_HTTP_1_1,
                                                            .duration_us = 1000,
                                                    }),
                                 0);
        ri = req(404, PROXY_METHOD_POST, false, 250000);
        ri.version = PROXY_HTTP_1_0;
        assert_int_equal(proxy_svcstats_add(c, &ri), 0);
        ri = req(101, PROXY_METHOD_GET, true, 7000000);
        ri.version = PROXY_HTTP_2;
        assert_int_equal(proxy_svcstats_add(c, &ri), 0);
        ri = req(0, PROXY_METHOD_OTHER, false, 5);
        assert_int_equal(proxy_svcstats_add(c, &ri), 0);
        ri = req(200, 99, false, 0); /* an out-of-range method counts as OTHER */
        assert_int_equal(proxy_svcstats_add(c, &ri), 0);

        assert_true(proxy_svcstats_read(c, &v));
        assert_int_equal(v.n_codes, 5);
        assert_int_equal(find(&v, 200, PROXY_METHOD_GET, PROXY_SVC_HTTP, false), 3);
        assert_int_equal(find(&v, 404, PROXY_METHOD_POST, PROXY_SVC_HTTP, false), 1);
        assert_int_equal(find(&v, 101, PROXY_METHOD_GET, PROXY_SVC_WEBSOCKET, false), 1);
        assert_int_equal(find(&v, 0, PROXY_METHOD_OTHER, PROXY_SVC_HTTP, false), 1);
        assert_int_equal(find(&v, 200, PROXY_METHOD_OTHER, PROXY_SVC_HTTP, false), 1);
        assert_int_equal(v.version[PROXY_HTTP_1_0], 1);
        assert_int_equal(v.version[PROXY_HTTP_1_1], 5);
        assert_int_equal(v.version[PROXY_HTTP_2], 1);
        /* 1000 µs x3, 5 µs, 0 µs -> (0, 0.1]; 0.25 s -> (0.1, 0.3]; 7 s -> +Inf (websocket). */
        assert_int_equal(v.duration[PROXY_SVC_HTTP][0], 5);
        assert_int_equal(v.duration[PROXY_SVC_HTTP][1], 1);
        assert_int_equal(v.duration[PROXY_SVC_HTTP][4], 0);
        assert_int_equal(v.duration[PROXY_SVC_WEBSOCKET][4], 1);
        assert_int_equal(v.duration_sum_us[PROXY_SVC_HTTP], 3000 + 250000 + 5);
        assert_int_equal(v.duration_sum_us[PROXY_SVC_WEBSOCKET], 7000000);
}

static void test_bucket_edges(void **state)
{
        _cleanup_(proxy_counters_unrefp) struct proxy_counters *c = NULL;
        struct proxy_svcstats_values v;
        /* An upper bound is inclusive (Prometheus: le). */
        static const uint64_t us[] = {100000,  100001,  300000,  300001,        1200000,
                                      1200001, 5000000, 5000001, UINT64_MAX / 4};
        static const uint64_t want[5] = {1, 2, 2, 2, 2};

        (void)state;
        assert_int_equal(proxy_counters_new(&c), 0);
        for (size_t i = 0; i < sizeof(us) / sizeof(us[0]); i++) {
                struct proxy_request_info ri = req(200, PROXY_METHOD_GET, false, us[i]);

                assert_int_equal(proxy_svcstats_add(c, &ri), 0);
        }
        assert_true(proxy_svcstats_read(c, &v));
        for (size_t b = 0; b <= PROXY_SVC_DURATION_BUCKETS; b++)
                assert_int_equal(v.duration[PROXY_SVC_HTTP][b], want[b]);
}

/* More distinct keys than slots: the first 16 keys keep exact series, the
 * rest count by status class and protocol; nothing is lost. */
static void test_overflow_bounded(void **state)
{
        _cleanup_(proxy_counters_unrefp) struct proxy_counters *c = NULL;
        struct proxy_svcstats_values v;
        uint64_t n = 0;

        (void)state;
        assert_int_equal(proxy_counters_new(&c), 0);
        for (unsigned status = 100; status <= 599; status++)
                for (unsigned m = 0; m < _PROXY_METHOD_MAX; m++)
                        for (int ws = 0; ws < 2; ws++) {
                                struct proxy_request_info ri = req(status, m, ws, 1);

                                assert_int_equal(proxy_svcstats_add(c, &ri), 0);
                                n++;
                        }
        for (int i = 0; i < 3; i++) {
                struct proxy_request_info ri = req(0, PROXY_METHOD_GET, false, 1);

                assert_int_equal(proxy_svcstats_add(c, &ri), 0);
                n++;
        }
        assert_true(proxy_svcstats_read(c, &v));
        assert_int_equal(total(&v), n);
        assert_true(v.n_codes <= PROXY_SVC_CODE_SLOTS + 12);
        /* The first keys: 100 with OTHER, GET, ... in order, http then websocket. */
        assert_int_equal(find(&v, 100, PROXY_METHOD_OTHER, PROXY_SVC_HTTP, false), 1);
        assert_int_equal(find(&v, 100, PROXY_METHOD_GET, PROXY_SVC_WEBSOCKET, false), 1);
        /* 5xx: 100 codes x 10 methods per protocol, all in the overflow. */
        assert_int_equal(find(&v, 5, PROXY_METHOD_OTHER, PROXY_SVC_HTTP, true), 1000);
        assert_int_equal(find(&v, 5, PROXY_METHOD_OTHER, PROXY_SVC_WEBSOCKET, true), 1000);
        assert_int_equal(find(&v, 0, PROXY_METHOD_OTHER, PROXY_SVC_HTTP, true), 3);
        assert_int_equal(v.version[PROXY_HTTP_1_1], n);
}

struct thread_arg {
        struct proxy_counters *c;
        unsigned seed;
};

#define THREADS     4
#define PER_THREAD  50000
#define THREAD_KEYS 12

static void *adder(void *p)
{
        struct thread_arg *a = p;

        for (unsigned i = 0; i < PER_THREAD; i++) {
                unsigned k = (i + a->seed) % THREAD_KEYS;
                struct proxy_request_info ri = req(200 + k, PROXY_METHOD_GET, false, k * 100000);

                assert_int_equal(proxy_svcstats_add(a->c, &ri), 0);
        }
        return NULL;
}

/* Concurrent first requests race for the block and for free slots: one
 * block, one slot per key, exact totals. */
static void test_threads(void **state)
{
        for (int round = 0; round < 20; round++) {
                _cleanup_(proxy_counters_unrefp) struct proxy_counters *c = NULL;
                struct thread_arg args[THREADS];
                pthread_t t[THREADS];
                struct proxy_svcstats_values v;

                (void)state;
                assert_int_equal(proxy_counters_new(&c), 0);
                for (unsigned i = 0; i < THREADS; i++) {
                        args[i] = (struct thread_arg){c, i * 5};
                        assert_int_equal(pthread_create(&t[i], NULL, adder, &args[i]), 0);
                }
                for (unsigned i = 0; i < THREADS; i++)
                        assert_int_equal(pthread_join(t[i], NULL), 0);
                assert_true(proxy_svcstats_read(c, &v));
                assert_int_equal(v.n_codes, THREAD_KEYS);
                assert_int_equal(total(&v), THREADS * PER_THREAD);
                for (unsigned k = 0; k < THREAD_KEYS; k++)
                        assert_true(find(&v, 200 + k, PROXY_METHOD_GET, PROXY_SVC_HTTP, false) > 0);
        }
}

/* Heap per workload's counters block, without and with HTTP traffic. */
static void test_memory(void **state)
{
        enum { N = 10000 };
        struct proxy_counters **cs = calloc(N, sizeof(*cs));
        struct mallinfo2 m0, m1, m2;

        (void)state;
        assert_non_null(cs);
        m0 = mallinfo2();
        for (size_t i = 0; i < N; i++)
                assert_int_equal(proxy_counters_new(&cs[i]), 0);
        m1 = mallinfo2();
        for (size_t i = 0; i < N; i++) {
                struct proxy_request_info ri = req(200, PROXY_METHOD_GET, false, 1);

                assert_int_equal(proxy_svcstats_add(cs[i], &ri), 0);
        }
        m2 = mallinfo2();
        note("counters block: sizeof %zu B, heap %.0f B per workload; statistics: sizeof %zu B, "
             "heap %.0f B more per workload with HTTP traffic (%d workloads)\n",
             sizeof(struct proxy_counters), (double)(m1.uordblks - m0.uordblks) / N,
             sizeof(struct proxy_svcstats), (double)(m2.uordblks - m1.uordblks) / N, N);
        for (size_t i = 0; i < N; i++)
                proxy_counters_unref(cs[i]);
        free(cs);
}

/* CPU per counted request, one thread (printed, not asserted). */
static void test_cost(void **state)
{
        _cleanup_(proxy_counters_unrefp) struct proxy_counters *c = NULL;
        enum { N = 2000000 };
        struct timespec t0, t1;
        double ns;

        (void)state;
        assert_int_equal(proxy_counters_new(&c), 0);
        clock_gettime(CLOCK_MONOTONIC, &t0);
        for (unsigned i = 0; i < N; i++) {
                struct proxy_request_info ri =
                        req(i % 8 ? 200 : 404, PROXY_METHOD_GET, false, i % 1000 * 1000);

                proxy_svcstats_add(c, &ri);
        }
        clock_gettime(CLOCK_MONOTONIC, &t1);
        ns = ((double)(t1.tv_sec - t0.tv_sec) * 1e9 + (double)(t1.tv_nsec - t0.tv_nsec)) / N;
        note("proxy_svcstats_add: %.1f ns per request (%d requests, 2 keys)\n", ns, N);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_names),        cmocka_unit_test(test_exact),
                cmocka_unit_test(test_bucket_edges), cmocka_unit_test(test_overflow_bounded),
                cmocka_unit_test(test_threads),      cmocka_unit_test(test_memory),
                cmocka_unit_test(test_cost),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
