/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* One stream socket under every protocol (h2o's h2o_socket_t): a
 * non-blocking fd in the worker's event layer, plain or TLS (BoringSSL
 * through a BIO of our own), with bytes already read replayed first. The
 * :443 front, the :80 and TLS HTTP servers, the byte relay and the backend
 * connections all read and write through it. A protocol that hands the
 * connection to another (the :443 front to TLS and HTTP/1.1, HTTP/1.1 to
 * the WebSocket relay) changes the socket's handler with sock_set_cb(): the
 * fd never changes hands (HAProxy's conn_upgrade_mux_fe).
 *
 * Readiness is level-triggered and pulled: the handler is told which events
 * came (rd_ready is set on EV_READ, wr_blocked cleared on EV_WRITE), and
 * reads until a short read (drained: rd_ready is cleared, no EAGAIN in the
 * common case) or writes until the kernel stops taking bytes (wr_blocked).
 * Interest is declared after each step with sock_want(): read interest
 * while the owner wants input, write interest only while a write is
 * blocked or a connect is in progress.
 *
 * TLS: while the owner is busy it lends the socket two 16 KiB buffers
 * (struct sock_tlsbuf): reads then fetch up to 16 KiB at once, so one
 * read() serves a record header, its body and the records behind it, and
 * several pieces of output (head, chunk framing, body) are gathered into
 * one record and one send(). Without them (handshake, idle) the BIO reads
 * exactly what BoringSSL asks for and writes single pieces as they are.
 *
 * Lifetime: sock_close() ends callbacks at once and frees (the SSL, the
 * replay bytes, the socket, then the owner's object through its free
 * callback) from the event layer's reap, so an object reached from a
 * callback chain stays valid until that chain returns. */

#include <assert.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>

#include <openssl/base.h>

#include "proxy/ev.h"

/* ---- iovec output queues ---- */

#define IOVQ_MAX 24u /* iovecs in one output batch */

struct iovq {
        struct iovec iov[IOVQ_MAX];
        uint8_t i, n; /* iov[i, n) are queued */
        size_t left;  /* bytes not yet written */
};

static inline void iovq_reset(struct iovq *q)
{
        q->i = q->n = 0;
        q->left = 0;
}

/* Queue @n bytes at @p (no-op for 0); the caller checks the room
 * (q->n < IOVQ_MAX). Inline: several calls per request. */
static inline void iovq_add(struct iovq *q, const void *p, size_t n)
{
        if (n == 0)
                return;
        assert(q->n < IOVQ_MAX);
        q->iov[q->n++] = (struct iovec){.iov_base = (void *)p, .iov_len = n};
        q->left += n;
}

/* Drop @n written bytes from the front. */
static inline void iovq_advance(struct iovq *q, size_t n)
{
        assert(n <= q->left);
        q->left -= n;
        while (n > 0) {
                struct iovec *v = &q->iov[q->i];

                if (n >= v->iov_len) {
                        n -= v->iov_len;
                        q->i++;
                } else {
                        v->iov_base = (uint8_t *)v->iov_base + n;
                        v->iov_len -= n;
                        n = 0;
                }
        }
        if (q->left == 0)
                q->i = q->n = 0;
}

/* ---- the socket ---- */

#define SOCK_TLS_RIN_CAP 16384u /* raw read-ahead: one read() serves several records */
#define SOCK_TLS_TX_CAP  16384u /* plaintext gathered into one SSL_write() */

/* Buffers a busy owner lends a TLS socket (sock_tls_lend()). */
struct sock_tlsbuf {
        uint8_t *rin; /* SOCK_TLS_RIN_CAP bytes */
        uint8_t *tx;  /* SOCK_TLS_TX_CAP bytes */
        uint32_t rin_off, rin_len;
        uint32_t tx_len;       /* an SSL_write() to repeat as it was (0: none) */
        const uint8_t *tx_ptr; /* */
};

struct sock;

/* @events (EV_READ | EV_WRITE | EV_TIMEOUT) for @s; s->data is the
 * handler's object. */
typedef void sock_cb(struct sock *s, unsigned events);
/* After sock_close(), from the reap: free the owner's object @data. */
typedef void sock_free_cb(void *data);

struct sock_replay; /* sock.c */

struct sock {
        struct ev_handle h; /* the fd (h.fd), its interest and its deadline */
        struct ev *ev;      /* the worker's event layer */
        union {
                sock_cb *cb;           /* the protocol handling the socket */
                sock_free_cb *free_cb; /* once closing */
        };
        void *data;                 /* the handler's object */
        SSL *ssl;                   /* NULL: plain */
        struct sock_replay *replay; /* bytes read before, served first, or NULL */
        struct sock_tlsbuf *tb;     /* TLS: buffers lent by a busy owner, or NULL */
        int err;                    /* the first socket error (negative errno), 0 */
        uint8_t peer[16];           /* the client's address, IPv4 as ::ffff:a.b.c.d */
        uint16_t peer_port;         /* ... and its port (network order) */
        bool rd_ready : 1;          /* readable per the last event or read */
        bool wr_blocked : 1;        /* the last write would block */
        bool eof : 1;               /* a read returned 0 (after TLS: close_notify or EOF) */
        bool bio_eof : 1;           /* TLS: the socket itself reached EOF */
        bool shut_sent : 1;         /* close_notify and SHUT_WR sent */
        bool tls_done : 1;          /* TLS: the handshake completed */
        bool connecting : 1;        /* a non-blocking connect() is in progress */
        bool connect_event : 1;     /* ... and the socket became writable */
};

/* Wrap @fd (non-blocking, CLOEXEC; connected, accepted or connecting) with
 * handler @cb/@data (may be NULL until sock_set_cb(), which must come
 * before any interest is declared). The fd is ours from now on, also on
 * failure. Returns 0 or -ENOMEM. */
int sock_new(struct ev *ev, int fd, sock_cb *cb, void *data, struct sock **ret);

/* Hand the socket to another protocol handler. */
static inline void sock_set_cb(struct sock *s, sock_cb *cb, void *data)
{
        s->cb = cb;
        s->data = data;
}

/* Record the peer address and port (client sockets; for X-Forwarded-For
 * and the access log). */
void sock_set_peer(struct sock *s, const struct sockaddr_storage *peer);
/* The peer address as text (@size >= INET6_ADDRSTRLEN). */
void sock_peer_str(const struct sock *s, char *buf, size_t size);
/* The peer address and port as a sockaddr (AF_INET for a mapped IPv4
 * address); AF_UNSPEC if none was recorded. Returns @ss. */
const struct sockaddr *sock_peer_sockaddr(const struct sock *s, struct sockaddr_storage *ss);

/* Serve @n bytes at @p (copied) before anything read from the fd: what the
 * :443 front read while peeking. On a TLS socket they are fed to the TLS
 * stack. Returns 0 or -ENOMEM. */
int sock_replay(struct sock *s, const uint8_t *p, size_t n);

/* Speak TLS as the server from now on, with @ssl (taken, also on failure;
 * made by proxy_tls_new_ssl()). Returns 0 or -ENOMEM. */
int sock_tls_accept(struct sock *s, SSL *ssl);
/* Drive the handshake: 1 when complete, 0 while it waits for the socket
 * (rd_ready/wr_blocked say which), or -EPROTO (s->bio_eof: the client
 * went away; s->err: a socket error; otherwise the handshake failed and an
 * alert was sent). */
int sock_handshake(struct sock *s);
/* Lend @tb (NULL: take it back; only when sock_buffered() is false or the
 * connection is ending, since bytes read ahead are in it). */
void sock_tls_lend(struct sock *s, struct sock_tlsbuf *tb);

bool sock__tls_buffered(const struct sock *s);
/* Bytes read from the fd (or replayed) that no poll event will announce. */
static inline bool sock_buffered(const struct sock *s)
{
        if (s->replay)
                return true;
        return s->ssl && sock__tls_buffered(s);
}
static inline bool sock_can_read(const struct sock *s)
{
        return s->rd_ready || sock_buffered(s);
}

/* Read up to @n (> 0) bytes. Returns > 0, 0 at EOF (s->eof set), -EAGAIN
 * (rd_ready cleared; or TLS wants to write: wr_blocked set), or another
 * -errno (-EPROTO for a TLS error). */
ssize_t sock_read(struct sock *s, void *p, size_t n);
/* Lingering after sock_shutdown(): read and discard (raw, past TLS) what
 * the peer still sends while it is readable, *@drained counting. Returns 1
 * to wait for more, 0 once it ended (EOF, an error, or more than @max bytes
 * in all): then close. Closing with unread bytes instead would make the
 * kernel reset the connection and drop what it had not yet sent. */
int sock_linger(struct sock *s, void *scratch, size_t n, uint32_t *drained, uint32_t max);

/* Write what @q holds (advanced past what went out; the bytes are added to
 * *counted if not NULL). Returns 0, possibly with bytes left (then
 * wr_blocked is set), or -errno. */
int sock_write(struct sock *s, struct iovq *q, uint64_t *counted);

/* Declare interest: EV_READ if @rd, EV_WRITE while wr_blocked or
 * connecting. Returns 0 or -errno (epoll_ctl). */
static inline int sock_want(struct sock *s, bool rd)
{
        return ev_set(s->ev, &s->h,
                      (rd ? EV_READ : 0) | (s->wr_blocked || s->connecting ? EV_WRITE : 0));
}

/* The socket's callback once more, with EV_DEFER, after the current batch
 * of events (ev_defer()). Returns false when that cannot be: act now. */
static inline bool sock_defer(struct sock *s)
{
        return ev_defer(s->ev, &s->h);
}

/* Put the socket at the tail of deadline queue @tq (EV_TQ_NONE: none). */
static inline void sock_deadline(struct sock *s, unsigned tq)
{
        ev_deadline(s->ev, &s->h, tq);
}

/* A non-blocking connect() to @addr was issued on the fd. Returns 0
 * (connecting, or connected at once), or -errno. */
int sock_connect(struct sock *s, const struct sockaddr *addr, socklen_t len);
/* The connect finished (connect_event) or timed out: 0 once connected,
 * else -errno. */
int sock_connect_result(struct sock *s);

/* Orderly end of our direction: close_notify (TLS, once) and SHUT_WR. */
void sock_shutdown(struct sock *s);

/* Close the fd now (after close_notify if @orderly, the handshake was
 * completed and nothing failed); no more callbacks. From the reap:
 * @free_data(s->data) if not NULL, then the socket is freed. */
void sock_close(struct sock *s, bool orderly, sock_free_cb *free_data);
