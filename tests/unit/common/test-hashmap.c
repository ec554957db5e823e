/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/hashmap.h"

static void test_empty(void **state)
{
        struct hashmap *m = hashmap_new(0);
        size_t it = 0;

        assert_non_null(m);
        assert_int_equal(hashmap_size(m), 0);
        assert_null(hashmap_get(m, "x"));
        assert_false(hashmap_contains(m, "x"));
        assert_null(hashmap_remove(m, "x"));
        assert_false(hashmap_iterate(m, &it, NULL, NULL));
        assert_null(hashmap_free(m));
        assert_null(hashmap_free(NULL));
        assert_int_equal(hashmap_size(NULL), 0);
}

static void test_put_get_replace_remove(void **state)
{
        struct hashmap *m = hashmap_new(0);
        char key1[] = "alpha", key2[] = "alpha";
        int a = 1, b = 2, c = 3;
        const char *k;
        size_t it = 0;
        void *v;

        assert_int_equal(hashmap_put(m, key1, &a), 0);
        assert_int_equal(hashmap_put(m, "beta", &b), 0);
        assert_int_equal(hashmap_size(m), 2);
        assert_ptr_equal(hashmap_get(m, "alpha"), &a);
        assert_ptr_equal(hashmap_get(m, "beta"), &b);
        assert_null(hashmap_get(m, "Alpha")); /* case-sensitive by default */

        /* Replace: value and the borrowed key pointer both switch. */
        assert_int_equal(hashmap_put(m, key2, &c), 1);
        assert_int_equal(hashmap_size(m), 2);
        assert_ptr_equal(hashmap_get(m, "alpha"), &c);
        while (hashmap_iterate(m, &it, &k, &v))
                if (v == &c)
                        assert_ptr_equal(k, key2);

        assert_ptr_equal(hashmap_remove(m, "alpha"), &c);
        assert_null(hashmap_remove(m, "alpha"));
        assert_int_equal(hashmap_size(m), 1);
        assert_false(hashmap_contains(m, "alpha"));
        assert_true(hashmap_contains(m, "beta"));
        assert_int_equal(hashmap_put(m, NULL, &a), -EINVAL);
        hashmap_free(m);
}

static void test_null_values(void **state)
{
        struct hashmap *m = hashmap_new(0);

        assert_int_equal(hashmap_put(m, "k", NULL), 0);
        assert_null(hashmap_get(m, "k"));
        assert_true(hashmap_contains(m, "k"));
        assert_false(hashmap_contains(m, "other"));
        hashmap_free(m);
}

static void test_casefold(void **state)
{
        struct hashmap *m = hashmap_new(HASHMAP_ASCII_CASEFOLD);
        int a = 1, b = 2;

        assert_int_equal(hashmap_put(m, "MyApp.Gent01.grid.tf", &a), 0);
        assert_ptr_equal(hashmap_get(m, "myapp.gent01.grid.tf"), &a);
        assert_ptr_equal(hashmap_get(m, "MYAPP.GENT01.GRID.TF"), &a);
        assert_null(hashmap_get(m, "myapp.gent01.grid.t"));
        assert_int_equal(hashmap_put(m, "MYAPP.gent01.GRID.tf", &b), 1);
        assert_int_equal(hashmap_size(m), 1);
        /* Only ASCII folds: bytes >= 0x80 compare as they are. */
        assert_int_equal(hashmap_put(m, "\xc3\x89", &a), 0);
        assert_null(hashmap_get(m, "\xc3\xa9"));
        assert_ptr_equal(hashmap_remove(m, "myapp.GENT01.grid.tf"), &b);
        assert_int_equal(hashmap_size(m), 1);
        hashmap_free(m);
}

static void test_clear_and_reserve(void **state)
{
        struct hashmap *m = hashmap_new(0);
        char keys[100][8];

        assert_int_equal(hashmap_reserve(m, 100), 0);
        for (int i = 0; i < 100; i++) {
                snprintf(keys[i], sizeof(keys[i]), "k%d", i);
                assert_int_equal(hashmap_put(m, keys[i], keys[i]), 0);
        }
        assert_int_equal(hashmap_size(m), 100);
        hashmap_clear(m);
        assert_int_equal(hashmap_size(m), 0);
        assert_null(hashmap_get(m, "k5"));
        assert_int_equal(hashmap_put(m, keys[5], keys[5]), 0);
        assert_ptr_equal(hashmap_get(m, "k5"), keys[5]);
        hashmap_free(m);
}

static int freed;

static void count_free(void *p)
{
        freed++;
        free(p);
}

static void test_free_with(void **state)
{
        struct hashmap *m = hashmap_new(0);

        freed = 0;
        for (int i = 0; i < 10; i++) {
                char *v = malloc(16);

                snprintf(v, 16, "v%d", i);
                assert_int_equal(hashmap_put(m, v, v), 0);
        }
        assert_null(hashmap_free_with(m, count_free));
        assert_int_equal(freed, 10);
}

/* xorshift64*: deterministic pseudo-random operations. */
static uint64_t rng = 88172645463325252ULL;
static uint64_t next_rand(void)
{
        rng ^= rng >> 12;
        rng ^= rng << 25;
        rng ^= rng >> 27;
        return rng * 2685821657736338717ULL;
}

/* Random puts and removes against a plain array as the reference: catches
 * backward-shift deletion bugs, which show up as lost or phantom keys. */
static void test_random_against_reference(void **state)
{
        enum { NKEYS = 512, OPS = 200000 };
        static char keys[NKEYS][16];
        static void *ref[NKEYS];
        static bool present[NKEYS];
        struct hashmap *m = hashmap_new(0);
        size_t count = 0;

        for (int i = 0; i < NKEYS; i++)
                snprintf(keys[i], sizeof(keys[i]), "key-%d", i);
        for (int op = 0; op < OPS; op++) {
                unsigned i = (unsigned)(next_rand() % NKEYS);
                void *val = (void *)(uintptr_t)(op + 1);

                if (next_rand() % 3) {
                        int r = hashmap_put(m, keys[i], val);

                        assert_int_equal(r, present[i] ? 1 : 0);
                        if (!present[i])
                                count++;
                        present[i] = true;
                        ref[i] = val;
                } else {
                        void *got = hashmap_remove(m, keys[i]);

                        assert_ptr_equal(got, present[i] ? ref[i] : NULL);
                        if (present[i])
                                count--;
                        present[i] = false;
                }
                if (op % 997 == 0) {
                        size_t it = 0, seen = 0;
                        const char *k;
                        void *v;

                        for (int j = 0; j < NKEYS; j++)
                                assert_ptr_equal(hashmap_get(m, keys[j]),
                                                 present[j] ? ref[j] : NULL);
                        while (hashmap_iterate(m, &it, &k, &v)) {
                                int j = atoi(k + 4);

                                assert_true(present[j]);
                                assert_ptr_equal(v, ref[j]);
                                seen++;
                        }
                        assert_int_equal(seen, count);
                }
                assert_int_equal(hashmap_size(m), count);
        }
        hashmap_free(m);
}

/* The registry's scale: 200k workload IDs and as many domains. */
static void test_200k_entries(void **state)
{
        enum { N = 200000 };
        char(*keys)[48] = calloc(N, sizeof(*keys));
        struct hashmap *m = hashmap_new(HASHMAP_ASCII_CASEFOLD);
        size_t it = 0, seen = 0;
        const char *k;
        void *v;

        assert_non_null(keys);
        for (size_t i = 0; i < N; i++) {
                snprintf(keys[i], sizeof(keys[i]), "%zu-%zu-app%zu.gent01.grid.tf", i % 5000,
                         i * 7919, i);
                assert_int_equal(hashmap_put(m, keys[i], keys[i]), 0);
        }
        assert_int_equal(hashmap_size(m), N);
        for (size_t i = 0; i < N; i++)
                assert_ptr_equal(hashmap_get(m, keys[i]), keys[i]);
        while (hashmap_iterate(m, &it, &k, &v)) {
                assert_ptr_equal(k, v);
                seen++;
        }
        assert_int_equal(seen, N);

        for (size_t i = 0; i < N; i += 2)
                assert_ptr_equal(hashmap_remove(m, keys[i]), keys[i]);
        assert_int_equal(hashmap_size(m), N / 2);
        for (size_t i = 0; i < N; i++) {
                if (i % 2)
                        assert_ptr_equal(hashmap_get(m, keys[i]), keys[i]);
                else
                        assert_null(hashmap_get(m, keys[i]));
        }
        for (size_t i = 0; i < N; i += 2)
                assert_int_equal(hashmap_put(m, keys[i], keys[i]), 0);
        assert_int_equal(hashmap_size(m), N);

        hashmap_free(m);
        free(keys);
}

/* Copying one map into another in iteration order stays fast because every
 * map has its own hash key (with a shared key, linear probing degrades to
 * quadratic here). The test would time out rather than fail. */
static void test_copy_between_maps(void **state)
{
        enum { N = 100000 };
        char(*keys)[16] = calloc(N, sizeof(*keys));
        struct hashmap *a = hashmap_new(0), *b = hashmap_new(0);
        size_t it = 0;
        const char *k;
        void *v;

        for (size_t i = 0; i < N; i++) {
                snprintf(keys[i], sizeof(keys[i]), "%zu", i);
                assert_int_equal(hashmap_put(a, keys[i], keys[i]), 0);
        }
        while (hashmap_iterate(a, &it, &k, &v))
                assert_int_equal(hashmap_put(b, k, v), 0);
        assert_int_equal(hashmap_size(b), N);
        hashmap_free(a);
        hashmap_free(b);
        free(keys);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_empty),
                cmocka_unit_test(test_put_get_replace_remove),
                cmocka_unit_test(test_null_values),
                cmocka_unit_test(test_casefold),
                cmocka_unit_test(test_clear_and_reserve),
                cmocka_unit_test(test_free_with),
                cmocka_unit_test(test_random_against_reference),
                cmocka_unit_test(test_200k_entries),
                cmocka_unit_test(test_copy_between_maps),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
