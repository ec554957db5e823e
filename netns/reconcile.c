/* SPDX-License-Identifier: Apache-2.0 */
/* Reconcile and teardown of the gateway namespace. These run on a
 * namespace thread (the worker, or a short-lived one): they open a netlink
 * socket in the host namespace first, then setns() into the gateway
 * namespace and stay there; the caller moves the thread back afterwards.
 * Every change is decided from a netlink dump or a sysctl read, so a run
 * over a correct namespace changes and reports nothing. */

#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if_link.h>
#include <linux/rtnetlink.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <netlink/addr.h>
#include <netlink/cache.h>
#include <netlink/netlink.h>
#include <netlink/route/addr.h>
#include <netlink/route/link.h>
#include <netlink/route/link/macvlan.h>
#include <netlink/route/link/veth.h>
#include <netlink/route/nexthop.h>
#include <netlink/route/route.h>

#include "common/fileio.h"
#include "common/strbuf.h"
#include "netns/netns-internal.h"

/* IFLA_IFALIAS of a link moved into the namespace: "<prefix><old name>:<up|down>".
 * The kernel keeps it with the link, so a restarted daemon still knows
 * where the link came from when it tears down. */
#define MOVED_ALIAS_PREFIX "gatewayd:moved-from="

/* cleanup helpers for libnl objects */
#define DEFINE_NL_PUTP(name, type, put)                                                            \
        static inline void name(type **p)                                                          \
        {                                                                                          \
                if (*p)                                                                            \
                        put(*p);                                                                   \
        }
DEFINE_NL_PUTP(link_putp, struct rtnl_link, rtnl_link_put)
DEFINE_NL_PUTP(addr_putp, struct rtnl_addr, rtnl_addr_put)
DEFINE_NL_PUTP(route_putp, struct rtnl_route, rtnl_route_put)
DEFINE_NL_PUTP(nladdr_putp, struct nl_addr, nl_addr_put)
DEFINE_NL_PUTP(cache_freep, struct nl_cache, nl_cache_free)

struct rc {
        const struct netns_config *c;
        struct strbuf *report; /* may be NULL */
        char **reterr;
        char path[512];         /* <run_dir>/<name> */
        int home_fd;            /* the host namespace (not owned) */
        int ns_fd;              /* the gateway namespace, or -1 */
        struct netns__nl *host; /* netlink in the host namespace */
        struct netns__nl *ns;   /* netlink in the gateway namespace */
};

static void rc_done(struct rc *rc)
{
        rc->ns_fd = safe_close(rc->ns_fd);
        rc->host = netns__nl_free(rc->host);
        rc->ns = netns__nl_free(rc->ns);
}

static int say(struct rc *rc, const char *fmt, ...) _printf_(2, 3);
static int say(struct rc *rc, const char *fmt, ...)
{
        va_list ap;
        int r;

        if (!rc->report)
                return 0;
        va_start(ap, fmt);
        r = strbuf_vprintf(rc->report, fmt, ap);
        va_end(ap);
        if (r < 0)
                return r;
        return strbuf_putc(rc->report, '\n');
}

static const char *perm(int r)
{
        return r == -EPERM || r == -EACCES ? "permission denied " : "";
}

static const char *fmt_addr(int family, const void *a, char *buf, size_t size)
{
        if (!inet_ntop(family, a, buf, size))
                snprintf(buf, size, "?");
        return buf;
}

static const char *fmt_prefix(const struct netns_prefix *p, char *buf, size_t size)
{
        char a[INET6_ADDRSTRLEN];

        snprintf(buf, size, "%s/%u", fmt_addr(p->family, &p->v4, a, sizeof(a)), p->prefixlen);
        return buf;
}

static const char *fmt_nladdr(const struct nl_addr *a, char *buf, size_t size)
{
        if (!a || nl_addr_get_len(a) == 0)
                return "none";
        return fmt_addr(nl_addr_get_family(a), nl_addr_get_binary_addr(a), buf, size);
}

static size_t family_len(int family)
{
        return family == AF_INET ? sizeof(struct in_addr) : sizeof(struct in6_addr);
}

static bool is_zero(const void *p, size_t n)
{
        const unsigned char *b = p;

        for (size_t i = 0; i < n; i++)
                if (b[i])
                        return false;
        return true;
}

/* Do the first @plen bits of @x and @y equal? */
static bool bits_eq(const void *x_, const void *y_, unsigned plen)
{
        const unsigned char *x = x_, *y = y_;
        unsigned bytes = plen / 8, bits = plen % 8;

        if (memcmp(x, y, bytes) != 0)
                return false;
        if (bits) {
                unsigned char mask = (unsigned char)(0xff << (8 - bits));

                if ((x[bytes] & mask) != (y[bytes] & mask))
                        return false;
        }
        return true;
}

/* Do the first @plen bits of @a (of @family) equal those of @want? */
static bool prefix_bits_eq(const struct nl_addr *a, int family, const void *want, unsigned plen)
{
        if (plen == 0)
                return true;
        if (!a || nl_addr_get_family(a) != family || nl_addr_get_len(a) < family_len(family))
                return false;
        return bits_eq(nl_addr_get_binary_addr(a), want, plen);
}

static bool nladdr_eq(const struct nl_addr *a, int family, const void *want)
{
        return a && nl_addr_get_family(a) == family && nl_addr_get_len(a) == family_len(family) &&
               memcmp(nl_addr_get_binary_addr(a), want, family_len(family)) == 0;
}

/* ---- namespace file ---- */

/* iproute2 netns_add(): make run_dir a shared mount point, so the bind
 * mounts made in it propagate to every mount namespace that has a copy of
 * it (for instance the private ones of `ip netns exec`), instead of being
 * visible only here. */
static int prepare_run_dir(struct rc *rc, const char *dir)
{
        int r;

        r = mkdir_p(dir, 0755);
        if (r < 0)
                return netns__fail(rc->reterr, r, "%screating %s", perm(r), dir);
        if (mount("", dir, "none", MS_SHARED | MS_REC, NULL) == 0)
                return 0;
        if (errno != EINVAL) /* EINVAL: not a mount point yet */
                return netns__fail(rc->reterr, -errno, "%smaking %s a shared mount", perm(-errno),
                                   dir);
        if (mount(dir, dir, "none", MS_BIND | MS_REC, NULL) < 0)
                return netns__fail(rc->reterr, -errno, "%sbind-mounting %s on itself", perm(-errno),
                                   dir);
        if (mount("", dir, "none", MS_SHARED | MS_REC, NULL) < 0)
                return netns__fail(rc->reterr, -errno, "%smaking %s a shared mount", perm(-errno),
                                   dir);
        return 0;
}

/* A file at @path that is not a namespace (left from before a reboot, or a
 * half-done creation): unmount whatever is there and remove it. */
static int remove_ns_file(const char *path)
{
        if (umount2(path, MNT_DETACH) < 0 && errno != EINVAL && errno != ENOENT)
                return -errno;
        if (unlink(path) < 0 && errno != ENOENT)
                return -errno;
        return 0;
}

/* The file at rc->path is not a network namespace: remove it, and say so. */
static int remove_stale(struct rc *rc)
{
        int r;

        r = remove_ns_file(rc->path);
        if (r < 0)
                return netns__fail(rc->reterr, r, "%sremoving stale %s", perm(r), rc->path);
        return say(rc, "removed stale %s (not a network namespace)", rc->path);
}

/* Create the namespace: unshare() moves this thread into a new network
 * namespace, and a bind mount of the thread's ns file on @path keeps it
 * alive and named. The thread stays in it. */
static int create_namespace(struct rc *rc)
{
        const char *dir = rc->c->run_dir[0] ? rc->c->run_dir : NETNS_DEFAULT_RUN_DIR;
        _cleanup_close_ int fd = -1;
        int r;

        r = prepare_run_dir(rc, dir);
        if (r < 0)
                return r;
        fd = open(rc->path, O_RDONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0);
        if (fd < 0)
                return netns__fail(rc->reterr, -errno, "%screating %s", perm(-errno), rc->path);
        fd = safe_close(fd);
        if (unshare(CLONE_NEWNET) < 0) {
                r = -errno;
                (void)unlink(rc->path);
                return netns__fail(rc->reterr, r, "%screating namespace %s", perm(r), rc->c->name);
        }
        /* /proc/thread-self, not /proc/self: the namespace is this thread's. */
        if (mount("/proc/thread-self/ns/net", rc->path, "none", MS_BIND, NULL) < 0) {
                r = -errno;
                (void)unlink(rc->path);
                return netns__fail(rc->reterr, r, "%sbind-mounting namespace %s on %s", perm(r),
                                   rc->c->name, rc->path);
        }
        r = netns__open(rc->path, &rc->ns_fd, NULL);
        if (r < 0)
                return netns__fail(rc->reterr, r, "opening namespace %s", rc->path);
        return say(rc, "created namespace %s", rc->c->name);
}

static int ensure_namespace(struct rc *rc)
{
        int r;

        r = netns__open(rc->path, &rc->ns_fd, NULL);
        if (r >= 0)
                return 0;
        if (r == -EINVAL) {
                r = remove_stale(rc);
                if (r < 0)
                        return r;
        } else if (r != -ENOENT) {
                return netns__fail(rc->reterr, r, "%sopening namespace %s", perm(r), rc->path);
        }
        return create_namespace(rc);
}

static int enter_namespace(struct rc *rc)
{
        int r;

        r = netns__enter(rc->ns_fd, rc->c->name, rc->reterr);
        if (r < 0)
                return r;
        r = netns__nl_open(&rc->ns);
        if (r < 0)
                return netns__fail(rc->reterr, r, "opening netlink in namespace %s", rc->c->name);
        return 0;
}

/* ---- sysctls ---- */

/* The gateway namespace's own port sysctls (docs/internals/netns.md): the
 * local ports for connections to backends (the kernel's default is 32768
 * 60999; below 10000 stay the well-known and common service ports, so a
 * listener bound later never finds its port taken by an outgoing
 * connection), and tcp_tw_reuse 1 (the default 2 reuses TIME_WAIT ports
 * only on loopback). */
#define NETNS_LOCAL_PORT_RANGE "10000 65535"
#define NETNS_TCP_TW_REUSE     "1"

/* Set /proc/sys/<key> (a path relative to /proc/sys) to @want unless it
 * already is. /proc/sys/net shows the network namespace of the thread
 * that opens the file, so this addresses the namespace we are in. */
static int sysctl_ensure(struct rc *rc, const char *want, const char *fmt, ...) _printf_(3, 4);
static int sysctl_ensure(struct rc *rc, const char *want, const char *fmt, ...)
{
        char key[256], path[300], cur[64], name[256];
        _cleanup_close_ int fd = -1;
        va_list ap;
        ssize_t n;

        va_start(ap, fmt);
        vsnprintf(key, sizeof(key), fmt, ap);
        va_end(ap);
        snprintf(path, sizeof(path), "/proc/sys/%s", key);
        snprintf(name, sizeof(name), "%s", key);
        for (char *p = name; *p; p++)
                if (*p == '/')
                        *p = '.';

        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return netns__fail(rc->reterr, -errno, "reading %s in namespace %s", name,
                                   rc->c->name);
        n = read(fd, cur, sizeof(cur) - 1);
        if (n < 0)
                return netns__fail(rc->reterr, -errno, "reading %s in namespace %s", name,
                                   rc->c->name);
        cur[n] = 0;
        /* Fields separated by one space, as @want has them (the kernel
         * separates ip_local_port_range's with a tab). */
        {
                size_t j = 0;

                for (size_t i = 0; cur[i]; i++) {
                        if (!strchr(" \t\n", cur[i]))
                                cur[j++] = cur[i];
                        else if (j > 0 && cur[j - 1] != ' ')
                                cur[j++] = ' ';
                }
                if (j > 0 && cur[j - 1] == ' ')
                        j--;
                cur[j] = 0;
        }
        if (streq(cur, want))
                return 0;
        fd = safe_close(fd);
        fd = open(path, O_WRONLY | O_CLOEXEC);
        if (fd < 0 || write(fd, want, strlen(want)) < 0)
                return netns__fail(rc->reterr, -errno, "%ssetting %s=%s in namespace %s",
                                   perm(-errno), name, want, rc->c->name);
        return say(rc, "set %s=%s (was %s)", name, want, cur);
}

/* ---- links ---- */

/* 0 and *ret, -ENODEV when there is no such link, or -errno. */
static int link_get(struct netns__nl *nl, const char *name, struct rtnl_link **ret)
{
        return netns__nl_call(nl, rtnl_link_get_kernel(nl->sk, 0, name, ret));
}

static bool link_is(struct rtnl_link *l, const char *type)
{
        const char *t = rtnl_link_get_type(l);

        return t && streq(t, type);
}

/* Parse a MOVED_ALIAS_PREFIX alias into the old name and admin state. */
static bool moved_alias_parse(struct rtnl_link *l, char ret_name[static IFNAMSIZ], bool *ret_up)
{
        const char *a = rtnl_link_get_ifalias(l), *p, *colon;

        if (!a || strncmp(a, MOVED_ALIAS_PREFIX, strlen(MOVED_ALIAS_PREFIX)) != 0)
                return false;
        p = a + strlen(MOVED_ALIAS_PREFIX);
        colon = strchr(p, ':');
        if (!colon || colon == p || (size_t)(colon - p) >= IFNAMSIZ)
                return false;
        memcpy(ret_name, p, (size_t)(colon - p));
        ret_name[colon - p] = 0;
        *ret_up = streq(colon + 1, "up");
        return true;
}

static int link_set_up(struct rc *rc, struct netns__nl *nl, struct rtnl_link *l, const char *where)
{
        _cleanup_(link_putp) struct rtnl_link *changes = NULL;
        int r;

        if (rtnl_link_get_flags(l) & IFF_UP)
                return 0;
        changes = rtnl_link_alloc();
        if (!changes)
                return -ENOMEM;
        rtnl_link_set_flags(changes, IFF_UP);
        r = netns__nl_call(nl, rtnl_link_change(nl->sk, l, changes, 0));
        if (r < 0)
                return netns__nl_fail(nl, rc->reterr, r, "%ssetting %s up%s", perm(r),
                                      rtnl_link_get_name(l), where);
        return say(rc, "set %s up%s", rtnl_link_get_name(l), where);
}

/* Move the namespace's link @l to the host namespace as @name, clearing
 * our alias, and bring it up if @up. */
static int move_out(struct rc *rc, struct rtnl_link *l, const char *name, bool up)
{
        _cleanup_(link_putp) struct rtnl_link *changes = NULL, *moved = NULL;
        char inner[IFNAMSIZ];
        int r;

        snprintf(inner, sizeof(inner), "%s", rtnl_link_get_name(l));
        changes = rtnl_link_alloc();
        if (!changes)
                return -ENOMEM;
        rtnl_link_set_ns_fd(changes, rc->home_fd);
        rtnl_link_set_name(changes, name);
        /* An empty alias: the kernel stops reporting one. */
        rtnl_link_set_ifalias(changes, "");
        r = netns__nl_call(rc->ns, rtnl_link_change(rc->ns->sk, l, changes, 0));
        if (r < 0)
                return netns__nl_fail(rc->ns, rc->reterr, r,
                                      "%smoving %s back to the host namespace as %s", perm(r),
                                      inner, name);
        r = say(rc, "moved %s back to the host namespace as %s", inner, name);
        if (r < 0 || !up)
                return r;
        r = link_get(rc->host, name, &moved);
        if (r < 0)
                return netns__nl_fail(rc->host, rc->reterr, r, "looking up %s", name);
        return link_set_up(rc, rc->host, moved, " in the host namespace");
}

/* Remove the namespace's link @l, whatever it is: moved links go back,
 * the rest is deleted (a veth with its host end). */
static int remove_inner(struct rc *rc, struct rtnl_link *l, const struct netns_link_spec *spec,
                        const char *why)
{
        char old[IFNAMSIZ], name[IFNAMSIZ];
        const char *type;
        bool up;
        int r;

        if (moved_alias_parse(l, old, &up))
                return move_out(rc, l, old, up);
        if (spec && spec->kind == NETNS_LINK_MOVE && !rtnl_link_get_type(l))
                return move_out(rc, l, spec->host, false);
        snprintf(name, sizeof(name), "%s", rtnl_link_get_name(l));
        type = rtnl_link_get_type(l);
        r = netns__nl_call(rc->ns, rtnl_link_delete(rc->ns->sk, l));
        if (r < 0 && r != -ENODEV)
                return netns__nl_fail(rc->ns, rc->reterr, r, "%sdeleting %s in namespace %s",
                                      perm(r), name, rc->c->name);
        return say(rc, "deleted %s %s in namespace %s%s", type ? type : "link", name, rc->c->name,
                   why);
}

/* Is the link @inner in the namespace what @spec asks for? */
static int inner_matches(struct rc *rc, const struct netns_link_spec *spec, struct rtnl_link *inner,
                         bool *ret)
{
        _cleanup_(link_putp) struct rtnl_link *host = NULL;
        char old[IFNAMSIZ];
        bool up, moved = moved_alias_parse(inner, old, &up);
        int r;

        *ret = false;
        switch (spec->kind) {
        case NETNS_LINK_VETH:
        case NETNS_LINK_MACVLAN:
                if (moved || !link_is(inner, netns_link_kind_to_string(spec->kind)))
                        return 0;
                r = link_get(rc->host, spec->host, &host);
                if (r == -ENODEV)
                        return 0;
                if (r < 0)
                        return netns__nl_fail(rc->host, rc->reterr, r, "looking up %s", spec->host);
                /* IFLA_LINK: the peer of a veth, the parent of a macvlan
                 * (both by ifindex in the other namespace). */
                if (rtnl_link_get_link(inner) != rtnl_link_get_ifindex(host))
                        return 0;
                if (spec->kind == NETNS_LINK_VETH &&
                    (!link_is(host, "veth") ||
                     rtnl_link_get_link(host) != rtnl_link_get_ifindex(inner)))
                        return 0;
                *ret = true;
                return 0;
        case NETNS_LINK_MOVE:
                *ret = moved && streq(old, spec->host);
                return 0;
        default:
                assert(false);
                return -EINVAL;
        }
}

static int create_veth(struct rc *rc, const struct netns_link_spec *spec)
{
        _cleanup_(link_putp) struct rtnl_link *stale = NULL, *link = NULL, *peer = NULL;
        int r;

        /* A host end without its peer here: the namespace was deleted from
         * outside while something (a monitor socket, a process) kept it
         * alive, so the pair still exists with one end in the lost one. */
        r = link_get(rc->host, spec->host, &stale);
        if (r < 0 && r != -ENODEV)
                return netns__nl_fail(rc->host, rc->reterr, r, "looking up %s", spec->host);
        if (r >= 0) {
                if (!link_is(stale, "veth"))
                        return netns__fail(rc->reterr, -EEXIST,
                                           "link %s exists in the host namespace and is not a veth",
                                           spec->host);
                r = netns__nl_call(rc->host, rtnl_link_delete(rc->host->sk, stale));
                if (r < 0 && r != -ENODEV)
                        return netns__nl_fail(rc->host, rc->reterr, r, "%sdeleting stale veth %s",
                                              perm(r), spec->host);
                r = say(rc, "deleted stale veth %s (its peer was not %s in namespace %s)",
                        spec->host, spec->name, rc->c->name);
                if (r < 0)
                        return r;
        }

        link = rtnl_link_veth_alloc();
        if (!link)
                return -ENOMEM;
        rtnl_link_set_name(link, spec->host);
        peer = rtnl_link_veth_get_peer(link); /* a new reference */
        rtnl_link_set_name(peer, spec->name);
        /* The peer is created directly in the namespace (VETH_INFO_PEER
         * carries IFLA_NET_NS_FD), so its name never clashes with a host link. */
        rtnl_link_set_ns_fd(peer, rc->ns_fd);
        r = netns__nl_call(rc->host, rtnl_link_add(rc->host->sk, link, NLM_F_CREATE | NLM_F_EXCL));
        if (r < 0)
                return netns__nl_fail(rc->host, rc->reterr, r,
                                      "%screating veth %s (peer %s in namespace %s)", perm(r),
                                      spec->host, spec->name, rc->c->name);
        return say(rc, "created veth %s with peer %s in namespace %s", spec->host, spec->name,
                   rc->c->name);
}

static int create_macvlan(struct rc *rc, const struct netns_link_spec *spec)
{
        _cleanup_(link_putp) struct rtnl_link *parent = NULL, *link = NULL;
        int r;

        r = link_get(rc->host, spec->host, &parent);
        if (r < 0)
                return netns__nl_fail(
                        rc->host, rc->reterr, r,
                        r == -ENODEV
                                ? "parent link %s of macvlan %s not found in the host namespace"
                                : "looking up parent link %s of macvlan %s",
                        spec->host, spec->name);
        link = rtnl_link_macvlan_alloc();
        if (!link)
                return -ENOMEM;
        rtnl_link_set_name(link, spec->name);
        rtnl_link_set_link(link, rtnl_link_get_ifindex(parent));
        r = rtnl_link_macvlan_set_mode(link, MACVLAN_MODE_BRIDGE);
        if (r < 0)
                return netns__nle_to_errno(r);
        /* Created from the host (where the parent is) straight into the
         * namespace, like `ip link add link P name public netns NS type macvlan`. */
        rtnl_link_set_ns_fd(link, rc->ns_fd);
        r = netns__nl_call(rc->host, rtnl_link_add(rc->host->sk, link, NLM_F_CREATE | NLM_F_EXCL));
        if (r < 0)
                return netns__nl_fail(rc->host, rc->reterr, r,
                                      "%screating macvlan %s on %s in namespace %s", perm(r),
                                      spec->name, spec->host, rc->c->name);
        return say(rc, "created macvlan %s on %s in namespace %s", spec->name, spec->host,
                   rc->c->name);
}

static int move_in(struct rc *rc, const struct netns_link_spec *spec)
{
        _cleanup_(link_putp) struct rtnl_link *l = NULL, *changes = NULL;
        char alias[128];
        int r;

        r = link_get(rc->host, spec->host, &l);
        if (r < 0)
                return netns__nl_fail(
                        rc->host, rc->reterr, r,
                        r == -ENODEV
                                ? "link %s to move into namespace %s not found in the host namespace"
                                : "looking up link %s to move into namespace %s",
                        spec->host, rc->c->name);
        changes = rtnl_link_alloc();
        if (!changes)
                return -ENOMEM;
        snprintf(alias, sizeof(alias), MOVED_ALIAS_PREFIX "%s:%s", spec->host,
                 rtnl_link_get_flags(l) & IFF_UP ? "up" : "down");
        rtnl_link_set_ns_fd(changes, rc->ns_fd);
        /* With IFLA_NET_NS_FD, IFLA_IFNAME names the link in the target. */
        rtnl_link_set_name(changes, spec->name);
        rtnl_link_set_ifalias(changes, alias);
        r = netns__nl_call(rc->host, rtnl_link_change(rc->host->sk, l, changes, 0));
        if (r < 0)
                return netns__nl_fail(rc->host, rc->reterr, r,
                                      "%smoving %s into namespace %s as %s", perm(r), spec->host,
                                      rc->c->name, spec->name);
        return say(rc, "moved %s into namespace %s as %s", spec->host, rc->c->name, spec->name);
}

static int ensure_link(struct rc *rc, const struct netns_link_spec *spec, int *ret_ifindex)
{
        _cleanup_(link_putp) struct rtnl_link *inner = NULL, *host = NULL;
        bool ok = false;
        int r;

        r = link_get(rc->ns, spec->name, &inner);
        if (r < 0 && r != -ENODEV)
                return netns__nl_fail(rc->ns, rc->reterr, r, "looking up %s in namespace %s",
                                      spec->name, rc->c->name);
        if (inner) {
                r = inner_matches(rc, spec, inner, &ok);
                if (r < 0)
                        return r;
                if (!ok) {
                        r = remove_inner(rc, inner, NULL, " (not the configured link)");
                        if (r < 0)
                                return r;
                        rtnl_link_put(TAKE_PTR(inner));
                }
        }
        if (!inner) {
                switch (spec->kind) {
                case NETNS_LINK_VETH:
                        r = create_veth(rc, spec);
                        break;
                case NETNS_LINK_MACVLAN:
                        r = create_macvlan(rc, spec);
                        break;
                case NETNS_LINK_MOVE:
                        r = move_in(rc, spec);
                        break;
                default:
                        r = -EINVAL;
                }
                if (r < 0)
                        return r;
                r = link_get(rc->ns, spec->name, &inner);
                if (r < 0)
                        return netns__nl_fail(rc->ns, rc->reterr, r,
                                              "looking up %s in namespace %s", spec->name,
                                              rc->c->name);
        }

        if (spec->kind == NETNS_LINK_VETH) {
                r = link_get(rc->host, spec->host, &host);
                if (r < 0)
                        return netns__nl_fail(rc->host, rc->reterr, r, "looking up %s", spec->host);
                r = link_set_up(rc, rc->host, host, " in the host namespace");
                if (r < 0)
                        return r;
        }
        /* Static configuration only: no router advertisements (and so no
         * SLAAC addresses or RA default routes), set before the link is up. */
        r = sysctl_ensure(rc, "0", "net/ipv6/conf/%s/accept_ra", spec->name);
        if (r < 0)
                return r;
        r = link_set_up(rc, rc->ns, inner, "");
        if (r < 0)
                return r;
        *ret_ifindex = rtnl_link_get_ifindex(inner);
        return 0;
}

/* ---- addresses ---- */

struct want_addr {
        int ifindex;
        const char *ifname;
        const struct netns_prefix *p;
        bool found;
};

static int add_address(struct rc *rc, const struct want_addr *w)
{
        _cleanup_(addr_putp) struct rtnl_addr *a = NULL;
        _cleanup_(nladdr_putp) struct nl_addr *local = NULL;
        char buf[INET6_ADDRSTRLEN + 8];
        int r;

        a = rtnl_addr_alloc();
        local = nl_addr_build(w->p->family, &w->p->v4, family_len(w->p->family));
        if (!a || !local)
                return -ENOMEM;
        nl_addr_set_prefixlen(local, w->p->prefixlen);
        rtnl_addr_set_ifindex(a, w->ifindex);
        rtnl_addr_set_family(a, w->p->family);
        r = rtnl_addr_set_local(a, local);
        if (r < 0)
                return netns__nle_to_errno(r);
        rtnl_addr_set_prefixlen(a, w->p->prefixlen);
        /* Usable at once: no duplicate address detection (our addresses
         * are assigned to us), so nothing is dropped while DAD runs. */
        if (w->p->family == AF_INET6)
                rtnl_addr_set_flags(a, IFA_F_NODAD);
        r = netns__nl_call(rc->ns, rtnl_addr_add(rc->ns->sk, a, NLM_F_EXCL));
        if (r < 0)
                return netns__nl_fail(rc->ns, rc->reterr, r, "%sadding address %s on %s", perm(r),
                                      fmt_prefix(w->p, buf, sizeof(buf)), w->ifname);
        return say(rc, "added address %s on %s", fmt_prefix(w->p, buf, sizeof(buf)), w->ifname);
}

static int ensure_addresses(struct rc *rc, struct want_addr *want, size_t n_want,
                            const int *ifindexes, const char *const *ifnames, size_t n_links)
{
        _cleanup_(cache_freep) struct nl_cache *cache = NULL;
        int r;

        r = netns__nl_call(rc->ns, rtnl_addr_alloc_cache(rc->ns->sk, &cache));
        if (r < 0)
                return netns__nl_fail(rc->ns, rc->reterr, r, "dumping addresses in namespace %s",
                                      rc->c->name);
        for (struct nl_object *o = nl_cache_get_first(cache); o; o = nl_cache_get_next(o)) {
                struct rtnl_addr *a = (struct rtnl_addr *)o;
                struct nl_addr *local = rtnl_addr_get_local(a);
                int ifindex = rtnl_addr_get_ifindex(a), family = rtnl_addr_get_family(a);
                const char *ifname = NULL;
                bool wanted = false;
                char buf[INET6_ADDRSTRLEN];

                for (size_t i = 0; i < n_links; i++)
                        if (ifindexes[i] == ifindex)
                                ifname = ifnames[i];
                /* Only global addresses on our links are ours to manage;
                 * link-local ones belong to the kernel. */
                if (!ifname || rtnl_addr_get_scope(a) != RT_SCOPE_UNIVERSE)
                        continue;
                for (size_t i = 0; i < n_want; i++) {
                        struct want_addr *w = &want[i];

                        if (w->found || w->ifindex != ifindex || w->p->family != family ||
                            (unsigned)rtnl_addr_get_prefixlen(a) != w->p->prefixlen ||
                            !nladdr_eq(local, family, &w->p->v4))
                                continue;
                        w->found = wanted = true;
                        break;
                }
                if (wanted)
                        continue;
                r = netns__nl_call(rc->ns, rtnl_addr_delete(rc->ns->sk, a, 0));
                if (r < 0 && r != -EADDRNOTAVAIL)
                        return netns__nl_fail(rc->ns, rc->reterr, r,
                                              "%sremoving address %s/%d from %s", perm(r),
                                              fmt_nladdr(local, buf, sizeof(buf)),
                                              rtnl_addr_get_prefixlen(a), ifname);
                r = say(rc, "removed address %s/%d from %s", fmt_nladdr(local, buf, sizeof(buf)),
                        rtnl_addr_get_prefixlen(a), ifname);
                if (r < 0)
                        return r;
        }
        for (size_t i = 0; i < n_want; i++) {
                if (want[i].found)
                        continue;
                r = add_address(rc, &want[i]);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* ---- routes ---- */

struct want_route {
        int family;
        union {
                struct in_addr v4;
                struct in6_addr v6;
        } dst;
        unsigned char dst_len;
        bool wanted; /* false: the destination is managed and must have no route */
        union {
                struct in_addr v4;
                struct in6_addr v6;
        } gw;
        int ifindex;
        const char *ifname;
        bool found;
};

static const char *fmt_dst(const struct want_route *w, char *buf, size_t size)
{
        char a[INET6_ADDRSTRLEN];

        if (w->dst_len == 0)
                return "default";
        snprintf(buf, size, "%s/%u", fmt_addr(w->family, &w->dst, a, sizeof(a)), w->dst_len);
        return buf;
}

static bool route_nh_matches(struct rtnl_route *rt, const struct want_route *w)
{
        struct rtnl_nexthop *nh;

        if (rtnl_route_get_nnexthops(rt) != 1)
                return false;
        nh = rtnl_route_nexthop_n(rt, 0);
        return nh && rtnl_route_nh_get_ifindex(nh) == w->ifindex &&
               nladdr_eq(rtnl_route_nh_get_gateway(nh), w->family, &w->gw);
}

static int add_route(struct rc *rc, const struct want_route *w)
{
        _cleanup_(route_putp) struct rtnl_route *rt = NULL;
        _cleanup_(nladdr_putp) struct nl_addr *dst = NULL, *gw = NULL;
        char d[INET6_ADDRSTRLEN + 8], g[INET6_ADDRSTRLEN];
        struct rtnl_nexthop *nh;
        int r;

        rt = rtnl_route_alloc();
        dst = nl_addr_build(w->family, &w->dst, family_len(w->family));
        gw = nl_addr_build(w->family, &w->gw, family_len(w->family));
        nh = rtnl_route_nh_alloc();
        if (!rt || !dst || !gw || !nh) {
                if (nh)
                        rtnl_route_nh_free(nh);
                return -ENOMEM;
        }
        nl_addr_set_prefixlen(dst, w->dst_len);
        rtnl_route_set_family(rt, w->family);
        rtnl_route_set_table(rt, RT_TABLE_MAIN);
        rtnl_route_set_protocol(rt, RTPROT_STATIC);
        rtnl_route_set_scope(rt, RT_SCOPE_UNIVERSE);
        rtnl_route_set_type(rt, RTN_UNICAST);
        r = rtnl_route_set_dst(rt, dst);
        if (r < 0) {
                rtnl_route_nh_free(nh);
                return netns__nle_to_errno(r);
        }
        rtnl_route_nh_set_ifindex(nh, w->ifindex);
        rtnl_route_nh_set_gateway(nh, gw);
        rtnl_route_add_nexthop(rt, nh); /* @rt owns @nh now */
        r = netns__nl_call(rc->ns, rtnl_route_add(rc->ns->sk, rt, NLM_F_EXCL));
        if (r < 0)
                return netns__nl_fail(rc->ns, rc->reterr, r, "%sadding route %s via %s dev %s",
                                      perm(r), fmt_dst(w, d, sizeof(d)),
                                      fmt_addr(w->family, &w->gw, g, sizeof(g)), w->ifname);
        return say(rc, "added route %s via %s dev %s", fmt_dst(w, d, sizeof(d)),
                   fmt_addr(w->family, &w->gw, g, sizeof(g)), w->ifname);
}

static int ensure_routes(struct rc *rc, struct want_route *want, size_t n_want)
{
        _cleanup_(cache_freep) struct nl_cache *cache = NULL;
        int r;

        r = netns__nl_call(rc->ns, rtnl_route_alloc_cache(rc->ns->sk, AF_UNSPEC, 0, &cache));
        if (r < 0)
                return netns__nl_fail(rc->ns, rc->reterr, r, "dumping routes in namespace %s",
                                      rc->c->name);
        for (struct nl_object *o = nl_cache_get_first(cache); o; o = nl_cache_get_next(o)) {
                struct rtnl_route *rt = (struct rtnl_route *)o;
                struct nl_addr *dst = rtnl_route_get_dst(rt);
                struct want_route *w = NULL;
                char d[INET6_ADDRSTRLEN + 8], g[INET6_ADDRSTRLEN];
                struct rtnl_nexthop *nh;

                if (rtnl_route_get_table(rt) != RT_TABLE_MAIN ||
                    rtnl_route_get_type(rt) != RTN_UNICAST)
                        continue;
                for (size_t i = 0; i < n_want; i++)
                        if (rtnl_route_get_family(rt) == want[i].family &&
                            (dst ? nl_addr_get_prefixlen(dst) : 0) == want[i].dst_len &&
                            prefix_bits_eq(dst, want[i].family, &want[i].dst, want[i].dst_len)) {
                                w = &want[i];
                                break;
                        }
                if (!w)
                        continue; /* not a destination we manage */
                if (w->wanted && !w->found && route_nh_matches(rt, w)) {
                        w->found = true;
                        continue;
                }
                /* A second route, or one with another next hop: ours
                 * replaces it (and a managed destination without a
                 * configured gateway has none). */
                nh = rtnl_route_get_nnexthops(rt) > 0 ? rtnl_route_nexthop_n(rt, 0) : NULL;
                r = netns__nl_call(rc->ns, rtnl_route_delete(rc->ns->sk, rt, 0));
                if (r < 0 && r != -ESRCH)
                        return netns__nl_fail(rc->ns, rc->reterr, r, "%sremoving route %s", perm(r),
                                              fmt_dst(w, d, sizeof(d)));
                r = say(rc, "removed route %s via %s", fmt_dst(w, d, sizeof(d)),
                        nh ? fmt_nladdr(rtnl_route_nh_get_gateway(nh), g, sizeof(g)) : "none");
                if (r < 0)
                        return r;
        }
        for (size_t i = 0; i < n_want; i++) {
                if (!want[i].wanted || want[i].found)
                        continue;
                r = add_route(rc, &want[i]);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* ---- reconcile ---- */

/* The links of @c: public first, then the overlays in their order. Returns
 * how many were stored in @ret (at most 1 + NETNS_OVERLAYS_MAX). */
static size_t config_links(const struct netns_config *c,
                           const struct netns_link_spec *ret[static 1 + NETNS_OVERLAYS_MAX])
{
        size_t n = 0;

        ret[n++] = &c->public_link;
        for (unsigned i = 0; i < c->n_overlays && i < NETNS_OVERLAYS_MAX; i++)
                ret[n++] = &c->overlays[i].link;
        return n;
}

/* Are the bits of @p beyond its length all zero (a network, not a host)? */
static bool prefix_is_network(const struct netns_prefix *p)
{
        for (unsigned i = p->prefixlen; i < 128; i++)
                if (p->v6.s6_addr[i / 8] & (0x80 >> (i % 8)))
                        return false;
        return true;
}

static int check_overlay(const struct netns_config *c, unsigned idx, char **reterr)
{
        const struct netns_overlay *o = &c->overlays[idx];
        const char *name = o->link.name;

        if (o->address.family != AF_INET6 || o->address.prefixlen > 128 ||
            is_zero(&o->router, sizeof(o->router)))
                return netns__fail(reterr, -EINVAL, "%s_address and %s_router are required (IPv6)",
                                   name, name);
        /* ::/0 is the public link's default route; a host part would make
         * the route ambiguous to compare. */
        if (o->prefix.family != AF_INET6 || o->prefix.prefixlen == 0 || o->prefix.prefixlen > 128 ||
            !prefix_is_network(&o->prefix))
                return netns__fail(reterr, -EINVAL, "invalid prefix of overlay %s", name);
        for (unsigned j = 0; j < idx; j++) {
                const struct netns_prefix *a = &c->overlays[j].prefix;

                /* Two prefixes overlap when the shorter one covers the longer. */
                if (bits_eq(&o->prefix.v6, &a->v6, MIN(a->prefixlen, o->prefix.prefixlen)))
                        return netns__fail(reterr, -EINVAL,
                                           "the prefixes of overlays %s and %s overlap",
                                           c->overlays[j].link.name, name);
        }
        return 0;
}

static int check_config(const struct netns_config *c, char **reterr)
{
        const struct netns_link_spec *links[1 + NETNS_OVERLAYS_MAX];
        size_t n;
        int r;

        if (c->n_overlays > NETNS_OVERLAYS_MAX)
                return netns__fail(reterr, -EINVAL, "more than %u overlays", NETNS_OVERLAYS_MAX);
        n = config_links(c, links);
        for (size_t i = 0; i < n; i++)
                if ((unsigned)links[i]->kind >= _NETNS_LINK_KIND_MAX || !links[i]->host[0] ||
                    !links[i]->name[0] || streq(links[i]->name, "lo"))
                        return netns__fail(reterr, -EINVAL, "invalid link configuration");
        for (size_t i = 0; i < n; i++)
                for (size_t j = 0; j < i; j++)
                        if (streq(links[j]->name, links[i]->name) ||
                            streq(links[j]->host, links[i]->host))
                                return netns__fail(reterr, -EINVAL,
                                                   "the %s and %s links must differ",
                                                   links[j]->name, links[i]->name);
        if (c->n_absent > NETNS_OVERLAYS_MAX)
                return netns__fail(reterr, -EINVAL, "more than %u absent links",
                                   NETNS_OVERLAYS_MAX);
        for (unsigned i = 0; i < c->n_absent; i++) {
                const char *a = c->absent[i];

                if (!a[0] || strnlen(a, IFNAMSIZ) >= IFNAMSIZ || streq(a, "lo"))
                        return netns__fail(reterr, -EINVAL, "invalid absent link name");
                for (size_t j = 0; j < n; j++)
                        if (streq(links[j]->name, a))
                                return netns__fail(reterr, -EINVAL,
                                                   "link %s is both configured and absent", a);
        }
        if ((c->public_v4.family && c->public_v4.family != AF_INET) ||
            c->public_v4.prefixlen > 32 ||
            (c->public_v6.family && c->public_v6.family != AF_INET6) ||
            c->public_v6.prefixlen > 128)
                return netns__fail(reterr, -EINVAL, "invalid public address");
        for (unsigned i = 0; i < c->n_overlays; i++) {
                r = check_overlay(c, i, reterr);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* An overlay that is not configured has no link (its routes go with it):
 * a veth goes with its host end, a link we moved in goes back. */
static int remove_absent(struct rc *rc, const char *name, const char *why)
{
        _cleanup_(link_putp) struct rtnl_link *l = NULL;
        int r;

        r = link_get(rc->ns, name, &l);
        if (r == -ENODEV)
                return 0;
        if (r < 0)
                return netns__nl_fail(rc->ns, rc->reterr, r, "looking up %s in namespace %s", name,
                                      rc->c->name);
        return remove_inner(rc, l, NULL, why);
}

int netns__reconcile_here(const struct netns_config *c, int home_fd, struct strbuf *report,
                          char **reterr)
{
        _cleanup_(rc_done) struct rc rc = {
                .c = c, .report = report, .reterr = reterr, .home_fd = home_fd, .ns_fd = -1};
        int pub = 0, ovl[NETNS_OVERLAYS_MAX] = {}, r;
        _cleanup_(link_putp) struct rtnl_link *lo = NULL;

        assert(c && home_fd >= 0);

        r = check_config(c, reterr);
        if (r < 0)
                return r;
        r = netns__path(c, rc.path, sizeof(rc.path));
        if (r < 0)
                return netns__fail(reterr, r, "invalid namespace name '%s'", c->name);
        /* The host socket first, while this thread is still in the host
         * namespace: a netlink socket stays in the namespace it was made in. */
        r = netns__nl_open(&rc.host);
        if (r < 0)
                return netns__fail(reterr, r, "opening netlink");
        r = ensure_namespace(&rc);
        if (r < 0)
                return r;
        r = enter_namespace(&rc);
        if (r < 0)
                return r;

        /* An endpoint, not a router. */
        r = sysctl_ensure(&rc, "0", "net/ipv4/ip_forward");
        if (r < 0)
                return r;
        r = sysctl_ensure(&rc, "0", "net/ipv6/conf/all/forwarding");
        if (r < 0)
                return r;
        r = sysctl_ensure(&rc, "0", "net/ipv6/conf/default/accept_ra");
        if (r < 0)
                return r;
        /* Outgoing connections to backends start here: every one takes a
         * local port, and one the proxy closed waits in TIME_WAIT for 60 s.
         * Twice the kernel's default range, and TIME_WAIT ports reused for
         * new outgoing connections (safe with TCP timestamps) rather than
         * connect() failing with EADDRNOTAVAIL under churn. */
        r = sysctl_ensure(&rc, NETNS_LOCAL_PORT_RANGE, "net/ipv4/ip_local_port_range");
        if (r < 0)
                return r;
        r = sysctl_ensure(&rc, NETNS_TCP_TW_REUSE, "net/ipv4/tcp_tw_reuse");
        if (r < 0)
                return r;

        r = link_get(rc.ns, "lo", &lo);
        if (r < 0)
                return netns__nl_fail(rc.ns, reterr, r, "looking up lo in namespace %s", c->name);
        r = link_set_up(&rc, rc.ns, lo, "");
        if (r < 0)
                return r;

        r = ensure_link(&rc, &c->public_link, &pub);
        if (r < 0)
                return r;
        for (unsigned i = 0; i < c->n_overlays; i++) {
                r = ensure_link(&rc, &c->overlays[i].link, &ovl[i]);
                if (r < 0)
                        return r;
        }
        for (unsigned i = 0; i < c->n_absent; i++) {
                r = remove_absent(&rc, c->absent[i], " (not configured)");
                if (r < 0)
                        return r;
        }

        {
                struct want_addr want[2 + NETNS_OVERLAYS_MAX];
                int ifindexes[1 + NETNS_OVERLAYS_MAX] = {pub};
                const char *ifnames[1 + NETNS_OVERLAYS_MAX] = {c->public_link.name};
                size_t n = 0;

                if (c->public_v4.family)
                        want[n++] = (struct want_addr){pub, c->public_link.name, &c->public_v4};
                if (c->public_v6.family)
                        want[n++] = (struct want_addr){pub, c->public_link.name, &c->public_v6};
                for (unsigned i = 0; i < c->n_overlays; i++) {
                        const struct netns_overlay *o = &c->overlays[i];

                        want[n++] = (struct want_addr){ovl[i], o->link.name, &o->address};
                        ifindexes[1 + i] = ovl[i];
                        ifnames[1 + i] = o->link.name;
                }
                r = ensure_addresses(&rc, want, n, ifindexes, ifnames, 1 + c->n_overlays);
                if (r < 0)
                        return r;
        }

        {
                /* Each overlay's prefix via its router: 200::/7 covers the
                 * Yggdrasil node addresses (200::/8) and their routed
                 * subnets (300::/8), 400::/7 those of Mycelium. */
                struct want_route want[2 + NETNS_OVERLAYS_MAX] = {
                        {.family = AF_INET,
                         .dst_len = 0,
                         .wanted = c->public_v4.family && !is_zero(&c->gw4, sizeof(c->gw4)),
                         .gw.v4 = c->gw4,
                         .ifindex = pub,
                         .ifname = c->public_link.name},
                        {.family = AF_INET6,
                         .dst_len = 0,
                         .wanted = c->public_v6.family && !is_zero(&c->gw6, sizeof(c->gw6)),
                         .gw.v6 = c->gw6,
                         .ifindex = pub,
                         .ifname = c->public_link.name},
                };

                for (unsigned i = 0; i < c->n_overlays; i++) {
                        const struct netns_overlay *o = &c->overlays[i];

                        want[2 + i] = (struct want_route){.family = AF_INET6,
                                                          .dst.v6 = o->prefix.v6,
                                                          .dst_len = o->prefix.prefixlen,
                                                          .wanted = true,
                                                          .gw.v6 = o->router,
                                                          .ifindex = ovl[i],
                                                          .ifname = o->link.name};
                }
                r = ensure_routes(&rc, want, 2 + c->n_overlays);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* ---- check (before anything is changed) ---- */

/* Does tearing down @current give the host namespace a link named @name
 * back (a link it moved in)? */
static bool given_back_by(const struct netns_config *current, const char *name)
{
        const struct netns_link_spec *specs[1 + NETNS_OVERLAYS_MAX];
        size_t n = config_links(current, specs);

        for (size_t i = 0; i < n; i++)
                if (specs[i]->kind == NETNS_LINK_MOVE && streq(specs[i]->host, name))
                        return true;
        return false;
}

/* Does tearing down @current delete the host link @name (a veth host end)? */
static bool deleted_by(const struct netns_config *current, const char *name)
{
        const struct netns_link_spec *specs[1 + NETNS_OVERLAYS_MAX];
        size_t n = config_links(current, specs);

        for (size_t i = 0; i < n; i++)
                if (specs[i]->kind == NETNS_LINK_VETH && streq(specs[i]->host, name))
                        return true;
        return false;
}

static int check_link(struct netns__nl *host, const struct netns_config *c,
                      const struct netns_config *current, const struct netns_link_spec *spec,
                      char **reterr)
{
        _cleanup_(link_putp) struct rtnl_link *l = NULL;
        int r;

        r = link_get(host, spec->host, &l);
        if (r < 0 && r != -ENODEV)
                return netns__nl_fail(host, reterr, r, "looking up %s", spec->host);
        switch (spec->kind) {
        case NETNS_LINK_VETH:
                /* Absent, or a veth (ours, or a stale end reconcile replaces). */
                if (l && !link_is(l, "veth"))
                        return netns__fail(reterr, -EEXIST,
                                           "link %s exists in the host namespace and is not a veth",
                                           spec->host);
                return 0;
        case NETNS_LINK_MACVLAN:
        case NETNS_LINK_MOVE:
                if (current && deleted_by(current, spec->host))
                        return netns__fail(reterr, -ENODEV,
                                           "link %s is the host end of a veth of the namespace "
                                           "now in use and goes with it",
                                           spec->host);
                if (l || (current && given_back_by(current, spec->host)))
                        return 0;
                return netns__fail(
                        reterr, -ENODEV,
                        spec->kind == NETNS_LINK_MACVLAN
                                ? "parent link %s of macvlan %s not found in the host namespace"
                                : "link %s to move into namespace %s not found in the host namespace",
                        spec->host, spec->kind == NETNS_LINK_MACVLAN ? spec->name : c->name);
        default:
                return netns__fail(reterr, -EINVAL, "invalid link configuration");
        }
}

int netns__check_here(const struct netns_config *c, const struct netns_config *current,
                      char **reterr)
{
        _cleanup_(netns__nl_freep) struct netns__nl *host = NULL;
        const struct netns_link_spec *links[1 + NETNS_OVERLAYS_MAX];
        char path[512];
        size_t n;
        int r;

        assert(c);
        r = check_config(c, reterr);
        if (r < 0)
                return r;
        r = netns__path(c, path, sizeof(path));
        if (r < 0)
                return netns__fail(reterr, r, "invalid namespace name '%s'", c->name);
        /* Only looks: this thread stays in the host namespace. */
        r = netns__nl_open(&host);
        if (r < 0)
                return netns__fail(reterr, r, "opening netlink");
        n = config_links(c, links);
        for (size_t i = 0; i < n; i++) {
                r = check_link(host, c, current, links[i], reterr);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* ---- teardown ---- */

int netns__teardown_here(const struct netns_config *c, int home_fd, struct strbuf *report,
                         char **reterr)
{
        _cleanup_(rc_done) struct rc rc = {
                .c = c, .report = report, .reterr = reterr, .home_fd = home_fd, .ns_fd = -1};
        const struct netns_link_spec *specs[1 + NETNS_OVERLAYS_MAX];
        size_t n_specs;
        int r;

        assert(c && home_fd >= 0);
        /* Whatever @c says, not more than there is room for: a teardown
         * removes what it can. */
        n_specs = config_links(c, specs);

        r = netns__path(c, rc.path, sizeof(rc.path));
        if (r < 0)
                return netns__fail(reterr, r, "invalid namespace name '%s'", c->name);
        r = netns__nl_open(&rc.host);
        if (r < 0)
                return netns__fail(reterr, r, "opening netlink");

        r = netns__open(rc.path, &rc.ns_fd, NULL);
        if (r >= 0) {
                r = enter_namespace(&rc);
                if (r < 0)
                        return r;
                for (size_t i = 0; i < n_specs; i++) {
                        _cleanup_(link_putp) struct rtnl_link *inner = NULL;

                        if (!specs[i]->name[0])
                                continue;
                        r = link_get(rc.ns, specs[i]->name, &inner);
                        if (r == -ENODEV)
                                continue;
                        if (r < 0)
                                return netns__nl_fail(rc.ns, reterr, r,
                                                      "looking up %s in namespace %s",
                                                      specs[i]->name, c->name);
                        r = remove_inner(&rc, inner, specs[i], "");
                        if (r < 0)
                                return r;
                }
                /* A link an earlier configuration moved in goes back too. */
                for (unsigned i = 0; i < c->n_absent && i < NETNS_OVERLAYS_MAX; i++) {
                        if (!c->absent[i][0] || strnlen(c->absent[i], IFNAMSIZ) >= IFNAMSIZ)
                                continue; /* not a name (teardown runs no check_config()) */
                        r = remove_absent(&rc, c->absent[i], "");
                        if (r < 0)
                                return r;
                }
                if (setns(home_fd, CLONE_NEWNET) < 0)
                        return netns__fail(reterr, -errno, "returning to the host namespace");
                r = remove_ns_file(rc.path);
                if (r < 0)
                        return netns__fail(reterr, r, "%sdeleting namespace %s", perm(r), rc.path);
                r = say(&rc, "deleted namespace %s", c->name);
                if (r < 0)
                        return r;
        } else if (r == -EINVAL) {
                r = remove_stale(&rc);
                if (r < 0)
                        return r;
        } else if (r != -ENOENT) {
                return netns__fail(reterr, r, "%sopening namespace %s", perm(r), rc.path);
        }

        /* Host ends whose peers were elsewhere (namespace deleted from
         * outside but kept alive). */
        for (size_t i = 0; i < n_specs; i++) {
                _cleanup_(link_putp) struct rtnl_link *host = NULL;

                if (specs[i]->kind != NETNS_LINK_VETH || !specs[i]->host[0])
                        continue;
                r = link_get(rc.host, specs[i]->host, &host);
                if (r == -ENODEV)
                        continue;
                if (r < 0)
                        return netns__nl_fail(rc.host, reterr, r, "looking up %s", specs[i]->host);
                if (!link_is(host, "veth"))
                        continue;
                r = netns__nl_call(rc.host, rtnl_link_delete(rc.host->sk, host));
                if (r < 0 && r != -ENODEV)
                        return netns__nl_fail(rc.host, reterr, r, "%sdeleting veth %s", perm(r),
                                              specs[i]->host);
                r = say(&rc, "deleted veth %s", specs[i]->host);
                if (r < 0)
                        return r;
        }
        return 0;
}
