/* hsload: tiny TLS full-handshake load generator for the gatewayd benchmark.
 *
 * Keeps N non-blocking connections busy. Each one: TCP connect, full TLS 1.3
 * handshake (no session ticket, no session cache -> never resumed), optionally
 * one HTTP/1.1 request with "Connection: close" read to EOF, then close and
 * start again. Bounded by duration (-d) and by count (-n).
 *
 * Build: gcc -O2 -o hsload hsload.c -lssl -lcrypto
 * Output (one line, key=value): conns=.. errors=.. secs=.. rate=.. p50_us=.. p99_us=..
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

enum st { ST_CONNECT, ST_HANDSHAKE, ST_WRITE, ST_READ };

struct conn {
        int fd;
        SSL *ssl;
        enum st st;
        double t0;
        size_t woff;
};

static SSL_CTX *ctx;
static struct sockaddr_in addr;
static const char *sni = "localhost";
static char req[512];
static size_t reqlen;
static int do_request = 1;
static int epfd;
static long done, errors, started, maxconns = 1000000;
static double *lat;
static char neg[160];
static size_t nlat, caplat;

static double now(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void arm(struct conn *c, uint32_t ev, int op)
{
        struct epoll_event e = {.events = ev, .data.ptr = c};
        if (epoll_ctl(epfd, op, c->fd, &e) < 0 && op == EPOLL_CTL_MOD)
                epoll_ctl(epfd, EPOLL_CTL_ADD, c->fd, &e);
}

static int start(struct conn *c)
{
        if (started >= maxconns)
                return -1;
        started++;
        c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (c->fd < 0) {
                perror("socket");
                exit(2);
        }
        int one = 1;
        setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        c->t0 = now();
        c->ssl = NULL;
        c->woff = 0;
        int r = connect(c->fd, (struct sockaddr *)&addr, sizeof addr);
        if (r < 0 && errno != EINPROGRESS) {
                close(c->fd);
                errors++;
                return start(c);
        }
        c->st = ST_CONNECT;
        arm(c, EPOLLOUT, EPOLL_CTL_ADD);
        return 0;
}

static void finish(struct conn *c, int ok)
{
        if (ok) {
                done++;
                if (nlat == caplat) {
                        caplat = caplat ? caplat * 2 : 65536;
                        lat = realloc(lat, caplat * sizeof *lat);
                }
                lat[nlat++] = (now() - c->t0) * 1e6;
        } else {
                errors++;
        }
        if (c->ssl)
                SSL_free(c->ssl); /* no close_notify: we only want the handshake cost */
        epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
        c->fd = -1;
}

static int want(struct conn *c, int r)
{
        int e = SSL_get_error(c->ssl, r);
        if (e == SSL_ERROR_WANT_READ) {
                arm(c, EPOLLIN, EPOLL_CTL_MOD);
                return 1;
        }
        if (e == SSL_ERROR_WANT_WRITE) {
                arm(c, EPOLLOUT, EPOLL_CTL_MOD);
                return 1;
        }
        return 0;
}

static void step(struct conn *c)
{
        for (;;) {
                switch (c->st) {
                case ST_CONNECT: {
                        int err = 0;
                        socklen_t l = sizeof err;
                        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &l);
                        if (err) {
                                finish(c, 0);
                                return;
                        }
                        c->ssl = SSL_new(ctx);
                        SSL_set_fd(c->ssl, c->fd);
                        SSL_set_tlsext_host_name(c->ssl, sni);
                        SSL_set_connect_state(c->ssl);
                        c->st = ST_HANDSHAKE;
                        break;
                }
                case ST_HANDSHAKE: {
                        int r = SSL_do_handshake(c->ssl);
                        if (r == 1) {
                                if (SSL_session_reused(c->ssl)) {
                                        fprintf(stderr, "hsload: session was resumed?\n");
                                        exit(2);
                                }
                                if (!neg[0]) {
                                        int g = SSL_get_negotiated_group(c->ssl), sig = 0;
                                        SSL_get_peer_signature_type_nid(c->ssl, &sig);
                                        snprintf(neg, sizeof neg,
                                                 "proto=%s cipher=%s group=%s sig=%s",
                                                 SSL_get_version(c->ssl),
                                                 SSL_get_cipher_name(c->ssl),
                                                 g ? OBJ_nid2sn(g) : "?",
                                                 sig ? OBJ_nid2sn(sig) : "?");
                                }
                                if (!do_request) {
                                        finish(c, 1);
                                        return;
                                }
                                c->st = ST_WRITE;
                                break;
                        }
                        if (!want(c, r)) {
                                ERR_clear_error();
                                finish(c, 0);
                        }
                        return;
                }
                case ST_WRITE: {
                        int r = SSL_write(c->ssl, req + c->woff, (int)(reqlen - c->woff));
                        if (r > 0) {
                                c->woff += r;
                                if (c->woff == reqlen)
                                        c->st = ST_READ;
                                break;
                        }
                        if (!want(c, r)) {
                                ERR_clear_error();
                                finish(c, 0);
                        }
                        return;
                }
                case ST_READ: {
                        char buf[32768];
                        int r = SSL_read(c->ssl, buf, sizeof buf);
                        if (r > 0)
                                continue;
                        int e = SSL_get_error(c->ssl, r);
                        if (e == SSL_ERROR_ZERO_RETURN || e == SSL_ERROR_SYSCALL) {
                                /* EOF after a Connection: close response */
                                ERR_clear_error();
                                finish(c, 1);
                                return;
                        }
                        if (!want(c, r)) {
                                ERR_clear_error();
                                finish(c, 0);
                        }
                        return;
                }
                }
        }
}

static int cmpd(const void *a, const void *b)
{
        double x = *(const double *)a, y = *(const double *)b;
        return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
        const char *host = "127.0.0.1", *path = "/64";
        int port = 0, nconn = 16;
        double dur = 4;
        int o;
        while ((o = getopt(argc, argv, "h:p:c:d:n:s:P:H")) != -1) {
                switch (o) {
                case 'h':
                        host = optarg;
                        break;
                case 'p':
                        port = atoi(optarg);
                        break;
                case 'c':
                        nconn = atoi(optarg);
                        break;
                case 'd':
                        dur = atof(optarg);
                        break;
                case 'n':
                        maxconns = atol(optarg);
                        break;
                case 's':
                        sni = optarg;
                        break;
                case 'P':
                        path = optarg;
                        break;
                case 'H':
                        do_request = 0;
                        break;
                default:
                        fprintf(stderr, "usage: hsload -p PORT [-h 127.0.0.1] [-c conns] [-d secs] "
                                        "[-n maxconns] [-s sni] [-P path] [-H handshake only]\n");
                        return 2;
                }
        }
        if (port <= 0 || nconn <= 0 || dur <= 0 || dur > 120) {
                fprintf(stderr, "hsload: need -p PORT, 0 < -c, 0 < -d <= 120\n");
                return 2;
        }
        addr.sin_family = AF_INET;
        addr.sin_port = htons(port);
        if (inet_pton(AF_INET, host, &addr.sin_addr) != 1 ||
            (ntohl(addr.sin_addr.s_addr) >> 24) != 127) {
                fprintf(stderr, "hsload: loopback IPv4 addresses only\n");
                return 2;
        }
        reqlen = snprintf(req, sizeof req,
                          "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", path, sni);

        ctx = SSL_CTX_new(TLS_client_method());
        SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
        SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION);
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
        SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
        SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
        static const unsigned char alpn[] = "\x08http/1.1";
        SSL_CTX_set_alpn_protos(ctx, alpn, sizeof alpn - 1);

        epfd = epoll_create1(EPOLL_CLOEXEC);
        struct conn *cs = calloc(nconn, sizeof *cs);
        for (int i = 0; i < nconn; i++)
                if (start(&cs[i]) < 0)
                        cs[i].fd = -1;

        double t_start = now(), t_end = t_start + dur;
        struct epoll_event evs[256];
        int live = nconn;
        while (live > 0) {
                double t = now();
                if (t >= t_end)
                        break;
                int n = epoll_wait(epfd, evs, 256, (int)((t_end - t) * 1000) + 1);
                for (int i = 0; i < n; i++) {
                        struct conn *c = evs[i].data.ptr;
                        step(c);
                        if (c->fd < 0 && start(c) < 0)
                                live--;
                }
        }
        double secs = now() - t_start;
        for (int i = 0; i < nconn; i++)
                if (cs[i].fd >= 0) {
                        if (cs[i].ssl)
                                SSL_free(cs[i].ssl);
                        close(cs[i].fd);
                }
        double p50 = 0, p99 = 0;
        if (nlat) {
                qsort(lat, nlat, sizeof *lat, cmpd);
                p50 = lat[nlat / 2];
                p99 = lat[(size_t)(nlat * 0.99)];
        }
        printf("conns=%ld errors=%ld secs=%.3f rate=%.1f p50_us=%.1f p99_us=%.1f %s\n", done,
               errors, secs, done / secs, p50, p99, neg[0] ? neg : "proto=none");
        return 0;
}
