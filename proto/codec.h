/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* zbus envelopes and gateway types <-> msgpack, byte-compatible with
 * vmihailenco/msgpack v4.0.4 as used by zbus v1.0.1 (see
 * protocol-zbus-gateway.md §2-§3). Pure: buffers in, buffers out.
 *
 * Decoders follow Go's decoder: keys in any order, unknown keys skipped,
 * str/bin interchangeable, any integer width. They return 0, -EBADMSG for
 * malformed msgpack, -EDOM for well-formed data of the wrong shape (Go's
 * "invalid argument type"), -E2BIG for a limit, -ENOMEM. Encoders append to
 * a struct strbuf and produce the exact bytes a Go peer would. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/strbuf.h"

#define PROTO_MAX_INPUTS 16   /* arguments accepted in one request */
#define PROTO_STR_MAX    4096 /* bytes in any decoded string argument */
#define PROTO_LIST_MAX   1024 /* elements in any decoded list argument */

/* An owned string that may hold NUL bytes; s is always NUL-terminated. */
struct proto_str {
        char *s;
        size_t n;
};
void proto_str_done(struct proto_str *s);
/* Does @s equal the C string @c exactly (no embedded NUL)? */
bool proto_str_eq(const struct proto_str *s, const char *c);
/* True when s contains a NUL byte (unusable as a C string). */
bool proto_str_has_nul(const struct proto_str *s);

/* ---- envelope (§2.3) ---- */

struct proto_request {
        struct proto_str id;
        struct proto_str reply_to;
        struct proto_str object_name;
        struct proto_str object_version;
        struct proto_str method;
        size_t n_inputs;
        struct proto_str inputs[PROTO_MAX_INPUTS]; /* each an independent msgpack document */
};
void proto_request_done(struct proto_request *req);
/* Decode a request payload. A missing key leaves its zero value. */
int proto_request_decode(const void *p, size_t n, struct proto_request *ret);
/* Encode as the Go client does: map{ID, Inputs, Object{Name, Version}, ReplyTo, Method}. */
int proto_request_encode(struct strbuf *out, const char *id, const char *object_name,
                         const char *object_version, const char *reply_to, const char *method,
                         const struct proto_str *inputs, size_t n_inputs);

struct proto_response {
        struct proto_str id;
        bool has_data;           /* Output.Data is a bin/str (not nil) */
        struct proto_str data;   /* Output.Data contents: a msgpack document */
        bool has_error;          /* Output.Error is set (a map) */
        struct proto_str error;  /* Output.Error.Message */
        bool has_protocol_error; /* top-level Error is set */
        struct proto_str protocol_error;
};
void proto_response_done(struct proto_response *resp);
int proto_response_decode(const void *p, size_t n, struct proto_response *ret);
/* Encode map{ID, Output{Data, Error}, Error}. @data NULL means Data nil;
 * @error NULL means Output.Error nil; @protocol_error NULL means Error nil. */
int proto_response_encode(struct strbuf *out, const struct proto_str *id, const void *data,
                          size_t data_len, const char *error, const char *protocol_error);

/* ---- scalar documents (one argument or one Data) ---- */
int proto_encode_str(struct strbuf *out, const char *s);
int proto_encode_nil(struct strbuf *out);
/* Decode a whole document that must be one string (str/bin/nil). */
int proto_decode_str(const void *p, size_t n, struct proto_str *ret);
int proto_decode_uint64(const void *p, size_t n, uint64_t *ret);

/* ---- gateway types (§3.1) ---- */

/* GatewayNameProxy / GatewayFQDNProxy: GatewayBase inlined + Name or FQDN. */
struct proto_gw_proxy {
        bool tls_passthrough;
        size_t n_backends;
        struct proto_str *backends; /* NULL when nil */
        bool has_network;           /* Network was a string (even ""), not nil */
        struct proto_str network;
        struct proto_str name; /* "Name" or "FQDN" */
};
void proto_gw_proxy_done(struct proto_gw_proxy *p);
/* @fqdn selects the FQDN key instead of Name. */
int proto_gw_proxy_decode(const void *p, size_t n, bool fqdn, struct proto_gw_proxy *ret);
int proto_gw_proxy_encode(struct strbuf *out, bool fqdn, bool tls_passthrough,
                          const char *const *backends, size_t n_backends, const char *network,
                          const char *name);

/* GatewayMetrics {Request, Response}: maps workload ID -> float64, nil when empty. */
struct proto_metric {
        const char *id;
        double value;
};
int proto_metrics_encode(struct strbuf *out, const struct proto_metric *request, size_t n_request,
                         const struct proto_metric *response, size_t n_response);
/* Decode: calls @cb for each entry (@which: 0 Request, 1 Response). */
int proto_metrics_decode(const void *p, size_t n,
                         int (*cb)(int which, const char *id, size_t id_len, double v, void *ud),
                         void *ud);

/* zbus status object (§1.3). */
struct proto_worker_status {
        bool busy;
        int64_t start_sec; /* StartTime, Unix seconds */
        uint32_t start_nsec;
        const char *action; /* "" when free */
};
int proto_status_encode(struct strbuf *out, const char *object_name, const char *object_version,
                        const struct proto_worker_status *workers, size_t n_workers);
/* Go time.Time as ext -1 with Go's choice of 4/8/12-byte body. */
int proto_encode_time(struct strbuf *out, int64_t sec, uint32_t nsec);

/* networker PublicConfig (§6). Addresses are copied as 4 or 16 raw bytes. */
struct proto_ipnet {
        bool has_ip;
        uint8_t ip[16];
        uint8_t ip_len; /* 4 or 16 */
        bool has_mask;
        uint8_t mask[16];
        uint8_t mask_len;
};
struct proto_public_config {
        struct proto_str type;
        struct proto_ipnet ipv4, ipv6;
        bool has_gw4, has_gw6;
        uint8_t gw4[16], gw6[16];
        uint8_t gw4_len, gw6_len;
        struct proto_str domain;
};
void proto_public_config_done(struct proto_public_config *pc);
int proto_public_config_decode(const void *p, size_t n, struct proto_public_config *ret);
int proto_public_config_encode(struct strbuf *out, const struct proto_public_config *pc);

/* api-gateway results (§4.8): Data = [value, SubstrateError]. */
struct proto_substrate_error {
        bool has_err;
        struct proto_str err;
        int64_t code;
};
void proto_substrate_error_done(struct proto_substrate_error *e);
int proto_contract_id_result_decode(const void *p, size_t n, uint64_t *ret_id,
                                    struct proto_substrate_error *ret_err);
struct proto_contract {
        bool is_created;
        bool is_grace_period;
        uint32_t twin_id;
        uint64_t contract_id;
};
int proto_contract_result_decode(const void *p, size_t n, struct proto_contract *ret,
                                 struct proto_substrate_error *ret_err);

/* ---- operator methods (gatewayd extension, not in zos) ---- */

/* One entry of ProxyInfo.BackendHealth: map{Backend, Up, Since, LastError,
 * LastErrorTime}; times nil when 0 (Since: up since the route was made). */
struct proto_backend_health {
        const char *backend;
        bool up;
        int64_t since_ms;
        const char *last_error; /* NULL: nil (none yet) */
        int64_t last_error_ms;
};

/* ProxyInfo: map{ID, Kind, FQDN, Name, Backends, TLSPassthrough, Network, Created, Updated,
 * RequestBytes, ResponseBytes, BackendHealth}. */
struct proto_proxy_info {
        const char *id;
        const char *kind; /* "name" | "fqdn" */
        const char *fqdn;
        const char *name; /* NULL for FQDN proxies: nil */
        const char *const *backends;
        size_t n_backends;
        bool tls_passthrough;
        const char *network; /* NULL: nil */
        int64_t created_sec, updated_sec;
        double request_bytes, response_bytes;
        const struct proto_backend_health *health; /* BackendHealth: [] when none is known */
        size_t n_health;
};
/* Appends one ProxyInfo map (use proto_encode_array_header() for lists). */
int proto_proxy_info_encode(struct strbuf *out, const struct proto_proxy_info *pi);
int proto_encode_array_header(struct strbuf *out, uint32_t n);
int proto_encode_map_header(struct strbuf *out, uint32_t n);
int proto_encode_key_str(struct strbuf *out, const char *key,
                         const char *value);                                /* key + str|nil */
int proto_encode_key_uint(struct strbuf *out, const char *key, uint64_t v); /* key + cf */
int proto_encode_key_bool(struct strbuf *out, const char *key, bool v);
int proto_encode_bool(struct strbuf *out, bool v);
int proto_encode_uint64(struct strbuf *out, uint64_t v); /* cf + 8 bytes, as Go uint64 */
int proto_encode_int64(struct strbuf *out, int64_t v);   /* d3 + 8 bytes, as Go int */
int proto_encode_uint32(struct strbuf *out, uint32_t v); /* ce + 4 bytes */
int proto_encode_float64(struct strbuf *out, double v);
int proto_encode_bin(struct strbuf *out, const void *p, size_t n);
