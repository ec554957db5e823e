/* SPDX-License-Identifier: Apache-2.0 */
#include "proxy/tls-hello.h"

#include <assert.h>
#include <errno.h>
#include <string.h>

#include "common/macros.h"
#include "common/siphash.h" /* ascii_tolower() */

/* TLS constants (RFC 8446 §4, §5.1; RFC 6066 §3; RFC 7301 §3.1). */
#define CT_CHANGE_CIPHER_SPEC  20
#define CT_HEARTBEAT           24
#define CT_HANDSHAKE           22
#define HS_CLIENT_HELLO        1
#define EXT_SERVER_NAME        0
#define EXT_ALPN               16
#define EXT_PRE_SHARED_KEY     41
#define EXT_SUPPORTED_VERSIONS 43
#define SNI_HOST_NAME          0
#define TLS13_VERSION          0x0304

/* legacy_version, random, an empty session id, one cipher suite and one
 * compression method: the smallest ClientHello body there is. */
#define CLIENT_HELLO_MIN_BODY (2 + 32 + 1 + 2 + 2 + 1 + 1)

/* ---- a bounds-checked reader over the buffered message ---- */

struct rd {
        const uint8_t *p;
        size_t n;
};

static bool rd_skip(struct rd *r, size_t n)
{
        if (r->n < n)
                return false;
        r->p += n;
        r->n -= n;
        return true;
}

static bool rd_u8(struct rd *r, uint8_t *ret)
{
        if (r->n < 1)
                return false;
        *ret = r->p[0];
        return rd_skip(r, 1);
}

static bool rd_u16(struct rd *r, uint16_t *ret)
{
        if (r->n < 2)
                return false;
        *ret = (uint16_t)(r->p[0] << 8 | r->p[1]);
        return rd_skip(r, 2);
}

static bool rd_bytes(struct rd *r, size_t n, struct rd *ret)
{
        const uint8_t *start = r->p;

        if (!rd_skip(r, n))
                return false;
        *ret = (struct rd){start, n};
        return true;
}

/* opaque x<0..2^8-1>: a vector with a one-byte length prefix. */
static bool rd_vec8(struct rd *r, struct rd *ret)
{
        uint8_t n;

        return rd_u8(r, &n) && rd_bytes(r, n, ret);
}

/* opaque x<0..2^16-1>: a vector with a two-byte length prefix. */
static bool rd_vec16(struct rd *r, struct rd *ret)
{
        uint16_t n;

        return rd_u16(r, &n) && rd_bytes(r, n, ret);
}

/* ---- extensions ---- */

static bool is_ldh(uint8_t c)
{
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
               c == '-';
}

static bool is_digit(uint8_t c)
{
        return c >= '0' && c <= '9';
}

/* Whether the label looks like the number an IPv4 parser would take:
 * decimal, or 0x-prefixed hex (the WHATWG URL "ends in a number" rule). */
static bool label_is_number(const uint8_t *s, size_t n)
{
        size_t i = 0;

        if (n >= 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
                for (i = 2; i < n; i++)
                        if (unhexchar((char)s[i]) < 0)
                                return false;
                return true;
        }
        for (; i < n; i++)
                if (!is_digit(s[i]))
                        return false;
        return true;
}

/* Validate a HostName and store it lower-cased. RFC 6066 §3: ASCII,
 * "without a trailing dot", no IP literals. We require RFC 1123 LDH labels
 * of 1..63 bytes that neither start nor end with a hyphen, at most 253
 * bytes in all (255 octets in DNS wire form), and a last label that is not
 * a number, which turns away "127.0.0.1" and its decimal and hex
 * spellings. A trailing dot is refused rather than stripped: stripping
 * would make a second spelling of every name, and routing and certificate
 * selection must see exactly one. No IDNA processing: A-labels ("xn--")
 * are plain LDH. */
static int store_host_name(struct proxy_tls_hello *h, const struct rd *name)
{
        size_t label = 0, last = 0;

        if (name->n == 0 || name->n > PROXY_TLS_HELLO_SNI_MAX)
                return -EBADMSG;
        for (size_t i = 0; i < name->n; i++) {
                uint8_t c = name->p[i];

                if (c == '.') {
                        if (label == 0 || name->p[i - 1] == '-')
                                return -EBADMSG;
                        h->sni[i] = '.';
                        label = 0;
                        last = i + 1;
                        continue;
                }
                if (!is_ldh(c))
                        return -EBADMSG;
                if (label == 0 && c == '-')
                        return -EBADMSG;
                if (++label > 63)
                        return -EBADMSG;
                h->sni[i] = (char)ascii_tolower(c);
        }
        /* An empty last label is a trailing dot. */
        if (label == 0 || name->p[name->n - 1] == '-')
                return -EBADMSG;
        if (label_is_number(name->p + last, name->n - last))
                return -EBADMSG;
        h->sni[name->n] = 0;
        h->has_sni = true;
        return 0;
}

/* RFC 6066 §3: ServerNameList server_name_list<1..2^16-1>. The list was
 * meant to be extensible, but only host_name was ever defined and RFC 6066
 * allows one name per type. BoringSSL (our terminator) accepts exactly one
 * entry of type host_name; we are exactly as strict, so the name we route
 * on is the only one any TLS stack behind us can see. */
static int parse_server_name(struct proxy_tls_hello *h, struct rd *data)
{
        struct rd list, name;
        uint8_t type;

        if (!rd_vec16(data, &list) || data->n != 0)
                return -EBADMSG;
        if (!rd_u8(&list, &type) || type != SNI_HOST_NAME)
                return -EBADMSG;
        if (!rd_vec16(&list, &name) || list.n != 0)
                return -EBADMSG;
        return store_host_name(h, &name);
}

/* RFC 7301 §3.1: ProtocolName protocol_name_list<2..2^16-1>, each
 * ProtocolName <1..2^8-1>. */
static int parse_alpn(struct proxy_tls_hello *h, struct rd *data)
{
        struct rd list, it, name;
        size_t count = 0;

        if (!rd_vec16(data, &list) || data->n != 0 || list.n == 0)
                return -EBADMSG;
        for (it = list; it.n > 0; count++)
                if (!rd_vec8(&it, &name) || name.n == 0)
                        return -EBADMSG;
        h->alpn_off = (size_t)(list.p - h->msg);
        h->alpn_len = list.n;
        h->alpn_count = count;
        return 0;
}

/* RFC 8446 §4.2.1: ProtocolVersion versions<2..254> in a ClientHello. */
static int parse_supported_versions(struct proxy_tls_hello *h, struct rd *data)
{
        struct rd list;
        uint16_t v;

        if (!rd_vec8(data, &list) || data->n != 0 || list.n < 2 || list.n % 2 != 0)
                return -EBADMSG;
        while (rd_u16(&list, &v))
                if (v == TLS13_VERSION)
                        h->tls13 = true;
        return 0;
}

static int parse_extensions(struct proxy_tls_hello *h, struct rd *exts)
{
        /* One bit per extension type: O(n) duplicate detection with no
         * policy cap on the number of extensions. 8 KiB of stack, once per
         * connection. */
        uint64_t seen[65536 / 64] = {0};
        bool psk = false;

        while (exts->n > 0) {
                struct rd data;
                uint16_t type;
                int r = 0;

                if (!rd_u16(exts, &type) || !rd_vec16(exts, &data))
                        return -EBADMSG;
                /* RFC 8446 §4.2.11: pre_shared_key MUST be the last extension. */
                if (psk)
                        return -EBADMSG;
                /* RFC 8446 §4.2: no more than one extension of each type. */
                if (seen[type / 64] & (UINT64_C(1) << (type % 64)))
                        return -EBADMSG;
                seen[type / 64] |= UINT64_C(1) << (type % 64);

                switch (type) {
                case EXT_SERVER_NAME:
                        r = parse_server_name(h, &data);
                        break;
                case EXT_ALPN:
                        r = parse_alpn(h, &data);
                        break;
                case EXT_SUPPORTED_VERSIONS:
                        r = parse_supported_versions(h, &data);
                        break;
                case EXT_PRE_SHARED_KEY:
                        psk = true;
                        break;
                default:
                        /* Everything else (ECH included: we route on the
                         * outer, public name) is the TLS stack's business. */
                        break;
                }
                if (r < 0)
                        return r;
        }
        return 0;
}

/* ---- the handshake message ---- */

/* RFC 8446 §4.1.2 (and RFC 5246 §7.4.1.2 for pre-1.3 clients). */
static int parse_client_hello(struct proxy_tls_hello *h)
{
        struct rd body = {h->msg + 4, h->msg_want - 4}, v, exts;
        uint16_t version;

        /* legacy_version: any {03,xx}. Refusing versions above 0x0303 would
         * be the version intolerance RFC 8446 App. D warns about; SSL 3.0
         * is refused by the TLS stack, not here. */
        if (!rd_u16(&body, &version) || version >> 8 != 3)
                return -EBADMSG;
        if (!rd_skip(&body, 32)) /* random */
                return -EBADMSG;
        if (!rd_vec8(&body, &v) || v.n > 32) /* legacy_session_id<0..32> */
                return -EBADMSG;
        if (!rd_vec16(&body, &v) || v.n < 2 || v.n % 2 != 0) /* cipher_suites<2..2^16-2> */
                return -EBADMSG;
        if (!rd_vec8(&body, &v) || v.n < 1) /* legacy_compression_methods<1..2^8-1> */
                return -EBADMSG;
        /* RFC 5246 §7.4.1.2: a hello may end here, without extensions. */
        if (body.n == 0)
                return 0;
        if (!rd_vec16(&body, &exts) || body.n != 0)
                return -EBADMSG;
        return parse_extensions(h, &exts);
}

/* Called after each copy into the message. Copies never cross a record
 * boundary and stop at the end of the 4-byte header, so each check below
 * runs at the same byte whatever the read boundaries were. */
static int message_progress(struct proxy_tls_hello *h)
{
        size_t body;
        int r;

        if (h->msg_want == 0) {
                if (h->msg_len >= 1 && h->msg[0] != HS_CLIENT_HELLO)
                        return -EBADMSG;
                if (h->msg_len < 4)
                        return 0;
                body = (size_t)h->msg[1] << 16 | (size_t)h->msg[2] << 8 | h->msg[3];
                if (body > h->max_len - 4)
                        return -E2BIG;
                if (body < CLIENT_HELLO_MIN_BODY)
                        return -EBADMSG;
                h->msg_want = 4 + body;
                return 0;
        }
        if (h->msg_len < h->msg_want)
                return 0;
        /* RFC 8446 §5.1: a ClientHello may be followed by a key change (0-RTT),
         * so it MUST end on a record boundary. A client sends nothing else
         * in the handshake before the ServerHello either. */
        if (h->rec_left > 0)
                return -EBADMSG;
        r = parse_client_hello(h);
        if (r < 0)
                return r;
        h->state = PROXY_TLS_HELLO_ST_DONE;
        return 0;
}

/* Called after each byte of a record header. */
static int record_header_byte(struct proxy_tls_hello *h)
{
        const uint8_t *hd = h->hdr;
        unsigned version, len;

        if (!h->seen_record) {
                /* The first byte tells TLS from anything else: a TLS content
                 * type that is not handshake is a broken or hostile TLS client
                 * (-EBADMSG); any other byte, including SSLv2's 0x80 length
                 * prefix and the letters of an HTTP method, is not TLS. */
                if (h->hdr_len == 1 && hd[0] != CT_HANDSHAKE)
                        return hd[0] >= CT_CHANGE_CIPHER_SPEC && hd[0] <= CT_HEARTBEAT ? -EBADMSG
                                                                                       : -EPROTO;
                if (h->hdr_len == 2 && hd[1] != 3)
                        return -EPROTO;
        }
        if (h->hdr_len < 5)
                return 0;

        version = (unsigned)hd[1] << 8 | hd[2];
        len = (unsigned)hd[3] << 8 | hd[4];
        /* RFC 8446 §5.1: handshake messages MUST NOT be interleaved with
         * other record types. */
        if (hd[0] != CT_HANDSHAKE)
                return -EBADMSG;
        if (version < 0x0300 || version > 0x0304)
                return -EBADMSG;
        /* RFC 8446 §5.1: no zero-length handshake fragments, and a record
         * over 2^14 bytes is a record_overflow. */
        if (len == 0 || len > PROXY_TLS_RECORD_MAX)
                return -EBADMSG;
        h->seen_record = true;
        h->rec_left = len;
        h->hdr_len = 0;
        h->state = PROXY_TLS_HELLO_ST_RECORD_PAYLOAD;
        return 0;
}

static int fail(struct proxy_tls_hello *h, int r)
{
        h->state = PROXY_TLS_HELLO_ST_FAILED;
        h->error = r;
        return r;
}

/* ---- public API ---- */

void proxy_tls_hello_init(struct proxy_tls_hello *h, uint8_t *buf, size_t max_len)
{
        assert(h);
        assert(buf);
        assert(max_len >= 4 && max_len <= PROXY_TLS_HELLO_MAX_LIMIT);

        *h = (struct proxy_tls_hello){
                .state = PROXY_TLS_HELLO_ST_RECORD_HEADER,
                .msg = buf,
                .max_len = max_len,
        };
}

int proxy_tls_hello_feed(struct proxy_tls_hello *h, const uint8_t *p, size_t n)
{
        size_t i = 0;
        int r;

        assert(h);
        assert(p || n == 0);

        if (h->state == PROXY_TLS_HELLO_ST_DONE)
                return 0;
        if (h->state == PROXY_TLS_HELLO_ST_FAILED)
                return h->error;

        while (i < n) {
                size_t need, k;

                if (h->state == PROXY_TLS_HELLO_ST_RECORD_HEADER) {
                        h->hdr[h->hdr_len++] = p[i++];
                        r = record_header_byte(h);
                        if (r < 0)
                                return fail(h, r);
                        continue;
                }

                /* Until the message header is in, copy no further than it,
                 * so that its checks run before any more input is looked at. */
                need = (h->msg_want > 0 ? h->msg_want : 4) - h->msg_len;
                k = MIN(MIN(n - i, h->rec_left), need);
                memcpy(h->msg + h->msg_len, p + i, k);
                i += k;
                h->msg_len += k;
                h->rec_left -= k;

                r = message_progress(h);
                if (r < 0)
                        return fail(h, r);
                /* i is at most 6 * PROXY_TLS_HELLO_MAX_LIMIT: every record
                 * brings at least one message byte for its 5 header bytes. */
                if (h->state == PROXY_TLS_HELLO_ST_DONE)
                        return (int)i;
                if (h->rec_left == 0)
                        h->state = PROXY_TLS_HELLO_ST_RECORD_HEADER;
        }
        return -EAGAIN;
}

bool proxy_tls_hello_done(const struct proxy_tls_hello *h)
{
        return h->state == PROXY_TLS_HELLO_ST_DONE;
}

const char *proxy_tls_hello_sni(const struct proxy_tls_hello *h)
{
        return proxy_tls_hello_done(h) && h->has_sni ? h->sni : NULL;
}

bool proxy_tls_hello_offers_alpn(const struct proxy_tls_hello *h, const char *proto)
{
        struct rd it, name;
        size_t len;

        assert(proto);

        if (!proxy_tls_hello_done(h))
                return false;
        len = strlen(proto);
        it = (struct rd){h->msg + h->alpn_off, h->alpn_len};
        while (rd_vec8(&it, &name))
                if (name.n == len && memcmp(name.p, proto, len) == 0)
                        return true;
        return false;
}

size_t proxy_tls_hello_alpn_count(const struct proxy_tls_hello *h)
{
        return proxy_tls_hello_done(h) ? h->alpn_count : 0;
}

bool proxy_tls_hello_tls13(const struct proxy_tls_hello *h)
{
        return proxy_tls_hello_done(h) && h->tls13;
}
