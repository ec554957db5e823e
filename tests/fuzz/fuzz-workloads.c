/* SPDX-License-Identifier: Apache-2.0 */
/* The workload checks a SetNamedProxy/SetFQDNProxy request goes through
 * (daemon/gateway.c handle_set, on_pubconf, op_finish): the request check,
 * the workload-ID scan (Go Sscanf), the node check, backend validation (Go
 * net/url and net.ParseIP emulation) and the plan against a registry that
 * already holds a workload, then its commit and removal. The first byte
 * selects options; the rest is NUL-separated fields: ID, name (or FQDN),
 * network when selected, then the backends. Invariant violations abort. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "workloads/workloads.h"

#define CHECK(x)                                                                                   \
        do {                                                                                       \
                if (!(x))                                                                          \
                        abort();                                                                   \
        } while (0)

static const char base58[] = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";

enum {
        OPT_FQDN = 1 << 0,
        OPT_PASSTHROUGH = 1 << 1,
        OPT_NETWORK = 1 << 2,
        OPT_IPV4 = 1 << 3,
        OPT_IPV6 = 1 << 4,
        OPT_DOMAIN = 1 << 5,
};

/* A field ends at NUL (the daemon copies bus strings with strdup()). */
static char *next_field(const uint8_t **p, const uint8_t *end)
{
        const uint8_t *nul = memchr(*p, 0, (size_t)(end - *p));
        size_t n = nul ? (size_t)(nul - *p) : (size_t)(end - *p);
        char *s = malloc(n + 1);

        CHECK(s);
        memcpy(s, *p, n);
        s[n] = 0;
        *p += n + (nul ? 1 : 0);
        return s;
}

/* The error contract of every check: 0 with no text, or -EINVAL with one. */
static bool checked(int r, char **err)
{
        CHECK(r == 0 || r == -EINVAL || r == -E2BIG);
        CHECK(r == 0 ? !*err : r != -EINVAL || *err);
        free(*err);
        *err = NULL;
        return r == 0;
}

static struct wl_registry *registry_with_one(void)
{
        struct wl_registry *reg = wl_registry_new();
        struct wl_proxy *p = wl_proxy_new();

        CHECK(reg && p);
        p->id = strdup("7-8-old");
        p->name = strdup("old");
        p->fqdn = strdup("old.gw.example.com");
        p->network = strdup("net");
        p->backends = calloc(2, sizeof(char *));
        CHECK(p->id && p->name && p->fqdn && p->network && p->backends);
        p->backends[0] = strdup("http://10.1.0.2");
        CHECK(p->backends[0]);
        p->n_backends = 1;
        CHECK(wl_registry_restore(reg, p) == 0);
        return reg;
}

/* The request made it into the registry: it can be found, routed and removed. */
static void check_committed(struct wl_registry *reg, const char *id, size_t before, bool added)
{
        const struct wl_proxy *p = wl_registry_get(reg, id);
        struct wl_plan plan;
        size_t after;

        CHECK(p && p->fqdn);
        CHECK(wl_registry_get_by_domain(reg, p->fqdn) == p);
        after = wl_registry_size(reg);
        CHECK(after == before + (added ? 1 : 0));
        if (p->network) {
                size_t n = strlen(p->net_id);

                CHECK(n >= 1 && n <= 13 && strspn(p->net_id, base58) == n);
        } else {
                CHECK(p->net_id[0] == 0);
        }
        /* daemon/proxy.c route_put() dials every backend that validated. */
        for (size_t i = 0; i < p->n_backends; i++) {
                struct sockaddr_in6 in6;

                CHECK(wl_backend_address(p->backends[i], p->tls_passthrough, &in6) == 0);
                CHECK(in6.sin6_family == AF_INET6);
        }

        CHECK(wl_plan_delete(reg, id, &plan) == 0 && plan.type == WL_PLAN_REMOVE);
        CHECK(wl_registry_commit(reg, &plan) == 0);
        CHECK(!wl_registry_get(reg, id));
        CHECK(wl_registry_size(reg) == after - 1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        const uint8_t *p = data + 1, *end = data + size;
        struct wl_public_config pc = {};
        struct wl_proxy *w;
        struct wl_registry *reg;
        struct wl_plan plan;
        struct wl_id wid;
        char *err = NULL, *id;
        bool fqdn, ok, added;
        uint8_t opts;
        size_t before;
        int r;

        /* The bus limits each string to 4096 bytes and a list to 1024. */
        if (size < 1 || size > 16384)
                return 0;
        opts = data[0];
        fqdn = opts & OPT_FQDN;

        w = wl_proxy_new();
        CHECK(w);
        w->kind = fqdn ? WL_KIND_FQDN : WL_KIND_NAME;
        w->tls_passthrough = opts & OPT_PASSTHROUGH;
        w->id = next_field(&p, end);
        if (fqdn)
                w->fqdn = next_field(&p, end);
        else
                w->name = next_field(&p, end);
        if (opts & OPT_NETWORK)
                w->network = next_field(&p, end);
        w->backends = calloc(WL_BACKENDS_MAX + 1, sizeof(char *));
        CHECK(w->backends);
        while (p < end && w->n_backends < WL_BACKENDS_MAX)
                w->backends[w->n_backends++] = next_field(&p, end);

        pc.has_ipv4 = opts & OPT_IPV4;
        CHECK(inet_pton(AF_INET, "198.51.100.7", &pc.ipv4) == 1);
        pc.ipv4_prefix = 24;
        pc.has_ipv6 = opts & OPT_IPV6;
        CHECK(inet_pton(AF_INET6, "2001:db8::7", &pc.ipv6) == 1);
        pc.ipv6_prefix = 64;
        if (opts & OPT_DOMAIN)
                CHECK((pc.domain = strdup("gw.example.com")));

        /* Every ID is scanned somewhere (a name proxy's by the request
         * check, any proxy's with a network by the plan). */
        r = wl_id_parse(w->id, &wid, &err);
        ok = checked(r, &err);
        /* Not a substring of the ID: invalid UTF-8 scans as U+FFFD, as in Go. */
        if (ok)
                CHECK(strlen(wid.name) <= WL_ID_MAX);

        r = fqdn ? wl_check_fqdn_request(w, &err) : wl_check_name_request(w, &err);
        if (!checked(r, &err))
                goto out;
        /* handle_set() asserts this. */
        if (!fqdn)
                CHECK(ok);

        r = fqdn ? wl_check_fqdn_node(w, &pc, &err) : wl_check_name_node(w, &pc, &err);
        if (!checked(r, &err))
                goto out;
        if (!fqdn) {
                size_t n = strlen(w->name);

                CHECK(w->fqdn && strncmp(w->fqdn, w->name, n) == 0 && w->fqdn[n] == '.' &&
                      strcmp(w->fqdn + n + 1, pc.domain) == 0);
        }

        reg = registry_with_one();
        before = wl_registry_size(reg);
        id = strdup(w->id);
        CHECK(id);
        r = wl_plan_set(reg, w, &pc, &plan, &err);
        if (checked(r, &err)) {
                w = NULL; /* the plan's now */
                CHECK(plan.type == WL_PLAN_ADD || plan.type == WL_PLAN_REPLACE ||
                      plan.type == WL_PLAN_NOOP);
                added = plan.type == WL_PLAN_ADD;
                CHECK(plan.new);
                CHECK(added == !plan.old);
                CHECK(wl_registry_commit(reg, &plan) == 0);
                check_committed(reg, id, before, added);
        }
        free(id);
        wl_registry_free(reg);
out:
        wl_proxy_free(w);
        wl_public_config_done(&pc);
        return 0;
}
