/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* HTTP/1.1 message parsing for the proxy engine (RFC 9110, RFC 9112): pure,
 * resumable, allocation-free parsers and serialisers with no libuv in them.
 *
 *   - proxy_h1_req_parse()/proxy_h1_resp_parse(): strict head parsers. The
 *     caller keeps the head contiguous in one buffer (bounded by the
 *     max_head limit) and calls again with the same buffer and a larger
 *     length as bytes arrive. The parser keeps its scan position, so each
 *     byte is looked at once whatever the split; results are offsets into
 *     that buffer (zero copy).
 *   - proxy_h1_req_analyze()/proxy_h1_resp_analyze(): the semantic checks
 *     that decide the framing (RFC 9112 §6), Host, Connection, Upgrade and
 *     Expect, and mark hop-by-hop fields.
 *   - proxy_h1_chunked_decode(): a streaming chunked decoder (no buffering
 *     needed by the caller, except for a trailer section it is asked to
 *     keep) and proxy_h1_chunk_*() to frame chunks; proxy_h1_trailer_*()
 *     to filter and read a kept trailer section.
 *   - proxy_h1_req_serialize()/proxy_h1_resp_serialize(): rebuild the head
 *     for the other side: hop-by-hop fields removed, other fields byte-exact,
 *     our framing, X-Forwarded-* and X-Real-IP added.
 *
 * Errors: parse and analyze functions return a negative errno and record a
 * precise enum proxy_h1_err in the message; proxy_h1_err_status() turns it
 * into the status to answer a client with (400, 414, 431, 501, 505, 417).
 * Any failure on a backend response means 502 and closing both the backend
 * connection and, unless the response head was not yet forwarded, the client
 * connection. After a failure the message must be discarded (the connection
 * is closed): the parsers never resynchronise. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Upper bounds the parsers can represent; limits above these are clamped. */
#define PROXY_H1_HEAD_MAX_LIMIT     (1u << 24)
#define PROXY_H1_CONN_TOKENS_MAX    16 /* custom Connection tokens per message */
#define PROXY_H1_CONTENT_LENGTH_MAX INT64_MAX

enum proxy_h1_err {
        PROXY_H1_OK,
        PROXY_H1_E_REQUEST_LINE,        /* 400: request line shape (spaces, CRLF, no version) */
        PROXY_H1_E_METHOD,              /* 400: method is not a token */
        PROXY_H1_E_TARGET,              /* 400: request-target chars or form */
        PROXY_H1_E_TARGET_TOO_LONG,     /* 414 */
        PROXY_H1_E_VERSION,             /* 400: malformed HTTP-version */
        PROXY_H1_E_VERSION_UNSUPPORTED, /* 505: well-formed, not HTTP/1.0 or HTTP/1.1 */
        PROXY_H1_E_STATUS_LINE,         /* 502: response status line */
        PROXY_H1_E_BARE_LF,             /* 400: LF not preceded by CR */
        PROXY_H1_E_BARE_CR,             /* 400: CR not followed by LF */
        PROXY_H1_E_HEADER_NAME,         /* 400: field name not a token, or a framing look-alike */
        PROXY_H1_E_WS_BEFORE_COLON,     /* 400: "Name : value" (RFC 9112 §5.1) */
        PROXY_H1_E_HEADER_VALUE,        /* 400: CTL (other than HTAB), DEL or NUL in a value */
        PROXY_H1_E_OBS_FOLD,            /* 400: line folding (RFC 9112 §5.2) */
        PROXY_H1_E_WS_LINE,             /* 400: white space before the first field (§2.2) */
        PROXY_H1_E_HEAD_TOO_LARGE,      /* 431 */
        PROXY_H1_E_TOO_MANY_HEADERS,    /* 431 */
        PROXY_H1_E_CL_INVALID,          /* 400: Content-Length not 1*DIGIT or too large */
        PROXY_H1_E_CL_DUPLICATE,        /* 400: more than one Content-Length field */
        PROXY_H1_E_TE_INVALID,          /* 400: Transfer-Encoding syntax */
        PROXY_H1_E_TE_DUPLICATE,        /* 400: more than one Transfer-Encoding field */
        PROXY_H1_E_TE_NOT_CHUNKED,      /* 400: chunked absent, repeated or not final */
        PROXY_H1_E_TE_UNKNOWN,          /* 501: a coding we do not implement before chunked */
        PROXY_H1_E_TE_AND_CL,           /* 400: both Transfer-Encoding and Content-Length */
        PROXY_H1_E_TE_HTTP10,           /* 400: Transfer-Encoding in an HTTP/1.0 message */
        PROXY_H1_E_HOST_MISSING,        /* 400: HTTP/1.1 request without Host */
        PROXY_H1_E_HOST_DUPLICATE,      /* 400 */
        PROXY_H1_E_HOST_INVALID,        /* 400: not host[:port] */
        PROXY_H1_E_HOST_MISMATCH,       /* 400: absolute-form authority differs from Host */
        PROXY_H1_E_CONNECTION,          /* 400: Connection syntax or too many tokens */
        PROXY_H1_E_UPGRADE,             /* 400: Upgrade syntax */
        PROXY_H1_E_EXPECT,              /* 417: an expectation other than 100-continue */
        PROXY_H1_E_CHUNK_SIZE,          /* 400: chunk-size not hex or overflowing */
        PROXY_H1_E_CHUNK_EXT,           /* 400: chunk extension bytes or length */
        PROXY_H1_E_CHUNK_CRLF,          /* 400: missing CRLF after chunk data or line */
        PROXY_H1_E_TRAILER,             /* 400: trailer field syntax */
        PROXY_H1_E_TRAILER_TOO_LARGE,   /* 431 */
        _PROXY_H1_E_MAX,
};

/* "ok", "bad-request-line", ...; NULL for values out of range. */
const char *proxy_h1_err_to_string(enum proxy_h1_err e);
/* The status to answer a client whose request failed with @e: 400, 414,
 * 417, 431, 501 or 505 (0 for PROXY_H1_OK). Backend failures are 502. */
int proxy_h1_err_status(enum proxy_h1_err e);

enum proxy_h1_body {
        PROXY_H1_BODY_NONE,    /* no body (or a response that cannot have one) */
        PROXY_H1_BODY_LENGTH,  /* exactly content_length bytes (may be 0) */
        PROXY_H1_BODY_CHUNKED, /* chunked; decode with proxy_h1_chunked_decode() */
        PROXY_H1_BODY_CLOSE,   /* responses only: until the backend closes */
        _PROXY_H1_BODY_MAX,
};
const char *proxy_h1_body_to_string(enum proxy_h1_body b);

enum proxy_h1_form {
        PROXY_H1_FORM_ORIGIN,    /* "/path?query" */
        PROXY_H1_FORM_ABSOLUTE,  /* "http://authority/path?query" (RFC 9112 §3.2.2) */
        PROXY_H1_FORM_AUTHORITY, /* "host:port", CONNECT only: the engine rejects it */
        PROXY_H1_FORM_ASTERISK,  /* "*", OPTIONS only */
        _PROXY_H1_FORM_MAX,
};
const char *proxy_h1_form_to_string(enum proxy_h1_form f);

enum proxy_h1_method {
        PROXY_H1_METHOD_OTHER, /* any other token, forwarded as is */
        PROXY_H1_METHOD_GET,
        PROXY_H1_METHOD_HEAD,
        PROXY_H1_METHOD_POST,
        PROXY_H1_METHOD_PUT,
        PROXY_H1_METHOD_DELETE,
        PROXY_H1_METHOD_CONNECT,
        PROXY_H1_METHOD_OPTIONS,
        PROXY_H1_METHOD_TRACE,
        PROXY_H1_METHOD_PATCH,
        _PROXY_H1_METHOD_MAX,
};
const char *proxy_h1_method_to_string(enum proxy_h1_method m);

/* Field names the parser recognises (case-insensitively). */
enum proxy_h1_hdr {
        PROXY_H1_HDR_OTHER,
        PROXY_H1_HDR_HOST,
        PROXY_H1_HDR_CONTENT_LENGTH,
        PROXY_H1_HDR_TRANSFER_ENCODING,
        PROXY_H1_HDR_CONNECTION,
        PROXY_H1_HDR_KEEP_ALIVE,
        PROXY_H1_HDR_PROXY_CONNECTION,
        PROXY_H1_HDR_TE,
        PROXY_H1_HDR_TRAILER,
        PROXY_H1_HDR_UPGRADE,
        PROXY_H1_HDR_PROXY_AUTHORIZATION,
        PROXY_H1_HDR_PROXY_AUTHENTICATE,
        PROXY_H1_HDR_HTTP2_SETTINGS,
        PROXY_H1_HDR_EXPECT,
        PROXY_H1_HDR_X_FORWARDED_FOR,
        PROXY_H1_HDR_X_FORWARDED_PROTO,
        PROXY_H1_HDR_X_FORWARDED_HOST,
        PROXY_H1_HDR_X_REAL_IP,
        PROXY_H1_HDR_FRAMING_LOOKALIKE, /* Content_Length, Transfer_Encoding: rejected */
        _PROXY_H1_HDR_MAX,
};
const char *proxy_h1_hdr_to_string(enum proxy_h1_hdr h);

/* A byte range of the caller's head buffer. */
struct proxy_h1_span {
        uint32_t off;
        uint32_t len;
};

#define PROXY_H1_HF_HOP (1u << 0) /* hop-by-hop (or listed in Connection): not forwarded */

struct proxy_h1_header {
        struct proxy_h1_span name;  /* field name as received */
        struct proxy_h1_span value; /* value without leading/trailing OWS */
        uint32_t line_len;          /* name through trailing OWS, CRLF excluded */
        uint8_t id;                 /* enum proxy_h1_hdr */
        uint8_t flags;              /* PROXY_H1_HF_* (set by *_analyze()) */
};

struct proxy_h1_limits {
        uint32_t max_head;    /* start line + fields + final CRLF, bytes (431) */
        uint32_t max_headers; /* field lines (431); also bounded by the array given */
        uint32_t max_target;  /* request-target bytes (414); requests only */
};

/* Parser position: private to http1.c, kept in the message for resumption. */
struct proxy_h1_scan {
        uint32_t pos;    /* next byte to look at */
        uint32_t mark;   /* start of the current token or line */
        uint32_t vstart; /* current field value start */
        uint32_t vend;   /* current field value end (last non-OWS byte + 1) */
        uint8_t st;      /* state */
};

/* Fields common to requests and responses. */
struct proxy_h1_head {
        struct proxy_h1_limits limits;
        struct proxy_h1_header *headers; /* caller's array, headers_cap entries */
        uint32_t headers_cap;
        uint32_t n_headers;
        struct proxy_h1_scan scan;
        uint32_t head_len; /* bytes of the complete head, once parsed */
        uint8_t minor;     /* HTTP/1.<minor>: 0 or 1 */
        enum proxy_h1_err err;
        /* Set by *_analyze(): */
        enum proxy_h1_body body;
        uint64_t content_length; /* for PROXY_H1_BODY_LENGTH (or a HEAD/304 response) */
        bool has_content_length; /* a valid Content-Length field was present */
        bool keep_alive;         /* the connection may carry another message */
        bool conn_close;         /* Connection: close */
        bool conn_keep_alive;    /* Connection: keep-alive */
        bool conn_upgrade;       /* Connection: upgrade */
        bool upgrade_websocket;  /* Upgrade lists "websocket" */
        bool upgrade_h2c;        /* Upgrade lists "h2c": never forwarded */
};

#define PROXY_H1_REQ_EXPECT_CONTINUE (1u << 0) /* Expect: 100-continue */
#define PROXY_H1_REQ_WEBSOCKET       (1u << 1) /* a WebSocket upgrade to forward (GET, 1.1) */
#define PROXY_H1_REQ_H2C             (1u << 2) /* asked for h2c: Upgrade stripped */

struct proxy_h1_req {
        struct proxy_h1_head h;
        struct proxy_h1_span method;
        enum proxy_h1_method method_id;
        struct proxy_h1_span target; /* request-target as received */
        enum proxy_h1_form form;
        struct proxy_h1_span path;      /* origin-form part ("" for "http://a"; "*") */
        struct proxy_h1_span authority; /* absolute-form or authority-form host[:port] */
        /* Set by proxy_h1_req_analyze(): */
        struct proxy_h1_span host; /* host without port (Host, else authority) */
        uint32_t port;             /* port in Host/authority, 0 if none */
        int32_t host_index;        /* index of the Host field, -1 if none */
        unsigned flags;            /* PROXY_H1_REQ_* */
};

struct proxy_h1_resp {
        struct proxy_h1_head h;
        unsigned status;             /* 100..599 */
        struct proxy_h1_span reason; /* reason-phrase (may be empty) */
};

/* Prepare @req for a new message. @headers (cap entries) is the caller's
 * storage for field offsets; it must outlive @req. */
void proxy_h1_req_init(struct proxy_h1_req *req, const struct proxy_h1_limits *limits,
                       struct proxy_h1_header *headers, uint32_t cap);
void proxy_h1_resp_init(struct proxy_h1_resp *resp, const struct proxy_h1_limits *limits,
                        struct proxy_h1_header *headers, uint32_t cap);

/* Parse the request head in @buf[0..len). @buf holds the head from its first
 * byte; between calls the caller may only append (same bytes, larger @len).
 * Returns the head length (the body starts at @buf + r) once the empty line
 * is seen, -EAGAIN if more bytes are needed, or on a syntax error (req->h.err
 * says which): -EBADMSG, -ENAMETOOLONG (414), -EMSGSIZE (431) or
 * -EPROTONOSUPPORT (505). Leading empty lines (CRLF) are skipped. */
int proxy_h1_req_parse(struct proxy_h1_req *req, const uint8_t *buf, size_t len);

/* Semantic checks on a parsed request (same @buf): framing, Host, Connection,
 * Upgrade, Expect; marks hop-by-hop fields. Returns 0, or -EBADMSG,
 * -EOPNOTSUPP (501) with req->h.err set. */
int proxy_h1_req_analyze(struct proxy_h1_req *req, const uint8_t *buf);

/* Parse a backend's response head; same contract as proxy_h1_req_parse().
 * Any error means the backend is broken or hostile: answer 502. */
int proxy_h1_resp_parse(struct proxy_h1_resp *resp, const uint8_t *buf, size_t len);

/* Framing of a parsed response per RFC 9112 §6.3; @head_request: the request
 * was HEAD. Rejects what the request side rejects (CL+TE, bad or repeated
 * CL, any Transfer-Encoding but "chunked"), so a backend cannot make us
 * disagree with it on where the body ends. Returns 0 or -EBADMSG. */
int proxy_h1_resp_analyze(struct proxy_h1_resp *resp, const uint8_t *buf, bool head_request);

/* ---- chunked transfer coding ---- */

struct proxy_h1_chunked {
        uint64_t remaining;     /* data bytes left in the current chunk */
        uint64_t size;          /* chunk-size being read */
        uint32_t line_len;      /* bytes of the current chunk-size or trailer line */
        uint32_t trailer_bytes; /* bytes of the trailer section so far */
        uint32_t n_trailers;    /* trailer fields so far */
        uint32_t max_line;      /* limit on a chunk-size line (size and extensions) */
        uint32_t max_trailer;   /* limit on the trailer section, bytes */
        uint32_t max_trailers;  /* limit on trailer fields */
        uint32_t tr_held;       /* keep: trailer bytes looked at, not yet consumed */
        uint8_t st;             /* state */
        bool keep;              /* keep the trailer section (proxy_h1_chunked_keep_trailers()) */
        enum proxy_h1_err err;
};

/* @max_line bounds a chunk-size line including extensions (e.g. 4096),
 * @max_trailer the trailer section in bytes and @max_trailers its fields. */
void proxy_h1_chunked_init(struct proxy_h1_chunked *c, uint32_t max_line, uint32_t max_trailer,
                           uint32_t max_trailers);
/* Keep the trailer section instead of dropping it (after init): the
 * decoder then consumes no byte of it until its final CRLF, so the caller
 * holds it (at most max_trailer bytes) and presents it again, from its
 * first byte at @p, with the bytes that follow; once complete, the whole
 * section is consumed at once and proxy_h1_chunked_trailers() locates its
 * fields in the bytes just consumed. Nothing is copied. */
void proxy_h1_chunked_keep_trailers(struct proxy_h1_chunked *c);
/* Decode from @p[0..n). Returns the bytes consumed (the caller drops them;
 * nothing needs to be kept but a kept trailer section) or -EBADMSG /
 * -EMSGSIZE with c->err set. If the consumed bytes end with body data,
 * *ret_data_len > 0 and the data is @p[r - *ret_data_len .. r): forward it
 * before calling again. Stops after the final CRLF
 * (proxy_h1_chunked_done()); later bytes are not consumed (the next
 * pipelined message). Trailer fields are checked, then dropped unless kept. */
int proxy_h1_chunked_decode(struct proxy_h1_chunked *c, const uint8_t *p, size_t n,
                            size_t *ret_data_len);
bool proxy_h1_chunked_done(const struct proxy_h1_chunked *c);
/* Bytes of a kept trailer section the caller holds (not yet consumed). */
static inline uint32_t proxy_h1_chunked_held(const struct proxy_h1_chunked *c)
{
        return c->tr_held;
}
/* After the call to proxy_h1_chunked_decode() that returned @r and made a
 * decoder with kept trailers done: the trailer field lines (each
 * "name:OWS value OWS CRLF", validated; the final CRLF excluded) are the
 * @*ret_len bytes at @p + @*ret_off, @p as given to that call. */
void proxy_h1_chunked_trailers(const struct proxy_h1_chunked *c, int r, size_t *ret_off,
                               size_t *ret_len);

/* Whether a field may be passed on as a trailer (case-insensitive @name):
 * not one that frames, routes, modifies the request, authenticates,
 * controls caching or says how to process the content, nor a hop-by-hop
 * one (RFC 9110 §6.5.1, §7.6.1). Used for trailers in both directions. */
bool proxy_h1_trailer_allowed(const uint8_t *name, size_t len);
/* Drop, in place, the lines of validated trailer field lines @p[0, len)
 * (see proxy_h1_chunked_trailers()) whose field must not be a trailer.
 * Returns the length left; the lines kept are byte-exact and in order. */
size_t proxy_h1_trailers_filter(uint8_t *p, size_t len);
/* The field at *pos of validated trailer field lines @p[0, len): its
 * name and its value without OWS (offsets into @p); *pos moves to the next
 * line. Returns false at the end. */
bool proxy_h1_trailer_next(const uint8_t *p, size_t len, size_t *pos,
                           struct proxy_h1_span *ret_name, struct proxy_h1_span *ret_value);

#define PROXY_H1_CHUNK_HEAD_MAX 18          /* 16 hex digits + CRLF */
#define PROXY_H1_CHUNK_END      "\r\n"      /* after each chunk's data */
#define PROXY_H1_CHUNK_LAST     "0\r\n\r\n" /* last-chunk, no trailers */

/* Write the chunk-size line for @n > 0 data bytes ("1a2\r\n") into @out;
 * returns its length. The data and PROXY_H1_CHUNK_END follow it. */
size_t proxy_h1_chunk_head(uint8_t out[PROXY_H1_CHUNK_HEAD_MAX], uint64_t n);
/* Frame @data[0..n) as one whole chunk into @out. n == 0 writes nothing.
 * Returns bytes written or -ENOBUFS. */
int proxy_h1_chunk_encode(const uint8_t *data, size_t n, uint8_t *out, size_t size);

/* ---- serialisation ---- */

struct proxy_h1_forward {
        const char *client_ip; /* peer address, "192.0.2.1" or "2001:db8::1" */
        const char *host;      /* validated host[:port]: X-Forwarded-Host, Host if absent */
        bool https;            /* X-Forwarded-Proto: https (else http) */
        bool replace_xff;      /* drop the client's X-Forwarded-For instead of appending */
};

/* Write the request head for the backend into @out: "METHOD origin-target
 * HTTP/1.1", the fields except hop-by-hop ones byte-exact and in order
 * (Host included), X-Forwarded-For (client's values, then ours),
 * X-Forwarded-Proto, X-Forwarded-Host, X-Real-IP (client-supplied ones
 * dropped), our framing (Content-Length: N or Transfer-Encoding: chunked)
 * and "Connection: keep-alive", or "Connection: upgrade" and "Upgrade:
 * websocket" for a WebSocket request. @req must have passed analyze.
 * Returns bytes written, -EINVAL if @f holds an invalid address or host or
 * @req is a CONNECT (authority-form), or -ENOBUFS if @size is too small. */
int proxy_h1_req_serialize(const struct proxy_h1_req *req, const uint8_t *buf,
                           const struct proxy_h1_forward *f, uint8_t *out, size_t size);

struct proxy_h1_resp_opts {
        bool client_http10; /* the client spoke HTTP/1.0: no chunked coding to it */
        bool keep_alive;    /* the engine wants to keep the client connection */
};

/* Write the response head for the client: "HTTP/1.1 code reason", fields
 * except hop-by-hop ones byte-exact, then framing and Connection. The body
 * framing towards the client is returned in *ret_body: LENGTH as received,
 * CHUNKED when the engine must chunk-encode (backend chunked or
 * close-delimited to an HTTP/1.1 client), CLOSE when the body is sent raw
 * and the connection closed after it, NONE for no body (Content-Length kept
 * for HEAD and 304). A 101 gets "Connection: upgrade" and "Upgrade:
 * websocket". Returns bytes written or -ENOBUFS. */
int proxy_h1_resp_serialize(const struct proxy_h1_resp *resp, const uint8_t *buf,
                            const struct proxy_h1_resp_opts *o, uint8_t *out, size_t size,
                            enum proxy_h1_body *ret_body);
