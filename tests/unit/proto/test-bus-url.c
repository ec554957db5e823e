/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "proto/bus-url.h"

static void test_unix(void **state)
{
        struct proto_broker b;

        assert_int_equal(proto_broker_parse("unix:///var/run/redis.sock", &b, NULL), 0);
        assert_true(b.is_unix);
        assert_string_equal(b.path, "/var/run/redis.sock");
        proto_broker_done(&b);
}

static void test_tcp_password(void **state)
{
        struct proto_broker b;

        assert_int_equal(proto_broker_parse("tcp://SECRET@127.0.0.1:6379", &b, NULL), 0);
        assert_false(b.is_unix);
        assert_string_equal(b.host, "127.0.0.1");
        assert_int_equal(b.port, 6379);
        assert_string_equal(b.password, "SECRET");
        proto_broker_done(&b);
        /* zbus sends the *user* part: tcp://:SECRET@host sends "". */
        assert_int_equal(proto_broker_parse("tcp://:SECRET@[::1]:6379", &b, NULL), 0);
        assert_string_equal(b.host, "::1");
        assert_string_equal(b.password, "");
        proto_broker_done(&b);
}

static void test_errors(void **state)
{
        struct proto_broker b;
        char *err = NULL;

        assert_int_equal(proto_broker_parse("http://x:1", &b, &err), -EINVAL);
        assert_string_equal(err, "unknown scheme 'http' expecting tcp or unix");
        free(err);
        err = NULL;
        assert_int_equal(proto_broker_parse("tcp://host", &b, &err), -EINVAL);
        free(err);
        err = NULL;
        assert_int_equal(proto_broker_parse("tcp://host:99999", &b, &err), -EINVAL);
        free(err);
}

static void test_uuid(void **state)
{
        char a[37], b[37];

        assert_int_equal(proto_uuid4(a), 0);
        assert_int_equal(proto_uuid4(b), 0);
        assert_int_equal(strlen(a), 36);
        assert_int_equal(a[8], '-');
        assert_int_equal(a[14], '4');
        assert_string_not_equal(a, b);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_unix),
                cmocka_unit_test(test_tcp_password),
                cmocka_unit_test(test_errors),
                cmocka_unit_test(test_uuid),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
