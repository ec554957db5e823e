/* SPDX-License-Identifier: Apache-2.0 */
/* The HTTP/1 parsers: request head (whole and split, which must agree),
 * semantics and the backend rewrite (whose output must parse back to the
 * same framing), response head and its rewrite, and the chunked decoder fed
 * in pieces whose sizes come from the input (its output re-encoded and
 * decoded again must match). The first byte selects options; the rest is
 * the message. Invariant violations abort. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/macros.h"
#include "proxy/http1.h"

#define CAP 64

static const struct proxy_h1_limits limits = {
        .max_head = 4096,
        .max_headers = 48,
        .max_target = 1024,
};

static const struct proxy_h1_limits relaxed = {
        .max_head = 16384,
        .max_headers = CAP,
        .max_target = 4096,
};

#define check(x)                                                                                   \
        do {                                                                                       \
                if (!(x))                                                                          \
                        abort();                                                                   \
        } while (0)

static bool same_headers(const struct proxy_h1_header *a, const struct proxy_h1_header *b,
                         uint32_t n)
{
        for (uint32_t i = 0; i < n; i++)
                if (a[i].name.off != b[i].name.off || a[i].name.len != b[i].name.len ||
                    a[i].value.off != b[i].value.off || a[i].value.len != b[i].value.len ||
                    a[i].line_len != b[i].line_len || a[i].id != b[i].id)
                        return false;
        return true;
}

/* Feed @data to a parser in pieces from a tiny PRNG seeded by @seed. */
static size_t next_split(uint32_t *seed)
{
        *seed = *seed * 1103515245u + 12345u;
        return 1 + ((*seed >> 16) % 7);
}

static void fuzz_request(const uint8_t *data, size_t size, uint8_t opts)
{
        static struct proxy_h1_header h1[CAP], h2[CAP], h3[CAP];
        static uint8_t out[20000];
        struct proxy_h1_req a, b, c;
        struct proxy_h1_forward f = {
                .client_ip = opts & 1 ? "2001:db8::1" : "192.0.2.1",
                .host = "example.com",
                .https = opts & 2,
                .replace_xff = opts & 4,
        };
        uint32_t seed = opts;
        size_t k = 0;
        int r, r2 = -EAGAIN, w;

        proxy_h1_req_init(&a, &limits, h1, CAP);
        r = proxy_h1_req_parse(&a, data, size);

        proxy_h1_req_init(&b, &limits, h2, CAP);
        while (r2 == -EAGAIN && k < size) {
                k += next_split(&seed);
                if (k > size)
                        k = size;
                r2 = proxy_h1_req_parse(&b, data, k);
        }
        if (size == 0)
                r2 = proxy_h1_req_parse(&b, data, 0);
        check(r == r2);
        check(a.h.err == b.h.err && a.h.n_headers == b.h.n_headers);
        check(same_headers(h1, h2, a.h.n_headers));
        if (r < 0) {
                check(a.h.err != PROXY_H1_OK || r == -EAGAIN);
                return;
        }
        check((size_t)r <= size && (size_t)r <= limits.max_head);

        r = proxy_h1_req_analyze(&a, data);
        if (r < 0) {
                check(a.h.err != PROXY_H1_OK && proxy_h1_err_status(a.h.err) >= 400);
                return;
        }
        if (a.h.body == PROXY_H1_BODY_LENGTH)
                check(a.h.content_length <= INT64_MAX);

        w = proxy_h1_req_serialize(&a, data, &f, out, sizeof(out));
        if (a.form == PROXY_H1_FORM_AUTHORITY) {
                check(w == -EINVAL);
                return;
        }
        if (w == -ENOBUFS)
                return;
        check(w > 0);
        /* Small buffers never produce partial output. */
        check(proxy_h1_req_serialize(&a, data, &f, out, (size_t)w - 1) == -ENOBUFS);

        /* What we send the backend is itself a valid request with the same
         * framing: no injected line, no leftover framing field. */
        proxy_h1_req_init(&c, &relaxed, h3, CAP);
        r = proxy_h1_req_parse(&c, out, (size_t)w);
        check(r == w);
        check(proxy_h1_req_analyze(&c, out) == 0);
        check(c.h.body == a.h.body);
        check(c.h.content_length == a.h.content_length);
        check(c.h.minor == 1 && c.h.keep_alive);
        check(c.form == PROXY_H1_FORM_ORIGIN || c.form == PROXY_H1_FORM_ASTERISK);
        check(!(c.flags & PROXY_H1_REQ_H2C));
        check(!!(c.flags & PROXY_H1_REQ_WEBSOCKET) == !!(a.flags & PROXY_H1_REQ_WEBSOCKET));
        check(c.method.len == a.method.len &&
              memcmp(out + c.method.off, data + a.method.off, a.method.len) == 0);
}

static void fuzz_response(const uint8_t *data, size_t size, uint8_t opts)
{
        static struct proxy_h1_header h1[CAP], h2[CAP], h3[CAP];
        static uint8_t out[20000];
        struct proxy_h1_resp a, b, c;
        struct proxy_h1_resp_opts o = {.client_http10 = opts & 8, .keep_alive = opts & 16};
        enum proxy_h1_body body;
        bool head = opts & 32;
        uint32_t seed = opts * 7u;
        size_t k = 0;
        int r, r2 = -EAGAIN, w;

        proxy_h1_resp_init(&a, &limits, h1, CAP);
        r = proxy_h1_resp_parse(&a, data, size);
        proxy_h1_resp_init(&b, &limits, h2, CAP);
        while (r2 == -EAGAIN && k < size) {
                k += next_split(&seed);
                if (k > size)
                        k = size;
                r2 = proxy_h1_resp_parse(&b, data, k);
        }
        if (size == 0)
                r2 = proxy_h1_resp_parse(&b, data, 0);
        check(r == r2 && a.status == b.status && a.h.n_headers == b.h.n_headers);
        check(same_headers(h1, h2, a.h.n_headers));
        if (r < 0)
                return;
        check(a.status >= 100 && a.status <= 599);
        if (proxy_h1_resp_analyze(&a, data, head) < 0)
                return;
        if (a.h.body == PROXY_H1_BODY_CLOSE)
                check(!a.h.keep_alive);

        w = proxy_h1_resp_serialize(&a, data, &o, out, sizeof(out), &body);
        if (w == -ENOBUFS)
                return;
        check(w > 0);
        if (o.client_http10)
                check(body != PROXY_H1_BODY_CHUNKED);
        proxy_h1_resp_init(&c, &relaxed, h3, CAP);
        check(proxy_h1_resp_parse(&c, out, (size_t)w) == w);
        check(proxy_h1_resp_analyze(&c, out, head) == 0);
        check(c.status == a.status);
        if (!head && a.status >= 200 && a.status != 204 && a.status != 304)
                check(c.h.body == body);
}

static void fuzz_chunked(const uint8_t *data, size_t size, uint8_t opts)
{
        static uint8_t body[70000], enc[80000], body2[70000];
        struct proxy_h1_chunked c;
        uint32_t seed = opts * 13u;
        size_t pos = 0, bl = 0, el = 0, bl2 = 0, dl;

        proxy_h1_chunked_init(&c, 256, 1024, 16);
        while (pos < size && !proxy_h1_chunked_done(&c)) {
                size_t n = next_split(&seed) * (1 + (opts >> 6));
                int r, e;

                if (n > size - pos)
                        n = size - pos;
                r = proxy_h1_chunked_decode(&c, data + pos, n, &dl);
                if (r < 0) {
                        check(c.err != PROXY_H1_OK);
                        return;
                }
                check((size_t)r <= n && dl <= (size_t)r && r > 0);
                if (dl) {
                        const uint8_t *d = data + pos + (size_t)r - dl;

                        check(bl + dl <= sizeof(body));
                        memcpy(body + bl, d, dl);
                        bl += dl;
                        /* Re-encode as the engine would. */
                        e = proxy_h1_chunk_encode(d, dl, enc + el, sizeof(enc) - el);
                        check(e > 0);
                        el += (size_t)e;
                }
                pos += (size_t)r;
        }
        if (!proxy_h1_chunked_done(&c))
                return;
        check(proxy_h1_chunked_decode(&c, data, size, &dl) == 0 || size == 0);

        /* Our own encoding decodes back to the same bytes in one call each. */
        memcpy(enc + el, PROXY_H1_CHUNK_LAST, 5);
        el += 5;
        proxy_h1_chunked_init(&c, 256, 1024, 16);
        pos = 0;
        while (pos < el && !proxy_h1_chunked_done(&c)) {
                int r = proxy_h1_chunked_decode(&c, enc + pos, el - pos, &dl);

                check(r > 0);
                memcpy(body2 + bl2, enc + pos + (size_t)r - dl, dl);
                bl2 += dl;
                pos += (size_t)r;
        }
        check(proxy_h1_chunked_done(&c) && pos == el);
        check(bl2 == bl && memcmp(body, body2, bl) == 0);
}

/* One pass of the chunked decoder over @data in pieces; with @keep the
 * trailer section is kept (the caller presents the held bytes again).
 * Returns the error, or the bytes consumed; the body goes to @body. */
static int chunked_pass(const uint8_t *data, size_t size, uint8_t opts, bool keep,
                        struct proxy_h1_chunked *c, uint8_t *body, size_t *ret_bl)
{
        uint32_t seed = opts * 7u;
        size_t pos = 0, bl = 0, dl;

        proxy_h1_chunked_init(c, 256, 1024, 16);
        if (keep)
                proxy_h1_chunked_keep_trailers(c);
        while (pos < size && !proxy_h1_chunked_done(c)) {
                size_t n = proxy_h1_chunked_held(c) + next_split(&seed);
                int r;

                if (n > size - pos)
                        n = size - pos;
                r = proxy_h1_chunked_decode(c, data + pos, n, &dl);
                if (r < 0)
                        return r;
                check((size_t)r <= n && dl <= (size_t)r && (r > 0 || keep));
                check(proxy_h1_chunked_held(c) <= 1024 && (keep || !proxy_h1_chunked_held(c)));
                memcpy(body + bl, data + pos + (size_t)r - dl, dl);
                bl += dl;
                pos += (size_t)r;
                if (proxy_h1_chunked_done(c) && keep) {
                        static uint8_t tr[1024];
                        struct proxy_h1_span nm, v;
                        size_t off, tl, k = 0, fields = 0;

                        proxy_h1_chunked_trailers(c, r, &off, &tl);
                        check(tl <= 1024 && off + tl + 2 == (size_t)r);
                        check(memcmp(data + pos - 2, "\r\n", 2) == 0);
                        memcpy(tr, data + pos - r + off, tl);
                        tl = proxy_h1_trailers_filter(tr, tl);
                        while (proxy_h1_trailer_next(tr, tl, &k, &nm, &v)) {
                                check(nm.len > 0 && proxy_h1_trailer_allowed(tr + nm.off, nm.len));
                                check(v.off >= nm.off + nm.len + 1 && v.off + v.len <= tl);
                                fields++;
                        }
                        check(k == tl && fields <= 16);
                }
                if (r == 0 && n == size - pos)
                        break; /* all of it held */
        }
        *ret_bl = bl;
        return (int)pos;
}

/* Keeping the trailer section changes nothing else: the same outcome, the
 * same body, the same bytes consumed once done. */
static void fuzz_chunked_keep(const uint8_t *data, size_t size, uint8_t opts)
{
        static uint8_t b1[70000], b2[70000];
        struct proxy_h1_chunked c1, c2;
        size_t l1 = 0, l2 = 0;
        int r1, r2;

        if (size > sizeof(b1))
                return;
        r1 = chunked_pass(data, size, opts, false, &c1, b1, &l1);
        r2 = chunked_pass(data, size, opts, true, &c2, b2, &l2);
        check((r1 < 0) == (r2 < 0));
        if (r1 < 0) {
                check(r1 == r2 && c1.err == c2.err);
                return;
        }
        check(proxy_h1_chunked_done(&c1) == proxy_h1_chunked_done(&c2));
        check(l1 == l2 && memcmp(b1, b2, l1) == 0);
        if (proxy_h1_chunked_done(&c1))
                check(r1 == r2);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        uint8_t opts;

        if (size < 1)
                return 0;
        opts = data[0];
        data++;
        size--;
        fuzz_request(data, size, opts);
        fuzz_response(data, size, opts);
        fuzz_chunked(data, size, opts);
        fuzz_chunked_keep(data, size, opts);
        return 0;
}
