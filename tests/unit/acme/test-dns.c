/* SPDX-License-Identifier: Apache-2.0 */
/* acme/dns.c: zone checks, every answer branch, byte-exact answers, the
 * question's case kept (0x20), EDNS sizes and BADVERS, truncation, the UDP
 * amplification bound, and malformed queries (short header, long labels
 * and names, pointers and pointer loops, lying counts, trailing bytes). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "acme/dns.h"
#include "common/macros.h"
#include "dns-test.h"

#define APEX "_acme-challenge.gw.example.com"

static const char *const NS1[] = {"gw.example.com"};
static const char *const NS2[] = {"ns1.gw.example.com", "gw.example.com"};
static const char *const TXT2[] = {"gfj9Xq...Rg85nM",
                                   "LoqXcYV8q5ONbJQxbmR7SCTNo3tiAXDfowyjxAjEuX0"};

static struct acme_dns_zone base_zone(void)
{
        return (struct acme_dns_zone){
                .apex = APEX,
                .ns = NS1,
                .n_ns = 1,
                .soa = {.mname = "gw.example.com",
                        .rname = "hostmaster.gw.example.com",
                        .serial = 2026010101,
                        .refresh = 3600,
                        .retry = 600,
                        .expire = 86400,
                        .minimum = 30},
                .ttl = 60,
                .txt = TXT2,
                .n_txt = 2,
        };
}

static struct acme_dns_zones *zones_of(const struct acme_dns_zone *z, size_t n)
{
        struct acme_dns_zones *zs = NULL;
        char *err = NULL;
        int r = acme_dns_zones_new(z, n, &zs, &err);

        if (r < 0)
                fail_msg("zones_new: %d %s", r, strempty(err));
        return zs;
}

/* Answer @q over @t and check the result is a well-formed response to it. */
static int answer(const struct acme_dns_zones *zs, const uint8_t *q, size_t qlen,
                  enum acme_dns_transport t, uint8_t *out, struct parsed *p,
                  struct acme_dns_answer_info *info)
{
        int r = acme_dns_answer(zs, q, qlen, t, out, ACME_DNS_ANSWER_MAX, info);

        assert_true(r >= 0);
        if (r == 0) {
                assert_int_equal(info->rcode, -1);
                return 0;
        }
        parse(out, (size_t)r, p);
        assert_int_equal(p->id, g16(q));
        assert_int_equal(rcode_of(p), info->rcode);
        assert_int_equal(!!(p->flags & 0x0200), info->truncated);
        if (t == ACME_DNS_UDP) {
                assert_true((size_t)r <= ACME_DNS_UDP_MAX);
                if (!info->txt)
                        assert_true((size_t)r <= qlen + ACME_DNS_AMP_SLACK);
        }
        if (p->qd) /* the question comes back byte for byte */
                assert_memory_equal(out + 12, q + 12, strlen(p->qname) + 2 + 4);
        return r;
}

/* ---- zone checks ---- */

static void expect_zone_error(const struct acme_dns_zone *z, size_t n, const char *needle)
{
        struct acme_dns_zones *zs = (struct acme_dns_zones *)0x1;
        char *err = NULL;

        assert_int_equal(acme_dns_zones_new(z, n, &zs, &err), -EINVAL);
        assert_ptr_equal(zs, (struct acme_dns_zones *)0x1); /* not clobbered */
        assert_non_null(err);
        if (!strstr(err, needle))
                fail_msg("error '%s' lacks '%s'", err, needle);
        free(err);
}

static void test_zone_checks(void **state)
{
        static const char *const ns5[] = {"a.b", "a.b", "a.b", "a.b", "a.b"};
        static const char *const bad_ns[] = {"Gw.example.com"};
        static const char *txt17[17], *const null_txt[] = {NULL};
        char long_txt[257], label64[80], name254[310], name253[254];
        struct acme_dns_zone z[2];
        struct acme_dns_zones *zs = NULL;
        const char *t1[1];

        memset(long_txt, 'a', 256);
        long_txt[256] = 0;
        memset(label64, 'a', 64);
        strcpy(label64 + 64, ".example.com");
        /* 253 characters: 63.63.63.61 */
        memset(name253, 'a', 253);
        name253[63] = name253[127] = name253[191] = '.';
        name253[253] = 0;
        snprintf(name254, sizeof(name254), "b.%s", name253); /* 257 bytes on the wire */

        z[0] = base_zone();
        z[0].apex = "_ACME-challenge.gw.example.com";
        expect_zone_error(z, 1, "apex '_ACME-challenge.gw.example.com'");
        z[0].apex = APEX ".";
        expect_zone_error(z, 1, "apex");
        z[0].apex = "_acme-challenge..example.com";
        expect_zone_error(z, 1, "apex");
        z[0].apex = "";
        expect_zone_error(z, 1, "apex");
        z[0].apex = NULL;
        expect_zone_error(z, 1, "apex ''");
        z[0].apex = "a b.example.com";
        expect_zone_error(z, 1, "apex");
        z[0].apex = label64;
        expect_zone_error(z, 1, "apex");
        z[0].apex = name254;
        expect_zone_error(z, 1, "apex");
        z[0].apex = name253; /* 255 bytes on the wire: the longest name */
        zs = zones_of(z, 1);
        zs = acme_dns_zones_free(zs);
        assert_null(zs);

        z[0] = base_zone();
        z[0].n_ns = 0;
        expect_zone_error(z, 1, "0 NS names");
        z[0].ns = ns5;
        z[0].n_ns = 5;
        expect_zone_error(z, 1, "5 NS names");
        z[0].ns = bad_ns;
        z[0].n_ns = 1;
        expect_zone_error(z, 1, "NS 'Gw.example.com'");

        z[0] = base_zone();
        z[0].soa.mname = "gw.example.com.";
        expect_zone_error(z, 1, "SOA mname");
        z[0].soa.mname = "gw.example.com";
        z[0].soa.rname = "hostmaster@gw.example.com";
        expect_zone_error(z, 1, "SOA rname");

        z[0] = base_zone();
        z[0].ttl = ACME_DNS_TTL_MAX + 1u;
        expect_zone_error(z, 1, "TTL");
        z[0].ttl = 60;
        z[0].soa.minimum = 0xffffffffu;
        expect_zone_error(z, 1, "TTL");

        z[0] = base_zone();
        for (size_t i = 0; i < 17; i++)
                txt17[i] = "x";
        z[0].txt = txt17;
        z[0].n_txt = 17;
        expect_zone_error(z, 1, "17 TXT values");
        z[0].n_txt = 16;
        zs = zones_of(z, 1);
        acme_dns_zones_free(zs);
        t1[0] = long_txt;
        z[0].txt = t1;
        z[0].n_txt = 1;
        expect_zone_error(z, 1, "TXT value 0");
        long_txt[255] = 0; /* 255 bytes: the longest */
        zs = zones_of(z, 1);
        acme_dns_zones_free(zs);
        z[0].txt = null_txt;
        expect_zone_error(z, 1, "TXT value 0");

        z[0] = base_zone();
        z[1] = base_zone();
        expect_zone_error(z, 2, "given twice");
        expect_zone_error(z, ACME_DNS_ZONES_MAX + 1, "zones");

        /* No zones at all is valid: everything is refused. */
        zs = zones_of(NULL, 0);
        acme_dns_zones_free(zs);
        assert_null(acme_dns_zones_free(NULL));
}

/* ---- byte-exact answers ---- */

static void test_exact_txt(void **state)
{
        static const char *const abc[] = {"abc"};
        static const uint8_t want_tail[] = {
                0xc0, 0x0c, 0x00, 0x10, 0x00, 0x01, 0x00, 0x00,
                0x00, 0x3c, 0x00, 0x04, 0x03, 'a',  'b',  'c',
        };
        struct acme_dns_zone z = base_zone();
        _cleanup_(acme_dns_zones_freep) struct acme_dns_zones *zs = NULL;
        uint8_t q[512], out[ACME_DNS_ANSWER_MAX];
        struct qopt o = {.id = 0xbeef, .flags = 0x0100};
        struct acme_dns_answer_info info;
        size_t qlen;
        int r;

        z.txt = abc;
        z.n_txt = 1;
        zs = zones_of(&z, 1);
        qlen = query(q, "_ACME-challenge.Gw.example.COM", T_TXT, &o);
        r = acme_dns_answer(zs, q, qlen, ACME_DNS_UDP, out, sizeof(out), &info);
        assert_int_equal(r, (int)qlen + (int)sizeof(want_tail));
        /* ID, QR AA RD, 1 question, 1 answer. */
        assert_memory_equal(
                out, ((const uint8_t[]){0xbe, 0xef, 0x85, 0x00, 0, 1, 0, 1, 0, 0, 0, 0}), 12);
        assert_memory_equal(out + 12, q + 12, qlen - 12); /* case kept */
        assert_memory_equal(out + qlen, want_tail, sizeof(want_tail));
        assert_int_equal(info.rcode, ACME_DNS_RCODE_NOERROR);
        assert_true(info.txt);
        assert_false(info.truncated);
        assert_false(info.edns);
}

static void test_exact_nxdomain_edns(void **state)
{
        _cleanup_(acme_dns_zones_freep) struct acme_dns_zones *zs = NULL;
        struct acme_dns_zone z = base_zone();
        struct qopt o = {
                .id = 7, .flags = 0x0010, .edns = true, .edns_size = 4096, .edns_do = true};
        uint8_t q[512], out[ACME_DNS_ANSWER_MAX];
        struct acme_dns_answer_info info;
        size_t qlen;
        int r;
        /* qname "x._acme-challenge.gw.example.com" at 12: labels at 12 (x),
         * 14 (_acme-challenge), 30 (gw), 33 (example), 41 (com). */
        static const uint8_t want_tail[] = {
                /* SOA: owner -> 14, type, class, TTL min(60, 30), RDLENGTH 35 */
                0xc0, 0x0e, 0x00, 0x06, 0x00, 0x01, 0x00, 0x00, 0x00, 0x1e, 0x00, 0x23,
                /* mname -> 30; rname "hostmaster" -> 30 */
                0xc0, 0x1e, 0x0a, 'h', 'o', 's', 't', 'm', 'a', 's', 't', 'e', 'r', 0xc0, 0x1e,
                /* serial 2026010101, refresh 3600, retry 600, expire 86400, minimum 30 */
                0x78, 0xc2, 0x75, 0xf5, 0x00, 0x00, 0x0e, 0x10, 0x00, 0x00, 0x02, 0x58, 0x00, 0x01,
                0x51, 0x80, 0x00, 0x00, 0x00, 0x1e,
                /* OPT: root, 41, 1232, ext rcode 0, version 0, DO, no RDATA */
                0x00, 0x00, 0x29, 0x04, 0xd0, 0x00, 0x00, 0x80, 0x00, 0x00, 0x00};
        size_t qpart;

        zs = zones_of(&z, 1);
        qlen = query(q, "x._acme-challenge.gw.example.com", T_A, &o);
        qpart = qlen - 11; /* header and question */
        r = acme_dns_answer(zs, q, qlen, ACME_DNS_UDP, out, sizeof(out), &info);
        assert_int_equal(r, (int)(qpart + sizeof(want_tail)));
        /* QR AA CD NXDOMAIN, 1 question, 0 answers, 1 authority, 1 additional */
        assert_memory_equal(out, ((const uint8_t[]){0, 7, 0x84, 0x13, 0, 1, 0, 0, 0, 1, 0, 1}), 12);
        assert_memory_equal(out + 12, q + 12, qpart - 12);
        assert_memory_equal(out + qpart, want_tail, sizeof(want_tail));
        assert_int_equal(info.rcode, ACME_DNS_RCODE_NXDOMAIN);
        assert_true(info.edns);
}

static void test_exact_refusals(void **state)
{
        _cleanup_(acme_dns_zones_freep) struct acme_dns_zones *zs = NULL;
        struct acme_dns_zone z = base_zone();
        uint8_t q[512], out[ACME_DNS_ANSWER_MAX];
        struct acme_dns_answer_info info;
        struct qopt o = {.id = 0x0102, .flags = 0x0100};
        size_t qlen;
        int r;

        zs = zones_of(&z, 1);

        /* REFUSED: header, question echoed, nothing else, AA clear. */
        qlen = query(q, "example.org", T_A, &o);
        r = acme_dns_answer(zs, q, qlen, ACME_DNS_UDP, out, sizeof(out), &info);
        assert_int_equal(r, (int)qlen);
        assert_memory_equal(out, ((const uint8_t[]){1, 2, 0x81, 0x05, 0, 1, 0, 0, 0, 0, 0, 0}), 12);
        assert_memory_equal(out + 12, q + 12, qlen - 12);

        /* FORMERR: header only (two questions). */
        qlen = query(q, APEX, T_TXT, &o);
        q[5] = 2;
        r = acme_dns_answer(zs, q, qlen, ACME_DNS_UDP, out, sizeof(out), &info);
        assert_int_equal(r, 12);
        assert_memory_equal(out, ((const uint8_t[]){1, 2, 0x81, 0x01, 0, 0, 0, 0, 0, 0, 0, 0}), 12);
        assert_int_equal(info.rcode, ACME_DNS_RCODE_FORMERR);

        /* NOTIMP: NOTIFY (opcode 4), header only, opcode copied. */
        o.flags = 4 << 11;
        qlen = query(q, APEX, T_SOA, &o);
        r = acme_dns_answer(zs, q, qlen, ACME_DNS_UDP, out, sizeof(out), &info);
        assert_int_equal(r, 12);
        assert_memory_equal(out, ((const uint8_t[]){1, 2, 0xa0, 0x04, 0, 0, 0, 0, 0, 0, 0, 0}), 12);
        assert_int_equal(info.rcode, ACME_DNS_RCODE_NOTIMP);

        /* BADVERS: question, OPT with version 0 and extended RCODE 1. */
        o = (struct qopt){.id = 0x0102, .edns = true, .edns_size = 1232, .edns_version = 1};
        qlen = query(q, APEX, T_TXT, &o);
        r = acme_dns_answer(zs, q, qlen, ACME_DNS_UDP, out, sizeof(out), &info);
        assert_int_equal(r, (int)qlen);
        assert_memory_equal(out, ((const uint8_t[]){1, 2, 0x80, 0x00, 0, 1, 0, 0, 0, 0, 0, 1}), 12);
        assert_memory_equal(out + qlen - 11,
                            ((const uint8_t[]){0, 0, 41, 0x04, 0xd0, 1, 0, 0, 0, 0, 0}), 11);
        assert_int_equal(info.rcode, ACME_DNS_RCODE_BADVERS);
        assert_string_equal(acme_dns_rcode_str(info.rcode), "BADVERS");
}

/* ---- every branch ---- */

static void test_branches(void **state)
{
        _cleanup_(acme_dns_zones_freep) struct acme_dns_zones *zs = NULL;
        struct acme_dns_zone z = base_zone();
        uint8_t q[512], out[ACME_DNS_ANSWER_MAX];
        struct acme_dns_answer_info info;
        struct parsed p;
        size_t qlen;
        char buf[64];

        z.ns = NS2;
        z.n_ns = 2;
        zs = zones_of(&z, 1);

        /* TXT at the apex: both values, in order, AA, TTL 60. */
        qlen = query(q, APEX, T_TXT, NULL);
        answer(zs, q, qlen, ACME_DNS_UDP, out, &p, &info);
        assert_int_equal(info.rcode, 0);
        assert_true(p.flags & 0x0400);
        assert_true(p.flags & 0x0100); /* RD copied */
        assert_int_equal(p.an, 2);
        for (size_t i = 0; i < 2; i++) {
                assert_int_equal(p.rr[i].type, T_TXT);
                assert_int_equal(p.rr[i].ttl, 60);
                assert_string_equal(p.rr[i].owner, APEX);
                assert_int_equal(out[p.rr[i].rdata], strlen(TXT2[i]));
                assert_memory_equal(out + p.rr[i].rdata + 1, TXT2[i], strlen(TXT2[i]));
        }

        /* SOA and ANY at the apex: the SOA, TTL 60. */
        for (int i = 0; i < 2; i++) {
                qlen = query(q, APEX, i ? T_ANY : T_SOA, NULL);
                answer(zs, q, qlen, ACME_DNS_UDP, out, &p, &info);
                assert_int_equal(info.rcode, 0);
                assert_int_equal(p.an, 1);
                assert_int_equal(p.ns, 0);
                assert_int_equal(p.rr[0].type, T_SOA);
                assert_int_equal(p.rr[0].ttl, 60);
                assert_true(p.flags & 0x0400);
                get_name(out, sizeof(out), p.rr[0].rdata, buf);
                assert_string_equal(buf, "gw.example.com");
        }

        /* NS at the apex: both names. */
        qlen = query(q, APEX, T_NS, NULL);
        answer(zs, q, qlen, ACME_DNS_UDP, out, &p, &info);
        assert_int_equal(p.an, 2);
        for (size_t i = 0; i < 2; i++) {
                assert_int_equal(p.rr[i].type, T_NS);
                get_name(out, sizeof(out), p.rr[i].rdata, buf);
                assert_string_equal(buf, NS2[i]);
        }

        /* Other types at the apex: NODATA, AA, SOA in authority with the
         * negative TTL min(60, 30). */
        static const uint16_t others[] = {T_A, T_AAAA, T_DS, 99, 65535, 253, 254};
        for (size_t i = 0; i < ELEMENTSOF(others); i++) {
                qlen = query(q, APEX, others[i], NULL);
                answer(zs, q, qlen, ACME_DNS_UDP, out, &p, &info);
                assert_int_equal(info.rcode, 0);
                assert_true(p.flags & 0x0400);
                assert_int_equal(p.an, 0);
                assert_int_equal(p.ns, 1);
                assert_int_equal(p.rr[0].type, T_SOA);
                assert_int_equal(p.rr[0].ttl, 30);
                assert_string_equal(p.rr[0].owner, APEX);
        }

        /* Below the apex: NXDOMAIN, AA, SOA, for any type. */
        static const char *const below[] = {"x." APEX, "a.b.c." APEX, "*." APEX,
                                            "_acme-challenge." APEX};
        for (size_t i = 0; i < ELEMENTSOF(below); i++) {
                qlen = query(q, below[i], i % 2 ? T_TXT : T_A, NULL);
                answer(zs, q, qlen, ACME_DNS_UDP, out, &p, &info);
                assert_int_equal(info.rcode, ACME_DNS_RCODE_NXDOMAIN);
                assert_true(p.flags & 0x0400);
                assert_int_equal(p.an, 0);
                assert_int_equal(p.ns, 1);
                assert_string_equal(p.rr[0].owner, APEX);
                assert_int_equal(p.rr[0].ttl, 30);
        }

        /* Outside every zone, transfers, other classes: REFUSED, no AA. */
        static const char *const outside[] = {"gw.example.com",
                                              "example.com",
                                              "x_acme-challenge.gw.example.com",
                                              "_acme-challenge.gw.example.co",
                                              "_acme-challenge.gw.example.com.evil",
                                              "com",
                                              ""};
        for (size_t i = 0; i < ELEMENTSOF(outside); i++) {
                qlen = query(q, outside[i], T_TXT, NULL);
                answer(zs, q, qlen, ACME_DNS_UDP, out, &p, &info);
                assert_int_equal(info.rcode, ACME_DNS_RCODE_REFUSED);
                assert_false(p.flags & 0x0400);
                assert_int_equal(p.n_rr, 0);
                assert_int_equal(
                        acme_dns_answer(zs, q, qlen, ACME_DNS_UDP, out, sizeof(out), &info),
                        (int)qlen);
        }
        for (int i = 0; i < 2; i++) {
                qlen = query(q, APEX, i ? T_IXFR : T_AXFR, NULL);
                answer(zs, q, qlen, ACME_DNS_TCP, out, &p, &info);
                assert_int_equal(info.rcode, ACME_DNS_RCODE_REFUSED);
        }
        static const uint16_t classes[] = {3 /* CH */, 4 /* HS */, 254, 255, 0};
        for (size_t i = 0; i < ELEMENTSOF(classes); i++) {
                struct qopt o = {.id = 9, .qclass = classes[i]};

                if (!classes[i]) {
                        qlen = query(q, APEX, T_TXT, NULL);
                        q[qlen - 1] = 0; /* class 0 */
                } else {
                        qlen = query(q, i == 0 ? "version.bind" : APEX, T_TXT, &o);
                }
                answer(zs, q, qlen, ACME_DNS_UDP, out, &p, &info);
                assert_int_equal(info.rcode, ACME_DNS_RCODE_REFUSED);
                assert_int_equal(p.n_rr, 0);
        }

        /* Meta types that are no QTYPE: FORMERR. */
        static const uint16_t meta[] = {0, T_OPT, 249, T_TSIG};
        for (size_t i = 0; i < ELEMENTSOF(meta); i++) {
                qlen = query(q, APEX, meta[i], NULL);
                answer(zs, q, qlen, ACME_DNS_UDP, out, &p, &info);
                assert_int_equal(info.rcode, ACME_DNS_RCODE_FORMERR);
                assert_int_equal(p.qd, 0);
        }

        /* No zones: everything is refused. */
        qlen = query(q, APEX, T_TXT, NULL);
        answer(NULL, q, qlen, ACME_DNS_UDP, out, &p, &info);
        assert_int_equal(info.rcode, ACME_DNS_RCODE_REFUSED);
}

static void test_txt_none(void **state)
{
        _cleanup_(acme_dns_zones_freep) struct acme_dns_zones *zs = NULL;
        struct acme_dns_zone z = base_zone();
        uint8_t q[512], out[ACME_DNS_ANSWER_MAX];
        struct acme_dns_answer_info info;
        struct parsed p;
        size_t qlen;

        z.n_txt = 0;
        z.txt = NULL;
        zs = zones_of(&z, 1);
        qlen = query(q, APEX, T_TXT, NULL);
        answer(zs, q, qlen, ACME_DNS_UDP, out, &p, &info);
        assert_int_equal(info.rcode, 0);
        assert_false(info.txt);
        assert_int_equal(p.an, 0);
        assert_int_equal(p.ns, 1);
        assert_int_equal(p.rr[0].type, T_SOA);
}

static void test_case_preserved(void **state)
{
        _cleanup_(acme_dns_zones_freep) struct acme_dns_zones *zs = NULL;
        struct acme_dns_zone z = base_zone();
        uint8_t q[512], out[ACME_DNS_ANSWER_MAX];
        struct acme_dns_answer_info info;
        struct parsed p;
        size_t qlen;
        static const char *const names[] = {"_AcMe-ChAlLeNgE.gW.eXaMpLe.CoM",
                                            "X.Y._ACME-CHALLENGE.GW.EXAMPLE.COM"};
        static const uint16_t types[] = {T_TXT, T_SOA, T_NS, T_A};

        zs = zones_of(&z, 1);
        for (size_t i = 0; i < ELEMENTSOF(names); i++)
                for (size_t k = 0; k < ELEMENTSOF(types); k++) {
                        qlen = query(q, names[i], types[k], NULL);
                        answer(zs, q, qlen, ACME_DNS_UDP, out, &p, &info);
                        assert_string_equal(p.qname, names[i]);
                        assert_int_equal(info.rcode, i ? ACME_DNS_RCODE_NXDOMAIN : 0);
                        /* Owners point into the question, in its case. */
                        assert_true(strcasecmp(p.rr[0].owner, APEX) == 0);
                        assert_true(strstr(names[i], p.rr[0].owner) != NULL);
                }
}

static void test_zones_longest_match(void **state)
{
        _cleanup_(acme_dns_zones_freep) struct acme_dns_zones *zs = NULL;
        static const char *const v1[] = {"one"}, *const v2[] = {"two"};
        struct acme_dns_zone z[3];
        uint8_t q[512], out[ACME_DNS_ANSWER_MAX];
        struct acme_dns_answer_info info;
        struct parsed p;
        size_t qlen;

        z[0] = base_zone();
        z[0].apex = "_acme-challenge.example.com";
        z[0].txt = v1;
        z[0].n_txt = 1;
        z[1] = base_zone();
        z[1].apex = "_acme-challenge.a._acme-challenge.example.com";
        z[1].txt = v2;
        z[1].n_txt = 1;
        z[2] = base_zone();
        z[2].apex = "_acme-challenge.other.net";
        zs = zones_of(z, 3);

        qlen = query(q, "_acme-challenge.example.com", T_TXT, NULL);
        answer(zs, q, qlen, ACME_DNS_UDP, out, &p, &info);
        assert_int_equal(p.an, 1);
        assert_memory_equal(out + p.rr[0].rdata, "\3one", 4);

        qlen = query(q, "_acme-challenge.a._acme-challenge.example.com", T_TXT, NULL);
        answer(zs, q, qlen, ACME_DNS_UDP, out, &p, &info);
        assert_int_equal(p.an, 1);
        assert_memory_equal(out + p.rr[0].rdata, "\3two", 4);

        /* Between the two: below the shorter apex. */
        qlen = query(q, "a._acme-challenge.example.com", T_TXT, NULL);
        answer(zs, q, qlen, ACME_DNS_UDP, out, &p, &info);
        assert_int_equal(info.rcode, ACME_DNS_RCODE_NXDOMAIN);
        assert_string_equal(p.rr[0].owner, "_acme-challenge.example.com");

        qlen = query(q, "_acme-challenge.other.net", T_TXT, NULL);
        answer(zs, q, qlen, ACME_DNS_UDP, out, &p, &info);
        assert_int_equal(info.rcode, 0);
        assert_int_equal(p.an, 2);
}

/* ---- sizes ---- */

/* A zone with 16 values of 200 bytes: 3.4 kB of TXT. */
static struct acme_dns_zones *big_zone(void)
{
        static char vals[16][201];
        static const char *ptrs[16];
        struct acme_dns_zone z = base_zone();

        for (size_t i = 0; i < 16; i++) {
                memset(vals[i], 'a' + (int)i, 200);
                vals[i][200] = 0;
                ptrs[i] = vals[i];
        }
        z.txt = ptrs;
        z.n_txt = 16;
        return zones_of(&z, 1);
}

static void test_udp_sizes(void **state)
{
        _cleanup_(acme_dns_zones_freep) struct acme_dns_zones *zs = big_zone();
        uint8_t q[512], out[ACME_DNS_ANSWER_MAX];
        struct acme_dns_answer_info info;
        struct parsed p;
        size_t qlen;
        int r;

        /* Without EDNS: 512 at most, so TC with the question only. */
        qlen = query(q, APEX, T_TXT, NULL);
        r = answer(zs, q, qlen, ACME_DNS_UDP, out, &p, &info);
        assert_true(info.truncated);
        assert_false(info.txt);
        assert_int_equal(r, (int)qlen);
        assert_int_equal(p.an + p.ns + p.ar, 0);
        assert_true(p.flags & 0x0400); /* still authoritative */

        /* Over TCP: everything (16 × 213 bytes). */
        r = answer(zs, q, qlen, ACME_DNS_TCP, out, &p, &info);
        assert_false(info.truncated);
        assert_int_equal(p.an, 16);
        assert_true(r > 3400);

        /* EDNS sizes: below 512 counts as 512; 4096 is capped at 1232;
         * truncation keeps the OPT. */
        static const uint16_t sizes[] = {0, 100, 512, 1000, 1232, 1500, 4096, 65535};
        for (size_t i = 0; i < ELEMENTSOF(sizes); i++) {
                struct qopt o = {.id = 1, .edns = true, .edns_size = sizes[i]};

                qlen = query(q, APEX, T_TXT, &o);
                r = answer(zs, q, qlen, ACME_DNS_UDP, out, &p, &info);
                assert_true(info.truncated);
                assert_int_equal(r, (int)qlen);
                assert_int_equal(p.ar, 1);
                assert_int_equal(p.rr[0].type, T_OPT);
                assert_int_equal(p.rr[0].class, ACME_DNS_UDP_MAX);
        }
        assert_int_equal(acme_dns_answer(zs, q, qlen, ACME_DNS_UDP, out, 511, &info), -EINVAL);
}

static void test_udp_size_edges(void **state)
{
        static char vals[4][201];
        static const char *ptrs[4];
        struct acme_dns_zone z = base_zone();
        _cleanup_(acme_dns_zones_freep) struct acme_dns_zones *zs = NULL;
        uint8_t q[512], out[ACME_DNS_ANSWER_MAX];
        struct acme_dns_answer_info info;
        struct parsed p;
        size_t qlen;
        int r;

        for (size_t i = 0; i < 4; i++) {
                memset(vals[i], 'A' + (int)i, 200);
                ptrs[i] = vals[i];
        }
        z.txt = ptrs;
        z.n_txt = 2;
        zs = zones_of(&z, 1);

        /* Two values of 200: 12 + 36 + 2 × 213 = 474 bytes: fits 512. */
        qlen = query(q, APEX, T_TXT, NULL);
        r = answer(zs, q, qlen, ACME_DNS_UDP, out, &p, &info);
        assert_int_equal(r, 474);
        assert_false(info.truncated);
        assert_true(info.txt);

        /* Four: 900 bytes, so TC without EDNS (512); with EDNS 900 + 11
         * (OPT) needs an advertised 911. */
        acme_dns_zones_free(zs);
        z.n_txt = 4;
        zs = zones_of(&z, 1);
        r = answer(zs, q, qlen, ACME_DNS_UDP, out, &p, &info);
        assert_true(info.truncated);
        for (uint16_t sz = 908; sz <= 912; sz++) {
                struct qopt o = {.id = 1, .edns = true, .edns_size = sz};

                qlen = query(q, APEX, T_TXT, &o);
                r = answer(zs, q, qlen, ACME_DNS_UDP, out, &p, &info);
                assert_int_equal(info.truncated, sz < 911);
                if (!info.truncated) {
                        assert_int_equal(r, 911);
                        assert_int_equal(p.an, 4);
                }
        }
}

/* Every kind of answer but the positive TXT one stays within the query's
 * size + ACME_DNS_AMP_SLACK over UDP; refusals are no larger than the
 * query. */
static void test_amplification_bound(void **state)
{
        _cleanup_(acme_dns_zones_freep) struct acme_dns_zones *zs = NULL;
        struct acme_dns_zone z = base_zone();
        uint8_t q[600], out[ACME_DNS_ANSWER_MAX];
        struct acme_dns_answer_info info;
        struct parsed p;
        static const char *const names[] = {
                APEX, "a." APEX, "q.w.e.r.t.y." APEX, "example.org", "_acme-challenge.gw.example",
                "."};
        static const uint16_t types[] = {T_A,    T_NS,   T_SOA, T_TXT, T_AAAA, T_DS,
                                         T_AXFR, T_IXFR, T_ANY, 0,     T_OPT,  12345};
        size_t worst = 0;

        z.ns = NS2;
        z.n_ns = 2;
        zs = zones_of(&z, 1);
        for (size_t e = 0; e < 3; e++)
                for (size_t i = 0; i < ELEMENTSOF(names); i++)
                        for (size_t k = 0; k < ELEMENTSOF(types); k++) {
                                struct qopt o = {.id = 5,
                                                 .edns = e > 0,
                                                 .edns_size = 4096,
                                                 .edns_version = e == 2};
                                size_t qlen = query(q, streq(names[i], ".") ? "" : names[i],
                                                    types[k], &o);
                                int r = answer(zs, q, qlen, ACME_DNS_UDP, out, &p, &info);

                                assert_true(r > 0);
                                /* The typical zone never needs to truncate. */
                                assert_false(info.truncated);
                                if (info.txt)
                                        continue;
                                assert_true((size_t)r <= qlen + ACME_DNS_AMP_SLACK);
                                if (info.rcode != 0 && info.rcode != ACME_DNS_RCODE_NXDOMAIN)
                                        assert_true((size_t)r <= qlen);
                                worst = MAX(worst, (size_t)r - MIN((size_t)r, qlen));
                        }
        print_message("# largest non-TXT UDP answer growth: %zu bytes (bound %u)\n", worst,
                      ACME_DNS_AMP_SLACK);
        assert_true(worst > 0);
}

/* A zone whose SOA names compress against nothing: its negative answers
 * would grow by more than the slack, so over UDP they are truncated. */
static void test_amplification_truncates(void **state)
{
        _cleanup_(acme_dns_zones_freep) struct acme_dns_zones *zs = NULL;
        struct acme_dns_zone z = base_zone();
        uint8_t q[512], out[ACME_DNS_ANSWER_MAX];
        struct acme_dns_answer_info info;
        struct parsed p;
        size_t qlen;
        int r;

        z.soa.mname = "a-rather-long-primary-name-server.some-dns-provider.example.net";
        z.soa.rname = "dns-administrator.some-dns-provider.example.net";
        zs = zones_of(&z, 1);
        qlen = query(q, APEX, T_A, NULL);
        r = answer(zs, q, qlen, ACME_DNS_UDP, out, &p, &info);
        assert_true(info.truncated);
        assert_int_equal(r, (int)qlen);
        r = answer(zs, q, qlen, ACME_DNS_TCP, out, &p, &info);
        assert_false(info.truncated);
        assert_true((size_t)r > qlen + ACME_DNS_AMP_SLACK);
        assert_int_equal(p.ns, 1);
        /* The TXT answer is exempt. */
        qlen = query(q, APEX, T_TXT, NULL);
        answer(zs, q, qlen, ACME_DNS_UDP, out, &p, &info);
        assert_false(info.truncated);
        assert_int_equal(p.an, 2);
}

/* ---- EDNS ---- */

static void test_edns(void **state)
{
        _cleanup_(acme_dns_zones_freep) struct acme_dns_zones *zs = NULL;
        struct acme_dns_zone z = base_zone();
        uint8_t q[600], out[ACME_DNS_ANSWER_MAX];
        struct acme_dns_answer_info info;
        struct parsed p;
        size_t qlen;
        /* COOKIE (10) with a client cookie, ECS (8), padding (12). */
        static const uint8_t opts[] = {0, 10, 0, 8, 1, 2, 3, 4,  5, 6, 7, 8, 0, 8,
                                       0, 4,  0, 1, 0, 0, 0, 12, 0, 3, 0, 0, 0};
        struct qopt o = {
                .id = 3, .edns = true, .edns_size = 1232, .opts = opts, .opts_len = sizeof(opts)};

        zs = zones_of(&z, 1);
        qlen = query(q, APEX, T_TXT, &o);
        answer(zs, q, qlen, ACME_DNS_UDP, out, &p, &info);
        assert_int_equal(info.rcode, 0);
        assert_int_equal(p.ar, 1);
        assert_int_equal(p.rr[2].type, T_OPT);
        assert_int_equal(p.rr[2].rdlen, 0); /* options not echoed */
        assert_int_equal(p.rr[2].ttl, 0);   /* DO clear as in the query */

        o.edns_do = true;
        qlen = query(q, APEX, T_SOA, &o);
        answer(zs, q, qlen, ACME_DNS_UDP, out, &p, &info);
        assert_int_equal(p.rr[1].ttl, 0x8000);

        /* Options overrunning the RDATA, or a truncated option header. */
        o.opts_len = sizeof(opts) - 1;
        qlen = query(q, APEX, T_TXT, &o);
        answer(zs, q, qlen, ACME_DNS_UDP, out, &p, &info);
        assert_int_equal(info.rcode, ACME_DNS_RCODE_FORMERR);
        assert_int_equal(p.ar, 0); /* no OPT in a FORMERR */
        o.opts_len = 2;
        qlen = query(q, APEX, T_TXT, &o);
        answer(zs, q, qlen, ACME_DNS_UDP, out, &p, &info);
        assert_int_equal(info.rcode, ACME_DNS_RCODE_FORMERR);

        /* RDLENGTH beyond the message. */
        o.opts_len = 0;
        qlen = query(q, APEX, T_TXT, &o);
        q[qlen - 1] = 4;
        answer(zs, q, qlen, ACME_DNS_UDP, out, &p, &info);
        assert_int_equal(info.rcode, ACME_DNS_RCODE_FORMERR);

        /* Two OPTs. */
        qlen = query(q, APEX, T_TXT, &o);
        memcpy(q + qlen, q + qlen - 11, 11);
        qlen += 11;
        q[11] = 2;
        answer(zs, q, qlen, ACME_DNS_UDP, out, &p, &info);
        assert_int_equal(info.rcode, ACME_DNS_RCODE_FORMERR);

        /* An OPT whose owner is not the root. */
        qlen = query(q, APEX, T_TXT, NULL);
        q[11] = 1;
        memcpy(q + qlen, "\1a\0\0\51\4\320\0\0\0\0\0\0", 13);
        answer(zs, q, qlen + 13, ACME_DNS_UDP, out, &p, &info);
        assert_int_equal(info.rcode, ACME_DNS_RCODE_FORMERR);

        /* An owner byte that is not the root but looks like one label
         * short of an OPT. */
        qlen = query(q, APEX, T_TXT, NULL);
        q[11] = 1;
        memcpy(q + qlen, "\5\0\51\4\320\0\0\0\0\0\0", 11);
        answer(zs, q, qlen + 11, ACME_DNS_UDP, out, &p, &info);
        assert_int_equal(info.rcode, ACME_DNS_RCODE_FORMERR);

        /* A TSIG-like additional record (root owner, type 250). */
        qlen = query(q, APEX, T_TXT, NULL);
        q[11] = 1;
        memcpy(q + qlen, "\0\0\372\0\377\0\0\0\0\0\0", 11);
        answer(zs, q, qlen + 11, ACME_DNS_UDP, out, &p, &info);
        assert_int_equal(info.rcode, ACME_DNS_RCODE_FORMERR);

        /* Version 1 with DO: BADVERS keeps DO. */
        o = (struct qopt){
                .id = 3, .edns = true, .edns_size = 512, .edns_version = 1, .edns_do = true};
        qlen = query(q, "example.org", T_TXT, &o);
        answer(zs, q, qlen, ACME_DNS_UDP, out, &p, &info);
        assert_int_equal(info.rcode, ACME_DNS_RCODE_BADVERS);
        assert_int_equal(p.rr[0].ttl, 0x01008000);
}

/* ---- malformed queries ---- */

static void expect(const struct acme_dns_zones *zs, const uint8_t *q, size_t len, int rcode)
{
        uint8_t out[ACME_DNS_ANSWER_MAX];
        struct acme_dns_answer_info info;
        struct parsed p;
        int r = answer(zs, q, len, ACME_DNS_UDP, out, &p, &info);

        assert_int_equal(info.rcode, rcode);
        if (rcode < 0)
                assert_int_equal(r, 0);
        if (rcode == ACME_DNS_RCODE_FORMERR || rcode == ACME_DNS_RCODE_NOTIMP)
                assert_int_equal(r, 12);
        /* The same over TCP. */
        assert_int_equal(acme_dns_answer(zs, q, len, ACME_DNS_TCP, out, sizeof(out), &info), r);
}

static void test_malformed(void **state)
{
        _cleanup_(acme_dns_zones_freep) struct acme_dns_zones *zs = NULL;
        struct acme_dns_zone z = base_zone();
        uint8_t q[2048];
        char name[400];
        size_t qlen;

        zs = zones_of(&z, 1);

        /* Short header, and every prefix of a good query. */
        qlen = query(q, APEX, T_TXT, NULL);
        for (size_t n = 0; n < 12; n++)
                expect(zs, q, n, -1);
        for (size_t n = 12; n < qlen; n++)
                expect(zs, q, n, ACME_DNS_RCODE_FORMERR);
        expect(zs, q, qlen, 0);

        /* Trailing garbage. */
        q[qlen] = 0;
        expect(zs, q, qlen + 1, ACME_DNS_RCODE_FORMERR);

        /* A response (QR=1) is never answered, whatever it holds. */
        q[2] |= 0x80;
        expect(zs, q, qlen, -1);
        q[2] &= 0x7f;

        /* TC or RCODE set in a query. */
        q[2] |= 0x02;
        expect(zs, q, qlen, ACME_DNS_RCODE_FORMERR);
        q[2] &= (uint8_t)~0x02;
        q[3] |= 0x03;
        expect(zs, q, qlen, ACME_DNS_RCODE_FORMERR);
        q[3] &= 0xf0;
        /* Z, AA and RA in a query are ignored. */
        q[3] |= 0xc0;
        q[2] |= 0x04;
        expect(zs, q, qlen, 0);
        q[3] &= 0x0f;
        q[2] &= (uint8_t)~0x04;

        /* Counts that lie: QDCOUNT 0 or 2, ANCOUNT or NSCOUNT set, an
         * ARCOUNT with nothing behind it. */
        q[5] = 0;
        expect(zs, q, qlen, ACME_DNS_RCODE_FORMERR);
        q[5] = 2;
        expect(zs, q, qlen, ACME_DNS_RCODE_FORMERR);
        q[5] = 1;
        q[7] = 1;
        expect(zs, q, qlen, ACME_DNS_RCODE_FORMERR);
        q[7] = 0;
        q[9] = 1;
        expect(zs, q, qlen, ACME_DNS_RCODE_FORMERR);
        q[9] = 0;
        q[11] = 1;
        expect(zs, q, qlen, ACME_DNS_RCODE_FORMERR);
        q[10] = 0xff;
        expect(zs, q, qlen, ACME_DNS_RCODE_FORMERR);
        q[10] = q[11] = 0;

        /* Every opcode but QUERY: NOTIMP, even when the rest is garbage. */
        for (unsigned op = 1; op < 16; op++) {
                q[2] = (uint8_t)(op << 3);
                expect(zs, q, qlen, ACME_DNS_RCODE_NOTIMP);
                expect(zs, q, 12, ACME_DNS_RCODE_NOTIMP);
        }
        q[2] = 0x01;

        /* A label of 64 bytes (0x40 is also an extended label type), of
         * 0x80 (reserved) and a compression pointer in the question. */
        memset(name, 'a', 64);
        name[64] = 0;
        qlen = query(q, name, T_TXT, NULL);
        expect(zs, q, qlen, ACME_DNS_RCODE_FORMERR);
        name[63] = 0; /* 63 is fine: outside the zone */
        qlen = query(q, name, T_TXT, NULL);
        expect(zs, q, qlen, ACME_DNS_RCODE_REFUSED);
        q[12] = 0x80;
        expect(zs, q, qlen, ACME_DNS_RCODE_FORMERR);

        /* Pointers: to the header, to itself (a loop), forward, and
         * after a label. */
        static const uint8_t ptrs[][6] = {
                {0xc0, 0x00, 0, 16, 0, 1},
                {0xc0, 0x0c, 0, 16, 0, 1},
                {0xc0, 0x0e, 0, 16, 0, 1},
                {0x01, 'a', 0xc0, 0x0c, 0, 16},
        };
        for (size_t i = 0; i < ELEMENTSOF(ptrs); i++) {
                qlen = query(q, "", T_TXT, NULL);
                memcpy(q + 12, ptrs[i], 6);
                qlen = 18 + (i == 3 ? 2 : 0);
                if (i == 3)
                        memcpy(q + 18, "\0\1", 2);
                expect(zs, q, qlen, ACME_DNS_RCODE_FORMERR);
        }

        /* Names of 255 bytes (the longest) and 256 on the wire: four
         * labels of 63 and one of 2 or 3 ("." + 3 labels of 63 = 192+). */
        memset(name, 'b', sizeof(name));
        name[63] = name[127] = name[191] = '.';
        name[253] = 0; /* 63.63.63.61: 255 bytes on the wire */
        qlen = query(q, name, T_TXT, NULL);
        expect(zs, q, qlen, ACME_DNS_RCODE_REFUSED);
        name[253] = 'b';
        name[254] = 0; /* 63.63.63.62: 256 bytes */
        qlen = query(q, name, T_TXT, NULL);
        expect(zs, q, qlen, ACME_DNS_RCODE_FORMERR);
        /* A long name made of many short labels. */
        for (size_t i = 0; i < 300; i += 2) {
                name[i] = 'c';
                name[i + 1] = '.';
        }
        name[299] = 0;
        qlen = query(q, name, T_TXT, NULL);
        expect(zs, q, qlen, ACME_DNS_RCODE_FORMERR);

        /* A name that runs off the end of the message. */
        qlen = query(q, APEX, T_TXT, NULL);
        expect(zs, q, 12 + 10, ACME_DNS_RCODE_FORMERR);

        /* Longer than ACME_DNS_QUERY_MAX: dropped, whatever it is. */
        {
                struct qopt o = {.id = 1, .edns = true, .edns_size = 1232};
                uint8_t pad[1300] = {0, 12};

                pad[2] = (uint8_t)((1232 - 4) >> 8);
                pad[3] = (uint8_t)(1232 - 4);
                o.opts = pad;
                o.opts_len = 1232;
                qlen = query(q, APEX, T_TXT, &o);
                assert_true(qlen > ACME_DNS_QUERY_MAX);
                expect(zs, q, qlen, -1);
                o.opts_len = 1232 - (qlen - ACME_DNS_QUERY_MAX);
                pad[2] = (uint8_t)((o.opts_len - 4) >> 8);
                pad[3] = (uint8_t)(o.opts_len - 4);
                qlen = query(q, APEX, T_TXT, &o);
                assert_int_equal(qlen, ACME_DNS_QUERY_MAX);
                expect(zs, q, qlen, 0);
        }
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_zone_checks),
                cmocka_unit_test(test_exact_txt),
                cmocka_unit_test(test_exact_nxdomain_edns),
                cmocka_unit_test(test_exact_refusals),
                cmocka_unit_test(test_branches),
                cmocka_unit_test(test_txt_none),
                cmocka_unit_test(test_case_preserved),
                cmocka_unit_test(test_zones_longest_match),
                cmocka_unit_test(test_udp_sizes),
                cmocka_unit_test(test_udp_size_edges),
                cmocka_unit_test(test_amplification_bound),
                cmocka_unit_test(test_amplification_truncates),
                cmocka_unit_test(test_edns),
                cmocka_unit_test(test_malformed),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
