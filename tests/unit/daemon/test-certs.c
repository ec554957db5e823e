/* SPDX-License-Identifier: Apache-2.0 */
/* The self-signed certificate store: files and modes, reload across stores
 * (the served certificate is compared through a real TLS handshake), name
 * coverage, replacement of bad pairs, forget, bad names, and the
 * certificate's contents as the real `openssl` CLI sees them. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/mem.h>
#include <openssl/pool.h>
#include <openssl/ssl.h>

#include "common/fileio.h"
#include "common/macros.h"
#include "daemon/certs.h"
#include "proxy/tls.h"

#define DAY (24LL * 60 * 60)

static char tmpdir[64];
static char certdir[128];

/* ---- helpers ---- */

static int setup(void **state)
{
        snprintf(tmpdir, sizeof(tmpdir), "/tmp/test-certs.XXXXXX");
        assert_non_null(mkdtemp(tmpdir));
        snprintf(certdir, sizeof(certdir), "%s/state/certs", tmpdir);
        return 0;
}

static int teardown(void **state)
{
        char cmd[128];

        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
        assert_int_equal(system(cmd), 0);
        return 0;
}

static char *path_of(const char *file)
{
        static char buf[4][512];
        static int i;
        char *p = buf[i++ % 4];

        snprintf(p, sizeof(buf[0]), "%s/%s", certdir, file);
        return p;
}

static bool exists(const char *file)
{
        return access(path_of(file), F_OK) == 0;
}

static mode_t mode_of(const char *path)
{
        struct stat st;

        assert_int_equal(stat(path, &st), 0);
        return st.st_mode & 07777;
}

static char *slurp(const char *file)
{
        char *data = NULL;

        assert_int_equal(read_file_full(path_of(file), 1 << 20, &data, NULL), 0);
        return data;
}

static void spit(const char *file, const char *data)
{
        FILE *f = fopen(path_of(file), "w");

        assert_non_null(f);
        assert_int_equal(fputs(data, f) >= 0, 1);
        assert_int_equal(fclose(f), 0);
}

static void copy(const char *from, const char *to)
{
        char *data = slurp(from);

        spit(to, data);
        free(data);
}

/* Number of entries in the certificate directory (without . and ..). */
static int count_files(void)
{
        DIR *d = opendir(certdir);
        struct dirent *de;
        int n = 0;

        assert_non_null(d);
        while ((de = readdir(d)))
                if (!streq(de->d_name, ".") && !streq(de->d_name, ".."))
                        n++;
        closedir(d);
        return n;
}

/* Run @cmd with sh; its stdout (allocated) and exit status. */
static char *run(const char *cmd, int *ret_status)
{
        FILE *f = popen(cmd, "r");
        char *out = calloc(1, 65536);
        size_t n = 0, k;
        int st;

        assert_non_null(f);
        assert_non_null(out);
        while ((k = fread(out + n, 1, 65535 - n, f)) > 0)
                n += k;
        st = pclose(f);
        assert_true(WIFEXITED(st));
        if (ret_status)
                *ret_status = WEXITSTATUS(st);
        return out;
}

static void drive(SSL *server, SSL *client, bool *ok)
{
        *ok = false;
        for (int i = 0; i < 50; i++) {
                int rs = SSL_do_handshake(server), rc = SSL_do_handshake(client);

                if (rs == 1 && rc == 1) {
                        *ok = true;
                        return;
                }
                if (rs != 1 && SSL_get_error(server, rs) != SSL_ERROR_WANT_READ)
                        return;
                if (rc != 1 && SSL_get_error(client, rc) != SSL_ERROR_WANT_READ)
                        return;
        }
}

/* The DER of the leaf @cert presents in a real handshake (allocated). */
static uint8_t *served_der(const struct proxy_cert *cert, size_t *ret_len)
{
        _cleanup_(proxy_tls_freep) struct proxy_tls *tls = NULL;
        SSL_CTX *cctx;
        SSL *server = NULL, *client;
        const STACK_OF(CRYPTO_BUFFER) * peer;
        const CRYPTO_BUFFER *leaf;
        uint8_t *der;
        int sv[2];
        bool ok;

        assert_int_equal(proxy_tls_new(&tls), 0);
        assert_int_equal(proxy_tls_new_ssl(tls, cert, &server), 0);
        cctx = SSL_CTX_new(TLS_method());
        assert_non_null(cctx);
        client = SSL_new(cctx);
        assert_non_null(client);
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
        assert_int_equal(SSL_set_fd(server, sv[0]), 1);
        assert_int_equal(SSL_set_fd(client, sv[1]), 1);
        SSL_set_connect_state(client);
        drive(server, client, &ok);
        assert_true(ok);
        peer = SSL_get0_peer_certificates(client);
        assert_non_null(peer);
        assert_true(sk_CRYPTO_BUFFER_num(peer) >= 1); /* leaf first */
        leaf = sk_CRYPTO_BUFFER_value(peer, 0);
        der = malloc(CRYPTO_BUFFER_len(leaf));
        assert_non_null(der);
        memcpy(der, CRYPTO_BUFFER_data(leaf), CRYPTO_BUFFER_len(leaf));
        *ret_len = CRYPTO_BUFFER_len(leaf);
        SSL_free(server);
        SSL_free(client);
        SSL_CTX_free(cctx);
        close(sv[0]);
        close(sv[1]);
        return der;
}

static bool same_served(const struct proxy_cert *a, const struct proxy_cert *b)
{
        size_t la, lb;
        uint8_t *da = served_der(a, &la), *db = served_der(b, &lb);
        bool same = la == lb && memcmp(da, db, la) == 0;

        free(da);
        free(db);
        return same;
}

/* The DER of the certificate in a PEM file, as the openssl CLI reads it. */
static char *file_der_hex(const char *file)
{
        char cmd[1024];
        char *out;
        int st;

        snprintf(cmd, sizeof(cmd),
                 "openssl x509 -in '%s' -outform DER | od -An -tx1 | tr -d ' \\n'", path_of(file));
        out = run(cmd, &st);
        assert_int_equal(st, 0);
        assert_true(strlen(out) > 200);
        return out;
}

static char *served_der_hex(const struct proxy_cert *cert)
{
        size_t len;
        uint8_t *der = served_der(cert, &len);
        char *hex = malloc(len * 2 + 1);

        assert_non_null(hex);
        for (size_t i = 0; i < len; i++)
                sprintf(hex + 2 * i, "%02x", der[i]);
        free(der);
        return hex;
}

static bool covers(const struct proxy_cert *c, const char *host)
{
        return proxy_cert_covers(c, host, strlen(host));
}

static struct proxy_cert *get_ok(struct gw_certs *c, const char *name)
{
        struct proxy_cert *cert = NULL;
        char *err = NULL;
        int r = gw_certs_get(c, name, &cert, &err);

        if (r < 0)
                fail_msg("gw_certs_get(%s): %d %s", name, r, strempty(err));
        assert_null(err);
        assert_non_null(cert);
        return cert;
}

/* A foreign self-signed pair made by the openssl CLI, valid for @days. */
static void openssl_pair(const char *name, const char *file, int days)
{
        char cmd[2048];
        int st;

        snprintf(cmd, sizeof(cmd),
                 "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days %d "
                 "-subj '/CN=%s' -addext 'subjectAltName=DNS:%s' -keyout '%s/%s.key' "
                 "-out '%s/%s.crt' 2>/dev/null",
                 days, name, name, certdir, file, certdir, file);
        free(run(cmd, &st));
        assert_int_equal(st, 0);
}

/* ---- tests ---- */

static void test_generate_files(void **state)
{
        _cleanup_(gw_certs_freep) struct gw_certs *c = NULL;
        struct proxy_cert *cert, *again;
        long long now = (long long)time(NULL);
        char *key;

        assert_int_equal(gw_certs_new(certdir, &c), 0);
        assert_int_equal(mode_of(certdir), 0700);
        assert_int_equal(count_files(), 0);

        cert = get_ok(c, "App.Example.COM");
        assert_true(exists("app.example.com.crt"));
        assert_true(exists("app.example.com.key"));
        assert_int_equal(count_files(), 2);
        assert_int_equal(mode_of(path_of("app.example.com.key")), 0600);
        assert_int_equal(mode_of(path_of("app.example.com.crt")) & 0022, 0);
        key = slurp("app.example.com.key");
        assert_non_null(strstr(key, "-----BEGIN PRIVATE KEY-----")); /* PKCS#8 */
        free(key);

        assert_true(covers(cert, "app.example.com"));
        assert_true(covers(cert, "APP.example.Com."));
        assert_false(covers(cert, "www.app.example.com"));
        assert_false(covers(cert, "example.com"));
        assert_true(proxy_cert_not_after(cert) >= now + 397 * DAY - 120);
        assert_true(proxy_cert_not_after(cert) <= now + 397 * DAY + 120);

        /* Cached: the same object for any spelling. */
        again = get_ok(c, "app.example.com");
        assert_ptr_equal(again, cert);
        again = get_ok(c, "APP.EXAMPLE.COM.");
        assert_ptr_equal(again, cert);
        assert_int_equal(count_files(), 2);

        /* The files hold exactly what is served. */
        char *a = file_der_hex("app.example.com.crt"), *b = served_der_hex(cert);
        assert_string_equal(a, b);
        free(a);
        free(b);
}

static void test_reload_same(void **state)
{
        _cleanup_(gw_certs_freep) struct gw_certs *c1 = NULL, *c2 = NULL;
        struct proxy_cert *a, *b, *w1, *w2;
        char *crt1, *crt2, *key1, *key2;
        struct stat st1, st2;

        assert_int_equal(gw_certs_new(certdir, &c1), 0);
        a = proxy_cert_ref(get_ok(c1, "site.example.org"));
        w1 = proxy_cert_ref(get_ok(c1, "*.gw.example.net"));
        crt1 = slurp("site.example.org.crt");
        key1 = slurp("site.example.org.key");
        assert_int_equal(stat(path_of("site.example.org.crt"), &st1), 0);
        c1 = gw_certs_free(c1);

        /* A reference taken before the store was freed stays usable. */
        assert_true(covers(a, "site.example.org"));

        assert_int_equal(gw_certs_new(certdir, &c2), 0);
        b = get_ok(c2, "site.example.org");
        w2 = get_ok(c2, "*.gw.example.net");
        assert_ptr_not_equal(a, b);
        assert_true(same_served(a, b));
        assert_true(same_served(w1, w2));
        /* Loaded, not rewritten. */
        crt2 = slurp("site.example.org.crt");
        key2 = slurp("site.example.org.key");
        assert_string_equal(crt1, crt2);
        assert_string_equal(key1, key2);
        assert_int_equal(stat(path_of("site.example.org.crt"), &st2), 0);
        assert_int_equal(st1.st_ino, st2.st_ino);
        assert_int_equal(count_files(), 4);

        free(crt1);
        free(crt2);
        free(key1);
        free(key2);
        proxy_cert_unref(a);
        proxy_cert_unref(w1);
}

static void test_wildcard(void **state)
{
        _cleanup_(gw_certs_freep) struct gw_certs *c = NULL;
        struct proxy_cert *w;

        assert_int_equal(gw_certs_new(certdir, &c), 0);
        w = get_ok(c, "*.GW.example.com");
        assert_true(exists("_wildcard.gw.example.com.crt"));
        assert_true(exists("_wildcard.gw.example.com.key"));
        assert_int_equal(count_files(), 2);
        assert_true(covers(w, "myapp.gw.example.com"));
        assert_true(covers(w, "MyApp.GW.example.com."));
        assert_false(covers(w, "a.b.gw.example.com"));
        assert_false(covers(w, "gw.example.com"));
        assert_false(covers(w, ".gw.example.com"));
        assert_false(covers(w, "myapp.gw.example.org"));
        /* The wildcard and a plain name under it are distinct entries. */
        assert_ptr_not_equal(get_ok(c, "gw.example.com"), w);
        assert_ptr_equal(get_ok(c, "*.gw.example.com"), w);
}

static void check_openssl_text(const char *file, const char *name, bool long_name)
{
        char cmd[1024], *out;
        int st;

        snprintf(cmd, sizeof(cmd), "openssl x509 -noout -text -in '%s'", path_of(file));
        out = run(cmd, &st);
        assert_int_equal(st, 0);
        if (!strstr(out, "Version: 3 (0x2)") || !strstr(out, "ASN1 OID: prime256v1") ||
            !strstr(out, "NIST CURVE: P-256") ||
            !strstr(out, "Signature Algorithm: ecdsa-with-SHA256") ||
            !strstr(out, "X509v3 Basic Constraints: critical\n                CA:FALSE") ||
            !strstr(out, "X509v3 Key Usage: critical\n                Digital Signature\n") ||
            !strstr(out, "X509v3 Extended Key Usage: \n                TLS Web Server "
                         "Authentication\n"))
                fail_msg("unexpected certificate:\n%s", out);
        {
                char san[512];

                snprintf(san, sizeof(san),
                         "X509v3 Subject Alternative Name: %s\n                DNS:%s\n",
                         long_name ? "critical" : "", name);
                if (!strstr(out, san))
                        fail_msg("no \"%s\" in:\n%s", san, out);
        }
        free(out);

        /* Subject = issuer = CN=name (O=... for names longer than a CN). */
        snprintf(cmd, sizeof(cmd), "openssl x509 -noout -subject -issuer -nameopt RFC2253 -in '%s'",
                 path_of(file));
        out = run(cmd, &st);
        assert_int_equal(st, 0);
        {
                char want[1024];

                if (long_name)
                        snprintf(want, sizeof(want),
                                 "subject=O=gatewayd self-signed\nissuer=O=gatewayd self-signed\n");
                else
                        snprintf(want, sizeof(want), "subject=CN=%s\nissuer=CN=%s\n", name, name);
                assert_string_equal(out, want);
        }
        free(out);
}

static time_t openssl_date(const char *out, const char *field)
{
        const char *p = strstr(out, field);
        struct tm tm = {0};

        assert_non_null(p);
        p += strlen(field);
        /* "Mar  1 12:00:00 2025 GMT" */
        assert_non_null(strptime(p, "%b %d %H:%M:%S %Y GMT", &tm));
        return timegm(&tm);
}

static void test_openssl_cli(void **state)
{
        _cleanup_(gw_certs_freep) struct gw_certs *c = NULL;
        char cmd[2048], *out, *pub1, *pub2;
        time_t now = time(NULL), nb, na;
        int st;

        assert_int_equal(gw_certs_new(certdir, &c), 0);
        get_ok(c, "www.example.io");
        get_ok(c, "*.gw.example.io");
        check_openssl_text("www.example.io.crt", "www.example.io", false);
        check_openssl_text("_wildcard.gw.example.io.crt", "*.gw.example.io", false);

        /* Validity: now - 1 h .. now + 397 days (a minute of slack). */
        snprintf(cmd, sizeof(cmd), "openssl x509 -noout -dates -in '%s'",
                 path_of("www.example.io.crt"));
        out = run(cmd, &st);
        assert_int_equal(st, 0);
        nb = openssl_date(out, "notBefore=");
        na = openssl_date(out, "notAfter=");
        free(out);
        assert_true(nb >= now - 3600 - 60 && nb <= now - 3600 + 60);
        assert_true(na >= now + 397 * DAY - 60 && na <= now + 397 * DAY + 60);

        /* Serial: 128 random bits (openssl prints it in hex without leading
         * zero bytes; 16 zero top bits happen with probability 2^-16). */
        snprintf(cmd, sizeof(cmd), "openssl x509 -noout -serial -in '%s'",
                 path_of("www.example.io.crt"));
        out = run(cmd, &st);
        assert_int_equal(st, 0);
        assert_true(strncmp(out, "serial=", 7) == 0);
        assert_true(strlen(out + 7) - 1 <= 32 && strlen(out + 7) - 1 >= 28);
        free(out);

        /* The key file holds the certificate's key. */
        snprintf(cmd, sizeof(cmd), "openssl pkey -pubout -in '%s'", path_of("www.example.io.key"));
        pub1 = run(cmd, &st);
        assert_int_equal(st, 0);
        snprintf(cmd, sizeof(cmd), "openssl x509 -noout -pubkey -in '%s'",
                 path_of("www.example.io.crt"));
        pub2 = run(cmd, &st);
        assert_int_equal(st, 0);
        assert_string_equal(pub1, pub2);
        assert_non_null(strstr(pub1, "-----BEGIN PUBLIC KEY-----"));
        free(pub1);
        free(pub2);

        /* Self-signed, verifies against itself as a TLS server for its name
         * (and, for the wildcard, for one label only). */
        static const struct {
                const char *file, *host;
                bool ok;
        } verify[] = {
                {"www.example.io.crt", "www.example.io", true},
                {"www.example.io.crt", "example.io", false},
                {"_wildcard.gw.example.io.crt", "app.gw.example.io", true},
                {"_wildcard.gw.example.io.crt", "a.b.gw.example.io", false},
                {"_wildcard.gw.example.io.crt", "gw.example.io", false},
        };
        for (size_t i = 0; i < ELEMENTSOF(verify); i++) {
                snprintf(cmd, sizeof(cmd),
                         "openssl verify -purpose sslserver -verify_hostname '%s' -CAfile '%s' "
                         "'%s' 2>&1",
                         verify[i].host, path_of(verify[i].file), path_of(verify[i].file));
                out = run(cmd, &st);
                if ((st == 0) != verify[i].ok)
                        fail_msg("%s for %s: status %d: %s", verify[i].file, verify[i].host, st,
                                 out);
                if (verify[i].ok)
                        assert_non_null(strstr(out, ": OK"));
                free(out);
        }
}

static void test_long_names(void **state)
{
        _cleanup_(gw_certs_freep) struct gw_certs *c = NULL;
        char name[254], name100[101], file[128], cmd[1024], *out;
        struct proxy_cert *cert;
        int st;

        assert_int_equal(gw_certs_new(certdir, &c), 0);

        /* 100 bytes: more than a CN holds, still a file name. */
        memset(name100, 'a', 100);
        name100[50] = '.';
        name100[99] = 'z';
        name100[100] = 0;
        cert = get_ok(c, name100);
        assert_true(covers(cert, name100));
        snprintf(file, sizeof(file), "%s.crt", name100);
        assert_true(exists(file));
        check_openssl_text(file, name100, true);
        snprintf(cmd, sizeof(cmd),
                 "openssl verify -purpose sslserver -verify_hostname '%s' -CAfile '%s' '%s' 2>&1",
                 name100, path_of(file), path_of(file));
        out = run(cmd, &st);
        if (st != 0)
                fail_msg("%s", out);
        free(out);
        assert_int_equal(count_files(), 2);

        /* 253 bytes (4 labels of 63 and 3 dots... minus one): valid, but its
         * file name would be too long; kept in memory only. */
        memset(name, 'b', 253);
        name[63] = name[127] = name[191] = '.';
        name[253] = 0;
        cert = get_ok(c, name);
        assert_true(covers(cert, name));
        assert_ptr_equal(get_ok(c, name), cert);
        assert_int_equal(count_files(), 2);
        gw_certs_forget(c, name, true);
        assert_int_equal(count_files(), 2);
        name[0] = '*';
        name[1] = '.';
        cert = get_ok(c, name);
        assert_true(covers(cert, name));
        assert_int_equal(count_files(), 2);
}

static void test_replace(void **state)
{
        _cleanup_(gw_certs_freep) struct gw_certs *c = NULL, *c2 = NULL;
        char *before, *after, *other_key;
        struct proxy_cert *cert;
        char *hex_before, *hex_after;

        mkdir_p(certdir, 0700);

        /* A foreign pair valid for 60 days is kept (and read: openssl writes
         * PKCS#8 keys); one valid for 10 days is replaced. */
        openssl_pair("keep.example.com", "keep.example.com", 60);
        openssl_pair("soon.example.com", "soon.example.com", 10);
        hex_before = file_der_hex("keep.example.com.crt");
        before = slurp("soon.example.com.crt");
        assert_int_equal(gw_certs_new(certdir, &c), 0);
        cert = get_ok(c, "keep.example.com");
        hex_after = served_der_hex(cert);
        assert_string_equal(hex_before, hex_after);
        free(hex_before);
        free(hex_after);
        cert = get_ok(c, "soon.example.com");
        after = slurp("soon.example.com.crt");
        assert_string_not_equal(before, after);
        assert_true(proxy_cert_not_after(cert) > (long long)time(NULL) + 396 * DAY);
        hex_before = file_der_hex("soon.example.com.crt");
        hex_after = served_der_hex(cert);
        assert_string_equal(hex_before, hex_after);
        free(hex_before);
        free(hex_after);
        free(before);
        free(after);

        /* Make good pairs for the next cases, then damage them. */
        get_ok(c, "corrupt.example.com");
        get_ok(c, "mismatch.example.com");
        get_ok(c, "other.example.com");
        get_ok(c, "nokey.example.com");
        get_ok(c, "mode.example.com");
        get_ok(c, "truncated.example.com");
        c = gw_certs_free(c);

        spit("corrupt.example.com.crt", "garbage\n");
        other_key = slurp("other.example.com.key");
        spit("mismatch.example.com.key", other_key);
        free(other_key);
        copy("other.example.com.crt", "wrongname.example.com.crt");
        copy("other.example.com.key", "wrongname.example.com.key");
        assert_int_equal(unlink(path_of("nokey.example.com.key")), 0);
        assert_int_equal(chmod(path_of("mode.example.com.key"), 0644), 0);
        before = slurp("truncated.example.com.crt");
        before[strlen(before) / 2] = 0;
        spit("truncated.example.com.crt", before);
        free(before);

        assert_int_equal(gw_certs_new(certdir, &c2), 0);
        static const char *const replaced[] = {
                "corrupt.example.com", "mismatch.example.com",  "wrongname.example.com",
                "nokey.example.com",   "truncated.example.com",
        };
        for (size_t i = 0; i < ELEMENTSOF(replaced); i++) {
                char crt[128], key[128];

                cert = get_ok(c2, replaced[i]);
                assert_true(covers(cert, replaced[i]));
                snprintf(crt, sizeof(crt), "%s.crt", replaced[i]);
                snprintf(key, sizeof(key), "%s.key", replaced[i]);
                hex_before = file_der_hex(crt);
                hex_after = served_der_hex(cert);
                assert_string_equal(hex_before, hex_after);
                free(hex_before);
                free(hex_after);
                assert_int_equal(mode_of(path_of(key)), 0600);
        }
        /* A good pair whose key was readable by others: kept, mode fixed. */
        before = file_der_hex("mode.example.com.crt");
        cert = get_ok(c2, "mode.example.com");
        after = served_der_hex(cert);
        assert_string_equal(before, after);
        assert_int_equal(mode_of(path_of("mode.example.com.key")), 0600);
        free(before);
        free(after);
}

static void test_write_error(void **state)
{
        _cleanup_(gw_certs_freep) struct gw_certs *c = NULL;
        struct proxy_cert *cert = NULL;
        char *err = NULL;

        assert_int_equal(gw_certs_new(certdir, &c), 0);
        /* A directory where the key file goes: unreadable, and it cannot be
         * replaced by a rename. */
        assert_int_equal(mkdir(path_of("blocked.example.com.key"), 0700), 0);
        assert_true(gw_certs_get(c, "blocked.example.com", &cert, &err) < 0);
        assert_non_null(err);
        assert_non_null(strstr(err, "failed to write "));
        assert_non_null(strstr(err, "blocked.example.com.key"));
        free(err);
        /* Not cached: a later call retries, and succeeds once it can. */
        assert_int_equal(rmdir(path_of("blocked.example.com.key")), 0);
        cert = get_ok(c, "blocked.example.com");
        assert_true(exists("blocked.example.com.key"));
        /* reterr may be NULL. */
        assert_int_equal(gw_certs_get(c, "a/b", &cert, NULL), -EINVAL);
}

static void test_forget(void **state)
{
        _cleanup_(gw_certs_freep) struct gw_certs *c = NULL;
        struct proxy_cert *a, *b, *kept;
        char *hex_a, *hex_b;

        assert_int_equal(gw_certs_new(certdir, &c), 0);
        a = get_ok(c, "gone.example.com");
        kept = proxy_cert_ref(a);
        hex_a = served_der_hex(a);
        get_ok(c, "*.gw.example.com");
        get_ok(c, "stay.example.com");
        assert_int_equal(count_files(), 6);

        /* Forget without removing: reloaded from the files. */
        gw_certs_forget(c, "GONE.example.com.", false);
        assert_int_equal(count_files(), 6);
        b = get_ok(c, "gone.example.com");
        hex_b = served_der_hex(b);
        assert_string_equal(hex_a, hex_b);
        free(hex_b);

        /* Forget and remove: a new certificate next time. */
        gw_certs_forget(c, "gone.example.com", true);
        assert_false(exists("gone.example.com.crt"));
        assert_false(exists("gone.example.com.key"));
        assert_int_equal(count_files(), 4);
        gw_certs_forget(c, "*.gw.example.com", true);
        assert_false(exists("_wildcard.gw.example.com.crt"));
        assert_int_equal(count_files(), 2);
        assert_true(exists("stay.example.com.crt"));

        /* A reference taken before forget stays valid. */
        assert_true(covers(kept, "gone.example.com"));
        b = get_ok(c, "gone.example.com");
        hex_b = served_der_hex(b);
        assert_string_not_equal(hex_a, hex_b);
        free(hex_a);
        free(hex_b);
        proxy_cert_unref(kept);

        /* Unknown and invalid names are ignored. */
        gw_certs_forget(c, "unknown.example.com", true);
        gw_certs_forget(c, "../stay.example.com", true);
        gw_certs_forget(c, "", true);
        gw_certs_forget(c, NULL, true);
        assert_true(exists("stay.example.com.crt"));
        assert_int_equal(count_files(), 4);
}

static void test_bad_names(void **state)
{
        _cleanup_(gw_certs_freep) struct gw_certs *c = NULL;
        char long_name[300], long_label[80];
        const struct {
                const char *name, *err;
        } bad[] = {
                {"", "empty certificate name"},
                {".", "empty label in certificate name"},
                {"a/b", "invalid character '/' in certificate name"},
                {"../etc/passwd", "empty label in certificate name"},
                {"..", "empty label in certificate name"},
                {".hidden.example.com", "empty label in certificate name"},
                {"a..b", "empty label in certificate name"},
                {"a.b..", "empty label in certificate name"},
                {"a b.com", "invalid byte 0x20 in certificate name"},
                {"a,DNS:evil.com", "invalid character ',' in certificate name"},
                {"caf\xc3\xa9.com", "invalid byte 0xc3 in certificate name"},
                {"tab\t.com", "invalid byte 0x09 in certificate name"},
                {"*", "'*' is allowed only as the whole first label"},
                {"*.", "'*' is allowed only as the whole first label"},
                {"**.a.b", "'*' is allowed only as the whole first label"},
                {"a*.b.c", "'*' is allowed only as the whole first label"},
                {"x.*.b.c", "'*' is allowed only as the whole first label"},
                {"*.*.b", "'*' is allowed only as the whole first label"},
                {"*..b", "empty label in certificate name"},
                {long_name, "certificate name longer than 253 bytes"},
                {long_label, "label longer than 63 bytes in certificate name"},
        };

        memset(long_name, 'a', 254);
        for (int i = 50; i < 254; i += 50)
                long_name[i] = '.';
        long_name[254] = 0;
        memset(long_label, 'a', 64);
        strcpy(long_label + 64, ".com");

        assert_int_equal(gw_certs_new(certdir, &c), 0);
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                struct proxy_cert *cert = NULL;
                char *err = NULL;

                assert_int_equal(gw_certs_get(c, bad[i].name, &cert, &err), -EINVAL);
                assert_null(cert);
                assert_non_null(err);
                if (!strstr(err, bad[i].err))
                        fail_msg("%s: got \"%s\", want \"%s\"", bad[i].name, err, bad[i].err);
                free(err);
        }
        assert_int_equal(count_files(), 0);

        /* Edge cases that are fine: 253 bytes with a trailing dot, one
         * label of 63, '-' and '_'. */
        long_name[253] = '.';
        assert_non_null(get_ok(c, long_name));
        memset(long_label, 'a', 63);
        strcpy(long_label + 63, ".com");
        assert_non_null(get_ok(c, long_label));
        assert_non_null(get_ok(c, "_acme-challenge.x-y.example"));
        assert_non_null(get_ok(c, "localhost"));
}

static void test_dir(void **state)
{
        _cleanup_(gw_certs_freep) struct gw_certs *c = NULL;
        struct gw_certs *c2 = NULL;
        char file[600];

        /* An existing directory is tightened to 0700; stale temporary files
         * of an interrupted write are removed, other files stay. */
        assert_int_equal(mkdir_p(certdir, 0755), 0);
        assert_int_equal(chmod(certdir, 0755), 0);
        spit(".#a.example.com.crt.12345", "x");
        spit(".#a.example.com.key.12345", "x");
        spit("README", "x");
        assert_int_equal(gw_certs_new(certdir, &c), 0);
        assert_int_equal(mode_of(certdir), 0700);
        assert_false(exists(".#a.example.com.crt.12345"));
        assert_false(exists(".#a.example.com.key.12345"));
        assert_true(exists("README"));

        /* Not a directory. */
        snprintf(file, sizeof(file), "%s/README", certdir);
        assert_true(gw_certs_new(file, &c2) < 0);
        assert_null(c2);
        gw_certs_free(NULL);
}

/* A pair as an ACME server would hand it over, made by python3-cryptography:
 * a CA-signed leaf for @names (comma-separated) valid from @from_days to
 * @to_days relative to now, as "<file>.chain" (leaf + CA) and "<file>.key". */
static void issued_pair(const char *names, const char *file, int from_days, int to_days)
{
        char cmd[4096];
        int st;

        snprintf(cmd, sizeof(cmd),
                 "/usr/bin/python3 - <<'PY'\n"
                 "import datetime\n"
                 "from cryptography import x509\n"
                 "from cryptography.x509.oid import NameOID\n"
                 "from cryptography.hazmat.primitives import hashes, serialization\n"
                 "from cryptography.hazmat.primitives.asymmetric import ec\n"
                 "now = datetime.datetime.now(datetime.timezone.utc)\n"
                 "ck = ec.generate_private_key(ec.SECP256R1())\n"
                 "cn = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, 'Test CA')])\n"
                 "ca = (x509.CertificateBuilder().subject_name(cn).issuer_name(cn)"
                 ".public_key(ck.public_key()).serial_number(1)"
                 ".not_valid_before(now - datetime.timedelta(days=400))"
                 ".not_valid_after(now + datetime.timedelta(days=400))"
                 ".add_extension(x509.BasicConstraints(ca=True, path_length=None), True)"
                 ".sign(ck, hashes.SHA256()))\n"
                 "k = ec.generate_private_key(ec.SECP256R1())\n"
                 "names = '%s'.split(',')\n"
                 "leaf = (x509.CertificateBuilder()"
                 ".subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))"
                 ".issuer_name(cn).public_key(k.public_key())"
                 ".serial_number(x509.random_serial_number())"
                 ".not_valid_before(now + datetime.timedelta(days=%d))"
                 ".not_valid_after(now + datetime.timedelta(days=%d))"
                 ".add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), "
                 "False).sign(ck, hashes.SHA256()))\n"
                 "pem = serialization.Encoding.PEM\n"
                 "open('%s/%s.chain', 'wb').write(leaf.public_bytes(pem) + ca.public_bytes(pem))\n"
                 "open('%s/%s.key', 'wb').write(k.private_bytes(pem, "
                 "serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))\n"
                 "PY",
                 names, from_days, to_days, tmpdir, file, tmpdir, file);
        free(run(cmd, &st));
        assert_int_equal(st, 0);
}

static char *tmp_slurp(const char *file)
{
        char path[512], *data = NULL;

        snprintf(path, sizeof(path), "%s/%s", tmpdir, file);
        assert_int_equal(read_file_full(path, 1 << 20, &data, NULL), 0);
        return data;
}

static int count_issued(const char *prefix)
{
        char dir[512];
        struct dirent *de;
        DIR *d;
        int n = 0;

        snprintf(dir, sizeof(dir), "%s/acme", certdir);
        d = opendir(dir);
        if (!d)
                return 0;
        while ((de = readdir(d)))
                if (strncmp(de->d_name, prefix, strlen(prefix)) == 0)
                        n++;
        closedir(d);
        return n;
}

static void test_issued(void **state)
{
        _cleanup_(gw_certs_freep) struct gw_certs *c = NULL;
        _cleanup_free_ char *chain = NULL, *key = NULL, *wchain = NULL, *wkey = NULL, *pem = NULL,
                            *err = NULL, *self_hex = NULL, *issued_hex = NULL, *hex = NULL;
        struct proxy_cert *self, *issued = NULL, *kept;
        size_t len = 0;

        issued_pair("www.example.io", "www", -1, 44);
        issued_pair("*.gw.example.io,gw.example.io", "wild", -1, 6);
        chain = tmp_slurp("www.chain");
        key = tmp_slurp("www.key");
        wchain = tmp_slurp("wild.chain");
        wkey = tmp_slurp("wild.key");

        assert_int_equal(gw_certs_new(certdir, &c), 0);
        self = get_ok(c, "www.example.io");
        kept = proxy_cert_ref(self);
        self_hex = served_der_hex(self);
        assert_false(gw_certs_serves_issued(c, "www.example.io"));
        assert_int_equal(gw_certs_issued_pem(c, "www.example.io", &pem, &len), 0);

        /* Wrong name, wrong key: refused, nothing written, nothing changed. */
        assert_int_equal(gw_certs_install(c, "other.example.io", chain, strlen(chain), key,
                                          strlen(key), &issued, &err),
                         -EINVAL);
        assert_non_null(strstr(err, "does not cover other.example.io"));
        err = mfree(err);
        assert_true(gw_certs_install(c, "www.example.io", chain, strlen(chain), wkey, strlen(wkey),
                                     &issued, &err) < 0);
        assert_non_null(err);
        err = mfree(err);
        assert_int_equal(count_issued(""), 0);
        assert_false(gw_certs_serves_issued(c, "www.example.io"));

        /* Installed: served from now on, stored 0600 as one file. */
        assert_int_equal(gw_certs_install(c, "WWW.example.io", chain, strlen(chain), key,
                                          strlen(key), &issued, &err),
                         0);
        assert_null(err);
        assert_ptr_equal(get_ok(c, "www.example.io"), issued);
        assert_true(gw_certs_serves_issued(c, "www.example.io"));
        issued_hex = served_der_hex(issued);
        assert_string_not_equal(issued_hex, self_hex);
        assert_int_equal(mode_of(path_of("acme/www.example.io.pem")), 0600);
        /* A route holding the self-signed one keeps a valid reference. */
        assert_true(covers(kept, "www.example.io"));
        proxy_cert_unref(kept);

        /* The stored chain comes back without the key. */
        assert_int_equal(gw_certs_issued_pem(c, "www.example.io", &pem, &len), 1);
        assert_int_equal(len, strlen(chain));
        assert_string_equal(pem, chain);
        assert_null(strstr(pem, "PRIVATE KEY"));
        pem = mfree(pem);

        /* A restart serves the issued one again, not the self-signed one. */
        assert_int_equal(gw_certs_install(c, "*.gw.example.io", wchain, strlen(wchain), wkey,
                                          strlen(wkey), &issued, &err),
                         0);
        c = gw_certs_free(c);
        assert_int_equal(gw_certs_new(certdir, &c), 0);
        hex = served_der_hex(get_ok(c, "www.example.io"));
        assert_string_equal(hex, issued_hex);
        hex = mfree(hex);
        assert_true(covers(get_ok(c, "*.gw.example.io"), "gw.example.io"));
        assert_true(gw_certs_serves_issued(c, "*.gw.example.io"));
        /* Served since the restart (the manager asks after the routes
         * loaded it): the same chain, still without the key. */
        assert_int_equal(gw_certs_issued_pem(c, "www.example.io", &pem, &len), 1);
        assert_string_equal(pem, chain);
        assert_int_equal(len, strlen(chain));
        pem = mfree(pem);

        /* A damaged file is moved aside and the self-signed one served. */
        c = gw_certs_free(c);
        spit("acme/www.example.io.pem", "-----BEGIN CERTIFICATE-----\nnot base64\n");
        assert_int_equal(gw_certs_new(certdir, &c), 0);
        hex = served_der_hex(get_ok(c, "www.example.io"));
        assert_string_equal(hex, self_hex);
        hex = mfree(hex);
        assert_false(gw_certs_serves_issued(c, "www.example.io"));
        assert_false(exists("acme/www.example.io.pem"));
        assert_int_equal(count_issued("www.example.io.pem.corrupt-"), 1);

        /* Forget removes the issued file with the self-signed pair. */
        gw_certs_forget(c, "*.gw.example.io", true);
        assert_false(exists("acme/_wildcard.gw.example.io.pem"));
        assert_false(gw_certs_serves_issued(c, "*.gw.example.io"));
}

/* @len bytes of labels of at most 63 ("aaa...a.aaa...a"), behind "*." if
 * @wildcard (then @len counts the whole name). */
static void long_name(char *buf, size_t len, bool wildcard)
{
        size_t i = 0;

        if (wildcard) {
                buf[i++] = '*';
                buf[i++] = '.';
        }
        for (size_t label = 0; i < len; i++, label++) {
                buf[i] = label == 63 && i + 1 < len ? '.' : 'a';
                if (buf[i] == '.')
                        label = (size_t)-1;
        }
        buf[len] = 0;
}

/* What the ACME manager asks before it orders: a certificate it could not
 * store would be issued, thrown away and ordered again. */
static void test_check_name(void **state)
{
        char name[300];
        char *err = NULL;

        assert_int_equal(gw_certs_check_name("app.example.org", &err), 0);
        assert_null(err);
        assert_int_equal(gw_certs_check_name("*.gw.example.org", NULL), 0);
        assert_int_equal(gw_certs_check_name("App.Example.org.", NULL), 0);

        /* "<name>.pem" must fit write_file_atomic()'s limit: 235 bytes. */
        long_name(name, 235, false);
        assert_int_equal(gw_certs_check_name(name, NULL), 0);
        long_name(name, 236, false);
        assert_int_equal(gw_certs_check_name(name, &err), -ENAMETOOLONG);
        assert_non_null(strstr(err, "too long to store (at most 235 bytes)"));
        err = mfree(err);
        /* "_wildcard.<domain>.pem": 227 bytes with the "*.". */
        long_name(name, 227, true);
        assert_int_equal(gw_certs_check_name(name, NULL), 0);
        long_name(name, 228, true);
        assert_int_equal(gw_certs_check_name(name, &err), -ENAMETOOLONG);
        assert_non_null(strstr(err, "at most 227 bytes"));
        err = mfree(err);
        long_name(name, 253, false);
        assert_int_equal(gw_certs_check_name(name, NULL), -ENAMETOOLONG);

        /* Not a name the store takes at all. */
        assert_int_equal(gw_certs_check_name("", NULL), -EINVAL);
        assert_int_equal(gw_certs_check_name("a b.example.org", &err), -EINVAL);
        assert_non_null(err);
        err = mfree(err);
        assert_int_equal(gw_certs_check_name("a.*.example.org", NULL), -EINVAL);
        long_name(name, 254, false);
        assert_int_equal(gw_certs_check_name(name, NULL), -EINVAL);
}

/* An issued certificate past its notAfter is not served; its file stays
 * (the manager renews it and needs to know it was there). */
static void test_issued_expired(void **state)
{
        _cleanup_(gw_certs_freep) struct gw_certs *c = NULL;
        _cleanup_free_ char *chain = NULL, *key = NULL, *pem = NULL, *err = NULL;
        struct proxy_cert *cert = NULL;
        size_t len;

        issued_pair("old.example.io", "old", -10, -1);
        chain = tmp_slurp("old.chain");
        key = tmp_slurp("old.key");
        assert_int_equal(gw_certs_new(certdir, &c), 0);
        assert_int_equal(gw_certs_install(c, "old.example.io", chain, strlen(chain), key,
                                          strlen(key), &cert, &err),
                         0);
        c = gw_certs_free(c);
        assert_int_equal(gw_certs_new(certdir, &c), 0);
        assert_int_equal(gw_certs_issued_pem(c, "old.example.io", &pem, &len), 0);
        get_ok(c, "old.example.io");
        assert_false(gw_certs_serves_issued(c, "old.example.io"));
        assert_true(exists("acme/old.example.io.pem"));
        assert_true(exists("old.example.io.crt"));
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_generate_files, setup, teardown),
                cmocka_unit_test_setup_teardown(test_reload_same, setup, teardown),
                cmocka_unit_test_setup_teardown(test_wildcard, setup, teardown),
                cmocka_unit_test_setup_teardown(test_openssl_cli, setup, teardown),
                cmocka_unit_test_setup_teardown(test_long_names, setup, teardown),
                cmocka_unit_test_setup_teardown(test_replace, setup, teardown),
                cmocka_unit_test_setup_teardown(test_write_error, setup, teardown),
                cmocka_unit_test_setup_teardown(test_forget, setup, teardown),
                cmocka_unit_test_setup_teardown(test_bad_names, setup, teardown),
                cmocka_unit_test_setup_teardown(test_dir, setup, teardown),
                cmocka_unit_test_setup_teardown(test_issued, setup, teardown),
                cmocka_unit_test_setup_teardown(test_issued_expired, setup, teardown),
                cmocka_unit_test(test_check_name),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
