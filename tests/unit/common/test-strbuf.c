/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/strbuf.h"

static void test_append_and_terminate(void **state)
{
        _cleanup_strbuf_ struct strbuf b = STRBUF_INIT;

        assert_null(b.data);
        assert_int_equal(strbuf_puts(&b, "hello"), 0);
        assert_int_equal(strbuf_putc(&b, ' '), 0);
        assert_int_equal(strbuf_append(&b, "world!!", 5), 0);
        assert_string_equal(b.data, "hello world");
        assert_int_equal(b.len, 11);
        assert_true(b.cap > b.len);
        assert_int_equal(strbuf_append(&b, NULL, 0), 0);
        assert_int_equal(b.len, 11);
}

static void test_printf_grows(void **state)
{
        _cleanup_strbuf_ struct strbuf b = STRBUF_INIT;
        char big[1000];

        memset(big, 'x', sizeof(big) - 1);
        big[sizeof(big) - 1] = 0;
        assert_int_equal(strbuf_printf(&b, "%d-%s", 42, "a"), 0);
        assert_string_equal(b.data, "42-a");
        assert_int_equal(strbuf_printf(&b, "[%s]", big), 0);
        assert_int_equal(b.len, 4 + 2 + 999);
        assert_int_equal(b.data[b.len], 0);
        assert_int_equal(b.data[4], '[');
        assert_int_equal(b.data[b.len - 1], ']');
}

static void test_limit(void **state)
{
        _cleanup_strbuf_ struct strbuf b = {.limit = 8};

        assert_int_equal(strbuf_puts(&b, "12345678"), 0);
        assert_int_equal(strbuf_putc(&b, '9'), -E2BIG);
        assert_int_equal(strbuf_printf(&b, "%s", "x"), -E2BIG);
        assert_string_equal(b.data, "12345678"); /* unchanged after the refusal */
        strbuf_reset(&b);
        assert_int_equal(b.len, 0);
        assert_string_equal(b.data, "");
        assert_int_equal(strbuf_puts(&b, "abc"), 0);
        assert_string_equal(b.data, "abc");
}

static void test_json_string(void **state)
{
        _cleanup_strbuf_ struct strbuf b = STRBUF_INIT;
        const char in[] = "a\"b\\c\nd\te\x01\x7f\xc3\xa9";

        assert_int_equal(strbuf_put_json_string(&b, in, sizeof(in) - 1), 0);
        assert_string_equal(b.data, "\"a\\\"b\\\\c\\nd\\te\\u0001\\u007f\xc3\xa9\"");
        strbuf_reset(&b);
        assert_int_equal(strbuf_put_json_string(&b, "", 0), 0);
        assert_string_equal(b.data, "\"\"");
}

static void test_steal(void **state)
{
        struct strbuf b = STRBUF_INIT;
        char *s;

        s = strbuf_steal(&b); /* empty buffer: "" */
        assert_non_null(s);
        assert_string_equal(s, "");
        free(s);

        assert_int_equal(strbuf_puts(&b, "taken"), 0);
        s = strbuf_steal(&b);
        assert_string_equal(s, "taken");
        assert_null(b.data);
        assert_int_equal(b.len, 0);
        assert_int_equal(b.cap, 0);
        free(s);
        strbuf_done(&b);
}

static void test_done_resets(void **state)
{
        struct strbuf b = STRBUF_INIT;

        assert_int_equal(strbuf_puts(&b, "x"), 0);
        strbuf_done(&b);
        assert_null(b.data);
        assert_int_equal(b.len, 0);
        strbuf_done(&b);  /* idempotent */
        strbuf_reset(&b); /* safe on an empty buffer */
}

static void test_cescape(void **state)
{
        char out[16];

        assert_string_equal(cescape("abc", 3, out, sizeof(out)), "abc");
        assert_string_equal(cescape("a\"b\\", 4, out, sizeof(out)), "a\\\"b\\\\");
        assert_string_equal(cescape("\x1b[1m\xff", 5, out, sizeof(out)), "\\x1b[1m\\xff");
        assert_string_equal(cescape("\0x", 2, out, sizeof(out)), "\\x00x");
        assert_string_equal(cescape("", 0, out, sizeof(out)), "");
        /* 15 fits exactly; 16 is cut with "..." and stays terminated. */
        assert_string_equal(cescape("123456789012345", 15, out, sizeof(out)), "123456789012345");
        assert_string_equal(cescape("1234567890123456", 16, out, sizeof(out)), "123456789012...");
        assert_string_equal(cescape("\x01\x02\x03\x04", 4, out, 8), "\\x01...");
        assert_string_equal(cescape("abcdef", 6, out, 4), "...");
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_cescape),      cmocka_unit_test(test_append_and_terminate),
                cmocka_unit_test(test_printf_grows), cmocka_unit_test(test_limit),
                cmocka_unit_test(test_json_string),  cmocka_unit_test(test_steal),
                cmocka_unit_test(test_done_resets),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
