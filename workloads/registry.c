/* SPDX-License-Identifier: Apache-2.0 */
#include "workloads/workloads.h"
/* The module header first: it must compile on its own. */

#include <assert.h>
#include <errno.h>
#include <stdlib.h>

#include "common/hashmap.h"
#include "common/macros.h"
#include "workloads/workloads-internal.h"

/* The registry is zos's in-memory reservedDomains map (fqdn -> wlID) made
 * two-way: workloads by ID and by domain, both O(1).
 *
 * Deviations from zos, on purpose:
 *  - Domains are compared ignoring ASCII case (DNS names are
 *    case-insensitive). zos compares them byte for byte, so "App.x" and
 *    "app.x" could be held by two workloads and fight over one Host.
 *  - Re-sending the same ID with the same spec is a NOOP that succeeds;
 *    zos fails it with "domain already registered" (§4.3 step 2).
 *  - Changing a workload's domain releases the old one at once; zos keeps it
 *    reserved until restart (§4.3 step 4). */

struct wl_registry {
        struct hashmap *by_id;     /* p->id -> struct wl_proxy *; owns the proxies */
        struct hashmap *by_domain; /* p->fqdn, ASCII case folded -> the same proxy */
};

struct wl_registry *wl_registry_new(void)
{
        struct wl_registry *r = calloc(1, sizeof(*r));

        if (!r)
                return NULL;
        r->by_id = hashmap_new(0);
        r->by_domain = hashmap_new(HASHMAP_ASCII_CASEFOLD);
        if (!r->by_id || !r->by_domain)
                return wl_registry_free(r);
        return r;
}

static void proxy_free_void(void *p)
{
        wl_proxy_free(p);
}

struct wl_registry *wl_registry_free(struct wl_registry *r)
{
        if (!r)
                return NULL;
        hashmap_free(r->by_domain);
        hashmap_free_with(r->by_id, proxy_free_void);
        free(r);
        return NULL;
}

size_t wl_registry_size(const struct wl_registry *r)
{
        return r ? hashmap_size(r->by_id) : 0;
}

const struct wl_proxy *wl_registry_get(const struct wl_registry *r, const char *id)
{
        return r && id ? hashmap_get(r->by_id, id) : NULL;
}

const struct wl_proxy *wl_registry_get_by_domain(const struct wl_registry *r, const char *fqdn)
{
        return r && fqdn ? hashmap_get(r->by_domain, fqdn) : NULL;
}

int wl_registry_foreach(const struct wl_registry *r,
                        int (*cb)(const struct wl_proxy *p, void *userdata), void *userdata)
{
        size_t state = 0;
        void *v;

        assert(r && cb);
        while (hashmap_iterate(r->by_id, &state, NULL, &v)) {
                int k = cb(v, userdata);

                if (k < 0)
                        return k;
        }
        return 0;
}

static const char *const plan_type_table[_WL_PLAN_TYPE_MAX] = {
        [WL_PLAN_NOOP] = "noop",
        [WL_PLAN_ADD] = "add",
        [WL_PLAN_REPLACE] = "replace",
        [WL_PLAN_REMOVE] = "remove",
};

const char *wl_plan_type_to_string(enum wl_plan_type t)
{
        if ((unsigned)t >= _WL_PLAN_TYPE_MAX)
                return NULL;
        return plan_type_table[t];
}

void wl_plan_done(struct wl_plan *plan)
{
        if (!plan)
                return;
        wl_proxy_free(plan->new);
        *plan = (struct wl_plan){};
}

/* §4.6 step 1: the network ID needs the twin, so the ID must parse even for
 * FQDN proxies (whose ID is not parsed anywhere else). */
static int derive_net_id(struct wl_proxy *p, char **reterr)
{
        _cleanup_free_ char *scan = NULL;
        struct wl_id id;
        int r;

        if (!p->network) {
                p->net_id[0] = 0;
                return 0;
        }
        r = wl_id_parse(p->id, &id, &scan);
        if (r == -EINVAL)
                return wl__fail(reterr, r, "invalid workload id: %s", scan);
        if (r == -E2BIG && reterr)
                *reterr = TAKE_PTR(scan);
        if (r < 0)
                return r;
        wl_net_id(id.twin, p->network, p->net_id);
        return 0;
}

static int registry_full(char **reterr)
{
        return wl__fail(reterr, -E2BIG,
                        "too many workloads on this node (the limit is %d), remove one first",
                        WL_REGISTRY_MAX);
}

int wl_plan_set(const struct wl_registry *r, struct wl_proxy *p, const struct wl_public_config *pc,
                struct wl_plan *ret, char **reterr)
{
        const struct wl_proxy *old, *holder;
        enum wl_plan_type type;
        int k;

        assert(r && p && ret);
        assert(p->id);

        if (!p->fqdn || !p->fqdn[0])
                return wl__fail(reterr, -EINVAL, "workload has no domain name");

        /* §4.3 step 1 */
        k = wl_validate_backends(p, pc, reterr);
        if (k < 0)
                return k;

        /* §4.3 step 2, but the same ID may keep (or re-send) its own domain. */
        holder = hashmap_get(r->by_domain, p->fqdn);
        if (holder && !streq(holder->id, p->id))
                return wl__fail(reterr, -EINVAL, "domain already registered: %s", p->fqdn);

        /* §4.3 step 3 -> §4.6 step 1 */
        k = derive_net_id(p, reterr);
        if (k < 0)
                return k;

        old = hashmap_get(r->by_id, p->id);
        if (old) {
                type = wl_proxy_same_spec(old, p) ? WL_PLAN_NOOP : WL_PLAN_REPLACE;
                if (!p->created_usec)
                        p->created_usec = old->created_usec;
        } else {
                if (hashmap_size(r->by_id) >= WL_REGISTRY_MAX)
                        return registry_full(reterr);
                type = WL_PLAN_ADD;
        }

        *ret = (struct wl_plan){.type = type, .old = old, .new = p};
        return 0;
}

int wl_plan_delete(const struct wl_registry *r, const char *id, struct wl_plan *ret)
{
        const struct wl_proxy *old;

        assert(r && id && ret);
        old = hashmap_get(r->by_id, id);
        *ret = (struct wl_plan){.type = old ? WL_PLAN_REMOVE : WL_PLAN_NOOP, .old = old};
        return 0;
}

/* Make both maps big enough that the puts below cannot fail (keys are
 * borrowed, so a put allocates only when the table grows). */
static int reserve_one_more(struct wl_registry *r)
{
        int k = hashmap_reserve(r->by_id, hashmap_size(r->by_id) + 1);

        if (k < 0)
                return k;
        return hashmap_reserve(r->by_domain, hashmap_size(r->by_domain) + 1);
}

/* Index a proxy that neither map holds yet; the registry owns it then. */
static int insert_new(struct wl_registry *r, struct wl_proxy *p)
{
        int k;

        k = reserve_one_more(r);
        if (k < 0)
                return k;
        k = hashmap_put(r->by_id, p->id, p);
        assert(k == 0);
        k = hashmap_put(r->by_domain, p->fqdn, p);
        assert(k == 0);
        (void)k;
        return 0;
}

static void unlink_domain(struct wl_registry *r, struct wl_proxy *p)
{
        if (hashmap_get(r->by_domain, p->fqdn) == p)
                (void)hashmap_remove(r->by_domain, p->fqdn);
}

int wl_registry_commit(struct wl_registry *r, struct wl_plan *plan)
{
        struct wl_proxy *old, *new;
        const struct wl_proxy *holder;
        int k;

        assert(r && plan);

        switch (plan->type) {
        case WL_PLAN_NOOP:
                break;

        case WL_PLAN_ADD:
                new = plan->new;
                assert(new);
                /* The registry changed since the plan was made. */
                if (hashmap_contains(r->by_id, new->id) ||
                    hashmap_contains(r->by_domain, new->fqdn))
                        return -ESTALE;
                k = insert_new(r, new);
                if (k < 0)
                        return k;
                plan->new = NULL;
                break;

        case WL_PLAN_REPLACE:
                new = plan->new;
                assert(new);
                old = hashmap_get(r->by_id, new->id);
                holder = hashmap_get(r->by_domain, new->fqdn);
                if (!old || old != plan->old || (holder && holder != old))
                        return -ESTALE;
                k = reserve_one_more(r);
                if (k < 0)
                        return k;
                unlink_domain(r, old);
                k = hashmap_put(r->by_domain, new->fqdn, new);
                assert(k == 0);
                k = hashmap_put(r->by_id, new->id, new); /* also re-points the key at new->id */
                assert(k == 1);
                (void)k;
                wl_proxy_free(old);
                plan->new = NULL;
                break;

        case WL_PLAN_REMOVE:
                assert(plan->old);
                old = hashmap_get(r->by_id, plan->old->id);
                if (old != plan->old)
                        return -ESTALE;
                unlink_domain(r, old);
                (void)hashmap_remove(r->by_id, old->id);
                wl_proxy_free(old);
                break;

        default:
                return -EINVAL;
        }

        wl_plan_done(plan);
        return 0;
}

int wl_registry_restore(struct wl_registry *r, struct wl_proxy *p)
{
        int k;

        assert(r && p);

        if (!p->id || !p->fqdn || !p->fqdn[0])
                return -EINVAL;
        if (hashmap_contains(r->by_id, p->id) || hashmap_contains(r->by_domain, p->fqdn))
                return -EEXIST;
        if (hashmap_size(r->by_id) >= WL_REGISTRY_MAX)
                return -E2BIG;
        if (p->network && !p->net_id[0]) {
                k = derive_net_id(p, /* reterr= */ NULL);
                if (k < 0)
                        return k;
        }
        return insert_new(r, p);
}
