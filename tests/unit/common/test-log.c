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

#include "common/log.h"

static char lines[16][512];
static unsigned n_lines;

static void capture(int level, const struct log_fields *f, const char *msg)
{
        if (n_lines < ELEMENTSOF(lines))
                snprintf(lines[n_lines], sizeof(lines[0]), "%d %s", level, msg);
        n_lines++;
}

static int setup(void **state)
{
        n_lines = 0;
        log_set_sink(capture);
        log_set_max_level(LOG_INFO);
        return 0;
}

static int teardown(void **state)
{
        (void)log_ratelimit_flush(true);
        log_set_sink(NULL);
        return 0;
}

static void test_control_characters_blanked(void **state)
{
        log_warning("a\nb\rc\td");
        assert_int_equal(n_lines, 1);
        assert_string_equal(lines[0], "4 a b c\td");
}

static void test_identical_messages_counted(void **state)
{
        struct log_ratelimit rl = {};

        for (int i = 0; i < 10; i++)
                log_ratelimit_internal(&rl, LOG_WARNING, -ENOENT, NULL, "drift in %s: %m", "ns");
        assert_int_equal(n_lines, 1);
        assert_string_equal(lines[0], "4 drift in ns: No such file or directory");
        /* The window is still open: nothing yet. */
        assert_int_equal(log_ratelimit_flush(false), 0);
        assert_int_equal(log_ratelimit_flush(true), 1);
        assert_int_equal(n_lines, 2);
        assert_string_equal(lines[1],
                            "4 drift in ns: No such file or directory (repeated 9 times)");
        /* Nothing pending any more. */
        assert_int_equal(log_ratelimit_flush(true), 0);
        /* After a flush a new window starts with the next message. */
        log_ratelimit_internal(&rl, LOG_WARNING, 0, NULL, "drift in %s", "ns");
        assert_int_equal(n_lines, 3);
}

static void test_another_text_flushes_the_count(void **state)
{
        struct log_ratelimit rl = {};

        log_ratelimit_internal(&rl, LOG_WARNING, 0, NULL, "first");
        log_ratelimit_internal(&rl, LOG_WARNING, 0, NULL, "first");
        log_ratelimit_internal(&rl, LOG_WARNING, 0, NULL, "first");
        log_ratelimit_internal(&rl, LOG_WARNING, 0, NULL, "second");
        assert_int_equal(n_lines, 3);
        assert_string_equal(lines[0], "4 first");
        assert_string_equal(lines[1], "4 first (repeated 2 times)");
        assert_string_equal(lines[2], "4 second");
        /* The site is no longer pending. */
        assert_int_equal(log_ratelimit_flush(true), 0);
}

static void test_window_expiry_logs_again(void **state)
{
        struct log_ratelimit rl = {};

        log_ratelimit_internal(&rl, LOG_WARNING, 0, NULL, "same");
        log_ratelimit_internal(&rl, LOG_WARNING, 0, NULL, "same");
        rl.until_ns = 1; /* the window ended long ago */
        assert_int_equal(log_ratelimit_flush(false), 1);
        assert_int_equal(n_lines, 2);
        assert_string_equal(lines[1], "4 same (repeated 1 times)");
        rl.until_ns = 1;
        log_ratelimit_internal(&rl, LOG_WARNING, 0, NULL, "same");
        assert_int_equal(n_lines, 3);
        assert_string_equal(lines[2], "4 same");
}

static void test_sites_are_independent_and_levels_respected(void **state)
{
        struct log_ratelimit a = {}, b = {};

        log_ratelimit_internal(&a, LOG_WARNING, 0, NULL, "x");
        log_ratelimit_internal(&b, LOG_WARNING, 0, NULL, "x");
        log_ratelimit_internal(&a, LOG_WARNING, 0, NULL, "x");
        log_ratelimit_internal(&b, LOG_WARNING, 0, NULL, "x");
        log_ratelimit_internal(&b, LOG_DEBUG, 0, NULL, "x"); /* below the level: ignored */
        assert_int_equal(n_lines, 2);
        assert_int_equal(log_ratelimit_flush(true), 2);
        assert_int_equal(n_lines, 4);
        assert_string_equal(lines[2], "4 x (repeated 1 times)");
        assert_string_equal(lines[3], "4 x (repeated 1 times)");
}

static void test_long_messages_compare_their_start(void **state)
{
        struct log_ratelimit rl = {};
        char big[1500];

        memset(big, 'y', sizeof(big) - 1);
        big[sizeof(big) - 1] = 0;
        log_ratelimit_internal(&rl, LOG_WARNING, 0, NULL, "%s", big);
        log_ratelimit_internal(&rl, LOG_WARNING, 0, NULL, "%s", big);
        assert_int_equal(n_lines, 1);
        assert_int_equal(strlen(lines[0]), 2 + strlen(big) > sizeof(lines[0]) - 1
                                                   ? sizeof(lines[0]) - 1
                                                   : 2 + strlen(big));
        assert_int_equal(log_ratelimit_flush(true), 1);
}

static void test_macro_keeps_a_static_site(void **state)
{
        for (int i = 0; i < 5; i++)
                log_ratelimit_warning("from the macro %d", 1);
        assert_int_equal(n_lines, 1);
        assert_int_equal(log_ratelimit_flush(true), 1);
        assert_string_equal(lines[1], "4 from the macro 1 (repeated 4 times)");
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_control_characters_blanked, setup, teardown),
                cmocka_unit_test_setup_teardown(test_identical_messages_counted, setup, teardown),
                cmocka_unit_test_setup_teardown(test_another_text_flushes_the_count, setup,
                                                teardown),
                cmocka_unit_test_setup_teardown(test_window_expiry_logs_again, setup, teardown),
                cmocka_unit_test_setup_teardown(test_sites_are_independent_and_levels_respected,
                                                setup, teardown),
                cmocka_unit_test_setup_teardown(test_long_messages_compare_their_start, setup,
                                                teardown),
                cmocka_unit_test_setup_teardown(test_macro_keeps_a_static_site, setup, teardown),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
