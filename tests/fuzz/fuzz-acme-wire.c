/* SPDX-License-Identifier: Apache-2.0 */
/* The ACME client's parsers for what a server sends (acme/wire.c): the
 * input is tried as an RFC 3339 time, an HTTP-date, a Retry-After value,
 * an error response body (problem document), a URL/nonce/ARI ID, and a
 * JSON object's status. Results must stay within their documented bounds. */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "acme/client-internal.h"

#define CHECK(x)                                                                                   \
        do {                                                                                       \
                if (!(x))                                                                          \
                        abort();                                                                   \
        } while (0)

/* Years 0000..9999, one day of offset either side. */
#define T_MIN (-62167219200LL - 86400)
#define T_MAX (253402300799LL + 86400)

static void check_text(const char *s, size_t max)
{
        if (!s)
                return;
        CHECK(strlen(s) <= max);
        for (const char *p = s; *p; p++)
                CHECK((unsigned char)*p >= 0x20 && *p != 0x7f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        char *s = malloc(size + 1);
        struct acme_http_header h = {"Retry-After", NULL};
        struct acme_http_response r = {.status = 429, .headers = &h, .n_headers = 1};
        struct acme_problem p = {};
        uint64_t secs;
        int64_t t;
        json_t *o;
        char *z;

        if (!s)
                return 0;
        memcpy(s, data, size);
        s[size] = 0;
        h.value = s;
        r.body = s;
        r.body_len = size;

        if (acme__parse_rfc3339(s, &t) == 0)
                CHECK(t >= T_MIN && t <= T_MAX);
        if (acme__parse_http_date(s, &t) == 0)
                CHECK(strlen(s) == 29 && t >= T_MIN && t <= T_MAX);
        if (acme__retry_after(&r, 1800000000, &secs) == 0)
                CHECK(secs <= ACME_RETRY_AFTER_MAX_S);
        if (acme__problem_from_response(&p, &r, 1800000000) == 0) {
                CHECK(p.status == 429 && p.detail);
                check_text(p.detail, ACME_DETAIL_MAX);
                check_text(p.type, ACME_TYPE_MAX);
                CHECK(p.retry_after_s <= ACME_RETRY_AFTER_MAX_S);
        }
        acme_problem_done(&p);
        if (acme__url_ok(s))
                CHECK(strlen(s) <= ACME_URL_MAX);
        if (acme__nonce_ok(s))
                CHECK(strlen(s) <= ACME_NONCE_MAX);
        if (acme__cert_id_ok(s))
                CHECK(strchr(s, '.') && strlen(s) <= ACME_CERT_ID_MAX);
        z = acme__sanitize(s, 64);
        if (z)
                check_text(z, 64);
        free(z);
        o = json_loadb((const char *)data, size, 0, NULL);
        CHECK((unsigned)acme__status_of(o) <= ACME_STATUS_REVOKED);
        json_decref(o);
        free(s);
        return 0;
}
