/* SPDX-License-Identifier: Apache-2.0 */
/* The fields of a response the protocol client reads: header lookup, Link
 * (RFC 8288) and Retry-After (RFC 9110 §10.2.3) with HTTP-dates. Pure: no
 * I/O, no clock, no libuv. */
#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "acme/http-internal.h"
#include "common/macros.h"
#include "common/siphash.h"

static bool is_digit(char c)
{
        return c >= '0' && c <= '9';
}

static bool is_alpha(char c)
{
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool is_ows(char c)
{
        return c == ' ' || c == '\t';
}

/* RFC 9110 §5.6.2 tchar. */
static bool is_tchar(char c)
{
        return is_alpha(c) || is_digit(c) || (c && strchr("!#$%&'*+-.^_`|~", c));
}

/* ================================================================
 * Header lookup and Link (RFC 8288)
 * ================================================================ */

const char *acme_http_response_header(const struct acme_http_response *resp, const char *name)
{
        if (!resp || !name)
                return NULL;
        for (size_t i = 0; i < resp->n_headers; i++)
                if (strcasecmp(resp->headers[i].name, name) == 0)
                        return resp->headers[i].value;
        return NULL;
}

const char *acme_http_response_link(const struct acme_http_response *resp, const char *rel)
{
        if (!resp || !rel)
                return NULL;
        for (size_t i = 0; i < resp->n_links; i++)
                if (streq(resp->links[i].rel, rel))
                        return resp->links[i].url;
        return NULL;
}

void acme_http__links_free(struct acme_http_link *links, size_t n)
{
        for (size_t i = 0; links && i < n; i++) {
                free((char *)links[i].url);
                free((char *)links[i].rel);
        }
        free(links);
}

/* Skip to the next top-level ',' of a Link value (quoted strings and
 * <...> honoured), after a malformed entry. */
static const char *skip_entry(const char *p)
{
        while (*p && *p != ',') {
                if (*p == '"') {
                        for (p++; *p && *p != '"'; p++)
                                if (*p == '\\' && p[1])
                                        p++;
                        if (*p)
                                p++;
                } else if (*p == '<') {
                        p += strcspn(p, ">");
                        if (*p)
                                p++;
                } else {
                        p++;
                }
        }
        return p;
}

/* A token or quoted-string at *pp into @out (unescaped). */
static int param_value(const char **pp, struct strbuf *out)
{
        const char *p = *pp;
        int r = 0;

        if (*p == '"') {
                for (p++; *p && *p != '"' && r >= 0; p++) {
                        if (*p == '\\' && p[1])
                                p++;
                        r = strbuf_putc(out, *p);
                }
                if (*p != '"')
                        return r < 0 ? r : -EINVAL;
                p++;
        } else {
                const char *s = p;

                while (is_tchar(*p))
                        p++;
                if (p == s)
                        return -EINVAL;
                r = strbuf_append(out, s, (size_t)(p - s));
        }
        *pp = p;
        return r;
}

struct links {
        struct acme_http_link *v;
        size_t n;
};

/* Append one link per relation type in @rels (space-separated, §3.3). */
static int links_add(struct links *l, const char *base, const char *url, size_t url_len,
                     const char *rels)
{
        for (const char *p = rels; *p;) {
                _cleanup_free_ char *abs = NULL, *rel = NULL;
                size_t k;
                int r;

                p += strspn(p, " \t");
                k = strcspn(p, " \t");
                if (k == 0)
                        break;
                if (l->n >= ACME_HTTP_MAX_LINKS)
                        return 0;
                rel = memdup_suffix0(p, k);
                if (!rel)
                        return -ENOMEM;
                for (char *c = rel; *c; c++)
                        *c = (char)ascii_tolower((unsigned char)*c);
                p += k;
                r = acme_http__url_resolve(base, url, url_len, &abs);
                if (r == -EINVAL)
                        return 0; /* not a URL we can use: skip the entry */
                if (r < 0)
                        return r;
                l->v[l->n++] = (struct acme_http_link){.url = TAKE_PTR(abs), .rel = TAKE_PTR(rel)};
        }
        return 0;
}

/* Parse one Link field value. Returns 0 or -ENOMEM. */
static int link_value_parse(struct links *l, const char *base, const char *p)
{
        for (;;) {
                _cleanup_strbuf_ struct strbuf rel = STRBUF_INIT;
                const char *url, *gt;
                bool have_rel = false, bad = false;
                int r;

                while (is_ows(*p) || *p == ',')
                        p++;
                if (!*p)
                        return 0;
                if (*p != '<' || !(gt = strchr(p, '>'))) {
                        p = skip_entry(p);
                        continue;
                }
                url = p + 1;
                p = gt + 1;
                for (;;) {
                        _cleanup_strbuf_ struct strbuf val = STRBUF_INIT;
                        const char *name;
                        size_t name_len;

                        while (is_ows(*p))
                                p++;
                        if (!*p || *p == ',')
                                break;
                        if (*p != ';') {
                                bad = true;
                                break;
                        }
                        p++;
                        while (is_ows(*p))
                                p++;
                        name = p;
                        while (is_tchar(*p))
                                p++;
                        name_len = (size_t)(p - name);
                        if (name_len == 0) {
                                bad = true;
                                break;
                        }
                        while (is_ows(*p))
                                p++;
                        if (*p != '=')
                                continue; /* a parameter without a value */
                        p++;
                        while (is_ows(*p))
                                p++;
                        r = param_value(&p, &val);
                        if (r == -ENOMEM)
                                return r;
                        if (r < 0) {
                                bad = true;
                                break;
                        }
                        /* §3.3: only the first rel counts. */
                        if (name_len == 3 && strncasecmp(name, "rel", 3) == 0 && !have_rel) {
                                have_rel = true;
                                r = strbuf_append(&rel, val.data ? val.data : "", val.len);
                                if (r < 0)
                                        return r;
                        }
                }
                if (bad) {
                        p = skip_entry(p);
                        continue;
                }
                if (have_rel && rel.data) {
                        r = links_add(l, base, url, (size_t)(gt - url), rel.data);
                        if (r < 0)
                                return r;
                }
        }
}

int acme_http__links_parse(const char *base, const struct acme_http_header *headers, size_t n,
                           struct acme_http_link **ret, size_t *ret_n)
{
        struct links l = {};
        int r;

        assert(base && (headers || n == 0) && ret && ret_n);
        l.v = calloc(ACME_HTTP_MAX_LINKS, sizeof(*l.v));
        if (!l.v)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                if (strcasecmp(headers[i].name, "Link") != 0)
                        continue;
                r = link_value_parse(&l, base, headers[i].value);
                if (r < 0) {
                        acme_http__links_free(l.v, l.n);
                        return r;
                }
        }
        *ret = l.v;
        *ret_n = l.n;
        return 0;
}

/* ================================================================
 * HTTP-date and Retry-After
 * ================================================================ */

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
 * days_from_civil), so no timegm() and no time zone is involved. */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
        int64_t era;
        unsigned yoe, doy, doe;

        y -= m <= 2;
        era = (y >= 0 ? y : y - 399) / 400;
        yoe = (unsigned)(y - era * 400);
        doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
        doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        return era * 146097 + (int64_t)doe - 719468;
}

static bool is_leap(int64_t y)
{
        return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int num(const char **pp, unsigned digits, unsigned *ret)
{
        unsigned v = 0;

        for (unsigned i = 0; i < digits; i++) {
                if (!is_digit((*pp)[i]))
                        return -EINVAL;
                v = v * 10 + (unsigned)((*pp)[i] - '0');
        }
        *pp += digits;
        *ret = v;
        return 0;
}

static int lit(const char **pp, const char *s)
{
        size_t n = strlen(s);

        if (strncmp(*pp, s, n) != 0)
                return -EINVAL;
        *pp += n;
        return 0;
}

static int month(const char **pp, unsigned *ret)
{
        static const char names[] = "JanFebMarAprMayJunJulAugSepOctNovDec";

        for (unsigned i = 0; i < 12; i++)
                if (strncmp(*pp, names + 3 * i, 3) == 0) {
                        *pp += 3;
                        *ret = i + 1;
                        return 0;
                }
        return -EINVAL;
}

/* "HH:MM:SS" */
static int hms(const char **pp, unsigned *h, unsigned *m, unsigned *s)
{
        if (num(pp, 2, h) < 0 || lit(pp, ":") < 0 || num(pp, 2, m) < 0 || lit(pp, ":") < 0 ||
            num(pp, 2, s) < 0)
                return -EINVAL;
        return *h < 24 && *m < 60 && *s <= 60 ? 0 : -EINVAL;
}

int acme_http__date_parse(const char *s, time_t now, int64_t *ret)
{
        static const char *const days[] = {"Monday", "Tuesday",  "Wednesday", "Thursday",
                                           "Friday", "Saturday", "Sunday"};
        static const unsigned mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
        const char *p = s;
        unsigned d = 0, mo = 0, y = 0, hh = 0, mm = 0, ss = 0;
        int64_t year;
        size_t k;
        int r = -EINVAL;

        assert(s && ret);
        /* The day name: three letters (IMF-fixdate, asctime) or the whole
         * word (RFC 850). Checked for shape, not against the date. */
        for (k = 0; k < ELEMENTSOF(days); k++)
                if (strncmp(p, days[k], 3) == 0)
                        break;
        if (k == ELEMENTSOF(days))
                return -EINVAL;
        if (p[3] == ',') {
                p += 3;
        } else if (strncmp(p, days[k], strlen(days[k])) == 0 && p[strlen(days[k])] == ',') {
                p += strlen(days[k]);
        } else if (p[3] == ' ') {
                /* asctime: "Sun Nov  6 08:49:37 1994" */
                p += 4;
                if (month(&p, &mo) < 0 || lit(&p, " ") < 0)
                        return -EINVAL;
                if (*p == ' ')
                        r = (p++, num(&p, 1, &d));
                else
                        r = num(&p, 2, &d);
                if (r < 0 || lit(&p, " ") < 0 || hms(&p, &hh, &mm, &ss) < 0 || lit(&p, " ") < 0 ||
                    num(&p, 4, &y) < 0)
                        return -EINVAL;
                year = y;
                goto check;
        } else {
                return -EINVAL;
        }

        if (lit(&p, ", ") < 0 || num(&p, 2, &d) < 0)
                return -EINVAL;
        if (*p == ' ') {
                /* IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT" */
                if (lit(&p, " ") < 0 || month(&p, &mo) < 0 || lit(&p, " ") < 0 ||
                    num(&p, 4, &y) < 0)
                        return -EINVAL;
                year = y;
        } else {
                /* RFC 850: "Sunday, 06-Nov-94 08:49:37 GMT"; a two-digit year
                 * more than 50 years ahead is in the past (RFC 9110 §5.6.7). */
                int64_t cur = 1970 + (int64_t)now / 31556952;

                if (lit(&p, "-") < 0 || month(&p, &mo) < 0 || lit(&p, "-") < 0 ||
                    num(&p, 2, &y) < 0)
                        return -EINVAL;
                year = cur - cur % 100 + y;
                if (year > cur + 50)
                        year -= 100;
        }
        if (lit(&p, " ") < 0 || hms(&p, &hh, &mm, &ss) < 0 || lit(&p, " GMT") < 0)
                return -EINVAL;
check:
        if (*p || mo < 1 || mo > 12 || d < 1 ||
            d > mdays[mo - 1] + (mo == 2 && is_leap(year) ? 1 : 0))
                return -EINVAL;
        *ret = days_from_civil(year, mo, d) * 86400 + hh * 3600 + mm * 60 + ss;
        return 0;
}

int acme_http_retry_after(const struct acme_http_response *resp, time_t now, uint64_t *ret_seconds)
{
        const char *v = acme_http_response_header(resp, "Retry-After");
        int64_t t;

        if (!v)
                return -ENOENT;
        if (is_digit(*v)) {
                uint64_t s = 0;

                for (const char *p = v; *p; p++) {
                        if (!is_digit(*p))
                                return -EINVAL;
                        /* RFC 9111 §1.2.2: an overflowing delta-seconds means 2^31. */
                        s = MIN(s * 10 + (uint64_t)(*p - '0'), ACME_HTTP_RETRY_MAX_SEC);
                }
                *ret_seconds = s;
                return 0;
        }
        if (acme_http__date_parse(v, now, &t) < 0)
                return -EINVAL;
        *ret_seconds = t > (int64_t)now ? (uint64_t)(t - (int64_t)now) : 0;
        return 0;
}
