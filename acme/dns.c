/* SPDX-License-Identifier: Apache-2.0 */
/* The _acme-challenge responder's parser and answer builder (acme/dns.h). */
#include "acme/dns.h"

#include <assert.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/macros.h"
#include "common/siphash.h"

#define TYPE_NS    2u
#define TYPE_SOA   6u
#define TYPE_TXT   16u
#define TYPE_OPT   41u
#define TYPE_TKEY  249u
#define TYPE_TSIG  250u
#define TYPE_IXFR  251u
#define TYPE_AXFR  252u
#define TYPE_ANY   255u
#define CLASS_IN   1u
#define OPT_LEN    11u /* root owner, type, class, TTL, RDLENGTH 0 */
#define RR_FIXED   10u /* type, class, TTL, RDLENGTH */
#define PTR_LEN    2u
#define SOA_FIXED  20u /* serial, refresh, retry, expire, minimum */
#define OPCODE_MAX 15u

/* Header flag bits (RFC 1035 §4.1.1, RFC 2535 §6.1 for AD/CD). */
#define F_QR     0x8000u
#define F_OPCODE 0x7800u
#define F_AA     0x0400u
#define F_TC     0x0200u
#define F_RD     0x0100u
#define F_CD     0x0010u
#define F_RCODE  0x000fu
#define EDNS_DO  0x8000u

/* The TCP length prefix is 16 bits (RFC 1035 §4.2.2). */
_Static_assert(ACME_DNS_ANSWER_MAX <= 65535, "answers must fit a TCP message");

struct zone {
        uint8_t apex[ACME_DNS_NAME_MAX]; /* wire form, lower-case */
        size_t apex_len;
        uint32_t ttl;
        uint8_t mname[ACME_DNS_NAME_MAX];
        size_t mname_len;
        uint8_t rname[ACME_DNS_NAME_MAX];
        size_t rname_len;
        uint32_t soa_num[5]; /* serial, refresh, retry, expire, minimum */
        uint8_t ns[ACME_DNS_NS_MAX][ACME_DNS_NAME_MAX];
        size_t ns_len[ACME_DNS_NS_MAX];
        size_t n_ns;
        uint8_t txt[ACME_DNS_TXT_MAX][ACME_DNS_TXT_LEN_MAX];
        size_t txt_len[ACME_DNS_TXT_MAX];
        size_t n_txt;
};

struct acme_dns_zones {
        size_t n;
        struct zone z[];
};

/* ---- zone data ---- */

static int zone_error(char **reterr, const char *fmt, ...) _printf_(2, 3);
static int zone_error(char **reterr, const char *fmt, ...)
{
        va_list ap;

        if (reterr) {
                va_start(ap, fmt);
                if (vasprintf(reterr, fmt, ap) < 0)
                        *reterr = NULL;
                va_end(ap);
        }
        return -EINVAL;
}

/* @s as a wire name into @out (ACME_DNS_NAME_MAX bytes). Returns the wire
 * length, or 0 if @s is not a lower-case name of letters, digits, '-' and
 * '_' with labels of 1..63 bytes, at most 255 bytes on the wire and no
 * trailing dot. */
static size_t name_to_wire(const char *s, uint8_t *out)
{
        size_t len = 1, start = 0; /* out[start] is the current label's length byte */

        if (!s)
                return 0;
        for (const char *p = s;; p++) {
                if (*p == '.' || *p == '\0') {
                        size_t label = len - start - 1;

                        if (label == 0 || label > 63)
                                return 0;
                        out[start] = (uint8_t)label;
                        if (*p == '\0')
                                break;
                        start = len++;
                        continue;
                }
                if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-' ||
                      *p == '_'))
                        return 0;
                /* Room for this byte and the root label. */
                if (len + 2 > ACME_DNS_NAME_MAX)
                        return 0;
                out[len++] = (uint8_t)*p;
        }
        out[len++] = 0;
        return len;
}

static int zone_compile(const struct acme_dns_zone *in, size_t i, struct zone *z, char **reterr)
{
        if (!(z->apex_len = name_to_wire(in->apex, z->apex)))
                return zone_error(reterr, "zone %zu: apex '%s' is not a lower-case DNS name", i,
                                  strempty(in->apex));
        if (in->n_ns == 0 || in->n_ns > ACME_DNS_NS_MAX || !in->ns)
                return zone_error(reterr, "zone %s: %zu NS names (1..%u allowed)", in->apex,
                                  in->n_ns, ACME_DNS_NS_MAX);
        for (size_t k = 0; k < in->n_ns; k++)
                if (!(z->ns_len[k] = name_to_wire(in->ns[k], z->ns[k])))
                        return zone_error(reterr, "zone %s: NS '%s' is not a lower-case DNS name",
                                          in->apex, strempty(in->ns[k]));
        z->n_ns = in->n_ns;
        if (!(z->mname_len = name_to_wire(in->soa.mname, z->mname)))
                return zone_error(reterr, "zone %s: SOA mname '%s' is not a lower-case DNS name",
                                  in->apex, strempty(in->soa.mname));
        if (!(z->rname_len = name_to_wire(in->soa.rname, z->rname)))
                return zone_error(reterr, "zone %s: SOA rname '%s' is not a lower-case DNS name",
                                  in->apex, strempty(in->soa.rname));
        if (in->ttl > ACME_DNS_TTL_MAX || in->soa.minimum > ACME_DNS_TTL_MAX)
                return zone_error(reterr, "zone %s: TTL above %u", in->apex, ACME_DNS_TTL_MAX);
        z->ttl = in->ttl;
        z->soa_num[0] = in->soa.serial;
        z->soa_num[1] = in->soa.refresh;
        z->soa_num[2] = in->soa.retry;
        z->soa_num[3] = in->soa.expire;
        z->soa_num[4] = in->soa.minimum;
        if (in->n_txt > ACME_DNS_TXT_MAX || (in->n_txt && !in->txt))
                return zone_error(reterr, "zone %s: %zu TXT values (at most %u)", in->apex,
                                  in->n_txt, ACME_DNS_TXT_MAX);
        for (size_t k = 0; k < in->n_txt; k++) {
                size_t n = in->txt[k] ? strlen(in->txt[k]) : SIZE_MAX;

                if (n > ACME_DNS_TXT_LEN_MAX)
                        return zone_error(reterr,
                                          "zone %s: TXT value %zu missing or longer than %u bytes",
                                          in->apex, k, ACME_DNS_TXT_LEN_MAX);
                memcpy(z->txt[k], in->txt[k], n);
                z->txt_len[k] = n;
        }
        z->n_txt = in->n_txt;
        return 0;
}

int acme_dns_zones_new(const struct acme_dns_zone *zones, size_t n, struct acme_dns_zones **ret,
                       char **reterr)
{
        _cleanup_(acme_dns_zones_freep) struct acme_dns_zones *zs = NULL;
        int r;

        assert(ret);
        if (reterr)
                *reterr = NULL;
        if (n > ACME_DNS_ZONES_MAX || (n && !zones))
                return zone_error(reterr, "%zu zones (at most %u)", n, ACME_DNS_ZONES_MAX);
        zs = calloc(1, sizeof(*zs) + n * sizeof(zs->z[0]));
        if (!zs)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                r = zone_compile(&zones[i], i, &zs->z[i], reterr);
                if (r < 0)
                        return r;
                for (size_t k = 0; k < i; k++)
                        if (zs->z[k].apex_len == zs->z[i].apex_len &&
                            memcmp(zs->z[k].apex, zs->z[i].apex, zs->z[i].apex_len) == 0)
                                return zone_error(reterr, "zone %s given twice", zones[i].apex);
        }
        zs->n = n;
        *ret = TAKE_PTR(zs);
        return 0;
}

struct acme_dns_zones *acme_dns_zones_free(struct acme_dns_zones *z)
{
        free(z);
        return NULL;
}

/* ---- the query ---- */

struct query {
        uint16_t id;
        uint16_t flags;
        const uint8_t *qname;             /* in the message, at offset ACME_DNS_HEADER_LEN */
        size_t qname_len;                 /* wire bytes, root label included */
        bool boundary[ACME_DNS_NAME_MAX]; /* a label starts at this offset of @qname */
        uint16_t qtype, qclass;
        bool edns;
        uint8_t edns_version;
        uint16_t edns_size;
        bool edns_do;
};

static uint16_t rd16(const uint8_t *p)
{
        return (uint16_t)(p[0] << 8 | p[1]);
}

/* The question: labels of 0..63 bytes up to the root label, at most 255
 * bytes in all, then QTYPE and QCLASS. Returns the offset after it or
 * -EBADMSG. */
static int parse_question(const uint8_t *m, size_t len, struct query *q)
{
        size_t pos = ACME_DNS_HEADER_LEN;

        q->qname = m + pos;
        for (;;) {
                size_t l;

                if (pos >= len)
                        return -EBADMSG;
                l = m[pos];
                /* 0xc0: a compression pointer; 0x40 and 0x80: extended
                 * label types (RFC 6891 §5, deprecated). */
                if (l & 0xc0)
                        return -EBADMSG;
                /* This label and the root label after it must stay within
                 * 255 bytes. */
                if (pos - ACME_DNS_HEADER_LEN + 1 + l + (l ? 1 : 0) > ACME_DNS_NAME_MAX)
                        return -EBADMSG;
                q->boundary[pos - ACME_DNS_HEADER_LEN] = true;
                pos++;
                if (l == 0)
                        break;
                if (l > len - pos)
                        return -EBADMSG;
                pos += l;
        }
        q->qname_len = pos - ACME_DNS_HEADER_LEN;
        if (len - pos < 4)
                return -EBADMSG;
        q->qtype = rd16(m + pos);
        q->qclass = rd16(m + pos + 2);
        return (int)(pos + 4);
}

/* One additional record, which must be the only OPT (RFC 6891 §6.1.1):
 * owner the root, options that exactly fill the RDATA. Returns the offset
 * after it or -EBADMSG. */
static int parse_opt(const uint8_t *m, size_t len, size_t pos, struct query *q)
{
        size_t rdlen, end;

        if (pos >= len || m[pos] != 0)
                return -EBADMSG; /* not the root: not an OPT, and we take nothing else */
        pos++;
        if (len - pos < RR_FIXED || rd16(m + pos) != TYPE_OPT || q->edns)
                return -EBADMSG;
        q->edns = true;
        q->edns_size = rd16(m + pos + 2);
        q->edns_version = m[pos + 5];
        q->edns_do = rd16(m + pos + 6) & EDNS_DO;
        rdlen = rd16(m + pos + 8);
        pos += RR_FIXED;
        if (rdlen > len - pos)
                return -EBADMSG;
        end = pos + rdlen;
        while (pos < end) {
                if (end - pos < 4 || rd16(m + pos + 2) > end - pos - 4)
                        return -EBADMSG;
                pos += 4 + rd16(m + pos + 2);
        }
        return (int)end;
}

/* 0, -ENOMSG (drop), -EOPNOTSUPP (NOTIMP) or -EBADMSG (FORMERR); id and
 * flags are set in every case but the first drop. */
static int parse_query(const uint8_t *m, size_t len, struct query *q)
{
        int r;

        if (len < ACME_DNS_HEADER_LEN || len > ACME_DNS_QUERY_MAX)
                return -ENOMSG;
        q->id = rd16(m);
        q->flags = rd16(m + 2);
        if (q->flags & F_QR)
                return -ENOMSG;
        if (q->flags & F_OPCODE)
                return -EOPNOTSUPP;
        if (q->flags & (F_TC | F_RCODE))
                return -EBADMSG;
        if (rd16(m + 4) != 1 || rd16(m + 6) != 0 || rd16(m + 8) != 0)
                return -EBADMSG;
        r = parse_question(m, len, q);
        if (r < 0)
                return r;
        for (unsigned i = 0, n = rd16(m + 10); i < n; i++) {
                r = parse_opt(m, len, (size_t)r, q);
                if (r < 0)
                        return r;
        }
        if ((size_t)r != len)
                return -EBADMSG; /* bytes after the last record */
        switch (q->qtype) {
        case 0:
        case TYPE_OPT:
        case TYPE_TKEY:
        case TYPE_TSIG:
                return -EBADMSG; /* meta types that are no QTYPE (RFC 6895 §3.1) */
        }
        return 0;
}

/* ---- the answer ---- */

struct writer {
        uint8_t *p;
        size_t len, cap;
        bool full; /* a write did not fit: the answer is truncated */
};

static void put(struct writer *w, const void *d, size_t n)
{
        if (w->full || n > w->cap - w->len) {
                w->full = true;
                return;
        }
        memcpy(w->p + w->len, d, n);
        w->len += n;
}

static void put16(struct writer *w, uint32_t v)
{
        uint8_t b[2] = {(uint8_t)(v >> 8), (uint8_t)v};

        put(w, b, 2);
}

static void put32(struct writer *w, uint32_t v)
{
        uint8_t b[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};

        put(w, b, 4);
}

static bool name_eq(const uint8_t *a, const uint8_t *b, size_t n)
{
        /* Length bytes are <= 63, below 'A', so folding them is harmless. */
        for (size_t i = 0; i < n; i++)
                if (ascii_tolower(a[i]) != ascii_tolower(b[i]))
                        return false;
        return true;
}

/* The offset in the question name where the wire name @n (@len bytes)
 * starts as a whole-label suffix, compared case-insensitively; -1 if it is
 * none. */
static int qname_suffix(const struct query *q, const uint8_t *n, size_t len)
{
        size_t off;

        if (len > q->qname_len)
                return -1;
        off = q->qname_len - len;
        if (!q->boundary[off] || !name_eq(q->qname + off, n, len))
                return -1;
        return (int)off;
}

/* Write the wire name @n compressed (RFC 1035 §4.1.4) against the
 * question: its longest suffix that the question also ends with becomes a
 * pointer. The question is the only name the answer may point into; its
 * case is the client's, which is fine for names (RFC 4343). */
static void put_name(struct writer *w, const struct query *q, const uint8_t *n, size_t len)
{
        for (size_t off = 0; n[off] != 0; off += 1u + n[off]) {
                int qo = qname_suffix(q, n + off, len - off);

                if (qo >= 0) {
                        put(w, n, off);
                        put16(w, 0xc000u | (ACME_DNS_HEADER_LEN + (unsigned)qo));
                        return;
                }
        }
        put(w, n, len);
}

/* The fixed part of an RR and a placeholder RDLENGTH; returns where the
 * RDLENGTH is, to be filled by rr_end(). */
static size_t rr_begin(struct writer *w, const struct query *q, const struct zone *z, unsigned type,
                       uint32_t ttl)
{
        size_t at;

        /* Every owner is the apex, always a suffix of the question name. */
        put_name(w, q, z->apex, z->apex_len);
        put16(w, type);
        put16(w, CLASS_IN);
        put32(w, ttl);
        at = w->len;
        put16(w, 0);
        return at;
}

static void rr_end(struct writer *w, size_t at)
{
        size_t n = w->len - at - 2;

        if (w->full)
                return;
        w->p[at] = (uint8_t)(n >> 8);
        w->p[at + 1] = (uint8_t)n;
}

static void put_soa(struct writer *w, const struct query *q, const struct zone *z, uint32_t ttl)
{
        size_t at = rr_begin(w, q, z, TYPE_SOA, ttl);

        put_name(w, q, z->mname, z->mname_len);
        put_name(w, q, z->rname, z->rname_len);
        for (size_t i = 0; i < ELEMENTSOF(z->soa_num); i++)
                put32(w, z->soa_num[i]);
        rr_end(w, at);
}

/* RFC 2308 §3: the SOA of a negative answer has the smaller of its TTL and
 * its MINIMUM. */
static uint32_t negative_ttl(const struct zone *z)
{
        return MIN(z->ttl, z->soa_num[4]);
}

/* The zone @q's name is in: the longest apex it equals or ends with. */
static const struct zone *find_zone(const struct acme_dns_zones *zs, const struct query *q)
{
        const struct zone *best = NULL;

        for (size_t i = 0; zs && i < zs->n; i++) {
                const struct zone *z = &zs->z[i];

                if (qname_suffix(q, z->apex, z->apex_len) >= 0 &&
                    (!best || z->apex_len > best->apex_len))
                        best = z;
        }
        return best;
}

static void put_header(struct writer *w, const struct query *q, unsigned flags, unsigned rcode,
                       unsigned qd, unsigned an, unsigned ns, unsigned ar)
{
        w->len = 0;
        w->full = false;
        put16(w, q->id);
        put16(w, F_QR | (q->flags & (F_OPCODE | F_RD | F_CD)) | flags | (rcode & F_RCODE));
        put16(w, qd);
        put16(w, an);
        put16(w, ns);
        put16(w, ar);
}

static void set_count(struct writer *w, size_t at, size_t n)
{
        w->p[at] = (uint8_t)(n >> 8);
        w->p[at + 1] = (uint8_t)n;
}

static void put_question(struct writer *w, const struct query *q)
{
        put(w, q->qname, q->qname_len + 4);
}

/* RFC 6891 §6.1.2/§6.1.3: our size, the upper 8 bits of the RCODE,
 * version 0, the query's DO bit, no options. */
static void put_opt(struct writer *w, const struct query *q, unsigned rcode)
{
        put(w, (const uint8_t[]){0}, 1);
        put16(w, TYPE_OPT);
        put16(w, ACME_DNS_UDP_MAX);
        put(w, (const uint8_t[]){(uint8_t)(rcode >> 4), 0}, 2);
        put16(w, q->edns_do ? EDNS_DO : 0);
        put16(w, 0);
}

/* The answer to a parsed query, before size limits. Returns the RCODE;
 * *ret_aa tells whether the answer is authoritative, *ret_txt whether it
 * is the positive TXT answer. */
static unsigned build(struct writer *w, const struct acme_dns_zones *zs, const struct query *q,
                      bool *ret_aa, bool *ret_txt)
{
        const struct zone *z;
        size_t an = 0;

        *ret_aa = *ret_txt = false;
        if (q->edns && q->edns_version != 0) {
                put_header(w, q, 0, ACME_DNS_RCODE_BADVERS, 1, 0, 0, 0);
                put_question(w, q);
                return ACME_DNS_RCODE_BADVERS;
        }
        z = q->qclass == CLASS_IN ? find_zone(zs, q) : NULL;
        if (!z || q->qtype == TYPE_AXFR || q->qtype == TYPE_IXFR) {
                put_header(w, q, 0, ACME_DNS_RCODE_REFUSED, 1, 0, 0, 0);
                put_question(w, q);
                return ACME_DNS_RCODE_REFUSED;
        }
        *ret_aa = true;
        if (q->qname_len != z->apex_len) {
                /* Below the apex: nothing exists there (RFC 8020). */
                put_header(w, q, F_AA, ACME_DNS_RCODE_NXDOMAIN, 1, 0, 1, 0);
                put_question(w, q);
                put_soa(w, q, z, negative_ttl(z));
                return ACME_DNS_RCODE_NXDOMAIN;
        }
        switch (q->qtype) {
        case TYPE_TXT:
                an = z->n_txt;
                break;
        case TYPE_SOA:
        case TYPE_ANY: /* one RRset is a complete answer to ANY (RFC 8482 §4.1) */
                an = 1;
                break;
        case TYPE_NS:
                an = z->n_ns;
                break;
        }
        if (an == 0) {
                /* NODATA (RFC 2308 §2.2). */
                put_header(w, q, F_AA, ACME_DNS_RCODE_NOERROR, 1, 0, 1, 0);
                put_question(w, q);
                put_soa(w, q, z, negative_ttl(z));
                return ACME_DNS_RCODE_NOERROR;
        }
        put_header(w, q, F_AA, ACME_DNS_RCODE_NOERROR, 1, (unsigned)an, 0, 0);
        put_question(w, q);
        switch (q->qtype) {
        case TYPE_TXT:
                for (size_t i = 0; i < z->n_txt; i++) {
                        size_t at = rr_begin(w, q, z, TYPE_TXT, z->ttl);

                        put(w, (const uint8_t[]){(uint8_t)z->txt_len[i]}, 1);
                        put(w, z->txt[i], z->txt_len[i]);
                        rr_end(w, at);
                }
                *ret_txt = true;
                break;
        case TYPE_NS:
                for (size_t i = 0; i < z->n_ns; i++) {
                        size_t at = rr_begin(w, q, z, TYPE_NS, z->ttl);

                        put_name(w, q, z->ns[i], z->ns_len[i]);
                        rr_end(w, at);
                }
                break;
        default:
                put_soa(w, q, z, z->ttl);
                break;
        }
        return ACME_DNS_RCODE_NOERROR;
}

int acme_dns_answer(const struct acme_dns_zones *zs, const uint8_t *msg, size_t len,
                    enum acme_dns_transport transport, uint8_t *out, size_t out_size,
                    struct acme_dns_answer_info *ret_info)
{
        struct acme_dns_answer_info info = {.rcode = -1};
        struct query q = {};
        struct writer w = {.p = out};
        size_t limit;
        unsigned rcode;
        bool aa, txt;
        int r;

        if (out_size < ACME_DNS_UDP_MIN)
                return -EINVAL;
        r = parse_query(msg, len, &q);
        if (r == -ENOMSG) {
                if (ret_info)
                        *ret_info = info;
                return 0;
        }
        w.cap = out_size;
        if (r < 0) {
                /* Header only: what follows may not even be a question. */
                info.rcode = r == -EOPNOTSUPP ? ACME_DNS_RCODE_NOTIMP : ACME_DNS_RCODE_FORMERR;
                put_header(&w, &q, 0, (unsigned)info.rcode, 0, 0, 0, 0);
                if (ret_info)
                        *ret_info = info;
                return (int)w.len;
        }

        if (transport == ACME_DNS_UDP)
                limit = q.edns ? MIN(MAX(q.edns_size, ACME_DNS_UDP_MIN), ACME_DNS_UDP_MAX)
                               : ACME_DNS_UDP_MIN;
        else
                limit = 65535;
        limit = MIN(limit, out_size);
        /* Keep room for the OPT, which must survive truncation. */
        w.cap = limit - (q.edns ? OPT_LEN : 0);

        rcode = build(&w, zs, &q, &aa, &txt);
        info.rcode = (int)rcode;
        info.edns = q.edns;
        info.txt = txt;
        if (!w.full && transport == ACME_DNS_UDP && !txt &&
            w.len + (q.edns ? OPT_LEN : 0) > len + ACME_DNS_AMP_SLACK)
                w.full = true; /* amplification bound (dns.h) */
        if (w.full) {
                /* TC with the question only (RFC 2181 §9): never larger than
                 * the query, whose question and OPT it repeats. */
                put_header(&w, &q, F_TC | (aa ? F_AA : 0), rcode, 1, 0, 0, 0);
                put_question(&w, &q);
                info.truncated = true;
                info.txt = false;
        }
        if (q.edns) {
                w.cap = limit;
                put_opt(&w, &q, rcode);
                set_count(&w, 10, 1);
        }
        assert(!w.full);
        if (ret_info)
                *ret_info = info;
        return (int)w.len;
}

const char *acme_dns_rcode_str(int rcode)
{
        switch (rcode) {
        case ACME_DNS_RCODE_NOERROR:
                return "NOERROR";
        case ACME_DNS_RCODE_FORMERR:
                return "FORMERR";
        case ACME_DNS_RCODE_NXDOMAIN:
                return "NXDOMAIN";
        case ACME_DNS_RCODE_NOTIMP:
                return "NOTIMP";
        case ACME_DNS_RCODE_REFUSED:
                return "REFUSED";
        case ACME_DNS_RCODE_BADVERS:
                return "BADVERS";
        }
        return "?";
}
