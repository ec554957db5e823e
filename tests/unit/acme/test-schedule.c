/* SPDX-License-Identifier: Apache-2.0 */
/* acme/schedule.c: renewal points for 90-, 45-, 10- and 6-day certificates,
 * their spread over 10,000 certificates, overdue catch-up, ARI windows
 * (future, current, past, past notAfter, invalid), the failure backoff with
 * Retry-After and expiry, and the ARI re-check interval. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "acme/schedule.h"
#include "common/macros.h"

#define DAY  86400LL
#define HOUR 3600LL
#define T0   1784000000LL /* a notBefore */

static int64_t renew(int64_t nb, int64_t na, const struct acme_sched_window *w, int64_t now,
                     uint64_t seed)
{
        int64_t at = -1;
        int r = acme_sched_renewal_time(nb, na, w, now, seed, &at);

        assert_true(r == 0 || r == 1);
        return at;
}

/* Over many seeds: every point in [lo, hi], the extremes nearly reached,
 * and the mean near the middle (uniform). */
static void check_spread(int64_t nb, int64_t na, const struct acme_sched_window *w, int64_t now,
                         int64_t lo, int64_t hi)
{
        int64_t min = INT64_MAX, max = INT64_MIN;
        double sum = 0;
        const int n = 20000;

        for (int i = 0; i < n; i++) {
                int64_t at = renew(nb, na, w, now, (uint64_t)i);

                if (at < lo || at > hi)
                        fail_msg("seed %d: %lld outside [%lld, %lld]", i, (long long)at,
                                 (long long)lo, (long long)hi);
                min = MIN(min, at);
                max = MAX(max, at);
                sum += (double)(at - lo);
        }
        assert_true(min - lo <= (hi - lo) / 100 + 1);
        assert_true(hi - max <= (hi - lo) / 100 + 1);
        sum /= n;
        assert_true(sum > (double)(hi - lo) * 0.45 && sum < (double)(hi - lo) * 0.55);
}

static void test_lifetimes(void **state)
{
        /* 90 days: at 60 days, up to 1.8 days earlier. */
        check_spread(T0, T0 + 90 * DAY, NULL, T0, T0 + 60 * DAY - 90 * DAY / 50, T0 + 60 * DAY);
        /* 45 days: at 30, up to 0.9 days earlier. */
        check_spread(T0, T0 + 45 * DAY, NULL, T0, T0 + 30 * DAY - 45 * DAY / 50, T0 + 30 * DAY);
        /* 11 days is long: two thirds. */
        check_spread(T0, T0 + 11 * DAY, NULL, T0, T0 + 11 * DAY * 2 / 3 - 11 * DAY / 50,
                     T0 + 11 * DAY * 2 / 3);
        /* 10 and 6 days are short: half. */
        check_spread(T0, T0 + 10 * DAY, NULL, T0, T0 + 5 * DAY - 10 * DAY / 50, T0 + 5 * DAY);
        check_spread(T0, T0 + 6 * DAY, NULL, T0 + DAY, T0 + 3 * DAY - 6 * DAY / 50, T0 + 3 * DAY);
        /* The result depends on the seed only, not on when it is asked
         * (while the point is ahead). */
        assert_int_equal(renew(T0, T0 + 90 * DAY, NULL, T0, 42),
                         renew(T0, T0 + 90 * DAY, NULL, T0 + 50 * DAY, 42));
        assert_int_not_equal(renew(T0, T0 + 90 * DAY, NULL, T0, 42),
                             renew(T0, T0 + 90 * DAY, NULL, T0, 43));
}

/* 10,000 certificates issued within the same minute (one bulk run) and
 * loaded at one start: their renewals do not bunch up in any second. */
static void test_thundering_herd(void **state)
{
        enum { N = 10000 };
        const int64_t span = 90 * DAY / 50 + 60;
        uint16_t *per_second = calloc((size_t)span + 1, sizeof(*per_second));
        int64_t lo = T0 + 60 * DAY - 90 * DAY / 50;
        unsigned max = 0;

        assert_non_null(per_second);
        for (unsigned i = 0; i < N; i++) {
                int64_t nb = T0 + i % 60;
                int64_t at = renew(nb, nb + 90 * DAY, NULL, T0 + 3600, i * 7919u);

                assert_true(at >= lo && at <= lo + span);
                per_second[at - lo]++;
                max = MAX(max, per_second[at - lo]);
        }
        print_message("# most renewals in one second: %u of %d\n", max, N);
        assert_true(max <= 4);
        free(per_second);

        /* The same after downtime: all overdue, spread over the hour. */
        per_second = calloc(ACME_SCHED_CATCHUP_MAX + 1, sizeof(*per_second));
        assert_non_null(per_second);
        max = 0;
        for (unsigned i = 0; i < N; i++) {
                int64_t nb = T0 + i % 60, now = T0 + 70 * DAY;
                int64_t at = renew(nb, nb + 90 * DAY, NULL, now, i);

                assert_true(at >= now && at <= now + ACME_SCHED_CATCHUP_MAX);
                per_second[at - now]++;
                max = MAX(max, per_second[at - now]);
        }
        print_message("# most overdue renewals in one second: %u of %d\n", max, N);
        assert_true(max <= 16);
        free(per_second);
}

static void test_overdue(void **state)
{
        /* Past the point: within the hour (1 % of 90 days is more). */
        check_spread(T0, T0 + 90 * DAY, NULL, T0 + 80 * DAY, T0 + 80 * DAY, T0 + 80 * DAY + HOUR);
        /* A 6-day certificate: 1 % of its life (86 min) is more than an hour too. */
        check_spread(T0, T0 + 6 * DAY, NULL, T0 + 4 * DAY, T0 + 4 * DAY, T0 + 4 * DAY + HOUR);
        /* A 1-day certificate: 1 % is 864 s. */
        check_spread(T0, T0 + DAY, NULL, T0 + 13 * HOUR, T0 + 13 * HOUR, T0 + 13 * HOUR + 864);
        /* 400 s before expiry: within a quarter of that. */
        check_spread(T0, T0 + 90 * DAY, NULL, T0 + 90 * DAY - 400, T0 + 90 * DAY - 400,
                     T0 + 90 * DAY - 300);
        /* Expired: now. */
        assert_int_equal(renew(T0, T0 + 90 * DAY, NULL, T0 + 91 * DAY, 5), T0 + 91 * DAY);
        assert_int_equal(renew(T0, T0 + 90 * DAY, NULL, T0 + 90 * DAY, 5), T0 + 90 * DAY);
}

static void test_ari(void **state)
{
        const int64_t na = T0 + 90 * DAY;
        struct acme_sched_window w = {T0 + 50 * DAY, T0 + 52 * DAY};
        int64_t at = 0;

        /* Ahead: anywhere in the window, whatever the default says. */
        check_spread(T0, na, &w, T0 + DAY, w.start, w.end);
        /* Open now: in the part still ahead. */
        check_spread(T0, na, &w, T0 + 51 * DAY, T0 + 51 * DAY, w.end);
        /* Over: now. */
        assert_int_equal(renew(T0, na, &w, T0 + 53 * DAY, 1), T0 + 53 * DAY);
        assert_int_equal(renew(T0, na, &w, w.end, 1), w.end);
        /* A window reaching past notAfter (a broken or hostile CA): cut. */
        w = (struct acme_sched_window){na - DAY, na + 30 * DAY};
        check_spread(T0, na, &w, T0, na - DAY, na);
        w = (struct acme_sched_window){na + DAY, na + 30 * DAY};
        assert_int_equal(renew(T0, na, &w, T0, 1), na);
        /* An early window, as for a revocation: honoured. */
        w = (struct acme_sched_window){T0 + DAY, T0 + DAY + HOUR};
        check_spread(T0, na, &w, T0 + HOUR, w.start, w.end);
        /* A one-second window. */
        w = (struct acme_sched_window){T0 + 40 * DAY, T0 + 40 * DAY + 1};
        assert_true(renew(T0, na, &w, T0, 9) - w.start <= 1);
        /* end <= start is invalid (RFC 9773 §4.2): ignored, said so, and
         * the default applies. */
        w = (struct acme_sched_window){T0 + 52 * DAY, T0 + 50 * DAY};
        assert_int_equal(acme_sched_renewal_time(T0, na, &w, T0, 3, &at), 1);
        assert_int_equal(at, renew(T0, na, NULL, T0, 3));
        w = (struct acme_sched_window){T0 + 40 * DAY, T0 + 40 * DAY};
        assert_int_equal(acme_sched_renewal_time(T0, na, &w, T0, 3, &at), 1);
        assert_int_equal(at, renew(T0, na, NULL, T0, 3));
        /* Extreme values from a server do not overflow. */
        w = (struct acme_sched_window){INT64_MIN, INT64_MAX};
        check_spread(T0, na, &w, T0, T0, na);
        w = (struct acme_sched_window){INT64_MIN, INT64_MIN + 1};
        assert_int_equal(renew(T0, na, &w, T0, 1), T0);
}

static void test_invalid(void **state)
{
        int64_t at = 77;

        assert_int_equal(acme_sched_renewal_time(T0, T0, NULL, T0, 1, &at), -EINVAL);
        assert_int_equal(acme_sched_renewal_time(T0, T0 - 1, NULL, T0, 1, &at), -EINVAL);
        assert_int_equal(acme_sched_renewal_time(INT64_MIN, T0, NULL, T0, 1, &at), -EINVAL);
        assert_int_equal(acme_sched_renewal_time(T0, INT64_MAX, NULL, T0, 1, &at), -EINVAL);
        assert_int_equal(acme_sched_renewal_time(T0, T0 + DAY, NULL, INT64_MAX, 1, &at), -EINVAL);
        assert_int_equal(at, 77);
        /* The whole X.509 range is fine. */
        assert_int_equal(acme_sched_renewal_time(ACME_SCHED_TIME_MIN, ACME_SCHED_TIME_MAX, NULL,
                                                 ACME_SCHED_TIME_MIN, 1, &at),
                         0);
        assert_true(at > ACME_SCHED_TIME_MIN && at < ACME_SCHED_TIME_MAX);
}

static void test_backoff(void **state)
{
        static const uint64_t want[] = {300,  600,   1200,  2400,  4800,
                                        9600, 19200, 38400, 76800, 86400};
        uint64_t prev_max = 0;

        for (unsigned f = 1; f <= 12; f++) {
                uint64_t d = want[MIN(f, ELEMENTSOF(want)) - 1], lo = UINT64_MAX, hi = 0;

                for (uint64_t seed = 0; seed < 5000; seed++) {
                        uint64_t x = acme_sched_backoff_delay(f, seed);

                        lo = MIN(lo, x);
                        hi = MAX(hi, x);
                }
                print_message("# failure %u: %llu..%llu s\n", f, (unsigned long long)lo,
                              (unsigned long long)hi);
                assert_true(hi <= d && hi >= d - d / 100);
                assert_true(lo >= d - d / 4 && lo <= d - d / 4 + d / 100);
                /* Never shorter than the step before (up to sampling). */
                assert_true(hi + d / 100 >= prev_max);
                prev_max = hi;
        }
        assert_true(acme_sched_backoff_delay(UINT32_MAX, 1) <= ACME_SCHED_BACKOFF_CAP);
        /* Different failures of one certificate get different jitter. */
        assert_int_not_equal(acme_sched_backoff_delay(20, 1), acme_sched_backoff_delay(21, 1));
}

static void test_failed_succeeded(void **state)
{
        struct acme_sched_backoff b = {};
        const int64_t now = T0 + 60 * DAY, na = T0 + 90 * DAY;
        int64_t next;

        next = acme_sched_failed(&b, now, 0, na, 1);
        assert_int_equal(b.failures, 1);
        assert_int_equal(b.next, next);
        assert_true(next >= now + 225 && next <= now + 300);
        next = acme_sched_failed(&b, now, 0, na, 1);
        assert_true(next >= now + 450 && next <= now + 600);
        /* rateLimited with Retry-After: never earlier. */
        next = acme_sched_failed(&b, now, 3 * DAY, na, 1);
        assert_int_equal(next, now + 3 * DAY);
        /* A Retry-After shorter than the backoff changes nothing. */
        next = acme_sched_failed(&b, now, 10, na, 1);
        assert_true(next >= now + 1800 && next <= now + 2400);
        /* An absurd one is honoured up to 7 days. */
        next = acme_sched_failed(&b, now, 1ull << 31, na, 1);
        assert_int_equal(next, now + ACME_SCHED_RETRY_AFTER_MAX);
        assert_int_equal(b.failures, 5);
        /* Success resets. */
        acme_sched_succeeded(&b);
        assert_int_equal(b.failures, 0);
        assert_int_equal(b.next, 0);
        next = acme_sched_failed(&b, now, 0, na, 1);
        assert_true(next >= now + 225 && next <= now + 300);

        /* Near expiry the cap is half the time left: 3 h left, 20 failures. */
        b = (struct acme_sched_backoff){.failures = 20};
        next = acme_sched_failed(&b, na - 3 * HOUR, 0, na, 1);
        assert_true(next <= na - 3 * HOUR + 90 * 60);
        /* ... but never under the base, */
        next = acme_sched_failed(&b, na - 100, 0, na, 1);
        assert_int_equal(next, na - 100 + ACME_SCHED_BACKOFF_BASE);
        /* and a Retry-After still wins. */
        next = acme_sched_failed(&b, na - 3 * HOUR, 4 * HOUR, na, 1);
        assert_int_equal(next, na + HOUR);
        /* Expired or unknown expiry: the plain backoff. */
        next = acme_sched_failed(&b, na + HOUR, 0, na, 1);
        assert_true(next >= na + HOUR + 64800 && next <= na + HOUR + DAY);
        next = acme_sched_failed(&b, now, 0, 0, 1);
        assert_true(next >= now + 64800 && next <= now + DAY);
        /* The counter saturates. */
        b.failures = UINT32_MAX;
        (void)acme_sched_failed(&b, now, 0, 0, 1);
        assert_int_equal(b.failures, UINT32_MAX);
        next = acme_sched_failed(&b, INT64_MAX, 0, 0, 1);
        assert_true(next > ACME_SCHED_TIME_MAX);
}

static void test_ari_recheck(void **state)
{
        uint64_t lo = UINT64_MAX, hi = 0;

        for (uint64_t seed = 0; seed < 5000; seed++) {
                uint64_t d = acme_sched_ari_recheck(false, 0, seed);

                lo = MIN(lo, d);
                hi = MAX(hi, d);
        }
        assert_true(lo >= 6 * HOUR && lo < 6 * HOUR + 60);
        assert_true(hi <= 6 * HOUR + 6 * HOUR / 10 && hi > 6 * HOUR + 6 * HOUR / 10 - 60);
        for (uint64_t seed = 0; seed < 100; seed++) {
                uint64_t d = acme_sched_ari_recheck(true, 60, seed);

                assert_true(d >= HOUR && d <= HOUR + HOUR / 10);
                d = acme_sched_ari_recheck(true, 7200, seed);
                assert_true(d >= 7200 && d <= 7200 + 720);
                d = acme_sched_ari_recheck(true, 3 * DAY, seed);
                assert_int_equal(d, DAY);
                d = acme_sched_ari_recheck(true, 0, seed);
                assert_true(d >= HOUR && d <= HOUR + HOUR / 10);
                d = acme_sched_ari_recheck(true, UINT64_MAX, seed);
                assert_int_equal(d, DAY);
        }
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_lifetimes),        cmocka_unit_test(test_thundering_herd),
                cmocka_unit_test(test_overdue),          cmocka_unit_test(test_ari),
                cmocka_unit_test(test_invalid),          cmocka_unit_test(test_backoff),
                cmocka_unit_test(test_failed_succeeded), cmocka_unit_test(test_ari_recheck),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
