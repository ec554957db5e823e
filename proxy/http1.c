/* SPDX-License-Identifier: Apache-2.0 */
#include "proxy/http1.h"

#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <string.h>
#include <strings.h>

#include "common/macros.h"

/* ================================================================
 * Character classes (RFC 9110 §5.6.2, RFC 3986)
 * ================================================================ */

#define CC_TCHAR   (1u << 0) /* token character */
#define CC_TARGET  (1u << 1) /* allowed in a request-target: VCHAR except '#' */
#define CC_HEX     (1u << 2) /* HEXDIG */
#define CC_REGNAME (1u << 3) /* the reg-name subset we route: ALPHA DIGIT - . _ */
#define CC_SCHEME  (1u << 4) /* ALPHA DIGIT + - . */

/* clang-format off */
static const uint8_t cclass[256] = {
        ['0' ... '9'] = CC_TCHAR | CC_TARGET | CC_HEX | CC_REGNAME | CC_SCHEME,
        ['A' ... 'F'] = CC_TCHAR | CC_TARGET | CC_HEX | CC_REGNAME | CC_SCHEME,
        ['G' ... 'Z'] = CC_TCHAR | CC_TARGET | CC_REGNAME | CC_SCHEME,
        ['a' ... 'f'] = CC_TCHAR | CC_TARGET | CC_HEX | CC_REGNAME | CC_SCHEME,
        ['g' ... 'z'] = CC_TCHAR | CC_TARGET | CC_REGNAME | CC_SCHEME,
        ['-'] = CC_TCHAR | CC_TARGET | CC_REGNAME | CC_SCHEME,
        ['.'] = CC_TCHAR | CC_TARGET | CC_REGNAME | CC_SCHEME,
        ['_'] = CC_TCHAR | CC_TARGET | CC_REGNAME,
        ['+'] = CC_TCHAR | CC_TARGET | CC_SCHEME,
        ['!'] = CC_TCHAR | CC_TARGET,
        ['#'] = CC_TCHAR,
        ['$'] = CC_TCHAR | CC_TARGET,
        ['%'] = CC_TCHAR | CC_TARGET,
        ['&'] = CC_TCHAR | CC_TARGET,
        ['\''] = CC_TCHAR | CC_TARGET,
        ['*'] = CC_TCHAR | CC_TARGET,
        ['^'] = CC_TCHAR | CC_TARGET,
        ['`'] = CC_TCHAR | CC_TARGET,
        ['|'] = CC_TCHAR | CC_TARGET,
        ['~'] = CC_TCHAR | CC_TARGET,
        ['"'] = CC_TARGET, ['('] = CC_TARGET, [')'] = CC_TARGET, [','] = CC_TARGET,
        ['/'] = CC_TARGET, [':'] = CC_TARGET, [';'] = CC_TARGET, ['<'] = CC_TARGET,
        ['='] = CC_TARGET, ['>'] = CC_TARGET, ['?'] = CC_TARGET, ['@'] = CC_TARGET,
        ['['] = CC_TARGET, ['\\'] = CC_TARGET, [']'] = CC_TARGET, ['{'] = CC_TARGET,
        ['}'] = CC_TARGET,
};
/* clang-format on */

static inline bool is_tchar(uint8_t c)
{
        return cclass[c] & CC_TCHAR;
}

static inline bool is_ws(uint8_t c)
{
        return c == ' ' || c == '\t';
}

/* field-vchar / SP / HTAB: everything but CTLs (HTAB allowed) and DEL.
 * obs-text (0x80-0xff) is allowed in values (RFC 9110 §5.5). */
static inline bool is_value_char(uint8_t c)
{
        return c == '\t' || (c >= 0x20 && c != 0x7f);
}

static inline bool is_digit(uint8_t c)
{
        return c >= '0' && c <= '9';
}

static bool span_caseeq(const uint8_t *p, size_t n, const char *s)
{
        return strlen(s) == n && strncasecmp((const char *)p, s, n) == 0;
}

static struct proxy_h1_span mkspan(size_t off, size_t len)
{
        return (struct proxy_h1_span){.off = (uint32_t)off, .len = (uint32_t)len};
}

/* ================================================================
 * Enum names and statuses
 * ================================================================ */

static const char *const err_names[_PROXY_H1_E_MAX] = {
        [PROXY_H1_OK] = "ok",
        [PROXY_H1_E_REQUEST_LINE] = "bad-request-line",
        [PROXY_H1_E_METHOD] = "bad-method",
        [PROXY_H1_E_TARGET] = "bad-target",
        [PROXY_H1_E_TARGET_TOO_LONG] = "target-too-long",
        [PROXY_H1_E_VERSION] = "bad-version",
        [PROXY_H1_E_VERSION_UNSUPPORTED] = "version-unsupported",
        [PROXY_H1_E_STATUS_LINE] = "bad-status-line",
        [PROXY_H1_E_BARE_LF] = "bare-lf",
        [PROXY_H1_E_BARE_CR] = "bare-cr",
        [PROXY_H1_E_HEADER_NAME] = "bad-header-name",
        [PROXY_H1_E_WS_BEFORE_COLON] = "space-before-colon",
        [PROXY_H1_E_HEADER_VALUE] = "bad-header-value",
        [PROXY_H1_E_OBS_FOLD] = "obs-fold",
        [PROXY_H1_E_WS_LINE] = "whitespace-line",
        [PROXY_H1_E_HEAD_TOO_LARGE] = "head-too-large",
        [PROXY_H1_E_TOO_MANY_HEADERS] = "too-many-headers",
        [PROXY_H1_E_CL_INVALID] = "bad-content-length",
        [PROXY_H1_E_CL_DUPLICATE] = "duplicate-content-length",
        [PROXY_H1_E_TE_INVALID] = "bad-transfer-encoding",
        [PROXY_H1_E_TE_DUPLICATE] = "duplicate-transfer-encoding",
        [PROXY_H1_E_TE_NOT_CHUNKED] = "chunked-not-final",
        [PROXY_H1_E_TE_UNKNOWN] = "unknown-transfer-coding",
        [PROXY_H1_E_TE_AND_CL] = "transfer-encoding-and-content-length",
        [PROXY_H1_E_TE_HTTP10] = "transfer-encoding-in-http10",
        [PROXY_H1_E_HOST_MISSING] = "host-missing",
        [PROXY_H1_E_HOST_DUPLICATE] = "duplicate-host",
        [PROXY_H1_E_HOST_INVALID] = "bad-host",
        [PROXY_H1_E_HOST_MISMATCH] = "host-mismatch",
        [PROXY_H1_E_CONNECTION] = "bad-connection",
        [PROXY_H1_E_UPGRADE] = "bad-upgrade",
        [PROXY_H1_E_EXPECT] = "expectation-failed",
        [PROXY_H1_E_CHUNK_SIZE] = "bad-chunk-size",
        [PROXY_H1_E_CHUNK_EXT] = "bad-chunk-extension",
        [PROXY_H1_E_CHUNK_CRLF] = "bad-chunk-crlf",
        [PROXY_H1_E_TRAILER] = "bad-trailer",
        [PROXY_H1_E_TRAILER_TOO_LARGE] = "trailer-too-large",
};

const char *proxy_h1_err_to_string(enum proxy_h1_err e)
{
        if ((unsigned)e >= _PROXY_H1_E_MAX)
                return NULL;
        return err_names[e];
}

int proxy_h1_err_status(enum proxy_h1_err e)
{
        switch (e) {
        case PROXY_H1_OK:
                return 0;
        case PROXY_H1_E_TARGET_TOO_LONG:
                return 414;
        case PROXY_H1_E_HEAD_TOO_LARGE:
        case PROXY_H1_E_TOO_MANY_HEADERS:
        case PROXY_H1_E_TRAILER_TOO_LARGE:
                return 431;
        case PROXY_H1_E_TE_UNKNOWN:
                return 501;
        case PROXY_H1_E_VERSION_UNSUPPORTED:
                return 505;
        case PROXY_H1_E_EXPECT:
                return 417;
        case PROXY_H1_E_STATUS_LINE:
                return 502;
        default:
                return 400;
        }
}

static int err_errno(enum proxy_h1_err e)
{
        switch (proxy_h1_err_status(e)) {
        case 414:
                return -ENAMETOOLONG;
        case 431:
                return -EMSGSIZE;
        case 501:
                return -EOPNOTSUPP;
        case 505:
                return -EPROTONOSUPPORT;
        default:
                return -EBADMSG;
        }
}

const char *proxy_h1_body_to_string(enum proxy_h1_body b)
{
        static const char *const names[_PROXY_H1_BODY_MAX] = {
                [PROXY_H1_BODY_NONE] = "none",
                [PROXY_H1_BODY_LENGTH] = "content-length",
                [PROXY_H1_BODY_CHUNKED] = "chunked",
                [PROXY_H1_BODY_CLOSE] = "until-close",
        };

        if ((unsigned)b >= _PROXY_H1_BODY_MAX)
                return NULL;
        return names[b];
}

const char *proxy_h1_form_to_string(enum proxy_h1_form f)
{
        static const char *const names[_PROXY_H1_FORM_MAX] = {
                [PROXY_H1_FORM_ORIGIN] = "origin",
                [PROXY_H1_FORM_ABSOLUTE] = "absolute",
                [PROXY_H1_FORM_AUTHORITY] = "authority",
                [PROXY_H1_FORM_ASTERISK] = "asterisk",
        };

        if ((unsigned)f >= _PROXY_H1_FORM_MAX)
                return NULL;
        return names[f];
}

static const char *const method_names[_PROXY_H1_METHOD_MAX] = {
        [PROXY_H1_METHOD_OTHER] = "other",     [PROXY_H1_METHOD_GET] = "GET",
        [PROXY_H1_METHOD_HEAD] = "HEAD",       [PROXY_H1_METHOD_POST] = "POST",
        [PROXY_H1_METHOD_PUT] = "PUT",         [PROXY_H1_METHOD_DELETE] = "DELETE",
        [PROXY_H1_METHOD_CONNECT] = "CONNECT", [PROXY_H1_METHOD_OPTIONS] = "OPTIONS",
        [PROXY_H1_METHOD_TRACE] = "TRACE",     [PROXY_H1_METHOD_PATCH] = "PATCH",
};

const char *proxy_h1_method_to_string(enum proxy_h1_method m)
{
        if ((unsigned)m >= _PROXY_H1_METHOD_MAX)
                return NULL;
        return method_names[m];
}

#define HDR_NAMES(X)                                                                               \
        X(PROXY_H1_HDR_OTHER, "other")                                                             \
        X(PROXY_H1_HDR_HOST, "host")                                                               \
        X(PROXY_H1_HDR_CONTENT_LENGTH, "content-length")                                           \
        X(PROXY_H1_HDR_TRANSFER_ENCODING, "transfer-encoding")                                     \
        X(PROXY_H1_HDR_CONNECTION, "connection")                                                   \
        X(PROXY_H1_HDR_KEEP_ALIVE, "keep-alive")                                                   \
        X(PROXY_H1_HDR_PROXY_CONNECTION, "proxy-connection")                                       \
        X(PROXY_H1_HDR_TE, "te")                                                                   \
        X(PROXY_H1_HDR_TRAILER, "trailer")                                                         \
        X(PROXY_H1_HDR_UPGRADE, "upgrade")                                                         \
        X(PROXY_H1_HDR_PROXY_AUTHORIZATION, "proxy-authorization")                                 \
        X(PROXY_H1_HDR_PROXY_AUTHENTICATE, "proxy-authenticate")                                   \
        X(PROXY_H1_HDR_HTTP2_SETTINGS, "http2-settings")                                           \
        X(PROXY_H1_HDR_EXPECT, "expect")                                                           \
        X(PROXY_H1_HDR_X_FORWARDED_FOR, "x-forwarded-for")                                         \
        X(PROXY_H1_HDR_X_FORWARDED_PROTO, "x-forwarded-proto")                                     \
        X(PROXY_H1_HDR_X_FORWARDED_HOST, "x-forwarded-host")                                       \
        X(PROXY_H1_HDR_X_REAL_IP, "x-real-ip")                                                     \
        X(PROXY_H1_HDR_FRAMING_LOOKALIKE, "framing-lookalike")

#define HDR_NAME(id, s) [id] = s,
#define HDR_LEN(id, s)  [id] = sizeof(s) - 1,
static const char *const hdr_names[_PROXY_H1_HDR_MAX] = {HDR_NAMES(HDR_NAME)};
/* Their lengths: a name is compared only with those of its length (this
 * runs for every field of every head). */
static const uint8_t hdr_name_lens[_PROXY_H1_HDR_MAX] = {HDR_NAMES(HDR_LEN)};
#undef HDR_NAME
#undef HDR_LEN

const char *proxy_h1_hdr_to_string(enum proxy_h1_hdr h)
{
        if ((unsigned)h >= _PROXY_H1_HDR_MAX)
                return NULL;
        return hdr_names[h];
}

/* Name -> id, case-insensitively. A name that differs from Content-Length
 * or Transfer-Encoding only by '_' for '-' is a framing look-alike: some
 * backends (CGI-style environments, header normalisers) fold '_' and '-',
 * and would then frame the body differently from us. */
static enum proxy_h1_hdr classify_name(const uint8_t *p, size_t n)
{
        static const char *const lookalikes[] = {"content_length", "transfer_encoding"};

        for (unsigned i = PROXY_H1_HDR_HOST; i < PROXY_H1_HDR_FRAMING_LOOKALIKE; i++)
                if (hdr_name_lens[i] == n && strncasecmp((const char *)p, hdr_names[i], n) == 0)
                        return i;
        if (n != sizeof("content_length") - 1 && n != sizeof("transfer_encoding") - 1)
                return PROXY_H1_HDR_OTHER;
        for (size_t i = 0; i < ELEMENTSOF(lookalikes); i++) {
                const char *s = lookalikes[i];
                bool underscore = false;
                size_t j;

                if (strlen(s) != n)
                        continue;
                for (j = 0; j < n; j++) {
                        uint8_t c = p[j];

                        if (c == '-' || c == '_') {
                                if (s[j] != '_')
                                        break;
                                underscore |= c == '_';
                        } else if ((c | 0x20) != s[j]) {
                                break;
                        }
                }
                if (j == n && underscore)
                        return PROXY_H1_HDR_FRAMING_LOOKALIKE;
        }
        return PROXY_H1_HDR_OTHER;
}

static enum proxy_h1_method classify_method(const uint8_t *p, size_t n)
{
        /* Methods are case-sensitive (RFC 9110 §9.1). */
        for (unsigned i = PROXY_H1_METHOD_GET; i < _PROXY_H1_METHOD_MAX; i++)
                if (strlen(method_names[i]) == n && memcmp(p, method_names[i], n) == 0)
                        return i;
        return PROXY_H1_METHOD_OTHER;
}

/* ================================================================
 * host [ ":" port ] (RFC 9110 §7.2, RFC 3986 §3.2.2)
 * ================================================================ */

/* Accept IP-literal (IPv6 only: no IPvFuture, no zone) or a reg-name made of
 * ALPHA DIGIT - . _ (IPv4address is a subset). RFC 3986 also allows
 * sub-delims and pct-encoding in reg-name; no DNS name needs them and they
 * only serve confusion attacks, so they are refused. The port, when present,
 * is 1-5 digits in 1..65535 (an empty port is refused). */
static int host_parse(const uint8_t *s, size_t n, bool port_required, size_t *ret_host_len,
                      uint32_t *ret_port)
{
        size_t hl, i;
        uint32_t port = 0;

        if (n == 0)
                return -EINVAL;
        if (s[0] == '[') {
                char tmp[INET6_ADDRSTRLEN];
                struct in6_addr a;

                for (i = 1; i < n && s[i] != ']'; i++)
                        if (!(cclass[s[i]] & CC_HEX) && s[i] != ':' && s[i] != '.')
                                return -EINVAL;
                if (i >= n || i - 1 < 2 || i - 1 >= sizeof(tmp))
                        return -EINVAL;
                memcpy(tmp, s + 1, i - 1);
                tmp[i - 1] = 0;
                if (inet_pton(AF_INET6, tmp, &a) != 1)
                        return -EINVAL;
                hl = i + 1;
        } else {
                for (i = 0; i < n && (cclass[s[i]] & CC_REGNAME); i++)
                        ;
                hl = i;
                if (hl == 0 || hl > 255)
                        return -EINVAL;
        }
        if (hl == n) {
                if (port_required)
                        return -EINVAL;
        } else {
                if (s[hl] != ':' || n - hl - 1 < 1 || n - hl - 1 > 5)
                        return -EINVAL;
                for (i = hl + 1; i < n; i++) {
                        if (!is_digit(s[i]))
                                return -EINVAL;
                        port = port * 10 + (uint32_t)(s[i] - '0');
                }
                if (port == 0 || port > 65535)
                        return -EINVAL;
        }
        *ret_host_len = hl;
        *ret_port = port;
        return 0;
}

/* ================================================================
 * Head parser (request line / status line, field lines)
 * ================================================================ */

enum {
        ST_RL_BEGIN,    /* before the method; empty lines skipped */
        ST_RL_EMPTY_LF, /* CR of a leading empty line seen */
        ST_METHOD,
        ST_TARGET,
        ST_VERSION,
        ST_RL_LF,
        ST_SL_VERSION, /* "HTTP/1.x" of a status line */
        ST_SL_SP1,
        ST_SL_CODE,
        ST_SL_SP2,
        ST_SL_REASON,
        ST_SL_LF,
        ST_HDR_BEGIN,
        ST_NAME,
        ST_OWS,
        ST_VALUE,
        ST_HDR_LF,
        ST_END_LF,
        ST_DONE,
        ST_ERROR,
};

static void head_init(struct proxy_h1_head *h, const struct proxy_h1_limits *limits,
                      struct proxy_h1_header *headers, uint32_t cap, uint8_t st)
{
        assert(limits);
        assert(headers || cap == 0);
        *h = (struct proxy_h1_head){
                .limits = *limits,
                .headers = headers,
                .headers_cap = cap,
                .scan.st = st,
        };
        h->limits.max_head = MIN(h->limits.max_head, PROXY_H1_HEAD_MAX_LIMIT);
        h->limits.max_headers = MIN(h->limits.max_headers, cap);
}

void proxy_h1_req_init(struct proxy_h1_req *req, const struct proxy_h1_limits *limits,
                       struct proxy_h1_header *headers, uint32_t cap)
{
        assert(req);
        *req = (struct proxy_h1_req){.host_index = -1};
        head_init(&req->h, limits, headers, cap, ST_RL_BEGIN);
}

void proxy_h1_resp_init(struct proxy_h1_resp *resp, const struct proxy_h1_limits *limits,
                        struct proxy_h1_header *headers, uint32_t cap)
{
        assert(resp);
        *resp = (struct proxy_h1_resp){};
        head_init(&resp->h, limits, headers, cap, ST_SL_VERSION);
}

static int fail(struct proxy_h1_head *h, enum proxy_h1_err e)
{
        h->err = e;
        h->scan.st = ST_ERROR;
        return err_errno(e);
}

/* Classify the request-target once it is complete (RFC 9112 §3.2). */
static enum proxy_h1_err classify_target(struct proxy_h1_req *req, const uint8_t *buf)
{
        const uint8_t *t = buf + req->target.off;
        size_t n = req->target.len, hl, i;
        uint32_t port;

        if (req->method_id == PROXY_H1_METHOD_CONNECT) {
                /* authority-form only (§3.2.3); reported, the engine refuses it. */
                if (host_parse(t, n, /* port_required= */ true, &hl, &port) < 0)
                        return PROXY_H1_E_TARGET;
                req->form = PROXY_H1_FORM_AUTHORITY;
                req->authority = req->target;
                req->path = mkspan(req->target.off, 0);
                return PROXY_H1_OK;
        }
        if (t[0] == '/') {
                req->form = PROXY_H1_FORM_ORIGIN;
                req->path = req->target;
                return PROXY_H1_OK;
        }
        if (t[0] == '*') {
                if (n != 1 || req->method_id != PROXY_H1_METHOD_OPTIONS)
                        return PROXY_H1_E_TARGET;
                req->form = PROXY_H1_FORM_ASTERISK;
                req->path = req->target;
                return PROXY_H1_OK;
        }

        /* absolute-form (§3.2.2): "http" or "https" "://" authority
         * path-abempty [ "?" query ]. Userinfo is refused (RFC 9110 §4.2.4),
         * other schemes are not ours to serve. */
        for (i = 0; i < n && (cclass[t[i]] & CC_SCHEME); i++)
                ;
        if (!(span_caseeq(t, i, "http") || span_caseeq(t, i, "https")))
                return PROXY_H1_E_TARGET;
        if (n - i < 3 || memcmp(t + i, "://", 3) != 0)
                return PROXY_H1_E_TARGET;
        i += 3;
        size_t a = i;
        while (i < n && t[i] != '/' && t[i] != '?')
                i++;
        if (host_parse(t + a, i - a, /* port_required= */ false, &hl, &port) < 0)
                return PROXY_H1_E_TARGET;
        req->form = PROXY_H1_FORM_ABSOLUTE;
        req->authority = mkspan(req->target.off + a, i - a);
        req->path = mkspan(req->target.off + i, n - i);
        return PROXY_H1_OK;
}

static bool match_version(const uint8_t *v, size_t n, uint8_t *ret_minor, bool *ret_wellformed)
{
        /* HTTP-version = "HTTP" "/" DIGIT "." DIGIT (case-sensitive, §2.3). */
        *ret_wellformed = n == 8 && memcmp(v, "HTTP/", 5) == 0 && is_digit(v[5]) && v[6] == '.' &&
                          is_digit(v[7]);
        if (!*ret_wellformed || v[5] != '1' || (v[7] != '0' && v[7] != '1'))
                return false;
        *ret_minor = (uint8_t)(v[7] - '0');
        return true;
}

/* One pass over @buf[pos..len) for either message kind. */
static int head_parse(struct proxy_h1_head *h, struct proxy_h1_req *req, struct proxy_h1_resp *resp,
                      const uint8_t *buf, size_t len)
{
        struct proxy_h1_scan *s = &h->scan;
        size_t end, pos = s->pos;
        enum proxy_h1_err e;

        assert(buf || len == 0);
        if (s->st == ST_DONE)
                return (int)h->head_len;
        if (s->st == ST_ERROR)
                return err_errno(h->err);
        assert(len >= pos);

        end = MIN(len, (size_t)h->limits.max_head);
        for (; pos < end; pos++) {
                uint8_t c = buf[pos];

                switch (s->st) {
                case ST_RL_BEGIN:
                        /* RFC 9112 §2.2: a server SHOULD ignore empty lines
                         * received before the request-line. Only CRLF ones. */
                        if (c == '\r') {
                                s->st = ST_RL_EMPTY_LF;
                        } else if (c == '\n') {
                                s->pos = (uint32_t)pos;
                                return fail(h, PROXY_H1_E_BARE_LF);
                        } else if (is_tchar(c)) {
                                s->mark = (uint32_t)pos;
                                s->st = ST_METHOD;
                        } else {
                                s->pos = (uint32_t)pos;
                                return fail(h, PROXY_H1_E_METHOD);
                        }
                        break;
                case ST_RL_EMPTY_LF:
                        if (c != '\n') {
                                s->pos = (uint32_t)pos;
                                return fail(h, PROXY_H1_E_BARE_CR);
                        }
                        s->st = ST_RL_BEGIN;
                        break;
                case ST_METHOD:
                        while (pos < end && is_tchar(buf[pos]))
                                pos++;
                        if (pos == end)
                                goto out;
                        if (buf[pos] != ' ') {
                                s->pos = (uint32_t)pos;
                                return fail(h, PROXY_H1_E_METHOD);
                        }
                        req->method = mkspan(s->mark, pos - s->mark);
                        req->method_id = classify_method(buf + s->mark, pos - s->mark);
                        s->mark = (uint32_t)pos + 1;
                        s->st = ST_TARGET;
                        break;
                case ST_TARGET: {
                        size_t stop = MIN(end, (size_t)s->mark + h->limits.max_target + 1);

                        while (pos < stop && (cclass[buf[pos]] & CC_TARGET))
                                pos++;
                        if (pos - s->mark > h->limits.max_target) {
                                s->pos = (uint32_t)pos;
                                return fail(h, PROXY_H1_E_TARGET_TOO_LONG);
                        }
                        if (pos == end)
                                goto out;
                        c = buf[pos];
                        if (c != ' ') {
                                s->pos = (uint32_t)pos;
                                /* "GET /\r\n" (HTTP/0.9) and "GET  /" are line errors. */
                                return fail(h, c == '\r' || c == '\n' || pos == s->mark
                                                       ? PROXY_H1_E_REQUEST_LINE
                                                       : PROXY_H1_E_TARGET);
                        }
                        if (pos == s->mark) {
                                s->pos = (uint32_t)pos;
                                return fail(h, PROXY_H1_E_REQUEST_LINE);
                        }
                        req->target = mkspan(s->mark, pos - s->mark);
                        e = classify_target(req, buf);
                        if (e != PROXY_H1_OK) {
                                s->pos = (uint32_t)pos;
                                return fail(h, e);
                        }
                        s->mark = (uint32_t)pos + 1;
                        s->st = ST_VERSION;
                        break;
                }
                case ST_VERSION: {
                        bool wellformed;

                        if (c == '\r') {
                                if (!match_version(buf + s->mark, pos - s->mark, &h->minor,
                                                   &wellformed)) {
                                        s->pos = (uint32_t)pos;
                                        return fail(h, wellformed ? PROXY_H1_E_VERSION_UNSUPPORTED
                                                                  : PROXY_H1_E_VERSION);
                                }
                                s->st = ST_RL_LF;
                        } else if (c == ' ' || c == '\n' || pos - s->mark >= 8) {
                                s->pos = (uint32_t)pos;
                                return fail(h, c == '\n'  ? PROXY_H1_E_BARE_LF
                                               : c == ' ' ? PROXY_H1_E_REQUEST_LINE
                                                          : PROXY_H1_E_VERSION);
                        } else if (c < 0x21 || c > 0x7e) {
                                s->pos = (uint32_t)pos;
                                return fail(h, PROXY_H1_E_VERSION);
                        }
                        break;
                }
                case ST_RL_LF:
                case ST_SL_LF:
                case ST_HDR_LF:
                        if (c != '\n') {
                                s->pos = (uint32_t)pos;
                                return fail(h, PROXY_H1_E_BARE_CR);
                        }
                        s->st = ST_HDR_BEGIN;
                        break;

                case ST_SL_VERSION:
                        /* "HTTP/1." then '0' or '1'. */
                        if (pos < 7) {
                                if (c != (uint8_t) "HTTP/1."[pos]) {
                                        s->pos = (uint32_t)pos;
                                        return fail(h, PROXY_H1_E_STATUS_LINE);
                                }
                                break;
                        }
                        if (c != '0' && c != '1') {
                                s->pos = (uint32_t)pos;
                                return fail(h, is_digit(c) ? PROXY_H1_E_VERSION_UNSUPPORTED
                                                           : PROXY_H1_E_STATUS_LINE);
                        }
                        h->minor = (uint8_t)(c - '0');
                        s->st = ST_SL_SP1;
                        break;
                case ST_SL_SP1:
                        if (c != ' ') {
                                s->pos = (uint32_t)pos;
                                return fail(h, PROXY_H1_E_STATUS_LINE);
                        }
                        s->mark = (uint32_t)pos + 1;
                        s->st = ST_SL_CODE;
                        break;
                case ST_SL_CODE:
                        if (!is_digit(c)) {
                                s->pos = (uint32_t)pos;
                                return fail(h, PROXY_H1_E_STATUS_LINE);
                        }
                        resp->status = resp->status * 10 + (unsigned)(c - '0');
                        if (pos - s->mark == 2) {
                                if (resp->status < 100 || resp->status > 599) {
                                        s->pos = (uint32_t)pos;
                                        return fail(h, PROXY_H1_E_STATUS_LINE);
                                }
                                s->st = ST_SL_SP2;
                        }
                        break;
                case ST_SL_SP2:
                        /* The SP before an empty reason-phrase is required by
                         * RFC 9112 §4, but "HTTP/1.1 204\r\n" is common and
                         * harmless: accept it. */
                        if (c == '\r') {
                                resp->reason = mkspan(pos, 0);
                                s->st = ST_SL_LF;
                        } else if (c == ' ') {
                                s->mark = (uint32_t)pos + 1;
                                s->st = ST_SL_REASON;
                        } else {
                                s->pos = (uint32_t)pos;
                                return fail(h, PROXY_H1_E_STATUS_LINE);
                        }
                        break;
                case ST_SL_REASON:
                        while (pos < end && is_value_char(buf[pos]))
                                pos++;
                        if (pos == end)
                                goto out;
                        if (buf[pos] != '\r') {
                                s->pos = (uint32_t)pos;
                                return fail(h, buf[pos] == '\n' ? PROXY_H1_E_BARE_LF
                                                                : PROXY_H1_E_STATUS_LINE);
                        }
                        resp->reason = mkspan(s->mark, pos - s->mark);
                        s->st = ST_SL_LF;
                        break;

                case ST_HDR_BEGIN:
                        if (c == '\r') {
                                s->st = ST_END_LF;
                        } else if (is_tchar(c)) {
                                if (h->n_headers >= h->limits.max_headers) {
                                        s->pos = (uint32_t)pos;
                                        return fail(h, PROXY_H1_E_TOO_MANY_HEADERS);
                                }
                                s->mark = (uint32_t)pos;
                                s->st = ST_NAME;
                        } else {
                                s->pos = (uint32_t)pos;
                                if (c == '\n')
                                        return fail(h, PROXY_H1_E_BARE_LF);
                                if (is_ws(c))
                                        /* §5.2 obs-fold is rejected; §2.2 white
                                         * space before the first field too. */
                                        return fail(h, h->n_headers ? PROXY_H1_E_OBS_FOLD
                                                                    : PROXY_H1_E_WS_LINE);
                                return fail(h, PROXY_H1_E_HEADER_NAME);
                        }
                        break;
                case ST_NAME:
                        while (pos < end && is_tchar(buf[pos]))
                                pos++;
                        if (pos == end)
                                goto out;
                        c = buf[pos];
                        if (c != ':') {
                                s->pos = (uint32_t)pos;
                                return fail(h, is_ws(c) ? PROXY_H1_E_WS_BEFORE_COLON
                                                        : PROXY_H1_E_HEADER_NAME);
                        } else {
                                struct proxy_h1_header *f = &h->headers[h->n_headers];

                                *f = (struct proxy_h1_header){
                                        .name = mkspan(s->mark, pos - s->mark),
                                        .id = (uint8_t)classify_name(buf + s->mark, pos - s->mark),
                                };
                                s->st = ST_OWS;
                        }
                        break;
                case ST_OWS:
                        if (is_ws(c))
                                break;
                        s->vstart = s->vend = (uint32_t)pos;
                        s->st = ST_VALUE;
                        __attribute__((fallthrough));
                case ST_VALUE:
                        while (pos < end && is_value_char(buf[pos])) {
                                if (!is_ws(buf[pos]))
                                        s->vend = (uint32_t)pos + 1;
                                pos++;
                        }
                        if (pos == end)
                                goto out;
                        c = buf[pos];
                        if (c == '\r') {
                                struct proxy_h1_header *f = &h->headers[h->n_headers++];

                                f->value = mkspan(s->vstart, s->vend - s->vstart);
                                f->line_len = (uint32_t)(pos - f->name.off);
                                s->st = ST_HDR_LF;
                        } else {
                                s->pos = (uint32_t)pos;
                                return fail(h, c == '\n' ? PROXY_H1_E_BARE_LF
                                                         : PROXY_H1_E_HEADER_VALUE);
                        }
                        break;
                case ST_END_LF:
                        if (c != '\n') {
                                s->pos = (uint32_t)pos;
                                return fail(h, PROXY_H1_E_BARE_CR);
                        }
                        s->st = ST_DONE;
                        s->pos = (uint32_t)pos + 1;
                        h->head_len = (uint32_t)pos + 1;
                        return (int)h->head_len;
                default:
                        assert(false);
                }
        }
out:
        s->pos = (uint32_t)pos;
        if (pos >= h->limits.max_head)
                return fail(h, s->st == ST_TARGET ? PROXY_H1_E_TARGET_TOO_LONG
                                                  : PROXY_H1_E_HEAD_TOO_LARGE);
        return -EAGAIN;
}

int proxy_h1_req_parse(struct proxy_h1_req *req, const uint8_t *buf, size_t len)
{
        assert(req);
        return head_parse(&req->h, req, NULL, buf, len);
}

int proxy_h1_resp_parse(struct proxy_h1_resp *resp, const uint8_t *buf, size_t len)
{
        assert(resp);
        return head_parse(&resp->h, NULL, resp, buf, len);
}

/* ================================================================
 * Field value lists (RFC 9110 §5.6.1)
 * ================================================================ */

/* Iterate the comma-separated elements of @v[0..n): sets *ret_off and *ret_len
 * to the next element with OWS trimmed (possibly empty). Returns false at
 * the end. *i is the iteration cursor, starting at 0. */
static bool list_next(const uint8_t *v, size_t n, size_t *i, size_t *ret_off, size_t *ret_len)
{
        size_t a, b;

        if (*i > n)
                return false;
        a = *i;
        while (a < n && is_ws(v[a]))
                a++;
        b = a;
        while (b < n && v[b] != ',')
                b++;
        *i = b + 1;
        while (b > a && is_ws(v[b - 1]))
                b--;
        *ret_off = a;
        *ret_len = b - a;
        return true;
}

static bool all_tchar(const uint8_t *p, size_t n)
{
        if (n == 0)
                return false;
        for (size_t i = 0; i < n; i++)
                if (!is_tchar(p[i]))
                        return false;
        return true;
}

/* Content-Length = 1*DIGIT (RFC 9110 §8.6). A list ("5, 5"), a sign,
 * white space inside or a value above INT64_MAX is refused. */
static enum proxy_h1_err cl_parse(const uint8_t *v, size_t n, uint64_t *ret)
{
        uint64_t x = 0;

        if (n == 0)
                return PROXY_H1_E_CL_INVALID;
        for (size_t i = 0; i < n; i++) {
                if (!is_digit(v[i]))
                        return PROXY_H1_E_CL_INVALID;
                if (x > (PROXY_H1_CONTENT_LENGTH_MAX - (uint64_t)(v[i] - '0')) / 10)
                        return PROXY_H1_E_CL_INVALID;
                x = x * 10 + (uint64_t)(v[i] - '0');
        }
        *ret = x;
        return PROXY_H1_OK;
}

/* Transfer-Encoding: we implement exactly one coding, "chunked", alone.
 * RFC 9112 §6.3: in a request, chunked not final -> 400; §6.1: a coding we
 * do not understand -> 501. Parameters on chunked are not defined: 400. */
static enum proxy_h1_err te_parse(const uint8_t *v, size_t n)
{
        size_t i = 0, off, l, elems = 0, chunked = 0;
        bool last_chunked = false, bad = false;

        while (list_next(v, n, &i, &off, &l)) {
                const uint8_t *el = v + off;
                size_t tl = 0;

                while (tl < l && is_tchar(el[tl]))
                        tl++;
                if (tl == 0) {
                        bad = true;
                        continue;
                }
                /* token *( OWS ";" OWS transfer-parameter ) */
                if (tl < l) {
                        size_t j = tl;

                        while (j < l && is_ws(el[j]))
                                j++;
                        if (j == l || el[j] != ';')
                                bad = true;
                        for (; j < l; j++)
                                if (!is_value_char(el[j]))
                                        bad = true;
                }
                elems++;
                last_chunked = span_caseeq(el, tl, "chunked");
                if (last_chunked) {
                        chunked++;
                        if (tl != l)
                                bad = true;
                }
        }
        if (bad || elems == 0)
                return PROXY_H1_E_TE_INVALID;
        if (!last_chunked || chunked != 1)
                return PROXY_H1_E_TE_NOT_CHUNKED;
        if (elems != 1)
                return PROXY_H1_E_TE_UNKNOWN;
        return PROXY_H1_OK;
}

/* State shared by request and response analysis. */
struct analysis {
        struct proxy_h1_span conn_tokens[PROXY_H1_CONN_TOKENS_MAX];
        unsigned n_conn_tokens;
        int cl_index;
        int te_index;
};

static bool is_intrinsic_hop(uint8_t id)
{
        switch (id) {
        case PROXY_H1_HDR_CONNECTION:
        case PROXY_H1_HDR_KEEP_ALIVE:
        case PROXY_H1_HDR_PROXY_CONNECTION:
        case PROXY_H1_HDR_TE:
        case PROXY_H1_HDR_TRAILER:
        case PROXY_H1_HDR_TRANSFER_ENCODING:
        case PROXY_H1_HDR_UPGRADE:
        case PROXY_H1_HDR_PROXY_AUTHORIZATION:
        case PROXY_H1_HDR_PROXY_AUTHENTICATE:
        case PROXY_H1_HDR_HTTP2_SETTINGS:
                return true;
        default:
                return false;
        }
}

/* Common part of both analyses: framing fields, Connection, Upgrade. */
static enum proxy_h1_err analyze_common(struct proxy_h1_head *h, const uint8_t *buf,
                                        struct analysis *a)
{
        enum proxy_h1_err e;

        a->cl_index = a->te_index = -1;
        for (uint32_t k = 0; k < h->n_headers; k++) {
                struct proxy_h1_header *f = &h->headers[k];
                const uint8_t *v = buf + f->value.off;
                size_t n = f->value.len, i = 0, off, l;

                f->flags = is_intrinsic_hop(f->id) ? PROXY_H1_HF_HOP : 0;
                switch (f->id) {
                case PROXY_H1_HDR_FRAMING_LOOKALIKE:
                        return PROXY_H1_E_HEADER_NAME;
                case PROXY_H1_HDR_CONTENT_LENGTH:
                        /* Even identical repeats ("5" twice) are refused:
                         * RFC 9110 §8.6 allows merging them, but refusing is
                         * simpler and no real client sends them. */
                        if (a->cl_index >= 0)
                                return PROXY_H1_E_CL_DUPLICATE;
                        a->cl_index = (int)k;
                        e = cl_parse(v, n, &h->content_length);
                        if (e != PROXY_H1_OK)
                                return e;
                        h->has_content_length = true;
                        break;
                case PROXY_H1_HDR_TRANSFER_ENCODING:
                        if (a->te_index >= 0)
                                return PROXY_H1_E_TE_DUPLICATE;
                        a->te_index = (int)k;
                        break;
                case PROXY_H1_HDR_CONNECTION:
                        while (list_next(v, n, &i, &off, &l)) {
                                if (l == 0)
                                        continue; /* empty list elements are allowed */
                                if (!all_tchar(v + off, l))
                                        return PROXY_H1_E_CONNECTION;
                                if (span_caseeq(v + off, l, "close"))
                                        h->conn_close = true;
                                else if (span_caseeq(v + off, l, "keep-alive"))
                                        h->conn_keep_alive = true;
                                else if (span_caseeq(v + off, l, "upgrade"))
                                        h->conn_upgrade = true;
                                else if (a->n_conn_tokens >= PROXY_H1_CONN_TOKENS_MAX)
                                        /* Bounds the name matching below. */
                                        return PROXY_H1_E_CONNECTION;
                                else
                                        a->conn_tokens[a->n_conn_tokens++] =
                                                mkspan(f->value.off + off, l);
                        }
                        break;
                case PROXY_H1_HDR_UPGRADE:
                        /* protocol-name [ "/" protocol-version ] */
                        while (list_next(v, n, &i, &off, &l)) {
                                const uint8_t *el = v + off;
                                size_t j = 0;

                                if (l == 0)
                                        continue;
                                while (j < l && is_tchar(el[j]))
                                        j++;
                                if (j == 0 ||
                                    (j < l && (el[j] != '/' || !all_tchar(el + j + 1, l - j - 1))))
                                        return PROXY_H1_E_UPGRADE;
                                if (span_caseeq(el, l, "websocket"))
                                        h->upgrade_websocket = true;
                                if (span_caseeq(el, j, "h2c"))
                                        h->upgrade_h2c = true;
                        }
                        break;
                default:
                        break;
                }
        }

        /* Fields named in Connection are hop-by-hop (RFC 9110 §7.6.1), except
         * Host, which we route on and must forward, and the framing fields,
         * which we regenerate anyway. */
        for (uint32_t k = 0; k < h->n_headers && a->n_conn_tokens; k++) {
                struct proxy_h1_header *f = &h->headers[k];

                if (f->id == PROXY_H1_HDR_HOST)
                        continue;
                for (unsigned t = 0; t < a->n_conn_tokens; t++)
                        if (a->conn_tokens[t].len == f->name.len &&
                            strncasecmp((const char *)buf + a->conn_tokens[t].off,
                                        (const char *)buf + f->name.off, f->name.len) == 0) {
                                f->flags |= PROXY_H1_HF_HOP;
                                break;
                        }
        }

        if (a->te_index >= 0) {
                const struct proxy_h1_header *f = &h->headers[a->te_index];

                /* RFC 9112 §6.1: TE in HTTP/1.0 means faulty framing; §6.3:
                 * TE with CL is a smuggling attempt (we reject, not ignore). */
                if (a->cl_index >= 0)
                        return PROXY_H1_E_TE_AND_CL;
                if (h->minor == 0)
                        return PROXY_H1_E_TE_HTTP10;
                e = te_parse(buf + f->value.off, f->value.len);
                if (e != PROXY_H1_OK)
                        return e;
                h->body = PROXY_H1_BODY_CHUNKED;
        } else if (a->cl_index >= 0) {
                h->body = PROXY_H1_BODY_LENGTH;
        }
        return PROXY_H1_OK;
}

static void reset_analysis(struct proxy_h1_head *h)
{
        h->body = PROXY_H1_BODY_NONE;
        h->content_length = 0;
        h->has_content_length = false;
        h->keep_alive = false;
        h->conn_close = h->conn_keep_alive = h->conn_upgrade = false;
        h->upgrade_websocket = h->upgrade_h2c = false;
}

int proxy_h1_req_analyze(struct proxy_h1_req *req, const uint8_t *buf)
{
        struct proxy_h1_head *h = &req->h;
        struct analysis a = {};
        enum proxy_h1_err e;
        size_t hl;

        assert(req && buf);
        assert(h->scan.st == ST_DONE);

        reset_analysis(h);
        req->flags = 0;
        req->host_index = -1;
        req->host = mkspan(0, 0);
        req->port = 0;

        e = analyze_common(h, buf, &a);
        if (e != PROXY_H1_OK)
                return fail(h, e);

        for (uint32_t k = 0; k < h->n_headers; k++) {
                const struct proxy_h1_header *f = &h->headers[k];
                const uint8_t *v = buf + f->value.off;

                if (f->id == PROXY_H1_HDR_HOST) {
                        if (req->host_index >= 0)
                                return fail(h, PROXY_H1_E_HOST_DUPLICATE);
                        req->host_index = (int32_t)k;
                        if (host_parse(v, f->value.len, false, &hl, &req->port) < 0)
                                return fail(h, PROXY_H1_E_HOST_INVALID);
                        req->host = mkspan(f->value.off, hl);
                } else if (f->id == PROXY_H1_HDR_EXPECT) {
                        /* RFC 9110 §10.1.1: anything but 100-continue -> 417. */
                        if (span_caseeq(v, f->value.len, "100-continue"))
                                req->flags |= PROXY_H1_REQ_EXPECT_CONTINUE;
                        else if (f->value.len)
                                return fail(h, PROXY_H1_E_EXPECT);
                }
        }

        if (req->host_index < 0) {
                /* RFC 9112 §3.2: an HTTP/1.1 request without Host is a 400,
                 * even with an absolute-form target. */
                if (h->minor == 1)
                        return fail(h, PROXY_H1_E_HOST_MISSING);
                if (req->form == PROXY_H1_FORM_ABSOLUTE) {
                        (void)host_parse(buf + req->authority.off, req->authority.len, false, &hl,
                                         &req->port);
                        req->host = mkspan(req->authority.off, hl);
                }
        } else if (req->form == PROXY_H1_FORM_ABSOLUTE) {
                /* §3.2.2 tells origin servers to ignore Host and use the
                 * target's authority. A gateway that routes on Host must not
                 * let the two differ (an ACL/routing bypass): refuse. */
                const struct proxy_h1_header *f = &h->headers[req->host_index];

                if (f->value.len != req->authority.len ||
                    strncasecmp((const char *)buf + f->value.off,
                                (const char *)buf + req->authority.off, f->value.len) != 0)
                        return fail(h, PROXY_H1_E_HOST_MISMATCH);
        }

        if (h->upgrade_h2c)
                req->flags |= PROXY_H1_REQ_H2C;
        /* RFC 6455 §4.1: a WebSocket handshake is a GET over HTTP/1.1 with
         * Connection: upgrade. Anything else loses its Upgrade field. */
        if (h->upgrade_websocket && h->conn_upgrade && h->minor == 1 &&
            req->method_id == PROXY_H1_METHOD_GET)
                req->flags |= PROXY_H1_REQ_WEBSOCKET;

        if (h->minor == 1)
                h->keep_alive = !h->conn_close;
        else
                h->keep_alive = h->conn_keep_alive && !h->conn_close;
        return 0;
}

int proxy_h1_resp_analyze(struct proxy_h1_resp *resp, const uint8_t *buf, bool head_request)
{
        struct proxy_h1_head *h = &resp->h;
        struct analysis a = {};
        enum proxy_h1_err e;

        assert(resp && buf);
        assert(h->scan.st == ST_DONE);

        reset_analysis(h);
        e = analyze_common(h, buf, &a);
        if (e != PROXY_H1_OK)
                return fail(h, e);

        /* RFC 9112 §6.3, in order: HEAD, 1xx, 204, 304 have no body whatever
         * the fields say; then chunked; then Content-Length; else the body
         * runs until the backend closes. */
        if (head_request || resp->status < 200 || resp->status == 204 || resp->status == 304)
                h->body = PROXY_H1_BODY_NONE;
        else if (a.te_index < 0 && a.cl_index < 0)
                h->body = PROXY_H1_BODY_CLOSE;

        if (h->body == PROXY_H1_BODY_CLOSE)
                h->keep_alive = false;
        else if (h->minor == 1)
                h->keep_alive = !h->conn_close;
        else
                h->keep_alive = h->conn_keep_alive && !h->conn_close;
        return 0;
}

/* ================================================================
 * Chunked transfer coding (RFC 9112 §7.1)
 * ================================================================ */

enum {
        CH_SIZE_BEGIN, /* first hex digit of chunk-size */
        CH_SIZE,
        CH_SIZE_BWS, /* BWS after the size: only ';' may follow */
        CH_EXT,
        CH_SIZE_LF,
        CH_DATA,
        CH_DATA_CR,
        CH_DATA_LF,
        CH_TR_BEGIN, /* start of a trailer line (or the final CRLF) */
        CH_TR_NAME,
        CH_TR_VALUE,
        CH_TR_LF,
        CH_END_LF,
        CH_DONE,
        CH_ERROR,
};

void proxy_h1_chunked_init(struct proxy_h1_chunked *c, uint32_t max_line, uint32_t max_trailer,
                           uint32_t max_trailers)
{
        assert(c);
        *c = (struct proxy_h1_chunked){
                .max_line = max_line,
                .max_trailer = max_trailer,
                .max_trailers = max_trailers,
                .st = CH_SIZE_BEGIN,
        };
}

void proxy_h1_chunked_keep_trailers(struct proxy_h1_chunked *c)
{
        assert(c && c->st == CH_SIZE_BEGIN);
        c->keep = true;
}

bool proxy_h1_chunked_done(const struct proxy_h1_chunked *c)
{
        return c->st == CH_DONE;
}

void proxy_h1_chunked_trailers(const struct proxy_h1_chunked *c, int r, size_t *ret_off,
                               size_t *ret_len)
{
        assert(c->keep && c->st == CH_DONE && c->trailer_bytes >= 2 &&
               (size_t)r >= c->trailer_bytes);
        *ret_off = (size_t)r - c->trailer_bytes;
        *ret_len = c->trailer_bytes - 2;
}

static int chunk_fail(struct proxy_h1_chunked *c, enum proxy_h1_err e)
{
        c->err = e;
        c->st = CH_ERROR;
        return err_errno(e);
}

int proxy_h1_chunked_decode(struct proxy_h1_chunked *c, const uint8_t *p, size_t n,
                            size_t *ret_data_len)
{
        /* A call that begins in the trailer section begins at its start
         * (what was consumed before it was handed out). */
        size_t i = 0, tr_start = 0;

        assert(c && ret_data_len);
        assert(p || n == 0);
        *ret_data_len = 0;
        n = MIN(n, (size_t)INT32_MAX);
        if (c->st == CH_ERROR)
                return err_errno(c->err);
        if (c->tr_held > 0) {
                /* The kept section so far is at @p again: go on after it. */
                assert(n >= c->tr_held);
                i = c->tr_held;
        }

        for (; i < n && c->st != CH_DONE; i++) {
                uint8_t b = p[i];
                int d;

                if (c->st >= CH_TR_BEGIN && c->st <= CH_END_LF &&
                    ++c->trailer_bytes > c->max_trailer)
                        return chunk_fail(c, PROXY_H1_E_TRAILER_TOO_LARGE);
                if (c->st <= CH_SIZE_LF && ++c->line_len > c->max_line)
                        return chunk_fail(c, c->st == CH_EXT ? PROXY_H1_E_CHUNK_EXT
                                                             : PROXY_H1_E_CHUNK_SIZE);

                switch (c->st) {
                case CH_SIZE_BEGIN:
                case CH_SIZE:
                        d = unhexchar((char)b);
                        if (d >= 0) {
                                /* Keep the size within int64 for the engine's
                                 * arithmetic; leading zeros are bounded by
                                 * max_line. */
                                if (c->size > (uint64_t)INT64_MAX >> 4)
                                        return chunk_fail(c, PROXY_H1_E_CHUNK_SIZE);
                                c->size = c->size << 4 | (uint64_t)d;
                                c->st = CH_SIZE;
                        } else if (c->st == CH_SIZE_BEGIN) {
                                return chunk_fail(c, PROXY_H1_E_CHUNK_SIZE);
                        } else if (b == '\r') {
                                c->st = CH_SIZE_LF;
                        } else if (b == ';') {
                                c->st = CH_EXT;
                        } else if (is_ws(b)) {
                                c->st = CH_SIZE_BWS;
                        } else {
                                return chunk_fail(c, b == '\n' ? PROXY_H1_E_CHUNK_CRLF
                                                               : PROXY_H1_E_CHUNK_SIZE);
                        }
                        break;
                case CH_SIZE_BWS:
                        if (b == ';')
                                c->st = CH_EXT;
                        else if (!is_ws(b))
                                return chunk_fail(c, PROXY_H1_E_CHUNK_SIZE);
                        break;
                case CH_EXT:
                        /* Extensions are tolerated and dropped; we check only
                         * that they hold no CTL, so a bare LF or CR inside one
                         * cannot end the line for us and not for someone else. */
                        if (b == '\r')
                                c->st = CH_SIZE_LF;
                        else if (!is_value_char(b))
                                return chunk_fail(c, b == '\n' ? PROXY_H1_E_CHUNK_CRLF
                                                               : PROXY_H1_E_CHUNK_EXT);
                        break;
                case CH_SIZE_LF:
                        if (b != '\n')
                                return chunk_fail(c, PROXY_H1_E_CHUNK_CRLF);
                        c->line_len = 0;
                        if (c->size == 0) {
                                c->st = CH_TR_BEGIN;
                                tr_start = i + 1;
                        } else {
                                c->remaining = c->size;
                                c->size = 0;
                                c->st = CH_DATA;
                        }
                        break;
                case CH_DATA: {
                        size_t take = (size_t)MIN((uint64_t)(n - i), c->remaining);

                        c->remaining -= take;
                        if (c->remaining == 0)
                                c->st = CH_DATA_CR;
                        *ret_data_len = take;
                        return (int)(i + take);
                }
                case CH_DATA_CR:
                        if (b != '\r')
                                return chunk_fail(c, PROXY_H1_E_CHUNK_CRLF);
                        c->st = CH_DATA_LF;
                        break;
                case CH_DATA_LF:
                        if (b != '\n')
                                return chunk_fail(c, PROXY_H1_E_CHUNK_CRLF);
                        c->st = CH_SIZE_BEGIN;
                        break;
                case CH_TR_BEGIN:
                        if (b == '\r') {
                                c->st = CH_END_LF;
                        } else if (is_tchar(b)) {
                                if (++c->n_trailers > c->max_trailers)
                                        return chunk_fail(c, PROXY_H1_E_TRAILER_TOO_LARGE);
                                c->st = CH_TR_NAME;
                        } else {
                                return chunk_fail(c, b == '\n'  ? PROXY_H1_E_CHUNK_CRLF
                                                     : is_ws(b) ? PROXY_H1_E_OBS_FOLD
                                                                : PROXY_H1_E_TRAILER);
                        }
                        break;
                case CH_TR_NAME:
                        if (b == ':')
                                c->st = CH_TR_VALUE;
                        else if (!is_tchar(b))
                                return chunk_fail(c, is_ws(b) ? PROXY_H1_E_WS_BEFORE_COLON
                                                              : PROXY_H1_E_TRAILER);
                        break;
                case CH_TR_VALUE:
                        if (b == '\r')
                                c->st = CH_TR_LF;
                        else if (!is_value_char(b))
                                return chunk_fail(c, b == '\n' ? PROXY_H1_E_CHUNK_CRLF
                                                               : PROXY_H1_E_TRAILER);
                        break;
                case CH_TR_LF:
                        if (b != '\n')
                                return chunk_fail(c, PROXY_H1_E_CHUNK_CRLF);
                        c->st = CH_TR_BEGIN;
                        break;
                case CH_END_LF:
                        if (b != '\n')
                                return chunk_fail(c, PROXY_H1_E_CHUNK_CRLF);
                        c->st = CH_DONE;
                        break;
                default:
                        assert(false);
                }
        }
        if (c->keep && c->st >= CH_TR_BEGIN && c->st <= CH_END_LF) {
                /* An incomplete kept section: the caller holds it. */
                c->tr_held = (uint32_t)(i - tr_start);
                return (int)tr_start;
        }
        c->tr_held = 0;
        return (int)i;
}

/* RFC 9110 §6.5.1: framing, routing, request modifiers (controls and
 * conditionals, §7.6-7.8, §13), authentication (§11), response control
 * data (§10.2, caching), how to process the content (§8), state
 * management (cookies), and the hop-by-hop fields (§7.6.1). */
static const char *const trailer_forbidden[] = {
        "te",
        "age",
        "host",
        "vary",
        "range",
        "cookie",
        "expect",
        "pragma",
        "expires",
        "trailer",
        "upgrade",
        "warning",
        "if-match",
        "if-range",
        "location",
        "keep-alive",
        "connection",
        "set-cookie",
        "retry-after",
        "max-forwards",
        "content-type",
        "authorization",
        "cache-control",
        "content-range",
        "if-none-match",
        "content-length",
        "http2-settings",
        "content-encoding",
        "proxy-connection",
        "www-authenticate",
        "transfer-encoding",
        "if-modified-since",
        "proxy-authenticate",
        "proxy-authorization",
        "if-unmodified-since",
        "authentication-info",
        "proxy-authentication-info",
};

bool proxy_h1_trailer_allowed(const uint8_t *name, size_t len)
{
        for (size_t i = 0; i < ELEMENTSOF(trailer_forbidden); i++)
                if (span_caseeq(name, len, trailer_forbidden[i]))
                        return false;
        return true;
}

size_t proxy_h1_trailers_filter(uint8_t *p, size_t len)
{
        struct proxy_h1_span name, value;
        size_t start = 0, pos = 0, out = 0;

        for (; proxy_h1_trailer_next(p, len, &pos, &name, &value); start = pos) {
                if (!proxy_h1_trailer_allowed(p + name.off, name.len))
                        continue;
                if (out != start)
                        memmove(p + out, p + start, pos - start);
                out += pos - start;
        }
        return out;
}

bool proxy_h1_trailer_next(const uint8_t *p, size_t len, size_t *pos,
                           struct proxy_h1_span *ret_name, struct proxy_h1_span *ret_value)
{
        size_t s = *pos, c, v, e;

        if (s >= len)
                return false;
        for (c = s; p[c] != ':'; c++)
                ;
        for (v = c + 1; is_ws(p[v]); v++)
                ;
        for (e = v; p[e] != '\r'; e++)
                ;
        *pos = e + 2;
        while (e > v && is_ws(p[e - 1]))
                e--;
        *ret_name = mkspan(s, c - s);
        *ret_value = mkspan(v, e - v);
        return true;
}

size_t proxy_h1_chunk_head(uint8_t out[PROXY_H1_CHUNK_HEAD_MAX], uint64_t n)
{
        static const char hex[] = "0123456789abcdef";
        size_t k = 0;
        int shift = 60;

        assert(n > 0);
        while (shift > 0 && !(n >> shift))
                shift -= 4;
        for (; shift >= 0; shift -= 4)
                out[k++] = (uint8_t)hex[(n >> shift) & 0xf];
        out[k++] = '\r';
        out[k++] = '\n';
        return k;
}

int proxy_h1_chunk_encode(const uint8_t *data, size_t n, uint8_t *out, size_t size)
{
        uint8_t head[PROXY_H1_CHUNK_HEAD_MAX];
        size_t hl;

        if (n == 0)
                return 0;
        hl = proxy_h1_chunk_head(head, n);
        if (size < hl || size - hl < n || size - hl - n < 2 || hl + n + 2 > INT32_MAX)
                return -ENOBUFS;
        memcpy(out, head, hl);
        memcpy(out + hl, data, n);
        memcpy(out + hl + n, "\r\n", 2);
        return (int)(hl + n + 2);
}

/* ================================================================
 * Serialisation
 * ================================================================ */

struct writer {
        uint8_t *out;
        size_t size;
        size_t len;
        bool overflow;
};

static void w_put(struct writer *w, const void *p, size_t n)
{
        if (w->overflow || w->size - w->len < n) {
                w->overflow = true;
                return;
        }
        memcpy(w->out + w->len, p, n);
        w->len += n;
}

static void w_puts(struct writer *w, const char *s)
{
        w_put(w, s, strlen(s));
}

static void w_span(struct writer *w, const uint8_t *buf, struct proxy_h1_span sp)
{
        w_put(w, buf + sp.off, sp.len);
}

/* Decimal, without snprintf(): this runs for every proxied message. */
static void w_u64(struct writer *w, uint64_t v)
{
        char tmp[20];
        size_t k = sizeof(tmp);

        do {
                tmp[--k] = (char)('0' + v % 10);
                v /= 10;
        } while (v > 0);
        w_put(w, tmp + k, sizeof(tmp) - k);
}

static int w_finish(const struct writer *w)
{
        if (w->overflow || w->len > INT32_MAX)
                return -ENOBUFS;
        return (int)w->len;
}

/* Only a textual IPv4 or IPv6 address goes into X-Forwarded-For and
 * X-Real-IP: no CR/LF or anything else can be injected through it. */
static bool valid_ip(const char *s)
{
        struct in6_addr a6;
        struct in_addr a4;

        return s && (inet_pton(AF_INET, s, &a4) == 1 || inet_pton(AF_INET6, s, &a6) == 1);
}

int proxy_h1_req_serialize(const struct proxy_h1_req *req, const uint8_t *buf,
                           const struct proxy_h1_forward *f, uint8_t *out, size_t size)
{
        const struct proxy_h1_head *h = &req->h;
        struct writer w = {.out = out, .size = size};
        bool websocket = req->flags & PROXY_H1_REQ_WEBSOCKET;
        size_t hl;
        uint32_t port;

        assert(req && buf && f && (out || size == 0));
        assert(h->scan.st == ST_DONE);

        /* CONNECT is never forwarded: we are not a forward proxy. */
        if (req->form == PROXY_H1_FORM_AUTHORITY)
                return -EINVAL;
        if (!valid_ip(f->client_ip))
                return -EINVAL;
        if (!f->host ||
            host_parse((const uint8_t *)f->host, strlen(f->host), false, &hl, &port) < 0)
                return -EINVAL;

        /* Request line: origin-form always (RFC 9112 §3.2.1/§3.2.2); our own
         * version, since we are the client of the backend (RFC 9110 §2.5). */
        w_span(&w, buf, req->method);
        w_puts(&w, " ");
        if (req->path.len == 0 || buf[req->path.off] == '?')
                w_puts(&w, "/");
        w_span(&w, buf, req->path);
        w_puts(&w, " HTTP/1.1\r\n");

        if (req->host_index < 0) {
                w_puts(&w, "Host: ");
                w_puts(&w, f->host);
                w_puts(&w, "\r\n");
        }
        for (uint32_t k = 0; k < h->n_headers; k++) {
                const struct proxy_h1_header *hd = &h->headers[k];

                if (hd->flags & PROXY_H1_HF_HOP)
                        continue;
                switch (hd->id) {
                case PROXY_H1_HDR_CONTENT_LENGTH: /* regenerated below */
                case PROXY_H1_HDR_X_FORWARDED_FOR:
                case PROXY_H1_HDR_X_FORWARDED_PROTO:
                case PROXY_H1_HDR_X_FORWARDED_HOST:
                case PROXY_H1_HDR_X_REAL_IP:
                        continue;
                default:
                        break;
                }
                w_put(&w, buf + hd->name.off, hd->line_len);
                w_puts(&w, "\r\n");
        }

        /* X-Forwarded-For: the client's list (all its fields, in order, empty
         * elements dropped), then the peer address. */
        w_puts(&w, "X-Forwarded-For: ");
        for (uint32_t k = 0; k < h->n_headers && !f->replace_xff; k++) {
                const struct proxy_h1_header *hd = &h->headers[k];
                size_t i = 0, off, l;

                if (hd->id != PROXY_H1_HDR_X_FORWARDED_FOR || (hd->flags & PROXY_H1_HF_HOP))
                        continue;
                while (list_next(buf + hd->value.off, hd->value.len, &i, &off, &l)) {
                        if (l == 0)
                                continue;
                        w_put(&w, buf + hd->value.off + off, l);
                        w_puts(&w, ", ");
                }
        }
        w_puts(&w, f->client_ip);
        w_puts(&w, "\r\nX-Forwarded-Proto: ");
        w_puts(&w, f->https ? "https" : "http");
        w_puts(&w, "\r\nX-Forwarded-Host: ");
        w_puts(&w, f->host);
        w_puts(&w, "\r\nX-Real-IP: ");
        w_puts(&w, f->client_ip);
        w_puts(&w, "\r\n");

        switch (h->body) {
        case PROXY_H1_BODY_LENGTH:
                w_puts(&w, "Content-Length: ");
                w_u64(&w, h->content_length);
                w_puts(&w, "\r\n");
                break;
        case PROXY_H1_BODY_CHUNKED:
                w_puts(&w, "Transfer-Encoding: chunked\r\n");
                break;
        default:
                break;
        }
        if (websocket)
                w_puts(&w, "Connection: upgrade\r\nUpgrade: websocket\r\n\r\n");
        else
                w_puts(&w, "Connection: keep-alive\r\n\r\n");
        return w_finish(&w);
}

int proxy_h1_resp_serialize(const struct proxy_h1_resp *resp, const uint8_t *buf,
                            const struct proxy_h1_resp_opts *o, uint8_t *out, size_t size,
                            enum proxy_h1_body *ret_body)
{
        const struct proxy_h1_head *h = &resp->h;
        struct writer w = {.out = out, .size = size};
        enum proxy_h1_body body = h->body;
        bool keep_cl = false, informational = resp->status < 200, keep_alive;
        unsigned st = resp->status;
        int r;

        assert(resp && buf && o && ret_body && (out || size == 0));
        assert(h->scan.st == ST_DONE);

        /* Chunked to an HTTP/1.1 client; an HTTP/1.0 client gets the decoded
         * body delimited by close (RFC 9112 §6.1: never chunked to 1.0). */
        if (body == PROXY_H1_BODY_CHUNKED || body == PROXY_H1_BODY_CLOSE)
                body = o->client_http10 ? PROXY_H1_BODY_CLOSE : PROXY_H1_BODY_CHUNKED;
        /* HEAD and 304 responses keep Content-Length: it describes the
         * representation (RFC 9110 §8.6); 1xx and 204 must not carry one. */
        if (body == PROXY_H1_BODY_NONE && h->has_content_length && resp->status != 204 &&
            !informational)
                keep_cl = true;
        keep_alive = o->keep_alive && body != PROXY_H1_BODY_CLOSE;

        assert(st >= 100 && st <= 599); /* as the parser took it */
        w_puts(&w, "HTTP/1.1 ");
        w_put(&w, (const char[]){'0' + st / 100, '0' + st / 10 % 10, '0' + st % 10, ' '}, 4);
        w_span(&w, buf, resp->reason);
        w_puts(&w, "\r\n");
        for (uint32_t k = 0; k < h->n_headers; k++) {
                const struct proxy_h1_header *hd = &h->headers[k];

                if ((hd->flags & PROXY_H1_HF_HOP) || hd->id == PROXY_H1_HDR_CONTENT_LENGTH)
                        continue;
                w_put(&w, buf + hd->name.off, hd->line_len);
                w_puts(&w, "\r\n");
        }
        if (body == PROXY_H1_BODY_LENGTH || keep_cl) {
                w_puts(&w, "Content-Length: ");
                w_u64(&w, h->content_length);
                w_puts(&w, "\r\n");
        } else if (body == PROXY_H1_BODY_CHUNKED) {
                w_puts(&w, "Transfer-Encoding: chunked\r\n");
        }
        if (resp->status == 101)
                w_puts(&w, "Connection: upgrade\r\nUpgrade: websocket\r\n");
        else if (informational)
                ; /* interim responses carry no connection options */
        else if (!keep_alive)
                w_puts(&w, "Connection: close\r\n");
        else if (o->client_http10)
                w_puts(&w, "Connection: keep-alive\r\n");
        w_puts(&w, "\r\n");

        r = w_finish(&w);
        if (r >= 0)
                *ret_body = body;
        return r;
}
