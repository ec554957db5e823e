/* SPDX-License-Identifier: Apache-2.0 */
#include "proto/mp-read.h"

#include <errno.h>
#include <string.h>

static uint16_t be16(const uint8_t *p)
{
        return (uint16_t)((p[0] << 8) | p[1]);
}

static uint32_t be32(const uint8_t *p)
{
        return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static uint64_t be64(const uint8_t *p)
{
        return ((uint64_t)be32(p) << 32) | be32(p + 4);
}

const char *mp_type_to_string(enum mp_type t)
{
        static const char *const names[_MP_TYPE_MAX] = {
                [MP_NIL] = "nil",     [MP_BOOL] = "bool", [MP_INT] = "int", [MP_UINT] = "uint",
                [MP_FLOAT] = "float", [MP_STR] = "str",   [MP_BIN] = "bin", [MP_ARRAY] = "array",
                [MP_MAP] = "map",     [MP_EXT] = "ext",
        };
        return t < _MP_TYPE_MAX ? names[t] : "?";
}

/* Decode one header at @p (with @n bytes available). Returns the header
 * length (payload for str/bin/ext included in the check but not in the
 * return value's consumption for containers), or -EBADMSG. */
static int decode(const uint8_t *p, size_t n, struct mp_value *v, size_t *ret_len)
{
        size_t hdr, body = 0;
        uint8_t c;

        if (n < 1)
                return -EBADMSG;
        c = p[0];

#define NEED(k)                                                                                    \
        do {                                                                                       \
                if (n < (k))                                                                       \
                        return -EBADMSG;                                                           \
        } while (0)

        if (c <= 0x7f) {
                v->type = MP_UINT;
                v->u = c;
                hdr = 1;
        } else if (c >= 0xe0) {
                v->type = MP_INT;
                v->i = (int8_t)c;
                hdr = 1;
        } else if ((c & 0xf0) == 0x80) {
                v->type = MP_MAP;
                v->count = c & 0x0f;
                hdr = 1;
        } else if ((c & 0xf0) == 0x90) {
                v->type = MP_ARRAY;
                v->count = c & 0x0f;
                hdr = 1;
        } else if ((c & 0xe0) == 0xa0) {
                v->type = MP_STR;
                body = c & 0x1f;
                hdr = 1;
        } else {
                switch (c) {
                case 0xc0:
                        v->type = MP_NIL;
                        hdr = 1;
                        break;
                case 0xc2:
                case 0xc3:
                        v->type = MP_BOOL;
                        v->b = c == 0xc3;
                        hdr = 1;
                        break;
                case 0xc4:
                case 0xd9:
                        NEED(2);
                        v->type = c == 0xc4 ? MP_BIN : MP_STR;
                        body = p[1];
                        hdr = 2;
                        break;
                case 0xc5:
                case 0xda:
                        NEED(3);
                        v->type = c == 0xc5 ? MP_BIN : MP_STR;
                        body = be16(p + 1);
                        hdr = 3;
                        break;
                case 0xc6:
                case 0xdb:
                        NEED(5);
                        v->type = c == 0xc6 ? MP_BIN : MP_STR;
                        body = be32(p + 1);
                        hdr = 5;
                        break;
                case 0xc7:
                        NEED(3);
                        v->type = MP_EXT;
                        body = p[1];
                        v->ext.type = (int8_t)p[2];
                        hdr = 3;
                        break;
                case 0xc8:
                        NEED(4);
                        v->type = MP_EXT;
                        body = be16(p + 1);
                        v->ext.type = (int8_t)p[3];
                        hdr = 4;
                        break;
                case 0xc9:
                        NEED(6);
                        v->type = MP_EXT;
                        body = be32(p + 1);
                        v->ext.type = (int8_t)p[5];
                        hdr = 6;
                        break;
                case 0xca: {
                        float f;
                        uint32_t u;
                        NEED(5);
                        u = be32(p + 1);
                        memcpy(&f, &u, 4);
                        v->type = MP_FLOAT;
                        v->f = f;
                        hdr = 5;
                        break;
                }
                case 0xcb: {
                        uint64_t u;
                        NEED(9);
                        u = be64(p + 1);
                        v->type = MP_FLOAT;
                        memcpy(&v->f, &u, 8);
                        hdr = 9;
                        break;
                }
                case 0xcc:
                        NEED(2);
                        v->type = MP_UINT;
                        v->u = p[1];
                        hdr = 2;
                        break;
                case 0xcd:
                        NEED(3);
                        v->type = MP_UINT;
                        v->u = be16(p + 1);
                        hdr = 3;
                        break;
                case 0xce:
                        NEED(5);
                        v->type = MP_UINT;
                        v->u = be32(p + 1);
                        hdr = 5;
                        break;
                case 0xcf:
                        NEED(9);
                        v->type = MP_UINT;
                        v->u = be64(p + 1);
                        hdr = 9;
                        break;
                case 0xd0:
                        NEED(2);
                        v->i = (int8_t)p[1];
                        hdr = 2;
                        goto signed_int;
                case 0xd1:
                        NEED(3);
                        v->i = (int16_t)be16(p + 1);
                        hdr = 3;
                        goto signed_int;
                case 0xd2:
                        NEED(5);
                        v->i = (int32_t)be32(p + 1);
                        hdr = 5;
                        goto signed_int;
                case 0xd3:
                        NEED(9);
                        v->i = (int64_t)be64(p + 1);
                        hdr = 9;
signed_int:
                        /* Normalise: non-negative values are MP_UINT. */
                        if (v->i >= 0) {
                                v->type = MP_UINT;
                                v->u = (uint64_t)v->i;
                        } else {
                                v->type = MP_INT;
                        }
                        break;
                case 0xd4:
                case 0xd5:
                case 0xd6:
                case 0xd7:
                case 0xd8:
                        NEED(2);
                        v->type = MP_EXT;
                        body = (size_t)1 << (c - 0xd4);
                        v->ext.type = (int8_t)p[1];
                        hdr = 2;
                        break;
                case 0xdc:
                        NEED(3);
                        v->type = MP_ARRAY;
                        v->count = be16(p + 1);
                        hdr = 3;
                        break;
                case 0xdd:
                        NEED(5);
                        v->type = MP_ARRAY;
                        v->count = be32(p + 1);
                        hdr = 5;
                        break;
                case 0xde:
                        NEED(3);
                        v->type = MP_MAP;
                        v->count = be16(p + 1);
                        hdr = 3;
                        break;
                case 0xdf:
                        NEED(5);
                        v->type = MP_MAP;
                        v->count = be32(p + 1);
                        hdr = 5;
                        break;
                default: /* 0xc1 is reserved */
                        return -EBADMSG;
                }
        }
#undef NEED

        if (n - hdr < body)
                return -EBADMSG;
        switch (v->type) {
        case MP_STR:
        case MP_BIN:
                v->s.p = (const char *)p + hdr;
                v->s.n = (uint32_t)body;
                break;
        case MP_EXT:
                v->ext.p = p + hdr;
                v->ext.n = (uint32_t)body;
                break;
        case MP_ARRAY:
                /* Every element takes at least one byte. */
                if (v->count > n - hdr)
                        return -EBADMSG;
                break;
        case MP_MAP:
                if ((uint64_t)v->count * 2 > n - hdr)
                        return -EBADMSG;
                break;
        default:
                break;
        }
        *ret_len = hdr + body;
        return 0;
}

int mp_read(struct mp_reader *r, struct mp_value *ret)
{
        struct mp_value v;
        size_t len;
        int k;

        k = decode(r->p, mp_remaining(r), &v, &len);
        if (k < 0)
                return k;
        r->p += len;
        *ret = v;
        return 0;
}

int mp_peek_type(const struct mp_reader *r, enum mp_type *ret)
{
        struct mp_value v;
        size_t len;
        int k;

        k = decode(r->p, mp_remaining(r), &v, &len);
        if (k < 0)
                return k;
        *ret = v.type;
        return 0;
}

int mp_skip(struct mp_reader *r)
{
        /* Iterative: a stack of remaining element counts. */
        uint64_t pending[MP_MAX_DEPTH + 1];
        const uint8_t *start = r->p;
        unsigned depth = 0;
        struct mp_value v;

        pending[0] = 1;
        for (;;) {
                while (depth > 0 && pending[depth] == 0)
                        depth--;
                if (pending[depth] == 0)
                        return 0;
                pending[depth]--;
                if (mp_read(r, &v) < 0) {
                        r->p = start;
                        return -EBADMSG;
                }
                if (v.type == MP_ARRAY || v.type == MP_MAP) {
                        uint64_t n = v.type == MP_MAP ? (uint64_t)v.count * 2 : v.count;
                        if (n == 0)
                                continue;
                        if (depth == MP_MAX_DEPTH) {
                                r->p = start;
                                return -EBADMSG;
                        }
                        pending[++depth] = n;
                }
                if (depth == 0 && pending[0] == 0)
                        return 0;
        }
}

int mp_read_strlike(struct mp_reader *r, const char **ret_p, size_t *ret_n, bool *ret_nil)
{
        struct mp_reader save = *r;
        struct mp_value v;
        int k = mp_read(r, &v);

        if (k < 0)
                return k;
        if (v.type == MP_NIL) {
                *ret_p = "";
                *ret_n = 0;
                if (ret_nil)
                        *ret_nil = true;
                return 0;
        }
        if (v.type != MP_STR && v.type != MP_BIN) {
                *r = save;
                return -EDOM;
        }
        *ret_p = v.s.p;
        *ret_n = v.s.n;
        if (ret_nil)
                *ret_nil = false;
        return 0;
}

int mp_read_uint64(struct mp_reader *r, uint64_t *ret)
{
        struct mp_reader save = *r;
        struct mp_value v;
        int k = mp_read(r, &v);

        if (k < 0)
                return k;
        if (v.type == MP_NIL) {
                *ret = 0;
                return 0;
        }
        if (v.type != MP_UINT) {
                *r = save;
                return -EDOM;
        }
        *ret = v.u;
        return 0;
}

int mp_read_int64(struct mp_reader *r, int64_t *ret)
{
        struct mp_reader save = *r;
        struct mp_value v;
        int k = mp_read(r, &v);

        if (k < 0)
                return k;
        if (v.type == MP_NIL) {
                *ret = 0;
                return 0;
        }
        if (v.type == MP_INT) {
                *ret = v.i;
                return 0;
        }
        /* Go's int64 field takes a uint64 code by conversion. */
        if (v.type == MP_UINT) {
                *ret = (int64_t)v.u;
                return 0;
        }
        *r = save;
        return -EDOM;
}

int mp_read_bool(struct mp_reader *r, bool *ret)
{
        struct mp_reader save = *r;
        struct mp_value v;
        int k = mp_read(r, &v);

        if (k < 0)
                return k;
        if (v.type != MP_BOOL) {
                *r = save;
                return -EDOM;
        }
        *ret = v.b;
        return 0;
}

int mp_read_float(struct mp_reader *r, double *ret)
{
        struct mp_reader save = *r;
        struct mp_value v;
        int k = mp_read(r, &v);

        if (k < 0)
                return k;
        switch (v.type) {
        case MP_NIL:
                *ret = 0;
                return 0;
        case MP_FLOAT:
                *ret = v.f;
                return 0;
        case MP_UINT:
                *ret = (double)v.u;
                return 0;
        case MP_INT:
                *ret = (double)v.i;
                return 0;
        default:
                *r = save;
                return -EDOM;
        }
}

static int read_container(struct mp_reader *r, enum mp_type want, uint32_t *ret_count,
                          bool *ret_nil)
{
        struct mp_reader save = *r;
        struct mp_value v;
        int k = mp_read(r, &v);

        if (k < 0)
                return k;
        if (v.type == MP_NIL) {
                *ret_count = 0;
                if (ret_nil)
                        *ret_nil = true;
                return 0;
        }
        if (v.type != want) {
                *r = save;
                return -EDOM;
        }
        *ret_count = v.count;
        if (ret_nil)
                *ret_nil = false;
        return 0;
}

int mp_read_array(struct mp_reader *r, uint32_t *ret_count, bool *ret_nil)
{
        return read_container(r, MP_ARRAY, ret_count, ret_nil);
}

int mp_read_map(struct mp_reader *r, uint32_t *ret_count, bool *ret_nil)
{
        return read_container(r, MP_MAP, ret_count, ret_nil);
}

int mp_read_timestamp(struct mp_reader *r, int64_t *ret_sec, uint32_t *ret_nsec)
{
        struct mp_reader save = *r;
        struct mp_value v;
        int k = mp_read(r, &v);

        if (k < 0)
                return k;
        if (v.type != MP_EXT || v.ext.type != -1)
                goto wrong;
        switch (v.ext.n) {
        case 4:
                *ret_sec = be32(v.ext.p);
                *ret_nsec = 0;
                return 0;
        case 8: {
                uint64_t x = be64(v.ext.p);
                *ret_sec = (int64_t)(x & ((UINT64_C(1) << 34) - 1));
                *ret_nsec = (uint32_t)(x >> 34);
                return 0;
        }
        case 12:
                *ret_nsec = be32(v.ext.p);
                *ret_sec = (int64_t)be64(v.ext.p + 4);
                return 0;
        default:
                break;
        }
wrong:
        *r = save;
        return -EDOM;
}

bool mp_str_is(const char *p, size_t n, const char *s)
{
        return strlen(s) == n && memcmp(p, s, n) == 0;
}

int mp_read_key(struct mp_reader *r, const char **ret_p, size_t *ret_n)
{
        bool nil;
        int k = mp_read_strlike(r, ret_p, ret_n, &nil);

        if (k < 0)
                return k;
        return nil ? -EDOM : 0;
}

int mp_read_struct(struct mp_reader *r, const char *const *fields, size_t n_fields, mp_field_cb *cb,
                   void *ud, bool *ret_nil)
{
        struct mp_value v;
        int k;

        k = mp_read(r, &v);
        if (k < 0)
                return k;
        if (ret_nil)
                *ret_nil = v.type == MP_NIL;
        if (v.type == MP_NIL)
                return 0;
        if (v.type == MP_ARRAY) {
                for (uint32_t i = 0; i < v.count; i++) {
                        k = i < n_fields ? cb((int)i, r, ud) : mp_skip(r);
                        if (k < 0)
                                return k;
                }
                return 0;
        }
        if (v.type != MP_MAP)
                return -EDOM;
        for (uint32_t i = 0; i < v.count; i++) {
                const char *kp;
                size_t kn;
                int idx = -1;

                k = mp_read_key(r, &kp, &kn);
                if (k < 0)
                        return k;
                for (size_t f = 0; f < n_fields; f++)
                        if (mp_str_is(kp, kn, fields[f])) {
                                idx = (int)f;
                                break;
                        }
                k = idx >= 0 ? cb(idx, r, ud) : mp_skip(r);
                if (k < 0)
                        return k;
        }
        return 0;
}
