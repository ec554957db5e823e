/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* Helpers for the netns tests that need root: unique names, a temporary
 * run_dir, configs, and `ip`/`nsenter` for inducing drift and for checks
 * (the tests may shell out; the module never does). Everything a test
 * creates is named after the test's pid and removed by name. */

#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/macros.h"
#include "netns/netns.h"

struct ntest {
        char run_dir[64];
        char name[32];      /* namespace */
        char pub[IFNAMSIZ]; /* veth host ends */
        char ygg[IFNAMSIZ];
        char myc[IFNAMSIZ];    /* host end of the mycelium veth */
        char parent[IFNAMSIZ]; /* dummy macvlan parent */
        char moved[IFNAMSIZ];  /* dummy link to move */
        char path[128];        /* run_dir/name */
};

static inline bool ntest_have_root(void)
{
        return geteuid() == 0;
}

/* Skip the whole binary. The convention is exit code 77, but meson turns
 * any non-zero exit of a TAP test into ERROR; under TAP (how meson runs
 * us) a "1..0 # SKIP" plan with status 0 is what it reports as SKIP. */
static inline int ntest_skip_all(const char *why)
{
        const char *out = getenv("CMOCKA_MESSAGE_OUTPUT");

        if (out && strcasecmp(out, "TAP") == 0) {
                printf("1..0 # SKIP %s\n", why);
                return 0;
        }
        fprintf(stderr, "skipped: %s\n", why);
        return 77;
}

static inline int ntest_sh(const char *fmt, ...) _printf_(1, 2);
static inline int ntest_sh(const char *fmt, ...)
{
        char cmd[1024];
        va_list ap;
        int r;

        va_start(ap, fmt);
        vsnprintf(cmd, sizeof(cmd), fmt, ap);
        va_end(ap);
        r = system(cmd);
        if (r < 0 || !WIFEXITED(r))
                return -1;
        return WEXITSTATUS(r);
}

/* Output of a shell command (first line, trimmed), or "" on failure. */
static inline const char *ntest_sh_out(char *buf, size_t size, const char *fmt, ...) _printf_(3, 4);
static inline const char *ntest_sh_out(char *buf, size_t size, const char *fmt, ...)
{
        char cmd[1024];
        va_list ap;
        FILE *f;

        va_start(ap, fmt);
        vsnprintf(cmd, sizeof(cmd), fmt, ap);
        va_end(ap);
        buf[0] = 0;
        f = popen(cmd, "r");
        if (!f)
                return buf;
        if (!fgets(buf, (int)size, f))
                buf[0] = 0;
        pclose(f);
        buf[strcspn(buf, "\n")] = 0;
        return buf;
}

static inline int ntest_init(struct ntest *t, const char *tag)
{
        unsigned pid = (unsigned)getpid() % 1000000u;

        snprintf(t->run_dir, sizeof(t->run_dir), "/tmp/gw-netns-%s-XXXXXX", tag);
        if (!mkdtemp(t->run_dir))
                return -errno;
        snprintf(t->name, sizeof(t->name), "gwt%s%u", tag, pid);
        snprintf(t->pub, sizeof(t->pub), "gtp%u", pid);
        snprintf(t->ygg, sizeof(t->ygg), "gty%u", pid);
        snprintf(t->myc, sizeof(t->myc), "gtc%u", pid);
        snprintf(t->parent, sizeof(t->parent), "gtd%u", pid);
        snprintf(t->moved, sizeof(t->moved), "gtm%u", pid);
        snprintf(t->path, sizeof(t->path), "%s/%s", t->run_dir, t->name);
        return 0;
}

/* The documented example: public 203.0.113.10/24 + 2001:db8:1::10/64 with
 * gateways .1 and ::1, ygg 300:1:2:3::10/64 with 200::/7 via router
 * 300:1:2:3::1 (the first overlay; no other). */
static inline void ntest_config(const struct ntest *t, const char *pub_spec, const char *ygg_spec,
                                struct netns_config *c)
{
        memset(c, 0, sizeof(*c));
        snprintf(c->name, sizeof(c->name), "%s", t->name);
        snprintf(c->run_dir, sizeof(c->run_dir), "%s", t->run_dir);
        if (netns_link_spec_parse(pub_spec, "public", &c->public_link, NULL) < 0 ||
            netns_link_spec_parse(ygg_spec, "ygg", &c->overlays[0].link, NULL) < 0)
                abort();
        c->public_v4.family = AF_INET;
        inet_pton(AF_INET, "203.0.113.10", &c->public_v4.v4);
        c->public_v4.prefixlen = 24;
        inet_pton(AF_INET, "203.0.113.1", &c->gw4);
        c->public_v6.family = AF_INET6;
        inet_pton(AF_INET6, "2001:db8:1::10", &c->public_v6.v6);
        c->public_v6.prefixlen = 64;
        inet_pton(AF_INET6, "2001:db8:1::1", &c->gw6);
        c->n_overlays = 1;
        c->overlays[0].address.family = AF_INET6;
        inet_pton(AF_INET6, "300:1:2:3::10", &c->overlays[0].address.v6);
        c->overlays[0].address.prefixlen = 64;
        inet_pton(AF_INET6, "300:1:2:3::1", &c->overlays[0].router);
        c->overlays[0].prefix.family = AF_INET6;
        inet_pton(AF_INET6, "200::", &c->overlays[0].prefix.v6);
        c->overlays[0].prefix.prefixlen = 7;
}

/* The ygg overlay of @c (ntest_config() puts it first). */
static inline struct netns_overlay *ntest_ygg(struct netns_config *c)
{
        return &c->overlays[0];
}

/* Say that @c has no link @name (an overlay not configured). */
static inline void ntest_absent(struct netns_config *c, const char *name)
{
        snprintf(c->absent[c->n_absent++], IFNAMSIZ, "%s", name);
}

/* Add the mycelium overlay to @c: link @spec named "mycelium" inside,
 * 4a1:b2c3:d4e5:f6a7::10/64, 400::/7 via 4a1:b2c3:d4e5:f6a7::1. */
static inline struct netns_overlay *ntest_add_mycelium(struct netns_config *c, const char *spec)
{
        struct netns_overlay *o = &c->overlays[c->n_overlays++];

        memset(o, 0, sizeof(*o));
        if (netns_link_spec_parse(spec, "mycelium", &o->link, NULL) < 0)
                abort();
        o->address.family = AF_INET6;
        inet_pton(AF_INET6, "4a1:b2c3:d4e5:f6a7::10", &o->address.v6);
        o->address.prefixlen = 64;
        inet_pton(AF_INET6, "4a1:b2c3:d4e5:f6a7::1", &o->router);
        o->prefix.family = AF_INET6;
        inet_pton(AF_INET6, "400::", &o->prefix.v6);
        o->prefix.prefixlen = 7;
        return o;
}

/* Remove the namespace and links the test may have left, by name,
 * ignoring errors; run_dir stays. */
static inline void ntest_reset(struct ntest *t)
{
        const char *links[] = {t->pub, t->ygg, t->myc, t->parent, t->moved};

        if (!t->run_dir[0])
                return;
        (void)umount2(t->path, MNT_DETACH);
        (void)unlink(t->path);
        for (size_t i = 0; i < ELEMENTSOF(links); i++)
                if (if_nametoindex(links[i]))
                        (void)ntest_sh("ip link del %s 2>/dev/null", links[i]);
}

/* ntest_reset(), and remove run_dir, which the module made a (shared)
 * mount point of its own. */
static inline void ntest_cleanup(struct ntest *t)
{
        if (!t->run_dir[0])
                return;
        ntest_reset(t);
        while (umount2(t->run_dir, MNT_DETACH) == 0)
                ;
        (void)rmdir(t->run_dir);
        t->run_dir[0] = 0;
}

/* Does @report contain the line @line? */
static inline bool ntest_has_line(const char *report, const char *line)
{
        size_t n = strlen(line);

        for (const char *p = report; p && *p;) {
                const char *nl = strchr(p, '\n');
                size_t len = nl ? (size_t)(nl - p) : strlen(p);

                if (len == n && memcmp(p, line, n) == 0)
                        return true;
                p = nl ? nl + 1 : p + len;
        }
        return false;
}
