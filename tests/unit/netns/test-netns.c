/* SPDX-License-Identifier: Apache-2.0 */
/* netns.c: link specs and namespace files; no privileges needed. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/macros.h"
#include "netns/netns.h"

static void test_parse_kinds(void **state)
{
        static const struct {
                const char *s;
                enum netns_link_kind kind;
                const char *host;
        } ok[] = {
                {"veth:gw-pub", NETNS_LINK_VETH, "gw-pub"},
                {"macvlan:eth0", NETNS_LINK_MACVLAN, "eth0"},
                {"move:enp3s0f1", NETNS_LINK_MOVE, "enp3s0f1"},
                {"veth:abcdefghijklmno", NETNS_LINK_VETH, "abcdefghijklmno"}, /* 15 chars */
                {"macvlan:eth0.100", NETNS_LINK_MACVLAN, "eth0.100"},
        };

        for (size_t i = 0; i < ELEMENTSOF(ok); i++) {
                struct netns_link_spec s;
                char *err = NULL;

                assert_int_equal(netns_link_spec_parse(ok[i].s, "public", &s, &err), 0);
                assert_null(err);
                assert_int_equal(s.kind, ok[i].kind);
                assert_string_equal(s.host, ok[i].host);
                assert_string_equal(s.name, "public");
                assert_string_equal(netns_link_kind_to_string(s.kind), ok[i].s[0] == 'v' ? "veth"
                                                                       : ok[i].s[1] == 'a'
                                                                               ? "macvlan"
                                                                               : "move");
        }
}

static void test_parse_rejects(void **state)
{
        static const struct {
                const char *s;
                const char *inner;
                const char *needle;
        } bad[] = {
                {"gw-pub", "public", "expected veth:<name>"},
                {"bridge:br0", "public", "unknown kind 'bridge'"},
                {":eth0", "public", "unknown kind ''"},
                {"veth:", "public", "not a valid interface name"},
                {"veth:abcdefghijklmnop", "public", "not a valid interface name"}, /* 16 */
                {"veth:a/b", "public", "not a valid interface name"},
                {"veth:a b", "public", "not a valid interface name"},
                {"macvlan:eth0:1", "public", "not a valid interface name"},
                {"move:..", "public", "not a valid interface name"},
                {"VETH:x", "public", "unknown kind"},
                {"veth:x", "", "invalid inner link name"},
                {"veth:x", "bad/name", "invalid inner link name"},
        };

        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                struct netns_link_spec s = {.kind = NETNS_LINK_MOVE, .host = "keep"};
                char *err = NULL;

                assert_int_equal(netns_link_spec_parse(bad[i].s, bad[i].inner, &s, &err), -EINVAL);
                assert_non_null(err);
                if (!strstr(err, bad[i].needle))
                        fail_msg("'%s': error '%s' lacks '%s'", bad[i].s, err, bad[i].needle);
                assert_non_null(strstr(err, "Invalid argument"));
                /* untouched on failure */
                assert_int_equal(s.kind, NETNS_LINK_MOVE);
                assert_string_equal(s.host, "keep");
                free(err);
        }
        /* @reterr may be NULL */
        {
                struct netns_link_spec s;

                assert_int_equal(netns_link_spec_parse("nope", "public", &s, NULL), -EINVAL);
        }
}

static void test_kind_to_string(void **state)
{
        assert_string_equal(netns_link_kind_to_string(NETNS_LINK_VETH), "veth");
        assert_string_equal(netns_link_kind_to_string(NETNS_LINK_MACVLAN), "macvlan");
        assert_string_equal(netns_link_kind_to_string(NETNS_LINK_MOVE), "move");
        assert_null(netns_link_kind_to_string(_NETNS_LINK_KIND_MAX));
        assert_null(netns_link_kind_to_string((enum netns_link_kind) - 1));
}

static void test_exists_rejects(void **state)
{
        char dir[] = "/tmp/gw-netns-spec-XXXXXX";
        char path[64];
        int fd;

        assert_non_null(mkdtemp(dir));
        assert_false(netns_exists(dir, "missing"));
        /* a plain file (what is left of a namespace after a reboot) */
        snprintf(path, sizeof(path), "%s/stale", dir);
        fd = open(path, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
        assert_true(fd >= 0);
        close(fd);
        assert_false(netns_exists(dir, "stale"));
        assert_false(netns_exists(dir, ""));
        assert_false(netns_exists(dir, "../x"));
        assert_false(netns_exists(dir, NULL));
        assert_int_equal(unlink(path), 0);
        assert_int_equal(rmdir(dir), 0);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_parse_kinds),
                cmocka_unit_test(test_parse_rejects),
                cmocka_unit_test(test_kind_to_string),
                cmocka_unit_test(test_exists_rejects),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
