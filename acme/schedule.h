/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* The renewal scheduler's arithmetic: when to renew a certificate, how long
 * to wait after a failed attempt, when to ask for its ARI again. Pure: no
 * I/O, no clock (now is a parameter, Unix seconds), no hidden randomness
 * (a 64-bit @seed is; the daemon gives each certificate its own, e.g. a
 * random value kept with it or a keyed hash of its serial, so the spread is
 * stable for a certificate and different between certificates). The
 * choices and their reasons are in docs/internals/acme.md. (Not "sched.h":
 * meson puts acme/ on the include path of its sources, where that name would
 * hide libc's <sched.h> from pthread.h and uv.h.) */

#include <stdbool.h>
#include <stdint.h>

#define ACME_SCHED_TIME_MIN        (-62135596800LL) /* 0001-01-01T00:00:00Z */
#define ACME_SCHED_TIME_MAX        253402300799LL   /* 9999-12-31T23:59:59Z */
#define ACME_SCHED_SHORT_LIFETIME  (10 * 86400)     /* up to this, renew at 1/2, not 2/3 */
#define ACME_SCHED_JITTER_PERCENT  2                /* of the lifetime, earlier than the point */
#define ACME_SCHED_CATCHUP_MAX     3600             /* overdue certificates spread over this */
#define ACME_SCHED_BACKOFF_BASE    300              /* first retry after a failure: 5 min */
#define ACME_SCHED_BACKOFF_CAP     86400            /* retries at least daily */
#define ACME_SCHED_RETRY_AFTER_MAX (7 * 86400)      /* a server's Retry-After honoured up to this */
#define ACME_SCHED_ARI_MIN         3600             /* ARI re-checked at most hourly */
#define ACME_SCHED_ARI_DEFAULT     (6 * 3600)       /* without a Retry-After */
#define ACME_SCHED_ARI_MAX         86400            /* and at least daily */

/* An ARI suggestedWindow (RFC 9773 §4.2), Unix seconds. */
struct acme_sched_window {
        int64_t start;
        int64_t end;
};

/* When to start renewing the certificate valid from @not_before to
 * @not_after, as computed at @now. Without @ari: two thirds into the
 * lifetime (half for lifetimes up to ACME_SCHED_SHORT_LIFETIME), up to 2 %
 * of the lifetime earlier by @seed; if that point has passed, a time within
 * min(1 h, 1 % of the lifetime, a quarter of the time left) from @now. With
 * @ari: a uniformly random time within the part of the window not yet past
 * and not after @not_after; @now if the window is over. Compute it once (on
 * load, after issuance, after each ARI answer) and keep it: recomputed on
 * every tick, an overdue time would keep moving ahead. Returns 0 and
 * *ret_at (>= @now), 1 when @ari was ignored because end <= start (invalid
 * by RFC 9773 §4.2; the default applies), or -EINVAL when @not_after <= @not_before or a time
 * lies outside [ACME_SCHED_TIME_MIN, ACME_SCHED_TIME_MAX]. */
int acme_sched_renewal_time(int64_t not_before, int64_t not_after,
                            const struct acme_sched_window *ari, int64_t now, uint64_t seed,
                            int64_t *ret_at);

/* The failure backoff of one certificate. Zero-initialised: no failure. */
struct acme_sched_backoff {
        unsigned failures; /* consecutive failed attempts since the last success */
        int64_t next;      /* no attempt before this (Unix seconds); 0: none pending */
};

/* The delay before attempt @failures + 1 (@failures >= 1), without a
 * server's word: ACME_SCHED_BACKOFF_BASE doubled per failure up to
 * ACME_SCHED_BACKOFF_CAP, then up to a quarter less by @seed and @failures. */
uint64_t acme_sched_backoff_delay(unsigned failures, uint64_t seed);

/* Record a failed attempt at @now: @retry_after_s is the server's
 * Retry-After (0: none), never retried earlier than that (but honoured up
 * to ACME_SCHED_RETRY_AFTER_MAX only, so one header cannot stop renewal for
 * good); before @not_after (0: unknown) the delay is also at most half the
 * time left, but never under ACME_SCHED_BACKOFF_BASE, so attempts come
 * closer together as expiry nears. @now is clamped to the X.509 range.
 * Sets b->next and returns it. */
int64_t acme_sched_failed(struct acme_sched_backoff *b, int64_t now, uint64_t retry_after_s,
                          int64_t not_after, uint64_t seed);
/* A successful attempt: the backoff starts from the base again. */
void acme_sched_succeeded(struct acme_sched_backoff *b);

/* Seconds until the ARI of a certificate is fetched again: the response's
 * Retry-After (@has_retry_after) clamped to [ACME_SCHED_ARI_MIN,
 * ACME_SCHED_ARI_MAX], else ACME_SCHED_ARI_DEFAULT; then up to 10 % later by
 * @seed (never past ACME_SCHED_ARI_MAX), so certificates loaded together do
 * not poll the CA together. */
uint64_t acme_sched_ari_recheck(bool has_retry_after, uint64_t retry_after_s, uint64_t seed);
