/* SPDX-License-Identifier: Apache-2.0 */
/* Tests for the ClientHello peeker. The cap_* arrays are real ClientHellos
 * recorded on 127.0.0.1 by a Python socket that saved whatever the client
 * sent (OpenSSL 3.0.19 s_client, curl 7.88.1, Python 3 ssl, wget/GnuTLS).
 * The synthetic hellos are built by the helpers below. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "client-hellos.h"
#include "common/macros.h"
#include "proxy/tls-hello.h"

/* Which case a loop is on, for failures: stderr, since stdout is TAP. */
#define note(...) fprintf(stderr, "# " __VA_ARGS__)

/* ---- captured ClientHellos: client-hellos.h ---- */

struct capture {
        const char *name;
        const uint8_t *data;
        size_t len;          /* everything recorded */
        size_t hello_len;    /* up to the end of the hello's last record */
        const char *sni;     /* expected, lower-cased; NULL for none */
        size_t alpn_count;   /* expected number of ALPN protocols */
        const char *alpn[3]; /* some of them */
        const char *no_alpn; /* one that is not offered */
        bool tls13;
};

#define CAP(v) .name = #v, .data = cap_##v, .len = sizeof(cap_##v)

static const struct capture captures[] = {
        {CAP(openssl_sni), .hello_len = 317, .sni = "example.com", .no_alpn = "h2", .tls13 = true},
        {CAP(openssl_alpn), .hello_len = 339, .sni = "acme.example.org", .alpn_count = 1,
         .alpn = {"acme-tls/1"}, .no_alpn = "h2", .tls13 = true},
        {CAP(openssl_nosni), .hello_len = 297, .no_alpn = "http/1.1", .tls13 = true},
        {CAP(openssl_tls12), .hello_len = 230, .sni = "www.example.net", .alpn_count = 2,
         .alpn = {"h2", "http/1.1"}, .no_alpn = "acme-tls/1", .tls13 = false},
        {CAP(curl), .hello_len = 517, .sni = "www.example.com", .alpn_count = 2,
         .alpn = {"h2", "http/1.1"}, .no_alpn = "http/1.0", .tls13 = true},
        {CAP(python), .hello_len = 517, .sni = "api.example.io", .alpn_count = 2,
         .alpn = {"h2", "http/1.1"}, .no_alpn = "H2", .tls13 = true},
        {CAP(wget), .hello_len = 517, .sni = "localhost", .no_alpn = "h2", .tls13 = true},
        {CAP(openssl_frag), .hello_len = 1121, .sni = "frag.example.com", .alpn_count = 61,
         .alpn = {"h2", "proto-00/1.1", "proto-59/1.1"}, .no_alpn = "proto-60/1.1", .tls13 = true},
        {CAP(openssl_early), .hello_len = 422, .sni = "early.example.com", .no_alpn = "h2",
         .tls13 = true},
};

/* ---- helpers ---- */

#define BIG (1u << 17)

static uint8_t buf_a[BIG], buf_b[BIG];

static void check_capture(const struct proxy_tls_hello *h, const struct capture *c)
{
        assert_true(proxy_tls_hello_done(h));
        if (c->sni)
                assert_string_equal(proxy_tls_hello_sni(h), c->sni);
        else
                assert_null(proxy_tls_hello_sni(h));
        assert_int_equal(proxy_tls_hello_alpn_count(h), c->alpn_count);
        for (size_t i = 0; i < ELEMENTSOF(c->alpn) && c->alpn[i]; i++)
                assert_true(proxy_tls_hello_offers_alpn(h, c->alpn[i]));
        assert_false(proxy_tls_hello_offers_alpn(h, c->no_alpn));
        assert_false(proxy_tls_hello_offers_alpn(h, ""));
        assert_int_equal(proxy_tls_hello_tls13(h), c->tls13);
}

static void assert_same_results(const struct proxy_tls_hello *a, const struct proxy_tls_hello *b)
{
        const char *sa = proxy_tls_hello_sni(a), *sb = proxy_tls_hello_sni(b);

        assert_int_equal(proxy_tls_hello_done(a), proxy_tls_hello_done(b));
        if (sa || sb) {
                assert_non_null(sa);
                assert_non_null(sb);
                assert_string_equal(sa, sb);
        }
        assert_int_equal(proxy_tls_hello_alpn_count(a), proxy_tls_hello_alpn_count(b));
        assert_int_equal(proxy_tls_hello_tls13(a), proxy_tls_hello_tls13(b));
}

/* Chunk sizes for feeding: a fixed size, or pseudo-random ones from 1 to
 * @max (an LCG, so failures reproduce). */
struct chunker {
        size_t fixed;
        size_t max;
        uint32_t seed;
};

static size_t next_chunk(struct chunker *ck)
{
        if (ck->fixed)
                return ck->fixed;
        ck->seed = ck->seed * 1103515245u + 12345u;
        return 1 + (ck->seed >> 16) % ck->max;
}

/* Feed @len bytes in chunks. Returns what a single feed of all of them
 * would: the bytes consumed up to the end of the hello, or the error. */
static int feed_chunked(struct proxy_tls_hello *h, const uint8_t *p, size_t len, struct chunker *ck)
{
        size_t off = 0;

        while (off < len) {
                size_t k = next_chunk(ck); /* not inside MIN(): it evaluates twice */
                int r;

                k = MIN(k, len - off);
                r = proxy_tls_hello_feed(h, p + off, k);

                assert_int_not_equal(r, 0);
                if (r > 0) {
                        assert_true((size_t)r <= k);
                        return (int)(off + (size_t)r);
                }
                if (r != -EAGAIN)
                        return r;
                off += k;
        }
        return -EAGAIN;
}

/* Parse @p whole into @h (using buf_a), then again in many chunkings, which
 * must all agree with the whole feed. Returns the whole feed's result. */
static int parse_all_ways(struct proxy_tls_hello *h, const uint8_t *p, size_t len, size_t max_len)
{
        static const size_t fixed[] = {1, 2, 3, 4, 5, 6, 7, 64, 511};
        struct proxy_tls_hello h2;
        int r, r2;

        proxy_tls_hello_init(h, buf_a, max_len);
        r = proxy_tls_hello_feed(h, p, len);
        assert_int_not_equal(r, 0);

        for (size_t i = 0; i < ELEMENTSOF(fixed) + 16; i++) {
                struct chunker ck = {.fixed = i < ELEMENTSOF(fixed) ? fixed[i] : 0,
                                     .max = 1 + i * 13,
                                     .seed = (uint32_t)i};

                proxy_tls_hello_init(&h2, buf_b, max_len);
                r2 = feed_chunked(&h2, p, len, &ck);
                assert_int_equal(r2, r);
                assert_same_results(h, &h2);
        }
        return r;
}

/* The handshake bytes of a captured stream (the payloads of its handshake
 * records, up to the end of the hello). */
static size_t extract_msg(const struct capture *c, uint8_t *out)
{
        size_t n = 0;

        for (size_t i = 0; i + 5 <= c->hello_len;) {
                size_t len = (size_t)c->data[i + 3] << 8 | c->data[i + 4];

                assert_int_equal(c->data[i], 22);
                memcpy(out + n, c->data + i + 5, len);
                n += len;
                i += 5 + len;
        }
        return n;
}

/* Frame @n handshake bytes into records of the sizes in @sizes (cycled),
 * with record version @version. Returns the stream length. */
static size_t reframe(uint8_t *out, const uint8_t *hs, size_t n, const size_t *sizes,
                      size_t n_sizes, unsigned version)
{
        size_t o = 0;

        for (size_t i = 0, j = 0; i < n; j++) {
                size_t k = MIN(sizes[j % n_sizes], n - i);

                out[o++] = 22;
                out[o++] = (uint8_t)(version >> 8);
                out[o++] = (uint8_t)version;
                out[o++] = (uint8_t)(k >> 8);
                out[o++] = (uint8_t)k;
                memcpy(out + o, hs + i, k);
                o += k;
                i += k;
        }
        return o;
}

/* A growable-enough byte builder for synthetic hellos. */
struct hb {
        uint8_t b[BIG];
        size_t n;
};

static void put8(struct hb *b, unsigned v)
{
        assert_true(b->n < sizeof(b->b));
        b->b[b->n++] = (uint8_t)v;
}

static void put16(struct hb *b, unsigned v)
{
        put8(b, v >> 8);
        put8(b, v);
}

static void put24(struct hb *b, unsigned v)
{
        put8(b, v >> 16);
        put16(b, v);
}

static void putmem(struct hb *b, const void *p, size_t n)
{
        assert_true(b->n + n <= sizeof(b->b));
        memcpy(b->b + b->n, p, n);
        b->n += n;
}

static void set16(struct hb *b, size_t at, unsigned v)
{
        b->b[at] = (uint8_t)(v >> 8);
        b->b[at + 1] = (uint8_t)v;
}

static void ext_raw(struct hb *e, unsigned type, const void *data, size_t n)
{
        put16(e, type);
        put16(e, (unsigned)n);
        putmem(e, data, n);
}

static void ext_sni_n(struct hb *e, const char *name, size_t n)
{
        put16(e, 0);
        put16(e, (unsigned)n + 5);
        put16(e, (unsigned)n + 3);
        put8(e, 0);
        put16(e, (unsigned)n);
        putmem(e, name, n);
}

static void ext_sni(struct hb *e, const char *name)
{
        ext_sni_n(e, name, strlen(name));
}

/* @protos: NULL-terminated. */
static void ext_alpn(struct hb *e, const char *const *protos)
{
        size_t at, n = 0;

        put16(e, 16);
        at = e->n;
        put16(e, 0);
        put16(e, 0);
        for (size_t i = 0; protos[i]; i++) {
                put8(e, (unsigned)strlen(protos[i]));
                putmem(e, protos[i], strlen(protos[i]));
                n += 1 + strlen(protos[i]);
        }
        set16(e, at, (unsigned)n + 2);
        set16(e, at + 2, (unsigned)n);
}

static void ext_versions(struct hb *e, const uint16_t *v, size_t n)
{
        put16(e, 43);
        put16(e, (unsigned)(1 + 2 * n));
        put8(e, (unsigned)(2 * n));
        for (size_t i = 0; i < n; i++)
                put16(e, v[i]);
}

/* A ClientHello handshake message with extension block @e, or none when
 * @e is NULL. */
static void build_msg(struct hb *m, const struct hb *e)
{
        static const uint8_t random[32] = {1, 2, 3, 4, 5, 6, 7, 8};
        static const uint8_t sid[32] = {9, 9, 9};

        m->n = 0;
        put8(m, 1);
        put24(m, 0);
        put16(m, 0x0303);
        putmem(m, random, sizeof(random));
        put8(m, sizeof(sid));
        putmem(m, sid, sizeof(sid));
        put16(m, 4);
        put16(m, 0x1301);
        put16(m, 0xc02f);
        put8(m, 1);
        put8(m, 0);
        if (e) {
                put16(m, (unsigned)e->n);
                putmem(m, e->b, e->n);
        }
        m->b[1] = (uint8_t)((m->n - 4) >> 16);
        m->b[2] = (uint8_t)((m->n - 4) >> 8);
        m->b[3] = (uint8_t)(m->n - 4);
}

static struct hb ext, msg, str;

#define OK 1

/* Build a hello around the extensions in `ext`, frame it in one record (or
 * several of 2^14 when it is bigger) and parse it every way. Returns OK
 * when the whole stream was consumed and the hello is complete, else the
 * error. */
static int parse_ext(struct proxy_tls_hello *h)
{
        static const size_t rec[] = {16384};
        int r;

        build_msg(&msg, &ext);
        str.n = reframe(str.b, msg.b, msg.n, rec, 1, 0x0301);
        r = parse_all_ways(h, str.b, str.n, PROXY_TLS_HELLO_MAX_DEFAULT);
        if (r >= 0) {
                assert_int_equal(r, str.n);
                return OK;
        }
        return r;
}

static const uint16_t v13[] = {0x0304, 0x0303};
static const char *const h2_h1[] = {"h2", "http/1.1", NULL};

/* The reference hello: SNI, ALPN, supported_versions, 1 record. */
static void build_reference(void)
{
        ext.n = 0;
        ext_sni(&ext, "example.com");
        ext_alpn(&ext, h2_h1);
        ext_versions(&ext, v13, ELEMENTSOF(v13));
        build_msg(&msg, &ext);
        str.n = reframe(str.b, msg.b, msg.n, (const size_t[]){16384}, 1, 0x0301);
}

/* ---- tests: real clients ---- */

static void test_captures_whole(void **state)
{
        for (size_t i = 0; i < ELEMENTSOF(captures); i++) {
                const struct capture *c = &captures[i];
                struct proxy_tls_hello h;

                note("%s\n", c->name);
                proxy_tls_hello_init(&h, buf_a, PROXY_TLS_HELLO_MAX_DEFAULT);
                assert_int_equal(proxy_tls_hello_feed(&h, c->data, c->len), c->hello_len);
                check_capture(&h, c);
                /* Complete: nothing more is consumed, results stay. */
                assert_int_equal(proxy_tls_hello_feed(&h, c->data, c->len), 0);
                assert_int_equal(proxy_tls_hello_feed(&h, NULL, 0), 0);
                check_capture(&h, c);
        }
}

static void test_captures_every_split(void **state)
{
        for (size_t i = 0; i < ELEMENTSOF(captures); i++) {
                const struct capture *c = &captures[i];

                for (size_t k = 0; k < c->hello_len; k++) {
                        struct proxy_tls_hello h;

                        proxy_tls_hello_init(&h, buf_a, PROXY_TLS_HELLO_MAX_DEFAULT);
                        assert_int_equal(proxy_tls_hello_feed(&h, c->data, k), -EAGAIN);
                        assert_false(proxy_tls_hello_done(&h));
                        assert_int_equal(proxy_tls_hello_feed(&h, c->data + k, c->len - k),
                                         c->hello_len - k);
                        check_capture(&h, c);
                }
        }
}

static void test_captures_one_byte(void **state)
{
        for (size_t i = 0; i < ELEMENTSOF(captures); i++) {
                const struct capture *c = &captures[i];
                struct proxy_tls_hello h;

                proxy_tls_hello_init(&h, buf_a, PROXY_TLS_HELLO_MAX_DEFAULT);
                for (size_t k = 0; k + 1 < c->hello_len; k++) {
                        assert_int_equal(proxy_tls_hello_feed(&h, c->data + k, 1), -EAGAIN);
                        assert_null(proxy_tls_hello_sni(&h));
                }
                assert_int_equal(proxy_tls_hello_feed(&h, c->data + c->hello_len - 1, 1), 1);
                check_capture(&h, c);
        }
}

static void test_captures_reframed(void **state)
{
        static const size_t s1[] = {1}, s2[] = {2}, s3[] = {3}, s4[] = {4}, s5[] = {5},
                            s6[] = {1, 3}, s7[] = {3, 1, 200}, s8[] = {100}, s9[] = {511},
                            s10[] = {4, 1000}, s11[] = {16384};
        static const struct {
                const size_t *s;
                size_t n;
        } plans[] = {
                {s1, 1}, {s2, 1}, {s3, 1}, {s4, 1},  {s5, 1},  {s6, 2},
                {s7, 3}, {s8, 1}, {s9, 1}, {s10, 2}, {s11, 1},
        };
        static const unsigned versions[] = {0x0300, 0x0301, 0x0302, 0x0303, 0x0304};

        for (size_t i = 0; i < ELEMENTSOF(captures); i++) {
                const struct capture *c = &captures[i];
                size_t n = extract_msg(c, msg.b);

                for (size_t j = 0; j < ELEMENTSOF(plans) + 2; j++) {
                        /* Plus: all but the last byte, and all but the first. */
                        size_t last[] = {n - 1}, first[] = {1, n};
                        const size_t *s = j < ELEMENTSOF(plans) ? plans[j].s : j % 2 ? last : first;
                        size_t ns = j < ELEMENTSOF(plans) ? plans[j].n : j % 2 ? 1 : 2;
                        struct proxy_tls_hello h;

                        str.n = reframe(str.b, msg.b, n, s, ns, versions[j % ELEMENTSOF(versions)]);
                        assert_int_equal(
                                parse_all_ways(&h, str.b, str.n, PROXY_TLS_HELLO_MAX_DEFAULT),
                                str.n);
                        check_capture(&h, c);
                }
        }
}

/* Traefik CVE-2026-32305: a ClientHello fragmented across records must give
 * the same SNI as an unfragmented one, and a part of one must give none. */
static void test_cve_2026_32305_fragmented_hello(void **state)
{
        const struct capture *c = &captures[7];
        struct proxy_tls_hello h;
        size_t n;

        assert_string_equal(c->name, "openssl_frag");
        /* The real client split its hello into 512 + 512 + 82 bytes. */
        assert_int_equal(parse_all_ways(&h, c->data, c->hello_len, PROXY_TLS_HELLO_MAX_DEFAULT),
                         c->hello_len);
        check_capture(&h, c);

        /* The first record alone: no result, no SNI, just "more". */
        proxy_tls_hello_init(&h, buf_a, PROXY_TLS_HELLO_MAX_DEFAULT);
        assert_int_equal(proxy_tls_hello_feed(&h, c->data, 5 + 512), -EAGAIN);
        assert_null(proxy_tls_hello_sni(&h));
        assert_false(proxy_tls_hello_done(&h));

        /* One record per byte. */
        n = extract_msg(c, msg.b);
        str.n = reframe(str.b, msg.b, n, (const size_t[]){1}, 1, 0x0303);
        assert_int_equal(str.n, 6 * n);
        assert_int_equal(parse_all_ways(&h, str.b, str.n, PROXY_TLS_HELLO_MAX_DEFAULT), str.n);
        check_capture(&h, c);
}

static void test_no_sni(void **state)
{
        struct proxy_tls_hello h;

        proxy_tls_hello_init(&h, buf_a, PROXY_TLS_HELLO_MAX_DEFAULT);
        assert_int_equal(proxy_tls_hello_feed(&h, cap_openssl_nosni, sizeof(cap_openssl_nosni)),
                         sizeof(cap_openssl_nosni));
        assert_true(proxy_tls_hello_done(&h));
        assert_null(proxy_tls_hello_sni(&h));
        assert_int_equal(proxy_tls_hello_alpn_count(&h), 0);
        assert_true(proxy_tls_hello_tls13(&h));
}

static void test_sni_lowercased(void **state)
{
        struct proxy_tls_hello h;

        /* The client sent "Example.COM". */
        assert_non_null(memmem(cap_openssl_sni, sizeof(cap_openssl_sni), "Example.COM", 11));
        proxy_tls_hello_init(&h, buf_a, PROXY_TLS_HELLO_MAX_DEFAULT);
        assert_int_equal(proxy_tls_hello_feed(&h, cap_openssl_sni, sizeof(cap_openssl_sni)),
                         sizeof(cap_openssl_sni));
        assert_string_equal(proxy_tls_hello_sni(&h), "example.com");
}

static void test_alpn(void **state)
{
        static const char *const acme[] = {"acme-tls/1", NULL};
        static const char *const one_byte[] = {"x", NULL};
        struct proxy_tls_hello h;

        proxy_tls_hello_init(&h, buf_a, PROXY_TLS_HELLO_MAX_DEFAULT);
        assert_int_equal(proxy_tls_hello_feed(&h, cap_openssl_alpn, sizeof(cap_openssl_alpn)),
                         sizeof(cap_openssl_alpn));
        assert_int_equal(proxy_tls_hello_alpn_count(&h), 1);
        assert_true(proxy_tls_hello_offers_alpn(&h, "acme-tls/1"));
        assert_false(proxy_tls_hello_offers_alpn(&h, "acme-tls/"));
        assert_false(proxy_tls_hello_offers_alpn(&h, "acme-tls/10"));
        assert_false(proxy_tls_hello_offers_alpn(&h, "ACME-TLS/1"));
        assert_false(proxy_tls_hello_offers_alpn(&h, "h2"));

        ext.n = 0;
        ext_alpn(&ext, acme);
        assert_int_equal(parse_ext(&h), OK);
        assert_int_equal(proxy_tls_hello_alpn_count(&h), 1);
        assert_true(proxy_tls_hello_offers_alpn(&h, "acme-tls/1"));
        assert_null(proxy_tls_hello_sni(&h));

        ext.n = 0;
        ext_alpn(&ext, one_byte);
        assert_int_equal(parse_ext(&h), OK);
        assert_true(proxy_tls_hello_offers_alpn(&h, "x"));
        assert_false(proxy_tls_hello_offers_alpn(&h, ""));

        /* A 255-byte protocol name is the longest there is. */
        ext.n = 0;
        put16(&ext, 16);
        put16(&ext, 2 + 1 + 255);
        put16(&ext, 1 + 255);
        put8(&ext, 255);
        for (int i = 0; i < 255; i++)
                put8(&ext, 'a');
        assert_int_equal(parse_ext(&h), OK);
        assert_int_equal(proxy_tls_hello_alpn_count(&h), 1);
}

static void test_alpn_malformed(void **state)
{
        struct proxy_tls_hello h;
        static const struct {
                const char *what;
                const uint8_t *data;
                size_t n;
        } cases[] = {
                {"empty extension", (const uint8_t *)"", 0},
                {"empty list", (const uint8_t *)"\x00\x00", 2},
                {"list longer than extension", (const uint8_t *)"\x00\x04\x02h2", 5},
                {"list shorter than extension", (const uint8_t *)"\x00\x02\x02h2", 5},
                {"empty name", (const uint8_t *)"\x00\x04\x02h2\x00", 6},
                {"only an empty name", (const uint8_t *)"\x00\x01\x00", 3},
                {"name past list", (const uint8_t *)"\x00\x03\x03h2", 5},
                {"name length 255 past list", (const uint8_t *)"\x00\x03\xffh2", 5},
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                note("%s\n", cases[i].what);
                ext.n = 0;
                ext_raw(&ext, 16, cases[i].data, cases[i].n);
                assert_int_equal(parse_ext(&h), -EBADMSG);
        }
}

static void test_tls13(void **state)
{
        static const uint16_t only12[] = {0x0303, 0x0302};
        static const uint16_t grease13[] = {0x0a0a, 0x0304};
        static const uint16_t draft[] = {0x7f17};
        struct proxy_tls_hello h;

        ext.n = 0;
        ext_versions(&ext, only12, ELEMENTSOF(only12));
        assert_int_equal(parse_ext(&h), OK);
        assert_false(proxy_tls_hello_tls13(&h));

        ext.n = 0;
        ext_versions(&ext, grease13, ELEMENTSOF(grease13));
        assert_int_equal(parse_ext(&h), OK);
        assert_true(proxy_tls_hello_tls13(&h));

        ext.n = 0;
        ext_versions(&ext, draft, ELEMENTSOF(draft));
        assert_int_equal(parse_ext(&h), OK);
        assert_false(proxy_tls_hello_tls13(&h));

        /* No supported_versions: TLS 1.2 at most (RFC 8446 §4.2.1). */
        ext.n = 0;
        ext_sni(&ext, "a.example");
        assert_int_equal(parse_ext(&h), OK);
        assert_false(proxy_tls_hello_tls13(&h));

        /* Malformed lists. */
        ext.n = 0;
        ext_raw(&ext, 43, "\x00", 1);
        assert_int_equal(parse_ext(&h), -EBADMSG);
        ext.n = 0;
        ext_raw(&ext, 43, "\x03\x03\x04\x03", 4);
        assert_int_equal(parse_ext(&h), -EBADMSG);
        ext.n = 0;
        ext_raw(&ext, 43, "\x04\x03\x04", 3);
        assert_int_equal(parse_ext(&h), -EBADMSG);
        ext.n = 0;
        ext_raw(&ext, 43, "\x02\x03\x04\x00", 4);
        assert_int_equal(parse_ext(&h), -EBADMSG);
        ext.n = 0;
        ext_raw(&ext, 43, "", 0);
        assert_int_equal(parse_ext(&h), -EBADMSG);
}

/* ---- tests: the host name ---- */

static void test_sni_names(void **state)
{
        char l63[64], l64[65], n253[254], n254[255];
        struct proxy_tls_hello h;

        memset(l63, 'a', 63);
        l63[63] = 0;
        memset(l64, 'b', 64);
        l64[64] = 0;
        /* 3 x (63 + ".") + 61 = 253 */
        snprintf(n253, sizeof(n253), "%s.%s.%s.%.61s", l63, l63, l63, l63);
        assert_int_equal(strlen(n253), 253);
        snprintf(n254, sizeof(n254), "%s.%s.%s.%.62s", l63, l63, l63, l63);
        assert_int_equal(strlen(n254), 254);

        const struct {
                const char *in;
                const char *out; /* NULL: refused with -EBADMSG */
        } cases[] = {
                {"a", "a"},
                {"localhost", "localhost"},
                {"Example.COM", "example.com"},
                {"WWW.EXAMPLE.ORG", "www.example.org"},
                {"a-b.c-d.e", "a-b.c-d.e"},
                {"a--b.example", "a--b.example"},
                {"xn--bcher-kva.example", "xn--bcher-kva.example"},
                {"1.2.3.4.example", "1.2.3.4.example"},
                {"123abc.example", "123abc.example"},
                {"example.123abc", "example.123abc"},
                {"0x.example", "0x.example"},
                {"example.0xg1", "example.0xg1"},
                {l63, l63},
                {n253, n253},
                {l64, NULL},
                {n254, NULL},
                {".", NULL},
                {".example.com", NULL},
                {"example.com.", NULL},
                {"example..com", NULL},
                {"-example.com", NULL},
                {"example-.com", NULL},
                {"example.com-", NULL},
                {"example.-com", NULL},
                {"exa_mple.com", NULL},
                {"_acme-challenge.example.com", NULL},
                {"exa mple.com", NULL},
                {"example.com:443", NULL},
                {"b\xc3\xbc"
                 "cher.example",
                 NULL},
                {"*.example.com", NULL},
                {"example.com/", NULL},
                {"127.0.0.1", NULL},
                {"10.1", NULL},
                {"2130706433", NULL},
                {"0x7f000001", NULL},
                {"0X7F.0.0.1", NULL},
                {"example.0x1f", NULL},
                {"example.123", NULL},
                {"::1", NULL},
                {"[::1]", NULL},
                {"fe80::1", NULL},
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                note("'%s'\n", cases[i].in);
                ext.n = 0;
                ext_sni(&ext, cases[i].in);
                if (cases[i].out) {
                        assert_int_equal(parse_ext(&h), OK);
                        assert_string_equal(proxy_tls_hello_sni(&h), cases[i].out);
                } else {
                        assert_int_equal(parse_ext(&h), -EBADMSG);
                        assert_null(proxy_tls_hello_sni(&h));
                }
        }

        /* Empty, and with a NUL inside. */
        ext.n = 0;
        ext_sni_n(&ext, "", 0);
        assert_int_equal(parse_ext(&h), -EBADMSG);
        ext.n = 0;
        ext_sni_n(&ext, "good.example\0evil.example", 25);
        assert_int_equal(parse_ext(&h), -EBADMSG);
        ext.n = 0;
        ext_sni_n(&ext, "good.example\0", 13);
        assert_int_equal(parse_ext(&h), -EBADMSG);
}

static void test_sni_list_shapes(void **state)
{
        struct proxy_tls_hello h;
        static const struct {
                const char *what;
                const uint8_t *data;
                size_t n;
        } cases[] = {
                {"empty extension", (const uint8_t *)"", 0},
                {"empty list", (const uint8_t *)"\x00\x00", 2},
                {"two host_names",
                 (const uint8_t *)"\x00\x0a\x00\x00\x03"
                                  "a.b\x00\x00\x01"
                                  "c",
                 12},
                {"the same host_name twice",
                 (const uint8_t *)"\x00\x0c\x00\x00\x03"
                                  "a.b\x00\x00\x03"
                                  "a.b",
                 14},
                {"host_name then another type",
                 (const uint8_t *)"\x00\x0a\x00\x00\x03"
                                  "a.b\x01\x00\x01"
                                  "c",
                 12},
                {"another type then host_name",
                 (const uint8_t *)"\x00\x0a\x01\x00\x01"
                                  "c\x00\x00\x03"
                                  "a.b",
                 12},
                {"only another type",
                 (const uint8_t *)"\x00\x06\x01\x00\x03"
                                  "a.b",
                 8},
                {"list longer than extension",
                 (const uint8_t *)"\x00\x07\x00\x00\x03"
                                  "a.b",
                 8},
                {"list shorter than extension",
                 (const uint8_t *)"\x00\x05\x00\x00\x03"
                                  "a.b",
                 8},
                {"byte after list",
                 (const uint8_t *)"\x00\x06\x00\x00\x03"
                                  "a.b\x00",
                 9},
                {"name longer than list",
                 (const uint8_t *)"\x00\x06\x00\x00\x04"
                                  "a.b",
                 8},
                {"name shorter than list",
                 (const uint8_t *)"\x00\x06\x00\x00\x02"
                                  "a.b",
                 8},
                {"name length 0xffff",
                 (const uint8_t *)"\x00\x06\x00\xff\xff"
                                  "a.b",
                 8},
                {"list truncated in the type", (const uint8_t *)"\x00\x00\x00", 3},
                {"list truncated in the length", (const uint8_t *)"\x00\x02\x00\x00", 4},
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                note("%s\n", cases[i].what);
                ext.n = 0;
                ext_raw(&ext, 0, cases[i].data, cases[i].n);
                assert_int_equal(parse_ext(&h), -EBADMSG);
        }
        /* The well-formed spelling of the same thing is accepted. */
        ext.n = 0;
        ext_raw(&ext, 0,
                "\x00\x06\x00\x00\x03"
                "a.b",
                8);
        assert_int_equal(parse_ext(&h), OK);
        assert_string_equal(proxy_tls_hello_sni(&h), "a.b");
}

/* ---- tests: lengths ---- */

enum width { W8 = 1, W16 = 2, W24 = 3 };

static unsigned get_n(const uint8_t *p, enum width w)
{
        unsigned v = 0;

        for (int i = 0; i < (int)w; i++)
                v = v << 8 | p[i];
        return v;
}

static void set_n(uint8_t *p, enum width w, unsigned v)
{
        for (int i = (int)w - 1; i >= 0; i--, v >>= 8)
                p[i] = (uint8_t)v;
}

/* Every length field of the reference hello, set too big, too small and
 * hostile. The offsets are found by walking the reference stream. */
static void test_hostile_lengths(void **state)
{
        struct field {
                const char *what;
                size_t at;
                enum width w;
        };
        struct field f[32];
        size_t nf = 0, o;
        struct proxy_tls_hello h;

        build_reference();
        assert_int_equal(parse_all_ways(&h, str.b, str.n, PROXY_TLS_HELLO_MAX_DEFAULT), str.n);
        assert_string_equal(proxy_tls_hello_sni(&h), "example.com");

        o = 9 + 2 + 32;
        f[nf++] = (struct field){"session id", o, W8};
        o += 1 + str.b[o];
        f[nf++] = (struct field){"cipher suites", o, W16};
        o += 2 + get_n(str.b + o, W16);
        f[nf++] = (struct field){"compression", o, W8};
        o += 1 + str.b[o];
        f[nf++] = (struct field){"extensions", o, W16};
        o += 2;
        /* server_name */
        f[nf++] = (struct field){"sni ext", o + 2, W16};
        f[nf++] = (struct field){"sni list", o + 4, W16};
        f[nf++] = (struct field){"sni name", o + 7, W16};
        o += 4 + get_n(str.b + o + 2, W16);
        /* ALPN */
        f[nf++] = (struct field){"alpn ext", o + 2, W16};
        f[nf++] = (struct field){"alpn list", o + 4, W16};
        f[nf++] = (struct field){"alpn name 1", o + 6, W8};
        f[nf++] = (struct field){"alpn name 2", o + 6 + 1 + 2, W8};
        o += 4 + get_n(str.b + o + 2, W16);
        /* supported_versions */
        f[nf++] = (struct field){"sv ext", o + 2, W16};
        f[nf++] = (struct field){"sv list", o + 4, W8};
        o += 4 + get_n(str.b + o + 2, W16);
        assert_int_equal(o, str.n);

        for (size_t i = 0; i < nf; i++) {
                unsigned orig = get_n(str.b + f[i].at, f[i].w);
                const unsigned max = f[i].w == W8 ? 0xff : 0xffff;
                const unsigned vals[] = {orig + 1, orig - 1, 0, max, orig + 2};

                for (size_t j = 0; j < ELEMENTSOF(vals); j++) {
                        int r;

                        if (vals[j] == orig || vals[j] > max)
                                continue;
                        note("%s: %u -> %u\n", f[i].what, orig, vals[j]);
                        set_n(str.b + f[i].at, f[i].w, vals[j]);
                        r = parse_all_ways(&h, str.b, str.n, PROXY_TLS_HELLO_MAX_DEFAULT);
                        assert_int_equal(r, -EBADMSG);
                        set_n(str.b + f[i].at, f[i].w, orig);
                }
        }

        /* The outer lengths: the record's and the handshake message's. */
        const struct {
                const char *what;
                size_t at;
                enum width w;
                unsigned v;
                int expect;
        } outer[] = {
                /* The hello ends before its record does: RFC 8446 §5.1. */
                {"record +1", 3, W16, (unsigned)str.n - 5 + 1, -EBADMSG},
                /* The next "record header" starts in the hello: waits. */
                {"record -1", 3, W16, (unsigned)str.n - 5 - 1, -EAGAIN},
                {"record 0", 3, W16, 0, -EBADMSG},
                {"record 2^14+1", 3, W16, 16385, -EBADMSG},
                {"record 0xffff", 3, W16, 0xffff, -EBADMSG},
                /* Waits for a next record. */
                {"message +1", 6, W24, (unsigned)str.n - 9 + 1, -EAGAIN},
                /* Ends inside the record: RFC 8446 §5.1. */
                {"message -1", 6, W24, (unsigned)str.n - 9 - 1, -EBADMSG},
                {"message 0", 6, W24, 0, -EBADMSG},
                {"message 40", 6, W24, 40, -EBADMSG},
                {"message 0xffffff", 6, W24, 0xffffff, -E2BIG},
                {"message max", 6, W24, PROXY_TLS_HELLO_MAX_DEFAULT - 4, -EAGAIN},
                {"message max+1", 6, W24, PROXY_TLS_HELLO_MAX_DEFAULT - 3, -E2BIG},
        };

        for (size_t i = 0; i < ELEMENTSOF(outer); i++) {
                unsigned orig = get_n(str.b + outer[i].at, outer[i].w);

                note("%s\n", outer[i].what);
                set_n(str.b + outer[i].at, outer[i].w, outer[i].v);
                assert_int_equal(parse_all_ways(&h, str.b, str.n, PROXY_TLS_HELLO_MAX_DEFAULT),
                                 outer[i].expect);
                assert_null(proxy_tls_hello_sni(&h));
                set_n(str.b + outer[i].at, outer[i].w, orig);
        }
}

/* Every byte of a real hello set to a few values: whatever comes out, it
 * is one of the documented results, the same for every read pattern, and
 * an SNI that comes out is a valid lower-case host name. */
static void test_mutation_sweep(void **state)
{
        const struct capture *c = &captures[4];
        static uint8_t m[sizeof(cap_curl)];
        struct proxy_tls_hello h;
        size_t ok = 0;

        assert_string_equal(c->name, "curl");
        for (size_t i = 0; i < c->hello_len; i++) {
                const uint8_t vals[] = {
                        0x00, 0xff, (uint8_t)(c->data[i] + 1), (uint8_t)(c->data[i] - 1),
                        0x2e, 'A'};

                for (size_t j = 0; j < ELEMENTSOF(vals); j++) {
                        const char *sni;
                        int r;

                        memcpy(m, c->data, c->len);
                        m[i] = vals[j];
                        r = parse_all_ways(&h, m, c->len, PROXY_TLS_HELLO_MAX_DEFAULT);
                        assert_true(r == (int)c->hello_len || r == -EAGAIN || r == -EBADMSG ||
                                    r == -E2BIG || r == -EPROTO);
                        if (r < 0) {
                                assert_false(proxy_tls_hello_done(&h));
                                continue;
                        }
                        ok++;
                        sni = proxy_tls_hello_sni(&h);
                        if (sni) {
                                assert_true(strlen(sni) >= 1 && strlen(sni) <= 253);
                                assert_true(strspn(sni, "abcdefghijklmnopqrstuvwxyz0123456789-.") ==
                                            strlen(sni));
                        }
                }
        }
        /* Mutations in the random, session id and key shares are harmless. */
        assert_true(ok > 0);
}

/* ---- tests: extensions ---- */

static void test_duplicate_extensions(void **state)
{
        struct proxy_tls_hello h;

        ext.n = 0;
        ext_sni(&ext, "a.example");
        ext_sni(&ext, "a.example");
        assert_int_equal(parse_ext(&h), -EBADMSG);

        /* The CVE shape: two server_names, the second one different. */
        ext.n = 0;
        ext_sni(&ext, "a.example");
        ext_alpn(&ext, h2_h1);
        ext_sni(&ext, "b.example");
        assert_int_equal(parse_ext(&h), -EBADMSG);

        ext.n = 0;
        ext_alpn(&ext, h2_h1);
        ext_alpn(&ext, h2_h1);
        assert_int_equal(parse_ext(&h), -EBADMSG);

        ext.n = 0;
        ext_versions(&ext, v13, 2);
        ext_versions(&ext, v13, 2);
        assert_int_equal(parse_ext(&h), -EBADMSG);

        /* Extensions we do not parse count too, including the largest type. */
        ext.n = 0;
        ext_raw(&ext, 0x1234, "", 0);
        ext_sni(&ext, "a.example");
        ext_raw(&ext, 0x1234, "x", 1);
        assert_int_equal(parse_ext(&h), -EBADMSG);
        ext.n = 0;
        ext_raw(&ext, 0xffff, "", 0);
        ext_raw(&ext, 0xffff, "", 0);
        assert_int_equal(parse_ext(&h), -EBADMSG);
        ext.n = 0;
        ext_raw(&ext, 0x0a0a, "", 0);
        ext_raw(&ext, 0x0a0a, "", 0);
        assert_int_equal(parse_ext(&h), -EBADMSG);

        /* Different GREASE values (RFC 8701) and neighbouring types are fine. */
        ext.n = 0;
        ext_raw(&ext, 0x0a0a, "", 0);
        ext_raw(&ext, 0x1a1a, "\x00", 1);
        ext_raw(&ext, 0xffff, "", 0);
        ext_raw(&ext, 0xfffe, "", 0);
        ext_raw(&ext, 1, "", 0);
        ext_sni(&ext, "a.example");
        assert_int_equal(parse_ext(&h), OK);
        assert_string_equal(proxy_tls_hello_sni(&h), "a.example");
}

static void test_pre_shared_key_last(void **state)
{
        struct proxy_tls_hello h;

        ext.n = 0;
        ext_sni(&ext, "a.example");
        ext_raw(&ext, 41, "psk", 3);
        assert_int_equal(parse_ext(&h), OK);

        ext.n = 0;
        ext_raw(&ext, 41, "psk", 3);
        ext_sni(&ext, "a.example");
        assert_int_equal(parse_ext(&h), -EBADMSG);

        ext.n = 0;
        ext_raw(&ext, 41, "psk", 3);
        ext_raw(&ext, 41, "psk", 3);
        assert_int_equal(parse_ext(&h), -EBADMSG);
}

static void test_hello_shapes(void **state)
{
        struct proxy_tls_hello h;

        /* No extension block at all (RFC 5246 §7.4.1.2). */
        build_msg(&msg, NULL);
        str.n = reframe(str.b, msg.b, msg.n, (const size_t[]){16384}, 1, 0x0301);
        assert_int_equal(parse_all_ways(&h, str.b, str.n, PROXY_TLS_HELLO_MAX_DEFAULT), str.n);
        assert_true(proxy_tls_hello_done(&h));
        assert_null(proxy_tls_hello_sni(&h));
        assert_int_equal(proxy_tls_hello_alpn_count(&h), 0);
        assert_false(proxy_tls_hello_tls13(&h));

        /* An empty extension block. */
        ext.n = 0;
        assert_int_equal(parse_ext(&h), OK);

        /* A byte after the extension block. */
        ext.n = 0;
        ext_sni(&ext, "a.example");
        build_msg(&msg, &ext);
        put8(&msg, 0);
        msg.b[3]++;
        str.n = reframe(str.b, msg.b, msg.n, (const size_t[]){16384}, 1, 0x0301);
        assert_int_equal(parse_all_ways(&h, str.b, str.n, PROXY_TLS_HELLO_MAX_DEFAULT), -EBADMSG);

        /* One byte where the extension block length should be. */
        build_msg(&msg, NULL);
        put8(&msg, 0);
        msg.b[3]++;
        str.n = reframe(str.b, msg.b, msg.n, (const size_t[]){16384}, 1, 0x0301);
        assert_int_equal(parse_all_ways(&h, str.b, str.n, PROXY_TLS_HELLO_MAX_DEFAULT), -EBADMSG);

        /* An extension header cut short inside the block. */
        ext.n = 0;
        put16(&ext, 0x1234);
        put8(&ext, 0);
        assert_int_equal(parse_ext(&h), -EBADMSG);

        /* legacy_version: any {03,xx}, nothing else. */
        build_reference();
        str.b[9] = 2;
        assert_int_equal(parse_all_ways(&h, str.b, str.n, PROXY_TLS_HELLO_MAX_DEFAULT), -EBADMSG);
        str.b[9] = 3;
        str.b[10] = 0xff;
        assert_int_equal(parse_all_ways(&h, str.b, str.n, PROXY_TLS_HELLO_MAX_DEFAULT), str.n);
        str.b[10] = 1;
        assert_int_equal(parse_all_ways(&h, str.b, str.n, PROXY_TLS_HELLO_MAX_DEFAULT), str.n);
}

static void test_smallest_hello(void **state)
{
        static const uint8_t head[] = {
                0x16, 0x03, 0x01, 0x00, 0x2d, /* a handshake record of 45 bytes */
                0x01, 0x00, 0x00, 0x29,       /* a ClientHello of 41 bytes */
                0x03, 0x01,                   /* legacy_version: TLS 1.0 */
        };
        static const uint8_t tail[] = {
                0x00,                   /* an empty session id */
                0x00, 0x02, 0x00, 0x2f, /* one cipher suite */
                0x01, 0x00,             /* the null compression method */
        };
        uint8_t smallest[sizeof(head) + 32 + sizeof(tail)] = {0}; /* a zero random */
        uint8_t m[sizeof(smallest)];
        struct proxy_tls_hello h;

        memcpy(smallest, head, sizeof(head));
        memcpy(smallest + sizeof(head) + 32, tail, sizeof(tail));
        assert_int_equal(sizeof(smallest), 5 + 4 + 41);
        assert_int_equal(parse_all_ways(&h, smallest, sizeof(smallest), 45), sizeof(smallest));
        assert_null(proxy_tls_hello_sni(&h));
        assert_false(proxy_tls_hello_tls13(&h));
        assert_int_equal(parse_all_ways(&h, smallest, sizeof(smallest), 44), -E2BIG);

        /* One byte less of body is below the minimum: refused at the header. */
        memcpy(m, smallest, sizeof(m));
        m[4]--;
        m[8]--;
        assert_int_equal(parse_all_ways(&h, m, 9, 64), -EBADMSG);
        /* No cipher suite. */
        memcpy(m, smallest, sizeof(m));
        m[45] = 0;
        assert_int_equal(parse_all_ways(&h, m, sizeof(m), 64), -EBADMSG);
        /* A 33-byte session id. */
        memcpy(m, smallest, sizeof(m));
        m[43] = 33;
        assert_int_equal(parse_all_ways(&h, m, sizeof(m), 64), -EBADMSG);
}

/* ---- tests: records ---- */

static void test_not_handshake_first(void **state)
{
        static const struct {
                const char *what;
                const uint8_t *data;
                size_t n;
        } cases[] = {
                {"ChangeCipherSpec", (const uint8_t *)"\x14\x03\x03\x00\x01\x01", 6},
                {"alert", (const uint8_t *)"\x15\x03\x01\x00\x02\x02\x28", 7},
                {"application data", (const uint8_t *)"\x17\x03\x03\x00\x01x", 6},
                {"heartbeat", (const uint8_t *)"\x18\x03\x03\x00\x03\x01\x40\x00", 8},
        };
        struct proxy_tls_hello h;

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                note("%s\n", cases[i].what);
                memcpy(str.b, cases[i].data, cases[i].n);
                memcpy(str.b + cases[i].n, cap_curl, sizeof(cap_curl));
                str.n = cases[i].n + sizeof(cap_curl);
                assert_int_equal(parse_all_ways(&h, str.b, str.n, PROXY_TLS_HELLO_MAX_DEFAULT),
                                 -EBADMSG);
                /* Known from the first byte. */
                proxy_tls_hello_init(&h, buf_a, PROXY_TLS_HELLO_MAX_DEFAULT);
                assert_int_equal(proxy_tls_hello_feed(&h, cases[i].data, 1), -EBADMSG);
        }
}

static void test_interleaved_records(void **state)
{
        static const struct {
                const char *what;
                const uint8_t *data;
                size_t n;
        } between[] = {
                {"ChangeCipherSpec", (const uint8_t *)"\x14\x03\x03\x00\x01\x01", 6},
                {"alert", (const uint8_t *)"\x15\x03\x03\x00\x02\x01\x00", 7},
                {"application data", (const uint8_t *)"\x17\x03\x03\x00\x01x", 6},
                {"SSLv2-ish", (const uint8_t *)"\x80\x03\x03\x00\x01x", 6},
                {"record version 0x0305", (const uint8_t *)"\x16\x03\x05\x00\x01\x00", 6},
                {"record version 0x0203", (const uint8_t *)"\x16\x02\x03\x00\x01\x00", 6},
                {"empty handshake record", (const uint8_t *)"\x16\x03\x03\x00\x00", 5},
        };
        struct proxy_tls_hello h;
        size_t n = extract_msg(&captures[4], msg.b);

        for (size_t i = 0; i < ELEMENTSOF(between); i++) {
                size_t cut = i * 37 % (n - 1) + 1; /* 1 .. n-1 */

                note("%s at %zu\n", between[i].what, cut);
                str.n = reframe(str.b, msg.b, cut, (const size_t[]){16384}, 1, 0x0303);
                memcpy(str.b + str.n, between[i].data, between[i].n);
                str.n += between[i].n;
                str.n += reframe(str.b + str.n, msg.b + cut, n - cut, (const size_t[]){16384}, 1,
                                 0x0303);
                assert_int_equal(parse_all_ways(&h, str.b, str.n, PROXY_TLS_HELLO_MAX_DEFAULT),
                                 -EBADMSG);
        }
}

static void test_not_tls(void **state)
{
#define S(x)                                                                                       \
        {                                                                                          \
                (const uint8_t *)(x), sizeof(x) - 1                                                \
        }
        static const struct {
                const uint8_t *data;
                size_t n;
        } cases[] = {
                S("GET / HTTP/1.1\r\nHost: example.com\r\n\r\n"),
                S("POST /x HTTP/1.0\r\n\r\n"),
                S("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"),
                S("PROXY TCP4 192.0.2.1 192.0.2.2 1234 443\r\n"),
                S("\r\n\r\n\0\r\nQUIT\n"), /* PROXY v2 signature */
                S("SSH-2.0-OpenSSH_9.2\r\n"),
                S("\x16\x00\x01\x00\x10"), /* 0x16, then not a {03,xx} version */
                S("\x16\xfe\xfd\x00\x00"), /* DTLS 1.2 */
                S("\x00"),
                S("\x13\x03\x03\x00\x01\x00"), /* content type 19 */
                S("\x19\x03\x03\x00\x01\x00"), /* content type 25 */
        };
#undef S
        /* An SSLv2-compatible ClientHello (RFC 5246 App. E.2). */
        static const uint8_t sslv2[] = {0x80, 0x2e, 0x01, 0x03, 0x01, 0x00, 0x15, 0x00, 0x00,
                                        0x00, 0x10, 0x00, 0x00, 0x2f, 0x00, 0x00, 0x35};
        struct proxy_tls_hello h;

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                note("case %zu\n", i);
                assert_int_equal(
                        parse_all_ways(&h, cases[i].data, cases[i].n, PROXY_TLS_HELLO_MAX_DEFAULT),
                        -EPROTO);
        }
        assert_int_equal(parse_all_ways(&h, sslv2, sizeof(sslv2), PROXY_TLS_HELLO_MAX_DEFAULT),
                         -EPROTO);

        /* Decided on the first byte. */
        proxy_tls_hello_init(&h, buf_a, PROXY_TLS_HELLO_MAX_DEFAULT);
        assert_int_equal(proxy_tls_hello_feed(&h, (const uint8_t *)"G", 1), -EPROTO);
}

static void test_record_versions(void **state)
{
        static const struct {
                unsigned v;
                int ok;
        } cases[] = {
                {0x0300, 1}, {0x0301, 1}, {0x0302, 1}, {0x0303, 1},
                {0x0304, 1}, {0x0305, 0}, {0x03ff, 0},
        };
        struct proxy_tls_hello h;

        build_reference();
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                str.b[1] = (uint8_t)(cases[i].v >> 8);
                str.b[2] = (uint8_t)cases[i].v;
                assert_int_equal(parse_all_ways(&h, str.b, str.n, PROXY_TLS_HELLO_MAX_DEFAULT),
                                 cases[i].ok ? (int)str.n : -EBADMSG);
        }

        /* A later record's version is checked the same way. */
        build_reference();
        str.n = reframe(str.b, msg.b, msg.n, (const size_t[]){10}, 1, 0x0301);
        str.b[15 + 1] = 3;
        str.b[15 + 2] = 5;
        assert_int_equal(parse_all_ways(&h, str.b, str.n, PROXY_TLS_HELLO_MAX_DEFAULT), -EBADMSG);
        str.b[15 + 2] = 0;
        assert_int_equal(parse_all_ways(&h, str.b, str.n, PROXY_TLS_HELLO_MAX_DEFAULT), str.n);
        /* After the first record a wrong major is malformed TLS, not "not TLS". */
        str.b[15 + 1] = 2;
        assert_int_equal(parse_all_ways(&h, str.b, str.n, PROXY_TLS_HELLO_MAX_DEFAULT), -EBADMSG);
}

/* A hello with SNI "big.example", padded (RFC 7685) to a @size-byte message. */
static void build_padded(size_t size)
{
        size_t pad;

        ext.n = 0;
        ext_sni(&ext, "big.example");
        build_msg(&msg, &ext);
        assert_true(size >= msg.n + 4);
        pad = size - msg.n - 4;
        put16(&ext, 21);
        put16(&ext, (unsigned)pad);
        for (size_t i = 0; i < pad; i++)
                put8(&ext, 0);
        build_msg(&msg, &ext);
        assert_int_equal(msg.n, size);
}

static void test_record_sizes(void **state)
{
        struct proxy_tls_hello h;

        /* A hello of exactly 2^14 bytes fits one record and the default bound. */
        build_padded(PROXY_TLS_HELLO_MAX_DEFAULT);
        str.n = reframe(str.b, msg.b, msg.n, (const size_t[]){16384}, 1, 0x0301);
        assert_int_equal(str.n, 5 + 16384);
        assert_int_equal(parse_all_ways(&h, str.b, str.n, PROXY_TLS_HELLO_MAX_DEFAULT), str.n);
        assert_string_equal(proxy_tls_hello_sni(&h), "big.example");

        /* One more byte in one record: the record is too big, whatever the bound. */
        build_padded(PROXY_TLS_HELLO_MAX_DEFAULT + 1);
        str.n = reframe(str.b, msg.b, msg.n, (const size_t[]){16385}, 1, 0x0301);
        assert_int_equal(parse_all_ways(&h, str.b, str.n, 1u << 16), -EBADMSG);
        /* In two records it is fine when the bound allows it... */
        str.n = reframe(str.b, msg.b, msg.n, (const size_t[]){16384}, 1, 0x0301);
        assert_int_equal(parse_all_ways(&h, str.b, str.n, 1u << 16), str.n);
        assert_string_equal(proxy_tls_hello_sni(&h), "big.example");
        /* ...and too big for the default one. */
        assert_int_equal(parse_all_ways(&h, str.b, str.n, PROXY_TLS_HELLO_MAX_DEFAULT), -E2BIG);

        /* 64 KiB over five records, with a bound to match. */
        build_padded(65536);
        str.n = reframe(str.b, msg.b, msg.n, (const size_t[]){16384}, 1, 0x0303);
        assert_int_equal(parse_all_ways(&h, str.b, str.n, 65536), str.n);
        assert_int_equal(parse_all_ways(&h, str.b, str.n, 65535), -E2BIG);
}

static void test_too_big(void **state)
{
        struct proxy_tls_hello h;

        /* curl's hello is a 512-byte message. */
        assert_int_equal(parse_all_ways(&h, cap_curl, sizeof(cap_curl), 512), sizeof(cap_curl));
        assert_int_equal(parse_all_ways(&h, cap_curl, sizeof(cap_curl), 511), -E2BIG);
        /* Refused as soon as the message header is in. */
        proxy_tls_hello_init(&h, buf_a, 511);
        assert_int_equal(proxy_tls_hello_feed(&h, cap_curl, 8), -EAGAIN);
        assert_int_equal(proxy_tls_hello_feed(&h, cap_curl + 8, 1), -E2BIG);

        /* The fragmented one is 1106 bytes over three records. */
        assert_int_equal(parse_all_ways(&h, cap_openssl_frag, sizeof(cap_openssl_frag), 1106),
                         sizeof(cap_openssl_frag));
        assert_int_equal(parse_all_ways(&h, cap_openssl_frag, sizeof(cap_openssl_frag), 1105),
                         -E2BIG);

        /* A declared 16 MiB message in a stream of tiny records. */
        build_reference();
        set_n(msg.b + 1, W24, 0xffffff);
        str.n = reframe(str.b, msg.b, msg.n, (const size_t[]){1}, 1, 0x0301);
        assert_int_equal(parse_all_ways(&h, str.b, str.n, PROXY_TLS_HELLO_MAX_DEFAULT), -E2BIG);
}

static void test_handshake_type(void **state)
{
        static const uint8_t types[] = {0, 2, 4, 11, 20, 0xff};
        struct proxy_tls_hello h;

        for (size_t i = 0; i < ELEMENTSOF(types); i++) {
                build_reference();
                str.b[5] = types[i];
                assert_int_equal(parse_all_ways(&h, str.b, str.n, PROXY_TLS_HELLO_MAX_DEFAULT),
                                 -EBADMSG);
                proxy_tls_hello_init(&h, buf_a, PROXY_TLS_HELLO_MAX_DEFAULT);
                assert_int_equal(proxy_tls_hello_feed(&h, str.b, 6), -EBADMSG);
        }
}

static void test_truncated(void **state)
{
        struct proxy_tls_hello h;

        for (size_t i = 0; i < ELEMENTSOF(captures); i++) {
                const struct capture *c = &captures[i];

                for (size_t k = 0; k < c->hello_len; k += 1 + k / 16) {
                        proxy_tls_hello_init(&h, buf_a, PROXY_TLS_HELLO_MAX_DEFAULT);
                        assert_int_equal(proxy_tls_hello_feed(&h, c->data, k), -EAGAIN);
                        assert_int_equal(proxy_tls_hello_feed(&h, NULL, 0), -EAGAIN);
                        assert_int_equal(proxy_tls_hello_feed(&h, c->data, 0), -EAGAIN);
                        assert_false(proxy_tls_hello_done(&h));
                        assert_null(proxy_tls_hello_sni(&h));
                        assert_false(proxy_tls_hello_offers_alpn(&h, "h2"));
                        assert_int_equal(proxy_tls_hello_alpn_count(&h), 0);
                        assert_false(proxy_tls_hello_tls13(&h));
                }
        }
}

static void test_trailing_in_record(void **state)
{
        struct proxy_tls_hello h;
        size_t n = extract_msg(&captures[4], msg.b);

        /* One stray byte after the hello, in its record. */
        msg.b[n] = 0;
        str.n = reframe(str.b, msg.b, n + 1, (const size_t[]){16384}, 1, 0x0301);
        assert_int_equal(parse_all_ways(&h, str.b, str.n, PROXY_TLS_HELLO_MAX_DEFAULT), -EBADMSG);
        /* Also when the record that ends the hello is a later one. */
        str.n = reframe(str.b, msg.b, n + 1, (const size_t[]){100}, 1, 0x0301);
        assert_int_equal(parse_all_ways(&h, str.b, str.n, PROXY_TLS_HELLO_MAX_DEFAULT), -EBADMSG);
        /* A second ClientHello coalesced into the same record. */
        memcpy(msg.b + n, msg.b, n);
        str.n = reframe(str.b, msg.b, 2 * n, (const size_t[]){16384}, 1, 0x0301);
        assert_int_equal(parse_all_ways(&h, str.b, str.n, PROXY_TLS_HELLO_MAX_DEFAULT), -EBADMSG);
        /* Refused without waiting for the rest of the record. */
        str.n = reframe(str.b, msg.b, n + 1, (const size_t[]){16384}, 1, 0x0301);
        proxy_tls_hello_init(&h, buf_a, PROXY_TLS_HELLO_MAX_DEFAULT);
        assert_int_equal(proxy_tls_hello_feed(&h, str.b, 5 + n), -EBADMSG);
}

/* 0-RTT: the client sends its hello, a ChangeCipherSpec and early data at
 * once. The parser stops at the end of the hello's record. */
static void test_early_data_not_consumed(void **state)
{
        const struct capture *c = &captures[8];
        struct proxy_tls_hello h;

        assert_string_equal(c->name, "openssl_early");
        assert_int_equal(c->data[c->hello_len], 0x14);
        assert_int_equal(c->data[c->hello_len + 6], 0x17);
        assert_int_equal(parse_all_ways(&h, c->data, c->len, PROXY_TLS_HELLO_MAX_DEFAULT),
                         c->hello_len);
        check_capture(&h, c);
        assert_int_equal(proxy_tls_hello_feed(&h, c->data + c->hello_len, c->len - c->hello_len),
                         0);

        /* Whatever follows is not looked at, even garbage. */
        memcpy(str.b, c->data, c->hello_len);
        memcpy(str.b + c->hello_len, "GET / HTTP/1.1\r\n", 16);
        assert_int_equal(parse_all_ways(&h, str.b, c->hello_len + 16, PROXY_TLS_HELLO_MAX_DEFAULT),
                         c->hello_len);
}

static void test_sticky_error(void **state)
{
        struct proxy_tls_hello h;

        proxy_tls_hello_init(&h, buf_a, PROXY_TLS_HELLO_MAX_DEFAULT);
        assert_int_equal(proxy_tls_hello_feed(&h, (const uint8_t *)"GET /", 5), -EPROTO);
        assert_int_equal(proxy_tls_hello_feed(&h, cap_curl, sizeof(cap_curl)), -EPROTO);
        assert_int_equal(proxy_tls_hello_feed(&h, NULL, 0), -EPROTO);
        assert_false(proxy_tls_hello_done(&h));
        assert_null(proxy_tls_hello_sni(&h));

        /* A failure after the SNI was parsed leaves no SNI visible. */
        ext.n = 0;
        ext_sni(&ext, "a.example");
        ext_sni(&ext, "b.example");
        assert_int_equal(parse_ext(&h), -EBADMSG);
        assert_null(proxy_tls_hello_sni(&h));
        assert_int_equal(proxy_tls_hello_feed(&h, cap_curl, sizeof(cap_curl)), -EBADMSG);

        /* init resets. */
        proxy_tls_hello_init(&h, buf_a, PROXY_TLS_HELLO_MAX_DEFAULT);
        assert_int_equal(proxy_tls_hello_feed(&h, cap_curl, sizeof(cap_curl)), sizeof(cap_curl));
        assert_string_equal(proxy_tls_hello_sni(&h), "www.example.com");
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_captures_whole),
                cmocka_unit_test(test_captures_every_split),
                cmocka_unit_test(test_captures_one_byte),
                cmocka_unit_test(test_captures_reframed),
                cmocka_unit_test(test_cve_2026_32305_fragmented_hello),
                cmocka_unit_test(test_no_sni),
                cmocka_unit_test(test_sni_lowercased),
                cmocka_unit_test(test_alpn),
                cmocka_unit_test(test_alpn_malformed),
                cmocka_unit_test(test_tls13),
                cmocka_unit_test(test_sni_names),
                cmocka_unit_test(test_sni_list_shapes),
                cmocka_unit_test(test_hostile_lengths),
                cmocka_unit_test(test_mutation_sweep),
                cmocka_unit_test(test_duplicate_extensions),
                cmocka_unit_test(test_pre_shared_key_last),
                cmocka_unit_test(test_hello_shapes),
                cmocka_unit_test(test_smallest_hello),
                cmocka_unit_test(test_not_handshake_first),
                cmocka_unit_test(test_interleaved_records),
                cmocka_unit_test(test_not_tls),
                cmocka_unit_test(test_record_versions),
                cmocka_unit_test(test_record_sizes),
                cmocka_unit_test(test_too_big),
                cmocka_unit_test(test_handshake_type),
                cmocka_unit_test(test_truncated),
                cmocka_unit_test(test_trailing_in_record),
                cmocka_unit_test(test_early_data_not_consumed),
                cmocka_unit_test(test_sticky_error),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
