/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/base64.h"
#include "common/macros.h"

static void check_encode(const char *in, size_t n, const char *want)
{
        _cleanup_free_ char *got = NULL;
        char buf[64];

        assert_int_equal(base64url_encode(in, n, &got), 0);
        assert_string_equal(got, want);
        assert_int_equal(BASE64URL_LEN(n), strlen(want));
        assert_int_equal(base64url_encode_to(in, n, buf), strlen(want));
        assert_string_equal(buf, want);
}

static void check_decode(const char *in, const void *want, size_t want_len)
{
        _cleanup_free_ uint8_t *got = NULL;
        size_t len = 99;

        assert_int_equal(base64url_decode(in, strlen(in), &got, &len), 0);
        assert_int_equal(len, want_len);
        assert_memory_equal(got, want, want_len);
        assert_int_equal(got[len], 0);
}

/* RFC 4648 §10 test vectors, padding removed (RFC 7515 §2). */
static void test_rfc4648_vectors(void **state)
{
        static const struct {
                const char *in, *out;
        } v[] = {
                {"", ""},           {"f", "Zg"},          {"fo", "Zm8"},          {"foo", "Zm9v"},
                {"foob", "Zm9vYg"}, {"fooba", "Zm9vYmE"}, {"foobar", "Zm9vYmFy"},
        };

        for (size_t i = 0; i < ELEMENTSOF(v); i++) {
                check_encode(v[i].in, strlen(v[i].in), v[i].out);
                check_decode(v[i].out, v[i].in, strlen(v[i].in));
        }
}

/* The two characters that differ from standard base64 (RFC 4648 §5), and
 * the JWS example header of RFC 7515 §A.3.1. */
static void test_url_safe_alphabet(void **state)
{
        static const uint8_t fbff[] = {0xfb, 0xff};
        static const uint8_t ff3e[] = {0xff, 0xef, 0xbe};
        static const char hdr[] = "{\"alg\":\"ES256\"}";

        check_encode((const char *)fbff, sizeof(fbff), "-_8");
        check_decode("-_8", fbff, sizeof(fbff));
        check_encode((const char *)ff3e, sizeof(ff3e), "_---");
        check_encode(hdr, strlen(hdr), "eyJhbGciOiJFUzI1NiJ9");
}

static void test_decode_rejects(void **state)
{
        static const char *bad[] = {
                "Zg==",       /* padding */
                "Zm9v\n",     /* whitespace */
                "Zm 9v",      /* whitespace inside */
                "+_8",        /* standard alphabet */
                "-/8",        /* standard alphabet */
                "Z",          /* 4k+1 characters */
                "Zm9vY",      /* 4k+1 characters */
                "Zh",         /* unused bits set: 'h' = 33, low 4 bits 0001 */
                "Zm9",        /* unused bits set: '9' = 61, low 2 bits 01 */
                "Zm9vYm\x80", /* non-ASCII */
        };

        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                uint8_t *out = (uint8_t *)"untouched";
                size_t len = 7;

                assert_int_equal(base64url_decode(bad[i], strlen(bad[i]), &out, &len), -EINVAL);
                assert_string_equal((const char *)out, "untouched");
                assert_int_equal(len, 7);
        }
        /* An embedded NUL counts as a character, not a terminator. */
        {
                uint8_t *out = NULL;
                size_t len = 0;

                assert_int_equal(base64url_decode("Zm9v\0Zm9v", 9, &out, &len), -EINVAL);
                assert_null(out);
        }
}

/* Every length 0..300 and every byte value round-trips, and each text is
 * the only one accepted for its bytes. */
static void test_round_trip(void **state)
{
        uint8_t buf[300];

        for (size_t i = 0; i < sizeof(buf); i++)
                buf[i] = (uint8_t)(i * 131 + 7);
        for (size_t n = 0; n <= sizeof(buf); n++) {
                _cleanup_free_ char *enc = NULL;
                _cleanup_free_ uint8_t *dec = NULL;
                size_t len;

                assert_int_equal(base64url_encode(buf, n, &enc), 0);
                assert_int_equal(strlen(enc), BASE64URL_LEN(n));
                assert_true(n == 0 || base64url_is_valid(enc, strlen(enc)));
                assert_int_equal(base64url_decode(enc, strlen(enc), &dec, &len), 0);
                assert_int_equal(len, n);
                assert_memory_equal(dec, buf, n);
        }
}

/* Cross-check against the openssl command (standard alphabet, padded). */
static void test_matches_openssl_cli(void **state)
{
        char path[] = "/tmp/test-base64-XXXXXX";
        uint8_t buf[256];
        char cmd[128], want[512] = "", got[512];
        FILE *f;
        int fd;
        size_t n;

        if (access("/usr/bin/openssl", X_OK) < 0)
                skip();
        for (size_t i = 0; i < sizeof(buf); i++)
                buf[i] = (uint8_t)(255 - i);
        fd = mkstemp(path);
        assert_true(fd >= 0);
        assert_int_equal(write(fd, buf, sizeof(buf)), (ssize_t)sizeof(buf));
        close(fd);
        snprintf(cmd, sizeof(cmd), "openssl base64 -A -in %s", path);
        f = popen(cmd, "r");
        assert_non_null(f);
        n = fread(want, 1, sizeof(want) - 1, f);
        assert_int_equal(pclose(f), 0);
        unlink(path);
        want[n] = 0;
        for (char *p = want; *p; p++) {
                if (*p == '+')
                        *p = '-';
                else if (*p == '/')
                        *p = '_';
                else if (*p == '=')
                        *p = 0;
        }
        base64url_encode_to(buf, sizeof(buf), got);
        assert_string_equal(got, want);
}

static void test_is_valid(void **state)
{
        assert_true(base64url_is_valid("abc-_XYZ09", 10));
        assert_false(base64url_is_valid("", 0));
        assert_false(base64url_is_valid("ab=", 3));
        assert_false(base64url_is_valid("a/b", 3));
        assert_false(base64url_is_valid("a b", 3));
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_rfc4648_vectors),
                cmocka_unit_test(test_url_safe_alphabet),
                cmocka_unit_test(test_decode_rejects),
                cmocka_unit_test(test_round_trip),
                cmocka_unit_test(test_matches_openssl_cli),
                cmocka_unit_test(test_is_valid),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
