/* SPDX-License-Identifier: Apache-2.0 */
/* The body pump: every source framing into every destination framing,
 * batches bounded by the queue and the chunk heads, zero copy (the queue
 * points into the source), and malformed chunked sources refused. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "common/macros.h"
#include "proxy/h1-body.h"

static const struct proxy_h1_limits lim = {.max_head = 4096, .max_headers = 32, .max_target = 4096};

/* Pump all of @src through repeated fills (the queue "written" after each)
 * and return what the destination got. */
static size_t pump_all(struct h1_pump *p, const char *src, size_t n, bool eof, char *out,
                       size_t size, unsigned *ret_batches)
{
        struct iovq q;
        uint32_t pos = 0;
        size_t got = 0;
        unsigned batches = 0;

        for (;;) {
                iovq_reset(&q);
                assert_int_equal(h1_pump_fill(p, (uint8_t *)src, &pos, (uint32_t)n, eof, &q), 0);
                for (unsigned i = q.i; i < q.n; i++) {
                        /* Zero copy: data pieces point into the source. */
                        assert_true(got + q.iov[i].iov_len < size);
                        memcpy(out + got, q.iov[i].iov_base, q.iov[i].iov_len);
                        got += q.iov[i].iov_len;
                }
                if (q.n)
                        batches++;
                if (h1_pump_finished(p) || (q.n == 0 && pos == n))
                        break;
        }
        out[got] = 0;
        if (ret_batches)
                *ret_batches = batches;
        return got;
}

static void test_length(void **state)
{
        static const char src[] = "abcdef";
        struct h1_pump p;
        char out[64];
        struct iovq q;
        uint32_t pos = 0;

        h1_pump_init(&p, PROXY_H1_BODY_LENGTH, PROXY_H1_BODY_LENGTH, 5, &lim);
        assert_int_equal(pump_all(&p, "helloNEXT", 9, false, out, sizeof(out), NULL), 5);
        assert_string_equal(out, "hello");
        /* A body of 0 bytes is done before it starts. */
        h1_pump_init(&p, PROXY_H1_BODY_LENGTH, PROXY_H1_BODY_LENGTH, 0, &lim);
        assert_true(h1_pump_finished(&p));
        /* Bytes past the body stay where they are (the next message); the
         * queue points into the source, nothing is copied. */
        h1_pump_init(&p, PROXY_H1_BODY_LENGTH, PROXY_H1_BODY_LENGTH, 3, &lim);
        iovq_reset(&q);
        assert_int_equal(h1_pump_fill(&p, (uint8_t *)src, &pos, 6, false, &q), 0);
        assert_int_equal(pos, 3);
        assert_int_equal(q.n, 1);
        assert_ptr_equal(q.iov[0].iov_base, src);
}

static void test_chunked_reencoded(void **state)
{
        static const char src[] = "3;ext=1\r\nabc\r\n5\r\nhello\r\n0\r\nTrailer: x\r\n\r\nNEXT";
        struct h1_pump p;
        char out[128];

        h1_pump_init(&p, PROXY_H1_BODY_CHUNKED, PROXY_H1_BODY_CHUNKED, 0, &lim);
        pump_all(&p, src, sizeof(src) - 1, false, out, sizeof(out), NULL);
        /* Our own chunk heads, no extensions, no trailers. */
        assert_string_equal(out, "3\r\nabc\r\n5\r\nhello\r\n0\r\n\r\n");

        /* Decoded to raw (HTTP/1.0 client, or an HTTP/2 stream). */
        h1_pump_init(&p, PROXY_H1_BODY_CHUNKED, PROXY_H1_BODY_CLOSE, 0, &lim);
        pump_all(&p, src, sizeof(src) - 1, false, out, sizeof(out), NULL);
        assert_string_equal(out, "abchello");
}

/* A backend's trailers, kept: in the last chunk for a chunked destination
 * (fields that must not be trailers dropped, the others byte-exact),
 * located in the buffer for a raw one (an HTTP/2 stream passes them on);
 * the section is held in the source until complete, however it arrives. */
static void test_kept_trailers(void **state)
{
        static const char src[] = "3\r\nabc\r\n0\r\nGrpc-Status: 0\r\nSet-Cookie: a=b\r\n"
                                  "X-B:  b \r\nContent-Type: x\r\n\r\nNEXT";
        static const char want[] = "3\r\nabc\r\n0\r\nGrpc-Status: 0\r\nX-B:  b \r\n\r\n";
        static const char fields[] = "Grpc-Status: 0\r\nX-B:  b \r\n";
        size_t n = sizeof(src) - 1;

        for (size_t k = 0; k <= n; k++) {
                char buf[sizeof(src)], out[128];
                struct h1_pump p;
                struct iovq q;
                uint32_t pos = 0;
                size_t got = 0;

                memcpy(buf, src, sizeof(src));
                h1_pump_init(&p, PROXY_H1_BODY_CHUNKED, PROXY_H1_BODY_CHUNKED, 0, &lim);
                h1_pump_keep_trailers(&p);
                for (int part = 0; part < 2 && !h1_pump_finished(&p); part++) {
                        uint32_t len = (uint32_t)(part == 0 ? k : n);

                        for (;;) {
                                iovq_reset(&q);
                                assert_int_equal(
                                        h1_pump_fill(&p, (uint8_t *)buf, &pos, len, false, &q), 0);
                                for (unsigned i = q.i; i < q.n; i++) {
                                        memcpy(out + got, q.iov[i].iov_base, q.iov[i].iov_len);
                                        got += q.iov[i].iov_len;
                                }
                                if (h1_pump_finished(&p) || q.n == 0)
                                        break;
                        }
                        if (!h1_pump_finished(&p))
                                /* Held bytes are not consumed. */
                                assert_int_equal(pos + h1_pump_held(&p), len);
                }
                assert_true(h1_pump_finished(&p));
                assert_int_equal(pos, n - 4);
                /* Data split by the handover is re-chunked as it came:
                 * the same chunked body decoded, the same last chunk. */
                assert_true(got >= sizeof(want) - 1 - 8);
                assert_memory_equal(out + got - (sizeof(want) - 1 - 8), want + 8,
                                    sizeof(want) - 1 - 8);
                {
                        struct proxy_h1_chunked c;
                        char data[8];
                        size_t dn = 0, dl, at = 0;

                        proxy_h1_chunked_init(&c, 64, 128, 8);
                        while (!proxy_h1_chunked_done(&c)) {
                                int r = proxy_h1_chunked_decode(&c, (uint8_t *)out + at, got - at,
                                                                &dl);

                                assert_true(r > 0 && dn + dl <= sizeof(data));
                                memcpy(data + dn, out + at + r - dl, dl);
                                dn += dl;
                                at += (size_t)r;
                        }
                        assert_int_equal(at, got);
                        assert_int_equal(dn, 3);
                        assert_memory_equal(data, "abc", 3);
                }
        }

        /* Raw: the body alone; the fields at tr_off in the source. */
        {
                char buf[sizeof(src)], out[64];
                struct h1_pump p;

                memcpy(buf, src, sizeof(src));
                h1_pump_init(&p, PROXY_H1_BODY_CHUNKED, PROXY_H1_BODY_CLOSE, 0, &lim);
                h1_pump_keep_trailers(&p);
                pump_all(&p, buf, n, false, out, sizeof(out), NULL);
                assert_string_equal(out, "abc");
                assert_int_equal(p.tr_len, sizeof(fields) - 1);
                assert_memory_equal(buf + p.tr_off, fields, p.tr_len);
        }

        /* Nothing allowed: the plain last-chunk. */
        {
                char buf[] = "1\r\na\r\n0\r\nContent-Length: 1\r\nTE: x\r\n\r\n", out[64];
                struct h1_pump p;

                h1_pump_init(&p, PROXY_H1_BODY_CHUNKED, PROXY_H1_BODY_CHUNKED, 0, &lim);
                h1_pump_keep_trailers(&p);
                pump_all(&p, buf, sizeof(buf) - 1, false, out, sizeof(out), NULL);
                assert_string_equal(out, "1\r\na\r\n0\r\n\r\n");
                assert_int_equal(p.tr_len, 0);
        }
}

static void test_close_delimited(void **state)
{
        struct h1_pump p;
        char out[64];

        /* Until EOF, re-encoded as chunks for an HTTP/1.1 client. */
        h1_pump_init(&p, PROXY_H1_BODY_CLOSE, PROXY_H1_BODY_CHUNKED, 0, &lim);
        pump_all(&p, "tail", 4, false, out, sizeof(out), NULL);
        assert_false(h1_pump_finished(&p));
        assert_string_equal(out, "4\r\ntail\r\n");
        {
                struct iovq q;
                uint32_t pos = 0;

                iovq_reset(&q);
                assert_int_equal(h1_pump_fill(&p, (uint8_t *)"", &pos, 0, true, &q), 0);
                assert_true(h1_pump_finished(&p));
                assert_int_equal(q.n, 1);
                assert_memory_equal(q.iov[0].iov_base, "0\r\n\r\n", 5);
        }
}

/* Many small chunks: a batch stops at H1_PUMP_CHUNKS chunk heads, the
 * next one goes on where it stopped, and nothing is lost. */
static void test_batches(void **state)
{
        char src[1024], want[256], out[2048];
        struct h1_pump p;
        size_t n = 0, nw = 0;
        unsigned batches;

        for (unsigned i = 0; i < 20; i++) {
                n += (size_t)sprintf(src + n, "1\r\n%c\r\n", 'a' + i);
                want[nw++] = (char)('a' + i);
        }
        n += (size_t)sprintf(src + n, "0\r\n\r\n");
        want[nw] = 0;
        h1_pump_init(&p, PROXY_H1_BODY_CHUNKED, PROXY_H1_BODY_CLOSE, 0, &lim);
        pump_all(&p, src, n, false, out, sizeof(out), &batches);
        assert_string_equal(out, want);
        h1_pump_init(&p, PROXY_H1_BODY_CHUNKED, PROXY_H1_BODY_CHUNKED, 0, &lim);
        pump_all(&p, src, n, false, out, sizeof(out), &batches);
        assert_true(batches >= (20 + H1_PUMP_CHUNKS - 1) / H1_PUMP_CHUNKS);
        assert_true(strlen(out) == 20 * 6 + 5);
}

static void test_bad_chunked(void **state)
{
        static const char *const bad[] = {"zz\r\n", "3\r\nabcX\r\n", "-1\r\n"};
        struct h1_pump p;
        struct iovq q;

        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                uint32_t pos = 0;
                int r;

                h1_pump_init(&p, PROXY_H1_BODY_CHUNKED, PROXY_H1_BODY_CHUNKED, 0, &lim);
                iovq_reset(&q);
                r = h1_pump_fill(&p, (uint8_t *)bad[i], &pos, (uint32_t)strlen(bad[i]), false, &q);
                assert_true(r == -EBADMSG || r == -EMSGSIZE);
        }
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_length),          cmocka_unit_test(test_chunked_reencoded),
                cmocka_unit_test(test_close_delimited), cmocka_unit_test(test_batches),
                cmocka_unit_test(test_bad_chunked),     cmocka_unit_test(test_kept_trailers),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
