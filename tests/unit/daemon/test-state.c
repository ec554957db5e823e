/* SPDX-License-Identifier: Apache-2.0 */
/* State files: round trips, nulls, corrupt files, file names, counters. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/fileio.h"
#include "common/macros.h"
#include "daemon/state.h"

static struct wl_proxy *make(const char *id, enum wl_kind kind, const char *network)
{
        struct wl_proxy *p = wl_proxy_new();

        p->id = strdup(id);
        p->kind = kind;
        p->name = kind == WL_KIND_NAME ? strdup("myapp") : NULL;
        p->fqdn = strdup(kind == WL_KIND_NAME ? "myapp.gw.example" : "app.example.org");
        p->backends = calloc(3, sizeof(char *));
        p->backends[0] = strdup("http://[300::1]:80");
        p->backends[1] = strdup("http://1.2.3.4");
        p->n_backends = 2;
        p->network = network ? strdup(network) : NULL;
        p->created_usec = 1;
        p->updated_usec = 2;
        return p;
}

static void test_round_trip(void **state)
{
        const char *nets[] = {NULL, "", "mynet"};

        for (size_t i = 0; i < 3; i++) {
                struct wl_proxy *p = make("37-1-x", i == 1 ? WL_KIND_FQDN : WL_KIND_NAME, nets[i]);
                struct wl_proxy *q = NULL;
                char *text = gw_state_dump_proxy(p), *err = NULL;

                assert_non_null(text);
                assert_int_equal(gw_state_parse_proxy(text, strlen(text), &q, &err), 0);
                assert_true(wl_proxy_same_spec(p, q));
                assert_string_equal(q->id, p->id);
                assert_int_equal(q->kind, p->kind);
                assert_int_equal(q->created_usec, 1);
                if (nets[i])
                        assert_string_equal(q->network, nets[i]);
                else
                        assert_null(q->network);
                free(text);
                wl_proxy_free(p);
                wl_proxy_free(q);
        }
}

static void test_corrupt(void **state)
{
        static const char *const bad[] = {
                "",
                "{",
                "[]",
                "{\"version\":2,\"id\":\"a\",\"kind\":\"name\",\"name\":\"a\",\"fqdn\":\"a.b\","
                "\"backends\":[],\"tls_passthrough\":false}",
                "{\"version\":1,\"id\":\"a\",\"kind\":\"zzz\",\"fqdn\":\"a.b\",\"backends\":[],"
                "\"tls_passthrough\":false}",
                "{\"version\":1,\"id\":\"a\",\"kind\":\"name\",\"fqdn\":\"a.b\",\"backends\":[],"
                "\"tls_passthrough\":false}",
                "{\"version\":1,\"id\":\"a\",\"kind\":\"fqdn\",\"fqdn\":\"a.b\",\"backends\":[1],"
                "\"tls_passthrough\":false}",
                "{\"version\":1,\"id\":\"a\",\"kind\":\"fqdn\",\"fqdn\":7,\"backends\":[],"
                "\"tls_passthrough\":false}",
        };
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                struct wl_proxy *q = NULL;
                char *err = NULL;

                assert_int_equal(gw_state_parse_proxy(bad[i], strlen(bad[i]), &q, &err), -EBADMSG);
                assert_null(q);
                free(err);
        }
}

static void test_file_names(void **state)
{
        char *n;

        n = gw_state_file_name("37-1976-myapp");
        assert_string_equal(n, "wl-37-1976-myapp.json");
        free(n);
        n = gw_state_file_name("../x/.y z");
        assert_string_equal(n, "wl-%2E%2E%2Fx%2F%2Ey%20z.json");
        free(n);
        n = gw_state_file_name("");
        assert_string_equal(n, "wl-.json");
        free(n);
}

static void on_loaded(const struct gw_state_loaded *l, void *userdata)
{
        int *counts = userdata;

        if (l->p) {
                counts[0]++;
                wl_proxy_free(l->p);
        } else if (l->earlier) {
                counts[2]++;
        } else {
                counts[1]++;
                if (l->aside)
                        counts[3]++;
        }
}

static void test_save_load_remove(void **state)
{
        char dir[] = "/tmp/gw-test-state.XXXXXX", path[256];
        struct gw_state *s = NULL;
        struct wl_proxy *a = make("37-1-a", WL_KIND_NAME, NULL);
        struct wl_proxy *b = make("37-2-b/..", WL_KIND_FQDN, "n");
        int counts[4] = {0, 0, 0, 0};
        FILE *f;

        assert_non_null(mkdtemp(dir));
        assert_int_equal(gw_state_open(dir, &s), 0);
        assert_int_equal(gw_state_save(s, a), 0);
        assert_int_equal(gw_state_save(s, b), 0);
        /* A corrupt file and a foreign file are reported and skipped. */
        snprintf(path, sizeof(path), "%s/workloads/wl-junk.json", dir);
        f = fopen(path, "w");
        fputs("{not json", f);
        fclose(f);
        snprintf(path, sizeof(path), "%s/workloads/README", dir);
        f = fopen(path, "w");
        fclose(f);
        assert_int_equal(gw_state_load(s, on_loaded, counts), 0);
        assert_int_equal(counts[0], 2);
        assert_int_equal(counts[1], 1);
        assert_int_equal(counts[3], 1); /* moved aside */

        assert_int_equal(gw_state_remove(s, "37-2-b/.."), 0);
        assert_int_equal(gw_state_remove(s, "unknown"), 0);
        memset(counts, 0, sizeof(counts));
        assert_int_equal(gw_state_load(s, on_loaded, counts), 0);
        assert_int_equal(counts[0], 1);
        /* The corrupt file is not loaded again, only reported as set aside. */
        assert_int_equal(counts[1], 0);
        assert_int_equal(counts[2], 1);

        wl_proxy_free(a);
        wl_proxy_free(b);
        gw_state_free(s);
        snprintf(path, sizeof(path), "rm -rf '%s'", dir);
        assert_int_equal(system(path), 0);
}

struct corrupt_seen {
        char id[64];
        char aside[256];
        char error[512];
        int n;
};

static void on_loaded_corrupt(const struct gw_state_loaded *l, void *userdata)
{
        struct corrupt_seen *c = userdata;

        assert_null(l->p);
        c->n++;
        snprintf(c->id, sizeof(c->id), "%s", l->id ? l->id : "(null)");
        snprintf(c->aside, sizeof(c->aside), "%s", l->aside ? l->aside : "(null)");
        snprintf(c->error, sizeof(c->error), "%s", l->error ? l->error : "(null)");
}

/* Issue 10: a corrupt file is moved aside with the ID kept in its name. */
static void test_issue_10_corrupt_file_moved_aside(void **state)
{
        char dir[] = "/tmp/gw-test-state.XXXXXX", path[512];
        _cleanup_free_ char *name = gw_state_file_name("37-9-x y");
        struct corrupt_seen c = {};
        struct gw_state *s = NULL;
        struct stat st;
        FILE *f;

        assert_non_null(mkdtemp(dir));
        assert_int_equal(gw_state_open(dir, &s), 0);
        assert_string_equal(name, "wl-37-9-x%20y.json");
        snprintf(path, sizeof(path), "%s/workloads/%s", dir, name);
        f = fopen(path, "w");
        fputs("{\"version\": 1, \"kind\": ", f);
        fclose(f);
        assert_int_equal(gw_state_load(s, on_loaded_corrupt, &c), 0);
        assert_int_equal(c.n, 1);
        assert_string_equal(c.id, "37-9-x y");
        assert_true(strncmp(c.aside, "wl-37-9-x%20y.json.corrupt-", 27) == 0);
        assert_non_null(strstr(c.error, "moved aside to wl-37-9-x%20y.json.corrupt-"));
        assert_int_equal(stat(path, &st), -1);
        snprintf(path, sizeof(path), "%s/workloads/%s", dir, c.aside);
        assert_int_equal(stat(path, &st), 0);

        /* An unreadable entry that is not corrupt (a directory) stays. */
        memset(&c, 0, sizeof(c));
        snprintf(path, sizeof(path), "%s/workloads/wl-dir.json", dir);
        assert_int_equal(mkdir(path, 0700), 0);
        assert_int_equal(gw_state_load(s, on_loaded_corrupt, &c), 0);
        assert_int_equal(c.n, 2);
        assert_int_equal(stat(path, &st), 0);

        gw_state_free(s);
        snprintf(path, sizeof(path), "rm -rf '%s'", dir);
        assert_int_equal(system(path), 0);
}

static void test_id_from_file_name(void **state)
{
        const char *ids[] = {"37-1976-web", "a/b c%", "\xc3\xa9t\xc3\xa9", "-", "x.y"};

        for (size_t i = 0; i < ELEMENTSOF(ids); i++) {
                _cleanup_free_ char *n = gw_state_file_name(ids[i]), *back = NULL, *aside = NULL;

                back = gw_state_id_from_file_name(n);
                assert_non_null(back);
                assert_string_equal(back, ids[i]);
                assert_true(asprintf(&aside, "%s.corrupt-1700000000", n) > 0);
                free(back);
                back = gw_state_id_from_file_name(aside);
                assert_string_equal(back, ids[i]);
        }
        assert_null(gw_state_id_from_file_name("README"));
        assert_null(gw_state_id_from_file_name("wl-.json"));
        assert_null(gw_state_id_from_file_name("wl-x.txt"));
        assert_null(gw_state_id_from_file_name("wl-%4.json"));
        assert_null(gw_state_id_from_file_name("wl-%00.json"));
        assert_null(gw_state_id_from_file_name("wl-%zz.json"));
        assert_null(gw_state_id_from_file_name("counters.json"));
}

/* ---- counters.json ---- */

struct counters_seen {
        size_t n;
        char id[4][32];
        struct gw_counters c[4];
};

static int get_counters(const char *id, struct gw_counters *ret, void *userdata)
{
        if (strcmp(id, "37-2-b") == 0)
                return -ENOENT; /* left out */
        *ret = (struct gw_counters){
                .request_bytes = strlen(id) * 1000 + 1,
                .response_bytes = UINT64_C(1) << 50,
                .requests = 7,
                .status = {1, 2, 3, 4, 5},
        };
        return 0;
}

static void on_counters(const char *id, const struct gw_counters *c, void *userdata)
{
        struct counters_seen *seen = userdata;

        assert_true(seen->n < 4);
        snprintf(seen->id[seen->n], sizeof(seen->id[0]), "%s", id);
        seen->c[seen->n++] = *c;
}

static void write_text(const char *dir, const char *name, const char *text)
{
        assert_int_equal(write_file_atomic(dir, name, text, strlen(text), 0600), 0);
}

static void test_counters(void **state)
{
        char dir[] = "/tmp/gw-test-counters.XXXXXX", cmd[256];
        struct wl_registry *reg = wl_registry_new();
        struct counters_seen seen = {};
        struct gw_state *s = NULL;

        assert_non_null(mkdtemp(dir));
        assert_int_equal(gw_state_open(dir, &s), 0);
        assert_int_equal(gw_state_load_counters(s, on_counters, &seen), -ENOENT);
        assert_int_equal(wl_registry_restore(reg, make("37-1-a", WL_KIND_NAME, NULL)), 0);
        {
                struct wl_proxy *b = make("37-2-b", WL_KIND_FQDN, NULL);

                assert_int_equal(wl_registry_restore(reg, b), 0);
        }
        assert_int_equal(gw_state_save_counters(s, reg, get_counters, NULL), 0);
        assert_int_equal(gw_state_load_counters(s, on_counters, &seen), 0);
        assert_int_equal(seen.n, 1);
        assert_string_equal(seen.id[0], "37-1-a");
        assert_int_equal(seen.c[0].request_bytes, 6001);
        assert_true(seen.c[0].response_bytes == UINT64_C(1) << 50);
        assert_int_equal(seen.c[0].requests, 7);
        for (size_t i = 0; i < 5; i++)
                assert_int_equal(seen.c[0].status[i], i + 1);

        /* A file from before requests/status: those load as zero. Bad
         * entries are skipped, a bad optional part is zero. */
        write_text(dir, "counters.json",
                   "{\"old\":{\"request_bytes\":5,\"response_bytes\":6},"
                   "\"neg\":{\"request_bytes\":-5,\"response_bytes\":6},"
                   "\"str\":{\"request_bytes\":\"5\",\"response_bytes\":6},"
                   "\"badstatus\":{\"request_bytes\":1,\"response_bytes\":2,\"requests\":3,"
                   "\"status\":[1,2]}}");
        memset(&seen, 0, sizeof(seen));
        assert_int_equal(gw_state_load_counters(s, on_counters, &seen), 0);
        assert_int_equal(seen.n, 2);
        for (size_t i = 0; i < seen.n; i++) {
                if (strcmp(seen.id[i], "old") == 0) {
                        assert_int_equal(seen.c[i].request_bytes, 5);
                        assert_int_equal(seen.c[i].response_bytes, 6);
                } else {
                        assert_string_equal(seen.id[i], "badstatus");
                        assert_int_equal(seen.c[i].request_bytes, 1);
                }
                assert_int_equal(seen.c[i].requests, 0);
                assert_int_equal(seen.c[i].status[0], 0);
        }
        write_text(dir, "counters.json", "[1,2]");
        assert_int_equal(gw_state_load_counters(s, on_counters, &seen), -EBADMSG);

        wl_registry_free(reg);
        gw_state_free(s);
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
        assert_int_equal(system(cmd), 0);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_issue_10_corrupt_file_moved_aside),
                cmocka_unit_test(test_id_from_file_name),
                cmocka_unit_test(test_round_trip),
                cmocka_unit_test(test_corrupt),
                cmocka_unit_test(test_file_names),
                cmocka_unit_test(test_save_load_remove),
                cmocka_unit_test(test_counters),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
