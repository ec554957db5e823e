/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for daemon/config.c: the node configuration file. */

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/macros.h"
#include "common/strbuf.h"
#include "daemon/config.h"

/* ---- helpers ---------------------------------------------------------------------------- */

static void config_donep(struct gw_config *c)
{
        gw_config_done(c);
}
#define _cleanup_config_ _cleanup_(config_donep)

/* Parse @text as "t.conf" and expect success. */
static void load_ok(const char *text, struct gw_config *ret)
{
        _cleanup_free_ char *err = NULL;
        int r;

        r = gw_config_load_string("t.conf", text, ret, &err);
        if (r < 0)
                print_error("unexpected error: %s\n", strempty(err));
        assert_int_equal(r, 0);
        assert_null(err);
}

/* Parse @text as "t.conf", expect -EINVAL with exactly @expected, and @ret left untouched. */
static void load_fails(const char *text, const char *expected)
{
        _cleanup_free_ char *err = NULL;
        struct gw_config c, pattern;
        int r;

        memset(&c, 0xa5, sizeof(c));
        memset(&pattern, 0xa5, sizeof(pattern));
        r = gw_config_load_string("t.conf", text, &c, &err);
        assert_int_equal(r, -EINVAL);
        assert_non_null(err);
        assert_string_equal(err, expected);
        assert_memory_equal(&c, &pattern, sizeof(c));
}

/* "[<section>]\n<key> = <value>\n" plus @extra: the value is on line 2. */
static char *one_key(const char *section, const char *key, const char *value, const char *extra)
{
        char *s;

        assert_true(asprintf(&s, "[%s]\n%s = %s\n%s", section, key, value, strempty(extra)) > 0);
        return s;
}

static void key_ok(const char *section, const char *key, const char *value, const char *extra,
                   struct gw_config *ret)
{
        _cleanup_free_ char *text = one_key(section, key, value, extra);

        load_ok(text, ret);
}

static void key_fails(const char *section, const char *key, const char *value, const char *extra,
                      const char *reason)
{
        _cleanup_free_ char *text = one_key(section, key, value, extra);
        _cleanup_free_ char *expected = NULL;

        assert_true(asprintf(&expected, "t.conf:2: [%s] %s: %s", section, key, reason) > 0);
        load_fails(text, expected);
}

static const char *ntop4(const struct in_addr *a, char *buf)
{
        return inet_ntop(AF_INET, a, buf, INET6_ADDRSTRLEN);
}

static const char *ntop6(const struct in6_addr *a, char *buf)
{
        return inet_ntop(AF_INET6, a, buf, INET6_ADDRSTRLEN);
}

/* gw_sockaddr_to_string() of @ss, checking @len matches the family ("off" for 0). */
static const char *addr_str(const struct sockaddr_storage *ss, socklen_t len)
{
        static char buf[INET6_ADDRSTRLEN + 16];

        if (len == 0)
                return "off";
        assert_int_equal(len, ss->ss_family == AF_INET ? sizeof(struct sockaddr_in)
                                                       : sizeof(struct sockaddr_in6));
        return gw_sockaddr_to_string((const struct sockaddr *)ss, buf, sizeof(buf));
}

/* File mode with both families, for tests of one address key. */
#define FILE_V4 "public_config = file\npublic_ipv4 = 203.0.113.10/24\ngateway_ipv4 = 203.0.113.1\n"
#define FILE_V6                                                                                    \
        "public_config = file\npublic_ipv6 = 2001:db8:1::10/64\ngateway_ipv6 = 2001:db8:1::1\n"

/* ---- defaults and the happy path -------------------------------------------------------- */

static void test_defaults(void **state)
{
        _cleanup_config_ struct gw_config c = {};

        assert_int_equal(gw_config_init(&c), 0);
        assert_null(c.path);
        assert_false(c.enabled);
        assert_int_equal(c.public_config, GW_PUBLIC_CONFIG_BUS);
        assert_false(c.pc.has_ipv4);
        assert_false(c.pc.has_gw4);
        assert_false(c.pc.has_ipv6);
        assert_false(c.pc.has_gw6);
        assert_null(c.pc.domain);
        assert_int_equal(c.name_validation, GW_NAME_VALIDATION_BUS);
        assert_int_equal(c.revalidate_interval_sec, 3600);
        assert_string_equal(c.resolver, "8.8.8.8:53");
        assert_int_equal(c.resolver_timeout_ms, 10000);
        assert_int_equal(c.call_timeout_ms, 60000);
        assert_int_equal(c.max_payload, 1024 * 1024);
        assert_string_equal(c.netns_dir, "/run/netns");
        assert_int_equal(c.http_port, 80);
        assert_int_equal(c.https_port, 443);
        assert_int_equal(c.proxy_workers, 0);
        assert_false(c.http_plain);
        assert_string_equal(addr_str(&c.proxy_address, c.proxy_address_len), "::");
        assert_string_equal(addr_str(&c.metrics_listen, c.metrics_listen_len), "127.0.0.1:8082");
        assert_int_equal(c.log_level, LOG_INFO);
        assert_int_equal(c.dns_listen_port, 53);
        assert_true(c.acme_enabled);
        assert_string_equal(c.acme_directory, "https://acme-v02.api.letsencrypt.org/directory");
        assert_null(c.acme_email);
        assert_null(c.acme_ca_file);
        assert_null(c.acme_profile);

        gw_config_done(&c);
        gw_config_done(&c); /* idempotent */
        gw_config_done(NULL);
}

static void test_empty_file_gives_defaults(void **state)
{
        _cleanup_config_ struct gw_config c = {};

        load_ok("", &c);
        assert_string_equal(c.path, "t.conf");
        assert_false(c.enabled);
        assert_int_equal(c.public_config, GW_PUBLIC_CONFIG_BUS);
        assert_string_equal(c.resolver, "8.8.8.8:53");
        assert_int_equal(c.max_payload, 1024 * 1024);
}

/* The configuration from the issue, verbatim. */
static void test_issue_example(void **state)
{
        _cleanup_config_ struct gw_config c = {};
        char buf[INET6_ADDRSTRLEN];

        load_ok("[gateway]\n"
                "enabled = yes              ; the farmer's switch\n"
                "domain = gw1.example.net   ; empty: name proxies refused (zos error text)\n"
                "public_config = file       ; file: the four keys below; bus: network.network@0.0.1 GetPublicConfig\n"
                "public_ipv4 = 203.0.113.10/24\n"
                "gateway_ipv4 = 203.0.113.1\n"
                "public_ipv6 = 2001:db8:1::10/64\n"
                "gateway_ipv6 = 2001:db8:1::1\n"
                "[names]\n"
                "validation = bus           ; bus: api-gateway.api-gateway@0.0.1 as zos does; off: trust caller\n"
                "[dns]\n"
                "resolver = 8.8.8.8:53      ; used to check that an FQDN points at this node\n",
                &c);
        assert_true(c.enabled);
        assert_string_equal(c.pc.domain, "gw1.example.net");
        assert_int_equal(c.public_config, GW_PUBLIC_CONFIG_FILE);
        assert_true(c.pc.has_ipv4);
        assert_string_equal(ntop4(&c.pc.ipv4, buf), "203.0.113.10");
        assert_int_equal(c.pc.ipv4_prefix, 24);
        assert_true(c.pc.has_gw4);
        assert_string_equal(ntop4(&c.pc.gw4, buf), "203.0.113.1");
        assert_true(c.pc.has_ipv6);
        assert_string_equal(ntop6(&c.pc.ipv6, buf), "2001:db8:1::10");
        assert_int_equal(c.pc.ipv6_prefix, 64);
        assert_true(c.pc.has_gw6);
        assert_string_equal(ntop6(&c.pc.gw6, buf), "2001:db8:1::1");
        assert_int_equal(c.name_validation, GW_NAME_VALIDATION_BUS);
        assert_string_equal(c.resolver, "8.8.8.8:53");
}

static void test_every_key(void **state)
{
        _cleanup_config_ struct gw_config c = {};

        load_ok("[gateway]\n"
                "enabled = on\n"
                "domain = gw.example.org\n"
                "public_config = file\n"
                "public_ipv6 = 2001:db8::5/48\n"
                "gateway_ipv6 = fe80::1\n"
                "[names]\n"
                "validation = off\n"
                "revalidate_interval = 30m\n"
                "[dns]\n"
                "resolver = [2001:4860:4860::8888]:5353\n"
                "timeout = 2500\n"
                "[bus]\n"
                "call_timeout = 5s\n"
                "max_payload = 64K\n"
                "[namespace]\n"
                "netns_dir = /tmp/gw-test/netns\n"
                "[proxy]\n"
                "http_port = 8080\n"
                "https_port = 8443\n"
                "workers = 3\n"
                "address = 2001:db8::5\n"
                "http_plain = yes\n"
                "[metrics]\n"
                "listen = [::1]:9100\n"
                "[log]\n"
                "level = debug\n",
                &c);
        assert_int_equal(c.http_port, 8080);
        assert_int_equal(c.https_port, 8443);
        assert_int_equal(c.proxy_workers, 3);
        assert_string_equal(addr_str(&c.proxy_address, c.proxy_address_len), "2001:db8::5");
        assert_true(c.http_plain);
        assert_string_equal(addr_str(&c.metrics_listen, c.metrics_listen_len), "[::1]:9100");
        assert_true(c.enabled);
        assert_string_equal(c.pc.domain, "gw.example.org");
        assert_int_equal(c.public_config, GW_PUBLIC_CONFIG_FILE);
        assert_false(c.pc.has_ipv4);
        assert_true(c.pc.has_ipv6);
        assert_int_equal(c.pc.ipv6_prefix, 48);
        assert_true(c.pc.has_gw6);
        assert_int_equal(c.name_validation, GW_NAME_VALIDATION_OFF);
        assert_int_equal(c.revalidate_interval_sec, 1800);
        assert_string_equal(c.resolver, "[2001:4860:4860::8888]:5353");
        assert_int_equal(c.resolver_timeout_ms, 2500);
        assert_int_equal(c.call_timeout_ms, 5000);
        assert_int_equal(c.max_payload, 64 * 1024);
        assert_string_equal(c.netns_dir, "/tmp/gw-test/netns");
        assert_int_equal(c.log_level, LOG_DEBUG);
}

static void test_booleans(void **state)
{
        static const struct {
                const char *text;
                bool value;
        } cases[] = {
                {"yes", true}, {"no", false},  {"true", true}, {"false", false},
                {"on", true},  {"off", false}, {"1", true},    {"0", false},
                {"YES", true}, {"Off", false}, {"True", true}, {"FALSE", false},
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_config_ struct gw_config c = {};

                /* enabled = yes needs addresses in file mode; bus mode (the default) does not. */
                key_ok("gateway", "enabled", cases[i].text, NULL, &c);
                assert_int_equal(c.enabled, cases[i].value);
        }
        key_fails("gateway", "enabled", "maybe", NULL,
                  "invalid boolean 'maybe' (expected yes/no, true/false, on/off or 1/0)");
        key_fails("gateway", "enabled", "2", NULL,
                  "invalid boolean '2' (expected yes/no, true/false, on/off or 1/0)");
        key_fails("gateway", "enabled", "", NULL, "empty value");
}

static void test_enums(void **state)
{
        static const struct {
                const char *text;
                int level;
        } levels[] = {
                {"debug", LOG_DEBUG},     {"info", LOG_INFO}, {"notice", LOG_NOTICE},
                {"warning", LOG_WARNING}, {"error", LOG_ERR}, {"Warning", LOG_WARNING},
        };

        for (size_t i = 0; i < ELEMENTSOF(levels); i++) {
                _cleanup_config_ struct gw_config c = {};

                key_ok("log", "level", levels[i].text, NULL, &c);
                assert_int_equal(c.log_level, levels[i].level);
        }
        key_fails("log", "level", "warn", NULL,
                  "invalid value 'warn' (expected debug, info, notice, warning or error)");
        key_fails("log", "level", "7", NULL,
                  "invalid value '7' (expected debug, info, notice, warning or error)");

        {
                _cleanup_config_ struct gw_config c = {};

                key_ok("gateway", "public_config", "bus", NULL, &c);
                assert_int_equal(c.public_config, GW_PUBLIC_CONFIG_BUS);
        }
        {
                _cleanup_config_ struct gw_config c = {};

                key_ok("gateway", "public_config", "file", NULL, &c);
                assert_int_equal(c.public_config, GW_PUBLIC_CONFIG_FILE);
        }
        key_fails("gateway", "public_config", "zbus", NULL,
                  "invalid value 'zbus' (expected file or bus)");

        {
                _cleanup_config_ struct gw_config c = {};

                key_ok("names", "validation", "off", NULL, &c);
                assert_int_equal(c.name_validation, GW_NAME_VALIDATION_OFF);
        }
        {
                _cleanup_config_ struct gw_config c = {};

                key_ok("names", "validation", "BUS", NULL, &c);
                assert_int_equal(c.name_validation, GW_NAME_VALIDATION_BUS);
        }
        key_fails("names", "validation", "no", NULL, "invalid value 'no' (expected bus or off)");

        assert_string_equal(gw_public_config_source_to_string(GW_PUBLIC_CONFIG_FILE), "file");
        assert_string_equal(gw_public_config_source_to_string(GW_PUBLIC_CONFIG_BUS), "bus");
        assert_null(gw_public_config_source_to_string((enum gw_public_config_source)42));
        assert_string_equal(gw_name_validation_to_string(GW_NAME_VALIDATION_BUS), "bus");
        assert_string_equal(gw_name_validation_to_string(GW_NAME_VALIDATION_OFF), "off");
        assert_null(gw_name_validation_to_string((enum gw_name_validation)42));
}

static void test_durations(void **state)
{
        static const struct {
                const char *section, *key, *text;
                unsigned value;
        } cases[] = {
                {"names", "revalidate_interval", "3600", 3600},
                {"names", "revalidate_interval", "1h", 3600},
                {"names", "revalidate_interval", "30m", 1800},
                {"names", "revalidate_interval", "10s", 10},
                {"names", "revalidate_interval", "1 s", 1},
                {"names", "revalidate_interval", "2000ms", 2},
                {"names", "revalidate_interval", "7d", 7 * 86400},
                {"dns", "timeout", "10000", 10000},
                {"dns", "timeout", "250ms", 250},
                {"dns", "timeout", "100", 100},
                {"dns", "timeout", "2s", 2000},
                {"dns", "timeout", "5m", 300000},
                {"bus", "call_timeout", "60s", 60000},
                {"bus", "call_timeout", "1h", 3600000},
                {"bus", "call_timeout", "500", 500},
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_config_ struct gw_config c = {};

                key_ok(cases[i].section, cases[i].key, cases[i].text, NULL, &c);
                if (streq(cases[i].key, "revalidate_interval"))
                        assert_int_equal(c.revalidate_interval_sec, cases[i].value);
                else if (streq(cases[i].key, "timeout"))
                        assert_int_equal(c.resolver_timeout_ms, cases[i].value);
                else
                        assert_int_equal(c.call_timeout_ms, cases[i].value);
        }

        key_fails("names", "revalidate_interval", "1500ms", NULL,
                  "duration '1500ms' is not a whole number of seconds");
        key_fails("names", "revalidate_interval", "0", NULL,
                  "duration '0' is out of range (1s to 7d)");
        key_fails("names", "revalidate_interval", "8d", NULL,
                  "duration '8d' is out of range (1s to 7d)");
        key_fails(
                "names", "revalidate_interval", "1x", NULL,
                "invalid duration '1x' (expected a number with an optional unit ms, s, m, h or d)");
        key_fails(
                "names", "revalidate_interval", "99999999999999999999999x", NULL,
                "invalid duration '99999999999999999999999x' (expected a number with an optional unit ms, s, m, h or d)");
        key_fails(
                "names", "revalidate_interval", "-5", NULL,
                "invalid duration '-5' (expected a number with an optional unit ms, s, m, h or d)");
        key_fails(
                "names", "revalidate_interval", "h", NULL,
                "invalid duration 'h' (expected a number with an optional unit ms, s, m, h or d)");
        key_fails("names", "revalidate_interval", "99999999999999999999999", NULL,
                  "duration '99999999999999999999999' is out of range (1s to 7d)");
        key_fails("dns", "timeout", "99", NULL, "duration '99' is out of range (100ms to 5m)");
        key_fails("dns", "timeout", "301s", NULL, "duration '301s' is out of range (100ms to 5m)");
        key_fails(
                "dns", "timeout", "1.5s", NULL,
                "invalid duration '1.5s' (expected a number with an optional unit ms, s, m, h or d)");
        key_fails("bus", "call_timeout", "2h", NULL, "duration '2h' is out of range (100ms to 1h)");
        key_fails("bus", "call_timeout", "", NULL, "empty value");
}

static void test_sizes(void **state)
{
        static const struct {
                const char *text;
                unsigned value;
        } cases[] = {
                {"4K", 4096},
                {"4096", 4096},
                {"1M", 1024 * 1024},
                {"64M", 64 * 1024 * 1024},
                {"2 M", 2 * 1024 * 1024},
                {"100000", 100000},
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_config_ struct gw_config c = {};

                key_ok("bus", "max_payload", cases[i].text, NULL, &c);
                assert_int_equal(c.max_payload, cases[i].value);
        }
        key_fails("bus", "max_payload", "4095", NULL, "size '4095' is out of range (4K to 64M)");
        key_fails("bus", "max_payload", "65M", NULL, "size '65M' is out of range (4K to 64M)");
        key_fails("bus", "max_payload", "1G", NULL, "size '1G' is out of range (4K to 64M)");
        key_fails("bus", "max_payload", "99999999999999999999G", NULL,
                  "size '99999999999999999999G' is out of range (4K to 64M)");
        key_fails(
                "bus", "max_payload", "1MB", NULL,
                "invalid size '1MB' (expected a number of bytes with an optional suffix K, M or G)");
        key_fails(
                "bus", "max_payload", "1k", NULL,
                "invalid size '1k' (expected a number of bytes with an optional suffix K, M or G)");
        key_fails(
                "bus", "max_payload", "lots", NULL,
                "invalid size 'lots' (expected a number of bytes with an optional suffix K, M or G)");
}

static void test_paths(void **state)
{
        static const struct {
                const char *text, *stored;
        } cases[] = {
                {"/run/netns", "/run/netns"},
                {"/var/run/netns/", "/var/run/netns"},
                {"/tmp/a b//", "/tmp/a b"},
                {"/", "/"},
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_config_ struct gw_config c = {};

                key_ok("namespace", "netns_dir", cases[i].text, NULL, &c);
                assert_string_equal(c.netns_dir, cases[i].stored);
        }
        key_fails("namespace", "netns_dir", "run/netns", NULL,
                  "'run/netns' is not an absolute path");
        key_fails("namespace", "netns_dir", "~/netns", NULL, "'~/netns' is not an absolute path");
        key_fails("namespace", "netns_dir", "", NULL, "empty value");
}

static void test_domain(void **state)
{
        char label64[65], long_name[300];

        {
                _cleanup_config_ struct gw_config c = {};

                key_ok("gateway", "domain", "gw1.example.net", NULL, &c);
                assert_string_equal(c.pc.domain, "gw1.example.net");
        }
        {
                _cleanup_config_ struct gw_config c = {};

                key_ok("gateway", "domain", "a-1.b2.x0-9.example", NULL, &c);
                assert_string_equal(c.pc.domain, "a-1.b2.x0-9.example");
        }
        {
                /* Empty: no domain, name proxies are refused. */
                _cleanup_config_ struct gw_config c = {};

                key_ok("gateway", "domain", "", NULL, &c);
                assert_null(c.pc.domain);
        }
        {
                /* 63-character labels are fine. */
                _cleanup_config_ struct gw_config c = {};

                memset(label64, 'a', 63);
                snprintf(long_name, sizeof(long_name), "%.63s.%.63s.example.net", label64, label64);
                key_ok("gateway", "domain", long_name, NULL, &c);
                assert_string_equal(c.pc.domain, long_name);
        }

        key_fails(
                "gateway", "domain", "GW1.Example.net", NULL,
                "invalid domain 'GW1.Example.net': upper-case letters are not allowed (write 'gw1.example.net')");
        key_fails("gateway", "domain", "gw1.example.net.", NULL,
                  "invalid domain 'gw1.example.net.': empty label");
        key_fails("gateway", "domain", ".example.net", NULL,
                  "invalid domain '.example.net': empty label");
        key_fails("gateway", "domain", "gw1..example.net", NULL,
                  "invalid domain 'gw1..example.net': empty label");
        key_fails("gateway", "domain", "-gw.example.net", NULL,
                  "invalid domain '-gw.example.net': label '-gw' starts or ends with '-'");
        key_fails("gateway", "domain", "gw.example-.net", NULL,
                  "invalid domain 'gw.example-.net': label 'example-' starts or ends with '-'");
        key_fails(
                "gateway", "domain", "gw_1.example.net", NULL,
                "invalid domain 'gw_1.example.net': character '_' is not allowed (use a-z, 0-9 and '-')");
        key_fails(
                "gateway", "domain", "*.example.net", NULL,
                "invalid domain '*.example.net': character '*' is not allowed (use a-z, 0-9 and '-')");
        key_fails(
                "gateway", "domain", "gw\xc3\xa9.net", NULL,
                "invalid domain 'gw\xc3\xa9.net': byte 0xc3 is not allowed (use a-z, 0-9 and '-')");
        key_fails("gateway", "domain", "localhost", NULL,
                  "invalid domain 'localhost': needs at least two labels (like gw1.example.net)");
        key_fails("gateway", "domain", "203.0.113.10", NULL,
                  "invalid domain '203.0.113.10': the last label is all digits");

        memset(label64, 'a', 64);
        label64[64] = '\0';
        {
                _cleanup_free_ char *expected = NULL;

                snprintf(long_name, sizeof(long_name), "%s.net", label64);
                assert_true(asprintf(&expected,
                                     "invalid domain '%s': label '%s' is longer than 63 characters",
                                     long_name, label64) > 0);
                key_fails("gateway", "domain", long_name, NULL, expected);
        }
        /* The 253-character limit cannot be reached from a file: a line holds at most 198
         * bytes (see test_long_lines). */
}

static void test_public_ipv4(void **state)
{
        char buf[INET6_ADDRSTRLEN];
        static const char *const gw = "gateway_ipv4 = 203.0.113.1\npublic_config = file\n";

        {
                _cleanup_config_ struct gw_config c = {};

                key_ok("gateway", "public_ipv4", "203.0.113.10/24", gw, &c);
                assert_true(c.pc.has_ipv4);
                assert_string_equal(ntop4(&c.pc.ipv4, buf), "203.0.113.10");
                assert_int_equal(c.pc.ipv4_prefix, 24);
        }
        {
                /* /32 and /31 have no network/broadcast address to refuse. */
                _cleanup_config_ struct gw_config c = {};

                key_ok("gateway", "public_ipv4", "203.0.113.0/31", gw, &c);
                assert_int_equal(c.pc.ipv4_prefix, 31);
        }
        {
                _cleanup_config_ struct gw_config c = {};

                key_ok("gateway", "public_ipv4", "10.1.2.3/32", gw, &c);
                assert_int_equal(c.pc.ipv4_prefix, 32);
        }
        {
                _cleanup_config_ struct gw_config c = {};

                key_ok("gateway", "public_ipv4", "10.1.2.3/0", gw, &c);
                assert_int_equal(c.pc.ipv4_prefix, 0);
        }

        key_fails("gateway", "public_ipv4", "203.0.113.10", gw,
                  "invalid IPv4 address/prefix '203.0.113.10': missing '/<prefix length>'");
        key_fails(
                "gateway", "public_ipv4", "203.0.113.10/33", gw,
                "invalid IPv4 address/prefix '203.0.113.10/33': prefix length must be a number from 0 to 32");
        key_fails(
                "gateway", "public_ipv4", "203.0.113.10/", gw,
                "invalid IPv4 address/prefix '203.0.113.10/': prefix length must be a number from 0 to 32");
        key_fails(
                "gateway", "public_ipv4", "203.0.113.10/+4", gw,
                "invalid IPv4 address/prefix '203.0.113.10/+4': prefix length must be a number from 0 to 32");
        key_fails(
                "gateway", "public_ipv4", "203.0.113.10/24x", gw,
                "invalid IPv4 address/prefix '203.0.113.10/24x': prefix length must be a number from 0 to 32");
        key_fails("gateway", "public_ipv4", "203.0.113/24", gw,
                  "invalid IPv4 address/prefix '203.0.113/24': '203.0.113' is not an IPv4 address");
        key_fails(
                "gateway", "public_ipv4", "203.0.113.256/24", gw,
                "invalid IPv4 address/prefix '203.0.113.256/24': '203.0.113.256' is not an IPv4 address");
        key_fails(
                "gateway", "public_ipv4", "2001:db8::1/64", gw,
                "invalid IPv4 address/prefix '2001:db8::1/64': '2001:db8::1' is not an IPv4 address");
        key_fails(
                "gateway", "public_ipv4", "127.0.0.1/8", gw,
                "invalid IPv4 address/prefix '127.0.0.1/8': 127.0.0.1 is not a usable unicast address");
        key_fails(
                "gateway", "public_ipv4", "224.0.0.5/24", gw,
                "invalid IPv4 address/prefix '224.0.0.5/24': 224.0.0.5 is not a usable unicast address");
        key_fails(
                "gateway", "public_ipv4", "0.0.0.0/0", gw,
                "invalid IPv4 address/prefix '0.0.0.0/0': 0.0.0.0 is not a usable unicast address");
        key_fails(
                "gateway", "public_ipv4", "203.0.113.0/24", gw,
                "invalid IPv4 address/prefix '203.0.113.0/24': that is the subnet address of 203.0.113.0/24, not an address of this node");
        key_fails(
                "gateway", "public_ipv4", "203.0.113.255/24", gw,
                "invalid IPv4 address/prefix '203.0.113.255/24': that is the broadcast address of 203.0.113.0/24");
        key_fails("gateway", "public_ipv4", "", gw, "empty value");
}

static void test_gateway_ipv4(void **state)
{
        char buf[INET6_ADDRSTRLEN];
        static const char *const pub = "public_ipv4 = 203.0.113.10/24\npublic_config = file\n";

        {
                _cleanup_config_ struct gw_config c = {};

                key_ok("gateway", "gateway_ipv4", "203.0.113.1", pub, &c);
                assert_true(c.pc.has_gw4);
                assert_string_equal(ntop4(&c.pc.gw4, buf), "203.0.113.1");
        }
        key_fails("gateway", "gateway_ipv4", "203.0.113.1/24", pub,
                  "invalid IPv4 address '203.0.113.1/24'");
        key_fails("gateway", "gateway_ipv4", "gw.example.net", pub,
                  "invalid IPv4 address 'gw.example.net'");
        key_fails("gateway", "gateway_ipv4", "255.255.255.255", pub,
                  "255.255.255.255 is not a usable unicast address");
        key_fails("gateway", "gateway_ipv4", "fe80::1", pub, "invalid IPv4 address 'fe80::1'");
}

static void test_public_ipv6(void **state)
{
        char buf[INET6_ADDRSTRLEN];
        static const char *const gw = "gateway_ipv6 = fe80::1\npublic_config = file\n";

        {
                _cleanup_config_ struct gw_config c = {};

                key_ok("gateway", "public_ipv6", "2001:db8:1::10/64", gw, &c);
                assert_true(c.pc.has_ipv6);
                assert_string_equal(ntop6(&c.pc.ipv6, buf), "2001:db8:1::10");
                assert_int_equal(c.pc.ipv6_prefix, 64);
        }
        {
                _cleanup_config_ struct gw_config c = {};

                key_ok("gateway", "public_ipv6", "2001:db8::/128", gw, &c);
                assert_int_equal(c.pc.ipv6_prefix, 128);
        }
        key_fails("gateway", "public_ipv6", "2001:db8:1::10", gw,
                  "invalid IPv6 address/prefix '2001:db8:1::10': missing '/<prefix length>'");
        key_fails(
                "gateway", "public_ipv6", "2001:db8:1::10/129", gw,
                "invalid IPv6 address/prefix '2001:db8:1::10/129': prefix length must be a number from 0 to 128");
        key_fails(
                "gateway", "public_ipv6", "2001:db8:1::g/64", gw,
                "invalid IPv6 address/prefix '2001:db8:1::g/64': '2001:db8:1::g' is not an IPv6 address");
        key_fails(
                "gateway", "public_ipv6", "203.0.113.10/24", gw,
                "invalid IPv6 address/prefix '203.0.113.10/24': '203.0.113.10' is not an IPv6 address");
        key_fails(
                "gateway", "public_ipv6", "fe80::10/64", gw,
                "invalid IPv6 address/prefix 'fe80::10/64': fe80::10 is not a usable global unicast address");
        key_fails(
                "gateway", "public_ipv6", "::1/128", gw,
                "invalid IPv6 address/prefix '::1/128': ::1 is not a usable global unicast address");
        key_fails(
                "gateway", "public_ipv6", "ff02::1/64", gw,
                "invalid IPv6 address/prefix 'ff02::1/64': ff02::1 is not a usable global unicast address");
        key_fails(
                "gateway", "public_ipv6", "::ffff:203.0.113.10/120", gw,
                "invalid IPv6 address/prefix '::ffff:203.0.113.10/120': ::ffff:203.0.113.10 is not a usable global unicast address");
        key_fails(
                "gateway", "public_ipv6", "2001:db8:1::/64", gw,
                "invalid IPv6 address/prefix '2001:db8:1::/64': that is the subnet address of 2001:db8:1::/64, not an address of this node");
}

static void test_gateway_ipv6(void **state)
{
        char buf[INET6_ADDRSTRLEN];
        static const char *const pub = "public_ipv6 = 2001:db8:1::10/64\npublic_config = file\n";

        {
                _cleanup_config_ struct gw_config c = {};

                key_ok("gateway", "gateway_ipv6", "2001:db8:1::1", pub, &c);
                assert_true(c.pc.has_gw6);
                assert_string_equal(ntop6(&c.pc.gw6, buf), "2001:db8:1::1");
        }
        {
                _cleanup_config_ struct gw_config c = {};

                key_ok("gateway", "gateway_ipv6", "fe80::1", pub, &c);
                assert_string_equal(ntop6(&c.pc.gw6, buf), "fe80::1");
        }
        key_fails("gateway", "gateway_ipv6", "fe80::1%eth0", pub,
                  "invalid IPv6 address 'fe80::1%eth0'");
        key_fails("gateway", "gateway_ipv6", "203.0.113.1", pub,
                  "invalid IPv6 address '203.0.113.1'");
        key_fails("gateway", "gateway_ipv6", "::", pub, ":: is not a usable unicast address");
        key_fails("gateway", "gateway_ipv6", "ff02::2", pub,
                  "ff02::2 is not a usable unicast address");
}

static void test_acme(void **state)
{
        struct gw_config c;
        char ca[] = "/tmp/gw-test-ca.XXXXXX";
        int fd = mkstemp(ca);

        assert_true(fd >= 0);
        close(fd);

        key_ok("acme", "directory", "https://127.0.0.1:14000/dir", NULL, &c);
        assert_string_equal(c.acme_directory, "https://127.0.0.1:14000/dir");
        gw_config_done(&c);
        key_ok("acme", "enabled", "no", NULL, &c);
        assert_false(c.acme_enabled);
        gw_config_done(&c);
        key_ok("acme", "email", "farmer@example.net", NULL, &c);
        assert_string_equal(c.acme_email, "farmer@example.net");
        gw_config_done(&c);
        key_ok("acme", "email", "", NULL, &c);
        assert_null(c.acme_email);
        gw_config_done(&c);
        key_ok("acme", "ca_file", ca, NULL, &c);
        assert_string_equal(c.acme_ca_file, ca);
        gw_config_done(&c);
        key_ok("acme", "profile", "shortlived", NULL, &c);
        assert_string_equal(c.acme_profile, "shortlived");
        gw_config_done(&c);
        key_ok("dns", "listen_port", "5353", NULL, &c);
        assert_int_equal(c.dns_listen_port, 5353);
        gw_config_done(&c);
        key_ok("dns", "listen_port", "0", NULL, &c);
        assert_int_equal(c.dns_listen_port, 0);
        gw_config_done(&c);

        key_fails("acme", "directory", "http://acme.example/dir", NULL,
                  "'http://acme.example/dir' is not an https:// URL");
        key_fails("acme", "directory", "https:///dir", NULL, "'https:///dir' has no host");
        key_fails("acme", "directory", "https://a b/", NULL,
                  "URL with a space or a non-ASCII byte");
        key_fails("acme", "directory", "", NULL, "empty value");
        key_fails("acme", "email", "farmer", NULL, "invalid e-mail address 'farmer'");
        key_fails("acme", "email", "a@b@c", NULL, "invalid e-mail address 'a@b@c'");
        key_fails("acme", "email", "@b", NULL, "invalid e-mail address '@b'");
        key_fails("acme", "email", "a<b>@c", NULL, "invalid e-mail address 'a<b>@c'");
        key_fails("acme", "ca_file", "relative.pem", NULL,
                  "'relative.pem' is not an absolute path");
        key_fails("acme", "ca_file", "/nonexistent/ca.pem", NULL,
                  "cannot read '/nonexistent/ca.pem': No such file or directory");
        key_fails("acme", "ca_file", "/tmp", NULL, "'/tmp' is not a regular file");
        key_fails("acme", "profile", "short lived", NULL,
                  "invalid profile 'short lived': use letters, digits, '_', '.' and '-'");
        key_fails("acme", "enabled", "maybe", NULL,
                  "invalid boolean 'maybe' (expected yes/no, true/false, on/off or 1/0)");
        key_fails("dns", "listen_port", "65536", NULL, "65536 is out of range (0 to 65535)");
        unlink(ca);
}

static void test_resolver(void **state)
{
        static const struct {
                const char *text, *stored;
        } cases[] = {
                {"8.8.8.8:53", "8.8.8.8:53"},
                {"8.8.8.8", "8.8.8.8:53"},
                {"1.1.1.1:5353", "1.1.1.1:5353"},
                {"127.0.0.53", "127.0.0.53:53"},
                {"[2001:4860:4860::8888]:53", "[2001:4860:4860::8888]:53"},
                {"[2001:4860:4860:0::8888]", "[2001:4860:4860::8888]:53"},
                {"2001:4860:4860::8888", "[2001:4860:4860::8888]:53"},
                {"::1", "[::1]:53"},
                {"[::1]:65535", "[::1]:65535"},
        };
        static const char *const syntax =
                "expected IPv4, IPv4:port, IPv6 or [IPv6]:port (host names are not allowed)";

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_config_ struct gw_config c = {};

                key_ok("dns", "resolver", cases[i].text, NULL, &c);
                assert_string_equal(c.resolver, cases[i].stored);
        }

        static const char *const bad_syntax[] = {
                "dns.google", "dns.google:53", "[8.8.8.8]:53",   "[::1",
                "[::1]53",    "8.8.8:53",      "8.8.8.8:53:53x", "[fe80::1%eth0]:53",
        };
        for (size_t i = 0; i < ELEMENTSOF(bad_syntax); i++) {
                _cleanup_free_ char *reason = NULL;

                assert_true(asprintf(&reason, "invalid resolver '%s': %s", bad_syntax[i], syntax) >
                            0);
                key_fails("dns", "resolver", bad_syntax[i], NULL, reason);
        }
        key_fails("dns", "resolver", "8.8.8.8:0", NULL,
                  "invalid resolver '8.8.8.8:0': port must be a number from 1 to 65535");
        key_fails("dns", "resolver", "8.8.8.8:65536", NULL,
                  "invalid resolver '8.8.8.8:65536': port must be a number from 1 to 65535");
        key_fails("dns", "resolver", "8.8.8.8:", NULL,
                  "invalid resolver '8.8.8.8:': port must be a number from 1 to 65535");
        key_fails("dns", "resolver", "[::1]:dns", NULL,
                  "invalid resolver '[::1]:dns': port must be a number from 1 to 65535");
        key_fails("dns", "resolver", "0.0.0.0:53", NULL,
                  "invalid resolver '0.0.0.0:53': 0.0.0.0 is not a usable unicast address");
        key_fails("dns", "resolver", "[ff02::1]:53", NULL,
                  "invalid resolver '[ff02::1]:53': ff02::1 is not a usable unicast address");
        key_fails("dns", "resolver", "", NULL, "empty value");
}

/* ---- structure: sections, keys, syntax -------------------------------------------------- */

#define NS_OK                                                                                      \
        "[namespace]\nname = gw0\npublic_link = veth:gw-pub\nygg_link = macvlan:eth1\n"            \
        "ygg_address = 300:1:2:3::10/64\nygg_router = 300:1:2:3::1\n"

static void test_namespace(void **state)
{
        char addr[INET6_ADDRSTRLEN];

        {
                _cleanup_config_ struct gw_config c;
                load_ok(NS_OK, &c);
                assert_string_equal(c.ns_name, "gw0");
                assert_string_equal(c.ns_public_link, "veth:gw-pub");
                assert_string_equal(c.overlays[GW_OVERLAY_YGG].link, "macvlan:eth1");
                assert_true(c.overlays[GW_OVERLAY_YGG].has_address);
                assert_int_equal(c.overlays[GW_OVERLAY_YGG].prefix, 64);
                inet_ntop(AF_INET6, &c.overlays[GW_OVERLAY_YGG].router, addr, sizeof(addr));
                assert_string_equal(addr, "300:1:2:3::1");
                /* Mycelium's keys are absent: it is not there. */
                assert_null(c.overlays[GW_OVERLAY_MYCELIUM].link);
                assert_false(c.overlays[GW_OVERLAY_MYCELIUM].has_address);
                assert_false(c.overlays[GW_OVERLAY_MYCELIUM].has_router);
        }
        {
                /* Not managed unless configured; the name defaults to "gateway". */
                _cleanup_config_ struct gw_config c;
                load_ok("", &c);
                assert_null(c.ns_public_link);
                assert_string_equal(c.ns_name, "gateway");
        }
        load_fails(
                "[namespace]\npublic_link = tun:x\n",
                "t.conf:2: [namespace] public_link: invalid link 'tun:x': expected veth:<name>, macvlan:<parent> or move:<ifname>");
        load_fails(
                "[namespace]\npublic_link = veth:abcdefghijklmnop\n",
                "t.conf:2: [namespace] public_link: invalid link 'veth:abcdefghijklmnop': interface names are 1 to 15 characters");
        load_fails(
                "[namespace]\nname = ../x\n",
                "t.conf:2: [namespace] name: invalid namespace name '../x': use letters, digits, '_', '.' and '-'");
        load_fails(
                "[namespace]\nygg_address = 2001:db8::1/64\n",
                "t.conf:2: [namespace] ygg_address: '2001:db8::1/64' is not a Yggdrasil address (200::/7)");
        load_fails("[namespace]\nygg_router = 10.0.0.1\n",
                   "t.conf:2: [namespace] ygg_router: invalid IPv6 address '10.0.0.1'");
        /* Every missing key is named. */
        load_fails("[namespace]\npublic_link = veth:gw-pub\n",
                   "t.conf: [namespace] ygg_link: required when public_link is set\n"
                   "t.conf: [namespace] ygg_address: required when public_link is set\n"
                   "t.conf: [namespace] ygg_router: required when public_link is set");
        load_fails(
                "[namespace]\nygg_router = 300::1\n",
                "t.conf: [namespace] public_link: required when any of ygg_link, ygg_address, ygg_router is set");
        load_fails("[namespace]\npublic_link = veth:a\nygg_link = move:a\n"
                   "ygg_address = 300::10/64\nygg_router = 300::1\n",
                   "t.conf:3: [namespace] ygg_link: uses the same interface as public_link");
}

#define NS_MYCELIUM                                                                                \
        "mycelium_link = veth:gw-myc\nmycelium_address = 4a1:b2c3:d4e5:f6a7::10/64\n"              \
        "mycelium_router = 4a1:b2c3:d4e5:f6a7::1\n"

/* Issue 12: Mycelium beside Yggdrasil, with the same rules. */
static void test_issue_12_mycelium(void **state)
{
        char addr[INET6_ADDRSTRLEN];

        {
                _cleanup_config_ struct gw_config c;
                const struct gw_overlay_config *m;

                load_ok(NS_OK NS_MYCELIUM, &c);
                m = &c.overlays[GW_OVERLAY_MYCELIUM];
                assert_string_equal(m->link, "veth:gw-myc");
                assert_true(m->has_address && m->has_router);
                assert_int_equal(m->prefix, 64);
                inet_ntop(AF_INET6, &m->address, addr, sizeof(addr));
                assert_string_equal(addr, "4a1:b2c3:d4e5:f6a7::10");
                inet_ntop(AF_INET6, &m->router, addr, sizeof(addr));
                assert_string_equal(addr, "4a1:b2c3:d4e5:f6a7::1");
                /* Yggdrasil is unchanged beside it. */
                assert_string_equal(c.overlays[GW_OVERLAY_YGG].link, "macvlan:eth1");
        }
        {
                /* 5xx is in 400::/7 too; a link-local router is fine. */
                _cleanup_config_ struct gw_config c;

                load_ok(NS_OK "mycelium_link = move:eth2\nmycelium_address = 5ff::10/64\n"
                              "mycelium_router = fe80::1\n",
                        &c);
                assert_string_equal(c.overlays[GW_OVERLAY_MYCELIUM].link, "move:eth2");
        }
        load_fails(
                "[namespace]\nmycelium_address = 300:1:2:3::10/64\n",
                "t.conf:2: [namespace] mycelium_address: '300:1:2:3::10/64' is not a Mycelium address (400::/7)");
        load_fails(
                "[namespace]\nmycelium_address = 600::10/64\n",
                "t.conf:2: [namespace] mycelium_address: '600::10/64' is not a Mycelium address (400::/7)");
        load_fails(
                "[namespace]\nmycelium_router = 2001:db8::1\n",
                "t.conf:2: [namespace] mycelium_router: '2001:db8::1' is neither a Mycelium (400::/7) nor a link-local address");
        load_fails(
                "[namespace]\nmycelium_link = tun:x\n",
                "t.conf:2: [namespace] mycelium_link: invalid link 'tun:x': expected veth:<name>, macvlan:<parent> or move:<ifname>");
        /* And Yggdrasil's address is not a Mycelium one, nor the reverse. */
        load_fails(
                "[namespace]\nygg_address = 4a1::10/64\n",
                "t.conf:2: [namespace] ygg_address: '4a1::10/64' is not a Yggdrasil address (200::/7)");
        /* Optional, but all or nothing. */
        load_fails(NS_OK "mycelium_link = veth:gw-myc\n",
                   "t.conf: [namespace] mycelium_address: required when mycelium_link is set\n"
                   "t.conf: [namespace] mycelium_router: required when mycelium_link is set");
        load_fails(NS_OK "mycelium_router = 4a1::1\n",
                   "t.conf: [namespace] mycelium_link: required when mycelium_router is set\n"
                   "t.conf: [namespace] mycelium_address: required when mycelium_router is set");
        load_fails(
                "[namespace]\n" NS_MYCELIUM,
                "t.conf: [namespace] public_link: required when any of mycelium_link, mycelium_address, mycelium_router is set");
        /* Yggdrasil stays required. */
        load_fails("[namespace]\npublic_link = veth:gw-pub\n" NS_MYCELIUM,
                   "t.conf: [namespace] ygg_link: required when public_link is set\n"
                   "t.conf: [namespace] ygg_address: required when public_link is set\n"
                   "t.conf: [namespace] ygg_router: required when public_link is set");
        load_fails(NS_OK "mycelium_link = move:gw-pub\nmycelium_address = 4a1::10/64\n"
                         "mycelium_router = 4a1::1\n",
                   "t.conf:7: [namespace] mycelium_link: uses the same interface as public_link");
        load_fails(NS_OK "mycelium_link = veth:eth1\nmycelium_address = 4a1::10/64\n"
                         "mycelium_router = 4a1::1\n",
                   "t.conf:7: [namespace] mycelium_link: uses the same interface as ygg_link");
        load_fails(NS_OK "mycelium_link = veth:m\nmycelium_address = 4a1::10/64\n"
                         "mycelium_router = 4a1::10\n",
                   "t.conf:9: [namespace] mycelium_router: is the gateway's own mycelium_address");
}

static void test_proxy(void **state)
{
        static const struct {
                const char *value;
                const char *text;
        } addresses[] = {
                {"::", "::"},   {"0.0.0.0", "0.0.0.0"},           {"127.0.0.1", "127.0.0.1"},
                {"::1", "::1"}, {"2001:DB8::10", "2001:db8::10"}, {"203.0.113.10", "203.0.113.10"},
        };

        for (size_t i = 0; i < ELEMENTSOF(addresses); i++) {
                _cleanup_config_ struct gw_config c = {};

                key_ok("proxy", "address", addresses[i].value, NULL, &c);
                assert_string_equal(addr_str(&c.proxy_address, c.proxy_address_len),
                                    addresses[i].text);
        }
        {
                _cleanup_config_ struct gw_config c = {};

                load_ok("[proxy]\nhttp_port = 0\nhttps_port = 65535\nworkers = 1024\n", &c);
                assert_int_equal(c.http_port, 0);
                assert_int_equal(c.https_port, 65535);
                assert_int_equal(c.proxy_workers, 1024);
        }
        {
                /* Both off: only Metrics and the bus. */
                _cleanup_config_ struct gw_config c = {};

                load_ok("[proxy]\nhttp_port = 0\nhttps_port = 0\n", &c);
                assert_int_equal(c.http_port, 0);
                assert_int_equal(c.https_port, 0);
        }
        key_fails("proxy", "http_port", "65536", NULL, "65536 is out of range (0 to 65535)");
        key_fails("proxy", "https_port", "-1", NULL, "invalid number '-1' (expected 0 to 65535)");
        key_fails("proxy", "https_port", "443s", NULL,
                  "invalid number '443s' (expected 0 to 65535)");
        key_fails("proxy", "https_port", "99999999999999999999999", NULL,
                  "99999999999999999999999 is out of range (0 to 65535)");
        key_fails("proxy", "workers", "1025", NULL, "1025 is out of range (0 to 1024)");
        key_fails("proxy", "workers", "two", NULL, "invalid number 'two' (expected 0 to 1024)");
        key_fails("proxy", "http_plain", "sometimes", NULL,
                  "invalid boolean 'sometimes' (expected yes/no, true/false, on/off or 1/0)");
        key_fails(
                "proxy", "address", "[::]", NULL,
                "invalid address '[::]' (expected an IPv4 or IPv6 address such as 0.0.0.0, :: or 203.0.113.10, without port or brackets)");
        key_fails(
                "proxy", "address", "127.0.0.1:443", NULL,
                "invalid address '127.0.0.1:443' (expected an IPv4 or IPv6 address such as 0.0.0.0, :: or 203.0.113.10, without port or brackets)");
        key_fails(
                "proxy", "address", "localhost", NULL,
                "invalid address 'localhost' (expected an IPv4 or IPv6 address such as 0.0.0.0, :: or 203.0.113.10, without port or brackets)");
        key_fails(
                "proxy", "address", "fe80::1%eth0", NULL,
                "invalid address 'fe80::1%eth0' (expected an IPv4 or IPv6 address such as 0.0.0.0, :: or 203.0.113.10, without port or brackets)");
        key_fails("proxy", "address", "ff02::1", NULL, "ff02::1 is a multicast address");
        key_fails("proxy", "address", "224.0.0.1", NULL, "224.0.0.1 is a multicast address");
        key_fails("proxy", "address", "", NULL, "empty value");
        /* The two ports must differ; the key set last is named. */
        load_fails("[proxy]\nhttp_port = 443\n",
                   "t.conf:2: [proxy] http_port: is the same port as https_port (443)");
        load_fails("[proxy]\nhttp_port = 8000\nhttps_port = 8000\n",
                   "t.conf:3: [proxy] https_port: is the same port as http_port (8000)");
        load_fails("[proxy]\nhttps_port = 8000\nhttp_port = 8000\n",
                   "t.conf:3: [proxy] http_port: is the same port as https_port (8000)");
        load_fails("[proxy]\nhttps_port = 80\n",
                   "t.conf:2: [proxy] https_port: is the same port as http_port (80)");
}

/* Issue 11: [limits], each key with its default, bounds and "off". */
static void test_issue_11_limits(void **state)
{
        {
                _cleanup_config_ struct gw_config c = {};

                load_ok("", &c);
                assert_int_equal(c.limits.handshake_timeout_ms, 10000);
                assert_int_equal(c.limits.request_head_timeout_ms, 30000);
                assert_int_equal(c.limits.body_timeout_ms, 30000);
                assert_int_equal(c.limits.body_min_rate, 256);
                assert_int_equal(c.limits.send_timeout_ms, 60000);
                assert_int_equal(c.limits.send_min_rate, 256);
                assert_int_equal(c.limits.keepalive_timeout_ms, 60000);
                assert_int_equal(c.limits.connect_timeout_ms, 5000);
                assert_int_equal(c.limits.response_timeout_ms, 60000);
                assert_int_equal(c.limits.tunnel_idle_timeout_ms, 300000);
                assert_int_equal(c.limits.drain_timeout_ms, 30000);
                assert_int_equal(c.limits.max_head_size, 16384);
                assert_int_equal(c.limits.max_headers, 100);
                assert_int_equal(c.limits.max_connections, 0);
                assert_int_equal(c.limits.connections_per_client, 1024);
                assert_int_equal(c.limits.new_connections_per_sec, 256);
                assert_int_equal(c.limits.pool_size, 0);
        }
        {
                _cleanup_config_ struct gw_config c = {};

                load_ok("[limits]\n"
                        "handshake_timeout = 2s\n"
                        "request_head_timeout = 1500ms\n"
                        "body_timeout = 3s\n"
                        "body_min_rate = 1K\n"
                        "send_timeout = 4s\n"
                        "send_min_rate = 0\n"
                        "keepalive_timeout = 5s\n"
                        "upstream_connect_timeout = 700ms\n"
                        "upstream_response_timeout = 2m\n"
                        "tunnel_idle_timeout = 1h\n"
                        "drain_timeout = 45s\n"
                        "max_head_size = 32K\n"
                        "max_headers = 50\n"
                        "max_connections = 5000\n"
                        "connections_per_client = 0\n"
                        "new_connections_per_second = 10\n"
                        "pool_size = 128\n",
                        &c);
                assert_int_equal(c.limits.handshake_timeout_ms, 2000);
                assert_int_equal(c.limits.request_head_timeout_ms, 1500);
                assert_int_equal(c.limits.body_timeout_ms, 3000);
                assert_int_equal(c.limits.body_min_rate, 1024);
                assert_int_equal(c.limits.send_timeout_ms, 4000);
                assert_int_equal(c.limits.send_min_rate, 0);
                assert_int_equal(c.limits.keepalive_timeout_ms, 5000);
                assert_int_equal(c.limits.connect_timeout_ms, 700);
                assert_int_equal(c.limits.response_timeout_ms, 120000);
                assert_int_equal(c.limits.tunnel_idle_timeout_ms, 3600000);
                assert_int_equal(c.limits.drain_timeout_ms, 45000);
                assert_int_equal(c.limits.max_head_size, 32768);
                assert_int_equal(c.limits.max_headers, 50);
                assert_int_equal(c.limits.max_connections, 5000);
                assert_int_equal(c.limits.connections_per_client, 0);
                assert_int_equal(c.limits.new_connections_per_sec, 10);
                assert_int_equal(c.limits.pool_size, 128);
        }
        key_fails("limits", "handshake_timeout", "50ms", NULL,
                  "duration '50ms' is out of range (100ms to 10m)");
        key_fails("limits", "handshake_timeout", "soon", NULL,
                  "invalid duration 'soon' (expected a number with an optional unit ms, s, m, h or "
                  "d)");
        key_fails("limits", "request_head_timeout", "2h", NULL,
                  "duration '2h' is out of range (100ms to 1h)");
        key_fails("limits", "upstream_response_timeout", "2d", NULL,
                  "duration '2d' is out of range (100ms to 1d)");
        key_fails("limits", "drain_timeout", "0", NULL,
                  "duration '0' is out of range (100ms to 1h)");
        key_fails("limits", "max_head_size", "512", NULL, "size '512' is out of range (1K to 1M)");
        key_fails("limits", "max_head_size", "2M", NULL, "size '2M' is out of range (1K to 1M)");
        key_fails("limits", "body_min_rate", "fast", NULL,
                  "invalid size 'fast' (expected a number of bytes with an optional suffix K, M or "
                  "G)");
        key_fails("limits", "max_headers", "0", NULL, "0 is out of range (1 to 4096)");
        key_fails("limits", "max_headers", "5000", NULL, "5000 is out of range (1 to 4096)");
        key_fails("limits", "connections_per_client", "-1", NULL,
                  "invalid number '-1' (expected 0 to 1000000)");
        key_fails("limits", "new_connections_per_second", "1000001", NULL,
                  "1000001 is out of range (0 to 1000000)");
        key_fails("limits", "pool_size", "65537", NULL, "65537 is out of range (0 to 65536)");
        key_fails("limits", "max_connections", "many", NULL,
                  "invalid number 'many' (expected 0 to 100000000)");
        /* Unknown keys get a suggestion; several errors are all reported. */
        load_fails("[limits]\nhandshake_timeot = 1s\nmax_headers = 0\n",
                   "t.conf:2: [limits] handshake_timeot: unknown key (did you mean "
                   "'handshake_timeout'?)\n"
                   "t.conf:3: [limits] max_headers: 0 is out of range (1 to 4096)");
}

static void test_metrics(void **state)
{
        static const struct {
                const char *value;
                const char *text;
        } ok[] = {
                {"127.0.0.1:8082", "127.0.0.1:8082"},
                {"0.0.0.0:1", "0.0.0.0:1"},
                {"[::1]:65535", "[::1]:65535"},
                {"[::]:9100", "[::]:9100"},
                {"[2001:DB8::1]:9100", "[2001:db8::1]:9100"},
                {"", "off"},
        };
        static const char *const bad[] = {
                "127.0.0.1",    "::1:8082",       "[::1]", "[::1]9100", "localhost:8082",
                "1.2.3.4:80:1", "[127.0.0.1]:80", "::1",   ":8082",     "[]:80",
        };

        for (size_t i = 0; i < ELEMENTSOF(ok); i++) {
                _cleanup_config_ struct gw_config c = {};

                key_ok("metrics", "listen", ok[i].value, NULL, &c);
                assert_string_equal(addr_str(&c.metrics_listen, c.metrics_listen_len), ok[i].text);
        }
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                _cleanup_free_ char *reason = NULL;

                assert_true(
                        asprintf(
                                &reason,
                                "invalid listen address '%s' (expected IPv4:port or [IPv6]:port, or empty for off)",
                                bad[i]) > 0);
                key_fails("metrics", "listen", bad[i], NULL, reason);
        }
        key_fails("metrics", "listen", "127.0.0.1:0", NULL,
                  "invalid listen address '127.0.0.1:0': port must be a number from 1 to 65535");
        key_fails("metrics", "listen", "[::1]:65536", NULL,
                  "invalid listen address '[::1]:65536': port must be a number from 1 to 65535");
        key_fails("metrics", "listen", "127.0.0.1:http", NULL,
                  "invalid listen address '127.0.0.1:http': port must be a number from 1 to 65535");
        key_fails("metrics", "listen", "239.1.1.1:80", NULL,
                  "invalid listen address '239.1.1.1:80': 239.1.1.1 is a multicast address");
}

/* Issue 11: [log] access = <path>|journal|stderr (empty: off), access_query. */
static void test_access_log(void **state)
{
        char dir[] = "/tmp/test-config-XXXXXX", path[64], reason[160];

        assert_non_null(mkdtemp(dir));
        {
                _cleanup_config_ struct gw_config c = {};

                load_ok("", &c);
                assert_null(c.log_access);
                assert_false(c.log_access_query);
        }
        static const struct {
                const char *value, *stored;
        } ok[] = {
                {"stderr", "stderr"},   {"STDERR", "stderr"}, {"journal", "journal"},
                {"Journal", "journal"}, {"/x.log", "/x.log"}, {"", NULL},
        };
        for (size_t i = 0; i < ELEMENTSOF(ok); i++) {
                _cleanup_config_ struct gw_config c = {};

                key_ok("log", "access", ok[i].value, "access_query = yes\n", &c);
                if (ok[i].stored)
                        assert_string_equal(c.log_access, ok[i].stored);
                else
                        assert_null(c.log_access);
                assert_true(c.log_access_query);
        }
        {
                _cleanup_config_ struct gw_config c = {};

                /* A file that does not exist yet, in a directory that does. */
                snprintf(path, sizeof(path), "%s/access.log", dir);
                key_ok("log", "access", path, "access_query = no\n", &c);
                assert_string_equal(c.log_access, path);
                assert_false(c.log_access_query);
        }
        key_fails("log", "access", "access.log", NULL,
                  "'access.log' is neither stderr, journal nor an absolute path");
        key_fails("log", "access", "syslog", NULL,
                  "'syslog' is neither stderr, journal nor an absolute path");
        key_fails("log", "access", "/", NULL, "'/' is a directory");
        snprintf(reason, sizeof(reason), "'%s' is a directory", dir);
        key_fails("log", "access", dir, NULL, reason);
        snprintf(path, sizeof(path), "%s/", dir);
        snprintf(reason, sizeof(reason), "'%s' is a directory", path);
        key_fails("log", "access", path, NULL, reason);
        snprintf(path, sizeof(path), "%s/no/access.log", dir);
        snprintf(reason, sizeof(reason), "directory '%s/no' of '%s' does not exist", dir, path);
        key_fails("log", "access", path, NULL, reason);
        key_fails("log", "access_query", "sometimes", NULL,
                  "invalid boolean 'sometimes' (expected yes/no, true/false, on/off or 1/0)");
        assert_int_equal(rmdir(dir), 0);
}

static void test_unknown_section(void **state)
{
        /* Its keys are not reported one by one. */
        load_fails(
                "[gateway]\nenabled = no\n[proxies]\nlisten = 443\nport = 80\n",
                "t.conf:3: [proxies]: unknown section (expected gateway, names, dns, acme, bus, namespace, proxy, limits, metrics or log)");
        load_fails(
                "[gateway]\nenabled = no\n[cache]\nsize = 1\n",
                "t.conf:3: [cache]: unknown section (expected gateway, names, dns, acme, bus, namespace, proxy, limits, metrics or log)");
        /* Even without keys in it. */
        load_fails("[gateway]\nenabled = no\n\n[Gateway]\n",
                   "t.conf:4: [Gateway]: unknown section (did you mean [gateway]?)");
        load_fails(
                "[]\n",
                "t.conf:1: []: unknown section (expected gateway, names, dns, acme, bus, namespace, proxy, limits, metrics or log)");
}

static void test_unknown_key(void **state)
{
        load_fails("[gateway]\nenabled = no\nflavour = vanilla\n",
                   "t.conf:3: [gateway] flavour: unknown key");
        load_fails("[gateway]\nenabled = no\nenable = yes\n",
                   "t.conf:3: [gateway] enable: unknown key (did you mean 'enabled'?)");
        /* Keys belong to one section. */
        load_fails("[dns]\ndomain = gw1.example.net\n",
                   "t.conf:2: [dns] domain: unknown key (did you mean 'domain' in [gateway]?)");
        /* Key names are case-sensitive. */
        load_fails("[log]\nLevel = info\n",
                   "t.conf:2: [log] Level: unknown key (did you mean 'level'?)");
}

static void test_duplicate_key(void **state)
{
        load_fails("[gateway]\nenabled = no\n; again\nenabled = no\n",
                   "t.conf:4: [gateway] enabled: duplicate key (first set on line 2)");
        /* Across a repeated section header too (repeating a header is allowed). */
        load_fails("[dns]\nresolver = 1.1.1.1\n[log]\nlevel = info\n[dns]\nresolver = 8.8.8.8\n",
                   "t.conf:6: [dns] resolver: duplicate key (first set on line 2)");
        {
                _cleanup_config_ struct gw_config c = {};

                load_ok("[dns]\nresolver = 1.1.1.1\n[log]\nlevel = info\n[dns]\ntimeout = 1s\n",
                        &c);
                assert_string_equal(c.resolver, "1.1.1.1:53");
                assert_int_equal(c.resolver_timeout_ms, 1000);
        }
}

static void test_syntax_errors(void **state)
{
        load_fails(
                "enabled = yes\n[gateway]\n",
                "t.conf:1: enabled: key outside of any section (add a section header such as [gateway] above it)");
        load_fails("[gateway\nenabled = yes\n",
                   "t.conf:1: syntax error: section header without closing ']'");
        load_fails("[gateway ; comment]\n",
                   "t.conf:1: syntax error: section header without closing ']'");
        load_fails("[gateway] enabled = yes\n",
                   "t.conf:1: syntax error: text after the section header's ']'");
        load_fails("[gateway]\nenabled yes\n", "t.conf:2: syntax error: expected 'key = value'");
        load_fails("[gateway]\nenabled ;= yes\n", "t.conf:2: syntax error: expected 'key = value'");
        load_fails("[gateway]\n= yes\n",
                   "t.conf:2: [gateway]: syntax error: missing key before '='");
        /* An indented line after a key is a continuation line in inih. */
        load_fails(
                "[gateway]\nenabled = yes\n    domain = gw1.example.net\n",
                "t.conf:3: [gateway] enabled: indented line would continue this key's value; continuation lines are not supported (remove the indentation)");
        load_fails(
                "[dns]\nresolver = 8.8.8.8\n\t[log]\n",
                "t.conf:3: [dns] resolver: indented line would continue this key's value; continuation lines are not supported (remove the indentation)");
}

/* Issue 11: every error of the file, each once, in line order (checks across keys last). */
static void test_issue_11_every_error(void **state)
{
        /* A bad value before a syntax error, and the other way round. */
        load_fails(
                "[gateway]\nenabled = perhaps\nnonsense\n",
                "t.conf:2: [gateway] enabled: invalid boolean 'perhaps' (expected yes/no, true/false, on/off or 1/0)\n"
                "t.conf:3: syntax error: expected 'key = value'");
        load_fails(
                "[gateway]\nnonsense\nenabled = perhaps\n[foo]\n",
                "t.conf:2: syntax error: expected 'key = value'\n"
                "t.conf:3: [gateway] enabled: invalid boolean 'perhaps' (expected yes/no, true/false, on/off or 1/0)\n"
                "t.conf:4: [foo]: unknown section (expected gateway, names, dns, acme, bus, namespace, proxy, limits, metrics or log)");
        /* Errors of every kind in one file, and a check across keys that still applies. */
        load_fails(
                "[gateway]\n"
                "enabled = yes\n"
                "public_config = file\n"
                "public_ipv4 = 203.0.113.10/24\n"
                "[proxy]\n"
                "http_prot = 8080\n"
                "https_port = 70000\n"
                "[dns]\n"
                "timeout = soon\n"
                "timeout = 1s\n"
                "[log]\n"
                "level = loud\n",
                "t.conf:6: [proxy] http_prot: unknown key (did you mean 'http_port'?)\n"
                "t.conf:7: [proxy] https_port: 70000 is out of range (0 to 65535)\n"
                "t.conf:9: [dns] timeout: invalid duration 'soon' (expected a number with an optional unit ms, s, m, h or d)\n"
                "t.conf:10: [dns] timeout: duplicate key (first set on line 9)\n"
                "t.conf:12: [log] level: invalid value 'loud' (expected debug, info, notice, warning or error)\n"
                "t.conf: [gateway] gateway_ipv4: required when public_ipv4 is set (the gateway namespace needs a default route)");
        /* Every key that a check across keys names, not only the first. */
        load_fails(
                "[gateway]\npublic_ipv4 = 203.0.113.10/24\ngateway_ipv4 = 203.0.113.1\n"
                "public_ipv6 = 2001:db8::10/64\n",
                "t.conf:2: [gateway] public_ipv4: only used when public_config = file (it is bus)\n"
                "t.conf:3: [gateway] gateway_ipv4: only used when public_config = file (it is bus)\n"
                "t.conf:4: [gateway] public_ipv6: only used when public_config = file (it is bus)");
        load_fails("[namespace]\npublic_link = veth:a\nygg_link = move:a\n"
                   "ygg_address = 300::10/64\nygg_router = 300::10\n"
                   "[proxy]\nhttp_port = 8080\nhttps_port = 8080\n",
                   "t.conf:3: [namespace] ygg_link: uses the same interface as public_link\n"
                   "t.conf:5: [namespace] ygg_router: is the gateway's own ygg_address\n"
                   "t.conf:8: [proxy] https_port: is the same port as http_port (8080)");
}

/* Issue 11: what only follows from an earlier error is not reported as an error of its own. */
static void test_issue_11_no_consequences(void **state)
{
        /* A refused address is not "missing" for the check of its pair... */
        load_fails(
                "[gateway]\npublic_config = file\npublic_ipv4 = 203.0.113.10\n"
                "gateway_ipv4 = 203.0.113.1\n",
                "t.conf:3: [gateway] public_ipv4: invalid IPv4 address/prefix '203.0.113.10': missing '/<prefix length>'");
        /* ... nor is a key whose name was mistyped. */
        load_fails("[gateway]\npublic_config = file\npublic_ipv : 203.0.113.10/24\n"
                   "gateway_ipv4 = 203.0.113.1\n",
                   "t.conf:3: [gateway] public_ipv: unknown key (did you mean 'public_ipv4'?)");
        /* A refused mode or switch skips the checks that depend on it. */
        load_fails(
                "[gateway]\nenabled = yes\npublic_config = files\n",
                "t.conf:3: [gateway] public_config: invalid value 'files' (expected file or bus)");
        load_fails(
                "[gateway]\nenabled = yess\npublic_config = file\n",
                "t.conf:2: [gateway] enabled: invalid boolean 'yess' (expected yes/no, true/false, on/off or 1/0)");
        load_fails(
                "[namespace]\npublic_link = veth:gw-pub\nygg_link = veth:gw-ygg\n"
                "ygg_address = 300::10\nygg_router = 300::1\n",
                "t.conf:4: [namespace] ygg_address: invalid IPv6 address/prefix '300::10': missing '/<prefix length>'");
        /* After a line that was not understood (it could have set any key), no check across
         * keys runs. */
        load_fails("[gateway]\nenabled = yes\npublic_config = file\npublic_ipv4 203.0.113.10/24\n",
                   "t.conf:4: syntax error: expected 'key = value'");
        /* The keys after a broken section header are not checked against the section before. */
        load_fails("[log]\nlevel = info\n[gateway\nlevel = debug\nenabled = yes\n",
                   "t.conf:3: syntax error: section header without closing ']'");
        /* A key set twice is one error per repetition; its first value counts. */
        load_fails("[log]\nlevel = info\nlevel = debug\nlevel = error\n",
                   "t.conf:3: [log] level: duplicate key (first set on line 2)\n"
                   "t.conf:4: [log] level: duplicate key (first set on line 2)");
}

/* Issue 11: a file of errors is reported up to a limit, with a count of the rest. */
static void test_issue_11_error_limit(void **state)
{
        _cleanup_strbuf_ struct strbuf text = STRBUF_INIT, want = STRBUF_INIT;

        assert_int_equal(strbuf_puts(&text, "[log]\n"), 0);
        for (unsigned i = 0; i < 150; i++)
                assert_int_equal(strbuf_printf(&text, "x%u\n", i), 0);
        for (unsigned i = 0; i < 100; i++)
                assert_int_equal(strbuf_printf(&want,
                                               "t.conf:%u: syntax error: expected 'key = value'\n",
                                               i + 2),
                                 0);
        assert_int_equal(strbuf_puts(&want, "t.conf: 50 more errors not shown"), 0);
        load_fails(text.data, want.data);
}

/* Issue 11: "did you mean" for unknown keys and sections. */
static void test_issue_11_suggestions(void **state)
{
        static const struct {
                const char *text, *expected;
        } cases[] = {
                /* A transposition is one edit. */
                {"[proxy]\nhttp_prot = 80\n",
                 "t.conf:2: [proxy] http_prot: unknown key (did you mean 'http_port'?)"},
                {"[names]\nrevalidate_intervall = 1h\n",
                 "t.conf:2: [names] revalidate_intervall: unknown key (did you mean 'revalidate_interval'?)"},
                {"[gateway]\npublic_ip4 = 203.0.113.10/24\n",
                 "t.conf:2: [gateway] public_ip4: unknown key (did you mean 'public_ipv4'?)"},
                {"[bus]\nmax-payload = 1M\n",
                 "t.conf:2: [bus] max-payload: unknown key (did you mean 'max_payload'?)"},
                /* The same name in another section. */
                {"[gateway]\nname = gateway\n",
                 "t.conf:2: [gateway] name: unknown key (did you mean 'name' in [namespace]?)"},
                {"[dns]\nlisten = 127.0.0.1:8082\n",
                 "t.conf:2: [dns] listen: unknown key (did you mean 'listen' in [metrics]?)"},
                /* A close key of the section wins over an exact one elsewhere only when it is
                 * closer. */
                {"[dns]\nresolve = 1.1.1.1\n",
                 "t.conf:2: [dns] resolve: unknown key (did you mean 'resolver'?)"},
                /* Nothing close: no guess. */
                {"[gateway]\nx = 1\n", "t.conf:2: [gateway] x: unknown key"},
                {"[gateway]\nzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz = 1\n",
                 "t.conf:2: [gateway] zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz: unknown key"},
                /* Sections. */
                {"[gatway]\nenabled = yes\n",
                 "t.conf:1: [gatway]: unknown section (did you mean [gateway]?)"},
                {"[DNS]\n", "t.conf:1: [DNS]: unknown section (did you mean [dns]?)"},
                {"[metric]\n", "t.conf:1: [metric]: unknown section (did you mean [metrics]?)"},
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++)
                load_fails(cases[i].text, cases[i].expected);
}

static void test_comments_and_whitespace(void **state)
{
        _cleanup_config_ struct gw_config c = {};

        load_ok("\xef\xbb\xbf; a BOM, then a comment\r\n"
                "# another comment style\r\n"
                "\r\n"
                "   \t\r\n"
                "  [gateway]   ; indented header\r\n"
                "[gateway] # a repeated header with a comment\r\n"
                "\tdomain\t=\tgw1.example.net\t; an indented first key is not a continuation\r\n"
                "enabled=yes\r\n"
                "  ; an indented comment after a key is still a comment\r\n"
                "public_config: file\r\n"
                "public_ipv4  =  203.0.113.10/24\r\n"
                "gateway_ipv4 = 203.0.113.1\r\n",
                &c);
        assert_true(c.enabled);
        assert_string_equal(c.pc.domain, "gw1.example.net");
        assert_int_equal(c.public_config, GW_PUBLIC_CONFIG_FILE);
        assert_int_equal(c.pc.ipv4_prefix, 24);
        gw_config_done(&c);

        /* ';' without whitespace before it is part of the value. */
        load_fails(
                "[gateway]\npublic_config = file\nenabled = yes\n"
                "public_ipv4 = 203.0.113.10/24;comment\n",
                "t.conf:4: [gateway] public_ipv4: invalid IPv4 address/prefix '203.0.113.10/24;comment': prefix length must be a number from 0 to 32");

        /* After a section header, an indented key is a key again, not a continuation. */
        load_ok("[gateway]\nenabled = no\n[log]\n    level = debug\n", &c);
        assert_int_equal(c.log_level, LOG_DEBUG);
        gw_config_done(&c);

        /* '#' starts a comment only at the start of a line. */
        load_fails(
                "[dns]\nresolver = 1.1.1.1 # cloudflare\n",
                "t.conf:2: [dns] resolver: invalid resolver '1.1.1.1 # cloudflare': expected IPv4, IPv4:port, IPv6 or [IPv6]:port (host names are not allowed)");

        load_ok("[gateway]\nenabled = no ;comment\ndomain = ; empty, with a comment\n", &c);
        assert_false(c.enabled);
        assert_null(c.pc.domain);
}

static void test_long_lines(void **state)
{
        char line[512];

        /* 198 bytes is the longest line inih takes whole (INI_MAX_LINE 200 with '\n', NUL). */
        {
                _cleanup_config_ struct gw_config c = {};
                _cleanup_free_ char *text = NULL;

                memset(line, 'x', sizeof(line));
                line[0] = ';';
                line[198] = '\0';
                assert_true(asprintf(&text, "[log]\n%s\nlevel = error\n", line) > 0);
                load_ok(text, &c);
                assert_int_equal(c.log_level, LOG_ERR);
        }
        {
                /* Without the trailing newline. */
                _cleanup_config_ struct gw_config c = {};
                _cleanup_free_ char *text = NULL;

                assert_true(asprintf(&text, "[log]\nlevel = error\n%s", line) > 0);
                load_ok(text, &c);
        }
        {
                /* One more byte would be split by inih; the tail would be a line of its own. */
                _cleanup_free_ char *text = NULL;

                line[198] = 'x';
                line[199] = '\0';
                assert_true(asprintf(&text, "[log]\nlevel = error\n%s\nlevel = loud\n", line) > 0);
                /* The lines after it are still checked. */
                load_fails(text, "t.conf:3: line is longer than 198 bytes\n"
                                 "t.conf:4: [log] level: duplicate key (first set on line 2)");
        }
        {
                /* A long value, whose tail would otherwise look like a key line. */
                _cleanup_free_ char *text = NULL;

                memset(line, 'a', sizeof(line));
                memcpy(line + 250, " = x", 4);
                line[260] = '\0';
                assert_true(asprintf(&text, "[gateway]\ndomain = %s\n", line) > 0);
                load_fails(text, "t.conf:2: line is longer than 198 bytes");
        }
}

/* ---- cross-key checks ------------------------------------------------------------------- */

static void test_cross_key(void **state)
{
        /* enabled, file mode, no address. */
        load_fails(
                "[gateway]\nenabled = yes\npublic_config = file\n",
                "t.conf: [gateway] public_ipv4: required when public_config = file and enabled = yes (set public_ipv4, public_ipv6 or both)");
        /* Disabled: addresses may come later (a reload checks again). */
        {
                _cleanup_config_ struct gw_config c = {};

                load_ok("[gateway]\nenabled = no\npublic_config = file\n", &c);
                assert_false(c.enabled);
        }
        /* Enabled in bus mode needs no addresses. */
        {
                _cleanup_config_ struct gw_config c = {};

                load_ok("[gateway]\nenabled = yes\npublic_config = bus\ndomain = gw.example.net\n",
                        &c);
                assert_true(c.enabled);
        }
        /* One family is enough. */
        {
                _cleanup_config_ struct gw_config c = {};

                load_ok("[gateway]\nenabled = yes\n" FILE_V6, &c);
                assert_false(c.pc.has_ipv4);
                assert_true(c.pc.has_ipv6);
        }
        {
                _cleanup_config_ struct gw_config c = {};

                load_ok("[gateway]\nenabled = yes\n" FILE_V4, &c);
                assert_true(c.pc.has_ipv4);
                assert_false(c.pc.has_ipv6);
        }

        /* Gateways and addresses come in pairs. */
        load_fails("[gateway]\npublic_config = file\ngateway_ipv4 = 203.0.113.1\n",
                   "t.conf:3: [gateway] gateway_ipv4: set without public_ipv4");
        load_fails(
                "[gateway]\npublic_config = file\npublic_ipv4 = 203.0.113.10/24\n",
                "t.conf: [gateway] gateway_ipv4: required when public_ipv4 is set (the gateway namespace needs a default route)");
        load_fails("[gateway]\npublic_config = file\ngateway_ipv6 = fe80::1\n",
                   "t.conf:3: [gateway] gateway_ipv6: set without public_ipv6");
        load_fails(
                "[gateway]\npublic_config = file\npublic_ipv6 = 2001:db8::10/64\n",
                "t.conf: [gateway] gateway_ipv6: required when public_ipv6 is set (the gateway namespace needs a default route)");
        load_fails("[gateway]\npublic_config = file\npublic_ipv4 = 203.0.113.10/24\n"
                   "gateway_ipv4 = 203.0.113.10\n",
                   "t.conf:4: [gateway] gateway_ipv4: is the node's own address (public_ipv4)");
        load_fails("[gateway]\npublic_config = file\ngateway_ipv6 = 2001:db8::10\n"
                   "public_ipv6 = 2001:db8::10/64\n",
                   "t.conf:3: [gateway] gateway_ipv6: is the node's own address (public_ipv6)");

        /* Bus mode: the networker supplies the addresses. */
        load_fails(
                "[gateway]\nenabled = yes\n"
                "public_ipv4 = 203.0.113.10/24\ngateway_ipv4 = 203.0.113.1\n",
                "t.conf:3: [gateway] public_ipv4: only used when public_config = file (it is bus)\n"
                "t.conf:4: [gateway] gateway_ipv4: only used when public_config = file (it is bus)");
        load_fails(
                "[gateway]\npublic_config = bus\ngateway_ipv6 = fe80::1\n",
                "t.conf:3: [gateway] gateway_ipv6: only used when public_config = file (it is bus)");
}

/* ---- files ------------------------------------------------------------------------------ */

static char tmpdir[64];

static int setup_tmpdir(void **state)
{
        snprintf(tmpdir, sizeof(tmpdir), "/tmp/test-config-XXXXXX");
        return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown_tmpdir(void **state)
{
        struct dirent *de;
        DIR *d;

        d = opendir(tmpdir);
        if (!d)
                return -1;
        while ((de = readdir(d)))
                if (!streq(de->d_name, ".") && !streq(de->d_name, ".."))
                        (void)unlinkat(dirfd(d), de->d_name, 0);
        closedir(d);
        return rmdir(tmpdir) < 0 ? -1 : 0;
}

static char *write_tmp(const char *name, const void *data, size_t n)
{
        char *path;
        FILE *f;

        assert_true(asprintf(&path, "%s/%s", tmpdir, name) > 0);
        f = fopen(path, "we");
        assert_non_null(f);
        assert_int_equal(fwrite(data, 1, n, f), n);
        assert_int_equal(fclose(f), 0);
        return path;
}

static void test_load_file(void **state)
{
        static const char text[] = "[gateway]\ndomain = gw.example.net\n[bus]\nmax_payload = 2M\n";
        _cleanup_free_ char *path = write_tmp("ok.conf", text, strlen(text));
        _cleanup_config_ struct gw_config c = {};
        _cleanup_free_ char *err = NULL;

        assert_int_equal(gw_config_load(path, &c, &err), 0);
        assert_null(err);
        assert_string_equal(c.path, path);
        assert_string_equal(c.pc.domain, "gw.example.net");
        assert_int_equal(c.max_payload, 2 * 1024 * 1024);
}

static void test_load_file_errors_name_the_file(void **state)
{
        static const char text[] = "[gateway]\nenabled = sure\n";
        _cleanup_free_ char *path = write_tmp("bad.conf", text, strlen(text));
        _cleanup_free_ char *err = NULL, *expected = NULL;
        struct gw_config c;

        assert_int_equal(gw_config_load(path, &c, &err), -EINVAL);
        assert_true(
                asprintf(
                        &expected,
                        "%s:2: [gateway] enabled: invalid boolean 'sure' (expected yes/no, true/false, on/off or 1/0)",
                        path) > 0);
        assert_string_equal(err, expected);

        /* @reterr may be NULL. */
        assert_int_equal(gw_config_load(path, &c, NULL), -EINVAL);
        assert_int_equal(gw_config_load_string("x", "[x]\n", &c, NULL), -EINVAL);
}

static void test_load_missing_file(void **state)
{
        _cleanup_free_ char *path = NULL, *err = NULL, *expected = NULL;
        struct gw_config c;

        assert_true(asprintf(&path, "%s/does-not-exist.conf", tmpdir) > 0);
        assert_int_equal(gw_config_load(path, &c, &err), -ENOENT);
        assert_true(asprintf(&expected, "%s: No such file or directory", path) > 0);
        assert_string_equal(err, expected);
}

static void test_load_not_a_file(void **state)
{
        _cleanup_free_ char *err = NULL, *expected = NULL;
        struct gw_config c;

        assert_int_equal(gw_config_load(tmpdir, &c, &err), -EBADF);
        assert_true(asprintf(&expected, "%s: not a regular file", tmpdir) > 0);
        assert_string_equal(err, expected);
}

static void test_load_too_large(void **state)
{
        size_t n = 1024 * 1024 + 1;
        _cleanup_free_ char *data = malloc(n);
        _cleanup_free_ char *path = NULL, *err = NULL, *expected = NULL;
        struct gw_config c;

        assert_non_null(data);
        memset(data, '\n', n);
        path = write_tmp("big.conf", data, n);
        assert_int_equal(gw_config_load(path, &c, &err), -EFBIG);
        assert_true(asprintf(&expected, "%s: file is larger than 1048576 bytes", path) > 0);
        assert_string_equal(err, expected);
}

static void test_load_nul_byte(void **state)
{
        static const char text[] = "[log]\nlevel = info\nlevel\0 = debug\n";
        _cleanup_free_ char *path = write_tmp("nul.conf", text, sizeof(text) - 1);
        _cleanup_free_ char *err = NULL, *expected = NULL;
        struct gw_config c;

        assert_int_equal(gw_config_load(path, &c, &err), -EINVAL);
        assert_true(asprintf(&expected, "%s:3: line contains a NUL byte", path) > 0);
        assert_string_equal(err, expected);
}

/* dist/gatewayd.conf.example must parse, and say what it claims to say. */
static void test_dist_example(void **state)
{
#ifdef SOURCE_ROOT
        _cleanup_config_ struct gw_config c = {};
        _cleanup_free_ char *err = NULL;
        char buf[INET6_ADDRSTRLEN];
        int r;

        r = gw_config_load(SOURCE_ROOT "/dist/gatewayd.conf.example", &c, &err);
        if (r < 0)
                print_error("%s\n", strempty(err));
        assert_int_equal(r, 0);
        assert_true(c.enabled);
        assert_string_equal(c.pc.domain, "gw1.example.net");
        assert_int_equal(c.public_config, GW_PUBLIC_CONFIG_FILE);
        assert_string_equal(ntop4(&c.pc.ipv4, buf), "203.0.113.10");
        assert_int_equal(c.pc.ipv4_prefix, 24);
        assert_string_equal(ntop4(&c.pc.gw4, buf), "203.0.113.1");
        assert_string_equal(ntop6(&c.pc.ipv6, buf), "2001:db8:1::10");
        assert_int_equal(c.pc.ipv6_prefix, 64);
        assert_string_equal(ntop6(&c.pc.gw6, buf), "2001:db8:1::1");
        assert_int_equal(c.name_validation, GW_NAME_VALIDATION_BUS);
        assert_int_equal(c.revalidate_interval_sec, 3600);
        assert_string_equal(c.resolver, "8.8.8.8:53");
        assert_int_equal(c.resolver_timeout_ms, 10000);
        assert_int_equal(c.call_timeout_ms, 60000);
        assert_int_equal(c.max_payload, 1024 * 1024);
        assert_string_equal(c.netns_dir, "/run/netns");
        assert_int_equal(c.https_port, 443);
        assert_int_equal(c.http_port, 80);
        assert_string_equal(addr_str(&c.proxy_address, c.proxy_address_len), "::");
        assert_int_equal(c.proxy_workers, 0);
        assert_false(c.http_plain);
        assert_string_equal(addr_str(&c.metrics_listen, c.metrics_listen_len), "127.0.0.1:8082");
        assert_int_equal(c.log_level, LOG_INFO);
        assert_int_equal(c.dns_listen_port, 53);
        assert_true(c.acme_enabled);
        assert_string_equal(c.acme_directory, GW_ACME_DIRECTORY_DEFAULT);
        assert_null(c.acme_email);
        assert_null(c.acme_ca_file);
        assert_null(c.acme_profile);
#else
        skip();
#endif
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_defaults),
                cmocka_unit_test(test_empty_file_gives_defaults),
                cmocka_unit_test(test_issue_example),
                cmocka_unit_test(test_every_key),
                cmocka_unit_test(test_booleans),
                cmocka_unit_test(test_enums),
                cmocka_unit_test(test_durations),
                cmocka_unit_test(test_sizes),
                cmocka_unit_test(test_paths),
                cmocka_unit_test(test_domain),
                cmocka_unit_test(test_public_ipv4),
                cmocka_unit_test(test_gateway_ipv4),
                cmocka_unit_test(test_public_ipv6),
                cmocka_unit_test(test_gateway_ipv6),
                cmocka_unit_test(test_resolver),
                cmocka_unit_test(test_acme),
                cmocka_unit_test(test_namespace),
                cmocka_unit_test(test_issue_12_mycelium),
                cmocka_unit_test(test_proxy),
                cmocka_unit_test(test_issue_11_limits),
                cmocka_unit_test(test_metrics),
                cmocka_unit_test(test_access_log),
                cmocka_unit_test(test_unknown_section),
                cmocka_unit_test(test_unknown_key),
                cmocka_unit_test(test_duplicate_key),
                cmocka_unit_test(test_syntax_errors),
                cmocka_unit_test(test_issue_11_every_error),
                cmocka_unit_test(test_issue_11_no_consequences),
                cmocka_unit_test(test_issue_11_error_limit),
                cmocka_unit_test(test_issue_11_suggestions),
                cmocka_unit_test(test_comments_and_whitespace),
                cmocka_unit_test(test_long_lines),
                cmocka_unit_test(test_cross_key),
                cmocka_unit_test(test_load_file),
                cmocka_unit_test(test_load_file_errors_name_the_file),
                cmocka_unit_test(test_load_missing_file),
                cmocka_unit_test(test_load_not_a_file),
                cmocka_unit_test(test_load_too_large),
                cmocka_unit_test(test_load_nul_byte),
                cmocka_unit_test(test_dist_example),
        };

        return cmocka_run_group_tests(tests, setup_tmpdir, teardown_tmpdir);
}
