/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "proto/mp-read.h"

static void test_ints_any_width(void **state)
{
        static const uint8_t forms[][9] = {
                {0x2a},
                {0xcc, 0x2a},
                {0xcd, 0, 0x2a},
                {0xce, 0, 0, 0, 0x2a},
                {0xcf, 0, 0, 0, 0, 0, 0, 0, 0x2a},
                {0xd0, 0x2a},
                {0xd3, 0, 0, 0, 0, 0, 0, 0, 0x2a},
        };
        static const size_t lens[] = {1, 2, 3, 5, 9, 2, 9};

        for (size_t i = 0; i < 7; i++) {
                struct mp_reader r;
                uint64_t v = 0;

                mp_reader_init(&r, forms[i], lens[i]);
                assert_int_equal(mp_read_uint64(&r, &v), 0);
                assert_int_equal(v, 42);
                assert_int_equal(mp_remaining(&r), 0);
        }
}

static void test_negative_and_nil(void **state)
{
        uint8_t b[] = {0xff, 0xc0, 0xd1, 0xff, 0x00};
        struct mp_reader r;
        int64_t v;
        uint64_t u;

        mp_reader_init(&r, b, sizeof(b));
        assert_int_equal(mp_read_int64(&r, &v), 0);
        assert_int_equal(v, -1);
        assert_int_equal(mp_read_uint64(&r, &u), 0); /* nil -> 0 */
        assert_int_equal(u, 0);
        /* -256 into an unsigned: wrong type, not consumed. */
        assert_int_equal(mp_read_uint64(&r, &u), -EDOM);
        assert_int_equal(mp_read_int64(&r, &v), 0);
        assert_int_equal(v, -256);
}

static void test_bool_rejects_nil(void **state)
{
        uint8_t b[] = {0xc0};
        struct mp_reader r;
        bool v;

        mp_reader_init(&r, b, 1);
        assert_int_equal(mp_read_bool(&r, &v), -EDOM);
}

static void test_hostile_lengths(void **state)
{
        static const uint8_t bad[][5] = {
                {0xdb, 0xff, 0xff, 0xff, 0xff}, /* str32 of 4 GiB */
                {0xc6, 0x00, 0x00, 0x01, 0x00}, /* bin32 longer than input */
                {0xdd, 0x00, 0x10, 0x00, 0x00}, /* array of 1M elements */
                {0xdf, 0x00, 0x00, 0x00, 0x03}, /* map of 3 pairs in 0 bytes */
                {0xc9, 0xff, 0xff, 0xff, 0xff}, /* ext32 */
        };
        for (size_t i = 0; i < 5; i++) {
                struct mp_reader r;
                struct mp_value v;

                mp_reader_init(&r, bad[i], 5);
                assert_int_equal(mp_read(&r, &v), -EBADMSG);
                assert_int_equal(mp_remaining(&r), 5);
                assert_int_equal(mp_skip(&r), -EBADMSG);
        }
}

static void test_skip_nested_and_depth_limit(void **state)
{
        uint8_t deep[64], ok[] = {0x82, 0xa1, 'a',  0x92, 0x01, 0x81, 0xa1, 'b', 0xc0,
                                  0xa1, 'c',  0xd6, 0xff, 0,    0,    0,    1};
        struct mp_reader r;

        mp_reader_init(&r, ok, sizeof(ok));
        assert_int_equal(mp_skip(&r), 0);
        assert_int_equal(mp_remaining(&r), 0);

        /* 40 nested one-element arrays, then nil: beyond MP_MAX_DEPTH. */
        memset(deep, 0x91, 40);
        deep[40] = 0xc0;
        mp_reader_init(&r, deep, 41);
        assert_int_equal(mp_skip(&r), -EBADMSG);
        /* 20 levels are fine. */
        mp_reader_init(&r, deep + 20, 21);
        assert_int_equal(mp_skip(&r), 0);
}

static void test_timestamps(void **state)
{
        uint8_t t4[] = {0xd6, 0xff, 0x65, 0x53, 0xf1, 0x00};
        uint8_t t8[] = {0xd7, 0xff, 0x1d, 0x6f, 0x34, 0x54, 0x65, 0x53, 0xf1, 0x00};
        struct mp_reader r;
        int64_t s;
        uint32_t ns;

        mp_reader_init(&r, t4, sizeof(t4));
        assert_int_equal(mp_read_timestamp(&r, &s, &ns), 0);
        assert_int_equal(s, 1700000000);
        assert_int_equal(ns, 0);
        mp_reader_init(&r, t8, sizeof(t8));
        assert_int_equal(mp_read_timestamp(&r, &s, &ns), 0);
        assert_int_equal(s, 1700000000);
        assert_int_equal(ns, 123456789);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_ints_any_width),
                cmocka_unit_test(test_negative_and_nil),
                cmocka_unit_test(test_bool_rejects_nil),
                cmocka_unit_test(test_hostile_lengths),
                cmocka_unit_test(test_skip_nested_and_depth_limit),
                cmocka_unit_test(test_timestamps),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
