/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/macros.h"
#include "common/spsc-ring.h"

/* Everything readable, copied out in order. */
static size_t read_all(struct spsc_ring *r, uint8_t *out, size_t size)
{
        struct iovec iov[2];
        unsigned n = spsc_ring_peek(r, iov);
        size_t len = 0;

        for (unsigned i = 0; i < n; i++) {
                assert_true(len + iov[i].iov_len <= size);
                memcpy(out + len, iov[i].iov_base, iov[i].iov_len);
                len += iov[i].iov_len;
        }
        return len;
}

static void test_sizes(void **state)
{
        struct spsc_ring *r = NULL;

        assert_int_equal(spsc_ring_new(0, &r), -EINVAL);
        assert_int_equal(spsc_ring_new(32, &r), -EINVAL);
        assert_int_equal(spsc_ring_new(100, &r), -EINVAL);
        assert_int_equal(spsc_ring_new((size_t)SPSC_RING_MAX_SIZE * 2, &r), -EINVAL);
        assert_null(r);
        assert_int_equal(spsc_ring_new(64, &r), 0);
        assert_int_equal(spsc_ring_size(r), 64);
        assert_int_equal(spsc_ring_used(r), 0);
        r = spsc_ring_free(r);
        assert_null(spsc_ring_free(NULL));
}

static void test_push_peek_consume(void **state)
{
        _cleanup_(spsc_ring_freep) struct spsc_ring *r = NULL;
        struct iovec iov[2];
        uint8_t out[64];

        assert_int_equal(spsc_ring_new(64, &r), 0);
        assert_int_equal(spsc_ring_peek(r, iov), 0);
        assert_int_equal(spsc_ring_push(r, "hello\n", 6), 6);
        assert_int_equal(spsc_ring_push(r, "world\n", 6), 12);
        assert_int_equal(spsc_ring_used(r), 12);
        assert_int_equal(spsc_ring_peek(r, iov), 1);
        assert_int_equal(iov[0].iov_len, 12);
        assert_memory_equal(iov[0].iov_base, "hello\nworld\n", 12);
        /* A partial consume leaves the rest readable in place. */
        spsc_ring_consume(r, 6);
        assert_int_equal(read_all(r, out, sizeof(out)), 6);
        assert_memory_equal(out, "world\n", 6);
        spsc_ring_consume(r, 6);
        assert_int_equal(spsc_ring_peek(r, iov), 0);
        assert_int_equal(spsc_ring_used(r), 0);
}

/* All or nothing: a push that does not fit writes nothing. */
static void test_full(void **state)
{
        _cleanup_(spsc_ring_freep) struct spsc_ring *r = NULL;
        uint8_t big[65], out[64];

        memset(big, 'x', sizeof(big));
        assert_int_equal(spsc_ring_new(64, &r), 0);
        assert_int_equal(spsc_ring_push(r, big, 65), -EMSGSIZE);
        assert_int_equal(spsc_ring_push(r, big, 60), 60);
        assert_int_equal(spsc_ring_push(r, "12345", 5), -ENOBUFS);
        assert_int_equal(spsc_ring_used(r), 60);
        assert_int_equal(spsc_ring_push(r, "1234", 4), 64);
        assert_int_equal(spsc_ring_push(r, "1", 1), -ENOBUFS);
        assert_int_equal(read_all(r, out, sizeof(out)), 64);
        assert_memory_equal(out + 60, "1234", 4);
        spsc_ring_consume(r, 64);
        assert_int_equal(spsc_ring_push(r, big, 64), 64);
}

/* A message across the end of the buffer comes back as two spans, in order. */
static void test_wrap(void **state)
{
        _cleanup_(spsc_ring_freep) struct spsc_ring *r = NULL;
        struct iovec iov[2];
        uint8_t out[64];

        assert_int_equal(spsc_ring_new(64, &r), 0);
        for (unsigned round = 0; round < 100; round++) {
                char msg[40];

                for (size_t i = 0; i < sizeof(msg); i++)
                        msg[i] = (char)('a' + (round + i) % 26);
                assert_int_equal(spsc_ring_push(r, msg, sizeof(msg)), (int)sizeof(msg));
                assert_int_equal(read_all(r, out, sizeof(out)), sizeof(msg));
                assert_memory_equal(out, msg, sizeof(msg));
                spsc_ring_consume(r, sizeof(msg));
        }
        /* 100 * 40 bytes pushed through 64: most rounds wrapped somewhere. */
        assert_int_equal(spsc_ring_push(r, "0123456789012345678901234567890123456789", 40), 40);
        assert_int_equal(spsc_ring_peek(r, iov), 2);
        assert_int_equal(iov[0].iov_len + iov[1].iov_len, 40);
}

/* ---- two threads ---- */

#define STRESS_MSGS 200000u

struct stress {
        struct spsc_ring *r;
        uint64_t full; /* pushes refused (retried) */
};

/* Message i: [len:1][seq:4][payload: len - 5 bytes, each (seq + k) & 0xff];
 * lengths 5..255 vary with i, so messages wrap at every offset. */
static size_t make_msg(uint32_t seq, uint8_t *m)
{
        size_t len = 5 + (seq * 7919u) % 251u;

        m[0] = (uint8_t)len;
        memcpy(m + 1, &seq, 4);
        for (size_t k = 5; k < len; k++)
                m[k] = (uint8_t)(seq + k);
        return len;
}

static void *producer(void *ud)
{
        struct stress *st = ud;
        uint8_t m[256];

        for (uint32_t seq = 0; seq < STRESS_MSGS; seq++) {
                size_t len = make_msg(seq, m);
                int r;

                while ((r = spsc_ring_push(st->r, m, len)) == -ENOBUFS) {
                        st->full++;
                        sched_yield();
                }
                /* Not cmocka's asserts: they longjmp, on the main thread only. */
                if (r < (int)len || r > (int)spsc_ring_size(st->r))
                        abort();
        }
        return NULL;
}

/* The consumer checks that it sees exactly the messages in order, each
 * whole: a partial or torn push would break the framing at once. It
 * consumes in uneven steps (sometimes a message and a half) so both the
 * producer and the consumer cross the end of the buffer everywhere. */
static void test_two_threads(void **state)
{
        _cleanup_(spsc_ring_freep) struct spsc_ring *r = NULL;
        struct stress st = {};
        uint8_t want[256], got[256];
        uint32_t seq = 0;
        size_t have = 0;
        pthread_t t;

        assert_int_equal(spsc_ring_new(1024, &r), 0);
        st.r = r;
        assert_int_equal(pthread_create(&t, NULL, producer, &st), 0);
        while (seq < STRESS_MSGS) {
                struct iovec iov[2];
                unsigned n = spsc_ring_peek(r, iov);
                size_t take = 0;

                if (n == 0) {
                        sched_yield();
                        continue;
                }
                for (unsigned i = 0; i < n && seq < STRESS_MSGS; i++) {
                        const uint8_t *p = iov[i].iov_base;

                        for (size_t k = 0; k < iov[i].iov_len && seq < STRESS_MSGS; k++) {
                                got[have++] = p[k];
                                take++;
                                if (have == got[0]) {
                                        size_t len = make_msg(seq, want);

                                        assert_int_equal(have, len);
                                        assert_memory_equal(got, want, len);
                                        seq++;
                                        have = 0;
                                        /* Stop in the middle of the next one now and then. */
                                        if (seq % 3 == 0 && k + 1 < iov[i].iov_len)
                                                goto consume;
                                }
                        }
                }
consume:
                spsc_ring_consume(r, take);
        }
        assert_int_equal(pthread_join(t, NULL), 0);
        assert_int_equal(have, 0);
        assert_int_equal(spsc_ring_used(r), 0);
        /* 200k messages of ~130 bytes through 1 KiB: it was full often. */
        assert_true(st.full > 0);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_sizes),       cmocka_unit_test(test_push_peek_consume),
                cmocka_unit_test(test_full),        cmocka_unit_test(test_wrap),
                cmocka_unit_test(test_two_threads),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
