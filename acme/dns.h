/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* The _acme-challenge DNS responder's message logic: a strict parser for
 * queries and the answer builder, pure (no I/O, no libuv, no clock, no
 * allocation per query). acme/dns-server.c puts it on sockets; the owner
 * (the daemon) fills the zone data.
 *
 * A zone is one delegated name, `_acme-challenge.<domain>`, holding only its
 * apex: the SOA, the NS names the parent's delegation points at, and the
 * current DNS-01 TXT values (RFC 8555 §8.4). Authoritative and minimal:
 *
 *   name                   type            answer
 *   apex                   TXT             every value (AA); none: NODATA, SOA in authority
 *   apex                   SOA, ANY        the SOA (AA; ANY is answered minimally, RFC 8482 §4.1)
 *   apex                   NS              the NS names (AA)
 *   apex                   AXFR, IXFR      REFUSED (no zone transfers)
 *   apex                   anything else   NODATA (AA), SOA in authority
 *   below the apex         any             NXDOMAIN (AA), SOA in authority (RFC 8020)
 *   outside every zone     any             REFUSED (never recursive: RA is never set)
 *   any, class not IN      any             REFUSED (CHAOS version.bind etc. included)
 *
 * What the parser refuses, and how (docs/internals/acme.md has the why):
 *  - dropped, no answer at all: fewer than 12 bytes (no ID to answer with),
 *    QR=1 (a response: answering it could start a loop between two
 *    servers), more than ACME_DNS_QUERY_MAX bytes;
 *  - NOTIMP, header only: OPCODE other than QUERY (the body of NOTIFY or
 *    UPDATE is not parsed);
 *  - FORMERR, header only (no question, no OPT, RFC 6891 §7): QDCOUNT != 1,
 *    ANCOUNT or NSCOUNT != 0, TC or RCODE set in the query, a label of more
 *    than 63 bytes, a name of more than 255 bytes, any compression pointer
 *    or extended label type in the question (nothing precedes the question
 *    that a pointer could legitimately refer to, so no pointer is ever
 *    followed and loops cannot exist), counts that promise more records
 *    than the message holds, bytes after the last record, an additional
 *    record other than one OPT (TSIG is not supported: FORMERR as RFC 8945
 *    §5.2 allows for a server that does not), two OPTs (RFC 6891 §6.1.1),
 *    an OPT whose owner is not the root or whose options overrun its
 *    RDATA, QTYPE 0, OPT, TKEY or TSIG;
 *  - BADVERS (RFC 6891 §6.1.3): EDNS version other than 0; the answer
 *    carries the question and an OPT of version 0.
 *
 * EDNS (RFC 6891): when the query has an OPT, the answer has one too,
 * advertising ACME_DNS_UDP_MAX, with the query's DO bit copied (RFC 3225
 * §3); options in the query (cookies, ECS, padding, NSID) are ignored. The
 * question is echoed byte for byte, so the 0x20 case randomisation of the
 * query is preserved, and owner names in the answer point at it. The header
 * copies ID, OPCODE, RD and CD; RA, AD and Z are never set.
 *
 * Size: a UDP answer fits the client's limit: 512 bytes without EDNS, else
 * its advertised size, at least 512 and at most ACME_DNS_UDP_MAX. Over TCP
 * the bound is the caller's buffer (ACME_DNS_ANSWER_MAX always suffices).
 * An answer that does not fit is sent as TC=1 with the question only (plus
 * the OPT), and the client retries over TCP.
 *
 * Amplification: over UDP, an answer other than the positive TXT answer at
 * an apex is never more than ACME_DNS_AMP_SLACK bytes larger than the query
 * that caused it; one that would be (a zone whose SOA or NS names do not
 * compress against the question) is truncated instead. Every refusal
 * (FORMERR, NOTIMP, REFUSED, BADVERS, TC) is no larger than its query. The
 * TXT answer is bounded by the zone limits below and the client's size. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Sizes in bytes. UDP_MAX is the 2020 DNS flag day value: the largest UDP
 * answer, and the size our OPT advertises. Longer queries are dropped
 * (UDP) or end the connection (TCP). */
#define ACME_DNS_HEADER_LEN  12u   /* RFC 1035 §4.1.1 */
#define ACME_DNS_UDP_MIN     512u  /* RFC 1035 §4.2.1: without EDNS, and EDNS sizes below it */
#define ACME_DNS_UDP_MAX     1232u /* largest UDP answer, and what we advertise */
#define ACME_DNS_QUERY_MAX   1232u /* longest query */
#define ACME_DNS_AMP_SLACK   64u   /* UDP answer <= query + this, except the TXT answer */
#define ACME_DNS_NAME_MAX    255u  /* wire octets, RFC 1035 §2.3.4 */
#define ACME_DNS_ZONES_MAX   16u   /* zones in one set */
#define ACME_DNS_NS_MAX      4u    /* NS names per zone */
#define ACME_DNS_TXT_MAX     16u   /* TXT values per zone */
#define ACME_DNS_TXT_LEN_MAX 255u  /* bytes per TXT value (one character-string) */
#define ACME_DNS_TTL_MAX     2147483647u /* RFC 2181 §8 */

/* The largest answer the zone limits allow (the TXT answer with every value
 * at its longest, a question of the longest name, an OPT); a TCP buffer of
 * this size never truncates. */
#define ACME_DNS_ANSWER_MAX                                                                        \
        (ACME_DNS_HEADER_LEN + ACME_DNS_NAME_MAX + 4u +                                            \
         ACME_DNS_TXT_MAX * (2u + 10u + 1u + ACME_DNS_TXT_LEN_MAX) + 11u)

/* RCODEs the builder produces (BADVERS is extended, RFC 6891 §6.1.3). */
enum acme_dns_rcode {
        ACME_DNS_RCODE_NOERROR = 0,
        ACME_DNS_RCODE_FORMERR = 1,
        ACME_DNS_RCODE_NXDOMAIN = 3,
        ACME_DNS_RCODE_NOTIMP = 4,
        ACME_DNS_RCODE_REFUSED = 5,
        ACME_DNS_RCODE_BADVERS = 16,
};

enum acme_dns_transport {
        ACME_DNS_UDP, /* size limits, TC and the amplification bound apply */
        ACME_DNS_TCP, /* the caller strips and adds the 2-byte length (RFC 7766 §8) */
};

/* A zone as the owner describes it. Names are lower-case, without a trailing
 * dot, of letters, digits, '-' and '_', labels of 1..63 bytes, at most 253
 * characters. Everything is copied by acme_dns_zones_new(). */
struct acme_dns_soa {
        const char *mname; /* primary name server, e.g. "gw.example.com" */
        const char *rname; /* mailbox as a name, e.g. "hostmaster.gw.example.com" */
        uint32_t serial;   /* bump it when the values change (e.g. Unix time) */
        uint32_t refresh;  /* seconds; nothing transfers the zone, but resolvers show them */
        uint32_t retry;
        uint32_t expire;
        uint32_t minimum; /* negative-caching TTL (RFC 2308 §4): keep it short, e.g. 60 */
};

struct acme_dns_zone {
        const char *apex;      /* "_acme-challenge.gw.example.com" */
        const char *const *ns; /* the names the parent's NS records point at; 1..ACME_DNS_NS_MAX */
        size_t n_ns;           /* their number */
        struct acme_dns_soa soa;
        uint32_t ttl;           /* of the TXT, NS and SOA records; short (values change), e.g. 60 */
        const char *const *txt; /* current DNS-01 values, 0..ACME_DNS_TXT_MAX of <= 255 bytes */
        size_t n_txt;           /* their number */
};

/* Compiled, immutable zone data (one allocation). */
struct acme_dns_zones;

/* Check and copy @n zones (0..ACME_DNS_ZONES_MAX; 0 refuses every query).
 * Returns 0 and *ret (caller frees), or -EINVAL with *reterr saying which
 * field is wrong (allocated, caller frees; @reterr may be NULL): a bad
 * name, an apex given twice, no or too many NS names, too many or too long
 * TXT values, a TTL above ACME_DNS_TTL_MAX; or -ENOMEM. */
int acme_dns_zones_new(const struct acme_dns_zone *zones, size_t n, struct acme_dns_zones **ret,
                       char **reterr);
/* Accepts NULL. Returns NULL. */
struct acme_dns_zones *acme_dns_zones_free(struct acme_dns_zones *z);
static inline void acme_dns_zones_freep(struct acme_dns_zones **z)
{
        acme_dns_zones_free(*z);
}

/* What acme_dns_answer() did, for counters and tests. */
struct acme_dns_answer_info {
        int rcode;      /* enum acme_dns_rcode of the answer; -1 when dropped */
        bool truncated; /* TC=1, question only */
        bool edns;      /* the query had a valid OPT (and so has the answer) */
        bool txt;       /* the positive TXT answer at an apex (not amplification-bounded) */
};

/* Answer the query @msg (@len bytes, without the TCP length prefix) from @z
 * (NULL: no zones) into @out, which has room for @out_size bytes; at least
 * ACME_DNS_UDP_MAX over UDP, ACME_DNS_ANSWER_MAX over TCP to never truncate.
 * Returns the answer's length, 0 when the query is dropped (send nothing;
 * over TCP close the connection), or -EINVAL when @out_size is below
 * ACME_DNS_UDP_MIN. @ret_info may be NULL. */
int acme_dns_answer(const struct acme_dns_zones *z, const uint8_t *msg, size_t len,
                    enum acme_dns_transport transport, uint8_t *out, size_t out_size,
                    struct acme_dns_answer_info *ret_info);

/* "NOERROR", "FORMERR", ...; "?" for others. */
const char *acme_dns_rcode_str(int rcode);
