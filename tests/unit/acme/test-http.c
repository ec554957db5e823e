/* SPDX-License-Identifier: Apache-2.0 */
/* acme/http.c and http-conn.c on a real loop against TLS servers made in
 * this process: a thread per listener and per connection, blocking
 * BoringSSL, certificates made here (a test CA, its leaves, and an
 * untrusted CA). Every case says which response shape or failure it feeds
 * the client and what the client must report; keep-alive reuse is counted
 * on the server's accept()s. Pebble (Debian's, a Go TLS 1.3 server), when
 * installed, is the third-party interoperability check. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/bio.h>
#include <openssl/ec_key.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/nid.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <uv.h>

#include "acme/http.h"
#include "common/macros.h"
#include "gw-version.h"

#define WAIT_MS 15000 /* a wait longer than this fails the test */

extern char **environ;

static uint64_t now_ms(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* ================================================================
 * Certificates
 * ================================================================ */

static char tmpdir[] = "/tmp/test-acme-http-XXXXXX";
static char ca1_pem[128], ca2_pem[128], empty_pem[128], leaf_pem[128], leaf_key[128];
static SSL_CTX *ctx_good;      /* CA1 leaf: localhost, acme.test, 127.0.0.1, ::1 */
static SSL_CTX *ctx_untrusted; /* CA2 leaf, same names */
static SSL_CTX *ctx_noip;      /* CA1 leaf: acme.test only */

static EVP_PKEY *new_key(void)
{
        EVP_PKEY *k = EVP_PKEY_new();
        EC_KEY *ec = EC_KEY_new_by_curve_name(NID_X9_62_prime256v1);

        assert_non_null(k);
        assert_non_null(ec);
        assert_int_equal(EC_KEY_generate_key(ec), 1);
        assert_int_equal(EVP_PKEY_assign_EC_KEY(k, ec), 1);
        return k;
}

static void add_ext(X509 *x, X509 *issuer, int nid, const char *value)
{
        X509V3_CTX v3;
        X509_EXTENSION *ext;

        X509V3_set_ctx(&v3, issuer, x, NULL, NULL, 0);
        ext = X509V3_EXT_nconf_nid(NULL, &v3, nid, value);
        assert_non_null(ext);
        assert_int_equal(X509_add_ext(x, ext, -1), 1);
        X509_EXTENSION_free(ext);
}

/* A CA (@issuer NULL: self-signed) or a leaf for @san. */
static X509 *new_cert(const char *cn, EVP_PKEY *key, X509 *issuer, EVP_PKEY *issuer_key,
                      const char *san)
{
        static long serial = 1;
        X509 *x = X509_new();
        X509_NAME *name = X509_NAME_new();

        assert_non_null(x);
        assert_non_null(name);
        assert_int_equal(X509_set_version(x, X509_VERSION_3), 1);
        assert_int_equal(ASN1_INTEGER_set(X509_get_serialNumber(x), serial++), 1);
        assert_int_equal(X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const uint8_t *)cn,
                                                    -1, -1, 0),
                         1);
        assert_int_equal(X509_set_subject_name(x, name), 1);
        assert_int_equal(X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : name), 1);
        assert_non_null(X509_gmtime_adj(X509_getm_notBefore(x), -3600));
        assert_non_null(X509_gmtime_adj(X509_getm_notAfter(x), 86400));
        assert_int_equal(X509_set_pubkey(x, key), 1);
        if (!issuer) {
                add_ext(x, x, NID_basic_constraints, "critical,CA:TRUE");
                add_ext(x, x, NID_key_usage, "critical,keyCertSign,cRLSign");
        } else {
                add_ext(x, issuer, NID_basic_constraints, "critical,CA:FALSE");
                add_ext(x, issuer, NID_subject_alt_name, san);
        }
        assert_true(X509_sign(x, issuer_key ? issuer_key : key, EVP_sha256()) > 0);
        X509_NAME_free(name);
        return x;
}

static void write_pem(const char *path, X509 *x, EVP_PKEY *k)
{
        FILE *f = fopen(path, "w");

        assert_non_null(f);
        if (x)
                assert_int_equal(PEM_write_X509(f, x), 1);
        if (k)
                assert_int_equal(PEM_write_PKCS8PrivateKey(f, k, NULL, NULL, 0, NULL, NULL), 1);
        assert_int_equal(fclose(f), 0);
}

static int on_alpn(SSL *ssl, const uint8_t **out, uint8_t *out_len, const uint8_t *in,
                   unsigned in_len, void *arg)
{
        if (SSL_select_next_proto((uint8_t **)out, out_len, (const uint8_t *)"\x08http/1.1", 9, in,
                                  in_len) != OPENSSL_NPN_NEGOTIATED)
                return SSL_TLSEXT_ERR_NOACK;
        return SSL_TLSEXT_ERR_OK;
}

static SSL_CTX *server_ctx(X509 *leaf, EVP_PKEY *key)
{
        SSL_CTX *ctx = SSL_CTX_new(TLS_method());

        assert_non_null(ctx);
        assert_int_equal(SSL_CTX_use_certificate(ctx, leaf), 1);
        assert_int_equal(SSL_CTX_use_PrivateKey(ctx, key), 1);
        SSL_CTX_set_alpn_select_cb(ctx, on_alpn, NULL);
        return ctx;
}

static int group_setup(void **state)
{
        static const char names[] = "DNS:localhost,DNS:acme.test,IP:127.0.0.1,IP:::1";
        EVP_PKEY *ca1k = new_key(), *ca2k = new_key(), *k1 = new_key(), *k2 = new_key(),
                 *k3 = new_key();
        X509 *ca1, *ca2, *leaf1, *leaf2, *leaf3;
        FILE *f;

        uv_loop_t warm;

        /* libuv opens a process-wide signal pipe with the first loop: let
         * that happen before the tests count their descriptors. */
        assert_int_equal(uv_loop_init(&warm), 0);
        assert_int_equal(uv_loop_close(&warm), 0);
        assert_non_null(mkdtemp(tmpdir));
        snprintf(ca1_pem, sizeof(ca1_pem), "%s/ca1.pem", tmpdir);
        snprintf(ca2_pem, sizeof(ca2_pem), "%s/ca2.pem", tmpdir);
        snprintf(empty_pem, sizeof(empty_pem), "%s/empty.pem", tmpdir);
        snprintf(leaf_pem, sizeof(leaf_pem), "%s/leaf.pem", tmpdir);
        snprintf(leaf_key, sizeof(leaf_key), "%s/leaf.key", tmpdir);
        ca1 = new_cert("Test CA 1", ca1k, NULL, NULL, NULL);
        ca2 = new_cert("Test CA 2", ca2k, NULL, NULL, NULL);
        leaf1 = new_cert("leaf", k1, ca1, ca1k, names);
        leaf2 = new_cert("leaf", k2, ca2, ca2k, names);
        leaf3 = new_cert("noip", k3, ca1, ca1k, "DNS:acme.test");
        write_pem(ca1_pem, ca1, NULL);
        write_pem(ca2_pem, ca2, NULL);
        write_pem(leaf_pem, leaf1, NULL);
        write_pem(leaf_key, NULL, k1);
        f = fopen(empty_pem, "w");
        assert_non_null(f);
        fputs("-----BEGIN NOTHING-----\nAAAA\n-----END NOTHING-----\n", f);
        fclose(f);
        ctx_good = server_ctx(leaf1, k1);
        ctx_untrusted = server_ctx(leaf2, k2);
        ctx_noip = server_ctx(leaf3, k3);
        X509_free(ca1);
        X509_free(ca2);
        X509_free(leaf1);
        X509_free(leaf2);
        X509_free(leaf3);
        EVP_PKEY_free(ca1k);
        EVP_PKEY_free(ca2k);
        EVP_PKEY_free(k1);
        EVP_PKEY_free(k2);
        EVP_PKEY_free(k3);
        return 0;
}

static int group_teardown(void **state)
{
        const char *files[] = {ca1_pem, ca2_pem, empty_pem, leaf_pem, leaf_key};
        char path[256];

        for (size_t i = 0; i < ELEMENTSOF(files); i++)
                unlink(files[i]);
        snprintf(path, sizeof(path), "%s/pebble.json", tmpdir);
        unlink(path);
        snprintf(path, sizeof(path), "%s/pebble.log", tmpdir);
        unlink(path);
        snprintf(path, sizeof(path), "%s/s_server.log", tmpdir);
        unlink(path);
        rmdir(tmpdir);
        SSL_CTX_free(ctx_good);
        SSL_CTX_free(ctx_untrusted);
        SSL_CTX_free(ctx_noip);
        return 0;
}

/* ================================================================
 * The in-test TLS server: scripted by path
 * ================================================================ */

#define SRV_CONNS 64

struct srv {
        int lfd;
        uint16_t port;
        char host[64]; /* for URLs: "127.0.0.1" or "[::1]" */
        SSL_CTX *ctx;
        pthread_t thr;
        atomic_bool stop;
        atomic_int accepted;
        atomic_int requests;
        pthread_mutex_t mu; /* guards everything below */
        int fds[SRV_CONNS];
        pthread_t thrs[SRV_CONNS];
        unsigned n;
        char last_head[8192];
        char last_body[8192];
        size_t last_body_len;
        char sni[256];
        bool alpn_http11;
};

struct sconn {
        struct srv *s;
        unsigned slot;
        SSL *ssl;
        uint8_t in[65536];
        size_t in_len;
};

static bool read_more(struct sconn *c)
{
        int n;

        if (c->in_len == sizeof(c->in))
                return false;
        n = SSL_read(c->ssl, c->in + c->in_len, (int)(sizeof(c->in) - c->in_len));
        if (n <= 0)
                return false;
        c->in_len += (size_t)n;
        return true;
}

static void swrite(struct sconn *c, const char *p, size_t n)
{
        while (n > 0) {
                int k = SSL_write(c->ssl, p, (int)n);

                if (k <= 0)
                        return;
                p += k;
                n -= (size_t)k;
        }
}

static void swritef(struct sconn *c, const char *fmt, ...) _printf_(2, 3);
static void swritef(struct sconn *c, const char *fmt, ...)
{
        char *s = NULL;
        va_list ap;
        int n;

        va_start(ap, fmt);
        n = vasprintf(&s, fmt, ap);
        va_end(ap);
        if (n > 0)
                swrite(c, s, (size_t)n);
        free(s);
}

/* One request: its path, and the head and body recorded on the server. */
static bool read_request(struct sconn *c, char *path, size_t path_size)
{
        struct srv *s = c->s;
        char head[8192], *cl;
        uint8_t *end;
        size_t hl, n = 0;

        while (!(end = memmem(c->in, c->in_len, "\r\n\r\n", 4)))
                if (!read_more(c))
                        return false;
        hl = (size_t)(end + 4 - c->in);
        if (hl >= sizeof(head))
                return false;
        memcpy(head, c->in, hl);
        head[hl] = 0;
        memmove(c->in, c->in + hl, c->in_len - hl);
        c->in_len -= hl;
        cl = strcasestr(head, "\r\nContent-Length:");
        if (cl)
                n = strtoul(cl + 17, NULL, 10);
        if (n > sizeof(s->last_body))
                return false;
        while (c->in_len < n)
                if (!read_more(c))
                        return false;
        if (sscanf(head, "%*s %255s", path) != 1)
                return false;
        (void)path_size;
        pthread_mutex_lock(&s->mu);
        memcpy(s->last_head, head, hl + 1);
        memcpy(s->last_body, c->in, n);
        s->last_body_len = n;
        pthread_mutex_unlock(&s->mu);
        memmove(c->in, c->in + n, c->in_len - n);
        c->in_len -= n;
        atomic_fetch_add(&s->requests, 1);
        return true;
}

static void respond_links(struct sconn *c)
{
        swritef(c, "HTTP/1.1 503 Service Unavailable\r\n"
                   "Link: <https://other.test/x>;rel=\"index\", </acme/up>; rel=up\r\n"
                   "Retry-After: 120\r\n"
                   "link: <alt/1>;rel=\"alternate\"\r\n"
                   "Content-Type: application/problem+json\r\n"
                   "Content-Length: 2\r\n\r\n{}");
}

static void respond_chunked(struct sconn *c, size_t n)
{
        char buf[1000];

        swritef(c, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
        memset(buf, 'c', sizeof(buf));
        while (n > 0) {
                size_t k = MIN(n, sizeof(buf));

                swritef(c, "%zx\r\n", k);
                swrite(c, buf, k);
                swritef(c, "\r\n");
                n -= k;
        }
        swritef(c, "0\r\n\r\n");
}

static void *sconn_main(void *arg)
{
        struct sconn *c = arg;
        struct srv *s = c->s;
        bool drop_next = false, shut = true;
        char path[256];
        unsigned n;

        if (SSL_accept(c->ssl) != 1) {
                shut = false;
                goto out;
        }
        pthread_mutex_lock(&s->mu);
        {
                const char *sni = SSL_get_servername(c->ssl, TLSEXT_NAMETYPE_host_name);
                const uint8_t *alpn;
                unsigned alpn_len;

                snprintf(s->sni, sizeof(s->sni), "%s", sni ? sni : "");
                SSL_get0_alpn_selected(c->ssl, &alpn, &alpn_len);
                s->alpn_http11 = alpn_len == 8 && memcmp(alpn, "http/1.1", 8) == 0;
        }
        pthread_mutex_unlock(&s->mu);

        while (read_request(c, path, sizeof(path))) {
                if (drop_next) {
                        /* Read the request, then close without a byte of answer. */
                        shut = false;
                        break;
                }
                if (streq(path, "/cl") || streq(path, "/arm-drop")) {
                        swritef(c,
                                "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n"
                                "Replay-Nonce: nonce-%d\r\n\r\nhello",
                                atomic_load(&s->requests));
                        drop_next = streq(path, "/arm-drop");
                } else if (streq(path, "/echo")) {
                        char body[8300];
                        int k;

                        pthread_mutex_lock(&s->mu);
                        k = snprintf(body, sizeof(body), "%.*s", (int)s->last_body_len,
                                     s->last_body);
                        pthread_mutex_unlock(&s->mu);
                        swritef(c, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", k, body);
                } else if (streq(path, "/chunked")) {
                        swritef(c, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
                        swritef(c, "5\r\nhello\r\n");
                        swritef(c, "6;x=y\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n");
                } else if (streq(path, "/close") || streq(path, "/close-trunc")) {
                        swritef(c, "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end");
                        shut = streq(path, "/close");
                        break;
                } else if (streq(path, "/links")) {
                        respond_links(c);
                } else if (sscanf(path, "/big/%u", &n) == 1) {
                        char *b = malloc(n + 1);

                        memset(b, 'b', n);
                        swritef(c, "HTTP/1.1 200 OK\r\nContent-Length: %u\r\n\r\n", n);
                        swrite(c, b, n);
                        free(b);
                } else if (sscanf(path, "/bigchunked/%u", &n) == 1) {
                        respond_chunked(c, n);
                } else if (streq(path, "/bad")) {
                        swritef(c, "HTTP/1.1 20 OK\r\nContent-Length: 0\r\n\r\n");
                } else if (streq(path, "/interim")) {
                        swritef(c,
                                "HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n");
                        swritef(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
                } else if (streq(path, "/http10")) {
                        swritef(c, "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok");
                } else if (streq(path, "/drop")) {
                        shut = false;
                        break;
                } else if (streq(path, "/hang")) {
                        while (read_more(c))
                                ;
                        shut = false;
                        break;
                } else {
                        swritef(c, "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
                }
        }
out:
        if (shut)
                (void)SSL_shutdown(c->ssl);
        pthread_mutex_lock(&s->mu);
        close(s->fds[c->slot]);
        s->fds[c->slot] = -1;
        pthread_mutex_unlock(&s->mu);
        SSL_free(c->ssl);
        free(c);
        return NULL;
}

static void *srv_main(void *arg)
{
        struct srv *s = arg;

        while (!atomic_load(&s->stop)) {
                struct pollfd p = {.fd = s->lfd, .events = POLLIN};
                struct sconn *c;
                int fd;

                if (poll(&p, 1, 50) <= 0)
                        continue;
                fd = accept4(s->lfd, NULL, NULL, SOCK_CLOEXEC);
                if (fd < 0)
                        continue;
                atomic_fetch_add(&s->accepted, 1);
                c = calloc(1, sizeof(*c));
                pthread_mutex_lock(&s->mu);
                if (!c || s->n == SRV_CONNS) {
                        pthread_mutex_unlock(&s->mu);
                        free(c);
                        close(fd);
                        continue;
                }
                c->s = s;
                c->slot = s->n;
                c->ssl = SSL_new(s->ctx);
                SSL_set_fd(c->ssl, fd);
                s->fds[s->n] = fd;
                pthread_create(&s->thrs[s->n], NULL, sconn_main, c);
                s->n++;
                pthread_mutex_unlock(&s->mu);
        }
        return NULL;
}

static struct srv *servers[8];

/* A listening socket on @addr:@port (0: any), or -1 with errno. */
static int listen_on(const char *addr, uint16_t port, int backlog, uint16_t *ret_port)
{
        struct sockaddr_storage ss = {};
        struct sockaddr_in *in4 = (struct sockaddr_in *)&ss;
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
        socklen_t len;
        int fd, one = 1;

        if (strchr(addr, ':')) {
                in6->sin6_family = AF_INET6;
                in6->sin6_port = htons(port);
                assert_int_equal(inet_pton(AF_INET6, addr, &in6->sin6_addr), 1);
                len = sizeof(*in6);
        } else {
                in4->sin_family = AF_INET;
                in4->sin_port = htons(port);
                assert_int_equal(inet_pton(AF_INET, addr, &in4->sin_addr), 1);
                len = sizeof(*in4);
        }
        fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        assert_true(fd >= 0);
        (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        if (bind(fd, (struct sockaddr *)&ss, len) < 0 || listen(fd, backlog) < 0) {
                int e = errno;

                close(fd);
                errno = e;
                return -1;
        }
        assert_int_equal(getsockname(fd, (struct sockaddr *)&ss, &len), 0);
        *ret_port = ntohs(ss.ss_family == AF_INET6 ? in6->sin6_port : in4->sin_port);
        return fd;
}

static struct srv *srv_start(const char *addr, SSL_CTX *ctx)
{
        struct srv *s = calloc(1, sizeof(*s));
        size_t i;

        assert_non_null(s);
        s->lfd = listen_on(addr, 0, 64, &s->port);
        if (s->lfd < 0) {
                free(s);
                return NULL;
        }
        snprintf(s->host, sizeof(s->host), strchr(addr, ':') ? "[%s]" : "%s", addr);
        s->ctx = ctx;
        pthread_mutex_init(&s->mu, NULL);
        assert_int_equal(pthread_create(&s->thr, NULL, srv_main, s), 0);
        for (i = 0; i < ELEMENTSOF(servers) && servers[i]; i++)
                ;
        assert_true(i < ELEMENTSOF(servers));
        servers[i] = s;
        return s;
}

static void srv_stop(struct srv *s)
{
        atomic_store(&s->stop, true);
        pthread_join(s->thr, NULL);
        pthread_mutex_lock(&s->mu);
        for (unsigned i = 0; i < s->n; i++)
                if (s->fds[i] >= 0)
                        shutdown(s->fds[i], SHUT_RDWR);
        pthread_mutex_unlock(&s->mu);
        for (unsigned i = 0; i < s->n; i++)
                pthread_join(s->thrs[i], NULL);
        close(s->lfd);
        pthread_mutex_destroy(&s->mu);
        free(s);
}

static const char *url(const struct srv *s, const char *path)
{
        static char ring[8][256];
        static unsigned k;
        char *u = ring[k++ % ELEMENTSOF(ring)];

        snprintf(u, sizeof(ring[0]), "https://%s:%u%s", s->host, s->port, path);
        return u;
}

/* What the last handshake said (copied: no assertion may run under the
 * lock, a failing one would leave it held for the teardown). */
static void srv_tls(struct srv *s, char *sni, size_t size, bool *alpn_http11)
{
        pthread_mutex_lock(&s->mu);
        snprintf(sni, size, "%s", s->sni);
        *alpn_http11 = s->alpn_http11;
        pthread_mutex_unlock(&s->mu);
}

static void last_head(struct srv *s, char *out, size_t size)
{
        pthread_mutex_lock(&s->mu);
        snprintf(out, size, "%s", s->last_head);
        pthread_mutex_unlock(&s->mu);
}

/* ================================================================
 * The client side
 * ================================================================ */

static uv_loop_t loop;
static uv_timer_t watchdog;
static struct acme_http *h;

struct res {
        int called;
        int r;
        int status;
        char body[70000];
        size_t body_len;
        char nonce[64];
        char up[256], index[256], alt[256];
        size_t n_links;
        int ra_r;
        uint64_t ra;
        /* What the callback does: */
        bool free_client;
        bool cancel_self;
        struct acme_http_req *self;
        const char *chain_url; /* start a GET of this from the callback */
        struct res *chain;
        int chain_r;
};

static void copy_str(char *out, size_t size, const char *s)
{
        snprintf(out, size, "%s", s ? s : "");
}

static void on_done(void *ud, int r, const struct acme_http_response *resp);

static int request(const char *method, const char *u, const char *body, struct res *x)
{
        struct acme_http_request req = {
                .method = method,
                .url = u,
                .body = body,
                .body_len = body ? strlen(body) : 0,
                .content_type = body ? "application/jose+json" : NULL,
                .accept = "application/json",
        };

        return acme_http_request(h, &req, on_done, x, &x->self);
}

static void on_done(void *ud, int r, const struct acme_http_response *resp)
{
        struct res *x = ud;

        /* No cmocka assertions in here: a failure would longjmp out of
         * uv_run(). Record, and let the test check. */
        x->called++;
        x->r = r;
        if (resp) {
                x->status = resp->status;
                x->body_len = resp->body_len;
                memcpy(x->body, resp->body, MIN(resp->body_len + 1, sizeof(x->body)));
                copy_str(x->nonce, sizeof(x->nonce),
                         acme_http_response_header(resp, "Replay-Nonce"));
                copy_str(x->up, sizeof(x->up), acme_http_response_link(resp, "up"));
                copy_str(x->index, sizeof(x->index), acme_http_response_link(resp, "index"));
                copy_str(x->alt, sizeof(x->alt), acme_http_response_link(resp, "alternate"));
                x->n_links = resp->n_links;
                x->ra_r = acme_http_retry_after(resp, time(NULL), &x->ra);
        }
        if (x->cancel_self)
                acme_http_cancel(x->self);
        if (x->chain_url)
                x->chain_r = request("GET", x->chain_url, NULL, x->chain);
        if (x->free_client) {
                acme_http_free(h);
                h = NULL;
        }
}

static void on_watchdog(uv_timer_t *t)
{
        /* Only wakes uv_run(UV_RUN_ONCE) up, so waits check their clock. */
}

static unsigned count_fds(void)
{
        char path[64];
        unsigned n = 0;

        for (int fd = 0; fd < 1024; fd++) {
                snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
                n += access(path, F_OK) == 0;
        }
        return n;
}

static unsigned fds_before;

static int setup(void **state)
{
        fds_before = count_fds();
        assert_int_equal(uv_loop_init(&loop), 0);
        assert_int_equal(uv_timer_init(&loop, &watchdog), 0);
        assert_int_equal(uv_timer_start(&watchdog, on_watchdog, 50, 50), 0);
        return 0;
}

static void dns_done(void);

static int teardown(void **state)
{
        acme_http_free(h);
        h = NULL;
        dns_done();
        uv_close((uv_handle_t *)&watchdog, NULL);
        assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
        assert_int_equal(uv_loop_close(&loop), 0);
        for (size_t i = 0; i < ELEMENTSOF(servers); i++)
                if (servers[i]) {
                        srv_stop(servers[i]);
                        servers[i] = NULL;
                }
        /* Every socket, poll and timer of the client is gone. */
        assert_int_equal(count_fds(), fds_before);
        return 0;
}

static struct acme_http_config cfg_base(void)
{
        return (struct acme_http_config){
                .loop = &loop,
                .ca_file = ca1_pem,
                .no_system_roots = true,
                .connect_timeout_ms = 3000,
                .timeout_ms = 8000,
        };
}

static void client(const struct acme_http_config *cfg)
{
        char *err = NULL;
        int r = acme_http_new(cfg, &h, &err);

        if (r < 0)
                fail_msg("acme_http_new: %d %s", r, err ? err : "");
        assert_null(err);
}

static void wait_for(const int *called, int want)
{
        uint64_t start = now_ms();

        while (*called < want) {
                (void)uv_run(&loop, UV_RUN_ONCE);
                if (now_ms() - start > WAIT_MS)
                        fail_msg("timed out waiting for a callback");
        }
}

/* Until either flag is set. */
static void wait_for2(const int *a, const int *b)
{
        uint64_t start = now_ms();

        while (!*a && !*b) {
                (void)uv_run(&loop, UV_RUN_ONCE);
                if (now_ms() - start > WAIT_MS)
                        fail_msg("timed out waiting for a callback");
        }
}

static void run_for(uint64_t ms)
{
        uint64_t start = now_ms();

        while (now_ms() - start < ms)
                (void)uv_run(&loop, UV_RUN_ONCE);
}

/* Until the server has read @n requests. */
static void wait_requests(struct srv *s, int n)
{
        uint64_t start = now_ms();

        while (atomic_load(&s->requests) < n) {
                (void)uv_run(&loop, UV_RUN_ONCE);
                if (now_ms() - start > WAIT_MS)
                        fail_msg("timed out waiting for the server");
        }
}

/* One request, waited for. */
static void do_req(const char *method, const char *u, const char *body, struct res *x)
{
        int called = x->called;

        assert_int_equal(request(method, u, body, x), 0);
        wait_for(&x->called, called + 1);
        assert_int_equal(x->called, called + 1);
}

static void expect_ok(const char *method, const char *u, const char *body, int status,
                      const char *want_body)
{
        static struct res x;

        x = (struct res){};
        do_req(method, u, body, &x);
        if (x.r != 0)
                fail_msg("%s %s: %d (%s)", method, u, x.r, strerror(-x.r));
        assert_int_equal(x.status, status);
        if (want_body)
                assert_string_equal(x.body, want_body);
}

static int expect_err(const char *u)
{
        static struct res x;

        x = (struct res){};
        do_req("GET", u, NULL, &x);
        return x.r;
}

/* ---- a resolver hook ---- */

enum dns_mode {
        DNS_SYNC,        /* answers inside resolve() */
        DNS_ASYNC,       /* answers from a timer */
        DNS_FAIL_ASYNC,  /* -ENOENT from a timer */
        DNS_FAIL_RETURN, /* resolve() itself fails */
        DNS_EMPTY,       /* success with no address */
        DNS_NEVER,       /* waits until cancelled */
};

static struct {
        bool init;
        enum dns_mode mode;
        char *addrs[4];
        size_t n;
        int calls, cancels;
        char host[256];
        uv_timer_t t;
        acme_resolve_done_cb *done;
        void *done_ud;
        bool pending;
} dns;

static void dns_fire(uv_timer_t *t)
{
        dns.pending = false;
        if (dns.mode == DNS_FAIL_ASYNC)
                dns.done(dns.done_ud, -ENOENT, NULL, 0);
        else
                dns.done(dns.done_ud, 0, dns.addrs, dns.mode == DNS_EMPTY ? 0 : dns.n);
}

static int dns_resolve(void *ud, const char *host, acme_resolve_done_cb *done, void *done_ud,
                       void **ret_handle)
{
        dns.calls++;
        copy_str(dns.host, sizeof(dns.host), host);
        if (dns.mode == DNS_FAIL_RETURN)
                return -ENOENT;
        *ret_handle = &dns;
        if (dns.mode == DNS_SYNC) {
                done(done_ud, 0, dns.addrs, dns.n);
                return 0;
        }
        dns.done = done;
        dns.done_ud = done_ud;
        dns.pending = true;
        if (dns.mode != DNS_NEVER)
                (void)uv_timer_start(&dns.t, dns_fire, 10, 0);
        return 0;
}

static void dns_cancel(void *ud, void *handle)
{
        assert_ptr_equal(handle, &dns);
        dns.cancels++;
        dns.pending = false;
        (void)uv_timer_stop(&dns.t);
}

static struct acme_http_config cfg_dns(enum dns_mode mode, const char *a0, const char *a1)
{
        struct acme_http_config cfg = cfg_base();

        if (!dns.init) {
                assert_int_equal(uv_timer_init(&loop, &dns.t), 0);
                dns.init = true;
        }
        dns.mode = mode;
        dns.addrs[0] = (char *)a0;
        dns.addrs[1] = (char *)a1;
        dns.n = a1 ? 2 : a0 ? 1 : 0;
        dns.calls = dns.cancels = 0;
        cfg.resolve = dns_resolve;
        cfg.resolve_cancel = dns_cancel;
        return cfg;
}

static void dns_done(void)
{
        if (dns.init)
                uv_close((uv_handle_t *)&dns.t, NULL);
        dns.init = false;
        dns.pending = false;
}

/* ================================================================
 * Tests
 * ================================================================ */

static void test_get_post_head(void **state)
{
        struct acme_http_config cfg = cfg_base();
        struct srv *s = srv_start("127.0.0.1", ctx_good);
        char head[8192], want[256], sni[256];
        static struct res x;
        bool alpn;

        client(&cfg);
        x = (struct res){};
        do_req("GET", url(s, "/cl"), NULL, &x);
        assert_int_equal(x.r, 0);
        assert_int_equal(x.status, 200);
        assert_int_equal(x.body_len, 5);
        assert_string_equal(x.body, "hello");
        assert_string_equal(x.nonce, "nonce-1");
        last_head(s, head, sizeof(head));
        snprintf(want, sizeof(want),
                 "GET /cl HTTP/1.1\r\nHost: 127.0.0.1:%u\r\nUser-Agent: gatewayd/" GATEWAYD_VERSION
                 "\r\nAccept: application/json\r\nConnection: keep-alive\r\n\r\n",
                 s->port);
        assert_string_equal(head, want);
        /* An IP literal gets no SNI; ALPN offered and taken. */
        srv_tls(s, sni, sizeof(sni), &alpn);
        assert_string_equal(sni, "");
        assert_true(alpn);

        expect_ok("POST", url(s, "/echo"), "{\"protected\":\"x\"}", 200, "{\"protected\":\"x\"}");
        last_head(s, head, sizeof(head));
        snprintf(
                want, sizeof(want),
                "POST /echo HTTP/1.1\r\nHost: 127.0.0.1:%u\r\nUser-Agent: gatewayd/" GATEWAYD_VERSION
                "\r\nAccept: application/json\r\nContent-Type: application/jose+json\r\n"
                "Content-Length: 17\r\nConnection: keep-alive\r\n\r\n",
                s->port);
        assert_string_equal(head, want);

        x = (struct res){};
        do_req("HEAD", url(s, "/cl"), NULL, &x);
        assert_int_equal(x.r, 0);
        assert_int_equal(x.status, 200);
        assert_int_equal(x.body_len, 0);
        assert_string_equal(x.body, "");
        /* The server wrote a body for HEAD ("hello"): the connection is
         * not reused, since those bytes would poison the next response. */
        expect_ok("GET", url(s, "/cl"), NULL, 200, "hello");
        expect_ok("GET", url(s, "/nothing"), NULL, 404, "");
        assert_int_equal(atomic_load(&s->accepted), 2);
        assert_int_equal(atomic_load(&s->requests), 5);
}

static void test_bodies(void **state)
{
        struct acme_http_config cfg = cfg_base();
        struct srv *s = srv_start("127.0.0.1", ctx_good);

        client(&cfg);
        expect_ok("GET", url(s, "/chunked"), NULL, 200, "hello world");
        expect_ok("GET", url(s, "/interim"), NULL, 200, "ok");
        assert_int_equal(atomic_load(&s->accepted), 1);
        /* Close-delimited with close_notify: complete, connection gone. */
        expect_ok("GET", url(s, "/close"), NULL, 200, "until the end");
        expect_ok("GET", url(s, "/cl"), NULL, 200, "hello");
        assert_int_equal(atomic_load(&s->accepted), 2);
        /* Without close_notify the end may be a truncation. */
        assert_int_equal(expect_err(url(s, "/close-trunc")), -ECONNRESET);
        /* HTTP/1.0 without keep-alive: not reused. */
        expect_ok("GET", url(s, "/http10"), NULL, 200, "ok");
        expect_ok("GET", url(s, "/cl"), NULL, 200, "hello");
        assert_int_equal(atomic_load(&s->accepted), 4);
        /* A malformed status line. */
        assert_int_equal(expect_err(url(s, "/bad")), -EBADMSG);
}

static void test_links_retry_after(void **state)
{
        struct acme_http_config cfg = cfg_base();
        struct srv *s = srv_start("127.0.0.1", ctx_good);
        static struct res x;
        char want[256];

        client(&cfg);
        x = (struct res){};
        do_req("POST", url(s, "/links"), "{}", &x);
        assert_int_equal(x.r, 0);
        assert_int_equal(x.status, 503);
        assert_int_equal(x.n_links, 3);
        assert_string_equal(x.index, "https://other.test/x");
        snprintf(want, sizeof(want), "https://127.0.0.1:%u/acme/up", s->port);
        assert_string_equal(x.up, want);
        snprintf(want, sizeof(want), "https://127.0.0.1:%u/alt/1", s->port);
        assert_string_equal(x.alt, want);
        assert_int_equal(x.ra_r, 0);
        assert_int_equal(x.ra, 120);
        assert_string_equal(x.body, "{}");
}

static void test_keepalive_pool(void **state)
{
        struct acme_http_config cfg = cfg_base();
        struct srv *s = srv_start("127.0.0.1", ctx_good);
        static struct res xs[6];
        int called = 0;

        cfg.max_conns_per_origin = 2;
        client(&cfg);
        for (int i = 0; i < 5; i++)
                expect_ok("GET", url(s, "/cl"), NULL, 200, "hello");
        assert_int_equal(atomic_load(&s->accepted), 1);

        /* Six at once over at most two connections (one of them pooled). */
        for (size_t i = 0; i < ELEMENTSOF(xs); i++) {
                xs[i] = (struct res){};
                assert_int_equal(request("GET", url(s, "/cl"), NULL, &xs[i]), 0);
        }
        for (size_t i = 0; i < ELEMENTSOF(xs); i++) {
                wait_for(&xs[i].called, 1);
                called += xs[i].called;
                assert_int_equal(xs[i].r, 0);
                assert_int_equal(xs[i].status, 200);
        }
        assert_int_equal(called, 6);
        assert_int_equal(atomic_load(&s->accepted), 2);
        assert_int_equal(atomic_load(&s->requests), 11);
        for (int i = 0; i < 3; i++)
                expect_ok("GET", url(s, "/cl"), NULL, 200, "hello");
        assert_int_equal(atomic_load(&s->accepted), 2);
}

/* A pooled connection the server closes after reading the next request
 * (what an idle-timeout race looks like): resent once, transparently. */
static void test_retry_pooled(void **state)
{
        struct acme_http_config cfg = cfg_base();
        struct srv *s = srv_start("127.0.0.1", ctx_good);
        char body[64];

        client(&cfg);
        expect_ok("GET", url(s, "/arm-drop"), NULL, 200, "hello");
        expect_ok("POST", url(s, "/echo"), "{\"nonce\":\"n1\"}", 200, "{\"nonce\":\"n1\"}");
        assert_int_equal(atomic_load(&s->accepted), 2);
        /* The server read the POST twice: dropped, then answered. */
        assert_int_equal(atomic_load(&s->requests), 3);
        pthread_mutex_lock(&s->mu);
        snprintf(body, sizeof(body), "%.*s", (int)s->last_body_len, s->last_body);
        pthread_mutex_unlock(&s->mu); /* before asserting */
        assert_string_equal(body, "{\"nonce\":\"n1\"}");

        /* Once only: a retry that is dropped again fails. */
        expect_ok("GET", url(s, "/arm-drop"), NULL, 200, "hello");
        assert_int_equal(expect_err(url(s, "/drop")), -ECONNRESET);
        assert_int_equal(atomic_load(&s->accepted), 3);
        assert_int_equal(atomic_load(&s->requests), 6);

        /* A new connection that fails is not retried. */
        assert_int_equal(expect_err(url(s, "/drop")), -ECONNRESET);
        assert_int_equal(atomic_load(&s->accepted), 4);
        assert_int_equal(atomic_load(&s->requests), 7);
}

static void test_max_body(void **state)
{
        struct acme_http_config cfg = cfg_base();
        struct srv *s = srv_start("127.0.0.1", ctx_good);
        static struct res x;

        cfg.max_body = 1000;
        client(&cfg);
        x = (struct res){};
        do_req("GET", url(s, "/big/1000"), NULL, &x);
        assert_int_equal(x.r, 0);
        assert_int_equal(x.body_len, 1000);
        assert_int_equal(expect_err(url(s, "/big/1001")), -E2BIG);
        assert_int_equal(expect_err(url(s, "/bigchunked/1001")), -E2BIG);
        x = (struct res){};
        do_req("GET", url(s, "/bigchunked/1000"), NULL, &x);
        assert_int_equal(x.r, 0);
        assert_int_equal(x.body_len, 1000);
}

static void test_tls_failures(void **state)
{
        struct acme_http_config cfg = cfg_dns(DNS_SYNC, "127.0.0.1", NULL);
        struct srv *good = srv_start("127.0.0.1", ctx_good);
        struct srv *bad = srv_start("127.0.0.1", ctx_untrusted);
        struct srv *noip = srv_start("127.0.0.1", ctx_noip);
        char u[256], sni[256];
        bool alpn;

        client(&cfg);
        /* Another CA's certificate. */
        assert_int_equal(expect_err(url(bad, "/cl")), -EPROTO);
        /* The right CA, the wrong name. */
        snprintf(u, sizeof(u), "https://wrong.test:%u/cl", good->port);
        assert_int_equal(expect_err(u), -EPROTO);
        /* The name it has, through the resolver: fine, and SNI sent. */
        snprintf(u, sizeof(u), "https://acme.test:%u/cl", good->port);
        expect_ok("GET", u, NULL, 200, "hello");
        srv_tls(good, sni, sizeof(sni), &alpn);
        assert_string_equal(sni, "acme.test");
        /* An address the certificate does not list as an iPAddress SAN,
         * while the same server is fine by name. */
        assert_int_equal(expect_err(url(noip, "/cl")), -EPROTO);
        snprintf(u, sizeof(u), "https://acme.test:%u/cl", noip->port);
        expect_ok("GET", u, NULL, 200, "hello");
        assert_int_equal(atomic_load(&bad->requests), 0);
}

static void test_refused_and_timeouts(void **state)
{
        struct acme_http_config cfg = cfg_base();
        struct srv *s = srv_start("127.0.0.1", ctx_good);
        uint16_t port;
        char u[256];
        int fd;
        uint64_t t0;

        cfg.connect_timeout_ms = 300;
        cfg.timeout_ms = 1500;
        client(&cfg);

        /* Nothing listens. */
        fd = listen_on("127.0.0.1", 0, 1, &port);
        assert_true(fd >= 0);
        close(fd);
        snprintf(u, sizeof(u), "https://127.0.0.1:%u/", port);
        assert_int_equal(expect_err(u), -ECONNREFUSED);

        /* The kernel accepts, nobody answers: the handshake times out
         * after connect_timeout. */
        fd = listen_on("127.0.0.1", 0, 8, &port);
        assert_true(fd >= 0);
        snprintf(u, sizeof(u), "https://127.0.0.1:%u/", port);
        t0 = now_ms();
        assert_int_equal(expect_err(u), -ETIMEDOUT);
        assert_true(now_ms() - t0 < 1400);
        close(fd);

        /* TLS up, no response: the whole-request deadline. */
        t0 = now_ms();
        assert_int_equal(expect_err(url(s, "/hang")), -ETIMEDOUT);
        assert_true(now_ms() - t0 >= 1400);
}

/* Addresses in turn: a dead one costs a connect timeout (or a refusal),
 * then the next one works. The dead address is a listener whose accept
 * queue is full, so the kernel drops our SYN. */
static void test_addresses_in_turn(void **state)
{
        struct srv *s = srv_start("127.0.0.1", ctx_good);
        struct acme_http_config cfg = cfg_dns(DNS_ASYNC, "127.0.0.2", "127.0.0.1");
        int lfd, filler;
        uint16_t port;
        struct sockaddr_in sa = {.sin_family = AF_INET};
        char u[256];
        uint64_t t0;

        lfd = listen_on("127.0.0.2", s->port, 0, &port);
        if (lfd < 0)
                skip();
        filler = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sa.sin_port = htons(port);
        inet_pton(AF_INET, "127.0.0.2", &sa.sin_addr);
        assert_int_equal(connect(filler, (struct sockaddr *)&sa, sizeof(sa)), 0);

        cfg.connect_timeout_ms = 300;
        client(&cfg);
        snprintf(u, sizeof(u), "https://acme.test:%u/cl", s->port);
        t0 = now_ms();
        expect_ok("GET", u, NULL, 200, "hello");
        assert_true(now_ms() - t0 >= 290);
        assert_int_equal(dns.calls, 1);
        assert_string_equal(dns.host, "acme.test");

        /* IPv6 first (refused), then IPv4. */
        acme_http_free(h);
        h = NULL;
        cfg = cfg_dns(DNS_ASYNC, "::1", "127.0.0.1");
        client(&cfg);
        expect_ok("GET", u, NULL, 200, "hello");

        /* Only the dead address: its connect timeout. */
        acme_http_free(h);
        h = NULL;
        cfg = cfg_dns(DNS_ASYNC, "127.0.0.2", NULL);
        cfg.connect_timeout_ms = 200;
        client(&cfg);
        assert_int_equal(expect_err(u), -ETIMEDOUT);
        close(filler);
        close(lfd);
}

static void test_resolver_hook(void **state)
{
        struct srv *s = srv_start("127.0.0.1", ctx_good);
        struct acme_http_config cfg;
        static struct res x;
        char u[256];

        snprintf(u, sizeof(u), "https://Acme.Test:%u/cl", s->port);
        cfg = cfg_dns(DNS_SYNC, "127.0.0.1", NULL);
        client(&cfg);
        expect_ok("GET", u, NULL, 200, "hello");
        assert_int_equal(dns.calls, 1);
        assert_string_equal(dns.host, "acme.test");
        /* Pooled: no second lookup. */
        expect_ok("GET", u, NULL, 200, "hello");
        assert_int_equal(dns.calls, 1);
        acme_http_free(h);
        h = NULL;

        cfg = cfg_dns(DNS_FAIL_ASYNC, NULL, NULL);
        client(&cfg);
        assert_int_equal(expect_err(u), -ENOENT);
        acme_http_free(h);
        h = NULL;
        cfg = cfg_dns(DNS_FAIL_RETURN, NULL, NULL);
        client(&cfg);
        assert_int_equal(expect_err(u), -ENOENT);
        acme_http_free(h);
        h = NULL;
        cfg = cfg_dns(DNS_EMPTY, NULL, NULL);
        client(&cfg);
        assert_int_equal(expect_err(u), -ENOENT);
        acme_http_free(h);
        h = NULL;
        cfg = cfg_dns(DNS_ASYNC, "not an address", NULL);
        client(&cfg);
        assert_int_equal(expect_err(u), -ENOENT);
        acme_http_free(h);
        h = NULL;

        /* A lookup that never ends: the request deadline cancels it. */
        cfg = cfg_dns(DNS_NEVER, NULL, NULL);
        cfg.timeout_ms = 200;
        client(&cfg);
        assert_int_equal(expect_err(u), -ETIMEDOUT);
        assert_int_equal(dns.cancels, 1);
        assert_false(dns.pending);

        /* IP literals never reach the resolver. */
        x = (struct res){};
        dns.calls = 0;
        do_req("GET", url(s, "/cl"), NULL, &x);
        assert_int_equal(x.r, 0);
        assert_int_equal(dns.calls, 0);

        /* The default resolver (uv_getaddrinfo) for localhost. */
        acme_http_free(h);
        h = NULL;
        cfg = cfg_base();
        client(&cfg);
        snprintf(u, sizeof(u), "https://localhost:%u/cl", s->port);
        expect_ok("GET", u, NULL, 200, "hello");
}

static void test_ipv6(void **state)
{
        struct acme_http_config cfg = cfg_base();
        struct srv *s = srv_start("::1", ctx_good);
        char head[8192], want[128];

        if (!s)
                skip();
        client(&cfg);
        expect_ok("GET", url(s, "/cl"), NULL, 200, "hello");
        last_head(s, head, sizeof(head));
        snprintf(want, sizeof(want), "\r\nHost: [::1]:%u\r\n", s->port);
        assert_non_null(strstr(head, want));
}

static void count_calls(struct res *xs, size_t n, int *ret)
{
        *ret = 0;
        for (size_t i = 0; i < n; i++)
                *ret += xs[i].called;
}

static void test_cancel_and_free(void **state)
{
        struct acme_http_config cfg = cfg_dns(DNS_NEVER, NULL, NULL);
        struct srv *s = srv_start("127.0.0.1", ctx_good);
        static struct res xs[6];
        int called, lfd;
        uint16_t port;
        char u[256];

        cfg.max_conns_per_origin = 1;
        client(&cfg);
        for (size_t i = 0; i < ELEMENTSOF(xs); i++)
                xs[i] = (struct res){};

        /* Cancel an exchange in flight: no callback, its connection closed. */
        assert_int_equal(request("GET", url(s, "/hang"), NULL, &xs[0]), 0);
        wait_requests(s, 1);
        /* And one queued behind it. */
        assert_int_equal(request("GET", url(s, "/cl"), NULL, &xs[1]), 0);
        acme_http_cancel(xs[1].self);
        acme_http_cancel(xs[0].self);
        acme_http_cancel(NULL);
        run_for(100);
        count_calls(xs, 2, &called);
        assert_int_equal(called, 0);

        /* The pool goes on working after it. */
        expect_ok("GET", url(s, "/cl"), NULL, 200, "hello");

        /* Free with requests active, queued, connecting and resolving. */
        assert_int_equal(request("GET", url(s, "/hang"), NULL, &xs[2]), 0);
        wait_requests(s, 3);
        assert_int_equal(request("GET", url(s, "/cl"), NULL, &xs[3]), 0);
        /* A listener that never accepts: the handshake waits. */
        lfd = listen_on("127.0.0.1", 0, 8, &port);
        assert_true(lfd >= 0);
        snprintf(u, sizeof(u), "https://127.0.0.1:%u/cl", port);
        assert_int_equal(request("GET", u, NULL, &xs[4]), 0);
        assert_int_equal(request("GET", "https://never.test/", NULL, &xs[5]), 0);
        run_for(30);
        assert_true(dns.pending);
        acme_http_free(h);
        h = NULL;
        assert_int_equal(dns.cancels, 1);
        run_for(100);
        count_calls(xs, ELEMENTSOF(xs), &called);
        assert_int_equal(called, 0);
        close(lfd);
        /* teardown: uv_run() ends and uv_loop_close() == 0. */
}

static void test_callbacks_reenter(void **state)
{
        struct acme_http_config cfg = cfg_base();
        struct srv *s = srv_start("127.0.0.1", ctx_good);
        static struct res a, b, c, d;
        uint16_t port;
        char u[256];
        int fd, called;

        client(&cfg);
        /* A callback starts the next request and cancels itself. */
        a = (struct res){.chain_url = url(s, "/chunked"), .chain = &b, .cancel_self = true};
        b = (struct res){};
        assert_int_equal(request("GET", url(s, "/cl"), NULL, &a), 0);
        wait_for(&b.called, 1);
        assert_int_equal(a.called, 1);
        assert_int_equal(a.chain_r, 0);
        assert_int_equal(b.r, 0);
        assert_string_equal(b.body, "hello world");

        /* A callback frees the client while others are in flight. */
        a = (struct res){.free_client = true};
        b = c = (struct res){};
        assert_int_equal(request("GET", url(s, "/hang"), NULL, &b), 0);
        assert_int_equal(request("GET", url(s, "/cl"), NULL, &a), 0);
        assert_int_equal(request("GET", url(s, "/hang"), NULL, &c), 0);
        wait_for(&a.called, 1);
        assert_null(h);
        run_for(100);
        assert_int_equal(b.called + c.called, 0);

        /* Two results due in the same loop turn; the first callback frees
         * the client, so the second (already decided) never runs. */
        client(&cfg);
        fd = listen_on("127.0.0.1", 0, 1, &port);
        close(fd);
        snprintf(u, sizeof(u), "https://127.0.0.1:%u/", port);
        c = (struct res){.free_client = true};
        d = (struct res){.free_client = true};
        assert_int_equal(request("GET", u, NULL, &c), 0);
        assert_int_equal(request("GET", u, NULL, &d), 0);
        wait_for2(&c.called, &d.called);
        run_for(100);
        called = c.called + d.called;
        assert_int_equal(called, 1);
        assert_int_equal(c.called ? c.r : d.r, -ECONNREFUSED);
}

static void test_queue_bound(void **state)
{
        struct acme_http_config cfg = cfg_base();
        struct srv *s = srv_start("127.0.0.1", ctx_good);
        struct srv *s2 = srv_start("127.0.0.1", ctx_good);
        static struct res xs[5];
        int called;

        cfg.max_conns_per_origin = 1;
        cfg.max_queued = 2;
        client(&cfg);
        for (size_t i = 0; i < ELEMENTSOF(xs); i++)
                xs[i] = (struct res){};
        assert_int_equal(request("GET", url(s, "/hang"), NULL, &xs[0]), 0);
        assert_int_equal(request("GET", url(s, "/cl"), NULL, &xs[1]), 0);
        assert_int_equal(request("GET", url(s, "/cl"), NULL, &xs[2]), 0);
        assert_int_equal(request("GET", url(s, "/cl"), NULL, &xs[3]), -EAGAIN);
        /* Another origin starts at once: no queue needed. */
        assert_int_equal(request("GET", url(s2, "/cl"), NULL, &xs[4]), 0);
        wait_for(&xs[4].called, 1);
        assert_int_equal(xs[4].r, 0);
        run_for(50);
        count_calls(xs, 4, &called);
        assert_int_equal(called, 0);
        acme_http_free(h);
        h = NULL;
        run_for(50);
        count_calls(xs, 4, &called);
        assert_int_equal(called, 0);
}

/* max_conns across origins: an idle connection of one origin makes room
 * for another origin. */
static void test_total_conns(void **state)
{
        struct acme_http_config cfg = cfg_base();
        struct srv *s = srv_start("127.0.0.1", ctx_good);
        struct srv *s2 = srv_start("127.0.0.1", ctx_good);

        cfg.max_conns = 1;
        client(&cfg);
        expect_ok("GET", url(s, "/cl"), NULL, 200, "hello");
        expect_ok("GET", url(s, "/cl"), NULL, 200, "hello");
        expect_ok("GET", url(s2, "/cl"), NULL, 200, "hello");
        expect_ok("GET", url(s, "/cl"), NULL, 200, "hello");
        assert_int_equal(atomic_load(&s->accepted), 2);
        assert_int_equal(atomic_load(&s2->accepted), 1);
}

static void test_idle_timeout(void **state)
{
        struct acme_http_config cfg = cfg_base();
        struct srv *s = srv_start("127.0.0.1", ctx_good);

        cfg.idle_timeout_ms = 100;
        client(&cfg);
        expect_ok("GET", url(s, "/cl"), NULL, 200, "hello");
        run_for(300);
        expect_ok("GET", url(s, "/cl"), NULL, 200, "hello");
        assert_int_equal(atomic_load(&s->accepted), 2);
}

/* The indirection the protocol client uses. */
static void test_ops_default(void **state)
{
        const struct acme_http_ops *ops = acme_http_ops_default();
        struct acme_http_config cfg = cfg_base();
        struct srv *s = srv_start("127.0.0.1", ctx_good);
        struct acme_http_request req = {.method = "GET", .url = url(s, "/cl")};
        struct acme_http_request hang = {.method = "GET", .url = url(s, "/hang")};
        static struct res x, y;
        void *handle = NULL, *handle2 = NULL;

        assert_ptr_equal(ops, acme_http_ops_default());
        client(&cfg);
        x = y = (struct res){};
        assert_int_equal(ops->request(h, &req, on_done, &x, &handle), 0);
        assert_non_null(handle);
        assert_int_equal(ops->request(h, &hang, on_done, &y, &handle2), 0);
        assert_non_null(handle2);
        wait_for(&x.called, 1);
        assert_int_equal(x.r, 0);
        assert_string_equal(x.body, "hello");
        wait_requests(s, 2);
        ops->cancel(h, handle2);
        run_for(50);
        assert_int_equal(y.called, 0);
        req.method = "PUT";
        handle = NULL;
        assert_int_equal(ops->request(h, &req, on_done, &x, &handle), -EINVAL);
        assert_null(handle);
}

static void test_request_errors(void **state)
{
        struct acme_http_config cfg = cfg_base();
        static struct res x;
        struct acme_http_request req = {.method = "GET", .url = "https://a.test/"};

        client(&cfg);
        x = (struct res){};
        assert_int_equal(request("GET", "http://a.test/", NULL, &x), -EINVAL);
        assert_int_equal(request("DELETE", "https://a.test/", NULL, &x), -EINVAL);
        assert_int_equal(request("GET", "https://u@a.test/", NULL, &x), -EINVAL);
        assert_int_equal(request("GET", "https://a.test/", "body", &x), -EINVAL);
        assert_int_equal(request("GET", "https://a.test/\r\n", NULL, &x), -EINVAL);
        assert_int_equal(acme_http_request(h, &req, NULL, NULL, NULL), -EINVAL);
        assert_int_equal(acme_http_request(NULL, &req, on_done, &x, NULL), -EINVAL);
        run_for(50);
        assert_int_equal(x.called, 0);
}

static void test_trust_config(void **state)
{
        struct acme_http_config cfg = cfg_base();
        struct srv *s = srv_start("127.0.0.1", ctx_good);
        struct acme_http *h2 = NULL;
        char *err = NULL, missing[160];

        snprintf(missing, sizeof(missing), "%s/missing.pem", tmpdir);
        cfg.ca_file = missing;
        assert_int_equal(acme_http_new(&cfg, &h2, &err), -ENOENT);
        assert_non_null(err);
        assert_non_null(strstr(err, "ca_file"));
        assert_non_null(strstr(err, missing));
        free(err);
        cfg.ca_file = empty_pem;
        assert_int_equal(acme_http_new(&cfg, &h2, &err), -EINVAL);
        assert_non_null(strstr(err, "no certificate found"));
        free(err);
        assert_int_equal(acme_http_new(&cfg, &h2, NULL), -EINVAL);
        cfg.ca_file = NULL;
        assert_int_equal(acme_http_new(&cfg, &h2, &err), -EINVAL);
        assert_non_null(strstr(err, "no_system_roots"));
        free(err);
        cfg.ca_file = "";
        assert_int_equal(acme_http_new(&cfg, &h2, &err), -EINVAL);
        free(err);
        cfg = cfg_base();
        cfg.no_system_roots = false;
        cfg.system_roots = missing;
        assert_int_equal(acme_http_new(&cfg, &h2, &err), -ENOENT);
        assert_non_null(strstr(err, "system roots"));
        free(err);
        cfg = cfg_base();
        cfg.resolve = dns_resolve;
        assert_int_equal(acme_http_new(&cfg, &h2, &err), -EINVAL);
        cfg.resolve = NULL;
        cfg.loop = NULL;
        assert_int_equal(acme_http_new(&cfg, &h2, &err), -EINVAL);
        assert_null(h2);

        /* The test CA as the "system" roots, no ca_file. */
        cfg = cfg_base();
        cfg.no_system_roots = false;
        cfg.system_roots = ca1_pem;
        cfg.ca_file = NULL;
        client(&cfg);
        expect_ok("GET", url(s, "/cl"), NULL, 200, "hello");
        acme_http_free(h);
        h = NULL;

        /* The real system roots: they do not trust the test CA, ca_file adds it. */
        if (access("/etc/ssl/certs/ca-certificates.crt", R_OK) == 0) {
                cfg = cfg_base();
                cfg.no_system_roots = false;
                cfg.ca_file = NULL;
                client(&cfg);
                assert_int_equal(expect_err(url(s, "/cl")), -EPROTO);
                acme_http_free(h);
                h = NULL;
                cfg.ca_file = ca1_pem;
                client(&cfg);
                expect_ok("GET", url(s, "/cl"), NULL, 200, "hello");
        }
}

/* ---- third-party servers: pebble (Go, TLS 1.3), openssl s_server ---- */

static pid_t child_pid;

static int child_teardown(void **state)
{
        if (child_pid > 0) {
                kill(child_pid, SIGTERM);
                waitpid(child_pid, NULL, 0);
                child_pid = 0;
        }
        return teardown(state);
}

/* Start @argv with its output in @log; wait until 127.0.0.1:@port accepts. */
static void child_start(char *const *argv, char *const *envp, const char *log, uint16_t port)
{
        posix_spawn_file_actions_t fa;
        uint64_t t0 = now_ms();

        posix_spawn_file_actions_init(&fa);
        posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
        posix_spawn_file_actions_addopen(&fa, 1, log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        posix_spawn_file_actions_adddup2(&fa, 1, 2);
        assert_int_equal(posix_spawn(&child_pid, argv[0], &fa, NULL, argv, envp), 0);
        posix_spawn_file_actions_destroy(&fa);
        for (;;) {
                struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
                int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
                int r;

                inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
                r = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
                close(fd);
                if (r == 0)
                        return;
                if (waitpid(child_pid, NULL, WNOHANG) == child_pid) {
                        child_pid = 0;
                        fail_msg("%s exited at its start (see %s)", argv[0], log);
                }
                if (now_ms() - t0 > 10000)
                        fail_msg("%s did not start (see %s)", argv[0], log);
                usleep(20000);
        }
}

/* A port nothing listens on now (pebble takes a port number, not a socket),
 * below the kernel's ephemeral range: a port the kernel picks itself (bind
 * to 0) can be handed out again at once as the local port of some outgoing
 * connection (the other test processes dial all the time), which then holds
 * it when the child binds. Ports below the range are only taken on purpose. */
static uint16_t free_port(void)
{
        unsigned lo = 32768, first, span;
        FILE *f = fopen("/proc/sys/net/ipv4/ip_local_port_range", "re");

        if (f) {
                if (fscanf(f, "%u", &lo) != 1)
                        lo = 32768;
                fclose(f);
        }
        first = lo > 12000 ? 10000 : lo;
        span = lo > 12000 ? lo - 10000 : 65536 - lo;
        srand((unsigned)getpid() ^ (unsigned)now_ms());
        for (int i = 0; i < 200; i++) {
                uint16_t port = (uint16_t)(first + (unsigned)rand() % span), got;
                int fd = listen_on("127.0.0.1", port, 1, &got);

                if (fd >= 0) {
                        close(fd);
                        return got;
                }
        }
        fail_msg("no free port below %u", lo);
        return 0;
}

static void test_pebble(void **state)
{
        struct acme_http_config cfg = cfg_base();
        char conf[256], log[256], dir[128], *p;
        static struct res x;
        uint16_t port = free_port(), mport;
        char *argv[] = {"/usr/bin/pebble", "-config", conf, NULL};
        char *envp[] = {"PEBBLE_VA_NOSLEEP=1", "PEBBLE_WFE_NONCEREJECT=0", NULL};
        FILE *f;

        if (access("/usr/bin/pebble", X_OK) != 0)
                skip();
        do
                mport = free_port();
        while (mport == port);
        snprintf(conf, sizeof(conf), "%s/pebble.json", tmpdir);
        snprintf(log, sizeof(log), "%s/pebble.log", tmpdir);
        f = fopen(conf, "w");
        assert_non_null(f);
        fprintf(f,
                "{\"pebble\": {\"listenAddress\": \"127.0.0.1:%u\", "
                "\"managementListenAddress\": \"127.0.0.1:%u\", \"certificate\": \"%s\", "
                "\"privateKey\": \"%s\", \"httpPort\": 5002, \"tlsPort\": 5001, "
                "\"ocspResponderURL\": \"\", \"externalAccountBindingRequired\": false}}\n",
                port, mport, leaf_pem, leaf_key);
        fclose(f);
        child_start(argv, envp, log, port);

        client(&cfg);
        snprintf(dir, sizeof(dir), "https://127.0.0.1:%u/dir", port);
        x = (struct res){};
        do_req("GET", dir, NULL, &x);
        assert_int_equal(x.r, 0);
        assert_int_equal(x.status, 200);
        assert_non_null(strstr(x.body, "\"newNonce\""));
        assert_non_null(strstr(x.body, "\"newAccount\""));

        /* HEAD newNonce: a Replay-Nonce, no body. */
        p = strstr(x.body, "\"newNonce\": \"");
        assert_non_null(p);
        p += strlen("\"newNonce\": \"");
        *strchr(p, '"') = 0;
        {
                char nonce_url[256];

                snprintf(nonce_url, sizeof(nonce_url), "%s", p);
                x = (struct res){};
                do_req("HEAD", nonce_url, NULL, &x);
        }
        assert_int_equal(x.r, 0);
        assert_int_equal(x.status, 200);
        assert_true(strlen(x.nonce) > 10);
        assert_int_equal(x.body_len, 0);

        /* A POST it must refuse: a problem document, a fresh nonce and the
         * index Link, over the same connection. */
        {
                char new_acct[256];

                snprintf(new_acct, sizeof(new_acct), "https://127.0.0.1:%u/sign-me-up", port);
                x = (struct res){};
                do_req("POST", new_acct, "{}", &x);
        }
        assert_int_equal(x.r, 0);
        assert_int_equal(x.status, 400);
        assert_non_null(strstr(x.body, "urn:ietf:params:acme:error:malformed"));
        assert_true(strlen(x.nonce) > 10);
        assert_string_equal(x.index, dir);
}

/* OpenSSL's server: a close-delimited HTTP/1.0 answer ended by close_notify. */
static void test_openssl_s_server(void **state)
{
        struct acme_http_config cfg = cfg_base();
        char log[256], accept[32];
        uint16_t port = free_port();
        char *argv[] = {"/usr/bin/openssl", "s_server", "-www",   "-accept", accept, "-cert",
                        leaf_pem,           "-key",     leaf_key, NULL};
        char *envp[] = {NULL};
        static struct res x;
        char u[128];

        if (access("/usr/bin/openssl", X_OK) != 0)
                skip();
        snprintf(log, sizeof(log), "%s/s_server.log", tmpdir);
        snprintf(accept, sizeof(accept), "127.0.0.1:%u", port);
        child_start(argv, envp, log, port);
        client(&cfg);
        snprintf(u, sizeof(u), "https://127.0.0.1:%u/", port);
        x = (struct res){};
        do_req("GET", u, NULL, &x);
        assert_int_equal(x.r, 0);
        assert_int_equal(x.status, 200);
        assert_non_null(strstr(x.body, "<HTML>"));
        assert_non_null(strstr(x.body, "TLSv1.3"));
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_get_post_head, setup, teardown),
                cmocka_unit_test_setup_teardown(test_bodies, setup, teardown),
                cmocka_unit_test_setup_teardown(test_links_retry_after, setup, teardown),
                cmocka_unit_test_setup_teardown(test_keepalive_pool, setup, teardown),
                cmocka_unit_test_setup_teardown(test_retry_pooled, setup, teardown),
                cmocka_unit_test_setup_teardown(test_max_body, setup, teardown),
                cmocka_unit_test_setup_teardown(test_tls_failures, setup, teardown),
                cmocka_unit_test_setup_teardown(test_refused_and_timeouts, setup, teardown),
                cmocka_unit_test_setup_teardown(test_addresses_in_turn, setup, teardown),
                cmocka_unit_test_setup_teardown(test_resolver_hook, setup, teardown),
                cmocka_unit_test_setup_teardown(test_ipv6, setup, teardown),
                cmocka_unit_test_setup_teardown(test_cancel_and_free, setup, teardown),
                cmocka_unit_test_setup_teardown(test_callbacks_reenter, setup, teardown),
                cmocka_unit_test_setup_teardown(test_queue_bound, setup, teardown),
                cmocka_unit_test_setup_teardown(test_total_conns, setup, teardown),
                cmocka_unit_test_setup_teardown(test_idle_timeout, setup, teardown),
                cmocka_unit_test_setup_teardown(test_ops_default, setup, teardown),
                cmocka_unit_test_setup_teardown(test_request_errors, setup, teardown),
                cmocka_unit_test_setup_teardown(test_trust_config, setup, teardown),
                cmocka_unit_test_setup_teardown(test_pebble, setup, child_teardown),
                cmocka_unit_test_setup_teardown(test_openssl_s_server, setup, child_teardown),
        };

        signal(SIGPIPE, SIG_IGN);
        return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
