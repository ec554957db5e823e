/* SPDX-License-Identifier: Apache-2.0 */
/* The libnl boundary: sockets whose errors keep the kernel's errno and
 * extended-ack text, the -NLE_* to -errno map, and error texts. */

#include <assert.h>
#include <errno.h>
#include <linux/netlink.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <netlink/errno.h>
#include <netlink/handlers.h>
#include <netlink/netlink.h>
#include <netlink/socket.h>

#include "netns/netns-internal.h"

#ifndef SOL_NETLINK
#define SOL_NETLINK 270
#endif

_printf_(4, 0) static int vfail(char **reterr, int r, const char *suffix, const char *fmt,
                                va_list ap)
{
        _cleanup_free_ char *what = NULL;
        char *msg;

        assert(r < 0);
        if (!reterr)
                return r;
        if (vasprintf(&what, fmt, ap) < 0)
                return r;
        if (asprintf(&msg, "%s: %s%s", what, strerror(-r), suffix) < 0)
                return r;
        free(*reterr);
        *reterr = msg;
        return r;
}

int netns__fail(char **reterr, int r, const char *fmt, ...)
{
        va_list ap;

        va_start(ap, fmt);
        r = vfail(reterr, r, "", fmt, ap);
        va_end(ap);
        return r;
}

int netns__nl_fail(const struct netns__nl *nl, char **reterr, int r, const char *fmt, ...)
{
        char suffix[sizeof(nl->extack) + 16] = "";
        va_list ap;

        if (nl && nl->extack[0])
                snprintf(suffix, sizeof(suffix), " (kernel: %s)", nl->extack);
        va_start(ap, fmt);
        r = vfail(reterr, r, suffix, fmt, ap);
        va_end(ap);
        return r;
}

int netns__nle_to_errno(int nle)
{
        static const int map[] = {
                [NLE_SUCCESS] = 0,
                [NLE_FAILURE] = EIO,
                [NLE_INTR] = EINTR,
                [NLE_BAD_SOCK] = EBADF,
                [NLE_AGAIN] = EAGAIN,
                [NLE_NOMEM] = ENOMEM,
                [NLE_EXIST] = EEXIST,
                [NLE_INVAL] = EINVAL,
                [NLE_RANGE] = ERANGE,
                [NLE_MSGSIZE] = EMSGSIZE,
                [NLE_OPNOTSUPP] = EOPNOTSUPP,
                [NLE_AF_NOSUPPORT] = EAFNOSUPPORT,
                [NLE_OBJ_NOTFOUND] = ENOENT,
                [NLE_NOATTR] = ENODATA,
                [NLE_MISSING_ATTR] = EINVAL,
                [NLE_AF_MISMATCH] = EAFNOSUPPORT,
                [NLE_SEQ_MISMATCH] = EILSEQ,
                [NLE_MSG_OVERFLOW] = EOVERFLOW,
                [NLE_MSG_TRUNC] = EMSGSIZE,
                [NLE_NOADDR] = EADDRNOTAVAIL,
                [NLE_SRCRT_NOSUPPORT] = EOPNOTSUPP,
                [NLE_MSG_TOOSHORT] = EBADMSG,
                [NLE_MSGTYPE_NOSUPPORT] = EOPNOTSUPP,
                [NLE_OBJ_MISMATCH] = EINVAL,
                [NLE_NOCACHE] = ENOENT,
                [NLE_BUSY] = EBUSY,
                [NLE_PROTO_MISMATCH] = EPROTONOSUPPORT,
                [NLE_NOACCESS] = EACCES,
                [NLE_PERM] = EPERM,
                [NLE_PKTLOC_FILE] = ENOENT,
                [NLE_PARSE_ERR] = EBADMSG,
                [NLE_NODEV] = ENODEV,
                [NLE_IMMUTABLE] = EROFS,
                [NLE_DUMP_INTR] = EINTR,
                [NLE_ATTRSIZE] = EMSGSIZE,
        };
        int e;

        if (nle >= 0)
                return nle;
        e = -nle;
        if ((size_t)e >= ELEMENTSOF(map) || map[e] == 0)
                return -EIO;
        return -map[e];
}

/* Called by libnl for an NLMSG_ERROR with a non-zero error. libnl would
 * squeeze e->error through nl_syserr2nlerr(), which loses it (ENODEV and
 * ENOENT both become NLE_OBJ_NOTFOUND, EADDRINUSE becomes NLE_EXIST, ...),
 * so keep the original and the extended-ack message (NLMSGERR_ATTR_MSG). */
static int on_error(struct sockaddr_nl *nla, struct nlmsgerr *e, void *arg)
{
        struct netns__nl *nl = arg;
        const struct nlmsghdr *h = (const struct nlmsghdr *)((const char *)e - NLMSG_HDRLEN);
        size_t off, end;

        nl->kernel_errno = e->error < 0 ? -e->error : e->error;
        nl->extack[0] = 0;
        if (!(h->nlmsg_flags & NLM_F_ACK_TLVS))
                return NL_STOP;
        /* The TLVs follow the echoed request: its header only when the ack
         * is capped, the whole request otherwise. */
        off = NLMSG_HDRLEN + sizeof(*e);
        if (!(h->nlmsg_flags & NLM_F_CAPPED))
                off += NLMSG_ALIGN(e->msg.nlmsg_len) - sizeof(struct nlmsghdr);
        end = h->nlmsg_len;
        while (off + sizeof(struct nlattr) <= end) {
                const struct nlattr *a = (const struct nlattr *)((const char *)h + off);
                size_t len = a->nla_len;

                if (len < sizeof(*a) || off + len > end)
                        break;
                if ((a->nla_type & NLA_TYPE_MASK) == NLMSGERR_ATTR_MSG && len > sizeof(*a)) {
                        size_t n = MIN(len - sizeof(*a), sizeof(nl->extack) - 1);

                        memcpy(nl->extack, (const char *)a + NLA_HDRLEN, n);
                        nl->extack[n] = 0;
                        nl->extack[strnlen(nl->extack, n)] = 0;
                        break;
                }
                off += NLA_ALIGN(len);
        }
        return NL_STOP;
}

int netns__nl_open(struct netns__nl **ret)
{
        _cleanup_(netns__nl_freep) struct netns__nl *nl = NULL;
        struct nl_cb *cb;
        int one = 1, r;

        nl = calloc(1, sizeof(*nl));
        if (!nl)
                return -ENOMEM;
        nl->sk = nl_socket_alloc();
        if (!nl->sk)
                return -ENOMEM;
        r = nl_connect(nl->sk, NETLINK_ROUTE);
        if (r < 0)
                return netns__nle_to_errno(r);
        /* Best effort: without them errors are still right, only terser. */
        (void)setsockopt(nl_socket_get_fd(nl->sk), SOL_NETLINK, NETLINK_EXT_ACK, &one, sizeof(one));
        (void)setsockopt(nl_socket_get_fd(nl->sk), SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof(one));
        cb = nl_socket_get_cb(nl->sk);
        if (!cb)
                return -ENOMEM;
        r = nl_cb_err(cb, NL_CB_CUSTOM, on_error, nl);
        nl_cb_put(cb);
        if (r < 0)
                return netns__nle_to_errno(r);
        *ret = TAKE_PTR(nl);
        return 0;
}

struct netns__nl *netns__nl_free(struct netns__nl *nl)
{
        if (!nl)
                return NULL;
        if (nl->sk)
                nl_socket_free(nl->sk);
        free(nl);
        return NULL;
}

void netns__nl_begin(struct netns__nl *nl)
{
        nl->kernel_errno = 0;
        nl->extack[0] = 0;
}

int netns__nl_end(struct netns__nl *nl, int nle)
{
        if (nle >= 0)
                return 0;
        if (nl->kernel_errno > 0)
                return -nl->kernel_errno;
        return netns__nle_to_errno(nle);
}
