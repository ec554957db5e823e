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

#include "common/md5.h"

static void hex(const uint8_t d[MD5_DIGEST_SIZE], char out[2 * MD5_DIGEST_SIZE + 1])
{
        for (unsigned i = 0; i < MD5_DIGEST_SIZE; i++)
                snprintf(out + 2 * i, 3, "%02x", d[i]);
}

static void check(const void *data, size_t n, const char *want)
{
        uint8_t d[MD5_DIGEST_SIZE];
        char got[2 * MD5_DIGEST_SIZE + 1];

        md5(data, n, d);
        hex(d, got);
        assert_string_equal(got, want);
}

/* RFC 1321 appendix A.5 test suite. */
static void test_rfc1321_suite(void **state)
{
        static const struct {
                const char *in, *md5;
        } v[] = {
                {"", "d41d8cd98f00b204e9800998ecf8427e"},
                {"a", "0cc175b9c0f1b6a831c399e269772661"},
                {"abc", "900150983cd24fb0d6963f7d28e17f72"},
                {"message digest", "f96b697d7cb7938d525a2f31aaf161d0"},
                {"abcdefghijklmnopqrstuvwxyz", "c3fcd3d76192e4007dfb496cca67e13b"},
                {"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
                 "d174ab98d277d9f5a5611c2c9f419d9f"},
                {"1234567890123456789012345678901234567890123456789012345678901234567890123456"
                 "7890",
                 "57edf4a22be3c955ac49da2e2107b67a"},
        };

        for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++)
                check(v[i].in, strlen(v[i].in), v[i].md5);
}

/* The input of the zos network-ID vector (§4.6): md5("37:mynet"). */
static void test_network_id_input(void **state)
{
        check("37:mynet", 8, "e86878dd0df0004b1c98d94ab4c105ee");
}

/* Padding boundaries around 56 and 64 bytes, vectors from Python hashlib. */
static void test_block_boundaries(void **state)
{
        static const struct {
                size_t n;
                const char *md5;
        } v[] = {
                {55, "52c0e574e1198de5fe3f8f11440dcb1b"},
                {56, "46c9907fc908ee68b1e7b8e71286a518"},
                {57, "1c805dd236c35cab25fcb1bc73802c51"},
                {63, "a62f6d59e837867693f042f5b8f5a236"},
                {64, "7160b8fb5e9e4023d549c3971fbaeead"},
                {65, "70bd662e7aefbda85a0f7244167b7897"},
                {119, "e84905d4214f4d1ca56c2cdcc152b143"},
                {120, "e3eb5a6c8669ea01a8c185b8abc8a5dc"},
                {127, "acce2474d6cc8302120d09c818d17ef7"},
                {128, "10b2da1a82f16d99a81a7203fe9f02cb"},
                {129, "03fefbbcebe2959cf2270241aafe0250"},
        };
        uint8_t buf[129];

        for (size_t i = 0; i < sizeof(buf); i++)
                buf[i] = (uint8_t)(i * 7 + 3);
        for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++)
                check(buf, v[i].n, v[i].md5);
}

/* Feeding the data in pieces of any size gives the one-shot digest. */
static void test_incremental(void **state)
{
        uint8_t buf[300], want[MD5_DIGEST_SIZE], got[MD5_DIGEST_SIZE];

        for (size_t i = 0; i < sizeof(buf); i++)
                buf[i] = (uint8_t)(i * 31 + 1);
        md5(buf, sizeof(buf), want);
        for (size_t chunk = 1; chunk <= 130; chunk++) {
                struct md5_ctx c;

                md5_init(&c);
                for (size_t off = 0; off < sizeof(buf); off += chunk)
                        md5_update(&c, buf + off,
                                   sizeof(buf) - off < chunk ? sizeof(buf) - off : chunk);
                md5_final(&c, got);
                assert_memory_equal(got, want, MD5_DIGEST_SIZE);
        }
}

static void test_million_a(void **state)
{
        char *a = malloc(1000000);

        assert_non_null(a);
        memset(a, 'a', 1000000);
        check(a, 1000000, "7707d6ae4e027c70eea2a935c2296f21");
        free(a);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_rfc1321_suite),    cmocka_unit_test(test_network_id_input),
                cmocka_unit_test(test_block_boundaries), cmocka_unit_test(test_incremental),
                cmocka_unit_test(test_million_a),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
