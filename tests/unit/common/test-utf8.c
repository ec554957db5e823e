/* SPDX-License-Identifier: Apache-2.0 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "common/macros.h"
#include "common/utf8.h"

#define S(lit) lit, sizeof(lit) - 1

static void test_decode(void **state)
{
        size_t n;

        assert_int_equal(utf8_decode(S("a"), &n), 'a');
        assert_int_equal(n, 1);
        assert_int_equal(utf8_decode(S("\xc3\xa9"), &n), 0xe9);
        assert_int_equal(n, 2);
        assert_int_equal(utf8_decode(S("\xe2\x82\xac"), &n), 0x20ac);
        assert_int_equal(n, 3);
        assert_int_equal(utf8_decode(S("\xf0\x9f\x98\x80"), &n), 0x1f600);
        assert_int_equal(n, 4);
        assert_int_equal(utf8_decode(S("\xf4\x8f\xbf\xbf"), &n), 0x10ffff);
        assert_int_equal(n, 4);
        /* A literal U+FFFD is three bytes, not an error. */
        assert_int_equal(utf8_decode(S("\xef\xbf\xbd"), &n), UTF8_RUNE_ERROR);
        assert_int_equal(n, 3);
}

static void test_decode_errors(void **state)
{
        static const struct {
                const char *s;
                size_t n;
        } bad[] = {
                {S("\xf4\x90\x80\x80")}, /* above U+10FFFF */
                {S("\xe0\x80\x80")},     /* overlong 3 */
                {S("\xc0\xaf")},         /* overlong 2 */
                {S("\xc1\xbf")},         /* overlong 2 */
                {S("\xf0\x8f\xbf\xbf")}, /* overlong 4 */
                {S("\xed\xa0\x80")},     /* surrogate */
                {S("\xed\xbf\xbf")},     /* surrogate */
                {S("\x80")},             /* continuation first */
                {S("\xf5\x80\x80\x80")}, /* F5 never starts */
                {S("\xff")},             /* */
                {"\xc3\xa9", 1},         /* truncated */
                {"\xe2\x82\xac", 2},     /* truncated */
                {S("\xe2\x28\xa1")},     /* bad continuation */
        };
        size_t n;

        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                assert_int_equal(utf8_decode(bad[i].s, bad[i].n, &n), UTF8_RUNE_ERROR);
                assert_int_equal(n, 1);
                assert_int_equal(utf8_seq_len(bad[i].s, bad[i].n), 0);
                assert_false(utf8_valid(bad[i].s, bad[i].n));
        }
}

static void test_valid(void **state)
{
        assert_true(utf8_valid(S("")));
        assert_true(utf8_valid(S("plain ascii")));
        assert_true(utf8_valid(S("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80")));
        /* NUL is well-formed UTF-8; refusing it is the caller's rule. */
        assert_true(utf8_valid("a\0b", 3));
        assert_false(utf8_valid(S("ok\xc3")));
        assert_false(utf8_valid(S("ok\xc3(")));
}

static void test_encode(void **state)
{
        static const uint32_t runes[] = {0,     'a',    0x7f,   0x80,    0x7ff,
                                         0x800, 0xfffd, 0xffff, 0x10000, 0x10ffff};
        char buf[UTF8_MAX_LEN];
        size_t n, k;

        for (size_t i = 0; i < ELEMENTSOF(runes); i++) {
                n = utf8_encode(runes[i], buf);
                assert_true(n >= 1 && n <= UTF8_MAX_LEN);
                assert_int_equal(utf8_decode(buf, n, &k), runes[i]);
                assert_int_equal(k, n);
        }
        /* Surrogates and values past U+10FFFF become U+FFFD. */
        assert_int_equal(utf8_encode(0xd800, buf), 3);
        assert_memory_equal(buf, "\xef\xbf\xbd", 3);
        assert_int_equal(utf8_encode(0x110000, buf), 3);
        assert_memory_equal(buf, "\xef\xbf\xbd", 3);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_decode),
                cmocka_unit_test(test_decode_errors),
                cmocka_unit_test(test_valid),
                cmocka_unit_test(test_encode),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
