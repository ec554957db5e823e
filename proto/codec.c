/* SPDX-License-Identifier: Apache-2.0 */
#include "proto/codec.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

#include "common/macros.h"
#include "proto/mp-read.h"

/* ======================================================================
 * Encoding: msgpack-c's packer writing into a strbuf. msgpack-c emits the
 * same str8/bin8 thresholds as Go's v4 encoder; integers use the fixed
 * width ("fix_") variants because Go never compacts them.
 * ====================================================================== */

static int sb_write(void *data, const char *buf, size_t len)
{
        /* msgpack-c expects 0 on success; keep our errno in the strbuf path. */
        return strbuf_append(data, buf, len) < 0 ? -1 : 0;
}

#define PACKER(pk, out)                                                                            \
        msgpack_packer pk;                                                                         \
        msgpack_packer_init(&pk, (out), sb_write)

/* msgpack-c returns -1 on a failed write: the only failure is our strbuf. */
#define PK(expr)                                                                                   \
        do {                                                                                       \
                if ((expr) < 0)                                                                    \
                        return -ENOMEM;                                                            \
        } while (0)

static int pack_str(msgpack_packer *pk, const char *s, size_t n)
{
        PK(msgpack_pack_str(pk, n));
        PK(msgpack_pack_str_body(pk, s, n));
        return 0;
}

static int pack_cstr(msgpack_packer *pk, const char *s)
{
        return pack_str(pk, s, strlen(s));
}

static int pack_key(msgpack_packer *pk, const char *key)
{
        return pack_cstr(pk, key);
}

int proto_encode_str(struct strbuf *out, const char *s)
{
        PACKER(pk, out);
        return pack_cstr(&pk, s);
}

int proto_encode_nil(struct strbuf *out)
{
        PACKER(pk, out);
        PK(msgpack_pack_nil(&pk));
        return 0;
}

int proto_encode_array_header(struct strbuf *out, uint32_t n)
{
        PACKER(pk, out);
        PK(msgpack_pack_array(&pk, n));
        return 0;
}

int proto_encode_map_header(struct strbuf *out, uint32_t n)
{
        PACKER(pk, out);
        PK(msgpack_pack_map(&pk, n));
        return 0;
}

int proto_encode_bool(struct strbuf *out, bool v)
{
        PACKER(pk, out);
        PK(v ? msgpack_pack_true(&pk) : msgpack_pack_false(&pk));
        return 0;
}

int proto_encode_uint64(struct strbuf *out, uint64_t v)
{
        PACKER(pk, out);
        PK(msgpack_pack_fix_uint64(&pk, v));
        return 0;
}

int proto_encode_int64(struct strbuf *out, int64_t v)
{
        PACKER(pk, out);
        PK(msgpack_pack_fix_int64(&pk, v));
        return 0;
}

int proto_encode_uint32(struct strbuf *out, uint32_t v)
{
        PACKER(pk, out);
        PK(msgpack_pack_fix_uint32(&pk, v));
        return 0;
}

int proto_encode_float64(struct strbuf *out, double v)
{
        PACKER(pk, out);
        PK(msgpack_pack_double(&pk, v));
        return 0;
}

int proto_encode_bin(struct strbuf *out, const void *p, size_t n)
{
        PACKER(pk, out);
        PK(msgpack_pack_bin(&pk, n));
        PK(msgpack_pack_bin_body(&pk, p, n));
        return 0;
}

int proto_encode_key_str(struct strbuf *out, const char *key, const char *value)
{
        PACKER(pk, out);
        int r = pack_key(&pk, key);

        if (r < 0)
                return r;
        if (!value) {
                PK(msgpack_pack_nil(&pk));
                return 0;
        }
        return pack_cstr(&pk, value);
}

int proto_encode_key_uint(struct strbuf *out, const char *key, uint64_t v)
{
        PACKER(pk, out);
        int r = pack_key(&pk, key);

        if (r < 0)
                return r;
        PK(msgpack_pack_fix_uint64(&pk, v));
        return 0;
}

int proto_encode_key_bool(struct strbuf *out, const char *key, bool v)
{
        int r = proto_encode_str(out, key);

        if (r < 0)
                return r;
        return proto_encode_bool(out, v);
}

int proto_encode_time(struct strbuf *out, int64_t sec, uint32_t nsec)
{
        uint8_t body[12];
        size_t n;

        /* Go v4.0.4 time.go: 4 bytes when nsec == 0 and sec fits 32 bits,
         * 8 bytes when sec fits 34 bits, else 12 bytes. */
        if (sec >= 0 && (uint64_t)sec >> 34 == 0) {
                if (nsec == 0 && (uint64_t)sec >> 32 == 0) {
                        uint32_t s = (uint32_t)sec;
                        body[0] = (uint8_t)(s >> 24);
                        body[1] = (uint8_t)(s >> 16);
                        body[2] = (uint8_t)(s >> 8);
                        body[3] = (uint8_t)s;
                        n = 4;
                } else {
                        uint64_t x = ((uint64_t)nsec << 34) | (uint64_t)sec;
                        for (int i = 0; i < 8; i++)
                                body[i] = (uint8_t)(x >> (56 - 8 * i));
                        n = 8;
                }
        } else {
                for (int i = 0; i < 4; i++)
                        body[i] = (uint8_t)(nsec >> (24 - 8 * i));
                for (int i = 0; i < 8; i++)
                        body[4 + i] = (uint8_t)((uint64_t)sec >> (56 - 8 * i));
                n = 12;
        }
        PACKER(pk, out);
        PK(msgpack_pack_ext(&pk, n, -1));
        PK(msgpack_pack_ext_body(&pk, body, n));
        return 0;
}

/* ======================================================================
 * Decoding helpers
 * ====================================================================== */

void proto_str_done(struct proto_str *s)
{
        s->s = mfree(s->s);
        s->n = 0;
}

bool proto_str_eq(const struct proto_str *s, const char *c)
{
        size_t n = strlen(c);

        return s->s && s->n == n && memcmp(s->s, c, n) == 0;
}

bool proto_str_has_nul(const struct proto_str *s)
{
        return s->s && memchr(s->s, 0, s->n) != NULL;
}

static int str_set(struct proto_str *dst, const char *p, size_t n)
{
        char *c = malloc(n + 1);

        if (!c)
                return -ENOMEM;
        memcpy(c, p, n);
        c[n] = 0;
        free(dst->s);
        dst->s = c;
        dst->n = n;
        return 0;
}

/* Read a str/bin/nil into an owned proto_str, bounded by @max. */
static int read_str(struct mp_reader *r, struct proto_str *dst, size_t max, bool *ret_nil)
{
        const char *p;
        size_t n;
        int k;

        k = mp_read_strlike(r, &p, &n, ret_nil);
        if (k < 0)
                return k;
        if (n > max)
                return -E2BIG;
        return str_set(dst, p, n);
}

/* A document must be exactly one item. */
static int expect_end(const struct mp_reader *r)
{
        return mp_remaining(r) == 0 ? 0 : -EBADMSG;
}

/* ======================================================================
 * Envelope
 * ====================================================================== */

void proto_request_done(struct proto_request *req)
{
        proto_str_done(&req->id);
        proto_str_done(&req->reply_to);
        proto_str_done(&req->object_name);
        proto_str_done(&req->object_version);
        proto_str_done(&req->method);
        for (size_t i = 0; i < req->n_inputs; i++)
                proto_str_done(&req->inputs[i]);
        req->n_inputs = 0;
}

static const char *const object_fields[] = {"Name", "Version"};

static int on_object_field(int idx, struct mp_reader *r, void *ud)
{
        struct proto_request *req = ud;

        return read_str(r, idx == 0 ? &req->object_name : &req->object_version, PROTO_STR_MAX,
                        NULL);
}

static const char *const request_fields[] = {"ID", "Inputs", "Object", "ReplyTo", "Method"};

static int on_request_field(int idx, struct mp_reader *r, void *ud)
{
        struct proto_request *req = ud;
        uint32_t count;
        int k;

        switch (idx) {
        case 0:
                return read_str(r, &req->id, PROTO_STR_MAX, NULL);
        case 1:
                k = mp_read_array(r, &count, NULL);
                if (k < 0)
                        return k;
                if (count > PROTO_MAX_INPUTS)
                        return -E2BIG;
                for (size_t i = 0; i < req->n_inputs; i++)
                        proto_str_done(&req->inputs[i]);
                req->n_inputs = 0;
                for (uint32_t i = 0; i < count; i++) {
                        k = read_str(r, &req->inputs[i], SIZE_MAX, NULL);
                        if (k < 0)
                                return k;
                        req->n_inputs++;
                }
                return 0;
        case 2:
                return mp_read_struct(r, object_fields, ELEMENTSOF(object_fields), on_object_field,
                                      req, NULL);
        case 3:
                return read_str(r, &req->reply_to, PROTO_STR_MAX, NULL);
        case 4:
                /* An over-long method name is no method at all: the request
                 * is still answered ("not a function", as zbus does) rather
                 * than dropped as undecodable. */
                k = read_str(r, &req->method, PROTO_STR_MAX, NULL);
                return k == -E2BIG ? str_set(&req->method, "", 0) : k;
        }
        return -EINVAL;
}

int proto_request_decode(const void *p, size_t n, struct proto_request *ret)
{
        struct proto_request req = {};
        struct mp_reader r;
        bool nil;
        int k;

        mp_reader_init(&r, p, n);
        k = mp_read_struct(&r, request_fields, ELEMENTSOF(request_fields), on_request_field, &req,
                           &nil);
        if (k >= 0 && nil)
                k = -EDOM;
        if (k >= 0)
                k = expect_end(&r);
        if (k < 0) {
                proto_request_done(&req);
                return k;
        }
        *ret = req;
        return 0;
}

int proto_request_encode(struct strbuf *out, const char *id, const char *object_name,
                         const char *object_version, const char *reply_to, const char *method,
                         const struct proto_str *inputs, size_t n_inputs)
{
        PACKER(pk, out);
        int r;

        PK(msgpack_pack_map(&pk, 5));
        if ((r = pack_key(&pk, "ID")) < 0 || (r = pack_cstr(&pk, id)) < 0)
                return r;
        if ((r = pack_key(&pk, "Inputs")) < 0)
                return r;
        PK(msgpack_pack_array(&pk, n_inputs));
        for (size_t i = 0; i < n_inputs; i++) {
                PK(msgpack_pack_bin(&pk, inputs[i].n));
                PK(msgpack_pack_bin_body(&pk, inputs[i].s, inputs[i].n));
        }
        if ((r = pack_key(&pk, "Object")) < 0)
                return r;
        PK(msgpack_pack_map(&pk, 2));
        if ((r = pack_key(&pk, "Name")) < 0 || (r = pack_cstr(&pk, object_name)) < 0)
                return r;
        if ((r = pack_key(&pk, "Version")) < 0 || (r = pack_cstr(&pk, object_version)) < 0)
                return r;
        if ((r = pack_key(&pk, "ReplyTo")) < 0 || (r = pack_cstr(&pk, reply_to)) < 0)
                return r;
        if ((r = pack_key(&pk, "Method")) < 0 || (r = pack_cstr(&pk, method)) < 0)
                return r;
        return 0;
}

void proto_response_done(struct proto_response *resp)
{
        proto_str_done(&resp->id);
        proto_str_done(&resp->data);
        proto_str_done(&resp->error);
        proto_str_done(&resp->protocol_error);
        resp->has_data = resp->has_error = resp->has_protocol_error = false;
}

static const char *const message_fields[] = {"Message"};
static const char *const output_fields[] = {"Data", "Error"};
static const char *const response_fields[] = {"ID", "Output", "Error"};

static int on_message_field(int idx, struct mp_reader *r, void *ud)
{
        return read_str(r, ud, SIZE_MAX, NULL);
}

static int on_output_field(int idx, struct mp_reader *r, void *ud)
{
        struct proto_response *resp = ud;
        bool nil;
        int k;

        if (idx == 0) {
                k = read_str(r, &resp->data, SIZE_MAX, &nil);
                resp->has_data = k >= 0 && !nil;
                return k;
        }
        k = mp_read_struct(r, message_fields, 1, on_message_field, &resp->error, &nil);
        resp->has_error = k >= 0 && !nil;
        return k;
}

static int on_response_field(int idx, struct mp_reader *r, void *ud)
{
        struct proto_response *resp = ud;
        bool nil;
        int k;

        switch (idx) {
        case 0:
                return read_str(r, &resp->id, PROTO_STR_MAX, NULL);
        case 1:
                return mp_read_struct(r, output_fields, ELEMENTSOF(output_fields), on_output_field,
                                      resp, NULL);
        case 2:
                k = read_str(r, &resp->protocol_error, SIZE_MAX, &nil);
                resp->has_protocol_error = k >= 0 && !nil;
                return k;
        }
        return -EINVAL;
}

int proto_response_decode(const void *p, size_t n, struct proto_response *ret)
{
        struct proto_response resp = {};
        struct mp_reader r;
        bool nil;
        int k;

        mp_reader_init(&r, p, n);
        k = mp_read_struct(&r, response_fields, ELEMENTSOF(response_fields), on_response_field,
                           &resp, &nil);
        if (k >= 0 && nil)
                k = -EDOM;
        if (k >= 0)
                k = expect_end(&r);
        if (k < 0) {
                proto_response_done(&resp);
                return k;
        }
        *ret = resp;
        return 0;
}

int proto_response_encode(struct strbuf *out, const struct proto_str *id, const void *data,
                          size_t data_len, const char *error, const char *protocol_error)
{
        PACKER(pk, out);
        int r;

        PK(msgpack_pack_map(&pk, 3));
        if ((r = pack_key(&pk, "ID")) < 0 || (r = pack_str(&pk, id->s, id->n)) < 0)
                return r;
        if ((r = pack_key(&pk, "Output")) < 0)
                return r;
        PK(msgpack_pack_map(&pk, 2));
        if ((r = pack_key(&pk, "Data")) < 0)
                return r;
        if (data) {
                PK(msgpack_pack_bin(&pk, data_len));
                PK(msgpack_pack_bin_body(&pk, data, data_len));
        } else {
                PK(msgpack_pack_nil(&pk));
        }
        if ((r = pack_key(&pk, "Error")) < 0)
                return r;
        if (error) {
                PK(msgpack_pack_map(&pk, 1));
                if ((r = pack_key(&pk, "Message")) < 0 || (r = pack_cstr(&pk, error)) < 0)
                        return r;
        } else {
                PK(msgpack_pack_nil(&pk));
        }
        if ((r = pack_key(&pk, "Error")) < 0)
                return r;
        if (protocol_error)
                return pack_cstr(&pk, protocol_error);
        PK(msgpack_pack_nil(&pk));
        return 0;
}

int proto_decode_str(const void *p, size_t n, struct proto_str *ret)
{
        struct proto_str s = {};
        struct mp_reader r;
        int k;

        mp_reader_init(&r, p, n);
        k = read_str(&r, &s, PROTO_STR_MAX, NULL);
        if (k >= 0)
                k = expect_end(&r);
        if (k < 0) {
                proto_str_done(&s);
                return k;
        }
        *ret = s;
        return 0;
}

int proto_decode_uint64(const void *p, size_t n, uint64_t *ret)
{
        struct mp_reader r;
        int k;

        mp_reader_init(&r, p, n);
        k = mp_read_uint64(&r, ret);
        if (k < 0)
                return k;
        return expect_end(&r);
}

/* ======================================================================
 * Gateway types
 * ====================================================================== */

void proto_gw_proxy_done(struct proto_gw_proxy *p)
{
        for (size_t i = 0; i < p->n_backends; i++)
                proto_str_done(&p->backends[i]);
        p->backends = mfree(p->backends);
        p->n_backends = 0;
        proto_str_done(&p->network);
        proto_str_done(&p->name);
        p->has_network = false;
}

static const char *const name_proxy_fields[] = {"TLSPassthrough", "Backends", "Network", "Name"};
static const char *const fqdn_proxy_fields[] = {"TLSPassthrough", "Backends", "Network", "FQDN"};

static int on_proxy_field(int idx, struct mp_reader *r, void *ud)
{
        struct proto_gw_proxy *p = ud;
        uint32_t count;
        bool nil;
        int k;

        switch (idx) {
        case 0:
                return mp_read_bool(r, &p->tls_passthrough);
        case 1:
                k = mp_read_array(r, &count, &nil);
                if (k < 0)
                        return k;
                if (count > PROTO_LIST_MAX)
                        return -E2BIG;
                for (size_t i = 0; i < p->n_backends; i++)
                        proto_str_done(&p->backends[i]);
                p->backends = mfree(p->backends);
                p->n_backends = 0;
                if (nil)
                        return 0;
                p->backends = calloc(count ? count : 1, sizeof(*p->backends));
                if (!p->backends)
                        return -ENOMEM;
                for (uint32_t i = 0; i < count; i++) {
                        k = read_str(r, &p->backends[i], PROTO_STR_MAX, NULL);
                        if (k < 0)
                                return k;
                        p->n_backends++;
                }
                return 0;
        case 2:
                k = read_str(r, &p->network, PROTO_STR_MAX, &nil);
                if (k < 0)
                        return k;
                p->has_network = !nil;
                if (nil)
                        proto_str_done(&p->network);
                return 0;
        case 3:
                return read_str(r, &p->name, PROTO_STR_MAX, NULL);
        }
        return -EINVAL;
}

int proto_gw_proxy_decode(const void *p, size_t n, bool fqdn, struct proto_gw_proxy *ret)
{
        struct proto_gw_proxy gp = {};
        struct mp_reader r;
        int k;

        mp_reader_init(&r, p, n);
        k = mp_read_struct(&r, fqdn ? fqdn_proxy_fields : name_proxy_fields, 4, on_proxy_field, &gp,
                           NULL);
        if (k >= 0)
                k = expect_end(&r);
        if (k >= 0 && !gp.name.s)
                k = str_set(&gp.name, "", 0);
        if (k < 0) {
                proto_gw_proxy_done(&gp);
                return k;
        }
        *ret = gp;
        return 0;
}

int proto_gw_proxy_encode(struct strbuf *out, bool fqdn, bool tls_passthrough,
                          const char *const *backends, size_t n_backends, const char *network,
                          const char *name)
{
        PACKER(pk, out);
        int r;

        PK(msgpack_pack_map(&pk, 4));
        if ((r = pack_key(&pk, "TLSPassthrough")) < 0)
                return r;
        PK(tls_passthrough ? msgpack_pack_true(&pk) : msgpack_pack_false(&pk));
        if ((r = pack_key(&pk, "Backends")) < 0)
                return r;
        if (!backends) {
                PK(msgpack_pack_nil(&pk));
        } else {
                PK(msgpack_pack_array(&pk, n_backends));
                for (size_t i = 0; i < n_backends; i++)
                        if ((r = pack_cstr(&pk, backends[i])) < 0)
                                return r;
        }
        if ((r = pack_key(&pk, "Network")) < 0)
                return r;
        if (network) {
                if ((r = pack_cstr(&pk, network)) < 0)
                        return r;
        } else {
                PK(msgpack_pack_nil(&pk));
        }
        if ((r = pack_key(&pk, fqdn ? "FQDN" : "Name")) < 0)
                return r;
        return pack_cstr(&pk, name);
}

static int pack_metric_map(msgpack_packer *pk, const struct proto_metric *m, size_t n)
{
        int r;

        if (n == 0) {
                PK(msgpack_pack_nil(pk));
                return 0;
        }
        PK(msgpack_pack_map(pk, n));
        for (size_t i = 0; i < n; i++) {
                if ((r = pack_cstr(pk, m[i].id)) < 0)
                        return r;
                PK(msgpack_pack_double(pk, m[i].value));
        }
        return 0;
}

int proto_metrics_encode(struct strbuf *out, const struct proto_metric *request, size_t n_request,
                         const struct proto_metric *response, size_t n_response)
{
        PACKER(pk, out);
        int r;

        PK(msgpack_pack_map(&pk, 2));
        if ((r = pack_key(&pk, "Request")) < 0 ||
            (r = pack_metric_map(&pk, request, n_request)) < 0)
                return r;
        if ((r = pack_key(&pk, "Response")) < 0 ||
            (r = pack_metric_map(&pk, response, n_response)) < 0)
                return r;
        return 0;
}

struct metrics_ctx {
        int (*cb)(int which, const char *id, size_t id_len, double v, void *ud);
        void *ud;
};

static const char *const metrics_fields[] = {"Request", "Response"};

static int on_metrics_field(int idx, struct mp_reader *r, void *ud)
{
        struct metrics_ctx *ctx = ud;
        uint32_t count;
        int k;

        k = mp_read_map(r, &count, NULL);
        if (k < 0)
                return k;
        for (uint32_t i = 0; i < count; i++) {
                const char *kp;
                size_t kn;
                double v;

                k = mp_read_key(r, &kp, &kn);
                if (k < 0)
                        return k;
                k = mp_read_float(r, &v);
                if (k < 0)
                        return k;
                k = ctx->cb(idx, kp, kn, v, ctx->ud);
                if (k < 0)
                        return k;
        }
        return 0;
}

int proto_metrics_decode(const void *p, size_t n,
                         int (*cb)(int which, const char *id, size_t id_len, double v, void *ud),
                         void *ud)
{
        struct metrics_ctx ctx = {cb, ud};
        struct mp_reader r;
        int k;

        mp_reader_init(&r, p, n);
        k = mp_read_struct(&r, metrics_fields, 2, on_metrics_field, &ctx, NULL);
        if (k < 0)
                return k;
        return expect_end(&r);
}

int proto_status_encode(struct strbuf *out, const char *object_name, const char *object_version,
                        const struct proto_worker_status *workers, size_t n_workers)
{
        PACKER(pk, out);
        int r;

        PK(msgpack_pack_map(&pk, 2));
        if ((r = pack_key(&pk, "Objects")) < 0)
                return r;
        PK(msgpack_pack_array(&pk, 1));
        PK(msgpack_pack_map(&pk, 2));
        if ((r = pack_key(&pk, "Name")) < 0 || (r = pack_cstr(&pk, object_name)) < 0)
                return r;
        if ((r = pack_key(&pk, "Version")) < 0 || (r = pack_cstr(&pk, object_version)) < 0)
                return r;
        if ((r = pack_key(&pk, "Workers")) < 0)
                return r;
        PK(msgpack_pack_array(&pk, n_workers));
        for (size_t i = 0; i < n_workers; i++) {
                const struct proto_worker_status *w = &workers[i];

                PK(msgpack_pack_map(&pk, 3));
                if ((r = pack_key(&pk, "State")) < 0 ||
                    (r = pack_cstr(&pk, w->busy ? "busy" : "free")) < 0)
                        return r;
                if ((r = pack_key(&pk, "StartTime")) < 0 ||
                    (r = proto_encode_time(out, w->start_sec, w->start_nsec)) < 0)
                        return r;
                if ((r = pack_key(&pk, "Action")) < 0 ||
                    (r = pack_cstr(&pk, strempty(w->action))) < 0)
                        return r;
        }
        return 0;
}

/* ---- PublicConfig ---- */

void proto_public_config_done(struct proto_public_config *pc)
{
        proto_str_done(&pc->type);
        proto_str_done(&pc->domain);
}

static int read_ip_bytes(struct mp_reader *r, bool *has, uint8_t *dst, uint8_t *len)
{
        const char *p;
        size_t n;
        bool nil;
        int k;

        k = mp_read_strlike(r, &p, &n, &nil);
        if (k < 0)
                return k;
        *has = !nil && n > 0;
        *len = 0;
        if (!*has)
                return 0;
        if (n != 4 && n != 16)
                return -EDOM;
        memcpy(dst, p, n);
        *len = (uint8_t)n;
        return 0;
}

static const char *const ipnet_fields[] = {"IP", "Mask", "IPNet"};

static int on_ipnet_field(int idx, struct mp_reader *r, void *ud)
{
        struct proto_ipnet *in = ud;

        if (idx == 0)
                return read_ip_bytes(r, &in->has_ip, in->ip, &in->ip_len);
        if (idx == 1)
                return read_ip_bytes(r, &in->has_mask, in->mask, &in->mask_len);
        /* The decoder also accepts the embedded struct under its type name. */
        return mp_read_struct(r, ipnet_fields, 2, on_ipnet_field, in, NULL);
}

static const char *const public_config_fields[] = {"Type", "IPv4", "IPv6", "GW4", "GW6", "Domain"};

static int on_public_config_field(int idx, struct mp_reader *r, void *ud)
{
        struct proto_public_config *pc = ud;

        switch (idx) {
        case 0:
                return read_str(r, &pc->type, PROTO_STR_MAX, NULL);
        case 1:
                return mp_read_struct(r, ipnet_fields, 3, on_ipnet_field, &pc->ipv4, NULL);
        case 2:
                return mp_read_struct(r, ipnet_fields, 3, on_ipnet_field, &pc->ipv6, NULL);
        case 3:
                return read_ip_bytes(r, &pc->has_gw4, pc->gw4, &pc->gw4_len);
        case 4:
                return read_ip_bytes(r, &pc->has_gw6, pc->gw6, &pc->gw6_len);
        case 5:
                return read_str(r, &pc->domain, PROTO_STR_MAX, NULL);
        }
        return -EINVAL;
}

int proto_public_config_decode(const void *p, size_t n, struct proto_public_config *ret)
{
        struct proto_public_config pc = {};
        struct mp_reader r;
        int k;

        mp_reader_init(&r, p, n);
        k = mp_read_struct(&r, public_config_fields, ELEMENTSOF(public_config_fields),
                           on_public_config_field, &pc, NULL);
        if (k >= 0)
                k = expect_end(&r);
        if (k < 0) {
                proto_public_config_done(&pc);
                return k;
        }
        *ret = pc;
        return 0;
}

static int pack_ip(msgpack_packer *pk, bool has, const uint8_t *ip, uint8_t len)
{
        if (!has) {
                PK(msgpack_pack_nil(pk));
                return 0;
        }
        PK(msgpack_pack_bin(pk, len));
        PK(msgpack_pack_bin_body(pk, ip, len));
        return 0;
}

static int pack_ipnet(msgpack_packer *pk, const struct proto_ipnet *in)
{
        int r;

        PK(msgpack_pack_map(pk, 2));
        if ((r = pack_key(pk, "IP")) < 0 || (r = pack_ip(pk, in->has_ip, in->ip, in->ip_len)) < 0)
                return r;
        if ((r = pack_key(pk, "Mask")) < 0 ||
            (r = pack_ip(pk, in->has_mask, in->mask, in->mask_len)) < 0)
                return r;
        return 0;
}

int proto_public_config_encode(struct strbuf *out, const struct proto_public_config *pc)
{
        PACKER(pk, out);
        int r;

        PK(msgpack_pack_map(&pk, 6));
        if ((r = pack_key(&pk, "Type")) < 0 ||
            (r = pack_str(&pk, strempty(pc->type.s), pc->type.n)) < 0)
                return r;
        if ((r = pack_key(&pk, "IPv4")) < 0 || (r = pack_ipnet(&pk, &pc->ipv4)) < 0)
                return r;
        if ((r = pack_key(&pk, "IPv6")) < 0 || (r = pack_ipnet(&pk, &pc->ipv6)) < 0)
                return r;
        if ((r = pack_key(&pk, "GW4")) < 0 ||
            (r = pack_ip(&pk, pc->has_gw4, pc->gw4, pc->gw4_len)) < 0)
                return r;
        if ((r = pack_key(&pk, "GW6")) < 0 ||
            (r = pack_ip(&pk, pc->has_gw6, pc->gw6, pc->gw6_len)) < 0)
                return r;
        if ((r = pack_key(&pk, "Domain")) < 0 ||
            (r = pack_str(&pk, strempty(pc->domain.s), pc->domain.n)) < 0)
                return r;
        return 0;
}

/* ---- api-gateway results ---- */

void proto_substrate_error_done(struct proto_substrate_error *e)
{
        proto_str_done(&e->err);
        e->has_err = false;
}

static const char *const substrate_error_fields[] = {"Err", "Code"};

static int on_substrate_error_field(int idx, struct mp_reader *r, void *ud)
{
        struct proto_substrate_error *e = ud;
        bool nil;
        int k;

        if (idx == 1)
                return mp_read_int64(r, &e->code);
        k = read_str(r, &e->err, PROTO_STR_MAX, &nil);
        e->has_err = k >= 0 && !nil;
        return k;
}

static int read_substrate_error(struct mp_reader *r, struct proto_substrate_error *e)
{
        return mp_read_struct(r, substrate_error_fields, 2, on_substrate_error_field, e, NULL);
}

int proto_contract_id_result_decode(const void *p, size_t n, uint64_t *ret_id,
                                    struct proto_substrate_error *ret_err)
{
        struct proto_substrate_error e = {};
        struct mp_reader r;
        uint32_t count;
        uint64_t id = 0;
        int k;

        mp_reader_init(&r, p, n);
        k = mp_read_array(&r, &count, NULL);
        if (k >= 0 && count != 2)
                k = -EDOM;
        if (k >= 0)
                k = mp_read_uint64(&r, &id);
        if (k >= 0)
                k = read_substrate_error(&r, &e);
        if (k >= 0)
                k = expect_end(&r);
        if (k < 0) {
                proto_substrate_error_done(&e);
                return k;
        }
        *ret_id = id;
        *ret_err = e;
        return 0;
}

static const char *const state_fields[] = {"IsCreated", "IsGracePeriod"};

static int on_state_field(int idx, struct mp_reader *r, void *ud)
{
        struct proto_contract *c = ud;

        return mp_read_bool(r, idx == 0 ? &c->is_created : &c->is_grace_period);
}

static const char *const contract_fields[] = {"State", "ContractID", "TwinID"};

static int on_contract_field(int idx, struct mp_reader *r, void *ud)
{
        struct proto_contract *c = ud;
        uint64_t v;
        int k;

        switch (idx) {
        case 0: {
                /* State is a struct; positional decoding would be wrong for
                 * it, so only accept the map form (what Go sends). */
                enum mp_type t;
                k = mp_peek_type(r, &t);
                if (k < 0)
                        return k;
                if (t != MP_MAP)
                        return mp_skip(r);
                return mp_read_struct(r, state_fields, 2, on_state_field, c, NULL);
        }
        case 1:
                return mp_read_uint64(r, &c->contract_id);
        case 2:
                k = mp_read_uint64(r, &v);
                if (k < 0)
                        return k;
                if (v > UINT32_MAX)
                        return -EDOM;
                c->twin_id = (uint32_t)v;
                return 0;
        }
        return -EINVAL;
}

int proto_contract_result_decode(const void *p, size_t n, struct proto_contract *ret,
                                 struct proto_substrate_error *ret_err)
{
        struct proto_substrate_error e = {};
        struct proto_contract c = {};
        struct mp_reader r;
        uint32_t count;
        enum mp_type t;
        int k;

        mp_reader_init(&r, p, n);
        k = mp_read_array(&r, &count, NULL);
        if (k >= 0 && count != 2)
                k = -EDOM;
        /* Contract must be a map: a positional (array) form would bind
         * fields by the 2024 declaration order, which may have drifted. */
        if (k >= 0)
                k = mp_peek_type(&r, &t);
        if (k >= 0 && t == MP_NIL)
                k = mp_skip(&r);
        else if (k >= 0 && t != MP_MAP)
                k = -EDOM;
        else if (k >= 0)
                k = mp_read_struct(&r, contract_fields, ELEMENTSOF(contract_fields),
                                   on_contract_field, &c, NULL);
        if (k >= 0)
                k = read_substrate_error(&r, &e);
        if (k >= 0)
                k = expect_end(&r);
        if (k < 0) {
                proto_substrate_error_done(&e);
                return k;
        }
        *ret = c;
        *ret_err = e;
        return 0;
}

/* ---- operator methods ---- */

int proto_proxy_info_encode(struct strbuf *out, const struct proto_proxy_info *pi)
{
        PACKER(pk, out);
        int r;

        PK(msgpack_pack_map(&pk, 12));
        if ((r = proto_encode_key_str(out, "ID", pi->id)) < 0 ||
            (r = proto_encode_key_str(out, "Kind", pi->kind)) < 0 ||
            (r = proto_encode_key_str(out, "FQDN", pi->fqdn)) < 0 ||
            (r = proto_encode_key_str(out, "Name", pi->name)) < 0)
                return r;
        if ((r = pack_key(&pk, "Backends")) < 0)
                return r;
        PK(msgpack_pack_array(&pk, pi->n_backends));
        for (size_t i = 0; i < pi->n_backends; i++)
                if ((r = pack_cstr(&pk, pi->backends[i])) < 0)
                        return r;
        if ((r = proto_encode_key_bool(out, "TLSPassthrough", pi->tls_passthrough)) < 0 ||
            (r = proto_encode_key_str(out, "Network", pi->network)) < 0)
                return r;
        if ((r = pack_key(&pk, "Created")) < 0 ||
            (r = proto_encode_time(out, pi->created_sec, 0)) < 0)
                return r;
        if ((r = pack_key(&pk, "Updated")) < 0 ||
            (r = proto_encode_time(out, pi->updated_sec, 0)) < 0)
                return r;
        if ((r = pack_key(&pk, "RequestBytes")) < 0)
                return r;
        PK(msgpack_pack_double(&pk, pi->request_bytes));
        if ((r = pack_key(&pk, "ResponseBytes")) < 0)
                return r;
        PK(msgpack_pack_double(&pk, pi->response_bytes));
        if ((r = pack_key(&pk, "BackendHealth")) < 0)
                return r;
        PK(msgpack_pack_array(&pk, pi->n_health));
        for (size_t i = 0; i < pi->n_health; i++) {
                const struct proto_backend_health *h = &pi->health[i];

                PK(msgpack_pack_map(&pk, 5));
                if ((r = proto_encode_key_str(out, "Backend", h->backend)) < 0 ||
                    (r = proto_encode_key_bool(out, "Up", h->up)) < 0 ||
                    (r = pack_key(&pk, "Since")) < 0)
                        return r;
                if (h->since_ms > 0)
                        r = proto_encode_time(out, h->since_ms / 1000,
                                              (uint32_t)(h->since_ms % 1000) * 1000000u);
                else
                        r = msgpack_pack_nil(&pk) < 0 ? -ENOMEM : 0;
                if (r < 0 || (r = proto_encode_key_str(out, "LastError", h->last_error)) < 0 ||
                    (r = pack_key(&pk, "LastErrorTime")) < 0)
                        return r;
                if (h->last_error_ms > 0)
                        r = proto_encode_time(out, h->last_error_ms / 1000,
                                              (uint32_t)(h->last_error_ms % 1000) * 1000000u);
                else
                        r = msgpack_pack_nil(&pk) < 0 ? -ENOMEM : 0;
                if (r < 0)
                        return r;
        }
        return 0;
}
