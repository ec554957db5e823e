/* SPDX-License-Identifier: Apache-2.0 */
#include "workloads/workloads.h"
/* The module header first: it must compile on its own. */

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "common/macros.h"
#include "common/strbuf.h"
#include "common/utf8.h"
#include "workloads/workloads-internal.h"

/* ---- white space as Go's fmt scanner sees it ---- */

bool wl__go_is_space(uint32_t r)
{
        /* fmt/scan.go's copy of unicode.White_Space. */
        static const uint32_t ranges[][2] = {
                {0x0009, 0x000d}, {0x0020, 0x0020}, {0x0085, 0x0085}, {0x00a0, 0x00a0},
                {0x1680, 0x1680}, {0x2000, 0x200a}, {0x2028, 0x2029}, {0x202f, 0x202f},
                {0x205f, 0x205f}, {0x3000, 0x3000},
        };

        for (size_t i = 0; i < ELEMENTSOF(ranges); i++) {
                if (r < ranges[i][0])
                        return false;
                if (r <= ranges[i][1])
                        return true;
        }
        return false;
}

/* ---- fmt.Sscanf(id, "%d-%d-%s", &uint32, &uint64, &string) ----
 *
 * Emulated from Go's fmt/scan.go (doScanf, advance, scanUint, convertString),
 * read from the source, not executed. Behaviour worth knowing:
 *
 *  - Before each verb, spaces are skipped (SkipSpace). Space is the
 *    unicode.White_Space set, including U+0085, U+00A0, U+2000.. as UTF-8.
 *    A newline met while skipping is the error "unexpected newline" (Sscanf
 *    does not treat newlines as space); "\r\n" counts as a newline.
 *  - Literal '-' in the format matches exactly one '-' with no space skipping:
 *    at end of input "unexpected EOF" (mustReadRune -> io.ErrUnexpectedEOF),
 *    any other rune "input does not match format".
 *  - %d into an unsigned type takes no sign: "+1" and "-1" give "expected
 *    integer". Digits are ASCII 0-9 only; leading zeros are fine.
 *  - A token beyond 2^64-1 fails inside strconv.ParseUint with
 *    `strconv.ParseUint: parsing "<tok>": value out of range`, even for the
 *    uint32 twin; a token that fits 64 but not 32 bits fails with
 *    "unsigned integer overflow on token <tok>".
 *  - Running out of input where a verb expects data (notEOF) panics with
 *    io.EOF, so the text is "EOF", not "unexpected EOF": "" -> "EOF",
 *    "37-" -> "EOF", "37-1976-" -> "EOF", but "37" and "37-1976" ->
 *    "unexpected EOF" (the literal '-'). protocol-zbus-gateway.md §5 lists
 *    "unexpected EOF" for "37-1976-"; the Go source (notEOF, and the
 *    stdlib's own TestEOFAtEndOfInput expecting io.EOF) says "EOF", and we
 *    follow the source.
 *  - %s takes the next run of non-space runes; anything after it is ignored.
 *    Runes are decoded as Go does, so each invalid UTF-8 byte in the name
 *    becomes U+FFFD (EF BF BD) in the scanned string.
 */

struct scanner {
        const char *s;
        size_t n;
        size_t pos;
};

static bool peek_rune(const struct scanner *sc, uint32_t *ret, size_t *ret_size)
{
        if (sc->pos >= sc->n)
                return false;
        *ret = utf8_decode(sc->s + sc->pos, sc->n - sc->pos, ret_size);
        return true;
}

/* SkipSpace with nlIsSpace == false. Returns NULL or the error text. */
static const char *skip_space(struct scanner *sc)
{
        uint32_t r;
        size_t size;

        while (peek_rune(sc, &r, &size)) {
                if (r == '\n')
                        return "unexpected newline";
                if (!wl__go_is_space(r))
                        break;
                sc->pos += size; /* '\r' too: a following '\n' then fails above */
        }
        return NULL;
}

static int scan_error(char **reterr, const char *text)
{
        return wl__fail(reterr, -EINVAL, "%s", text);
}

/* scanUint(verb 'd', bits). */
static int scan_uint(struct scanner *sc, unsigned bits, uint64_t *ret, char **reterr)
{
        const char *err, *tok;
        uint64_t v = 0;
        bool range = false;
        size_t len;

        err = skip_space(sc);
        if (err)
                return scan_error(reterr, err);
        if (sc->pos >= sc->n)
                return scan_error(reterr, "EOF");
        if (sc->s[sc->pos] < '0' || sc->s[sc->pos] > '9')
                return scan_error(reterr, "expected integer");

        tok = sc->s + sc->pos;
        for (len = 0; sc->pos < sc->n && sc->s[sc->pos] >= '0' && sc->s[sc->pos] <= '9';
             sc->pos++, len++) {
                unsigned d = (unsigned)(sc->s[sc->pos] - '0');

                if (v > (UINT64_MAX - d) / 10)
                        range = true;
                else
                        v = v * 10 + d;
        }
        if (range)
                return wl__fail(reterr, -EINVAL,
                                "strconv.ParseUint: parsing \"%.*s\": value out of range", (int)len,
                                tok);
        if (bits < 64 && v >> bits)
                return wl__fail(reterr, -EINVAL, "unsigned integer overflow on token %.*s",
                                (int)len, tok);
        *ret = v;
        return 0;
}

static int scan_literal(struct scanner *sc, char c, char **reterr)
{
        uint32_t r;
        size_t size;

        if (!peek_rune(sc, &r, &size))
                return scan_error(reterr, "unexpected EOF");
        if (r != (unsigned char)c)
                return scan_error(reterr, "input does not match format");
        sc->pos += size;
        return 0;
}

/* convertString('s') into @ret. */
static int scan_string(struct scanner *sc, struct strbuf *ret, char **reterr)
{
        char u[UTF8_MAX_LEN];
        const char *err;
        uint32_t r;
        size_t size;
        int k;

        err = skip_space(sc);
        if (err)
                return scan_error(reterr, err);
        if (sc->pos >= sc->n)
                return scan_error(reterr, "EOF");
        while (peek_rune(sc, &r, &size) && !wl__go_is_space(r)) {
                /* Go's AppendRune: a bad byte becomes U+FFFD. */
                k = strbuf_append(ret, u, utf8_encode(r, u));
                if (k < 0)
                        return k;
                sc->pos += size;
        }
        return 0;
}

int wl_id_parse(const char *id, struct wl_id *ret, char **reterr)
{
        _cleanup_strbuf_ struct strbuf name = STRBUF_INIT;
        struct scanner sc = {.s = id, .n = strlen(id)};
        uint64_t twin, contract;
        int r;

        assert(id);
        assert(ret);

        r = scan_uint(&sc, 32, &twin, reterr);
        if (r < 0)
                return r;
        r = scan_literal(&sc, '-', reterr);
        if (r < 0)
                return r;
        r = scan_uint(&sc, 64, &contract, reterr);
        if (r < 0)
                return r;
        r = scan_literal(&sc, '-', reterr);
        if (r < 0)
                return r;
        r = scan_string(&sc, &name, reterr);
        if (r < 0)
                return r;

        /* Go would accept any length; our buffer is bounded. Only reachable
         * when the daemon skipped the WL_ID_MAX check of the request stage. */
        if (name.len > WL_ID_MAX)
                return wl__fail(reterr, -E2BIG, "workload id is too long (the limit is %d bytes)",
                                WL_ID_MAX);

        ret->twin = (uint32_t)twin;
        ret->contract = contract;
        memcpy(ret->name, name.data, name.len);
        ret->name[name.len] = 0;
        return 0;
}
