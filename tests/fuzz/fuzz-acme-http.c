/* SPDX-License-Identifier: Apache-2.0 */
/* The ACME HTTPS client's parsers of what a server sends (acme/http-msg.c).
 * The first byte selects the target, the rest is the input:
 *   0: the response reader, fed whole and in pieces (both must agree),
 *      then taken: fields, Link entries, Retry-After;
 *   1: HTTP-dates: a parsed date printed as IMF-fixdate parses back equal;
 *   2: Link-style references resolved against a base: the result resolves
 *      to itself;
 *   3: URLs: an accepted one gives a request head proxy/http1 parses, with
 *      the same Host.
 * Invariant violations abort. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "acme/http-internal.h"
#include "common/macros.h"
#include "proxy/http1.h"

#define check(x)                                                                                   \
        do {                                                                                       \
                if (!(x))                                                                          \
                        abort();                                                                   \
        } while (0)

static char *cstr(const uint8_t *data, size_t size)
{
        char *s = malloc(size + 1);

        check(s);
        memcpy(s, data, size);
        s[size] = 0;
        return s;
}

/* Feed @data in pieces of 1..7 bytes from a tiny PRNG, or whole. */
static int read_all(const uint8_t *data, size_t size, bool split, bool head, bool eof,
                    struct acme_http_rd *rd)
{
        uint32_t seed = (uint32_t)size;
        size_t off = 0;
        int r = 0;

        acme_http__rd_init(rd, 4096, head);
        while (off < size && r >= 0) {
                size_t k = size - off;

                if (split) {
                        seed = seed * 1103515245u + 12345u;
                        k = MIN(k, 1 + ((seed >> 16) % 7));
                }
                r = acme_http__rd_feed(rd, data + off, k);
                off += k;
        }
        if (r == 0 && eof)
                r = acme_http__rd_eof(rd, true);
        return r;
}

static void fuzz_response(const uint8_t *data, size_t size, uint8_t opts)
{
        struct acme_http_rd a, b;
        struct acme_http_result res = {};
        bool head = opts & 1, eof = opts & 2;
        int ra = read_all(data, size, false, head, eof, &a);
        int rb = read_all(data, size, true, head, eof, &b);
        uint64_t s;

        check(ra == rb);
        check(ra < 0 || a.received == b.received);
        if (ra == 1) {
                check(a.body.len == b.body.len);
                check(a.body.len <= 4096);
                check(!a.body.len || memcmp(a.body.data, b.body.data, a.body.len) == 0);
                check(acme_http__rd_keep_alive(&a) == acme_http__rd_keep_alive(&b));
                if (acme_http__rd_take(&a, "https://ca.test/acme/x?y", &res) == 0) {
                        check(res.resp.status >= 200 && res.resp.status <= 599);
                        check(res.resp.body[res.resp.body_len] == 0);
                        check(res.resp.n_links <= ACME_HTTP_MAX_LINKS);
                        for (size_t i = 0; i < res.resp.n_headers; i++)
                                check(strlen(res.resp.headers[i].name) > 0);
                        for (size_t i = 0; i < res.resp.n_links; i++)
                                check(strchr(res.resp.links[i].url, ':'));
                        (void)acme_http_retry_after(&res.resp, 1784000000, &s);
                        acme_http__result_done(&res);
                }
        }
        acme_http__rd_done(&a);
        acme_http__rd_done(&b);
}

static void fuzz_date(const uint8_t *data, size_t size)
{
        char *s = cstr(data, size), out[64];
        int64_t t, t2;
        time_t tt;
        struct tm tm;

        if (acme_http__date_parse(s, 1784000000, &t) == 0) {
                tt = (time_t)t;
                check(gmtime_r(&tt, &tm));
                /* A leap second (":60") prints as the next second's date. */
                strftime(out, sizeof(out), "%a, %d %b %Y %H:%M:%S GMT", &tm);
                if (tm.tm_year + 1900 >= 1000 && tm.tm_year + 1900 <= 9999) {
                        check(acme_http__date_parse(out, 1784000000, &t2) == 0);
                        check(t2 == t);
                }
        }
        free(s);
}

static void fuzz_resolve(const uint8_t *data, size_t size)
{
        static const char base[] = "https://ca.test:14000/acme/a/b?q=1";
        char *out = NULL, *again = NULL;

        if (acme_http__url_resolve(base, (const char *)data, size, &out) == 0) {
                check(acme_http__url_resolve(base, out, strlen(out), &again) == 0);
                check(strcmp(out, again) == 0);
        }
        free(out);
        free(again);
}

static void fuzz_url(const uint8_t *data, size_t size)
{
        static struct proxy_h1_header fields[16];
        static const struct proxy_h1_limits limits = {
                .max_head = 16384,
                .max_headers = 16,
                .max_target = 8192,
        };
        char *s = cstr(data, size), *wire = NULL;
        struct acme_url u = {};
        struct proxy_h1_req req;
        size_t len;
        int r;

        if (acme_http__url_parse(s, &u) == 0) {
                struct acme_http_request rq = {.method = "POST", .body = "{}", .body_len = 2};

                check(acme_http__request_build(&rq, &u, "ua", &wire, &len) == 0);
                proxy_h1_req_init(&req, &limits, fields, 16);
                r = proxy_h1_req_parse(&req, (const uint8_t *)wire, len);
                if (strlen(u.path) < 8000) {
                        check(r > 0);
                        check(proxy_h1_req_analyze(&req, (const uint8_t *)wire) == 0);
                        check(req.h.body == PROXY_H1_BODY_LENGTH && req.h.content_length == 2);
                        check(req.host_index >= 0);
                        check(fields[req.host_index].value.len == strlen(u.authority));
                        check(memcmp(wire + fields[req.host_index].value.off, u.authority,
                                     strlen(u.authority)) == 0);
                }
                free(wire);
                acme_http__url_done(&u);
        }
        free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        if (size < 1 || size > 65536)
                return 0;
        switch (data[0] & 3) {
        case 0:
                fuzz_response(data + 1, size - 1, (uint8_t)(data[0] >> 2));
                break;
        case 1:
                fuzz_date(data + 1, size - 1);
                break;
        case 2:
                fuzz_resolve(data + 1, size - 1);
                break;
        default:
                fuzz_url(data + 1, size - 1);
                break;
        }
        return 0;
}
