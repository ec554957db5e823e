/* SPDX-License-Identifier: Apache-2.0 */
/* Pure helpers for what an ACME server sends: headers, dates, URLs,
 * nonces, problem documents and status members. No I/O, no clock. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "acme/client-internal.h"
#include "common/base64.h"
#include "common/macros.h"
#include "common/strbuf.h"

const char *acme_challenge_type_str(enum acme_challenge_type t)
{
        static const char *const names[_ACME_CHALLENGE_MAX] = {
                [ACME_CHALLENGE_HTTP01] = "http-01",
                [ACME_CHALLENGE_DNS01] = "dns-01",
        };

        return (unsigned)t < _ACME_CHALLENGE_MAX ? names[t] : NULL;
}

const char *acme__header(const struct acme_http_response *resp, const char *name)
{
        for (size_t i = 0; resp && i < resp->n_headers; i++)
                if (resp->headers[i].name && strcasecmp(resp->headers[i].name, name) == 0)
                        return resp->headers[i].value;
        return NULL;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
 * days_from_civil), so no time zone or timegm() is involved. */
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

static int days_in_month(int64_t y, unsigned m)
{
        static const int d[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};

        return m == 2 && is_leap(y) ? 29 : d[m - 1];
}

/* Exactly @n digits at @s. */
static bool digits(const char *s, int n, int *ret)
{
        int v = 0;

        for (int i = 0; i < n; i++) {
                if (s[i] < '0' || s[i] > '9')
                        return false;
                v = v * 10 + (s[i] - '0');
        }
        *ret = v;
        return true;
}

static int civil_to_unix(int y, int mo, int d, int h, int mi, int s, int64_t *ret)
{
        /* Second 60 is a leap second (RFC 3339 §5.7); count it as :59. */
        if (mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, (unsigned)mo) || h > 23 || mi > 59 ||
            s > 60)
                return -EINVAL;
        if (s == 60)
                s = 59;
        *ret = days_from_civil(y, (unsigned)mo, (unsigned)d) * 86400 + h * 3600 + mi * 60 + s;
        return 0;
}

int acme__parse_http_date(const char *s, int64_t *ret)
{
        static const char months[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
        static const char days[] = "MonTueWedThuFriSatSun";
        int d, y, h, mi, sec, mo = 0;

        /* IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT" (RFC 9110 §5.6.7). */
        if (strlen(s) != 29 || s[3] != ',' || s[4] != ' ' || s[7] != ' ' || s[11] != ' ' ||
            s[16] != ' ' || s[19] != ':' || s[22] != ':' || s[25] != ' ' || strcmp(s + 26, "GMT"))
                return -EINVAL;
        {
                bool day_ok = false;

                for (int i = 0; i < 7; i++)
                        day_ok |= strncmp(s, days + 3 * i, 3) == 0;
                if (!day_ok)
                        return -EINVAL;
        }
        for (int i = 0; i < 12; i++)
                if (strncmp(s + 8, months + 3 * i, 3) == 0)
                        mo = i + 1;
        if (!mo || !digits(s + 5, 2, &d) || !digits(s + 12, 4, &y) || !digits(s + 17, 2, &h) ||
            !digits(s + 20, 2, &mi) || !digits(s + 23, 2, &sec))
                return -EINVAL;
        return civil_to_unix(y, mo, d, h, mi, sec, ret);
}

int acme__parse_rfc3339(const char *s, int64_t *ret)
{
        int y, mo, d, h, mi, sec, oh = 0, om = 0;
        const char *p;
        int64_t t;
        int r;

        if (!s || strnlen(s, 64) < 20 || s[4] != '-' || s[7] != '-' ||
            (s[10] != 'T' && s[10] != 't' && s[10] != ' ') || s[13] != ':' || s[16] != ':' ||
            !digits(s, 4, &y) || !digits(s + 5, 2, &mo) || !digits(s + 8, 2, &d) ||
            !digits(s + 11, 2, &h) || !digits(s + 14, 2, &mi) || !digits(s + 17, 2, &sec))
                return -EINVAL;
        p = s + 19;
        if (*p == '.') {
                /* time-secfrac: truncated; windows are not that precise. */
                if (!(p[1] >= '0' && p[1] <= '9'))
                        return -EINVAL;
                for (p++; *p >= '0' && *p <= '9'; p++)
                        if (p - s > 40)
                                return -EINVAL;
        }
        if ((*p == 'Z' || *p == 'z') && p[1] == 0) {
                /* UTC */
        } else if ((*p == '+' || *p == '-') && strlen(p) == 6 && p[3] == ':' &&
                   digits(p + 1, 2, &oh) && digits(p + 4, 2, &om) && oh <= 23 && om <= 59) {
                if (*p == '-') {
                        oh = -oh;
                        om = -om;
                }
        } else {
                return -EINVAL;
        }
        r = civil_to_unix(y, mo, d, h, mi, sec, &t);
        if (r < 0)
                return r;
        /* local = UTC + offset */
        *ret = t - oh * 3600 - om * 60;
        return 0;
}

int acme__retry_after(const struct acme_http_response *resp, int64_t now, uint64_t *ret)
{
        const char *v = acme__header(resp, "Retry-After");
        uint64_t secs = 0;

        if (!v)
                return -ENOENT;
        if (*v >= '0' && *v <= '9') {
                for (const char *p = v; *p; p++) {
                        if (*p < '0' || *p > '9')
                                return -EINVAL;
                        if (secs < ACME_RETRY_AFTER_MAX_S)
                                secs = secs * 10 + (uint64_t)(*p - '0');
                }
        } else {
                int64_t t;
                int r = acme__parse_http_date(v, &t);

                if (r < 0)
                        return r;
                secs = t > now ? (uint64_t)(t - now) : 0;
        }
        *ret = MIN(secs, (uint64_t)ACME_RETRY_AFTER_MAX_S);
        return 0;
}

bool acme__url_ok(const char *s)
{
        size_t n;

        if (!s || strncasecmp(s, "https://", 8) != 0)
                return false;
        n = strnlen(s, ACME_URL_MAX + 1);
        if (n > ACME_URL_MAX || n == 8)
                return false;
        for (size_t i = 0; i < n; i++)
                if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f)
                        return false;
        return true;
}

bool acme__nonce_ok(const char *s)
{
        size_t n = s ? strnlen(s, ACME_NONCE_MAX + 1) : 0;

        return n > 0 && n <= ACME_NONCE_MAX && base64url_is_valid(s, n);
}

bool acme__cert_id_ok(const char *s)
{
        const char *dot = s ? strchr(s, '.') : NULL;
        size_t n = s ? strnlen(s, ACME_CERT_ID_MAX + 1) : 0;

        return dot && n <= ACME_CERT_ID_MAX && base64url_is_valid(s, (size_t)(dot - s)) &&
               base64url_is_valid(dot + 1, n - (size_t)(dot - s) - 1);
}

char *acme__sanitize(const char *s, size_t max)
{
        size_t n;
        char *out;

        if (!s)
                return NULL;
        n = strnlen(s, max + 1);
        if (n > max) {
                n = max;
                /* Do not cut a UTF-8 sequence: back up over continuation bytes
                 * and the lead byte they belong to. */
                while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80)
                        n--;
        }
        out = malloc(n + 1);
        if (!out)
                return NULL;
        for (size_t i = 0; i < n; i++) {
                unsigned char ch = (unsigned char)s[i];

                out[i] = ch < 0x20 || ch == 0x7f ? ' ' : (char)ch;
        }
        out[n] = 0;
        return out;
}

const char *acme__json_str(const json_t *o, const char *key)
{
        return json_string_value(json_object_get(o, key));
}

void acme_problem_done(struct acme_problem *p)
{
        if (!p)
                return;
        free(p->type);
        free(p->detail);
        free(p->where);
        *p = (struct acme_problem){};
}

static const char *short_type(const char *type)
{
        if (type && strncmp(type, ACME_ERROR_URN, strlen(ACME_ERROR_URN)) == 0)
                return type + strlen(ACME_ERROR_URN);
        return type;
}

const char *acme_problem_short_type(const struct acme_problem *p)
{
        return p ? short_type(p->type) : NULL;
}

bool acme__problem_is(const struct acme_problem *p, const char *name)
{
        const char *t = acme_problem_short_type(p);

        return t && p->type != t && streq(t, name);
}

/* "<identifier>: <type>: <detail>" of one subproblem (RFC 8555 §6.7.1). */
static int put_subproblem(struct strbuf *b, const json_t *sp)
{
        const json_t *id = json_object_get(sp, "identifier");
        const char *value = acme__json_str(id, "value"), *type = acme__json_str(sp, "type"),
                   *detail = acme__json_str(sp, "detail");
        int r = 0;

        if (value)
                r = strbuf_printf(b, "%s: ", value);
        if (r >= 0 && type)
                r = strbuf_printf(b, "%s%s", short_type(type), detail ? ": " : "");
        if (r >= 0 && detail)
                r = strbuf_puts(b, detail);
        return r;
}

int acme__problem_from_json(struct acme_problem *p, const json_t *o)
{
        _cleanup_strbuf_ struct strbuf b = STRBUF_INIT;
        const char *type = acme__json_str(o, "type"), *detail = acme__json_str(o, "detail");
        const json_t *subs = json_object_get(o, "subproblems");
        size_t n = json_is_array(subs) ? json_array_size(subs) : 0;
        int r = 0;

        if (!json_is_object(o))
                return -EINVAL;
        free(p->type);
        p->type = NULL;
        if (type) {
                p->type = acme__sanitize(type, ACME_TYPE_MAX);
                if (!p->type)
                        return -ENOMEM;
        }
        /* The detail is built bounded: the server decides how long the
         * pieces are, a log line should not. */
        b.limit = 4 * ACME_DETAIL_MAX;
        if (detail)
                r = strbuf_puts(&b, detail);
        for (size_t i = 0; r >= 0 && i < MIN(n, (size_t)ACME_SUBPROBLEMS_MAX); i++) {
                r = strbuf_puts(&b, i > 0 ? "; " : b.len ? " (" : "(");
                if (r >= 0)
                        r = put_subproblem(&b, json_array_get(subs, i));
        }
        if (r >= 0 && n > ACME_SUBPROBLEMS_MAX)
                r = strbuf_printf(&b, "; %zu more", n - ACME_SUBPROBLEMS_MAX);
        if (r >= 0 && n > 0)
                r = strbuf_putc(&b, ')');
        if (r == -ENOMEM)
                return r;
        /* -E2BIG: keep what fit. */
        free(p->detail);
        p->detail = b.len ? acme__sanitize(b.data, ACME_DETAIL_MAX) : NULL;
        if (b.len && !p->detail)
                return -ENOMEM;
        return 0;
}

int acme__problem_from_response(struct acme_problem *p, const struct acme_http_response *resp,
                                int64_t now)
{
        _cleanup_(json_decrefp) json_t *o = NULL;
        uint64_t ra;
        int r;

        p->status = resp->status;
        if (acme__retry_after(resp, now, &ra) >= 0)
                p->retry_after_s = ra;
        if (resp->body_len > 0)
                o = json_loadb(resp->body, resp->body_len, 0, NULL);
        if (json_is_object(o) && acme__json_str(o, "type")) {
                r = acme__problem_from_json(p, o);
                if (r < 0)
                        return r;
                if (p->detail)
                        return 0;
        }
        free(p->detail);
        if (asprintf(&p->detail, "HTTP %d%s", resp->status,
                     json_is_object(o) ? "" : " without a problem document") < 0) {
                p->detail = NULL;
                return -ENOMEM;
        }
        return 0;
}

int acme__problem_copy(struct acme_problem *dst, const struct acme_problem *src)
{
        struct acme_problem p = *src;

        p.type = src->type ? strdup(src->type) : NULL;
        p.detail = src->detail ? strdup(src->detail) : NULL;
        p.where = src->where ? strdup(src->where) : NULL;
        if ((src->type && !p.type) || (src->detail && !p.detail) || (src->where && !p.where)) {
                acme_problem_done(&p);
                return -ENOMEM;
        }
        *dst = p;
        return 0;
}

enum acme__status acme__status_of(const json_t *o)
{
        static const char *const names[] = {
                [ACME_STATUS_PENDING] = "pending",       [ACME_STATUS_READY] = "ready",
                [ACME_STATUS_PROCESSING] = "processing", [ACME_STATUS_VALID] = "valid",
                [ACME_STATUS_INVALID] = "invalid",       [ACME_STATUS_DEACTIVATED] = "deactivated",
                [ACME_STATUS_EXPIRED] = "expired",       [ACME_STATUS_REVOKED] = "revoked",
        };
        const char *s = acme__json_str(o, "status");

        for (size_t i = 1; s && i < ELEMENTSOF(names); i++)
                if (streq(s, names[i]))
                        return (enum acme__status)i;
        return ACME_STATUS_UNKNOWN;
}

const char *acme__status_str(enum acme__status s)
{
        static const char *const names[] = {
                [ACME_STATUS_UNKNOWN] = "unknown",
                [ACME_STATUS_PENDING] = "pending",
                [ACME_STATUS_READY] = "ready",
                [ACME_STATUS_PROCESSING] = "processing",
                [ACME_STATUS_VALID] = "valid",
                [ACME_STATUS_INVALID] = "invalid",
                [ACME_STATUS_DEACTIVATED] = "deactivated",
                [ACME_STATUS_EXPIRED] = "expired",
                [ACME_STATUS_REVOKED] = "revoked",
        };

        return (unsigned)s < ELEMENTSOF(names) ? names[s] : "?";
}
