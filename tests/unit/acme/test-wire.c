/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <jansson.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "acme/client-internal.h"
#include "common/macros.h"
#include "common/strbuf.h"

static struct acme_http_response resp_with(const char *name, const char *value)
{
        static struct acme_http_header h[2];

        h[0] = (struct acme_http_header){"Content-Type", "application/json"};
        h[1] = (struct acme_http_header){name, value};
        return (struct acme_http_response){
                .status = 200, .headers = h, .n_headers = 2, .body = "", .body_len = 0};
}

static void test_header_lookup(void **state)
{
        struct acme_http_response r = resp_with("replay-NONCE", "abc");

        assert_string_equal(acme__header(&r, "Replay-Nonce"), "abc");
        assert_null(acme__header(&r, "Location"));
        assert_null(acme__header(NULL, "Location"));
}

static void test_retry_after(void **state)
{
        const int64_t now = 784111777; /* Sun, 06 Nov 1994 08:49:37 GMT */
        static const struct {
                const char *v;
                int r;
                uint64_t secs;
        } v[] = {
                {"120", 0, 120},
                {"0", 0, 0},
                {"Sun, 06 Nov 1994 08:50:37 GMT", 0, 60},
                {"Sun, 06 Nov 1994 08:49:00 GMT", 0, 0}, /* in the past */
                {"99999999999999999999999", 0, ACME_RETRY_AFTER_MAX_S},
                {"9999999", 0, ACME_RETRY_AFTER_MAX_S},
                {"", -EINVAL, 0},
                {"12a", -EINVAL, 0},
                {"-5", -EINVAL, 0},
                {" 5", -EINVAL, 0},
                {"soon", -EINVAL, 0},
                {"Sunday, 06-Nov-94 08:49:37 GMT", -EINVAL, 0}, /* obsolete RFC 850 */
                {"Sun Nov  6 08:49:37 1994", -EINVAL, 0},       /* obsolete asctime */
        };
        uint64_t secs;

        for (size_t i = 0; i < ELEMENTSOF(v); i++) {
                struct acme_http_response r = resp_with("Retry-After", v[i].v);

                secs = 4242;
                assert_int_equal(acme__retry_after(&r, now, &secs), v[i].r);
                assert_int_equal(secs, v[i].r < 0 ? 4242 : v[i].secs);
        }
        {
                struct acme_http_response r = resp_with("X", "1");

                assert_int_equal(acme__retry_after(&r, now, &secs), -ENOENT);
        }
}

static void test_http_date(void **state)
{
        static const char *const bad[] = {
                "Sun, 06 Nov 1994 08:49:37 UTC",  "Xyz, 06 Nov 1994 08:49:37 GMT",
                "Sun, 06 Nox 1994 08:49:37 GMT",  "Sun, 30 Feb 1994 08:49:37 GMT",
                "Sun, 06 Nov 1994 24:49:37 GMT",  "Sun, 6 Nov 1994 08:49:37 GMT",
                "Sun, 06 Nov 1994 08:49:37 GMT ",
        };
        int64_t t;

        assert_int_equal(acme__parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT", &t), 0);
        assert_int_equal(t, 784111777);
        assert_int_equal(acme__parse_http_date("Thu, 29 Feb 2024 23:59:59 GMT", &t), 0);
        assert_int_equal(t, 1709251199);
        assert_int_equal(acme__parse_http_date("Thu, 01 Jan 1970 00:00:00 GMT", &t), 0);
        assert_int_equal(t, 0);
        for (size_t i = 0; i < ELEMENTSOF(bad); i++)
                assert_int_equal(acme__parse_http_date(bad[i], &t), -EINVAL);
}

static void test_rfc3339(void **state)
{
        static const struct {
                const char *s;
                int64_t t;
        } good[] = {
                {"2025-01-02T04:00:00Z", 1735790400},
                {"2025-01-02t04:00:00z", 1735790400},
                {"2025-01-02T04:00:00.123456Z", 1735790400},
                {"2025-01-03T04:00:00.123+02:00", 1735869600},
                {"2025-01-02T23:30:00-01:30", 1735866000},
                {"2024-02-29T00:00:00Z", 1709164800},
                {"2016-12-31T23:59:60Z", 1483228799}, /* leap second */
                {"1970-01-01T00:00:00Z", 0},
                {"2100-01-01T00:00:00Z", 4102444800},
        };
        static const char *const bad[] = {
                "2023-02-29T00:00:00Z",  "2025-13-01T00:00:00Z",  "2025-01-32T00:00:00Z",
                "2025-01-02T04:00:00",   "2025-01-02T04:00Z",     "2025-01-02T04:00:00+0200",
                "2025-01-02T04:00:00.Z", "2025-01-02 T04:00:00Z", "",
                "2025-01-02T04:60:00Z",  "x025-01-02T04:00:00Z",  "2025-01-02T04:00:00+24:00",
        };
        int64_t t;

        for (size_t i = 0; i < ELEMENTSOF(good); i++) {
                assert_int_equal(acme__parse_rfc3339(good[i].s, &t), 0);
                assert_int_equal(t, good[i].t);
        }
        for (size_t i = 0; i < ELEMENTSOF(bad); i++)
                assert_int_equal(acme__parse_rfc3339(bad[i], &t), -EINVAL);
        assert_int_equal(acme__parse_rfc3339(NULL, &t), -EINVAL);
}

static void test_url_nonce_cert_id(void **state)
{
        char long_url[ACME_URL_MAX + 2];

        assert_true(acme__url_ok("https://ca.test/acme/new-order"));
        assert_true(acme__url_ok("HTTPS://ca.test:8443/x?y=z"));
        assert_false(acme__url_ok("http://ca.test/"));
        assert_false(acme__url_ok("https://"));
        assert_false(acme__url_ok("https://ca.test/a b"));
        assert_false(acme__url_ok("https://ca.test/\x7f"));
        assert_false(acme__url_ok("ftp://x"));
        assert_false(acme__url_ok(NULL));
        memcpy(long_url, "https://", 8);
        memset(long_url + 8, 'a', sizeof(long_url) - 9);
        long_url[sizeof(long_url) - 1] = 0;
        assert_false(acme__url_ok(long_url));
        long_url[ACME_URL_MAX] = 0;
        assert_true(acme__url_ok(long_url));

        assert_true(acme__nonce_ok("oFvnlFP1wIhRlYS2jTaXbA"));
        assert_false(acme__nonce_ok("a b"));
        assert_false(acme__nonce_ok("abc="));
        assert_false(acme__nonce_ok(""));
        assert_false(acme__nonce_ok(NULL));

        assert_true(acme__cert_id_ok("aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE"));
        assert_false(acme__cert_id_ok("aYhba4dGQEHhs3uEe6CuLN4ByNQ"));
        assert_false(acme__cert_id_ok(".AIdlQyE"));
        assert_false(acme__cert_id_ok("a."));
        assert_false(acme__cert_id_ok("a.b.c"));
        assert_false(acme__cert_id_ok("a/b.c"));
        assert_false(acme__cert_id_ok(NULL));
}

static void test_sanitize(void **state)
{
        _cleanup_free_ char *a = acme__sanitize("a\nb\x1b[1mc\x7f", 100);
        _cleanup_free_ char *b = acme__sanitize("ab\xc3\xa9", 3); /* "abé" cut inside é */
        _cleanup_free_ char *c = acme__sanitize("ab\xc3\xa9", 4);

        assert_string_equal(a, "a b [1mc ");
        assert_string_equal(b, "ab");
        assert_string_equal(c, "ab\xc3\xa9");
        assert_null(acme__sanitize(NULL, 10));
}

static void test_problem_from_json(void **state)
{
        json_t *o =
                json_loads("{\"type\":\"urn:ietf:params:acme:error:rejectedIdentifier\","
                           "\"detail\":\"Some of the identifiers\\nare rejected\","
                           "\"subproblems\":[{\"type\":\"urn:ietf:params:acme:error:malformed\","
                           "\"detail\":\"Invalid underscore in DNS name\","
                           "\"identifier\":{\"type\":\"dns\",\"value\":\"_example.org\"}},"
                           "{\"type\":\"urn:ietf:params:acme:error:rejectedIdentifier\","
                           "\"detail\":\"This CA will not issue for example.net\","
                           "\"identifier\":{\"type\":\"dns\",\"value\":\"example.net\"}},"
                           "{\"detail\":\"no type\"}, 7, {}]}",
                           0, NULL);
        struct acme_problem p = {};

        assert_non_null(o);
        assert_int_equal(acme__problem_from_json(&p, o), 0);
        assert_string_equal(p.type, "urn:ietf:params:acme:error:rejectedIdentifier");
        assert_string_equal(acme_problem_short_type(&p), "rejectedIdentifier");
        assert_true(acme__problem_is(&p, "rejectedIdentifier"));
        assert_false(acme__problem_is(&p, "malformed"));
        assert_string_equal(p.detail,
                            "Some of the identifiers are rejected (_example.org: malformed: "
                            "Invalid underscore in DNS name; example.net: rejectedIdentifier: "
                            "This CA will not issue for example.net; no type; ; )");
        acme_problem_done(&p);
        json_decref(o);
}

static void test_problem_bounds(void **state)
{
        _cleanup_strbuf_ struct strbuf b = STRBUF_INIT;
        struct acme_problem p = {};
        json_t *o;

        /* 12 subproblems with long details: at most 10 listed, the detail
         * cut to ACME_DETAIL_MAX. */
        assert_int_equal(strbuf_puts(&b, "{\"type\":\"about:blank\",\"detail\":\"d\","
                                         "\"subproblems\":["),
                         0);
        for (int i = 0; i < 12; i++)
                assert_int_equal(strbuf_printf(&b, "%s{\"detail\":\"%0300d\"}", i ? "," : "", i),
                                 0);
        assert_int_equal(strbuf_puts(&b, "]}"), 0);
        o = json_loads(b.data, 0, NULL);
        assert_non_null(o);
        assert_int_equal(acme__problem_from_json(&p, o), 0);
        assert_true(strlen(p.detail) <= ACME_DETAIL_MAX);
        assert_true(strlen(p.detail) > ACME_DETAIL_MAX - 310);
        /* A type URN is not a problem "is" of a plain string. */
        assert_string_equal(acme_problem_short_type(&p), "about:blank");
        assert_false(acme__problem_is(&p, "about:blank"));
        acme_problem_done(&p);
        json_decref(o);

        o = json_loads("{\"type\":\"urn:ietf:params:acme:error:x\",\"subproblems\":["
                       "{},{},{},{},{},{},{},{},{},{},{},{},{}]}",
                       0, NULL);
        assert_int_equal(acme__problem_from_json(&p, o), 0);
        assert_string_equal(p.detail, "(; ; ; ; ; ; ; ; ; ; 3 more)");
        acme_problem_done(&p);
        json_decref(o);
        assert_int_equal(acme__problem_from_json(&p, NULL), -EINVAL);
}

static void test_problem_from_response(void **state)
{
        struct acme_http_header h[] = {{"Retry-After", "Sun, 06 Nov 1994 08:50:37 GMT"}};
        struct acme_http_response r = {.status = 502,
                                       .headers = h,
                                       .n_headers = 1,
                                       .body = "<html>bad gateway</html>",
                                       .body_len = 24};
        struct acme_problem p = {}, q = {};

        assert_int_equal(acme__problem_from_response(&p, &r, 784111777), 0);
        assert_int_equal(p.status, 502);
        assert_int_equal(p.retry_after_s, 60);
        assert_null(p.type);
        assert_string_equal(p.detail, "HTTP 502 without a problem document");
        assert_int_equal(acme__problem_copy(&q, &p), 0);
        assert_string_equal(q.detail, p.detail);
        assert_ptr_not_equal(q.detail, p.detail);
        acme_problem_done(&p);
        acme_problem_done(&q);

        static const char body[] = "{\"type\":\"urn:ietf:params:acme:error:unauthorized\"}";

        r = (struct acme_http_response){.status = 403, .body = body, .body_len = strlen(body)};
        assert_int_equal(acme__problem_from_response(&p, &r, 0), 0);
        assert_string_equal(acme_problem_short_type(&p), "unauthorized");
        /* No detail from the server: the status stands in. */
        assert_string_equal(p.detail, "HTTP 403");
        acme_problem_done(&p);
        acme_problem_done(NULL);
}

static void test_status_and_names(void **state)
{
        json_t *o = json_pack("{s:s}", "status", "processing");

        assert_int_equal(acme__status_of(o), ACME_STATUS_PROCESSING);
        json_object_set_new(o, "status", json_string("Processing"));
        assert_int_equal(acme__status_of(o), ACME_STATUS_UNKNOWN);
        json_object_set_new(o, "status", json_integer(1));
        assert_int_equal(acme__status_of(o), ACME_STATUS_UNKNOWN);
        assert_int_equal(acme__status_of(NULL), ACME_STATUS_UNKNOWN);
        assert_string_equal(acme__status_str(ACME_STATUS_REVOKED), "revoked");
        assert_string_equal(acme_challenge_type_str(ACME_CHALLENGE_DNS01), "dns-01");
        assert_string_equal(acme_challenge_type_str(ACME_CHALLENGE_HTTP01), "http-01");
        assert_null(acme_challenge_type_str(_ACME_CHALLENGE_MAX));
        assert_string_equal(acme__call_state_str(ACME_CALL_ST_BACKOFF), "backoff");
        json_decref(o);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_header_lookup),
                cmocka_unit_test(test_retry_after),
                cmocka_unit_test(test_http_date),
                cmocka_unit_test(test_rfc3339),
                cmocka_unit_test(test_url_nonce_cert_id),
                cmocka_unit_test(test_sanitize),
                cmocka_unit_test(test_problem_from_json),
                cmocka_unit_test(test_problem_bounds),
                cmocka_unit_test(test_problem_from_response),
                cmocka_unit_test(test_status_and_names),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
