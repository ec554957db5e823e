/* SPDX-License-Identifier: Apache-2.0 */
/* The HTTPS client's connections: resolve, connect to each address in
 * turn, BoringSSL handshake with verification, one exchange at a time,
 * idle watching (the context is http-trust.c's, the default resolver
 * http.c's). A uv_poll_t on a raw non-blocking socket, with SSL reading
 * and writing that socket through a BIO of our own (recv/send with
 * MSG_NOSIGNAL), so TLS wants map straight onto poll events and nothing is
 * copied through memory BIOs. One socket (and poll handle) per address
 * tried: a poll handle is bound to its fd, so each attempt gets a small
 * allocation that frees itself from its close callback. */
#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <uv.h>

#include "acme/http-internal.h"
#include "common/log.h"
#include "common/macros.h"

#define READ_CHUNK 16384u

struct acme_http_sock {
        uv_poll_t poll;
        int fd;
        struct acme_http_conn *c; /* NULL once dropped */
};

static void conn_step(struct acme_http_conn *c);

/* ================================================================
 * The BIO: recv/send on the connection's current socket
 * ================================================================ */

static BIO_METHOD *bio_method;
static pthread_once_t bio_once = PTHREAD_ONCE_INIT;

static int bio_read(BIO *b, char *out, int len)
{
        struct acme_http_conn *c = BIO_get_data(b);
        ssize_t k;

        BIO_clear_retry_flags(b);
        if (len <= 0)
                return 0;
        k = recv(c->sock->fd, out, (size_t)len, 0);
        if (k > 0)
                return (int)k;
        if (k == 0) {
                c->eof = true;
                return 0;
        }
        if (errno == EAGAIN || errno == EINTR) {
                BIO_set_retry_read(b);
                return -1;
        }
        c->io_err = -errno;
        return -1;
}

static int bio_write(BIO *b, const char *in, int len)
{
        struct acme_http_conn *c = BIO_get_data(b);
        ssize_t k;

        BIO_clear_retry_flags(b);
        if (len <= 0)
                return 0;
        /* MSG_NOSIGNAL: a peer that closed must not SIGPIPE the daemon. */
        k = send(c->sock->fd, in, (size_t)len, MSG_NOSIGNAL);
        if (k >= 0)
                return (int)k;
        if (errno == EAGAIN || errno == EINTR) {
                BIO_set_retry_write(b);
                return -1;
        }
        c->io_err = -errno;
        return -1;
}

static long bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
        return cmd == BIO_CTRL_FLUSH ? 1 : 0;
}

static int bio_create(BIO *b)
{
        BIO_set_init(b, 1);
        return 1;
}

static void bio_method_init(void)
{
        BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "gw-acme-http");

        if (!m)
                return;
        if (!BIO_meth_set_read(m, bio_read) || !BIO_meth_set_write(m, bio_write) ||
            !BIO_meth_set_ctrl(m, bio_ctrl) || !BIO_meth_set_create(m, bio_create)) {
                BIO_meth_free(m);
                return;
        }
        bio_method = m;
}

/* ================================================================
 * States
 * ================================================================ */

static const char *const state_names[_ACME_HTTP_CONN_STATE_MAX] = {
        [ACME_HTTP_CONN_START] = "start",
        [ACME_HTTP_CONN_RESOLVING] = "resolving",
        [ACME_HTTP_CONN_CONNECTING] = "connecting",
        [ACME_HTTP_CONN_HANDSHAKE] = "handshake",
        [ACME_HTTP_CONN_READY] = "ready",
        [ACME_HTTP_CONN_EXCHANGE] = "exchange",
        [ACME_HTTP_CONN_IDLE] = "idle",
        [ACME_HTTP_CONN_DEAD] = "dead",
        [ACME_HTTP_CONN_CLOSED] = "closed",
};

const char *acme_http__conn_state_str(enum acme_http_conn_state s)
{
        return s < _ACME_HTTP_CONN_STATE_MAX ? state_names[s] : NULL;
}

#define S(x) (1u << ACME_HTTP_CONN_##x)
/* The states each state may move to (CLOSED is reachable from all). */
static const unsigned transitions[_ACME_HTTP_CONN_STATE_MAX] = {
        [ACME_HTTP_CONN_START] = S(RESOLVING) | S(CONNECTING) | S(DEAD),
        [ACME_HTTP_CONN_RESOLVING] = S(CONNECTING) | S(DEAD),
        [ACME_HTTP_CONN_CONNECTING] = S(CONNECTING) | S(HANDSHAKE) | S(DEAD),
        [ACME_HTTP_CONN_HANDSHAKE] = S(READY) | S(DEAD),
        [ACME_HTTP_CONN_READY] = S(EXCHANGE) | S(IDLE) | S(DEAD),
        [ACME_HTTP_CONN_EXCHANGE] = S(READY) | S(DEAD),
        [ACME_HTTP_CONN_IDLE] = S(EXCHANGE) | S(DEAD),
        [ACME_HTTP_CONN_DEAD] = 0,
        [ACME_HTTP_CONN_CLOSED] = 0,
};
#undef S

static void set_state(struct acme_http_conn *c, enum acme_http_conn_state next)
{
        assert(next == ACME_HTTP_CONN_CLOSED || (transitions[c->st] & (1u << next)));
        if (log_get_max_level() >= LOG_DEBUG)
                log_debug("acme-http %s:%u: %s -> %s", c->host, c->port,
                          acme_http__conn_state_str(c->st), acme_http__conn_state_str(next));
        c->st = next;
}

/* Tell the owner. The caller returns right after: the owner may have
 * closed the connection or started another exchange on it. */
static void emit(struct acme_http_conn *c, enum acme_http_conn_event ev, int r)
{
        c->env->on_event(c, ev, r);
}

static void sock_drop(struct acme_http_conn *c);

static void conn_fail(struct acme_http_conn *c, int r)
{
        assert(r < 0);
        log_debug_errno(r, "acme-http %s:%u: failed in %s: %m", c->host, c->port,
                        acme_http__conn_state_str(c->st));
        if (c->st == ACME_HTTP_CONN_RESOLVING && c->resolve_handle) {
                c->env->resolve_cancel(c->env->resolve_ud, c->resolve_handle);
                c->resolve_handle = NULL;
        }
        (void)uv_timer_stop(&c->timer);
        c->pending_err = 0;
        sock_drop(c);
        set_state(c, ACME_HTTP_CONN_DEAD);
        emit(c, ACME_HTTP_CONN_EV_FAILED, r);
}

/* ================================================================
 * Sockets and polling
 * ================================================================ */

static void on_sock_closed(uv_handle_t *hd)
{
        struct acme_http_sock *s = container_of((uv_poll_t *)hd, struct acme_http_sock, poll);

        safe_close(s->fd);
        free(s);
}

static void sock_drop(struct acme_http_conn *c)
{
        if (!c->sock)
                return;
        c->sock->c = NULL;
        uv_close((uv_handle_t *)&c->sock->poll, on_sock_closed);
        c->sock = NULL;
        c->events = 0;
}

static void on_poll(uv_poll_t *p, int status, int events)
{
        struct acme_http_sock *s = container_of(p, struct acme_http_sock, poll);
        struct acme_http_conn *c = s->c;

        if (!c)
                return;
        if (status < 0 && c->st != ACME_HTTP_CONN_CONNECTING) {
                conn_fail(c, status);
                return;
        }
        conn_step(c);
}

static void on_timer(uv_timer_t *t);

static void arm(struct acme_http_conn *c, uint64_t ms)
{
        (void)uv_timer_start(&c->timer, on_timer, ms, 0);
}

/* Fail from the loop: for errors found inside a call of the owner's. */
static void fail_soon(struct acme_http_conn *c, int r)
{
        c->pending_err = r;
        arm(c, 0);
}

static void set_events(struct acme_http_conn *c, unsigned events)
{
        int r;

        if (!c->sock || c->events == events)
                return;
        r = events ? uv_poll_start(&c->sock->poll, (int)events, on_poll)
                   : uv_poll_stop(&c->sock->poll);
        if (r < 0) {
                fail_soon(c, r);
                return;
        }
        c->events = events;
}

/* Open a non-blocking socket and start connecting it to @sa. */
static int sock_open(struct acme_http_conn *c, const struct sockaddr_storage *sa)
{
        _cleanup_close_ int fd = -1;
        socklen_t len = sa->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                                  : sizeof(struct sockaddr_in);
        struct acme_http_sock *s;
        int one = 1, r;

        fd = socket(sa->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_TCP);
        if (fd < 0)
                return -errno;
        /* A request goes out as one TLS record; do not let Nagle hold it. */
        (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        if (connect(fd, (const struct sockaddr *)sa, len) < 0 && errno != EINPROGRESS)
                return -errno;
        s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        r = uv_poll_init(c->env->loop, &s->poll, fd);
        if (r < 0) {
                free(s);
                return r;
        }
        s->fd = TAKE_FD(fd);
        s->c = c;
        c->sock = s;
        c->events = 0;
        c->eof = false;
        c->io_err = 0;
        return 0;
}

/* ================================================================
 * Resolving and connecting
 * ================================================================ */

/* Try the next address; FAILED with the last error once none is left. */
static void connect_next(struct acme_http_conn *c)
{
        sock_drop(c);
        while (c->next_addr < c->n_addrs) {
                const struct sockaddr_storage *sa = &c->addrs[c->next_addr++];
                int r = sock_open(c, sa);

                if (r < 0) {
                        c->last_err = r;
                        continue;
                }
                set_state(c, ACME_HTTP_CONN_CONNECTING);
                arm(c, c->env->connect_timeout_ms);
                set_events(c, UV_WRITABLE);
                return;
        }
        conn_fail(c, c->last_err < 0 ? c->last_err : -ENOENT);
}

/* Parse the text addresses and order them so the families alternate,
 * starting with the resolver's first choice (RFC 8305 §4, without the
 * parallel attempts): a dead IPv6 path costs one connect timeout at most
 * before IPv4 is tried. */
static void set_addrs(struct acme_http_conn *c, char *const *addrs, size_t n)
{
        struct sockaddr_storage fam[2][ACME_HTTP_MAX_ADDRS];
        unsigned nf[2] = {}, k = 0;
        int first = -1;

        for (size_t i = 0; i < n; i++) {
                struct sockaddr_storage ss = {};
                struct sockaddr_in *in4 = (struct sockaddr_in *)&ss;
                struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
                int f;

                if (!addrs[i])
                        continue;
                if (inet_pton(AF_INET6, addrs[i], &in6->sin6_addr) == 1) {
                        in6->sin6_family = AF_INET6;
                        in6->sin6_port = htons(c->port);
                } else if (inet_pton(AF_INET, addrs[i], &in4->sin_addr) == 1) {
                        in4->sin_family = AF_INET;
                        in4->sin_port = htons(c->port);
                } else {
                        continue;
                }
                if (first < 0)
                        first = ss.ss_family;
                f = ss.ss_family == first ? 0 : 1;
                if (nf[f] < ACME_HTTP_MAX_ADDRS)
                        fam[f][nf[f]++] = ss;
        }
        for (unsigned i = 0; k < ACME_HTTP_MAX_ADDRS && (i < nf[0] || i < nf[1]); i++)
                for (int f = 0; f < 2; f++)
                        if (i < nf[f] && k < ACME_HTTP_MAX_ADDRS)
                                c->addrs[k++] = fam[f][i];
        c->n_addrs = k;
        c->next_addr = 0;
}

static void on_resolved(void *ud, int r, char *const *addrs, size_t n)
{
        struct acme_http_conn *c = ud;

        assert(c->st == ACME_HTTP_CONN_RESOLVING);
        c->resolve_handle = NULL;
        if (r >= 0) {
                set_addrs(c, addrs, n);
                if (c->n_addrs == 0)
                        r = -ENOENT;
        }
        if (r < 0) {
                conn_fail(c, r);
                return;
        }
        connect_next(c);
}

static void start(struct acme_http_conn *c)
{
        void *handle = NULL;
        int r;

        if (c->ip) {
                char *addr = c->host;

                set_addrs(c, &addr, 1);
                connect_next(c);
                return;
        }
        set_state(c, ACME_HTTP_CONN_RESOLVING);
        r = c->env->resolve(c->env->resolve_ud, c->host, on_resolved, c, &handle);
        if (r < 0) {
                conn_fail(c, r);
                return;
        }
        /* A resolver may answer before returning (a cache hit). */
        if (c->st == ACME_HTTP_CONN_RESOLVING)
                c->resolve_handle = handle;
}

/* ================================================================
 * TLS
 * ================================================================ */

/* The error of a failed SSL call, after the BIO recorded what it saw. */
static int tls_error(struct acme_http_conn *c, int ret)
{
        int e = SSL_get_error(c->ssl, ret);
        long v = SSL_get_verify_result(c->ssl);
        uint32_t err = ERR_peek_error();

        if (v != X509_V_OK) {
                log_debug("acme-http %s:%u: certificate: %s", c->host, c->port,
                          X509_verify_cert_error_string(v));
                ERR_clear_error();
                return -EPROTO;
        }
        if (e == SSL_ERROR_SSL) {
                log_debug("acme-http %s:%u: TLS: %s", c->host, c->port,
                          err ? ERR_reason_error_string(err) : "?");
                ERR_clear_error();
                return -EPROTO;
        }
        ERR_clear_error();
        if (c->io_err < 0)
                return c->io_err;
        return -ECONNRESET;
}

static int tls_start(struct acme_http_conn *c)
{
        static const uint8_t alpn[] = "\x08http/1.1";
        BIO *bio;

        pthread_once(&bio_once, bio_method_init);
        if (!bio_method)
                return -ENOMEM;
        c->ssl = SSL_new(c->env->ctx);
        if (!c->ssl)
                return -ENOMEM;
        bio = BIO_new(bio_method);
        if (!bio)
                return -ENOMEM;
        BIO_set_data(bio, c);
        SSL_set_bio(c->ssl, bio, bio);
        SSL_set_connect_state(c->ssl);
        if (SSL_set_alpn_protos(c->ssl, alpn, sizeof(alpn) - 1) != 0)
                return -ENOMEM;
        if (c->ip) {
                /* No SNI for an address (RFC 6066 §3); the certificate must
                 * carry it as an iPAddress SAN. */
                if (!X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(c->ssl), c->host))
                        return -EINVAL;
        } else if (!SSL_set_tlsext_host_name(c->ssl, c->host) || !SSL_set1_host(c->ssl, c->host)) {
                return -ENOMEM;
        }
        return 0;
}

static void handshake(struct acme_http_conn *c)
{
        const uint8_t *proto;
        unsigned proto_len;
        int r;

        ERR_clear_error();
        r = SSL_do_handshake(c->ssl);
        if (r != 1) {
                switch (SSL_get_error(c->ssl, r)) {
                case SSL_ERROR_WANT_READ:
                        set_events(c, UV_READABLE);
                        return;
                case SSL_ERROR_WANT_WRITE:
                        set_events(c, UV_READABLE | UV_WRITABLE);
                        return;
                default:
                        conn_fail(c, tls_error(c, r));
                        return;
                }
        }
        /* We offered only http/1.1: anything else selected is a broken peer. */
        SSL_get0_alpn_selected(c->ssl, &proto, &proto_len);
        if (proto_len && (proto_len != 8 || memcmp(proto, "http/1.1", 8) != 0)) {
                conn_fail(c, -EPROTO);
                return;
        }
        (void)uv_timer_stop(&c->timer);
        set_events(c, 0);
        set_state(c, ACME_HTTP_CONN_READY);
        emit(c, ACME_HTTP_CONN_EV_READY, 0);
}

static void connected(struct acme_http_conn *c)
{
        int err = 0, r;
        socklen_t len = sizeof(err);

        if (getsockopt(c->sock->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
                err = errno;
        if (err == EINPROGRESS || err == EALREADY)
                return;
        if (err) {
                c->last_err = -err;
                connect_next(c);
                return;
        }
        set_state(c, ACME_HTTP_CONN_HANDSHAKE);
        arm(c, c->env->connect_timeout_ms);
        r = tls_start(c);
        if (r < 0) {
                conn_fail(c, r);
                return;
        }
        handshake(c);
}

/* ================================================================
 * Exchanges and idling
 * ================================================================ */

/* The response is complete: hand it over. */
static void response_done(struct acme_http_conn *c)
{
        /* Answered before we finished writing: do not reuse. */
        if (c->out_off < c->out_len)
                c->rd.trailing = true;
        c->out = NULL;
        c->n_responses++;
        set_events(c, 0);
        set_state(c, ACME_HTTP_CONN_READY);
        emit(c, ACME_HTTP_CONN_EV_RESPONSE, 0);
}

static void exchange(struct acme_http_conn *c)
{
        uint8_t buf[READ_CHUNK];
        bool want_write = false;
        int n, r;

        while (c->out_off < c->out_len) {
                ERR_clear_error();
                n = SSL_write(c->ssl, c->out + c->out_off,
                              (int)MIN(c->out_len - c->out_off, (size_t)INT_MAX));
                if (n > 0) {
                        c->out_off += (size_t)n;
                        continue;
                }
                r = SSL_get_error(c->ssl, n);
                if (r == SSL_ERROR_WANT_WRITE) {
                        want_write = true;
                        break;
                }
                if (r == SSL_ERROR_WANT_READ)
                        break;
                conn_fail(c, tls_error(c, n));
                return;
        }
        for (;;) {
                ERR_clear_error();
                n = SSL_read(c->ssl, buf, sizeof(buf));
                if (n > 0) {
                        r = acme_http__rd_feed(&c->rd, buf, (size_t)n);
                        if (r < 0) {
                                conn_fail(c, r);
                                return;
                        }
                        if (r > 0) {
                                response_done(c);
                                return;
                        }
                        continue;
                }
                r = SSL_get_error(c->ssl, n);
                if (r == SSL_ERROR_WANT_READ)
                        break;
                if (r == SSL_ERROR_WANT_WRITE) {
                        want_write = true;
                        break;
                }
                if (r == SSL_ERROR_ZERO_RETURN || (r == SSL_ERROR_SYSCALL && c->eof)) {
                        ERR_clear_error();
                        r = acme_http__rd_eof(&c->rd, r == SSL_ERROR_ZERO_RETURN);
                        if (r < 0) {
                                conn_fail(c, c->io_err < 0 ? c->io_err : r);
                                return;
                        }
                        c->rd.trailing = true; /* the peer closed: no reuse */
                        response_done(c);
                        return;
                }
                conn_fail(c, tls_error(c, n));
                return;
        }
        set_events(c, UV_READABLE | (want_write ? UV_WRITABLE : 0));
}

/* An idle connection became readable: a close (or TLS 1.3 tickets). */
static void idle_read(struct acme_http_conn *c)
{
        uint8_t buf[256];
        int n;

        ERR_clear_error();
        n = SSL_read(c->ssl, buf, sizeof(buf));
        if (n > 0) {
                conn_fail(c, -EBADMSG); /* bytes nobody asked for */
                return;
        }
        switch (SSL_get_error(c->ssl, n)) {
        case SSL_ERROR_WANT_READ:
                return;
        case SSL_ERROR_WANT_WRITE:
                set_events(c, UV_READABLE | UV_WRITABLE);
                return;
        default:
                ERR_clear_error();
                conn_fail(c, -ECONNRESET);
                return;
        }
}

static void conn_step(struct acme_http_conn *c)
{
        switch (c->st) {
        case ACME_HTTP_CONN_CONNECTING:
                connected(c);
                break;
        case ACME_HTTP_CONN_HANDSHAKE:
                handshake(c);
                break;
        case ACME_HTTP_CONN_EXCHANGE:
                exchange(c);
                break;
        case ACME_HTTP_CONN_IDLE:
                idle_read(c);
                break;
        default:
                break;
        }
}

static void on_timer(uv_timer_t *t)
{
        struct acme_http_conn *c = container_of(t, struct acme_http_conn, timer);

        if (c->pending_err < 0) {
                conn_fail(c, c->pending_err);
                return;
        }
        switch (c->st) {
        case ACME_HTTP_CONN_START:
                start(c);
                break;
        case ACME_HTTP_CONN_CONNECTING:
                c->last_err = -ETIMEDOUT;
                connect_next(c);
                break;
        case ACME_HTTP_CONN_HANDSHAKE:
        case ACME_HTTP_CONN_IDLE:
                conn_fail(c, -ETIMEDOUT);
                break;
        case ACME_HTTP_CONN_EXCHANGE:
                /* Started by conn_send(): the first write. */
                exchange(c);
                break;
        default:
                break;
        }
}

/* ================================================================
 * The API
 * ================================================================ */

int acme_http__conn_new(struct acme_http_env *env, const char *host, bool ip, uint16_t port,
                        struct acme_http_conn **ret)
{
        struct acme_http_conn *c;

        c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        c->host = strdup(host);
        if (!c->host) {
                free(c);
                return -ENOMEM;
        }
        c->env = env;
        c->ip = ip;
        c->port = port;
        c->st = ACME_HTTP_CONN_START;
        (void)uv_timer_init(env->loop, &c->timer);
        env->live++;
        /* Start from the loop, so every event reaches the owner from a
         * callback of ours and never from inside its own call. */
        arm(c, 0);
        *ret = c;
        return 0;
}

void acme_http__conn_send(struct acme_http_conn *c, const char *out, size_t n, bool head_request,
                          size_t max_body)
{
        assert(c->st == ACME_HTTP_CONN_READY || c->st == ACME_HTTP_CONN_IDLE);
        acme_http__rd_done(&c->rd);
        acme_http__rd_init(&c->rd, max_body, head_request);
        c->out = out;
        c->out_len = n;
        c->out_off = 0;
        set_state(c, ACME_HTTP_CONN_EXCHANGE);
        /* The first write happens from the loop (see acme_http__conn_new). */
        arm(c, 0);
}

void acme_http__conn_idle(struct acme_http_conn *c, uint64_t timeout_ms)
{
        assert(c->st == ACME_HTTP_CONN_READY);
        acme_http__rd_done(&c->rd);
        set_state(c, ACME_HTTP_CONN_IDLE);
        arm(c, timeout_ms);
        set_events(c, UV_READABLE);
}

static void on_conn_closed(uv_handle_t *hd)
{
        struct acme_http_conn *c = container_of((uv_timer_t *)hd, struct acme_http_conn, timer);
        struct acme_http_env *env = c->env;

        free(c->host);
        free(c);
        env->live--;
        if (env->on_release)
                env->on_release(env);
}

void acme_http__conn_close(struct acme_http_conn *c)
{
        if (!c || c->st == ACME_HTTP_CONN_CLOSED)
                return;
        if (c->st == ACME_HTTP_CONN_RESOLVING && c->resolve_handle)
                c->env->resolve_cancel(c->env->resolve_ud, c->resolve_handle);
        c->resolve_handle = NULL;
        if (c->ssl && (c->st == ACME_HTTP_CONN_READY || c->st == ACME_HTTP_CONN_IDLE)) {
                /* A courtesy close_notify; never waited for. */
                ERR_clear_error();
                (void)SSL_shutdown(c->ssl);
                ERR_clear_error();
        }
        set_state(c, ACME_HTTP_CONN_CLOSED);
        sock_drop(c);
        SSL_free(c->ssl);
        c->ssl = NULL;
        acme_http__rd_done(&c->rd);
        uv_close((uv_handle_t *)&c->timer, on_conn_closed);
}
