/* SPDX-License-Identifier: Apache-2.0 */
#include <arpa/inet.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "workloads/workloads.h"

/* The domain registry and plans: setupRouting §4.3 steps 1-2, §4.6 step 1,
 * DeleteNamedProxy §4.4, restore on start (§4.9). */

static struct wl_public_config pc;

static int setup(void **state)
{
        pc = (struct wl_public_config){.has_ipv4 = true, .domain = "gent01.grid.tf"};
        inet_pton(AF_INET, "185.69.166.10", &pc.ipv4);
        return 0;
}

static struct wl_proxy *mk(enum wl_kind kind, const char *id, const char *fqdn, const char *backend,
                           const char *network)
{
        struct wl_proxy *p = wl_proxy_new();

        assert_non_null(p);
        p->kind = kind;
        p->id = strdup(id);
        p->fqdn = fqdn ? strdup(fqdn) : NULL;
        if (kind == WL_KIND_NAME && fqdn) {
                const char *dot = strchr(fqdn, '.');

                p->name = strndup(fqdn, dot ? (size_t)(dot - fqdn) : strlen(fqdn));
        }
        p->backends = calloc(1, sizeof(char *));
        p->backends[0] = strdup(backend);
        p->n_backends = 1;
        p->network = network ? strdup(network) : NULL;
        return p;
}

static struct wl_proxy *name_proxy(const char *id, const char *fqdn, const char *backend)
{
        return mk(WL_KIND_NAME, id, fqdn, backend, NULL);
}

/* Plan and commit; expect @want. Returns the committed proxy. */
static const struct wl_proxy *set(struct wl_registry *r, struct wl_proxy *p, enum wl_plan_type want)
{
        struct wl_plan plan;
        char *err = NULL;
        int k;

        k = wl_plan_set(r, p, &pc, &plan, &err);
        if (k != 0)
                fail_msg("wl_plan_set(%s) = %d: %s", p->id, k, err);
        assert_int_equal(plan.type, want);
        assert_ptr_equal(plan.new, p);
        assert_int_equal(wl_registry_commit(r, &plan), 0);
        assert_null(plan.new);
        assert_null(plan.old);
        return wl_registry_get(r, p->id);
}

static void refused(struct wl_registry *r, struct wl_proxy *p, int want_r, const char *want)
{
        struct wl_plan plan = {.type = WL_PLAN_NOOP};
        char *err = NULL;
        size_t before = wl_registry_size(r);

        assert_int_equal(wl_plan_set(r, p, &pc, &plan, &err), want_r);
        assert_non_null(err);
        assert_string_equal(err, want);
        assert_null(plan.new); /* not taken on failure */
        assert_int_equal(wl_registry_size(r), before);
        free(err);
        wl_proxy_free(p);
}

static void test_empty(void **state)
{
        struct wl_registry *r = wl_registry_new();

        assert_non_null(r);
        assert_int_equal(wl_registry_size(r), 0);
        assert_null(wl_registry_get(r, "x"));
        assert_null(wl_registry_get_by_domain(r, "x"));
        assert_null(wl_registry_free(r));
        assert_null(wl_registry_free(NULL));
        assert_int_equal(wl_registry_size(NULL), 0);

        assert_string_equal(wl_plan_type_to_string(WL_PLAN_NOOP), "noop");
        assert_string_equal(wl_plan_type_to_string(WL_PLAN_ADD), "add");
        assert_string_equal(wl_plan_type_to_string(WL_PLAN_REPLACE), "replace");
        assert_string_equal(wl_plan_type_to_string(WL_PLAN_REMOVE), "remove");
        assert_null(wl_plan_type_to_string(_WL_PLAN_TYPE_MAX));
        wl_plan_done(NULL);
}

static void test_add_and_lookup(void **state)
{
        struct wl_registry *r = wl_registry_new();
        const struct wl_proxy *p;

        p = set(r, name_proxy("37-1976-myapp", "myapp.gent01.grid.tf", "http://1.2.3.4"),
                WL_PLAN_ADD);
        assert_non_null(p);
        assert_int_equal(wl_registry_size(r), 1);
        assert_ptr_equal(wl_registry_get_by_domain(r, "myapp.gent01.grid.tf"), p);
        /* Domains compare ignoring ASCII case. */
        assert_ptr_equal(wl_registry_get_by_domain(r, "MyApp.Gent01.GRID.tf"), p);
        assert_null(wl_registry_get(r, "37-1976-MYAPP")); /* IDs compare exactly */
        assert_string_equal(p->net_id, "");
        wl_registry_free(r);
}

/* Deviation from zos: an identical re-send succeeds (zos: "domain already
 * registered"), with a NOOP plan that changes nothing. */
static void test_idempotent_resend(void **state)
{
        struct wl_registry *r = wl_registry_new();
        struct wl_proxy *again;
        const struct wl_proxy *first;
        struct wl_plan plan;
        char *err = NULL;

        first = set(r, name_proxy("37-1976-myapp", "myapp.gent01.grid.tf", "http://1.2.3.4"),
                    WL_PLAN_ADD);
        again = name_proxy("37-1976-myapp", "myapp.gent01.grid.tf", "http://1.2.3.4");
        assert_int_equal(wl_plan_set(r, again, &pc, &plan, &err), 0);
        assert_int_equal(plan.type, WL_PLAN_NOOP);
        assert_ptr_equal(plan.old, first);
        assert_ptr_equal(plan.new, again); /* readable like any plan, e.g. new->fqdn */
        assert_int_equal(wl_registry_commit(r, &plan), 0);
        assert_ptr_equal(wl_registry_get(r, "37-1976-myapp"), first); /* untouched */
        assert_int_equal(wl_registry_size(r), 1);

        /* A NOOP plan may also just be dropped. */
        again = name_proxy("37-1976-myapp", "myapp.gent01.grid.tf", "http://1.2.3.4");
        assert_int_equal(wl_plan_set(r, again, &pc, &plan, &err), 0);
        assert_int_equal(plan.type, WL_PLAN_NOOP);
        wl_plan_done(&plan);
        assert_null(plan.new);
        wl_registry_free(r);
}

static void test_replace(void **state)
{
        struct wl_registry *r = wl_registry_new();
        struct wl_proxy *p;
        const struct wl_proxy *cur;

        p = name_proxy("37-1976-myapp", "myapp.gent01.grid.tf", "http://1.2.3.4");
        p->created_usec = 100;
        p->updated_usec = 100;
        set(r, p, WL_PLAN_ADD);

        /* New backend: REPLACE, creation time carried over. */
        p = name_proxy("37-1976-myapp", "myapp.gent01.grid.tf", "http://5.6.7.8");
        p->updated_usec = 200;
        cur = set(r, p, WL_PLAN_REPLACE);
        assert_string_equal(cur->backends[0], "http://5.6.7.8");
        assert_int_equal(cur->created_usec, 100);
        assert_int_equal(cur->updated_usec, 200);
        assert_ptr_equal(wl_registry_get_by_domain(r, "myapp.gent01.grid.tf"), cur);

        /* Passthrough flag change: REPLACE. */
        p = name_proxy("37-1976-myapp", "myapp.gent01.grid.tf", "5.6.7.8:443");
        p->tls_passthrough = true;
        cur = set(r, p, WL_PLAN_REPLACE);
        assert_true(cur->tls_passthrough);

        /* Same domain in another case: REPLACE of the same entry, not a conflict. */
        p = name_proxy("37-1976-myapp", "MYAPP.gent01.grid.tf", "5.6.7.8:443");
        p->tls_passthrough = true;
        cur = set(r, p, WL_PLAN_REPLACE);
        assert_ptr_equal(wl_registry_get_by_domain(r, "myapp.gent01.grid.tf"), cur);
        assert_int_equal(wl_registry_size(r), 1);
        wl_registry_free(r);
}

/* Fix of a zos quirk (§4.3 step 4): a renamed workload releases its old
 * domain at once. */
static void test_rename_releases_domain(void **state)
{
        struct wl_registry *r = wl_registry_new();
        const struct wl_proxy *cur;

        set(r, name_proxy("37-1976-myapp", "old.gent01.grid.tf", "http://1.2.3.4"), WL_PLAN_ADD);
        cur = set(r, name_proxy("37-1976-myapp", "new.gent01.grid.tf", "http://1.2.3.4"),
                  WL_PLAN_REPLACE);
        assert_null(wl_registry_get_by_domain(r, "old.gent01.grid.tf"));
        assert_ptr_equal(wl_registry_get_by_domain(r, "new.gent01.grid.tf"), cur);
        assert_int_equal(wl_registry_size(r), 1);

        /* Another workload may take the released name. */
        set(r, name_proxy("38-1-other", "old.gent01.grid.tf", "http://1.2.3.4"), WL_PLAN_ADD);
        assert_int_equal(wl_registry_size(r), 2);
        wl_registry_free(r);
}

static void test_domain_conflict(void **state)
{
        struct wl_registry *r = wl_registry_new();

        set(r, name_proxy("37-1976-myapp", "myapp.gent01.grid.tf", "http://1.2.3.4"), WL_PLAN_ADD);
        refused(r, name_proxy("38-1-myapp", "myapp.gent01.grid.tf", "http://1.2.3.4"), -EINVAL,
                "domain already registered: myapp.gent01.grid.tf");
        /* Case-insensitive: the text shows the domain as requested. */
        refused(r, mk(WL_KIND_FQDN, "38-2-x", "MyApp.Gent01.Grid.TF", "http://1.2.3.4", NULL),
                -EINVAL, "domain already registered: MyApp.Gent01.Grid.TF");
        /* A name and an FQDN workload share one namespace, as zos's map. */
        set(r, mk(WL_KIND_FQDN, "39-1-x", "example.com", "http://1.2.3.4", NULL), WL_PLAN_ADD);
        refused(r, name_proxy("40-1-y", "example.com", "http://1.2.3.4"), -EINVAL,
                "domain already registered: example.com");
        wl_registry_free(r);
}

/* §4.3: backend validation (step 1) before the domain check (step 2) before
 * the network path (step 3 -> §4.6 step 1). */
static void test_check_order(void **state)
{
        struct wl_registry *r = wl_registry_new();

        set(r, name_proxy("37-1976-myapp", "myapp.gent01.grid.tf", "http://1.2.3.4"), WL_PLAN_ADD);

        refused(r, name_proxy("38-1-myapp", "myapp.gent01.grid.tf", "https://1.2.3.4"), -EINVAL,
                "1 error occurred:\n"
                "\t* failed to validate backend 'https://1.2.3.4': scheme expected to be http\n\n");
        refused(r, name_proxy("38-1-myapp", "myapp.gent01.grid.tf", "http://185.69.166.10"),
                -EINVAL, "backend http://185.69.166.10 points to the node's own public IP address");
        refused(r, mk(WL_KIND_FQDN, "not-an-id", "myapp.gent01.grid.tf", "http://1.2.3.4", "net"),
                -EINVAL, "domain already registered: myapp.gent01.grid.tf");
        refused(r, mk(WL_KIND_FQDN, "not-an-id", "free.example.com", "http://1.2.3.4", "net"),
                -EINVAL, "invalid workload id: expected integer");
        wl_registry_free(r);
}

static void test_network_id(void **state)
{
        struct wl_registry *r = wl_registry_new();
        const struct wl_proxy *p;
        struct wl_proxy *q;

        p = set(r,
                mk(WL_KIND_NAME, "37-1976-myapp", "myapp.gent01.grid.tf", "http://10.1.2.3",
                   "mynet"),
                WL_PLAN_ADD);
        assert_string_equal(p->net_id, "VhXa1GWNNKDvv");

        /* FQDN proxies parse the ID only here. */
        p = set(r, mk(WL_KIND_FQDN, "37-5-site", "example.com", "http://10.1.2.3", "mynet"),
                WL_PLAN_ADD);
        assert_string_equal(p->net_id, "VhXa1GWNNKDvv");

        /* Network "" is set (not nil): derived from "37:". */
        q = mk(WL_KIND_FQDN, "37-6-site", "b.example.com", "http://10.1.2.3", "");
        p = set(r, q, WL_PLAN_ADD);
        {
                char want[16];

                wl_net_id(37, "", want);
                assert_string_equal(p->net_id, want);
        }

        /* Dropping the network is a REPLACE and clears the ID. */
        p = set(r,
                mk(WL_KIND_NAME, "37-1976-myapp", "myapp.gent01.grid.tf", "http://10.1.2.3", NULL),
                WL_PLAN_REPLACE);
        assert_string_equal(p->net_id, "");

        refused(r, mk(WL_KIND_FQDN, "37-1976", "c.example.com", "http://1.2.3.4", "mynet"), -EINVAL,
                "invalid workload id: unexpected EOF");
        wl_registry_free(r);
}

static void test_delete(void **state)
{
        struct wl_registry *r = wl_registry_new();
        const struct wl_proxy *p;
        struct wl_plan plan;

        /* Unknown IDs succeed (§4.4, §7) with nothing to do. */
        assert_int_equal(wl_plan_delete(r, "1-1-unknown", &plan), 0);
        assert_int_equal(plan.type, WL_PLAN_NOOP);
        assert_null(plan.old);
        assert_null(plan.new);
        assert_int_equal(wl_registry_commit(r, &plan), 0);

        p = set(r, name_proxy("37-1976-myapp", "myapp.gent01.grid.tf", "http://1.2.3.4"),
                WL_PLAN_ADD);
        assert_int_equal(wl_plan_delete(r, "37-1976-myapp", &plan), 0);
        assert_int_equal(plan.type, WL_PLAN_REMOVE);
        assert_ptr_equal(plan.old, p);
        assert_int_equal(wl_registry_commit(r, &plan), 0);
        assert_int_equal(wl_registry_size(r), 0);
        assert_null(wl_registry_get(r, "37-1976-myapp"));
        assert_null(wl_registry_get_by_domain(r, "myapp.gent01.grid.tf"));

        /* The domain is free again. */
        set(r, name_proxy("38-1-other", "myapp.gent01.grid.tf", "http://1.2.3.4"), WL_PLAN_ADD);
        wl_registry_free(r);
}

static void test_restore(void **state)
{
        struct wl_registry *r = wl_registry_new();
        struct wl_proxy *p, *dup;

        p = mk(WL_KIND_NAME, "37-1976-myapp", "myapp.gent01.grid.tf", "not validated", "mynet");
        assert_int_equal(wl_registry_restore(r, p), 0);
        assert_ptr_equal(wl_registry_get(r, "37-1976-myapp"), p);
        assert_ptr_equal(wl_registry_get_by_domain(r, "MYAPP.gent01.grid.tf"), p);
        assert_string_equal(p->net_id, "VhXa1GWNNKDvv"); /* derived when missing */

        dup = mk(WL_KIND_NAME, "37-1976-myapp", "other.gent01.grid.tf", "x", NULL);
        assert_int_equal(wl_registry_restore(r, dup), -EEXIST);
        wl_proxy_free(dup);
        dup = mk(WL_KIND_FQDN, "1-1-x", "MyApp.GENT01.grid.tf", "x", NULL);
        assert_int_equal(wl_registry_restore(r, dup), -EEXIST);
        wl_proxy_free(dup);
        dup = mk(WL_KIND_FQDN, "1-1-x", NULL, "x", NULL);
        assert_int_equal(wl_registry_restore(r, dup), -EINVAL);
        wl_proxy_free(dup);
        dup = mk(WL_KIND_FQDN, "bad", "x.example.com", "x", "net"); /* net_id needs a twin */
        assert_int_equal(wl_registry_restore(r, dup), -EINVAL);
        wl_proxy_free(dup);

        /* A stored net_id is kept as is. */
        p = mk(WL_KIND_FQDN, "bad", "y.example.com", "x", "net");
        strcpy(p->net_id, "stored");
        assert_int_equal(wl_registry_restore(r, p), 0);
        assert_string_equal(p->net_id, "stored");
        assert_int_equal(wl_registry_size(r), 2);

        /* Restored entries take part in conflicts. */
        refused(r, name_proxy("38-1-x", "myapp.gent01.grid.tf", "http://1.2.3.4"), -EINVAL,
                "domain already registered: myapp.gent01.grid.tf");
        wl_registry_free(r);
}

static int count_cb(const struct wl_proxy *p, void *userdata)
{
        (*(int *)userdata)++;
        return 0;
}

static int stop_cb(const struct wl_proxy *p, void *userdata)
{
        (*(int *)userdata)++;
        return -ECANCELED;
}

static void test_foreach(void **state)
{
        struct wl_registry *r = wl_registry_new();
        char id[32], fqdn[64];
        int n = 0;

        for (int i = 0; i < 10; i++) {
                snprintf(id, sizeof(id), "1-%d-w", i);
                snprintf(fqdn, sizeof(fqdn), "w%d.gent01.grid.tf", i);
                set(r, name_proxy(id, fqdn, "http://1.2.3.4"), WL_PLAN_ADD);
        }
        assert_int_equal(wl_registry_foreach(r, count_cb, &n), 0);
        assert_int_equal(n, 10);
        n = 0;
        assert_int_equal(wl_registry_foreach(r, stop_cb, &n), -ECANCELED);
        assert_int_equal(n, 1);
        wl_registry_free(r);
}

/* A plan made before the registry changed is refused at commit. */
static void test_stale_plans(void **state)
{
        struct wl_registry *r = wl_registry_new();
        struct wl_plan a, b, del;
        char *err = NULL;

        assert_int_equal(wl_plan_set(r, name_proxy("1-1-a", "a.gent01.grid.tf", "http://1.2.3.4"),
                                     &pc, &a, &err),
                         0);
        assert_int_equal(wl_plan_set(r, name_proxy("2-2-b", "A.gent01.grid.tf", "http://1.2.3.4"),
                                     &pc, &b, &err),
                         0);
        assert_int_equal(wl_registry_commit(r, &a), 0);
        assert_int_equal(wl_registry_commit(r, &b), -ESTALE); /* domain taken meanwhile */
        assert_non_null(b.new);                               /* still owned by the plan */
        wl_plan_done(&b);

        assert_int_equal(wl_plan_delete(r, "1-1-a", &del), 0);
        assert_int_equal(wl_plan_set(r, name_proxy("1-1-a", "a2.gent01.grid.tf", "http://1.2.3.4"),
                                     &pc, &a, &err),
                         0);
        assert_int_equal(a.type, WL_PLAN_REPLACE);
        assert_int_equal(wl_registry_commit(r, &del), 0);
        assert_int_equal(wl_registry_commit(r, &a), -ESTALE); /* the entry it replaces is gone */
        wl_plan_done(&a);
        assert_int_equal(wl_registry_size(r), 0);
        wl_registry_free(r);
}

static void test_no_domain(void **state)
{
        struct wl_registry *r = wl_registry_new();

        refused(r, mk(WL_KIND_FQDN, "1-1-a", NULL, "http://1.2.3.4", NULL), -EINVAL,
                "workload has no domain name");
        refused(r, mk(WL_KIND_FQDN, "1-1-a", "", "http://1.2.3.4", NULL), -EINVAL,
                "workload has no domain name");
        wl_registry_free(r);
}

/* The node limit: WL_REGISTRY_MAX workloads (200k), then -E2BIG for new IDs
 * while existing ones can still be changed and deleted. */
static void test_full_registry(void **state)
{
        struct wl_registry *r = wl_registry_new();
        char id[32], fqdn[64];
        struct wl_plan plan;

        for (int i = 0; i < WL_REGISTRY_MAX; i++) {
                snprintf(id, sizeof(id), "%d-%d-w", i % 1000, i);
                snprintf(fqdn, sizeof(fqdn), "w%d.gent01.grid.tf", i);
                assert_int_equal(wl_registry_restore(r, name_proxy(id, fqdn, "http://1.2.3.4")), 0);
        }
        assert_int_equal(wl_registry_size(r), WL_REGISTRY_MAX);
        assert_non_null(wl_registry_get(r, "999-199999-w"));
        assert_non_null(wl_registry_get_by_domain(r, "W123456.GENT01.grid.tf"));

        refused(r, name_proxy("1-1-new", "new.gent01.grid.tf", "http://1.2.3.4"), -E2BIG,
                "too many workloads on this node (the limit is 200000), remove one first");
        {
                struct wl_proxy *p = name_proxy("1-1-new", "new.gent01.grid.tf", "x");

                assert_int_equal(wl_registry_restore(r, p), -E2BIG);
                wl_proxy_free(p); /* not taken on failure */
        }
        /* The other checks still come first. */
        refused(r, name_proxy("1-1-new", "w7.gent01.grid.tf", "http://1.2.3.4"), -EINVAL,
                "domain already registered: w7.gent01.grid.tf");

        set(r, name_proxy("7-7-w", "w7.gent01.grid.tf", "http://5.6.7.8"), WL_PLAN_REPLACE);
        assert_int_equal(wl_plan_delete(r, "7-7-w", &plan), 0);
        assert_int_equal(wl_registry_commit(r, &plan), 0);
        set(r, name_proxy("1-1-new", "new.gent01.grid.tf", "http://1.2.3.4"), WL_PLAN_ADD);
        assert_int_equal(wl_registry_size(r), WL_REGISTRY_MAX);
        wl_registry_free(r);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_empty),
                cmocka_unit_test(test_add_and_lookup),
                cmocka_unit_test(test_idempotent_resend),
                cmocka_unit_test(test_replace),
                cmocka_unit_test(test_rename_releases_domain),
                cmocka_unit_test(test_domain_conflict),
                cmocka_unit_test(test_check_order),
                cmocka_unit_test(test_network_id),
                cmocka_unit_test(test_delete),
                cmocka_unit_test(test_restore),
                cmocka_unit_test(test_foreach),
                cmocka_unit_test(test_stale_plans),
                cmocka_unit_test(test_no_domain),
                cmocka_unit_test(test_full_registry),
        };

        return cmocka_run_group_tests(tests, setup, NULL);
}
