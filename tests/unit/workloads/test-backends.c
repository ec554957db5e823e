/* SPDX-License-Identifier: Apache-2.0 */
#include <arpa/inet.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/strbuf.h"
#include "workloads/workloads-internal.h"
#include "workloads/workloads.h"

/* zos ValidateBackends (§4.3 step 1) over Go's net and net/url behaviour. */

static struct wl_public_config pc; /* 185.69.166.10, 2a02:1802:5e::10 */

static int setup(void **state)
{
        pc = (struct wl_public_config){.has_ipv4 = true, .has_ipv6 = true};
        inet_pton(AF_INET, "185.69.166.10", &pc.ipv4);
        inet_pton(AF_INET6, "2a02:1802:5e::10", &pc.ipv6);
        return 0;
}

static int validate(bool tls, const char *const *b, size_t n, const struct wl_public_config *c,
                    char **err)
{
        struct wl_proxy p = {
                .id = "37-1976-myapp",
                .kind = WL_KIND_NAME,
                .backends = (char **)b,
                .n_backends = n,
                .tls_passthrough = tls,
        };

        return wl_validate_backends(&p, c, err);
}

static void valid(bool tls, const char *b)
{
        char *err = NULL;
        int r = validate(tls, &b, 1, &pc, &err);

        if (r != 0)
                fail_msg("backend '%s' (passthrough=%d) refused: %s", b, tls, err);
        assert_null(err);
}

/* One invalid backend: the go-multierror single-error format. */
static void invalid(bool tls, const char *b, const char *cause)
{
        char *err = NULL, *want;
        int r = validate(tls, &b, 1, &pc, &err);

        assert_true(asprintf(&want,
                             "1 error occurred:\n\t* failed to validate backend '%s': %s\n\n", b,
                             cause) > 0);
        if (r != -EINVAL)
                fail_msg("backend '%s' (passthrough=%d) accepted, want: %s", b, tls, cause);
        assert_string_equal(err, want);
        free(want);
        free(err);
}

/* ---- passthrough: ip:port (asIpPort) ---- */

static void test_passthrough_valid(void **state)
{
        valid(true, "1.2.3.4:443");
        valid(true, "[2001:db8::1]:443");
        valid(true, "[::ffff:1.2.3.4]:443");
        valid(true, "0.0.0.0:0");
        valid(true, "1.2.3.4:65535");
        valid(true, "1.2.3.4:0000443");
        /* Loopback is not rejected in passthrough mode. */
        valid(true, "127.0.0.1:443");
        valid(true, "[::1]:8443");
}

#define PT_SPLIT(b, why)                                                                           \
        invalid(true, b,                                                                           \
                "failed to parse backend " b " with error: failed to parse backend " b             \
                " with error: " why)
#define PT(b, why) invalid(true, b, "failed to parse backend " b " with error: " why)

static void test_passthrough_split_host_port(void **state)
{
        /* net.SplitHostPort errors, under the doubled prefix. */
        PT_SPLIT("1.2.3.4", "address 1.2.3.4: missing port in address");
        PT_SPLIT("http://1.2.3.4:80", "address http://1.2.3.4:80: too many colons in address");
        PT_SPLIT("https://1.2.3.4:443", "address https://1.2.3.4:443: too many colons in address");
        PT_SPLIT("2001:db8::1:443", "address 2001:db8::1:443: too many colons in address");
        PT_SPLIT("[::1", "address [::1: missing ']' in address");
        PT_SPLIT("[::1]", "address [::1]: missing port in address");
        PT_SPLIT("[::1]x:80", "address [::1]x:80: missing port in address");
        PT_SPLIT("[::1]:80:90", "address [::1]:80:90: too many colons in address");
        PT_SPLIT("a[b:80", "address a[b:80: unexpected '[' in address");
        PT_SPLIT("a]b:80", "address a]b:80: unexpected ']' in address");
        PT_SPLIT("[a]b]:80", "address [a]b]:80: missing port in address");
        PT_SPLIT("[a[b]:80", "address [a[b]:80: unexpected '[' in address");
        /* An empty address has no "address : " prefix (AddrError with Addr ""). */
        PT_SPLIT("", "missing port in address");
}

static void test_passthrough_ip_and_port(void **state)
{
        PT("localhost:80", "invalid ip");
        PT(":80", "invalid ip");
        PT("01.2.3.4:80", "invalid ip"); /* leading zero */
        PT("1.2.3:80", "invalid ip");
        PT("[fe80::1%eth0]:80", "invalid ip"); /* zones are refused by net.ParseIP */
        PT("1.2.3.4:", "invalid port in backend: ");
        PT("1.2.3.4:abc", "invalid port in backend: abc");
        PT("1.2.3.4:+80", "invalid port in backend: +80");
        PT("1.2.3.4:-1", "invalid port in backend: -1");
        PT("1.2.3.4:8_0", "invalid port in backend: 8_0");
        PT("1.2.3.4:0x50", "invalid port in backend: 0x50");
        PT("1.2.3.4:99999999999999999999", "invalid port in backend: 99999999999999999999");
        PT("1.2.3.4:65536", "port '65536' must be <= 65535");
        PT("1.2.3.4:18446744073709551615", "port '18446744073709551615' must be <= 65535");
        /* IP before port: both wrong reports the IP. */
        PT("nope:abc", "invalid ip");
}

/* ---- terminated: http URLs (url.Parse, Hostname) ---- */

static void test_url_valid(void **state)
{
        valid(false, "http://1.2.3.4");
        valid(false, "http://1.2.3.4:9000");
        valid(false, "http://[300:1:2::3]:9000");
        valid(false, "HTTP://1.2.3.4/path?q=1#frag"); /* scheme is lower-cased */
        valid(false, "http://user:pass@1.2.3.4:80/");
        valid(false, "http://a@b@1.2.3.4/");
        valid(false, "http://0.0.0.0");     /* unspecified is accepted */
        valid(false, "http://10.1.2.3:80"); /* private addresses too (Network) */
        valid(false, "http://1.2.3.4?");
        valid(false, "http://1.2.3.4:"); /* empty port */
        valid(false, "http://[::ffff:1.2.3.4]/");
        valid(false, "http://[::127.0.0.1]/"); /* IPv4-compatible, not loopback for Go */
        valid(false, "http://1.2.3.4/a%20b");
}

#define URL(b, why) invalid(false, b, "failed to parse backend with error: parse \"" b "\": " why)

static void test_url_parse_errors(void **state)
{
        /* The protocol document's example: a passthrough backend in terminated mode. */
        URL("1.1.1.1:10", "first path segment in URL cannot contain colon");
        URL("1a:b/x", "first path segment in URL cannot contain colon");
        URL("[::1]:80", "first path segment in URL cannot contain colon");
        /* With a letter first, "a:b" is scheme "a" and an opaque part. */
        invalid(false, "a:b", "scheme expected to be http");
}

static void test_url_parse_errors2(void **state)
{
        URL("://x", "missing protocol scheme");
        URL("http://1.2.3.4:abc", "invalid port \":abc\" after host");
        URL("http://::ffff:1.2.3.4", "invalid port \":1.2.3.4\" after host");
        URL("http://[::1]:80x", "invalid port \":80x\" after host");
        URL("http://[::1", "missing ']' in host");
        URL("http://[1.2.3.4]:80", "invalid IP-literal");
        URL("http://a[::1]", "invalid IP-literal");
        URL("http://[v1.x]/",
            "invalid host: ParseAddr(\"v1.x\"): unexpected character (at \"v1.x\")");
        URL("http://[1::2::3]/",
            "invalid host: ParseAddr(\"1::2::3\"): multiple :: in address (at \":3\")");
        URL("http://[12345::1]/",
            "invalid host: ParseAddr(\"12345::1\"): each group must have 4 or less digits (at \"12345::1\")");
        URL("http://[::1.2.3]/", "invalid host: ParseAddr(\"::1.2.3\"): IPv4 address too short");
        URL("http://[]/", "invalid host: ParseAddr(\"\"): unable to parse IP");
        URL("http://[%25eth0]/", "invalid host: ParseAddr(\"%eth0\"): missing IPv6 address");
        URL("http://[::1%25]/",
            "invalid host: ParseAddr(\"::1%\"): zone must be a non-empty string");
        URL("http://[fe80::1%eth0]/", "invalid URL escape \"%et\"");
        URL("http://[fe80::1%25%0A]/", "invalid URL escape \"%0A\""); /* zone escapes */
        URL("http://a b/", "invalid character \" \" in host name");
        URL("http://a{b}/", "invalid character \"{\" in host name");
        URL("http://%41.1.1.1/", "invalid URL escape \"%41\""); /* ASCII escaped in a host */
        URL("http://1.2.3.4/%zz", "invalid URL escape \"%zz\"");
        URL("http://1.2.3.4/%z\xc3\xa9", "invalid URL escape \"%z\\xc3\"");
        URL("http://1.2.3.4/%4", "invalid URL escape \"%4\"");
        /* The quoted URL escapes the control byte (see test_url_error_quoting). */
        invalid(false, "http://1.2.3.4/\x01",
                "failed to parse backend with error: parse \"http://1.2.3.4/\\x01\": net/url: invalid control character in URL");
        invalid(false, "http://1.2.3.4/\x7f",
                "failed to parse backend with error: parse \"http://1.2.3.4/\\x7f\": net/url: invalid control character in URL");
        URL("http://\xc3\xbc@1.2.3.4/", "net/url: invalid userinfo");
        URL("http://a b@1.2.3.4/", "net/url: invalid userinfo");
        URL("http://u%zz@1.2.3.4/", "invalid URL escape \"%zz\"");
}

/* Quoting follows strconv.Quote; fragments are reported on the whole URL. */
static void test_url_error_quoting(void **state)
{
        invalid(false, "http://1.2.3.4/\t",
                "failed to parse backend with error: parse \"http://1.2.3.4/\\t\": net/url: invalid control character in URL");
        invalid(false, "http://1.2.3.4/\"x\x02",
                "failed to parse backend with error: parse \"http://1.2.3.4/\\\"x\\x02\": net/url: invalid control character in URL");
        /* A path error is reported with the URL cut at '#'. */
        invalid(false, "http://1.2.3.4/%zz#frag",
                "failed to parse backend with error: parse \"http://1.2.3.4/%zz\": invalid URL escape \"%zz\"");
        /* A fragment error quotes the whole URL. */
        invalid(false, "http://1.2.3.4/#%zz",
                "failed to parse backend with error: parse \"http://1.2.3.4/#%zz\": invalid URL escape \"%zz\"");
        /* Control characters in the fragment pass url.Parse. */
        valid(false, "http://1.2.3.4/#\x01");
}

static void test_url_scheme_and_ip(void **state)
{
        invalid(false, "https://1.2.3.4", "scheme expected to be http");
        invalid(false, "ftp://1.2.3.4", "scheme expected to be http");
        invalid(false, "httpx://1.2.3.4", "scheme expected to be http");
        invalid(false, "", "scheme expected to be http");  /* url.Parse("") succeeds */
        invalid(false, "*", "scheme expected to be http"); /* Path "*" */
        invalid(false, "/just/a/path", "scheme expected to be http");
        invalid(false, "//1.2.3.4/", "scheme expected to be http");

        invalid(false, "http://localhost:80", "invalid ip address in backend: localhost");
        invalid(false, "http://127.0.0.1", "invalid ip address in backend: 127.0.0.1");
        invalid(false, "http://127.255.0.9:8080", "invalid ip address in backend: 127.255.0.9");
        invalid(false, "http://[::1]:80", "invalid ip address in backend: ::1");
        invalid(false, "http://[::ffff:127.0.0.1]",
                "invalid ip address in backend: ::ffff:127.0.0.1");
        invalid(false, "http://[fe80::1%25eth0]:80", "invalid ip address in backend: fe80::1%eth0");
        invalid(false, "http://01.2.3.4", "invalid ip address in backend: 01.2.3.4");
        invalid(false, "http:1.2.3.4", "invalid ip address in backend: "); /* opaque, no host */
        invalid(false, "http://", "invalid ip address in backend: ");
        invalid(false, "http:///1.2.3.4", "invalid ip address in backend: ");
        /* The last colon starts the port (Go 1.24, no strict colons). */
        invalid(false, "http://1.2.3.4:80:90", "invalid ip address in backend: 1.2.3.4:80");
        invalid(false, "http://%C3%A9/", "invalid ip address in backend: \xc3\xa9");
        /* Passthrough form in terminated mode. */
        invalid(false, "1.2.3.4:443",
                "failed to parse backend with error: parse \"1.2.3.4:443\": first path segment in URL cannot contain colon");
}

/* Our deviation: the port of a URL backend must fit 16 bits. */
static void test_url_port_range(void **state)
{
        valid(false, "http://1.2.3.4:65535");
        invalid(false, "http://1.2.3.4:65536", "port '65536' must be <= 65535");
        invalid(false, "http://[::2]:99999999999999999999999",
                "port '99999999999999999999999' must be <= 65535");
}

/* ---- go-multierror and the check order ---- */

static void test_multierror(void **state)
{
        const char *const b[] = {"1.2.3.4", "5.6.7.8:80", "localhost:1"};
        const char *const u[] = {"http://1.2.3.4", "https://x", "http://localhost",
                                 "http://5.6.7.8"};
        char *err = NULL;

        assert_int_equal(validate(true, b, 3, &pc, &err), -EINVAL);
        assert_string_equal(
                err,
                "2 errors occurred:\n"
                "\t* failed to validate backend '1.2.3.4': failed to parse backend 1.2.3.4 with error: failed to parse backend 1.2.3.4 with error: address 1.2.3.4: missing port in address\n"
                "\t* failed to validate backend 'localhost:1': failed to parse backend localhost:1 with error: invalid ip\n"
                "\n");
        free(err);
        err = NULL;

        assert_int_equal(validate(false, u, 4, &pc, &err), -EINVAL);
        assert_string_equal(
                err,
                "2 errors occurred:\n"
                "\t* failed to validate backend 'https://x': scheme expected to be http\n"
                "\t* failed to validate backend 'http://localhost': invalid ip address in backend: localhost\n"
                "\n");
        free(err);
        err = NULL;

        /* No backends: nothing to refuse here (the empty list is step 1 of §4.1/§4.2). */
        assert_int_equal(validate(false, NULL, 0, &pc, &err), 0);
        assert_null(err);
}

/* ---- the node's own public IP (after the syntax checks) ---- */

static void own_ip(bool tls, const char *b)
{
        char *err = NULL, *want;

        assert_int_equal(validate(tls, &b, 1, &pc, &err), -EINVAL);
        assert_true(asprintf(&want, "backend %s points to the node's own public IP address", b) >
                    0);
        assert_string_equal(err, want);
        free(want);
        free(err);
}

static void test_own_public_ip(void **state)
{
        struct wl_public_config none = {};
        const char *b;
        char *err = NULL;

        own_ip(false, "http://185.69.166.10");
        own_ip(false, "http://185.69.166.10:8080/x");
        own_ip(false, "http://[::ffff:185.69.166.10]/"); /* 4- and 16-byte forms are Equal */
        own_ip(false, "http://[2a02:1802:5e::10]:80");
        own_ip(false, "http://[2A02:1802:005E:0:0:0:0:0010]:80");
        own_ip(true, "185.69.166.10:443");
        own_ip(true, "[2a02:1802:5e::10]:443");
        valid(false, "http://185.69.166.11");
        valid(true, "185.69.166.11:443");

        /* Without public IPs (nil) nothing matches, not even "::" or "0.0.0.0". */
        b = "http://185.69.166.10";
        assert_int_equal(validate(false, &b, 1, &none, &err), 0);
        b = "http://[::]";
        assert_int_equal(validate(false, &b, 1, &none, &err), 0);
        b = "0.0.0.0:1";
        assert_int_equal(validate(true, &b, 1, &none, &err), 0);
        assert_int_equal(validate(true, &b, 1, NULL, &err), 0);
        assert_null(err);
}

static void test_own_ip_after_syntax(void **state)
{
        const char *const b[] = {"http://185.69.166.10", "https://x"};
        const char *const two[] = {"http://1.1.1.1", "http://185.69.166.10",
                                   "http://[2a02:1802:5e::10]"};
        char *err = NULL;

        /* Syntax errors first, as a multierror, without the own-IP finding. */
        assert_int_equal(validate(false, b, 2, &pc, &err), -EINVAL);
        assert_string_equal(
                err, "1 error occurred:\n"
                     "\t* failed to validate backend 'https://x': scheme expected to be http\n"
                     "\n");
        free(err);
        err = NULL;

        /* Then the first backend on the node's own IP, as a plain error. */
        assert_int_equal(validate(false, two, 3, &pc, &err), -EINVAL);
        assert_string_equal(
                err, "backend http://185.69.166.10 points to the node's own public IP address");
        free(err);
}

/* ---- wl_backend_address ---- */

static void addr(const char *b, bool tls, const char *want_ip, uint16_t want_port)
{
        struct sockaddr_in6 sa;
        char got[INET6_ADDRSTRLEN];

        assert_int_equal(wl_backend_address(b, tls, &sa), 0);
        assert_int_equal(sa.sin6_family, AF_INET6);
        assert_non_null(inet_ntop(AF_INET6, &sa.sin6_addr, got, sizeof(got)));
        assert_string_equal(got, want_ip);
        assert_int_equal(ntohs(sa.sin6_port), want_port);
}

static void test_backend_address(void **state)
{
        struct sockaddr_in6 sa = {.sin6_port = 4242};

        addr("http://1.2.3.4", false, "::ffff:1.2.3.4", 80);
        addr("http://1.2.3.4:", false, "::ffff:1.2.3.4", 80);
        addr("http://1.2.3.4:8080/path", false, "::ffff:1.2.3.4", 8080);
        addr("http://[300:1:2::3]:9000", false, "300:1:2::3", 9000);
        addr("1.2.3.4:443", true, "::ffff:1.2.3.4", 443);
        addr("[2001:db8::1]:8443", true, "2001:db8::1", 8443);

        assert_int_equal(wl_backend_address("1.2.3.4:443", false, &sa), -EINVAL);
        assert_int_equal(wl_backend_address("http://1.2.3.4", true, &sa), -EINVAL);
        assert_int_equal(wl_backend_address("http://1.2.3.4:70000", false, &sa), -EINVAL);
        assert_int_equal(sa.sin6_port, 4242); /* untouched on failure */
}

/* Issue 12: backends on Mycelium (400::/7), like zos, which accepts any IP:
 * valid in both forms and dialled at that address (which overlay carries
 * them is the gateway namespace's routing, not the workload's business). */
static void test_issue_12_mycelium_backends(void **state)
{
        valid(false, "http://[4a1:b2c3:d4e5:f6a7::2]:8080");
        valid(false, "http://[5ff:1:2::3]");
        valid(true, "[4a1:b2c3:d4e5:f6a7::2]:443");
        valid(true, "[5c2:1:2:3::2]:8443");
        addr("http://[4a1:b2c3:d4e5:f6a7::2]:8080", false, "4a1:b2c3:d4e5:f6a7::2", 8080);
        addr("[5c2:1:2:3::2]:8443", true, "5c2:1:2:3::2", 8443);
}

/* ---- Go helpers ---- */

static void quote(const char *in, size_t n, const char *want)
{
        _cleanup_strbuf_ struct strbuf b = STRBUF_INIT;

        assert_int_equal(wl__go_quote(&b, in, n), 0);
        assert_string_equal(b.data, want);
}

static void test_go_quote(void **state)
{
        quote("", 0, "\"\"");
        quote("plain", 5, "\"plain\"");
        quote("a\"b\\c", 5, "\"a\\\"b\\\\c\"");
        quote("\a\b\f\n\r\t\v", 7, "\"\\a\\b\\f\\n\\r\\t\\v\"");
        quote("\x01\x1f\x7f", 3, "\"\\x01\\x1f\\x7f\"");
        quote("\0", 1, "\"\\x00\"");
        quote("\xff\xc3", 2, "\"\\xff\\xc3\"");
        quote("caf\xc3\xa9", 5, "\"caf\xc3\xa9\"");           /* printable stays */
        quote("\xc2\xa0", 2, "\"\\u00a0\"");                  /* NBSP is not printable */
        quote("\xc2\x85", 2, "\"\\u0085\"");                  /* C1 control */
        quote("\xe2\x80\x8b", 3, "\"\\u200b\"");              /* ZWSP (Cf) */
        quote("\xef\xbf\xbd", 3, "\"\xef\xbf\xbd\"");         /* a real U+FFFD is printable */
        quote("\xf0\x9f\x98\x80", 4, "\"\xf0\x9f\x98\x80\""); /* emoji */
        quote("\xf3\xb0\x80\x80", 4, "\"\\U000f0000\"");      /* private use plane 15 */
}

static void parse_ip_ok(const char *s, const char *want)
{
        uint8_t ip[16];
        char got[INET6_ADDRSTRLEN];

        if (!wl__go_parse_ip(s, strlen(s), ip))
                fail_msg("ParseIP(\"%s\") failed", s);
        assert_non_null(inet_ntop(AF_INET6, ip, got, sizeof(got)));
        assert_string_equal(got, want);
}

static void parse_ip_bad(const char *s)
{
        uint8_t ip[16];

        if (wl__go_parse_ip(s, strlen(s), ip))
                fail_msg("ParseIP(\"%s\") succeeded", s);
}

static void test_go_parse_ip(void **state)
{
        parse_ip_ok("1.2.3.4", "::ffff:1.2.3.4");
        parse_ip_ok("0.0.0.0", "::ffff:0.0.0.0");
        parse_ip_ok("255.255.255.255", "::ffff:255.255.255.255");
        parse_ip_ok("::", "::");
        parse_ip_ok("::1", "::1");
        parse_ip_ok("1::", "1::");
        parse_ip_ok("1:2:3:4:5:6:7:8", "1:2:3:4:5:6:7:8");
        parse_ip_ok("1:2:3:4:5:6:7::", "1:2:3:4:5:6:7:0");
        parse_ip_ok("::2:3:4:5:6:7:8", "0:2:3:4:5:6:7:8");
        parse_ip_ok("1:2:3:4:5:6:1.2.3.4", "1:2:3:4:5:6:102:304");
        parse_ip_ok("::1.2.3.4", "::1.2.3.4");
        parse_ip_ok("::ffff:1.2.3.4", "::ffff:1.2.3.4");
        parse_ip_ok("FFFF::abcd", "ffff::abcd");
        parse_ip_ok("0001:02::0003", "1:2::3");

        parse_ip_bad("");
        parse_ip_bad("1.2.3");
        parse_ip_bad("1.2.3.4.5");
        parse_ip_bad("01.2.3.4");
        parse_ip_bad("1.2.3.04");
        parse_ip_bad("256.1.1.1");
        parse_ip_bad("1..2.3");
        parse_ip_bad(".1.2.3");
        parse_ip_bad("1.2.3.");
        parse_ip_bad("1.2.3.4%eth0");
        parse_ip_bad("fe80::1%eth0");
        parse_ip_bad("fe80::1%");
        parse_ip_bad("1:2:3:4:5:6:7:8:9");
        parse_ip_bad("1:2:3:4:5:6:7::8"); /* :: must stand for at least one group */
        parse_ip_bad(":1::2");
        parse_ip_bad("1::2::3");
        parse_ip_bad("12345::1");
        parse_ip_bad("1:2:3:4:5:1.2.3.4");
        parse_ip_bad("1:2:3:4:5:6:7:1.2.3.4");
        parse_ip_bad("1.2.3.4::");
        parse_ip_bad("::g");
        parse_ip_bad("1:");
        parse_ip_bad("1:2:3:4:5:6:7");
        parse_ip_bad("localhost");
        parse_ip_bad(" 1.2.3.4");
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_passthrough_valid),
                cmocka_unit_test(test_passthrough_split_host_port),
                cmocka_unit_test(test_passthrough_ip_and_port),
                cmocka_unit_test(test_url_valid),
                cmocka_unit_test(test_url_parse_errors),
                cmocka_unit_test(test_url_parse_errors2),
                cmocka_unit_test(test_url_error_quoting),
                cmocka_unit_test(test_url_scheme_and_ip),
                cmocka_unit_test(test_url_port_range),
                cmocka_unit_test(test_multierror),
                cmocka_unit_test(test_own_public_ip),
                cmocka_unit_test(test_own_ip_after_syntax),
                cmocka_unit_test(test_backend_address),
                cmocka_unit_test(test_issue_12_mycelium_backends),
                cmocka_unit_test(test_go_quote),
                cmocka_unit_test(test_go_parse_ip),
        };

        return cmocka_run_group_tests(tests, setup, NULL);
}
