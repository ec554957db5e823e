/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* What the responder's tests share (test-dns.c, test-dns-server.c): a
 * query builder and a parser for answers that follows only backward
 * compression pointers and checks every count, written without dns.c's
 * code. Include after <cmocka.h>. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "common/macros.h"

#define T_A    1
#define T_NS   2
#define T_SOA  6
#define T_TXT  16
#define T_AAAA 28
#define T_OPT  41
#define T_DS   43
#define T_TSIG 250
#define T_IXFR 251
#define T_AXFR 252
#define T_ANY  255

/* ---- queries ---- */

struct qopt {
        uint16_t id;
        uint16_t flags; /* header flags word as sent */
        uint16_t qclass;
        bool edns;
        uint16_t edns_size;
        uint8_t edns_version;
        bool edns_do;
        const uint8_t *opts; /* EDNS options (raw) */
        size_t opts_len;
};

static inline size_t put_name(uint8_t *p, const char *name)
{
        size_t len = 0;

        while (*name) {
                const char *dot = strchr(name, '.');
                size_t l = dot ? (size_t)(dot - name) : strlen(name);

                p[len++] = (uint8_t)l;
                memcpy(p + len, name, l);
                len += l;
                name += l + (dot ? 1 : 0);
        }
        p[len++] = 0;
        return len;
}

static inline size_t query(uint8_t *p, const char *name, uint16_t qtype, const struct qopt *o)
{
        struct qopt d = {.id = 0x1234, .flags = 0x0100, .qclass = 1};
        size_t n = 12;

        if (!o)
                o = &d;
        memset(p, 0, 12);
        p[0] = (uint8_t)(o->id >> 8);
        p[1] = (uint8_t)o->id;
        p[2] = (uint8_t)(o->flags >> 8);
        p[3] = (uint8_t)o->flags;
        p[5] = 1;
        p[11] = o->edns ? 1 : 0;
        n += put_name(p + n, name);
        p[n++] = (uint8_t)(qtype >> 8);
        p[n++] = (uint8_t)qtype;
        p[n++] = (uint8_t)((o->qclass ? o->qclass : 1) >> 8);
        p[n++] = (uint8_t)(o->qclass ? o->qclass : 1);
        if (o->edns) {
                p[n++] = 0;
                p[n++] = 0;
                p[n++] = T_OPT;
                p[n++] = (uint8_t)(o->edns_size >> 8);
                p[n++] = (uint8_t)o->edns_size;
                p[n++] = 0;
                p[n++] = o->edns_version;
                p[n++] = o->edns_do ? 0x80 : 0;
                p[n++] = 0;
                p[n++] = (uint8_t)(o->opts_len >> 8);
                p[n++] = (uint8_t)o->opts_len;
                if (o->opts_len)
                        memcpy(p + n, o->opts, o->opts_len);
                n += o->opts_len;
        }
        return n;
}

/* ---- a checker for answers, independent of dns.c ---- */

struct rr {
        char owner[300];
        uint16_t type, class;
        uint32_t ttl;
        size_t rdata; /* offset */
        uint16_t rdlen;
};

struct parsed {
        uint16_t id, flags, qd, an, ns, ar;
        char qname[300];
        uint16_t qtype, qclass;
        struct rr rr[40];
        size_t n_rr;
};

static inline uint16_t g16(const uint8_t *p)
{
        return (uint16_t)(p[0] << 8 | p[1]);
}

/* A name at @pos, following only backward pointers; returns the offset
 * after it in the record, or 0 on error. */
static inline size_t get_name(const uint8_t *m, size_t len, size_t pos, char *out)
{
        size_t after = 0, o = 0, hops = 0;

        out[0] = 0;
        for (;;) {
                uint8_t l;

                if (pos >= len)
                        return 0;
                l = m[pos];
                if ((l & 0xc0) == 0xc0) {
                        size_t to;

                        if (pos + 1 >= len || ++hops > 20)
                                return 0;
                        to = (size_t)(l & 0x3f) << 8 | m[pos + 1];
                        if (to >= pos)
                                return 0;
                        if (!after)
                                after = pos + 2;
                        pos = to;
                        continue;
                }
                if (l & 0xc0)
                        return 0;
                pos++;
                if (l == 0)
                        break;
                if (pos + l > len || o + l + 2 > 290)
                        return 0;
                if (o)
                        out[o++] = '.';
                memcpy(out + o, m + pos, l);
                o += l;
                out[o] = 0;
                pos += l;
        }
        return after ? after : pos;
}

static inline void parse(const uint8_t *m, size_t len, struct parsed *p)
{
        size_t pos = 12;

        memset(p, 0, sizeof(*p));
        assert_true(len >= 12);
        p->id = g16(m);
        p->flags = g16(m + 2);
        p->qd = g16(m + 4);
        p->an = g16(m + 6);
        p->ns = g16(m + 8);
        p->ar = g16(m + 10);
        assert_true(p->flags & 0x8000);  /* QR */
        assert_false(p->flags & 0x0080); /* RA never */
        assert_false(p->flags & 0x0060); /* Z, AD never */
        assert_true(p->qd <= 1);
        if (p->qd) {
                pos = get_name(m, len, pos, p->qname);
                assert_true(pos && pos + 4 <= len);
                p->qtype = g16(m + pos);
                p->qclass = g16(m + pos + 2);
                pos += 4;
        }
        for (size_t i = 0; i < (size_t)p->an + p->ns + p->ar; i++) {
                struct rr *r = &p->rr[i];

                assert_true(i < ELEMENTSOF(p->rr));
                pos = get_name(m, len, pos, r->owner);
                assert_true(pos && pos + 10 <= len);
                r->type = g16(m + pos);
                r->class = g16(m + pos + 2);
                r->ttl = (uint32_t)g16(m + pos + 4) << 16 | g16(m + pos + 6);
                r->rdlen = g16(m + pos + 8);
                r->rdata = pos + 10;
                pos += 10 + r->rdlen;
                assert_true(pos <= len);
        }
        assert_int_equal(pos, len);
        p->n_rr = (size_t)p->an + p->ns + p->ar;
}

static inline int rcode_of(const struct parsed *p)
{
        int rc = p->flags & 0xf;

        for (size_t i = 0; i < p->n_rr; i++)
                if (p->rr[i].type == T_OPT)
                        rc |= (int)(p->rr[i].ttl >> 24) << 4;
        return rc;
}
