/* SPDX-License-Identifier: Apache-2.0 */
/* The HTTPS client's pure message layer: URLs (parsing, RFC 3986
 * resolution), the request head and the response reader over proxy/http1's
 * parser. No I/O, no clock, no libuv. Link and Retry-After are in
 * http-fields.c. */
#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "acme/http-internal.h"
#include "common/macros.h"
#include "common/siphash.h"

static bool is_visible(uint8_t c)
{
        return c > 0x20 && c < 0x7f;
}

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

/* ================================================================
 * URLs
 * ================================================================ */

void acme_http__url_done(struct acme_url *u)
{
        if (!u)
                return;
        free(u->host);
        free(u->authority);
        free(u->path);
        *u = (struct acme_url){};
}

static int parse_port(const char *p, size_t n, uint16_t *ret)
{
        unsigned v = 0;

        if (n < 1 || n > 5)
                return -EINVAL;
        for (size_t i = 0; i < n; i++) {
                if (!is_digit(p[i]))
                        return -EINVAL;
                v = v * 10 + (unsigned)(p[i] - '0');
        }
        if (v < 1 || v > 65535)
                return -EINVAL;
        *ret = (uint16_t)v;
        return 0;
}

int acme_http__url_parse(const char *url, struct acme_url *ret)
{
        _cleanup_free_ char *host = NULL, *authority = NULL, *path = NULL;
        const char *a, *ae, *h, *he, *ps;
        uint16_t port = 443;
        char portbuf[8] = "";
        bool ip = false, v6 = false;
        int r;

        assert(url && ret);
        for (const char *p = url; *p; p++)
                if (!is_visible((uint8_t)*p))
                        return -EINVAL;
        if (strncasecmp(url, "https://", 8) != 0)
                return -EINVAL;
        a = url + 8;
        ae = a + strcspn(a, "/?#");
        if (memchr(a, '@', (size_t)(ae - a)))
                return -EINVAL;

        if (*a == '[') {
                char tmp[INET6_ADDRSTRLEN];
                struct in6_addr in6;

                h = a + 1;
                he = memchr(h, ']', (size_t)(ae - h));
                if (!he || (size_t)(he - h) >= sizeof(tmp))
                        return -EINVAL;
                memcpy(tmp, h, (size_t)(he - h));
                tmp[he - h] = 0;
                /* inet_pton() refuses zone IDs ("%eth0"), which have no
                 * meaning in a certificate or a Host field anyway. */
                if (inet_pton(AF_INET6, tmp, &in6) != 1)
                        return -EINVAL;
                ps = he + 1;
                ip = v6 = true;
        } else {
                h = a;
                he = memchr(a, ':', (size_t)(ae - a));
                if (!he)
                        he = ae;
                ps = he;
                if (he == h || he - h > 253)
                        return -EINVAL;
                for (const char *p = h; p < he; p++)
                        if (!is_alpha(*p) && !is_digit(*p) && !strchr("-._", *p))
                                return -EINVAL;
        }
        if (ps < ae) {
                if (*ps != ':')
                        return -EINVAL;
                r = parse_port(ps + 1, (size_t)(ae - ps - 1), &port);
                if (r < 0)
                        return r;
        }

        host = memdup_suffix0(h, (size_t)(he - h));
        if (!host)
                return -ENOMEM;
        for (char *p = host; *p; p++)
                *p = (char)ascii_tolower((unsigned char)*p);
        if (!v6) {
                struct in_addr in4;

                ip = inet_pton(AF_INET, host, &in4) == 1;
        }
        if (port != 443)
                snprintf(portbuf, sizeof(portbuf), ":%u", port);
        if (asprintf(&authority, "%s%s%s%s", v6 ? "[" : "", host, v6 ? "]" : "", portbuf) < 0)
                return -ENOMEM;
        if (asprintf(&path, "%s%.*s", *ae == '/' ? "" : "/", (int)strcspn(ae, "#"), ae) < 0)
                return -ENOMEM;

        *ret = (struct acme_url){
                .host = TAKE_PTR(host),
                .ip = ip,
                .port = port,
                .authority = TAKE_PTR(authority),
                .path = TAKE_PTR(path),
        };
        return 0;
}

/* The five components of a URI-reference (RFC 3986 §3, §4.1); a NULL
 * pointer means the component is absent (not merely empty). */
struct uri {
        const char *scheme, *auth, *path, *query, *frag;
        size_t scheme_len, auth_len, path_len, query_len, frag_len;
};

static void uri_split(const char *s, size_t n, struct uri *u)
{
        const char *end = s + n, *p;
        size_t k;

        *u = (struct uri){};
        /* scheme ":" only if the colon comes before any "/?#" (§4.2). */
        k = 0;
        if (n && is_alpha(s[0])) {
                while (k < n && (is_alpha(s[k]) || is_digit(s[k]) || strchr("+-.", s[k])))
                        k++;
                if (k < n && s[k] == ':') {
                        u->scheme = s;
                        u->scheme_len = k;
                        s += k + 1;
                } else {
                        k = 0;
                }
        }
        if (end - s >= 2 && s[0] == '/' && s[1] == '/') {
                s += 2;
                for (p = s; p < end && !strchr("/?#", *p); p++)
                        ;
                u->auth = s;
                u->auth_len = (size_t)(p - s);
                s = p;
        }
        for (p = s; p < end && *p != '?' && *p != '#'; p++)
                ;
        u->path = s;
        u->path_len = (size_t)(p - s);
        s = p;
        if (s < end && *s == '?') {
                for (p = s + 1; p < end && *p != '#'; p++)
                        ;
                u->query = s + 1;
                u->query_len = (size_t)(p - s - 1);
                s = p;
        }
        if (s < end && *s == '#') {
                u->frag = s + 1;
                u->frag_len = (size_t)(end - s - 1);
        }
}

/* RFC 3986 §5.2.4 on @in[0..n), appended to @out. */
static int remove_dot_segments(const char *in, size_t n, struct strbuf *out)
{
        _cleanup_free_ char *buf = memdup_suffix0(in, n);
        size_t start = out->len;
        char *p = buf;

        if (!buf)
                return -ENOMEM;
        while (n > 0) {
                if (n >= 3 && memcmp(p, "../", 3) == 0) {
                        p += 3, n -= 3;
                } else if (n >= 2 && memcmp(p, "./", 2) == 0) {
                        p += 2, n -= 2;
                } else if (n >= 3 && memcmp(p, "/./", 3) == 0) {
                        p += 2, n -= 2;
                } else if (n == 2 && memcmp(p, "/.", 2) == 0) {
                        p[1] = '/';
                        p += 1, n -= 1;
                } else if ((n >= 4 && memcmp(p, "/../", 4) == 0) ||
                           (n == 3 && memcmp(p, "/..", 3) == 0)) {
                        size_t k = out->len;

                        if (n == 3) {
                                p[2] = '/';
                                p += 2, n -= 2;
                        } else {
                                p += 3, n -= 3;
                        }
                        /* Drop the last segment already written, and its "/". */
                        while (k > start && out->data[k - 1] != '/')
                                k--;
                        out->len = k > start ? k - 1 : start;
                        if (out->data)
                                out->data[out->len] = 0;
                } else if ((n == 1 && *p == '.') || (n == 2 && memcmp(p, "..", 2) == 0)) {
                        n = 0;
                } else {
                        size_t k = 1;
                        int r;

                        /* The first segment, with its leading "/" if any. */
                        while (k < n && p[k] != '/')
                                k++;
                        r = strbuf_append(out, p, k);
                        if (r < 0)
                                return r;
                        p += k, n -= k;
                }
        }
        return 0;
}

static int put_part(struct strbuf *b, const char *pre, const char *s, size_t n)
{
        int r = strbuf_puts(b, pre);

        return r < 0 ? r : strbuf_append(b, s, n);
}

int acme_http__url_resolve(const char *base, const char *ref, size_t n, char **ret)
{
        _cleanup_strbuf_ struct strbuf b = STRBUF_INIT;
        struct uri B, R;
        const struct uri *q; /* whose query the target takes */
        int r;

        assert(base && (ref || n == 0) && ret);
        for (size_t i = 0; i < n; i++)
                if (!is_visible((uint8_t)ref[i]))
                        return -EINVAL;
        uri_split(base, strlen(base), &B);
        uri_split(ref, n, &R);
        if (!B.scheme || !B.auth)
                return -EINVAL;

        /* §5.2.2, with the target written out as it is computed (§5.3). */
        r = strbuf_append(&b, R.scheme ? R.scheme : B.scheme,
                          R.scheme ? R.scheme_len : B.scheme_len);
        if (r >= 0)
                r = strbuf_putc(&b, ':');
        if (r < 0)
                return r;
        q = &R;
        if (R.scheme || R.auth) {
                if (R.auth)
                        r = put_part(&b, "//", R.auth, R.auth_len);
                if (r >= 0)
                        r = remove_dot_segments(R.path, R.path_len, &b);
        } else {
                r = put_part(&b, "//", B.auth, B.auth_len);
                if (r < 0)
                        return r;
                if (R.path_len == 0) {
                        r = strbuf_append(&b, B.path, B.path_len);
                        if (!R.query)
                                q = &B;
                } else if (R.path[0] == '/') {
                        r = remove_dot_segments(R.path, R.path_len, &b);
                } else {
                        /* §5.2.3 merge: the base path up to its last "/". */
                        _cleanup_strbuf_ struct strbuf m = STRBUF_INIT;
                        const char *slash = NULL;

                        for (size_t i = 0; i < B.path_len; i++)
                                if (B.path[i] == '/')
                                        slash = B.path + i;
                        if (B.path_len == 0)
                                r = strbuf_putc(&m, '/');
                        else if (slash)
                                r = strbuf_append(&m, B.path, (size_t)(slash - B.path) + 1);
                        if (r >= 0)
                                r = strbuf_append(&m, R.path, R.path_len);
                        if (r >= 0)
                                r = remove_dot_segments(m.data, m.len, &b);
                }
        }
        if (r >= 0 && q->query)
                r = put_part(&b, "?", q->query, q->query_len);
        if (r >= 0 && R.frag)
                r = put_part(&b, "#", R.frag, R.frag_len);
        if (r < 0)
                return r;
        *ret = strbuf_steal(&b);
        return *ret ? 0 : -ENOMEM;
}

/* ================================================================
 * The request head
 * ================================================================ */

/* Our own field values: visible ASCII, SP and HTAB only, so nothing a
 * caller passes can end the field or the head early. */
static bool field_value_ok(const char *s)
{
        for (; *s; s++)
                if (!is_visible((uint8_t)*s) && !is_ows(*s))
                        return false;
        return true;
}

int acme_http__request_build(const struct acme_http_request *req, const struct acme_url *u,
                             const char *user_agent, char **ret_buf, size_t *ret_len)
{
        _cleanup_strbuf_ struct strbuf b = STRBUF_INIT;
        bool post;
        int r;

        assert(req && u && user_agent && ret_buf && ret_len);
        if (!req->method)
                return -EINVAL;
        post = streq(req->method, "POST");
        if (!post && !streq(req->method, "GET") && !streq(req->method, "HEAD"))
                return -EINVAL;
        if ((req->body_len > 0 && !req->body) || (!post && req->body_len > 0))
                return -EINVAL;
        if ((req->content_type && !field_value_ok(req->content_type)) ||
            (req->accept && !field_value_ok(req->accept)) || !field_value_ok(user_agent))
                return -EINVAL;

        r = strbuf_printf(&b, "%s %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: %s\r\n", req->method,
                          u->path, u->authority, user_agent);
        if (r >= 0 && req->accept)
                r = strbuf_printf(&b, "Accept: %s\r\n", req->accept);
        if (r >= 0 && req->content_type && post)
                r = strbuf_printf(&b, "Content-Type: %s\r\n", req->content_type);
        /* A POST always says its length, even 0 (RFC 9110 §8.6). */
        if (r >= 0 && post)
                r = strbuf_printf(&b, "Content-Length: %zu\r\n", req->body_len);
        if (r >= 0)
                r = strbuf_puts(&b, "Connection: keep-alive\r\n\r\n");
        if (r >= 0 && req->body_len > 0)
                r = strbuf_append(&b, req->body, req->body_len);
        if (r < 0)
                return r;
        *ret_len = b.len;
        *ret_buf = strbuf_steal(&b);
        return *ret_buf ? 0 : -ENOMEM;
}

/* ================================================================
 * The response reader
 * ================================================================ */

static const struct proxy_h1_limits rd_limits = {
        .max_head = ACME_HTTP_MAX_HEAD,
        .max_headers = ACME_HTTP_MAX_HEADERS,
};

void acme_http__rd_init(struct acme_http_rd *rd, size_t max_body, bool head_request)
{
        assert(rd && max_body > 0);
        *rd = (struct acme_http_rd){
                .max_body = max_body,
                .head_request = head_request,
                .body = {.limit = max_body},
        };
        proxy_h1_resp_init(&rd->resp, &rd_limits, rd->fields, ACME_HTTP_MAX_HEADERS);
}

void acme_http__rd_done(struct acme_http_rd *rd)
{
        if (!rd)
                return;
        free(rd->head);
        rd->head = NULL;
        strbuf_done(&rd->body);
}

static int body_feed(struct acme_http_rd *rd, const uint8_t *p, size_t n)
{
        size_t k, data;
        int r = 0;

        if (rd->done) {
                rd->trailing |= n > 0;
                return 1;
        }
        switch (rd->resp.h.body) {
        case PROXY_H1_BODY_NONE:
                rd->done = true;
                break;
        case PROXY_H1_BODY_LENGTH:
                k = (size_t)MIN((uint64_t)n, rd->body_left);
                r = strbuf_append(&rd->body, p, k);
                rd->body_left -= k;
                p += k, n -= k;
                rd->done = rd->body_left == 0;
                break;
        case PROXY_H1_BODY_CHUNKED:
                while (r >= 0 && n > 0 && !rd->done) {
                        int c = proxy_h1_chunked_decode(&rd->chunked, p, n, &data);

                        if (c <= 0)
                                return -EBADMSG; /* never 0 with bytes left unless broken */
                        r = strbuf_append(&rd->body, p + c - data, data);
                        p += c, n -= (size_t)c;
                        rd->done = proxy_h1_chunked_done(&rd->chunked);
                }
                break;
        case PROXY_H1_BODY_CLOSE:
                r = strbuf_append(&rd->body, p, n);
                n = 0;
                break;
        default:
                assert(false);
        }
        if (r < 0)
                return r;
        rd->trailing |= rd->done && n > 0;
        return rd->done;
}

/* Parse what the head buffer holds. Returns 1 when the final head is done
 * (its bytes beyond the head already fed to the body), 0 for more, <0. */
static int head_step(struct acme_http_rd *rd)
{
        for (;;) {
                struct proxy_h1_head *h = &rd->resp.h;
                size_t extra;
                int r = proxy_h1_resp_parse(&rd->resp, rd->head, rd->head_len);

                if (r == -EAGAIN)
                        return 0;
                if (r < 0)
                        return -EBADMSG;
                extra = rd->head_len - (size_t)r;
                if (rd->resp.status < 200) {
                        /* RFC 9110 §15.2: interim responses precede the final
                         * one. 101 would switch protocols, which we never ask
                         * for. */
                        if (rd->resp.status == 101 || ++rd->n_interim > ACME_HTTP_MAX_INTERIM)
                                return -EBADMSG;
                        memmove(rd->head, rd->head + r, extra);
                        rd->head_len = extra;
                        proxy_h1_resp_init(&rd->resp, &rd_limits, rd->fields,
                                           ACME_HTTP_MAX_HEADERS);
                        continue;
                }
                if (proxy_h1_resp_analyze(&rd->resp, rd->head, rd->head_request) < 0)
                        return -EBADMSG;
                rd->head_done = true;
                rd->head_len = (size_t)r;
                if (h->body == PROXY_H1_BODY_LENGTH) {
                        if (h->content_length > rd->max_body)
                                return -E2BIG;
                        rd->body_left = h->content_length;
                } else if (h->body == PROXY_H1_BODY_CHUNKED) {
                        proxy_h1_chunked_init(&rd->chunked, 4096, 8192, 32);
                }
                r = body_feed(rd, rd->head + r, extra);
                return r < 0 ? r : 1;
        }
}

int acme_http__rd_feed(struct acme_http_rd *rd, const uint8_t *p, size_t n)
{
        assert(rd && (p || n == 0));
        rd->received += n;
        while (!rd->head_done && n > 0) {
                size_t k;
                int r;

                if (!rd->head) {
                        rd->head = malloc(ACME_HTTP_MAX_HEAD + 1);
                        if (!rd->head)
                                return -ENOMEM;
                }
                k = MIN(n, ACME_HTTP_MAX_HEAD - rd->head_len);
                if (k == 0)
                        return -EBADMSG;
                memcpy(rd->head + rd->head_len, p, k);
                rd->head_len += k;
                p += k, n -= k;
                r = head_step(rd);
                if (r < 0)
                        return r;
        }
        if (!rd->head_done)
                return 0;
        return body_feed(rd, p, n);
}

int acme_http__rd_eof(struct acme_http_rd *rd, bool clean)
{
        assert(rd);
        if (rd->done)
                return 1;
        /* A close-delimited body is complete only if the TLS layer says the
         * peer closed on purpose: a bare TCP FIN could be a truncation. */
        if (rd->head_done && rd->resp.h.body == PROXY_H1_BODY_CLOSE && clean) {
                rd->done = true;
                return 1;
        }
        return -ECONNRESET;
}

bool acme_http__rd_keep_alive(const struct acme_http_rd *rd)
{
        return rd->done && rd->head_done && rd->resp.h.keep_alive && !rd->trailing;
}

void acme_http__result_done(struct acme_http_result *res)
{
        if (!res)
                return;
        acme_http__links_free(res->links, res->resp.n_links);
        free(res->headers);
        free(res->head);
        free(res->body);
        *res = (struct acme_http_result){};
}

int acme_http__rd_take(struct acme_http_rd *rd, const char *url, struct acme_http_result *ret)
{
        _cleanup_(acme_http__result_done) struct acme_http_result res = {};
        const struct proxy_h1_head *h = &rd->resp.h;
        char *head;
        int r;

        assert(rd->done && rd->head_done);
        res.headers = calloc(MAX(h->n_headers, 1u), sizeof(*res.headers));
        if (!res.headers)
                return -ENOMEM;
        res.resp.body_len = rd->body.len;
        res.body = strbuf_steal(&rd->body);
        if (!res.body)
                return -ENOMEM;
        res.head = head = (char *)TAKE_PTR(rd->head);
        /* Terminate names at their ':' and values at their first trailing
         * byte (OWS or the CR): both lie inside the head, which is done. */
        for (uint32_t i = 0; i < h->n_headers; i++) {
                const struct proxy_h1_header *f = &h->headers[i];

                head[f->name.off + f->name.len] = 0;
                head[f->value.off + f->value.len] = 0;
                res.headers[i] = (struct acme_http_header){
                        .name = head + f->name.off,
                        .value = head + f->value.off,
                };
        }
        r = acme_http__links_parse(url, res.headers, h->n_headers, &res.links, &res.resp.n_links);
        if (r < 0)
                return r;
        res.resp.status = (int)rd->resp.status;
        res.resp.headers = res.headers;
        res.resp.n_headers = h->n_headers;
        res.resp.links = res.links;
        res.resp.body = res.body;
        *ret = res;
        res = (struct acme_http_result){};
        return 0;
}
