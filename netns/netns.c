/* SPDX-License-Identifier: Apache-2.0 */
/* Link specs and namespace files. */

#include "netns/netns.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <linux/nsfs.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/vfs.h>

#include "netns/netns-internal.h"

#ifndef NSFS_MAGIC
#define NSFS_MAGIC 0x6e736673
#endif

static const char *const kind_names[_NETNS_LINK_KIND_MAX] = {
        [NETNS_LINK_VETH] = "veth",
        [NETNS_LINK_MACVLAN] = "macvlan",
        [NETNS_LINK_MOVE] = "move",
};

const char *netns_link_kind_to_string(enum netns_link_kind k)
{
        if ((unsigned)k >= _NETNS_LINK_KIND_MAX)
                return NULL;
        return kind_names[k];
}

/* What the kernel's dev_valid_name() accepts, minus white space and ':'
 * (aliases), which iproute2 also refuses. */
static bool ifname_valid(const char *s)
{
        size_t n = strlen(s);

        if (n == 0 || n >= IFNAMSIZ || streq(s, ".") || streq(s, ".."))
                return false;
        for (const char *p = s; *p; p++)
                if (*p == '/' || *p == ':' || (unsigned char)*p <= ' ' || *p == 0x7f)
                        return false;
        return true;
}

int netns_link_spec_parse(const char *s, const char *inner_name, struct netns_link_spec *ret,
                          char **reterr)
{
        struct netns_link_spec spec = {};
        const char *colon;
        size_t klen;
        int k;

        assert(s && inner_name && ret);

        colon = strchr(s, ':');
        if (!colon)
                return netns__fail(
                        reterr, -EINVAL,
                        "invalid link '%s': expected veth:<name>, macvlan:<parent> or move:<ifname>",
                        s);
        klen = (size_t)(colon - s);
        for (k = 0; k < _NETNS_LINK_KIND_MAX; k++)
                if (strlen(kind_names[k]) == klen && strncmp(s, kind_names[k], klen) == 0)
                        break;
        if (k == _NETNS_LINK_KIND_MAX)
                return netns__fail(
                        reterr, -EINVAL,
                        "invalid link '%s': unknown kind '%.*s' (use veth, macvlan or move)", s,
                        (int)MIN(klen, 32), s);
        if (!ifname_valid(colon + 1))
                return netns__fail(reterr, -EINVAL,
                                   "invalid link '%s': '%s' is not a valid interface name", s,
                                   colon + 1);
        if (!ifname_valid(inner_name))
                return netns__fail(reterr, -EINVAL, "invalid inner link name '%s'", inner_name);
        spec.kind = k;
        strcpy(spec.host, colon + 1);
        strcpy(spec.name, inner_name);
        *ret = spec;
        return 0;
}

int netns__path(const struct netns_config *c, char *buf, size_t size)
{
        const char *dir = c->run_dir[0] ? c->run_dir : NETNS_DEFAULT_RUN_DIR;
        int n;

        if (!c->name[0] || strchr(c->name, '/') || streq(c->name, ".") || streq(c->name, ".."))
                return -EINVAL;
        n = snprintf(buf, size, "%s/%s", dir, c->name);
        if (n < 0 || (size_t)n >= size)
                return -ENAMETOOLONG;
        return 0;
}

int netns__open(const char *path, int *ret_fd, char **reterr)
{
        _cleanup_close_ int fd = -1;
        struct statfs sfs;
        int r;

        /* O_NONBLOCK: never hang on a FIFO put in the file's place. */
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
        if (fd < 0) {
                if (errno == ENOENT)
                        return netns__fail(reterr, -ENOENT, "namespace %s does not exist", path);
                return netns__fail(reterr, -errno, "%sopening namespace %s",
                                   errno == EACCES || errno == EPERM ? "permission denied " : "",
                                   path);
        }
        if (fstatfs(fd, &sfs) < 0)
                return netns__fail(reterr, -errno, "checking namespace %s", path);
        /* A file under run_dir that is not a mount of a namespace: left over
         * after a reboot, or after `ip netns del` raced with us. */
        if ((unsigned long)sfs.f_type != NSFS_MAGIC)
                return netns__fail(reterr, -EINVAL, "%s is not a network namespace", path);
        r = ioctl(fd, NS_GET_NSTYPE);
        if (r < 0)
                return netns__fail(reterr, -errno, "checking namespace %s", path);
        if (r != CLONE_NEWNET)
                return netns__fail(reterr, -EINVAL, "%s is not a network namespace", path);
        *ret_fd = TAKE_FD(fd);
        return 0;
}

int netns__enter(int fd, const char *name, char **reterr)
{
        if (setns(fd, CLONE_NEWNET) < 0)
                return netns__fail(reterr, -errno, "%sentering namespace %s",
                                   errno == EPERM ? "permission denied " : "", name);
        return 0;
}

bool netns_exists(const char *run_dir, const char *name)
{
        struct netns_config c = {};
        char path[512];
        int fd;

        if (!name || strlen(name) >= sizeof(c.name))
                return false;
        if (run_dir && strlen(run_dir) >= sizeof(c.run_dir))
                return false;
        strcpy(c.name, name);
        if (run_dir)
                strcpy(c.run_dir, run_dir);
        if (netns__path(&c, path, sizeof(path)) < 0)
                return false;
        if (netns__open(path, &fd, NULL) < 0)
                return false;
        safe_close(fd);
        return true;
}
