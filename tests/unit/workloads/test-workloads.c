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

#include "common/macros.h"
#include "workloads/workloads.h"

/* ---- helpers ---- */

static char **strv(const char *const *v, size_t n)
{
        char **r = calloc(n ? n : 1, sizeof(char *));

        assert_non_null(r);
        for (size_t i = 0; i < n; i++)
                r[i] = strdup(v[i]);
        return r;
}

static struct wl_proxy *proxy(enum wl_kind kind, const char *id, const char *name_or_fqdn,
                              const char *const *backends, size_t n, const char *network)
{
        struct wl_proxy *p = wl_proxy_new();

        assert_non_null(p);
        p->kind = kind;
        p->id = strdup(id);
        if (kind == WL_KIND_NAME)
                p->name = name_or_fqdn ? strdup(name_or_fqdn) : NULL;
        else
                p->fqdn = name_or_fqdn ? strdup(name_or_fqdn) : NULL;
        p->backends = strv(backends, n);
        p->n_backends = n;
        p->network = network ? strdup(network) : NULL;
        return p;
}

static const char *const ONE[] = {"http://[300:1:2::3]:9000"};

/* Run @check; expect @want_r and, for errors, exactly @want_text. */
#define EXPECT(call, want_r, want_text)                                                            \
        do {                                                                                       \
                char *_err = NULL;                                                                 \
                int _r = (call);                                                                   \
                if (_r != (want_r))                                                                \
                        fail_msg("%s = %d (%s), want %d", #call, _r, _err ? _err : "-", (want_r)); \
                if ((want_r) < 0) {                                                                \
                        assert_non_null(_err);                                                     \
                        assert_string_equal(_err, (want_text));                                    \
                } else {                                                                           \
                        assert_null(_err);                                                         \
                }                                                                                  \
                free(_err);                                                                        \
        } while (0)

/* ---- kinds, public config, proxies ---- */

static void test_kind_strings(void **state)
{
        assert_string_equal(wl_kind_to_string(WL_KIND_NAME), "name");
        assert_string_equal(wl_kind_to_string(WL_KIND_FQDN), "fqdn");
        assert_null(wl_kind_to_string(_WL_KIND_MAX));
        assert_int_equal(wl_kind_from_string("name"), WL_KIND_NAME);
        assert_int_equal(wl_kind_from_string("fqdn"), WL_KIND_FQDN);
        assert_int_equal(wl_kind_from_string("Name"), -EINVAL);
        assert_int_equal(wl_kind_from_string(""), -EINVAL);
        assert_int_equal(wl_kind_from_string(NULL), -EINVAL);
}

static void test_public_config_copy(void **state)
{
        struct wl_public_config a = {.has_ipv4 = true, .ipv4_prefix = 24}, b = {};

        inet_pton(AF_INET, "185.69.166.10", &a.ipv4);
        a.domain = strdup("gent01.grid.tf");
        assert_int_equal(wl_public_config_copy(&a, &b), 0);
        assert_ptr_not_equal(a.domain, b.domain);
        assert_string_equal(b.domain, "gent01.grid.tf");
        assert_true(b.has_ipv4);
        assert_memory_equal(&a.ipv4, &b.ipv4, 4);
        assert_int_equal(b.ipv4_prefix, 24);
        wl_public_config_done(&a);
        assert_null(a.domain);
        wl_public_config_done(&a); /* idempotent */
        wl_public_config_done(&b);
        wl_public_config_done(NULL);

        a = (struct wl_public_config){};
        assert_int_equal(wl_public_config_copy(&a, &b), 0);
        assert_null(b.domain);
}

static void test_proxy_lifecycle(void **state)
{
        static const char *const two[] = {"http://1.2.3.4", "http://5.6.7.8:81"};
        struct wl_proxy *p = proxy(WL_KIND_NAME, "37-1976-myapp", "myapp", two, 2, "mynet"), *d;

        assert_null(wl_proxy_free(NULL));
        p->fqdn = strdup("myapp.gent01.grid.tf");
        p->tls_passthrough = true;
        strcpy(p->net_id, "VhXa1GWNNKDvv");
        p->created_usec = 1;
        p->updated_usec = 2;

        d = wl_proxy_dup(p);
        assert_non_null(d);
        assert_ptr_not_equal(d->id, p->id);
        assert_string_equal(d->id, "37-1976-myapp");
        assert_string_equal(d->name, "myapp");
        assert_string_equal(d->fqdn, "myapp.gent01.grid.tf");
        assert_int_equal(d->n_backends, 2);
        assert_ptr_not_equal(d->backends[1], p->backends[1]);
        assert_string_equal(d->backends[1], "http://5.6.7.8:81");
        assert_string_equal(d->network, "mynet");
        assert_string_equal(d->net_id, "VhXa1GWNNKDvv");
        assert_true(d->tls_passthrough);
        assert_int_equal(d->created_usec, 1);
        assert_int_equal(d->updated_usec, 2);
        assert_true(wl_proxy_same_spec(p, d));
        assert_null(wl_proxy_free(d));

        /* A proxy without optional parts. */
        wl_proxy_free(p);
        p = wl_proxy_new();
        p->id = strdup("x");
        d = wl_proxy_dup(p);
        assert_non_null(d);
        assert_null(d->name);
        assert_null(d->network);
        assert_null(d->backends);
        assert_true(wl_proxy_same_spec(p, d));
        wl_proxy_free(d);
        wl_proxy_free(p);

        /* Cleanup helper accepts NULL. */
        {
                _cleanup_(wl_proxy_freep) struct wl_proxy *none = NULL;
                (void)none;
        }
}

static void test_same_spec(void **state)
{
        static const char *const b1[] = {"http://1.2.3.4", "http://5.6.7.8"};
        static const char *const b2[] = {"http://5.6.7.8", "http://1.2.3.4"};
        struct wl_proxy *a = proxy(WL_KIND_NAME, "1-1-a", "a", b1, 2, NULL);
        struct wl_proxy *b = wl_proxy_dup(a);

        assert_true(wl_proxy_same_spec(a, b));

        /* The ID is not part of the spec. */
        free(b->id);
        b->id = strdup("2-2-b");
        assert_true(wl_proxy_same_spec(a, b));

        b->tls_passthrough = true;
        assert_false(wl_proxy_same_spec(a, b));
        b->tls_passthrough = false;

        b->kind = WL_KIND_FQDN;
        assert_false(wl_proxy_same_spec(a, b));
        b->kind = WL_KIND_NAME;

        free(b->name);
        b->name = strdup("A"); /* names compare exactly */
        assert_false(wl_proxy_same_spec(a, b));
        free(b->name);
        b->name = strdup("a");

        b->fqdn = strdup("a.x");
        assert_false(wl_proxy_same_spec(a, b));
        free(b->fqdn);
        b->fqdn = NULL;

        /* Network: nil and "" are different specs. */
        b->network = strdup("");
        assert_false(wl_proxy_same_spec(a, b));
        a->network = strdup("");
        assert_true(wl_proxy_same_spec(a, b));

        /* Backend order matters. */
        wl_proxy_free(b);
        b = proxy(WL_KIND_NAME, "1-1-a", "a", b2, 2, "");
        assert_false(wl_proxy_same_spec(a, b));
        wl_proxy_free(b);
        b = proxy(WL_KIND_NAME, "1-1-a", "a", b1, 1, "");
        assert_false(wl_proxy_same_spec(a, b));

        wl_proxy_free(a);
        wl_proxy_free(b);
}

/* ---- network ID (§4.6 step 1) ---- */

static void test_net_id_vectors(void **state)
{
        static const struct {
                uint32_t twin;
                const char *network, *want;
        } v[] = {
                {37, "mynet", "VhXa1GWNNKDvv"}, /* the protocol document's example */
                {1, "a", "6ScQ1BrLfrLZu"},
                {0, "", "L2m18WDWh2jhf"},
                {4294967295u, "net", "3pXBuwoiS5wqR"},
                /* md5 starts with a zero byte: jbenet/go-base58 emits a leading '1' */
                {333, "net", "16SwwrzWV3Xec"}, /* md5 00c2b59f... */
                {374, "net", "1fvyiKN91kX9E"}, /* md5 0017fdea..., base58 is 21 chars */
        };
        char got[16];

        for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
                memset(got, 'X', sizeof(got));
                wl_net_id(v[i].twin, v[i].network, got);
                assert_string_equal(got, v[i].want);
        }
}

/* ---- SetNamedProxy §4.1 steps 1-2 ---- */

static void test_name_request_order(void **state)
{
        struct wl_proxy *p;

        /* Step 1 before step 2: no backends wins over a bad ID. */
        p = proxy(WL_KIND_NAME, "garbage", "myapp", NULL, 0, NULL);
        EXPECT(wl_check_name_request(p, &_err), -EINVAL, "at least one backend is needed got '0'");
        wl_proxy_free(p);

        p = proxy(WL_KIND_NAME, "garbage", "myapp", ONE, 1, NULL);
        EXPECT(wl_check_name_request(p, &_err), -EINVAL, "invalid workload id: expected integer");
        wl_proxy_free(p);

        p = proxy(WL_KIND_NAME, "37-1976", "myapp", ONE, 1, NULL);
        EXPECT(wl_check_name_request(p, &_err), -EINVAL, "invalid workload id: unexpected EOF");
        wl_proxy_free(p);

        p = proxy(WL_KIND_NAME, "37-1976-", "myapp", ONE, 1, NULL);
        EXPECT(wl_check_name_request(p, &_err), -EINVAL, "invalid workload id: EOF");
        wl_proxy_free(p);

        p = proxy(WL_KIND_NAME, "4294967296-1-a", "myapp", ONE, 1, NULL);
        EXPECT(wl_check_name_request(p, &_err), -EINVAL,
               "invalid workload id: unsigned integer overflow on token 4294967296");
        wl_proxy_free(p);

        p = proxy(WL_KIND_NAME, "37-1976-myapp", "myapp", ONE, 1, NULL);
        EXPECT(wl_check_name_request(p, &_err), 0, NULL);
        wl_proxy_free(p);

        /* The gateway does not check the name itself (provisiond does, §4.10). */
        p = proxy(WL_KIND_NAME, "37-1976-myapp", "not a valid name!", ONE, 1, NULL);
        EXPECT(wl_check_name_request(p, &_err), 0, NULL);
        wl_proxy_free(p);
}

/* Our limits come after the zos checks of the same stage. */
static void test_limits(void **state)
{
        static const char *const many[WL_BACKENDS_MAX + 1] = {[0 ... WL_BACKENDS_MAX] =
                                                                      "http://1.2.3.4"};
        char big[1024], id[WL_ID_MAX + 16];
        struct wl_proxy *p;

        memset(big, 'a', sizeof(big) - 1);
        big[sizeof(big) - 1] = 0;

        /* IDs */
        p = proxy(WL_KIND_FQDN, "", "example.com", ONE, 1, NULL);
        EXPECT(wl_check_fqdn_request(p, &_err), -EINVAL, "invalid workload id: empty");
        wl_proxy_free(p);
        p = proxy(WL_KIND_FQDN, "1-1-../../etc/x", "example.com", ONE, 1, NULL);
        EXPECT(wl_check_fqdn_request(p, &_err), -EINVAL,
               "invalid workload id: must not contain '/'");
        wl_proxy_free(p);
        p = proxy(WL_KIND_NAME, "1-1-a/b", "a", ONE, 1, NULL);
        EXPECT(wl_check_name_request(p, &_err), -EINVAL,
               "invalid workload id: must not contain '/'");
        wl_proxy_free(p);

        snprintf(id, sizeof(id), "1-1-%.*s", WL_ID_MAX - 4, big);
        p = proxy(WL_KIND_NAME, id, "a", ONE, 1, NULL);
        EXPECT(wl_check_name_request(p, &_err), 0, NULL);
        wl_proxy_free(p);
        snprintf(id, sizeof(id), "%.*s", WL_ID_MAX + 1, big);
        p = proxy(WL_KIND_FQDN, id, "example.com", ONE, 1, NULL);
        EXPECT(wl_check_fqdn_request(p, &_err), -E2BIG,
               "workload id is too long (257 bytes, the limit is 256)");
        wl_proxy_free(p);

        /* names */
        p = proxy(WL_KIND_NAME, "1-1-a", big, ONE, 1, NULL);
        EXPECT(wl_check_name_request(p, &_err), -E2BIG,
               "name is too long (1023 bytes, the limit is 253)");
        wl_proxy_free(p);
        p = proxy(WL_KIND_FQDN, "1-1-a", big, ONE, 1, NULL);
        EXPECT(wl_check_fqdn_request(p, &_err), -E2BIG,
               "fqdn is too long (1023 bytes, the limit is 253)");
        wl_proxy_free(p);

        /* backends */
        p = proxy(WL_KIND_FQDN, "1-1-a", "example.com", many, WL_BACKENDS_MAX, NULL);
        EXPECT(wl_check_fqdn_request(p, &_err), 0, NULL);
        wl_proxy_free(p);
        p = proxy(WL_KIND_FQDN, "1-1-a", "example.com", many, WL_BACKENDS_MAX + 1, NULL);
        EXPECT(wl_check_fqdn_request(p, &_err), -E2BIG, "too many backends (65, the limit is 64)");
        wl_proxy_free(p);
        {
                const char *const b[] = {"http://1.2.3.4", big};

                p = proxy(WL_KIND_NAME, "1-1-a", "a", b, 2, NULL);
                EXPECT(wl_check_name_request(p, &_err), -E2BIG,
                       "backend 2 is too long (1023 bytes, the limit is 512)");
                wl_proxy_free(p);
        }

        /* network */
        p = proxy(WL_KIND_NAME, "1-1-a", "a", ONE, 1, big);
        EXPECT(wl_check_name_request(p, &_err), -E2BIG,
               "network name is too long (1023 bytes, the limit is 64)");
        wl_proxy_free(p);

        /* The zos text wins when zos refuses too. */
        p = proxy(WL_KIND_NAME, big, big, NULL, 0, big);
        EXPECT(wl_check_name_request(p, &_err), -EINVAL, "at least one backend is needed got '0'");
        wl_proxy_free(p);
        p = proxy(WL_KIND_NAME, big, big, ONE, 1, big);
        EXPECT(wl_check_name_request(p, &_err), -EINVAL, "invalid workload id: expected integer");
        wl_proxy_free(p);
}

/* ---- SetNamedProxy §4.1 step 4 (+6) ---- */

static void test_name_node(void **state)
{
        struct wl_public_config pc = {};
        char big[300];
        struct wl_proxy *p = proxy(WL_KIND_NAME, "37-1976-myapp", "myapp", ONE, 1, NULL);

        EXPECT(wl_check_name_node(p, &pc, &_err), -EINVAL,
               "node doesn't support name proxy (doesn't have a domain)");
        pc.domain = "";
        EXPECT(wl_check_name_node(p, &pc, &_err), -EINVAL,
               "node doesn't support name proxy (doesn't have a domain)");
        assert_null(p->fqdn);

        pc.domain = "gent01.dev.grid.tf";
        EXPECT(wl_check_name_node(p, &pc, &_err), 0, NULL);
        assert_string_equal(p->fqdn, "myapp.gent01.dev.grid.tf");

        /* No normalisation (§4.1 step 6); a second call replaces the fqdn. */
        free(p->name);
        p->name = strdup("MyApp");
        pc.domain = "Gent01.grid.tf";
        EXPECT(wl_check_name_node(p, &pc, &_err), 0, NULL);
        assert_string_equal(p->fqdn, "MyApp.Gent01.grid.tf");

        /* A missing name is Go's zero value "". */
        free(p->name);
        p->name = NULL;
        EXPECT(wl_check_name_node(p, &pc, &_err), 0, NULL);
        assert_string_equal(p->fqdn, ".Gent01.grid.tf");

        memset(big, 'a', 240);
        big[240] = 0;
        p->name = strdup(big);
        pc.domain = "0123456789.grid.tf"; /* 240 + 1 + 18 = 259 */
        EXPECT(wl_check_name_node(p, &pc, &_err), -E2BIG,
               "fqdn is too long (259 bytes, the limit is 253)");
        assert_string_equal(p->fqdn, ".Gent01.grid.tf"); /* unchanged on failure */
        wl_proxy_free(p);
}

/* ---- SetFQDNProxy §4.2 steps 1 and 3 ---- */

static void test_fqdn_request(void **state)
{
        struct wl_proxy *p;

        p = proxy(WL_KIND_FQDN, "garbage", "example.com", NULL, 0, NULL);
        EXPECT(wl_check_fqdn_request(p, &_err), -EINVAL, "at least one backend is needed got '0'");
        wl_proxy_free(p);

        /* The ID is not parsed for FQDN proxies (§4.2). */
        p = proxy(WL_KIND_FQDN, "garbage", "example.com", ONE, 1, NULL);
        EXPECT(wl_check_fqdn_request(p, &_err), 0, NULL);
        wl_proxy_free(p);
}

static void test_fqdn_node(void **state)
{
        static const char *const refused[] = {
                "app.gent01.grid.tf", "gent01.grid.tf",
                "a.b.gent01.grid.tf", "mygent01.grid.tf", /* plain suffix test, as zos */
                "APP.GENT01.GRID.TF",                     /* ASCII case ignored (our deviation) */
        };
        static const char *const allowed[] = {"example.com", "gent01.grid.tf.evil.com", "grid.tf",
                                              "gent01.grid.t"};
        struct wl_public_config pc = {.domain = "gent01.grid.tf"};

        for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
                struct wl_proxy *p = proxy(WL_KIND_FQDN, "1-1-a", refused[i], ONE, 1, NULL);

                EXPECT(wl_check_fqdn_node(p, &pc, &_err), -EINVAL,
                       "can't create a fqdn workload with a subdomain of the gateway's managed domain");
                wl_proxy_free(p);
        }
        for (size_t i = 0; i < sizeof(allowed) / sizeof(allowed[0]); i++) {
                struct wl_proxy *p = proxy(WL_KIND_FQDN, "1-1-a", allowed[i], ONE, 1, NULL);

                EXPECT(wl_check_fqdn_node(p, &pc, &_err), 0, NULL);
                wl_proxy_free(p);
        }

        /* A node without a domain refuses nothing here. */
        {
                struct wl_proxy *p =
                        proxy(WL_KIND_FQDN, "1-1-a", "app.gent01.grid.tf", ONE, 1, NULL);

                pc.domain = NULL;
                EXPECT(wl_check_fqdn_node(p, &pc, &_err), 0, NULL);
                pc.domain = "";
                EXPECT(wl_check_fqdn_node(p, &pc, &_err), 0, NULL);
                wl_proxy_free(p);
        }
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_kind_strings),    cmocka_unit_test(test_public_config_copy),
                cmocka_unit_test(test_proxy_lifecycle), cmocka_unit_test(test_same_spec),
                cmocka_unit_test(test_net_id_vectors),  cmocka_unit_test(test_name_request_order),
                cmocka_unit_test(test_limits),          cmocka_unit_test(test_name_node),
                cmocka_unit_test(test_fqdn_request),    cmocka_unit_test(test_fqdn_node),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
