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

#include "workloads/workloads-internal.h"
#include "workloads/workloads.h"

/* Workload IDs as Go's fmt.Sscanf(id, "%d-%d-%s", &uint32, &uint64, &string)
 * scans them (protocol-zbus-gateway.md §5; Go fmt/scan.go). */

static void ok(const char *id, uint32_t twin, uint64_t contract, const char *name)
{
        struct wl_id ret;
        char *err = NULL;
        int r;

        r = wl_id_parse(id, &ret, &err);
        if (r != 0)
                fail_msg("wl_id_parse(\"%s\") = %d (%s), want success", id, r, err);
        assert_null(err);
        assert_int_equal(ret.twin, twin);
        assert_int_equal(ret.contract, contract);
        assert_string_equal(ret.name, name);
}

static void bad(const char *id, const char *want)
{
        struct wl_id ret = {.twin = 7, .contract = 7, .name = "untouched"};
        char *err = NULL;
        int r;

        r = wl_id_parse(id, &ret, &err);
        if (r != -EINVAL)
                fail_msg("wl_id_parse(\"%s\") = %d, want -EINVAL", id, r);
        assert_non_null(err);
        assert_string_equal(err, want);
        /* Outputs are not clobbered on failure. */
        assert_int_equal(ret.twin, 7);
        assert_string_equal(ret.name, "untouched");
        free(err);
}

static void test_valid(void **state)
{
        ok("37-1976-myapp", 37, 1976, "myapp");
        ok("0-0-a", 0, 0, "a");
        ok("4294967295-18446744073709551615-x", UINT32_MAX, UINT64_MAX, "x");
        ok("0037-001976-myapp", 37, 1976, "myapp");
        ok("37-1976-my-app-with-dashes", 37, 1976, "my-app-with-dashes");
        ok("37-1976-a_b.c/d", 37, 1976, "a_b.c/d");
}

static void test_spaces_before_items(void **state)
{
        ok("  37-  1976-  myapp", 37, 1976, "myapp");
        ok("\t37-\v1976-\fmyapp", 37, 1976, "myapp");
        ok("\r37-\r1976-\rmyapp", 37, 1976, "myapp"); /* a lone CR is a space */
        ok("\xc2\xa0"
           "37-1976-a",
           37, 1976, "a"); /* U+00A0 NO-BREAK SPACE */
        ok("\xc2\x85"
           "37-1976-a",
           37, 1976, "a"); /* U+0085 NEL */
        ok("\xe2\x80\x83"
           "37-1976-a",
           37, 1976, "a"); /* U+2003 EM SPACE */
        ok("\xe3\x80\x80"
           "37-1976-a",
           37, 1976, "a"); /* U+3000 */
}

static void test_name_is_next_word(void **state)
{
        ok("37-1976-my app", 37, 1976, "my");
        ok("37-1976-myapp\nrest", 37, 1976, "myapp"); /* newline ends the word, no error */
        ok("37-1976-myapp   trailing junk", 37, 1976, "myapp");
        ok("37-1976-my\xc2\xa0"
           "app",
           37, 1976, "my"); /* stops at U+00A0 */
        ok("37-1976-caf\xc3\xa9", 37, 1976, "caf\xc3\xa9");
}

static void test_name_invalid_utf8_becomes_fffd(void **state)
{
        ok("37-1976-a\xff"
           "b",
           37, 1976,
           "a\xef\xbf\xbd"
           "b");
        ok("37-1976-\xe2\x82", 37, 1976, "\xef\xbf\xbd\xef\xbf\xbd"); /* truncated sequence */
        ok("37-1976-\xed\xa0\x80", 37, 1976,
           "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");                   /* surrogate: 3 bad bytes */
        ok("37-1976-\xc0\xaf", 37, 1976, "\xef\xbf\xbd\xef\xbf\xbd"); /* overlong */
}

/* notEOF panics with io.EOF ("EOF"); a literal at end of input is
 * mustReadRune's io.ErrUnexpectedEOF ("unexpected EOF"). */
static void test_eof(void **state)
{
        bad("", "EOF");
        bad("   ", "EOF");
        bad("37", "unexpected EOF");
        bad("37-", "EOF");
        bad("37-  ", "EOF");
        bad("37-1976", "unexpected EOF");
        bad("37-1976-", "EOF");
        bad("37-1976-   ", "EOF");
}

static void test_expected_integer(void **state)
{
        bad("abc", "expected integer");
        bad("+37-1-a", "expected integer"); /* %d into an unsigned type takes no sign */
        bad("-37-1-a", "expected integer");
        bad("37-+1-a", "expected integer");
        bad("37-x-a", "expected integer");
        bad("37--1-a", "expected integer");
        bad("\xff"
            "37-1-a",
            "expected integer");
        bad("\xef\xbc\x93\xef\xbc\x97-1-a", "expected integer"); /* fullwidth digits */
}

static void test_literal_mismatch(void **state)
{
        bad("37 -1-a", "input does not match format"); /* no space skipping before '-' */
        bad("37x1-a", "input does not match format");
        bad("37-1x-a", "input does not match format");
        bad("37-1 -a", "input does not match format");
        bad("37\n-1-a", "input does not match format");
        bad("37\r-1-a", "input does not match format");
        bad("37.5-1-a", "input does not match format");
}

static void test_newlines(void **state)
{
        bad("\n37-1-a", "unexpected newline");
        bad("\r\n37-1-a", "unexpected newline");
        bad("  \n37-1-a", "unexpected newline");
        bad("37-\n1-a", "unexpected newline");
        bad("37-1-\na", "unexpected newline");
        bad("37-1-\r\na", "unexpected newline");
        bad("37-1-  \n", "unexpected newline");
}

static void test_overflow(void **state)
{
        bad("4294967296-1-a", "unsigned integer overflow on token 4294967296");
        bad("04294967296-1-a", "unsigned integer overflow on token 04294967296");
        bad("18446744073709551615-1-a", "unsigned integer overflow on token 18446744073709551615");
        /* Beyond 64 bits strconv.ParseUint fails first, even for the uint32 twin. */
        bad("18446744073709551616-1-a",
            "strconv.ParseUint: parsing \"18446744073709551616\": value out of range");
        bad("1-18446744073709551616-a",
            "strconv.ParseUint: parsing \"18446744073709551616\": value out of range");
        bad("1-99999999999999999999999999-a",
            "strconv.ParseUint: parsing \"99999999999999999999999999\": value out of range");
        /* The first error wins: twin overflow before a bad contract. */
        bad("4294967296-x-a", "unsigned integer overflow on token 4294967296");
}

static void test_name_too_long_for_buffer(void **state)
{
        char id[400], *err = NULL;
        struct wl_id ret;

        snprintf(id, sizeof(id), "1-2-");
        memset(id + 4, 'n', WL_ID_MAX);
        id[4 + WL_ID_MAX] = 0;
        assert_int_equal(wl_id_parse(id, &ret, &err), 0); /* exactly WL_ID_MAX fits */
        assert_int_equal(strlen(ret.name), WL_ID_MAX);

        id[4 + WL_ID_MAX] = 'n';
        id[5 + WL_ID_MAX] = 0;
        assert_int_equal(wl_id_parse(id, &ret, &err), -E2BIG);
        assert_non_null(err);
        free(err);
}

static void test_null_reterr(void **state)
{
        struct wl_id ret;

        assert_int_equal(wl_id_parse("x", &ret, NULL), -EINVAL);
}

static void test_go_is_space(void **state)
{
        assert_true(wl__go_is_space(' '));
        assert_true(wl__go_is_space(0x85));
        assert_true(wl__go_is_space(0x202f));
        assert_false(wl__go_is_space(0x200b)); /* ZERO WIDTH SPACE is not White_Space */
        assert_false(wl__go_is_space('a'));
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_valid),
                cmocka_unit_test(test_spaces_before_items),
                cmocka_unit_test(test_name_is_next_word),
                cmocka_unit_test(test_name_invalid_utf8_becomes_fffd),
                cmocka_unit_test(test_eof),
                cmocka_unit_test(test_expected_integer),
                cmocka_unit_test(test_literal_mismatch),
                cmocka_unit_test(test_newlines),
                cmocka_unit_test(test_overflow),
                cmocka_unit_test(test_name_too_long_for_buffer),
                cmocka_unit_test(test_null_reterr),
                cmocka_unit_test(test_go_is_space),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
