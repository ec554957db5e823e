/* SPDX-License-Identifier: Apache-2.0 */
#include "proxy/sock.h"

#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "common/macros.h"

struct sock_replay {
        uint32_t len, off;
        uint8_t bytes[];
};

/* One sendmsg() of what @q holds, retried on EINTR. Returns the bytes
 * written (@q is advanced past them) or -errno. After a short write or
 * -EAGAIN the socket buffer is full: the caller waits for EV_WRITE rather
 * than collect an EAGAIN. */
static ssize_t iovq_send(struct iovq *q, int fd)
{
        struct msghdr m = {.msg_iov = q->iov + q->i, .msg_iovlen = q->n - q->i};
        ssize_t k;

        do
                k = sendmsg(fd, &m, MSG_NOSIGNAL);
        while (k < 0 && errno == EINTR);
        if (k < 0)
                return -errno;
        iovq_advance(q, (size_t)k);
        return k;
}

/* ---- lifetime ---- */

static void on_sock_event(struct ev_handle *h, unsigned events)
{
        struct sock *s = container_of(h, struct sock, h);

        if (events & EV_READ)
                s->rd_ready = true;
        if (events & EV_WRITE) {
                s->wr_blocked = false;
                if (s->connecting)
                        s->connect_event = true;
        }
        s->cb(s, events);
}

int sock_new(struct ev *ev, int fd, sock_cb *cb, void *data, struct sock **ret)
{
        struct sock *s;

        assert(ev && fd >= 0 && ret);
        s = calloc(1, sizeof(*s));
        if (!s) {
                safe_close(fd);
                return -ENOMEM;
        }
        ev_handle_init(&s->h, fd, on_sock_event);
        s->ev = ev;
        s->cb = cb;
        s->data = data;
        *ret = s;
        return 0;
}

static void on_sock_freed(struct ev_handle *h)
{
        struct sock *s = container_of(h, struct sock, h);

        if (s->free_cb)
                s->free_cb(s->data);
        if (s->ssl)
                SSL_free(s->ssl);
        free(s->replay);
        free(s);
}

void sock_close(struct sock *s, bool orderly, sock_free_cb *free_data)
{
        if (!s)
                return;
        /* An orderly end tells a TLS client it was not truncated. */
        if (orderly && s->ssl && s->tls_done && !s->shut_sent && !s->err)
                (void)SSL_shutdown(s->ssl);
        /* The descriptor goes now, only the memory waits for the reap: the
         * engine's descriptor accounting counts a closed socket as gone. */
        s->h.fd = safe_close(s->h.fd);
        s->tb = NULL;
        ev_close(s->ev, &s->h, on_sock_freed);
        s->free_cb = free_data;
}

void sock_set_peer(struct sock *s, const struct sockaddr_storage *peer)
{
        if (peer->ss_family == AF_INET6) {
                memcpy(s->peer, &((const struct sockaddr_in6 *)peer)->sin6_addr, 16);
                s->peer_port = ((const struct sockaddr_in6 *)peer)->sin6_port;
                return;
        }
        memset(s->peer, 0, 10);
        s->peer[10] = s->peer[11] = 0xff;
        memcpy(s->peer + 12, &((const struct sockaddr_in *)peer)->sin_addr, 4);
        s->peer_port = ((const struct sockaddr_in *)peer)->sin_port;
}

const struct sockaddr *sock_peer_sockaddr(const struct sock *s, struct sockaddr_storage *ss)
{
        static const uint8_t v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        static const uint8_t none[16];

        memset(ss, 0, sizeof(struct sockaddr_in6));
        if (memcmp(s->peer, none, sizeof(none)) == 0 && s->peer_port == 0) {
                ss->ss_family = AF_UNSPEC;
        } else if (memcmp(s->peer, v4mapped, sizeof(v4mapped)) == 0) {
                struct sockaddr_in *in = (struct sockaddr_in *)ss;

                in->sin_family = AF_INET;
                in->sin_port = s->peer_port;
                memcpy(&in->sin_addr, s->peer + 12, 4);
        } else {
                struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;

                in6->sin6_family = AF_INET6;
                in6->sin6_port = s->peer_port;
                memcpy(&in6->sin6_addr, s->peer, 16);
        }
        return (const struct sockaddr *)ss;
}

void sock_peer_str(const struct sock *s, char *buf, size_t size)
{
        static const uint8_t v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        char *p = buf;

        assert(size >= INET6_ADDRSTRLEN);
        if (memcmp(s->peer, v4mapped, sizeof(v4mapped)) != 0) {
                (void)inet_ntop(AF_INET6, s->peer, buf, (socklen_t)size);
                return;
        }
        /* Per request: glibc's inet_ntop() goes through sprintf(). */
        for (unsigned i = 12; i < 16; i++) {
                unsigned v = s->peer[i];

                if (v >= 100)
                        *p++ = (char)('0' + v / 100);
                if (v >= 10)
                        *p++ = (char)('0' + v / 10 % 10);
                *p++ = (char)('0' + v % 10);
                *p++ = i < 15 ? '.' : 0;
        }
}

int sock_replay(struct sock *s, const uint8_t *p, size_t n)
{
        struct sock_replay *r;

        assert(!s->replay);
        if (n == 0)
                return 0;
        if (n > UINT32_MAX)
                return -E2BIG;
        r = malloc(sizeof(*r) + n);
        if (!r)
                return -ENOMEM;
        r->len = (uint32_t)n;
        r->off = 0;
        memcpy(r->bytes, p, n);
        s->replay = r;
        return 0;
}

/* Take up to @n replayed bytes into @out. */
static size_t replay_take(struct sock *s, void *out, size_t n)
{
        struct sock_replay *r = s->replay;

        n = MIN(n, (size_t)(r->len - r->off));
        memcpy(out, r->bytes + r->off, n);
        r->off += (uint32_t)n;
        if (r->off == r->len)
                s->replay = mfree(s->replay);
        return n;
}

/* ---- the TLS BIO: replayed bytes first, then the fd ---- */

static BIO_METHOD *bio_method;
static pthread_once_t bio_once = PTHREAD_ONCE_INIT;

static int bio_read_fail(BIO *b, struct sock *s, ssize_t k)
{
        if (k == 0) {
                s->bio_eof = true;
                return 0;
        }
        if (errno == EAGAIN || errno == EINTR) {
                s->rd_ready = false;
                BIO_set_retry_read(b);
                return -1;
        }
        s->err = -errno;
        return -1;
}

static int bio_read(BIO *b, char *out, int len)
{
        struct sock *s = BIO_get_data(b);
        struct sock_tlsbuf *tb = s->tb;
        size_t n;
        ssize_t k;

        BIO_clear_retry_flags(b);
        if (len <= 0)
                return 0;
        if (s->replay)
                return (int)replay_take(s, out, (size_t)len);
        if (tb) {
                if (tb->rin_off == tb->rin_len) {
                        /* Read ahead: BoringSSL asks for a record header,
                         * then its body; one read() serves both and the
                         * records that follow. A short read drained the
                         * socket, so do not ask again before an event. */
                        if (!s->rd_ready) {
                                BIO_set_retry_read(b);
                                return -1;
                        }
                        k = recv(s->h.fd, tb->rin, SOCK_TLS_RIN_CAP, 0);
                        if (k <= 0)
                                return bio_read_fail(b, s, k);
                        tb->rin_off = 0;
                        tb->rin_len = (uint32_t)k;
                        if ((size_t)k < SOCK_TLS_RIN_CAP)
                                s->rd_ready = false;
                }
                n = MIN((size_t)len, (size_t)(tb->rin_len - tb->rin_off));
                memcpy(out, tb->rin + tb->rin_off, n);
                tb->rin_off += (uint32_t)n;
                return (int)n;
        }
        /* No buffers lent (handshake, idle): exact reads. */
        k = recv(s->h.fd, out, (size_t)len, 0);
        if (k <= 0)
                return bio_read_fail(b, s, k);
        if (k < len)
                s->rd_ready = false;
        return (int)k;
}

static int bio_write(BIO *b, const char *in, int len)
{
        struct sock *s = BIO_get_data(b);
        ssize_t k;

        BIO_clear_retry_flags(b);
        if (len <= 0)
                return 0;
        k = send(s->h.fd, in, (size_t)len, MSG_NOSIGNAL);
        if (k >= 0)
                return (int)k;
        if (errno == EAGAIN || errno == EINTR) {
                s->wr_blocked = true;
                BIO_set_retry_write(b);
                return -1;
        }
        s->err = -errno;
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
        BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "gw-sock");

        if (!m)
                return;
        if (!BIO_meth_set_read(m, bio_read) || !BIO_meth_set_write(m, bio_write) ||
            !BIO_meth_set_ctrl(m, bio_ctrl) || !BIO_meth_set_create(m, bio_create)) {
                BIO_meth_free(m);
                return;
        }
        bio_method = m;
}

int sock_tls_accept(struct sock *s, SSL *ssl)
{
        BIO *bio;

        assert(!s->ssl && ssl);
        (void)pthread_once(&bio_once, bio_method_init);
        bio = bio_method ? BIO_new(bio_method) : NULL;
        if (!bio) {
                SSL_free(ssl);
                return -ENOMEM;
        }
        BIO_set_data(bio, s);
        SSL_set_bio(ssl, bio, bio);
        SSL_set_accept_state(ssl);
        s->ssl = ssl;
        return 0;
}

int sock_handshake(struct sock *s)
{
        int r;

        assert(s->ssl);
        ERR_clear_error();
        r = SSL_do_handshake(s->ssl);
        if (r == 1) {
                s->tls_done = true;
                return 1;
        }
        switch (SSL_get_error(s->ssl, r)) {
        case SSL_ERROR_WANT_READ:
                s->rd_ready = false;
                return 0;
        case SSL_ERROR_WANT_WRITE:
                s->wr_blocked = true;
                return 0;
        default:
                ERR_clear_error();
                return -EPROTO;
        }
}

void sock_tls_lend(struct sock *s, struct sock_tlsbuf *tb)
{
        if (tb) {
                tb->rin_off = tb->rin_len = 0;
                tb->tx_len = 0;
        }
        s->tb = tb;
}

bool sock__tls_buffered(const struct sock *s)
{
        return (s->tb && s->tb->rin_off < s->tb->rin_len) || SSL_has_pending(s->ssl);
}

/* ---- reading and writing ---- */

static ssize_t recv_fd(struct sock *s, void *p, size_t n)
{
        ssize_t k = recv(s->h.fd, p, n, 0);

        if (k > 0) {
                if ((size_t)k < n)
                        s->rd_ready = false;
                return k;
        }
        if (k == 0) {
                s->eof = true;
                return 0;
        }
        if (errno == EAGAIN || errno == EINTR) {
                s->rd_ready = false;
                return -EAGAIN;
        }
        if (!s->err)
                s->err = -errno;
        return -errno;
}

ssize_t sock_read(struct sock *s, void *p, size_t n)
{
        int r;

        assert(n > 0);
        if (!s->ssl) {
                if (s->replay)
                        return (ssize_t)replay_take(s, p, n);
                return recv_fd(s, p, n);
        }
        ERR_clear_error();
        r = SSL_read(s->ssl, p, (int)MIN(n, (size_t)INT_MAX));
        if (r > 0)
                return r;
        switch (SSL_get_error(s->ssl, r)) {
        case SSL_ERROR_ZERO_RETURN:
                s->eof = true;
                return 0;
        case SSL_ERROR_WANT_READ:
                s->rd_ready = false;
                return -EAGAIN;
        case SSL_ERROR_WANT_WRITE:
                /* A post-handshake reply (KeyUpdate) waits for the socket. */
                s->wr_blocked = true;
                s->rd_ready = false;
                return -EAGAIN;
        case SSL_ERROR_SYSCALL:
                if (s->bio_eof) {
                        s->eof = true;
                        return 0;
                }
                return s->err < 0 ? s->err : -EIO;
        default:
                ERR_clear_error();
                return -EPROTO;
        }
}

int sock_linger(struct sock *s, void *scratch, size_t n, uint32_t *drained, uint32_t max)
{
        if (s->err)
                return 0;
        while (s->rd_ready) {
                ssize_t k = recv_fd(s, scratch, n);

                if (k == -EAGAIN)
                        return 1;
                if (k <= 0 || (uint64_t)*drained + (uint64_t)k > max)
                        return 0;
                *drained += (uint32_t)k;
        }
        return 1;
}

int sock_write(struct sock *s, struct iovq *q, uint64_t *counted)
{
        struct sock_tlsbuf *tb = s->tb;

        while (q->left > 0) {
                const uint8_t *ptr;
                size_t len;
                int r;

                if (!s->ssl) {
                        ssize_t k = iovq_send(q, s->h.fd);

                        if (k < 0 && k != -EAGAIN) {
                                if (!s->err)
                                        s->err = (int)k;
                                return (int)k;
                        }
                        if (k > 0 && counted)
                                *counted += (uint64_t)k;
                        if (q->left > 0)
                                s->wr_blocked = true;
                        return 0;
                }

                /* SSL_write() must be repeated with the same arguments after
                 * it asked for the socket: a gathered record stays in tb->tx;
                 * a single piece is the queue's first iovec, unchanged until
                 * it was written. */
                if (tb && tb->tx_len == 0) {
                        const struct iovec *v = &q->iov[q->i];

                        if (q->n - q->i == 1 || v->iov_len >= SOCK_TLS_TX_CAP) {
                                tb->tx_ptr = v->iov_base;
                                tb->tx_len = (uint32_t)MIN(v->iov_len, (size_t)INT_MAX / 2);
                        } else {
                                /* Several pieces (head, chunk framing, data):
                                 * one record, one send. */
                                size_t m = 0;

                                for (unsigned i = q->i; i < q->n && m < SOCK_TLS_TX_CAP; i++) {
                                        size_t k = MIN(q->iov[i].iov_len, SOCK_TLS_TX_CAP - m);

                                        memcpy(tb->tx + m, q->iov[i].iov_base, k);
                                        m += k;
                                }
                                tb->tx_ptr = tb->tx;
                                tb->tx_len = (uint32_t)m;
                        }
                }
                if (tb) {
                        ptr = tb->tx_ptr;
                        len = tb->tx_len;
                } else {
                        ptr = q->iov[q->i].iov_base;
                        len = MIN(q->iov[q->i].iov_len, (size_t)INT_MAX / 2);
                }
                ERR_clear_error();
                r = SSL_write(s->ssl, ptr, (int)len);
                if (r > 0) {
                        iovq_advance(q, (size_t)r);
                        if (counted)
                                *counted += (uint64_t)r;
                        if (tb)
                                tb->tx_len = 0;
                        continue;
                }
                switch (SSL_get_error(s->ssl, r)) {
                case SSL_ERROR_WANT_WRITE:
                        s->wr_blocked = true;
                        return 0;
                case SSL_ERROR_SYSCALL:
                        return s->err < 0 ? s->err : -EPIPE;
                default:
                        ERR_clear_error();
                        return -EPROTO;
                }
        }
        return 0;
}

/* ---- connecting ---- */

int sock_connect(struct sock *s, const struct sockaddr *addr, socklen_t len)
{
        if (connect(s->h.fd, addr, len) == 0)
                return 0;
        if (errno != EINPROGRESS)
                return -errno;
        s->connecting = true;
        s->connect_event = false;
        return 0;
}

int sock_connect_result(struct sock *s)
{
        socklen_t sl = sizeof(int);
        int soerr = 0;

        s->connecting = false;
        s->connect_event = false;
        if (getsockopt(s->h.fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0)
                soerr = errno;
        return -soerr;
}

void sock_shutdown(struct sock *s)
{
        if (s->ssl && s->tls_done && !s->shut_sent)
                (void)SSL_shutdown(s->ssl);
        s->shut_sent = true;
        (void)shutdown(s->h.fd, SHUT_WR);
}
