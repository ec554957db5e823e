/* SPDX-License-Identifier: Apache-2.0 */
/* The ClientHello peeker (proxy/tls-hello.c). The first input byte steers:
 * its top 3 bits pick the size bound, the low 5 the chunk sizes. The rest
 * is what a client sent; it is parsed whole and in chunks, and the two
 * must agree in result and in what they found. The entire input is also
 * parsed as it is, so a raw capture is a useful corpus file too. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/tls-hello.h"

#define CHECK(x)                                                                                   \
        do {                                                                                       \
                if (!(x))                                                                          \
                        abort();                                                                   \
        } while (0)

static uint8_t buf_a[PROXY_TLS_HELLO_MAX_DEFAULT], buf_b[PROXY_TLS_HELLO_MAX_DEFAULT];

/* A returned SNI is a lower-case LDH host name, checked here without the
 * parser's code. */
static void check_sni(const char *s)
{
        size_t n = strlen(s), label = 0;

        CHECK(n >= 1 && n <= PROXY_TLS_HELLO_SNI_MAX);
        for (size_t i = 0; i < n; i++) {
                if (s[i] == '.') {
                        CHECK(label > 0 && s[i - 1] != '-');
                        label = 0;
                        continue;
                }
                CHECK((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '-');
                CHECK(label > 0 || s[i] != '-');
                CHECK(++label <= 63);
        }
        CHECK(label > 0 && s[n - 1] != '-');
}

static void check_result(struct proxy_tls_hello *h, int r, size_t n)
{
        const char *sni = proxy_tls_hello_sni(h);

        CHECK(r != 0);
        if (r < 0) {
                CHECK(r == -EAGAIN || r == -EBADMSG || r == -E2BIG || r == -EPROTO);
                CHECK(!proxy_tls_hello_done(h) && !sni);
                CHECK(proxy_tls_hello_alpn_count(h) == 0 && !proxy_tls_hello_tls13(h));
                CHECK(proxy_tls_hello_feed(h, NULL, 0) == r);
                return;
        }
        CHECK((size_t)r <= n && proxy_tls_hello_done(h));
        if (sni)
                check_sni(sni);
        CHECK(proxy_tls_hello_offers_alpn(h, "h2") ? proxy_tls_hello_alpn_count(h) > 0 : true);
        CHECK(proxy_tls_hello_feed(h, NULL, 0) == 0);
}

static int feed_chunked(struct proxy_tls_hello *h, const uint8_t *p, size_t n, uint8_t ctl)
{
        uint32_t seed = ctl;
        size_t off = 0;

        while (off < n) {
                size_t k = 1;
                int r;

                if (ctl & 0x1f) {
                        seed = seed * 1103515245u + 12345u;
                        k = 1 + (seed >> 16) % ((ctl & 0x1fu) * 8u);
                }
                if (k > n - off)
                        k = n - off;
                r = proxy_tls_hello_feed(h, p + off, k);
                CHECK(r != 0);
                if (r > 0)
                        return (int)(off + (size_t)r);
                if (r != -EAGAIN)
                        return r;
                off += k;
        }
        return -EAGAIN;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        static const size_t bounds[8] = {16384, 16384, 16384, 16384, 4096, 1024, 512, 45};
        struct proxy_tls_hello a, b;
        size_t max_len;
        uint8_t ctl;
        int ra, rb;

        if (size == 0)
                return 0;

        proxy_tls_hello_init(&a, buf_a, sizeof(buf_a));
        ra = proxy_tls_hello_feed(&a, data, size);
        check_result(&a, ra, size);

        ctl = data[0];
        data++;
        size--;
        max_len = bounds[ctl >> 5];

        proxy_tls_hello_init(&a, buf_a, max_len);
        ra = proxy_tls_hello_feed(&a, data, size);
        check_result(&a, ra, size);
        proxy_tls_hello_init(&b, buf_b, max_len);
        rb = feed_chunked(&b, data, size, ctl);
        check_result(&b, rb, size);

        CHECK(ra == rb);
        if (ra > 0) {
                const char *sa = proxy_tls_hello_sni(&a), *sb = proxy_tls_hello_sni(&b);

                CHECK(!sa == !sb);
                CHECK(!sa || strcmp(sa, sb) == 0);
                CHECK(proxy_tls_hello_alpn_count(&a) == proxy_tls_hello_alpn_count(&b));
                CHECK(proxy_tls_hello_tls13(&a) == proxy_tls_hello_tls13(&b));
                CHECK(proxy_tls_hello_offers_alpn(&a, "h2") ==
                      proxy_tls_hello_offers_alpn(&b, "h2"));
                CHECK(proxy_tls_hello_offers_alpn(&a, "acme-tls/1") ==
                      proxy_tls_hello_offers_alpn(&b, "acme-tls/1"));
        }
        return 0;
}
