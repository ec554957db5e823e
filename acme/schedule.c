/* SPDX-License-Identifier: Apache-2.0 */
#include "acme/schedule.h"

#include <errno.h>

#include "common/macros.h"

/* SplitMix64's finaliser: every bit of @x affects every bit of the result,
 * so consecutive seeds (1, 2, 3...) still spread evenly. */
static uint64_t mix(uint64_t x)
{
        x += 0x9e3779b97f4a7c15ull;
        x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
        x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
        return x ^ (x >> 31);
}

/* A value in [0, n] from @r, uniform over r (Lemire's multiply-shift: no
 * division, bias below 2^-64 * n). */
static uint64_t pick(uint64_t r, uint64_t n)
{
        if (n == UINT64_MAX)
                return r;
        return (uint64_t)(((unsigned __int128)r * (n + 1)) >> 64);
}

static int64_t max64(int64_t a, int64_t b)
{
        return a > b ? a : b;
}

static int64_t min64(int64_t a, int64_t b)
{
        return a < b ? a : b;
}

/* X.509 times (RFC 5280 §4.1.2.5) lie in years 1..9999: far inside int64,
 * so differences and sums of two of them cannot overflow. */
static bool in_range(int64_t t)
{
        return t >= ACME_SCHED_TIME_MIN && t <= ACME_SCHED_TIME_MAX;
}

int acme_sched_renewal_time(int64_t not_before, int64_t not_after,
                            const struct acme_sched_window *ari, int64_t now, uint64_t seed,
                            int64_t *ret_at)
{
        int64_t life, at, spread;
        uint64_t r = mix(seed);

        if (!in_range(not_before) || !in_range(not_after) || !in_range(now) ||
            not_after <= not_before)
                return -EINVAL;
        life = not_after - not_before;

        /* RFC 9773 §4.2: end <= start is invalid, to be treated as no
         * answer: the default schedule applies. */
        if (ari && ari->end > ari->start) {
                /* RFC 9773 §4.2 picks uniformly in the whole window and
                 * renews at once if the pick is past; picking in the part
                 * still ahead keeps the spread the CA asked for instead of
                 * piling those picks up at @now. */
                int64_t a = max64(ari->start, now), b = min64(ari->end, not_after);

                if (b <= now) {
                        *ret_at = now;
                        return 0;
                }
                a = min64(a, b);
                *ret_at = a + (int64_t)pick(r, (uint64_t)(b - a));
                return 0;
        }

        /* Two thirds leaves a third of the lifetime for retries (30 days of
         * a 90-day certificate, as Let's Encrypt recommends); short-lived
         * certificates (6-day profiles) renew at half, so a failed renewal
         * still has days, not hours, before expiry. */
        at = not_before + (life > ACME_SCHED_SHORT_LIFETIME ? life * 2 / 3 : life / 2);
        at -= (int64_t)pick(r, (uint64_t)(life / 100 * ACME_SCHED_JITTER_PERCENT));
        if (at > now) {
                *ret_at = at;
                return ari ? 1 : 0;
        }
        /* Overdue (loaded late, or after downtime): soon, but spread, so
         * thousands of overdue certificates do not all order in one second;
         * never more than a quarter of the time left. */
        spread = min64(ACME_SCHED_CATCHUP_MAX, life / 100);
        spread = min64(spread, max64(0, (not_after - now) / 4));
        *ret_at = now + (int64_t)pick(mix(r), (uint64_t)spread);
        return ari ? 1 : 0;
}

uint64_t acme_sched_backoff_delay(unsigned failures, uint64_t seed)
{
        uint64_t d = ACME_SCHED_BACKOFF_BASE;

        for (unsigned i = 1; i < failures && d < ACME_SCHED_BACKOFF_CAP; i++)
                d *= 2;
        d = MIN(d, (uint64_t)ACME_SCHED_BACKOFF_CAP);
        /* Up to a quarter less: retries of certificates that failed together
         * (a CA outage) come back apart, and the cap stays a cap. */
        return d - pick(mix(seed ^ mix(failures)), d / 4);
}

int64_t acme_sched_failed(struct acme_sched_backoff *b, int64_t now, uint64_t retry_after_s,
                          int64_t not_after, uint64_t seed)
{
        uint64_t d;

        if (b->failures < UINT32_MAX)
                b->failures++;
        d = acme_sched_backoff_delay(b->failures, seed);
        now = MAX(MIN(now, ACME_SCHED_TIME_MAX), ACME_SCHED_TIME_MIN);
        if (not_after > now && in_range(not_after))
                d = MIN(d, MAX((uint64_t)(not_after - now) / 2, (uint64_t)ACME_SCHED_BACKOFF_BASE));
        d = MAX(d, MIN(retry_after_s, (uint64_t)ACME_SCHED_RETRY_AFTER_MAX));
        b->next = now + (int64_t)d;
        return b->next;
}

void acme_sched_succeeded(struct acme_sched_backoff *b)
{
        *b = (struct acme_sched_backoff){};
}

uint64_t acme_sched_ari_recheck(bool has_retry_after, uint64_t retry_after_s, uint64_t seed)
{
        uint64_t d = has_retry_after ? retry_after_s : ACME_SCHED_ARI_DEFAULT;

        d = MAX(d, (uint64_t)ACME_SCHED_ARI_MIN);
        d = MIN(d, (uint64_t)ACME_SCHED_ARI_MAX);
        d += pick(mix(seed), d / 10);
        return MIN(d, (uint64_t)ACME_SCHED_ARI_MAX);
}
