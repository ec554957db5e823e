/* SPDX-License-Identifier: Apache-2.0 */
/* reconcile.c, for real (root): create, idempotence, drift repair, the
 * namespace deleted from outside, macvlan/move links, errors, teardown.
 * Each test uses a namespace and links named after its pid, in a
 * temporary run_dir, and removes them by name. */
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/strbuf.h"
#include "netns-test.h"

static struct ntest T;

static int group_setup(void **state)
{
        return ntest_init(&T, "r") < 0 ? -1 : 0;
}

static int group_teardown(void **state)
{
        ntest_cleanup(&T);
        return 0;
}

/* A failed test leaves its namespace and links: start each from scratch. */
static int setup(void **state)
{
        ntest_reset(&T);
        return 0;
}

/* Reconcile @c; fail the test unless it returns @want. The report is left
 * in @b (reset first). */
static void reconcile_expect(const struct netns_config *c, struct strbuf *b, int want)
{
        char *err = NULL;
        int r;

        strbuf_reset(b);
        r = netns_reconcile(c, b, &err);
        if (r != want)
                fail_msg("reconcile returned %d (%s), wanted %d; report:\n%s", r,
                         err ? err : "no error text", want, strempty(b->data));
        if (r < 0)
                assert_non_null(err);
        else
                assert_null(err);
        free(err);
}

static void expect_line(const struct strbuf *b, const char *fmt, ...) _printf_(2, 3);
static void expect_line(const struct strbuf *b, const char *fmt, ...)
{
        char line[256];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(line, sizeof(line), fmt, ap);
        va_end(ap);
        if (!ntest_has_line(b->data, line))
                fail_msg("report lacks '%s'; it is:\n%s", line, strempty(b->data));
}

static void expect_empty(const struct strbuf *b)
{
        if (b->len != 0)
                fail_msg("expected an empty report, got:\n%s", b->data);
}

static void teardown_expect_ok(const struct netns_config *c, struct strbuf *b)
{
        char *err = NULL;
        int r;

        strbuf_reset(b);
        r = netns_teardown(c, b, &err);
        if (r < 0)
                fail_msg("teardown: %s", err);
        free(err);
}

static const char *ns_sysctl(char *buf, size_t size, const char *key)
{
        return ntest_sh_out(buf, size, "nsenter --net=%s sysctl -n %s 2>&1", T.path, key);
}

static int socket_in(int family, int type, const char *addr, uint16_t port, bool listen_,
                     int *ret_fd, char **reterr)
{
        struct netns_socket_req req = {.family = family, .type = type, .backlog = -1};

        snprintf(req.netns_path, sizeof(req.netns_path), "%s", T.path);
        if (addr) {
                req.bind = true;
                if (family == AF_INET) {
                        struct sockaddr_in *in = (struct sockaddr_in *)&req.addr;

                        in->sin_family = AF_INET;
                        in->sin_port = htons(port);
                        inet_pton(AF_INET, addr, &in->sin_addr);
                        req.addrlen = sizeof(*in);
                } else {
                        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&req.addr;

                        in6->sin6_family = AF_INET6;
                        in6->sin6_port = htons(port);
                        inet_pton(AF_INET6, addr, &in6->sin6_addr);
                        req.addrlen = sizeof(*in6);
                }
                req.backlog = listen_ ? 16 : -1;
        }
        return netns_socket_sync(&req, ret_fd, reterr);
}

static void test_create_idempotent_sockets_teardown(void **state)
{
        _cleanup_strbuf_ struct strbuf b = STRBUF_INIT;
        struct netns_config c;
        struct sockaddr_in6 sa;
        socklen_t salen = sizeof(sa);
        char buf[256], *err = NULL;
        int lfd = -1, lfd2 = -1, cfd = -1, afd, r;

        char pub[32], ygg[32];

        snprintf(pub, sizeof(pub), "veth:%s", T.pub);
        snprintf(ygg, sizeof(ygg), "veth:%s", T.ygg);
        ntest_config(&T, pub, ygg, &c);
        assert_false(netns_exists(T.run_dir, T.name));

        reconcile_expect(&c, &b, 0);
        expect_line(&b, "created namespace %s", T.name);
        expect_line(&b, "set lo up");
        expect_line(&b, "created veth %s with peer public in namespace %s", T.pub, T.name);
        expect_line(&b, "created veth %s with peer ygg in namespace %s", T.ygg, T.name);
        expect_line(&b, "set %s up in the host namespace", T.pub);
        expect_line(&b, "set public up");
        expect_line(&b, "set ygg up");
        expect_line(&b, "added address 203.0.113.10/24 on public");
        expect_line(&b, "added address 2001:db8:1::10/64 on public");
        expect_line(&b, "added address 300:1:2:3::10/64 on ygg");
        expect_line(&b, "added route default via 203.0.113.1 dev public");
        expect_line(&b, "added route default via 2001:db8:1::1 dev public");
        expect_line(&b, "added route 200::/7 via 300:1:2:3::1 dev ygg");
        assert_true(netns_exists(T.run_dir, T.name));
        assert_true(if_nametoindex(T.pub) > 0);

        /* Idempotent: nothing to do, nothing said. */
        reconcile_expect(&c, &b, 0);
        expect_empty(&b);

        /* An endpoint, with static configuration only. */
        assert_string_equal(ns_sysctl(buf, sizeof(buf), "net.ipv4.ip_forward"), "0");
        assert_string_equal(ns_sysctl(buf, sizeof(buf), "net.ipv6.conf.all.forwarding"), "0");
        assert_string_equal(ns_sysctl(buf, sizeof(buf), "net.ipv6.conf.public.accept_ra"), "0");
        assert_string_equal(ns_sysctl(buf, sizeof(buf), "net.ipv6.conf.ygg.accept_ra"), "0");
        /* 300::/8 subnets go the 200::/7 way too. */
        ntest_sh_out(buf, sizeof(buf), "nsenter --net=%s ip -6 route get 301:5::1 2>&1", T.path);
        assert_non_null(strstr(buf, "via 300:1:2:3::1 dev ygg"));
        ntest_sh_out(buf, sizeof(buf), "nsenter --net=%s ip -6 route get 202:1::1 2>&1", T.path);
        assert_non_null(strstr(buf, "via 300:1:2:3::1 dev ygg"));

        /* A listener on the overlay address works at once (no DAD), and a
         * client socket from the same API reaches it. */
        r = socket_in(AF_INET6, SOCK_STREAM, "300:1:2:3::10", 0, true, &lfd, &err);
        if (r < 0)
                fail_msg("listen socket: %s", err);
        assert_int_equal(getsockname(lfd, (struct sockaddr *)&sa, &salen), 0);
        assert_int_equal(socket_in(AF_INET6, SOCK_STREAM, NULL, 0, false, &cfd, &err), 0);
        r = connect(cfd, (struct sockaddr *)&sa, sizeof(sa));
        assert_true(r == 0 || errno == EINPROGRESS);
        for (int i = 0; i < 200; i++) {
                afd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
                if (afd >= 0 || errno != EAGAIN)
                        break;
                usleep(10 * 1000);
        }
        assert_true(afd >= 0);
        close(afd);
        close(cfd);

        /* The same address and port again: in use, and said so. */
        r = socket_in(AF_INET6, SOCK_STREAM, "300:1:2:3::10", ntohs(sa.sin6_port), true, &lfd2,
                      &err);
        assert_int_equal(r, -EADDRINUSE);
        assert_non_null(strstr(err, "Address already in use"));
        assert_non_null(strstr(err, T.path));
        free(err);
        err = NULL;
        close(lfd);

        /* The public address exists only inside. */
        {
                struct netns_socket_req req = {
                        .family = AF_INET, .type = SOCK_STREAM, .bind = true, .backlog = 1};
                struct sockaddr_in *in = (struct sockaddr_in *)&req.addr;

                in->sin_family = AF_INET;
                inet_pton(AF_INET, "203.0.113.10", &in->sin_addr);
                req.addrlen = sizeof(*in);
                assert_int_equal(netns_socket_sync(&req, &lfd, &err), -EADDRNOTAVAIL);
                assert_non_null(strstr(err, "the host namespace"));
                free(err);
                err = NULL;
                snprintf(req.netns_path, sizeof(req.netns_path), "%s", T.path);
                assert_int_equal(netns_socket_sync(&req, &lfd, &err), 0);
                close(lfd);
        }

        teardown_expect_ok(&c, &b);
        expect_line(&b, "deleted veth public in namespace %s", T.name);
        expect_line(&b, "deleted veth ygg in namespace %s", T.name);
        expect_line(&b, "deleted namespace %s", T.name);
        assert_false(netns_exists(T.run_dir, T.name));
        assert_int_equal(access(T.path, F_OK), -1);
        assert_int_equal(if_nametoindex(T.pub), 0);
        assert_int_equal(if_nametoindex(T.ygg), 0);
        /* Missing pieces are not errors. */
        teardown_expect_ok(&c, &b);
        expect_empty(&b);
}

static void test_drift(void **state)
{
        _cleanup_strbuf_ struct strbuf b = STRBUF_INIT;
        struct netns_config c;
        char buf[256], pub[32], ygg[32];
        int hold = -1, fd;

        snprintf(pub, sizeof(pub), "veth:%s", T.pub);
        snprintf(ygg, sizeof(ygg), "veth:%s", T.ygg);
        ntest_config(&T, pub, ygg, &c);
        reconcile_expect(&c, &b, 0);

        /* What an operator (or a bug) may do. */
        assert_int_equal(ntest_sh("nsenter --net=%s ip addr del 300:1:2:3::10/64 dev ygg", T.path),
                         0);
        assert_int_equal(ntest_sh("nsenter --net=%s ip route del default", T.path), 0);
        assert_int_equal(ntest_sh("nsenter --net=%s ip link set public down", T.path), 0);
        assert_int_equal(
                ntest_sh("nsenter --net=%s ip addr add 203.0.113.99/24 dev public", T.path), 0);
        assert_int_equal(
                ntest_sh("nsenter --net=%s sysctl -qw net.ipv6.conf.all.forwarding=1", T.path), 0);
        assert_int_equal(ntest_sh("ip link set %s down", T.pub), 0);

        reconcile_expect(&c, &b, 0);
        expect_line(&b, "set net.ipv6.conf.all.forwarding=0 (was 1)");
        expect_line(&b, "set %s up in the host namespace", T.pub);
        expect_line(&b, "set public up");
        expect_line(&b, "removed address 203.0.113.99/24 from public");
        expect_line(&b, "added address 300:1:2:3::10/64 on ygg");
        /* Down removed the IPv6 address and every route on public. */
        expect_line(&b, "added address 2001:db8:1::10/64 on public");
        expect_line(&b, "added route default via 203.0.113.1 dev public");
        expect_line(&b, "added route default via 2001:db8:1::1 dev public");
        reconcile_expect(&c, &b, 0);
        expect_empty(&b);

        /* Another next hop for 200::/7 is replaced. */
        assert_int_equal(ntest_sh("nsenter --net=%s ip -6 route replace 200::/7 via 300:1:2:3::99 "
                                  "dev ygg",
                                  T.path),
                         0);
        reconcile_expect(&c, &b, 0);
        expect_line(&b, "removed route 200::/7 via 300:1:2:3::99");
        expect_line(&b, "added route 200::/7 via 300:1:2:3::1 dev ygg");
        reconcile_expect(&c, &b, 0);
        expect_empty(&b);

        /* `ip netns del` while something (here a socket, in the daemon the
         * monitor) keeps the namespace alive: the name is gone, the veth
         * pairs live on in the unnamed namespace. */
        assert_int_equal(ntest_sh("nsenter --net=%s true", T.path), 0);
        {
                struct netns_socket_req req = {
                        .family = AF_INET, .type = SOCK_DGRAM, .backlog = -1};
                char *err = NULL;

                snprintf(req.netns_path, sizeof(req.netns_path), "%s", T.path);
                assert_int_equal(netns_socket_sync(&req, &hold, &err), 0);
        }
        assert_int_equal(umount2(T.path, MNT_DETACH), 0);
        assert_int_equal(unlink(T.path), 0);
        assert_false(netns_exists(T.run_dir, T.name));
        assert_true(if_nametoindex(T.pub) > 0);

        reconcile_expect(&c, &b, 0);
        expect_line(&b, "created namespace %s", T.name);
        expect_line(&b, "deleted stale veth %s (its peer was not public in namespace %s)", T.pub,
                    T.name);
        expect_line(&b, "deleted stale veth %s (its peer was not ygg in namespace %s)", T.ygg,
                    T.name);
        expect_line(&b, "created veth %s with peer public in namespace %s", T.pub, T.name);
        expect_line(&b, "added route 200::/7 via 300:1:2:3::1 dev ygg");
        close(hold);
        reconcile_expect(&c, &b, 0);
        expect_empty(&b);

        /* A leftover plain file where the namespace should be (after a
         * reboot /run is empty, but a custom run_dir may not be). */
        teardown_expect_ok(&c, &b);
        fd = open(T.path, O_CREAT | O_WRONLY | O_CLOEXEC, 0);
        assert_true(fd >= 0);
        close(fd);
        reconcile_expect(&c, &b, 0);
        snprintf(buf, sizeof(buf), "removed stale %s (not a network namespace)", T.path);
        expect_line(&b, "%s", buf);
        expect_line(&b, "created namespace %s", T.name);
        reconcile_expect(&c, &b, 0);
        expect_empty(&b);

        teardown_expect_ok(&c, &b);
        assert_int_equal(if_nametoindex(T.pub), 0);
}

static bool link_up(const char *name)
{
        char buf[512];

        ntest_sh_out(buf, sizeof(buf), "ip -o link show %s 2>/dev/null", name);
        return strstr(buf, "<") && strstr(buf, ",UP");
}

static void test_macvlan_move(void **state)
{
        _cleanup_strbuf_ struct strbuf b = STRBUF_INIT;
        struct netns_config c;
        char pub[32], ygg[32], buf[512];

        /* No dummy driver everywhere: the ends of veth pairs stand in for
         * a NIC (the macvlan parent) and a link to move. */
        assert_int_equal(ntest_sh("ip link add %s type veth peer name %sp", T.parent, T.parent), 0);
        assert_int_equal(ntest_sh("ip link add %s type veth peer name %sp && ip link set %s up",
                                  T.moved, T.moved, T.moved),
                         0);
        snprintf(pub, sizeof(pub), "macvlan:%s", T.parent);
        snprintf(ygg, sizeof(ygg), "move:%s", T.moved);
        ntest_config(&T, pub, ygg, &c);

        reconcile_expect(&c, &b, 0);
        expect_line(&b, "created macvlan public on %s in namespace %s", T.parent, T.name);
        expect_line(&b, "moved %s into namespace %s as ygg", T.moved, T.name);
        expect_line(&b, "added address 300:1:2:3::10/64 on ygg");
        assert_int_equal(if_nametoindex(T.moved), 0);
        reconcile_expect(&c, &b, 0);
        expect_empty(&b);
        /* Where the link came from is kept with the link itself. */
        ntest_sh_out(buf, sizeof(buf), "nsenter --net=%s ip -o link show ygg", T.path);
        assert_non_null(strstr(buf, "gatewayd:moved-from="));

        /* A deleted macvlan comes back. */
        assert_int_equal(ntest_sh("nsenter --net=%s ip link del public", T.path), 0);
        reconcile_expect(&c, &b, 0);
        expect_line(&b, "created macvlan public on %s in namespace %s", T.parent, T.name);
        expect_line(&b, "added route default via 203.0.113.1 dev public");

        /* The configured kind changes: the old link goes, the new one comes. */
        snprintf(pub, sizeof(pub), "veth:%s", T.pub);
        assert_int_equal(netns_link_spec_parse(pub, "public", &c.public_link, NULL), 0);
        reconcile_expect(&c, &b, 0);
        expect_line(&b, "deleted macvlan public in namespace %s (not the configured link)", T.name);
        expect_line(&b, "created veth %s with peer public in namespace %s", T.pub, T.name);
        reconcile_expect(&c, &b, 0);
        expect_empty(&b);

        /* Teardown gives the moved link back, with its name and state. */
        teardown_expect_ok(&c, &b);
        expect_line(&b, "moved ygg back to the host namespace as %s", T.moved);
        expect_line(&b, "set %s up in the host namespace", T.moved);
        assert_true(if_nametoindex(T.moved) > 0);
        assert_true(link_up(T.moved));
        assert_true(if_nametoindex(T.parent) > 0);
        assert_int_equal(if_nametoindex(T.pub), 0);
        ntest_sh_out(buf, sizeof(buf), "ip -o link show %s", T.moved);
        assert_null(strstr(buf, "gatewayd:"));

        assert_int_equal(ntest_sh("ip link del %s && ip link del %s", T.parent, T.moved), 0);
}

static void test_errors(void **state)
{
        _cleanup_strbuf_ struct strbuf b = STRBUF_INIT;
        struct netns_config c;
        char pub[32], ygg[32], want[160], *err = NULL;

        snprintf(ygg, sizeof(ygg), "veth:%s", T.ygg);

        /* A missing macvlan parent. */
        snprintf(pub, sizeof(pub), "macvlan:%s", T.parent);
        ntest_config(&T, pub, ygg, &c);
        assert_int_equal(netns_reconcile(&c, &b, &err), -ENODEV);
        snprintf(want, sizeof(want),
                 "parent link %s of macvlan public not found in the host namespace: No such device",
                 T.parent);
        assert_string_equal(err, want);
        free(err);
        err = NULL;
        /* What was done before the failure is reported. */
        expect_line(&b, "created namespace %s", T.name);

        /* A missing link to move. */
        snprintf(pub, sizeof(pub), "move:%s", T.moved);
        assert_int_equal(netns_link_spec_parse(pub, "public", &c.public_link, NULL), 0);
        strbuf_reset(&b);
        assert_int_equal(netns_reconcile(&c, &b, &err), -ENODEV);
        assert_non_null(strstr(err, "to move into namespace"));
        assert_non_null(strstr(err, T.moved));
        free(err);
        err = NULL;

        /* A veth host name taken by another kind of link. */
        assert_int_equal(ntest_sh("ip link add %s type veth peer name %sp && "
                                  "ip link add link %s name %s type macvlan",
                                  T.parent, T.parent, T.parent, T.pub),
                         0);
        snprintf(pub, sizeof(pub), "veth:%s", T.pub);
        assert_int_equal(netns_link_spec_parse(pub, "public", &c.public_link, NULL), 0);
        assert_int_equal(netns_reconcile(&c, NULL, &err), -EEXIST);
        assert_non_null(strstr(err, "is not a veth"));
        free(err);
        err = NULL;
        assert_int_equal(ntest_sh("ip link del %s", T.parent), 0); /* and its macvlan */

        /* Bad configurations touch nothing. */
        ntest_ygg(&c)->address.family = 0;
        assert_int_equal(netns_reconcile(&c, NULL, &err), -EINVAL);
        free(err);
        err = NULL;
        ntest_config(&T, pub, ygg, &c);
        snprintf(c.name, sizeof(c.name), "a/b");
        assert_int_equal(netns_reconcile(&c, NULL, &err), -EINVAL);
        free(err);
        err = NULL;

        ntest_config(&T, pub, ygg, &c);
        teardown_expect_ok(&c, &b);
        assert_false(netns_exists(T.run_dir, T.name));
}

/* netns_check() says what reconcile would fail on, before anything is
 * made or torn down (issue 10: a reload must keep the working namespace). */
static void check_expect(const struct netns_config *c, const struct netns_config *current, int want,
                         const char *want_text)
{
        char *err = NULL;
        int r = netns_check(c, current, &err);

        if (r != want)
                fail_msg("check returned %d (%s), wanted %d", r, err ? err : "no error text", want);
        if (want_text && (!err || !strstr(err, want_text)))
                fail_msg("check error '%s' lacks '%s'", strempty(err), want_text);
        if (r >= 0)
                assert_null(err);
        free(err);
}

static void test_issue_10_check(void **state)
{
        _cleanup_strbuf_ struct strbuf b = STRBUF_INIT;
        struct netns_config c, current;
        char pub[32], ygg[32], want[160];

        snprintf(ygg, sizeof(ygg), "veth:%s", T.ygg);

        /* A missing macvlan parent: reconcile's own text, nothing made. */
        snprintf(pub, sizeof(pub), "macvlan:%s", T.parent);
        ntest_config(&T, pub, ygg, &c);
        snprintf(want, sizeof(want),
                 "parent link %s of macvlan public not found in the host namespace: No such device",
                 T.parent);
        check_expect(&c, NULL, -ENODEV, want);
        assert_false(netns_exists(T.run_dir, T.name));
        assert_int_equal(if_nametoindex(T.ygg), 0);
        /* Present: fine. */
        assert_int_equal(ntest_sh("ip link add %s type veth peer name %sp", T.parent, T.parent), 0);
        check_expect(&c, NULL, 0, NULL);

        /* A missing link to move, unless the namespace in use gives it back. */
        snprintf(ygg, sizeof(ygg), "move:%s", T.moved);
        assert_int_equal(netns_link_spec_parse(ygg, "ygg", &ntest_ygg(&c)->link, NULL), 0);
        check_expect(&c, NULL, -ENODEV, "to move into namespace");
        current = c;
        check_expect(&c, &current, 0, NULL);

        /* A veth host name taken by another kind of link. */
        snprintf(ygg, sizeof(ygg), "veth:%s", T.ygg);
        assert_int_equal(netns_link_spec_parse(ygg, "ygg", &ntest_ygg(&c)->link, NULL), 0);
        assert_int_equal(netns_link_spec_parse("veth:lo", "public", &c.public_link, NULL), 0);
        check_expect(&c, NULL, -EEXIST, "lo exists in the host namespace and is not a veth");

        /* A parent that is the host end of a veth of the namespace in use:
         * tearing that down deletes it. */
        snprintf(pub, sizeof(pub), "veth:%s", T.pub);
        ntest_config(&T, pub, ygg, &current);
        reconcile_expect(&current, &b, 0);
        snprintf(pub, sizeof(pub), "macvlan:%s", T.pub);
        ntest_config(&T, pub, ygg, &c);
        check_expect(&c, &current, -ENODEV, "goes with it");
        check_expect(&c, NULL, 0, NULL);

        /* A bad configuration. */
        ntest_ygg(&c)->address.family = 0;
        check_expect(&c, NULL, -EINVAL, NULL);

        teardown_expect_ok(&current, &b);
        assert_int_equal(ntest_sh("ip link del %s", T.parent), 0);
}

/* Issue 12: Mycelium (400::/7) beside Yggdrasil, from the same code: a
 * link with an address from the node's subnet and a route for the prefix
 * via the node's router; drift repaired; added in place; torn down. */
static void test_issue_12_overlays(void **state)
{
        _cleanup_strbuf_ struct strbuf b = STRBUF_INIT;
        struct netns_config c, both;
        char buf[256], pub[32], ygg[32], myc[32];

        snprintf(pub, sizeof(pub), "veth:%s", T.pub);
        snprintf(ygg, sizeof(ygg), "veth:%s", T.ygg);
        snprintf(myc, sizeof(myc), "veth:%s", T.myc);
        ntest_config(&T, pub, ygg, &c);
        both = c;
        ntest_add_mycelium(&both, myc);

        /* Yggdrasil alone first: no mycelium link, no 400::/7 route. */
        reconcile_expect(&c, &b, 0);
        assert_int_equal(if_nametoindex(T.myc), 0);
        ntest_sh_out(buf, sizeof(buf), "nsenter --net=%s ip -6 route show 400::/7", T.path);
        assert_string_equal(buf, "");

        /* Mycelium added: built in place, nothing else changes. */
        reconcile_expect(&both, &b, 0);
        expect_line(&b, "created veth %s with peer mycelium in namespace %s", T.myc, T.name);
        expect_line(&b, "set %s up in the host namespace", T.myc);
        expect_line(&b, "set mycelium up");
        expect_line(&b, "added address 4a1:b2c3:d4e5:f6a7::10/64 on mycelium");
        expect_line(&b, "added route 400::/7 via 4a1:b2c3:d4e5:f6a7::1 dev mycelium");
        if (strstr(b.data, "ygg") || strstr(b.data, "public"))
                fail_msg("adding mycelium touched another link:\n%s", b.data);
        reconcile_expect(&both, &b, 0);
        expect_empty(&b);
        assert_string_equal(ns_sysctl(buf, sizeof(buf), "net.ipv6.conf.mycelium.accept_ra"), "0");

        /* Each overlay's addresses go their own way: 400::/7 covers 5xx too. */
        ntest_sh_out(buf, sizeof(buf), "nsenter --net=%s ip -6 route get 5ff:1::2 2>&1", T.path);
        assert_non_null(strstr(buf, "via 4a1:b2c3:d4e5:f6a7::1 dev mycelium"));
        ntest_sh_out(buf, sizeof(buf), "nsenter --net=%s ip -6 route get 47f:1::2 2>&1", T.path);
        assert_non_null(strstr(buf, "via 4a1:b2c3:d4e5:f6a7::1 dev mycelium"));
        ntest_sh_out(buf, sizeof(buf), "nsenter --net=%s ip -6 route get 301:5::1 2>&1", T.path);
        assert_non_null(strstr(buf, "via 300:1:2:3::1 dev ygg"));

        /* Drift: the route, the address, the link, a foreign next hop. */
        assert_int_equal(ntest_sh("nsenter --net=%s ip -6 route del 400::/7", T.path), 0);
        reconcile_expect(&both, &b, 0);
        expect_line(&b, "added route 400::/7 via 4a1:b2c3:d4e5:f6a7::1 dev mycelium");
        assert_int_equal(ntest_sh("nsenter --net=%s ip addr del 4a1:b2c3:d4e5:f6a7::10/64 dev "
                                  "mycelium",
                                  T.path),
                         0);
        assert_int_equal(ntest_sh("nsenter --net=%s ip link set mycelium down", T.path), 0);
        reconcile_expect(&both, &b, 0);
        expect_line(&b, "set mycelium up");
        expect_line(&b, "added address 4a1:b2c3:d4e5:f6a7::10/64 on mycelium");
        expect_line(&b, "added route 400::/7 via 4a1:b2c3:d4e5:f6a7::1 dev mycelium");
        assert_int_equal(ntest_sh("nsenter --net=%s ip -6 route replace 400::/7 via "
                                  "4a1:b2c3:d4e5:f6a7::99 dev mycelium",
                                  T.path),
                         0);
        reconcile_expect(&both, &b, 0);
        expect_line(&b, "removed route 400::/7 via 4a1:b2c3:d4e5:f6a7::99");
        expect_line(&b, "added route 400::/7 via 4a1:b2c3:d4e5:f6a7::1 dev mycelium");
        /* A 400::/7 route through the wrong overlay's link is replaced too. */
        assert_int_equal(ntest_sh("nsenter --net=%s ip -6 route replace 400::/7 via "
                                  "300:1:2:3::1 dev ygg",
                                  T.path),
                         0);
        reconcile_expect(&both, &b, 0);
        expect_line(&b, "removed route 400::/7 via 300:1:2:3::1");
        expect_line(&b, "added route 400::/7 via 4a1:b2c3:d4e5:f6a7::1 dev mycelium");
        reconcile_expect(&both, &b, 0);
        expect_empty(&b);

        /* netns_check() looks at every overlay's link. */
        {
                struct netns_config bad = both;
                char want[160];

                snprintf(myc, sizeof(myc), "move:%s", T.moved);
                assert_int_equal(
                        netns_link_spec_parse(myc, "mycelium", &bad.overlays[1].link, NULL), 0);
                snprintf(want, sizeof(want),
                         "link %s to move into namespace %s not found in the host namespace",
                         T.moved, T.name);
                check_expect(&bad, &both, -ENODEV, want);
                check_expect(&both, &both, 0, NULL);
        }

        /* Teardown removes both overlays' veths. */
        teardown_expect_ok(&both, &b);
        expect_line(&b, "deleted veth mycelium in namespace %s", T.name);
        expect_line(&b, "deleted veth ygg in namespace %s", T.name);
        assert_int_equal(if_nametoindex(T.myc), 0);
        assert_int_equal(if_nametoindex(T.ygg), 0);
        assert_false(netns_exists(T.run_dir, T.name));
}

/* Issue 12: an overlay that is not configured is not there. Its link, left
 * by an earlier configuration or run, is removed in place (its route with
 * it), a moved one given back; teardown gives a moved one back too. */
static void test_issue_12_absent_overlay(void **state)
{
        _cleanup_strbuf_ struct strbuf b = STRBUF_INIT;
        struct netns_config c, both;
        char buf[256], pub[32], ygg[32], myc[32];

        snprintf(pub, sizeof(pub), "veth:%s", T.pub);
        snprintf(ygg, sizeof(ygg), "veth:%s", T.ygg);
        snprintf(myc, sizeof(myc), "veth:%s", T.myc);
        ntest_config(&T, pub, ygg, &c);
        both = c;
        ntest_add_mycelium(&both, myc);
        ntest_absent(&c, "mycelium");

        reconcile_expect(&both, &b, 0);
        assert_true(if_nametoindex(T.myc) > 0);
        reconcile_expect(&c, &b, 0);
        expect_line(&b, "deleted veth mycelium in namespace %s (not configured)", T.name);
        if (strstr(b.data, "ygg") || strstr(b.data, "public"))
                fail_msg("removing mycelium touched another link:\n%s", b.data);
        assert_int_equal(if_nametoindex(T.myc), 0);
        ntest_sh_out(buf, sizeof(buf), "nsenter --net=%s ip -6 route show 400::/7", T.path);
        assert_string_equal(buf, "");
        reconcile_expect(&c, &b, 0);
        expect_empty(&b);

        /* A link moved in as mycelium goes back under its name. */
        assert_int_equal(ntest_sh("ip link add %s type veth peer name %sp && ip link set %s up",
                                  T.moved, T.moved, T.moved),
                         0);
        snprintf(myc, sizeof(myc), "move:%s", T.moved);
        assert_int_equal(netns_link_spec_parse(myc, "mycelium", &both.overlays[1].link, NULL), 0);
        reconcile_expect(&both, &b, 0);
        expect_line(&b, "moved %s into namespace %s as mycelium", T.moved, T.name);
        reconcile_expect(&c, &b, 0);
        expect_line(&b, "moved mycelium back to the host namespace as %s", T.moved);
        assert_true(if_nametoindex(T.moved) > 0);

        /* ... and at teardown by a configuration that no longer has it. */
        reconcile_expect(&both, &b, 0);
        assert_int_equal(if_nametoindex(T.moved), 0);
        teardown_expect_ok(&c, &b);
        expect_line(&b, "moved mycelium back to the host namespace as %s", T.moved);
        expect_line(&b, "set %s up in the host namespace", T.moved);
        assert_true(if_nametoindex(T.moved) > 0);
        assert_false(netns_exists(T.run_dir, T.name));
        assert_int_equal(ntest_sh("ip link del %s", T.moved), 0);
}

/* Overlay configurations that cannot be built touch nothing. */
static void test_issue_12_bad_overlays(void **state)
{
        struct netns_config c, bad;
        char pub[32], ygg[32], myc[32];
        struct {
                const char *what, *text;
        } cases[] = {
                {"same link name", "the ygg and ygg links must differ"},
                {"same host name", "the ygg and mycelium links must differ"},
                {"overlapping prefixes", "the prefixes of overlays ygg and mycelium overlap"},
                {"default prefix", "invalid prefix of overlay mycelium"},
                {"host bits in prefix", "invalid prefix of overlay mycelium"},
                {"no router", "mycelium_address and mycelium_router are required (IPv6)"},
                {"too many", "more than 4 overlays"},
                {"configured and absent", "link mycelium is both configured and absent"},
                {"absent lo", "invalid absent link name"},
        };

        snprintf(pub, sizeof(pub), "veth:%s", T.pub);
        snprintf(ygg, sizeof(ygg), "veth:%s", T.ygg);
        snprintf(myc, sizeof(myc), "veth:%s", T.myc);
        ntest_config(&T, pub, ygg, &c);
        ntest_add_mycelium(&c, myc);
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                char *err = NULL;

                bad = c;
                switch (i) {
                case 0:
                        snprintf(bad.overlays[1].link.name, IFNAMSIZ, "ygg");
                        break;
                case 1:
                        snprintf(bad.overlays[1].link.host, IFNAMSIZ, "%s", T.ygg);
                        break;
                case 2:
                        inet_pton(AF_INET6, "300::", &bad.overlays[1].prefix.v6);
                        bad.overlays[1].prefix.prefixlen = 8;
                        break;
                case 3:
                        memset(&bad.overlays[1].prefix.v6, 0, 16);
                        bad.overlays[1].prefix.prefixlen = 0;
                        break;
                case 4:
                        inet_pton(AF_INET6, "400::1", &bad.overlays[1].prefix.v6);
                        break;
                case 5:
                        memset(&bad.overlays[1].router, 0, 16);
                        break;
                case 6:
                        bad.n_overlays = NETNS_OVERLAYS_MAX + 1;
                        break;
                case 7:
                        ntest_absent(&bad, "mycelium");
                        break;
                case 8:
                        ntest_absent(&bad, "lo");
                        break;
                }
                assert_int_equal(netns_reconcile(&bad, NULL, &err), -EINVAL);
                if (!err || strncmp(err, cases[i].text, strlen(cases[i].text)) != 0)
                        fail_msg("%s: error '%s', wanted '%s'", cases[i].what, strempty(err),
                                 cases[i].text);
                free(err);
                err = NULL;
                check_expect(&bad, NULL, -EINVAL, cases[i].text);
        }
        assert_false(netns_exists(T.run_dir, T.name));
        assert_int_equal(if_nametoindex(T.pub), 0);
}

/* Without CAP_SYS_ADMIN: "permission denied ..." (in a child, which drops
 * the capability for good). */
static void test_no_permission(void **state)
{
        pid_t pid;
        int status;

        pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                struct __user_cap_header_struct h = {.version = _LINUX_CAPABILITY_VERSION_3};
                struct __user_cap_data_struct d[2] = {};
                struct netns_config c;
                char pub[32], ygg[32], *err = NULL;
                int r;

                if (syscall(SYS_capget, &h, d) < 0)
                        _exit(10);
                d[CAP_SYS_ADMIN / 32].effective &= ~(1u << (CAP_SYS_ADMIN % 32));
                d[CAP_SYS_ADMIN / 32].permitted &= ~(1u << (CAP_SYS_ADMIN % 32));
                if (syscall(SYS_capset, &h, d) < 0)
                        _exit(11);
                snprintf(pub, sizeof(pub), "veth:%s", T.pub);
                snprintf(ygg, sizeof(ygg), "veth:%s", T.ygg);
                ntest_config(&T, pub, ygg, &c);
                r = netns_reconcile(&c, NULL, &err);
                if (r != -EPERM)
                        _exit(12);
                if (!err || !strstr(err, "permission denied") ||
                    !strstr(err, "Operation not permitted")) {
                        fprintf(stderr, "unexpected error text: %s\n", strempty(err));
                        _exit(13);
                }
                _exit(0);
        }
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
        assert_false(netns_exists(T.run_dir, T.name));
        assert_int_equal(if_nametoindex(T.pub), 0);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup(test_create_idempotent_sockets_teardown, setup),
                cmocka_unit_test_setup(test_drift, setup),
                cmocka_unit_test_setup(test_macvlan_move, setup),
                cmocka_unit_test_setup(test_errors, setup),
                cmocka_unit_test_setup(test_issue_10_check, setup),
                cmocka_unit_test_setup(test_issue_12_overlays, setup),
                cmocka_unit_test_setup(test_issue_12_absent_overlay, setup),
                cmocka_unit_test_setup(test_issue_12_bad_overlays, setup),
                cmocka_unit_test_setup(test_no_permission, setup),
        };

        if (!ntest_have_root())
                return ntest_skip_all("needs root (creates namespaces and links)");
        return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
