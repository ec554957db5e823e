/* SPDX-License-Identifier: Apache-2.0 */
#include "workloads/workloads.h"
/* The module header first: it must compile on its own. */

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/macros.h"
#include "common/md5.h"
#include "common/siphash.h"
#include "workloads/workloads-internal.h"

int wl__fail(char **reterr, int error, const char *fmt, ...)
{
        va_list ap;
        char *text;
        int n;

        assert(error < 0);
        va_start(ap, fmt);
        n = vasprintf(&text, fmt, ap);
        va_end(ap);
        if (n < 0)
                return -ENOMEM;
        if (reterr)
                *reterr = text;
        else
                free(text);
        return error;
}

/* ---- kinds ---- */

static const char *const kind_table[_WL_KIND_MAX] = {
        [WL_KIND_NAME] = "name",
        [WL_KIND_FQDN] = "fqdn",
};

const char *wl_kind_to_string(enum wl_kind k)
{
        if ((unsigned)k >= _WL_KIND_MAX)
                return NULL;
        return kind_table[k];
}

int wl_kind_from_string(const char *s)
{
        if (!s)
                return -EINVAL;
        for (int k = 0; k < _WL_KIND_MAX; k++)
                if (streq(s, kind_table[k]))
                        return k;
        return -EINVAL;
}

/* ---- public config ---- */

void wl_public_config_done(struct wl_public_config *pc)
{
        if (!pc)
                return;
        pc->domain = mfree(pc->domain);
}

int wl_public_config_copy(const struct wl_public_config *src, struct wl_public_config *dst)
{
        struct wl_public_config c = *src;

        if (src->domain) {
                c.domain = strdup(src->domain);
                if (!c.domain)
                        return -ENOMEM;
        }
        *dst = c;
        return 0;
}

/* ---- proxies ---- */

struct wl_proxy *wl_proxy_new(void)
{
        return calloc(1, sizeof(struct wl_proxy));
}

static void backends_free(char **v, size_t n)
{
        if (!v)
                return;
        for (size_t i = 0; i < n; i++)
                free(v[i]);
        free(v);
}

struct wl_proxy *wl_proxy_free(struct wl_proxy *p)
{
        if (!p)
                return NULL;
        free(p->id);
        free(p->name);
        free(p->fqdn);
        backends_free(p->backends, p->n_backends);
        free(p->network);
        free(p);
        return NULL;
}

static int strdup_opt(const char *s, char **ret)
{
        *ret = NULL;
        if (!s)
                return 0;
        *ret = strdup(s);
        return *ret ? 0 : -ENOMEM;
}

struct wl_proxy *wl_proxy_dup(const struct wl_proxy *p)
{
        _cleanup_(wl_proxy_freep) struct wl_proxy *d = NULL;

        assert(p);
        d = wl_proxy_new();
        if (!d)
                return NULL;
        d->kind = p->kind;
        d->tls_passthrough = p->tls_passthrough;
        memcpy(d->net_id, p->net_id, sizeof(d->net_id));
        d->created_usec = p->created_usec;
        d->updated_usec = p->updated_usec;
        if (strdup_opt(p->id, &d->id) < 0 || strdup_opt(p->name, &d->name) < 0 ||
            strdup_opt(p->fqdn, &d->fqdn) < 0 || strdup_opt(p->network, &d->network) < 0)
                return NULL;
        if (p->n_backends > 0) {
                d->backends = calloc(p->n_backends, sizeof(char *));
                if (!d->backends)
                        return NULL;
                d->n_backends = p->n_backends;
                for (size_t i = 0; i < p->n_backends; i++)
                        if (strdup_opt(p->backends[i], &d->backends[i]) < 0)
                                return NULL;
        }
        return TAKE_PTR(d);
}

bool wl_proxy_same_spec(const struct wl_proxy *a, const struct wl_proxy *b)
{
        assert(a && b);
        if (a->kind != b->kind || a->tls_passthrough != b->tls_passthrough ||
            a->n_backends != b->n_backends)
                return false;
        /* network: NULL (not set) and "" (set, empty) differ, as in zos. */
        if (!streq_ptr(a->name, b->name) || !streq_ptr(a->fqdn, b->fqdn) ||
            !streq_ptr(a->network, b->network))
                return false;
        for (size_t i = 0; i < a->n_backends; i++)
                if (!streq_ptr(a->backends[i], b->backends[i]))
                        return false;
        return true;
}

/* ---- network ID (§4.6 step 1; zos gridtypes/zos/network.go NetworkID) ---- */

/* jbenet/go-base58 Encode with the Bitcoin alphabet: big-endian base-58
 * digits of the number, plus one '1' per leading zero byte. @ret must hold
 * 2 * n + 1 bytes (base 58 never needs more than ~1.37 digits per byte). */
static void base58(const uint8_t *p, size_t n, char *ret)
{
        static const char alphabet[] = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";
        uint8_t digits[2 * MD5_DIGEST_SIZE] = {}; /* little-endian base-58 digits */
        size_t ndigits = 0, zeros = 0, k = 0;

        assert(n <= MD5_DIGEST_SIZE);
        for (size_t i = 0; i < n; i++) {
                unsigned carry = p[i];

                for (size_t j = 0; j < ndigits; j++) {
                        carry += (unsigned)digits[j] << 8;
                        digits[j] = (uint8_t)(carry % 58);
                        carry /= 58;
                }
                while (carry) {
                        digits[ndigits++] = (uint8_t)(carry % 58);
                        carry /= 58;
                }
        }
        while (zeros < n && p[zeros] == 0)
                zeros++;
        for (size_t i = 0; i < zeros; i++)
                ret[k++] = alphabet[0];
        while (ndigits > 0)
                ret[k++] = alphabet[digits[--ndigits]];
        ret[k] = 0;
}

void wl_net_id(uint32_t twin, const char *network, char *ret)
{
        uint8_t digest[MD5_DIGEST_SIZE];
        char twin_str[16], encoded[2 * MD5_DIGEST_SIZE + 1];
        struct md5_ctx c;
        int n;

        assert(network);
        assert(ret);

        /* md5("<twin decimal>:<network name>"), as fmt.Sprint(twin) + ":" + name. */
        n = snprintf(twin_str, sizeof(twin_str), "%" PRIu32 ":", twin);
        md5_init(&c);
        md5_update(&c, twin_str, (size_t)n);
        md5_update(&c, network, strlen(network));
        md5_final(&c, digest);

        base58(digest, sizeof(digest), encoded);
        memcpy(ret, encoded, 13);
        ret[strlen(encoded) < 13 ? strlen(encoded) : 13] = 0;
}

/* ---- staged checks ---- */

/* Our own limits (zos has none). They run after the zos checks of the same
 * stage, so a request zos would refuse still gets zos's text. The ID rules
 * also keep the ID usable as a file name in the state directory: zos writes
 * "<wlID>.yaml" unsanitised, and an FQDN workload's ID is never parsed. */
static int check_limits(const struct wl_proxy *p, char **reterr)
{
        size_t n;

        n = strlen(p->id);
        if (n == 0)
                return wl__fail(reterr, -EINVAL, "invalid workload id: empty");
        if (n > WL_ID_MAX)
                return wl__fail(reterr, -E2BIG,
                                "workload id is too long (%zu bytes, the limit is %d)", n,
                                WL_ID_MAX);
        if (strchr(p->id, '/'))
                return wl__fail(reterr, -EINVAL, "invalid workload id: must not contain '/'");

        if (p->kind == WL_KIND_NAME) {
                n = strlen(strempty(p->name));
                if (n > WL_NAME_MAX)
                        return wl__fail(reterr, -E2BIG,
                                        "name is too long (%zu bytes, the limit is %d)", n,
                                        WL_NAME_MAX);
        } else {
                n = strlen(strempty(p->fqdn));
                if (n > WL_NAME_MAX)
                        return wl__fail(reterr, -E2BIG,
                                        "fqdn is too long (%zu bytes, the limit is %d)", n,
                                        WL_NAME_MAX);
        }

        if (p->n_backends > WL_BACKENDS_MAX)
                return wl__fail(reterr, -E2BIG, "too many backends (%zu, the limit is %d)",
                                p->n_backends, WL_BACKENDS_MAX);
        for (size_t i = 0; i < p->n_backends; i++) {
                n = strlen(strempty(p->backends[i]));
                if (n > WL_BACKEND_MAX)
                        return wl__fail(reterr, -E2BIG,
                                        "backend %zu is too long (%zu bytes, the limit is %d)",
                                        i + 1, n, WL_BACKEND_MAX);
        }

        if (p->network) {
                n = strlen(p->network);
                if (n > WL_NETWORK_MAX)
                        return wl__fail(reterr, -E2BIG,
                                        "network name is too long (%zu bytes, the limit is %d)", n,
                                        WL_NETWORK_MAX);
        }
        return 0;
}

static int check_backends_present(const struct wl_proxy *p, char **reterr)
{
        if (p->n_backends == 0)
                return wl__fail(reterr, -EINVAL, "at least one backend is needed got '0'");
        return 0;
}

int wl_check_name_request(const struct wl_proxy *p, char **reterr)
{
        _cleanup_free_ char *scan = NULL;
        struct wl_id id;
        int r;

        assert(p && p->id);
        assert(p->kind == WL_KIND_NAME);

        r = check_backends_present(p, reterr);
        if (r < 0)
                return r;
        r = wl_id_parse(p->id, &id, &scan);
        if (r == -EINVAL)
                return wl__fail(reterr, r, "invalid workload id: %s", scan);
        if (r == -E2BIG && reterr) {
                /* Go would scan it; the scanned name does not fit our limit. */
                *reterr = TAKE_PTR(scan);
                return r;
        }
        if (r < 0)
                return r;
        return check_limits(p, reterr);
}

int wl_check_name_node(struct wl_proxy *p, const struct wl_public_config *pc, char **reterr)
{
        char *fqdn;
        size_t n;

        assert(p && pc);

        if (!pc->domain || !pc->domain[0])
                return wl__fail(reterr, -EINVAL,
                                "node doesn't support name proxy (doesn't have a domain)");

        /* §4.1 step 6: no lower-casing or other normalisation, as zos. */
        if (asprintf(&fqdn, "%s.%s", strempty(p->name), pc->domain) < 0)
                return -ENOMEM;
        n = strlen(fqdn);
        if (n > WL_NAME_MAX) {
                free(fqdn);
                return wl__fail(reterr, -E2BIG, "fqdn is too long (%zu bytes, the limit is %d)", n,
                                WL_NAME_MAX);
        }
        free(p->fqdn);
        p->fqdn = fqdn;
        return 0;
}

int wl_check_fqdn_request(const struct wl_proxy *p, char **reterr)
{
        int r;

        assert(p && p->id);
        assert(p->kind == WL_KIND_FQDN);

        r = check_backends_present(p, reterr);
        if (r < 0)
                return r;
        return check_limits(p, reterr);
}

/* Locale-independent on purpose: strncasecmp() follows LC_CTYPE. */
static bool has_suffix_ascii_ci(const char *s, const char *suffix)
{
        size_t n = strlen(s), m = strlen(suffix);

        if (n < m)
                return false;
        s += n - m;
        for (size_t i = 0; i < m; i++)
                if (ascii_tolower((unsigned char)s[i]) != ascii_tolower((unsigned char)suffix[i]))
                        return false;
        return true;
}

int wl_check_fqdn_node(const struct wl_proxy *p, const struct wl_public_config *pc, char **reterr)
{
        assert(p && pc);

        /* zos: strings.HasSuffix(cfg.FQDN, Domain), a plain suffix test, so
         * "mygrid.tf" under domain "grid.tf" and the domain itself are refused.
         * Deviation: we compare ignoring ASCII case. DNS names are
         * case-insensitive and the registry compares domains that way, so a
         * case-sensitive test would let "APP.<domain>" take a name under the
         * managed domain without a name contract. */
        if (pc->domain && pc->domain[0] && has_suffix_ascii_ci(strempty(p->fqdn), pc->domain))
                return wl__fail(
                        reterr, -EINVAL,
                        "can't create a fqdn workload with a subdomain of the gateway's managed domain");
        return 0;
}
