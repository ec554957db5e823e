/* SPDX-License-Identifier: Apache-2.0 */
/* The _acme-challenge responder's parser and answer builder (acme/dns.c).
 * The whole input is first answered as it is (UDP, the usual zone), so a
 * raw captured query is a useful corpus file. Then the first byte steers:
 * bit 0 picks TCP, bits 1..2 the zone set (usual, many long TXT values,
 * none, SOA names that do not compress plus a second zone), and the rest
 * is the query. Every answer is checked without dns.c's code: its header
 * against the query, its sections walked with backward-only compression
 * pointers and exact counts, the question echoed byte for byte, the size
 * limits and the amplification bound, and the same bytes a second time. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "acme/dns.h"

#define CHECK(x)                                                                                   \
        do {                                                                                       \
                if (!(x))                                                                          \
                        abort();                                                                   \
        } while (0)

static struct acme_dns_zones *zones[4];
static uint8_t out_a[ACME_DNS_ANSWER_MAX], out_b[ACME_DNS_ANSWER_MAX];

static void setup(void)
{
        static const char *const ns[] = {"gw.example.com", "ns2.example.net"};
        static const char *const two[] = {"LoqXcYV8q5ONbJQxbmR7SCTNo3tiAXDfowyjxAjEuX0",
                                          "gfj9Xq-Rg85nMsMVbm2gc5Zh8GAgdzE8ZHkVw9QuwTw"};
        static char big[ACME_DNS_TXT_MAX][ACME_DNS_TXT_LEN_MAX + 1];
        static const char *bigp[ACME_DNS_TXT_MAX];
        struct acme_dns_zone z[2] = {{
                .apex = "_acme-challenge.gw.example.com",
                .ns = ns,
                .n_ns = 1,
                .soa = {.mname = "gw.example.com",
                        .rname = "hostmaster.gw.example.com",
                        .serial = 1,
                        .refresh = 3600,
                        .retry = 600,
                        .expire = 86400,
                        .minimum = 60},
                .ttl = 60,
                .txt = two,
                .n_txt = 2,
        }};

        for (size_t i = 0; i < ACME_DNS_TXT_MAX; i++) {
                memset(big[i], 'a' + (int)i, ACME_DNS_TXT_LEN_MAX);
                bigp[i] = big[i];
        }
        CHECK(acme_dns_zones_new(z, 1, &zones[0], NULL) == 0);
        z[0].txt = bigp;
        z[0].n_txt = ACME_DNS_TXT_MAX;
        CHECK(acme_dns_zones_new(z, 1, &zones[1], NULL) == 0);
        zones[2] = NULL;
        z[0].txt = two;
        z[0].n_txt = 2;
        z[0].ns = ns;
        z[0].n_ns = 2;
        z[0].soa.mname = "primary-name-server.dns-provider.example.net";
        z[0].soa.rname = "dns-administrator.dns-provider.example.net";
        z[1] = z[0];
        z[1].apex = "_acme-challenge.example.org";
        z[1].n_txt = 0;
        CHECK(acme_dns_zones_new(z, 2, &zones[3], NULL) == 0);
}

static uint16_t g16(const uint8_t *p)
{
        return (uint16_t)(p[0] << 8 | p[1]);
}

/* A name at @pos; returns the offset after it, 0 if malformed. */
static size_t skip_name(const uint8_t *m, size_t len, size_t pos)
{
        size_t after = 0, total = 0;

        for (unsigned hops = 0;;) {
                uint8_t l;

                CHECK(pos < len);
                l = m[pos];
                if ((l & 0xc0) == 0xc0) {
                        size_t to;

                        CHECK(pos + 1 < len && ++hops < 128);
                        to = (size_t)(l & 0x3f) << 8 | m[pos + 1];
                        CHECK(to < pos && to >= 12); /* backward, never into the header */
                        if (!after)
                                after = pos + 2;
                        pos = to;
                        continue;
                }
                CHECK((l & 0xc0) == 0);
                total += 1u + l;
                CHECK(total <= ACME_DNS_NAME_MAX);
                pos += 1u + l;
                if (l == 0)
                        break;
        }
        return after ? after : pos;
}

static void check(const uint8_t *q, size_t qlen, enum acme_dns_transport t, size_t cap,
                  const uint8_t *a, int r, const struct acme_dns_answer_info *info)
{
        uint16_t qd, an, ns, ar, flags;
        size_t pos = 12;
        bool opt = false;

        CHECK(r >= 0);
        if (r == 0) {
                CHECK(info->rcode == -1);
                return;
        }
        CHECK((size_t)r >= 12 && (size_t)r <= cap && qlen >= 12);
        flags = g16(a + 2);
        CHECK(g16(a) == g16(q));                           /* ID */
        CHECK(flags & 0x8000);                             /* QR */
        CHECK(!(g16(q + 2) & 0x8000));                     /* never answer a response */
        CHECK((flags & 0x7800) == (g16(q + 2) & 0x7800));  /* OPCODE */
        CHECK((flags & 0x0100) == (g16(q + 2) & 0x0100));  /* RD */
        CHECK(!(flags & 0x00e0));                          /* RA, Z, AD */
        CHECK((flags & 0x000f) == (info->rcode & 0x000f)); /* RCODE (low bits) */
        CHECK(!!(flags & 0x0200) == info->truncated);
        qd = g16(a + 4);
        an = g16(a + 6);
        ns = g16(a + 8);
        ar = g16(a + 10);
        CHECK(qd <= 1 && ar <= 1);
        if (info->truncated)
                CHECK(an == 0 && ns == 0);
        if (qd) {
                size_t end = skip_name(a, (size_t)r, pos);

                /* The question comes back byte for byte (case kept). */
                CHECK(end + 4 <= (size_t)r && end + 4 <= qlen);
                CHECK(memcmp(a + 12, q + 12, end + 4 - 12) == 0);
                CHECK(a[12 + 0] == 0 || (a[12] & 0xc0) == 0); /* never a pointer */
                pos = end + 4;
        }
        for (unsigned i = 0; i < (unsigned)an + ns + ar; i++) {
                uint16_t type, rdlen;

                pos = skip_name(a, (size_t)r, pos);
                CHECK(pos + 10 <= (size_t)r);
                type = g16(a + pos);
                rdlen = g16(a + pos + 8);
                if (type == 41) {
                        CHECK(i == (unsigned)an + ns && !opt);
                        CHECK(g16(a + pos + 2) == ACME_DNS_UDP_MAX && a[pos + 5] == 0);
                        CHECK(((unsigned)a[pos + 4] << 4 | (flags & 0xf)) == (unsigned)info->rcode);
                        opt = true;
                } else {
                        CHECK(g16(a + pos + 2) == 1); /* IN */
                        CHECK(a[pos + 4] < 0x80);     /* TTL <= 2^31 - 1 */
                }
                pos += 10u + rdlen;
                CHECK(pos <= (size_t)r);
        }
        CHECK(pos == (size_t)r);
        CHECK(opt == info->edns);
        if (info->rcode == ACME_DNS_RCODE_FORMERR || info->rcode == ACME_DNS_RCODE_NOTIMP)
                CHECK(r == 12);
        if (info->txt)
                CHECK(an > 0 && !info->truncated && info->rcode == 0);
        if (t == ACME_DNS_UDP) {
                CHECK((size_t)r <= ACME_DNS_UDP_MAX);
                if (!info->edns)
                        CHECK((size_t)r <= ACME_DNS_UDP_MIN);
                if (!info->txt)
                        CHECK((size_t)r <= qlen + ACME_DNS_AMP_SLACK);
                if (info->truncated || (info->rcode != ACME_DNS_RCODE_NOERROR &&
                                        info->rcode != ACME_DNS_RCODE_NXDOMAIN))
                        CHECK((size_t)r <= qlen);
        } else {
                CHECK(!info->truncated); /* ACME_DNS_ANSWER_MAX always suffices */
        }
}

static void run(const struct acme_dns_zones *z, const uint8_t *q, size_t len,
                enum acme_dns_transport t, size_t cap)
{
        struct acme_dns_answer_info ia, ib;
        int ra, rb;

        ra = acme_dns_answer(z, q, len, t, out_a, cap, &ia);
        check(q, len, t, cap, out_a, ra, &ia);
        rb = acme_dns_answer(z, q, len, t, out_b, cap, &ib);
        CHECK(ra == rb && memcmp(&ia, &ib, sizeof(ia)) == 0);
        CHECK(ra <= 0 || memcmp(out_a, out_b, (size_t)ra) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        static bool ready;
        uint8_t ctl;

        if (!ready) {
                setup();
                ready = true;
        }
        run(zones[0], data, size, ACME_DNS_UDP, ACME_DNS_UDP_MAX);
        if (size == 0)
                return 0;
        ctl = data[0];
        data++;
        size--;
        run(zones[(ctl >> 1) & 3], data, size, ctl & 1 ? ACME_DNS_TCP : ACME_DNS_UDP,
            ctl & 1 ? ACME_DNS_ANSWER_MAX : ACME_DNS_UDP_MAX);
        /* The smallest buffer a caller may give. */
        run(zones[(ctl >> 1) & 3], data, size, ACME_DNS_UDP, ACME_DNS_UDP_MIN);
        return 0;
}
