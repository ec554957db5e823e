/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* ClientHello peeker for the :443 listener.
 *
 * The engine reads the first bytes of a new TLS connection into its own
 * buffer, feeds them here, and once the whole ClientHello has been seen
 * learns the SNI host name, the offered ALPN protocols and whether TLS 1.3
 * is offered. It then replays its raw bytes to BoringSSL (terminate) or
 * forwards them to a backend (passthrough). Pure and resumable: no I/O, no
 * allocation, any read boundaries (one byte at a time works).
 *
 * Reassembly (Traefik CVE-2026-32305): the handshake message may be split
 * over any number of handshake records, each carrying any part of it. The
 * message is copied into a caller-supplied buffer, which is also the bound
 * on the ClientHello size. Every failure is an error the caller must treat
 * as "close the connection": there is no partial result to fall back on.
 *
 * Decisions (tls-hello.c has the reasoning next to each check):
 *  - The first byte decides whether this is TLS at all: anything other than
 *    a TLS content type (HTTP, PROXY protocol, SSLv2's 0x80 hello) is
 *    -EPROTO. A TLS record other than handshake (ChangeCipherSpec, alert,
 *    application data) before or inside the hello is -EBADMSG.
 *  - Record versions 0x0300..0x0304 are accepted: RFC 5246 App. E.1 lets a
 *    client put {03,00} in the record layer of its first flight and
 *    BoringSSL accepts any {03,xx} before negotiation. The record version
 *    negotiates nothing, so refusing 0x0300 would buy no safety.
 *  - Records are 1..2^14 payload bytes (RFC 8446 §5.1); the ClientHello must
 *    end on a record boundary (RFC 8446 §5.1, it may precede a key change).
 *  - server_name must hold exactly one entry, of type host_name, like
 *    BoringSSL requires; the name must be an LDH host name of at most 253
 *    bytes, without a trailing dot (RFC 6066 §3; Go's crypto/tls also
 *    refuses it) and not an IPv4 literal (its last label may not be
 *    numeric). It is returned lower-cased.
 *  - Duplicate extensions (RFC 8446 §4.2) and a pre_shared_key that is not
 *    last (RFC 8446 §4.2.11) are -EBADMSG.
 *  - Bytes after the hello's last record (0-RTT early data, a middlebox
 *    compatibility ChangeCipherSpec) are not consumed and belong to the
 *    caller. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PROXY_TLS_HELLO_MAX_DEFAULT 16384u           /* default bound on the handshake message */
#define PROXY_TLS_HELLO_MAX_LIMIT   (4u + 0xffffffu) /* largest message the 24-bit length allows */
#define PROXY_TLS_HELLO_SNI_MAX     253u             /* RFC 1035 §2.3.4: 255 octets on the wire */
#define PROXY_TLS_RECORD_MAX        16384u           /* RFC 8446 §5.1: 2^14 plaintext bytes */

enum proxy_tls_hello_state {
        PROXY_TLS_HELLO_ST_RECORD_HEADER,  /* collecting a 5-byte record header */
        PROXY_TLS_HELLO_ST_RECORD_PAYLOAD, /* copying record payload into the message */
        PROXY_TLS_HELLO_ST_DONE,           /* ClientHello complete, results valid */
        PROXY_TLS_HELLO_ST_FAILED,         /* sticky error in @error */
        _PROXY_TLS_HELLO_ST_MAX,
};

/* Embedded in the connection; all fields are private to tls-hello.c. */
struct proxy_tls_hello {
        enum proxy_tls_hello_state state;
        int error;         /* the -errno returned again and again once FAILED */
        uint8_t *msg;      /* caller's buffer: the handshake message, 4-byte header included */
        size_t max_len;    /* size of @msg, and the bound on the ClientHello */
        size_t msg_len;    /* message bytes buffered so far */
        size_t msg_want;   /* 4 + body length once the message header is in, else 0 */
        size_t rec_left;   /* payload bytes of the current record still to come */
        uint8_t hdr[5];    /* the record header being collected */
        uint8_t hdr_len;   /* bytes of @hdr collected */
        bool seen_record;  /* a complete record header has been read */
        bool has_sni;      /* server_name present (and valid) */
        bool tls13;        /* supported_versions lists 0x0304 */
        size_t alpn_off;   /* protocol_name_list offset in @msg */
        size_t alpn_len;   /* its length, 0 when there is no ALPN extension */
        size_t alpn_count; /* protocols in it */
        char sni[PROXY_TLS_HELLO_SNI_MAX + 1]; /* lower-cased host name */
};

/* Prepare @h to parse one ClientHello into @buf, which holds @max_len
 * bytes (PROXY_TLS_HELLO_MAX_DEFAULT is a good size; at most
 * PROXY_TLS_HELLO_MAX_LIMIT). A handshake message larger than @max_len,
 * its 4-byte header included, is refused with -E2BIG. The caller owns
 * @buf; it must stay valid and unmodified while @h is used, since the
 * ALPN queries read it. Cannot fail. */
void proxy_tls_hello_init(struct proxy_tls_hello *h, uint8_t *buf, size_t max_len);

/* Feed the next @n bytes the client sent (@p may be NULL when @n is 0).
 * Returns:
 *   > 0        the ClientHello is complete: the number of bytes of @p
 *              consumed, ending with the record that completed it. Any
 *              bytes after that are the client's next records (0-RTT early
 *              data) and were not looked at.
 *   0          the ClientHello was already complete; nothing consumed.
 *   -EAGAIN    all @n bytes consumed, more are needed. A truncated hello
 *              stays here forever: the caller's handshake timeout ends it.
 *   -EPROTO    the stream is not TLS (HTTP, SSLv2 hello, ...).
 *   -EBADMSG   malformed or not allowed (see the decisions above).
 *   -E2BIG     the ClientHello is larger than @max_len.
 * Errors are sticky: later calls return the same value. */
int proxy_tls_hello_feed(struct proxy_tls_hello *h, const uint8_t *p, size_t n);

/* Whether the ClientHello has been completely and successfully parsed. The
 * queries below return NULL/false/0 until it has. */
bool proxy_tls_hello_done(const struct proxy_tls_hello *h);

/* The lower-cased SNI host name, or NULL when the client sent none. Points
 * into @h. */
const char *proxy_tls_hello_sni(const struct proxy_tls_hello *h);

/* Whether the ALPN extension lists @proto (e.g. "h2", "acme-tls/1"),
 * compared byte for byte as RFC 7301 §3.1 says. */
bool proxy_tls_hello_offers_alpn(const struct proxy_tls_hello *h, const char *proto);

/* The number of ALPN protocols offered, 0 when there is no ALPN extension
 * (an empty list is malformed). RFC 8737 §3: a TLS-ALPN-01 validation
 * offers exactly one, "acme-tls/1". */
size_t proxy_tls_hello_alpn_count(const struct proxy_tls_hello *h);

/* Whether supported_versions offers TLS 1.3 (0x0304). */
bool proxy_tls_hello_tls13(const struct proxy_tls_hello *h);
