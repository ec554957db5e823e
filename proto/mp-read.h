/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* A bounded, non-allocating msgpack reader. Every length is checked
 * against the bytes that remain before anything is returned, so hostile
 * input can neither read out of bounds nor make the caller allocate more
 * than the input size. Strings point into the input buffer. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MP_MAX_DEPTH 32 /* nesting accepted by mp_skip() */

enum mp_type {
        MP_NIL,
        MP_BOOL,
        MP_INT,   /* negative integer (i) */
        MP_UINT,  /* non-negative integer (u) */
        MP_FLOAT, /* float32 or float64 (f) */
        MP_STR,
        MP_BIN,
        MP_ARRAY, /* count elements follow */
        MP_MAP,   /* count key/value pairs follow */
        MP_EXT,
        _MP_TYPE_MAX,
};

struct mp_value {
        enum mp_type type;
        union {
                bool b;
                int64_t i;
                uint64_t u;
                double f;
                uint32_t count;
                struct {
                        const char *p;
                        uint32_t n;
                } s; /* MP_STR, MP_BIN */
                struct {
                        int8_t type;
                        const uint8_t *p;
                        uint32_t n;
                } ext;
        };
};

struct mp_reader {
        const uint8_t *p;
        const uint8_t *end;
};

static inline void mp_reader_init(struct mp_reader *r, const void *p, size_t n)
{
        r->p = p;
        r->end = (const uint8_t *)p + n;
}

static inline size_t mp_remaining(const struct mp_reader *r)
{
        return (size_t)(r->end - r->p);
}

const char *mp_type_to_string(enum mp_type t);

/* Read one item's header (for arrays and maps only the count: the elements
 * follow). Returns 0 or -EBADMSG (truncated, reserved byte 0xc1, or a count
 * that cannot fit in the remaining bytes); the reader is not advanced on
 * failure. */
int mp_read(struct mp_reader *r, struct mp_value *ret);
/* Peek at the next item's type without consuming it. -EBADMSG at the end. */
int mp_peek_type(const struct mp_reader *r, enum mp_type *ret);
/* Skip one complete item, nested up to MP_MAX_DEPTH. 0 or -EBADMSG. */
int mp_skip(struct mp_reader *r);

/* Typed helpers with Go decoder semantics (protocol-zbus-gateway.md §2.2):
 * str and bin are interchangeable, nil reads as "" / 0 / empty, any integer
 * width is accepted. They return -EBADMSG on malformed input and -EDOM on a
 * well-formed item of the wrong type (reader not advanced then). */
int mp_read_strlike(struct mp_reader *r, const char **ret_p, size_t *ret_n, bool *ret_nil);
int mp_read_uint64(struct mp_reader *r, uint64_t *ret);
int mp_read_int64(struct mp_reader *r, int64_t *ret);
int mp_read_bool(struct mp_reader *r, bool *ret);    /* c2/c3 only: nil is -EDOM, as in Go */
int mp_read_float(struct mp_reader *r, double *ret); /* floats and integers */
/* Array or map header; nil reads as count 0 with *ret_nil set. */
int mp_read_array(struct mp_reader *r, uint32_t *ret_count, bool *ret_nil);
int mp_read_map(struct mp_reader *r, uint32_t *ret_count, bool *ret_nil);
/* Timestamp ext -1 (4, 8 or 12 byte body). */
int mp_read_timestamp(struct mp_reader *r, int64_t *ret_sec, uint32_t *ret_nsec);

/* Does the str/bin item @p/@n equal the C string @s? */
bool mp_str_is(const char *p, size_t n, const char *s);
/* A map key: str or bin, never nil (-EDOM). */
int mp_read_key(struct mp_reader *r, const char **ret_p, size_t *ret_n);

/* A Go struct: a map keyed by field name (keys in any order, unknown keys
 * skipped), or an array read positionally, or nil (*ret_nil set). @fields
 * lists the field names in declaration order; @cb(index, reader, ud) must
 * consume exactly one value. -EDOM for any other type. */
typedef int mp_field_cb(int idx, struct mp_reader *r, void *ud);
int mp_read_struct(struct mp_reader *r, const char *const *fields, size_t n_fields, mp_field_cb *cb,
                   void *ud, bool *ret_nil);
