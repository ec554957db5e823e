/* SPDX-License-Identifier: Apache-2.0 */
#include "cli/mp-json.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/macros.h"
#include "common/utf8.h"

int cli_json_put_string(struct strbuf *out, const char *s, size_t n)
{
        const unsigned char *p = (const unsigned char *)s;
        int r = strbuf_putc(out, '"');

        for (size_t i = 0; r >= 0 && i < n;) {
                unsigned char c = p[i];
                size_t k;

                switch (c) {
                case '"':
                        r = strbuf_puts(out, "\\\"");
                        i++;
                        continue;
                case '\\':
                        r = strbuf_puts(out, "\\\\");
                        i++;
                        continue;
                case '\n':
                        r = strbuf_puts(out, "\\n");
                        i++;
                        continue;
                case '\r':
                        r = strbuf_puts(out, "\\r");
                        i++;
                        continue;
                case '\t':
                        r = strbuf_puts(out, "\\t");
                        i++;
                        continue;
                default:
                        break;
                }
                if (c < 0x20 || c == 0x7f) {
                        r = strbuf_printf(out, "\\u%04x", c);
                        i++;
                        continue;
                }
                k = utf8_seq_len((const char *)p + i, n - i);
                if (k == 0) {
                        /* One replacement per bad byte, like Go's strings.ToValidUTF8
                         * without the run merging; the output stays valid JSON. */
                        r = strbuf_puts(out, "\\ufffd");
                        i++;
                        continue;
                }
                r = strbuf_append(out, p + i, k);
                i += k;
        }
        if (r < 0)
                return r;
        return strbuf_putc(out, '"');
}

static int put_base64(struct strbuf *out, const uint8_t *p, size_t n)
{
        static const char tbl[] =
                "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        int r = strbuf_putc(out, '"');

        for (size_t i = 0; r >= 0 && i < n; i += 3) {
                uint32_t v = (uint32_t)p[i] << 16;
                char q[4];

                if (i + 1 < n)
                        v |= (uint32_t)p[i + 1] << 8;
                if (i + 2 < n)
                        v |= p[i + 2];
                q[0] = tbl[(v >> 18) & 63];
                q[1] = tbl[(v >> 12) & 63];
                q[2] = i + 1 < n ? tbl[(v >> 6) & 63] : '=';
                q[3] = i + 2 < n ? tbl[v & 63] : '=';
                r = strbuf_append(out, q, 4);
        }
        if (r < 0)
                return r;
        return strbuf_putc(out, '"');
}

int cli_format_time(char *buf, size_t size, int64_t sec, uint32_t nsec, bool nanos)
{
        struct tm tm;
        time_t t = (time_t)sec;
        size_t len;

        if ((int64_t)t != sec || !gmtime_r(&t, &tm) || tm.tm_year + 1900 > 9999 ||
            tm.tm_year + 1900 < 0)
                return -ERANGE;
        len = strftime(buf, size, "%Y-%m-%dT%H:%M:%S", &tm);
        if (len == 0)
                return -ERANGE;
        if (nanos && nsec > 0 && nsec < 1000000000) {
                char frac[11];
                int k = 9;

                snprintf(frac, sizeof(frac), ".%09" PRIu32, nsec);
                while (frac[k] == '0')
                        frac[k--] = 0;
                if (len + strlen(frac) >= size)
                        return -ERANGE;
                strcpy(buf + len, frac);
                len += strlen(frac);
        }
        if (len + 2 > size)
                return -ERANGE;
        strcpy(buf + len, "Z");
        return 0;
}

int cli_put_double(struct strbuf *out, double v)
{
        char tmp[32];

        if (!isfinite(v))
                return strbuf_puts(out, "null");
        /* 15 significant digits are exact for most values we print (byte
         * counters); fall back to 17, which always round-trips. */
        snprintf(tmp, sizeof(tmp), "%.15g", v);
        if (strtod(tmp, NULL) != v)
                snprintf(tmp, sizeof(tmp), "%.17g", v);
        return strbuf_puts(out, tmp);
}

static int put_indent(struct strbuf *out, int indent)
{
        int r = strbuf_putc(out, '\n');

        for (int i = 0; r >= 0 && i < indent; i++)
                r = strbuf_puts(out, "  ");
        return r;
}

static int item_to_json(struct strbuf *out, struct mp_reader *r, int indent, int depth);

/* JSON object keys must be strings: a key that renders as a JSON string
 * (str, bin, timestamp) is used as is; anything else is rendered as
 * compact JSON and that text becomes the key. */
static int key_to_json(struct strbuf *out, struct mp_reader *r, int depth)
{
        _cleanup_strbuf_ struct strbuf tmp = STRBUF_INIT;
        int k;

        k = item_to_json(&tmp, r, -1, depth);
        if (k < 0)
                return k;
        if (tmp.data[0] == '"')
                return strbuf_append(out, tmp.data, tmp.len);
        return cli_json_put_string(out, tmp.data, tmp.len);
}

static int ext_to_json(struct strbuf *out, const struct mp_value *v)
{
        int k;

        k = strbuf_printf(out, "{\"ext\": %d, \"base64\": ", v->ext.type);
        if (k < 0)
                return k;
        k = put_base64(out, v->ext.p, v->ext.n);
        if (k < 0)
                return k;
        return strbuf_putc(out, '}');
}

/* A timestamp (ext -1) as an RFC3339 string. Returns 1 if one was
 * consumed, 0 if the next item is something else (reader unchanged). */
static int timestamp_to_json(struct strbuf *out, struct mp_reader *r)
{
        struct mp_reader save = *r;
        char buf[64];
        int64_t sec;
        uint32_t nsec;
        int k;

        if (mp_read_timestamp(r, &sec, &nsec) < 0)
                return 0;
        if (cli_format_time(buf, sizeof(buf), sec, nsec, true) < 0) {
                /* Out of the RFC3339 year range: fall back to the raw ext. */
                *r = save;
                return 0;
        }
        k = cli_json_put_string(out, buf, strlen(buf));
        return k < 0 ? k : 1;
}

static int container_to_json(struct strbuf *out, struct mp_reader *r, const struct mp_value *v,
                             int indent, int depth)
{
        bool is_map = v->type == MP_MAP;
        int k;

        if (v->count == 0)
                return strbuf_puts(out, is_map ? "{}" : "[]");
        k = strbuf_putc(out, is_map ? '{' : '[');
        for (uint32_t i = 0; k >= 0 && i < v->count; i++) {
                if (i > 0)
                        k = strbuf_putc(out, ',');
                if (k >= 0 && indent >= 0)
                        k = put_indent(out, indent + 1);
                if (k < 0)
                        break;
                if (is_map) {
                        k = key_to_json(out, r, depth + 1);
                        if (k >= 0)
                                k = strbuf_puts(out, indent >= 0 ? ": " : ":");
                        if (k < 0)
                                break;
                }
                k = item_to_json(out, r, indent >= 0 ? indent + 1 : -1, depth + 1);
        }
        if (k >= 0 && indent >= 0)
                k = put_indent(out, indent);
        if (k < 0)
                return k;
        return strbuf_putc(out, is_map ? '}' : ']');
}

static int item_to_json(struct strbuf *out, struct mp_reader *r, int indent, int depth)
{
        struct mp_value v;
        int k;

        if (depth > MP_MAX_DEPTH)
                return -EBADMSG;
        k = timestamp_to_json(out, r);
        if (k != 0)
                return k < 0 ? k : 0;
        k = mp_read(r, &v);
        if (k < 0)
                return k;
        switch (v.type) {
        case MP_NIL:
                return strbuf_puts(out, "null");
        case MP_BOOL:
                return strbuf_puts(out, v.b ? "true" : "false");
        case MP_INT:
                return strbuf_printf(out, "%" PRId64, v.i);
        case MP_UINT:
                return strbuf_printf(out, "%" PRIu64, v.u);
        case MP_FLOAT:
                return cli_put_double(out, v.f);
        case MP_STR:
                return cli_json_put_string(out, v.s.p, v.s.n);
        case MP_BIN:
                if (utf8_valid(v.s.p, v.s.n))
                        return cli_json_put_string(out, v.s.p, v.s.n);
                return put_base64(out, (const uint8_t *)v.s.p, v.s.n);
        case MP_ARRAY:
        case MP_MAP:
                return container_to_json(out, r, &v, indent, depth);
        case MP_EXT:
                return ext_to_json(out, &v);
        default:
                return -EBADMSG;
        }
}

int cli_mp_item_to_json(struct strbuf *out, struct mp_reader *r, int indent)
{
        return item_to_json(out, r, indent, 0);
}

int cli_mp_to_json(struct strbuf *out, const void *p, size_t n, bool pretty)
{
        struct mp_reader r;
        int k;

        mp_reader_init(&r, p, n);
        k = item_to_json(out, &r, pretty ? 0 : -1, 0);
        if (k < 0)
                return k;
        return mp_remaining(&r) == 0 ? 0 : -EBADMSG;
}
