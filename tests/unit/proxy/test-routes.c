/* SPDX-License-Identifier: Apache-2.0 */
/* Tests for the route table: builder semantics, snapshot immutability and
 * lifetimes, the trie under forced hash collisions (routes.c is included
 * with its test hook so the hash can be narrowed), a multi-threaded
 * acquire/publish stress test (run it under -Db_sanitize=thread too) and a
 * printed, not asserted, measurement of one change at 100k routes. */
#define PROXY_ROUTES_TEST_HOOKS 1
#include <arpa/inet.h>
#include <inttypes.h>
#include <malloc.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <time.h>

#include <cmocka.h>

#include "proxy/routes.c"

/* Diagnostics and measurements go to stdout as TAP comments. */
#define note(...) printf("# " __VA_ARGS__)

static struct proxy_backend backend(const char *ip, uint16_t port, const char *text)
{
        struct proxy_backend be = {.text = text};

        if (strchr(ip, ':')) {
                struct sockaddr_in6 *a = (struct sockaddr_in6 *)&be.addr;

                a->sin6_family = AF_INET6;
                a->sin6_port = htons(port);
                assert_int_equal(inet_pton(AF_INET6, ip, &a->sin6_addr), 1);
                be.addr_len = sizeof(*a);
        } else {
                struct sockaddr_in *a = (struct sockaddr_in *)&be.addr;

                a->sin_family = AF_INET;
                a->sin_port = htons(port);
                assert_int_equal(inet_pton(AF_INET, ip, &a->sin_addr), 1);
                be.addr_len = sizeof(*a);
        }
        return be;
}

static int put(struct proxy_routes_builder *b, const char *id, const char *host,
               const char *backend_text, uint16_t port)
{
        struct proxy_backend be = backend("10.0.0.1", port, backend_text);
        struct proxy_route_spec spec = {
                .id = id,
                .host = host,
                .mode = PROXY_ROUTE_TERMINATE,
                .backends = &be,
                .n_backends = 1,
        };

        return proxy_routes_builder_put(b, &spec);
}

static struct proxy_route *lookup(const struct proxy_routes *s, const char *host)
{
        return proxy_routes_lookup(s, host, strlen(host));
}

static struct proxy_routes *commit(struct proxy_routes_builder *b)
{
        struct proxy_routes *s = NULL;

        assert_int_equal(proxy_routes_builder_commit(b, &s), 0);
        assert_non_null(s);
        return s;
}

static double now_ms(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* Thread CPU time: excludes time the thread spent preempted. */
static double cpu_ms(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
        return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* ---- basic lookups ---- */

static void test_lookup(void **state)
{
        _cleanup_(proxy_routes_builder_freep) struct proxy_routes_builder *b = NULL;
        _cleanup_(proxy_routes_unrefp) struct proxy_routes *s = NULL;
        struct proxy_backend bes[2] = {
                backend("192.0.2.7", 8080, "http://192.0.2.7:8080"),
                backend("2001:db8::1", 443, "[2001:db8::1]:443"),
        };
        struct proxy_route_spec spec = {
                .id = "1-2-web",
                .host = "Web.Example.COM.",
                .mode = PROXY_ROUTE_PASSTHROUGH,
                .backends = bes,
                .n_backends = 2,
                .netns = "/run/gatewayd/netns/gw",
        };
        struct proxy_route *r;

        assert_int_equal(proxy_routes_builder_new(NULL, &b), 0);
        assert_int_equal(proxy_routes_builder_put(b, &spec), 0);
        assert_int_equal(put(b, "1-3-api", "api.example.com", "10.0.0.1:80", 80), 0);
        assert_int_equal(put(b, "1-4-star", "*.apps.example.com", "10.0.0.1:81", 81), 0);
        assert_int_equal(proxy_routes_builder_size(b), 3);
        s = commit(b);
        assert_int_equal(proxy_routes_size(s), 3);
        assert_int_equal(proxy_routes_generation(s), 1);

        r = lookup(s, "web.example.com");
        assert_non_null(r);
        assert_string_equal(r->id, "1-2-web");
        assert_string_equal(r->host, "web.example.com");
        assert_int_equal(r->host_len, strlen("web.example.com"));
        assert_int_equal(r->mode, PROXY_ROUTE_PASSTHROUGH);
        assert_string_equal(proxy_route_mode_str(r->mode), "passthrough");
        assert_string_equal(r->netns, "/run/gatewayd/netns/gw");
        assert_int_equal(r->generation, 1);
        assert_non_null(r->counters);
        assert_int_equal(r->n_backends, 2);
        assert_string_equal(r->backends[0].text, "http://192.0.2.7:8080");
        assert_int_equal(r->backends[0].addr_len, sizeof(struct sockaddr_in));
        assert_int_equal(((struct sockaddr_in *)&r->backends[0].addr)->sin_port, htons(8080));
        assert_string_equal(r->backends[1].text, "[2001:db8::1]:443");
        assert_int_equal(r->backends[1].addr.ss_family, AF_INET6);
        assert_true(r->backends[0].text != bes[0].text); /* copied */

        /* Case, trailing dot, and a host that is not NUL-terminated. */
        assert_ptr_equal(lookup(s, "WEB.example.Com"), r);
        assert_ptr_equal(lookup(s, "web.example.com."), r);
        assert_ptr_equal(proxy_routes_lookup(s, "web.example.com:443", 15), r);
        assert_ptr_equal(proxy_routes_lookup_id(s, "1-2-web"), r);

        assert_null(lookup(s, "example.com"));
        assert_null(lookup(s, "web.example.co"));
        assert_null(lookup(s, "xweb.example.com"));
        assert_null(lookup(s, ""));
        assert_null(lookup(s, "."));
        assert_null(proxy_routes_lookup(s, NULL, 0));
        assert_null(proxy_routes_lookup_id(s, "1-2-WEB")); /* IDs are exact */
        assert_null(proxy_routes_lookup_id(s, "nope"));
        /* A wildcard entry is not reachable by asking for its literal name. */
        assert_null(lookup(s, "*.apps.example.com"));
        assert_non_null(proxy_routes_lookup_id(s, "1-4-star"));
        assert_null(lookup(s, "x.apps.example.com")); /* exact lookup only */
}

/* ---- replace, counters, immutability ---- */

static void test_replace_keeps_counters(void **state)
{
        _cleanup_(proxy_routes_builder_freep) struct proxy_routes_builder *b = NULL;
        _cleanup_(proxy_routes_unrefp) struct proxy_routes *s1 = NULL, *s2 = NULL, *s3 = NULL;
        _cleanup_(proxy_counters_unrefp) struct proxy_counters *mine = NULL;
        struct proxy_counters_values v;
        struct proxy_route *r1, *r2, *r3;

        assert_int_equal(proxy_routes_builder_new(NULL, &b), 0);
        assert_int_equal(put(b, "w1", "a.example.com", "10.0.0.1:80", 80), 0);
        assert_int_equal(put(b, "w2", "b.example.com", "10.0.0.1:80", 80), 0);
        s1 = commit(b);
        r1 = lookup(s1, "a.example.com");
        proxy_counters_add(r1->counters, 200, 10, 100);
        proxy_counters_add(r1->counters, 503, 1, 2);
        proxy_counters_add(r1->counters, 0, 5, 0);
        proxy_counters_add(r1->counters, 99, 0, 0);

        /* Same spec: nothing changes, the object is kept. */
        assert_int_equal(put(b, "w1", "A.EXAMPLE.COM", "10.0.0.1:80", 80), 2);
        /* New backends: a new route object sharing the counters block. */
        assert_int_equal(put(b, "w1", "a.example.com", "10.0.0.1:81", 81), 1);
        assert_int_equal(proxy_routes_builder_size(b), 2);
        s2 = commit(b);
        assert_int_equal(proxy_routes_generation(s2), 2);
        r2 = lookup(s2, "a.example.com");
        assert_ptr_not_equal(r1, r2);
        assert_ptr_equal(r1->counters, r2->counters);
        assert_int_equal(r2->generation, 2);
        assert_string_equal(r2->backends[0].text, "10.0.0.1:81");
        /* The untouched route is shared between the snapshots. */
        assert_ptr_equal(lookup(s1, "b.example.com"), lookup(s2, "b.example.com"));
        assert_int_equal(lookup(s2, "b.example.com")->generation, 1);
        /* s1 is immutable. */
        assert_ptr_equal(lookup(s1, "a.example.com"), r1);
        assert_string_equal(r1->backends[0].text, "10.0.0.1:80");

        proxy_counters_add(r2->counters, 404, 3, 4);
        proxy_counters_read(r1->counters, &v);
        assert_int_equal(v.requests, 5);
        assert_int_equal(v.request_bytes, 19);
        assert_int_equal(v.response_bytes, 106);
        assert_int_equal(v.status[1], 1);
        assert_int_equal(v.status[3], 1);
        assert_int_equal(v.status[4], 1);
        assert_int_equal(v.status[0] + v.status[2], 0);

        /* An explicit counters block wins. */
        assert_int_equal(proxy_counters_new(&mine), 0);
        {
                struct proxy_backend be = backend("10.0.0.1", 81, "10.0.0.1:81");
                struct proxy_route_spec spec = {
                        .id = "w1",
                        .host = "a.example.com",
                        .backends = &be,
                        .n_backends = 1,
                        .counters = mine,
                };

                assert_int_equal(proxy_routes_builder_put(b, &spec), 1);
        }
        s3 = commit(b);
        r3 = lookup(s3, "a.example.com");
        assert_ptr_equal(r3->counters, mine);
        assert_ptr_not_equal(r2->counters, mine);
}

static int put_n(struct proxy_routes_builder *b, const char *id, const char *netns,
                 const uint16_t *ports, size_t n)
{
        struct proxy_backend be[4];
        struct proxy_route_spec spec = {
                .id = id,
                .host = "h.example.com",
                .mode = PROXY_ROUTE_TERMINATE,
                .backends = be,
                .n_backends = n,
                .netns = netns,
        };

        assert_true(n <= 4);
        for (size_t i = 0; i < n; i++)
                be[i] = backend("10.0.0.1", ports[i], "b");
        return proxy_routes_builder_put(b, &spec);
}

/* A backend's health block is shared by the versions of a route that keep
 * its address (in the same namespace); a new address gets a fresh one. */
static void test_health_carried_over(void **state)
{
        _cleanup_(proxy_routes_builder_freep) struct proxy_routes_builder *b = NULL;
        _cleanup_(proxy_routes_unrefp) struct proxy_routes *s1 = NULL, *s2 = NULL, *s3 = NULL,
                                                           *s4 = NULL;
        struct proxy_backend_health_values v;
        struct proxy_route *r1, *r2, *r3, *r4;

        assert_int_equal(proxy_routes_builder_new(NULL, &b), 0);
        assert_int_equal(put_n(b, "w1", NULL, (const uint16_t[]){80, 81}, 2), 0);
        s1 = commit(b);
        r1 = proxy_routes_lookup_id(s1, "w1");
        assert_non_null(r1->backends[0].health);
        assert_ptr_not_equal(r1->backends[0].health, r1->backends[1].health);
        proxy_backend_health_read(r1->backends[1].health, &v);
        assert_false(v.down);
        assert_false(v.has_error);
        atomic_store(&r1->backends[1].health->down, true);
        atomic_store(&r1->backends[1].health->last_error, PROXY_BACKEND_FAIL_TIMEOUT + 1);

        /* :81 kept (now first), :80 dropped, :82 new. */
        assert_int_equal(put_n(b, "w1", NULL, (const uint16_t[]){81, 82}, 2), 1);
        s2 = commit(b);
        r2 = proxy_routes_lookup_id(s2, "w1");
        assert_ptr_equal(r2->backends[0].health, r1->backends[1].health);
        proxy_backend_health_read(r2->backends[0].health, &v);
        assert_true(v.down);
        assert_true(v.has_error);
        assert_int_equal(v.last_error, PROXY_BACKEND_FAIL_TIMEOUT);
        assert_ptr_not_equal(r2->backends[1].health, r1->backends[0].health);
        assert_false(atomic_load(&r2->backends[1].health->down));

        /* Another namespace: another network, fresh state. */
        assert_int_equal(put_n(b, "w1", "/run/netns/x", (const uint16_t[]){81, 82}, 2), 1);
        s3 = commit(b);
        r3 = proxy_routes_lookup_id(s3, "w1");
        assert_ptr_not_equal(r3->backends[0].health, r2->backends[0].health);
        assert_false(atomic_load(&r3->backends[0].health->down));

        /* Removed and added again: fresh. */
        assert_int_equal(proxy_routes_builder_remove_id(b, "w1"), 1);
        assert_int_equal(put_n(b, "w1", NULL, (const uint16_t[]){81}, 1), 0);
        s4 = commit(b);
        r4 = proxy_routes_lookup_id(s4, "w1");
        assert_false(atomic_load(&r4->backends[0].health->down));
        assert_string_equal(proxy_backend_failure_str(PROXY_BACKEND_FAIL_RESET), "reset");
        assert_null(proxy_backend_failure_str(_PROXY_BACKEND_FAIL_MAX));
}

static void test_remove_and_rename(void **state)
{
        _cleanup_(proxy_routes_builder_freep) struct proxy_routes_builder *b = NULL;
        _cleanup_(proxy_routes_unrefp) struct proxy_routes *s1 = NULL, *s2 = NULL, *s3 = NULL;
        struct proxy_counters *c;

        assert_int_equal(proxy_routes_builder_new(NULL, &b), 0);
        assert_int_equal(put(b, "w1", "one.example.com", "10.0.0.1:80", 80), 0);
        assert_int_equal(put(b, "w2", "two.example.com", "10.0.0.1:80", 80), 0);
        assert_int_equal(put(b, "w3", "three.example.com", "10.0.0.1:80", 80), 0);
        s1 = commit(b);

        /* A host belongs to one ID. */
        assert_int_equal(put(b, "w9", "ONE.example.com", "10.0.0.1:80", 80), -EEXIST);
        assert_int_equal(proxy_routes_builder_size(b), 3);

        assert_int_equal(proxy_routes_builder_remove_host(b, "Two.Example.Com."), 1);
        assert_int_equal(proxy_routes_builder_remove_host(b, "two.example.com"), 0);
        assert_int_equal(proxy_routes_builder_remove_id(b, "w3"), 1);
        assert_int_equal(proxy_routes_builder_remove_id(b, "w3"), 0);
        assert_int_equal(proxy_routes_builder_remove_host(b, "not a host"), 0);
        assert_int_equal(proxy_routes_builder_size(b), 1);
        s2 = commit(b);
        assert_int_equal(proxy_routes_size(s2), 1);
        assert_null(lookup(s2, "two.example.com"));
        assert_null(proxy_routes_lookup_id(s2, "w2"));
        assert_null(lookup(s2, "three.example.com"));
        assert_null(proxy_routes_lookup_id(s2, "w3"));
        assert_non_null(lookup(s2, "one.example.com"));
        /* The old snapshot still has everything. */
        assert_int_equal(proxy_routes_size(s1), 3);
        assert_non_null(lookup(s1, "two.example.com"));
        assert_non_null(proxy_routes_lookup_id(s1, "w3"));

        /* Rename: same ID, new host. The old host disappears, counters stay. */
        c = lookup(s2, "one.example.com")->counters;
        assert_int_equal(put(b, "w1", "uno.example.com", "10.0.0.1:80", 80), 1);
        assert_int_equal(proxy_routes_builder_size(b), 1);
        /* Now the old host is free for another ID. */
        assert_int_equal(put(b, "w2", "one.example.com", "10.0.0.1:80", 80), 0);
        s3 = commit(b);
        assert_int_equal(proxy_routes_size(s3), 2);
        assert_ptr_equal(lookup(s3, "uno.example.com")->counters, c);
        assert_string_equal(lookup(s3, "one.example.com")->id, "w2");
        assert_ptr_not_equal(lookup(s3, "one.example.com")->counters, c);
        assert_string_equal(proxy_routes_lookup_id(s3, "w1")->host, "uno.example.com");

        /* Removing everything gives an empty, usable snapshot. */
        assert_int_equal(proxy_routes_builder_remove_id(b, "w1"), 1);
        assert_int_equal(proxy_routes_builder_remove_id(b, "w2"), 1);
        assert_int_equal(proxy_routes_builder_size(b), 0);
        {
                _cleanup_(proxy_routes_unrefp) struct proxy_routes *s4 = commit(b);

                assert_int_equal(proxy_routes_size(s4), 0);
                assert_null(lookup(s4, "one.example.com"));
                assert_null(proxy_routes_lookup_wildcard(s4, "x.one.example.com", 17));
        }
}

/* The check every connection kind runs on a route change: same ID, same
 * host and mode means "still current", whatever else changed. */
static void test_still_current(void **state)
{
        _cleanup_(proxy_routes_builder_freep) struct proxy_routes_builder *b = NULL;
        _cleanup_(proxy_routes_unrefp) struct proxy_routes *s1 = NULL, *s2 = NULL, *s3 = NULL,
                                                           *s4 = NULL;
        struct proxy_route *one, *two;

        assert_int_equal(proxy_routes_builder_new(NULL, &b), 0);
        assert_int_equal(put(b, "w1", "one.example.com", "10.0.0.1:80", 80), 0);
        assert_int_equal(put(b, "w2", "two.example.com", "10.0.0.1:80", 80), 0);
        s1 = commit(b);
        one = lookup(s1, "one.example.com");
        two = lookup(s1, "two.example.com");
        assert_true(proxy_route_still_current(s1, one));

        /* New backends: a new route object, but the same name and mode. */
        assert_int_equal(put(b, "w1", "one.example.com", "10.0.0.2:81", 81), 1);
        s2 = commit(b);
        assert_ptr_not_equal(lookup(s2, "one.example.com"), one);
        assert_true(proxy_route_still_current(s2, one));
        assert_true(proxy_route_still_current(s2, two));

        /* Renamed, or another mode: no longer current. */
        assert_int_equal(put(b, "w1", "uno.example.com", "10.0.0.2:81", 81), 1);
        {
                struct proxy_backend be = backend("10.0.0.1", 443, "10.0.0.1:443");
                struct proxy_route_spec spec = {.id = "w2",
                                                .host = "two.example.com",
                                                .mode = PROXY_ROUTE_PASSTHROUGH,
                                                .backends = &be,
                                                .n_backends = 1};

                assert_int_equal(proxy_routes_builder_put(b, &spec), 1);
        }
        s3 = commit(b);
        assert_false(proxy_route_still_current(s3, one));
        assert_false(proxy_route_still_current(s3, two));

        /* Removed. */
        assert_int_equal(proxy_routes_builder_remove_id(b, "w1"), 1);
        s4 = commit(b);
        assert_false(proxy_route_still_current(s4, lookup(s3, "uno.example.com")));
}

/* Stream bytes reach the shared block per PROXY_COUNTERS_BATCH_BYTES and
 * at the flush, each direction on its own counter. */
static void test_counters_batch(void **state)
{
        _cleanup_(proxy_counters_unrefp) struct proxy_counters *c = NULL;
        struct proxy_counters_batch b = {0};
        struct proxy_counters_values v;

        assert_int_equal(proxy_counters_new(&c), 0);
        /* No counters block: counting and flushing are no-ops. */
        proxy_counters_batch_add(&b, false, PROXY_COUNTERS_BATCH_BYTES);
        proxy_counters_batch_flush(&b);
        b.c = c;
        proxy_counters_batch_add(&b, false, PROXY_COUNTERS_BATCH_BYTES - 1);
        proxy_counters_batch_add(&b, true, 10);
        proxy_counters_read(c, &v);
        assert_int_equal(v.request_bytes, 0);
        assert_int_equal(v.response_bytes, 0);
        /* A full batch in one direction flushes both. */
        proxy_counters_batch_add(&b, false, 1);
        proxy_counters_read(c, &v);
        assert_int_equal(v.request_bytes, PROXY_COUNTERS_BATCH_BYTES);
        assert_int_equal(v.response_bytes, 10);
        proxy_counters_batch_add(&b, false, 7);
        proxy_counters_batch_add(&b, true, PROXY_COUNTERS_BATCH_BYTES);
        proxy_counters_read(c, &v);
        assert_int_equal(v.response_bytes, PROXY_COUNTERS_BATCH_BYTES + 10);
        assert_int_equal(v.request_bytes, PROXY_COUNTERS_BATCH_BYTES + 7);
        proxy_counters_batch_add(&b, false, 7);
        proxy_counters_read(c, &v);
        assert_int_equal(v.request_bytes, PROXY_COUNTERS_BATCH_BYTES + 7);
        proxy_counters_batch_flush(&b);
        proxy_counters_read(c, &v);
        assert_int_equal(v.request_bytes, PROXY_COUNTERS_BATCH_BYTES + 14);
        assert_int_equal(v.requests, 0); /* bytes only */
        proxy_counters_batch_flush(&b);
        proxy_counters_read(c, &v);
        assert_int_equal(v.request_bytes, PROXY_COUNTERS_BATCH_BYTES + 14);
}

static void test_invalid(void **state)
{
        _cleanup_(proxy_routes_builder_freep) struct proxy_routes_builder *b = NULL;
        struct proxy_backend be = backend("10.0.0.1", 80, "10.0.0.1:80");
        struct proxy_backend bad_be = be;
        struct proxy_route_spec spec = {
                .id = "w1", .host = "ok.example.com", .backends = &be, .n_backends = 1};
        char long_label[80], long_host[300], long_id[300];
        const char *bad_hosts[] = {
                "",        ".",       "a..b",    ".a.b",     "a b.com",  "a/b.com",      "a:80",
                "*",       "*.",      "a.*.com", "**.a.com", "x*.a.com", "\xc3\xa9.com", long_label,
                long_host, "a.com..",
        };

        memset(long_label, 'a', 64);
        strcpy(long_label + 64, ".com");
        for (size_t i = 0; i < 254; i += 2) {
                long_host[i] = 'a';
                long_host[i + 1] = '.';
        }
        long_host[254] = 'a';
        long_host[255] = 0;
        memset(long_id, 'x', 256);
        long_id[256] = 0;

        assert_int_equal(proxy_routes_builder_new(NULL, &b), 0);
        for (size_t i = 0; i < ELEMENTSOF(bad_hosts); i++) {
                spec.host = bad_hosts[i];
                assert_int_equal(proxy_routes_builder_put(b, &spec), -EINVAL);
        }
        spec.host = NULL;
        assert_int_equal(proxy_routes_builder_put(b, &spec), -EINVAL);
        spec.host = "ok.example.com";

        spec.id = "";
        assert_int_equal(proxy_routes_builder_put(b, &spec), -EINVAL);
        spec.id = long_id;
        assert_int_equal(proxy_routes_builder_put(b, &spec), -EINVAL);
        spec.id = "w1";
        spec.mode = _PROXY_ROUTE_MODE_MAX;
        assert_int_equal(proxy_routes_builder_put(b, &spec), -EINVAL);
        spec.mode = PROXY_ROUTE_TERMINATE;
        spec.netns = "relative/path";
        assert_int_equal(proxy_routes_builder_put(b, &spec), -EINVAL);
        spec.netns = NULL;
        spec.n_backends = 0;
        assert_int_equal(proxy_routes_builder_put(b, &spec), -EINVAL);
        spec.n_backends = PROXY_ROUTE_BACKENDS_MAX + 1;
        assert_int_equal(proxy_routes_builder_put(b, &spec), -EINVAL);
        spec.n_backends = 1;
        spec.backends = &bad_be;
        bad_be.addr_len = sizeof(struct sockaddr_in6); /* does not match AF_INET */
        assert_int_equal(proxy_routes_builder_put(b, &spec), -EINVAL);
        bad_be = be;
        bad_be.addr.ss_family = AF_UNIX;
        assert_int_equal(proxy_routes_builder_put(b, &spec), -EINVAL);
        bad_be = be;
        bad_be.text = NULL;
        assert_int_equal(proxy_routes_builder_put(b, &spec), -EINVAL);
        bad_be.text = "";
        assert_int_equal(proxy_routes_builder_put(b, &spec), -EINVAL);

        /* Errors leave the builder as it was and usable. */
        assert_int_equal(proxy_routes_builder_size(b), 0);
        spec.backends = &be;
        spec.host = "_acme-challenge.A-1.example.com";
        assert_int_equal(proxy_routes_builder_put(b, &spec), 0);
        assert_non_null(proxy_routes_builder_lookup(b, "_ACME-challenge.a-1.example.com"));
}

/* ---- wildcard helper ---- */

static void test_wildcard(void **state)
{
        _cleanup_(proxy_routes_builder_freep) struct proxy_routes_builder *b = NULL;
        _cleanup_(proxy_routes_unrefp) struct proxy_routes *s = NULL;
        char buf[PROXY_ROUTE_HOST_MAX + 3];
        struct proxy_route *r;

        assert_int_equal(proxy_host_wildcard("a.B.example.com", 15, buf, sizeof(buf)), 15);
        assert_string_equal(buf, "*.b.example.com");
        assert_int_equal(proxy_host_wildcard("a.com.", 6, buf, sizeof(buf)), 5);
        assert_string_equal(buf, "*.com");
        assert_int_equal(proxy_host_wildcard("com", 3, buf, sizeof(buf)), -EINVAL);
        assert_int_equal(proxy_host_wildcard(".com", 4, buf, sizeof(buf)), -EINVAL);
        assert_int_equal(proxy_host_wildcard("a.", 2, buf, sizeof(buf)), -EINVAL);
        assert_int_equal(proxy_host_wildcard("a..", 3, buf, sizeof(buf)), -EINVAL);
        assert_int_equal(proxy_host_wildcard("a.bc", 4, buf, 4), -ENOBUFS);
        assert_int_equal(proxy_host_wildcard("a.bc", 4, buf, 5), 4);

        assert_int_equal(proxy_routes_builder_new(NULL, &b), 0);
        assert_int_equal(put(b, "gw", "*.gw.example.com", "10.0.0.1:80", 80), 0);
        assert_int_equal(put(b, "own", "own.gw.example.com", "10.0.0.1:81", 81), 0);
        s = commit(b);

        r = proxy_routes_lookup_wildcard(s, "Alice.GW.example.com", 20);
        assert_non_null(r);
        assert_string_equal(r->id, "gw");
        /* The exact name wins over the wildcard. */
        r = proxy_routes_lookup_wildcard(s, "own.gw.example.com", 18);
        assert_string_equal(r->id, "own");
        /* One label only, and not the parent itself. */
        assert_null(proxy_routes_lookup_wildcard(s, "a.b.gw.example.com", 18));
        assert_null(proxy_routes_lookup_wildcard(s, "gw.example.com", 14));
        assert_null(proxy_routes_lookup_wildcard(s, "*.gw.example.com", 16));
        assert_null(proxy_routes_lookup_wildcard(s, "", 0));
}

/* ---- lifetimes ---- */

static void test_lifetimes(void **state)
{
        _cleanup_(proxy_route_unrefp) struct proxy_route *pinned = NULL;
        _cleanup_(proxy_counters_unrefp) struct proxy_counters *c = NULL;
        struct proxy_routes_builder *b = NULL;
        struct proxy_route_table *t = NULL;
        struct proxy_routes *s, *cache = NULL, *got;

        assert_int_equal(proxy_route_table_new(&t), 0);
        s = proxy_routes_acquire(t);
        assert_int_equal(proxy_routes_generation(s), 0);
        assert_int_equal(proxy_routes_size(s), 0);
        assert_null(lookup(s, "a.example.com"));
        assert_int_equal(proxy_routes_builder_new(s, &b), 0);
        proxy_routes_unref(s);

        assert_int_equal(put(b, "w1", "a.example.com", "10.0.0.1:80", 80), 0);
        s = commit(b);
        assert_int_equal(proxy_route_table_publish(t, s), 0);
        /* Publishing the same generation again is stale. */
        assert_int_equal(proxy_route_table_publish(t, s), -ESTALE);
        assert_int_equal(proxy_route_table_reclaim(t), 0);
        proxy_routes_unref(s);

        got = proxy_routes_refresh(t, &cache);
        assert_int_equal(proxy_routes_generation(got), 1);
        assert_ptr_equal(proxy_routes_refresh(t, &cache), got);

        /* A connection pins its route; the snapshot and table go away. */
        s = proxy_routes_acquire(t);
        pinned = proxy_route_ref(lookup(s, "a.example.com"));
        c = proxy_counters_ref(pinned->counters);
        proxy_routes_unref(s);

        assert_int_equal(proxy_routes_builder_remove_id(b, "w1"), 1);
        s = commit(b);
        /* A builder on an old base loses the race. */
        {
                _cleanup_(proxy_routes_builder_freep) struct proxy_routes_builder *b2 = NULL;
                _cleanup_(proxy_routes_unrefp) struct proxy_routes *old = NULL, *s2 = NULL;

                old = proxy_routes_acquire(t);
                assert_int_equal(proxy_routes_builder_new(old, &b2), 0);
                assert_int_equal(proxy_route_table_publish(t, s), 0);
                assert_int_equal(put(b2, "w2", "b.example.com", "10.0.0.1:80", 80), 0);
                s2 = commit(b2);
                assert_int_equal(proxy_route_table_publish(t, s2), -ESTALE);
                /* The old snapshot is still intact while held. */
                assert_non_null(lookup(old, "a.example.com"));
        }
        proxy_routes_unref(s);
        got = proxy_routes_refresh(t, &cache);
        assert_int_equal(proxy_routes_generation(got), 2);
        assert_null(lookup(got, "a.example.com"));
        proxy_routes_unref(cache);
        proxy_routes_builder_free(b);
        proxy_route_table_free(t);

        /* Still usable: ASan would catch a use after free here. */
        assert_string_equal(pinned->host, "a.example.com");
        proxy_counters_add(pinned->counters, 200, 1, 1);
        pinned = proxy_route_unref(pinned);
        proxy_counters_add(c, 200, 1, 1);
        assert_int_equal(atomic_load(&c->requests), 2);
}

/* ---- model check, including forced collisions ---- */

struct model_entry {
        char id[32];
        char host[64];
        uint16_t port;
        bool present;
};

static int count_cb(struct proxy_route *r, void *userdata)
{
        (*(size_t *)userdata)++;
        return 0;
}

static void check_model(const struct proxy_routes *s, const struct model_entry *m, size_t n)
{
        size_t present = 0, seen = 0;

        for (size_t i = 0; i < n; i++) {
                struct proxy_route *r = lookup(s, m[i].host);
                struct proxy_route *ri = proxy_routes_lookup_id(s, m[i].id);

                if (!m[i].present) {
                        assert_null(r);
                        assert_null(ri);
                        continue;
                }
                present++;
                assert_non_null(r);
                assert_ptr_equal(r, ri);
                assert_int_equal(((struct sockaddr_in *)&r->backends[0].addr)->sin_port,
                                 htons(m[i].port));
        }
        assert_int_equal(proxy_routes_size(s), present);
        assert_int_equal(proxy_routes_foreach(s, count_cb, &seen), 0);
        assert_int_equal(seen, present);
}

static void model_run(uint64_t mask, size_t n, unsigned seed)
{
        _cleanup_(proxy_routes_builder_freep) struct proxy_routes_builder *b = NULL;
        _cleanup_free_ struct model_entry *m = calloc(n, sizeof(*m));
        struct proxy_routes *snaps[8] = {0};
        struct model_entry *hist[8] = {0};

        assert_non_null(m);
        test_hash_mask = mask;
        srand(seed);
        for (size_t i = 0; i < n; i++) {
                snprintf(m[i].id, sizeof(m[i].id), "id-%zu", i);
                snprintf(m[i].host, sizeof(m[i].host), "h%zu.Example.com", i);
        }
        assert_int_equal(proxy_routes_builder_new(NULL, &b), 0);
        for (unsigned round = 0; round < 8; round++) {
                for (size_t op = 0; op < n; op++) {
                        size_t i = (size_t)rand() % n;
                        int r;

                        if (rand() % 3 == 0) {
                                r = rand() % 2 ? proxy_routes_builder_remove_id(b, m[i].id)
                                               : proxy_routes_builder_remove_host(b, m[i].host);
                                assert_int_equal(r, m[i].present ? 1 : 0);
                                m[i].present = false;
                        } else {
                                uint16_t port = (uint16_t)(1 + rand() % 3);
                                char text[16];

                                snprintf(text, sizeof(text), "10.0.0.1:%u", port);
                                r = put(b, m[i].id, m[i].host, text, port);
                                if (!m[i].present)
                                        assert_int_equal(r, 0);
                                else
                                        assert_int_equal(r, port == m[i].port ? 2 : 1);
                                m[i].present = true;
                                m[i].port = port;
                        }
                }
                snaps[round] = commit(b);
                hist[round] = malloc(n * sizeof(*m));
                assert_non_null(hist[round]);
                memcpy(hist[round], m, n * sizeof(*m));
                check_model(snaps[round], m, n);
        }
        /* Older snapshots are unaffected by later in-place builder edits. */
        for (unsigned round = 0; round < 8; round++) {
                check_model(snaps[round], hist[round], n);
                proxy_routes_unref(snaps[round]);
                free(hist[round]);
        }
        test_hash_mask = UINT64_MAX;
}

static void test_model_full_hash(void **state)
{
        model_run(UINT64_MAX, 3000, 1);
}

static void test_model_narrow_hash(void **state)
{
        /* 8 bits: most keys share deep paths; many collision nodes. */
        model_run(0xff, 1000, 2);
        /* Low 2 bits of each level only + everything else equal. */
        model_run(UINT64_C(0x0303030303030303), 500, 3);
}

static void test_model_one_hash(void **state)
{
        /* Every key collides: one 13-deep chain ending in a collision node. */
        model_run(0, 100, 4);
}

/* ---- threads: acquire/refresh against a publishing loop ---- */

#define STRESS_READERS 4
#define STRESS_MS      1000.0

struct stress {
        struct proxy_route_table *t;
        atomic_bool stop;
        atomic_uint_least64_t lookups;
        atomic_uint_least64_t counted;
        atomic_uint_least64_t max_seen_generation;
};

/* Give the publisher a chance to run between load and ref now and then. */
static void acquire_window(void)
{
        static _Thread_local unsigned n;

        if (++n % 32 == 0)
                sched_yield();
}

static void *stress_reader(void *userdata)
{
        struct stress *st = userdata;
        struct proxy_routes *cache = NULL;
        struct proxy_route *pinned = NULL;
        uint64_t n = 0, counted = 0, last_gen = 0;
        unsigned self = (unsigned)(uintptr_t)pthread_self();

        while (!atomic_load_explicit(&st->stop, memory_order_relaxed)) {
                bool use_cache = (n & 1) != 0;
                struct proxy_routes *s = use_cache ? proxy_routes_refresh(st->t, &cache)
                                                   : proxy_routes_acquire(st->t);
                struct proxy_route *r = lookup(s, "stable.example.com");
                char host[32];

                /* Generations only move forward for one reader. */
                if (proxy_routes_generation(s) < last_gen)
                        abort();
                last_gen = proxy_routes_generation(s);
                if (r) {
                        /* Every version of "stable" has one backend whose port
                         * encodes nothing but must be readable. */
                        if (r->n_backends != 1 || !streq(r->id, "stable"))
                                abort();
                        proxy_counters_add(r->counters, 200, 1, 2);
                        counted++;
                        /* Sometimes keep a route across publishes, as a
                         * connection would. */
                        if ((n & 15) == 0) {
                                proxy_route_unref(pinned);
                                pinned = proxy_route_ref(r);
                        }
                }
                snprintf(host, sizeof(host), "t%u.example.com", (unsigned)((n + self) % 64));
                r = lookup(s, host);
                if (r && r->host_len != strlen(host))
                        abort();
                if (!use_cache)
                        proxy_routes_unref(s);
                if (pinned && pinned->backends[0].text[0] != '1')
                        abort();
                n++;
        }
        proxy_route_unref(pinned);
        proxy_routes_unref(cache);
        atomic_fetch_add(&st->lookups, n);
        atomic_fetch_add(&st->counted, counted);
        if (last_gen > atomic_load(&st->max_seen_generation))
                atomic_store(&st->max_seen_generation, last_gen);
        return NULL;
}

static void test_threads(void **state)
{
        struct stress st = {0};
        pthread_t th[STRESS_READERS];
        struct proxy_routes *s;
        struct proxy_counters *c;
        struct proxy_counters_values v;
        uint64_t publishes = 0, deferred = 0;
        double start, worst = 0, worst_cpu = 0;

        assert_int_equal(proxy_route_table_new(&st.t), 0);
        {
                _cleanup_(proxy_routes_builder_freep) struct proxy_routes_builder *b = NULL;

                s = proxy_routes_acquire(st.t);
                assert_int_equal(proxy_routes_builder_new(s, &b), 0);
                proxy_routes_unref(s);
                assert_int_equal(put(b, "stable", "stable.example.com", "10.0.0.1:1", 1), 0);
                for (unsigned i = 0; i < 1000; i++) {
                        char id[16], host[32];

                        snprintf(id, sizeof(id), "bulk%u", i);
                        snprintf(host, sizeof(host), "bulk%u.example.com", i);
                        assert_int_equal(put(b, id, host, "10.0.0.1:2", 2), 0);
                }
                s = commit(b);
                assert_int_equal(proxy_route_table_publish(st.t, s), 0);
                c = proxy_counters_ref(lookup(s, "stable.example.com")->counters);
                proxy_routes_unref(s);
        }

        test_acquire_window = acquire_window;
        for (size_t i = 0; i < STRESS_READERS; i++)
                assert_int_equal(pthread_create(&th[i], NULL, stress_reader, &st), 0);

        start = now_ms();
        while (now_ms() - start < STRESS_MS) {
                _cleanup_(proxy_routes_builder_freep) struct proxy_routes_builder *b = NULL;
                char host[32], text[32];
                double t0, c0;

                s = proxy_routes_acquire(st.t);
                assert_int_equal(proxy_routes_builder_new(s, &b), 0);
                proxy_routes_unref(s);
                /* Replace "stable" (new backends, same counters), toggle one
                 * of 64 names. */
                snprintf(text, sizeof(text), "10.0.0.1:%u", (unsigned)(publishes % 1000 + 1));
                assert_true(put(b, "stable", "stable.example.com", text,
                                (uint16_t)(publishes % 1000 + 1)) >= 1);
                snprintf(host, sizeof(host), "t%u.example.com", (unsigned)(publishes % 64));
                if (proxy_routes_builder_remove_host(b, host) == 0)
                        assert_int_equal(put(b, host, host, "10.0.0.1:3", 3), 0);
                s = commit(b);
                t0 = now_ms();
                c0 = cpu_ms();
                assert_int_equal(proxy_route_table_publish(st.t, s), 0);
                worst = MAX(worst, now_ms() - t0);
                worst_cpu = MAX(worst_cpu, cpu_ms() - c0);
                if (proxy_route_table_reclaim(st.t) > 0)
                        deferred++;
                proxy_routes_unref(s);
                publishes++;
        }
        atomic_store(&st.stop, true);
        for (size_t i = 0; i < STRESS_READERS; i++)
                assert_int_equal(pthread_join(th[i], NULL), 0);
        test_acquire_window = NULL;

        proxy_counters_read(c, &v);
        assert_int_equal(v.requests, atomic_load(&st.counted));
        assert_int_equal(v.status[1], atomic_load(&st.counted));
        assert_int_equal(v.response_bytes, 2 * atomic_load(&st.counted));
        assert_true(atomic_load(&st.counted) > 0);
        note("stress: %" PRIu64 " publishes, %" PRIu64 " reader iterations on %d threads, "
             "worst publish %.3f ms wall / %.3f ms thread CPU, %" PRIu64
             " left a snapshot for later reclaim, last "
             "generation seen %" PRIu64 "\n",
             publishes, atomic_load(&st.lookups), STRESS_READERS, worst, worst_cpu, deferred,
             atomic_load(&st.max_seen_generation));
        assert_int_equal(proxy_route_table_reclaim(st.t), 0); /* no readers left */
        proxy_counters_unref(c);
        proxy_route_table_free(st.t);
}

/* ---- measurement at 100k routes (printed, not asserted) ---- */

#define SCALE_N 100000

static size_t heap_in_use(void)
{
        struct mallinfo2 mi = mallinfo2();

        return mi.uordblks + mi.hblkhd;
}

static void spec_for(size_t i, unsigned version, char *id, char *host, char *text)
{
        sprintf(id, "%zu-%zu-workload", 1000 + i, 7 * i);
        sprintf(host, "name%zu.gw%zu.example.com", i, i % 10);
        sprintf(text, "10.%zu.%zu.2:%u", (i >> 8) & 255, i & 255, 8000 + version);
}

static void test_scale(void **state)
{
        struct proxy_route_table *t = NULL;
        struct proxy_routes_builder *b = NULL;
        struct proxy_routes *s;
        char id[64], host[64], text[64];
        size_t heap0, heap1;
        double t0, t1, build_ms, sum = 0, worst = 0, pub_sum = 0;
        const unsigned changes = 2000;
        volatile size_t hits = 0;

        assert_int_equal(proxy_route_table_new(&t), 0);
        heap0 = heap_in_use();
        t0 = now_ms();
        s = proxy_routes_acquire(t);
        assert_int_equal(proxy_routes_builder_new(s, &b), 0);
        proxy_routes_unref(s);
        for (size_t i = 0; i < SCALE_N; i++) {
                spec_for(i, 0, id, host, text);
                assert_int_equal(put(b, id, host, text, 8000), 0);
        }
        s = commit(b);
        assert_int_equal(proxy_route_table_publish(t, s), 0);
        proxy_routes_unref(s);
        b = proxy_routes_builder_free(b);
        build_ms = now_ms() - t0;
        heap1 = heap_in_use();

        /* One change = builder on the current snapshot + one put or remove +
         * commit + publish + dropping the builder and the old snapshot. */
        srand(42);
        for (unsigned k = 0; k < changes; k++) {
                size_t i = (size_t)rand() % SCALE_N;
                double tp;
                int r;

                t0 = now_ms();
                s = proxy_routes_acquire(t);
                assert_int_equal(proxy_routes_builder_new(s, &b), 0);
                proxy_routes_unref(s);
                spec_for(i, k + 1, id, host, text);
                if (k % 4 == 3) {
                        r = proxy_routes_builder_remove_id(b, id);
                        assert_true(r >= 0);
                } else {
                        r = put(b, id, host, text, (uint16_t)(8000 + k + 1));
                        assert_true(r >= 0);
                }
                s = commit(b);
                tp = now_ms();
                assert_int_equal(proxy_route_table_publish(t, s), 0);
                t1 = now_ms();
                proxy_routes_unref(s);
                b = proxy_routes_builder_free(b);
                sum += t1 - t0;
                pub_sum += t1 - tp;
                worst = MAX(worst, t1 - t0);
        }

        s = proxy_routes_acquire(t);
        {
                _cleanup_free_ char *hosts = malloc((size_t)SCALE_N * 48);

                assert_non_null(hosts);
                for (size_t i = 0; i < SCALE_N; i++) {
                        spec_for(i, 0, id, host, text);
                        strcpy(hosts + i * 48, host);
                }
                t0 = now_ms();
                for (size_t i = 0; i < SCALE_N; i++)
                        hits += lookup(s, hosts + i * 48) != NULL;
                t1 = now_ms();
        }
        note("scale: %d routes built in %.1f ms (%.2f us/route, one builder)\n", SCALE_N, build_ms,
             build_ms * 1e3 / SCALE_N);
        if (heap1 > heap0)
                note("scale: heap %.1f MiB, %.0f bytes/route (route object with 1 backend + "
                     "host and ID tries + malloc overhead)\n",
                     (double)(heap1 - heap0) / (1 << 20), (double)(heap1 - heap0) / SCALE_N);
        else
                note("scale: bytes/route n/a (mallinfo2 not available under this allocator)\n");
        note("scale: one change at %zu routes: avg %.2f us, worst %.2f us, publish alone avg "
             "%.2f us (%u changes)\n",
             proxy_routes_size(s), sum * 1e3 / changes, worst * 1e3, pub_sum * 1e3 / changes,
             changes);
        note("scale: lookup %.0f ns avg (%zu hits)\n", (t1 - t0) * 1e6 / SCALE_N, (size_t)hits);
        proxy_routes_unref(s);

        /* For comparison: the cost of the alternative, copying flat pointer
         * tables for host and ID (2 x 2^18 slots at load <= 0.75). */
        {
                size_t bytes = 2 * (1u << 18) * sizeof(void *);
                _cleanup_free_ void *src = malloc(bytes);
                double best = 1e9;

                assert_non_null(src);
                memset(src, 1, bytes);
                for (int k = 0; k < 20; k++) {
                        void *dst;

                        t0 = now_ms();
                        dst = malloc(bytes);
                        assert_non_null(dst);
                        memcpy(dst, src, bytes);
                        t1 = now_ms();
                        hits += ((volatile char *)dst)[bytes - 1];
                        free(dst);
                        best = MIN(best, t1 - t0);
                }
                note("scale: (alternative) malloc+memcpy of a flat %zu KiB index pair: best %.0f "
                     "us\n",
                     bytes / 1024, best * 1e3);
        }
        proxy_route_table_free(t);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_lookup),
                cmocka_unit_test(test_replace_keeps_counters),
                cmocka_unit_test(test_health_carried_over),
                cmocka_unit_test(test_remove_and_rename),
                cmocka_unit_test(test_still_current),
                cmocka_unit_test(test_counters_batch),
                cmocka_unit_test(test_invalid),
                cmocka_unit_test(test_wildcard),
                cmocka_unit_test(test_lifetimes),
                cmocka_unit_test(test_model_full_hash),
                cmocka_unit_test(test_model_narrow_hash),
                cmocka_unit_test(test_model_one_hash),
                cmocka_unit_test(test_threads),
                cmocka_unit_test(test_scale),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
