/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for proxy/climits.c: the per-client connection table. */

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/macros.h"
#include "proxy/climits.h"

#define SEC 1000000ull

static struct sockaddr_storage v4(const char *s)
{
        struct sockaddr_storage ss = {0};
        struct sockaddr_in *in = (struct sockaddr_in *)&ss;

        in->sin_family = AF_INET;
        assert_int_equal(inet_pton(AF_INET, s, &in->sin_addr), 1);
        return ss;
}

static struct sockaddr_storage v6(const char *s)
{
        struct sockaddr_storage ss = {0};
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;

        in6->sin6_family = AF_INET6;
        assert_int_equal(inet_pton(AF_INET6, s, &in6->sin6_addr), 1);
        return ss;
}

static void test_keys(void **state)
{
        struct sockaddr_storage a = v4("203.0.113.7"), b = v6("::ffff:203.0.113.7"),
                                c = v6("2001:db8:1:2:aaaa::1"), d = v6("2001:db8:1:2:bbbb::9"),
                                e = v6("2001:db8:1:3::1");
        uint8_t ka[16], kb[16], kc[16], kd[16], ke[16];
        struct sockaddr_storage unix_peer = {.ss_family = AF_UNIX};

        assert_true(climit_key(&a, ka));
        assert_true(climit_key(&b, kb));
        assert_true(climit_key(&c, kc));
        assert_true(climit_key(&d, kd));
        assert_true(climit_key(&e, ke));
        /* IPv4, native or mapped on a dual-stack listener: the same client. */
        assert_memory_equal(ka, kb, 16);
        /* IPv6: one /64 is one client. */
        assert_memory_equal(kc, kd, 16);
        assert_memory_not_equal(kc, ke, 16);
        assert_memory_not_equal(ka, kc, 16);
        assert_false(climit_key(&unix_peer, ka));
}

static void test_per_client_per_port(void **state)
{
        struct climits t;
        struct sockaddr_storage a = v4("198.51.100.1"), a6 = v6("::ffff:198.51.100.1"),
                                b = v4("198.51.100.2"), p1 = v6("2001:db8::1"),
                                p2 = v6("2001:db8::ffff:2");
        uint32_t h[3], hb, hx, hp;

        assert_int_equal(climits_init(&t, 100, 2, CLIMIT_OFF), 0);
        assert_int_equal(climits_admit(&t, &a, CLIMIT_HTTP, SEC, &h[0]), CLIMIT_ADMIT);
        assert_int_equal(climits_admit(&t, &a6, CLIMIT_HTTP, SEC, &h[1]), CLIMIT_ADMIT);
        assert_int_not_equal(h[0], 0);
        /* The third from the same address on :80 is refused... */
        assert_int_equal(climits_admit(&t, &a, CLIMIT_HTTP, SEC, &hx), CLIMIT_PER_CLIENT);
        assert_int_equal(atomic_load(&t.total), 2);
        /* ... not on :443, nor from another address. */
        assert_int_equal(climits_admit(&t, &a, CLIMIT_HTTPS, SEC, &h[2]), CLIMIT_ADMIT);
        assert_int_equal(climits_admit(&t, &b, CLIMIT_HTTP, SEC, &hb), CLIMIT_ADMIT);
        /* One gone: room again. */
        climits_release(&t, h[0]);
        assert_int_equal(climits_admit(&t, &a, CLIMIT_HTTP, SEC, &h[0]), CLIMIT_ADMIT);
        /* IPv6 by /64. */
        assert_int_equal(climits_admit(&t, &p1, CLIMIT_HTTP, SEC, &hp), CLIMIT_ADMIT);
        assert_int_equal(climits_admit(&t, &p2, CLIMIT_HTTP, SEC, &hx), CLIMIT_ADMIT);
        assert_int_equal(climits_admit(&t, &p2, CLIMIT_HTTP, SEC, &hx), CLIMIT_PER_CLIENT);
        /* Off live: no per-client cap. */
        climits_set(&t, 100, CLIMIT_OFF, CLIMIT_OFF);
        assert_int_equal(climits_admit(&t, &a, CLIMIT_HTTP, SEC, &hx), CLIMIT_ADMIT);
        assert_int_equal(atomic_load(&t.total), 7);
        climits_done(&t);
}

static void test_rate(void **state)
{
        struct climits t;
        struct sockaddr_storage a = v4("198.51.100.1"), b = v4("198.51.100.2");
        uint32_t h;
        uint64_t now = 10 * SEC;

        assert_int_equal(climits_init(&t, 1000, CLIMIT_OFF, 10), 0);
        /* A burst of one second's worth... */
        for (unsigned i = 0; i < 10; i++) {
                assert_int_equal(climits_admit(&t, &a, CLIMIT_HTTPS, now, &h), CLIMIT_ADMIT);
                climits_release(&t, h);
        }
        /* ... then the rate: refused until 100 ms of credit came back. */
        assert_int_equal(climits_admit(&t, &a, CLIMIT_HTTPS, now, &h), CLIMIT_RATE);
        assert_int_equal(climits_admit(&t, &a, CLIMIT_HTTP, now + SEC / 20, &h), CLIMIT_RATE);
        assert_int_equal(climits_admit(&t, &b, CLIMIT_HTTP, now, &h), CLIMIT_ADMIT);
        climits_release(&t, h);
        assert_int_equal(climits_admit(&t, &a, CLIMIT_HTTP, now + SEC / 10, &h), CLIMIT_ADMIT);
        climits_release(&t, h);
        /* A steady 10/s passes forever. */
        for (unsigned i = 2; i < 100; i++) {
                assert_int_equal(climits_admit(&t, &a, CLIMIT_HTTP, now + i * SEC / 10, &h),
                                 CLIMIT_ADMIT);
                climits_release(&t, h);
        }
        assert_int_equal(atomic_load(&t.total), 0);
        climits_done(&t);
}

static void test_total(void **state)
{
        struct climits t;
        struct sockaddr_storage a = v4("198.51.100.1"), b = v4("198.51.100.2");
        uint32_t h[3];

        assert_int_equal(climits_init(&t, 2, CLIMIT_OFF, CLIMIT_OFF), 0);
        assert_int_equal(climits_admit(&t, &a, CLIMIT_HTTP, SEC, &h[0]), CLIMIT_ADMIT);
        assert_int_equal(climits_admit(&t, &b, CLIMIT_HTTPS, SEC, &h[1]), CLIMIT_ADMIT);
        assert_int_equal(climits_admit(&t, &b, CLIMIT_HTTP, SEC, &h[2]), CLIMIT_TOTAL);
        climits_release(&t, h[0]);
        assert_int_equal(climits_admit(&t, &b, CLIMIT_HTTP, SEC, &h[2]), CLIMIT_ADMIT);
        /* Lowered live below what is open: nothing new, nothing closed. */
        climits_set(&t, 1, CLIMIT_OFF, CLIMIT_OFF);
        assert_int_equal(climits_admit(&t, &a, CLIMIT_HTTP, SEC, &h[0]), CLIMIT_TOTAL);
        assert_int_equal(atomic_load(&t.total), 2);
        climits_release(&t, h[1]);
        climits_release(&t, h[2]);
        assert_int_equal(atomic_load(&t.total), 0);
        climits_done(&t);
}

/* A flood of distinct addresses recycles slots: the table never grows, and
 * a flooder with open connections keeps its count (its slot is never
 * taken while it has connections). */
static void test_flood_of_addresses_bounded(void **state)
{
        struct climits t;
        struct sockaddr_storage flooder = v4("192.0.2.1");
        uint32_t hf[4], h;
        unsigned n_buckets;

        assert_int_equal(climits_init(&t, 100, 4, 1), 0);
        n_buckets = t.n_buckets;
        assert_int_equal(n_buckets * CLIMIT_BUCKET_SLOTS, CLIMIT_MIN_SLOTS);
        for (unsigned i = 0; i < 4; i++)
                assert_int_equal(climits_admit(&t, &flooder, CLIMIT_HTTP, SEC * (i + 1), &hf[i]),
                                 CLIMIT_ADMIT);
        for (uint32_t i = 0; i < 200000; i++) {
                struct sockaddr_storage a = {.ss_family = AF_INET};

                ((struct sockaddr_in *)&a)->sin_addr.s_addr = htonl(0x0a000000u + i);
                assert_int_equal(climits_admit(&t, &a, CLIMIT_HTTP, 5 * SEC, &h), CLIMIT_ADMIT);
                climits_release(&t, h);
        }
        assert_int_equal(t.n_buckets, n_buckets);
        /* The flooder is still at its cap. */
        assert_int_equal(climits_admit(&t, &flooder, CLIMIT_HTTP, 100 * SEC, &h),
                         CLIMIT_PER_CLIENT);
        for (unsigned i = 0; i < 4; i++)
                climits_release(&t, hf[i]);
        assert_int_equal(atomic_load(&t.total), 0);
        climits_done(&t);
}

/* A bucket full of clients with open connections: a newcomer hashing there
 * is admitted untracked (counted), never refused for others' sake. */
static void test_full_bucket_untracked(void **state)
{
        struct climits t;
        uint32_t handles[4096], h;
        unsigned n = 0, bucket_hits[CLIMIT_MIN_SLOTS / CLIMIT_BUCKET_SLOTS] = {0};

        /* Sized for 1000 (the smallest table), then a total cap above it. */
        assert_int_equal(climits_init(&t, 1000, 1, CLIMIT_OFF), 0);
        assert_int_equal(t.n_buckets * CLIMIT_BUCKET_SLOTS, CLIMIT_MIN_SLOTS);
        climits_set(&t, 100000, 1, CLIMIT_OFF);
        /* Fill every slot with a connection of a distinct client. */
        for (uint32_t i = 0; n < CLIMIT_MIN_SLOTS && i < ELEMENTSOF(handles) * 4; i++) {
                struct sockaddr_storage a = {.ss_family = AF_INET};

                ((struct sockaddr_in *)&a)->sin_addr.s_addr = htonl(0x0b000000u + i);
                assert_int_equal(climits_admit(&t, &a, CLIMIT_HTTP, SEC, &h), CLIMIT_ADMIT);
                if (h) {
                        bucket_hits[((h - 1) >> 1) / CLIMIT_BUCKET_SLOTS]++;
                        handles[n++] = h;
                } else {
                        climits_release(&t, h);
                }
        }
        assert_int_equal(n, CLIMIT_MIN_SLOTS);
        for (unsigned i = 0; i < ELEMENTSOF(bucket_hits); i++)
                assert_int_equal(bucket_hits[i], CLIMIT_BUCKET_SLOTS);
        {
                struct sockaddr_storage a = {.ss_family = AF_INET};
                uint64_t before = atomic_load(&t.untracked);

                ((struct sockaddr_in *)&a)->sin_addr.s_addr = htonl(0x0c000001u);
                assert_int_equal(climits_admit(&t, &a, CLIMIT_HTTP, SEC, &h), CLIMIT_ADMIT);
                assert_int_equal(h, 0);
                assert_int_equal(atomic_load(&t.untracked), before + 1);
                climits_release(&t, h);
        }
        for (unsigned i = 0; i < n; i++)
                climits_release(&t, handles[i]);
        assert_int_equal(atomic_load(&t.total), 0);
        climits_done(&t);
}

struct hammer {
        struct climits *t;
        unsigned seed;
};

static void *hammer_main(void *arg)
{
        struct hammer *hm = arg;

        for (unsigned i = 0; i < 20000; i++) {
                struct sockaddr_storage a = {.ss_family = AF_INET};
                uint32_t h;

                ((struct sockaddr_in *)&a)->sin_addr.s_addr = htonl(0x0d000000u + (i % 37));
                if (climits_admit(hm->t, &a, i & 1 ? CLIMIT_HTTP : CLIMIT_HTTPS, SEC, &h) ==
                    CLIMIT_ADMIT)
                        climits_release(hm->t, h);
        }
        return NULL;
}

/* Workers admit and release from several threads: the counts end at 0. */
static void test_threads(void **state)
{
        struct climits t;
        pthread_t th[4];
        struct hammer hm[4];

        assert_int_equal(climits_init(&t, 1000, 3, CLIMIT_OFF), 0);
        for (unsigned i = 0; i < 4; i++) {
                hm[i] = (struct hammer){.t = &t, .seed = i};
                assert_int_equal(pthread_create(&th[i], NULL, hammer_main, &hm[i]), 0);
        }
        for (unsigned i = 0; i < 4; i++)
                pthread_join(th[i], NULL);
        assert_int_equal(atomic_load(&t.total), 0);
        for (unsigned b = 0; b < t.n_buckets; b++)
                for (unsigned s = 0; s < CLIMIT_BUCKET_SLOTS; s++) {
                        assert_int_equal(t.buckets[b].slots[s].conns[0], 0);
                        assert_int_equal(t.buckets[b].slots[s].conns[1], 0);
                }
        climits_done(&t);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_keys),
                cmocka_unit_test(test_per_client_per_port),
                cmocka_unit_test(test_rate),
                cmocka_unit_test(test_total),
                cmocka_unit_test(test_flood_of_addresses_bounded),
                cmocka_unit_test(test_full_bucket_untracked),
                cmocka_unit_test(test_threads),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
